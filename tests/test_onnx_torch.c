/*
 * test_onnx_torch.c -- models trained and exported by PyTorch
 * (experiments/onnx_torch/lenet5.py) give in qtune what they gave in
 * PyTorch: the same test accuracy within 0.05 % (5 of 10 000 images), the
 * same prediction for (nearly) every image, the same logits, and they can
 * be quantized by node name like a zoo model.
 *
 * The reference figures are experiments/results/onnx_lenet5.json, written
 * by the PyTorch script; CI needs no PyTorch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *ref;

static int setup(void **st)
{
    json_error_t je;
    (void)st;
    ref = json_load_file(QT_SOURCE_DIR "/experiments/results/onnx_lenet5.json", 0, &je);
    if (!ref) fprintf(stderr, "cannot read onnx_lenet5.json: %s\n", je.text);
    return ref ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    json_decref(ref);
    return 0;
}

static qt_graph *load(const char *file)
{
    char path[512];
    qt_graph *g = NULL;
    qt_error err;
    snprintf(path, sizeof path, "%s/experiments/models/%s", QT_SOURCE_DIR, file);
    int rc = qt_onnx_load(path, NULL, &g, &err);
    if (rc) fprintf(stderr, "%s: %s\n", path, err.text);
    assert_int_equal(rc, QT_OK);
    return g;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

/* accuracy, per-image predictions and the first logits against PyTorch */
static void check_model(const char *key, const char *file)
{
    json_t *m = json_object_get(ref, key);
    assert_non_null(m);
    const char *pred = json_string_value(json_object_get(m, "test_predictions"));
    json_t *logits = json_object_get(m, "test_logits_first32");
    int torch_correct = (int)json_integer_value(json_object_get(m, "test_correct"));
    assert_non_null(pred);
    assert_int_equal(strlen(pred), 10000);

    qt_graph *g = load(file);
    qt_dataset *test;
    qt_error err;
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err), QT_OK);
    assert_int_equal(qt_dataset_count(test), 10000);

    /* the graph's input is what the data set holds: 1x28x28 per image */
    int dims[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, 0, dims), 3);
    assert_true(dims[0] == 1 && dims[1] == 28 && dims[2] == 28);
    assert_int_equal(qt_graph_node_size(g, qt_graph_output(g)), 10);

    const float *x = qt_dataset_images(test);
    const uint8_t *lab = qt_dataset_labels(test);
    int correct = 0, differ = 0;
    double worst = 0.0;
    for (int s = 0; s < 10000; s += 500) {
        const qt_tensor *out;
        assert_int_equal(qt_forward(g, NULL, x + (size_t)s * 784, 500, 0, &out, &err), QT_OK);
        for (int i = 0; i < 500; i++) {
            const float *z = out->data + (size_t)i * 10;
            int p = argmax(z, 10);
            correct += p == lab[s + i];
            differ += p != pred[s + i] - '0';
            if (s + i < 32) {
                json_t *row = json_array_get(logits, (size_t)(s + i));
                for (int k = 0; k < 10; k++) {
                    double r = json_number_value(json_array_get(row, (size_t)k));
                    double d = fabs(z[k] - r);
                    if (d > worst) worst = d;
                }
            }
        }
    }
    fprintf(stderr, "%s: qtune %d/10000 correct, PyTorch %d; %d predictions differ; "
            "first 32 logits within %.2g\n", file, correct, torch_correct, differ, worst);
    assert_true(abs(correct - torch_correct) <= 5);       /* 0.05 % */
    assert_true(differ <= 5);
    assert_true(worst < 1e-4);

    /* qt_evaluate agrees with the hand loop */
    qt_metrics met;
    assert_int_equal(qt_evaluate(g, NULL, test, NULL, &met, &err), QT_OK);
    assert_int_equal((int)lround(met.top1 * 10000), correct);

    qt_graph_free(g);
    qt_dataset_free(test);
}

static void lenet5_matches_pytorch(void **st) { (void)st; check_model("lenet5", "lenet5_torch.onnx"); }
static void lenet5bn_matches_pytorch(void **st) { (void)st; check_model("lenet5bn", "lenet5bn_torch.onnx"); }

/* PyTorch's node names are kept, so a configuration can name them, and the
 * imported model quantizes like a zoo model: 8-bit fixed weights and
 * activations keep it close; 2-bit weights break it. */
static void quantizes_by_node_name(void **st)
{
    (void)st;
    qt_graph *g = load("lenet5_torch.onnx");
    qt_error err;
    const char *names[] = { "/conv1/Conv", "/relu1/Relu", "/pool1/MaxPool", "/conv2/Conv",
                            "/flatten/Flatten", "/fc3/Gemm", "/fc5/Gemm" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        assert_true(qt_graph_find(g, names[i]) > 0);
    assert_int_equal(qt_graph_node_op(g, qt_graph_find(g, "/conv1/Conv")), QT_OP_CONV);
    assert_int_equal(qt_graph_node_op(g, qt_graph_find(g, "/fc5/Gemm")), QT_OP_DENSE);
    /* weights came from the initializers: conv1 is 6x1x5x5 */
    qt_tensor *w = qt_graph_param(g, qt_graph_find(g, "/conv1/Conv"), 0);
    assert_non_null(w);
    assert_int_equal(w->size, 150);

    qt_dataset *val, *sub;
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_VAL, &val, &err), QT_OK);
    assert_int_equal(qt_dataset_subset(val, 0, 0, 2000, &sub, &err), QT_OK);
    qt_metrics f, q8, q2;
    qt_qconfig *c8, *c2;
    assert_int_equal(qt_qconfig_parse(g, "{\"default\":{\"weights\":\"fixed<8,6>\","
                                      "\"output\":\"fixed<8,4>\"}}", &c8, &err), QT_OK);
    assert_int_equal(qt_qconfig_parse(g, "{\"/*/Conv\":{\"weights\":\"fixed<2,1>\"},"
                                      "\"/fc*/Gemm\":{\"weights\":\"fixed<2,1>\"}}", &c2, &err), QT_OK);
    assert_int_equal(qt_evaluate(g, NULL, sub, NULL, &f, &err), QT_OK);
    assert_int_equal(qt_evaluate(g, c8, sub, NULL, &q8, &err), QT_OK);
    assert_int_equal(qt_evaluate(g, c2, sub, NULL, &q2, &err), QT_OK);
    fprintf(stderr, "lenet5_torch on 2000 val images: fp32 %.2f%%, 8-bit %.2f%%, 2-bit weights %.2f%%\n",
            100 * f.top1, 100 * q8.top1, 100 * q2.top1);
    assert_true(f.top1 > 0.88);
    assert_true(q8.top1 > f.top1 - 0.01);
    assert_true(q2.top1 < f.top1 - 0.05);
    qt_qconfig_free(c8);
    qt_qconfig_free(c2);
    qt_dataset_free(sub);
    qt_dataset_free(val);
    qt_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lenet5_matches_pytorch),
        cmocka_unit_test(lenet5bn_matches_pytorch),
        cmocka_unit_test(quantizes_by_node_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
