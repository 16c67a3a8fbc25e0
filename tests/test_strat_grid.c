/*
 * test_strat_grid.c -- the grid strategy: the number and order of its
 * candidates for each mode ("uniform", "each", "list") and bias option
 * ("fit", "half", {"search": k} from either), types and widths, that every
 * candidate is evaluated and marked feasible by the job's constraint, the
 * same sequence with two workers, that every bad option is refused naming
 * it, and one run through the engine (the mlp checkpoint, a few validation
 * images) where "each" quantizes exactly one tensor per candidate.
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

/* ---- a synthetic evaluator: 0.9, less 0.01 per bit below 8 of every
 * quantized tensor (float: 0.9). With r = 0.99 (budget 0.009) a candidate
 * passes iff every quantized tensor has >= 8 bits. */
typedef struct synth {
    int calls;
    pthread_mutex_t mu;
} synth;

#define SYNTH_INIT { .mu = PTHREAD_MUTEX_INITIALIZER }

static int synth_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r)
{
    synth *y = user;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    double acc = 0.9;
    for (int i = 0; i < n; i++)
        if (c->fmt[i].type != QT_NONE && c->fmt[i].width < 8) acc -= 0.01 * (8 - c->fmt[i].width);
    tu_result(r, acc);
    tu_count(&y->mu, &y->calls);
    return QT_OK;
}

/* a custom search of the job {model mlp, strategy STRAT, space SPACE} */
static qt_search *grid_search(const char *strat, const char *space, const qt_graph *g, synth *y,
                              int workers)
{
    char job[2048];
    snprintf(job, sizeof job, "{\"model\":\"mlp\",\"strategy\":%s,\"space\":%s,"
             "\"constraint\":{\"relative\":0.99}}", strat, space);
    return tu_search(job, g, synth_eval, y, workers);
}

/* the fitted bias of tensor i at (t, w) */
static int fitted(const qt_search *s, int i, qt_type t, int w)
{
    qt_format f;
    assert_int_equal(qt_search_format(s, i, t, w, 0, &f), QT_OK);
    return f.bias;
}

/* "grid K/N: " */
static void check_prefix(const qt_cand *c, int k, int n)
{
    char want[32];
    snprintf(want, sizeof want, "grid %d/%d: ", k + 1, n);
    if (strncmp(c->reason, want, strlen(want)))
        fail_msg("reason '%s' does not begin with '%s'", c->reason, want);
}

#define FC6 "[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],\"widths\":[2,8]}]"

/* uniform, bias fit: one candidate per width of the rules' range, in
 * ascending order, every tensor at that width with its fitted bias; the
 * constraint marks those at 8 bits feasible */
static void uniform_fit(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    qt_search *s = grid_search("\"grid\"", FC6, g, &y, 1);
    tu_run(s);
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    assert_int_equal(n, 6);
    assert_int_equal(qt_search_evals(s), 7);
    assert_int_equal(y.calls, 7);
    for (int k = 0; k < 7; k++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, k, &c, &r);
        check_prefix(c, k, 7);
        for (int i = 0; i < n; i++) {
            assert_int_equal(c->fmt[i].type, QT_FIXED);
            assert_int_equal(c->fmt[i].width, 2 + k);
            assert_int_equal(c->fmt[i].bias, fitted(s, i, QT_FIXED, 2 + k));
        }
        char want[64];
        snprintf(want, sizeof want, "fixed %d bits, F fitted, all 6 tensors", 2 + k);
        assert_non_null(strstr(c->reason, want));
        assert_int_equal(r->feasible, 2 + k == 8);
        assert_int_equal(r->early, 0);
    }
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    assert_int_equal(best->fmt[0].width, 8);
    qt_search_free(s);
    qt_graph_free(g);
}

/* widths: a range, a list in its own order, a list of two */
static void uniform_widths(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const struct { const char *opt; int n, w[8]; } cases[] = {
        { "[4,6]", 3, { 4, 5, 6 } },
        { "[8,4,6]", 3, { 8, 4, 6 } },
        { "{\"list\":[6,3]}", 2, { 6, 3 } },
        { "[5]", 1, { 5 } },
        { "[12,16]", 5, { 12, 13, 14, 15, 16 } },     /* beyond the rules' range: as given */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        char strat[128];
        snprintf(strat, sizeof strat, "{\"name\":\"grid\",\"widths\":%s}", cases[t].opt);
        qt_search *s = grid_search(strat, FC6, g, &y, 1);
        tu_run(s);
        assert_int_equal(qt_search_evals(s), cases[t].n);
        for (int k = 0; k < cases[t].n; k++) {
            const qt_cand *c;
            qt_search_result(s, k, &c, NULL);
            for (int i = 0; i < 6; i++) assert_int_equal(c->fmt[i].width, cases[t].w[k]);
        }
        qt_search_free(s);
    }
    /* default widths in uniform mode: the union of the rules' ranges, each
     * tensor clamped to its own (fc1 2..4, the rest 3..8): 2..8, 7 */
    qt_search *s = grid_search("\"grid\"", "[{\"nodes\":\"fc*\",\"widths\":[3,8]},"
                               "{\"nodes\":\"fc1\",\"widths\":[2,4]}]", g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 7);
    for (int k = 0; k < 7; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        int w = 2 + k;
        assert_int_equal(c->fmt[0].width, w > 4 ? 4 : w);                /* fc1 */
        assert_int_equal(c->fmt[1].width, w < 3 ? 3 : w);                /* fc2 */
    }
    qt_search_free(s);
    qt_graph_free(g);
}

/* bias options in uniform mode: "half" (F = W/2 for every tensor),
 * {"search": k} (deltas -k..k from the fitted bias, inner loop), and
 * {"search": k, "from": "half"} */
static void uniform_bias(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    qt_search *s = grid_search("{\"name\":\"grid\",\"bias\":\"half\"}", FC6, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 7);
    for (int k = 0; k < 7; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(c->fmt[i].width, 2 + k);
            assert_int_equal(c->fmt[i].bias, (2 + k) / 2);
        }
        char want[32];
        snprintf(want, sizeof want, "F=%d (W/2)", (2 + k) / 2);
        assert_non_null(strstr(c->reason, want));
    }
    qt_search_free(s);

    s = grid_search("{\"name\":\"grid\",\"bias\":{\"search\":2}}", FC6, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 7 * 5);
    for (int k = 0; k < 35; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        int w = 2 + k / 5, d = k % 5 - 2;
        check_prefix(c, k, 35);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(c->fmt[i].width, w);
            assert_int_equal(c->fmt[i].bias, fitted(s, i, QT_FIXED, w) + d);
        }
        char want[32];
        if (d) snprintf(want, sizeof want, "F fitted%+d,", d);
        else snprintf(want, sizeof want, "F fitted,");
        assert_non_null(strstr(c->reason, want));
    }
    qt_search_free(s);

    s = grid_search("{\"name\":\"grid\",\"bias\":{\"search\":1,\"from\":\"half\"},"
                    "\"widths\":[2,4]}", FC6, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 3 * 3);
    for (int k = 0; k < 9; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        int w = 2 + k / 3, d = k % 3 - 1;
        for (int i = 0; i < 6; i++) assert_int_equal(c->fmt[i].bias, w / 2 + d);
    }
    qt_search_free(s);

    /* "frac": F outside [0, 2] is left out (W = 4, F = 3) */
    s = grid_search("{\"name\":\"grid\",\"bias\":{\"search\":1,\"from\":\"half\"},"
                    "\"widths\":[2,4],\"frac\":[0,2]}", FC6, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 8);
    for (int k = 0; k < 8; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        assert_true(c->fmt[0].bias >= 0 && c->fmt[0].bias <= 2);
        check_prefix(c, k, 8);
    }
    qt_search_free(s);
    qt_graph_free(g);
}

/* types: the space's, in qt_type order by default (a float narrower than 4
 * bits, which qt_search_format cannot make, is left out), or the option's order; a type some tensors do not
 * allow leaves them float */
static void uniform_types(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const char *space = "[{\"nodes\":\"fc*\",\"types\":[\"float\",\"fixed\"],\"widths\":[2,8]}]";
    qt_search *s = grid_search("\"grid\"", space, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 7 + 5);          /* float: 4..8 bits */
    for (int k = 0; k < 12; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        assert_int_equal(c->fmt[0].type, k < 7 ? QT_FIXED : QT_FLOAT);
        assert_int_equal(c->fmt[0].width, k < 7 ? 2 + k : 4 + k - 7);
        assert_non_null(strstr(c->reason, k < 7 ? "fixed" : "float"));
    }
    qt_search_free(s);
    s = grid_search("{\"name\":\"grid\",\"types\":[\"float\",\"fixed\"],\"widths\":[4,5]}",
                    space, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 4);
    const qt_type want[4] = { QT_FLOAT, QT_FLOAT, QT_FIXED, QT_FIXED };
    for (int k = 0; k < 4; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        assert_int_equal(c->fmt[2].type, want[k]);
    }
    qt_search_free(s);
    /* fc1 allows fixed only, fc2/fc3 float too: the float candidates leave fc1 float */
    s = grid_search("{\"name\":\"grid\",\"types\":[\"float\"],\"widths\":[8]}",
                    "[{\"nodes\":\"fc*\",\"types\":[\"fixed\",\"float\"]},"
                    "{\"nodes\":\"fc1\",\"types\":[\"fixed\"]}]", g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 1);
    const qt_cand *c;
    qt_search_result(s, 0, &c, NULL);
    assert_int_equal(c->fmt[0].type, QT_NONE);
    assert_int_equal(c->fmt[1].type, QT_FLOAT);
    assert_non_null(strstr(c->reason, "2 of 3 tensors"));
    qt_search_free(s);
    qt_graph_free(g);
}

/* each: tensor, then width, then bias; exactly one tensor quantized, named
 * in the reason; widths from each tensor's own rule unless given */
static void each_mode(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    qt_search *s = grid_search("{\"name\":\"grid\",\"mode\":\"each\"}", FC6, g, &y, 1);
    tu_run(s);
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    const qt_graph *gg = qt_search_graph(s);
    assert_int_equal(qt_search_evals(s), 6 * 7);
    for (int k = 0; k < 42; k++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, k, &c, &r);
        check_prefix(c, k, 42);
        int at = k / 7, w = 2 + k % 7;
        for (int i = 0; i < n; i++) assert_int_equal(c->fmt[i].type, i == at ? QT_FIXED : QT_NONE);
        assert_int_equal(c->fmt[at].width, w);
        assert_int_equal(c->fmt[at].bias, fitted(s, at, QT_FIXED, w));
        char want[96];
        snprintf(want, sizeof want, "%s %s alone, fixed %d bits F=%d (fitted)",
                 qt_graph_node_name(gg, co[at].node), qt_qpoint_name(co[at].point), w,
                 c->fmt[at].bias);
        if (!strstr(c->reason, want)) fail_msg("reason '%s' lacks '%s'", c->reason, want);
        /* one tensor 8 - w bits short: feasible only at 8 */
        assert_int_equal(r->feasible, w == 8);
    }
    qt_search_free(s);

    /* per-tensor ranges (fc1 2..4, the others 6..8) and bias search k = 1 */
    s = grid_search("{\"name\":\"grid\",\"mode\":\"each\",\"bias\":{\"search\":1}}",
                    "[{\"nodes\":\"fc*\",\"widths\":[6,8]},{\"nodes\":\"fc1\",\"widths\":[2,4]}]",
                    g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 3 * 3 * 3);
    for (int k = 0; k < 27; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        int at = k / 9, w = (at ? 6 : 2) + k % 9 / 3, d = k % 3 - 1;
        assert_int_equal(c->fmt[at].width, w);
        assert_int_equal(c->fmt[at].bias, fitted(s, at, QT_FIXED, w) + d);
        char want[32];
        snprintf(want, sizeof want, "F=%d (fitted%s", c->fmt[at].bias, d ? "" : ")");
        assert_non_null(strstr(c->reason, want));
    }
    qt_search_free(s);

    /* "half" in each mode, explicit widths */
    s = grid_search("{\"name\":\"grid\",\"mode\":\"each\",\"bias\":\"half\",\"widths\":[8,4,6]}",
                    FC6, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 6 * 3);
    for (int k = 0; k < 18; k++) {
        const qt_cand *c;
        qt_search_result(s, k, &c, NULL);
        const int ws[3] = { 8, 4, 6 };
        assert_int_equal(c->fmt[k / 3].width, ws[k % 3]);
        assert_int_equal(c->fmt[k / 3].bias, ws[k % 3] / 2);
        assert_non_null(strstr(c->reason, "(W/2)"));
    }
    qt_search_free(s);
    qt_graph_free(g);
}

/* list: the candidates as given, by "NODE POINT" or by "NODE" alone */
static void list_mode(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    qt_search *s = grid_search(
        "{\"name\":\"grid\",\"mode\":\"list\",\"candidates\":["
        "{\"fc1 weights\":\"fixed<8,6>\",\"fc3 bias\":\"fixed<4,2>\"},"
        "{\"fc2 weights\":{\"type\":\"fixed\",\"width\":6,\"frac\":5}},"
        "{}]}", FC6, g, &y, 1);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 3);
    const qt_cand *c;
    qt_search_result(s, 0, &c, NULL);
    assert_int_equal(c->fmt[0].type, QT_FIXED);
    assert_int_equal(c->fmt[0].width, 8);
    assert_int_equal(c->fmt[0].bias, 6);
    assert_int_equal(c->fmt[5].width, 4);
    for (int i = 1; i < 5; i++) assert_int_equal(c->fmt[i].type, QT_NONE);
    assert_string_equal(c->reason, "grid 1/3: fc1 weights fixed<8,6>, fc3 bias fixed<4,2>");
    qt_search_result(s, 1, &c, NULL);
    assert_int_equal(c->fmt[2].width, 6);
    assert_int_equal(c->fmt[2].bias, 5);
    qt_search_result(s, 2, &c, NULL);
    for (int i = 0; i < 6; i++) assert_int_equal(c->fmt[i].type, QT_NONE);
    qt_search_free(s);
    /* one tuned point per node: the node's name suffices */
    s = grid_search("{\"name\":\"grid\",\"mode\":\"list\",\"candidates\":[{\"fc2\":\"fixed<5,3>\"}]}",
                    "[{\"nodes\":\"fc*\"}]", g, &y, 1);
    tu_run(s);
    qt_search_result(s, 0, &c, NULL);
    assert_int_equal(c->fmt[1].width, 5);
    qt_search_free(s);
    qt_graph_free(g);
}

/* every candidate is evaluated once, in the same order with two workers */
static void workers_same_sequence(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y1 = SYNTH_INIT, y2 = SYNTH_INIT;
    const char *strat = "{\"name\":\"grid\",\"mode\":\"each\",\"bias\":{\"search\":1}}";
    qt_search *a = grid_search(strat, FC6, g, &y1, 1), *b = grid_search(strat, FC6, g, &y2, 2);
    tu_run(a);
    tu_run(b);
    assert_int_equal(qt_search_evals(a), 6 * 7 * 3);
    assert_int_equal(qt_search_evals(b), 6 * 7 * 3);
    assert_int_equal(y1.calls, 6 * 7 * 3);
    assert_int_equal(y2.calls, 6 * 7 * 3);
    const qt_coord *co;
    int n = qt_search_coords(a, &co);
    for (int i = 0; i < qt_search_evals(a); i++) {
        const qt_cand *ca, *cb;
        const qt_result *ra, *rb;
        qt_search_result(a, i, &ca, &ra);
        qt_search_result(b, i, &cb, &rb);
        assert_string_equal(ca->reason, cb->reason);
        assert_memory_equal(ca->fmt, cb->fmt, (size_t)n * sizeof *ca->fmt);
        assert_true(ra->top1 == rb->top1);
    }
    qt_search_free(a);
    qt_search_free(b);
    qt_graph_free(g);
}

/* every bad option is refused with its name */
static void bad_options(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    synth y = SYNTH_INIT;
    const char *space_ff = "[{\"nodes\":\"fc*\",\"types\":[\"fixed\",\"float\"]}]";
    const struct { const char *opts, *space, *want; } bad[] = {
        { "\"mode\":\"all\"", FC6, "strategy.mode" },
        { "\"mode\":1", FC6, "strategy.mode" },
        { "\"widths\":[0,4]", FC6, "strategy.widths[0]" },
        { "\"widths\":[2,33]", FC6, "strategy.widths[1]" },
        { "\"widths\":[8,4]", FC6, "strategy.widths" },
        { "\"widths\":[4,6,4]", FC6, "strategy.widths" },
        { "\"widths\":[]", FC6, "strategy.widths" },
        { "\"widths\":4", FC6, "strategy.widths" },
        { "\"widths\":{\"lst\":[4]}", FC6, "strategy.widths" },
        { "\"widths\":[4.5]", FC6, "strategy.widths[0]" },
        { "\"types\":[\"float\"]", FC6, "strategy.types" },
        { "\"types\":[\"none\"]", FC6, "strategy.types[0]" },
        { "\"types\":[\"fixed\",\"fixed\"]", FC6, "strategy.types" },
        { "\"types\":\"fixed\"", FC6, "strategy.types" },
        { "\"bias\":\"fitted\"", FC6, "strategy.bias" },
        { "\"bias\":2", FC6, "strategy.bias" },
        { "\"bias\":{\"search\":0}", FC6, "strategy.bias.search" },
        { "\"bias\":{\"search\":17}", FC6, "strategy.bias.search" },
        { "\"bias\":{\"search\":\"2\"}", FC6, "strategy.bias.search" },
        { "\"bias\":{\"from\":\"half\"}", FC6, "strategy.bias.search" },
        { "\"bias\":{\"search\":2,\"from\":\"zero\"}", FC6, "strategy.bias.from" },
        { "\"bias\":{\"search\":2,\"k\":1}", FC6, "strategy.bias.k" },
        { "\"bias\":\"half\"", space_ff, "strategy.bias" },
        { "\"speed\":1", FC6, "strategy.speed" },
        { "\"frac\":[3,1]", FC6, "strategy.frac" },
        { "\"frac\":5", FC6, "strategy.frac" },
        { "\"frac\":[0,2000]", FC6, "strategy.frac" },
        { "\"candidates\":[{}]", FC6, "strategy.candidates" },
        { "\"mode\":\"list\"", FC6, "strategy.candidates" },
        { "\"mode\":\"list\",\"candidates\":[]", FC6, "strategy.candidates" },
        { "\"mode\":\"list\",\"candidates\":[1]", FC6, "strategy.candidates[0]" },
        { "\"mode\":\"list\",\"candidates\":[{},{\"fc9\":\"fixed<8,4>\"}]", FC6,
          "strategy.candidates[1]" },
        { "\"mode\":\"list\",\"candidates\":[{\"fc1\":\"fixed<8,4>\"}]", FC6,
          "strategy.candidates[0]" },                            /* fc1: weights and bias */
        { "\"mode\":\"list\",\"candidates\":[{\"fc1 weights\":\"fixed<8>\"}]", FC6,
          "strategy.candidates[0].fc1 weights" },
        { "\"mode\":\"list\",\"candidates\":[{},{}]", FC6, "strategy.candidates[1]" },
        { "\"mode\":\"list\",\"widths\":[4,8],\"candidates\":[{}]", FC6, "strategy.widths" },
        { "\"mode\":\"list\",\"candidates\":[{}],\"bias\":\"fit\"", FC6, "strategy.bias" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char job[1024];
        qt_error err;
        qt_search *s;
        snprintf(job, sizeof job, "{\"model\":\"mlp\",\"strategy\":{\"name\":\"grid\",%s},"
                 "\"space\":%s}", bad[k].opts, bad[k].space);
        int rc = tu_search_rc(job, g, synth_eval, &y, 0, &s, &err);
        if (rc != QT_EINVAL || !strstr(err.text, bad[k].want))
            fail_msg("%s: rc %d, '%s' (want '%s')", job, rc, err.text, bad[k].want);
        assert_null(s);
    }
    /* "grid" is also a plain strategy name, and a non-object is refused */
    qt_job_spec sp;
    qt_error err;
    assert_int_equal(qt_job_parse("{\"model\":\"mlp\",\"strategy\":\"grid\"}", &sp, &err), QT_OK);
    assert_string_equal(sp.strategy, "grid");
    qt_job_clear(&sp);
    qt_graph_free(g);
}

/* through the engine: the mlp checkpoint on 100 validation images, every
 * candidate on the whole split (early_stop false); "each" quantizes
 * exactly one (node, point) per candidate, as its configuration shows */
static void each_through_the_engine(void **st)
{
    (void)st;
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    assert_int_equal(qt_job_parse(
        "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/mlp.qtck\",\"val_limit\":100,"
        "\"early_stop\":false,\"space\":[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"output\"]},"
        "{\"nodes\":\"fc2\",\"points\":[\"intrinsic\"]}],"
        "\"strategy\":{\"name\":\"grid\",\"mode\":\"each\",\"widths\":{\"list\":[3,8]},"
        "\"bias\":{\"search\":1}}}", &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    assert_int_equal(n, 7);
    tu_run(s);
    assert_int_equal(qt_search_evals(s), 7 * 2 * 3);
    int quantized_hurt = 0;
    for (int k = 0; k < qt_search_evals(s); k++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, k, &c, &r);
        int at = -1, count = 0;
        for (int i = 0; i < n; i++)
            if (c->fmt[i].type != QT_NONE) { at = i; count++; }
        assert_int_equal(count, 1);
        assert_int_equal(at, k / 6);
        /* the configuration the engine ran: one node, one point */
        char *cj = qt_search_config_json(s, c);
        json_t *j = json_loads(cj, 0, NULL);
        assert_non_null(j);
        size_t points = 0;
        const char *node;
        json_t *pts;
        json_object_foreach(j, node, pts) {
            if (json_is_object(pts)) {
                const char *p;
                json_t *v;
                json_object_foreach(pts, p, v)
                    if (strcmp(p, "intrinsic_mode") != 0) points++;
            }
            assert_string_equal(node, qt_graph_node_name(qt_search_graph(s), co[at].node));
        }
        assert_int_equal(points, 1);
        json_decref(j);
        free(cj);
        assert_int_equal(r->images, 100);
        assert_int_equal(r->early, 0);
        assert_int_equal(r->fail, QT_FAIL_NONE);
        if (c->fmt[at].width == 3 && r->top1 < qt_search_baseline(s)->top1) quantized_hurt++;
    }
    assert_true(quantized_hurt > 0);       /* 3 bits is felt somewhere */
    fprintf(stderr, "mlp grid each: %d tensors, %d evaluations, float top-1 %.2f%%\n", n,
            qt_search_evals(s), 100 * qt_search_baseline(s)->top1);
    qt_search_free(s);
    qt_job_clear(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uniform_fit),
        cmocka_unit_test(uniform_widths),
        cmocka_unit_test(uniform_bias),
        cmocka_unit_test(uniform_types),
        cmocka_unit_test(each_mode),
        cmocka_unit_test(list_mode),
        cmocka_unit_test(workers_same_sequence),
        cmocka_unit_test(bad_options),
        cmocka_unit_test(each_through_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
