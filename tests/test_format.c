/*
 * test_format.c -- text and JSON forms of formats: canonical round trips,
 * random round trips over the whole field space, the TensorQuant and
 * libnumber dialects with their documented meanings, and malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static qt_format P(const char *text)
{
    qt_format f;
    qt_error err;
    int rc = qt_format_parse(text, &f, &err);
    if (rc != QT_OK)
        fail_msg("parse '%s': %s", text, err.text);
    return f;
}

/* canonical texts: print(parse(t)) == t */
static const char *canonical[] = {
    "none", "fixed<8,4>", "fixed<1,0>", "fixed<32,16>", "fixed<8,-3>",
    "fixed<8,12>", "fixed<8,4,sym>", "fixed<8,4,sr>", "fixed<8,4,rna,wrap>",
    "fixed<16,8,sym,rz,wrap>", "ufixed<8,8>", "ufixed<4,0,rd>",
    "float<8,e4,b7>", "float<8,e4,b7,fn>", "float<6,e2,b1,finite>",
    "float<16,e5,b15>", "float<16,e8,b127>", "float<8,e4,b7,nosub,rz,sat>",
    "float<8,e5,b15,sat>", "float<12,e6,b40,nosub,fn,sr>", "float<4,e2,b1,finite,rd>",
    "log<4,b3>", "log<8,b63,rz>", "log<2,b0,sr>", "binary<b0>", "binary<b-3>",
    "ternary<b0,auto>", "ternary<b2,t0.5>", "ternary<b0,t0>", "cluster<4>",
    "cluster<1>", "block<float<8,e4,b7,fn>,32>", "block<fixed<8,6>,32>",
    "block<float<4,e2,b1,finite,sr>,16>", "block<fixed<4,2,sym,rz>,1>",
    "sparse<0.5>", "sparse<0>",
};

static void t_canonical(void **st)
{
    for (size_t i = 0; i < sizeof canonical / sizeof *canonical; i++) {
        char buf[QT_TEXT_MAX];
        qt_format f = P(canonical[i]), g;
        int n = qt_format_print(&f, buf, sizeof buf);
        assert_true(n > 0 && n < QT_TEXT_MAX);
        assert_string_equal(buf, canonical[i]);
        g = P(buf);
        assert_true(qt_format_equal(&f, &g));
        assert_int_equal(qt_format_check(&f, NULL), QT_OK);
    }
}

/* aliases and defaults give the same format as the explicit text */
static void t_aliases(void **st)
{
    static const char *pairs[][2] = {
        { "fp16", "float<16,e5,b15,rne,inf>" }, { "half", "float<16,e5>" },
        { "bf16", "float<16,e8,b127>" }, { "bfloat16", "float<16,e8>" },
        { "fp32", "none" }, { "fp8e4m3", "float<8,e4,b7,fn,sat>" },
        { "fp8e5m2", "float<8,e5,b15,ieee,inf>" }, { "fp4", "float<4,e2,b1,finite>" },
        { "mxfp8", "block<float<8,e4,b7,fn>,32>" },
        { "mxfp8e5m2", "block<float<8,e5,b15,sat>,32>" },
        { "mxfp6", "block<float<6,e2,b1,finite>,32>" },
        { "mxfp6e3m2", "block<float<6,e3,b3,finite>,32>" },
        { "mxfp4", "block<float<4,e2,b1,finite>,32>" },
        { "mxint8", "block<fixed<8,6,sym>,32>" },
        { "fixed<8,b4>", "fixed<8,4>" }, { " FIXED < 8 , 4 , SR > ", "fixed<8,4,sr>" },
        { "log<4>", "log<4,b3>" }, { "log<8>", "log<8,b63>" },
        { "binary", "binary<b0>" }, { "ternary", "ternary<b0,auto>" },
        { "block<fp8e4m3,32>", "block<float<8,e4,b7,fn>,32>" },
        { "block<fixed<8,6>,k32>", "block<fixed<8,6>,32>" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        qt_format a = P(pairs[i][0]), b = P(pairs[i][1]);
        if (!qt_format_equal(&a, &b))
            fail_msg("'%s' != '%s'", pairs[i][0], pairs[i][1]);
    }
}

/* TensorQuant's quantizer strings, with their kernels' meaning
 * (REFERENCES.md 1(b)): nearest = ties away, W total bits, F fractional. */
static void t_tensorquant(void **st)
{
    static const char *pairs[][2] = {
        { "nearest,16,8", "fixed<16,8,rna>" }, { "zero,8,4", "fixed<8,4,rz>" },
        { "down,8,4", "fixed<8,4,rd>" }, { "stochastic,8,4", "fixed<8,4,sr>" },
        { "logarithmic", "log<8,b63,rz>" }, { "tq:fp16", "float<16,e5,b15,rz>" },
        { "binary,1", "binary<b0>" }, { "binary,0.25", "binary<b2>" },
        { "ternary,2", "ternary<b-1,auto>" }, { "ternary,0.5,0.25", "ternary<b1,t0.5>" },
        { "sparse,0.01", "sparse<0.01>" }, { "none", "none" },
        { "tq:nearest,8,4", "fixed<8,4,rna>" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        qt_format a = P(pairs[i][0]), b = P(pairs[i][1]);
        if (!qt_format_equal(&a, &b))
            fail_msg("'%s' != '%s'", pairs[i][0], pairs[i][1]);
    }
    /* the range of nearest,8,4: [-2^(W-F-1), (2^(W-1)-1)/2^F] */
    qt_format f = P("nearest,8,4");
    assert_true(qt_max(&f) == 127.0 / 16.0);
    assert_true(qt_lowest(&f) == -8.0);
    /* ties go away from zero, as C round() */
    assert_true(qt_quantize1(&f, -1.0f / 32.0f, 0) == -1.0f / 16.0f);
    assert_true(qt_quantize1(&f, 3.0f / 32.0f, 0) == 2.0f / 16.0f);
    /* TensorQuant's logarithmic rounds |x| down to a power of two */
    f = P("logarithmic");
    assert_true(qt_quantize1(&f, 3.9f, 0) == 2.0f);
    assert_true(qt_quantize1(&f, -0.3f, 0) == -0.25f);
    /* its fp16 kernel truncates the mantissa */
    f = P("tq:fp16");
    assert_true(qt_quantize1(&f, 1.0f + 0x1.ffp-11f, 0) == 1.0f);
}

/* libnumber: FIXED N B = <1,0,N-1,B>, step 2^(2-B-N), sign-magnitude;
 * EXP N = <1,N-1,0,2^(N-2)-1>, code 0 is zero (REFERENCES.md 2(b)) */
static void t_libnumber(void **st)
{
    qt_format f = P("FIXED 15 -3");
    assert_true(qt_step(&f, 1.0) == ldexp(1.0, -10));        /* the paper's example */
    assert_true(qt_max(&f) == (ldexp(1.0, 14) - 1) * ldexp(1.0, -10));
    assert_true(qt_lowest(&f) == -qt_max(&f));              /* symmetric */
    qt_format g = P("fixed<15,10,sym>");
    assert_true(qt_format_equal(&f, &g));
    f = P("FIXED 8");
    g = P("fixed<8,6,sym>");
    assert_true(qt_format_equal(&f, &g));
    f = P("EXP 8");
    g = P("log<8,b63>");
    assert_true(qt_format_equal(&f, &g));
    f = P("EXP 6");                                          /* <1,5,0,15> */
    assert_int_equal(f.bias, 15);
    assert_true(qt_min_pos(&f) == ldexp(1.0, 1 - 15));
    assert_true(qt_max(&f) == ldexp(1.0, 31 - 15));
    f = P("EXP 4 2");
    assert_int_equal(f.bias, 2);
    f = P("FLOAT 16");
    g = P("fp16");
    assert_true(qt_format_equal(&f, &g));
    f = P("FLOAT 32");
    assert_int_equal(f.type, QT_NONE);
    /* LogQuant4 = <1,3,0,3> = EXP 4: magnitudes 2^-2 .. 2^4 */
    f = P("EXP 4");
    assert_true(qt_min_pos(&f) == 0.25 && qt_max(&f) == 16.0);
}

/* random formats over the field space: whatever passes the check must
 * print and parse back to itself, and go through JSON (also as text) */
static uint64_t rs = 88172645463325252ull;
static uint32_t rnd32(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}

static void t_random_roundtrip(void **st)
{
    int valid = 0;
    for (int it = 0; it < 200000 && valid < 20000; it++) {
        qt_format f;
        memset(&f, 0, sizeof f);
        f.type = (uint8_t)(rnd32() % QT_TYPE_COUNT);
        f.width = (uint8_t)(rnd32() % 34);
        switch (f.type) {
        case QT_NONE: f.width = 32; break;
        case QT_FIXED: case QT_UFIXED:
            f.bias = (int16_t)((int)(rnd32() % 60) - 20);
            f.round = rnd32() % 5; f.overflow = rnd32() % 2;
            if (f.type == QT_FIXED && (rnd32() & 1)) f.flags = QT_F_SYM;
            break;
        case QT_FLOAT: case QT_BLOCK:
            f.ebits = (uint8_t)(1 + rnd32() % 8);
            f.bias = (int16_t)((1 << (f.ebits - 1)) - 1 + (int)(rnd32() % 9) - 4);
            f.round = rnd32() % 5;
            f.flags = (uint8_t)((rnd32() & 1 ? QT_F_NOSUB : 0) |
                                (rnd32() % 3 == 1 ? QT_F_FN : rnd32() % 3 == 2 ? QT_F_FINITE : 0));
            f.overflow = (f.flags & (QT_F_FN | QT_F_FINITE)) ? QT_SAT : (rnd32() & 1 ? QT_INF : QT_SAT);
            if (f.type == QT_BLOCK) {
                f.etype = rnd32() & 1 ? QT_FLOAT : QT_FIXED;
                f.block = (uint16_t)(1 + rnd32() % 64);
                if (f.etype == QT_FIXED) { f.ebits = 0; f.flags = 0; f.overflow = QT_SAT; f.bias = (int16_t)(rnd32() % 12); }
            }
            break;
        case QT_LOG:
            f.bias = (int16_t)((int)(rnd32() % 300) - 150);
            f.round = rnd32() % 5;
            break;
        case QT_BINARY: f.width = 1; f.bias = (int16_t)((int)(rnd32() % 40) - 20); break;
        case QT_TERNARY:
            f.width = 2; f.bias = (int16_t)((int)(rnd32() % 40) - 20);
            if (rnd32() & 1) f.flags = QT_F_AUTO;
            else f.thresh = (float)(rnd32() % 1000) / 999.0f;
            break;
        case QT_CLUSTER: break;
        case QT_SPARSE: f.width = 32; f.thresh = (float)rnd32() / 4e9f; break;
        }
        if (qt_format_check(&f, NULL) != QT_OK) continue;
        valid++;
        char buf[QT_TEXT_MAX];
        qt_format g;
        qt_error err;
        assert_true(qt_format_print(&f, buf, sizeof buf) < QT_TEXT_MAX);
        if (qt_format_parse(buf, &g, &err) != QT_OK)
            fail_msg("print gave '%s' which does not parse: %s", buf, err.text);
        if (!qt_format_equal(&f, &g))
            fail_msg("'%s' did not round-trip", buf);
        json_t *j = qt_format_to_json(&f);
        char *s = json_dumps(j, JSON_COMPACT);
        json_t *j2 = json_loads(s, 0, NULL);
        assert_non_null(j2);
        memset(&g, 0xff, sizeof g);
        if (qt_format_from_json(j2, &g, &err) != QT_OK)
            fail_msg("JSON %s does not parse back: %s", s, err.text);
        if (!qt_format_equal(&f, &g))
            fail_msg("JSON %s did not round-trip ('%s')", s, buf);
        json_t *js = json_string(buf);
        assert_int_equal(qt_format_from_json(js, &g, &err), QT_OK);
        assert_true(qt_format_equal(&f, &g));
        json_decref(js); json_decref(j); json_decref(j2); free(s);
    }
    assert_true(valid >= 20000);
}

/* malformed or impossible text: rejected, and the message says what */
static void t_malformed(void **st)
{
    static const char *bad[][2] = {
        { "", "empty" }, { "   ", "empty" }, { "fixed<0,0>", "width 0" },
        { "fixed<33,0>", "exceeds 32" }, { "fixed<-1,0>", "negative" },
        { "ufixed<0,0>", "width 0" }, { "float<0,e0>", "width 0" },
        { "float<8,e8>", "exponent bits" }, { "float<8,e9,b7>", "exponent bits" },
        { "float<40,e8>", "exceeds 32" }, { "float<32,e1>", "mantissa" },
        { "float<8>", "exponent bits" }, { "float<8,e4,b200>", "float32" },
        { "float<8,e4,b-200>", "bias" }, { "fixed<8>", "fractional bits" },
        { "fixed<8,4", "missing '>'" }, { "fixed<8,4>>", "unbalanced" },
        { "fixed<<8,4>", "" }, { "fixed<8,x>", "unknown option" },
        { "fixed<8,4,5>", "too many" }, { "fixed<>", "empty" },
        { "fixed<8,,4>", "empty argument" }, { "fixed<8,4,rne,rz>", "twice" },
        { "fixed<8,4,wrap,sat>", "twice" }, { "fixed<8,4,inf>", "overflow" },
        { "fixed<8,200>", "out of range" }, { "fixed<1,0,sym>", "width" },
        { "ufixed<8,4,sym>", "sym" }, { "float<8,e4,wrap>", "wrap" },
        { "float<8,e4,fn,inf>", "inf" }, { "float<8,e4,fn,finite>", "one of" },
        { "float<8,e4,sym>", "sym" }, { "log<1>", "width" }, { "log<10>", "width" },
        { "log<4,b200>", "float32" }, { "log<4,e2>", "exponent" },
        { "binary<4>", "positional" }, { "binary<b300>", "scale" },
        { "ternary<b0,t-1>", "threshold" }, { "ternary<b0,t0.5,auto>", "not both" },
        { "ternary<b0,rz>", "rounding" }, { "cluster<0>", "width 0" },
        { "cluster<17>", "width" }, { "cluster<4,rz>", "rounding" },
        { "sparse", "required" }, { "sparse<-1>", "threshold" }, { "sparse<nan>", "" },
        { "block<log<4>,32>", "fixed or float" }, { "block<fixed<8,6>,0>", "block size" },
        { "block<fixed<8,6>>", "block size" }, { "block<fixed<20,6>,32>", "16" },
        { "block<block<fixed<8,6>,2>,4>", "" }, { "block<32,fixed<8,6>>", "" },
        { "block<mxfp8,32>", "" }, { "foo", "unknown format" }, { "foo<3>", "unknown format" },
        { "nearest,8,8", "F < W" }, { "nearest,8", "two integers" },
        { "nearest,8,4,2,1", "too many" }, { "round,8,4", "unknown TensorQuant" },
        { "binary,3", "powers of two" }, { "binary,-1", "positive" },
        { "sparse,x", "threshold" }, { "FIXED", "" }, { "FIXED 1", "2 bits" },
        { "FIXED x", "bits" }, { "EXP 12", "width" }, { "FLOAT 8", "16 or 32" },
        { "FLOAT 16 3", "no bias" }, { "INT 8", "unknown libnumber" },
        { "fixed<8,4> x", "" }, { "fixed<99999999999,4>", "" },
        { "fixed<8,4,e5>", "exponent bits" }, { "fixed<8,4,t0.5>", "threshold" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qt_format f;
        qt_error err;
        memset(&err, 0, sizeof err);
        int rc = qt_format_parse(bad[i][0], &f, &err);
        if (rc == QT_OK)
            fail_msg("'%s' was accepted", bad[i][0]);
        assert_true(rc == QT_EPARSE || rc == QT_EINVAL);
        assert_true(strlen(err.text) > 5);
        if (!strstr(err.text, bad[i][1]))
            fail_msg("'%s': message '%s' does not mention '%s'", bad[i][0], err.text, bad[i][1]);
    }
    /* an over-long input and NULLs */
    char *big = malloc(5000);
    memset(big, 'a', 4999); big[4999] = 0;
    qt_format f;
    qt_error err;
    assert_int_equal(qt_format_parse(big, &f, &err), QT_EPARSE);
    free(big);
    assert_int_equal(qt_format_parse(NULL, &f, &err), QT_EINVAL);
    assert_int_equal(qt_format_parse("fixed<8,4>", NULL, NULL), QT_EINVAL);
    /* a failed parse leaves the output untouched */
    qt_format keep = P("fixed<8,4>"), before = keep;
    assert_int_not_equal(qt_format_parse("fixed<0,0>", &keep, NULL), QT_OK);
    assert_true(qt_format_equal(&keep, &before));
}

static void t_json_bad(void **st)
{
    static const char *bad[][2] = {
        { "42", "object or a string" }, { "[1]", "object" }, { "{}", "'type'" },
        { "{\"type\":3}", "'type'" }, { "{\"type\":\"bogus\"}", "unknown type" },
        { "{\"type\":\"fixed\",\"width\":8}", "fractional" },
        { "{\"type\":\"fixed\",\"width\":\"8\",\"frac\":4}", "'width' must be an integer" },
        { "{\"type\":\"fixed\",\"width\":8.5,\"frac\":4}", "'width' must be an integer" },
        { "{\"type\":\"fixed\",\"width\":8,\"frac\":4,\"colour\":1}", "unknown field 'colour'" },
        { "{\"type\":\"fixed\",\"width\":0,\"frac\":0}", "width 0" },
        { "{\"type\":\"fixed\",\"width\":8,\"frac\":4,\"round\":\"up\"}", "'round'" },
        { "{\"type\":\"fixed\",\"width\":8,\"frac\":4,\"round\":1}", "'round' must be a string" },
        { "{\"type\":\"fixed\",\"width\":8,\"frac\":4,\"symmetric\":\"yes\"}", "true or false" },
        { "{\"type\":\"fixed\",\"width\":99999999999,\"frac\":4}", "out of range" },
        { "{\"type\":\"float\",\"width\":8,\"exp_bits\":4,\"specials\":\"odd\"}", "'specials'" },
        { "{\"type\":\"float\",\"width\":8,\"exp_bits\":4,\"frac\":3}", "fractional" },
        { "{\"type\":\"ternary\",\"threshold\":\"high\"}", "threshold" },
        { "{\"type\":\"block\",\"block_size\":32}", "element format is required" },
        { "{\"type\":\"block\",\"block_size\":32,\"element\":{\"type\":\"log\",\"width\":4}}", "fixed or float" },
        { "{\"type\":\"block\",\"block_size\":32,\"element\":{\"type\":\"fixed\",\"width\":0,\"frac\":0}}", "element" },
        { "{\"type\":\"block\",\"block_size\":32,\"element\":{\"type\":\"block\",\"block_size\":2,\"element\":\"fixed<8,6>\"}}", "fixed or float" },
        { "\"fixed<0,0>\"", "width 0" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_error_t je;
        json_t *j = json_loads(bad[i][0], JSON_DECODE_ANY, &je);
        qt_format f;
        qt_error err;
        assert_non_null(j);
        memset(&err, 0, sizeof err);
        int rc = qt_format_from_json(j, &f, &err);
        json_decref(j);
        if (rc == QT_OK) fail_msg("JSON %s was accepted", bad[i][0]);
        if (!strstr(err.text, bad[i][1]))
            fail_msg("JSON %s: message '%s' does not mention '%s'", bad[i][0], err.text, bad[i][1]);
    }
    /* a plain JSON form with defaults */
    json_t *j = json_loads("{\"type\":\"float\",\"width\":8,\"exp_bits\":4}", 0, NULL);
    qt_format f, g = P("float<8,e4,b7>");
    assert_int_equal(qt_format_from_json(j, &f, NULL), QT_OK);
    assert_true(qt_format_equal(&f, &g));
    json_decref(j);
}

static void t_names_and_codes(void **st)
{
    assert_string_equal(qt_strerror(QT_OK), "ok");
    assert_string_equal(qt_strerror(QT_EPARSE), "malformed input");
    assert_string_equal(qt_strerror(12345), "unknown error");
    assert_string_equal(qt_type_name(QT_BLOCK), "block");
    assert_string_equal(qt_round_name(QT_SR), "sr");
    assert_string_equal(qt_overflow_name(QT_WRAP), "wrap");
    /* a truncated print still terminates and reports the full length */
    qt_format f = P("block<float<8,e4,b7,fn>,32>");
    char small[8];
    int n = qt_format_print(&f, small, sizeof small);
    assert_int_equal(n, (int)strlen("block<float<8,e4,b7,fn>,32>"));
    assert_int_equal(strlen(small), 7);
    /* bits per value */
    assert_true(qt_bits(&f) == 8.25);
    f = P("mxfp4");
    assert_true(qt_bits(&f) == 4.25);
    f = P("ternary");
    assert_true(qt_bits(&f) == 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_canonical),
        cmocka_unit_test(t_aliases),
        cmocka_unit_test(t_tensorquant),
        cmocka_unit_test(t_libnumber),
        cmocka_unit_test(t_random_roundtrip),
        cmocka_unit_test(t_malformed),
        cmocka_unit_test(t_json_bad),
        cmocka_unit_test(t_names_and_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
