/*
 * test_strat_bisect.c -- the bisection strategy against synthetic
 * evaluators whose optimum is known (independent tensors, interacting
 * tensors, a tensor that never passes, two types, bias search), its
 * determinism across worker counts, its reasons and options, and one real
 * run through the engine on lenet5.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tuner_testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a synthetic evaluator ----
 * Tensor i quantized at width w (its type's need: need_float for float when
 * set, else need) loses 0.1 per missing bit below its need, and sens[i] x
 * 2^(need - w) at or above it (so widening halves its loss). With bias_good[i]
 * set, the bias delta d (against the fitted bias) matters: d == bias_good
 * lowers the need by one bit, and every other delta loses 0.0003 |d - good|.
 * The float model has 0.9; with r = 0.99 the budget is 0.009. */
typedef struct synth {
    int    need[64];
    int    need_float[64];
    double sens[64];
    int    bias_good[64];      /* 0: the bias does not matter */
    int    calls, rounds, seen;
    pthread_mutex_t mu;
} synth;

#define SYNTH_INIT { .seen = -1, .mu = PTHREAD_MUTEX_INITIALIZER }

static int synth_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r)
{
    synth *y = user;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    double acc = 0.9;
    for (int i = 0; i < n; i++) {
        const qt_format *f = &c->fmt[i];
        if (f->type == QT_NONE) continue;
        int w = f->width;
        int need = f->type == QT_FLOAT && y->need_float[i] ? y->need_float[i] : y->need[i];
        if (y->bias_good[i]) {
            qt_format f0;
            assert_int_equal(qt_search_format(s, i, (qt_type)f->type, w, 0, &f0), QT_OK);
            int d = f->bias - f0.bias;
            if (d == y->bias_good[i]) need--;
            else acc -= 0.0003 * abs(d - y->bias_good[i]);
        }
        if (w < need) acc -= 0.1 * (need - w);
        else acc -= y->sens[i] * ldexp(1.0, need - w);
    }
    tu_result(r, acc > 0 ? acc : 0);
    pthread_mutex_lock(&y->mu);
    y->calls++;
    /* qt_search_evals only moves between rounds: one value per round */
    if (qt_search_evals(s) != y->seen) { y->seen = qt_search_evals(s); y->rounds++; }
    pthread_mutex_unlock(&y->mu);
    return QT_OK;
}

static qt_search *synth_search(const char *job, const qt_graph *g, synth *y, int workers)
{
    return tu_search(job, g, synth_eval, y, workers);
}

static const qt_cand *run_best(qt_search *s, const qt_result **r)
{
    int feasible = 0;
    tu_run(s);
    const qt_cand *best = qt_search_best(s, r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    return best;
}

/* the coordinate a phase-1 candidate tunes, or -1 (more or fewer than one) */
static int only_coord(const qt_search *s, const qt_cand *c)
{
    const qt_coord *co;
    int n = qt_search_coords(s, &co), at = -1;
    for (int i = 0; i < n; i++)
        if (c->fmt[i].type != QT_NONE) {
            if (at >= 0) return -1;
            at = i;
        }
    return at;
}

/* "fc1 weights" */
static void tensor_name(const qt_search *s, int i, char *buf, size_t size)
{
    const qt_coord *co;
    qt_search_coords(s, &co);
    snprintf(buf, size, "%s %s", qt_graph_node_name(qt_search_graph(s), co[i].node),
             qt_qpoint_name(co[i].point));
}

/* fc1..fc3, weights and bias: 6 tensors in node, point order */
#define MLP6(extra) "{\"model\":\"mlp\",\"strategy\":" extra ",\"space\":" \
    "[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],\"widths\":[2,8]}]}"

/* independent tensors: phase 1 finds each need exactly, 3 probes each
 * ([2, 8] and float are 8 outcomes) in 3 rounds, and the combination of
 * the needs passes at once */
static void independent_tensors(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const int need[6] = { 3, 5, 4, 6, 2, 7 };
    for (int i = 0; i < 6; i++) y.need[i] = need[i];
    qt_search *s = synth_search(MLP6("\"bisection\""), g, &y, 1);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    assert_int_equal(qt_search_evals(s), 6 * 3 + 1);
    assert_int_equal(y.calls, 6 * 3 + 1);
    /* ceil(log2(7)) + 1 = 4 bounds phase 1; it takes 3, then one combination */
    assert_int_equal(y.rounds, 3 + 1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(best->fmt[i].type, QT_FIXED);
        assert_int_equal(best->fmt[i].width, need[i]);
    }
    assert_true(fabs(r->top1 - 0.9) < 1e-12);
    assert_non_null(strstr(best->reason, "all 6 tensors"));
    /* phase-1 reasons name the tensor they probe; every reason is non-empty */
    for (int h = 0; h < qt_search_evals(s); h++) {
        const qt_cand *c;
        char name[96];
        qt_search_result(s, h, &c, NULL);
        assert_true(strlen(c->reason) > 10);
        assert_non_null(strstr(c->reason, "bisection"));
        int i = only_coord(s, c);
        if (h < 18) {
            assert_true(i >= 0);
            tensor_name(s, i, name, sizeof name);
            assert_non_null(strstr(c->reason, name));
        }
    }
    const qt_cand *c0;
    qt_search_result(s, 0, &c0, NULL);
    assert_string_equal(c0->reason,
                        "bisection: fc1 weights alone, fixed 5 bits (first probe of 2..8)");
    qt_search_free(s);
    qt_graph_free(g);
}

/* interacting tensors: each passes alone at its need, but their small
 * losses add up past the budget */
static const int inter_need[6] = { 3, 4, 3, 4, 3, 4 };
static const double inter_sens[6] = { 0.002, 0.006, 0.001, 0.008, 0.003, 0.004 };

static void interacting_tensors(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    for (int i = 0; i < 6; i++) { y.need[i] = inter_need[i]; y.sens[i] = inter_sens[i]; }
    qt_search *s = synth_search(MLP6("\"bisection\""), g, &y, 1);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    /* sensitivity order (least first): 2 0 4 5 1 3; prefixes of 3 pass
     * (0.006), 4 fail (0.010). The repair ("gain") widens the tensor of the
     * largest predicted gain per value: its loss alone x 3/4, a quarter of
     * that for each bit it was widened, over its values (fc1 bias 300, fc2
     * bias 100, fc3 bias 10; the weights 1000 and more). fc3 bias to 5 and
     * 6 (lost 0.022, 0.021), fc2 bias to 5 (0.017), fc3 bias to 7 (0.0165),
     * fc2 bias to 6 (0.0145), fc1 bias to 5 (0.0115), fc3 bias to 8
     * (0.01125), fc2 bias to 7 (0.01025), fc1 bias to 6: 0.00875 passes.
     * 18 + 1 full + 2 prefixes + 9 steps. */
    assert_int_equal(qt_search_evals(s), 18 + 1 + 2 + 9);
    const int want[6] = { 3, 6, 3, 7, 3, 8 };
    for (int i = 0; i < 6; i++) assert_int_equal(best->fmt[i].width, want[i]);
    assert_true(r->feasible);
    assert_non_null(strstr(best->reason, "fc1 bias widened to 6 bits (largest predicted gain"));
    /* the repair began with the cheapest gain: the smallest tensor */
    int first_repair = -1, full = -1;
    double prefix_cost = INFINITY;
    for (int h = 0; h < qt_search_evals(s); h++) {
        const qt_cand *c;
        const qt_result *hr;
        qt_search_result(s, h, &c, &hr);
        if (strstr(c->reason, "all 6 tensors")) { full = h; assert_false(hr->feasible); }
        if (strstr(c->reason, "least sensitive") && hr->feasible && hr->cost < prefix_cost)
            prefix_cost = hr->cost;
        if (first_repair < 0 && strstr(c->reason, "repair")) first_repair = h;
    }
    assert_int_equal(full, 18);
    assert_int_equal(first_repair, 21);
    const qt_cand *c;
    qt_search_result(s, first_repair, &c, NULL);
    assert_non_null(strstr(c->reason, "bisection repair: fc3 bias widened to 5 bits"));
    assert_int_equal(c->fmt[5].width, 5);
    for (int i = 0; i < 6; i++)
        if (i != 5) assert_int_equal(c->fmt[i].width, inter_need[i]);
    /* the prefix of 3 passed; the answer is no dearer */
    assert_true(isfinite(prefix_cost));
    assert_true(r->cost <= prefix_cost);
    qt_search_free(s);

    /* phase2: false skips the prefixes: 18 + 1 + 9 */
    synth y2 = SYNTH_INIT;
    for (int i = 0; i < 6; i++) { y2.need[i] = inter_need[i]; y2.sens[i] = inter_sens[i]; }
    s = synth_search(MLP6("{\"name\":\"bisection\",\"phase2\":false}"), g, &y2, 1);
    best = run_best(s, &r);
    assert_int_equal(qt_search_evals(s), 18 + 1 + 9);
    for (int i = 0; i < 6; i++) assert_int_equal(best->fmt[i].width, want[i]);
    for (int h = 0; h < qt_search_evals(s); h++) {
        qt_search_result(s, h, &c, NULL);
        assert_null(strstr(c->reason, "least sensitive"));
    }
    double gain_cost = r->cost;
    qt_search_free(s);

    /* "sensitive": the most sensitive tensor first, to its widest: fc2 bias
     * to 8 (0.0165 lost), fc1 bias to 8 (0.010875), fc3 bias to 5
     * (0.008875): 9 steps, and dearer than "gain" (fc1 bias at 8) */
    synth y3 = SYNTH_INIT;
    for (int i = 0; i < 6; i++) { y3.need[i] = inter_need[i]; y3.sens[i] = inter_sens[i]; }
    s = synth_search(MLP6("{\"name\":\"bisection\",\"repair\":\"sensitive\"}"), g, &y3, 1);
    best = run_best(s, &r);
    assert_int_equal(qt_search_evals(s), 18 + 1 + 2 + 9);
    const int want_s[6] = { 3, 8, 3, 8, 3, 5 };
    for (int i = 0; i < 6; i++) assert_int_equal(best->fmt[i].width, want_s[i]);
    assert_non_null(strstr(best->reason, "fc3 bias widened to 5 bits (the most sensitive"));
    assert_true(r->cost > gain_cost);
    qt_search_free(s);

    /* "cycle": one bit each round the tensors from the most sensitive
     * (3 1 5 4 0 2): 0.020, 0.017, 0.015, 0.0135, 0.0125, 0.012, then fc2
     * bias to 6 (0.010) and fc1 bias to 6: 0.0085 passes after 8 steps;
     * it widened the weights too, so it is dearer still */
    synth y4 = SYNTH_INIT;
    for (int i = 0; i < 6; i++) { y4.need[i] = inter_need[i]; y4.sens[i] = inter_sens[i]; }
    s = synth_search(MLP6("{\"name\":\"bisection\",\"repair\":\"cycle\"}"), g, &y4, 1);
    best = run_best(s, &r);
    assert_int_equal(qt_search_evals(s), 18 + 1 + 2 + 8);
    const int want_c[6] = { 4, 6, 4, 6, 4, 5 };
    const qt_result *lr;
    qt_search_result(s, qt_search_evals(s) - 1, &c, &lr);
    assert_true(lr->feasible);
    for (int i = 0; i < 6; i++) assert_int_equal(c->fmt[i].width, want_c[i]);
    assert_non_null(strstr(c->reason, "fc1 bias widened to 6 bits (next round the cycle"));
    /* so dear that the passing prefix of 3 (biases float) is the answer */
    assert_true(lr->cost > gain_cost);
    assert_non_null(strstr(best->reason, "the 3 least sensitive"));
    assert_true(r->cost < lr->cost);
    qt_search_free(s);
    qt_graph_free(g);
}

/* a tensor that fails alone even at its widest stays float */
static void failing_tensor_stays_float(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    y.need[0] = 3; y.need[1] = 20; y.need[2] = 4;
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                                "[{\"nodes\":\"fc*\",\"widths\":[2,8]}]}", g, &y, 1);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    assert_int_equal(qt_search_evals(s), 3 * 3 + 1);
    assert_int_equal(best->fmt[0].width, 3);
    assert_int_equal(best->fmt[1].type, QT_NONE);
    assert_int_equal(best->fmt[2].width, 4);
    assert_non_null(strstr(best->reason, "all 2 tensors"));
    assert_non_null(strstr(best->reason, "fc2 weights stays float"));
    /* its last probe was its widest */
    int widest = 0;
    for (int h = 0; h < qt_search_evals(s); h++) {
        const qt_cand *c;
        const qt_result *hr;
        qt_search_result(s, h, &c, &hr);
        if (only_coord(s, c) == 1 && c->fmt[1].width == 8) {
            widest = 1;
            assert_false(hr->feasible);
            assert_non_null(strstr(c->reason, "the widest"));
        }
    }
    assert_true(widest);
    qt_search_free(s);

    /* nothing passes: no combination at all, the answer is the closest */
    synth y2 = SYNTH_INIT;
    for (int i = 0; i < 3; i++) y2.need[i] = 30;
    s = synth_search("{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                     "[{\"nodes\":\"fc*\",\"widths\":[2,8]}]}", g, &y2, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(s), 9);
    int feasible = 1;
    assert_non_null(qt_search_best(s, &r, &feasible));
    assert_false(feasible);
    qt_search_free(s);
    qt_graph_free(g);
}

/* two types per tensor: each tensor takes the cheaper passing one, ties to
 * the earlier type (fixed before float) */
static void two_types_pick_the_cheaper(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const int nfix[3] = { 6, 4, 5 }, nflt[3] = { 4, 4, 7 };
    for (int i = 0; i < 3; i++) { y.need[i] = nfix[i]; y.need_float[i] = nflt[i]; }
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                                "[{\"nodes\":\"fc*\",\"types\":[\"fixed\",\"float\"],"
                                "\"widths\":[2,8]}]}", g, &y, 1);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    /* fixed: 8 outcomes, 3 probes; float (3..8 and float): 7 outcomes,
     * here 3 probes each; both types in the same rounds */
    assert_int_equal(qt_search_evals(s), 3 * 3 + 3 * 3 + 1);
    assert_int_equal(y.rounds, 3 + 1);
    assert_int_equal(best->fmt[0].type, QT_FLOAT);
    assert_int_equal(best->fmt[0].width, 4);
    assert_int_equal(best->fmt[1].type, QT_FIXED);     /* 4 bits either way */
    assert_int_equal(best->fmt[1].width, 4);
    assert_int_equal(best->fmt[2].type, QT_FIXED);
    assert_int_equal(best->fmt[2].width, 5);
    qt_search_free(s);
    qt_graph_free(g);
}

/* bias search: the deltas -k..k at the found width and one narrower, in
 * one round; a delta that passes one bit narrower wins */
static void bias_search_probes_deltas(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    y.need[0] = 5; y.need[1] = 3; y.need[2] = 4;
    y.bias_good[0] = -1;             /* fc1 weights: 4 bits pass at bias -1 */
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                                "[{\"nodes\":\"fc*\",\"widths\":[2,8],\"bias\":{\"search\":2}}]}",
                                g, &y, 1);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    /* 3 x 3 bisection probes, then 3 x 8 deltas (+-1, +-2 at w and w - 1) */
    assert_int_equal(qt_search_evals(s), 9 + 24 + 1);
    assert_int_equal(y.rounds, 3 + 1 + 1);
    qt_format f0;
    assert_int_equal(qt_search_format(s, 0, QT_FIXED, 4, 0, &f0), QT_OK);
    assert_int_equal(best->fmt[0].width, 4);
    assert_int_equal(best->fmt[0].bias, f0.bias - 1);
    assert_int_equal(best->fmt[1].width, 3);           /* the others keep the fitted bias */
    assert_int_equal(qt_search_format(s, 1, QT_FIXED, 3, 0, &f0), QT_OK);
    assert_int_equal(best->fmt[1].bias, f0.bias);
    assert_int_equal(best->fmt[2].width, 4);
    /* fc1 weights: every delta at 5 and at 4 bits, all in one round (9..32) */
    int seen[2][5] = { { 0 } };
    for (int h = 0; h < qt_search_evals(s); h++) {
        const qt_cand *c;
        qt_search_result(s, h, &c, NULL);
        if (only_coord(s, c) != 0 || !strstr(c->reason, "bias")) continue;
        assert_true(h >= 9 && h < 33);
        int w = c->fmt[0].width;
        assert_true(w == 4 || w == 5);
        assert_int_equal(qt_search_format(s, 0, QT_FIXED, w, 0, &f0), QT_OK);
        int d = c->fmt[0].bias - f0.bias;
        assert_true(d != 0 && d >= -2 && d <= 2);
        seen[5 - w][d + 2]++;
    }
    for (int w = 0; w < 2; w++)
        for (int d = 0; d < 5; d++) assert_int_equal(seen[w][d], d != 2);
    qt_search_free(s);
    qt_graph_free(g);
}

/* no candidate is proposed twice: the prefix of one tensor is its own
 * phase-1 answer; a repair that has widened everything to its widest
 * returns the most sensitive tensors to float */
static void results_are_reused(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const double sens[3] = { 0.005, 0.006, 0.007 };
    for (int i = 0; i < 3; i++) { y.need[i] = 3; y.sens[i] = sens[i]; }
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                                "[{\"nodes\":\"fc*\",\"widths\":[2,8]}]}", g, &y, 1);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    /* full 0.018 fails; prefix 1 is known, prefix 2 (0.011) fails; fc3
     * (1000 values) widened to 4..6 (0.011875 lost at 6), then its predicted
     * gain per value falls below fc2's (30000 values): fc2 to 4, 0.008875 */
    assert_int_equal(qt_search_evals(s), 9 + 1 + 1 + 4);
    assert_int_equal(y.calls, 9 + 1 + 1 + 4);
    assert_int_equal(best->fmt[0].width, 3);
    assert_int_equal(best->fmt[1].width, 4);
    assert_int_equal(best->fmt[2].width, 6);
    for (int a = 0; a < qt_search_evals(s); a++)
        for (int b = 0; b < a; b++) {
            const qt_cand *ca, *cb;
            qt_search_result(s, a, &ca, NULL);
            qt_search_result(s, b, &cb, NULL);
            assert_true(memcmp(ca->fmt, cb->fmt, 3 * sizeof *ca->fmt) != 0);
        }
    qt_search_free(s);

    /* widths [2, 3]: each needs its widest, so the repair can only return
     * fc3 (the most sensitive) to float, which is the passing prefix of 2 */
    synth y2 = SYNTH_INIT;
    const double sens2[3] = { 0.004, 0.0045, 0.005 };
    for (int i = 0; i < 3; i++) { y2.need[i] = 3; y2.sens[i] = sens2[i]; }
    s = synth_search("{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                     "[{\"nodes\":\"fc*\",\"widths\":[2,3]}]}", g, &y2, 1);
    best = run_best(s, &r);
    assert_int_equal(qt_search_evals(s), 3 * 2 + 1 + 1);
    assert_int_equal(best->fmt[0].width, 3);
    assert_int_equal(best->fmt[1].width, 3);
    assert_int_equal(best->fmt[2].type, QT_NONE);
    assert_non_null(strstr(best->reason, "the 2 least sensitive"));
    qt_search_free(s);
    qt_graph_free(g);
}

/* the same candidates, in the same order, for 1 and 3 workers */
static void workers_do_not_change_the_sequence(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y1 = SYNTH_INIT, y3 = SYNTH_INIT;
    for (int i = 0; i < 6; i++) {
        y1.need[i] = y3.need[i] = inter_need[i];
        y1.sens[i] = y3.sens[i] = inter_sens[i];
    }
    y1.bias_good[2] = y3.bias_good[2] = 1;
    y1.need_float[4] = y3.need_float[4] = 3;
    const char *job = "{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":"
                      "[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],"
                      "\"types\":[\"fixed\",\"float\",\"log\"],\"widths\":[2,8],"
                      "\"bias\":{\"search\":6}}]}";
    qt_search *a = synth_search(job, g, &y1, 1), *b = synth_search(job, g, &y3, 3);
    assert_int_equal(qt_search_run(a, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_run(b, NULL, NULL, NULL), QT_OK);
    const qt_coord *co;
    int n = qt_search_coords(a, &co);
    assert_int_equal(qt_search_evals(a), qt_search_evals(b));
    assert_true(qt_search_evals(a) > 300);           /* a bias round beyond 256 */
    for (int i = 0; i < qt_search_evals(a); i++) {
        const qt_cand *ca, *cb;
        const qt_result *ra, *rb;
        qt_search_result(a, i, &ca, &ra);
        qt_search_result(b, i, &cb, &rb);
        assert_string_equal(ca->reason, cb->reason);
        assert_memory_equal(ca->fmt, cb->fmt, (size_t)n * sizeof *ca->fmt);
        assert_true(ra->top1 == rb->top1 && ra->cost == rb->cost);
    }
    qt_search_free(a);
    qt_search_free(b);
    qt_graph_free(g);
}

/* options: phase2 must be a boolean, repair one of the rules; anything else is
 * refused by name */
static void bad_options_are_refused(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const char *bad[][2] = {
        { "{\"name\":\"bisection\",\"fast\":true}", "strategy.fast" },
        { "{\"name\":\"bisection\",\"phase2\":1}", "strategy.phase2" },
        { "{\"name\":\"bisection\",\"phase2\":true,\"phase3\":false}", "strategy.phase3" },
        { "{\"name\":\"bisection\",\"repair\":\"widest\"}", "strategy.repair" },
        { "{\"name\":\"bisection\",\"repair\":1}", "strategy.repair" },
        { "{\"name\":\"bisection\",\"estimate\":1}", "strategy.estimate" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char job[512];
        qt_error err;
        qt_search *s;
        snprintf(job, sizeof job, "{\"model\":\"mlp\",\"strategy\":%s,\"space\":"
                 "[{\"nodes\":\"fc*\"}]}", bad[k][0]);
        assert_int_equal(tu_search_rc(job, g, synth_eval, &y, 0, &s, &err), QT_EINVAL);
        assert_null(s);
        assert_non_null(strstr(err.text, bad[k][1]));
    }
    /* good ones */
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"bisection\","
                                "\"phase2\":true},\"space\":[{\"nodes\":\"fc*\"}]}", g, &y, 1);
    qt_search_free(s);
    qt_graph_free(g);
}

/* through the engine: lenet5's weights, fixed 2..8 bits, r = 0.99 */
static void lenet5_through_the_engine(void **st)
{
    (void)st;
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    assert_int_equal(qt_job_parse("{\"model\":\"" QT_SOURCE_DIR "/experiments/models/lenet5.qtck\","
                                  "\"strategy\":\"bisection\",\"val_limit\":2000,\"space\":["
                                  "{\"nodes\":\"conv*\",\"widths\":[2,8]},"
                                  "{\"nodes\":\"fc*\",\"widths\":[2,8]}],"
                                  "\"constraint\":{\"relative\":0.99}}", &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    const qt_result *r;
    const qt_cand *best = run_best(s, &r);
    /* the "gain" repair: 6.40x in 28 evaluations (the most sensitive first,
     * to its widest: 4.34x in 24) */
    assert_true(r->compression > 6.0);
    assert_true(r->top1 >= 0.99 * qt_search_baseline(s)->top1 - 1e-12);
    char widths[128];
    size_t at = 0;
    widths[0] = 0;
    for (int i = 0; i < n && at + 8 < sizeof widths; i++)
        at += (size_t)snprintf(widths + at, sizeof widths - at, "%s%d", i ? " " : "",
                               best->fmt[i].type == QT_NONE ? 32 : best->fmt[i].width);
    fprintf(stderr, "lenet5 bisection: %d tensors, %d evaluations (%d computed), widths %s, "
            "%.2fx, top-1 %.2f%% (float %.2f%%)\n  answer: %s\n", n, qt_search_evals(s),
            qt_search_computed(s), widths, r->compression, 100 * r->top1,
            100 * qt_search_baseline(s)->top1, best->reason);
    qt_search_free(s);
    qt_job_clear(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(independent_tensors),
        cmocka_unit_test(interacting_tensors),
        cmocka_unit_test(failing_tensor_stays_float),
        cmocka_unit_test(two_types_pick_the_cheaper),
        cmocka_unit_test(bias_search_probes_deltas),
        cmocka_unit_test(results_are_reused),
        cmocka_unit_test(workers_do_not_change_the_sequence),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(lenet5_through_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
