/*
 * server.c -- qtuned's event loop side: listeners, connections, request
 * framing, dispatch through the method table, replies and subscriptions.
 *
 * A request is one line of at most set.max_request bytes. A longer one is
 * answered with an error and the connection closed (there is no way to
 * find where it ends); so is a request left unfinished for
 * set.request_timeout seconds (a slow or stuck client), and a client
 * that lets more than set.max_backlog bytes of answers pile up unread.
 * Every other bad request gets a JSON-RPC error and the connection stays.
 *
 * A batch (a JSON array of requests, at most MAX_BATCH) is answered with
 * one array of the answers, in the order they finish; notifications get
 * none, and a batch of notifications only gets no answer at all. Each
 * element is checked and run on its own, as a request of its own line
 * would be; an empty array is one Invalid Request error.
 *
 * A connection lives until its handle and timer are closed and no pool
 * work refers to it (refs); answers for a connection that has gone are
 * dropped.
 *
 * Limits. Each connection has a token bucket of set.burst requests,
 * refilled at set.rate per second: every request (each of a batch) takes
 * one, and a request that finds none is answered QT_RPC_RATE_LIMITED with
 * the time to wait; the connection stays and nobody else is slowed
 * (rate or burst 0: no limit). An eval.run (QD_EVAL) takes one of
 * set.max_evals slots of the daemon, and a connection holds at most one:
 * over either, the call is refused QT_RPC_BUSY at once (nothing queues).
 * The slot is given back in the after-work callback, which runs for every
 * call queued: success, error, cancelled at shutdown, or its client gone.
 */
#include "daemon.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_PENDING 16      /* pool calls in flight per connection */
#define MAX_BATCH   256     /* requests in one batch */

/* the answers of a batch, sent when its last call ends */
typedef struct qd_batch {
    qd_conn *conn;
    json_t  *answers;        /* an array */
    int      left;           /* calls not answered yet */
    int      close_auth;     /* too many failed authentications: close after */
} qd_batch;

struct qd_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_pipe_t   pipe;
        uv_tcp_t    tcp;
    } h;
    uv_timer_t  timer;       /* request_timeout for a partial request */
    qd_server  *srv;
    uint64_t    no;          /* for the log */
    int         tcp, authed, bad_auth;
    int         refs;        /* handle + timer + pool calls */
    int         pending;     /* pool calls in flight */
    int         closing;     /* no more reading or answering */
    int         closed;      /* the handles are closing */
    int         reading;
    int         evals;       /* eval.run calls in flight (0 or 1) */
    double      tokens;      /* the rate limit's bucket: requests it may send now */
    uint64_t    refilled;    /* ... as of this loop time (ms) */
    char       *buf;         /* bytes of unfinished requests */
    size_t      len, cap;
    qd_conn    *next;
};

typedef struct qd_sub {
    qd_conn       *conn;
    int64_t        job;
    struct qd_sub *next;
} qd_sub;

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Connection lifetime                                                       */
/* ------------------------------------------------------------------------ */

static void conn_unref(qd_conn *c)
{
    if (--c->refs > 0) return;
    qd_server *srv = c->srv;
    for (qd_conn **p = &srv->conns; *p; p = &(*p)->next)
        if (*p == c) { *p = c->next; break; }
    srv->n_conns--;
    free(c->buf);
    free(c);
}

static void on_closed(uv_handle_t *h) { conn_unref(h->data); }

static void drop_subs(qd_server *srv, qd_conn *c)
{
    for (qd_sub **p = &srv->subs; *p;) {
        if ((*p)->conn == c) { qd_sub *s = *p; *p = s->next; free(s); }
        else p = &(*p)->next;
    }
}

/* close now: pending writes are dropped */
static void conn_close(qd_conn *c, const char *why)
{
    if (c->closed) return;
    c->closed = 1;
    c->closing = 1;
    if (why) qd_log(QT_LOG_INFO, "client %llu: closed: %s", (unsigned long long)c->no, why);
    drop_subs(c->srv, c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close(&c->h.handle, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    qd_conn *c = req->data;
    free(req);
    conn_close(c, NULL);
    conn_unref(c);
}

/* close once what was written has been sent */
static void conn_close_after_write(qd_conn *c, const char *why)
{
    if (c->closing) return;
    if (why) qd_log(QT_LOG_INFO, "client %llu: closing: %s", (unsigned long long)c->no, why);
    uv_read_stop(&c->h.stream);
    c->reading = 0;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, &c->h.stream, on_shutdown) != 0) {
        free(req);
        conn_close(c, NULL);
        return;
    }
    req->data = c;
    c->refs++;
    drop_subs(c->srv, c);
    uv_timer_stop(&c->timer);
    c->closing = 1;           /* reading and answering stopped, handles still open */
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct wreq { uv_write_t req; size_t len; char data[]; } wreq;

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    qd_conn *c = req->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closing)
        conn_close(c, uv_strerror(status));
    conn_unref(c);
}

/* send one JSON message and a newline (steals j) */
static void send_json(qd_conn *c, json_t *j)
{
    if (c->closing) { json_decref(j); return; }
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!txt) { conn_close(c, "out of memory"); return; }
    size_t n = strlen(txt);
    wreq *w = malloc(sizeof *w + n + 1);
    if (!w) { free(txt); conn_close(c, "out of memory"); return; }
    memcpy(w->data, txt, n);
    w->data[n] = '\n';
    w->len = n + 1;
    free(txt);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    w->req.data = c;
    if (uv_write(&w->req, &c->h.stream, &b, 1, on_written) != 0) {
        free(w);
        conn_close(c, "write failed");
        return;
    }
    c->refs++;
    if (uv_stream_get_write_queue_size(&c->h.stream) > (size_t)c->srv->set.max_backlog) {
        qd_log(QT_LOG_WARN, "client %llu: more than %d bytes unread", (unsigned long long)c->no,
               c->srv->set.max_backlog);
        conn_close(c, "the client does not read its answers");
    }
}

static json_t *error_obj(int code, const char *msg)
{
    return json_pack("{s:i, s:s}", "code", code, "message", msg);
}

static json_t *error_msg(qd_conn *c, json_t *id, int code, const char *msg)
{
    c->srv->n_errors++;
    return json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "error", error_obj(code, msg),
                     "id", id ? id : json_null());
}

static void send_error(qd_conn *c, json_t *id, int code, const char *msg)
{
    send_json(c, error_msg(c, id, code, msg));
}

/* an answer: sent, or kept for its batch (steals r) */
static void answer(qd_conn *c, qd_batch *b, json_t *r)
{
    if (!r) return;
    if (b) json_array_append_new(b->answers, r);
    else send_json(c, r);
}

/* the answer of a call (the call keeps its references), then its
 * notifications */
static void send_answer(qd_call *k)
{
    if (k->id) {                        /* a notification gets no answer */
        if (k->code)
            answer(k->conn, k->batch, error_msg(k->conn, k->id, k->code, k->msg));
        else
            answer(k->conn, k->batch, json_pack("{s:s, s:O, s:O}", "jsonrpc", "2.0", "result",
                                                k->result ? k->result : json_null(), "id",
                                                k->id));
    }
    size_t i;
    json_t *n;
    json_array_foreach(k->notes, i, n) send_json(k->conn, json_incref(n));
}

/* one call of a batch ended: the batch's answer once it was the last */
static void batch_done(qd_batch *b)
{
    if (--b->left > 0) return;
    qd_conn *c = b->conn;
    if (json_array_size(b->answers) && !c->closing) send_json(c, json_incref(b->answers));
    if (b->close_auth) conn_close_after_write(c, "three failed authentications");
    json_decref(b->answers);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

int qd_fail(qd_call *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->code = code;
    return -1;
}

int qd_fail_rc(qd_call *c, int rc, const char *msg)
{
    return qd_fail(c, qt_rpc_code(rc), "%s", msg);
}

static const char *type_names(int types, char *buf, size_t n)
{
    static const char *const names[] = { "an integer", "a number", "a string", "an object",
                                         "an array", "a boolean", "a positive integer" };
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < 7; i++)
        if (types & (1 << i))
            at += (size_t)snprintf(buf + at, at < n ? n - at : 0, "%s%s", at ? " or " : "",
                                   names[i]);
    return buf;
}

static int type_ok(const json_t *v, int types)
{
    if ((types & P_ID) && json_is_integer(v) && json_integer_value(v) >= 1) return 1;
    if ((types & P_INT) && json_is_integer(v)) return 1;
    if ((types & P_NUM) && json_is_number(v)) return 1;
    if ((types & P_STR) && json_is_string(v)) return 1;
    if ((types & P_OBJ) && json_is_object(v)) return 1;
    if ((types & P_ARR) && json_is_array(v)) return 1;
    if ((types & P_BOOL) && json_is_boolean(v)) return 1;
    return 0;
}

/* the params against the method's table row: an object (or absent), no
 * unknown names, every required one, each of its type */
static int check_params(qd_call *k, json_t *params)
{
    const qd_method *m = k->m;
    char tn[128];
    if (params && !json_is_object(params) && !(json_is_array(params) && !json_array_size(params)))
        return qd_fail(k, QT_RPC_INVALID_PARAMS, "%s: params must be an object of named "
                       "parameters", m->name);
    k->params = json_is_object(params) ? json_incref(params) : json_object();
    const char *key;
    json_t *v;
    json_object_foreach(k->params, key, v) {
        const qd_param *p = m->params;
        while (p && p->name && strcmp(p->name, key)) p++;
        if (!p || !p->name)
            return qd_fail(k, QT_RPC_INVALID_PARAMS, "%s: unknown parameter '%s'", m->name, key);
        if (!type_ok(v, p->types))
            return qd_fail(k, QT_RPC_INVALID_PARAMS, "%s: '%s' must be %s", m->name, key,
                           type_names(p->types, tn, sizeof tn));
    }
    for (const qd_param *p = m->params; p && p->name; p++)
        if (p->required && !json_object_get(k->params, p->name))
            return qd_fail(k, QT_RPC_INVALID_PARAMS, "%s: missing parameter '%s' (%s)", m->name,
                           p->name, type_names(p->types, tn, sizeof tn));
    return 0;
}

static void call_free(qd_call *k)
{
    qd_batch *b = k->batch;
    json_decref(k->id);
    json_decref(k->params);
    json_decref(k->result);
    json_decref(k->notes);
    free(k);
    if (b) batch_done(b);
}

static void process_buffer(qd_conn *c);
static void read_start(qd_conn *c);
static void on_timeout(uv_timer_t *t);

/* take a token of the connection's bucket: 1, or 0 with *wait the
 * seconds until one is there */
static int rate_take(qd_conn *c, double *wait)
{
    const qd_settings *set = &c->srv->set;
    if (set->rate <= 0 || set->burst <= 0) return 1;
    uint64_t now = uv_now(c->srv->loop);
    c->tokens += set->rate * (double)(now - c->refilled) / 1000.0;
    if (c->tokens > set->burst) c->tokens = set->burst;
    c->refilled = now;
    if (c->tokens >= 1.0) { c->tokens -= 1.0; return 1; }
    *wait = (1.0 - c->tokens) / set->rate;
    return 0;
}

/* an eval.run slot for the call (0), or the call's busy error (-1) */
static int eval_take(qd_call *k)
{
    qd_server *srv = k->srv;
    if (k->conn->evals > 0)
        return qd_fail(k, QT_RPC_BUSY, "busy: this client's eval.run is still running (one "
                       "at a time per connection); retry when it has answered");
    if (srv->n_evals >= srv->set.max_evals)
        return qd_fail(k, QT_RPC_BUSY, "busy: %d eval.run already running (--max-evals %d); "
                       "retry later", srv->n_evals, srv->set.max_evals);
    srv->n_evals++;
    k->conn->evals++;
    k->eval_slot = 1;
    return 0;
}

static void eval_give(qd_call *k)
{
    if (!k->eval_slot) return;
    k->eval_slot = 0;
    k->srv->n_evals--;
    k->conn->evals--;
}

static void work_cb(uv_work_t *w)
{
    qd_call *k = w->data;
    if (k->m->flags & QD_STORE) {
        pthread_mutex_lock(&k->srv->qmu);
        k->m->fn(k);
        pthread_mutex_unlock(&k->srv->qmu);
    } else {
        k->m->fn(k);
    }
}

static void after_work_cb(uv_work_t *w, int status)
{
    qd_call *k = w->data;
    qd_conn *c = k->conn;
    eval_give(k);                       /* on every path, the client gone or not */
    if (status == UV_ECANCELED && !k->code) qd_fail(k, QT_RPC_BUSY, "the daemon is stopping");
    if (!k->code && k->m->after && !c->closing) k->m->after(k);
    if (!c->closing) send_answer(k);
    call_free(k);                       /* (a batch's answer, when it was the last) */
    c->pending--;
    /* below the bound again: go on with what is buffered, and read again
     * (a batch may have taken it past the bound with nothing buffered) */
    if (!c->closing && c->pending < MAX_PENDING) {
        if (c->len) process_buffer(c);
        else if (!c->reading) read_start(c);
    }
    conn_unref(c);
}

/* one request (borrowed), alone (b NULL) or of a batch */
static void dispatch_one(qd_conn *c, json_t *req, qd_batch *b)
{
    qd_server *srv = c->srv;
    if (!json_is_object(req)) {
        answer(c, b, error_msg(c, NULL, QT_RPC_INVALID_REQUEST, b
                               ? "a request of a batch is a JSON object"
                               : "a request is a JSON object (or a batch: an array of them)"));
        return;
    }
    json_t *id = json_object_get(req, "id");
    json_t *ver = json_object_get(req, "jsonrpc");
    json_t *meth = json_object_get(req, "method");
    const char *bad = NULL;
    if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id))
        bad = "id must be a string, an integer or null";
    else if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0"))
        bad = "jsonrpc must be \"2.0\"";
    else if (!json_is_string(meth))
        bad = "method must be a string";
    else {
        const char *key;
        json_t *v;
        json_object_foreach(req, key, v)
            if (strcmp(key, "jsonrpc") && strcmp(key, "id") && strcmp(key, "method") &&
                strcmp(key, "params")) { bad = "unknown member in the request"; break; }
    }
    if (bad) {
        answer(c, b, error_msg(c, id && (json_is_string(id) || json_is_integer(id)) ? id : NULL,
                               QT_RPC_INVALID_REQUEST, bad));
        return;
    }
    qd_call *k = calloc(1, sizeof *k);
    if (!k) { answer(c, b, error_msg(c, id, QT_RPC_INTERNAL, "out of memory")); return; }
    k->srv = srv;
    k->conn = c;
    k->id = id ? json_incref(id) : NULL;
    if (b) { k->batch = b; b->left++; }
    const char *name = json_string_value(meth);
    k->m = qd_method_find(name);
    double wait = 0;
    if (!rate_take(c, &wait)) {
        srv->n_rate_limited++;
        qd_fail(k, QT_RPC_RATE_LIMITED, "rate limit: more than %g requests/s from this client "
                "(--rate %g, --burst %d); retry in %.2g s", srv->set.rate, srv->set.rate,
                srv->set.burst, wait < 0.01 ? 0.01 : wait);
    } else if (!k->m) {
        qd_fail(k, QT_RPC_NO_METHOD, "no method '%.64s' (server.info lists them)", name);
    } else if (c->tcp && !c->authed && !(k->m->flags & QD_NOAUTH)) {
        qd_fail(k, QT_RPC_UNAUTHORIZED, "authenticate first: server.auth {\"token\": ...}");
    } else if (srv->stopping && k->m->flags & QD_POOL) {
        qd_fail(k, QT_RPC_BUSY, "the daemon is stopping");
    } else if (!check_params(k, json_object_get(req, "params"))) {
        if ((k->m->flags & QD_EVAL) && eval_take(k)) {
            srv->n_evals_busy++;
        } else if (k->m->flags & (QD_POOL | QD_STORE)) {
            k->work.data = k;
            c->pending++;
            c->refs++;
            if (uv_queue_work(srv->loop, &k->work, work_cb, after_work_cb) == 0) return;
            c->pending--;
            c->refs--;
            eval_give(k);
            qd_fail(k, QT_RPC_INTERNAL, "cannot queue the request");
        } else {
            k->m->fn(k);
            eval_give(k);
        }
    }
    if (k->code == QT_RPC_UNAUTHORIZED && c->tcp && ++c->bad_auth >= 3) {
        send_answer(k);
        if (b) {
            b->close_auth = 1;
            call_free(k);
            return;
        }
        call_free(k);
        conn_close_after_write(c, "three failed authentications");
        return;
    }
    send_answer(k);
    call_free(k);
}

/* one request line: a request or a batch */
static void dispatch(qd_conn *c, const char *line, size_t n)
{
    qd_server *srv = c->srv;
    json_error_t je;
    srv->n_requests++;
    json_t *req = json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!req) {
        char msg[256];
        snprintf(msg, sizeof msg, "parse error: %s at byte %d", je.text, je.position);
        send_error(c, NULL, QT_RPC_PARSE_ERROR, msg);
        return;
    }
    if (!json_is_array(req)) {
        dispatch_one(c, req, NULL);
        json_decref(req);
        return;
    }
    size_t m = json_array_size(req);
    if (m == 0 || m > MAX_BATCH) {
        char msg[96];
        if (m) snprintf(msg, sizeof msg, "a batch of %zu requests: at most %d", m, MAX_BATCH);
        else snprintf(msg, sizeof msg, "an empty batch");
        send_error(c, NULL, QT_RPC_INVALID_REQUEST, msg);
        json_decref(req);
        return;
    }
    qd_batch *b = calloc(1, sizeof *b);
    if (b) b->answers = json_array();
    if (!b || !b->answers) {
        free(b);
        send_error(c, NULL, QT_RPC_INTERNAL, "out of memory");
        json_decref(req);
        return;
    }
    b->conn = c;
    b->left = 1;                        /* until every request is dispatched */
    srv->n_requests += m - 1;
    size_t i;
    json_t *e;
    json_array_foreach(req, i, e) {
        if (c->closing) break;
        dispatch_one(c, e, b);
    }
    json_decref(req);
    batch_done(b);
}

/* handle the complete lines buffered, as far as the pending limit allows */
static void process_buffer(qd_conn *c)
{
    size_t at = 0;
    while (!c->closing && c->pending < MAX_PENDING) {
        char *nl = memchr(c->buf + at, '\n', c->len - at);
        if (!nl) break;
        size_t n = (size_t)(nl - (c->buf + at));
        size_t m = n;
        if (m && c->buf[at + m - 1] == '\r') m--;
        int blank = 1;
        for (size_t i = 0; i < m && blank; i++)
            blank = c->buf[at + i] == ' ' || c->buf[at + i] == '\t';
        if (!blank) dispatch(c, c->buf + at, m);
        at += n + 1;
    }
    if (c->closing) return;
    memmove(c->buf, c->buf + at, c->len - at);
    c->len -= at;
    if (c->len > 0 && !memchr(c->buf, '\n', c->len)) {
        /* a partial request: it must be finished in time */
        if (!uv_is_active((uv_handle_t *)&c->timer))
            uv_timer_start(&c->timer, on_timeout,
                           (uint64_t)(c->srv->set.request_timeout * 1000), 0);
    } else {
        uv_timer_stop(&c->timer);
    }
    if (c->pending >= MAX_PENDING) {
        if (c->reading) { uv_read_stop(&c->h.stream); c->reading = 0; }
    } else if (!c->reading) {
        read_start(c);
    }
}

static void on_timeout(uv_timer_t *t)
{
    qd_conn *c = t->data;
    char why[96];
    snprintf(why, sizeof why, "a request left unfinished for %g s", c->srv->set.request_timeout);
    send_error(c, NULL, QT_RPC_INVALID_REQUEST, why);
    conn_close_after_write(c, why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char slab[65536];        /* the loop is one thread: one buffer */
    (void)h; (void)suggested;
    *b = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    qd_conn *c = s->data;
    if (nread == 0 || c->closing) return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? (c->len ? "the client left mid-request" : NULL)
                                      : uv_strerror((int)nread));
        return;
    }
    size_t max = (size_t)c->srv->set.max_request;
    if (c->len + (size_t)nread > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + (size_t)nread) cap *= 2;
        if (cap > max + 65536 + 2) cap = max + 65536 + 2;
        if (cap < c->len + (size_t)nread) cap = c->len + (size_t)nread;
        char *nb = realloc(c->buf, cap);
        if (!nb) { conn_close(c, "out of memory"); return; }
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, b->base, (size_t)nread);
    size_t old = c->len;
    c->len += (size_t)nread;
    /* a line longer than the bound: answer and hang up */
    size_t start = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (c->buf[i] == '\n') { start = i + 1; continue; }
        if (i >= old && i - start + 1 > max) {
            char msg[128];
            snprintf(msg, sizeof msg, "request larger than %d bytes (max-request)", (int)max);
            c->len = start;             /* the lines before it are still answered */
            process_buffer(c);
            c->srv->n_rejected++;
            send_error(c, NULL, QT_RPC_INVALID_REQUEST, msg);
            conn_close_after_write(c, msg);
            return;
        }
    }
    process_buffer(c);
}

static void read_start(qd_conn *c)
{
    if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0) c->reading = 1;
}

/* ------------------------------------------------------------------------ */
/* Listening                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t conn_no;

static void on_connection(uv_stream_t *server, int status)
{
    qd_server *srv = server->data;
    if (status < 0) { qd_log(QT_LOG_WARN, "accept: %s", uv_strerror(status)); return; }
    int tcp = server == (uv_stream_t *)&srv->tcp_srv;
    qd_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = srv;
    c->tcp = tcp;
    c->no = ++conn_no;
    c->h.handle.data = c;
    if (tcp) uv_tcp_init(srv->loop, &c->h.tcp); else uv_pipe_init(srv->loop, &c->h.pipe, 0);
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->refs = 2;
    c->tokens = srv->set.burst;
    c->refilled = uv_now(srv->loop);
    c->next = srv->conns;
    srv->conns = c;
    srv->n_conns++;
    if (uv_accept(server, &c->h.stream) != 0) { conn_close(c, "accept failed"); return; }
    srv->n_accepted++;
    if (srv->stopping) {
        send_error(c, NULL, QT_RPC_BUSY, "the daemon is stopping");
        conn_close_after_write(c, "stopping");
        return;
    }
    if (srv->n_conns > srv->set.max_clients) {
        send_error(c, NULL, QT_RPC_BUSY, "too many clients (max-clients)");
        conn_close_after_write(c, "too many clients");
        return;
    }
    qd_log(QT_LOG_DEBUG, "client %llu: connected (%s)", (unsigned long long)c->no,
           tcp ? "tcp" : "unix");
    read_start(c);
}

int qd_server_start(qd_server *srv, qt_error *err)
{
    int rc;
    const char *sock = srv->set.socket;
    if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return qt_errorf(err, QT_EINVAL, -1, "socket path %s is too long for a Unix socket "
                         "(at most %zu bytes): choose a shorter --socket or --state", sock,
                         sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    /* a socket file left by a daemon that died: the store lock says no
     * daemon runs on this state, so it is stale */
    struct stat sb;
    if (lstat(sock, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode))
            return qt_errorf(err, QT_EINVAL, -1, "%s exists and is not a socket: remove it "
                             "or choose another --socket", sock);
        unlink(sock);
    }
    uv_pipe_init(srv->loop, &srv->unix_srv, 0);
    srv->unix_srv.data = srv;
    mode_t old = umask(0177);          /* the socket: 0600, its owner only */
    rc = uv_pipe_bind(&srv->unix_srv, sock);
    umask(old);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->unix_srv, 128, on_connection);
    if (rc) {
        uv_close((uv_handle_t *)&srv->unix_srv, NULL);
        return qt_errorf(err, QT_EIO, -1, "cannot listen on %s: %s", sock, uv_strerror(rc));
    }
    chmod(sock, 0600);
    srv->have_unix = 1;
    if (srv->set.tcp_port > 0) {
        struct sockaddr_storage addr;
        const char *host = srv->set.tcp_host;
        if (!strcmp(host, "localhost")) host = "127.0.0.1";
        if (strchr(host, ':')) rc = uv_ip6_addr(host, srv->set.tcp_port, (struct sockaddr_in6 *)&addr);
        else rc = uv_ip4_addr(host, srv->set.tcp_port, (struct sockaddr_in *)&addr);
        uv_tcp_init(srv->loop, &srv->tcp_srv);
        srv->tcp_srv.data = srv;
        if (rc == 0) rc = uv_tcp_bind(&srv->tcp_srv, (struct sockaddr *)&addr, 0);
        if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->tcp_srv, 128, on_connection);
        if (rc) {
            uv_close((uv_handle_t *)&srv->tcp_srv, NULL);
            return qt_errorf(err, QT_EIO, -1, "cannot listen on %s port %d: %s",
                             srv->set.tcp_host, srv->set.tcp_port, uv_strerror(rc));
        }
        srv->have_tcp = 1;
    }
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Subscriptions and job events                                              */
/* ------------------------------------------------------------------------ */

int qd_server_subscribe(qd_server *srv, qd_conn *conn, int64_t job)
{
    for (qd_sub *s = srv->subs; s; s = s->next)
        if (s->conn == conn && s->job == job) return QT_OK;
    qd_sub *s = calloc(1, sizeof *s);
    if (!s) return QT_ENOMEM;
    s->conn = conn;
    s->job = job;
    s->next = srv->subs;
    srv->subs = s;
    return QT_OK;
}

static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        /* a connection's stream or timer (the listeners are closed already) */
        if (h->type == UV_NAMED_PIPE || h->type == UV_TCP || h->type == UV_TIMER) {
            conn_close(h->data, NULL);
            return;
        }
        uv_close(h, NULL);
    }
}

void qd_server_job_event(void *user, int64_t job, json_t *params, int end)
{
    qd_server *srv = user;
    if (job == 0) {
        /* every runner has ended: close everything, the loop then ends */
        qd_log(QT_LOG_INFO, "every job stopped; closing");
        uv_walk(srv->loop, close_all, NULL);
        return;
    }
    const char *method = end ? "job.end" : "job.progress";
    for (qd_sub **p = &srv->subs; *p;) {
        qd_sub *s = *p;
        if (s->job == job) {
            json_t *n = json_pack("{s:s, s:s, s:O}", "jsonrpc", "2.0", "method", method,
                                  "params", params);
            send_json(s->conn, n);
            if (end && *p == s) { *p = s->next; free(s); continue; }
        }
        if (*p == s) p = &s->next;
    }
}

/* ------------------------------------------------------------------------ */
/* Shutdown and stats                                                        */
/* ------------------------------------------------------------------------ */

void qd_server_stop(qd_server *srv)
{
    if (srv->stopping) return;
    srv->stopping = 1;
    qd_log(QT_LOG_INFO, "stopping: no new connections; running jobs stop and resume at the "
           "next start");
    if (srv->have_unix) {
        uv_close((uv_handle_t *)&srv->unix_srv, NULL);
        unlink(srv->set.socket);
        srv->have_unix = 0;
    }
    if (srv->have_tcp) { uv_close((uv_handle_t *)&srv->tcp_srv, NULL); srv->have_tcp = 0; }
    qd_jobs_shutdown(srv->jobs);
}

json_t *qd_server_stats(qd_server *srv)
{
    json_t *o = json_pack("{s:f, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "uptime",
                          wall() - srv->started, "clients", srv->n_conns, "accepted",
                          (json_int_t)srv->n_accepted, "requests", (json_int_t)srv->n_requests,
                          "errors", (json_int_t)srv->n_errors, "rejected",
                          (json_int_t)srv->n_rejected, "rate_limited",
                          (json_int_t)srv->n_rate_limited, "evals_busy",
                          (json_int_t)srv->n_evals_busy, "evals_running", srv->n_evals);
    json_t *subs = json_integer(0);
    int n = 0;
    for (qd_sub *s = srv->subs; s; s = s->next) n++;
    json_integer_set(subs, n);
    json_object_set_new(o, "subscriptions", subs);
    json_object_set_new(o, "jobs", qd_jobs_stats(srv->jobs));
    return o;
}

int qd_server_is_tcp(const qd_conn *conn) { return conn->tcp; }
void qd_server_set_authed(qd_conn *conn) { conn->authed = 1; conn->bad_auth = 0; }
