/*
 * store.h -- qtune's persistence: one SQLite file holding models, datasets,
 * jobs, every evaluation ever measured and what happened to each job.
 *
 *   qt_store *st;
 *   qt_error err;
 *   int64_t job;
 *   qt_store_open("qtune.db", QT_STORE_CREATE, &st, &err);
 *   qt_store_job_new(st, &spec, &job, &err);                // state "queued"
 *   qt_store_cache *sc;
 *   qt_store_cache_new(st, job, &sc, &err);
 *   qt_store_job_set_state(st, job, QT_JOB_RUNNING, NULL, &err);
 *   qt_search_new(&spec, qt_store_cache_hooks(sc), &s, &err);
 *   qt_store_cache_attach(sc, s);
 *   qt_search_run(s, NULL, NULL, &err);    // each evaluation committed when
 *                                          // the search reports it; stored
 *                                          // ones answered from the store
 *   qt_store_job_finish(st, job, answer_json, &err);        // state "done"
 *
 * Resume is replay: to resume a job, run its stored spec again from the
 * start with the store as the search's cache (qt_store_cache). Every
 * evaluation the store has is answered from it, only the missing ones are
 * computed, and the job ends where an uninterrupted run would have. There
 * is no other checkpoint.
 *
 * Evaluations are content-addressed: the key is the search's 64-hex-digit
 * hash of model, data, configuration and settings (tuner.h), unique in the
 * store, so an evaluation one job measured serves every other job that asks
 * for the same key. A job's history is the list of evaluations it computed
 * or reused, in the order it obtained them.
 *
 * Ownership: qt_store_open and qt_store_cache_new give new objects to
 * release with qt_store_close / qt_store_cache_free. Strings and structs
 * passed to callbacks are borrowed for the duration of the call. Functions
 * that hand back allocated memory say so (qt_store_job_clear,
 * qt_store_job_list_free, free()).
 *
 * Errors: a qt_rc with the caller's qt_error (which may be NULL) naming the
 * file and the cause. QT_ECORRUPT: not an SQLite file, a foreign SQLite
 * file, or a damaged one; QT_ENOTSUP: written by a newer qtune (or an
 * older schema in a file that cannot be written to upgrade it); QT_EFULL:
 * the disk (or the file size limit) is full; QT_EIO: another I/O failure or
 * a read-only file; QT_EBUSY: another process holds the database past the
 * busy timeout; QT_ENOENT: no such job, evaluation or file; QT_EINVAL: a
 * bad argument or state change. A failed write changes nothing: what was
 * stored before is kept, and the same store accepts writes again once the
 * cause is gone.
 *
 * Threads: a qt_store (and a qt_store_cache using it) is used by one
 * thread at a time. The cache hooks are called by the thread that runs
 * qt_search_run, never by the search's workers. Several processes may open
 * the same file (WAL mode, a busy timeout); each write is one transaction.
 */
#ifndef QT_STORE_H
#define QT_STORE_H

#include "tuner.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* PRAGMA application_id of a qtune database ("qtDB"): any other SQLite
 * file is refused. */
#define QT_STORE_APP_ID  0x71744442
/* PRAGMA user_version this code writes: 1 the first schema; 2 adds the
 * job_events table and the indexes for cross-job and Pareto queries; 3
 * marks results measured on a subset of the split (qt_result.subset: never
 * on a front); 4 adds the registered_datasets table (datasets by name and
 * their files, qt_store_dataset_register). Older databases are upgraded on
 * open (one transaction per step). */
#define QT_STORE_SCHEMA  4

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */
/* ------------------------------------------------------------------------ */

enum {
    QT_STORE_CREATE   = 1 << 0,  /* create the file when it does not exist */
    QT_STORE_READONLY = 1 << 1,  /* never write (an older schema is then
                                    QT_ENOTSUP: upgrading needs a write) */
    QT_STORE_NOSYNC   = 1 << 2   /* synchronous=NORMAL: a commit survives a
                                    crash of the process but may be lost in
                                    a power failure (bulk loads, tests). The
                                    default, FULL, survives both. */
};

typedef struct qt_store qt_store;

/* Open (or, with QT_STORE_CREATE, create) the database at path. Before
 * anything is written the file is checked: an existing file that is not
 * SQLite, a SQLite file of another application, a damaged one or one from
 * a newer qtune is refused and left as it was. New object. */
int  qt_store_open(const char *path, int flags, qt_store **out, qt_error *err);
/* Close; NULL is a no-op. Every committed write is already on disk. */
void qt_store_close(qt_store *st);

const char *qt_store_path(const qt_store *st);              /* borrowed */
int         qt_store_schema(const qt_store *st);            /* QT_STORE_SCHEMA */
/* The name written as an evaluation's worker (default "host:pid"). */
void        qt_store_set_worker(qt_store *st, const char *name);

/* Group writes into one transaction (bulk loads): qt_store_begin, any
 * writes, then qt_store_commit, or qt_store_rollback to drop them. Without
 * it every write function commits on its own. Not nestable. */
int  qt_store_begin(qt_store *st, qt_error *err);
int  qt_store_commit(qt_store *st, qt_error *err);
void qt_store_rollback(qt_store *st);

/* ------------------------------------------------------------------------ */
/* Models and datasets                                                       */
/* ------------------------------------------------------------------------ */

/* Record a model (or dataset) by its content hash (any non-empty string,
 * hex by convention); an existing hash keeps its row and gets the new name,
 * and the new path and summary unless they are NULL. *id is its row id. */
int qt_store_model_put(qt_store *st, const char *name, const char *path, const char *hash,
                       const char *summary_json, int64_t *id, qt_error *err);
int qt_store_dataset_put(qt_store *st, const char *name, const char *hash,
                         const char *summary_json, int64_t *id, qt_error *err);

/* A model or a registered dataset, as listed (borrowed by callbacks). */
typedef struct qt_store_named {
    int64_t     id;
    const char *name;
    const char *path;          /* a model's file, or NULL */
    const char *hash;
    const char *summary_json;  /* or NULL */
    const char *source_json;   /* a registered dataset's files (a job's "data"); else NULL */
    double      created, updated;   /* Unix seconds */
} qt_store_named;

/* a non-zero return stops a listing and is returned */
typedef int (*qt_store_named_cb)(void *user, const qt_store_named *m);

/* Every recorded model (qt_store_model_put), by id. */
int qt_store_model_list(qt_store *st, qt_store_named_cb cb, void *user, qt_error *err);

/* Register a dataset by name: its content hash, where its files are and how
 * they are normalised (source_json: the job's "data" object, tuner/job.c)
 * and a summary (may be NULL). A name registered before is replaced (its
 * id kept). These are the datasets jobs name; the datasets table of
 * qt_store_dataset_put records the splits runs used, by content. */
int qt_store_dataset_register(qt_store *st, const char *name, const char *hash,
                              const char *source_json, const char *summary_json, int64_t *id,
                              qt_error *err);
/* The registered datasets, by name. */
int qt_store_dataset_list(qt_store *st, qt_store_named_cb cb, void *user, qt_error *err);
/* The registered dataset of that name, given to cb; QT_ENOENT when none. */
int qt_store_dataset_find(qt_store *st, const char *name, qt_store_named_cb cb, void *user,
                          qt_error *err);

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */
/* ------------------------------------------------------------------------ */

/* Persisted as their names: never rename. */
typedef enum qt_job_state {
    QT_JOB_QUEUED    = 0,   /* stored, not started, or stopped cleanly to be resumed */
    QT_JOB_RUNNING   = 1,   /* started; still so after a crash (resume it) */
    QT_JOB_PAUSED    = 2,   /* stopped with a cause (disk full), resumable */
    QT_JOB_DONE      = 3,   /* finished: its answer is recorded */
    QT_JOB_FAILED    = 4,   /* stopped by an error (recorded) */
    QT_JOB_CANCELLED = 5,
    QT_JOB_STATE_COUNT
} qt_job_state;

const char *qt_job_state_name(qt_job_state s);            /* "running"; never NULL */
int         qt_job_state_parse(const char *name, qt_job_state *s);  /* QT_EINVAL */

/* What the store knows of a job. */
typedef struct qt_store_job {
    int64_t      id;
    int64_t      model_id, dataset_id;   /* 0: not recorded yet */
    qt_job_state state;
    double       created, started, updated, finished;  /* Unix seconds; 0: never */
    int          runs;          /* times it was started */
    int          interrupted;   /* starts that found it still running: the run
                                   before was killed or crashed */
    int          evals;         /* evaluations in its history */
    int          computed;      /* ... that it computed itself (the rest it
                                   reused from other jobs) */
    char         model[512];    /* the spec's model and strategy, for lists */
    char         strategy[32];
    char        *error;         /* owned; the last error, or NULL */
    char        *spec_json;     /* owned; the canonical spec (qt_job_to_json) */
    char        *answer_json;   /* owned; the completion record when done, else NULL */
} qt_store_job;

/* Free the strings of j (not j itself) and zero it. */
void qt_store_job_clear(qt_store_job *j);

/* Store a new job (state queued) from its spec, written as canonical JSON;
 * *id is its id (> 0). */
int qt_store_job_new(qt_store *st, const qt_job_spec *spec, int64_t *id, qt_error *err);
/* Replace a job's spec (resuming with other budgets or another strategy):
 * what it measured stays in its history and is reused where keys match. */
int qt_store_job_set_spec(qt_store *st, int64_t id, const qt_job_spec *spec, qt_error *err);
/* The job's spec, parsed (release with qt_job_clear). */
int qt_store_job_spec(qt_store *st, int64_t id, qt_job_spec *spec, qt_error *err);
int qt_store_job_set_model(qt_store *st, int64_t id, int64_t model_id, int64_t dataset_id,
                           qt_error *err);

/* Fill *out (release with qt_store_job_clear); QT_ENOENT for no such job. */
int qt_store_job_get(qt_store *st, int64_t id, qt_store_job *out, qt_error *err);
/* Every job, by id: a new array of *n jobs, released with
 * qt_store_job_list_free (also when *n is 0). */
int  qt_store_job_list(qt_store *st, qt_store_job **jobs, int *n, qt_error *err);
void qt_store_job_list_free(qt_store_job *jobs, int n);

/* Change a job's state, recording error (may be NULL) and a job event.
 *   running   from any state: from running it counts an interruption (the
 *             run before never ended); from done it reopens the job, whose
 *             answer is cleared until it finishes again;
 *   paused, failed, cancelled   from queued, running or paused;
 *   queued    from running only: a clean stop (the daemon shutting down)
 *             that the next start resumes, not counted as an interruption;
 *   done is QT_EINVAL (qt_store_job_finish records it). */
int qt_store_job_set_state(qt_store *st, int64_t id, qt_job_state state, const char *error,
                           qt_error *err);
/* The completion record: state done, the answer (JSON text) and the time,
 * in one transaction, so a job without it was never finished. Only from
 * running (QT_EINVAL otherwise). */
int qt_store_job_finish(qt_store *st, int64_t id, const char *answer_json, qt_error *err);

/* A job's events in order, e.g. "created", "running", "interrupted",
 * "paused", "done", "spec" (the spec was changed). */
typedef int (*qt_store_event_cb)(void *user, double at, const char *kind, const char *detail);
int qt_store_job_events(qt_store *st, int64_t id, qt_store_event_cb cb, void *user,
                        qt_error *err);

/* ------------------------------------------------------------------------ */
/* Evaluations                                                               */
/* ------------------------------------------------------------------------ */

/* One stored evaluation, as a job sees it (borrowed by callbacks). */
typedef struct qt_store_eval {
    int64_t     id;            /* the evaluation's row id */
    int64_t     job_id;        /* the job that computed it */
    int         seq;           /* its place in the job's history (1, 2, ...);
                                  0 outside a history */
    int         reused;        /* the job took it from the store instead of
                                  computing it */
    const char *key;           /* 64 hex digits */
    const char *config_json;   /* the candidate's canonical configuration */
    const char *reason;        /* why the strategy proposed it */
    const char *worker;        /* who computed it */
    double      created;       /* Unix seconds */
    qt_result   r;             /* seconds: its duration; cost and compression
                                  as the job sees them (in a history); cached:
                                  reused (in a history), else 1 */
} qt_store_eval;

typedef int (*qt_store_eval_cb)(void *user, const qt_store_eval *e);

/* Store one finished evaluation that job_id computed (committed before it
 * returns, unless inside qt_store_begin) and add it to the job's history.
 * r->cached is ignored. A key already stored keeps its first result (the
 * job's history gains it) unless that one failed for a passing reason
 * (out of memory, timeout, crash): then r replaces it. A failed result is
 * stored with its class and message. config_json and reason may be NULL.
 * Numbers come back bit for bit, but for NaN (any NaN) and -0 (as 0). */
int qt_store_eval_put(qt_store *st, int64_t job_id, const char *key, const char *config_json,
                      const char *reason, const qt_result *r, qt_error *err);
/* The stored result for key: QT_OK (r filled, r->cached = 1) or QT_ENOENT. */
int qt_store_eval_get(qt_store *st, const char *key, qt_result *r, qt_error *err);
/* The stored evaluation for key, given to cb (QT_ENOENT when none). */
int qt_store_eval_find(qt_store *st, const char *key, qt_store_eval_cb cb, void *user,
                       qt_error *err);

/* A job's history in order, one call of cb per evaluation; a non-zero
 * return from cb stops it and is returned. */
int qt_store_history(qt_store *st, int64_t job_id, qt_store_eval_cb cb, void *user,
                     qt_error *err);
/* A page of it: the evaluations at places offset+1 .. offset+limit of the
 * history (limit 0: to the end), in order. qt_store_job's evals is the
 * history's length. */
int qt_store_history_page(qt_store *st, int64_t job_id, int64_t offset, int64_t limit,
                          qt_store_eval_cb cb, void *user, qt_error *err);

/* ------------------------------------------------------------------------ */
/* The cache hooks of a search (tuner.h's qt_eval_cache)                     */
/* ------------------------------------------------------------------------ */

typedef struct qt_store_cache qt_store_cache;

/* Hooks through which a search of job_id asks the store before computing
 * and stores each evaluation it computes. lookup answers from the store
 * (every job's evaluations; results failed for a passing reason are not
 * reused) and adds a hit to the job's history; stored puts the
 * evaluation. New object; st must outlive it. */
int  qt_store_cache_new(qt_store *st, int64_t job_id, qt_store_cache **out, qt_error *err);
void qt_store_cache_free(qt_store_cache *c);
/* The hooks to pass to qt_search_new / qt_search_new_custom (borrowed). */
const qt_eval_cache *qt_store_cache_hooks(qt_store_cache *c);
/* Tie the hooks to the search they serve (NULL: untie). Hits then carry
 * this job's cost and compression (the key does not hold the cost
 * function), and the first failed write cancels the search, so that it
 * stops instead of computing what it cannot keep. */
void qt_store_cache_attach(qt_store_cache *c, qt_search *s);
/* What the hooks did: evaluations answered from the store, evaluations
 * stored, writes that failed. */
void qt_store_cache_counts(const qt_store_cache *c, int *reused, int *stored, int *failed);
/* The first failed write (QT_EFULL, QT_EIO, ...), with its message, or
 * QT_OK. */
int  qt_store_cache_error(const qt_store_cache *c, qt_error *err);

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

/* A point of a Pareto front. */
typedef struct qt_store_point {
    int64_t eval_id;
    char    key[65];
    double  cost;
    double  acc;      /* higher is better: top-1, top-5 or minus the loss */
} qt_store_point;

/* The Pareto front (lower cost, higher acc) of a job's history: its cost,
 * its metric; of points with acc >= acc_floor (-INFINITY: all). Failed and
 * early-stopped evaluations (metrics of part of the split) are left out.
 * Sorted by cost: a new array of *n points to free(). */
int qt_store_pareto_job(qt_store *st, int64_t job_id, double acc_floor, qt_store_point **front,
                        int *n, qt_error *err);
/* The same front as the evaluations themselves: cb gets each point (by
 * cost) with its evaluation as the job's history holds it (configuration,
 * reason, the job's cost and compression, metrics, seq), without reading
 * the rest of the history. */
typedef int (*qt_store_front_cb)(void *user, const qt_store_point *p, const qt_store_eval *e);
int qt_store_pareto_evals(qt_store *st, int64_t job_id, double acc_floor,
                          qt_store_front_cb cb, void *user, qt_error *err);
/* The same across every job of a model (model_id from qt_store_model_put),
 * each evaluation once, for a cost that is the same for every job: weight
 * bits, activation bits or bitops (QT_COST_WEIGHTED is QT_EINVAL). */
int qt_store_pareto_model(qt_store *st, int64_t model_id, qt_cost_kind cost, qt_metric metric,
                          double acc_floor, qt_store_point **front, int *n, qt_error *err);

typedef enum qt_store_format { QT_STORE_CSV = 0, QT_STORE_JSON = 1 } qt_store_format;

/* Write a job's history to out: CSV (a header row, RFC 4180 quoting) or a
 * JSON array of objects (the configuration as an object). Columns and
 * fields: seq, key, reused, reason, config, cost, compression, top1, top5,
 * loss, images, feasible, early, weight_bits, act_bits, bitops, seconds,
 * fail, error, worker, created; numbers to 17 digits, non-finite ones as
 * inf/nan (CSV) or null (JSON). QT_EIO if out fails. */
int qt_store_export(qt_store *st, int64_t job_id, qt_store_format fmt, FILE *out, qt_error *err);

/* Persisted fail classes by name: "nan", "nomem", "timeout", "crash",
 * "other" ("" for none). */
const char *qt_fail_class_name(qt_fail_class f);

#ifdef __cplusplus
}
#endif
#endif /* QT_STORE_H */
