/*
 * client.c -- a blocking JSON-RPC client of qtuned (api.h): one request at
 * a time, answers matched by id, notifications queued on the side.
 */
#include "api.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (64u << 20)    /* the largest answer taken */

typedef struct note { json_t *j; struct note *next; } note;

struct qt_client {
    int     fd;
    double  timeout;
    json_int_t next_id;
    char   *buf;
    size_t  len, cap;
    note   *head, *tail;
};

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int connect_tcp(const char *spec, int *fd, qt_error *err)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return qt_errorf(err, QT_EINVAL, -1, "tcp:%s: use tcp:HOST:PORT", spec);
    snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
    if (host[0] == '[') {       /* [::1] */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = 0;
    }
    struct addrinfo hints = { 0 }, *res;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g) return qt_errorf(err, QT_EINVAL, -1, "tcp:%s: %s", spec, gai_strerror(g));
    int rc = QT_ENOENT, e = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (s < 0) continue;
        if (connect(s, a->ai_addr, a->ai_addrlen) == 0) { *fd = s; rc = QT_OK; break; }
        e = errno;
        close(s);
    }
    freeaddrinfo(res);
    if (rc) return qt_errorf(err, e == ECONNREFUSED ? QT_ENOENT : QT_EIO, -1,
                             "nothing answers on tcp:%s (%s)", spec, strerror(e));
    return QT_OK;
}

int qt_client_connect(const char *path, const char *token, qt_client **out, qt_error *err)
{
    int fd = -1, rc;
    if (!strncmp(path, "tcp:", 4)) {
        if ((rc = connect_tcp(path + 4, &fd, err))) return rc;
    } else {
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        if (strlen(path) >= sizeof a.sun_path)
            return qt_errorf(err, QT_EINVAL, -1, "socket path %s is too long", path);
        strcpy(a.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return qt_errorf(err, QT_EIO, -1, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            int e = errno;
            close(fd);
            return qt_errorf(err, e == ENOENT || e == ECONNREFUSED ? QT_ENOENT : QT_EIO, -1,
                             "%s: %s", path, strerror(e));
        }
    }
    qt_client *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return qt_errorf(err, QT_ENOMEM, -1, "out of memory"); }
    c->fd = fd;
    c->timeout = 60;
    c->next_id = 1;
    *out = c;
    if (token) {
        json_t *res;
        int code;
        json_t *p = json_pack("{s:s}", "token", token);
        rc = qt_client_call(c, "server.auth", p, &res, &code, err);
        json_decref(p);
        if (rc) { qt_client_close(c); *out = NULL; return rc; }
        json_decref(res);
    }
    return QT_OK;
}

void qt_client_close(qt_client *c)
{
    if (!c) return;
    close(c->fd);
    while (c->head) { note *n = c->head; c->head = n->next; json_decref(n->j); free(n); }
    free(c->buf);
    free(c);
}

void qt_client_set_timeout(qt_client *c, double seconds) { c->timeout = seconds; }

static int send_all(qt_client *c, const char *p, size_t n, qt_error *err)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return qt_errorf(err, QT_EIO, -1, "the daemon closed the connection (%s)",
                                     strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return QT_OK;
}

/* the next line as JSON; deadline < 0: none. QT_EBUSY when it passes */
static int read_msg(qt_client *c, double deadline, json_t **out, qt_error *err)
{
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            json_error_t je;
            json_t *j = json_loadb(c->buf, n, 0, &je);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            if (!j) return qt_errorf(err, QT_EPARSE, -1, "the daemon sent malformed JSON: %s",
                                     je.text);
            *out = j;
            return QT_OK;
        }
        if (c->len >= MAX_LINE) return qt_errorf(err, QT_EIO, -1, "answer too large");
        int ms = -1;
        if (deadline >= 0) {
            double left = deadline - mono();
            if (left <= 0) return qt_errorf(err, QT_EBUSY, -1, "no answer in time");
            ms = (int)(left * 1000) + 1;
        }
        struct pollfd p = { c->fd, POLLIN, 0 };
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return qt_errorf(err, QT_EBUSY, -1, "no answer in time");
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? 2 * c->cap : 131072;
            char *nb = realloc(c->buf, cap);
            if (!nb) return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
            c->buf = nb;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return qt_errorf(err, QT_EIO, -1, "the daemon closed the connection");
        c->len += (size_t)n;
    }
}

static void queue_note(qt_client *c, json_t *j)
{
    note *n = calloc(1, sizeof *n);
    if (!n) { json_decref(j); return; }
    n->j = j;
    if (c->tail) c->tail->next = n; else c->head = n;
    c->tail = n;
}

int qt_client_call(qt_client *c, const char *method, json_t *params, json_t **result,
                   int *code, qt_error *err)
{
    *result = NULL;
    *code = 0;
    json_int_t id = c->next_id++;
    json_t *req = json_pack("{s:s, s:s, s:I}", "jsonrpc", "2.0", "method", method, "id", id);
    if (params) json_object_set(req, "params", params);
    char *txt = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(req);
    if (!txt) return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    size_t n = strlen(txt);
    int rc = send_all(c, txt, n, err);
    if (!rc) rc = send_all(c, "\n", 1, err);
    free(txt);
    if (rc) return rc;
    double deadline = c->timeout > 0 ? mono() + c->timeout : -1;
    for (;;) {
        json_t *m;
        if ((rc = read_msg(c, deadline, &m, err))) return rc;
        json_t *mid = json_object_get(m, "id");
        if (!mid && json_object_get(m, "method")) { queue_note(c, m); continue; }
        if (!json_is_integer(mid) || json_integer_value(mid) != id) {
            /* an error about no request in particular (oversize, timeout) */
            json_t *e = json_object_get(m, "error");
            if (e && json_is_null(mid)) {
                *code = (int)json_integer_value(json_object_get(e, "code"));
                rc = qt_errorf(err, QT_EINVAL, -1, "%s",
                               json_string_value(json_object_get(e, "message")));
                json_decref(m);
                return rc;
            }
            json_decref(m);
            continue;
        }
        json_t *e = json_object_get(m, "error");
        if (e) {
            const char *msg = json_string_value(json_object_get(e, "message"));
            *code = (int)json_integer_value(json_object_get(e, "code"));
            int qrc = *code == QT_RPC_NOT_FOUND ? QT_ENOENT
                    : *code == QT_RPC_BUSY || *code == QT_RPC_RATE_LIMITED ? QT_EBUSY
                    : *code == QT_RPC_IO ? QT_EIO : *code == QT_RPC_UNSUPPORTED ? QT_ENOTSUP
                    : *code == QT_RPC_INTERNAL ? QT_ENOMEM : QT_EINVAL;
            rc = qt_errorf(err, qrc, -1, "%s", msg ? msg : "error without a message");
            json_decref(m);
            return rc;
        }
        *result = json_incref(json_object_get(m, "result"));
        json_decref(m);
        if (!*result) *result = json_null();
        return QT_OK;
    }
}

int qt_client_read(qt_client *c, double timeout, json_t **out, qt_error *err)
{
    double deadline = timeout >= 0 ? mono() + timeout : -1;
    for (;;) {
        if (c->head) {
            note *n = c->head;
            c->head = n->next;
            if (!c->head) c->tail = NULL;
            *out = n->j;
            free(n);
            return QT_OK;
        }
        json_t *m;
        int rc = read_msg(c, deadline, &m, err);
        if (rc) return rc;
        if (json_object_get(m, "method") && !json_object_get(m, "id")) queue_note(c, m);
        else json_decref(m);
    }
}
