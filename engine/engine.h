/*
 * engine.h -- qtune's quantization-simulating network engine.
 *
 * The engine runs a network of named nodes forward and backward in float32
 * while simulating, at chosen quantization points, the number formats of
 * quant/. It is what every tuning candidate is measured with.
 *
 *   qt_graph *g;
 *   qt_error err;
 *   qt_zoo_build("lenet5", &g, &err);            // or qt_checkpoint_load()
 *   qt_dataset *test;
 *   qt_dataset_fashion_mnist(QT_SPLIT_TEST, &test, &err);
 *   qt_qconfig *cfg;
 *   qt_qconfig_parse(g, "{\"default\":{\"output\":\"fixed<8,4>\"}}", &cfg, &err);
 *   qt_metrics m;
 *   qt_evaluate(g, cfg, test, NULL, &m);          // top-1, top-5, loss
 *
 * Ownership: a function named *_new or *_build or *_load gives the caller a
 * new object to release with the matching *_free; everything returned by an
 * accessor is borrowed from its owner and lives as long as it does. Errors:
 * functions return a qt_rc (quant.h) and fill the caller's qt_error.
 *
 * Threads: a graph is used by one thread at a time (its activations live in
 * it); the kernels use OpenMP inside. Two threads evaluate in parallel with
 * two graphs (qt_graph_clone shares nothing). Datasets and configurations
 * are read-only after construction and may be shared across threads.
 *
 * Layout: tensors are float32 and row-major. An activation is [N, d0, d1,
 * ...]: the batch, then the node's per-sample dims (rank 0 to QT_MAX_RANK).
 * Zoo models use [N, C, H, W] and [N, F]. Ops that see channels and spatial
 * dims (conv, pools, batchnorm) take the channel axis from their attributes;
 * per-sample dims before it are folded into the batch, so a graph imported
 * from ONNX can also run a whole ONNX tensor as one sample (qt_onnx_opts).
 */
#ifndef QT_ENGINE_H
#define QT_ENGINE_H

#include "quant.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QT_ENGINE_VERSION 2      /* bump when results of a kernel change (2: direct fp32 convolution) */
#define QT_NAME_MAX       64     /* node names, including the NUL */
#define QT_MAX_INPUTS     8
#define QT_MAX_DIMS       8      /* dims of a tensor, batch included */
#define QT_MAX_RANK       (QT_MAX_DIMS - 1)   /* per-sample dims */

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct qt_tensor {
    float *data;        /* 64-byte aligned; owned by the graph's arena */
    int    ndim;        /* 1..QT_MAX_DIMS */
    int    shape[QT_MAX_DIMS]; /* dims (1 past ndim); shape[0] is the batch
                                  for activations */
    size_t size;        /* product of the dims */
} qt_tensor;

/* ------------------------------------------------------------------------ */
/* Operators. Persisted in checkpoints and the store: never renumber.        */
/* ------------------------------------------------------------------------ */

typedef enum qt_op {
    QT_OP_INPUT     = 0,   /* the graph's input */
    QT_OP_CONV      = 1,   /* 1-D, 2-D or 3-D convolution: stride, padding,
                              dilation, groups; W is [out, C/groups, k...] */
    QT_OP_DENSE     = 2,   /* y = x W^T + b, W is [out, in] (see axis) */
    QT_OP_MATMUL    = 3,   /* y = x B, B a parameter (see rank/shape) */
    QT_OP_MAXPOOL   = 4,   /* 1-D, 2-D or 3-D, with dilation and ceil mode */
    QT_OP_AVGPOOL   = 5,
    QT_OP_GAP       = 6,   /* global average pool over the dims after the
                              channel axis: [C,H,W] -> [C] (mode 1: [C,1,1]) */
    QT_OP_BATCHNORM = 7,   /* per channel (axis); training or inference */
    QT_OP_RELU      = 8,
    QT_OP_CLIP      = 9,   /* clamp to [lo, hi] (relu6 = clip 0..6) */
    QT_OP_LEAKY     = 10,  /* leaky relu, slope alpha */
    QT_OP_SIGMOID   = 11,
    QT_OP_TANH      = 12,
    QT_OP_SOFTMAX   = 13,  /* along axis (the logits stay apart) */
    QT_OP_ADD       = 14,  /* element-wise with numpy broadcasting of the
                              per-sample dims (aligned from the right) */
    QT_OP_MUL       = 15,  /* like add */
    QT_OP_CONCAT    = 16,  /* along axis; the other dims must agree */
    QT_OP_FLATTEN   = 17,  /* [N,...] -> [N, prod] */
    QT_OP_RESHAPE   = 18,  /* to a given per-sample shape (rank, shape) */
    QT_OP_DROPOUT   = 19,  /* inverted dropout in training, identity else */
    QT_OP_SUB       = 20,  /* a - b, like add */
    QT_OP_DIV       = 21,  /* a / b, like add (IEEE: x/0 is inf or NaN) */
    QT_OP_PRELU     = 22,  /* x < 0 ? slope x : x; the slope is the weights
                              parameter (dims rank/shape), broadcast to x */
    QT_OP_TRANSPOSE = 23,  /* output axis i is input axis perm[i] */
    QT_OP_PAD       = 24,  /* pads per axis (negative: crop); constant,
                              reflect or edge */
    QT_OP_LOGSOFTMAX= 25,  /* log of softmax, along axis */
    QT_OP_GMP       = 26,  /* global max pool, like gap */
    QT_OP_CONST     = 27,  /* a constant per-sample tensor (the weights
                              parameter, dims rank/shape), the same for
                              every sample; no inputs */
    QT_OP_COUNT
} qt_op;

const char *qt_op_name(qt_op op);

/* Attributes of a node, by op (unused fields zero; zero means the default).
 *
 * Spatial ops (conv, maxpool, avgpool): the spatial rank S (1..3) is the
 * number of leading kernel entries >= 1. The input's last S per-sample dims
 * are spatial, the one before them is the channel axis, and any dims before
 * that are folded into the batch. kernel, stride and dilation list the
 * spatial dims in order (2-D: h, w); pad lists the S begins then the S ends
 * (2-D: top, left, bottom, right), as ONNX does.
 *
 * axis (per-sample, counted from 0):
 *   softmax, logsoftmax: the axis normalised over (mode 1: all axes from
 *       axis on, taken as one, as ONNX opsets < 13 do);
 *   concat: the axis joined along;
 *   batchnorm, gap, gmp: the channel axis (dims before it fold into the
 *       batch, dims after it are reduced over / normalised together);
 *   dense, matmul: the per-sample dims before axis are kept as rows and the
 *       dims from axis on are the contracted features (0: one row of all).
 * matmul's B is [in, out] when rank is 0; else B has dims shape[0..rank)
 *   = [batch..., K, out] with rank >= 2, x's dims from axis on are [M, K]
 *   batches broadcast as numpy does, and y is [batch..., M, out].
 * rank, shape: reshape's target per-sample dims (rank 0: the legacy form,
 *   shape[0..2] as C, H, W with 0 read as 1); input's, const's and prelu's
 *   per-sample dims (const: the parameter's; prelu: the slope's).
 * perm: transpose, rank entries (a permutation of 0..rank-1).
 * pads: pad, the begins of every per-sample axis, then the ends. */
typedef enum qt_padmode { QT_PAD_CONSTANT = 0, QT_PAD_REFLECT = 1, QT_PAD_EDGE = 2 } qt_padmode;

typedef struct qt_attr {
    int   kernel[3];       /* conv/pool: kernel size per spatial dim */
    int   stride[3];       /* conv/pool (0 means 1) */
    int   pad[6];          /* conv/pool: begins, then ends */
    int   dilation[3];     /* conv, maxpool (0 means 1) */
    int   groups;          /* conv */
    int   out;             /* conv: output channels; dense/matmul: outputs */
    int   bias;            /* conv/dense: has a bias */
    int   ceil_mode;       /* pool */
    int   count_pad;       /* avgpool: divide by the full window */
    int   axis;            /* see above */
    int   mode;            /* softmax/logsoftmax: 1 = from axis on; gap/gmp:
                              1 = keep the reduced dims as 1s; pad: qt_padmode */
    int   rank;            /* see above */
    int   shape[QT_MAX_RANK];
    int   perm[QT_MAX_RANK];
    int   pads[2 * QT_MAX_RANK];
    float alpha;           /* leaky: slope; dropout: drop probability */
    float lo, hi;          /* clip */
    float eps, momentum;   /* batchnorm */
    float value;           /* pad: the constant */
} qt_attr;

/* ------------------------------------------------------------------------ */
/* Graphs of named nodes                                                    */
/* ------------------------------------------------------------------------ */

typedef struct qt_graph qt_graph;

/* A new empty graph; NULL on out-of-memory. */
qt_graph *qt_graph_new(void);
void      qt_graph_free(qt_graph *g);

/* The input node: per-sample shape C,H,W (use F,1,1 for flat features).
 * Returns the node id (>= 0) or a negative qt_rc. */
int qt_graph_input(qt_graph *g, const char *name, int c, int h, int w,
                   qt_error *err);
/* The input node with any per-sample dims (rank 0..QT_MAX_RANK, dims >= 1). */
int qt_graph_input_nd(qt_graph *g, const char *name, int rank, const int *dims,
                      qt_error *err);

/* Add a node of op with the given inputs (node ids) and attributes; the
 * name must be unique and non-empty (NULL: "<op><id>"). Shapes are inferred
 * at once; a mismatch is QT_EINVAL with a message naming the node and the
 * shapes. Parameters are created and initialised (He/Glorot from the
 * graph's seed). Returns the node id or a negative qt_rc. */
int qt_graph_add(qt_graph *g, qt_op op, const char *name, const int *inputs,
                 int n_inputs, const qt_attr *attr, qt_error *err);

/* The output node (default: the last node added). */
int qt_graph_set_output(qt_graph *g, int node);
int qt_graph_output(const qt_graph *g);

int         qt_graph_nodes(const qt_graph *g);
int         qt_graph_find(const qt_graph *g, const char *name);   /* -1 */
const char *qt_graph_node_name(const qt_graph *g, int node);
qt_op       qt_graph_node_op(const qt_graph *g, int node);
const qt_attr *qt_graph_node_attr(const qt_graph *g, int node);
int         qt_graph_node_inputs(const qt_graph *g, int node, const int **ids);
/* Per-sample output dims of a node; returns the rank. */
int         qt_graph_node_dims(const qt_graph *g, int node, int dims[QT_MAX_RANK]);
/* The same as C, H, W: ranks below 3 padded with 1s (dense: F, 1, 1); for
 * ranks above 3 the leading dims are multiplied into C. */
void        qt_graph_node_shape(const qt_graph *g, int node, int shape[3]);
/* Per-sample output size of a node (the product of its dims). */
size_t      qt_graph_node_size(const qt_graph *g, int node);

/* Parameters: which = 0 weights, 1 bias, 2 batchnorm running mean,
 * 3 running variance. Borrowed; NULL when the node has none. */
qt_tensor  *qt_graph_param(qt_graph *g, int node, int which);
size_t      qt_graph_param_count(const qt_graph *g);   /* trainable floats */

/* Multiply-accumulates per sample of the whole graph and of one node. */
uint64_t    qt_graph_macs(const qt_graph *g);
uint64_t    qt_graph_node_macs(const qt_graph *g, int node);

/* A content hash of a graph: its nodes (names, ops, inputs, dims,
 * attributes) and every parameter, as 32 hex digits. Two graphs with the
 * same hash compute the same function. */
void        qt_graph_hash(const qt_graph *g, char out[33]);

/* A deep copy (parameters included) for another thread. */
qt_graph   *qt_graph_clone(const qt_graph *g);

/* Seed for parameter initialisation, dropout and shuffling. */
void        qt_graph_seed(qt_graph *g, uint64_t seed);

/* ------------------------------------------------------------------------ */
/* Quantization configurations                                              */
/* ------------------------------------------------------------------------ */

/* Where a format applies in a node (persisted: never renumber). */
typedef enum qt_qpoint {
    QT_QP_WEIGHTS      = 0,  /* parameters as stored (batchnorm: gamma) */
    QT_QP_BIAS         = 1,  /* bias (batchnorm: beta) */
    QT_QP_OUTPUT       = 2,  /* extrinsic: the node's result */
    QT_QP_INTRINSIC    = 3,  /* inside the kernel: see qt_intrinsic */
    QT_QP_GRAD_OUTPUT  = 4,  /* training: gradient arriving at the output */
    QT_QP_GRAD_WEIGHTS = 5,  /* training: weight (and bias) gradients */
    QT_QP_ACCUMULATOR  = 6,  /* training: the weights after each update */
    QT_QP_COUNT
} qt_qpoint;

const char *qt_qpoint_name(qt_qpoint p);

/* Semantics of the intrinsic point.
 *  EACH:  bit-true W-bit hardware. The kernel's operands (inputs, weights,
 *         bias) are quantized to the format (see "Operands" below), then
 *         every product and every partial sum is rounded and saturated with
 *         qt_mul/qt_add, summed in the stated order: for each output
 *         element, acc = 0, then over input channel, kernel row, kernel
 *         column (conv) or input feature (dense/matmul) ascending,
 *         acc = add(acc, mul(w, x)); finally acc = add(acc, bias).
 *         Pooling: sums (avg) the same way, then one rounded division; max
 *         is exact.
 *  FINAL: TensorQuant's semantics (REFERENCES.md 1(c)): products quantized,
 *         the dot product summed in float and quantized once, then the bias
 *         add, the normalisation and the activation each quantized.
 *  Operands: operands and per-channel constants (EACH's operands, and
 *         batchnorm's constants in either mode, ops_pool.c) are rounded to
 *         the format with its own rounding mode, except that a stochastic
 *         format (sr) stores them rounded to nearest-even: they are values
 *         held in the format's storage, and the rounding that made them is
 *         not part of the unit's arithmetic (random word 0 would round every
 *         inexact operand up). Only the products, partial sums and the other
 *         per-element roundings documented with indexed random words are
 *         stochastic. */
typedef enum qt_intrinsic { QT_INTR_EACH = 0, QT_INTR_FINAL = 1 } qt_intrinsic;

typedef struct qt_qconfig qt_qconfig;

/* Parse a configuration against a graph. JSON:
 *   { "default": { "output": "fixed<8,4>", ... },
 *     "conv*":   { "weights": "fixed<4,3>", "intrinsic": "fixed<16,8>",
 *                  "intrinsic_mode": "each" },
 *     "fc4":     { "output": "none" } }
 * Keys other than "default" are node names or globs (* ? [..]); later
 * matches override earlier ones point by point, exact names override globs.
 * Formats are text or JSON forms (quant.h). A key that matches no node is
 * QT_EINVAL with a message that lists the node names; an unknown point or
 * malformed format names the key and the point. New object. */
int  qt_qconfig_parse(const qt_graph *g, const char *json, qt_qconfig **out,
                      qt_error *err);
int  qt_qconfig_from_json(const qt_graph *g, const json_t *j, qt_qconfig **out,
                          qt_error *err);
/* The empty configuration: everything float. */
qt_qconfig *qt_qconfig_new(const qt_graph *g);
void qt_qconfig_free(qt_qconfig *c);
/* Set or clear (f == NULL) one point of one node. */
int  qt_qconfig_set(qt_qconfig *c, int node, qt_qpoint p, const qt_format *f);
/* Borrowed; NULL when the point is float. */
const qt_format *qt_qconfig_get(const qt_qconfig *c, int node, qt_qpoint p);
qt_intrinsic qt_qconfig_intrinsic_mode(const qt_qconfig *c, int node);
void qt_qconfig_set_intrinsic_mode(qt_qconfig *c, int node, qt_intrinsic m);
/* Seed for stochastic rounding (default 0). */
void qt_qconfig_set_seed(qt_qconfig *c, uint64_t seed);
/* Canonical JSON (every set point, per node, by name): new reference. */
json_t *qt_qconfig_to_json(const qt_qconfig *c, const qt_graph *g);

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct qt_dataset qt_dataset;

typedef struct qt_norm {
    float scale;        /* pixel values are multiplied by scale first (1/255) */
    float mean, std;    /* then (v - mean) / std */
} qt_norm;

typedef enum qt_split {
    QT_SPLIT_TRAIN = 0,     /* training images minus the validation split */
    QT_SPLIT_VAL   = 1,     /* carved from the training set by seed */
    QT_SPLIT_TEST  = 2,     /* the test set: never used for tuning */
    QT_SPLIT_FULLTRAIN = 3  /* all training images */
} qt_split;

/* Read an IDX image file and its label file (gzip or not) and normalise.
 * A missing file is QT_ENOENT naming the path (and, for the default
 * Fashion-MNIST location, the Debian package dataset-fashion-mnist). */
int qt_dataset_load_idx(const char *images, const char *labels,
                        const qt_norm *norm, qt_dataset **out, qt_error *err);

/* Fashion-MNIST from /usr/share/datasets/fashion-mnist (or $QT_DATA_DIR),
 * normalised with scale 1/255, mean 0.2860, std 0.3530. VAL is the last
 * val_count (10000) images of a seeded permutation of the training set,
 * TRAIN the rest. */
int qt_dataset_fashion_mnist(qt_split split, qt_dataset **out, qt_error *err);

/* A subset: rows [start, start+count) of a seeded permutation (seed 0: the
 * identity order). New object sharing nothing with d. */
int qt_dataset_subset(const qt_dataset *d, uint64_t seed, size_t start,
                      size_t count, qt_dataset **out, qt_error *err);
/* The images idx[0..count) of d in that order (repeats allowed); QT_EINVAL
 * names an index out of range. New object sharing nothing with d. */
int qt_dataset_select(const qt_dataset *d, const size_t *idx, size_t count,
                      qt_dataset **out, qt_error *err);
void qt_dataset_free(qt_dataset *d);

size_t       qt_dataset_count(const qt_dataset *d);
void         qt_dataset_shape(const qt_dataset *d, int shape[3]);  /* C,H,W */
/* The classes: the largest label + 1, at least 2 (Fashion-MNIST: 10); a
 * subset keeps its parent's. A model needs at least as many outputs;
 * top-1/top-5 and the loss are taken over the first `classes` of them. */
int          qt_dataset_classes(const qt_dataset *d);
/* Set them, e.g. a test file that lacks the top classes to its training
 * split's count (QT_EINVAL: not above every label, or outside 2..256). */
int          qt_dataset_set_classes(qt_dataset *d, int classes, qt_error *err);
const float *qt_dataset_images(const qt_dataset *d);   /* count x C*H*W */
const uint8_t *qt_dataset_labels(const qt_dataset *d);
/* Content hash of images and labels (FNV-1a 64), for cache keys. */
uint64_t     qt_dataset_hash(const qt_dataset *d);

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

/* Forward one batch of n samples (the graph plans its activations for the
 * largest batch seen). cfg may be NULL (float). train: batchnorm uses batch
 * statistics, dropout is active. The output node's activations for these
 * n samples are returned (borrowed, valid until the next call; shape[0] is
 * n). */
int qt_forward(qt_graph *g, const qt_qconfig *cfg, const float *x, int n,
               int train, const qt_tensor **out, qt_error *err);

/* Prefix reuse: forward one batch from node `from` on, the nodes before it
 * keeping the activations they hold (from an earlier forward of the same
 * samples, or set with qt_graph_set_activation). from = 0 is qt_forward;
 * x is always the batch's input. The result is the same as qt_forward's
 * when those activations are what qt_forward would have computed for this
 * configuration (statistics, when attached, see only the nodes run). */
int qt_forward_from(qt_graph *g, const qt_qconfig *cfg, int from, const float *x, int n,
                    int train, const qt_tensor **out, qt_error *err);
/* Set node's activations for a batch of n samples (node >= 1; x holds
 * n x qt_graph_node_size floats). */
int qt_graph_set_activation(qt_graph *g, int node, const float *x, int n, qt_error *err);
/* The nodes 1..k-1 whose activations the nodes k.. read (and the output
 * node when it is before k): what a forward from k needs besides the
 * input. Writes up to max of them to nodes, ascending; returns how many
 * there are. */
int qt_graph_frontier(const qt_graph *g, int k, int *nodes, int max);

/* Backward from any gradient of the output node (n x out-features), after
 * qt_forward with the same n. Parameter gradients are overwritten with this
 * batch's (summed over its samples). Quantizers pass gradients straight
 * through; nodes whose derivative uses their output (sigmoid, tanh,
 * softmax) use the output as quantized by the output point. */
int qt_backward(qt_graph *g, const qt_qconfig *cfg, const float *dout,
                qt_error *err);

/* The gradient with respect to a node's output or a parameter after
 * qt_backward (borrowed). which: -1 activation, 0 weights, 1 bias. */
const qt_tensor *qt_graph_grad(const qt_graph *g, int node, int which);
/* A node's activations after qt_forward (borrowed). */
const qt_tensor *qt_graph_activation(const qt_graph *g, int node);

/* Softmax cross-entropy of logits against labels: returns the mean loss and,
 * when dlogits is not NULL, its gradient (n x classes). */
double qt_softmax_xent(const float *logits, const uint8_t *labels, int n,
                       int classes, float *dlogits);

/* ------------------------------------------------------------------------ */
/* Evaluation and statistics                                                 */
/* ------------------------------------------------------------------------ */

typedef struct qt_metrics {
    double top1, top5;   /* fractions in [0,1] */
    double loss;         /* mean cross-entropy */
    size_t count;        /* images evaluated */
    size_t nan_count;    /* images whose logits held NaN or inf */
    int    stopped;      /* 1 if the callback stopped it early */
} qt_metrics;

/* Called after each batch with the running metrics and the per-image
 * correctness so far (correct[i] for image i < m->count); return non-zero
 * to stop. */
typedef int (*qt_batch_cb)(void *user, const qt_metrics *m,
                           const uint8_t *correct);

typedef struct qt_eval_opts {
    int         batch;      /* default 256 */
    int         first_batch;  /* > 0: the first first_images images go in */
    size_t      first_images; /* batches of first_batch (an early stop looks
                                 more often where it is likely to stop) */
    size_t      limit;      /* evaluate the first limit images (0: all) */
    qt_batch_cb cb;
    void       *user;
    uint8_t    *correct;    /* optional out: per-image top-1 correctness */
    float      *margin;     /* optional out: per image, its label's logit minus
                               the largest other logit (> 0: right with room to
                               spare; < 0: wrong; -inf: NaN or inf logits) */
    /* Optional prefix reuse, around each batch's forward (start: the
     * batch's first image, n its images): resume may restore activations
     * (qt_graph_set_activation) and returns the node to run from (0: all);
     * saved is called after the forward with that node. */
    int       (*resume)(void *user, qt_graph *g, size_t start, int n);
    void      (*saved)(void *user, qt_graph *g, size_t start, int n, int from);
    void       *prefix_user;
} qt_eval_opts;

int qt_evaluate(qt_graph *g, const qt_qconfig *cfg, const qt_dataset *d,
                const qt_eval_opts *opts, qt_metrics *m, qt_error *err);

/* ------------------------------------------------------------------------ */
/* Tensor statistics                                                         */
/* ------------------------------------------------------------------------ */

/* What a statistic is about, per node. */
typedef enum qt_stat_kind {
    QT_ST_ACT         = 0,   /* the node's output activations */
    QT_ST_WEIGHTS     = 1,   /* its weights (batchnorm: gamma) */
    QT_ST_BIAS        = 2,
    QT_ST_GRAD_ACT    = 3,   /* gradient arriving at its output (training) */
    QT_ST_GRAD_WEIGHTS= 4,   /* weight gradients (training) */
    QT_ST_KINDS
} qt_stat_kind;

#define QT_HIST_OCT   96      /* octaves covered: 2^-64 .. 2^32 */
#define QT_HIST_SUB   4       /* bins per octave */
#define QT_HIST_BINS  (QT_HIST_OCT * QT_HIST_SUB + 2)

/* Running statistics of one tensor over everything seen. Values are the
 * float values before the point's quantization; zeros_q counts exact zeros
 * after it (equal to zeros when the point is float). */
typedef struct qt_tstats {
    uint64_t count;          /* finite values seen */
    uint64_t nonfinite;      /* NaN or inf values seen */
    uint64_t zeros;          /* exact zeros before quantization */
    uint64_t zeros_q;        /* exact zeros after quantization */
    double   min, max, absmax;
    double   sum, sum2;      /* for mean and standard deviation */
    /* |x| histogram: bin 0 holds 0 and |x| < 2^-64, the last bin |x| >=
     * 2^32, bin 1 + k holds 2^(-64 + k/4) <= |x| < 2^(-64 + (k+1)/4) */
    uint64_t hist[QT_HIST_BINS];
} qt_tstats;

double qt_tstats_mean(const qt_tstats *s);
double qt_tstats_std(const qt_tstats *s);
double qt_tstats_sparsity(const qt_tstats *s);     /* zeros / all values */
double qt_tstats_sparsity_q(const qt_tstats *s);   /* zeros_q / all values */
/* The p-th percentile (0 < p <= 100) of |x|, from the histogram: the upper
 * edge of the bin where it falls (within 19% above the true value; exact
 * absmax for p = 100). */
double qt_tstats_percentile_abs(const qt_tstats *s, double p);

typedef struct qt_stats qt_stats;

/* Statistics for every node and kind of a graph; new object. */
qt_stats *qt_stats_new(const qt_graph *g);
void      qt_stats_free(qt_stats *s);
void      qt_stats_reset(qt_stats *s);
/* Borrowed; all-zero when nothing of that kind was seen. */
const qt_tstats *qt_stats_get(const qt_stats *s, int node, qt_stat_kind k);
/* While attached, every qt_forward/qt_backward of g adds to s (activations
 * and weights in forward, gradients in backward). NULL detaches. */
void      qt_graph_attach_stats(qt_graph *g, qt_stats *s);
/* A JSON report: {node: {kind: {count, min, max, absmax, mean, std,
 * sparsity, sparsity_q, p99, p999}}}; new reference. */
json_t   *qt_stats_to_json(const qt_stats *s, const qt_graph *g);

/* ------------------------------------------------------------------------ */
/* Training                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum qt_optim { QT_SGD = 0, QT_ADAM = 1 } qt_optim;

typedef struct qt_train_opts {
    qt_optim optim;
    int      epochs;
    int      batch;          /* default 64 */
    double   lr;             /* initial learning rate */
    double   momentum;       /* SGD */
    double   weight_decay;
    double   beta1, beta2, adam_eps;
    int      lr_step;        /* multiply lr by lr_gamma every lr_step epochs (0: never) */
    double   lr_gamma;
    int      cosine;         /* cosine decay to 0 over all epochs instead */
    uint64_t seed;           /* shuffling and dropout */
    FILE    *progress;       /* a progress bar here when not NULL */
    const qt_dataset *val;   /* evaluated after each epoch when not NULL */
    /* per-epoch statistics: when stats is not NULL it is attached during
     * training, epoch_cb is called at the end of each epoch with what that
     * epoch saw, and stats is reset after the call */
    qt_stats *stats;
    void    (*epoch_cb)(void *user, int epoch, const qt_stats *s);
    void     *user;
} qt_train_opts;

/* Sensible defaults (SGD, momentum 0.9, lr 0.01, batch 64, 1 epoch). */
qt_train_opts qt_train_defaults(void);

typedef struct qt_train_stats {
    int    epochs_done;
    double loss;             /* mean training loss of the last epoch */
    double train_top1;
    double val_top1;         /* last epoch (when opts.val) */
} qt_train_stats;

/* Train g on d under cfg (which may quantize weights, activations,
 * gradients and accumulators). Same seed and thread count: same weights. */
int qt_train(qt_graph *g, const qt_qconfig *cfg, const qt_dataset *d,
             const qt_train_opts *opts, qt_train_stats *stats, qt_error *err);

/* ------------------------------------------------------------------------ */
/* Process set-up                                                            */
/* ------------------------------------------------------------------------ */

/* Call first in main(). Debian's OpenBLAS runs its own thread pool, and
 * OpenMP threads spinning between kernels fight it for the cores (measured
 * 4-10x slower on 2 cores). libgomp reads OMP_WAIT_POLICY before main, so
 * when the user has not set it, this re-executes the program once with
 * OMP_WAIT_POLICY=passive (argv must be main's). Returns only if it did not
 * re-execute. Set QT_NO_REEXEC=1 to keep the spinning policy. */
void qt_runtime_init(char **argv);

/* ------------------------------------------------------------------------ */
/* Model zoo and checkpoints                                                 */
/* ------------------------------------------------------------------------ */

/* "mlp" (784-300-100-10), "lenet5", "vgg" (small VGG-style CNN),
 * "resnet" (small ResNet with batchnorm and residual adds), untrained, for
 * 1x28x28 inputs and 10 classes. New graph. */
int qt_zoo_build(const char *name, qt_graph **out, qt_error *err);
const char *const *qt_zoo_names(void);   /* NULL-terminated */

/* Checkpoint file: magic "QTCK", version, graph (nodes, attributes),
 * parameters, a CRC-32 of everything before it. Truncated, corrupted or
 * newer-version files are QT_ECORRUPT/QT_ENOTSUP with a message. */
int qt_checkpoint_save(const qt_graph *g, const char *path, qt_error *err);
int qt_checkpoint_load(const char *path, qt_graph **out, qt_error *err);

/* ------------------------------------------------------------------------ */
/* ONNX import                                                               */
/* ------------------------------------------------------------------------ */

/* A tensor read from ONNX (an initializer, a Constant, or a TensorProto
 * file such as the conformance tests' input_0.pb). Values are kept both as
 * floats (every numeric type converted) and, for integer and bool types,
 * exactly as int64. */
typedef enum qt_onnx_dtype {      /* ONNX TensorProto.DataType numbers */
    QT_ONNX_FLOAT = 1, QT_ONNX_UINT8 = 2, QT_ONNX_INT8 = 3, QT_ONNX_UINT16 = 4,
    QT_ONNX_INT16 = 5, QT_ONNX_INT32 = 6, QT_ONNX_INT64 = 7, QT_ONNX_STRING = 8,
    QT_ONNX_BOOL = 9, QT_ONNX_FLOAT16 = 10, QT_ONNX_DOUBLE = 11,
    QT_ONNX_UINT32 = 12, QT_ONNX_UINT64 = 13, QT_ONNX_BFLOAT16 = 16
} qt_onnx_dtype;

#define QT_ONNX_MAX_DIMS 8

typedef struct qt_onnx_tensor {
    char     name[256];          /* may be empty */
    int      dtype;              /* qt_onnx_dtype */
    int      ndim;               /* 0 (a scalar) .. QT_ONNX_MAX_DIMS */
    int64_t  dims[QT_ONNX_MAX_DIMS];
    size_t   count;              /* product of dims */
    float   *f;                  /* count values */
    int64_t *i;                  /* count values for integer/bool types, else NULL */
} qt_onnx_tensor;

/* Read a serialized TensorProto; malformed, truncated, of an unsupported
 * type (strings, complex) or with data that does not match its dims:
 * QT_ECORRUPT / QT_ENOTSUP naming the file and the problem. New object. */
int  qt_onnx_tensor_load(const char *path, qt_onnx_tensor **out, qt_error *err);
void qt_onnx_tensor_free(qt_onnx_tensor *t);

typedef struct qt_onnx_opts {
    /* 0 (models): dim 0 of every activation is the batch: the runtime
     * input's per-sample dims are its dims after the first, and an op that
     * would mix samples (a transpose, concat, softmax, flatten or reshape
     * across dim 0) is an error naming it. 1: each whole ONNX tensor is one
     * sample (the engine's batch is an extra leading dim; conformance tests
     * use this). */
    int whole;
    /* The graph's inputs that are not initializers, in order: binds[i]
     * non-NULL makes input i a constant with that value; exactly one input
     * must stay unbound and becomes the engine's input node. NULL: only one
     * input may be unbound. */
    const qt_onnx_tensor *const *binds;
    int n_binds;
    int output;               /* which graph output is the engine's (0) */
} qt_onnx_opts;

/* Build an engine graph from an ONNX model file (opsets 7-17) or bytes.
 * Names: ONNX node names are kept (shortened with a hash past
 * QT_NAME_MAX - 1 characters, made unique with a suffix); an unnamed node
 * is named <OpType>_<index in the graph>; nodes an ONNX node expands to
 * are suffixed (".bias", ".t"); constants that become nodes are named after
 * their tensors. Initializers feeding weights become the nodes' parameters
 * (so weight and bias quantization applies to them).
 * Errors (QT_ENOTSUP, QT_ECORRUPT, QT_EINVAL) name the op and node: an
 * unsupported op, attribute value or data type, a malformed or truncated
 * file, shapes that do not fit. New graph. */
int qt_onnx_load(const char *path, const qt_onnx_opts *opts, qt_graph **out,
                 qt_error *err);
int qt_onnx_load_mem(const void *buf, size_t len, const qt_onnx_opts *opts,
                     qt_graph **out, qt_error *err);

/* A model by name or path: a zoo name (untrained), a checkpoint, or an
 * ONNX file (batched; qt_onnx_load). New graph. */
int qt_model_load(const char *spec, qt_graph **out, qt_error *err);

#ifdef __cplusplus
}
#endif
#endif /* QT_ENGINE_H */
