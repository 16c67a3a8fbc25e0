/*
 * jobs.c -- qtuned's job manager: active jobs (queued, then running) in
 * submission order, `slots` runner threads that take the first queued job
 * and run it through api/runner.c with their own store connection, and the
 * live progress of each run, handed to the loop thread as events through
 * one uv_async_t (the only libuv call made off the loop thread).
 *
 * A run the store stopped (a full disk, an I/O error: the job is paused
 * with the cause, nothing stored is lost) is tried again every
 * storage_retry seconds by a timer on the loop thread, so the job goes on
 * by itself once there is space again; a retry first checks that the job
 * is still paused (a user may have cancelled it meanwhile), and one that
 * still cannot write costs one failed transaction.
 *
 * A resumed job (queued again at start, or by job.resume) on a registered
 * dataset has its files checked again before it runs (recheck_data): they
 * may have been removed, replaced or moved out of the data directory
 * since the job was submitted. A failure fails the job, with an error
 * naming the file and the problem: failed rather than paused, because its
 * history was measured on data that is gone or different, and a restart
 * of the daemon must not try it again and again (only queued and running
 * jobs are resumed at start); job.resume runs it again, checked again,
 * once the files are back.
 */
#include "daemon.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct qd_job {
    int64_t        id;
    int            running;        /* 0: queued */
    qt_run_stop    stop;           /* asked to stop, and why */
    qt_run_ctl    *ctl;
    /* live progress (under mu) */
    int            evals, computed, cached;
    int            have_best, best_feasible;
    double         best_cost, best_compression, best_top1;
    double         float_top1, threshold;
    double         started;        /* Unix seconds */
    int            retry;          /* queued again after a storage failure */
    int            recheck;        /* resumed: check its dataset's files first */
    struct qd_job *next;
} qd_job;

typedef struct qd_event {
    int64_t          job;          /* 0: the runner threads are all gone */
    json_t          *params;
    int              end;
    struct qd_event *next;
} qd_event;

struct qd_jobs {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    qd_job         *list;          /* active jobs, in order */
    pthread_t      *threads;
    int             n_threads;
    int             alive;         /* runner threads still running */
    int             stopping;
    char            db[PATH_MAX];
    char            data[PATH_MAX];  /* the data directory (real path) */
    uv_async_t      async;
    qd_event       *ev_head, *ev_tail;
    qd_job_event_cb cb;
    void           *user;
    /* counters */
    uint64_t        runs, done, failed, computed, cached, retries;
    /* jobs the store stopped, to try again (under mu), and the timer */
    struct retry { int64_t id; char why[256]; } *retry;
    int             n_retry, cap_retry;
    uv_timer_t      timer;
    int             have_timer;
};

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- events: pushed by runner threads, delivered on the loop thread ---- */

static void push_event(qd_jobs *j, int64_t job, json_t *params, int end)
{
    qd_event *e = calloc(1, sizeof *e);
    if (!e) { json_decref(params); return; }
    e->job = job;
    e->params = params;
    e->end = end;
    pthread_mutex_lock(&j->mu);
    if (j->ev_tail) j->ev_tail->next = e; else j->ev_head = e;
    j->ev_tail = e;
    pthread_mutex_unlock(&j->mu);
    uv_async_send(&j->async);
}

static void on_async(uv_async_t *a)
{
    qd_jobs *j = a->data;
    pthread_mutex_lock(&j->mu);
    qd_event *e = j->ev_head;
    j->ev_head = j->ev_tail = NULL;
    pthread_mutex_unlock(&j->mu);
    while (e) {
        qd_event *next = e->next;
        j->cb(j->user, e->job, e->params, e->end);
        json_decref(e->params);
        free(e);
        e = next;
    }
}

/* ---- the list of active jobs (under mu) ---- */

static qd_job *find(qd_jobs *j, int64_t id)
{
    for (qd_job *x = j->list; x; x = x->next) if (x->id == id) return x;
    return NULL;
}

static void unlink_job(qd_jobs *j, qd_job *job)
{
    for (qd_job **p = &j->list; *p; p = &(*p)->next)
        if (*p == job) { *p = job->next; return; }
}

static void free_job(qd_job *x)
{
    qt_run_ctl_free(x->ctl);
    free(x);
}

/* ---- a run ---- */

typedef struct run_ctx { qd_jobs *j; qd_job *job; } run_ctx;

static void run_log(void *user, int level, const char *msg)
{
    run_ctx *r = user;
    qd_log(level, "job %lld: %s", (long long)r->job->id, msg);
}

static void run_started(void *user, const qt_search *s)
{
    run_ctx *r = user;
    pthread_mutex_lock(&r->j->mu);
    r->job->float_top1 = qt_search_baseline(s)->top1;
    r->job->threshold = qt_search_threshold(s);
    pthread_mutex_unlock(&r->j->mu);
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* the live part of a job's status (under mu) */
static json_t *live_json(const qd_job *x)
{
    json_t *o = json_object();
    const char *st = !x->running ? "queued" : x->stop == QT_STOP_PAUSE ? "pausing"
                   : x->stop == QT_STOP_CANCEL ? "cancelling" : x->stop ? "stopping"
                   : "running";
    json_object_set_new(o, "job", json_integer(x->id));
    json_object_set_new(o, "state", json_string(st));
    json_object_set_new(o, "evals", json_integer(x->evals));
    json_object_set_new(o, "computed", json_integer(x->computed));
    json_object_set_new(o, "cached", json_integer(x->cached));
    if (x->running && x->started > 0) {
        json_object_set_new(o, "float_top1", num_or_null(x->float_top1));
        json_object_set_new(o, "threshold", num_or_null(x->threshold));
        json_object_set_new(o, "seconds", json_real(wall() - x->started));
    }
    if (x->have_best) {
        json_t *b = json_object();
        json_object_set_new(b, "cost", num_or_null(x->best_cost));
        json_object_set_new(b, "compression", num_or_null(x->best_compression));
        json_object_set_new(b, "top1", num_or_null(x->best_top1));
        json_object_set_new(b, "feasible", json_boolean(x->best_feasible));
        json_object_set_new(o, "best", b);
    } else {
        json_object_set_new(o, "best", json_null());
    }
    return o;
}

static void run_progress(void *user, const qt_search *s, const qt_cand *c, const qt_result *r)
{
    run_ctx *rc = user;
    qd_job *x = rc->job;
    const qt_result *br;
    int feasible = 0;
    const qt_cand *best = qt_search_best(s, &br, &feasible);
    pthread_mutex_lock(&rc->j->mu);
    x->evals = qt_search_evals(s);
    x->computed = qt_search_computed(s);
    x->cached += r->cached ? 1 : 0;
    rc->j->computed += r->cached ? 0 : 1;
    rc->j->cached += r->cached ? 1 : 0;
    if (best) {
        x->have_best = 1;
        x->best_feasible = feasible;
        x->best_cost = br->cost;
        x->best_compression = br->compression;
        x->best_top1 = br->top1;
    }
    json_t *p = live_json(x);
    pthread_mutex_unlock(&rc->j->mu);
    json_t *last = json_object();
    json_object_set_new(last, "reason", json_string(c->reason));
    json_object_set_new(last, "top1", num_or_null(r->top1));
    json_object_set_new(last, "feasible", json_boolean(r->feasible));
    json_object_set_new(last, "early", json_boolean(r->early));
    json_object_set_new(last, "cost", num_or_null(r->cost));
    json_object_set_new(last, "compression", num_or_null(r->compression));
    json_object_set_new(last, "images", json_integer((json_int_t)r->images));
    json_object_set_new(last, "cached", json_boolean(r->cached));
    if (r->fail != QT_FAIL_NONE) json_object_set_new(last, "error", json_string(r->error));
    json_object_set_new(p, "last", last);
    push_event(rc->j, x->id, p, 0);
}

/* ---- a resumed job's dataset ---- */

/* the registration of a dataset name, if any (qt_store_dataset_find) */
typedef struct reg { int found; char hash[80]; json_t *src; } reg;

static int reg_cb(void *user, const qt_store_named *m)
{
    reg *r = user;
    r->found = 1;
    snprintf(r->hash, sizeof r->hash, "%s", m->hash ? m->hash : "");
    r->src = m->source_json ? json_loads(m->source_json, 0, NULL) : NULL;
    return 0;
}

/* the registration describes exactly these files and normalisation */
static int same_data(const qt_job_spec *spec, const reg *r)
{
    qt_job_spec rs;
    qt_error e;
    if (!json_is_object(r->src)) return 0;
    json_t *job = json_pack("{s:s, s:s, s:O}", "model", "-", "dataset", spec->dataset, "data",
                            r->src);
    int rc = job ? qt_job_from_json(job, &rs, &e) : QT_ENOMEM;
    json_decref(job);
    if (rc) return 0;
    const qt_job_data *a = &spec->data, *b = &rs.data;
    int same = !strcmp(a->train_images, b->train_images) &&
               !strcmp(a->train_labels, b->train_labels) &&
               !strcmp(a->test_images, b->test_images) &&
               !strcmp(a->test_labels, b->test_labels) && a->norm.scale == b->norm.scale &&
               a->norm.mean == b->norm.mean && a->norm.std == b->norm.std;
    qt_job_clear(&rs);
    return same;
}

/* The files of a resumed job's registered dataset, checked again: each
 * still inside the data directory after realpath, a regular file that
 * can be read, and loadable as dataset.register loads it (IDX, counts,
 * test images of the training images' dims); and, while the dataset is
 * still registered with these very files and normalisation, of the
 * content it was registered with (the registration's hash of both
 * splits; nothing else identifies a file's content: a job registered
 * again under its name with other files has nothing to compare with).
 * Errors name the dataset, the file and the problem. */
static int recheck_data(qd_jobs *j, qt_store *st, const qt_job_spec *spec, qt_error *err)
{
    const qt_job_data *d = &spec->data;
    const char *const files[] = { d->train_images, d->train_labels, d->test_images,
                                  d->test_labels };
    const char *ds = spec->dataset;
    size_t m = strlen(j->data);
    for (int i = 0; i < 4; i++) {
        char real[PATH_MAX];
        struct stat sb;
        if (!files[i][0]) continue;
        if (!realpath(files[i], real)) {
            int e = errno;
            return qt_errorf(err, e == ENOENT ? QT_ENOENT : QT_EINVAL, -1,
                             "dataset '%s': %s: %s%s", ds, files[i], strerror(e),
                             e == ENOENT ? " (removed since the job was submitted)" : "");
        }
        if (strncmp(real, j->data, m) != 0 || real[m] != '/')
            return qt_errorf(err, QT_EINVAL, -1, "dataset '%s': %s is now %s, outside the data "
                             "directory %s", ds, files[i], real, j->data);
        if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode))
            return qt_errorf(err, QT_EINVAL, -1, "dataset '%s': %s is not a file", ds, files[i]);
        if (access(real, R_OK) != 0)
            return qt_errorf(err, QT_EINVAL, -1, "dataset '%s': %s cannot be read: %s", ds,
                             files[i], strerror(errno));
    }
    reg r = { 0, "", NULL };
    qt_error e2;
    int rc = qt_store_dataset_find(st, ds, reg_cb, &r, &e2);
    if (rc && rc != QT_ENOENT)
        qd_log(QT_LOG_WARN, "dataset '%s': its registration cannot be read (%s): its files "
               "are checked without their registered content hash", ds, e2.text);
    int compare = r.found && same_data(spec, &r);
    json_decref(r.src);
    qt_dataset *tr = NULL, *te = NULL;
    char hash[40];
    if ((rc = qt_job_dataset(spec, QT_SPLIT_FULLTRAIN, &tr, &e2)) ||
        (d->test_images[0] && (rc = qt_job_dataset(spec, QT_SPLIT_TEST, &te, &e2)))) {
        /* (never QT_EIO: that would wait for the store as a full disk) */
        rc = qt_errorf(err, rc == QT_ENOMEM || rc == QT_ENOENT ? rc : QT_EINVAL, -1,
                       "dataset '%s': %s", ds, e2.text);
        goto out;
    }
    int s1[3], s2[3];
    qt_dataset_shape(tr, s1);
    if (te) {
        qt_dataset_shape(te, s2);
        if (memcmp(s1, s2, sizeof s1)) {
            rc = qt_errorf(err, QT_EINVAL, -1, "dataset '%s': %s: images of %dx%dx%d, but the "
                           "training images are %dx%dx%d", ds, d->test_images, s2[0], s2[1],
                           s2[2], s1[0], s1[1], s1[2]);
            goto out;
        }
    }
    snprintf(hash, sizeof hash, "%016llx%016llx", (unsigned long long)qt_dataset_hash(tr),
             te ? (unsigned long long)qt_dataset_hash(te) : 0ull);
    if (compare && strncmp(hash, r.hash, 16) != 0)
        rc = qt_errorf(err, QT_EINVAL, -1, "dataset '%s': %s or %s changed since it was "
                       "registered (its content hash differs)", ds, d->train_images,
                       d->train_labels);
    else if (compare && strcmp(hash + 16, r.hash + 16) != 0)
        rc = qt_errorf(err, QT_EINVAL, -1, "dataset '%s': %s or %s changed since it was "
                       "registered (its content hash differs)", ds, d->test_images,
                       d->test_labels);
out:
    qt_dataset_free(tr);
    qt_dataset_free(te);
    return rc;
}

/* run one job on this thread's store connection */
static void run_one(qd_jobs *j, qt_store **st, qd_job *x)
{
    qt_error err;
    qt_job_spec spec;
    qt_run_out out;
    int rc;
    memset(&spec, 0, sizeof spec);
    memset(&out, 0, sizeof out);
    if (!*st && (rc = qt_store_open(j->db, 0, st, &err))) {
        qd_log(QT_LOG_ERROR, "job %lld: cannot open the store: %s", (long long)x->id, err.text);
        out.rc = rc;
        out.err = err;
        goto end;
    }
    if (x->retry) {             /* still paused? (not cancelled or resumed meanwhile) */
        qt_store_job info;
        memset(&info, 0, sizeof info);
        rc = qt_store_job_get(*st, x->id, &info, &err);
        /* paused, or left running when even that could not be written */
        int paused = !rc && (info.state == QT_JOB_PAUSED || info.state == QT_JOB_RUNNING);
        qt_store_job_clear(&info);
        if (!paused) {
            pthread_mutex_lock(&j->mu);
            unlink_job(j, x);
            pthread_mutex_unlock(&j->mu);
            free_job(x);
            return;
        }
        qd_log(QT_LOG_INFO, "job %lld: trying again after the store's failure", (long long)x->id);
    }
    if ((rc = qt_store_job_spec(*st, x->id, &spec, &err))) {
        qd_log(QT_LOG_ERROR, "job %lld: %s", (long long)x->id, err.text);
        out.rc = rc;
        out.err = err;
        qt_error e2;
        if (rc != QT_ENOENT && !qt_store_job_set_state(*st, x->id, QT_JOB_FAILED, err.text, &e2)) {
            out.recorded = 1;
            out.state = QT_JOB_FAILED;
        }
        goto end;
    }
    if (x->recheck && spec.has_data && (rc = recheck_data(j, *st, &spec, &err))) {
        /* recorded as a run that failed at set-up (as qt_run_job records
         * one): running, then failed with the cause */
        qt_error e2;
        qd_log(QT_LOG_ERROR, "job %lld: not resumed: %s", (long long)x->id, err.text);
        out.rc = rc;
        out.err = err;
        out.stage = QT_RUN_SETUP;
        if (!qt_store_job_set_state(*st, x->id, QT_JOB_RUNNING, NULL, &e2) &&
            !qt_store_job_set_state(*st, x->id, QT_JOB_FAILED, err.text, &e2)) {
            out.recorded = 1;
            out.state = QT_JOB_FAILED;
        } else {
            qd_log(QT_LOG_ERROR, "job %lld: %s", (long long)x->id, e2.text);
        }
        qt_job_clear(&spec);
        goto end;
    }
    if (x->recheck && spec.has_data)
        qd_log(QT_LOG_INFO, "job %lld: the files of dataset '%s' checked again", (long long)x->id,
               spec.dataset);
    run_ctx ctx = { j, x };
    qt_run_hooks h = { .log = run_log, .started = run_started, .progress = run_progress,
                       .user = &ctx };
    pthread_mutex_lock(&j->mu);
    x->started = wall();
    j->runs++;
    pthread_mutex_unlock(&j->mu);
    qd_log(QT_LOG_INFO, "job %lld: running (%s, %s)", (long long)x->id, spec.model,
           spec.strategy);
    qt_run_job(&spec, *st, x->id, x->ctl, &h, &out);
    qt_job_clear(&spec);
    qd_log(out.rc && out.rc != QT_ECANCEL ? QT_LOG_WARN : QT_LOG_INFO,
           "job %lld: %s after %d evaluations (%d computed, %d from the store)%s%s",
           (long long)x->id, out.recorded ? qt_job_state_name(out.state) : "NOT recorded",
           out.evals, out.computed, out.reused, out.rc ? ": " : "", out.rc ? out.err.text : "");
end:;
    json_t *p = json_object();
    json_object_set_new(p, "job", json_integer(x->id));
    json_object_set_new(p, "state", json_string(out.recorded ? qt_job_state_name(out.state)
                                                              : "unrecorded"));
    json_object_set_new(p, "evals", json_integer(out.evals));
    json_object_set_new(p, "computed", json_integer(out.computed));
    json_object_set_new(p, "reused", json_integer(out.reused));
    json_object_set_new(p, "feasible", json_boolean(out.have_best && out.feasible));
    if (out.have_best) {
        json_object_set_new(p, "cost", num_or_null(out.best.cost));
        json_object_set_new(p, "compression", num_or_null(out.best.compression));
        json_object_set_new(p, "top1", num_or_null(out.best.top1));
    }
    if (out.rc && out.rc != QT_ECANCEL) json_object_set_new(p, "error", json_string(out.err.text));
    int storage = (out.rc == QT_EFULL || out.rc == QT_EIO) &&
                  (!out.recorded || out.state == QT_JOB_PAUSED);
    pthread_mutex_lock(&j->mu);
    unlink_job(j, x);
    if (out.state == QT_JOB_DONE) j->done++;
    else if (out.rc && out.rc != QT_ECANCEL) j->failed++;
    if (storage && j->have_timer && !j->stopping) {
        if (j->n_retry == j->cap_retry) {
            int cap = j->cap_retry ? 2 * j->cap_retry : 8;
            struct retry *r = realloc(j->retry, (size_t)cap * sizeof *r);
            if (r) { j->retry = r; j->cap_retry = cap; }
        }
        if (j->n_retry < j->cap_retry) {
            j->retry[j->n_retry].id = x->id;
            snprintf(j->retry[j->n_retry].why, sizeof j->retry->why, "%s", out.err.text);
            j->n_retry++;
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (storage && j->have_timer && !x->retry)
        qd_log(QT_LOG_WARN, "job %lld: paused until the store can write again; trying every "
               "%.3g s", (long long)x->id, (double)uv_timer_get_repeat(&j->timer) / 1000.0);
    push_event(j, x->id, p, 1);
    free_job(x);
}

static void *runner(void *arg)
{
    qd_jobs *j = arg;
    qt_store *st = NULL;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        qd_job *x = NULL;
        while (!j->stopping) {
            for (x = j->list; x && x->running; x = x->next) {}
            if (x) break;
            pthread_cond_wait(&j->cv, &j->mu);
        }
        if (j->stopping) { pthread_mutex_unlock(&j->mu); break; }
        x->running = 1;
        pthread_mutex_unlock(&j->mu);
        run_one(j, &st, x);
    }
    qt_store_close(st);
    pthread_mutex_lock(&j->mu);
    int last = --j->alive == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) push_event(j, 0, NULL, 1);
    return NULL;
}

/* ---- the public calls ---- */

/* the loop thread: queue the jobs the store stopped again */
static void on_retry(uv_timer_t *t)
{
    qd_jobs *j = t->data;
    int64_t ids[64];
    int n = 0;
    pthread_mutex_lock(&j->mu);
    while (n < 64 && j->n_retry > 0) ids[n++] = j->retry[--j->n_retry].id;
    pthread_mutex_unlock(&j->mu);
    for (int i = n - 1; i >= 0; i--) {
        qd_job *x = calloc(1, sizeof *x);
        if (!x || !(x->ctl = qt_run_ctl_new())) { free(x); continue; }
        x->id = ids[i];
        x->retry = 1;
        pthread_mutex_lock(&j->mu);
        int ok = !j->stopping && !find(j, x->id);
        if (ok) {
            qd_job **p = &j->list;
            while (*p) p = &(*p)->next;
            *p = x;
            j->retries++;
            pthread_cond_signal(&j->cv);
        }
        pthread_mutex_unlock(&j->mu);
        if (!ok) free_job(x);
    }
}

int qd_jobs_new(uv_loop_t *loop, const char *db, const char *data, int slots,
                double storage_retry, qd_job_event_cb cb, void *user, qd_jobs **out,
                qt_error *err)
{
    qd_jobs *j = calloc(1, sizeof *j);
    if (!j || !(j->threads = calloc((size_t)slots, sizeof *j->threads))) {
        free(j);
        return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    snprintf(j->db, sizeof j->db, "%s", db);
    snprintf(j->data, sizeof j->data, "%s", data);
    j->cb = cb;
    j->user = user;
    uv_async_init(loop, &j->async, on_async);
    j->async.data = j;
    if (storage_retry > 0) {
        uint64_t ms = (uint64_t)(storage_retry * 1000.0);
        uv_timer_init(loop, &j->timer);
        j->timer.data = j;
        uv_timer_start(&j->timer, on_retry, ms ? ms : 1, ms ? ms : 1);
        uv_unref((uv_handle_t *)&j->timer);
        j->have_timer = 1;
    }
    for (int i = 0; i < slots; i++) {
        if (pthread_create(&j->threads[i], NULL, runner, j) != 0) break;
        j->n_threads++;
    }
    j->alive = j->n_threads;
    if (j->n_threads == 0) {
        uv_close((uv_handle_t *)&j->async, NULL);
        return qt_errorf(err, QT_ENOMEM, -1, "cannot start a runner thread");
    }
    *out = j;
    return QT_OK;
}

void qd_jobs_free(qd_jobs *j)
{
    if (!j) return;
    for (int i = 0; i < j->n_threads; i++) pthread_join(j->threads[i], NULL);
    while (j->list) { qd_job *x = j->list; j->list = x->next; free_job(x); }
    while (j->ev_head) {
        qd_event *e = j->ev_head;
        j->ev_head = e->next;
        json_decref(e->params);
        free(e);
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->retry);
    free(j->threads);
    free(j);
}

int qd_jobs_enqueue(qd_jobs *j, int64_t id, int recheck)
{
    qd_job *x = calloc(1, sizeof *x);
    if (!x || !(x->ctl = qt_run_ctl_new())) { free(x); return QT_ENOMEM; }
    x->id = id;
    x->recheck = recheck;
    pthread_mutex_lock(&j->mu);
    int rc = j->stopping ? QT_EBUSY : find(j, id) ? QT_EINVAL : QT_OK;
    if (rc == QT_OK) {
        qd_job **p = &j->list;
        while (*p) p = &(*p)->next;
        *p = x;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    if (rc) free_job(x);
    return rc;
}

int qd_jobs_stop(qd_jobs *j, int64_t id, qt_run_stop why)
{
    int res = 0;
    qd_job *drop = NULL;
    pthread_mutex_lock(&j->mu);
    qd_job *x = find(j, id);
    if (x && !x->running) {
        unlink_job(j, x);
        drop = x;
        res = 1;
    } else if (x) {
        if (!x->stop) x->stop = why;
        qt_run_ctl_stop(x->ctl, why);
        res = 2;
    }
    pthread_mutex_unlock(&j->mu);
    if (drop) {
        /* a queued job never ran: its end, for whoever subscribed */
        push_event(j, id, json_pack("{s:I, s:s, s:i, s:i}", "job", (json_int_t)id, "state",
                                    why == QT_STOP_PAUSE ? "paused" : "cancelled", "evals", 0,
                                    "computed", 0), 1);
        free_job(drop);
    }
    return res;
}

json_t *qd_jobs_live(qd_jobs *j, int64_t id)
{
    pthread_mutex_lock(&j->mu);
    qd_job *x = find(j, id);
    json_t *o = x ? live_json(x) : NULL;
    pthread_mutex_unlock(&j->mu);
    return o;
}

int qd_jobs_waiting(qd_jobs *j, int64_t id, char *why, size_t size)
{
    int found = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_retry && !found; i++)
        if (j->retry[i].id == id) {
            found = 1;
            snprintf(why, size, "%s", j->retry[i].why);
        }
    pthread_mutex_unlock(&j->mu);
    return found;
}

json_t *qd_jobs_stats(qd_jobs *j)
{
    int queued = 0, running = 0;
    pthread_mutex_lock(&j->mu);
    for (qd_job *x = j->list; x; x = x->next) { running += x->running; queued += !x->running; }
    json_t *o = json_pack("{s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:I}", "slots",
                          j->n_threads, "running", running, "queued", queued, "runs",
                          (json_int_t)j->runs, "done", (json_int_t)j->done, "failed",
                          (json_int_t)j->failed, "computed", (json_int_t)j->computed,
                          "cached", (json_int_t)j->cached, "storage_waiting", j->n_retry,
                          "storage_retries", (json_int_t)j->retries);
    pthread_mutex_unlock(&j->mu);
    return o;
}

void qd_jobs_shutdown(qd_jobs *j)
{
    if (j->have_timer && !uv_is_closing((uv_handle_t *)&j->timer))
        uv_close((uv_handle_t *)&j->timer, NULL);   /* before the server's close_all */
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    for (qd_job *x = j->list; x; x = x->next)
        if (x->running) {
            if (!x->stop) x->stop = QT_STOP_SHUTDOWN;
            qt_run_ctl_stop(x->ctl, QT_STOP_SHUTDOWN);
        }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* the async handle is closed with the loop's other handles (uv_walk) */
