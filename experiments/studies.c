/*
 * studies.c -- the study driver (studies.h): jobs through the store,
 * resumed by replay, with progress on stderr.
 */
#include "studies.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef QT_SOURCE_DIR
#define QT_SOURCE_DIR "."
#endif

struct study {
    char          prog[32];
    qt_store     *db;
    study_totals  tot;
    /* the running job, for progress */
    const char   *label;
    double        t0, last;
    int           evals, reused;
};

static volatile sig_atomic_t g_stop;
static qt_search *volatile g_cur;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    qt_search *s = g_cur;
    if (s) qt_search_cancel(s);       /* an atomic store */
}

int study_stopped(void) { return g_stop != 0; }

int study_append(char *buf, size_t size, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *at, size - *at, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= size - *at) return -1;
    *at += (size_t)k;
    return 0;
}

const char *study_command(int argc, char **argv)
{
    static char buf[2048];
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && at + 2 < sizeof buf; i++) {
        const char *a = i == 0 ? strrchr(argv[0], '/') : NULL;
        int m = snprintf(buf + at, sizeof buf - at, "%s%s", i ? " " : "",
                         i == 0 ? (a ? a + 1 : argv[0]) : argv[i]);
        if (m < 0) break;
        at += (size_t)m;
    }
    return buf;
}

const char *study_rel(const char *path)
{
    size_t n = strlen(QT_SOURCE_DIR);
    if (!strncmp(path, QT_SOURCE_DIR, n) && path[n] == '/') return path + n + 1;
    return path;
}

const char *study_date(void)
{
    static char buf[40];
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
    else snprintf(buf, sizeof buf, "?");
    return buf;
}

void study_loadavg(char *buf, size_t size)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
    else snprintf(buf, size, "?");
    if (f) fclose(f);
}

int study_checkpoint(const char *dir, const char *model, char *path, size_t size)
{
    int m = snprintf(path, size, "%s/%s.qtck", dir ? dir : QT_SOURCE_DIR "/experiments/models",
                     model);
    if (m < 0 || (size_t)m >= size) return QT_EINVAL;
    if (access(path, R_OK) == 0) return QT_OK;
    fprintf(stderr, "no trained checkpoint %s: make it with the command beside it in "
            "experiments/models/README.md (e.g. ./build/api/qtune train %s ... --out %s)\n",
            path, model, path);
    return QT_ENOENT;
}

int study_open(const char *prog, const char *db, study **out)
{
    qt_error err;
    study *st = calloc(1, sizeof *st);
    *out = NULL;
    if (!st) return QT_ENOMEM;
    snprintf(st->prog, sizeof st->prog, "%s", prog);
    /* each evaluation is committed as it finishes; NOSYNC: a commit survives
     * a crash of the program (what resuming needs), not a power failure */
    int rc = qt_store_open(db, QT_STORE_CREATE | QT_STORE_NOSYNC, &st->db, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err.text);
        free(st);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    *out = st;
    return QT_OK;
}

void study_close(study *st)
{
    if (!st) return;
    qt_store_close(st->db);
    free(st);
}

void study_get_totals(const study *st, study_totals *t) { *t = st->tot; }

/* the stored job with this spec (the latest), or 0 */
static int64_t find_job(study *st, const qt_job_spec *spec)
{
    qt_store_job *jobs;
    qt_error err;
    int n;
    int64_t id = 0;
    json_t *want = qt_job_to_json(spec);
    if (!want || qt_store_job_list(st->db, &jobs, &n, &err)) {
        json_decref(want);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        json_t *have = jobs[i].spec_json ? json_loads(jobs[i].spec_json, 0, NULL) : NULL;
        if (have && json_equal(have, want) && jobs[i].id > id) id = jobs[i].id;
        json_decref(have);
    }
    qt_store_job_list_free(jobs, n);
    json_decref(want);
    return id;
}

static void progress(void *user, const qt_search *s, const qt_cand *c, const qt_result *r)
{
    study *st = user;
    int k = 0, n = 0;
    st->evals++;
    st->reused += r->cached != 0;
    double t = now_s();
    if (t - st->last < 5.0) return;
    st->last = t;
    if (sscanf(c->reason, "grid %d/%d", &k, &n) == 2)
        fprintf(stderr, "%s: %s: %d/%d evaluations (%d from the store), %.0f s\n", st->prog,
                st->label, qt_search_evals(s), n, st->reused, t - st->t0);
    else
        fprintf(stderr, "%s: %s: %d evaluations (%d from the store), %.0f s\n", st->prog,
                st->label, qt_search_evals(s), st->reused, t - st->t0);
}

int study_run(study *st, const char *label, const char *job_json, study_collect_fn fn,
              void *user)
{
    qt_job_spec spec;
    qt_error err;
    qt_search *s = NULL;
    qt_store_cache *sc = NULL;
    qt_store_job info;
    int64_t id = 0;
    memset(&info, 0, sizeof info);
    if (g_stop) return QT_ECANCEL;
    int rc = qt_job_parse(job_json, &spec, &err);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n  job: %s\n", st->prog, label, err.text, job_json);
        return rc;
    }
    id = find_job(st, &spec);
    if (!id && (rc = qt_store_job_new(st->db, &spec, &id, &err))) goto out_err;
    if ((rc = qt_store_cache_new(st->db, id, &sc, &err)) ||
        (rc = qt_store_job_set_state(st->db, id, QT_JOB_RUNNING, NULL, &err)) ||
        (rc = qt_store_job_get(st->db, id, &info, &err)))
        goto out_err;
    st->label = label;
    st->t0 = st->last = now_s();
    st->evals = st->reused = 0;
    fprintf(stderr, "%s: %s: job %lld%s\n", st->prog, label, (long long)id,
            info.runs > 1 ? ", replayed from the store" : "");
    if ((rc = qt_search_new(&spec, qt_store_cache_hooks(sc), &s, &err))) goto out_state;
    qt_store_cache_attach(sc, s);
    g_cur = s;
    if (g_stop) qt_search_cancel(s);
    rc = qt_search_run(s, progress, st, &err);
    g_cur = NULL;
    int reused = 0, stored = 0;
    qt_store_cache_counts(sc, &reused, &stored, NULL);
    qt_error serr;
    if (qt_store_cache_error(sc, &serr)) {
        rc = qt_store_cache_error(sc, &err);
        goto out_state;
    }
    if (rc) goto out_state;
    if (fn) fn(user, s);
    const qt_result *r;
    int feasible = 0;
    const qt_cand *best = qt_search_best(s, &r, &feasible);
    char *ans = qt_run_answer(s, best, r, feasible, NULL);
    rc = ans ? qt_store_job_finish(st->db, id, ans, &err) : QT_ENOMEM;
    free(ans);
    if (rc) goto out_err;
    st->tot.jobs++;
    st->tot.evals += qt_search_evals(s);
    st->tot.computed += qt_search_computed(s);
    st->tot.reused += reused;
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_result *x;
        qt_search_result(s, i, NULL, &x);
        st->tot.eval_seconds += x->seconds;
    }
    fprintf(stderr, "%s: %s: %d evaluations (%d computed, %d from the store) in %.1f s\n",
            st->prog, label, qt_search_evals(s), qt_search_computed(s), reused,
            now_s() - st->t0);
    goto out;
out_state:
    /* stopped: paused (a signal, the disk) or failed; resumable either way */
    qt_store_job_set_state(st->db, id, rc == QT_ECANCEL || rc == QT_EFULL || rc == QT_EIO
                           ? QT_JOB_PAUSED : QT_JOB_FAILED,
                           rc == QT_ECANCEL ? "interrupted by a signal" : err.text, NULL);
    if (rc == QT_ECANCEL) {
        fprintf(stderr, "%s: %s: interrupted; every finished evaluation is stored: run the "
                "same command again to go on\n", st->prog, label);
        goto out;
    }
out_err:
    fprintf(stderr, "%s: %s: %s\n", st->prog, label, err.text);
out:
    qt_search_free(s);
    qt_store_cache_free(sc);
    qt_store_job_clear(&info);
    qt_job_clear(&spec);
    return rc;
}

/* ---- a program's command line, its run and its outputs ---- */

int study_size_arg(const char *val, size_t *out)
{
    char *end;
    long n = strtol(val, &end, 10);
    if (*end || n < 1) return -1;
    *out = (size_t)n;
    return 0;
}

int study_parse_args(const char *prog, const char *usage, int argc, char **argv,
                     study_opts *o, study_option_fn fn, void *user)
{
    memset(o, 0, sizeof *o);
    o->models = "mlp,lenet5,vgg,resnet";
    o->db = QT_SOURCE_DIR "/build/studies.db";
    o->k = 3;
    o->val = 2000;
    o->val_big = 500;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !v) {
            fprintf(stderr, "%s\n", usage);
            return 2;
        }
        /* fn: 0 taken, -1 a bad value, 1 not its own, 2 unknown */
        int own = fn ? fn(user, a, v) : 1, bad = own < 0, unknown = own > 1;
        if (own == 1) {
            if (!strcmp(a, "--models")) o->models = v;
            else if (!strcmp(a, "--db")) o->db = v;
            else if (!strcmp(a, "--k")) { o->k = atoi(v); bad = o->k < 0 || o->k > 16; }
            else if (!strcmp(a, "--val")) bad = study_size_arg(v, &o->val);
            else if (!strcmp(a, "--val-big")) bad = study_size_arg(v, &o->val_big);
            else if (!strcmp(a, "--models-dir")) o->mdir = v;
            else if (!strcmp(a, "--md")) o->md = v;
            else if (!strcmp(a, "--json")) o->json = v;
            else if (!strcmp(a, "--svg")) o->svg = v;
            else unknown = 1;
        }
        if (unknown) {
            fprintf(stderr, "%s: unknown option %s\n", prog, a);
            return 2;
        }
        if (bad) { fprintf(stderr, "%s: bad value for %s: %s\n", prog, a, v); return 2; }
        i++;
    }
    return 0;
}

int study_begin(const char *prog, const char *db, int argc, char **argv, study_info *in,
                study **out)
{
    memset(in, 0, sizeof *in);
    in->prog = prog;
    in->cmd = study_command(argc, argv);
    in->t0 = now_s();
    study_loadavg(in->load0, sizeof in->load0);
    return study_open(prog, db, out);
}

int study_finish(study *st, int rc, study_info *in, const study_opts *o,
                 const study_writers *w, const void *S)
{
    in->wall = now_s() - in->t0;
    study_loadavg(in->load1, sizeof in->load1);
    study_get_totals(st, &in->tot);
    study_close(st);
    if (rc == QT_ECANCEL || study_stopped()) return 130;
    if (rc) return 1;
    FILE *f = o->md ? fopen(o->md, "w") : stdout;
    if (!f) { perror(o->md); return 1; }
    w->md(f, S, in);
    if (o->md && fclose(f)) { perror(o->md); return 1; }
    if (o->json && w->json(o->json, S, in)) {
        fprintf(stderr, "%s: cannot write %s\n", in->prog, o->json);
        return 1;
    }
    if (o->svg) w->svgs(o->svg, S);
    fprintf(stderr, "%s: done in %.0f s (%d evaluations, %d computed now)\n", in->prog,
            in->wall, in->tot.evals, in->tot.computed);
    return 0;
}

void study_md_head(FILE *f, const char *title, const study_info *in)
{
    const study_totals *t = &in->tot;
    fprintf(f, "%s\n\n", title);
    fprintf(f, "Command: `%s`\n\n", in->cmd);
    fprintf(f, "Run: %s, %.0f s wall on %ld cores; %d jobs, %d evaluations (%d computed in "
            "this run, %d answered from the store); the evaluations took %.0f s when computed.\n\n",
            study_date(), in->wall, sysconf(_SC_NPROCESSORS_ONLN), t->jobs, t->evals,
            t->computed, t->reused, t->eval_seconds);
    fprintf(f, "Load average (1, 5, 15 min) at the start: %s; at the end: %s (the machine's 2 "
            "cores are shared: a load above 2 means other work ran beside this, and the times "
            "are longer for it).\n\n", in->load0, in->load1);
}

int study_json_write(const char *path, const char *name, const study_info *in,
                     json_t *fields)
{
    const study_totals *t = &in->tot;
    json_t *o = json_pack("{s:s,s:s,s:s,s:f,s:{s:i,s:i,s:i,s:i,s:f}}", "study", name,
        "command", in->cmd, "date", study_date(), "wall_seconds", in->wall, "totals", "jobs",
        t->jobs, "evaluations", t->evals, "computed", t->computed, "reused", t->reused,
        "eval_seconds", t->eval_seconds);
    int rc = -1;
    if (o && fields && !json_object_update(o, fields)) {
        json_object_set_new(o, "loadavg_start", json_string(in->load0));
        json_object_set_new(o, "loadavg_end", json_string(in->load1));
        rc = json_dump_file(o, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER |
                            JSON_REAL_PRECISION(6));
    }
    json_decref(fields);
    json_decref(o);
    return rc;
}

void study_svg(const char *prog, qt_plot *p, const char *dir, const char *fmt, ...)
{
    char name[512], path[1024];
    qt_error err;
    va_list ap;
    va_start(ap, fmt);
    int a = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int b = a < 0 || (size_t)a >= sizeof name ? -1
            : snprintf(path, sizeof path, "%s/%s", dir, name);
    if (b < 0 || (size_t)b >= sizeof path) {
        fprintf(stderr, "%s: output path too long under %s\n", prog, dir);
        return;
    }
    p->ylabel = "relative top-1 (quantized / float)";
    p->baseline = 1.0;
    p->baseline_label = "float";
    p->y_percent = 1;
    p->width = 760;
    if (qt_plot_svg_file(p, path, &err)) fprintf(stderr, "%s: %s\n", prog, err.text);
}

int study_layers_of(const char *prog, const char *path, int max, double *params,
                    study_layer_fn fn, void *user)
{
    qt_graph *g;
    qt_error err;
    if (qt_model_load(path, &g, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.text);
        return -1;
    }
    int nl = 0, rc = 0;
    *params = (double)qt_graph_param_count(g);
    for (int n = 0; n < qt_graph_nodes(g) && !rc; n++) {
        qt_op op = qt_graph_node_op(g, n);
        const qt_tensor *w = qt_graph_param(g, n, 0), *b = qt_graph_param(g, n, 1);
        if ((op != QT_OP_CONV && op != QT_OP_DENSE) || !w) continue;
        if (nl++ == max) {
            fprintf(stderr, "%s: %s has more than %d conv and dense layers\n", prog, path, max);
            rc = -1;
            break;
        }
        fn(user, qt_graph_node_name(g, n), (double)w->size,
           (double)w->size + (b ? (double)b->size : 0.0), (double)qt_graph_node_macs(g, n));
    }
    qt_graph_free(g);
    if (!rc && !nl) {
        fprintf(stderr, "%s: %s has no conv or dense layer\n", prog, path);
        rc = -1;
    }
    return rc;
}
