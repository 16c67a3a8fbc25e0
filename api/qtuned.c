/*
 * qtuned.c -- the qtune daemon: settings, the store lock, start-up and
 * shutdown. See daemon.h for its modules and `qtuned --help` for its
 * settings.
 *
 *   qtuned --state DIR [--models DIR] [--data DIR] [--tcp PORT --token-file FILE] ...
 *
 * Settings come from a table (name, kind, bounds, default, help): the
 * defaults, then the config file (JSON, {"models": "...", "jobs": 2}; by
 * default STATE/qtuned.json when it exists), then the flags. On start the
 * database is locked (flock on DB.lock, which holds the pid): a second
 * daemon on the same database is refused, naming the first. Every job the
 * store has as queued or running is queued again: resume is replay, so a
 * job killed mid-way ends as an uninterrupted run would, computing only
 * what the store lacks (a job on a registered dataset first has its files
 * checked again, jobs.c). SIGTERM/SIGINT (or server.shutdown): stop
 * accepting, stop the running searches (evaluations in flight are
 * abandoned; each finished one is already stored), mark the jobs queued
 * again so the next start resumes them (a job still marked running was
 * killed: its next start counts an interruption), exit 0.
 *
 * Exit codes: 0 stopped cleanly; 1 could not start (the message says
 * why); 2 bad usage or settings.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The settings table                                                        */
/* ------------------------------------------------------------------------ */

typedef enum { S_PATH, S_STR, S_INT, S_NUM, S_LEVEL } skind;

typedef struct setting {
    const char *name;
    skind       kind;
    size_t      off, size;
    double      min, max;
    const char *def;
    const char *help;
} setting;

#define F(x) offsetof(qd_settings, x), sizeof(((qd_settings *)0)->x)

static const setting settings[] = {
    { "state",           S_PATH,  F(state),           0, 0, "",
      "state directory: socket, database, lock, config (default: $QTUNE_STATE, "
      "$XDG_STATE_HOME/qtune or ~/.local/state/qtune)" },
    { "socket",          S_PATH,  F(socket),          0, 0, "", "Unix socket (default STATE/qtuned.sock)" },
    { "db",              S_PATH,  F(db),              0, 0, "", "database (default STATE/qtune.db)" },
    { "models",          S_PATH,  F(models),          0, 0, "",
      "the only directory models are read from (default STATE/models)" },
    { "data",            S_PATH,  F(data),            0, 0, "",
      "the only directory dataset files are read from (default STATE/data)" },
    { "tcp",             S_INT,   F(tcp_port),        0, 65535, "0",
      "also listen on this TCP port of the loopback interface (0: no; needs --token-file)" },
    { "tcp-host",        S_STR,   F(tcp_host),        0, 0, "127.0.0.1", "127.0.0.1, ::1 or localhost" },
    { "token-file",      S_PATH,  F(token_file),      0, 0, "",
      "file holding the bearer token TCP clients send with server.auth" },
    { "jobs",            S_INT,   F(jobs),            1, 64, "1", "jobs run at once" },
    { "storage-retry",   S_NUM,   F(storage_retry),   0, 86400, "30",
      "seconds between attempts to continue jobs paused by a full disk or an I/O error "
      "(0: never; job.resume continues them)" },
    { "max-request",     S_INT,   F(max_request),     256, 67108864, "1048576",
      "bytes of one request line" },
    { "request-timeout", S_NUM,   F(request_timeout), 0.05, 86400, "10",
      "seconds a client has to finish sending a request it began" },
    { "max-clients",     S_INT,   F(max_clients),     1, 100000, "1024", "connections at once" },
    { "max-backlog",     S_INT,   F(max_backlog),     4096, 1073741824, "16777216",
      "bytes of answers a client may leave unread before it is disconnected" },
    { "rate",            S_NUM,   F(rate),            0, 1e6, "50",
      "requests per second a client (a connection) may send on average; each request of "
      "a batch counts (0: no limit)" },
    { "burst",           S_INT,   F(burst),           0, 1000000, "100",
      "requests a client may send at once before --rate applies (0: no limit)" },
    { "max-evals",       S_INT,   F(max_evals),       1, 1024, "2",
      "eval.run evaluations running at once (a client: one at a time); more are refused "
      "as busy" },
    { "log",             S_PATH,  F(log_file),        0, 0, "", "log file (default: stderr)" },
    { "log-level",       S_LEVEL, F(log_level),       0, 0, "info", "error, warn, info or debug" },
};
#define N_SETTINGS (int)(sizeof settings / sizeof *settings)

static const setting *find_setting(const char *name)
{
    char norm[64];
    snprintf(norm, sizeof norm, "%s", name);
    for (char *p = norm; *p; p++) if (*p == '_') *p = '-';
    for (int i = 0; i < N_SETTINGS; i++) if (!strcmp(settings[i].name, norm)) return &settings[i];
    return NULL;
}

/* set one setting from text; where says where it came from */
static int set_one(qd_settings *s, const setting *d, const char *v, const char *where)
{
    char *field = (char *)s + d->off;
    char *end;
    switch (d->kind) {
    case S_PATH:
    case S_STR:
        if (strlen(v) >= d->size) {
            fprintf(stderr, "qtuned: %s%s: '%s' is too long\n", where, d->name, v);
            return -1;
        }
        snprintf(field, d->size, "%s", v);
        return 0;
    case S_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || x < d->min || x > d->max) {
            fprintf(stderr, "qtuned: %s%s must be an integer in %.0f..%.0f, not '%s'\n", where,
                    d->name, d->min, d->max, v);
            return -1;
        }
        *(int *)(void *)field = (int)x;
        return 0;
    }
    case S_NUM: {
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !(x >= d->min && x <= d->max)) {
            fprintf(stderr, "qtuned: %s%s must be a number in %g..%g, not '%s'\n", where,
                    d->name, d->min, d->max, v);
            return -1;
        }
        *(double *)(void *)field = x;
        return 0;
    }
    case S_LEVEL: {
        int l = qd_log_level_parse(v);
        if (l < 0) {
            fprintf(stderr, "qtuned: %s%s must be error, warn, info or debug, not '%s'\n",
                    where, d->name, v);
            return -1;
        }
        *(int *)(void *)field = l;
        return 0;
    }
    }
    return -1;
}

static int load_config(qd_settings *s, const char *path, int must_exist)
{
    json_error_t je;
    if (!must_exist && access(path, F_OK) != 0) return 0;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        fprintf(stderr, "qtuned: config %s: %s (line %d)\n", path, je.text, je.line);
        return -1;
    }
    if (!json_is_object(j)) {
        fprintf(stderr, "qtuned: config %s: must be a JSON object of settings\n", path);
        json_decref(j);
        return -1;
    }
    char where[PATH_MAX + 16];
    snprintf(where, sizeof where, "config %.*s: ", PATH_MAX - 1, path);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        const setting *d = find_setting(key);
        char txt[PATH_MAX + 16];
        if (!d || !strcmp(d->name, "state")) {
            fprintf(stderr, "qtuned: %sunknown setting '%s' (qtuned --help lists them)\n",
                    where, key);
            json_decref(j);
            return -1;
        }
        if (json_is_string(v)) snprintf(txt, sizeof txt, "%.*s", PATH_MAX, json_string_value(v));
        else if (json_is_integer(v)) snprintf(txt, sizeof txt, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) snprintf(txt, sizeof txt, "%.17g", json_real_value(v));
        else {
            fprintf(stderr, "qtuned: %s%s must be a string or a number\n", where, key);
            json_decref(j);
            return -1;
        }
        if (set_one(s, d, txt, where)) { json_decref(j); return -1; }
    }
    json_decref(j);
    snprintf(s->config, sizeof s->config, "%.*s", PATH_MAX - 1, path);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: qtuned [--config FILE.json] [--SETTING VALUE]...\n\n"
               "The qtune daemon: JSON-RPC 2.0 (one request per line) on a Unix socket and,\n"
               "with --tcp, on loopback TCP. Settings (also keys of the JSON config file,\n"
               "by default STATE/qtuned.json):\n");
    for (int i = 0; i < N_SETTINGS; i++)
        fprintf(f, "  --%-16s %s%s%s%s\n", settings[i].name, settings[i].help,
                *settings[i].def ? " [" : "", settings[i].def, *settings[i].def ? "]" : "");
    fprintf(f, "\nExit codes: 0 stopped cleanly (SIGTERM, SIGINT, server.shutdown); 1 could "
               "not start; 2 bad usage.\n");
}

static int parse_settings(int argc, char **argv, qd_settings *s)
{
    const char *config = NULL;
    memset(s, 0, sizeof *s);
    for (int i = 0; i < N_SETTINGS; i++)
        if (set_one(s, &settings[i], settings[i].def[0] || settings[i].kind == S_PATH ||
                    settings[i].kind == S_STR ? settings[i].def : "0", "")) return -1;
    /* flags: --name value or --name=value; --config first, then the rest */
    const char *names[64], *vals[64];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--version")) { printf("qtuned %s\n", QT_API_VERSION); exit(0); }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "qtuned: unexpected argument '%s' (qtuned --help)\n", a);
            return -1;
        }
        static char namebuf[64][64];
        const char *eq = strchr(a, '='), *val;
        if (n >= 64) return -1;
        snprintf(namebuf[n], sizeof namebuf[n], "%.*s", eq ? (int)(eq - a - 2) : 63, a + 2);
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else { fprintf(stderr, "qtuned: %s needs a value\n", a); return -1; }
        if (!strcmp(namebuf[n], "config")) { config = val; continue; }
        if (!find_setting(namebuf[n])) {
            fprintf(stderr, "qtuned: unknown option '--%s' (qtuned --help)\n", namebuf[n]);
            return -1;
        }
        names[n] = namebuf[n];
        vals[n++] = val;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(find_setting(names[i])->name, "state")) snprintf(s->state, sizeof s->state, "%s", vals[i]);
    if (!*s->state) qt_api_default_state(s->state, sizeof s->state);
    char defcfg[PATH_MAX + 16];
    snprintf(defcfg, sizeof defcfg, "%s/qtuned.json", s->state);
    if (load_config(s, config ? config : defcfg, config != NULL)) return -1;
    for (int i = 0; i < n; i++)
        if (set_one(s, find_setting(names[i]), vals[i], "--")) return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Start-up                                                                  */
/* ------------------------------------------------------------------------ */

static int mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* the store lock: held for the daemon's life, released by the kernel when
 * it dies however it dies */
static int lock_store(const char *db, int *fd_out)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s.lock", db);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "qtuned: cannot open the lock file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        pid[r > 0 ? r : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        fprintf(stderr, "qtuned: the database %s is in use by another qtuned%s%s%s: stop it "
                "first (qtune server stop) or give this one another --state or --db\n", db,
                *pid ? " (pid " : "", pid, *pid ? ")" : "");
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {}
    *fd_out = fd;
    return 0;
}

static int read_token(const char *file, char *out, size_t n)
{
    if (!*file) {
        fprintf(stderr, "qtuned: --tcp needs --token-file FILE (the bearer token clients "
                "must send)\n");
        return -1;
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "qtuned: token file %s: %s\n", file, strerror(errno));
        return -1;
    }
    size_t r = fread(out, 1, n - 1, f);
    fclose(f);
    out[r] = 0;
    while (r > 0 && (out[r - 1] == '\n' || out[r - 1] == '\r' || out[r - 1] == ' ')) out[--r] = 0;
    if (r < 8) {
        fprintf(stderr, "qtuned: token file %s: the token must be at least 8 characters\n", file);
        return -1;
    }
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    qd_server *srv = h->data;
    if (srv->stopping) {
        qd_log(QT_LOG_WARN, "%s again while stopping: still waiting for the running "
               "evaluations to stop", strsignal(signum));
        return;
    }
    qd_log(QT_LOG_INFO, "%s", strsignal(signum));
    qd_server_stop(srv);
}

/* queue every job the store has as queued or running (those on a
 * registered dataset have its files checked again first: jobs.c) */
static int resume_jobs(qd_server *srv, qt_error *err)
{
    qt_store_job *jobs;
    int n;
    int rc = qt_store_job_list(srv->qstore, &jobs, &n, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        if (jobs[i].state != QT_JOB_QUEUED && jobs[i].state != QT_JOB_RUNNING) continue;
        qd_log(QT_LOG_INFO, "job %lld: %s when the daemon last stopped: queued again (%d "
               "evaluations in the store)", (long long)jobs[i].id,
               qt_job_state_name(jobs[i].state), jobs[i].evals);
        qd_jobs_enqueue(srv->jobs, jobs[i].id, 1);
    }
    qt_store_job_list_free(jobs, n);
    return QT_OK;
}

int main(int argc, char **argv)
{
    static qd_server srv;
    qt_error err;
    int lock_fd = -1, rc;
    qt_runtime_init(argv);
    if (parse_settings(argc, argv, &srv.set)) return 2;
    qd_settings *s = &srv.set;
    if (strcmp(s->tcp_host, "127.0.0.1") && strcmp(s->tcp_host, "::1") &&
        strcmp(s->tcp_host, "localhost")) {
        fprintf(stderr, "qtuned: --tcp-host %s: only the loopback interface (127.0.0.1, ::1, "
                "localhost) is served\n", s->tcp_host);
        return 2;
    }
    if (mkdirs(s->state, 0700)) {
        fprintf(stderr, "qtuned: cannot create the state directory %s: %s\n", s->state,
                strerror(errno));
        return 1;
    }
    if (!*s->socket) snprintf(s->socket, sizeof s->socket, "%.*s/%s", PATH_MAX - 16, s->state,
                              QT_API_SOCKET);
    if (!*s->db) snprintf(s->db, sizeof s->db, "%.*s/%s", PATH_MAX - 16, s->state, QT_API_DB);
    if (!*s->models) {
        snprintf(s->models, sizeof s->models, "%.*s/models", PATH_MAX - 16, s->state);
        mkdirs(s->models, 0755);
    }
    if (!realpath(s->models, srv.models_real)) {
        fprintf(stderr, "qtuned: models directory %s: %s\n", s->models, strerror(errno));
        return 2;
    }
    if (!*s->data) {
        snprintf(s->data, sizeof s->data, "%.*s/data", PATH_MAX - 16, s->state);
        mkdirs(s->data, 0755);
    }
    if (!realpath(s->data, srv.data_real)) {
        fprintf(stderr, "qtuned: data directory %s: %s\n", s->data, strerror(errno));
        return 2;
    }
    if (s->tcp_port && read_token(s->token_file, srv.token, sizeof srv.token)) return 2;
    if (qd_log_open(s->log_file, s->log_level, &err)) {
        fprintf(stderr, "qtuned: %s\n", err.text);
        return 2;
    }
    if (lock_store(s->db, &lock_fd)) return 1;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    if ((rc = qt_store_open(s->db, QT_STORE_CREATE, &srv.qstore, &err))) {
        fprintf(stderr, "qtuned: %s\n", err.text);
        qd_log(QT_LOG_ERROR, "%s", err.text);
        return 1;
    }
    pthread_mutex_init(&srv.qmu, NULL);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    srv.started = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
    srv.loop = uv_default_loop();
    if ((rc = qd_jobs_new(srv.loop, s->db, srv.data_real, s->jobs, s->storage_retry,
                          qd_server_job_event, &srv, &srv.jobs, &err)) ||
        (rc = qd_server_start(&srv, &err)) ||
        (rc = resume_jobs(&srv, &err))) {
        fprintf(stderr, "qtuned: %s\n", err.text);
        qd_log(QT_LOG_ERROR, "%s", err.text);
        return 1;
    }
    uv_signal_init(srv.loop, &srv.sig_term);
    uv_signal_init(srv.loop, &srv.sig_int);
    srv.sig_term.data = srv.sig_int.data = &srv;
    uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv.sig_int, on_signal, SIGINT);
    qd_log(QT_LOG_INFO, "qtuned %s (pid %d): listening on %s%s%s%s; database %s; models from "
           "%s; datasets from %s; %d job%s at once", QT_API_VERSION, (int)getpid(), s->socket,
           s->tcp_port ? " and tcp " : "", s->tcp_port ? s->tcp_host : "",
           s->tcp_port ? "" : "", s->db, srv.models_real, srv.data_real, s->jobs,
           s->jobs == 1 ? "" : "s");
    if (s->tcp_port) qd_log(QT_LOG_INFO, "tcp port %d (token from %s)", s->tcp_port, s->token_file);
    if (s->rate > 0 && s->burst > 0)
        qd_log(QT_LOG_INFO, "limits: %g requests/s per client (bursts of %d); %d eval.run at "
               "once", s->rate, s->burst, s->max_evals);
    else
        qd_log(QT_LOG_INFO, "limits: no request rate limit; %d eval.run at once", s->max_evals);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(srv.loop);
    if (rc) qd_log(QT_LOG_WARN, "the loop closed with handles open: %s", uv_strerror(rc));
    qd_jobs_free(srv.jobs);
    qt_store_close(srv.qstore);
    pthread_mutex_destroy(&srv.qmu);
    if (ftruncate(lock_fd, 0) != 0) {}
    close(lock_fd);
    qd_log(QT_LOG_INFO, "stopped");
    qd_log_close();
    return srv.exit_code;
}
