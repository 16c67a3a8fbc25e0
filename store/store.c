/*
 * store.c -- the SQLite store: opening and checking the file, the schema
 * and its migrations, jobs, evaluations, the search's cache hooks, Pareto
 * fronts and exports.
 *
 * The file is checked before anything is written to it: its first 100
 * bytes must be an SQLite header carrying qtune's application_id, then the
 * schema version must be one this code knows and the database must pass
 * PRAGMA quick_check. Only then is WAL mode set and the schema upgraded,
 * one transaction per version. A new file is created in rollback mode so
 * that the application_id reaches the main file (where the header check
 * reads it) before WAL mode is switched on.
 *
 * Every write is one IMMEDIATE transaction (or part of the caller's
 * qt_store_begin batch); on any failure it is rolled back, so a full disk
 * or a read-only file loses nothing that was committed before.
 */
#include "store.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_MS 5000

/* ------------------------------------------------------------------------ */
/* Schema                                                                    */
/* ------------------------------------------------------------------------ */

/* Version 1: models, datasets, jobs, evaluations and the job histories.
 * Never edit a released version: add a new one. */
static const char schema_v1[] =
    "CREATE TABLE models ("
    "  id       INTEGER PRIMARY KEY,"
    "  name     TEXT NOT NULL,"
    "  path     TEXT,"
    "  hash     TEXT NOT NULL UNIQUE,"
    "  summary  TEXT,"                          /* JSON */
    "  created  REAL NOT NULL);"
    "CREATE TABLE datasets ("
    "  id       INTEGER PRIMARY KEY,"
    "  name     TEXT NOT NULL,"
    "  hash     TEXT NOT NULL UNIQUE,"
    "  summary  TEXT,"
    "  created  REAL NOT NULL);"
    "CREATE TABLE jobs ("
    "  id          INTEGER PRIMARY KEY,"
    "  model_id    INTEGER REFERENCES models(id),"
    "  dataset_id  INTEGER REFERENCES datasets(id),"
    "  spec        TEXT NOT NULL,"              /* canonical job JSON */
    "  state       TEXT NOT NULL CHECK (state IN ('queued','running','paused','done',"
    "                                             'failed','cancelled')),"
    "  created     REAL NOT NULL,"
    "  started     REAL,"
    "  updated     REAL NOT NULL,"
    "  finished    REAL,"
    "  runs        INTEGER NOT NULL DEFAULT 0,"
    "  interrupted INTEGER NOT NULL DEFAULT 0,"
    "  error       TEXT,"
    "  answer      TEXT,"                       /* JSON: the completion record */
    "  CHECK ((state = 'done') = (answer IS NOT NULL AND finished IS NOT NULL)));"
    "CREATE TABLE evaluations ("
    "  id          INTEGER PRIMARY KEY,"
    "  key         TEXT NOT NULL UNIQUE CHECK (length(key) = 64),"
    "  job_id      INTEGER NOT NULL REFERENCES jobs(id),"   /* who computed it */
    "  config      TEXT,"                       /* JSON */
    "  reason      TEXT,"
    "  cost        REAL,"                       /* as its job counts cost */
    "  compression REAL,"
    "  top1        REAL,"                       /* the metrics; NULL is NaN */
    "  top5        REAL,"
    "  loss        REAL,"
    "  weight_bits REAL,"
    "  act_bits    REAL,"
    "  bitops      REAL,"
    "  images      INTEGER NOT NULL,"
    "  feasible    INTEGER NOT NULL,"
    "  early       INTEGER NOT NULL,"
    "  duration    REAL,"                       /* seconds */
    "  worker      TEXT,"
    "  fail        TEXT NOT NULL DEFAULT '' CHECK (fail IN ('','nan','nomem','timeout',"
    "                                                       'crash','other')),"
    "  error       TEXT,"
    "  created     REAL NOT NULL);"
    "CREATE TABLE job_evaluations ("             /* a job's history */
    "  job_id      INTEGER NOT NULL REFERENCES jobs(id),"
    "  seq         INTEGER NOT NULL,"
    "  eval_id     INTEGER NOT NULL REFERENCES evaluations(id),"
    "  reused      INTEGER NOT NULL,"           /* taken from the store */
    "  cost        REAL,"                       /* as this job counts cost */
    "  compression REAL,"
    "  PRIMARY KEY (job_id, seq),"
    "  UNIQUE (job_id, eval_id)) WITHOUT ROWID;";

/* Version 2: what happened to each job, and indexes for queries across
 * jobs (a model's Pareto front, the jobs that used an evaluation). */
static const char schema_v2[] =
    "CREATE TABLE job_events ("
    "  id      INTEGER PRIMARY KEY,"
    "  job_id  INTEGER NOT NULL REFERENCES jobs(id),"
    "  at      REAL NOT NULL,"
    "  kind    TEXT NOT NULL,"
    "  detail  TEXT);"
    "CREATE INDEX job_events_job ON job_events(job_id, id);"
    "CREATE INDEX jobs_model ON jobs(model_id);"
    "CREATE INDEX job_evaluations_eval ON job_evaluations(eval_id);"
    "INSERT INTO job_events(job_id, at, kind, detail)"
    "  SELECT id, created, 'created', 'recorded before schema 2' FROM jobs;";

/* Version 3: results measured on the first n images of the split only (a
 * strategy's coarse pass), never an answer or a point of a front. */
static const char schema_v3[] =
    "ALTER TABLE evaluations ADD COLUMN subset INTEGER NOT NULL DEFAULT 0;";

/* Version 4: datasets registered by name (dataset.register): where their
 * files are and how they are normalised (a job's "data"), by name; the
 * datasets table keeps recording the splits runs used, by content. */
static const char schema_v4[] =
    "CREATE TABLE registered_datasets ("
    "  id       INTEGER PRIMARY KEY,"
    "  name     TEXT NOT NULL UNIQUE,"
    "  hash     TEXT NOT NULL,"
    "  source   TEXT NOT NULL,"                 /* JSON: the job's "data" */
    "  summary  TEXT,"                          /* JSON */
    "  created  REAL NOT NULL,"
    "  updated  REAL NOT NULL);";

static const char *const migrations[QT_STORE_SCHEMA + 1] = { NULL, schema_v1, schema_v2,
                                                             schema_v3, schema_v4 };

/* ------------------------------------------------------------------------ */
/* The object                                                                */
/* ------------------------------------------------------------------------ */

enum { Q_GET, Q_UPSERT, Q_ID, Q_LINKED, Q_LINK, Q_EVENT, Q_COUNT };

static const char *const hot_sql[Q_COUNT] = {
    [Q_GET] = "SELECT id, job_id, key, config, reason, worker, created, cost, compression,"
              " top1, top5, loss, weight_bits, act_bits, bitops, images, feasible, early,"
              " duration, fail, error, subset FROM evaluations WHERE key = ?1",
    /* a key stored once keeps its result, unless that one failed for a
     * passing reason */
    [Q_UPSERT] = "INSERT INTO evaluations(key, job_id, config, reason, cost, compression, top1,"
                 " top5, loss, weight_bits, act_bits, bitops, images, feasible, early, duration,"
                 " worker, fail, error, created, subset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                 " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
                 " ON CONFLICT(key) DO UPDATE SET job_id = excluded.job_id,"
                 " config = excluded.config, reason = excluded.reason, cost = excluded.cost,"
                 " compression = excluded.compression, top1 = excluded.top1,"
                 " top5 = excluded.top5, loss = excluded.loss,"
                 " weight_bits = excluded.weight_bits, act_bits = excluded.act_bits,"
                 " bitops = excluded.bitops, images = excluded.images,"
                 " feasible = excluded.feasible, early = excluded.early,"
                 " duration = excluded.duration, worker = excluded.worker,"
                 " fail = excluded.fail, error = excluded.error, created = excluded.created,"
                 " subset = excluded.subset"
                 " WHERE evaluations.fail IN ('nomem', 'timeout', 'crash')",
    [Q_ID] = "SELECT id, job_id FROM evaluations WHERE key = ?1",
    [Q_LINKED] = "SELECT 1 FROM job_evaluations WHERE job_id = ?1 AND eval_id = ?2",
    [Q_LINK] = "INSERT OR IGNORE INTO job_evaluations(job_id, seq, eval_id, reused, cost,"
               " compression) SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5"
               " FROM job_evaluations WHERE job_id = ?1",
    [Q_EVENT] = "INSERT INTO job_events(job_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
};

struct qt_store {
    sqlite3      *db;
    char         *path;
    int           flags;
    int           readonly;       /* opened read-only, or the file is */
    int           batch;          /* inside qt_store_begin */
    int           schema;
    char          worker[96];
    sqlite3_stmt *q[Q_COUNT];     /* prepared once: the hot paths */
};

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* An SQLite failure as a qt_rc, with a message naming the file, what was
 * being done and the cause. */
static int sql_fail(qt_store *st, int src, qt_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int sql_fail(qt_store *st, int src, qt_error *err, const char *fmt, ...)
{
    char what[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int sys = st->db ? sqlite3_system_errno(st->db) : 0;
    /* SQLite does not always keep the errno of a failed write (EFBIG) */
    if (!sys && (src & 0xff) == SQLITE_IOERR) sys = errno;
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src);
    int rc;
    const char *cause;
    switch (src & 0xff) {
    case SQLITE_FULL:
        rc = QT_EFULL;
        cause = "the disk is full";
        break;
    case SQLITE_IOERR:
        if (sys == ENOSPC || sys == EDQUOT) { rc = QT_EFULL; cause = "the disk is full"; }
        else if (sys == EFBIG) { rc = QT_EFULL; cause = "the file size limit is reached"; }
        else { rc = QT_EIO; cause = "an input/output error"; }
        break;
    case SQLITE_READONLY:
        rc = QT_EIO;
        cause = src == SQLITE_READONLY_DIRECTORY
            ? "the database and its directory are read-only (WAL mode needs its -shm file)"
            : "the database is read-only";
        break;
    case SQLITE_CANTOPEN:
        rc = QT_EIO;
        cause = "the file cannot be opened";
        break;
    case SQLITE_BUSY: case SQLITE_LOCKED:
        rc = QT_EBUSY;
        cause = "another process holds the database";
        break;
    case SQLITE_CORRUPT: case SQLITE_NOTADB:
        rc = QT_ECORRUPT;
        cause = "the database is damaged";
        break;
    case SQLITE_NOMEM:
        rc = QT_ENOMEM;
        cause = "out of memory";
        break;
    case SQLITE_CONSTRAINT:
        rc = QT_EINVAL;
        cause = "a constraint failed";
        break;
    default:
        rc = QT_EIO;
        cause = "a database error";
        break;
    }
    if (sys && (rc == QT_EFULL || rc == QT_EIO))
        return qt_errorf(err, rc, -1, "%s: %s: %s (%s; %s)", st->path, what, cause, msg,
                         strerror(sys));
    return qt_errorf(err, rc, -1, "%s: %s: %s (%s)", st->path, what, cause, msg);
}

/* step a statement that returns no rows, then reset it */
static int step_done(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) rc = SQLITE_OK;
    else rc = sqlite3_extended_errcode(sqlite3_db_handle(q));
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int exec(qt_store *st, const char *sql)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(st->db);
}

static int prepare(qt_store *st, const char *sql, sqlite3_stmt **q)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, q, NULL);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(st->db);
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

static int check_writable(qt_store *st, qt_error *err, const char *what)
{
    if (!st->readonly) return QT_OK;
    return qt_errorf(err, QT_EIO, -1, "%s: %s: the database is read-only%s", st->path, what,
                     st->flags & QT_STORE_READONLY ? " (opened so)" : "");
}

/* begin a write (nothing inside the caller's batch) */
static int tx_begin(qt_store *st, qt_error *err, const char *what)
{
    int rc = check_writable(st, err, what);
    if (rc || st->batch) return rc;
    if ((rc = exec(st, "BEGIN IMMEDIATE"))) return sql_fail(st, rc, err, "%s", what);
    return QT_OK;
}

/* end a write: commit when rc is QT_OK, else roll back; returns the
 * outcome. Inside a batch the caller commits. */
static int tx_end(qt_store *st, int rc, qt_error *err, const char *what)
{
    if (st->batch) return rc;
    if (rc == QT_OK) {
        int src = exec(st, "COMMIT");
        if (src == SQLITE_OK) return QT_OK;
        rc = sql_fail(st, src, err, "%s", what);
    }
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int qt_store_begin(qt_store *st, qt_error *err)
{
    if (st->batch) return qt_errorf(err, QT_EINVAL, -1, "%s: a batch is already open", st->path);
    int rc = tx_begin(st, err, "beginning a batch");
    if (rc == QT_OK) st->batch = 1;
    return rc;
}

int qt_store_commit(qt_store *st, qt_error *err)
{
    if (!st->batch) return qt_errorf(err, QT_EINVAL, -1, "%s: no batch is open", st->path);
    st->batch = 0;
    return tx_end(st, QT_OK, err, "committing a batch");
}

void qt_store_rollback(qt_store *st)
{
    st->batch = 0;
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */
/* ------------------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What is at path, from its first bytes, without SQLite (which could write
 * to it: a hot journal is rolled back on first read): 0 nothing (missing
 * or empty: create), 1 a qtune database, or an error. */
static int check_header(const char *path, int flags, qt_error *err)
{
    struct stat sb;
    unsigned char h[100];
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT && (flags & QT_STORE_CREATE)) return 0;
        return qt_errorf(err, errno == ENOENT ? QT_ENOENT : QT_EIO, -1, "%s: %s", path,
                         strerror(errno));
    }
    if (!S_ISREG(sb.st_mode))
        return qt_errorf(err, QT_EINVAL, -1, "%s: not a regular file", path);
    if (sb.st_size == 0) {
        if (flags & QT_STORE_CREATE) return 0;
        return qt_errorf(err, QT_ENOENT, -1, "%s: an empty file, not a qtune database", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qt_errorf(err, QT_EIO, -1, "%s: %s", path, strerror(errno));
    ssize_t n = read(fd, h, sizeof h);
    int e = errno;
    close(fd);
    if (n < 0) return qt_errorf(err, QT_EIO, -1, "%s: %s", path, strerror(e));
    if (n < (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
        return qt_errorf(err, QT_ECORRUPT, -1, "%s: not an SQLite database, so not a qtune "
                         "store; refused and left untouched", path);
    uint32_t app = be32(h + 68);
    if (app != QT_STORE_APP_ID)
        return qt_errorf(err, QT_ECORRUPT, -1, "%s: an SQLite database of another application "
                         "(application_id 0x%08x, qtune's is 0x%08x); refused and left "
                         "untouched", path, app, QT_STORE_APP_ID);
    return 1;
}

static int pragma_int(qt_store *st, const char *sql, int *v)
{
    sqlite3_stmt *q;
    int rc = prepare(st, sql, &q);
    if (rc) return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) { *v = sqlite3_column_int(q, 0); rc = SQLITE_OK; }
    else rc = sqlite3_extended_errcode(st->db);
    sqlite3_finalize(q);
    return rc;
}

/* the read-only checks of an existing file: application_id, version,
 * quick_check */
static int check_db(qt_store *st, qt_error *err)
{
    int app = 0, ver = 0, rc;
    if ((rc = pragma_int(st, "PRAGMA application_id", &app)) ||
        (rc = pragma_int(st, "PRAGMA user_version", &ver)))
        return sql_fail(st, rc, err, "reading it");
    if ((uint32_t)app != QT_STORE_APP_ID)
        return qt_errorf(err, QT_ECORRUPT, -1, "%s: an SQLite database of another application "
                         "(application_id 0x%08x); refused and left untouched", st->path,
                         (uint32_t)app);
    if (ver > QT_STORE_SCHEMA)
        return qt_errorf(err, QT_ENOTSUP, -1, "%s: written by a newer qtune (schema version %d; "
                         "this one knows up to %d); refused and left untouched", st->path, ver,
                         QT_STORE_SCHEMA);
    if (ver < 1)
        return qt_errorf(err, QT_ECORRUPT, -1, "%s: a qtune database without a schema version; "
                         "refused and left untouched", st->path);
    sqlite3_stmt *q;
    if ((rc = prepare(st, "PRAGMA quick_check", &q)))
        return qt_errorf(err, QT_ECORRUPT, -1, "%s: damaged (%s); refused and left untouched",
                         st->path, sqlite3_errmsg(st->db));
    rc = sqlite3_step(q);
    const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
    if (!res || strcmp(res, "ok") != 0) {
        qt_errorf(err, QT_ECORRUPT, -1, "%s: damaged (%s); refused and left untouched",
                  st->path, res ? res : sqlite3_errmsg(st->db));
        sqlite3_finalize(q);
        return QT_ECORRUPT;
    }
    sqlite3_finalize(q);
    st->schema = ver;
    return QT_OK;
}

/* upgrade to QT_STORE_SCHEMA, one transaction per version (from 0: create) */
static int migrate(qt_store *st, qt_error *err)
{
    while (st->schema < QT_STORE_SCHEMA) {
        int rc, ver = 0, next;
        char sql[96];
        if (st->readonly)
            return qt_errorf(err, QT_ENOTSUP, -1, "%s: schema version %d needs an upgrade to %d, "
                             "and the database is read-only", st->path, st->schema,
                             QT_STORE_SCHEMA);
        if ((rc = exec(st, "BEGIN IMMEDIATE")))
            return sql_fail(st, rc, err, "upgrading the schema");
        /* another process may have upgraded it meanwhile */
        if ((rc = pragma_int(st, "PRAGMA user_version", &ver))) goto fail;
        if (ver != st->schema) {
            exec(st, "ROLLBACK");
            st->schema = ver;
            continue;
        }
        next = ver + 1;
        if (next == 1) {
            snprintf(sql, sizeof sql, "PRAGMA application_id = %d", (int)QT_STORE_APP_ID);
            if ((rc = exec(st, sql))) goto fail;
        }
        if ((rc = exec(st, migrations[next]))) goto fail;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", next);
        if ((rc = exec(st, sql)) || (rc = exec(st, "COMMIT"))) goto fail;
        st->schema = next;
        continue;
fail:
        {
            int qrc = sql_fail(st, rc, err, "upgrading the schema to version %d", ver + 1);
            if (!sqlite3_get_autocommit(st->db)) exec(st, "ROLLBACK");
            return qrc;
        }
    }
    return QT_OK;
}

int qt_store_open(const char *path, int flags, qt_store **out, qt_error *err)
{
    qt_store *st;
    int rc, src, exists;
    *out = NULL;
    if (!path || !*path) return qt_errorf(err, QT_EINVAL, -1, "no database path given");
    if ((exists = check_header(path, flags, err)) < 0) return exists;
    if (!exists && (flags & QT_STORE_READONLY))
        return qt_errorf(err, QT_ENOENT, -1, "%s: no such database", path);
    if (!(st = calloc(1, sizeof *st)) || !(st->path = strdup(path))) {
        free(st);
        return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    }
    st->flags = flags;
    int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    oflags |= flags & QT_STORE_READONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (!exists) oflags |= SQLITE_OPEN_CREATE;
    if ((src = sqlite3_open_v2(path, &st->db, oflags, NULL)) != SQLITE_OK) {
        rc = sql_fail(st, src, err, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_MS);
    st->readonly = (flags & QT_STORE_READONLY) || sqlite3_db_readonly(st->db, "main") == 1;
    if (exists && (rc = check_db(st, err))) goto fail;
    if (!exists && st->readonly) {
        rc = qt_errorf(err, QT_EIO, -1, "%s: cannot create the database: read-only", path);
        goto fail;
    }
    /* from here on the file is ours to write */
    if ((src = exec(st, "PRAGMA foreign_keys = ON"))) { rc = sql_fail(st, src, err, "setting up"); goto fail; }
    if (!st->readonly) {
        if ((rc = migrate(st, err))) goto fail;
        if ((src = exec(st, "PRAGMA journal_mode = WAL")) ||
            (src = exec(st, flags & QT_STORE_NOSYNC ? "PRAGMA synchronous = NORMAL"
                                                    : "PRAGMA synchronous = FULL"))) {
            rc = sql_fail(st, src, err, "setting up WAL mode");
            goto fail;
        }
    } else if (st->schema < QT_STORE_SCHEMA) {
        if ((rc = migrate(st, err))) goto fail;      /* the read-only error */
    }
    for (int i = 0; i < Q_COUNT; i++)
        if ((src = prepare(st, hot_sql[i], &st->q[i]))) {
            rc = sql_fail(st, src, err, "preparing statements");
            goto fail;
        }
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(st->worker, sizeof st->worker, "%s:%ld", host, (long)getpid());
    *out = st;
    return QT_OK;
fail:
    qt_store_close(st);
    return rc;
}

void qt_store_close(qt_store *st)
{
    if (!st) return;
    if (st->db && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(st->q[i]);
    sqlite3_close_v2(st->db);
    free(st->path);
    free(st);
}

const char *qt_store_path(const qt_store *st) { return st->path; }
int qt_store_schema(const qt_store *st) { return st->schema; }

void qt_store_set_worker(qt_store *st, const char *name)
{
    snprintf(st->worker, sizeof st->worker, "%s", name ? name : "");
}

/* ------------------------------------------------------------------------ */
/* Models and datasets                                                       */
/* ------------------------------------------------------------------------ */

static int put_named(qt_store *st, const char *table, const char *name, const char *path,
                     const char *hash, const char *summary, int64_t *id, qt_error *err)
{
    char sql[320];
    sqlite3_stmt *q = NULL;
    int rc, src;
    if (!name || !hash || !*hash)
        return qt_errorf(err, QT_EINVAL, -1, "a %s needs a name and a hash",
                         table[0] == 'm' ? "model" : "dataset");
    if ((rc = tx_begin(st, err, "recording a model"))) return rc;
    if (table[0] == 'm')
        snprintf(sql, sizeof sql, "INSERT INTO %s(name, path, hash, summary, created) "
                 "VALUES (?1, ?4, ?2, ?3, ?5) ON CONFLICT(hash) DO UPDATE SET name = ?1, "
                 "path = COALESCE(?4, path), summary = COALESCE(?3, summary)", table);
    else
        snprintf(sql, sizeof sql, "INSERT INTO %s(name, hash, summary, created) "
                 "VALUES (?1, ?2, ?3, ?5) ON CONFLICT(hash) DO UPDATE SET name = ?1, "
                 "summary = COALESCE(?3, summary)", table);
    if ((src = prepare(st, sql, &q))) goto sqlfail;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, hash, -1, SQLITE_STATIC);
    if (summary) sqlite3_bind_text(q, 3, summary, -1, SQLITE_STATIC);
    if (path) sqlite3_bind_text(q, 4, path, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 5, now_unix());
    if ((src = step_done(q))) goto sqlfail;
    sqlite3_finalize(q);
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE hash = ?1", table);
    if ((src = prepare(st, sql, &q))) goto sqlfail;
    sqlite3_bind_text(q, 1, hash, -1, SQLITE_STATIC);
    if ((src = sqlite3_step(q)) != SQLITE_ROW) { src = sqlite3_extended_errcode(st->db); goto sqlfail; }
    *id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return tx_end(st, QT_OK, err, "recording a model");
sqlfail:
    rc = sql_fail(st, src, err, "recording a %s", table[0] == 'm' ? "model" : "dataset");
    sqlite3_finalize(q);
    return tx_end(st, rc, err, "");
}

int qt_store_model_put(qt_store *st, const char *name, const char *path, const char *hash,
                       const char *summary_json, int64_t *id, qt_error *err)
{
    return put_named(st, "models", name, path, hash, summary_json, id, err);
}

int qt_store_dataset_put(qt_store *st, const char *name, const char *hash,
                         const char *summary_json, int64_t *id, qt_error *err)
{
    return put_named(st, "datasets", name, NULL, hash, summary_json, id, err);
}

static int list_named(qt_store *st, const char *sql, const char *what, const char *name,
                      qt_store_named_cb cb, void *user, qt_error *err)
{
    sqlite3_stmt *q;
    int rc = QT_OK, src, rows = 0;
    if ((src = prepare(st, sql, &q))) return sql_fail(st, src, err, "%s", what);
    if (name) sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        qt_store_named m;
        memset(&m, 0, sizeof m);
        m.id = sqlite3_column_int64(q, 0);
        m.name = (const char *)sqlite3_column_text(q, 1);
        m.path = (const char *)sqlite3_column_text(q, 2);
        m.hash = (const char *)sqlite3_column_text(q, 3);
        m.summary_json = (const char *)sqlite3_column_text(q, 4);
        m.created = sqlite3_column_double(q, 5);
        m.source_json = (const char *)sqlite3_column_text(q, 6);
        m.updated = sqlite3_column_double(q, 7);
        rows++;
        if ((rc = cb(user, &m))) break;
    }
    if (!rc && src != SQLITE_DONE)
        rc = sql_fail(st, sqlite3_extended_errcode(st->db), err, "%s", what);
    sqlite3_finalize(q);
    if (!rc && name && !rows)
        rc = qt_errorf(err, QT_ENOENT, -1, "%s: no dataset '%s' is registered", st->path, name);
    return rc;
}

int qt_store_model_list(qt_store *st, qt_store_named_cb cb, void *user, qt_error *err)
{
    return list_named(st, "SELECT id, name, path, hash, summary, created, NULL, created"
                          " FROM models ORDER BY id", "listing models", NULL, cb, user, err);
}

int qt_store_dataset_register(qt_store *st, const char *name, const char *hash,
                              const char *source_json, const char *summary_json, int64_t *id,
                              qt_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc, src;
    if (!name || !*name || !hash || !*hash || !source_json)
        return qt_errorf(err, QT_EINVAL, -1, "a registered dataset needs a name, a hash and "
                         "its source");
    if ((rc = tx_begin(st, err, "registering a dataset"))) return rc;
    double t = now_unix();
    if ((src = prepare(st, "INSERT INTO registered_datasets(name, hash, source, summary,"
                           " created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
                           " ON CONFLICT(name) DO UPDATE SET hash = ?2, source = ?3,"
                           " summary = ?4, updated = ?5", &q))) goto sqlfail;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, source_json, -1, SQLITE_STATIC);
    if (summary_json) sqlite3_bind_text(q, 4, summary_json, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 5, t);
    if ((src = step_done(q))) goto sqlfail;
    sqlite3_finalize(q);
    q = NULL;
    if ((src = prepare(st, "SELECT id FROM registered_datasets WHERE name = ?1", &q))) goto sqlfail;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if ((src = sqlite3_step(q)) != SQLITE_ROW) { src = sqlite3_extended_errcode(st->db); goto sqlfail; }
    if (id) *id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return tx_end(st, QT_OK, err, "registering a dataset");
sqlfail:
    rc = sql_fail(st, src, err, "registering dataset '%.40s'", name);
    sqlite3_finalize(q);
    return tx_end(st, rc, err, "registering a dataset");
}

#define DATASET_COLS "id, name, NULL, hash, summary, created, source, updated"

int qt_store_dataset_list(qt_store *st, qt_store_named_cb cb, void *user, qt_error *err)
{
    return list_named(st, "SELECT " DATASET_COLS " FROM registered_datasets ORDER BY name",
                      "listing datasets", NULL, cb, user, err);
}

int qt_store_dataset_find(qt_store *st, const char *name, qt_store_named_cb cb, void *user,
                          qt_error *err)
{
    if (!name) return qt_errorf(err, QT_EINVAL, -1, "no dataset name given");
    return list_named(st, "SELECT " DATASET_COLS " FROM registered_datasets WHERE name = ?1",
                      "reading a dataset", name, cb, user, err);
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */
/* ------------------------------------------------------------------------ */

static const char *const state_names[QT_JOB_STATE_COUNT] = {
    "queued", "running", "paused", "done", "failed", "cancelled"
};

const char *qt_job_state_name(qt_job_state s)
{
    return (unsigned)s < QT_JOB_STATE_COUNT ? state_names[s] : "?";
}

int qt_job_state_parse(const char *name, qt_job_state *s)
{
    for (int i = 0; i < QT_JOB_STATE_COUNT; i++)
        if (name && !strcmp(name, state_names[i])) { *s = (qt_job_state)i; return QT_OK; }
    return QT_EINVAL;
}

static const char *const fail_names[] = { "", "nan", "nomem", "timeout", "crash", "other" };

const char *qt_fail_class_name(qt_fail_class f)
{
    return (unsigned)f <= QT_FAIL_OTHER ? fail_names[f] : "other";
}

static qt_fail_class fail_parse(const char *s)
{
    for (int i = 0; i <= QT_FAIL_OTHER; i++)
        if (s && !strcmp(s, fail_names[i])) return (qt_fail_class)i;
    return QT_FAIL_OTHER;
}

static int event(qt_store *st, int64_t job, const char *kind, const char *detail)
{
    sqlite3_stmt *q = st->q[Q_EVENT];
    sqlite3_bind_int64(q, 1, job);
    sqlite3_bind_double(q, 2, now_unix());
    sqlite3_bind_text(q, 3, kind, -1, SQLITE_STATIC);
    if (detail) sqlite3_bind_text(q, 4, detail, -1, SQLITE_STATIC);
    return step_done(q);
}

static char *spec_text(const qt_job_spec *spec, qt_error *err)
{
    json_t *j = qt_job_to_json(spec);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    if (!txt) qt_errorf(err, QT_ENOMEM, -1, "out of memory writing the job's JSON");
    return txt;
}

int qt_store_job_new(qt_store *st, const qt_job_spec *spec, int64_t *id, qt_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc, src;
    char *txt = spec_text(spec, err);
    if (!txt) return QT_ENOMEM;
    if ((rc = tx_begin(st, err, "storing a job"))) { free(txt); return rc; }
    double t = now_unix();
    if ((src = prepare(st, "INSERT INTO jobs(spec, state, created, updated) "
                           "VALUES (?1, 'queued', ?2, ?2)", &q))) goto sqlfail;
    sqlite3_bind_text(q, 1, txt, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 2, t);
    if ((src = step_done(q))) goto sqlfail;
    *id = sqlite3_last_insert_rowid(st->db);
    if ((src = event(st, *id, "created", NULL))) goto sqlfail;
    sqlite3_finalize(q);
    free(txt);
    return tx_end(st, QT_OK, err, "storing a job");
sqlfail:
    rc = sql_fail(st, src, err, "storing a job");
    sqlite3_finalize(q);
    free(txt);
    return tx_end(st, rc, err, "");
}

/* the job's state inside a transaction: QT_ENOENT when there is none */
static int job_state(qt_store *st, int64_t id, qt_job_state *s, qt_error *err)
{
    sqlite3_stmt *q;
    int src = prepare(st, "SELECT state FROM jobs WHERE id = ?1", &q);
    if (src) return sql_fail(st, src, err, "reading job %lld", (long long)id);
    sqlite3_bind_int64(q, 1, id);
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        int rc = qt_job_state_parse((const char *)sqlite3_column_text(q, 0), s);
        sqlite3_finalize(q);
        return rc ? qt_errorf(err, QT_ECORRUPT, -1, "%s: job %lld has an unknown state",
                              st->path, (long long)id) : QT_OK;
    }
    int rc = src == SQLITE_DONE
        ? qt_errorf(err, QT_ENOENT, -1, "%s: no job %lld", st->path, (long long)id)
        : sql_fail(st, sqlite3_extended_errcode(st->db), err, "reading job %lld", (long long)id);
    sqlite3_finalize(q);
    return rc;
}

int qt_store_job_set_spec(qt_store *st, int64_t id, const qt_job_spec *spec, qt_error *err)
{
    sqlite3_stmt *q = NULL;
    qt_job_state s;
    int rc, src;
    char *txt = spec_text(spec, err);
    if (!txt) return QT_ENOMEM;
    if ((rc = tx_begin(st, err, "changing a job's spec"))) { free(txt); return rc; }
    if ((rc = job_state(st, id, &s, err))) goto out;
    if ((src = prepare(st, "UPDATE jobs SET spec = ?2, updated = ?3 WHERE id = ?1", &q))) goto sqlfail;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, txt, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 3, now_unix());
    if ((src = step_done(q)) || (src = event(st, id, "spec", txt))) goto sqlfail;
    goto out;
sqlfail:
    rc = sql_fail(st, src, err, "changing job %lld's spec", (long long)id);
out:
    sqlite3_finalize(q);
    free(txt);
    return tx_end(st, rc, err, "changing a job's spec");
}

int qt_store_job_set_model(qt_store *st, int64_t id, int64_t model_id, int64_t dataset_id,
                           qt_error *err)
{
    sqlite3_stmt *q = NULL;
    qt_job_state s;
    int rc, src;
    if ((rc = tx_begin(st, err, "recording a job's model"))) return rc;
    if ((rc = job_state(st, id, &s, err))) goto out;
    if ((src = prepare(st, "UPDATE jobs SET model_id = ?2, dataset_id = ?3 WHERE id = ?1", &q)))
        goto sqlfail;
    sqlite3_bind_int64(q, 1, id);
    if (model_id > 0) sqlite3_bind_int64(q, 2, model_id);
    if (dataset_id > 0) sqlite3_bind_int64(q, 3, dataset_id);
    if ((src = step_done(q))) goto sqlfail;
    goto out;
sqlfail:
    rc = sql_fail(st, src, err, "recording job %lld's model", (long long)id);
out:
    sqlite3_finalize(q);
    return tx_end(st, rc, err, "recording a job's model");
}

static char *col_strdup(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? strdup((const char *)t) : NULL;
}

#define JOB_COLS "j.id, j.model_id, j.dataset_id, j.state, j.created, j.started, j.updated," \
    " j.finished, j.runs, j.interrupted, j.error, j.spec, j.answer," \
    " json_extract(j.spec, '$.model'), COALESCE(json_extract(j.spec, '$.strategy.name')," \
    " json_extract(j.spec, '$.strategy')), (SELECT COUNT(*) FROM job_evaluations je" \
    " WHERE je.job_id = j.id), (SELECT COUNT(*) FROM job_evaluations je WHERE" \
    " je.job_id = j.id AND je.reused = 0)"

static int job_row(qt_store *st, sqlite3_stmt *q, qt_store_job *j, qt_error *err)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(q, 0);
    j->model_id = sqlite3_column_int64(q, 1);
    j->dataset_id = sqlite3_column_int64(q, 2);
    if (qt_job_state_parse((const char *)sqlite3_column_text(q, 3), &j->state))
        return qt_errorf(err, QT_ECORRUPT, -1, "%s: job %lld has an unknown state", st->path,
                         (long long)j->id);
    j->created = sqlite3_column_double(q, 4);
    j->started = sqlite3_column_double(q, 5);
    j->updated = sqlite3_column_double(q, 6);
    j->finished = sqlite3_column_double(q, 7);
    j->runs = sqlite3_column_int(q, 8);
    j->interrupted = sqlite3_column_int(q, 9);
    j->error = col_strdup(q, 10);
    j->spec_json = col_strdup(q, 11);
    j->answer_json = col_strdup(q, 12);
    const unsigned char *t = sqlite3_column_text(q, 13);
    snprintf(j->model, sizeof j->model, "%s", t ? (const char *)t : "");
    t = sqlite3_column_text(q, 14);
    snprintf(j->strategy, sizeof j->strategy, "%s", t ? (const char *)t : "");
    j->evals = sqlite3_column_int(q, 15);
    j->computed = sqlite3_column_int(q, 16);
    if (!j->spec_json || (sqlite3_column_type(q, 10) != SQLITE_NULL && !j->error) ||
        (sqlite3_column_type(q, 12) != SQLITE_NULL && !j->answer_json)) {
        qt_store_job_clear(j);
        return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    }
    return QT_OK;
}

void qt_store_job_clear(qt_store_job *j)
{
    if (!j) return;
    free(j->error);
    free(j->spec_json);
    free(j->answer_json);
    memset(j, 0, sizeof *j);
}

int qt_store_job_get(qt_store *st, int64_t id, qt_store_job *out, qt_error *err)
{
    sqlite3_stmt *q;
    int rc, src;
    memset(out, 0, sizeof *out);
    if ((src = prepare(st, "SELECT " JOB_COLS " FROM jobs j WHERE j.id = ?1", &q)))
        return sql_fail(st, src, err, "reading job %lld", (long long)id);
    sqlite3_bind_int64(q, 1, id);
    src = sqlite3_step(q);
    if (src == SQLITE_ROW) rc = job_row(st, q, out, err);
    else if (src == SQLITE_DONE) rc = qt_errorf(err, QT_ENOENT, -1, "%s: no job %lld", st->path,
                                                (long long)id);
    else rc = sql_fail(st, sqlite3_extended_errcode(st->db), err, "reading job %lld", (long long)id);
    sqlite3_finalize(q);
    return rc;
}

int qt_store_job_list(qt_store *st, qt_store_job **jobs, int *n, qt_error *err)
{
    sqlite3_stmt *q;
    qt_store_job *a = NULL;
    int cap = 0, cnt = 0, rc = QT_OK, src;
    *jobs = NULL;
    *n = 0;
    if ((src = prepare(st, "SELECT " JOB_COLS " FROM jobs j ORDER BY j.id", &q)))
        return sql_fail(st, src, err, "listing jobs");
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        if (cnt == cap) {
            int nc = cap ? 2 * cap : 16;
            qt_store_job *na = realloc(a, (size_t)nc * sizeof *na);
            if (!na) { rc = qt_errorf(err, QT_ENOMEM, -1, "out of memory"); break; }
            a = na;
            cap = nc;
        }
        if ((rc = job_row(st, q, &a[cnt], err))) break;
        cnt++;
    }
    if (!rc && src != SQLITE_DONE)
        rc = sql_fail(st, sqlite3_extended_errcode(st->db), err, "listing jobs");
    sqlite3_finalize(q);
    if (rc) { qt_store_job_list_free(a, cnt); return rc; }
    *jobs = a;
    *n = cnt;
    return QT_OK;
}

void qt_store_job_list_free(qt_store_job *jobs, int n)
{
    for (int i = 0; i < n; i++) qt_store_job_clear(&jobs[i]);
    free(jobs);
}

int qt_store_job_spec(qt_store *st, int64_t id, qt_job_spec *spec, qt_error *err)
{
    qt_store_job j;
    int rc = qt_store_job_get(st, id, &j, err);
    memset(spec, 0, sizeof *spec);
    if (rc) return rc;
    rc = qt_job_parse(j.spec_json, spec, err);
    if (rc) {
        char msg[192];
        snprintf(msg, sizeof msg, "%s", err ? err->text : "");
        rc = qt_errorf(err, QT_ECORRUPT, -1, "%s: job %lld's stored spec: %s", st->path,
                       (long long)id, msg);
    }
    qt_store_job_clear(&j);
    return rc;
}

int qt_store_job_set_state(qt_store *st, int64_t id, qt_job_state state, const char *error,
                           qt_error *err)
{
    sqlite3_stmt *q = NULL;
    qt_job_state from;
    int rc, src;
    const char *kind = qt_job_state_name(state);
    if (state == QT_JOB_DONE)
        return qt_errorf(err, QT_EINVAL, -1, "a job is done only with its answer "
                         "(qt_store_job_finish)");
    if ((unsigned)state >= QT_JOB_STATE_COUNT)
        return qt_errorf(err, QT_EINVAL, -1, "a job cannot be set to state %s", kind);
    if ((rc = tx_begin(st, err, "changing a job's state"))) return rc;
    if ((rc = job_state(st, id, &from, err))) goto out;
    if ((state == QT_JOB_QUEUED && from != QT_JOB_RUNNING) ||
        (state != QT_JOB_RUNNING && from != QT_JOB_QUEUED && from != QT_JOB_RUNNING &&
         from != QT_JOB_PAUSED)) {
        rc = qt_errorf(err, QT_EINVAL, -1, "job %lld is %s: it cannot become %s", (long long)id,
                       qt_job_state_name(from), kind);
        goto out;
    }
    double t = now_unix();
    if (state == QT_JOB_RUNNING) {
        if (from == QT_JOB_RUNNING && (src = event(st, id, "interrupted",
                                                   "the previous run ended without a word")))
            goto sqlfail;
        src = prepare(st, "UPDATE jobs SET state = 'running', started = ?2, updated = ?2,"
                          " runs = runs + 1, interrupted = interrupted + ?3, error = NULL,"
                          " finished = NULL, answer = NULL WHERE id = ?1", &q);
        if (src) goto sqlfail;
        sqlite3_bind_int(q, 3, from == QT_JOB_RUNNING);
    } else {
        src = prepare(st, "UPDATE jobs SET state = ?4, updated = ?2, error = ?3 WHERE id = ?1", &q);
        if (src) goto sqlfail;
        if (error) sqlite3_bind_text(q, 3, error, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, kind, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_double(q, 2, t);
    if ((src = step_done(q)) || (src = event(st, id, kind, error))) goto sqlfail;
    goto out;
sqlfail:
    rc = sql_fail(st, src, err, "setting job %lld %s", (long long)id, kind);
out:
    sqlite3_finalize(q);
    return tx_end(st, rc, err, "changing a job's state");
}

int qt_store_job_finish(qt_store *st, int64_t id, const char *answer_json, qt_error *err)
{
    sqlite3_stmt *q = NULL;
    qt_job_state from;
    int rc, src;
    if (!answer_json) return qt_errorf(err, QT_EINVAL, -1, "a finished job needs its answer");
    if ((rc = tx_begin(st, err, "recording a job's answer"))) return rc;
    if ((rc = job_state(st, id, &from, err))) goto out;
    if (from != QT_JOB_RUNNING) {
        rc = qt_errorf(err, QT_EINVAL, -1, "job %lld is %s, not running: it cannot finish",
                       (long long)id, qt_job_state_name(from));
        goto out;
    }
    if ((src = prepare(st, "UPDATE jobs SET state = 'done', answer = ?2, finished = ?3,"
                           " updated = ?3, error = NULL WHERE id = ?1", &q))) goto sqlfail;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, answer_json, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 3, now_unix());
    if ((src = step_done(q)) || (src = event(st, id, "done", NULL))) goto sqlfail;
    goto out;
sqlfail:
    rc = sql_fail(st, src, err, "recording job %lld's answer", (long long)id);
out:
    sqlite3_finalize(q);
    return tx_end(st, rc, err, "recording a job's answer");
}

int qt_store_job_events(qt_store *st, int64_t id, qt_store_event_cb cb, void *user,
                        qt_error *err)
{
    sqlite3_stmt *q;
    int rc = QT_OK, src;
    if ((src = prepare(st, "SELECT at, kind, detail FROM job_events WHERE job_id = ?1 ORDER BY id", &q)))
        return sql_fail(st, src, err, "reading job %lld's events", (long long)id);
    sqlite3_bind_int64(q, 1, id);
    while ((src = sqlite3_step(q)) == SQLITE_ROW)
        if ((rc = cb(user, sqlite3_column_double(q, 0), (const char *)sqlite3_column_text(q, 1),
                     (const char *)sqlite3_column_text(q, 2))))
            break;
    if (!rc && src != SQLITE_DONE)
        rc = sql_fail(st, sqlite3_extended_errcode(st->db), err, "reading job events");
    sqlite3_finalize(q);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Evaluations                                                               */
/* ------------------------------------------------------------------------ */

static int key_ok(const char *key)
{
    if (!key) return 0;
    for (int i = 0; i < 64; i++)
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return 0;
    return key[64] == 0;
}

/* NaN is NULL in SQLite (it stores NaN so) */
static void bind_real(sqlite3_stmt *q, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(q, i);
    else sqlite3_bind_double(q, i, v);
}

static double col_real(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static int transient(qt_fail_class f)
{
    return f == QT_FAIL_NOMEM || f == QT_FAIL_TIMEOUT || f == QT_FAIL_CRASH;
}

/* link an evaluation into a job's history (no-op when it is there) */
static int link_eval(qt_store *st, int64_t job, int64_t eval, int reused, double cost,
                     double compression)
{
    sqlite3_stmt *q = st->q[Q_LINK];
    sqlite3_bind_int64(q, 1, job);
    sqlite3_bind_int64(q, 2, eval);
    sqlite3_bind_int(q, 3, reused);
    bind_real(q, 4, cost);
    bind_real(q, 5, compression);
    return step_done(q);
}

/* id and computing job of a key: SQLITE_OK, SQLITE_NOTFOUND or an error */
static int eval_id(qt_store *st, const char *key, int64_t *id, int64_t *job)
{
    sqlite3_stmt *q = st->q[Q_ID];
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        *id = sqlite3_column_int64(q, 0);
        *job = sqlite3_column_int64(q, 1);
        src = SQLITE_OK;
    } else if (src == SQLITE_DONE) {
        src = SQLITE_NOTFOUND;
    } else {
        src = sqlite3_extended_errcode(st->db);
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return src;
}

int qt_store_eval_put(qt_store *st, int64_t job_id, const char *key, const char *config_json,
                      const char *reason, const qt_result *r, qt_error *err)
{
    int rc, src;
    int64_t id = 0, by = 0;
    if (!key_ok(key))
        return qt_errorf(err, QT_EINVAL, -1, "an evaluation key is 64 lower-case hex digits");
    if ((rc = tx_begin(st, err, "storing an evaluation"))) return rc;
    sqlite3_stmt *q = st->q[Q_UPSERT];
    sqlite3_bind_text(q, 1, key, 64, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, job_id);
    if (config_json) sqlite3_bind_text(q, 3, config_json, -1, SQLITE_STATIC);
    if (reason) sqlite3_bind_text(q, 4, reason, -1, SQLITE_STATIC);
    bind_real(q, 5, r->cost);
    bind_real(q, 6, r->compression);
    bind_real(q, 7, r->top1);
    bind_real(q, 8, r->top5);
    bind_real(q, 9, r->loss);
    bind_real(q, 10, r->weight_bits);
    bind_real(q, 11, r->act_bits);
    bind_real(q, 12, r->bitops);
    sqlite3_bind_int64(q, 13, (sqlite3_int64)r->images);
    sqlite3_bind_int(q, 14, r->feasible);
    sqlite3_bind_int(q, 15, r->early);
    bind_real(q, 16, r->seconds);
    sqlite3_bind_text(q, 17, st->worker, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 18, qt_fail_class_name(r->fail), -1, SQLITE_STATIC);
    if (r->fail != QT_FAIL_NONE || r->error[0])
        sqlite3_bind_text(q, 19, r->error, (int)strnlen(r->error, sizeof r->error), SQLITE_STATIC);
    sqlite3_bind_double(q, 20, now_unix());
    sqlite3_bind_int64(q, 21, (sqlite3_int64)r->subset);
    if ((src = step_done(q))) goto sqlfail;
    if ((src = eval_id(st, key, &id, &by))) goto sqlfail;
    if ((src = link_eval(st, job_id, id, by != job_id, r->cost, r->compression))) goto sqlfail;
    return tx_end(st, QT_OK, err, "storing an evaluation");
sqlfail:
    rc = src == SQLITE_CONSTRAINT_FOREIGNKEY
        ? qt_errorf(err, QT_ENOENT, -1, "%s: storing an evaluation: no job %lld", st->path,
                    (long long)job_id)
        : sql_fail(st, src, err, "storing an evaluation");
    return tx_end(st, rc, err, "storing an evaluation");
}

/* an evaluation row of Q_GET (columns 0..20) */
static void eval_row(sqlite3_stmt *q, qt_store_eval *e)
{
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(q, 0);
    e->job_id = sqlite3_column_int64(q, 1);
    e->key = (const char *)sqlite3_column_text(q, 2);
    e->config_json = (const char *)sqlite3_column_text(q, 3);
    e->reason = (const char *)sqlite3_column_text(q, 4);
    e->worker = (const char *)sqlite3_column_text(q, 5);
    e->created = sqlite3_column_double(q, 6);
    qt_result *r = &e->r;
    r->cost = col_real(q, 7);
    r->compression = col_real(q, 8);
    r->top1 = col_real(q, 9);
    r->top5 = col_real(q, 10);
    r->loss = col_real(q, 11);
    r->weight_bits = col_real(q, 12);
    r->act_bits = col_real(q, 13);
    r->bitops = col_real(q, 14);
    r->images = (size_t)sqlite3_column_int64(q, 15);
    r->feasible = sqlite3_column_int(q, 16);
    r->early = sqlite3_column_int(q, 17);
    r->seconds = col_real(q, 18);
    r->fail = fail_parse((const char *)sqlite3_column_text(q, 19));
    const unsigned char *t = sqlite3_column_text(q, 20);
    if (t) snprintf(r->error, sizeof r->error, "%s", (const char *)t);
    r->subset = (size_t)sqlite3_column_int64(q, 21);
    r->cached = 1;
}

/* Q_GET for key: SQLITE_ROW (the row is there until the reset), SQLITE_DONE or an error */
static int get_row(qt_store *st, const char *key, qt_store_eval *e)
{
    sqlite3_stmt *q = st->q[Q_GET];
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) { eval_row(q, e); return src; }
    if (src != SQLITE_DONE) src = sqlite3_extended_errcode(st->db);
    sqlite3_reset(q);
    return src;
}

int qt_store_eval_get(qt_store *st, const char *key, qt_result *r, qt_error *err)
{
    qt_store_eval e;
    if (!key_ok(key))
        return qt_errorf(err, QT_EINVAL, -1, "an evaluation key is 64 lower-case hex digits");
    int src = get_row(st, key, &e);
    sqlite3_reset(st->q[Q_GET]);
    if (src == SQLITE_ROW) { *r = e.r; return QT_OK; }
    if (src == SQLITE_DONE) return qt_errorf(err, QT_ENOENT, -1, "no evaluation %.16s...", key);
    return sql_fail(st, src, err, "reading an evaluation");
}

int qt_store_eval_find(qt_store *st, const char *key, qt_store_eval_cb cb, void *user,
                       qt_error *err)
{
    qt_store_eval e;
    if (!key_ok(key))
        return qt_errorf(err, QT_EINVAL, -1, "an evaluation key is 64 lower-case hex digits");
    int src = get_row(st, key, &e), rc;
    if (src == SQLITE_ROW) rc = cb(user, &e);
    else if (src == SQLITE_DONE) rc = qt_errorf(err, QT_ENOENT, -1, "no evaluation %.16s...", key);
    else rc = sql_fail(st, src, err, "reading an evaluation");
    sqlite3_reset(st->q[Q_GET]);
    return rc;
}

/* an evaluation as a job's history holds it: eval_row's columns, then
 * seq and reused */
#define HIST_COLS "e.id, e.job_id, e.key, e.config, e.reason, e.worker, e.created," \
    " je.cost, je.compression, e.top1, e.top5, e.loss, e.weight_bits," \
    " e.act_bits, e.bitops, e.images, e.feasible, e.early, e.duration," \
    " e.fail, e.error, e.subset, je.seq, je.reused"

static void hist_row(sqlite3_stmt *q, qt_store_eval *e)
{
    eval_row(q, e);
    e->seq = sqlite3_column_int(q, 22);
    e->reused = sqlite3_column_int(q, 23);
    e->r.cached = e->reused;
}

int qt_store_history(qt_store *st, int64_t job_id, qt_store_eval_cb cb, void *user,
                     qt_error *err)
{
    return qt_store_history_page(st, job_id, 0, 0, cb, user, err);
}

int qt_store_history_page(qt_store *st, int64_t job_id, int64_t offset, int64_t limit,
                          qt_store_eval_cb cb, void *user, qt_error *err)
{
    sqlite3_stmt *q;
    int rc = QT_OK, src;
    if (offset < 0 || limit < 0)
        return qt_errorf(err, QT_EINVAL, -1, "a page of a history needs offset >= 0 and "
                         "limit >= 0");
    if ((src = prepare(st, "SELECT " HIST_COLS " FROM job_evaluations je"
                           " JOIN evaluations e ON e.id = je.eval_id WHERE je.job_id = ?1"
                           " ORDER BY je.seq LIMIT ?3 OFFSET ?2", &q)))
        return sql_fail(st, src, err, "reading job %lld's history", (long long)job_id);
    sqlite3_bind_int64(q, 1, job_id);
    sqlite3_bind_int64(q, 2, offset);
    sqlite3_bind_int64(q, 3, limit ? limit : -1);
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        qt_store_eval e;
        hist_row(q, &e);
        if ((rc = cb(user, &e))) break;
    }
    if (!rc && src != SQLITE_DONE)
        rc = sql_fail(st, sqlite3_extended_errcode(st->db), err, "reading job %lld's history",
                      (long long)job_id);
    sqlite3_finalize(q);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The cache hooks                                                           */
/* ------------------------------------------------------------------------ */

struct qt_store_cache {
    qt_store      *st;
    int64_t        job;
    qt_eval_cache  hooks;
    qt_search     *s;          /* attached search, or NULL */
    int            reused, stored, failed;
    int            rc;         /* the first failed write */
    qt_error       err;
};

static void cache_failed(qt_store_cache *c, int rc, const qt_error *e)
{
    c->failed++;
    if (c->rc == QT_OK) {
        c->rc = rc;
        c->err = *e;
        if (c->s) qt_search_cancel(c->s);
    }
}

static int cache_lookup(void *user, const char *key, qt_result *r)
{
    qt_store_cache *c = user;
    qt_store *st = c->st;
    qt_store_eval e;
    qt_error e2;
    int src;
    if (!key_ok(key)) return 0;
    src = get_row(st, key, &e);
    sqlite3_reset(st->q[Q_GET]);
    if (src != SQLITE_ROW) {
        if (src != SQLITE_DONE) cache_failed(c, sql_fail(st, src, &e2, "looking up an evaluation"), &e2);
        return 0;
    }
    if (transient(e.r.fail)) return 0;       /* out of memory, timeout, crash: try again */
    *r = e.r;
    if (c->s) {
        const qt_job_spec *sp = qt_search_spec(c->s);
        r->cost = qt_job_cost(sp, r->weight_bits, r->act_bits, r->bitops);
        double c0 = qt_search_baseline(c->s)->cost;
        r->compression = r->cost > 0 ? c0 / r->cost : 0.0;
    }
    /* the job's history gains it, unless it has it (a replay) */
    sqlite3_stmt *q = st->q[Q_LINKED];
    sqlite3_bind_int64(q, 1, c->job);
    sqlite3_bind_int64(q, 2, e.id);
    src = sqlite3_step(q);
    int linked = src == SQLITE_ROW;
    if (src != SQLITE_ROW && src != SQLITE_DONE) src = sqlite3_extended_errcode(st->db);
    else src = SQLITE_OK;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (src == SQLITE_OK && !linked) {
        int rc = tx_begin(st, &e2, "recording a reused evaluation");
        if (rc) { cache_failed(c, rc, &e2); goto hit; }
        src = link_eval(st, c->job, e.id, e.job_id != c->job, r->cost, r->compression);
        rc = src ? sql_fail(st, src, &e2, "recording a reused evaluation") : QT_OK;
        rc = tx_end(st, rc, &e2, "recording a reused evaluation");
        if (rc) cache_failed(c, rc, &e2);
    } else if (src) {
        cache_failed(c, sql_fail(st, src, &e2, "looking up an evaluation"), &e2);
    }
hit:
    r->cached = 1;
    c->reused++;
    return 1;
}

static int cache_stored(void *user, const char *key, const qt_cand *cand,
                        const char *config_json, const qt_result *r)
{
    qt_store_cache *c = user;
    qt_error e;
    int rc = qt_store_eval_put(c->st, c->job, key, config_json, cand ? cand->reason : NULL, r, &e);
    if (rc) cache_failed(c, rc, &e);
    else c->stored++;
    return rc;
}

int qt_store_cache_new(qt_store *st, int64_t job_id, qt_store_cache **out, qt_error *err)
{
    qt_store_job j;
    int rc = qt_store_job_get(st, job_id, &j, err);
    *out = NULL;
    if (rc) return rc;
    qt_store_job_clear(&j);
    qt_store_cache *c = calloc(1, sizeof *c);
    if (!c) return qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    c->st = st;
    c->job = job_id;
    c->hooks.lookup = cache_lookup;
    c->hooks.stored = cache_stored;
    c->hooks.user = c;
    *out = c;
    return QT_OK;
}

void qt_store_cache_free(qt_store_cache *c) { free(c); }
const qt_eval_cache *qt_store_cache_hooks(qt_store_cache *c) { return &c->hooks; }
void qt_store_cache_attach(qt_store_cache *c, qt_search *s) { c->s = s; }

void qt_store_cache_counts(const qt_store_cache *c, int *reused, int *stored, int *failed)
{
    if (reused) *reused = c->reused;
    if (stored) *stored = c->stored;
    if (failed) *failed = c->failed;
}

int qt_store_cache_error(const qt_store_cache *c, qt_error *err)
{
    if (c->rc && err) *err = c->err;
    return c->rc;
}

/* ------------------------------------------------------------------------ */
/* Pareto fronts                                                             */
/* ------------------------------------------------------------------------ */

/* run q (columns: eval id, key, cost, acc) into a front */
static int front_of(qt_store *st, sqlite3_stmt *q, double floor, qt_store_point **front,
                    int *n, qt_error *err)
{
    qt_store_point *pts = NULL;
    qt_point *pp = NULL;
    int cnt = 0, cap = 0, src, rc = QT_OK;
    *front = NULL;
    *n = 0;
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        double cost = col_real(q, 2), acc = col_real(q, 3);
        if (!isfinite(cost) || isnan(acc) || (!isnan(floor) && acc < floor)) continue;
        if (cnt == cap) {
            int nc = cap ? 2 * cap : 256;
            qt_store_point *np = realloc(pts, (size_t)nc * sizeof *np);
            if (!np) { rc = qt_errorf(err, QT_ENOMEM, -1, "out of memory"); goto out; }
            pts = np;
            cap = nc;
        }
        qt_store_point *p = &pts[cnt++];
        p->eval_id = sqlite3_column_int64(q, 0);
        snprintf(p->key, sizeof p->key, "%s", (const char *)sqlite3_column_text(q, 1));
        p->cost = cost;
        p->acc = acc;
    }
    if (src != SQLITE_DONE) { rc = sql_fail(st, sqlite3_extended_errcode(st->db), err, "reading a front"); goto out; }
    if (!(pp = malloc((size_t)(cnt ? cnt : 1) * sizeof *pp))) {
        rc = qt_errorf(err, QT_ENOMEM, -1, "out of memory");
        goto out;
    }
    for (int i = 0; i < cnt; i++) { pp[i].cost = pts[i].cost; pp[i].acc = pts[i].acc; pp[i].id = i; }
    int nf = qt_pareto(pp, cnt, pp);
    qt_store_point *f = malloc((size_t)(nf ? nf : 1) * sizeof *f);
    if (!f) { rc = qt_errorf(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    for (int i = 0; i < nf; i++) f[i] = pts[pp[i].id];
    *front = f;
    *n = nf;
out:
    free(pp);
    free(pts);
    return rc;
}

static const char *metric_sql(qt_metric m)
{
    return m == QT_MET_TOP5 ? "e.top5" : m == QT_MET_LOSS ? "-e.loss" : "e.top1";
}

int qt_store_pareto_job(qt_store *st, int64_t job_id, double acc_floor, qt_store_point **front,
                        int *n, qt_error *err)
{
    qt_job_spec sp;
    sqlite3_stmt *q;
    char sql[400];
    int rc = qt_store_job_spec(st, job_id, &sp, err), src;
    *front = NULL;
    *n = 0;
    if (rc) return rc;
    snprintf(sql, sizeof sql, "SELECT e.id, e.key, je.cost, %s FROM job_evaluations je"
             " JOIN evaluations e ON e.id = je.eval_id WHERE je.job_id = ?1 AND e.fail = ''"
             " AND e.early = 0 AND e.subset = 0 ORDER BY je.seq", metric_sql(sp.metric));
    qt_job_clear(&sp);
    if ((src = prepare(st, sql, &q))) return sql_fail(st, src, err, "reading a front");
    sqlite3_bind_int64(q, 1, job_id);
    rc = front_of(st, q, acc_floor, front, n, err);
    sqlite3_finalize(q);
    return rc;
}

int qt_store_pareto_evals(qt_store *st, int64_t job_id, double acc_floor,
                          qt_store_front_cb cb, void *user, qt_error *err)
{
    qt_store_point *front = NULL;
    sqlite3_stmt *q = NULL;
    int n = 0, rc, src;
    if ((rc = qt_store_pareto_job(st, job_id, acc_floor, &front, &n, err))) return rc;
    if ((src = prepare(st, "SELECT " HIST_COLS " FROM job_evaluations je"
                           " JOIN evaluations e ON e.id = je.eval_id"
                           " WHERE je.job_id = ?1 AND je.eval_id = ?2", &q))) {
        free(front);
        return sql_fail(st, src, err, "reading job %lld's front", (long long)job_id);
    }
    for (int i = 0; i < n && !rc; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, job_id);
        sqlite3_bind_int64(q, 2, front[i].eval_id);
        src = sqlite3_step(q);
        if (src == SQLITE_ROW) {
            qt_store_eval e;
            hist_row(q, &e);
            rc = cb(user, &front[i], &e);
        } else {
            /* gone between the two reads: the front was read in another
             * transaction than this row */
            rc = src == SQLITE_DONE
                ? qt_errorf(err, QT_EBUSY, -1, "%s: job %lld's history changed while its "
                            "front was read", st->path, (long long)job_id)
                : sql_fail(st, sqlite3_extended_errcode(st->db), err, "reading job %lld's "
                           "front", (long long)job_id);
        }
    }
    sqlite3_finalize(q);
    free(front);
    return rc;
}

int qt_store_pareto_model(qt_store *st, int64_t model_id, qt_cost_kind cost, qt_metric metric,
                          double acc_floor, qt_store_point **front, int *n, qt_error *err)
{
    static const char *const cols[] = { "e.weight_bits", "e.act_bits", "e.bitops" };
    sqlite3_stmt *q;
    char sql[480];
    int rc, src;
    *front = NULL;
    *n = 0;
    if ((unsigned)cost > QT_COST_BITOPS)
        return qt_errorf(err, QT_EINVAL, -1, "a model's front across jobs needs one cost for "
                         "every job: weight_bits, act_bits or bitops");
    snprintf(sql, sizeof sql, "SELECT e.id, e.key, %s, %s FROM evaluations e WHERE e.id IN"
             " (SELECT je.eval_id FROM jobs j JOIN job_evaluations je ON je.job_id = j.id"
             " WHERE j.model_id = ?1) AND e.fail = '' AND e.early = 0 AND e.subset = 0"
             " ORDER BY e.id",
             cols[cost], metric_sql(metric));
    if ((src = prepare(st, sql, &q))) return sql_fail(st, src, err, "reading a front");
    sqlite3_bind_int64(q, 1, model_id);
    rc = front_of(st, q, acc_floor, front, n, err);
    sqlite3_finalize(q);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Export                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct exporter {
    FILE           *out;
    qt_store_format fmt;
    int             n;
} exporter;

static const char *const export_cols =
    "seq,key,reused,reason,config,cost,compression,top1,top5,loss,images,feasible,early,"
    "weight_bits,act_bits,bitops,seconds,fail,error,worker,created";

static void csv_str(FILE *f, const char *s)
{
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* a number, or JSON null when it is not finite */
static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int export_one(void *user, const qt_store_eval *e)
{
    exporter *x = user;
    const qt_result *r = &e->r;
    if (x->fmt == QT_STORE_CSV) {
        fprintf(x->out, "%d,%s,%d,", e->seq, e->key, e->reused);
        csv_str(x->out, e->reason);
        fputc(',', x->out);
        csv_str(x->out, e->config_json);
        fprintf(x->out, ",%.17g,%.17g,%.17g,%.17g,%.17g,%zu,%d,%d,%.17g,%.17g,%.17g,%.17g,%s,",
                r->cost, r->compression, r->top1, r->top5, r->loss, r->images, r->feasible,
                r->early, r->weight_bits, r->act_bits, r->bitops, r->seconds,
                qt_fail_class_name(r->fail));
        csv_str(x->out, r->error);
        fputc(',', x->out);
        csv_str(x->out, e->worker);
        fprintf(x->out, ",%.17g\r\n", e->created);
    } else {
        json_t *o = json_object(), *cfg = NULL;
        if (!o) return QT_ENOMEM;
        if (e->config_json) {
            cfg = json_loads(e->config_json, 0, NULL);
            if (!cfg) cfg = json_string(e->config_json);
        }
        json_object_set_new(o, "seq", json_integer(e->seq));
        json_object_set_new(o, "key", json_string(e->key));
        json_object_set_new(o, "reused", json_boolean(e->reused));
        json_object_set_new(o, "reason", e->reason ? json_string(e->reason) : json_null());
        json_object_set_new(o, "config", cfg ? cfg : json_null());
        json_object_set_new(o, "cost", jreal(r->cost));
        json_object_set_new(o, "compression", jreal(r->compression));
        json_object_set_new(o, "top1", jreal(r->top1));
        json_object_set_new(o, "top5", jreal(r->top5));
        json_object_set_new(o, "loss", jreal(r->loss));
        json_object_set_new(o, "images", json_integer((json_int_t)r->images));
        json_object_set_new(o, "feasible", json_boolean(r->feasible));
        json_object_set_new(o, "early", json_boolean(r->early));
        json_object_set_new(o, "weight_bits", jreal(r->weight_bits));
        json_object_set_new(o, "act_bits", jreal(r->act_bits));
        json_object_set_new(o, "bitops", jreal(r->bitops));
        json_object_set_new(o, "seconds", jreal(r->seconds));
        json_object_set_new(o, "fail", json_string(qt_fail_class_name(r->fail)));
        json_object_set_new(o, "error", r->error[0] ? json_string(r->error) : json_null());
        json_object_set_new(o, "worker", e->worker ? json_string(e->worker) : json_null());
        json_object_set_new(o, "created", jreal(e->created));
        char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        json_decref(o);
        if (!txt) return QT_ENOMEM;
        fprintf(x->out, "%s\n  %s", x->n ? "," : "", txt);
        free(txt);
    }
    x->n++;
    return ferror(x->out) ? QT_EIO : QT_OK;
}

int qt_store_export(qt_store *st, int64_t job_id, qt_store_format fmt, FILE *out, qt_error *err)
{
    qt_store_job j;
    exporter x = { out, fmt, 0 };
    int rc = qt_store_job_get(st, job_id, &j, err);
    if (rc) return rc;
    qt_store_job_clear(&j);
    if (fmt == QT_STORE_CSV) fprintf(out, "%s\r\n", export_cols);
    else fputc('[', out);
    rc = qt_store_history(st, job_id, export_one, &x, err);
    if (rc == QT_EIO || rc == QT_ENOMEM)
        return qt_errorf(err, rc, -1, "exporting job %lld: %s", (long long)job_id,
                         rc == QT_EIO ? strerror(errno) : "out of memory");
    if (rc) return rc;
    if (fmt == QT_STORE_JSON) fputs(x.n ? "\n]\n" : "]\n", out);
    if (fflush(out) != 0 || ferror(out))
        return qt_errorf(err, QT_EIO, -1, "exporting job %lld: %s", (long long)job_id,
                         strerror(errno));
    return QT_OK;
}
