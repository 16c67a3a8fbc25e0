/*
 * kernels.c -- fast array paths for fixed/ufixed and float (minifloat).
 *
 * Each kernel is a straight loop over one chunk, specialised per rounding
 * mode so the compiler vectorises it; OpenMP spreads chunks over threads.
 * They give exactly what the scalar references in quant.c give (tests
 * compare them bit for bit). Built three times by target_clones: AVX-512
 * (512-bit vectors, see CMakeLists), AVX2 and a portable version, chosen
 * at run time by what the CPU has.
 */
#include "internal.h"

#include <float.h>

#define CHUNK 16384

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define QT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define QT_CLONES
#endif

/* ---- rounding a float to an integer, per mode ---- */
#define R_RNE(s) __builtin_rintf(s)
#define R_RNA(s) __builtin_roundf(s)
#define R_RD(s)  __builtin_floorf(s)
#define R_RZ(s)  __builtin_truncf(s)

/* stochastic: up iff u < frac, u from the counter-based generator */
static inline float r_sr(float s, uint32_t lo, uint32_t k0, uint32_t c)
{
    uint32_t r = qt__mix32((lo ^ k0) + c);
    float u = (float)(r >> 8) * 0x1p-24f;
    float fl = __builtin_floorf(s);
    return __builtin_copysignf(u < s - fl ? fl + 1.0f : fl, s);
}

/* ------------------------------------------------------------------------ */
/* fixed / ufixed                                                           */
/* ------------------------------------------------------------------------ */

typedef struct fixk {
    float sc, isc;        /* 2^F, 2^-F */
    float lo, hi;         /* integer bounds, as float32 (toward zero) */
} fixk;

/* RD needs one fix: x*2^F can underflow to -0 for tiny negative x when
 * F < 0, where the exact floor is -1. */
#define FIXED_KERNEL(NAME, ROUND, FIX)                                      \
    QT_CLONES static void NAME(float *restrict x, size_t n, fixk k)         \
    {                                                                       \
        for (size_t i = 0; i < n; i++) {                                    \
            float v = x[i], s = v * k.sc, q = ROUND(s);                     \
            FIX                                                             \
            q = q < k.lo ? k.lo : q;                                        \
            q = q > k.hi ? k.hi : q;                                        \
            x[i] = q * k.isc + 0.0f;                                        \
        }                                                                   \
    }

FIXED_KERNEL(fixed_rne, R_RNE, )
FIXED_KERNEL(fixed_rna, R_RNA, )
FIXED_KERNEL(fixed_rz, R_RZ, )
FIXED_KERNEL(fixed_rd, R_RD, q = (s == 0.0f && v < 0.0f) ? -1.0f : q;)

QT_CLONES static void fixed_sr(float *restrict x, size_t n, fixk k,
                               uint32_t lo0, uint32_t k0, uint32_t c)
{
    for (size_t i = 0; i < n; i++) {
        float s = x[i] * k.sc;
        float q = r_sr(s, lo0 + (uint32_t)i, k0, c);
        q = q < k.lo ? k.lo : q;
        q = q > k.hi ? k.hi : q;
        x[i] = q * k.isc + 0.0f;
    }
}

/* call fn on [x, x+n) split where the 64-bit index's high word changes, so
 * the inner loop works on 32-bit counters */
#define SR_SPLIT(CALL)                                                      \
    do {                                                                    \
        size_t done_ = 0;                                                   \
        while (done_ < n) {                                                 \
            uint64_t idx_ = off + done_;                                    \
            uint32_t lo_ = (uint32_t)idx_;                                  \
            uint64_t room_ = 0x100000000ull - lo_;                          \
            size_t len_ = n - done_ < room_ ? n - done_ : (size_t)room_;    \
            uint32_t c_ = qt__mix32((uint32_t)(idx_ >> 32) ^ key.k1);       \
            float *xs_ = x + done_;                                         \
            size_t ns_ = len_;                                              \
            CALL;                                                           \
            done_ += len_;                                                  \
        }                                                                   \
    } while (0)

static void fixed_chunk(const qt_format *f, const fixk *k, float *x, size_t n,
                        qt_key key, uint64_t off)
{
    switch (f->round) {
    case QT_RNE: fixed_rne(x, n, *k); break;
    case QT_RNA: fixed_rna(x, n, *k); break;
    case QT_RD:  fixed_rd(x, n, *k); break;
    case QT_RZ:  fixed_rz(x, n, *k); break;
    default:
        SR_SPLIT(fixed_sr(xs_, ns_, *k, lo_, key.k0, c_));
    }
}

void qt__fixed_array(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    fixk k;
    double qlo, qhi;
    qt_key key = qt__key(sr ? sr->seed : 0, sr ? sr->stream : 0);
    uint64_t off = sr ? sr->offset : 0;
    size_t nc = (n + CHUNK - 1) / CHUNK;

    if (f->overflow == QT_WRAP) {             /* rare: the reference path */
        for (size_t i = 0; i < n; i++) {
            uint32_t r = f->round == QT_SR ? qt__rand_k(key, off + i) : 0;
            x[i] = qt__to_float_rz(qt__fixed_ref(f, x[i], r));
        }
        return;
    }
    if (f->type == QT_UFIXED) {
        qlo = 0.0;
        qhi = ldexp(1.0, f->width) - 1.0;
    } else {
        qhi = ldexp(1.0, f->width - 1) - 1.0;
        qlo = (f->flags & QT_F_SYM) ? -qhi : -ldexp(1.0, f->width - 1);
    }
    k.sc = (float)ldexp(1.0, f->bias);
    k.isc = (float)ldexp(1.0, -f->bias);
    k.lo = qt__to_float_rz(qlo);
    k.hi = qt__to_float_rz(qhi);
    #pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t len = (c + 1) * CHUNK <= n ? CHUNK : n - c * CHUNK;
        fixed_chunk(f, &k, x + c * CHUNK, len, key, off + c * CHUNK);
    }
}

/* ------------------------------------------------------------------------ */
/* float (minifloat), in float32 arithmetic                                 */
/* ------------------------------------------------------------------------ */

typedef struct fltk {
    int32_t M, emin, emax;
    float   maxv;          /* largest finite */
    float   ovf_pos;       /* result for a positive overflow */
    float   ovf_neg;       /* magnitude for a negative overflow */
    float   inf_pos;       /* result for +inf input (inf or maxv) */
    float   minn, iminn;   /* 2^emin, 2^-emin (no-subnormal formats) */
    int     nosub;
    int     split;         /* scales need two factors (bf16-like ranges) */
} fltk;

/* The scale factors 2^(M-e) and 2^(e-M) are built from bits, each as two
 * normal powers of two (a*b) so that formats reaching below float32's
 * normal range (bf16: steps down to 2^-133) stay exact: v*a*b only grows
 * or stays normal, q*a*b passes through a normal intermediate. Used where
 * every binade of the format starts at or above 2^-126
 * (qt__float_fast_ok). */
#define FLOAT_BODY(ROUNDEXPR, ROUND2EXPR, SPLIT)                            \
    float v = x[i];                                                         \
    uint32_t b = qt__f2bits(v);                                             \
    int32_t e = (int32_t)((b >> 23) & 0xff) - 127;                          \
    e = e < k.emin ? k.emin : e;                                            \
    e = e > k.emax ? k.emax : e;                                            \
    int32_t u = k.M - e, ua = SPLIT && u > 127 ? 127 : u, ub = u - ua;      \
    int32_t d = e - k.M, da = SPLIT && d < -126 ? -126 : d, db = d - da;    \
    uint32_t ubits = (uint32_t)(127 + ua) << 23;                            \
    float up = qt__bits2f(ubits);                                           \
    float up2 = qt__bits2f((uint32_t)(127 + ub) << 23);                     \
    /* unsplit, 2^(e-M) = 2^-(M-e): its bits are 254<<23 minus up's */      \
    float dn = SPLIT ? qt__bits2f((uint32_t)(127 + da) << 23)               \
                     : qt__bits2f(0x7F000000u - ubits);                     \
    float dn2 = qt__bits2f((uint32_t)(127 + db) << 23);                     \
    float s = SPLIT ? (v * up) * up2 : v * up;                              \
    float q = ROUNDEXPR;                                                    \
    float y = SPLIT ? (q * dn) * dn2 : q * dn;                              \
    if (k.nosub) {                                                          \
        float s2 = v * k.iminn;                                             \
        float q2 = ROUND2EXPR;                                              \
        y = __builtin_fabsf(v) < k.minn ? q2 * k.minn : y;                  \
    }                                                                       \
    float ay = __builtin_fabsf(y);                                          \
    y = ay > k.maxv ? (v > 0.0f ? k.ovf_pos : -k.ovf_neg) : y;              \
    uint32_t ab = b & 0x7fffffffu;                                          \
    y = ab == 0x7f800000u ? (v > 0.0f ? k.inf_pos : -k.inf_pos) : y;        \
    x[i] = y;

#define FLOAT_KERNEL(NAME, ROUND, FIXUP, SPLIT)                             \
    QT_CLONES static void NAME(float *restrict x, size_t n, fltk k)         \
    {                                                                       \
        for (size_t i = 0; i < n; i++) {                                    \
            FLOAT_BODY(FIXUP(s, ROUND(s)), FIXUP(s2, ROUND(s2)), SPLIT)     \
        }                                                                   \
    }

#define NOFIX(s, q) (q)
#define RDFIX(s, q) ((s) == 0.0f && v < 0.0f ? -1.0f : (q))

FLOAT_KERNEL(float_rne, R_RNE, NOFIX, 0)
FLOAT_KERNEL(float_rna, R_RNA, NOFIX, 0)
FLOAT_KERNEL(float_rz, R_RZ, NOFIX, 0)
FLOAT_KERNEL(float_rd, R_RD, RDFIX, 0)
FLOAT_KERNEL(float_rne2, R_RNE, NOFIX, 1)
FLOAT_KERNEL(float_rna2, R_RNA, NOFIX, 1)
FLOAT_KERNEL(float_rz2, R_RZ, NOFIX, 1)
FLOAT_KERNEL(float_rd2, R_RD, RDFIX, 1)

#define FLOAT_SR_KERNEL(NAME, SPLIT)                                        \
    QT_CLONES static void NAME(float *restrict x, size_t n, fltk k,         \
                               uint32_t lo0, uint32_t k0, uint32_t c)       \
    {                                                                       \
        for (size_t i = 0; i < n; i++) {                                    \
            uint32_t lo = lo0 + (uint32_t)i;                                \
            FLOAT_BODY(r_sr(s, lo, k0, c), r_sr(s2, lo, k0, c), SPLIT)      \
        }                                                                   \
    }
FLOAT_SR_KERNEL(float_sr, 0)
FLOAT_SR_KERNEL(float_sr2, 1)

int qt__float_fast_ok(const qt_format *f)
{
    qt_fparams p;
    qt__float_params(f, &p);
    /* ub, db stay within [0, 127] and [-23, 0]; da >= -126 by construction;
     * ua >= -126 needs M - emax >= -126; the no-subnormal scales 2^+-emin
     * must be normal */
    return p.emin >= -126 && p.emin <= 126 && p.emax <= 127 &&
           p.M - p.emax >= -126 && p.M - p.emin <= 127 + 127;
}

static void float_chunk(const qt_format *f, const fltk *k, float *x, size_t n,
                        qt_key key, uint64_t off)
{
    if (k->split) {
        switch (f->round) {
        case QT_RNE: float_rne2(x, n, *k); break;
        case QT_RNA: float_rna2(x, n, *k); break;
        case QT_RD:  float_rd2(x, n, *k); break;
        case QT_RZ:  float_rz2(x, n, *k); break;
        default:
            SR_SPLIT(float_sr2(xs_, ns_, *k, lo_, key.k0, c_));
        }
        return;
    }
    switch (f->round) {
    case QT_RNE: float_rne(x, n, *k); break;
    case QT_RNA: float_rna(x, n, *k); break;
    case QT_RD:  float_rd(x, n, *k); break;
    case QT_RZ:  float_rz(x, n, *k); break;
    default:
        SR_SPLIT(float_sr(xs_, ns_, *k, lo_, key.k0, c_));
    }
}

void qt__float_array(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    qt_fparams p;
    fltk k;
    qt_key key = qt__key(sr ? sr->seed : 0, sr ? sr->stream : 0);
    uint64_t off = sr ? sr->offset : 0;
    size_t nc = (n + CHUNK - 1) / CHUNK;
    int inf = f->overflow == QT_INF;

    if (!qt__float_fast_ok(f)) {               /* bf16-like ranges */
        #pragma omp parallel for schedule(static) if (nc > 1)
        for (size_t i = 0; i < n; i++) {
            uint32_t r = f->round == QT_SR ? qt__rand_k(key, off + i) : 0;
            x[i] = (float)qt__float_ref(f, x[i], r);
        }
        return;
    }
    qt__float_params(f, &p);
    k.M = p.M;
    k.emin = p.emin;
    k.emax = p.emax;
    k.maxv = (float)p.maxval;
    k.ovf_pos = (f->round == QT_RZ || f->round == QT_RD || !inf) ? k.maxv : INFINITY;
    k.ovf_neg = (f->round == QT_RZ || !inf) ? k.maxv : INFINITY;
    k.inf_pos = inf ? INFINITY : k.maxv;
    k.nosub = !p.sub;
    k.split = p.M - p.emin > 127 || p.emin - p.M < -126;
    k.minn = (float)ldexp(1.0, p.emin);
    k.iminn = (float)ldexp(1.0, -p.emin);
    #pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t len = (c + 1) * CHUNK <= n ? CHUNK : n - c * CHUNK;
        float_chunk(f, &k, x + c * CHUNK, len, key, off + c * CHUNK);
    }
}
