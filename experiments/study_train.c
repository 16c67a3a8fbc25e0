/*
 * study_train.c -- issue #9's training studies on Fashion-MNIST:
 *
 *   study_train sparsity   study 3 (TensorQuant, ECML 2018): per layer, the
 *                          fraction of exact zeros of activations, weights,
 *                          activation gradients and weight gradients over
 *                          the epochs of training, in float and under
 *                          8-bit fixed point (weights and outputs nearest,
 *                          gradients stochastic), before (zeros) and after
 *                          (zeros_q) each point's quantization.
 *   study_train sakr       study 5 (Sakr & Shanbhag, ICLR'19): the analytical
 *                          per-tensor precisions of weights, outputs,
 *                          output gradients, weight gradients and
 *                          accumulators of LeNet-5 or the zoo's ResNet
 *                          (--model; a training job, strategy analytical),
 *                          then training in fp32, under them and under a
 *                          uniform assignment of the same cost.
 *   study_train grads      study 6 (TensorQuant slides' appendix): a (W, F)
 *                          sweep of one fixed-point format for every
 *                          gradient (grad_output and grad_weights), nearest
 *                          and stochastic rounding, relative accuracy.
 *
 * Every training run is one qt_train of a fresh zoo model (qt_model_load,
 * its own seed) on the first --train images of the training split, with the
 * validation top-1 (first --val images) measured after each epoch and the
 * test top-1 (first --test images) at the end. Each finished run is kept in
 * a JSON cache (--cache, default build/study_train_cache.json under the
 * source tree) keyed by a hash of its settings, so an interrupted study
 * resumes where it stopped and a finished one rewrites its outputs at once.
 * Progress goes to stderr; Markdown, JSON and SVG go to --out (default
 * experiments/results). Exit status: 0, 1 for a real error, 2 for bad
 * options.
 */
#include "tuner.h"
#include "plot.h"
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef QT_SOURCE_DIR
#define QT_SOURCE_DIR "."
#endif

#define MAX_LIST 32

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct opts {
    const char *study;
    char   models[256];
    int    epochs;           /* training epochs per run */
    size_t train, val, test; /* images of each split (0: all) */
    double lr;
    uint64_t seed;
    int    job_epochs;       /* sakr: the float training the rules read */
    size_t job_train;
    int    widths[MAX_LIST], n_widths;     /* grads */
    int    foffs[MAX_LIST], n_foffs;       /* grads: F = fitted + offset */
    int    abits;            /* sparsity: bits of weights/outputs/gradients */
    int    goff_a, goff_w;   /* sparsity: output / weight gradients' F = fitted + goff */
    char   quant[128];       /* sparsity: the points quantized */
    char   plan[16];         /* sakr: the analytical plan */
    char   model[16];        /* sakr: the zoo model (lenet5 or resnet) */
    int    ablate[5], n_ablate;  /* sakr: uniform with one kind analytical (pt_index) */
    char   cache[1024], out[1024];
    char   cmd[2048];        /* the command line, for the Markdown */
} opts;

static void usage(FILE *f)
{
    fprintf(f,
"usage: study_train STUDY [options]\n"
"  STUDY: sparsity | sakr | grads\n"
"common options:\n"
"  --epochs N       training epochs per run (sparsity 3, sakr 5, grads 2)\n"
"  --train N        training images: the first N of the training split (0: all 50000)\n"
"  --val N          validation images measured after each epoch (default 5000)\n"
"  --test N         test images measured at the end (default 10000)\n"
"  --lr X           SGD learning rate (momentum 0.9, batch 64; default 0.05)\n"
"  --seed N         shuffling and stochastic rounding seed (default 1)\n"
"  --cache FILE     finished runs (default <source>/build/study_train_cache.json)\n"
"  --out DIR        where the .md/.json/.svg go (default <source>/experiments/results)\n"
"sparsity:  --models LIST (default lenet5,mlp; MODEL:EPOCHS[:TRAIN] overrides\n"
"           --epochs and --train for that model)  --bits N (default 8)\n"
"           --quant LIST (points quantized; default weights,output,grad_output,grad_weights)\n"
"           --goff-a N, --goff-w N (output / weight gradients' F: fitted to the float\n"
"           run's largest |g|, plus N; defaults 0 and 4)\n"
"sakr:      --model lenet5|resnet (default lenet5; outputs study_sakr.* for lenet5,\n"
"           study_sakr_MODEL.* for another)\n"
"           --job-epochs N (float training the rules read; default: --epochs)\n"
"           --job-train N (its images; default: --train)\n"
"           --ablate LIST|none (extra runs: uniform with these points' formats\n"
"           taken from the analytical plan; default grad_weights,grad_output)\n"
"           --plan offsets|allocate (the analytical strategy's plan; default offsets:\n"
"           Sakr's EFQN B_min + round(log2 sqrt(E/E_min)); allocate: per-tensor\n"
"           allocation under cost weight_bits + act_bits)\n"
"grads:     --widths LIST (default 4,6,8,12,16)  --foffsets LIST (default 0,2,4,6,8:\n"
"           F = the fitted F of width W plus each offset)\n");
}

static int bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "study_train: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(study_train --help for the options)\n");
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_list(const char *s, int lo, int hi, int *out, int *n)
{
    char buf[512];
    if (strlen(s) >= sizeof buf || !*s) return -1;
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long v;
        if (*n >= MAX_LIST || parse_long(t, lo, hi, &v)) return -1;
        out[(*n)++] = (int)v;
    }
    return *n ? 0 : -1;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(stdout); return 1; }
    o->study = argv[1];
    int sp = !strcmp(o->study, "sparsity"), sk = !strcmp(o->study, "sakr"),
        gr = !strcmp(o->study, "grads");
    if (!sp && !sk && !gr) return bad("unknown study '%s' (sparsity, sakr or grads)", o->study);
    snprintf(o->models, sizeof o->models, "lenet5,mlp");
    o->epochs = sp ? 3 : sk ? 5 : 2;
    o->val = 5000;
    o->test = 10000;
    o->lr = 0.05;
    o->seed = 1;
    o->job_epochs = -1;
    snprintf(o->plan, sizeof o->plan, "offsets");
    snprintf(o->model, sizeof o->model, "lenet5");
    o->ablate[0] = 3;          /* grad_weights */
    o->ablate[1] = 2;          /* grad_output */
    o->n_ablate = 2;
    o->job_train = (size_t)-1;
    o->abits = 8;
    o->goff_a = 0;
    o->goff_w = 4;
    snprintf(o->quant, sizeof o->quant, "weights,output,grad_output,grad_weights");
    int w[] = { 4, 6, 8, 12, 16 }, f[] = { 0, 2, 4, 6, 8 };
    memcpy(o->widths, w, sizeof w);
    o->n_widths = 5;
    memcpy(o->foffs, f, sizeof f);
    o->n_foffs = 5;
    snprintf(o->cache, sizeof o->cache, "%s/build/study_train_cache.json", QT_SOURCE_DIR);
    snprintf(o->out, sizeof o->out, "%s/experiments/results", QT_SOURCE_DIR);
    size_t len = 0;
    for (int i = 0; i < argc && len < sizeof o->cmd; i++)
        len += (size_t)snprintf(o->cmd + len, sizeof o->cmd - len, "%s%s", i ? " " : "",
                                i ? argv[i] : "./build/experiments/study_train");
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 1; }
        if (!v) return bad("%s needs a value", a);
        i++;
        if (!strcmp(a, "--epochs")) {
            if (parse_long(v, 1, 1000, &n)) return bad("--epochs: '%s' is not 1..1000", v);
            o->epochs = (int)n;
        } else if (!strcmp(a, "--train") || !strcmp(a, "--val") || !strcmp(a, "--test") ||
                   !strcmp(a, "--job-train")) {
            if (parse_long(v, 0, 100000000, &n)) return bad("%s: '%s' is not a count >= 0", a, v);
            if (!strcmp(a, "--train")) o->train = (size_t)n;
            else if (!strcmp(a, "--val")) o->val = (size_t)n;
            else if (!strcmp(a, "--test")) o->test = (size_t)n;
            else o->job_train = (size_t)n;
        } else if (!strcmp(a, "--lr")) {
            char *e;
            o->lr = strtod(v, &e);
            if (e == v || *e || !(o->lr > 0 && o->lr < 100)) return bad("--lr: '%s' is not in (0, 100)", v);
        } else if (!strcmp(a, "--seed")) {
            if (parse_long(v, 0, 0x7fffffffL, &n)) return bad("--seed: '%s' is not 0..2^31-1", v);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--job-epochs") && sk) {
            if (parse_long(v, 1, 1000, &n)) return bad("--job-epochs: '%s' is not 1..1000", v);
            o->job_epochs = (int)n;
        } else if (!strcmp(a, "--model") && sk) {
            if (strcmp(v, "lenet5") && strcmp(v, "resnet")) return bad("--model: '%s' is not lenet5 or resnet", v);
            snprintf(o->model, sizeof o->model, "%s", v);
        } else if (!strcmp(a, "--plan") && sk) {
            if (strcmp(v, "offsets") && strcmp(v, "allocate")) return bad("--plan: '%s' is not offsets or allocate", v);
            snprintf(o->plan, sizeof o->plan, "%s", v);
        } else if (!strcmp(a, "--ablate") && sk) {
            static const char *const kn[5] = { "weights", "output", "grad_output", "grad_weights", "accumulator" };
            char buf[256];
            o->n_ablate = 0;
            if (strlen(v) >= sizeof buf) return bad("--ablate: list too long");
            strcpy(buf, v);
            if (strcmp(buf, "none"))
                for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                    int k = -1;
                    for (int j = 0; j < 5; j++) if (!strcmp(t, kn[j])) k = j;
                    if (k < 0 || o->n_ablate >= 5) return bad("--ablate: '%s' is not a point of weights, output, grad_output, grad_weights, accumulator", t);
                    o->ablate[o->n_ablate++] = k;
                }
        } else if (!strcmp(a, "--models") && sp) {
            if (strlen(v) >= sizeof o->models || !*v) return bad("--models: bad list '%s'", v);
            snprintf(o->models, sizeof o->models, "%s", v);
            for (const char *p = v; *p;) {
                size_t k = strcspn(p, ",:"), ok = 0;
                for (const char *const *z = qt_zoo_names(); *z; z++)
                    ok |= strlen(*z) == k && !strncmp(*z, p, k);
                if (!ok) return bad("--models: '%.*s' is not a zoo model", (int)k, p);
                p += k;
                for (int fi = 0; fi < 2 && *p == ':'; fi++) {
                    char *e;
                    long x = strtol(p + 1, &e, 10);
                    if (e == p + 1 || x < (fi ? 0 : 1) || x > 100000000 || (*e && *e != ',' && *e != ':'))
                        return bad("--models: bad MODEL:EPOCHS:TRAIN in '%s'", v);
                    p = e;
                }
                if (*p == ':') return bad("--models: bad MODEL:EPOCHS:TRAIN in '%s'", v);
                p += *p == ',';
            }
        } else if (!strcmp(a, "--quant") && sp) {
            if (strlen(v) >= sizeof o->quant || !*v) return bad("--quant: bad list");
            for (const char *q = v; *q;) {
                size_t k = strcspn(q, ",");
                if (!((k == 7 && !strncmp(q, "weights", 7)) || (k == 6 && !strncmp(q, "output", 6)) ||
                      (k == 11 && !strncmp(q, "grad_output", 11)) || (k == 12 && !strncmp(q, "grad_weights", 12))))
                    return bad("--quant: '%.*s' is not weights, output, grad_output or grad_weights", (int)k, q);
                q += k + (q[k] == ',');
            }
            snprintf(o->quant, sizeof o->quant, "%s", v);
        } else if ((!strcmp(a, "--goff-a") || !strcmp(a, "--goff-w")) && sp) {
            if (parse_long(v, -16, 16, &n)) return bad("%s: '%s' is not -16..16", a, v);
            if (a[7] == 'a') o->goff_a = (int)n;
            else o->goff_w = (int)n;
        } else if (!strcmp(a, "--bits") && sp) {
            if (parse_long(v, 2, 32, &n)) return bad("--bits: '%s' is not 2..32", v);
            o->abits = (int)n;
        } else if (!strcmp(a, "--widths") && gr) {
            if (parse_list(v, 2, 32, o->widths, &o->n_widths)) return bad("--widths: '%s' is not a list of 2..32", v);
        } else if (!strcmp(a, "--foffsets") && gr) {
            if (parse_list(v, -16, 16, o->foffs, &o->n_foffs)) return bad("--foffsets: '%s' is not a list of -16..16", v);
        } else if (!strcmp(a, "--cache") || !strcmp(a, "--out")) {
            char *dst = !strcmp(a, "--cache") ? o->cache : o->out;
            if (!*v || strlen(v) >= sizeof o->cache) return bad("%s: bad path", a);
            snprintf(dst, sizeof o->cache, "%s", v);
        } else {
            return bad("unknown option '%s' for study %s", a, o->study);
        }
    }
    if (o->job_train == (size_t)-1) o->job_train = o->train;
    if (o->job_epochs < 0) o->job_epochs = o->epochs;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t fnv64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* write text to path atomically (a temporary file renamed over it) */
static int write_file(const char *path, const char *text)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { fprintf(stderr, "study_train: cannot write %s: %s\n", tmp, strerror(errno)); return 1; }
    int ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        fprintf(stderr, "study_train: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

/* a growing string */
typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->n;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && (size_t)k < room) { b->n += (size_t)k; return; }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) { fprintf(stderr, "study_train: out of memory\n"); exit(1); }
        b->p = q;
        b->cap = cap;
    }
}

static int write_json(const char *path, json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
    if (!s) return 1;
    size_t n = strlen(s);
    char *t = malloc(n + 2);
    if (!t) { free(s); return 1; }
    memcpy(t, s, n);
    t[n] = '\n';
    t[n + 1] = 0;
    int rc = write_file(path, t);
    free(s);
    free(t);
    return rc;
}

/* the Markdown's text with a run-time line after its command block (the
 * title, a blank line, the indented command, a blank line); new string */
static char *with_runtime(const char *md, double secs)
{
    const char *p = strstr(md, "\n\n");
    p = p ? strstr(p + 2, "\n\n") : NULL;
    if (!p) p = md + strlen(md);
    char line[256];
    int k = snprintf(line, sizeof line, "\n\nRun time: %.0f s (%.1f min) of training and set-up on "
                     "this project's 2-core machine while other jobs shared it, summed over the "
                     "runs; a re-run answers them from the cache in seconds.", secs, secs / 60);
    size_t a = (size_t)(p - md), n = strlen(md);
    char *t = malloc(n + (size_t)k + 1);
    if (!t) return NULL;
    memcpy(t, md, a);
    memcpy(t + a, line, (size_t)k);
    memcpy(t + a + (size_t)k, p, n - a + 1);
    return t;
}

/* the study's BASE.md, with its run-time line, and BASE.json, into o->out */
static int write_outputs(const opts *o, const char *base, const char *md, double secs,
                         json_t *out)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.md", o->out, base);
    char *text = with_runtime(md, secs);
    int rc = text ? write_file(path, text) : 1;
    free(text);
    snprintf(path, sizeof path, "%s/%s.json", o->out, base);
    return rc | write_json(path, out);
}

/* ------------------------------------------------------------------------ */
/* The cache of finished runs                                                */
/* ------------------------------------------------------------------------ */

static json_t *g_cache;          /* {key: result} */
static const char *g_cache_path;

static int cache_save(void);

static int cache_open(const char *path)
{
    json_error_t je;
    g_cache_path = path;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno != ENOENT) { fprintf(stderr, "study_train: %s: %s\n", path, strerror(errno)); return 1; }
        g_cache = json_object();
        return cache_save();       /* fail now, not after the first training run */
    }
    g_cache = json_loadf(f, 0, &je);
    fclose(f);
    if (!g_cache || !json_is_object(g_cache)) {
        fprintf(stderr, "study_train: cache %s is not a JSON object (line %d: %s); "
                "move it away or give another --cache\n", path, je.line, je.text);
        return 1;
    }
    fprintf(stderr, "cache %s: %zu finished runs\n", path, json_object_size(g_cache));
    return 0;
}

static int cache_save(void)
{
    char *s = json_dumps(g_cache, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(8));
    if (!s) return 1;
    int rc = write_file(g_cache_path, s);
    free(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */

static qt_dataset *g_train, *g_val, *g_test;

static int load_data(void)
{
    qt_error err;
    if (qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &g_train, &err) ||
        qt_dataset_fashion_mnist(QT_SPLIT_VAL, &g_val, &err) ||
        qt_dataset_fashion_mnist(QT_SPLIT_TEST, &g_test, &err)) {
        fprintf(stderr, "study_train: Fashion-MNIST: %s\n", err.text);
        return 1;
    }
    return 0;
}

static int first_n(const qt_dataset *d, size_t n, qt_dataset **out)
{
    qt_error err;
    size_t c = qt_dataset_count(d);
    if (!n || n > c) n = c;
    if (qt_dataset_subset(d, 0, 0, n, out, &err)) {
        fprintf(stderr, "study_train: subset: %s\n", err.text);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* One training run                                                          */
/* ------------------------------------------------------------------------ */

static const char *const kind_key[QT_ST_KINDS] = { "a", "w", "b", "ga", "gw" };

typedef struct tctx {
    qt_graph         *g;
    const qt_qconfig *cfg;
    const qt_dataset *val;
    json_t           *epochs;     /* array of per-epoch objects */
    int               sparsity;   /* record every node's statistics */
    int               n_epochs;
    const char       *label;
    double            t0;
} tctx;

static void epoch_cb(void *user, int epoch, const qt_stats *st)
{
    tctx *t = user;
    qt_metrics m;
    qt_error err;
    json_t *e = json_object();
    int rc = qt_evaluate(t->g, t->cfg, t->val, NULL, &m, &err);
    json_object_set_new(e, "val_top1", rc ? json_null() : json_real(m.top1));
    json_object_set_new(e, "seconds", json_real(now_s() - t->t0));
    if (t->sparsity) {
        json_t *nodes = json_object();
        for (int i = 0; i < qt_graph_nodes(t->g); i++) {
            json_t *nd = json_object();
            for (int k = 0; k < QT_ST_KINDS; k++) {
                const qt_tstats *s = qt_stats_get(st, i, (qt_stat_kind)k);
                if (!s || !s->count) continue;
                /* [values, zeros, zeros after quantization, absmax] */
                json_object_set_new(nd, kind_key[k],
                                    json_pack("[IIIf]", (json_int_t)(s->count + s->nonfinite),
                                              (json_int_t)s->zeros, (json_int_t)s->zeros_q,
                                              s->absmax));
            }
            json_object_set_new(nodes, qt_graph_node_name(t->g, i), nd);
        }
        json_object_set_new(e, "nodes", nodes);
    }
    json_array_append_new(t->epochs, e);
    fprintf(stderr, "  %s: epoch %d/%d  val %.2f%%  %.0f s\n", t->label, epoch + 1, t->n_epochs,
            rc ? NAN : 100.0 * m.top1, now_s() - t->t0);
}

/* The result of training model under cfg_json (NULL: float) with o's
 * settings; from the cache when it is there. Borrowed from the cache, or
 * NULL on a real error. A run that diverges is a result ("error"). */
static json_t *train_run(const opts *o, const char *label, const char *model,
                         const char *cfg_json, int sparsity)
{
    json_t *set = json_pack("{s:s, s:s?, s:i, s:I, s:I, s:I, s:f, s:I, s:b, s:i, s:s}",
                            "model", model, "config", cfg_json, "epochs", o->epochs,
                            "train", (json_int_t)o->train, "val", (json_int_t)o->val,
                            "test", (json_int_t)o->test, "lr", o->lr,
                            "seed", (json_int_t)o->seed, "sparsity", sparsity,
                            "engine", QT_ENGINE_VERSION, "optim", "sgd m0.9 b64");
    char *sj = json_dumps(set, JSON_COMPACT | JSON_SORT_KEYS);
    char key[17];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)fnv64(sj));
    free(sj);
    json_t *have = json_object_get(g_cache, key);
    if (have) {
        json_decref(set);
        fprintf(stderr, "%s: cached (%s)\n", label, key);
        return have;
    }
    fprintf(stderr, "%s: training %s, %d epochs on %zu images%s\n", label, model, o->epochs,
            o->train ? o->train : qt_dataset_count(g_train), cfg_json ? " (quantized)" : "");
    qt_graph *g = NULL;
    qt_qconfig *cfg = NULL;
    qt_stats *st = NULL;
    qt_dataset *tr = NULL, *va = NULL, *te = NULL;
    qt_error err;
    json_t *res = NULL;
    if (qt_model_load(model, &g, &err) ||
        (cfg_json && qt_qconfig_parse(g, cfg_json, &cfg, &err))) {
        fprintf(stderr, "study_train: %s: %s\n", label, err.text);
        goto out;
    }
    if (cfg) qt_qconfig_set_seed(cfg, o->seed);
    if (first_n(g_train, o->train, &tr) || first_n(g_val, o->val, &va) ||
        first_n(g_test, o->test, &te))
        goto out;
    if (!(st = qt_stats_new(g))) { fprintf(stderr, "study_train: out of memory\n"); goto out; }
    tctx t = { g, cfg, va, json_array(), sparsity, o->epochs, label, now_s() };
    qt_train_opts to = qt_train_defaults();
    to.epochs = o->epochs;
    to.lr = o->lr;
    to.seed = o->seed;
    to.stats = st;
    to.epoch_cb = epoch_cb;
    to.user = &t;
    qt_train_stats ts;
    res = json_object();
    json_object_set_new(res, "settings", set);
    set = NULL;
    int rc = qt_train(g, cfg, tr, &to, &ts, &err);
    json_object_set_new(res, "epochs", t.epochs);
    if (rc == QT_ENAN) {
        fprintf(stderr, "  %s: %s\n", label, err.text);
        json_object_set_new(res, "error", json_string(err.text));
    } else if (rc) {
        fprintf(stderr, "study_train: %s: %s\n", label, err.text);
        json_decref(res);
        res = NULL;
        goto out;
    } else {
        qt_metrics m;
        if (qt_evaluate(g, cfg, te, NULL, &m, &err)) {
            fprintf(stderr, "study_train: %s: test: %s\n", label, err.text);
            json_decref(res);
            res = NULL;
            goto out;
        }
        json_object_set_new(res, "test_top1", json_real(m.top1));
        json_object_set_new(res, "train_loss", json_real(ts.loss));
        json_object_set_new(res, "train_top1", json_real(ts.train_top1));
        fprintf(stderr, "  %s: test %.2f%%\n", label, 100.0 * m.top1);
    }
    json_object_set_new(res, "seconds", json_real(now_s() - t.t0));
    json_object_set_new(g_cache, key, res);     /* the cache owns it */
    if (cache_save()) res = NULL;
out:
    json_decref(set);
    qt_stats_free(st);
    qt_dataset_free(tr);
    qt_dataset_free(va);
    qt_dataset_free(te);
    qt_qconfig_free(cfg);
    qt_graph_free(g);
    return res;
}

/* the last epoch's validation top-1 of a run (NAN: none) */
static double last_val(const json_t *r)
{
    json_t *e = json_object_get(r, "epochs");
    size_t n = json_array_size(e);
    if (json_object_get(r, "error") || !n) return NAN;
    json_t *v = json_object_get(json_array_get(e, n - 1), "val_top1");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double run_seconds(const json_t *r)
{
    return json_number_value(json_object_get(r, "seconds"));
}

/* a format text: fixed<w,F> with F fitted to absmax, rounding r */
static void fmt_fit(int w, double absmax, int foff, qt_round r, char *buf, size_t n)
{
    qt_format f;
    char t[32];
    snprintf(t, sizeof t, "fixed<%d,0>", w);
    qt_format_parse(t, &f, NULL);
    if (absmax > 0 && isfinite(absmax)) qt_fit_bias(&f, absmax);
    f.bias = (int16_t)(f.bias + foff);
    f.round = (uint8_t)r;
    qt_format_print(&f, buf, n);
}

/* ------------------------------------------------------------------------ */
/* Study 3: sparsity                                                         */
/* ------------------------------------------------------------------------ */

/* the max over epochs of the absmax of node's kind k in a run */
static double run_absmax(const json_t *r, const char *node, int k)
{
    double mx = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "epochs"), i, e) {
        json_t *v = json_object_get(json_object_get(json_object_get(e, "nodes"), node), kind_key[k]);
        if (v) mx = fmax(mx, json_number_value(json_array_get(v, 3)));
    }
    return mx;
}

/* [values, zeros, zeros_q] of a node's kind k at an epoch */
static int run_counts(const json_t *r, int ep, const char *node, int k, double c[3])
{
    json_t *e = json_array_get(json_object_get(r, "epochs"), (size_t)ep);
    json_t *v = json_object_get(json_object_get(json_object_get(e, "nodes"), node), kind_key[k]);
    if (!v) return 0;
    for (int i = 0; i < 3; i++) c[i] = json_number_value(json_array_get(v, (size_t)i));
    return c[0] > 0;
}

/* the tensor kinds of the study, per weight layer L: its input activation
 * (the output of its input node), its weights, the gradient arriving at its
 * output, its weight gradients */
enum { SK_A = 0, SK_W, SK_GA, SK_GW, SK_N };
static const char *const sk_name[SK_N] = { "activations (layer inputs)", "weights",
                                            "activation gradients", "weight gradients" };
static const char *const sk_short[SK_N] = { "A", "W", "G_A", "G_W" };

typedef struct layer { int node, src; } layer;

static int weight_layers(const qt_graph *g, layer *L, int max)
{
    int n = 0;
    for (int i = 1; i < qt_graph_nodes(g) && n < max; i++) {
        if (!qt_graph_param((qt_graph *)g, i, 0)) continue;
        const int *in;
        L[n].node = i;
        L[n].src = qt_graph_node_inputs(g, i, &in) > 0 ? in[0] : 0;
        n++;
    }
    return n;
}

static int sk_counts(const json_t *r, const qt_graph *g, const layer *l, int ep, int sk, double c[3])
{
    int node = sk == SK_A ? l->src : l->node;
    int k = sk == SK_A ? QT_ST_ACT : sk == SK_W ? QT_ST_WEIGHTS : sk == SK_GA ? QT_ST_GRAD_ACT
                                                                        : QT_ST_GRAD_WEIGHTS;
    return run_counts(r, ep, qt_graph_node_name(g, node), k, c);
}

static int study_sparsity(const opts *o)
{
    json_t *out = json_object(), *jm = json_object();
    sbuf md = { 0 };
    double t0 = now_s(), compute = 0;
    int rc = 0;
    sb_printf(&md, "# Study 3: sparsity over training (TensorQuant, ECML 2018)\n\n");
    sb_printf(&md, "    %s\n\n", o->cmd);
    json_object_set_new(out, "study", json_string("sparsity"));
    json_object_set_new(out, "command", json_string(o->cmd));
    for (const char *p = o->models; *p;) {
        char name[32], label[64];
        opts mo = *o;              /* MODEL:EPOCHS:TRAIN overrides (checked by parse_opts) */
        size_t k = strcspn(p, ",:");
        snprintf(name, sizeof name, "%.*s", (int)(k < 31 ? k : 31), p);
        p += k;
        if (*p == ':') mo.epochs = (int)strtol(p + 1, (char **)&p, 10);
        if (*p == ':') mo.train = (size_t)strtol(p + 1, (char **)&p, 10);
        p += *p == ',';
        qt_graph *g;
        qt_error err;
        if (qt_model_load(name, &g, &err)) { fprintf(stderr, "study_train: %s\n", err.text); rc = 1; break; }
        snprintf(label, sizeof label, "sparsity %s fp32", name);
        json_t *rf = train_run(&mo, label, name, NULL, 1);
        if (!rf) { qt_graph_free(g); rc = 1; break; }
        /* the quantized run: every node's output, weights and gradients in
         * fixed<B,F>, F fitted to the float run's range (max over epochs);
         * weights and outputs nearest, gradients stochastic */
        json_t *cj = json_object();
        for (int i = 1; i < qt_graph_nodes(g); i++) {
            const char *nn = qt_graph_node_name(g, i);
            json_t *nd = json_object();
            char f[QT_TEXT_MAX];
            fmt_fit(o->abits, run_absmax(rf, nn, QT_ST_ACT), 0, QT_RNE, f, sizeof f);
            if (strstr(o->quant, "output") && (strstr(o->quant, "output") == o->quant ||
                                               strstr(o->quant, ",output")))
                json_object_set_new(nd, "output", json_string(f));
            if (strstr(o->quant, "grad_output") && run_absmax(rf, nn, QT_ST_GRAD_ACT) > 0) {
                fmt_fit(o->abits, run_absmax(rf, nn, QT_ST_GRAD_ACT), o->goff_a, QT_SR, f, sizeof f);
                json_object_set_new(nd, "grad_output", json_string(f));
            }
            if (qt_graph_param(g, i, 0)) {
                fmt_fit(o->abits, run_absmax(rf, nn, QT_ST_WEIGHTS), 0, QT_RNE, f, sizeof f);
                if (strstr(o->quant, "weights") && (strstr(o->quant, "weights") == o->quant ||
                                                    strstr(o->quant, ",weights")))
                    json_object_set_new(nd, "weights", json_string(f));
                fmt_fit(o->abits, run_absmax(rf, nn, QT_ST_GRAD_WEIGHTS), o->goff_w, QT_SR, f, sizeof f);
                if (strstr(o->quant, "grad_weights")) json_object_set_new(nd, "grad_weights", json_string(f));
            }
            json_object_set_new(cj, nn, nd);
        }
        char *cfg = json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(label, sizeof label, "sparsity %s %d-bit", name, o->abits);
        json_t *rq = train_run(&mo, label, name, cfg, 1);
        if (!rq) { free(cfg); json_decref(cj); qt_graph_free(g); rc = 1; break; }
        compute += run_seconds(rf) + run_seconds(rq);

        layer L[32];
        int nl = weight_layers(g, L, 32);
        int ne = (int)json_array_size(json_object_get(rq, "epochs"));
        int nef = (int)json_array_size(json_object_get(rf, "epochs"));
        if (nef < ne) ne = nef;
        sb_printf(&md, "## %s\n\n", name);
        sb_printf(&md, "Training: %d epochs, SGD lr %g momentum 0.9 batch 64, first %zu images of "
                  "the training split, from the zoo's seeded initialisation. fp32: validation "
                  "%.2f %%, test %.2f %%. Quantized (`fixed<%d,F>` weights and every node's "
                  "output, nearest-even; `fixed<%d,F,sr>` output and weight gradients; F fitted "
                  "per tensor to the float run's largest |value| over the epochs, plus %d for "
                  "the output gradients and %d for the weight gradients (finer steps; their "
                  "rare largest values saturate); biases and "
                  "the update in float): validation %.2f %%, test %.2f %%%s.\n\n",
                  mo.epochs, o->lr, mo.train ? mo.train : qt_dataset_count(g_train),
                  100 * last_val(rf), 100 * json_number_value(json_object_get(rf, "test_top1")),
                  o->abits, o->abits, o->goff_a, o->goff_w, 100 * last_val(rq),
                  100 * json_number_value(json_object_get(rq, "test_top1")),
                  json_object_get(rq, "error") ? " (diverged)" : "");
        sb_printf(&md, "Sparsity (%% exact zeros) per weight layer, first and last epoch "
                  "(each over all the values the epoch saw). fp32 | quantized run: before "
                  "-> after the point's quantization. A = the layer's input activation, W its "
                  "weights, G_A the gradient at its output, G_W its weight gradients.\n\n");
        sb_printf(&md, "| layer | tensor | fp32 ep 1 | fp32 ep %d | %d-bit ep 1 | %d-bit ep %d |\n",
                  ne, o->abits, o->abits, ne);
        sb_printf(&md, "|---|---|---:|---:|---:|---:|\n");
        json_t *jl = json_array();
        for (int l = 0; l < nl; l++) {
            for (int s = 0; s < SK_N; s++) {
                double c[3];
                char cell[4][48];
                json_t *row = json_pack("{s:s, s:s, s:[], s:[], s:[]}", "layer",
                                        qt_graph_node_name(g, L[l].node), "tensor", sk_short[s],
                                        "fp32", "quant_before", "quant_after");
                for (int ep = 0; ep < ne; ep++) {
                    double f = sk_counts(rf, g, &L[l], ep, s, c) ? c[1] / c[0] : NAN;
                    json_array_append_new(json_object_get(row, "fp32"), json_real(f));
                    int hq = sk_counts(rq, g, &L[l], ep, s, c);
                    json_array_append_new(json_object_get(row, "quant_before"), json_real(hq ? c[1] / c[0] : NAN));
                    json_array_append_new(json_object_get(row, "quant_after"), json_real(hq ? c[2] / c[0] : NAN));
                }
                int eps[2] = { 0, ne - 1 };
                for (int j = 0; j < 2; j++) {
                    if (sk_counts(rf, g, &L[l], eps[j], s, c)) snprintf(cell[j], sizeof cell[j], "%.1f", 100 * c[1] / c[0]);
                    else snprintf(cell[j], sizeof cell[j], "-");
                    if (sk_counts(rq, g, &L[l], eps[j], s, c))
                        snprintf(cell[2 + j], sizeof cell[2 + j], "%.1f -> %.1f", 100 * c[1] / c[0], 100 * c[2] / c[0]);
                    else snprintf(cell[2 + j], sizeof cell[2 + j], "-");
                }
                sb_printf(&md, "| %s | %s%s%s | %s | %s | %s | %s |\n",
                          qt_graph_node_name(g, L[l].node), sk_short[s],
                          s == SK_A ? " = " : "", s == SK_A ? qt_graph_node_name(g, L[l].src) : "",
                          cell[0], cell[1], cell[2], cell[3]);
                json_array_append_new(jl, row);
            }
        }
        /* the whole model per kind (zeros over values summed over layers),
         * per epoch: the plot's lines */
        qt_plot_pt *pts = calloc((size_t)(3 * SK_N * ne), sizeof *pts);
        qt_plot_series ser[3 * SK_N];
        char sname[3 * SK_N][64];
        json_t *jt = json_object();
        sb_printf(&md, "\nWhole model, per epoch (%% zeros over the values of every weight "
                  "layer's tensor of that kind):\n\n| tensor | run |");
        for (int ep = 0; ep < ne; ep++) sb_printf(&md, " ep %d |", ep + 1);
        sb_printf(&md, "\n|---|---|");
        for (int ep = 0; ep < ne; ep++) sb_printf(&md, "---:|");
        sb_printf(&md, "\n");
        int ns = 0, np = 0;
        for (int s = 0; s < SK_N; s++) {
            for (int v = 0; v < 3; v++) {
                const json_t *r = v == 0 ? rf : rq;
                qt_plot_pt *pp = pts + (size_t)ns * (size_t)ne;
                json_t *ja = json_array();
                snprintf(sname[ns], sizeof sname[ns], "%s %s", sk_short[s],
                         v == 0 ? "fp32" : v == 1 ? "quant. run, before Q" : "quant. run, after Q");
                sb_printf(&md, "| %s | %s |", sk_short[s],
                          v == 0 ? "fp32" : v == 1 ? "quantized, before" : "quantized, after");
                for (int ep = 0; ep < ne; ep++) {
                    double tot = 0, z = 0, c[3];
                    for (int l = 0; l < nl; l++)
                        if (sk_counts(r, g, &L[l], ep, s, c)) { tot += c[0]; z += c[v == 2 ? 2 : 1]; }
                    double f = tot > 0 ? z / tot : NAN;
                    pp[ep] = (qt_plot_pt){ ep + 1, f, 0, 1 };
                    json_array_append_new(ja, json_real(f));
                    sb_printf(&md, " %.1f |", 100 * f);
                }
                sb_printf(&md, "\n");
                /* plotted: fp32 and after Q for every kind, before Q for the
                 * gradients only (A and W before Q are in the table): 10 lines,
                 * one colour each */
                if (v != 1 || s >= SK_GA) ser[np++] = (qt_plot_series){ sname[ns], pp, ne, 1 };
                json_object_set_new(jt, sname[ns], ja);
                ns++;
            }
        }
        sb_printf(&md, "\n![sparsity](study_sparsity_%s.svg)\n\n", name);
        qt_plot pl;
        char title[96], path[1200];
        qt_plot_init(&pl);
        snprintf(title, sizeof title, "%s: sparsity over training (fp32 and %d-bit)", name, o->abits);
        pl.title = title;
        pl.xlabel = "epoch";
        pl.ylabel = "exact zeros";
        pl.y_percent = 1;
        pl.series = ser;
        pl.n_series = np;
        pl.width = 900;
        pl.height = 480;
        snprintf(path, sizeof path, "%s/study_sparsity_%s.svg", o->out, name);
        if (ne > 0 && qt_plot_svg_file(&pl, path, &err)) {
            fprintf(stderr, "study_train: %s\n", err.text);
            rc = 1;
        }
        free(pts);
        json_object_set_new(jm, name, json_pack("{s:s, s:o, s:o, s:o, s:O, s:O}",
                                                "config_quantized", cfg, "layers", jl,
                                                "model_per_kind", jt,
                                                "fp32_val_test", json_pack("[ff]", last_val(rf), json_number_value(json_object_get(rf, "test_top1"))),
                                                "fp32_run", rf, "quant_run", rq));
        free(cfg);
        json_decref(cj);
        qt_graph_free(g);
        if (rc) break;
    }
    if (!rc) {
        sb_printf(&md, "Compute time of the runs: %.0f s (this invocation %.0f s, the rest "
                  "from the cache). Tensor kinds: %s, %s, %s, %s.\n",
                  compute, now_s() - t0, sk_name[0], sk_name[1], sk_name[2], sk_name[3]);
        json_object_set_new(out, "models", jm);
        jm = NULL;
        json_object_set_new(out, "compute_seconds", json_real(compute));
        rc = write_outputs(o, "study_sparsity", md.p, compute, out);
    }
    json_decref(jm);
    json_decref(out);
    free(md.p);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Study 5: Sakr & Shanbhag's per-tensor fixed point training                */
/* ------------------------------------------------------------------------ */

static const qt_qpoint sakr_pts[5] = { QT_QP_WEIGHTS, QT_QP_OUTPUT, QT_QP_GRAD_OUTPUT,
                                       QT_QP_GRAD_WEIGHTS, QT_QP_ACCUMULATOR };
static const char *const sakr_col[5] = { "W (weights)", "A (output)", "G_A (grad_output)",
                                         "G_W (grad_weights)", "W_acc (accumulator)" };

static int pt_index(qt_qpoint p)
{
    for (int i = 0; i < 5; i++) if (sakr_pts[i] == p) return i;
    return -1;
}

/* the curve of a run: validation top-1 per epoch, epoch 0 = NaN (untrained) */
static int curve(const json_t *r, qt_plot_pt *pts, int max)
{
    size_t i;
    json_t *e;
    int n = 0;
    json_array_foreach(json_object_get(r, "epochs"), i, e) {
        if (n >= max) break;
        json_t *v = json_object_get(e, "val_top1");
        pts[n++] = (qt_plot_pt){ (double)i + 1, json_is_number(v) ? json_number_value(v) : NAN, 0, 1 };
    }
    return n;
}

static int study_sakr(const opts *o)
{
    double t0 = now_s();
    char job[2048];
    qt_job_spec sp;
    qt_search *s = NULL;
    qt_error err;
    int rc = 1;
    qt_cand *ca = NULL, *cu = NULL;
    char *ja = NULL, *ju = NULL;
    json_t *out = NULL;
    sbuf md = { 0 };
    /* the model: lenet5 keeps its original outputs (study_sakr.*), another
     * writes study_sakr_<model>.*; the training runs' cache keys hold the
     * model (train_run) */
    int lenet = !strcmp(o->model, "lenet5");
    const char *mname = lenet ? "LeNet-5" : "ResNet";
    char base_name[64];
    snprintf(base_name, sizeof base_name, lenet ? "study_sakr" : "study_sakr_%s", o->model);
    /* the job: every tensor's five points (those that apply), fixed or
     * ufixed, 2..32 bits; one float training of job_epochs on job_train
     * images gives the gradient statistics. Nodes: lenet5's conv*, fc*,
     * pool*, relu* and flatten; for the ResNet every node but the input
     * (convs, batchnorms (weights = gamma), relus, residual adds, gap, fc) */
    snprintf(job, sizeof job,
             "{\"model\":\"%s\",\"kind\":\"training\",\"epochs\":%d,\"lr\":%.17g,"
             "\"train_limit\":%zu,\"val_limit\":%zu,\"seed\":%llu,"
             "\"constraint\":{\"metric\":\"top1\",\"relative\":0.99},"
             "\"strategy\":{\"name\":\"analytical\",\"plan\":\"%s\"},\"cost\":%s,"
             "\"space\":[{\"nodes\":\"input\",\"points\":[\"output\"],\"types\":[\"fixed\",\"ufixed\"],"
             "\"widths\":[2,32]},{\"nodes\":\"%s\",\"points\":[\"weights\",\"output\",\"grad_output\","
             "\"grad_weights\",\"accumulator\"],\"types\":[\"fixed\",\"ufixed\"],\"widths\":[2,32]}]}",
             o->model, o->job_epochs, o->lr, o->job_train, o->val, (unsigned long long)o->seed, o->plan,
             strcmp(o->plan, "offsets") ? "{\"weight_bits\":1,\"act_bits\":1}" : "\"weight_bits\"",
             lenet ? "[cfpr]*" : "[!i]*");
    fprintf(stderr, "sakr: the analytical job (a float training of %d epochs on %zu images, "
            "then the noise gains)\n", o->job_epochs, o->job_train ? o->job_train : qt_dataset_count(g_train));
    double tj = now_s();
    if (qt_job_parse(job, &sp, &err) || qt_search_new(&sp, NULL, &s, &err)) {
        fprintf(stderr, "study_train: sakr job: %s\n", err.text);
        return 1;
    }
    /* the strategy's proposal, without its verifying training run */
    double *cnt = NULL;
    const qt_strategy *st = qt_strategy_find("analytical");
    void *state = NULL;
    ca = qt_cand_new(s);
    cu = qt_cand_new(s);
    if (!st || !ca || !cu || st->init(s, qt_search_spec(s)->strategy_opts, &state, &err)) {
        fprintf(stderr, "study_train: sakr: %s\n", st ? err.text : "no analytical strategy");
        goto out;
    }
    int prc = st->propose(state, s, ca);
    st->free(state);
    if (prc != QT_PROPOSE) { fprintf(stderr, "study_train: sakr: the strategy proposed nothing\n"); goto out; }
    double job_secs = now_s() - tj;
    fprintf(stderr, "sakr: %s (%.0f s)\n", ca->reason, job_secs);
    const qt_coord *co;
    int nc = qt_search_coords(s, &co);
    const qt_graph *g = qt_search_graph(s);
    /* uniform of the same cost: per kind (point), one width U for every
     * tensor, U = round(sum n_i B_i / sum n_i), n_i the tensor's values
     * (per inference for outputs and output gradients, stored for the
     * others): the element-weighted mean of the analytical widths; each
     * tensor keeps its type and its F is fitted to its measured range */
    double nb[5] = { 0 }, nn[5] = { 0 };
    cnt = calloc((size_t)nc + 1, sizeof *cnt);
    int U[5];
    if (!cnt) goto out;
    for (int i = 0; i < nc; i++) {
        int k = pt_index(co[i].point);
        if (k < 0) continue;
        const qt_tensor *w = qt_graph_param((qt_graph *)g, co[i].node, 0);
        cnt[i] = k == 1 || k == 2 ? (double)qt_graph_node_size(g, co[i].node) : w ? (double)w->size : 0;
        nb[k] += cnt[i] * ca->fmt[i].width;
        nn[k] += cnt[i];
    }
    for (int k = 0; k < 5; k++) U[k] = nn[k] > 0 ? (int)lround(nb[k] / nn[k]) : 0;
    double ub[5] = { 0 };
    for (int i = 0; i < nc; i++) {
        int k = pt_index(co[i].point);
        if (k < 0) continue;
        int w = U[k] < co[i].wmin ? co[i].wmin : U[k] > co[i].wmax ? co[i].wmax : U[k];
        if (qt_search_format(s, i, (qt_type)ca->fmt[i].type, w, 0, &cu->fmt[i])) {
            fprintf(stderr, "study_train: sakr: no %s<%d> for coordinate %d\n",
                    qt_type_name((qt_type)ca->fmt[i].type), w, i);
            goto out;
        }
        ub[k] += cnt[i] * w;
    }
    snprintf(cu->reason, sizeof cu->reason, "uniform per kind");
    ja = qt_search_config_json(s, ca);
    ju = qt_search_config_json(s, cu);
    if (!ja || !ju) { fprintf(stderr, "study_train: out of memory\n"); goto out; }
    const qt_result *base = qt_search_baseline(s);

    char lab[3][64];
    snprintf(lab[0], sizeof lab[0], "sakr%s%s fp32", lenet ? "" : " ", lenet ? "" : o->model);
    snprintf(lab[1], sizeof lab[1], "sakr%s%s analytical", lenet ? "" : " ", lenet ? "" : o->model);
    snprintf(lab[2], sizeof lab[2], "sakr%s%s uniform", lenet ? "" : " ", lenet ? "" : o->model);
    json_t *rf = train_run(o, lab[0], o->model, NULL, 0);
    json_t *ra = rf ? train_run(o, lab[1], o->model, ja, 0) : NULL;
    json_t *ru = ra ? train_run(o, lab[2], o->model, ju, 0) : NULL;
    if (!ru) goto out;
    /* ablations: uniform, but one kind's formats from the analytical plan */
    json_t *rx[5] = { 0 };
    char xname[5][64];
    for (int a = 0; a < o->n_ablate; a++) {
        int k = o->ablate[a];
        qt_cand *cx = qt_cand_new(s);
        if (!cx) goto out;
        qt_cand_copy(s, cx, cu);
        for (int i = 0; i < nc; i++)
            if (co[i].point == sakr_pts[k]) cx->fmt[i] = ca->fmt[i];
        char *jx = qt_search_config_json(s, cx);
        qt_cand_free(cx);
        snprintf(xname[a], sizeof xname[a], "uniform, %s analytical", qt_qpoint_name(sakr_pts[k]));
        char label[96];
        snprintf(label, sizeof label, "sakr%s%s %s", lenet ? "" : " ", lenet ? "" : o->model, xname[a]);
        rx[a] = jx ? train_run(o, label, o->model, jx, 0) : NULL;
        free(jx);
        if (!rx[a]) goto out;
    }

    /* Markdown */
    size_t ntr = o->train ? o->train : qt_dataset_count(g_train);
    sb_printf(&md, "# Study 5: per-tensor fixed-point training (Sakr & Shanbhag, ICLR'19)\n\n");
    sb_printf(&md, "    %s\n\n", o->cmd);
    sb_printf(&md, "%s on Fashion-MNIST. The precisions come from a training job with "
              "strategy `analytical` (every node's weights, output, grad_output, grad_weights "
              "and accumulator that apply; types fixed/ufixed, 2..32 bits; constraint top-1 "
              ">= 0.99 x float on the first %zu validation images): its float training of %d "
              "epochs (SGD lr %g, momentum 0.9, batch 64) on the first %zu training images "
              "gives the gradient statistics and the float reference (validation %.2f %%); the "
              "forward widths come from the noise gains (plan `%s`%s), the backward ones from "
              "Sakr's closed forms (sakr_format in tuner/strat_analytical.c). The strategy's "
              "proposal is used as is (its verifying training run is skipped). Set-up: %.0f s.\n\n",
              mname, o->val, o->job_epochs, o->lr, o->job_train ? o->job_train : qt_dataset_count(g_train),
              100 * base->top1, o->plan,
              strcmp(o->plan, "offsets") ? ": per-tensor allocation under cost weight_bits + act_bits"
                                         : ": Sakr's EFQN, B_X = B_min + round(log2 sqrt(E'_X / E'_min)), "
                                           "B_min the smallest whose bound fits the budget",
              job_secs);
    if (!lenet) {
        /* what the ResNet's job tunes, and what stays float */
        int nconv = 0, nbn = 0, nfc = 0;
        for (int n = 0; n < qt_graph_nodes(g); n++) {
            qt_op op = qt_graph_node_op(g, n);
            nconv += op == QT_OP_CONV;
            nbn += op == QT_OP_BATCHNORM;
            nfc += op == QT_OP_DENSE;
        }
        sb_printf(&md, "The model is the zoo's small ResNet for 28x28 images: a 3x3 conv stem (16 "
                  "channels) with batchnorm and ReLU, three basic residual blocks of 16, 32 and 64 "
                  "channels (conv-bn-relu-conv-bn, a 1x1 conv + batchnorm projection on the "
                  "shortcut of the two downsampling blocks, the residual add, ReLU), global "
                  "average pooling and one fc layer: %d convs, %d batchnorms, %d fc, %.0f "
                  "weights (batchnorm gammas included). The job's space is every node but the "
                  "input (whose output is tuned too): every node's output and output gradient "
                  "(convs, batchnorms, ReLUs, residual adds, gap, fc), and for the convs, the fc "
                  "and the batchnorms (their `weights` point is gamma) the weights, weight "
                  "gradients and accumulator. The strategy takes batchnorm nodes as they are: "
                  "gamma gets a noise gain like any weight tensor (forward, EFQN) and the "
                  "gradient and accumulator rules like a conv's; an output gradient's step is "
                  "set by the first weighted node behind it, which for a batchnorm's output, the "
                  "ReLU after it, a residual add (through its first input, the block's bn2) and "
                  "gap is a batchnorm. The engine applies a node's grad_weights and accumulator "
                  "formats to its bias too (the fc's bias, each batchnorm's beta; the convs have "
                  "no bias). Float: the biases and betas as the forward pass reads them (no bias "
                  "point is tuned; after each update they lie on the accumulator's grid), the "
                  "batchnorms' batch statistics, running mean and variance and their "
                  "normalisation arithmetic, the arithmetic inside every op (no intrinsic "
                  "point), SGD's momentum buffer, the loss. Sakr & Shanbhag keep batchnorm's "
                  "gamma and beta in float (updated in float, clipped to [-1, 1]); here gamma "
                  "is quantized like a weight tensor.\n\n", nconv, nbn, nfc, nn[0]);
    }
    sb_printf(&md, "Proposal: %s\n\n", ca->reason);
    sb_printf(&md, "## Analytical precisions (W/F: width/fractional bits; u = ufixed)\n\n| node |");
    for (int k = 0; k < 5; k++) sb_printf(&md, " %s |", sakr_col[k]);
    sb_printf(&md, "\n|---|---:|---:|---:|---:|---:|\n");
    json_t *jp = json_array();
    for (int n = 0; n < qt_graph_nodes(g); n++) {
        char cell[5][32];
        int any = 0;
        for (int k = 0; k < 5; k++) snprintf(cell[k], sizeof cell[k], "-");
        for (int i = 0; i < nc; i++) {
            int k = pt_index(co[i].point);
            if (co[i].node != n || k < 0) continue;
            const qt_format *f = &ca->fmt[i];
            char ft[QT_TEXT_MAX], fu[QT_TEXT_MAX];
            qt_format_print(f, ft, sizeof ft);
            qt_format_print(&cu->fmt[i], fu, sizeof fu);
            snprintf(cell[k], sizeof cell[k], "%s%d/%d", f->type == QT_UFIXED ? "u" : "",
                     f->width, f->bias);
            any = 1;
            json_array_append_new(jp, json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:I, s:f}",
                                                "node", qt_graph_node_name(g, n),
                                                "point", qt_qpoint_name(co[i].point),
                                                "analytical", ft, "width", f->width,
                                                "frac_bits", f->bias, "uniform", fu,
                                                "values", (json_int_t)cnt[i],
                                                "absmax", co[i].absmax));
        }
        if (!any) continue;
        sb_printf(&md, "| %s |", qt_graph_node_name(g, n));
        for (int k = 0; k < 5; k++) sb_printf(&md, " %s |", cell[k]);
        sb_printf(&md, "\n");
    }
    sb_printf(&md, "\n## Uniform assignment of the same cost\n\nPer kind, one width U for every "
              "tensor of that kind: U = round(sum n_i B_i / sum n_i), the element-weighted mean "
              "of the analytical widths B_i (n_i = the tensor's values: per image for outputs "
              "and output gradients, the weights' count (biases not counted) for weights, weight "
              "gradients and accumulators), so "
              "the kind's summed bits match as closely as one integer width allows. Each tensor "
              "keeps its type (ufixed after ReLU/pool) and its F is fitted to its measured range "
              "(the largest |value| of the float training; gradients included).\n\n"
              "| kind | tensors' values | analytical bits | uniform width | uniform bits | ratio |\n"
              "|---|---:|---:|---:|---:|---:|\n");
    json_t *ju_k = json_array();
    double tot_a = 0, tot_u = 0;
    for (int k = 0; k < 5; k++) {
        if (!(nn[k] > 0)) continue;
        sb_printf(&md, "| %s | %.0f | %.0f (mean %.2f) | %d | %.0f | %.3f |\n", sakr_col[k], nn[k],
                  nb[k], nb[k] / nn[k], U[k], ub[k], ub[k] / nb[k]);
        tot_a += nb[k];
        tot_u += ub[k];
        json_array_append_new(ju_k, json_pack("{s:s, s:f, s:f, s:i, s:f}", "point",
                                              qt_qpoint_name(sakr_pts[k]), "values", nn[k],
                                              "analytical_bits", nb[k], "uniform_width", U[k],
                                              "uniform_bits", ub[k]));
    }
    sb_printf(&md, "| all | | %.0f | | %.0f | %.3f |\n\n", tot_a, tot_u, tot_u / tot_a);

    sb_printf(&md, "## Training: fp32, analytical, uniform\n\n%d epochs of SGD (lr %g, momentum "
              "0.9, batch 64, constant rate) on the first %zu training images from the zoo's "
              "seeded %s; validation top-1 on the first %zu validation images after every "
              "epoch, test top-1 on %zu test images at the end. The quantized runs evaluate "
              "under their forward formats. \"uniform, X analytical\": the uniform assignment "
              "with X's formats (width and F) taken from the analytical plan, to see which kind "
              "makes the difference.\n\n| run | val top-1 per epoch | final test top-1 | "
              "train loss (last epoch) | seconds |\n|---|---|---:|---:|---:|\n",
              o->epochs, o->lr, ntr, mname, o->val, o->test ? o->test : qt_dataset_count(g_test));
    const json_t *runs[8] = { rf, ra, ru };
    const char *rn[8] = { "fp32", "analytical", "uniform (same cost)" };
    int nr = 3;
    for (int a = 0; a < o->n_ablate; a++, nr++) {
        runs[nr] = rx[a];
        rn[nr] = xname[a];
    }
    static qt_plot_pt pts[8][1000];
    qt_plot_series ser[8];
    for (int r = 0; r < nr; r++) {
        int n = curve(runs[r], pts[r], 1000);
        ser[r] = (qt_plot_series){ rn[r], pts[r], n, 1 };
        sb_printf(&md, "| %s |", rn[r]);
        for (int i = 0; i < n; i++) sb_printf(&md, "%s%.2f", i ? ", " : " ", 100 * pts[r][i].y);
        if (json_object_get(runs[r], "error"))
            sb_printf(&md, " (diverged: %s) | - | - |", json_string_value(json_object_get(runs[r], "error")));
        else
            sb_printf(&md, " | %.2f | %.4f |", 100 * json_number_value(json_object_get(runs[r], "test_top1")),
                      json_number_value(json_object_get(runs[r], "train_loss")));
        sb_printf(&md, " %.0f |\n", run_seconds(runs[r]));
    }
    sb_printf(&md, "\n![convergence](%s.svg)\n\nThis invocation: %.0f s (the runs' own "
              "times are in the table; cached runs are not retrained).\n", base_name, now_s() - t0);
    qt_plot pl;
    char path[1200];
    qt_plot_init(&pl);
    char title[96];
    snprintf(title, sizeof title, "%s: fp32 vs analytical vs uniform fixed-point training", mname);
    pl.title = title;
    pl.xlabel = "epoch";
    pl.ylabel = "validation top-1";
    pl.y_percent = 1;
    pl.series = ser;
    pl.n_series = nr;
    snprintf(path, sizeof path, "%s/%s.svg", o->out, base_name);
    if (qt_plot_svg_file(&pl, path, &err)) { fprintf(stderr, "study_train: %s\n", err.text); goto out; }
    out = json_pack("{s:s, s:s, s:s, s:f, s:f, s:s, s:o, s:o, s:o, s:s, s:s, s:O, s:O, s:O}",
                    "study", "sakr", "command", o->cmd, "job", job, "job_seconds", job_secs,
                    "job_float_val_top1", base->top1, "proposal", ca->reason,
                    "precisions", jp, "uniform_per_kind", ju_k,
                    "totals", json_pack("{s:f, s:f}", "analytical_bits", tot_a, "uniform_bits", tot_u),
                    "config_analytical", ja, "config_uniform", ju,
                    "fp32", rf, "analytical", ra, "uniform", ru);
    if (!lenet) json_object_set_new(out, "model", json_string(o->model));
    json_t *jx = json_object();
    for (int a = 0; a < o->n_ablate; a++) json_object_set(jx, xname[a], rx[a]);
    json_object_set_new(out, "ablations", jx);
    double secs = job_secs;
    for (int r = 0; r < nr; r++) secs += run_seconds(runs[r]);
    rc = write_outputs(o, base_name, md.p, secs, out);
out:
    free(cnt);
    json_decref(out);
    free(ja);
    free(ju);
    free(md.p);
    qt_cand_free(ca);
    qt_cand_free(cu);
    qt_search_free(s);
    qt_job_clear(&sp);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Study 6: quantized gradients                                              */
/* ------------------------------------------------------------------------ */

static int study_grads(const opts *o)
{
    double t0 = now_s(), compute = 0;
    qt_graph *g;
    qt_error err;
    int rc = 1;
    sbuf md = { 0 };
    json_t *out = NULL, *rows = json_array();
    if (qt_model_load("lenet5", &g, &err)) { fprintf(stderr, "study_train: %s\n", err.text); json_decref(rows); return 1; }
    json_t *rf = train_run(o, "grads fp32", "lenet5", NULL, 1);
    if (!rf) goto out;
    compute += run_seconds(rf);
    double base = last_val(rf);
    /* the range of every gradient (both kinds, all nodes) in the float run */
    double gmax = 0;
    for (int i = 1; i < qt_graph_nodes(g); i++) {
        gmax = fmax(gmax, run_absmax(rf, qt_graph_node_name(g, i), QT_ST_GRAD_ACT));
        gmax = fmax(gmax, run_absmax(rf, qt_graph_node_name(g, i), QT_ST_GRAD_WEIGHTS));
    }
    const qt_round rounds[2] = { QT_RNE, QT_SR };
    int nw = o->n_widths, nf = o->n_foffs;
    double *rel = calloc((size_t)(2 * nw * nf), sizeof *rel);
    int *fF = calloc((size_t)nw, sizeof *fF);
    qt_plot_pt *pts = calloc((size_t)(2 * nw * nf), sizeof *pts);
    if (!rel || !fF || !pts) { free(rel); free(fF); free(pts); goto out; }
    for (int w = 0; w < nw; w++) {
        char f0[QT_TEXT_MAX];
        qt_format f;
        fmt_fit(o->widths[w], gmax, 0, QT_RNE, f0, sizeof f0);
        qt_format_parse(f0, &f, NULL);
        fF[w] = f.bias;
    }
    for (int r = 0; r < 2; r++)
        for (int w = 0; w < nw; w++)
            for (int k = 0; k < nf; k++) {
                char ft[QT_TEXT_MAX], cfg[512], label[QT_TEXT_MAX + 16];
                fmt_fit(o->widths[w], gmax, o->foffs[k], rounds[r], ft, sizeof ft);
                snprintf(cfg, sizeof cfg, "{\"default\":{\"grad_output\":\"%s\",\"grad_weights\":\"%s\"}}", ft, ft);
                snprintf(label, sizeof label, "grads %s", ft);
                json_t *rq = train_run(o, label, "lenet5", cfg, 0);
                if (!rq) { free(rel); free(fF); free(pts); goto out; }
                compute += run_seconds(rq);
                double v = last_val(rq), q = isnan(v) ? 0.0 : v / base;
                rel[(r * nw + w) * nf + k] = json_object_get(rq, "error") ? NAN : q;
                json_array_append_new(rows, json_pack("{s:s, s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:s?}",
                    "rounding", qt_round_name(rounds[r]), "W", o->widths[w],
                    "F", fF[w] + o->foffs[k], "F_offset", o->foffs[k], "format", ft,
                    "val_top1", isnan(v) ? 0.0 : v, "relative", q,
                    "test_top1", json_number_value(json_object_get(rq, "test_top1")),
                    "error", json_string_value(json_object_get(rq, "error"))));
            }
    sb_printf(&md, "# Study 6: quantized gradients (TensorQuant slides, appendix)\n\n    %s\n\n", o->cmd);
    sb_printf(&md, "LeNet-5 trained from the zoo's seeded initialisation for %d epochs (SGD lr %g, "
              "momentum 0.9, batch 64) on the first %zu training images, with one fixed-point "
              "format `fixed<W,F>` for every gradient: the gradient arriving at every node's "
              "output (grad_output) and every weight and bias gradient (grad_weights); forward "
              "pass, weights and update in float. Relative accuracy = validation top-1 (first "
              "%zu images) after the last epoch / the float run's (%.2f %%). F = F_fit + offset, "
              "F_fit the finest F whose range holds the largest gradient of the float run "
              "(|g| <= %.3g: F_fit = W - 1 - %d). \"div\": training diverged (NaN loss).\n\n",
              o->epochs, o->lr, o->train ? o->train : qt_dataset_count(g_train), o->val, 100 * base,
              gmax, o->widths[0] - 1 - fF[0]);
    for (int r = 0; r < 2; r++) {
        sb_printf(&md, "## %s rounding\n\n| W \\ F |", r ? "stochastic (sr)" : "nearest-even (rne)");
        for (int k = 0; k < nf; k++) sb_printf(&md, " F_fit%+d |", o->foffs[k]);
        sb_printf(&md, "\n|---|");
        for (int k = 0; k < nf; k++) sb_printf(&md, "---:|");
        sb_printf(&md, "\n");
        for (int w = 0; w < nw; w++) {
            sb_printf(&md, "| %d |", o->widths[w]);
            for (int k = 0; k < nf; k++) {
                double q = rel[(r * nw + w) * nf + k];
                if (isnan(q)) sb_printf(&md, " div (%d,%d) |", o->widths[w], fF[w] + o->foffs[k]);
                else sb_printf(&md, " %.3f (%d,%d) |", q, o->widths[w], fF[w] + o->foffs[k]);
            }
            sb_printf(&md, "\n");
        }
        sb_printf(&md, "\n![%s](study_grads_%s.svg)\n\n", qt_round_name(rounds[r]), qt_round_name(rounds[r]));
        /* one line per F offset: relative accuracy over W */
        qt_plot_series ser[MAX_LIST];
        char sname[MAX_LIST][32];
        for (int k = 0; k < nf; k++) {
            qt_plot_pt *pp = pts + (size_t)(r * nf + k) * (size_t)nw;
            for (int w = 0; w < nw; w++) {
                double q = rel[(r * nw + w) * nf + k];
                pp[w] = (qt_plot_pt){ o->widths[w], isnan(q) ? 0.0 : q, 0, !isnan(q) };
            }
            snprintf(sname[k], sizeof sname[k], "F = F_fit%+d", o->foffs[k]);
            ser[k] = (qt_plot_series){ sname[k], pp, nw, 1 };
        }
        qt_plot pl;
        char title[96], path[1200];
        qt_plot_init(&pl);
        snprintf(title, sizeof title, "LeNet-5, quantized gradients, %s rounding",
                 r ? "stochastic" : "nearest");
        pl.title = title;
        pl.xlabel = "gradient width W (bits)";
        pl.ylabel = "relative validation top-1";
        pl.baseline = 1.0;
        pl.baseline_label = "float";
        pl.series = ser;
        pl.n_series = nf;
        snprintf(path, sizeof path, "%s/study_grads_%s.svg", o->out, qt_round_name(rounds[r]));
        if (qt_plot_svg_file(&pl, path, &err)) {
            fprintf(stderr, "study_train: %s\n", err.text);
            free(rel); free(fF); free(pts);
            goto out;
        }
    }
    sb_printf(&md, "Compute time of the runs: %.0f s (this invocation %.0f s, the rest from the cache).\n",
              compute, now_s() - t0);
    free(rel);
    free(fF);
    free(pts);
    out = json_pack("{s:s, s:s, s:f, s:f, s:f, s:O, s:O}", "study", "grads", "command", o->cmd,
                    "float_val_top1", base, "grad_absmax", gmax, "compute_seconds", compute,
                    "runs", rows, "fp32_run", rf);
    rc = write_outputs(o, "study_grads", md.p, compute, out);
out:
    json_decref(out);
    json_decref(rows);
    free(md.p);
    qt_graph_free(g);
    return rc;
}

int main(int argc, char **argv)
{
    qt_runtime_init(argv);
    opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/.study_train_probe", o.out);
    if (write_file(probe, "")) return 1;      /* --out must be writable before any run */
    remove(probe);
    if (cache_open(o.cache) || load_data()) return 1;
    if (!strcmp(o.study, "sparsity")) rc = study_sparsity(&o);
    else if (!strcmp(o.study, "sakr")) rc = study_sakr(&o);
    else rc = study_grads(&o);
    json_decref(g_cache);
    qt_dataset_free(g_train);
    qt_dataset_free(g_val);
    qt_dataset_free(g_test);
    if (!rc) fprintf(stderr, "done: %s\n", o.out);
    return rc == 2 ? 2 : rc ? 1 : 0;
}
