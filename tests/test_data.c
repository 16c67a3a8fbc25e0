/*
 * test_data.c -- IDX reading (plain and gzip), normalisation, malformed
 * files, subsets, the class count, and the Fashion-MNIST splits from the
 * Debian package.
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

static char dir[] = "/tmp/qt_test_data_XXXXXX";

static void path(char *buf, const char *name) { snprintf(buf, 256, "%s/%s", dir, name); }

/* write an IDX file: nd dims, then bytes; gz selects gzip */
static void write_idx(const char *name, int nd, const uint32_t *d, const uint8_t *bytes,
                      size_t n, int gz, size_t cut)
{
    char p[256];
    unsigned char h[20] = { 0, 0, 8, (unsigned char)nd };
    size_t hn = 4;
    path(p, name);
    for (int i = 0; i < nd; i++) {
        h[hn++] = (unsigned char)(d[i] >> 24); h[hn++] = (unsigned char)(d[i] >> 16);
        h[hn++] = (unsigned char)(d[i] >> 8); h[hn++] = (unsigned char)d[i];
    }
    size_t total = hn + n;
    unsigned char *all = malloc(total);
    memcpy(all, h, hn);
    memcpy(all + hn, bytes, n);
    if (cut) total = cut;
    if (gz) {
        gzFile f = gzopen(p, "wb");
        gzwrite(f, all, (unsigned)total);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        fwrite(all, 1, total, f);
        fclose(f);
    }
    free(all);
}

static int setup(void **st)
{
    if (!mkdtemp(dir)) return -1;
    uint8_t img[5 * 2 * 3], lab[5] = { 3, 1, 4, 1, 5 };
    for (int i = 0; i < 30; i++) img[i] = (uint8_t)(i * 8);
    uint32_t di[3] = { 5, 2, 3 }, dl[1] = { 5 }, d4[4] = { 5, 1, 2, 3 }, d2[2] = { 5, 1 };
    write_idx("img.gz", 3, di, img, 30, 1, 0);
    write_idx("img", 3, di, img, 30, 0, 0);
    write_idx("img4", 4, d4, img, 30, 0, 0);
    write_idx("lab.gz", 1, dl, lab, 5, 1, 0);
    write_idx("lab", 1, dl, lab, 5, 0, 0);
    write_idx("lab2d", 2, d2, lab, 5, 0, 0);
    uint32_t dl4[1] = { 4 };
    write_idx("lab4", 1, dl4, lab, 4, 0, 0);
    write_idx("img_trunc", 3, di, img, 30, 0, 4 + 12 + 17);
    write_idx("img_trunc.gz", 3, di, img, 30, 1, 4 + 12 + 17);
    FILE *f;
    char p[256];
    path(p, "garbage");
    f = fopen(p, "wb");
    fputs("this is not an IDX file at all", f);
    fclose(f);
    return 0;
}

static int teardown(void **st)
{
    const char *names[] = { "img.gz", "img", "img4", "lab.gz", "lab", "lab2d", "lab4",
                            "img_trunc", "img_trunc.gz", "garbage" };
    char p[256];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) { path(p, names[i]); unlink(p); }
    rmdir(dir);
    return 0;
}

static void t_load(void **st)
{
    char ip[256], lp[256];
    qt_dataset *d;
    qt_error err;
    qt_norm nm = { 1.0f / 255.0f, 0.5f, 0.25f };
    for (int gz = 0; gz < 2; gz++) {
        path(ip, gz ? "img.gz" : "img");
        path(lp, gz ? "lab.gz" : "lab");
        assert_int_equal(qt_dataset_load_idx(ip, lp, &nm, &d, &err), QT_OK);
        assert_int_equal(qt_dataset_count(d), 5);
        int s[3];
        qt_dataset_shape(d, s);
        assert_true(s[0] == 1 && s[1] == 2 && s[2] == 3);
        assert_int_equal(qt_dataset_classes(d), 6);        /* labels up to 5 */
        for (int i = 0; i < 30; i++) {
            float want = ((float)(i * 8) * (1.0f / 255.0f) - 0.5f) / 0.25f;
            assert_true(qt_dataset_images(d)[i] == want);
        }
        assert_int_equal(qt_dataset_labels(d)[2], 4);
        qt_dataset_free(d);
    }
    path(ip, "img4");
    path(lp, "lab");
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    int s[3];
    qt_dataset_shape(d, s);
    assert_true(s[0] == 1 && s[1] == 2 && s[2] == 3);
    assert_true(qt_dataset_images(d)[29] == 232.0f * (1.0f / 255.0f));   /* default: scale only */
    qt_dataset_free(d);
}

static void expect_fail(const char *img, const char *lab, int rc_want, const char *msg)
{
    char ip[256], lp[256];
    qt_dataset *d = NULL;
    qt_error err;
    if (img[0] == '/') snprintf(ip, sizeof ip, "%s", img); else path(ip, img);
    path(lp, lab);
    int rc = qt_dataset_load_idx(ip, lp, NULL, &d, &err);
    if (rc != rc_want) fail_msg("%s/%s: rc %d, want %d (%s)", img, lab, rc, rc_want, err.text);
    if (!strstr(err.text, msg)) fail_msg("%s/%s: '%s' lacks '%s'", img, lab, err.text, msg);
    assert_null(d);
}

static void t_bad(void **st)
{
    expect_fail("missing", "lab", QT_ENOENT, "missing");
    expect_fail("/usr/share/datasets/fashion-mnist/nope.gz", "lab", QT_ENOENT, "dataset-fashion-mnist");
    expect_fail("garbage", "lab", QT_ECORRUPT, "not an IDX");
    expect_fail("img_trunc", "lab", QT_ECORRUPT, "truncated");
    expect_fail("img_trunc.gz", "lab", QT_ECORRUPT, "truncated");
    expect_fail("img", "lab2d", QT_ECORRUPT, "1 dimension");
    expect_fail("lab", "lab", QT_ECORRUPT, "3 or 4");
    expect_fail("img", "lab4", QT_EINVAL, "labels");
    char ip[256], lp[256];
    qt_dataset *d;
    qt_error err;
    qt_norm bad = { 1.0f, 0.0f, 0.0f };
    path(ip, "img"); path(lp, "lab");
    assert_int_equal(qt_dataset_load_idx(ip, lp, &bad, &d, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "std"));
}

static void t_subset(void **st)
{
    char ip[256], lp[256];
    qt_dataset *d, *a, *b, *c;
    qt_error err;
    path(ip, "img"); path(lp, "lab");
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    /* seed 0 is the identity order */
    assert_int_equal(qt_dataset_subset(d, 0, 1, 3, &a, &err), QT_OK);
    assert_memory_equal(qt_dataset_images(a), qt_dataset_images(d) + 6, 3 * 6 * sizeof(float));
    qt_dataset_free(a);
    /* a seeded permutation: [0,2) and [2,5) are disjoint and cover all */
    assert_int_equal(qt_dataset_subset(d, 77, 0, 2, &a, &err), QT_OK);
    assert_int_equal(qt_dataset_subset(d, 77, 2, 3, &b, &err), QT_OK);
    assert_int_equal(qt_dataset_subset(d, 77, 0, 2, &c, &err), QT_OK);
    assert_memory_equal(qt_dataset_images(a), qt_dataset_images(c), 2 * 6 * sizeof(float));
    int seen[5] = { 0 };
    for (int k = 0; k < 5; k++) {
        const float *img = k < 2 ? qt_dataset_images(a) + k * 6 : qt_dataset_images(b) + (k - 2) * 6;
        for (int i = 0; i < 5; i++)
            if (!memcmp(img, qt_dataset_images(d) + i * 6, 6 * sizeof(float))) seen[i]++;
    }
    for (int i = 0; i < 5; i++) assert_int_equal(seen[i], 1);
    assert_int_not_equal(qt_dataset_hash(a), qt_dataset_hash(b));
    assert_int_equal(qt_dataset_hash(a), qt_dataset_hash(c));
    assert_int_equal(qt_dataset_subset(d, 1, 4, 2, &c, &err), QT_EINVAL);
    qt_dataset_free(a); qt_dataset_free(b); qt_dataset_free(c); qt_dataset_free(d);
}

/* a selection: the rows named, in that order, repeats allowed; the hash
 * follows the order; an index out of range is refused by name */
static void t_select(void **st)
{
    char ip[256], lp[256];
    qt_dataset *d, *a, *b;
    qt_error err;
    (void)st;
    path(ip, "img"); path(lp, "lab");
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    size_t idx[6] = { 4, 0, 3, 3, 1, 2 };
    assert_int_equal(qt_dataset_select(d, idx, 6, &a, &err), QT_OK);
    assert_int_equal(qt_dataset_count(a), 6);
    assert_int_equal(qt_dataset_classes(a), qt_dataset_classes(d));
    for (int i = 0; i < 6; i++) {
        assert_memory_equal(qt_dataset_images(a) + i * 6, qt_dataset_images(d) + idx[i] * 6,
                            6 * sizeof(float));
        assert_int_equal(qt_dataset_labels(a)[i], qt_dataset_labels(d)[idx[i]]);
    }
    size_t same[5] = { 0, 1, 2, 3, 4 }, swap[5] = { 1, 0, 2, 3, 4 };
    qt_dataset_free(a);
    assert_int_equal(qt_dataset_select(d, same, 5, &a, &err), QT_OK);
    assert_int_equal(qt_dataset_select(d, swap, 5, &b, &err), QT_OK);
    assert_int_equal(qt_dataset_hash(a), qt_dataset_hash(d));
    assert_int_not_equal(qt_dataset_hash(b), qt_dataset_hash(d));
    qt_dataset_free(a);
    qt_dataset_free(b);
    size_t bad[2] = { 1, 5 };
    a = (qt_dataset *)1;
    assert_int_equal(qt_dataset_select(d, bad, 2, &a, &err), QT_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err.text, "image 5"));
    qt_dataset_free(d);
}

/* the classes are the data's: the largest label + 1 (labels 0..2: 3), at
 * least 2, kept by subsets; Fashion-MNIST's 10 (t_fashion) */
static void t_classes(void **st)
{
    uint8_t img[6 * 4] = { 0 }, lab3[6] = { 0, 1, 2, 2, 1, 0 }, lab0[6] = { 0 };
    uint8_t lab11[6] = { 0, 11, 3, 3, 3, 3 };
    uint32_t di[3] = { 6, 2, 2 }, dl[1] = { 6 };
    char ip[256], lp[256];
    qt_dataset *d, *s;
    qt_error err;
    write_idx("c_img", 3, di, img, sizeof img, 0, 0);
    write_idx("c_lab3", 1, dl, lab3, 6, 0, 0);
    write_idx("c_lab0", 1, dl, lab0, 6, 1, 0);
    write_idx("c_lab11", 1, dl, lab11, 6, 0, 0);
    path(ip, "c_img");
    path(lp, "c_lab3");
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    assert_int_equal(qt_dataset_classes(d), 3);
    /* a subset keeps them, even one without label 2 */
    assert_int_equal(qt_dataset_subset(d, 0, 0, 2, &s, &err), QT_OK);
    assert_int_equal(qt_dataset_classes(s), 3);
    qt_dataset_free(s);
    qt_dataset_free(d);
    path(lp, "c_lab0");                 /* every label 0: still 2 classes */
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    assert_int_equal(qt_dataset_classes(d), 2);
    /* set to a training split's count; never at or below a label */
    assert_int_equal(qt_dataset_set_classes(d, 7, &err), QT_OK);
    assert_int_equal(qt_dataset_classes(d), 7);
    assert_int_equal(qt_dataset_set_classes(d, 1, &err), QT_EINVAL);
    assert_int_equal(qt_dataset_classes(d), 7);
    qt_dataset_free(d);
    path(lp, "c_lab3");
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    assert_int_equal(qt_dataset_set_classes(d, 2, &err), QT_EINVAL);    /* label 2 */
    assert_non_null(strstr(err.text, "labels up to 2"));
    assert_int_equal(qt_dataset_classes(d), 3);
    qt_dataset_free(d);
    path(lp, "c_lab11");                /* more than Fashion-MNIST's 10 */
    assert_int_equal(qt_dataset_load_idx(ip, lp, NULL, &d, &err), QT_OK);
    assert_int_equal(qt_dataset_classes(d), 12);
    qt_dataset_free(d);
    const char *names[] = { "c_img", "c_lab3", "c_lab0", "c_lab11" };
    for (int i = 0; i < 4; i++) { path(ip, names[i]); unlink(ip); }
}

/* the Debian package's data: sizes, the first test label, normalisation */
static void t_fashion(void **st)
{
    qt_dataset *tr, *val, *test;
    qt_error err;
    if (qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, &tr, &err) != QT_OK) fail_msg("%s", err.text);
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_VAL, &val, &err), QT_OK);
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err), QT_OK);
    assert_int_equal(qt_dataset_count(tr), 50000);
    assert_int_equal(qt_dataset_count(val), 10000);
    assert_int_equal(qt_dataset_count(test), 10000);
    assert_int_equal(qt_dataset_labels(test)[0], 9);       /* t10k's first label: ankle boot */
    assert_int_equal(qt_dataset_classes(tr), 10);
    assert_int_equal(qt_dataset_classes(val), 10);
    assert_int_equal(qt_dataset_classes(test), 10);
    int s[3];
    qt_dataset_shape(test, s);
    assert_true(s[0] == 1 && s[1] == 28 && s[2] == 28);
    double sum = 0, sum2 = 0;
    size_t n = qt_dataset_count(tr) * 784;
    for (size_t i = 0; i < n; i++) { double v = qt_dataset_images(tr)[i]; sum += v; sum2 += v * v; }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    assert_true(fabs(mean) < 0.01 && fabs(sd - 1.0) < 0.01);
    /* classes balanced-ish in the validation split (seeded, not the tail) */
    int cnt[10] = { 0 };
    for (size_t i = 0; i < 10000; i++) cnt[qt_dataset_labels(val)[i]]++;
    for (int k = 0; k < 10; k++) assert_true(cnt[k] > 850 && cnt[k] < 1150);
    qt_dataset_free(tr); qt_dataset_free(val); qt_dataset_free(test);
    /* QT_DATA_DIR elsewhere: a clear error */
    setenv("QT_DATA_DIR", "/nonexistent", 1);
    assert_int_equal(qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err), QT_ENOENT);
    assert_non_null(strstr(err.text, "/nonexistent"));
    unsetenv("QT_DATA_DIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_load),
        cmocka_unit_test(t_bad),
        cmocka_unit_test(t_subset),
        cmocka_unit_test(t_select),
        cmocka_unit_test(t_classes),
        cmocka_unit_test(t_fashion),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
