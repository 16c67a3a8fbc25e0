/*
 * ops_basic.c -- element-wise unary ops, dropout, concat, flatten, reshape,
 * dense and matmul. (Broadcasting element-wise ops and softmax live in
 * ops_shape.c.)
 *
 * Each op is one function: SHAPE, FORWARD and BACKWARD together. For
 * weightless ops an intrinsic format (either semantics) quantizes the
 * result, as TensorQuant does for layers without an intrinsic path.
 */
#include "internal.h"

#include <cblas.h>
#include <stdlib.h>

#define N_CUR(c) ((size_t)(c)->g->n_cur)



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
    if (action == QT_ACT_SHAPE) { qt__same_shape(c, in); return QT_OK; }        \
    if (action == QT_ACT_FORWARD) {                                         \
        const float *X = in->out.data;                                      \
        float *Y = n->out.data;                                             \
        _Pragma("omp parallel for schedule(static) if (m > 65536)")        \
        for (size_t i = 0; i < m; i++) { float x = X[i]; Y[i] = (FWD); }   \
        qt__intr_out(c);                                                        \
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
        qt__intr_out(c);
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
        qt__same_shape(c, in);
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
        qt__intr_out(c);
        return QT_OK;
    }
    for (size_t i = 0; i < m; i++) in->gout.data[i] += n->gout.data[i] * n->save.data[i];
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* concat along a.axis; the other dims must agree. An input of lower rank   */
/* counts as having trailing 1s (the legacy [F] beside [F,1,1]); the output */
/* has the highest rank.                                                     */
/* ------------------------------------------------------------------------ */

int qt__op_concat(qt_opctx *c, int action)
{
    qt_node *n = c->n;
    int ax = n->a.axis;
    size_t N = N_CUR(c);
    if (action == QT_ACT_SHAPE) {
        int R = 0, d[QT_MAX_RANK];
        for (int i = 0; i < n->n_in; i++)
            if (qt__in(c, i)->rank > R) R = qt__in(c, i)->rank;
        qt_node *f = qt__in(c, 0);
        char sf[48], sx[48];
        if (ax < 0 || ax >= R)
            return qt__shape_fail(c, "axis %d is not below the rank %d of '%s' %s", ax, R,
                                  f->name, qt__dims_str(sf, sizeof sf, f->rank, f->shape));
        memcpy(d, f->shape, sizeof d);       /* 1 past its rank */
        d[ax] = 0;
        for (int i = 0; i < n->n_in; i++) {
            qt_node *x = qt__in(c, i);
            for (int k = 0; k < R; k++)
                if (k != ax && x->shape[k] != f->shape[k])
                    return qt__shape_fail(c, "'%s' %s and '%s' %s differ off axis %d",
                                          f->name, qt__dims_str(sf, sizeof sf, f->rank, f->shape),
                                          x->name, qt__dims_str(sx, sizeof sx, x->rank, x->shape),
                                          ax);
            d[ax] += x->shape[ax];
        }
        qt__set_dims(n, R, d);
        return QT_OK;
    }
    /* a sample is [outer, dim(axis) * inner]: input i's rows are consecutive
     * runs of its own dim(axis) * inner values */
    size_t outer = 1, inner = 1;
    for (int k = 0; k < ax; k++) outer *= (size_t)n->shape[k];
    for (int k = ax + 1; k < n->rank; k++) inner *= (size_t)n->shape[k];
    size_t orow = (size_t)n->shape[ax] * inner;
    for (size_t s = 0; s < N; s++) {
        size_t off = 0;
        for (int i = 0; i < n->n_in; i++) {
            qt_node *x = qt__in(c, i);
            size_t run = (size_t)x->shape[ax] * inner;
            for (size_t o = 0; o < outer; o++) {
                size_t yo = s * n->per + o * orow + off, xo = s * x->per + o * run;
                if (action == QT_ACT_FORWARD)
                    memcpy(n->out.data + yo, x->out.data + xo, run * sizeof(float));
                else
                    for (size_t k = 0; k < run; k++) x->gout.data[xo + k] += n->gout.data[yo + k];
            }
            off += run;
        }
    }
    if (action == QT_ACT_FORWARD) qt__intr_out(c);
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

/* reshape to a.shape[0..a.rank) (rank >= 1, no -1: the caller resolves it)
 * or, with rank 0, to the legacy C, H, W in shape[0..2] (0 read as 1) */
int qt__op_reshape(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) {
        qt_node *n = c->n, *in = qt__in(c, 0);
        const qt_attr *a = &n->a;
        int s[QT_MAX_RANK], r = a->rank ? a->rank : 3;
        char sb[64];
        size_t p = 1;
        if (a->rank < 0 || a->rank > QT_MAX_RANK)
            return qt__shape_fail(c, "rank %d must be 0..%d", a->rank, QT_MAX_RANK);
        for (int i = 0; i < r; i++) {
            s[i] = a->rank ? a->shape[i] : a->shape[i] > 0 ? a->shape[i] : 1;
            if (s[i] < 1)
                return qt__shape_fail(c, "target %s: dims must be >= 1",
                                      qt__dims_str(sb, sizeof sb, r, s));
            p *= (size_t)s[i];
        }
        if (p != in->per)
            return qt__shape_fail(c, "cannot reshape %zu values of '%s' to %s",
                                  in->per, in->name, qt__dims_str(sb, sizeof sb, r, s));
        qt__set_dims(n, r, s);
        return QT_OK;
    }
    return copy_through(c, action);
}

/* ------------------------------------------------------------------------ */
/* dense (y = x W^T + b, W [out, in]) and matmul (y = x B, B [in, out], or  */
/* batched B [batch..., K, out] when a.rank >= 2)                            */
/*                                                                           */
/* a.axis: the per-sample dims before it are kept as rows, the dims from it */
/* on are the K contracted features (axis 0: one row of everything). The    */
/* rows of all samples are one [N*rows, K] matrix.                           */
/* ------------------------------------------------------------------------ */

/* intrinsic dot products over `rows` rows of X [rows, K] into Y [rows, O].
 * each: operands (x, w, bias) in f with qt__operand (f's rounding,
 * nearest-even if f is stochastic: engine.h), every product and partial sum
 * rounded with its indexed random word in order k = 0..K-1, then the bias
 * add. final: products in f, summed in float, quantized once, then + bias,
 * quantized. Row r is row row0 + r of the whole output counted from the
 * data set's first sample: its words start at ((row0 + r)*O + o)*(2K + 2).
 * w is addressed w[o*ws_o + k*ws_k]. */
/* EACH on fixed point as integers (intr_fixed.c): the same bits as the
 * loops of intrinsic_dot. Lanes are rows, in tiles of IFIX_TILE; returns
 * QT_ERANGE (nothing written) when the format or the operands need the
 * reference loops, QT_ENOMEM */
#define IFIX_TILE 256
#define IFIX_TB   32    /* the transpose's block */

/* the operands k-major, xt[k*rows + s] = xq[s*K + k], in blocks of
 * IFIX_TB x IFIX_TB; for int32 and int16 operands */
#define IFIX_TRANSPOSE(NAME, T)                                                         \
static void NAME(T *restrict xt, const T *restrict xq, size_t rows, size_t K)           \
{                                                                                       \
    size_t sb = (rows + IFIX_TB - 1) / IFIX_TB, kb = (K + IFIX_TB - 1) / IFIX_TB;       \
    _Pragma("omp parallel for schedule(static) if (rows * K > 65536)")                  \
    for (size_t t = 0; t < sb * kb; t++) {                                              \
        size_t s0 = t / kb * IFIX_TB, k0 = t % kb * IFIX_TB;                            \
        size_t s1 = s0 + IFIX_TB < rows ? s0 + IFIX_TB : rows;                          \
        size_t k1 = k0 + IFIX_TB < K ? k0 + IFIX_TB : K;                                \
        for (size_t j = k0; j < k1; j++)                                                \
            for (size_t s = s0; s < s1; s++) xt[j * rows + s] = xq[s * K + j];          \
    }                                                                                   \
}

IFIX_TRANSPOSE(transpose32, int32_t)
IFIX_TRANSPOSE(transpose16, int16_t)
#undef IFIX_TRANSPOSE

static int intrinsic_dot_int(qt_opctx *c, const float *X, size_t rows, size_t K,
                             size_t O, const float *w, size_t ws_o, size_t ws_k,
                             const float *b, float *Y, uint64_t row0)
{
    const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];
    qt_ifix k;
    if (!qt__ifix_of(f, &k)) return QT_ERANGE;
    /* scratch in the node's save (dense and matmul keep nothing there):
     * the operands x [rows, K], then k-major [K, rows], the weights as
     * stored (w[o*ws_o + k*ws_k] is one of the two layouts of [O, K]) and
     * the bias, as int32 (int16 when k.narrow) */
    size_t nx = rows * K, nw = O * K, batch = (size_t)c->g->batch;
    if (qt__scratch(c, &c->n->save, (2 * nx + nw + O + batch - 1) / batch)) return QT_ENOMEM;
    size_t tiles = (rows + IFIX_TILE - 1) / IFIX_TILE;
    if (k.narrow) {
        /* 16-bit operands and sums (deterministic rounding: no words) */
        int16_t *xq = (int16_t *)(void *)c->n->save.data, *xt = xq + nx, *wq = xt + nx;
        int16_t *bq = wq + nw;
        int rc = qt__ifix_operands16_par(f, &k, X, xq, nx);
        if (!rc) rc = qt__ifix_operands16_par(f, &k, w, wq, nw);
        if (!rc && b) rc = qt__ifix_operands16_par(f, &k, b, bq, O);
        if (rc) return rc;
        transpose16(xt, xq, rows, K);
        #pragma omp parallel for schedule(dynamic, 1) if (rows * O * K > 16384)
        for (size_t t = 0; t < O * tiles; t++) {
            size_t o = t / tiles, s0 = (t % tiles) * IFIX_TILE;
            size_t n = rows - s0 < IFIX_TILE ? rows - s0 : IFIX_TILE;
            int16_t acc[IFIX_TILE];
            memset(acc, 0, n * sizeof *acc);
            qt__ifix_dot16(&k, acc, n, wq + o * ws_o, ws_k, K, xt + s0, rows);
            qt__ifix_finish16(&k, acc, n, b ? bq + o : NULL, Y + s0 * O + o, O);
        }
        return QT_OK;
    }
    int32_t *xq = (int32_t *)(void *)c->n->save.data, *xt = xq + nx, *wq = xt + nx;
    int32_t *bq = wq + nw;
    int rc = qt__ifix_operands_par(f, &k, X, xq, nx);
    if (!rc) rc = qt__ifix_operands_par(f, &k, w, wq, nw);
    if (!rc && b) rc = qt__ifix_operands_par(f, &k, b, bq, O);
    if (rc) return rc;
    transpose32(xt, xq, rows, K);
    qt_rkey key = qt_rand_key(c->q->seed, c->q->stream ^ QT_QP_INTRINSIC);
    uint64_t step = 2 * (uint64_t)K + 2;
    #pragma omp parallel for schedule(dynamic, 1) if (rows * O * K > 16384)
    for (size_t t = 0; t < O * tiles; t++) {
        size_t o = t / tiles, s0 = (t % tiles) * IFIX_TILE;
        size_t n = rows - s0 < IFIX_TILE ? rows - s0 : IFIX_TILE;
        int32_t acc[IFIX_TILE];
        memset(acc, 0, n * sizeof *acc);
        qt__ifix_dot(&k, acc, n, wq + o * ws_o, ws_k, K, xt + s0, rows, key,
                     ((row0 + s0) * O + o) * step, (uint64_t)O * step);
        qt__ifix_finish(&k, acc, n, b ? bq + o : NULL, Y + s0 * O + o, O);
    }
    return QT_OK;
}

static void intrinsic_dot(qt_opctx *c, const float *X, size_t rows, size_t K,
                          size_t O, const float *w, size_t ws_o, size_t ws_k,
                          const float *b, float *Y, uint64_t row0)
{
    const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];
    int each = c->q->mode == QT_INTR_EACH;
    if (each && intrinsic_dot_int(c, X, rows, K, O, w, ws_o, ws_k, b, Y, row0) == QT_OK)
        return;
    #pragma omp parallel for schedule(static) if (rows * O * K > 4096)
    for (size_t s = 0; s < rows; s++) {
        for (size_t o = 0; o < O; o++) {
            uint64_t idx = ((row0 + s) * O + o) * (2 * K + 2);
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

/* the batch geometry of a batched matmul: x [xb..., M, K], B [bb..., K, O],
 * y [ob..., M, O] with xb and bb broadcast to ob */
typedef struct mm_geom {
    int    nbr;                     /* rank of ob */
    int    ob[QT_MAX_RANK];
    size_t xs[QT_MAX_RANK], bs[QT_MAX_RANK];  /* matrix strides (0: broadcast) */
    size_t nb, M, K, O;             /* output matrices per sample, sizes */
} mm_geom;

static void mm_strides(int r, const int *dims, int R, const int *ob, size_t *st)
{
    size_t s = 1;
    for (int i = R - 1; i >= 0; i--) {
        int k = i - (R - r);
        st[i] = (k < 0 || dims[k] == 1 || ob[i] == 1) ? 0 : s;
        if (k >= 0) s *= (size_t)dims[k];
    }
}

/* 0 when the batch dims do not broadcast */
static int mm_geometry(const qt_node *n, const qt_node *in, mm_geom *m)
{
    const qt_attr *a = &n->a;
    int xr = a->axis, br = a->rank - 2, R = xr > br ? xr : br;
    for (int i = 0; i < R; i++) {
        int kx = i - (R - xr), kb = i - (R - br);
        int x = kx < 0 ? 1 : in->shape[kx], y = kb < 0 ? 1 : a->shape[kb];
        if (x != y && x != 1 && y != 1) return 0;
        m->ob[i] = x == 1 ? y : x;
    }
    m->nbr = R;
    mm_strides(xr, in->shape, R, m->ob, m->xs);
    mm_strides(br, a->shape, R, m->ob, m->bs);
    m->nb = 1;
    for (int i = 0; i < R; i++) m->nb *= (size_t)m->ob[i];
    m->M = (size_t)in->shape[xr];
    m->K = (size_t)in->shape[xr + 1];
    m->O = (size_t)a->shape[a->rank - 1];
    return 1;
}

/* the x and B matrices of output matrix bi */
static void mm_pick(const mm_geom *m, size_t bi, size_t *xi, size_t *bj)
{
    *xi = *bj = 0;
    for (int i = m->nbr - 1; i >= 0; i--) {
        size_t k = bi % (size_t)m->ob[i];
        bi /= (size_t)m->ob[i];
        *xi += k * m->xs[i];
        *bj += k * m->bs[i];
    }
}

static int matmul_batched_shape(qt_opctx *c)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    char sx[48], sb[48];
    mm_geom m;
    if (a->rank < 2 || a->rank > QT_MAX_RANK)
        return qt__shape_fail(c, "B rank %d must be 0 (legacy [in, out]) or 2..%d",
                              a->rank, QT_MAX_RANK);
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] < 1)
            return qt__shape_fail(c, "B dim %d is %d (must be >= 1)", i, a->shape[i]);
    qt__dims_str(sx, sizeof sx, in->rank, in->shape);
    qt__dims_str(sb, sizeof sb, a->rank, a->shape);
    if (a->axis < 0 || in->rank - a->axis != 2)
        return qt__shape_fail(c, "'%s' %s from axis %d must be [M, K] (B %s)", in->name, sx,
                              a->axis, sb);
    if (in->shape[a->axis + 1] != a->shape[a->rank - 2])
        return qt__shape_fail(c, "'%s' %s and B %s: K differs", in->name, sx, sb);
    if (a->out != 0 && a->out != a->shape[a->rank - 1])
        return qt__shape_fail(c, "out %d but B %s", a->out, sb);
    if (!mm_geometry(n, in, &m))
        return qt__shape_fail(c, "batch dims of '%s' %s and B %s do not broadcast", in->name,
                              sx, sb);
    int d[QT_MAX_RANK];
    memcpy(d, m.ob, (size_t)m.nbr * sizeof *d);
    d[m.nbr] = (int)m.M;
    d[m.nbr + 1] = (int)m.O;
    qt__set_dims(n, m.nbr + 2, d);
    n->macs = (uint64_t)m.nb * m.M * m.K * m.O;
    qt__param_dims(&n->p[QT_P_W], a->rank, a->shape);
    return QT_OK;
}

static int matmul_batched(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    if (action == QT_ACT_SHAPE) return matmul_batched_shape(c);
    mm_geom m;
    mm_geometry(n, in, &m);
    size_t N = N_CUR(c), MK = m.M * m.K, KO = m.K * m.O, MO = m.M * m.O;
    const float *X = in->out.data, *B = c->w;
    int intr = c->q && c->q->fmt[QT_QP_INTRINSIC];
    for (size_t s = 0; s < N; s++)
        for (size_t bi = 0; bi < m.nb; bi++) {
            size_t xi, bj;
            mm_pick(&m, bi, &xi, &bj);
            const float *x = X + s * in->per + xi * MK, *b = B + bj * KO;
            size_t yo = s * n->per + bi * MO;
            if (action == QT_ACT_FORWARD && intr) {
                intrinsic_dot(c, x, m.M, m.K, m.O, b, 1, m.O, NULL, n->out.data + yo,
                              ((c->g->sample_base + s) * m.nb + bi) * m.M);
            } else if (action == QT_ACT_FORWARD) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m.M, (int)m.O,
                            (int)m.K, 1.0f, x, (int)m.K, b, (int)m.O, 0.0f,
                            n->out.data + yo, (int)m.O);
            } else {
                const float *d = n->gout.data + yo;
                /* dx += dy B^T, dB += x^T dy (broadcast matrices sum) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m.M, (int)m.K,
                            (int)m.O, 1.0f, d, (int)m.O, b, (int)m.O, 1.0f,
                            in->gout.data + s * in->per + xi * MK, (int)m.K);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m.K, (int)m.O,
                            (int)m.M, 1.0f, x, (int)m.K, d, (int)m.O, 1.0f,
                            n->gp[0].data + bj * KO, (int)m.O);
            }
        }
    return QT_OK;
}

static int linear(qt_opctx *c, int action, int transposed_w)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    if (!transposed_w && a->rank != 0) return matmul_batched(c, action);
    int ax = a->axis;
    size_t rows = 1, K = 1, O = (size_t)a->out;
    for (int i = 0; i < in->rank; i++) {
        if (i < ax) rows *= (size_t)in->shape[i];
        else K *= (size_t)in->shape[i];
    }
    if (action == QT_ACT_SHAPE) {
        char sx[48];
        if (a->out < 1)
            return qt__shape_fail(c, "needs out >= 1 output features (got %d)", a->out);
        if (ax < 0 || (ax > 0 && ax >= in->rank))
            return qt__shape_fail(c, "axis %d is not below the rank %d of '%s' %s", ax,
                                  in->rank, in->name,
                                  qt__dims_str(sx, sizeof sx, in->rank, in->shape));
        int d[QT_MAX_RANK];
        memcpy(d, in->shape, (size_t)ax * sizeof *d);
        d[ax] = a->out;
        qt__set_dims(n, ax + 1, d);
        n->macs = (uint64_t)rows * K * O;
        int wd[2] = { transposed_w ? (int)O : (int)K, transposed_w ? (int)K : (int)O };
        qt__param_dims(&n->p[QT_P_W], 2, wd);
        if (transposed_w && a->bias) {
            int o = (int)O;
            qt__param_dims(&n->p[QT_P_B], 1, &o);
        }
        return QT_OK;
    }
    size_t N = N_CUR(c) * rows;          /* rows of all samples */
    const float *X = in->out.data, *W = c->w, *B = n->p[QT_P_B].size ? c->b : NULL;
    if (action == QT_ACT_FORWARD) {
        if (c->q && c->q->fmt[QT_QP_INTRINSIC]) {
            uint64_t row0 = c->g->sample_base * rows;
            if (transposed_w) intrinsic_dot(c, X, N, K, O, W, K, 1, B, n->out.data, row0);
            else intrinsic_dot(c, X, N, K, O, W, 1, O, NULL, n->out.data, row0);
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
