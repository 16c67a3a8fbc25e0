/*
 * test_props.c -- properties every format must have, checked on every type:
 * Q(Q(x)) = Q(x), monotone, inside the range, fast path == reference path
 * bit for bit, the same bits on 1 and 2 threads, and the documented NaN and
 * infinity behaviour. Plus the log, binary, ternary, sparse, cluster and
 * block semantics against small hand-worked cases and direct re-derivations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
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

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static uint64_t rnd64(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return rs;
}

/* a mix: normal-ish values at several scales, exact zeros, subnormals,
 * huge values, and a few specials */
static void fill(float *x, size_t n, int specials)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd64();
        double u = (double)(r >> 11) * 0x1p-53 * 2.0 - 1.0;
        switch (r % 16) {
        case 0: x[i] = 0.0f; break;
        case 1: x[i] = (float)(u * 1e-40); break;
        case 2: x[i] = (float)(u * 1e30); break;
        case 3: x[i] = (float)(u * 1000.0); break;
        default: x[i] = (float)(u * ldexp(1.0, (int)(r % 24) - 12)); break;
        }
        if (specials && r % 997 == 5) x[i] = NAN;
        if (specials && r % 991 == 7) x[i] = (r & 1) ? INFINITY : -INFINITY;
    }
}

static int same_bits(float a, float b)
{
    uint32_t x, y;
    if (isnan(a) && isnan(b)) return 1;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    return x == y;
}

/* one of each type and the interesting variants */
static const char *all[] = {
    "none", "fixed<8,4>", "fixed<8,4,sr>", "fixed<8,4,rd>", "fixed<8,-2,rd>",
    "fixed<8,4,sym,rna>", "fixed<12,6,rz,wrap>", "fixed<32,10>", "ufixed<8,8>",
    "ufixed<6,2,sr>", "ufixed<8,4,wrap>", "float<8,e4,b7>", "float<8,e4,b7,sr>",
    "float<8,e4,b7,fn>", "float<8,e4,b7,nosub,rd>", "float<6,e2,b1,finite,rz>",
    "float<8,e5,b15,sat,rna>", "float<16,e5,b15>", "float<16,e5,b15,sr>",
    "float<16,e8,b127>", "float<16,e8,b127,sr>", "float<12,e6,b40,nosub,rd>",
    "float<32,e8,b127>", "float<8,e3,b-2>", "log<4,b3>", "log<4,b3,sr>",
    "log<6,b15,rd>", "log<8,b63,rz>", "log<5,b7,rna>", "binary<b0>", "binary<b3>",
    "ternary<b0,auto>", "ternary<b2,t0.5>", "cluster<3>", "cluster<6>",
    "block<float<8,e4,b7,fn>,32>", "block<float<4,e2,b1,finite>,32>",
    "block<fixed<8,6,sym>,32>", "block<float<6,e3,b3,finite,sr>,16>",
    "block<fixed<4,2,sym,rz>,7>", "sparse<0.01>", "sparse<0>",
};
#define NALL (sizeof all / sizeof *all)

static int tensor_fitted(const qt_format *f)
{
    return f->type == QT_CLUSTER || f->type == QT_BLOCK ||
           (f->type == QT_TERNARY && (f->flags & QT_F_AUTO));
}

/* fast == reference, bit for bit, with specials and a stochastic stream */
static void t_fast_vs_ref(void **st)
{
    const size_t n = 100003;
    float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    fill(x, n, 1);
    for (size_t k = 0; k < NALL; k++) {
        qt_format f = P(all[k]);
        qt_sr sr = { 42, k, 1000 };
        size_t bad = 0;
        memcpy(a, x, n * sizeof *x); memcpy(b, x, n * sizeof *x);
        qt_quantize(&f, a, n, &sr);
        qt_quantize_ref(&f, b, n, &sr);
        for (size_t i = 0; i < n; i++)
            if (!same_bits(a[i], b[i]) && bad++ < 3)
                print_error("%s: x=%a fast %a ref %a\n", all[k], (double)x[i], (double)a[i], (double)b[i]);
        if (bad) fail_msg("%s: %zu fast/ref mismatches", all[k], bad);
        /* the scalar call with the same random word, for element-wise types */
        if (!tensor_fitted(&f))
            for (size_t i = 0; i < n; i += 7) {
                float one = qt_quantize1(&f, x[i], qt_rand32(42, k, 1000 + i));
                if (!same_bits(one, a[i]))
                    fail_msg("%s: x=%a array %a scalar %a", all[k], (double)x[i], (double)a[i], (double)one);
            }
    }
    free(x); free(a); free(b);
}

static void t_idempotent_range(void **st)
{
    const size_t n = 50000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    fill(x, n, 0);
    for (size_t k = 0; k < NALL; k++) {
        qt_format f = P(all[k]);
        qt_sr sr = { 7, 8, 0 };
        memcpy(y, x, n * sizeof *x);
        qt_quantize(&f, y, n, &sr);
        float *z = malloc(n * sizeof *z);
        memcpy(z, y, n * sizeof *y);
        qt_quantize(&f, z, n, &sr);   /* a second pass, even stochastic, changes nothing */
        for (size_t i = 0; i < n; i++)
            if (!same_bits(y[i], z[i]))
                fail_msg("%s: Q(Q(x)) != Q(x) at x=%a: %a -> %a", all[k], (double)x[i], (double)y[i], (double)z[i]);
        free(z);
        double hi = qt_max(&f), lo = qt_lowest(&f);
        int infok = f.type == QT_FLOAT && f.overflow == QT_INF;
        for (size_t i = 0; i < n; i++) {
            if (isinf(y[i]) && infok) continue;
            if (!(y[i] <= hi && y[i] >= lo))
                fail_msg("%s: Q(%a) = %a outside [%g, %g]", all[k], (double)x[i], (double)y[i], lo, hi);
        }
    }
    free(x); free(y);
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* monotone: sorted input gives non-decreasing output (deterministic modes;
 * a whole sorted array for cluster, one block-sized run for block) */
static void t_monotone(void **st)
{
    const size_t n = 40000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    fill(x, n, 0);
    qsort(x, n, sizeof *x, cmpf);
    for (size_t k = 0; k < NALL; k++) {
        qt_format f = P(all[k]);
        if (f.round == QT_SR || f.overflow == QT_WRAP) continue;   /* not monotone by design */
        size_t m = n;
        memcpy(y, x, n * sizeof *x);
        if (f.type == QT_BLOCK) m = f.block;
        if (f.type == QT_TERNARY && (f.flags & QT_F_AUTO)) m = n;
        qt_quantize(&f, y, m, NULL);
        for (size_t i = 1; i < m; i++)
            if (y[i] < y[i - 1])
                fail_msg("%s: not monotone: Q(%a)=%a > Q(%a)=%a", all[k], (double)x[i - 1],
                         (double)y[i - 1], (double)x[i], (double)y[i]);
    }
    free(x); free(y);
}

static void t_threads(void **st)
{
    const size_t n = 300000;
    float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    fill(x, n, 1);
    for (size_t k = 0; k < NALL; k++) {
        qt_format f = P(all[k]);
        qt_sr sr = { 11, 12, 13 };
        memcpy(a, x, n * sizeof *x); memcpy(b, x, n * sizeof *x);
        omp_set_num_threads(1);
        qt_quantize(&f, a, n, &sr);
        omp_set_num_threads(2);
        qt_quantize(&f, b, n, &sr);
        for (size_t i = 0; i < n; i++)
            if (!same_bits(a[i], b[i]))
                fail_msg("%s: 1 vs 2 threads differ at %zu", all[k], i);
    }
    free(x); free(a); free(b);
}

/* NaN in gives NaN out; infinities as documented in quant.h */
static void t_specials(void **st)
{
    for (size_t k = 0; k < NALL; k++) {
        qt_format f = P(all[k]);
        float v[4] = { NAN, INFINITY, -INFINITY, 1.0f };   /* tensor types need a finite value */
        qt_quantize(&f, v, 4, NULL);
        if (!isnan(v[0])) fail_msg("%s: NaN -> %a", all[k], (double)v[0]);
        float pi = v[1], ni = v[2];
        switch (f.type) {
        case QT_NONE: case QT_SPARSE:
            assert_true(pi == INFINITY && ni == -INFINITY); break;
        case QT_FLOAT:
            if (f.overflow == QT_INF) assert_true(pi == INFINITY && ni == -INFINITY);
            else assert_true(pi == (float)qt_max(&f) && ni == -(float)qt_max(&f));
            break;
        case QT_BINARY: case QT_TERNARY:
            assert_true(pi == (float)qt_max(&f) && ni == -(float)qt_max(&f)); break;
        case QT_CLUSTER:       /* one finite value: a one-level codebook */
            assert_true(pi == 1.0f && ni == 1.0f); break;
        case QT_BLOCK:         /* element saturation times the scale from 1.0 */
            assert_true(isfinite(pi) && pi >= 1.0f && ni == -pi); break;
        default:
            assert_true(pi == (float)qt_max(&f) && ni == (float)qt_lowest(&f));
        }
    }
    /* signed zero survives the float types */
    qt_format f = P("float<8,e4,b7>");
    assert_true(signbit(qt_quantize1(&f, -0.0f, 0)));
}

/* log<4,b3>: magnitudes {0, 2^-2 .. 2^4}, nearest in linear distance;
 * a tie goes to the even code (code of 2^k is k - kmin + 1) */
static void t_log(void **st)
{
    qt_format f = P("log<4,b3>");
    assert_true(qt_min_pos(&f) == 0.25 && qt_max(&f) == 16.0);
    assert_true(qt_quantize1(&f, 0.1f, 0) == 0.0f);       /* below 0.125 */
    assert_true(qt_quantize1(&f, 0.125f, 0) == 0.0f);     /* tie: code 0 is even */
    assert_true(qt_quantize1(&f, 0.13f, 0) == 0.25f);
    assert_true(qt_quantize1(&f, 3.0f, 0) == 2.0f);       /* tie 2|4: code(2)=4 even */
    assert_true(qt_quantize1(&f, 6.0f, 0) == 8.0f);       /* tie 4|8: code(8)=6 even */
    assert_true(qt_quantize1(&f, 2.9f, 0) == 2.0f);
    assert_true(qt_quantize1(&f, 3.1f, 0) == 4.0f);
    assert_true(qt_quantize1(&f, -3.1f, 0) == -4.0f);
    assert_true(qt_quantize1(&f, 100.0f, 0) == 16.0f);
    f = P("log<4,b3,rna>");
    assert_true(qt_quantize1(&f, 3.0f, 0) == 4.0f);
    assert_true(qt_quantize1(&f, 0.125f, 0) == 0.25f);
    f = P("log<4,b3,rd>");
    assert_true(qt_quantize1(&f, 3.9f, 0) == 2.0f);
    assert_true(qt_quantize1(&f, -3.9f, 0) == -4.0f);
    assert_true(qt_quantize1(&f, -0.1f, 0) == -0.25f);
    f = P("log<4,b3,rz>");
    assert_true(qt_quantize1(&f, -3.9f, 0) == -2.0f);
    /* stochastic: P(up) = (x - lo) / (hi - lo) */
    f = P("log<4,b3,sr>");
    size_t up = 0, n = 200000;
    for (size_t i = 0; i < n; i++) up += qt_quantize1(&f, 2.5f, qt_rand32(1, 1, i)) == 4.0f;
    double p = 0.25, sd = sqrt(p * (1 - p) / n);
    assert_true(fabs((double)up / n - p) < 5 * sd);
    /* step and noise */
    f = P("log<4,b3>");
    assert_true(qt_step(&f, 3.0) == 2.0);
    assert_true(qt_noise_var(&f, 3.0) == 4.0 / 12.0);
    /* fit: the largest magnitude is the smallest power of two >= absmax */
    assert_int_equal(qt_fit_bias(&f, 5.0), QT_OK);
    assert_true(qt_max(&f) == 8.0);
}

static void t_binary_ternary_sparse(void **st)
{
    qt_format f = P("binary<b2>");
    assert_true(qt_quantize1(&f, 0.0f, 0) == 0.25f);      /* x >= 0 gives +s */
    assert_true(qt_quantize1(&f, -1e-30f, 0) == -0.25f);
    assert_true(qt_quantize1(&f, 7.0f, 0) == 0.25f);
    f = P("ternary<b0,t0.5>");
    assert_true(qt_quantize1(&f, 0.5f, 0) == 0.0f);       /* |x| > t */
    assert_true(qt_quantize1(&f, 0.51f, 0) == 1.0f);
    assert_true(qt_quantize1(&f, -0.51f, 0) == -1.0f);
    /* auto: t = 0.7 * mean|x| (TWN), recomputed from the array */
    f = P("ternary");
    float x[8] = { 0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f, 0.7f, -0.8f };
    double mean = 0.45, t = 0.7 * mean;                   /* 0.315 */
    float y[8];
    memcpy(y, x, sizeof x);
    qt_quantize(&f, y, 8, NULL);
    for (int i = 0; i < 8; i++)
        assert_true(y[i] == (x[i] > t ? 1.0f : x[i] < -t ? -1.0f : 0.0f));
    /* fit: s from mean|x| */
    f = P("binary");
    assert_int_equal(qt_fit_bias_percentile(&f, x, 8, 100.0), QT_OK);
    assert_int_equal(f.bias, 2);                          /* 0.25 <= 0.45 < 0.5 */
    f = P("sparse<0.25>");
    assert_true(qt_quantize1(&f, 0.25f, 0) == 0.0f);      /* keep if |x| > t */
    assert_true(qt_quantize1(&f, -0.26f, 0) == -0.26f);
}

/* k-means: levels sorted, at most k, each the mean of its cell (Lloyd's
 * fixed point), deterministic, and no worse than the quantile start */
static void t_codebook(void **st)
{
    const size_t n = 20000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    float lv[16], lv2[16];
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(rnd64() >> 11) + 1) * 0x1p-53, u2 = (double)(rnd64() >> 11) * 0x1p-53;
        x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    int k = qt_codebook_fit(x, n, 16, lv);
    assert_int_equal(k, 16);
    for (int j = 1; j < k; j++) assert_true(lv[j] > lv[j - 1]);
    assert_int_equal(qt_codebook_fit(x, n, 16, lv2), 16);
    assert_memory_equal(lv, lv2, sizeof lv);
    /* each level is the mean of the values nearest to it */
    double sum[16] = { 0 }, cnt[16] = { 0 };
    memcpy(y, x, n * sizeof *x);
    qt_codebook_apply(lv, k, y, n);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            if (y[i] == lv[j]) { sum[j] += x[i]; cnt[j] += 1; }
    for (int j = 0; j < k; j++) {
        assert_true(cnt[j] > 0);
        assert_true(fabs(sum[j] / cnt[j] - lv[j]) < 1e-4 * (fabs(lv[j]) + 1e-3));
    }
    /* few distinct values: they are the codebook, and the format is lossless */
    float few[6] = { 3, 1, 3, 2, 1, 2 };
    assert_int_equal(qt_codebook_fit(few, 6, 4, lv), 3);
    qt_format f = P("cluster<2>");
    float few2[6];
    memcpy(few2, few, sizeof few);
    qt_quantize(&f, few2, 6, NULL);
    assert_memory_equal(few, few2, sizeof few);
    /* NaN stays, inf goes to the extreme level */
    float sp[5] = { 1, 2, NAN, INFINITY, -INFINITY };
    f = P("cluster<1>");
    qt_quantize(&f, sp, 5, NULL);
    assert_true(isnan(sp[2]) && sp[3] == sp[1] && sp[4] == sp[0]);
    assert_int_equal(qt_codebook_fit(x, n, 0, lv), QT_EINVAL);
    free(x); free(y);
}

/* block: re-derive the OCP MX rule directly for each block */
static void t_block(void **st)
{
    static const char *t[][2] = {
        { "mxfp8", "float<8,e4,b7,fn>" }, { "mxfp4", "float<4,e2,b1,finite>" },
        { "mxint8", "fixed<8,6,sym>" }, { "mxfp6e3m2", "float<6,e3,b3,finite>" },
    };
    static const int emax[] = { 8, 2, 0, 4 };     /* the OCP MX spec's emax_elem */
    const size_t n = 32 * 200 + 13;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    fill(x, n, 0);
    for (size_t k = 0; k < 4; k++) {
        qt_format f = P(t[k][0]), e = P(t[k][1]);
        memcpy(y, x, n * sizeof *x);
        qt_quantize(&f, y, n, NULL);
        for (size_t b0 = 0; b0 < n; b0 += 32) {
            size_t len = b0 + 32 <= n ? 32 : n - b0;
            double amax = 0;
            for (size_t i = 0; i < len; i++) amax = fmax(amax, fabs(x[b0 + i]));
            int se = amax == 0 ? -127 : (int)floor(log2(amax)) - emax[k];
            if (se < -127) se = -127;
            for (size_t i = 0; i < len; i++) {
                float v = (float)ldexp(x[b0 + i], -se);   /* exact unless tiny */
                if (ldexp(v, se) != x[b0 + i]) continue;
                float want = (float)ldexp(qt_quantize1(&e, v, 0), se);
                if (!same_bits(want, y[b0 + i]))
                    fail_msg("%s: x=%a want %a got %a", t[k][0], (double)x[b0 + i], (double)want, (double)y[b0 + i]);
            }
        }
    }
    /* an all-zero block stays zero; a NaN element stays NaN and does not
     * set the scale */
    float z[4] = { 0, 0, NAN, 0.5f };
    qt_format f = P("block<fixed<8,6>,4>");
    qt_quantize(&f, z, 4, NULL);
    assert_true(z[0] == 0 && z[1] == 0 && isnan(z[2]) && z[3] == 0.5f);
    free(x); free(y);
}

/* qt_check rejects fields a type does not use (equal formats are equal bytes) */
static void t_check_canonical(void **st)
{
    qt_format f = P("fixed<8,4>");
    f.ebits = 3;
    assert_int_equal(qt_format_check(&f, NULL), QT_EINVAL);
    f = P("binary");
    f.round = QT_SR;
    qt_error err;
    assert_int_equal(qt_format_check(&f, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "rounding"));
    f = P("none");
    f.type = 200;
    assert_int_equal(qt_format_check(&f, &err), QT_EINVAL);
    assert_int_equal(qt_format_check(NULL, &err), QT_EINVAL);
    f = qt_format_none();
    assert_int_equal(qt_format_check(&f, NULL), QT_OK);
}

static void t_rand(void **st)
{
    /* a pure function; distinct streams and seeds; roughly uniform */
    assert_int_equal(qt_rand32(1, 2, 3), qt_rand32(1, 2, 3));
    assert_int_not_equal(qt_rand32(1, 2, 3), qt_rand32(1, 3, 3));
    assert_int_not_equal(qt_rand32(1, 2, 3), qt_rand32(2, 2, 3));
    assert_int_not_equal(qt_rand32(1, 2, 3), qt_rand32(1, 2, 4));
    size_t hist[16] = { 0 }, n = 1 << 20;
    for (size_t i = 0; i < n; i++) hist[qt_rand32(9, 9, i) >> 28]++;
    double chi = 0, e = (double)n / 16;
    for (int i = 0; i < 16; i++) chi += (hist[i] - e) * (hist[i] - e) / e;
    assert_true(chi < 50.0);        /* 15 dof: p ~ 1e-5 */
}

/* qt_rand32_k with a key from qt_rand_key gives qt_rand32's words (the
 * engine's integer kernels draw through it), low and high index words */
static void t_rand_key(void **st)
{
    (void)st;
    uint64_t x = 99;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t seed = x >> 7, stream = (x >> 3) ^ (uint64_t)i;
        uint64_t idx = i % 3 == 0 ? (uint64_t)i : i % 3 == 1 ? x : (x >> 20);
        assert_int_equal(qt_rand32_k(qt_rand_key(seed, stream), idx),
                         qt_rand32(seed, stream, idx));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_fast_vs_ref),
        cmocka_unit_test(t_rand_key),
        cmocka_unit_test(t_idempotent_range),
        cmocka_unit_test(t_monotone),
        cmocka_unit_test(t_threads),
        cmocka_unit_test(t_specials),
        cmocka_unit_test(t_log),
        cmocka_unit_test(t_binary_ternary_sparse),
        cmocka_unit_test(t_codebook),
        cmocka_unit_test(t_block),
        cmocka_unit_test(t_check_canonical),
        cmocka_unit_test(t_rand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
