/*
 * test_ops_basic.c -- the engine's basic ops, the forward/backward driver
 * (exec.c) and quantization configurations (qconfig.c).
 *
 * The references do not share code with the kernels: every op is computed
 * again in float64 from the engine's own input activations; gradients are
 * checked against central finite differences of that float64 reference with
 * loss = sum(y * R), so dy = R; quantization points against scalar calls of
 * quant/ on the float results. Where a test compares bits, the values lie on
 * a dyadic grid so that every float sum in the engine is exact whatever the
 * order of summation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t rng_s;

static void rng_seed(uint64_t s) { rng_s = s; }

static uint64_t rng_next(void)
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double runif(double lo, double hi)
{
    return lo + (hi - lo) * ((double)(rng_next() >> 11) * 0x1p-53);
}

static int rpick(int lo, int hi)
{
    return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}

/* an odd size in [1, hi] */
static int rodd(int hi) { return 2 * rpick(0, (hi - 1) / 2) + 1; }

static void fill(float *p, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)runif(lo, hi);
}

/* multiples of 1/den in [-lim, lim] */
static void fill_dyadic(float *p, size_t n, int den, int lim)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)rpick(-lim * den, lim * den) / (float)den;
}

static float *fmalloc(size_t n) { float *p = calloc(n ? n : 1, sizeof *p); assert_non_null(p); return p; }
static double *dmalloc(size_t n) { double *p = calloc(n ? n : 1, sizeof *p); assert_non_null(p); return p; }

static double *to_double(const float *x, size_t n)
{
    double *d = dmalloc(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *fcopy(const float *x, size_t n)
{
    float *d = fmalloc(n);
    memcpy(d, x, n * sizeof *d);
    return d;
}

static uint32_t bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])))
            fail_msg("%s[%zu]: got %.9g, want %.9g (diff %.3g)", what, i, (double)got[i],
                     want[i], d);
    }
}

static void check_bits(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bits(got[i]) != bits(want[i]))
            fail_msg("%s[%zu]: got %a, want %a", what, i, (double)got[i], (double)want[i]);
}

static void check_msg(const char *what, const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", what, text, needle);
}

static qt_format fmt(const char *text)
{
    qt_format f;
    qt_error e;
    if (qt_format_parse(text, &f, &e) != QT_OK) fail_msg("format '%s': %s", text, e.text);
    return f;
}

static qt_attr attr0(void)
{
    qt_attr a;
    memset(&a, 0, sizeof a);
    return a;
}

static qt_attr dense_attr(int out, int bias)
{
    qt_attr a = attr0();
    a.out = out;
    a.bias = bias;
    return a;
}

static int input(qt_graph *g, const char *name, int c, int h, int w)
{
    qt_error e;
    int id = qt_graph_input(g, name, c, h, w, &e);
    if (id < 0) fail_msg("input '%s': %s", name, e.text);
    return id;
}

static int node(qt_graph *g, qt_op op, const char *name, const int *in, int n_in,
                const qt_attr *a)
{
    qt_error e;
    int id = qt_graph_add(g, op, name, in, n_in, a, &e);
    if (id < 0) fail_msg("add '%s': %s (%s)", name ? name : "?", qt_strerror(id), e.text);
    return id;
}

static int node1(qt_graph *g, qt_op op, const char *name, int in, const qt_attr *a)
{
    return node(g, op, name, &in, 1, a);
}

/* weights and bias of a node uniform in [-1, 1] */
static void fill_params(qt_graph *g, int id)
{
    for (int k = 0; k < 2; k++) {
        qt_tensor *t = qt_graph_param(g, id, k);
        if (t) fill(t->data, t->size, -1.0, 1.0);
    }
}

static size_t per_of(const qt_graph *g, int id)
{
    int s[3];
    qt_graph_node_shape(g, id, s);
    return (size_t)s[0] * s[1] * s[2];
}

static const float *fwd(qt_graph *g, const qt_qconfig *cfg, const float *x, int n, int train)
{
    const qt_tensor *y = NULL;
    qt_error e;
    int rc = qt_forward(g, cfg, x, n, train, &y, &e);
    if (rc != QT_OK) fail_msg("qt_forward: %s (%s)", qt_strerror(rc), e.text);
    assert_non_null(y);
    return y->data;
}

static void bwd(qt_graph *g, const qt_qconfig *cfg, const float *dy)
{
    qt_error e;
    int rc = qt_backward(g, cfg, dy, &e);
    if (rc != QT_OK) fail_msg("qt_backward: %s (%s)", qt_strerror(rc), e.text);
}

static const float *act(const qt_graph *g, int id)
{
    const qt_tensor *t = qt_graph_activation(g, id);
    assert_non_null(t);
    return t->data;
}

static const float *grad(const qt_graph *g, int id, int which)
{
    const qt_tensor *t = qt_graph_grad(g, id, which);
    if (!t) fail_msg("no gradient for node %d, which %d", id, which);
    return t->data;
}

static qt_qconfig *parse_ok(const qt_graph *g, const char *json)
{
    qt_qconfig *c = NULL;
    qt_error e;
    int rc = qt_qconfig_parse(g, json, &c, &e);
    if (rc != QT_OK) fail_msg("qconfig %s: %s", json, e.text);
    assert_non_null(c);
    return c;
}

/* ------------------------------------------------------------------------ */
/* The float64 reference of one node                                         */
/* ------------------------------------------------------------------------ */

static size_t prod3(const int s[3]) { return (size_t)s[0] * s[1] * s[2]; }

static size_t ref_per(qt_op op, const qt_attr *a, int n_in, const int (*shp)[3])
{
    size_t p = 0;
    switch (op) {
    case QT_OP_DENSE: case QT_OP_MATMUL: return (size_t)a->out;
    case QT_OP_CONCAT:
        for (int i = 0; i < n_in; i++) p += prod3(shp[i]);
        return p;
    default: return prod3(shp[0]);
    }
}

/* y = op(x[0..n_in)) for N samples; shp[i] is input i's per-sample shape.
 * W, B: the node's parameters (dense W [out, in], matmul B [in, out]). */
static void ref_node(qt_op op, const qt_attr *a, int n_in, const double *const *x,
                     const int (*shp)[3], int N, const double *W, const double *B,
                     double *y)
{
    size_t P0 = prod3(shp[0]), P = ref_per(op, a, n_in, shp);
    for (int s = 0; s < N; s++) {
        const double *x0 = x[0] + (size_t)s * P0;
        double *ys = y + (size_t)s * P;
        switch (op) {
        case QT_OP_RELU:
            for (size_t i = 0; i < P; i++) ys[i] = x0[i] > 0 ? x0[i] : 0.0;
            break;
        case QT_OP_CLIP:
            for (size_t i = 0; i < P; i++) ys[i] = fmin(fmax(x0[i], (double)a->lo), (double)a->hi);
            break;
        case QT_OP_LEAKY:
            for (size_t i = 0; i < P; i++) ys[i] = x0[i] > 0 ? x0[i] : (double)a->alpha * x0[i];
            break;
        case QT_OP_SIGMOID:
            for (size_t i = 0; i < P; i++) ys[i] = 1.0 / (1.0 + exp(-x0[i]));
            break;
        case QT_OP_TANH:
            for (size_t i = 0; i < P; i++) ys[i] = tanh(x0[i]);
            break;
        case QT_OP_SOFTMAX: {   /* over the channels at each position */
            size_t C = (size_t)shp[0][0], HW = (size_t)shp[0][1] * shp[0][2];
            for (size_t p = 0; p < HW; p++) {
                double mx = -INFINITY, sum = 0.0;
                for (size_t c = 0; c < C; c++) mx = fmax(mx, x0[c * HW + p]);
                for (size_t c = 0; c < C; c++) sum += exp(x0[c * HW + p] - mx);
                for (size_t c = 0; c < C; c++) ys[c * HW + p] = exp(x0[c * HW + p] - mx) / sum;
            }
            break;
        }
        case QT_OP_ADD:
            for (size_t i = 0; i < P; i++) ys[i] = x0[i] + x[1][(size_t)s * P0 + i];
            break;
        case QT_OP_MUL:
            for (size_t i = 0; i < P; i++) ys[i] = x0[i] * x[1][(size_t)s * P0 + i];
            break;
        case QT_OP_CONCAT: {
            size_t off = 0;
            for (int j = 0; j < n_in; j++) {
                size_t Pj = prod3(shp[j]);
                for (size_t i = 0; i < Pj; i++) ys[off + i] = x[j][(size_t)s * Pj + i];
                off += Pj;
            }
            break;
        }
        case QT_OP_FLATTEN: case QT_OP_RESHAPE: case QT_OP_DROPOUT:
            for (size_t i = 0; i < P; i++) ys[i] = x0[i];
            break;
        case QT_OP_DENSE:
            for (size_t o = 0; o < P; o++) {
                double acc = B ? B[o] : 0.0;
                for (size_t k = 0; k < P0; k++) acc += x0[k] * W[o * P0 + k];
                ys[o] = acc;
            }
            break;
        case QT_OP_MATMUL:
            for (size_t o = 0; o < P; o++) {
                double acc = 0.0;
                for (size_t k = 0; k < P0; k++) acc += x0[k] * W[k * P + o];
                ys[o] = acc;
            }
            break;
        default:
            fail_msg("no reference for op %s", qt_op_name(op));
        }
    }
}

static double dot(const double *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

#define FD_H   1e-6
#define FWD_ATOL 3e-5
#define FWD_RTOL 1e-5
#define BWD_ATOL 5e-5
#define BWD_RTOL 1e-4

/* ------------------------------------------------------------------------ */
/* One op at a time: forward and backward against float64                     */
/* ------------------------------------------------------------------------ */

typedef struct opcase {
    qt_op   op;
    qt_attr a;
    int     n_src;      /* distinct sources; 1: the input node itself */
    int     n_in;       /* the op's inputs; more than n_src: all are source 0 */
    int     shp[3][3];  /* per-sample shapes of the sources */
    int     N;
} opcase;

static int near_kink(const opcase *oc, double v)
{
    switch (oc->op) {
    case QT_OP_RELU: case QT_OP_LEAKY: return fabs(v) < 1e-3;
    case QT_OP_CLIP: return fabs(v - oc->a.lo) < 1e-3 || fabs(v - oc->a.hi) < 1e-3;
    default: return 0;
    }
}

typedef struct opref {
    const opcase *oc;
    const double *in[QT_MAX_INPUTS];
    int           shp[QT_MAX_INPUTS][3];
    double       *W, *B, *y;
    const float  *R;
    size_t        P;
} opref;

static double opref_loss(const opref *r)
{
    ref_node(r->oc->op, &r->oc->a, r->oc->n_in, r->in, (const int (*)[3])r->shp, r->oc->N,
             r->W, r->B, r->y);
    return dot(r->y, r->R, (size_t)r->oc->N * r->P);
}

/* central difference of the loss in *v against the engine's gradient g */
static void fd_check(const char *what, opref *r, double *v, size_t n, const float *g)
{
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + FD_H;
        double lp = opref_loss(r);
        v[i] = keep - FD_H;
        double lm = opref_loss(r);
        v[i] = keep;
        double want = (lp - lm) / (2 * FD_H);
        if (!(fabs(g[i] - want) <= BWD_ATOL + BWD_RTOL * fabs(want)))
            fail_msg("%s[%zu]: engine %.9g, finite difference %.9g", what, i, (double)g[i], want);
    }
}

static void run_case(const opcase *oc)
{
    char what[160], w2[200];
    int n = 0;
    n += snprintf(what + n, sizeof what - (size_t)n, "%s N=%d", qt_op_name(oc->op), oc->N);
    for (int i = 0; i < oc->n_src; i++)
        n += snprintf(what + n, sizeof what - (size_t)n, " %dx%dx%d", oc->shp[i][0],
                      oc->shp[i][1], oc->shp[i][2]);

    qt_graph *g = qt_graph_new();
    assert_non_null(g);
    qt_graph_seed(g, rng_next());
    int src[3], ins[QT_MAX_INPUTS];
    size_t sz[3];
    for (int i = 0; i < oc->n_src; i++) sz[i] = prod3(oc->shp[i]);
    if (oc->n_src == 1) {
        src[0] = input(g, "x", oc->shp[0][0], oc->shp[0][1], oc->shp[0][2]);
    } else {
        /* sources: x -> dense -> reshape, one per source */
        input(g, "x", 1, 1, 5);
        for (int i = 0; i < oc->n_src; i++) {
            char nm[16];
            qt_attr da = dense_attr((int)sz[i], 1), ra = attr0();
            snprintf(nm, sizeof nm, "d%d", i);
            int d = node1(g, QT_OP_DENSE, nm, 0, &da);
            fill_params(g, d);
            memcpy(ra.shape, oc->shp[i], sizeof oc->shp[i]);   /* legacy C, H, W */
            snprintf(nm, sizeof nm, "s%d", i);
            src[i] = node1(g, QT_OP_RESHAPE, nm, d, &ra);
        }
    }
    opref r;
    memset(&r, 0, sizeof r);
    r.oc = oc;
    for (int i = 0; i < oc->n_in; i++) {
        int j = oc->n_in > oc->n_src ? 0 : i;
        ins[i] = src[j];
        memcpy(r.shp[i], oc->shp[j], sizeof r.shp[i]);
    }
    int op = node(g, oc->op, "op", ins, oc->n_in, &oc->a);
    assert_int_equal(qt_graph_output(g), op);
    fill_params(g, op);
    r.P = ref_per(oc->op, &oc->a, oc->n_in, (const int (*)[3])r.shp);
    assert_int_equal(per_of(g, op), r.P);

    /* the input, away from the kinks of relu, leaky and clip */
    size_t xper = oc->n_src == 1 ? sz[0] : 5, m = (size_t)oc->N * r.P;
    float *x = fmalloc((size_t)oc->N * xper);
    for (size_t i = 0; i < (size_t)oc->N * xper; i++) {
        double v;
        do v = runif(-2.5, 2.5); while (near_kink(oc, v));
        x[i] = (float)v;
    }
    const float *y = fwd(g, NULL, x, oc->N, 0);
    assert_ptr_equal(y, act(g, op));

    double *xs[3];
    for (int i = 0; i < oc->n_src; i++) xs[i] = to_double(act(g, src[i]), (size_t)oc->N * sz[i]);
    for (int i = 0; i < oc->n_in; i++) r.in[i] = xs[oc->n_in > oc->n_src ? 0 : i];
    qt_tensor *tw = qt_graph_param(g, op, 0), *tb = qt_graph_param(g, op, 1);
    r.W = tw ? to_double(tw->data, tw->size) : NULL;
    r.B = tb ? to_double(tb->data, tb->size) : NULL;
    r.y = dmalloc(m);
    float *R = fmalloc(m);
    fill(R, m, -1.0, 1.0);
    r.R = R;

    opref_loss(&r);
    snprintf(w2, sizeof w2, "%s forward", what);
    check_close(w2, y, r.y, m, FWD_ATOL, FWD_RTOL);

    bwd(g, NULL, R);
    for (int i = 0; i < oc->n_src; i++) {
        snprintf(w2, sizeof w2, "%s dx%d", what, i);
        fd_check(w2, &r, xs[i], (size_t)oc->N * sz[i], grad(g, src[i], -1));
    }
    if (r.W) {
        snprintf(w2, sizeof w2, "%s dW", what);
        fd_check(w2, &r, r.W, tw->size, grad(g, op, 0));
    } else {
        assert_null(qt_graph_grad(g, op, 0));
    }
    if (r.B) {
        snprintf(w2, sizeof w2, "%s db", what);
        fd_check(w2, &r, r.B, tb->size, grad(g, op, 1));
    } else {
        assert_null(qt_graph_grad(g, op, 1));
    }

    for (int i = 0; i < oc->n_src; i++) free(xs[i]);
    free(r.W); free(r.B); free(r.y); free(R); free(x);
    qt_graph_free(g);
}

static void rand_shape(int s[3])
{
    s[0] = rodd(7); s[1] = rodd(5); s[2] = rodd(5);
}

static opcase unary_case(qt_op op)
{
    opcase oc;
    memset(&oc, 0, sizeof oc);
    oc.op = op;
    oc.n_src = oc.n_in = 1;
    rand_shape(oc.shp[0]);
    oc.N = rodd(5);
    return oc;
}

/* relu, clip, leaky, sigmoid, tanh, softmax, dropout (inference), flatten,
 * reshape on random odd shapes */
static void t_unary_ops(void **st)
{
    static const qt_op ops[] = { QT_OP_RELU, QT_OP_CLIP, QT_OP_LEAKY, QT_OP_SIGMOID,
                                 QT_OP_TANH, QT_OP_SOFTMAX, QT_OP_DROPOUT, QT_OP_FLATTEN,
                                 QT_OP_RESHAPE };
    rng_seed(1);
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        for (int trial = 0; trial < 4; trial++) {
            opcase oc = unary_case(ops[k]);
            switch (ops[k]) {
            case QT_OP_CLIP:
                oc.a.lo = (float)runif(-1.5, -0.2);
                oc.a.hi = (float)runif(0.2, 1.5);
                break;
            case QT_OP_LEAKY: oc.a.alpha = (float)runif(0.01, 0.4); break;
            case QT_OP_DROPOUT: oc.a.alpha = 0.3f; break;
            case QT_OP_SOFTMAX:
                /* several positions per sample: softmax runs over the channels */
                oc.shp[0][0] = 2 * rpick(1, 3) + 1;
                oc.shp[0][1] = 2 * rpick(0, 2) + 1;
                oc.shp[0][2] = trial ? 3 : 1;
                break;
            case QT_OP_RESHAPE: {
                int *s = oc.shp[0];
                if (trial % 2) { oc.a.shape[0] = s[1]; oc.a.shape[1] = s[2]; oc.a.shape[2] = s[0]; }
                else oc.a.shape[0] = s[0] * s[1] * s[2];   /* 0 = unused */
                break;
            }
            default: break;
            }
            run_case(&oc);
        }
}

/* add and mul (distinct inputs and one input twice), concat of 2 and 3
 * inputs with different channel counts */
static void t_binary_concat(void **st)
{
    rng_seed(2);
    for (int trial = 0; trial < 4; trial++) {
        static const qt_op bops[] = { QT_OP_ADD, QT_OP_MUL };
        for (int k = 0; k < 2; k++) {
            opcase oc = unary_case(bops[k]);
            oc.n_src = 2; oc.n_in = 2;
            memcpy(oc.shp[1], oc.shp[0], sizeof oc.shp[0]);
            run_case(&oc);
            opcase dup = unary_case(bops[k]);   /* y = x + x, x * x */
            dup.n_in = 2;
            run_case(&dup);
        }
        for (int nin = 2; nin <= 3; nin++) {
            opcase oc = unary_case(QT_OP_CONCAT);
            oc.n_src = oc.n_in = nin;
            for (int i = 1; i < nin; i++) {
                oc.shp[i][0] = oc.shp[0][0] + 2 * i;
                oc.shp[i][1] = oc.shp[0][1];
                oc.shp[i][2] = oc.shp[0][2];
            }
            run_case(&oc);
        }
        opcase cc = unary_case(QT_OP_CONCAT);   /* concat(x, x) */
        cc.n_in = 2;
        run_case(&cc);
    }
}

/* dense with and without bias (W is [out, in]), matmul (B is [in, out]) */
static void t_dense_matmul(void **st)
{
    rng_seed(3);
    for (int trial = 0; trial < 4; trial++)
        for (int k = 0; k < 3; k++) {
            opcase oc = unary_case(k == 2 ? QT_OP_MATMUL : QT_OP_DENSE);
            oc.a.out = rodd(11);
            oc.a.bias = k == 0;
            run_case(&oc);
        }
    /* the parameter shapes and the output shape */
    qt_graph *g = qt_graph_new();
    qt_attr da = dense_attr(7, 1), ma = dense_attr(9, 1);
    input(g, "x", 3, 1, 5);
    int d = node1(g, QT_OP_DENSE, "d", 0, &da);
    int mm = node1(g, QT_OP_MATMUL, "m", d, &ma);
    qt_tensor *w = qt_graph_param(g, d, 0), *b = qt_graph_param(g, d, 1);
    assert_non_null(w); assert_non_null(b);
    assert_int_equal(w->shape[0], 7); assert_int_equal(w->shape[1], 15);
    assert_int_equal(b->size, 7);
    w = qt_graph_param(g, mm, 0);
    assert_int_equal(w->shape[0], 7); assert_int_equal(w->shape[1], 9);
    assert_null(qt_graph_param(g, mm, 1));   /* matmul has no bias */
    int s[3];
    qt_graph_node_shape(g, mm, s);
    assert_int_equal(s[0], 9); assert_int_equal(s[1], 1); assert_int_equal(s[2], 1);
    assert_int_equal(qt_graph_param_count(g), 7 * 15 + 7 + 7 * 9);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Dropout                                                                   */
/* ------------------------------------------------------------------------ */

static qt_graph *dropout_graph(uint64_t seed, float p)
{
    qt_graph *g = qt_graph_new();
    qt_attr a = attr0();
    a.alpha = p;
    qt_graph_seed(g, seed);
    input(g, "x", 7, 11, 13);
    node1(g, QT_OP_DROPOUT, "drop", 0, &a);
    return g;
}

static void t_dropout(void **st)
{
    const int N = 16;
    const float p = 0.3f;
    const size_t M = (size_t)N * 7 * 11 * 13;
    rng_seed(4);
    float *x = fmalloc(M), *dy = fmalloc(M);
    for (size_t i = 0; i < M; i++) {
        double v = runif(0.5, 2.0);
        x[i] = (float)(rng_next() & 1 ? v : -v);
    }
    fill(dy, M, -1.0, 1.0);
    qt_graph *g = dropout_graph(42, p);

    /* inference: the identity, forward and backward */
    check_bits("dropout inference", fwd(g, NULL, x, N, 0), x, M);
    bwd(g, NULL, dy);
    check_bits("dropout inference dx", grad(g, 0, -1), dy, M);

    /* training: each output 0 or x/(1-p); about 1-p of them kept */
    float *y1 = fcopy(fwd(g, NULL, x, N, 1), M);
    size_t kept = 0;
    for (size_t i = 0; i < M; i++) {
        if (y1[i] == 0.0f) continue;
        kept++;
        double want = (double)x[i] / (1.0 - (double)p);
        if (fabs(y1[i] - want) > 1e-6 * fabs(want))
            fail_msg("dropout[%zu]: %g is neither 0 nor x/(1-p) = %g", i, (double)y1[i], want);
    }
    double mean = (double)M * (1.0 - p), sd = sqrt((double)M * p * (1.0 - p));
    if (fabs((double)kept - mean) > 5 * sd)
        fail_msg("dropout kept %zu of %zu, expected %.0f +- %.0f", kept, M, mean, 5 * sd);
    /* backward: the same mask and scale */
    bwd(g, NULL, dy);
    const float *dx = grad(g, 0, -1);
    for (size_t i = 0; i < M; i++) {
        double want = y1[i] == 0.0f ? 0.0 : (double)dy[i] / (1.0 - (double)p);
        if (fabs(dx[i] - want) > 1e-6 * fabs(want))
            fail_msg("dropout dx[%zu]: %g, want %g", i, (double)dx[i], want);
    }
    /* the next step draws a new mask */
    const float *y2 = fwd(g, NULL, x, N, 1);
    size_t differ = 0;
    for (size_t i = 0; i < M; i++) differ += (y2[i] == 0.0f) != (y1[i] == 0.0f);
    assert_true(differ > M / 10);

    /* same seed and step: the same mask; another seed: another mask */
    qt_graph *g2 = dropout_graph(42, p), *g3 = dropout_graph(43, p);
    fwd(g2, NULL, x, N, 0);
    fwd(g3, NULL, x, N, 0);
    check_bits("dropout same seed and step", fwd(g2, NULL, x, N, 1), y1, M);
    const float *y3 = fwd(g3, NULL, x, N, 1);
    differ = 0;
    for (size_t i = 0; i < M; i++) differ += (y3[i] == 0.0f) != (y1[i] == 0.0f);
    assert_true(differ > M / 10);

    /* p = 0 in training: the identity */
    qt_graph *g0 = dropout_graph(42, 0.0f);
    check_bits("dropout p=0", fwd(g0, NULL, x, N, 1), x, M);

    qt_graph_free(g); qt_graph_free(g2); qt_graph_free(g3); qt_graph_free(g0);
    free(x); free(dy); free(y1);
}

/* ------------------------------------------------------------------------ */
/* Whole graphs: a float64 interpreter over the graph's nodes                 */
/* ------------------------------------------------------------------------ */

#define MAXN 16

typedef struct refnet {
    qt_graph *g;
    int       n, N;
    double   *w[MAXN], *b[MAXN];   /* parameters (NULL: none) */
    size_t    nw[MAXN], nb[MAXN];
    double   *a[MAXN];             /* activations */
    double   *x;                   /* the input */
    const float *R;
} refnet;

static void refnet_init(refnet *r, qt_graph *g, int N, const float *x, const float *R)
{
    memset(r, 0, sizeof *r);
    r->g = g;
    r->n = qt_graph_nodes(g);
    r->N = N;
    assert_true(r->n <= MAXN);
    for (int i = 0; i < r->n; i++) {
        qt_tensor *t = qt_graph_param(g, i, 0);
        if (t) { r->w[i] = to_double(t->data, t->size); r->nw[i] = t->size; }
        t = qt_graph_param(g, i, 1);
        if (t) { r->b[i] = to_double(t->data, t->size); r->nb[i] = t->size; }
        r->a[i] = dmalloc((size_t)N * per_of(g, i));
    }
    r->x = to_double(x, (size_t)N * per_of(g, 0));
    r->R = R;
}

static void refnet_free(refnet *r)
{
    for (int i = 0; i < r->n; i++) { free(r->w[i]); free(r->b[i]); free(r->a[i]); }
    free(r->x);
}

static double refnet_loss(refnet *r)
{
    memcpy(r->a[0], r->x, (size_t)r->N * per_of(r->g, 0) * sizeof(double));
    for (int i = 1; i < r->n; i++) {
        const int *ids;
        int n_in = qt_graph_node_inputs(r->g, i, &ids);
        const double *in[QT_MAX_INPUTS];
        int shp[QT_MAX_INPUTS][3];
        for (int k = 0; k < n_in; k++) {
            in[k] = r->a[ids[k]];
            qt_graph_node_shape(r->g, ids[k], shp[k]);
        }
        ref_node(qt_graph_node_op(r->g, i), qt_graph_node_attr(r->g, i), n_in, in,
                 (const int (*)[3])shp, r->N, r->w[i], r->b[i], r->a[i]);
    }
    int o = qt_graph_output(r->g);
    return dot(r->a[o], r->R, (size_t)r->N * per_of(r->g, o));
}

static void refnet_fd(const char *what, refnet *r, double *v, size_t n, const float *g)
{
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + FD_H;
        double lp = refnet_loss(r);
        v[i] = keep - FD_H;
        double lm = refnet_loss(r);
        v[i] = keep;
        double want = (lp - lm) / (2 * FD_H);
        if (!(fabs(g[i] - want) <= BWD_ATOL + BWD_RTOL * fabs(want)))
            fail_msg("%s[%zu]: engine %.9g, finite difference %.9g", what, i, (double)g[i], want);
    }
}

/* every activation against float64, then dx and every dW, db against
 * finite differences */
static void check_graph(qt_graph *g, int N, int train)
{
    size_t nx = (size_t)N * per_of(g, 0), ny = (size_t)N * per_of(g, qt_graph_output(g));
    float *x = fmalloc(nx), *R = fmalloc(ny);
    fill(x, nx, -1.5, 1.5);
    fill(R, ny, -1.0, 1.0);
    refnet r;
    fwd(g, NULL, x, N, train);
    refnet_init(&r, g, N, x, R);
    refnet_loss(&r);
    for (int i = 0; i < r.n; i++) {
        char what[96];
        snprintf(what, sizeof what, "activation of '%s'", qt_graph_node_name(g, i));
        check_close(what, act(g, i), r.a[i], (size_t)N * per_of(g, i), FWD_ATOL, FWD_RTOL);
    }
    bwd(g, NULL, R);
    refnet_fd("dx", &r, r.x, nx, grad(g, 0, -1));
    for (int i = 1; i < r.n; i++) {
        char what[96];
        if (r.w[i]) {
            snprintf(what, sizeof what, "dW of '%s'", qt_graph_node_name(g, i));
            refnet_fd(what, &r, r.w[i], r.nw[i], grad(g, i, 0));
        }
        if (r.b[i]) {
            snprintf(what, sizeof what, "db of '%s'", qt_graph_node_name(g, i));
            refnet_fd(what, &r, r.b[i], r.nb[i], grad(g, i, 1));
        }
    }
    refnet_free(&r);
    free(x); free(R);
}

/* input -> dense -> relu -> dense -> softmax */
static void t_graph_mlp(void **st)
{
    rng_seed(5);
    qt_graph *g = qt_graph_new();
    qt_attr d1 = dense_attr(9, 1), d2 = dense_attr(5, 1);
    input(g, "x", 1, 1, 7);
    int a = node1(g, QT_OP_DENSE, "fc1", 0, &d1);
    int r = node1(g, QT_OP_RELU, "relu1", a, NULL);
    int b = node1(g, QT_OP_DENSE, "fc2", r, &d2);
    node1(g, QT_OP_SOFTMAX, "prob", b, NULL);
    fill_params(g, a);
    fill_params(g, b);
    check_graph(g, 5, 1);
    qt_graph_free(g);
}

/* fan-out: relu1 feeds fc2, the residual add, the gate and the concat; x
 * feeds fc1 and the concat. Backward runs from the last node down, so a consumer with a
 * lower id adds to a gradient a later one has already written. */
static void t_graph_residual(void **st)
{
    rng_seed(6);
    qt_graph *g = qt_graph_new();
    qt_attr d1 = dense_attr(9, 1), d2 = dense_attr(9, 1), d3 = dense_attr(9, 0);
    input(g, "x", 7, 1, 1);
    int a = node1(g, QT_OP_DENSE, "fc1", 0, &d1);
    int r = node1(g, QT_OP_RELU, "relu1", a, NULL);
    int b = node1(g, QT_OP_DENSE, "fc2", r, &d2);
    int res = node(g, QT_OP_ADD, "res", (int[]){ r, b }, 2, NULL);
    int t = node1(g, QT_OP_TANH, "t", res, NULL);
    int c = node1(g, QT_OP_DENSE, "fc3", t, &d3);
    int m = node(g, QT_OP_MUL, "gate", (int[]){ r, c }, 2, NULL);
    int cat = node(g, QT_OP_CONCAT, "cat", (int[]){ m, 0, r }, 3, NULL);
    node1(g, QT_OP_SIGMOID, "out", cat, NULL);
    fill_params(g, a); fill_params(g, b); fill_params(g, c);
    check_graph(g, 3, 1);
    qt_graph_free(g);
}

/* every single-input op adds to its input's gradient: t feeds the op and,
 * through a flatten, the final concat, whose backward runs first */
static void t_fanout_ops(void **st)
{
    static const qt_op ops[] = { QT_OP_RELU, QT_OP_CLIP, QT_OP_LEAKY, QT_OP_SIGMOID,
                                 QT_OP_TANH, QT_OP_SOFTMAX, QT_OP_DROPOUT, QT_OP_FLATTEN,
                                 QT_OP_RESHAPE, QT_OP_DENSE, QT_OP_MATMUL };
    rng_seed(17);
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        qt_graph *g = qt_graph_new();
        qt_attr a = attr0();
        int s[3] = { 3, 5, 1 };
        switch (ops[k]) {
        case QT_OP_CLIP: a.lo = -0.4f; a.hi = 0.6f; break;
        case QT_OP_LEAKY: a.alpha = 0.2f; break;
        case QT_OP_DROPOUT: a.alpha = 0.5f; break;
        case QT_OP_RESHAPE: a.shape[0] = 5; a.shape[1] = 3; break;
        case QT_OP_DENSE: a.out = 7; a.bias = 1; break;
        case QT_OP_MATMUL: a.out = 5; break;
        default: break;
        }
        input(g, "x", s[0], s[1], s[2]);
        int t = node1(g, QT_OP_TANH, "t", 0, NULL);
        int y = node1(g, ops[k], "op", t, &a);
        fill_params(g, y);
        int f1 = node1(g, QT_OP_FLATTEN, "f1", y, NULL);
        int f2 = node1(g, QT_OP_FLATTEN, "f2", t, NULL);
        node(g, QT_OP_CONCAT, "cat", (int[]){ f1, f2 }, 2, NULL);
        check_graph(g, 3, 0);
        qt_graph_free(g);
    }
}

/* ------------------------------------------------------------------------ */
/* Softmax cross-entropy                                                     */
/* ------------------------------------------------------------------------ */

static void t_softmax_xent(void **st)
{
    const int N = 7, C = 10;
    rng_seed(7);
    float z[7 * 10], dz[7 * 10];
    uint8_t lab[7];
    for (int trial = 0; trial < 3; trial++) {
        double scale = trial == 2 ? 400.0 : 3.0;   /* large logits: no overflow */
        fill(z, (size_t)N * C, -scale, scale);
        for (int i = 0; i < N; i++) lab[i] = (uint8_t)rpick(0, C - 1);
        double loss = qt_softmax_xent(z, lab, N, C, dz);
        double want = 0.0;
        for (int i = 0; i < N; i++) {
            const float *zi = z + i * C;
            double mx = zi[0], s = 0.0;
            for (int k = 1; k < C; k++) mx = fmax(mx, zi[k]);
            for (int k = 0; k < C; k++) s += exp(zi[k] - mx);
            want += (mx + log(s) - zi[lab[i]]) / N;
            for (int k = 0; k < C; k++) {
                double gk = (exp(zi[k] - mx) / s - (k == lab[i])) / N;
                if (!(fabs(dz[i * C + k] - gk) <= 1e-7 + 1e-6 * fabs(gk)))
                    fail_msg("dlogits[%d][%d]: %.9g, want %.9g", i, k, (double)dz[i * C + k], gk);
            }
        }
        assert_true(isfinite(loss));
        if (!(fabs(loss - want) <= 1e-9 * (1 + fabs(want))))
            fail_msg("loss %.17g, want %.17g", loss, want);
        /* without the gradient: the same loss */
        assert_true(qt_softmax_xent(z, lab, N, C, NULL) == loss);
    }
    /* uniform logits: log(C) */
    memset(z, 0, sizeof z);
    assert_true(fabs(qt_softmax_xent(z, lab, N, C, NULL) - log(C)) < 1e-12);
}

/* ------------------------------------------------------------------------ */
/* Quantization points through exec                                          */
/* ------------------------------------------------------------------------ */

enum { QK = 6, QO = 4, QN = 5 };

/* x -> fc (dense 6 -> 4, bias) -> act (relu) */
static qt_graph *qgraph(void)
{
    qt_graph *g = qt_graph_new();
    qt_attr d = dense_attr(QO, 1);
    input(g, "x", 1, 1, QK);
    node1(g, QT_OP_DENSE, "fc", 0, &d);
    node1(g, QT_OP_RELU, "act", 1, NULL);
    fill_params(g, 1);
    return g;
}

/* weights and bias points: the kernel uses quantized copies, the float
 * parameters stay; backward's dx goes through the weights the forward used */
static void t_qpoint_weights_bias(void **st)
{
    rng_seed(8);
    qt_graph *g = qgraph();
    float x[QN * QK], R[QN * QO];
    fill_dyadic(x, QN * QK, 8, 2);
    fill_dyadic(R, QN * QO, 8, 1);
    qt_tensor *W = qt_graph_param(g, 1, 0), *B = qt_graph_param(g, 1, 1);
    float *w0 = fcopy(W->data, W->size), *b0 = fcopy(B->data, B->size);
    qt_format fw = fmt("fixed<6,3>"), fb = fmt("fixed<5,2>");
    float *wq = fcopy(w0, W->size), *bq = fcopy(b0, B->size);
    qt_quantize(&fw, wq, W->size, NULL);
    qt_quantize(&fb, bq, B->size, NULL);
    assert_true(memcmp(wq, w0, W->size * sizeof *wq) != 0);

    qt_qconfig *cfg = parse_ok(g, "{\"fc\":{\"weights\":\"fixed<6,3>\",\"bias\":\"fixed<5,2>\"}}");
    fwd(g, cfg, x, QN, 0);
    /* dyadic operands: the float result is exact */
    float ref[QN * QO];
    for (int s = 0; s < QN; s++)
        for (int o = 0; o < QO; o++) {
            double acc = bq[o];
            for (int k = 0; k < QK; k++) acc += (double)x[s * QK + k] * wq[o * QK + k];
            ref[s * QO + o] = (float)acc;
        }
    check_bits("fc with quantized weights", act(g, 1), ref, QN * QO);
    for (int i = 0; i < QN * QO; i++) ref[i] = ref[i] > 0 ? ref[i] : 0.0f;
    check_bits("relu after it", act(g, 2), ref, QN * QO);
    assert_memory_equal(W->data, w0, W->size * sizeof *w0);
    assert_memory_equal(B->data, b0, B->size * sizeof *b0);

    /* backward: dx = dy_fc Wq (straight through the weight quantizer) */
    bwd(g, cfg, R);
    float dx[QN * QK];
    for (int s = 0; s < QN; s++)
        for (int k = 0; k < QK; k++) {
            double acc = 0.0;
            for (int o = 0; o < QO; o++)
                if (act(g, 1)[s * QO + o] > 0) acc += (double)R[s * QO + o] * wq[o * QK + k];
            dx[s * QK + k] = (float)acc;
        }
    check_bits("dx through quantized weights", grad(g, 0, -1), dx, QN * QK);
    /* dW = dy^T x, whatever the weights were quantized to */
    float dw[QO * QK];
    for (int o = 0; o < QO; o++)
        for (int k = 0; k < QK; k++) {
            double acc = 0.0;
            for (int s = 0; s < QN; s++)
                if (act(g, 1)[s * QO + o] > 0) acc += (double)R[s * QO + o] * x[s * QK + k];
            dw[o * QK + k] = (float)acc;
        }
    check_bits("dW under a weights point", grad(g, 1, 0), dw, QO * QK);
    assert_memory_equal(W->data, w0, W->size * sizeof *w0);

    /* the bias point alone leaves the weights as they are */
    qt_qconfig *cb = parse_ok(g, "{\"fc\":{\"bias\":\"fixed<5,2>\"}}");
    fwd(g, cb, x, QN, 0);
    for (int s = 0; s < QN; s++)
        for (int o = 0; o < QO; o++) {
            double acc = bq[o];
            for (int k = 0; k < QK; k++) acc += (double)x[s * QK + k] * w0[o * QK + k];
            if (!(fabs(act(g, 1)[s * QO + o] - acc) < 1e-5))
                fail_msg("bias point only [%d][%d]: %g, want %g", s, o,
                         (double)act(g, 1)[s * QO + o], acc);
        }
    qt_qconfig_free(cb);
    qt_qconfig_free(cfg);
    free(w0); free(b0); free(wq); free(bq);
    qt_graph_free(g);
}

/* output point of a node and of the input node */
static void t_qpoint_output_input(void **st)
{
    rng_seed(9);
    qt_graph *g = qgraph();
    float x[QN * QK];
    fill(x, QN * QK, -2.0, 2.0);
    float *y0 = fcopy(fwd(g, NULL, x, QN, 0), QN * QO);
    float *fc0 = fcopy(act(g, 1), QN * QO);
    qt_format fo = fmt("fixed<6,2>");

    qt_qconfig *cfg = parse_ok(g, "{\"fc\":{\"output\":\"fixed<6,2>\"}}");
    fwd(g, cfg, x, QN, 0);
    float *q = fcopy(fc0, QN * QO);
    qt_quantize(&fo, q, QN * QO, NULL);
    check_bits("fc output point", act(g, 1), q, QN * QO);
    for (int i = 0; i < QN * QO; i++) q[i] = q[i] > 0 ? q[i] : 0.0f;
    check_bits("relu of the quantized output", act(g, 2), q, QN * QO);
    check_bits("input untouched", act(g, 0), x, QN * QK);
    qt_qconfig_free(cfg);

    /* the output point of the input node quantizes the input */
    qt_format fx = fmt("fixed<4,1>");
    float xq[QN * QK];
    memcpy(xq, x, sizeof xq);
    qt_quantize(&fx, xq, QN * QK, NULL);
    float *yq = fcopy(fwd(g, NULL, xq, QN, 0), QN * QO);
    cfg = parse_ok(g, "{\"x\":{\"output\":\"fixed<4,1>\"}}");
    check_bits("graph output with quantized input", fwd(g, cfg, x, QN, 0), yq, QN * QO);
    check_bits("input node output point", act(g, 0), xq, QN * QK);
    qt_qconfig_free(cfg);

    /* "default" leaves the input node alone */
    cfg = parse_ok(g, "{\"default\":{\"output\":\"fixed<4,1>\"}}");
    fwd(g, cfg, x, QN, 0);
    check_bits("default skips the input", act(g, 0), x, QN * QK);
    qt_qconfig_free(cfg);
    free(y0); free(fc0); free(q); free(yq);
    qt_graph_free(g);
}

/* grad_output quantizes the gradient arriving at a node before its
 * backward; grad_weights the parameter gradients after it */
static void t_qpoint_grads(void **st)
{
    rng_seed(10);
    qt_graph *g = qgraph();
    float x[QN * QK], R[QN * QO];
    fill_dyadic(x, QN * QK, 8, 2);
    fill(R, QN * QO, -1.5, 1.5);
    qt_tensor *W = qt_graph_param(g, 1, 0);
    qt_format fa = fmt("fixed<8,3>"), ff = fmt("fixed<6,4>"), fg = fmt("fixed<7,3>");

    /* float run */
    fwd(g, NULL, x, QN, 1);
    bwd(g, NULL, R);
    float *dw0 = fcopy(grad(g, 1, 0), QO * QK), *db0 = fcopy(grad(g, 1, 1), QO);
    float *gfc0 = fcopy(grad(g, 1, -1), QN * QO);

    /* grad_weights alone: Q of the float gradients; activations' unchanged */
    qt_qconfig *cw = parse_ok(g, "{\"fc\":{\"grad_weights\":\"fixed<7,3>\"}}");
    fwd(g, cw, x, QN, 1);
    bwd(g, cw, R);
    qt_quantize(&fg, dw0, QO * QK, NULL);
    qt_quantize(&fg, db0, QO, NULL);
    check_bits("grad_weights dW", grad(g, 1, 0), dw0, QO * QK);
    check_bits("grad_weights db", grad(g, 1, 1), db0, QO);
    check_bits("grad_weights leaves dy", grad(g, 1, -1), gfc0, QN * QO);
    qt_qconfig_free(cw);

    /* all three */
    qt_qconfig *cfg = parse_ok(g, "{\"act\":{\"grad_output\":\"fixed<8,3>\"},"
                                  "\"fc\":{\"grad_output\":\"fixed<6,4>\","
                                  "\"grad_weights\":\"fixed<7,3>\"}}");
    fwd(g, cfg, x, QN, 1);
    bwd(g, cfg, R);
    float ga[QN * QO], gf[QN * QO];
    memcpy(ga, R, sizeof ga);
    qt_quantize(&fa, ga, QN * QO, NULL);
    check_bits("act grad_output", grad(g, 2, -1), ga, QN * QO);
    for (int i = 0; i < QN * QO; i++) gf[i] = act(g, 1)[i] > 0 ? ga[i] : 0.0f;
    qt_quantize(&ff, gf, QN * QO, NULL);
    check_bits("fc grad_output", grad(g, 1, -1), gf, QN * QO);
    /* dyadic x and dy: the sums are exact */
    float dw[QO * QK], db[QO];
    for (int o = 0; o < QO; o++) {
        double sb = 0.0;
        for (int s = 0; s < QN; s++) sb += gf[s * QO + o];
        db[o] = (float)sb;
        for (int k = 0; k < QK; k++) {
            double sw = 0.0;
            for (int s = 0; s < QN; s++) sw += (double)gf[s * QO + o] * x[s * QK + k];
            dw[o * QK + k] = (float)sw;
        }
    }
    qt_quantize(&fg, dw, QO * QK, NULL);
    qt_quantize(&fg, db, QO, NULL);
    check_bits("dW from quantized dy", grad(g, 1, 0), dw, QO * QK);
    check_bits("db from quantized dy", grad(g, 1, 1), db, QO);
    double dx[QN * QK];
    for (int s = 0; s < QN; s++)
        for (int k = 0; k < QK; k++) {
            double acc = 0.0;
            for (int o = 0; o < QO; o++) acc += (double)gf[s * QO + o] * W->data[o * QK + k];
            dx[s * QK + k] = acc;
        }
    check_close("dx from quantized dy", grad(g, 0, -1), dx, QN * QK, 1e-6, 1e-6);
    qt_qconfig_free(cfg);
    free(dw0); free(db0); free(gfc0);
    qt_graph_free(g);
}

/* stochastic formats: the same seed gives the same bits, another seed
 * other bits; every value one of the two neighbours of the float value */
static void t_qpoint_stochastic(void **st)
{
    enum { N = 10, K = 40, O = 30 };
    rng_seed(11);
    qt_graph *g = qt_graph_new();
    qt_attr d = dense_attr(O, 1);
    input(g, "x", 1, 1, K);
    int fc = node1(g, QT_OP_DENSE, "fc", 0, &d);
    fill_params(g, fc);
    float *x = fmalloc((size_t)N * K), *R = fmalloc((size_t)N * O);
    fill(x, (size_t)N * K, -1.0, 1.0);
    fill(R, (size_t)N * O, -1.0, 1.0);
    float *y0 = fcopy(fwd(g, NULL, x, N, 0), (size_t)N * O);

    static const char *const cfgs[] = {
        "{\"fc\":{\"output\":\"fixed<12,6,sr>\"}}",
        "{\"fc\":{\"weights\":\"fixed<8,6,sr>\"}}",
        "{\"fc\":{\"grad_output\":\"fixed<12,8,sr>\",\"grad_weights\":\"fixed<12,6,sr>\"}}",
    };
    for (int k = 0; k < 3; k++) {
        qt_qconfig *a = parse_ok(g, cfgs[k]), *b = parse_ok(g, cfgs[k]), *c = parse_ok(g, cfgs[k]);
        qt_qconfig_set_seed(a, 77);
        qt_qconfig_set_seed(b, 77);
        qt_qconfig_set_seed(c, 78);
        size_t n = k < 2 ? (size_t)N * O : (size_t)O * K;
        float *ya, *yb, *yc;
        if (k < 2) {
            ya = fcopy(fwd(g, a, x, N, 0), n);
            yb = fcopy(fwd(g, b, x, N, 0), n);
            yc = fcopy(fwd(g, c, x, N, 0), n);
        } else {
            fwd(g, a, x, N, 1); bwd(g, a, R); ya = fcopy(grad(g, fc, 0), n);
            fwd(g, b, x, N, 1); bwd(g, b, R); yb = fcopy(grad(g, fc, 0), n);
            fwd(g, c, x, N, 1); bwd(g, c, R); yc = fcopy(grad(g, fc, 0), n);
        }
        check_bits(cfgs[k], yb, ya, n);
        /* and again with the same configuration */
        if (k < 2) check_bits(cfgs[k], fwd(g, a, x, N, 0), ya, n);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += bits(ya[i]) != bits(yc[i]);
        if (differ < n / 10)
            fail_msg("%s: seeds 77 and 78 differ in only %zu of %zu values", cfgs[k], differ, n);
        if (k == 0)
            for (size_t i = 0; i < n; i++) {
                double lo = floor(y0[i] * 64.0) / 64.0;
                if (!(ya[i] == lo || ya[i] == lo + 1.0 / 64))
                    fail_msg("sr output[%zu]: %a is not a neighbour of %a", i, (double)ya[i],
                             (double)y0[i]);
            }
        free(ya); free(yb); free(yc);
        qt_qconfig_free(a); qt_qconfig_free(b); qt_qconfig_free(c);
    }
    free(x); free(R); free(y0);
    qt_graph_free(g);
}

/* the stochastic streams bit for bit, following exec.c: point p of node i
 * draws from stream i << 8 | p; activations from offset 0 (sample_base is
 * 0), weights from 0, weight gradients from 0 and bias gradients from 2^40 */
static void t_qpoint_streams(void **st)
{
    enum { N = 6, K = 9, O = 7 };
    const uint64_t seed = 31;
    rng_seed(16);
    qt_graph *g = qt_graph_new();
    qt_attr d = dense_attr(O, 1);
    input(g, "x", 1, 1, K);
    int fc = node1(g, QT_OP_DENSE, "fc", 0, &d);
    fill_params(g, fc);
    float x[N * K], R[N * O];
    fill(x, N * K, -1.0, 1.0);
    fill(R, N * O, -1.0, 1.0);
    fwd(g, NULL, x, N, 1);
    bwd(g, NULL, R);
    float *y = fcopy(act(g, fc), N * O), *dw = fcopy(grad(g, fc, 0), O * K);
    float *db = fcopy(grad(g, fc, 1), O);
    qt_format fo = fmt("fixed<10,6,sr>"), fg = fmt("float<8,e4,b12,sr>");
    qt_qconfig *cfg = parse_ok(g, "{\"fc\":{\"output\":\"fixed<10,6,sr>\","
                                  "\"grad_weights\":\"float<8,e4,b12,sr>\"}}");
    qt_qconfig_set_seed(cfg, seed);
    fwd(g, cfg, x, N, 1);
    bwd(g, cfg, R);
    uint64_t stream = (uint64_t)fc << 8;
    qt_sr so = { seed, stream | QT_QP_OUTPUT, 0 }, sw = { seed, stream | QT_QP_GRAD_WEIGHTS, 0 };
    qt_sr sb = { seed, stream | QT_QP_GRAD_WEIGHTS, (uint64_t)1 << 40 };
    qt_quantize(&fo, y, N * O, &so);
    qt_quantize(&fg, dw, O * K, &sw);
    qt_quantize(&fg, db, O, &sb);
    check_bits("sr output", act(g, fc), y, N * O);
    check_bits("sr grad_weights dW", grad(g, fc, 0), dw, O * K);
    check_bits("sr grad_weights db", grad(g, fc, 1), db, O);
    qt_qconfig_free(cfg);
    free(y); free(dw); free(db);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Intrinsic point                                                           */
/* ------------------------------------------------------------------------ */

/* the random word for index idx of a node's intrinsic point: exec.c's
 * stream of (node, point) is node << 8 | point */
static uint32_t intr_word(const qt_format *f, uint64_t seed, int node_id, uint64_t idx)
{
    return f->round == QT_SR
        ? qt_rand32(seed, ((uint64_t)node_id << 8) ^ QT_QP_INTRINSIC, idx) : 0;
}

/* how the intrinsic point stores an operand or constant (engine.h,
 * qt_intrinsic): f's own rounding, except that a stochastic format rounds
 * its operands to nearest-even (no random word) */
typedef float (*operand_fn)(const qt_format *f, float v);

static float intr_operand(const qt_format *f, float v)
{
    qt_format rn = *f;
    if (rn.round == QT_SR) rn.round = QT_RNE;
    return qt_quantize1(&rn, v, 0);
}

/* the rule before the fix, kept only to show that t_intrinsic_sr_unbiased
 * detects it: random word 0, which rounds every inexact operand up */
static float operand_word0(const qt_format *f, float v) { return qt_quantize1(f, v, 0); }

/* engine.h's order: EACH's operands stored by op (intr_operand), then
 * acc = 0; acc = add(acc, mul(w, x)) over k ascending; acc = add(acc, bias).
 * FINAL: products rounded, the sum in float rounded once, then the bias add
 * rounded. Word idx = (s*O + o)*(2K+2): product k idx+2k, sum idx+2k+1,
 * FINAL's sum idx+2K, bias idx+2K+1. w[o*wo + k*wk] */
static void ref_intr_dot_op(const qt_format *f, int each, uint64_t seed, int id, const float *X,
                            int N, int K, int O, const float *w, int wo, int wk,
                            const float *b, float *Y, operand_fn op)
{
    for (int s = 0; s < N; s++)
        for (int o = 0; o < O; o++) {
            uint64_t idx = ((uint64_t)s * O + o) * (uint64_t)(2 * K + 2);
            float acc = 0.0f;
            double facc = 0.0;
            for (int k = 0; k < K; k++) {
                float xv = X[s * K + k], wv = w[o * wo + k * wk];
                if (each) {
                    float p = qt_mul(f, op(f, wv), op(f, xv),
                                     intr_word(f, seed, id, idx + 2 * (uint64_t)k));
                    acc = qt_add(f, acc, p, intr_word(f, seed, id, idx + 2 * (uint64_t)k + 1));
                } else {
                    facc += qt_quantize1(f, xv * wv, intr_word(f, seed, id, idx + 2 * (uint64_t)k));
                }
            }
            if (!each) acc = qt_quantize1(f, (float)facc, intr_word(f, seed, id, idx + 2 * (uint64_t)K));
            if (b) {
                uint32_t r = intr_word(f, seed, id, idx + 2 * (uint64_t)K + 1);
                acc = each ? qt_add(f, acc, op(f, b[o]), r)
                           : qt_quantize1(f, acc + b[o], r);
            }
            Y[s * O + o] = acc;
        }
}

static void ref_intr_dot(const qt_format *f, int each, uint64_t seed, int id, const float *X,
                         int N, int K, int O, const float *w, int wo, int wk,
                         const float *b, float *Y)
{
    ref_intr_dot_op(f, each, seed, id, X, N, K, O, w, wo, wk, b, Y, intr_operand);
}

static void t_intrinsic_dense(void **st)
{
    enum { N = 5, K = 11, O = 5, NF = 4 };
    /* with fixed formats sums of grid values are exact; the stochastic
     * float format also rounds the sums, which checks their words */
    static const char *const fmts[NF] = { "fixed<8,4>", "fixed<12,6,sr>", "float<8,e4,b7>",
                                          "float<8,e4,b7,sr>" };
    rng_seed(12);
    qt_graph *g = qt_graph_new();
    qt_attr db = dense_attr(O, 1), dn = dense_attr(O, 0), mm = dense_attr(O, 0);
    input(g, "x", 1, 1, K);
    int ids[3];
    ids[0] = node1(g, QT_OP_DENSE, "fcb", 0, &db);
    ids[1] = node1(g, QT_OP_DENSE, "fcn", 0, &dn);
    ids[2] = node1(g, QT_OP_MATMUL, "mm", 0, &mm);
    for (int i = 0; i < 3; i++) fill_params(g, ids[i]);
    float x[N * K], y[N * O];
    fill(x, N * K, -4.0, 4.0);
    size_t sat = 0;
    for (int fi = 0; fi < NF; fi++)
        for (int each = 0; each < 2; each++) {
            qt_format f = fmt(fmts[fi]);
            qt_qconfig *cfg = qt_qconfig_new(g);
            assert_non_null(cfg);
            qt_qconfig_set_seed(cfg, 1234 + (uint64_t)fi);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(qt_qconfig_set(cfg, ids[i], QT_QP_INTRINSIC, &f), QT_OK);
                qt_qconfig_set_intrinsic_mode(cfg, ids[i], each ? QT_INTR_EACH : QT_INTR_FINAL);
            }
            fwd(g, cfg, x, N, 0);
            for (int i = 0; i < 3; i++) {
                char what[96];
                const float *w = qt_graph_param(g, ids[i], 0)->data;
                qt_tensor *b = qt_graph_param(g, ids[i], 1);
                if (i < 2) ref_intr_dot(&f, each, 1234 + (uint64_t)fi, ids[i], x, N, K, O, w, K, 1,
                                        b ? b->data : NULL, y);
                else ref_intr_dot(&f, each, 1234 + (uint64_t)fi, ids[i], x, N, K, O, w, 1, O,
                                  NULL, y);
                snprintf(what, sizeof what, "%s %s %s", qt_graph_node_name(g, ids[i]), fmts[fi],
                         each ? "each" : "final");
                check_bits(what, act(g, ids[i]), y, N * O);
                for (int j = 0; j < N * O; j++) sat += fi == 0 && fabsf(y[j]) >= 7.9375f;
            }
            qt_qconfig_free(cfg);
        }
    assert_true(sat > 0);   /* fixed<8,4> saturated somewhere */
    qt_graph_free(g);
}

/* weightless ops: add and mul bit-true on operands stored as intr_operand
 * does (EACH), the float result quantized (FINAL); relu, concat and dropout
 * quantize after */
static void t_intrinsic_elementwise(void **st)
{
    enum { N = 4, C = 3, H = 5, W = 3, M = N * C * H * W, NF = 4 };
    static const char *const fmts[NF] = { "fixed<8,4>", "fixed<12,6,sr>", "float<8,e4,b7>",
                                          "float<8,e4,b7,sr>" };
    rng_seed(13);
    qt_graph *g = qt_graph_new();
    qt_attr da = attr0();
    da.alpha = 0.5f;
    input(g, "x", C, H, W);
    int t = node1(g, QT_OP_TANH, "t", 0, NULL);
    int ad = node(g, QT_OP_ADD, "sum", (int[]){ 0, t }, 2, NULL);
    int mu = node(g, QT_OP_MUL, "prod", (int[]){ 0, t }, 2, NULL);
    int re = node1(g, QT_OP_RELU, "r", 0, NULL);
    int cc = node(g, QT_OP_CONCAT, "cat", (int[]){ 0, t }, 2, NULL);
    int dr = node1(g, QT_OP_DROPOUT, "drop", 0, &da);
    float x[M], xs[M], ts[M], want[2 * M];
    fill(x, M, -3.0, 3.0);
    for (int fi = 0; fi < NF; fi++)
        for (int each = 0; each < 2; each++) {
            qt_format f = fmt(fmts[fi]);
            const uint64_t seed = 99;
            qt_qconfig *cfg = qt_qconfig_new(g);
            qt_qconfig_set_seed(cfg, seed);
            for (int i = 2; i < qt_graph_nodes(g); i++) {
                qt_qconfig_set(cfg, i, QT_QP_INTRINSIC, &f);
                qt_qconfig_set_intrinsic_mode(cfg, i, each ? QT_INTR_EACH : QT_INTR_FINAL);
            }
            fwd(g, cfg, x, N, 0);
            memcpy(xs, act(g, 0), sizeof xs);
            memcpy(ts, act(g, t), sizeof ts);
            for (int op = 0; op < 2; op++) {
                int id = op ? mu : ad;
                for (int i = 0; i < M; i++) {
                    if (each) {
                        float a = intr_operand(&f, xs[i]), b = intr_operand(&f, ts[i]);
                        uint32_t r = intr_word(&f, seed, id, (uint64_t)i);
                        want[i] = op ? qt_mul(&f, a, b, r) : qt_add(&f, a, b, r);
                    } else {
                        want[i] = op ? xs[i] * ts[i] : xs[i] + ts[i];
                    }
                }
                if (!each) {
                    qt_sr sr = { seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC, 0 };
                    qt_quantize(&f, want, M, &sr);
                }
                char what[96];
                snprintf(what, sizeof what, "%s %s %s", op ? "mul" : "add", fmts[fi],
                         each ? "each" : "final");
                check_bits(what, act(g, id), want, M);
            }
            /* quantize after: relu, concat, dropout (inference) */
            const int after[3] = { re, cc, dr };
            for (int j = 0; j < 3; j++) {
                int id = after[j];
                size_t n = j == 1 ? 2 * (size_t)M : (size_t)M;
                for (int s = 0; s < N; s++)
                    for (int i = 0; i < C * H * W; i++) {
                        float v = xs[s * C * H * W + i];
                        if (j == 1) {
                            want[s * 2 * C * H * W + i] = v;
                            want[s * 2 * C * H * W + C * H * W + i] = ts[s * C * H * W + i];
                        } else {
                            want[s * C * H * W + i] = j == 0 ? (v > 0 ? v : 0.0f) : v;
                        }
                    }
                qt_sr sr = { seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC, 0 };
                qt_quantize(&f, want, n, &sr);
                char what[96];
                snprintf(what, sizeof what, "%s %s %s", qt_graph_node_name(g, id), fmts[fi],
                         each ? "each" : "final");
                check_bits(what, act(g, id), want, n);
            }
            qt_qconfig_free(cfg);
        }
    qt_graph_free(g);
}

/* a value in +-[0.005, 0.3) that fixed<8,4> cannot hold (not a multiple
 * of 1/16), either sign */
static float small_inexact(void)
{
    for (;;) {
        float v = (float)runif(0.005, 0.3);
        if (rng_next() & 1) v = -v;
        if (v * 16.0f != floorf(v * 16.0f)) return v;
    }
}

/* The intrinsic point of a stochastic format must not bias a dot product:
 * its operands are stored rounded to nearest-even, only the products and
 * sums are rounded stochastically (engine.h). Dense, no bias, EACH with
 * fixed<8,4,sr> (step 1/16), inputs and weights small inexact values of
 * both signs (small_inexact), S seeds; d = y_intrinsic - y_float over all
 * N*O*S outputs.
 * Why the mean of d is near 0: with x_q = x + e_x and w_q = w + e_w the
 * stored operands, x_q*w_q - x*w = x*e_w + w*e_x + e_x*e_w. The products
 * (|x_q*w_q| <= (5/16)^2) are rounded stochastically, which is unbiased
 * given the operands; the partial sums, of multiples of 1/16, are exact as
 * nothing saturates (|y| < 2 here, checked). x and w are symmetric and
 * independent of each other and of the other operand's error, so
 * E[d] = K*E[e_x]*E[e_w]: 0 with nearest-even (mean operand error 0), but
 * K*(1/32)^2 = K/1024 = 0.0625 with the old random word 0, which rounds
 * every inexact operand up (mean operand error +1/32).
 * Bound: |mean d| < K/4096 = 0.0156, a quarter of the old bias. The
 * standard error of the mean is about 0.002 (per output the rounding noise
 * of K products has sd < sqrt(K/1024) = 0.25, over N*O*S = 8192 outputs;
 * measured 0.0022, asserted below to be < bound/3), so the bound is ~7
 * standard errors from 0 and the old bias ~27 from 0. Measured: mean d
 * = 0.0002 now; 0.0592 with the old rule, both in the kernel and in the
 * same scalar reference run with operand_word0, which is asserted to
 * exceed 2*K/4096 so that the test is known to detect the bias. */
static void t_intrinsic_sr_unbiased(void **st)
{
    enum { N = 16, K = 64, O = 32, S = 16 };
    (void)st;
    rng_seed(15);
    qt_graph *g = qt_graph_new();
    qt_attr dn = dense_attr(O, 0);
    input(g, "x", 1, 1, K);
    int id = node1(g, QT_OP_DENSE, "fc", 0, &dn);
    float *x = fmalloc((size_t)N * K), *yf = fmalloc((size_t)N * O);
    float *ref = fmalloc((size_t)N * O), *old = fmalloc((size_t)N * O);
    qt_tensor *wt = qt_graph_param(g, id, 0);
    for (size_t i = 0; i < wt->size; i++) wt->data[i] = small_inexact();
    for (size_t i = 0; i < (size_t)N * K; i++) x[i] = small_inexact();
    const float *w = wt->data;
    memcpy(yf, fwd(g, NULL, x, N, 0), (size_t)N * O * sizeof *yf);
    qt_format f = fmt("fixed<8,4,sr>");
    double sum_new = 0.0, sum_old = 0.0, sq_new = 0.0;
    for (int si = 0; si < S; si++) {
        uint64_t seed = 700 + (uint64_t)si;
        qt_qconfig *cfg = qt_qconfig_new(g);
        assert_non_null(cfg);
        qt_qconfig_set_seed(cfg, seed);
        assert_int_equal(qt_qconfig_set(cfg, id, QT_QP_INTRINSIC, &f), QT_OK);
        qt_qconfig_set_intrinsic_mode(cfg, id, QT_INTR_EACH);
        const float *y = fwd(g, cfg, x, N, 0);
        ref_intr_dot(&f, 1, seed, id, x, N, K, O, w, K, 1, NULL, ref);
        check_bits("sr unbiased", y, ref, (size_t)N * O);
        ref_intr_dot_op(&f, 1, seed, id, x, N, K, O, w, K, 1, NULL, old, operand_word0);
        for (int i = 0; i < N * O; i++) {
            double d = (double)y[i] - yf[i];
            assert_true(fabsf(y[i]) < 2.0f && fabsf(old[i]) < 2.0f);   /* no saturation */
            sum_new += d;
            sq_new += d * d;
            sum_old += (double)old[i] - yf[i];
        }
        qt_qconfig_free(cfg);
    }
    double M = (double)N * O * S, mean_new = sum_new / M, mean_old = sum_old / M;
    double se = sqrt((sq_new / M - mean_new * mean_new) / M), bound = K / 4096.0;
    print_message("intrinsic fixed<8,4,sr> dense: mean(y - y_float) = %.5f (se %.5f, bound %.4f);"
                  " old operand rule %.5f (expected %.4f)\n", mean_new, se, bound, mean_old,
                  K / 1024.0);
    assert_true(fabs(mean_new) < bound);
    assert_true(bound > 3.0 * se);        /* the bound is not loose noise */
    assert_true(mean_old > 2.0 * bound);  /* the old rule would have failed */
    free(x); free(yf); free(ref); free(old);
    qt_graph_free(g);
}

/* an operand that the format cannot hold is stored at the nearest value
 * (ties to even), whatever the seed: fixed<8,4,sr> stores 0.01 as 0, not
 * as 0.0625 (what random word 0 gave), and so a dense layer with input
 * 0.01, weight 1.0 (and a bias 0.01, also stored as 0) gives exactly 0 */
static void t_intrinsic_operand_nearest(void **st)
{
    enum { N = 6 };
    /* input, the stored operand (nearest-even to a multiple of 1/16) */
    static const float xs[N] = { 0.01f, -0.01f, 0.03125f, 0.04f, 0.09375f, -0.09375f };
    static const float want[N] = { 0.0f, 0.0f, 0.0f, 0.0625f, 0.125f, -0.125f };
    (void)st;
    qt_graph *g = qt_graph_new();
    qt_attr db = dense_attr(2, 1);
    input(g, "x", 1, 1, 1);
    int id = node1(g, QT_OP_DENSE, "fc", 0, &db);
    float *w = qt_graph_param(g, id, 0)->data, *b = qt_graph_param(g, id, 1)->data;
    w[0] = w[1] = 1.0f;
    b[0] = 0.0f;
    b[1] = 0.01f;
    qt_format f = fmt("fixed<8,4,sr>");
    for (uint64_t seed = 1; seed <= 8; seed++) {
        qt_qconfig *cfg = qt_qconfig_new(g);
        assert_non_null(cfg);
        qt_qconfig_set_seed(cfg, seed);
        assert_int_equal(qt_qconfig_set(cfg, id, QT_QP_INTRINSIC, &f), QT_OK);
        qt_qconfig_set_intrinsic_mode(cfg, id, QT_INTR_EACH);
        const float *y = fwd(g, cfg, xs, N, 0);
        for (int s = 0; s < N; s++)
            for (int o = 0; o < 2; o++)
                if (y[s * 2 + o] != want[s])
                    fail_msg("seed %llu: x = %g, bias %g: got %g, want %g",
                             (unsigned long long)seed, (double)xs[s], (double)b[o],
                             (double)y[s * 2 + o], (double)want[s]);
        qt_qconfig_free(cfg);
    }
    assert_true(fwd(g, NULL, xs, 1, 0)[0] == 0.01f);   /* the float path is untouched */
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Configurations                                                            */
/* ------------------------------------------------------------------------ */

/* x, fc1, r1, fc2, dense1, out */
static qt_graph *cgraph(void)
{
    qt_graph *g = qt_graph_new();
    qt_attr d1 = dense_attr(5, 1), d2 = dense_attr(4, 1), d3 = dense_attr(3, 1);
    input(g, "x", 1, 1, 6);
    node1(g, QT_OP_DENSE, "fc1", 0, &d1);
    node1(g, QT_OP_RELU, "r1", 1, NULL);
    node1(g, QT_OP_DENSE, "fc2", 2, &d2);
    node1(g, QT_OP_DENSE, "dense1", 3, &d3);
    node1(g, QT_OP_SOFTMAX, "out", 4, NULL);
    return g;
}

static void expect_fmt(const qt_qconfig *c, const qt_graph *g, int id, qt_qpoint p,
                       const char *text)
{
    const qt_format *got = qt_qconfig_get(c, id, p);
    if (!text) {
        if (got) {
            char buf[QT_TEXT_MAX];
            qt_format_print(got, buf, sizeof buf);
            fail_msg("'%s'.%s: %s, want float", qt_graph_node_name(g, id), qt_qpoint_name(p), buf);
        }
        return;
    }
    if (!got) fail_msg("'%s'.%s: float, want %s", qt_graph_node_name(g, id), qt_qpoint_name(p), text);
    qt_format f = fmt(text);
    if (!qt_format_equal(got, &f)) {
        char buf[QT_TEXT_MAX];
        qt_format_print(got, buf, sizeof buf);
        fail_msg("'%s'.%s: %s, want %s", qt_graph_node_name(g, id), qt_qpoint_name(p), buf, text);
    }
}

static void t_qconfig_parse(void **st)
{
    qt_graph *g = cgraph();
    enum { X, FC1, R1, FC2, DENSE1, OUT };
    qt_qconfig *c = parse_ok(g,
        "{\"default\": {\"output\": \"fixed<16,8>\", \"weights\": \"fixed<8,4>\","
        "               \"grad_output\": \"fixed<16,12>\"},"
        " \"fc*\":     {\"weights\": \"fixed<6,3>\", \"intrinsic\": \"fixed<12,6>\","
        "               \"intrinsic_mode\": \"final\", \"output\": \"fixed<9,4>\"},"
        " \"*1\":      {\"output\": \"fixed<10,5>\", \"weights\": \"fixed<5,2>\"},"
        " \"dense?\":  {\"bias\": {\"type\": \"fixed\", \"width\": 8, \"frac\": 2}},"
        " \"fc2\":     {\"weights\": \"fixed<4,2>\", \"output\": \"none\"},"
        " \"r1\":      {\"output\": null, \"grad_output\": \"none\"},"
        " \"out\":     {\"intrinsic\": \"float<8,e4>\", \"intrinsic_mode\": \"each\"}}");
    /* the input: untouched by default and globs that miss it */
    for (int p = 0; p < QT_QP_COUNT; p++) expect_fmt(c, g, X, (qt_qpoint)p, NULL);
    /* fc1: fc* then *1 (later glob wins point by point) */
    expect_fmt(c, g, FC1, QT_QP_WEIGHTS, "fixed<5,2>");
    expect_fmt(c, g, FC1, QT_QP_OUTPUT, "fixed<10,5>");
    expect_fmt(c, g, FC1, QT_QP_INTRINSIC, "fixed<12,6>");
    expect_fmt(c, g, FC1, QT_QP_GRAD_OUTPUT, "fixed<16,12>");
    expect_fmt(c, g, FC1, QT_QP_BIAS, NULL);
    assert_int_equal(qt_qconfig_intrinsic_mode(c, FC1), QT_INTR_FINAL);
    /* r1: weights from default and *1 skipped (no parameters); cleared */
    expect_fmt(c, g, R1, QT_QP_WEIGHTS, NULL);
    expect_fmt(c, g, R1, QT_QP_OUTPUT, NULL);
    expect_fmt(c, g, R1, QT_QP_GRAD_OUTPUT, NULL);
    /* fc2: the exact name overrides fc* */
    expect_fmt(c, g, FC2, QT_QP_WEIGHTS, "fixed<4,2>");
    expect_fmt(c, g, FC2, QT_QP_OUTPUT, NULL);
    expect_fmt(c, g, FC2, QT_QP_INTRINSIC, "fixed<12,6>");
    expect_fmt(c, g, FC2, QT_QP_GRAD_OUTPUT, "fixed<16,12>");
    assert_int_equal(qt_qconfig_intrinsic_mode(c, FC2), QT_INTR_FINAL);
    /* dense1: default, *1, dense? */
    expect_fmt(c, g, DENSE1, QT_QP_WEIGHTS, "fixed<5,2>");
    expect_fmt(c, g, DENSE1, QT_QP_BIAS, "fixed<8,2>");
    expect_fmt(c, g, DENSE1, QT_QP_OUTPUT, "fixed<10,5>");
    expect_fmt(c, g, DENSE1, QT_QP_INTRINSIC, NULL);
    assert_int_equal(qt_qconfig_intrinsic_mode(c, DENSE1), QT_INTR_EACH);
    /* out */
    expect_fmt(c, g, OUT, QT_QP_OUTPUT, "fixed<16,8>");
    expect_fmt(c, g, OUT, QT_QP_INTRINSIC, "float<8,e4>");
    expect_fmt(c, g, OUT, QT_QP_WEIGHTS, NULL);
    for (int i = 0; i < qt_graph_nodes(g); i++) {
        expect_fmt(c, g, i, QT_QP_GRAD_WEIGHTS, NULL);
        expect_fmt(c, g, i, QT_QP_ACCUMULATOR, NULL);
    }
    qt_qconfig_free(c);

    /* the same globs the other way round: fc* now wins for fc1 */
    c = parse_ok(g, "{\"*1\": {\"output\": \"fixed<10,5>\"}, \"fc*\": {\"output\": \"fixed<9,4>\"}}");
    expect_fmt(c, g, FC1, QT_QP_OUTPUT, "fixed<9,4>");
    expect_fmt(c, g, DENSE1, QT_QP_OUTPUT, "fixed<10,5>");
    expect_fmt(c, g, R1, QT_QP_OUTPUT, "fixed<10,5>");
    /* an exact name wins even when written before the glob */
    qt_qconfig_free(c);
    c = parse_ok(g, "{\"fc1\": {\"output\": \"fixed<7,1>\"}, \"fc*\": {\"output\": \"fixed<9,4>\","
                    " \"accumulator\": \"fixed<16,10>\", \"grad_weights\": \"fixed<16,14,sr>\"}}");
    expect_fmt(c, g, FC1, QT_QP_OUTPUT, "fixed<7,1>");
    expect_fmt(c, g, FC2, QT_QP_OUTPUT, "fixed<9,4>");
    expect_fmt(c, g, FC2, QT_QP_ACCUMULATOR, "fixed<16,10>");
    expect_fmt(c, g, FC2, QT_QP_GRAD_WEIGHTS, "fixed<16,14,sr>");
    qt_qconfig_free(c);
    /* the empty object: everything float */
    c = parse_ok(g, "{}");
    for (int i = 0; i < qt_graph_nodes(g); i++)
        for (int p = 0; p < QT_QP_COUNT; p++) expect_fmt(c, g, i, (qt_qpoint)p, NULL);
    qt_qconfig_free(c);
    qt_graph_free(g);
}

static void parse_fails(const qt_graph *g, const char *json, int want_rc, const char *n1,
                        const char *n2, const char *n3)
{
    qt_qconfig *c = (qt_qconfig *)(uintptr_t)1;
    qt_error e;
    memset(&e, 0, sizeof e);
    int rc = qt_qconfig_parse(g, json, &c, &e);
    if (rc != want_rc)
        fail_msg("%s: rc %d (%s), want %d", json, rc, e.text, want_rc);
    assert_ptr_equal(c, (qt_qconfig *)(uintptr_t)1);   /* *out untouched */
    if (n1) check_msg(json, e.text, n1);
    if (n2) check_msg(json, e.text, n2);
    if (n3) check_msg(json, e.text, n3);
}

static void t_qconfig_errors(void **st)
{
    qt_graph *g = cgraph();
    parse_fails(g, "{\"default\": {\"output\": \"fixed<8,4>\"", QT_EPARSE, "line", "column", NULL);
    parse_fails(g, "\n\n  {\"a\" 1}", QT_EPARSE, "line 3", "column", NULL);
    parse_fails(g, "[1, 2]", QT_EINVAL, "object", NULL, NULL);
    parse_fails(g, "\"fixed<8,4>\"", QT_EPARSE, "line", NULL, NULL);
    {
        qt_qconfig *c = NULL;
        qt_error e;
        json_t *j = json_string("fixed<8,4>");
        assert_int_equal(qt_qconfig_from_json(g, j, &c, &e), QT_EINVAL);
        check_msg("from_json of a string", e.text, "object");
        assert_null(c);
        json_decref(j);
    }
    parse_fails(g, "{\"fc1\": \"fixed<8,4>\"}", QT_EINVAL, "fc1", "object", NULL);
    /* keys matching no node list the node names */
    parse_fails(g, "{\"fc9\": {\"output\": \"fixed<8,4>\"}}", QT_EINVAL, "fc9", "fc1", "dense1");
    parse_fails(g, "{\"conv*\": {\"output\": \"fixed<8,4>\"}}", QT_EINVAL, "conv*", "r1", "out");
    parse_fails(g, "{\"fc1\": {\"weight\": \"fixed<8,4>\"}}", QT_EINVAL, "fc1", "'weight'", NULL);
    parse_fails(g, "{\"fc*\": {\"outptu\": \"fixed<8,4>\"}}", QT_EINVAL, "fc*", "outptu", NULL);
    parse_fails(g, "{\"fc1\": {\"output\": \"fixed<8\"}}", QT_EINVAL, "fc1", "output", NULL);
    parse_fails(g, "{\"default\": {\"bias\": \"fixd<8,4>\"}}", QT_EINVAL, "default", "bias", NULL);
    parse_fails(g, "{\"fc2\": {\"intrinsic\": 17}}", QT_EINVAL, "fc2", "intrinsic", NULL);
    parse_fails(g, "{\"fc2\": {\"grad_output\": {\"type\": \"fixed\", \"width\": 99}}}", QT_EINVAL,
                "fc2", "grad_output", NULL);
    /* weights on a weightless node: an error by exact name, skipped else */
    parse_fails(g, "{\"r1\": {\"weights\": \"fixed<8,4>\"}}", QT_EINVAL, "r1", "weights", NULL);
    parse_fails(g, "{\"out\": {\"grad_weights\": \"fixed<8,4>\"}}", QT_EINVAL, "out",
                "grad_weights", NULL);
    qt_qconfig *c = parse_ok(g, "{\"r*\": {\"weights\": \"fixed<8,4>\"}, "
                                "\"default\": {\"bias\": \"fixed<8,4>\"}}");
    expect_fmt(c, g, 2, QT_QP_WEIGHTS, NULL);
    expect_fmt(c, g, 2, QT_QP_BIAS, NULL);
    expect_fmt(c, g, 1, QT_QP_BIAS, "fixed<8,4>");
    qt_qconfig_free(c);
    parse_fails(g, "{\"fc1\": {\"intrinsic_mode\": \"sometimes\"}}", QT_EINVAL, "fc1",
                "intrinsic_mode", NULL);
    parse_fails(g, "{\"fc1\": {\"intrinsic_mode\": 1}}", QT_EINVAL, "intrinsic_mode", NULL, NULL);
    qt_graph_free(g);
}

static void same_config(const qt_qconfig *a, const qt_qconfig *b, const qt_graph *g)
{
    for (int i = 0; i < qt_graph_nodes(g); i++) {
        for (int p = 0; p < QT_QP_COUNT; p++) {
            const qt_format *fa = qt_qconfig_get(a, i, (qt_qpoint)p), *fb = qt_qconfig_get(b, i, (qt_qpoint)p);
            if (!fa != !fb || (fa && !qt_format_equal(fa, fb)))
                fail_msg("round trip differs at '%s'.%s", qt_graph_node_name(g, i),
                         qt_qpoint_name((qt_qpoint)p));
        }
        if (qt_qconfig_get(a, i, QT_QP_INTRINSIC))
            assert_int_equal(qt_qconfig_intrinsic_mode(a, i), qt_qconfig_intrinsic_mode(b, i));
    }
}

static void t_qconfig_roundtrip(void **st)
{
    qt_graph *g = cgraph();
    /* a node whose name holds glob characters */
    node1(g, QT_OP_TANH, "t[1]", 5, NULL);
    const char *texts[] = {
        "{\"default\": {\"output\": \"fixed<16,8>\", \"weights\": \"float<8,e4,b7>\"},"
        " \"fc*\": {\"intrinsic\": \"fixed<12,6,sr>\", \"intrinsic_mode\": \"final\","
        "           \"grad_weights\": \"bf16\", \"accumulator\": \"fp16\"},"
        " \"dense1\": {\"bias\": \"mxint8\", \"intrinsic\": \"float<8,e4,b7>\", \"grad_output\": \"log<6>\"},"
        " \"x\": {\"output\": \"ufixed<8,8,rz>\"},"
        " \"t[1]\": {\"output\": \"fixed<8,7,sym>\"}}",
        "{\"fc2\": {\"weights\": \"ternary<b2,auto>\", \"output\": \"binary\"}}",
        "{}",
    };
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        qt_qconfig *a = parse_ok(g, texts[k]), *b = NULL;
        qt_error e;
        json_t *j = qt_qconfig_to_json(a, g);
        assert_non_null(j);
        int rc = qt_qconfig_from_json(g, j, &b, &e);
        if (rc != QT_OK) {
            char *s = json_dumps(j, JSON_COMPACT);
            fail_msg("from_json(to_json(%s)) = %s: %s", texts[k], s, e.text);
        }
        same_config(a, b, g);
        /* canonical: a second trip gives the same JSON */
        json_t *j2 = qt_qconfig_to_json(b, g);
        assert_true(json_equal(j, j2));
        json_decref(j); json_decref(j2);
        qt_qconfig_free(a); qt_qconfig_free(b);
    }
    /* exactly the set points, by name */
    qt_qconfig *a = parse_ok(g, "{\"fc2\": {\"output\": \"fixed<8,4>\"}}");
    json_t *j = qt_qconfig_to_json(a, g);
    assert_int_equal(json_object_size(j), 1);
    json_t *e2 = json_object_get(j, "fc2");
    assert_non_null(e2);
    assert_int_equal(json_object_size(e2), 1);
    assert_string_equal(json_string_value(json_object_get(e2, "output")), "fixed<8,4>");
    json_decref(j);
    qt_qconfig_free(a);
    qt_graph_free(g);
}

/* the programmatic interface */
static void t_qconfig_set_get(void **st)
{
    qt_graph *g = cgraph();
    qt_qconfig *c = qt_qconfig_new(g);
    assert_non_null(c);
    qt_format f = fmt("fixed<8,4>"), none = qt_format_none(), bad = f;
    bad.width = 0;
    assert_null(qt_qconfig_get(c, 1, QT_QP_OUTPUT));
    assert_int_equal(qt_qconfig_set(c, 1, QT_QP_OUTPUT, &f), QT_OK);
    assert_true(qt_format_equal(qt_qconfig_get(c, 1, QT_QP_OUTPUT), &f));
    assert_int_equal(qt_qconfig_set(c, 1, QT_QP_OUTPUT, &none), QT_OK);   /* none: float */
    assert_null(qt_qconfig_get(c, 1, QT_QP_OUTPUT));
    assert_int_equal(qt_qconfig_set(c, 1, QT_QP_OUTPUT, &f), QT_OK);
    assert_int_equal(qt_qconfig_set(c, 1, QT_QP_OUTPUT, NULL), QT_OK);
    assert_null(qt_qconfig_get(c, 1, QT_QP_OUTPUT));
    assert_int_equal(qt_qconfig_set(c, 1, QT_QP_OUTPUT, &bad), QT_EINVAL);
    assert_int_equal(qt_qconfig_set(c, 6, QT_QP_OUTPUT, &f), QT_EINVAL);
    assert_int_equal(qt_qconfig_set(c, -1, QT_QP_OUTPUT, &f), QT_EINVAL);
    assert_int_equal(qt_qconfig_set(c, 1, QT_QP_COUNT, &f), QT_EINVAL);
    assert_null(qt_qconfig_get(c, 99, QT_QP_OUTPUT));
    assert_int_equal(qt_qconfig_intrinsic_mode(c, 3), QT_INTR_EACH);
    qt_qconfig_set_intrinsic_mode(c, 3, QT_INTR_FINAL);
    assert_int_equal(qt_qconfig_intrinsic_mode(c, 3), QT_INTR_FINAL);
    assert_string_equal(qt_qpoint_name(QT_QP_GRAD_WEIGHTS), "grad_weights");
    assert_string_equal(qt_qpoint_name(QT_QP_ACCUMULATOR), "accumulator");
    qt_qconfig_free(c);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Building graphs                                                           */
/* ------------------------------------------------------------------------ */

static void add_fails(qt_graph *g, qt_op op, const char *name, const int *in, int n_in,
                      const qt_attr *a, const char *n1, const char *n2, const char *n3)
{
    qt_error e;
    int before = qt_graph_nodes(g);
    memset(&e, 0, sizeof e);
    int rc = qt_graph_add(g, op, name, in, n_in, a, &e);
    if (rc != QT_EINVAL) fail_msg("adding '%s' (%s): rc %d, want QT_EINVAL", name ? name : "?",
                                  qt_op_name(op), rc);
    assert_int_equal(qt_graph_nodes(g), before);
    if (n1) check_msg(name ? name : "?", e.text, n1);
    if (n2) check_msg(name ? name : "?", e.text, n2);
    if (n3) check_msg(name ? name : "?", e.text, n3);
}

static void t_graph_errors(void **st)
{
    qt_error e;
    qt_graph *g = qt_graph_new();
    qt_attr relu = attr0(), d0 = dense_attr(0, 1), d5 = dense_attr(5, 1), d3 = dense_attr(3, 0);
    /* the input first */
    add_fails(g, QT_OP_RELU, "r", (int[]){ 0 }, 1, &relu, "input", NULL, NULL);
    assert_int_equal(qt_graph_input(g, "x", 0, 1, 1, &e), QT_EINVAL);
    assert_int_equal(qt_graph_input(g, "x", 1, 1, 6, &e), 0);
    assert_int_equal(qt_graph_input(g, "x2", 1, 1, 6, &e), QT_EINVAL);
    check_msg("second input", e.text, "first");
    add_fails(g, QT_OP_INPUT, "x3", NULL, 0, NULL, "qt_graph_input", NULL, NULL);
    int a = node1(g, QT_OP_DENSE, "a", 0, &d5);
    int b = node1(g, QT_OP_DENSE, "b", 0, &d3);
    /* names */
    add_fails(g, QT_OP_RELU, "a", &a, 1, NULL, "'a'", "already", NULL);
    add_fails(g, QT_OP_RELU, "x", &a, 1, NULL, "'x'", "already", NULL);
    add_fails(g, QT_OP_RELU, "", &a, 1, NULL, "name", NULL, NULL);
    add_fails(g, QT_OP_RELU, "my relu", &a, 1, NULL, "my relu", NULL, NULL);
    add_fails(g, QT_OP_RELU, "q\"uote", &a, 1, NULL, "name", NULL, NULL);
    char longname[QT_NAME_MAX + 1];
    memset(longname, 'n', QT_NAME_MAX);
    longname[QT_NAME_MAX] = 0;
    add_fails(g, QT_OP_RELU, longname, &a, 1, NULL, "name", NULL, NULL);
    /* inputs */
    add_fails(g, QT_OP_RELU, "r2", (int[]){ a, a }, 2, NULL, "r2", "inputs", "2");
    add_fails(g, QT_OP_ADD, "s1", &a, 1, NULL, "s1", "1", NULL);
    add_fails(g, QT_OP_ADD, "s3", (int[]){ a, a, a }, 3, NULL, "s3", "3", NULL);
    add_fails(g, QT_OP_CONCAT, "c0", NULL, 0, NULL, "c0", "0", NULL);
    add_fails(g, QT_OP_CONCAT, "c9", (int[]){ a, a, a, a, a, a, a, a, a }, 9, NULL, "c9", "9", NULL);
    add_fails(g, QT_OP_RELU, "r3", (int[]){ 7 }, 1, NULL, "r3", "7", NULL);
    add_fails(g, QT_OP_RELU, "r4", (int[]){ 3 }, 1, NULL, "r4", "3", NULL);   /* itself */
    add_fails(g, QT_OP_RELU, "r5", (int[]){ -1 }, 1, NULL, "r5", "-1", NULL);
    add_fails(g, QT_OP_COUNT, "bad", &a, 1, NULL, NULL, NULL, NULL);
    /* shapes and attributes */
    add_fails(g, QT_OP_DENSE, "d0", &a, 1, &d0, "d0", "out", NULL);
    add_fails(g, QT_OP_ADD, "sum", (int[]){ a, b }, 2, NULL, "'a' 5", "'b' 3", "sum");
    add_fails(g, QT_OP_MUL, "prod", (int[]){ b, a }, 2, NULL, "'a' 5", "'b' 3", "prod");
    qt_attr rs = attr0();
    rs.shape[0] = 2; rs.shape[1] = 2;
    add_fails(g, QT_OP_RESHAPE, "rs", &a, 1, &rs, "rs", "'a'", "2x2x1");
    qt_attr dr = attr0();
    dr.alpha = 1.0f;
    add_fails(g, QT_OP_DROPOUT, "dr", &a, 1, &dr, "dr", "1", NULL);
    dr.alpha = -0.25f;
    add_fails(g, QT_OP_DROPOUT, "dr", &a, 1, &dr, "dr", "-0.25", NULL);
    /* after all the failures the graph still works, with the right names */
    int s = node(g, QT_OP_CONCAT, NULL, (int[]){ a, b }, 2, NULL);
    assert_int_equal(qt_graph_nodes(g), 4);
    assert_string_equal(qt_graph_node_name(g, s), "concat3");
    assert_int_equal(qt_graph_find(g, "b"), b);
    assert_int_equal(qt_graph_find(g, "zz"), -1);
    assert_int_equal(qt_graph_node_op(g, s), QT_OP_CONCAT);
    const int *ids;
    assert_int_equal(qt_graph_node_inputs(g, s, &ids), 2);
    assert_int_equal(ids[0], a); assert_int_equal(ids[1], b);
    assert_int_equal(per_of(g, s), 8);
    assert_int_equal(qt_graph_set_output(g, 9), QT_EINVAL);
    assert_int_equal(qt_graph_set_output(g, a), QT_OK);
    assert_int_equal(qt_graph_output(g), a);
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    fwd(g, NULL, x, 1, 0);
    qt_graph_free(g);
}

static void t_graph_clone(void **st)
{
    rng_seed(14);
    qt_graph *g = qt_graph_new();
    qt_attr d1 = dense_attr(9, 1), d2 = dense_attr(4, 1);
    qt_graph_seed(g, 5);
    input(g, "x", 1, 1, 7);
    int a = node1(g, QT_OP_DENSE, "fc1", 0, &d1);
    int r = node1(g, QT_OP_RELU, "r", a, NULL);
    int b = node1(g, QT_OP_DENSE, "fc2", r, &d2);
    node1(g, QT_OP_SOFTMAX, "sm", b, NULL);
    fill_params(g, a);
    fill_params(g, b);
    qt_graph_set_output(g, b);
    float x[3 * 7];
    fill(x, 3 * 7, -1.0, 1.0);
    float *y = fcopy(fwd(g, NULL, x, 3, 0), 3 * 4);

    qt_graph *c = qt_graph_clone(g);
    assert_non_null(c);
    assert_int_equal(qt_graph_nodes(c), qt_graph_nodes(g));
    assert_int_equal(qt_graph_output(c), b);
    for (int i = 0; i < qt_graph_nodes(g); i++) {
        assert_string_equal(qt_graph_node_name(c, i), qt_graph_node_name(g, i));
        assert_int_equal(qt_graph_node_op(c, i), qt_graph_node_op(g, i));
    }
    check_bits("clone forward", fwd(c, NULL, x, 3, 0), y, 3 * 4);
    /* no shared memory: parameters, activations */
    qt_tensor *wc = qt_graph_param(c, a, 0), *wg = qt_graph_param(g, a, 0);
    assert_true(wc->data != wg->data);
    assert_true(act(c, b) != act(g, b));
    for (size_t i = 0; i < wc->size; i++) wc->data[i] += 1.0f;
    qt_tensor *w2 = qt_graph_param(c, b, 0);
    for (size_t i = 0; i < w2->size; i++) w2->data[i] = 0.0f;
    for (size_t i = 0; i < 4; i++) qt_graph_param(c, b, 1)->data[i] += 1.0f;
    check_bits("original after changing the clone", fwd(g, NULL, x, 3, 0), y, 3 * 4);
    const float *yc = fwd(c, NULL, x, 3, 0);
    for (int s = 0; s < 3; s++)
        for (int o = 0; o < 4; o++)
            assert_true(yc[s * 4 + o] == qt_graph_param(c, b, 1)->data[o]);
    /* and the clone outlives the original */
    qt_graph_free(g);
    fwd(c, NULL, x, 3, 0);
    qt_graph_free(c);
    free(y);
}

static void t_graph_macs(void **st)
{
    qt_graph *g = qt_graph_new();
    qt_attr d1 = dense_attr(300, 1), d2 = dense_attr(100, 1), d3 = dense_attr(10, 1);
    input(g, "x", 1, 28, 28);
    int f = node1(g, QT_OP_FLATTEN, "flat", 0, NULL);
    int a = node1(g, QT_OP_DENSE, "fc1", f, &d1);
    int r1 = node1(g, QT_OP_RELU, "r1", a, NULL);
    int b = node1(g, QT_OP_DENSE, "fc2", r1, &d2);
    int r2 = node1(g, QT_OP_RELU, "r2", b, NULL);
    node1(g, QT_OP_DENSE, "fc3", r2, &d3);
    assert_int_equal(qt_graph_macs(g), 784 * 300 + 300 * 100 + 100 * 10);
    assert_int_equal(qt_graph_node_macs(g, a), 784 * 300);
    assert_int_equal(qt_graph_node_macs(g, r1), 0);
    assert_int_equal(qt_graph_param_count(g), 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Running: errors and re-planning                                           */
/* ------------------------------------------------------------------------ */

static void t_run_errors(void **st)
{
    qt_error e;
    const qt_tensor *y = NULL;
    float x[2 * 4] = { 1, 2, 3, 4, 5, 6, 7, 8 }, dy[2 * 3] = { 0 };
    qt_graph *g = qt_graph_new();
    e.text[0] = 0;
    assert_int_equal(qt_forward(g, NULL, x, 1, 0, &y, &e), QT_EINVAL);
    check_msg("empty graph", e.text, "empty");
    qt_attr d = dense_attr(3, 1);
    input(g, "x", 1, 1, 4);
    node1(g, QT_OP_DENSE, "fc", 0, &d);
    e.text[0] = 0;
    assert_int_equal(qt_backward(g, NULL, dy, &e), QT_EINVAL);
    check_msg("backward first", e.text, "qt_forward");
    assert_int_equal(qt_forward(g, NULL, x, 0, 0, &y, &e), QT_EINVAL);
    check_msg("batch 0", e.text, "0");
    assert_int_equal(qt_forward(g, NULL, x, -3, 0, &y, &e), QT_EINVAL);
    assert_int_equal(qt_backward(g, NULL, dy, &e), QT_EINVAL);   /* still nothing to go back from */
    fwd(g, NULL, x, 2, 1);
    bwd(g, NULL, dy);
    /* adding a node drops the planned batch: backward needs a new forward */
    node1(g, QT_OP_RELU, "r", 1, NULL);
    assert_int_equal(qt_backward(g, NULL, dy, &e), QT_EINVAL);
    fwd(g, NULL, x, 2, 1);
    bwd(g, NULL, dy);
    qt_graph_free(g);
}

/* a smaller batch after a larger one reuses the plan; a larger one re-plans */
static void t_batches(void **st)
{
    enum { N = 10, K = 9, O = 7 };
    rng_seed(15);
    qt_graph *g = qt_graph_new();
    qt_attr d = dense_attr(O, 1);
    input(g, "x", 1, 1, K);
    int fc = node1(g, QT_OP_DENSE, "fc", 0, &d);
    node1(g, QT_OP_TANH, "t", fc, NULL);
    fill_params(g, fc);
    float x[N * K], R[N * O];
    fill(x, N * K, -1.0, 1.0);
    fill(R, N * O, -1.0, 1.0);
    float *y10 = fcopy(fwd(g, NULL, x, N, 0), N * O);
    bwd(g, NULL, R);
    float *dx10 = fcopy(grad(g, 0, -1), N * K);
    for (int s0 = 0; s0 < N; s0 += 5) {
        const float *y = fwd(g, NULL, x + s0 * K, 5, 0);
        for (int i = 0; i < 5 * O; i++) assert_true(fabsf(y[i] - y10[s0 * O + i]) < 1e-6f);
        bwd(g, NULL, R + s0 * O);
        for (int i = 0; i < 5 * K; i++)
            assert_true(fabsf(grad(g, 0, -1)[i] - dx10[s0 * K + i]) < 1e-6f);
    }
    float *x2 = fmalloc(3 * N * K);
    for (int k = 0; k < 3; k++) memcpy(x2 + k * N * K, x, sizeof x);
    const float *y = fwd(g, NULL, x2, 3 * N, 0);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < N * O; i++) assert_true(fabsf(y[k * N * O + i] - y10[i]) < 1e-6f);
    free(x2); free(y10); free(dx10);
    qt_graph_free(g);
}

/* A forward from node k with only the frontier of k restored (every other
 * activation clobbered by another batch) gives the full forward's output
 * bit for bit, on the ResNet (residual adds reach past their block) under
 * a quantized configuration; the frontier holds exactly the nodes before k
 * that nodes k.. read. */
static void t_forward_from_frontier(void **st)
{
    (void)st;
    qt_graph *g;
    qt_qconfig *cfg;
    qt_error err;
    const qt_tensor *y;
    assert_int_equal(qt_zoo_build("resnet", &g, &err), QT_OK);
    assert_int_equal(qt_qconfig_parse(g, "{\"default\":{\"output\":\"fixed<8,4>\","
                                      "\"weights\":\"fixed<6,5,sr>\"}}", &cfg, &err), QT_OK);
    qt_qconfig_set_seed(cfg, 7);
    int n = 3, nodes = qt_graph_nodes(g);
    size_t per = qt_graph_node_size(g, 0), F = qt_graph_node_size(g, qt_graph_output(g));
    float *x = malloc(n * per * sizeof *x), *x2 = malloc(n * per * sizeof *x2);
    float *ref = malloc(n * F * sizeof *ref);
    uint64_t seed = 99;
    for (size_t i = 0; i < n * per; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 40) / (double)(1ull << 24) * 4.0 - 2.0);
        x2[i] = -x[i] * 0.5f;
    }
    assert_int_equal(qt_forward(g, cfg, x, n, 0, &y, &err), QT_OK);
    memcpy(ref, y->data, n * F * sizeof *ref);
    int resumed = 0, wide = 0;
    for (int k = 2; k <= nodes; k++) {
        int fr[64];
        int nf = qt_graph_frontier(g, k, fr, 64);
        assert_true(nf >= 1 && nf <= 64);
        if (nf > 1) wide++;
        /* the frontier, by brute force: nodes before k read by nodes k.. */
        for (int j = 1; j < k; j++) {
            int read = j == qt_graph_output(g), in = 0;
            for (int i = k; i < nodes; i++) {
                const int *ids;
                int m = qt_graph_node_inputs(g, i, &ids);
                for (int e = 0; e < m; e++) read |= ids[e] == j;
            }
            for (int f = 0; f < nf; f++) in |= fr[f] == j;
            assert_int_equal(read, in);
        }
        float *keep[64];
        for (int f = 0; f < nf; f++) {
            size_t m = n * qt_graph_node_size(g, fr[f]);
            assert_int_equal(qt_forward(g, cfg, x, n, 0, NULL, &err), QT_OK);
            keep[f] = malloc(m * sizeof(float));
            memcpy(keep[f], qt_graph_activation(g, fr[f])->data, m * sizeof(float));
        }
        assert_int_equal(qt_forward(g, cfg, x2, n, 0, NULL, &err), QT_OK);   /* clobber */
        for (int f = 0; f < nf; f++) {
            assert_int_equal(qt_graph_set_activation(g, fr[f], keep[f], n, &err), QT_OK);
            free(keep[f]);
        }
        assert_int_equal(qt_forward_from(g, cfg, k, x, n, 0, &y, &err), QT_OK);
        assert_memory_equal(y->data, ref, n * F * sizeof *ref);
        resumed++;
    }
    assert_true(resumed == nodes - 1);
    assert_true(wide >= 3);                    /* residual skips cross boundaries */
    /* bad resumes are errors */
    assert_int_equal(qt_forward_from(g, cfg, nodes + 1, x, n, 0, &y, &err), QT_EINVAL);
    assert_int_equal(qt_forward_from(g, cfg, 3, x, 100, 0, &y, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "resuming at node 3"));
    assert_int_equal(qt_graph_set_activation(g, 0, x, n, &err), QT_EINVAL);
    free(x); free(x2); free(ref);
    qt_qconfig_free(cfg);
    qt_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_forward_from_frontier),
        cmocka_unit_test(t_unary_ops),
        cmocka_unit_test(t_binary_concat),
        cmocka_unit_test(t_dense_matmul),
        cmocka_unit_test(t_dropout),
        cmocka_unit_test(t_graph_mlp),
        cmocka_unit_test(t_graph_residual),
        cmocka_unit_test(t_fanout_ops),
        cmocka_unit_test(t_softmax_xent),
        cmocka_unit_test(t_qpoint_weights_bias),
        cmocka_unit_test(t_qpoint_output_input),
        cmocka_unit_test(t_qpoint_grads),
        cmocka_unit_test(t_qpoint_stochastic),
        cmocka_unit_test(t_qpoint_streams),
        cmocka_unit_test(t_intrinsic_dense),
        cmocka_unit_test(t_intrinsic_elementwise),
        cmocka_unit_test(t_intrinsic_sr_unbiased),
        cmocka_unit_test(t_intrinsic_operand_nearest),
        cmocka_unit_test(t_qconfig_parse),
        cmocka_unit_test(t_qconfig_errors),
        cmocka_unit_test(t_qconfig_roundtrip),
        cmocka_unit_test(t_qconfig_set_get),
        cmocka_unit_test(t_graph_errors),
        cmocka_unit_test(t_graph_clone),
        cmocka_unit_test(t_graph_macs),
        cmocka_unit_test(t_run_errors),
        cmocka_unit_test(t_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
