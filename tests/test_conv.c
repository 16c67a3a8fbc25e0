/*
 * test_conv.c -- conv2d (engine/ops_conv.c) against independent references:
 *   - forward: a direct 7-loop convolution in double, on many random and
 *     hand-picked configurations (strides, asymmetric padding, dilation,
 *     groups, depthwise, bias, batches that span several chunks);
 *   - backward: central finite differences of that reference, and a direct
 *     double adjoint (itself checked against the differences);
 *   - intrinsic EACH and FINAL: scalar references applying qt_quantize1,
 *     qt_mul and qt_add in the documented order with the documented random
 *     words (EACH's operands rounded to nearest-even when the format is
 *     stochastic), compared bit for bit;
 *   - shape errors, MAC counts, parameter shapes;
 *   - determinism across OpenMP (and OpenBLAS) thread counts.
 * Only the public API is used. The stochastic-rounding stream of the
 * intrinsic point mirrors exec.c: (node << 8) ^ QT_QP_INTRINSIC.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "engine.h"
#include "../engine/internal.h"   /* qt__intr_force_ref, qt__conv_force, qt__conv_isa: the
                                     fast paths against the references */

/* ------------------------------------------------------------------------ */
/* Configurations and random data                                            */
/* ------------------------------------------------------------------------ */

typedef struct cc {
    int N, C, H, W;
    int kh, kw, sh, sw;       /* stride 0: 1 */
    int pt, pl, pb, pr;
    int dh, dw;               /* 0: 1 */
    int groups, out, bias;    /* groups 0: 1 */
} cc;

static int one(int v) { return v ? v : 1; }

static int out_h(const cc *k) { return (k->H + k->pt + k->pb - one(k->dh) * (k->kh - 1) - 1) / one(k->sh) + 1; }
static int out_w(const cc *k) { return (k->W + k->pl + k->pr - one(k->dw) * (k->kw - 1) - 1) / one(k->sw) + 1; }
static int valid(const cc *k)
{
    return k->H + k->pt + k->pb - one(k->dh) * (k->kh - 1) >= 1
        && k->W + k->pl + k->pr - one(k->dw) * (k->kw - 1) >= 1;
}
static size_t taps(const cc *k) { return (size_t)(k->C / one(k->groups)) * k->kh * k->kw; }
static size_t xsize(const cc *k) { return (size_t)k->N * k->C * k->H * k->W; }
static size_t ysize(const cc *k) { return (size_t)k->N * k->out * out_h(k) * out_w(k); }
static size_t wsize(const cc *k) { return (size_t)k->out * taps(k); }

static void describe(const cc *k, char *buf, size_t n)
{
    snprintf(buf, n, "N%d C%d %dx%d k%dx%d s%dx%d p%d,%d,%d,%d d%dx%d g%d o%d b%d",
             k->N, k->C, k->H, k->W, k->kh, k->kw, k->sh, k->sw, k->pt, k->pl, k->pb,
             k->pr, k->dh, k->dw, k->groups, k->out, k->bias);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rng_int(uint64_t *s, int lo, int hi) { return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1)); }
static float rng_unif(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next(s) >> 11) * 0x1p-53);
}
static void fill(uint64_t *s, float *v, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) v[i] = rng_unif(s, lo, hi);
}

/* a random valid configuration */
static void random_cc(uint64_t *s, cc *k, int N)
{
    do {
        memset(k, 0, sizeof *k);
        k->N = N;
        k->C = rng_int(s, 1, 7);
        int choice = rng_int(s, 0, 3);
        k->groups = choice == 0 ? 1 : choice == 1 ? (k->C % 2 ? 1 : 2)
                  : choice == 2 ? (k->C % 3 ? 1 : 3) : k->C;
        k->out = k->groups * rng_int(s, 1, choice == 3 ? 2 : 3);
        k->H = rng_int(s, 1, 13); k->W = rng_int(s, 1, 13);
        static const int ks[][2] = { {1,1}, {3,3}, {5,5}, {2,3}, {3,2}, {1,4}, {4,1} };
        int kc = rng_int(s, 0, 6);
        k->kh = ks[kc][0]; k->kw = ks[kc][1];
        k->sh = rng_int(s, 1, 3); k->sw = rng_int(s, 1, 3);
        k->pt = rng_int(s, 0, 2); k->pl = rng_int(s, 0, 2);
        k->pb = rng_int(s, 0, 2); k->pr = rng_int(s, 0, 2);
        k->dh = rng_int(s, 1, 3); k->dw = rng_int(s, 1, 3);
        k->bias = rng_int(s, 0, 1);
    } while (!valid(k));
}

/* ------------------------------------------------------------------------ */
/* Double references                                                         */
/* ------------------------------------------------------------------------ */

/* y = conv(x, w) + b; mag (optional) = sum of |terms| per output */
static void ref_forward(const cc *k, const double *x, const double *w, const double *b,
                        double *y, double *mag)
{
    int G = one(k->groups), Cg = k->C / G, Og = k->out / G, Ho = out_h(k), Wo = out_w(k);
    for (int s = 0; s < k->N; s++)
        for (int co = 0; co < k->out; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    int g = co / Og;
                    double sum = b ? b[co] : 0.0, m = b ? fabs(b[co]) : 0.0;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int ky = 0; ky < k->kh; ky++)
                            for (int kx = 0; kx < k->kw; kx++) {
                                int iy = oy * one(k->sh) - k->pt + ky * one(k->dh);
                                int ix = ox * one(k->sw) - k->pl + kx * one(k->dw);
                                if (iy < 0 || iy >= k->H || ix < 0 || ix >= k->W) continue;
                                double t = w[(((size_t)co * Cg + ci) * k->kh + ky) * k->kw + kx]
                                         * x[(((size_t)s * k->C + g * Cg + ci) * k->H + iy) * k->W + ix];
                                sum += t;
                                m += fabs(t);
                            }
                    size_t o = (((size_t)s * k->out + co) * Ho + oy) * Wo + ox;
                    y[o] = sum;
                    if (mag) mag[o] = m;
                }
}

/* the adjoint, written independently: dx, dw, db from dy (overwritten) */
static void ref_backward(const cc *k, const double *x, const double *w, const double *dy,
                         double *dx, double *dw, double *db)
{
    int G = one(k->groups), Cg = k->C / G, Og = k->out / G, Ho = out_h(k), Wo = out_w(k);
    memset(dx, 0, xsize(k) * sizeof *dx);
    memset(dw, 0, wsize(k) * sizeof *dw);
    if (db) memset(db, 0, (size_t)k->out * sizeof *db);
    for (int s = 0; s < k->N; s++)
        for (int co = 0; co < k->out; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double d = dy[(((size_t)s * k->out + co) * Ho + oy) * Wo + ox];
                    if (db) db[co] += d;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int ky = 0; ky < k->kh; ky++)
                            for (int kx = 0; kx < k->kw; kx++) {
                                int iy = oy * one(k->sh) - k->pt + ky * one(k->dh);
                                int ix = ox * one(k->sw) - k->pl + kx * one(k->dw);
                                if (iy < 0 || iy >= k->H || ix < 0 || ix >= k->W) continue;
                                size_t wi = (((size_t)co * Cg + ci) * k->kh + ky) * k->kw + kx;
                                size_t xi = (((size_t)s * k->C + (co / Og) * Cg + ci) * k->H + iy) * k->W + ix;
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                            }
                }
}

static double *to_double(const float *v, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) d[i] = v[i];
    return d;
}

/* ------------------------------------------------------------------------ */
/* Graphs                                                                    */
/* ------------------------------------------------------------------------ */

static void set_attr(const cc *k, qt_attr *a)
{
    memset(a, 0, sizeof *a);
    a->kernel[0] = k->kh; a->kernel[1] = k->kw;
    a->stride[0] = k->sh; a->stride[1] = k->sw;
    a->pad[0] = k->pt; a->pad[1] = k->pl; a->pad[2] = k->pb; a->pad[3] = k->pr;
    a->dilation[0] = k->dh; a->dilation[1] = k->dw;
    a->groups = k->groups; a->out = k->out; a->bias = k->bias;
}

typedef struct net {
    qt_graph *g;
    int in, cv;
    float *w, *b;     /* the parameters (borrowed) */
} net;

/* input "x" and one conv "conv1" with random parameters from *s */
static void build(const cc *k, uint64_t *s, net *n)
{
    qt_error err;
    qt_attr a;
    char d[160];
    set_attr(k, &a);
    n->g = qt_graph_new();
    assert_non_null(n->g);
    n->in = qt_graph_input(n->g, "x", k->C, k->H, k->W, &err);
    assert_int_equal(n->in, 0);
    n->cv = qt_graph_add(n->g, QT_OP_CONV, "conv1", &n->in, 1, &a, &err);
    if (n->cv < 0) {
        describe(k, d, sizeof d);
        fail_msg("%s: %s", d, err.text);
    }
    qt_tensor *W = qt_graph_param(n->g, n->cv, 0), *B = qt_graph_param(n->g, n->cv, 1);
    assert_non_null(W);
    assert_int_equal(W->size, wsize(k));
    n->w = W->data;
    fill(s, n->w, W->size, -1.0f, 1.0f);
    if (k->bias) {
        assert_non_null(B);
        assert_int_equal(B->size, (size_t)k->out);
        n->b = B->data;
        fill(s, n->b, B->size, -1.0f, 1.0f);
    } else {
        assert_null(B);
        n->b = NULL;
    }
    int shape[3];
    qt_graph_node_shape(n->g, n->cv, shape);
    assert_int_equal(shape[0], k->out);
    assert_int_equal(shape[1], out_h(k));
    assert_int_equal(shape[2], out_w(k));
}

static const float *run_forward(net *n, const qt_qconfig *cfg, const float *x, int N)
{
    const qt_tensor *y;
    qt_error err;
    int rc = qt_forward(n->g, cfg, x, N, 0, &y, &err);
    if (rc) fail_msg("qt_forward: %s", err.text);
    return y->data;
}

static void run_backward(net *n, const qt_qconfig *cfg, const float *dy)
{
    qt_error err;
    int rc = qt_backward(n->g, cfg, dy, &err);
    if (rc) fail_msg("qt_backward: %s", err.text);
}

/* ------------------------------------------------------------------------ */
/* 1. Forward against the double reference                                  */
/* ------------------------------------------------------------------------ */

/* |got - ref| <= 2e-6 sqrt(K) (1 + sum|terms|): ~30x the typical float32
 * rounding of a K-term dot product; any wrong or missing tap is far above */
static void check_forward(const cc *k, uint64_t seed)
{
    uint64_t s = seed;
    net n;
    char d[160];
    describe(k, d, sizeof d);
    build(k, &s, &n);
    size_t nx = xsize(k), ny = ysize(k);
    float *x = malloc(nx * sizeof *x);
    assert_non_null(x);
    fill(&s, x, nx, -1.0f, 1.0f);
    double *xd = to_double(x, nx), *wd = to_double(n.w, wsize(k));
    double *bd = k->bias ? to_double(n.b, (size_t)k->out) : NULL;
    double *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
    assert_non_null(ref); assert_non_null(mag);
    ref_forward(k, xd, wd, bd, ref, mag);
    const float *y = run_forward(&n, NULL, x, k->N);
    double K = (double)taps(k);
    for (size_t i = 0; i < ny; i++) {
        double tol = 2e-6 * sqrt(K) * (1.0 + mag[i]);
        if (!(fabs(y[i] - ref[i]) <= tol))
            fail_msg("%s: y[%zu] = %.9g, reference %.9g (tol %.3g)", d, i, (double)y[i], ref[i], tol);
    }
    free(x); free(xd); free(wd); free(bd); free(ref); free(mag);
    qt_graph_free(n.g);
}

static const cc fixed_cases[] = {
    /*  N  C   H   W  kh kw sh sw pt pl pb pr dh dw  g  out b */
    {  1, 1, 28, 28, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1,  6, 1 },   /* lenet conv1 */
    {  5, 6, 14, 14, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1, 16, 1 },   /* lenet conv2 */
    {  5, 3,  9, 11, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1,  5, 0 },   /* 1x1 */
    {  1, 5, 10,  7, 1, 1, 2, 3, 1, 0, 2, 1, 1, 1, 1,  7, 1 },   /* strided 1x1 with padding */
    {  5, 3,  8,  9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,  5, 1 },
    {  1, 4,  9,  9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1,  6, 0 },
    {  5, 4, 11, 10, 3, 3, 3, 3, 0, 2, 1, 0, 1, 1, 1,  3, 1 },   /* stride 3, asymmetric pad */
    {  1, 2,  7,  9, 2, 3, 1, 2, 0, 1, 1, 0, 1, 1, 1,  5, 1 },   /* non-square kernel */
    {  5, 3, 10, 12, 3, 2, 2, 1, 2, 0, 0, 1, 2, 3, 1,  4, 0 },   /* dilation 2x3 */
    {  1, 3, 13, 13, 3, 3, 1, 1, 3, 3, 3, 3, 3, 3, 1,  2, 1 },   /* dilation 3 */
    {  5, 4,  8,  8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2,  6, 1 },   /* groups 2 */
    {  1, 6,  9,  7, 5, 5, 2, 1, 2, 2, 1, 2, 1, 1, 3,  3, 0 },   /* groups 3, Og 1 */
    {  5, 5,  9,  9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5,  5, 1 },   /* depthwise */
    {  1, 7,  6, 11, 3, 3, 2, 2, 1, 0, 1, 2, 2, 1, 7,  7, 0 },   /* depthwise, strided, dilated */
    {  5, 4,  5,  5, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1,  3, 1 },   /* kernel = input: 1x1 output */
    {  1, 2,  3,  4, 7, 7, 1, 1, 2, 2, 2, 1, 1, 1, 1,  3, 1 },   /* kernel > input, padding saves */
    {  5, 3,  1,  1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,  2, 1 },   /* 1x1 input */
    {  5, 3,  8,  8, 3, 3, 0, 0, 1, 1, 1, 1, 0, 0, 0,  4, 1 },   /* stride/dilation/groups 0 = 1 */
    {  1, 4,  9,  9, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 2,  6, 0 },
    {  5, 8,  6,  6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 4,  8, 1 },   /* grouped 1x1 */
};

static void t_forward_fixed(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof fixed_cases / sizeof *fixed_cases; i++)
        check_forward(&fixed_cases[i], 100 + i);
}

static void t_forward_random(void **st)
{
    (void)st;
    uint64_t s = 42;
    for (int i = 0; i < 40; i++) {
        cc k;
        random_cc(&s, &k, i % 2 ? 5 : 1);
        check_forward(&k, 1000 + (uint64_t)i);
    }
}

/* batches larger than one chunk of the column buffer (2^20 floats in
 * ops_conv.c): 400 rows x 1024 positions gives chunks of 2 samples, so 5
 * samples take chunks of 2, 2 and 1 (the single-sample path) */
static const cc big_cases[] = {
    {  5, 16, 32, 32, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 8, 1 },
    {  5, 16, 32, 32, 5, 5, 1, 1, 2, 1, 2, 3, 1, 1, 4, 8, 0 },
};

static void t_forward_chunks(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof big_cases / sizeof *big_cases; i++)
        check_forward(&big_cases[i], 300 + i);
}

/* ------------------------------------------------------------------------ */
/* 2. Backward                                                               */
/* ------------------------------------------------------------------------ */

static double loss_of(const cc *k, const double *x, const double *w, const double *b,
                      const double *R, double *y)
{
    double L = 0.0;
    ref_forward(k, x, w, b, y, NULL);
    for (size_t i = 0; i < ysize(k); i++) L += y[i] * R[i];
    return L;
}

/* central differences of loss = sum(y * R) with respect to v[0..n) */
static void fd_grad(const cc *k, double *x, double *w, double *b, const double *R,
                    double *v, size_t n, double *grad, double *ybuf)
{
    const double h = 1e-3;
    for (size_t i = 0; i < n; i++) {
        double v0 = v[i];
        v[i] = v0 + h;
        double lp = loss_of(k, x, w, b, R, ybuf);
        v[i] = v0 - h;
        double lm = loss_of(k, x, w, b, R, ybuf);
        v[i] = v0;
        grad[i] = (lp - lm) / (2 * h);
    }
}

/* float32 gradient g against reference r summed from about `terms` terms
 * of magnitude <= 1 */
static void check_grad(const char *what, const char *d, const float *g, const double *r,
                       size_t n, double terms)
{
    for (size_t i = 0; i < n; i++) {
        double tol = 1e-5 * sqrt(terms) * (1.0 + fabs(r[i]));
        if (!(fabs(g[i] - r[i]) <= tol))
            fail_msg("%s: %s[%zu] = %.9g, reference %.9g (tol %.3g)", d, what, i,
                     (double)g[i], r[i], tol);
    }
}

/* our backward against finite differences (fd) or the direct adjoint */
static void check_backward(const cc *k, uint64_t seed, int fd)
{
    uint64_t s = seed;
    net n;
    char d[160];
    describe(k, d, sizeof d);
    build(k, &s, &n);
    size_t nx = xsize(k), ny = ysize(k), nw = wsize(k), nb = (size_t)k->out;
    float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
    assert_non_null(x); assert_non_null(dy);
    fill(&s, x, nx, -1.0f, 1.0f);
    fill(&s, dy, ny, -1.0f, 1.0f);
    double *xd = to_double(x, nx), *wd = to_double(n.w, nw), *R = to_double(dy, ny);
    double *bd = k->bias ? to_double(n.b, nb) : NULL;
    double *gx = malloc(nx * sizeof *gx), *gw = malloc(nw * sizeof *gw), *gb = malloc(nb * sizeof *gb);
    double *ax = malloc(nx * sizeof *ax), *aw = malloc(nw * sizeof *aw), *ab = malloc(nb * sizeof *ab);
    double *ybuf = malloc(ny * sizeof *ybuf);
    assert_non_null(gx); assert_non_null(gw); assert_non_null(gb);
    assert_non_null(ax); assert_non_null(aw); assert_non_null(ab); assert_non_null(ybuf);
    ref_backward(k, xd, wd, R, ax, aw, k->bias ? ab : NULL);
    if (fd) {
        fd_grad(k, xd, wd, bd, R, xd, nx, gx, ybuf);
        fd_grad(k, xd, wd, bd, R, wd, nw, gw, ybuf);
        if (k->bias) fd_grad(k, xd, wd, bd, R, bd, nb, gb, ybuf);
        /* the direct adjoint agrees with the differences */
        for (size_t i = 0; i < nx; i++) assert_true(fabs(ax[i] - gx[i]) < 1e-7 * (1 + fabs(gx[i])));
        for (size_t i = 0; i < nw; i++) assert_true(fabs(aw[i] - gw[i]) < 1e-7 * (1 + fabs(gw[i])));
        if (k->bias)
            for (size_t i = 0; i < nb; i++) assert_true(fabs(ab[i] - gb[i]) < 1e-7 * (1 + fabs(gb[i])));
    } else {
        memcpy(gx, ax, nx * sizeof *gx);
        memcpy(gw, aw, nw * sizeof *gw);
        memcpy(gb, ab, nb * sizeof *gb);
    }
    run_forward(&n, NULL, x, k->N);
    run_backward(&n, NULL, dy);
    int G = one(k->groups);
    double P = (double)out_h(k) * out_w(k);
    const qt_tensor *tx = qt_graph_grad(n.g, n.in, -1), *tw = qt_graph_grad(n.g, n.cv, 0),
                    *tb = qt_graph_grad(n.g, n.cv, 1);
    assert_non_null(tx); assert_non_null(tw);
    check_grad("dx", d, tx->data, gx, nx, (double)(k->out / G) * k->kh * k->kw);
    check_grad("dW", d, tw->data, gw, nw, k->N * P);
    if (k->bias) {
        assert_non_null(tb);
        check_grad("db", d, tb->data, gb, nb, k->N * P);
    } else {
        assert_null(tb);
    }
    /* a second backward gives the same gradients (exec zeroes, we add) */
    float *keep = malloc(nw * sizeof *keep);
    assert_non_null(keep);
    memcpy(keep, tw->data, nw * sizeof *keep);
    run_backward(&n, NULL, dy);
    assert_memory_equal(keep, qt_graph_grad(n.g, n.cv, 0)->data, nw * sizeof *keep);
    free(keep);
    free(x); free(dy); free(xd); free(wd); free(R); free(bd);
    free(gx); free(gw); free(gb); free(ax); free(aw); free(ab); free(ybuf);
    qt_graph_free(n.g);
}

static const cc grad_cases[] = {
    /*  N  C   H   W  kh kw sh sw pt pl pb pr dh dw  g  out b */
    {  2, 3,  7,  6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,  4, 1 },
    {  2, 4,  9,  8, 3, 2, 2, 3, 1, 0, 2, 1, 1, 1, 1,  3, 1 },   /* strides, asymmetric pad */
    {  1, 2,  9, 10, 3, 3, 1, 2, 2, 1, 0, 2, 2, 3, 1,  3, 0 },   /* dilation */
    {  2, 4,  6,  7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2,  6, 1 },   /* groups */
    {  2, 3,  8,  8, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 3,  3, 1 },   /* depthwise, strided */
    {  3, 2,  5,  5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1,  3, 1 },   /* 1x1 */
    {  2, 2,  3,  4, 5, 4, 1, 1, 2, 1, 1, 2, 1, 1, 1,  2, 1 },   /* kernel > input */
};

static void t_backward_fd(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof grad_cases / sizeof *grad_cases; i++)
        check_backward(&grad_cases[i], 500 + i, 1);
}

/* the direct adjoint on random configurations and on multi-chunk batches */
static void t_backward_adjoint(void **st)
{
    (void)st;
    uint64_t s = 77;
    for (int i = 0; i < 20; i++) {
        cc k;
        random_cc(&s, &k, i % 2 ? 5 : 2);
        check_backward(&k, 600 + (uint64_t)i, 0);
    }
    for (size_t i = 0; i < sizeof big_cases / sizeof *big_cases; i++)
        check_backward(&big_cases[i], 700 + i, 0);
}

/* two convs read the same input: its gradient is the sum (the op adds) */
static void t_backward_accumulates(void **st)
{
    (void)st;
    cc ka = { 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1 };
    cc kb = { 2, 3, 8, 8, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 4, 0 };
    qt_graph *g = qt_graph_new();
    qt_error err;
    qt_attr a;
    uint64_t s = 9;
    int in = qt_graph_input(g, "x", 3, 8, 8, &err), ids[2];
    set_attr(&ka, &a);
    ids[0] = qt_graph_add(g, QT_OP_CONV, "ca", &in, 1, &a, &err);
    set_attr(&kb, &a);
    ids[1] = qt_graph_add(g, QT_OP_CONV, "cb", &in, 1, &a, &err);
    assert_true(ids[0] > 0 && ids[1] > 0);
    memset(&a, 0, sizeof a);
    int sum = qt_graph_add(g, QT_OP_ADD, "sum", ids, 2, &a, &err);
    assert_true(sum > 0);
    float *wa = qt_graph_param(g, ids[0], 0)->data, *ba = qt_graph_param(g, ids[0], 1)->data;
    float *wb = qt_graph_param(g, ids[1], 0)->data;
    fill(&s, wa, wsize(&ka), -1, 1); fill(&s, ba, 4, -1, 1); fill(&s, wb, wsize(&kb), -1, 1);
    size_t nx = xsize(&ka), ny = ysize(&ka);
    float x[2 * 3 * 8 * 8], dy[2 * 4 * 8 * 8];
    assert_int_equal(nx, sizeof x / sizeof *x);
    assert_int_equal(ny, sizeof dy / sizeof *dy);
    fill(&s, x, nx, -1, 1); fill(&s, dy, ny, -1, 1);
    const qt_tensor *y;
    assert_int_equal(qt_forward(g, NULL, x, 2, 0, &y, &err), QT_OK);
    assert_int_equal(qt_backward(g, NULL, dy, &err), QT_OK);
    double *xd = to_double(x, nx), *R = to_double(dy, ny);
    double *wad = to_double(wa, wsize(&ka)), *wbd = to_double(wb, wsize(&kb));
    double dxa[2 * 3 * 8 * 8], dxb[2 * 3 * 8 * 8], dwa[4 * 27], dwb[4 * 75], dba[4];
    ref_backward(&ka, xd, wad, R, dxa, dwa, dba);
    ref_backward(&kb, xd, wbd, R, dxb, dwb, NULL);
    const float *dx = qt_graph_grad(g, in, -1)->data;
    for (size_t i = 0; i < nx; i++) {
        double r = dxa[i] + dxb[i];
        assert_true(fabs(dx[i] - r) <= 1e-5 * 6 * (1 + fabs(r)));
    }
    free(xd); free(R); free(wad); free(wbd);
    qt_graph_free(g);
}

/* a smaller batch after a larger one (the planned batch stays larger) */
static void t_smaller_batch(void **st)
{
    (void)st;
    cc k = big_cases[1];
    uint64_t s = 11;
    net n;
    build(&k, &s, &n);
    size_t nx = xsize(&k), ny = ysize(&k);
    float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
    assert_non_null(x); assert_non_null(dy);
    fill(&s, x, nx, -1, 1); fill(&s, dy, ny, -1, 1);
    run_forward(&n, NULL, x, 5);
    /* now 3 samples: chunks of 2 and 1 */
    k.N = 3;
    nx = xsize(&k); ny = ysize(&k);
    const float *y = run_forward(&n, NULL, x, 3);
    run_backward(&n, NULL, dy);
    double *xd = to_double(x, nx), *wd = to_double(n.w, wsize(&k)), *R = to_double(dy, ny);
    double *ref = malloc(ny * sizeof *ref), *dx = malloc(nx * sizeof *dx), *dw = malloc(wsize(&k) * sizeof *dw);
    assert_non_null(ref); assert_non_null(dx); assert_non_null(dw);
    ref_forward(&k, xd, wd, NULL, ref, NULL);
    for (size_t i = 0; i < ny; i++) assert_true(fabs(y[i] - ref[i]) <= 1e-4 * (1 + fabs(ref[i])));
    ref_backward(&k, xd, wd, R, dx, dw, NULL);
    check_grad("dx", "smaller batch", qt_graph_grad(n.g, n.in, -1)->data, dx, nx, 2 * 25);
    check_grad("dW", "smaller batch", qt_graph_grad(n.g, n.cv, 0)->data, dw, wsize(&k), 3 * 1024);
    free(x); free(dy); free(xd); free(wd); free(R); free(ref); free(dx); free(dw);
    qt_graph_free(n.g);
}

/* weights and bias points quantize the copy the kernel must use (c->w),
 * forward and backward */
static void t_quantized_weights(void **st)
{
    (void)st;
    cc k = { 3, 4, 9, 8, 3, 3, 2, 1, 1, 0, 1, 2, 1, 2, 2, 6, 1 };
    uint64_t s = 5;
    net n;
    qt_error err;
    qt_qconfig *cfg;
    build(&k, &s, &n);
    size_t nx = xsize(&k), ny = ysize(&k);
    float *x = malloc(nx * sizeof *x), *wq = malloc(wsize(&k) * sizeof *wq), bq[6];
    assert_non_null(x); assert_non_null(wq);
    fill(&s, x, nx, -1.0f, 1.0f);
    assert_int_equal(qt_qconfig_parse(n.g, "{\"conv1\":{\"weights\":\"fixed<4,2>\","
                                      "\"bias\":\"fixed<3,1>\"}}", &cfg, &err), QT_OK);
    qt_format fw, fb;
    assert_int_equal(qt_format_parse("fixed<4,2>", &fw, &err), QT_OK);
    assert_int_equal(qt_format_parse("fixed<3,1>", &fb, &err), QT_OK);
    memcpy(wq, n.w, wsize(&k) * sizeof *wq);
    memcpy(bq, n.b, sizeof bq);
    qt_quantize(&fw, wq, wsize(&k), NULL);
    qt_quantize(&fb, bq, 6, NULL);
    double *xd = to_double(x, nx), *wd = to_double(wq, wsize(&k)), *bd = to_double(bq, 6);
    double *ref = malloc(ny * sizeof *ref);
    assert_non_null(ref);
    ref_forward(&k, xd, wd, bd, ref, NULL);
    const float *y = run_forward(&n, cfg, x, k.N);
    for (size_t i = 0; i < ny; i++)
        assert_true(fabs(y[i] - ref[i]) <= 1e-5 * (1.0 + fabs(ref[i])));
    /* the float parameters are untouched */
    assert_true(memcmp(n.w, wq, wsize(&k) * sizeof *wq) != 0);
    /* backward: straight through, dx = dy Wq (exec hands backward the same
     * quantized copy) */
    float *dy = malloc(ny * sizeof *dy);
    double *dx = malloc(nx * sizeof *dx), *dw = malloc(wsize(&k) * sizeof *dw), db[6];
    assert_non_null(dy); assert_non_null(dx); assert_non_null(dw);
    fill(&s, dy, ny, -1.0f, 1.0f);
    double *R = to_double(dy, ny);
    ref_backward(&k, xd, wd, R, dx, dw, db);
    run_backward(&n, cfg, dy);
    check_grad("dx", "quantized weights", qt_graph_grad(n.g, n.in, -1)->data, dx, nx, 9);
    check_grad("dW", "quantized weights", qt_graph_grad(n.g, n.cv, 0)->data, dw, wsize(&k), 3 * 40);
    check_grad("db", "quantized weights", qt_graph_grad(n.g, n.cv, 1)->data, db, 6, 3 * 40);
    free(dy); free(dx); free(dw); free(R);
    free(x); free(wq); free(xd); free(wd); free(bd); free(ref);
    qt_qconfig_free(cfg);
    qt_graph_free(n.g);
}

/* ------------------------------------------------------------------------ */
/* 3. Shape errors                                                           */
/* ------------------------------------------------------------------------ */

static void expect_shape_error(const cc *k, const char *word)
{
    qt_graph *g = qt_graph_new();
    qt_error err;
    qt_attr a;
    char d[160];
    describe(k, d, sizeof d);
    set_attr(k, &a);
    int in = qt_graph_input(g, "x", k->C, k->H, k->W, &err);
    memset(&err, 0, sizeof err);
    int rc = qt_graph_add(g, QT_OP_CONV, "conv1", &in, 1, &a, &err);
    if (rc != QT_EINVAL) fail_msg("%s: qt_graph_add returned %d, expected QT_EINVAL", d, rc);
    if (!strstr(err.text, "conv1") || !strstr(err.text, word))
        fail_msg("%s: message '%s' should name conv1 and say '%s'", d, err.text, word);
    assert_int_equal(qt_graph_nodes(g), 1);
    qt_graph_free(g);
}

static void t_shape_errors(void **st)
{
    (void)st;
    /*      N  C  H  W  kh kw sh sw pt pl pb pr dh dw  g  out b */
    cc big = { 1, 3, 5, 5, 7, 7, 1, 1, 0, 0, 0, 0, 1, 1, 1, 4, 1 };
    expect_shape_error(&big, "no output");
    expect_shape_error(&big, "3x5x5");
    cc wide = { 1, 3, 5, 8, 3, 9, 1, 1, 0, 0, 0, 0, 1, 1, 1, 4, 1 };
    expect_shape_error(&wide, "no output");
    cc dil = { 1, 3, 6, 6, 3, 3, 1, 1, 0, 0, 0, 0, 3, 1, 1, 4, 1 };   /* extent 7 > 6 */
    expect_shape_error(&dil, "dilation 3x1");
    cc grp = { 1, 4, 6, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 3, 6, 1 };
    expect_shape_error(&grp, "groups 3");
    cc grpo = { 1, 4, 6, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 2, 5, 1 };
    expect_shape_error(&grpo, "groups 2");
    cc out0 = { 1, 4, 6, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1 };
    expect_shape_error(&out0, "out");
    cc k0 = { 1, 4, 6, 6, 0, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 4, 1 };
    expect_shape_error(&k0, "kernel 0x3");
    cc k0b = { 1, 4, 6, 6, 3, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 4, 1 };
    expect_shape_error(&k0b, "kernel");
    cc neg = { 1, 4, 6, 6, 3, 3, 1, 1, 0, -1, 0, 0, 1, 1, 1, 4, 1 };
    expect_shape_error(&neg, "padding");
    cc negs = { 1, 4, 6, 6, 3, 3, -1, 1, 0, 0, 0, 0, 1, 1, 1, 4, 1 };
    expect_shape_error(&negs, "stride");
    cc negg = { 1, 4, 6, 6, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, -2, 4, 1 };
    expect_shape_error(&negg, "groups");
    /* the boundary: padding makes a 7x7 kernel fit a 5x5 input exactly */
    cc fits = { 1, 3, 5, 5, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1 };
    uint64_t s = 1;
    net n;
    build(&fits, &s, &n);
    qt_graph_free(n.g);
}

/* ------------------------------------------------------------------------ */
/* 4. Intrinsic EACH and FINAL, bit for bit                                  */
/* ------------------------------------------------------------------------ */

typedef struct intr_ref {
    const qt_format *f;
    int each;
    uint64_t seed, stream, base;
} intr_ref;

static uint32_t rnd(const intr_ref *r, uint64_t i)
{
    return r->f->round == QT_SR ? qt_rand32(r->seed, r->stream, i) : 0;
}

/* an EACH operand (input, weight, bias) as the unit stores it (engine.h):
 * f's own rounding, but nearest-even when f is stochastic -- no word */
static float operand(const qt_format *f, float v)
{
    qt_format rn = *f;
    if (rn.round == QT_SR) rn.round = QT_RNE;
    return qt_quantize1(&rn, v, 0);
}

/* the documented semantics, one scalar at a time (engine.h, ops_conv.c) */
static void ref_intrinsic(const cc *k, const intr_ref *r, const float *x, const float *w,
                          const float *b, float *y)
{
    const qt_format *f = r->f;
    int G = one(k->groups), Cg = k->C / G, Og = k->out / G, Ho = out_h(k), Wo = out_w(k);
    uint64_t K = taps(k);
    for (int s = 0; s < k->N; s++)
        for (int co = 0; co < k->out; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    uint64_t idx = ((((uint64_t)r->base + s) * k->out + co) * Ho * Wo
                                    + (uint64_t)oy * Wo + ox) * (2 * K + 2);
                    float acc = 0.0f;
                    double sum = 0.0;
                    uint64_t t = 0;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int ky = 0; ky < k->kh; ky++)
                            for (int kx = 0; kx < k->kw; kx++, t++) {
                                int iy = oy * one(k->sh) - k->pt + ky * one(k->dh);
                                int ix = ox * one(k->sw) - k->pl + kx * one(k->dw);
                                if (iy < 0 || iy >= k->H || ix < 0 || ix >= k->W) continue;
                                float xv = x[(((size_t)s * k->C + (co / Og) * Cg + ci) * k->H + iy) * k->W + ix];
                                float wv = w[(size_t)co * K + t];
                                if (r->each) {
                                    float p = qt_mul(f, operand(f, wv), operand(f, xv),
                                                     rnd(r, idx + 2 * t));
                                    acc = qt_add(f, acc, p, rnd(r, idx + 2 * t + 1));
                                } else {
                                    sum += (double)qt_quantize1(f, xv * wv, rnd(r, idx + 2 * t));
                                }
                            }
                    if (!r->each) acc = qt_quantize1(f, (float)sum, rnd(r, idx + 2 * K));
                    if (b) {
                        if (r->each)
                            acc = qt_add(f, acc, operand(f, b[co]), rnd(r, idx + 2 * K + 1));
                        else
                            acc = qt_quantize1(f, acc + b[co], rnd(r, idx + 2 * K + 1));
                    }
                    y[(((size_t)s * k->out + co) * Ho + oy) * Wo + ox] = acc;
                }
}

/* wfmt: an optional weights/bias point (RNE), applied before the kernel */
static void check_intrinsic(const cc *k, const char *fmt, int each, const char *wfmt,
                            uint64_t seed)
{
    uint64_t s = seed;
    net n;
    qt_error err;
    qt_qconfig *cfg;
    char json[256], d[160];
    describe(k, d, sizeof d);
    build(k, &s, &n);
    size_t nx = xsize(k), ny = ysize(k), nw = wsize(k);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = NULL;
    float *ref = malloc(ny * sizeof *ref);
    assert_non_null(x); assert_non_null(w); assert_non_null(ref);
    fill(&s, x, nx, -2.5f, 2.5f);
    for (size_t i = 0; i < nw; i++) n.w[i] *= 1.5f;
    memcpy(w, n.w, nw * sizeof *w);
    if (k->bias) {
        b = malloc((size_t)k->out * sizeof *b);
        assert_non_null(b);
        memcpy(b, n.b, (size_t)k->out * sizeof *b);
    }
    if (wfmt) {
        qt_format fw;
        assert_int_equal(qt_format_parse(wfmt, &fw, &err), QT_OK);
        assert_int_not_equal(fw.round, QT_SR);
        qt_quantize(&fw, w, nw, NULL);
        if (b) qt_quantize(&fw, b, (size_t)k->out, NULL);
        snprintf(json, sizeof json, "{\"conv1\":{\"intrinsic\":\"%s\",\"intrinsic_mode\":\"%s\","
                 "\"weights\":\"%s\",\"bias\":\"%s\"}}", fmt, each ? "each" : "final", wfmt, wfmt);
    } else {
        snprintf(json, sizeof json, "{\"conv1\":{\"intrinsic\":\"%s\",\"intrinsic_mode\":\"%s\"}}",
                 fmt, each ? "each" : "final");
    }
    if (qt_qconfig_parse(n.g, json, &cfg, &err) != QT_OK) fail_msg("%s: %s", json, err.text);
    qt_qconfig_set_seed(cfg, 7);
    qt_format f;
    assert_int_equal(qt_format_parse(fmt, &f, &err), QT_OK);
    intr_ref r = { &f, each, 7, ((uint64_t)n.cv << 8) ^ QT_QP_INTRINSIC, 0 };
    ref_intrinsic(k, &r, x, w, b, ref);
    const float *y = run_forward(&n, cfg, x, k->N);
    for (size_t i = 0; i < ny; i++) {
        uint32_t ub, rb;
        memcpy(&ub, &y[i], 4);
        memcpy(&rb, &ref[i], 4);
        if (ub != rb)
            fail_msg("%s, %s %s%s%s: y[%zu] = %a, reference %a", d, fmt, each ? "each" : "final",
                     wfmt ? ", weights " : "", wfmt ? wfmt : "", i, (double)y[i], (double)ref[i]);
    }
    if (f.round == QT_SR) {
        /* another seed draws other words: some element must change */
        qt_qconfig_set_seed(cfg, 8);
        y = run_forward(&n, cfg, x, k->N);
        assert_true(memcmp(y, ref, ny * sizeof *y) != 0);
    }
    free(x); free(w); free(b); free(ref);
    qt_qconfig_free(cfg);
    qt_graph_free(n.g);
}

static const cc intr_cases[] = {
    /*  N  C   H   W  kh kw sh sw pt pl pb pr dh dw  g  out b */
    {  3, 3,  7,  8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,  4, 1 },
    {  3, 4,  9,  7, 3, 2, 2, 1, 2, 0, 1, 1, 1, 2, 2,  6, 1 },   /* stride, asym pad, dilation, groups */
    {  3, 3,  6,  6, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 3,  3, 0 },   /* depthwise */
    {  1, 5,  5,  5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1,  3, 1 },   /* 1x1 */
};

/* fixed sums of fixed operands are exact (only products and saturation
 * round), so the float SR format is what checks the words of the adds */
static const char *const intr_formats[] = {
    "fixed<8,4>", "fixed<16,8>", "float<8,e4,b7>", "fixed<8,4,sr>", "float<8,e4,b7,sr>",
};

static void t_intrinsic_each(void **st)
{
    (void)st;
    for (size_t c = 0; c < sizeof intr_cases / sizeof *intr_cases; c++)
        for (size_t f = 0; f < sizeof intr_formats / sizeof *intr_formats; f++)
            check_intrinsic(&intr_cases[c], intr_formats[f], 1, NULL, 800 + 10 * c + f);
    check_intrinsic(&intr_cases[1], "fixed<8,4,sr>", 1, "fixed<6,3>", 850);
    check_intrinsic(&intr_cases[0], "float<8,e4,b7>", 1, "fixed<5,2>", 851);
}

static void t_intrinsic_final(void **st)
{
    (void)st;
    for (size_t c = 0; c < sizeof intr_cases / sizeof *intr_cases; c++)
        for (size_t f = 0; f < sizeof intr_formats / sizeof *intr_formats; f++)
            check_intrinsic(&intr_cases[c], intr_formats[f], 0, NULL, 900 + 10 * c + f);
    check_intrinsic(&intr_cases[1], "fixed<8,4,sr>", 0, "fixed<6,3>", 950);
}

/* EACH with a wide format is the float result rounded: sanity that the
 * reference itself is a convolution */
static void t_intrinsic_wide_matches_float(void **st)
{
    (void)st;
    cc k = intr_cases[1];
    uint64_t s = 3;
    net n;
    qt_error err;
    qt_qconfig *cfg;
    build(&k, &s, &n);
    size_t nx = xsize(&k), ny = ysize(&k);
    float *x = malloc(nx * sizeof *x), *yf = malloc(ny * sizeof *yf);
    assert_non_null(x); assert_non_null(yf);
    fill(&s, x, nx, -1, 1);
    memcpy(yf, run_forward(&n, NULL, x, k.N), ny * sizeof *yf);
    assert_int_equal(qt_qconfig_parse(n.g, "{\"conv1\":{\"intrinsic\":\"fixed<32,20>\"}}",
                                      &cfg, &err), QT_OK);
    const float *y = run_forward(&n, cfg, x, k.N);
    for (size_t i = 0; i < ny; i++) assert_true(fabs(y[i] - yf[i]) < 1e-4);
    free(x); free(yf);
    qt_qconfig_free(cfg);
    qt_graph_free(n.g);
}

/* ------------------------------------------------------------------------ */
/* 5. MACs and parameter shapes                                              */
/* ------------------------------------------------------------------------ */

static void t_macs(void **st)
{
    (void)st;
    qt_graph *g = qt_graph_new();
    qt_error err;
    qt_attr a;
    memset(&a, 0, sizeof a);
    int in = qt_graph_input(g, "x", 1, 28, 28, &err);
    a.kernel[0] = a.kernel[1] = 5;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 2;
    a.out = 6; a.bias = 1;
    int c1 = qt_graph_add(g, QT_OP_CONV, "conv1", &in, 1, &a, &err);
    assert_true(c1 > 0);
    assert_int_equal(qt_graph_node_macs(g, c1), 6 * 28 * 28 * 25);
    int shape[3];
    qt_graph_node_shape(g, c1, shape);
    assert_int_equal(shape[0], 6); assert_int_equal(shape[1], 28); assert_int_equal(shape[2], 28);
    qt_tensor *W = qt_graph_param(g, c1, 0), *B = qt_graph_param(g, c1, 1);
    assert_int_equal(W->ndim, 4);
    assert_int_equal(W->shape[0], 6); assert_int_equal(W->shape[1], 1);
    assert_int_equal(W->shape[2], 5); assert_int_equal(W->shape[3], 5);
    assert_int_equal(W->size, 150);
    assert_int_equal(B->ndim, 1); assert_int_equal(B->shape[0], 6); assert_int_equal(B->size, 6);
    /* He initialisation happened: not all zero */
    double ss = 0;
    for (size_t i = 0; i < W->size; i++) ss += (double)W->data[i] * W->data[i];
    assert_true(ss > 0);

    /* groups 2, stride 2, no bias: 6 x 5x5 outputs x (2 x 3x3) taps */
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 3;
    a.stride[0] = a.stride[1] = 2;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    a.groups = 2; a.out = 6;
    qt_graph *g2 = qt_graph_new();
    in = qt_graph_input(g2, "x", 4, 9, 9, &err);
    int c2 = qt_graph_add(g2, QT_OP_CONV, "conv2", &in, 1, &a, &err);
    assert_true(c2 > 0);
    assert_int_equal(qt_graph_node_macs(g2, c2), 6 * 5 * 5 * 2 * 9);
    W = qt_graph_param(g2, c2, 0);
    assert_int_equal(W->shape[0], 6); assert_int_equal(W->shape[1], 2);
    assert_int_equal(W->shape[2], 3); assert_int_equal(W->shape[3], 3);
    assert_null(qt_graph_param(g2, c2, 1));
    assert_int_equal(qt_graph_param_count(g2), 6 * 2 * 9);
    qt_graph_free(g);
    qt_graph_free(g2);
}

/* ------------------------------------------------------------------------ */
/* 6. Determinism across thread counts                                       */
/* ------------------------------------------------------------------------ */

typedef struct snap { float *y, *dx, *dw, *db; } snap;

static void take(net *n, const cc *k, const qt_qconfig *cfg, const float *x, const float *dy,
                 snap *o)
{
    size_t ny = ysize(k), nx = xsize(k), nw = wsize(k);
    o->y = malloc(ny * sizeof *o->y); o->dx = malloc(nx * sizeof *o->dx);
    o->dw = malloc(nw * sizeof *o->dw); o->db = malloc((size_t)k->out * sizeof *o->db);
    assert_non_null(o->y); assert_non_null(o->dx); assert_non_null(o->dw); assert_non_null(o->db);
    memcpy(o->y, run_forward(n, cfg, x, k->N), ny * sizeof *o->y);
    run_backward(n, cfg, dy);
    memcpy(o->dx, qt_graph_grad(n->g, n->in, -1)->data, nx * sizeof *o->dx);
    memcpy(o->dw, qt_graph_grad(n->g, n->cv, 0)->data, nw * sizeof *o->dw);
    memcpy(o->db, qt_graph_grad(n->g, n->cv, 1)->data, (size_t)k->out * sizeof *o->db);
}

static void same_bits(const char *what, const char *when, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0)
            fail_msg("%s: %s[%zu] = %a vs %a", when, what, i, (double)a[i], (double)b[i]);
}

static void same(const cc *k, const char *when, const snap *a, const snap *b)
{
    same_bits("y", when, a->y, b->y, ysize(k));
    same_bits("dx", when, a->dx, b->dx, xsize(k));
    same_bits("dW", when, a->dw, b->dw, wsize(k));
    same_bits("db", when, a->db, b->db, (size_t)k->out);
}

static void drop(snap *o) { free(o->y); free(o->dx); free(o->dw); free(o->db); }

/* within 1e-5 of the tensor's largest magnitude (sums of thousands of
 * terms cancel: the error scales with the terms, not with the result) */
static void close_to(const char *what, const char *when, const float *a, const float *b, size_t n)
{
    double scale = 1.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(a[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= 1e-5 * scale))
            fail_msg("%s: %s[%zu] = %.9g vs %.9g (scale %.3g)", when, what, i, (double)a[i],
                     (double)b[i], scale);
}

/* OpenMP thread count: everything bit for bit. OpenBLAS thread count: its
 * sgemm partitions the product differently and the Haswell kernels then
 * round differently (0.3.21), so the float path (forward and every
 * gradient) agrees within rounding only; the intrinsic forward, which uses
 * no BLAS, stays bit for bit. */
static void determinism(const cc *k, const char *json)
{
    uint64_t s = 21;
    net n;
    qt_error err;
    qt_qconfig *cfg = NULL;
    build(k, &s, &n);
    if (json) assert_int_equal(qt_qconfig_parse(n.g, json, &cfg, &err), QT_OK);
    if (cfg) qt_qconfig_set_seed(cfg, 3);
    float *x = malloc(xsize(k) * sizeof *x), *dy = malloc(ysize(k) * sizeof *dy);
    assert_non_null(x); assert_non_null(dy);
    fill(&s, x, xsize(k), -1, 1); fill(&s, dy, ysize(k), -1, 1);
    int omp0 = omp_get_max_threads(), blas0 = openblas_get_num_threads();
    snap a, b, c1, c2;
    omp_set_num_threads(1);
    take(&n, k, cfg, x, dy, &a);
    omp_set_num_threads(2);
    take(&n, k, cfg, x, dy, &b);
    same(k, "OpenMP 1 vs 2 threads", &a, &b);
    openblas_set_num_threads(1);
    take(&n, k, cfg, x, dy, &c1);
    openblas_set_num_threads(2);
    take(&n, k, cfg, x, dy, &c2);
    omp_set_num_threads(omp0);
    openblas_set_num_threads(blas0);
    const char *when = "OpenBLAS 1 vs 2 threads";
    if (cfg) same_bits("y", when, c1.y, c2.y, ysize(k));
    else close_to("y", when, c1.y, c2.y, ysize(k));
    close_to("dx", when, c1.dx, c2.dx, xsize(k));
    close_to("dW", when, c1.dw, c2.dw, wsize(k));
    close_to("db", when, c1.db, c2.db, (size_t)k->out);
    drop(&a); drop(&b); drop(&c1); drop(&c2);
    free(x); free(dy);
    qt_qconfig_free(cfg);
    qt_graph_free(n.g);
}

static void t_determinism(void **st)
{
    (void)st;
    /* big enough for OpenBLAS to thread its sgemms (M*N*K >> 2^18) */
    cc k1 = { 8, 16, 20, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 24, 1 };
    cc k2 = { 6, 16, 21, 19, 3, 3, 2, 1, 1, 0, 2, 1, 1, 2, 2, 32, 1 };
    determinism(&k1, NULL);
    determinism(&k2, NULL);
    /* the intrinsic forward splits samples x channels over OpenMP */
    cc k3 = { 4, 4, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 6, 1 };
    determinism(&k3, "{\"conv1\":{\"intrinsic\":\"fixed<8,4,sr>\"}}");
    determinism(&k3, "{\"conv1\":{\"intrinsic\":\"fixed<8,4,sr>\",\"intrinsic_mode\":\"final\"}}");
}

/* ------------------------------------------------------------------------ */
/* 8. The direct path (conv_direct.c) and the im2col/sgemm path: each on    */
/*    every instruction set the CPU has against the double references, and  */
/*    against each other                                                     */
/* ------------------------------------------------------------------------ */

typedef struct pathmode { int force, isa; const char *name; } pathmode;

/* sgemm, then direct on the portable, AVX2 and AVX-512 kernels the CPU runs */
static int path_modes(pathmode *m)
{
    static const char *names[3] = { "direct/portable", "direct/avx2", "direct/avx512" };
    qt__conv_isa = -1;
    int best = qt__dconv_isa(), k = 0;
    m[k++] = (pathmode){ 1, -1, "sgemm" };
    for (int i = 0; i <= best; i++) m[k++] = (pathmode){ 2, i, names[i] };
    return k;
}

static void set_mode(const pathmode *m)
{
    qt__conv_force = m ? m->force : 0;
    qt__conv_isa = m ? m->isa : -1;
}

/* the forward and backward references of sections 1 and 2 on every path */
static void t_paths_reference(void **st)
{
    (void)st;
    pathmode m[4];
    int nm = path_modes(m);
    for (int i = 0; i < nm; i++) {
        set_mode(&m[i]);
        for (size_t j = 0; j < sizeof fixed_cases / sizeof *fixed_cases; j++)
            check_forward(&fixed_cases[j], 100 + j);
        for (size_t j = 0; j < sizeof grad_cases / sizeof *grad_cases; j++)
            check_backward(&grad_cases[j], 500 + j, 0);
        uint64_t s = 4242;
        for (int j = 0; j < 12; j++) {
            cc k;
            random_cc(&s, &k, j % 2 ? 5 : 2);
            check_forward(&k, 2000 + (uint64_t)j);
            check_backward(&k, 2100 + (uint64_t)j, 0);
        }
    }
    set_mode(NULL);
}

/* the zoo's shapes (lenet5, vgg, resnet; batches that split the direct
 * weight gradient into several parts) on both paths: fp32 sums are
 * reordered, so they agree within rounding (1e-5 of the tensor's largest
 * magnitude); the AVX2 and AVX-512 direct kernels give the same bits for
 * y and dx (one fused multiply-add per tap, in the same order). All with a
 * bias (take() reads its gradient). */
static void t_paths_agree(void **st)
{
    (void)st;
    static const cc zoo[] = {
        /*  N   C   H   W  kh kw sh sw pt pl pb pr dh dw  g  out b */
        { 20,  1, 28, 28, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1,  6, 1 },   /* lenet conv1 */
        { 20,  6, 14, 14, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1, 16, 1 },   /* lenet conv2 */
        {  9, 32, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 64, 1 },   /* vgg conv2_1 */
        {  9, 16, 28, 28, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 32, 1 },   /* resnet res2.conv1 */
        {  9, 64,  7,  7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 64, 1 },   /* resnet res3.conv2 */
        {  9, 16, 28, 28, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 32, 1 },   /* resnet res2.proj */
        {150,  3,  6,  5, 3, 3, 1, 1, 1, 0, 1, 2, 1, 1, 1,  5, 1 },   /* 10 gradient parts */
    };
    pathmode m[4];
    int nm = path_modes(m);
    for (size_t z = 0; z < sizeof zoo / sizeof *zoo; z++) {
        const cc *k = &zoo[z];
        uint64_t s = 31 + z;
        net n;
        char d[160];
        describe(k, d, sizeof d);
        build(k, &s, &n);
        float *x = malloc(xsize(k) * sizeof *x), *dy = malloc(ysize(k) * sizeof *dy);
        assert_non_null(x); assert_non_null(dy);
        fill(&s, x, xsize(k), -1, 1);
        fill(&s, dy, ysize(k), -1, 1);
        snap r[4];
        for (int i = 0; i < nm; i++) {
            set_mode(&m[i]);
            take(&n, k, NULL, x, dy, &r[i]);
        }
        set_mode(NULL);
        for (int i = 1; i < nm; i++) {
            char when[200];
            snprintf(when, sizeof when, "%s: sgemm vs %s", d, m[i].name);
            close_to("y", when, r[0].y, r[i].y, ysize(k));
            close_to("dx", when, r[0].dx, r[i].dx, xsize(k));
            close_to("dW", when, r[0].dw, r[i].dw, wsize(k));
            close_to("db", when, r[0].db, r[i].db, (size_t)k->out);
        }
        if (nm == 4) {
            char when[200];
            snprintf(when, sizeof when, "%s: avx2 vs avx512", d);
            same_bits("y", when, r[2].y, r[3].y, ysize(k));
            if (k->sh == 1 && k->sw == 1) same_bits("dx", when, r[2].dx, r[3].dx, xsize(k));
        }
        for (int i = 0; i < nm; i++) drop(&r[i]);
        free(x); free(dy);
        qt_graph_free(n.g);
    }
}

/* ------------------------------------------------------------------------ */
/* 7. Intrinsic EACH on fixed point: the integer kernel (intr_fixed.c)       */
/*    against the reference loops, bit for bit                               */
/* ------------------------------------------------------------------------ */

/* a random fixed or ufixed format the integer kernel takes (W up to 16,
 * 0 <= F <= 12, every rounding mode, sym) as text; *range its largest
 * magnitude */
static void random_ifix(uint64_t *s, char *buf, size_t n, double *range)
{
    static const char *rnd[] = { "rne", "rna", "sr", "rd", "rz" };
    int u = rng_int(s, 0, 3) == 0, W = u ? rng_int(s, 1, 15) : rng_int(s, 2, 16);
    int F = rng_int(s, 0, W < 12 ? W : 12), sym = !u && rng_int(s, 0, 2) == 0;
    snprintf(buf, n, "%s<%d,%d,%s%s>", u ? "ufixed" : "fixed", W, F, rnd[rng_int(s, 0, 4)],
             sym ? ",sym" : "");
    *range = ldexp(1.0, (u ? W : W - 1) - F);
}

/* forward under cfg with the integer kernel and with the reference loops */
static void fast_vs_ref(qt_graph *g, const qt_qconfig *cfg, const float *x, int N,
                        const char *what)
{
    const qt_tensor *y;
    qt_error err;
    qt__intr_force_ref = 0;
    if (qt_forward(g, cfg, x, N, 0, &y, &err)) fail_msg("%s: %s", what, err.text);
    float *fast = malloc(y->size * sizeof *fast);
    assert_non_null(fast);
    memcpy(fast, y->data, y->size * sizeof *fast);
    qt__intr_force_ref = 1;
    int rc = qt_forward(g, cfg, x, N, 0, &y, &err);
    qt__intr_force_ref = 0;
    if (rc) fail_msg("%s: %s", what, err.text);
    for (size_t i = 0; i < y->size; i++)
        if (memcmp(&fast[i], &y->data[i], sizeof *fast) != 0)
            fail_msg("%s: y[%zu] = %a (integer kernel) vs %a (reference)", what, i,
                     (double)fast[i], (double)y->data[i]);
    free(fast);
}

/* fast_vs_ref with node's intrinsic point in fmt (node "*": every node's)
 * and the configuration's seed set */
static void intr_vs_ref(qt_graph *g, const char *node, const char *fmt, uint64_t seed,
                        const float *x, int N, const char *what)
{
    char json[160];
    qt_qconfig *cfg;
    qt_error err;
    snprintf(json, sizeof json, "{\"%s\":{\"intrinsic\":\"%s\"}}", node, fmt);
    if (qt_qconfig_parse(g, json, &cfg, &err)) fail_msg("%s: %s", json, err.text);
    qt_qconfig_set_seed(cfg, seed);
    fast_vs_ref(g, cfg, x, N, what);
    qt_qconfig_free(cfg);
}

/* inputs spread over the format's range times 0.25..4 (saturating some
 * products and sums), a few NaN and inf when nan is set (NaN: the
 * reference loops run) */
static void ifix_input(uint64_t *s, float *x, size_t n, double range, int nan)
{
    float r = (float)(range * rng_unif(s, 0.25f, 4.0f));
    fill(s, x, n, -r, r);
    if (nan) {
        x[rng_int(s, 0, (int)n - 1)] = NAN;
        x[rng_int(s, 0, (int)n - 1)] = INFINITY;
    }
}

static void t_intrinsic_int_conv(void **st)
{
    (void)st;
    uint64_t s = 77;
    int iters = 160;
    for (int it = 0; it < iters; it++) {
        cc k;
        net n;
        char fmt[48], d[160];
        double range;
        random_cc(&s, &k, rng_int(&s, 1, 3));
        build(&k, &s, &n);
        random_ifix(&s, fmt, sizeof fmt, &range);
        /* weights near the range too (the reference rounds them as operands) */
        float wr = (float)(range * rng_unif(&s, 0.1f, 2.0f));
        fill(&s, n.w, wsize(&k), -wr, wr);
        if (n.b) fill(&s, n.b, (size_t)k.out, -wr, wr);
        float *x = malloc(xsize(&k) * sizeof *x);
        assert_non_null(x);
        ifix_input(&s, x, xsize(&k), range, it % 16 == 15);
        describe(&k, d, sizeof d);
        char what[256];
        snprintf(what, sizeof what, "%s %s", d, fmt);
        intr_vs_ref(n.g, "conv1", fmt, (uint64_t)it, x, k.N, what);
        free(x);
        qt_graph_free(n.g);
    }
}

/* one conv of input dims[0..rank) (batch N) and attributes a under the
 * intrinsic format fmt (operands of about +-range, weights and bias drawn
 * from s, some inputs NaN/inf when bad): the fast path against the
 * reference, bit for bit; 0 (nothing run) when the layer has no output
 * position */
static int conv_vs_ref(uint64_t *s, int rank, const int *dims, int N, const qt_attr *a,
                       const char *fmt, double range, uint64_t seed, int bad, const char *what)
{
    qt_error err;
    qt_graph *g = qt_graph_new();
    assert_non_null(g);
    int in = qt_graph_input_nd(g, "x", rank, dims, &err);
    if (in < 0) fail_msg("%s", err.text);
    int id = qt_graph_add(g, QT_OP_CONV, "conv1", &in, 1, a, &err);
    if (id < 0) {
        qt_graph_free(g);
        return 0;
    }
    float wr = (float)(range * rng_unif(s, 0.1f, 2.0f));
    qt_tensor *W = qt_graph_param(g, id, 0), *B = qt_graph_param(g, id, 1);
    fill(s, W->data, W->size, -wr, wr);
    if (B) fill(s, B->data, B->size, -wr, wr);
    size_t nx = (size_t)N * qt_graph_node_size(g, 0);
    float *x = malloc(nx * sizeof *x);
    assert_non_null(x);
    ifix_input(s, x, nx, range, bad);
    intr_vs_ref(g, "conv1", fmt, seed, x, N, what);
    free(x);
    qt_graph_free(g);
    return 1;
}

/* 1-, 2- and 3-D convolutions with leading dims folded into the batch,
 * groups, strides, dilations and padding, on planes of several tiles (a
 * tile starts inside an output row): the integer kernel's gather */
static void t_intrinsic_int_conv_nd(void **st)
{
    (void)st;
    uint64_t s = 79;
    for (int it = 0; it < 90; it++) {
        int S = it % 3 + 1, lead = rng_int(&s, 0, 1), C = rng_int(&s, 1, 6);
        int dims[5], rank = 0, N = rng_int(&s, 1, 2);
        if (lead) dims[rank++] = rng_int(&s, 1, 3);
        dims[rank++] = C;
        for (int i = 0; i < S; i++)
            dims[rank++] = S == 1 ? rng_int(&s, 20, 700) : S == 2 ? rng_int(&s, 8, 40)
                                                                 : rng_int(&s, 2, 10);
        qt_attr a;
        memset(&a, 0, sizeof a);
        for (int i = 0; i < S; i++) {
            a.kernel[i] = rng_int(&s, 1, S == 3 ? 3 : 5);
            a.stride[i] = rng_int(&s, 1, 3);
            a.dilation[i] = rng_int(&s, 1, 2);
            a.pad[i] = rng_int(&s, 0, a.kernel[i] - 1);
            a.pad[S + i] = rng_int(&s, 0, a.kernel[i] - 1);
        }
        int gc = rng_int(&s, 0, 2);
        a.groups = gc == 0 ? 1 : gc == 1 ? C : (C % 2 ? 1 : 2);
        a.out = a.groups * rng_int(&s, 1, 3);
        a.bias = rng_int(&s, 0, 1);
        char fmt[48], what[200];
        double range;
        random_ifix(&s, fmt, sizeof fmt, &range);
        snprintf(what, sizeof what, "%d-D lead %d C %d dims %d..%d k %d s %d d %d p %d,%d g %d "
                 "o %d %s", S, lead, C, dims[rank - S], dims[rank - 1], a.kernel[0],
                 a.stride[0], a.dilation[0], a.pad[0], a.pad[S], a.groups, a.out, fmt);
        if (!conv_vs_ref(&s, rank, dims, N, &a, fmt, range, 300 + (uint64_t)it, it % 16 == 15,
                         what))
            it--;                         /* no output position: draw again */
    }
}

/* stride-1 1-D and 2-D convolutions: the integer direct layout (padded
 * planes read in place, lanes oy*Wp + ox) for 16-bit (W <= 8) and 32-bit
 * (W 12, 16) lanes, and stochastic rounding (the tiles of output
 * positions), with paddings 0..2 (asymmetric too), kernels 1, 3 and 5,
 * groups, odd widths and planes of several tiles */
static void t_intrinsic_int_conv_direct(void **st)
{
    (void)st;
    static const char *const rnd[] = { "rne", "rna", "rd", "rz", "sr" };
    static const int ks[] = { 1, 3, 5 };
    uint64_t s = 83;
    for (int it = 0; it < 120; it++) {
        int S = it % 8 == 7 ? 1 : 2, C = rng_int(&s, 1, 8), N = rng_int(&s, 1, 3);
        int dims[3], rank = 0;
        dims[rank++] = C;
        for (int i = 0; i < S; i++)
            dims[rank++] = S == 1 ? rng_int(&s, 5, 700) : rng_int(&s, 1, 3) == 1
                                                             ? rng_int(&s, 20, 41)
                                                             : rng_int(&s, 3, 15);
        qt_attr a;
        memset(&a, 0, sizeof a);
        for (int i = 0; i < S; i++) {
            a.kernel[i] = ks[rng_int(&s, 0, 2)];
            a.stride[i] = 1;
            a.dilation[i] = it % 10 == 9 ? 2 : 1;
            a.pad[i] = rng_int(&s, 0, 2);
            a.pad[S + i] = rng_int(&s, 0, 3) == 0 ? rng_int(&s, 0, 2) : a.pad[i];
        }
        int gc = rng_int(&s, 0, 2);
        a.groups = gc == 0 ? 1 : gc == 1 ? C : (C % 2 ? 1 : 2);
        a.out = a.groups * rng_int(&s, 1, 4);
        a.bias = rng_int(&s, 0, 1);
        /* W 8 (16-bit lanes) or 12, 16 (32-bit), every mode */
        static const int Ws[] = { 8, 8, 12, 16 };
        int W = Ws[rng_int(&s, 0, 3)], F = rng_int(&s, 0, W == 8 ? 7 : 12);
        int u = W == 8 && rng_int(&s, 0, 3) == 0;
        char fmt[48], what[200];
        snprintf(fmt, sizeof fmt, "%s<%d,%d,%s>", u ? "ufixed" : "fixed", u ? 7 : W, F,
                 rnd[rng_int(&s, 0, 4)]);
        double range = ldexp(1.0, (u ? 7 : W - 1) - F);
        snprintf(what, sizeof what, "%d-D N %d C %d dims %dx%d k %d d %d p %d,%d g %d o %d %s",
                 S, N, C, dims[1], dims[rank - 1], a.kernel[0], a.dilation[0], a.pad[0],
                 a.pad[S], a.groups, a.out, fmt);
        if (!conv_vs_ref(&s, rank, dims, N, &a, fmt, range, 500 + (uint64_t)it, it % 16 == 15,
                         what))
            it--;                         /* no output position: draw again */
    }
}

/* the product clamp is left out of a kernel when no product of its
 * weights and the operand range can round outside the range: rows of
 * weights at and around that bound (fixed<8,4>: |q| <= 16 needs no clamp,
 * 17 does), operands at the extremes, every deterministic mode, 16-bit
 * (W 8, ufixed 7) and 32-bit (W 12) lanes, dense and conv, against the
 * reference loops */
static void t_intrinsic_int_product_bound(void **st)
{
    (void)st;
    static const char *const fmts[] = {
        "fixed<8,4,rne>", "fixed<8,4,rna>", "fixed<8,4,rd>", "fixed<8,4,rz>",
        "ufixed<7,4,rne>", "ufixed<7,3,rd>", "fixed<12,4,rne>", "fixed<12,4,rz>",
        "fixed<12,7,rna>", "fixed<8,0,rd>",
    };
    static const int qs[] = { 14, 15, 16, 17, 18, -15, -16, -17, 0, 1 };
    uint64_t s = 87;
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        qt_format f;
        qt_error err;
        if (qt_format_parse(fmts[i], &f, &err)) fail_msg("%s: %s", fmts[i], err.text);
        int u = f.type == QT_UFIXED, W = f.width, F = f.bias;
        double step = ldexp(1.0, -F), range = ldexp(1.0, (u ? W : W - 1) - F);
        int O = (int)(sizeof qs / sizeof *qs), Fin = 9, N = 70;
        for (int conv = 0; conv < 2; conv++) {
            qt_graph *g = qt_graph_new();
            assert_non_null(g);
            int in = conv ? qt_graph_input(g, "x", 1, 12, 12, &err)
                          : qt_graph_input(g, "x", Fin, 1, 1, &err);
            qt_attr a;
            memset(&a, 0, sizeof a);
            a.out = O;
            a.bias = 1;
            if (conv) {
                a.kernel[0] = a.kernel[1] = 3;
                a.stride[0] = a.stride[1] = 1;
                a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
            }
            int id = qt_graph_add(g, conv ? QT_OP_CONV : QT_OP_DENSE, "l", &in, 1, &a, &err);
            if (id < 0) fail_msg("%s", err.text);
            qt_tensor *Wt = qt_graph_param(g, id, 0), *B = qt_graph_param(g, id, 1);
            size_t K = Wt->size / (size_t)O;
            /* row o: every weight q_o steps (unsigned formats: |q_o|), one
             * in three rows with its last weight at q_o - 1 */
            for (int o = 0; o < O; o++) {
                int q = u ? abs(qs[o]) : qs[o];
                for (size_t k = 0; k < K; k++) {
                    int qk = o % 3 == 2 && k == K - 1 ? q - 1 : q;
                    if (u && qk < 0) qk = 0;
                    /* dense weights are [out][in] */
                    Wt->data[(size_t)o * K + k] = (float)(qk * step);
                }
                B->data[o] = 0.0f;
            }
            size_t nx = (size_t)N * qt_graph_node_size(g, 0);
            float *x = malloc(nx * sizeof *x);
            assert_non_null(x);
            for (size_t e = 0; e < nx; e++) {   /* the extremes, and some in between */
                int r = rng_int(&s, 0, 3);
                x[e] = (float)(r == 0 ? (u ? 0.0 : -range) : r == 1 ? range - step
                                                            : rng_unif(&s, -1.0f, 1.0f) * range);
            }
            char what[200];
            snprintf(what, sizeof what, "%s rows at the product bound %s", conv ? "conv" : "dense",
                     fmts[i]);
            intr_vs_ref(g, "l", fmts[i], 0, x, N, what);
            free(x);
            qt_graph_free(g);
        }
    }
}

/* the formats at the edge of the 16-bit kernels (intr_fixed.c: products
 * plus the rounding offset up to 2^15 - 1) and just past it, conv and
 * dense */
static void t_intrinsic_int_narrow_edges(void **st)
{
    (void)st;
    static const char *const fmts[] = {
        "fixed<8,13,rne>", "fixed<8,13,rna>", "fixed<8,13,rd>", "fixed<8,13,rz>",
        "fixed<8,14,rne>", "fixed<8,14,rz>", "fixed<8,0,rna>", "fixed<8,7,rne,sym>",
        "ufixed<7,13,rna>", "ufixed<7,13,rz>", "ufixed<8,4,rne>", "fixed<9,4,rne>",
        "fixed<2,1,rd>", "ufixed<1,0,rne>",
    };
    uint64_t s = 81;
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++)
        for (int rep = 0; rep < 4; rep++) {
            qt_format f;
            qt_error err;
            if (qt_format_parse(fmts[i], &f, &err)) fail_msg("%s: %s", fmts[i], err.text);
            double range = ldexp(1.0, (f.type == QT_UFIXED ? f.width : f.width - 1) - f.bias);
            cc k;
            net n;
            char d[160], what[256];
            random_cc(&s, &k, rng_int(&s, 1, 3));
            build(&k, &s, &n);
            float wr = (float)(range * rng_unif(&s, 0.1f, 2.0f));
            fill(&s, n.w, wsize(&k), -wr, wr);
            if (n.b) fill(&s, n.b, (size_t)k.out, -wr, wr);
            float *x = malloc(xsize(&k) * sizeof *x);
            assert_non_null(x);
            ifix_input(&s, x, xsize(&k), range, 0);
            describe(&k, d, sizeof d);
            snprintf(what, sizeof what, "%s %s", d, fmts[i]);
            intr_vs_ref(n.g, "conv1", fmts[i], 0, x, k.N, what);
            free(x);
            qt_graph_free(n.g);

            /* dense over 1..300 rows */
            int F_in = rng_int(&s, 1, 40), O = rng_int(&s, 1, 12), N = rng_int(&s, 1, 300);
            qt_graph *g = qt_graph_new();
            assert_non_null(g);
            int in = qt_graph_input(g, "x", F_in, 1, 1, &err);
            qt_attr a;
            memset(&a, 0, sizeof a);
            a.out = O;
            a.bias = 1;
            int id = qt_graph_add(g, QT_OP_DENSE, "fc", &in, 1, &a, &err);
            if (id < 0) fail_msg("%s", err.text);
            qt_tensor *W = qt_graph_param(g, id, 0), *B = qt_graph_param(g, id, 1);
            fill(&s, W->data, W->size, -wr, wr);
            fill(&s, B->data, B->size, -wr, wr);
            size_t nx = (size_t)N * F_in;
            x = malloc(nx * sizeof *x);
            assert_non_null(x);
            ifix_input(&s, x, nx, range, 0);
            snprintf(what, sizeof what, "dense N%d in%d out%d %s", N, F_in, O, fmts[i]);
            intr_vs_ref(g, "fc", fmts[i], 0, x, N, what);
            free(x);
            qt_graph_free(g);
        }
}

/* the zoo's resnet (conv, batchnorm, relu, residual add, gap, dense) with
 * every node's intrinsic point in one format: the integer paths end to end
 * against the reference loops */
static void t_intrinsic_int_resnet(void **st)
{
    (void)st;
    static const char *const fmts[] = { "fixed<8,4>", "fixed<8,3,sr>", "fixed<12,7,rz,sym>" };
    uint64_t s = 80;
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        qt_graph *g;
        qt_error err;
        if (qt_zoo_build("resnet", &g, &err)) fail_msg("%s", err.text);
        qt_graph_seed(g, 5);
        size_t nx = 2 * qt_graph_node_size(g, 0);
        float *x = malloc(nx * sizeof *x);
        assert_non_null(x);
        ifix_input(&s, x, nx, 2.0, i == 2);
        char what[64];
        snprintf(what, sizeof what, "resnet %s", fmts[i]);
        intr_vs_ref(g, "*", fmts[i], 7 + i, x, 2, what);
        free(x);
        qt_graph_free(g);
    }
}

/* dense and matmul (intrinsic_dot: weights [out, in] and [in, out]) */
static void t_intrinsic_int_dense(void **st)
{
    (void)st;
    uint64_t s = 78;
    for (int it = 0; it < 120; it++) {
        int mm = it % 3 == 2, F_in = rng_int(&s, 1, 40), O = rng_int(&s, 1, 20);
        int N = rng_int(&s, 1, it % 10 == 0 ? 300 : 5);   /* > 256 rows: two tiles */
        qt_error err;
        qt_graph *g = qt_graph_new();
        assert_non_null(g);
        int in = qt_graph_input(g, "x", F_in, 1, 1, &err);
        qt_attr a;
        memset(&a, 0, sizeof a);
        a.out = O;
        a.bias = !mm && rng_int(&s, 0, 1);
        int id = qt_graph_add(g, mm ? QT_OP_MATMUL : QT_OP_DENSE, "fc", &in, 1, &a, &err);
        if (id < 0) fail_msg("%s", err.text);
        char fmt[48];
        double range;
        random_ifix(&s, fmt, sizeof fmt, &range);
        float wr = (float)(range * rng_unif(&s, 0.1f, 2.0f));
        qt_tensor *W = qt_graph_param(g, id, 0), *B = qt_graph_param(g, id, 1);
        fill(&s, W->data, W->size, -wr, wr);
        if (B) fill(&s, B->data, B->size, -wr, wr);
        size_t nx = (size_t)N * F_in;
        float *x = malloc(nx * sizeof *x);
        assert_non_null(x);
        ifix_input(&s, x, nx, range, it % 16 == 15);
        char what[160];
        snprintf(what, sizeof what, "%s N%d in%d out%d bias%d %s", mm ? "matmul" : "dense", N,
                 F_in, O, a.bias, fmt);
        intr_vs_ref(g, "fc", fmt, (uint64_t)it + 5, x, N, what);
        free(x);
        qt_graph_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(t_forward_fixed),
        cmocka_unit_test(t_forward_random),
        cmocka_unit_test(t_forward_chunks),
        cmocka_unit_test(t_quantized_weights),
        cmocka_unit_test(t_backward_fd),
        cmocka_unit_test(t_backward_adjoint),
        cmocka_unit_test(t_backward_accumulates),
        cmocka_unit_test(t_smaller_batch),
        cmocka_unit_test(t_shape_errors),
        cmocka_unit_test(t_intrinsic_each),
        cmocka_unit_test(t_intrinsic_final),
        cmocka_unit_test(t_intrinsic_wide_matches_float),
        cmocka_unit_test(t_macs),
        cmocka_unit_test(t_determinism),
        cmocka_unit_test(t_intrinsic_int_conv),
        cmocka_unit_test(t_intrinsic_int_conv_nd),
        cmocka_unit_test(t_intrinsic_int_conv_direct),
        cmocka_unit_test(t_intrinsic_int_product_bound),
        cmocka_unit_test(t_intrinsic_int_dense),
        cmocka_unit_test(t_intrinsic_int_narrow_edges),
        cmocka_unit_test(t_intrinsic_int_resnet),
        cmocka_unit_test(t_paths_reference),
        cmocka_unit_test(t_paths_agree),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
