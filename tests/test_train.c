/*
 * test_train.c -- evaluation, training and checkpoints: training lowers
 * the loss, the same seed gives the same weights, quantized training keeps
 * weights in the accumulator format, checkpoints round-trip bit for bit and
 * every kind of damage is refused with a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine.h"

static qt_dataset *small;          /* 2000 training images */
static qt_dataset *val;            /* 1000 validation images */

static int setup(void **st)
{
    qt_dataset *tr, *v;
    qt_error err;
    if (qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &tr, &err)) return -1;
    if (qt_dataset_fashion_mnist(QT_SPLIT_VAL, &v, &err)) return -1;
    qt_dataset_subset(tr, 3, 0, 2000, &small, &err);
    qt_dataset_subset(v, 0, 0, 1000, &val, &err);
    qt_dataset_free(tr);
    qt_dataset_free(v);
    return 0;
}

static int teardown(void **st)
{
    qt_dataset_free(small);
    qt_dataset_free(val);
    return 0;
}

static qt_graph *mlp(void)
{
    qt_graph *g;
    qt_error err;
    if (qt_zoo_build("mlp", &g, &err)) fail_msg("%s", err.text);
    return g;
}

static int params_equal(qt_graph *a, qt_graph *b)
{
    for (int i = 0; i < qt_graph_nodes(a); i++)
        for (int k = 0; k < 4; k++) {
            qt_tensor *x = qt_graph_param(a, i, k), *y = qt_graph_param(b, i, k);
            if (!x != !y) return 0;
            if (x && (x->size != y->size || memcmp(x->data, y->data, x->size * sizeof(float))))
                return 0;
        }
    return 1;
}

static void t_train_lowers_loss(void **st)
{
    qt_graph *g = mlp();
    qt_metrics before, after;
    qt_error err;
    qt_train_opts o = qt_train_defaults();
    qt_train_stats s;
    o.epochs = 2;
    o.lr = 0.05;
    assert_int_equal(qt_evaluate(g, NULL, val, NULL, &before, &err), QT_OK);
    assert_int_equal(qt_train(g, NULL, small, &o, &s, &err), QT_OK);
    assert_int_equal(qt_evaluate(g, NULL, val, NULL, &after, &err), QT_OK);
    assert_int_equal(s.epochs_done, 2);
    assert_true(after.loss < 0.6 * before.loss);
    assert_true(after.top1 > 0.70 && after.top1 > before.top1 + 0.4);
    assert_true(after.top5 >= after.top1);
    assert_int_equal(after.count, 1000);
    qt_graph_free(g);
}

static void t_deterministic(void **st)
{
    qt_graph *a = mlp(), *b = mlp(), *c = mlp();
    qt_error err;
    qt_train_opts o = qt_train_defaults();
    o.optim = QT_ADAM;
    o.lr = 1e-3;
    o.weight_decay = 1e-4;
    assert_true(params_equal(a, b));                  /* same init seed */
    qt_train(a, NULL, small, &o, NULL, &err);
    qt_train(b, NULL, small, &o, NULL, &err);
    assert_true(params_equal(a, b));
    o.seed = 2;                                       /* other shuffling */
    qt_train(c, NULL, small, &o, NULL, &err);
    assert_false(params_equal(a, c));
    qt_graph_free(a); qt_graph_free(b); qt_graph_free(c);
}

/* training with quantized gradients and an accumulator format: after
 * training every weight is a value of the accumulator format */
static void t_quantized_training(void **st)
{
    qt_graph *g = mlp();
    qt_qconfig *cfg;
    qt_error err;
    qt_metrics m;
    const char *json = "{\"default\": {\"output\": \"fixed<16,10>\", \"grad_output\": \"fixed<16,20>\","
                       " \"grad_weights\": \"fixed<16,20>\", \"accumulator\": \"fixed<24,20>\"}}";
    if (qt_qconfig_parse(g, json, &cfg, &err)) fail_msg("%s", err.text);
    qt_train_opts o = qt_train_defaults();
    o.lr = 0.05;
    assert_int_equal(qt_train(g, cfg, small, &o, NULL, &err), QT_OK);
    qt_format acc;
    qt_format_parse("fixed<24,20>", &acc, NULL);
    for (int i = 0; i < qt_graph_nodes(g); i++)
        for (int k = 0; k < 2; k++) {
            qt_tensor *t = qt_graph_param(g, i, k);
            if (!t) continue;
            for (size_t e = 0; e < t->size; e++)
                assert_true(qt_quantize1(&acc, t->data[e], 0) == t->data[e]);
        }
    assert_int_equal(qt_evaluate(g, cfg, val, NULL, &m, &err), QT_OK);
    assert_true(m.top1 > 0.6);
    qt_qconfig_free(cfg);
    qt_graph_free(g);
}

static int stop_after_first(void *user, const qt_metrics *m, const uint8_t *correct)
{
    int *calls = user;
    (*calls)++;
    for (size_t i = 0; i < m->count; i++) assert_true(correct[i] <= 1);
    return 1;
}

static int *record_n;

static int record_count(void *user, const qt_metrics *m, const uint8_t *correct)
{
    size_t *looks = user;
    (void)correct;
    if (*record_n < 32) looks[(*record_n)++] = m->count;
    return 0;
}

static void t_evaluate_options(void **st)
{
    qt_graph *g = mlp();
    qt_error err;
    qt_metrics m, full;
    int calls = 0;
    qt_eval_opts o = { 0 };
    o.batch = 100;
    o.cb = stop_after_first;
    o.user = &calls;
    assert_int_equal(qt_evaluate(g, NULL, val, &o, &m, &err), QT_OK);
    assert_int_equal(calls, 1);
    assert_true(m.stopped && m.count == 100);
    /* per-image correctness matches top-1; limit and batch do not change it */
    uint8_t *c = malloc(1000);
    qt_eval_opts o2 = { 0 };
    o2.correct = c;
    o2.batch = 64;
    assert_int_equal(qt_evaluate(g, NULL, val, &o2, &full, &err), QT_OK);
    size_t k = 0;
    for (int i = 0; i < 1000; i++) k += c[i];
    assert_true(fabs((double)k / 1000 - full.top1) < 1e-12);
    qt_eval_opts o3 = { 0 };
    o3.limit = 300;
    assert_int_equal(qt_evaluate(g, NULL, val, &o3, &m, &err), QT_OK);
    assert_int_equal(m.count, 300);
    /* small first batches: the callback looks after 64, 128, ..., 250 and
     * then every 256; the same verdicts; margins from the logits of a
     * separate forward (label's logit minus the largest other) */
    uint8_t *c2 = malloc(1000);
    float *mg = malloc(1000 * sizeof *mg);
    size_t looks[32];
    int nlooks = 0;
    qt_eval_opts o4 = { 0 };
    o4.correct = c2;
    o4.margin = mg;
    o4.first_batch = 64;
    o4.first_images = 250;
    o4.cb = record_count;
    o4.user = looks;
    record_n = &nlooks;
    assert_int_equal(qt_evaluate(g, NULL, val, &o4, &m, &err), QT_OK);
    const size_t want[] = { 64, 128, 192, 250, 506, 762, 1000 };
    assert_int_equal(nlooks, 7);
    for (int i = 0; i < 7; i++) assert_int_equal(looks[i], want[i]);
    assert_memory_equal(c, c2, 1000);
    assert_true(m.top1 == full.top1);
    const float *X = qt_dataset_images(val);
    const uint8_t *L = qt_dataset_labels(val);
    const qt_tensor *y;
    for (int i = 0; i < 1000; i += 37) {
        assert_int_equal(qt_forward(g, NULL, X + (size_t)i * 784, 1, 0, &y, &err), QT_OK);
        float other = -INFINITY;
        for (int j = 0; j < 10; j++)
            if (j != L[i] && y->data[j] > other) other = y->data[j];
        assert_true(fabsf(mg[i] - (y->data[L[i]] - other)) <= 1e-5f * (1 + fabsf(other)));
        assert_int_equal(c[i], mg[i] > 0);
    }
    free(c2);
    free(mg);
    free(c);
    /* a data set that does not fit the input */
    qt_graph *h = qt_graph_new();
    int x = qt_graph_input(h, "x", 1, 10, 10, &err);
    qt_attr a = { 0 };
    a.out = 10;
    qt_graph_add(h, QT_OP_DENSE, "fc", &x, 1, &a, &err);
    assert_int_equal(qt_evaluate(h, NULL, val, NULL, &m, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "does not fit"));
    qt_graph_free(h);
    qt_graph_free(g);
}

static char ckpt[] = "/tmp/qt_test_ckpt_XXXXXX";

static void write_bytes(const char *p, const unsigned char *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static unsigned char *read_bytes(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void t_checkpoint(void **st)
{
    qt_graph *g = mlp(), *h;
    qt_error err;
    int fd = mkstemp(ckpt);
    close(fd);
    qt_train_opts o = qt_train_defaults();
    qt_train(g, NULL, small, &o, NULL, &err);
    assert_int_equal(qt_checkpoint_save(g, ckpt, &err), QT_OK);
    assert_int_equal(qt_checkpoint_load(ckpt, &h, &err), QT_OK);
    assert_true(params_equal(g, h));
    assert_int_equal(qt_graph_nodes(g), qt_graph_nodes(h));
    for (int i = 0; i < qt_graph_nodes(g); i++)
        assert_string_equal(qt_graph_node_name(g, i), qt_graph_node_name(h, i));
    qt_metrics ma, mb;
    qt_evaluate(g, NULL, val, NULL, &ma, &err);
    qt_evaluate(h, NULL, val, NULL, &mb, &err);
    assert_true(ma.top1 == mb.top1 && ma.loss == mb.loss);
    qt_graph_free(h);

    size_t n;
    unsigned char *orig = read_bytes(ckpt, &n);
    /* truncated at many points */
    for (size_t cut = 0; cut < n; cut += n / 37 + 1) {
        write_bytes(ckpt, orig, cut);
        int rc = qt_checkpoint_load(ckpt, &h, &err);
        if (rc == QT_OK) fail_msg("truncated at %zu accepted", cut);
        assert_true(rc == QT_ECORRUPT);
    }
    /* any flipped byte: caught by the checksum (or the magic) */
    for (size_t at = 0; at < n; at += n / 53 + 1) {
        unsigned char *b = malloc(n);
        memcpy(b, orig, n);
        b[at] ^= 0x40;
        write_bytes(ckpt, b, n);
        int rc = qt_checkpoint_load(ckpt, &h, &err);
        free(b);
        if (rc == QT_OK) fail_msg("flip at %zu accepted", at);
        if (at >= 8 && at < n - 4) assert_non_null(strstr(err.text, "checksum"));
    }
    /* a newer version (with a valid checksum) is refused as such */
    unsigned char *b = malloc(n);
    memcpy(b, orig, n);
    b[4] = 99;
    uint32_t c = (uint32_t)crc32(0L, b, (uInt)(n - 4));
    b[n - 4] = (unsigned char)c; b[n - 3] = (unsigned char)(c >> 8);
    b[n - 2] = (unsigned char)(c >> 16); b[n - 1] = (unsigned char)(c >> 24);
    write_bytes(ckpt, b, n);
    assert_int_equal(qt_checkpoint_load(ckpt, &h, &err), QT_ENOTSUP);
    assert_non_null(strstr(err.text, "newer"));
    free(b);
    free(orig);
    assert_int_equal(qt_checkpoint_load("/nonexistent/x.qtck", &h, &err), QT_ENOENT);
    unlink(ckpt);
    /* an unwritable path */
    assert_int_not_equal(qt_checkpoint_save(g, "/nonexistent/dir/x.qtck", &err), QT_OK);
    assert_non_null(strstr(err.text, "/nonexistent/dir"));
    qt_graph_free(g);
}

/* the committed checkpoints meet the test-accuracy targets */
static void t_committed_models(void **st)
{
    static const struct { const char *file; double target; } ck[] = {
        { "mlp.qtck", 0.88 }, { "lenet5.qtck", 0.89 }, { "resnet.qtck", 0.91 },
        { "vgg.qtck", 0.90 },            /* no target in the issue: a regression floor */
    };
    qt_dataset *test;
    qt_error err;
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err), QT_OK);
    for (size_t i = 0; i < sizeof ck / sizeof *ck; i++) {
        char path[512];
        qt_graph *g;
        qt_metrics m;
        snprintf(path, sizeof path, "%s/experiments/models/%s", QT_SOURCE_DIR, ck[i].file);
        if (qt_checkpoint_load(path, &g, &err)) fail_msg("%s", err.text);
        assert_int_equal(qt_evaluate(g, NULL, test, NULL, &m, &err), QT_OK);
        print_message("%s: test top-1 %.2f%% (target %.0f%%)\n", ck[i].file, 100 * m.top1, 100 * ck[i].target);
        assert_true(m.top1 >= ck[i].target);
        qt_graph_free(g);
    }
    qt_dataset_free(test);
}

/* statistics against a direct recomputation over the same activations */
static int epochs_seen;
static void on_epoch(void *user, int epoch, const qt_stats *s)
{
    const qt_graph *g = user;
    int fc1 = qt_graph_find(g, "fc1");
    const qt_tstats *gw = qt_stats_get(s, fc1, QT_ST_GRAD_WEIGHTS);
    const qt_tstats *ga = qt_stats_get(s, fc1, QT_ST_GRAD_ACT);
    assert_int_equal(epoch, epochs_seen);
    /* 2000 images in batches of 64: 32 backward passes */
    assert_int_equal(gw->count, 32 * 300 * 784);
    assert_int_equal(ga->count, 2000 * 300);
    assert_true(gw->absmax > 0);
    epochs_seen++;
}

static void t_stats(void **st)
{
    qt_graph *g = mlp();
    qt_error err;
    qt_stats *s = qt_stats_new(g);
    qt_qconfig *cfg;
    qt_metrics m;
    int relu1 = qt_graph_find(g, "relu1"), fc1 = qt_graph_find(g, "fc1");
    qt_train_opts o = qt_train_defaults();
    qt_train(g, NULL, small, &o, NULL, &err);
    assert_int_equal(qt_qconfig_parse(g, "{\"relu1\": {\"output\": \"ufixed<4,2>\"}}", &cfg, &err), QT_OK);
    qt_graph_attach_stats(g, s);
    qt_eval_opts eo = { 0 };
    eo.limit = 500;
    assert_int_equal(qt_evaluate(g, cfg, val, &eo, &m, &err), QT_OK);
    qt_graph_attach_stats(g, NULL);
    /* recompute relu1's float activations directly */
    const qt_tensor *y;
    const float *x = qt_dataset_images(val);
    double mx = 0, sum = 0, sum2 = 0;
    size_t zeros = 0, zq = 0, n = 0;
    qt_format f;
    qt_format_parse("ufixed<4,2>", &f, NULL);
    float *v = malloc(300 * sizeof *v);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(qt_forward(g, NULL, x + (size_t)i * 784, 1, 0, &y, &err), QT_OK);
        const float *a = qt_graph_activation(g, relu1)->data;
        memcpy(v, a, 300 * sizeof *v);
        qt_quantize(&f, v, 300, NULL);
        for (int k = 0; k < 300; k++) {
            if (a[k] > mx) mx = a[k];
            sum += a[k]; sum2 += (double)a[k] * a[k];
            zeros += a[k] == 0.0f; zq += v[k] == 0.0f; n++;
        }
    }
    free(v);
    const qt_tstats *t = qt_stats_get(s, relu1, QT_ST_ACT);
    assert_int_equal(t->count, n);
    assert_true(t->min == 0.0 && t->absmax == mx && t->max == mx);
    assert_int_equal(t->zeros, zeros);
    assert_int_equal(t->zeros_q, zq);
    assert_true(zq > zeros);                        /* small values round to 0 */
    assert_true(fabs(qt_tstats_mean(t) - sum / n) < 1e-9 * (1 + sum / n));
    assert_true(fabs(qt_tstats_sparsity(t) - (double)zeros / n) < 1e-12);
    double p99 = qt_tstats_percentile_abs(t, 99.0);
    assert_true(p99 > 0 && p99 <= mx);
    assert_true(qt_tstats_percentile_abs(t, 100.0) == mx);
    /* weights: seen once per forward, the float values of fc1 */
    const qt_tstats *w = qt_stats_get(s, fc1, QT_ST_WEIGHTS);
    assert_int_equal(w->count % (300 * 784), 0);
    assert_true(w->absmax > 0 && w->min < 0);
    json_t *j = qt_stats_to_json(s, g);
    assert_non_null(json_object_get(json_object_get(j, "relu1"), "activations"));
    json_decref(j);
    /* training: per-epoch callback with gradient statistics, then reset */
    qt_stats_reset(s);
    o.epochs = 2;
    o.stats = s;
    o.epoch_cb = on_epoch;
    o.user = g;
    epochs_seen = 0;
    assert_int_equal(qt_train(g, NULL, small, &o, NULL, &err), QT_OK);
    assert_int_equal(epochs_seen, 2);
    assert_int_equal(qt_stats_get(s, fc1, QT_ST_GRAD_WEIGHTS)->count, 0);   /* reset after */
    qt_qconfig_free(cfg);
    qt_stats_free(s);
    qt_graph_free(g);
}

/* every zoo model builds with the node names users configure, runs
 * forward and backward to finite values, and survives a checkpoint */
static void t_zoo(void **st)
{
    static const struct { const char *name; const char *nodes[4]; } z[] = {
        { "mlp", { "fc1", "relu1", "fc3", NULL } },
        { "lenet5", { "conv1", "pool1", "conv2", "fc4" } },
        { "vgg", { "conv1_1", "conv2_2", "drop1", "fc2" } },
        { "resnet", { "conv0", "res2.proj", "res3.add", "gap" } },
    };
    const float *x = qt_dataset_images(val);
    int n = 0;
    for (const char *const *p = qt_zoo_names(); *p; p++) n++;
    assert_int_equal(n, 4);
    for (int i = 0; i < 4; i++) {
        qt_graph *g, *h;
        qt_error err;
        const qt_tensor *y;
        if (qt_zoo_build(z[i].name, &g, &err)) fail_msg("%s: %s", z[i].name, err.text);
        for (int k = 0; k < 4 && z[i].nodes[k]; k++)
            if (qt_graph_find(g, z[i].nodes[k]) < 0) fail_msg("%s lacks %s", z[i].name, z[i].nodes[k]);
        int shape[3];
        qt_graph_node_shape(g, qt_graph_output(g), shape);
        assert_true(shape[0] == 10 && shape[1] == 1 && shape[2] == 1);
        assert_int_equal(qt_forward(g, NULL, x, 8, 1, &y, &err), QT_OK);
        assert_int_equal(y->size, 80);
        float *dz = calloc(80, sizeof *dz);
        qt_softmax_xent(y->data, qt_dataset_labels(val), 8, 10, dz);
        assert_int_equal(qt_backward(g, NULL, dz, &err), QT_OK);
        free(dz);
        for (int k = 0; k < 80; k++) assert_true(isfinite(y->data[k]));
        const qt_tensor *gi = qt_graph_grad(g, 0, -1);
        double s = 0;
        for (size_t k = 0; k < 8 * 784; k++) s += fabs(gi->data[k]);
        assert_true(s > 0 && isfinite(s));
        /* checkpoint round trip, inference outputs bit for bit */
        char path[] = "/tmp/qt_zoo_XXXXXX";
        close(mkstemp(path));
        assert_int_equal(qt_checkpoint_save(g, path, &err), QT_OK);
        assert_int_equal(qt_checkpoint_load(path, &h, &err), QT_OK);
        unlink(path);
        float *a = malloc(80 * sizeof *a);
        assert_int_equal(qt_forward(g, NULL, x, 8, 0, &y, &err), QT_OK);
        memcpy(a, y->data, 80 * sizeof *a);
        assert_int_equal(qt_forward(h, NULL, x, 8, 0, &y, &err), QT_OK);
        assert_memory_equal(a, y->data, 80 * sizeof *a);
        free(a);
        qt_graph_free(h);
        qt_graph_free(g);
    }
    qt_graph *g;
    qt_error err;
    assert_int_equal(qt_zoo_build("alexnet", &g, &err), QT_ENOENT);
    assert_non_null(strstr(err.text, "lenet5"));
    /* LeNet-5's multiply-accumulates per image */
    qt_zoo_build("lenet5", &g, &err);
    /* convs + pooling windows (C*H'*W'*k*k) + dense layers */
    uint64_t want = 6ull * 28 * 28 * 25 + 16ull * 10 * 10 * 150
                  + 6ull * 14 * 14 * 4 + 16ull * 5 * 5 * 4
                  + 400ull * 120 + 120ull * 84 + 84ull * 10;
    assert_int_equal(qt_graph_macs(g), want);
    qt_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_train_lowers_loss),
        cmocka_unit_test(t_deterministic),
        cmocka_unit_test(t_quantized_training),
        cmocka_unit_test(t_evaluate_options),
        cmocka_unit_test(t_checkpoint),
        cmocka_unit_test(t_committed_models),
        cmocka_unit_test(t_stats),
        cmocka_unit_test(t_zoo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
