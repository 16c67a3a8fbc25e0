/*
 * test_strat_greedy.c -- the greedy strategy (libnumber's two passes, four
 * phases) against synthetic evaluators whose optimum is known: separable
 * needs, phase 1's halving and binary search, bias moves, type changes,
 * the cost-per-accuracy ranking; determinism across pool sizes, budgets,
 * options; and one real run through the engine on LeNet-5.
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
#include <time.h>

/* ---- a synthetic evaluator ----
 * Tensor i of type t needs need[i][t] bits (0: fixed's need): every
 * missing bit costs 0.2 (fails any constraint used here). Tensor i also
 * loses slope[i] per bit below 8 (soft). Any bias other than the fitted one
 * costs 0.2, except on tensor bias_coord, where fitted + 1 lowers its need
 * by one bit and gains 0.001. */

#define HARD 0.2

typedef struct synth {
    int    need[8][QT_TYPE_COUNT];
    double slope[8];
    int    bias_coord;               /* -1: none */
    int    calls;
    pthread_mutex_t mu;
} synth;

static void synth_init(synth *y)
{
    memset(y, 0, sizeof *y);
    y->bias_coord = -1;
    pthread_mutex_init(&y->mu, NULL);
}

static int need_of(const synth *y, int i, int t)
{
    return y->need[i][t] ? y->need[i][t] : y->need[i][QT_FIXED];
}

static int synth_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r)
{
    synth *y = user;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    double acc = 0.9;
    for (int i = 0; i < n; i++) {
        const qt_format *f = &c->fmt[i];
        if (f->type == QT_NONE) continue;
        qt_format fit;
        assert_int_equal(qt_search_format(s, i, (qt_type)f->type, f->width, 0, &fit), QT_OK);
        int d = f->bias - fit.bias, need = need_of(y, i, f->type);
        if (i == y->bias_coord && d == 1) { need--; acc += 0.001; }
        else if (d != 0) acc -= HARD;
        if (f->width < need) acc -= HARD * (need - f->width);
        if (f->width < 8) acc -= y->slope[i] * (8 - f->width);
    }
    tu_result(r, acc > 0 ? acc : 0);
    tu_count(&y->mu, &y->calls);
    return QT_OK;
}

/* a greedy search of the mlp's tensors (rules after "space":) */
static qt_search *synth_search(const char *space, const char *extra, qt_graph *g, synth *y,
                               int workers)
{
    char job[1024];
    snprintf(job, sizeof job, "{\"model\":\"mlp\",\"strategy\":\"greedy\",\"space\":%s%s%s}",
             space, extra ? "," : "", extra ? extra : "");
    return tu_search(job, g, synth_eval, y, workers);
}

static const qt_cand *answer(qt_search *s, int *feasible)
{
    const qt_result *r;
    const qt_cand *best = qt_search_best(s, &r, feasible);
    assert_non_null(best);
    return best;
}

/* the widths of the phase-1 proposals (all tensors alike) */
static int phase1_widths(qt_search *s, int *w, int *t, int max)
{
    int m = 0;
    for (int i = 0; i < qt_search_evals(s) && m < max; i++) {
        const qt_cand *c;
        qt_search_result(s, i, &c, NULL);
        if (!strstr(c->reason, "greedy phase 1:")) break;
        w[m] = c->fmt[0].width;
        t[m++] = c->fmt[0].type;
    }
    return m;
}

#define W_ALL "[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],\"widths\":[2,16]}]"
#define W_FC  "[{\"nodes\":\"fc*\",\"widths\":[2,8]}]"
#define W_FCT "[{\"nodes\":\"fc*\",\"types\":[\"fixed\",\"log\"],\"widths\":[2,8]}]"

/* separable needs: greedy reaches every tensor's need exactly; the phase-1
 * width is max(need); the evaluations stay within the bound below */
static void separable_reaches_the_optimum(void **st)
{
    (void)st;
    static const int need[6] = { 3, 5, 7, 4, 6, 2 };   /* fc1 w, b, fc2 w, b, fc3 w, b */
    qt_graph *g = tu_mlp();
    synth y;
    synth_init(&y);
    for (int i = 0; i < 6; i++) y.need[i][QT_FIXED] = need[i];
    qt_search *s = synth_search(W_ALL, NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    int feasible, n = qt_search_evals(s);
    const qt_cand *best = answer(s, &feasible);
    assert_true(feasible);
    for (int i = 0; i < 6; i++) assert_int_equal(best->fmt[i].width, need[i]);
    assert_non_null(strstr(best->reason, "greedy phase 2:"));
    /* Bound: phase 1 halves at most log2(16/2) + 1 = 4 times and bisects at
     * most 3 times; from width 7, phase 2 takes sum(7 - need) = 15 moves,
     * one per round, and ends with one round where none passes: 16 rounds
     * of at most 6 moves. Phase 4 finds every move in the memo. */
    int moves = 0;
    for (int i = 0; i < 6; i++) moves += 7 - need[i];
    int bound = 7 + (moves + 1) * 6;
    fprintf(stderr, "separable: %d evaluations (bound %d), all computed: %d\n", n, bound,
            qt_search_computed(s));
    assert_true(n <= bound);
    assert_int_equal(qt_search_computed(s), n);      /* never proposes a candidate twice */
    assert_int_equal(y.calls, n);
    /* with no loss of accuracy anywhere, the largest saving goes first: the
     * first round of phase 2 takes fc1's weights (235200 values), so the
     * second round starts from them at 6 bits */
    const qt_cand *c;
    qt_search_result(s, 5 + 6 + 1, &c, NULL);       /* phase 1: 5; phase 2 round 1: 6 */
    assert_non_null(strstr(c->reason, "fc1 bias one bit fewer (7 -> 6)"));
    assert_int_equal(c->fmt[0].width, 6);
    assert_int_equal(c->fmt[1].width, 6);
    qt_search_free(s);
    qt_graph_free(g);
}

/* phase 1: halve while passing, bisect on the first failure; then the next
 * type at the reduced width */
static void phase1_halves_then_bisects(void **st)
{
    (void)st;
    static const struct { int maxneed, n, w[8]; } cases[] = {
        { 7, 5, { 16, 8, 4, 6, 7 } },
        { 3, 5, { 16, 8, 4, 2, 3 } },
        { 2, 4, { 16, 8, 4, 2 } },                    /* the narrowest passes: no bisection */
        { 12, 5, { 16, 8, 12, 10, 11 } },
    };
    qt_graph *g = tu_mlp();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        synth y;
        synth_init(&y);
        for (int i = 0; i < 6; i++) y.need[i][QT_FIXED] = 2;
        y.need[3][QT_FIXED] = cases[k].maxneed;
        qt_search *s = synth_search(W_ALL, NULL, g, &y, 1);
        assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
        int w[16], t[16], m = phase1_widths(s, w, t, 16);
        assert_int_equal(m, cases[k].n);
        for (int i = 0; i < m; i++) {
            assert_int_equal(w[i], cases[k].w[i]);
            assert_int_equal(t[i], QT_FIXED);
        }
        /* the answer: fc2's bias at maxneed, everything else at 2 */
        int feasible;
        const qt_cand *best = answer(s, &feasible);
        assert_true(feasible);
        for (int i = 0; i < 6; i++) assert_int_equal(best->fmt[i].width, i == 3 ? cases[k].maxneed : 2);
        qt_search_free(s);
    }

    /* two types: fixed ends at 7 (6 failed), log starts at the reduced width 6 */
    synth y;
    synth_init(&y);
    for (int i = 0; i < 6; i++) { y.need[i][QT_FIXED] = 3; y.need[i][QT_LOG] = 9; }
    y.need[2][QT_FIXED] = 7;
    qt_search *s = synth_search("[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],"
                                "\"types\":[\"fixed\",\"log\"],\"widths\":[2,16]}]", NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    int w[16], t[16], m = phase1_widths(s, w, t, 16);
    static const int ew[] = { 16, 8, 4, 6, 7, 6 };
    assert_int_equal(m, 6);
    for (int i = 0; i < m; i++) {
        assert_int_equal(w[i], ew[i]);
        assert_int_equal(t[i], i < 5 ? QT_FIXED : QT_LOG);
    }
    const qt_cand *c;
    qt_search_result(s, 5, &c, NULL);
    assert_non_null(strstr(c->reason, "all tensors log 6 bits (next type at the reduced width)"));
    qt_search_free(s);

    /* nothing passes at the widest width: one evaluation, the closest answer */
    synth_init(&y);
    for (int i = 0; i < 3; i++) y.need[i][QT_FIXED] = 3;
    y.need[1][QT_FIXED] = 20;
    s = synth_search(W_FC, NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(s), 1);
    int feasible;
    const qt_cand *best = answer(s, &feasible);
    assert_false(feasible);
    assert_int_equal(best->fmt[0].width, 8);
    qt_search_free(s);
    qt_graph_free(g);
}

/* bias moves: fc3's weights do better one step finer than fitted, and then
 * need a bit less; greedy takes the move (and only where the space lets it
 * search the bias) */
static void bias_move_is_taken(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y;
    synth_init(&y);
    y.need[0][QT_FIXED] = 4;
    y.need[1][QT_FIXED] = 4;
    y.need[2][QT_FIXED] = 6;
    y.bias_coord = 2;
    qt_search *s = synth_search("[{\"nodes\":\"fc*\",\"widths\":[2,8],\"bias\":{\"search\":2}}]",
                                NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    int feasible;
    const qt_cand *best = answer(s, &feasible);
    assert_true(feasible);
    qt_format fit;
    for (int i = 0; i < 3; i++) {
        int w = i == 2 ? 5 : 4;
        assert_int_equal(best->fmt[i].width, w);
        assert_int_equal(qt_search_format(s, i, QT_FIXED, w, 0, &fit), QT_OK);
        assert_int_equal(best->fmt[i].bias, fit.bias + (i == 2));
    }
    int seen = 0;
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_cand *c;
        qt_search_result(s, i, &c, NULL);
        if (strstr(c->reason, "fc3 weights bias +1")) seen++;
    }
    assert_true(seen >= 1);
    fprintf(stderr, "bias: %d evaluations\n", qt_search_evals(s));
    qt_search_free(s);

    /* the same needs with the bias fitted (the default): no bias move */
    s = synth_search(W_FC, NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    best = answer(s, &feasible);
    assert_true(feasible);
    assert_int_equal(best->fmt[2].width, 6);
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_cand *c;
        qt_search_result(s, i, &c, NULL);
        assert_null(strstr(c->reason, "bias +1"));
    }
    qt_search_free(s);
    qt_graph_free(g);
}

/* type change: fc3's weights need 6 bits in fixed but 3 in log; fc1's pass
 * in log at the same width but gain nothing (tried, then undone) */
static void type_change_is_taken(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y;
    synth_init(&y);
    y.need[0][QT_FIXED] = 4; y.need[0][QT_LOG] = 4;
    y.need[1][QT_FIXED] = 4; y.need[1][QT_LOG] = 9;
    y.need[2][QT_FIXED] = 6; y.need[2][QT_LOG] = 3;
    qt_search *s = synth_search(W_FCT, NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    int feasible;
    const qt_cand *best = answer(s, &feasible);
    assert_true(feasible);
    assert_int_equal(best->fmt[0].type, QT_FIXED);
    assert_int_equal(best->fmt[0].width, 4);
    assert_int_equal(best->fmt[1].type, QT_FIXED);
    assert_int_equal(best->fmt[1].width, 4);
    assert_int_equal(best->fmt[2].type, QT_LOG);
    assert_int_equal(best->fmt[2].width, 3);
    int tried_fc1 = 0;
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_cand *c;
        qt_search_result(s, i, &c, NULL);
        if (strstr(c->reason, "fc1 weights fixed -> log at 4 bits")) tried_fc1++;
    }
    assert_true(tried_fc1 >= 1);
    fprintf(stderr, "type change: %d evaluations\n", qt_search_evals(s));
    qt_search_free(s);
    qt_graph_free(g);
}

/* ratio ranking: fc2's weights lose 0.0005 per bit over 30000 values, fc1's
 * 0.01 over 235200: fc2 (6e7 bits per unit of accuracy) goes all the way
 * down before fc1 (2.4e7) moves, though fc1 saves more per bit */
static void ratio_ranks_the_moves(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y;
    synth_init(&y);
    y.need[0][QT_FIXED] = 2; y.slope[0] = 0.01;
    y.need[1][QT_FIXED] = 2; y.slope[1] = 0.0005;
    y.need[2][QT_FIXED] = 8;
    qt_search *s = synth_search(W_FC, "\"constraint\":{\"relative\":0.9}", g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    int w[8], t[8];
    assert_int_equal(phase1_widths(s, w, t, 8), 4);           /* 8, 4, 6, 7 */
    const qt_cand *c;
    qt_search_result(s, 4 + 3, &c, NULL);                     /* phase 2, round 2 */
    assert_int_equal(c->fmt[0].width, 7);
    assert_int_equal(c->fmt[1].width, 7);                     /* fc2 was taken */
    for (int i = 4; i < qt_search_evals(s); i++) {
        qt_search_result(s, i, &c, NULL);
        if (c->fmt[0].width <= 6) {                           /* fc1 already moved */
            assert_int_equal(c->fmt[1].width, 2);
            break;
        }
    }
    int feasible;
    const qt_cand *best = answer(s, &feasible);
    assert_true(feasible);
    assert_int_equal(best->fmt[0].width, 2);
    assert_int_equal(best->fmt[1].width, 2);
    assert_int_equal(best->fmt[2].width, 8);
    qt_search_free(s);
    qt_graph_free(g);
}

static void type_needs(synth *y)
{
    y->need[0][QT_FIXED] = 4; y->need[0][QT_LOG] = 4;
    y->need[1][QT_FIXED] = 4; y->need[1][QT_LOG] = 9;
    y->need[2][QT_FIXED] = 6; y->need[2][QT_LOG] = 3;
    y->slope[0] = 0.0001;
}

/* the same candidates, in the same order, on 1 and 3 workers; budgets stop
 * the search cleanly */
static void workers_and_budgets(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y1, y3;
    synth_init(&y1);
    synth_init(&y3);
    type_needs(&y1);
    type_needs(&y3);
    const char *sp = "[{\"nodes\":\"fc*\",\"types\":[\"fixed\",\"log\"],\"widths\":[2,8],"
                     "\"bias\":{\"search\":1}}]";
    qt_search *a = synth_search(sp, NULL, g, &y1, 1), *b = synth_search(sp, NULL, g, &y3, 3);
    assert_int_equal(qt_search_run(a, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_run(b, NULL, NULL, NULL), QT_OK);
    int n = qt_search_evals(a);
    assert_int_equal(n, qt_search_evals(b));
    assert_true(n > 20);
    for (int i = 0; i < n; i++) {
        const qt_cand *ca, *cb;
        const qt_result *ra, *rb;
        qt_search_result(a, i, &ca, &ra);
        qt_search_result(b, i, &cb, &rb);
        assert_string_equal(ca->reason, cb->reason);
        assert_memory_equal(ca->fmt, cb->fmt, 3 * sizeof *ca->fmt);
        assert_true(ra->top1 == rb->top1 && ra->cost == rb->cost && ra->feasible == rb->feasible);
    }
    fprintf(stderr, "workers: %d evaluations on 1 and 3 workers\n", n);
    qt_search_free(a);
    qt_search_free(b);

    /* an evaluation budget: OK, exactly the budget, a feasible answer so far */
    for (int budget = 1; budget < n; budget += 7) {
        char extra[64];
        snprintf(extra, sizeof extra, "\"budget\":{\"evaluations\":%d}", budget);
        synth_init(&y1);
        type_needs(&y1);
        a = synth_search(sp, extra, g, &y1, 2);
        assert_int_equal(qt_search_run(a, NULL, NULL, NULL), QT_OK);
        assert_int_equal(qt_search_evals(a), budget);
        int feasible;
        answer(a, &feasible);
        assert_true(feasible);                     /* fixed 8 passes first */
        qt_search_free(a);
    }
    /* max_rounds: two sets of moves, two evaluations (phase 1 has one each) */
    a = tu_search("{\"model\":\"mlp\",\"strategy\":{\"name\":\"greedy\",\"max_rounds\":2,"
                  "\"subset\":500},\"space\":" W_FC "}", g, synth_eval, &y1, 0);
    assert_int_equal(qt_search_run(a, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(a), 2);
    qt_search_free(a);
    qt_graph_free(g);
}

/* bad options are refused, naming the option */
static void bad_options_are_refused(void **st)
{
    (void)st;
    static const struct { const char *opts, *name; } bad[] = {
        { "\"foo\":1", "foo" },
        { "\"subset\":0", "subset" },
        { "\"subset\":\"all\"", "subset" },
        { "\"subset\":1.5", "subset" },
        { "\"max_rounds\":-3", "max_rounds" },
        { "\"max_rounds\":null", "max_rounds" },
        { "\"max_rounds\":10,\"bar\":true", "bar" },
        { "\"estimate\":\"yes\"", "estimate" },
        { "\"estimate\":1", "estimate" },
        { "\"estimate\":0.5", "estimate" },
    };
    qt_graph *g = tu_mlp();
    synth y;
    synth_init(&y);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char job[512];
        qt_error err;
        qt_search *s;
        snprintf(job, sizeof job, "{\"model\":\"mlp\",\"strategy\":{\"name\":\"greedy\",%s},"
                 "\"space\":" W_FC "}", bad[i].opts);
        assert_int_equal(tu_search_rc(job, g, synth_eval, &y, 0, &s, &err), QT_EINVAL);
        assert_null(s);
        assert_non_null(strstr(err.text, bad[i].name));
        assert_non_null(strstr(err.text, "strategy."));
    }
    qt_graph_free(g);
}

/* one real run through the engine: LeNet-5's weights, fixed 2..8 bits;
 * with the drop estimate ruling moves out: the same answer in fewer
 * evaluations (and a reason that says so) */
static void lenet5_run(const char *strategy, int *evals, char **answer, int *ruled)
{
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    struct timespec t0, t1;
    char job[1024];
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/lenet5.qtck\","
             "\"strategy\":%s,\"val_limit\":2000,\"constraint\":{\"relative\":0.99},"
             "\"budget\":{\"evaluations\":150},\"space\":["
             "{\"nodes\":\"conv*\",\"widths\":[2,8]},"
             "{\"nodes\":\"fc*\",\"widths\":[2,8]}]}", strategy);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    assert_true(r->compression > 4.0);
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    char widths[128];
    size_t at = 0;
    for (int i = 0; i < n && at < sizeof widths - 8; i++)
        at += (size_t)snprintf(widths + at, sizeof widths - at, "%s%d", i ? " " : "",
                               best->fmt[i].width);
    fprintf(stderr, "lenet5 greedy: %d evaluations (%d computed) in %.1f s; widths %s; "
            "%.2fx, top-1 %.2f%% (float %.2f%%)\n  answer: %s\n", qt_search_evals(s),
            qt_search_computed(s), (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
            widths, r->compression, 100 * r->top1, 100 * qt_search_baseline(s)->top1, best->reason);
    assert_true(qt_search_evals(s) <= 150);
    *evals = qt_search_evals(s);
    *answer = qt_search_config_json(s, best);
    *ruled = 0;
    for (int i = 0; i < *evals; i++) {
        const qt_cand *ci;
        qt_search_result(s, i, &ci, NULL);
        *ruled += strstr(ci->reason, "the estimate ruled out") != NULL;
    }
    qt_search_free(s);
    qt_job_clear(&sp);
}

static void lenet5_through_the_engine(void **st)
{
    (void)st;
    int e0, e1, r0, r1;
    char *a0, *a1;
    lenet5_run("\"greedy\"", &e0, &a0, &r0);
    lenet5_run("{\"name\":\"greedy\",\"estimate\":true}", &e1, &a1, &r1);
    fprintf(stderr, "  estimate: %d evaluations against %d, the same answer: %s\n", e1, e0,
            strcmp(a0, a1) ? "no" : "yes");
    assert_int_equal(r0, 0);
    assert_true(r1 > 0);
    assert_true(e1 < e0);
    assert_string_equal(a0, a1);
    free(a0);
    free(a1);
}

/* a type change one bit narrower: fc2's weights need 6 bits in fixed
 * point and 5 as log, the others 6 in both; the type round proposes
 * fixed 6 -> log 5 on fc2, it passes and saves, and it is the answer */
static void type_change_one_bit_fewer(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y;
    synth_init(&y);
    for (int i = 0; i < 3; i++) y.need[i][QT_FIXED] = 6;
    y.need[1][QT_LOG] = 5;
    qt_search *s = synth_search(W_FCT, NULL, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    int feasible;
    const qt_cand *best = answer(s, &feasible);
    assert_true(feasible);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(best->fmt[i].type, i == 1 ? QT_LOG : QT_FIXED);
        assert_int_equal(best->fmt[i].width, i == 1 ? 5 : 6);
    }
    int at = -1;
    for (int k = 0; k < qt_search_evals(s); k++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, k, &c, &r);
        if (strstr(c->reason, "fc2 weights fixed 6 -> log 5 bits (one bit fewer)")) {
            at = k;
            assert_true(r->feasible);
            assert_int_equal(c->fmt[1].type, QT_LOG);
            assert_int_equal(c->fmt[1].width, 5);
        }
        /* no type move one bit fewer where nothing would be saved or the
         * width is below the space's */
        if (strstr(c->reason, "bits (one bit fewer)")) assert_true(c->fmt[0].width >= 2);
    }
    assert_true(at >= 0);
    qt_search_free(s);
    qt_graph_free(g);
}

/* pass 1 on a subset: an evaluator on which every candidate passes on the
 * subset (the fitted needs only show on the whole split). Pass 1 goes to
 * the narrowest widths, pass 2 finds that fails and recovers; the answer
 * is a whole-split result, though cheaper subset results "passed"; the
 * sequence is the same on 1 and 2 workers. */
static int lenient_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r)
{
    int rc = synth_eval(user, s, c, r);
    if (c->images) { r->top1 = 0.9; r->images = c->images; }
    return rc;
}

static qt_search *lenient_search(qt_graph *g, synth *y, int workers, const char *opts)
{
    char job[512];
    snprintf(job, sizeof job, "{\"model\":\"mlp\",\"strategy\":{\"name\":\"greedy\"%s},"
             "\"space\":" W_FC "}", opts);
    qt_search *s = tu_search(job, g, lenient_eval, y, workers);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    return s;
}

static void pass1_on_a_subset(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y1, y2;
    synth_init(&y1);
    synth_init(&y2);
    for (int i = 0; i < 3; i++) y1.need[i][QT_FIXED] = y2.need[i][QT_FIXED] = 3 + i;
    qt_search *a = lenient_search(g, &y1, 1, ",\"subset\":250");
    qt_search *b = lenient_search(g, &y2, 2, ",\"subset\":250");
    int n = qt_search_evals(a), subs = 0, cheaper = 0;
    assert_int_equal(qt_search_evals(b), n);
    const qt_result *br;
    int feasible;
    const qt_cand *best = qt_search_best(a, &br, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    assert_int_equal(br->subset, 0);
    for (int i = 0; i < 3; i++) assert_int_equal(best->fmt[i].width, 3 + i);
    for (int i = 0; i < n; i++) {
        const qt_cand *ca, *cb;
        const qt_result *ra, *rb;
        qt_search_result(a, i, &ca, &ra);
        qt_search_result(b, i, &cb, &rb);
        assert_string_equal(ca->reason, cb->reason);
        assert_int_equal(ca->images, cb->images);
        assert_memory_equal(ca->fmt, cb->fmt, 3 * sizeof *ca->fmt);
        assert_true(ra->top1 == rb->top1 && ra->feasible == rb->feasible);
        if (ra->subset) {
            subs++;
            assert_int_equal(ra->subset, 250);
            assert_non_null(strstr(ca->reason, "[pass 1: first 250 images]"));
            if (ra->feasible && ra->cost < br->cost) cheaper++;
        } else {
            assert_non_null(strstr(ca->reason, "all 1000 images]"));
        }
    }
    /* the first candidate runs on the whole split; then pass 1 */
    const qt_result *r0;
    qt_search_result(a, 0, NULL, &r0);
    assert_int_equal(r0->subset, 0);
    assert_true(subs >= 2);
    assert_true(cheaper >= 1);                    /* ignored by the answer */
    fprintf(stderr, "pass 1 on a subset: %d evaluations, %d on the subset\n", n, subs);
    qt_search_free(a);
    qt_search_free(b);

    /* a custom search evaluates pass 1 on the whole split by default */
    synth_init(&y1);
    for (int i = 0; i < 3; i++) y1.need[i][QT_FIXED] = 3 + i;
    a = lenient_search(g, &y1, 1, "");
    for (int i = 0; i < qt_search_evals(a); i++) {
        const qt_result *r;
        qt_search_result(a, i, NULL, &r);
        assert_int_equal(r->subset, 0);
    }
    best = qt_search_best(a, &br, &feasible);
    for (int i = 0; i < 3; i++) assert_int_equal(best->fmt[i].width, 3 + i);
    qt_search_free(a);
    qt_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(separable_reaches_the_optimum),
        cmocka_unit_test(pass1_on_a_subset),
        cmocka_unit_test(type_change_one_bit_fewer),
        cmocka_unit_test(phase1_halves_then_bisects),
        cmocka_unit_test(bias_move_is_taken),
        cmocka_unit_test(type_change_is_taken),
        cmocka_unit_test(ratio_ranks_the_moves),
        cmocka_unit_test(workers_and_budgets),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(lenet5_through_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
