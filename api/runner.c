/*
 * runner.c -- one run of a tuning job, through the store when there is one:
 * the code behind `qtune tune` and every job of qtuned (api.h).
 */
#include "api.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* The stop flag                                                             */
/* ------------------------------------------------------------------------ */

struct qt_run_ctl {
    atomic_int      why;      /* qt_run_stop */
    pthread_mutex_t mu;       /* guards s */
    qt_search      *s;        /* the running search, or NULL */
};

qt_run_ctl *qt_run_ctl_new(void)
{
    qt_run_ctl *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    atomic_init(&c->why, QT_STOP_NONE);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void qt_run_ctl_free(qt_run_ctl *c)
{
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void qt_run_ctl_stop(qt_run_ctl *c, qt_run_stop why)
{
    int none = QT_STOP_NONE;
    atomic_compare_exchange_strong(&c->why, &none, (int)why);
    pthread_mutex_lock(&c->mu);
    if (c->s) qt_search_cancel(c->s);
    pthread_mutex_unlock(&c->mu);
}

qt_run_stop qt_run_ctl_reason(qt_run_ctl *c)
{
    return c ? (qt_run_stop)atomic_load(&c->why) : QT_STOP_NONE;
}

/* the search the ctl can cancel (NULL: none any more) */
static void ctl_attach(qt_run_ctl *c, qt_search *s)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->s = s;
    if (s && atomic_load(&c->why) != QT_STOP_NONE) qt_search_cancel(s);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void say(const qt_run_hooks *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(const qt_run_hooks *h, int level, const char *fmt, ...)
{
    if (!h || !h->log) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    h->log(h->user, level, buf);
}

int qt_run_check_classes(const qt_graph *g, const char *model, int classes, const char *dataset,
                         qt_error *err)
{
    int out = qt_graph_output(g);
    size_t width = qt_graph_node_size(g, out);
    if (classes <= 0 || (size_t)classes <= width) return QT_OK;
    return qt_errorf(err, QT_EINVAL, -1, "model %s: its output '%s' has %zu values, fewer than "
                     "the %d classes of dataset %s", model, qt_graph_node_name(g, out), width,
                     classes, dataset);
}

/* a set-up that failed with QT_EINVAL: when it is because the model's
 * output is narrower than the data's classes (the engine's and the
 * tuner's messages name only one side), say so naming both */
static void explain_classes(const qt_job_spec *spec, qt_error *err)
{
    qt_graph *g = NULL;
    qt_dataset *d = NULL;
    qt_error e2;
    if (qt_model_load(spec->model, &g, &e2) == QT_OK &&
        qt_job_dataset(spec, QT_SPLIT_VAL, &d, &e2) == QT_OK) {
        char ds[208];
        if (spec->has_data) snprintf(ds, sizeof ds, "'%s' (%.120s)", spec->dataset,
                                     spec->data.train_labels);
        else snprintf(ds, sizeof ds, "'%s'", spec->dataset);
        qt_run_check_classes(g, spec->model, qt_dataset_classes(d), ds, err);
    }
    qt_dataset_free(d);
    qt_graph_free(g);
}

/* record the job's model and validation data in the store */
static int record_model(qt_store *st, int64_t job, const qt_search *s, qt_error *err)
{
    const qt_job_spec *sp = qt_search_spec(s);
    const qt_graph *g = qt_search_graph(s);
    const qt_dataset *d = qt_search_dataset(s);
    char mh[33], dh[17], sum[160];
    int64_t mid = 0, did = 0;
    FILE *f = fopen(sp->model, "rb");
    if (f) fclose(f);
    qt_graph_hash(g, mh);
    snprintf(sum, sizeof sum, "{\"nodes\":%d,\"params\":%zu,\"macs\":%llu}", qt_graph_nodes(g),
             qt_graph_param_count(g), (unsigned long long)qt_graph_macs(g));
    int rc = qt_store_model_put(st, sp->model, f ? sp->model : NULL, mh, sum, &mid, err);
    if (!rc && d) {
        snprintf(dh, sizeof dh, "%016llx", (unsigned long long)qt_dataset_hash(d));
        snprintf(sum, sizeof sum, "{\"split\":\"val\",\"images\":%zu}", qt_dataset_count(d));
        rc = qt_store_dataset_put(st, sp->dataset, dh, sum, &did, err);
    }
    if (!rc) rc = qt_store_job_set_model(st, job, mid, did, err);
    return rc;
}

char *qt_run_answer(const qt_search *s, const qt_cand *best, const qt_result *r, int feasible,
                    const qt_result *test)
{
    json_t *o = json_object();
    json_object_set_new(o, "feasible", json_boolean(best && feasible));
    if (best) {
        char *cj = qt_search_config_json(s, best);
        json_t *cfg = cj ? json_loads(cj, 0, NULL) : NULL;
        free(cj);
        json_object_set_new(o, "reason", json_string(best->reason));
        json_object_set_new(o, "config", cfg ? cfg : json_null());
        json_object_set_new(o, "cost", json_real(r->cost));
        json_object_set_new(o, "compression", json_real(r->compression));
        json_object_set_new(o, "top1", json_real(r->top1));
        json_object_set_new(o, "images", json_integer((json_int_t)r->images));
        if (test) json_object_set_new(o, "test_top1", json_real(test->top1));
    } else {
        json_object_set_new(o, "config", json_null());
    }
    const qt_result *b = qt_search_baseline(s);
    if (b) json_object_set_new(o, "float_top1", json_real(b->top1));
    json_object_set_new(o, "threshold", json_real(qt_search_threshold(s)));
    json_object_set_new(o, "evaluations", json_integer(qt_search_evals(s)));
    char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    return txt;
}

/* the state a stopped or failed run is recorded in */
static qt_job_state end_state(int rc, qt_run_stop why)
{
    if (rc == QT_ECANCEL)
        return why == QT_STOP_PAUSE ? QT_JOB_PAUSED : why == QT_STOP_SHUTDOWN ? QT_JOB_QUEUED
                                                                              : QT_JOB_CANCELLED;
    return rc == QT_EFULL || rc == QT_EIO ? QT_JOB_PAUSED : QT_JOB_FAILED;
}

/* record state (not done); a shutdown queues the job again for the next
 * start */
static void record_state(qt_store *st, int64_t job, qt_job_state state, const char *why,
                         const qt_run_hooks *h, qt_run_out *out)
{
    qt_error e2;
    if (state == QT_JOB_QUEUED) why = "the daemon stopped; the job resumes at its next start";
    if (qt_store_job_set_state(st, job, state, why, &e2)) {
        say(h, QT_LOG_ERROR, "%s", e2.text);
        return;
    }
    out->recorded = 1;
    out->state = state;
}

/* ------------------------------------------------------------------------ */
/* A run                                                                     */
/* ------------------------------------------------------------------------ */

int qt_run_job(const qt_job_spec *spec, qt_store *st, int64_t job, qt_run_ctl *ctl,
               const qt_run_hooks *h, qt_run_out *out)
{
    qt_search *s = NULL;
    qt_store_cache *sc = NULL;
    qt_store_job info;
    qt_error *err = &out->err;
    int rc;
    memset(out, 0, sizeof *out);
    memset(&info, 0, sizeof info);
    out->state = QT_JOB_RUNNING;
    if (st) {
        if ((rc = qt_store_cache_new(st, job, &sc, err)) ||
            (rc = qt_store_job_set_state(st, job, QT_JOB_RUNNING, NULL, err)) ||
            (rc = qt_store_job_get(st, job, &info, err))) {
            say(h, QT_LOG_ERROR, "%s", err->text);
            out->stage = QT_RUN_SETUP;
            goto out_free;
        }
        out->runs = info.runs;
        out->interrupted = info.interrupted;
        if (info.runs > 1)
            say(h, QT_LOG_INFO, "job %lld, run %d (%d interrupted before): replaying it from "
                "the start, %d evaluations in the store", (long long)job, info.runs,
                info.interrupted, info.evals);
    }
    rc = qt_search_new(spec, sc ? qt_store_cache_hooks(sc) : NULL, &s, err);
    if (rc == QT_EINVAL) explain_classes(spec, err);
    if (!rc && st) rc = record_model(st, job, s, err);
    if (!rc && qt_run_ctl_reason(ctl) != QT_STOP_NONE)
        rc = qt_errorf(err, QT_ECANCEL, -1, "stopped before the search began");
    if (rc) {
        say(h, rc == QT_ECANCEL ? QT_LOG_INFO : QT_LOG_ERROR, "%s", err->text);
        out->stage = QT_RUN_SETUP;
        if (st) record_state(st, job, end_state(rc, qt_run_ctl_reason(ctl)), err->text, h, out);
        goto out_free;
    }
    if (sc) qt_store_cache_attach(sc, s);
    const qt_result *b = qt_search_baseline(s);
    const qt_coord *co;
    int nc = qt_search_coords(s, &co);
    out->float_top1 = b->top1;
    out->threshold = qt_search_threshold(s);
    say(h, QT_LOG_INFO, "%s: float top-1 %.2f%% on %zu validation images; %d tensors tuned; "
        "strategy %s; constraint top-1 >= %.2f%%", spec->model, 100 * b->top1, b->images, nc,
        spec->strategy, 100 * qt_search_threshold(s));
    if (h && h->started) h->started(h->user, s);

    double t0 = now();
    ctl_attach(ctl, s);
    rc = qt_search_run(s, h ? h->progress : NULL, h ? h->user : NULL, err);
    ctl_attach(ctl, NULL);
    out->seconds = now() - t0;
    out->evals = qt_search_evals(s);
    out->computed = qt_search_computed(s);
    if (sc) qt_store_cache_counts(sc, &out->reused, &out->stored, NULL);
    int src = sc ? qt_store_cache_error(sc, err) : QT_OK;
    if (src) {
        /* the store could not keep an evaluation: stop, keep what is stored */
        say(h, QT_LOG_ERROR, "%s", err->text);
        rc = src;
        out->stage = QT_RUN_STORE;
        record_state(st, job, QT_JOB_PAUSED, err->text, h, out);
        goto out_free;
    }
    if (rc) say(h, rc == QT_ECANCEL ? QT_LOG_INFO : QT_LOG_ERROR, "%s", err->text);

    const qt_result *r;
    const qt_cand *best = qt_search_best(s, &r, &out->feasible);
    if (best) {
        qt_error terr;
        out->have_best = 1;
        out->best = *r;
        if (!rc && qt_run_ctl_reason(ctl) == QT_STOP_NONE &&
            !qt_search_measure_test(s, best, &out->test, &terr) &&
            !qt_search_measure_test(s, NULL, &out->test_float, &terr))
            out->have_test = 1;
    } else {
        out->feasible = 0;
    }
    if (h && h->finished) h->finished(h->user, s, out);

    if (st) {
        if (rc) {
            record_state(st, job, end_state(rc, qt_run_ctl_reason(ctl)), err->text, h, out);
        } else {
            qt_error e2;
            char *ans = qt_run_answer(s, best, r, out->feasible, out->have_test ? &out->test
                                                                                : NULL);
            int frc = ans ? qt_store_job_finish(st, job, ans, &e2)
                          : qt_errorf(&e2, QT_ENOMEM, -1, "out of memory");
            free(ans);
            if (frc) {
                say(h, QT_LOG_ERROR, "%s", e2.text);
                rc = frc;
                *err = e2;
                out->stage = QT_RUN_RECORD;
            } else {
                out->recorded = 1;
                out->state = QT_JOB_DONE;
            }
        }
    }
out_free:
    out->rc = rc;
    qt_search_free(s);
    qt_store_cache_free(sc);
    qt_store_job_clear(&info);
    return rc;
}
