/*
 * conv_direct.c -- the register-blocked kernels of the direct float
 * convolution (ops_conv.c, "Direct path").
 *
 * A prepared input (ops_conv.c: padded, and split into stride phases) is a
 * sequence of channel planes, cstride floats apart. Output position (oy,
 * ox) is the lane j = oy*Wq + ox of a flat lane space, and kernel tap t of
 * every channel reads the plane at j + off[t]; lanes with ox >= Wo are
 * computed but thrown away. So a layer is, per sample, the product
 *     acc[o][j] = sum over c, t (in that order) of w[o][c][t] * x[c][j + off[t]]
 * and a kernel holds OB output channels x NV vectors of lanes in registers:
 * per tap it loads NV input vectors and broadcasts OB weights (packed as
 * [C*kk][OB] per block of OB channels, zeros past the last channel).
 *
 * Each lane's sum runs through the taps in the order above with one fused
 * multiply-add per tap (AVX2 and AVX-512: identical bits) or a multiply then
 * an add (the portable build), starting from 0. The sums of different lanes
 * and samples never mix, so the results depend neither on the thread count
 * nor on how lanes are blocked, only on the instruction set.
 *
 * Weight gradients (qt__dconv_dw): dw[o][c][t] = sum over lanes of dy[o][j]
 * * x[c][j + off[t]], with dy zero on the thrown-away lanes; vectors of
 * lanes are summed lane-wise, then across the vector at the end, so those
 * bits depend on the vector width too.
 *
 * Dispatch: __builtin_cpu_supports at run time (AVX-512F, AVX2+FMA, the
 * portable baseline); qt__conv_isa forces one (tests). Kernels are written
 * with GCC vector types, so the portable build is plain C elsewhere. This
 * file is compiled with -ffp-contract=fast (the multiply-adds) and without
 * trapping math.
 */
#include "internal.h"

#include <stdint.h>

int qt__conv_isa = -1;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DC_X86 1
#define T512 __attribute__((target("avx512f,avx2,fma")))
#define T256 __attribute__((target("avx2,fma")))
#else
#define DC_X86 0
#define T512
#define T256
#endif
#define TDEF

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

/* the forward kernel: tile[o][l] (o < OB, l < NV*VL) = the lanes j0 + l */
#define DC_FWD(NAME, TGT, VT, VL, OB, NV)                                       \
    TGT static void NAME(const float *restrict x, size_t cstride, int C, int kk,  \
                         const int *restrict off, const float *restrict w,        \
                         float *restrict tile)                                    \
    {                                                                             \
        VT acc[OB][NV];                                                           \
        for (int o = 0; o < OB; o++)                                              \
            for (int v = 0; v < NV; v++) acc[o][v] = (VT){ 0 };                   \
        for (int c = 0; c < C; c++, x += cstride)                                 \
            for (int t = 0; t < kk; t++, w += OB) {                               \
                const float *xt = x + off[t];                                     \
                VT xv[NV];                                                        \
                for (int v = 0; v < NV; v++)                                      \
                    __builtin_memcpy(&xv[v], xt + v * VL, sizeof(VT));            \
                for (int o = 0; o < OB; o++) {                                    \
                    VT wv = w[o] - (VT){ 0 };  /* a broadcast (x - 0 is x, -0 too) */                                      \
                    for (int v = 0; v < NV; v++) acc[o][v] += wv * xv[v];         \
                }                                                                 \
            }                                                                     \
        for (int o = 0; o < OB; o++)                                              \
            for (int v = 0; v < NV; v++)                                          \
                __builtin_memcpy(tile + (o * NV + v) * VL, &acc[o][v], sizeof(VT)); \
    }

/* one set of kernels per instruction set: OB x NV blocks */
#define DC_SET(P, TGT, VT, VL, N1, N2, N4, N6, N8) \
    DC_FWD(P##_1, TGT, VT, VL, 1, N1)              \
    DC_FWD(P##_2, TGT, VT, VL, 2, N2)              \
    DC_FWD(P##_4, TGT, VT, VL, 4, N4)              \
    DC_FWD(P##_6, TGT, VT, VL, 6, N6)              \
    DC_FWD(P##_8, TGT, VT, VL, 8, N8)

#if DC_X86
DC_SET(f512, T512, v16, 16, 12, 8, 6, 4, 3)
DC_SET(f256, T256, v8, 8, 6, 4, 3, 2, 1)
#endif
DC_SET(f128, TDEF, v4, 4, 6, 4, 3, 2, 1)


/* the weight-gradient kernel: out[o][t] (o < OB, t < TB) = the sum over
 * ns samples (x and dy advanced by xss, dyss) and nvec vectors of lanes of
 * dy[o*dys + j] * xs[t][j], lane-wise, then the lanes of each vector in
 * order */
#define DC_DW(NAME, TGT, VT, VL, OB, TB)                                          \
    TGT static void NAME(const float *const *restrict xs, const float *restrict dy, \
                         size_t dys, size_t nvec, size_t ns, size_t xss, size_t dyss, \
                         float *restrict out)                                       \
    {                                                                               \
        VT acc[OB][TB];                                                             \
        for (int o = 0; o < OB; o++)                                                \
            for (int t = 0; t < TB; t++) acc[o][t] = (VT){ 0 };                     \
        for (size_t s = 0; s < ns; s++, dy += dyss) {                               \
            const float *xp[TB];                                                    \
            for (int t = 0; t < TB; t++) xp[t] = xs[t] + s * xss;                   \
            for (size_t v = 0; v < nvec; v++) {                                     \
                VT xv[TB];                                                          \
                for (int t = 0; t < TB; t++)                                        \
                    __builtin_memcpy(&xv[t], xp[t] + v * VL, sizeof(VT));           \
                for (int o = 0; o < OB; o++) {                                      \
                    VT dv;                                                          \
                    __builtin_memcpy(&dv, dy + o * dys + v * VL, sizeof(VT));       \
                    for (int t = 0; t < TB; t++) acc[o][t] += dv * xv[t];           \
                }                                                                   \
            }                                                                       \
        }                                                                           \
        for (int o = 0; o < OB; o++)                                                \
            for (int t = 0; t < TB; t++) {                                          \
                float l[VL], sum = 0.0f;                                            \
                __builtin_memcpy(l, &acc[o][t], sizeof(VT));                        \
                for (int i = 0; i < VL; i++) sum += l[i];                           \
                out[o * TB + t] = sum;                                              \
            }                                                                       \
    }

#define DW_OB 4
#define DW_TB 5
#if DC_X86
DC_DW(w512, T512, v16, 16, 4, 5)
DC_DW(w256, T256, v8, 8, 4, 5)
#endif
DC_DW(w128, TDEF, v4, 4, 4, 5)

typedef void (*dw_fn)(const float *const *, const float *, size_t, size_t, size_t, size_t, size_t,
                      float *);

typedef void (*fwd_fn)(const float *, size_t, int, int, const int *, const float *, float *);

typedef struct isa_def {
    int vl;
    dw_fn dw;
    fwd_fn f[5];          /* OB 1, 2, 4, 6, 8 */
    int nv[5];
} isa_def;

static const int ob_of[5] = { 1, 2, 4, 6, 8 };

static const isa_def isas[3] = {
    { 4, w128, { f128_1, f128_2, f128_4, f128_6, f128_8 }, { 6, 4, 3, 2, 1 } },
#if DC_X86
    { 8, w256, { f256_1, f256_2, f256_4, f256_6, f256_8 }, { 6, 4, 3, 2, 1 } },
    { 16, w512, { f512_1, f512_2, f512_4, f512_6, f512_8 }, { 12, 8, 6, 4, 3 } },
#else
    { 4, w128, { f128_1, f128_2, f128_4, f128_6, f128_8 }, { 6, 4, 3, 2, 1 } },
    { 4, w128, { f128_1, f128_2, f128_4, f128_6, f128_8 }, { 6, 4, 3, 2, 1 } },
#endif
};

int qt__dconv_isa(void)
{
    if (qt__conv_isa >= 0 && qt__conv_isa <= 2) return qt__conv_isa;
#if DC_X86
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

void qt__dconv_plan(qt_dconv *d, int isa)
{
    const isa_def *I = &isas[isa];
    double best = 0;
    int bi = 0;
    for (int i = 0; i < 5; i++) {
        size_t ob = (size_t)ob_of[i], blk = (size_t)I->nv[i] * I->vl;
        size_t nob = ((size_t)d->O + ob - 1) / ob, nl = (d->lanes + blk - 1) / blk;
        /* per tap: OB*NV multiply-adds, NV + OB loads, two of either a cycle */
        double per = (double)(ob * I->nv[i] > ob + I->nv[i] ? ob * I->nv[i] : ob + I->nv[i]);
        double cost = (double)nob * (double)nl * per;
        if (i == 0 || cost <= best) { best = cost; bi = i; }
    }
    d->isa = isa;
    d->ob = ob_of[bi];
    d->kern = bi;
    d->blk = I->nv[bi] * I->vl;
}

size_t qt__dconv_wsize(const qt_dconv *d)
{
    size_t nob = ((size_t)d->O + d->ob - 1) / d->ob;
    return nob * (size_t)d->ob * (size_t)d->C * (size_t)d->kk;
}

void qt__dconv_pack(const qt_dconv *d, const float *w, size_t so, size_t sc, int flip,
                    float *wp)
{
    const size_t ob = (size_t)d->ob, nob = ((size_t)d->O + ob - 1) / ob, kk = (size_t)d->kk;
    for (size_t b = 0; b < nob; b++)
        for (size_t c = 0; c < (size_t)d->C; c++)
            for (size_t t = 0; t < kk; t++) {
                float *dst = wp + ((b * d->C + c) * kk + t) * ob;
                size_t tt = flip ? kk - 1 - t : t;
                for (size_t o = 0; o < ob; o++) {
                    size_t oo = b * ob + o;
                    dst[o] = oo < (size_t)d->O ? w[oo * so + c * sc + tt] : 0.0f;
                }
            }
}

void qt__dconv_run(const qt_dconv *d, const float *x, const float *wp, const float *bias,
                   float *y, size_t ystride, int accumulate, float *tile)
{
    const isa_def *I = &isas[d->isa];
    fwd_fn fn = I->f[d->kern];
    const size_t ob = (size_t)d->ob, nob = ((size_t)d->O + ob - 1) / ob, blk = (size_t)d->blk;
    const size_t Wq = (size_t)d->Wq, Wo = (size_t)d->Wo, wblk = ob * (size_t)d->C * d->kk;
    for (size_t b = 0; b < nob; b++) {
        size_t o0 = b * ob, no = (size_t)d->O - o0 < ob ? (size_t)d->O - o0 : ob;
        for (size_t j0 = 0; j0 < d->lanes; j0 += blk) {
            size_t j1 = j0 + blk < d->lanes ? j0 + blk : d->lanes;
            fn(x + j0, d->cstride, d->C, d->kk, d->off, wp + b * wblk, tile);
            /* the valid lanes of each output row in [j0, j1) */
            for (size_t oy = j0 / Wq; oy * Wq < j1; oy++) {
                size_t a = oy * Wq > j0 ? oy * Wq : j0, e = oy * Wq + Wo < j1 ? oy * Wq + Wo : j1;
                if (a >= e) continue;
                for (size_t o = 0; o < no; o++) {
                    const float *src = tile + o * blk + (a - j0);
                    float *dst = y + (o0 + o) * ystride + oy * Wo + (a - oy * Wq);
                    size_t n = e - a;
                    if (accumulate)
                        for (size_t i = 0; i < n; i++) dst[i] += src[i];
                    else {
                        float bv = bias ? bias[o0 + o] : 0.0f;
                        if (bias)
                            for (size_t i = 0; i < n; i++) dst[i] = src[i] + bv;
                        else
                            for (size_t i = 0; i < n; i++) dst[i] = src[i];
                    }
                }
            }
        }
    }
}

int qt__dconv_vl(int isa) { return isas[isa].vl; }

void qt__dconv_dw(const qt_dconv *d, const float *x, const float *dy, size_t dys,
                  size_t nvec, size_t ns, size_t xss, size_t dyss, float *dw)
{
    dw_fn fn = isas[d->isa].dw;
    const size_t R = (size_t)d->C * d->kk, kk = (size_t)d->kk;
    float out[DW_OB * DW_TB];
    const float *xs[DW_TB];
    for (size_t o0 = 0; o0 < (size_t)d->O; o0 += DW_OB) {
        size_t no = (size_t)d->O - o0 < DW_OB ? (size_t)d->O - o0 : DW_OB;
        for (size_t r0 = 0; r0 < R; r0 += DW_TB) {
            size_t nr = R - r0 < DW_TB ? R - r0 : DW_TB;
            for (size_t t = 0; t < DW_TB; t++) {
                size_t r = r0 + (t < nr ? t : 0);
                xs[t] = x + (r / kk) * d->cstride + d->off[r % kk];
            }
            fn(xs, dy + o0 * dys, dys, nvec, ns, xss, dyss, out);
            for (size_t o = 0; o < no; o++)
                for (size_t t = 0; t < nr; t++) dw[(o0 + o) * R + r0 + t] += out[o * DW_TB + t];
        }
    }
}
