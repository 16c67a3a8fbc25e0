/* onnx_internal.h -- private to engine/onnx*.c: the generated ONNX reader
 * and the helpers the tensor decoder shares with the graph importer. */
#ifndef QT_ONNX_INTERNAL_H
#define QT_ONNX_INTERNAL_H

#include "internal.h"
#include "onnx.pb-c.h"     /* generated at build time from onnx.proto */

/* Largest element count of one tensor (and of one activation per sample):
 * beyond it a file is taken as corrupt rather than tried. */
#define QT__ONNX_MAX_COUNT ((size_t)1 << 30)

/* Bytes per element of a supported numeric dtype; 0 for the others. */
size_t qt__onnx_dtype_size(int dtype);
/* "float", "int64", ... or "dtype N". */
const char *qt__onnx_dtype_name(int dtype);
static inline int qt__onnx_dtype_is_int(int dt)
{
    return dt != QT_ONNX_FLOAT && dt != QT_ONNX_FLOAT16 && dt != QT_ONNX_DOUBLE &&
           dt != QT_ONNX_BFLOAT16;
}

/* A new zeroed tensor of the given type and dims (f always allocated, i for
 * integer and bool types); NULL on out-of-memory or a count past
 * QT__ONNX_MAX_COUNT. name may be NULL. */
qt_onnx_tensor *qt__onnx_tensor_new(const char *name, int dtype, int ndim,
                                    const int64_t *dims);

/* Decode a TensorProto into a new tensor. ctx prefixes messages (a file
 * name, or ""); the tensor is named in them. */
int qt__onnx_tensor_decode(const Onnx__TensorProto *tp, const char *ctx,
                           qt_onnx_tensor **out, qt_error *err);

/* Read a whole file into a new malloc'd buffer (QT_ENOENT naming the path
 * when it does not exist, QT_EIO otherwise). */
int qt__onnx_read_file(const char *path, unsigned char **buf, size_t *len,
                       qt_error *err);

#endif
