/*
 * qtune.c -- the qtune command line.
 *
 *   qtune format TEXT...                 describe number formats
 *   qtune train MODEL [options]          train a zoo model, save a checkpoint
 *   qtune eval MODEL|CKPT [options]      evaluate under a configuration
 *
 * Exit codes: 0 success, 1 a failure while running, 2 bad usage or input.
 * (The daemon's subcommands join this table as api/ grows.)
 */
#include "engine.h"
#include "tuner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- option parsing: --name value pairs after the positional argument ---- */

typedef struct opt { const char *name; const char *val; } opt;

static const char *getopt_v(opt *o, int n, const char *name, const char *def)
{
    for (int i = 0; i < n; i++) if (!strcmp(o[i].name, name)) return o[i].val;
    return def;
}

static int parse_opts(int argc, char **argv, int start, const char *const *known,
                      opt *o, int *n)
{
    *n = 0;
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        int ok = 0;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "qtune: unexpected argument '%s'\n", a);
            return -1;
        }
        for (int k = 0; known[k]; k++) if (!strcmp(a + 2, known[k])) ok = 1;
        if (!ok) {
            fprintf(stderr, "qtune: unknown option '%s'\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "qtune: option '%s' needs a value\n", a);
            return -1;
        }
        o[*n].name = a + 2;
        o[*n].val = argv[++i];
        (*n)++;
    }
    return 0;
}

static int num(const char *s, double *v, const char *what)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (!*s || *end || errno) {
        fprintf(stderr, "qtune: %s must be a number, not '%s'\n", what, s);
        return -1;
    }
    return 0;
}

/* a zoo name, a checkpoint or an ONNX file */
static int load_model(const char *m, qt_graph **g, qt_error *err)
{
    return qt_model_load(m, g, err);
}

/* a configuration: inline JSON, or @file */
static int load_config(const qt_graph *g, const char *spec, qt_qconfig **cfg, qt_error *err)
{
    if (!spec) { *cfg = NULL; return QT_OK; }
    if (spec[0] == '@') {
        json_error_t je;
        json_t *j = json_load_file(spec + 1, 0, &je);
        if (!j) return qt_errorf(err, QT_EPARSE, -1, "%s: %s (line %d)", spec + 1, je.text, je.line);
        int rc = qt_qconfig_from_json(g, j, cfg, err);
        json_decref(j);
        return rc;
    }
    return qt_qconfig_parse(g, spec, cfg, err);
}

static int load_split(const char *s, qt_dataset **d, qt_error *err)
{
    qt_split sp;
    if (!strcmp(s, "train")) sp = QT_SPLIT_TRAIN;
    else if (!strcmp(s, "val")) sp = QT_SPLIT_VAL;
    else if (!strcmp(s, "test")) sp = QT_SPLIT_TEST;
    else if (!strcmp(s, "fulltrain")) sp = QT_SPLIT_FULLTRAIN;
    else return qt_errorf(err, QT_EINVAL, -1, "split '%s': use train, val, test or fulltrain", s);
    return qt_dataset_fashion_mnist(sp, d, err);
}

/* ---- qtune format ---- */

static int cmd_format(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: qtune format TEXT...   (e.g. fixed<8,4>, fp16, mxfp4, \"nearest,16,8\")\n");
        return EXIT_USAGE;
    }
    int status = 0;
    for (int i = 2; i < argc; i++) {
        qt_format f;
        qt_error err;
        char buf[QT_TEXT_MAX];
        if (qt_format_parse(argv[i], &f, &err) != QT_OK) {
            fprintf(stderr, "qtune: '%s': %s\n", argv[i], err.text);
            status = EXIT_USAGE;
            continue;
        }
        qt_format_print(&f, buf, sizeof buf);
        json_t *j = qt_format_to_json(&f);
        char *js = json_dumps(j, JSON_COMPACT);
        printf("%s\n  canonical  %s\n  json       %s\n  bits       %g per value\n",
               argv[i], buf, js, qt_bits(&f));
        printf("  range      [%.9g, %.9g], smallest positive %.9g\n", qt_lowest(&f), qt_max(&f), qt_min_pos(&f));
        printf("  step at 1  %.9g, rounding noise at 1: %.3g\n", qt_step(&f, 1.0), qt_noise_var(&f, 1.0));
        free(js);
        json_decref(j);
    }
    return status;
}

/* ---- qtune train ---- */

static int cmd_train(int argc, char **argv)
{
    static const char *const known[] = { "epochs", "lr", "batch", "optim", "seed", "out",
                                         "config", "momentum", "wd", "lr-step", "schedule",
                                         "threads", NULL };
    opt o[16];
    int n, rc;
    qt_error err;
    if (argc < 3 || parse_opts(argc, argv, 3, known, o, &n)) {
        fprintf(stderr, "usage: qtune train MODEL [--epochs N] [--lr X] [--batch B] "
                "[--optim sgd|adam] [--momentum M] [--wd W] [--lr-step K] [--schedule step|cosine] "
                "[--seed S] [--config JSON|@FILE] [--out FILE.qtck]\n  MODEL: mlp, lenet5, vgg, resnet\n");
        return EXIT_USAGE;
    }
    qt_train_opts t = qt_train_defaults();
    double v;
    const char *s;
    if ((s = getopt_v(o, n, "epochs", NULL))) { if (num(s, &v, "--epochs") || v < 0) return EXIT_USAGE; t.epochs = (int)v; }
    if ((s = getopt_v(o, n, "lr", NULL))) { if (num(s, &v, "--lr") || v < 0) return EXIT_USAGE; t.lr = v; }
    if ((s = getopt_v(o, n, "batch", NULL))) { if (num(s, &v, "--batch") || v < 1) return EXIT_USAGE; t.batch = (int)v; }
    if ((s = getopt_v(o, n, "momentum", NULL))) { if (num(s, &v, "--momentum")) return EXIT_USAGE; t.momentum = v; }
    if ((s = getopt_v(o, n, "wd", NULL))) { if (num(s, &v, "--wd")) return EXIT_USAGE; t.weight_decay = v; }
    if ((s = getopt_v(o, n, "lr-step", NULL))) { if (num(s, &v, "--lr-step")) return EXIT_USAGE; t.lr_step = (int)v; }
    if ((s = getopt_v(o, n, "seed", NULL))) { if (num(s, &v, "--seed")) return EXIT_USAGE; t.seed = (uint64_t)v; }
    s = getopt_v(o, n, "optim", "sgd");
    if (!strcmp(s, "adam")) t.optim = QT_ADAM;
    else if (strcmp(s, "sgd")) { fprintf(stderr, "qtune: --optim must be sgd or adam\n"); return EXIT_USAGE; }
    s = getopt_v(o, n, "schedule", "step");
    if (!strcmp(s, "cosine")) t.cosine = 1;
    else if (strcmp(s, "step")) { fprintf(stderr, "qtune: --schedule must be step or cosine\n"); return EXIT_USAGE; }
    t.progress = stderr;

    qt_graph *g = NULL;
    qt_qconfig *cfg = NULL;
    qt_dataset *tr = NULL, *val = NULL, *test = NULL;
    qt_train_stats st;
    qt_metrics m;
    double t0 = now();
    if ((rc = load_model(argv[2], &g, &err)) ||
        (rc = load_config(g, getopt_v(o, n, "config", NULL), &cfg, &err)) ||
        (rc = qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &tr, &err)) ||
        (rc = qt_dataset_fashion_mnist(QT_SPLIT_VAL, &val, &err)) ||
        (rc = qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err)))
        goto fail;
    qt_graph_seed(g, t.seed);
    t.val = val;
    fprintf(stderr, "training %s (%zu parameters, %.2f M MACs/image) on %zu images, %d epochs\n",
            argv[2], qt_graph_param_count(g), qt_graph_macs(g) / 1e6, qt_dataset_count(tr), t.epochs);
    if ((rc = qt_train(g, cfg, tr, &t, &st, &err))) goto fail;
    if ((rc = qt_evaluate(g, cfg, test, NULL, &m, &err))) goto fail;
    printf("model %s: train %.2f%%  val %.2f%%  test %.2f%% (top-5 %.2f%%)  %.0f s\n", argv[2],
           100 * st.train_top1, 100 * st.val_top1, 100 * m.top1, 100 * m.top5, now() - t0);
    if ((s = getopt_v(o, n, "out", NULL))) {
        if ((rc = qt_checkpoint_save(g, s, &err))) goto fail;
        printf("saved %s\n", s);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "qtune train: %s\n", err.text);
    rc = rc == QT_EINVAL || rc == QT_EPARSE || rc == QT_ENOENT ? EXIT_USAGE : 1;
done:
    qt_qconfig_free(cfg);
    qt_graph_free(g);
    qt_dataset_free(tr); qt_dataset_free(val); qt_dataset_free(test);
    return rc;
}

/* ---- qtune eval ---- */

static int cmd_eval(int argc, char **argv)
{
    static const char *const known[] = { "config", "split", "limit", "batch", "seed", NULL };
    opt o[8];
    int n, rc;
    qt_error err;
    if (argc < 3 || parse_opts(argc, argv, 3, known, o, &n)) {
        fprintf(stderr, "usage: qtune eval MODEL|CKPT|FILE.onnx [--config JSON|@FILE] [--split val|test] "
                "[--limit N] [--batch B] [--seed S]\n");
        return EXIT_USAGE;
    }
    qt_graph *g = NULL;
    qt_qconfig *cfg = NULL;
    qt_dataset *d = NULL;
    qt_eval_opts eo = { 0 };
    qt_metrics m;
    double v, t0;
    const char *s;
    if ((s = getopt_v(o, n, "limit", NULL))) { if (num(s, &v, "--limit") || v < 0) return EXIT_USAGE; eo.limit = (size_t)v; }
    if ((s = getopt_v(o, n, "batch", NULL))) { if (num(s, &v, "--batch") || v < 1) return EXIT_USAGE; eo.batch = (int)v; }
    if ((rc = load_model(argv[2], &g, &err)) ||
        (rc = load_config(g, getopt_v(o, n, "config", NULL), &cfg, &err)) ||
        (rc = load_split(getopt_v(o, n, "split", "val"), &d, &err)))
        goto fail;
    if (cfg && (s = getopt_v(o, n, "seed", NULL))) {
        if (num(s, &v, "--seed")) { rc = QT_EINVAL; goto done; }
        qt_qconfig_set_seed(cfg, (uint64_t)v);
    }
    t0 = now();
    if ((rc = qt_evaluate(g, cfg, d, &eo, &m, &err))) goto fail;
    printf("%s on %s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%zu images, %zu non-finite, %.0f img/s)\n",
           argv[2], getopt_v(o, n, "split", "val"), 100 * m.top1, 100 * m.top5, m.loss, m.count,
           m.nan_count, m.count / (now() - t0));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "qtune eval: %s\n", err.text);
    rc = rc == QT_EINVAL || rc == QT_EPARSE || rc == QT_ENOENT || rc == QT_ECORRUPT || rc == QT_ENOTSUP ? EXIT_USAGE : 1;
done:
    qt_qconfig_free(cfg);
    qt_graph_free(g);
    qt_dataset_free(d);
    return rc;
}

/* ---- qtune show ---- */

static int cmd_show(int argc, char **argv)
{
    qt_graph *g = NULL;
    qt_error err;
    if (argc != 3) {
        fprintf(stderr, "usage: qtune show MODEL|CKPT|FILE.onnx\n");
        return EXIT_USAGE;
    }
    int rc = load_model(argv[2], &g, &err);
    if (rc) {
        fprintf(stderr, "qtune show: %s\n", err.text);
        return rc == QT_EINVAL || rc == QT_ENOENT || rc == QT_ECORRUPT || rc == QT_ENOTSUP
               ? EXIT_USAGE : 1;
    }
    printf("%-4s %-28s %-10s %-18s %10s %12s  %s\n", "id", "node", "op", "output", "params",
           "MACs", "inputs");
    for (int i = 0; i < qt_graph_nodes(g); i++) {
        int dims[QT_MAX_RANK], r = qt_graph_node_dims(g, i, dims);
        char shape[64] = "", ins[128] = "";
        size_t at = 0, params = 0;
        for (int k = 0; k < r && at < sizeof shape; k++)
            at += (size_t)snprintf(shape + at, sizeof shape - at, k ? "x%d" : "%d", dims[k]);
        if (r == 0) snprintf(shape, sizeof shape, "scalar");
        for (int k = 0; k < 2; k++) {
            qt_tensor *t = qt_graph_param(g, i, k);
            if (t) params += t->size;
        }
        const int *in;
        int nin = qt_graph_node_inputs(g, i, &in);
        at = 0;
        for (int k = 0; k < nin && at < sizeof ins; k++)
            at += (size_t)snprintf(ins + at, sizeof ins - at, k ? ", %s" : "%s",
                                   qt_graph_node_name(g, in[k]));
        printf("%-4d %-28s %-10s %-18s %10zu %12llu  %s%s\n", i, qt_graph_node_name(g, i),
               qt_op_name(qt_graph_node_op(g, i)), shape, params,
               (unsigned long long)qt_graph_node_macs(g, i), ins,
               i == qt_graph_output(g) ? "  (output)" : "");
    }
    printf("%d nodes, %zu parameters, %.3g MACs per sample\n", qt_graph_nodes(g),
           qt_graph_param_count(g), (double)qt_graph_macs(g));
    qt_graph_free(g);
    return 0;
}

/* ---- qtune tune ---- */

static void tune_progress(void *user, const qt_search *s, const qt_cand *c, const qt_result *r)
{
    (void)user;
    if (r->fail != QT_FAIL_NONE) {
        fprintf(stderr, "  %4d  failed: %s  (%s)\n", qt_search_evals(s), r->error, c->reason);
        return;
    }
    fprintf(stderr, "  %4d  %s top-1 %6.2f%%%s on %5zu images  %6.2fx  %s%s\n",
            qt_search_evals(s), r->feasible ? "pass" : "fail", 100 * r->top1,
            r->early ? "*" : " ", r->images, r->compression, c->reason,
            r->cached ? "  (cached)" : "");
}

static int cmd_tune(int argc, char **argv)
{
    qt_job_spec spec;
    qt_search *s = NULL;
    qt_error err;
    json_error_t je;
    int rc;
    if (argc != 3) {
        fprintf(stderr, "usage: qtune tune JOB.json   (see tuner/job.c for the fields)\n");
        return EXIT_USAGE;
    }
    json_t *j = json_load_file(argv[2], JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        fprintf(stderr, "qtune tune: %s: %s (line %d)\n", argv[2], je.text, je.line);
        return EXIT_USAGE;
    }
    rc = qt_job_from_json(j, &spec, &err);
    json_decref(j);
    if (rc) { fprintf(stderr, "qtune tune: %s: %s\n", argv[2], err.text); return EXIT_USAGE; }
    double t0 = now();
    rc = qt_search_new(&spec, NULL, &s, &err);
    if (rc) {
        fprintf(stderr, "qtune tune: %s\n", err.text);
        qt_job_clear(&spec);
        return rc == QT_EINVAL || rc == QT_ENOENT || rc == QT_ECORRUPT || rc == QT_ENOTSUP
               ? EXIT_USAGE : 1;
    }
    const qt_result *b = qt_search_baseline(s);
    const qt_coord *co;
    int nc = qt_search_coords(s, &co);
    fprintf(stderr, "%s: float top-1 %.2f%% on %zu validation images; %d tensors tuned; "
            "strategy %s; constraint top-1 >= %.2f%%\n", spec.model, 100 * b->top1, b->images,
            nc, spec.strategy, 100 * qt_search_threshold(s));
    rc = qt_search_run(s, tune_progress, NULL, &err);
    if (rc) fprintf(stderr, "qtune tune: %s\n", err.text);
    const qt_result *r;
    int feasible;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    int ef = 0, ep = 0;
    size_t imgs = 0;
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_result *x;
        qt_search_result(s, i, NULL, &x);
        if (x->early) { ef += !x->feasible; ep += x->feasible; }
        imgs += x->cached ? 0 : x->images;
    }
    printf("%d evaluations (%d computed, %zu images) in %.1f s; stopped early: %d failing, "
           "%d passing\n", qt_search_evals(s), qt_search_computed(s), imgs, now() - t0, ef, ep);
    if (best) {
        char *cj = qt_search_config_json(s, best);
        qt_result tq, tf;
        int trc = qt_search_measure_test(s, best, &tq, &err);
        if (!trc) trc = qt_search_measure_test(s, NULL, &tf, &err);
        printf("%s: %s\n  validation top-1 %.2f%% (float %.2f%%)", feasible ? "answer"
               : "no configuration met the constraint; closest", best->reason,
               100 * r->top1, 100 * b->top1);
        if (!trc) printf("; test top-1 %.2f%% (float %.2f%%)", 100 * tq.top1, 100 * tf.top1);
        printf("\n  cost %.4g, compression %.2fx; weight bits %.4g (%.2f per value), "
               "activation bits %.4g\n  config %s\n", r->cost, r->compression, r->weight_bits,
               r->weight_bits / (double)qt_graph_param_count(qt_search_graph(s)), r->act_bits,
               cj ? cj : "?");
        free(cj);
    }
    int n = qt_search_evals(s);
    qt_point *pts = malloc((size_t)(n ? n : 1) * sizeof *pts);
    if (pts) {
        for (int i = 0; i < n; i++) {
            const qt_result *x;
            qt_search_result(s, i, NULL, &x);
            pts[i].cost = x->fail || x->early ? NAN : x->cost;
            pts[i].acc = x->top1;
            pts[i].id = i;
        }
        int nf = qt_pareto(pts, n, pts);
        printf("Pareto front (%d points):\n  %12s %10s %8s  %s\n", nf, "cost", "compr.",
               "top-1", "candidate");
        for (int i = 0; i < nf; i++) {
            const qt_cand *c;
            const qt_result *x;
            qt_search_result(s, pts[i].id, &c, &x);
            printf("  %12.4g %9.2fx %7.2f%%  %s%s\n", x->cost, x->compression, 100 * x->top1,
                   c->reason, x->feasible ? "" : "  (below the constraint)");
        }
        free(pts);
    }
    qt_search_free(s);
    qt_job_clear(&spec);
    return rc ? 1 : feasible ? 0 : 3;
}

static const struct { const char *name; int (*fn)(int, char **); const char *help; } cmds[] = {
    { "format", cmd_format, "describe number formats" },
    { "train",  cmd_train,  "train a zoo model on Fashion-MNIST and save a checkpoint" },
    { "eval",   cmd_eval,   "evaluate a model under a quantization configuration" },
    { "tune",   cmd_tune,   "run a tuning job in-process (JOB.json) and print its answer and Pareto front" },
    { "show",   cmd_show,   "list a model's nodes (names for configurations), shapes and sizes" },
};

int main(int argc, char **argv)
{
    qt_runtime_init(argv);
    if (argc >= 2)
        for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
            if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc, argv);
    fprintf(stderr, "usage: qtune COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        fprintf(stderr, "  %-8s %s\n", cmds[i].name, cmds[i].help);
    return argc >= 2 && strcmp(argv[1], "help") && strcmp(argv[1], "--help") ? EXIT_USAGE : 0;
}
