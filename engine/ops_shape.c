/*
 * ops_shape.c -- ops over N-d per-sample dims: element-wise add, sub, mul
 * and div with numpy broadcasting, prelu, transpose, pad, softmax and
 * logsoftmax along an axis, and constants.
 *
 * Intrinsic point. Data movement (transpose, pad, const) and softmax and
 * logsoftmax quantize their result with the intrinsic format (either
 * semantics), as TensorQuant does for layers without an intrinsic path.
 * The arithmetic ops in FINAL do the same. In EACH they are bit-true on the
 * operands rounded to f with qt__operand (f's rounding, nearest-even if f
 * is stochastic: engine.h), output element i of the batch (i counted over
 * [N, per], per the OUTPUT's per-sample size) with the random word
 * sample_base*per + i:
 *   add  qt_add(f, a, b)        sub  qt_add(f, a, -b)
 *   mul  qt_mul(f, a, b)        div  qt_quantize1(f, a / b): the quotient
 *        is computed in float32 (IEEE: x/0 is inf or NaN) and then rounded
 *        once to f, so it may be rounded twice (float32, then f);
 *   prelu  x < 0 ? qt_mul(f, slope, x) : x (slope and x operands).
 * add, sub and mul on fixed point (intr_fixed.c's formats) run as integers
 * with the same bits, in stack chunks (a chunk with a NaN operand runs the
 * reference).
 *
 * Broadcasting: per-sample dims aligned from the right, a missing dim
 * counts as 1, and each pair must be equal or contain a 1. The batch is
 * never broadcast (every input has the same N samples; a const copies its
 * value into every sample). Backward sums the gradient over broadcast dims.
 */
#include "internal.h"

#include <stdlib.h>

#define N_CUR(c) ((size_t)(c)->g->n_cur)
#define PAR_MIN  65536      /* elements below which the loops stay serial */



/* a dims attribute (rank, shape) that is well-formed: 0 on success */
static int check_dims_attr(qt_opctx *c, const char *what, int rank, const int *dims)
{
    if (rank < 0 || rank > QT_MAX_RANK)
        return qt__shape_fail(c, "%s rank %d must be 0..%d", what, rank, QT_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 1)
            return qt__shape_fail(c, "%s dim %d is %d (must be >= 1)", what, i, dims[i]);
    return QT_OK;
}

/* a parameter with per-sample dims (rank 0: one value, stored as [1]) */
static void param_dims(qt_tensor *t, int rank, const int *dims)
{
    static const int one = 1;
    if (rank == 0) qt__param_dims(t, 1, &one);
    else qt__param_dims(t, rank, dims);
}

/* ------------------------------------------------------------------------ */
/* Strided walks: the output is contiguous, up to two operands are read      */
/* (or, in backward, written) with their own strides per output dim (0 on a */
/* broadcast dim). Dims of 1 are dropped and dims that are contiguous for   */
/* every operand merged, so the innermost run is as long as possible.       */
/* ------------------------------------------------------------------------ */

typedef struct walk {
    int       rank;                    /* >= 1 */
    size_t    dims[QT_MAX_RANK];
    ptrdiff_t st[2][QT_MAX_RANK];      /* operand strides per dim */
    size_t    rows, len;               /* len: the last dim; rows: the rest */
} walk;

static void walk_init(walk *w, int rank, const int *dims, const ptrdiff_t *s0,
                      const ptrdiff_t *s1)
{
    int r = 0;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 1) continue;
        ptrdiff_t a = s0[i], b = s1 ? s1[i] : 0;
        if (r > 0 && w->st[0][r - 1] == a * dims[i] && w->st[1][r - 1] == b * dims[i]) {
            w->dims[r - 1] *= (size_t)dims[i];      /* merge into the previous dim */
            w->st[0][r - 1] = a;
            w->st[1][r - 1] = b;
            continue;
        }
        w->dims[r] = (size_t)dims[i];
        w->st[0][r] = a;
        w->st[1][r] = b;
        r++;
    }
    if (r == 0) { w->dims[0] = 1; w->st[0][0] = w->st[1][0] = 0; r = 1; }
    w->rank = r;
    w->len = w->dims[r - 1];
    w->rows = 1;
    for (int i = 0; i < r - 1; i++) w->rows *= w->dims[i];
}

/* the operands' offsets at the start of row `row` */
static inline void walk_row(const walk *w, size_t row, ptrdiff_t off[2])
{
    off[0] = off[1] = 0;
    for (int i = w->rank - 2; i >= 0; i--) {
        size_t k = row % w->dims[i];
        row /= w->dims[i];
        off[0] += (ptrdiff_t)k * w->st[0][i];
        off[1] += (ptrdiff_t)k * w->st[1][i];
    }
}

/* row-major strides of dims */
static void strides_of(int rank, const int *dims, ptrdiff_t *st)
{
    ptrdiff_t s = 1;
    for (int i = rank - 1; i >= 0; i--) { st[i] = s; s *= dims[i]; }
}

/* strides of an operand of rank r broadcast to rank R (aligned right) */
static void bcast_strides(int r, const int *dims, int R, const int *out, ptrdiff_t *st)
{
    ptrdiff_t own[QT_MAX_RANK];
    strides_of(r, dims, own);
    for (int i = 0; i < R; i++) {
        int k = i - (R - r);
        st[i] = (k < 0 || dims[k] == 1 || out[i] == 1) ? 0 : own[k];
    }
}

/* numpy broadcast of two dims lists; 0 when they do not broadcast */
static int bcast_dims(int ra, const int *da, int rb, const int *db, int *ro, int *out)
{
    int R = ra > rb ? ra : rb;
    for (int i = 0; i < R; i++) {
        int ka = i - (R - ra), kb = i - (R - rb);
        int x = ka < 0 ? 1 : da[ka], y = kb < 0 ? 1 : db[kb];
        if (x != y && x != 1 && y != 1) return 0;
        out[i] = x == 1 ? y : x;
    }
    *ro = R;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Binary element-wise ops                                                   */
/* ------------------------------------------------------------------------ */

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };

static int binary_shape(qt_opctx *c)
{
    qt_node *a = qt__in(c, 0), *b = qt__in(c, 1);
    int R, d[QT_MAX_RANK];
    if (!bcast_dims(a->rank, a->shape, b->rank, b->shape, &R, d)) {
        char sa[48], sb[48];
        return qt__shape_fail(c, "inputs '%s' %s and '%s' %s do not broadcast", a->name,
                              qt__dims_str(sa, sizeof sa, a->rank, a->shape), b->name,
                              qt__dims_str(sb, sizeof sb, b->rank, b->shape));
    }
    qt__set_dims(c->n, R, d);
    return QT_OK;
}

static inline float bin_float(int op, float x, float y)
{
    switch (op) {
    case BIN_ADD: return x + y;
    case BIN_SUB: return x - y;
    case BIN_MUL: return x * y;
    default:      return x / y;
    }
}

/* EACH: the bit-true unit on operands stored in f */
static inline float bin_each(const qt_format *f, int op, float x, float y, uint32_t r)
{
    x = qt__operand(f, x);
    y = qt__operand(f, y);
    switch (op) {
    case BIN_ADD: return qt_add(f, x, y, r);
    case BIN_SUB: return qt_add(f, x, -y, r);
    case BIN_MUL: return qt_mul(f, x, y, r);
    default:      return qt_quantize1(f, x / y, r);
    }
}

/* EACH on a run of n output elements, words from idx0 on: y[j] from
 * a[j*la] and b[j*lb]; as integers (intr_fixed.c) when k is set and op is
 * not div, in stack chunks (a chunk with a NaN operand runs bin_each),
 * the same bits as bin_each */
static void bin_each_run(const qt_format *f, const qt_ifix *k, const qt_nodeq *q, int op,
                         const float *a, ptrdiff_t la, const float *b, ptrdiff_t lb, size_t n,
                         float *y, uint64_t idx0)
{
    if (!k || op == BIN_DIV) {
        for (size_t j = 0; j < n; j++)
            y[j] = bin_each(f, op, a[(ptrdiff_t)j * la], b[(ptrdiff_t)j * lb],
                            qt__intr_rand(q, idx0 + j));
        return;
    }
    static const int iop[3] = { [BIN_ADD] = QT_IFIX_ADD, [BIN_SUB] = QT_IFIX_SUB,
                                [BIN_MUL] = QT_IFIX_MUL };
    qt_rkey key = qt_rand_key(q->seed, q->stream ^ QT_QP_INTRINSIC);
    float fa[QT_IFIX_CHUNK], fb[QT_IFIX_CHUNK], tmp[QT_IFIX_CHUNK];
    int32_t qa[QT_IFIX_CHUNK], qb[QT_IFIX_CHUNK];
    for (size_t j0 = 0; j0 < n; j0 += QT_IFIX_CHUNK) {
        size_t m = n - j0 < QT_IFIX_CHUNK ? n - j0 : QT_IFIX_CHUNK;
        const float *pa = a + (ptrdiff_t)j0 * la, *pb = b + (ptrdiff_t)j0 * lb;
        if (la != 1) {
            for (size_t j = 0; j < m; j++) fa[j] = pa[(ptrdiff_t)j * la];
            pa = fa;
        }
        if (lb != 1) {
            for (size_t j = 0; j < m; j++) fb[j] = pb[(ptrdiff_t)j * lb];
            pb = fb;
        }
        if (qt__ifix_operands(f, k, pa, qa, m, tmp) == QT_OK &&
            qt__ifix_operands(f, k, pb, qb, m, tmp) == QT_OK) {
            qt__ifix_elem(k, iop[op], qa, qb, m, y + j0, key, idx0 + j0);
        } else {
            for (size_t j = 0; j < m; j++)
                y[j0 + j] = bin_each(f, op, pa[j], pb[j], qt__intr_rand(q, idx0 + j0 + j));
        }
    }
}

/* d/da and d/db of the op times the incoming gradient d */
static inline void bin_grad(int op, float x, float y, float d, float *ga, float *gb)
{
    switch (op) {
    case BIN_ADD: *ga += d; *gb += d; break;
    case BIN_SUB: *ga += d; *gb -= d; break;
    case BIN_MUL: *ga += d * y; *gb += d * x; break;
    default: {
        float q = d / y;            /* da = d/b, db = -d*a/b^2 */
        *ga += q;
        *gb -= q * x / y;
    }
    }
}

static int binary(qt_opctx *c, int action, int op)
{
    qt_node *n = c->n, *a = qt__in(c, 0), *b = qt__in(c, 1);
    if (action == QT_ACT_SHAPE) return binary_shape(c);
    size_t N = N_CUR(c), per = n->per, m = N * per;
    const float *A = a->out.data, *B = b->out.data;
    int same = a->rank == b->rank && !memcmp(a->shape, b->shape, sizeof a->shape);
    const qt_format *f = c->q ? c->q->fmt[QT_QP_INTRINSIC] : NULL;
    int each = f && c->q->mode == QT_INTR_EACH;
    uint64_t base = c->g->sample_base * per;
    qt_ifix ik;
    const qt_ifix *k = each && qt__ifix_of(f, &ik) ? &ik : NULL;
    walk w;
    if (!same) {
        ptrdiff_t sa[QT_MAX_RANK], sb[QT_MAX_RANK];
        bcast_strides(a->rank, a->shape, n->rank, n->shape, sa);
        bcast_strides(b->rank, b->shape, n->rank, n->shape, sb);
        walk_init(&w, n->rank, n->shape, sa, sb);
    }
    if (action == QT_ACT_FORWARD) {
        float *Y = n->out.data;
        if (same && each) {
            size_t nch = (m + QT_IFIX_CHUNK - 1) / QT_IFIX_CHUNK;
            #pragma omp parallel for schedule(static) if (m > PAR_MIN / 16)
            for (size_t ch = 0; ch < nch; ch++) {
                size_t i0 = ch * QT_IFIX_CHUNK, len = m - i0 < QT_IFIX_CHUNK ? m - i0 : QT_IFIX_CHUNK;
                bin_each_run(f, k, c->q, op, A + i0, 1, B + i0, 1, len, Y + i0, base + i0);
            }
            return QT_OK;
        }
        if (same) {
            switch (op) {       /* one loop per op: these vectorise */
            case BIN_ADD: for (size_t i = 0; i < m; i++) Y[i] = A[i] + B[i]; break;
            case BIN_SUB: for (size_t i = 0; i < m; i++) Y[i] = A[i] - B[i]; break;
            case BIN_MUL: for (size_t i = 0; i < m; i++) Y[i] = A[i] * B[i]; break;
            default:      for (size_t i = 0; i < m; i++) Y[i] = A[i] / B[i]; break;
            }
            qt__intr_out(c);
            return QT_OK;
        }
        #pragma omp parallel for schedule(static) if (m > PAR_MIN)
        for (size_t s = 0; s < N; s++) {
            const float *As = A + s * a->per, *Bs = B + s * b->per;
            ptrdiff_t la = w.st[0][w.rank - 1], lb = w.st[1][w.rank - 1];
            for (size_t r = 0; r < w.rows; r++) {
                ptrdiff_t o[2];
                walk_row(&w, r, o);
                const float *pa = As + o[0], *pb = Bs + o[1];
                size_t i0 = s * per + r * w.len;
                float *py = Y + i0;
                if (each)
                    bin_each_run(f, k, c->q, op, pa, la, pb, lb, w.len, py, base + i0);
                else
                    for (size_t j = 0; j < w.len; j++)
                        py[j] = bin_float(op, pa[(ptrdiff_t)j * la], pb[(ptrdiff_t)j * lb]);
            }
        }
        if (!each) qt__intr_out(c);
        return QT_OK;
    }
    const float *D = n->gout.data;
    float *GA = a->gout.data, *GB = b->gout.data;
    if (same) {
        for (size_t i = 0; i < m; i++) bin_grad(op, A[i], B[i], D[i], &GA[i], &GB[i]);
        return QT_OK;
    }
    /* samples write disjoint gradient rows; within one, broadcast dims sum */
    #pragma omp parallel for schedule(static) if (m > PAR_MIN)
    for (size_t s = 0; s < N; s++) {
        ptrdiff_t la = w.st[0][w.rank - 1], lb = w.st[1][w.rank - 1];
        for (size_t r = 0; r < w.rows; r++) {
            ptrdiff_t o[2];
            walk_row(&w, r, o);
            o[0] += (ptrdiff_t)(s * a->per);
            o[1] += (ptrdiff_t)(s * b->per);
            const float *pd = D + s * per + r * w.len;
            for (size_t j = 0; j < w.len; j++) {
                ptrdiff_t ia = o[0] + (ptrdiff_t)j * la, ib = o[1] + (ptrdiff_t)j * lb;
                bin_grad(op, A[ia], B[ib], pd[j], &GA[ia], &GB[ib]);
            }
        }
    }
    return QT_OK;
}

int qt__op_add(qt_opctx *c, int action) { return binary(c, action, BIN_ADD); }
int qt__op_sub(qt_opctx *c, int action) { return binary(c, action, BIN_SUB); }
int qt__op_mul(qt_opctx *c, int action) { return binary(c, action, BIN_MUL); }
int qt__op_div(qt_opctx *c, int action) { return binary(c, action, BIN_DIV); }

/* ------------------------------------------------------------------------ */
/* PRelu: y = x < 0 ? slope x : x, the slope (p[W], dims a.rank/a.shape)     */
/* broadcast to x from the right.                                            */
/*                                                                           */
/* The graph initialises p[W] with He noise like any weights; the caller (an */
/* importer, or whoever builds the graph) sets the slope, e.g. to 0.25,      */
/* PyTorch's default, with qt_graph_param(g, id, 0) after qt_graph_add.      */
/* ------------------------------------------------------------------------ */

int qt__op_prelu(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    if (action == QT_ACT_SHAPE) {
        int rc = check_dims_attr(c, "slope", a->rank, a->shape);
        if (rc) return rc;
        int ok = a->rank <= in->rank;
        for (int i = 0; ok && i < a->rank; i++) {
            int d = a->shape[i], x = in->shape[in->rank - a->rank + i];
            ok = d == 1 || d == x;
        }
        if (!ok) {
            char ss[48], sx[48];
            return qt__shape_fail(c, "slope %s does not broadcast to '%s' %s",
                                  qt__dims_str(ss, sizeof ss, a->rank, a->shape), in->name,
                                  qt__dims_str(sx, sizeof sx, in->rank, in->shape));
        }
        qt__same_shape(c, in);
        param_dims(&n->p[QT_P_W], a->rank, a->shape);
        return QT_OK;
    }
    size_t N = N_CUR(c), per = n->per;
    ptrdiff_t sx[QT_MAX_RANK], ss[QT_MAX_RANK];
    strides_of(n->rank, n->shape, sx);
    bcast_strides(a->rank, a->shape, n->rank, n->shape, ss);
    walk w;
    walk_init(&w, n->rank, n->shape, sx, ss);
    ptrdiff_t lx = w.st[0][w.rank - 1], ls = w.st[1][w.rank - 1];
    const float *X = in->out.data, *S = c->w;
    if (action == QT_ACT_FORWARD) {
        const qt_format *f = c->q ? c->q->fmt[QT_QP_INTRINSIC] : NULL;
        int each = f && c->q->mode == QT_INTR_EACH;
        uint64_t base = c->g->sample_base * per;
        #pragma omp parallel for schedule(static) if (N * per > PAR_MIN)
        for (size_t s = 0; s < N; s++)
            for (size_t r = 0; r < w.rows; r++) {
                ptrdiff_t o[2];
                walk_row(&w, r, o);
                const float *px = X + s * per + o[0], *ps = S + o[1];
                size_t i0 = s * per + r * w.len;
                float *py = n->out.data + i0;
                for (size_t j = 0; j < w.len; j++) {
                    float x = px[(ptrdiff_t)j * lx], sl = ps[(ptrdiff_t)j * ls];
                    if (each) {
                        x = qt__operand(f, x);
                        py[j] = x < 0.0f ? qt_mul(f, qt__operand(f, sl), x,
                                                  qt__intr_rand(c->q, base + i0 + j)) : x;
                    } else {
                        py[j] = x < 0.0f ? sl * x : x;
                    }
                }
            }
        if (!each) qt__intr_out(c);
        return QT_OK;
    }
    /* the slope's gradient sums over samples: serial */
    float *GX = in->gout.data, *GS = n->gp[0].data;
    const float *D = n->gout.data;
    for (size_t s = 0; s < N; s++)
        for (size_t r = 0; r < w.rows; r++) {
            ptrdiff_t o[2];
            walk_row(&w, r, o);
            size_t i0 = s * per + r * w.len;
            for (size_t j = 0; j < w.len; j++) {
                ptrdiff_t ix = (ptrdiff_t)(s * per) + o[0] + (ptrdiff_t)j * lx;
                ptrdiff_t is = o[1] + (ptrdiff_t)j * ls;
                float x = X[ix], d = D[i0 + j];
                if (x < 0.0f) {
                    GX[ix] += S[is] * d;
                    GS[is] += x * d;
                } else {
                    GX[ix] += d;
                }
            }
        }
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Transpose: output dim i is input dim perm[i]                              */
/* ------------------------------------------------------------------------ */

int qt__op_transpose(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    if (action == QT_ACT_SHAPE) {
        int seen = 0, d[QT_MAX_RANK];
        if (a->rank != in->rank) {
            char sx[48];
            return qt__shape_fail(c, "perm has %d entries, '%s' %s has rank %d", a->rank,
                                  in->name, qt__dims_str(sx, sizeof sx, in->rank, in->shape),
                                  in->rank);
        }
        for (int i = 0; i < a->rank; i++) {
            int p = a->perm[i];
            if (p < 0 || p >= a->rank || (seen & (1 << p)))
                return qt__shape_fail(c, "perm is not a permutation of 0..%d (entry %d is %d)",
                                      a->rank - 1, i, p);
            seen |= 1 << p;
            d[i] = in->shape[p];
        }
        qt__set_dims(n, a->rank, d);
        return QT_OK;
    }
    size_t N = N_CUR(c), per = n->per;
    ptrdiff_t own[QT_MAX_RANK], st[QT_MAX_RANK];
    strides_of(in->rank, in->shape, own);
    for (int i = 0; i < n->rank; i++) st[i] = own[a->perm[i]];
    walk w;
    walk_init(&w, n->rank, n->shape, st, NULL);
    ptrdiff_t l = w.st[0][w.rank - 1];
    int fwd = action == QT_ACT_FORWARD;
    /* the permutation is a bijection: samples and rows never collide */
    #pragma omp parallel for schedule(static) if (N * per > PAR_MIN)
    for (size_t s = 0; s < N; s++)
        for (size_t r = 0; r < w.rows; r++) {
            ptrdiff_t o[2];
            walk_row(&w, r, o);
            size_t i0 = s * per + r * w.len;
            ptrdiff_t x0 = (ptrdiff_t)(s * per) + o[0];
            if (fwd) {
                const float *px = in->out.data + x0;
                float *py = n->out.data + i0;
                for (size_t j = 0; j < w.len; j++) py[j] = px[(ptrdiff_t)j * l];
            } else {
                float *gx = in->gout.data + x0;
                const float *pd = n->gout.data + i0;
                for (size_t j = 0; j < w.len; j++) gx[(ptrdiff_t)j * l] += pd[j];
            }
        }
    if (fwd) qt__intr_out(c);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Pad: begins pads[0..rank), ends pads[rank..2*rank); negative crops.       */
/*                                                                           */
/* An axis is first cropped by its negative pads (which must leave at least */
/* one element), then padded on the other side(s) by the positive ones:     */
/* constant (a.value), reflect (mirror about the edge element without       */
/* repeating it; each pad must be below the cropped length) or edge         */
/* (replicate the edge element).                                            */
/* ------------------------------------------------------------------------ */

/* the source index, in the uncropped input, of output index i of an axis;
 * -1 for the constant */
static int pad_src(int mode, int i, int d, int begin, int end)
{
    int c0 = begin < 0 ? -begin : 0, c1 = end < 0 ? -end : 0;
    int kd = d - c0 - c1, j = i - (begin > 0 ? begin : 0);
    if (j < 0 || j >= kd) {
        if (mode == QT_PAD_CONSTANT) return -1;
        if (mode == QT_PAD_EDGE) j = j < 0 ? 0 : kd - 1;
        else j = j < 0 ? -j : 2 * (kd - 1) - j;
    }
    return c0 + j;
}

int qt__op_pad(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    int R = in->rank;
    if (action == QT_ACT_SHAPE) {
        int d[QT_MAX_RANK];
        if (a->mode < QT_PAD_CONSTANT || a->mode > QT_PAD_EDGE)
            return qt__shape_fail(c, "pad mode %d (0 constant, 1 reflect, 2 edge)", a->mode);
        for (int i = 0; i < R; i++) {
            int b = a->pads[i], e = a->pads[R + i], x = in->shape[i];
            int kd = x - (b < 0 ? -b : 0) - (e < 0 ? -e : 0);
            if (kd < 1)
                return qt__shape_fail(c, "pads %d, %d crop all of axis %d (%d) of '%s'",
                                      b, e, i, x, in->name);
            if (a->mode == QT_PAD_REFLECT && (b >= kd || e >= kd))
                return qt__shape_fail(c, "reflect pads %d, %d of axis %d must be < %d",
                                      b, e, i, kd);
            d[i] = x + b + e;
        }
        qt__set_dims(n, R, d);
        return QT_OK;
    }
    size_t N = N_CUR(c), per = n->per, inper = in->per;
    int fwd = action == QT_ACT_FORWARD;
    if (R == 0) {
        for (size_t i = 0; i < N; i++) {
            if (fwd) n->out.data[i] = in->out.data[i];
            else in->gout.data[i] += n->gout.data[i];
        }
        if (fwd) qt__intr_out(c);
        return QT_OK;
    }
    /* per axis: the source offset (times the input stride) of every output
     * index, or -1 for the constant */
    size_t total = 0;
    for (int k = 0; k < R; k++) total += (size_t)n->shape[k];
    ptrdiff_t *map = malloc(total * sizeof *map), *mk[QT_MAX_RANK], st[QT_MAX_RANK];
    if (!map) return qt__fail(c->err, QT_ENOMEM, -1, "out of memory in pad '%s'", n->name);
    strides_of(R, in->shape, st);
    for (int k = 0, at = 0; k < R; at += n->shape[k], k++) {
        mk[k] = map + at;
        for (int i = 0; i < n->shape[k]; i++) {
            int j = pad_src(a->mode, i, in->shape[k], a->pads[k], a->pads[R + k]);
            mk[k][i] = j < 0 ? -1 : j * st[k];
        }
    }
    size_t len = (size_t)n->shape[R - 1], rows = per / len;
    const ptrdiff_t *last = mk[R - 1];
    /* backward of reflect/edge accumulates several outputs into one input:
     * only samples run in parallel */
    #pragma omp parallel for schedule(static) if (N * per > PAR_MIN)
    for (size_t s = 0; s < N; s++)
        for (size_t r = 0; r < rows; r++) {
            ptrdiff_t off = 0;
            size_t q = r;
            for (int k = R - 2; k >= 0 && off >= 0; k--) {
                ptrdiff_t v = mk[k][q % (size_t)n->shape[k]];
                q /= (size_t)n->shape[k];
                off = v < 0 ? -1 : off + v;
            }
            size_t i0 = s * per + r * len;
            if (fwd) {
                float *py = n->out.data + i0;
                const float *px = in->out.data + s * inper;
                for (size_t j = 0; j < len; j++)
                    py[j] = off < 0 || last[j] < 0 ? a->value : px[off + last[j]];
            } else if (off >= 0) {
                const float *pd = n->gout.data + i0;
                float *gx = in->gout.data + s * inper;
                for (size_t j = 0; j < len; j++)
                    if (last[j] >= 0) gx[off + last[j]] += pd[j];
            }
        }
    free(map);
    if (fwd) qt__intr_out(c);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Softmax and logsoftmax along a.axis (mode 1: all axes from it on as one). */
/* A sample is [outer, C, inner]: the C values normalised together are      */
/* inner values apart. Axis 0, mode 0 is the engine's original softmax over */
/* the channels at each position, and computes the same bits: expf(x - max) */
/* in float, the sum in double, each value divided in double.               */
/* ------------------------------------------------------------------------ */

static int softmax_shape(qt_opctx *c)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    if (n->a.axis < 0 || n->a.axis >= in->rank) {
        char sx[48];
        return qt__shape_fail(c, "axis %d is not below the rank %d of '%s' %s", n->a.axis,
                              in->rank, in->name, qt__dims_str(sx, sizeof sx, in->rank, in->shape));
    }
    if (n->a.mode != 0 && n->a.mode != 1)
        return qt__shape_fail(c, "mode %d (0: one axis, 1: from axis on)", n->a.mode);
    qt__same_shape(c, in);
    return QT_OK;
}

static void softmax_geom(const qt_node *n, size_t *outer, size_t *C, size_t *inner)
{
    int ax = n->a.axis;
    *outer = *C = *inner = 1;
    for (int i = 0; i < ax; i++) *outer *= (size_t)n->shape[i];
    for (int i = ax; i < n->rank; i++) {
        if (i == ax || n->a.mode == 1) *C *= (size_t)n->shape[i];
        else *inner *= (size_t)n->shape[i];
    }
}

static int softmax_any(qt_opctx *c, int action, int logsm)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    if (action == QT_ACT_SHAPE) return softmax_shape(c);
    size_t N = N_CUR(c), O, C, P, F = n->per;
    softmax_geom(n, &O, &C, &P);
    size_t groups = N * O * P;
    if (action == QT_ACT_FORWARD) {
        #pragma omp parallel for schedule(static) if (N * F > PAR_MIN)
        for (size_t gi = 0; gi < groups; gi++) {
            size_t p = gi % P, so = gi / P;          /* so = s*O + o */
            const float *x = in->out.data + so * C * P + p;
            float *y = n->out.data + so * C * P + p, mx = x[0];
            double sum = 0.0;
            for (size_t k = 1; k < C; k++) if (x[k * P] > mx) mx = x[k * P];
            if (logsm) {
                for (size_t k = 0; k < C; k++) sum += exp((double)x[k * P] - mx);
                double lse = (double)mx + log(sum);
                for (size_t k = 0; k < C; k++) y[k * P] = (float)((double)x[k * P] - lse);
            } else {
                for (size_t k = 0; k < C; k++) { y[k * P] = expf(x[k * P] - mx); sum += y[k * P]; }
                for (size_t k = 0; k < C; k++) y[k * P] = (float)(y[k * P] / sum);
            }
        }
        qt__intr_out(c);
        return QT_OK;
    }
    /* softmax: dx = y (d - sum d y); logsoftmax: dx = d - exp(y) sum d */
    #pragma omp parallel for schedule(static) if (N * F > PAR_MIN)
    for (size_t gi = 0; gi < groups; gi++) {
        size_t p = gi % P, so = gi / P;
        const float *y = n->out.data + so * C * P + p, *d = n->gout.data + so * C * P + p;
        float *g = in->gout.data + so * C * P + p;
        double dot = 0.0;
        if (logsm) {
            for (size_t k = 0; k < C; k++) dot += d[k * P];
            for (size_t k = 0; k < C; k++)
                g[k * P] += (float)((double)d[k * P] - exp((double)y[k * P]) * dot);
        } else {
            for (size_t k = 0; k < C; k++) dot += (double)d[k * P] * y[k * P];
            for (size_t k = 0; k < C; k++) g[k * P] += y[k * P] * (float)(d[k * P] - dot);
        }
    }
    return QT_OK;
}

int qt__op_softmax(qt_opctx *c, int action) { return softmax_any(c, action, 0); }
int qt__op_logsoftmax(qt_opctx *c, int action) { return softmax_any(c, action, 1); }

/* ------------------------------------------------------------------------ */
/* Const: the weights parameter (dims a.rank/a.shape) in every sample.       */
/*                                                                           */
/* The graph initialises p[W] with He noise like any weights; whoever adds   */
/* the node sets the value with qt_graph_param(g, id, 0) (the ONNX importer  */
/* copies the tensor in). The weights point quantizes it (c->w); backward    */
/* sums the output gradient over the batch into gp[0], so it can be trained.*/
/* ------------------------------------------------------------------------ */

int qt__op_const(qt_opctx *c, int action)
{
    qt_node *n = c->n;
    size_t N = N_CUR(c), per = n->per;
    if (action == QT_ACT_SHAPE) {
        int rc = check_dims_attr(c, "const", n->a.rank, n->a.shape);
        if (rc) return rc;
        qt__set_dims(n, n->a.rank, n->a.shape);
        param_dims(&n->p[QT_P_W], n->a.rank, n->a.shape);
        return QT_OK;
    }
    if (action == QT_ACT_FORWARD) {
        for (size_t s = 0; s < N; s++)
            memcpy(n->out.data + s * per, c->w, per * sizeof(float));
        qt__intr_out(c);
        return QT_OK;
    }
    for (size_t s = 0; s < N; s++)
        for (size_t i = 0; i < per; i++) n->gp[0].data[i] += n->gout.data[s * per + i];
    return QT_OK;
}
