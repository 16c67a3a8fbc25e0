/*
 * test_strat_analytical.c -- noise gains against finite differences on a
 * tiny graph; the analytical strategy's closed form (offsets with round half
 * to even, B_min, widening, clamping) against hand computations with given
 * gains and a synthetic evaluator; refusals and bad options; a real run on
 * the trained LeNet-5.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../tuner/internal.h"     /* qt__gains, qt__analytical_bound */
#include "tuner_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Gains against finite differences                                          */
/* ------------------------------------------------------------------------ */

/* x (6 = 1x2x3) -> fc1 (5) -> relu -> fc2 (4 logits) */
enum { NX = 6, NH = 5, NC = 4, NS = 12 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)                     /* [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 52) - 1.0;
}

static void put32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    assert_int_equal(fwrite(b, 1, 4, f), 4);
}

/* NS random 2x3 images in IDX files in a temporary directory */
static qt_dataset *tiny_data(void)
{
    char dir[] = "/tmp/qt_gainsXXXXXX", ip[64], lp[64];
    assert_non_null(mkdtemp(dir));
    snprintf(ip, sizeof ip, "%s/img", dir);
    snprintf(lp, sizeof lp, "%s/lab", dir);
    FILE *fi = fopen(ip, "wb"), *fl = fopen(lp, "wb");
    assert_non_null(fi);
    assert_non_null(fl);
    put32(fi, 0x803); put32(fi, NS); put32(fi, 2); put32(fi, 3);
    put32(fl, 0x801); put32(fl, NS);
    for (int i = 0; i < NS * NX; i++) fputc((int)(128 + 127 * urand()), fi);
    for (int i = 0; i < NS; i++) fputc(i % NC, fl);
    fclose(fi);
    fclose(fl);
    qt_norm nm = { 1.0f / 255.0f, 0.5f, 0.25f };
    qt_dataset *d;
    qt_error err;
    assert_int_equal(qt_dataset_load_idx(ip, lp, &nm, &d, &err), QT_OK);
    unlink(ip);
    unlink(lp);
    rmdir(dir);
    return d;
}

static qt_graph *tiny_graph(int *fc1, int *relu, int *fc2)
{
    qt_graph *g = qt_graph_new();
    qt_error err;
    qt_attr a;
    assert_non_null(g);
    int x = qt_graph_input(g, "x", 1, 2, 3, &err);
    assert_int_equal(x, 0);
    memset(&a, 0, sizeof a);
    a.out = NH; a.bias = 1;
    *fc1 = qt_graph_add(g, QT_OP_DENSE, "fc1", &x, 1, &a, &err);
    *relu = qt_graph_add(g, QT_OP_RELU, "relu", fc1, 1, NULL, &err);
    a.out = NC;
    *fc2 = qt_graph_add(g, QT_OP_DENSE, "fc2", relu, 1, &a, &err);
    assert_true(*fc1 > 0 && *relu > 0 && *fc2 > 0);
    /* random weights and biases (biases too, so some units are off) */
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 2; k++) {
            qt_tensor *t = qt_graph_param(g, n ? *fc2 : *fc1, k);
            for (size_t i = 0; i < t->size; i++) t->data[i] = (float)(k ? 0.5 * urand() : urand());
        }
    return g;
}

/* what a finite difference perturbs */
enum { P_NONE, P_X, P_W1, P_B1, P_A1, P_R1, P_W2, P_B2, P_Z, P_KINDS };
static const int p_size[P_KINDS] = { 0, NX, NH * NX, NH, NH, NH, NC * NH, NC, NC };

typedef struct net { double w1[NH * NX], b1[NH], w2[NC * NH], b2[NC]; } net;

/* the float graph's function in double, with one value moved by d */
static void ref_forward(const net *p0, const float *xf, int kind, int idx, double d, double *z)
{
    net p = *p0;
    double x[NX], a[NH], r[NH];
    for (int i = 0; i < NX; i++) x[i] = xf[i];
    if (kind == P_X) x[idx] += d;
    if (kind == P_W1) p.w1[idx] += d;
    if (kind == P_B1) p.b1[idx] += d;
    if (kind == P_W2) p.w2[idx] += d;
    if (kind == P_B2) p.b2[idx] += d;
    for (int h = 0; h < NH; h++) {
        a[h] = p.b1[h];
        for (int i = 0; i < NX; i++) a[h] += p.w1[h * NX + i] * x[i];
    }
    if (kind == P_A1) a[idx] += d;
    for (int h = 0; h < NH; h++) r[h] = a[h] > 0 ? a[h] : 0;
    if (kind == P_R1) r[idx] += d;
    for (int c = 0; c < NC; c++) {
        z[c] = p.b2[c];
        for (int h = 0; h < NH; h++) z[c] += p.w2[c * NH + h] * r[h];
    }
    if (kind == P_Z) z[idx] += d;
}

static void gains_match_finite_differences(void **st)
{
    (void)st;
    int fc1, relu, fc2;
    qt_graph *g = tiny_graph(&fc1, &relu, &fc2);
    qt_dataset *d = tiny_data();
    qt_error err;
    net p;
    for (int i = 0; i < NH * NX; i++) p.w1[i] = qt_graph_param(g, fc1, 0)->data[i];
    for (int i = 0; i < NH; i++) p.b1[i] = qt_graph_param(g, fc1, 1)->data[i];
    for (int i = 0; i < NC * NH; i++) p.w2[i] = qt_graph_param(g, fc2, 0)->data[i];
    for (int i = 0; i < NC; i++) p.b2[i] = qt_graph_param(g, fc2, 1)->data[i];

    /* the coordinates, one per kind, plus one without a gain */
    struct { int node; qt_qpoint pt; int kind; } cs[] = {
        { 0, QT_QP_OUTPUT, P_X }, { fc1, QT_QP_WEIGHTS, P_W1 }, { fc1, QT_QP_BIAS, P_B1 },
        { fc1, QT_QP_OUTPUT, P_A1 }, { relu, QT_QP_OUTPUT, P_R1 }, { fc2, QT_QP_WEIGHTS, P_W2 },
        { fc2, QT_QP_BIAS, P_B2 }, { fc2, QT_QP_OUTPUT, P_Z }, { fc1, QT_QP_INTRINSIC, P_NONE },
    };
    enum { NCO = sizeof cs / sizeof cs[0] };
    qt_coord co[NCO];
    double E[NCO], ref[NCO];
    memset(co, 0, sizeof co);
    for (int k = 0; k < NCO; k++) { co[k].node = cs[k].node; co[k].point = cs[k].pt; }

    for (int pass = 0; pass < 2; pass++) {
        size_t N = pass == 0 ? NS : 5;            /* all images, then the first 5 */
        assert_int_equal(qt__gains(g, d, pass == 0 ? 1000 : N, co, NCO, E, &err), QT_OK);
        /* the reference: the margins' derivatives by central differences */
        memset(ref, 0, sizeof ref);
        const float *img = qt_dataset_images(d);
        for (size_t s = 0; s < N; s++) {
            double z[NC], zp[NC], zm[NC];
            const qt_tensor *o;
            ref_forward(&p, img + s * NX, P_NONE, 0, 0, z);
            assert_int_equal(qt_forward(g, NULL, img + s * NX, 1, 0, &o, &err), QT_OK);
            for (int c = 0; c < NC; c++) assert_true(fabs(z[c] - o->data[c]) < 1e-5);
            int y = 0;
            for (int c = 1; c < NC; c++) if (z[c] > z[y]) y = c;
            for (int k = 0; k < NCO; k++) {
                if (cs[k].kind == P_NONE) continue;
                for (int h = 0; h < p_size[cs[k].kind]; h++) {
                    const double dd = 1e-6;
                    ref_forward(&p, img + s * NX, cs[k].kind, h, dd, zp);
                    ref_forward(&p, img + s * NX, cs[k].kind, h, -dd, zm);
                    for (int i = 0; i < NC; i++) {
                        double m = z[y] - z[i];
                        if (i == y || m == 0) continue;
                        double dm = ((zp[y] - zp[i]) - (zm[y] - zm[i])) / (2 * dd);
                        ref[k] += dm * dm / (24 * m * m);
                    }
                }
            }
        }
        for (int k = 0; k < NCO; k++) {
            if (cs[k].kind == P_NONE) { assert_true(isnan(E[k])); continue; }
            ref[k] /= (double)N;
            if (pass == 0)
                fprintf(stderr, "  %-5s %-7s E = %.6e  finite differences %.6e\n",
                        qt_graph_node_name(g, cs[k].node), qt_qpoint_name(cs[k].pt), E[k], ref[k]);
            assert_true(ref[k] > 0);
            assert_true(fabs(E[k] - ref[k]) <= 1e-3 * ref[k]);
        }
        /* the logits' own gain: sum over i of 2 / (24 m_i^2), by the definition */
        assert_true(E[7] > 0);
    }
    /* a data set that does not fit the model */
    qt_dataset *fm;
    if (qt_dataset_fashion_mnist(QT_SPLIT_TEST, &fm, &err) == QT_OK) {
        assert_int_equal(qt__gains(g, fm, 10, co, NCO, E, &err), QT_EINVAL);
        assert_non_null(strstr(err.text, "input"));
        qt_dataset_free(fm);
    }
    qt_dataset_free(d);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* The closed form with given gains                                          */
/* ------------------------------------------------------------------------ */

/* a custom search of job (the "space" and "strategy" given) against the
 * synthetic evaluator "need" (tuner_testutil.h: tensor i needs at least
 * need[i] bits), or its error */
static int synth_search(const char *job, qt_graph *g, tu_need *y, qt_search **s, qt_error *err)
{
    return tu_search_rc(job, g, tu_need_eval, y, 0, s, err);
}

#define GAINS "\"gains\":[1,2,8,32,3,100]"
#define FC_WB(w) "{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],\"widths\":" w "}"

static void widths_of(const qt_cand *c, int n, int *w)
{
    for (int i = 0; i < n; i++) w[i] = c->fmt[i].type == QT_NONE ? 32 : c->fmt[i].width;
}

/* gains 1, 2, 8, 32, 3, 100 on fc1..fc3 weights and bias (all fixed, range
 * 1, so Delta = 2^(2-B)): offsets round(log2 sqrt(E/1)) = 0, 0 (0.5: half
 * to even), 2 (1.5), 2 (2.5: half to even), 1 (0.79), 3 (3.32); the bound
 * at B_min = b is 16 4^-b (1 + 2 + 8/16 + 32/16 + 3/4 + 100/64) = 125 4^-b,
 * and the budget 0.9 - 0.99 x 0.9 = 0.009: 125/4096 = 0.0305 at 6 does not
 * fit, 125/16384 = 0.00763 at 7 does; so B_min = 7 */
static void closed_form(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    qt_search *s;
    qt_error err;
    const int want[6] = { 7, 7, 9, 9, 8, 10 };
    int w[6];
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  GAINS "},\"space\":[" FC_WB("[2,16]") "]}", g, &y, &s, &err),
                     QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), 1);              /* it passes: done */
    const qt_cand *c;
    const qt_result *r;
    qt_search_result(s, 0, &c, &r);
    widths_of(c, 6, w);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c->fmt[i].type, QT_FIXED);
        assert_int_equal(w[i], want[i]);
        assert_true(fabs(qt_step(&c->fmt[i], 0) - ldexp(1.0, 2 - w[i])) == 0);
    }
    assert_true(r->feasible);
    fprintf(stderr, "  reason: %s\n", c->reason);
    assert_non_null(strstr(c->reason, "B_min = 7,"));
    assert_non_null(strstr(c->reason, "fc2 weights +2"));
    /* the bound, by hand, and B_min - 1 does not fit */
    const double E[6] = { 1, 2, 8, 32, 3, 100 };
    assert_true(fabs(qt__analytical_bound(s, E, c) - 125.0 / 16384) < 1e-15);
    qt_cand *c6 = qt_cand_new(s);
    for (int i = 0; i < 6; i++)
        assert_int_equal(qt_search_format(s, i, QT_FIXED, want[i] - 1, 0, &c6->fmt[i]), QT_OK);
    assert_true(fabs(qt__analytical_bound(s, E, c6) - 125.0 / 4096) < 1e-15);
    assert_true(qt__analytical_bound(s, E, c6) > 0.009);
    /* float32 tensors add nothing; other types have no bound */
    c6->fmt[0].type = QT_NONE;
    assert_true(fabs(qt__analytical_bound(s, E, c6) - (125.0 - 16 * 1) / 4096) < 1e-15);
    assert_int_equal(qt_search_format(s, 1, QT_FLOAT, 8, 0, &c6->fmt[1]), QT_OK);
    assert_true(isnan(qt__analytical_bound(s, E, c6)));
    qt_cand_free(c6);
    qt_search_free(s);

    /* the first proposal fails (fc2's weights need 10): B_min + 1 passes */
    tu_need_clear(&y);
    y.need[2] = 10;
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  GAINS "},\"space\":[" FC_WB("[2,16]") "]}", g, &y, &s, &err),
                     QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), 2);
    qt_search_result(s, 0, &c, &r);
    assert_false(r->feasible);
    qt_search_result(s, 1, &c, &r);
    assert_true(r->feasible);
    widths_of(c, 6, w);
    for (int i = 0; i < 6; i++) assert_int_equal(w[i], want[i] + 1);
    fprintf(stderr, "  reason: %s\n", c->reason);
    assert_non_null(strstr(c->reason, "B_min = 8,"));
    assert_non_null(strstr(c->reason, "B_min = 7 failed"));
    int feasible;
    assert_true(qt_search_best(s, NULL, &feasible) == c);
    assert_true(feasible);
    qt_search_free(s);

    /* clamping: B_min forced to 4 gives 4 4 6 6 5 7, clamped to fc1 [6,16]
     * and fc3 [2,6] */
    tu_need_clear(&y);
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  GAINS ",\"b_min\":4},\"space\":[" FC_WB("[2,16]") ","
                                  "{\"nodes\":\"fc1\",\"points\":[\"weights\",\"bias\"],\"widths\":[6,16]},"
                                  "{\"nodes\":\"fc3\",\"points\":[\"weights\",\"bias\"],\"widths\":[2,6]}]}",
                                  g, &y, &s, &err), QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), 1);
    qt_search_result(s, 0, &c, &r);
    widths_of(c, 6, w);
    const int clamped[6] = { 6, 6, 6, 6, 5, 6 };
    for (int i = 0; i < 6; i++) assert_int_equal(w[i], clamped[i]);
    assert_non_null(strstr(c->reason, "B_min = 4 (forced)"));
    qt_search_free(s);

    /* never feasible: widened until every tensor is at its wmax (8):
     * 5 5 7 7 6 8, 6 6 8 8 7 8, 7 7 8 8 8 8, 8 8 8 8 8 8, then done */
    tu_need_clear(&y);
    y.need[0] = 20;
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  GAINS ",\"b_min\":5},\"space\":[" FC_WB("[2,8]") "]}",
                                  g, &y, &s, &err), QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), 4);
    for (int k = 0; k < 4; k++) {
        qt_search_result(s, k, &c, &r);
        widths_of(c, 6, w);
        assert_false(r->feasible);
        assert_int_equal(w[0], 5 + k);
        assert_int_equal(w[5], 8);
    }
    for (int i = 0; i < 6; i++) assert_int_equal(w[i], 8);
    qt_search_free(s);

    /* nothing fits the budget (r = 1: no loss allowed): the widest */
    tu_need_clear(&y);
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  GAINS "},\"constraint\":{\"relative\":1},\"space\":["
                                  FC_WB("[2,12]") "]}", g, &y, &s, &err), QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), 1);
    qt_search_result(s, 0, &c, &r);
    widths_of(c, 6, w);
    for (int i = 0; i < 6; i++) assert_int_equal(w[i], 12);
    assert_non_null(strstr(c->reason, "none fits"));
    qt_search_free(s);
    qt_graph_free(g);
}

/* ufixed for relu outputs; equal gains give fixed one bit more than ufixed
 * (its step is twice as large at the same width and range) */
static void types_and_ranges(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    qt_search *s;
    qt_error err;
    /* coordinates: fc1 weights, relu1 output, fc2 weights, relu2 output */
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  "\"gains\":[1,1,1,4]},\"space\":["
                                  "{\"nodes\":\"fc[12]\",\"types\":[\"fixed\",\"ufixed\"]},"
                                  "{\"nodes\":\"relu*\",\"points\":[\"output\"],"
                                  "\"types\":[\"fixed\",\"ufixed\"]}]}", g, &y, &s, &err), QT_OK);
    const qt_coord *co;
    assert_int_equal(qt_search_coords(s, &co), 4);
    assert_int_equal(co[1].point, QT_QP_OUTPUT);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_cand *c;
    qt_search_result(s, 0, &c, NULL);
    assert_int_equal(c->fmt[0].type, QT_FIXED);
    assert_int_equal(c->fmt[1].type, QT_UFIXED);
    assert_int_equal(c->fmt[2].type, QT_FIXED);
    assert_int_equal(c->fmt[3].type, QT_UFIXED);
    int b = c->fmt[1].width;                         /* B_min */
    assert_int_equal(c->fmt[0].width, b + 1);
    assert_int_equal(c->fmt[2].width, b + 1);
    assert_int_equal(c->fmt[3].width, b + 1);        /* 4x the gain */
    /* every noise term within [1/2, 2] of the smallest */
    double E[4] = { 1, 1, 1, 4 }, t[4], lo = INFINITY;
    for (int i = 0; i < 4; i++) {
        double d = qt_step(&c->fmt[i], 0);
        t[i] = E[i] * d * d;
        if (t[i] < lo) lo = t[i];
    }
    for (int i = 0; i < 4; i++) assert_true(t[i] <= 2 * lo);
    qt_search_free(s);
    qt_graph_free(g);
}

/* refusals and bad options name what is wrong */
static void refusals(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    qt_search *s = NULL;
    qt_error err;
    struct { const char *job, *msg[2]; } bad[] = {
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1,1]},\"space\":"
          "[{\"nodes\":\"fc*\"},{\"nodes\":\"fc2\",\"types\":[\"float\",\"log\"]}]}",
          { "'fc2' weights", "fixed" } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1,1]},\"space\":"
          "[{\"nodes\":\"fc*\",\"points\":[\"intrinsic\"]}]}", { "'fc1' intrinsic", NULL } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1,1],"
          "\"speed\":2},\"space\":[{\"nodes\":\"fc*\"}]}", { "strategy.speed", "samples" } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1]},\"space\":"
          "[{\"nodes\":\"fc*\"}]}", { "strategy.gains", "3 numbers" } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,-1,1]},"
          "\"space\":[{\"nodes\":\"fc*\"}]}", { "strategy.gains[1]", NULL } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,\"x\",1]},"
          "\"space\":[{\"nodes\":\"fc*\"}]}", { "strategy.gains[1]", NULL } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1,1],"
          "\"b_min\":0},\"space\":[{\"nodes\":\"fc*\"}]}", { "strategy.b_min", "1..32" } },
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1,1],"
          "\"samples\":0},\"space\":[{\"nodes\":\"fc*\"}]}", { "strategy.samples", NULL } },
        { "{\"model\":\"mlp\",\"strategy\":\"analytical\",\"space\":[{\"nodes\":\"fc*\"}]}",
          { "strategy.gains", NULL } },                     /* custom: no data */
        { "{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\",\"gains\":[1,1,1]},"
          "\"constraint\":{\"metric\":\"loss\",\"relative\":0.9},\"space\":[{\"nodes\":\"fc*\"}]}",
          { "strategy.b_min", "loss" } },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err.text[0] = 0;
        assert_int_equal(synth_search(bad[k].job, g, &y, &s, &err), QT_EINVAL);
        assert_null(s);
        fprintf(stderr, "  %s\n", err.text);
        for (int m = 0; m < 2; m++)
            if (bad[k].msg[m]) assert_non_null(strstr(err.text, bad[k].msg[m]));
    }
    assert_int_equal(y.calls, 0);
    /* a loss constraint with b_min forced is fine */
    assert_int_equal(synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"analytical\","
                                  "\"gains\":[1,1,1],\"b_min\":6},\"constraint\":{\"metric\":"
                                  "\"loss\",\"relative\":0.9},\"space\":[{\"nodes\":\"fc*\"}]}",
                                  g, &y, &s, &err), QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), 1);
    qt_search_free(s);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* The allocation against brute force                                        */
/* ------------------------------------------------------------------------ */

/* tensor i at option o (width 2 + o, 2..8) costs v[i] (2 + o) and adds
 * a[i] 4^-(2 + o) to the drop; a second kind has an option that is cheap
 * and quiet (a type that fits the tensor) */
typedef struct alloc_t { int n; double v[4], a[4]; int calls; } alloc_t;

static double alloc_cost(void *u, const int *ch)
{
    alloc_t *t = u;
    double c = 0;
    for (int i = 0; i < t->n; i++) c += t->v[i] * (2 + ch[i]);
    return c;
}

static double alloc_drop(void *u, const int *ch)
{
    alloc_t *t = u;
    double d = 0;
    t->calls++;
    for (int i = 0; i < t->n; i++) d += t->a[i] * ldexp(1.0, -2 * (2 + ch[i]));
    return d;
}

/* the cheapest choice within the budget by brute force (7^n) */
static double brute(alloc_t *t, double budget, int *best)
{
    int ch[4] = { 0 }, total = 1;
    double bc = INFINITY;
    for (int i = 0; i < t->n; i++) total *= 7;
    for (int k = 0; k < total; k++) {
        int x = k;
        for (int i = 0; i < t->n; i++) { ch[i] = x % 7; x /= 7; }
        double c = alloc_cost(t, ch);
        if (alloc_drop(t, ch) <= budget && c < bc) {
            bc = c;
            memcpy(best, ch, sizeof ch);
        }
    }
    return bc;
}

static void allocation(void **st)
{
    (void)st;
    const int nopt[4] = { 7, 7, 7, 7 };
    struct { alloc_t t; double budget; } cases[] = {
        { { 3, { 100, 1000, 10 }, { 1, 16, 64 }, 0 }, 0.01 },
        { { 3, { 100, 1000, 10 }, { 1, 16, 64 }, 0 }, 0.002 },
        { { 4, { 150, 2400, 48000, 840 }, { 5, 40, 8, 30 }, 0 }, 0.02 },
        { { 4, { 150, 2400, 48000, 840 }, { 5, 40, 8, 30 }, 0 }, 0.003 },
        { { 4, { 1, 1, 1, 1 }, { 1, 1, 1, 1 }, 0 }, 0.05 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        alloc_t *t = &cases[k].t;
        int ch[4] = { 6, 6, 6, 6 }, want[4];
        double bc = brute(t, cases[k].budget, want);
        t->calls = 0;
        int moves = qt__allocate(t->n, nopt, alloc_cost, alloc_drop, t, cases[k].budget, ch);
        fprintf(stderr, "  allocation %zu: %d moves, %d drops, cost %g (brute force %g):",
                k, moves, t->calls, alloc_cost(t, ch), bc);
        for (int i = 0; i < t->n; i++) fprintf(stderr, " %d/%d", 2 + ch[i], 2 + want[i]);
        fprintf(stderr, "\n");
        assert_true(moves > 0);
        assert_true(alloc_drop(t, ch) <= cases[k].budget);
        assert_true(fabs(alloc_cost(t, ch) - bc) < 1e-9);
        /* deterministic: the same again */
        int ch2[4] = { 6, 6, 6, 6 };
        qt__allocate(t->n, nopt, alloc_cost, alloc_drop, t, cases[k].budget, ch2);
        assert_memory_equal(ch, ch2, sizeof ch);
    }
    /* nothing fits: the start is kept */
    alloc_t t = { 2, { 1, 1 }, { 1e6, 1e6 }, 0 };
    int ch[2] = { 6, 6 };
    assert_int_equal(qt__allocate(2, nopt, alloc_cost, alloc_drop, &t, 1e-3, ch), 0);
    assert_int_equal(ch[0], 6);
    assert_int_equal(ch[1], 6);
}

/* ------------------------------------------------------------------------ */
/* A real run                                                                */
/* ------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void lenet5(void **st)
{
    (void)st;
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    double t0 = now();
    assert_int_equal(qt_job_parse("{\"model\":\"" QT_SOURCE_DIR "/experiments/models/lenet5.qtck\","
                                  "\"strategy\":{\"name\":\"analytical\",\"plan\":\"offsets\"},"
                                  "\"val_limit\":2000,"
                                  "\"constraint\":{\"relative\":0.99},\"space\":["
                                  "{\"nodes\":\"*\",\"types\":[\"fixed\",\"ufixed\"],\"widths\":[2,16]},"
                                  "{\"nodes\":\"relu*\",\"points\":[\"output\"],"
                                  "\"types\":[\"fixed\",\"ufixed\"],\"widths\":[2,16]}]}",
                                  &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    double t1 = now();
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    double t2 = now();
    const qt_coord *co;
    int n = qt_search_coords(s, &co), evals = qt_search_evals(s);
    assert_int_equal(n, 9);
    const qt_graph *g = qt_search_graph(s);
    const qt_result *b = qt_search_baseline(s);
    /* the gains again, to show them (the strategy keeps its own) */
    double E[9];
    assert_int_equal(qt__search_gains(s, 500, 500, E, &err), QT_OK);
    fprintf(stderr, "  lenet5: float top-1 %.2f %%, threshold %.2f %%, budget %.3f %%; "
            "set-up %.1f s (gains included), run %.1f s\n", 100 * b->top1,
            100 * qt_search_threshold(s), 100 * (b->top1 - qt_search_threshold(s)), t1 - t0,
            t2 - t1);
    for (int k = 0; k < evals; k++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, k, &c, &r);
        fprintf(stderr, "  eval %d: %s\n    top-1 %.2f %% on %zu images, %s, weight bits %.0f, "
                "compression %.2fx, bound %.3f %%\n", k + 1, c->reason, 100 * r->top1, r->images,
                r->feasible ? "passes" : "fails", r->weight_bits, r->compression,
                100 * qt__analytical_bound(s, E, c));
        if (k == evals - 1 || r->feasible)
            for (int i = 0; i < n; i++) {
                double d = qt_step(&c->fmt[i], 0);
                fprintf(stderr, "    %-6s %-7s E %.3e  absmax %7.3f  %-6s %2d bits  E*step^2 "
                        "%.2e\n", qt_graph_node_name(g, co[i].node), qt_qpoint_name(co[i].point),
                        E[i], co[i].absmax, qt_type_name((qt_type)c->fmt[i].type),
                        c->fmt[i].width, E[i] * d * d);
            }
    }
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    assert_true(evals >= 1 && evals <= 3);
    fprintf(stderr, "  answer: %d evaluations, top-1 %.2f %%, %.2fx weight compression "
            "(%.2f bits per weight)\n", evals, 100 * r->top1, r->compression,
            32.0 / r->compression);
    for (int i = 0; i < n; i++) {
        assert_true(E[i] > 0 && isfinite(E[i]));
        if (co[i].point == QT_QP_OUTPUT) assert_int_equal(best->fmt[i].type, QT_UFIXED);
        else assert_int_equal(best->fmt[i].type, QT_FIXED);
    }
    /* the first proposal is the closed form of these gains: offsets from
     * the range-scaled gains, B_min the smallest that fits */
    const qt_cand *c0;
    qt_search_result(s, 0, &c0, NULL);
    const char *at = strstr(c0->reason, "B_min = ");
    int bmin = 0;
    assert_non_null(at);
    assert_int_equal(sscanf(at, "B_min = %d", &bmin), 1);
    double eh[9], emin = INFINITY;
    for (int i = 0; i < n; i++) {
        qt_format f;
        assert_int_equal(qt_search_format(s, i, (qt_type)c0->fmt[i].type, 16, 0, &f), QT_OK);
        double rr = qt_step(&f, 0) * 32768;
        eh[i] = E[i] * rr * rr;
        if (eh[i] < emin) emin = eh[i];
    }
    qt_cand *lower = qt_cand_new(s);
    for (int i = 0; i < n; i++) {
        int w = bmin + (int)nearbyint(0.5 * log2(eh[i] / emin));
        w = w < 2 ? 2 : w > 16 ? 16 : w;
        assert_int_equal(c0->fmt[i].width, w);
        w = bmin - 1 + (int)nearbyint(0.5 * log2(eh[i] / emin));
        w = w < 2 ? 2 : w > 16 ? 16 : w;
        assert_int_equal(qt_search_format(s, i, (qt_type)c0->fmt[i].type, w, 0, &lower->fmt[i]),
                         QT_OK);
    }
    double budget = b->top1 - qt_search_threshold(s);
    /* B_min is the smallest whose predicted drop (the estimate on 2000
     * images) fits the budget; the bound is far above it (the Chebyshev
     * step and 1/m^2 of near-ties) */
    qt__margins *M;
    assert_int_equal(qt__margins_new(s, 2000, NULL, &M, &err), QT_OK);
    double d0 = qt__drop_estimate(M, s, c0), d1 = qt__drop_estimate(M, s, lower);
    const qt_result *r0;
    qt_search_result(s, 0, NULL, &r0);
    fprintf(stderr, "  B_min = %d: predicted drop %.3f %%, measured %.3f %%; at B_min - 1: "
            "predicted %.3f %% (budget %.3f %%); bound %.3g %%\n", bmin, 100 * d0,
            100 * (b->top1 - r0->top1), 100 * d1, 100 * budget,
            100 * qt__analytical_bound(s, E, c0));
    assert_true(d0 <= budget);
    assert_true(d1 > budget);
    assert_true(fabs(d0 - (b->top1 - r0->top1)) < 0.005);     /* within half a point */
    assert_true(qt__analytical_bound(s, E, c0) > budget);
    /* the estimate grows with the noise: every tensor one bit narrower
     * predicts more, and the float model predicts nothing */
    assert_true(d1 > d0);
    qt_cand *fl = qt_cand_new(s);
    assert_true(qt__drop_estimate(M, s, fl) == 0);
    /* a weight's noise is measured on the tensor: fixed<8> at the fitted
     * bias near the format's step^2/12 (the error is about uniform when the
     * step is small); cluster<8>, which the bound cannot price, has one */
    for (int i = 0; i < n; i++) {
        if (co[i].point != QT_QP_WEIGHTS) continue;
        qt_format f8, k8;
        assert_int_equal(qt_search_format(s, i, QT_FIXED, 8, 0, &f8), QT_OK);
        assert_int_equal(qt_search_format(s, i, QT_CLUSTER, 8, 0, &k8), QT_OK);
        double v = qt__noise(M, s, i, &f8), vk = qt__noise(M, s, i, &k8);
        assert_true(v > 0.5 * qt_noise_var(&f8, 0) && v < 1.5 * qt_noise_var(&f8, 0));
        assert_true(vk >= 0 && isfinite(vk));
    }
    qt_cand_free(fl);
    qt__margins_free(M);
    qt_cand_free(lower);
    int w0[9];
    for (int i = 0; i < n; i++) w0[i] = c0->fmt[i].width;
    qt_search_free(s);
    qt_job_clear(&sp);

    /* the same gains given, B_min forced far below what the bound allows:
     * the widening step on the engine, up to the first width that passes */
    char job[1024];
    int at2 = snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/"
                       "lenet5.qtck\",\"strategy\":{\"name\":\"analytical\",\"b_min\":3,"
                       "\"gains\":[");
    for (int i = 0; i < n; i++)
        at2 += snprintf(job + at2, sizeof job - (size_t)at2, "%s%.17g", i ? "," : "", E[i]);
    snprintf(job + at2, sizeof job - (size_t)at2, "]},\"val_limit\":2000,\"space\":["
             "{\"nodes\":\"*\",\"types\":[\"fixed\",\"ufixed\"],\"widths\":[2,16]},"
             "{\"nodes\":\"relu*\",\"points\":[\"output\"],"
             "\"types\":[\"fixed\",\"ufixed\"],\"widths\":[2,16]}]}");
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    assert_int_equal(qt_search_new(&sp, NULL, &s, &err), QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    evals = qt_search_evals(s);
    for (int k = 0; k < evals; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, &r);
        fprintf(stderr, "  forced, eval %d: %s\n    top-1 %.2f %% on %zu images, %s, "
                "compression %.2fx\n", k + 1, c->reason, 100 * r->top1, r->images,
                r->feasible ? "passes" : "fails", r->compression);
        assert_int_equal(r->feasible, k == evals - 1);
        for (int i = 0; i < n; i++) assert_int_equal(c->fmt[i].width - w0[i], 3 + k - bmin);
    }
    assert_true(evals >= 2 && evals <= 3);
    qt_search_free(s);
    qt_job_clear(&sp);
}

/* ------------------------------------------------------------------------ */
/* Training jobs: Sakr & Shanbhag's gradient and accumulator precisions      */
/* ------------------------------------------------------------------------ */

/* per node, over the epochs of an independent float training run */
#define TR_NODES 64
typedef struct tr_st {
    double gw_min[TR_NODES], gw_max[TR_NODES], ga_min[TR_NODES], ga_max[TR_NODES], x2[TR_NODES];
} tr_st;

static void tr_epoch(void *user, int epoch, const qt_stats *st)
{
    tr_st *t = user;
    for (int k = 0; k < TR_NODES; k++) {
        const qt_tstats *w = qt_stats_get(st, k, QT_ST_GRAD_WEIGHTS);
        const qt_tstats *a = qt_stats_get(st, k, QT_ST_GRAD_ACT);
        const qt_tstats *x = qt_stats_get(st, k, QT_ST_ACT);
        if (w && w->count) {
            double sd = qt_tstats_std(w);
            if (epoch == 0 || sd < t->gw_min[k]) t->gw_min[k] = sd;
            if (sd > t->gw_max[k]) t->gw_max[k] = sd;
        }
        if (a && a->count) {
            double sd = qt_tstats_std(a);
            if (epoch == 0 || sd < t->ga_min[k]) t->ga_min[k] = sd;
            if (sd > t->ga_max[k]) t->ga_max[k] = sd;
        }
        if (x && x->count) t->x2[k] = x->sum2 / (double)x->count;
    }
}

/* A training job's search and the same float training run again on its
 * own (the job's model, first `train` images, epochs, lr 0.05, seed 7) with
 * every epoch's statistics in t: what the rules are recomputed from */
typedef struct tr_job {
    qt_job_spec  sp;
    qt_search   *s;
    qt_graph    *g;
    qt_dataset  *tr, *sub;
    qt_stats    *ss;
    qt_train_opts to;
    tr_st        t;
} tr_job;

static void tr_job_start(tr_job *j, const char *job, const char *model, size_t train, int epochs)
{
    qt_error err;
    memset(j, 0, sizeof *j);
    assert_int_equal(qt_job_parse(job, &j->sp, &err), QT_OK);
    int rc = qt_search_new(&j->sp, NULL, &j->s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_model_load(model, &j->g, &err), QT_OK);
    assert_true(qt_graph_nodes(j->g) <= TR_NODES);
    assert_int_equal(qt_job_dataset(&j->sp, QT_SPLIT_TRAIN, &j->tr, &err), QT_OK);
    assert_int_equal(qt_dataset_subset(j->tr, 0, 0, train, &j->sub, &err), QT_OK);
    j->ss = qt_stats_new(j->g);
    j->to = qt_train_defaults();
    j->to.epochs = epochs;
    j->to.lr = 0.05;
    j->to.seed = 7;
    j->to.stats = j->ss;
    j->to.epoch_cb = tr_epoch;
    j->to.user = &j->t;
    assert_int_equal(qt_train(j->g, NULL, j->sub, &j->to, NULL, &err), QT_OK);
    assert_int_equal(qt_search_run(j->s, NULL, NULL, &err), QT_OK);
    assert_true(qt_search_evals(j->s) >= 1);
}

static void tr_job_end(tr_job *j)
{
    qt_stats_free(j->ss);
    qt_dataset_free(j->sub);
    qt_dataset_free(j->tr);
    qt_graph_free(j->g);
    qt_search_free(j->s);
    qt_job_clear(&j->sp);
}

static void training_job(void **st)
{
    (void)st;
    const char *job =
        "{\"model\":\"lenet5\",\"kind\":\"training\",\"epochs\":2,\"lr\":0.05,"
        "\"train_limit\":3000,\"val_limit\":1000,\"seed\":7,"
        "\"constraint\":{\"metric\":\"top1\",\"relative\":0.97},\"strategy\":\"analytical\","
        "\"space\":[{\"nodes\":\"conv*\",\"points\":[\"weights\",\"grad_weights\","
        "\"accumulator\"],\"widths\":[2,32]},"
        "{\"nodes\":\"fc*\",\"points\":[\"weights\",\"grad_weights\",\"accumulator\","
        "\"grad_output\"],\"widths\":[2,32]},"
        "{\"nodes\":\"pool*\",\"points\":[\"output\",\"grad_output\"],\"types\":[\"fixed\","
        "\"ufixed\"],\"widths\":[2,32]}]}";
    tr_job J;
    tr_job_start(&J, job, "lenet5", 3000, 2);
    qt_search *s = J.s;
    qt_graph *g = J.g;
    const tr_st t = J.t;
    const qt_train_opts to = J.to;
    const qt_cand *c0;
    const qt_result *r0;
    qt_search_result(s, 0, &c0, &r0);
    fprintf(stderr, "  %s\n", c0->reason);
    const qt_coord *co;
    int n = qt_search_coords(s, &co), seen[QT_QP_COUNT] = { 0 };
    for (int i = 0; i < n; i++) {
        const qt_format *f = &c0->fmt[i];
        int k = co[i].node, eR, eD;
        const char *name = qt_graph_node_name(g, k);
        if (co[i].point == QT_QP_GRAD_WEIGHTS) {
            eR = (int)ceil(log2(2 * t.gw_max[k] / sqrt(0.1)));
            eD = (int)floor(log2(t.gw_min[k] / 4));
            /* the rule's intent: the step within [sigma_min/8, sigma_min/4] */
            assert_true(ldexp(1.0, -f->bias) <= t.gw_min[k] / 4);
            assert_true(ldexp(1.0, -f->bias) > t.gw_min[k] / 8);
        } else if (co[i].point == QT_QP_ACCUMULATOR) {
            double dgw = ldexp(1.0, (int)floor(log2(t.gw_min[k] / 4)));
            const qt_tensor *w = qt_graph_param(g, k, 0);
            double mx = 0;
            for (size_t j = 0; j < w->size; j++) mx = fmax(mx, fabs(w->data[j]));
            eR = (int)ceil(log2(mx));
            eD = (int)floor(log2(0.05 * dgw));
            /* the smallest update moves it */
            assert_true(ldexp(1.0, -f->bias) <= 0.05 * dgw);
        } else if (co[i].point == QT_QP_GRAD_OUTPUT) {
            /* back to the first node with weights: fc* itself, pool -> relu -> conv */
            int m = k;
            const int *in;
            while (!qt_graph_param(g, m, 0)) {
                assert_true(qt_graph_node_inputs(g, m, &in) >= 1);
                m = in[0];
            }
            if (!strncmp(name, "pool", 4)) assert_int_equal(strncmp(qt_graph_node_name(g, m), "conv", 4), 0);
            int sh[3];
            qt_graph_node_shape(g, m, sh);
            assert_true(qt_graph_node_inputs(g, m, &in) >= 1);
            double lam = (double)to.batch * sh[1] * sh[2] * t.x2[in[0]];
            double dgw = ldexp(1.0, (int)floor(log2(t.gw_min[m] / 4)));
            eR = (int)ceil(log2(8 * t.ga_max[k] / sqrt(0.1)));
            eD = (int)floor(log2(dgw / sqrt(lam)));
            assert_true(lam > 1);
            assert_true(ldexp(1.0, -f->bias) <= dgw);     /* finer than the weights' */
        } else {
            continue;
        }
        fprintf(stderr, "  %s %s: fixed<%d,%d> (expected %d,%d)\n", name,
                qt_qpoint_name(co[i].point), f->width, f->bias, eR - eD + 1, -eD);
        assert_int_equal(f->type, QT_FIXED);
        assert_int_equal(f->width, eR - eD + 1);
        assert_int_equal(f->bias, -eD);
        seen[co[i].point]++;
    }
    assert_int_equal(seen[QT_QP_GRAD_WEIGHTS], 5);
    assert_int_equal(seen[QT_QP_ACCUMULATOR], 5);
    assert_int_equal(seen[QT_QP_GRAD_OUTPUT], 5);

    /* the answer: trained under all of them, within the constraint */
    const qt_result *rb;
    int feasible;
    assert_non_null(qt_search_best(s, &rb, &feasible));
    fprintf(stderr, "  float %.2f %%, analytical %.2f %% in %d evaluation(s)\n",
            100 * qt_search_baseline(s)->top1, 100 * rb->top1, qt_search_evals(s));
    assert_true(feasible);
    assert_true(rb->top1 >= 0.97 * qt_search_baseline(s)->top1);
    tr_job_end(&J);
}

/* an activation gradient whose first weighted node behind it is a
 * batchnorm: gamma's gradient sums the output gradient times the
 * normalised input (mean square 1 per channel), so lambda = batch x
 * positions, not x the mean square of the batchnorm's input */
static void training_job_batchnorm(void **st)
{
    (void)st;
    const char *job =
        "{\"model\":\"resnet\",\"kind\":\"training\",\"epochs\":1,\"lr\":0.05,"
        "\"train_limit\":512,\"val_limit\":200,\"seed\":7,"
        "\"constraint\":{\"metric\":\"top1\",\"relative\":0.5},\"strategy\":\"analytical\","
        "\"space\":[{\"nodes\":\"bn0\",\"points\":[\"grad_output\"],\"widths\":[2,32]},"
        "{\"nodes\":\"relu0\",\"points\":[\"grad_output\"],\"widths\":[2,32]}]}";
    tr_job J;
    tr_job_start(&J, job, "resnet", 512, 1);
    qt_search *s = J.s;
    qt_graph *g = J.g;
    const tr_st t = J.t;
    const qt_train_opts to = J.to;
    const qt_cand *c0;
    const qt_result *r0;
    qt_search_result(s, 0, &c0, &r0);
    const qt_coord *co;
    int n = qt_search_coords(s, &co), seen = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(co[i].point, QT_QP_GRAD_OUTPUT);
        const qt_format *f = &c0->fmt[i];
        int k = co[i].node, m = k;
        const int *in;
        while (!qt_graph_param(g, m, 0)) {
            assert_true(qt_graph_node_inputs(g, m, &in) >= 1);
            m = in[0];
        }
        assert_int_equal(qt_graph_node_op(g, m), QT_OP_BATCHNORM);
        int sh[3];
        qt_graph_node_shape(g, m, sh);
        double lam = (double)to.batch * sh[1] * sh[2];
        double dgw = ldexp(1.0, (int)floor(log2(t.gw_min[m] / 4)));
        int eR = (int)ceil(log2(8 * t.ga_max[k] / sqrt(0.1)));
        int eD = (int)floor(log2(dgw / sqrt(lam)));
        /* the input's mean square would give another step here */
        assert_true(qt_graph_node_inputs(g, m, &in) >= 1);
        int eD_in = (int)floor(log2(dgw / sqrt(lam * t.x2[in[0]])));
        fprintf(stderr, "  %s grad_output: fixed<%d,%d> (expected %d,%d; with the input's "
                "mean square %.2f: %d,%d)\n", qt_graph_node_name(g, k), f->width, f->bias,
                eR - eD + 1, -eD, t.x2[in[0]], eR - eD_in + 1, -eD_in);
        assert_int_equal(f->type, QT_FIXED);
        assert_int_equal(f->width, eR - eD + 1);
        assert_int_equal(f->bias, -eD);
        seen++;
    }
    assert_int_equal(seen, 2);
    tr_job_end(&J);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gains_match_finite_differences),
        cmocka_unit_test(closed_form),
        cmocka_unit_test(types_and_ranges),
        cmocka_unit_test(refusals),
        cmocka_unit_test(allocation),
        cmocka_unit_test(lenet5),
        cmocka_unit_test(training_job),
        cmocka_unit_test(training_job_batchnorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
