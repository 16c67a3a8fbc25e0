/*
 * ops_basic.c -- element-wise and shape ops, dense and matmul.
 *
 * Each op is one function: SHAPE, FORWARD and BACKWARD together. For
 * weightless ops an intrinsic format (either semantics) quantizes the
 * result, as TensorQuant does for layers without an intrinsic path; add
 * and mul in EACH are bit-true instead: qt_add/qt_mul of the two operands
 * rounded to f (f's rounding, nearest-even if f is stochastic: engine.h),
 * element i with the intrinsic random word sample_base*per + i.
 */
#include "internal.h"

#include <cblas.h>
#include <stdlib.h>

#define N_CUR(c) ((size_t)(c)->g->n_cur)

static void same_shape(qt_opctx *c, const qt_node *x)
{
    qt__set_dims(c->n, x->rank, x->shape);
}

/* intrinsic on a weightless op: quantize the result */
static void intr_out(qt_opctx *c)
{
    if (c->q && c->q->fmt[QT_QP_INTRINSIC])
        qt__quantize_point(c->q, QT_QP_INTRINSIC, c->n->out.data,
                           N_CUR(c) * c->n->per, c->g->sample_base * c->n->per);
}

int qt__op_input(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) qt__set_dims(c->n, c->n->a.rank, c->n->a.shape);
    return QT_OK;
}

/* ---- element-wise unary ops: y = f(x), dx += dy * f'(x, y) ---- */

#define UNARY_OP(NAME, FWD, BWD)                                            \
int NAME(qt_opctx *c, int action)                                           \
{                                                                           \
    qt_node *n = c->n, *in = qt__in(c, 0);                                  \
    const qt_attr *a = &n->a;                                               \
    size_t m = N_CUR(c) * n->per;                                           \
    (void)a;                                                                \
    if (action == QT_ACT_SHAPE) { same_shape(c, in); return QT_OK; }        \
    if (action == QT_ACT_FORWARD) {                                         \
        const float *X = in->out.data;                                      \
        float *Y = n->out.data;                                             \
        _Pragma("omp parallel for schedule(static) if (m > 65536)")        \
        for (size_t i = 0; i < m; i++) { float x = X[i]; Y[i] = (FWD); }   \
        intr_out(c);                                                        \
        return QT_OK;                                                       \
    }                                                                       \
    const float *X = in->out.data, *Y = n->out.data, *D = n->gout.data;    \
    float *G = in->gout.data;                                               \
    _Pragma("omp parallel for schedule(static) if (m > 65536)")            \
    for (size_t i = 0; i < m; i++) {                                        \
        float x = X[i], y = Y[i], d = D[i];                                 \
        (void)x; (void)y;                                                   \
        G[i] += (BWD);                                                      \
    }                                                                       \
    return QT_OK;                                                           \
}

UNARY_OP(qt__op_relu, x > 0.0f ? x : 0.0f, x > 0.0f ? d : 0.0f)
UNARY_OP(qt__op_clip, x < a->lo ? a->lo : x > a->hi ? a->hi : x,
         (x >= a->lo && x <= a->hi) ? d : 0.0f)
UNARY_OP(qt__op_leaky, x > 0.0f ? x : a->alpha * x, x > 0.0f ? d : a->alpha * d)
UNARY_OP(qt__op_sigmoid, 1.0f / (1.0f + expf(-x)), d * y * (1.0f - y))
UNARY_OP(qt__op_tanh, tanhf(x), d * (1.0f - y * y))

/* identity on the data: flatten, reshape, and dropout outside training */
static int copy_through(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t m = N_CUR(c) * n->per;
    if (action == QT_ACT_FORWARD) {
        memcpy(n->out.data, in->out.data, m * sizeof(float));
        intr_out(c);
    } else {
        for (size_t i = 0; i < m; i++) in->gout.data[i] += n->gout.data[i];
    }
    return QT_OK;
}

/* dropout: inverted; a keep mask from the graph's seed and step */
int qt__op_dropout(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t m = N_CUR(c) * n->per;
    float p = n->a.alpha;
    if (action == QT_ACT_SHAPE) {
        if (!(p >= 0.0f && p < 1.0f))
            return qt__shape_fail(c, "drop probability %g must be in [0, 1)", (double)p);
        same_shape(c, in);
        return QT_OK;
    }
    if (!c->g->train || p == 0.0f)
        return copy_through(c, action);
    if (action == QT_ACT_FORWARD) {
        if (qt__scratch(c, &n->save, n->per)) return QT_ENOMEM;
        float scale = 1.0f / (1.0f - p);
        uint32_t thr = (uint32_t)((double)p * 4294967296.0);
        uint64_t stream = ((uint64_t)(n - c->g->nodes) << 32) ^ 0xd50;
        for (size_t i = 0; i < m; i++) {
            float keep = qt_rand32(c->g->seed, stream, c->g->step * (uint64_t)m + i) >= thr ? scale : 0.0f;
            n->save.data[i] = keep;
            n->out.data[i] = in->out.data[i] * keep;
        }
        intr_out(c);
        return QT_OK;
    }
    for (size_t i = 0; i < m; i++) in->gout.data[i] += n->gout.data[i] * n->save.data[i];
    return QT_OK;
}

/* softmax over the channels at each position of each sample (dense: over
 * the features); channel k of a position is k*P values further on */
int qt__op_softmax(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    if (action == QT_ACT_SHAPE) { same_shape(c, in); return QT_OK; }
    size_t N = N_CUR(c), F = n->per, C = (size_t)n->shape[0], P = F / C;
    if (action == QT_ACT_FORWARD) {
        for (size_t s = 0; s < N; s++)
            for (size_t p = 0; p < P; p++) {
                const float *x = in->out.data + s * F + p;
                float *y = n->out.data + s * F + p, mx = x[0];
                double sum = 0.0;
                for (size_t k = 1; k < C; k++) if (x[k * P] > mx) mx = x[k * P];
                for (size_t k = 0; k < C; k++) { y[k * P] = expf(x[k * P] - mx); sum += y[k * P]; }
                for (size_t k = 0; k < C; k++) y[k * P] = (float)(y[k * P] / sum);
            }
        intr_out(c);
        return QT_OK;
    }
    for (size_t s = 0; s < N; s++)
        for (size_t p = 0; p < P; p++) {
            const float *y = n->out.data + s * F + p, *d = n->gout.data + s * F + p;
            float *g = in->gout.data + s * F + p;
            double dot = 0.0;
            for (size_t k = 0; k < C; k++) dot += (double)d[k * P] * y[k * P];
            for (size_t k = 0; k < C; k++) g[k * P] += y[k * P] * (float)(d[k * P] - dot);
        }
    return QT_OK;
}

/* ---- binary element-wise ---- */

static int binary_shape(qt_opctx *c)
{
    qt_node *a = qt__in(c, 0), *b = qt__in(c, 1);
    if (memcmp(a->shape, b->shape, sizeof a->shape) != 0)
        return qt__shape_fail(c, "inputs '%s' %dx%dx%d and '%s' %dx%dx%d differ",
                              a->name, a->shape[0], a->shape[1], a->shape[2],
                              b->name, b->shape[0], b->shape[1], b->shape[2]);
    same_shape(c, a);
    return QT_OK;
}

/* add and mul share shape and forward; mul != 0 selects the product */
static int binary(qt_opctx *c, int action, int mul)
{
    qt_node *n = c->n, *a = qt__in(c, 0), *b = qt__in(c, 1);
    size_t m = N_CUR(c) * n->per;
    if (action == QT_ACT_SHAPE) return binary_shape(c);
    if (action == QT_ACT_FORWARD) {
        const qt_format *f = c->q ? c->q->fmt[QT_QP_INTRINSIC] : NULL;
        const float *A = a->out.data, *B = b->out.data;
        float *Y = n->out.data;
        if (f && c->q->mode == QT_INTR_EACH) {       /* bit-true on stored operands */
            uint64_t base = c->g->sample_base * n->per;
            for (size_t i = 0; i < m; i++) {
                float x = qt__operand(f, A[i]), y = qt__operand(f, B[i]);
                uint32_t r = qt__intr_rand(c->q, base + i);
                Y[i] = mul ? qt_mul(f, x, y, r) : qt_add(f, x, y, r);
            }
            return QT_OK;
        }
        if (mul) for (size_t i = 0; i < m; i++) Y[i] = A[i] * B[i];
        else     for (size_t i = 0; i < m; i++) Y[i] = A[i] + B[i];
        intr_out(c);
        return QT_OK;
    }
    for (size_t i = 0; i < m; i++) {
        float d = n->gout.data[i];
        a->gout.data[i] += mul ? d * b->out.data[i] : d;
        b->gout.data[i] += mul ? d * a->out.data[i] : d;
    }
    return QT_OK;
}

int qt__op_add(qt_opctx *c, int action) { return binary(c, action, 0); }
int qt__op_mul(qt_opctx *c, int action) { return binary(c, action, 1); }

/* concat along channels: inputs share H and W */
int qt__op_concat(qt_opctx *c, int action)
{
    qt_node *n = c->n;
    size_t N = N_CUR(c);
    if (action == QT_ACT_SHAPE) {
        qt_node *f = qt__in(c, 0);
        int C = 0;
        for (int i = 0; i < n->n_in; i++) {
            qt_node *x = qt__in(c, i);
            if (x->shape[1] != f->shape[1] || x->shape[2] != f->shape[2])
                return qt__shape_fail(c, "input '%s' is %dx%d, '%s' is %dx%d (H, W must agree)",
                                      f->name, f->shape[1], f->shape[2], x->name,
                                      x->shape[1], x->shape[2]);
            C += x->shape[0];
        }
        qt__set_chw(n, C, f->shape[1], f->shape[2]);
        return QT_OK;
    }
    for (size_t s = 0; s < N; s++) {
        size_t off = 0;
        for (int i = 0; i < n->n_in; i++) {
            qt_node *x = qt__in(c, i);
            float *dst = n->out.data + s * n->per + off, *gd = n->gout.data + s * n->per + off;
            if (action == QT_ACT_FORWARD)
                memcpy(dst, x->out.data + s * x->per, x->per * sizeof(float));
            else
                for (size_t k = 0; k < x->per; k++) x->gout.data[s * x->per + k] += gd[k];
            off += x->per;
        }
    }
    if (action == QT_ACT_FORWARD) intr_out(c);
    return QT_OK;
}

int qt__op_flatten(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) {
        qt_node *in = qt__in(c, 0);
        int d = (int)in->per;
        qt__set_dims(c->n, 1, &d);
        return QT_OK;
    }
    return copy_through(c, action);
}

int qt__op_reshape(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) {
        qt_node *in = qt__in(c, 0);
        int s[3];
        size_t p = 1;
        for (int i = 0; i < 3; i++) {
            s[i] = c->n->a.shape[i] > 0 ? c->n->a.shape[i] : 1;
            p *= (size_t)s[i];
        }
        if (p != in->per)
            return qt__shape_fail(c, "cannot reshape %zu values of '%s' to %dx%dx%d",
                                  in->per, in->name, s[0], s[1], s[2]);
        qt__set_dims(c->n, 3, s);
        return QT_OK;
    }
    return copy_through(c, action);
}

/* ------------------------------------------------------------------------ */
/* dense (y = x W^T + b, W [out, in]) and matmul (y = x B, B [in, out])      */
/* ------------------------------------------------------------------------ */

/* intrinsic dot products. each: operands (x, w, bias) in f with
 * qt__operand (f's rounding, nearest-even if f is stochastic: engine.h),
 * every product and partial sum rounded with its indexed random word in
 * order k = 0..K-1, then the bias add. final: products in f, summed in
 * float, quantized once, then + bias, quantized.
 * w is addressed w[o*ws_o + k*ws_k]. */
static void intrinsic_dot(qt_opctx *c, const float *X, size_t N, size_t K,
                          size_t O, const float *w, size_t ws_o, size_t ws_k,
                          const float *b, float *Y)
{
    const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];
    int each = c->q->mode == QT_INTR_EACH;
    uint64_t base = c->g->sample_base;
    #pragma omp parallel for schedule(static)
    for (size_t s = 0; s < N; s++) {
        for (size_t o = 0; o < O; o++) {
            uint64_t idx = ((base + s) * O + o) * (2 * K + 2);
            float acc = 0.0f;
            double facc = 0.0;
            for (size_t k = 0; k < K; k++) {
                float x = X[s * K + k], wv = w[o * ws_o + k * ws_k];
                if (each) {
                    x = qt__operand(f, x);
                    wv = qt__operand(f, wv);
                    float p = qt_mul(f, x, wv, qt__intr_rand(c->q, idx + 2 * k));
                    acc = qt_add(f, acc, p, qt__intr_rand(c->q, idx + 2 * k + 1));
                } else {
                    facc += (double)qt_quantize1(f, x * wv, qt__intr_rand(c->q, idx + 2 * k));
                }
            }
            if (!each) acc = qt_quantize1(f, (float)facc, qt__intr_rand(c->q, idx + 2 * K));
            if (b) {
                float bv = each ? qt__operand(f, b[o]) : b[o];
                acc = each ? qt_add(f, acc, bv, qt__intr_rand(c->q, idx + 2 * K + 1))
                           : qt_quantize1(f, acc + bv, qt__intr_rand(c->q, idx + 2 * K + 1));
            }
            Y[s * O + o] = acc;
        }
    }
}

static int linear(qt_opctx *c, int action, int transposed_w)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t N = N_CUR(c), K = in->per, O = (size_t)n->a.out;
    if (action == QT_ACT_SHAPE) {
        if (n->a.out < 1)
            return qt__shape_fail(c, "needs out >= 1 output features (got %d)", n->a.out);
        qt__set_dims(n, 1, &n->a.out);
        n->macs = (uint64_t)K * O;
        qt_tensor *w = &n->p[QT_P_W];
        w->ndim = 2;
        w->shape[0] = transposed_w ? (int)O : (int)K;
        w->shape[1] = transposed_w ? (int)K : (int)O;
        for (int i = 2; i < QT_MAX_DIMS; i++) w->shape[i] = 1;
        w->size = K * O;
        if (transposed_w && n->a.bias) {
            int o = (int)O;
            qt__param_dims(&n->p[QT_P_B], 1, &o);
        }
        return QT_OK;
    }
    const float *X = in->out.data, *W = c->w, *B = n->p[QT_P_B].size ? c->b : NULL;
    if (action == QT_ACT_FORWARD) {
        if (c->q && c->q->fmt[QT_QP_INTRINSIC]) {
            if (transposed_w) intrinsic_dot(c, X, N, K, O, W, K, 1, B, n->out.data);
            else intrinsic_dot(c, X, N, K, O, W, 1, O, NULL, n->out.data);
            return QT_OK;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed_w ? CblasTrans : CblasNoTrans,
                    (int)N, (int)O, (int)K, 1.0f, X, (int)K, W, transposed_w ? (int)K : (int)O,
                    0.0f, n->out.data, (int)O);
        if (B)
            for (size_t s = 0; s < N; s++)
                for (size_t o = 0; o < O; o++) n->out.data[s * O + o] += B[o];
        return QT_OK;
    }
    const float *D = n->gout.data;
    /* dx += dy W (dense) or dy B^T (matmul) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed_w ? CblasNoTrans : CblasTrans,
                (int)N, (int)K, (int)O, 1.0f, D, (int)O, W, transposed_w ? (int)K : (int)O,
                1.0f, in->gout.data, (int)K);
    /* dW += dy^T x (dense, [O,K]) or x^T dy (matmul, [K,O]) */
    if (transposed_w)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)O, (int)K, (int)N,
                    1.0f, D, (int)O, X, (int)K, 1.0f, n->gp[0].data, (int)K);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)O, (int)N,
                    1.0f, X, (int)K, D, (int)O, 1.0f, n->gp[0].data, (int)O);
    if (n->gp[1].size)
        for (size_t s = 0; s < N; s++)
            for (size_t o = 0; o < O; o++) n->gp[1].data[o] += D[s * O + o];
    return QT_OK;
}

int qt__op_dense(qt_opctx *c, int action) { return linear(c, action, 1); }
int qt__op_matmul(qt_opctx *c, int action) { return linear(c, action, 0); }
