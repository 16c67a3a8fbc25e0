/*
 * bench_engine.c -- throughput of the qtune engine on the zoo models.
 *
 * For each zoo model (mlp, lenet5, vgg, resnet): inference images per second
 * on the Fashion-MNIST test set in fp32, extrinsic fixed 8-bit (weights, bias
 * and every node's output), intrinsic fixed<8,*> and fixed<16,*> in the
 * bit-true EACH mode (and FINAL for lenet5), and training images per second
 * (one SGD epoch on a subset of the training split). The machine's sgemm
 * GFLOP/s is measured in the same run (at the start and at the end), so the
 * rates can be compared across machines. Prints a table and writes JSON
 * (--json). Never fails on timings: a non-zero exit status is a real error.
 *
 * Formats are fitted per tensor from its range as a tuner would: one fp32
 * evaluation over 512 test images with statistics attached gives the absmax
 * of every node's output, weights and bias, and qt_fit_bias picks the
 * fractional bits F. The intrinsic format of a node uses its output's range
 * (refitted for 16 bits).
 *
 * If experiments/models/NAME.qtck exists it is used instead of the untrained
 * zoo model, and top-1 accuracies are reported (a sanity check); for an
 * untrained model they are meaningless and not shown.
 *
 * See experiments/README.md (bench_engine) for the options and the JSON.
 */
#include "engine.h"
#include "bench_util.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef QT_SOURCE_DIR
#define QT_SOURCE_DIR "."
#endif

#define MAX_MODELS   8
#define MAX_CASES    8
#define CALIB_IMAGES 512
#define SGEMM_REPS   5
#define N_ENV        6

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* median and minimum of t[0..n) (sorts t) */
static void summarize(double *t, int n, double *med, double *min)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *min = t[0];
    *med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void die(const char *what, int rc, const qt_error *err)
{
    fprintf(stderr, "bench_engine: %s: %s%s%s\n", what, qt_strerror(rc),
            err && err->text[0] ? ": " : "", err && err->text[0] ? err->text : "");
    exit(1);
}

static void die_oom(const char *what)
{
    fprintf(stderr, "bench_engine: %s: out of memory\n", what);
    exit(1);
}

static json_t *jstr_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static void loadavg(char *buf, size_t size)
{
    FILE *fp = fopen("/proc/loadavg", "r");
    snprintf(buf, size, "unknown");
    if (!fp) return;
    if (fgets(buf, (int)size, fp)) buf[strcspn(buf, "\n")] = 0;
    fclose(fp);
}

/* ------------------------------------------------------------------------ */
/* sgemm                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct sgemm_res {
    const char *name;
    int m, n, k;
    double best, median;       /* seconds */
} sgemm_res;

static float *alloc_floats(size_t n, const char *what)
{
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!p) die_oom(what);
    return p;
}

/* C[m,n] = A[m,k] B[k,n], row-major: one warm-up call, then SGEMM_REPS */
static void bench_sgemm(const char *name, int m, int n, int k, sgemm_res *r)
{
    float *A = alloc_floats((size_t)m * k, "sgemm"), *B = alloc_floats((size_t)k * n, "sgemm");
    float *C = alloc_floats((size_t)m * n, "sgemm");
    uint32_t s = 12345u;
    for (size_t i = 0; i < (size_t)m * k; i++) { s = s * 1664525u + 1013904223u; A[i] = (float)(s >> 8) * 0x1p-24f - 0.5f; }
    for (size_t i = 0; i < (size_t)k * n; i++) { s = s * 1664525u + 1013904223u; B[i] = (float)(s >> 8) * 0x1p-24f - 0.5f; }
    double t[SGEMM_REPS];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n, 0.0f, C, n);
    for (int i = 0; i < SGEMM_REPS; i++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n, 0.0f, C, n);
        t[i] = now_s() - t0;
    }
    r->name = name;
    r->m = m; r->n = n; r->k = k;
    summarize(t, SGEMM_REPS, &r->median, &r->best);
    free(A); free(B); free(C);
}

static double gflops(const sgemm_res *r, double sec)
{
    return 2.0 * r->m * (double)r->n * r->k / sec / 1e9;
}

static json_t *sgemm_json(const sgemm_res *r, int nr)
{
    json_t *a = json_array();
    for (int i = 0; i < nr; i++)
        json_array_append_new(a, json_pack("{s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f}",
            "name", r[i].name, "m", r[i].m, "n", r[i].n, "k", r[i].k, "reps", SGEMM_REPS,
            "seconds_min", r[i].best, "seconds_median", r[i].median,
            "gflops", gflops(&r[i], r[i].best), "gflops_median", gflops(&r[i], r[i].median)));
    return a;
}

static void run_sgemm(sgemm_res r[2], const char *when)
{
    bench_sgemm("square 1024x1024x1024", 1024, 1024, 1024, &r[0]);
    bench_sgemm("conv-shaped 64x12544x288", 64, 12544, 288, &r[1]);
    printf("sgemm (%s, best of %d; M x N x K, GFLOP/s = 2MNK/t):\n", when, SGEMM_REPS);
    for (int i = 0; i < 2; i++)
        printf("  %-26s %8.1f GFLOP/s best  %8.1f median\n", r[i].name,
               gflops(&r[i], r[i].best), gflops(&r[i], r[i].median));
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct opts {
    const char *models[MAX_MODELS];
    int n_models;
    size_t limit;          /* 0: none */
    int reps;
    size_t train_images;   /* 0: no training */
    double intr_macs;      /* MAC budget per intrinsic case */
    const char *json;
    const char *models_dir;
    int untrained;         /* ignore checkpoints */
    int quick;
    unsigned cases;        /* bit i: case_names[i] runs */
} opts;

/* the cases, in the order they run */
static const char *const case_names[] = { "fp32", "extr8", "intr8", "intr16", "intr8-final",
                                          "train", NULL };
enum { C_FP32 = 1u << 0, C_EXTR8 = 1u << 1, C_INTR8 = 1u << 2, C_INTR16 = 1u << 3,
       C_FINAL = 1u << 4, C_TRAIN = 1u << 5, C_ALL = (1u << 6) - 1 };

static void usage(FILE *to)
{
    fprintf(to,
        "usage: bench_engine [--quick] [--models LIST] [--limit N] [--reps R]\n"
        "                    [--train-images N] [--intr-macs M] [--json FILE]\n"
        "                    [--models-dir DIR] [--untrained] [--cases LIST]\n"
        "  --models LIST      comma-separated zoo models (default mlp,lenet5,vgg,resnet)\n"
        "  --cases LIST       comma-separated cases to run (default all: fp32,extr8,intr8,\n"
        "                     intr16,intr8-final,train; intr8-final runs for lenet5 only)\n"
        "  --limit N          cap the images of every inference case (0: none; default 0)\n"
        "  --reps R           timed repetitions per case, median and min reported (default 3)\n"
        "  --train-images N   images of the timed training epoch (default 10000; 0: no training)\n"
        "  --intr-macs M      MAC budget per intrinsic case: images = clamp(M / MACs per image,\n"
        "                     64, 10000) (default 5e8)\n"
        "  --json FILE        write everything as JSON\n"
        "  --models-dir DIR   where NAME.qtck checkpoints are looked for\n"
        "                     (default %s/experiments/models)\n"
        "  --untrained        ignore checkpoints: time the untrained zoo models\n"
        "  --quick            mlp,lenet5, limit 1000, reps 1, train-images 2000 (later options\n"
        "                     override)\n", QT_SOURCE_DIR);
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int known_model(const char *name)
{
    for (const char *const *z = qt_zoo_names(); *z; z++)
        if (!strcmp(*z, name)) return 1;
    return 0;
}

static void bad_opt(const char *msg, const char *arg)
{
    fprintf(stderr, "bench_engine: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    usage(stderr);
    exit(2);
}

static void set_models(opts *o, char *list)
{
    o->n_models = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (!*tok) continue;
        if (!known_model(tok)) bad_opt("unknown model (zoo: mlp, lenet5, vgg, resnet)", tok);
        if (o->n_models == MAX_MODELS) bad_opt("too many models", tok);
        o->models[o->n_models++] = tok;
    }
    if (!o->n_models) bad_opt("--models needs at least one model", NULL);
}

static void set_cases(opts *o, char *list)
{
    o->cases = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (!*tok) continue;
        int i = 0;
        while (case_names[i] && strcmp(case_names[i], tok)) i++;
        if (!case_names[i])
            bad_opt("unknown case (fp32, extr8, intr8, intr16, intr8-final, train)", tok);
        o->cases |= 1u << i;
    }
    if (!o->cases) bad_opt("--cases needs at least one case", NULL);
}

static void parse_opts(int argc, char **argv, opts *o)
{
    static char quick_models[] = "mlp,lenet5";
    memset(o, 0, sizeof *o);
    for (const char *const *z = qt_zoo_names(); *z && o->n_models < MAX_MODELS; z++)
        o->models[o->n_models++] = *z;
    o->reps = 3;
    o->cases = C_ALL;
    o->train_images = 10000;
    o->intr_macs = 5e8;
    o->models_dir = QT_SOURCE_DIR "/experiments/models";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            o->quick = 1;
            set_models(o, quick_models);
            o->limit = 1000;
            o->reps = 1;
            o->train_images = 2000;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (!strcmp(a, "--quick")) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--untrained")) { o->untrained = 1; continue; }
        if (i + 1 >= argc) bad_opt("unknown option or missing value", a);
        char *val = argv[++i];
        if (!strcmp(a, "--models")) set_models(o, val);
        else if (!strcmp(a, "--cases")) set_cases(o, val);
        else if (!strcmp(a, "--limit")) {
            if (parse_ll(val, 0, 1LL << 40, &v)) bad_opt("--limit needs a count >= 0", val);
            o->limit = (size_t)v;
        } else if (!strcmp(a, "--reps")) {
            if (parse_ll(val, 1, 1000, &v)) bad_opt("--reps needs 1..1000", val);
            o->reps = (int)v;
        } else if (!strcmp(a, "--train-images")) {
            if (parse_ll(val, 0, 1LL << 40, &v)) bad_opt("--train-images needs a count >= 0", val);
            o->train_images = (size_t)v;
        } else if (!strcmp(a, "--intr-macs")) {
            char *end;
            errno = 0;
            double d = strtod(val, &end);
            if (errno || end == val || *end || !(d > 0) || !isfinite(d))
                bad_opt("--intr-macs needs a positive number", val);
            o->intr_macs = d;
        } else if (!strcmp(a, "--json")) o->json = val;
        else if (!strcmp(a, "--models-dir")) o->models_dir = val;
        else bad_opt("unknown option", a);
    }
}

/* ------------------------------------------------------------------------ */
/* configurations fitted from statistics                                    */
/* ------------------------------------------------------------------------ */

typedef struct ranges {
    int n;
    double *act, *w, *b;   /* absmax per node (0 when none) */
} ranges;

static void calibrate(qt_graph *g, const qt_dataset *test, size_t images, ranges *r)
{
    qt_error err = { 0 };
    int n = qt_graph_nodes(g), rc;
    qt_stats *s = qt_stats_new(g);
    if (!s) die_oom("statistics");
    qt_graph_attach_stats(g, s);
    qt_eval_opts eo = { .batch = 256, .limit = images };
    qt_metrics m;
    rc = qt_evaluate(g, NULL, test, &eo, &m, &err);
    qt_graph_attach_stats(g, NULL);
    if (rc) die("calibration evaluation", rc, &err);
    r->n = n;
    r->act = calloc((size_t)n, sizeof *r->act);
    r->w = calloc((size_t)n, sizeof *r->w);
    r->b = calloc((size_t)n, sizeof *r->b);
    if (!r->act || !r->w || !r->b) die_oom("ranges");
    for (int i = 0; i < n; i++) {
        r->act[i] = qt_stats_get(s, i, QT_ST_ACT)->absmax;
        r->w[i] = qt_stats_get(s, i, QT_ST_WEIGHTS)->absmax;
        r->b[i] = qt_stats_get(s, i, QT_ST_BIAS)->absmax;
    }
    qt_stats_free(s);
}

static void ranges_free(ranges *r)
{
    free(r->act); free(r->w); free(r->b);
    memset(r, 0, sizeof *r);
}

/* fixed<width,F> with F fitted to absmax (nearest-even rounding, saturate) */
static qt_format fit_fixed(int width, double absmax, int *range_warnings)
{
    char text[32];
    qt_format f;
    qt_error err = { 0 };
    snprintf(text, sizeof text, "fixed<%d,0>", width);
    int rc = qt_format_parse(text, &f, &err);
    if (rc) die("format", rc, &err);
    rc = qt_fit_bias(&f, absmax);
    if (rc == QT_ERANGE) (*range_warnings)++;
    else if (rc) die("qt_fit_bias", rc, NULL);
    return f;
}

typedef enum cfg_kind { CFG_EXTRINSIC, CFG_INTRINSIC } cfg_kind;

/* extrinsic: weights, bias and output of every node (the input too).
 * intrinsic: weights, bias and the intrinsic point of every node but the
 * input, in the given mode; no output point. */
static qt_qconfig *make_cfg(qt_graph *g, const ranges *r, cfg_kind kind, int width,
                            qt_intrinsic mode, int *range_warnings)
{
    qt_qconfig *c = qt_qconfig_new(g);
    if (!c) die_oom("configuration");
    for (int i = 0; i < r->n; i++) {
        qt_format f;
        if (i > 0 && qt_graph_param(g, i, 0)) {
            f = fit_fixed(width, r->w[i], range_warnings);
            if (qt_qconfig_set(c, i, QT_QP_WEIGHTS, &f)) die("qt_qconfig_set", QT_EINVAL, NULL);
        }
        if (i > 0 && qt_graph_param(g, i, 1)) {
            f = fit_fixed(width, r->b[i], range_warnings);
            if (qt_qconfig_set(c, i, QT_QP_BIAS, &f)) die("qt_qconfig_set", QT_EINVAL, NULL);
        }
        f = fit_fixed(width, r->act[i], range_warnings);
        if (kind == CFG_EXTRINSIC) {
            if (qt_qconfig_set(c, i, QT_QP_OUTPUT, &f)) die("qt_qconfig_set", QT_EINVAL, NULL);
        } else if (i > 0) {
            if (qt_qconfig_set(c, i, QT_QP_INTRINSIC, &f)) die("qt_qconfig_set", QT_EINVAL, NULL);
            qt_qconfig_set_intrinsic_mode(c, i, mode);
        }
    }
    return c;
}

/* ------------------------------------------------------------------------ */
/* timed cases                                                              */
/* ------------------------------------------------------------------------ */

typedef struct case_res {
    const char *name;       /* fp32, extr8, intr8, intr16, intr8-final, train */
    const char *what;       /* one-line description */
    size_t images;
    int reps;
    double med, min;        /* seconds */
    double top1;
    int has_top1;
    double train_loss;      /* train only: mean loss of the last timed epoch */
    json_t *config;         /* canonical configuration (NULL for fp32/train) */
} case_res;

static void print_row(const char *model, const case_res *c)
{
    char acc[32] = "-";
    if (c->has_top1) snprintf(acc, sizeof acc, "%.2f %%", 100.0 * c->top1);
    printf("%-7s | %-12s | %6zu | %11.1f | %11.1f | %8.3f | %s\n", model, c->name, c->images,
           (double)c->images / c->med, (double)c->images / c->min, c->med, acc);
    fflush(stdout);
}

static void time_eval(qt_graph *g, const qt_qconfig *cfg, const qt_dataset *test,
                      size_t images, size_t warm, int reps, int trained, case_res *c)
{
    qt_error err = { 0 };
    qt_metrics m;
    qt_eval_opts eo = { .batch = 256, .limit = warm };
    int rc = qt_evaluate(g, cfg, test, &eo, &m, &err);
    if (rc) die(c->name, rc, &err);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) die_oom("times");
    eo.limit = images;
    double top1 = -1.0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        rc = qt_evaluate(g, cfg, test, &eo, &m, &err);
        t[r] = now_s() - t0;
        if (rc) die(c->name, rc, &err);
        if (m.count != images) {
            fprintf(stderr, "bench_engine: %s evaluated %zu images, not %zu\n", c->name,
                    m.count, images);
            exit(1);
        }
        if (r > 0 && m.top1 != top1)
            fprintf(stderr, "bench_engine: warning: %s: top-1 changed between repetitions "
                    "(%.4f, then %.4f)\n", c->name, top1, m.top1);
        top1 = m.top1;
    }
    c->images = images;
    c->reps = reps;
    summarize(t, reps, &c->med, &c->min);
    free(t);
    c->top1 = m.top1;
    c->has_top1 = trained;
}

static void time_train(const qt_graph *g, const qt_dataset *warm, const qt_dataset *sub,
                       int reps, case_res *c)
{
    qt_error err = { 0 };
    qt_train_stats st;
    qt_graph *tg = qt_graph_clone(g);
    if (!tg) die_oom("graph clone");
    qt_train_opts o = qt_train_defaults();
    o.optim = QT_SGD;
    o.epochs = 1;
    o.batch = 64;
    int rc = qt_train(tg, NULL, warm, &o, &st, &err);
    if (rc) die("training warm-up", rc, &err);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) die_oom("times");
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        rc = qt_train(tg, NULL, sub, &o, &st, &err);
        t[r] = now_s() - t0;
        if (rc) die("training", rc, &err);
    }
    c->images = qt_dataset_count(sub);
    c->reps = reps;
    summarize(t, reps, &c->med, &c->min);
    c->train_loss = st.loss;
    free(t);
    qt_graph_free(tg);
}

static json_t *case_json(const case_res *c, uint64_t macs)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:i, s:f, s:f, s:f, s:f}",
        "case", c->name, "description", c->what, "images", (json_int_t)c->images,
        "reps", c->reps, "seconds_median", c->med, "seconds_min", c->min,
        "images_per_s", (double)c->images / c->med,
        "images_per_s_best", (double)c->images / c->min);
    if (strcmp(c->name, "train")) {
        double macs_done = (double)c->images * (double)macs;
        json_object_set_new(j, "gmacs_per_s", json_real(macs_done / c->med / 1e9));
        json_object_set_new(j, "ns_per_mac", json_real(c->med / macs_done * 1e9));
    } else {
        json_object_set_new(j, "batch", json_integer(64));
        json_object_set_new(j, "optimizer", json_string("sgd (qt_train_defaults: lr 0.01, momentum 0.9)"));
        json_object_set_new(j, "train_loss_last", json_real(c->train_loss));
    }
    if (c->has_top1) json_object_set_new(j, "top1", json_real(c->top1));
    if (c->config) json_object_set(j, "config", c->config);
    return j;
}

/* ------------------------------------------------------------------------ */
/* one model                                                                */
/* ------------------------------------------------------------------------ */

typedef struct model_sum {
    const char *name;
    double extr8, intr8;    /* images/s (median) */
    double intr8_ns;        /* wall ns per MAC of intr8 */
    double fp32_top1;
    int trained;
    int has_fp32, has_ratio;   /* the cases behind fp32_top1, extr8/intr8 ran */
} model_sum;

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static json_t *bench_model(const char *name, const opts *o, const qt_dataset *test,
                           const qt_dataset *train_warm, const qt_dataset *train_sub,
                           model_sum *sum)
{
    qt_error err = { 0 };
    qt_graph *g = NULL;
    char path[4096];
    int rc, trained = 0;
    snprintf(path, sizeof path, "%s/%s.qtck", o->models_dir, name);
    if (!o->untrained && file_exists(path)) {
        if ((rc = qt_checkpoint_load(path, &g, &err))) die(path, rc, &err);
        trained = 1;
    } else if ((rc = qt_zoo_build(name, &g, &err))) {
        die(name, rc, &err);
    }
    uint64_t macs = qt_graph_macs(g);
    size_t total = qt_dataset_count(test);
    size_t full = o->limit ? min_sz(o->limit, total) : total;
    double want = o->intr_macs / (double)(macs ? macs : 1);
    size_t n_intr = want < 64 ? 64 : want > 10000 ? 10000 : (size_t)want;
    n_intr = min_sz(n_intr, full);
    size_t calib = min_sz(CALIB_IMAGES, full);

    printf("\n== %s: %s, %.1f k MACs/image, %zu parameters; intrinsic cases on %zu images "
           "(budget %.3g MACs)\n", name,
           trained ? "trained checkpoint" : "untrained zoo model (top-1 not shown)",
           (double)macs / 1e3, qt_graph_param_count(g), n_intr, o->intr_macs);
    if (trained) printf("   checkpoint: %s\n", path);

    ranges r;
    calibrate(g, test, calib, &r);
    int warnings = 0;

    case_res cs[MAX_CASES];
    int nc = 0;
    memset(cs, 0, sizeof cs);

    /* fp32 */
    int i_fp32 = -1, i_extr8 = -1, i_intr8 = -1;
    if (o->cases & C_FP32) {
        cs[nc].name = "fp32";
        cs[nc].what = "float32, no configuration";
        time_eval(g, NULL, test, full, min_sz(256, full), o->reps, trained, &cs[nc]);
        i_fp32 = nc;
        print_row(name, &cs[nc++]);
    }

    /* extrinsic fixed 8 */
    qt_qconfig *c;
    if (o->cases & C_EXTR8) {
        c = make_cfg(g, &r, CFG_EXTRINSIC, 8, QT_INTR_EACH, &warnings);
        cs[nc].name = "extr8";
        cs[nc].what = "extrinsic fixed<8,F>: weights, bias and every node's output, rne";
        cs[nc].config = qt_qconfig_to_json(c, g);
        time_eval(g, c, test, full, min_sz(256, full), o->reps, trained, &cs[nc]);
        i_extr8 = nc;
        print_row(name, &cs[nc++]);
        qt_qconfig_free(c);
    }

    /* intrinsic fixed 8 and 16, EACH; FINAL for lenet5 */
    struct { const char *name, *what; int width; qt_intrinsic mode; unsigned bit; } ic[3] = {
        { "intr8", "intrinsic fixed<8,F> EACH on every node, weights and bias fixed<8,F>", 8, QT_INTR_EACH, C_INTR8 },
        { "intr16", "intrinsic fixed<16,F> EACH on every node, weights and bias fixed<16,F>", 16, QT_INTR_EACH, C_INTR16 },
        { "intr8-final", "intrinsic fixed<8,F> FINAL on every node, weights and bias fixed<8,F>", 8, QT_INTR_FINAL, C_FINAL },
    };
    int nic = strcmp(name, "lenet5") ? 2 : 3;
    for (int k = 0; k < nic; k++) {
        if (!(o->cases & ic[k].bit)) continue;
        if (k == 0) i_intr8 = nc;
        c = make_cfg(g, &r, CFG_INTRINSIC, ic[k].width, ic[k].mode, &warnings);
        cs[nc].name = ic[k].name;
        cs[nc].what = ic[k].what;
        cs[nc].config = qt_qconfig_to_json(c, g);
        time_eval(g, c, test, n_intr, min_sz(8, n_intr), o->reps, trained, &cs[nc]);
        print_row(name, &cs[nc++]);
        qt_qconfig_free(c);
    }

    /* training */
    if (train_sub && (o->cases & C_TRAIN)) {
        cs[nc].name = "train";
        cs[nc].what = "one SGD epoch, batch 64, on a subset of the training split";
        time_train(g, train_warm, train_sub, o->reps, &cs[nc]);
        print_row(name, &cs[nc++]);
    }
    if (warnings)
        fprintf(stderr, "bench_engine: warning: %s: %d tensors out of every fixed-point "
                "range (saturated at the widest)\n", name, warnings);

    /* JSON and summary */
    json_t *jm = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
        "name", name, "weights", trained ? "checkpoint" : "untrained",
        "macs_per_image", (json_int_t)macs, "parameters", (json_int_t)qt_graph_param_count(g),
        "calibration_images", (json_int_t)calib, "intrinsic_images", (json_int_t)n_intr,
        "fit_range_warnings", (json_int_t)warnings);
    json_object_set_new(jm, "checkpoint", trained ? json_string(path) : json_null());
    json_t *ja = json_array();
    for (int i = 0; i < nc; i++) json_array_append_new(ja, case_json(&cs[i], macs));
    json_object_set_new(jm, "cases", ja);

    sum->name = name;
    sum->trained = trained;
    sum->fp32_top1 = i_fp32 >= 0 ? cs[i_fp32].top1 : -1.0;
    sum->has_fp32 = i_fp32 >= 0;
    sum->has_ratio = i_extr8 >= 0 && i_intr8 >= 0;
    if (sum->has_ratio) {
        sum->extr8 = (double)cs[i_extr8].images / cs[i_extr8].med;
        sum->intr8 = (double)cs[i_intr8].images / cs[i_intr8].med;
        sum->intr8_ns = cs[i_intr8].med / ((double)cs[i_intr8].images * (double)macs) * 1e9;
        json_object_set_new(jm, "intr8_over_extr8", json_real(sum->intr8 / sum->extr8));
        json_object_set_new(jm, "intr8_cost_x", json_real(sum->extr8 / sum->intr8));
    }

    for (int i = 0; i < nc; i++) json_decref(cs[i].config);
    ranges_free(&r);
    qt_graph_free(g);
    return jm;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    qt_runtime_init(argv);   /* OMP_WAIT_POLICY=passive unless the user set one */
    opts o;
    qt_error err = { 0 };
    int rc;
    parse_opts(argc, argv, &o);
    double t_start = now_s();
    if (o.json) {   /* fail now rather than after the whole run */
        FILE *fp = fopen(o.json, "a");
        if (!fp) {
            fprintf(stderr, "bench_engine: cannot write %s: %s\n", o.json, strerror(errno));
            return 1;
        }
        fclose(fp);
    }

    char cpu[256], load0[128], load1[128], date[64];
    cpu_model(cpu, sizeof cpu);
    loadavg(load0, sizeof load0);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    /* the OpenMP wait policy matters: libgomp threads spinning after a
     * parallel region compete with OpenBLAS's own (pthread) threads */
    const char *env_names[N_ENV] = { "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE",
                                     "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND" };
    const char *ob_config = openblas_get_config();
    const char *ob_core = openblas_get_corename();

    printf("bench_engine: qtune engine throughput on Fashion-MNIST (images/s)\n");
    printf("machine: %s, %ld CPUs online, OpenMP max threads %d, OpenBLAS threads %d\n",
           cpu, nproc, omp_get_max_threads(), openblas_get_num_threads());
    printf("OpenBLAS: %s (core %s)\n", ob_config ? ob_config : "?", ob_core ? ob_core : "?");
    printf("env:");
    for (int i = 0; i < N_ENV; i++) {
        const char *v = getenv(env_names[i]);
        printf(" %s=%s", env_names[i], v ? v : "(unset)");
    }
    printf("\nload average at start: %s\n", load0);

    sgemm_res sg0[2], sg1[2];
    run_sgemm(sg0, "start");

    qt_dataset *test = NULL, *train = NULL, *sub = NULL, *warm = NULL;
    if ((rc = qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err)))
        die("test set", rc, &err);
    if (o.train_images && (o.cases & C_TRAIN)) {
        if ((rc = qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &train, &err)))
            die("training set", rc, &err);
        size_t n = min_sz(o.train_images, qt_dataset_count(train));
        if ((rc = qt_dataset_subset(train, 1, 0, n, &sub, &err)))
            die("training subset", rc, &err);
        if ((rc = qt_dataset_subset(train, 2, 0, min_sz(128, n), &warm, &err)))
            die("training warm-up subset", rc, &err);
        qt_dataset_free(train);
        train = NULL;
    }

    printf("\ntimes: median and best of %d; img/s = images / seconds; fp32 and extr8 on "
           "%zu test images\n", o.reps,
           o.limit ? min_sz(o.limit, qt_dataset_count(test)) : qt_dataset_count(test));
    printf("%-7s | %-12s | %6s | %11s | %11s | %8s | %s\n", "model", "case", "images",
           "img/s med", "img/s best", "s median", "top-1");
    printf("--------+--------------+--------+-------------+-------------+----------+--------\n");
    fflush(stdout);

    json_t *jmodels = json_array();
    model_sum sums[MAX_MODELS];
    memset(sums, 0, sizeof sums);
    for (int i = 0; i < o.n_models; i++)
        json_array_append_new(jmodels, bench_model(o.models[i], &o, test, warm, sub, &sums[i]));

    printf("\nintrinsic-8 (EACH) vs extrinsic-8 (issue 8 targets a cost <= 3x):\n");
    for (int i = 0; i < o.n_models; i++)
        if (sums[i].has_ratio)
            printf("  %-7s intr8/extr8 img/s = %.4f  (intrinsic costs %.1fx%s; intr8 %.1f ns/MAC "
               "wall)\n", sums[i].name, sums[i].intr8 / sums[i].extr8,
               sums[i].extr8 / sums[i].intr8, sums[i].extr8 / sums[i].intr8 <= 3.0 ? ", met" : "",
               sums[i].intr8_ns);
    int any_trained = 0;
    for (int i = 0; i < o.n_models; i++) any_trained |= sums[i].trained && sums[i].has_fp32;
    if (any_trained) {
        printf("fp32 top-1 of the checkpoints on %zu test images:\n",
               o.limit ? min_sz(o.limit, qt_dataset_count(test)) : qt_dataset_count(test));
        for (int i = 0; i < o.n_models; i++)
            if (sums[i].trained && sums[i].has_fp32) printf("  %-7s %.2f %%\n", sums[i].name, 100.0 * sums[i].fp32_top1);
    }

    printf("\n");
    run_sgemm(sg1, "end");
    loadavg(load1, sizeof load1);
    double elapsed = now_s() - t_start;
    printf("load average at end: %s; total %.1f s\n", load1, elapsed);

    if (o.json) {
        json_t *env = json_object();
        for (int i = 0; i < N_ENV; i++)
            json_object_set_new(env, env_names[i], jstr_or_null(getenv(env_names[i])));
        json_t *mach = json_pack("{s:s, s:I, s:i, s:i, s:o, s:o, s:o, s:s, s:s}",
            "cpu", cpu, "nproc", (json_int_t)nproc, "omp_max_threads", omp_get_max_threads(),
            "openblas_threads", openblas_get_num_threads(),
            "openblas_config", jstr_or_null(ob_config), "openblas_core", jstr_or_null(ob_core),
            "env", env, "loadavg_start", load0, "loadavg_end", load1);
        json_t *jo = json_array();
        for (int i = 0; i < o.n_models; i++) json_array_append_new(jo, json_string(o.models[i]));
        json_t *opt = json_pack("{s:o, s:I, s:i, s:I, s:f, s:b, s:b, s:s, s:i, s:I}",
            "models", jo, "limit", (json_int_t)o.limit, "reps", o.reps,
            "train_images", (json_int_t)o.train_images, "intr_macs", o.intr_macs,
            "quick", o.quick, "untrained", o.untrained, "models_dir", o.models_dir,
            "eval_batch", 256, "calibration_images", (json_int_t)CALIB_IMAGES);
        json_t *jc = json_array();
        for (int i = 0; case_names[i]; i++)
            if (o.cases & (1u << i)) json_array_append_new(jc, json_string(case_names[i]));
        json_object_set_new(opt, "cases", jc);
        json_t *sg = json_pack("{s:o, s:o}", "start", sgemm_json(sg0, 2), "end", sgemm_json(sg1, 2));
        json_t *root = json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:f}",
            "program", "bench_engine", "date", date, "engine_version", QT_ENGINE_VERSION,
            "machine", mach, "options", opt, "sgemm", sg, "models", jmodels,
            "total_seconds", elapsed);
        if (!root) die_oom("JSON");
        if (json_dump_file(root, o.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
            fprintf(stderr, "bench_engine: cannot write %s\n", o.json);
            exit(1);
        }
        printf("JSON written to %s\n", o.json);
        json_decref(root);
    } else {
        json_decref(jmodels);
    }
    qt_dataset_free(test);
    qt_dataset_free(sub);
    qt_dataset_free(warm);
    return 0;
}
