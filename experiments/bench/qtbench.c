/*
 * qtbench.c -- qtune's side of the benchmark suite against PyTorch (issue #8,
 * experiments/bench/). A small command server: suite.py starts it once per
 * environment setting and sends one command per line on stdin; every command
 * answers one JSON line on stdout (diagnostics go to stderr). Keeping the
 * process alive lets the suite alternate qtune and the PyTorch peer
 * (A B A B) with both warm, and keeps data loading out of every timing.
 *
 * Commands (whitespace-separated; paths must not hold spaces):
 *   info                         machine, OpenBLAS, OpenMP, compiler
 *   data DIR LIMIT               load the test split; write its first LIMIT
 *                                images/labels to DIR (float32/uint8) for the
 *                                peer, so both sides read identical inputs
 *   model NAME PATH DIR CALIB    load a checkpoint (qt_model_load), fit the
 *                                fixed-point formats from the first CALIB
 *                                test images (activation, weight and bias
 *                                absmax) and from a 512-image lr=0 training
 *                                pass (gradient absmax), build the cases'
 *                                configurations, and export for the peer:
 *                                DIR/NAME.json (nodes, attributes, parameter
 *                                offsets, fitted F per tensor), DIR/NAME.bin
 *                                (parameters, float32) and DIR/NAME_logits.bin
 *                                (fp32 logits of the exported test images)
 *   eval CASE LIMIT              time one qt_evaluate (batch 256) of the
 *                                current model over the first LIMIT test
 *                                images; CASE: fp32 extr8 extr8sr intr8
 *                                intr16 (a 256-image warm-up on first use)
 *   layer NODE W N DIR           single-layer intrinsic EACH fixed<W,F>:
 *                                the node's fp32 inputs for the first N test
 *                                images, a one-layer graph with its
 *                                parameters; writes the inputs and qtune's
 *                                outputs to DIR for the peer's bit-exact check
 *   layer_run                    time the prepared layer over its N inputs
 *   trainset N DIR               a seeded N-image subset of the training
 *                                split (qt_dataset_subset, seed 1), written
 *                                to DIR for the peer
 *   train CASE                   one SGD epoch (qt_train_defaults: lr 0.01,
 *                                momentum 0.9, batch 64) of a fresh clone of
 *                                the model over the subset; CASE fp32 or
 *                                qgrad (gradients fixed<16,F,sr>)
 *   tune JOB MODEL STRATEGY CACHE_MB EARLY VAL_LIMIT ORDER
 *                                run a tuning job in a child process (this
 *                                program with --tune-child) and report its
 *                                wall time, engine work, answer and the
 *                                child's peak RSS (wait4); ORDER is the
 *                                job's val_order (random, hardest_first)
 *   quit
 *
 * qtbench --tune-child JOB MODEL STRATEGY CACHE_MB EARLY VAL_LIMIT ORDER prints the
 * same job's JSON itself.
 */
#include "tuner.h"
#include "../bench_util.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { C_FP32, C_EXTR8, C_EXTR8SR, C_INTR8, C_INTR16, C_QGRAD, N_CASES };
static const char *case_names[N_CASES] = { "fp32", "extr8", "extr8sr", "intr8", "intr16", "qgrad" };

#define CALIB_TRAIN 512

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void die(const char *what, int rc, const qt_error *err)
{
    fprintf(stderr, "qtbench: %s: %s%s%s\n", what, qt_strerror(rc),
            err && err->text[0] ? ": " : "", err && err->text[0] ? err->text : "");
    exit(1);
}

static void fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "qtbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fail("out of memory%s", "");
    return p;
}

static void reply(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) fail("out of memory%s", "");
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(j);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n || fclose(fp)) fail("cannot write %s", path);
}

static qt_format fixed_fmt(int width, double absmax, int sr, int *warn)
{
    char text[48];
    qt_format f;
    qt_error err = { 0 };
    snprintf(text, sizeof text, "fixed<%d,0%s>", width, sr ? ",sr" : "");
    int rc = qt_format_parse(text, &f, &err);
    if (rc) die("format", rc, &err);
    rc = qt_fit_bias(&f, absmax);
    if (rc == QT_ERANGE) (*warn)++;
    else if (rc) die("qt_fit_bias", rc, NULL);
    return f;
}

static int fit_F(int width, double absmax)
{
    int w = 0;
    return fixed_fmt(width, absmax, 0, &w).bias;
}

/* peak resident set of this process image, from /proc/self/status VmHWM
 * (KiB; -1 if unknown). Unlike getrusage's ru_maxrss it does not carry over
 * the spawning process's peak across execve. */
static long vm_hwm_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (!fp) return -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmHWM:", 6)) { v = atol(line + 6); break; }
    fclose(fp);
    return v;
}

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

/* ------------------------------------------------------------------------ */
/* state                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct state {
    qt_dataset *test;
    size_t test_limit;
    char name[64];
    qt_graph *g;
    int n;
    double *act, *w, *b, *gout, *gw;       /* absmax per node */
    qt_qconfig *cfg[N_CASES];
    int warmed[N_CASES];
    int warnings;
    /* single layer */
    qt_graph *lg;
    qt_qconfig *lcfg;
    float *lx;
    int ln;
    size_t lin_per, lout_per;
    uint64_t lmacs;
    /* training subset */
    qt_dataset *tsub, *twarm;
    int twarmed[N_CASES];
} state;

static void set_point(qt_qconfig *c, int node, qt_qpoint p, const qt_format *f)
{
    if (qt_qconfig_set(c, node, p, f)) die("qt_qconfig_set", QT_EINVAL, NULL);
}

static void build_cfgs(state *S)
{
    qt_graph *g = S->g;
    for (int k = 0; k < N_CASES; k++) {
        qt_qconfig_free(S->cfg[k]);
        S->cfg[k] = NULL;
        S->warmed[k] = S->twarmed[k] = 0;
    }
    /* extrinsic fixed<8,F>: weights, bias and the output of every node */
    for (int sr = 0; sr < 2; sr++) {
        qt_qconfig *c = qt_qconfig_new(g);
        if (!c) fail("out of memory%s", "");
        for (int i = 0; i < S->n; i++) {
            qt_format f;
            if (i > 0 && qt_graph_param(g, i, 0)) {
                f = fixed_fmt(8, S->w[i], sr, &S->warnings);
                set_point(c, i, QT_QP_WEIGHTS, &f);
            }
            if (i > 0 && qt_graph_param(g, i, 1)) {
                f = fixed_fmt(8, S->b[i], sr, &S->warnings);
                set_point(c, i, QT_QP_BIAS, &f);
            }
            f = fixed_fmt(8, S->act[i], sr, &S->warnings);
            set_point(c, i, QT_QP_OUTPUT, &f);
        }
        S->cfg[sr ? C_EXTR8SR : C_EXTR8] = c;
    }
    /* intrinsic EACH fixed<W,F> on every node but the input, weights and bias
     * fixed<W,F> (as bench_engine) */
    for (int k = 0; k < 2; k++) {
        int width = k ? 16 : 8;
        qt_qconfig *c = qt_qconfig_new(g);
        if (!c) fail("out of memory%s", "");
        for (int i = 1; i < S->n; i++) {
            qt_format f;
            if (qt_graph_param(g, i, 0)) {
                f = fixed_fmt(width, S->w[i], 0, &S->warnings);
                set_point(c, i, QT_QP_WEIGHTS, &f);
            }
            if (qt_graph_param(g, i, 1)) {
                f = fixed_fmt(width, S->b[i], 0, &S->warnings);
                set_point(c, i, QT_QP_BIAS, &f);
            }
            f = fixed_fmt(width, S->act[i], 0, &S->warnings);
            set_point(c, i, QT_QP_INTRINSIC, &f);
            qt_qconfig_set_intrinsic_mode(c, i, QT_INTR_EACH);
        }
        S->cfg[k ? C_INTR16 : C_INTR8] = c;
    }
    /* quantized gradients: fixed<16,F,sr> on the gradient arriving at every
     * node's output and on the parameter gradients (weights and bias share
     * the weight gradient's F) */
    qt_qconfig *c = qt_qconfig_new(g);
    if (!c) fail("out of memory%s", "");
    for (int i = 1; i < S->n; i++) {
        qt_format f = fixed_fmt(16, S->gout[i], 1, &S->warnings);
        set_point(c, i, QT_QP_GRAD_OUTPUT, &f);
        if (qt_graph_param(g, i, 0)) {
            f = fixed_fmt(16, S->gw[i], 1, &S->warnings);
            set_point(c, i, QT_QP_GRAD_WEIGHTS, &f);
        }
    }
    S->cfg[C_QGRAD] = c;
}

static int find_case(const char *name)
{
    for (int k = 0; k < N_CASES; k++)
        if (!strcmp(case_names[k], name)) return k;
    fail("unknown case %s", name);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* commands                                                                 */
/* ------------------------------------------------------------------------ */

static void cmd_info(void)
{
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    const char *envs[] = { "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE",
                           "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", NULL };
    json_t *env = json_object();
    for (int i = 0; envs[i]; i++) {
        const char *v = getenv(envs[i]);
        json_object_set_new(env, envs[i], v ? json_string(v) : json_null());
    }
    const char *obc = openblas_get_config(), *obk = openblas_get_corename();
    reply(json_pack("{s:s, s:I, s:i, s:i, s:s, s:s, s:s, s:i, s:s, s:o}",
        "cpu", cpu, "nproc", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN),
        "omp_max_threads", omp_get_max_threads(), "openblas_threads", openblas_get_num_threads(),
        "openblas_config", obc ? obc : "?", "openblas_core", obk ? obk : "?",
        "compiler", "gcc " __VERSION__, "engine_version", QT_ENGINE_VERSION,
        "jansson", JANSSON_VERSION, "env", env));
}

static void cmd_data(state *S, const char *dir, size_t limit)
{
    qt_error err = { 0 };
    int rc;
    if (!S->test && (rc = qt_dataset_fashion_mnist(QT_SPLIT_TEST, &S->test, &err)))
        die("test split", rc, &err);
    size_t total = qt_dataset_count(S->test);
    S->test_limit = limit && limit < total ? limit : total;
    int sh[3];
    qt_dataset_shape(S->test, sh);
    size_t per = (size_t)sh[0] * sh[1] * sh[2];
    char path[4096];
    snprintf(path, sizeof path, "%s/test_images.bin", dir);
    write_file(path, qt_dataset_images(S->test), S->test_limit * per * sizeof(float));
    snprintf(path, sizeof path, "%s/test_labels.bin", dir);
    write_file(path, qt_dataset_labels(S->test), S->test_limit);
    reply(json_pack("{s:I, s:I, s:[iii], s:I}", "images", (json_int_t)S->test_limit,
                    "total", (json_int_t)total, "shape", sh[0], sh[1], sh[2],
                    "hash", (json_int_t)(qt_dataset_hash(S->test) & 0x7fffffffffffffffULL)));
}


static void grad_epoch_cb(void *user, int epoch, const qt_stats *s)
{
    state *S = user;
    for (int i = 0; i < S->n; i++) {
        S->gout[i] = qt_stats_get(s, i, QT_ST_GRAD_ACT)->absmax;
        S->gw[i] = qt_stats_get(s, i, QT_ST_GRAD_WEIGHTS)->absmax;
    }
}

static void free_model(state *S)
{
    for (int k = 0; k < N_CASES; k++) { qt_qconfig_free(S->cfg[k]); S->cfg[k] = NULL; }
    qt_graph_free(S->g);
    S->g = NULL;
    free(S->act); free(S->w); free(S->b); free(S->gout); free(S->gw);
    S->act = S->w = S->b = S->gout = S->gw = NULL;
    qt_qconfig_free(S->lcfg); S->lcfg = NULL;
    qt_graph_free(S->lg); S->lg = NULL;
    free(S->lx); S->lx = NULL;
}

static void cmd_model(state *S, const char *name, const char *path, const char *dir, size_t calib)
{
    qt_error err = { 0 };
    int rc;
    if (!S->test) fail("model before data%s", "");
    free_model(S);
    snprintf(S->name, sizeof S->name, "%s", name);
    if ((rc = qt_model_load(path, &S->g, &err))) die(path, rc, &err);
    qt_graph *g = S->g;
    int n = S->n = qt_graph_nodes(g);
    S->act = calloc((size_t)n, sizeof(double));
    S->w = calloc((size_t)n, sizeof(double));
    S->b = calloc((size_t)n, sizeof(double));
    S->gout = calloc((size_t)n, sizeof(double));
    S->gw = calloc((size_t)n, sizeof(double));
    if (!S->act || !S->w || !S->b || !S->gout || !S->gw) fail("out of memory%s", "");
    S->warnings = 0;

    /* activation/weight/bias ranges from fp32 inference */
    qt_stats *st = qt_stats_new(g);
    if (!st) fail("out of memory%s", "");
    qt_graph_attach_stats(g, st);
    qt_eval_opts eo = { .batch = 256, .limit = calib };
    qt_metrics m;
    if ((rc = qt_evaluate(g, NULL, S->test, &eo, &m, &err))) die("calibration", rc, &err);
    qt_graph_attach_stats(g, NULL);
    for (int i = 0; i < n; i++) {
        S->act[i] = qt_stats_get(st, i, QT_ST_ACT)->absmax;
        S->w[i] = qt_stats_get(st, i, QT_ST_WEIGHTS)->absmax;
        S->b[i] = qt_stats_get(st, i, QT_ST_BIAS)->absmax;
    }
    /* bias ranges are not in the stats when a node has no forward yet; take
     * them from the parameters themselves as well */
    for (int i = 1; i < n; i++)
        for (int k = 0; k < 2; k++) {
            qt_tensor *p = qt_graph_param(g, i, k);
            if (!p) continue;
            double a = 0;
            for (size_t e = 0; e < p->size; e++) a = fmax(a, fabs(p->data[e]));
            if (k == 0) S->w[i] = fmax(S->w[i], a); else S->b[i] = fmax(S->b[i], a);
        }
    qt_stats_reset(st);

    /* gradient ranges: one lr = 0 epoch over 512 training images */
    qt_dataset *tr = NULL, *sub = NULL;
    if ((rc = qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &tr, &err))) die("training split", rc, &err);
    if ((rc = qt_dataset_subset(tr, 7, 0, CALIB_TRAIN, &sub, &err))) die("subset", rc, &err);
    qt_dataset_free(tr);
    qt_graph *cg = qt_graph_clone(g);
    if (!cg) fail("out of memory%s", "");
    qt_train_opts to = qt_train_defaults();
    to.lr = 0.0;
    to.stats = st;
    to.epoch_cb = grad_epoch_cb;
    to.user = S;
    qt_train_stats ts;
    if ((rc = qt_train(cg, NULL, sub, &to, &ts, &err))) die("gradient calibration", rc, &err);
    qt_graph_free(cg);
    qt_dataset_free(sub);
    qt_stats_free(st);

    build_cfgs(S);

    /* export: graph JSON, parameters, fp32 logits */
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.bin", dir, name);
    FILE *pf = fopen(p, "wb");
    if (!pf) fail("cannot write %s", p);
    size_t off = 0;
    json_t *nodes = json_array();
    for (int i = 0; i < n; i++) {
        const qt_attr *a = qt_graph_node_attr(g, i);
        const int *ins;
        int nin = qt_graph_node_inputs(g, i, &ins);
        int dims[QT_MAX_RANK];
        int rank = qt_graph_node_dims(g, i, dims);
        json_t *attr = json_pack("{s:o, s:o, s:o, s:o, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f}",
            "kernel", int_array(a->kernel, 3), "stride", int_array(a->stride, 3),
            "pad", int_array(a->pad, 6), "dilation", int_array(a->dilation, 3),
            "groups", a->groups, "out", a->out, "bias", a->bias, "ceil_mode", a->ceil_mode,
            "count_pad", a->count_pad, "axis", a->axis, "mode", a->mode,
            "alpha", (double)a->alpha, "lo", (double)a->lo, "hi", (double)a->hi,
            "eps", (double)a->eps, "momentum", (double)a->momentum);
        json_t *params = json_array();
        for (int k = 0; k < 4; k++) {
            qt_tensor *t = qt_graph_param(g, i, k);
            if (!t || !t->size) continue;
            if (fwrite(t->data, sizeof(float), t->size, pf) != t->size) fail("cannot write %s", p);
            json_array_append_new(params, json_pack("{s:i, s:o, s:I}", "which", k,
                "shape", int_array(t->shape, t->ndim), "offset", (json_int_t)off));
            off += t->size;
        }
        json_t *jn = json_pack("{s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:I}",
            "id", i, "name", qt_graph_node_name(g, i), "op", qt_op_name(qt_graph_node_op(g, i)),
            "inputs", int_array(ins, nin), "dims", int_array(dims, rank), "attr", attr,
            "params", params, "macs", (json_int_t)qt_graph_node_macs(g, i));
        json_object_set_new(jn, "absmax", json_pack("{s:f, s:f, s:f, s:f, s:f}",
            "act", S->act[i], "w", S->w[i], "b", S->b[i], "gout", S->gout[i], "gw", S->gw[i]));
        json_object_set_new(jn, "F8", json_pack("{s:i, s:i, s:i}", "act", fit_F(8, S->act[i]),
            "w", fit_F(8, S->w[i]), "b", fit_F(8, S->b[i])));
        json_object_set_new(jn, "F16", json_pack("{s:i, s:i, s:i, s:i, s:i}",
            "act", fit_F(16, S->act[i]), "w", fit_F(16, S->w[i]), "b", fit_F(16, S->b[i]),
            "gout", fit_F(16, S->gout[i]), "gw", fit_F(16, S->gw[i])));
        json_array_append_new(nodes, jn);
    }
    if (fclose(pf)) fail("cannot write %s", p);
    json_t *cfgs = json_object();
    for (int k = 0; k < N_CASES; k++)
        if (S->cfg[k]) json_object_set_new(cfgs, case_names[k], qt_qconfig_to_json(S->cfg[k], g));
    json_t *root = json_pack("{s:s, s:s, s:I, s:I, s:i, s:o, s:o, s:I, s:i}", "model", name,
        "path", path, "macs", (json_int_t)qt_graph_macs(g),
        "parameters", (json_int_t)qt_graph_param_count(g), "output", qt_graph_output(g),
        "nodes", nodes, "configs", cfgs, "calibration_images", (json_int_t)calib,
        "fit_range_warnings", S->warnings);
    snprintf(p, sizeof p, "%s/%s.json", dir, name);
    if (json_dump_file(root, p, JSON_INDENT(1) | JSON_PRESERVE_ORDER)) fail("cannot write %s", p);
    json_decref(root);

    /* fp32 logits of the exported test images */
    int sh[3];
    qt_dataset_shape(S->test, sh);
    size_t per = (size_t)sh[0] * sh[1] * sh[2], F = qt_graph_node_size(g, qt_graph_output(g));
    float *logits = xmalloc(S->test_limit * F * sizeof(float));
    const float *X = qt_dataset_images(S->test);
    for (size_t s0 = 0; s0 < S->test_limit; s0 += 256) {
        int nb = (int)(S->test_limit - s0 < 256 ? S->test_limit - s0 : 256);
        const qt_tensor *y;
        if ((rc = qt_forward(g, NULL, X + s0 * per, nb, 0, &y, &err))) die("forward", rc, &err);
        memcpy(logits + s0 * F, y->data, (size_t)nb * F * sizeof(float));
    }
    snprintf(p, sizeof p, "%s/%s_logits.bin", dir, name);
    write_file(p, logits, S->test_limit * F * sizeof(float));
    free(logits);
    reply(json_pack("{s:s, s:I, s:I, s:i, s:I, s:i}", "model", name,
        "macs", (json_int_t)qt_graph_macs(g), "parameters", (json_int_t)qt_graph_param_count(g),
        "nodes", n, "classes", (json_int_t)F, "fit_range_warnings", S->warnings));
}

static void cmd_eval(state *S, const char *cname, size_t limit)
{
    qt_error err = { 0 };
    int k = find_case(cname), rc;
    if (!S->g) fail("eval before model%s", "");
    qt_metrics m;
    qt_eval_opts eo = { .batch = 256, .limit = 256 };
    if (!S->warmed[k]) {
        if ((rc = qt_evaluate(S->g, S->cfg[k], S->test, &eo, &m, &err))) die(cname, rc, &err);
        S->warmed[k] = 1;
    }
    eo.limit = limit;
    double t0 = now_s();
    rc = qt_evaluate(S->g, S->cfg[k], S->test, &eo, &m, &err);
    double t = now_s() - t0;
    if (rc) die(cname, rc, &err);
    reply(json_pack("{s:s, s:f, s:I, s:f, s:f, s:I}", "case", cname, "seconds", t,
        "images", (json_int_t)m.count, "top1", m.top1, "loss", m.loss,
        "nan", (json_int_t)m.nan_count));
}

static void cmd_layer(state *S, const char *node, int width, int N, const char *dir)
{
    qt_error err = { 0 };
    int rc;
    qt_graph *g = S->g;
    if (!g) fail("layer before model%s", "");
    int id = qt_graph_find(g, node);
    if (id < 0) fail("no node %s", node);
    qt_op op = qt_graph_node_op(g, id);
    if (op != QT_OP_CONV && op != QT_OP_DENSE) fail("%s is not a conv or dense node", node);
    const int *ins;
    if (qt_graph_node_inputs(g, id, &ins) != 1) fail("%s: one input expected", node);
    int src = ins[0];
    if ((size_t)N > S->test_limit) N = (int)S->test_limit;
    qt_qconfig_free(S->lcfg); S->lcfg = NULL;
    qt_graph_free(S->lg); S->lg = NULL;
    free(S->lx);
    S->ln = N;
    S->lin_per = qt_graph_node_size(g, src);
    S->lout_per = qt_graph_node_size(g, id);
    S->lmacs = qt_graph_node_macs(g, id);
    S->lx = xmalloc((size_t)N * S->lin_per * sizeof(float));
    /* the layer's fp32 inputs */
    int sh[3];
    qt_dataset_shape(S->test, sh);
    size_t per = (size_t)sh[0] * sh[1] * sh[2];
    const float *X = qt_dataset_images(S->test);
    for (int s0 = 0; s0 < N; s0 += 256) {
        int nb = N - s0 < 256 ? N - s0 : 256;
        const qt_tensor *y;
        if ((rc = qt_forward(g, NULL, X + (size_t)s0 * per, nb, 0, &y, &err))) die("forward", rc, &err);
        memcpy(S->lx + (size_t)s0 * S->lin_per, qt_graph_activation(g, src)->data,
               (size_t)nb * S->lin_per * sizeof(float));
    }
    /* the one-layer graph */
    int dims[QT_MAX_RANK];
    int rank = qt_graph_node_dims(g, src, dims);
    S->lg = qt_graph_new();
    if (!S->lg) fail("out of memory%s", "");
    int in = qt_graph_input_nd(S->lg, "input", rank, dims, &err);
    if (in < 0) die("layer input", in, &err);
    int l = qt_graph_add(S->lg, op, node, &in, 1, qt_graph_node_attr(g, id), &err);
    if (l < 0) die("layer", l, &err);
    for (int k = 0; k < 2; k++) {
        qt_tensor *a = qt_graph_param(g, id, k), *b = qt_graph_param(S->lg, l, k);
        if (!a != !b || (a && a->size != b->size)) fail("%s: parameters differ", node);
        if (a) memcpy(b->data, a->data, a->size * sizeof(float));
    }
    S->lcfg = qt_qconfig_new(S->lg);
    if (!S->lcfg) fail("out of memory%s", "");
    int wdummy = 0;
    qt_format f = fixed_fmt(width, S->act[id], 0, &wdummy);
    set_point(S->lcfg, l, QT_QP_INTRINSIC, &f);
    qt_qconfig_set_intrinsic_mode(S->lcfg, l, QT_INTR_EACH);
    /* the reference outputs (also the warm-up) */
    float *out = xmalloc((size_t)N * S->lout_per * sizeof(float));
    for (int s0 = 0; s0 < N; s0 += 256) {
        int nb = N - s0 < 256 ? N - s0 : 256;
        const qt_tensor *y;
        if ((rc = qt_forward(S->lg, S->lcfg, S->lx + (size_t)s0 * S->lin_per, nb, 0, &y, &err)))
            die("layer forward", rc, &err);
        memcpy(out + (size_t)s0 * S->lout_per, y->data, (size_t)nb * S->lout_per * sizeof(float));
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_%s_in.bin", dir, S->name, node);
    write_file(p, S->lx, (size_t)N * S->lin_per * sizeof(float));
    snprintf(p, sizeof p, "%s/%s_%s_w%d_out.bin", dir, S->name, node, width);
    write_file(p, out, (size_t)N * S->lout_per * sizeof(float));
    free(out);
    int odims[QT_MAX_RANK];
    int orank = qt_graph_node_dims(g, id, odims);
    char ft[QT_TEXT_MAX];
    qt_format_print(&f, ft, sizeof ft);
    reply(json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:I, s:o, s:o}", "node", node,
        "op", qt_op_name(op), "width", width, "F", f.bias, "images", N, "format", ft,
        "macs_per_image", (json_int_t)S->lmacs, "in_dims", int_array(dims, rank),
        "out_dims", int_array(odims, orank)));
}

static void cmd_layer_run(state *S)
{
    qt_error err = { 0 };
    int rc;
    if (!S->lg) fail("layer_run before layer%s", "");
    double t0 = now_s();
    for (int s0 = 0; s0 < S->ln; s0 += 256) {
        int nb = S->ln - s0 < 256 ? S->ln - s0 : 256;
        const qt_tensor *y;
        if ((rc = qt_forward(S->lg, S->lcfg, S->lx + (size_t)s0 * S->lin_per, nb, 0, &y, &err)))
            die("layer forward", rc, &err);
    }
    double t = now_s() - t0;
    reply(json_pack("{s:f, s:i, s:f}", "seconds", t, "images", S->ln,
        "macs", (double)S->ln * (double)S->lmacs));
}

static void cmd_trainset(state *S, size_t N, const char *dir)
{
    qt_error err = { 0 };
    int rc;
    qt_dataset *tr = NULL;
    qt_dataset_free(S->tsub); qt_dataset_free(S->twarm);
    S->tsub = S->twarm = NULL;
    if ((rc = qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &tr, &err))) die("training split", rc, &err);
    if (N > qt_dataset_count(tr)) N = qt_dataset_count(tr);
    if ((rc = qt_dataset_subset(tr, 1, 0, N, &S->tsub, &err))) die("subset", rc, &err);
    if ((rc = qt_dataset_subset(tr, 2, 0, 128, &S->twarm, &err))) die("subset", rc, &err);
    qt_dataset_free(tr);
    int sh[3];
    qt_dataset_shape(S->tsub, sh);
    size_t per = (size_t)sh[0] * sh[1] * sh[2];
    char p[4096];
    snprintf(p, sizeof p, "%s/train_images.bin", dir);
    write_file(p, qt_dataset_images(S->tsub), N * per * sizeof(float));
    snprintf(p, sizeof p, "%s/train_labels.bin", dir);
    write_file(p, qt_dataset_labels(S->tsub), N);
    for (int k = 0; k < N_CASES; k++) S->twarmed[k] = 0;
    reply(json_pack("{s:I}", "images", (json_int_t)N));
}

static void cmd_train(state *S, const char *cname)
{
    qt_error err = { 0 };
    int k = find_case(cname), rc;
    if (k != C_FP32 && k != C_QGRAD) fail("train case %s: fp32 or qgrad", cname);
    if (!S->g || !S->tsub) fail("train before model/trainset%s", "");
    qt_train_opts o = qt_train_defaults();
    qt_train_stats ts;
    if (!S->twarmed[k]) {
        qt_graph *wg = qt_graph_clone(S->g);
        if (!wg) fail("out of memory%s", "");
        if ((rc = qt_train(wg, S->cfg[k == C_QGRAD ? C_QGRAD : C_FP32], S->twarm, &o, &ts, &err)))
            die("training warm-up", rc, &err);
        qt_graph_free(wg);
        S->twarmed[k] = 1;
    }
    qt_graph *tg = qt_graph_clone(S->g);
    if (!tg) fail("out of memory%s", "");
    double t0 = now_s();
    rc = qt_train(tg, k == C_QGRAD ? S->cfg[C_QGRAD] : NULL, S->tsub, &o, &ts, &err);
    double t = now_s() - t0;
    if (rc) die("training", rc, &err);
    qt_graph_free(tg);
    reply(json_pack("{s:s, s:f, s:I, s:f, s:f}", "case", cname, "seconds", t,
        "images", (json_int_t)qt_dataset_count(S->tsub), "loss", ts.loss, "train_top1",
        ts.train_top1));
}

/* ------------------------------------------------------------------------ */
/* tuning jobs                                                              */
/* ------------------------------------------------------------------------ */

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) fail("cannot read %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = xmalloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, fp) != (size_t)n) fail("cannot read %s", path);
    s[n] = 0;
    fclose(fp);
    return s;
}

/* argv: JOB MODEL STRATEGY CACHE_MB EARLY VAL_LIMIT ORDER */
static int tune_child(char **a)
{
    qt_error err = { 0 };
    json_error_t je;
    char *text = read_text(a[0]);
    json_t *j = json_loads(text, 0, &je);
    free(text);
    if (!j) fail("bad job %s", a[0]);
    json_object_set_new(j, "model", json_string(a[1]));
    json_object_set_new(j, "strategy", json_string(a[2]));
    json_object_set_new(j, "cache_mb", json_integer(atoi(a[3])));
    json_object_set_new(j, "early_stop", json_boolean(atoi(a[4])));
    if (atoi(a[5]) > 0) json_object_set_new(j, "val_limit", json_integer(atoi(a[5])));
    json_object_set_new(j, "val_order", json_string(a[6]));
    qt_job_spec sp;
    int rc = qt_job_from_json(j, &sp, &err);
    if (rc) die("job", rc, &err);
    json_t *canon = qt_job_to_json(&sp);
    json_decref(j);
    qt_search *s = NULL;
    double t0 = now_s();
    if ((rc = qt_search_new(&sp, NULL, &s, &err))) die("qt_search_new", rc, &err);
    double t1 = now_s();
    if ((rc = qt_search_run(s, NULL, NULL, &err))) die("qt_search_run", rc, &err);
    double t2 = now_s();
    qt_search_work w;
    qt_search_work_get(s, &w);
    const qt_result *base = qt_search_baseline(s), *r = NULL;
    int feasible = 0;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    json_t *ans = json_null();
    if (best) {
        const qt_coord *co;
        int nc = qt_search_coords(s, &co);
        const qt_graph *g = qt_search_graph(s);
        json_t *fm = json_array();
        for (int i = 0; i < nc; i++) {
            char ft[QT_TEXT_MAX], key[QT_NAME_MAX + 32];
            qt_format_print(&best->fmt[i], ft, sizeof ft);
            snprintf(key, sizeof key, "%s.%s", qt_graph_node_name(g, co[i].node),
                     qt_qpoint_name(co[i].point));
            json_array_append_new(fm, json_pack("[s,s]", key, ft));
        }
        ans = json_pack("{s:b, s:f, s:f, s:f, s:o}", "feasible", feasible, "val_top1", r->top1,
                        "cost", r->cost, "compression", r->compression, "formats", fm);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    json_t *out = json_pack("{s:s, s:i, s:b, s:s, s:f, s:f, s:f, s:i, s:i, s:f, s:o}",
        "strategy", a[2], "cache_mb", atoi(a[3]), "early_stop", atoi(a[4]), "val_order", a[6],
        "setup_seconds", t1 - t0, "search_seconds", t2 - t1, "seconds", t2 - t0,
        "evaluations", qt_search_evals(s), "computed", qt_search_computed(s),
        "float_val_top1", base->top1, "answer", ans);
    json_object_set_new(out, "work", json_pack("{s:i, s:i, s:i, s:f, s:f, s:f, s:I, s:I, s:I}",
        "computed", w.computed, "early_fail", w.early_fail, "early_pass", w.early_pass,
        "images", w.images, "macs", w.macs, "macs_full", w.macs_full,
        "prefix_hits", (json_int_t)w.prefix_hits, "prefix_batches", (json_int_t)w.prefix_batches,
        "prefix_peak_bytes", (json_int_t)w.prefix_peak));
    json_object_set_new(out, "ru_maxrss_kib", json_integer(ru.ru_maxrss));
    json_object_set_new(out, "peak_rss_kib", json_integer(vm_hwm_kib()));
    json_object_set_new(out, "job", canon);
    reply(out);
    qt_search_free(s);
    qt_job_clear(&sp);
    return 0;
}

static void cmd_tune(char **a)
{
    int pfd[2];
    if (pipe(pfd)) fail("pipe%s", "");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    char *argv[10] = { "/proc/self/exe", "--tune-child", a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                       NULL };
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) fail("readlink /proc/self/exe%s", "");
    self[sl] = 0;
    argv[0] = self;
    pid_t pid;
    double t0 = now_s();
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc) fail("posix_spawn: %s", strerror(rc));
    FILE *fp = fdopen(pfd[0], "r");
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    int c;
    while ((c = fgetc(fp)) != EOF) {
        if (len + 1 >= cap) { cap *= 2; buf = realloc(buf, cap); if (!buf) fail("oom%s", ""); }
        buf[len++] = (char)c;
    }
    buf[len] = 0;
    fclose(fp);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) fail("wait4%s", "");
    double wall = now_s() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) fail("tuning child failed (%s)", a[2]);
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    free(buf);
    if (!j) fail("tuning child: bad output%s", "");
    json_object_set_new(j, "process_wall_seconds", json_real(wall));
    /* wait4's ru_maxrss includes this (spawning) process's peak, carried
     * across the child's execve; the child's own VmHWM is the job's peak */
    json_object_set_new(j, "wait4_maxrss_kib", json_integer(ru.ru_maxrss));
    json_object_set_new(j, "user_seconds", json_real(ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec));
    json_object_set_new(j, "sys_seconds", json_real(ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec));
    reply(j);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    qt_runtime_init(argv);   /* OMP_WAIT_POLICY=passive unless set (suite.py sets it) */
    if (argc >= 9 && !strcmp(argv[1], "--tune-child")) return tune_child(argv + 2);
    if (argc != 1) {
        fprintf(stderr, "usage: qtbench   (commands on stdin; see the top of qtbench.c)\n"
                        "       qtbench --tune-child JOB MODEL STRATEGY CACHE_MB EARLY VAL_LIMIT ORDER\n");
        return 2;
    }
    state S;
    memset(&S, 0, sizeof S);
    char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        char *t[12];
        int nt = 0;
        for (char *tok = strtok(line, " \t\r\n"); tok && nt < 12; tok = strtok(NULL, " \t\r\n"))
            t[nt++] = tok;
        if (!nt) continue;
        if (!strcmp(t[0], "quit")) break;
        else if (!strcmp(t[0], "info")) cmd_info();
        else if (!strcmp(t[0], "data") && nt == 3) cmd_data(&S, t[1], (size_t)atol(t[2]));
        else if (!strcmp(t[0], "model") && nt == 5) cmd_model(&S, t[1], t[2], t[3], (size_t)atol(t[4]));
        else if (!strcmp(t[0], "eval") && nt == 3) cmd_eval(&S, t[1], (size_t)atol(t[2]));
        else if (!strcmp(t[0], "layer") && nt == 5) cmd_layer(&S, t[1], atoi(t[2]), atoi(t[3]), t[4]);
        else if (!strcmp(t[0], "layer_run")) cmd_layer_run(&S);
        else if (!strcmp(t[0], "trainset") && nt == 3) cmd_trainset(&S, (size_t)atol(t[1]), t[2]);
        else if (!strcmp(t[0], "train") && nt == 2) cmd_train(&S, t[1]);
        else if (!strcmp(t[0], "tune") && nt == 8) cmd_tune(t + 1);
        else fail("bad command: %s", t[0]);
    }
    free_model(&S);
    qt_dataset_free(S.test);
    qt_dataset_free(S.tsub);
    qt_dataset_free(S.twarm);
    return 0;
}
