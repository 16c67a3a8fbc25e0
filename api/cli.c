/*
 * cli.c -- qtune's daemon subcommands: a client of qtuned's JSON-RPC API
 * (api/methods.c lists the methods).
 *
 *   qtune submit JOB.json [--relative R] [--watch]   store and queue a job
 *   qtune status ID                                  a job: state, progress, answer
 *   qtune list [--state S]                           the jobs
 *   qtune watch ID                                   live progress until the job ends
 *   qtune pareto ID [--floor ACC] [--plot F.svg] [--ascii]   the Pareto front
 *   qtune cancel ID | pause ID                       stop a job (for good / resumable)
 *   qtune resume ID [--evaluations N] [--seconds S] [--strategy NAME]
 *   qtune models [--register PATH [--name N]]        models the daemon may read
 *   qtune datasets [--register NAME --images F --labels F ...]   datasets jobs may name
 *   qtune eval MODEL --remote [--config C] [--split S] [--limit N]   evaluate in the daemon
 *   qtune server [info|stats|start|stop]             the daemon itself
 *
 * Every one takes --state DIR (the daemon's state directory; default as
 * qtuned's), --socket PATH, or --tcp HOST:PORT with --token-file FILE;
 * --json prints the daemon's answer as JSON instead of text; --timeout S.
 *
 * Exit codes: 0 success; 1 the daemon or the job failed; 2 bad usage, or a
 * request the daemon refused (no such job, bad parameters, wrong state, a
 * model outside its models directory); 3 the job finished without a
 * configuration that meets its constraint; 4 no daemon answers (not
 * running, refused, timed out, wrong token); 5 the watched job stopped
 * without finishing (cancelled, paused, the daemon stopped).
 */
#include "api.h"
#include "cli.h"
#include "plot.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { QX_OK = 0, QX_FAIL = 1, QX_USAGE = 2, QX_INFEASIBLE = 3, QX_NODAEMON = 4, QX_STOPPED = 5 };

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct cli {
    const char *cmd;
    const char *pos[4];          /* positional arguments */
    int         n_pos;
    const char *names[24], *vals[24];   /* --name value (value NULL for flags) */
    int         n_opt;
    int         json;
    char        state[PATH_MAX];
    char        where[PATH_MAX + 8];    /* socket path or tcp:HOST:PORT */
    char        token[256];
    double      timeout;
} cli;

static const char *const flag_opts[] = { "json", "watch", "ascii", "remote", "all", NULL };

static int is_flag(const char *name)
{
    for (int i = 0; flag_opts[i]; i++) if (!strcmp(flag_opts[i], name)) return 1;
    return 0;
}

static const char *opt(const cli *c, const char *name)
{
    for (int i = 0; i < c->n_opt; i++)
        if (!strcmp(c->names[i], name)) return c->vals[i] ? c->vals[i] : "";
    return NULL;
}

/* parse argv[2..]: known (NULL-terminated) besides the common ones */
static int parse(cli *c, int argc, char **argv, const char *const *known, int max_pos,
                 const char *usage)
{
    static const char *const common[] = { "state", "socket", "tcp", "token-file", "json",
                                          "timeout", NULL };
    memset(c, 0, sizeof *c);
    c->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            if (c->n_pos >= max_pos) {
                fprintf(stderr, "qtune %s: unexpected argument '%s'\nusage: %s\n", c->cmd, a,
                        usage);
                return -1;
            }
            c->pos[c->n_pos++] = a;
            continue;
        }
        const char *name = a + 2;
        int ok = 0;
        for (int k = 0; common[k]; k++) ok |= !strcmp(common[k], name);
        for (int k = 0; known && known[k]; k++) ok |= !strcmp(known[k], name);
        if (!ok || c->n_opt >= 24) {
            fprintf(stderr, "qtune %s: unknown option '%s'\nusage: %s\n", c->cmd, a, usage);
            return -1;
        }
        c->names[c->n_opt] = name;
        if (is_flag(name)) {
            c->vals[c->n_opt++] = NULL;
        } else if (i + 1 < argc) {
            c->vals[c->n_opt++] = argv[++i];
        } else {
            fprintf(stderr, "qtune %s: option '%s' needs a value\nusage: %s\n", c->cmd, a, usage);
            return -1;
        }
    }
    c->json = opt(c, "json") != NULL;
    c->timeout = 60;
    const char *t = opt(c, "timeout");
    if (t) {
        char *end;
        c->timeout = strtod(t, &end);
        if (!*t || *end || c->timeout < 0) {
            fprintf(stderr, "qtune %s: --timeout must be seconds >= 0, not '%s'\n", c->cmd, t);
            return -1;
        }
    }
    const char *st = opt(c, "state"), *sock = opt(c, "socket"), *tcp = opt(c, "tcp");
    if (st) snprintf(c->state, sizeof c->state, "%s", st);
    else qt_api_default_state(c->state, sizeof c->state);
    if (sock) snprintf(c->where, sizeof c->where, "%s", sock);
    else if (tcp) snprintf(c->where, sizeof c->where, "tcp:%s", tcp);
    else if (!st && getenv("QTUNE_SOCKET")) snprintf(c->where, sizeof c->where, "%s",
                                                     getenv("QTUNE_SOCKET"));
    else snprintf(c->where, sizeof c->where, "%.*s/%s", PATH_MAX - 16, c->state, QT_API_SOCKET);
    const char *tf = opt(c, "token-file");
    if (tf) {
        FILE *f = fopen(tf, "r");
        if (!f) {
            fprintf(stderr, "qtune %s: token file %s: %s\n", c->cmd, tf, strerror(errno));
            return -1;
        }
        size_t r = fread(c->token, 1, sizeof c->token - 1, f);
        fclose(f);
        c->token[r] = 0;
        while (r > 0 && strchr("\r\n ", c->token[r - 1])) c->token[--r] = 0;
    }
    return 0;
}

static int job_id(const cli *c, const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v <= 0) {
        fprintf(stderr, "qtune %s: '%s' is not a job id (qtune list shows them)\n", c->cmd,
                s ? s : "");
        return -1;
    }
    *id = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */
/* ------------------------------------------------------------------------ */

static int connect_daemon(const cli *c, qt_client **cl)
{
    qt_error err;
    int rc = qt_client_connect(c->where, *c->token ? c->token : NULL, cl, &err);
    if (rc == QT_OK) {
        qt_client_set_timeout(*cl, c->timeout);
        return QX_OK;
    }
    if (rc == QT_ENOENT && strncmp(c->where, "tcp:", 4))
        fprintf(stderr, "qtune %s: no daemon on %s: start it with qtuned --state %s (or qtune "
                "server start --state %s)\n", c->cmd, c->where, c->state, c->state);
    else
        fprintf(stderr, "qtune %s: cannot reach the daemon at %s: %s\n", c->cmd, c->where,
                err.text);
    return QX_NODAEMON;
}

static int exit_for(int code)
{
    switch (code) {
    case 0: return QX_NODAEMON;           /* the connection failed */
    case QT_RPC_PARSE_ERROR: case QT_RPC_INVALID_REQUEST: case QT_RPC_NO_METHOD:
    case QT_RPC_INVALID_PARAMS: case QT_RPC_NOT_FOUND: case QT_RPC_STATE:
    case QT_RPC_FORBIDDEN: return QX_USAGE;
    case QT_RPC_UNAUTHORIZED: case QT_RPC_BUSY: case QT_RPC_RATE_LIMITED: return QX_NODAEMON;
    default: return QX_FAIL;
    }
}

/* one call on a new connection: QX_OK and *res, or the exit code (the
 * error printed) */
static int call1(const cli *c, const char *method, json_t *params, json_t **res)
{
    qt_client *cl;
    qt_error err;
    int code, x = connect_daemon(c, &cl);
    *res = NULL;
    if (x) return x;
    int rc = qt_client_call(cl, method, params, res, &code, &err);
    qt_client_close(cl);
    if (rc) {
        fprintf(stderr, "qtune %s: %s\n", c->cmd, err.text);
        return exit_for(code);
    }
    return QX_OK;
}

static void print_json(json_t *j)
{
    char *t = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (t) { puts(t); free(t); }
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* a model named on the command line, as the daemon must read it: a file
 * that exists here is passed as its absolute path */
static const char *local_path(const char *in, char *buf, size_t n)
{
    char real[PATH_MAX];
    if (strchr(in, '/') || strchr(in, '.')) {
        if (realpath(in, real)) { snprintf(buf, n, "%s", real); return buf; }
    }
    return in;
}

/* ------------------------------------------------------------------------ */
/* submit, status, list                                                      */
/* ------------------------------------------------------------------------ */

static int print_state_exit(const char *state, json_t *answer)
{
    if (!strcmp(state, "done"))
        return json_is_true(json_object_get(answer, "feasible")) ? QX_OK : QX_INFEASIBLE;
    if (!strcmp(state, "failed")) return QX_FAIL;
    return QX_STOPPED;
}

static int do_watch(const cli *c, int64_t id);

int qt_cli_submit(int argc, char **argv)
{
    static const char *const known[] = { "relative", "watch", NULL };
    const char *usage = "qtune submit JOB.json [--relative R] [--watch] [--state DIR] [--json]";
    cli c;
    if (parse(&c, argc, argv, known, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1) { fprintf(stderr, "usage: %s\n", usage); return QX_USAGE; }
    json_error_t je;
    json_t *job = json_load_file(c.pos[0], JSON_REJECT_DUPLICATES, &je);
    if (!job) {
        fprintf(stderr, "qtune submit: %s: %s (line %d)\n", c.pos[0], je.text, je.line);
        return QX_USAGE;
    }
    if (!json_is_object(job)) {
        fprintf(stderr, "qtune submit: %s: a job is a JSON object (see tuner/job.c)\n",
                c.pos[0]);
        json_decref(job);
        return QX_USAGE;
    }
    const char *m = json_string_value(json_object_get(job, "model"));
    char buf[PATH_MAX];
    if (m) json_object_set_new(job, "model", json_string(local_path(m, buf, sizeof buf)));
    const char *r = opt(&c, "relative");
    if (r) {
        char *end;
        double v = strtod(r, &end);
        if (!*r || *end || !(v > 0 && v <= 1)) {
            fprintf(stderr, "qtune submit: --relative must be in (0, 1], not '%s'\n", r);
            json_decref(job);
            return QX_USAGE;
        }
        json_t *cons = json_object_get(job, "constraint");
        json_t *nc = json_object();
        if (json_is_object(cons) && json_object_get(cons, "metric"))
            json_object_set(nc, "metric", json_object_get(cons, "metric"));
        json_object_set_new(nc, "relative", json_real(v));
        json_object_set_new(job, "constraint", nc);
    }
    json_t *params = json_pack("{s:o}", "job", job), *res;
    int x = call1(&c, "job.submit", params, &res);
    json_decref(params);
    if (x) return x;
    int64_t id = (int64_t)json_integer_value(json_object_get(res, "job"));
    if (c.json) print_json(res);
    else printf("job %lld submitted (%s); follow it with: qtune watch %lld%s%s\n",
                (long long)id, jstr(res, "state"), (long long)id,
                opt(&c, "state") ? " --state " : "", opt(&c, "state") ? opt(&c, "state") : "");
    fflush(stdout);
    json_decref(res);
    return opt(&c, "watch") ? do_watch(&c, id) : QX_OK;
}

static void fmt_time(double t, char *buf, size_t n)
{
    if (!(t > 0)) { snprintf(buf, n, "-"); return; }
    time_t s = (time_t)t;
    struct tm tm;
    localtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

int qt_cli_status(int argc, char **argv)
{
    const char *usage = "qtune status ID [--state DIR] [--json]";
    cli c;
    int64_t id;
    if (parse(&c, argc, argv, NULL, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1 || job_id(&c, c.pos[0], &id)) return QX_USAGE;
    json_t *res, *p = json_pack("{s:I}", "job", (json_int_t)id);
    int x = call1(&c, "job.get", p, &res);
    json_decref(p);
    if (x) return x;
    if (c.json) { print_json(res); json_decref(res); return QX_OK; }
    char cr[32], fi[32];
    fmt_time(jnum(res, "created"), cr, sizeof cr);
    fmt_time(jnum(res, "finished"), fi, sizeof fi);
    printf("job %lld: %s\n  model     %s\n  strategy  %s\n  created   %s; finished %s; runs %d "
           "(%d interrupted)\n  evaluations %d (%d computed by this job)\n", (long long)id,
           jstr(res, "state"), jstr(res, "model"), jstr(res, "strategy"), cr, fi,
           (int)jnum(res, "runs"), (int)jnum(res, "interrupted"), (int)jnum(res, "evals"),
           (int)jnum(res, "computed"));
    json_t *live = json_object_get(res, "live");
    if (json_is_object(live)) {
        json_t *b = json_object_get(live, "best");
        printf("  live      %d evaluations this run (%d computed)", (int)jnum(live, "evals"),
               (int)jnum(live, "computed"));
        if (json_is_object(b))
            printf("; best so far %.2fx, top-1 %.2f%%%s", jnum(b, "compression"),
                   100 * jnum(b, "top1"), json_is_true(json_object_get(b, "feasible")) ? ""
                   : " (below the constraint)");
        printf("\n");
    }
    json_t *ans = json_object_get(res, "answer");
    if (json_is_object(ans)) {
        printf("  answer    %s%s\n", json_is_true(json_object_get(ans, "feasible")) ? ""
               : "(no configuration met the constraint; closest) ", jstr(ans, "reason"));
        printf("            cost %.6g, compression %.2fx, validation top-1 %.2f%%", jnum(ans, "cost"),
               jnum(ans, "compression"), 100 * jnum(ans, "top1"));
        if (isfinite(jnum(ans, "test_top1"))) printf(", test top-1 %.2f%%", 100 * jnum(ans, "test_top1"));
        if (isfinite(jnum(ans, "float_top1"))) printf(" (float %.2f%%)", 100 * jnum(ans, "float_top1"));
        printf("\n");
        json_t *cfg = json_object_get(ans, "config");
        if (cfg && !json_is_null(cfg)) {
            char *t = json_dumps(cfg, JSON_COMPACT);
            printf("  config    %s\n", t ? t : "?");
            free(t);
        }
    }
    const char *e = jstr(res, "error");
    if (*e) printf("  error     %s\n", e);
    const char *st = jstr(res, "state");
    x = !strcmp(st, "done") || !strcmp(st, "failed") ? print_state_exit(st, ans) : QX_OK;
    json_decref(res);
    return x;
}

int qt_cli_list(int argc, char **argv)
{
    static const char *const known[] = { "state-is", NULL };
    const char *usage = "qtune list [--state-is queued|running|paused|done|failed|cancelled] "
                        "[--state DIR] [--json]";
    cli c;
    if (parse(&c, argc, argv, known, 0, usage)) return QX_USAGE;
    json_t *p = json_object(), *res;
    if (opt(&c, "state-is")) json_object_set_new(p, "state", json_string(opt(&c, "state-is")));
    int x = call1(&c, "job.list", p, &res);
    json_decref(p);
    if (x) return x;
    if (c.json) { print_json(res); json_decref(res); return QX_OK; }
    json_t *jobs = json_object_get(res, "jobs"), *j;
    size_t i;
    printf("%5s  %-10s %5s %8s  %-19s  %-10s %9s %8s  %s\n", "id", "state", "evals", "computed",
           "created", "strategy", "compr.", "top-1", "model");
    json_array_foreach(jobs, i, j) {
        char cr[32];
        fmt_time(jnum(j, "created"), cr, sizeof cr);
        json_t *a = json_object_get(j, "answer");
        json_t *live = json_object_get(j, "live");
        json_t *b = json_is_object(live) ? json_object_get(live, "best") : a;
        char comp[16] = "-", top[16] = "-";
        if (json_is_object(b) && isfinite(jnum(b, "compression"))) {
            snprintf(comp, sizeof comp, "%.2fx", jnum(b, "compression"));
            snprintf(top, sizeof top, "%.2f%%", 100 * jnum(b, "top1"));
        }
        const char *model = jstr(j, "model"), *slash = strrchr(model, '/');
        printf("%5lld  %-10s %5d %8d  %-19s  %-10s %9s %8s  %s\n",
               (long long)json_integer_value(json_object_get(j, "id")), jstr(j, "state"),
               (int)(json_is_object(live) ? jnum(live, "evals") : jnum(j, "evals")),
               (int)(json_is_object(live) ? jnum(live, "computed") : jnum(j, "computed")), cr,
               jstr(j, "strategy"), comp, top, slash ? slash + 1 : model);
    }
    if (json_array_size(jobs) == 0) printf("(no jobs: qtune submit JOB.json adds one)\n");
    json_decref(res);
    return QX_OK;
}

/* ------------------------------------------------------------------------ */
/* watch                                                                     */
/* ------------------------------------------------------------------------ */

static void progress_line(json_t *p, int tty)
{
    json_t *b = json_object_get(p, "best"), *last = json_object_get(p, "last");
    char best[96] = "best -";
    if (json_is_object(b))
        snprintf(best, sizeof best, "best %.2fx (cost %.4g) top-1 %.2f%%%s",
                 jnum(b, "compression"), jnum(b, "cost"), 100 * jnum(b, "top1"),
                 json_is_true(json_object_get(b, "feasible")) ? "" : " (infeasible)");
    printf("%sjob %lld  %d evals (%d computed)  %s", tty ? "\r\033[K" : "",
           (long long)json_integer_value(json_object_get(p, "job")), (int)jnum(p, "evals"),
           (int)jnum(p, "computed"), best);
    if (json_is_object(last))
        printf("  | last: %s top-1 %.2f%%%s %.2fx%s", json_is_true(json_object_get(last,
               "feasible")) ? "pass" : "fail", 100 * jnum(last, "top1"),
               json_is_true(json_object_get(last, "early")) ? "*" : "",
               jnum(last, "compression"), json_is_true(json_object_get(last, "cached"))
               ? " (stored)" : "");
    if (!tty) printf("\n");
    fflush(stdout);
}

static int do_watch(const cli *c, int64_t id)
{
    qt_client *cl;
    qt_error err;
    int code, x = connect_daemon(c, &cl);
    if (x) return x;
    json_t *res, *p = json_pack("{s:I}", "job", (json_int_t)id);
    int rc = qt_client_call(cl, "job.subscribe", p, &res, &code, &err);
    json_decref(p);
    if (rc) {
        fprintf(stderr, "qtune %s: %s\n", c->cmd, err.text);
        qt_client_close(cl);
        return exit_for(code);
    }
    int tty = isatty(1) && !c->json;
    if (!json_is_true(json_object_get(res, "subscribed"))) {
        /* not active: it has ended (or is stopped); its record says how */
        json_decref(res);
        p = json_pack("{s:I}", "job", (json_int_t)id);
        rc = qt_client_call(cl, "job.get", p, &res, &code, &err);
        json_decref(p);
        qt_client_close(cl);
        if (rc) { fprintf(stderr, "qtune %s: %s\n", c->cmd, err.text); return exit_for(code); }
        const char *st = jstr(res, "state");
        if (c->json) print_json(res);
        else printf("job %lld is %s (%d evaluations)\n", (long long)id, st,
                    (int)jnum(res, "evals"));
        x = print_state_exit(st, json_object_get(res, "answer"));
        json_decref(res);
        return x;
    }
    if (!c->json) {
        printf("job %lld %s; waiting for progress (Ctrl-C stops watching, not the job)\n",
               (long long)id, jstr(res, "state"));
        fflush(stdout);
    }
    json_decref(res);
    for (;;) {
        json_t *n;
        rc = qt_client_read(cl, -1, &n, &err);
        if (rc) {
            if (tty) printf("\n");
            fprintf(stderr, "qtune %s: the daemon closed the connection (it stopped?); job %lld "
                    "resumes at its next start\n", c->cmd, (long long)id);
            qt_client_close(cl);
            return QX_STOPPED;
        }
        const char *method = jstr(n, "method");
        json_t *np = json_object_get(n, "params");
        if (c->json) {
            char *t = json_dumps(n, JSON_COMPACT | JSON_REAL_PRECISION(10));
            if (t) { puts(t); free(t); }
            fflush(stdout);
        } else if (!strcmp(method, "job.progress")) {
            progress_line(np, tty);
        }
        if (!strcmp(method, "job.end")) {
            const char *st = jstr(np, "state");
            if (!c->json) {
                if (tty) printf("\n");
                printf("job %lld %s: %d evaluations (%d computed, %d from the store)", (long long)id,
                       st, (int)jnum(np, "evals"), (int)jnum(np, "computed"),
                       (int)jnum(np, "reused"));
                if (isfinite(jnum(np, "compression")))
                    printf("; %s %.2fx at top-1 %.2f%%", json_is_true(json_object_get(np,
                           "feasible")) ? "answer" : "closest (infeasible)",
                           jnum(np, "compression"), 100 * jnum(np, "top1"));
                if (*jstr(np, "error")) printf("; error: %s", jstr(np, "error"));
                if (!strcmp(st, "running"))
                    printf("; the daemon stopped: the job resumes at its next start");
                printf("\n");
            }
            json_t *ans = json_pack("{s:b}", "feasible", json_is_true(json_object_get(np,
                                                                                 "feasible")));
            x = print_state_exit(st, ans);
            json_decref(ans);
            json_decref(n);
            break;
        }
        json_decref(n);
    }
    qt_client_close(cl);
    return x;
}

int qt_cli_watch(int argc, char **argv)
{
    const char *usage = "qtune watch ID [--state DIR] [--json]";
    cli c;
    int64_t id;
    if (parse(&c, argc, argv, NULL, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1 || job_id(&c, c.pos[0], &id)) return QX_USAGE;
    return do_watch(&c, id);
}

/* ------------------------------------------------------------------------ */
/* pareto                                                                    */
/* ------------------------------------------------------------------------ */

int qt_cli_pareto(int argc, char **argv)
{
    static const char *const known[] = { "floor", "plot", "ascii", NULL };
    const char *usage = "qtune pareto ID [--floor ACC] [--plot FILE.svg] [--ascii] "
                        "[--state DIR] [--json]";
    cli c;
    int64_t id;
    if (parse(&c, argc, argv, known, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1 || job_id(&c, c.pos[0], &id)) return QX_USAGE;
    json_t *p = json_pack("{s:I, s:b}", "job", (json_int_t)id, "all",
                          opt(&c, "plot") || opt(&c, "ascii"));
    const char *fl = opt(&c, "floor");
    if (fl) {
        char *end;
        double v = strtod(fl, &end);
        if (!*fl || *end || !isfinite(v)) {
            fprintf(stderr, "qtune pareto: --floor must be a number (a fraction for top-1: "
                    "0.9), not '%s'\n", fl);
            json_decref(p);
            return QX_USAGE;
        }
        json_object_set_new(p, "floor", json_real(v));
    }
    json_t *res;
    int x = call1(&c, "job.pareto", p, &res);
    json_decref(p);
    if (x) return x;
    json_t *front = json_object_get(res, "front"), *e;
    size_t i;
    if (c.json) {
        print_json(res);
    } else {
        printf("job %lld (%s): Pareto front of %d evaluations, %zu points", (long long)id,
               jstr(res, "state"), (int)jnum(res, "evaluations"), json_array_size(front));
        if (isfinite(jnum(res, "float_top1")))
            printf("; float top-1 %.2f%%, constraint >= %.2f%%", 100 * jnum(res, "float_top1"),
                   100 * jnum(res, "threshold"));
        printf("\n  %12s %9s %8s  %s\n", "cost", "compr.", "top-1", "candidate");
        json_array_foreach(front, i, e)
            printf("  %12.4g %8.2fx %7.2f%%  %s%s\n", jnum(e, "cost"), jnum(e, "compression"),
                   100 * jnum(e, "top1"), jstr(e, "reason"),
                   json_is_true(json_object_get(e, "feasible")) ? "" : "  (below the constraint)");
    }
    if (opt(&c, "plot") || opt(&c, "ascii")) {
        json_t *pts = json_object_get(res, "points");
        size_t n = json_array_size(pts);
        qt_plot_pt *pp = calloc(n ? n : 1, sizeof *pp);
        if (!pp) { json_decref(res); return QX_FAIL; }
        int k = 0;
        json_array_foreach(pts, i, e) {
            if (json_object_get(e, "fail") || json_is_true(json_object_get(e, "early"))) continue;
            pp[k].x = jnum(e, "cost");
            pp[k].y = jnum(e, "top1");
            pp[k].feasible = json_is_true(json_object_get(e, "feasible"));
            size_t f;
            json_t *fe;
            json_array_foreach(front, f, fe)
                if (!strcmp(jstr(fe, "key"), jstr(e, "key"))) pp[k].front = 1;
            k++;
        }
        char title[128];
        snprintf(title, sizeof title, "job %lld: Pareto front", (long long)id);
        json_t *cost = json_object_get(res, "cost");
        qt_plot_series s = { "evaluations", pp, k, 0 };
        qt_plot pl;
        qt_plot_init(&pl);
        pl.title = title;
        pl.xlabel = json_is_string(cost) ? json_string_value(cost) : "cost";
        pl.ylabel = "validation top-1";
        pl.series = &s;
        pl.n_series = 1;
        pl.baseline = jnum(res, "float_top1");
        pl.threshold = jnum(res, "threshold");
        pl.baseline_label = "float";
        pl.xlog = 1;
        pl.y_percent = 1;
        qt_error err;
        if (opt(&c, "ascii") && qt_plot_ascii(&pl, 78, 22, c.json ? stderr : stdout)) {
            fprintf(stderr, "qtune pareto: nothing to plot yet\n");
            x = QX_FAIL;
        }
        const char *svg = opt(&c, "plot");
        if (svg) {
            if (qt_plot_svg_file(&pl, svg, &err)) {
                fprintf(stderr, "qtune pareto: %s\n", err.text);
                x = QX_FAIL;
            } else if (!c.json) {
                printf("plot: %s\n", svg);
            }
        }
        free(pp);
    }
    json_decref(res);
    return x;
}

/* ------------------------------------------------------------------------ */
/* cancel, pause, resume                                                     */
/* ------------------------------------------------------------------------ */

static int stop_cmd(int argc, char **argv, const char *method)
{
    char usage[96];
    snprintf(usage, sizeof usage, "qtune %s ID [--state DIR] [--json]", argv[1]);
    cli c;
    int64_t id;
    if (parse(&c, argc, argv, NULL, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1 || job_id(&c, c.pos[0], &id)) return QX_USAGE;
    json_t *res, *p = json_pack("{s:I}", "job", (json_int_t)id);
    int x = call1(&c, method, p, &res);
    if (x) { json_decref(p); return x; }
    /* a running job stops at its next check: wait for its record */
    const char *st = jstr(res, "state");
    double t0 = (double)time(NULL);
    while ((!strcmp(st, "cancelling") || !strcmp(st, "pausing")) && time(NULL) - t0 < c.timeout) {
        usleep(100000);
        json_decref(res);
        if ((x = call1(&c, "job.get", p, &res))) { json_decref(p); return x; }
        st = jstr(res, "state");
    }
    json_decref(p);
    if (c.json) print_json(res);
    else printf("job %lld %s\n", (long long)id, st);
    json_decref(res);
    return QX_OK;
}

int qt_cli_cancel(int argc, char **argv) { return stop_cmd(argc, argv, "job.cancel"); }
int qt_cli_pause(int argc, char **argv) { return stop_cmd(argc, argv, "job.pause"); }

int qt_cli_resume(int argc, char **argv)
{
    static const char *const known[] = { "evaluations", "seconds", "strategy", "watch", NULL };
    const char *usage = "qtune resume ID [--evaluations N] [--seconds S] [--strategy NAME|JSON] "
                        "[--watch] [--state DIR] [--json]";
    cli c;
    int64_t id;
    if (parse(&c, argc, argv, known, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1 || job_id(&c, c.pos[0], &id)) return QX_USAGE;
    json_t *p = json_pack("{s:I}", "job", (json_int_t)id);
    const char *ev = opt(&c, "evaluations"), *sec = opt(&c, "seconds"), *st = opt(&c, "strategy");
    if (ev || sec) {
        json_t *b = json_object();
        char *end;
        if (ev) {
            long long v = strtoll(ev, &end, 10);
            if (!*ev || *end || v < 0) {
                fprintf(stderr, "qtune resume: --evaluations must be an integer >= 0\n");
                json_decref(b); json_decref(p);
                return QX_USAGE;
            }
            json_object_set_new(b, "evaluations", json_integer(v));
        }
        if (sec) {
            double v = strtod(sec, &end);
            if (!*sec || *end || !(v >= 0)) {
                fprintf(stderr, "qtune resume: --seconds must be a number >= 0\n");
                json_decref(b); json_decref(p);
                return QX_USAGE;
            }
            json_object_set_new(b, "seconds", json_real(v));
        }
        json_object_set_new(p, "budget", b);
    }
    if (st) {
        json_t *sj = st[0] == '{' ? json_loads(st, 0, NULL) : json_string(st);
        if (!sj) {
            fprintf(stderr, "qtune resume: --strategy: a name or a JSON object\n");
            json_decref(p);
            return QX_USAGE;
        }
        json_object_set_new(p, "strategy", sj);
    }
    json_t *res;
    int x = call1(&c, "job.resume", p, &res);
    json_decref(p);
    if (x) return x;
    if (c.json) print_json(res);
    else printf("job %lld queued again (it was %s): what the store has is reused\n",
                (long long)id, jstr(res, "was"));
    fflush(stdout);
    json_decref(res);
    return opt(&c, "watch") ? do_watch(&c, id) : QX_OK;
}

/* ------------------------------------------------------------------------ */
/* models, eval                                                              */
/* ------------------------------------------------------------------------ */

int qt_cli_models(int argc, char **argv)
{
    static const char *const known[] = { "register", "name", NULL };
    const char *usage = "qtune models [--register PATH [--name NAME]] [--state DIR] [--json]";
    cli c;
    if (parse(&c, argc, argv, known, 0, usage)) return QX_USAGE;
    json_t *res;
    int x;
    const char *reg = opt(&c, "register");
    if (reg) {
        char buf[PATH_MAX];
        json_t *p = json_pack("{s:s}", "path", local_path(reg, buf, sizeof buf));
        if (opt(&c, "name")) json_object_set_new(p, "name", json_string(opt(&c, "name")));
        x = call1(&c, "model.register", p, &res);
        json_decref(p);
        if (x) return x;
        if (c.json) print_json(res);
        else printf("model %lld: %s (%s), %d nodes, %lld parameters, hash %s\n",
                    (long long)json_integer_value(json_object_get(res, "id")), jstr(res, "name"),
                    jstr(res, "path"), (int)jnum(res, "nodes"), (long long)jnum(res, "params"),
                    jstr(res, "hash"));
        json_decref(res);
        return QX_OK;
    }
    if ((x = call1(&c, "model.list", NULL, &res))) return x;
    if (c.json) { print_json(res); json_decref(res); return QX_OK; }
    printf("models directory: %s\n", jstr(res, "models_dir"));
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(res, "models"), i, e) {
        if (!strcmp(jstr(e, "kind"), "zoo")) printf("  %-24s zoo (untrained)\n", jstr(e, "name"));
        else if (!strcmp(jstr(e, "kind"), "registered"))
            printf("  %-24s registered %.16s  %s\n", jstr(e, "name"), jstr(e, "hash"),
                   json_is_string(json_object_get(e, "path")) ? jstr(e, "path") : "");
        else printf("  %-24s %-10s %10lld bytes\n", jstr(e, "name"), jstr(e, "kind"),
                    (long long)jnum(e, "bytes"));
    }
    json_decref(res);
    return QX_OK;
}

int qt_cli_datasets(int argc, char **argv)
{
    static const char *const known[] = { "register", "images", "labels", "test-images",
                                         "test-labels", "scale", "mean", "std", "val-count",
                                         "val-seed", "classes", NULL };
    const char *usage = "qtune datasets [--register NAME --images F --labels F [--test-images F "
                        "--test-labels F] [--scale S --mean M --std D] [--val-count N] "
                        "[--val-seed S] [--classes K]] [--state DIR] [--json]";
    cli c;
    if (parse(&c, argc, argv, known, 0, usage)) return QX_USAGE;
    json_t *res;
    int x;
    const char *name = opt(&c, "register");
    if (name) {
        static const char *const files[][2] = { { "images", "images" }, { "labels", "labels" },
                                                { "test-images", "test_images" },
                                                { "test-labels", "test_labels" } };
        static const char *const nums[][2] = { { "val-count", "val_count" },
                                               { "val-seed", "val_seed" },
                                               { "classes", "classes" } };
        json_t *p = json_pack("{s:s}", "name", name), *norm = json_object();
        for (int i = 0; i < 4; i++) {
            char buf[PATH_MAX];
            const char *f = opt(&c, files[i][0]);
            if (f) json_object_set_new(p, files[i][1], json_string(local_path(f, buf, sizeof buf)));
        }
        for (int i = 0; i < 3; i++) {
            const char *v = opt(&c, nums[i][0]);
            char *end;
            if (!v) continue;
            long long n = strtoll(v, &end, 10);
            if (!*v || *end) {
                fprintf(stderr, "qtune datasets: --%s must be an integer, not '%s'\n",
                        nums[i][0], v);
                json_decref(p);
                json_decref(norm);
                return QX_USAGE;
            }
            json_object_set_new(p, nums[i][1], json_integer(n));
        }
        const char *nn[] = { "scale", "mean", "std" };
        for (int i = 0; i < 3; i++) {
            const char *v = opt(&c, nn[i]);
            char *end;
            if (!v) continue;
            double d = strtod(v, &end);
            if (!*v || *end) {
                fprintf(stderr, "qtune datasets: --%s must be a number, not '%s'\n", nn[i], v);
                json_decref(p);
                json_decref(norm);
                return QX_USAGE;
            }
            json_object_set_new(norm, nn[i], json_real(d));
        }
        if (json_object_size(norm)) json_object_set(p, "norm", norm);
        json_decref(norm);
        x = call1(&c, "dataset.register", p, &res);
        json_decref(p);
        if (x) return x;
        if (c.json) {
            print_json(res);
        } else {
            json_t *sm = json_object_get(res, "summary"), *sh = json_object_get(sm, "shape");
            printf("dataset %s: %lld images of %lldx%lldx%lld, %lld classes, %lld for "
                   "validation, %lld test images; hash %s\n", jstr(res, "name"),
                   (long long)jnum(sm, "images"),
                   (long long)json_integer_value(json_array_get(sh, 0)),
                   (long long)json_integer_value(json_array_get(sh, 1)),
                   (long long)json_integer_value(json_array_get(sh, 2)),
                   (long long)jnum(sm, "classes"), (long long)jnum(sm, "val_count"),
                   (long long)jnum(sm, "test_images"), jstr(res, "hash"));
        }
        json_decref(res);
        return QX_OK;
    }
    if ((x = call1(&c, "dataset.list", NULL, &res))) return x;
    if (c.json) { print_json(res); json_decref(res); return QX_OK; }
    printf("data directory: %s\n", jstr(res, "data_dir"));
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(res, "datasets"), i, e) {
        json_t *sm = json_object_get(e, "summary");
        if (!strcmp(jstr(e, "kind"), "builtin"))
            printf("  %-24s built in (%s)\n", jstr(e, "name"), jstr(e, "source"));
        else
            printf("  %-24s %lld images, %lld classes, %lld validation  %s\n", jstr(e, "name"),
                   (long long)jnum(sm, "images"), (long long)jnum(sm, "classes"),
                   (long long)jnum(sm, "val_count"),
                   jstr(json_object_get(e, "data"), "train_images"));
    }
    json_decref(res);
    return QX_OK;
}

int qt_cli_eval(int argc, char **argv)
{
    static const char *const known[] = { "remote", "config", "split", "limit", "seed", NULL };
    const char *usage = "qtune eval MODEL --remote [--config JSON|@FILE] [--split val|test] "
                        "[--limit N] [--seed S] [--state DIR] [--json]";
    cli c;
    if (parse(&c, argc, argv, known, 1, usage)) return QX_USAGE;
    if (c.n_pos != 1) { fprintf(stderr, "usage: %s\n", usage); return QX_USAGE; }
    char buf[PATH_MAX];
    json_t *p = json_pack("{s:s}", "model", local_path(c.pos[0], buf, sizeof buf));
    const char *cfg = opt(&c, "config");
    if (cfg) {
        json_error_t je;
        json_t *cj = cfg[0] == '@' ? json_load_file(cfg + 1, 0, &je) : json_loads(cfg, 0, &je);
        if (!cj) {
            fprintf(stderr, "qtune eval: --config: %s (line %d)\n", je.text, je.line);
            json_decref(p);
            return QX_USAGE;
        }
        json_object_set_new(p, "config", cj);
    }
    if (opt(&c, "split")) json_object_set_new(p, "split", json_string(opt(&c, "split")));
    const char *lim = opt(&c, "limit"), *seed = opt(&c, "seed");
    if (lim) json_object_set_new(p, "limit", json_integer(atoll(lim)));
    if (seed) json_object_set_new(p, "seed", json_integer(atoll(seed)));
    json_t *res;
    int x = call1(&c, "eval.run", p, &res);
    json_decref(p);
    if (x) return x;
    if (c.json) print_json(res);
    else printf("%s on %s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld images, %lld non-finite, "
                "%.2f s in the daemon)\n", c.pos[0], jstr(res, "split"), 100 * jnum(res, "top1"),
                100 * jnum(res, "top5"), jnum(res, "loss"), (long long)jnum(res, "images"),
                (long long)jnum(res, "non_finite"), jnum(res, "seconds"));
    json_decref(res);
    return QX_OK;
}

/* ------------------------------------------------------------------------ */
/* server                                                                    */
/* ------------------------------------------------------------------------ */

/* qtuned next to this qtune (the build tree, or an install's bin/) */
static void qtuned_path(char *out, size_t n)
{
    char self[PATH_MAX - 16];
    ssize_t r = readlink("/proc/self/exe", self, sizeof self - 1);
    if (r > 0) {
        self[r] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, n, "%s/qtuned", self);
            if (access(out, X_OK) == 0) return;
        }
    }
    snprintf(out, n, "qtuned");
}

static int server_start(cli *c, int argc, char **argv, int extra)
{
    char bin[PATH_MAX], log[PATH_MAX + 16];
    qtuned_path(bin, sizeof bin);
    qt_client *cl;
    qt_error err;
    if (qt_client_connect(c->where, *c->token ? c->token : NULL, &cl, &err) == QT_OK) {
        qt_client_close(cl);
        fprintf(stderr, "qtune server: a daemon already answers on %s\n", c->where);
        return QX_OK;
    }
    mkdir(c->state, 0700);
    snprintf(log, sizeof log, "%.*s/qtuned.log", PATH_MAX - 16, c->state);
    pid_t pid = fork();
    if (pid < 0) { perror("qtune server: fork"); return QX_FAIL; }
    if (pid == 0) {
        /* detached: its own session, stdio to the log */
        setsid();
        FILE *f = freopen(log, "a", stderr);
        if (!f || !freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout)) _exit(127);
        char *args[64];
        int k = 0;
        args[k++] = bin;
        args[k++] = "--state";
        args[k++] = c->state;
        for (int i = extra; i < argc && k < 62; i++) args[k++] = argv[i];
        args[k] = NULL;
        execvp(bin, args);
        fprintf(stderr, "qtune server start: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    /* ready when it answers */
    for (int i = 0; i < 300; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "qtune server: qtuned exited at start (status %d): see %s\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1, log);
            return QX_FAIL;
        }
        if (qt_client_connect(c->where, *c->token ? c->token : NULL, &cl, &err) == QT_OK) {
            qt_client_close(cl);
            printf("qtuned started (pid %d) on %s; log %s\n", (int)pid, c->where, log);
            return QX_OK;
        }
        usleep(100000);
    }
    fprintf(stderr, "qtune server: qtuned (pid %d) does not answer on %s after 30 s: see %s\n",
            (int)pid, c->where, log);
    return QX_FAIL;
}

static int server_stop(cli *c)
{
    json_t *res;
    int x = call1(c, "server.info", NULL, &res);
    if (x) return x;
    int pid = (int)jnum(res, "pid");
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof lock, "%.*s.lock", PATH_MAX - 1, jstr(res, "db"));
    json_decref(res);
    /* the daemon holds a lock on its database until it has exited */
    int fd = open(lock, O_RDONLY | O_CLOEXEC);
    if ((x = call1(c, "server.shutdown", NULL, &res))) { if (fd >= 0) close(fd); return x; }
    json_decref(res);
    int gone = 0;
    for (int i = 0; i < 1200 && !gone; i++) {
        if (fd >= 0) gone = flock(fd, LOCK_SH | LOCK_NB) == 0;
        else gone = pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
        if (!gone) usleep(50000);
    }
    if (fd >= 0) close(fd);
    if (!gone) {
        fprintf(stderr, "qtune server: qtuned (pid %d) is still stopping after 60 s (its "
                "evaluations in flight end at their next check)\n", pid);
        return QX_FAIL;
    }
    printf("qtuned (pid %d) stopped; running jobs resume at its next start\n", pid);
    return QX_OK;
}

int qt_cli_server(int argc, char **argv)
{
    const char *usage = "qtune server [info|stats|start [-- QTUNED-FLAGS]|stop] [--state DIR] "
                        "[--json]";
    int all = argc, extra = argc;
    for (int i = 2; i < argc; i++) if (!strcmp(argv[i], "--")) { extra = i + 1; argc = i; break; }
    cli c;
    if (parse(&c, argc, argv, NULL, 1, usage)) return QX_USAGE;
    const char *what = c.n_pos ? c.pos[0] : "info";
    if (!strcmp(what, "start")) return server_start(&c, all, argv, extra);
    if (!strcmp(what, "stop")) return server_stop(&c);
    if (strcmp(what, "info") && strcmp(what, "stats") && strcmp(what, "status")) {
        fprintf(stderr, "usage: %s\n", usage);
        return QX_USAGE;
    }
    json_t *res;
    int x = call1(&c, !strcmp(what, "stats") ? "server.stats" : "server.info", NULL, &res);
    if (x) return x;
    if (c.json || !strcmp(what, "stats")) {
        print_json(res);
    } else {
        json_t *tcp = json_object_get(res, "tcp");
        char tcps[128] = "off";
        if (json_is_object(tcp))
            snprintf(tcps, sizeof tcps, "%s:%d", jstr(tcp, "host"), (int)jnum(tcp, "port"));
        printf("qtuned %s, pid %d, up %.0f s\n  socket   %s\n  tcp      %s\n  database %s\n"
               "  models   %s\n  jobs     %d at once\n", jstr(res, "version"),
               (int)jnum(res, "pid"), jnum(res, "uptime"), jstr(res, "socket"), tcps,
               jstr(res, "db"), jstr(res, "models"), (int)jnum(res, "jobs"));
    }
    json_decref(res);
    return QX_OK;
}
