/*
 * onnx_tensor.c -- ONNX TensorProto decoding (initializers, Constant nodes,
 * the conformance tests' .pb files) and reading files whole.
 *
 * Every numeric dtype is read from raw_data (little-endian, fixed width;
 * bool one byte) or from its typed field: float_data (float), int32_data
 * (int32, int16, int8, uint16, uint8, bool, and the bits of float16 and
 * bfloat16), int64_data (int64), double_data (double), uint64_data (uint32,
 * uint64). Counts in the file are never trusted: the data must hold exactly
 * the product of the dims, which must be non-negative and few enough.
 */
#include "onnx_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static const struct {
    int         dtype;
    size_t      size;
    const char *name;
} dtypes[] = {
    { QT_ONNX_FLOAT, 4, "float" },     { QT_ONNX_UINT8, 1, "uint8" },
    { QT_ONNX_INT8, 1, "int8" },       { QT_ONNX_UINT16, 2, "uint16" },
    { QT_ONNX_INT16, 2, "int16" },     { QT_ONNX_INT32, 4, "int32" },
    { QT_ONNX_INT64, 8, "int64" },     { QT_ONNX_STRING, 0, "string" },
    { QT_ONNX_BOOL, 1, "bool" },       { QT_ONNX_FLOAT16, 2, "float16" },
    { QT_ONNX_DOUBLE, 8, "double" },   { QT_ONNX_UINT32, 4, "uint32" },
    { QT_ONNX_UINT64, 8, "uint64" },   { 14, 0, "complex64" },
    { 15, 0, "complex128" },           { QT_ONNX_BFLOAT16, 2, "bfloat16" },
};

size_t qt__onnx_dtype_size(int dtype)
{
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (dtypes[k].dtype == dtype) return dtypes[k].size;
    return 0;
}

const char *qt__onnx_dtype_name(int dtype)
{
    static _Thread_local char buf[24];
    for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (dtypes[k].dtype == dtype) return dtypes[k].name;
    snprintf(buf, sizeof buf, "dtype %d", dtype);
    return buf;
}

qt_onnx_tensor *qt__onnx_tensor_new(const char *name, int dtype, int ndim,
                                    const int64_t *dims)
{
    size_t count = 1;
    if (ndim < 0 || ndim > QT_ONNX_MAX_DIMS) return NULL;
    for (int k = 0; k < ndim; k++) {
        if (dims[k] < 0 || (uint64_t)dims[k] > QT__ONNX_MAX_COUNT) return NULL;
        count *= (size_t)dims[k];
        if (count > QT__ONNX_MAX_COUNT) return NULL;
    }
    qt_onnx_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int k = 0; k < ndim; k++) t->dims[k] = dims[k];
    t->count = count;
    t->f = calloc(count ? count : 1, sizeof *t->f);
    if (qt__onnx_dtype_is_int(dtype)) t->i = calloc(count ? count : 1, sizeof *t->i);
    if (!t->f || (qt__onnx_dtype_is_int(dtype) && !t->i)) {
        qt_onnx_tensor_free(t);
        return NULL;
    }
    return t;
}

void qt_onnx_tensor_free(qt_onnx_tensor *t)
{
    if (!t) return;
    free(t->f);
    free(t->i);
    free(t);
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (e == 0x1f) {
        v.u = sign | 0x7f800000u | (m << 13);          /* inf, NaN */
    } else if (e != 0) {
        v.u = sign | ((e + 112) << 23) | (m << 13);    /* normal */
    } else {
        v.f = (float)m * 0x1p-24f;                      /* zero, subnormal */
        v.u |= sign;
    }
    return v.f;
}

static float bf16_to_float(uint16_t h)
{
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}

/* little-endian unsigned integer of n bytes */
static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | p[k];
    return v;
}

/* store element k from its bit pattern or integer value v (already
 * truncated to the type's width by the caller for raw data) */
static void put(qt_onnx_tensor *t, size_t k, uint64_t v)
{
    union { uint32_t u; float f; } f32;
    union { uint64_t u; double d; } f64;
    switch (t->dtype) {
    case QT_ONNX_FLOAT:   f32.u = (uint32_t)v; t->f[k] = f32.f; return;
    case QT_ONNX_DOUBLE:  f64.u = v; t->f[k] = (float)f64.d; return;
    case QT_ONNX_FLOAT16: t->f[k] = half_to_float((uint16_t)v); return;
    case QT_ONNX_BFLOAT16:t->f[k] = bf16_to_float((uint16_t)v); return;
    case QT_ONNX_UINT8:   t->i[k] = (uint8_t)v; break;
    case QT_ONNX_INT8:    t->i[k] = (int8_t)(uint8_t)v; break;
    case QT_ONNX_UINT16:  t->i[k] = (uint16_t)v; break;
    case QT_ONNX_INT16:   t->i[k] = (int16_t)(uint16_t)v; break;
    case QT_ONNX_INT32:   t->i[k] = (int32_t)(uint32_t)v; break;
    case QT_ONNX_UINT32:  t->i[k] = (uint32_t)v; break;
    case QT_ONNX_BOOL:    t->i[k] = (uint8_t)v != 0; break;
    case QT_ONNX_INT64:   t->i[k] = (int64_t)v; break;
    case QT_ONNX_UINT64:  t->i[k] = (int64_t)v;        /* bits kept */
                          t->f[k] = (float)v; return;
    default: return;
    }
    t->f[k] = (float)t->i[k];
}

int qt__onnx_tensor_decode(const Onnx__TensorProto *tp, const char *ctx,
                           qt_onnx_tensor **out, qt_error *err)
{
    const char *name = tp->name ? tp->name : "";
    int dt = tp->has_data_type ? tp->data_type : 0;
    size_t esz = qt__onnx_dtype_size(dt), count = 1;
    int64_t dims[QT_ONNX_MAX_DIMS];
    *out = NULL;
    if (!ctx) ctx = "";
    if (tp->n_external_data || (tp->has_data_location &&
        tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return qt_errorf(err, QT_ENOTSUP, -1, "%stensor '%.64s': external data is not "
                         "supported (keep the weights inside the model)", ctx, name);
    if (tp->segment)
        return qt_errorf(err, QT_ENOTSUP, -1, "%stensor '%.64s': segmented tensors are "
                         "not supported", ctx, name);
    if (esz == 0)
        return qt_errorf(err, QT_ENOTSUP, -1, "%stensor '%.64s': data type %s is not "
                         "supported (numeric types only)", ctx, name, qt__onnx_dtype_name(dt));
    if (tp->n_dims > QT_ONNX_MAX_DIMS)
        return qt_errorf(err, QT_ECORRUPT, -1, "%stensor '%.64s': %zu dims (at most %d)",
                         ctx, name, tp->n_dims, QT_ONNX_MAX_DIMS);
    for (size_t k = 0; k < tp->n_dims; k++) {
        int64_t d = tp->dims[k];
        if (d < 0 || (uint64_t)d > QT__ONNX_MAX_COUNT)
            return qt_errorf(err, QT_ECORRUPT, -1, "%stensor '%.64s': dim %zu is %lld",
                             ctx, name, k, (long long)d);
        count *= (size_t)d;
        if (count > QT__ONNX_MAX_COUNT)
            return qt_errorf(err, QT_ECORRUPT, -1, "%stensor '%.64s': more than %zu "
                             "elements", ctx, name, QT__ONNX_MAX_COUNT);
        dims[k] = d;
    }
    /* where the data is and how many elements it holds */
    size_t have;
    const char *field;
    if (tp->has_raw_data) {
        field = "raw_data";
        have = tp->raw_data.len % esz ? (size_t)-1 : tp->raw_data.len / esz;
    } else {
        switch (dt) {
        case QT_ONNX_FLOAT:  field = "float_data";  have = tp->n_float_data; break;
        case QT_ONNX_INT64:  field = "int64_data";  have = tp->n_int64_data; break;
        case QT_ONNX_DOUBLE: field = "double_data"; have = tp->n_double_data; break;
        case QT_ONNX_UINT32:
        case QT_ONNX_UINT64: field = "uint64_data"; have = tp->n_uint64_data; break;
        default:             field = "int32_data";  have = tp->n_int32_data; break;
        }
    }
    if (have != count) {
        if (have == (size_t)-1)
            return qt_errorf(err, QT_ECORRUPT, -1, "%stensor '%.64s': raw_data of %zu bytes "
                             "is not a whole number of %s elements", ctx, name,
                             tp->raw_data.len, qt__onnx_dtype_name(dt));
        return qt_errorf(err, QT_ECORRUPT, -1, "%stensor '%.64s': %s holds %zu values but "
                         "the dims need %zu", ctx, name, field, have, count);
    }
    qt_onnx_tensor *t = qt__onnx_tensor_new(name, dt, (int)tp->n_dims, dims);
    if (!t) return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    for (size_t k = 0; k < count; k++) {
        uint64_t v;
        if (tp->has_raw_data) v = le(tp->raw_data.data + k * esz, esz);
        else switch (dt) {
        case QT_ONNX_FLOAT: {
            union { float f; uint32_t u; } c = { .f = tp->float_data[k] };
            v = c.u;
            break;
        }
        case QT_ONNX_INT64:  v = (uint64_t)tp->int64_data[k]; break;
        case QT_ONNX_DOUBLE: {
            union { double d; uint64_t u; } c = { .d = tp->double_data[k] };
            v = c.u;
            break;
        }
        case QT_ONNX_UINT32:
        case QT_ONNX_UINT64: v = tp->uint64_data[k]; break;
        default:             v = (uint64_t)(int64_t)tp->int32_data[k]; break;
        }
        put(t, k, v);
    }
    *out = t;
    return QT_OK;
}

int qt__onnx_read_file(const char *path, unsigned char **buf, size_t *len, qt_error *err)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    size_t n = 0, cap = 0;
    *buf = NULL;
    *len = 0;
    if (!f)
        return qt_errorf(err, errno == ENOENT ? QT_ENOENT : QT_EIO, -1, "'%.150s': %s",
                         path, strerror(errno));
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 1 << 16;
            unsigned char *nb = realloc(b, nc);
            if (!nb) {
                free(b);
                fclose(f);
                return qt_errorf(err, QT_ENOMEM, -1, "'%.150s': out of memory", path);
            }
            b = nb;
            cap = nc;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return qt_errorf(err, QT_EIO, -1, "'%.150s': read error", path);
    }
    *buf = b;
    *len = n;
    return QT_OK;
}

int qt_onnx_tensor_load(const char *path, qt_onnx_tensor **out, qt_error *err)
{
    unsigned char *buf;
    size_t len;
    char ctx[200];
    int rc;
    *out = NULL;
    if ((rc = qt__onnx_read_file(path, &buf, &len, err))) return rc;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp)
        return qt_errorf(err, QT_ECORRUPT, -1, "'%.150s': not a valid TensorProto "
                         "(truncated or corrupt protobuf)", path);
    snprintf(ctx, sizeof ctx, "'%.120s': ", path);
    rc = qt__onnx_tensor_decode(tp, ctx, out, err);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}
