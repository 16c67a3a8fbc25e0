/* internal.h -- private to engine/: nodes, the op table, arenas. */
#ifndef QT_ENGINE_INTERNAL_H
#define QT_ENGINE_INTERNAL_H

#include "engine.h"

#include <math.h>
#include <string.h>

#define qt__fail qt_errorf

/* ------------------------------------------------------------------------ */
/* Arenas: bump allocation in 64-byte aligned blocks, released at once.      */
/* ------------------------------------------------------------------------ */

typedef struct qt_arena {
    struct qt_block *head;     /* most recent block first */
    size_t           used;     /* bytes handed out (for stats) */
} qt_arena;

/* zeroed, 64-byte aligned; NULL on out-of-memory */
void *qt__arena_alloc(qt_arena *a, size_t bytes);
void  qt__arena_free(qt_arena *a);

/* A tensor of the given dims from an arena (zeroed); QT_ENOMEM. */
int qt__tensor(qt_arena *a, qt_tensor *t, int ndim, int d0, int d1, int d2, int d3);
int qt__tensor_nd(qt_arena *a, qt_tensor *t, int ndim, const int *dims);
/* Set a parameter tensor's dims (no data; SHAPE does this, the graph
 * allocates). */
void qt__param_dims(qt_tensor *t, int ndim, const int *dims);

/* ------------------------------------------------------------------------ */
/* Nodes                                                                     */
/* ------------------------------------------------------------------------ */

enum { QT_P_W = 0, QT_P_B = 1, QT_P_RMEAN = 2, QT_P_RVAR = 3, QT_P_COUNT = 4 };

typedef struct qt_node {
    char      name[QT_NAME_MAX];
    qt_op     op;
    int       in[QT_MAX_INPUTS];   /* input node ids (all < this node's id) */
    int       n_in;
    qt_attr   a;
    int       rank;                /* per-sample output rank (0..QT_MAX_RANK) */
    int       shape[QT_MAX_RANK];  /* per-sample output dims (1 past rank) */
    size_t    per;                 /* per-sample output size */
    uint64_t  macs;                /* multiply-accumulates per sample */
    qt_tensor p[QT_P_COUNT];       /* parameters (size 0: none) */
    qt_tensor gp[2];               /* gradients of p[W], p[B] */
    /* per-batch state, in the activation arena */
    qt_tensor out;                 /* [N, per] */
    qt_tensor gout;                /* [N, per] gradient of out */
    qt_tensor save;                /* op scratch kept from forward to backward */
    qt_tensor save2;
} qt_node;

struct qt_graph {
    qt_node  *nodes;
    int       n, cap;
    int       output;
    int       batch;               /* planned batch size (0: none) */
    int       n_cur;               /* samples in the current forward */
    int       train;               /* the current forward is a training one */
    uint64_t  seed;
    uint64_t  step;                /* forward passes so far (dropout streams) */
    uint64_t  sample_base;         /* data-set index of the current batch's first sample */
    qt_arena  params;              /* parameters and their gradients */
    qt_arena  acts;                /* activations, gradients, scratch */
    qt_stats *stats;               /* attached statistics, or NULL */
    qt_tensor outview;             /* the output's first n_cur samples */
    float    *wq;                  /* scratch for quantized parameters */
    size_t    wq_cap;
};

/* What a node's kernel needs to know about quantization in this pass. */
typedef struct qt_nodeq {
    const qt_format *fmt[QT_QP_COUNT];   /* NULL: float */
    qt_intrinsic     mode;
    uint64_t         seed;               /* stochastic rounding */
    uint64_t         stream;             /* per node and point */
} qt_nodeq;

/* Op functions: one per op, shape + forward + backward together.
 *  SHAPE:    from the inputs' shapes and n->a, set n->shape, n->per,
 *            n->macs and the parameter tensors' sizes (dims only, in
 *            n->p[i].shape/ndim/size; the graph allocates and initialises);
 *            on a mismatch fill err naming the node and shapes, QT_EINVAL.
 *  FORWARD:  read inputs' out, write n->out for g->n_cur samples. Weights
 *            and bias come already quantized in w/b (either the parameters
 *            or a quantized copy). q->fmt[QT_QP_INTRINSIC] is applied here;
 *            the output point is applied by the caller afterwards.
 *  BACKWARD: from n->gout, ADD into each input's gout and into n->gp[];
 *            straight-through for all quantizers. */
enum { QT_ACT_SHAPE = 0, QT_ACT_FORWARD = 1, QT_ACT_BACKWARD = 2 };

typedef struct qt_opctx {
    qt_graph        *g;
    qt_node         *n;
    const qt_nodeq  *q;
    const float     *w;      /* weights to use (quantized copy or p[W]) */
    const float     *b;      /* bias to use */
    qt_error        *err;
} qt_opctx;

typedef int (*qt_opfn)(qt_opctx *c, int action);

typedef struct qt_opdef {
    const char *name;
    qt_opfn     fn;
    int         min_in, max_in;
    int         has_weights;     /* weights/bias quantization points apply */
} qt_opdef;

const qt_opdef *qt__op(qt_op op);

/* the op functions (ops_*.c) */
int qt__op_input(qt_opctx *c, int action);
int qt__op_conv(qt_opctx *c, int action);
int qt__op_dense(qt_opctx *c, int action);
int qt__op_matmul(qt_opctx *c, int action);
int qt__op_maxpool(qt_opctx *c, int action);
int qt__op_avgpool(qt_opctx *c, int action);
int qt__op_gap(qt_opctx *c, int action);
int qt__op_batchnorm(qt_opctx *c, int action);
int qt__op_relu(qt_opctx *c, int action);
int qt__op_clip(qt_opctx *c, int action);
int qt__op_leaky(qt_opctx *c, int action);
int qt__op_sigmoid(qt_opctx *c, int action);
int qt__op_tanh(qt_opctx *c, int action);
int qt__op_softmax(qt_opctx *c, int action);
int qt__op_add(qt_opctx *c, int action);
int qt__op_mul(qt_opctx *c, int action);
int qt__op_concat(qt_opctx *c, int action);
int qt__op_flatten(qt_opctx *c, int action);
int qt__op_reshape(qt_opctx *c, int action);
int qt__op_dropout(qt_opctx *c, int action);
int qt__op_sub(qt_opctx *c, int action);
int qt__op_div(qt_opctx *c, int action);
int qt__op_prelu(qt_opctx *c, int action);
int qt__op_transpose(qt_opctx *c, int action);
int qt__op_pad(qt_opctx *c, int action);
int qt__op_logsoftmax(qt_opctx *c, int action);
int qt__op_gmp(qt_opctx *c, int action);
int qt__op_const(qt_opctx *c, int action);

/* helpers for op functions */
static inline qt_node *qt__in(qt_opctx *c, int i) { return &c->g->nodes[c->n->in[i]]; }
int qt__shape_fail(qt_opctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* set a node's per-sample dims (and per); the legacy C,H,W form */
void qt__set_dims(qt_node *n, int rank, const int *dims);
void qt__set_chw(qt_node *n, int c, int h, int w);
/* dims as text ("3x4x5", "scalar") into buf; returns buf */
const char *qt__dims_str(char *buf, size_t cap, int rank, const int *dims);
/* conv/pool: check the spatial attributes that do not depend on the input
 * (kernel, and stride/dilation/pad entries past the spatial rank, signs)
 * and give the spatial rank; a shape error naming the node */
int qt__spatial_attrs(qt_opctx *c, int *rank);
/* n ints joined by sep ("1,2,3") into buf; returns buf */
const char *qt__ints(char *buf, size_t cap, const int *v, int n, char sep);

/* a scratch tensor in the activation arena, allocated on first use for the
 * planned batch (count floats per sample); QT_ENOMEM */
int qt__scratch(qt_opctx *c, qt_tensor *t, size_t per_sample);

/* the random word for stochastic rounding at the intrinsic point */
static inline uint32_t qt__intr_rand(const qt_nodeq *q, uint64_t index)
{
    return q->fmt[QT_QP_INTRINSIC]->round == QT_SR
        ? qt_rand32(q->seed, q->stream ^ QT_QP_INTRINSIC, index) : 0;
}

/* an operand or constant in format f: f's own rounding, except that a
 * stochastic format stores its operands rounded to nearest-even (random
 * word 0 would round every inexact operand up: engine.h, qt_intrinsic) */
static inline float qt__operand(const qt_format *f, float v)
{
    if (f->round != QT_SR) return qt_quantize1(f, v, 0);
    qt_format n = *f;
    n.round = QT_RNE;
    return qt_quantize1(&n, v, 0);
}

/* ---- intrinsic EACH on fixed point as integers (intr_fixed.c) ---- */

/* a fixed/ufixed intrinsic format the integer kernel handles */
typedef struct qt_ifix {
    int     F;            /* fractional bits, 0..30 */
    int     round;        /* qt_round */
    int32_t lo, hi;       /* the integer range */
    float   scale, iscale;/* 2^F, 2^-F */
    int     narrow;       /* the 16-bit kernels apply (qt__ifix_dot16) */
} qt_ifix;

/* 1 (and *k filled) if EACH in f can run as integers (see intr_fixed.c) */
int  qt__ifix_of(const qt_format *f, qt_ifix *k);
/* operands: x rounded as qt__operand does, as integers at F bits into q
 * (tmp: n floats of scratch); QT_ERANGE if one is NaN (then the caller
 * runs the reference loops) */
int  qt__ifix_operands(const qt_format *f, const qt_ifix *k, const float *x, int32_t *q,
                       size_t n, float *tmp);
/* the same without scratch, in parallel over stack chunks (call it outside
 * parallel regions) */
int  qt__ifix_operands_par(const qt_format *f, const qt_ifix *k, const float *x, int32_t *q,
                           size_t n);
/* acc[j], j < n: through taps k < K in order, acc = sat(acc +
 * sat(rnd(w[k*ws] * col[k*ld + j]))); stochastic rounding draws lane j's
 * word for tap k at idx0 + j*lstride + 2k with key */
void qt__ifix_dot(const qt_ifix *k, int32_t *acc, size_t n, const int32_t *w, size_t ws,
                  size_t K, const int32_t *col, size_t ld, qt_rkey key, uint64_t idx0,
                  uint64_t lstride);
/* the same in a deterministic mode with tap k's operands at x[off[k] + j]
 * (the direct layout of a stride-1 conv: a tap is a fixed offset into the
 * padded input) */
void qt__ifix_dot_taps(const qt_ifix *k, int32_t *acc, size_t n, const int32_t *w, size_t K,
                       const int32_t *x, const size_t *off);
/* y[j*ys] = sat(acc[j] + *bias) as a float (bias may be NULL) */
void qt__ifix_finish(const qt_ifix *k, const int32_t *acc, size_t n, const int32_t *bias,
                     float *y, size_t ys);
/* the same three with 16-bit operands and sums, when k->narrow (a
 * deterministic mode: no random words); the same bits */
int  qt__ifix_operands16_par(const qt_format *f, const qt_ifix *k, const float *x, int16_t *q,
                             size_t n);
void qt__ifix_dot16(const qt_ifix *k, int16_t *acc, size_t n, const int16_t *w, size_t ws,
                    size_t K, const int16_t *col, size_t ld);
void qt__ifix_dot16_taps(const qt_ifix *k, int16_t *acc, size_t n, const int16_t *w, size_t K,
                         const int16_t *x, const size_t *off);
void qt__ifix_finish16(const qt_ifix *k, const int16_t *acc, size_t n, const int16_t *bias,
                       float *y, size_t ys);
/* element-wise ops on operand integers, y[j] as a float:
 *   QT_IFIX_ADD  sat(a[j] + b[j])      QT_IFIX_SUB  sat(a[j] - b[j])
 *   QT_IFIX_MUL  sat(rnd(a[j] * b[j])), stochastic word idx0 + j with key
 * (qt_add(f, a, b), qt_add(f, a, -b), qt_mul(f, a, b) on operands in f:
 * a sum of two values in the format is exact, so only saturates) */
enum { QT_IFIX_ADD = 0, QT_IFIX_SUB = 1, QT_IFIX_MUL = 2 };
void qt__ifix_elem(const qt_ifix *k, int op, const int32_t *a, const int32_t *b, size_t n,
                   float *y, qt_rkey key, uint64_t idx0);
/* acc through q[j], j < n in order: acc = sat(acc + q[j]) (a chain of
 * qt_add on operands: exact sums, whatever their random words) */
int32_t qt__ifix_sum(const qt_ifix *k, int32_t acc, const int32_t *q, size_t n);
/* elements per stack chunk of the element-wise integer paths */
#define QT_IFIX_CHUNK 512
/* tests: 1 makes every op run its reference intrinsic loops */
extern int qt__intr_force_ref;

/* ---- direct float convolution (conv_direct.c; ops_conv.c plans it) ---- */

/* one layer (one group) on prepared inputs: C channel planes cstride
 * floats apart, tap t of a channel at lane j reads plane[j + off[t]]; the
 * lane j = oy*Wq + ox is output (oy, ox) when ox < Wo */
typedef struct qt_dconv {
    int        C, O, kk;     /* input channels, output channels, taps */
    const int *off;          /* kk tap offsets */
    size_t     cstride;      /* floats per prepared channel */
    size_t     lanes;        /* (Ho-1)*Wq + Wo */
    int        Wq, Wo, Ho;   /* lane row width, valid columns, rows */
    /* filled by qt__dconv_plan */
    int        isa, ob, kern, blk;   /* instruction set, channels and lanes per block */
} qt_dconv;

#define QT_DCONV_TILE  384   /* floats of a kernel's output tile */
#define QT_DCONV_SLACK 128   /* floats a kernel may read past the last plane */

/* tests: -1 the best the CPU has, else 0 portable, 1 AVX2, 2 AVX-512 */
extern int qt__conv_isa;
/* tests: 0 chooses by shape, 1 forces the im2col/sgemm path, 2 the direct one */
extern int qt__conv_force;
int    qt__dconv_isa(void);
void   qt__dconv_plan(qt_dconv *d, int isa);
/* floats of the packed weights */
size_t qt__dconv_wsize(const qt_dconv *d);
/* pack w[o*so + c*sc + t] (o < O, c < C, t < kk; flip: tap kk-1-t) */
void   qt__dconv_pack(const qt_dconv *d, const float *w, size_t so, size_t sc, int flip,
                      float *wp);
/* floats per vector of the instruction set */
int    qt__dconv_vl(int isa);
/* dw[o*C*kk + c*kk + t] += the sum over ns samples (x, dy advanced by xss,
 * dyss) and nvec vectors of lanes j of dy[o*dys + j] * x[c*cstride + off[t]
 * + j] (dy holds O rows, zero on unused lanes; blocks of 4 rows are read,
 * past O up to a multiple of 4) */
void   qt__dconv_dw(const qt_dconv *d, const float *x, const float *dy, size_t dys,
                    size_t nvec, size_t ns, size_t xss, size_t dyss, float *dw);
/* y[o*ystride + oy*Wo + ox] = the sums (+ bias[o]), or += them (accumulate) */
void   qt__dconv_run(const qt_dconv *d, const float *x, const float *wp, const float *bias,
                     float *y, size_t ystride, int accumulate, float *tile);

/* the output has the input's dims */
static inline void qt__same_shape(qt_opctx *c, const qt_node *x)
{
    qt__set_dims(c->n, x->rank, x->shape);
}

/* quantize an activation-sized buffer with node point p (no-op if float) */
void qt__quantize_point(const qt_nodeq *q, qt_qpoint p, float *x, size_t n,
                        uint64_t offset);

/* an op without an intrinsic path under an intrinsic format (either
 * semantics): quantize its result, as TensorQuant does */
static inline void qt__intr_out(qt_opctx *c)
{
    if (c->q && c->q->fmt[QT_QP_INTRINSIC])
        qt__quantize_point(c->q, QT_QP_INTRINSIC, c->n->out.data,
                           (size_t)c->g->n_cur * c->n->per, c->g->sample_base * c->n->per);
}

/* statistics (stats.c) */
uint64_t qt__stats_add(qt_stats *st, int node, qt_stat_kind k, const float *x,
                       const float *q, size_t n);
void qt__stats_zeros_q(qt_stats *st, int node, qt_stat_kind k, const float *q,
                       size_t n, uint64_t zeros_before);

/* the formats of one node under a configuration (qconfig.c) */
void qt__qconfig_node(const qt_qconfig *c, int node, qt_nodeq *q);

#endif
