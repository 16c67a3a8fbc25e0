/*
 * data.c -- IDX data sets (gzip or plain, through zlib), normalisation,
 * seeded validation splits, subsets.
 *
 * IDX: a big-endian header of magic (0x0000 08 nd: unsigned bytes, nd
 * dimensions) and nd 32-bit sizes, then the bytes. Images are nd = 3
 * (count, rows, cols) or 4 (count, channels, rows, cols); labels nd = 1.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define FMNIST_DIR  "/usr/share/datasets/fashion-mnist"
#define FMNIST_PKG  "dataset-fashion-mnist"
#define FMNIST_CLASSES 10
#define VAL_COUNT   10000
#define VAL_SEED    0x5eed5eedull
#define MAX_ITEMS   (1u << 26)

struct qt_dataset {
    size_t   count;
    int      shape[3];       /* C, H, W */
    int      classes;
    float   *images;         /* count x per */
    uint8_t *labels;
};

/* read exactly n bytes; QT_ECORRUPT on a short read */
static int read_all(gzFile f, void *buf, size_t n, const char *path, const char *what,
                    qt_error *err)
{
    unsigned char *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return qt__fail(err, QT_ECORRUPT, -1, "%s: truncated %s (%s)", path, what,
                            zerr != Z_OK && zerr != Z_BUF_ERROR ? msg : "file ends early");
        }
        p += got;
        n -= (size_t)got;
    }
    return QT_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* open an IDX file and read its header: dims into d[], count of dims nd */
static int idx_open(const char *path, gzFile *out, uint32_t d[4], int *nd, qt_error *err)
{
    unsigned char h[4];
    gzFile f = gzopen(path, "rb");
    if (!f) {
        int e = errno;
        if (strncmp(path, FMNIST_DIR, strlen(FMNIST_DIR)) == 0)
            return qt__fail(err, QT_ENOENT, -1, "cannot open %s: %s (install the Debian "
                            "package %s)", path, strerror(e), FMNIST_PKG);
        return qt__fail(err, QT_ENOENT, -1, "cannot open %s: %s", path, strerror(e));
    }
    int rc = read_all(f, h, 4, path, "header", err);
    if (rc) { gzclose(f); return rc; }
    if (h[0] != 0 || h[1] != 0 || h[2] != 0x08 || h[3] < 1 || h[3] > 4) {
        gzclose(f);
        return qt__fail(err, QT_ECORRUPT, -1, "%s: not an IDX file of unsigned bytes "
                        "(magic %02x%02x%02x%02x)", path, h[0], h[1], h[2], h[3]);
    }
    *nd = h[3];
    for (int i = 0; i < *nd; i++) {
        unsigned char b[4];
        if ((rc = read_all(f, b, 4, path, "header", err))) { gzclose(f); return rc; }
        d[i] = be32(b);
        if (d[i] == 0 || d[i] > MAX_ITEMS) {
            gzclose(f);
            return qt__fail(err, QT_ECORRUPT, -1, "%s: dimension %d is %u", path, i, d[i]);
        }
    }
    *out = f;
    return QT_OK;
}

void qt_dataset_free(qt_dataset *d)
{
    if (!d) return;
    free(d->images);
    free(d->labels);
    free(d);
}

int qt_dataset_load_idx(const char *images, const char *labels, const qt_norm *norm,
                        qt_dataset **out, qt_error *err)
{
    gzFile fi = NULL, fl = NULL;
    uint32_t di[4], dl[4];
    int ni, nl, rc;
    qt_dataset *d = NULL;
    unsigned char *raw = NULL;
    qt_norm nm = { 1.0f / 255.0f, 0.0f, 1.0f };

    if (norm) nm = *norm;
    if (!(nm.std > 0.0f) || !isfinite(nm.scale) || !isfinite(nm.mean))
        return qt__fail(err, QT_EINVAL, -1, "normalisation: std must be > 0 and all finite");
    if ((rc = idx_open(images, &fi, di, &ni, err))) return rc;
    if ((rc = idx_open(labels, &fl, dl, &nl, err))) goto out;
    if (ni != 3 && ni != 4) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s: images need 3 or 4 dimensions, not %d", images, ni);
        goto out;
    }
    if (nl != 1) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s: labels need 1 dimension, not %d", labels, nl);
        goto out;
    }
    if (di[0] != dl[0]) {
        rc = qt__fail(err, QT_EINVAL, -1, "%u images in %s but %u labels in %s",
                      di[0], images, dl[0], labels);
        goto out;
    }
    d = calloc(1, sizeof *d);
    if (!d) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    d->count = di[0];
    d->shape[0] = ni == 4 ? (int)di[1] : 1;
    d->shape[1] = (int)di[ni - 2];
    d->shape[2] = (int)di[ni - 1];
    size_t per = (size_t)d->shape[0] * d->shape[1] * d->shape[2];
    if (per > MAX_ITEMS || d->count * per > ((size_t)1 << 34)) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s: %zu images of %zu values is too large", images, d->count, per);
        goto out;
    }
    raw = malloc(d->count * per);
    d->images = malloc(d->count * per * sizeof(float));
    d->labels = malloc(d->count);
    if (!raw || !d->images || !d->labels) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    if ((rc = read_all(fi, raw, d->count * per, images, "image data", err))) goto out;
    if ((rc = read_all(fl, d->labels, d->count, labels, "label data", err))) goto out;
    /* the classes the labels have: the largest label + 1, at least 2 (a
     * classifier of one class measures nothing); qt_dataset_fashion_mnist
     * keeps Fashion-MNIST at its 10 */
    int mx = 0;
    for (size_t i = 0; i < d->count; i++) if (d->labels[i] > mx) mx = d->labels[i];
    d->classes = mx + 1 < 2 ? 2 : mx + 1;
    for (size_t i = 0; i < d->count * per; i++)
        d->images[i] = ((float)raw[i] * nm.scale - nm.mean) / nm.std;
    rc = QT_OK;
out:
    free(raw);
    if (fi) gzclose(fi);
    if (fl) gzclose(fl);
    if (rc) qt_dataset_free(d);
    else *out = d;
    return rc;
}

/* a seeded permutation of 0..n-1 (Fisher-Yates with a counter-based RNG) */
static size_t *permutation(size_t n, uint64_t seed)
{
    size_t *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) p[i] = i;
    if (seed == 0) return p;
    for (size_t i = n; i > 1; i--) {
        uint64_t r = ((uint64_t)qt_rand32(seed, 0x9e37, i) << 32) | qt_rand32(seed, 0x79b9, i);
        size_t j = (size_t)(r % i), t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    return p;
}

int qt_dataset_subset(const qt_dataset *d, uint64_t seed, size_t start, size_t count,
                      qt_dataset **out, qt_error *err)
{
    if (start > d->count || count > d->count - start)
        return qt__fail(err, QT_EINVAL, -1, "subset [%zu, %zu) of a data set of %zu",
                        start, start + count, d->count);
    size_t *p = permutation(d->count, seed);
    if (!p) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    int rc = qt_dataset_select(d, p + start, count, out, err);
    free(p);
    return rc;
}

int qt_dataset_select(const qt_dataset *d, const size_t *idx, size_t count, qt_dataset **out,
                      qt_error *err)
{
    size_t per = (size_t)d->shape[0] * d->shape[1] * d->shape[2];
    *out = NULL;
    for (size_t i = 0; i < count; i++)
        if (idx[i] >= d->count)
            return qt__fail(err, QT_EINVAL, -1, "image %zu of a data set of %zu", idx[i],
                            d->count);
    qt_dataset *s = calloc(1, sizeof *s);
    if (s) {
        s->images = malloc((count ? count : 1) * per * sizeof(float));
        s->labels = malloc(count ? count : 1);
    }
    if (!s || !s->images || !s->labels) {
        qt_dataset_free(s);
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    s->count = count;
    memcpy(s->shape, d->shape, sizeof s->shape);
    s->classes = d->classes;
    for (size_t i = 0; i < count; i++) {
        memcpy(s->images + i * per, d->images + idx[i] * per, per * sizeof(float));
        s->labels[i] = d->labels[idx[i]];
    }
    *out = s;
    return QT_OK;
}

int qt_dataset_fashion_mnist(qt_split split, qt_dataset **out, qt_error *err)
{
    const char *dir = getenv("QT_DATA_DIR");
    char ip[512], lp[512];
    qt_norm nm = { 1.0f / 255.0f, 0.2860f, 0.3530f };
    qt_dataset *all;
    int rc;
    const char *pre = split == QT_SPLIT_TEST ? "t10k" : "train";
    if (!dir || !*dir) dir = FMNIST_DIR;
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, pre);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, pre);
    if ((rc = qt_dataset_load_idx(ip, lp, &nm, &all, err))) return rc;
    if (all->classes < FMNIST_CLASSES) all->classes = FMNIST_CLASSES;
    if (split == QT_SPLIT_TEST || split == QT_SPLIT_FULLTRAIN) { *out = all; return QT_OK; }
    if (all->count <= VAL_COUNT) {
        qt_dataset_free(all);
        return qt__fail(err, QT_ECORRUPT, -1, "%s holds too few images for a validation split", ip);
    }
    size_t ntrain = all->count - VAL_COUNT;
    rc = split == QT_SPLIT_VAL
        ? qt_dataset_subset(all, VAL_SEED, ntrain, VAL_COUNT, out, err)
        : qt_dataset_subset(all, VAL_SEED, 0, ntrain, out, err);
    qt_dataset_free(all);
    return rc;
}

size_t qt_dataset_count(const qt_dataset *d) { return d->count; }
void qt_dataset_shape(const qt_dataset *d, int shape[3]) { memcpy(shape, d->shape, sizeof d->shape); }
int qt_dataset_classes(const qt_dataset *d) { return d->classes; }

int qt_dataset_set_classes(qt_dataset *d, int classes, qt_error *err)
{
    int mx = 0;
    for (size_t i = 0; i < d->count; i++) if (d->labels[i] > mx) mx = d->labels[i];
    if (classes <= mx || classes < 2 || classes > 256)
        return qt__fail(err, QT_EINVAL, -1, "%d classes for labels up to %d", classes, mx);
    d->classes = classes;
    return QT_OK;
}
const float *qt_dataset_images(const qt_dataset *d) { return d->images; }
const uint8_t *qt_dataset_labels(const qt_dataset *d) { return d->labels; }

uint64_t qt_dataset_hash(const qt_dataset *d)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t per = (size_t)d->shape[0] * d->shape[1] * d->shape[2];
    const unsigned char *p = (const unsigned char *)d->images;
    for (size_t i = 0; i < d->count * per * sizeof(float); i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    for (size_t i = 0; i < d->count; i++) { h ^= d->labels[i]; h *= 0x100000001b3ull; }
    for (int i = 0; i < 3; i++) { h ^= (uint64_t)d->shape[i]; h *= 0x100000001b3ull; }
    return h;
}
