/*
 * test_daemon.c -- qtuned driven by the qtune client and by raw sockets.
 * Each test starts its own daemon on a temporary state directory.
 *
 *   job_life         submit, subscribe (a snapshot, then progress until
 *                    job.end; a late subscriber's snapshot), done state,
 *                    answer, Pareto front, evaluations; the CLI's status,
 *                    watch, pareto --plot/--ascii, list, server; socket mode
 *   many_clients     50 concurrent clients submitting and querying at once
 *   bad_requests     malformed JSON, batches (answers in one array,
 *                    notifications unanswered, empty and oversize ones
 *                    refused), bad envelopes, unknown method,
 *                    wrong parameter types, unknown parameters and jobs,
 *                    models outside the models directory, state conflicts,
 *                    an oversize request, a client leaving mid-request, a
 *                    slow client, a client that never reads; after each,
 *                    the daemon still answers
 *   datasets         dataset.register (gzip or not; files outside the
 *                    data directory, missing, of a wrong magic, truncated,
 *                    of mismatched counts, labels >= classes, test images
 *                    of other dims: refused naming the file), dataset.list,
 *                    jobs on a registered dataset (the data filled in by
 *                    the daemon; other data, other keys; the same data,
 *                    everything reused), a dataset the model does not fit
 *                    (the job fails naming the file), eval.run on it
 *   tcp_token        loopback TCP: nothing before server.auth, a wrong
 *                    token refused, the right one accepted
 *   second_daemon    a second qtuned on the same database is refused,
 *                    naming the first one's pid
 *   kill9_resume     SIGKILL mid-job, restart: the job finishes with the
 *                    history of an uninterrupted run and nothing computed
 *                    twice (store counts against `qtune tune`)
 *   sigterm_resume   SIGTERM mid-job: exit 0, the job queued again, the
 *                    next start finishes it reusing what was stored
 *   disk_full_resumes  the disk fills mid-job: paused, retried, goes on
 *   rate_limit       a burst beyond --burst on one connection: the excess
 *                    refused with the time to wait, another connection
 *                    served meanwhile, the first served again after it
 *   eval_limits      --max-evals 1: a second client's eval.run (and a
 *                    second of the same client's) refused as busy; the
 *                    slot back after the answer, an error, a client gone
 *   resume_recheck   jobs on registered datasets resumed at start: a
 *                    removed file and changed content fail their jobs
 *                    naming the file, the other job finishes; job.resume
 *                    checks again
 *   dataset_classes  a 3-class dataset fits a 10-output model; 12 classes
 *                    do not: job.submit, eval.run and a run say so naming
 *                    the model, its output and both counts
 */
#define _GNU_SOURCE 1   /* prlimit */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef QT_SOURCE_DIR
#define QT_SOURCE_DIR "."
#endif
#ifndef QTUNED_BIN
#define QTUNED_BIN "qtuned"
#endif
#ifndef QTUNE_BIN
#define QTUNE_BIN "qtune"
#endif

#define MODELS QT_SOURCE_DIR "/experiments/models"

/* a job that takes about a second: the MLP, 500 images */
static const char *small_job =
    "{\"model\": \"mlp.qtck\", \"space\": [{\"nodes\": \"*\", \"points\": [\"weights\"], "
    "\"types\": [\"fixed\"], \"widths\": [2, 8]}], \"strategy\": \"bisection\", "
    "\"val_limit\": 500}";
/* a job long enough to be stopped mid-way: LeNet-5, greedy, ~25 evaluations */
static const char *long_job =
    "{\"model\": \"lenet5.qtck\", \"space\": [{\"nodes\": \"*\", \"points\": [\"weights\"], "
    "\"types\": [\"fixed\"], \"widths\": [2, 8]}], \"strategy\": \"greedy\", "
    "\"val_limit\": 2000}";

static char tmp[128];          /* this test's directory */
static char state[192], sock[256], logf_[256];
static pid_t daemon_pid;
static double t_start;
static double mono(void);

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

static void write_all_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void dump_log(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tail -n 40 '%s' >&2", logf_);
    if (system(cmd)) {}
}

/* ------------------------------------------------------------------------ */
/* The daemon                                                                */
/* ------------------------------------------------------------------------ */

/* start qtuned on this test's state; extra: NULL-terminated flags */
static pid_t start_daemon(const char *const *extra)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *args[40] = { QTUNED_BIN, "--state", state, "--models", MODELS,
                                 "--request-timeout", "1", "--max-request", "65536",
                                 "--max-backlog", "4096", "--log-level", "debug" };
        int k = 13;
        for (int i = 0; extra && extra[i] && k < 38; i++) args[k++] = extra[i];
        args[k] = NULL;
        int fd = open(logf_, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) { dup2(fd, 2); dup2(fd, 1); close(fd); }
        execv(QTUNED_BIN, (char **)args);
        _exit(127);
    }
    /* ready once the socket answers */
    double t0 = mono();
    for (;;) {
        qt_client *c;
        qt_error err;
        if (qt_client_connect(sock, NULL, &c, &err) == QT_OK) { qt_client_close(c); break; }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            dump_log();
            fail_msg("qtuned exited at start (status %d)", st);
        }
        if (mono() - t0 > 60) { dump_log(); fail_msg("qtuned does not answer on %s", sock); }
        sleep_ms(20);
    }
    daemon_pid = pid;
    return pid;
}

/* signal the daemon and wait for it: its exit status */
static int stop_daemon(pid_t pid, int sig)
{
    int st;
    kill(pid, sig);
    double t0 = mono();
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (mono() - t0 > 120) { dump_log(); kill(pid, SIGKILL); fail_msg("qtuned did not stop"); }
        sleep_ms(20);
    }
    daemon_pid = 0;
    return st;
}

static int setup(void **st)
{
    (void)st;
    snprintf(tmp, sizeof tmp, "/tmp/qt_daemon_XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    snprintf(state, sizeof state, "%s/state", tmp);
    snprintf(sock, sizeof sock, "%s/qtuned.sock", state);
    snprintf(logf_, sizeof logf_, "%s/qtuned.log", tmp);
    daemon_pid = 0;
    t_start = mono();
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    if (daemon_pid > 0) { kill(daemon_pid, SIGKILL); waitpid(daemon_pid, NULL, 0); }
    print_message("  (%.1f s)\n", mono() - t_start);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */
/* ------------------------------------------------------------------------ */

static qt_client *client(void)
{
    qt_client *c;
    qt_error err;
    if (qt_client_connect(sock, NULL, &c, &err)) fail_msg("connect: %s", err.text);
    qt_client_set_timeout(c, 120);
    return c;
}

/* call and expect success (params stolen); result: new reference */
static json_t *ok(qt_client *c, const char *method, json_t *params)
{
    json_t *res;
    int code;
    qt_error err;
    int rc = qt_client_call(c, method, params, &res, &code, &err);
    json_decref(params);
    if (rc) { dump_log(); fail_msg("%s: %d %s", method, code, err.text); }
    return res;
}

/* call and expect the error code (params stolen) */
static void expect_error(qt_client *c, const char *method, json_t *params, int want)
{
    json_t *res;
    int code;
    qt_error err;
    int rc = qt_client_call(c, method, params, &res, &code, &err);
    json_decref(params);
    if (rc == QT_OK) { json_decref(res); fail_msg("%s: succeeded, expected error %d", method, want); }
    if (code != want) fail_msg("%s: error %d (%s), expected %d", method, code, err.text, want);
}

static json_t *job_params(int64_t id)
{
    return json_pack("{s:I}", "job", (json_int_t)id);
}

static int64_t submit(qt_client *c, const char *spec)
{
    json_t *j = json_loads(spec, 0, NULL);
    assert_non_null(j);
    json_t *res = ok(c, "job.submit", json_pack("{s:o}", "job", j));
    int64_t id = (int64_t)json_integer_value(json_object_get(res, "job"));
    assert_true(id > 0);
    assert_string_equal(json_string_value(json_object_get(res, "state")), "queued");
    json_decref(res);
    return id;
}

/* subscribe; follow the progress notifications until job.end or until n
 * evaluations were seen (n > 0): the first is the snapshot of the job's
 * progress, then one per evaluation, none lost (those already counted in
 * the snapshot may follow it); returns the evaluations seen; *end:
 * job.end's params (new) or NULL */
static int follow(qt_client *c, int64_t id, int n, json_t **end)
{
    json_t *res = ok(c, "job.subscribe", job_params(id));
    assert_true(json_is_true(json_object_get(res, "subscribed")));
    json_decref(res);
    int seen = -1;
    *end = NULL;
    for (;;) {
        json_t *note;
        qt_error err;
        if (qt_client_read(c, 120, &note, &err)) { dump_log(); fail_msg("notification: %s", err.text); }
        const char *m = json_string_value(json_object_get(note, "method"));
        json_t *p = json_object_get(note, "params");
        assert_int_equal(json_integer_value(json_object_get(p, "job")), id);
        if (!strcmp(m, "job.end")) {
            assert_true(seen >= 0);
            *end = json_incref(p);
            json_decref(note);
            return seen;
        }
        assert_string_equal(m, "job.progress");
        int evals = (int)json_integer_value(json_object_get(p, "evals"));
        int snap = json_is_true(json_object_get(p, "snapshot"));
        assert_int_equal(snap, seen < 0);        /* the snapshot first, and only then */
        if (snap) seen = evals;
        else if (evals > seen) assert_int_equal(evals, ++seen);
        json_decref(note);
        if (n > 0 && seen >= n) return seen;
    }
}

/* run the client: exit code; its stdout in out (if not NULL) */
static int cli(char *out, size_t n, const char *const *args)
{
    char outf[256];
    snprintf(outf, sizeof outf, "%s/cli.out", tmp);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[32] = { QTUNE_BIN };
        int k = 1;
        for (int i = 0; args[i] && k < 29; i++) argv[k++] = args[i];
        argv[k++] = "--state";
        argv[k++] = state;
        argv[k] = NULL;
        int fd = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) { dup2(fd, 1); close(fd); }
        execv(QTUNE_BIN, (char **)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    if (out) {
        FILE *f = fopen(outf, "r");
        size_t r = f ? fread(out, 1, n - 1, f) : 0;
        if (f) fclose(f);
        out[r] = 0;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------------ */
/* Raw sockets                                                               */
/* ------------------------------------------------------------------------ */

static int raw_connect(void)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%.100s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void raw_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;            /* the daemon may have closed it: the caller checks */
        s += w;
        n -= (size_t)w;
    }
}

static char rbuf[1 << 16];
static size_t rlen;

/* the next line as JSON, NULL at EOF; fails after timeout seconds */
static json_t *raw_line(int fd, double timeout)
{
    double t0 = mono();
    for (;;) {
        char *nl = memchr(rbuf, '\n', rlen);
        if (nl) {
            size_t n = (size_t)(nl - rbuf);
            json_t *j = json_loadb(rbuf, n, 0, NULL);
            memmove(rbuf, nl + 1, rlen - n - 1);
            rlen -= n + 1;
            assert_non_null(j);
            return j;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        int left = (int)((timeout - (mono() - t0)) * 1000);
        if (left <= 0) fail_msg("no answer within %g s", timeout);
        if (poll(&p, 1, left) <= 0) continue;
        ssize_t r = recv(fd, rbuf + rlen, sizeof rbuf - rlen, 0);
        if (r <= 0) return NULL;
        rlen += (size_t)r;
    }
}

/* send a line, expect an error with code want (id null or the request's) */
static void raw_expect(int fd, const char *line, int want)
{
    rlen = 0;
    raw_send(fd, line, strlen(line));
    raw_send(fd, "\n", 1);
    json_t *j = raw_line(fd, 30);
    if (!j) fail_msg("connection closed after %s", line);
    json_t *e = json_object_get(j, "error");
    if (!e) fail_msg("no error for %s", line);
    int code = (int)json_integer_value(json_object_get(e, "code"));
    if (code != want)
        fail_msg("%s: error %d (%s), expected %d", line, code,
                 json_string_value(json_object_get(e, "message")), want);
    assert_string_equal(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
    assert_non_null(json_object_get(j, "id"));
    json_decref(j);
}

/* the daemon answers server.info on a new connection */
static void still_serving(void)
{
    qt_client *c = client();
    json_t *r = ok(c, "server.info", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "pid")), daemon_pid);
    json_decref(r);
    qt_client_close(c);
}

/* ------------------------------------------------------------------------ */
/* A job's whole life                                                        */
/* ------------------------------------------------------------------------ */

static void job_life(void **st)
{
    (void)st;
    start_daemon(NULL);
    struct stat sb;
    assert_int_equal(stat(sock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    qt_client *c = client();
    int64_t id = submit(c, small_job);
    /* in the store before the answer: another connection sees it */
    qt_client *c2 = client();
    json_t *g = ok(c2, "job.get", job_params(id));
    assert_int_equal(json_integer_value(json_object_get(g, "id")), id);
    json_decref(g);
    qt_client_close(c2);

    json_t *end;
    int seen = follow(c, id, 0, &end);
    assert_true(seen >= 3);
    assert_string_equal(json_string_value(json_object_get(end, "state")), "done");
    assert_int_equal(json_integer_value(json_object_get(end, "evals")), seen);
    assert_true(json_is_true(json_object_get(end, "feasible")));
    json_decref(end);

    g = ok(c, "job.get", job_params(id));
    assert_string_equal(json_string_value(json_object_get(g, "state")), "done");
    assert_int_equal(json_integer_value(json_object_get(g, "evals")), seen);
    assert_int_equal(json_integer_value(json_object_get(g, "runs")), 1);
    json_t *ans = json_object_get(g, "answer");
    assert_true(json_is_true(json_object_get(ans, "feasible")));
    double top1 = json_number_value(json_object_get(ans, "top1"));
    double thr = json_number_value(json_object_get(ans, "threshold"));
    assert_true(top1 >= thr && thr > 0.5);
    assert_true(json_is_object(json_object_get(ans, "config")));
    assert_true(json_is_null(json_object_get(g, "live")));
    json_decref(g);

    json_t *p = ok(c, "job.pareto", json_pack("{s:I, s:b}", "job", (json_int_t)id, "all", 1));
    json_t *front = json_object_get(p, "front");
    assert_true(json_array_size(front) >= 1);
    double last_cost = -1, last_acc = -1;
    size_t i;
    json_t *e;
    json_array_foreach(front, i, e) {
        double cost = json_number_value(json_object_get(e, "cost"));
        double acc = json_number_value(json_object_get(e, "acc"));
        assert_true(cost > last_cost);             /* by cost, each better than the last */
        if (i) assert_true(acc > last_acc);
        assert_non_null(json_string_value(json_object_get(e, "reason")));
        last_cost = cost;
        last_acc = acc;
    }
    assert_int_equal(json_array_size(json_object_get(p, "points")), seen);
    assert_true(fabs(json_number_value(json_object_get(p, "threshold")) - thr) < 1e-12);
    json_decref(p);
    /* an accuracy floor above the cheapest point's leaves fewer points */
    p = ok(c, "job.pareto", json_pack("{s:I, s:f}", "job", (json_int_t)id, "floor", last_acc));
    assert_int_equal(json_array_size(json_object_get(p, "front")), 1);
    json_decref(p);
    p = ok(c, "job.evaluations", json_pack("{s:I, s:i, s:i}", "job", (json_int_t)id,
                                          "offset", 1, "limit", 2));
    assert_int_equal(json_integer_value(json_object_get(p, "total")), seen);
    assert_int_equal(json_array_size(json_object_get(p, "evaluations")), 2);
    assert_int_equal(json_integer_value(json_object_get(
        json_array_get(json_object_get(p, "evaluations"), 0), "seq")), 2);
    json_decref(p);
    p = ok(c, "server.stats", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "jobs"), "done")), 1);
    json_decref(p);
    p = ok(c, "eval.run", json_pack("{s:s, s:s, s:i}", "model", "mlp.qtck", "config",
                                   "{\"default\": {\"weights\": \"fixed<8,6>\"}}", "limit", 200));
    assert_int_equal(json_integer_value(json_object_get(p, "images")), 200);
    assert_true(json_number_value(json_object_get(p, "top1")) > 0.8);
    json_decref(p);
    qt_client_close(c);

    /* the client */
    static char out[65536];
    char ids[16], svg[256];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    snprintf(svg, sizeof svg, "%s/front.svg", tmp);
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "status", ids, NULL }), 0);
    assert_non_null(strstr(out, "done"));
    assert_non_null(strstr(out, "answer"));
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "watch", ids, NULL }), 0);
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "pareto", ids, "--plot", svg,
                                                            "--ascii", NULL }), 0);
    assert_non_null(strstr(out, "Pareto front"));
    assert_non_null(strstr(out, "constraint"));
    FILE *f = fopen(svg, "r");
    assert_non_null(f);
    char head[256] = "";
    size_t r = fread(head, 1, sizeof head - 1, f);
    head[r] = 0;
    fclose(f);
    assert_non_null(strstr(head, "<svg"));
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "list", NULL }), 0);
    assert_non_null(strstr(out, "mlp.qtck"));
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "list", "--json", NULL }), 0);
    json_t *lj = json_loads(out, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(lj, "jobs")), 1);
    json_decref(lj);
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "server", NULL }), 0);
    assert_non_null(strstr(out, sock));
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "models", NULL }), 0);
    assert_non_null(strstr(out, "lenet5.qtck"));
    /* errors: usage 2, no such job 2, a done job cannot be cancelled 2 */
    assert_int_equal(cli(NULL, 0, (const char *[]){ "status", "x", NULL }), 2);
    assert_int_equal(cli(NULL, 0, (const char *[]){ "status", "999", NULL }), 2);
    assert_int_equal(cli(NULL, 0, (const char *[]){ "cancel", ids, NULL }), 2);
    /* a submit through the client, then cancelled while queued or running */
    char jobf[256];
    snprintf(jobf, sizeof jobf, "%s/job.json", tmp);
    f = fopen(jobf, "w");
    fprintf(f, "%s", long_job);
    fclose(f);
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "submit", jobf, "--relative", "0.98",
                                                            NULL }), 0);
    assert_non_null(strstr(out, "job 2 submitted"));
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "cancel", "2", NULL }), 0);
    assert_non_null(strstr(out, "cancelled"));
    assert_int_equal(cli(NULL, 0, (const char *[]){ "watch", "2", NULL }), 5);

    /* pause a running job, resume it with a smaller budget: it replays what
     * it stored and stops at the budget, done */
    c = client();
    int64_t id3 = submit(c, long_job);
    seen = follow(c, id3, 2, &end);
    assert_null(end);
    /* a late subscriber first gets the job's progress so far */
    c2 = client();
    json_t *r3 = ok(c2, "job.subscribe", job_params(id3));
    assert_true(json_is_true(json_object_get(r3, "subscribed")));
    json_decref(r3);
    json_t *snap;
    qt_error es;
    if (qt_client_read(c2, 60, &snap, &es)) fail_msg("no snapshot: %s", es.text);
    assert_string_equal(json_string_value(json_object_get(snap, "method")), "job.progress");
    json_t *sp = json_object_get(snap, "params");
    assert_true(json_is_true(json_object_get(sp, "snapshot")));
    assert_int_equal(json_integer_value(json_object_get(sp, "job")), id3);
    assert_true(json_integer_value(json_object_get(sp, "evals")) >= 2);
    assert_non_null(json_object_get(sp, "best"));
    json_decref(snap);
    qt_client_close(c2);
    r3 = ok(c, "job.pause", job_params(id3));
    assert_string_equal(json_string_value(json_object_get(r3, "state")), "pausing");
    json_decref(r3);
    double t0 = mono();
    const char *s3 = "pausing";
    do {
        json_t *n3;
        qt_error e3;
        if (qt_client_read(c, 120, &n3, &e3)) fail_msg("%s", e3.text);
        int is_end = !strcmp(json_string_value(json_object_get(n3, "method")), "job.end");
        if (is_end) {
            s3 = "ended";
            assert_string_equal(json_string_value(json_object_get(json_object_get(n3, "params"),
                                                                  "state")), "paused");
        }
        json_decref(n3);
    } while (strcmp(s3, "ended") && mono() - t0 < 120);
    g = ok(c, "job.get", job_params(id3));
    assert_string_equal(json_string_value(json_object_get(g, "state")), "paused");
    int stored = (int)json_integer_value(json_object_get(g, "evals"));
    assert_true(stored >= 2);
    json_decref(g);
    expect_error(c, "job.pause", job_params(id3), QT_RPC_STATE);
    r3 = ok(c, "job.resume", json_pack("{s:I, s:{s:i}}", "job", (json_int_t)id3, "budget",
                                       "evaluations", stored + 2));
    assert_string_equal(json_string_value(json_object_get(r3, "was")), "paused");
    json_decref(r3);
    expect_error(c, "job.resume", job_params(id3), QT_RPC_STATE);
    seen = follow(c, id3, 0, &end);
    assert_string_equal(json_string_value(json_object_get(end, "state")), "done");
    assert_int_equal(json_integer_value(json_object_get(end, "evals")), stored + 2);
    assert_int_equal(json_integer_value(json_object_get(end, "reused")), stored);
    json_decref(end);
    g = ok(c, "job.get", job_params(id3));
    assert_int_equal(json_integer_value(json_object_get(g, "runs")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(g, "spec"),
                                                                        "budget"), "evaluations")),
                     stored + 2);
    json_decref(g);
    qt_client_close(c);

    assert_int_equal(cli(out, sizeof out, (const char *[]){ "server", "stop", NULL }), 0);
    int st2;
    assert_int_equal(waitpid(daemon_pid, &st2, 0), daemon_pid);
    daemon_pid = 0;
    assert_true(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
    assert_int_equal(cli(NULL, 0, (const char *[]){ "server", NULL }), 4);
}

/* ------------------------------------------------------------------------ */
/* Fifty clients at once                                                     */
/* ------------------------------------------------------------------------ */

#define N_CLIENTS 50

typedef struct worker { int no; int64_t id; int calls; char error[256]; } worker;

static void *client_thread(void *arg)
{
    worker *w = arg;
    qt_client *c;
    qt_error err;
    json_t *res;
    int code;
    if (qt_client_connect(sock, NULL, &c, &err)) {
        snprintf(w->error, sizeof w->error, "connect: %s", err.text);
        return NULL;
    }
    qt_client_set_timeout(c, 120);
    char spec[512];
    snprintf(spec, sizeof spec, "{\"model\": \"mlp.qtck\", \"strategy\": \"uniform\", "
             "\"val_limit\": 100, \"seed\": %d, \"budget\": {\"evaluations\": 1}}", w->no + 1);
    json_t *p = json_pack("{s:s}", "job", spec);
    if (qt_client_call(c, "job.submit", p, &res, &code, &err)) goto fail;
    json_decref(p);
    p = NULL;
    w->id = (int64_t)json_integer_value(json_object_get(res, "job"));
    json_decref(res);
    w->calls++;
    static const char *const methods[] = { "job.get", "job.list", "server.stats", "job.pareto",
                                           "job.evaluations", "server.info", NULL };
    for (int round = 0; round < 2; round++)
        for (int k = 0; methods[k]; k++) {
            int needs_job = !strncmp(methods[k], "job.", 4) && strcmp(methods[k], "job.list");
            p = needs_job ? json_pack("{s:I}", "job", (json_int_t)w->id) : NULL;
            if (qt_client_call(c, methods[k], p, &res, &code, &err)) goto fail;
            if (!strcmp(methods[k], "job.get") &&
                json_integer_value(json_object_get(res, "id")) != w->id) {
                snprintf(w->error, sizeof w->error, "job.get answered another job");
                json_decref(res);
                json_decref(p);
                qt_client_close(c);
                return NULL;
            }
            json_decref(res);
            json_decref(p);
            p = NULL;
            w->calls++;
        }
    p = json_pack("{s:I}", "job", (json_int_t)w->id);
    /* done already is fine (a job of one evaluation may end first) */
    if (qt_client_call(c, "job.cancel", p, &res, &code, &err) && code != QT_RPC_STATE) goto fail;
    json_decref(res);
    json_decref(p);
    w->calls++;
    qt_client_close(c);
    return NULL;
fail:
    snprintf(w->error, sizeof w->error, "call %d: %d %s", w->calls, code, err.text);
    json_decref(p);
    qt_client_close(c);
    return NULL;
}

static void many_clients(void **st)
{
    (void)st;
    start_daemon(NULL);
    pthread_t th[N_CLIENTS];
    static worker w[N_CLIENTS];
    double t0 = mono();
    for (int i = 0; i < N_CLIENTS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].no = i;
        assert_int_equal(pthread_create(&th[i], NULL, client_thread, &w[i]), 0);
    }
    for (int i = 0; i < N_CLIENTS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_CLIENTS; i++) {
        if (w[i].error[0]) { dump_log(); fail_msg("client %d: %s", i, w[i].error); }
        assert_int_equal(w[i].calls, 14);
        for (int k = 0; k < i; k++) assert_true(w[k].id != w[i].id);
    }
    print_message("  %d clients, %d calls each, in %.2f s\n", N_CLIENTS, w[0].calls, mono() - t0);
    /* every job stored, each cancelled or done, nothing left running */
    qt_client *c = client();
    double t1 = mono();
    int active;
    do {
        active = 0;
        json_t *l = ok(c, "job.list", NULL), *j;
        size_t i;
        assert_int_equal(json_array_size(json_object_get(l, "jobs")), N_CLIENTS);
        json_array_foreach(json_object_get(l, "jobs"), i, j) {
            const char *s = json_string_value(json_object_get(j, "state"));
            if (strcmp(s, "cancelled") && strcmp(s, "done")) active++;
        }
        json_decref(l);
        if (active) sleep_ms(50);
    } while (active && mono() - t1 < 60);
    assert_int_equal(active, 0);
    json_t *s = ok(c, "server.stats", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "jobs"), "running")), 0);
    assert_true(json_integer_value(json_object_get(s, "accepted")) >= N_CLIENTS + 1);
    json_decref(s);
    qt_client_close(c);
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

/* ------------------------------------------------------------------------ */
/* Bad requests                                                              */
/* ------------------------------------------------------------------------ */

static void bad_requests(void **st)
{
    (void)st;
    start_daemon(NULL);
    int fd = raw_connect();
    /* malformed JSON, then the same connection still answers */
    raw_expect(fd, "{\"jsonrpc\": \"2.0\", \"method\": ", QT_RPC_PARSE_ERROR);
    raw_expect(fd, "not json at all", QT_RPC_PARSE_ERROR);
    raw_expect(fd, "[]", QT_RPC_INVALID_REQUEST);               /* an empty batch */
    raw_expect(fd, "42", QT_RPC_INVALID_REQUEST);
    raw_expect(fd, "{\"method\":\"server.info\",\"id\":1}", QT_RPC_INVALID_REQUEST);
    raw_expect(fd, "{\"jsonrpc\":\"1.0\",\"method\":\"server.info\",\"id\":1}", QT_RPC_INVALID_REQUEST);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":1}", QT_RPC_INVALID_REQUEST);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":{}}", QT_RPC_INVALID_REQUEST);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1,\"extra\":1}",
               QT_RPC_INVALID_REQUEST);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1,\"id\":2}",
               QT_RPC_PARSE_ERROR);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"no.such\",\"id\":1}", QT_RPC_NO_METHOD);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"params\":[1],\"id\":1}",
               QT_RPC_INVALID_PARAMS);
    raw_expect(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"params\":\"x\",\"id\":1}",
               QT_RPC_INVALID_PARAMS);
    /* a good request on the same connection */
    rlen = 0;
    const char *good = "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":\"a\"}\n";
    raw_send(fd, good, strlen(good));
    json_t *j = raw_line(fd, 30);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a");
    assert_non_null(json_object_get(j, "result"));
    json_decref(j);
    /* a notification (no id) is not answered: the next answer is the next request's */
    const char *two = "{\"jsonrpc\":\"2.0\",\"method\":\"server.stats\"}\n"
                      "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":2}\n";
    raw_send(fd, two, strlen(two));
    j = raw_line(fd, 30);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 2);
    json_decref(j);
    /* batches: one array of answers, notifications unanswered, each request
     * checked on its own (a loop call, pool calls, errors of each kind) */
    const char *batch =
        "[{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"server.stats\"},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"no.such\",\"id\":2},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"job.get\",\"params\":{\"job\":9999},\"id\":3},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"job.list\",\"id\":\"four\"},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"job.get\",\"params\":{\"job\":\"x\"},\"id\":5},"
        "5]\n";
    rlen = 0;
    raw_send(fd, batch, strlen(batch));
    j = raw_line(fd, 30);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 6);
    int got[7] = { 0 };
    size_t bi;
    json_t *be;
    json_array_foreach(j, bi, be) {
        json_t *idv = json_object_get(be, "id");
        int code = (int)json_integer_value(json_object_get(json_object_get(be, "error"), "code"));
        if (json_is_null(idv)) { assert_int_equal(code, QT_RPC_INVALID_REQUEST); got[0]++; continue; }
        if (json_is_string(idv)) {
            assert_string_equal(json_string_value(idv), "four");
            assert_true(json_is_array(json_object_get(json_object_get(be, "result"), "jobs")));
            got[4]++;
            continue;
        }
        int k = (int)json_integer_value(idv);
        assert_true(k >= 1 && k <= 5 && k != 4);
        got[k]++;
        if (k == 1) assert_non_null(json_object_get(json_object_get(be, "result"), "pid"));
        if (k == 2) assert_int_equal(code, QT_RPC_NO_METHOD);
        if (k == 3) assert_int_equal(code, QT_RPC_NOT_FOUND);
        if (k == 5) assert_int_equal(code, QT_RPC_INVALID_PARAMS);
    }
    for (int k = 0; k <= 5; k++) assert_int_equal(got[k], 1);
    json_decref(j);
    /* requests that are not objects: one error each */
    rlen = 0;
    raw_send(fd, "[1, \"x\"]\n", 9);
    j = raw_line(fd, 30);
    assert_int_equal(json_array_size(j), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(j, 1),
                                                                        "error"), "code")),
                     QT_RPC_INVALID_REQUEST);
    json_decref(j);
    /* a batch of notifications only: no answer at all */
    const char *quiet = "[{\"jsonrpc\":\"2.0\",\"method\":\"server.stats\"},"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"job.list\"}]\n"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":6}\n";
    raw_send(fd, quiet, strlen(quiet));
    j = raw_line(fd, 30);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 6);
    json_decref(j);
    /* bounded: more than 256 requests in one batch */
    {
        static char big[300 * 64];
        size_t at = 0;
        big[at++] = '[';
        for (int k = 0; k < 300; k++)
            at += (size_t)snprintf(big + at, sizeof big - at, "%s{\"jsonrpc\":\"2.0\","
                                   "\"method\":\"server.info\",\"id\":%d}", k ? "," : "", k);
        big[at++] = ']';
        big[at] = 0;
        raw_expect(fd, big, QT_RPC_INVALID_REQUEST);
    }
    close(fd);

    qt_client *c = client();
    /* wrong types, unknown and missing parameters, unknown jobs */
    expect_error(c, "job.get", json_pack("{s:s}", "job", "1"), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.get", json_pack("{s:f}", "job", 1.5), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.get", json_pack("{s:i}", "job", 0), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.get", json_pack("{s:i}", "job", -3), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.get", json_pack("{}"), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.get", json_pack("{s:i, s:i}", "job", 1, "jbo", 1), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.get", json_pack("{s:i}", "job", 9999), QT_RPC_NOT_FOUND);
    expect_error(c, "job.cancel", json_pack("{s:i}", "job", 9999), QT_RPC_NOT_FOUND);
    expect_error(c, "job.pareto", json_pack("{s:i, s:s}", "job", 1, "floor", "high"),
                 QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.list", json_pack("{s:s}", "state", "sleeping"), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.submit", json_pack("{s:i}", "job", 3), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.submit", json_pack("{s:s}", "job", "{\"model\": "), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.submit", json_pack("{s:{s:s, s:i}}", "job", "model", "mlp.qtck",
                                            "val_limit", -1), QT_RPC_INVALID_PARAMS);
    expect_error(c, "job.submit", json_pack("{s:{s:s, s:s}}", "job", "model", "mlp.qtck",
                                            "strategy", "magic"), QT_RPC_INVALID_PARAMS);
    /* models outside the models directory */
    expect_error(c, "job.submit", json_pack("{s:{s:s}}", "job", "model", "/etc/passwd"),
                 QT_RPC_FORBIDDEN);
    expect_error(c, "job.submit", json_pack("{s:{s:s}}", "job", "model",
                                            "../../CMakeLists.txt"), QT_RPC_FORBIDDEN);
    expect_error(c, "job.submit", json_pack("{s:{s:s}}", "job", "model", "nope.qtck"),
                 QT_RPC_NOT_FOUND);
    expect_error(c, "model.register", json_pack("{s:s}", "path", "../README.md"),
                 QT_RPC_FORBIDDEN);
    expect_error(c, "eval.run", json_pack("{s:s}", "model", "/etc/hostname"), QT_RPC_FORBIDDEN);
    expect_error(c, "eval.run", json_pack("{s:s, s:s}", "model", "mlp.qtck", "split", "train"),
                 QT_RPC_INVALID_PARAMS);
    expect_error(c, "eval.run", json_pack("{s:s, s:s}", "model", "mlp.qtck", "config",
                                          "{\"nosuchnode\": {\"weights\": \"fixed<8,4>\"}}"),
                 QT_RPC_INVALID_PARAMS);
    expect_error(c, "dataset.register", json_pack("{s:s, s:s}", "name", "x", "path", "y"),
                 QT_RPC_INVALID_PARAMS);
    expect_error(c, "dataset.register", json_pack("{s:s, s:s, s:s}", "name", "x", "images",
                                                  "/etc/passwd", "labels", "/etc/passwd"),
                 QT_RPC_FORBIDDEN);
    json_t *r = ok(c, "model.register", json_pack("{s:s}", "path", "mlp.qtck"));
    assert_true(json_integer_value(json_object_get(r, "id")) > 0);
    char mhash[64];
    snprintf(mhash, sizeof mhash, "%s", json_string_value(json_object_get(r, "hash")));
    json_decref(r);
    /* model.list: the zoo, the files, and the registered model with its hash */
    r = ok(c, "model.list", NULL);
    int kinds[3] = { 0 };
    size_t mi;
    json_t *me;
    json_array_foreach(json_object_get(r, "models"), mi, me) {
        const char *kind = json_string_value(json_object_get(me, "kind"));
        if (!strcmp(kind, "zoo")) kinds[0]++;
        else if (!strcmp(kind, "registered")) {
            kinds[2]++;
            assert_string_equal(json_string_value(json_object_get(me, "hash")), mhash);
            assert_true(json_integer_value(json_object_get(json_object_get(me, "summary"),
                                                           "nodes")) > 0);
        } else kinds[1]++;
    }
    assert_true(kinds[0] > 0 && kinds[1] > 0 && kinds[2] == 1);
    json_decref(r);
    /* no job was stored by any of it */
    r = ok(c, "job.list", NULL);
    assert_int_equal(json_array_size(json_object_get(r, "jobs")), 0);
    json_decref(r);
    qt_client_close(c);

    /* an oversize request: an error, then the connection is closed */
    fd = raw_connect();
    rlen = 0;
    size_t big = 70000;
    char *b = malloc(big + 64);
    int n = snprintf(b, 64, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1,\"x\":\"");
    memset(b + n, 'a', big);
    raw_send(fd, b, big + (size_t)n);
    free(b);
    j = raw_line(fd, 30);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     QT_RPC_INVALID_REQUEST);
    json_decref(j);
    assert_null(raw_line(fd, 30));
    close(fd);
    still_serving();

    /* a client that leaves mid-request */
    fd = raw_connect();
    raw_send(fd, "{\"jsonrpc\":\"2.0\",\"meth", 22);
    close(fd);
    still_serving();
    /* a client that leaves with a job.submit in flight */
    fd = raw_connect();
    const char *sub = "{\"jsonrpc\":\"2.0\",\"method\":\"job.pareto\",\"params\":{\"job\":1},\"id\":1}\n";
    raw_send(fd, sub, strlen(sub));
    close(fd);
    still_serving();

    /* a slow client: a request left unfinished past request-timeout (1 s) */
    fd = raw_connect();
    rlen = 0;
    raw_send(fd, "{\"jsonrpc\":\"2.0\",", 17);
    double t0 = mono();
    j = raw_line(fd, 30);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     QT_RPC_INVALID_REQUEST);
    json_decref(j);
    assert_null(raw_line(fd, 30));
    assert_true(mono() - t0 >= 0.9);
    close(fd);
    still_serving();

    /* a client that never reads its answers: dropped past max-backlog */
    fd = raw_connect();
    int one = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
    static char flood[1 << 20];
    size_t at = 0;
    const char *info = "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1}\n";
    while (at + strlen(info) < sizeof flood) { memcpy(flood + at, info, strlen(info)); at += strlen(info); }
    raw_send(fd, flood, at);
    sleep_ms(300);
    rlen = 0;
    int answers = 0;
    json_t *x;
    while ((x = raw_line(fd, 30))) { answers++; json_decref(x); }
    assert_true(answers < (int)(at / strlen(info)));
    close(fd);
    still_serving();

    c = client();
    r = ok(c, "server.stats", NULL);
    assert_true(json_integer_value(json_object_get(r, "errors")) >= 20);
    assert_true(json_integer_value(json_object_get(r, "rejected")) >= 1);
    json_decref(r);
    qt_client_close(c);
    int code = stop_daemon(daemon_pid, SIGINT);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

/* ------------------------------------------------------------------------ */
/* Datasets                                                                  */
/* ------------------------------------------------------------------------ */

/* call and expect the error code, its message holding a and b */
static void expect_msg(qt_client *c, const char *method, json_t *params, int want,
                       const char *a, const char *b)
{
    json_t *res;
    int code;
    qt_error err;
    int rc = qt_client_call(c, method, params, &res, &code, &err);
    json_decref(params);
    if (rc == QT_OK) { json_decref(res); fail_msg("%s: succeeded, expected error %d", method, want); }
    if (code != want || (a && !strstr(err.text, a)) || (b && !strstr(err.text, b)))
        fail_msg("%s: error %d (%s), expected %d with '%s' and '%s'", method, code, err.text,
                 want, a ? a : "", b ? b : "");
    print_message("  %s refused: %s\n", method, err.text);
}

static void be32_out(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    fwrite(b, 1, 4, f);
}

/* n items of d (loaded unnormalised: its floats are the bytes) as IDX;
 * side: images of side x side (the top-left corner), 0: the labels;
 * declared: the count in the header (0: n) */
static void write_idx(const char *path, const qt_dataset *d, size_t n, int side, size_t declared)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (side) {
        int sh[3];
        qt_dataset_shape(d, sh);
        be32_out(f, 0x803);
        be32_out(f, (uint32_t)(declared ? declared : n));
        be32_out(f, (uint32_t)side);
        be32_out(f, (uint32_t)side);
        const float *x = qt_dataset_images(d);
        for (size_t i = 0; i < n; i++)
            for (int r = 0; r < side; r++)
                for (int k = 0; k < side; k++)
                    fputc((int)x[i * 784 + (size_t)r * 28 + (size_t)k], f);
    } else {
        be32_out(f, 0x801);
        be32_out(f, (uint32_t)(declared ? declared : n));
        fwrite(qt_dataset_labels(d), 1, n, f);
    }
    fclose(f);
}

/* wait until the job is done, failed or cancelled: job.get's answer */
static json_t *wait_end(qt_client *c, int64_t id)
{
    double t0 = mono();
    for (;;) {
        json_t *g = ok(c, "job.get", job_params(id));
        const char *s = json_string_value(json_object_get(g, "state"));
        if (!strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "cancelled")) return g;
        json_decref(g);
        if (mono() - t0 > 300) { dump_log(); fail_msg("job %lld did not end", (long long)id); }
        sleep_ms(50);
    }
}

static int64_t submit_on(qt_client *c, const char *spec, const char *dataset)
{
    json_t *j = json_loads(spec, 0, NULL);
    json_object_set_new(j, "dataset", json_string(dataset));
    char *t = json_dumps(j, 0);
    int64_t id = submit(c, t);
    free(t);
    json_decref(j);
    return id;
}

static void datasets(void **st)
{
    (void)st;
    char data[256], p[400], real[PATH_MAX];
    snprintf(data, sizeof data, "%s/data", tmp);
    assert_int_equal(mkdir(data, 0700), 0);
    assert_non_null(realpath(data, real));
    /* files made from Fashion-MNIST's: 3000 training images (plain) and
     * their labels (gzip), 1000 test images; bad ones */
    const char *fm = getenv("QT_DATA_DIR");
    if (!fm || !*fm) fm = "/usr/share/datasets/fashion-mnist";
    char fi[300], fl[300];
    qt_norm raw = { 1.0f, 0.0f, 1.0f };
    qt_dataset *tr, *te;
    qt_error err;
    snprintf(fi, sizeof fi, "%s/train-images-idx3-ubyte.gz", fm);
    snprintf(fl, sizeof fl, "%s/train-labels-idx1-ubyte.gz", fm);
    assert_int_equal(qt_dataset_load_idx(fi, fl, &raw, &tr, &err), QT_OK);
    snprintf(fi, sizeof fi, "%s/t10k-images-idx3-ubyte.gz", fm);
    snprintf(fl, sizeof fl, "%s/t10k-labels-idx1-ubyte.gz", fm);
    assert_int_equal(qt_dataset_load_idx(fi, fl, &raw, &te, &err), QT_OK);
#define DP(name) (snprintf(p, sizeof p, "%s/%s", data, name), p)
    write_idx(DP("small-images"), tr, 3000, 28, 0);
    write_idx(DP("small-labels"), tr, 3000, 0, 0);
    write_idx(DP("test-images"), te, 1000, 28, 0);
    write_idx(DP("test-labels"), te, 1000, 0, 0);
    write_idx(DP("tiny-images"), tr, 3000, 8, 0);
    write_idx(DP("tiny-test"), te, 1000, 8, 0);
    write_idx(DP("short-labels"), tr, 2999, 0, 0);
    write_idx(DP("trunc-images"), tr, 1000, 28, 3000);
    write_all_text(DP("bad-magic"), "this is not an IDX file at all\n");
    assert_int_equal(symlink("/etc/hostname", DP("outside")), 0);
    qt_dataset_free(tr);
    qt_dataset_free(te);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip '%s/small-labels'", data);
    assert_int_equal(system(cmd), 0);

    start_daemon((const char *[]){ "--data", data, NULL });
    qt_client *c = client();
    json_t *r = ok(c, "dataset.list", NULL);
    assert_string_equal(json_string_value(json_object_get(r, "data_dir")), real);
    assert_int_equal(json_array_size(json_object_get(r, "datasets")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        json_object_get(r, "datasets"), 0), "name")), "fashion-mnist");
    json_decref(r);

    /* a good registration: plain images, gzip labels, a test split */
    json_t *reg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:f, s:f, s:f}, s:i}", "name", "small",
                            "images", "small-images", "labels", "small-labels.gz",
                            "test_images", "test-images", "test_labels", "test-labels",
                            "norm", "scale", 1.0 / 255.0, "mean", 0.2860, "std", 0.3530,
                            "val_count", 600);
    r = ok(c, "dataset.register", json_deep_copy(reg));
    json_t *sum = json_object_get(r, "summary");
    assert_int_equal(json_integer_value(json_object_get(sum, "images")), 3000);
    assert_int_equal(json_integer_value(json_object_get(sum, "classes")), 10);
    assert_int_equal(json_integer_value(json_object_get(sum, "val_count")), 600);
    assert_int_equal(json_integer_value(json_object_get(sum, "test_images")), 1000);
    assert_int_equal(strlen(json_string_value(json_object_get(r, "hash"))), 32);
    const char *ti = json_string_value(json_object_get(json_object_get(r, "data"), "train_images"));
    assert_true(!strncmp(ti, real, strlen(real)) && strstr(ti, "small-images"));
    json_decref(r);

    /* bad registrations: each names the file and the problem */
#define REG(k, v) ({ json_t *x_ = json_deep_copy(reg); json_object_set_new(x_, k, v); x_; })
    expect_msg(c, "dataset.register", REG("name", json_string("fashion-mnist")),
               QT_RPC_INVALID_PARAMS, "built in", NULL);
    expect_msg(c, "dataset.register", REG("name", json_string("a/b")), QT_RPC_INVALID_PARAMS,
               "not a dataset name", NULL);
    expect_msg(c, "dataset.register", REG("images", json_string("outside")), QT_RPC_FORBIDDEN,
               "outside the data directory", NULL);
    expect_msg(c, "dataset.register", REG("images", json_string("../qtuned.log")),
               QT_RPC_FORBIDDEN, "outside", NULL);
    expect_msg(c, "dataset.register", REG("images", json_string("nope")), QT_RPC_NOT_FOUND,
               "nope", "no such file");
    expect_msg(c, "dataset.register", REG("images", json_string("bad-magic")),
               QT_RPC_INVALID_PARAMS, "bad-magic", "not an IDX file");
    expect_msg(c, "dataset.register", REG("images", json_string("trunc-images")),
               QT_RPC_INVALID_PARAMS, "trunc-images", "truncated");
    expect_msg(c, "dataset.register", REG("labels", json_string("short-labels")),
               QT_RPC_INVALID_PARAMS, "short-labels", "3000 images");
    expect_msg(c, "dataset.register", REG("classes", json_integer(5)), QT_RPC_INVALID_PARAMS,
               "small-labels.gz", ">= 5");
    expect_msg(c, "dataset.register", REG("test_images", json_string("tiny-test")),
               QT_RPC_INVALID_PARAMS, "tiny-test", "8x8");
    expect_msg(c, "dataset.register", REG("norm", json_pack("{s:i}", "std", 0)),
               QT_RPC_INVALID_PARAMS, "std", NULL);
    expect_msg(c, "dataset.register", REG("val_count", json_integer(5000)),
               QT_RPC_INVALID_PARAMS, "small-images", "val_count 5000");
    json_t *half = json_deep_copy(reg);
    json_object_del(half, "test_labels");
    expect_msg(c, "dataset.register", half, QT_RPC_INVALID_PARAMS, "test_labels", NULL);
    json_decref(reg);
    /* dims are the model's business: registered, refused by the job */
    r = ok(c, "dataset.register", json_pack("{s:s, s:s, s:s}", "name", "tiny", "images",
                                            "tiny-images", "labels", "small-labels.gz"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "summary"),
                                                        "val_count")), 500);
    json_decref(r);
    r = ok(c, "dataset.list", NULL);
    json_t *dl = json_object_get(r, "datasets");
    assert_int_equal(json_array_size(dl), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 1), "name")), "small");
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 2), "name")), "tiny");
    assert_true(json_is_object(json_object_get(json_array_get(dl, 1), "data")));
    json_decref(r);
    /* the client */
    static char out[8192];
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "datasets", NULL }), 0);
    assert_non_null(strstr(out, "fashion-mnist"));
    assert_non_null(strstr(out, "small"));
    assert_int_equal(cli(out, sizeof out, (const char *[]){ "datasets", "--register", "tiny2",
                                                            "--images", "tiny-images",
                                                            "--labels", "small-labels.gz",
                                                            "--mean", "0.5", "--val-count",
                                                            "100", NULL }), 0);
    assert_non_null(strstr(out, "dataset tiny2: 3000 images of 1x8x8, 10 classes, 100 for "
                                "validation"));
    assert_int_equal(cli(NULL, 0, (const char *[]){ "datasets", "--register", "x", "--images",
                                                    "nope", "--labels", "small-labels.gz",
                                                    NULL }), 2);

    /* jobs: the daemon fills in the data; a job may not give its own */
    json_t *bad = json_loads(small_job, 0, NULL);
    json_object_set_new(bad, "dataset", json_string("small"));
    json_object_set_new(bad, "data", json_pack("{s:s, s:s}", "train_images", "/etc/passwd",
                                               "train_labels", "/etc/passwd"));
    expect_msg(c, "job.submit", json_pack("{s:o}", "job", bad), QT_RPC_INVALID_PARAMS,
               "data is filled in by qtuned", NULL);
    bad = json_loads(small_job, 0, NULL);
    json_object_set_new(bad, "dataset", json_string("nope"));
    expect_msg(c, "job.submit", json_pack("{s:o}", "job", bad), QT_RPC_NOT_FOUND,
               "no dataset 'nope'", NULL);

    /* the same job on Fashion-MNIST, then on "small": nothing shared (other
     * data, other keys); then on "small" again: everything reused */
    int64_t a = submit(c, small_job);
    json_t *ga = wait_end(c, a);
    assert_string_equal(json_string_value(json_object_get(ga, "state")), "done");
    json_decref(ga);
    int64_t b = submit_on(c, small_job, "small");
    json_t *gb = wait_end(c, b);
    assert_string_equal(json_string_value(json_object_get(gb, "state")), "done");
    int eb = (int)json_integer_value(json_object_get(gb, "evals"));
    assert_true(eb >= 3);
    assert_int_equal(json_integer_value(json_object_get(gb, "computed")), eb);
    json_t *spec = json_object_get(gb, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "dataset")), "small");
    json_t *sd = json_object_get(spec, "data");
    assert_non_null(strstr(json_string_value(json_object_get(sd, "train_labels")),
                           "small-labels.gz"));
    assert_int_equal(json_integer_value(json_object_get(sd, "val_count")), 600);
    assert_true(json_number_value(json_object_get(json_object_get(gb, "answer"), "top1")) > 0.5);
    json_decref(gb);
    int64_t b2 = submit_on(c, small_job, "small");
    gb = wait_end(c, b2);
    assert_string_equal(json_string_value(json_object_get(gb, "state")), "done");
    assert_int_equal(json_integer_value(json_object_get(gb, "evals")), eb);
    assert_int_equal(json_integer_value(json_object_get(gb, "computed")), 0);
    json_decref(gb);
    /* images that do not fit the model: the job fails naming the file */
    int64_t t = submit_on(c, small_job, "tiny");
    json_t *gt = wait_end(c, t);
    assert_string_equal(json_string_value(json_object_get(gt, "state")), "failed");
    const char *why = json_string_value(json_object_get(gt, "error"));
    if (!why || !strstr(why, "tiny-images") || !strstr(why, "do not fit"))
        fail_msg("failed job's error: %s", why ? why : "(none)");
    print_message("  job on tiny: %s\n", why);
    json_decref(gt);
    /* eval.run on a registered dataset's test split */
    r = ok(c, "eval.run", json_pack("{s:s, s:s, s:s, s:i}", "model", "mlp.qtck", "dataset",
                                    "small", "split", "test", "limit", 100));
    assert_int_equal(json_integer_value(json_object_get(r, "images")), 100);
    assert_string_equal(json_string_value(json_object_get(r, "dataset")), "small");
    assert_true(json_number_value(json_object_get(r, "top1")) > 0.5);
    json_decref(r);
    expect_msg(c, "eval.run", json_pack("{s:s, s:s}", "model", "mlp.qtck", "dataset", "nope"),
               QT_RPC_NOT_FOUND, "nope", NULL);
    /* job.evaluations pages and the front on the registered data */
    r = ok(c, "job.evaluations", json_pack("{s:I, s:i, s:i}", "job", (json_int_t)b, "offset",
                                           eb - 1, "limit", 10));
    assert_int_equal(json_integer_value(json_object_get(r, "total")), eb);
    assert_int_equal(json_array_size(json_object_get(r, "evaluations")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(
        json_object_get(r, "evaluations"), 0), "seq")), eb);
    json_decref(r);
    r = ok(c, "job.pareto", job_params(b));
    assert_true(json_array_size(json_object_get(r, "front")) >= 1);
    assert_true(json_is_object(json_object_get(json_array_get(json_object_get(r, "front"), 0),
                                               "config")));
    assert_int_equal(json_integer_value(json_object_get(r, "evaluations")), eb);
    json_decref(r);
    qt_client_close(c);
    still_serving();
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
    /* qtune tune --db takes a registered dataset's files from the store:
     * the same data, so everything is reused */
    char jobf[300], db[300];
    snprintf(jobf, sizeof jobf, "%s/small.json", tmp);
    snprintf(db, sizeof db, "%s/qtune.db", state);
    json_t *jj = json_loads(small_job, 0, NULL);
    json_object_set_new(jj, "model", json_string(MODELS "/mlp.qtck"));
    json_object_set_new(jj, "dataset", json_string("small"));
    assert_int_equal(json_dump_file(jj, jobf, 0), 0);
    json_decref(jj);
    snprintf(cmd, sizeof cmd, "'%s' tune '%s' --db '%s' > /dev/null 2>&1", QTUNE_BIN, jobf, db);
    assert_int_equal(system(cmd), 0);
    qt_store *sto;
    qt_store_job sj;
    assert_int_equal(qt_store_open(db, QT_STORE_READONLY, &sto, &err), QT_OK);
    assert_int_equal(qt_store_job_get(sto, t + 1, &sj, &err), QT_OK);
    assert_int_equal(sj.state, QT_JOB_DONE);
    assert_int_equal(sj.evals, eb);
    assert_int_equal(sj.computed, 0);
    qt_store_job_clear(&sj);
    qt_store_close(sto);
#undef REG
#undef DP
}

/* ------------------------------------------------------------------------ */
/* TCP with a token; a second daemon                                         */
/* ------------------------------------------------------------------------ */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void tcp_token(void **st)
{
    (void)st;
    char tokf[256], port[16], where[64];
    snprintf(tokf, sizeof tokf, "%s/token", tmp);
    FILE *f = fopen(tokf, "w");
    fprintf(f, "s3cret-token-for-tests\n");
    fclose(f);
    snprintf(port, sizeof port, "%d", free_port());
    start_daemon((const char *[]){ "--tcp", port, "--token-file", tokf, NULL });
    snprintf(where, sizeof where, "tcp:127.0.0.1:%s", port);
    qt_client *c;
    qt_error err;
    assert_int_equal(qt_client_connect(where, NULL, &c, &err), QT_OK);
    expect_error(c, "server.info", NULL, QT_RPC_UNAUTHORIZED);
    expect_error(c, "server.auth", json_pack("{s:s}", "token", "wrong-token-xx"),
                 QT_RPC_UNAUTHORIZED);
    json_t *r = ok(c, "server.auth", json_pack("{s:s}", "token", "s3cret-token-for-tests"));
    json_decref(r);
    r = ok(c, "server.info", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "tcp"), "port")),
                     atoi(port));
    json_decref(r);
    qt_client_close(c);
    assert_int_equal(qt_client_connect(where, "s3cret-token-for-tests", &c, &err), QT_OK);
    r = ok(c, "job.list", NULL);
    json_decref(r);
    qt_client_close(c);
    assert_int_equal(qt_client_connect(where, "bad-token-value", &c, &err), QT_EINVAL);
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

static void second_daemon(void **st)
{
    (void)st;
    pid_t first = start_daemon(NULL);
    char cmd[1024], out[1024] = "";
    snprintf(cmd, sizeof cmd, "'%s' --state '%s' --models '%s' 2>&1", QTUNED_BIN, state, MODELS);
    FILE *p = popen(cmd, "r");
    size_t r = fread(out, 1, sizeof out - 1, p);
    out[r] = 0;
    int status = pclose(p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %d", (int)first);
    if (!strstr(out, pid)) fail_msg("the refusal does not name %s: %s", pid, out);
    still_serving();
    int code = stop_daemon(first, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

/* ------------------------------------------------------------------------ */
/* Killed and stopped mid-job                                                */
/* ------------------------------------------------------------------------ */

typedef struct counts { int evals, computed, runs, interrupted; qt_job_state state; } counts;

static counts store_counts(const char *db, int64_t id)
{
    qt_store *s;
    qt_error err;
    qt_store_job j;
    counts c;
    if (qt_store_open(db, QT_STORE_READONLY, &s, &err)) fail_msg("%s", err.text);
    if (qt_store_job_get(s, id, &j, &err)) fail_msg("%s", err.text);
    c.evals = j.evals;
    c.computed = j.computed;
    c.runs = j.runs;
    c.interrupted = j.interrupted;
    c.state = j.state;
    qt_store_job_clear(&j);
    qt_store_close(s);
    return c;
}

typedef struct keys { char k[256][65]; int n; } keys;

static int key_cb(void *user, const qt_store_eval *e)
{
    keys *k = user;
    if (k->n < 256) snprintf(k->k[k->n++], 65, "%s", e->key);
    return 0;
}

static void history(const char *db, int64_t id, keys *k)
{
    qt_store *s;
    qt_error err;
    k->n = 0;
    if (qt_store_open(db, QT_STORE_READONLY, &s, &err)) fail_msg("%s", err.text);
    if (qt_store_history(s, id, key_cb, k, &err)) fail_msg("%s", err.text);
    qt_store_close(s);
}

/* the long job run in-process, uninterrupted: its history */
static keys ref_keys;
static counts ref;

static void reference_run(void)
{
    if (ref.evals) return;
    char jobf[256], db[256], cmd[1024];
    snprintf(jobf, sizeof jobf, "%s/ref.json", tmp);
    snprintf(db, sizeof db, "%s/ref.db", tmp);
    FILE *f = fopen(jobf, "w");
    /* the same job, its model by path as the daemon stores it */
    json_t *j = json_loads(long_job, 0, NULL);
    json_object_set_new(j, "model", json_string(MODELS "/lenet5.qtck"));
    char *t = json_dumps(j, 0);
    fprintf(f, "%s", t);
    free(t);
    json_decref(j);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' tune '%s' --db '%s' > /dev/null 2>&1", QTUNE_BIN, jobf, db);
    assert_int_equal(system(cmd), 0);
    ref = store_counts(db, 1);
    history(db, 1, &ref_keys);
    assert_int_equal(ref.state, QT_JOB_DONE);
    assert_int_equal(ref.evals, ref_keys.n);
    print_message("  uninterrupted: %d evaluations, %d computed\n", ref.evals, ref.computed);
}

/* stop the daemon with sig after a few evaluations of the long job, start
 * it again, and check the job ends as the uninterrupted run did */
static void stop_and_resume(int sig)
{
    char db[256];
    snprintf(db, sizeof db, "%s/qtune.db", state);
    reference_run();
    start_daemon(NULL);
    qt_client *c = client();
    int64_t id = submit(c, long_job);
    json_t *end;
    int seen = follow(c, id, 3, &end);
    assert_int_equal(seen, 3);
    assert_null(end);
    int code = stop_daemon(daemon_pid, sig);
    qt_client_close(c);
    if (sig == SIGKILL) assert_true(WIFSIGNALED(code) && WTERMSIG(code) == SIGKILL);
    else assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);

    /* stopped mid-job: marked running when killed, queued again by a clean
     * stop; part of the history stored */
    counts before = store_counts(db, id);
    keys kb;
    history(db, id, &kb);
    assert_int_equal(before.state, sig == SIGKILL ? QT_JOB_RUNNING : QT_JOB_QUEUED);
    assert_true(before.evals >= 3);
    if (before.evals >= ref.evals) fail_msg("the job ended before the stop (%d evaluations)", before.evals);
    for (int i = 0; i < kb.n; i++) assert_string_equal(kb.k[i], ref_keys.k[i]);

    /* the next start resumes it */
    start_daemon(NULL);
    c = client();
    json_t *g = ok(c, "job.get", job_params(id));
    const char *s = json_string_value(json_object_get(g, "state"));
    int finished = !strcmp(s, "done");
    json_decref(g);
    if (!finished) {
        json_t *res = ok(c, "job.subscribe", job_params(id));
        int subscribed = json_is_true(json_object_get(res, "subscribed"));
        json_decref(res);
        while (subscribed) {
            json_t *note;
            qt_error err;
            if (qt_client_read(c, 300, &note, &err)) { dump_log(); fail_msg("%s", err.text); }
            int is_end = !strcmp(json_string_value(json_object_get(note, "method")), "job.end");
            if (is_end) {
                json_t *p = json_object_get(note, "params");
                assert_string_equal(json_string_value(json_object_get(p, "state")), "done");
                /* this run reused everything stored and computed the rest only */
                assert_int_equal(json_integer_value(json_object_get(p, "reused")), before.evals);
                assert_int_equal(json_integer_value(json_object_get(p, "evals")), ref.evals);
                assert_int_equal(json_integer_value(json_object_get(p, "computed")) + before.evals,
                                 ref.computed);
            }
            json_decref(note);
            if (is_end) break;
        }
    }
    qt_client_close(c);
    counts after = store_counts(db, id);
    keys ka;
    history(db, id, &ka);
    assert_int_equal(after.state, QT_JOB_DONE);
    assert_int_equal(after.runs, 2);
    assert_int_equal(after.interrupted, sig == SIGKILL);
    /* the uninterrupted run's history, and nothing computed twice */
    assert_int_equal(after.evals, ref.evals);
    assert_int_equal(ka.n, ref_keys.n);
    for (int i = 0; i < ka.n; i++) assert_string_equal(ka.k[i], ref_keys.k[i]);
    assert_int_equal(after.computed, ref.computed);
    print_message("  stopped after %d stored evaluations; resumed: %d evaluations, %d computed "
                  "in all (uninterrupted: %d)\n", before.evals, after.evals, after.computed,
                  ref.computed);
    code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

static void kill9_resume(void **st) { (void)st; stop_and_resume(SIGKILL); }
static void sigterm_resume(void **st) { (void)st; stop_and_resume(SIGTERM); }

/* The disk fills mid-job (the daemon's file-size limit lowered below what
 * it must write): the job pauses naming the cause, the daemon keeps
 * trying, nothing stored is lost; once the limit is lifted the job goes on
 * by itself and ends with the uninterrupted run's history. */
static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? 0 : sb.st_size;
}

static void disk_full_resumes(void **st)
{
    (void)st;
    char db[256], wal[300];
    snprintf(db, sizeof db, "%s/qtune.db", state);
    snprintf(wal, sizeof wal, "%s-wal", db);
    reference_run();
    const char *const extra[] = { "--storage-retry", "0.3", NULL };
    start_daemon(extra);
    qt_client *c = client();
    int64_t id = submit(c, long_job);
    json_t *end;
    assert_int_equal(follow(c, id, 3, &end), 3);
    assert_null(end);
    qt_client_close(c);
    /* the disk is full: no file of the daemon may grow */
    off_t big = file_size(db) > file_size(wal) ? file_size(db) : file_size(wal);
    struct rlimit full = { (rlim_t)big + 1, (rlim_t)big + 1 }, none = { RLIM_INFINITY, RLIM_INFINITY };
    struct rlimit old;
    assert_int_equal(prlimit(daemon_pid, RLIMIT_FSIZE, NULL, &old), 0);
    full.rlim_max = old.rlim_max;
    none = old;
    assert_int_equal(prlimit(daemon_pid, RLIMIT_FSIZE, &full, NULL), 0);
    /* it pauses (or is left running when even that cannot be written) */
    c = client();
    double t0 = mono();
    counts mid;
    const char *why = NULL;
    json_t *g = NULL;
    for (;;) {
        json_decref(g);
        g = ok(c, "job.get", job_params(id));
        const char *s = json_string_value(json_object_get(g, "state"));
        why = json_string_value(json_object_get(g, "error"));
        if (!strcmp(s, "paused")) break;
        if (!strcmp(s, "done")) fail_msg("the job finished though the disk was full");
        if (mono() - t0 > 120) { dump_log(); fail_msg("the job did not pause (state %s)", s); }
        sleep_ms(50);
    }
    assert_non_null(why);
    print_message("  paused: %s\n", why);
    json_decref(g);
    /* it keeps trying while the disk stays full */
    sleep_ms(1200);
    json_t *stats = ok(c, "server.stats", NULL);
    json_t *js = json_object_get(stats, "jobs");
    int retries = (int)json_integer_value(json_object_get(js ? js : stats, "storage_retries"));
    json_decref(stats);
    assert_true(retries >= 2);
    mid = store_counts(db, id);
    /* paused, or still marked running when the pause itself could not be
     * written; job.get says paused with the cause either way */
    assert_true(mid.state == QT_JOB_PAUSED || mid.state == QT_JOB_RUNNING);
    assert_true(mid.evals >= 3 && mid.evals < ref.evals);
    keys km;
    history(db, id, &km);
    for (int i = 0; i < km.n; i++) assert_string_equal(km.k[i], ref_keys.k[i]);
    /* space again: it goes on by itself */
    assert_int_equal(prlimit(daemon_pid, RLIMIT_FSIZE, &none, NULL), 0);
    t0 = mono();
    for (;;) {
        g = ok(c, "job.get", job_params(id));
        int done = !strcmp(json_string_value(json_object_get(g, "state")), "done");
        json_decref(g);
        if (done) break;
        if (mono() - t0 > 300) { dump_log(); fail_msg("the job did not go on"); }
        sleep_ms(100);
    }
    qt_client_close(c);
    counts after = store_counts(db, id);
    keys ka;
    history(db, id, &ka);
    assert_int_equal(after.evals, ref.evals);
    assert_int_equal(ka.n, ref_keys.n);
    for (int i = 0; i < ka.n; i++) assert_string_equal(ka.k[i], ref_keys.k[i]);
    assert_int_equal(after.computed, ref.computed);
    print_message("  disk full after %d of %d evaluations; %d retries while full; finished "
                  "with the uninterrupted history\n", mid.evals, ref.evals, retries);
    assert_true(WIFEXITED(stop_daemon(daemon_pid, SIGTERM)));
}

/* ------------------------------------------------------------------------ */
/* Limits: requests per client, eval.run at once                             */
/* ------------------------------------------------------------------------ */

/* the seconds an error message says to wait ("retry in 0.2 s") */
static double retry_in(const char *msg)
{
    const char *p = strstr(msg, "retry in ");
    if (!p) fail_msg("no 'retry in' in '%s'", msg);
    return strtod(p + 9, NULL);
}

/* a burst beyond --burst on one connection is refused (the connection
 * stays), another connection is served meanwhile, and after the wait the
 * error gave the first one is served again */
static void rate_limit(void **st)
{
    (void)st;
    start_daemon((const char *[]){ "--rate", "2", "--burst", "20", NULL });
    int fd = raw_connect();
    /* one batch of 30: each request counts; 20 answered, 10 refused */
    static char batch[30 * 64];
    size_t at = 0;
    batch[at++] = '[';
    for (int k = 0; k < 30; k++)
        at += (size_t)snprintf(batch + at, sizeof batch - at, "%s{\"jsonrpc\":\"2.0\","
                               "\"method\":\"job.list\",\"id\":%d}", k ? "," : "", k);
    batch[at++] = ']';
    batch[at++] = '\n';
    rlen = 0;
    raw_send(fd, batch, at);
    json_t *j = raw_line(fd, 30);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 30);
    int served = 0, limited = 0;
    double wait = 0;
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) {
        json_t *err = json_object_get(e, "error");
        if (!err) { served++; continue; }
        assert_int_equal(json_integer_value(json_object_get(err, "code")), QT_RPC_RATE_LIMITED);
        const char *msg = json_string_value(json_object_get(err, "message"));
        if (!strstr(msg, "rate limit") || !strstr(msg, "2 requests/s") || !strstr(msg, "--rate"))
            fail_msg("rate limit message: %s", msg);
        if (!limited++) print_message("  refused: %s\n", msg);
        wait = retry_in(msg);
    }
    assert_int_equal(served, 20);
    assert_int_equal(limited, 10);
    assert_true(wait > 0 && wait <= 0.5);
    json_decref(j);
    /* the next request is refused too, the connection still open */
    const char *one = "{\"jsonrpc\":\"2.0\",\"method\":\"server.stats\",\"id\":\"again\"}";
    rlen = 0;
    raw_send(fd, one, strlen(one));
    raw_send(fd, "\n", 1);
    j = raw_line(fd, 30);
    assert_non_null(j);
    json_t *je = json_object_get(j, "error");
    assert_int_equal(json_integer_value(json_object_get(je, "code")), QT_RPC_RATE_LIMITED);
    wait = retry_in(json_string_value(json_object_get(je, "message")));
    json_decref(j);
    double t_refused = mono();
    /* another client is served meanwhile, and sees the limits */
    qt_client *c = client();
    json_t *r = ok(c, "server.info", NULL);
    assert_true(json_number_value(json_object_get(r, "rate")) == 2.0);
    assert_int_equal(json_integer_value(json_object_get(r, "burst")), 20);
    assert_int_equal(json_integer_value(json_object_get(r, "max_evals")), 2);
    json_decref(r);
    /* the first is served again after the wait the error gave */
    double left = wait + 0.05 - (mono() - t_refused);
    if (left > 0) sleep_ms((int)(left * 1000));
    rlen = 0;
    raw_send(fd, one, strlen(one));
    raw_send(fd, "\n", 1);
    j = raw_line(fd, 30);
    assert_non_null(j);
    if (!json_object_get(j, "result")) fail_msg("not served after the wait");
    assert_true(json_integer_value(json_object_get(json_object_get(j, "result"),
                                                   "rate_limited")) >= 11);
    json_decref(j);
    close(fd);
    r = ok(c, "server.stats", NULL);
    assert_true(json_integer_value(json_object_get(r, "rate_limited")) >= 11);
    json_decref(r);
    qt_client_close(c);
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

/* eval.run calls running now (server.stats) */
static int evals_running(qt_client *c)
{
    json_t *r = ok(c, "server.stats", NULL);
    int n = (int)json_integer_value(json_object_get(r, "evals_running"));
    json_decref(r);
    return n;
}

/* wait until n eval.run calls run */
static void wait_evals(qt_client *c, int n)
{
    double t0 = mono();
    while (evals_running(c) != n) {
        if (mono() - t0 > 60) { dump_log(); fail_msg("eval.run calls running: never %d", n); }
        sleep_ms(50);                   /* 20 requests/s: below --rate */
    }
}

/* an eval.run long enough to be overtaken (LeNet-5 on 4000 test images:
 * about a second; the test split loads faster than the validation one) */
static const char *long_eval =
    "{\"jsonrpc\":\"2.0\",\"method\":\"eval.run\",\"params\":{\"model\":\"lenet5.qtck\","
    "\"split\":\"test\",\"limit\":4000},\"id\":1}\n";

/* a short eval.run's params: the MLP on 100 test images */
static json_t *quick_eval(void)
{
    return json_pack("{s:s, s:s, s:i}", "model", "mlp.qtck", "split", "test", "limit", 100);
}

/* with --max-evals 1: one eval.run runs, another client's is refused as
 * busy (and a second of the same client's), a new one runs once it
 * ended; the slot comes back after an error and after a client that left
 * before its answer */
static void eval_limits(void **st)
{
    (void)st;
    start_daemon((const char *[]){ "--max-evals", "1", NULL });
    qt_client *c = client();             /* watches server.stats */
    qt_client *b = client();
    int fa = raw_connect();
    rlen = 0;
    raw_send(fa, long_eval, strlen(long_eval));
    wait_evals(c, 1);
    expect_msg(b, "eval.run", quick_eval(), QT_RPC_BUSY, "busy: 1 eval.run already running",
               "--max-evals 1");
    /* the same client: one at a time */
    const char *second = "{\"jsonrpc\":\"2.0\",\"method\":\"eval.run\",\"params\":{\"model\":"
                         "\"mlp.qtck\",\"split\":\"test\",\"limit\":100},\"id\":2}";
    raw_expect(fa, second, QT_RPC_BUSY);
    json_t *j = raw_line(fa, 120);            /* the first one's answer */
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
    json_t *res = json_object_get(j, "result");
    if (!res) { dump_log(); fail_msg("eval.run failed"); }
    assert_int_equal(json_integer_value(json_object_get(res, "images")), 4000);
    print_message("  eval.run of 4000 images: %.2f s\n",
                  json_number_value(json_object_get(res, "seconds")));
    json_decref(j);
    close(fa);
    /* ended: a new one runs */
    json_t *r = ok(b, "eval.run", quick_eval());
    assert_int_equal(json_integer_value(json_object_get(r, "images")), 100);
    json_decref(r);
    /* an error gives the slot back */
    expect_error(b, "eval.run", json_pack("{s:s, s:s, s:s}", "model", "mlp.qtck", "split", "test",
                                          "config", "{\"nosuchnode\": {\"weights\": "
                                          "\"fixed<8,4>\"}}"), QT_RPC_INVALID_PARAMS);
    assert_int_equal(evals_running(c), 0);
    /* so does a client that leaves before its answer */
    int fc = raw_connect();
    raw_send(fc, long_eval, strlen(long_eval));
    wait_evals(c, 1);
    close(fc);
    wait_evals(c, 0);
    r = ok(b, "eval.run", quick_eval());
    json_decref(r);
    r = ok(c, "server.stats", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "evals_busy")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "evals_running")), 0);
    json_decref(r);
    qt_client_close(b);
    qt_client_close(c);
    still_serving();
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
}

/* ------------------------------------------------------------------------ */
/* Registered datasets: checked again on resume; classes                     */
/* ------------------------------------------------------------------------ */

/* Fashion-MNIST's training set, unnormalised (its floats are the bytes) */
static qt_dataset *raw_train(void)
{
    const char *fm = getenv("QT_DATA_DIR");
    char fi[300], fl[300];
    qt_norm raw = { 1.0f, 0.0f, 1.0f };
    qt_dataset *tr;
    qt_error err;
    if (!fm || !*fm) fm = "/usr/share/datasets/fashion-mnist";
    snprintf(fi, sizeof fi, "%s/train-images-idx3-ubyte.gz", fm);
    snprintf(fl, sizeof fl, "%s/train-labels-idx1-ubyte.gz", fm);
    if (qt_dataset_load_idx(fi, fl, &raw, &tr, &err)) fail_msg("%s", err.text);
    return tr;
}

/* n labels as an IDX file */
static void write_labels(const char *path, const uint8_t *l, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    be32_out(f, 0x801);
    be32_out(f, (uint32_t)n);
    fwrite(l, 1, n, f);
    fclose(f);
}

static void set_state(const char *db, int64_t id, qt_job_state s)
{
    qt_store *sto;
    qt_error err;
    if (qt_store_open(db, 0, &sto, &err)) fail_msg("%s", err.text);
    if (qt_store_job_set_state(sto, id, s, NULL, &err)) fail_msg("%s", err.text);
    qt_store_close(sto);
}

/* a quick job on a registered dataset: two evaluations of the MLP */
static const char *quick_job =
    "{\"model\": \"mlp.qtck\", \"space\": [{\"nodes\": \"*\", \"points\": [\"weights\"], "
    "\"types\": [\"fixed\"], \"widths\": [2, 8]}], \"strategy\": \"uniform\", "
    "\"val_limit\": 200, \"budget\": {\"evaluations\": 2}}";

/* Three jobs, each on its own registered dataset, were running when the
 * daemon died; meanwhile one's labels file was removed and another's
 * images changed. The next start fails those two, naming the file and the
 * problem, and finishes the third; job.resume checks again (still changed:
 * failed again; the file back: it runs). */
static void resume_recheck(void **st)
{
    (void)st;
    char data[256], db[300], p[400];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(db, sizeof db, "%s/qtune.db", state);
    assert_int_equal(mkdir(data, 0700), 0);
    qt_dataset *tr = raw_train();
    const char *sets[] = { "ra", "rb", "rc" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s-images", data, sets[i]);
        write_idx(p, tr, 600, 28, 0);
        snprintf(p, sizeof p, "%s/%s-labels", data, sets[i]);
        write_idx(p, tr, 600, 0, 0);
    }
    start_daemon((const char *[]){ "--data", data, NULL });
    qt_client *c = client();
    int64_t id[3];
    for (int i = 0; i < 3; i++) {
        char im[64], lb[64];
        snprintf(im, sizeof im, "%s-images", sets[i]);
        snprintf(lb, sizeof lb, "%s-labels", sets[i]);
        json_t *r = ok(c, "dataset.register", json_pack("{s:s, s:s, s:s, s:i}", "name", sets[i],
                                                        "images", im, "labels", lb,
                                                        "val_count", 200));
        json_decref(r);
        id[i] = submit_on(c, quick_job, sets[i]);
    }
    int computed_b = -1;
    for (int i = 0; i < 3; i++) {
        json_t *g = wait_end(c, id[i]);
        assert_string_equal(json_string_value(json_object_get(g, "state")), "done");
        if (i == 1) computed_b = (int)json_integer_value(json_object_get(g, "computed"));
        json_decref(g);
    }
    qt_client_close(c);
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
    /* as if the daemon had died while they ran; then ra's labels go, and
     * rc's images change (the same size and format) */
    for (int i = 0; i < 3; i++) set_state(db, id[i], QT_JOB_RUNNING);
    snprintf(p, sizeof p, "%s/ra-labels", data);
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof p, "%s/rc-images", data);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 16 + 5 * 784 + 400, SEEK_SET), 0);
    fputc(0x7f, f);
    fputc(0x80, f);
    fclose(f);

    start_daemon((const char *[]){ "--data", data, NULL });
    c = client();
    json_t *g = wait_end(c, id[1]);
    assert_string_equal(json_string_value(json_object_get(g, "state")), "done");
    assert_int_equal(json_integer_value(json_object_get(g, "computed")), computed_b);
    assert_int_equal(json_integer_value(json_object_get(g, "interrupted")), 1);
    json_decref(g);
    const char *want[] = { "ra-labels", NULL, "rc-images" };
    const char *what[] = { "No such file", NULL, "changed since it was registered" };
    for (int i = 0; i < 3; i += 2) {
        g = wait_end(c, id[i]);
        const char *why = json_string_value(json_object_get(g, "error"));
        assert_string_equal(json_string_value(json_object_get(g, "state")), "failed");
        if (!why || !strstr(why, want[i]) || !strstr(why, what[i]) || !strstr(why, sets[i]))
            fail_msg("job %lld's error: %s", (long long)id[i], why ? why : "(none)");
        print_message("  job %lld not resumed: %s\n", (long long)id[i], why);
        json_decref(g);
    }
    still_serving();
    /* job.resume checks again: rc still changed fails again; ra's labels
     * back, it runs */
    json_t *r = ok(c, "job.resume", job_params(id[2]));
    json_decref(r);
    g = wait_end(c, id[2]);
    assert_string_equal(json_string_value(json_object_get(g, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(g, "error")), "rc-images"));
    json_decref(g);
    snprintf(p, sizeof p, "%s/ra-labels", data);
    write_idx(p, tr, 600, 0, 0);
    r = ok(c, "job.resume", job_params(id[0]));
    json_decref(r);
    g = wait_end(c, id[0]);
    assert_string_equal(json_string_value(json_object_get(g, "state")), "done");
    json_decref(g);
    qt_client_close(c);
    qt_dataset_free(tr);
    code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -q 'not resumed: dataset .ra.' '%s'", logf_);
    assert_int_equal(system(cmd), 0);
}

/* A dataset's classes are its labels' (3 for labels 0..2): a 10-output
 * model fits a 3-class dataset; one narrower than the classes (10 outputs
 * for 12 classes) is refused by job.submit and eval.run, and by a run
 * (qtune tune), naming the model, its output and both counts */
static void dataset_classes(void **st)
{
    (void)st;
    char data[256], p[400];
    snprintf(data, sizeof data, "%s/data", tmp);
    assert_int_equal(mkdir(data, 0700), 0);
    qt_dataset *tr = raw_train();
    uint8_t l3[600], l12[600];
    for (int i = 0; i < 600; i++) {
        l3[i] = (uint8_t)(qt_dataset_labels(tr)[i] % 3);
        l12[i] = (uint8_t)(i % 12);
    }
    snprintf(p, sizeof p, "%s/images", data);
    write_idx(p, tr, 600, 28, 0);
    snprintf(p, sizeof p, "%s/three-labels", data);
    write_labels(p, l3, 600);
    snprintf(p, sizeof p, "%s/twelve-labels", data);
    write_labels(p, l12, 600);
    qt_dataset_free(tr);

    start_daemon((const char *[]){ "--data", data, NULL });
    qt_client *c = client();
    json_t *r = ok(c, "dataset.register", json_pack("{s:s, s:s, s:s, s:i}", "name", "three",
                                                    "images", "images", "labels",
                                                    "three-labels", "val_count", 200));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "summary"),
                                                        "classes")), 3);
    json_decref(r);
    r = ok(c, "dataset.register", json_pack("{s:s, s:s, s:s, s:i}", "name", "twelve",
                                            "images", "images", "labels", "twelve-labels",
                                            "val_count", 200));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "summary"),
                                                        "classes")), 12);
    json_decref(r);
    /* wider than the classes: fine */
    r = ok(c, "eval.run", json_pack("{s:s, s:s, s:i}", "model", "mlp.qtck", "dataset", "three",
                                    "limit", 100));
    assert_int_equal(json_integer_value(json_object_get(r, "images")), 100);
    json_decref(r);
    int64_t id = submit_on(c, quick_job, "three");
    json_t *g = wait_end(c, id);
    assert_string_equal(json_string_value(json_object_get(g, "state")), "done");
    json_decref(g);
    /* narrower: refused naming the model, its output, the dataset, both counts */
    json_t *job = json_loads(quick_job, 0, NULL);
    json_object_set_new(job, "dataset", json_string("twelve"));
    expect_msg(c, "job.submit", json_pack("{s:o}", "job", job), QT_RPC_INVALID_PARAMS,
               "mlp.qtck: its output 'fc3' has 10 values", "12 classes of dataset 'twelve'");
    expect_msg(c, "eval.run", json_pack("{s:s, s:s}", "model", "mlp.qtck", "dataset", "twelve"),
               QT_RPC_INVALID_PARAMS, "mlp.qtck: its output 'fc3' has 10 values",
               "12 classes of dataset 'twelve'");
    qt_client_close(c);
    int code = stop_daemon(daemon_pid, SIGTERM);
    assert_true(WIFEXITED(code) && WEXITSTATUS(code) == 0);
    /* a run given such data directly (qtune tune) says the same */
    char jobf[300], cmd[1024], out[2048] = "";
    snprintf(jobf, sizeof jobf, "%s/twelve.json", tmp);
    job = json_loads(quick_job, 0, NULL);
    json_object_set_new(job, "model", json_string(MODELS "/mlp.qtck"));
    json_object_set_new(job, "dataset", json_string("twelve"));
    snprintf(p, sizeof p, "%s/images", data);
    char lp[400];
    snprintf(lp, sizeof lp, "%s/twelve-labels", data);
    json_object_set_new(job, "data", json_pack("{s:s, s:s, s:i}", "train_images", p,
                                               "train_labels", lp, "val_count", 200));
    assert_int_equal(json_dump_file(job, jobf, 0), 0);
    json_decref(job);
    snprintf(cmd, sizeof cmd, "'%s' tune '%s' 2>&1", QTUNE_BIN, jobf);
    FILE *pp = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, pp);
    out[n] = 0;
    int status = pclose(pp);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    if (!strstr(out, "mlp.qtck: its output 'fc3' has 10 values") ||
        !strstr(out, "12 classes of dataset 'twelve'"))
        fail_msg("qtune tune: %s", out);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(job_life, setup, teardown),
        cmocka_unit_test_setup_teardown(many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(datasets, setup, teardown),
        cmocka_unit_test_setup_teardown(tcp_token, setup, teardown),
        cmocka_unit_test_setup_teardown(second_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(kill9_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(sigterm_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(disk_full_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(eval_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(resume_recheck, setup, teardown),
        cmocka_unit_test_setup_teardown(dataset_classes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
