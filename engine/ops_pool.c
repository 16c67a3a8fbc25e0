/*
 * ops_pool.c -- max pooling, average pooling, global average pooling and
 * batch normalisation.
 *
 * Layout: activations are [N, C, H, W] row-major; a node's per-sample shape
 * is {C, H, W} (flat features are {F, 1, 1}).
 *
 * ---- Pooling attributes (qt_attr) ----------------------------------------
 *   kernel[2]   kh, kw >= 1.
 *   stride[2]   sh, sw >= 0; 0 means 1 (the ONNX default; note that
 *               PyTorch's default is the kernel size: pass it explicitly).
 *   pad[4]      top, left, bottom, right >= 0, each smaller than the
 *               (dilated) kernel extent on its axis (ONNX's requirement).
 *   dilation[2] maxpool only, >= 0; 0 means 1. avgpool rejects any value
 *               other than 0 or 1.
 *   ceil_mode   output size rounds up instead of down.
 *   count_pad   avgpool: padding counts in the divisor.
 * With the extent E = (k-1)*d + 1, the output size on an axis of length L
 * with paddings p0 (before) and p1 (after) is
 *     floor((L + p0 + p1 - E) / s) + 1            (ceil_mode off)
 *     ceil ((L + p0 + p1 - E) / s) + 1            (ceil_mode on)
 * and with ceil_mode a last window that would start at or beyond L + p0
 * (entirely in the trailing padding) is dropped (PyTorch/ONNX rule). An
 * output smaller than 1 is a shape error naming the input and attributes.
 * Output window (oy, ox) covers input rows oy*sh - pt + ky*dh (ky < kh) and
 * columns ox*sw - pl + kx*dw (kx < kw); positions outside the input are
 * padding.
 *
 * ---- maxpool --------------------------------------------------------------
 *   y = max over the window's positions inside the input (padding is -inf,
 *   never selected). Ties: the first in window order (ky, then kx,
 *   ascending). NaN: if any element of the window is NaN the output is NaN,
 *   and the first NaN is the selected element. A window with no position
 *   inside the input (possible only with dilation) gives -inf and passes no
 *   gradient. Backward routes dy to the selected element (the argmax is
 *   kept from forward in n->save as int32 plane offsets, -1 for none).
 *   Intrinsic (either mode): the max is exact, so the result is quantized
 *   once, element e of the batch with the intrinsic stream at offset
 *   sample_base*per + e (for monotone formats with a deterministic
 *   rounding this equals quantizing the operands first; a stochastic
 *   format rounds the max with its indexed word, not as an operand).
 *   macs = C*H'*W'*kh*kw.
 *
 * ---- avgpool --------------------------------------------------------------
 *   y = (sum of the window's positions inside the input) / D, with
 *   D = count_pad ? positions of the window inside the padded input
 *       (rows -pt..H+pb-1, cols -pl..W+pr-1) : positions inside the input.
 *   Float path: the sum and division in double, rounded to float once.
 *   Backward: each input position of the window gets dy/D.
 *   macs = C*H'*W'*kh*kw.
 *   Intrinsic, format f, with KK = kh*kw, the tap index k = ky*kw + kx
 *   (padding taps are skipped but keep their index), r(i) the intrinsic
 *   random word i (0 unless f rounds stochastically), Q(v) an operand
 *   rounded to f (f's own rounding, but nearest-even if f is stochastic:
 *   engine.h, qt_intrinsic) and
 *       idx = (((sample_base + s)*C + ch)*H'*W' + oy*W' + ox) * (KK + 1):
 *     EACH:  acc = 0; over the taps inside the input in window order,
 *            acc = qt_add(f, acc, Q(x), r(idx + k));
 *            y = qt_quantize1(f, (float)((double)acc / D), r(idx + KK)).
 *     FINAL: (TensorQuant) sum = the taps' float values summed in double in
 *            window order; s = qt_quantize1(f, (float)sum, r(idx));
 *            y = qt_quantize1(f, (float)((double)s / D), r(idx + 1)).
 *
 * ---- gap (global average pool) ---------------------------------------------
 *   [N,C,H,W] -> [N,C] (shape {C,1,1}): the mean over the plane. Exactly
 *   avgpool with kernel HxW, no padding, one output per plane: D = H*W,
 *   KK = H*W, tap index k = iy*W + ix, idx = ((sample_base + s)*C + ch) *
 *   (KK + 1); same intrinsic formulas. Attributes are ignored.
 *   macs = C*H*W.
 *
 * ---- batchnorm -------------------------------------------------------------
 *   Per channel c (the input's first per-sample dim; works on {C,H,W} and on
 *   flat {F,1,1}): parameters gamma = p[QT_P_W], beta = p[QT_P_B], running
 *   mean p[QT_P_RMEAN] and running variance p[QT_P_RVAR], each [C].
 *   eps: attribute, 0 means 1e-5 (must be >= 0). momentum m: attribute,
 *   0 means 0.1 (must be in [0, 1]; a frozen update is not expressible).
 *   Training (g->train): over the M = N*H*W values of the channel,
 *     mean = (sum in double, sample by sample, positions ascending) / M,
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
 *   and per element, e = (sample_base + s)*per + (index within the sample),
 *   r1 = r(2e), r2 = r(2e + 1):
 *     FINAL: (TensorQuant's qbatch_normalization)
 *            y = qt_quantize1(f, qt_quantize1(f, x*inv, r1) + rest, r2);
 *     EACH:  y = qt_add(f, qt_mul(f, Q(x), inv, r1), rest, r2).
 *
 * Threads: OpenMP over planes (pooling, normalisation) or channels
 * (statistics, batchnorm backward); every value is computed in a fixed
 * order, so results do not depend on the thread count.
 */
#include "internal.h"

#include <stdint.h>

#define N_CUR(c) ((size_t)(c)->g->n_cur)
#define PAR_MIN 32768   /* work (inner iterations) below which we stay serial */

/* ------------------------------------------------------------------------ */
/* Pooling geometry                                                          */
/* ------------------------------------------------------------------------ */

typedef struct pgeom {
    int C, H, W;        /* input plane count per sample and plane size */
    int Ho, Wo;         /* output plane */
    int kh, kw, sh, sw, dh, dw;
    int pt, pl, pb, pr;
} pgeom;

static int or1(int v) { return v == 0 ? 1 : v; }

/* output length on one axis; < 1 when no window fits */
static int pool_len(int L, int p0, int p1, int ext, int s, int ceil_mode)
{
    int num = L + p0 + p1 - ext;
    if (num < 0) return 0;
    int out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (out - 1) * s >= L + p0) out--;
    return out;
}

static void geom_attr(const qt_attr *a, const qt_node *in, pgeom *p)
{
    p->C = in->shape[0]; p->H = in->shape[1]; p->W = in->shape[2];
    p->kh = a->kernel[0]; p->kw = a->kernel[1];
    p->sh = or1(a->stride[0]); p->sw = or1(a->stride[1]);
    p->dh = or1(a->dilation[0]); p->dw = or1(a->dilation[1]);
    p->pt = a->pad[0]; p->pl = a->pad[1]; p->pb = a->pad[2]; p->pr = a->pad[3];
}

/* geometry of a pooling node (after SHAPE); gap: the whole plane */
static void geom_of(qt_opctx *c, pgeom *p)
{
    qt_node *in = qt__in(c, 0);
    if (c->n->op == QT_OP_GAP) {
        memset(p, 0, sizeof *p);
        p->C = in->shape[0]; p->H = in->shape[1]; p->W = in->shape[2];
        p->kh = p->H; p->kw = p->W;
        p->sh = p->sw = p->dh = p->dw = 1;
    } else {
        geom_attr(&c->n->a, in, p);
    }
    p->Ho = c->n->shape[1]; p->Wo = c->n->shape[2];
}

static int pool_shape(qt_opctx *c, int is_max)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_attr *a = &n->a;
    pgeom p;
    if (a->kernel[0] < 1 || a->kernel[1] < 1)
        return qt__shape_fail(c, "kernel %dx%d: both sides must be >= 1",
                              a->kernel[0], a->kernel[1]);
    if (a->stride[0] < 0 || a->stride[1] < 0)
        return qt__shape_fail(c, "stride %dx%d: must be >= 0 (0 means 1)",
                              a->stride[0], a->stride[1]);
    if (a->dilation[0] < 0 || a->dilation[1] < 0)
        return qt__shape_fail(c, "dilation %dx%d: must be >= 0 (0 means 1)",
                              a->dilation[0], a->dilation[1]);
    if (!is_max && (or1(a->dilation[0]) != 1 || or1(a->dilation[1]) != 1))
        return qt__shape_fail(c, "dilation %dx%d: avgpool has none (use 0 or 1)",
                              a->dilation[0], a->dilation[1]);
    geom_attr(a, in, &p);
    int eh = (p.kh - 1) * p.dh + 1, ew = (p.kw - 1) * p.dw + 1;
    if (p.pt < 0 || p.pl < 0 || p.pb < 0 || p.pr < 0 ||
        p.pt >= eh || p.pb >= eh || p.pl >= ew || p.pr >= ew)
        return qt__shape_fail(c, "pad %d,%d,%d,%d (t,l,b,r): each must be >= 0 and < "
                              "the kernel extent %dx%d", p.pt, p.pl, p.pb, p.pr, eh, ew);
    int ho = pool_len(p.H, p.pt, p.pb, eh, p.sh, a->ceil_mode != 0);
    int wo = pool_len(p.W, p.pl, p.pr, ew, p.sw, a->ceil_mode != 0);
    if (ho < 1 || wo < 1)
        return qt__shape_fail(c, "input %dx%dx%d, kernel %dx%d stride %dx%d pad %d,%d,%d,%d "
                              "dil %dx%d%s: output %dx%d", p.C, p.H, p.W, p.kh, p.kw,
                              p.sh, p.sw, p.pt, p.pl, p.pb, p.pr, p.dh, p.dw,
                              a->ceil_mode ? " ceil" : "", ho, wo);
    qt__set_chw(n, p.C, ho, wo);
    n->macs = (uint64_t)n->per * (uint64_t)p.kh * (uint64_t)p.kw;
    return QT_OK;
}

static int oom(qt_opctx *c)
{
    return qt__fail(c->err, QT_ENOMEM, -1, "node '%s': out of memory", c->n->name);
}

/* ------------------------------------------------------------------------ */
/* maxpool                                                                   */
/* ------------------------------------------------------------------------ */

static void maxpool_plane(const pgeom *p, const float *X, float *Y, int32_t *A)
{
    for (int oy = 0; oy < p->Ho; oy++) {
        int y0 = oy * p->sh - p->pt;
        for (int ox = 0; ox < p->Wo; ox++) {
            int x0 = ox * p->sw - p->pl;
            float best = -INFINITY;
            int32_t arg = -1;
            for (int ky = 0; ky < p->kh; ky++) {
                int iy = y0 + ky * p->dh;
                if (iy < 0 || iy >= p->H) continue;
                for (int kx = 0; kx < p->kw; kx++) {
                    int ix = x0 + kx * p->dw;
                    if (ix < 0 || ix >= p->W) continue;
                    float v = X[iy * p->W + ix];
                    /* strict >: ties keep the first; a NaN is taken once
                     * and then never replaced (v > NaN is false, and the
                     * isnan test is guarded by best not being NaN) */
                    if (arg < 0 || v > best || (isnan(v) && !isnan(best))) {
                        best = v;
                        arg = iy * p->W + ix;
                    }
                }
            }
            Y[oy * p->Wo + ox] = best;
            A[oy * p->Wo + ox] = arg;
        }
    }
}

int qt__op_maxpool(qt_opctx *c, int action)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    if (action == QT_ACT_SHAPE) return pool_shape(c, 1);
    pgeom p;
    geom_of(c, &p);
    size_t planes = N_CUR(c) * (size_t)p.C, ip = (size_t)p.H * p.W, op = (size_t)p.Ho * p.Wo;
    size_t work = planes * op * (size_t)p.kh * p.kw;
    if (action == QT_ACT_FORWARD) {
        /* the argmax per output element: int32 offsets within the input
         * plane stored in the float scratch's memory (never read as float) */
        if (qt__scratch(c, &n->save, n->per)) return oom(c);
        int32_t *A = (int32_t *)(void *)n->save.data;
        const float *X = in->out.data;
        float *Y = n->out.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++)
            maxpool_plane(&p, X + pl * ip, Y + pl * op, A + pl * op);
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

/* ------------------------------------------------------------------------ */
/* avgpool and gap                                                           */
/* ------------------------------------------------------------------------ */

/* one window: clipped input range [ya,yb) x [xa,xb), its origin, divisor */
typedef struct pwin { int y0, x0, ya, yb, xa, xb; int div; } pwin;

static void avg_window(const pgeom *p, int count_pad, int oy, int ox, pwin *w)
{
    w->y0 = oy * p->sh - p->pt;
    w->x0 = ox * p->sw - p->pl;
    int y1 = w->y0 + p->kh, x1 = w->x0 + p->kw;
    w->ya = w->y0 < 0 ? 0 : w->y0;
    w->xa = w->x0 < 0 ? 0 : w->x0;
    w->yb = y1 > p->H ? p->H : y1;
    w->xb = x1 > p->W ? p->W : x1;
    if (count_pad) {
        int ry = (y1 > p->H + p->pb ? p->H + p->pb : y1) - w->y0;
        int rx = (x1 > p->W + p->pr ? p->W + p->pr : x1) - w->x0;
        w->div = ry * rx;
    } else {
        w->div = (w->yb - w->ya) * (w->xb - w->xa);
    }
}

static int avg_common(qt_opctx *c, int action, int count_pad)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    pgeom p;
    geom_of(c, &p);
    size_t planes = N_CUR(c) * (size_t)p.C, ip = (size_t)p.H * p.W, op = (size_t)p.Ho * p.Wo;
    size_t work = planes * op * (size_t)p.kh * p.kw;
    const float *X = in->out.data;
    if (action == QT_ACT_BACKWARD) {
        const float *D = n->gout.data;
        float *G = in->gout.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++)
            for (int oy = 0; oy < p.Ho; oy++)
                for (int ox = 0; ox < p.Wo; ox++) {
                    pwin w;
                    avg_window(&p, count_pad, oy, ox, &w);
                    float d = (float)((double)D[pl * op + (size_t)oy * p.Wo + ox] / w.div);
                    float *g = G + pl * ip;
                    for (int iy = w.ya; iy < w.yb; iy++)
                        for (int ix = w.xa; ix < w.xb; ix++) g[iy * p.W + ix] += d;
                }
        return QT_OK;
    }
    const qt_format *f = c->q ? c->q->fmt[QT_QP_INTRINSIC] : NULL;
    int each = f && c->q->mode == QT_INTR_EACH;
    uint64_t KK = (uint64_t)p.kh * p.kw, plane0 = c->g->sample_base * (uint64_t)p.C;
    float *Y = n->out.data;
    #pragma omp parallel for schedule(static) if (work > PAR_MIN)
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = X + pl * ip;
        for (int oy = 0; oy < p.Ho; oy++)
            for (int ox = 0; ox < p.Wo; ox++) {
                pwin w;
                avg_window(&p, count_pad, oy, ox, &w);
                size_t o = (size_t)oy * p.Wo + ox;
                float y;
                if (!f) {
                    double s = 0.0;
                    for (int iy = w.ya; iy < w.yb; iy++)
                        for (int ix = w.xa; ix < w.xb; ix++) s += x[iy * p.W + ix];
                    y = (float)(s / w.div);
                } else {
                    uint64_t idx = ((plane0 + pl) * op + o) * (KK + 1);
                    if (each) {
                        float acc = 0.0f;
                        for (int iy = w.ya; iy < w.yb; iy++)
                            for (int ix = w.xa; ix < w.xb; ix++) {
                                uint64_t k = (uint64_t)(iy - w.y0) * p.kw + (uint64_t)(ix - w.x0);
                                acc = qt_add(f, acc, qt__operand(f, x[iy * p.W + ix]),
                                             qt__intr_rand(c->q, idx + k));
                            }
                        y = qt_quantize1(f, (float)((double)acc / w.div),
                                         qt__intr_rand(c->q, idx + KK));
                    } else {
                        double s = 0.0;
                        for (int iy = w.ya; iy < w.yb; iy++)
                            for (int ix = w.xa; ix < w.xb; ix++) s += x[iy * p.W + ix];
                        float sq = qt_quantize1(f, (float)s, qt__intr_rand(c->q, idx));
                        y = qt_quantize1(f, (float)((double)sq / w.div),
                                         qt__intr_rand(c->q, idx + 1));
                    }
                }
                Y[pl * op + o] = y;
            }
    }
    return QT_OK;
}

int qt__op_avgpool(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) return pool_shape(c, 0);
    return avg_common(c, action, c->n->a.count_pad != 0);
}

int qt__op_gap(qt_opctx *c, int action)
{
    if (action == QT_ACT_SHAPE) {
        qt_node *n = c->n, *in = qt__in(c, 0);
        qt__set_dims(n, 1, in->shape);
        n->macs = (uint64_t)in->per;
        return QT_OK;
    }
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
        int C = in->shape[0];
        qt__set_dims(n, in->rank, in->shape);
        n->macs = 2 * (uint64_t)n->per;
        bn_shape_param(&n->p[QT_P_W], C);
        bn_shape_param(&n->p[QT_P_B], C);
        bn_shape_param(&n->p[QT_P_RMEAN], C);
        bn_shape_param(&n->p[QT_P_RVAR], C);
        return QT_OK;
    }
    size_t N = N_CUR(c), C = (size_t)n->shape[0], HW = n->per / C, M = N * HW;
    size_t planes = N * C, per = n->per;
    size_t work = N * per;
    double eps = bn_eps(a);
    const float *X = in->out.data;
    int train = c->g->train;

    if (action == QT_ACT_FORWARD) {
        if (train && M < 2)
            return qt__shape_fail(c, "training needs more than 1 value per channel "
                                  "(batch %zu of %dx%dx%d)", N, n->shape[0],
                                  n->shape[1], n->shape[2]);
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
                double s = 0.0, ss = 0.0;
                for (size_t smp = 0; smp < N; smp++) {
                    const float *x = X + (smp * C + ch) * HW;
                    for (size_t i = 0; i < HW; i++) s += x[i];
                }
                mean = s / (double)M;
                for (size_t smp = 0; smp < N; smp++) {
                    const float *x = X + (smp * C + ch) * HW;
                    for (size_t i = 0; i < HW; i++) {
                        double d = x[i] - mean;
                        ss += d * d;
                    }
                }
                var = ss / (double)M;
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
        float *Y = n->out.data;
        #pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (size_t pl = 0; pl < planes; pl++) {
            size_t smp = pl / C, ch = pl % C;
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
            uint64_t e0 = base + smp * per + ch * HW;
            for (size_t i = 0; i < HW; i++) {
                uint64_t e = e0 + i;
                uint32_t r1 = qt__intr_rand(c->q, 2 * e), r2 = qt__intr_rand(c->q, 2 * e + 1);
                if (each)
                    y[i] = qt_add(f, qt_mul(f, qt__operand(f, x[i]), inv, r1), rest, r2);
                else
                    y[i] = qt_quantize1(f, qt_quantize1(f, x[i] * inv, r1) + rest, r2);
            }
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
        double sdy = 0.0, sdyx = 0.0;
        for (size_t smp = 0; smp < N; smp++) {
            const float *x = X + (smp * C + ch) * HW, *d = D + (smp * C + ch) * HW;
            for (size_t i = 0; i < HW; i++) {
                sdy += d[i];
                sdyx += d[i] * ((x[i] - mean) * inv);
            }
        }
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

int qt__op_gmp(qt_opctx *c, int action)
{
    (void)action;
    return qt__shape_fail(c, "not implemented yet");
}
