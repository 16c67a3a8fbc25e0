/*
 * test_store.c -- store/: creating and refusing files (foreign, corrupt,
 * newer: refused and left byte for byte as they were), the migrations from
 * schema 1 (to 4: registered datasets; a failed step kept out whole), the
 * daemon's queries (models, registered datasets, history pages, a front as
 * its evaluations), every field of a result through the store, job states and
 * events, the cache hooks of a search (reuse across jobs, history order,
 * cost of another job's cost function), Pareto fronts against brute force,
 * CSV and JSON exports read back, failed evaluations, a read-only file and
 * a file size limit (clean errors, nothing lost, writes again once the
 * limit is lifted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store.h"
#include "tuner_testutil.h"

#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

static char tmpdir[64];

static int setup_dir(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qt_store_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    chmod(tmpdir, 0755);
    return 0;
}

static int teardown_dir(void **st)
{
    (void)st;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(tmpdir);
    return 0;
}

static const char *path_of(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { *len = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc) fprintf(stderr, "raw_exec: %s\n", msg);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

static int raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static void key_of(int i, char key[65])
{
    snprintf(key, 65, "%016x%016x%016x%016x", 0xabcu, (unsigned)i, 0x5eedu, (unsigned)(i * 7919));
}

static qt_store *open_new(const char *name)
{
    qt_store *st;
    qt_error err;
    int rc = qt_store_open(path_of(name), QT_STORE_CREATE | QT_STORE_NOSYNC, &st, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
    return st;
}

static int64_t new_job(qt_store *st, const char *json)
{
    qt_job_spec sp;
    qt_error err;
    int64_t id;
    assert_int_equal(qt_job_parse(json, &sp, &err), QT_OK);
    assert_int_equal(qt_store_job_new(st, &sp, &id, &err), QT_OK);
    qt_job_clear(&sp);
    return id;
}

static int64_t count_evals(const char *path)
{
    return raw_int(path, "SELECT COUNT(*) FROM evaluations");
}

/* ---- opening ---- */

static void open_create(void **state)
{
    (void)state;
    qt_store *st;
    qt_error err;
    const char *p = path_of("new.db");
    assert_int_equal(qt_store_open(p, 0, &st, &err), QT_ENOENT);
    assert_non_null(strstr(err.text, p));
    assert_int_equal(qt_store_open(p, QT_STORE_READONLY | QT_STORE_CREATE, &st, &err), QT_ENOENT);
    assert_false(exists(p));
    assert_int_equal(qt_store_open(p, QT_STORE_CREATE, &st, &err), QT_OK);
    assert_int_equal(qt_store_schema(st), QT_STORE_SCHEMA);
    assert_string_equal(qt_store_path(st), p);
    qt_store_close(st);
    /* the header: qtune's application_id in the main file, WAL mode, schema 2 */
    size_t n;
    unsigned char *b = read_all(p, &n);
    assert_true(n >= 100);
    assert_int_equal((uint32_t)b[68] << 24 | (uint32_t)b[69] << 16 | (uint32_t)b[70] << 8 | b[71],
                     QT_STORE_APP_ID);
    assert_int_equal(b[18], 2);
    assert_int_equal(b[19], 2);
    free(b);
    assert_int_equal(raw_int(p, "PRAGMA user_version"), QT_STORE_SCHEMA);
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'job_events'"), 1);
    /* reopen: no change of version, read-only works too */
    assert_int_equal(qt_store_open(p, 0, &st, &err), QT_OK);
    qt_store_close(st);
    assert_int_equal(qt_store_open(p, QT_STORE_READONLY, &st, &err), QT_OK);
    int64_t id;
    qt_job_spec sp;
    assert_int_equal(qt_job_parse("{\"model\":\"mlp\"}", &sp, &err), QT_OK);
    assert_int_equal(qt_store_job_new(st, &sp, &id, &err), QT_EIO);
    assert_non_null(strstr(err.text, "read-only"));
    qt_job_clear(&sp);
    qt_store_close(st);
    /* an empty file is a new database */
    write_all(path_of("empty.db"), "", 0);
    assert_int_equal(qt_store_open(path_of("empty.db"), 0, &st, &err), QT_ENOENT);
    assert_int_equal(qt_store_open(path_of("empty.db"), QT_STORE_CREATE, &st, &err), QT_OK);
    qt_store_close(st);
    /* a directory is not a database */
    assert_int_equal(qt_store_open(tmpdir, QT_STORE_CREATE, &st, &err), QT_EINVAL);
}

/* open must fail with rc and a message holding what, leaving the file's
 * bytes as they were and no side files behind */
static void refused(const char *p, int rc, const char *what)
{
    size_t n0, n1;
    unsigned char *b0 = read_all(p, &n0), *b1;
    qt_store *st = (qt_store *)0x1;
    qt_error err;
    char side[300];
    for (int flags = 0; flags < 2; flags++) {
        int got = qt_store_open(p, flags ? QT_STORE_CREATE : 0, &st, &err);
        if (got != rc) fprintf(stderr, "%s: %s\n", p, err.text);
        assert_int_equal(got, rc);
        assert_null(st);
        assert_non_null(strstr(err.text, what));
        assert_non_null(strstr(err.text, p));
    }
    b1 = read_all(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(b0, b1, n0);
    free(b0);
    free(b1);
    const char *sfx[] = { "-wal", "-shm", "-journal" };
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", p, sfx[i]);
        assert_false(exists(side));
    }
}

static void refuse_foreign(void **state)
{
    (void)state;
    char text[400];
    /* not SQLite: text, a short file, random bytes */
    memset(text, 'x', sizeof text);
    memcpy(text, "model,cost\n", 11);
    write_all(path_of("text.db"), text, sizeof text);
    refused(path_of("text.db"), QT_ECORRUPT, "not an SQLite database");
    write_all(path_of("short.db"), "SQLite", 6);
    refused(path_of("short.db"), QT_ECORRUPT, "not an SQLite database");
    /* another application's SQLite file (application_id 0, and another one) */
    raw_exec(path_of("other.db"), "CREATE TABLE notes(x); INSERT INTO notes VALUES (1);");
    refused(path_of("other.db"), QT_ECORRUPT, "another application");
    raw_exec(path_of("other2.db"), "PRAGMA application_id = 1234; PRAGMA user_version = 2;"
             "CREATE TABLE jobs(x);");
    refused(path_of("other2.db"), QT_ECORRUPT, "application_id 0x000004d2");
    /* a newer qtune's file */
    qt_store *st = open_new("newer.db");
    int64_t job = new_job(st, "{\"model\":\"mlp\"}");
    assert_true(job > 0);
    qt_store_close(st);
    raw_exec(path_of("newer.db"), "PRAGMA user_version = 5; PRAGMA wal_checkpoint(TRUNCATE);");
    refused(path_of("newer.db"), QT_ENOTSUP, "newer qtune (schema version 5");
}

static void refuse_corrupt(void **state)
{
    (void)state;
    size_t n;
    qt_store *st = open_new("good.db");
    int64_t job = new_job(st, "{\"model\":\"mlp\"}");
    qt_result r;
    memset(&r, 0, sizeof r);
    char key[65];
    assert_int_equal(qt_store_begin(st, NULL), QT_OK);
    for (int i = 0; i < 200; i++) {
        key_of(i, key);
        r.top1 = i / 200.0;
        assert_int_equal(qt_store_eval_put(st, job, key, "{\"fc1\":{}}", "a reason", &r, NULL), QT_OK);
    }
    assert_int_equal(qt_store_commit(st, NULL), QT_OK);
    qt_store_close(st);
    unsigned char *b = read_all(path_of("good.db"), &n);
    assert_true(n >= 4 * 4096);
    /* garbage over the pages after the first (the schema page survives) */
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 4096 * 2; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        c[i] = (unsigned char)x;
    }
    write_all(path_of("garbage.db"), c, n);
    refused(path_of("garbage.db"), QT_ECORRUPT, "damaged");
    /* cut short */
    write_all(path_of("cut.db"), b, n / 2);
    refused(path_of("cut.db"), QT_ECORRUPT, "damaged");
    /* the schema page itself broken */
    memcpy(c, b, n);
    memset(c + 100, 0xee, 4096 - 100);
    write_all(path_of("schema.db"), c, n);
    refused(path_of("schema.db"), QT_ECORRUPT, "");
    free(c);
    free(b);
}

/* ---- migration from schema 1 ---- */

/* what qtune's schema 1 wrote (store.c, version 1), as a file of that
 * version holds it */
static const char v1_sql[] =
    "PRAGMA application_id = 1903445058;"
    "CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT NOT NULL, path TEXT,"
    "  hash TEXT NOT NULL UNIQUE, summary TEXT, created REAL NOT NULL);"
    "CREATE TABLE datasets (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    "  hash TEXT NOT NULL UNIQUE, summary TEXT, created REAL NOT NULL);"
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, model_id INTEGER REFERENCES models(id),"
    "  dataset_id INTEGER REFERENCES datasets(id), spec TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued','running','paused','done','failed','cancelled')),"
    "  created REAL NOT NULL, started REAL, updated REAL NOT NULL, finished REAL,"
    "  runs INTEGER NOT NULL DEFAULT 0, interrupted INTEGER NOT NULL DEFAULT 0, error TEXT,"
    "  answer TEXT, CHECK ((state = 'done') = (answer IS NOT NULL AND finished IS NOT NULL)));"
    "CREATE TABLE evaluations (id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE CHECK (length(key) = 64),"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id), config TEXT, reason TEXT, cost REAL,"
    "  compression REAL, top1 REAL, top5 REAL, loss REAL, weight_bits REAL, act_bits REAL,"
    "  bitops REAL, images INTEGER NOT NULL, feasible INTEGER NOT NULL, early INTEGER NOT NULL,"
    "  duration REAL, worker TEXT, fail TEXT NOT NULL DEFAULT '' CHECK (fail IN ('','nan',"
    "  'nomem','timeout','crash','other')), error TEXT, created REAL NOT NULL);"
    "CREATE TABLE job_evaluations (job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  seq INTEGER NOT NULL, eval_id INTEGER NOT NULL REFERENCES evaluations(id),"
    "  reused INTEGER NOT NULL, cost REAL, compression REAL, PRIMARY KEY (job_id, seq),"
    "  UNIQUE (job_id, eval_id)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

static const char v1_data[] =
    "INSERT INTO jobs(id, spec, state, created, updated, runs) VALUES (7,"
    " '{\"model\":\"mlp\",\"strategy\":\"uniform\"}', 'running', 1000.5, 1001.0, 1);"
    "INSERT INTO evaluations(id, key, job_id, config, reason, cost, compression, top1, top5,"
    " loss, weight_bits, act_bits, bitops, images, feasible, early, duration, worker, fail,"
    " error, created) VALUES (3, '00000000000000000000000000000000"
    "0000000000000000000000000000abcd', 7, '{\"fc1\":{\"weights\":\"fixed<4,3>\"}}',"
    " 'uniform: 4 bits', 1000.0, 8.5, 0.875, 0.99, 0.4, 1000.0, 2000.0, 3000.0, 500, 1, 0,"
    " 0.25, 'host:1', '', NULL, 1000.75);"
    "INSERT INTO job_evaluations VALUES (7, 1, 3, 0, 1000.0, 8.5);";

typedef struct evlog { int n; char kinds[16][16]; } evlog;

static int ev_cb(void *user, double at, const char *kind, const char *detail)
{
    evlog *l = user;
    (void)at; (void)detail;
    if (l->n < 16) snprintf(l->kinds[l->n], sizeof l->kinds[0], "%s", kind);
    l->n++;
    return 0;
}

static int count_cb(void *user, const qt_store_eval *e)
{
    (void)e;
    (*(int *)user)++;
    return 0;
}

static void migrate_v1(void **state)
{
    (void)state;
    const char *p = path_of("v1.db");
    char sql[sizeof v1_sql + sizeof v1_data];
    snprintf(sql, sizeof sql, "%s%s", v1_sql, v1_data);
    raw_exec(p, sql);
    assert_int_equal(raw_int(p, "PRAGMA user_version"), 1);
    /* read-only: an upgrade needs a write */
    qt_store *st;
    qt_error err;
    assert_int_equal(qt_store_open(p, QT_STORE_READONLY, &st, &err), QT_ENOTSUP);
    assert_non_null(strstr(err.text, "read-only"));
    assert_int_equal(raw_int(p, "PRAGMA user_version"), 1);
    /* upgraded on open */
    assert_int_equal(qt_store_open(p, 0, &st, &err), QT_OK);
    assert_int_equal(qt_store_schema(st), QT_STORE_SCHEMA);
    qt_store_close(st);
    assert_int_equal(raw_int(p, "PRAGMA user_version"), QT_STORE_SCHEMA);
    /* schema 3: the old results are whole-split ones */
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM evaluations WHERE subset = 0"),
                     raw_int(p, "SELECT COUNT(*) FROM evaluations"));
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND "
                                "name IN ('jobs_model', 'job_evaluations_eval', 'job_events_job')"), 3);
    assert_int_equal(qt_store_open(p, 0, &st, &err), QT_OK);
    /* the old data, through the new code */
    qt_store_job j;
    assert_int_equal(qt_store_job_get(st, 7, &j, &err), QT_OK);
    assert_int_equal(j.state, QT_JOB_RUNNING);
    assert_int_equal(j.runs, 1);
    assert_int_equal(j.evals, 1);
    assert_int_equal(j.computed, 1);
    assert_string_equal(j.model, "mlp");
    assert_string_equal(j.strategy, "uniform");
    assert_true(j.created == 1000.5);
    qt_store_job_clear(&j);
    qt_result r;
    assert_int_equal(qt_store_eval_get(st, "00000000000000000000000000000000"
                                       "0000000000000000000000000000abcd", &r, &err), QT_OK);
    assert_true(r.top1 == 0.875 && r.compression == 8.5 && r.images == 500 && r.feasible);
    assert_int_equal(r.subset, 0);
    int n = 0;
    assert_int_equal(qt_store_history(st, 7, count_cb, &n, &err), QT_OK);
    assert_int_equal(n, 1);
    /* schema 2's events: the job's creation carried over, new ones recorded */
    assert_int_equal(qt_store_job_set_state(st, 7, QT_JOB_RUNNING, NULL, &err), QT_OK);
    evlog l = { 0 };
    assert_int_equal(qt_store_job_events(st, 7, ev_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.kinds[0], "created");
    assert_string_equal(l.kinds[1], "interrupted");
    assert_string_equal(l.kinds[2], "running");
    qt_store_close(st);

    /* a step that fails is rolled back whole: the file stays at version 1 */
    p = path_of("v1bad.db");
    snprintf(sql, sizeof sql, "%s%s", v1_sql, "CREATE TABLE job_events(x);");
    raw_exec(p, sql);
    assert_int_not_equal(qt_store_open(p, 0, &st, &err), QT_OK);
    assert_non_null(strstr(err.text, "upgrading the schema to version 2"));
    assert_int_equal(raw_int(p, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs_model'"), 0);
}

/* schema 4: the registered datasets' table; a failing step 4 keeps the
 * steps before it (each is its own transaction) and the file at 3 */
static void migrate_v4(void **state)
{
    (void)state;
    const char *p = path_of("v1to4.db");
    char sql[sizeof v1_sql + sizeof v1_data];
    snprintf(sql, sizeof sql, "%s%s", v1_sql, v1_data);
    raw_exec(p, sql);
    qt_store *st;
    qt_error err;
    assert_int_equal(qt_store_open(p, 0, &st, &err), QT_OK);
    assert_int_equal(qt_store_schema(st), 4);
    int64_t id = 0;
    assert_int_equal(qt_store_dataset_register(st, "d", "h", "{}", NULL, &id, &err), QT_OK);
    assert_true(id > 0);
    qt_store_close(st);
    assert_int_equal(raw_int(p, "PRAGMA user_version"), 4);
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM registered_datasets"), 1);
    /* the old job is still there */
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM jobs WHERE id = 7"), 1);

    p = path_of("v4bad.db");
    snprintf(sql, sizeof sql, "%s%s", v1_sql, "CREATE TABLE registered_datasets(x);");
    raw_exec(p, sql);
    assert_int_not_equal(qt_store_open(p, 0, &st, &err), QT_OK);
    assert_non_null(strstr(err.text, "upgrading the schema to version 4"));
    assert_int_equal(raw_int(p, "PRAGMA user_version"), 3);
    assert_int_equal(raw_int(p, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs_model'"), 1);
}

/* ---- results through the store ---- */

static void same_result(const qt_result *a, const qt_result *b)
{
    /* bit for bit, NaN included */
    assert_memory_equal(&a->top1, &b->top1, sizeof a->top1);
    assert_memory_equal(&a->top5, &b->top5, sizeof a->top5);
    assert_true(memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 || (isnan(a->loss) && isnan(b->loss)));
    assert_int_equal(a->images, b->images);
    assert_int_equal(a->feasible, b->feasible);
    assert_int_equal(a->early, b->early);
    assert_memory_equal(&a->cost, &b->cost, sizeof a->cost);
    assert_memory_equal(&a->weight_bits, &b->weight_bits, sizeof a->weight_bits);
    assert_memory_equal(&a->act_bits, &b->act_bits, sizeof a->act_bits);
    assert_memory_equal(&a->bitops, &b->bitops, sizeof a->bitops);
    assert_memory_equal(&a->compression, &b->compression, sizeof a->compression);
    assert_memory_equal(&a->seconds, &b->seconds, sizeof a->seconds);
    assert_int_equal(a->fail, b->fail);
    assert_string_equal(a->error, b->error);
    assert_int_equal(a->subset, b->subset);
}

static void result_roundtrip(void **state)
{
    (void)state;
    qt_store *st = open_new("rt.db");
    int64_t job = new_job(st, "{\"model\":\"mlp\"}");
    qt_error err;
    qt_result r, g;
    char key[65];
    for (int i = 0; i < 6; i++) {
        memset(&r, 0, sizeof r);
        r.top1 = 0.1 + i / 3.0;                 /* not exact in decimal */
        r.top5 = nextafter(1.0, 0.0);
        r.loss = i == 1 ? INFINITY : i == 2 ? NAN : M_PI * 1e-300;
        r.images = (size_t)1 << (33 + i);
        r.feasible = i & 1;
        r.early = (i >> 1) & 1;
        r.cost = 1e300 / (i + 1);
        r.weight_bits = 4.9e-324 * (i + 1);   /* subnormal */
        r.act_bits = -7.25;
        r.bitops = 123456789.123456789;
        r.compression = 1.0 / 3;
        r.seconds = 1e-9;
        r.fail = (qt_fail_class)i;
        r.subset = (size_t)i * 250;
        r.cached = 1;                           /* ignored by put */
        if (i) memset(r.error, 'a' + i, sizeof r.error - 1);
        key_of(100 + i, key);
        assert_int_equal(qt_store_eval_put(st, job, key, "{}", NULL, &r, &err), QT_OK);
        memset(&g, 0x5a, sizeof g);
        assert_int_equal(qt_store_eval_get(st, key, &g, &err), QT_OK);
        assert_int_equal(g.cached, 1);
        same_result(&r, &g);
    }
    /* missing and malformed keys */
    key_of(99, key);
    assert_int_equal(qt_store_eval_get(st, key, &g, &err), QT_ENOENT);
    assert_int_equal(qt_store_eval_get(st, "abc", &g, &err), QT_EINVAL);
    key[3] = 'G';
    assert_int_equal(qt_store_eval_put(st, job, key, NULL, NULL, &r, &err), QT_EINVAL);
    /* an unknown job */
    key_of(98, key);
    assert_int_equal(qt_store_eval_put(st, 999, key, NULL, NULL, &r, &err), QT_ENOENT);
    assert_int_equal(qt_store_eval_get(st, key, &g, &err), QT_ENOENT);
    qt_store_close(st);
}

/* a key stored twice keeps its first result, unless that failed for a
 * passing reason; the cache does not reuse such failures */
static void failed_evaluations(void **state)
{
    (void)state;
    qt_store *st = open_new("fail.db");
    int64_t job = new_job(st, "{\"model\":\"mlp\"}");
    qt_error err;
    qt_result r, g;
    char key[65];
    memset(&r, 0, sizeof r);
    r.fail = QT_FAIL_NAN;
    snprintf(r.error, sizeof r.error, "every image's logits hold NaN or inf");
    r.top1 = NAN;
    key_of(1, key);
    assert_int_equal(qt_store_eval_put(st, job, key, "{}", "nan one", &r, &err), QT_OK);
    memset(&r, 0, sizeof r);
    r.top1 = 0.5;
    assert_int_equal(qt_store_eval_put(st, job, key, "{}", "again", &r, &err), QT_OK);
    assert_int_equal(qt_store_eval_get(st, key, &g, &err), QT_OK);
    assert_int_equal(g.fail, QT_FAIL_NAN);                    /* deterministic: kept */
    assert_string_equal(g.error, "every image's logits hold NaN or inf");
    assert_true(isnan(g.top1));

    qt_store_cache *sc;
    assert_int_equal(qt_store_cache_new(st, job, &sc, &err), QT_OK);
    const qt_eval_cache *h = qt_store_cache_hooks(sc);
    assert_int_equal(h->lookup(h->user, key, &g), 1);         /* reused, as a failure */
    assert_int_equal(g.fail, QT_FAIL_NAN);
    for (qt_fail_class f = QT_FAIL_NOMEM; f <= QT_FAIL_CRASH; f++) {
        key_of(10 + f, key);
        memset(&r, 0, sizeof r);
        r.fail = f;
        snprintf(r.error, sizeof r.error, "passing failure %d", f);
        assert_int_equal(qt_store_eval_put(st, job, key, "{}", NULL, &r, &err), QT_OK);
        assert_int_equal(qt_store_eval_get(st, key, &g, &err), QT_OK);
        assert_int_equal(g.fail, f);
        assert_int_equal(h->lookup(h->user, key, &g), 0);     /* computed again */
        memset(&r, 0, sizeof r);
        r.top1 = 0.75;
        h->stored(h->user, key, NULL, "{}", &r);               /* replaces it */
        assert_int_equal(qt_store_eval_get(st, key, &g, &err), QT_OK);
        assert_int_equal(g.fail, QT_FAIL_NONE);
        assert_true(g.top1 == 0.75);
        assert_string_equal(g.error, "");
    }
    int reused, stored, failed;
    qt_store_cache_counts(sc, &reused, &stored, &failed);
    assert_int_equal(reused, 1);
    assert_int_equal(stored, 3);
    assert_int_equal(failed, 0);
    assert_int_equal(qt_store_cache_error(sc, &err), QT_OK);
    qt_store_cache_free(sc);
    /* the history holds each key once */
    int n = 0;
    assert_int_equal(qt_store_history(st, job, count_cb, &n, &err), QT_OK);
    assert_int_equal(n, 4);
    qt_store_close(st);
}

/* ---- jobs ---- */

static void job_states(void **state)
{
    (void)state;
    qt_store *st = open_new("jobs.db");
    qt_error err;
    qt_store_job j;
    const char *job = "{\"model\":\"lenet5\",\"strategy\":{\"name\":\"greedy\",\"subset\":500},"
                      "\"budget\":{\"evaluations\":40}}";
    int64_t a = new_job(st, job), b = new_job(st, "{\"model\":\"mlp\"}");
    assert_true(a > 0 && b > a);
    assert_int_equal(qt_store_job_get(st, a, &j, &err), QT_OK);
    assert_int_equal(j.state, QT_JOB_QUEUED);
    assert_string_equal(j.model, "lenet5");
    assert_string_equal(j.strategy, "greedy");
    assert_null(j.answer_json);
    assert_null(j.error);
    assert_true(j.created > 1.6e9 && j.started == 0 && j.finished == 0);
    /* the spec is the canonical JSON and parses back to the same spec */
    qt_job_spec sp, sp2;
    assert_int_equal(qt_job_parse(job, &sp, &err), QT_OK);
    json_t *canon = qt_job_to_json(&sp);
    char *ct = json_dumps(canon, JSON_COMPACT | JSON_REAL_PRECISION(17));
    assert_string_equal(j.spec_json, ct);
    free(ct);
    json_decref(canon);
    assert_int_equal(qt_store_job_spec(st, a, &sp2, &err), QT_OK);
    assert_int_equal(sp2.max_evals, 40);
    assert_string_equal(sp2.strategy, "greedy");
    qt_job_clear(&sp2);
    qt_store_job_clear(&j);

    /* transitions */
    assert_int_equal(qt_store_job_finish(st, a, "{}", &err), QT_EINVAL);     /* not running */
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_DONE, NULL, &err), QT_EINVAL);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_QUEUED, NULL, &err), QT_EINVAL);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_RUNNING, NULL, &err), QT_OK);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_QUEUED, "shutdown", &err), QT_OK);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_QUEUED, NULL, &err), QT_EINVAL);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_RUNNING, NULL, &err), QT_OK); /* clean */
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_RUNNING, NULL, &err), QT_OK); /* killed */
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_PAUSED, "disk full", &err), QT_OK);
    assert_int_equal(qt_store_job_get(st, a, &j, &err), QT_OK);
    assert_int_equal(j.state, QT_JOB_PAUSED);
    assert_string_equal(j.error, "disk full");
    assert_null(j.answer_json);
    assert_int_equal(j.runs, 3);
    assert_int_equal(j.interrupted, 1);
    qt_store_job_clear(&j);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_RUNNING, NULL, &err), QT_OK);
    assert_int_equal(qt_store_job_finish(st, a, NULL, &err), QT_EINVAL);
    assert_int_equal(qt_store_job_finish(st, a, "{\"feasible\":true}", &err), QT_OK);
    assert_int_equal(qt_store_job_get(st, a, &j, &err), QT_OK);
    assert_int_equal(j.state, QT_JOB_DONE);
    assert_string_equal(j.answer_json, "{\"feasible\":true}");
    assert_null(j.error);
    assert_true(j.finished >= j.started && j.started >= j.created);
    assert_int_equal(j.interrupted, 1);
    qt_store_job_clear(&j);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_FAILED, "x", &err), QT_EINVAL);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_PAUSED, "x", &err), QT_EINVAL);
    /* reopening a finished job clears its answer until it finishes again */
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_RUNNING, NULL, &err), QT_OK);
    assert_int_equal(qt_store_job_get(st, a, &j, &err), QT_OK);
    assert_int_equal(j.state, QT_JOB_RUNNING);
    assert_null(j.answer_json);
    assert_int_equal(j.interrupted, 1);
    qt_store_job_clear(&j);
    assert_int_equal(qt_store_job_set_state(st, a, QT_JOB_FAILED, "engine: out of memory", &err), QT_OK);
    assert_int_equal(qt_store_job_set_state(st, b, QT_JOB_CANCELLED, NULL, &err), QT_OK);
    assert_int_equal(qt_store_job_set_state(st, 77, QT_JOB_RUNNING, NULL, &err), QT_ENOENT);
    assert_int_equal(qt_store_job_get(st, 77, &j, &err), QT_ENOENT);

    /* a new spec (other budget), kept in the events */
    sp.max_evals = 80;
    assert_int_equal(qt_store_job_set_spec(st, a, &sp, &err), QT_OK);
    assert_int_equal(qt_store_job_spec(st, a, &sp2, &err), QT_OK);
    assert_int_equal(sp2.max_evals, 80);
    qt_job_clear(&sp2);
    qt_job_clear(&sp);

    evlog l = { 0 };
    assert_int_equal(qt_store_job_events(st, a, ev_cb, &l, &err), QT_OK);
    const char *want[] = { "created", "running", "queued", "running", "interrupted", "running",
                           "paused", "running" };
    assert_int_equal(l.n, 12);
    for (int i = 0; i < 8; i++) assert_string_equal(l.kinds[i], want[i]);
    assert_string_equal(l.kinds[8], "done");

    /* models and datasets by hash */
    int64_t m1, m2, d1;
    assert_int_equal(qt_store_model_put(st, "mlp", "mlp.qtck", "aa11", "{\"nodes\":6}", &m1, &err), QT_OK);
    assert_int_equal(qt_store_model_put(st, "mlp2", NULL, "aa11", NULL, &m2, &err), QT_OK);
    assert_true(m1 == m2);
    assert_int_equal(qt_store_model_put(st, "x", NULL, "", NULL, &m2, &err), QT_EINVAL);
    assert_int_equal(qt_store_dataset_put(st, "fashion-mnist/val", "ff00", "{\"images\":1000}", &d1, &err), QT_OK);
    assert_int_equal(qt_store_job_set_model(st, a, m1, d1, &err), QT_OK);
    assert_int_equal(qt_store_job_get(st, a, &j, &err), QT_OK);
    assert_true(j.model_id == m1 && j.dataset_id == d1);
    qt_store_job_clear(&j);
    assert_int_equal(raw_int(path_of("jobs.db"), "SELECT COUNT(*) FROM models WHERE name = 'mlp2' "
                                                 "AND summary = '{\"nodes\":6}'"), 1);

    qt_store_job *list;
    int n;
    assert_int_equal(qt_store_job_list(st, &list, &n, &err), QT_OK);
    assert_int_equal(n, 2);
    assert_true(list[0].id == a && list[1].id == b);
    assert_int_equal(list[0].state, QT_JOB_FAILED);
    assert_string_equal(list[0].error, "engine: out of memory");
    assert_int_equal(list[1].state, QT_JOB_CANCELLED);
    qt_store_job_list_free(list, n);

    qt_job_state s;
    for (int i = 0; i < QT_JOB_STATE_COUNT; i++) {
        assert_int_equal(qt_job_state_parse(qt_job_state_name((qt_job_state)i), &s), QT_OK);
        assert_int_equal(s, i);
    }
    assert_int_equal(qt_job_state_parse("finished", &s), QT_EINVAL);
    qt_store_close(st);
}

/* ---- the cache hooks of real searches (the synthetic evaluator "need",
 * tuner_testutil.h) ---- */

typedef struct hist { int n; char key[256][65]; int reused[256]; double cost[256]; } hist;

static int hist_cb(void *user, const qt_store_eval *e)
{
    hist *h = user;
    assert_int_equal(e->seq, h->n + 1);
    if (h->n < 256) {
        snprintf(h->key[h->n], 65, "%s", e->key);
        h->reused[h->n] = e->reused;
        h->cost[h->n] = e->r.cost;
    }
    h->n++;
    return 0;
}

/* run a job through the store (NULL store: in memory); returns the search */
static qt_search *run_job(qt_store *st, int64_t job, const char *json, qt_graph *g, tu_need *y,
                          int *reused, int *stored)
{
    qt_job_spec sp;
    qt_error err;
    qt_search *s;
    qt_store_cache *sc = NULL;
    assert_int_equal(qt_job_parse(json, &sp, &err), QT_OK);
    if (st) assert_int_equal(qt_store_cache_new(st, job, &sc, &err), QT_OK);
    assert_int_equal(qt_search_new_custom(&sp, g, &tu_float, 1.0, tu_need_eval, y,
                                          sc ? qt_store_cache_hooks(sc) : NULL, &s, &err), QT_OK);
    if (sc) qt_store_cache_attach(sc, s);
    assert_int_equal(qt_search_run(s, NULL, NULL, &err), QT_OK);
    if (sc) {
        int failed;
        qt_store_cache_counts(sc, reused, stored, &failed);
        assert_int_equal(failed, 0);
        qt_store_cache_free(sc);
    }
    qt_job_clear(&sp);
    return s;
}

static void cache_hooks(void **state)
{
    (void)state;
    qt_graph *g;
    qt_error err;
    assert_int_equal(qt_zoo_build("mlp", &g, &err), QT_OK);
    tu_need y = { .need = { 6, 5, 7, 4, 3, 8 }, .mu = PTHREAD_MUTEX_INITIALIZER };
    const char *ja = "{\"model\":\"mlp\",\"strategy\":\"bisection\",\"space\":[{\"nodes\":\"fc*\","
                     "\"points\":[\"weights\",\"bias\"],\"widths\":[2,12]}]}";
    /* the same search, costed in bit-operations */
    const char *jb = "{\"model\":\"mlp\",\"strategy\":\"bisection\",\"cost\":\"bitops\",\"space\":"
                     "[{\"nodes\":\"fc*\",\"points\":[\"weights\",\"bias\"],\"widths\":[2,12]}]}";
    qt_store *st = open_new("cache.db");
    int64_t a = new_job(st, ja), b = new_job(st, jb);
    int reused, stored;

    qt_search *s = run_job(st, a, ja, g, &y, &reused, &stored);
    int na = qt_search_evals(s), calls = y.calls;
    assert_int_equal(reused, 0);
    assert_int_equal(stored, qt_search_computed(s));
    hist h = { 0 };
    assert_int_equal(qt_store_history(st, a, hist_cb, &h, &err), QT_OK);
    assert_int_equal(h.n, stored);
    for (int i = 0; i < h.n; i++) assert_int_equal(h.reused[i], 0);
    qt_search_free(s);

    /* replay: nothing computed, the same history */
    s = run_job(st, a, ja, g, &y, &reused, &stored);
    assert_int_equal(y.calls, calls);
    assert_int_equal(stored, 0);
    assert_int_equal(qt_search_computed(s), 0);
    assert_int_equal(qt_search_evals(s), na);
    hist h2 = { 0 };
    assert_int_equal(qt_store_history(st, a, hist_cb, &h2, &err), QT_OK);
    assert_int_equal(h2.n, h.n);
    for (int i = 0; i < h.n; i++) assert_string_equal(h.key[i], h2.key[i]);
    qt_search_free(s);

    /* another job: what job a measured is reused, with job b's cost and
     * compression; the rest is computed */
    qt_search *ref = run_job(NULL, 0, jb, g, &y, NULL, NULL);      /* in memory */
    calls = y.calls;
    s = run_job(st, b, jb, g, &y, &reused, &stored);
    assert_true(reused > 0);
    assert_int_equal(reused + stored, qt_search_evals(s));
    assert_int_equal(y.calls - calls, stored);
    assert_int_equal(qt_search_evals(s), qt_search_evals(ref));
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_result *r1, *r2;
        qt_search_result(s, i, NULL, &r1);
        qt_search_result(ref, i, NULL, &r2);
        assert_true(r1->cost == r2->cost);
        assert_true(r1->compression == r2->compression);
        assert_true(r1->top1 == r2->top1);
        assert_int_equal(r1->feasible, r2->feasible);
    }
    hist hb = { 0 };
    assert_int_equal(qt_store_history(st, b, hist_cb, &hb, &err), QT_OK);
    assert_int_equal(hb.n, qt_search_evals(s));
    int nre = 0;
    for (int i = 0; i < hb.n; i++) {
        nre += hb.reused[i];
        const qt_result *r2;
        qt_search_result(ref, i, NULL, &r2);
        assert_true(hb.cost[i] == r2->cost);            /* the job's own cost */
    }
    assert_int_equal(nre, reused);
    qt_store_job jj;
    assert_int_equal(qt_store_job_get(st, b, &jj, &err), QT_OK);
    assert_int_equal(jj.evals, hb.n);
    assert_int_equal(jj.computed, stored);
    qt_store_job_clear(&jj);
    qt_search_free(s);
    qt_search_free(ref);
    qt_store_close(st);
    qt_graph_free(g);
}

/* ---- Pareto fronts against brute force ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

typedef struct pt { double cost, acc; int64_t id; int ok; } pt;

/* brute force: a point is on the front iff no other point is at least as
 * good in both and better in one, and no earlier point is equal */
static int on_front(const pt *p, int n, int i, double floor)
{
    if (!p[i].ok || p[i].acc < floor) return 0;
    for (int k = 0; k < n; k++) {
        if (k == i || !p[k].ok || p[k].acc < floor) continue;
        if (p[k].cost <= p[i].cost && p[k].acc >= p[i].acc &&
            (p[k].cost < p[i].cost || p[k].acc > p[i].acc))
            return 0;
        if (p[k].cost == p[i].cost && p[k].acc == p[i].acc && p[k].id < p[i].id) return 0;
    }
    return 1;
}

static void check_front(const pt *p, int n, double floor, const qt_store_point *f, int nf)
{
    int want = 0;
    for (int i = 0; i < n; i++) {
        if (!on_front(p, n, i, floor)) continue;
        want++;
        int found = 0;
        for (int k = 0; k < nf; k++)
            if (f[k].eval_id == p[i].id) {
                found = 1;
                assert_true(f[k].cost == p[i].cost && f[k].acc == p[i].acc);
            }
        assert_true(found);
    }
    assert_int_equal(nf, want);
    for (int k = 1; k < nf; k++) assert_true(f[k].cost > f[k - 1].cost && f[k].acc > f[k - 1].acc);
}

static void pareto_fronts(void **state)
{
    (void)state;
    qt_store *st = open_new("pareto.db");
    qt_error err;
    int64_t ja = new_job(st, "{\"model\":\"mlp\"}");
    int64_t jb = new_job(st, "{\"model\":\"mlp\",\"constraint\":{\"metric\":\"loss\",\"relative\":0.9}}");
    int64_t jc = new_job(st, "{\"model\":\"lenet5\"}");
    int64_t m1, m2;
    assert_int_equal(qt_store_model_put(st, "mlp", NULL, "m1", NULL, &m1, &err), QT_OK);
    assert_int_equal(qt_store_model_put(st, "lenet5", NULL, "m2", NULL, &m2, &err), QT_OK);
    assert_int_equal(qt_store_job_set_model(st, ja, m1, 0, &err), QT_OK);
    assert_int_equal(qt_store_job_set_model(st, jb, m1, 0, &err), QT_OK);
    assert_int_equal(qt_store_job_set_model(st, jc, m2, 0, &err), QT_OK);
    enum { N = 3000 };
    static pt pa[N], pb[N], pm[2 * N];
    int nb = 0, nm = 0;
    char key[65];
    qt_store_cache *sc;
    assert_int_equal(qt_store_cache_new(st, jb, &sc, &err), QT_OK);
    const qt_eval_cache *h = qt_store_cache_hooks(sc);
    assert_int_equal(qt_store_begin(st, &err), QT_OK);
    for (int i = 0; i < N; i++) {
        qt_result r;
        memset(&r, 0, sizeof r);
        /* coarse values, so that ties happen */
        r.weight_bits = floor(urand() * 200);
        r.cost = r.weight_bits;
        r.top1 = floor(urand() * 100) / 100;
        r.loss = floor(urand() * 50) / 25;
        r.fail = urand() < 0.05 ? QT_FAIL_NAN : QT_FAIL_NONE;
        r.early = urand() < 0.1;
        r.subset = urand() < 0.1 ? 50 : 0;      /* a coarse pass's: never on a front */
        r.images = r.subset ? 50 : 100;
        key_of(i, key);
        assert_int_equal(qt_store_eval_put(st, i % 7 == 3 ? jc : ja, key, NULL, NULL, &r, &err), QT_OK);
        int ok = r.fail == QT_FAIL_NONE && !r.early && !r.subset;
        int64_t id = i + 1;                     /* rowids of a new table */
        if (i % 7 != 3) pa[i] = (pt){ r.cost, r.top1, id, ok };
        else pa[i] = (pt){ 0, 0, id, 0 };
        pm[nm++] = (pt){ r.weight_bits, r.top1, id, ok && i % 7 != 3 };
        if (i % 3 == 0) {                       /* job b reuses a third of them */
            qt_result g;
            assert_int_equal(h->lookup(h->user, key, &g), 1);
            pb[nb++] = (pt){ r.cost, -r.loss, id, ok };
            if (i % 7 == 3) pm[nm - 1].ok = ok;             /* now also of model 1 */
        }
    }
    assert_int_equal(qt_store_commit(st, &err), QT_OK);
    qt_store_cache_free(sc);
    qt_store_point *f;
    int nf;
    double floors[] = { -INFINITY, 0.5, 0.95 };
    for (int k = 0; k < 3; k++) {
        assert_int_equal(qt_store_pareto_job(st, ja, floors[k], &f, &nf, &err), QT_OK);
        assert_true(nf > 0);
        check_front(pa, N, floors[k], f, nf);
        free(f);
    }
    /* job b's metric is the loss: acc is minus the loss */
    assert_int_equal(qt_store_pareto_job(st, jb, -1.0, &f, &nf, &err), QT_OK);
    check_front(pb, nb, -1.0, f, nf);
    free(f);
    /* the model across jobs a and b: every evaluation once */
    assert_int_equal(qt_store_pareto_model(st, m1, QT_COST_WEIGHT_BITS, QT_MET_TOP1, 0.3, &f, &nf, &err), QT_OK);
    check_front(pm, nm, 0.3, f, nf);
    free(f);
    assert_int_equal(qt_store_pareto_model(st, m1, QT_COST_WEIGHTED, QT_MET_TOP1, 0, &f, &nf, &err), QT_EINVAL);
    assert_int_equal(qt_store_pareto_model(st, 999, QT_COST_BITOPS, QT_MET_TOP1, 0, &f, &nf, &err), QT_OK);
    assert_int_equal(nf, 0);
    free(f);
    assert_int_equal(qt_store_pareto_job(st, 999, 0, &f, &nf, &err), QT_ENOENT);
    qt_store_close(st);
}

/* ---- the queries of the daemon: models, datasets, pages, fronts ---- */

typedef struct named_log { int n; char name[8][32]; char hash[8][40]; char src[8][128];
                           int has_path[8]; int64_t id[8]; } named_log;

static int named_cb(void *user, const qt_store_named *m)
{
    named_log *l = user;
    if (l->n >= 8) return 42;
    snprintf(l->name[l->n], sizeof l->name[0], "%s", m->name);
    snprintf(l->hash[l->n], sizeof l->hash[0], "%s", m->hash);
    snprintf(l->src[l->n], sizeof l->src[0], "%s", m->source_json ? m->source_json : "");
    l->has_path[l->n] = m->path != NULL;
    l->id[l->n] = m->id;
    l->n++;
    return 0;
}

static void models_datasets(void **state)
{
    (void)state;
    qt_store *st = open_new("named.db");
    qt_error err;
    int64_t a, b, a2, d1, d2, d3;
    named_log l = { 0 };
    assert_int_equal(qt_store_model_list(st, named_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 0);
    assert_int_equal(qt_store_model_put(st, "mlp", "/m/mlp.qtck", "h1", "{\"nodes\":3}", &a, &err), QT_OK);
    assert_int_equal(qt_store_model_put(st, "zoo", NULL, "h2", NULL, &b, &err), QT_OK);
    /* the same content under another name: one row, renamed */
    assert_int_equal(qt_store_model_put(st, "mlp2", NULL, "h1", NULL, &a2, &err), QT_OK);
    assert_true(a2 == a);
    assert_int_equal(qt_store_model_list(st, named_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.name[0], "mlp2");
    assert_string_equal(l.hash[0], "h1");
    assert_true(l.has_path[0] && !l.has_path[1]);
    assert_true(l.id[0] == a && l.id[1] == b);
    assert_string_equal(l.src[0], "");
    /* datasets by name, listed by name; a name registered again is replaced */
    assert_int_equal(qt_store_dataset_register(st, "zeta", "hz", "{\"train_images\":\"/z\"}",
                                               NULL, &d1, &err), QT_OK);
    assert_int_equal(qt_store_dataset_register(st, "alpha", "ha", "{\"train_images\":\"/a\"}",
                                               "{\"images\":5}", &d2, &err), QT_OK);
    assert_int_equal(qt_store_dataset_register(st, "zeta", "hz2", "{\"train_images\":\"/z2\"}",
                                               NULL, &d3, &err), QT_OK);
    assert_true(d3 == d1 && d2 != d1);
    memset(&l, 0, sizeof l);
    assert_int_equal(qt_store_dataset_list(st, named_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.name[0], "alpha");
    assert_string_equal(l.name[1], "zeta");
    assert_string_equal(l.hash[1], "hz2");
    assert_string_equal(l.src[1], "{\"train_images\":\"/z2\"}");
    memset(&l, 0, sizeof l);
    assert_int_equal(qt_store_dataset_find(st, "alpha", named_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.src[0], "{\"train_images\":\"/a\"}");
    assert_int_equal(qt_store_dataset_find(st, "beta", named_cb, &l, &err), QT_ENOENT);
    assert_non_null(strstr(err.text, "no dataset 'beta'"));
    /* the run-recorded datasets (by content) are another table */
    int64_t dd;
    assert_int_equal(qt_store_dataset_put(st, "alpha", "0123", NULL, &dd, &err), QT_OK);
    memset(&l, 0, sizeof l);
    assert_int_equal(qt_store_dataset_list(st, named_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 2);
    /* bad arguments, and a callback's stop */
    assert_int_equal(qt_store_dataset_register(st, "", "h", "{}", NULL, NULL, &err), QT_EINVAL);
    assert_int_equal(qt_store_dataset_register(st, "x", "h", NULL, NULL, NULL, &err), QT_EINVAL);
    l.n = 8;
    assert_int_equal(qt_store_dataset_list(st, named_cb, &l, &err), 42);
    qt_store_close(st);
    /* read-only: listed, not written */
    assert_int_equal(qt_store_open(path_of("named.db"), QT_STORE_READONLY, &st, &err), QT_OK);
    memset(&l, 0, sizeof l);
    assert_int_equal(qt_store_dataset_list(st, named_cb, &l, &err), QT_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(qt_store_dataset_register(st, "y", "h", "{}", NULL, NULL, &err), QT_EIO);
    qt_store_close(st);
}

typedef struct page { int n; int seq[64]; char key[64][65]; double cost[64]; } page;

static int page_cb(void *user, const qt_store_eval *e)
{
    page *p = user;
    if (p->n < 64) {
        p->seq[p->n] = e->seq;
        snprintf(p->key[p->n], 65, "%s", e->key);
        p->cost[p->n] = e->r.cost;
    }
    p->n++;
    return 0;
}

typedef struct fr { int n; int64_t id[64]; double cost[64], acc[64]; int seq[64];
                    char reason[64][32], config[64][32]; double comp[64]; } fr;

static int front_cb(void *user, const qt_store_point *pp, const qt_store_eval *e)
{
    fr *f = user;
    if (f->n >= 64) return 7;
    f->id[f->n] = pp->eval_id;
    f->cost[f->n] = pp->cost;
    f->acc[f->n] = pp->acc;
    f->seq[f->n] = e->seq;
    assert_string_equal(pp->key, e->key);
    assert_true(pp->eval_id == e->id);
    assert_true(e->r.cost == pp->cost);
    snprintf(f->reason[f->n], 32, "%s", e->reason ? e->reason : "");
    snprintf(f->config[f->n], 32, "%s", e->config_json ? e->config_json : "");
    f->comp[f->n] = e->r.compression;
    f->n++;
    return 0;
}

static void pages_and_fronts(void **state)
{
    (void)state;
    qt_store *st = open_new("pages.db");
    qt_error err;
    int64_t ja = new_job(st, "{\"model\":\"mlp\"}");
    int64_t jb = new_job(st, "{\"model\":\"mlp\"}");
    char key[65], cfg[32], why[32];
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        qt_result r;
        memset(&r, 0, sizeof r);
        r.cost = 100 - i;             /* cheaper and, every third, more accurate */
        r.compression = 32.0 / r.cost;
        r.top1 = i % 3 == 0 ? 0.5 - i * 0.01 : 0.1;
        r.images = 100;
        r.early = i == 3;              /* early: never on the front */
        key_of(1000 + i, key);
        snprintf(cfg, sizeof cfg, "{\"c\":%d}", i);
        snprintf(why, sizeof why, "step %d", i);
        assert_int_equal(qt_store_eval_put(st, i % 2 ? jb : ja, key, cfg, why, &r, &err), QT_OK);
    }
    /* pages of job a's history (20 evaluations) */
    page p = { 0 };
    assert_int_equal(qt_store_history_page(st, ja, 5, 4, page_cb, &p, &err), QT_OK);
    assert_int_equal(p.n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(p.seq[i], 6 + i);
    key_of(1000 + 2 * 5, key);
    assert_string_equal(p.key[0], key);
    memset(&p, 0, sizeof p);
    assert_int_equal(qt_store_history_page(st, ja, 18, 10, page_cb, &p, &err), QT_OK);
    assert_int_equal(p.n, 2);
    memset(&p, 0, sizeof p);
    assert_int_equal(qt_store_history_page(st, ja, 20, 10, page_cb, &p, &err), QT_OK);
    assert_int_equal(p.n, 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(qt_store_history_page(st, ja, 0, 0, page_cb, &p, &err), QT_OK);
    assert_int_equal(p.n, 20);
    page all = { 0 };
    assert_int_equal(qt_store_history(st, ja, page_cb, &all, &err), QT_OK);
    assert_memory_equal(all.key, p.key, sizeof p.key);
    assert_int_equal(qt_store_history_page(st, ja, -1, 1, page_cb, &p, &err), QT_EINVAL);
    /* the front as evaluations: the same points as qt_store_pareto_job */
    qt_store_point *f;
    int nf;
    double floors[] = { -INFINITY, 0.2 };
    for (int k = 0; k < 2; k++) {
        assert_int_equal(qt_store_pareto_job(st, ja, floors[k], &f, &nf, &err), QT_OK);
        fr e = { 0 };
        assert_int_equal(qt_store_pareto_evals(st, ja, floors[k], front_cb, &e, &err), QT_OK);
        assert_int_equal(e.n, nf);
        assert_true(nf >= 2);
        for (int i = 0; i < nf; i++) {
            assert_true(e.id[i] == f[i].eval_id && e.cost[i] == f[i].cost && e.acc[i] == f[i].acc);
            int at = (int)(100 - e.cost[i]);          /* which evaluation it is */
            assert_int_equal(at % 2, 0);
            assert_int_not_equal(at, 3);
            assert_int_equal(e.seq[i], at / 2 + 1);
            snprintf(why, sizeof why, "step %d", at);
            snprintf(cfg, sizeof cfg, "{\"c\":%d}", at);
            assert_string_equal(e.reason[i], why);
            assert_string_equal(e.config[i], cfg);
            assert_true(e.comp[i] == 32.0 / e.cost[i]);
        }
        free(f);
    }
    /* job b reuses an evaluation of job a: it sees it in its own history */
    qt_store_cache *sc;
    assert_int_equal(qt_store_cache_new(st, jb, &sc, &err), QT_OK);
    const qt_eval_cache *h = qt_store_cache_hooks(sc);
    qt_result g;
    key_of(1000, key);
    assert_int_equal(h->lookup(h->user, key, &g), 1);
    qt_store_cache_free(sc);
    fr e = { 0 };
    assert_int_equal(qt_store_pareto_evals(st, jb, -INFINITY, front_cb, &e, &err), QT_OK);
    assert_true(e.n >= 1);
    assert_int_equal(e.seq[e.n - 1], 21);             /* the reused one, most accurate */
    assert_string_equal(e.reason[e.n - 1], "step 0");
    assert_int_equal(qt_store_pareto_evals(st, 999, 0, front_cb, &e, &err), QT_ENOENT);
    qt_store_close(st);
}

/* 10^5 evaluations of one model: storing them and the model's front */
static void pareto_scale(void **state)
{
    (void)state;
    qt_store *st = open_new("scale.db");
    qt_error err;
    int64_t m, job = new_job(st, "{\"model\":\"mlp\"}");
    assert_int_equal(qt_store_model_put(st, "mlp", NULL, "m", NULL, &m, &err), QT_OK);
    assert_int_equal(qt_store_job_set_model(st, job, m, 0, &err), QT_OK);
    enum { N = 100000 };
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(qt_store_begin(st, &err), QT_OK);
    for (int i = 0; i < N; i++) {
        qt_result r;
        char key[65];
        memset(&r, 0, sizeof r);
        r.weight_bits = r.cost = 1e5 + urand() * 1e6;
        r.top1 = urand();
        r.images = 1000;
        key_of(i, key);
        assert_int_equal(qt_store_eval_put(st, job, key, "{\"fc1\":{\"weights\":\"fixed<4,3>\"}}",
                                           "synthetic", &r, &err), QT_OK);
    }
    assert_int_equal(qt_store_commit(st, &err), QT_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qt_store_point *f;
    int nf;
    assert_int_equal(qt_store_pareto_model(st, m, QT_COST_WEIGHT_BITS, QT_MET_TOP1, 0.9, &f, &nf, &err), QT_OK);
    assert_true(nf > 0);
    free(f);
    assert_int_equal(qt_store_pareto_job(st, job, -INFINITY, &f, &nf, &err), QT_OK);
    free(f);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double put = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double q = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec);
    qt_store_close(st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(qt_store_open(path_of("scale.db"), 0, &st, &err), QT_OK);   /* quick_check */
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double o = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec);
    fprintf(stderr, "    10^5 evaluations: stored in %.2f s (one batch), model and job fronts in "
            "%.3f s, opened (checked) in %.3f s\n", put, q, o);
    qt_store_close(st);
    unlink(path_of("scale.db"));
}

/* ---- exports read back ---- */

/* split one CSV record (RFC 4180) into at most max fields; returns the
 * number, advancing *p past the record */
static int csv_record(const char **p, char fields[][512], int max)
{
    int n = 0;
    const char *s = *p;
    for (;;) {
        char *o = fields[n];
        size_t k = 0;
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == '"' && s[1] == '"') { o[k++] = '"'; s += 2; }
                else if (*s == '"') { s++; break; }
                else o[k++] = *s++;
            }
        } else {
            while (*s && *s != ',' && *s != '\r') o[k++] = *s++;
        }
        o[k] = 0;
        n++;
        if (*s == ',') { s++; if (n < max) continue; }
        break;
    }
    if (*s == '\r') s++;
    if (*s == '\n') s++;
    *p = s;
    return n;
}

static void exports(void **state)
{
    (void)state;
    qt_store *st = open_new("export.db");
    qt_error err;
    int64_t job = new_job(st, "{\"model\":\"mlp\"}");
    char key[65];
    qt_result rs[5];
    const char *reasons[] = { "plain", "with, a comma", "with \"quotes\"", "two\nlines", NULL };
    for (int i = 0; i < 5; i++) {
        qt_result *r = &rs[i];
        memset(r, 0, sizeof *r);
        r->top1 = 0.1 * i + 1.0 / 3;
        r->top5 = 0.99;
        r->loss = i == 4 ? INFINITY : 0.5 + i;
        r->cost = 1234.5678 * (i + 1);
        r->compression = 32.0 / (i + 2);
        r->images = 1000 + (size_t)i;
        r->feasible = i % 2;
        r->early = i == 3;
        r->weight_bits = r->cost;
        r->act_bits = 77;
        r->bitops = 1e12 / 7;
        r->seconds = 0.01 * i;
        if (i == 4) { r->fail = QT_FAIL_NAN; snprintf(r->error, sizeof r->error, "NaN, \"everywhere\""); }
        key_of(i, key);
        assert_int_equal(qt_store_eval_put(st, job, key, i == 2 ? "{\"fc1\":{\"weights\":\"fixed<4,3>\"}}" : "{}",
                                           reasons[i], r, &err), QT_OK);
    }
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(qt_store_export(st, job, QT_STORE_CSV, f, &err), QT_OK);
    fclose(f);
    const char *p = buf;
    static char fl[32][512];
    int nf = csv_record(&p, fl, 32);
    assert_int_equal(nf, 21);
    assert_string_equal(fl[0], "seq");
    assert_string_equal(fl[20], "created");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(csv_record(&p, fl, 32), 21);
        key_of(i, key);
        assert_int_equal(atoi(fl[0]), i + 1);
        assert_string_equal(fl[1], key);
        assert_string_equal(fl[3], reasons[i] ? reasons[i] : "");
        assert_string_equal(fl[4], i == 2 ? "{\"fc1\":{\"weights\":\"fixed<4,3>\"}}" : "{}");
        assert_true(strtod(fl[5], NULL) == rs[i].cost);
        assert_true(strtod(fl[6], NULL) == rs[i].compression);
        assert_true(strtod(fl[7], NULL) == rs[i].top1);
        assert_true(strtod(fl[9], NULL) == rs[i].loss);
        assert_int_equal(strtoull(fl[10], NULL, 10), rs[i].images);
        assert_int_equal(atoi(fl[11]), rs[i].feasible);
        assert_int_equal(atoi(fl[12]), rs[i].early);
        assert_true(strtod(fl[15], NULL) == rs[i].bitops);
        assert_string_equal(fl[17], i == 4 ? "nan" : "");
        assert_string_equal(fl[18], rs[i].error);
    }
    assert_int_equal(*p, 0);
    free(buf);

    f = open_memstream(&buf, &len);
    assert_int_equal(qt_store_export(st, job, QT_STORE_JSON, f, &err), QT_OK);
    fclose(f);
    json_error_t je;
    json_t *a = json_loads(buf, 0, &je);
    if (!a) fprintf(stderr, "%s\n%s\n", je.text, buf);
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 5);
    for (int i = 0; i < 5; i++) {
        json_t *o = json_array_get(a, (size_t)i);
        key_of(i, key);
        assert_int_equal(json_integer_value(json_object_get(o, "seq")), i + 1);
        assert_string_equal(json_string_value(json_object_get(o, "key")), key);
        assert_true(json_real_value(json_object_get(o, "top1")) == rs[i].top1);
        assert_true(json_real_value(json_object_get(o, "cost")) == rs[i].cost);
        assert_true(json_real_value(json_object_get(o, "bitops")) == rs[i].bitops);
        assert_int_equal(json_integer_value(json_object_get(o, "images")), (json_int_t)rs[i].images);
        assert_int_equal(json_is_true(json_object_get(o, "early")), rs[i].early);
        if (i == 4) {
            assert_true(json_is_null(json_object_get(o, "loss")));     /* inf */
            assert_string_equal(json_string_value(json_object_get(o, "fail")), "nan");
            assert_string_equal(json_string_value(json_object_get(o, "error")), rs[i].error);
            assert_true(json_is_null(json_object_get(o, "reason")));
        }
        if (i == 2)
            assert_string_equal(json_string_value(json_object_get(json_object_get(
                json_object_get(o, "config"), "fc1"), "weights")), "fixed<4,3>");
    }
    json_decref(a);
    free(buf);
    /* an empty history, an unknown job */
    int64_t j2 = new_job(st, "{\"model\":\"mlp\"}");
    f = open_memstream(&buf, &len);
    assert_int_equal(qt_store_export(st, j2, QT_STORE_JSON, f, &err), QT_OK);
    fclose(f);
    assert_string_equal(buf, "[]\n");
    free(buf);
    f = open_memstream(&buf, &len);
    assert_int_equal(qt_store_export(st, 999, QT_STORE_CSV, f, &err), QT_ENOENT);
    fclose(f);
    free(buf);
    /* a stream that cannot be written */
    f = fopen("/dev/full", "w");
    if (f) {
        assert_int_equal(qt_store_export(st, job, QT_STORE_JSON, f, &err), QT_EIO);
        fclose(f);
    }
    qt_store_close(st);
}

/* ---- a read-only file and a full one ---- */

/* fill db with n evaluations of a new job; returns the job */
static int64_t fill(const char *name, int n)
{
    qt_store *st = open_new(name);
    int64_t job = new_job(st, "{\"model\":\"mlp\"}");
    qt_result r;
    char key[65];
    memset(&r, 0, sizeof r);
    for (int i = 0; i < n; i++) {
        key_of(i, key);
        r.top1 = i;
        assert_int_equal(qt_store_eval_put(st, job, key, "{}", "fill", &r, NULL), QT_OK);
    }
    qt_store_close(st);
    return job;
}

static int wait_child(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* in a child without write access to p (root drops to nobody; others
 * lose the permission): with dir_ro also none to its directory */
static int ro_child(const char *p, const char *dir, int dir_ro, int64_t job)
{
    if (geteuid() == 0) {
        if (setgid(65534) || setuid(65534)) return 10;
    } else if (chmod(p, 0444) || (dir_ro && chmod(dir, 0555))) {
        return 11;
    }
    qt_store *st;
    qt_error err;
    qt_result r;
    char key[65];
    int code = 0, rc = qt_store_open(p, 0, &st, &err);
    if (dir_ro) {
        /* WAL needs its -shm file: refused, saying why */
        if (rc != QT_EIO || !strstr(err.text, "read-only") || !strstr(err.text, p)) {
            fprintf(stderr, "open in a read-only directory: %d %s\n", rc, err.text);
            code = 12;
        }
        if (!rc) qt_store_close(st);
        goto out;
    }
    if (rc) { fprintf(stderr, "%s\n", err.text); code = 13; goto out; }
    key_of(5, key);
    if (qt_store_eval_get(st, key, &r, &err) || r.top1 != 5) code = 14;
    memset(&r, 0, sizeof r);
    key_of(500, key);
    rc = qt_store_eval_put(st, job, key, "{}", NULL, &r, &err);
    if (rc != QT_EIO || !strstr(err.text, "read-only") || !strstr(err.text, p)) {
        fprintf(stderr, "put on a read-only file: %d %s\n", rc, err.text);
        code = 15;
    }
    /* the cache answers, records the failed write, and would stop the search */
    qt_store_cache *sc;
    if (qt_store_cache_new(st, job, &sc, &err)) {
        code = 16;
    } else {
        const qt_eval_cache *h = qt_store_cache_hooks(sc);
        key_of(3, key);
        if (h->lookup(h->user, key, &r) != 1) code = 17;
        key_of(501, key);
        h->stored(h->user, key, NULL, "{}", &r);
        int failed;
        qt_store_cache_counts(sc, NULL, NULL, &failed);
        if (failed != 1 || qt_store_cache_error(sc, &err) != QT_EIO) code = 18;
        qt_store_cache_free(sc);
    }
    if (qt_store_job_set_state(st, job, QT_JOB_RUNNING, NULL, &err) != QT_EIO) code = 19;
    qt_store_close(st);
out:
    if (geteuid() != 0) { chmod(p, 0644); chmod(dir, 0777); }
    return code;
}

static void read_only(void **state)
{
    (void)state;
    for (int dir_ro = 0; dir_ro < 2; dir_ro++) {
        char dir[300], name[64], p[400];
        snprintf(dir, sizeof dir, "%s/ro%d", tmpdir, dir_ro);
        assert_int_equal(mkdir(dir, 0755), 0);
        if (!dir_ro) assert_int_equal(chmod(dir, 0777), 0);
        snprintf(name, sizeof name, "ro%d/ro.db", dir_ro);
        snprintf(p, sizeof p, "%s", path_of(name));
        int64_t job = fill(name, 20);
        size_t n0, n1;
        unsigned char *b0 = read_all(p, &n0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) _exit(ro_child(p, dir, dir_ro, job));
        assert_int_equal(wait_child(pid), 0);
        unsigned char *b1 = read_all(p, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(b0, b1, n0);
        free(b0);
        free(b1);
        assert_int_equal(count_evals(p), 20);
        /* clean up the subdirectory (side files the child left) */
        const char *sfx[] = { "", "-wal", "-shm" };
        for (int i = 0; i < 3; i++) {
            char f[420];
            snprintf(f, sizeof f, "%s%s", p, sfx[i]);
            unlink(f);
        }
        assert_int_equal(rmdir(dir), 0);
    }
}

/* a size-limited file (RLIMIT_FSIZE, SIGXFSZ ignored): puts fail cleanly
 * with QT_EFULL, every evaluation stored before is there, and once the
 * limit is lifted the same store takes writes again */
static void size_limit(void **state)
{
    (void)state;
    const char *p = path_of("full.db");
    int64_t job = fill("full.db", 10);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        qt_store *st;
        qt_error err;
        qt_result r;
        char key[65], cfg[2048];
        int ok = 0, rc = QT_OK, code = 0;
        signal(SIGXFSZ, SIG_IGN);
        if (qt_store_open(p, 0, &st, &err)) _exit(20);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rlim_t hard = rl.rlim_max;
        struct stat sb;
        char wal[400];
        snprintf(wal, sizeof wal, "%s-wal", p);
        off_t big = stat(p, &sb) == 0 ? sb.st_size : 0;
        if (stat(wal, &sb) == 0 && sb.st_size > big) big = sb.st_size;
        rl.rlim_cur = (rlim_t)big + 512 * 1024;
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(21);
        memset(cfg, 'c', sizeof cfg - 1);
        cfg[0] = '"';
        cfg[sizeof cfg - 2] = '"';
        cfg[sizeof cfg - 1] = 0;
        memset(&r, 0, sizeof r);
        for (int i = 10; i < 100000; i++) {
            key_of(i, key);
            r.top1 = i;
            if ((rc = qt_store_eval_put(st, job, key, cfg, "filling the disk", &r, &err))) break;
            ok++;
        }
        if (rc != QT_EFULL || !strstr(err.text, "file size limit") || !strstr(err.text, p)) {
            fprintf(stderr, "put past the size limit: %d %s\n", rc, err.text);
            code = 22;
        }
        /* a read still works; so does the next write once there is room */
        key_of(9, key);
        if (qt_store_eval_get(st, key, &r, &err) || r.top1 != 9) code = 23;
        rl.rlim_cur = hard;
        if (setrlimit(RLIMIT_FSIZE, &rl)) code = 24;
        key_of(10 + ok, key);
        r.top1 = 10 + ok;
        if (qt_store_eval_put(st, job, key, "{}", "room again", &r, &err)) {
            fprintf(stderr, "after the limit: %s\n", err.text);
            code = 25;
        }
        qt_store_close(st);
        if (write(fds[1], &ok, sizeof ok) != sizeof ok) code = 26;
        _exit(code);
    }
    close(fds[1]);
    int ok = -1;
    assert_int_equal(read(fds[0], &ok, sizeof ok), sizeof ok);
    close(fds[0]);
    assert_int_equal(wait_child(pid), 0);
    assert_true(ok > 10);
    fprintf(stderr, "    size limit: %d evaluations stored before the limit, then QT_EFULL\n", ok);
    /* everything before the failure and the one after: there, intact */
    qt_store *st;
    qt_error err;
    assert_int_equal(qt_store_open(p, 0, &st, &err), QT_OK);        /* quick_check passes */
    int n = 0;
    assert_int_equal(qt_store_history(st, job, count_cb, &n, &err), QT_OK);
    assert_int_equal(n, 10 + ok + 1);
    for (int i = 0; i < 10 + ok + 1; i++) {
        char key[65];
        qt_result r;
        key_of(i, key);
        assert_int_equal(qt_store_eval_get(st, key, &r, &err), QT_OK);
        assert_true(r.top1 == i);
    }
    qt_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_create),
        cmocka_unit_test(refuse_foreign),
        cmocka_unit_test(refuse_corrupt),
        cmocka_unit_test(migrate_v1),
        cmocka_unit_test(migrate_v4),
        cmocka_unit_test(models_datasets),
        cmocka_unit_test(pages_and_fronts),
        cmocka_unit_test(result_roundtrip),
        cmocka_unit_test(failed_evaluations),
        cmocka_unit_test(job_states),
        cmocka_unit_test(cache_hooks),
        cmocka_unit_test(pareto_fronts),
        cmocka_unit_test(pareto_scale),
        cmocka_unit_test(exports),
        cmocka_unit_test(read_only),
        cmocka_unit_test(size_limit),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
