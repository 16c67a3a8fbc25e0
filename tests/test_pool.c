/*
 * test_pool.c -- maxpool, avgpool, gap and batchnorm (engine/ops_pool.c)
 * against independent float64 references written from the semantics at the
 * top of ops_pool.c:
 *   - forward on random configurations (odd sizes, non-square kernels,
 *     strides, asymmetric padding, ceil_mode, count_pad, dilation, batch 1
 *     and 4), output sizes by enumerating windows and on PyTorch cases;
 *   - backward against central finite differences of the float64 reference
 *     (batchnorm through the batch statistics), maxpool against the
 *     analytic argmax routing;
 *   - batchnorm running statistics against PyTorch's update rule;
 *   - intrinsic quantization bit for bit against scalar references that
 *     apply qt_quantize1/qt_mul/qt_add in the documented order (operands
 *     and batchnorm constants to nearest-even when the format is
 *     stochastic);
 *   - shape errors, and the same bits on 1 and 2 OpenMP threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../engine/internal.h"   /* g->sample_base (data-set offsets); qt__intr_force_ref:
                                     the integer paths against the reference loops */

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct rng { uint64_t s; } rng;

static uint64_t rnext(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double runif(rng *r) { return (double)(rnext(r) >> 11) * 0x1p-53; }
static int rint_in(rng *r, int lo, int hi) { return lo + (int)(rnext(r) % (uint64_t)(hi - lo + 1)); }
static void fill(rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * runif(r));
}

static qt_format P(const char *text)
{
    qt_format f;
    qt_error err;
    if (qt_format_parse(text, &f, &err) != QT_OK) fail_msg("parse '%s': %s", text, err.text);
    return f;
}

static int same_bits(float a, float b)
{
    uint32_t x, y;
    if (isnan(a) && isnan(b)) return 1;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    return x == y;
}

static void near(double got, double want, double tol, const char *what, size_t i)
{
    if (isnan(want) && isnan(got)) return;
    if (isinf(want) && got == want) return;
    if (!(fabs(got - want) <= tol))
        fail_msg("%s[%zu]: got %.9g, want %.9g (tol %.3g)", what, i, got, want, tol);
}

/* a graph input(C,H,W) -> op; the op's node id in *node */
static qt_graph *one_op(qt_op op, const char *name, int C, int H, int W,
                        const qt_attr *a, int *node)
{
    qt_error err;
    qt_graph *g = qt_graph_new();
    assert_non_null(g);
    int in = qt_graph_input(g, "x", C, H, W, &err);
    assert_int_equal(in, 0);
    *node = qt_graph_add(g, op, name, &in, 1, a, &err);
    if (*node < 0) fail_msg("adding %s: %s", name, err.text);
    return g;
}

static void fwd(qt_graph *g, const qt_qconfig *cfg, const float *x, int n, int train,
                const qt_tensor **y)
{
    qt_error err;
    int rc = qt_forward(g, cfg, x, n, train, y, &err);
    if (rc) fail_msg("qt_forward: %s", err.text);
}

static void bwd(qt_graph *g, const qt_qconfig *cfg, const float *dy)
{
    qt_error err;
    int rc = qt_backward(g, cfg, dy, &err);
    if (rc) fail_msg("qt_backward: %s", err.text);
}

/* ------------------------------------------------------------------------ */
/* float64 references                                                        */
/* ------------------------------------------------------------------------ */

typedef struct rgeom {
    int kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, ceil_mode, count_pad;
} rgeom;

static rgeom rg_of(const qt_attr *a)
{
    rgeom r;
    r.kh = a->kernel[0]; r.kw = a->kernel[1];
    r.sh = a->stride[0] ? a->stride[0] : 1; r.sw = a->stride[1] ? a->stride[1] : 1;
    r.dh = a->dilation[0] ? a->dilation[0] : 1; r.dw = a->dilation[1] ? a->dilation[1] : 1;
    r.pt = a->pad[0]; r.pl = a->pad[1]; r.pb = a->pad[2]; r.pr = a->pad[3];
    r.ceil_mode = a->ceil_mode; r.count_pad = a->count_pad;
    return r;
}

/* output length by enumerating windows: window o starts at o*s in padded
 * coordinates; floor mode keeps the windows that fit in the padded input,
 * ceil mode also the ones that reach past its end but start within the
 * last stride of it ((o-1)*s < span), except those starting at or beyond
 * L + p0 (entirely in the trailing padding) */
static int ref_len(int L, int p0, int p1, int k, int s, int d, int ceil_mode)
{
    int ext = (k - 1) * d + 1, span = L + p0 + p1 - ext, n = 0;
    if (span < 0) return 0;
    for (int o = 0;; o++) {
        int ok = ceil_mode ? ((o == 0 || (o - 1) * s < span) && o * s < L + p0)
                           : o * s <= span;
        if (!ok) break;
        n++;
    }
    return n;
}

/* maxpool: first maximum in window order; any NaN: the first NaN */
static void ref_maxpool(const double *x, int N, int C, int H, int W, const rgeom *r,
                        int Ho, int Wo, double *y, int *arg)
{
    for (int p = 0; p < N * C; p++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                double best = -INFINITY;
                int a = -1, anan = -1;
                for (int ky = 0; ky < r->kh; ky++)
                    for (int kx = 0; kx < r->kw; kx++) {
                        int iy = oy * r->sh - r->pt + ky * r->dh;
                        int ix = ox * r->sw - r->pl + kx * r->dw;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        double v = x[(size_t)p * H * W + iy * W + ix];
                        if (isnan(v)) { if (anan < 0) anan = iy * W + ix; }
                        else if (a < 0 || v > best) { best = v; a = iy * W + ix; }
                    }
                size_t o = (size_t)p * Ho * Wo + oy * Wo + ox;
                y[o] = anan >= 0 ? NAN : best;
                if (arg) arg[o] = anan >= 0 ? anan : a;
            }
}

/* avgpool: divisor counts the window's positions inside the input, or with
 * count_pad inside the padded input */
static void ref_avgpool(const double *x, int N, int C, int H, int W, const rgeom *r,
                        int Ho, int Wo, double *y)
{
    for (int p = 0; p < N * C; p++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                double s = 0.0;
                int in = 0, padded = 0;
                for (int ky = 0; ky < r->kh; ky++)
                    for (int kx = 0; kx < r->kw; kx++) {
                        int iy = oy * r->sh - r->pt + ky, ix = ox * r->sw - r->pl + kx;
                        if (iy >= -r->pt && iy < H + r->pb && ix >= -r->pl && ix < W + r->pr)
                            padded++;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        s += x[(size_t)p * H * W + iy * W + ix];
                        in++;
                    }
                y[(size_t)p * Ho * Wo + oy * Wo + ox] = s / (r->count_pad ? padded : in);
            }
}

static void ref_gap(const double *x, int N, int C, int HW, double *y)
{
    for (int p = 0; p < N * C; p++) {
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += x[(size_t)p * HW + i];
        y[p] = s / HW;
    }
}

/* batchnorm; bmean/bvar (optional): the batch mean and biased variance */
static void ref_bn(const double *x, int N, int C, int HW, const double *gam,
                   const double *bet, const double *rm, const double *rv, double eps,
                   int train, double *y, double *bmean, double *bvar)
{
    for (int c = 0; c < C; c++) {
        double mean, var;
        if (train) {
            double s = 0.0, ss = 0.0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < HW; i++) s += x[((size_t)n * C + c) * HW + i];
            mean = s / (N * HW);
            for (int n = 0; n < N; n++)
                for (int i = 0; i < HW; i++) {
                    double d = x[((size_t)n * C + c) * HW + i] - mean;
                    ss += d * d;
                }
            var = ss / (N * HW);
        } else {
            mean = rm[c];
            var = rv[c];
        }
        if (bmean) bmean[c] = mean;
        if (bvar) bvar[c] = var;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t k = ((size_t)n * C + c) * HW + i;
                y[k] = (x[k] - mean) / sqrt(var + eps) * gam[c] + bet[c];
            }
    }
}

static double *to_d(const float *x, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* random pooling attributes; ext padding < the (dilated) kernel extent */
static void rand_pool_attr(rng *r, qt_attr *a, int is_max)
{
    memset(a, 0, sizeof *a);
    a->kernel[0] = rint_in(r, 1, 4); a->kernel[1] = rint_in(r, 1, 4);
    a->stride[0] = rint_in(r, 0, 3); a->stride[1] = rint_in(r, 0, 3);
    if (is_max) { a->dilation[0] = rint_in(r, 0, 2); a->dilation[1] = rint_in(r, 0, 2); }
    int eh = (a->kernel[0] - 1) * (a->dilation[0] ? a->dilation[0] : 1) + 1;
    int ew = (a->kernel[1] - 1) * (a->dilation[1] ? a->dilation[1] : 1) + 1;
    a->pad[0] = rint_in(r, 0, eh - 1); a->pad[2] = rint_in(r, 0, eh - 1);
    a->pad[1] = rint_in(r, 0, ew - 1); a->pad[3] = rint_in(r, 0, ew - 1);
    a->ceil_mode = rint_in(r, 0, 1);
    a->count_pad = rint_in(r, 0, 1);
}

static const int sizes[] = { 1, 3, 4, 5, 7, 8, 9 };

/* ------------------------------------------------------------------------ */
/* 1. forward vs float64 references                                          */
/* ------------------------------------------------------------------------ */

/* pooling on random configurations; configurations without a valid output
 * must be shape errors */
static void pool_forward_random(qt_op op)
{
    rng r = { op == QT_OP_MAXPOOL ? 11u : 12u };
    int is_max = op == QT_OP_MAXPOOL, valid = 0, invalid = 0;
    for (int iter = 0; valid < 40; iter++) {
        qt_attr a;
        rand_pool_attr(&r, &a, is_max);
        int N = rint_in(&r, 0, 1) ? 4 : 1, C = rint_in(&r, 1, 3);
        int H = sizes[rint_in(&r, 0, 6)], W = sizes[rint_in(&r, 0, 6)];
        rgeom g0 = rg_of(&a);
        int Ho = ref_len(H, g0.pt, g0.pb, g0.kh, g0.sh, g0.dh, g0.ceil_mode);
        int Wo = ref_len(W, g0.pl, g0.pr, g0.kw, g0.sw, g0.dw, g0.ceil_mode);
        qt_graph *g = qt_graph_new();
        qt_error err;
        int in = qt_graph_input(g, "x", C, H, W, &err);
        int id = qt_graph_add(g, op, "pool", &in, 1, &a, &err);
        if (Ho < 1 || Wo < 1) {
            if (id >= 0) fail_msg("iter %d: %dx%d k%dx%d s%dx%d d%dx%d p%d,%d,%d,%d ceil %d: "
                                  "expected a shape error", iter, H, W, g0.kh, g0.kw, g0.sh,
                                  g0.sw, g0.dh, g0.dw, g0.pt, g0.pl, g0.pb, g0.pr, g0.ceil_mode);
            assert_non_null(strstr(err.text, "'pool'"));
            assert_non_null(strstr(err.text, "output"));
            invalid++;
            qt_graph_free(g);
            continue;
        }
        if (id < 0) fail_msg("iter %d: unexpected error: %s", iter, err.text);
        int shp[3];
        qt_graph_node_shape(g, id, shp);
        if (shp[0] != C || shp[1] != Ho || shp[2] != Wo)
            fail_msg("iter %d: shape %dx%dx%d, want %dx%dx%d (H %d W %d k%dx%d s%dx%d "
                     "d%dx%d p%d,%d,%d,%d ceil %d)", iter, shp[0], shp[1], shp[2], C, Ho, Wo,
                     H, W, g0.kh, g0.kw, g0.sh, g0.sw, g0.dh, g0.dw, g0.pt, g0.pl, g0.pb,
                     g0.pr, g0.ceil_mode);
        assert_int_equal(qt_graph_node_macs(g, id), (uint64_t)C * Ho * Wo * g0.kh * g0.kw);
        size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * Ho * Wo;
        float *x = malloc(nx * sizeof *x);
        fill(&r, x, nx, -2.0, 2.0);
        /* a few -inf inputs for maxpool: still selectable */
        if (is_max && iter % 5 == 0) x[rnext(&r) % nx] = -INFINITY;
        double *xd = to_d(x, nx), *yd = malloc(ny * sizeof *yd);
        if (is_max) ref_maxpool(xd, N, C, H, W, &g0, Ho, Wo, yd, NULL);
        else ref_avgpool(xd, N, C, H, W, &g0, Ho, Wo, yd);
        const qt_tensor *y;
        fwd(g, NULL, x, N, 0, &y);
        for (size_t i = 0; i < ny; i++) {
            if (is_max) {
                if (!same_bits(y->data[i], (float)yd[i]))
                    fail_msg("iter %d: max[%zu] %g, want %g", iter, i, (double)y->data[i], yd[i]);
            } else {
                near(y->data[i], yd[i], 1e-6 * fabs(yd[i]) + 1e-12, "avg", i);
            }
        }
        valid++;
        free(x); free(xd); free(yd);
        qt_graph_free(g);
    }
    print_message("%s: %d configurations, %d shape errors\n", is_max ? "maxpool" : "avgpool",
                  valid, invalid);
}

static void t_maxpool_forward(void **st) { (void)st; pool_forward_random(QT_OP_MAXPOOL); }
static void t_avgpool_forward(void **st) { (void)st; pool_forward_random(QT_OP_AVGPOOL); }

/* output sizes as PyTorch computes them (pooling_output_shape) */
static void t_output_sizes(void **st)
{
    (void)st;
    static const struct {
        int H, k, s, p, d, ceil_mode, out;
    } cases[] = {
        { 5, 2, 2, 0, 1, 1, 3 },     /* 5x5, k2 s2, ceil: 3x3 */
        { 5, 2, 2, 0, 1, 0, 2 },     /* floor: 2x2 */
        { 6, 3, 2, 1, 1, 1, 4 },     /* ceil(5/2)+1 = 4, the last starts at 6 < 7 */
        { 6, 3, 2, 1, 1, 0, 3 },
        { 5, 3, 3, 1, 1, 1, 2 },     /* ceil gives 3, the last would start at 6 >= 5+1: dropped */
        { 4, 2, 3, 1, 1, 1, 2 },     /* ceil gives 3, the last would start at 6 >= 4+1: dropped */
        { 1, 2, 2, 1, 1, 1, 1 },     /* ceil gives 2, the last would start at 2 >= 1+1: dropped */
        { 112, 3, 2, 0, 1, 1, 56 },  /* GoogLeNet maxpool1 */
        { 112, 3, 2, 0, 1, 0, 55 },
        { 28, 3, 2, 0, 1, 1, 14 },   /* GoogLeNet maxpool3 */
        { 14, 2, 2, 0, 1, 1, 7 },
        { 7, 3, 2, 1, 1, 1, 4 },
        { 7, 3, 1, 1, 2, 0, 5 },     /* dilation 2: extent 5 */
        { 8, 2, 2, 1, 3, 1, 4 },     /* dilation 3: extent 4, (8+2-4)/2 + 1 = 4 exactly */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qt_attr a;
        memset(&a, 0, sizeof a);
        a.kernel[0] = a.kernel[1] = cases[i].k;
        a.stride[0] = a.stride[1] = cases[i].s;
        a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = cases[i].p;
        a.dilation[0] = a.dilation[1] = cases[i].d;
        a.ceil_mode = cases[i].ceil_mode;
        int id, shp[3];
        int want = cases[i].out;
        qt_graph *g = one_op(QT_OP_MAXPOOL, "mp", 1, cases[i].H, cases[i].H, &a, &id);
        qt_graph_node_shape(g, id, shp);
        if (shp[1] != want || shp[2] != want)
            fail_msg("case %zu: H %d k %d s %d p %d d %d ceil %d: %dx%d, want %d", i,
                     cases[i].H, cases[i].k, cases[i].s, cases[i].p, cases[i].d,
                     cases[i].ceil_mode, shp[1], shp[2], want);
        assert_int_equal(want, ref_len(cases[i].H, cases[i].p, cases[i].p, cases[i].k,
                                       cases[i].s, cases[i].d, cases[i].ceil_mode));
        qt_graph_free(g);
    }
    /* avgpool divisors in PyTorch: k2 s2 p1 count_pad on ones(4x4) gives
     * 0.25 0.5 0.25 / 0.5 1 0.5 / 0.25 0.5 0.25; without count_pad all ones.
     * 5x5 k2 s2 ceil count_pad: the clipped last window divides by what is
     * inside the padded input (1 or 2 positions): all ones. */
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 2; a.stride[0] = a.stride[1] = 2;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    float ones[25];
    for (int i = 0; i < 25; i++) ones[i] = 1.0f;
    static const float want_cp[9] = { .25f, .5f, .25f, .5f, 1, .5f, .25f, .5f, .25f };
    for (int cp = 0; cp < 2; cp++) {
        int id;
        const qt_tensor *y;
        a.count_pad = cp;
        qt_graph *g = one_op(QT_OP_AVGPOOL, "ap", 1, 4, 4, &a, &id);
        fwd(g, NULL, ones, 1, 0, &y);
        assert_int_equal(y->size, 9);
        for (int i = 0; i < 9; i++) near(y->data[i], cp ? want_cp[i] : 1.0, 0, "ap", (size_t)i);
        qt_graph_free(g);
    }
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 2; a.stride[0] = a.stride[1] = 2;
    a.ceil_mode = 1; a.count_pad = 1;
    int id;
    const qt_tensor *y;
    qt_graph *g = one_op(QT_OP_AVGPOOL, "ap", 1, 5, 5, &a, &id);
    fwd(g, NULL, ones, 1, 0, &y);
    assert_int_equal(y->size, 9);
    for (int i = 0; i < 9; i++) near(y->data[i], 1.0, 0, "ceil", (size_t)i);
    qt_graph_free(g);
}

/* maxpool NaN and tie rules */
static void t_maxpool_nan_ties(void **st)
{
    (void)st;
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 2; a.stride[0] = a.stride[1] = 2;
    int id;
    qt_graph *g = one_op(QT_OP_MAXPOOL, "mp", 1, 2, 4, &a, &id);
    /* window 0: 1 NaN / 3 NaN -> NaN from position 1; window 1: 5 5 / 5 2 -> 5 at 2 */
    float x[8] = { 1, NAN, 5, 5, 3, NAN, 5, 2 };
    const qt_tensor *y;
    fwd(g, NULL, x, 1, 0, &y);
    assert_true(isnan(y->data[0]));
    assert_true(y->data[1] == 5.0f);
    float dy[2] = { 10, 20 };
    bwd(g, NULL, dy);
    const float *dx = qt_graph_grad(g, 0, -1)->data;
    static const float want[8] = { 0, 10, 20, 0, 0, 0, 0, 0 };
    for (int i = 0; i < 8; i++) near(dx[i], want[i], 0, "dx", (size_t)i);
    /* NaN first in the window */
    float x2[8] = { NAN, 1, -INFINITY, -INFINITY, 7, NAN, -INFINITY, -INFINITY };
    fwd(g, NULL, x2, 1, 0, &y);
    assert_true(isnan(y->data[0]));
    assert_true(isinf(y->data[1]) && y->data[1] < 0);
    bwd(g, NULL, dy);
    dx = qt_graph_grad(g, 0, -1)->data;
    static const float want2[8] = { 10, 0, 20, 0, 0, 0, 0, 0 };
    for (int i = 0; i < 8; i++) near(dx[i], want2[i], 0, "dx2", (size_t)i);
    qt_graph_free(g);
}

/* the 2x2, stride 2 pool (the zoo's; ops_pool.c runs it without the axis
 * tables): odd and even sizes, ties (values from a small set), NaN, -inf
 * and -0/+0, values and argmax (through backward) against the reference */
static void t_maxpool_2x2_fast(void **st)
{
    (void)st;
    rng r = { 29 };
    static const float vals[] = { -1.0f, 0.0f, -0.0f, 2.0f, 2.0f, -INFINITY, NAN, 3.5f };
    for (int iter = 0; iter < 40; iter++) {
        int N = rint_in(&r, 1, 3), C = rint_in(&r, 1, 4);
        int H = rint_in(&r, 2, 13), W = rint_in(&r, 2, 13), id, shp[3];
        qt_attr a;
        memset(&a, 0, sizeof a);
        a.kernel[0] = a.kernel[1] = 2; a.stride[0] = a.stride[1] = 2;
        qt_graph *g = one_op(QT_OP_MAXPOOL, "mp", C, H, W, &a, &id);
        qt_graph_node_shape(g, id, shp);
        int Ho = shp[1], Wo = shp[2];
        assert_true(Ho == H / 2 && Wo == W / 2);
        size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * Ho * Wo;
        float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
        assert_non_null(x); assert_non_null(dy);
        int nan_rate = iter % 4 == 0 ? 8 : 7;        /* 1 in 4 sets without NaN */
        for (size_t i = 0; i < nx; i++) x[i] = vals[rint_in(&r, 0, nan_rate - 1)];
        for (size_t i = 0; i < ny; i++) dy[i] = (float)(i + 1);
        double *xd = to_d(x, nx), *yd = malloc(ny * sizeof *yd);
        int *arg = malloc(ny * sizeof *arg);
        assert_non_null(yd); assert_non_null(arg);
        rgeom rg = rg_of(&a);
        ref_maxpool(xd, N, C, H, W, &rg, Ho, Wo, yd, arg);
        const qt_tensor *y;
        fwd(g, NULL, x, N, 0, &y);
        for (size_t o = 0; o < ny; o++) {
            if (isnan(yd[o])) assert_true(isnan(y->data[o]));
            else assert_true(y->data[o] == (float)yd[o]);
            /* the selected element itself: -0 and +0 are told apart */
            size_t plane = o / ((size_t)Ho * Wo);
            float sel = x[plane * H * W + (size_t)arg[o]];
            if (!isnan(sel)) assert_memory_equal(&y->data[o], &sel, sizeof sel);
        }
        bwd(g, NULL, dy);
        const float *dx = qt_graph_grad(g, 0, -1)->data;
        float *want = calloc(nx, sizeof *want);
        assert_non_null(want);
        for (size_t o = 0; o < ny; o++) {
            size_t plane = o / ((size_t)Ho * Wo);
            want[plane * H * W + (size_t)arg[o]] += dy[o];
        }
        for (size_t i = 0; i < nx; i++) near(dx[i], want[i], 0, "dx", i);
        free(x); free(dy); free(xd); free(yd); free(arg); free(want);
        qt_graph_free(g);
    }
}

static void t_gap_forward(void **st)
{
    (void)st;
    rng r = { 13 };
    for (int iter = 0; iter < 30; iter++) {
        int N = iter % 2 ? 4 : 1, C = rint_in(&r, 1, 5);
        int H = sizes[rint_in(&r, 0, 6)], W = sizes[rint_in(&r, 0, 6)], id, shp[3];
        qt_graph *g = one_op(QT_OP_GAP, "gap", C, H, W, NULL, &id);
        qt_graph_node_shape(g, id, shp);
        assert_true(shp[0] == C && shp[1] == 1 && shp[2] == 1);
        assert_int_equal(qt_graph_node_macs(g, id), (uint64_t)C * H * W);
        size_t nx = (size_t)N * C * H * W;
        float *x = malloc(nx * sizeof *x);
        fill(&r, x, nx, -3.0, 3.0);
        double *xd = to_d(x, nx), yd[4 * 5];
        ref_gap(xd, N, C, H * W, yd);
        const qt_tensor *y;
        fwd(g, NULL, x, N, 0, &y);
        assert_int_equal(y->size, (size_t)N * C);
        for (int i = 0; i < N * C; i++) near(y->data[i], yd[i], 1e-6 * fabs(yd[i]) + 1e-12, "gap", (size_t)i);
        free(x); free(xd);
        qt_graph_free(g);
    }
}

/* a batchnorm graph with random parameters (running variance > 0) */
static qt_graph *bn_graph(rng *r, int C, int H, int W, float eps, float mom, int *id)
{
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.eps = eps; a.momentum = mom;
    qt_graph *g = one_op(QT_OP_BATCHNORM, "bn", C, H, W, &a, id);
    fill(r, qt_graph_param(g, *id, 0)->data, (size_t)C, 0.5, 2.0);
    fill(r, qt_graph_param(g, *id, 1)->data, (size_t)C, -1.0, 1.0);
    fill(r, qt_graph_param(g, *id, 2)->data, (size_t)C, -0.5, 0.5);
    fill(r, qt_graph_param(g, *id, 3)->data, (size_t)C, 0.2, 3.0);
    return g;
}

static void bn_params_d(qt_graph *g, int id, int C, double *gam, double *bet, double *rm, double *rv)
{
    for (int c = 0; c < C; c++) {
        gam[c] = qt_graph_param(g, id, 0)->data[c];
        bet[c] = qt_graph_param(g, id, 1)->data[c];
        rm[c] = qt_graph_param(g, id, 2)->data[c];
        rv[c] = qt_graph_param(g, id, 3)->data[c];
    }
}

static void t_bn_forward(void **st)
{
    (void)st;
    rng r = { 14 };
    for (int iter = 0; iter < 36; iter++) {
        int train = iter % 2, N = train ? (iter % 4 == 1 ? 2 : 4) : (iter % 4 == 0 ? 1 : 4);
        int C = rint_in(&r, 1, 5), H = sizes[rint_in(&r, 0, 4)], W = sizes[rint_in(&r, 0, 4)], id;
        float eps = iter % 3 == 0 ? 0.0f : 1e-3f;
        qt_graph *g = bn_graph(&r, C, H, W, eps, 0.0f, &id);
        int shp[3];
        qt_graph_node_shape(g, id, shp);
        assert_true(shp[0] == C && shp[1] == H && shp[2] == W);
        assert_int_equal(qt_graph_node_macs(g, id), 2 * (uint64_t)C * H * W);
        for (int k = 0; k < 4; k++) {
            qt_tensor *t = qt_graph_param(g, id, k);
            assert_true(t && t->ndim == 1 && t->shape[0] == C && t->size == (size_t)C);
        }
        size_t nx = (size_t)N * C * H * W;
        float *x = malloc(nx * sizeof *x);
        fill(&r, x, nx, -2.0, 3.0);
        double *xd = to_d(x, nx), *yd = malloc(nx * sizeof *yd);
        double gam[5], bet[5], rm[5], rv[5];
        bn_params_d(g, id, C, gam, bet, rm, rv);
        ref_bn(xd, N, C, H * W, gam, bet, rm, rv, eps == 0.0f ? 1e-5 : (double)eps, train,
               yd, NULL, NULL);
        const qt_tensor *y;
        fwd(g, NULL, x, N, train, &y);
        for (size_t i = 0; i < nx; i++) near(y->data[i], yd[i], 2e-6 * (1 + fabs(yd[i])), "bn", i);
        free(x); free(xd); free(yd);
        qt_graph_free(g);
    }
}

/* ------------------------------------------------------------------------ */
/* 2. backward vs finite differences                                          */
/* ------------------------------------------------------------------------ */

typedef struct fdctx {
    qt_op op;
    int N, C, H, W, Ho, Wo, train;
    rgeom r;
    double eps, *gam, *bet, *rm, *rv;
    const double *R;      /* loss = sum(y * R) */
    size_t ny;
    double *ybuf;
} fdctx;

static double fd_loss(fdctx *f, const double *x)
{
    switch (f->op) {
    case QT_OP_AVGPOOL: ref_avgpool(x, f->N, f->C, f->H, f->W, &f->r, f->Ho, f->Wo, f->ybuf); break;
    case QT_OP_MAXPOOL: ref_maxpool(x, f->N, f->C, f->H, f->W, &f->r, f->Ho, f->Wo, f->ybuf, NULL); break;
    case QT_OP_GAP: ref_gap(x, f->N, f->C, f->H * f->W, f->ybuf); break;
    default: ref_bn(x, f->N, f->C, f->H * f->W, f->gam, f->bet, f->rm, f->rv, f->eps,
                    f->train, f->ybuf, NULL, NULL); break;
    }
    double L = 0.0;
    for (size_t i = 0; i < f->ny; i++) L += f->ybuf[i] * f->R[i];
    return L;
}

/* central differences of the loss in x[i] (and in v[i] for parameters) */
static double fd_at(fdctx *f, double *x, double *v, size_t i, double h)
{
    double *p = v ? &v[i] : &x[i], keep = *p;
    *p = keep + h;
    double lp = fd_loss(f, x);
    *p = keep - h;
    double lm = fd_loss(f, x);
    *p = keep;
    return (lp - lm) / (2 * h);
}

/* run op forward+backward in the engine and compare dx with differences */
static void pool_fd(qt_op op, int iters, uint64_t seed)
{
    rng r = { seed };
    int checked = 0;
    for (int iter = 0; iter < iters;) {
        qt_attr a;
        rand_pool_attr(&r, &a, op == QT_OP_MAXPOOL);
        int N = iter % 2 ? 2 : 1, C = rint_in(&r, 1, 2);
        int H = sizes[rint_in(&r, 1, 6)], W = sizes[rint_in(&r, 1, 6)];
        rgeom g0 = rg_of(&a);
        int Ho = ref_len(H, g0.pt, g0.pb, g0.kh, g0.sh, g0.dh, g0.ceil_mode);
        int Wo = ref_len(W, g0.pl, g0.pr, g0.kw, g0.sw, g0.dw, g0.ceil_mode);
        if (op == QT_OP_GAP) Ho = Wo = 1;
        if (Ho < 1 || Wo < 1) continue;
        int id;
        qt_graph *g = one_op(op, "p", C, H, W, op == QT_OP_GAP ? NULL : &a, &id);
        size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * Ho * Wo;
        float *x = malloc(nx * sizeof *x), *R = malloc(ny * sizeof *R);
        fill(&r, x, nx, -2.0, 2.0);
        fill(&r, R, ny, -1.0, 1.0);
        const qt_tensor *y;
        fwd(g, NULL, x, N, 1, &y);
        bwd(g, NULL, R);
        const float *dx = qt_graph_grad(g, 0, -1)->data;
        double *xd = to_d(x, nx), *Rd = to_d(R, ny), *yb = malloc(ny * sizeof *yb);
        fdctx f = { op, N, C, H, W, Ho, Wo, 1, g0, 0, NULL, NULL, NULL, NULL, Rd, ny, yb };
        if (op == QT_OP_MAXPOOL) {
            /* analytic routing: dy goes to the first maximum */
            int *arg = malloc(ny * sizeof *arg), *arg2 = malloc(ny * sizeof *arg2);
            double *want = calloc(nx, sizeof *want);
            ref_maxpool(xd, N, C, H, W, &g0, Ho, Wo, yb, arg);
            for (size_t o = 0; o < ny; o++) {
                size_t plane = o / ((size_t)Ho * Wo);
                if (arg[o] >= 0) want[plane * H * W + (size_t)arg[o]] += R[o];
            }
            for (size_t i = 0; i < nx; i++) near(dx[i], want[i], 1e-6, "maxpool dx", i);
            /* differences where no window's choice moves under +-h */
            for (size_t i = 0; i < nx; i++) {
                double h = 1e-4, keep = xd[i];
                int stable = 1;
                for (int sgn = -1; sgn <= 1 && stable; sgn += 2) {
                    xd[i] = keep + sgn * h;
                    ref_maxpool(xd, N, C, H, W, &g0, Ho, Wo, yb, arg2);
                    stable = !memcmp(arg, arg2, ny * sizeof *arg);
                }
                xd[i] = keep;
                if (!stable) continue;
                near(dx[i], fd_at(&f, xd, NULL, i, h), 1e-6, "maxpool fd", i);
                checked++;
            }
            free(arg); free(arg2); free(want);
        } else {
            for (size_t i = 0; i < nx; i++, checked++)
                near(dx[i], fd_at(&f, xd, NULL, i, 1e-3), 1e-6, "pool fd", i);
        }
        free(x); free(R); free(xd); free(Rd); free(yb);
        qt_graph_free(g);
        iter++;
    }
    print_message("%s: %d gradient elements checked\n", qt_op_name(op), checked);
}

static void t_avgpool_backward(void **st) { (void)st; pool_fd(QT_OP_AVGPOOL, 16, 21); }
static void t_gap_backward(void **st) { (void)st; pool_fd(QT_OP_GAP, 8, 22); }
static void t_maxpool_backward(void **st) { (void)st; pool_fd(QT_OP_MAXPOOL, 16, 23); }

/* batchnorm: dx, dgamma, dbeta; training through the batch statistics */
static void bn_fd(int train, int C, int H, int W, int N, uint64_t seed)
{
    rng r = { seed };
    int id;
    qt_graph *g = bn_graph(&r, C, H, W, 1e-3f, 0.0f, &id);
    double gam[8], bet[8], rm[8], rv[8];
    bn_params_d(g, id, C, gam, bet, rm, rv);
    size_t nx = (size_t)N * C * H * W;
    float *x = malloc(nx * sizeof *x), *R = malloc(nx * sizeof *R);
    fill(&r, x, nx, -2.0, 2.0);
    fill(&r, R, nx, -1.0, 1.0);
    const qt_tensor *y;
    fwd(g, NULL, x, N, train, &y);
    bwd(g, NULL, R);
    const float *dx = qt_graph_grad(g, 0, -1)->data;
    const float *dgam = qt_graph_grad(g, id, 0)->data, *dbet = qt_graph_grad(g, id, 1)->data;
    double *xd = to_d(x, nx), *Rd = to_d(R, nx), *yb = malloc(nx * sizeof *yb);
    rgeom r0;
    memset(&r0, 0, sizeof r0);
    /* train: the statistics are the batch's, so rm/rv do not enter */
    fdctx f = { QT_OP_BATCHNORM, N, C, H, W, H, W, train, r0, 1e-3f, gam, bet, rm, rv, Rd, nx, yb };
    f.eps = (double)1e-3f;
    double scale = 0.0;
    for (size_t i = 0; i < nx; i++) scale = fmax(scale, fabs(dx[i]));
    for (size_t i = 0; i < nx; i++)
        near(dx[i], fd_at(&f, xd, NULL, i, 1e-5), 2e-5 * (1 + scale), train ? "bn dx train" : "bn dx", i);
    for (int c = 0; c < C; c++) {
        near(dgam[c], fd_at(&f, xd, gam, (size_t)c, 1e-5), 2e-5 * (1 + fabs(dgam[c])), "dgamma", (size_t)c);
        near(dbet[c], fd_at(&f, xd, bet, (size_t)c, 1e-5), 2e-5 * (1 + fabs(dbet[c])), "dbeta", (size_t)c);
    }
    /* in training the gradient sums to zero per channel (mean removed) */
    if (train)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < H * W; i++) s += dx[((size_t)n * C + c) * H * W + i];
            near(s, 0.0, 1e-4 * (1 + scale), "sum dx", (size_t)c);
        }
    free(x); free(R); free(xd); free(Rd); free(yb);
    qt_graph_free(g);
}

static void t_bn_backward(void **st)
{
    (void)st;
    bn_fd(1, 3, 5, 3, 4, 31);   /* training, 4-D */
    bn_fd(1, 2, 1, 1, 2, 32);   /* training, M = 2 (the smallest) */
    bn_fd(1, 7, 1, 1, 5, 33);   /* training, flat features */
    bn_fd(0, 3, 5, 3, 4, 34);   /* inference */
    bn_fd(0, 4, 1, 1, 1, 35);   /* inference, batch 1 */
}

/* ------------------------------------------------------------------------ */
/* 3. batchnorm running statistics                                            */
/* ------------------------------------------------------------------------ */

static void running_stats(float mom_attr, int C, int H, int W, int N, uint64_t seed)
{
    rng r = { seed };
    int id;
    qt_graph *g = bn_graph(&r, C, H, W, 0.0f, mom_attr, &id);
    double m = mom_attr == 0.0f ? 0.1 : (double)mom_attr, M = (double)N * H * W;
    double rm[8], rv[8], gam[8], bet[8], dum[8], bm[8], bv[8];
    bn_params_d(g, id, C, gam, bet, rm, rv);
    size_t nx = (size_t)N * C * H * W;
    float *x = malloc(nx * sizeof *x);
    double *yd = malloc(nx * sizeof *yd);
    const qt_tensor *y;
    for (int step = 0; step < 4; step++) {
        fill(&r, x, nx, -1.0 + step, 2.0 + 2 * step);
        double *xd = to_d(x, nx);
        ref_bn(xd, N, C, H * W, gam, bet, dum, dum, 1e-5, 1, yd, bm, bv);
        for (int c = 0; c < C; c++) {
            rm[c] = (1 - m) * rm[c] + m * bm[c];
            rv[c] = (1 - m) * rv[c] + m * bv[c] * M / (M - 1);
        }
        fwd(g, NULL, x, N, 1, &y);
        for (int c = 0; c < C; c++) {
            near(qt_graph_param(g, id, 2)->data[c], rm[c], 1e-6 * (1 + fabs(rm[c])), "rmean", (size_t)c);
            near(qt_graph_param(g, id, 3)->data[c], rv[c], 1e-6 * (1 + fabs(rv[c])), "rvar", (size_t)c);
        }
        free(xd);
    }
    /* inference: the running statistics, which stay as they are */
    float rmf[8], rvf[8];
    for (int c = 0; c < C; c++) {
        rmf[c] = qt_graph_param(g, id, 2)->data[c];
        rvf[c] = qt_graph_param(g, id, 3)->data[c];
        rm[c] = rmf[c]; rv[c] = rvf[c];
    }
    fill(&r, x, nx, -3.0, 3.0);
    double *xd = to_d(x, nx);
    ref_bn(xd, N, C, H * W, gam, bet, rm, rv, 1e-5, 0, yd, NULL, NULL);
    fwd(g, NULL, x, N, 0, &y);
    for (size_t i = 0; i < nx; i++) near(y->data[i], yd[i], 2e-6 * (1 + fabs(yd[i])), "infer", i);
    for (int c = 0; c < C; c++) {
        assert_true(same_bits(qt_graph_param(g, id, 2)->data[c], rmf[c]));
        assert_true(same_bits(qt_graph_param(g, id, 3)->data[c], rvf[c]));
    }
    free(x); free(xd); free(yd);
    qt_graph_free(g);
}

static void t_bn_running(void **st)
{
    (void)st;
    running_stats(0.0f, 3, 4, 5, 4, 41);    /* default momentum 0.1 */
    running_stats(0.3f, 2, 3, 3, 2, 42);
    running_stats(1.0f, 5, 1, 1, 6, 43);    /* flat; momentum 1: the last batch */
}

/* 2-D input from a dense layer: batchnorm over features */
static void t_bn_dense(void **st)
{
    (void)st;
    rng r = { 51 };
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input(g, "x", 1, 1, 8, &err);
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.out = 5; a.bias = 1;
    int fc = qt_graph_add(g, QT_OP_DENSE, "fc", &in, 1, &a, &err);
    assert_true(fc > 0);
    memset(&a, 0, sizeof a);
    int bn = qt_graph_add(g, QT_OP_BATCHNORM, "bn", &fc, 1, &a, &err);
    if (bn < 0) fail_msg("%s", err.text);
    fill(&r, qt_graph_param(g, bn, 0)->data, 5, 0.5, 2.0);
    fill(&r, qt_graph_param(g, bn, 1)->data, 5, -1.0, 1.0);
    int N = 6;
    float x[6 * 8], R[6 * 5];
    fill(&r, x, sizeof x / sizeof *x, -1.0, 1.0);
    fill(&r, R, sizeof R / sizeof *R, -1.0, 1.0);
    for (int train = 1; train >= 0; train--) {
        const qt_tensor *y;
        fwd(g, NULL, x, N, train, &y);
        const float *h = qt_graph_activation(g, fc)->data;
        double hd[30], yd[30], gam[5], bet[5], rm[5], rv[5];
        for (int i = 0; i < 30; i++) hd[i] = h[i];
        bn_params_d(g, bn, 5, gam, bet, rm, rv);
        ref_bn(hd, N, 5, 1, gam, bet, rm, rv, 1e-5, train, yd, NULL, NULL);
        assert_int_equal(y->size, 30);
        for (int i = 0; i < 30; i++) near(y->data[i], yd[i], 2e-6 * (1 + fabs(yd[i])), "dense bn", (size_t)i);
        bwd(g, NULL, R);
        /* d(bn input) against differences of the reference */
        const float *dh = qt_graph_grad(g, fc, -1)->data;
        rgeom r0;
        memset(&r0, 0, sizeof r0);
        double Rd[30], yb[30];
        for (int i = 0; i < 30; i++) Rd[i] = R[i];
        fdctx f = { QT_OP_BATCHNORM, N, 5, 1, 1, 1, 1, train, r0, 1e-5, gam, bet, rm, rv, Rd, 30, yb };
        for (size_t i = 0; i < 30; i++) near(dh[i], fd_at(&f, hd, NULL, i, 1e-5), 1e-4, "dense bn dx", i);
    }
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* 4. intrinsic quantization, bit for bit                                     */
/* ------------------------------------------------------------------------ */

typedef struct iref {
    const qt_format *f;
    uint64_t seed, stream;   /* the node's intrinsic stream */
} iref;

static uint32_t R_(const iref *q, uint64_t i)
{
    return q->f->round == QT_SR ? qt_rand32(q->seed, q->stream, i) : 0;
}

/* an operand or per-channel constant as the unit stores it (engine.h,
 * ops_pool.c): f's own rounding, but nearest-even when f is stochastic */
static float opnd(const qt_format *f, float v)
{
    qt_format rn = *f;
    if (rn.round == QT_SR) rn.round = QT_RNE;
    return qt_quantize1(&rn, v, 0);
}

/* avgpool (and gap, as a whole-plane window) in the documented order */
static void ref_avg_intr(const iref *q, int each, const float *x, int N, int C, int H, int W,
                         const rgeom *r, int Ho, int Wo, uint64_t sb, float *y)
{
    const qt_format *f = q->f;
    uint64_t KK = (uint64_t)r->kh * r->kw;
    for (int s = 0; s < N; s++)
        for (int c = 0; c < C; c++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    uint64_t idx = ((((sb + s) * C + c) * Ho + oy) * Wo + ox) * (KK + 1);
                    const float *xp = x + ((size_t)s * C + c) * H * W;
                    float acc = 0.0f;
                    double sum = 0.0;
                    int in = 0, padded = 0;
                    for (int ky = 0; ky < r->kh; ky++)
                        for (int kx = 0; kx < r->kw; kx++) {
                            int iy = oy * r->sh - r->pt + ky, ix = ox * r->sw - r->pl + kx;
                            if (iy >= -r->pt && iy < H + r->pb && ix >= -r->pl && ix < W + r->pr)
                                padded++;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            in++;
                            float v = xp[iy * W + ix];
                            if (each)
                                acc = qt_add(f, acc, opnd(f, v),
                                             R_(q, idx + (uint64_t)(ky * r->kw + kx)));
                            else
                                sum += v;
                        }
                    double D = r->count_pad ? padded : in;
                    float out;
                    if (each) {
                        out = qt_quantize1(f, (float)((double)acc / D), R_(q, idx + KK));
                    } else {
                        float sq = qt_quantize1(f, (float)sum, R_(q, idx));
                        out = qt_quantize1(f, (float)((double)sq / D), R_(q, idx + 1));
                    }
                    y[(((size_t)s * C + c) * Ho + oy) * Wo + ox] = out;
                }
}

/* batchnorm per the formulas of ops_pool.c; mean/var in double as documented */
static void ref_bn_intr(const iref *q, int each, int train, const float *x, int N, int C,
                        int HW, const float *gam, const float *bet, const float *rm,
                        const float *rv, float eps, uint64_t sb, float *y)
{
    const qt_format *f = q->f;
#define Q(v) opnd(f, (v))
    for (int c = 0; c < C; c++) {
        float mean, var;
        if (train) {
            double s = 0.0, ss = 0.0, md;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < HW; i++) s += x[((size_t)n * C + c) * HW + i];
            md = s / ((double)N * HW);
            for (int n = 0; n < N; n++)
                for (int i = 0; i < HW; i++) {
                    double d = x[((size_t)n * C + c) * HW + i] - md;
                    ss += d * d;
                }
            mean = (float)md;
            var = (float)(ss / ((double)N * HW));
        } else {
            mean = rm[c];
            var = rv[c];
        }
        float inv = Q(1.0f / Q(sqrtf(Q(var) + eps)));
        inv = Q(inv * Q(gam[c]));
        float rest = Q(Q(bet[c]) - Q(Q(mean) * inv));
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t k = ((size_t)n * C + c) * HW + i;
                uint64_t e = (sb + (uint64_t)n) * (uint64_t)C * HW + (uint64_t)c * HW + i;
                uint32_t r1 = R_(q, 2 * e), r2 = R_(q, 2 * e + 1);
                y[k] = each ? qt_add(f, qt_mul(f, Q(x[k]), inv, r1), rest, r2)
                            : qt_quantize1(f, qt_quantize1(f, x[k] * inv, r1) + rest, r2);
            }
    }
#undef Q
}

static qt_qconfig *intr_cfg(qt_graph *g, const char *node, const char *fmt, int each, uint64_t seed)
{
    char json[256];
    qt_qconfig *cfg;
    qt_error err;
    snprintf(json, sizeof json, "{\"%s\":{\"intrinsic\":\"%s\",\"intrinsic_mode\":\"%s\"}}",
             node, fmt, each ? "each" : "final");
    if (qt_qconfig_parse(g, json, &cfg, &err)) fail_msg("config: %s", err.text);
    qt_qconfig_set_seed(cfg, seed);
    return cfg;
}

static void bits_equal(const float *got, const float *want, size_t n, const char *what,
                       const char *fmt, int each)
{
    for (size_t i = 0; i < n; i++)
        if (!same_bits(got[i], want[i]))
            fail_msg("%s %s %s: [%zu] got %.9g, want %.9g", what, fmt, each ? "each" : "final",
                     i, (double)got[i], (double)want[i]);
}

static const char *intr_fmts[] = { "fixed<8,4>", "float<8,e4,b7>", "fixed<8,4,sr>",
                                   "float<8,e4,b7,sr>" };
#define NFMT (sizeof intr_fmts / sizeof *intr_fmts)

static void t_intrinsic_pool(void **st)
{
    (void)st;
    rng r = { 61 };
    int checked = 0;
    for (int iter = 0; iter < 12; iter++) {
        qt_attr a;
        rand_pool_attr(&r, &a, 0);
        int N = iter % 2 ? 3 : 1, C = rint_in(&r, 1, 3), H = sizes[rint_in(&r, 2, 6)];
        int W = sizes[rint_in(&r, 2, 6)];
        rgeom g0 = rg_of(&a);
        int Ho = ref_len(H, g0.pt, g0.pb, g0.kh, g0.sh, 1, g0.ceil_mode);
        int Wo = ref_len(W, g0.pl, g0.pr, g0.kw, g0.sw, 1, g0.ceil_mode);
        if (Ho < 1 || Wo < 1) { iter--; continue; }
        size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * Ho * Wo;
        float *x = malloc(nx * sizeof *x), *want = malloc((nx > ny ? nx : ny) * sizeof *want);
        fill(&r, x, nx, -6.0, 6.0);   /* fixed<8,4> saturates at -8/7.94 in sums */
        uint64_t sb = iter % 3 == 2 ? 5 : 0;
        for (int op = 0; op < 3; op++) {   /* avgpool, gap, maxpool */
            qt_op o = op == 0 ? QT_OP_AVGPOOL : op == 1 ? QT_OP_GAP : QT_OP_MAXPOOL;
            int id;
            qt_graph *g = one_op(o, "pool1", C, H, W, o == QT_OP_GAP ? NULL : &a, &id);
            g->sample_base = sb;
            for (size_t k = 0; k < NFMT; k++)
                for (int each = 0; each < 2; each++) {
                    qt_format f = P(intr_fmts[k]);
                    uint64_t seed = 3 + (uint64_t)iter;
                    iref q = { &f, seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC };
                    qt_qconfig *cfg = intr_cfg(g, "pool1", intr_fmts[k], each, seed);
                    const qt_tensor *y;
                    fwd(g, cfg, x, N, 0, &y);
                    if (o == QT_OP_AVGPOOL) {
                        ref_avg_intr(&q, each, x, N, C, H, W, &g0, Ho, Wo, sb, want);
                    } else if (o == QT_OP_GAP) {
                        rgeom gg;
                        memset(&gg, 0, sizeof gg);
                        gg.kh = H; gg.kw = W; gg.sh = gg.sw = 1;
                        ref_avg_intr(&q, each, x, N, C, H, W, &gg, 1, 1, sb, want);
                    } else {
                        /* maxpool: the exact max quantized once (any mode) */
                        double *xd = to_d(x, nx), *yd = malloc(ny * sizeof *yd);
                        rgeom gm = g0;
                        gm.dh = gm.dw = 1;
                        ref_maxpool(xd, N, C, H, W, &gm, Ho, Wo, yd, NULL);
                        size_t per = (size_t)C * Ho * Wo;
                        for (size_t i = 0; i < (size_t)N * per; i++)
                            want[i] = qt_quantize1(&f, (float)yd[i], R_(&q, sb * per + i));
                        free(xd); free(yd);
                    }
                    bits_equal(y->data, want, y->size, qt_op_name(o), intr_fmts[k], each);
                    checked += (int)y->size;
                    qt_qconfig_free(cfg);
                }
            qt_graph_free(g);
        }
        free(x); free(want);
    }
    print_message("intrinsic pooling: %d values bit-exact\n", checked);
}

static void t_intrinsic_bn(void **st)
{
    (void)st;
    rng r = { 62 };
    int checked = 0;
    for (int iter = 0; iter < 8; iter++) {
        int C = rint_in(&r, 1, 4), H = sizes[rint_in(&r, 0, 4)], W = sizes[rint_in(&r, 0, 4)];
        int N = 3, id;
        float eps = iter % 2 ? 1e-3f : 0.0f;
        qt_graph *g = bn_graph(&r, C, H, W, eps, 0.0f, &id);
        if (iter % 4 == 3) g->sample_base = 7;
        /* moderate statistics so that the result is not all saturation */
        fill(&r, qt_graph_param(g, id, 3)->data, (size_t)C, 0.5, 2.0);
        size_t nx = (size_t)N * C * H * W;
        float *x = malloc(nx * sizeof *x), *want = malloc(nx * sizeof *want);
        fill(&r, x, nx, -3.0, 3.0);
        float rm0[4], rv0[4];
        memcpy(rm0, qt_graph_param(g, id, 2)->data, (size_t)C * sizeof(float));
        memcpy(rv0, qt_graph_param(g, id, 3)->data, (size_t)C * sizeof(float));
        for (size_t k = 0; k < NFMT; k++)
            for (int each = 0; each < 2; each++)
                for (int train = 0; train < 2; train++) {
                    qt_format f = P(intr_fmts[k]);
                    uint64_t seed = 100 + (uint64_t)iter;
                    iref q = { &f, seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC };
                    qt_qconfig *cfg = intr_cfg(g, "bn", intr_fmts[k], each, seed);
                    /* the running statistics as they are before this pass */
                    memcpy(qt_graph_param(g, id, 2)->data, rm0, (size_t)C * sizeof(float));
                    memcpy(qt_graph_param(g, id, 3)->data, rv0, (size_t)C * sizeof(float));
                    const qt_tensor *y;
                    fwd(g, cfg, x, N, train, &y);
                    ref_bn_intr(&q, each, train, x, N, C, H * W, qt_graph_param(g, id, 0)->data,
                                qt_graph_param(g, id, 1)->data, rm0, rv0,
                                eps == 0.0f ? 1e-5f : eps, g->sample_base, want);
                    bits_equal(y->data, want, nx, train ? "bn train" : "bn", intr_fmts[k], each);
                    checked += (int)nx;
                    qt_qconfig_free(cfg);
                }
        free(x); free(want);
        qt_graph_free(g);
    }
    /* with quantized weights and bias: the kernel sees the quantized copies */
    {
        int id;
        qt_graph *g = bn_graph(&r, 3, 2, 2, 0.0f, 0.0f, &id);
        float x[12], want[12], gq[3], bq[3];
        fill(&r, x, 12, -3.0, 3.0);
        qt_qconfig *cfg;
        qt_error err;
        if (qt_qconfig_parse(g, "{\"bn\":{\"weights\":\"fixed<4,2>\",\"bias\":\"fixed<4,1>\","
                             "\"intrinsic\":\"fixed<8,4>\"}}", &cfg, &err))
            fail_msg("%s", err.text);
        qt_format fw = P("fixed<4,2>"), fb = P("fixed<4,1>"), f = P("fixed<8,4>");
        for (int c = 0; c < 3; c++) {
            gq[c] = qt_quantize1(&fw, qt_graph_param(g, id, 0)->data[c], 0);
            bq[c] = qt_quantize1(&fb, qt_graph_param(g, id, 1)->data[c], 0);
        }
        const qt_tensor *y;
        fwd(g, cfg, x, 1, 0, &y);
        iref q = { &f, 0, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC };
        ref_bn_intr(&q, 1, 0, x, 1, 3, 4, gq, bq, qt_graph_param(g, id, 2)->data,
                    qt_graph_param(g, id, 3)->data, 1e-5f, 0, want);
        bits_equal(y->data, want, 12, "bn wq", "fixed<8,4>", 1);
        qt_qconfig_free(cfg);
        qt_graph_free(g);
    }
    print_message("intrinsic batchnorm: %d values bit-exact\n", checked);
}

/* ------------------------------------------------------------------------ */
/* 4b. intrinsic EACH on fixed point: the integer paths (intr_fixed.c)       */
/*     against the reference loops (qt__intr_force_ref), bit for bit         */
/* ------------------------------------------------------------------------ */

/* a random fixed or ufixed format the integer paths take (W up to 16,
 * 0 <= F <= 12, every rounding mode, sym) as text; *range its largest
 * magnitude */
static void random_ifix(rng *r, char *buf, size_t n, double *range)
{
    static const char *rnd[] = { "rne", "rna", "sr", "rd", "rz" };
    int u = rint_in(r, 0, 3) == 0, W = u ? rint_in(r, 1, 15) : rint_in(r, 2, 16);
    int F = rint_in(r, 0, W < 12 ? W : 12), sym = !u && rint_in(r, 0, 2) == 0;
    snprintf(buf, n, "%s<%d,%d,%s%s>", u ? "ufixed" : "fixed", W, F, rnd[rint_in(r, 0, 4)],
             sym ? ",sym" : "");
    *range = ldexp(1.0, (u ? W : W - 1) - F);
}

/* inputs over the format's range times 0.25..4 (saturating some sums and
 * products), a few NaN and inf when nan is set */
static void ifix_input(rng *r, float *x, size_t n, double range, int nan)
{
    double m = range * (0.25 + 3.75 * runif(r));
    fill(r, x, n, -m, m);
    if (nan) {
        x[rint_in(r, 0, (int)n - 1)] = NAN;
        x[rint_in(r, 0, (int)n - 1)] = INFINITY;
        x[rint_in(r, 0, (int)n - 1)] = -INFINITY;
    }
}

/* forward under cfg with the integer paths and with the reference loops:
 * the same bits (NaN included) */
static void fast_vs_ref(qt_graph *g, const qt_qconfig *cfg, const float *x, int N, int train,
                        const char *what)
{
    const qt_tensor *y;
    qt__intr_force_ref = 0;
    fwd(g, cfg, x, N, train, &y);
    float *fast = malloc(y->size * sizeof *fast);
    assert_non_null(fast);
    memcpy(fast, y->data, y->size * sizeof *fast);
    qt__intr_force_ref = 1;
    fwd(g, cfg, x, N, train, &y);
    qt__intr_force_ref = 0;
    for (size_t i = 0; i < y->size; i++)
        if (memcmp(&fast[i], &y->data[i], sizeof *fast) != 0)
            fail_msg("%s: y[%zu] = %a (integer path) vs %a (reference)", what, i,
                     (double)fast[i], (double)y->data[i]);
    free(fast);
}

/* random per-sample dims of the given rank (the product at most about
 * maxper) and a channel axis below it */
static void rand_dims(rng *r, int rank, int *dims, size_t maxper)
{
    size_t per = 1;
    for (int i = 0; i < rank; i++) {
        int lim = (int)(maxper / per);
        lim = lim < 1 ? 1 : lim > 48 ? 48 : lim;
        dims[i] = rint_in(r, 1, lim);
        per *= (size_t)dims[i];
    }
}

static size_t prod(const int *d, int n)
{
    size_t p = 1;
    for (int i = 0; i < n; i++) p *= (size_t)d[i];
    return p;
}

static void t_intrinsic_int_bn(void **st)
{
    (void)st;
    rng r = { 91 };
    for (int it = 0; it < 120; it++) {
        int rank = rint_in(&r, 1, 4), dims[4], N = rint_in(&r, 1, 3), train = it % 3 == 1;
        rand_dims(&r, rank, dims, 1500);
        qt_attr a;
        memset(&a, 0, sizeof a);
        a.axis = rint_in(&r, 0, rank - 1);
        if (it % 4 == 0) {   /* planes of several stack chunks */
            rank = 3;
            a.axis = 0;
            dims[0] = rint_in(&r, 1, 4);
            dims[1] = rint_in(&r, 20, 48);
            dims[2] = rint_in(&r, 20, 48);
        }
        a.eps = it % 2 ? 1e-3f : 0.0f;
        int C = dims[a.axis];
        if (train && N * prod(dims, rank) / (size_t)C < 2) N = 2;
        qt_error err;
        qt_graph *g = qt_graph_new();
        assert_non_null(g);
        int in = qt_graph_input_nd(g, "x", rank, dims, &err);
        if (in < 0) fail_msg("%s", err.text);
        int id = qt_graph_add(g, QT_OP_BATCHNORM, "bn", &in, 1, &a, &err);
        if (id < 0) fail_msg("%s", err.text);
        char fmt[48], what[200];
        double range;
        random_ifix(&r, fmt, sizeof fmt, &range);
        fill(&r, qt_graph_param(g, id, 0)->data, (size_t)C, -2.0, 2.0);
        fill(&r, qt_graph_param(g, id, 1)->data, (size_t)C, -range, range);
        fill(&r, qt_graph_param(g, id, 2)->data, (size_t)C, -range, range);
        fill(&r, qt_graph_param(g, id, 3)->data, (size_t)C, 0.0, 2.0 * range);
        if (it % 10 == 9) {   /* NaN constants (sqrt of a negative), then inf (1/0) */
            qt_graph_param(g, id, 3)->data[0] = -4.0f;
            qt_graph_param(g, id, 3)->data[C - 1] = -(a.eps == 0.0f ? 1e-5f : a.eps);
        }
        g->sample_base = it % 4 == 3 ? 11 : 0;
        qt_qconfig *cfg = intr_cfg(g, "bn", fmt, 1, 40 + (uint64_t)it);
        size_t nx = (size_t)N * prod(dims, rank);
        float *x = malloc(nx * sizeof *x);
        assert_non_null(x);
        ifix_input(&r, x, nx, range, it % 6 == 5);
        snprintf(what, sizeof what, "bn rank %d axis %d N %d per %zu train %d %s", rank, a.axis,
                 N, prod(dims, rank), train, fmt);
        fast_vs_ref(g, cfg, x, N, train, what);
        free(x);
        qt_qconfig_free(cfg);
        qt_graph_free(g);
    }
}

/* avgpool (2-D, random attributes; leading dims fold into the batch) and
 * gap (any rank and channel axis; planes past one stack chunk) */
static void t_intrinsic_int_avg(void **st)
{
    (void)st;
    rng r = { 92 };
    for (int it = 0; it < 160; it++) {
        int gap = it % 2, N = rint_in(&r, 1, 3), rank, dims[4], id;
        qt_attr a;
        if (gap) {
            memset(&a, 0, sizeof a);
            rank = rint_in(&r, 1, 4);
            rand_dims(&r, rank, dims, 1200);
            a.axis = rint_in(&r, 0, rank - 1);
            if (it % 8 == 1) {   /* planes of many stack chunks */
                rank = 3;
                a.axis = 0;
                dims[0] = rint_in(&r, 1, 3);
                dims[1] = rint_in(&r, 30, 90);
                dims[2] = rint_in(&r, 30, 90);
            }
            a.mode = rint_in(&r, 0, 1);
        } else {
            rand_pool_attr(&r, &a, 0);
            rank = rint_in(&r, 3, 4);
            dims[0] = rint_in(&r, 1, 3);
            dims[1] = rint_in(&r, 1, 3);
            dims[rank - 2] = rint_in(&r, 1, 40);
            dims[rank - 1] = rint_in(&r, 1, 40);
        }
        qt_error err;
        qt_graph *g = qt_graph_new();
        assert_non_null(g);
        int in = qt_graph_input_nd(g, "x", rank, dims, &err);
        if (in < 0) fail_msg("%s", err.text);
        id = qt_graph_add(g, gap ? QT_OP_GAP : QT_OP_AVGPOOL, "pool", &in, 1, &a, &err);
        if (id < 0) {   /* no window fits: draw again */
            qt_graph_free(g);
            it--;
            continue;
        }
        char fmt[48], what[200];
        double range;
        random_ifix(&r, fmt, sizeof fmt, &range);
        g->sample_base = it % 4 == 3 ? 6 : 0;
        qt_qconfig *cfg = intr_cfg(g, "pool", fmt, 1, 70 + (uint64_t)it);
        size_t nx = (size_t)N * prod(dims, rank);
        float *x = malloc(nx * sizeof *x);
        assert_non_null(x);
        ifix_input(&r, x, nx, range, it % 6 == 5);
        snprintf(what, sizeof what, "%s rank %d dims %dx%dx%d... N %d k %dx%d s %dx%d %s",
                 gap ? "gap" : "avgpool", rank, dims[0], rank > 1 ? dims[1] : 1,
                 rank > 2 ? dims[2] : 1, N, a.kernel[0], a.kernel[1], a.stride[0], a.stride[1],
                 fmt);
        fast_vs_ref(g, cfg, x, N, 0, what);
        free(x);
        qt_qconfig_free(cfg);
        qt_graph_free(g);
    }
}

/* ------------------------------------------------------------------------ */
/* 5. shape errors                                                            */
/* ------------------------------------------------------------------------ */

static void expect_error(qt_op op, int C, int H, int W, const qt_attr *a, const char *word)
{
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input(g, "x", C, H, W, &err);
    int rc = qt_graph_add(g, op, "layer7", &in, 1, a, &err);
    if (rc != QT_EINVAL) fail_msg("%s %dx%dx%d: rc %d, want an error about %s", qt_op_name(op),
                                  C, H, W, rc, word);
    if (!strstr(err.text, "'layer7'") || !strstr(err.text, word))
        fail_msg("message '%s' should name the node and say '%s'", err.text, word);
    qt_graph_free(g);
}

static void t_shape_errors(void **st)
{
    (void)st;
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.kernel[0] = 0; a.kernel[1] = 2;
    expect_error(QT_OP_MAXPOOL, 1, 4, 4, &a, "kernel 0x2");
    expect_error(QT_OP_AVGPOOL, 1, 4, 4, &a, "kernel");
    a.kernel[0] = 2; a.stride[1] = -1;
    expect_error(QT_OP_MAXPOOL, 1, 4, 4, &a, "stride");
    a.stride[1] = 0; a.dilation[0] = -2;
    expect_error(QT_OP_MAXPOOL, 1, 4, 4, &a, "dilation");
    a.dilation[0] = 2;
    expect_error(QT_OP_AVGPOOL, 1, 4, 4, &a, "dilation");
    a.dilation[0] = 0; a.pad[2] = 2;                      /* pad == kernel */
    expect_error(QT_OP_AVGPOOL, 1, 4, 4, &a, "pad");
    a.pad[2] = -1;
    expect_error(QT_OP_MAXPOOL, 1, 4, 4, &a, "pad");
    a.pad[2] = 0;
    a.kernel[0] = a.kernel[1] = 3;
    expect_error(QT_OP_MAXPOOL, 2, 2, 5, &a, "input 2x2x5");
    expect_error(QT_OP_AVGPOOL, 2, 5, 2, &a, "output");
    a.dilation[1] = 3;                                    /* extent 7 > 5 + pads */
    expect_error(QT_OP_MAXPOOL, 1, 5, 5, &a, "dil 1x3");
    /* pad < the dilated extent is fine: 3 < 7 */
    a.pad[1] = a.pad[3] = 3;
    {
        qt_error err;
        int id;
        qt_graph *g = qt_graph_new();
        int in = qt_graph_input(g, "x", 1, 5, 5, &err);
        id = qt_graph_add(g, QT_OP_MAXPOOL, "mp", &in, 1, &a, &err);
        if (id < 0) fail_msg("%s", err.text);
        qt_graph_free(g);
    }
    memset(&a, 0, sizeof a);
    a.eps = -1.0f;
    expect_error(QT_OP_BATCHNORM, 3, 2, 2, &a, "eps");
    a.eps = NAN;
    expect_error(QT_OP_BATCHNORM, 3, 2, 2, &a, "eps");
    a.eps = 0.0f; a.momentum = 1.5f;
    expect_error(QT_OP_BATCHNORM, 3, 2, 2, &a, "momentum");
    /* training batchnorm on one value per channel */
    memset(&a, 0, sizeof a);
    int id;
    qt_graph *g = one_op(QT_OP_BATCHNORM, "bn9", 4, 1, 1, &a, &id);
    float x[4] = { 1, 2, 3, 4 };
    const qt_tensor *y;
    qt_error err;
    assert_int_equal(qt_forward(g, NULL, x, 1, 1, &y, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "'bn9'"));
    assert_non_null(strstr(err.text, "more than 1 value"));
    assert_int_equal(qt_forward(g, NULL, x, 1, 0, &y, &err), QT_OK);   /* inference is fine */
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* 6. 1 vs 2 threads                                                          */
/* ------------------------------------------------------------------------ */

typedef struct run_out { float *y, *dx, *dg, *db, *rm, *rv; size_t ny, nx, np; } run_out;

static void run_once(qt_graph *g, int id, const qt_qconfig *cfg, const float *x, const float *R,
                     int N, int train, const float *rm0, const float *rv0, run_out *o)
{
    const qt_tensor *y;
    qt_tensor *prm = qt_graph_param(g, id, 2), *prv = qt_graph_param(g, id, 3);
    if (prm) {
        memcpy(prm->data, rm0, prm->size * sizeof(float));
        memcpy(prv->data, rv0, prv->size * sizeof(float));
    }
    fwd(g, cfg, x, N, train, &y);
    o->ny = y->size;
    o->y = malloc(o->ny * sizeof(float));
    memcpy(o->y, y->data, o->ny * sizeof(float));
    bwd(g, cfg, R);
    const qt_tensor *dx = qt_graph_grad(g, 0, -1);
    o->nx = dx->size;
    o->dx = malloc(o->nx * sizeof(float));
    memcpy(o->dx, dx->data, o->nx * sizeof(float));
    o->np = prm ? prm->size : 0;
    o->dg = o->db = o->rm = o->rv = NULL;
    if (prm) {
        o->dg = malloc(o->np * sizeof(float)); o->db = malloc(o->np * sizeof(float));
        o->rm = malloc(o->np * sizeof(float)); o->rv = malloc(o->np * sizeof(float));
        memcpy(o->dg, qt_graph_grad(g, id, 0)->data, o->np * sizeof(float));
        memcpy(o->db, qt_graph_grad(g, id, 1)->data, o->np * sizeof(float));
        memcpy(o->rm, prm->data, o->np * sizeof(float));
        memcpy(o->rv, prv->data, o->np * sizeof(float));
    }
}

static void run_free(run_out *o)
{
    free(o->y); free(o->dx); free(o->dg); free(o->db); free(o->rm); free(o->rv);
}

static void t_threads(void **st)
{
    (void)st;
    rng r = { 71 };
    int N = 4, C = 16, H = 23, W = 25;   /* above the kernels' serial threshold */
    size_t nx = (size_t)N * C * H * W;
    float *x = malloc(nx * sizeof *x), *R = malloc(nx * sizeof *R);
    fill(&r, x, nx, -3.0, 3.0);
    fill(&r, R, nx, -1.0, 1.0);
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.kernel[0] = 3; a.kernel[1] = 2; a.stride[0] = 1; a.stride[1] = 2;
    a.pad[0] = 1; a.pad[3] = 1; a.ceil_mode = 1; a.count_pad = 1;
    static const qt_op ops[] = { QT_OP_MAXPOOL, QT_OP_AVGPOOL, QT_OP_GAP, QT_OP_BATCHNORM };
    static const char *cfgs[] = { NULL, "fixed<8,4,sr>", "float<8,e4,b7>" };
    int max_t = omp_get_max_threads();
    for (size_t k = 0; k < 4; k++)
        for (size_t ci = 0; ci < 3; ci++)
            for (int each = 0; each < 2; each++)
                for (int train = 0; train < 2; train++) {
                    if ((!cfgs[ci] && each) || (ops[k] != QT_OP_BATCHNORM && train)) continue;
                    int id;
                    qt_graph *g = one_op(ops[k], "op", C, H, W, &a, &id);
                    qt_qconfig *cfg = cfgs[ci] ? intr_cfg(g, "op", cfgs[ci], each, 9) : NULL;
                    float rm0[16], rv0[16];
                    fill(&r, rm0, 16, -0.5, 0.5);
                    fill(&r, rv0, 16, 0.5, 2.0);
                    run_out o1, o2;
                    omp_set_num_threads(1);
                    run_once(g, id, cfg, x, R, N, train, rm0, rv0, &o1);
                    omp_set_num_threads(2);
                    run_once(g, id, cfg, x, R, N, train, rm0, rv0, &o2);
                    omp_set_num_threads(max_t);
                    const char *what = qt_op_name(ops[k]);
                    assert_int_equal(o1.ny, o2.ny);
                    bits_equal(o1.y, o2.y, o1.ny, what, cfgs[ci] ? cfgs[ci] : "float", each);
                    bits_equal(o1.dx, o2.dx, o1.nx, what, "dx", each);
                    if (o1.np) {
                        bits_equal(o1.dg, o2.dg, o1.np, what, "dgamma", each);
                        bits_equal(o1.db, o2.db, o1.np, what, "dbeta", each);
                        bits_equal(o1.rm, o2.rm, o1.np, what, "rmean", each);
                        bits_equal(o1.rv, o2.rv, o1.np, what, "rvar", each);
                    }
                    run_free(&o1); run_free(&o2);
                    qt_qconfig_free(cfg);
                    qt_graph_free(g);
                }
    free(x); free(R);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(t_maxpool_forward),
        cmocka_unit_test(t_avgpool_forward),
        cmocka_unit_test(t_output_sizes),
        cmocka_unit_test(t_maxpool_nan_ties),
        cmocka_unit_test(t_maxpool_2x2_fast),
        cmocka_unit_test(t_gap_forward),
        cmocka_unit_test(t_bn_forward),
        cmocka_unit_test(t_avgpool_backward),
        cmocka_unit_test(t_gap_backward),
        cmocka_unit_test(t_maxpool_backward),
        cmocka_unit_test(t_bn_backward),
        cmocka_unit_test(t_bn_running),
        cmocka_unit_test(t_bn_dense),
        cmocka_unit_test(t_intrinsic_pool),
        cmocka_unit_test(t_intrinsic_bn),
        cmocka_unit_test(t_intrinsic_int_bn),
        cmocka_unit_test(t_intrinsic_int_avg),
        cmocka_unit_test(t_shape_errors),
        cmocka_unit_test(t_threads),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
