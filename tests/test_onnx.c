/*
 * test_onnx.c -- ONNX import (engine/onnx.c, engine/onnx_tensor.c).
 *
 * Models are built in the test with the protobuf-c API generated from
 * onnx.proto and packed to bytes, so no files are needed except for the
 * fuzzing of a real conformance model (libonnx-testdata). Covered:
 *   - a Conv -> Relu -> MaxPool -> Flatten -> Gemm model in batched mode,
 *     run on batches of several samples against a float64 reference;
 *   - names: kept, unnamed nodes as <OpType>_<index>, duplicates, long
 *     names, characters the engine does not allow;
 *   - mapping details: MatMul + Add into a dense bias, Gemm with a full C,
 *     constants in batched mode, bindings, a constant output;
 *   - errors naming op and node: unsupported op, bad auto_pad, computed Conv
 *     weights, ops across the batch, opsets 6 and 18, undefined tensors;
 *   - robustness: every prefix of a model, thousands of byte-flipped copies
 *     (no crash, no leak: also run under the sanitizer build), not ONNX at
 *     all, a missing file;
 *   - TensorProto decoding of every dtype from raw_data and typed fields,
 *     and malformed tensors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "onnx.pb-c.h"

#define TESTDATA "/usr/share/libonnx-testdata/data/node"

/* ------------------------------------------------------------------------ */
/* A small model builder over the generated protobuf-c structs              */
/* ------------------------------------------------------------------------ */

typedef struct mb {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *osp[1];
    Onnx__NodeProto *nodes[64];
    Onnx__TensorProto *inits[64];
    Onnx__ValueInfoProto *ins[8], *outs[8];
    void *allocs[4096];
    size_t n_allocs;
} mb;

static void *mb_alloc(mb *b, size_t n)
{
    void *p = calloc(1, n);
    assert_non_null(p);
    assert_true(b->n_allocs < 4096);
    b->allocs[b->n_allocs++] = p;
    return p;
}

static char *mb_str(mb *b, const char *s)
{
    char *p = mb_alloc(b, strlen(s) + 1);
    memcpy(p, s, strlen(s) + 1);
    return p;
}

static void mb_init(mb *b, int64_t opset)
{
    memset(b, 0, sizeof *b);
    onnx__model_proto__init(&b->m);
    onnx__graph_proto__init(&b->g);
    onnx__operator_set_id_proto__init(&b->os);
    b->os.has_version = 1;
    b->os.version = opset;
    b->osp[0] = &b->os;
    b->m.has_ir_version = 1;
    b->m.ir_version = 8;
    b->m.n_opset_import = 1;
    b->m.opset_import = b->osp;
    b->m.graph = &b->g;
    b->g.node = b->nodes;
    b->g.initializer = b->inits;
    b->g.input = b->ins;
    b->g.output = b->outs;
}

static void mb_free(mb *b)
{
    for (size_t k = 0; k < b->n_allocs; k++) free(b->allocs[k]);
    b->n_allocs = 0;
}

/* a value info; dims < 0 are symbolic ("N") */
static Onnx__ValueInfoProto *mb_vi(mb *b, const char *name, int elem, int nd, const int64_t *d)
{
    Onnx__ValueInfoProto *v = mb_alloc(b, sizeof *v);
    Onnx__TypeProto *t = mb_alloc(b, sizeof *t);
    Onnx__TypeProto__Tensor *tt = mb_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = mb_alloc(b, sizeof *sh);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    v->name = mb_str(b, name);
    v->type = t;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    tt->shape = sh;
    sh->n_dim = (size_t)nd;
    sh->dim = mb_alloc(b, (size_t)(nd + 1) * sizeof *sh->dim);
    for (int k = 0; k < nd; k++) {
        Onnx__TensorShapeProto__Dimension *dm = mb_alloc(b, sizeof *dm);
        onnx__tensor_shape_proto__dimension__init(dm);
        if (d[k] < 0) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = mb_str(b, "N");
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = d[k];
        }
        sh->dim[k] = dm;
    }
    return v;
}

static void mb_input(mb *b, const char *name, int nd, const int64_t *d)
{
    b->ins[b->g.n_input++] = mb_vi(b, name, 1, nd, d);
}

static void mb_output(mb *b, const char *name, int nd, const int64_t *d)
{
    b->outs[b->g.n_output++] = mb_vi(b, name, 1, nd, d);
}

/* a node: ins and outs are NULL-terminated lists; name NULL = unnamed */
static Onnx__NodeProto *mb_node(mb *b, const char *op, const char *name,
                                const char *const *ins, const char *const *outs)
{
    Onnx__NodeProto *n = mb_alloc(b, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = mb_str(b, op);
    if (name) n->name = mb_str(b, name);
    while (ins[n->n_input]) n->n_input++;
    while (outs[n->n_output]) n->n_output++;
    n->input = mb_alloc(b, (n->n_input + 1) * sizeof *n->input);
    n->output = mb_alloc(b, (n->n_output + 1) * sizeof *n->output);
    for (size_t k = 0; k < n->n_input; k++) n->input[k] = mb_str(b, ins[k]);
    for (size_t k = 0; k < n->n_output; k++) n->output[k] = mb_str(b, outs[k]);
    n->attribute = mb_alloc(b, 16 * sizeof *n->attribute);
    b->nodes[b->g.n_node++] = n;
    return n;
}

static Onnx__AttributeProto *mb_attr(mb *b, Onnx__NodeProto *n, const char *name, int type)
{
    Onnx__AttributeProto *a = mb_alloc(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = mb_str(b, name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void mb_attr_i(mb *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void mb_attr_f(mb *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

static void mb_attr_ints(mb *b, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)cnt;
    a->ints = mb_alloc(b, (size_t)(cnt + 1) * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)cnt * sizeof *v);
}

static void mb_attr_s(mb *b, Onnx__NodeProto *n, const char *name, const char *s)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)mb_str(b, s);
    a->s.len = strlen(s);
}

static Onnx__TensorProto *mb_tensor(mb *b, const char *name, int dtype, int nd, const int64_t *d)
{
    Onnx__TensorProto *t = mb_alloc(b, sizeof *t);
    onnx__tensor_proto__init(t);
    if (name) t->name = mb_str(b, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)nd;
    t->dims = mb_alloc(b, (size_t)(nd + 1) * sizeof *t->dims);
    memcpy(t->dims, d, (size_t)nd * sizeof *d);
    return t;
}

static void mb_init_f(mb *b, const char *name, int nd, const int64_t *d, const float *v)
{
    Onnx__TensorProto *t = mb_tensor(b, name, 1, nd, d);
    size_t n = 1;
    for (int k = 0; k < nd; k++) n *= (size_t)d[k];
    t->n_float_data = n;
    t->float_data = mb_alloc(b, (n + 1) * sizeof *t->float_data);
    memcpy(t->float_data, v, n * sizeof *v);
    b->inits[b->g.n_initializer++] = t;
}

static void mb_init_i64(mb *b, const char *name, int n, const int64_t *v)
{
    int64_t d[1] = { n };
    Onnx__TensorProto *t = mb_tensor(b, name, 7, 1, d);
    t->n_int64_data = (size_t)n;
    t->int64_data = mb_alloc(b, (size_t)(n + 1) * sizeof *t->int64_data);
    memcpy(t->int64_data, v, (size_t)n * sizeof *v);
    b->inits[b->g.n_initializer++] = t;
}

static uint8_t *mb_pack(mb *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->m);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(onnx__model_proto__pack(&b->m, buf), *len);
    return buf;
}

/* load the builder's model; returns the rc, *g set on success */
static int mb_load(mb *b, const qt_onnx_opts *o, qt_graph **g, qt_error *err)
{
    size_t len;
    uint8_t *buf = mb_pack(b, &len);
    int rc = qt_onnx_load_mem(buf, len, o, g, err);
    free(buf);
    return rc;
}

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

typedef struct rng { uint64_t s; } rng;
static uint64_t rnext(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float runi(rng *r) { return (float)((double)(rnext(r) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static void expect_error(int rc, int want, const qt_error *err, const char *a, const char *b)
{
    if (rc != want) fail_msg("rc %d (%s), expected %d: %s", rc, qt_strerror(rc), want, err->text);
    if (a && !strstr(err->text, a)) fail_msg("'%s' not in: %s", a, err->text);
    if (b && !strstr(err->text, b)) fail_msg("'%s' not in: %s", b, err->text);
}

/* ------------------------------------------------------------------------ */
/* The batched CNN                                                           */
/* ------------------------------------------------------------------------ */

enum { CO = 4, HW = 6, PH = 3, FEAT = CO * PH * PH, NCLS = 10 };

typedef struct cnn {
    float w1[CO * 9], b1[CO], w2[NCLS * FEAT], b2[NCLS];
} cnn;

/* Conv(1->4, 3x3, pad 1) -> Relu -> MaxPool(2x2, s2, unnamed) -> Flatten -> Gemm(transB) */
static void build_cnn(mb *b, cnn *p, uint64_t seed)
{
    rng r = { seed };
    for (int k = 0; k < CO * 9; k++) p->w1[k] = runi(&r);
    for (int k = 0; k < CO; k++) p->b1[k] = 0.1f * runi(&r);
    for (int k = 0; k < NCLS * FEAT; k++) p->w2[k] = 0.3f * runi(&r);
    for (int k = 0; k < NCLS; k++) p->b2[k] = runi(&r);
    mb_init(b, 13);
    mb_input(b, "image", 4, (int64_t[]){ -1, 1, HW, HW });
    mb_output(b, "logits", 2, (int64_t[]){ -1, NCLS });
    mb_init_f(b, "w1", 4, (int64_t[]){ CO, 1, 3, 3 }, p->w1);
    mb_init_f(b, "b1", 1, (int64_t[]){ CO }, p->b1);
    mb_init_f(b, "w2", 2, (int64_t[]){ NCLS, FEAT }, p->w2);
    mb_init_f(b, "b2", 1, (int64_t[]){ NCLS }, p->b2);
    Onnx__NodeProto *n = mb_node(b, "Conv", "conv1", L("image", "w1", "b1"), L("c1"));
    mb_attr_ints(b, n, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    mb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){ 3, 3 });
    mb_node(b, "Relu", "relu1", L("c1"), L("r1"));
    n = mb_node(b, "MaxPool", NULL, L("r1"), L("p1"));
    mb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){ 2, 2 });
    mb_attr_ints(b, n, "strides", 2, (int64_t[]){ 2, 2 });
    mb_node(b, "Flatten", "flat", L("p1"), L("f1"));
    n = mb_node(b, "Gemm", "fc", L("f1", "w2", "b2"), L("logits"));
    mb_attr_i(b, n, "transB", 1);
}

static void ref_cnn(const cnn *p, const float *x, double *y)
{
    double c[CO][HW][HW], pool[FEAT];
    for (int o = 0; o < CO; o++)
        for (int i = 0; i < HW; i++)
            for (int j = 0; j < HW; j++) {
                double s = p->b1[o];
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) {
                        int ii = i + u - 1, jj = j + v - 1;
                        if (ii >= 0 && ii < HW && jj >= 0 && jj < HW)
                            s += (double)p->w1[o * 9 + u * 3 + v] * x[ii * HW + jj];
                    }
                c[o][i][j] = s > 0 ? s : 0;
            }
    for (int o = 0; o < CO; o++)
        for (int i = 0; i < PH; i++)
            for (int j = 0; j < PH; j++) {
                double m = c[o][2 * i][2 * j];
                for (int u = 0; u < 2; u++)
                    for (int v = 0; v < 2; v++)
                        if (c[o][2 * i + u][2 * j + v] > m) m = c[o][2 * i + u][2 * j + v];
                pool[(o * PH + i) * PH + j] = m;
            }
    for (int k = 0; k < NCLS; k++) {
        double s = p->b2[k];
        for (int f = 0; f < FEAT; f++) s += (double)p->w2[k * FEAT + f] * pool[f];
        y[k] = s;
    }
}

static void test_batched_cnn(void **state)
{
    (void)state;
    mb b;
    cnn p;
    qt_graph *g;
    qt_error err;
    build_cnn(&b, &p, 42);
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    /* names: kept, the unnamed MaxPool is <OpType>_<index> */
    const char *want[] = { "image", "conv1", "relu1", "MaxPool_2", "flat", "fc" };
    assert_int_equal(qt_graph_nodes(g), 6);
    for (int k = 0; k < 6; k++) assert_string_equal(qt_graph_node_name(g, k), want[k]);
    assert_int_equal(qt_graph_node_op(g, 1), QT_OP_CONV);
    assert_int_equal(qt_graph_node_op(g, 5), QT_OP_DENSE);
    assert_int_equal(qt_graph_output(g), 5);
    int d[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, 0, d), 3);
    assert_int_equal(d[0], 1);
    assert_int_equal(d[1], HW);
    assert_int_equal(qt_graph_node_dims(g, 5, d), 1);
    assert_int_equal(d[0], NCLS);
    for (int n = 1; n <= 7; n += 3) {                 /* batches of 1, 4, 7 */
        rng r = { (uint64_t)n };
        float x[7 * HW * HW];
        for (int k = 0; k < n * HW * HW; k++) x[k] = runi(&r);
        const qt_tensor *y;
        if (qt_forward(g, NULL, x, n, 0, &y, &err)) fail_msg("forward: %s", err.text);
        assert_int_equal(y->shape[0], n);
        assert_int_equal(y->size, (size_t)n * NCLS);
        for (int s = 0; s < n; s++) {
            double ref[NCLS];
            ref_cnn(&p, x + s * HW * HW, ref);
            for (int k = 0; k < NCLS; k++)
                if (fabs(y->data[s * NCLS + k] - ref[k]) > 1e-4 * (1 + fabs(ref[k])))
                    fail_msg("batch %d sample %d logit %d: %g vs %g", n, s, k,
                             (double)y->data[s * NCLS + k], ref[k]);
        }
    }
    qt_graph_free(g);
}

/* batched: Conv 1x1 -> BatchNormalization -> LeakyRelu -> GlobalAveragePool
 * -> Flatten -> Softmax; the channel axes are per-sample axis 0 */
static void test_batched_bn_gap(void **state)
{
    (void)state;
    enum { C = 2, K = 3, H = 3 };
    mb b;
    qt_graph *g;
    qt_error err;
    rng r = { 7 };
    float w[K * C], sc[K], bi[K], mu[K], var[K];
    for (int k = 0; k < K * C; k++) w[k] = runi(&r);
    for (int k = 0; k < K; k++) {
        sc[k] = 1 + 0.5f * runi(&r);
        bi[k] = runi(&r);
        mu[k] = 0.3f * runi(&r);
        var[k] = 1.5f + runi(&r);
    }
    mb_init(&b, 13);
    mb_input(&b, "x", 4, (int64_t[]){ -1, C, H, H });
    mb_output(&b, "p", 2, (int64_t[]){ -1, K });
    mb_init_f(&b, "w", 4, (int64_t[]){ K, C, 1, 1 }, w);
    mb_init_f(&b, "sc", 1, (int64_t[]){ K }, sc);
    mb_init_f(&b, "bi", 1, (int64_t[]){ K }, bi);
    mb_init_f(&b, "mu", 1, (int64_t[]){ K }, mu);
    mb_init_f(&b, "var", 1, (int64_t[]){ K }, var);
    mb_node(&b, "Conv", "cv", L("x", "w"), L("c"));
    Onnx__NodeProto *n = mb_node(&b, "BatchNormalization", "bn", L("c", "sc", "bi", "mu", "var"), L("n"));
    mb_attr_f(&b, n, "epsilon", 1e-3f);
    n = mb_node(&b, "LeakyRelu", "lr", L("n"), L("l"));
    mb_attr_f(&b, n, "alpha", 0.2f);
    mb_node(&b, "GlobalAveragePool", "gap", L("l"), L("a"));
    mb_node(&b, "Flatten", "fl", L("a"), L("f"));
    n = mb_node(&b, "Softmax", "sm", L("f"), L("p"));
    mb_attr_i(&b, n, "axis", 1);
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    assert_int_equal(qt_graph_node_attr(g, 2)->axis, 0);     /* bn */
    assert_int_equal(qt_graph_node_attr(g, 4)->axis, 0);     /* gap */
    int d[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, 4, d), 3);        /* [K,1,1] */
    assert_int_equal(d[0], K);
    float x[5 * C * H * H];
    for (int k = 0; k < 5 * C * H * H; k++) x[k] = 2 * runi(&r);
    const qt_tensor *y;
    if (qt_forward(g, NULL, x, 5, 0, &y, &err)) fail_msg("forward: %s", err.text);
    for (int s = 0; s < 5; s++) {
        double a[K], mx = -1e300, sum = 0;
        for (int k = 0; k < K; k++) {
            a[k] = 0;
            for (int p = 0; p < H * H; p++) {
                double v = 0;
                for (int c = 0; c < C; c++) v += (double)w[k * C + c] * x[(s * C + c) * H * H + p];
                v = (v - mu[k]) / sqrt((double)var[k] + 1e-3) * sc[k] + bi[k];
                a[k] += (v > 0 ? v : 0.2 * v) / (H * H);
            }
            if (a[k] > mx) mx = a[k];
        }
        for (int k = 0; k < K; k++) sum += exp(a[k] - mx);
        for (int k = 0; k < K; k++)
            assert_float_equal(y->data[s * K + k], exp(a[k] - mx) / sum, 1e-5);
    }
    qt_graph_free(g);
}

/* attribute forms of older opsets, whole mode: Softmax opset 11 (from the
 * axis on, as one), Unsqueeze/Squeeze axes attributes; opset 7: Clip
 * min/max, Dropout ratio, Pad pads/value/mode attributes */
static void test_legacy_opsets(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    qt_onnx_opts o = { .whole = 1 };
    float x[12];
    for (int k = 0; k < 12; k++) x[k] = 0.25f * (float)k - 1.0f;
    mb_init(&b, 11);
    mb_input(&b, "x", 3, (int64_t[]){ 2, 2, 3 });
    mb_output(&b, "y", 3, (int64_t[]){ 2, 2, 3 });
    Onnx__NodeProto *n = mb_node(&b, "Softmax", "sm", L("x"), L("s"));
    mb_attr_i(&b, n, "axis", 1);
    n = mb_node(&b, "Unsqueeze", "us", L("s"), L("u"));
    mb_attr_ints(&b, n, "axes", 2, (int64_t[]){ 0, -1 });
    n = mb_node(&b, "Squeeze", "sq", L("u"), L("y"));
    mb_attr_ints(&b, n, "axes", 2, (int64_t[]){ 0, 4 });
    int rc = mb_load(&b, &o, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    assert_int_equal(qt_graph_node_attr(g, 1)->mode, 1);
    int d[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, 2, d), 5);        /* [1,2,2,3,1] */
    const qt_tensor *y;
    if (qt_forward(g, NULL, x, 1, 0, &y, &err)) fail_msg("forward: %s", err.text);
    for (int row = 0; row < 2; row++) {
        double sum = 0;
        for (int k = 0; k < 6; k++) sum += exp(x[row * 6 + k]);
        for (int k = 0; k < 6; k++)
            assert_float_equal(y->data[row * 6 + k], exp(x[row * 6 + k]) / sum, 1e-6);
    }
    qt_graph_free(g);

    mb_init(&b, 7);
    mb_input(&b, "x", 2, (int64_t[]){ 3, 4 });
    mb_output(&b, "y", 2, (int64_t[]){ 4, 7 });
    n = mb_node(&b, "Clip", "cl", L("x"), L("c"));
    mb_attr_f(&b, n, "min", -0.5f);
    mb_attr_f(&b, n, "max", 0.75f);
    n = mb_node(&b, "Dropout", "dr", L("c"), L("dd"));
    mb_attr_f(&b, n, "ratio", 0.25f);
    n = mb_node(&b, "Pad", "pd", L("dd"), L("y"));
    mb_attr_ints(&b, n, "pads", 4, (int64_t[]){ 0, 1, 1, 2 });
    mb_attr_s(&b, n, "mode", "edge");
    rc = mb_load(&b, &o, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    assert_float_equal(qt_graph_node_attr(g, 2)->alpha, 0.25f, 0);
    if (qt_forward(g, NULL, x, 1, 0, &y, &err)) fail_msg("forward: %s", err.text);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 7; j++) {
            int si = i < 3 ? i : 2, sj = j < 1 ? 0 : j > 4 ? 3 : j - 1;
            float v = x[si * 4 + sj];
            v = v < -0.5f ? -0.5f : v > 0.75f ? 0.75f : v;
            assert_float_equal(y->data[i * 7 + j], v, 0);
        }
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

static void test_names(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    char long1[120], long2[120];
    memset(long1, 'a', 100);
    long1[100] = 0;
    memcpy(long2, long1, 101);
    long2[99] = 'b';
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 5 });
    mb_output(&b, "y", 2, (int64_t[]){ -1, 5 });
    mb_node(&b, "Relu", "dup", L("x"), L("t1"));
    mb_node(&b, "Relu", "dup", L("t1"), L("t2"));
    mb_node(&b, "Relu", long1, L("t2"), L("t3"));
    mb_node(&b, "Relu", long2, L("t3"), L("t4"));
    mb_node(&b, "Relu", "has space \"q\"", L("t4"), L("t5"));
    mb_node(&b, "Relu", "Relu_6", L("t5"), L("t6"));
    mb_node(&b, "Tanh", NULL, L("t6"), L("t7"));
    mb_node(&b, "Relu", NULL, L("t7"), L("y"));       /* Relu_7 */
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    assert_int_equal(qt_graph_nodes(g), 9);
    assert_string_equal(qt_graph_node_name(g, 1), "dup");
    assert_string_equal(qt_graph_node_name(g, 2), "dup_2");
    const char *l1 = qt_graph_node_name(g, 3), *l2 = qt_graph_node_name(g, 4);
    assert_int_equal(strlen(l1), QT_NAME_MAX - 1);
    assert_int_equal(strlen(l2), QT_NAME_MAX - 1);
    assert_string_not_equal(l1, l2);
    assert_memory_equal(l1, long1, 50);                /* a prefix, then a hash */
    assert_non_null(strchr(l1, '~'));
    assert_string_equal(qt_graph_node_name(g, 5), "has_space__q_");
    assert_string_equal(qt_graph_node_name(g, 6), "Relu_6");
    assert_string_equal(qt_graph_node_name(g, 7), "Tanh_6");
    assert_string_equal(qt_graph_node_name(g, 8), "Relu_7");
    for (int k = 0; k < 9; k++) assert_int_equal(qt_graph_find(g, qt_graph_node_name(g, k)), k);
    qt_graph_free(g);

    /* an unnamed node whose generated name is taken gets a suffix */
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 5 });
    mb_output(&b, "y", 2, (int64_t[]){ -1, 5 });
    mb_node(&b, "Relu", "Relu_1", L("x"), L("t1"));
    mb_node(&b, "Relu", NULL, L("t1"), L("y"));
    rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    assert_string_equal(qt_graph_node_name(g, 2), "Relu_1_2");
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Mapping details                                                           */
/* ------------------------------------------------------------------------ */

/* MatMul + Add(1-D constant) becomes one dense node with a bias, named
 * after the MatMul; a constant operand in batched mode drops its dim 0 */
static void test_matmul_bias_and_consts(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    float W[3 * 2] = { 1, 2, 3, 4, 5, 6 }, bias[2] = { 0.5f, -1 }, sc[2] = { 2, 3 };
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ 8, 3 });             /* a static batch of 8 */
    mb_output(&b, "y", 2, (int64_t[]){ 8, 2 });
    mb_init_f(&b, "W", 2, (int64_t[]){ 3, 2 }, W);
    mb_init_f(&b, "bias", 1, (int64_t[]){ 2 }, bias);
    mb_init_f(&b, "scale", 2, (int64_t[]){ 1, 2 }, sc);
    mb_node(&b, "MatMul", "mm", L("x", "W"), L("t"));
    mb_node(&b, "Add", "addb", L("t", "bias"), L("u"));
    mb_node(&b, "Mul", "mul", L("u", "scale"), L("y"));
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    /* input, dense "mm" (with the bias), const "scale", mul */
    assert_int_equal(qt_graph_nodes(g), 4);
    assert_string_equal(qt_graph_node_name(g, 1), "mm");
    assert_int_equal(qt_graph_node_op(g, 1), QT_OP_DENSE);
    assert_non_null(qt_graph_param(g, 1, 1));
    assert_string_equal(qt_graph_node_name(g, 2), "scale");
    assert_int_equal(qt_graph_node_op(g, 2), QT_OP_CONST);
    int d[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, 2, d), 1);      /* [1,2] without dim 0 */
    float x[2 * 3] = { 1, 0, -1, 0.5f, 2, 1 };
    const qt_tensor *y;
    if (qt_forward(g, NULL, x, 2, 0, &y, &err)) fail_msg("forward: %s", err.text);
    for (int s = 0; s < 2; s++)
        for (int o = 0; o < 2; o++) {
            double v = bias[o];
            for (int k = 0; k < 3; k++) v += x[s * 3 + k] * W[k * 2 + o];
            assert_float_equal(y->data[s * 2 + o], v * sc[o], 1e-5);
        }
    qt_graph_free(g);

    /* a constant of full rank whose dim 0 is not 1 cannot meet a batch */
    float c2[4] = { 1, 2, 3, 4 };
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 2 });
    mb_output(&b, "y", 2, (int64_t[]){ 2, 2 });
    mb_init_f(&b, "c2", 2, (int64_t[]){ 2, 2 }, c2);
    mb_node(&b, "Add", "add", L("x", "c2"), L("y"));
    rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ENOTSUP, &err, "'add'", "batch");
}

/* constants on either side of Sub/Div, scalars (per-sample rank 0) and a
 * Constant node; constant-only arithmetic is folded at import */
static void test_const_operands(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    float two = 2, four = 4, c3[3] = { 1, -2, 0.5f };
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 3 });
    mb_output(&b, "y", 2, (int64_t[]){ -1, 3 });
    mb_init_f(&b, "two", 0, (int64_t[]){ 0 }, &two);
    mb_init_f(&b, "four", 0, (int64_t[]){ 0 }, &four);
    mb_init_f(&b, "c3", 1, (int64_t[]){ 3 }, c3);
    Onnx__NodeProto *n = mb_node(&b, "Constant", "k", L(""), L("half"));
    n->n_input = 0;
    mb_attr_f(&b, n, "value_float", 0.5f);
    mb_node(&b, "Mul", "eight", L("two", "four"), L("eight"));     /* folded: 8 */
    mb_node(&b, "Sub", "sub", L("two", "x"), L("t1"));              /* 2 - x */
    mb_node(&b, "Div", "div", L("t1", "eight"), L("t2"));           /* / 8 */
    mb_node(&b, "Mul", "mul", L("t2", "c3"), L("t3"));
    mb_node(&b, "Add", "add", L("half", "t3"), L("y"));
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    if (rc) fail_msg("load: %s", err.text);
    int id = qt_graph_find(g, "eight"), d[QT_MAX_RANK];
    assert_true(id > 0);
    assert_int_equal(qt_graph_node_op(g, id), QT_OP_CONST);
    assert_int_equal(qt_graph_node_dims(g, id, d), 0);
    assert_int_equal(qt_graph_find(g, "four"), -1);             /* folded away */
    float x[2 * 3] = { 1, 2, 3, -4, 5, 0.25f };
    const qt_tensor *y;
    if (qt_forward(g, NULL, x, 2, 0, &y, &err)) fail_msg("forward: %s", err.text);
    for (int k = 0; k < 6; k++)
        assert_float_equal(y->data[k], 0.5 + (2.0 - x[k]) / 8.0 * c3[k % 3], 1e-6);
    qt_graph_free(g);
}

/* Gemm with a full [M,N] C in whole mode: dense + const + add ".bias";
 * transA: a ".t" transpose first */
static void test_gemm_full_c(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    float B[3 * 2] = { 1, -1, 2, 0.5f, 0, 3 }, C[2 * 2] = { 1, 2, 3, 4 };
    mb_init(&b, 13);
    mb_input(&b, "a", 2, (int64_t[]){ 3, 2 });             /* A^T: transA */
    mb_output(&b, "y", 2, (int64_t[]){ 2, 2 });
    mb_init_f(&b, "B", 2, (int64_t[]){ 3, 2 }, B);
    mb_init_f(&b, "C", 2, (int64_t[]){ 2, 2 }, C);
    Onnx__NodeProto *n = mb_node(&b, "Gemm", "g", L("a", "B", "C"), L("y"));
    mb_attr_i(&b, n, "transA", 1);
    mb_attr_f(&b, n, "alpha", 2.0f);
    mb_attr_f(&b, n, "beta", 0.5f);
    qt_onnx_opts o = { .whole = 1 };
    int rc = mb_load(&b, &o, &g, &err);
    if (rc) fail_msg("load: %s", err.text);
    assert_string_equal(qt_graph_node_name(g, 1), "g.t");
    assert_string_equal(qt_graph_node_name(g, 2), "g");
    assert_string_equal(qt_graph_node_name(g, 3), "C");
    assert_string_equal(qt_graph_node_name(g, 4), "g.bias");
    float a[3 * 2] = { 1, 2, 3, 4, 5, 6 };                 /* A = a^T is 2x3 */
    const qt_tensor *y;
    if (qt_forward(g, NULL, a, 1, 0, &y, &err)) fail_msg("forward: %s", err.text);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double v = 0.5 * C[i * 2 + j];
            for (int k = 0; k < 3; k++) v += 2.0 * a[k * 2 + i] * B[k * 2 + j];
            assert_float_equal(y->data[i * 2 + j], v, 1e-5);
        }
    qt_graph_free(g);
    /* batched mode: transA would move the batch */
    rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ENOTSUP, &err, "'g'", "transA");
}

/* bindings: input 1 bound as a constant; wrong counts refused */
static void test_binds(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ 2, 3 });
    mb_input(&b, "s", 1, (int64_t[]){ 6 });
    mb_output(&b, "y", 2, (int64_t[]){ 3, 2 });
    mb_init_i64(&b, "shape", 2, (int64_t[]){ 3, 2 });
    mb_node(&b, "Add", "add", L("x", "x"), L("t"));
    mb_node(&b, "Reshape", "rs", L("t", "shape"), L("y"));
    (void)0;
    /* two unbound inputs */
    qt_onnx_opts o = { .whole = 1 };
    int rc = mb_load(&b, &o, &g, &err);
    expect_error(rc, QT_EINVAL, &err, "'x'", "'s'");
    /* bind s (unused by the nodes, but a graph input) */
    int64_t sd[1] = { 6 };
    qt_onnx_tensor t;
    float sf[6] = { 0 };
    memset(&t, 0, sizeof t);
    t.dtype = QT_ONNX_FLOAT;
    t.ndim = 1;
    t.dims[0] = sd[0];
    t.count = 6;
    t.f = sf;
    const qt_onnx_tensor *binds[2] = { NULL, &t };
    o.binds = binds;
    o.n_binds = 2;
    rc = mb_load(&b, &o, &g, &err);
    if (rc) fail_msg("load: %s", err.text);
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    const qt_tensor *y;
    if (qt_forward(g, NULL, x, 1, 0, &y, &err)) fail_msg("forward: %s", err.text);
    int d[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, qt_graph_output(g), d), 2);
    assert_int_equal(d[0], 3);
    for (int k = 0; k < 6; k++) assert_float_equal(y->data[k], 2 * x[k], 0);
    qt_graph_free(g);
    /* everything bound */
    qt_onnx_tensor tx = t;
    tx.ndim = 2;
    tx.dims[0] = 2;
    tx.dims[1] = 3;
    const qt_onnx_tensor *all[2] = { &tx, &t };
    o.binds = all;
    rc = mb_load(&b, &o, &g, &err);
    expect_error(rc, QT_EINVAL, &err, "unbound", NULL);
    /* a binding whose dims disagree with the declaration */
    t.dims[0] = 5;
    t.count = 5;
    o.binds = binds;
    rc = mb_load(&b, &o, &g, &err);
    expect_error(rc, QT_EINVAL, &err, "'s'", NULL);
    mb_free(&b);
}

/* the output is a constant: nothing to run */
static void test_constant_output(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    float c[2] = { 1, 2 };
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 2 });
    mb_output(&b, "y", 1, (int64_t[]){ 2 });
    mb_output(&b, "z", 2, (int64_t[]){ -1, 2 });
    mb_init_f(&b, "c", 1, (int64_t[]){ 2 }, c);
    mb_node(&b, "Add", "cc", L("c", "c"), L("y"));        /* folded */
    mb_node(&b, "Relu", "r", L("x"), L("z"));
    int rc = mb_load(&b, NULL, &g, &err);
    expect_error(rc, QT_ENOTSUP, &err, "'y'", "constant");
    qt_onnx_opts o = { .output = 1 };
    rc = mb_load(&b, &o, &g, &err);
    if (rc) fail_msg("load: %s", err.text);
    assert_string_equal(qt_graph_node_name(g, qt_graph_output(g)), "r");
    qt_graph_free(g);
    o.output = 2;
    rc = mb_load(&b, &o, &g, &err);
    expect_error(rc, QT_EINVAL, &err, "output 2", NULL);
    mb_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Errors naming op and node                                                 */
/* ------------------------------------------------------------------------ */

static void test_unsupported_op(void **state)
{
    (void)state;
    mb b;
    qt_graph *g = (qt_graph *)&b;
    qt_error err;
    mb_init(&b, 13);
    mb_input(&b, "x", 4, (int64_t[]){ -1, 1, 4, 4 });
    mb_output(&b, "y", 4, (int64_t[]){ -1, 1, 4, 4 });
    mb_node(&b, "Relu", "r", L("x"), L("t"));
    mb_node(&b, "ConvTranspose", "conv7", L("t"), L("y"));
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ENOTSUP, &err, "node 'conv7' (ConvTranspose)", "not supported");
    assert_non_null(strstr(err.text, "Conv"));
    assert_null(g);
}

static void test_bad_auto_pad(void **state)
{
    (void)state;
    mb b;
    cnn p;
    qt_graph *g;
    qt_error err;
    build_cnn(&b, &p, 1);
    mb_attr_s(&b, b.nodes[0], "auto_pad", "FOO");
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ENOTSUP, &err, "'conv1' (Conv)", "auto_pad 'FOO'");
}

static void test_conv_weights_not_const(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    float w[9] = { 0 };
    mb_init(&b, 13);
    mb_input(&b, "x", 4, (int64_t[]){ -1, 1, 4, 4 });
    mb_output(&b, "y", 4, (int64_t[]){ -1, 1, 2, 2 });
    mb_init_f(&b, "w0", 4, (int64_t[]){ 1, 1, 3, 3 }, w);
    mb_node(&b, "Relu", "wr", L("w0"), L("w"));            /* computed weights */
    mb_node(&b, "Conv", "cv", L("x", "w"), L("y"));
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ENOTSUP, &err, "'cv' (Conv)", "weights must be an initializer");
}

/* ops that would act across dim 0 in batched mode */
static void across_batch(const char *op, int64_t axis_or_perm, const char *want)
{
    mb b;
    qt_graph *g;
    qt_error err;
    mb_init(&b, 13);
    mb_input(&b, "x", 3, (int64_t[]){ -1, 3, 4 });
    mb_output(&b, "y", 3, (int64_t[]){ -1, 3, 4 });
    Onnx__NodeProto *n;
    if (!strcmp(op, "Concat")) {
        n = mb_node(&b, op, "cat", L("x", "x"), L("y"));
        mb_attr_i(&b, n, "axis", axis_or_perm);
    } else if (!strcmp(op, "Transpose")) {
        n = mb_node(&b, op, "cat", L("x"), L("y"));
        mb_attr_ints(&b, n, "perm", 3, (int64_t[]){ 1, 0, 2 });
    } else if (!strcmp(op, "Reshape")) {
        mb_init_i64(&b, "shape", 2, (int64_t[]){ 3, -1 });
        n = mb_node(&b, op, "cat", L("x", "shape"), L("y"));
    } else if (!strcmp(op, "Unsqueeze")) {
        mb_init_i64(&b, "axes", 1, (int64_t[]){ 0 });
        n = mb_node(&b, op, "cat", L("x", "axes"), L("y"));
    } else {
        n = mb_node(&b, op, "cat", L("x"), L("y"));
        mb_attr_i(&b, n, "axis", axis_or_perm);
    }
    int rc = mb_load(&b, NULL, &g, &err);
    expect_error(rc, QT_ENOTSUP, &err, "'cat'", want);
    /* whole mode accepts them */
    qt_onnx_opts o = { .whole = 1 };
    b.ins[0] = mb_vi(&b, "x", 1, 3, (int64_t[]){ 2, 3, 4 });
    b.outs[0]->type->tensor_type->shape = NULL;       /* the output's dims differ */
    rc = mb_load(&b, &o, &g, &err);
    if (rc) fail_msg("%s in whole mode: %s", op, err.text);
    qt_graph_free(g);
    mb_free(&b);
}

static void test_across_batch(void **state)
{
    (void)state;
    across_batch("Concat", 0, "batch");
    across_batch("Concat", -3, "batch");
    across_batch("Softmax", 0, "batch");
    across_batch("LogSoftmax", -3, "batch");
    across_batch("Flatten", 0, "batch");
    across_batch("Transpose", 0, "batch");
    across_batch("Reshape", 0, "batch");
    across_batch("Unsqueeze", 0, "batch");
}

static void test_opsets(void **state)
{
    (void)state;
    mb b;
    cnn p;
    qt_graph *g;
    qt_error err;
    build_cnn(&b, &p, 3);
    b.os.version = 6;
    int rc = mb_load(&b, NULL, &g, &err);
    expect_error(rc, QT_ENOTSUP, &err, "opset 6", NULL);
    b.os.version = 18;
    rc = mb_load(&b, NULL, &g, &err);
    expect_error(rc, QT_ENOTSUP, &err, "opset 18", NULL);
    b.os.version = 7;
    rc = mb_load(&b, NULL, &g, &err);
    if (rc) fail_msg("opset 7: %s", err.text);
    qt_graph_free(g);
    b.m.n_opset_import = 0;
    rc = mb_load(&b, NULL, &g, &err);
    expect_error(rc, QT_ENOTSUP, &err, "opset", NULL);
    mb_free(&b);
}

static void test_undefined_tensor(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 2 });
    mb_output(&b, "y", 2, (int64_t[]){ -1, 2 });
    mb_node(&b, "Add", "late", L("x", "z"), L("y"));
    mb_node(&b, "Relu", "rz", L("x"), L("z"));
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ECORRUPT, &err, "'late' (Add)", "'z'");
}

/* a declared output shape the model does not compute */
static void test_value_info_mismatch(void **state)
{
    (void)state;
    mb b;
    qt_graph *g;
    qt_error err;
    mb_init(&b, 13);
    mb_input(&b, "x", 2, (int64_t[]){ -1, 2 });
    mb_output(&b, "y", 2, (int64_t[]){ -1, 3 });
    mb_node(&b, "Relu", "r", L("x"), L("y"));
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_EINVAL, &err, "'r' (Relu)", "Nx3");
}

/* ------------------------------------------------------------------------ */
/* Robustness                                                                */
/* ------------------------------------------------------------------------ */

static void test_truncated(void **state)
{
    (void)state;
    mb b;
    cnn p;
    qt_graph *g;
    qt_error err;
    size_t len;
    build_cnn(&b, &p, 5);
    uint8_t *buf = mb_pack(&b, &len);
    mb_free(&b);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);          /* exact size: ASan sees overreads */
        memcpy(cut, buf, n);
        int rc = qt_onnx_load_mem(cut, n, NULL, &g, &err);
        free(cut);
        if (rc == QT_OK) fail_msg("prefix of %zu/%zu bytes loaded", n, len);
        assert_null(g);
        assert_true(err.text[0] != 0);
    }
    assert_int_equal(qt_onnx_load_mem(buf, len, NULL, &g, &err), QT_OK);
    qt_graph_free(g);
    free(buf);
}

static int fuzz(const uint8_t *buf, size_t len, const qt_onnx_opts *o, int iters, uint64_t seed)
{
    rng r = { seed };
    int loaded = 0;
    uint8_t *m = malloc(len);
    for (int it = 0; it < iters; it++) {
        memcpy(m, buf, len);
        int flips = 1 + (int)(rnext(&r) % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rnext(&r) % len;
            uint64_t kind = rnext(&r) % 4;
            if (kind == 0) m[at] ^= (uint8_t)(1u << (rnext(&r) % 8));
            else if (kind == 1) m[at] = (uint8_t)rnext(&r);
            else if (kind == 2) m[at] = 0xff;
            else m[at] = 0;
        }
        qt_graph *g;
        qt_error err;
        int rc = qt_onnx_load_mem(m, len, o, &g, &err);
        if (rc == QT_OK) {
            loaded++;
            qt_graph_free(g);
        } else {
            assert_null(g);
            assert_true(rc < 0);
        }
    }
    free(m);
    return loaded;
}

static void test_byte_flips(void **state)
{
    (void)state;
    mb b;
    cnn p;
    size_t len;
    build_cnn(&b, &p, 9);
    uint8_t *buf = mb_pack(&b, &len);
    mb_free(&b);
    int ok = fuzz(buf, len, NULL, 3000, 1);
    print_message("built model: %d of 3000 mutated copies still load\n", ok);
    free(buf);

    /* a conformance model with weights as a bound input */
    qt_onnx_tensor *w;
    qt_error err;
    FILE *f = fopen(TESTDATA "/test_conv_with_strides_padding/model.onnx", "rb");
    if (!f) { print_message("libonnx-testdata missing: skipped\n"); return; }
    uint8_t *mbuf = malloc(1 << 16);
    len = fread(mbuf, 1, 1 << 16, f);
    fclose(f);
    if (qt_onnx_tensor_load(TESTDATA "/test_conv_with_strides_padding/test_data_set_0/input_1.pb",
                            &w, &err))
        fail_msg("%s", err.text);
    const qt_onnx_tensor *binds[2] = { NULL, w };
    qt_onnx_opts o = { .whole = 1, .binds = binds, .n_binds = 2 };
    qt_graph *g;
    if (qt_onnx_load_mem(mbuf, len, &o, &g, &err)) fail_msg("%s", err.text);
    qt_graph_free(g);
    ok = fuzz(mbuf, len, &o, 3000, 2);
    print_message("conformance model: %d of 3000 mutated copies still load\n", ok);
    qt_onnx_tensor_free(w);
    free(mbuf);
}

static void test_not_onnx(void **state)
{
    (void)state;
    qt_graph *g;
    qt_error err;
    const char *texts[] = { "hello, this is not an ONNX model at all\n", "", "\x08\x07",
                            "{\"json\": true}" };
    for (int k = 0; k < 4; k++) {
        int rc = qt_onnx_load_mem(texts[k], strlen(texts[k]), NULL, &g, &err);
        assert_true(rc == QT_ECORRUPT || rc == QT_ENOTSUP);
        assert_null(g);
    }
    char path[] = "/tmp/qt_onnx_notXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, texts[0], strlen(texts[0])), (ssize_t)strlen(texts[0]));
    close(fd);
    int rc = qt_onnx_load(path, NULL, &g, &err);
    assert_true(rc == QT_ECORRUPT || rc == QT_ENOTSUP);
    assert_non_null(strstr(err.text, path));
    qt_onnx_tensor *t;
    rc = qt_onnx_tensor_load(path, &t, &err);
    assert_true(rc == QT_ECORRUPT || rc == QT_ENOTSUP);
    assert_null(t);
    unlink(path);
}

static void test_missing_file(void **state)
{
    (void)state;
    qt_graph *g;
    qt_onnx_tensor *t;
    qt_error err;
    expect_error(qt_onnx_load("/nonexistent/dir/model.onnx", NULL, &g, &err), QT_ENOENT, &err,
                 "/nonexistent/dir/model.onnx", NULL);
    assert_null(g);
    expect_error(qt_onnx_tensor_load("/nonexistent/x.pb", &t, &err), QT_ENOENT, &err,
                 "/nonexistent/x.pb", NULL);
    assert_null(t);
}

/* ------------------------------------------------------------------------ */
/* TensorProto decoding                                                      */
/* ------------------------------------------------------------------------ */

/* pack tp to a temporary file and load it */
static int load_tp(Onnx__TensorProto *tp, qt_onnx_tensor **out, qt_error *err)
{
    size_t len = onnx__tensor_proto__get_packed_size(tp);
    uint8_t *buf = malloc(len + 1);
    onnx__tensor_proto__pack(tp, buf);
    char path[] = "/tmp/qt_onnx_tpXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(buf);
    int rc = qt_onnx_tensor_load(path, out, err);
    unlink(path);
    return rc;
}

typedef struct dcase {
    int      dtype;
    int      esz;
    int      n;
    uint64_t bits[4];       /* element bit patterns (raw, little-endian) */
    double   f[4];          /* expected float values */
    int64_t  i[4];          /* expected integers (int types) */
    int      is_int;
} dcase;

static const dcase dcases[] = {
    { QT_ONNX_FLOAT, 4, 3, { 0x3f800000, 0xc0490fdb, 0x7f800000 }, { 1.0, -3.14159274, INFINITY }, { 0 }, 0 },
    { QT_ONNX_DOUBLE, 8, 2, { 0x3fb999999999999aull, 0xc000000000000000ull }, { 0.1f, -2.0 }, { 0 }, 0 },
    { QT_ONNX_FLOAT16, 2, 4, { 0x3c00, 0xc000, 0x7c00, 0x0001 }, { 1.0, -2.0, INFINITY, 0x1p-24 }, { 0 }, 0 },
    { QT_ONNX_BFLOAT16, 2, 2, { 0x3f80, 0xc040 }, { 1.0, -3.0 }, { 0 }, 0 },
    { QT_ONNX_INT8, 1, 3, { 0xfd, 0x00, 0x7f }, { -3, 0, 127 }, { -3, 0, 127 }, 1 },
    { QT_ONNX_UINT8, 1, 2, { 0xfd, 0x07 }, { 253, 7 }, { 253, 7 }, 1 },
    { QT_ONNX_INT16, 2, 2, { 0x8000, 0x0102 }, { -32768, 258 }, { -32768, 258 }, 1 },
    { QT_ONNX_UINT16, 2, 2, { 0xffff, 0x0001 }, { 65535, 1 }, { 65535, 1 }, 1 },
    { QT_ONNX_INT32, 4, 2, { 0xfffffffe, 0x7fffffff }, { -2, 2147483647.0 }, { -2, 2147483647 }, 1 },
    { QT_ONNX_UINT32, 4, 2, { 0xfffffffe, 5 }, { 4294967294.0, 5 }, { 4294967294ll, 5 }, 1 },
    { QT_ONNX_INT64, 8, 2, { 0xfffffffffffffff0ull, 1ull << 40 }, { -16, 0x1p40 }, { -16, 1ll << 40 }, 1 },
    { QT_ONNX_UINT64, 8, 2, { 1ull << 63, 3 }, { 0x1p63, 3 }, { INT64_MIN, 3 }, 1 },
    { QT_ONNX_BOOL, 1, 3, { 1, 0, 1 }, { 1, 0, 1 }, { 1, 0, 1 }, 1 },
};

static void check_tensor(const dcase *c, const qt_onnx_tensor *t, const char *how)
{
    assert_int_equal(t->dtype, c->dtype);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->count, (size_t)c->n);
    for (int k = 0; k < c->n; k++) {
        if ((double)t->f[k] != (float)c->f[k])
            fail_msg("dtype %d (%s) value %d: %.9g, expected %.9g", c->dtype, how, k,
                     (double)t->f[k], c->f[k]);
        if (c->is_int) {
            assert_non_null(t->i);
            if (t->i[k] != c->i[k])
                fail_msg("dtype %d (%s) int %d: %lld, expected %lld", c->dtype, how, k,
                         (long long)t->i[k], (long long)c->i[k]);
        } else {
            assert_null(t->i);
        }
    }
}

static void test_tensor_dtypes(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof dcases / sizeof dcases[0]; ci++) {
        const dcase *c = &dcases[ci];
        qt_onnx_tensor *t;
        qt_error err;
        mb b;
        memset(&b, 0, sizeof b);
        int64_t d[1] = { c->n };
        /* raw_data */
        Onnx__TensorProto *tp = mb_tensor(&b, "t", c->dtype, 1, d);
        tp->has_raw_data = 1;
        tp->raw_data.len = (size_t)(c->n * c->esz);
        tp->raw_data.data = mb_alloc(&b, tp->raw_data.len + 16);
        for (int k = 0; k < c->n; k++)
            for (int j = 0; j < c->esz; j++)
                tp->raw_data.data[k * c->esz + j] = (uint8_t)(c->bits[k] >> (8 * j));
        if (load_tp(tp, &t, &err)) fail_msg("dtype %d raw: %s", c->dtype, err.text);
        assert_string_equal(t->name, "t");
        check_tensor(c, t, "raw_data");
        qt_onnx_tensor_free(t);
        /* a raw_data length that does not match */
        tp->raw_data.len -= 1;
        expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'t'", NULL);
        assert_null(t);
        tp->raw_data.len += (size_t)c->esz + 1;
        expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'t'", NULL);
        /* the typed field */
        tp = mb_tensor(&b, "t", c->dtype, 1, d);
        size_t *np = NULL;
        switch (c->dtype) {
        case QT_ONNX_FLOAT:
            tp->float_data = mb_alloc(&b, 8 * sizeof(float));
            for (int k = 0; k < c->n; k++) memcpy(&tp->float_data[k], &(uint32_t){ (uint32_t)c->bits[k] }, 4);
            np = &tp->n_float_data;
            break;
        case QT_ONNX_DOUBLE:
            tp->double_data = mb_alloc(&b, 8 * sizeof(double));
            for (int k = 0; k < c->n; k++) memcpy(&tp->double_data[k], &c->bits[k], 8);
            np = &tp->n_double_data;
            break;
        case QT_ONNX_INT64:
            tp->int64_data = mb_alloc(&b, 8 * sizeof(int64_t));
            for (int k = 0; k < c->n; k++) tp->int64_data[k] = (int64_t)c->bits[k];
            np = &tp->n_int64_data;
            break;
        case QT_ONNX_UINT32:
        case QT_ONNX_UINT64:
            tp->uint64_data = mb_alloc(&b, 8 * sizeof(uint64_t));
            for (int k = 0; k < c->n; k++) tp->uint64_data[k] = c->bits[k];
            np = &tp->n_uint64_data;
            break;
        default:      /* int32_data: values for ints and bool, bits for 16-bit floats */
            tp->int32_data = mb_alloc(&b, 8 * sizeof(int32_t));
            for (int k = 0; k < c->n; k++)
                tp->int32_data[k] = c->is_int ? (int32_t)c->i[k] : (int32_t)c->bits[k];
            np = &tp->n_int32_data;
        }
        *np = (size_t)c->n;
        if (load_tp(tp, &t, &err)) fail_msg("dtype %d typed: %s", c->dtype, err.text);
        check_tensor(c, t, "typed field");
        qt_onnx_tensor_free(t);
        *np = (size_t)c->n - 1;                      /* too few values */
        expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'t'", NULL);
        mb_free(&b);
    }
}

static void test_tensor_malformed(void **state)
{
    (void)state;
    mb b;
    qt_onnx_tensor *t;
    qt_error err;
    memset(&b, 0, sizeof b);
    float v[4] = { 1, 2, 3, 4 };
    /* negative dim */
    Onnx__TensorProto *tp = mb_tensor(&b, "neg", 1, 2, (int64_t[]){ 2, -2 });
    tp->n_float_data = 4;
    tp->float_data = v;
    expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'neg'", NULL);
    /* too many dims */
    tp = mb_tensor(&b, "deep", 1, 9, (int64_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 4 });
    tp->n_float_data = 4;
    tp->float_data = v;
    expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'deep'", NULL);
    /* absurd size */
    tp = mb_tensor(&b, "huge", 1, 3, (int64_t[]){ 1 << 20, 1 << 20, 1 << 20 });
    tp->n_float_data = 4;
    tp->float_data = v;
    expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'huge'", NULL);
    /* data for a different type */
    tp = mb_tensor(&b, "mixed", 7, 1, (int64_t[]){ 4 });
    tp->n_float_data = 4;
    tp->float_data = v;
    expect_error(load_tp(tp, &t, &err), QT_ECORRUPT, &err, "'mixed'", NULL);
    /* strings and complex are not supported */
    tp = mb_tensor(&b, "str", 8, 1, (int64_t[]){ 1 });
    expect_error(load_tp(tp, &t, &err), QT_ENOTSUP, &err, "'str'", "string");
    tp = mb_tensor(&b, "cplx", 14, 1, (int64_t[]){ 2 });
    tp->n_float_data = 4;
    tp->float_data = v;
    expect_error(load_tp(tp, &t, &err), QT_ENOTSUP, &err, "'cplx'", "complex64");
    /* external data */
    tp = mb_tensor(&b, "ext", 1, 1, (int64_t[]){ 4 });
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    expect_error(load_tp(tp, &t, &err), QT_ENOTSUP, &err, "'ext'", "external");
    /* an empty tensor and a scalar are fine */
    tp = mb_tensor(&b, "empty", 1, 2, (int64_t[]){ 3, 0 });
    if (load_tp(tp, &t, &err)) fail_msg("%s", err.text);
    assert_int_equal(t->count, 0);
    qt_onnx_tensor_free(t);
    tp = mb_tensor(&b, "scalar", 1, 0, (int64_t[]){ 0 });
    tp->n_float_data = 1;
    tp->float_data = v + 2;
    if (load_tp(tp, &t, &err)) fail_msg("%s", err.text);
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->count, 1);
    assert_float_equal(t->f[0], 3.0f, 0);
    qt_onnx_tensor_free(t);
    mb_free(&b);

    /* a malformed initializer inside a model names the tensor */
    cnn p;
    qt_graph *g;
    build_cnn(&b, &p, 11);
    b.inits[1]->n_float_data = 3;                      /* b1 has 4 channels */
    int rc = mb_load(&b, NULL, &g, &err);
    mb_free(&b);
    expect_error(rc, QT_ECORRUPT, &err, "'b1'", "3 values");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_cnn),
        cmocka_unit_test(test_batched_bn_gap),
        cmocka_unit_test(test_legacy_opsets),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_matmul_bias_and_consts),
        cmocka_unit_test(test_const_operands),
        cmocka_unit_test(test_gemm_full_c),
        cmocka_unit_test(test_binds),
        cmocka_unit_test(test_constant_output),
        cmocka_unit_test(test_unsupported_op),
        cmocka_unit_test(test_bad_auto_pad),
        cmocka_unit_test(test_conv_weights_not_const),
        cmocka_unit_test(test_across_batch),
        cmocka_unit_test(test_opsets),
        cmocka_unit_test(test_undefined_tensor),
        cmocka_unit_test(test_value_info_mismatch),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_not_onnx),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_tensor_dtypes),
        cmocka_unit_test(test_tensor_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
