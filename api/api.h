/*
 * api.h -- the api module's public header: running a tuning job (shared by
 * `qtune tune`, in-process, and the qtuned daemon), and talking to qtuned.
 *
 * Running a job:
 *
 *   qt_run_ctl *ctl = qt_run_ctl_new();
 *   qt_run_hooks h = { .log = my_log, .progress = my_progress, .user = me };
 *   qt_run_out out;
 *   qt_run_job(&spec, st, job_id, ctl, &h, &out);   // st may be NULL
 *   ... out.rc, out.state, out.evals, out.best ...
 *   qt_run_ctl_free(ctl);
 *
 * With a store, the run goes through it: every evaluation is stored as it
 * finishes, every evaluation the store already has is answered from it
 * (resume is replay), the job's state and its answer are recorded. Another
 * thread may stop the run at any time with qt_run_ctl_stop: the search
 * stops within a batch of images; what it finished is kept.
 *
 * Talking to qtuned (newline-delimited JSON-RPC 2.0, see api/methods.c for
 * the methods): qt_client_connect, qt_client_call, qt_client_read for the
 * notifications of job.subscribe, qt_client_close.
 *
 * Ownership: *_new gives an object to release with the matching *_free;
 * qt_client_call's *result is a new reference. Errors: a qt_rc and the
 * caller's qt_error.
 */
#ifndef QT_API_H
#define QT_API_H

#include "store.h"
#include "tuner.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QT_API_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Running a job                                                             */
/* ------------------------------------------------------------------------ */

/* Why a run was asked to stop. */
typedef enum qt_run_stop {
    QT_STOP_NONE     = 0,
    QT_STOP_CANCEL   = 1,   /* recorded as cancelled */
    QT_STOP_PAUSE    = 2,   /* recorded as paused: resumable */
    QT_STOP_SHUTDOWN = 3    /* left as running: resumed at the next start */
} qt_run_stop;

/* A stop flag one thread sets and a run reads (thread-safe). */
typedef struct qt_run_ctl qt_run_ctl;
qt_run_ctl *qt_run_ctl_new(void);                       /* NULL: out of memory */
void        qt_run_ctl_free(qt_run_ctl *c);
/* Ask the run to stop (the first reason wins); safe from any thread, also
 * before the run started or after it ended. */
void        qt_run_ctl_stop(qt_run_ctl *c, qt_run_stop why);
qt_run_stop qt_run_ctl_reason(qt_run_ctl *c);

/* Where a run ended. */
typedef enum qt_run_stage {
    QT_RUN_OK     = 0,   /* the search ran (out.rc: its outcome) */
    QT_RUN_SETUP  = 1,   /* the store, the model or the data could not be set up */
    QT_RUN_STORE  = 2,   /* the store could not keep an evaluation: paused */
    QT_RUN_RECORD = 3    /* the search ended but its record could not be written */
} qt_run_stage;

enum { QT_LOG_ERROR = 0, QT_LOG_WARN = 1, QT_LOG_INFO = 2, QT_LOG_DEBUG = 3 };

/* What a run did. */
typedef struct qt_run_out {
    int          rc;            /* QT_OK; QT_ECANCEL when stopped; or the error */
    qt_run_stage stage;
    qt_error     err;           /* rc's message */
    int          recorded;      /* the final state is in the store */
    qt_job_state state;         /* ... and it is this one */
    int          evals, computed;   /* evaluations, and those computed now */
    int          reused, stored;    /* answered from / written to the store */
    int          runs, interrupted; /* the store's counts of the job's starts */
    double       seconds;       /* the search's wall time */
    int          have_best;     /* best is set */
    int          feasible;      /* best meets the constraint */
    qt_result    best;          /* the answer (validation split) */
    int          have_test;     /* test and test_float are set */
    qt_result    test, test_float;  /* the answer and the float model on the test split */
    double       float_top1;    /* the float model's metric on the validation split */
    double       threshold;     /* the constraint's bound */
} qt_run_out;

/* The caller's hooks, all optional; called on the running thread. */
typedef struct qt_run_hooks {
    /* messages: level QT_LOG_*, text without a newline */
    void (*log)(void *user, int level, const char *msg);
    /* set up: model and data loaded, baseline measured */
    void (*started)(void *user, const qt_search *s);
    /* after each evaluation */
    qt_progress_cb progress;
    /* the search ended; s is still alive (its history, its best): called
     * before the outcome is recorded, unless the run stopped for the store
     * or at set-up */
    void (*finished)(void *user, qt_search *s, const qt_run_out *out);
    void *user;
} qt_run_hooks;

/* Run spec; with st (job: its id in st), through the store. ctl and h may
 * be NULL. Returns out->rc. With a store, the job is first marked running
 * (a job found running counts an interruption: its run before was
 * killed); at the end it is recorded done (with its answer), cancelled,
 * paused or failed, or, stopped for a shutdown, left running. */
int qt_run_job(const qt_job_spec *spec, qt_store *st, int64_t job, qt_run_ctl *ctl,
               const qt_run_hooks *h, qt_run_out *out);

/* The model's output is at least as wide as the dataset's classes:
 * QT_OK, else QT_EINVAL with a message naming the model (as given), its
 * output node and width, the dataset (as given: a name, a file) and its
 * class count. */
int qt_run_check_classes(const qt_graph *g, const char *model, int classes, const char *dataset,
                         qt_error *err);

/* The completion record of a search (JSON text: feasible, reason, config,
 * cost, compression, top1, images, test_top1, float_top1, threshold,
 * evaluations); new string, free(). best may be NULL. */
char *qt_run_answer(const qt_search *s, const qt_cand *best, const qt_result *r, int feasible,
                    const qt_result *test);

/* ------------------------------------------------------------------------ */
/* Where the daemon lives                                                    */
/* ------------------------------------------------------------------------ */

/* The default state directory: $QTUNE_STATE, else $XDG_STATE_HOME/qtune,
 * else $HOME/.local/state/qtune, else ./qtune-state. Writes at most n
 * bytes to out. */
void qt_api_default_state(char *out, size_t n);
/* The socket, database and lock file of a state directory. */
#define QT_API_SOCKET "qtuned.sock"
#define QT_API_DB     "qtune.db"
#define QT_API_LOCK   "qtune.db.lock"

/* ------------------------------------------------------------------------ */
/* JSON-RPC error codes                                                      */
/* ------------------------------------------------------------------------ */

#define QT_RPC_PARSE_ERROR      -32700   /* not JSON */
#define QT_RPC_INVALID_REQUEST  -32600   /* not a request (or too large) */
#define QT_RPC_NO_METHOD        -32601
#define QT_RPC_INVALID_PARAMS   -32602
#define QT_RPC_INTERNAL         -32603
#define QT_RPC_NOT_FOUND        -32001   /* no such job, model, file */
#define QT_RPC_STATE            -32002   /* not in that state (cancel a done job) */
#define QT_RPC_FORBIDDEN        -32003   /* a path outside the models directory */
#define QT_RPC_UNAUTHORIZED     -32004   /* TCP without the token */
#define QT_RPC_BUSY             -32005   /* shutting down, too many clients */
#define QT_RPC_UNSUPPORTED      -32006   /* not supported (yet) */
#define QT_RPC_IO               -32007   /* the disk: full, read-only, I/O */
#define QT_RPC_RATE_LIMITED     -32008   /* more requests than --rate/--burst allow
                                            this client: retry after the time the
                                            message gives (the connection stays) */

/* The JSON-RPC code for a qt_rc. */
int qt_rpc_code(int rc);

/* ------------------------------------------------------------------------ */
/* The client                                                                */
/* ------------------------------------------------------------------------ */

typedef struct qt_client qt_client;

/* Connect to a Unix socket path, or, when path is "tcp:HOST:PORT", to TCP
 * (then token, if not NULL, is sent with server.auth first). QT_ENOENT:
 * nothing listens there; QT_EIO: another failure. New object. */
int  qt_client_connect(const char *path, const char *token, qt_client **out, qt_error *err);
void qt_client_close(qt_client *c);
/* Seconds to wait for an answer (default 60; 0: forever). */
void qt_client_set_timeout(qt_client *c, double seconds);

/* Call method with params (borrowed; may be NULL) and wait for its answer;
 * notifications that arrive meanwhile are queued for qt_client_read.
 * QT_OK: *result is the result (new reference). Otherwise the daemon's
 * error: *code is its JSON-RPC code (0 when the connection failed) and
 * err its message. */
int  qt_client_call(qt_client *c, const char *method, json_t *params, json_t **result,
                    int *code, qt_error *err);
/* The next notification (method and params; new reference), waiting up to
 * timeout seconds (< 0: forever). QT_OK, QT_EBUSY (timed out) or QT_EIO
 * (the connection closed). */
int  qt_client_read(qt_client *c, double timeout, json_t **note, qt_error *err);

#ifdef __cplusplus
}
#endif
#endif /* QT_API_H */
