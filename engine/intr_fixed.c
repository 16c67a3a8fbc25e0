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
 * The lanes of the kernels below are independent output elements (output
 * positions of one channel for conv, rows for dense), so they vectorise;
 * the order within one element is the documented one. Built three times
 * (QT_CLONES) with identical results: integer arithmetic only.
 */
#include "internal.h"
#include "simd.h"

#include <stdlib.h>

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

/* the product v = w*x at 2F fractional bits rounded to F bits, by mode:
 * floor(v / 2^F) = v >> F (arithmetic), the remainder v & mask (mask =
 * 2^F - 1) in [0, 2^F), half = 2^(F-1) (1 when F = 0: never reached by
 * a remainder of 0); rand is the word (SR only). Written as sums of
 * comparisons, the form GCC vectorises. */
static inline int32_t rnd_shift(int32_t v, int F, int32_t mask, int32_t half, int mode,
                                uint32_t rand)
{
    int32_t fl = v >> F, rem = v & mask;
    switch (mode) {
    case QT_RNE: return fl + (rem > half) + ((rem == half) & fl & 1);
    case QT_RNA: return fl + (rem > half) + ((rem == half) & (v >= 0));
    case QT_RD:  return fl;
    case QT_RZ:  return fl + ((v < 0) & (rem != 0));
    default: {
        /* up iff (rand>>8) * 2^-24 < rem * 2^-F, in integers */
        uint32_t u = rand >> 8;
        int up = F <= 24 ? u < ((uint32_t)rem << (24 - F)) : (u << (F - 24)) < (uint32_t)rem;
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
 * w[k*ws] and operands col[k*ld + j]; one instance per mode so that the
 * rounding is straight-line code in the vectorised loop */
#define IFIX_LANES(NAME, MODE)                                               \
    QT_CLONES static void NAME(int32_t *restrict acc, size_t n,              \
                               const int32_t *restrict w, size_t ws,         \
                               size_t K, const int32_t *restrict col,        \
                               size_t ld, int F, int32_t lo, int32_t hi)     \
    {                                                                        \
        const int32_t mask = (int32_t)(((uint32_t)1 << F) - 1);              \
        const int32_t half = F ? (int32_t)1 << (F - 1) : 1;                  \
        for (size_t k = 0; k < K; k++) {                                     \
            const int32_t wk = w[k * ws];                                    \
            const int32_t *restrict c = col + k * ld;                        \
            for (size_t j = 0; j < n; j++) {                                 \
                int32_t p = sat(rnd_shift(wk * c[j], F, mask, half, MODE, 0), lo, hi); \
                acc[j] = sat(acc[j] + p, lo, hi);                            \
            }                                                                \
        }                                                                    \
    }

IFIX_LANES(lanes_rne, QT_RNE)
IFIX_LANES(lanes_rna, QT_RNA)
IFIX_LANES(lanes_rd, QT_RD)
IFIX_LANES(lanes_rz, QT_RZ)

/* stochastic: lane j's product k draws the word at idx0 + j*lstride + 2k
 * (the sums are exact: their words are never needed) */
QT_CLONES static void lanes_sr(int32_t *restrict acc, size_t n, const int32_t *restrict w,
                               size_t ws, size_t K, const int32_t *restrict col, size_t ld,
                               int F, int32_t lo, int32_t hi, qt_rkey key, uint64_t idx0,
                               uint64_t lstride)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << F) - 1);
    const int32_t half = F ? (int32_t)1 << (F - 1) : 1;
    for (size_t k = 0; k < K; k++) {
        const int32_t wk = w[k * ws];
        const int32_t *restrict c = col + k * ld;
        const uint64_t base = idx0 + 2 * (uint64_t)k;
        for (size_t j = 0; j < n; j++) {
            uint32_t r = qt_rand32_k(key, base + (uint64_t)j * lstride);
            int32_t p = sat(rnd_shift(wk * c[j], F, mask, half, QT_SR, r), lo, hi);
            acc[j] = sat(acc[j] + p, lo, hi);
        }
    }
}

void qt__ifix_dot(const qt_ifix *k, int32_t *acc, size_t n, const int32_t *w, size_t ws,
                  size_t K, const int32_t *col, size_t ld, qt_rkey key, uint64_t idx0,
                  uint64_t lstride)
{
    switch (k->round) {
    case QT_RNE: lanes_rne(acc, n, w, ws, K, col, ld, k->F, k->lo, k->hi); break;
    case QT_RNA: lanes_rna(acc, n, w, ws, K, col, ld, k->F, k->lo, k->hi); break;
    case QT_RD:  lanes_rd(acc, n, w, ws, K, col, ld, k->F, k->lo, k->hi); break;
    case QT_RZ:  lanes_rz(acc, n, w, ws, K, col, ld, k->F, k->lo, k->hi); break;
    default:
        lanes_sr(acc, n, w, ws, K, col, ld, k->F, k->lo, k->hi, key, idx0, lstride);
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
