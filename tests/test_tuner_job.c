/*
 * test_tuner_job.c -- tuning jobs: a full and a minimal job parse to the
 * expected spec, defaults, the canonical JSON, random round trips through
 * qt_job_to_json -> text -> qt_job_parse, strategy options ownership, and
 * bad jobs rejected with the field path in the message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "tuner.h"

static qt_job_spec P(const char *text)
{
    qt_job_spec s;
    qt_error err;
    int rc = qt_job_parse(text, &s, &err);
    if (rc != QT_OK) fail_msg("parse %s: %s", text, err.text);
    return s;
}

#define BIT(x) (1u << (x))

/* ------------------------------------------------------------------------ */
/* Known jobs                                                                */
/* ------------------------------------------------------------------------ */

static void t_full(void **st)
{
    qt_job_spec s = P(
        "{ \"model\": \"experiments/models/lenet5.qtck\","
        "  \"dataset\": \"fashion-mnist\", \"kind\": \"training\", \"epochs\": 3,"
        "  \"space\": [ { \"nodes\": \"conv*\", \"points\": [\"weights\", \"grad_weights\"],"
        "                 \"types\": [\"fixed\", \"float\"], \"widths\": [2, 16] },"
        "               { \"nodes\": \"relu1\", \"points\": [\"output\", \"accumulator\"],"
        "                 \"types\": [\"ufixed\", \"block\", \"sparse\"], \"widths\": [4, 4],"
        "                 \"rounding\": \"sr\", \"bias\": { \"search\": 3 } } ],"
        "  \"cost\": { \"weight_bits\": 1, \"bitops\": 0.5 },"
        "  \"constraint\": { \"metric\": \"top5\", \"absolute\": 0.02 },"
        "  \"strategy\": { \"name\": \"greedy\", \"step\": 2, \"order\": [\"a\", \"b\"] },"
        "  \"budget\": { \"evaluations\": 500, \"seconds\": 3600 },"
        "  \"val_limit\": 2000, \"alpha\": 0.05, \"seed\": 42, \"workers\": 4 }");
    assert_string_equal(s.model, "experiments/models/lenet5.qtck");
    assert_string_equal(s.dataset, "fashion-mnist");
    assert_int_equal(s.kind, QT_JOB_TRAINING);
    assert_int_equal(s.epochs, 3);
    assert_int_equal(s.n_rules, 2);
    assert_string_equal(s.rules[0].nodes, "conv*");
    assert_int_equal(s.rules[0].points, BIT(QT_QP_WEIGHTS) | BIT(QT_QP_GRAD_WEIGHTS));
    assert_int_equal(s.rules[0].types, BIT(QT_FIXED) | BIT(QT_FLOAT));
    assert_int_equal(s.rules[0].wmin, 2);
    assert_int_equal(s.rules[0].wmax, 16);
    assert_int_equal(s.rules[0].round, QT_RNE);
    assert_int_equal(s.rules[0].bias, QT_BIAS_FIT);
    assert_int_equal(s.rules[0].bias_k, 0);
    assert_string_equal(s.rules[1].nodes, "relu1");
    assert_int_equal(s.rules[1].points, BIT(QT_QP_OUTPUT) | BIT(QT_QP_ACCUMULATOR));
    assert_int_equal(s.rules[1].types, BIT(QT_UFIXED) | BIT(QT_BLOCK) | BIT(QT_SPARSE));
    assert_int_equal(s.rules[1].wmin, 4);
    assert_int_equal(s.rules[1].wmax, 4);
    assert_int_equal(s.rules[1].round, QT_SR);
    assert_int_equal(s.rules[1].bias, QT_BIAS_SEARCH);
    assert_int_equal(s.rules[1].bias_k, 3);
    assert_int_equal(s.cost, QT_COST_WEIGHTED);
    assert_true(s.w_weight == 1 && s.w_act == 0 && s.w_bitops == 0.5);
    assert_int_equal(s.metric, QT_MET_TOP5);
    assert_true(s.relative == 0 && s.absolute == 0.02);
    assert_string_equal(s.strategy, "greedy");
    assert_non_null(s.strategy_opts);
    assert_int_equal(json_object_size(s.strategy_opts), 2);
    assert_null(json_object_get(s.strategy_opts, "name"));
    assert_int_equal(json_integer_value(json_object_get(s.strategy_opts, "step")), 2);
    assert_int_equal(s.max_evals, 500);
    assert_true(s.max_seconds == 3600);
    assert_int_equal(s.val_limit, 2000);
    assert_true(s.alpha == 0.05);
    assert_int_equal(s.seed, 42);
    assert_int_equal(s.workers, 4);
    qt_job_clear(&s);
    assert_null(s.strategy_opts);
}

static void check_defaults(const qt_job_spec *s)
{
    assert_string_equal(s->dataset, "fashion-mnist");
    assert_int_equal(s->cost, QT_COST_WEIGHT_BITS);
    assert_true(s->w_weight == 0 && s->w_act == 0 && s->w_bitops == 0);
    assert_int_equal(s->metric, QT_MET_TOP1);
    assert_true(s->relative == 0.99 && s->absolute == 0);
    assert_string_equal(s->strategy, "bisection");
    assert_null(s->strategy_opts);
    assert_int_equal(s->max_evals, 0);
    assert_true(s->max_seconds == 0);
    assert_int_equal(s->val_limit, 0);
    assert_true(s->alpha == 0.01);
    assert_int_equal(s->seed, 1);
    assert_int_equal(s->workers, 1);
}

static void check_default_rule(const qt_space_rule *r)
{
    assert_string_equal(r->nodes, "*");
    assert_int_equal(r->points, BIT(QT_QP_WEIGHTS));
    assert_int_equal(r->types, BIT(QT_FIXED));
    assert_int_equal(r->wmin, 2);
    assert_int_equal(r->wmax, 16);
    assert_int_equal(r->round, QT_RNE);
    assert_int_equal(r->bias, QT_BIAS_FIT);
    assert_int_equal(r->bias_k, 0);
}

static void t_minimal(void **st)
{
    qt_job_spec s = P("{\"model\": \"lenet5\"}");
    assert_string_equal(s.model, "lenet5");
    assert_int_equal(s.kind, QT_JOB_INFERENCE);
    assert_int_equal(s.epochs, 0);
    assert_int_equal(s.n_rules, 1);
    check_default_rule(&s.rules[0]);
    check_defaults(&s);
    qt_job_clear(&s);
}

static void t_defaults(void **st)
{
    /* a rule of defaults, a training job's epochs, a strategy object
     * without options, a constraint with only a metric's bound */
    qt_job_spec s = P("{\"model\": \"mlp\", \"kind\": \"training\", \"space\": [{}, "
                      "{\"nodes\": \"fc1\", \"bias\": \"fit\"}], "
                      "\"strategy\": {\"name\": \"bisection\"}, "
                      "\"constraint\": {\"relative\": 0.99}, \"budget\": {}}");
    assert_int_equal(s.kind, QT_JOB_TRAINING);
    assert_int_equal(s.epochs, 1);
    assert_int_equal(s.n_rules, 2);
    check_default_rule(&s.rules[0]);
    assert_string_equal(s.rules[1].nodes, "fc1");
    s.rules[1].nodes[0] = '*', s.rules[1].nodes[1] = 0;
    check_default_rule(&s.rules[1]);
    check_defaults(&s);
    qt_job_clear(&s);

    s = P("{\"model\": \"m\", \"constraint\": {\"metric\": \"loss\", \"absolute\": 0}, "
          "\"cost\": \"bitops\"}");
    assert_int_equal(s.metric, QT_MET_LOSS);
    assert_true(s.relative == 0 && s.absolute == 0);
    assert_int_equal(s.cost, QT_COST_BITOPS);
    qt_job_clear(&s);

    /* limits that are allowed */
    s = P("{\"model\": \"m\", \"constraint\": {\"absolute\": 1}, \"alpha\": 0, "
          "\"workers\": 64, \"seed\": 9223372036854775807, \"space\": [{\"widths\": [1, 32], "
          "\"bias\": {\"search\": 8}}, {\"widths\": [32, 32], \"bias\": {\"search\": 1}}]}");
    assert_true(s.absolute == 1 && s.relative == 0);
    assert_true(s.alpha == 0);
    assert_int_equal(s.workers, 64);
    assert_true(s.seed == (uint64_t)INT64_MAX);
    assert_int_equal(s.rules[0].wmin, 1);
    assert_int_equal(s.rules[0].wmax, 32);
    assert_int_equal(s.rules[0].bias_k, 8);
    assert_int_equal(s.rules[1].bias_k, 1);
    qt_job_clear(&s);

    /* absolute loss may exceed 1 (nats); relative 1 is allowed */
    s = P("{\"model\": \"m\", \"constraint\": {\"metric\": \"loss\", \"absolute\": 2.5}}");
    assert_true(s.absolute == 2.5);
    qt_job_clear(&s);
    s = P("{\"model\": \"m\", \"constraint\": {\"relative\": 1}}");
    assert_true(s.relative == 1);
    qt_job_clear(&s);
}

/* the canonical JSON: every field, fixed key order */
static void t_canonical(void **st)
{
    qt_job_spec s = P("{\"workers\": 2, \"model\": \"lenet5\"}");
    json_t *j = qt_job_to_json(&s);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text,
        "{\"model\":\"lenet5\",\"dataset\":\"fashion-mnist\",\"kind\":\"inference\","
        "\"space\":[{\"nodes\":\"*\",\"points\":[\"weights\"],\"types\":[\"fixed\"],"
        "\"widths\":[2,16],\"rounding\":\"rne\",\"bias\":\"fit\"}],"
        "\"cost\":\"weight_bits\",\"constraint\":{\"metric\":\"top1\","
        /* jansson prints reals with 17 digits, so the text reads back exactly */
        "\"relative\":0.98999999999999999},"
        "\"strategy\":\"bisection\",\"budget\":{\"evaluations\":0,\"seconds\":0.0},"
        "\"val_limit\":0,\"alpha\":0.01,\"early_pass\":false,\"early_stop\":true,\"val_order\":\"random\",\"seed\":1,\"workers\":2,\"cache_mb\":256}");
    free(text);
    json_decref(j);
    qt_job_clear(&s);

    s = P("{\"model\": \"m\", \"kind\": \"training\", \"epochs\": 5, "
          "\"space\": [{\"types\": [\"sparse\", \"fixed\", \"fixed\"], "
          "\"points\": [\"accumulator\", \"weights\"], \"bias\": {\"search\": 2}}], "
          "\"cost\": {\"act_bits\": 2}, \"constraint\": {\"absolute\": 0.5, \"metric\": \"top5\"}, "
          "\"strategy\": {\"opt\": {\"x\": [1, 2]}, \"name\": \"hybrid\"}}");
    j = qt_job_to_json(&s);
    text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text,
        "{\"model\":\"m\",\"dataset\":\"fashion-mnist\",\"kind\":\"training\",\"epochs\":5,"
        "\"lr\":0.01,\"train_limit\":0,\"space\":[{\"nodes\":\"*\",\"points\":[\"weights\",\"accumulator\"],"
        "\"types\":[\"fixed\",\"sparse\"],\"widths\":[2,16],\"rounding\":\"rne\","
        "\"bias\":{\"search\":2}}],"
        "\"cost\":{\"weight_bits\":0.0,\"act_bits\":2.0,\"bitops\":0.0},"
        "\"constraint\":{\"metric\":\"top5\",\"absolute\":0.5},"
        "\"strategy\":{\"name\":\"hybrid\",\"opt\":{\"x\":[1,2]}},"
        "\"budget\":{\"evaluations\":0,\"seconds\":0.0},"
        "\"val_limit\":0,\"alpha\":0.01,\"early_pass\":false,\"early_stop\":true,\"val_order\":\"random\",\"seed\":1,\"workers\":1,\"cache_mb\":256}");
    free(text);
    json_decref(j);
    qt_job_clear(&s);
}

/* another dataset: its files in "data", defaults filled in, written back
 * canonically; the built-in one has no "data" */
static void t_data(void **st)
{
    (void)st;
    qt_job_spec s = P("{\"model\": \"m\", \"dataset\": \"digits-1.0_b\", \"data\": "
                      "{\"train_images\": \"/d/tr.idx.gz\", \"train_labels\": \"/d/trl\", "
                      "\"norm\": {\"mean\": 0.5}}}");
    assert_string_equal(s.dataset, "digits-1.0_b");
    assert_int_equal(s.has_data, 1);
    assert_string_equal(s.data.train_images, "/d/tr.idx.gz");
    assert_string_equal(s.data.train_labels, "/d/trl");
    assert_string_equal(s.data.test_images, "");
    assert_true(s.data.norm.scale == 1.0f / 255.0f && s.data.norm.mean == 0.5f &&
                s.data.norm.std == 1.0f);
    assert_int_equal(s.data.val_count, 0);
    assert_int_equal(s.data.val_seed, 0x5eed5eedull);
    json_t *j = qt_job_to_json(&s);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(text, "\"dataset\":\"digits-1.0_b\",\"data\":{\"train_images\":"
                                 "\"/d/tr.idx.gz\",\"train_labels\":\"/d/trl\",\"norm\":"
                                 "{\"scale\":0.0039215688593685627,\"mean\":0.5,\"std\":1.0},"
                                 "\"val_count\":0,\"val_seed\":1592614637},\"kind\""));
    qt_job_spec b;
    qt_error err;
    assert_int_equal(qt_job_parse(text, &b, &err), QT_OK);
    assert_true(b.data.norm.scale == s.data.norm.scale);
    assert_string_equal(b.data.train_labels, "/d/trl");
    qt_job_clear(&b);
    free(text);
    json_decref(j);
    qt_job_clear(&s);
    s = P("{\"model\": \"m\", \"dataset\": \"fashion-mnist\"}");
    assert_int_equal(s.has_data, 0);
    j = qt_job_to_json(&s);
    assert_null(json_object_get(j, "data"));
    json_decref(j);
    qt_job_clear(&s);
}

/* strategy options: a copy, owned by the spec, independent of the input */
static void t_strategy_opts(void **st)
{
    json_t *in = json_pack("{s:s, s:{s:s, s:i, s:[i,i]}}", "model", "m",
                           "strategy", "name", "uniform", "step", 1, "list", 1, 2);
    qt_job_spec s;
    qt_error err;
    assert_non_null(in);
    assert_int_equal(qt_job_from_json(in, &s, &err), QT_OK);
    assert_string_equal(s.strategy, "uniform");
    assert_non_null(s.strategy_opts);
    assert_int_equal(s.strategy_opts->refcount, 1);
    /* the input still has its name; changing it leaves the spec alone */
    assert_non_null(json_object_get(json_object_get(in, "strategy"), "name"));
    json_array_append_new(json_object_get(json_object_get(in, "strategy"), "list"),
                          json_integer(3));
    assert_int_equal(json_array_size(json_object_get(s.strategy_opts, "list")), 2);
    json_decref(in);
    /* the canonical JSON is independent of the spec too */
    json_t *j = qt_job_to_json(&s);
    json_t *o = json_object_get(j, "strategy");
    assert_string_equal(json_string_value(json_object_get(o, "name")), "uniform");
    assert_int_equal(json_integer_value(json_object_get(o, "step")), 1);
    json_decref(j);
    assert_int_equal(s.strategy_opts->refcount, 1);
    qt_job_clear(&s);
    assert_null(s.strategy_opts);
    qt_job_clear(&s);            /* twice is harmless */
    qt_job_clear(NULL);
}

/* ------------------------------------------------------------------------ */
/* Random round trips                                                        */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int below(int n) { return (int)(rnd() % (uint64_t)n); }

/* uniform in [0, 1) with all 53 bits */
static double unit(void) { return (double)(rnd() >> 11) * 0x1p-53; }

/* a random UTF-8 string of 1..max bytes: ASCII (quotes, backslashes and
 * controls included) and two- and three-byte characters */
static void rand_str(char *buf, int max)
{
    int len = 1 + below(max), n = 0;
    while (n < len) {
        int c = below(10);
        if (c < 6) {
            buf[n++] = (char)(32 + below(95));
        } else if (c == 6) {
            static const char esc[] = "\"\\/\n\t\b\f\r\x01\x1f";
            buf[n++] = esc[below((int)sizeof esc - 1)];
        } else if (c < 9 && n + 2 <= len) {
            buf[n++] = (char)0xC3, buf[n++] = (char)(0xA0 + below(16));   /* à..ï */
        } else if (n + 3 <= len) {
            buf[n++] = (char)0xE2, buf[n++] = (char)0x82, buf[n++] = (char)0xAC;  /* € */
        } else {
            buf[n++] = '*';
        }
    }
    buf[n] = 0;
}

static json_t *rand_value(int depth)
{
    switch (below(depth > 2 ? 5 : 7)) {
    case 0: return json_integer((json_int_t)(rnd() >> 1) * (below(2) ? 1 : -1));
    case 1: return json_real((unit() - 0.5) * 1e6);
    case 2: { char b[40]; rand_str(b, 39); return json_string(b); }
    case 3: return json_boolean(below(2));
    case 4: return json_null();
    case 5: {
        json_t *a = json_array();
        for (int i = below(4); i > 0; i--) json_array_append_new(a, rand_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = below(4); i > 0; i--) {
            char k[12];
            snprintf(k, sizeof k, "k%d", below(100));
            json_object_set_new(o, k, rand_value(depth + 1));
        }
        return o;
    }
    }
}

static void rand_spec(qt_job_spec *s)
{
    static const char *strat[] = { "uniform", "bisection", "greedy", "analytical", "hybrid" };
    memset(s, 0, sizeof *s);
    rand_str(s->model, 511);
    strcpy(s->dataset, "fashion-mnist");
    s->kind = below(2) ? QT_JOB_TRAINING : QT_JOB_INFERENCE;
    s->epochs = s->kind == QT_JOB_TRAINING ? (below(4) ? 1 + below(100) : INT_MAX) : 0;
    s->lr = s->kind == QT_JOB_TRAINING ? (below(2) ? 0.01 : 1e-4 * (1 + below(5000))) : 0;
    s->train_limit = s->kind == QT_JOB_TRAINING ? below(70000) : 0;
    s->early_pass = below(2);
    s->full_eval = below(2);
    s->hardest_first = below(2);
    s->cache_mb = below(2) ? 256 : below(65537);
    s->n_rules = below(3) ? 1 + below(4) : 1 + below(QT_JOB_MAX_RULES);
    for (int i = 0; i < s->n_rules; i++) {
        qt_space_rule *r = &s->rules[i];
        if (below(3)) strcpy(r->nodes, below(2) ? "*" : "conv?[0-9]*");
        else rand_str(r->nodes, QT_NAME_MAX - 1);
        int np = s->kind == QT_JOB_TRAINING ? QT_QP_COUNT : QT_QP_INTRINSIC + 1;
        do r->points = (uint32_t)rnd() & ((1u << np) - 1); while (!r->points);
        do r->types = (uint32_t)rnd() & (((1u << QT_TYPE_COUNT) - 1) & ~1u); while (!r->types);
        r->wmin = 1 + below(32);
        r->wmax = r->wmin + below(33 - r->wmin);
        r->round = (qt_round)below(QT_ROUND_COUNT);
        r->bias = below(2) ? QT_BIAS_SEARCH : QT_BIAS_FIT;
        r->bias_k = r->bias == QT_BIAS_SEARCH ? 1 + below(8) : 0;
    }
    s->cost = (qt_cost_kind)below(4);
    if (s->cost == QT_COST_WEIGHTED) {
        do {
            s->w_weight = below(3) ? unit() * 10 : 0;
            s->w_act = below(3) ? unit() : 0;
            s->w_bitops = below(3) ? unit() * 1e-6 : 0;
        } while (!(s->w_weight > 0 || s->w_act > 0 || s->w_bitops > 0));
    }
    s->metric = (qt_metric)below(3);
    if (below(2)) {
        s->relative = below(8) ? 1 - unit() : 1;    /* (0, 1] */
    } else {
        s->absolute = below(8) ? unit() : 0;
        if (s->metric == QT_MET_LOSS && below(2)) s->absolute *= 100;
        if (s->metric != QT_MET_LOSS && !below(8)) s->absolute = 1;
    }
    strcpy(s->strategy, strat[below(5)]);
    if (below(2)) {
        json_t *o = json_object();
        for (int i = 1 + below(4); i > 0; i--) {
            char k[16];
            snprintf(k, sizeof k, below(2) ? "opt%d" : "é%d", below(1000));
            json_object_set_new(o, k, rand_value(0));
        }
        s->strategy_opts = o;
    }
    s->max_evals = below(3) ? below(10000) : (below(2) ? 0 : INT_MAX);
    s->max_seconds = below(3) ? unit() * 1e5 : 0;
    s->val_limit = below(2) ? (size_t)(rnd() >> (1 + below(63))) : 0;
    s->alpha = below(4) ? unit() * 0.5 : (below(2) ? 0 : nextafter(0.5, 0));
    s->seed = below(4) ? rnd() >> 1 : (below(2) ? 0 : (uint64_t)INT64_MAX);
    s->workers = 1 + below(64);
    if (!below(3)) {            /* another dataset, its files */
        static const char cs[] = "abcXYZ019._-";
        int n = 1 + below(63);
        for (int i = 0; i < n; i++) s->dataset[i] = cs[i ? below(12) : below(9)];
        s->dataset[n] = 0;
        if (!strcmp(s->dataset, "fashion-mnist")) strcpy(s->dataset, "x");
        s->has_data = 1;
        qt_job_data *d = &s->data;
        rand_str(d->train_images, QT_JOB_PATH_MAX - 1);
        rand_str(d->train_labels, QT_JOB_PATH_MAX - 1);
        if (below(2)) {
            rand_str(d->test_images, QT_JOB_PATH_MAX - 1);
            rand_str(d->test_labels, QT_JOB_PATH_MAX - 1);
        }
        d->norm.scale = below(2) ? 1.0f / 255.0f : (float)(unit() * 10);
        d->norm.mean = (float)(unit() - 0.5);
        d->norm.std = below(4) ? (float)(1e-3 + unit()) : 1.0f;
        d->val_count = below(3) ? (size_t)below(1 << 26) : 0;
        d->val_seed = below(4) ? rnd() >> 1 : (below(2) ? 0 : (uint64_t)INT64_MAX);
    }
}

static void assert_spec_equal(const qt_job_spec *a, const qt_job_spec *b)
{
    assert_string_equal(a->model, b->model);
    assert_string_equal(a->dataset, b->dataset);
    assert_int_equal(a->has_data, b->has_data);
    if (a->has_data) {
        const qt_job_data *x = &a->data, *y = &b->data;
        assert_string_equal(x->train_images, y->train_images);
        assert_string_equal(x->train_labels, y->train_labels);
        assert_string_equal(x->test_images, y->test_images);
        assert_string_equal(x->test_labels, y->test_labels);
        assert_true(x->norm.scale == y->norm.scale && x->norm.mean == y->norm.mean &&
                    x->norm.std == y->norm.std);
        assert_true(x->val_count == y->val_count && x->val_seed == y->val_seed);
    }
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->n_rules, b->n_rules);
    for (int i = 0; i < a->n_rules; i++) {
        const qt_space_rule *x = &a->rules[i], *y = &b->rules[i];
        assert_string_equal(x->nodes, y->nodes);
        assert_int_equal(x->points, y->points);
        assert_int_equal(x->types, y->types);
        assert_int_equal(x->wmin, y->wmin);
        assert_int_equal(x->wmax, y->wmax);
        assert_int_equal(x->round, y->round);
        assert_int_equal(x->bias, y->bias);
        assert_int_equal(x->bias_k, y->bias_k);
    }
    assert_int_equal(a->cost, b->cost);
    assert_true(a->w_weight == b->w_weight);
    assert_true(a->w_act == b->w_act);
    assert_true(a->w_bitops == b->w_bitops);
    assert_int_equal(a->metric, b->metric);
    assert_true(a->relative == b->relative);
    assert_true(a->absolute == b->absolute);
    assert_string_equal(a->strategy, b->strategy);
    assert_int_equal(!a->strategy_opts, !b->strategy_opts);
    if (a->strategy_opts) assert_true(json_equal(a->strategy_opts, b->strategy_opts));
    assert_int_equal(a->max_evals, b->max_evals);
    assert_true(a->max_seconds == b->max_seconds);
    assert_true(a->val_limit == b->val_limit);
    assert_true(a->alpha == b->alpha);
    assert_true(a->seed == b->seed);
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->epochs, b->epochs);
    assert_true(a->lr == b->lr);
    assert_int_equal(a->train_limit, b->train_limit);
    assert_int_equal(a->early_pass, b->early_pass);
    assert_int_equal(a->full_eval, b->full_eval);
    assert_int_equal(a->hardest_first, b->hardest_first);
    assert_int_equal(a->cache_mb, b->cache_mb);
}

static void t_round_trip(void **st)
{
    for (int it = 0; it < 2000; it++) {
        qt_job_spec a, b;
        qt_error err;
        rand_spec(&a);
        json_t *j = qt_job_to_json(&a);
        assert_non_null(j);
        char *text = json_dumps(j, it % 2 ? JSON_COMPACT : JSON_INDENT(2));
        assert_non_null(text);
        int rc = qt_job_parse(text, &b, &err);
        if (rc != QT_OK) fail_msg("job %d: %s\n%s", it, err.text, text);
        assert_spec_equal(&a, &b);
        /* and the canonical text is stable */
        json_t *j2 = qt_job_to_json(&b);
        char *t1 = json_dumps(j, JSON_COMPACT), *t2 = json_dumps(j2, JSON_COMPACT);
        assert_string_equal(t1, t2);
        free(t1);
        free(t2);
        json_decref(j2);
        free(text);
        json_decref(j);
        qt_job_clear(&a);
        qt_job_clear(&b);
    }
}

/* ------------------------------------------------------------------------ */
/* Bad jobs                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct bad {
    const char *json;      /* "%s" in it is replaced by a long string */
    int         rc;
    const char *want;      /* in the message */
} bad;

#define M "\"model\": \"m\", "
#define RULE(x) "{" M "\"space\": [" x "]}"

static const bad bads[] = {
    /* malformed */
    { "{", QT_EPARSE, "not valid JSON" },
    { "{\"model\": \"m\",}", QT_EPARSE, "line 1, column" },
    { "", QT_EPARSE, "not valid JSON" },
    { "{\"model\": \"m\"} x", QT_EPARSE, "not valid JSON" },
    { "{\"model\": \"a\", \"model\": \"b\"}", QT_EPARSE, "duplicate" },
    { "[1]", QT_EINVAL, "a job must be a JSON object" },
    /* top level */
    { "{}", QT_EINVAL, "model: required" },
    { "{\"model\": 5}", QT_EINVAL, "model: must be a string" },
    { "{\"model\": null}", QT_EINVAL, "model: must be a string" },
    { "{\"model\": \"\"}", QT_EINVAL, "model: must not be empty" },
    { "{\"model\": \"%s\"}", QT_EINVAL, "model: longer than 511 bytes" },
    { "{" M "\"modle\": 1}", QT_EINVAL, "job: unknown key 'modle' (model, dataset," },
    { "{" M "\"dataset\": \"mnist\"}", QT_EINVAL,
      "data: required for dataset 'mnist'" },
    { "{" M "\"dataset\": 3}", QT_EINVAL, "dataset: must be a string" },
    { "{" M "\"dataset\": \"\"}", QT_EINVAL, "dataset: must not be empty" },
    { "{" M "\"dataset\": \"../x\", \"data\": {}}", QT_EINVAL,
      "dataset: '../x' is not a dataset name" },
    { "{" M "\"data\": {\"train_images\": \"a\", \"train_labels\": \"b\"}}", QT_EINVAL,
      "data: fashion-mnist is built in" },
    { "{" M "\"dataset\": \"d\", \"data\": 1}", QT_EINVAL, "data: must be an object" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_labels\": \"b\"}}", QT_EINVAL,
      "data.train_images: required" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\"}}", QT_EINVAL,
      "data.train_labels: required" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\", \"train_labels\": "
      "\"b\", \"test_images\": \"c\"}}", QT_EINVAL, "data.test_labels: required with" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\", \"train_labels\": "
      "\"b\", \"norm\": {\"std\": 0}}}", QT_EINVAL, "data.norm.std: 0 must be > 0" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\", \"train_labels\": "
      "\"b\", \"norm\": {\"sd\": 1}}}", QT_EINVAL, "data.norm: unknown key 'sd'" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\", \"train_labels\": "
      "\"b\", \"val_count\": -1}}", QT_EINVAL, "data.val_count: -1 is out of range" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\", \"train_labels\": "
      "\"b\", \"val_seed\": 1.5}}", QT_EINVAL, "data.val_seed: must be an integer" },
    { "{" M "\"dataset\": \"d\", \"data\": {\"train_images\": \"a\", \"train_labels\": "
      "\"b\", \"path\": \"x\"}}", QT_EINVAL, "data: unknown key 'path'" },
    { "{" M "\"kind\": \"train\"}", QT_EINVAL,
      "kind: 'train' is not a job kind (inference, training)" },
    { "{" M "\"kind\": true}", QT_EINVAL, "kind: must be a string" },
    { "{" M "\"epochs\": 3}", QT_EINVAL, "epochs: only a training job has epochs" },
    { "{" M "\"kind\": \"training\", \"epochs\": 0}", QT_EINVAL, "epochs: 0 is out of range" },
    { "{" M "\"kind\": \"training\", \"epochs\": 1.5}", QT_EINVAL, "epochs: must be an integer" },
    { "{" M "\"lr\": 0.1}", QT_EINVAL, "lr: only a training job" },
    { "{" M "\"early_pass\": 1}", QT_EINVAL, "early_pass: must be true or false" },
    { "{" M "\"early_stop\": \"no\"}", QT_EINVAL, "early_stop: must be true or false" },
    { "{" M "\"val_order\": \"hardest\"}", QT_EINVAL,
      "val_order: must be \"random\" or \"hardest_first\"" },
    { "{" M "\"val_order\": 1}", QT_EINVAL, "val_order: must be" },
    { "{" M "\"cache_mb\": -1}", QT_EINVAL, "cache_mb:" },
    { "{" M "\"cache_mb\": 65537}", QT_EINVAL, "cache_mb:" },
    { "{" M "\"cache_mb\": 1.5}", QT_EINVAL, "cache_mb: must be an integer" },
    { "{" M "\"kind\": \"training\", \"lr\": 0}", QT_EINVAL, "lr: 0 must be in (0, 100)" },
    { "{" M "\"kind\": \"training\", \"lr\": \"fast\"}", QT_EINVAL, "lr:" },
    { "{" M "\"train_limit\": 10}", QT_EINVAL, "train_limit: only a training job" },
    { "{" M "\"kind\": \"training\", \"train_limit\": -1}", QT_EINVAL, "train_limit:" },
    /* space */
    { "{" M "\"space\": []}", QT_EINVAL, "space: must not be empty" },
    { "{" M "\"space\": {}}", QT_EINVAL, "space: must be an array of rules" },
    { "{" M "\"space\": [%s]}", QT_EINVAL, "space: 33 rules, at most 32" },
    { RULE("{}, 5"), QT_EINVAL, "space[1]: a rule must be an object" },
    { RULE("{}, {\"width\": [2, 8]}"), QT_EINVAL,
      "space[1]: unknown key 'width' (nodes, points, types, widths, rounding, bias)" },
    { RULE("{}, {\"widths\": [0, 8]}"), QT_EINVAL, "space[1].widths: 0 is not a width (1..32)" },
    { RULE("{\"widths\": [8, 4]}"), QT_EINVAL, "space[0].widths: min 8 > max 4" },
    { RULE("{\"widths\": [2, 33]}"), QT_EINVAL, "space[0].widths: 33 is not a width (1..32)" },
    { RULE("{\"widths\": [-1, 3]}"), QT_EINVAL, "space[0].widths: -1 is not a width" },
    { RULE("{\"widths\": [4]}"), QT_EINVAL, "space[0].widths: must be [min, max]" },
    { RULE("{\"widths\": [2, 4, 8]}"), QT_EINVAL, "space[0].widths: must be [min, max]" },
    { RULE("{\"widths\": [2, 8.5]}"), QT_EINVAL, "space[0].widths: must be [min, max], two integers" },
    { RULE("{\"widths\": \"2..8\"}"), QT_EINVAL, "space[0].widths: must be [min, max]" },
    { RULE("{\"types\": [\"fix\"]}"), QT_EINVAL,
      "space[0].types[0]: 'fix' is not a type (fixed, ufixed, float, log, binary, ternary, "
      "cluster, block, sparse)" },
    { RULE("{\"types\": [\"fixed\", \"none\"]}"), QT_EINVAL, "space[0].types[1]: 'none' is not a type" },
    { RULE("{\"types\": []}"), QT_EINVAL, "space[0].types: must not be empty" },
    { RULE("{\"types\": \"fixed\"}"), QT_EINVAL, "space[0].types: must be an array of types" },
    { RULE("{\"types\": [1]}"), QT_EINVAL, "space[0].types[0]: must be a string" },
    { RULE("{\"points\": [\"weight\"]}"), QT_EINVAL,
      "space[0].points[0]: 'weight' is not a point (weights, bias, output, intrinsic, "
      "grad_output, grad_weights, accumulator)" },
    { RULE("{\"points\": [\"weights\", \"grad_output\"]}"), QT_EINVAL,
      "space[0].points[1]: 'grad_output' is a training point and this is an inference job" },
    { RULE("{}, {}, {\"points\": [\"accumulator\"]}"), QT_EINVAL,
      "space[2].points[0]: 'accumulator' is a training point" },
    { RULE("{\"points\": [\"grad_weights\"]}"), QT_EINVAL, "space[0].points[0]: 'grad_weights'" },
    { RULE("{\"points\": []}"), QT_EINVAL, "space[0].points: must not be empty" },
    { RULE("{\"points\": {\"weights\": 1}}"), QT_EINVAL, "space[0].points: must be an array" },
    { RULE("{\"nodes\": \"\"}"), QT_EINVAL, "space[0].nodes: must not be empty" },
    { RULE("{\"nodes\": 7}"), QT_EINVAL, "space[0].nodes: must be a string" },
    { RULE("{\"nodes\": \"%s\"}"), QT_EINVAL, "space[0].nodes: longer than 63 bytes" },
    { RULE("{\"rounding\": \"nearest\"}"), QT_EINVAL,
      "space[0].rounding: 'nearest' is not a rounding mode (rne, rna, sr, rd, rz)" },
    { RULE("{\"rounding\": 0}"), QT_EINVAL, "space[0].rounding: must be a string" },
    { RULE("{\"bias\": \"auto\"}"), QT_EINVAL, "space[0].bias: must be \"fit\" or {\"search\": k}" },
    { RULE("{\"bias\": 2}"), QT_EINVAL, "space[0].bias: must be \"fit\"" },
    { RULE("{\"bias\": {\"search\": 0}}"), QT_EINVAL, "space[0].bias.search: 0 is out of range (1..8)" },
    { RULE("{\"bias\": {\"search\": 9}}"), QT_EINVAL, "space[0].bias.search: 9 is out of range (1..8)" },
    { RULE("{\"bias\": {\"search\": \"2\"}}"), QT_EINVAL, "space[0].bias.search: must be an integer" },
    { RULE("{\"bias\": {}}"), QT_EINVAL, "space[0].bias.search: required" },
    { RULE("{\"bias\": {\"search\": 2, \"k\": 1}}"), QT_EINVAL,
      "space[0].bias: unknown key 'k' (search)" },
    /* cost */
    { "{" M "\"cost\": \"bits\"}", QT_EINVAL,
      "cost: 'bits' is not a cost (weight_bits, act_bits, bitops, or an object of weights)" },
    { "{" M "\"cost\": 3}", QT_EINVAL, "cost: must be a cost name" },
    { "{" M "\"cost\": {\"weight_bits\": 0, \"act_bits\": 0, \"bitops\": 0}}", QT_EINVAL,
      "cost: at least one weight must be > 0" },
    { "{" M "\"cost\": {}}", QT_EINVAL, "cost: at least one weight must be > 0" },
    { "{" M "\"cost\": {\"weight_bits\": 1, \"act_bits\": -1}}", QT_EINVAL,
      "cost.act_bits: -1 must be >= 0" },
    { "{" M "\"cost\": {\"bitops\": \"1\"}}", QT_EINVAL, "cost.bitops: must be a number" },
    { "{" M "\"cost\": {\"weights\": 1}}", QT_EINVAL, "cost: unknown key 'weights'" },
    /* constraint */
    { "{" M "\"constraint\": {\"relative\": 0}}", QT_EINVAL, "constraint.relative: 0 must be in (0, 1]" },
    { "{" M "\"constraint\": {\"relative\": 1.5}}", QT_EINVAL,
      "constraint.relative: 1.5 must be in (0, 1]" },
    { "{" M "\"constraint\": {\"relative\": -0.5}}", QT_EINVAL, "constraint.relative: -0.5" },
    { "{" M "\"constraint\": {\"relative\": \"0.99\"}}", QT_EINVAL,
      "constraint.relative: must be a number" },
    { "{" M "\"constraint\": {\"relative\": 0.9, \"absolute\": 0.01}}", QT_EINVAL,
      "constraint: give relative or absolute, not both" },
    { "{" M "\"constraint\": {\"metric\": \"top1\"}}", QT_EINVAL, "constraint: give relative" },
    { "{" M "\"constraint\": {\"absolute\": -0.01}}", QT_EINVAL,
      "constraint.absolute: -0.01 must be >= 0" },
    { "{" M "\"constraint\": {\"absolute\": 2}}", QT_EINVAL,
      "constraint.absolute: 2 is more than all of top1" },
    { "{" M "\"constraint\": {\"absolute\": null}}", QT_EINVAL, "constraint.absolute: must be a number" },
    { "{" M "\"constraint\": {\"metric\": \"top3\", \"relative\": 0.9}}", QT_EINVAL,
      "constraint.metric: 'top3' is not a metric (top1, top5, loss)" },
    { "{" M "\"constraint\": {\"relativ\": 0.9}}", QT_EINVAL, "constraint: unknown key 'relativ'" },
    { "{" M "\"constraint\": 0.99}", QT_EINVAL, "constraint: must be an object" },
    /* strategy */
    { "{" M "\"strategy\": \"bisect\"}", QT_EINVAL,
      "strategy: 'bisect' is not a strategy (uniform, bisection, greedy, analytical, hybrid, grid)" },
    { "{" M "\"strategy\": {\"name\": \"x\", \"k\": 1}}", QT_EINVAL, "strategy.name: 'x' is not a strategy" },
    { "{" M "\"strategy\": {\"steps\": 3}}", QT_EINVAL, "strategy.name: required" },
    { "{" M "\"strategy\": {\"name\": 1}}", QT_EINVAL, "strategy.name: must be a string" },
    { "{" M "\"strategy\": 1}", QT_EINVAL, "strategy: must be a strategy name" },
    /* budget and the rest */
    { "{" M "\"budget\": {\"evaluations\": -1}}", QT_EINVAL, "budget.evaluations: -1 is out of range" },
    { "{" M "\"budget\": {\"evaluations\": 3000000000}}", QT_EINVAL, "budget.evaluations: 3000000000" },
    { "{" M "\"budget\": {\"evaluations\": 1e3}}", QT_EINVAL, "budget.evaluations: must be an integer" },
    { "{" M "\"budget\": {\"seconds\": -5}}", QT_EINVAL, "budget.seconds: -5 must be >= 0" },
    { "{" M "\"budget\": {\"seconds\": \"1h\"}}", QT_EINVAL, "budget.seconds: must be a number" },
    { "{" M "\"budget\": 100}", QT_EINVAL, "budget: must be an object" },
    { "{" M "\"budget\": {\"evals\": 3}}", QT_EINVAL, "budget: unknown key 'evals' (evaluations, seconds)" },
    { "{" M "\"val_limit\": -1}", QT_EINVAL, "val_limit: -1 must be >= 0" },
    { "{" M "\"val_limit\": \"all\"}", QT_EINVAL, "val_limit: must be an integer" },
    { "{" M "\"alpha\": 0.7}", QT_EINVAL, "alpha: 0.7 must be in [0, 0.5)" },
    { "{" M "\"alpha\": 0.5}", QT_EINVAL, "alpha: 0.5 must be in [0, 0.5)" },
    { "{" M "\"alpha\": -0.1}", QT_EINVAL, "alpha: -0.1 must be in [0, 0.5)" },
    { "{" M "\"alpha\": \"x\"}", QT_EINVAL, "alpha: must be a number" },
    { "{" M "\"seed\": -1}", QT_EINVAL, "seed: -1 must be >= 0" },
    { "{" M "\"seed\": 1.5}", QT_EINVAL, "seed: must be an integer" },
    { "{" M "\"workers\": 0}", QT_EINVAL, "workers: 0 is out of range (1..64)" },
    { "{" M "\"workers\": 65}", QT_EINVAL, "workers: 65 is out of range (1..64)" },
    { "{" M "\"workers\": true}", QT_EINVAL, "workers: must be an integer" },
    /* an error after strategy options were given: nothing leaks */
    { "{" M "\"strategy\": {\"name\": \"greedy\", \"x\": [1, {}]}, \"workers\": 0}", QT_EINVAL,
      "workers: 0" },
};

static void t_bad(void **st)
{
    char longs[600], text[2048];
    for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
        const bad *b = &bads[i];
        qt_job_spec s;
        qt_error err;
        if (strstr(b->json, "[%s]")) {               /* 33 rules */
            size_t n = 0;
            for (int k = 0; k < 33; k++) n += (size_t)sprintf(longs + n, "%s{}", k ? "," : "");
            snprintf(text, sizeof text, b->json, longs);
        } else if (strstr(b->json, "%s")) {          /* a name one byte too long */
            int len = strstr(b->json, "nodes") ? QT_NAME_MAX : 512;
            memset(longs, 'a', (size_t)len);
            longs[len] = 0;
            snprintf(text, sizeof text, b->json, longs);
        } else {
            snprintf(text, sizeof text, "%s", b->json);
        }
        memset(&s, 0x5a, sizeof s);
        memset(&err, 0, sizeof err);
        int rc = qt_job_parse(text, &s, &err);
        if (rc != b->rc || !strstr(err.text, b->want))
            fail_msg("bad job %zu: %s\n  rc %d (want %d), message: %s\n  want: %s", i, text,
                     rc, b->rc, err.text, b->want);
        assert_null(s.strategy_opts);                /* a failed parse leaves it clear */
        qt_job_clear(&s);
    }
    /* at least 40, and the message length stays inside qt_error */
    assert_true(sizeof bads / sizeof *bads >= 40);
}

static void t_api_edges(void **st)
{
    qt_job_spec s;
    qt_error err;
    assert_int_equal(qt_job_parse(NULL, &s, &err), QT_EINVAL);
    json_t *a = json_array();
    assert_int_equal(qt_job_from_json(a, &s, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "JSON object"));
    json_decref(a);
    assert_int_equal(qt_job_from_json(NULL, &s, &err), QT_EINVAL);
    /* err may be NULL */
    assert_int_equal(qt_job_parse("{\"model\": 1}", &s, NULL), QT_EINVAL);
    assert_int_equal(qt_job_parse("{", &s, NULL), QT_EPARSE);
    /* the EPARSE position is a byte offset */
    assert_int_equal(qt_job_parse("{\"model\": }", &s, &err), QT_EPARSE);
    assert_true(err.pos >= 9);
    /* embedded NUL through qt_job_from_json */
    json_t *j = json_pack("{s:s#}", "model", "a\0b", (size_t)3);
    assert_non_null(j);
    assert_int_equal(qt_job_from_json(j, &s, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "model: contains a NUL"));
    json_decref(j);
    /* integral reals are numbers, not integers */
    s = P("{\"model\": \"m\", \"alpha\": 0, \"budget\": {\"seconds\": 10}, "
          "\"cost\": {\"bitops\": 1}}");
    assert_true(s.alpha == 0 && s.max_seconds == 10 && s.w_bitops == 1);
    qt_job_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_full),
        cmocka_unit_test(t_minimal),
        cmocka_unit_test(t_defaults),
        cmocka_unit_test(t_canonical),
        cmocka_unit_test(t_strategy_opts),
        cmocka_unit_test(t_data),
        cmocka_unit_test(t_round_trip),
        cmocka_unit_test(t_bad),
        cmocka_unit_test(t_api_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
