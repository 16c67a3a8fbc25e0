/*
 * job.c -- tuning jobs: the JSON a user submits, validated into a
 * qt_job_spec, and its canonical JSON.
 *
 * A job is one JSON object. Only "model" is required; every other field
 * has the default shown. Unknown keys are errors (a typo must not silently
 * become a default), and so are duplicate keys (qt_job_parse). An error
 * names the field path and the problem, e.g.
 *   space[1].widths: 0 is not a width (1..32)
 *   constraint.relative: 1.5 must be in (0, 1]
 *
 *   "model"       string, required: a zoo name, a checkpoint or an ONNX
 *                 path (1..511 bytes). It is not opened here, so node
 *                 names and globs are checked when the search starts.
 *   "dataset"     "fashion-mnist" (default, built in), or the name of
 *                 another dataset (1..63 bytes of letters, digits, '.',
 *                 '_', '-', beginning with a letter or digit) whose files
 *                 "data" gives: qtuned fills it in for a dataset registered
 *                 with dataset.register.
 *   "data"        required for any dataset but fashion-mnist (and refused
 *                 for it): an object of
 *       "train_images", "train_labels"   IDX files (gzip or not), required:
 *                   the training images, from which the validation split
 *                   is carved;
 *       "test_images", "test_labels"     the test split (optional, both or
 *                   neither);
 *       "norm"      {"scale": s, "mean": m, "std": d}: a pixel v becomes
 *                   (v*s - m)/d; default {1/255, 0, 1}; std > 0;
 *       "val_count" integer >= 0: validation images, the last ones of a
 *                   val_seed permutation of the training images (0, the
 *                   default: a sixth of them, at most 10000);
 *       "val_seed"  integer 0..2^63-1, default 1592614637 (0x5eed5eed, as
 *                   Fashion-MNIST's split; 0: the file's order).
 *   "kind"        "inference" (default): candidates configure the trained
 *                 model; "training": candidates configure training from
 *                 the model's seed, for "epochs" epochs.
 *   "epochs"      integer >= 1, default 1; training jobs only.
 *   "lr"          number > 0, default 0.01: the SGD learning rate (momentum
 *                 0.9, batch 64) of every candidate's training; training
 *                 jobs only.
 *   "train_limit" integer >= 0: train on the first n images of the training
 *                 split (0, the default: all); training jobs only.
 *   "space"       non-empty array of at most 32 rules, default [{}] (one
 *                 rule of defaults: the weights of every node, fixed point,
 *                 2 to 16 bits). Later rules override earlier ones for the
 *                 same (node, point). A rule is an object of:
 *       "nodes"     a node name or a glob (* ? [..]), default "*"
 *                   (1..63 bytes).
 *       "points"    non-empty array of quantization points, default
 *                   ["weights"]: weights, bias, output, intrinsic, and for
 *                   training jobs only grad_output, grad_weights,
 *                   accumulator.
 *       "types"     non-empty array of types, default ["fixed"]: fixed,
 *                   ufixed, float, log, binary, ternary, cluster, block,
 *                   sparse (quant.h; "none" is not a type to search: every
 *                   tensor is float until a strategy quantizes it).
 *       "widths"    [min, max] bits, 1 <= min <= max <= 32, default [2, 16].
 *       "rounding"  rne (default), rna, sr, rd or rz.
 *       "bias"      "fit" (default): fractional bits / exponent bias / scale
 *                   fitted to the tensor's measured range; or {"search": k},
 *                   1 <= k <= 8: searched within the fitted bias +- k.
 *   "cost"        what is minimised: "weight_bits" (default), "act_bits",
 *                 "bitops", or an object of weights {"weight_bits": a,
 *                 "act_bits": b, "bitops": c} (missing weights are 0; all
 *                 >= 0, at least one > 0).
 *   "constraint"  what must hold, default {"metric": "top1",
 *                 "relative": 0.99}. An object of:
 *       "metric"    "top1" (default), "top5" or "loss";
 *       and exactly one of
 *       "relative"  r, 0 < r <= 1: keep at least r x the float model's
 *                   metric;
 *       "absolute"  d >= 0: lose at most d (top1/top5 as a fraction,
 *                   0.01 is one point, so d <= 1; loss in nats).
 *   "strategy"    "bisection" (default), "uniform", "greedy", "analytical"
 *                 or "hybrid"; or an object {"name": ..., options...}
 *                 whose other keys are the strategy's options (checked by
 *                 the strategy when the search starts).
 *   "budget"      {"evaluations": n, "seconds": s}, n integer >= 0, s >= 0;
 *                 0 (the default) is no limit.
 *   "val_limit"   integer >= 0: evaluate on the first n validation images
 *                 (0, the default: all).
 *   "alpha"       0 <= alpha < 0.5, default 0.01: the error rate of the
 *                 early stop that decides a candidate before the whole
 *                 split (0: only the exact stop, once the rest of the
 *                 split can no longer change the verdict).
 *   "early_pass"  boolean, default false: also stop a candidate as soon as
 *                 it can no longer fail (by default only failing ones stop
 *                 early, so every passing result's accuracy is exact).
 *   "early_stop"  boolean, default true: false runs every candidate on the
 *                 whole split (no exact or statistical stop; for measuring
 *                 what the early stop saves).
 *   "val_order"   "random" (the default) or "hardest_first". Random: the
 *                 split's seeded permutation, so the first m images are a
 *                 random sample and the statistical stop (alpha) applies.
 *                 hardest_first (top-1 constraints): whole-split
 *                 candidates see the images in the order of the float
 *                 model's margin (its label's logit minus the largest
 *                 other), wrong and narrowest first; only the exact stop
 *                 applies, so no verdict differs from the whole split's,
 *                 and a candidate that fails loses its images early. An
 *                 early stop's top-1 is then the most the whole split
 *                 could give, not an estimate. Subsets (greedy's pass 1)
 *                 stay random samples.
 *   "seed"        integer 0..2^63-1, default 1: stochastic rounding, splits.
 *   "workers"     evaluation threads, 1..64, default 1 (results do not
 *                 depend on it).
 *   "cache_mb"    integer 0..65536, default 256: memory for prefix reuse,
 *                 the activations candidates share with earlier ones
 *                 (least recently used evicted first; 0: off). Results do
 *                 not depend on it.
 *
 * Integers must be JSON integers (2, not 2.0); other numbers may be either.
 * qt_job_to_json writes every field, defaults filled in, in the order
 * above ("epochs" only for training jobs; the strategy as a plain name when
 * it has no options), and qt_job_parse of that text gives the same spec.
 */
#include "quant.h"
#include "tuner.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

static const char *const top_keys[] = {
    "model", "dataset", "data", "kind", "epochs", "lr", "train_limit", "space", "cost", "constraint", "strategy",
    "budget", "val_limit", "alpha", "early_pass", "early_stop", "val_order", "seed", "workers", "cache_mb", NULL
};
static const char *const rule_keys[] = {
    "nodes", "points", "types", "widths", "rounding", "bias", NULL
};
#define BUILTIN_DATASET "fashion-mnist"
static const char *const data_keys[] = {
    "train_images", "train_labels", "test_images", "test_labels", "norm", "val_count",
    "val_seed", NULL
};
static const char *const norm_keys[] = { "scale", "mean", "std", NULL };
#define DEFAULT_VAL_SEED 0x5eed5eedull
static const char *const kinds[] = { "inference", "training", NULL };
/* the strategies a job may name; the registry (qt_strategy_find) will
 * replace this list once it exists */
static const char *const strategies[] = {
    "uniform", "bisection", "greedy", "analytical", "hybrid", "grid", NULL
};
static const char *const cost_names[] = { "weight_bits", "act_bits", "bitops", NULL };
static const char *const metric_names[] = { "top1", "top5", "loss", NULL };
static const char *const constraint_keys[] = { "metric", "relative", "absolute", NULL };
static const char *const budget_keys[] = { "evaluations", "seconds", NULL };
static const char *const bias_keys[] = { "search", NULL };

#if JSON_INTEGER_IS_LONG_LONG
#define JINT_MAX LLONG_MAX
#else
#define JINT_MAX LONG_MAX
#endif

#define DEFAULT_STRATEGY "bisection"
#define DEFAULT_RELATIVE 0.99
#define DEFAULT_ALPHA    0.01
#define DEFAULT_CACHE_MB 256
#define MAX_WORKERS      64
#define MAX_BIAS_K       8

/* points that exist only while training */
#define TRAINING_POINTS ((1u << QT_QP_GRAD_OUTPUT) | (1u << QT_QP_GRAD_WEIGHTS) | \
                         (1u << QT_QP_ACCUMULATOR))

static int find_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

/* "a, b, c" into buf */
static void join(const char *const *names, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && used < size; i++) {
        int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (k < 0) break;
        used += (size_t)k;
    }
}

/* the searchable types (every type but none) and the points, as name lists */
static void type_list(const char **names)
{
    int n = 0;
    for (int t = 1; t < QT_TYPE_COUNT; t++) names[n++] = qt_type_name((qt_type)t);
    names[n] = NULL;
}

static void point_list(const char **names)
{
    int n = 0;
    for (int p = 0; p < QT_QP_COUNT; p++) names[n++] = qt_qpoint_name((qt_qpoint)p);
    names[n] = NULL;
}

static void round_list(const char **names)
{
    int n = 0;
    for (int r = 0; r < QT_ROUND_COUNT; r++) names[n++] = qt_round_name((qt_round)r);
    names[n] = NULL;
}

/* ------------------------------------------------------------------------ */
/* Errors and typed fields                                                   */
/* ------------------------------------------------------------------------ */

/* QT_EINVAL with "path: message" */
__attribute__((format(printf, 3, 4)))
static int fail(qt_error *err, const char *path, const char *fmt, ...)
{
    char msg[sizeof err->text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qt_errorf(err, QT_EINVAL, -1, "%s: %s", path, msg);
}

/* every key of o must be in known */
static int check_keys(const json_t *o, const char *path, const char *const *known,
                      qt_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        if (find_name(known, key) >= 0) continue;
        char list[160];
        join(known, list, sizeof list);
        return fail(err, path, "unknown key '%.40s' (%s)", key, list);
    }
    return QT_OK;
}

/* a JSON integer in [lo, hi] */
static int get_int(const json_t *v, const char *path, json_int_t lo, json_int_t hi,
                   json_int_t *out, qt_error *err)
{
    if (!json_is_integer(v)) return fail(err, path, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        if (hi == JINT_MAX)
            return fail(err, path, "%" JSON_INTEGER_FORMAT " must be >= %" JSON_INTEGER_FORMAT,
                        x, lo);
        return fail(err, path, "%" JSON_INTEGER_FORMAT " is out of range (%" JSON_INTEGER_FORMAT
                    "..%" JSON_INTEGER_FORMAT ")", x, lo, hi);
    }
    *out = x;
    return QT_OK;
}

static int get_num(const json_t *v, const char *path, double *out, qt_error *err)
{
    if (!json_is_number(v)) return fail(err, path, "must be a number");
    *out = json_number_value(v);
    return QT_OK;
}

/* a string that must be one of names; what: "a strategy" */
static int get_name(const json_t *v, const char *path, const char *const *names,
                    const char *what, int *out, qt_error *err)
{
    char list[160];
    join(names, list, sizeof list);
    if (!json_is_string(v)) return fail(err, path, "must be a string (%s)", list);
    int i = find_name(names, json_string_value(v));
    if (i < 0)
        return fail(err, path, "'%.40s' is not %s (%s)", json_string_value(v), what, list);
    *out = i;
    return QT_OK;
}

/* a string of 1..size-1 bytes into buf */
static int get_str(const json_t *v, const char *path, char *buf, size_t size, qt_error *err)
{
    if (!json_is_string(v)) return fail(err, path, "must be a string");
    size_t n = json_string_length(v);
    if (n == 0) return fail(err, path, "must not be empty");
    if (n >= size) return fail(err, path, "longer than %zu bytes", size - 1);
    if (strlen(json_string_value(v)) != n) return fail(err, path, "contains a NUL");
    memcpy(buf, json_string_value(v), n + 1);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

/* a dataset name: [A-Za-z0-9][A-Za-z0-9._-]* */
static int name_ok(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int parse_data(const json_t *v, qt_job_spec *s, qt_error *err)
{
    qt_job_data *d = &s->data;
    json_t *e;
    json_int_t n = 0;
    int rc;
    memset(d, 0, sizeof *d);
    d->norm.scale = 1.0f / 255.0f;
    d->norm.mean = 0.0f;
    d->norm.std = 1.0f;
    d->val_seed = DEFAULT_VAL_SEED;
    if (!json_is_object(v))
        return fail(err, "data", "must be an object {\"train_images\": ..., \"train_labels\": "
                    "..., ...}");
    if ((rc = check_keys(v, "data", data_keys, err)) != QT_OK) return rc;
    struct { const char *key; char *buf; int required; } paths[] = {
        { "train_images", d->train_images, 1 }, { "train_labels", d->train_labels, 1 },
        { "test_images", d->test_images, 0 }, { "test_labels", d->test_labels, 0 },
    };
    for (int i = 0; i < 4; i++) {
        char fp[32];
        snprintf(fp, sizeof fp, "data.%s", paths[i].key);
        if (!(e = json_object_get(v, paths[i].key))) {
            if (paths[i].required) return fail(err, fp, "required (an IDX file)");
            continue;
        }
        if ((rc = get_str(e, fp, paths[i].buf, QT_JOB_PATH_MAX, err)) != QT_OK) return rc;
    }
    if (!d->test_images[0] != !d->test_labels[0])
        return fail(err, d->test_images[0] ? "data.test_labels" : "data.test_images",
                    "required with %s (give both test files or neither)",
                    d->test_images[0] ? "test_images" : "test_labels");
    if ((e = json_object_get(v, "norm"))) {
        double x[3] = { d->norm.scale, d->norm.mean, d->norm.std };
        if (!json_is_object(e))
            return fail(err, "data.norm", "must be an object {\"scale\": s, \"mean\": m, "
                        "\"std\": d}");
        if ((rc = check_keys(e, "data.norm", norm_keys, err)) != QT_OK) return rc;
        for (int i = 0; i < 3; i++) {
            json_t *f = json_object_get(e, norm_keys[i]);
            char fp[32];
            snprintf(fp, sizeof fp, "data.norm.%s", norm_keys[i]);
            if (f && (rc = get_num(f, fp, &x[i], err)) != QT_OK) return rc;
            if (!isfinite(x[i]) || fabs(x[i]) > 1e30) return fail(err, fp, "%g is not a finite float", x[i]);
        }
        if (!(x[2] > 0)) return fail(err, "data.norm.std", "%g must be > 0", x[2]);
        d->norm.scale = (float)x[0];
        d->norm.mean = (float)x[1];
        d->norm.std = (float)x[2];
        if (!(d->norm.std > 0)) return fail(err, "data.norm.std", "%g must be > 0", x[2]);
    }
    if ((e = json_object_get(v, "val_count"))) {
        if ((rc = get_int(e, "data.val_count", 0, 1 << 26, &n, err)) != QT_OK) return rc;
        d->val_count = (size_t)n;
    }
    if ((e = json_object_get(v, "val_seed"))) {
        if ((rc = get_int(e, "data.val_seed", 0, JINT_MAX, &n, err)) != QT_OK) return rc;
        d->val_seed = (uint64_t)n;
    }
    return QT_OK;
}

static void rule_defaults(qt_space_rule *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->nodes, "*");
    r->points = 1u << QT_QP_WEIGHTS;
    r->types = 1u << QT_FIXED;
    r->wmin = 2;
    r->wmax = 16;
    r->round = QT_RNE;
    r->bias = QT_BIAS_FIT;
    r->bias_k = 0;
}

/* a non-empty array of names into a bit set; bit i for names[i], first
 * bit `first` (types skip none) */
static int get_set(const json_t *v, const char *path, const char *const *names, int first,
                   const char *what, uint32_t *out, qt_error *err)
{
    char list[160], ep[64];
    join(names, list, sizeof list);
    if (!json_is_array(v)) return fail(err, path, "must be an array of %ss (%s)", what, list);
    if (json_array_size(v) == 0) return fail(err, path, "must not be empty (%s)", list);
    uint32_t set = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        int k = 0, rc;
        snprintf(ep, sizeof ep, "%s[%zu]", path, i);
        char an[32];
        snprintf(an, sizeof an, "a %s", what);
        if ((rc = get_name(e, ep, names, an, &k, err)) != QT_OK) return rc;
        set |= 1u << (k + first);
    }
    *out = set;
    return QT_OK;
}

static int parse_rule(const json_t *j, int idx, qt_job_kind kind, qt_space_rule *r,
                      qt_error *err)
{
    char path[32], fp[48];
    const char *names[QT_TYPE_COUNT + QT_QP_COUNT + QT_ROUND_COUNT + 1];
    json_t *v;
    int rc;
    snprintf(path, sizeof path, "space[%d]", idx);
    rule_defaults(r);
    if (!json_is_object(j)) return fail(err, path, "a rule must be an object");
    if ((rc = check_keys(j, path, rule_keys, err)) != QT_OK) return rc;

    if ((v = json_object_get(j, "nodes"))) {
        snprintf(fp, sizeof fp, "%s.nodes", path);
        if ((rc = get_str(v, fp, r->nodes, sizeof r->nodes, err)) != QT_OK) return rc;
    }
    if ((v = json_object_get(j, "points"))) {
        snprintf(fp, sizeof fp, "%s.points", path);
        point_list(names);
        if ((rc = get_set(v, fp, names, 0, "point", &r->points, err)) != QT_OK) return rc;
        if (kind != QT_JOB_TRAINING && (r->points & TRAINING_POINTS)) {
            size_t i;
            for (i = 0; i < json_array_size(v); i++) {
                int k = find_name(names, json_string_value(json_array_get(v, i)));
                if ((1u << k) & TRAINING_POINTS) break;
            }
            snprintf(fp, sizeof fp, "%s.points[%zu]", path, i);
            return fail(err, fp, "'%s' is a training point and this is an inference job "
                        "(\"kind\": \"training\")",
                        json_string_value(json_array_get(v, i)));
        }
    }
    if ((v = json_object_get(j, "types"))) {
        snprintf(fp, sizeof fp, "%s.types", path);
        type_list(names);
        if ((rc = get_set(v, fp, names, 1, "type", &r->types, err)) != QT_OK) return rc;
    }
    if ((v = json_object_get(j, "widths"))) {
        json_int_t w[2] = { 0, 0 };
        snprintf(fp, sizeof fp, "%s.widths", path);
        if (!json_is_array(v) || json_array_size(v) != 2)
            return fail(err, fp, "must be [min, max]");
        for (int i = 0; i < 2; i++) {
            json_t *e = json_array_get(v, (size_t)i);
            if (!json_is_integer(e))
                return fail(err, fp, "must be [min, max], two integers");
            w[i] = json_integer_value(e);
            if (w[i] < 1 || w[i] > QT_MAX_WIDTH)
                return fail(err, fp, "%" JSON_INTEGER_FORMAT " is not a width (1..%d)",
                            w[i], QT_MAX_WIDTH);
        }
        if (w[0] > w[1])
            return fail(err, fp, "min %" JSON_INTEGER_FORMAT " > max %" JSON_INTEGER_FORMAT,
                        w[0], w[1]);
        r->wmin = (int)w[0];
        r->wmax = (int)w[1];
    }
    if ((v = json_object_get(j, "rounding"))) {
        int k = 0;
        snprintf(fp, sizeof fp, "%s.rounding", path);
        round_list(names);
        if ((rc = get_name(v, fp, names, "a rounding mode", &k, err)) != QT_OK) return rc;
        r->round = (qt_round)k;
    }
    if ((v = json_object_get(j, "bias"))) {
        snprintf(fp, sizeof fp, "%s.bias", path);
        if (json_is_string(v) && !strcmp(json_string_value(v), "fit")) {
            r->bias = QT_BIAS_FIT;
        } else if (json_is_object(v)) {
            json_int_t k = 0;
            if ((rc = check_keys(v, fp, bias_keys, err)) != QT_OK) return rc;
            json_t *s = json_object_get(v, "search");
            snprintf(fp, sizeof fp, "%s.bias.search", path);
            if (!s) return fail(err, fp, "required (an integer 1..%d)", MAX_BIAS_K);
            if ((rc = get_int(s, fp, 1, MAX_BIAS_K, &k, err)) != QT_OK) return rc;
            r->bias = QT_BIAS_SEARCH;
            r->bias_k = (int)k;
        } else {
            return fail(err, fp, "must be \"fit\" or {\"search\": k}");
        }
    }
    return QT_OK;
}

static int parse_space(const json_t *v, qt_job_spec *s, qt_error *err)
{
    if (!v) {
        rule_defaults(&s->rules[0]);
        s->n_rules = 1;
        return QT_OK;
    }
    if (!json_is_array(v)) return fail(err, "space", "must be an array of rules");
    size_t n = json_array_size(v);
    if (n == 0) return fail(err, "space", "must not be empty");
    if (n > QT_JOB_MAX_RULES)
        return fail(err, "space", "%zu rules, at most %d", n, QT_JOB_MAX_RULES);
    for (size_t i = 0; i < n; i++) {
        int rc = parse_rule(json_array_get(v, i), (int)i, s->kind, &s->rules[i], err);
        if (rc != QT_OK) return rc;
    }
    s->n_rules = (int)n;
    return QT_OK;
}

static int parse_cost(const json_t *v, qt_job_spec *s, qt_error *err)
{
    char list[160];
    if (!v) { s->cost = QT_COST_WEIGHT_BITS; return QT_OK; }
    join(cost_names, list, sizeof list);
    if (json_is_string(v)) {
        int k = find_name(cost_names, json_string_value(v));
        if (k < 0)
            return fail(err, "cost", "'%.40s' is not a cost (%s, or an object of weights)",
                        json_string_value(v), list);
        s->cost = (qt_cost_kind)k;
        return QT_OK;
    }
    if (!json_is_object(v))
        return fail(err, "cost", "must be a cost name (%s) or an object of weights", list);
    int rc = check_keys(v, "cost", cost_names, err);
    if (rc != QT_OK) return rc;
    double w[3] = { 0, 0, 0 };
    for (int i = 0; i < 3; i++) {
        json_t *e = json_object_get(v, cost_names[i]);
        char fp[32];
        if (!e) continue;
        snprintf(fp, sizeof fp, "cost.%s", cost_names[i]);
        if ((rc = get_num(e, fp, &w[i], err)) != QT_OK) return rc;
        if (!(w[i] >= 0)) return fail(err, fp, "%g must be >= 0", w[i]);
    }
    if (!(w[0] > 0 || w[1] > 0 || w[2] > 0))
        return fail(err, "cost", "at least one weight must be > 0");
    s->cost = QT_COST_WEIGHTED;
    s->w_weight = w[0];
    s->w_act = w[1];
    s->w_bitops = w[2];
    return QT_OK;
}

static int parse_constraint(const json_t *v, qt_job_spec *s, qt_error *err)
{
    json_t *e, *rel, *abs_;
    int rc, k = 0;
    s->metric = QT_MET_TOP1;
    s->relative = DEFAULT_RELATIVE;
    s->absolute = 0;
    if (!v) return QT_OK;
    if (!json_is_object(v))
        return fail(err, "constraint", "must be an object {\"metric\": ..., \"relative\": r} "
                    "or {\"metric\": ..., \"absolute\": d}");
    if ((rc = check_keys(v, "constraint", constraint_keys, err)) != QT_OK) return rc;
    if ((e = json_object_get(v, "metric"))) {
        rc = get_name(e, "constraint.metric", metric_names, "a metric", &k, err);
        if (rc != QT_OK) return rc;
        s->metric = (qt_metric)k;
    }
    rel = json_object_get(v, "relative");
    abs_ = json_object_get(v, "absolute");
    if (rel && abs_)
        return fail(err, "constraint", "give relative or absolute, not both");
    if (!rel && !abs_)
        return fail(err, "constraint", "give relative (0 < r <= 1) or absolute (d >= 0)");
    if (rel) {
        double r = 0;
        if ((rc = get_num(rel, "constraint.relative", &r, err)) != QT_OK) return rc;
        if (!(r > 0 && r <= 1)) return fail(err, "constraint.relative", "%g must be in (0, 1]", r);
        s->relative = r;
        s->absolute = 0;
    } else {
        double d = 0;
        if ((rc = get_num(abs_, "constraint.absolute", &d, err)) != QT_OK) return rc;
        if (!(d >= 0)) return fail(err, "constraint.absolute", "%g must be >= 0", d);
        if (s->metric != QT_MET_LOSS && d > 1)
            return fail(err, "constraint.absolute", "%g is more than all of %s (a fraction: "
                        "0.01 is one point)", d, metric_names[s->metric]);
        s->relative = 0;
        s->absolute = d;
    }
    return QT_OK;
}

static int parse_strategy(const json_t *v, qt_job_spec *s, qt_error *err)
{
    const json_t *name = v;
    const char *path = "strategy";
    int k = 0, rc;
    s->strategy_opts = NULL;
    if (!v) {
        snprintf(s->strategy, sizeof s->strategy, "%s", DEFAULT_STRATEGY);
        return QT_OK;
    }
    if (json_is_object(v)) {
        name = json_object_get(v, "name");
        path = "strategy.name";
        if (!name) {
            char list[160];
            join(strategies, list, sizeof list);
            return fail(err, path, "required (%s)", list);
        }
    } else if (!json_is_string(v)) {
        return fail(err, path, "must be a strategy name or an object {\"name\": ..., options}");
    }
    if ((rc = get_name(name, path, strategies, "a strategy", &k, err)) != QT_OK) return rc;
    snprintf(s->strategy, sizeof s->strategy, "%s", strategies[k]);
    if (json_is_object(v) && json_object_size(v) > 1) {
        json_t *o = json_deep_copy(v);
        if (!o) return qt_errorf(err, QT_ENOMEM, -1, "strategy: out of memory");
        json_object_del(o, "name");
        s->strategy_opts = o;
    }
    return QT_OK;
}

static int parse_budget(const json_t *v, qt_job_spec *s, qt_error *err)
{
    json_t *e;
    int rc;
    s->max_evals = 0;
    s->max_seconds = 0;
    if (!v) return QT_OK;
    if (!json_is_object(v))
        return fail(err, "budget", "must be an object {\"evaluations\": n, \"seconds\": s}");
    if ((rc = check_keys(v, "budget", budget_keys, err)) != QT_OK) return rc;
    if ((e = json_object_get(v, "evaluations"))) {
        json_int_t n = 0;
        if ((rc = get_int(e, "budget.evaluations", 0, INT_MAX, &n, err)) != QT_OK) return rc;
        s->max_evals = (int)n;
    }
    if ((e = json_object_get(v, "seconds"))) {
        double t = 0;
        if ((rc = get_num(e, "budget.seconds", &t, err)) != QT_OK) return rc;
        if (!(t >= 0)) return fail(err, "budget.seconds", "%g must be >= 0", t);
        s->max_seconds = t;
    }
    return QT_OK;
}

/* everything but the strategy options, which are parsed last so that no
 * error path has a reference to release */
static int parse_job(const json_t *j, qt_job_spec *s, qt_error *err)
{
    json_t *v;
    json_int_t n = 0;
    int rc, k = 0;

    if (!json_is_object(j)) return qt_errorf(err, QT_EINVAL, -1, "a job must be a JSON object");
    if ((rc = check_keys(j, "job", top_keys, err)) != QT_OK) return rc;

    if (!(v = json_object_get(j, "model")))
        return fail(err, "model", "required (a zoo name, checkpoint or ONNX path)");
    if ((rc = get_str(v, "model", s->model, sizeof s->model, err)) != QT_OK) return rc;

    strcpy(s->dataset, BUILTIN_DATASET);
    if ((v = json_object_get(j, "dataset"))) {
        if ((rc = get_str(v, "dataset", s->dataset, sizeof s->dataset, err)) != QT_OK) return rc;
        if (!name_ok(s->dataset))
            return fail(err, "dataset", "'%.63s' is not a dataset name (letters, digits, '.', "
                        "'_', '-')", s->dataset);
    }
    s->has_data = 0;
    v = json_object_get(j, "data");
    if (!strcmp(s->dataset, BUILTIN_DATASET)) {
        if (v) return fail(err, "data", BUILTIN_DATASET " is built in: data describes the "
                           "files of another dataset");
    } else {
        if (!v)
            return fail(err, "data", "required for dataset '%s' (its files; qtuned fills it "
                        "in for a registered dataset: dataset.list lists them)", s->dataset);
        if ((rc = parse_data(v, s, err)) != QT_OK) return rc;
        s->has_data = 1;
    }

    s->kind = QT_JOB_INFERENCE;
    if ((v = json_object_get(j, "kind"))) {
        if ((rc = get_name(v, "kind", kinds, "a job kind", &k, err)) != QT_OK) return rc;
        s->kind = (qt_job_kind)k;
    }
    s->epochs = s->kind == QT_JOB_TRAINING ? 1 : 0;
    if ((v = json_object_get(j, "epochs"))) {
        if (s->kind != QT_JOB_TRAINING)
            return fail(err, "epochs", "only a training job has epochs (\"kind\": \"training\")");
        if ((rc = get_int(v, "epochs", 1, INT_MAX, &n, err)) != QT_OK) return rc;
        s->epochs = (int)n;
    }
    s->lr = s->kind == QT_JOB_TRAINING ? 0.01 : 0;
    if ((v = json_object_get(j, "lr"))) {
        double x = 0;
        if (s->kind != QT_JOB_TRAINING)
            return fail(err, "lr", "only a training job has a learning rate (\"kind\": \"training\")");
        if ((rc = get_num(v, "lr", &x, err)) != QT_OK) return rc;
        if (!(x > 0 && x < 100)) return fail(err, "lr", "%g must be in (0, 100)", x);
        s->lr = x;
    }
    s->train_limit = 0;
    if ((v = json_object_get(j, "train_limit"))) {
        if (s->kind != QT_JOB_TRAINING)
            return fail(err, "train_limit", "only a training job trains (\"kind\": \"training\")");
        if ((rc = get_int(v, "train_limit", 0, JINT_MAX, &n, err)) != QT_OK) return rc;
        s->train_limit = (size_t)n;
    }

    if ((rc = parse_space(json_object_get(j, "space"), s, err)) != QT_OK) return rc;
    if ((rc = parse_cost(json_object_get(j, "cost"), s, err)) != QT_OK) return rc;
    if ((rc = parse_constraint(json_object_get(j, "constraint"), s, err)) != QT_OK) return rc;
    if ((rc = parse_budget(json_object_get(j, "budget"), s, err)) != QT_OK) return rc;

    s->val_limit = 0;
    if ((v = json_object_get(j, "val_limit"))) {
        if ((rc = get_int(v, "val_limit", 0, JINT_MAX, &n, err)) != QT_OK) return rc;
        s->val_limit = (size_t)n;
    }
    s->alpha = DEFAULT_ALPHA;
    if ((v = json_object_get(j, "alpha"))) {
        double a = 0;
        if ((rc = get_num(v, "alpha", &a, err)) != QT_OK) return rc;
        if (!(a >= 0 && a < 0.5)) return fail(err, "alpha", "%g must be in [0, 0.5)", a);
        s->alpha = a;
    }
    s->early_pass = 0;
    if ((v = json_object_get(j, "early_pass"))) {
        if (!json_is_boolean(v)) return fail(err, "early_pass", "must be true or false");
        s->early_pass = json_is_true(v);
    }
    s->full_eval = 0;
    if ((v = json_object_get(j, "early_stop"))) {
        if (!json_is_boolean(v)) return fail(err, "early_stop", "must be true or false");
        s->full_eval = json_is_false(v);
    }
    s->hardest_first = 0;
    if ((v = json_object_get(j, "val_order"))) {
        const char *o = json_string_value(v);
        if (!o || (strcmp(o, "random") && strcmp(o, "hardest_first")))
            return fail(err, "val_order", "must be \"random\" or \"hardest_first\"");
        s->hardest_first = !strcmp(o, "hardest_first");
    }
    s->seed = 1;
    if ((v = json_object_get(j, "seed"))) {
        if ((rc = get_int(v, "seed", 0, JINT_MAX, &n, err)) != QT_OK) return rc;
        s->seed = (uint64_t)n;
    }
    s->workers = 1;
    if ((v = json_object_get(j, "workers"))) {
        if ((rc = get_int(v, "workers", 1, MAX_WORKERS, &n, err)) != QT_OK) return rc;
        s->workers = (int)n;
    }
    s->cache_mb = DEFAULT_CACHE_MB;
    if ((v = json_object_get(j, "cache_mb"))) {
        if ((rc = get_int(v, "cache_mb", 0, 65536, &n, err)) != QT_OK) return rc;
        s->cache_mb = (int)n;
    }
    return parse_strategy(json_object_get(j, "strategy"), s, err);
}

int qt_job_from_json(const json_t *j, qt_job_spec *out, qt_error *err)
{
    qt_job_spec s;
    memset(&s, 0, sizeof s);
    int rc = parse_job(j, &s, err);
    if (rc != QT_OK) {
        json_decref(s.strategy_opts);
        memset(out, 0, sizeof *out);
        return rc;
    }
    *out = s;
    return QT_OK;
}

int qt_job_parse(const char *text, qt_job_spec *out, qt_error *err)
{
    json_error_t je;
    json_t *j;
    int rc;
    memset(out, 0, sizeof *out);
    if (!text) return qt_errorf(err, QT_EINVAL, -1, "no job given");
    j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return qt_errorf(err, QT_EPARSE, je.position,
                         "job is not valid JSON: %s (line %d, column %d)",
                         je.text, je.line, je.column);
    rc = qt_job_from_json(j, out, err);
    json_decref(j);
    return rc;
}

void qt_job_clear(qt_job_spec *s)
{
    if (!s) return;
    json_decref(s->strategy_opts);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------ */
/* Canonical JSON                                                            */
/* ------------------------------------------------------------------------ */

/* o[key] = v and a += v, stealing v (also on failure, as jansson's *_new
 * do); a failure (out of memory) is remembered in *bad */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!o || !v) { json_decref(v); *bad = 1; return; }
    if (json_object_set_new(o, key, v) != 0) *bad = 1;
}

static void add(json_t *a, json_t *v, int *bad)
{
    if (!a || !v) { json_decref(v); *bad = 1; return; }
    if (json_array_append_new(a, v) != 0) *bad = 1;
}

static json_t *rule_to_json(const qt_space_rule *r, int *bad)
{
    json_t *o = json_object(), *a, *w;
    put(o, "nodes", json_string(r->nodes), bad);
    a = json_array();
    for (int p = 0; p < QT_QP_COUNT; p++)
        if (r->points & (1u << p)) add(a, json_string(qt_qpoint_name((qt_qpoint)p)), bad);
    put(o, "points", a, bad);
    a = json_array();
    for (int t = 1; t < QT_TYPE_COUNT; t++)
        if (r->types & (1u << t)) add(a, json_string(qt_type_name((qt_type)t)), bad);
    put(o, "types", a, bad);
    w = json_array();
    add(w, json_integer(r->wmin), bad);
    add(w, json_integer(r->wmax), bad);
    put(o, "widths", w, bad);
    put(o, "rounding", json_string(qt_round_name(r->round)), bad);
    if (r->bias == QT_BIAS_SEARCH) {
        json_t *b = json_object();
        put(b, "search", json_integer(r->bias_k), bad);
        put(o, "bias", b, bad);
    } else {
        put(o, "bias", json_string("fit"), bad);
    }
    return o;
}

json_t *qt_job_to_json(const qt_job_spec *s)
{
    int bad = 0;
    json_t *o = json_object(), *a, *e;

    put(o, "model", json_string(s->model), &bad);
    put(o, "dataset", json_string(s->dataset), &bad);
    if (s->has_data) {
        const qt_job_data *d = &s->data;
        json_t *n;
        e = json_object();
        put(e, "train_images", json_string(d->train_images), &bad);
        put(e, "train_labels", json_string(d->train_labels), &bad);
        if (d->test_images[0]) {
            put(e, "test_images", json_string(d->test_images), &bad);
            put(e, "test_labels", json_string(d->test_labels), &bad);
        }
        n = json_object();
        put(n, "scale", json_real(d->norm.scale), &bad);
        put(n, "mean", json_real(d->norm.mean), &bad);
        put(n, "std", json_real(d->norm.std), &bad);
        put(e, "norm", n, &bad);
        put(e, "val_count", json_integer((json_int_t)d->val_count), &bad);
        put(e, "val_seed", json_integer((json_int_t)d->val_seed), &bad);
        put(o, "data", e, &bad);
    }
    put(o, "kind", json_string(kinds[s->kind == QT_JOB_TRAINING]), &bad);
    if (s->kind == QT_JOB_TRAINING) {
        put(o, "epochs", json_integer(s->epochs), &bad);
        put(o, "lr", json_real(s->lr), &bad);
        put(o, "train_limit", json_integer((json_int_t)s->train_limit), &bad);
    }

    a = json_array();
    for (int i = 0; i < s->n_rules && i < QT_JOB_MAX_RULES; i++)
        add(a, rule_to_json(&s->rules[i], &bad), &bad);
    put(o, "space", a, &bad);

    if (s->cost == QT_COST_WEIGHTED) {
        e = json_object();
        put(e, "weight_bits", json_real(s->w_weight), &bad);
        put(e, "act_bits", json_real(s->w_act), &bad);
        put(e, "bitops", json_real(s->w_bitops), &bad);
        put(o, "cost", e, &bad);
    } else {
        put(o, "cost", json_string(cost_names[(unsigned)s->cost < 3 ? s->cost : 0]), &bad);
    }

    e = json_object();
    put(e, "metric", json_string(metric_names[(unsigned)s->metric < 3 ? s->metric : 0]), &bad);
    if (s->relative > 0) put(e, "relative", json_real(s->relative), &bad);
    else put(e, "absolute", json_real(s->absolute), &bad);
    put(o, "constraint", e, &bad);

    if (s->strategy_opts && json_object_size(s->strategy_opts) > 0) {
        const char *key;
        json_t *v;
        e = json_object();
        put(e, "name", json_string(s->strategy), &bad);
        json_object_foreach(s->strategy_opts, key, v)
            if (strcmp(key, "name")) put(e, key, json_deep_copy(v), &bad);
        put(o, "strategy", e, &bad);
    } else {
        put(o, "strategy", json_string(s->strategy), &bad);
    }

    e = json_object();
    put(e, "evaluations", json_integer(s->max_evals), &bad);
    put(e, "seconds", json_real(s->max_seconds), &bad);
    put(o, "budget", e, &bad);

    put(o, "val_limit", json_integer((json_int_t)s->val_limit), &bad);
    put(o, "alpha", json_real(s->alpha), &bad);
    put(o, "early_pass", json_boolean(s->early_pass), &bad);
    put(o, "early_stop", json_boolean(!s->full_eval), &bad);
    put(o, "val_order", json_string(s->hardest_first ? "hardest_first" : "random"), &bad);
    put(o, "seed", json_integer((json_int_t)s->seed), &bad);
    put(o, "workers", json_integer(s->workers), &bad);
    put(o, "cache_mb", json_integer(s->cache_mb), &bad);

    if (bad) { json_decref(o); return NULL; }
    return o;
}
