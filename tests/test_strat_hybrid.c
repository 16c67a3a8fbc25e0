/*
 * test_strat_hybrid.c -- hybrid: analytical offsets, B_min searched below
 * the bound, then one-bit-fewer moves; against a synthetic evaluator with a
 * known optimum, and on lenet5 beside greedy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tuner_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct synth { int need[16]; int calls; int need_log[16]; } synth;

/* tensor i loses 5 points per bit below need[i] (as log: need_log[i] when
 * set, else 5 points whatever its width) */
static int synth_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r)
{
    synth *y = user;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    double acc = 0.9;
    for (int i = 0; i < n; i++) {
        int w = c->fmt[i].type == QT_NONE ? 32 : c->fmt[i].width;
        int need = y->need[i];
        if (c->fmt[i].type == QT_LOG) {
            if (!y->need_log[i]) { acc -= 0.05; continue; }
            need = y->need_log[i];
        }
        if (w < need) acc -= 0.05 * (need - w);
    }
    tu_result(r, acc > 0 ? acc : 0);
    y->calls++;
    return QT_OK;
}

static qt_search *synth_search(const char *job, qt_graph *g, synth *y, qt_error *err, int *rc)
{
    qt_search *s;
    *rc = tu_search_rc(job, g, synth_eval, y, 0, &s, err);
    return s;
}

/* gains 1, 4, 16 give offsets 0, 1, 2; tensors need 3, 4, 5 bits: the
 * B_min search lands on 3 and no bit can go */
static void finds_the_optimum(void **st)
{
    (void)st;
    qt_graph *g;
    qt_error err;
    int rc;
    synth y = { { 3, 4, 5 }, 0, { 0 } };
    assert_int_equal(qt_zoo_build("mlp", &g, &err), QT_OK);
    qt_search *s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\","
                                "\"widths\":[2,16]}],\"strategy\":{\"name\":\"hybrid\","
                                "\"gains\":[1,4,16]}}", g, &y, &err, &rc);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    for (int i = 0; i < 3; i++) assert_int_equal(best->fmt[i].width, y.need[i]);
    /* a binary search below the bound's B_min, then one round of 3 moves */
    int n = qt_search_evals(s);
    fprintf(stderr, "synthetic: %d evaluations\n", n);
    assert_true(n <= 5 + 3);
    for (int i = 0; i < n; i++) {
        const qt_cand *c;
        qt_search_result(s, i, &c, NULL);
        assert_non_null(strstr(c->reason, "hybrid"));
    }
    qt_search_free(s);

    /* without refinement: the B_min search alone, same answer here */
    y.calls = 0;
    s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\",\"widths\":[2,16]}],"
                     "\"strategy\":{\"name\":\"hybrid\",\"refine\":\"none\",\"gains\":[1,4,16]}}",
                     g, &y, &err, &rc);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_true(qt_search_evals(s) < n);
    best = qt_search_best(s, &r, &feasible);
    assert_true(feasible);
    for (int i = 0; i < 3; i++) assert_int_equal(best->fmt[i].width, y.need[i]);
    qt_search_free(s);

    /* bad options name themselves */
    s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\"}],\"strategy\":"
                     "{\"name\":\"hybrid\",\"refine\":\"more\",\"gains\":[1,1,1]}}", g, &y, &err, &rc);
    assert_int_equal(rc, QT_EINVAL);
    assert_non_null(strstr(err.text, "strategy.refine"));
    s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\"}],\"strategy\":"
                     "{\"name\":\"hybrid\",\"depth\":2,\"gains\":[1,1,1]}}", g, &y, &err, &rc);
    assert_int_equal(rc, QT_EINVAL);
    assert_non_null(strstr(err.text, "strategy.depth"));
    s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\"}],\"strategy\":"
                     "{\"name\":\"hybrid\",\"calibrate\":1,\"gains\":[1,1,1]}}", g, &y, &err, &rc);
    assert_int_equal(rc, QT_EINVAL);
    assert_non_null(strstr(err.text, "strategy.calibrate"));
    /* the allocation needs the engine's data: refused by name for a custom
     * search; calibrate without an allocation is a no-op */
    s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\"}],\"strategy\":"
                     "{\"name\":\"hybrid\",\"plan\":\"allocate\",\"gains\":[1,1,1]}}", g, &y,
                     &err, &rc);
    assert_int_equal(rc, QT_EINVAL);
    assert_non_null(strstr(err.text, "strategy.plan"));
    s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\",\"widths\":[2,16]}],"
                     "\"strategy\":{\"name\":\"hybrid\",\"calibrate\":true,\"gains\":[1,4,16]}}",
                     g, &y, &err, &rc);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    assert_int_equal(qt_search_evals(s), n);
    qt_search_free(s);
    qt_graph_free(g);
}

/* refine also tries the other allowed types one bit narrower: fc3's
 * weights (coordinate 4 of fc1..fc3 weights and bias) need 5 bits in fixed
 * point but 3 as log; the answer takes log<3> there, through log<4> */
static void refine_changes_type(void **st)
{
    (void)st;
    qt_graph *g;
    qt_error err;
    int rc;
    synth y = { { 3, 4, 3, 4, 5, 2 }, 0, { 0, 0, 0, 0, 3, 0 } };
    assert_int_equal(qt_zoo_build("mlp", &g, &err), QT_OK);
    qt_search *s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\","
                                "\"points\":[\"weights\",\"bias\"],\"types\":[\"fixed\",\"log\"],"
                                "\"widths\":[2,8]}],\"strategy\":{\"name\":\"hybrid\","
                                "\"gains\":[1,1,1,1,1,1]}}", g, &y, &err, &rc);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(best->fmt[i].type, i == 4 ? QT_LOG : QT_FIXED);
        assert_int_equal(best->fmt[i].width, i == 4 ? 3 : y.need[i]);
    }
    int seen = 0;
    for (int k = 0; k < qt_search_evals(s); k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        if (strstr(c->reason, "fc3 weights fixed 5 -> log 4 bits (one bit fewer")) seen = 1;
    }
    assert_true(seen);
    fprintf(stderr, "type moves: %d evaluations\n", qt_search_evals(s));
    qt_search_free(s);
    qt_graph_free(g);
}

static int run(const char *strategy, double *compression, double *top1)
{
    char job[1024];
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/lenet5.qtck\","
             "\"val_limit\":2000,\"strategy\":\"%s\",\"space\":[{\"nodes\":\"conv*\",\"widths\":[2,8]},"
             "{\"nodes\":\"fc*\",\"widths\":[2,8]}]}", strategy);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_result *r;
    int feasible;
    assert_non_null(qt_search_best(s, &r, &feasible));
    assert_true(feasible);
    *compression = r->compression;
    *top1 = r->top1;
    int n = qt_search_evals(s);
    qt_search_free(s);
    qt_job_clear(&sp);
    return n;
}

/* lenet5 at r = 0.99 (fixed space): feasible, at least as cheap as
 * greedy's answer, and in fewer evaluations (the allocation's start and
 * its calibration: 13 against greedy's 34 today; 35 before them) */
static void lenet5_beside_greedy(void **st)
{
    (void)st;
    double ch, cg, th, tg;
    int nh = run("hybrid", &ch, &th), ng = run("greedy", &cg, &tg);
    fprintf(stderr, "lenet5: hybrid %d evaluations, %.2fx, %.2f%%; greedy %d evaluations, "
            "%.2fx, %.2f%%\n", nh, ch, 100 * th, ng, cg, 100 * tg);
    assert_true(ch > 4.0);
    assert_true(ch >= cg - 1e-9);
    assert_true(nh < ng);
}

/* a refine move that failed far below the bound is not proposed again;
 * any repair candidate is one bit wider than a failing result (this
 * evaluator loses 5 points a bit, so it has no near miss to repair: the
 * repair runs on lenet5, see the report of the figures) */
static void tabu_and_repair(void **st)
{
    (void)st;
    qt_graph *g;
    qt_error err;
    int rc;
    synth y = { { 3, 4, 5 }, 0, { 0 } };
    assert_int_equal(qt_zoo_build("mlp", &g, &err), QT_OK);
    qt_search *s = synth_search("{\"model\":\"mlp\",\"space\":[{\"nodes\":\"fc*\","
                                "\"types\":[\"fixed\",\"log\"],\"widths\":[2,16]}],"
                                "\"strategy\":{\"name\":\"hybrid\",\"gains\":[1,1,1]}}",
                                g, &y, &err, &rc);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_result *br;
    int feasible;
    const qt_cand *best = qt_search_best(s, &br, &feasible);
    assert_true(feasible);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(best->fmt[i].type, QT_FIXED);
        assert_int_equal(best->fmt[i].width, y.need[i]);
    }
    int n = qt_search_evals(s), repairs = 0;
    for (int i = 0; i < n; i++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, i, &c, &r);
        if (strstr(c->reason, "hybrid repair:")) {
            repairs++;
            /* one tensor one bit wider than some failing result before it */
            int found = 0;
            for (int k = 0; k < i && !found; k++) {
                const qt_cand *b;
                const qt_result *q;
                qt_search_result(s, k, &b, &q);
                if (q->feasible) continue;
                int diff = 0, wider = 0;
                for (int t = 0; t < 3; t++)
                    if (memcmp(&b->fmt[t], &c->fmt[t], sizeof b->fmt[t])) {
                        diff++;
                        wider = c->fmt[t].width == b->fmt[t].width + 1;
                    }
                found = diff == 1 && wider;
            }
            assert_true(found);
        }
        if (!strstr(c->reason, "hybrid refine:") || r->feasible) continue;
        /* log at any width loses 5 points here: failed far, never again */
        for (int k = i + 1; k < n; k++) {
            const qt_cand *d;
            qt_search_result(s, k, &d, NULL);
            if (!strstr(d->reason, "hybrid refine:")) continue;
            for (int t = 0; t < 3; t++)
                if (c->fmt[t].type == QT_LOG && d->fmt[t].type == QT_LOG)
                    assert_false(c->fmt[t].width == d->fmt[t].width);
        }
    }
    fprintf(stderr, "tabu and repair: %d evaluations, %d repairs\n", n, repairs);
    qt_search_free(s);
    qt_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_the_optimum),
        cmocka_unit_test(refine_changes_type),
        cmocka_unit_test(tabu_and_repair),
        cmocka_unit_test(lenet5_beside_greedy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
