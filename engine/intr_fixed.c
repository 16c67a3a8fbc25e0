/*
 * intr_fixed.c -- the integer kernel of intrinsic EACH for fixed point.
 *
 * EACH's arithmetic (engine.h, qt_intrinsic) on fixed<W,F> or ufixed<W,F>
 * with saturation is integer arithmetic at F fractional bits: an operand
 * (already rounded to the format) is q*2^-F with q an integer in [lo, hi];
 * qt_mul's exact product of two operands is v*2^-2F, v = qa*qb, which the
 * format rounds to round(v / 2^F) (a shift with the mode's rounding) and
 * saturates; qt_add's exact sum of two values in the format is the
 * integer sum, which only saturates. So for every output element, in the
 * documented order,
 *     acc = 0;  acc = sat(acc + sat(rnd(w_k * x_k >> F)))  for k = 0..K-1;
 *     acc = sat(acc + bias)
 * gives exactly the bits of the reference loops (qt_mul/qt_add per
 * product), which stay as the fallback and as the oracle in the tests.
 * A padding tap is an operand 0: its product is exactly 0 (no rounding, so
 * no random word matters) and adding it leaves acc as it is, so taps in
 * the padding may be included as zeros.
 *
 * Applies when (ifix_of): type fixed or ufixed, overflow sat, 0 <= F <= 30
 * and max|q|^2 < 2^31 (fixed up to W = 16, ufixed up to W = 15), so that
 * products and the rounding offsets fit int32 and every operand is exact
 * in float32; and when no operand is NaN (the reference propagates NaN;
 * infinities were saturated by the operand rounding). Otherwise the op
 * runs its reference loops.
 *
 * The same integers serve the element-wise ops: batchnorm's qt_add(qt_mul(
 * Q(x), inv), rest) is a one-tap dot product plus a bias; add and sub of two
 * operands are exact sums that only saturate, mul one rounded product
 * (qt__ifix_elem); avgpool's and gap's chains of qt_add are saturating sums
 * (qt__ifix_sum).
 *
 * The lanes of the kernels below are independent output elements (output
 * positions of one channel for conv, rows for dense), so they vectorise;
 * the order within one element is the documented one. Built three times
 * (QT_CLONES) with identical results: integer arithmetic only. When every
 * product with its rounding offset and every sum of two values of the
 * range fit 16 bits (fixed up to W = 8, ufixed up to W = 7, F <= 13) and
 * the rounding is deterministic, conv and dense run 16-bit lanes instead
 * (qt__ifix_dot16: twice the lanes per vector, the same bits).
 */
#include "internal.h"
#include "simd.h"

#include <stdlib.h>

/* floats per stack chunk of qt__ifix_operands_par */
#define IFIX_PCHUNK 4096

int qt__intr_force_ref = 0;

int qt__ifix_of(const qt_format *f, qt_ifix *k)
{
    if (qt__intr_force_ref) return 0;
    if (f->type != QT_FIXED && f->type != QT_UFIXED) return 0;
    if (f->overflow != QT_SAT) return 0;
    if (f->bias < 0 || f->bias > 30) return 0;
    int64_t lo, hi;
    if (f->type == QT_UFIXED) {
        if (f->width > 15) return 0;
        lo = 0;
        hi = ((int64_t)1 << f->width) - 1;
    } else {
        if (f->width > 16) return 0;
        hi = ((int64_t)1 << (f->width - 1)) - 1;
        lo = (f->flags & QT_F_SYM) ? -hi : -hi - 1;
    }
    int64_t m = -lo > hi ? -lo : hi;
    if (m * m >= ((int64_t)1 << 31)) return 0;
    k->F = f->bias;
    k->round = f->round;
    k->lo = (int32_t)lo;
    k->hi = (int32_t)hi;
    /* 16-bit lanes: products, rounding offsets and two-term sums fit */
    k->narrow = f->round != QT_SR && f->bias <= 14 && m * m + ((int64_t)1 << f->bias) <= 32767
                && 2 * m <= 32767;
    k->scale = (float)ldexp(1.0, f->bias);
    k->iscale = (float)ldexp(1.0, -f->bias);
    return 1;
}

int qt__ifix_operands(const qt_format *f, const qt_ifix *k, const float *x, int32_t *q,
                      size_t n, float *tmp)
{
    /* the operand rounding of qt__operand: f's own, nearest-even for a
     * stochastic f (the array kernel gives qt_quantize1's bits) */
    qt_format fo = *f;
    if (fo.round == QT_SR) fo.round = QT_RNE;
    memcpy(tmp, x, n * sizeof *tmp);
    qt_quantize(&fo, tmp, n, NULL);
    int nan = 0;
    const float sc = k->scale;
    for (size_t i = 0; i < n; i++) {
        float v = tmp[i];
        nan |= v != v;
        /* exact: v is an integer multiple of 2^-F inside the range */
        q[i] = v == v ? (int32_t)(v * sc) : 0;
    }
    return nan ? QT_ERANGE : QT_OK;
}

/* the product v = w*x at 2F fractional bits rounded to F bits, by mode
 * (|v| <= 2^30, so nothing below overflows): floor(v / 2^F) = v >> F
 * (arithmetic), the remainder v & mask (mask = 2^F - 1) in [0, 2^F), and
 * with the constants of rk_of (all 0 when F = 0: v is exact)
 *   RNE  (v + 2^(F-1) - 1 + (bit F of v)) >> F: up iff rem > half, or
 *        rem == half and floor odd
 *   RNA  (v + 2^(F-1) - (v < 0)) >> F: up iff rem >= half (v >= 0),
 *        rem > half (v < 0: a tie rounds away from zero, down)
 *   RD   v >> F
 *   RZ   (v + (v < 0 ? mask : 0)) >> F: up iff v < 0 and rem != 0
 *   SR   up iff (rand>>8) * 2^-24 < rem * 2^-F, in integers
 * straight-line integer code that GCC vectorises. */
typedef struct rk { int F; int32_t mask, hne, hna, odd, neg; } rk;

static inline rk rk_of(int F)
{
    rk r;
    r.F = F;
    r.mask = (int32_t)(((uint32_t)1 << F) - 1);
    r.hna = F ? (int32_t)1 << (F - 1) : 0;
    r.hne = F ? r.hna - 1 : 0;
    r.odd = F ? 1 : 0;
    r.neg = -r.odd;
    return r;
}

static inline int32_t rnd_shift(int32_t v, rk r, int mode, uint32_t rand)
{
    switch (mode) {
    case QT_RNE: return (v + r.hne + ((v >> r.F) & r.odd)) >> r.F;
    case QT_RNA: return (v + r.hna + ((v >> 31) & r.neg)) >> r.F;
    case QT_RD:  return v >> r.F;
    case QT_RZ:  return (v + ((v >> 31) & r.mask)) >> r.F;
    default: {
        int32_t fl = v >> r.F, rem = v & r.mask;
        uint32_t u = rand >> 8;
        int up = r.F <= 24 ? u < ((uint32_t)rem << (24 - r.F)) : (u << (r.F - 24)) < (uint32_t)rem;
        return fl + up;
    }
    }
}

static inline int32_t sat(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* the deterministic modes: acc[j] (j < n) through K taps, tap k's weight
 * w[k*ws] and operands col[k*ld + j], or col[off[k] + j] with a tap table
 * (off not NULL: the direct layout of ops_conv.c); one instance per mode
 * so that the rounding is straight-line code in the vectorised loop. The
 * lanes run in blocks of IFIX_BLOCK (a constant: the block's accumulators
 * stay in registers through all K taps, instead of a load and a store per
 * tap, whose chain bounds short rows), then the rest tap by tap. */
#define TAP(k) (off ? off[k] : (k) * ld)
#define IFIX_BLOCK 32
/* GCC's loop interchange and unroll-and-jam would rearrange a block's
 * tap and lane loops into scalar code (~30x slower): off for the lane
 * kernels */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-loop-interchange", "no-loop-unroll-and-jam")
#endif
/* whether a product needs its clamp: with the weights in [wmin, wmax] and
 * the operands in [lo, hi], every product lies in [pmin, pmax] and rounds
 * (in any mode) into [pmin >> F, (pmax + 2^F - 1) >> F]; inside [lo, hi]
 * the clamp is the identity, and the kernels run without it (two vector
 * operations of the eleven per tap) */
static int prod_clamp(int64_t wmin, int64_t wmax, int F, int32_t lo, int32_t hi)
{
    int64_t c[4] = { wmin * lo, wmin * hi, wmax * lo, wmax * hi }, pmin = c[0], pmax = c[0];
    for (int i = 1; i < 4; i++) {
        pmin = c[i] < pmin ? c[i] : pmin;
        pmax = c[i] > pmax ? c[i] : pmax;
    }
    return (pmin >> F) < lo || ((pmax + ((int64_t)1 << F) - 1) >> F) > hi;
}

/* the lane blocks of a kernel NAME##_run with the product clamp PC on or
 * off: blocks of B lanes, then of B/2, then the rest */
#define IFIX_BLOCKS(NAME, T, PC, B)                                          \
    {                                                                        \
        size_t j = 0;                                                        \
        for (; j + (B) <= n; j += (B)) {                                     \
            T a[B];                                                          \
            memcpy(a, acc + j, sizeof a);                                    \
            NAME##_run(a, (B), w, ws, K, col + j, ld, off, r, lo, hi, PC);   \
            memcpy(acc + j, a, sizeof a);                                    \
        }                                                                    \
        if (j + (B) / 2 <= n) {                                              \
            T a[(B) / 2];                                                    \
            memcpy(a, acc + j, sizeof a);                                    \
            NAME##_run(a, (B) / 2, w, ws, K, col + j, ld, off, r, lo, hi, PC); \
            memcpy(acc + j, a, sizeof a);                                    \
            j += (B) / 2;                                                    \
        }                                                                    \
        if (j < n) NAME##_run(acc + j, n - j, w, ws, K, col + j, ld, off, r, lo, hi, PC); \
    }

/* a deterministic lane kernel NAME for MODE on lanes of type T (int32_t
 * with RND = rnd32 and SAT = sat, or int16_t with rnd16 and sat16: every
 * step cast to T, exact by the bounds), built for the CLONES targets, in
 * blocks of B lanes */
#define IFIX_LANES_T(NAME, MODE, T, CLONES, RND, SAT, B)                     \
    static inline __attribute__((always_inline)) void                        \
    NAME##_run(T *restrict acc, size_t n, const T *restrict w,               \
               size_t ws, size_t K, const T *restrict col, size_t ld,        \
               const size_t *restrict off, rk r, T lo, T hi, int pc)         \
    {                                                                        \
        for (size_t k = 0; k < K; k++) {                                     \
            const T wk = w[k * ws];                                          \
            const T *restrict c = col + TAP(k);                              \
            for (size_t j = 0; j < n; j++) {                                 \
                T p = RND((T)(wk * c[j]), r, MODE);                          \
                if (pc) p = SAT(p, lo, hi);                                  \
                acc[j] = SAT((T)(acc[j] + p), lo, hi);                       \
            }                                                                \
        }                                                                    \
    }                                                                        \
    CLONES static void NAME(T *restrict acc, size_t n, const T *restrict w,  \
                            size_t ws, size_t K, const T *restrict col,      \
                            size_t ld, const size_t *restrict off, int F,    \
                            T lo, T hi)                                      \
    {                                                                        \
        /* F <= 30, and <= 14 on 16-bit lanes: a shift count of T */        \
        const rk r = rk_of(F & (int)(8 * sizeof(T) - 1));                    \
        int64_t wmin = 0, wmax = 0;                                          \
        for (size_t k = 0; k < K; k++) {                                     \
            wmin = w[k * ws] < wmin ? w[k * ws] : wmin;                      \
            wmax = w[k * ws] > wmax ? w[k * ws] : wmax;                      \
        }                                                                    \
        if (prod_clamp(wmin, wmax, F, lo, hi))                               \
            IFIX_BLOCKS(NAME, T, 1, B)                                       \
        else                                                                 \
            IFIX_BLOCKS(NAME, T, 0, B)                                       \
    }

static inline int32_t rnd32(int32_t v, rk r, int mode) { return rnd_shift(v, r, mode, 0); }

#define IFIX_LANES(NAME, MODE) \
    IFIX_LANES_T(NAME, MODE, int32_t, QT_CLONES, rnd32, sat, IFIX_BLOCK)

IFIX_LANES(lanes_rne, QT_RNE)
IFIX_LANES(lanes_rna, QT_RNA)
IFIX_LANES(lanes_rd, QT_RD)
IFIX_LANES(lanes_rz, QT_RZ)

/* stochastic: lane j's product k draws the word at idx0 + j*lstride + 2k
 * (the sums are exact: their words are never needed) */
QT_CLONES static void lanes_sr(int32_t *restrict acc, size_t n, const int32_t *restrict w,
                               size_t ws, size_t K, const int32_t *restrict col, size_t ld,
                               const size_t *restrict off, int F, int32_t lo, int32_t hi,
                               qt_rkey key, uint64_t idx0, uint64_t lstride)
{
    const rk rc = rk_of(F);
    for (size_t k = 0; k < K; k++) {
        const int32_t wk = w[k * ws];
        const int32_t *restrict c = col + TAP(k);
        const uint64_t base = idx0 + 2 * (uint64_t)k;
        for (size_t j = 0; j < n; j++) {
            uint32_t r = qt_rand32_k(key, base + (uint64_t)j * lstride);
            int32_t p = sat(rnd_shift(wk * c[j], rc, QT_SR, r), lo, hi);
            acc[j] = sat(acc[j] + p, lo, hi);
        }
    }
}

static void dot_any(const qt_ifix *k, int32_t *acc, size_t n, const int32_t *w, size_t ws,
                    size_t K, const int32_t *col, size_t ld, const size_t *off, qt_rkey key,
                    uint64_t idx0, uint64_t lstride)
{
    switch (k->round) {
    case QT_RNE: lanes_rne(acc, n, w, ws, K, col, ld, off, k->F, k->lo, k->hi); break;
    case QT_RNA: lanes_rna(acc, n, w, ws, K, col, ld, off, k->F, k->lo, k->hi); break;
    case QT_RD:  lanes_rd(acc, n, w, ws, K, col, ld, off, k->F, k->lo, k->hi); break;
    case QT_RZ:  lanes_rz(acc, n, w, ws, K, col, ld, off, k->F, k->lo, k->hi); break;
    default:
        lanes_sr(acc, n, w, ws, K, col, ld, off, k->F, k->lo, k->hi, key, idx0, lstride);
    }
}

void qt__ifix_dot(const qt_ifix *k, int32_t *acc, size_t n, const int32_t *w, size_t ws,
                  size_t K, const int32_t *col, size_t ld, qt_rkey key, uint64_t idx0,
                  uint64_t lstride)
{
    dot_any(k, acc, n, w, ws, K, col, ld, NULL, key, idx0, lstride);
}

void qt__ifix_dot_taps(const qt_ifix *k, int32_t *acc, size_t n, const int32_t *w, size_t K,
                       const int32_t *x, const size_t *off)
{
    const qt_rkey none = { 0 };   /* a deterministic mode: no words drawn */
    dot_any(k, acc, n, w, 1, K, x, 0, off, none, 0, 0);
}

/* the 16-bit lanes (k->narrow: a deterministic mode, every product and its
 * rounding offset and every sum of two values of the range fit int16):
 * the same arithmetic as IFIX_LANES with each step cast to int16 (exact by
 * the bounds), which GCC vectorises with twice the lanes */
static inline int16_t rnd16(int16_t v, rk r, int mode)
{
    switch (mode) {
    case QT_RNE: return (int16_t)((int16_t)(v + r.hne + ((v >> r.F) & r.odd)) >> r.F);
    case QT_RNA: return (int16_t)((int16_t)(v + r.hna + ((v >> 15) & r.neg)) >> r.F);
    case QT_RD:  return (int16_t)(v >> r.F);
    default:     return (int16_t)((int16_t)(v + ((v >> 15) & r.mask)) >> r.F);
    }
}

static inline int16_t sat16(int16_t v, int16_t lo, int16_t hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

#define IFIX_LANES16(NAME, MODE) \
    IFIX_LANES_T(NAME, MODE, int16_t, QT_CLONES_BW, rnd16, sat16, 2 * IFIX_BLOCK)

IFIX_LANES16(lanes16_rne, QT_RNE)
IFIX_LANES16(lanes16_rna, QT_RNA)
IFIX_LANES16(lanes16_rd, QT_RD)
IFIX_LANES16(lanes16_rz, QT_RZ)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
#undef TAP

static void dot16_any(const qt_ifix *k, int16_t *acc, size_t n, const int16_t *w, size_t ws,
                      size_t K, const int16_t *col, size_t ld, const size_t *off)
{
    const int16_t lo = (int16_t)k->lo, hi = (int16_t)k->hi;
    switch (k->round) {
    case QT_RNE: lanes16_rne(acc, n, w, ws, K, col, ld, off, k->F, lo, hi); break;
    case QT_RNA: lanes16_rna(acc, n, w, ws, K, col, ld, off, k->F, lo, hi); break;
    case QT_RD:  lanes16_rd(acc, n, w, ws, K, col, ld, off, k->F, lo, hi); break;
    default:     lanes16_rz(acc, n, w, ws, K, col, ld, off, k->F, lo, hi);
    }
}

void qt__ifix_dot16(const qt_ifix *k, int16_t *acc, size_t n, const int16_t *w, size_t ws,
                    size_t K, const int16_t *col, size_t ld)
{
    dot16_any(k, acc, n, w, ws, K, col, ld, NULL);
}

void qt__ifix_dot16_taps(const qt_ifix *k, int16_t *acc, size_t n, const int16_t *w, size_t K,
                         const int16_t *x, const size_t *off)
{
    dot16_any(k, acc, n, w, 1, K, x, 0, off);
}

void qt__ifix_finish16(const qt_ifix *k, const int16_t *acc, size_t n, const int16_t *bias,
                       float *y, size_t ys)
{
    const float isc = k->iscale;
    for (size_t j = 0; j < n; j++) {
        int32_t a = bias ? sat(acc[j] + *bias, k->lo, k->hi) : acc[j];
        y[j * ys] = (float)a * isc + 0.0f;
    }
}

void qt__ifix_finish(const qt_ifix *k, const int32_t *acc, size_t n, const int32_t *bias,
                     float *y, size_t ys)
{
    const float isc = k->iscale;
    for (size_t j = 0; j < n; j++) {
        int32_t a = bias ? sat(acc[j] + *bias, k->lo, k->hi) : acc[j];
        y[j * ys] = (float)a * isc + 0.0f;
    }
}

/* element-wise EACH (ops_shape.c): the sum and difference of two operands
 * are exact, so they only saturate; the product is rounded as a dot
 * product's (rnd_shift), its word at idx0 + j */
#define IFIX_ELEM(NAME, MODE)                                                \
    QT_CLONES static void NAME(const int32_t *restrict a,                    \
                               const int32_t *restrict b, size_t n,          \
                               float *restrict y, int F, int32_t lo,         \
                               int32_t hi, float isc)                        \
    {                                                                        \
        const rk r = rk_of(F);                                               \
        for (size_t j = 0; j < n; j++) {                                     \
            int32_t p = sat(rnd_shift(a[j] * b[j], r, MODE, 0), lo, hi);     \
            y[j] = (float)p * isc + 0.0f;                                    \
        }                                                                    \
    }

IFIX_ELEM(mul_rne, QT_RNE)
IFIX_ELEM(mul_rna, QT_RNA)
IFIX_ELEM(mul_rd, QT_RD)
IFIX_ELEM(mul_rz, QT_RZ)

static void mul_sr(const int32_t *a, const int32_t *b, size_t n, float *y, const qt_ifix *k,
                   qt_rkey key, uint64_t idx0)
{
    const rk rc = rk_of(k->F);
    for (size_t j = 0; j < n; j++) {
        uint32_t r = qt_rand32_k(key, idx0 + j);
        int32_t p = sat(rnd_shift(a[j] * b[j], rc, QT_SR, r), k->lo, k->hi);
        y[j] = (float)p * k->iscale + 0.0f;
    }
}

QT_CLONES static void add_sat(const int32_t *restrict a, const int32_t *restrict b,
                              int32_t sb, size_t n, float *restrict y, int32_t lo,
                              int32_t hi, float isc)
{
    for (size_t j = 0; j < n; j++)
        y[j] = (float)sat(a[j] + sb * b[j], lo, hi) * isc + 0.0f;
}

void qt__ifix_elem(const qt_ifix *k, int op, const int32_t *a, const int32_t *b, size_t n,
                   float *y, qt_rkey key, uint64_t idx0)
{
    if (op != QT_IFIX_MUL) {
        add_sat(a, b, op == QT_IFIX_SUB ? -1 : 1, n, y, k->lo, k->hi, k->iscale);
        return;
    }
    switch (k->round) {
    case QT_RNE: mul_rne(a, b, n, y, k->F, k->lo, k->hi, k->iscale); break;
    case QT_RNA: mul_rna(a, b, n, y, k->F, k->lo, k->hi, k->iscale); break;
    case QT_RD:  mul_rd(a, b, n, y, k->F, k->lo, k->hi, k->iscale); break;
    case QT_RZ:  mul_rz(a, b, n, y, k->F, k->lo, k->hi, k->iscale); break;
    default:     mul_sr(a, b, n, y, k, key, idx0);
    }
}

int32_t qt__ifix_sum(const qt_ifix *k, int32_t acc, const int32_t *q, size_t n)
{
    for (size_t j = 0; j < n; j++) acc = sat(acc + q[j], k->lo, k->hi);
    return acc;
}

int qt__ifix_operands_par(const qt_format *f, const qt_ifix *k, const float *x, int32_t *q,
                          size_t n)
{
    const size_t nc = (n + IFIX_PCHUNK - 1) / IFIX_PCHUNK;
    int nan = 0;
    #pragma omp parallel for schedule(static) reduction(|:nan) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        float tmp[IFIX_PCHUNK];
        size_t i0 = c * IFIX_PCHUNK, m = n - i0 < IFIX_PCHUNK ? n - i0 : IFIX_PCHUNK;
        nan |= qt__ifix_operands(f, k, x + i0, q + i0, m, tmp) != QT_OK;
    }
    return nan ? QT_ERANGE : QT_OK;
}

int qt__ifix_operands16_par(const qt_format *f, const qt_ifix *k, const float *x, int16_t *q,
                            size_t n)
{
    const size_t nc = (n + IFIX_PCHUNK - 1) / IFIX_PCHUNK;
    int nan = 0;
    #pragma omp parallel for schedule(static) reduction(|:nan) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        float tmp[IFIX_PCHUNK];
        int32_t q32[IFIX_PCHUNK];
        size_t i0 = c * IFIX_PCHUNK, m = n - i0 < IFIX_PCHUNK ? n - i0 : IFIX_PCHUNK;
        nan |= qt__ifix_operands(f, k, x + i0, q32, m, tmp) != QT_OK;
        for (size_t i = 0; i < m; i++) q[i0 + i] = (int16_t)q32[i];   /* in [lo, hi] */
    }
    return nan ? QT_ERANGE : QT_OK;
}
