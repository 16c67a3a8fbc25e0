/*
 * methods.c -- qtuned's JSON-RPC methods: one table row each (name,
 * handler, where it runs, its parameters), checked by the dispatcher
 * (server.c) before a handler runs, so handlers trust their params' names
 * and types. Results and errors are JSON-RPC 2.0's; errors carry the codes
 * of api.h with a message that says what is wrong.
 *
 *   server.info      {}                          name, version, pid, paths (models, data),
 *                                                settings (limits included), methods
 *   server.stats     {}                          clients, requests, errors, requests refused
 *                                                (rejected: oversize; rate_limited;
 *                                                evals_busy), evals_running, jobs' counts
 *   server.auth      {token}                     TCP: authenticate the connection
 *   server.shutdown  {}                          stop as on SIGTERM
 *   model.list       {}                          zoo names, files of the models directory,
 *                                                registered models (hash, summary)
 *   model.register   {path, name?}               load and record a model of the models directory
 *   dataset.list     {}                          fashion-mnist and the registered datasets
 *   dataset.register {name, images, labels, test_images?, test_labels?, norm?, val_count?,
 *                     val_seed?, classes?}       check and record IDX files of the data
 *                                                directory under a name jobs may give
 *   job.submit       {job}                       store a job (JSON object or text), queue it
 *   job.get          {job}                       a job: state, counts, spec, answer, live progress
 *   job.list         {state?}                    every job (or those in a state), without specs
 *   job.cancel       {job}                       stop for good
 *   job.pause        {job}                       stop, resumable
 *   job.resume       {job, budget?, strategy?}   queue again (replay), optionally changed
 *   job.pareto       {job, floor?, all?}         its Pareto front (live while it runs)
 *   job.evaluations  {job, offset?, limit?}      its evaluations in order
 *   job.subscribe    {job}                       job.progress / job.end notifications
 *   eval.run         {model, config?, split?, limit?, seed?, dataset?}
 *                                                evaluate one configuration now (at most
 *                                                --max-evals at once, one per client;
 *                                                more: QT_RPC_BUSY)
 *
 * Datasets. A job's "dataset" is "fashion-mnist" (built in) or the name of
 * a registered one: job.submit then fills in the job's "data" (its files,
 * normalisation and validation split, tuner/job.c) from the store, after
 * checking again that every file is inside the data directory; a job may
 * not give "data" itself. The spec stored is complete, so the job runs (and
 * resumes) as submitted even if the name is registered again later; a
 * resumed job has its files checked again (jobs.c). A model whose output
 * is narrower than the dataset's classes (the registration's count, or
 * Fashion-MNIST's 10) is refused by job.submit and eval.run, naming both.
 *
 * Batches (server.c): an array of requests is answered with an array of
 * the answers (notifications get none), each request checked on its own.
 */
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int64_t job_param(qd_call *c)
{
    return (int64_t)json_integer_value(json_object_get(c->params, "job"));
}

/* ------------------------------------------------------------------------ */
/* Models: the zoo, or files inside the models directory                     */
/* ------------------------------------------------------------------------ */

static int is_zoo(const char *name)
{
    for (const char *const *z = qt_zoo_names(); *z; z++) if (!strcmp(*z, name)) return 1;
    return 0;
}

/* a file a request names, as a real path inside dir (the models or the
 * data directory): relative names are taken in dir; what: "model";
 * flag: the qtuned flag that sets dir */
static int resolve_in(qd_call *c, const char *in, const char *dir, const char *what,
                      const char *flag, char *out, size_t n)
{
    char joined[PATH_MAX * 2], real[PATH_MAX];
    if (!*in) return qd_fail(c, QT_RPC_INVALID_PARAMS, "the %s is an empty string", what);
    if (in[0] == '/') snprintf(joined, sizeof joined, "%s", in);
    else snprintf(joined, sizeof joined, "%s/%s", dir, in);
    if (!realpath(joined, real)) {
        if (errno == ENOENT)
            return qd_fail(c, QT_RPC_NOT_FOUND, "%s %s: no such file (%ss are read from %s)",
                           what, in, what, dir);
        return qd_fail(c, QT_RPC_NOT_FOUND, "%s %s: %s", what, in, strerror(errno));
    }
    size_t m = strlen(dir);
    if (strncmp(real, dir, m) != 0 || real[m] != '/')
        return qd_fail(c, QT_RPC_FORBIDDEN, "%s %s is outside the %s directory %s (qtuned %s "
                       "DIR sets it)", what, in, !strcmp(what, "model") ? "models" : "data",
                       dir, flag);
    struct stat sb;
    if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode))
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "%s %s is not a file", what, in);
    if (strlen(real) >= n)
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "%s %s: its path is too long", what, in);
    snprintf(out, n, "%s", real);
    return 0;
}

/* the model a request names, as a path inside the models directory (or a
 * zoo name) */
static int resolve_model(qd_call *c, const char *in, char *out, size_t n)
{
    if (is_zoo(in)) { snprintf(out, n, "%s", in); return 0; }
    return resolve_in(c, in, c->srv->models_real, "model", "--models", out, n);
}

static int resolve_data(qd_call *c, const char *in, char *out, size_t n)
{
    return resolve_in(c, in, c->srv->data_real, "dataset file", "--data", out, n);
}

/* ------------------------------------------------------------------------ */
/* server.*                                                                  */
/* ------------------------------------------------------------------------ */

static int m_server_info(qd_call *c)
{
    const qd_server *srv = c->srv;
    json_t *meths = json_array(), *strats = json_array();
    int n;
    const qd_method *ms = qd_methods(&n);
    for (int i = 0; i < n; i++) json_array_append_new(meths, json_string(ms[i].name));
    for (const qt_strategy *const *s = qt_strategies(); *s; s++)
        json_array_append_new(strats, json_string((*s)->name));
    c->result = json_pack("{s:s, s:s, s:i, s:f, s:f, s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:i, "
                          "s:o, s:o}",
                          "name", "qtuned", "version", QT_API_VERSION, "pid", (int)getpid(),
                          "started", srv->started, "uptime", wall() - srv->started,
                          "state", srv->set.state, "socket", srv->set.socket, "db", srv->set.db,
                          "models", srv->models_real, "jobs", srv->set.jobs,
                          "max_request", srv->set.max_request,
                          "request_timeout", srv->set.request_timeout,
                          "max_clients", srv->set.max_clients,
                          "strategies", strats, "methods", meths);
    json_object_set_new(c->result, "data", json_string(srv->data_real));
    json_object_set_new(c->result, "rate", json_real(srv->set.rate));
    json_object_set_new(c->result, "burst", json_integer(srv->set.burst));
    json_object_set_new(c->result, "max_evals", json_integer(srv->set.max_evals));
    if (srv->set.tcp_port)
        json_object_set_new(c->result, "tcp", json_pack("{s:s, s:i}", "host", srv->set.tcp_host,
                                                        "port", srv->set.tcp_port));
    else
        json_object_set_new(c->result, "tcp", json_null());
    return 0;
}

static int m_server_stats(qd_call *c)
{
    c->result = qd_server_stats(c->srv);
    return 0;
}

static int m_server_auth(qd_call *c)
{
    const char *tok = json_string_value(json_object_get(c->params, "token"));
    if (!qd_server_is_tcp(c->conn)) {
        c->result = json_pack("{s:b}", "authenticated", 1);
        return 0;
    }
    const char *want = c->srv->token;
    size_t a = strlen(tok), b = strlen(want);
    unsigned diff = (unsigned)(a != b) | (unsigned)(b == 0);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)want[i] ^ (unsigned char)tok[i < a ? i : 0];
    if (diff) return qd_fail(c, QT_RPC_UNAUTHORIZED, "wrong token");
    qd_server_set_authed(c->conn);
    c->result = json_pack("{s:b}", "authenticated", 1);
    return 0;
}

static int m_server_shutdown(qd_call *c)
{
    qd_log(QT_LOG_INFO, "server.shutdown asked by a client");
    c->result = json_pack("{s:b}", "stopping", 1);
    qd_server_stop(c->srv);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* model.*, dataset.*                                                        */
/* ------------------------------------------------------------------------ */

static json_t *parse_or_null(const char *txt);

/* a model or a registered dataset of the store, appended to an array */
static int named_cb(void *user, const qt_store_named *m)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "name", m->name ? m->name : "", "kind",
                          "registered", "id", (json_int_t)m->id, "hash", m->hash ? m->hash : "");
    if (!o) return QT_ENOMEM;
    if (m->path) json_object_set_new(o, "path", json_string(m->path));
    json_object_set_new(o, "summary", parse_or_null(m->summary_json));
    if (m->source_json) json_object_set_new(o, "data", parse_or_null(m->source_json));
    json_object_set_new(o, "created", json_real(m->created));
    if (m->source_json) json_object_set_new(o, "updated", json_real(m->updated));
    return json_array_append_new(user, o) ? QT_ENOMEM : 0;
}

static int m_model_list(qd_call *c)
{
    json_t *arr = json_array();
    for (const char *const *z = qt_zoo_names(); *z; z++)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "name", *z, "kind", "zoo"));
    DIR *d = opendir(c->srv->models_real);
    if (!d) {
        json_decref(arr);
        return qd_fail(c, QT_RPC_IO, "models directory %s: %s", c->srv->models_real,
                       strerror(errno));
    }
    struct dirent *e;
    json_t *files = json_array();
    while ((e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".qtck") && strcmp(dot, ".onnx"))) continue;
        char p[PATH_MAX * 2];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", c->srv->models_real, e->d_name);
        if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:I}", "name", e->d_name,
                                               "kind", strcmp(dot, ".onnx") ? "checkpoint"
                                                                             : "onnx",
                                               "path", p, "bytes", (json_int_t)sb.st_size));
    }
    closedir(d);
    /* files by name, so the list does not depend on the directory's order */
    size_t nf = json_array_size(files);
    for (size_t i = 1; i < nf; i++)
        for (size_t k = i; k > 0; k--) {
            json_t *a = json_array_get(files, k - 1), *b = json_array_get(files, k);
            if (strcmp(json_string_value(json_object_get(a, "name")),
                       json_string_value(json_object_get(b, "name"))) <= 0) break;
            json_incref(a);
            json_array_set(files, k - 1, b);
            json_array_set_new(files, k, a);
        }
    json_array_extend(arr, files);
    json_decref(files);
    /* the models recorded in the store (model.register, and every job's) */
    qt_error err;
    int rc = qt_store_model_list(c->srv->qstore, named_cb, arr, &err);
    if (rc) { json_decref(arr); return qd_fail_rc(c, rc, err.text); }
    c->result = json_pack("{s:s, s:o}", "models_dir", c->srv->models_real, "models", arr);
    return 0;
}

static int m_model_register(qd_call *c)
{
    char path[PATH_MAX];
    const char *in = json_string_value(json_object_get(c->params, "path"));
    json_t *nm = json_object_get(c->params, "name");
    if (resolve_model(c, in, path, sizeof path)) return -1;
    if (is_zoo(path))
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "%s is a zoo model (untrained): register a "
                       "checkpoint or an ONNX file of the models directory", path);
    qt_graph *g;
    qt_error err;
    int rc = qt_model_load(path, &g, &err);
    if (rc) return qd_fail(c, rc == QT_EIO ? QT_RPC_IO : QT_RPC_INVALID_PARAMS, "%s", err.text);
    char hash[33], sum[160];
    int64_t id;
    qt_graph_hash(g, hash);
    snprintf(sum, sizeof sum, "{\"nodes\":%d,\"params\":%zu,\"macs\":%llu}", qt_graph_nodes(g),
             qt_graph_param_count(g), (unsigned long long)qt_graph_macs(g));
    const char *name = nm ? json_string_value(nm) : path;
    rc = qt_store_model_put(c->srv->qstore, name, path, hash, sum, &id, &err);
    if (!rc)
        c->result = json_pack("{s:I, s:s, s:s, s:s, s:i, s:I, s:I}", "id", (json_int_t)id,
                              "name", name, "path", path, "hash", hash,
                              "nodes", qt_graph_nodes(g),
                              "params", (json_int_t)qt_graph_param_count(g),
                              "macs", (json_int_t)qt_graph_macs(g));
    qt_graph_free(g);
    return rc ? qd_fail_rc(c, rc, err.text) : 0;
}

static int m_dataset_list(qd_call *c)
{
    json_t *arr = json_pack("[{s:s, s:s, s:[s,s,s,s], s:s}]", "name", "fashion-mnist", "kind",
                            "builtin", "splits", "train", "val", "test", "fulltrain", "source",
                            "Debian's dataset-fashion-mnist");
    qt_error err;
    int rc = qt_store_dataset_list(c->srv->qstore, named_cb, arr, &err);
    if (rc) { json_decref(arr); return qd_fail_rc(c, rc, err.text); }
    c->result = json_pack("{s:s, s:o}", "data_dir", c->srv->data_real, "datasets", arr);
    return 0;
}

/* the JSON-RPC code of a data file's failure */
static int data_code(int rc)
{
    return rc == QT_ENOENT ? QT_RPC_NOT_FOUND : rc == QT_ENOMEM ? QT_RPC_INTERNAL
         : rc == QT_EIO ? QT_RPC_IO : QT_RPC_INVALID_PARAMS;
}

/* the largest label of a split (its labels file named in errors) below
 * classes (0: any) */
static int check_labels(qd_call *c, const qt_dataset *d, const char *file, int classes,
                        const char *whose, int *max)
{
    const uint8_t *l = qt_dataset_labels(d);
    *max = -1;
    for (size_t i = 0; i < qt_dataset_count(d); i++) {
        if (classes > 0 && l[i] >= classes)
            return qd_fail(c, QT_RPC_INVALID_PARAMS, "dataset.register: %s: label %d of item "
                           "%zu is >= %d, %s", file, l[i], i, classes, whose);
        if (l[i] > *max) *max = l[i];
    }
    return 0;
}

/* check a dataset's files (they are read whole: on the pool, without the
 * store) and record it under its name */
static int m_dataset_register(qd_call *c)
{
    static const char *const files[][2] = { { "images", "train_images" },
                                            { "labels", "train_labels" },
                                            { "test_images", "test_images" },
                                            { "test_labels", "test_labels" } };
    const char *name = json_string_value(json_object_get(c->params, "name"));
    json_t *cv = json_object_get(c->params, "classes");
    json_t *src = json_object(), *job = NULL;
    qt_dataset *tr = NULL, *te = NULL;
    qt_job_spec spec;
    qt_error err;
    int rc, classes = cv ? (int)json_integer_value(cv) : 0;
    memset(&spec, 0, sizeof spec);
    if (!strcmp(name, "fashion-mnist")) {
        qd_fail(c, QT_RPC_INVALID_PARAMS, "dataset.register: fashion-mnist is built in: choose "
                "another name");
        goto out;
    }
    if (cv && (json_integer_value(cv) < 1 || json_integer_value(cv) > 256)) {
        qd_fail(c, QT_RPC_INVALID_PARAMS, "dataset.register: classes must be in 1..256");
        goto out;
    }
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(c->params, files[i][0]);
        char real[PATH_MAX];
        if (!v) continue;
        if (resolve_data(c, json_string_value(v), real, sizeof real)) goto out;
        json_object_set_new(src, files[i][1], json_string(real));
    }
    const char *opt[] = { "norm", "val_count", "val_seed" };
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(c->params, opt[i]);
        if (v) json_object_set(src, opt[i], v);
    }
    /* the job parser checks the name, the pairs of files, the normalisation */
    job = json_pack("{s:s, s:s, s:O}", "model", "-", "dataset", name, "data", src);
    if ((rc = qt_job_from_json(job, &spec, &err))) {
        qd_fail(c, QT_RPC_INVALID_PARAMS, "dataset.register: %s", err.text);
        goto out;
    }
    const qt_job_data *d = &spec.data;
    if ((rc = qt_job_dataset(&spec, QT_SPLIT_FULLTRAIN, &tr, &err))) {
        qd_fail(c, data_code(rc), "dataset.register: %s", err.text);
        goto out;
    }
    int max, tmax = -1, shape[3], tshape[3];
    size_t n = qt_dataset_count(tr), vc = d->val_count;
    qt_dataset_shape(tr, shape);
    if (check_labels(c, tr, d->train_labels, classes, "the classes given", &max)) goto out;
    if (!vc) {
        vc = n / 6 < 10000 ? n / 6 : 10000;
        if (!vc) vc = 1;
    }
    if (vc > n) {
        qd_fail(c, QT_RPC_INVALID_PARAMS, "dataset.register: %s holds %zu images, fewer than "
                "val_count %zu", d->train_images, n, vc);
        goto out;
    }
    json_object_set_new(src, "val_count", json_integer((json_int_t)vc));
    json_object_set_new(src, "val_seed", json_integer((json_int_t)d->val_seed));
    if (!json_object_get(src, "norm"))
        json_object_set_new(src, "norm", json_pack("{s:f, s:f, s:f}", "scale",
                                                   (double)d->norm.scale, "mean",
                                                   (double)d->norm.mean, "std",
                                                   (double)d->norm.std));
    if (d->test_images[0]) {
        if ((rc = qt_job_dataset(&spec, QT_SPLIT_TEST, &te, &err))) {
            qd_fail(c, data_code(rc), "dataset.register: %s", err.text);
            goto out;
        }
        qt_dataset_shape(te, tshape);
        if (memcmp(shape, tshape, sizeof shape)) {
            qd_fail(c, QT_RPC_INVALID_PARAMS, "dataset.register: %s: images of %dx%dx%d, but "
                    "the training images (%s) are %dx%dx%d", d->test_images, tshape[0],
                    tshape[1], tshape[2], d->train_images, shape[0], shape[1], shape[2]);
            goto out;
        }
        if (check_labels(c, te, d->test_labels, classes ? classes : max + 1, classes
                         ? "the classes given" : "the classes of the training labels (give "
                         "\"classes\" if the test split has more)", &tmax))
            goto out;
    }
    if (!classes) classes = max + 1 < 2 ? 2 : max + 1;   /* as the engine counts them */
    char hash[33], *stxt = NULL, *sumtxt = NULL;
    snprintf(hash, sizeof hash, "%016llx%016llx", (unsigned long long)qt_dataset_hash(tr),
             te ? (unsigned long long)qt_dataset_hash(te) : 0ull);
    json_t *sum = json_pack("{s:I, s:[i,i,i], s:i, s:I, s:I}", "images", (json_int_t)n,
                            "shape", shape[0], shape[1], shape[2], "classes", classes,
                            "val_count", (json_int_t)vc, "test_images",
                            (json_int_t)(te ? qt_dataset_count(te) : 0));
    stxt = json_dumps(src, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    sumtxt = json_dumps(sum, JSON_COMPACT | JSON_SORT_KEYS);
    int64_t id = 0;
    if (!stxt || !sumtxt) {
        qd_fail(c, QT_RPC_INTERNAL, "out of memory");
    } else {
        pthread_mutex_lock(&c->srv->qmu);
        rc = qt_store_dataset_register(c->srv->qstore, name, hash, stxt, sumtxt, &id, &err);
        pthread_mutex_unlock(&c->srv->qmu);
        if (rc) qd_fail_rc(c, rc, err.text);
    }
    free(stxt);
    free(sumtxt);
    if (!c->code) {
        qd_log(QT_LOG_INFO, "dataset %s registered: %zu images of %dx%dx%d, %d classes (%s)",
               name, n, shape[0], shape[1], shape[2], classes, d->train_images);
        c->result = json_pack("{s:I, s:s, s:s, s:O, s:O}", "id", (json_int_t)id, "name", name,
                              "hash", hash, "data", src, "summary", sum);
    }
    json_decref(sum);
out:
    qt_dataset_free(tr);
    qt_dataset_free(te);
    qt_job_clear(&spec);
    json_decref(job);
    json_decref(src);
    return c->code ? -1 : 0;
}

/* a registered dataset's data (new reference) and its classes (as
 * registered; 0: unknown), its files checked again to be inside the data
 * directory (they may have been replaced since); the store is the
 * caller's */
static int dataset_source(qd_call *c, const char *name, json_t **out, int *classes)
{
    static const char *const keys[] = { "train_images", "train_labels", "test_images",
                                         "test_labels" };
    qt_error err;
    json_t *arr = json_array();
    *out = NULL;
    int rc = qt_store_dataset_find(c->srv->qstore, name, named_cb, arr, &err);
    if (rc == QT_ENOENT) {
        json_decref(arr);
        return qd_fail(c, QT_RPC_NOT_FOUND, "no dataset '%s' (dataset.list lists them; "
                       "dataset.register adds one)", name);
    }
    if (rc) { json_decref(arr); return qd_fail_rc(c, rc, err.text); }
    json_t *src = json_incref(json_object_get(json_array_get(arr, 0), "data"));
    json_t *nc = json_object_get(json_object_get(json_array_get(arr, 0), "summary"), "classes");
    *classes = json_is_integer(nc) ? (int)json_integer_value(nc) : 0;
    json_decref(arr);
    if (!json_is_object(src)) {
        json_decref(src);
        return qd_fail(c, QT_RPC_INTERNAL, "dataset '%s': its stored description is damaged",
                       name);
    }
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(src, keys[i]);
        char real[PATH_MAX];
        if (!json_is_string(v)) continue;
        if (resolve_data(c, json_string_value(v), real, sizeof real)) {
            char msg[sizeof c->msg];
            snprintf(msg, sizeof msg, "%s", c->msg);
            qd_fail(c, c->code, "dataset '%s': %s", name, msg);
            json_decref(src);
            return -1;
        }
        json_object_set_new(src, keys[i], json_string(real));
    }
    *out = src;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* job.*                                                                     */
/* ------------------------------------------------------------------------ */

static json_t *parse_or_null(const char *txt)
{
    json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
    return j ? j : json_null();
}

static json_t *job_json(qd_server *srv, const qt_store_job *j, int full)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:f, s:i, s:i, s:i, s:i}",
                          "id", (json_int_t)j->id, "state", qt_job_state_name(j->state),
                          "model", j->model, "strategy", j->strategy, "created", j->created,
                          "runs", j->runs, "interrupted", j->interrupted, "evals", j->evals,
                          "computed", j->computed);
    json_object_set_new(o, "started", j->started > 0 ? json_real(j->started) : json_null());
    json_object_set_new(o, "finished", j->finished > 0 ? json_real(j->finished) : json_null());
    json_object_set_new(o, "error", j->error ? json_string(j->error) : json_null());
    json_t *ans = parse_or_null(j->answer_json);
    if (full) {
        json_object_set_new(o, "spec", parse_or_null(j->spec_json));
        json_object_set(o, "answer", ans);
    } else if (json_is_object(ans)) {
        json_t *a = json_object();
        const char *keys[] = { "feasible", "cost", "compression", "top1", NULL };
        for (int i = 0; keys[i]; i++) {
            json_t *v = json_object_get(ans, keys[i]);
            if (v) json_object_set(a, keys[i], v);
        }
        json_object_set_new(o, "answer", a);
    } else {
        json_object_set_new(o, "answer", json_null());
    }
    json_decref(ans);
    json_t *live = qd_jobs_live(srv->jobs, j->id);
    if (live) {
        /* the daemon's view: queued/running/pausing/cancelling, progress */
        json_object_set(o, "state", json_object_get(live, "state"));
        json_object_del(live, "job");
        json_object_del(live, "state");
        json_object_set_new(o, "live", live);
    } else {
        char why[256];
        if (qd_jobs_waiting(srv->jobs, j->id, why, sizeof why)) {
            /* the store could not even record the pause: say it here */
            json_object_set_new(o, "state", json_string("paused"));
            json_object_set_new(o, "error", json_string(why));
            json_object_set_new(o, "waiting_for_storage", json_true());
        }
        json_object_set_new(o, "live", json_null());
    }
    return o;
}

static int get_job(qd_call *c, int64_t id, qt_store_job *j)
{
    qt_error err;
    memset(j, 0, sizeof *j);
    int rc = qt_store_job_get(c->srv->qstore, id, j, &err);
    if (rc == QT_ENOENT) return qd_fail(c, QT_RPC_NOT_FOUND, "no job %lld (job.list lists "
                                        "them)", (long long)id);
    if (rc) return qd_fail_rc(c, rc, err.text);
    return 0;
}

static int m_job_submit(qd_call *c)
{
    json_t *jv = json_object_get(c->params, "job");
    json_t *owned = NULL;
    qt_job_spec spec;
    qt_error err;
    int rc, classes = 10;                       /* Fashion-MNIST's */
    if (json_is_string(jv)) {
        json_error_t je;
        owned = json_loads(json_string_value(jv), JSON_REJECT_DUPLICATES, &je);
        if (!owned) return qd_fail(c, QT_RPC_INVALID_PARAMS, "job: %s (line %d)", je.text,
                                   je.line);
        jv = owned;
    }
    if (json_is_object(jv)) {
        /* a registered dataset: its files from the store */
        json_t *dn = json_object_get(jv, "dataset");
        if (json_object_get(jv, "data")) {
            json_decref(owned);
            return qd_fail(c, QT_RPC_INVALID_PARAMS, "job: data is filled in by qtuned from "
                           "the registered dataset the job names (dataset.register adds one)");
        }
        if (json_is_string(dn) && strcmp(json_string_value(dn), "fashion-mnist")) {
            json_t *src, *copy;
            pthread_mutex_lock(&c->srv->qmu);
            int bad = dataset_source(c, json_string_value(dn), &src, &classes);
            pthread_mutex_unlock(&c->srv->qmu);
            if (bad) {
                json_decref(owned);
                return -1;
            }
            copy = json_copy(jv);
            json_object_set_new(copy, "data", src);
            json_decref(owned);
            owned = jv = copy;
        }
    }
    rc = qt_job_from_json(jv, &spec, &err);
    json_decref(owned);
    if (rc) return qd_fail(c, QT_RPC_INVALID_PARAMS, "job: %s", err.text);
    char model[PATH_MAX];
    if (resolve_model(c, spec.model, model, sizeof model)) { qt_job_clear(&spec); return -1; }
    if (strlen(model) >= sizeof spec.model) {
        qt_job_clear(&spec);
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "model path %s is too long", model);
    }
    snprintf(spec.model, sizeof spec.model, "%s", model);
    /* the model's output against the dataset's classes (a model that does
     * not load is the run's to report, as before) */
    qt_graph *g;
    if (classes > 0 && qt_model_load(model, &g, &err) == QT_OK) {
        char ds[208];
        if (spec.has_data) snprintf(ds, sizeof ds, "'%s' (%.120s)", spec.dataset,
                                    spec.data.train_labels);
        else snprintf(ds, sizeof ds, "'%s'", spec.dataset);
        rc = qt_run_check_classes(g, model, classes, ds, &err);
        qt_graph_free(g);
        if (rc) {
            qt_job_clear(&spec);
            return qd_fail(c, QT_RPC_INVALID_PARAMS, "job: %s", err.text);
        }
    }
    int64_t id;
    char strategy[sizeof spec.strategy];
    snprintf(strategy, sizeof strategy, "%s", spec.strategy);
    pthread_mutex_lock(&c->srv->qmu);
    rc = qt_store_job_new(c->srv->qstore, &spec, &id, &err);
    pthread_mutex_unlock(&c->srv->qmu);
    qt_job_clear(&spec);
    if (rc) return qd_fail_rc(c, rc, err.text);
    rc = qd_jobs_enqueue(c->srv->jobs, id, 0);
    if (rc)
        /* stored as queued: the next start runs it */
        return qd_fail(c, QT_RPC_BUSY, "job %lld is stored but the daemon is stopping: it "
                       "runs at the next start", (long long)id);
    qd_log(QT_LOG_INFO, "job %lld: submitted (%s, %s)", (long long)id, model, strategy);
    c->result = json_pack("{s:I, s:s}", "job", (json_int_t)id, "state", "queued");
    return 0;
}

static int m_job_get(qd_call *c)
{
    qt_store_job j;
    if (get_job(c, job_param(c), &j)) return -1;
    c->result = job_json(c->srv, &j, 1);
    qt_store_job_clear(&j);
    return 0;
}

static int m_job_list(qd_call *c)
{
    json_t *sv = json_object_get(c->params, "state");
    qt_job_state want = QT_JOB_STATE_COUNT;
    if (sv && qt_job_state_parse(json_string_value(sv), &want))
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "job.list: state '%s' is not one of queued, "
                       "running, paused, done, failed, cancelled", json_string_value(sv));
    qt_store_job *jobs;
    int n;
    qt_error err;
    int rc = qt_store_job_list(c->srv->qstore, &jobs, &n, &err);
    if (rc) return qd_fail_rc(c, rc, err.text);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        if (want == QT_JOB_STATE_COUNT || jobs[i].state == want)
            json_array_append_new(arr, job_json(c->srv, &jobs[i], 0));
    qt_store_job_list_free(jobs, n);
    c->result = json_pack("{s:o}", "jobs", arr);
    return 0;
}

/* cancel or pause: the job manager stops an active job; a stored one that
 * is not active changes state here */
static int stop_job(qd_call *c, qt_run_stop why)
{
    int64_t id = job_param(c);
    qt_store_job j;
    qt_error err;
    const char *verb = why == QT_STOP_CANCEL ? "cancel" : "pause";
    qt_job_state to = why == QT_STOP_CANCEL ? QT_JOB_CANCELLED : QT_JOB_PAUSED;
    if (get_job(c, id, &j)) return -1;
    qt_job_state st = j.state;
    qt_store_job_clear(&j);
    int res = qd_jobs_stop(c->srv->jobs, id, why);
    if (res == 2) {
        qd_log(QT_LOG_INFO, "job %lld: %s asked", (long long)id, verb);
        c->result = json_pack("{s:I, s:s}", "job", (json_int_t)id, "state",
                              why == QT_STOP_CANCEL ? "cancelling" : "pausing");
        return 0;
    }
    if (res == 0 && (st == QT_JOB_DONE || st == QT_JOB_FAILED || st == QT_JOB_CANCELLED ||
                     (why == QT_STOP_PAUSE && st == QT_JOB_PAUSED)))
        return qd_fail(c, QT_RPC_STATE, "job %lld is %s: there is nothing to %s", (long long)id,
                       qt_job_state_name(st), verb);
    if (res == 0 && st == QT_JOB_RUNNING)
        return qd_fail(c, QT_RPC_STATE, "job %lld is marked running but this daemon does not "
                       "run it (another process, e.g. qtune tune --db, may)", (long long)id);
    int rc = qt_store_job_set_state(c->srv->qstore, id, to, NULL, &err);
    if (rc) return qd_fail_rc(c, rc, err.text);
    qd_log(QT_LOG_INFO, "job %lld: %s", (long long)id, qt_job_state_name(to));
    c->result = json_pack("{s:I, s:s}", "job", (json_int_t)id, "state", qt_job_state_name(to));
    return 0;
}

static int m_job_cancel(qd_call *c) { return stop_job(c, QT_STOP_CANCEL); }
static int m_job_pause(qd_call *c) { return stop_job(c, QT_STOP_PAUSE); }

static int m_job_resume(qd_call *c)
{
    int64_t id = job_param(c);
    json_t *budget = json_object_get(c->params, "budget");
    json_t *strategy = json_object_get(c->params, "strategy");
    qt_store_job j;
    qt_error err;
    int rc;
    if (get_job(c, id, &j)) return -1;
    qt_job_state st = j.state;
    qt_store_job_clear(&j);
    json_t *live = qd_jobs_live(c->srv->jobs, id);
    if (live) {
        json_decref(live);
        return qd_fail(c, QT_RPC_STATE, "job %lld is already queued or running", (long long)id);
    }
    if (st == QT_JOB_RUNNING)
        return qd_fail(c, QT_RPC_STATE, "job %lld is marked running but this daemon does not "
                       "run it (another process, e.g. qtune tune --db, may)", (long long)id);
    if (budget || strategy) {
        qt_job_spec spec;
        if ((rc = qt_store_job_spec(c->srv->qstore, id, &spec, &err)))
            return qd_fail_rc(c, rc, err.text);
        json_t *sj = qt_job_to_json(&spec);
        qt_job_clear(&spec);
        if (budget) json_object_set(sj, "budget", budget);
        if (strategy) json_object_set(sj, "strategy", strategy);
        rc = qt_job_from_json(sj, &spec, &err);
        json_decref(sj);
        if (rc) return qd_fail(c, QT_RPC_INVALID_PARAMS, "job: %s", err.text);
        rc = qt_store_job_set_spec(c->srv->qstore, id, &spec, &err);
        qt_job_clear(&spec);
        if (rc) return qd_fail_rc(c, rc, err.text);
    }
    rc = qd_jobs_enqueue(c->srv->jobs, id, 1);
    if (rc == QT_EBUSY) return qd_fail(c, QT_RPC_BUSY, "the daemon is stopping");
    if (rc) return qd_fail(c, QT_RPC_STATE, "job %lld is already queued or running",
                           (long long)id);
    qd_log(QT_LOG_INFO, "job %lld: resumed from %s%s", (long long)id, qt_job_state_name(st),
           budget || strategy ? " with a changed spec" : "");
    c->result = json_pack("{s:I, s:s, s:s}", "job", (json_int_t)id, "state", "queued", "was",
                          qt_job_state_name(st));
    return 0;
}

/* a job's history, in order */
typedef struct hist { json_t *arr; int offset, limit, seen; int configs; } hist;

static json_t *eval_json(const qt_store_eval *e, int config)
{
    json_t *o = json_pack("{s:i, s:s, s:b, s:s}", "seq", e->seq, "key", e->key, "reused",
                          e->reused, "reason", e->reason ? e->reason : "");
    json_object_set_new(o, "cost", num_or_null(e->r.cost));
    json_object_set_new(o, "compression", num_or_null(e->r.compression));
    json_object_set_new(o, "top1", num_or_null(e->r.top1));
    json_object_set_new(o, "top5", num_or_null(e->r.top5));
    json_object_set_new(o, "loss", num_or_null(e->r.loss));
    json_object_set_new(o, "images", json_integer((json_int_t)e->r.images));
    json_object_set_new(o, "feasible", json_boolean(e->r.feasible));
    json_object_set_new(o, "early", json_boolean(e->r.early));
    json_object_set_new(o, "weight_bits", num_or_null(e->r.weight_bits));
    json_object_set_new(o, "seconds", num_or_null(e->r.seconds));
    if (e->r.fail != QT_FAIL_NONE) {
        json_object_set_new(o, "fail", json_string(qt_fail_class_name(e->r.fail)));
        json_object_set_new(o, "error", json_string(e->r.error));
    }
    if (config) json_object_set_new(o, "config", parse_or_null(e->config_json));
    return o;
}

static int hist_cb(void *user, const qt_store_eval *e)
{
    hist *h = user;
    int i = h->seen++;
    if (i < h->offset || (h->limit > 0 && i >= h->offset + h->limit)) return 0;
    json_array_append_new(h->arr, eval_json(e, h->configs));
    return 0;
}

static int m_job_evaluations(qd_call *c)
{
    json_t *ov = json_object_get(c->params, "offset"), *lv = json_object_get(c->params, "limit");
    json_int_t off = ov ? json_integer_value(ov) : 0, lim = lv ? json_integer_value(lv) : 1000;
    if (off < 0 || off > INT_MAX || lim < 1 || lim > 100000)
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "job.evaluations: offset must be >= 0 and "
                       "limit in 1..100000");
    qt_store_job j;
    qt_error err;
    if (get_job(c, job_param(c), &j)) return -1;
    int total = j.evals;
    qt_store_job_clear(&j);
    /* only the page is read */
    hist h = { json_array(), 0, 0, 0, 1 };
    int rc = qt_store_history_page(c->srv->qstore, job_param(c), off, lim, hist_cb, &h, &err);
    if (rc) { json_decref(h.arr); return qd_fail_rc(c, rc, err.text); }
    c->result = json_pack("{s:I, s:i, s:I, s:o}", "job", (json_int_t)job_param(c), "total",
                          total, "offset", off, "evaluations", h.arr);
    return 0;
}

static int front_cb(void *user, const qt_store_point *p, const qt_store_eval *e)
{
    json_t *o = eval_json(e, 1);
    if (!o) return QT_ENOMEM;
    json_object_set_new(o, "cost", num_or_null(p->cost));
    json_object_set_new(o, "acc", num_or_null(p->acc));
    return json_array_append_new(user, o) ? QT_ENOMEM : 0;
}

static int m_job_pareto(qd_call *c)
{
    int64_t id = job_param(c);
    json_t *fv = json_object_get(c->params, "floor");
    json_t *av = json_object_get(c->params, "all");
    double floor = fv ? json_number_value(fv) : -INFINITY;
    qt_store_job j;
    qt_error err;
    if (get_job(c, id, &j)) return -1;
    /* the float model's metric and the constraint: live, or the answer's */
    double base = NAN, thr = NAN;
    json_t *live = qd_jobs_live(c->srv->jobs, id);
    json_t *ans = parse_or_null(j.answer_json);
    if (live && json_is_number(json_object_get(live, "float_top1"))) {
        base = json_number_value(json_object_get(live, "float_top1"));
        thr = json_number_value(json_object_get(live, "threshold"));
    } else if (json_is_object(ans)) {
        json_t *b = json_object_get(ans, "float_top1"), *t = json_object_get(ans, "threshold");
        if (json_is_number(b)) base = json_number_value(b);
        if (json_is_number(t)) thr = json_number_value(t);
    }
    json_decref(ans);
    json_t *spec = parse_or_null(j.spec_json);
    json_t *cons = json_object_get(spec, "constraint");
    json_t *metric = json_object_get(cons, "metric");
    json_t *cost = json_object_get(spec, "cost");
    c->result = json_pack("{s:I, s:s, s:s, s:O}", "job", (json_int_t)id, "state",
                          qt_job_state_name(j.state), "metric",
                          json_is_string(metric) ? json_string_value(metric) : "top1", "cost",
                          cost ? cost : json_null());
    json_decref(spec);
    if (live) {
        json_object_set(c->result, "state", json_object_get(live, "state"));
        json_decref(live);
    }
    int total = j.evals;
    qt_store_job_clear(&j);
    /* the front's evaluations as this job saw them, straight from the store */
    json_t *fr = json_array();
    int rc = qt_store_pareto_evals(c->srv->qstore, id, floor, front_cb, fr, &err);
    if (rc) { json_decref(fr); return qd_fail_rc(c, rc, err.text); }
    json_object_set_new(c->result, "floor", fv ? json_real(floor) : json_null());
    json_object_set_new(c->result, "float_top1", num_or_null(base));
    json_object_set_new(c->result, "threshold", num_or_null(thr));
    json_object_set_new(c->result, "evaluations", json_integer(total));
    json_object_set_new(c->result, "front", fr);
    if (av && json_is_true(av)) {
        /* every point, for plots: without the configurations */
        hist h = { json_array(), 0, 0, 0, 0 };
        rc = qt_store_history(c->srv->qstore, id, hist_cb, &h, &err);
        if (rc) { json_decref(h.arr); return qd_fail_rc(c, rc, err.text); }
        json_object_set_new(c->result, "points", h.arr);
    }
    return 0;
}

/* subscribe: the store says whether the job exists (pool), then on the
 * loop thread, the job manager whether it is still active: its job.end
 * notification has not been sent yet exactly when it is */
static int m_job_subscribe(qd_call *c)
{
    qt_store_job j;
    if (get_job(c, job_param(c), &j)) return -1;
    c->result = json_pack("{s:I, s:s}", "job", (json_int_t)j.id, "state",
                          qt_job_state_name(j.state));
    qt_store_job_clear(&j);
    return 0;
}

static void m_job_subscribe_after(qd_call *c)
{
    int64_t id = job_param(c);
    json_t *live = qd_jobs_live(c->srv->jobs, id);
    if (!live) {
        /* not active: nothing will be sent; the state from the store */
        json_object_set_new(c->result, "subscribed", json_false());
        return;
    }
    if (qd_server_subscribe(c->srv, c->conn, id)) {
        json_decref(live);
        qd_fail(c, QT_RPC_INTERNAL, "out of memory");
        return;
    }
    json_object_set(c->result, "state", json_object_get(live, "state"));
    json_object_set_new(c->result, "subscribed", json_true());
    /* a snapshot first, so that a late subscriber is not blind until the
     * next evaluation: job.progress with "snapshot": true (progress already
     * on its way may follow it with the same or a smaller count) */
    json_t *snap = json_deep_copy(live);
    json_object_set_new(snap, "snapshot", json_true());
    c->notes = json_pack("[{s:s, s:s, s:o}]", "jsonrpc", "2.0", "method", "job.progress",
                         "params", snap);
    json_object_set_new(c->result, "live", live);
}

/* ------------------------------------------------------------------------ */
/* eval.run                                                                  */
/* ------------------------------------------------------------------------ */

static int m_eval_run(qd_call *c)
{
    char model[PATH_MAX];
    json_t *cv = json_object_get(c->params, "config");
    json_t *sv = json_object_get(c->params, "split");
    json_t *lv = json_object_get(c->params, "limit");
    json_t *seedv = json_object_get(c->params, "seed");
    json_t *dv = json_object_get(c->params, "dataset");
    const char *split = sv ? json_string_value(sv) : "val";
    qt_split sp;
    if (!strcmp(split, "val")) sp = QT_SPLIT_VAL;
    else if (!strcmp(split, "test")) sp = QT_SPLIT_TEST;
    else return qd_fail(c, QT_RPC_INVALID_PARAMS, "eval.run: split '%s' is not val or test",
                        split);
    if (lv && json_integer_value(lv) < 0)
        return qd_fail(c, QT_RPC_INVALID_PARAMS, "eval.run: limit must be >= 0");
    if (resolve_model(c, json_string_value(json_object_get(c->params, "model")), model,
                      sizeof model))
        return -1;
    qt_graph *g = NULL;
    qt_qconfig *cfg = NULL;
    qt_dataset *d = NULL;
    qt_error err;
    qt_metrics m;
    qt_eval_opts eo = { 0 };
    int rc, classes = 0;
    char ds[208];
    if (lv) eo.limit = (size_t)json_integer_value(lv);
    double t0 = wall();
    if ((rc = qt_model_load(model, &g, &err))) goto fail;
    if (json_is_string(cv)) rc = qt_qconfig_parse(g, json_string_value(cv), &cfg, &err);
    else if (json_is_object(cv)) rc = qt_qconfig_from_json(g, cv, &cfg, &err);
    if (rc) { rc = QT_EINVAL; goto fail; }
    if (cfg && seedv) qt_qconfig_set_seed(cfg, (uint64_t)json_integer_value(seedv));
    if (dv && strcmp(json_string_value(dv), "fashion-mnist")) {
        /* a registered dataset's split */
        json_t *src = NULL;
        pthread_mutex_lock(&c->srv->qmu);
        int bad = dataset_source(c, json_string_value(dv), &src, &classes);
        pthread_mutex_unlock(&c->srv->qmu);
        if (bad) goto out;
        json_t *lf = json_object_get(src, sp == QT_SPLIT_TEST ? "test_labels" : "train_labels");
        snprintf(ds, sizeof ds, "'%s' (%.120s)", json_string_value(dv),
                 json_is_string(lf) ? json_string_value(lf) : "no such split");
        json_t *job = json_pack("{s:s, s:O, s:o}", "model", "-", "dataset", dv, "data", src);
        qt_job_spec spec;
        rc = qt_job_from_json(job, &spec, &err);
        json_decref(job);
        if (!rc) rc = qt_job_dataset(&spec, sp, &d, &err);
        qt_job_clear(&spec);
        if (rc) goto fail;
    } else if ((rc = qt_dataset_fashion_mnist(sp, &d, &err))) {
        goto fail;
    } else {
        snprintf(ds, sizeof ds, "'fashion-mnist'");
    }
    if (qt_dataset_classes(d) > classes) classes = qt_dataset_classes(d);
    if ((rc = qt_run_check_classes(g, model, classes, ds, &err))) goto fail;
    if ((rc = qt_evaluate(g, cfg, d, &eo, &m, &err))) goto fail;
    c->result = json_pack("{s:s, s:s, s:s, s:I, s:I}", "model", model, "dataset",
                          dv ? json_string_value(dv) : "fashion-mnist", "split", split, "images",
                          (json_int_t)m.count, "non_finite", (json_int_t)m.nan_count);
    json_object_set_new(c->result, "top1", num_or_null(m.top1));
    json_object_set_new(c->result, "top5", num_or_null(m.top5));
    json_object_set_new(c->result, "loss", num_or_null(m.loss));
    json_object_set_new(c->result, "seconds", json_real(wall() - t0));
    goto out;
fail:
    qd_fail(c, rc == QT_EINVAL || rc == QT_EPARSE || rc == QT_ECORRUPT || rc == QT_ENOTSUP
            ? QT_RPC_INVALID_PARAMS : qt_rpc_code(rc), "eval.run: %s", err.text);
out:
    qt_dataset_free(d);
    qt_qconfig_free(cfg);
    qt_graph_free(g);
    return c->code ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

static const qd_param p_none[] = { { NULL, 0, 0 } };
static const qd_param p_job[] = { { "job", P_ID, 1 }, { NULL, 0, 0 } };
static const qd_param p_auth[] = { { "token", P_STR, 1 }, { NULL, 0, 0 } };
static const qd_param p_model_reg[] = { { "path", P_STR, 1 }, { "name", P_STR, 0 },
                                        { NULL, 0, 0 } };
static const qd_param p_dataset_reg[] = { { "name", P_STR, 1 }, { "images", P_STR, 1 },
                                          { "labels", P_STR, 1 }, { "test_images", P_STR, 0 },
                                          { "test_labels", P_STR, 0 }, { "norm", P_OBJ, 0 },
                                          { "val_count", P_INT, 0 }, { "val_seed", P_INT, 0 },
                                          { "classes", P_INT, 0 }, { NULL, 0, 0 } };
static const qd_param p_submit[] = { { "job", P_OBJ | P_STR, 1 }, { NULL, 0, 0 } };
static const qd_param p_list[] = { { "state", P_STR, 0 }, { NULL, 0, 0 } };
static const qd_param p_resume[] = { { "job", P_ID, 1 }, { "budget", P_OBJ, 0 },
                                     { "strategy", P_STR | P_OBJ, 0 }, { NULL, 0, 0 } };
static const qd_param p_pareto[] = { { "job", P_ID, 1 }, { "floor", P_NUM, 0 },
                                     { "all", P_BOOL, 0 }, { NULL, 0, 0 } };
static const qd_param p_evals[] = { { "job", P_ID, 1 }, { "offset", P_INT, 0 },
                                    { "limit", P_INT, 0 }, { NULL, 0, 0 } };
static const qd_param p_eval[] = { { "model", P_STR, 1 }, { "config", P_OBJ | P_STR, 0 },
                                   { "split", P_STR, 0 }, { "limit", P_INT, 0 },
                                   { "seed", P_INT, 0 }, { "dataset", P_STR, 0 },
                                   { NULL, 0, 0 } };

static const qd_method methods[] = {
    { "server.info",      m_server_info,      NULL, 0, p_none, "the daemon: version, paths, settings, methods" },
    { "server.stats",     m_server_stats,     NULL, 0, p_none, "clients, requests, errors, jobs" },
    { "server.auth",      m_server_auth,      NULL, QD_NOAUTH, p_auth, "authenticate a TCP connection" },
    { "server.shutdown",  m_server_shutdown,  NULL, 0, p_none, "stop as on SIGTERM" },
    { "model.list",       m_model_list,       NULL, QD_STORE, p_none, "the zoo, models of the models directory, registered models" },
    { "model.register",   m_model_register,   NULL, QD_STORE, p_model_reg, "record a model file of the models directory" },
    { "dataset.list",     m_dataset_list,     NULL, QD_STORE, p_none, "fashion-mnist and the registered datasets" },
    { "dataset.register", m_dataset_register, NULL, QD_POOL, p_dataset_reg, "check and record IDX files of the data directory by name" },
    { "job.submit",       m_job_submit,       NULL, QD_POOL, p_submit, "store and queue a job" },
    { "job.get",          m_job_get,          NULL, QD_STORE, p_job, "a job's state, counts, spec, answer, progress" },
    { "job.list",         m_job_list,         NULL, QD_STORE, p_list, "the jobs" },
    { "job.cancel",       m_job_cancel,       NULL, QD_STORE, p_job, "stop a job for good" },
    { "job.pause",        m_job_pause,        NULL, QD_STORE, p_job, "stop a job, resumable" },
    { "job.resume",       m_job_resume,       NULL, QD_STORE, p_resume, "queue a stopped job again (optionally new budget/strategy)" },
    { "job.pareto",       m_job_pareto,       NULL, QD_STORE, p_pareto, "a job's Pareto front" },
    { "job.evaluations",  m_job_evaluations,  NULL, QD_STORE, p_evals, "a job's evaluations in order" },
    { "job.subscribe",    m_job_subscribe,    m_job_subscribe_after, QD_STORE, p_job, "job.progress and job.end notifications" },
    { "eval.run",         m_eval_run,         NULL, QD_POOL | QD_EVAL, p_eval, "evaluate one configuration now" },
};

const qd_method *qd_method_find(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (!strcmp(methods[i].name, name)) return &methods[i];
    return NULL;
}

const qd_method *qd_methods(int *n)
{
    *n = (int)(sizeof methods / sizeof *methods);
    return methods;
}
