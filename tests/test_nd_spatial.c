/*
 * test_nd_spatial.c -- conv, maxpool, avgpool (1-D, 2-D, 3-D), gap, gmp and
 * batchnorm on N-d per-sample dims (engine/ops_conv.c, engine/ops_pool.c),
 * against independent float64 references written here with odometer loops
 * over the S spatial dims (not the engine's 3-D-with-1s scheme):
 *   - conv forward on random 1-D/2-D/3-D configurations (groups, dilation,
 *     asymmetric pads, strides, bias, leading dims folded into the batch),
 *     output dims, MACs and weight dims; backward (dx, dW, db) against the
 *     float64 adjoint, itself checked against central differences;
 *   - maxpool/avgpool forward on random configurations (ceil mode,
 *     count_pad, dilation, NaN/-inf), invalid ones being shape errors;
 *     backward against the analytic routing / adjoint;
 *   - a folded input (per-sample [l..., C, spatial...]) gives the same bits
 *     as the same data with the leading dims as batch entries, forward and
 *     backward, float and intrinsic, for every op here;
 *   - intrinsic EACH and FINAL bit for bit against scalar references using
 *     qt_mul/qt_add/qt_quantize1 in the documented order with the
 *     documented random words (3-D and 1-D conv, 3-D pools, gap, gmp);
 *   - gap/gmp with axis and mode (dims, NaN, ties, backward), batchnorm
 *     with axis on [C], [C,L], [C,H,W], [C,D,H,W] and leading dims
 *     (training and inference, gradients by central differences, running
 *     statistics);
 *   - values from the ONNX operator documentation, and shape errors.
 * The intrinsic stream mirrors exec.c: (node << 8) ^ QT_QP_INTRINSIC.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../engine/internal.h"   /* only to set g->sample_base (data-set offsets) */

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
static int rin(rng *r, int lo, int hi) { return lo + (int)(rnext(r) % (uint64_t)(hi - lo + 1)); }
static void fill(rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * runif(r));
}

static void *xmalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    assert_non_null(p);
    return p;
}

static double *to_d(const float *x, size_t n)
{
    double *d = xmalloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static int same_bits(float a, float b)
{
    uint32_t x, y;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    return x == y;
}

static void bits_equal(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same_bits(got[i], want[i]))
            fail_msg("%s: [%zu] got %a (%.9g), want %a (%.9g)", what, i, (double)got[i],
                     (double)got[i], (double)want[i], (double)want[i]);
}

static void near(const char *what, size_t i, double got, double want, double tol)
{
    if (isnan(want) && isnan(got)) return;
    if (isinf(want) && got == want) return;
    if (!(fabs(got - want) <= tol))
        fail_msg("%s[%zu]: got %.9g, want %.9g (tol %.3g)", what, i, got, want, tol);
}

static qt_format P(const char *text)
{
    qt_format f;
    qt_error err;
    if (qt_format_parse(text, &f, &err) != QT_OK) fail_msg("parse '%s': %s", text, err.text);
    return f;
}

static size_t prod(const int *v, int n)
{
    size_t p = 1;
    for (int i = 0; i < n; i++) p *= (size_t)v[i];
    return p;
}

/* odometer over idx[0..n) < lim (last fastest); 0 once it wraps */
static int next_idx(int *idx, const int *lim, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < lim[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

static size_t flat(const int *idx, const int *lim, int n)
{
    size_t f = 0;
    for (int i = 0; i < n; i++) f = f * (size_t)lim[i] + (size_t)idx[i];
    return f;
}

static void fwd(qt_graph *g, const qt_qconfig *cfg, const float *x, int n, int train,
                const qt_tensor **y)
{
    qt_error err;
    if (qt_forward(g, cfg, x, n, train, y, &err)) fail_msg("qt_forward: %s", err.text);
}

static void bwd(qt_graph *g, const qt_qconfig *cfg, const float *dy)
{
    qt_error err;
    if (qt_backward(g, cfg, dy, &err)) fail_msg("qt_backward: %s", err.text);
}

static qt_qconfig *intr_cfg(qt_graph *g, const char *node, const char *fmt, int each,
                            uint64_t seed)
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

/* ------------------------------------------------------------------------ */
/* spatial configurations                                                    */
/* ------------------------------------------------------------------------ */

typedef struct sc {
    qt_op op;                 /* conv, maxpool, avgpool */
    int N;                    /* engine batch */
    int nlead, lead[2];       /* per-sample dims folded into the batch */
    int C, S, in[3];          /* channels; spatial rank and sizes */
    int k[3], s[3], d[3];     /* stride, dilation >= 1 */
    int p0[3], p1[3];         /* pad begins, ends */
    int groups, out, bias;    /* conv */
    int ceil_mode, count_pad; /* pools */
    int zero_defaults;        /* write stride/dilation 1 as 0 in the attributes */
} sc;

static int Lof(const sc *k) { return (int)prod(k->lead, k->nlead); }
static int NB(const sc *k) { return k->N * Lof(k); }

/* output length on one axis, by enumerating window starts o*s (padded
 * coordinates): floor mode keeps windows inside the padded input, ceil
 * mode the ones starting within ceil(span/s) strides and inside the input
 * or its leading padding */
static int pool_out(int L, int p0, int p1, int k, int s, int d, int ceil_mode)
{
    int span = L + p0 + p1 - ((k - 1) * d + 1), n = 0;
    if (span < 0) return 0;
    for (int o = 0; o * s <= span + (ceil_mode ? s - 1 : 0); o++)
        if (!ceil_mode || o * s < L + p0) n++;
    return n;
}

static int conv_out(int L, int p0, int p1, int k, int s, int d)
{
    int e = L + p0 + p1 - d * (k - 1);
    return e < 1 ? 0 : (e - 1) / s + 1;
}

static void outs(const sc *k, int o[3])
{
    for (int j = 0; j < k->S; j++)
        o[j] = k->op == QT_OP_CONV
             ? conv_out(k->in[j], k->p0[j], k->p1[j], k->k[j], k->s[j], k->d[j])
             : pool_out(k->in[j], k->p0[j], k->p1[j], k->k[j], k->s[j], k->d[j], k->ceil_mode);
}

static int valid(const sc *k)
{
    int o[3];
    outs(k, o);
    for (int j = 0; j < k->S; j++) if (o[j] < 1) return 0;
    return 1;
}

static int oc(const sc *k) { return k->op == QT_OP_CONV ? k->out : k->C; }
static size_t xper(const sc *k) { return (size_t)k->C * prod(k->in, k->S); }
static size_t yper(const sc *k) { int o[3]; outs(k, o); return (size_t)oc(k) * prod(o, k->S); }
static size_t xsize(const sc *k) { return (size_t)NB(k) * xper(k); }
static size_t ysize(const sc *k) { return (size_t)NB(k) * yper(k); }
static int Cg(const sc *k) { return k->C / k->groups; }
static size_t wsize(const sc *k) { return (size_t)k->out * Cg(k) * prod(k->k, k->S); }

static void describe(const sc *k, char *b, size_t n)
{
    int at = snprintf(b, n, "%s N%d lead[", qt_op_name(k->op), k->N);
    for (int i = 0; i < k->nlead; i++) at += snprintf(b + at, n - (size_t)at, "%s%d", i ? "," : "", k->lead[i]);
    at += snprintf(b + at, n - (size_t)at, "] C%d in", k->C);
    for (int j = 0; j < k->S; j++) at += snprintf(b + at, n - (size_t)at, "%s%d", j ? "x" : "", k->in[j]);
    at += snprintf(b + at, n - (size_t)at, " k");
    for (int j = 0; j < k->S; j++) at += snprintf(b + at, n - (size_t)at, "%s%d", j ? "x" : "", k->k[j]);
    at += snprintf(b + at, n - (size_t)at, " s");
    for (int j = 0; j < k->S; j++) at += snprintf(b + at, n - (size_t)at, "%s%d", j ? "x" : "", k->s[j]);
    at += snprintf(b + at, n - (size_t)at, " d");
    for (int j = 0; j < k->S; j++) at += snprintf(b + at, n - (size_t)at, "%s%d", j ? "x" : "", k->d[j]);
    at += snprintf(b + at, n - (size_t)at, " p");
    for (int j = 0; j < k->S; j++) at += snprintf(b + at, n - (size_t)at, "%s%d", j ? "," : "", k->p0[j]);
    for (int j = 0; j < k->S; j++) at += snprintf(b + at, n - (size_t)at, ",%d", k->p1[j]);
    snprintf(b + at, n - (size_t)at, " g%d o%d b%d ceil%d cp%d", k->groups, k->out, k->bias,
             k->ceil_mode, k->count_pad);
}

static void attr_of(const sc *k, qt_attr *a)
{
    memset(a, 0, sizeof *a);
    for (int j = 0; j < k->S; j++) {
        a->kernel[j] = k->k[j];
        a->stride[j] = k->zero_defaults && k->s[j] == 1 ? 0 : k->s[j];
        a->dilation[j] = k->zero_defaults && k->d[j] == 1 ? 0 : k->d[j];
        a->pad[j] = k->p0[j];
        a->pad[k->S + j] = k->p1[j];
    }
    if (k->op == QT_OP_CONV) {
        a->groups = k->groups == 1 && k->zero_defaults ? 0 : k->groups;
        a->out = k->out;
        a->bias = k->bias;
    } else {
        a->ceil_mode = k->ceil_mode;
        a->count_pad = k->count_pad;
    }
}

/* per-sample input dims: [lead..., C, in...] (fold) or [C, in...] */
static int in_dims(const sc *k, int fold, int *dims)
{
    int r = 0;
    if (fold) for (int i = 0; i < k->nlead; i++) dims[r++] = k->lead[i];
    dims[r++] = k->C;
    for (int j = 0; j < k->S; j++) dims[r++] = k->in[j];
    return r;
}

/* input "x" -> one node "op1"; NULL with the error in err when it fails */
static qt_graph *build_sc(const sc *k, int fold, int *id, qt_error *err)
{
    int dims[QT_MAX_RANK], r = in_dims(k, fold, dims);
    qt_attr a;
    attr_of(k, &a);
    qt_graph *g = qt_graph_new();
    assert_non_null(g);
    int in = qt_graph_input_nd(g, "x", r, dims, err);
    assert_int_equal(in, 0);
    *id = qt_graph_add(g, k->op, "op1", &in, 1, &a, err);
    if (*id < 0) { qt_graph_free(g); return NULL; }
    return g;
}

static qt_graph *build_ok(const sc *k, int fold, int *id)
{
    qt_error err;
    char d[256];
    qt_graph *g = build_sc(k, fold, id, &err);
    if (!g) { describe(k, d, sizeof d); fail_msg("%s: %s", d, err.text); }
    return g;
}

/* a random configuration of op with spatial rank S (valid or not) */
static void random_sc(rng *r, qt_op op, int S, sc *k)
{
    static const int maxin[4] = { 0, 14, 9, 6 }, maxk[4] = { 0, 5, 4, 3 };
    memset(k, 0, sizeof *k);
    k->op = op;
    k->S = S;
    k->N = rin(r, 1, 2);
    k->nlead = rin(r, 0, 2);
    for (int i = 0; i < k->nlead; i++) k->lead[i] = rin(r, 1, 3);
    k->C = rin(r, 1, 5);
    for (int j = 0; j < S; j++) {
        k->in[j] = rin(r, 1, maxin[S]);
        k->k[j] = rin(r, 1, maxk[S]);
        k->s[j] = rin(r, 1, 3);
        k->d[j] = op == QT_OP_AVGPOOL ? 1 : rin(r, 1, 2);
        int ext = (k->k[j] - 1) * k->d[j] + 1;
        int pmax = op == QT_OP_CONV ? 2 : ext - 1;
        k->p0[j] = rin(r, 0, pmax < 2 ? pmax : 2);
        k->p1[j] = rin(r, 0, pmax < 2 ? pmax : 2);
    }
    k->zero_defaults = rin(r, 0, 1);
    if (op == QT_OP_CONV) {
        int choice = rin(r, 0, 3);
        k->groups = choice == 0 ? 1 : choice == 1 ? (k->C % 2 ? 1 : 2)
                  : choice == 2 ? (k->C % 3 ? 1 : 3) : k->C;
        k->out = k->groups * rin(r, 1, choice == 3 ? 2 : 3);
        k->bias = rin(r, 0, 1);
    } else {
        k->groups = 1;
        k->ceil_mode = rin(r, 0, 1);
        k->count_pad = op == QT_OP_AVGPOOL ? rin(r, 0, 1) : 0;
    }
}

static void random_valid(rng *r, qt_op op, int S, sc *k)
{
    do random_sc(r, op, S, k); while (!valid(k));
}

/* ------------------------------------------------------------------------ */
/* float64 references (folded samples nb < NB, layout [nb][c][spatial])     */
/* ------------------------------------------------------------------------ */

/* the input position of output oi and tap q; 0 when it is padding */
static int tap_pos(const sc *k, const int *oi, const int *q, int *ii)
{
    int ok = 1;
    for (int j = 0; j < k->S; j++) {
        ii[j] = oi[j] * k->s[j] - k->p0[j] + q[j] * k->d[j];
        if (ii[j] < 0 || ii[j] >= k->in[j]) ok = 0;
    }
    return ok;
}

static void ref_conv(const sc *k, const double *x, const double *w, const double *b,
                     double *y, double *mag)
{
    int o[3], S = k->S, cg = Cg(k), og = k->out / k->groups;
    outs(k, o);
    size_t X = prod(k->in, S), Y = prod(o, S), KK = prod(k->k, S);
    for (int nb = 0; nb < NB(k); nb++)
        for (int co = 0; co < k->out; co++) {
            int oi[3] = { 0, 0, 0 };
            do {
                double sum = b ? b[co] : 0.0, m = b ? fabs(b[co]) : 0.0;
                for (int ci = 0; ci < cg; ci++) {
                    int q[3] = { 0, 0, 0 }, ii[3];
                    do {
                        if (!tap_pos(k, oi, q, ii)) continue;
                        double t = w[((size_t)co * cg + ci) * KK + flat(q, k->k, S)]
                                 * x[((size_t)nb * k->C + (size_t)(co / og) * cg + ci) * X
                                     + flat(ii, k->in, S)];
                        sum += t;
                        m += fabs(t);
                    } while (next_idx(q, k->k, S));
                }
                size_t yi = ((size_t)nb * k->out + co) * Y + flat(oi, o, S);
                y[yi] = sum;
                if (mag) mag[yi] = m;
            } while (next_idx(oi, o, S));
        }
}

/* the adjoint of ref_conv: dx, dw, db (overwritten) from dy */
static void ref_conv_adj(const sc *k, const double *x, const double *w, const double *dy,
                         double *dx, double *dw, double *db)
{
    int o[3], S = k->S, cg = Cg(k), og = k->out / k->groups;
    outs(k, o);
    size_t X = prod(k->in, S), Y = prod(o, S), KK = prod(k->k, S);
    memset(dx, 0, xsize(k) * sizeof *dx);
    memset(dw, 0, wsize(k) * sizeof *dw);
    memset(db, 0, (size_t)k->out * sizeof *db);
    for (int nb = 0; nb < NB(k); nb++)
        for (int co = 0; co < k->out; co++) {
            int oi[3] = { 0, 0, 0 };
            do {
                double d = dy[((size_t)nb * k->out + co) * Y + flat(oi, o, S)];
                db[co] += d;
                for (int ci = 0; ci < cg; ci++) {
                    int q[3] = { 0, 0, 0 }, ii[3];
                    do {
                        if (!tap_pos(k, oi, q, ii)) continue;
                        size_t wi = ((size_t)co * cg + ci) * KK + flat(q, k->k, S);
                        size_t xi = ((size_t)nb * k->C + (size_t)(co / og) * cg + ci) * X
                                  + flat(ii, k->in, S);
                        dx[xi] += d * w[wi];
                        dw[wi] += d * x[xi];
                    } while (next_idx(q, k->k, S));
                }
            } while (next_idx(oi, o, S));
        }
}

/* maxpool: the first maximum in window order, any NaN: the first NaN;
 * arg (optional) the input offset within the plane, -1 for none */
static void ref_maxpool(const sc *k, const double *x, double *y, int *arg)
{
    int o[3], S = k->S;
    outs(k, o);
    size_t X = prod(k->in, S), Y = prod(o, S);
    for (int pl = 0; pl < NB(k) * k->C; pl++) {
        int oi[3] = { 0, 0, 0 };
        do {
            double best = -INFINITY;
            long a = -1, anan = -1;
            int q[3] = { 0, 0, 0 }, ii[3];
            do {
                if (!tap_pos(k, oi, q, ii)) continue;
                size_t at = flat(ii, k->in, S);
                double v = x[(size_t)pl * X + at];
                if (isnan(v)) { if (anan < 0) anan = (long)at; }
                else if (a < 0 || v > best) { best = v; a = (long)at; }
            } while (next_idx(q, k->k, S));
            size_t yi = (size_t)pl * Y + flat(oi, o, S);
            y[yi] = anan >= 0 ? NAN : best;
            if (arg) arg[yi] = (int)(anan >= 0 ? anan : a);
        } while (next_idx(oi, o, S));
    }
}

/* avgpool: the divisor of each output (inside the input, or with count_pad
 * inside the padded input), and y */
static void ref_avgpool(const sc *k, const double *x, double *y, double *div)
{
    int o[3], S = k->S;
    outs(k, o);
    size_t X = prod(k->in, S), Y = prod(o, S);
    for (int pl = 0; pl < NB(k) * k->C; pl++) {
        int oi[3] = { 0, 0, 0 };
        do {
            double s = 0.0;
            int inside = 0, padded = 0, q[3] = { 0, 0, 0 }, ii[3];
            do {
                int in_pad = 1;
                for (int j = 0; j < S; j++) {
                    int p = oi[j] * k->s[j] - k->p0[j] + q[j];
                    if (p < -k->p0[j] || p >= k->in[j] + k->p1[j]) in_pad = 0;
                }
                padded += in_pad;
                if (!tap_pos(k, oi, q, ii)) continue;
                s += x[(size_t)pl * X + flat(ii, k->in, S)];
                inside++;
            } while (next_idx(q, k->k, S));
            size_t yi = (size_t)pl * Y + flat(oi, o, S);
            double D = k->count_pad ? padded : inside;
            y[yi] = s / D;
            if (div) div[yi] = D;
        } while (next_idx(oi, o, S));
    }
}

/* ------------------------------------------------------------------------ */
/* 1. conv forward and backward                                              */
/* ------------------------------------------------------------------------ */

static void conv_params(rng *r, qt_graph *g, int id, const sc *k)
{
    qt_tensor *W = qt_graph_param(g, id, 0), *B = qt_graph_param(g, id, 1);
    assert_non_null(W);
    assert_int_equal(W->size, wsize(k));
    fill(r, W->data, W->size, -1.0, 1.0);
    if (k->bias) {
        assert_non_null(B);
        fill(r, B->data, B->size, -1.0, 1.0);
    } else {
        assert_null(B);
    }
}

/* output dims, MACs, parameter dims */
static void check_meta(const sc *k, qt_graph *g, int id, int fold)
{
    char d[256];
    int dims[QT_MAX_RANK], want[QT_MAX_RANK], o[3], r = 0;
    describe(k, d, sizeof d);
    outs(k, o);
    if (fold) for (int i = 0; i < k->nlead; i++) want[r++] = k->lead[i];
    want[r++] = oc(k);
    for (int j = 0; j < k->S; j++) want[r++] = o[j];
    int rank = qt_graph_node_dims(g, id, dims);
    if (rank != r) fail_msg("%s: rank %d, want %d", d, rank, r);
    for (int i = 0; i < r; i++)
        if (dims[i] != want[i]) fail_msg("%s: dim %d is %d, want %d", d, i, dims[i], want[i]);
    uint64_t L = fold ? (uint64_t)Lof(k) : 1, taps = k->op == QT_OP_CONV
               ? (uint64_t)Cg(k) * prod(k->k, k->S) : prod(k->k, k->S);
    uint64_t macs = L * yper(k) * taps;
    if (qt_graph_node_macs(g, id) != macs)
        fail_msg("%s: macs %llu, want %llu", d, (unsigned long long)qt_graph_node_macs(g, id),
                 (unsigned long long)macs);
    if (k->op == QT_OP_CONV) {
        qt_tensor *W = qt_graph_param(g, id, 0);
        assert_int_equal(W->ndim, 2 + k->S);
        assert_int_equal(W->shape[0], k->out);
        assert_int_equal(W->shape[1], Cg(k));
        for (int j = 0; j < k->S; j++) assert_int_equal(W->shape[2 + j], k->k[j]);
    }
}

static void conv_forward_one(const sc *k, uint64_t seed)
{
    rng r = { seed };
    char d[256];
    int id;
    describe(k, d, sizeof d);
    qt_graph *g = build_ok(k, 1, &id);
    check_meta(k, g, id, 1);
    conv_params(&r, g, id, k);
    size_t nx = xsize(k), ny = ysize(k);
    float *x = xmalloc(nx * sizeof *x);
    fill(&r, x, nx, -1.0, 1.0);
    double *xd = to_d(x, nx), *wd = to_d(qt_graph_param(g, id, 0)->data, wsize(k));
    double *bd = k->bias ? to_d(qt_graph_param(g, id, 1)->data, (size_t)k->out) : NULL;
    double *ref = xmalloc(ny * sizeof *ref), *mag = xmalloc(ny * sizeof *mag);
    ref_conv(k, xd, wd, bd, ref, mag);
    const qt_tensor *y;
    fwd(g, NULL, x, k->N, 0, &y);
    assert_int_equal(y->size, ny);
    double K = (double)Cg(k) * prod(k->k, k->S);
    for (size_t i = 0; i < ny; i++) {
        double tol = 2e-6 * sqrt(K) * (1.0 + mag[i]);
        if (!(fabs(y->data[i] - ref[i]) <= tol))
            fail_msg("%s: y[%zu] = %.9g, reference %.9g", d, i, (double)y->data[i], ref[i]);
    }
    free(x); free(xd); free(wd); free(bd); free(ref); free(mag);
    qt_graph_free(g);
}

static void t_conv_forward(void **st)
{
    (void)st;
    rng r = { 101 };
    int n = 0;
    for (int S = 1; S <= 3; S++)
        for (int i = 0; i < 30; i++, n++) {
            sc k;
            random_valid(&r, QT_OP_CONV, S, &k);
            conv_forward_one(&k, 1000 + (uint64_t)n);
        }
}

/* the float64 adjoint against central differences of ref_conv */
static void check_adjoint(const sc *k, const double *x, const double *w, const double *R,
                          const double *ax, const double *aw, const double *ab)
{
    size_t nx = xsize(k), nw = wsize(k), ny = ysize(k);
    double *xv = xmalloc(nx * sizeof *xv), *wv = xmalloc(nw * sizeof *wv);
    double *bv = xmalloc((size_t)k->out * sizeof *bv), *y = xmalloc(ny * sizeof *y);
    memcpy(xv, x, nx * sizeof *xv);
    memcpy(wv, w, nw * sizeof *wv);
    const double h = 1e-3;
    struct { double *v; const double *a; size_t n; } sets[3] = {
        { xv, ax, nx }, { wv, aw, nw }, { bv, ab, (size_t)k->out } };
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < sets[s].n; i++) {
            double keep = sets[s].v[i], l[2];
            for (int sg = 0; sg < 2; sg++) {
                sets[s].v[i] = keep + (sg ? -h : h);
                ref_conv(k, xv, wv, bv, y, NULL);
                l[sg] = 0.0;
                for (size_t j = 0; j < ny; j++) l[sg] += y[j] * R[j];
            }
            sets[s].v[i] = keep;
            double g = (l[0] - l[1]) / (2 * h);
            if (!(fabs(g - sets[s].a[i]) <= 1e-7 * (1 + fabs(g))))
                fail_msg("adjoint set %d [%zu]: %.12g vs differences %.12g", s, i, sets[s].a[i], g);
        }
    free(xv); free(wv); free(bv); free(y);
}

static void check_grad(const char *d, const char *what, const float *g, const double *r,
                       size_t n, double terms)
{
    for (size_t i = 0; i < n; i++) {
        double tol = 1e-5 * sqrt(terms) * (1.0 + fabs(r[i]));
        if (!(fabs(g[i] - r[i]) <= tol))
            fail_msg("%s: %s[%zu] = %.9g, reference %.9g", d, what, i, (double)g[i], r[i]);
    }
}

static void conv_backward_one(const sc *k, uint64_t seed, int fd)
{
    rng r = { seed };
    char d[256];
    int id;
    describe(k, d, sizeof d);
    qt_graph *g = build_ok(k, 1, &id);
    conv_params(&r, g, id, k);
    size_t nx = xsize(k), ny = ysize(k), nw = wsize(k), nb = (size_t)k->out;
    float *x = xmalloc(nx * sizeof *x), *dy = xmalloc(ny * sizeof *dy);
    fill(&r, x, nx, -1.0, 1.0);
    fill(&r, dy, ny, -1.0, 1.0);
    double *xd = to_d(x, nx), *wd = to_d(qt_graph_param(g, id, 0)->data, nw), *R = to_d(dy, ny);
    double *ax = xmalloc(nx * sizeof *ax), *aw = xmalloc(nw * sizeof *aw), *ab = xmalloc(nb * sizeof *ab);
    ref_conv_adj(k, xd, wd, R, ax, aw, ab);
    if (fd) check_adjoint(k, xd, wd, R, ax, aw, ab);
    const qt_tensor *y;
    fwd(g, NULL, x, k->N, 1, &y);
    bwd(g, NULL, dy);
    int o[3];
    outs(k, o);
    double Pn = (double)NB(k) * prod(o, k->S);
    check_grad(d, "dx", qt_graph_grad(g, 0, -1)->data, ax, nx,
               (double)(k->out / k->groups) * prod(k->k, k->S));
    check_grad(d, "dW", qt_graph_grad(g, id, 0)->data, aw, nw, Pn);
    if (k->bias) check_grad(d, "db", qt_graph_grad(g, id, 1)->data, ab, nb, Pn);
    else assert_null(qt_graph_grad(g, id, 1));
    free(x); free(dy); free(xd); free(wd); free(R); free(ax); free(aw); free(ab);
    qt_graph_free(g);
}

static void t_conv_backward(void **st)
{
    (void)st;
    rng r = { 202 };
    int n = 0;
    for (int S = 1; S <= 3; S++)
        for (int i = 0; i < 20; i++, n++) {
            sc k;
            random_valid(&r, QT_OP_CONV, S, &k);
            /* differences on the small ones (the adjoint itself) */
            int fd = i < 4 && xsize(&k) + wsize(&k) < 600;
            conv_backward_one(&k, 2000 + (uint64_t)n, fd);
        }
}

/* ------------------------------------------------------------------------ */
/* 2. pooling forward and backward                                           */
/* ------------------------------------------------------------------------ */

static void pool_one(const sc *k, uint64_t seed, int *invalid)
{
    rng r = { seed };
    char d[256];
    int id;
    qt_error err;
    describe(k, d, sizeof d);
    qt_graph *g = build_sc(k, 1, &id, &err);
    if (!valid(k)) {
        if (g) fail_msg("%s: expected a shape error", d);
        if (!strstr(err.text, "'op1'") || !strstr(err.text, "output"))
            fail_msg("%s: message '%s'", d, err.text);
        (*invalid)++;
        return;
    }
    if (!g) fail_msg("%s: %s", d, err.text);
    check_meta(k, g, id, 1);
    int is_max = k->op == QT_OP_MAXPOOL;
    size_t nx = xsize(k), ny = ysize(k);
    float *x = xmalloc(nx * sizeof *x), *dy = xmalloc(ny * sizeof *dy);
    fill(&r, x, nx, -2.0, 2.0);
    fill(&r, dy, ny, -1.0, 1.0);
    if (is_max && seed % 3 == 0) x[rnext(&r) % nx] = -INFINITY;
    if (is_max && seed % 5 == 0) x[rnext(&r) % nx] = NAN;
    if (is_max && seed % 4 == 0 && nx > 1) x[rnext(&r) % nx] = x[0];   /* a tie, maybe */
    double *xd = to_d(x, nx), *yd = xmalloc(ny * sizeof *yd), *div = xmalloc(ny * sizeof *div);
    int *arg = xmalloc(ny * sizeof *arg);
    if (is_max) ref_maxpool(k, xd, yd, arg);
    else ref_avgpool(k, xd, yd, div);
    const qt_tensor *y;
    fwd(g, NULL, x, k->N, 1, &y);
    assert_int_equal(y->size, ny);
    for (size_t i = 0; i < ny; i++) {
        if (is_max) {
            if (!(same_bits(y->data[i], (float)yd[i]) || (isnan(yd[i]) && isnan(y->data[i]))))
                fail_msg("%s: max[%zu] %g, want %g", d, i, (double)y->data[i], yd[i]);
        } else {
            near(d, i, y->data[i], yd[i], 1e-6 * fabs(yd[i]) + 1e-12);
        }
    }
    /* backward: max routes dy to the argmax; avg spreads dy/D over the
     * window's inside positions (the adjoint of ref_avgpool) */
    bwd(g, NULL, dy);
    double *want = xmalloc(nx * sizeof *want);
    int o[3], S = k->S;
    outs(k, o);
    size_t X = prod(k->in, S), Y = prod(o, S);
    for (int pl = 0; pl < NB(k) * k->C; pl++) {
        int oi[3] = { 0, 0, 0 };
        do {
            size_t yi = (size_t)pl * Y + flat(oi, o, S);
            if (is_max) {
                if (arg[yi] >= 0) want[(size_t)pl * X + (size_t)arg[yi]] += dy[yi];
                continue;
            }
            int q[3] = { 0, 0, 0 }, ii[3];
            do {
                if (tap_pos(k, oi, q, ii))
                    want[(size_t)pl * X + flat(ii, k->in, S)] += (double)dy[yi] / div[yi];
            } while (next_idx(q, k->k, S));
        } while (next_idx(oi, o, S));
    }
    const float *dx = qt_graph_grad(g, 0, -1)->data;
    for (size_t i = 0; i < nx; i++) near("dx", i, dx[i], want[i], 1e-6 * (1 + fabs(want[i])));
    free(x); free(dy); free(xd); free(yd); free(div); free(arg); free(want);
    qt_graph_free(g);
}

static void t_pool_forward_backward(void **st)
{
    (void)st;
    rng r = { 303 };
    int n = 0, invalid = 0;
    for (int op = 0; op < 2; op++)
        for (int S = 1; S <= 3; S++)
            for (int i = 0; i < 40; i++, n++) {
                sc k;
                random_sc(&r, op ? QT_OP_AVGPOOL : QT_OP_MAXPOOL, S, &k);
                pool_one(&k, 3000 + (uint64_t)n, &invalid);
            }
    print_message("pooling: %d configurations, %d shape errors\n", n, invalid);
    assert_true(invalid > 0 && invalid < n / 2);
}

/* ------------------------------------------------------------------------ */
/* 3. values from the ONNX operator documentation                            */
/* ------------------------------------------------------------------------ */

static void run_values(qt_op op, const qt_attr *a, int rank, const int *dims, const float *x,
                       int ry, const int *ydims, const float *want, size_t ny)
{
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input_nd(g, "x", rank, dims, &err);
    int id = qt_graph_add(g, op, "onnx", &in, 1, a, &err);
    if (id < 0) fail_msg("%s", err.text);
    if (op == QT_OP_CONV) {
        qt_tensor *W = qt_graph_param(g, id, 0);
        for (size_t i = 0; i < W->size; i++) W->data[i] = 1.0f;
    }
    int dd[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, id, dd), ry);
    for (int i = 0; i < ry; i++) assert_int_equal(dd[i], ydims[i]);
    const qt_tensor *y;
    fwd(g, NULL, x, 1, 0, &y);
    assert_int_equal(y->size, ny);
    for (size_t i = 0; i < ny; i++) near(qt_op_name(op), i, y->data[i], want[i], 1e-5);
    qt_graph_free(g);
}

static void t_onnx_values(void **st)
{
    (void)st;
    float x[35], ones[32 * 32 * 32];
    for (int i = 0; i < 35; i++) x[i] = (float)i;
    for (size_t i = 0; i < sizeof ones / sizeof *ones; i++) ones[i] = 1.0f;
    qt_attr a;
    /* Conv: x = 0..24 as [1,1,5,5], W = ones [1,1,3,3] (whole tensors as
     * one sample: per-sample [1,1,5,5]) */
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 3; a.out = 1;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    static const float conv_pad[25] = { 12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108,
                                        117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84 };
    run_values(QT_OP_CONV, &a, 4, (int[]){ 1, 1, 5, 5 }, x, 4, (int[]){ 1, 1, 5, 5 },
               conv_pad, 25);
    memset(a.pad, 0, sizeof a.pad);
    static const float conv_nopad[9] = { 54, 63, 72, 99, 108, 117, 144, 153, 162 };
    run_values(QT_OP_CONV, &a, 4, (int[]){ 1, 1, 5, 5 }, x, 4, (int[]){ 1, 1, 3, 3 },
               conv_nopad, 9);
    /* conv_with_strides_padding: x = 0..34 as [1,1,7,5], stride 2, pad 1 */
    a.stride[0] = a.stride[1] = 2;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    static const float conv_sp[12] = { 12, 27, 24, 63, 108, 81, 123, 198, 141, 112, 177, 124 };
    run_values(QT_OP_CONV, &a, 4, (int[]){ 1, 1, 7, 5 }, x, 4, (int[]){ 1, 1, 4, 3 },
               conv_sp, 12);
    /* conv_with_strides_and_asymmetric_padding: pad 1,0,1,0 */
    a.pad[1] = a.pad[3] = 0;
    static const float conv_asym[8] = { 21, 33, 99, 117, 189, 207, 171, 183 };
    run_values(QT_OP_CONV, &a, 4, (int[]){ 1, 1, 7, 5 }, x, 4, (int[]){ 1, 1, 4, 2 },
               conv_asym, 8);
    /* maxpool_2d_ceil / averagepool_2d_ceil: 1..16 as [1,1,4,4], k3 s2 */
    float x16[16];
    for (int i = 0; i < 16; i++) x16[i] = (float)(i + 1);
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 3; a.stride[0] = a.stride[1] = 2; a.ceil_mode = 1;
    run_values(QT_OP_MAXPOOL, &a, 4, (int[]){ 1, 1, 4, 4 }, x16, 4, (int[]){ 1, 1, 2, 2 },
               (const float[]){ 11, 12, 15, 16 }, 4);
    run_values(QT_OP_AVGPOOL, &a, 4, (int[]){ 1, 1, 4, 4 }, x16, 4, (int[]){ 1, 1, 2, 2 },
               (const float[]){ 6, 7.5f, 12, 13.5f }, 4);
    /* maxpool_2d_dilations: k2 s1 d2 */
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = 2; a.stride[0] = a.stride[1] = 1;
    a.dilation[0] = a.dilation[1] = 2;
    run_values(QT_OP_MAXPOOL, &a, 4, (int[]){ 1, 1, 4, 4 }, x16, 4, (int[]){ 1, 1, 2, 2 },
               (const float[]){ 11, 12, 15, 16 }, 4);
    /* maxpool_1d_default on [1,3,32] k2; maxpool_3d_default on [1,3,32,32,32]
     * k2 (shapes); averagepool_3d on ones */
    memset(&a, 0, sizeof a);
    a.kernel[0] = 2;
    float y31[3 * 31];
    for (int i = 0; i < 93; i++) y31[i] = 1.0f;
    run_values(QT_OP_MAXPOOL, &a, 3, (int[]){ 1, 3, 32 }, ones, 3, (int[]){ 1, 3, 31 }, y31, 93);
    a.kernel[1] = a.kernel[2] = 2;
    float *y3 = xmalloc(31 * 31 * 31 * sizeof *y3);
    for (int i = 0; i < 31 * 31 * 31; i++) y3[i] = 1.0f;
    run_values(QT_OP_AVGPOOL, &a, 5, (int[]){ 1, 1, 32, 32, 32 }, ones, 5,
               (int[]){ 1, 1, 31, 31, 31 }, y3, 31 * 31 * 31);
    free(y3);
    /* GlobalAveragePool / GlobalMaxPool on [1,2,3,3] (axis 1, mode 1) */
    memset(&a, 0, sizeof a);
    a.axis = 1; a.mode = 1;
    run_values(QT_OP_GAP, &a, 4, (int[]){ 1, 2, 3, 3 }, x, 4, (int[]){ 1, 2, 1, 1 },
               (const float[]){ 4, 13 }, 2);
    run_values(QT_OP_GMP, &a, 4, (int[]){ 1, 2, 3, 3 }, x, 4, (int[]){ 1, 2, 1, 1 },
               (const float[]){ 8, 17 }, 2);
}

/* ------------------------------------------------------------------------ */
/* 4. folded leading dims == the same data as batch entries                  */
/* ------------------------------------------------------------------------ */

typedef struct outs_t { float *y, *dx, *dw, *db, *rm, *rv; size_t ny, nx, nw, nb; } outs_t;

static void snap_free(outs_t *o)
{
    free(o->y); free(o->dx); free(o->dw); free(o->db); free(o->rm); free(o->rv);
    memset(o, 0, sizeof *o);
}

static float *dup(const float *v, size_t n)
{
    float *d = xmalloc(n * sizeof *d);
    memcpy(d, v, n * sizeof *d);
    return d;
}

static void snap(qt_graph *g, int id, const qt_qconfig *cfg, const float *x, int N, int train,
                 const float *dy, outs_t *o)
{
    const qt_tensor *y;
    memset(o, 0, sizeof *o);
    fwd(g, cfg, x, N, train, &y);
    o->ny = y->size;
    o->y = dup(y->data, o->ny);
    bwd(g, cfg, dy);
    o->nx = (size_t)N * qt_graph_node_size(g, 0);
    o->dx = dup(qt_graph_grad(g, 0, -1)->data, o->nx);
    const qt_tensor *gw = qt_graph_grad(g, id, 0), *gb = qt_graph_grad(g, id, 1);
    if (gw) { o->nw = gw->size; o->dw = dup(gw->data, o->nw); }
    if (gb) { o->nb = gb->size; o->db = dup(gb->data, o->nb); }
    qt_tensor *rm = qt_graph_param(g, id, 2), *rv = qt_graph_param(g, id, 3);
    if (rm) { o->rm = dup(rm->data, rm->size); o->rv = dup(rv->data, rv->size); }
}

static void same_outs(const char *d, const outs_t *a, const outs_t *b)
{
    char w[320];
    assert_int_equal(a->ny, b->ny);
    assert_int_equal(a->nx, b->nx);
    assert_int_equal(a->nw, b->nw);
    assert_int_equal(a->nb, b->nb);
    snprintf(w, sizeof w, "%s y", d); bits_equal(w, a->y, b->y, a->ny);
    snprintf(w, sizeof w, "%s dx", d); bits_equal(w, a->dx, b->dx, a->nx);
    if (a->nw) { snprintf(w, sizeof w, "%s dW", d); bits_equal(w, a->dw, b->dw, a->nw); }
    if (a->nb) { snprintf(w, sizeof w, "%s db", d); bits_equal(w, a->db, b->db, a->nb); }
    if (a->rm) {
        snprintf(w, sizeof w, "%s running mean", d); bits_equal(w, a->rm, b->rm, a->nb);
        snprintf(w, sizeof w, "%s running var", d); bits_equal(w, a->rv, b->rv, a->nb);
    }
}

/* graph a on per-sample [lead..., C, ...] with batch N against graph b on
 * [C, ...] with batch N*L, the same parameters, float and an intrinsic */
static void fold_pair(qt_graph *ga, int ida, qt_graph *gb, int idb, int N, int L, int train,
                      rng *r, const char *d)
{
    for (int k = 0; k < 4; k++) {
        qt_tensor *pa = qt_graph_param(ga, ida, k), *pb = qt_graph_param(gb, idb, k);
        assert_true((pa == NULL) == (pb == NULL));
        if (!pa) continue;
        assert_int_equal(pa->size, pb->size);
        if (k == 3) fill(r, pa->data, pa->size, 0.5, 2.0);
        else fill(r, pa->data, pa->size, -1.0, 1.0);
        memcpy(pb->data, pa->data, pa->size * sizeof(float));
    }
    size_t nx = (size_t)N * qt_graph_node_size(ga, 0), ny = (size_t)N * qt_graph_node_size(ga, ida);
    assert_int_equal(nx, (size_t)N * L * qt_graph_node_size(gb, 0));
    assert_int_equal(ny, (size_t)N * L * qt_graph_node_size(gb, idb));
    float *x = xmalloc(nx * sizeof *x), *dy = xmalloc(ny * sizeof *dy);
    fill(r, x, nx, -2.0, 2.0);
    fill(r, dy, ny, -1.0, 1.0);
    static const char *fmts[] = { NULL, "fixed<8,4,sr>", "float<8,e4,b7>" };
    for (int f = 0; f < 3; f++)
        for (int each = 0; each < (fmts[f] ? 2 : 1); each++) {
            qt_qconfig *ca = fmts[f] ? intr_cfg(ga, "op1", fmts[f], each, 5) : NULL;
            qt_qconfig *cb = fmts[f] ? intr_cfg(gb, "op1", fmts[f], each, 5) : NULL;
            /* the same running statistics before each pass */
            qt_tensor *rma = qt_graph_param(ga, ida, 2);
            float *rm0 = rma ? dup(rma->data, rma->size) : NULL;
            float *rv0 = rma ? dup(qt_graph_param(ga, ida, 3)->data, rma->size) : NULL;
            outs_t oa, ob;
            snap(ga, ida, ca, x, N, train, dy, &oa);
            if (rma) {
                memcpy(qt_graph_param(gb, idb, 2)->data, rm0, rma->size * sizeof(float));
                memcpy(qt_graph_param(gb, idb, 3)->data, rv0, rma->size * sizeof(float));
            }
            snap(gb, idb, cb, x, N * L, train, dy, &ob);
            if (rma) {
                memcpy(rma->data, rm0, rma->size * sizeof(float));
                memcpy(qt_graph_param(ga, ida, 3)->data, rv0, rma->size * sizeof(float));
            }
            char w[300];
            snprintf(w, sizeof w, "%s %s %s", d, fmts[f] ? fmts[f] : "float", each ? "each" : "");
            same_outs(w, &oa, &ob);
            snap_free(&oa); snap_free(&ob);
            free(rm0); free(rv0);
            qt_qconfig_free(ca); qt_qconfig_free(cb);
        }
    free(x); free(dy);
}

static void fold_sc(const sc *k, rng *r)
{
    char d[256];
    int ida, idb;
    describe(k, d, sizeof d);
    qt_graph *ga = build_ok(k, 1, &ida), *gb = build_ok(k, 0, &idb);
    check_meta(k, gb, idb, 0);
    fold_pair(ga, ida, gb, idb, k->N, Lof(k), 1, r, d);
    qt_graph_free(ga);
    qt_graph_free(gb);
}

/* gap/gmp/batchnorm: per-sample [lead..., dims...] with axis nlead against
 * [dims...] with axis 0 */
static void fold_axis(qt_op op, int N, int nlead, const int *lead, int rank, const int *dims,
                      int mode, int train, rng *r)
{
    int da[QT_MAX_RANK], L = 1;
    char d[200];
    for (int i = 0; i < nlead; i++) { da[i] = lead[i]; L *= lead[i]; }
    for (int i = 0; i < rank; i++) da[nlead + i] = dims[i];
    snprintf(d, sizeof d, "%s lead %d (L %d) rank %d mode %d train %d", qt_op_name(op), nlead,
             L, rank, mode, train);
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.mode = mode;
    qt_error err;
    qt_graph *ga = qt_graph_new(), *gb = qt_graph_new();
    int in = qt_graph_input_nd(ga, "x", nlead + rank, da, &err);
    a.axis = nlead;
    int ida = qt_graph_add(ga, op, "op1", &in, 1, &a, &err);
    if (ida < 0) fail_msg("%s: %s", d, err.text);
    in = qt_graph_input_nd(gb, "x", rank, dims, &err);
    a.axis = 0;
    int idb = qt_graph_add(gb, op, "op1", &in, 1, &a, &err);
    if (idb < 0) fail_msg("%s: %s", d, err.text);
    fold_pair(ga, ida, gb, idb, N, L, train, r, d);
    qt_graph_free(ga);
    qt_graph_free(gb);
}

static void t_fold_equals_batch(void **st)
{
    (void)st;
    rng r = { 404 };
    static const qt_op ops[] = { QT_OP_CONV, QT_OP_MAXPOOL, QT_OP_AVGPOOL };
    for (int o = 0; o < 3; o++)
        for (int S = 1; S <= 3; S++)
            for (int i = 0; i < 3; i++) {
                sc k;
                do random_valid(&r, ops[o], S, &k); while (k.nlead == 0);
                fold_sc(&k, &r);
            }
    /* a conv whose folded batch spans several chunks of the column buffer
     * (432 rows x 216 positions: chunks of 11 folded samples, 2x2x3 = 12) */
    sc big;
    memset(&big, 0, sizeof big);
    big.op = QT_OP_CONV; big.N = 2; big.nlead = 2; big.lead[0] = 2; big.lead[1] = 3;
    big.C = 16; big.S = 3; big.in[0] = big.in[1] = big.in[2] = 8;
    big.k[0] = big.k[1] = big.k[2] = 3;
    big.s[0] = big.s[1] = big.s[2] = big.d[0] = big.d[1] = big.d[2] = 1;
    big.groups = 2; big.out = 6; big.bias = 1;
    fold_sc(&big, &r);
    conv_forward_one(&big, 77);
    static const int lead1[1] = { 3 }, lead2[2] = { 2, 2 };
    static const int d1[1] = { 4 }, d2[2] = { 3, 5 }, d3[3] = { 2, 3, 4 }, d4[4] = { 3, 2, 3, 2 };
    static const struct { int rank; const int *dims; } shapes[] = {
        { 1, d1 }, { 2, d2 }, { 3, d3 }, { 4, d4 } };
    for (int s = 0; s < 4; s++)
        for (int l = 0; l < 2; l++) {
            const int *lead = l ? lead2 : lead1;
            int nl = l ? 2 : 1;
            fold_axis(QT_OP_GAP, 2, nl, lead, shapes[s].rank, shapes[s].dims, s % 2, 0, &r);
            fold_axis(QT_OP_GMP, 2, nl, lead, shapes[s].rank, shapes[s].dims, 1 - s % 2, 0, &r);
            fold_axis(QT_OP_BATCHNORM, 2, nl, lead, shapes[s].rank, shapes[s].dims, 0, 0, &r);
            fold_axis(QT_OP_BATCHNORM, 2, nl, lead, shapes[s].rank, shapes[s].dims, 0, 1, &r);
        }
}

/* ------------------------------------------------------------------------ */
/* 5. intrinsic, bit for bit                                                 */
/* ------------------------------------------------------------------------ */

typedef struct iref { const qt_format *f; uint64_t seed, stream; } iref;

static uint32_t R_(const iref *q, uint64_t i)
{
    return q->f->round == QT_SR ? qt_rand32(q->seed, q->stream, i) : 0;
}

/* an operand as the unit stores it: f's rounding, nearest-even if f is
 * stochastic (engine.h) */
static float opnd(const qt_format *f, float v)
{
    qt_format rn = *f;
    if (rn.round == QT_SR) rn.round = QT_RNE;
    return qt_quantize1(&rn, v, 0);
}

/* conv in the documented order: for each output, acc = 0; over input
 * channel, then the kernel's dims (attribute order) ascending: EACH acc =
 * add(acc, mul(w, x)); then the bias. Words: sf = sample_base*L + nb,
 * idx = ((sf*O + co)*P + p)*(2K + 2), tap t: 2t, 2t+1; 2K; 2K+1. */
static void ref_conv_intr(const sc *k, const iref *q, int each, uint64_t sb, const float *x,
                          const float *w, const float *b, float *y)
{
    const qt_format *f = q->f;
    int o[3], S = k->S, cg = Cg(k), og = k->out / k->groups;
    outs(k, o);
    uint64_t X = prod(k->in, S), Pn = prod(o, S), KK = prod(k->k, S), K = (uint64_t)cg * KK;
    for (int nb = 0; nb < NB(k); nb++)
        for (int co = 0; co < k->out; co++) {
            int oi[3] = { 0, 0, 0 };
            do {
                uint64_t p = flat(oi, o, S), sf = sb * (uint64_t)Lof(k) + (uint64_t)nb;
                uint64_t idx = ((sf * (uint64_t)k->out + (uint64_t)co) * Pn + p) * (2 * K + 2);
                float acc = 0.0f;
                double sum = 0.0;
                for (int ci = 0; ci < cg; ci++) {
                    int qq[3] = { 0, 0, 0 }, ii[3];
                    do {
                        uint64_t t = (uint64_t)ci * KK + flat(qq, k->k, S);
                        if (!tap_pos(k, oi, qq, ii)) continue;
                        float xv = x[((size_t)nb * k->C + (size_t)(co / og) * cg + ci) * X
                                     + flat(ii, k->in, S)];
                        float wv = w[(size_t)co * K + t];
                        if (each) {
                            float pr = qt_mul(f, opnd(f, wv), opnd(f, xv), R_(q, idx + 2 * t));
                            acc = qt_add(f, acc, pr, R_(q, idx + 2 * t + 1));
                        } else {
                            sum += (double)qt_quantize1(f, xv * wv, R_(q, idx + 2 * t));
                        }
                    } while (next_idx(qq, k->k, S));
                }
                if (!each) acc = qt_quantize1(f, (float)sum, R_(q, idx + 2 * K));
                if (b)
                    acc = each ? qt_add(f, acc, opnd(f, b[co]), R_(q, idx + 2 * K + 1))
                               : qt_quantize1(f, acc + b[co], R_(q, idx + 2 * K + 1));
                y[((size_t)nb * k->out + co) * Pn + p] = acc;
            } while (next_idx(oi, o, S));
        }
}

/* avgpool: idx = ((sf*C + c)*P + p)*(KK + 1), tap k = the kernel offset
 * flattened (padding taps skipped, keeping their index) */
static void ref_avg_intr(const sc *k, const iref *q, int each, uint64_t sb, const float *x,
                         float *y)
{
    const qt_format *f = q->f;
    int o[3], S = k->S;
    outs(k, o);
    uint64_t X = prod(k->in, S), Pn = prod(o, S), KK = prod(k->k, S);
    for (int nb = 0; nb < NB(k); nb++)
        for (int c = 0; c < k->C; c++) {
            int oi[3] = { 0, 0, 0 };
            do {
                uint64_t p = flat(oi, o, S), sf = sb * (uint64_t)Lof(k) + (uint64_t)nb;
                uint64_t idx = ((sf * (uint64_t)k->C + (uint64_t)c) * Pn + p) * (KK + 1);
                const float *xp = x + ((size_t)nb * k->C + c) * X;
                float acc = 0.0f;
                double sum = 0.0;
                int inside = 0, padded = 0, qq[3] = { 0, 0, 0 }, ii[3];
                do {
                    int in_pad = 1;
                    for (int j = 0; j < S; j++) {
                        int pos = oi[j] * k->s[j] - k->p0[j] + qq[j];
                        if (pos < -k->p0[j] || pos >= k->in[j] + k->p1[j]) in_pad = 0;
                    }
                    padded += in_pad;
                    if (!tap_pos(k, oi, qq, ii)) continue;
                    inside++;
                    float v = xp[flat(ii, k->in, S)];
                    if (each) acc = qt_add(f, acc, opnd(f, v), R_(q, idx + flat(qq, k->k, S)));
                    else sum += v;
                } while (next_idx(qq, k->k, S));
                double D = k->count_pad ? padded : inside;
                float out;
                if (each) {
                    out = qt_quantize1(f, (float)((double)acc / D), R_(q, idx + KK));
                } else {
                    float sq = qt_quantize1(f, (float)sum, R_(q, idx));
                    out = qt_quantize1(f, (float)((double)sq / D), R_(q, idx + 1));
                }
                y[((size_t)nb * k->C + c) * Pn + p] = out;
            } while (next_idx(oi, o, S));
        }
}

static const char *const intr_fmts[] = { "fixed<8,4>", "float<8,e4,b7>", "fixed<8,4,sr>",
                                         "float<8,e4,b7,sr>" };
#define NFMT (sizeof intr_fmts / sizeof *intr_fmts)

static void t_conv_intrinsic(void **st)
{
    (void)st;
    rng r = { 505 };
    int checked = 0;
    sc cases[6];
    memset(cases, 0, sizeof cases);
    /* a hand-picked 3-D conv: groups, asymmetric pads, strides, dilation,
     * leading dims; then random 3-D and 1-D ones */
    sc *k = &cases[0];
    k->op = QT_OP_CONV; k->N = 2; k->nlead = 1; k->lead[0] = 2; k->C = 4; k->S = 3;
    k->in[0] = 4; k->in[1] = 5; k->in[2] = 6;
    k->k[0] = 2; k->k[1] = 3; k->k[2] = 2;
    k->s[0] = 1; k->s[1] = 2; k->s[2] = 1;
    k->d[0] = 2; k->d[1] = 1; k->d[2] = 2;
    k->p0[0] = 1; k->p0[1] = 0; k->p0[2] = 2; k->p1[0] = 0; k->p1[1] = 1; k->p1[2] = 1;
    k->groups = 2; k->out = 4; k->bias = 1;
    for (int i = 1; i < 6; i++) {
        do random_valid(&r, QT_OP_CONV, i < 4 ? 3 : 1, &cases[i]);
        while (ysize(&cases[i]) * wsize(&cases[i]) > 200000);
    }
    for (int c = 0; c < 6; c++) {
        k = &cases[c];
        char d[256];
        int id;
        describe(k, d, sizeof d);
        qt_graph *g = build_ok(k, 1, &id);
        conv_params(&r, g, id, k);
        for (size_t i = 0; i < wsize(k); i++) qt_graph_param(g, id, 0)->data[i] *= 1.5f;
        size_t nx = xsize(k), ny = ysize(k);
        float *x = xmalloc(nx * sizeof *x), *want = xmalloc(ny * sizeof *want);
        fill(&r, x, nx, -2.5, 2.5);
        const float *w = qt_graph_param(g, id, 0)->data;
        const float *b = k->bias ? qt_graph_param(g, id, 1)->data : NULL;
        for (size_t fi = 0; fi < NFMT; fi++)
            for (int each = 1; each >= 0; each--) {
                uint64_t sb = (fi + (size_t)each) % 2 ? 3 : 0, seed = 11 + fi;
                g->sample_base = sb;
                qt_format f = P(intr_fmts[fi]);
                iref q = { &f, seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC };
                qt_qconfig *cfg = intr_cfg(g, "op1", intr_fmts[fi], each, seed);
                const qt_tensor *y;
                fwd(g, cfg, x, k->N, 0, &y);
                ref_conv_intr(k, &q, each, sb, x, w, b, want);
                char what[320];
                snprintf(what, sizeof what, "%s %s %s sb %llu", d, intr_fmts[fi],
                         each ? "each" : "final", (unsigned long long)sb);
                bits_equal(what, y->data, want, ny);
                checked += (int)ny;
                qt_qconfig_free(cfg);
            }
        free(x); free(want);
        qt_graph_free(g);
    }
    print_message("intrinsic conv: %d values bit-exact\n", checked);
}

/* gap over P positions per plane (idx = (sf*C + c)*(P + 1), tap = position)
 * or gmp (the exact max quantized with word sample_base*per + e) */
static void ref_global_intr(qt_op op, const iref *q, int each, uint64_t sb, const float *x,
                            size_t planes_per, size_t NBC, size_t Pn, float *y)
{
    const qt_format *f = q->f;
    for (size_t pl = 0; pl < NBC; pl++) {
        const float *xp = x + pl * Pn;
        if (op == QT_OP_GMP) {
            float m = xp[0];
            for (size_t i = 1; i < Pn; i++) if (xp[i] > m) m = xp[i];
            y[pl] = qt_quantize1(f, m, R_(q, sb * planes_per + pl));
            continue;
        }
        uint64_t idx = (sb * planes_per + pl) * (Pn + 1);
        float acc = 0.0f;
        double sum = 0.0;
        for (size_t i = 0; i < Pn; i++) {
            if (each) acc = qt_add(f, acc, opnd(f, xp[i]), R_(q, idx + i));
            else sum += xp[i];
        }
        if (each) {
            y[pl] = qt_quantize1(f, (float)((double)acc / (double)Pn), R_(q, idx + Pn));
        } else {
            float sq = qt_quantize1(f, (float)sum, R_(q, idx));
            y[pl] = qt_quantize1(f, (float)((double)sq / (double)Pn), R_(q, idx + 1));
        }
    }
}

static void t_pool_intrinsic(void **st)
{
    (void)st;
    rng r = { 606 };
    int checked = 0;
    for (int i = 0; i < 8; i++) {
        int S = i < 5 ? 3 : i - 4;
        qt_op op = i % 2 ? QT_OP_MAXPOOL : QT_OP_AVGPOOL;
        sc k;
        random_valid(&r, op, S, &k);
        char d[256];
        int id;
        describe(&k, d, sizeof d);
        qt_graph *g = build_ok(&k, 1, &id);
        size_t nx = xsize(&k), ny = ysize(&k);
        float *x = xmalloc(nx * sizeof *x), *want = xmalloc(ny * sizeof *want);
        fill(&r, x, nx, -6.0, 6.0);
        double *xd = to_d(x, nx), *yd = xmalloc(ny * sizeof *yd);
        if (op == QT_OP_MAXPOOL) ref_maxpool(&k, xd, yd, NULL);
        for (size_t fi = 0; fi < NFMT; fi++)
            for (int each = 0; each < 2; each++) {
                uint64_t sb = (uint64_t)(i % 3), seed = 21 + fi;
                g->sample_base = sb;
                qt_format f = P(intr_fmts[fi]);
                iref q = { &f, seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC };
                qt_qconfig *cfg = intr_cfg(g, "op1", intr_fmts[fi], each, seed);
                const qt_tensor *y;
                fwd(g, cfg, x, k.N, 0, &y);
                if (op == QT_OP_AVGPOOL) {
                    ref_avg_intr(&k, &q, each, sb, x, want);
                } else {
                    size_t per = yper(&k) * (size_t)Lof(&k);
                    for (size_t e = 0; e < ny; e++)
                        want[e] = qt_quantize1(&f, (float)yd[e], R_(&q, sb * per + e));
                }
                char what[320];
                snprintf(what, sizeof what, "%s %s %s", d, intr_fmts[fi], each ? "each" : "final");
                bits_equal(what, y->data, want, ny);
                checked += (int)ny;
                qt_qconfig_free(cfg);
            }
        free(x); free(want); free(xd); free(yd);
        qt_graph_free(g);
    }
    /* gap and gmp on [2, C, 3, 4] with axis 1, and on [C, 2, 3, 2] */
    static const int da[4] = { 2, 3, 3, 4 }, db[4] = { 3, 2, 3, 2 };
    for (int op = 0; op < 2; op++)
        for (int s = 0; s < 2; s++) {
            qt_op o = op ? QT_OP_GMP : QT_OP_GAP;
            const int *dims = s ? db : da;
            int axis = s ? 0 : 1, L = s ? 1 : 2, C = 3, N = 2;
            size_t Pn = s ? 12 : 12, NBC = (size_t)N * L * C;
            qt_attr a;
            memset(&a, 0, sizeof a);
            a.axis = axis; a.mode = s;
            qt_error err;
            qt_graph *g = qt_graph_new();
            int in = qt_graph_input_nd(g, "x", 4, dims, &err);
            int id = qt_graph_add(g, o, "op1", &in, 1, &a, &err);
            if (id < 0) fail_msg("%s", err.text);
            float x[2 * 72], want[12];
            fill(&r, x, 144, -6.0, 6.0);
            for (size_t fi = 0; fi < NFMT; fi++)
                for (int each = 0; each < 2; each++) {
                    uint64_t sb = 5, seed = 31 + fi;
                    g->sample_base = sb;
                    qt_format f = P(intr_fmts[fi]);
                    iref q = { &f, seed, ((uint64_t)id << 8) ^ QT_QP_INTRINSIC };
                    qt_qconfig *cfg = intr_cfg(g, "op1", intr_fmts[fi], each, seed);
                    const qt_tensor *y;
                    fwd(g, cfg, x, N, 0, &y);
                    assert_int_equal(y->size, NBC);
                    ref_global_intr(o, &q, each, sb, x, (size_t)L * C, NBC, Pn, want);
                    bits_equal(qt_op_name(o), y->data, want, NBC);
                    checked += (int)NBC;
                    qt_qconfig_free(cfg);
                }
            qt_graph_free(g);
        }
    print_message("intrinsic pooling: %d values bit-exact\n", checked);
}

/* ------------------------------------------------------------------------ */
/* 6. gap and gmp                                                            */
/* ------------------------------------------------------------------------ */

static void global_case(qt_op op, int rank, const int *dims, int axis, int mode, int N, rng *r)
{
    char d[160], b[64];
    int at = 0;
    for (int i = 0; i < rank; i++) at += snprintf(b + at, sizeof b - (size_t)at, "%s%d", i ? "x" : "", dims[i]);
    snprintf(d, sizeof d, "%s [%s] axis %d mode %d", qt_op_name(op), b, axis, mode);
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.axis = axis; a.mode = mode;
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input_nd(g, "x", rank, dims, &err);
    int id = qt_graph_add(g, op, "op1", &in, 1, &a, &err);
    if (id < 0) fail_msg("%s: %s", d, err.text);
    size_t L = prod(dims, axis), C = (size_t)dims[axis], Pn = prod(dims + axis + 1, rank - axis - 1);
    /* dims: up to the channel, then 1s (mode 1) */
    int yd[QT_MAX_RANK], ry = qt_graph_node_dims(g, id, yd);
    assert_int_equal(ry, mode ? rank : axis + 1);
    for (int i = 0; i < ry; i++) assert_int_equal(yd[i], i <= axis ? dims[i] : 1);
    assert_int_equal(qt_graph_node_macs(g, id), (uint64_t)prod(dims, rank));
    size_t NBC = (size_t)N * L * C, nx = NBC * Pn;
    float *x = xmalloc(nx * sizeof *x), *dy = xmalloc(NBC * sizeof *dy);
    fill(r, x, nx, -3.0, 3.0);
    fill(r, dy, NBC, -1.0, 1.0);
    /* gmp: a tie for the first plane's maximum, a NaN in the last plane */
    if (op == QT_OP_GMP && Pn > 2) { x[1] = 5.0f; x[Pn - 1] = 5.0f; }
    if (op == QT_OP_GMP && Pn > 1 && NBC > 1) x[nx - 2] = NAN;
    const qt_tensor *y;
    fwd(g, NULL, x, N, 0, &y);
    assert_int_equal(y->size, NBC);
    bwd(g, NULL, dy);
    const float *dx = qt_graph_grad(g, 0, -1)->data;
    for (size_t pl = 0; pl < NBC; pl++) {
        const float *xp = x + pl * Pn;
        double want;
        size_t arg = 0;
        int nan_at = -1;
        if (op == QT_OP_GAP) {
            double s = 0.0;
            for (size_t i = 0; i < Pn; i++) s += xp[i];
            want = s / (double)Pn;
            near(d, pl, y->data[pl], want, 1e-6 * fabs(want) + 1e-12);
            for (size_t i = 0; i < Pn; i++)
                near("gap dx", pl * Pn + i, dx[pl * Pn + i], dy[pl] / (double)Pn, 1e-7);
            continue;
        }
        for (size_t i = 0; i < Pn; i++) {
            if (isnan(xp[i])) { if (nan_at < 0) nan_at = (int)i; }
            else if (xp[i] > xp[arg] || isnan(xp[arg])) arg = i;
        }
        if (nan_at >= 0) {
            if (!isnan(y->data[pl])) fail_msg("%s: plane %zu has a NaN: %g", d, pl, (double)y->data[pl]);
            arg = (size_t)nan_at;
        } else if (!same_bits(y->data[pl], xp[arg])) {
            fail_msg("%s: plane %zu max %g, want %g", d, pl, (double)y->data[pl], (double)xp[arg]);
        }
        for (size_t i = 0; i < Pn; i++)
            near("gmp dx", pl * Pn + i, dx[pl * Pn + i], i == arg ? dy[pl] : 0.0, 0);
    }
    free(x); free(dy);
    qt_graph_free(g);
}

static void t_global(void **st)
{
    (void)st;
    rng r = { 707 };
    static const int c1[1] = { 5 }, c2[2] = { 4, 7 }, c3[3] = { 3, 4, 5 }, c4[4] = { 2, 3, 4, 3 };
    static const int c5[5] = { 2, 2, 3, 2, 3 };
    for (int op = 0; op < 2; op++) {
        qt_op o = op ? QT_OP_GMP : QT_OP_GAP;
        for (int mode = 0; mode < 2; mode++) {
            global_case(o, 1, c1, 0, mode, 3, &r);     /* [C]: nothing reduced */
            global_case(o, 2, c2, 0, mode, 2, &r);     /* [C, L] */
            global_case(o, 2, c2, 1, mode, 2, &r);     /* [l, C]: nothing reduced */
            global_case(o, 3, c3, 0, mode, 2, &r);     /* [C, H, W] */
            global_case(o, 3, c3, 1, mode, 1, &r);     /* [l, C, W] */
            global_case(o, 4, c4, 1, mode, 2, &r);     /* ONNX [N, C, H, W] as a sample */
            global_case(o, 4, c4, 0, mode, 2, &r);     /* [C, D, H, W] */
            global_case(o, 5, c5, 2, mode, 2, &r);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* 7. batchnorm with a channel axis                                          */
/* ------------------------------------------------------------------------ */

/* per channel over NB folded samples x HW positions */
static void ref_bn(const double *x, size_t NBs, size_t C, size_t HW, const double *gam,
                   const double *bet, const double *rm, const double *rv, double eps,
                   int train, double *y, double *bm, double *bv)
{
    for (size_t c = 0; c < C; c++) {
        double mean = rm[c], var = rv[c];
        if (train) {
            double s = 0.0, ss = 0.0, M = (double)NBs * HW;
            for (size_t n = 0; n < NBs; n++)
                for (size_t i = 0; i < HW; i++) s += x[(n * C + c) * HW + i];
            mean = s / M;
            for (size_t n = 0; n < NBs; n++)
                for (size_t i = 0; i < HW; i++) {
                    double dd = x[(n * C + c) * HW + i] - mean;
                    ss += dd * dd;
                }
            var = ss / M;
        }
        if (bm) { bm[c] = mean; bv[c] = var; }
        for (size_t n = 0; n < NBs; n++)
            for (size_t i = 0; i < HW; i++) {
                size_t e = (n * C + c) * HW + i;
                y[e] = (x[e] - mean) / sqrt(var + eps) * gam[c] + bet[c];
            }
    }
}

static void bn_case(int rank, const int *dims, int axis, int N, int train, rng *r)
{
    char d[160], b[64];
    int at = 0;
    for (int i = 0; i < rank; i++) at += snprintf(b + at, sizeof b - (size_t)at, "%s%d", i ? "x" : "", dims[i]);
    snprintf(d, sizeof d, "batchnorm [%s] axis %d N %d train %d", b, axis, N, train);
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.axis = axis; a.eps = 1e-3f; a.momentum = 0.25f;
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input_nd(g, "x", rank, dims, &err);
    int id = qt_graph_add(g, QT_OP_BATCHNORM, "bn", &in, 1, &a, &err);
    if (id < 0) fail_msg("%s: %s", d, err.text);
    size_t L = prod(dims, axis), C = (size_t)dims[axis], HW = prod(dims + axis + 1, rank - axis - 1);
    size_t NBs = (size_t)N * L, nx = NBs * C * HW;
    int yd[QT_MAX_RANK];
    assert_int_equal(qt_graph_node_dims(g, id, yd), rank);
    for (int i = 0; i < rank; i++) assert_int_equal(yd[i], dims[i]);
    for (int k = 0; k < 4; k++) {
        qt_tensor *t = qt_graph_param(g, id, k);
        assert_true(t && t->ndim == 1 && t->size == C);
        fill(r, t->data, C, k == 3 ? 0.3 : -1.0, k == 3 ? 2.0 : 1.0);
    }
    assert_int_equal(qt_graph_node_macs(g, id), 2 * (uint64_t)prod(dims, rank));
    double *gam = to_d(qt_graph_param(g, id, 0)->data, C), *bet = to_d(qt_graph_param(g, id, 1)->data, C);
    double *rm = to_d(qt_graph_param(g, id, 2)->data, C), *rv = to_d(qt_graph_param(g, id, 3)->data, C);
    float *x = xmalloc(nx * sizeof *x), *R = xmalloc(nx * sizeof *R);
    fill(r, x, nx, -2.0, 3.0);
    fill(r, R, nx, -1.0, 1.0);
    double *xd = to_d(x, nx), *yd0 = xmalloc(nx * sizeof *yd0), *bm = xmalloc(C * sizeof *bm);
    double *bv = xmalloc(C * sizeof *bv), *yb = xmalloc(nx * sizeof *yb);
    const double eps = (double)1e-3f;
    ref_bn(xd, NBs, C, HW, gam, bet, rm, rv, eps, train, yd0, bm, bv);
    const qt_tensor *y;
    fwd(g, NULL, x, N, train, &y);
    for (size_t i = 0; i < nx; i++) near(d, i, y->data[i], yd0[i], 2e-6 * (1 + fabs(yd0[i])));
    /* running statistics: PyTorch's rule over M = N*L*HW values */
    double M = (double)NBs * HW;
    for (size_t c = 0; c < C; c++) {
        double wm = train ? 0.75 * rm[c] + 0.25 * bm[c] : rm[c];
        double wv = train ? 0.75 * rv[c] + 0.25 * bv[c] * M / (M - 1) : rv[c];
        near("running mean", c, qt_graph_param(g, id, 2)->data[c], wm, 1e-6 * (1 + fabs(wm)));
        near("running var", c, qt_graph_param(g, id, 3)->data[c], wv, 1e-6 * (1 + fabs(wv)));
    }
    bwd(g, NULL, R);
    /* central differences of sum(y * R) in x, gamma and beta */
    const float *dx = qt_graph_grad(g, 0, -1)->data;
    const float *dg = qt_graph_grad(g, id, 0)->data, *dbt = qt_graph_grad(g, id, 1)->data;
    double scale = 0.0;
    for (size_t i = 0; i < nx; i++) scale = fmax(scale, fabs(dx[i]));
    struct { double *v; size_t n; const float *got; const char *what; } sets[3] = {
        { xd, nx, dx, "dx" }, { gam, C, dg, "dgamma" }, { bet, C, dbt, "dbeta" } };
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < sets[s].n; i++) {
            double keep = sets[s].v[i], l[2], h = 1e-5;
            for (int sg = 0; sg < 2; sg++) {
                sets[s].v[i] = keep + (sg ? -h : h);
                ref_bn(xd, NBs, C, HW, gam, bet, rm, rv, eps, train, yb, NULL, NULL);
                l[sg] = 0.0;
                for (size_t j = 0; j < nx; j++) l[sg] += yb[j] * R[j];
            }
            sets[s].v[i] = keep;
            double fd = (l[0] - l[1]) / (2 * h);
            double tol = s ? 2e-5 * (1 + fabs(fd)) : 2e-5 * (1 + scale);
            near(sets[s].what, i, sets[s].got[i], fd, tol);
        }
    free(gam); free(bet); free(rm); free(rv); free(x); free(R); free(xd); free(yd0);
    free(bm); free(bv); free(yb);
    qt_graph_free(g);
}

static void t_bn_axis(void **st)
{
    (void)st;
    rng r = { 808 };
    static const int c1[1] = { 4 }, c2[2] = { 3, 6 }, c3[3] = { 3, 4, 5 }, c4[4] = { 2, 3, 3, 4 };
    static const int l2[2] = { 3, 4 }, l4[4] = { 2, 3, 4, 3 }, l5[5] = { 2, 2, 3, 2, 3 };
    for (int train = 0; train < 2; train++) {
        bn_case(1, c1, 0, 3, train, &r);      /* [C] */
        bn_case(2, c2, 0, 2, train, &r);      /* [C, L] */
        bn_case(3, c3, 0, 2, train, &r);      /* [C, H, W] */
        bn_case(4, c4, 0, 2, train, &r);      /* [C, D, H, W] */
        bn_case(2, l2, 1, 2, train, &r);      /* [l, C] (ONNX [N, C] as a sample) */
        bn_case(4, l4, 1, 1, train, &r);      /* ONNX [N, C, H, W] as a sample */
        bn_case(5, l5, 1, 1, train, &r);      /* ONNX [N, C, D, H, W] as a sample */
        bn_case(5, l5, 2, 2, train, &r);      /* two leading dims */
    }
}

/* ------------------------------------------------------------------------ */
/* 8. shape errors                                                           */
/* ------------------------------------------------------------------------ */

static void expect_error(qt_op op, int rank, const int *dims, const qt_attr *a,
                         const char *w1, const char *w2)
{
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input_nd(g, "x", rank, dims, &err);
    assert_int_equal(in, 0);
    memset(&err, 0, sizeof err);
    int rc = qt_graph_add(g, op, "bad7", &in, 1, a, &err);
    if (rc != QT_EINVAL)
        fail_msg("%s: rc %d, want QT_EINVAL about '%s'", qt_op_name(op), rc, w1);
    if (!strstr(err.text, "'bad7'") || !strstr(err.text, w1) || (w2 && !strstr(err.text, w2)))
        fail_msg("%s: message '%s' should name 'bad7' and say '%s'%s%s", qt_op_name(op),
                 err.text, w1, w2 ? " and " : "", w2 ? w2 : "");
    assert_int_equal(qt_graph_nodes(g), 1);
    qt_graph_free(g);
}

static void t_shape_errors(void **st)
{
    (void)st;
    static const int d3[3] = { 3, 8, 8 }, d4[4] = { 4, 6, 6, 6 }, d5[5] = { 2, 3, 4, 4, 4 };
    static const qt_op sp[3] = { QT_OP_CONV, QT_OP_MAXPOOL, QT_OP_AVGPOOL };
    qt_attr a;
    for (int o = 0; o < 3; o++) {
        qt_op op = sp[o];
        memset(&a, 0, sizeof a);
        a.out = 4;
        a.kernel[0] = 3; a.kernel[1] = 0; a.kernel[2] = 2;          /* mixed */
        expect_error(op, 4, d4, &a, "kernel 3x0x2", NULL);
        a.kernel[1] = -1; a.kernel[2] = 0;
        expect_error(op, 4, d4, &a, "kernel 3x-1x0", NULL);
        a.kernel[0] = 0; a.kernel[1] = 3;
        expect_error(op, 4, d4, &a, "kernel 0x3", NULL);
        a.kernel[0] = -2; a.kernel[1] = 0;
        expect_error(op, 4, d4, &a, "kernel -2", NULL);
        /* 1-D kernel with a second stride / dilation / pad entry set */
        memset(&a, 0, sizeof a);
        a.out = 4; a.kernel[0] = 3; a.stride[1] = 1;
        expect_error(op, 3, d3, &a, "kernel 3 is 1-D", "stride");
        a.stride[1] = 0; a.dilation[2] = 2;
        expect_error(op, 3, d3, &a, "kernel 3 is 1-D", "dilation");
        a.dilation[2] = 0; a.pad[2] = 1;
        expect_error(op, 3, d3, &a, "1-D", "pad");
        /* 2-D with a depth pad entry */
        a.pad[2] = 0; a.kernel[1] = 3; a.pad[4] = 1;
        expect_error(op, 3, d3, &a, "2-D", "pad");
        /* negative pads, strides, dilations (3-D) */
        memset(&a, 0, sizeof a);
        a.out = 4; a.kernel[0] = a.kernel[1] = a.kernel[2] = 2;
        a.pad[4] = -1;
        expect_error(op, 4, d4, &a, op == QT_OP_CONV ? "padding" : "pad", NULL);
        a.pad[4] = 0; a.stride[2] = -1;
        expect_error(op, 4, d4, &a, "stride", NULL);
        a.stride[2] = 0; a.dilation[1] = -1;
        expect_error(op, 4, d4, &a, "dilation", NULL);
        a.dilation[1] = 0;
        /* input rank below S + 1 */
        expect_error(op, 3, d3, &a, "input 3x8x8", "needs >= 4 dims");
        /* no output: a 5-wide kernel on 4x4x4 */
        a.kernel[0] = a.kernel[1] = a.kernel[2] = 5;
        expect_error(op, 5, d5, &a, "2x3x4x4x4", op == QT_OP_CONV ? "no output" : "output");
        /* pools: pad >= the kernel extent */
        if (op != QT_OP_CONV) {
            a.kernel[0] = a.kernel[1] = a.kernel[2] = 2;
            a.pad[1] = 2;
            expect_error(op, 5, d5, &a, "pad", "extent");
        }
    }
    /* conv: groups, out */
    memset(&a, 0, sizeof a);
    a.kernel[0] = 3; a.out = 4; a.groups = 4;            /* 1-D: C = d4[2] = 6 */
    expect_error(QT_OP_CONV, 4, d4, &a, "groups 4", "input channels");
    a.groups = 2; a.out = 3;
    expect_error(QT_OP_CONV, 4, d4, &a, "groups 2", "output channels");
    a.groups = 1; a.out = 0;
    expect_error(QT_OP_CONV, 4, d4, &a, "out", NULL);
    /* attributes whose coordinates or sizes overflow an int: errors */
    static const int d2[2] = { 3, 8 }, d1111[4] = { 1, 1, 1, 1 };
    memset(&a, 0, sizeof a);
    a.kernel[0] = 3; a.out = 2; a.stride[0] = 0x7fffffff; a.pad[0] = 0x7ffffff0;
    expect_error(QT_OP_CONV, 2, d2, &a, "too large", NULL);
    a.stride[0] = 1; a.pad[0] = 0; a.dilation[0] = 0x7fffffff;
    expect_error(QT_OP_CONV, 2, d2, &a, "too large", NULL);
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = a.kernel[2] = 50000;
    for (int j = 0; j < 6; j++) a.pad[j] = 49999;
    expect_error(QT_OP_AVGPOOL, 4, d1111, &a, "too large", NULL);
    expect_error(QT_OP_MAXPOOL, 4, d1111, &a, "too large", NULL);
    a.kernel[1] = a.kernel[2] = 0; a.pad[0] = a.pad[1] = 0x7ffffff0;
    a.kernel[0] = 0x7ffffff8; a.pad[2] = a.pad[3] = a.pad[4] = a.pad[5] = 0;
    expect_error(QT_OP_MAXPOOL, 2, d2, &a, "too large", NULL);
    /* avgpool has no dilation */
    memset(&a, 0, sizeof a);
    a.kernel[0] = a.kernel[1] = a.kernel[2] = 2; a.dilation[2] = 2;
    expect_error(QT_OP_AVGPOOL, 4, d4, &a, "dilation", "avgpool");
    /* gap, gmp, batchnorm: axis and mode */
    static const qt_op ax[3] = { QT_OP_GAP, QT_OP_GMP, QT_OP_BATCHNORM };
    for (int o = 0; o < 3; o++) {
        memset(&a, 0, sizeof a);
        a.axis = 3;
        expect_error(ax[o], 3, d3, &a, "axis 3", "3x8x8");
        a.axis = -1;
        expect_error(ax[o], 3, d3, &a, "axis -1", NULL);
        if (ax[o] != QT_OP_BATCHNORM) {
            a.axis = 0; a.mode = 2;
            expect_error(ax[o], 3, d3, &a, "mode 2", NULL);
        }
        expect_error(ax[o], 0, NULL, &a, "axis", "scalar");
    }
    /* training batchnorm with one value per channel after folding */
    memset(&a, 0, sizeof a);
    a.axis = 1;
    qt_error err;
    qt_graph *g = qt_graph_new();
    int in = qt_graph_input_nd(g, "x", 2, (int[]){ 1, 3 }, &err);
    int id = qt_graph_add(g, QT_OP_BATCHNORM, "bn9", &in, 1, &a, &err);
    assert_true(id > 0);
    float x[3] = { 1, 2, 3 };
    const qt_tensor *y;
    assert_int_equal(qt_forward(g, NULL, x, 1, 1, &y, &err), QT_EINVAL);
    assert_non_null(strstr(err.text, "'bn9'"));
    assert_non_null(strstr(err.text, "more than 1 value"));
    assert_int_equal(qt_forward(g, NULL, x, 1, 0, &y, &err), QT_OK);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* 9. 1 vs 2 OpenMP threads on 3-D                                           */
/* ------------------------------------------------------------------------ */

static void t_threads(void **st)
{
    (void)st;
    rng r = { 909 };
    sc k;
    memset(&k, 0, sizeof k);
    k.N = 2; k.nlead = 1; k.lead[0] = 2; k.C = 8; k.S = 3;
    k.in[0] = 9; k.in[1] = 10; k.in[2] = 11;
    k.k[0] = 3; k.k[1] = 2; k.k[2] = 3;
    k.s[0] = 2; k.s[1] = 1; k.s[2] = 2;
    k.d[0] = k.d[1] = k.d[2] = 1;
    k.p0[0] = 1; k.p1[2] = 1;
    k.groups = 2; k.out = 4; k.bias = 1; k.ceil_mode = 1; k.count_pad = 1;
    static const qt_op ops[] = { QT_OP_MAXPOOL, QT_OP_AVGPOOL, QT_OP_CONV };
    static const char *fmts[] = { NULL, "fixed<8,4,sr>" };
    int max_t = omp_get_max_threads();
    for (int o = 0; o < 3; o++)
        for (int f = 0; f < 2; f++) {
            k.op = ops[o];
            if (k.op == QT_OP_CONV && !fmts[f]) continue;   /* BLAS: test_conv */
            int id;
            qt_graph *g = build_ok(&k, 1, &id);
            if (k.op == QT_OP_CONV) conv_params(&r, g, id, &k);
            qt_qconfig *cfg = fmts[f] ? intr_cfg(g, "op1", fmts[f], 1, 9) : NULL;
            size_t nx = xsize(&k), ny = ysize(&k);
            float *x = xmalloc(nx * sizeof *x), *dy = xmalloc(ny * sizeof *dy);
            fill(&r, x, nx, -3.0, 3.0);
            fill(&r, dy, ny, -1.0, 1.0);
            outs_t a1, a2;
            omp_set_num_threads(1);
            snap(g, id, cfg, x, k.N, 0, dy, &a1);
            omp_set_num_threads(2);
            snap(g, id, cfg, x, k.N, 0, dy, &a2);
            omp_set_num_threads(max_t);
            same_outs(qt_op_name(k.op), &a1, &a2);
            snap_free(&a1); snap_free(&a2);
            free(x); free(dy);
            qt_qconfig_free(cfg);
            qt_graph_free(g);
        }
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(t_conv_forward),
        cmocka_unit_test(t_conv_backward),
        cmocka_unit_test(t_pool_forward_backward),
        cmocka_unit_test(t_onnx_values),
        cmocka_unit_test(t_fold_equals_batch),
        cmocka_unit_test(t_conv_intrinsic),
        cmocka_unit_test(t_pool_intrinsic),
        cmocka_unit_test(t_global),
        cmocka_unit_test(t_bn_axis),
        cmocka_unit_test(t_shape_errors),
        cmocka_unit_test(t_threads),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
