/*
 * daemon.h -- private to qtuned (api/): the modules of the daemon and what
 * they share. Not part of the api module's public header (api.h).
 *
 *   qtuned.c   settings (a table: flags and a JSON config file), the store
 *              lock, start-up (jobs to resume) and shutdown
 *   server.c   the libuv loop: listeners (Unix socket, loopback TCP),
 *              connections, request framing and bounds, dispatch through
 *              the method table, replies, subscriptions
 *   methods.c  the method table and the handlers
 *   jobs.c     the job manager: a queue, runner threads (api/runner.c),
 *              live progress handed to the loop through a uv_async_t
 *   log.c      levelled log lines to stderr or a file
 *
 * Threads: the loop thread owns connections, subscriptions and listeners.
 * Handlers flagged QD_POOL run on libuv's thread pool (uv_queue_work), with
 * the query store connection locked when flagged QD_STORE; their replies are
 * sent from the after-work callback on the loop thread. Jobs run on the job
 * manager's own threads, each with its own store connection.
 */
#ifndef QT_DAEMON_H
#define QT_DAEMON_H

#include "api.h"

#include <limits.h>
#include <pthread.h>
#include <uv.h>

/* ------------------------------------------------------------------------ */
/* Settings                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct qd_settings {
    char   state[PATH_MAX];      /* state directory */
    char   socket[PATH_MAX];     /* Unix socket ("" : state/qtuned.sock) */
    char   db[PATH_MAX];         /* database ("": state/qtune.db) */
    char   models[PATH_MAX];     /* the only directory models are read from */
    char   data[PATH_MAX];       /* the only directory dataset files are read from */
    char   config[PATH_MAX];     /* the config file read, or "" */
    int    tcp_port;             /* loopback TCP port; 0: none */
    char   tcp_host[64];         /* 127.0.0.1, ::1 or localhost */
    char   token_file[PATH_MAX]; /* the TCP bearer token's file */
    int    jobs;                 /* jobs run at once */
    double storage_retry;        /* seconds between retries of jobs the store stopped */
    int    max_request;          /* bytes of one request line */
    double request_timeout;      /* seconds to finish sending a request */
    int    max_clients;
    int    max_backlog;          /* bytes queued to a client that does not read */
    double rate;                 /* requests per second per client (0: no limit) */
    int    burst;                /* ... and at once above it (0: no limit) */
    int    max_evals;            /* eval.run running at once (each client: 1) */
    char   log_file[PATH_MAX];   /* "" : stderr */
    int    log_level;            /* QT_LOG_* */
} qd_settings;

/* ------------------------------------------------------------------------ */
/* Logging (log.c): thread-safe                                              */
/* ------------------------------------------------------------------------ */

int  qd_log_open(const char *file, int level, qt_error *err);
void qd_log_close(void);
void qd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *qd_log_level_name(int level);
int  qd_log_level_parse(const char *name);      /* -1: unknown */

/* ------------------------------------------------------------------------ */
/* The job manager (jobs.c)                                                  */
/* ------------------------------------------------------------------------ */

typedef struct qd_jobs qd_jobs;

/* Called on the loop thread for each event of a job: a progress or end
 * notification's params (borrowed), end = 1 for the last; and once with
 * job = 0 when every runner thread has ended after qd_jobs_shutdown. */
typedef void (*qd_job_event_cb)(void *user, int64_t job, json_t *params, int end);

/* storage_retry: seconds between attempts to continue jobs the store
 * stopped (full disk, I/O error); 0: never (job.resume does it). data:
 * the data directory (its real path), where a resumed job's dataset files
 * must still be. */
int  qd_jobs_new(uv_loop_t *loop, const char *db, const char *data, int slots,
                 double storage_retry, qd_job_event_cb cb, void *user, qd_jobs **out,
                 qt_error *err);
/* After the loop ended (and qd_jobs_shutdown's callback came). */
void qd_jobs_free(qd_jobs *j);
/* Queue a stored job (any thread). QT_EBUSY while shutting down; QT_EINVAL
 * if it is queued or running already. recheck: the job is resumed (at
 * start, or job.resume): before it runs, the files of its registered
 * dataset are checked again (jobs.c); a failure fails the job. */
int  qd_jobs_enqueue(qd_jobs *j, int64_t id, int recheck);
/* Stop an active job (any thread): 0 it is not active here; 1 it was
 * queued and is dropped (the caller records its state); 2 it runs and was
 * asked to stop (the runner records its state). */
int  qd_jobs_stop(qd_jobs *j, int64_t id, qt_run_stop why);
/* What an active job is doing (new object: state queued/running/pausing/
 * cancelling and live progress), or NULL when it is not active here. */
json_t *qd_jobs_live(qd_jobs *j, int64_t id);
/* 1 when the store stopped the job's last run (full disk, I/O error) and
 * the daemon waits to try again; why: the store's message. */
int  qd_jobs_waiting(qd_jobs *j, int64_t id, char *why, size_t size);
/* Counts for server.stats (new object). */
json_t *qd_jobs_stats(qd_jobs *j);
/* Stop every run (queued again in the store, resumed at the next start);
 * the event callback gets job = 0 once all runner threads ended. On the
 * loop thread (it closes the storage retry timer). */
void qd_jobs_shutdown(qd_jobs *j);

/* ------------------------------------------------------------------------ */
/* The server (server.c) and the method table (methods.c)                    */
/* ------------------------------------------------------------------------ */

typedef struct qd_server qd_server;
typedef struct qd_conn qd_conn;

struct qd_server {
    uv_loop_t      *loop;
    qd_settings     set;
    qd_jobs        *jobs;
    qt_store       *qstore;        /* the query connection, pool threads only */
    pthread_mutex_t qmu;           /* guards qstore */
    char            token[256];    /* TCP bearer token ("" : no TCP) */
    char            models_real[PATH_MAX];   /* realpath of set.models */
    char            data_real[PATH_MAX];     /* realpath of set.data */
    double          started;       /* Unix seconds */
    int             stopping;      /* shutting down: no new work */
    int             exit_code;
    /* listeners and signals */
    uv_pipe_t       unix_srv;
    uv_tcp_t        tcp_srv;
    int             have_unix, have_tcp;
    uv_signal_t     sig_term, sig_int;
    /* connections */
    qd_conn        *conns;         /* a list */
    int             n_conns;
    /* subscriptions: (connection, job) */
    struct qd_sub  *subs;
    /* eval.run calls running (loop thread): at most set.max_evals */
    int             n_evals;
    /* counters (loop thread) */
    uint64_t        n_accepted, n_requests, n_errors, n_rejected;
    uint64_t        n_rate_limited;  /* requests refused by --rate/--burst */
    uint64_t        n_evals_busy;    /* eval.run refused by --max-evals (or one per client) */
};

/* One call of a method. */
typedef struct qd_call {
    qd_server  *srv;
    qd_conn    *conn;        /* the caller (loop-thread handlers only) */
    json_t     *id;          /* the request's id (own reference); NULL: a notification */
    json_t     *params;      /* an object, validated against the method (own reference) */
    const struct qd_method *m;
    /* the answer, set by the handler */
    json_t     *result;      /* own reference */
    int         code;        /* JSON-RPC error code; 0: result */
    char        msg[512];
    uv_work_t   work;
    int64_t     job;         /* scratch for handlers: a job id */
    int         flag;        /* scratch */
    json_t     *notes;       /* notifications to send after the answer (an array,
                                own reference), or NULL */
    struct qd_batch *batch;  /* the batch the request is part of, or NULL */
    int         eval_slot;   /* counted in srv->n_evals and its connection's (QD_EVAL) */
} qd_call;

/* Parameter types (a mask). */
enum { P_INT = 1, P_NUM = 2, P_STR = 4, P_OBJ = 8, P_ARR = 16, P_BOOL = 32, P_ID = 64 };

typedef struct qd_param {
    const char *name;
    int         types;       /* P_*; P_ID: an integer >= 1 */
    int         required;
} qd_param;

enum {
    QD_POOL   = 1,   /* run on the thread pool, not on the loop */
    QD_STORE  = 2,   /* ... holding the query store (implies QD_POOL) */
    QD_NOAUTH = 4,   /* allowed before a TCP client authenticated */
    QD_EVAL   = 8    /* an evaluation: at most set.max_evals at once, one per client */
};

typedef struct qd_method {
    const char     *name;
    int           (*fn)(qd_call *c);      /* 0, or -1 with c->code set (qd_fail) */
    void          (*after)(qd_call *c);   /* on the loop thread after a pool fn (optional) */
    int             flags;
    const qd_param *params;               /* terminated by a NULL name */
    const char     *help;
} qd_method;

const qd_method *qd_method_find(const char *name);
const qd_method *qd_methods(int *n);

/* Set the call's error: returns -1 so handlers can `return qd_fail(...)`. */
int qd_fail(qd_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same from a qt_rc and its message. */
int qd_fail_rc(qd_call *c, int rc, const char *msg);

/* server.c, for handlers on the loop thread */
int  qd_server_subscribe(qd_server *srv, qd_conn *conn, int64_t job);
int  qd_server_is_tcp(const qd_conn *conn);
void qd_server_set_authed(qd_conn *conn);
void qd_server_stop(qd_server *srv);          /* begin the shutdown */
json_t *qd_server_stats(qd_server *srv);      /* new object */

int  qd_server_start(qd_server *srv, qt_error *err);   /* listen */
void qd_server_job_event(void *srv, int64_t job, json_t *params, int end);

#endif /* QT_DAEMON_H */
