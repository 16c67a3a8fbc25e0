/*
 * qtune.c -- the qtune command line.
 *
 *   qtune format TEXT...                 describe number formats
 *   qtune train MODEL [options]          train a zoo model, save a checkpoint
 *   qtune eval MODEL|CKPT [options]      evaluate under a configuration
 *
 *   qtune tune JOB.json [--db FILE]      run a tuning job in-process
 *   qtune submit|status|list|watch|pareto|cancel|pause|resume|models|server
 *                                        the same through the daemon, qtuned
 *                                        (api/cli.c)
 *   qtune eval MODEL --remote ...        evaluate in the daemon
 *
 * Exit codes: 0 success, 1 a failure while running, 2 bad usage or input,
 * 3 a job finished without a configuration meeting its constraint; the
 * daemon's subcommands add 4 (no daemon answers) and 5 (a watched job
 * stopped without finishing).
 */
#include "engine.h"
#include "tuner.h"
#include "store.h"
#include "api.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
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
    /* in the daemon (api/cli.c) when asked for it */
    for (int i = 3; i < argc; i++)
        if (!strcmp(argv[i], "--remote") || !strcmp(argv[i], "--state") ||
            !strcmp(argv[i], "--socket") || !strcmp(argv[i], "--tcp"))
            return qt_cli_eval(argc, argv);
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
    /* stopped early ('*'): in random order the accuracy of the images seen;
     * hardest first, the bound the whole split was shown to keep */
    const char *bound = r->early && qt_search_spec(s)->hardest_first
                        ? (r->feasible ? ">=" : "<=") : "  ";
    fprintf(stderr, "  %4d  %s top-1 %s%6.2f%%%s on %5zu images  %6.2fx  %s%s\n",
            qt_search_evals(s), r->feasible ? "pass" : "fail", bound, 100 * r->top1,
            r->early ? "*" : " ", r->images, r->compression, c->reason,
            r->cached ? "  (cached)" : "");
}

static void tune_log(void *user, int level, const char *msg)
{
    (void)user;
    fprintf(stderr, "%s%s\n", level <= QT_LOG_WARN ? "qtune tune: " : "", msg);
}

/* the search is over: its summary, answer and Pareto front */
static void tune_finished(void *user, qt_search *s, const qt_run_out *o)
{
    (void)user;
    const qt_result *b = qt_search_baseline(s);
    const qt_result *r;
    int feasible = 0;
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
           "%d passing\n", qt_search_evals(s), qt_search_computed(s), imgs, o->seconds, ef, ep);
    qt_search_work w;
    qt_search_work_get(s, &w);
    if (w.macs_full > 0)
        printf("engine work: %.3g multiply-accumulates, %.1fx fewer than %.3g for every "
               "computed evaluation in full; %llu of %llu batches resumed from a kept prefix "
               "(%.1f MiB kept at most)\n", w.macs, w.macs > 0 ? w.macs_full / w.macs : 0.0,
               w.macs_full, (unsigned long long)w.prefix_hits,
               (unsigned long long)w.prefix_batches, (double)w.prefix_peak / (1 << 20));
    if (best) {
        char *cj = qt_search_config_json(s, best);
        printf("%s: %s\n  validation top-1 %.2f%% (float %.2f%%)", feasible ? "answer"
               : "no configuration met the constraint; closest", best->reason,
               100 * r->top1, 100 * b->top1);
        if (o->have_test)
            printf("; test top-1 %.2f%% (float %.2f%%)", 100 * o->test.top1,
                   100 * o->test_float.top1);
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
            pts[i].cost = x->fail || x->early || x->subset ? NAN : x->cost;
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
}

/* run a job (api/runner.c); with a store (st, job), through it: every
 * evaluation stored as it finishes, every stored one reused, the state and
 * answer recorded */
static int tune_run(qt_job_spec *spec, qt_store *st, int64_t job, const char *db)
{
    qt_run_hooks h = { .log = tune_log, .progress = tune_progress, .finished = tune_finished };
    qt_run_out o;
    int rc = qt_run_job(spec, st, job, NULL, &h, &o);
    if (o.stage == QT_RUN_SETUP)
        return rc == QT_EINVAL || rc == QT_ENOENT || rc == QT_ECORRUPT || rc == QT_ENOTSUP
               ? EXIT_USAGE : 1;
    if (o.stage == QT_RUN_STORE) {
        fprintf(stderr, "job %lld %s: every evaluation stored so far is kept; once the cause "
                "is gone, resume it with: qtune tune --db %s --resume %lld\n", (long long)job,
                o.recorded ? "paused" : "stopped", db, (long long)job);
        return 1;
    }
    if (st) {
        printf("job %lld %s in %s (run %d", (long long)job,
               !o.recorded ? "NOT recorded" : rc ? "recorded as failed" : "done", db, o.runs);
        if (o.interrupted)
            printf(", resumed after %d interruption%s", o.interrupted,
                   o.interrupted == 1 ? "" : "s");
        printf("): %d evaluations, %d reused from the store, %d computed now\n",
               o.evals, o.reused, o.computed);
    }
    return rc ? 1 : o.feasible ? 0 : 3;
}

static int tune_list(qt_store *st)
{
    qt_store_job *jobs;
    qt_error err;
    int n;
    if (qt_store_job_list(st, &jobs, &n, &err)) {
        fprintf(stderr, "qtune tune: %s\n", err.text);
        return 1;
    }
    printf("%5s  %-9s %4s %5s %6s %8s  %-19s  %-10s  %s\n", "id", "state", "runs", "kills",
           "evals", "computed", "created", "strategy", "model / answer or error");
    for (int i = 0; i < n; i++) {
        const qt_store_job *j = &jobs[i];
        char when[32] = "";
        time_t t = (time_t)j->created;
        struct tm tm;
        if (localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%5lld  %-9s %4d %5d %6d %8d  %-19s  %-10s  %s\n", (long long)j->id,
               qt_job_state_name(j->state), j->runs, j->interrupted, j->evals, j->computed,
               when, j->strategy, j->model);
        if (j->answer_json) printf("%57s%.*s\n", "", 200, j->answer_json);
        else if (j->error) printf("%57s%s\n", "", j->error);
    }
    qt_store_job_list_free(jobs, n);
    return 0;
}

static int data_cb(void *user, const qt_store_named *m)
{
    json_t *src = m->source_json ? json_loads(m->source_json, 0, NULL) : NULL;
    if (src) json_object_set_new(user, "data", src);
    return 0;
}

/* a job naming a dataset registered in the store at db (qtuned's
 * dataset.register) without its files: the store's "data" */
static void fill_data(json_t *j, const char *db)
{
    json_t *dn = json_object_get(j, "dataset");
    qt_store *st;
    qt_error err;
    if (!json_is_object(j) || !json_is_string(dn) || json_object_get(j, "data") ||
        !strcmp(json_string_value(dn), "fashion-mnist"))
        return;
    /* (no store, or no such dataset: the job's parse says what is missing) */
    if (qt_store_open(db, QT_STORE_READONLY, &st, &err)) return;
    qt_store_dataset_find(st, json_string_value(dn), data_cb, j, &err);
    qt_store_close(st);
}

static int tune_usage(void)
{
    fprintf(stderr,
            "usage: qtune tune JOB.json [--db FILE]     run a job (see tuner/job.c for its "
            "fields); with --db, store it and every evaluation\n"
            "       qtune tune --db FILE --resume ID [JOB.json]\n"
            "                                          run a stored job again from its start: "
            "what the store has is reused, the rest computed\n"
            "                                          (JOB.json: a new spec, e.g. other "
            "budgets or strategy)\n"
            "       qtune tune --db FILE --list         the stored jobs\n"
            "       qtune tune --db FILE --export ID [--format csv|json]\n"
            "                                          a job's evaluations, in order\n");
    return EXIT_USAGE;
}

static int job_id_arg(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v <= 0) {
        fprintf(stderr, "qtune tune: '%s' is not a job id\n", s);
        return -1;
    }
    *id = v;
    return 0;
}

static int cmd_tune(int argc, char **argv)
{
    const char *job_path = NULL, *db = NULL, *resume = NULL, *export_id = NULL, *format = NULL;
    int list = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--db") ? &db : !strcmp(a, "--resume") ? &resume
                          : !strcmp(a, "--export") ? &export_id : !strcmp(a, "--format") ? &format
                          : NULL;
        if (slot) {
            if (i + 1 >= argc || *slot) return tune_usage();
            *slot = argv[++i];
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else if (a[0] != '-' && !job_path) {
            job_path = a;
        } else {
            fprintf(stderr, "qtune tune: unexpected argument '%s'\n", a);
            return tune_usage();
        }
    }
    int modes = list + !!resume + !!export_id;
    if (modes > 1 || (modes && !db) || (!modes && !job_path) || ((list || export_id) && job_path) ||
        (format && !export_id))
        return tune_usage();
    if (format && strcmp(format, "csv") && strcmp(format, "json")) {
        fprintf(stderr, "qtune tune: --format must be csv or json\n");
        return EXIT_USAGE;
    }
    int64_t id = 0;
    if ((resume && job_id_arg(resume, &id)) || (export_id && job_id_arg(export_id, &id)))
        return EXIT_USAGE;

    qt_job_spec spec;
    qt_error err;
    int have_spec = 0, rc;
    memset(&spec, 0, sizeof spec);
    if (job_path) {
        json_error_t je;
        json_t *j = json_load_file(job_path, JSON_REJECT_DUPLICATES, &je);
        if (!j) {
            fprintf(stderr, "qtune tune: %s: %s (line %d)\n", job_path, je.text, je.line);
            return EXIT_USAGE;
        }
        if (db) fill_data(j, db);
        rc = qt_job_from_json(j, &spec, &err);
        json_decref(j);
        if (rc) { fprintf(stderr, "qtune tune: %s: %s\n", job_path, err.text); return EXIT_USAGE; }
        have_spec = 1;
    }
    if (!db) {
        rc = tune_run(&spec, NULL, 0, NULL);
        qt_job_clear(&spec);
        return rc;
    }

    /* past a file size limit, a write should fail (and the job pause)
     * rather than the process die */
    signal(SIGXFSZ, SIG_IGN);
    qt_store *st;
    rc = qt_store_open(db, resume || list || export_id ? 0 : QT_STORE_CREATE, &st, &err);
    if (rc) {
        fprintf(stderr, "qtune tune: %s\n", err.text);
        qt_job_clear(&spec);
        return rc == QT_ENOENT || rc == QT_ECORRUPT || rc == QT_ENOTSUP || rc == QT_EINVAL
               ? EXIT_USAGE : 1;
    }
    if (list) {
        rc = tune_list(st);
    } else if (export_id) {
        rc = qt_store_export(st, id, format && !strcmp(format, "json") ? QT_STORE_JSON
                             : QT_STORE_CSV, stdout, &err);
        if (rc) fprintf(stderr, "qtune tune: %s\n", err.text);
        rc = rc == QT_ENOENT ? EXIT_USAGE : rc ? 1 : 0;
    } else if (resume) {
        if (have_spec) rc = qt_store_job_set_spec(st, id, &spec, &err);
        else rc = qt_store_job_spec(st, id, &spec, &err);
        if (rc) {
            fprintf(stderr, "qtune tune: %s\n", err.text);
            rc = rc == QT_ENOENT || rc == QT_ECORRUPT ? EXIT_USAGE : 1;
        } else {
            rc = tune_run(&spec, st, id, db);
        }
    } else {
        rc = qt_store_job_new(st, &spec, &id, &err);
        if (rc) {
            fprintf(stderr, "qtune tune: %s\n", err.text);
            rc = 1;
        } else {
            fprintf(stderr, "job %lld stored in %s\n", (long long)id, db);
            rc = tune_run(&spec, st, id, db);
        }
    }
    qt_job_clear(&spec);
    qt_store_close(st);
    return rc;
}

static const struct { const char *name; int (*fn)(int, char **); const char *help; } cmds[] = {
    { "format", cmd_format, "describe number formats" },
    { "train",  cmd_train,  "train a zoo model on Fashion-MNIST and save a checkpoint" },
    { "eval",   cmd_eval,   "evaluate a model under a quantization configuration" },
    { "tune",   cmd_tune,   "run a tuning job in-process (JOB.json) and print its answer and Pareto front;\n"
                            "           --db FILE stores it, --resume ID replays a stored one, --list" },
    { "show",   cmd_show,   "list a model's nodes (names for configurations), shapes and sizes" },
    /* through the daemon, qtuned (api/cli.c: options and exit codes) */
    { "submit", qt_cli_submit, "store and queue a job in the daemon (JOB.json); --watch follows it" },
    { "status", qt_cli_status, "a job's state, progress and answer" },
    { "list",   qt_cli_list,   "the daemon's jobs" },
    { "watch",  qt_cli_watch,  "a job's live progress until it ends" },
    { "pareto", qt_cli_pareto, "a job's Pareto front; --plot FILE.svg, --ascii" },
    { "cancel", qt_cli_cancel, "stop a job for good" },
    { "pause",  qt_cli_pause,  "stop a job, resumable" },
    { "resume", qt_cli_resume, "run a stopped job again (replay), optionally with new budgets" },
    { "models", qt_cli_models, "the models the daemon may read; --register PATH" },
    { "datasets", qt_cli_datasets, "the datasets jobs may name; --register NAME --images F "
                                   "--labels F ..." },
    { "server", qt_cli_server, "the daemon: info (default), stats, start, stop" },
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
