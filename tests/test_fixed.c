/*
 * test_fixed.c -- fixed and ufixed against exact integer arithmetic.
 *
 * The reference never touches floating point for the rounding itself: an
 * input x = k * 2^-(F+3) is k/8 steps, and each rounding mode is written as
 * integer floor division plus a remainder rule; saturation and wrap are
 * integer clamps and residues. The library's fast array path, its reference
 * path and the scalar call must all agree with it bit for bit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static qt_format P(const char *text)
{
    qt_format f;
    qt_error err;
    if (qt_format_parse(text, &f, &err) != QT_OK)
        fail_msg("parse '%s': %s", text, err.text);
    return f;
}

static int64_t floordiv(int64_t a, int64_t d)
{
    int64_t q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}

/* round a/d (d > 0, a power of two) to an integer by mode */
static int64_t round_div(int64_t a, int64_t d, int mode)
{
    int64_t fl = floordiv(a, d), rem = a - fl * d;
    if (rem == 0) return fl;
    switch (mode) {
    case QT_RD: return fl;
    case QT_RZ: return a >= 0 ? fl : fl + 1;
    case QT_RNE:
        if (2 * rem > d) return fl + 1;
        if (2 * rem < d) return fl;
        return (fl & 1) ? fl + 1 : fl;
    case QT_RNA:
        if (2 * rem > d) return fl + 1;
        if (2 * rem < d) return fl;
        return a > 0 ? fl + 1 : fl;
    }
    fail_msg("mode");
    return 0;
}

static void qbounds(const qt_format *f, int64_t *lo, int64_t *hi)
{
    int W = f->width;
    if (f->type == QT_UFIXED) { *lo = 0; *hi = ((int64_t)1 << W) - 1; return; }
    *hi = ((int64_t)1 << (W - 1)) - 1;
    *lo = (f->flags & QT_F_SYM) ? -*hi : -((int64_t)1 << (W - 1));
}

static int64_t overflow_q(const qt_format *f, int64_t q)
{
    int64_t lo, hi;
    qbounds(f, &lo, &hi);
    if (q >= lo && q <= hi) return q;
    if (f->overflow == QT_SAT) return q < lo ? lo : hi;
    if (f->type == QT_UFIXED) {
        int64_t m = (int64_t)1 << f->width;
        return ((q % m) + m) % m;
    }
    if (f->flags & QT_F_SYM) {
        int64_t m = (int64_t)1 << (f->width - 1), a = q < 0 ? -q : q;
        return q < 0 ? -(a % m) : a % m;
    }
    int64_t m = (int64_t)1 << f->width;
    return (((q - lo) % m) + m) % m + lo;
}

/* q * 2^-F as float32, toward zero where q has more than 24 bits */
static float qvalue(int64_t q, int F)
{
    double v = ldexp((double)q, -F);
    float r = (float)v;
    if (fabs((double)r) > fabs(v)) r = nextafterf(r, 0.0f);
    return r + 0.0f;
}

static int same_bits(float a, float b)
{
    uint32_t x, y;
    if (isnan(a) && isnan(b)) return 1;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    return x == y;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return rs;
}

/* inputs x = k * 2^-(F+3) with |k| < 2^24 (so x is exact in float) */
static size_t make_grid(const qt_format *f, int64_t *k, size_t cap)
{
    int64_t lo, hi;
    size_t n = 0;
    qbounds(f, &lo, &hi);
    int64_t span = (hi - lo + 1) * 8 + 64;
    if (span <= (int64_t)cap - 64 && (hi + 8) * 8 < (1 << 24)) {
        for (int64_t v = lo * 8 - 40; v <= hi * 8 + 40 && n < cap; v++)
            k[n++] = v;
        return n;
    }
    /* wide formats: every tie and quarter near zero, around both bounds,
     * and random k of at most 24 significant bits across the range */
    for (int64_t v = -4096; v <= 4096; v++) k[n++] = v;
    for (size_t i = 0; n < cap; i++) {
        int shift = (int)(rnd64() % 40);
        int64_t m = (int64_t)(rnd64() % (1u << 21)) - (1 << 20);
        int64_t v = m * ((int64_t)1 << (shift < 30 ? shift : 30));
        if (v > -(1ll << 53) && v < (1ll << 53)) k[n++] = v;
    }
    return n;
}

static void check_format(const char *text)
{
    qt_format f = P(text);
    size_t cap = 120000, n;
    int64_t *k = malloc(cap * sizeof *k);
    float *x = malloc(cap * sizeof *x), *y = malloc(cap * sizeof *y), *z = malloc(cap * sizeof *z);
    size_t bad = 0;
    int F = f.bias;
    n = make_grid(&f, k, cap);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ldexp((double)k[i], -(F + 3));
    memcpy(y, x, n * sizeof *x);
    memcpy(z, x, n * sizeof *x);
    qt_quantize(&f, y, n, NULL);
    qt_quantize_ref(&f, z, n, NULL);
    for (size_t i = 0; i < n; i++) {
        /* exact only while x held k exactly */
        if ((double)x[i] != ldexp((double)k[i], -(F + 3))) continue;
        int64_t q = overflow_q(&f, round_div(k[i], 8, f.round));
        float want = qvalue(q, F);
        float one = qt_quantize1(&f, x[i], 0);
        if (!same_bits(want, y[i]) || !same_bits(want, z[i]) || !same_bits(want, one)) {
            if (bad++ < 5)
                print_error("%s: x=%a (k=%lld): want %a, fast %a, ref %a, one %a\n",
                            text, (double)x[i], (long long)k[i], (double)want,
                            (double)y[i], (double)z[i], (double)one);
        }
    }
    free(k); free(x); free(y); free(z);
    if (bad) fail_msg("%s: %zu mismatches", text, bad);
}

static void t_grid(void **st)
{
    static const char *modes[] = { "rne", "rna", "rd", "rz" };
    static const int widths[] = { 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32 };
    char text[64];
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        int W = widths[w];
        int Fs[] = { -3, 0, 1, W / 2, W - 1, W + 2 };
        for (size_t fi = 0; fi < 6; fi++)
            for (int m = 0; m < 4; m++)
                for (int kind = 0; kind < 6; kind++) {
                    const char *t = kind < 2 ? "fixed" : kind < 4 ? "ufixed" : "fixed";
                    const char *sym = kind >= 4 ? ",sym" : "";
                    const char *ov = (kind & 1) ? ",wrap" : "";
                    if (kind >= 4 && W < 2) continue;
                    snprintf(text, sizeof text, "%s<%d,%d%s,%s%s>", t, W, Fs[fi], sym, modes[m], ov);
                    check_format(text);
                }
    }
}

static void t_ends(void **st)
{
    qt_format f = P("fixed<8,4>");
    assert_true(qt_quantize1(&f, 8.0f, 0) == 127.0f / 16);
    assert_true(qt_quantize1(&f, -9.0f, 0) == -8.0f);
    assert_true(qt_quantize1(&f, 1e30f, 0) == 127.0f / 16);
    assert_true(qt_quantize1(&f, INFINITY, 0) == 127.0f / 16);
    assert_true(qt_quantize1(&f, -INFINITY, 0) == -8.0f);
    assert_true(isnan(qt_quantize1(&f, NAN, 0)));
    f = P("fixed<8,4,wrap>");
    assert_true(qt_quantize1(&f, 8.0f, 0) == -8.0f);          /* 128 -> -128 */
    assert_true(qt_quantize1(&f, -8.0625f, 0) == 127.0f / 16); /* -129 -> 127 */
    assert_true(qt_quantize1(&f, 16.0f, 0) == 0.0f);          /* 256 -> 0 */
    assert_true(qt_quantize1(&f, INFINITY, 0) == 127.0f / 16); /* no residue: saturate */
    assert_true(qt_quantize1(&f, 1e30f, 0) == 0.0f);          /* a multiple of 2^8 */
    f = P("ufixed<8,8,wrap>");
    assert_true(qt_quantize1(&f, 1.0f, 0) == 0.0f);
    assert_true(qt_quantize1(&f, -1.0f / 256, 0) == 255.0f / 256);
    f = P("ufixed<8,8>");
    assert_true(qt_quantize1(&f, -0.5f, 0) == 0.0f);
    assert_true(qt_quantize1(&f, 2.0f, 0) == 255.0f / 256);
    f = P("fixed<8,4,sym>");
    assert_true(qt_quantize1(&f, -100.0f, 0) == -127.0f / 16);
    /* fixed point has no negative zero */
    f = P("fixed<8,4>");
    float z = qt_quantize1(&f, -0.01f, 0);
    assert_false(signbit(z));
    /* 32-bit: bounds that float32 cannot hold saturate toward zero */
    f = P("fixed<32,0>");
    assert_true(qt_quantize1(&f, 3e9f, 0) == nextafterf(2147483648.0f, 0));
    assert_true(qt_quantize1(&f, -3e9f, 0) == -2147483648.0f);
    assert_true(qt_max(&f) == (double)nextafterf(2147483648.0f, 0));
    /* RD of a tiny negative value with F < 0: floor is -1 step, not 0 */
    f = P("fixed<8,-4,rd>");
    assert_true(qt_quantize1(&f, -0x1p-149f, 0) == -16.0f);
    float v = -0x1p-149f;
    qt_quantize(&f, &v, 1, NULL);
    assert_true(v == -16.0f);
}

/* stochastic rounding: only the two neighbours, up with probability equal
 * to the distance, unbiased, and the same bits on any thread count */
static void t_stochastic(void **st)
{
    qt_format f = P("fixed<8,4,sr>");
    const size_t n = 1000000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    qt_sr sr = { 1234, 99, 0 };
    size_t up = 0;
    for (size_t i = 0; i < n; i++) x[i] = 0.3f;
    memcpy(y, x, n * sizeof *x);
    qt_quantize(&f, y, n, &sr);
    for (size_t i = 0; i < n; i++) {
        assert_true(y[i] == 0.25f || y[i] == 0.3125f);
        up += y[i] == 0.3125f;
    }
    /* p = (0.3 - 0.25) / 0.0625 = 0.8 (to float precision) */
    double p = ((double)0.3f - 0.25) / 0.0625, phat = (double)up / n;
    double sd = sqrt(p * (1 - p) / n);
    assert_true(fabs(phat - p) < 5 * sd);

    /* unbiased on random inputs: mean error within 5 sd of 0 */
    double sum = 0.0, sum2 = 0.0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(rnd64() >> 11) * 0x1p-53 * 14.0 - 7.0);
    memcpy(y, x, n * sizeof *x);
    qt_quantize(&f, y, n, &sr);
    for (size_t i = 0; i < n; i++) {
        double e = (double)y[i] - x[i];
        assert_true(fabs(e) < 0.0625);
        sum += e; sum2 += e * e;
    }
    double mean = sum / n, sdm = sqrt(sum2 / n / n);
    assert_true(fabs(mean) < 5 * sdm);
    /* E[e^2] = step^2/6 for inputs uniform within a step */
    assert_true(fabs(sum2 / n / qt_noise_var(&f, 1.0) - 1.0) < 0.02);

    /* thread count: 1 and 2 threads, and split calls with offsets */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    memcpy(a, x, n * sizeof *x); memcpy(b, x, n * sizeof *x); memcpy(c, x, n * sizeof *x);
    omp_set_num_threads(1);
    qt_quantize(&f, a, n, &sr);
    omp_set_num_threads(2);
    qt_quantize(&f, b, n, &sr);
    qt_sr s1 = sr, s2 = sr;
    s2.offset = 777777;
    qt_quantize(&f, c, 777777, &s1);
    qt_quantize(&f, c + 777777, n - 777777, &s2);
    assert_memory_equal(a, b, n * sizeof *a);
    assert_memory_equal(a, c, n * sizeof *a);
    /* fast == reference, and another seed gives other bits */
    memcpy(c, x, n * sizeof *x);
    qt_quantize_ref(&f, c, n, &sr);
    assert_memory_equal(a, c, n * sizeof *a);
    qt_sr other = { 1235, 99, 0 };
    memcpy(c, x, n * sizeof *x);
    qt_quantize(&f, c, n, &other);
    assert_memory_not_equal(a, c, n * sizeof *a);
    /* an index range that crosses 2^32 (the kernel splits there) */
    qt_sr high = { 5, 6, 0xFFFFFFFFull - 1000 };
    memcpy(a, x, 5000 * sizeof *x); memcpy(b, x, 5000 * sizeof *x);
    qt_quantize(&f, a, 5000, &high);
    qt_quantize_ref(&f, b, 5000, &high);
    assert_memory_equal(a, b, 5000 * sizeof *a);
    for (size_t i = 0; i < 5000; i++) {
        uint32_t r = qt_rand32(5, 6, high.offset + i);
        assert_true(qt_quantize1(&f, x[i], r) == a[i]);
    }
    free(a); free(b); free(c); free(x); free(y);
}

/* bit-true mul and add: integer products and sums, one rounding */
static void check_arith(const char *text, int exhaustive)
{
    qt_format f = P(text);
    int64_t lo, hi;
    int F = f.bias;
    size_t bad = 0, count = 0;
    qbounds(&f, &lo, &hi);
    for (int64_t i = 0; exhaustive ? i <= (hi - lo) * (hi - lo + 1) + (hi - lo) : i < 300000; i++) {
        int64_t qa, qb;
        if (exhaustive) { qa = lo + i % (hi - lo + 1); qb = lo + i / (hi - lo + 1); }
        else { qa = lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1)); qb = lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1)); }
        float a = qvalue(qa, F), b = qvalue(qb, F);
        int64_t pm = overflow_q(&f, F >= 0 ? round_div(qa * qb, (int64_t)1 << F, f.round)
                                             : qa * qb * ((int64_t)1 << -F));
        int64_t ps = overflow_q(&f, qa + qb);
        float wm = qvalue(pm, F), ws = qvalue(ps, F);
        float gm = qt_mul(&f, a, b, 0), gs = qt_add(&f, a, b, 0);
        count++;
        if (!same_bits(wm, gm) || !same_bits(ws, gs)) {
            if (bad++ < 5)
                print_error("%s: a=%a b=%a: mul want %a got %a, add want %a got %a\n",
                            text, (double)a, (double)b, (double)wm, (double)gm,
                            (double)ws, (double)gs);
        }
    }
    if (bad) fail_msg("%s: %zu of %zu mismatches", text, bad, count);
}

static void t_arith(void **st)
{
    static const char *ex[] = {
        "fixed<6,3>", "fixed<6,3,rna>", "fixed<6,3,rd>", "fixed<6,3,rz>",
        "fixed<6,3,wrap>", "fixed<6,3,rd,wrap>", "fixed<6,3,sym>", "ufixed<6,3>",
        "ufixed<6,3,rz,wrap>", "fixed<6,0>", "fixed<5,-2>", "fixed<4,5>",
    };
    static const char *wide[] = {
        "fixed<16,8>", "fixed<16,8,rna>", "fixed<16,12,rd>", "fixed<16,4,rz,wrap>",
        "ufixed<16,10>", "fixed<24,12>", "fixed<24,20,sym,rna>",
    };
    for (size_t i = 0; i < sizeof ex / sizeof *ex; i++) check_arith(ex[i], 1);
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++) check_arith(wide[i], 0);
    /* stochastic mul: one of the two neighbours */
    qt_format f = P("fixed<8,4,sr>"), frd = P("fixed<8,4,rd>");
    for (int i = 0; i < 10000; i++) {
        float a = qvalue((int64_t)(rnd64() % 256) - 128, 4), b = qvalue((int64_t)(rnd64() % 256) - 128, 4);
        float r = qt_mul(&f, a, b, qt_rand32(1, 2, (uint64_t)i));
        float dn = qt_mul(&frd, a, b, 0);
        int64_t lo, hi;
        qbounds(&f, &lo, &hi);
        float up = dn == qvalue(hi, 4) ? dn : dn + 0.0625f;
        assert_true(r == dn || r == up);
    }
}

/* expected squared error of rounding, measured against qt_noise_var */
static void t_noise(void **st)
{
    static const char *t[] = { "fixed<8,4>", "fixed<8,4,rna>", "fixed<8,4,rd>",
                               "fixed<8,4,rz>", "fixed<8,4,sr>" };
    const size_t n = 400000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(rnd64() >> 11) * 0x1p-53 * 6.0 + 0.5);   /* (0.5, 6.5) */
    for (size_t k = 0; k < 5; k++) {
        qt_format f = P(t[k]);
        qt_sr sr = { 3, 4, 0 };
        double s2 = 0.0;
        memcpy(y, x, n * sizeof *x);
        qt_quantize(&f, y, n, &sr);
        for (size_t i = 0; i < n; i++) s2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        double want = qt_noise_var(&f, 2.0);
        if (fabs(s2 / n / want - 1.0) > 0.02)
            fail_msg("%s: measured %g, qt_noise_var %g", t[k], s2 / n, want);
    }
    /* beyond the range the saturation error is added */
    qt_format f = P("fixed<8,4>");
    assert_true(qt_noise_var(&f, 10.0) > (10.0 - 7.9375) * (10.0 - 7.9375));
    free(x); free(y);
}

static void t_fit(void **st)
{
    for (int i = 0; i < 20000; i++) {
        double a = exp((double)(rnd64() % 100000) / 100000.0 * 40.0 - 20.0);
        static const char *t[] = { "fixed<8,0>", "fixed<4,0,sym>", "ufixed<8,0>", "fixed<16,0>" };
        qt_format f = P(t[i % 4]);
        assert_int_equal(qt_fit_bias(&f, a), QT_OK);
        assert_true(qt_max(&f) >= a);                 /* no overflow */
        qt_format g = f;
        g.bias++;
        assert_true(qt_max(&g) < a);                  /* and the finest such */
    }
    /* the paper's profiled biases: B0 = floor(-log2 max|x|) for FIXED N */
    qt_format f = P("fixed<8,0>");
    assert_int_equal(qt_fit_bias(&f, 5.0566), QT_OK);
    assert_int_equal(f.bias, 4);                      /* 127/16 = 7.94 >= 5.06 */
    assert_int_equal(qt_fit_bias(&f, 0.0), QT_OK);    /* unchanged */
    assert_int_equal(f.bias, 4);
    assert_int_equal(qt_fit_bias(&f, NAN), QT_ERANGE);
    assert_int_equal(qt_fit_bias(&f, INFINITY), QT_ERANGE);
    assert_int_equal(qt_fit_bias(&f, -1.0), QT_ERANGE);
    /* too large for any valid F */
    f = P("fixed<4,0>");
    assert_int_equal(qt_fit_bias(&f, 3e38), QT_ERANGE);   /* 7*2^124 < 3e38 */
    assert_int_equal(qt_format_check(&f, NULL), QT_OK);
    /* percentiles: one outlier does not set the range at p = 99 */
    float *x = malloc(1000 * sizeof *x);
    for (int i = 0; i < 1000; i++) x[i] = (float)(i % 100) / 100.0f;
    x[500] = 1000.0f;
    x[501] = NAN;
    qt_format p100 = P("fixed<8,0>"), p99 = p100;
    assert_int_equal(qt_fit_bias_percentile(&p100, x, 1000, 100.0), QT_OK);
    assert_int_equal(qt_fit_bias_percentile(&p99, x, 1000, 99.0), QT_OK);
    assert_true(qt_max(&p100) >= 1000.0);
    assert_true(qt_max(&p99) >= 0.98 && qt_max(&p99) < 2.0);
    assert_int_equal(qt_fit_bias_percentile(&p99, x, 1000, 0.0), QT_EINVAL);
    assert_int_equal(qt_fit_bias_percentile(&p99, x, 1000, 101.0), QT_EINVAL);
    float nan1 = NAN;
    assert_int_equal(qt_fit_bias_percentile(&p99, &nan1, 1, 50.0), QT_EINVAL);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_grid),
        cmocka_unit_test(t_ends),
        cmocka_unit_test(t_stochastic),
        cmocka_unit_test(t_arith),
        cmocka_unit_test(t_noise),
        cmocka_unit_test(t_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
