/*
 * ops_conv.c -- conv2d: stride, asymmetric padding, dilation, groups.
 *
 * Layouts: input [N, C, H, W], output [N, O, H', W'], weights
 * [O, C/groups, kh, kw], bias [O]. A group g maps input channels
 * g*Cg..(g+1)*Cg-1 to output channels g*Og..(g+1)*Og-1.
 *
 * Float path (forward and backward): the batch is processed in chunks of T
 * samples (T from the layer's shape only, so that the column buffer stays
 * under COL_BUDGET floats). A chunk is unfolded once (im2col) into
 * col[C*kh*kw][T*P] (P = H'*W'; row r = (c, ky, kx), column t*P + p), and
 * each group is one sgemm over the whole chunk:
 *     forward   Yt_g [Og, T*P]  = W_g [Og, Kg] col_g [Kg, T*P]
 *     backward  dW_g [Og, Kg]  += dYt_g [Og, T*P] col_g^T
 *               dcol_g [Kg, T*P] = W_g^T dYt_g      (then col2im into dX)
 * where Yt/dYt are the chunk's outputs with channels outermost (scattered
 * to / gathered from NCHW, skipped when T == 1). OpenBLAS threads the
 * sgemms; the data movement around them is serial on purpose: with the
 * pthread OpenBLAS, OpenMP regions between sgemm calls make the two
 * thread pools spin against each other (3-4x slower on 2 cores). So the
 * float path does not depend on the OpenMP thread count at all; it does
 * depend, in the last bits, on OpenBLAS's thread count and on the chunk
 * (the Haswell sgemm kernels round differently for other partitions).
 *
 * Intrinsic path: direct loops over (sample, output channel) in parallel,
 * every output element summed in the documented order with its random
 * words indexed by (sample_base + s, co, oy, ox) -- see engine.h and
 * qt__op_conv below.
 */
#include "internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

/* floats in the column buffer (and in the channel-major output buffer)
 * above which a chunk is not grown further */
#define COL_BUDGET ((size_t)1 << 20)

typedef struct geom {
    int    C, H, W;          /* input per sample */
    int    O, Ho, Wo;        /* output per sample */
    int    kh, kw, sh, sw, dh, dw, pt, pl;
    int    groups, Cg, Og;   /* groups; input and output channels per group */
    size_t Kg;               /* taps per output element: Cg*kh*kw */
    size_t rows;             /* im2col rows: C*kh*kw */
    size_t P;                /* output positions: Ho*Wo */
    size_t in_per;           /* C*H*W */
} geom;

/* The layer's geometry from the attributes and the input's shape; fails
 * (naming the node, via qt__shape_fail) on impossible attributes. */
static int geom_of(qt_opctx *c, geom *G)
{
    const qt_node *in = qt__in(c, 0);
    const qt_attr *a = &c->n->a;
    int C = in->shape[0], H = in->shape[1], W = in->shape[2];

    if (a->kernel[0] < 1 || a->kernel[1] < 1)
        return qt__shape_fail(c, "kernel %dx%d: both sides must be >= 1",
                              a->kernel[0], a->kernel[1]);
    if (a->stride[0] < 0 || a->stride[1] < 0)
        return qt__shape_fail(c, "stride %dx%d must be >= 0 (0 means 1)",
                              a->stride[0], a->stride[1]);
    if (a->dilation[0] < 0 || a->dilation[1] < 0)
        return qt__shape_fail(c, "dilation %dx%d must be >= 0 (0 means 1)",
                              a->dilation[0], a->dilation[1]);
    if (a->pad[0] < 0 || a->pad[1] < 0 || a->pad[2] < 0 || a->pad[3] < 0)
        return qt__shape_fail(c, "padding %d,%d,%d,%d (top,left,bottom,right) must be >= 0",
                              a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
    if (a->out < 1)
        return qt__shape_fail(c, "needs out >= 1 output channels (got %d)", a->out);
    if (a->groups < 0)
        return qt__shape_fail(c, "groups %d must be >= 0 (0 means 1)", a->groups);

    G->C = C; G->H = H; G->W = W;
    G->O = a->out;
    G->kh = a->kernel[0]; G->kw = a->kernel[1];
    G->sh = a->stride[0] ? a->stride[0] : 1;
    G->sw = a->stride[1] ? a->stride[1] : 1;
    G->dh = a->dilation[0] ? a->dilation[0] : 1;
    G->dw = a->dilation[1] ? a->dilation[1] : 1;
    G->pt = a->pad[0]; G->pl = a->pad[1];
    G->groups = a->groups ? a->groups : 1;

    if (C % G->groups)
        return qt__shape_fail(c, "groups %d do not divide the %d input channels of '%s'",
                              G->groups, C, in->name);
    if (G->O % G->groups)
        return qt__shape_fail(c, "groups %d do not divide the %d output channels",
                              G->groups, G->O);
    G->Cg = C / G->groups;
    G->Og = G->O / G->groups;

    /* extent of the padded input minus that of the dilated kernel, plus 1 */
    long long eh = (long long)H + a->pad[0] + a->pad[2] - (long long)G->dh * (G->kh - 1);
    long long ew = (long long)W + a->pad[1] + a->pad[3] - (long long)G->dw * (G->kw - 1);
    if (eh < 1 || ew < 1)
        return qt__shape_fail(c, "input %dx%dx%d with kernel %dx%d, pad %d,%d,%d,%d, "
                              "dilation %dx%d gives no output", C, H, W, G->kh, G->kw,
                              a->pad[0], a->pad[1], a->pad[2], a->pad[3], G->dh, G->dw);
    long long Ho = (eh - 1) / G->sh + 1, Wo = (ew - 1) / G->sw + 1;
    long long taps = (long long)G->Cg * G->kh * G->kw;
    long long P = Ho * Wo;
    /* every size handed to sgemm or to the arenas as an int must fit */
    if (Ho > INT_MAX || Wo > INT_MAX || taps > INT_MAX / G->groups
        || P > INT_MAX / G->O || P > INT_MAX / (taps * G->groups)
        || taps > INT_MAX / G->O)
        return qt__shape_fail(c, "input %dx%dx%d with kernel %dx%d and %d outputs is too large",
                              C, H, W, G->kh, G->kw, G->O);
    G->Ho = (int)Ho; G->Wo = (int)Wo;
    G->Kg = (size_t)taps;
    G->rows = (size_t)taps * (size_t)G->groups;
    G->P = (size_t)P;
    G->in_per = (size_t)C * H * W;
    return QT_OK;
}

/* outputs o in [*lo, *hi) with 0 <= o*stride + off < in */
static void valid_range(int off, int stride, int in, int n_out, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = in - 1 - off < 0 ? 0 : (in - 1 - off) / stride + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* samples per chunk of the float path: a function of the shape only */
static size_t chunk_of(const geom *G, size_t n)
{
    size_t widest = G->rows > (size_t)G->O ? G->rows : (size_t)G->O;
    size_t t = COL_BUDGET / (widest * G->P);
    if (t < 1) t = 1;
    return t < n ? t : n;
}

/* col[r][t*P + p] = X[t][c][oy*sh - pt + ky*dh][ox*sw - pl + kx*dw] (0 in the
 * padding), r = (c*kh + ky)*kw + kx, for the T samples at X */
static void im2col(const geom *G, const float *X, size_t T, float *col)
{
    size_t TP = T * G->P, kk = (size_t)G->kh * G->kw;
    for (size_t r = 0; r < G->rows; r++) {
        int ch = (int)(r / kk), ky = (int)(r % kk) / G->kw, kx = (int)(r % kk) % G->kw;
        int offy = ky * G->dh - G->pt, offx = kx * G->dw - G->pl;
        int oy0, oy1, ox0, ox1;
        valid_range(offy, G->sh, G->H, G->Ho, &oy0, &oy1);
        valid_range(offx, G->sw, G->W, G->Wo, &ox0, &ox1);
        for (size_t t = 0; t < T; t++) {
            const float *x = X + t * G->in_per + (size_t)ch * G->H * G->W;
            float *dst = col + r * TP + t * G->P;
            for (int oy = 0; oy < G->Ho; oy++) {
                float *d = dst + (size_t)oy * G->Wo;
                if (oy < oy0 || oy >= oy1) {
                    memset(d, 0, (size_t)G->Wo * sizeof *d);
                    continue;
                }
                const float *xr = x + (size_t)(oy * G->sh + offy) * G->W;
                for (int ox = 0; ox < ox0; ox++) d[ox] = 0.0f;
                if (G->sw == 1)
                    memcpy(d + ox0, xr + ox0 + offx, (size_t)(ox1 - ox0) * sizeof *d);
                else
                    for (int ox = ox0; ox < ox1; ox++) d[ox] = xr[ox * G->sw + offx];
                for (int ox = ox1; ox < G->Wo; ox++) d[ox] = 0.0f;
            }
        }
    }
}

/* the adjoint of im2col: DX[t][c] += every col entry that was read from it,
 * plane by plane, taps in a fixed order */
static void col2im(const geom *G, const float *col, size_t T, float *DX)
{
    size_t TP = T * G->P, planes = T * (size_t)G->C, hw = (size_t)G->H * G->W;
    for (size_t i = 0; i < planes; i++) {
        size_t t = i / (size_t)G->C;
        int ch = (int)(i % (size_t)G->C);
        float *dx = DX + i * hw;
        for (int ky = 0; ky < G->kh; ky++)
            for (int kx = 0; kx < G->kw; kx++) {
                size_t r = ((size_t)ch * G->kh + ky) * G->kw + kx;
                const float *src = col + r * TP + t * G->P;
                int offy = ky * G->dh - G->pt, offx = kx * G->dw - G->pl;
                int oy0, oy1, ox0, ox1;
                valid_range(offy, G->sh, G->H, G->Ho, &oy0, &oy1);
                valid_range(offx, G->sw, G->W, G->Wo, &ox0, &ox1);
                for (int oy = oy0; oy < oy1; oy++) {
                    float *xr = dx + (size_t)(oy * G->sh + offy) * G->W + offx;
                    const float *s = src + (size_t)oy * G->Wo;
                    for (int ox = ox0; ox < ox1; ox++) xr[ox * G->sw] += s[ox];
                }
            }
    }
}

static int oom(qt_opctx *c)
{
    return qt__fail(c->err, QT_ENOMEM, -1, "node '%s' (conv): out of memory", c->n->name);
}

/* the float path's buffers: col [rows, T*P] in save, the channel-major
 * outputs [O, T*P] in save2 (for the planned batch's chunk) */
static int float_buffers(qt_opctx *c, const geom *G, size_t *T)
{
    size_t batch = (size_t)c->g->batch;
    size_t Tmax = chunk_of(G, batch);
    size_t per_col = (G->rows * Tmax * G->P + batch - 1) / batch;
    size_t per_out = ((size_t)G->O * Tmax * G->P + batch - 1) / batch;
    if (qt__scratch(c, &c->n->save, per_col)) return oom(c);
    if (Tmax > 1 && qt__scratch(c, &c->n->save2, per_out)) return oom(c);
    *T = chunk_of(G, (size_t)c->g->n_cur);
    return QT_OK;
}

static int forward_float(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t N = (size_t)c->g->n_cur, T, O = (size_t)G->O, P = G->P;
    const float *X = in->out.data, *Wt = c->w, *B = n->p[QT_P_B].size ? c->b : NULL;
    float *Y = n->out.data;
    int rc = float_buffers(c, G, &T);
    if (rc) return rc;
    float *col = n->save.data;
    for (size_t s0 = 0; s0 < N; s0 += T) {
        size_t t = T < N - s0 ? T : N - s0, TP = t * P;
        float *dst = t == 1 ? Y + s0 * O * P : n->save2.data;
        im2col(G, X + s0 * G->in_per, t, col);
        for (int g = 0; g < G->groups; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G->Og, (int)TP, (int)G->Kg,
                        1.0f, Wt + (size_t)g * G->Og * G->Kg, (int)G->Kg,
                        col + (size_t)g * G->Kg * TP, (int)TP,
                        0.0f, dst + (size_t)g * G->Og * TP, (int)TP);
        if (t == 1 && !B) continue;
        /* scatter [O][t*P] to [t][O][P], adding the bias */
        for (size_t i = 0; i < t * O; i++) {
            size_t tt = i / O, co = i % O;
            float bv = B ? B[co] : 0.0f;
            const float *src = dst + co * TP + tt * P;
            float *y = Y + (s0 + tt) * O * P + co * P;
            for (size_t p = 0; p < P; p++) y[p] = src[p] + bv;
        }
    }
    return QT_OK;
}

static int backward_float(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t N = (size_t)c->g->n_cur, T, O = (size_t)G->O, P = G->P;
    const float *X = in->out.data, *Wt = c->w, *DY = n->gout.data;
    float *DX = in->gout.data, *DW = n->gp[0].data, *DB = n->gp[1].size ? n->gp[1].data : NULL;
    int rc = float_buffers(c, G, &T);
    if (rc) return rc;
    float *col = n->save.data;
    for (size_t s0 = 0; s0 < N; s0 += T) {
        size_t t = T < N - s0 ? T : N - s0, TP = t * P;
        const float *dyt = DY + s0 * O * P;
        if (t > 1) {
            /* gather [t][O][P] to [O][t*P] */
            float *buf = n->save2.data;
            for (size_t i = 0; i < t * O; i++) {
                size_t tt = i / O, co = i % O;
                memcpy(buf + co * TP + tt * P, DY + (s0 + tt) * O * P + co * P, P * sizeof *buf);
            }
            dyt = buf;
        }
        if (DB)
            for (size_t co = 0; co < O; co++) {
                double s = 0.0;
                for (size_t p = 0; p < TP; p++) s += dyt[co * TP + p];
                DB[co] += (float)s;
            }
        im2col(G, X + s0 * G->in_per, t, col);
        for (int g = 0; g < G->groups; g++) {
            const float *wg = Wt + (size_t)g * G->Og * G->Kg, *dyg = dyt + (size_t)g * G->Og * TP;
            float *colg = col + (size_t)g * G->Kg * TP;
            /* dW_g += dY_g col_g^T, then col_g := W_g^T dY_g (dcol) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, G->Og, (int)G->Kg, (int)TP,
                        1.0f, dyg, (int)TP, colg, (int)TP,
                        1.0f, DW + (size_t)g * G->Og * G->Kg, (int)G->Kg);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)G->Kg, (int)TP, G->Og,
                        1.0f, wg, (int)G->Kg, dyg, (int)TP, 0.0f, colg, (int)TP);
        }
        col2im(G, col, t, DX + s0 * G->in_per);
    }
    return QT_OK;
}

/* intrinsic forward, EACH or FINAL (engine.h): one output element at a time
 * in the documented order; EACH's operands (input, weights, bias) rounded to
 * f by qt__operand (no random word); random words at
 *   idx = (((sample_base + s)*O + co)*P + oy*W' + ox) * (2*Kg + 2)
 *   + 2k (product of tap k), + 2k+1 (EACH: partial sum after tap k),
 *   + 2Kg (FINAL: the rounded dot product), + 2Kg+1 (the bias add) */
static int forward_intrinsic(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];
    const qt_nodeq *q = c->q;
    int each = q->mode == QT_INTR_EACH;
    size_t N = (size_t)c->g->n_cur, O = (size_t)G->O, P = G->P, K = G->Kg;
    size_t nx = N * G->in_per, nw = O * K;
    const float *X = in->out.data, *Wt = c->w, *B = n->p[QT_P_B].size ? c->b : NULL;
    float *Y = n->out.data, *buf = NULL;
    uint64_t base = c->g->sample_base;

    if (each) {
        /* operands quantized once (a pure function): f's own rounding,
         * nearest-even if f is stochastic (engine.h); only the products
         * and sums below draw indexed random words */
        buf = malloc((nx + nw + O) * sizeof *buf);
        if (!buf) return oom(c);
        float *xq = buf, *wq = buf + nx, *bq = buf + nx + nw;
        #pragma omp parallel for schedule(static) if (nx > 65536)
        for (size_t i = 0; i < nx; i++) xq[i] = qt__operand(f, X[i]);
        for (size_t i = 0; i < nw; i++) wq[i] = qt__operand(f, Wt[i]);
        if (B) for (size_t i = 0; i < O; i++) bq[i] = qt__operand(f, B[i]);
        X = xq; Wt = wq; B = B ? bq : NULL;
    }

    #pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < N * O; i++) {
        size_t s = i / O, co = i % O, g = co / (size_t)G->Og;
        const float *x = X + s * G->in_per + g * (size_t)G->Cg * G->H * G->W;
        const float *w = Wt + co * K;
        float *y = Y + i * P;
        uint64_t row = ((base + s) * O + co) * P;
        for (int oy = 0; oy < G->Ho; oy++)
            for (int ox = 0; ox < G->Wo; ox++) {
                uint64_t idx = (row + (uint64_t)oy * G->Wo + (uint64_t)ox) * (2 * K + 2);
                float acc = 0.0f;
                double sum = 0.0;
                for (int ci = 0; ci < G->Cg; ci++) {
                    const float *xc = x + (size_t)ci * G->H * G->W;
                    for (int ky = 0; ky < G->kh; ky++) {
                        int iy = oy * G->sh - G->pt + ky * G->dh;
                        if (iy < 0 || iy >= G->H) continue;
                        for (int kx = 0; kx < G->kw; kx++) {
                            int ix = ox * G->sw - G->pl + kx * G->dw;
                            if (ix < 0 || ix >= G->W) continue;
                            size_t k = ((size_t)ci * G->kh + ky) * G->kw + kx;
                            float xv = xc[(size_t)iy * G->W + ix], wv = w[k];
                            if (each) {
                                float p = qt_mul(f, wv, xv, qt__intr_rand(q, idx + 2 * k));
                                acc = qt_add(f, acc, p, qt__intr_rand(q, idx + 2 * k + 1));
                            } else {
                                sum += (double)qt_quantize1(f, xv * wv,
                                                            qt__intr_rand(q, idx + 2 * k));
                            }
                        }
                    }
                }
                if (!each) acc = qt_quantize1(f, (float)sum, qt__intr_rand(q, idx + 2 * K));
                if (B)
                    acc = each ? qt_add(f, acc, B[co], qt__intr_rand(q, idx + 2 * K + 1))
                               : qt_quantize1(f, acc + B[co], qt__intr_rand(q, idx + 2 * K + 1));
                y[(size_t)oy * G->Wo + ox] = acc;
            }
    }
    free(buf);
    return QT_OK;
}

int qt__op_conv(qt_opctx *c, int action)
{
    qt_node *n = c->n;
    geom G;
    int rc = geom_of(c, &G);
    if (rc) return rc;
    if (action == QT_ACT_SHAPE) {
        qt__set_chw(n, G.O, G.Ho, G.Wo);
        n->macs = (uint64_t)G.O * G.P * G.Kg;
        qt_tensor *w = &n->p[QT_P_W];
        int wd[4] = { G.O, G.Cg, G.kh, G.kw };
        qt__param_dims(w, 4, wd);
        if (n->a.bias) qt__param_dims(&n->p[QT_P_B], 1, &G.O);
        return QT_OK;
    }
    if (action == QT_ACT_FORWARD) {
        if (c->q && c->q->fmt[QT_QP_INTRINSIC]) return forward_intrinsic(c, &G);
        return forward_float(c, &G);
    }
    return backward_float(c, &G);
}
