/*
 * test_float_oracle.c -- the minifloat quantizer (float<...>) and its
 * bit-true arithmetic (qt_mul, qt_add) against references that share no code
 * with quant/:
 *
 *  - IEEE binary16: the CPU's F16C conversion (VCVTPS2PH with the rounding
 *    given in the immediate, back with VCVTPH2PS), i.e. hardware that
 *    implements IEEE 754 round-to-nearest-even with subnormals and overflow
 *    to inf. gcc's own _Float16 cast (under -mf16c the same instruction,
 *    default rounding from MXCSR) is checked against it, which guards the
 *    reference's explicit rounding immediate.
 *  - bfloat16: integer arithmetic on the float32 encoding (add 0x7FFF plus
 *    the lowest kept bit, clear the low 16 bits): no floating point at all.
 *  - Every format and every non-stochastic mode: GNU MPFR. The value is
 *    rounded to precision M+1, then the exponent range is narrowed to the
 *    format and mpfr_check_range + mpfr_subnormalize give the result an IEEE
 *    machine with that format would deliver (MPFR's documented way of
 *    emulating IEEE formats, free of double rounding). What MPFR does not
 *    model is written here from quant.h's text, on top of MPFR's results:
 *    saturation and the fn/finite maxima (MPFR rounds with an unbounded top
 *    and the overflow rule is applied to its result), ties-away (the nearer
 *    of MPFR's RNDD and RNDU results, decided by exact MPFR subtraction) and
 *    the no-subnormal rule below 2^emin (MPFR's integer rounding of
 *    x/2^emin). The format's parameters (emin, emax, max) are derived here
 *    from the format text as quant.h documents it, and the representable
 *    values used as inputs and operands are decoded here from bit codes.
 *  - Stochastic rounding: the documented decision rule, checked exactly
 *    ((r>>8) < 2^24*(x-lo)/(hi-lo) with lo, hi from the MPFR oracle), plus
 *    statistics (rate of rounding up, mean error) over 10^6 draws.
 *
 * Exact sums and products are formed in MPFR at a precision that holds them
 * (the ternary value is checked to be 0); the exact sum is formed in the
 * rounding direction of the mode, which only decides the sign of an exact
 * zero sum, as mpfr_add (and IEEE 754) define it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpfr.h>

#include "quant.h"

/* Random-sample counts are divided by this under AddressSanitizer (the
 * exhaustive parts are not); -DSCALE=1 runs the full counts anyway. */
#ifndef SCALE
#if defined(__SANITIZE_ADDRESS__)
#define SCALE 10
#else
#define SCALE 1
#endif
#endif

#define N_RANDOM_HALF   (10000000L / SCALE)   /* test 1 */
#define N_RANDOM_BF16   (10000000L / SCALE)   /* test 2 */
#define N_RANDOM_WIDE   (1000000L / SCALE)    /* test 3, per wide format */
#define N_PAIRS_WIDE    (1000000L / SCALE)    /* test 4, per format > 8 bits */
#define N_PAIRS_WILD    (100000L / SCALE)     /* test 4, per format */
#define N_SR_DRAWS      (1000000L / SCALE)    /* test 5 */

/* ------------------------------------------------------------------------ */
/* Small utilities                                                          */
/* ------------------------------------------------------------------------ */

static uint32_t f2b(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
static float b2f(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("out of memory (%zu bytes)", n);
    return p;
}

/* xorshift64*: the test's own generator (fixed seeds, reproducible) */
typedef struct rng { uint64_t s; } rng;
static rng rng_seed(uint64_t s) { rng r = { s ? s : 1 }; return r; }
static uint64_t rng_u64(rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint32_t rng_u32(rng *r) { return (uint32_t)(rng_u64(r) >> 32); }
/* uniform integer in [lo, hi] */
static int rng_int(rng *r, int lo, int hi)
{
    return lo + (int)(rng_u64(r) % (uint64_t)(hi - lo + 1));
}

/* a float +-(1 + m/2^23) * 2^e, e anywhere (rounded into float32 range) */
static float make_float(int neg, int e, uint32_t m23)
{
    double v = ldexp(1.0 + ldexp((double)(m23 & 0x7fffff), -23), e);
    float f = (float)v;
    return neg ? -f : f;
}

/* a growable array of floats */
typedef struct fvec { float *v; size_t n, cap; } fvec;
static void fv_push(fvec *a, float x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 4096;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) fail_msg("out of memory");
    }
    a->v[a->n++] = x;
}
static void fv_push_pm(fvec *a, float x) { fv_push(a, x); fv_push(a, -x); }
static void fv_free(fvec *a) { free(a->v); a->v = NULL; a->n = a->cap = 0; }

/* x, -x and the float32 neighbours of both */
static void push_nb(fvec *a, float x)
{
    fv_push_pm(a, x);
    fv_push_pm(a, nextafterf(x, INFINITY));
    fv_push_pm(a, nextafterf(x, -INFINITY));
}

/* ------------------------------------------------------------------------ */
/* Mismatch bookkeeping: every comparison counts, the first few are shown.  */
/* ------------------------------------------------------------------------ */

#define SHOW 8
static int g_shown[2];              /* mismatch lines printed, per kind */
static long g_cases;                /* comparisons made in this test */
static long g_zsign;                /* mismatches that are only a zero's sign */
static struct timespec g_t0;

static void test_begin(void)
{
    g_shown[0] = g_shown[1] = 0;
    g_cases = 0;
    g_zsign = 0;
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
}

static void test_end(const char *name, long bad)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("  %s: %ld comparisons, %ld mismatches (%ld in value, %ld "
                  "only in the sign of a zero result), %.2f s\n", name,
                  g_cases, bad, bad - g_zsign, g_zsign,
                  (double)(t1.tv_sec - g_t0.tv_sec) +
                  1e-9 * (double)(t1.tv_nsec - g_t0.tv_nsec));
    assert_int_equal(bad, 0);
}

/* same float32 bits, or both NaN */
static int same_result(float want, float got)
{
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    return f2b(want) == f2b(got);
}

/* a mismatch: 1 if it is only the sign of a zero (counted apart, so a
 * report tells the two kinds apart), else 0; returns whether to print */
static int classify(float want, float got)
{
    int z = want == 0.0f && got == 0.0f;
    if (z) g_zsign++;
    return g_shown[z]++ < SHOW;
}

static long expect1(const char *fmt, const char *path, float x,
                    float want, float got)
{
    g_cases++;
    if (same_result(want, got)) return 0;
    if (classify(want, got))
        print_message("  MISMATCH %s %s: x = %a (0x%08x): expected %a (0x%08x), "
                      "got %a (0x%08x)\n", fmt, path, (double)x, f2b(x),
                      (double)want, f2b(want), (double)got, f2b(got));
    return 1;
}

static long expect2(const char *fmt, const char *op, float a, float b,
                    float want, float got)
{
    g_cases++;
    if (same_result(want, got)) return 0;
    if (classify(want, got))
        print_message("  MISMATCH %s %s(a = %a (0x%08x), b = %a (0x%08x)): "
                      "expected %a (0x%08x), got %a (0x%08x)\n", fmt, op,
                      (double)a, f2b(a), (double)b, f2b(b), (double)want,
                      f2b(want), (double)got, f2b(got));
    return 1;
}

/* per (format, mode) summary line when something went wrong */
static void note_bad(const char *fmt, const char *what, long bad, long n)
{
    if (bad)
        print_message("  %s %s: %ld of %ld comparisons wrong\n", fmt, what, bad, n);
}

/* ------------------------------------------------------------------------ */
/* Formats, as quant.h documents them (derived here, not asked of qtune)    */
/* ------------------------------------------------------------------------ */

enum { SP_IEEE, SP_FN, SP_FINITE };
enum { MODE_RU = 100 };   /* toward +inf: an oracle direction, not a qtune mode */

static const char *mode_name(int m)
{
    switch (m) {
    case QT_RNE: return "rne";
    case QT_RNA: return "rna";
    case QT_SR:  return "sr";
    case QT_RD:  return "rd";
    case QT_RZ:  return "rz";
    }
    return "?";
}

typedef struct fmtinfo {
    char      text[96];     /* the text given to qt_format_parse (with mode) */
    qt_format f;
    int       W, E, M, B;
    int       specials;     /* SP_* */
    int       sub;          /* subnormals on */
    int       sat;          /* overflow saturates (else: to inf) */
    int       mode;         /* qt_round */
    int       emin, emax;   /* smallest normal 2^emin; top binade 2^emax */
    double    maxv;         /* largest finite */
    double    minpos;       /* smallest positive */
} fmtinfo;

static double decode(const fmtinfo *fi, uint32_t code);

/* base: "float<W,eE[,bB][,opts]>" without a rounding mode */
static void fmt_setup(fmtinfo *fi, const char *base, int mode)
{
    const char *lt = strchr(base, '<'), *gt = strrchr(base, '>');
    char inner[96], *save = NULL;
    int k = 0, has_b = 0, nosub = 0, sat = -1, top;
    qt_error err;

    memset(fi, 0, sizeof *fi);
    if (!lt || !gt || gt < lt) fail_msg("bad format text %s", base);
    snprintf(inner, sizeof inner, "%.*s", (int)(gt - lt - 1), lt + 1);
    fi->specials = SP_IEEE;
    for (char *tok = strtok_r(inner, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save), k++) {
        if (k == 0) fi->W = atoi(tok);
        else if (k == 1 && tok[0] == 'e') fi->E = atoi(tok + 1);
        else if (tok[0] == 'b') { fi->B = atoi(tok + 1); has_b = 1; }
        else if (!strcmp(tok, "nosub")) nosub = 1;
        else if (!strcmp(tok, "ieee")) fi->specials = SP_IEEE;
        else if (!strcmp(tok, "fn")) fi->specials = SP_FN;
        else if (!strcmp(tok, "finite")) fi->specials = SP_FINITE;
        else if (!strcmp(tok, "sat")) sat = 1;
        else if (!strcmp(tok, "inf")) sat = 0;
        else fail_msg("test: unknown option '%s' in %s", tok, base);
    }
    fi->M = fi->W - 1 - fi->E;
    if (!has_b) fi->B = (1 << (fi->E - 1)) - 1;
    fi->sub = !nosub;
    fi->sat = sat >= 0 ? sat : fi->specials != SP_IEEE;
    fi->mode = mode;
    fi->emin = 1 - fi->B;
    top = (1 << fi->E) - 1;
    switch (fi->specials) {
    case SP_IEEE:
        fi->emax = top - 1 - fi->B;
        fi->maxv = ldexp(2.0 - ldexp(1.0, -fi->M), fi->emax);
        break;
    case SP_FN:
        fi->emax = top - fi->B;
        fi->maxv = ldexp(2.0 - ldexp(1.0, 1 - fi->M), fi->emax);
        break;
    default:
        fi->emax = top - fi->B;
        fi->maxv = ldexp(2.0 - ldexp(1.0, -fi->M), fi->emax);
        break;
    }
    fi->minpos = fi->sub ? ldexp(1.0, fi->emin - fi->M) : ldexp(1.0, fi->emin);
    snprintf(fi->text, sizeof fi->text, "%.*s,%s>", (int)(gt - base), base,
             mode_name(mode));

    if (qt_format_parse(fi->text, &fi->f, &err) != QT_OK)
        fail_msg("qt_format_parse(\"%s\"): %s", fi->text, err.text);
    assert_int_equal(fi->f.type, QT_FLOAT);
    assert_int_equal(fi->f.width, fi->W);
    assert_int_equal(fi->f.ebits, fi->E);
    assert_int_equal(fi->f.bias, fi->B);
    assert_int_equal(fi->f.round, mode);
    assert_int_equal(fi->f.overflow, fi->sat ? QT_SAT : QT_INF);
    if (qt_max(&fi->f) != fi->maxv)
        fail_msg("%s: qt_max = %a, documented %a", fi->text, qt_max(&fi->f), fi->maxv);
    if (qt_min_pos(&fi->f) != fi->minpos)
        fail_msg("%s: qt_min_pos = %a, documented %a", fi->text,
                 qt_min_pos(&fi->f), fi->minpos);
    if (fi->W <= 16) {
        /* the decoder and the documented limits tell the same story */
        double mx = 0.0, mp = INFINITY;
        for (uint32_t c = 0; c < (1u << (fi->W - 1)); c++) {
            double v = decode(fi, c);
            if (!isfinite(v)) continue;
            if (v > mx) mx = v;
            if (v > 0 && v < mp) mp = v;
        }
        if (mx != fi->maxv || mp != fi->minpos)
            fail_msg("test: %s decodes to max %a min %a, formula %a %a",
                     fi->text, mx, mp, fi->maxv, fi->minpos);
    }
}

/* value of a W-bit code: sign, E exponent bits, M mantissa bits */
static double decode(const fmtinfo *fi, uint32_t code)
{
    int M = fi->M;
    uint32_t top = (1u << fi->E) - 1, mmask = (1u << M) - 1;
    int neg = (int)((code >> (fi->W - 1)) & 1);
    uint32_t ec = (code >> M) & top, m = code & mmask;
    double v;
    if (fi->specials == SP_IEEE && ec == top) v = m ? NAN : INFINITY;
    else if (fi->specials == SP_FN && ec == top && m == mmask) v = NAN;
    else if (ec == 0) v = fi->sub ? ldexp((double)m, fi->emin - M) : 0.0;
    else v = ldexp(1.0 + ldexp((double)m, -M), (int)ec - fi->B);
    return neg ? -v : v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sorted distinct finite values >= 0 of a format of at most 16 bits */
static size_t pos_values(const fmtinfo *fi, double **out)
{
    size_t n = 0, m = 0, nc = (size_t)1 << (fi->W - 1);
    double *v = xmalloc(nc * sizeof *v);
    for (size_t c = 0; c < nc; c++) {
        double d = decode(fi, (uint32_t)c);
        if (isfinite(d)) v[n++] = d;
    }
    qsort(v, n, sizeof *v, cmp_double);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || v[i] != v[m - 1]) v[m++] = v[i];
    *out = v;
    return m;
}

/* a random finite representable value (uniform over codes) */
static float random_value(const fmtinfo *fi, rng *r, uint32_t *code_out)
{
    uint32_t mask = fi->W == 32 ? 0xffffffffu : (1u << fi->W) - 1;
    for (;;) {
        uint32_t c = rng_u32(r) & mask;
        double d = decode(fi, c);
        if (isfinite(d)) {
            if (code_out) *code_out = c;
            return (float)d;
        }
    }
}

static const char *const SMALL_FORMATS[] = {
    /* the list asked for */
    "float<8,e4,b7>", "float<8,e4,b7,fn>", "float<8,e5,b15>",
    "float<8,e5,b15,sat>", "float<6,e2,b1,finite>", "float<6,e3,b3,finite>",
    "float<4,e2,b1,finite>", "float<8,e4,b7,nosub>", "float<10,e5,b15>",
    "float<12,e5,b15>", "float<12,e6,b31,nosub>", "float<3,e1,b0,finite>",
    "float<8,e3,b-2>", "float<9,e4,b10>",
    /* more corners: ieee+sat, fn/finite without subnormals, no mantissa
     * bits, ranges at float32's extremes (float32-subnormal outputs, fast
     * path not applicable; maxima near 2^125) */
    "float<8,e4,b7,sat>", "float<8,e4,b7,fn,nosub>",
    "float<6,e2,b1,finite,nosub>", "float<7,e3,b3,nosub,sat>",
    "float<5,e2,b1>", "float<4,e3,b3>", "float<8,e7,b63>",
    "float<12,e8,b127>", "float<10,e4,b130>", "float<8,e2,b140,finite>",
    "float<10,e4,b-110>", "float<11,e5,b-95,nosub>",
};
#define N_SMALL (sizeof SMALL_FORMATS / sizeof *SMALL_FORMATS)
#define N_LISTED 14     /* SMALL_FORMATS[0..14) are the list asked for */

static const char *const WIDE_FORMATS[] = {
    "float<16,e5,b15>", "float<16,e8,b127>", "float<16,e6,b31>",
    "float<20,e7,b63>", "float<24,e8,b127>", "float<32,e8,b127>",
};
#define N_WIDE (sizeof WIDE_FORMATS / sizeof *WIDE_FORMATS)

static const int MODES[] = { QT_RNE, QT_RNA, QT_RD, QT_RZ };
#define N_MODES 4

/* ------------------------------------------------------------------------ */
/* The MPFR oracle                                                          */
/* ------------------------------------------------------------------------ */

static mpfr_exp_t g_emin0, g_emax0;       /* MPFR's range, restored after use */
static mpfr_t g_z;                        /* the exact value to round */
static mpfr_t g_a, g_b;                   /* operands */
static mpfr_t g_y, g_lo, g_hi;            /* results, precision M+1 */
static mpfr_t g_d1, g_d2, g_t;            /* exact differences / scaled */
static mpfr_prec_t g_prec;                /* precision of g_y, g_lo, g_hi */

static int oracle_setup(void **st)
{
    (void)st;
    g_emin0 = mpfr_get_emin();
    g_emax0 = mpfr_get_emax();
    mpfr_init2(g_z, 320);     /* a float32 sum spans at most 2^128..2^-149 */
    mpfr_init2(g_a, 24);
    mpfr_init2(g_b, 24);
    mpfr_init2(g_y, 24);
    mpfr_init2(g_lo, 24);
    mpfr_init2(g_hi, 24);
    mpfr_init2(g_d1, 512);     /* z - lo spans at most 2^128..2^-298 */
    mpfr_init2(g_d2, 512);
    mpfr_init2(g_t, 512);
    g_prec = 24;
    return 0;
}

static int oracle_teardown(void **st)
{
    (void)st;
    mpfr_clears(g_z, g_a, g_b, g_y, g_lo, g_hi, g_d1, g_d2, g_t, (mpfr_ptr)0);
    mpfr_free_cache();
    return 0;
}

static void set_prec(mpfr_prec_t p)
{
    if (p == g_prec) return;
    mpfr_set_prec(g_y, p);
    mpfr_set_prec(g_lo, p);
    mpfr_set_prec(g_hi, p);
    g_prec = p;
}

/*
 * y = z rounded to M+1 bits in direction rnd as an IEEE machine with the
 * format's exponent range would: subnormals below 2^emin (MPFR's emin is
 * emin-M+1, its numbers being 0.1b...*2^e), MPFR's top at emax_mp. The
 * rounding to precision happens in MPFR's default range; check_range and
 * subnormalize then use the ternary value to avoid double rounding.
 */
static void mp_round(const fmtinfo *fi, mpfr_ptr y, mpfr_srcptr z,
                     mpfr_rnd_t rnd, mpfr_exp_t emax_mp)
{
    int t = mpfr_set(y, z, rnd);
    mpfr_set_emin(fi->sub ? fi->emin - fi->M + 1 : fi->emin + 1);
    mpfr_set_emax(emax_mp);
    t = mpfr_check_range(y, t, rnd);
    if (fi->sub)
        t = mpfr_subnormalize(y, t, rnd);
    mpfr_set_emin(g_emin0);
    mpfr_set_emax(g_emax0);
    (void)t;
}

/* the documented overflow rule, for |v| > max */
static double overflow_rule(const fmtinfo *fi, int mode, int neg)
{
    int toward_zero = mode == QT_RZ || (mode == QT_RD && !neg) ||
                      (mode == MODE_RU && neg);
    double m = (fi->sat || toward_zero) ? fi->maxv : INFINITY;
    return neg ? -m : m;
}

static mpfr_rnd_t mp_dir(int mode)
{
    switch (mode) {
    case QT_RNE: return MPFR_RNDN;
    case QT_RD:  return MPFR_RNDD;
    case QT_RZ:  return MPFR_RNDZ;
    case MODE_RU: return MPFR_RNDU;
    }
    fail_msg("test: no MPFR direction for mode %d", mode);
    return MPFR_RNDN;
}

/* the exact value z rounded into format fi with mode (rne, rna, rd, rz, ru) */
static double oracle(const fmtinfo *fi, int mode, mpfr_srcptr z)
{
    int neg = mpfr_signbit(z) != 0;
    mpfr_ptr y;
    double v;

    if (mpfr_nan_p(z)) return NAN;
    if (mpfr_inf_p(z)) {
        double m = fi->sat ? fi->maxv : INFINITY;
        return neg ? -m : m;
    }
    if (mpfr_zero_p(z)) return neg ? -0.0 : 0.0;
    set_prec(fi->M + 1);

    if (!fi->sub && mpfr_get_exp(z) <= fi->emin) {
        /* |z| < 2^emin without subnormals: z/2^emin to an integer */
        if (mpfr_div_2si(g_t, z, fi->emin, MPFR_RNDN) != 0)
            fail_msg("test: inexact scaling");
        switch (mode) {
        case QT_RNE: mpfr_rint(g_t, g_t, MPFR_RNDN); break;
        case QT_RNA: mpfr_round(g_t, g_t); break;
        case QT_RD:  mpfr_floor(g_t, g_t); break;
        case QT_RZ:  mpfr_trunc(g_t, g_t); break;
        case MODE_RU: mpfr_ceil(g_t, g_t); break;
        }
        return ldexp(mpfr_get_d(g_t, MPFR_RNDN), fi->emin);
    }

    if (fi->specials == SP_IEEE && !fi->sat && mode != QT_RNA) {
        /* MPFR's own overflow: to inf, or to max when rounding toward 0 */
        mp_round(fi, g_y, z, mp_dir(mode), fi->emax + 1);
        return mpfr_get_d(g_y, MPFR_RNDN);
    }

    /* unbounded top: MPFR's range ends a binade above the format's */
    if (mode != QT_RNA) {
        mp_round(fi, g_y, z, mp_dir(mode), fi->emax + 2);
        y = g_y;
    } else {
        mp_round(fi, g_lo, z, MPFR_RNDD, fi->emax + 2);
        mp_round(fi, g_hi, z, MPFR_RNDU, fi->emax + 2);
        if (mpfr_equal_p(g_lo, g_hi)) y = g_lo;
        else if (mpfr_inf_p(g_hi)) y = g_lo;
        else if (mpfr_inf_p(g_lo)) y = g_hi;
        else {
            int c;
            if (mpfr_sub(g_d1, z, g_lo, MPFR_RNDN) != 0 ||
                mpfr_sub(g_d2, g_hi, z, MPFR_RNDN) != 0)
                fail_msg("test: inexact distance");
            c = mpfr_cmp(g_d1, g_d2);
            y = c < 0 ? g_lo : c > 0 ? g_hi : (neg ? g_lo : g_hi);
        }
    }
    v = mpfr_get_d(y, MPFR_RNDN);
    if (fabs(v) > fi->maxv) return overflow_rule(fi, mode, neg);
    return v;
}

/* the oracle's double as the float it must be */
static float as_float(const fmtinfo *fi, double d)
{
    float f = (float)d;
    if (!isnan(d) && (double)f != d)
        fail_msg("test: oracle result %a for %s is not a float32", d, fi->text);
    return f;
}

static float oracle_flt(const fmtinfo *fi, int mode, float x)
{
    mpfr_set_flt(g_z, x, MPFR_RNDN);
    return as_float(fi, oracle(fi, mode, g_z));
}

/* ------------------------------------------------------------------------ */
/* 1. IEEE binary16 against F16C                                            */
/* ------------------------------------------------------------------------ */

static float f16c_ref(float x)
{
    return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}

static float float16_cast(float x)
{
    volatile _Float16 h = (_Float16)x;
    return (float)h;
}

static float bf16_ref(float x)
{
    uint32_t b = f2b(x);
    if (isnan(x)) return x;
    b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
    return b2f(b);
}

/* qt_quantize (array, OpenMP), qt_quantize_ref and qt_quantize1 against a
 * float -> float reference on xs[0..n) */
static long check_against(const fmtinfo *fi, float (*ref)(float),
                          const char *refname, const float *xs, size_t n)
{
    float *a = xmalloc(n * sizeof *a), *r = xmalloc(n * sizeof *r);
    char pa[64], pr[64], p1[64];
    long bad = 0;
    snprintf(pa, sizeof pa, "qt_quantize vs %s", refname);
    snprintf(pr, sizeof pr, "qt_quantize_ref vs %s", refname);
    snprintf(p1, sizeof p1, "qt_quantize1 vs %s", refname);
    memcpy(a, xs, n * sizeof *a);
    memcpy(r, xs, n * sizeof *r);
    qt_quantize(&fi->f, a, n, NULL);
    qt_quantize_ref(&fi->f, r, n, NULL);
    for (size_t i = 0; i < n; i++) {
        float want = ref(xs[i]);
        bad += expect1(fi->text, pa, xs[i], want, a[i]);
        bad += expect1(fi->text, pr, xs[i], want, r[i]);
        bad += expect1(fi->text, p1, xs[i], want, qt_quantize1(&fi->f, xs[i], 0));
    }
    free(a);
    free(r);
    return bad;
}

/* float32 values every 16-bit float test meets */
static void push_float32_edges(fvec *in)
{
    static const uint32_t bits[] = {
        0x00000000, 0x00000001, 0x00000002, 0x00000003, 0x0000ffff,
        0x00008000, 0x00010000, 0x00018000, 0x00400000, 0x007fffff,
        0x00800000, 0x00800001, 0x00ffffff, 0x01000000, 0x3f800000,
        0x3f808000, 0x3f818000, 0x3f800001, 0x3f807fff, 0x3f8fffff,
        0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f7f0000, 0x7f000000,
        0x7f800000, 0x7fc00000, 0x7fa00000, 0x7f800001, 0x7fffffff,
    };
    for (size_t i = 0; i < sizeof bits / sizeof *bits; i++)
        fv_push_pm(in, b2f(bits[i]));
}

static void t_half_f16c(void **st)
{
    fmtinfo fi;
    fvec in = { 0 };
    long bad = 0, refbad = 0;
    float h[0x7c00];
    rng r = rng_seed(0x1234567887654321ull);
    float *buf;
    size_t chunk = (size_t)1 << 20;
    (void)st;
    test_begin();
    fmt_setup(&fi, "float<16,e5,b15>", QT_RNE);

    /* every binary16 code, converted by the hardware */
    for (uint32_t c = 0; c < 0x10000; c++)
        fv_push(&in, _cvtsh_ss((unsigned short)c));
    /* midpoints of consecutive finite halves (0x0000..0x7bff increase),
     * the overflow tie 65520 = 65504 + 16, and their float32 neighbours */
    for (uint32_t c = 0; c < 0x7c00; c++)
        h[c] = _cvtsh_ss((unsigned short)c);
    for (uint32_t c = 0; c + 1 < 0x7c00; c++) {
        double mid = ((double)h[c] + (double)h[c + 1]) / 2;
        assert_true((double)(float)mid == mid);
        push_nb(&in, (float)mid);
    }
    push_nb(&in, 65520.0f);
    push_nb(&in, 65504.0f);
    for (int k = 65504; k <= 65536; k++) fv_push_pm(&in, (float)k);
    push_nb(&in, 65536.0f);
    push_nb(&in, 1e5f);
    /* half subnormal boundaries: 2^-24 (smallest), 2^-25 (tie with 0),
     * 3*2^-25 (tie, to even 2^-23), 2^-14 (smallest normal) */
    push_nb(&in, 0x1p-24f);
    push_nb(&in, 0x1p-25f);
    push_nb(&in, 0x1p-26f);
    push_nb(&in, 0x3p-25f);
    push_nb(&in, 0x5p-25f);
    push_nb(&in, 0x1p-14f);
    push_nb(&in, 0x1p-14f - 0x1p-25f);
    push_nb(&in, 0x1p-14f - 0x1p-24f);
    push_float32_edges(&in);

    bad += check_against(&fi, f16c_ref, "F16C", in.v, in.n);
    for (size_t i = 0; i < in.n; i++)
        refbad += expect1("(reference check)", "_Float16 cast vs F16C",
                          in.v[i], f16c_ref(in.v[i]), float16_cast(in.v[i]));
    print_message("  float<16,e5,b15>: %zu structured inputs\n", in.n);
    fv_free(&in);

    /* random float32 bit patterns */
    buf = xmalloc(chunk * sizeof *buf);
    for (long done = 0; done < N_RANDOM_HALF; done += (long)chunk) {
        size_t n = (size_t)(N_RANDOM_HALF - done) < chunk ?
                   (size_t)(N_RANDOM_HALF - done) : chunk;
        for (size_t i = 0; i < n; i++) buf[i] = b2f(rng_u32(&r));
        bad += check_against(&fi, f16c_ref, "F16C", buf, n);
        for (size_t i = 0; i < n; i += 64)
            refbad += expect1("(reference check)", "_Float16 cast vs F16C",
                              buf[i], f16c_ref(buf[i]), float16_cast(buf[i]));
    }
    free(buf);
    print_message("  float<16,e5,b15>: %ld random float32 patterns\n",
                  N_RANDOM_HALF);
    assert_int_equal(refbad, 0);
    test_end("half vs F16C", bad);
}

/* ------------------------------------------------------------------------ */
/* 2. bfloat16 against integer rounding of the top 16 bits                  */
/* ------------------------------------------------------------------------ */

static void t_bf16_bits(void **st)
{
    fmtinfo fi;
    fvec in = { 0 };
    long bad = 0;
    rng r = rng_seed(0xbf16bf16bf16bf16ull);
    size_t chunk = (size_t)1 << 20;
    float *buf;
    (void)st;
    test_begin();
    fmt_setup(&fi, "float<16,e8,b127>", QT_RNE);

    /* every bfloat16 code, every midpoint, and the neighbours */
    for (uint32_t c = 0; c < 0x10000; c++) {
        uint32_t b = c << 16;
        fv_push(&in, b2f(b));
        fv_push(&in, b2f(b | 0x8000u));          /* midpoint to the next */
        fv_push(&in, b2f(b | 0x7fffu));
        fv_push(&in, b2f(b | 0x8001u));
        fv_push(&in, b2f(b | 0x0001u));
        fv_push(&in, b2f(b | 0xffffu));
    }
    push_float32_edges(&in);
    bad += check_against(&fi, bf16_ref, "bf16 bits", in.v, in.n);
    print_message("  float<16,e8,b127>: %zu structured inputs\n", in.n);
    fv_free(&in);

    buf = xmalloc(chunk * sizeof *buf);
    for (long done = 0; done < N_RANDOM_BF16; done += (long)chunk) {
        size_t n = (size_t)(N_RANDOM_BF16 - done) < chunk ?
                   (size_t)(N_RANDOM_BF16 - done) : chunk;
        for (size_t i = 0; i < n; i++) buf[i] = b2f(rng_u32(&r));
        bad += check_against(&fi, bf16_ref, "bf16 bits", buf, n);
    }
    free(buf);
    print_message("  float<16,e8,b127>: %ld random float32 patterns\n",
                  N_RANDOM_BF16);
    test_end("bfloat16 vs bit rounding", bad);
}

/* ------------------------------------------------------------------------ */
/* 3. quantization against MPFR                                             */
/* ------------------------------------------------------------------------ */

/* the three quantization paths against the oracle on xs[0..n) */
static long check_quantize(const fmtinfo *fi, const float *xs, size_t n)
{
    float *a = xmalloc(n * sizeof *a), *r = xmalloc(n * sizeof *r);
    float *want = xmalloc(n * sizeof *want);
    long bad = 0;
    for (size_t i = 0; i < n; i++)
        want[i] = oracle_flt(fi, fi->mode, xs[i]);
    memcpy(a, xs, n * sizeof *a);
    memcpy(r, xs, n * sizeof *r);
    qt_quantize(&fi->f, a, n, NULL);
    qt_quantize_ref(&fi->f, r, n, NULL);
    for (size_t i = 0; i < n; i++) {
        bad += expect1(fi->text, "qt_quantize", xs[i], want[i], a[i]);
        bad += expect1(fi->text, "qt_quantize_ref", xs[i], want[i], r[i]);
        bad += expect1(fi->text, "qt_quantize1", xs[i], want[i],
                       qt_quantize1(&fi->f, xs[i], 0));
    }
    note_bad(fi->text, "quantize", bad, 3 * (long)n);
    free(a);
    free(r);
    free(want);
    return bad;
}

/* random float with exponent in [elo, ehi] */
static float random_in_exp(rng *r, int elo, int ehi)
{
    return make_float((int)(rng_u32(r) & 1), rng_int(r, elo, ehi), rng_u32(r));
}

/* every value, midpoint and their neighbours, plus specials and randoms */
static void small_inputs(const fmtinfo *fi, fvec *in, rng *r)
{
    double *v, step_top = ldexp(1.0, fi->emax - fi->M);
    size_t nv = pos_values(fi, &v);
    for (size_t i = 0; i < nv; i++) {
        push_nb(in, (float)v[i]);
        if (i + 1 < nv) push_nb(in, (float)((v[i] + v[i + 1]) / 2));
    }
    /* above the top: the overflow tie, the next binade value, far beyond */
    push_nb(in, (float)(fi->maxv + step_top / 2));
    push_nb(in, (float)(fi->maxv + step_top));
    push_nb(in, (float)(fi->maxv + 1.5 * step_top));
    push_nb(in, (float)(2 * fi->maxv));
    push_nb(in, (float)(fi->minpos / 2));
    push_nb(in, (float)(fi->minpos / 4));
    push_nb(in, (float)(fi->minpos * 0.75));
    push_nb(in, (float)ldexp(1.0, fi->emin));
    push_float32_edges(in);
    for (int i = 0; i < 400; i++)
        fv_push(in, random_in_exp(r, fi->emin - fi->M - 6, fi->emax + 4));
    free(v);
}

static void t_mpfr_quantize_small(void **st)
{
    long bad = 0;
    rng r = rng_seed(0x5a5a5a5a01234567ull);
    (void)st;
    test_begin();
    for (size_t k = 0; k < N_SMALL; k++) {
        fmtinfo fi;
        fvec in = { 0 };
        fmt_setup(&fi, SMALL_FORMATS[k], QT_RNE);
        small_inputs(&fi, &in, &r);
        for (int m = 0; m < N_MODES; m++) {
            fmt_setup(&fi, SMALL_FORMATS[k], MODES[m]);
            bad += check_quantize(&fi, in.v, in.n);
        }
        fv_free(&in);
    }
    test_end("quantize vs MPFR, formats <= 12 bits", bad);
}

/* a random input for a wide format: raw bits, log-uniform over the range
 * and beyond, or a representable value / midpoint / their neighbours */
static float wide_input(const fmtinfo *fi, rng *r)
{
    uint32_t kind = rng_u32(r) % 8, c;
    float v;
    double d, dn;
    if (kind < 2) return b2f(rng_u32(r));
    if (kind < 4) return random_in_exp(r, fi->emin - fi->M - 4, fi->emax + 3);
    v = random_value(fi, r, &c);
    d = decode(fi, c);
    dn = decode(fi, c + 1);            /* next code: one step further out */
    if (!isfinite(dn) || (c & ((1u << (fi->W - 1)) - 1)) ==
                             ((1u << (fi->W - 1)) - 1))
        dn = d + copysign(ldexp(1.0, fi->emax - fi->M), d);
    switch (kind) {
    case 4: return v;
    case 5: return nextafterf(v, (rng_u32(r) & 1) ? INFINITY : -INFINITY);
    default: {
        double mid = (d + dn) / 2;
        float fm = (float)mid;
        if ((double)fm != mid || kind == 6) return fm;
        return nextafterf(fm, (rng_u32(r) & 1) ? INFINITY : -INFINITY);
    }
    }
}

static void t_mpfr_quantize_wide(void **st)
{
    long bad = 0;
    rng r = rng_seed(0x0123456789abcdefull);
    (void)st;
    test_begin();
    for (size_t k = 0; k < N_WIDE; k++) {
        fmtinfo fi;
        fvec in = { 0 };
        long selfbad = 0;
        fmt_setup(&fi, WIDE_FORMATS[k], QT_RNE);
        push_float32_edges(&in);
        for (long i = 0; i < N_RANDOM_WIDE; i++)
            fv_push(&in, wide_input(&fi, &r));
        for (int m = 0; m < N_MODES; m++) {
            fmt_setup(&fi, WIDE_FORMATS[k], MODES[m]);
            bad += check_quantize(&fi, in.v, in.n);
        }
        /* the oracle itself, where another reference exists */
        fmt_setup(&fi, WIDE_FORMATS[k], QT_RNE);
        for (size_t i = 0; i < in.n; i++) {
            float x = in.v[i], o = oracle_flt(&fi, QT_RNE, x);
            if (k == 0)
                selfbad += expect1("(oracle check)", "MPFR vs F16C", x,
                                   f16c_ref(x), o);
            else if (k == 1)
                selfbad += expect1("(oracle check)", "MPFR vs bf16 bits", x,
                                   bf16_ref(x), o);
        }
        if (k == N_WIDE - 1)               /* float32 itself: the identity */
            for (int m = 0; m < N_MODES; m++) {
                fmt_setup(&fi, WIDE_FORMATS[k], MODES[m]);
                for (size_t i = 0; i < in.n; i++)
                    if (isfinite(in.v[i]))
                        selfbad += expect1(fi.text, "identity (oracle and qt_quantize1)",
                                           in.v[i], in.v[i],
                                           oracle_flt(&fi, MODES[m], in.v[i])) +
                                   expect1(fi.text, "identity", in.v[i], in.v[i],
                                           qt_quantize1(&fi.f, in.v[i], 0));
            }
        assert_int_equal(selfbad, 0);
        fv_free(&in);
    }
    test_end("quantize vs MPFR, wide formats", bad);
}

/* ------------------------------------------------------------------------ */
/* 4. bit-true mul and add against MPFR                                     */
/* ------------------------------------------------------------------------ */

/* qt_mul and qt_add against the correctly rounded product and sum */
static long check_arith(const fmtinfo *fi, const float *as, const float *bs,
                        size_t n)
{
    /* the exact operation's direction decides only the sign of an exact
     * zero sum (-0 in RNDD, +0 otherwise); rna has no MPFR direction and
     * IEEE gives +0 there */
    mpfr_rnd_t zr = fi->mode == QT_RD ? MPFR_RNDD :
                    fi->mode == QT_RZ ? MPFR_RNDZ : MPFR_RNDN;
    long badm = 0, bada = 0;
    for (size_t i = 0; i < n; i++) {
        float a = as[i], b = bs[i], want;
        mpfr_set_flt(g_a, a, MPFR_RNDN);
        mpfr_set_flt(g_b, b, MPFR_RNDN);
        if (mpfr_mul(g_z, g_a, g_b, zr) != 0)
            fail_msg("test: inexact product");
        want = as_float(fi, oracle(fi, fi->mode, g_z));
        badm += expect2(fi->text, "qt_mul", a, b, want, qt_mul(&fi->f, a, b, 0));
        if (mpfr_add(g_z, g_a, g_b, zr) != 0)
            fail_msg("test: inexact sum");
        want = as_float(fi, oracle(fi, fi->mode, g_z));
        bada += expect2(fi->text, "qt_add", a, b, want, qt_add(&fi->f, a, b, 0));
    }
    note_bad(fi->text, "qt_mul", badm, (long)n);
    note_bad(fi->text, "qt_add", bada, (long)n);
    return badm + bada;
}

static int fmt_bits(const char *base)
{
    return atoi(strchr(base, '<') + 1);
}

static void t_mpfr_arith_exhaustive(void **st)
{
    long bad = 0;
    (void)st;
    test_begin();
    for (size_t k = 0; k < N_SMALL; k++) {
        fmtinfo fi;
        double *v;
        size_t nv, nvals = 0, np = 0;
        float *vals, *as, *bs;
        if (fmt_bits(SMALL_FORMATS[k]) > 8) continue;
        fmt_setup(&fi, SMALL_FORMATS[k], QT_RNE);
        nv = pos_values(&fi, &v);
        vals = xmalloc(2 * nv * sizeof *vals);
        for (size_t i = 0; i < nv; i++) {
            vals[nvals++] = (float)v[i];
            vals[nvals++] = -(float)v[i];          /* includes -0 */
        }
        as = xmalloc(nvals * nvals * sizeof *as);
        bs = xmalloc(nvals * nvals * sizeof *bs);
        for (size_t i = 0; i < nvals; i++)
            for (size_t j = 0; j < nvals; j++) {
                as[np] = vals[i];
                bs[np++] = vals[j];
            }
        for (int m = 0; m < N_MODES; m++) {
            fmt_setup(&fi, SMALL_FORMATS[k], MODES[m]);
            bad += check_arith(&fi, as, bs, np);
        }
        free(v);
        free(vals);
        free(as);
        free(bs);
    }
    test_end("mul/add vs MPFR, all pairs, formats <= 8 bits", bad);
}

static void t_mpfr_arith_random(void **st)
{
    long bad = 0;
    rng r = rng_seed(0xfeedfacecafebeefull);
    float *as = xmalloc((size_t)N_PAIRS_WIDE * sizeof *as);
    float *bs = xmalloc((size_t)N_PAIRS_WIDE * sizeof *bs);
    (void)st;
    test_begin();
    for (size_t k = 0; k < N_SMALL + N_WIDE; k++) {
        const char *base = k < N_SMALL ? SMALL_FORMATS[k] : WIDE_FORMATS[k - N_SMALL];
        fmtinfo fi;
        /* the extra corner formats get a quarter of the pairs */
        long n = k >= N_LISTED && k < N_SMALL ? N_PAIRS_WIDE / 4 : N_PAIRS_WIDE;
        if (fmt_bits(base) <= 8) continue;
        fmt_setup(&fi, base, QT_RNE);
        for (long i = 0; i < n; i++) {
            as[i] = random_value(&fi, &r, NULL);
            bs[i] = random_value(&fi, &r, NULL);
        }
        for (int m = 0; m < N_MODES; m++) {
            fmt_setup(&fi, base, MODES[m]);
            bad += check_arith(&fi, as, bs, (size_t)n);
        }
    }
    free(as);
    free(bs);
    test_end("mul/add vs MPFR, random representable pairs, formats > 8 bits", bad);
}

/* arbitrary float32 operands: results across the format's range, addends
 * of wildly different exponents, near-cancellation, tie-plus-sticky */
static void wild_pair(const fmtinfo *fi, rng *r, float *a, float *b)
{
    int lo = fi->emin - fi->M - 8, hi = fi->emax + 3, ea;
    uint32_t kind = rng_u32(r) % 8;
    if (lo < -149) lo = -149;
    if (hi > 127) hi = 127;
    if (lo > hi) lo = hi;
    ea = rng_int(r, lo, hi);
    *a = make_float((int)(rng_u32(r) & 1), ea, rng_u32(r));
    switch (kind) {
    case 0:                                 /* anything at all */
        *a = b2f(rng_u32(r) & 0xff7fffffu);
        *b = b2f(rng_u32(r) & 0xff7fffffu);
        break;
    case 1: case 2:                         /* far smaller addend */
        *b = make_float((int)(rng_u32(r) & 1), ea - rng_int(r, 0, 70), rng_u32(r));
        break;
    case 3: {                               /* near-cancellation */
        float t = nextafterf(*a, (rng_u32(r) & 1) ? INFINITY : -INFINITY);
        *b = -((rng_u32(r) & 3) ? t : *a);
        break;
    }
    case 4: {                               /* 1, 1.5, 1.25 or 1.75 units of a
                                             * position around the rounding bit */
        static const uint32_t mant[4] = { 0, 0x400000, 0x200000, 0x600000 };
        *a = make_float((int)(rng_u32(r) & 1), ea, rng_u32(r) & ~0xffffu);
        *b = make_float((int)(rng_u32(r) & 1), ea - fi->M - rng_int(r, 0, 40),
                        mant[rng_u32(r) & 3]);
        break;
    }
    default: {                              /* a product landing in range */
        int eb = rng_int(r, lo, hi) - ea;
        if (eb < -149) eb = -149;
        if (eb > 127) eb = 127;
        *b = make_float((int)(rng_u32(r) & 1), eb, rng_u32(r));
        break;
    }
    }
    if (rng_u32(r) & 1) { float t = *a; *a = *b; *b = t; }
}

static void t_mpfr_arith_wild(void **st)
{
    long bad = 0;
    rng r = rng_seed(0x0dd0dd0dd0dd0dd1ull);
    size_t nmax = (size_t)N_PAIRS_WILD + 64;
    float *as = xmalloc(nmax * sizeof *as), *bs = xmalloc(nmax * sizeof *bs);
    (void)st;
    test_begin();
    for (size_t k = 0; k < N_SMALL + N_WIDE; k++) {
        const char *base = k < N_SMALL ? SMALL_FORMATS[k] : WIDE_FORMATS[k - N_SMALL];
        fmtinfo fi;
        size_t n = 0;
        fmt_setup(&fi, base, QT_RNE);
        /* the classic: 1 - 3*2^-55 (and friends), specials */
        as[n] = 1.0f; bs[n++] = -0x3p-55f;
        as[n] = 1.0f; bs[n++] = 0x3p-55f;
        as[n] = -1.0f; bs[n++] = 0x1p-60f;
        as[n] = 1.0f; bs[n++] = -1.0f;
        as[n] = 0.0f; bs[n++] = -0.0f;
        as[n] = -0.0f; bs[n++] = -0.0f;
        as[n] = INFINITY; bs[n++] = 1.0f;
        as[n] = -INFINITY; bs[n++] = 1.0f;
        as[n] = INFINITY; bs[n++] = -INFINITY;
        as[n] = INFINITY; bs[n++] = 0.0f;
        as[n] = NAN; bs[n++] = 1.0f;
        as[n] = FLT_MAX; bs[n++] = FLT_MAX;
        as[n] = FLT_MAX; bs[n++] = -FLT_MAX;
        as[n] = 0x1p-149f; bs[n++] = 0x1p-149f;
        as[n] = 0x1p-149f; bs[n++] = -0x1p-149f;
        as[n] = (float)fi.maxv; bs[n++] = (float)ldexp(1.0, fi.emax - fi.M - 1);
        as[n] = (float)fi.maxv; bs[n++] = nextafterf((float)ldexp(1.0, fi.emax - fi.M - 1), 0);
        as[n] = (float)fi.minpos; bs[n++] = -(float)(fi.minpos / 2);
        while (n < nmax) { wild_pair(&fi, &r, &as[n], &bs[n]); n++; }
        for (int m = 0; m < N_MODES; m++) {
            fmt_setup(&fi, base, MODES[m]);
            bad += check_arith(&fi, as, bs, n);
        }
    }
    free(as);
    free(bs);
    test_end("mul/add vs MPFR, arbitrary float32 pairs", bad);
}

/* ------------------------------------------------------------------------ */
/* 5. stochastic rounding                                                   */
/* ------------------------------------------------------------------------ */

/*
 * For every x: lo = RD(x), hi = RU(x) from the oracle; the result is one of
 * them in value (a), and bit for bit the one quant.h's rule picks: hi iff
 * (r>>8) * 2^-24 < (x-lo)/(hi-lo), r = qt_rand32(seed, stream, offset+i),
 * in all three paths (the array paths draw element i's word from index
 * offset+i). A negative x that rounds up to zero gives -0, as RU(x) (and
 * rz, rne, rna in qtune itself) do: a rounded zero keeps the operand's sign.
 */
static long check_sr_rule(const fmtinfo *fi, const float *xs, size_t n,
                          const qt_sr *sr, long *notnb)
{
    float *a = xmalloc(n * sizeof *a), *rf = xmalloc(n * sizeof *rf);
    long bad = 0;
    memcpy(a, xs, n * sizeof *a);
    memcpy(rf, xs, n * sizeof *rf);
    qt_quantize(&fi->f, a, n, sr);
    qt_quantize_ref(&fi->f, rf, n, sr);
    for (size_t i = 0; i < n; i++) {
        float x = xs[i], lo, hi, want, got[3];
        uint32_t rnd = qt_rand32(sr->seed, sr->stream, sr->offset + i);
        lo = oracle_flt(fi, QT_RD, x);
        hi = oracle_flt(fi, MODE_RU, x);
        if (same_result(lo, hi)) {
            want = lo;
        } else {
            /* frac * 2^24 = (x - lo) / (hi - lo) * 2^24; hi - lo is the
             * step, a power of two, so this is exact */
            mpfr_set_flt(g_z, x, MPFR_RNDN);
            mpfr_set_flt(g_a, lo, MPFR_RNDN);
            mpfr_set_flt(g_b, hi, MPFR_RNDN);
            if (mpfr_sub(g_d1, g_z, g_a, MPFR_RNDN) ||
                mpfr_sub(g_d2, g_b, g_a, MPFR_RNDN) ||
                mpfr_div(g_d1, g_d1, g_d2, MPFR_RNDN) ||
                mpfr_mul_2si(g_d1, g_d1, 24, MPFR_RNDN))
                fail_msg("test: inexact fraction");
            want = mpfr_cmp_ui(g_d1, rnd >> 8) > 0 ? hi : lo;
        }
        got[0] = qt_quantize1(&fi->f, x, rnd);
        got[1] = a[i];
        got[2] = rf[i];
        for (int p = 0; p < 3; p++) {
            static const char *const path[3] = {
                "qt_quantize1(sr rule)", "qt_quantize(sr rule)",
                "qt_quantize_ref(sr rule)" };
            /* (a) by value: -0 and +0 are the same neighbour here */
            if (!(got[p] == lo || got[p] == hi ||
                  (isnan(got[p]) && isnan(lo))))
                ++*notnb;
            bad += expect1(fi->text, path[p], x, want, got[p]);
        }
    }
    note_bad(fi->text, "stochastic rule", bad, 3 * (long)n);
    free(a);
    free(rf);
    return bad;
}

static void t_sr_rule(void **st)
{
    static const char *const fmts[] = {
        "float<8,e4,b7>", "float<8,e4,b7,fn>", "float<8,e4,b7,nosub>",
        "float<6,e2,b1,finite>", "float<12,e6,b31,nosub>",
        "float<16,e5,b15>", "float<16,e8,b127>",
    };
    long bad = 0, notnb = 0;
    rng r = rng_seed(0x5eed5eed5eed5eedull);
    (void)st;
    test_begin();
    for (size_t k = 0; k < sizeof fmts / sizeof *fmts; k++) {
        fmtinfo fi;
        fvec all = { 0 }, in = { 0 };
        qt_sr sr1 = { 42, 7, 0 };
        qt_sr sr2 = { 0x0123456789abcdefull, 0xfedcba9876543210ull,
                      0xffffffffull - 1000 };   /* crosses 2^32 */
        fmt_setup(&fi, fmts[k], QT_SR);
        if (fi.W <= 12) small_inputs(&fi, &all, &r);
        else
            for (long i = 0; i < 200000 / SCALE; i++)
                fv_push(&all, wide_input(&fi, &r));
        for (size_t i = 0; i < all.n; i++)       /* inside the range */
            if (!(fabsf(all.v[i]) > fi.maxv))
                fv_push(&in, all.v[i]);
        bad += check_sr_rule(&fi, in.v, in.n, &sr1, &notnb);
        bad += check_sr_rule(&fi, in.v, in.n, &sr2, &notnb);
        fv_free(&all);
        fv_free(&in);
    }
    print_message("  %ld results were neither RD(x) nor RU(x) in value\n", notnb);
    assert_int_equal(notnb, 0);
    test_end("stochastic rounding: neighbours and exact decision rule", bad);
}

/* (b) rate of rounding up and (c) mean error, n draws on one x */
static long sr_stats_one(const fmtinfo *fi, float x, long n, int scalar)
{
    float lo = oracle_flt(fi, QT_RD, x), hi = oracle_flt(fi, MODE_RU, x);
    double step = (double)hi - (double)lo, p = ((double)x - lo) / step;
    double sig = sqrt(p * (1 - p) / (double)n), sum = 0.0;
    double pbound = 5 * sig + 0x1p-24, mbound = step * pbound;
    long up = 0, other = 0;
    float *a = xmalloc((size_t)n * sizeof *a);
    qt_sr sr = { 2024, 99, 0 };
    assert_true(lo < x && x < hi);
    for (long i = 0; i < n; i++) a[i] = x;
    if (scalar)
        for (long i = 0; i < n; i++)
            a[i] = qt_quantize1(&fi->f, x, qt_rand32(sr.seed, sr.stream, (uint64_t)i));
    else
        qt_quantize(&fi->f, a, (size_t)n, &sr);
    for (long i = 0; i < n; i++) {
        if (a[i] == hi) up++;
        else if (a[i] != lo) other++;
        sum += (double)a[i] - (double)x;
    }
    free(a);
    {
        double ph = (double)up / (double)n, mean = sum / (double)n;
        int ok = other == 0 && fabs(ph - p) <= pbound && fabs(mean) <= mbound;
        g_cases++;
        print_message("  %s %s x = %a: p(up) = %.6f, observed %.6f (%.2f sd), "
                      "mean error %.3g (bound %.3g)%s\n", fi->text,
                      scalar ? "qt_quantize1" : "qt_quantize", (double)x, p, ph,
                      sig > 0 ? (ph - p) / sig : 0.0, mean, mbound,
                      ok ? "" : "  <-- FAIL");
        return !ok;
    }
}

static void t_sr_statistics(void **st)
{
    /* normal, subnormal, negative, top binade, and the no-subnormal zone */
    static const struct { const char *fmt; float x; } cases[] = {
        { "float<8,e4,b7>", 1.3f },
        { "float<8,e4,b7>", -0.0123f },
        { "float<8,e4,b7>", 0.0033f },           /* subnormal: step 2^-9 */
        { "float<8,e4,b7>", 200.1f },
        { "float<8,e4,b7>", 1.0f + 0x1p-12f },   /* p small */
        { "float<8,e4,b7,nosub>", -0.004f },     /* between 0 and 2^-6 */
        { "float<16,e5,b15>", 3.14159265f },
        { "float<16,e8,b127>", 1.001f },
    };
    long bad = 0;
    (void)st;
    test_begin();
    /* bounds: rate |p^ - p| <= 5 sd + 2^-24 (the rule compares a 24-bit
     * word, so P(up) is p rounded up to a multiple of 2^-24); mean error
     * |mean| <= step * (5 sd + 2^-24), sd = sqrt(p(1-p)/n) */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        fmtinfo fi;
        fmt_setup(&fi, cases[k].fmt, QT_SR);
        bad += sr_stats_one(&fi, cases[k].x, N_SR_DRAWS, 0);
        bad += sr_stats_one(&fi, cases[k].x, N_SR_DRAWS, 1);
    }
    {
        /* many different x: the normalised errors (Q-x)/step average to 0
         * within 5 sd of their sum's variance sum p(1-p) */
        fmtinfo fi;
        rng r = rng_seed(77);
        long n = N_SR_DRAWS;
        float *xs = xmalloc((size_t)n * sizeof *xs), *a = xmalloc((size_t)n * sizeof *a);
        double s = 0.0, var = 0.0, bound;
        qt_sr sr = { 5, 6, 7 };
        fmt_setup(&fi, "float<8,e4,b7>", QT_SR);
        for (long i = 0; i < n; i++) xs[i] = a[i] = random_in_exp(&r, -9, 6);
        qt_quantize(&fi.f, a, (size_t)n, &sr);
        for (long i = 0; i < n; i++) {
            double lo = oracle_flt(&fi, QT_RD, xs[i]), hi = oracle_flt(&fi, MODE_RU, xs[i]);
            double p = hi > lo ? (xs[i] - lo) / (hi - lo) : 0.0;
            if (hi > lo) s += ((double)a[i] - xs[i]) / (hi - lo);
            var += p * (1 - p);
        }
        bound = 5 * sqrt(var) / (double)n + 0x1p-24;
        g_cases++;
        print_message("  %s, %ld random x in [2^-9, 2^7): mean (Q-x)/step = %.3g "
                      "(bound %.3g)\n", fi.text, n, s / (double)n, bound);
        if (!(fabs(s / (double)n) <= bound)) bad++;
        free(xs);
        free(a);
    }
    test_end("stochastic rounding: statistics", bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_half_f16c),
        cmocka_unit_test(t_bf16_bits),
        cmocka_unit_test(t_mpfr_quantize_small),
        cmocka_unit_test(t_mpfr_quantize_wide),
        cmocka_unit_test(t_mpfr_arith_exhaustive),
        cmocka_unit_test(t_mpfr_arith_random),
        cmocka_unit_test(t_mpfr_arith_wild),
        cmocka_unit_test(t_sr_rule),
        cmocka_unit_test(t_sr_statistics),
    };
    return cmocka_run_group_tests(tests, oracle_setup, oracle_teardown);
}
