/*
 * test_tuner_search.c -- the search loop: coordinates, costs, the memo and
 * the caller's cache, budgets, workers, the answer; uniform against a
 * synthetic evaluator whose optimum is known; early stopping against full
 * evaluations through the engine.
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

/* ---- a custom search against the synthetic evaluator "need"
 * (tuner_testutil.h): tensor i needs at least need[i] bits ---- */

static qt_search *synth_search(const char *job, qt_graph *g, tu_need *y, int workers)
{
    return tu_search(job, g, tu_need_eval, y, workers);
}

/* coordinates: rules in order, later ones override; node then point order */
static void coords_from_rules(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    qt_search *s = synth_search(
        "{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":["
        "{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],\"widths\":[2,8]},"
        "{\"nodes\":\"fc2\",\"points\":[\"weights\"],\"types\":[\"float\"],\"widths\":[4,6]},"
        "{\"nodes\":\"relu?\",\"points\":[\"output\"],\"types\":[\"ufixed\"]}]}", g, &y, 1);
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    assert_int_equal(n, 8);                  /* fc1..3 w+b, relu1..2 out */
    int fc2 = qt_graph_find(g, "fc2");
    for (int i = 0; i < n; i++) {
        if (i) assert_true(c[i].node > c[i - 1].node ||
                           (c[i].node == c[i - 1].node && c[i].point > c[i - 1].point));
        if (c[i].node == fc2 && c[i].point == QT_QP_WEIGHTS) {
            assert_int_equal(c[i].types, 1u << QT_FLOAT);
            assert_int_equal(c[i].wmin, 4);
        }
        if (c[i].point == QT_QP_WEIGHTS)
            assert_int_equal(c[i].values, qt_graph_param(g, c[i].node, 0)->size);
    }
    qt_search_free(s);

    /* a rule that matches nothing is an error naming it */
    qt_error err;
    assert_int_equal(tu_search_rc("{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                                  "[{\"nodes\":\"conv*\"}]}", g, tu_need_eval, &y, 0, &s, &err),
                     QT_EINVAL);
    assert_non_null(strstr(err.text, "space[0].nodes"));
    assert_non_null(strstr(err.text, "conv*"));
    /* weights asked of nodes that have none */
    assert_int_equal(tu_search_rc("{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                                  "[{\"nodes\":\"relu*\"}]}", g, tu_need_eval, &y, 0, &s, &err),
                     QT_EINVAL);
    assert_non_null(strstr(err.text, "space[0]"));
    qt_graph_free(g);
}

/* costs against a hand count on the mlp (784-300-100-10) */
static void costs_by_hand(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                                "[{\"nodes\":\"fc*\",\"points\":[\"weights\"],\"widths\":[4,4]},"
                                "{\"nodes\":\"relu*\",\"points\":[\"output\"],\"types\":[\"ufixed\"],"
                                "\"widths\":[6,6]}],\"cost\":\"bitops\"}", g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(s), 1);
    const qt_result *r;
    const qt_cand *c;
    qt_search_result(s, 0, &c, &r);
    double W = 784.0 * 300 + 300 * 100 + 100 * 10, B = 300 + 100 + 10;
    assert_true(fabs(r->weight_bits - (4 * W + 32 * B)) < 1e-6);
    double acts = 784 + 300 + 300 + 100 + 100 + 10;         /* input, fc1, relu1, ... */
    assert_true(fabs(r->act_bits - (32 * (acts - 400) + 6 * 400)) < 1e-6);
    /* fc1 reads the float input, fc2 and fc3 read 6-bit relu outputs */
    double bo = 784.0 * 300 * 4 * 32 + 300.0 * 100 * 4 * 6 + 100.0 * 10 * 4 * 6;
    assert_true(fabs(r->bitops - bo) < 1e-6);
    assert_true(fabs(r->cost - bo) < 1e-6);
    double bo0 = (784.0 * 300 + 300 * 100 + 100 * 10) * 1024;
    assert_true(fabs(r->compression - bo0 / bo) < 1e-9);
    qt_search_free(s);
    qt_graph_free(g);
}

/* uniform finds the narrowest width that keeps the constraint */
static void uniform_finds_the_optimum(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    /* 6 tensors; tensor 3 needs 7 bits: any uniform width below 7 loses 0.02
     * per missing bit there; r = 0.99 of 0.9 allows 0.009 */
    for (int i = 0; i < 6; i++) y.need[i] = 3;
    y.need[3] = 7;
    qt_search *s = synth_search("{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                                "[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],"
                                "\"widths\":[2,12]}]}", g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(s), 11);
    assert_int_equal(y.calls, 11);
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    for (int i = 0; i < 6; i++) assert_int_equal(best->fmt[i].width, 7);
    assert_true(fabs(r->top1 - 0.9) < 1e-12);
    assert_non_null(strstr(best->reason, "7 bits"));
    qt_search_free(s);

    /* nothing feasible: the closest answer, marked so */
    y.need[3] = 3;
    y.need[1] = 20;                                /* fc2's weights */
    s = synth_search("{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                     "[{\"nodes\":\"fc*\",\"points\":[\"weights\"],\"widths\":[2,8]}]}", g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_false(feasible);
    assert_int_equal(best->fmt[0].width, 8);       /* the most accurate one */
    qt_search_free(s);
    qt_graph_free(g);
}

/* the same job on 1 and 3 workers: the same sequence of results */
static void workers_do_not_change_the_outcome(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    const char *job = "{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                      "[{\"nodes\":\"fc*\",\"points\":[\"weights\"],\"types\":[\"fixed\",\"float\",\"log\"],"
                      "\"widths\":[3,10]}]}";
    tu_need y1 = TU_NEED_INIT, y3 = TU_NEED_INIT;
    for (int i = 0; i < 3; i++) y1.need[i] = y3.need[i] = 4 + i;
    qt_search *a = synth_search(job, g, &y1, 1), *b = synth_search(job, g, &y3, 3);
    assert_int_equal(qt_search_run(a, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_run(b, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(a), qt_search_evals(b));
    assert_true(qt_search_evals(a) > 10);
    for (int i = 0; i < qt_search_evals(a); i++) {
        const qt_cand *ca, *cb;
        const qt_result *ra, *rb;
        qt_search_result(a, i, &ca, &ra);
        qt_search_result(b, i, &cb, &rb);
        assert_string_equal(ca->reason, cb->reason);
        assert_true(ra->top1 == rb->top1 && ra->cost == rb->cost && ra->feasible == rb->feasible);
    }
    qt_search_free(a);
    qt_search_free(b);
    qt_graph_free(g);
}

/* ---- the caller's cache: what is stored comes back instead of a computation ---- */

typedef struct kv { char key[80]; qt_result r; } kv;
typedef struct store { kv e[256]; int n, lookups, hits, stored, refuse_after; } store;

static int st_lookup(void *user, const char *key, qt_result *r)
{
    store *t = user;
    t->lookups++;
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].key, key)) { *r = t->e[i].r; t->hits++; return 1; }
    return 0;
}

static int st_stored(void *user, const char *key, const qt_cand *c, const char *cfg,
                     const qt_result *r)
{
    store *t = user;
    (void)c;
    assert_non_null(cfg);
    assert_true(strlen(key) == 64);
    if (t->n < 256) {
        snprintf(t->e[t->n].key, sizeof t->e[t->n].key, "%s", key);
        t->e[t->n++].r = *r;
    }
    t->stored++;
    return t->refuse_after && t->stored > t->refuse_after ? QT_EFULL : QT_OK;
}

static void budget_and_cache(void **st)
{
    (void)st;
    qt_graph *g = tu_mlp();
    tu_need y = TU_NEED_INIT;
    const char *job = "{\"model\":\"mlp\",\"strategy\":\"uniform\",\"budget\":{\"evaluations\":5},"
                      "\"space\":[{\"nodes\":\"fc*\",\"widths\":[2,16]}]}";
    qt_search *s = synth_search(job, g, &y, 1);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    assert_int_equal(qt_search_evals(s), 5);          /* the budget held */
    qt_search_free(s);

    /* with a cache: a first run stores 15, a second computes none */
    store *t = calloc(1, sizeof *t);
    qt_job_spec sp;
    qt_error err;
    qt_eval_cache cache = { st_lookup, st_stored, t };
    assert_int_equal(qt_job_parse("{\"model\":\"mlp\",\"strategy\":\"uniform\",\"space\":"
                                  "[{\"nodes\":\"fc*\",\"widths\":[2,16]}]}", &sp, &err), QT_OK);
    for (int run = 0; run < 2; run++) {
        y.calls = 0;
        assert_int_equal(qt_search_new_custom(&sp, g, &tu_float, 1, tu_need_eval, &y, &cache, &s,
                                              &err), QT_OK);
        assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
        assert_int_equal(qt_search_evals(s), 15);
        if (run == 0) {
            assert_int_equal(y.calls, 15);
            assert_int_equal(t->stored, 15);
            assert_int_equal(qt_search_computed(s), 15);
        } else {
            assert_int_equal(y.calls, 0);               /* nothing measured twice */
            assert_int_equal(t->hits, 15);
            assert_int_equal(t->stored, 15);
            assert_int_equal(qt_search_computed(s), 0);
            const qt_result *r;
            qt_search_result(s, 3, NULL, &r);
            assert_int_equal(r->cached, 1);
        }
        qt_search_free(s);
    }
    /* a cache that cannot keep an evaluation (a full disk) stops the search
     * with its error, right after the evaluation it refused */
    {
        store *t2 = calloc(1, sizeof *t2);
        qt_eval_cache c2 = { st_lookup, st_stored, t2 };
        t2->refuse_after = 3;
        y.calls = 0;
        assert_int_equal(qt_search_new_custom(&sp, g, &tu_float, 1, tu_need_eval, &y, &c2, &s, &err),
                         QT_OK);
        assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_EFULL);
        assert_non_null(strstr(err.text, "could not keep"));
        assert_int_equal(y.calls, 4);          /* nothing computed after the refusal */
        qt_search_free(s);
        free(t2);
    }
    /* another constraint is another key: an early-stopped verdict under one
     * bound says nothing about another */
    sp.relative = 0.95;
    int before = t->hits;
    assert_int_equal(qt_search_new_custom(&sp, g, &tu_float, 1, tu_need_eval, &y, &cache, &s, &err),
                     QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, NULL), QT_OK);
    assert_int_equal(t->hits, before);
    qt_search_free(s);
    qt_job_clear(&sp);
    free(t);
    qt_graph_free(g);
}

/* through the engine: every early-stopped verdict is the one the whole
 * split gives, stops happen, and the answer's result is reproducible.
 * hard: "val_order": "hardest_first" (only the exact stop; an early stop's
 * top-1 bounds the whole split's); returns the answer's cost and, in
 * *stops, the early stops */
static double early_stop_run(int early_pass, double rel, int hard, int *stops)
{
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    char job[1024];
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/mlp.qtck\","
             "\"strategy\":\"uniform\",\"val_limit\":3000,\"early_pass\":%s,"
             "\"val_order\":\"%s\",\"constraint\":{\"relative\":%g},\"space\":["
             "{\"nodes\":\"fc*\",\"types\":[\"fixed\",\"log\"],\"widths\":[2,7]},"
             "{\"nodes\":\"relu*\",\"points\":[\"output\"],\"types\":[\"ufixed\"],"
             "\"widths\":[2,7]}]}", early_pass ? "true" : "false",
             hard ? "hardest_first" : "random", rel);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    const qt_result *b = qt_search_baseline(s);
    assert_int_equal(b->images, 3000);
    assert_true(b->top1 > 0.85);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    int n = qt_search_evals(s), early = 0, early_ok = 0;
    assert_true(n >= 10);
    qt_dataset *val, *sub;
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_VAL, &val, &err), QT_OK);
    assert_int_equal(qt_dataset_subset(val, 0, 0, 3000, &sub, &err), QT_OK);
    qt_graph *g = (qt_graph *)qt_search_graph(s);
    for (int i = 0; i < n; i++) {
        const qt_cand *c;
        const qt_result *r;
        qt_qconfig *cfg;
        qt_metrics m;
        qt_search_result(s, i, &c, &r);
        assert_int_equal(qt_search_config(s, c, &cfg, &err), QT_OK);
        assert_int_equal(qt_evaluate(g, cfg, sub, NULL, &m, &err), QT_OK);
        int full = m.top1 >= rel * b->top1 - 1e-12;
        assert_int_equal(r->feasible, full);
        if (r->early) {
            early++;
            early_ok += r->feasible;
            if (!early_pass) assert_false(r->feasible);
            assert_true(r->images < 3000);
            if (hard && r->feasible) assert_true(r->top1 <= m.top1 + 1e-12);   /* at least */
            if (hard && !r->feasible) assert_true(r->top1 >= m.top1 - 1e-12);  /* at most */
        } else {
            assert_int_equal(r->images, 3000);
            assert_true(fabs(r->top1 - m.top1) < 1e-12);
        }
        qt_qconfig_free(cfg);
    }
    qt_search_work w;
    qt_search_work_get(s, &w);
    fprintf(stderr, "early_pass %d, %s: %d evaluations, %d stopped early (%d passing), "
            "%.0f images\n", early_pass, hard ? "hardest first" : "random order", n, early,
            early_ok, w.images);
    *stops = early;
    assert_true(early >= 3);
    if (early_pass) assert_true(early_ok >= 1);

    /* the answer measured on the test split, apart from the search */
    const qt_cand *best;
    const qt_result *br;
    qt_result tb, tf;
    int feasible;
    assert_non_null(best = qt_search_best(s, &br, &feasible));
    assert_int_equal(qt_search_measure_test(s, NULL, &tf, &err), QT_OK);
    assert_int_equal(qt_search_measure_test(s, best, &tb, &err), QT_OK);
    assert_int_equal(tf.images, 10000);
    assert_true(fabs(tf.top1 - 0.8949) < 1e-9);        /* mlp.qtck's recorded test accuracy */
    assert_true(tb.top1 > tf.top1 - 0.03);
    assert_true(fabs(tb.cost - br->cost) < 1e-9);
    double cost = br->cost;
    qt_dataset_free(sub);
    qt_dataset_free(val);
    qt_search_free(s);
    qt_job_clear(&sp);
    return cost;
}

static void early_stop_agrees_with_full_evaluation(void **st)
{
    (void)st;
    int a, b;
    double ca = early_stop_run(0, 0.99, 0, &a), cb = early_stop_run(0, 0.99, 1, &b);
    assert_true(ca == cb);       /* every verdict the whole split's: the same answer */
    assert_true(b >= a);         /* the exact stop, hardest first, misses none of alpha's */
    early_stop_run(1, 0.9, 0, &a);      /* margins wide enough to pass early */
    early_stop_run(1, 0.9, 1, &b);
}

/* a model trained and exported by PyTorch tunes like the zoo's: the same
 * space (by PyTorch's node names), a feasible answer, the same widths */
static int tune_uniform(const char *model, const char *conv, const char *fc, const char *relu,
                        int *width)
{
    char job[1024];
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/%s\","
             "\"strategy\":\"uniform\",\"val_limit\":2000,\"space\":["
             "{\"nodes\":\"%s\",\"widths\":[2,8]},{\"nodes\":\"%s\",\"widths\":[2,8]},"
             "{\"nodes\":\"%s\",\"points\":[\"output\"],\"types\":[\"ufixed\"],"
             "\"widths\":[2,8]}]}", model, conv, fc, relu);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    assert_non_null(best);
    assert_true(feasible);
    assert_true(r->compression > 4.0);
    *width = best->fmt[0].width;
    fprintf(stderr, "%s: %d tensors, answer %d bits, %.2fx, top-1 %.2f%% (float %.2f%%)\n",
            model, n, *width, r->compression, 100 * r->top1, 100 * qt_search_baseline(s)->top1);
    qt_search_free(s);
    qt_job_clear(&sp);
    return n;
}

static void onnx_model_tunes_like_a_zoo_model(void **st)
{
    (void)st;
    int wz, wo;
    int nz = tune_uniform("lenet5.qtck", "conv*", "fc*", "relu*", &wz);
    int no = tune_uniform("lenet5_torch.onnx", "/*/Conv", "/fc*/Gemm", "/relu*/Relu", &wo);
    assert_int_equal(nz, 9);
    assert_int_equal(no, 9);
    assert_true(abs(wz - wo) <= 1);
}

/* a training job: each candidate trains the model from its seed under the
 * candidate's formats; gradient ranges come from the float training */
static void training_job(void **st)
{
    (void)st;
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    assert_int_equal(qt_job_parse("{\"model\":\"mlp\",\"kind\":\"training\",\"epochs\":1,"
                                  "\"lr\":0.05,\"train_limit\":4000,\"val_limit\":1000,"
                                  "\"strategy\":\"uniform\",\"space\":[{\"nodes\":\"fc*\","
                                  "\"points\":[\"weights\",\"grad_weights\"],\"widths\":[3,16]}]}",
                                  &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    const qt_result *b = qt_search_baseline(s);
    assert_true(b->top1 > 0.6);                     /* it was trained */
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        assert_true(c[i].absmax > 0 && isfinite(c[i].absmax));
        if (c[i].point == QT_QP_GRAD_WEIGHTS) assert_true(c[i].absmax != 1.0);  /* measured */
    }
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    const qt_result *r16, *r3;
    qt_search_result(s, 0, NULL, &r16);                       /* 16 bits */
    qt_search_result(s, qt_search_evals(s) - 1, NULL, &r3);   /* 3 bits */
    fprintf(stderr, "training job: float %.2f%%, 16-bit %.2f%%, 3-bit %.2f%%\n",
            100 * b->top1, 100 * r16->top1, 100 * r3->top1);
    assert_true(fabs(r16->top1 - b->top1) < 0.03);
    assert_true(r16->feasible);
    assert_true(r3->top1 < b->top1 - 0.1);
    qt_search_free(s);
    qt_job_clear(&sp);
}

/* ---- datasets other than the built-in one ("data") ---- */

typedef struct firstkey { char key[65]; int n; } firstkey;

static int key_stored(void *user, const char *key, const qt_cand *c, const char *cfg,
                      const qt_result *r)
{
    firstkey *k = user;
    (void)c; (void)cfg; (void)r;
    if (!k->n++) snprintf(k->key, sizeof k->key, "%s", key);
    return QT_OK;
}

/* run one uniform evaluation of mlp with extra job fields: the first key,
 * or the error of qt_search_new (rc) */
static int one_key(const char *extra, char key[65], double *top1, qt_error *err)
{
    char job[4096];
    qt_job_spec sp;
    qt_search *s;
    firstkey k = { "", 0 };
    qt_eval_cache cache = { NULL, key_stored, &k };
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/mlp.qtck\","
             "\"strategy\":\"uniform\",\"val_limit\":300,\"budget\":{\"evaluations\":1}%s%s}",
             extra ? "," : "", extra ? extra : "");
    int rc = qt_job_parse(job, &sp, err);
    if (rc) { fprintf(stderr, "%s\n", err->text); return rc; }
    rc = qt_search_new(&sp, &cache, &s, err);
    qt_job_clear(&sp);
    if (rc) return rc;
    if (top1) *top1 = qt_search_baseline(s)->top1;
    assert_int_equal(qt_search_run(s, NULL, NULL, err), QT_OK);
    assert_int_equal(k.n, 1);
    snprintf(key, 65, "%s", k.key);
    qt_search_free(s);
    return QT_OK;
}

static void write_idx(const char *path, const unsigned char *magic, const uint32_t *dims, int nd,
                      const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(magic, 1, 4, f);
    for (int i = 0; i < nd; i++) {
        unsigned char b[4] = { (unsigned char)(dims[i] >> 24), (unsigned char)(dims[i] >> 16),
                               (unsigned char)(dims[i] >> 8), (unsigned char)dims[i] };
        fwrite(b, 1, 4, f);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* "data" naming Fashion-MNIST's own files with its normalisation and split
 * is the same data: the same keys (stored results serve both); another
 * normalisation or split is other data: other keys. Bad files name the
 * file and the problem. */
static void registered_datasets(void **st)
{
    (void)st;
    const char *dir = getenv("QT_DATA_DIR");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    char kb[65], kc[65], extra[2048], msg[512];
    double tb, tc;
    qt_error err;
    assert_int_equal(one_key(NULL, kb, &tb, &err), QT_OK);
    const char *fmt = "\"dataset\":\"fm-copy\",\"data\":{\"train_images\":\"%s/train-images-idx3-"
                      "ubyte.gz\",\"train_labels\":\"%s/train-labels-idx1-ubyte.gz\","
                      "\"test_images\":\"%s/t10k-images-idx3-ubyte.gz\",\"test_labels\":"
                      "\"%s/t10k-labels-idx1-ubyte.gz\",\"norm\":{\"scale\":%.17g,\"mean\":%s,"
                      "\"std\":%s},\"val_count\":%d}";
    snprintf(extra, sizeof extra, fmt, dir, dir, dir, dir, 1.0 / 255.0, "0.2860", "0.3530", 10000);
    assert_int_equal(one_key(extra, kc, &tc, &err), QT_OK);
    assert_string_equal(kb, kc);
    assert_true(tb == tc);
    /* its test split is Fashion-MNIST's */
    qt_job_spec sp;
    char job[2300];
    snprintf(job, sizeof job, "{\"model\":\"m\",%s}", extra);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    qt_dataset *a, *b;
    assert_int_equal(qt_job_dataset(&sp, QT_SPLIT_TEST, &a, &err), QT_OK);
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_TEST, &b, &err), QT_OK);
    assert_true(qt_dataset_hash(a) == qt_dataset_hash(b));
    qt_dataset_free(a);
    qt_dataset_free(b);
    assert_int_equal(qt_job_dataset(&sp, QT_SPLIT_TRAIN, &a, &err), QT_OK);
    assert_int_equal(qt_dataset_count(a), 50000);
    qt_dataset_free(a);
    qt_job_clear(&sp);
    /* other normalisation, other split: other keys */
    snprintf(extra, sizeof extra, fmt, dir, dir, dir, dir, 1.0 / 255.0, "0", "1", 10000);
    assert_int_equal(one_key(extra, kc, NULL, &err), QT_OK);
    assert_string_not_equal(kb, kc);
    snprintf(extra, sizeof extra, fmt, dir, dir, dir, dir, 1.0 / 255.0, "0.2860", "0.3530", 5000);
    assert_int_equal(one_key(extra, kc, NULL, &err), QT_OK);
    assert_string_not_equal(kb, kc);

    /* bad files */
    char tdir[] = "/tmp/qt_data_XXXXXX";
    assert_non_null(mkdtemp(tdir));
    enum { N = 60 };
    static unsigned char img[N * 28 * 28], lab[N], small[N * 8 * 8];
    for (int i = 0; i < N * 28 * 28; i++) img[i] = (unsigned char)(i * 37);
    for (int i = 0; i < N; i++) lab[i] = (unsigned char)(i % 10);
    const unsigned char m3[4] = { 0, 0, 8, 3 }, m1[4] = { 0, 0, 8, 1 }, bad[4] = { 0, 0, 9, 3 };
    uint32_t di[3] = { N, 28, 28 }, dl[1] = { N }, dl2[1] = { N - 1 }, ds[3] = { N, 8, 8 };
    char pi[300], pl[300], pm[300], pt[300], pc[300], pb[300], ps[300];
    snprintf(pi, sizeof pi, "%s/img", tdir);
    snprintf(pl, sizeof pl, "%s/lab", tdir);
    snprintf(pm, sizeof pm, "%s/magic", tdir);
    snprintf(pt, sizeof pt, "%s/trunc", tdir);
    snprintf(pc, sizeof pc, "%s/count", tdir);
    snprintf(pb, sizeof pb, "%s/biglab", tdir);
    snprintf(ps, sizeof ps, "%s/small", tdir);
    write_idx(pi, m3, di, 3, img, sizeof img);
    write_idx(pl, m1, dl, 1, lab, sizeof lab);
    write_idx(pm, bad, di, 3, img, sizeof img);
    write_idx(pt, m3, di, 3, img, sizeof img / 2);
    write_idx(pc, m1, dl2, 1, lab, N - 1);
    lab[7] = 12;
    write_idx(pb, m1, dl, 1, lab, sizeof lab);
    write_idx(ps, m3, ds, 3, small, sizeof small);
    const struct { const char *im, *lb, *want1, *want2; } cases[] = {
        { pi, pl, NULL, NULL },                               /* good */
        { "/nonexistent/img", pl, "/nonexistent/img", "No such file" },
        { pm, pl, pm, "not an IDX file" },
        { pt, pl, pt, "truncated" },
        { pi, pc, pc, "labels" },
        { pi, pb, pb, "label 12 >= 10" },
        { ps, pl, ps, "do not fit the model's input" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(extra, sizeof extra, "\"dataset\":\"t\",\"data\":{\"train_images\":\"%s\","
                 "\"train_labels\":\"%s\",\"val_count\":20}", cases[i].im, cases[i].lb);
        memset(&err, 0, sizeof err);
        int rc = one_key(extra, kc, NULL, &err);
        snprintf(msg, sizeof msg, "%s", err.text);
        if (!cases[i].want1) {
            if (rc) fail_msg("case %zu: %s", i, msg);
            continue;
        }
        if (rc == QT_OK || !strstr(msg, cases[i].want1) || !strstr(msg, cases[i].want2))
            fail_msg("case %zu: rc %d: '%s' (want '%s' and '%s')", i, rc, msg, cases[i].want1,
                     cases[i].want2);
        fprintf(stderr, "  bad data: %s\n", msg);
    }
    /* a split larger than the file, and no test split */
    snprintf(job, sizeof job, "{\"model\":\"m\",\"dataset\":\"t\",\"data\":{\"train_images\":"
             "\"%s\",\"train_labels\":\"%s\",\"val_count\":%d}}", pi, pl, N);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    assert_int_equal(qt_job_dataset(&sp, QT_SPLIT_VAL, &a, &err), QT_OK);   /* all of it */
    assert_int_equal(qt_dataset_count(a), N);
    qt_dataset_free(a);
    assert_int_equal(qt_job_dataset(&sp, QT_SPLIT_TRAIN, &a, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, pi));
    assert_int_equal(qt_job_dataset(&sp, QT_SPLIT_TEST, &a, &err), QT_ENOTSUP);
    assert_non_null(strstr(err.text, "no test split"));
    qt_job_clear(&sp);
    snprintf(job, sizeof job, "rm -rf '%s'", tdir);
    assert_int_equal(system(job), 0);
}

/* Prefix reuse changes nothing but the work: the same job with and without
 * it (and without any early stop) gives the same results bit for bit, the
 * MACs of each evaluation are those of the nodes it ran, and on a
 * per-tensor bisection (every candidate float before its tensor) most
 * batches resume from a kept prefix. */
static qt_search *prefix_job(const char *model, int cache_mb, int early, int workers, int hard)
{
    int resnet = strstr(model, "resnet") != NULL;      /* slow: fewer images and candidates */
    char job[1024];
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/%s\","
             "\"strategy\":\"bisection\",\"val_limit\":%d,\"alpha\":0,\"early_stop\":%s,"
             "\"cache_mb\":%d,\"workers\":%d,\"budget\":{\"evaluations\":%d},"
             "\"val_order\":\"%s\",\"space\":[{\"nodes\":\"*\",\"widths\":[2,8]}]}",
             model, resnet ? 300 : 600, early ? "true" : "false", cache_mb, workers,
             resnet ? 10 : 30, hard ? "hardest_first" : "random");
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    qt_job_clear(&sp);
    return s;
}

static void prefix_reuse_is_exact(void **st)
{
    (void)st;
    const char *models[] = { "lenet5.qtck", "resnet.qtck" };
    for (int mi = 0; mi < 2; mi++) {
        qt_search *a = prefix_job(models[mi], 0, 0, 1, 0);      /* everything in full */
        qt_search *b = prefix_job(models[mi], 256, 0, 2, 0);    /* prefix reuse */
        qt_search *c = prefix_job(models[mi], 256, 1, 1, 0);    /* reuse and exact early stop */
        /* hardest first: its own batches (64 at the head) and prefix keys;
         * and without a cache (the float model's verdicts then come from
         * the margins' pass alone) */
        qt_search *d = prefix_job(models[mi], 256, 1, 2, 1);
        qt_search *e = prefix_job(models[mi], 0, 1, 1, 1);
        int n = qt_search_evals(a), images = mi ? 300 : 600;
        assert_true(n >= 10);
        assert_int_equal(qt_search_evals(b), n);
        assert_int_equal(qt_search_evals(c), n);
        assert_int_equal(qt_search_evals(d), n);
        assert_int_equal(qt_search_evals(e), n);
        double total = (double)qt_graph_macs(qt_search_graph(a));
        for (int i = 0; i < n; i++) {
            const qt_result *ra, *rb, *rc, *rd;
            qt_search_result(a, i, NULL, &ra);
            qt_search_result(b, i, NULL, &rb);
            qt_search_result(c, i, NULL, &rc);
            qt_search_result(d, i, NULL, &rd);
            assert_int_equal(ra->feasible, rd->feasible);
            if (!rd->early) assert_true(ra->top1 == rd->top1);   /* the same images */
            const qt_result *re;
            qt_search_result(e, i, NULL, &re);
            assert_true(re->feasible == rd->feasible && re->early == rd->early &&
                        re->images == rd->images && re->top1 == rd->top1);
            assert_int_equal(ra->images, images);
            assert_true(ra->top1 == rb->top1 && ra->top5 == rb->top5 && ra->loss == rb->loss);
            assert_int_equal(ra->feasible, rc->feasible);     /* alpha 0: exact verdicts */
            if (!ra->cached) assert_true(ra->macs == images * total);
            if (!rb->cached) assert_true(rb->macs <= ra->macs);
        }
        qt_search_work wa, wb, wc, wd;
        qt_search_work_get(a, &wa);
        qt_search_work_get(b, &wb);
        qt_search_work_get(c, &wc);
        qt_search_work_get(d, &wd);
        fprintf(stderr, "%s: %d evaluations; MACs in full %.3g, with prefix reuse %.3g (%.1fx "
                "less, %llu of %llu batches resumed, %.1f MiB kept at most), with the exact "
                "early stop too %.3g (%.1fx less), hardest first %.3g (%.1fx less)\n",
                models[mi], n, wa.macs, wb.macs,
                wa.macs / wb.macs, (unsigned long long)wb.prefix_hits,
                (unsigned long long)wb.prefix_batches, (double)wb.prefix_peak / (1 << 20),
                wc.macs, wa.macs / wc.macs, wd.macs, wa.macs / wd.macs);
        assert_true(wa.macs == wa.macs_full);
        assert_int_equal(wa.prefix_batches, 0);
        assert_true(wb.prefix_hits > wb.prefix_batches / 2);
        assert_true(wb.prefix_peak > 0 && wb.prefix_peak <= (size_t)256 << 20);
        assert_true(wb.macs < (mi ? 0.9 : 0.6) * wa.macs);     /* ResNet: 256 MiB is tight */
        assert_true(wc.macs < wa.macs);
        assert_true(wd.macs < wa.macs);
        const qt_cand *ba = qt_search_best(a, NULL, NULL), *bc = qt_search_best(c, NULL, NULL);
        const qt_cand *bd = qt_search_best(d, NULL, NULL);
        const qt_coord *co;
        int nc = qt_search_coords(a, &co);
        for (int k = 0; k < nc; k++) {
            assert_memory_equal(&ba->fmt[k], &bc->fmt[k], sizeof ba->fmt[k]);
            assert_memory_equal(&ba->fmt[k], &bd->fmt[k], sizeof ba->fmt[k]);
        }
        qt_search_free(a);
        qt_search_free(b);
        qt_search_free(c);
        qt_search_free(d);
        qt_search_free(e);
    }
}

/* ---- subsets: a candidate evaluated on the first n validation images ---- */

typedef struct keyrec { char key[80]; char cfg[512]; size_t subset; int cached; } keyrec;
typedef struct keylog { keyrec e[512]; int n, lookups, hits; } keylog;

static int kl_lookup(void *user, const char *key, qt_result *r)
{
    keylog *t = user;
    t->lookups++;
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].key, key)) {
            memset(r, 0, sizeof *r);
            r->top1 = 0.5;                 /* stands for a stored result */
            r->images = 1;
            t->hits++;
            return 1;
        }
    return 0;
}

static int kl_stored(void *user, const char *key, const qt_cand *c, const char *cfg,
                     const qt_result *r)
{
    keylog *t = user;
    (void)c;
    if (t->n < 512) {
        keyrec *e = &t->e[t->n++];
        snprintf(e->key, sizeof e->key, "%s", key);
        snprintf(e->cfg, sizeof e->cfg, "%s", cfg);
        e->subset = r->subset;
    }
    return QT_OK;
}

static qt_search *subset_job(const char *metric, const char *strategy, keylog *kl, int workers)
{
    char job[1024];
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    qt_eval_cache cache = { kl_lookup, kl_stored, kl };
    snprintf(job, sizeof job, "{\"model\":\"" QT_SOURCE_DIR "/experiments/models/lenet5.qtck\","
             "\"strategy\":%s,\"val_limit\":2000,\"early_stop\":false,\"workers\":%d,"
             "\"constraint\":{\"metric\":\"%s\",\"relative\":0.99},"
             "\"budget\":{\"evaluations\":%d},\"space\":["
             "{\"nodes\":\"conv*\",\"widths\":[2,8]},{\"nodes\":\"fc*\",\"widths\":[2,8]}]}",
             strategy, workers, metric, strcmp(metric, "top1") ? 30 : 150);
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    int rc = qt_search_new(&sp, kl ? &cache : NULL, &s, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    qt_job_clear(&sp);
    return s;
}

/* every subset result is what qt_evaluate gives on the first n images, its
 * verdict is against the float model on the same images, its key differs
 * from the whole split's for the same configuration (which the memo does
 * not answer with it), and the answer is never a subset result */
static void subset_results_agree_with_the_engine(void **st)
{
    (void)st;
    keylog *kl = calloc(1, sizeof *kl);
    qt_error err;
    const size_t N = 600;
    qt_search *s = subset_job("top1", "{\"name\":\"greedy\",\"subset\":600}", kl, 1);
    qt_dataset *val, *sub;
    qt_metrics fm, m;
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_VAL, &val, &err), QT_OK);
    assert_int_equal(qt_dataset_subset(val, 0, 0, N, &sub, &err), QT_OK);
    qt_graph *g = (qt_graph *)qt_search_graph(s);
    assert_int_equal(qt_evaluate(g, NULL, sub, NULL, &fm, &err), QT_OK);
    qt_result b;
    assert_int_equal(qt_search_baseline_on(s, N, &b, &err), QT_OK);
    assert_true(fabs(b.top1 - fm.top1) < 1e-12);
    assert_int_equal(b.images, N);
    assert_int_equal(qt_search_split(s), 2000);
    int n = qt_search_evals(s), subs = 0, full = 0;
    for (int i = 0; i < n; i++) {
        const qt_cand *c;
        const qt_result *r;
        qt_qconfig *cfg;
        qt_search_result(s, i, &c, &r);
        assert_int_equal(qt_search_config(s, c, &cfg, &err), QT_OK);
        if (r->subset) {
            subs++;
            assert_int_equal(r->subset, N);
            assert_int_equal(c->images, N);
            assert_int_equal(r->images, N);
            assert_int_equal(qt_evaluate(g, cfg, sub, NULL, &m, &err), QT_OK);
            assert_true(fabs(r->top1 - m.top1) < 1e-12);
            assert_int_equal(r->feasible, m.top1 >= 0.99 * fm.top1 - 1e-12);
            assert_non_null(strstr(c->reason, "[pass 1: first 600 images]"));
        } else {
            full++;
            assert_int_equal(r->images, 2000);
        }
        qt_qconfig_free(cfg);
    }
    fprintf(stderr, "subsets: %d of %d evaluations on %zu images\n", subs, n, N);
    assert_true(subs >= 5 && full >= 2);
    /* the same configuration on a subset and on the whole split: two keys,
     * two computations (pass 2 checks pass 1's configuration) */
    int pairs = 0;
    for (int i = 0; i < kl->n; i++)
        for (int k = 0; k < kl->n; k++)
            if (kl->e[i].subset && !kl->e[k].subset && !strcmp(kl->e[i].cfg, kl->e[k].cfg)) {
                pairs++;
                assert_string_not_equal(kl->e[i].key, kl->e[k].key);
            }
    assert_true(pairs >= 1);
    assert_int_equal(kl->n, n);                       /* all computed, none from the memo */
    /* the answer is a whole-split result */
    const qt_result *br;
    int feasible;
    const qt_cand *best = qt_search_best(s, &br, &feasible);
    assert_non_null(best);
    assert_int_equal(br->subset, 0);
    assert_int_equal(best->images, 0);
    qt_search_free(s);

    /* whole-split keys are the ones a search without subsets uses: the
     * first candidate (8 bits, whole split) is found in the store */
    int hits = kl->hits;
    s = subset_job("top1", "{\"name\":\"greedy\",\"subset\":false}", kl, 1);
    assert_true(kl->hits > hits);
    const qt_result *r0;
    qt_search_result(s, 0, NULL, &r0);
    assert_int_equal(r0->cached, 1);
    qt_search_free(s);

    /* a top-5 constraint: the float model's top-5 on the subset is measured */
    s = subset_job("top5", "{\"name\":\"greedy\",\"subset\":600}", NULL, 2);
    assert_int_equal(qt_search_baseline_on(s, N, &b, &err), QT_OK);
    assert_true(fabs(b.top5 - fm.top5) < 1e-12);
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, i, &c, &r);
        if (r->subset) assert_int_equal(r->feasible, r->top5 >= 0.99 * fm.top5 - 1e-12);
    }
    qt_search_free(s);
    qt_dataset_free(sub);
    qt_dataset_free(val);
    free(kl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registered_datasets),
        cmocka_unit_test(subset_results_agree_with_the_engine),
        cmocka_unit_test(prefix_reuse_is_exact),
        cmocka_unit_test(coords_from_rules),
        cmocka_unit_test(costs_by_hand),
        cmocka_unit_test(uniform_finds_the_optimum),
        cmocka_unit_test(workers_do_not_change_the_outcome),
        cmocka_unit_test(budget_and_cache),
        cmocka_unit_test(early_stop_agrees_with_full_evaluation),
        cmocka_unit_test(onnx_model_tunes_like_a_zoo_model),
        cmocka_unit_test(training_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
