/*
 * ops_conv.c -- 1-D, 2-D and 3-D convolution: stride, asymmetric padding,
 * dilation, groups.
 *
 * Spatial rank and layout (engine.h, qt_attr): S (1..3) is the number of
 * leading kernel entries >= 1; kernel, stride and dilation entries past S
 * must be 0, and so must pad entries past 2S (pad holds the S begins, then
 * the S ends). The input's last S per-sample dims are spatial, the one
 * before them is the channel axis C, and the L per-sample dims before that
 * (any number, L their product) are folded into the batch: an engine batch
 * of N samples is N*L "folded samples" of [C, spatial...], contiguous in
 * memory. The output keeps the leading dims: [lead..., O, spatial out...].
 * Weights are [O, C/groups, k0, .., kS-1], bias [O]. A group g maps input
 * channels g*Cg..(g+1)*Cg-1 to output channels g*Og..(g+1)*Og-1.
 *
 * Internally every convolution is 3-D (D, H, W): the S spatial dims are the
 * last S of (D, H, W) and the others have size 1 with kernel 1, stride 1,
 * dilation 1 and no padding (so 2-D is D = 1, 1-D is D = H = 1).
 * Output size per axis: (in + pad_begin + pad_end - dil*(k-1) - 1)/stride
 * + 1, which must be >= 1. macs (per engine sample) = L*O*P*Cg*kd*kh*kw,
 * P = Do*Ho*Wo.
 *
 * Direct float path (1-D and 2-D layers; conv_direct.c has the kernels):
 * per folded sample, the input is padded to the extent its outputs read
 * and split into its stride phases (dgeom), so that output (oy, ox) is
 * lane oy*Wq + ox of a flat lane space and every tap of every channel reads
 * that space at a fixed offset; register-blocked kernels then hold a block
 * of output channels x vectors of lanes (AVX-512, AVX2+FMA or portable,
 * chosen at run time) and run through the input channels and taps in
 * order, so each output is one sum from 0 in the order (ci, ky, kx) with
 * fused multiply-adds, plus the bias. OpenMP splits the folded samples;
 * nothing depends on the thread count or the batch size. Backward (stride
 * 1): dX += the convolution of dY, padded by the dilated kernel extent
 * minus the forward padding, with the flipped transposed weights (the same
 * kernels, adding into dX); dW from the prepared input and dY laid out as
 * lanes (zero on the unused ones), summed over parts of the batch (8 to
 * 16 samples each, by the batch size only) and then the parts in order;
 * db in double. Strided backward, 3-D layers and strided 1x1 layers use
 * the im2col/sgemm path below (direct_ok chooses; tests can force either,
 * qt__conv_force). Against the sgemm path only the fp32 rounding differs:
 * tests/test_conv.c checks both against double references and each other
 * (1e-5 of the tensor's scale), and AVX2 against AVX-512 bit for bit for y
 * and dX. The scratch (the prepared sample per thread, packed weights, the
 * gradient parts) lives in the node's save tensors: no allocation per
 * pass once the arena holds them.
 *
 * Float path (im2col/sgemm; forward and backward): the folded batch is processed in
 * chunks of T folded samples (T from the layer's shape only, so that the
 * column buffer stays under COL_BUDGET floats). A chunk is unfolded once
 * (im2col) into col[C*kd*kh*kw][T*P] (row r = ((c*kd + kz)*kh + ky)*kw + kx,
 * column t*P + p), and each group is one sgemm over the whole chunk:
 *     forward   Yt_g [Og, T*P]  = W_g [Og, Kg] col_g [Kg, T*P]
 *     backward  dW_g [Og, Kg]  += dYt_g [Og, T*P] col_g^T
 *               dcol_g [Kg, T*P] = W_g^T dYt_g      (then col2im into dX)
 * where Yt/dYt are the chunk's outputs with channels outermost (scattered
 * to / gathered from [t][O][P], skipped when T == 1). Since the chunking
 * depends only on the shape and the number of folded samples, an input
 * with leading dims gives the same bits as the same data run with the
 * leading dims as real batch entries. OpenBLAS threads the sgemms; the
 * data movement around them is serial on purpose: with the pthread
 * OpenBLAS, OpenMP regions between sgemm calls make the two thread pools
 * spin against each other (3-4x slower on 2 cores). So the float path
 * does not depend on the OpenMP thread count at all; it does depend, in
 * the last bits, on OpenBLAS's thread count and on the chunk (the Haswell
 * sgemm kernels round differently for other partitions).
 *
 * Intrinsic path: direct loops over (folded sample, output channel) in
 * parallel, every output element summed in the documented order (input
 * channel, then kernel depth, row, column ascending: tap k = ((ci*kd + kz)
 * *kh + ky)*kw + kx) with its random words indexed by the folded sample
 * counted from the data set, sf = sample_base*L + s (s the folded index in
 * the batch; for L = 1 the engine sample), and (co, output position) --
 * see engine.h and forward_intrinsic below. EACH on fixed point (up to 16
 * bits, saturating) runs as integers instead (forward_intrinsic_int,
 * intr_fixed.c), with the same bits; the loops stay as the fallback and as
 * the tests' oracle. Stride-1 1-D and 2-D layers with a deterministic
 * rounding read zero-padded copies of the operand planes in place (the
 * direct layout, int_direct); the others gather column tiles. Operands,
 * planes and tiles live in save, like the float paths' scratch.
 */
#include "internal.h"

#include <cblas.h>
#include <omp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* floats in the column buffer (and in the channel-major output buffer)
 * above which a chunk is not grown further */
#define COL_BUDGET ((size_t)1 << 20)

typedef struct geom {
    int    S;                /* spatial rank 1..3 */
    size_t L;                /* folded leading dims per engine sample */
    int    C, D, H, W;       /* input per folded sample */
    int    O, Do, Ho, Wo;    /* output per folded sample */
    int    kd, kh, kw, sd, sh, sw, dd, dh, dw, pf, pt, pl;   /* pf: depth begin */
    int    groups, Cg, Og;   /* groups; input and output channels per group */
    size_t kk;               /* kd*kh*kw */
    size_t Kg;               /* taps per output element: Cg*kk */
    size_t rows;             /* im2col rows: C*kk */
    size_t P;                /* output positions: Do*Ho*Wo */
    size_t plane;            /* input positions: D*H*W */
    size_t in_per;           /* C*D*H*W */
} geom;



/* The layer's geometry from the attributes and the input's shape; fails
 * (naming the node) on impossible attributes. */
static int geom_of(qt_opctx *c, geom *G)
{
    const qt_node *in = qt__in(c, 0);
    const qt_attr *a = &c->n->a;
    char b1[48], b2[48], b3[48], b4[48], b5[48];
    int S = 0;

    int rc = qt__spatial_attrs(c, &S);
    if (rc) return rc;
    for (int j = 0; j < 2 * S; j++)
        if (a->pad[j] < 0)
            return qt__shape_fail(c, "padding %s (begins, then ends) must be >= 0",
                        qt__ints(b1, sizeof b1, a->pad, 2 * S, ','));
    if (a->out < 1)
        return qt__shape_fail(c, "needs out >= 1 output channels (got %d)", a->out);
    if (a->groups < 0)
        return qt__shape_fail(c, "groups %d must be >= 0 (0 means 1)", a->groups);
    if (in->rank < S + 1)
        return qt__shape_fail(c, "input %s of '%s': a %d-D convolution needs >= %d dims "
                    "(channels, then %d spatial)", qt__dims_str(b1, sizeof b1, in->rank, in->shape),
                    in->name, S, S + 1, S);

    /* internal axes z, y, x: the attribute's entry j is axis 3 - S + j */
    int lead = in->rank - S - 1, off = 3 - S;
    int sz[3], k[3], st[3], dl[3], p0[3], p1[3], out[3];
    G->L = 1;
    for (int i = 0; i < lead; i++) G->L *= (size_t)in->shape[i];
    G->S = S;
    G->C = in->shape[lead];
    for (int j = 0; j < 3; j++) {
        int i = j - off;
        sz[j] = i < 0 ? 1 : in->shape[lead + 1 + i];
        k[j] = i < 0 ? 1 : a->kernel[i];
        st[j] = i < 0 || a->stride[i] == 0 ? 1 : a->stride[i];
        dl[j] = i < 0 || a->dilation[i] == 0 ? 1 : a->dilation[i];
        p0[j] = i < 0 ? 0 : a->pad[i];
        p1[j] = i < 0 ? 0 : a->pad[S + i];
    }
    G->O = a->out;
    G->groups = a->groups ? a->groups : 1;
    if (G->C % G->groups)
        return qt__shape_fail(c, "groups %d do not divide the %d input channels of '%s'",
                    G->groups, G->C, in->name);
    if (G->O % G->groups)
        return qt__shape_fail(c, "groups %d do not divide the %d output channels", G->groups, G->O);
    G->Cg = G->C / G->groups;
    G->Og = G->O / G->groups;

    /* every coordinate computed below (in the padded input, with a stride
     * step or a dilated kernel offset added) must fit in an int */
    for (int j = 0; j < 3; j++)
        if ((long long)sz[j] + p0[j] + p1[j] + st[j] > INT_MAX
            || (long long)dl[j] * (k[j] - 1) > INT_MAX)
            return qt__shape_fail(c, "input %s with kernel %s, stride %s, pad %s, dilation %s: "
                        "coordinates too large", qt__dims_str(b1, sizeof b1, in->rank, in->shape),
                        qt__ints(b2, sizeof b2, a->kernel, S, 'x'), qt__ints(b3, sizeof b3, a->stride, S, 'x'),
                        qt__ints(b4, sizeof b4, a->pad, 2 * S, ','),
                        qt__ints(b5, sizeof b5, a->dilation, S, 'x'));
    /* extent of the padded input minus that of the dilated kernel, plus 1 */
    long long P = 1, taps = G->Cg;
    for (int j = 0; j < 3; j++) {
        long long e = (long long)sz[j] + p0[j] + p1[j] - (long long)dl[j] * (k[j] - 1);
        if (e < 1) {
            int ek[3], ed[3];
            for (int i = 0; i < S; i++) { ek[i] = k[off + i]; ed[i] = dl[off + i]; }
            return qt__shape_fail(c, "input %s with kernel %s, pad %s, dilation %s gives no output",
                        qt__dims_str(b1, sizeof b1, in->rank, in->shape),
                        qt__ints(b2, sizeof b2, ek, S, 'x'), qt__ints(b3, sizeof b3, a->pad, 2 * S, ','),
                        qt__ints(b4, sizeof b4, ed, S, 'x'));
        }
        long long o = (e - 1) / st[j] + 1;
        if (o > INT_MAX) o = INT_MAX;
        out[j] = (int)o;
        P *= o;
        taps *= k[j];
        if (P > INT_MAX || taps > INT_MAX) break;
    }
    /* every size handed to sgemm or to the arenas as an int must fit */
    if (P > INT_MAX || taps > INT_MAX / G->groups || P > INT_MAX / G->O
        || P > INT_MAX / (taps * G->groups) || taps > INT_MAX / G->O)
        return qt__shape_fail(c, "input %s with kernel %s and %d outputs is too large",
                    qt__dims_str(b1, sizeof b1, in->rank, in->shape),
                    qt__ints(b2, sizeof b2, a->kernel, S, 'x'), G->O);
    G->D = sz[0]; G->H = sz[1]; G->W = sz[2];
    G->Do = out[0]; G->Ho = out[1]; G->Wo = out[2];
    G->kd = k[0]; G->kh = k[1]; G->kw = k[2];
    G->sd = st[0]; G->sh = st[1]; G->sw = st[2];
    G->dd = dl[0]; G->dh = dl[1]; G->dw = dl[2];
    G->pf = p0[0]; G->pt = p0[1]; G->pl = p0[2];
    G->kk = (size_t)k[0] * k[1] * k[2];
    G->Kg = (size_t)taps;
    G->rows = (size_t)taps * (size_t)G->groups;
    G->P = (size_t)P;
    G->plane = (size_t)sz[0] * sz[1] * sz[2];
    G->in_per = (size_t)G->C * G->plane;
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

/* folded samples per chunk of the float path: a function of the shape only */
static size_t chunk_of(const geom *G, size_t n)
{
    size_t widest = G->rows > (size_t)G->O ? G->rows : (size_t)G->O;
    size_t t = COL_BUDGET / (widest * G->P);
    if (t < 1) t = 1;
    return t < n ? t : n;
}

/* one kernel tap (kz, ky, kx), the same for every channel: the input
 * offsets of output 0 per axis and the outputs whose input is inside */
typedef struct tap { int offz, offy, offx, oz0, oz1, oy0, oy1, ox0, ox1; } tap;

/* the kd*kh*kw taps in row order (kz, ky, kx); NULL on out-of-memory */
static tap *taps_of(const geom *G)
{
    tap *tp = malloc(G->kk * sizeof *tp);
    if (!tp) return NULL;
    size_t i = 0;
    for (int kz = 0; kz < G->kd; kz++)
        for (int ky = 0; ky < G->kh; ky++)
            for (int kx = 0; kx < G->kw; kx++, i++) {
                tap *t = &tp[i];
                t->offz = kz * G->dd - G->pf;
                t->offy = ky * G->dh - G->pt;
                t->offx = kx * G->dw - G->pl;
                valid_range(t->offz, G->sd, G->D, G->Do, &t->oz0, &t->oz1);
                valid_range(t->offy, G->sh, G->H, G->Ho, &t->oy0, &t->oy1);
                valid_range(t->offx, G->sw, G->W, G->Wo, &t->ox0, &t->ox1);
            }
    return tp;
}

/* col[r][t*P + p] = X[t][c][oz*sd + offz][oy*sh + offy][ox*sw + offx] (0 in
 * the padding), r = c*kk + tap, for the T folded samples at X */
static inline __attribute__((always_inline)) void
im2col_k(const geom *G, const tap *tp, const float *X, size_t T, float *col, int flat)
{
    const size_t TP = T * G->P, kk = G->kk, P = G->P, in_per = G->in_per, plane = G->plane;
    const size_t W = (size_t)G->W, hw = (size_t)G->H * W, Wo = (size_t)G->Wo;
    const size_t ohw = (size_t)G->Ho * Wo;
    const int Do = flat ? 1 : G->Do, Ho = G->Ho, sd = G->sd, sh = G->sh, sw = G->sw;
    for (size_t r = 0; r < G->rows; r++) {
        const tap *k = &tp[r % kk];
        const size_t ch = r / kk;
        const int ox0 = k->ox0, ox1 = k->ox1, offx = k->offx, oy0 = k->oy0, oy1 = k->oy1;
        for (size_t t = 0; t < T; t++) {
            const float *x = X + t * in_per + ch * plane;
            float *dst = col + r * TP + t * P;
            for (int oz = 0; oz < Do; oz++) {
                float *dz = dst + (size_t)oz * ohw;
                if (!flat && (oz < k->oz0 || oz >= k->oz1)) {
                    memset(dz, 0, ohw * sizeof *dz);
                    continue;
                }
                const float *xz = flat ? x : x + (size_t)(oz * sd + k->offz) * hw;
                for (int oy = 0; oy < Ho; oy++) {
                    float *d = dz + (size_t)oy * Wo;
                    if (oy < oy0 || oy >= oy1) {
                        memset(d, 0, Wo * sizeof *d);
                        continue;
                    }
                    const float *xr = xz + (size_t)(oy * sh + k->offy) * W;
                    for (int ox = 0; ox < ox0; ox++) d[ox] = 0.0f;
                    if (sw == 1)
                        memcpy(d + ox0, xr + ox0 + offx, (size_t)(ox1 - ox0) * sizeof *d);
                    else
                        for (int ox = ox0; ox < ox1; ox++) d[ox] = xr[ox * sw + offx];
                    for (int ox = ox1; ox < (int)Wo; ox++) d[ox] = 0.0f;
                }
            }
        }
    }
}

/* flat: the depth axis is trivial (one input and one output slice, kernel
 * 1, no depth padding: every 1-D and 2-D convolution); that instance has
 * the depth loops compiled away */
static int flat_of(const geom *G)
{
    return G->D == 1 && G->kd == 1 && G->Do == 1 && G->pf == 0;
}

static void im2col(const geom *G, const tap *tp, const float *X, size_t T, float *col)
{
    if (flat_of(G)) im2col_k(G, tp, X, T, col, 1);
    else im2col_k(G, tp, X, T, col, 0);
}

/* the adjoint of im2col: DX[t][c] += every col entry that was read from it,
 * channel plane by plane, taps in a fixed order */
static inline __attribute__((always_inline)) void
col2im_k(const geom *G, const tap *tp, const float *col, size_t T, float *DX, int flat)
{
    const size_t TP = T * G->P, planes = T * (size_t)G->C, C = (size_t)G->C, kk = G->kk;
    const size_t W = (size_t)G->W, hw = (size_t)G->H * W, Wo = (size_t)G->Wo;
    const size_t ohw = (size_t)G->Ho * Wo, P = G->P, plane = G->plane;
    const int sd = G->sd, sh = G->sh, sw = G->sw;
    for (size_t i = 0; i < planes; i++) {
        size_t t = i / C, ch = i % C;
        float *dx = DX + i * plane;
        for (size_t tk = 0; tk < kk; tk++) {
            const tap *k = &tp[tk];
            const float *src = col + (ch * kk + tk) * TP + t * P;
            const int ox0 = k->ox0, ox1 = k->ox1;
            const int oz0 = flat ? 0 : k->oz0, oz1 = flat ? 1 : k->oz1;
            for (int oz = oz0; oz < oz1; oz++) {
                float *xz = (flat ? dx : dx + (size_t)(oz * sd + k->offz) * hw) + k->offx;
                const float *sz = flat ? src : src + (size_t)oz * ohw;
                for (int oy = k->oy0; oy < k->oy1; oy++) {
                    float *xr = xz + (size_t)(oy * sh + k->offy) * W;
                    const float *sr = sz + (size_t)oy * Wo;
                    if (sw == 1)
                        for (int ox = ox0; ox < ox1; ox++) xr[ox] += sr[ox];
                    else
                        for (int ox = ox0; ox < ox1; ox++) xr[ox * sw] += sr[ox];
                }
            }
        }
    }
}

static void col2im(const geom *G, const tap *tp, const float *col, size_t T, float *DX)
{
    if (flat_of(G)) col2im_k(G, tp, col, T, DX, 1);
    else col2im_k(G, tp, col, T, DX, 0);
}

static int oom(qt_opctx *c)
{
    return qt__fail(c->err, QT_ENOMEM, -1, "node '%s' (conv): out of memory", c->n->name);
}

/* the float path's buffers: col [rows, T*P] in save, the channel-major
 * outputs [O, T*P] in save2 (for the planned batch's chunk); *T the chunk
 * for this pass's folded samples */
static int float_buffers(qt_opctx *c, const geom *G, size_t *T, tap **tp)
{
    size_t batch = (size_t)c->g->batch;
    size_t Tmax = chunk_of(G, batch * G->L);
    size_t per_col = (G->rows * Tmax * G->P + batch - 1) / batch;
    size_t per_out = ((size_t)G->O * Tmax * G->P + batch - 1) / batch;
    if (qt__scratch(c, &c->n->save, per_col)) return oom(c);
    if (Tmax > 1 && qt__scratch(c, &c->n->save2, per_out)) return oom(c);
    *T = chunk_of(G, (size_t)c->g->n_cur * G->L);
    *tp = taps_of(G);
    return *tp ? QT_OK : oom(c);
}

static int forward_float(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t N = (size_t)c->g->n_cur * G->L, T, O = (size_t)G->O, P = G->P;
    const float *X = in->out.data, *Wt = c->w, *B = n->p[QT_P_B].size ? c->b : NULL;
    float *Y = n->out.data;
    tap *tp;
    int rc = float_buffers(c, G, &T, &tp);
    if (rc) return rc;
    float *col = n->save.data;
    for (size_t s0 = 0; s0 < N; s0 += T) {
        size_t t = T < N - s0 ? T : N - s0, TP = t * P;
        float *dst = t == 1 ? Y + s0 * O * P : n->save2.data;
        im2col(G, tp, X + s0 * G->in_per, t, col);
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
    free(tp);
    return QT_OK;
}

static int backward_float(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    size_t N = (size_t)c->g->n_cur * G->L, T, O = (size_t)G->O, P = G->P;
    const float *X = in->out.data, *Wt = c->w, *DY = n->gout.data;
    float *DX = in->gout.data, *DW = n->gp[0].data, *DB = n->gp[1].size ? n->gp[1].data : NULL;
    tap *tp;
    int rc = float_buffers(c, G, &T, &tp);
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
        im2col(G, tp, X + s0 * G->in_per, t, col);
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
        col2im(G, tp, col, t, DX + s0 * G->in_per);
    }
    free(tp);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Direct path (conv_direct.c)                                               */
/* ------------------------------------------------------------------------ */

int qt__conv_force = 0;

#define DIRECT_MAX_TAPS 1024

/* a layer's direct-path geometry: the input of one folded sample padded
 * (rows -pt.., columns -pl..) to the extent its outputs read, Hp x Wp, and
 * split into the sh*sw stride phases (phase (a, b) holds padded rows
 * i*sh + a, columns j*sw + b), Hq x Wq each */
typedef struct dgeom {
    int    Hp, Wp, Hq, Wq;
    size_t cstride;          /* floats per channel: sh*sw*Hq*Wq */
    size_t xsz;              /* floats of a prepared sample (with slack, rounded) */
    int    off[DIRECT_MAX_TAPS];
} dgeom;

/* 1 if the direct path runs this layer (2-D and 1-D layers, by shape) */
static int direct_ok(const geom *G)
{
    if (!flat_of(G) || G->kk > DIRECT_MAX_TAPS || qt__conv_force == 1) return 0;
    if (qt__conv_force == 2) return 1;
    /* a strided 1x1 reads one stride phase of s*s: preparing them all
     * costs more than im2col's gather (measured: ~0.8x of sgemm) */
    if (G->kk == 1 && G->sh * G->sw > 1) return 0;
    return 1;
}

static void dgeom_of(const geom *G, dgeom *D)
{
    D->Hp = (G->Ho - 1) * G->sh + (G->kh - 1) * G->dh + 1;
    D->Wp = (G->Wo - 1) * G->sw + (G->kw - 1) * G->dw + 1;
    D->Hq = (D->Hp + G->sh - 1) / G->sh;
    D->Wq = (D->Wp + G->sw - 1) / G->sw;
    D->cstride = (size_t)G->sh * G->sw * D->Hq * D->Wq;
    D->xsz = ((size_t)G->C * D->cstride + QT_DCONV_SLACK + 15) & ~(size_t)15;
    size_t pq = (size_t)D->Hq * D->Wq;
    for (int ky = 0, t = 0; ky < G->kh; ky++)
        for (int kx = 0; kx < G->kw; kx++, t++) {
            int ry = ky * G->dh, rx = kx * G->dw;
            size_t ph = (size_t)(ry % G->sh) * G->sw + (size_t)(rx % G->sw);
            D->off[t] = (int)(ph * pq + (size_t)(ry / G->sh) * D->Wq + (size_t)(rx / G->sw));
        }
}

static void dconv_of(const geom *G, const dgeom *D, qt_dconv *d, int isa)
{
    memset(d, 0, sizeof *d);
    d->C = G->Cg;
    d->O = G->Og;
    d->kk = (int)G->kk;
    d->off = D->off;
    d->cstride = D->cstride;
    d->Wq = D->Wq;
    d->Wo = G->Wo;
    d->Ho = G->Ho;
    d->lanes = (size_t)(G->Ho - 1) * D->Wq + G->Wo;
    qt__dconv_plan(d, isa);
}

/* one folded sample x [C][H][W] into its prepared form q (padding zeros,
 * stride phases; the slack after the planes zeroed) */
static void prep_input(const geom *G, const dgeom *D, const float *x, float *q)
{
    const int H = G->H, W = G->W, sh = G->sh, sw = G->sw, Hq = D->Hq, Wq = D->Wq;
    float *p = q;
    for (int ch = 0; ch < G->C; ch++) {
        const float *xc = x + (size_t)ch * G->plane;
        for (int a = 0; a < sh; a++)
            for (int b = 0; b < sw; b++)
                for (int i = 0; i < Hq; i++, p += Wq) {
                    int iy = i * sh + a - G->pt;
                    if (iy < 0 || iy >= H) {
                        memset(p, 0, (size_t)Wq * sizeof *p);
                        continue;
                    }
                    const float *xr = xc + (size_t)iy * W;
                    /* columns j with 0 <= j*sw + b - pl < W */
                    int j0 = 0, j1;
                    while (j0 < Wq && j0 * sw + b - G->pl < 0) p[j0++] = 0.0f;
                    j1 = j0;
                    if (sw == 1) {
                        int n = W - (j0 + b - G->pl);
                        if (n > Wq - j0) n = Wq - j0;
                        if (n > 0) {
                            memcpy(p + j0, xr + j0 + b - G->pl, (size_t)n * sizeof *p);
                            j1 = j0 + n;
                        }
                    } else {
                        for (; j1 < Wq && j1 * sw + b - G->pl < W; j1++)
                            p[j1] = xr[j1 * sw + b - G->pl];
                    }
                    for (int j = j1; j < Wq; j++) p[j] = 0.0f;
                }
    }
    memset(p, 0, (D->xsz - (size_t)(p - q)) * sizeof *p);
}

static int forward_direct(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const size_t N = (size_t)c->g->n_cur * G->L, O = (size_t)G->O, P = G->P;
    const float *X = in->out.data, *B = n->p[QT_P_B].size ? c->b : NULL;
    float *Y = n->out.data;
    dgeom D;
    qt_dconv d;
    dgeom_of(G, &D);
    dconv_of(G, &D, &d, qt__dconv_isa());
    const size_t wg = qt__dconv_wsize(&d), per_thr = D.xsz + QT_DCONV_TILE;
    const size_t batch = (size_t)c->g->batch;
    int nth = omp_get_max_threads();
    if (nth < 1) nth = 1;
    if (qt__scratch(c, &n->save, ((size_t)nth * per_thr + batch - 1) / batch)
        || qt__scratch(c, &n->save2, (wg * G->groups + batch - 1) / batch))
        return oom(c);
    float *wp = n->save2.data, *buf = n->save.data;
    for (int g = 0; g < G->groups; g++)
        qt__dconv_pack(&d, c->w + (size_t)g * G->Og * G->Kg, G->Kg, G->kk, 0, wp + g * wg);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (size_t s = 0; s < N; s++) {
        float *q = buf + (size_t)omp_get_thread_num() * per_thr, *tile = q + D.xsz;
        prep_input(G, &D, X + s * G->in_per, q);
        for (int g = 0; g < G->groups; g++)
            qt__dconv_run(&d, q + (size_t)g * G->Cg * D.cstride, wp + g * wg,
                          B ? B + (size_t)g * G->Og : NULL,
                          Y + s * O * P + (size_t)g * G->Og * P, P, 0, tile);
    }
    return QT_OK;
}

/* dst[i][j] (i < hq, j < wq) = src[i - top][j - left] inside the h x w
 * source, 0 elsewhere */
static void pad_plane(const float *src, int h, int w, int top, int left, int hq, int wq,
                      float *dst)
{
    for (int i = 0; i < hq; i++, dst += wq) {
        int sy = i - top;
        if (sy < 0 || sy >= h) {
            memset(dst, 0, (size_t)wq * sizeof *dst);
            continue;
        }
        int j0 = left > 0 ? left : 0, j1 = w + left < wq ? w + left : wq;
        if (j1 < j0) j1 = j0;
        memset(dst, 0, (size_t)j0 * sizeof *dst);
        if (j1 > j0) memcpy(dst + j0, src + (size_t)sy * w + (j0 - left), (size_t)(j1 - j0) * sizeof *dst);
        memset(dst + j1, 0, (size_t)(wq - j1) * sizeof *dst);
    }
}

/* the direct backward's weight gradient is summed over parts of the batch
 * (at least DW_PARTS, at most DW_PART_MAX samples each), then the parts in
 * order: the bits depend on the batch only, not on the threads */
#define DW_PARTS 8
#define DW_PART_MAX 16

/* backward on the direct kernels (stride 1): dW from the prepared input
 * and dY laid out as lanes; dX += the convolution of dY (padded by the
 * dilated kernel extent minus the forward padding) with the flipped,
 * transposed weights */
static int backward_direct(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const size_t N = (size_t)c->g->n_cur * G->L, O = (size_t)G->O, P = G->P;
    const float *X = in->out.data, *DY = n->gout.data;
    float *DX = in->gout.data, *DW = n->gp[0].data, *DB = n->gp[1].size ? n->gp[1].data : NULL;
    const int isa = qt__dconv_isa(), vl = qt__dconv_vl(isa);
    dgeom D, D2;
    qt_dconv d, d2;
    dgeom_of(G, &D);
    dconv_of(G, &D, &d, isa);
    /* the transposed layer: Og -> Cg channels, H x W outputs */
    const int top = (G->kh - 1) * G->dh - G->pt, left = (G->kw - 1) * G->dw - G->pl;
    D2.Hp = D2.Hq = G->H + (G->kh - 1) * G->dh;
    D2.Wp = D2.Wq = G->W + (G->kw - 1) * G->dw;
    D2.cstride = (size_t)D2.Hq * D2.Wq;
    D2.xsz = (O * D2.cstride + QT_DCONV_SLACK + 15) & ~(size_t)15;
    for (int ky = 0, t = 0; ky < G->kh; ky++)
        for (int kx = 0; kx < G->kw; kx++, t++) D2.off[t] = ky * G->dh * D2.Wq + kx * G->dw;
    memset(&d2, 0, sizeof d2);
    d2.C = G->Og;
    d2.O = G->Cg;
    d2.kk = (int)G->kk;
    d2.off = D2.off;
    d2.cstride = D2.cstride;
    d2.Wq = D2.Wq;
    d2.Wo = G->W;
    d2.Ho = G->H;
    d2.lanes = (size_t)(G->H - 1) * D2.Wq + G->W;
    qt__dconv_plan(&d2, isa);

    const size_t lr = (d.lanes + vl - 1) / vl * vl, hw = (size_t)G->Ho * D.Wq;
    const size_t dys = ((hw > lr ? hw : lr) + 15) & ~(size_t)15;
    const size_t dyw_sz = (O + 3) * dys;
    size_t parts = N < DW_PARTS ? N : DW_PARTS;
    if ((N + parts - 1) / parts > DW_PART_MAX) parts = (N + DW_PART_MAX - 1) / DW_PART_MAX;
    const size_t ps = (N + parts - 1) / parts;   /* samples of the largest part */
    const size_t per_thr = ps * (D.xsz + dyw_sz) + D2.xsz + QT_DCONV_TILE;
    const size_t wg2 = qt__dconv_wsize(&d2), nw = O * G->Kg;
    const size_t batch = (size_t)c->g->batch;
    int nth = omp_get_max_threads();
    if (nth < 1) nth = 1;
    if (qt__scratch(c, &n->save, ((size_t)nth * per_thr + batch - 1) / batch)
        || qt__scratch(c, &n->save2, (wg2 * G->groups + parts * nw + batch - 1) / batch))
        return oom(c);
    float *wt = n->save2.data, *part = wt + wg2 * G->groups, *buf = n->save.data;
    for (int g = 0; g < G->groups; g++)
        qt__dconv_pack(&d2, c->w + (size_t)g * G->Og * G->Kg, G->kk, G->Kg, 1, wt + g * wg2);

    #pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (size_t pi = 0; pi < parts; pi++) {
        float *q = buf + (size_t)omp_get_thread_num() * per_thr, *dyw = q + ps * D.xsz;
        float *dyp = dyw + ps * dyw_sz, *tile = dyp + D2.xsz, *pw = part + pi * nw;
        size_t s0 = pi * N / parts, s1 = (pi + 1) * N / parts;
        memset(pw, 0, nw * sizeof *pw);
        for (size_t s = s0; s < s1; s++) {
            const float *dy = DY + s * O * P;
            float *qs = q + (s - s0) * D.xsz, *dws = dyw + (s - s0) * dyw_sz;
            prep_input(G, &D, X + s * G->in_per, qs);
            for (size_t o = 0; o < O; o++) {
                pad_plane(dy + o * P, G->Ho, G->Wo, 0, 0, G->Ho, D.Wq, dws + o * dys);
                memset(dws + o * dys + hw, 0, (dys - hw) * sizeof *dws);
            }
            for (size_t o = 0; o < O; o++)
                pad_plane(dy + o * P, G->Ho, G->Wo, top, left, D2.Hq, D2.Wq, dyp + o * D2.cstride);
            memset(dyp + O * D2.cstride, 0, (D2.xsz - O * D2.cstride) * sizeof *dyp);
            for (int g = 0; g < G->groups; g++)
                qt__dconv_run(&d2, dyp + (size_t)g * G->Og * D2.cstride, wt + g * wg2, NULL,
                              DX + s * G->in_per + (size_t)g * G->Cg * G->plane, G->plane, 1, tile);
        }
        for (int g = 0; g < G->groups; g++)
            qt__dconv_dw(&d, q + (size_t)g * G->Cg * D.cstride, dyw + (size_t)g * G->Og * dys,
                         dys, lr / vl, s1 - s0, D.xsz, dyw_sz, pw + (size_t)g * G->Og * G->Kg);
    }
    #pragma omp parallel for schedule(static) num_threads(nth) if (nw * parts > 65536)
    for (size_t i = 0; i < nw; i++) {
        float v = DW[i];
        for (size_t pi = 0; pi < parts; pi++) v += part[pi * nw + i];
        DW[i] = v;
    }
    if (DB)
        for (size_t co = 0; co < O; co++) {
            double sum = 0.0;
            for (size_t s = 0; s < N; s++)
                for (size_t p = 0; p < P; p++) sum += DY[(s * O + co) * P + p];
            DB[co] += (float)sum;
        }
    return QT_OK;
}

/* the tile of m output positions from p0 of one folded sample's operands
 * x into col (row r at col + r*pt): an output row at a time, the taps
 * inside the input copied and the rest zeros; for int32 and int16 operands */
#define GATHER_TILE(NAME, T)                                                                \
static void NAME(const geom *G, const T *x, size_t p0, size_t m, size_t pt, T *col)         \
{                                                                                           \
    const size_t hw = (size_t)G->H * G->W;                                                  \
    const long W = G->W, sw = G->sw;                                                        \
    const int ox0 = (int)(p0 % (size_t)G->Wo);                                              \
    const int oy0 = (int)(p0 / (size_t)G->Wo % (size_t)G->Ho);                              \
    const int oz0 = (int)(p0 / ((size_t)G->Wo * G->Ho));                                    \
    /* row r = ((ci*kd + kz)*kh + ky)*kw + kx, counted up */                                \
    int kx = 0, ky = 0, kz = 0;                                                             \
    const T *xc = x;                                                                        \
    for (size_t r = 0; r < G->rows; r++) {                                                  \
        T *cr = col + r * pt;                                                               \
        int ox = ox0, oy = oy0, oz = oz0;                                                   \
        const long dx = (long)kx * G->dw - G->pl;                                           \
        for (size_t j = 0; j < m;) {                                                        \
            size_t seg = (size_t)(G->Wo - ox) < m - j ? (size_t)(G->Wo - ox) : m - j;       \
            int iz = oz * G->sd - G->pf + kz * G->dd, iy = oy * G->sh - G->pt + ky * G->dh; \
            T *dst = cr + j;                                                                \
            if (iz < 0 || iz >= G->D || iy < 0 || iy >= G->H) {                             \
                memset(dst, 0, seg * sizeof *dst);                                          \
            } else {                                                                        \
                const T *xr = xc + (size_t)iz * hw + (size_t)iy * (size_t)W;                \
                /* lane t reads ix0 + t*sw: inside the row for ta <= t < tb */              \
                long ix0 = (long)ox * sw + dx;                                              \
                size_t ta, tb;                                                              \
                if (sw == 1) {                                                              \
                    ta = ix0 >= 0 ? 0 : (size_t)-ix0;                                       \
                    tb = ix0 >= W ? 0 : (size_t)(W - ix0);                                  \
                } else {                                                                    \
                    ta = ix0 >= 0 ? 0 : (size_t)((-ix0 + sw - 1) / sw);                     \
                    tb = ix0 >= W ? 0 : (size_t)((W - ix0 + sw - 1) / sw);                  \
                }                                                                           \
                ta = ta < seg ? ta : seg;                                                   \
                tb = tb < seg ? tb : seg;                                                   \
                tb = tb < ta ? ta : tb;                                                     \
                for (size_t t = 0; t < ta; t++) dst[t] = 0;                                 \
                if (sw == 1)                                                                \
                    memcpy(dst + ta, xr + ix0 + (long)ta, (tb - ta) * sizeof *dst);         \
                else                                                                        \
                    for (size_t t = ta; t < tb; t++) dst[t] = xr[ix0 + (long)t * sw];       \
                for (size_t t = tb; t < seg; t++) dst[t] = 0;                               \
            }                                                                               \
            j += seg;                                                                       \
            ox = 0;                                                                         \
            if (++oy == G->Ho) { oy = 0; oz++; }                                            \
        }                                                                                   \
        if (++kx == G->kw) {                                                                \
            kx = 0;                                                                         \
            if (++ky == G->kh) {                                                            \
                ky = 0;                                                                     \
                if (++kz == G->kd) { kz = 0; xc += G->plane; }                              \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

GATHER_TILE(gather_tile, int32_t)
GATHER_TILE(gather_tile16, int16_t)
#undef GATHER_TILE

/* The integer direct layout (stride 1, 1-D and 2-D layers): per folded
 * sample every input channel's operands are padded once into an Hp x Wp
 * plane (zeros in the padding, exact: see intr_fixed.c), and lane j =
 * oy*Wp + ox runs over the whole output plane, lanes (Ho-1)*Wp + Wo; the
 * lanes with ox >= Wo are computed from operands in the planes and
 * dropped. Tap (ci, ky, kx) of lane j is then plane ci at j + ky*dh*Wp +
 * kx*dw: a fixed offset per tap (off[k], k in the documented order), so
 * the dot kernels read the planes in place instead of a gathered tile. The
 * last lane's last tap reads the plane's last element (whole vectors read
 * on: IVEC below). */
typedef struct igeom {
    size_t Wp, cs;           /* padded row; elements per channel plane, Hp*Wp */
    size_t lanes;            /* (Ho-1)*Wp + Wo */
    size_t tl, tiles;        /* lanes per tile (at most cap), tiles per sample */
} igeom;

/* the kernels run whole vectors: a tile's lanes rounded up to IVEC (the
 * extra lanes read on into the next planes, or the zeroed slack of IVEC
 * elements after the batch's planes, and are dropped like ox >= Wo) */
#define IVEC 32

/* 1 if the direct layout runs this layer: stride 1, 1-D and 2-D, and a
 * deterministic rounding (stochastic words are indexed by p = oy*Wo + ox,
 * not by lane: SR stays on the tiles of output positions) */
static int idirect_ok(const geom *G, const qt_ifix *k)
{
    return flat_of(G) && G->sh == 1 && G->sw == 1 && k->round != QT_SR;
}

/* the layout, with tiles of at most cap lanes (cap a multiple of IVEC), of
 * about equal size in whole vectors */
static void igeom_of(const geom *G, size_t cap, igeom *D)
{
    size_t Hp = (size_t)(G->Ho - 1) + (size_t)(G->kh - 1) * G->dh + 1;
    D->Wp = (size_t)(G->Wo - 1) + (size_t)(G->kw - 1) * G->dw + 1;
    D->cs = Hp * D->Wp;
    D->lanes = (size_t)(G->Ho - 1) * D->Wp + G->Wo;
    size_t t = (D->lanes + cap - 1) / cap;
    size_t tl = ((D->lanes + t - 1) / t + IVEC - 1) & ~(size_t)(IVEC - 1);
    D->tl = tl < cap ? tl : cap;
    D->tiles = (D->lanes + D->tl - 1) / D->tl;
}

/* the tap table: off[((ci*kh + ky)*kw + kx] = ci*cs + ky*dh*Wp + kx*dw */
static void itaps_of(const geom *G, const igeom *D, size_t *off)
{
    for (size_t ci = 0, t = 0; ci < (size_t)G->Cg; ci++)
        for (size_t ky = 0; ky < (size_t)G->kh; ky++)
            for (size_t kx = 0; kx < (size_t)G->kw; kx++, t++)
                off[t] = ci * D->cs + ky * G->dh * D->Wp + kx * G->dw;
}

/* dst[i][j] (i < hp, j < wp) = src[i - top][j - left] inside the h x w
 * source, 0 elsewhere; elements of esz bytes (integer operands) */
static void pad_ints(const void *src, size_t esz, int h, int w, int top, int left, size_t hp,
                     size_t wp, void *dst)
{
    const char *sc = src;
    char *d = dst;
    size_t j0 = (size_t)left < wp ? (size_t)left : wp;
    size_t j1 = (size_t)w + (size_t)left < wp ? (size_t)w + (size_t)left : wp;
    for (size_t i = 0; i < hp; i++, d += wp * esz) {
        long sy = (long)i - top;
        if (sy < 0 || sy >= h) {
            memset(d, 0, wp * esz);
            continue;
        }
        memset(d, 0, j0 * esz);
        memcpy(d + j0 * esz, sc + ((size_t)sy * (size_t)w) * esz, (j1 - j0) * esz);
        memset(d + j1 * esz, 0, (wp - j1) * esz);
    }
}

/* the N folded samples' operands xq [N][C][H][W] into their planes xp
 * [N][C][Hp][Wp], then IVEC zeros */
static void pad_operands(const geom *G, const igeom *D, const void *xq, size_t esz, size_t N,
                         void *xp)
{
    const size_t nc = N * (size_t)G->C, hp = D->cs / D->Wp;
    #pragma omp parallel for schedule(static) if (nc * D->cs > 65536)
    for (size_t i = 0; i < nc; i++)
        pad_ints((const char *)xq + i * G->plane * esz, esz, G->H, G->W, G->pt, G->pl, hp,
                 D->Wp, (char *)xp + i * D->cs * esz);
    memset((char *)xp + nc * D->cs * esz, 0, IVEC * esz);
}

/* the output rows of the lanes [j0, j0 + m): row oy holds lanes oy*Wp +
 * [a, b), b <= Wo (oy < Ho since j0 + m <= lanes); *oy counts up from
 * j0 / Wp, 0 when there is none left */
static int irow_next(const igeom *D, size_t Wo, size_t j0, size_t m, size_t *oy, size_t *a,
                     size_t *b)
{
    for (; *oy * D->Wp < j0 + m; ++*oy) {
        size_t r = *oy * D->Wp;
        *a = j0 > r ? j0 - r : 0;
        *b = j0 + m - r < Wo ? j0 + m - r : Wo;
        if (*a < *b) return 1;
    }
    return 0;
}

/* the direct layout on operands of type T (int16_t when k->narrow, else
 * int32_t; a deterministic mode either way): OPERANDS, DOT and FINISH are
 * that width's integer kernels, ACC the lanes of a tile at most */
#define INT_DIRECT(NAME, T, OPERANDS, DOT, FINISH, ACC)                                     \
    static int NAME(qt_opctx *c, const geom *G, const qt_ifix *k, const igeom *D,           \
                    const size_t *off, T *xq)                                               \
    {                                                                                       \
        qt_node *n = c->n, *in = qt__in(c, 0);                                              \
        const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];                                    \
        const size_t N = (size_t)c->g->n_cur * G->L, O = (size_t)G->O, P = G->P, K = G->Kg; \
        const size_t Wo = (size_t)G->Wo, gs = (size_t)G->Cg * D->cs;                        \
        const size_t ps = (size_t)G->C * D->cs;                                             \
        const float *B = n->p[QT_P_B].size ? c->b : NULL;                                   \
        T *xp = xq + N * G->in_per, *wq = xp + N * ps + IVEC, *bq = wq + O * K;             \
        float *Y = n->out.data;                                                             \
        int rc = OPERANDS(f, k, in->out.data, xq, N * G->in_per);                           \
        if (!rc) rc = OPERANDS(f, k, c->w, wq, O * K);                                      \
        if (!rc && B) rc = OPERANDS(f, k, B, bq, O);                                        \
        if (rc) return rc;                                                                  \
        pad_operands(G, D, xq, sizeof *xq, N, xp);                                          \
        _Pragma("omp parallel for schedule(dynamic, 1)")                                    \
        for (size_t t = 0; t < N * D->tiles; t++) {                                         \
            size_t s = t / D->tiles, j0 = (t % D->tiles) * D->tl;                           \
            size_t m = D->lanes - j0 < D->tl ? D->lanes - j0 : D->tl;                       \
            size_t mv = (m + IVEC - 1) & ~(size_t)(IVEC - 1);   /* <= tl */                 \
            T acc[ACC];                                                                     \
            for (size_t co = 0; co < O; co++) {                                             \
                memset(acc, 0, mv * sizeof *acc);                                           \
                DOT(k, acc, mv, wq + co * K, K,                                             \
                    xp + s * ps + co / (size_t)G->Og * gs + j0, off);                       \
                float *y = Y + (s * O + co) * P;                                            \
                for (size_t oy = j0 / D->Wp, a, b; irow_next(D, Wo, j0, m, &oy, &a, &b); oy++) \
                    FINISH(k, acc + oy * D->Wp + a - j0, b - a, B ? bq + co : NULL,         \
                           y + oy * Wo + a, 1);                                             \
            }                                                                               \
        }                                                                                   \
        return QT_OK;                                                                       \
    }

INT_DIRECT(int_direct16, int16_t, qt__ifix_operands16_par, qt__ifix_dot16_taps,
           qt__ifix_finish16, 512)
INT_DIRECT(int_direct32, int32_t, qt__ifix_operands_par, qt__ifix_dot_taps, qt__ifix_finish, 256)
#undef INT_DIRECT

/* the direct layout's scratch in save: the tap table, the operands of the
 * batch, their planes and slack, the weights and the bias (int32 or int16) */
static int int_direct(qt_opctx *c, const geom *G, const qt_ifix *k)
{
    qt_node *n = c->n;
    igeom D;
    igeom_of(G, k->narrow ? 512 : 256, &D);
    const size_t batch = (size_t)c->g->batch, K = G->Kg;
    const size_t noff = (K * sizeof(size_t) + sizeof(float) - 1) / sizeof(float);
    const size_t per = G->L * (G->in_per + (size_t)G->C * D.cs);
    const size_t fixed = noff + IVEC + (size_t)G->O * K + (size_t)G->O;
    if (qt__scratch(c, &n->save, per + (fixed + batch - 1) / batch)) return oom(c);
    size_t *off = (size_t *)(void *)n->save.data;
    itaps_of(G, &D, off);
    void *ops = n->save.data + noff;
    return k->narrow ? int_direct16(c, G, k, &D, off, ops) : int_direct32(c, G, k, &D, off, ops);
}

/* intrinsic forward, EACH or FINAL (engine.h): one output element at a time
 * in the documented order; EACH's operands (input, weights, bias) rounded to
 * f by qt__operand (no random word); with sf = sample_base*L + s the folded
 * sample counted from the data set, p = (oz*Ho + oy)*Wo + ox and the tap
 * k = ((ci*kd + kz)*kh + ky)*kw + kx, random words at
 *   idx = ((sf*O + co)*P + p) * (2*Kg + 2)
 *   + 2k (product of tap k), + 2k+1 (EACH: partial sum after tap k),
 *   + 2Kg (FINAL: the rounded dot product), + 2Kg+1 (the bias add)
 * (for 2-D and L = 1 exactly the former (sample, co, oy, ox) indexing) */
/* EACH on fixed point as integers (intr_fixed.c), the same bits as the
 * loops of forward_intrinsic: the direct layout when idirect_ok (above);
 * otherwise per (folded sample, tile of output positions), the tile's taps
 * are gathered once (col[r][j], r = ci*kk + tap, zeros in the padding: see
 * intr_fixed.c) and every output channel runs through them with the tile's
 * positions as lanes (16-bit lanes when the format allows: then a tile may
 * span samples). QT_ERANGE (nothing written) when the format or the
 * operands need the reference loops. */

static int forward_intrinsic_int(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];
    qt_ifix k;
    if (!qt__ifix_of(f, &k)) return QT_ERANGE;
    if (idirect_ok(G, &k)) return int_direct(c, G, &k);
    size_t N = (size_t)c->g->n_cur * G->L, O = (size_t)G->O, P = G->P, K = G->Kg;
    size_t nw = O * K, rows = G->rows;
    const float *B = n->p[QT_P_B].size ? c->b : NULL;
    size_t pt = 32768 / rows;
    pt = pt < 16 ? 16 : pt > 256 ? 256 : pt & ~(size_t)15;
    if (pt > P) pt = P;
    size_t tiles = (P + pt - 1) / pt;
    int nth = omp_get_max_threads();
    if (nth < 1) nth = 1;
    /* scratch in save (the float paths' too, only ever scratch): the
     * operands of the batch, the weights, the bias and a column tile per
     * thread, as int32 (or int16) */
    const size_t batch = (size_t)c->g->batch, fixed = nw + O + (size_t)nth * rows * pt;
    if (qt__scratch(c, &n->save, G->L * G->in_per + (fixed + batch - 1) / batch))
        return oom(c);
    float *Y = n->out.data;
    const uint64_t base = c->g->sample_base * (uint64_t)G->L, step = 2 * (uint64_t)K + 2;
    if (k.narrow) {
        /* 16-bit operands and sums (deterministic rounding: no words) */
        int16_t *xq = (int16_t *)(void *)n->save.data, *wq = xq + N * G->in_per, *bq = wq + nw;
        int16_t *cols = bq + O;
        int rc = qt__ifix_operands16_par(f, &k, in->out.data, xq, N * G->in_per);
        if (!rc) rc = qt__ifix_operands16_par(f, &k, c->w, wq, nw);
        if (!rc && B) rc = qt__ifix_operands16_par(f, &k, B, bq, O);
        if (rc) return rc;
        /* with no words to index, a tile's lanes may run on into the next
         * samples: lane j is position g0 + j of the batch's N*P; twice the
         * lanes of a 32-bit tile in the same bytes */
        const size_t NP = N * P, pt2 = 2 * pt < NP ? 2 * pt : NP, tiles2 = (NP + pt2 - 1) / pt2;
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
        for (size_t t = 0; t < tiles2; t++) {
            size_t g0 = t * pt2, m = NP - g0 < pt2 ? NP - g0 : pt2;
            int16_t *col = cols + (size_t)omp_get_thread_num() * rows * pt2;
            for (size_t j = 0; j < m;) {
                size_t s = (g0 + j) / P, p0 = (g0 + j) % P, seg = P - p0 < m - j ? P - p0 : m - j;
                gather_tile16(G, xq + s * G->in_per, p0, seg, pt2, col + j);
                j += seg;
            }
            int16_t acc[512];
            for (size_t co = 0; co < O; co++) {
                size_t g = co / (size_t)G->Og;
                memset(acc, 0, m * sizeof *acc);
                qt__ifix_dot16(&k, acc, m, wq + co * K, 1, K, col + g * K * pt2, pt2);
                for (size_t j = 0; j < m;) {
                    size_t s = (g0 + j) / P, p0 = (g0 + j) % P;
                    size_t seg = P - p0 < m - j ? P - p0 : m - j;
                    qt__ifix_finish16(&k, acc + j, seg, B ? bq + co : NULL,
                                      Y + (s * O + co) * P + p0, 1);
                    j += seg;
                }
            }
        }
        return QT_OK;
    }
    int32_t *xq = (int32_t *)(void *)n->save.data, *wq = xq + N * G->in_per, *bq = wq + nw;
    int32_t *cols = bq + O;
    int rc = qt__ifix_operands_par(f, &k, in->out.data, xq, N * G->in_per);
    if (!rc) rc = qt__ifix_operands_par(f, &k, c->w, wq, nw);
    if (!rc && B) rc = qt__ifix_operands_par(f, &k, B, bq, O);
    if (rc) return rc;
    qt_rkey key = qt_rand_key(c->q->seed, c->q->stream ^ QT_QP_INTRINSIC);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (size_t t = 0; t < N * tiles; t++) {
        size_t s = t / tiles, p0 = (t % tiles) * pt, m = P - p0 < pt ? P - p0 : pt;
        int32_t *col = cols + (size_t)omp_get_thread_num() * rows * pt;
        gather_tile(G, xq + s * G->in_per, p0, m, pt, col);
        int32_t acc[256];
        for (size_t co = 0; co < O; co++) {
            size_t g = co / (size_t)G->Og;
            memset(acc, 0, m * sizeof *acc);
            qt__ifix_dot(&k, acc, m, wq + co * K, 1, K, col + g * K * pt, pt, key,
                         (((base + s) * O + co) * P + p0) * step, step);
            qt__ifix_finish(&k, acc, m, B ? bq + co : NULL, Y + (s * O + co) * P + p0, 1);
        }
    }
    return QT_OK;
}

static int forward_intrinsic(qt_opctx *c, const geom *G)
{
    qt_node *n = c->n, *in = qt__in(c, 0);
    const qt_format *f = c->q->fmt[QT_QP_INTRINSIC];
    const qt_nodeq *q = c->q;
    int each = q->mode == QT_INTR_EACH;
    size_t N = (size_t)c->g->n_cur * G->L, O = (size_t)G->O, P = G->P, K = G->Kg;
    size_t nx = N * G->in_per, nw = O * K, plane = G->plane, hw = (size_t)G->H * G->W;
    const float *X = in->out.data, *Wt = c->w, *B = n->p[QT_P_B].size ? c->b : NULL;
    float *Y = n->out.data, *buf = NULL;
    uint64_t base = c->g->sample_base * (uint64_t)G->L;

    if (each) {
        int rc = forward_intrinsic_int(c, G);
        if (rc != QT_ERANGE) return rc;
    }
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
        const float *x = X + s * G->in_per + g * (size_t)G->Cg * plane;
        const float *w = Wt + co * K;
        float *y = Y + i * P;
        uint64_t row = ((base + s) * O + co) * P;
        size_t p = 0;
        for (int oz = 0; oz < G->Do; oz++)
            for (int oy = 0; oy < G->Ho; oy++)
                for (int ox = 0; ox < G->Wo; ox++, p++) {
                    uint64_t idx = (row + p) * (2 * K + 2);
                    float acc = 0.0f;
                    double sum = 0.0;
                    for (int ci = 0; ci < G->Cg; ci++) {
                        const float *xc = x + (size_t)ci * plane;
                        for (int kz = 0; kz < G->kd; kz++) {
                            int iz = oz * G->sd - G->pf + kz * G->dd;
                            if (iz < 0 || iz >= G->D) continue;
                            for (int ky = 0; ky < G->kh; ky++) {
                                int iy = oy * G->sh - G->pt + ky * G->dh;
                                if (iy < 0 || iy >= G->H) continue;
                                const float *xr = xc + (size_t)iz * hw + (size_t)iy * G->W;
                                size_t k0 = (((size_t)ci * G->kd + kz) * G->kh + ky) * G->kw;
                                for (int kx = 0; kx < G->kw; kx++) {
                                    int ix = ox * G->sw - G->pl + kx * G->dw;
                                    if (ix < 0 || ix >= G->W) continue;
                                    size_t k = k0 + (size_t)kx;
                                    float xv = xr[ix], wv = w[k];
                                    if (each) {
                                        float pr = qt_mul(f, wv, xv, qt__intr_rand(q, idx + 2 * k));
                                        acc = qt_add(f, acc, pr, qt__intr_rand(q, idx + 2 * k + 1));
                                    } else {
                                        sum += (double)qt_quantize1(f, xv * wv,
                                                                    qt__intr_rand(q, idx + 2 * k));
                                    }
                                }
                            }
                        }
                    }
                    if (!each) acc = qt_quantize1(f, (float)sum, qt__intr_rand(q, idx + 2 * K));
                    if (B)
                        acc = each ? qt_add(f, acc, B[co], qt__intr_rand(q, idx + 2 * K + 1))
                                   : qt_quantize1(f, acc + B[co], qt__intr_rand(q, idx + 2 * K + 1));
                    y[p] = acc;
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
        const qt_node *in = qt__in(c, 0);
        int lead = in->rank - G.S - 1, dims[QT_MAX_RANK], out[3] = { G.Do, G.Ho, G.Wo };
        for (int i = 0; i < lead; i++) dims[i] = in->shape[i];
        dims[lead] = G.O;
        for (int i = 0; i < G.S; i++) dims[lead + 1 + i] = out[3 - G.S + i];
        qt__set_dims(n, in->rank, dims);
        n->macs = (uint64_t)G.L * G.O * G.P * G.Kg;
        int wd[5] = { G.O, G.Cg, 0, 0, 0 }, k[3] = { G.kd, G.kh, G.kw };
        for (int i = 0; i < G.S; i++) wd[2 + i] = k[3 - G.S + i];
        qt__param_dims(&n->p[QT_P_W], 2 + G.S, wd);
        if (n->a.bias) qt__param_dims(&n->p[QT_P_B], 1, &G.O);
        return QT_OK;
    }
    if (action == QT_ACT_FORWARD) {
        if (c->q && c->q->fmt[QT_QP_INTRINSIC]) return forward_intrinsic(c, &G);
        return direct_ok(&G) ? forward_direct(c, &G) : forward_float(c, &G);
    }
    if (direct_ok(&G) && G.sh == 1 && G.sw == 1) return backward_direct(c, &G);
    return backward_float(c, &G);
}
