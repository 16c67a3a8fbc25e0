/*
 * test_nd_ops.c -- ops over N-d per-sample dims: broadcasting add, sub,
 * mul and div, prelu, transpose, pad, softmax and logsoftmax along any
 * axis, concat along any axis, reshape, const, dense and matmul with an
 * axis and batched matmul, rank-0 tensors through the unary ops, and the
 * shape errors.
 *
 * Every reference is a plain float64 loop over multi-indices written here,
 * computed from the engine's own input activations, sharing no code with
 * the kernels. Gradients are checked against analytic float64 gradients of
 * loss = sum(y * R) (so dy = R), with a tolerance relative to the sum of
 * the magnitudes of the terms (broadcast dims sum many terms in float).
 * Op inputs come from nodes that feed nothing else (a dropout at inference
 * copying the input, a const, or a dense reshaped to the wanted dims), so
 * the gradient arriving at them is the op's alone.
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
#include "../engine/internal.h"   /* qt__intr_force_ref: the integer paths against the
                                     reference loops */

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

/* gradients: the tolerance scales with mag[i], the sum of |terms| */
#define G_ATOL 1e-6
#define G_RTOL 2e-5

static void check_grad(const char *what, const float *got, const double *want,
                       const double *mag, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= G_ATOL + G_RTOL * mag[i]))
            fail_msg("%s[%zu]: got %.9g, want %.9g (diff %.3g, scale %.3g)", what, i,
                     (double)got[i], want[i], d, mag[i]);
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

static qt_attr dims_attr(int rank, const int *dims)
{
    qt_attr a = attr0();
    a.rank = rank;
    for (int i = 0; i < rank; i++) a.shape[i] = dims[i];
    return a;
}

static int input_nd(qt_graph *g, int rank, const int *dims)
{
    qt_error e;
    int id = qt_graph_input_nd(g, "x", rank, dims, &e);
    if (id < 0) fail_msg("input: %s", e.text);
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

/* a graph x (dims) -> dropout "a" (inference: a copy of x) */
static qt_graph *graph_with_copy(int rank, const int *dims, int *copy_id)
{
    qt_graph *g = qt_graph_new();
    assert_non_null(g);
    qt_graph_seed(g, rng_next());
    input_nd(g, rank, dims);
    *copy_id = node1(g, QT_OP_DROPOUT, "a", 0, NULL);
    return g;
}

/* a const node of dims with values in [lo, hi] */
static int src_const(qt_graph *g, const char *name, int rank, const int *dims, double lo,
                     double hi)
{
    qt_attr a = dims_attr(rank, dims);
    int id = node(g, QT_OP_CONST, name, NULL, 0, &a);
    qt_tensor *t = qt_graph_param(g, id, 0);
    assert_non_null(t);
    fill(t->data, t->size, lo, hi);
    return id;
}

/* dense(x) reshaped to dims (rank >= 1), varying per sample: a bias in
 * +-[1, 2] when away_from_0 (else in [-1, 1]) plus a term of magnitude
 * <= 0.3 for inputs in [-3, 3] */
static int src_dense(qt_graph *g, const char *name, int rank, const int *dims,
                     int away_from_0)
{
    char nm[32];
    size_t P = 1, K = qt_graph_node_size(g, 0);
    for (int i = 0; i < rank; i++) P *= (size_t)dims[i];
    qt_attr da = attr0();
    da.out = (int)P;
    da.bias = 1;
    snprintf(nm, sizeof nm, "%s.fc", name);
    int d = node1(g, QT_OP_DENSE, nm, 0, &da);
    qt_tensor *w = qt_graph_param(g, d, 0), *b = qt_graph_param(g, d, 1);
    fill(w->data, w->size, -0.1 / (double)K, 0.1 / (double)K);
    for (size_t i = 0; i < P; i++)
        b->data[i] = away_from_0 ? (float)((rng_next() & 1 ? 1 : -1) * runif(1.0, 2.0))
                                 : (float)runif(-1.0, 1.0);
    qt_attr ra = dims_attr(rank, dims);
    return node1(g, QT_OP_RESHAPE, name, d, &ra);
}

static const float *fwd(qt_graph *g, const qt_qconfig *cfg, const float *x, int n)
{
    const qt_tensor *y = NULL;
    qt_error e;
    int rc = qt_forward(g, cfg, x, n, 0, &y, &e);
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
    return c;
}

/* the node's per-sample dims must be these */
static void expect_dims(const qt_graph *g, int id, int rank, const int *dims)
{
    int d[QT_MAX_RANK];
    int r = qt_graph_node_dims(g, id, d);
    if (r != rank) fail_msg("node %s: rank %d, want %d", qt_graph_node_name(g, id), r, rank);
    for (int i = 0; i < rank; i++)
        if (d[i] != dims[i])
            fail_msg("node %s: dim %d is %d, want %d", qt_graph_node_name(g, id), i, d[i], dims[i]);
}

/* adding the node must fail with QT_EINVAL naming it and mentioning what */
static void add_fails(qt_graph *g, qt_op op, const char *name, const int *in, int n_in,
                      const qt_attr *a, const char *what)
{
    qt_error e;
    memset(&e, 0, sizeof e);
    int n0 = qt_graph_nodes(g);
    int rc = qt_graph_add(g, op, name, in, n_in, a, &e);
    if (rc != QT_EINVAL) fail_msg("%s: rc %d (%s), want QT_EINVAL", name, rc, e.text);
    assert_int_equal(qt_graph_nodes(g), n0);
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s'", name);
    check_msg(name, e.text, quoted);
    if (what) check_msg(name, e.text, what);
}

/* ---- multi-indices ---- */

static size_t nprod(int r, const int *d)
{
    size_t p = 1;
    for (int i = 0; i < r; i++) p *= (size_t)d[i];
    return p;
}

static void unravel(size_t i, int r, const int *d, int *co)
{
    for (int k = r - 1; k >= 0; k--) {
        co[k] = (int)(i % (size_t)d[k]);
        i /= (size_t)d[k];
    }
}

static size_t ravel(int r, const int *d, const int *co)
{
    size_t i = 0;
    for (int k = 0; k < r; k++) i = i * (size_t)d[k] + (size_t)co[k];
    return i;
}

/* the index into an operand of dims d (rank r) of output coordinates co
 * (rank R), numpy-broadcast: aligned right, dims of 1 read index 0 */
static size_t bindex(int R, const int *co, int r, const int *d)
{
    size_t i = 0;
    for (int k = 0; k < r; k++) {
        int c = d[k] == 1 ? 0 : co[R - r + k];
        i = i * (size_t)d[k] + (size_t)c;
    }
    return i;
}

static void rdims(int rank, int *d, int lo, int hi)
{
    for (int i = 0; i < rank; i++) d[i] = rpick(lo, hi);
}

static const char *dstr(char *buf, size_t cap, int r, const int *d)
{
    int at = snprintf(buf, cap, "[");
    for (int i = 0; i < r; i++) at += snprintf(buf + at, cap - (size_t)at, i ? ",%d" : "%d", d[i]);
    snprintf(buf + at, cap - (size_t)at, "]");
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Broadcasting add, sub, mul, div                                           */
/* ------------------------------------------------------------------------ */

static double ref_bin(qt_op op, double x, double y)
{
    switch (op) {
    case QT_OP_ADD: return x + y;
    case QT_OP_SUB: return x - y;
    case QT_OP_MUL: return x * y;
    default:        return x / y;
    }
}

/* d loss / d x and d loss / d y of one element */
static void ref_bin_grad(qt_op op, double x, double y, double d, double *gx, double *gy)
{
    switch (op) {
    case QT_OP_ADD: *gx = d; *gy = d; break;
    case QT_OP_SUB: *gx = d; *gy = -d; break;
    case QT_OP_MUL: *gx = d * y; *gy = d * x; break;
    default: *gx = d / y; *gy = -d * x / (y * y); break;
    }
}

/* op(left, right) where one side is "a" (a copy of the input, dims A) and
 * the other "b" (dims B: a const, or a dense reshaped, varying per sample) */
static void run_binary(qt_op op, int ra, const int *A, int rb, const int *B, int b_const,
                       int a_left, int N)
{
    char what[192], s1[64], s2[64];
    snprintf(what, sizeof what, "%s %s%s %s (%s) N=%d", qt_op_name(op),
             dstr(s1, sizeof s1, ra, A), a_left ? " op" : " is right of",
             dstr(s2, sizeof s2, rb, B), b_const ? "const" : "per sample", N);
    int aid;
    qt_graph *g = graph_with_copy(ra, A, &aid);
    int div = op == QT_OP_DIV;
    /* the divisor stays away from 0 */
    int bid = b_const ? src_const(g, "b", rb, B, -2.0, 2.0)
                      : src_dense(g, "b", rb, B, div && a_left);
    if (b_const && div && a_left) {
        qt_tensor *t = qt_graph_param(g, bid, 0);
        for (size_t i = 0; i < t->size; i++)
            t->data[i] = (float)((rng_next() & 1 ? 1 : -1) * runif(0.5, 2.0));
    }
    int ins[2] = { a_left ? aid : bid, a_left ? bid : aid };
    int y = node(g, op, "y", ins, 2, NULL);

    /* the broadcast dims, computed here */
    int R = ra > rb ? ra : rb, O[QT_MAX_RANK];
    for (int i = 0; i < R; i++) {
        int ka = i - (R - ra), kb = i - (R - rb);
        int da = ka < 0 ? 1 : A[ka], db = kb < 0 ? 1 : B[kb];
        O[i] = da > db ? da : db;
    }
    expect_dims(g, y, R, O);
    size_t PA = nprod(ra, A), PB = nprod(rb, B), P = nprod(R, O);

    float *x = fmalloc((size_t)N * PA), *Rg = fmalloc((size_t)N * P);
    if (div && a_left) fill(x, (size_t)N * PA, -3.0, 3.0);
    else if (div) for (size_t i = 0; i < (size_t)N * PA; i++)
        x[i] = (float)((rng_next() & 1 ? 1 : -1) * runif(0.5, 2.0));
    else fill(x, (size_t)N * PA, -3.0, 3.0);
    fill(Rg, (size_t)N * P, -1.0, 1.0);
    const float *out = fwd(g, NULL, x, N);
    const float *va = act(g, aid), *vb = act(g, bid);
    const int *L = a_left ? A : B, *Rt = a_left ? B : A;
    int rl = a_left ? ra : rb, rr = a_left ? rb : ra;
    size_t PL = a_left ? PA : PB, PR = a_left ? PB : PA;
    const float *vl = a_left ? va : vb, *vr = a_left ? vb : va;
    double *want = dmalloc((size_t)N * P);
    double *gl = dmalloc((size_t)N * PL), *ml = dmalloc((size_t)N * PL);
    double *gr = dmalloc((size_t)N * PR), *mr = dmalloc((size_t)N * PR);
    int co[QT_MAX_RANK];
    for (int s = 0; s < N; s++)
        for (size_t i = 0; i < P; i++) {
            unravel(i, R, O, co);
            size_t il = (size_t)s * PL + bindex(R, co, rl, L);
            size_t ir = (size_t)s * PR + bindex(R, co, rr, Rt);
            double xl = vl[il], xr = vr[ir], dl, dr;
            want[(size_t)s * P + i] = ref_bin(op, xl, xr);
            ref_bin_grad(op, xl, xr, Rg[(size_t)s * P + i], &dl, &dr);
            gl[il] += dl; ml[il] += fabs(dl);
            gr[ir] += dr; mr[ir] += fabs(dr);
        }
    check_close(what, out, want, (size_t)N * P, 1e-30, 1e-6);
    bwd(g, NULL, Rg);
    /* the const's gradient sums over the samples */
    double *gc = NULL, *mc = NULL;
    double *gB = a_left ? gr : gl, *mB = a_left ? mr : ml;
    if (b_const) {
        gc = dmalloc(PB);
        mc = dmalloc(PB);
        for (int s = 0; s < N; s++)
            for (size_t i = 0; i < PB; i++) {
                gc[i] += gB[(size_t)s * PB + i];
                mc[i] += mB[(size_t)s * PB + i];
            }
    }
    char w2[200];
    snprintf(w2, sizeof w2, "%s: d a", what);
    check_grad(w2, grad(g, aid, -1), a_left ? gl : gr, a_left ? ml : mr, (size_t)N * PA);
    snprintf(w2, sizeof w2, "%s: d b", what);
    if (b_const) check_grad(w2, grad(g, bid, 0), gc, mc, PB);
    else check_grad(w2, grad(g, bid, -1), gB, mB, (size_t)N * PB);
    free(x); free(Rg); free(want); free(gl); free(ml); free(gr); free(mr); free(gc); free(mc);
    qt_graph_free(g);
}

/* b's dims from the output dims: the last rb of them, some set to 1 */
static void derive(int R, const int *O, int r, int *d)
{
    for (int i = 0; i < r; i++) d[i] = rpick(0, 2) == 0 ? 1 : O[R - r + i];
}

static void t_broadcast_binary(void **st)
{
    (void)st;
    static const qt_op ops[] = { QT_OP_ADD, QT_OP_SUB, QT_OP_MUL, QT_OP_DIV };
    rng_seed(101);
    /* fixed cases: both-sides broadcasting, scalars, equal shapes */
    static const struct { int ra, A[5], rb, B[5]; } fixed[] = {
        { 3, { 3, 1, 5 }, 2, { 4, 1 } },
        { 2, { 4, 1 }, 3, { 3, 1, 5 } },
        { 0, { 0 }, 2, { 2, 3 } },
        { 2, { 2, 3 }, 0, { 0 } },
        { 0, { 0 }, 0, { 0 } },
        { 3, { 2, 3, 4 }, 3, { 2, 3, 4 } },
        { 3, { 2, 3, 4 }, 1, { 4 } },
        { 4, { 2, 1, 3, 1 }, 4, { 1, 4, 1, 5 } },
        { 1, { 1 }, 3, { 2, 2, 2 } },
    };
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        for (size_t f = 0; f < sizeof fixed / sizeof *fixed; f++)
            for (int side = 0; side < 2; side++) {
                int bc = fixed[f].rb == 0 || (int)(f + side) % 2;
                run_binary(ops[k], fixed[f].ra, fixed[f].A, fixed[f].rb, fixed[f].B, bc,
                           side, rpick(1, 3));
            }
    /* random pairs of ranks 0..5 */
    for (int trial = 0; trial < 120; trial++) {
        int R = rpick(0, 5), O[5], A[5], B[5];
        rdims(R, O, 1, 4);
        int ra = rpick(0, R), rb = rpick(0, R);
        if (rpick(0, 1)) ra = R; else rb = R;
        derive(R, O, ra, A);
        derive(R, O, rb, B);
        int bc = rb == 0 || rpick(0, 1);
        run_binary(ops[trial % 4], ra, A, rb, B, bc, rpick(0, 1), rpick(1, 3));
    }
}

/* IEEE division: x/0 is +-inf, 0/0 NaN; through the fast path and
 * broadcasting a scalar 0 */
static void t_div_ieee(void **st)
{
    (void)st;
    int d4 = 4;
    for (int bcast = 0; bcast < 2; bcast++) {
        int aid;
        qt_graph *g = graph_with_copy(1, &d4, &aid);
        int bid = src_const(g, "zero", bcast ? 0 : 1, &d4, 0.0, 0.0);
        qt_tensor *t = qt_graph_param(g, bid, 0);
        if (!bcast) { t->data[0] = 0.0f; t->data[1] = 0.0f; t->data[2] = 0.0f; t->data[3] = -0.0f; }
        else t->data[0] = 0.0f;
        int y = node(g, QT_OP_DIV, "q", (int[]){ aid, bid }, 2, NULL);
        float x[4] = { 1.0f, -1.0f, 0.0f, 2.0f };
        const float *o = fwd(g, NULL, x, 1);
        assert_true(isinf(o[0]) && o[0] > 0);
        assert_true(isinf(o[1]) && o[1] < 0);
        assert_true(isnan(o[2]));
        assert_true(isinf(o[3]) && (bcast ? o[3] > 0 : o[3] < 0));
        (void)y;
        qt_graph_free(g);
    }
}

/* the intrinsic point on broadcast ops: EACH bit-true on operands rounded
 * to f (nearest-even if f is stochastic), element i of the output with
 * word i (sample_base 0); FINAL: the float result quantized */
static uint32_t intr_word(const qt_format *f, uint64_t seed, int node_id, uint64_t idx)
{
    return f->round == QT_SR
        ? qt_rand32(seed, ((uint64_t)node_id << 8) ^ QT_QP_INTRINSIC, idx) : 0;
}

static float operand(const qt_format *f, float v)
{
    qt_format rn = *f;
    if (rn.round == QT_SR) rn.round = QT_RNE;
    return qt_quantize1(&rn, v, 0);
}

static void t_intrinsic_broadcast(void **st)
{
    (void)st;
    static const qt_op ops[] = { QT_OP_ADD, QT_OP_SUB, QT_OP_MUL, QT_OP_DIV };
    static const char *const fmts[] = { "fixed<8,4>", "fixed<10,6,sr>", "float<8,e4,b7,sr>" };
    enum { N = 3 };
    int A[3] = { 3, 1, 5 }, B[2] = { 4, 1 }, O[3] = { 3, 4, 5 };
    const uint64_t seed = 55;
    rng_seed(102);
    for (size_t k = 0; k < 4; k++)
        for (size_t fi = 0; fi < 3; fi++)
            for (int each = 0; each < 2; each++) {
                int aid;
                qt_graph *g = graph_with_copy(3, A, &aid);
                int bid = src_const(g, "b", 2, B, 0.3, 2.0);
                int y = node(g, ops[k], "y", (int[]){ aid, bid }, 2, NULL);
                char js[160];
                snprintf(js, sizeof js, "{\"y\":{\"intrinsic\":\"%s\",\"intrinsic_mode\":\"%s\"}}",
                         fmts[fi], each ? "each" : "final");
                qt_qconfig *cfg = parse_ok(g, js);
                qt_qconfig_set_seed(cfg, seed);
                qt_format f = fmt(fmts[fi]);
                float x[N * 15];
                fill(x, N * 15, -3.0, 3.0);
                const float *out = fwd(g, cfg, x, N);
                const float *b = qt_graph_param(g, bid, 0)->data;
                float want[N * 60];
                int co[3];
                for (int s = 0; s < N; s++)
                    for (size_t i = 0; i < 60; i++) {
                        unravel(i, 3, O, co);
                        float xa = x[s * 15 + bindex(3, co, 3, A)], xb = b[bindex(3, co, 2, B)];
                        uint32_t r = intr_word(&f, seed, y, (uint64_t)s * 60 + i);
                        float v;
                        if (each) {
                            xa = operand(&f, xa);
                            xb = operand(&f, xb);
                            switch (ops[k]) {
                            case QT_OP_ADD: v = qt_add(&f, xa, xb, r); break;
                            case QT_OP_SUB: v = qt_add(&f, xa, -xb, r); break;
                            case QT_OP_MUL: v = qt_mul(&f, xa, xb, r); break;
                            default: v = qt_quantize1(&f, xa / xb, r); break;
                            }
                        } else {
                            float fl = ops[k] == QT_OP_ADD ? xa + xb : ops[k] == QT_OP_SUB ? xa - xb
                                     : ops[k] == QT_OP_MUL ? xa * xb : xa / xb;
                            v = qt_quantize1(&f, fl, r);
                        }
                        want[s * 60 + i] = v;
                    }
                char what[96];
                snprintf(what, sizeof what, "%s %s %s", qt_op_name(ops[k]), fmts[fi],
                         each ? "each" : "final");
                check_bits(what, out, want, N * 60);
                qt_qconfig_free(cfg);
                qt_graph_free(g);
            }
}

/* ------------------------------------------------------------------------ */
/* PRelu                                                                     */
/* ------------------------------------------------------------------------ */

static void run_prelu(int rx, const int *X, int rs, const int *S, int N)
{
    char what[192], s1[64], s2[64];
    snprintf(what, sizeof what, "prelu x%s slope%s", dstr(s1, sizeof s1, rx, X),
             dstr(s2, sizeof s2, rs, S));
    qt_graph *g = qt_graph_new();
    input_nd(g, rx, X);
    qt_attr a = dims_attr(rs, S);
    int y = node1(g, QT_OP_PRELU, "p", 0, &a);
    expect_dims(g, y, rx, X);
    qt_tensor *w = qt_graph_param(g, y, 0);
    size_t PS = nprod(rs, S), P = nprod(rx, X);
    assert_int_equal(w->size, PS);
    fill(w->data, PS, -0.5, 1.5);
    float *x = fmalloc((size_t)N * P), *R = fmalloc((size_t)N * P);
    fill(x, (size_t)N * P, -2.0, 2.0);
    fill(R, (size_t)N * P, -1.0, 1.0);
    const float *out = fwd(g, NULL, x, N);
    double *want = dmalloc((size_t)N * P), *gx = dmalloc((size_t)N * P), *mx = dmalloc((size_t)N * P);
    double *gs = dmalloc(PS), *ms = dmalloc(PS);
    int co[QT_MAX_RANK];
    for (int s = 0; s < N; s++)
        for (size_t i = 0; i < P; i++) {
            unravel(i, rx, X, co);
            size_t k = bindex(rx, co, rs, S), j = (size_t)s * P + i;
            double v = x[j], sl = w->data[k], d = R[j];
            want[j] = v < 0 ? sl * v : v;
            gx[j] = v < 0 ? sl * d : d;
            mx[j] = fabs(gx[j]);
            if (v < 0) { gs[k] += v * d; ms[k] += fabs(v * d); }
        }
    check_close(what, out, want, (size_t)N * P, 1e-30, 1e-6);
    bwd(g, NULL, R);
    check_grad(what, grad(g, 0, -1), gx, mx, (size_t)N * P);
    check_grad(what, grad(g, y, 0), gs, ms, PS);
    free(x); free(R); free(want); free(gx); free(mx); free(gs); free(ms);
    qt_graph_free(g);
}

/* intrinsic EACH on fixed point: the integer path of add, sub and mul
 * (intr_fixed.c; div keeps the reference) against the reference loops
 * (qt__intr_force_ref), bit for bit, on random formats (W up to 16, every
 * rounding mode, ufixed, sym), equal and broadcast shapes, runs of several
 * stack chunks, NaN and inf operands */
static void t_intrinsic_int_binary(void **st)
{
    (void)st;
    static const qt_op ops[] = { QT_OP_ADD, QT_OP_SUB, QT_OP_MUL, QT_OP_DIV };
    static const char *const rnd[] = { "rne", "rna", "sr", "rd", "rz" };
    rng_seed(131);
    for (int it = 0; it < 200; it++) {
        int R = rpick(1, 4), O[5], B[5], rb, same = it % 2 == 0;
        if (it % 4 == 0) {
            R = 3;
            O[0] = rpick(1, 8); O[1] = rpick(10, 40); O[2] = rpick(10, 40);
        } else {
            rdims(R, O, 1, 6);
        }
        if (same) {
            rb = R;
            memcpy(B, O, sizeof O);
        } else {
            rb = rpick(0, R);
            derive(R, O, rb, B);
        }
        int u = rpick(0, 3) == 0, W = u ? rpick(1, 15) : rpick(2, 16);
        int F = rpick(0, W < 12 ? W : 12), sym = !u && rpick(0, 2) == 0;
        char f[48], js[160], what[200], da[48], db[48];
        /* the large equal-shape runs: often a stochastic product, whose
         * words depend on the element's index */
        const char *rm = it % 8 == 0 ? "sr" : rnd[rpick(0, 4)];
        snprintf(f, sizeof f, "%s<%d,%d,%s%s>", u ? "ufixed" : "fixed", W, F, rm,
                 sym ? ",sym" : "");
        double m = ldexp(1.0, (u ? W : W - 1) - F) * runif(0.25, 4.0);
        int aid, swap = rpick(0, 1);
        qt_op op = it % 16 == 0 ? QT_OP_MUL : ops[rpick(0, 3)];
        qt_graph *g = graph_with_copy(R, O, &aid);
        int bid = src_const(g, "b", rb, B, -m, m);
        int y = swap ? node(g, op, "y", (int[]){ bid, aid }, 2, NULL)
                     : node(g, op, "y", (int[]){ aid, bid }, 2, NULL);
        snprintf(js, sizeof js, "{\"y\":{\"intrinsic\":\"%s\"}}", f);
        qt_qconfig *cfg = parse_ok(g, js);
        qt_qconfig_set_seed(cfg, 900 + (uint64_t)it);
        int N = rpick(1, 3);
        size_t nx = (size_t)N * qt_graph_node_size(g, 0);
        float *x = fmalloc(nx);
        fill(x, nx, -m, m);
        if (it % 8 == 7) {
            x[rpick(0, (int)nx - 1)] = NAN;
            x[rpick(0, (int)nx - 1)] = INFINITY;
            qt_graph_param(g, bid, 0)->data[0] = -INFINITY;
        }
        snprintf(what, sizeof what, "%s %s %s%s %s", qt_op_name(op),
                 dstr(da, sizeof da, R, O), dstr(db, sizeof db, rb, B), swap ? " swapped" : "", f);
        qt__intr_force_ref = 0;
        const float *o = fwd(g, cfg, x, N);
        size_t ny = (size_t)N * qt_graph_node_size(g, y);
        float *fast = fmalloc(ny);
        memcpy(fast, o, ny * sizeof *fast);
        qt__intr_force_ref = 1;
        o = fwd(g, cfg, x, N);
        qt__intr_force_ref = 0;
        for (size_t i = 0; i < ny; i++)
            if (bits(fast[i]) != bits(o[i]))
                fail_msg("%s: y[%zu] = %a (integer path) vs %a (reference)", what, i,
                         (double)fast[i], (double)o[i]);
        free(fast);
        free(x);
        qt_qconfig_free(cfg);
        qt_graph_free(g);
    }
}


static void t_prelu(void **st)
{
    (void)st;
    rng_seed(103);
    int X[4] = { 3, 4, 5, 2 };
    run_prelu(3, X, 0, NULL, 3);                       /* one scalar */
    run_prelu(3, X, 3, (int[]){ 3, 1, 1 }, 3);         /* per channel */
    run_prelu(3, X, 3, X, 2);                          /* full */
    run_prelu(3, X, 1, (int[]){ 5 }, 2);               /* right-aligned */
    run_prelu(4, X, 2, (int[]){ 5, 1 }, 2);
    run_prelu(0, NULL, 0, NULL, 5);                    /* scalar x */
    run_prelu(1, (int[]){ 7 }, 1, (int[]){ 7 }, 4);
    for (int t = 0; t < 20; t++) {
        int rx = rpick(0, 5), D[5], S[5], rs = rpick(0, rx);
        rdims(rx, D, 1, 4);
        derive(rx, D, rs, S);
        run_prelu(rx, D, rs, S, rpick(1, 3));
    }
    /* the slope may not be bigger than x; the error names the node */
    qt_graph *g = qt_graph_new();
    input_nd(g, 2, (int[]){ 3, 4 });
    qt_attr a = dims_attr(1, (int[]){ 3 });
    add_fails(g, QT_OP_PRELU, "p1", (int[]){ 0 }, 1, &a, "3x4");
    a = dims_attr(3, (int[]){ 1, 3, 4 });
    add_fails(g, QT_OP_PRELU, "p2", (int[]){ 0 }, 1, &a, "1x3x4");
    a = dims_attr(2, (int[]){ 3, 0 });
    add_fails(g, QT_OP_PRELU, "p3", (int[]){ 0 }, 1, &a, NULL);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Transpose                                                                 */
/* ------------------------------------------------------------------------ */

static void run_transpose(int r, const int *D, const int *perm, int N)
{
    char what[192], s1[64], s2[64];
    snprintf(what, sizeof what, "transpose %s perm %s", dstr(s1, sizeof s1, r, D),
             dstr(s2, sizeof s2, r, perm));
    qt_graph *g = qt_graph_new();
    input_nd(g, r, D);
    qt_attr a = attr0();
    a.rank = r;
    for (int i = 0; i < r; i++) a.perm[i] = perm[i];
    int y = node1(g, QT_OP_TRANSPOSE, "t", 0, &a);
    int O[QT_MAX_RANK];
    for (int i = 0; i < r; i++) O[i] = D[perm[i]];
    expect_dims(g, y, r, O);
    size_t P = nprod(r, D);
    float *x = fmalloc((size_t)N * P), *R = fmalloc((size_t)N * P);
    fill(x, (size_t)N * P, -1.0, 1.0);
    fill(R, (size_t)N * P, -1.0, 1.0);
    const float *out = fwd(g, NULL, x, N);
    double *want = dmalloc((size_t)N * P), *gx = dmalloc((size_t)N * P);
    int co[QT_MAX_RANK], ci[QT_MAX_RANK];
    for (int s = 0; s < N; s++)
        for (size_t i = 0; i < P; i++) {
            unravel(i, r, O, co);
            for (int k = 0; k < r; k++) ci[perm[k]] = co[k];
            size_t j = (size_t)s * P + ravel(r, D, ci);
            want[(size_t)s * P + i] = x[j];
            gx[j] = R[(size_t)s * P + i];
        }
    check_close(what, out, want, (size_t)N * P, 0.0, 0.0);
    bwd(g, NULL, R);
    check_close(what, grad(g, 0, -1), gx, (size_t)N * P, 0.0, 0.0);
    free(x); free(R); free(want); free(gx);
    qt_graph_free(g);
}

static void t_transpose(void **st)
{
    (void)st;
    rng_seed(104);
    run_transpose(0, NULL, NULL, 3);
    run_transpose(1, (int[]){ 6 }, (int[]){ 0 }, 2);
    run_transpose(2, (int[]){ 3, 5 }, (int[]){ 1, 0 }, 2);
    run_transpose(4, (int[]){ 2, 3, 4, 5 }, (int[]){ 0, 2, 3, 1 }, 2);   /* NCHW -> NHWC */
    for (int t = 0; t < 60; t++) {
        int r = rpick(1, 6), D[6], perm[6];
        rdims(r, D, 1, 4);
        for (int i = 0; i < r; i++) perm[i] = i;
        for (int i = r - 1; i > 0; i--) {
            int j = rpick(0, i), k = perm[i];
            perm[i] = perm[j];
            perm[j] = k;
        }
        run_transpose(r, D, perm, rpick(1, 3));
    }
    /* not a permutation, or the wrong number of entries */
    qt_graph *g = qt_graph_new();
    input_nd(g, 3, (int[]){ 2, 3, 4 });
    qt_attr a = attr0();
    a.rank = 3; a.perm[0] = 0; a.perm[1] = 0; a.perm[2] = 2;
    add_fails(g, QT_OP_TRANSPOSE, "dup", (int[]){ 0 }, 1, &a, "permutation");
    a.perm[1] = 3;
    add_fails(g, QT_OP_TRANSPOSE, "range", (int[]){ 0 }, 1, &a, "permutation");
    a.rank = 2; a.perm[0] = 1; a.perm[1] = 0;
    add_fails(g, QT_OP_TRANSPOSE, "short", (int[]){ 0 }, 1, &a, "rank 3");
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Pad                                                                       */
/* ------------------------------------------------------------------------ */

/* numpy's modes on the cropped axis of length n: the source of index j
 * (j may be outside [0, n)); -1 for the constant */
static int ref_pad_src(int mode, int j, int n)
{
    if (j >= 0 && j < n) return j;
    if (mode == QT_PAD_CONSTANT) return -1;
    if (mode == QT_PAD_EDGE) return j < 0 ? 0 : n - 1;
    while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;   /* fold at the edges */
    return j;
}

static void run_pad(int r, const int *D, const int *pads, int mode, float value, int N)
{
    char what[192], s1[64], s2[64];
    snprintf(what, sizeof what, "pad %s pads %s mode %d", dstr(s1, sizeof s1, r, D),
             dstr(s2, sizeof s2, 2 * r, pads), mode);
    qt_graph *g = qt_graph_new();
    input_nd(g, r, D);
    qt_attr a = attr0();
    a.mode = mode;
    a.value = value;
    for (int i = 0; i < 2 * r; i++) a.pads[i] = pads[i];
    int y = node1(g, QT_OP_PAD, "pad", 0, &a);
    /* crop first: the kept part of axis k starts at c0[k] and is K[k] long */
    int O[QT_MAX_RANK], c0[QT_MAX_RANK], K[QT_MAX_RANK], pb[QT_MAX_RANK];
    for (int k = 0; k < r; k++) {
        int b = pads[k], e = pads[r + k];
        c0[k] = b < 0 ? -b : 0;
        K[k] = D[k] - c0[k] - (e < 0 ? -e : 0);
        pb[k] = b > 0 ? b : 0;
        O[k] = K[k] + pb[k] + (e > 0 ? e : 0);
    }
    expect_dims(g, y, r, O);
    size_t P = nprod(r, D), PO = nprod(r, O);
    float *x = fmalloc((size_t)N * P), *R = fmalloc((size_t)N * PO);
    fill(x, (size_t)N * P, -1.0, 1.0);
    fill(R, (size_t)N * PO, -1.0, 1.0);
    const float *out = fwd(g, NULL, x, N);
    double *want = dmalloc((size_t)N * PO), *gx = dmalloc((size_t)N * P), *mx = dmalloc((size_t)N * P);
    int co[QT_MAX_RANK], ci[QT_MAX_RANK];
    for (int s = 0; s < N; s++)
        for (size_t i = 0; i < PO; i++) {
            unravel(i, r, O, co);
            int inside = 1;
            for (int k = 0; k < r; k++) {
                int j = ref_pad_src(mode, co[k] - pb[k], K[k]);
                if (j < 0) inside = 0;
                ci[k] = c0[k] + j;
            }
            size_t o = (size_t)s * PO + i;
            if (!inside) { want[o] = value; continue; }
            size_t j = (size_t)s * P + ravel(r, D, ci);
            want[o] = x[j];
            gx[j] += R[o];
            mx[j] += fabs(R[o]);
        }
    check_close(what, out, want, (size_t)N * PO, 0.0, 0.0);
    bwd(g, NULL, R);
    check_grad(what, grad(g, 0, -1), gx, mx, (size_t)N * P);
    free(x); free(R); free(want); free(gx); free(mx);
    qt_graph_free(g);
}

static void pad_expect(const int *pads, int mode, float value, const float *want, int nw)
{
    qt_graph *g = qt_graph_new();
    input_nd(g, 1, (int[]){ 4 });
    qt_attr a = attr0();
    a.mode = mode; a.value = value; a.pads[0] = pads[0]; a.pads[1] = pads[1];
    node1(g, QT_OP_PAD, "pad", 0, &a);
    assert_int_equal(qt_graph_node_size(g, 1), (size_t)nw);
    float x[4] = { 1, 2, 3, 4 };
    check_bits("pad example", fwd(g, NULL, x, 1), want, (size_t)nw);
    qt_graph_free(g);
}

static void t_pad(void **st)
{
    (void)st;
    rng_seed(105);
    /* numpy's examples on [1, 2, 3, 4] */
    pad_expect((int[]){ 2, 1 }, QT_PAD_REFLECT, 0, (float[]){ 3, 2, 1, 2, 3, 4, 3 }, 7);
    pad_expect((int[]){ 3, 3 }, QT_PAD_REFLECT, 0, (float[]){ 4, 3, 2, 1, 2, 3, 4, 3, 2, 1 }, 10);
    pad_expect((int[]){ 2, 1 }, QT_PAD_EDGE, 0, (float[]){ 1, 1, 1, 2, 3, 4, 4 }, 7);
    pad_expect((int[]){ -1, 2 }, QT_PAD_CONSTANT, 9, (float[]){ 2, 3, 4, 9, 9 }, 5);
    pad_expect((int[]){ -1, 2 }, QT_PAD_REFLECT, 0, (float[]){ 2, 3, 4, 3, 2 }, 5);
    pad_expect((int[]){ 1, -2 }, QT_PAD_EDGE, 0, (float[]){ 1, 1, 2 }, 3);
    pad_expect((int[]){ -3, 0 }, QT_PAD_CONSTANT, 0, (float[]){ 4 }, 1);
    for (int t = 0; t < 90; t++) {
        int r = rpick(1, 4), D[4], pads[8], mode = t % 3;
        rdims(r, D, 1, 5);
        for (int k = 0; k < r; k++) {
            /* crop leaving >= 1; reflect pads below the kept length */
            int b = rpick(-2, 3), e = rpick(-2, 3);
            if (b < 0 && -b >= D[k]) b = 0;
            if (e < 0 && D[k] - (b < 0 ? -b : 0) + e < 1) e = 0;
            int kd = D[k] - (b < 0 ? -b : 0) - (e < 0 ? -e : 0);
            if (mode == QT_PAD_REFLECT) {
                if (b >= kd) b = kd - 1;
                if (e >= kd) e = kd - 1;
            }
            pads[k] = b;
            pads[r + k] = e;
        }
        run_pad(r, D, pads, mode, (float)runif(-2.0, 2.0), rpick(1, 3));
    }
    /* rank 0: nothing to pad */
    run_pad(0, NULL, NULL, QT_PAD_CONSTANT, 1.0f, 2);
    /* errors: crops that leave nothing, reflect pads reaching past the edge,
     * an unknown mode */
    qt_graph *g = qt_graph_new();
    input_nd(g, 2, (int[]){ 3, 4 });
    qt_attr a = attr0();
    a.pads[0] = -2; a.pads[2] = -1;
    add_fails(g, QT_OP_PAD, "crop", (int[]){ 0 }, 1, &a, "axis 0");
    a = attr0();
    a.pads[1] = -5; a.pads[3] = 2;
    add_fails(g, QT_OP_PAD, "crop2", (int[]){ 0 }, 1, &a, "axis 1");
    a = attr0();
    a.mode = QT_PAD_REFLECT; a.pads[3] = 4;
    add_fails(g, QT_OP_PAD, "refl", (int[]){ 0 }, 1, &a, "reflect");
    a = attr0();
    a.mode = 3;
    add_fails(g, QT_OP_PAD, "mode", (int[]){ 0 }, 1, &a, "mode");
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Softmax and logsoftmax                                                    */
/* ------------------------------------------------------------------------ */

static void run_softmax(qt_op op, int r, const int *D, int axis, int mode, int N, int big)
{
    char what[192], s1[64];
    snprintf(what, sizeof what, "%s %s axis %d mode %d%s", qt_op_name(op),
             dstr(s1, sizeof s1, r, D), axis, mode, big ? " big" : "");
    qt_graph *g = qt_graph_new();
    input_nd(g, r, D);
    qt_attr a = attr0();
    a.axis = axis;
    a.mode = mode;
    int y = node1(g, op, "sm", 0, &a);
    expect_dims(g, y, r, D);
    size_t P = nprod(r, D);
    float *x = fmalloc((size_t)N * P), *R = fmalloc((size_t)N * P);
    fill(x, (size_t)N * P, -3.0, 3.0);
    if (big)
        for (size_t i = 0; i < (size_t)N * P; i++) {
            int k = rpick(0, 3);
            if (k == 0) x[i] = 1000.0f;
            else if (k == 1) x[i] = -1000.0f;
            else x[i] += 999.0f * (float)(rng_next() & 1);
        }
    fill(R, (size_t)N * P, -1.0, 1.0);
    const float *out = fwd(g, NULL, x, N);
    /* a group: the elements whose coordinates off the normalised axes
     * agree; its key is the index with the normalised coordinates zeroed */
    double *want = dmalloc((size_t)N * P), *gx = dmalloc((size_t)N * P), *mx = dmalloc((size_t)N * P);
    double *gmax = dmalloc(P), *gsum = dmalloc(P), *gd = dmalloc(P), *gdy = dmalloc(P);
    size_t *key = calloc(P, sizeof *key);
    assert_non_null(key);
    int co[QT_MAX_RANK];
    for (size_t i = 0; i < P; i++) {
        unravel(i, r, D, co);
        for (int k = axis; k < r; k++)
            if (k == axis || mode == 1) co[k] = 0;
        key[i] = ravel(r, D, co);
    }
    for (int s = 0; s < N; s++) {
        const float *xs = x + (size_t)s * P, *Rs = R + (size_t)s * P;
        for (size_t i = 0; i < P; i++) { gmax[i] = -INFINITY; gsum[i] = gd[i] = gdy[i] = 0.0; }
        for (size_t i = 0; i < P; i++) gmax[key[i]] = fmax(gmax[key[i]], xs[i]);
        for (size_t i = 0; i < P; i++) {
            double e = exp((double)xs[i] - gmax[key[i]]);
            gsum[key[i]] += e;
            gd[key[i]] += Rs[i];
            gdy[key[i]] += Rs[i] * e;
        }
        for (size_t i = 0; i < P; i++) {
            size_t o = (size_t)s * P + i, kk = key[i];
            double xi = xs[i], p = exp(xi - gmax[kk]) / gsum[kk];
            double dy = gdy[kk] / gsum[kk], dsum = gd[kk];   /* sum d*softmax, sum d */
            if (op == QT_OP_SOFTMAX) {
                want[o] = p;
                gx[o] = p * (Rs[i] - dy);
                mx[o] = p * (fabs(Rs[i]) + fabs(dy)) + 1e-3;
            } else {
                want[o] = xi - gmax[kk] - log(gsum[kk]);
                gx[o] = Rs[i] - p * dsum;
                mx[o] = fabs(Rs[i]) + p * fabs(dsum) + 1e-3;
            }
        }
    }
    free(gmax); free(gsum); free(gd); free(gdy); free(key);
    for (size_t i = 0; i < (size_t)N * P; i++)
        if (!isfinite(out[i])) fail_msg("%s[%zu]: %g is not finite", what, i, (double)out[i]);
    check_close(what, out, want, (size_t)N * P, 1e-6, 1e-5);
    bwd(g, NULL, R);
    check_grad(what, grad(g, 0, -1), gx, mx, (size_t)N * P);
    free(x); free(R); free(want); free(gx); free(mx);
    qt_graph_free(g);
}

static void t_softmax_axes(void **st)
{
    (void)st;
    rng_seed(106);
    for (int t = 0; t < 24; t++) {
        int r = rpick(1, 4), D[4];
        rdims(r, D, 1, 5);
        for (int op = 0; op < 2; op++)
            for (int axis = 0; axis < r; axis++)
                for (int mode = 0; mode < 2; mode++)
                    run_softmax(op ? QT_OP_LOGSOFTMAX : QT_OP_SOFTMAX, r, D, axis, mode,
                                rpick(1, 3), t % 3 == 0);
    }
    /* the default (axis 0, mode 0) computes today's bits: over the channels
     * at each position, expf(x - max) in float, the sum in double, each value
     * divided in double */
    enum { N = 3, C = 4, H = 3, W = 5, HW = H * W, P = C * HW };
    qt_graph *g = qt_graph_new();
    input_nd(g, 3, (int[]){ C, H, W });
    node1(g, QT_OP_SOFTMAX, "sm", 0, NULL);
    float x[N * P], want[N * P];
    fill(x, N * P, -4.0, 4.0);
    for (int s = 0; s < N; s++)
        for (int p = 0; p < HW; p++) {
            const float *xs = x + s * P + p;
            float *ys = want + s * P + p, mxv = xs[0];
            double sum = 0.0;
            for (int c = 1; c < C; c++) if (xs[c * HW] > mxv) mxv = xs[c * HW];
            for (int c = 0; c < C; c++) { ys[c * HW] = expf(xs[c * HW] - mxv); sum += ys[c * HW]; }
            for (int c = 0; c < C; c++) ys[c * HW] = (float)(ys[c * HW] / sum);
        }
    check_bits("softmax default", fwd(g, NULL, x, N), want, N * P);
    /* axis >= rank, bad mode */
    qt_attr a = attr0();
    a.axis = 3;
    add_fails(g, QT_OP_SOFTMAX, "sm3", (int[]){ 0 }, 1, &a, "axis 3");
    add_fails(g, QT_OP_LOGSOFTMAX, "lsm3", (int[]){ 0 }, 1, &a, "axis 3");
    a.axis = -1;
    add_fails(g, QT_OP_LOGSOFTMAX, "lsm_neg", (int[]){ 0 }, 1, &a, "axis -1");
    a.axis = 0; a.mode = 2;
    add_fails(g, QT_OP_SOFTMAX, "smm", (int[]){ 0 }, 1, &a, "mode");
    qt_graph_free(g);
    g = qt_graph_new();
    input_nd(g, 0, NULL);
    add_fails(g, QT_OP_SOFTMAX, "sm0", (int[]){ 0 }, 1, NULL, "axis 0");
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Concat                                                                    */
/* ------------------------------------------------------------------------ */

static void run_concat(int r, const int *D, int axis, int n_in, int N)
{
    char what[192], s1[64];
    int dims[QT_MAX_INPUTS][QT_MAX_RANK], ids[QT_MAX_INPUTS], O[QT_MAX_RANK];
    memcpy(O, D, sizeof(int) * (size_t)r);
    O[axis] = 0;
    for (int i = 0; i < n_in; i++) {
        memcpy(dims[i], D, sizeof(int) * (size_t)r);
        dims[i][axis] = rpick(1, 4);
        O[axis] += dims[i][axis];
    }
    snprintf(what, sizeof what, "concat of %d along %d: %s", n_in, axis, dstr(s1, sizeof s1, r, O));
    int aid;
    qt_graph *g = graph_with_copy(r, dims[0], &aid);
    ids[0] = aid;
    int is_const[QT_MAX_INPUTS] = { 0 };
    for (int i = 1; i < n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "s%d", i);
        is_const[i] = rpick(0, 1);
        ids[i] = is_const[i] ? src_const(g, nm, r, dims[i], -1.0, 1.0)
                             : src_dense(g, nm, r, dims[i], 0);
    }
    qt_attr a = attr0();
    a.axis = axis;
    int y = node(g, QT_OP_CONCAT, "cat", ids, n_in, &a);
    expect_dims(g, y, r, O);
    size_t P = nprod(r, O), P0 = nprod(r, dims[0]);
    float *x = fmalloc((size_t)N * P0), *R = fmalloc((size_t)N * P);
    fill(x, (size_t)N * P0, -1.0, 1.0);
    fill(R, (size_t)N * P, -1.0, 1.0);
    const float *out = fwd(g, NULL, x, N);
    double *want = dmalloc((size_t)N * P);
    double *gin[QT_MAX_INPUTS];
    for (int i = 0; i < n_in; i++) gin[i] = dmalloc((size_t)N * nprod(r, dims[i]));
    int co[QT_MAX_RANK];
    for (int s = 0; s < N; s++)
        for (size_t o = 0; o < P; o++) {
            unravel(o, r, O, co);
            int i = 0;
            while (co[axis] >= dims[i][axis]) co[axis] -= dims[i++][axis];
            size_t Pi = nprod(r, dims[i]), j = ravel(r, dims[i], co);
            const float *v = act(g, ids[i]);
            want[(size_t)s * P + o] = v[(is_const[i] ? 0 : (size_t)s * Pi) + j];
            gin[i][(size_t)s * Pi + j] += R[(size_t)s * P + o];
        }
    check_close(what, out, want, (size_t)N * P, 0.0, 0.0);
    bwd(g, NULL, R);
    for (int i = 0; i < n_in; i++) {
        size_t Pi = nprod(r, dims[i]);
        double *m = dmalloc((size_t)N * Pi);
        for (size_t k = 0; k < (size_t)N * Pi; k++) m[k] = fabs(gin[i][k]);
        if (is_const[i]) {
            for (int s = 1; s < N; s++)
                for (size_t k = 0; k < Pi; k++) {
                    gin[i][k] += gin[i][(size_t)s * Pi + k];
                    m[k] += m[(size_t)s * Pi + k];
                }
            check_grad(what, grad(g, ids[i], 0), gin[i], m, Pi);
        } else {
            check_grad(what, grad(g, ids[i], -1), gin[i], m, (size_t)N * Pi);
        }
        free(m);
        free(gin[i]);
    }
    free(x); free(R); free(want);
    qt_graph_free(g);
}

static void t_concat_axes(void **st)
{
    (void)st;
    rng_seed(107);
    for (int t = 0; t < 20; t++) {
        int r = rpick(1, 5), D[5];
        rdims(r, D, 1, 4);
        for (int axis = 0; axis < r; axis++) run_concat(r, D, axis, rpick(1, 4), rpick(1, 3));
    }
    /* the legacy mix: [F] beside [F', 1, 1] along axis 0 */
    qt_graph *g = qt_graph_new();
    input_nd(g, 3, (int[]){ 2, 1, 1 });
    int c = src_const(g, "c", 1, (int[]){ 3 }, -1, 1);
    int y = node(g, QT_OP_CONCAT, "cat", (int[]){ c, 0 }, 2, NULL);
    expect_dims(g, y, 3, (int[]){ 5, 1, 1 });
    /* other dims differ; axis >= rank */
    int d = src_const(g, "d", 3, (int[]){ 2, 2, 1 }, -1, 1);
    add_fails(g, QT_OP_CONCAT, "bad", (int[]){ 0, d }, 2, NULL, "2x1x1");
    qt_attr a = attr0();
    a.axis = 3;
    add_fails(g, QT_OP_CONCAT, "bad_axis", (int[]){ 0, d }, 2, &a, "axis 3");
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Reshape and const                                                         */
/* ------------------------------------------------------------------------ */

static void t_reshape(void **st)
{
    (void)st;
    rng_seed(108);
    enum { N = 3, P = 24 };
    qt_graph *g = qt_graph_new();
    input_nd(g, 3, (int[]){ 2, 3, 4 });
    qt_attr a = dims_attr(4, (int[]){ 4, 1, 3, 2 });
    int r4 = node1(g, QT_OP_RESHAPE, "r4", 0, &a);
    expect_dims(g, r4, 4, (int[]){ 4, 1, 3, 2 });
    a = dims_attr(1, (int[]){ 24 });
    int r1 = node1(g, QT_OP_RESHAPE, "r1", r4, &a);
    expect_dims(g, r1, 1, (int[]){ 24 });
    a = dims_attr(7, (int[]){ 1, 2, 1, 3, 1, 4, 1 });
    int r7 = node1(g, QT_OP_RESHAPE, "r7", r1, &a);
    expect_dims(g, r7, 7, (int[]){ 1, 2, 1, 3, 1, 4, 1 });
    a = attr0();                       /* legacy: C, H, W, 0 read as 1 */
    a.shape[0] = 6; a.shape[1] = 4;
    int rl = node1(g, QT_OP_RESHAPE, "rl", r7, &a);
    expect_dims(g, rl, 3, (int[]){ 6, 4, 1 });
    int fl = node1(g, QT_OP_FLATTEN, "fl", rl, NULL);
    expect_dims(g, fl, 1, (int[]){ 24 });
    float x[N * P], R[N * P];
    fill(x, N * P, -1, 1);
    fill(R, N * P, -1, 1);
    check_bits("reshape chain", fwd(g, NULL, x, N), x, N * P);
    bwd(g, NULL, R);
    check_bits("reshape chain backward", grad(g, 0, -1), R, N * P);
    /* size mismatch, bad dims */
    a = dims_attr(2, (int[]){ 5, 5 });
    add_fails(g, QT_OP_RESHAPE, "mismatch", (int[]){ 0 }, 1, &a, "5x5");
    a = dims_attr(2, (int[]){ 24, 0 });
    add_fails(g, QT_OP_RESHAPE, "zero", (int[]){ 0 }, 1, &a, "24x0");
    a = dims_attr(1, (int[]){ 24 });
    a.rank = 8;
    add_fails(g, QT_OP_RESHAPE, "rank8", (int[]){ 0 }, 1, &a, "rank 8");
    qt_graph_free(g);
    /* to and from rank 1 of a scalar */
    g = qt_graph_new();
    input_nd(g, 0, NULL);
    a = dims_attr(3, (int[]){ 1, 1, 1 });
    int s3 = node1(g, QT_OP_RESHAPE, "s3", 0, &a);
    expect_dims(g, s3, 3, (int[]){ 1, 1, 1 });
    float xs[2] = { 1.5f, -2.0f };
    check_bits("scalar reshape", fwd(g, NULL, xs, 2), xs, 2);
    qt_graph_free(g);
}

static void t_const(void **st)
{
    (void)st;
    rng_seed(109);
    enum { N = 4 };
    int D[2] = { 2, 3 };
    qt_graph *g = qt_graph_new();
    input_nd(g, 1, (int[]){ 5 });
    int c = src_const(g, "c", 2, D, -1.0, 1.0);
    int c0 = src_const(g, "c0", 0, NULL, -1.0, 1.0);
    int y = node(g, QT_OP_MUL, "y", (int[]){ c, c0 }, 2, NULL);
    expect_dims(g, c, 2, D);
    expect_dims(g, c0, 0, NULL);
    expect_dims(g, y, 2, D);
    const qt_tensor *w = qt_graph_param(g, c, 0);
    assert_int_equal(w->size, 6);
    assert_int_equal(qt_graph_param(g, c0, 0)->size, 1);
    float x[N * 5], R[N * 6];
    fill(x, N * 5, -1, 1);
    fill(R, N * 6, -1, 1);
    fwd(g, NULL, x, N);
    for (int s = 0; s < N; s++) check_bits("const in every sample", act(g, c) + s * 6, w->data, 6);
    bwd(g, NULL, R);
    double gc[6] = { 0 }, mc[6] = { 0 }, g0 = 0, m0 = 0, v0 = qt_graph_param(g, c0, 0)->data[0];
    for (int s = 0; s < N; s++)
        for (int i = 0; i < 6; i++) {
            gc[i] += R[s * 6 + i] * v0;
            mc[i] += fabs(R[s * 6 + i] * v0);
            g0 += R[s * 6 + i] * w->data[i];
            m0 += fabs(R[s * 6 + i] * w->data[i]);
        }
    check_grad("const gradient", grad(g, c, 0), gc, mc, 6);
    check_grad("scalar const gradient", grad(g, c0, 0), &g0, &m0, 1);
    /* the weights point quantizes the value */
    qt_qconfig *cfg = parse_ok(g, "{\"c\":{\"weights\":\"fixed<4,2>\"}}");
    fwd(g, cfg, x, N);
    float q[6];
    qt_format f = fmt("fixed<4,2>");
    for (int i = 0; i < 6; i++) q[i] = qt_quantize1(&f, w->data[i], 0);
    for (int s = 0; s < N; s++) check_bits("quantized const", act(g, c) + s * 6, q, 6);
    qt_qconfig_free(cfg);
    /* bad dims */
    qt_attr a = dims_attr(2, (int[]){ 2, -1 });
    add_fails(g, QT_OP_CONST, "bad", NULL, 0, &a, NULL);
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Dense and matmul with an axis, batched matmul                             */
/* ------------------------------------------------------------------------ */

/* x [rows, K] of each sample; dense W [O, K] (+ b), matmul B [K, O] */
static void run_linear(qt_op op, int r, const int *D, int axis, int O, int bias, int N)
{
    char what[192], s1[64];
    snprintf(what, sizeof what, "%s %s axis %d out %d", qt_op_name(op),
             dstr(s1, sizeof s1, r, D), axis, O);
    qt_graph *g = qt_graph_new();
    input_nd(g, r, D);
    qt_attr a = attr0();
    a.out = O; a.bias = bias; a.axis = axis;
    int y = node1(g, op, "fc", 0, &a);
    int OD[QT_MAX_RANK];
    for (int i = 0; i < axis; i++) OD[i] = D[i];
    OD[axis] = O;
    expect_dims(g, y, axis + 1, OD);
    size_t rows = nprod(axis, D), K = nprod(r, D) / rows, P = rows * K;
    assert_int_equal(qt_graph_node_macs(g, y), rows * K * (size_t)O);
    qt_tensor *w = qt_graph_param(g, y, 0), *b = qt_graph_param(g, y, 1);
    fill(w->data, w->size, -1, 1);
    if (b) fill(b->data, b->size, -1, 1);
    float *x = fmalloc((size_t)N * P), *R = fmalloc((size_t)N * rows * O);
    fill(x, (size_t)N * P, -1, 1);
    fill(R, (size_t)N * rows * O, -1, 1);
    const float *out = fwd(g, NULL, x, N);
    size_t NR = (size_t)N * rows;
    double *want = dmalloc(NR * O), *gx = dmalloc(NR * K), *mx = dmalloc(NR * K);
    double *gw = dmalloc(K * O), *mw = dmalloc(K * O), *gb = dmalloc(O), *mb = dmalloc(O);
    for (size_t rr = 0; rr < NR; rr++)
        for (int o = 0; o < O; o++) {
            double acc = b ? b->data[o] : 0.0, d = R[rr * O + o];
            for (size_t k = 0; k < K; k++) {
                size_t wi = op == QT_OP_DENSE ? (size_t)o * K + k : k * O + o;
                acc += (double)x[rr * K + k] * w->data[wi];
                gx[rr * K + k] += d * w->data[wi];
                mx[rr * K + k] += fabs(d * w->data[wi]);
                gw[wi] += d * x[rr * K + k];
                mw[wi] += fabs(d * x[rr * K + k]);
            }
            want[rr * O + o] = acc;
            gb[o] += d;
            mb[o] += fabs(d);
        }
    check_close(what, out, want, NR * O, 1e-5, 1e-5);
    bwd(g, NULL, R);
    check_grad(what, grad(g, 0, -1), gx, mx, NR * K);
    check_grad(what, grad(g, y, 0), gw, mw, K * O);
    if (b) check_grad(what, grad(g, y, 1), gb, mb, O);
    free(x); free(R); free(want); free(gx); free(mx); free(gw); free(mw); free(gb); free(mb);
    qt_graph_free(g);
}

/* engine.h's intrinsic dot, rows counted over the whole output: EACH's
 * operands stored (nearest-even if stochastic), acc = add(acc, mul(w, x))
 * over k, then add(acc, bias); FINAL: products rounded, float sum rounded,
 * bias add rounded. Row q, output o: words from ((q*O + o)*(2K+2)) */
static void ref_intr_rows(const qt_format *f, int each, uint64_t seed, int id, const float *X,
                          size_t rows, size_t K, size_t O, const float *w, size_t wo, size_t wk,
                          const float *b, float *Y, uint64_t row0)
{
    for (size_t q = 0; q < rows; q++)
        for (size_t o = 0; o < O; o++) {
            uint64_t idx = ((row0 + q) * O + o) * (2 * K + 2);
            float acc = 0.0f;
            double facc = 0.0;
            for (size_t k = 0; k < K; k++) {
                float xv = X[q * K + k], wv = w[o * wo + k * wk];
                if (each) {
                    float p = qt_mul(f, operand(f, xv), operand(f, wv), intr_word(f, seed, id, idx + 2 * k));
                    acc = qt_add(f, acc, p, intr_word(f, seed, id, idx + 2 * k + 1));
                } else {
                    facc += (double)qt_quantize1(f, xv * wv, intr_word(f, seed, id, idx + 2 * k));
                }
            }
            if (!each) acc = qt_quantize1(f, (float)facc, intr_word(f, seed, id, idx + 2 * K));
            if (b)
                acc = each ? qt_add(f, acc, operand(f, b[o]), intr_word(f, seed, id, idx + 2 * K + 1))
                           : qt_quantize1(f, acc + b[o], intr_word(f, seed, id, idx + 2 * K + 1));
            Y[q * O + o] = acc;
        }
}

static void t_dense_matmul_axis(void **st)
{
    (void)st;
    rng_seed(110);
    for (int t = 0; t < 30; t++) {
        int r = rpick(1, 5), D[5];
        rdims(r, D, 1, 4);
        int axis = rpick(0, r - 1);
        run_linear(t % 2 ? QT_OP_MATMUL : QT_OP_DENSE, r, D, axis, rpick(1, 6), t % 4 == 0,
                   rpick(1, 3));
    }
    run_linear(QT_OP_DENSE, 0, NULL, 0, 3, 1, 2);           /* a scalar in */
    /* intrinsic with rows: dense over axis 2 of [2, 3, 4, 5] */
    static const char *const fmts[] = { "fixed<12,6>", "fixed<12,6,sr>" };
    enum { N = 2, ROWS = 6, K = 20, O = 3 };
    for (int fi = 0; fi < 2; fi++)
        for (int each = 0; each < 2; each++)
            for (int mm = 0; mm < 2; mm++) {
                qt_graph *g = qt_graph_new();
                input_nd(g, 4, (int[]){ 2, 3, 4, 5 });
                qt_attr a = attr0();
                a.out = O; a.bias = !mm; a.axis = 2;
                int y = node1(g, mm ? QT_OP_MATMUL : QT_OP_DENSE, "fc", 0, &a);
                qt_tensor *w = qt_graph_param(g, y, 0), *b = qt_graph_param(g, y, 1);
                fill_dyadic(w->data, w->size, 16, 1);
                if (b) fill_dyadic(b->data, b->size, 16, 1);
                float x[N * ROWS * K], want[N * ROWS * O];
                fill_dyadic(x, N * ROWS * K, 16, 2);
                char js[160];
                snprintf(js, sizeof js, "{\"fc\":{\"intrinsic\":\"%s\",\"intrinsic_mode\":\"%s\"}}",
                         fmts[fi], each ? "each" : "final");
                qt_qconfig *cfg = parse_ok(g, js);
                qt_qconfig_set_seed(cfg, 7);
                qt_format f = fmt(fmts[fi]);
                const float *out = fwd(g, cfg, x, N);
                ref_intr_rows(&f, each, 7, y, x, N * ROWS, K, O, w->data, mm ? 1 : K, mm ? O : 1,
                              b ? b->data : NULL, want, 0);
                check_bits(js, out, want, N * ROWS * O);
                qt_qconfig_free(cfg);
                qt_graph_free(g);
            }
}

/* x [xb..., M, K], B [bb..., K, O] broadcast to y [ob..., M, O] */
static void run_batched(int rxb, const int *xb, int rbb, const int *bb, int M, int K, int O,
                        int N, const char *intr, int each)
{
    char what[192], s1[64], s2[64];
    snprintf(what, sizeof what, "matmul x %s+[%d,%d] B %s+[%d,%d]%s%s", dstr(s1, sizeof s1, rxb, xb),
             M, K, dstr(s2, sizeof s2, rbb, bb), K, O, intr ? " " : "", intr ? intr : "");
    int X[QT_MAX_RANK], Bd[QT_MAX_RANK], R = rxb > rbb ? rxb : rbb, ob[QT_MAX_RANK];
    for (int i = 0; i < rxb; i++) X[i] = xb[i];
    X[rxb] = M; X[rxb + 1] = K;
    for (int i = 0; i < rbb; i++) Bd[i] = bb[i];
    Bd[rbb] = K; Bd[rbb + 1] = O;
    for (int i = 0; i < R; i++) {
        int kx = i - (R - rxb), kb = i - (R - rbb);
        int dx = kx < 0 ? 1 : xb[kx], db = kb < 0 ? 1 : bb[kb];
        ob[i] = dx > db ? dx : db;
    }
    qt_graph *g = qt_graph_new();
    input_nd(g, rxb + 2, X);
    qt_attr a = dims_attr(rbb + 2, Bd);
    a.axis = rxb;
    a.out = (rxb + rbb) % 2 ? O : 0;              /* 0 or the same as B's */
    int y = node1(g, QT_OP_MATMUL, "mm", 0, &a);
    int Y[QT_MAX_RANK];
    for (int i = 0; i < R; i++) Y[i] = ob[i];
    Y[R] = M; Y[R + 1] = O;
    expect_dims(g, y, R + 2, Y);
    size_t nxb = nprod(rxb, xb), nbb = nprod(rbb, bb), nob = nprod(R, ob);
    size_t PX = nxb * M * K, PB = nbb * K * O, PY = nob * M * O;
    assert_int_equal(qt_graph_node_macs(g, y), nob * M * K * O);
    qt_tensor *w = qt_graph_param(g, y, 0);
    assert_int_equal(w->size, PB);
    float *x = fmalloc((size_t)N * PX), *Rg = fmalloc((size_t)N * PY);
    if (intr) { fill_dyadic(w->data, PB, 16, 1); fill_dyadic(x, (size_t)N * PX, 16, 2); }
    else { fill(w->data, PB, -1, 1); fill(x, (size_t)N * PX, -1, 1); }
    fill(Rg, (size_t)N * PY, -1, 1);
    qt_qconfig *cfg = NULL;
    qt_format f;
    memset(&f, 0, sizeof f);
    if (intr) {
        char js[160];
        snprintf(js, sizeof js, "{\"mm\":{\"intrinsic\":\"%s\",\"intrinsic_mode\":\"%s\"}}",
                 intr, each ? "each" : "final");
        cfg = parse_ok(g, js);
        qt_qconfig_set_seed(cfg, 9);
        f = fmt(intr);
    }
    const float *out = fwd(g, cfg, x, N);
    double *want = dmalloc((size_t)N * PY), *gx = dmalloc((size_t)N * PX), *mx = dmalloc((size_t)N * PX);
    double *gw = dmalloc(PB), *mw = dmalloc(PB);
    float *wantq = fmalloc((size_t)N * PY);
    int co[QT_MAX_RANK];
    for (int s = 0; s < N; s++)
        for (size_t bi = 0; bi < nob; bi++) {
            unravel(bi, R, ob, co);
            size_t xi = bindex(R, co, rxb, xb), bj = bindex(R, co, rbb, bb);
            const float *xm = x + (size_t)s * PX + xi * M * K, *bm = w->data + bj * K * O;
            size_t yo = (size_t)s * PY + bi * M * O;
            if (intr)
                ref_intr_rows(&f, each, 9, y, xm, M, K, O, bm, 1, O, NULL, wantq + yo,
                              ((uint64_t)s * nob + bi) * M);
            for (int m = 0; m < M; m++)
                for (int o = 0; o < O; o++) {
                    double acc = 0.0, d = Rg[yo + m * O + o];
                    for (int k = 0; k < K; k++) {
                        acc += (double)xm[m * K + k] * bm[k * O + o];
                        size_t ix = (size_t)s * PX + xi * M * K + m * K + k, iw = bj * K * O + k * O + o;
                        gx[ix] += d * bm[k * O + o];
                        mx[ix] += fabs(d * bm[k * O + o]);
                        gw[iw] += d * xm[m * K + k];
                        mw[iw] += fabs(d * xm[m * K + k]);
                    }
                    want[yo + m * O + o] = acc;
                }
        }
    if (intr) check_bits(what, out, wantq, (size_t)N * PY);
    else check_close(what, out, want, (size_t)N * PY, 1e-5, 1e-5);
    bwd(g, cfg, Rg);
    check_grad(what, grad(g, 0, -1), gx, mx, (size_t)N * PX);
    check_grad(what, grad(g, y, 0), gw, mw, PB);
    qt_qconfig_free(cfg);
    free(x); free(Rg); free(want); free(gx); free(mx); free(gw); free(mw); free(wantq);
    qt_graph_free(g);
}

static void t_matmul_batched(void **st)
{
    (void)st;
    rng_seed(111);
    run_batched(0, NULL, 0, NULL, 3, 4, 5, 2, NULL, 0);                    /* [M,K] x [K,O] */
    run_batched(1, (int[]){ 4 }, 0, NULL, 3, 4, 2, 2, NULL, 0);            /* B shared */
    run_batched(0, NULL, 1, (int[]){ 4 }, 3, 4, 2, 2, NULL, 0);            /* x shared */
    run_batched(2, (int[]){ 2, 1 }, 1, (int[]){ 3 }, 2, 5, 3, 2, NULL, 0); /* both sides */
    run_batched(3, (int[]){ 2, 1, 3 }, 2, (int[]){ 4, 1 }, 2, 3, 2, 3, NULL, 0);
    for (int t = 0; t < 20; t++) {
        int R = rpick(0, 3), ob[3], xb[3], bb[3];
        rdims(R, ob, 1, 3);
        int rxb = rpick(0, R), rbb = rpick(0, R);
        if (rpick(0, 1)) rxb = R; else rbb = R;
        derive(R, ob, rxb, xb);
        derive(R, ob, rbb, bb);
        run_batched(rxb, xb, rbb, bb, rpick(1, 4), rpick(1, 5), rpick(1, 4), rpick(1, 3), NULL, 0);
    }
    /* the intrinsic point, matrices numbered over the output */
    for (int each = 0; each < 2; each++) {
        run_batched(2, (int[]){ 2, 1 }, 1, (int[]){ 3 }, 2, 5, 3, 2, "fixed<12,6>", each);
        run_batched(2, (int[]){ 2, 1 }, 1, (int[]){ 3 }, 2, 5, 3, 2, "fixed<12,6,sr>", each);
    }
    /* errors: K differs, batch dims do not broadcast, x not [M, K] from
     * axis, B of rank 1, out differs from B's */
    qt_graph *g = qt_graph_new();
    input_nd(g, 3, (int[]){ 2, 3, 4 });
    qt_attr a = dims_attr(2, (int[]){ 5, 6 });
    a.axis = 1;
    add_fails(g, QT_OP_MATMUL, "badk", (int[]){ 0 }, 1, &a, "K");
    a = dims_attr(3, (int[]){ 3, 4, 6 });
    a.axis = 1;
    add_fails(g, QT_OP_MATMUL, "badb", (int[]){ 0 }, 1, &a, "broadcast");
    a = dims_attr(2, (int[]){ 4, 6 });
    a.axis = 0;
    add_fails(g, QT_OP_MATMUL, "badaxis", (int[]){ 0 }, 1, &a, "axis 0");
    a = dims_attr(1, (int[]){ 4 });
    add_fails(g, QT_OP_MATMUL, "rank1", (int[]){ 0 }, 1, &a, "rank 1");
    a = dims_attr(2, (int[]){ 4, 6 });
    a.axis = 1; a.out = 5;
    add_fails(g, QT_OP_MATMUL, "badout", (int[]){ 0 }, 1, &a, "out 5");
    a = attr0();
    a.out = 3; a.axis = 3;
    add_fails(g, QT_OP_DENSE, "dax", (int[]){ 0 }, 1, &a, "axis 3");
    add_fails(g, QT_OP_MATMUL, "max", (int[]){ 0 }, 1, &a, "axis 3");
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Rank 0 through the unary ops                                              */
/* ------------------------------------------------------------------------ */

static void t_rank0_unary(void **st)
{
    (void)st;
    enum { N = 5 };
    static const qt_op ops[] = { QT_OP_RELU, QT_OP_CLIP, QT_OP_LEAKY, QT_OP_SIGMOID,
                                 QT_OP_TANH, QT_OP_DROPOUT, QT_OP_FLATTEN };
    rng_seed(112);
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        qt_graph *g = qt_graph_new();
        input_nd(g, 0, NULL);
        qt_attr a = attr0();
        a.lo = -0.5f; a.hi = 0.5f; a.alpha = ops[k] == QT_OP_DROPOUT ? 0.0f : 0.1f;
        int y = node1(g, ops[k], "u", 0, &a);
        if (ops[k] == QT_OP_FLATTEN) expect_dims(g, y, 1, (int[]){ 1 });
        else expect_dims(g, y, 0, NULL);
        float x[N] = { -2.0f, -0.25f, 0.1f, 0.75f, 3.0f }, R[N] = { 1, -1, 0.5f, 2, -3 };
        const float *out = fwd(g, NULL, x, N);
        double want[N], gx[N], mg[N];
        for (int i = 0; i < N; i++) {
            double v = x[i], d = R[i], yv, dv;
            switch (ops[k]) {
            case QT_OP_RELU: yv = v > 0 ? v : 0; dv = v > 0 ? d : 0; break;
            case QT_OP_CLIP: yv = fmin(fmax(v, -0.5), 0.5); dv = fabs(v) <= 0.5 ? d : 0; break;
            case QT_OP_LEAKY: yv = v > 0 ? v : 0.1 * v; dv = v > 0 ? d : 0.1 * d; break;
            case QT_OP_SIGMOID: yv = 1 / (1 + exp(-v)); dv = d * yv * (1 - yv); break;
            case QT_OP_TANH: yv = tanh(v); dv = d * (1 - yv * yv); break;
            default: yv = v; dv = d; break;
            }
            want[i] = yv; gx[i] = dv; mg[i] = fabs(d);
        }
        check_close(qt_op_name(ops[k]), out, want, N, 1e-6, 1e-6);
        bwd(g, NULL, R);
        check_grad(qt_op_name(ops[k]), grad(g, 0, -1), gx, mg, N);
        qt_graph_free(g);
    }
}

/* ------------------------------------------------------------------------ */
/* Broadcast shape errors                                                    */
/* ------------------------------------------------------------------------ */

static void t_broadcast_errors(void **st)
{
    (void)st;
    rng_seed(113);
    static const qt_op ops[] = { QT_OP_ADD, QT_OP_SUB, QT_OP_MUL, QT_OP_DIV };
    qt_graph *g = qt_graph_new();
    input_nd(g, 3, (int[]){ 3, 4, 5 });
    int b = src_const(g, "bee", 2, (int[]){ 3, 5 }, -1, 1);
    int c = src_const(g, "cee", 1, (int[]){ 4 }, -1, 1);
    static const char *const names[] = { "add_bad", "sub_bad", "mul_bad", "div_bad" };
    for (int k = 0; k < 4; k++) {
        add_fails(g, ops[k], names[k], (int[]){ 0, b }, 2, NULL, "'bee' 3x5");
        add_fails(g, ops[k], names[k], (int[]){ c, 0 }, 2, NULL, "'x' 3x4x5");
    }
    /* compatible: [3,4,5] and [4,1] */
    int d = src_const(g, "dee", 2, (int[]){ 4, 1 }, -1, 1);
    int y = node(g, QT_OP_SUB, "ok", (int[]){ d, 0 }, 2, NULL);
    expect_dims(g, y, 3, (int[]){ 3, 4, 5 });
    qt_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Fan-out: every op adds to its inputs' gradients                           */
/* ------------------------------------------------------------------------ */

/* x [2,3,4] -> t = tanh -> y = op(t ...); with fanout also flatten(y) and
 * flatten(t) joined by a concat, whose backward runs first and writes into
 * t's gradient before the op adds to it */
static qt_graph *fan_graph(qt_op op, int fanout, int *t_id)
{
    qt_graph *g = qt_graph_new();
    qt_graph_seed(g, 5);
    input_nd(g, 3, (int[]){ 2, 3, 4 });
    int t = node1(g, QT_OP_TANH, "t", 0, NULL);
    qt_attr a = attr0();
    int ins[2] = { t, t }, n_in = 1;
    switch (op) {
    case QT_OP_TRANSPOSE: a.rank = 3; a.perm[0] = 2; a.perm[1] = 0; a.perm[2] = 1; break;
    case QT_OP_PAD:
        a.mode = QT_PAD_EDGE;
        a.pads[0] = 1; a.pads[2] = -1; a.pads[4] = 2; a.pads[5] = 1;
        break;
    case QT_OP_PRELU: a.rank = 1; a.shape[0] = 4; break;
    case QT_OP_SOFTMAX: a.axis = 1; break;
    case QT_OP_LOGSOFTMAX: a.axis = 1; a.mode = 1; break;
    case QT_OP_RESHAPE: a.rank = 2; a.shape[0] = 6; a.shape[1] = 4; break;
    case QT_OP_CONCAT: a.axis = 2; n_in = 2; break;
    case QT_OP_DENSE: a.axis = 2; a.out = 3; a.bias = 1; break;
    case QT_OP_MATMUL: a.axis = 1; a.rank = 3; a.shape[0] = 2; a.shape[1] = 4; a.shape[2] = 5; break;
    default:                                    /* binary: op(t, t) and op(t, const) */
        n_in = 2;
        if (fanout >= 0) {
            uint64_t keep = rng_s;
            rng_seed(99);                       /* the same value in both graphs */
            ins[1] = src_const(g, "c", 1, (int[]){ 4 }, 0.5, 1.5);
            rng_s = keep;
        }
        break;
    }
    int y = node(g, op, "y", ins, n_in, &a);
    for (int k = 0; k < 2; k++) {
        qt_tensor *p = qt_graph_param(g, y, k);
        uint64_t keep = rng_s;
        rng_seed(77 + (uint64_t)k);
        if (p) fill(p->data, p->size, -1.0, 1.0);
        rng_s = keep;
    }
    if (fanout > 0) {
        int f1 = node1(g, QT_OP_FLATTEN, "f1", y, NULL);
        int f2 = node1(g, QT_OP_FLATTEN, "f2", t, NULL);
        node(g, QT_OP_CONCAT, "cat", (int[]){ f1, f2 }, 2, NULL);
    }
    *t_id = t;
    return g;
}

static void t_fanout_new_ops(void **st)
{
    (void)st;
    static const qt_op ops[] = { QT_OP_TRANSPOSE, QT_OP_PAD, QT_OP_PRELU, QT_OP_SOFTMAX,
                                 QT_OP_LOGSOFTMAX, QT_OP_RESHAPE, QT_OP_CONCAT, QT_OP_DENSE,
                                 QT_OP_MATMUL, QT_OP_ADD, QT_OP_SUB, QT_OP_MUL, QT_OP_DIV };
    enum { N = 3, PT = 24 };
    rng_seed(114);
    float x[N * PT];
    for (int i = 0; i < N * PT; i++) x[i] = (float)((rng_next() & 1 ? 1 : -1) * runif(0.3, 1.5));
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        for (int same = 0; same < (k >= 9 ? 2 : 1); same++) {     /* binary: both */
            int ta, tb, sel = same ? -1 : 0;
            qt_graph *ga = fan_graph(ops[k], sel < 0 ? -1 : 1, &ta);
            qt_graph *gb = fan_graph(ops[k], sel, &tb);
            if (sel < 0) {              /* op(t, t): rebuild with the fan-out */
                qt_graph_free(ga);
                ga = qt_graph_new();
                qt_graph_seed(ga, 5);
                input_nd(ga, 3, (int[]){ 2, 3, 4 });
                ta = node1(ga, QT_OP_TANH, "t", 0, NULL);
                int y = node(ga, ops[k], "y", (int[]){ ta, ta }, 2, NULL);
                int f1 = node1(ga, QT_OP_FLATTEN, "f1", y, NULL);
                int f2 = node1(ga, QT_OP_FLATTEN, "f2", ta, NULL);
                node(ga, QT_OP_CONCAT, "cat", (int[]){ f1, f2 }, 2, NULL);
            }
            size_t py = qt_graph_node_size(gb, qt_graph_output(gb)), row = py + PT;
            float *R = fmalloc(N * row), *Rb = fmalloc(N * py);
            fill(R, N * row, -1.0, 1.0);
            for (int s = 0; s < N; s++) memcpy(Rb + s * py, R + s * row, py * sizeof *R);
            fwd(ga, NULL, x, N);
            bwd(ga, NULL, R);
            fwd(gb, NULL, x, N);
            bwd(gb, NULL, Rb);
            const float *g1 = grad(ga, ta, -1), *g2 = grad(gb, tb, -1);
            double want[N * PT];
            for (int s = 0; s < N; s++)
                for (int i = 0; i < PT; i++)
                    want[s * PT + i] = (double)g2[s * PT + i] + R[s * row + py + i];
            char what[64];
            snprintf(what, sizeof what, "fan-out %s%s", qt_op_name(ops[k]), same ? "(t, t)" : "");
            check_close(what, g1, want, N * PT, 1e-6, 1e-5);
            free(R); free(Rb);
            qt_graph_free(ga);
            qt_graph_free(gb);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_broadcast_binary),
        cmocka_unit_test(t_div_ieee),
        cmocka_unit_test(t_intrinsic_broadcast),
        cmocka_unit_test(t_intrinsic_int_binary),
        cmocka_unit_test(t_broadcast_errors),
        cmocka_unit_test(t_prelu),
        cmocka_unit_test(t_transpose),
        cmocka_unit_test(t_pad),
        cmocka_unit_test(t_softmax_axes),
        cmocka_unit_test(t_concat_axes),
        cmocka_unit_test(t_reshape),
        cmocka_unit_test(t_const),
        cmocka_unit_test(t_dense_matmul_axis),
        cmocka_unit_test(t_matmul_batched),
        cmocka_unit_test(t_rank0_unary),
        cmocka_unit_test(t_fanout_new_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
