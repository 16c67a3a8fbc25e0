/*
 * ckpt.c -- checkpoint files.
 *
 * Format (all integers little-endian, floats IEEE binary32 LE):
 *   "QTCK"            magic
 *   u32 version       2 (version 1 is still read)
 *   u32 nodes, u32 output
 *   per node:         u8 name length, name bytes, u32 op, u32 inputs,
 *                     u32 input ids..., attributes (version 2: u32 count,
 *                     that many i32, u32 count, that many f32, in the
 *                     order of attr_ints/attr_floats; a reader takes the
 *                     ones it knows and zero for the rest; version 1: 17
 *                     i32 then 6 f32, read_attr_v1), then for each of the four
 *                     parameter slots (weights, bias, running mean,
 *                     running variance): u32 count, count f32
 *   u32 crc32         zlib CRC-32 of every byte before it
 * The graph is rebuilt through qt_graph_add, so shapes are checked again
 * and a parameter count that does not match its layer is an error.
 * Files are written to a temporary name and renamed, so a crash never
 * leaves half a checkpoint under the real name.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define CK_VERSION 2
#define CK_MAX (1ull << 31)

typedef struct buf { unsigned char *p; size_t n, cap; int oom; } buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put32(buf *b, uint32_t v)
{
    unsigned char x[4] = { (unsigned char)v, (unsigned char)(v >> 8),
                           (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
    put(b, x, 4);
}

static void putf(buf *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put32(b, v);
}

/* the attributes in file order (version 2); append only */
static int attr_ints(qt_attr *a, int **v)
{
    int n = 0;
    for (int i = 0; i < 3; i++) v[n++] = &a->kernel[i];
    for (int i = 0; i < 3; i++) v[n++] = &a->stride[i];
    for (int i = 0; i < 6; i++) v[n++] = &a->pad[i];
    for (int i = 0; i < 3; i++) v[n++] = &a->dilation[i];
    v[n++] = &a->groups; v[n++] = &a->out; v[n++] = &a->bias;
    v[n++] = &a->ceil_mode; v[n++] = &a->count_pad; v[n++] = &a->axis;
    v[n++] = &a->mode; v[n++] = &a->rank;
    for (int i = 0; i < QT_MAX_RANK; i++) v[n++] = &a->shape[i];
    for (int i = 0; i < QT_MAX_RANK; i++) v[n++] = &a->perm[i];
    for (int i = 0; i < 2 * QT_MAX_RANK; i++) v[n++] = &a->pads[i];
    return n;
}

static int attr_floats(qt_attr *a, float **v)
{
    int n = 0;
    v[n++] = &a->alpha; v[n++] = &a->lo; v[n++] = &a->hi; v[n++] = &a->eps;
    v[n++] = &a->momentum; v[n++] = &a->value;
    return n;
}

#define ATTR_MAX 128

static void write_attr(buf *b, const qt_attr *ac)
{
    qt_attr a = *ac;
    int *iv[ATTR_MAX];
    float *fv[ATTR_MAX];
    int ni = attr_ints(&a, iv), nf = attr_floats(&a, fv);
    put32(b, (uint32_t)ni);
    for (int i = 0; i < ni; i++) put32(b, (uint32_t)*iv[i]);
    put32(b, (uint32_t)nf);
    for (int i = 0; i < nf; i++) putf(b, *fv[i]);
}

int qt_checkpoint_save(const qt_graph *g, const char *path, qt_error *err)
{
    buf b = { 0 };
    char tmp[4096];
    FILE *f;
    put(&b, "QTCK", 4);
    put32(&b, CK_VERSION);
    put32(&b, (uint32_t)g->n);
    put32(&b, (uint32_t)g->output);
    for (int i = 0; i < g->n; i++) {
        const qt_node *n = &g->nodes[i];
        unsigned char len = (unsigned char)strlen(n->name);
        put(&b, &len, 1);
        put(&b, n->name, len);
        put32(&b, (uint32_t)n->op);
        put32(&b, (uint32_t)n->n_in);
        for (int k = 0; k < n->n_in; k++) put32(&b, (uint32_t)n->in[k]);
        write_attr(&b, &n->a);
        for (int k = 0; k < QT_P_COUNT; k++) {
            put32(&b, (uint32_t)n->p[k].size);
            for (size_t e = 0; e < n->p[k].size; e++) putf(&b, n->p[k].data[e]);
        }
    }
    put32(&b, (uint32_t)crc32(0L, b.p, (uInt)b.n));
    if (b.oom) { free(b.p); return qt__fail(err, QT_ENOMEM, -1, "out of memory"); }
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(b.p);
        return qt__fail(err, QT_EINVAL, -1, "checkpoint path too long");
    }
    f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(b.p);
        return qt__fail(err, e == ENOSPC ? QT_EFULL : QT_EIO, -1, "cannot write %s: %s", tmp, strerror(e));
    }
    size_t w = fwrite(b.p, 1, b.n, f);
    int bad = w != b.n, e = errno;
    if (fflush(f) != 0 && !bad) { bad = 1; e = errno; }
    if (fclose(f) != 0 && !bad) { bad = 1; e = errno; }
    free(b.p);
    if (bad || rename(tmp, path) != 0) {
        if (!bad) e = errno;
        remove(tmp);
        return qt__fail(err, e == ENOSPC ? QT_EFULL : QT_EIO, -1, "cannot write %s: %s", path, strerror(e));
    }
    return QT_OK;
}

/* ---- reading, with a bounds-checked cursor ---- */

typedef struct rd { const unsigned char *p; size_t n, at; int bad; } rd;

static uint32_t get32(rd *r)
{
    if (r->bad || r->n - r->at < 4) { r->bad = 1; return 0; }
    const unsigned char *x = r->p + r->at;
    r->at += 4;
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static float getf(rd *r)
{
    uint32_t v = get32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static void read_attr_v1(rd *r, qt_attr *a, int is_input)
{
    int32_t iv[17];
    for (int i = 0; i < 17; i++) iv[i] = (int32_t)get32(r);
    a->kernel[0] = iv[0]; a->kernel[1] = iv[1]; a->stride[0] = iv[2]; a->stride[1] = iv[3];
    a->pad[0] = iv[4]; a->pad[1] = iv[5]; a->pad[2] = iv[6]; a->pad[3] = iv[7];
    a->dilation[0] = iv[8]; a->dilation[1] = iv[9]; a->groups = iv[10]; a->out = iv[11];
    a->bias = iv[12]; a->ceil_mode = iv[13]; a->count_pad = iv[14];
    a->shape[0] = iv[15]; a->shape[1] = iv[16];
    a->alpha = getf(r); a->lo = getf(r); a->hi = getf(r); a->eps = getf(r);
    a->momentum = getf(r);
    a->shape[2] = (int)getf(r);
    if (is_input) a->rank = 3;      /* version 1 inputs were C,H,W */
}

static void read_attr_v2(rd *r, qt_attr *a)
{
    int *iv[ATTR_MAX];
    float *fv[ATTR_MAX];
    int ni = attr_ints(a, iv), nf = attr_floats(a, fv);
    uint32_t n = get32(r);
    if (n > 4096) { r->bad = 1; return; }
    for (uint32_t i = 0; i < n; i++) {
        int32_t v = (int32_t)get32(r);
        if ((int)i < ni) *iv[i] = v;
    }
    n = get32(r);
    if (n > 4096) { r->bad = 1; return; }
    for (uint32_t i = 0; i < n; i++) {
        float v = getf(r);
        if ((int)i < nf) *fv[i] = v;
    }
}

static int load_bytes(const char *path, unsigned char **out, size_t *n, qt_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qt__fail(err, QT_ENOENT, -1, "cannot open %s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return qt__fail(err, QT_EIO, -1, "%s: cannot seek", path); }
    long len = ftell(f);
    if (len < 0 || (unsigned long)len > CK_MAX) {
        fclose(f);
        return qt__fail(err, QT_ECORRUPT, -1, "%s: size %ld is not a checkpoint's", path, len);
    }
    rewind(f);
    unsigned char *p = malloc(len ? (size_t)len : 1);
    if (!p) { fclose(f); return qt__fail(err, QT_ENOMEM, -1, "out of memory"); }
    if (fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p); fclose(f);
        return qt__fail(err, QT_EIO, -1, "%s: read error", path);
    }
    fclose(f);
    *out = p;
    *n = (size_t)len;
    return QT_OK;
}

int qt_checkpoint_load(const char *path, qt_graph **out, qt_error *err)
{
    unsigned char *p = NULL;
    size_t n = 0;
    int rc = load_bytes(path, &p, &n, err);
    qt_graph *g = NULL;
    if (rc) return rc;
    if (n < 20 || memcmp(p, "QTCK", 4) != 0) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s is not a qtune checkpoint (bad magic)", path);
        goto out;
    }
    rd r = { p, n - 4, 4, 0 };
    uint32_t version = get32(&r);
    if (version > CK_VERSION || version == 0) {
        rc = qt__fail(err, QT_ENOTSUP, -1, "%s: checkpoint version %u; this qtune reads "
                      "version %d (written by a newer qtune?)", path, version, CK_VERSION);
        goto out;
    }
    rd tail = { p, n, n - 4, 0 };
    uint32_t want = get32(&tail), have = (uint32_t)crc32(0L, p, (uInt)(n - 4));
    if (want != have) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s: checksum mismatch (truncated or corrupted "
                      "file: stored %08x, computed %08x)", path, want, have);
        goto out;
    }
    uint32_t nodes = get32(&r), output = get32(&r);
    if (r.bad || nodes == 0 || nodes > 100000 || output >= nodes) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s: bad header (%u nodes, output %u)", path, nodes, output);
        goto out;
    }
    g = qt_graph_new();
    if (!g) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    for (uint32_t i = 0; i < nodes; i++) {
        char name[QT_NAME_MAX];
        int in[QT_MAX_INPUTS];
        qt_attr a;
        memset(&a, 0, sizeof a);
        if (r.bad || r.at >= r.n) { r.bad = 1; break; }
        unsigned len = r.p[r.at++];
        if (len == 0 || len >= QT_NAME_MAX || r.n - r.at < len) { r.bad = 1; break; }
        memcpy(name, r.p + r.at, len);
        name[len] = 0;
        r.at += len;
        uint32_t op = get32(&r), nin = get32(&r);
        if (r.bad || nin > QT_MAX_INPUTS) { r.bad = 1; break; }
        for (uint32_t k = 0; k < nin; k++) in[k] = (int)get32(&r);
        if (version == 1) read_attr_v1(&r, &a, op == QT_OP_INPUT);
        else read_attr_v2(&r, &a);
        if (r.bad) break;
        qt_error ne;
        int id;
        if (i == 0 && op != QT_OP_INPUT)
            id = qt__fail(&ne, QT_ECORRUPT, -1, "the first node is not the input");
        else if (i == 0)
            id = qt_graph_input_nd(g, name, a.rank, a.shape, &ne);
        else
            id = qt_graph_add(g, (qt_op)op, name, in, (int)nin, &a, &ne);
        if (id < 0) {
            rc = qt__fail(err, QT_ECORRUPT, -1, "%s: node %u: %.150s", path, i, ne.text);
            goto out;
        }
        for (int k = 0; k < QT_P_COUNT; k++) {
            uint32_t cnt = get32(&r);
            qt_tensor *t = &g->nodes[id].p[k];
            if (r.bad) break;
            if (cnt != t->size) {
                rc = qt__fail(err, QT_ECORRUPT, -1, "%s: node '%s' parameter %d holds %u values, "
                              "its layer needs %zu", path, name, k, cnt, t->size);
                goto out;
            }
            for (uint32_t e = 0; e < cnt; e++) t->data[e] = getf(&r);
        }
    }
    if (r.bad || r.at != r.n) {
        rc = qt__fail(err, QT_ECORRUPT, -1, "%s: malformed checkpoint body", path);
        goto out;
    }
    g->output = (int)output;
    *out = g;
    g = NULL;
    rc = QT_OK;
out:
    qt_graph_free(g);
    free(p);
    return rc;
}
