/*
 * ops_pool.c -- max pooling, average pooling, global average and max
 * pooling and batch normalisation.
 *
 * Layout: activations are [N, per-sample dims...] row-major. Each op takes
 * a channel axis; the per-sample dims before it are folded into the batch
 * (L their product: an engine sample holds L "folded samples"), and the
 * dims after it are the spatial dims (pools) or the positions (global
 * pools, batchnorm). A (folded sample, channel) pair is a "plane": planes
 * are contiguous, L*C of them per engine sample.
 *
 * ---- Pooling attributes (qt_attr; engine.h) --------------------------------
 *   kernel[3]   the spatial rank S (1..3) is the number of leading entries
 *               >= 1 (kernel[0] < 1 is an error); the input's last S dims
 *               are spatial, the one before them is the channel axis, any
 *               before that fold into the batch. Entries past S must be 0,
 *               as must stride and dilation entries past S and pad entries
 *               past 2S.
 *   stride[3]   >= 0; 0 means 1 (the ONNX default; note that PyTorch's
 *               default is the kernel size: pass it explicitly).
 *   pad[6]      the S begins, then the S ends (2-D: top, left, bottom,
 *               right), each >= 0 and smaller than the (dilated) kernel
 *               extent on its axis (ONNX's requirement).
 *   dilation[3] maxpool only, >= 0; 0 means 1. avgpool rejects any value
 *               other than 0 or 1.
 *   ceil_mode   output size rounds up instead of down.
 *   count_pad   avgpool: padding counts in the divisor.
 * Internally every pool is 3-D (z, y, x = D, H, W): the S spatial dims are
 * the last S of them, the others have size 1 with kernel 1 (2-D: D = 1).
 * With the extent E = (k-1)*d + 1, the output size on an axis of length L
 * with paddings p0 (before) and p1 (after) is
 *     floor((L + p0 + p1 - E) / s) + 1            (ceil_mode off)
 *     ceil ((L + p0 + p1 - E) / s) + 1            (ceil_mode on)
 * and with ceil_mode a last window that would start at or beyond L + p0
 * (entirely in the trailing padding) is dropped (PyTorch/ONNX rule). An
 * output smaller than 1 is a shape error naming the input and attributes.
 * Output window (oz, oy, ox) covers input positions oz*sd - pz + kz*dd
 * (kz < kd), oy*sh - pt + ky*dh and ox*sw - pl + kx*dw; positions outside
 * the input are padding. The output dims are the input's with C kept and
 * the spatial dims replaced. Window order: kz, then ky, then kx ascending.
 *
 * ---- maxpool --------------------------------------------------------------
 *   y = max over the window's positions inside the input (padding is -inf,
 *   never selected). Ties: the first in window order. NaN: if any element
 *   of the window is NaN the output is NaN, and the first NaN is the
 *   selected element. A window with no position inside the input (possible
 *   only with dilation) gives -inf and passes no gradient. Backward routes
 *   dy to the selected element (the argmax is kept from forward in n->save
 *   as int32 plane offsets, -1 for none).
 *   Intrinsic (either mode): the max is exact, so the result is quantized
 *   once, element e of the batch with the intrinsic stream at offset
 *   sample_base*per + e (for monotone formats with a deterministic
 *   rounding this equals quantizing the operands first; a stochastic
 *   format rounds the max with its indexed word, not as an operand).
 *   macs = per*kd*kh*kw (per: the output's per-sample size).
 *
 * ---- avgpool --------------------------------------------------------------
 *   y = (sum of the window's positions inside the input) / D, with
 *   D = count_pad ? positions of the window inside the padded input
 *       (per axis -p0..L+p1-1) : positions inside the input.
 *   Float path: the sum (window order) and division in double, rounded to
 *   float once. Backward: each input position of the window gets dy/D.
 *   macs = per*kd*kh*kw.
 *   Intrinsic, format f, with KK = kd*kh*kw, the tap index
 *   k = (kz*kh + ky)*kw + kx (padding taps are skipped but keep their
 *   index), r(i) the intrinsic random word i (0 unless f rounds
 *   stochastically), Q(v) an operand rounded to f (f's own rounding, but
 *   nearest-even if f is stochastic: engine.h, qt_intrinsic), the plane
 *   pl = s*C + ch of the batch (s the folded sample), P' = Do*Ho*Wo, the
 *   output position o = (oz*Ho + oy)*Wo + ox and
 *       idx = ((sample_base*L*C + pl)*P' + o) * (KK + 1)
 *   (the folded sample counted from the data set, sample_base*L + s, then
 *   the channel: for 2-D and L = 1 the former (sample, ch, oy, ox)):
 *     EACH:  acc = 0; over the taps inside the input in window order,
 *            acc = qt_add(f, acc, Q(x), r(idx + k));
 *            y = qt_quantize1(f, (float)((double)acc / D), r(idx + KK)).
 *     FINAL: (TensorQuant) sum = the taps' float values summed in double in
 *            window order; s = qt_quantize1(f, (float)sum, r(idx));
 *            y = qt_quantize1(f, (float)((double)s / D), r(idx + 1)).
 *
 * ---- gap and gmp (global average and max pool) -----------------------------
 *   The channel axis is attr.axis (0 by default; must be < the input's
 *   rank); per-sample dims before it fold into the batch and every dim
 *   after it is reduced (P positions, their product; P = 1 when there is
 *   none: the output is the input). Output dims: the input's up to and
 *   including the channel axis, then (attr.mode 1, ONNX's [N,C,1,1]) a 1
 *   for each reduced dim; mode 0 drops them ([C,H,W] -> [C]).
 *   gap is exactly avgpool over a 1-D plane of the P positions (row-major
 *   order) with kernel P, no padding and one output per plane: D = P,
 *   KK = P, tap index k = the position, idx = (sample_base*L*C + pl) *
 *   (KK + 1); same intrinsic formulas. macs = the input's per.
 *   gmp is maxpool over the same window: NaN propagates (any NaN: NaN),
 *   ties and backward to the first maximal element; intrinsic: the result
 *   quantized as maxpool's. macs = the input's per. Other attributes are
 *   ignored.
 *
 * ---- batchnorm -------------------------------------------------------------
 *   Per channel c of the channel axis attr.axis (0 by default; dims before
 *   it fold into the batch, the HW values after it are the positions;
 *   works on [C], [C,L], [C,H,W], [C,D,H,W], ...): parameters gamma =
 *   p[QT_P_W], beta = p[QT_P_B], running mean p[QT_P_RMEAN] and running
 *   variance p[QT_P_RVAR], each [C].
 *   eps: attribute, 0 means 1e-5 (must be >= 0). momentum m: attribute,
 *   0 means 0.1 (must be in [0, 1]; a frozen update is not expressible).
 *   Training (g->train): over the M = N*L*HW values of the channel,
 *     mean = (sum in double, folded sample by folded sample, positions
 *            ascending) / M,
 *     var  = (sum of (x - mean)^2 in double, same order) / M   (biased),
 *   used for normalising; the running statistics are updated in forward
 *   (PyTorch's rule, in double, stored as float):
 *     rmean = (1-m)*rmean + m*mean,  rvar = (1-m)*rvar + m*var*M/(M-1)
 *   (unbiased). M == 1 is an error in training (as in PyTorch).
 *   Inference: mean = rmean, var = rvar; nothing is updated.
 *   Float path: y = (float)((x - mean) / sqrt(var + eps) * gamma + beta),
 *   in double. gamma and beta are the (possibly weight/bias-quantized)
 *   copies of the pass.
 *   Backward (dgamma, dbeta and dx are added to): with xhat =
 *   (x - mean)/sqrt(var + eps), dgamma += sum dy*xhat, dbeta += sum dy;
 *     training:  dx = gamma*invstd/M * (M*dy - sum dy - xhat*sum dy*xhat)
 *                (the full gradient through the batch statistics);
 *     inference: dx = dy*gamma/sqrt(rvar + eps).
 *   macs = 2*per (one multiply and one add per element).
 *   Intrinsic, format f: Q(v) rounds an operand or per-channel constant
 *   to f with f's own rounding mode, except that a stochastic f rounds it
 *   to nearest-even (qt_quantize1 of f with round = rne; no random word:
 *   a word of 0 would round every inexact constant up). The per-channel
 *   constants, the same in EACH and FINAL, with all arithmetic in float32,
 *   mean and var rounded to float first and eps as a float:
 *       inv  = Q(1 / Q(sqrtf(Q(var) + eps)));  inv = Q(inv * Q(gamma));
 *       rest = Q(Q(beta) - Q(Q(mean) * inv));
 *   and per element, e = sample_base*per + (index within the batch: the
 *   element's offset from the batch's first), r1 = r(2e), r2 = r(2e + 1):
 *     FINAL: (TensorQuant's qbatch_normalization)
 *            y = qt_quantize1(f, qt_quantize1(f, x*inv, r1) + rest, r2);
 *     EACH:  y = qt_add(f, qt_mul(f, Q(x), inv, r1), rest, r2).
 *   EACH on fixed point (intr_fixed.c's formats) runs as integers with the
 *   same bits: avgpool/gap's chains of qt_add are saturating integer sums
 *   (the division and its rounding stay qt_quantize1's), batchnorm's
 *   element is the one-tap dot product of Q(x) and inv plus rest; a plane
 *   (pools) or stack chunk (batchnorm) holding a NaN operand, and a
 *   channel whose constants are NaN, run the reference loops.
 *
 * Errors: attributes that make no sense (see above; an axis outside the
 * input, a gap/gmp mode other than 0/1) are shape errors naming the node
 * and the input's dims.
 *
 * Threads: OpenMP over planes (pooling, normalisation) or channels
 * (statistics, batchnorm backward); every value is computed in a fixed
 * order, so results do not depend on the thread count.
 */
#include "internal.h"
#include "simd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define N_CUR(c) ((size_t)(c)->g->n_cur)
#define PAR_MIN 32768   /* work (inner iterations) below which we stay serial */



static const char *dims_of(char *buf, size_t cap, const qt_node *n)
{
    return qt__dims_str(buf, cap, n->rank, n->shape);
}

/* ------------------------------------------------------------------------ */
/* Pooling geometry                                                          */
/* ------------------------------------------------------------------------ */

typedef struct pgeom {
    size_t planes;          /* planes per engine sample: L*C */
    int    in[3], out[3];   /* input and output plane dims (z, y, x) */
    int    k[3], s[3], d[3], p0[3], p1[3];
    size_t ip, op, kk;      /* input and output plane sizes, taps per window */
} pgeom;

static int or1(int v) { return v == 0 ? 1 : v; }

/* output length on one axis; < 1 when no window fits */
static int pool_len(int L, int p0, int p1, int ext, int s, int ceil_mode)
{
    long long num = (long long)L + p0 + p1 - ext;
    if (num < 0) return 0;
    long long out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (out - 1) * s >= (long long)L + p0) out--;
    return out > INT32_MAX ? INT32_MAX : (int)out;
}

static void geom_sizes(pgeom *p)
{
    p->ip = (size_t)p->in[0] * p->in[1] * p->in[2];
    p->op = (size_t)p->out[0] * p->out[1] * p->out[2];
    p->kk = (size_t)p->k[0] * p->k[1] * p->k[2];
}

/* the geometry of maxpool/avgpool from the attributes and the input;
 * validates (shape errors naming the node); the output's dims into dims */
static int pool_geom(qt_opctx *c, pgeom *p, int dims[QT_MAX_RANK])
{
    const qt_node *in = qt__in(c, 0);
    const qt_attr *a = &c->n->a;
    int is_max = c->n->op == QT_OP_MAXPOOL, S = 0;
    char b1[48], b2[48], b3[48], b4[48], b5[48], b6[48];

    int rc = qt__spatial_attrs(c, &S);
    if (rc) return rc;
    for (int j = 0; j < S; j++)
        if (!is_max && or1(a->dilation[j]) != 1)
            return qt__shape_fail(c, "dilation %s: avgpool has none (use 0 or 1)",
                        qt__ints(b1, sizeof b1, a->dilation, S, 'x'));
    if (in->rank < S + 1)
        return qt__shape_fail(c, "input %s of '%s': a %d-D pool needs >= %d dims (channels, then "
                    "%d spatial)", dims_of(b1, sizeof b1, in), in->name, S, S + 1, S);

    int lead = in->rank - S - 1, off = 3 - S, ext[3];
    p->planes = 1;
    for (int i = 0; i <= lead; i++) p->planes *= (size_t)in->shape[i];
    for (int j = 0; j < 3; j++) {
        int i = j - off;
        p->in[j] = i < 0 ? 1 : in->shape[lead + 1 + i];
        p->k[j] = i < 0 ? 1 : a->kernel[i];
        p->s[j] = i < 0 ? 1 : or1(a->stride[i]);
        p->d[j] = i < 0 ? 1 : or1(a->dilation[i]);
        p->p0[j] = i < 0 ? 0 : a->pad[i];
        p->p1[j] = i < 0 ? 0 : a->pad[S + i];
        ext[j] = (int)(((long long)p->k[j] - 1) * p->d[j] + 1 > INT32_MAX ? INT32_MAX
                       : ((long long)p->k[j] - 1) * p->d[j] + 1);
    }
    for (int j = off; j < 3; j++)
        if (p->p0[j] < 0 || p->p1[j] < 0 || p->p0[j] >= ext[j] || p->p1[j] >= ext[j])
            return qt__shape_fail(c, "pad %s (begins, then ends): each must be >= 0 and < the kernel "
                        "extent %s", qt__ints(b1, sizeof b1, a->pad, 2 * S, ','),
                        qt__ints(b2, sizeof b2, ext + off, S, 'x'));
    for (int j = off; j < 3; j++)
        if ((long long)p->in[j] + p->p0[j] + p->p1[j] + p->s[j] + ext[j] > INT32_MAX)
            return qt__shape_fail(c, "input %s with kernel %s, stride %s, dilation %s: coordinates "
                        "too large", dims_of(b1, sizeof b1, in), qt__ints(b2, sizeof b2, p->k + off, S, 'x'),
                        qt__ints(b3, sizeof b3, p->s + off, S, 'x'), qt__ints(b4, sizeof b4, p->d + off, S, 'x'));
    int bad = 0;
    for (int j = 0; j < 3; j++) {
        p->out[j] = pool_len(p->in[j], p->p0[j], p->p1[j], ext[j], p->s[j], a->ceil_mode != 0);
        if (p->out[j] < 1) bad = 1;
    }
    if (bad)
        return qt__shape_fail(c, "input %s, kernel %s stride %s pad %s dil %s%s: output %s",
                    dims_of(b1, sizeof b1, in), qt__ints(b2, sizeof b2, p->k + off, S, 'x'),
                    qt__ints(b3, sizeof b3, p->s + off, S, 'x'),
                    qt__ints(b4, sizeof b4, a->pad, 2 * S, ','),
                    qt__ints(b5, sizeof b5, p->d + off, S, 'x'), a->ceil_mode ? " ceil" : "",
                    qt__ints(b6, sizeof b6, p->out + off, S, 'x'));
    /* plane sizes and window taps (products of up to three ints) must fit
     * an int32: the argmax is an int32 plane offset, divisors are ints */
    long long ipl = 1, opl = 1, kkl = 1;
    for (int j = 0; j < 3; j++) {
        ipl *= p->in[j]; opl *= p->out[j]; kkl *= p->k[j];
        if (ipl > INT32_MAX || opl > INT32_MAX || kkl > INT32_MAX)
            return qt__shape_fail(c, "input %s, kernel %s: a plane or window is too large",
                        dims_of(b1, sizeof b1, in), qt__ints(b2, sizeof b2, p->k + off, S, 'x'));
    }
    geom_sizes(p);
    for (int i = 0; i <= lead; i++) dims[i] = in->shape[i];
    for (int i = 0; i < S; i++) dims[lead + 1 + i] = p->out[off + i];
    return QT_OK;
}

/* the geometry of gap/gmp: one window over the P positions after the
 * channel axis; the output's dims into dims, their count into *rank */
static int global_geom(qt_opctx *c, pgeom *p, int dims[QT_MAX_RANK], int *rank)
{
    const qt_node *in = qt__in(c, 0);
    const qt_attr *a = &c->n->a;
    char b1[48];
    if (a->axis < 0 || a->axis >= in->rank)
        return qt__shape_fail(c, "channel axis %d: input %s of '%s' has no such axis", a->axis,
                    dims_of(b1, sizeof b1, in), in->name);
    if (a->mode != 0 && a->mode != 1)
        return qt__shape_fail(c, "mode %d: must be 0 (drop the reduced dims) or 1 (keep them as 1s)",
                    a->mode);
    size_t P = 1;
    p->planes = 1;
    for (int i = 0; i < in->rank; i++) {
        if (i <= a->axis) p->planes *= (size_t)in->shape[i];
        else P *= (size_t)in->shape[i];
    }
    if (P > INT32_MAX)
        return qt__shape_fail(c, "input %s: %zu positions per channel are too many",
                    dims_of(b1, sizeof b1, in), P);
    for (int j = 0; j < 3; j++) {
        p->in[j] = p->k[j] = j == 2 ? (int)P : 1;
        p->out[j] = p->s[j] = p->d[j] = 1;
        p->p0[j] = p->p1[j] = 0;
    }
    geom_sizes(p);
    *rank = a->mode == 1 ? in->rank : a->axis + 1;
    for (int i = 0; i < *rank; i++) dims[i] = i <= a->axis ? in->shape[i] : 1;
    return QT_OK;
}

/* the geometry of a pooling node (after SHAPE succeeded) */
static void geom_of(qt_opctx *c, pgeom *p)
{
    int dims[QT_MAX_RANK], rank;
    if (c->n->op == QT_OP_GAP || c->n->op == QT_OP_GMP)
        global_geom(c, p, dims, &rank);
    else
        pool_geom(c, p, dims);
}

static int pool_shape(qt_opctx *c)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    pgeom p;
    int dims[QT_MAX_RANK], rank = in->rank, rc;
    if (n->op == QT_OP_GAP || n->op == QT_OP_GMP) {
        rc = global_geom(c, &p, dims, &rank);
        if (rc) return rc;
        qt__set_dims(n, rank, dims);
        n->macs = (uint64_t)in->per;
        return QT_OK;
    }
    rc = pool_geom(c, &p, dims);
    if (rc) return rc;
    qt__set_dims(n, rank, dims);
    n->macs = (uint64_t)n->per * (uint64_t)p.kk;
    return QT_OK;
}

static int oom(qt_opctx *c)
{
    return qt__fail(c->err, QT_ENOMEM, -1, "node '%s': out of memory", c->n->name);
}

/* one output index on one axis: the window's origin o0 (input coordinate
 * of tap 0), the taps [k0, k1) whose input is inside (k0 == k1: none), and
 * avgpool's counts of taps inside the input and inside the padded input */
typedef struct pax { int o0, k0, k1, n_in, n_pad; } pax;

/* the tables of the three axes (ax[j] has out[j] entries, in one block to
 * free); NULL on out-of-memory */
static pax *axes_of(const pgeom *p, pax *ax[3])
{
    pax *buf = malloc(((size_t)p->out[0] + p->out[1] + p->out[2]) * sizeof *buf);
    if (!buf) return NULL;
    size_t at = 0;
    for (int j = 0; j < 3; j++) {
        ax[j] = buf + at;
        at += (size_t)p->out[j];
        for (int o = 0; o < p->out[j]; o++) {
            pax *e = &ax[j][o];
            long long o0 = (long long)o * p->s[j] - p->p0[j];
            int k0 = -1, k1 = -1;
            for (int k = 0; k < p->k[j]; k++) {
                long long pos = o0 + (long long)k * p->d[j];
                if (pos < 0) continue;
                if (pos >= p->in[j]) break;
                if (k0 < 0) k0 = k;
                k1 = k + 1;
            }
            long long end = o0 + p->k[j], lim = (long long)p->in[j] + p->p1[j];
            e->o0 = (int)o0;
            e->k0 = k0 < 0 ? 0 : k0;
            e->k1 = k0 < 0 ? 0 : k1;
            e->n_in = e->k1 - e->k0;
            e->n_pad = (int)((end > lim ? lim : end) - o0);
        }
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* maxpool and gmp                                                           */
/* ------------------------------------------------------------------------ */

/* a plane is "flat" when its depth axis is trivial (in 1, kernel 1: every
 * 1-D and 2-D pool, and gap/gmp): the kernels below are instantiated for it
 * with the depth loops compiled away, so that 2-D runs as fast as a 2-D
 * kernel would */
static int flat_of(const pgeom *p)
{
    return p->in[0] == 1 && p->k[0] == 1 && p->out[0] == 1 && p->p0[0] == 0;
}

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void maxpool_plane_k(const pgeom *p, pax *const ax[3], const float *X, float *Y,
                                   int32_t *A, int flat)
{
    const int H = p->in[1], W = p->in[2], dz = p->d[0], dy = p->d[1], dx = p->d[2];
    const int Do = flat ? 1 : p->out[0], Ho = p->out[1], Wo = p->out[2];
    size_t o = 0;
    for (int oz = 0; oz < Do; oz++) {
        const pax *az = &ax[0][oz];
        const int kz0 = flat ? 0 : az->k0, kz1 = flat ? 1 : az->k1, z0 = flat ? 0 : az->o0;
        for (int oy = 0; oy < Ho; oy++) {
            const pax *ay = &ax[1][oy];
            for (int ox = 0; ox < Wo; ox++, o++) {
                const pax *axx = &ax[2][ox];
                float best = -INFINITY;
                int32_t arg = -1;
                for (int kz = kz0; kz < kz1; kz++) {
                    int32_t iz = z0 + kz * dz;
                    for (int ky = ay->k0; ky < ay->k1; ky++) {
                        int32_t row = (iz * H + (ay->o0 + ky * dy)) * W + axx->o0;
                        for (int kx = axx->k0; kx < axx->k1; kx++) {
                            int32_t at = row + kx * dx;
                            float v = X[at];
                            /* strict >: ties keep the first; a NaN is taken
                             * once and then never replaced (v > NaN is
                             * false, and the NaN test is guarded by best
                             * not being NaN); branch-free (random data
                             * would mispredict the comparison) */
                            int take = (arg < 0) | (v > best) | ((v != v) & (best == best));
                            best = take ? v : best;
                            arg = take ? at : arg;
                        }
                    }
                }
                Y[o] = best;
                A[o] = arg;
            }
        }
    }
}

/* the zoo's pool: flat, 2x2 windows, stride 2, no dilation, no padding and
 * every window inside the input; the same selection rule as
 * maxpool_plane_k (window order (0,0), (0,1), (1,0), (1,1)) without the
 * axis tables */
static int pool2x2_of(const pgeom *p)
{
    return flat_of(p) && p->k[1] == 2 && p->k[2] == 2 && p->s[1] == 2 && p->s[2] == 2 &&
           p->d[1] == 1 && p->d[2] == 1 && p->p0[1] == 0 && p->p0[2] == 0 &&
           2 * p->out[1] <= p->in[1] && 2 * p->out[2] <= p->in[2];
}

/* one output row of the 2x2 pool: the selection rule as selects on int32
 * masks (the form GCC vectorises; branches would mispredict on random
 * data), v replacing best if greater, or if v is the first NaN */
QT_CLONES static void pool2x2_row(const float *restrict x0, const float *restrict x1,
                                  float *restrict y, int32_t *restrict a, int Wo,
                                  int32_t r0, int32_t W)
{
    for (int ox = 0; ox < Wo; ox++) {
        float v0 = x0[2 * ox], v1 = x0[2 * ox + 1], v2 = x1[2 * ox], v3 = x1[2 * ox + 1];
        float best = v0;
        int32_t arg = 0;
        int32_t t1 = -(v1 > best) | (-(v1 != v1) & -(best == best));
        best = t1 ? v1 : best;
        arg = t1 ? 1 : arg;
        int32_t t2 = -(v2 > best) | (-(v2 != v2) & -(best == best));
        best = t2 ? v2 : best;
        arg = t2 ? W : arg;
        int32_t t3 = -(v3 > best) | (-(v3 != v3) & -(best == best));
        best = t3 ? v3 : best;
        arg = t3 ? W + 1 : arg;
        y[ox] = best;
        a[ox] = r0 + 2 * ox + arg;
    }
}

static void maxpool_plane_2x2(const pgeom *p, const float *X, float *Y, int32_t *A)
{
    const int W = p->in[2], Ho = p->out[1], Wo = p->out[2];
    for (int oy = 0; oy < Ho; oy++) {
        const float *x0 = X + (size_t)2 * oy * W;
        pool2x2_row(x0, x0 + W, Y + (size_t)oy * Wo, A + (size_t)oy * Wo, Wo, 2 * oy * W, W);
    }
}

static void maxpool_plane(const pgeom *p, pax *const ax[3], const float *X, float *Y,
                          int32_t *A)
{
    if (pool2x2_of(p)) maxpool_plane_2x2(p, X, Y, A);
    else if (flat_of(p)) maxpool_plane_k(p, ax, X, Y, A, 1);
    else maxpool_plane_k(p, ax, X, Y, A, 0);
}

static int max_common(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    pgeom p;
    geom_of(c, &p);
    size_t planes = N_CUR(c) * p.planes, ip = p.ip, op = p.op;
    size_t work = planes * op * p.kk;
    if (action == QT_ACT_FORWARD) {
        /* the argmax per output element: int32 offsets within the input
         * plane stored in the float scratch's memory (never read as float) */
        if (qt__scratch(c, &n->save, n->per)) return oom(c);
        pax *ax[3], *buf = axes_of(&p, ax);
        if (!buf) return oom(c);
        int32_t *A = (int32_t *)(void *)n->save.data;
        const float *X = in->out.data;
        float *Y = n->out.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++)
            maxpool_plane(&p, ax, X + pl * ip, Y + pl * op, A + pl * op);
        free(buf);
        if (c->q && c->q->fmt[QT_QP_INTRINSIC])
            qt__quantize_point(c->q, QT_QP_INTRINSIC, Y, N_CUR(c) * n->per,
                               c->g->sample_base * n->per);
        return QT_OK;
    }
    const int32_t *A = (const int32_t *)(const void *)n->save.data;
    const float *D = n->gout.data;
    float *G = in->gout.data;
    #pragma omp parallel for schedule(static) if (work > PAR_MIN)
    for (size_t pl = 0; pl < planes; pl++)
        for (size_t o = 0; o < op; o++) {
            int32_t k = A[pl * op + o];
            if (k >= 0) G[pl * ip + (size_t)k] += D[pl * op + o];
        }
    return QT_OK;
}

int qt__op_maxpool(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) return pool_shape(c);
    return max_common(c, action);
}

int qt__op_gmp(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) return pool_shape(c);
    return max_common(c, action);
}

/* ------------------------------------------------------------------------ */
/* avgpool and gap                                                           */
/* ------------------------------------------------------------------------ */

/* the window of output (oz, oy, ox): input [o0 + k0, o0 + k1) per axis
 * (no dilation), divisor the product of the per-axis counts (inside the
 * input, or with count_pad inside the padded input) */
#define AXIS(J, O, A, B, DV)                                                     \
    const pax *e##J = &ax[J][O];                                                 \
    const int A = e##J->o0 + e##J->k0, B = e##J->o0 + e##J->k1;                  \
    const int DV = count_pad ? e##J->n_pad : e##J->n_in

/* the float forward of one plane: sums in double, in window order */
ALWAYS_INLINE void avg_fwd_k(const pgeom *p, pax *const ax[3], int count_pad,
                             const float *x, float *y, int flat)
{
    const size_t W = (size_t)p->in[2], HW = (size_t)p->in[1] * W;
    const int Do = flat ? 1 : p->out[0], Ho = p->out[1], Wo = p->out[2];
    size_t o = 0;
    for (int oz = 0; oz < Do; oz++) {
        AXIS(0, oz, za0, zb0, dz0);
        const int za = flat ? 0 : za0, zb = flat ? 1 : zb0, dz = flat ? 1 : dz0;
        for (int oy = 0; oy < Ho; oy++) {
            AXIS(1, oy, ya, yb, dy);
            const int dzy = dz * dy;
            for (int ox = 0; ox < Wo; ox++, o++) {
                AXIS(2, ox, xa, xb, dx);
                double s = 0.0;
                for (int iz = za; iz < zb; iz++)
                    for (int iy = ya; iy < yb; iy++) {
                        const float *xr = x + (size_t)iz * HW + (size_t)iy * W;
                        for (int ix = xa; ix < xb; ix++) s += xr[ix];
                    }
                y[o] = (float)(s / (dzy * dx));
            }
        }
    }
}

/* the backward of one plane: every input position of a window gets dy/D */
ALWAYS_INLINE void avg_bwd_k(const pgeom *p, pax *const ax[3], int count_pad,
                             const float *dp, float *g, int flat)
{
    const size_t W = (size_t)p->in[2], HW = (size_t)p->in[1] * W;
    const int Do = flat ? 1 : p->out[0], Ho = p->out[1], Wo = p->out[2];
    size_t o = 0;
    for (int oz = 0; oz < Do; oz++) {
        AXIS(0, oz, za0, zb0, dz0);
        const int za = flat ? 0 : za0, zb = flat ? 1 : zb0, dz = flat ? 1 : dz0;
        for (int oy = 0; oy < Ho; oy++) {
            AXIS(1, oy, ya, yb, dy);
            const int dzy = dz * dy;
            for (int ox = 0; ox < Wo; ox++, o++) {
                AXIS(2, ox, xa, xb, dx);
                float d = (float)((double)dp[o] / (dzy * dx));
                for (int iz = za; iz < zb; iz++)
                    for (int iy = ya; iy < yb; iy++) {
                        float *gr = g + (size_t)iz * HW + (size_t)iy * W;
                        for (int ix = xa; ix < xb; ix++) gr[ix] += d;
                    }
            }
        }
    }
}

/* the intrinsic forward of one plane (see the top of the file); plane0 is
 * the plane's index counted from the data set */
static void avg_intr(const pgeom *p, pax *const ax[3], int count_pad, const qt_nodeq *q,
                     uint64_t plane0, const float *x, float *y)
{
    const qt_format *f = q->fmt[QT_QP_INTRINSIC];
    const int each = q->mode == QT_INTR_EACH;
    const size_t W = (size_t)p->in[2], HW = (size_t)p->in[1] * W;
    const int Do = p->out[0], Ho = p->out[1], Wo = p->out[2];
    const uint64_t KK = p->kk, kh = (uint64_t)p->k[1], kw = (uint64_t)p->k[2];
    size_t o = 0;
    for (int oz = 0; oz < Do; oz++) {
        AXIS(0, oz, za, zb, dz);
        for (int oy = 0; oy < Ho; oy++) {
            AXIS(1, oy, ya, yb, dy);
            for (int ox = 0; ox < Wo; ox++, o++) {
                AXIS(2, ox, xa, xb, dx);
                const int div = dz * dy * dx;
                const uint64_t idx = (plane0 * p->op + o) * (KK + 1);
                if (!each) {
                    double s = 0.0;
                    for (int iz = za; iz < zb; iz++)
                        for (int iy = ya; iy < yb; iy++) {
                            const float *xr = x + (size_t)iz * HW + (size_t)iy * W;
                            for (int ix = xa; ix < xb; ix++) s += xr[ix];
                        }
                    float sq = qt_quantize1(f, (float)s, qt__intr_rand(q, idx));
                    y[o] = qt_quantize1(f, (float)((double)sq / div), qt__intr_rand(q, idx + 1));
                    continue;
                }
                float acc = 0.0f;
                for (int iz = za; iz < zb; iz++)
                    for (int iy = ya; iy < yb; iy++) {
                        const float *xr = x + (size_t)iz * HW + (size_t)iy * W;
                        uint64_t k0 = ((uint64_t)(iz - e0->o0) * kh + (uint64_t)(iy - e1->o0)) * kw;
                        for (int ix = xa; ix < xb; ix++)
                            acc = qt_add(f, acc, qt__operand(f, xr[ix]),
                                         qt__intr_rand(q, idx + k0 + (uint64_t)(ix - e2->o0)));
                    }
                y[o] = qt_quantize1(f, (float)((double)acc / div), qt__intr_rand(q, idx + KK));
            }
        }
    }
}

/* avg_intr's EACH as integers (intr_fixed.c), the same bits: the plane's
 * operands as integers into xq (ip of them), each window's chain of
 * qt_add the saturating integer sum, then the same division and
 * qt_quantize1 as the reference; QT_ERANGE (nothing written to y) when an
 * operand is NaN */
static int avg_intr_int(const pgeom *p, pax *const ax[3], int count_pad, const qt_nodeq *q,
                        const qt_ifix *k, uint64_t plane0, const float *x, int32_t *xq,
                        float *y)
{
    const qt_format *f = q->fmt[QT_QP_INTRINSIC];
    const size_t W = (size_t)p->in[2], HW = (size_t)p->in[1] * W;
    const int Do = p->out[0], Ho = p->out[1], Wo = p->out[2];
    const uint64_t KK = p->kk;
    float tmp[QT_IFIX_CHUNK];
    for (size_t i0 = 0; i0 < p->ip; i0 += QT_IFIX_CHUNK) {
        size_t m = p->ip - i0 < QT_IFIX_CHUNK ? p->ip - i0 : QT_IFIX_CHUNK;
        if (qt__ifix_operands(f, k, x + i0, xq + i0, m, tmp) != QT_OK) return QT_ERANGE;
    }
    size_t o = 0;
    for (int oz = 0; oz < Do; oz++) {
        AXIS(0, oz, za, zb, dz);
        for (int oy = 0; oy < Ho; oy++) {
            AXIS(1, oy, ya, yb, dy);
            for (int ox = 0; ox < Wo; ox++, o++) {
                AXIS(2, ox, xa, xb, dx);
                const int div = dz * dy * dx;
                const uint64_t idx = (plane0 * p->op + o) * (KK + 1);
                int32_t acc = 0;
                for (int iz = za; iz < zb; iz++)
                    for (int iy = ya; iy < yb; iy++)
                        acc = qt__ifix_sum(k, acc, xq + (size_t)iz * HW + (size_t)iy * W + xa,
                                           xb > xa ? (size_t)(xb - xa) : 0);
                float a = (float)acc * k->iscale + 0.0f;
                y[o] = qt_quantize1(f, (float)((double)a / div), qt__intr_rand(q, idx + KK));
            }
        }
    }
    return QT_OK;
}
#undef AXIS

static int avg_common(qt_opctx *c, int action, int count_pad)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    pgeom p;
    geom_of(c, &p);
    size_t planes = N_CUR(c) * p.planes, ip = p.ip, op = p.op;
    size_t work = planes * op * p.kk;
    const int flat = flat_of(&p);
    pax *ax[3], *buf = axes_of(&p, ax);
    if (!buf) return oom(c);
    if (action == QT_ACT_BACKWARD) {
        const float *D = n->gout.data;
        float *G = in->gout.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++) {
            if (flat) avg_bwd_k(&p, ax, count_pad, D + pl * op, G + pl * ip, 1);
            else avg_bwd_k(&p, ax, count_pad, D + pl * op, G + pl * ip, 0);
        }
    } else if (!(c->q && c->q->fmt[QT_QP_INTRINSIC])) {
        const float *X = in->out.data;
        float *Y = n->out.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++) {
            if (flat) avg_fwd_k(&p, ax, count_pad, X + pl * ip, Y + pl * op, 1);
            else avg_fwd_k(&p, ax, count_pad, X + pl * ip, Y + pl * op, 0);
        }
    } else {
        const float *X = in->out.data;
        float *Y = n->out.data;
        const uint64_t plane0 = c->g->sample_base * (uint64_t)p.planes;
        qt_ifix k = { 0 };
        int32_t *XQ = NULL;
        if (c->q->mode == QT_INTR_EACH && qt__ifix_of(c->q->fmt[QT_QP_INTRINSIC], &k)) {
            /* the input's operands as integers, in scratch kept for the
             * planned batch */
            if (qt__scratch(c, &n->save, in->per)) { free(buf); return oom(c); }
            XQ = (int32_t *)(void *)n->save.data;
        }
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++)
            if (!XQ || avg_intr_int(&p, ax, count_pad, c->q, &k, plane0 + pl, X + pl * ip,
                                    XQ + pl * ip, Y + pl * op) != QT_OK)
                avg_intr(&p, ax, count_pad, c->q, plane0 + pl, X + pl * ip, Y + pl * op);
    }
    free(buf);
    return QT_OK;
}

int qt__op_avgpool(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) return pool_shape(c);
    return avg_common(c, action, c->n->a.count_pad != 0);
}

int qt__op_gap(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) return pool_shape(c);
    return avg_common(c, action, 0);
}

/* ------------------------------------------------------------------------ */
/* batchnorm                                                                 */
/* ------------------------------------------------------------------------ */

static double bn_eps(const qt_attr *a) { return a->eps == 0.0f ? 1e-5 : (double)a->eps; }
static double bn_mom(const qt_attr *a) { return a->momentum == 0.0f ? 0.1 : (double)a->momentum; }

/* per-channel statistics kept from forward to backward in n->save2, as
 * doubles: mean, var, invstd for each channel */
enum { BN_MEAN = 0, BN_VAR = 1, BN_INV = 2, BN_STATS = 3 };

/* Training's per-channel sums, in double over BN_LANES interleaved partial
 * sums combined in lane order: one chain per element was latency-bound
 * (a fifth of a ResNet training step); the fixed lanes vectorise and give
 * the same bits in every clone. */
#define BN_LANES 8

static double bn_lanes_sum(const double *a)
{
    double s = 0.0;
    for (int j = 0; j < BN_LANES; j++) s += a[j];
    return s;
}

/* s[0] += sum of x, s[1] += sum of (x - mean)^2 (when sq) */
QT_CLONES static void bn_sums(const float *x, size_t n, double mean, int sq, double *s)
{
    double a[BN_LANES] = { 0 };
    size_t i = 0;
    if (sq) {
        for (; i + BN_LANES <= n; i += BN_LANES)
            for (int j = 0; j < BN_LANES; j++) {
                double d = (double)x[i + j] - mean;
                a[j] += d * d;
            }
        for (; i < n; i++) {
            double d = (double)x[i] - mean;
            a[0] += d * d;
        }
        s[1] += bn_lanes_sum(a);
    } else {
        for (; i + BN_LANES <= n; i += BN_LANES)
            for (int j = 0; j < BN_LANES; j++) a[j] += (double)x[i + j];
        for (; i < n; i++) a[0] += (double)x[i];
        s[0] += bn_lanes_sum(a);
    }
}

/* backward: s[0] += sum of d, s[1] += sum of d * (x - mean) * inv */
QT_CLONES static void bn_grad_sums(const float *x, const float *d, size_t n, double mean,
                                   double inv, double *s)
{
    double a[BN_LANES] = { 0 }, b[BN_LANES] = { 0 };
    size_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int j = 0; j < BN_LANES; j++) {
            a[j] += (double)d[i + j];
            b[j] += (double)d[i + j] * (((double)x[i + j] - mean) * inv);
        }
    for (; i < n; i++) {
        a[0] += (double)d[i];
        b[0] += (double)d[i] * (((double)x[i] - mean) * inv);
    }
    s[0] += bn_lanes_sum(a);
    s[1] += bn_lanes_sum(b);
}

static void bn_shape_param(qt_tensor *t, int C)
{
    qt__param_dims(t, 1, &C);
}

/* the intrinsic per-channel constants (see the top of the file) */
static void bn_consts(const qt_format *f, float mean, float var, float eps, float gamma,
                      float beta, float *inv, float *rest)
{
    float v = qt__operand(f, sqrtf(qt__operand(f, var) + eps));
    float i = qt__operand(f, 1.0f / v);
    i = qt__operand(f, i * qt__operand(f, gamma));
    float mi = qt__operand(f, qt__operand(f, mean) * i);
    *inv = i;
    *rest = qt__operand(f, qt__operand(f, beta) - mi);
}

/* the intrinsic elements [0, n) of a plane from element e0 on (see the top
 * of the file), the reference loops */
static void bn_intr_ref(const qt_format *f, const qt_nodeq *q, int each, const float *x,
                        float *y, size_t n, float inv, float rest, uint64_t e0)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t e = e0 + i;
        uint32_t r1 = qt__intr_rand(q, 2 * e), r2 = qt__intr_rand(q, 2 * e + 1);
        if (each)
            y[i] = qt_add(f, qt_mul(f, qt__operand(f, x[i]), inv, r1), rest, r2);
        else
            y[i] = qt_quantize1(f, qt_quantize1(f, x[i] * inv, r1) + rest, r2);
    }
}

/* EACH on fixed point as integers (intr_fixed.c), the same bits as
 * bn_intr_ref: inv and rest are values of f (not NaN), so qt_mul(Q(x),
 * inv) is the one-tap dot product sat(rnd(Q(x)*inv)) with element e's
 * word 2e, and adding rest is exact (only saturates); a chunk holding a
 * NaN operand runs the reference */
static void bn_each_int(const qt_ifix *k, const qt_format *f, const qt_nodeq *q, qt_rkey key,
                        const float *x, float *y, size_t n, float inv, float rest, uint64_t e0)
{
    const int32_t qi = (int32_t)(inv * k->scale), qr = (int32_t)(rest * k->scale);
    int32_t qx[QT_IFIX_CHUNK], acc[QT_IFIX_CHUNK];
    float tmp[QT_IFIX_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += QT_IFIX_CHUNK) {
        size_t m = n - i0 < QT_IFIX_CHUNK ? n - i0 : QT_IFIX_CHUNK;
        if (qt__ifix_operands(f, k, x + i0, qx, m, tmp) != QT_OK) {
            bn_intr_ref(f, q, 1, x + i0, y + i0, m, inv, rest, e0 + i0);
            continue;
        }
        memset(acc, 0, m * sizeof *acc);
        qt__ifix_dot(k, acc, m, &qi, 1, 1, qx, m, key, 2 * (e0 + i0), 2);
        qt__ifix_finish(k, acc, m, &qr, y + i0, 1);
    }
}

int qt__op_batchnorm(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    if (action == QT_ACT_SHAPE) {
        if (!(a->eps >= 0.0f) || isinf(a->eps))
            return qt__shape_fail(c, "eps %g must be finite and >= 0 (0 means 1e-5)",
                                  (double)a->eps);
        if (!(a->momentum >= 0.0f && a->momentum <= 1.0f))
            return qt__shape_fail(c, "momentum %g must be in [0, 1] (0 means 0.1)",
                                  (double)a->momentum);
        char b1[48];
        if (a->axis < 0 || a->axis >= in->rank)
            return qt__shape_fail(c, "channel axis %d: input %s of '%s' has no such axis", a->axis,
                        dims_of(b1, sizeof b1, in), in->name);
        int C = in->shape[a->axis];
        qt__set_dims(n, in->rank, in->shape);
        n->macs = 2 * (uint64_t)n->per;
        bn_shape_param(&n->p[QT_P_W], C);
        bn_shape_param(&n->p[QT_P_B], C);
        bn_shape_param(&n->p[QT_P_RMEAN], C);
        bn_shape_param(&n->p[QT_P_RVAR], C);
        return QT_OK;
    }
    /* N folded samples of C channels of HW positions */
    size_t L = 1, C = (size_t)n->shape[a->axis], HW = 1;
    for (int i = 0; i < n->rank; i++) {
        if (i < a->axis) L *= (size_t)n->shape[i];
        else if (i > a->axis) HW *= (size_t)n->shape[i];
    }
    size_t N = N_CUR(c) * L, M = N * HW;
    size_t planes = N * C, per = n->per;
    size_t work = N_CUR(c) * per;
    double eps = bn_eps(a);
    const float *X = in->out.data;
    int train = c->g->train;

    if (action == QT_ACT_FORWARD) {
        if (train && M < 2) {
            char b1[48];
            return qt__shape_fail(c, "training needs more than 1 value per channel (batch %zu of %s, "
                        "channel axis %d)", N_CUR(c), dims_of(b1, sizeof b1, n), a->axis);
        }
        /* enough scratch for BN_STATS doubles per channel */
        size_t b = (size_t)c->g->batch, need = (2 * BN_STATS * C + b - 1) / b;
        if (qt__scratch(c, &n->save2, need)) return oom(c);
        double *st = (double *)(void *)n->save2.data;
        float *rm = n->p[QT_P_RMEAN].data, *rv = n->p[QT_P_RVAR].data;
        double mom = bn_mom(a);
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t ch = 0; ch < C; ch++) {
            double mean, var;
            if (train) {
                double s[2] = { 0.0, 0.0 };
                for (size_t smp = 0; smp < N; smp++)
                    bn_sums(X + (smp * C + ch) * HW, HW, 0.0, 0, s);
                mean = s[0] / (double)M;
                for (size_t smp = 0; smp < N; smp++)
                    bn_sums(X + (smp * C + ch) * HW, HW, mean, 1, s);
                var = s[1] / (double)M;
                rm[ch] = (float)((1.0 - mom) * rm[ch] + mom * mean);
                rv[ch] = (float)((1.0 - mom) * rv[ch] + mom * var * (double)M / (double)(M - 1));
            } else {
                mean = rm[ch];
                var = rv[ch];
            }
            st[ch * BN_STATS + BN_MEAN] = mean;
            st[ch * BN_STATS + BN_VAR] = var;
            st[ch * BN_STATS + BN_INV] = 1.0 / sqrt(var + eps);
        }
        const qt_format *f = c->q ? c->q->fmt[QT_QP_INTRINSIC] : NULL;
        int each = f && c->q->mode == QT_INTR_EACH;
        uint64_t base = c->g->sample_base * (uint64_t)per;
        const float *gam = c->w, *bet = c->b;
        qt_ifix ik;
        int ifix = each && qt__ifix_of(f, &ik);
        qt_rkey key = ifix ? qt_rand_key(c->q->seed, c->q->stream ^ QT_QP_INTRINSIC)
                           : (qt_rkey){ 0, 0 };
        float *Y = n->out.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++) {
            size_t ch = pl % C;
            const double *s = st + ch * BN_STATS;
            const float *x = X + pl * HW;
            float *y = Y + pl * HW;
            if (!f) {
                double mean = s[BN_MEAN], k = s[BN_INV] * gam[ch], b0 = bet[ch];
                for (size_t i = 0; i < HW; i++) y[i] = (float)((x[i] - mean) * k + b0);
                continue;
            }
            float inv, rest;
            bn_consts(f, (float)s[BN_MEAN], (float)s[BN_VAR], (float)eps, gam[ch], bet[ch],
                      &inv, &rest);
            uint64_t e0 = base + pl * HW;
            if (each && ifix && inv == inv && rest == rest)
                bn_each_int(&ik, f, c->q, key, x, y, HW, inv, rest, e0);
            else
                bn_intr_ref(f, c->q, each, x, y, HW, inv, rest, e0);
        }
        return QT_OK;
    }

    /* backward */
    const double *st = (const double *)(const void *)n->save2.data;
    const float *D = n->gout.data, *gam = c->w;
    float *G = in->gout.data, *dg = n->gp[0].data, *db = n->gp[1].data;
    #pragma omp parallel for schedule(static) if (work > PAR_MIN)
    for (size_t ch = 0; ch < C; ch++) {
        double mean = st[ch * BN_STATS + BN_MEAN], inv = st[ch * BN_STATS + BN_INV];
        double gs[2] = { 0.0, 0.0 };
        for (size_t smp = 0; smp < N; smp++)
            bn_grad_sums(X + (smp * C + ch) * HW, D + (smp * C + ch) * HW, HW, mean, inv, gs);
        double sdy = gs[0], sdyx = gs[1];
        dg[ch] += (float)sdyx;
        db[ch] += (float)sdy;
        double k = gam[ch] * inv;
        for (size_t smp = 0; smp < N; smp++) {
            const float *x = X + (smp * C + ch) * HW, *d = D + (smp * C + ch) * HW;
            float *g = G + (smp * C + ch) * HW;
            if (train) {
                double kM = k / (double)M;
                for (size_t i = 0; i < HW; i++) {
                    double xh = (x[i] - mean) * inv;
                    g[i] += (float)(kM * ((double)M * d[i] - sdy - xh * sdyx));
                }
            } else {
                for (size_t i = 0; i < HW; i++) g[i] += (float)(k * d[i]);
            }
        }
    }
    return QT_OK;
}
