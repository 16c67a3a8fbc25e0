/*
 * strat_analytical.c -- every tensor's width in closed form from its noise
 * gain (Sakr & Shanbhag's per-tensor rule, REFERENCES.md 3(b)); no search:
 * one candidate, verified by one evaluation, widened while it fails.
 *
 * Gains. E_X for each tuned tensor (gains.c): measured on the search's
 * validation images (qt_search_dataset) with a copy of the float model, on
 * the first 500 images for every tensor (option "samples"). One sample set
 * for all: the per-sample terms are heavy-tailed (1/margin^2: a few images
 * near the decision boundary dominate), so the gains' level moves a lot
 * with the samples while their ratios, which set the offsets, move little
 * when every tensor sees the same images. Measured on lenet5: the level
 * (E_min) changes up to 30x between 100 and 4000 images, the unrounded
 * offsets by <= 0.6 bit; but 200 images for weights and 1000 for
 * activations (the official scripts' counts) put them 1.1-1.9 bits apart.
 * 500 images cost about 1 s on lenet5 and 15 s on the small VGG (2 cores;
 * parameter gains take C - 1 unbatched backward passes per image).
 * Option "gains" gives the gains instead (one number >= 0 per tuned
 * tensor, in qt_search_coords order), which a custom search must do.
 *
 * Types. Each tensor takes ufixed when it is the output of a relu-like node
 * (relu, sigmoid, softmax, clip with lo >= 0, and pools, flatten, reshape,
 * dropout and transpose of one) and its space allows ufixed; otherwise its
 * first allowed of fixed, ufixed. A tensor allowing neither, or a point with
 * no gain (intrinsic; gradients and accumulator in an inference job), is
 * refused at init.
 *
 * Training jobs. The forward tensors (weights, bias, outputs) as below,
 * their gains and the drop estimate measured on the float-trained model (the
 * job's reference, qt__search_ref): the forward precisions of Sakr's EFQN.
 * The gradients (grad_output, grad_weights) and accumulators take closed
 * forms from the float training's statistics (sakr_format below); they add
 * no noise to the inference estimate, and each widening step widens them by
 * one bit too (a finer step, the same range). The one evaluation is then a
 * training run under all of them.
 *
 * Bound. With Delta_X the step of X's format at width B (qt_search_format:
 * the bias fitted to the measured range, so Delta = 2^ceil(log2 absmax) x
 * 2^(1-B) for signed fixed point, half that for ufixed),
 *   p_m <= sum_X E_X Delta_X^2          (qt__analytical_bound)
 * where Delta^2 is 12 x the format's noise variance (the step squared for
 * the default round-to-nearest). A mismatch with the float prediction
 * costs at most one correct image, so for top-1 the bound must stay within
 * the budget base.top1 - threshold. top-5 uses base.top5 - threshold (a
 * heuristic: the bound is about the top-1 prediction); a loss constraint
 * has no such budget and needs the option "b_min".
 *
 * Widths. As in Sakr's code the offsets equalise the noise terms: with
 * r_X = Delta_X(B) 2^(B-1) the tensor's range factor (measured at B = 16;
 * 2^ceil(log2 absmax) for fixed, half of it for ufixed) and E'_X = E_X r_X^2
 * (the gain referred to a unit range, the E Sakr's offsets use),
 *   offset_X = round(log2 sqrt(E'_X / E'_min))     (round half to even:
 *                                                 nearbyint, default mode)
 *   B_X      = clamp(B_min + offset_X, wmin_X, wmax_X)
 * so with one type and range everywhere offset_X = round(log2 sqrt(E_X /
 * E_min)). A tensor with gain 0 stays at its narrowest width. B_min is the
 * smallest of 1..32 whose bound fits the budget (or option "b_min"); when
 * none fits, the widest candidate is proposed.
 *
 * Allocation (option "plan": "allocate", the default whenever the drop
 * estimate is there: a top-1 constraint on the engine's data, no b_min).
 * Instead of offsets and one type, every tensor's type and width from all
 * its space allows: its options are the formats (bias fitted) whose
 * measured noise (qt__noise) no cheaper one beats, and qt__allocate starts
 * each at its least noisy and takes, while the predicted drop stays within
 * the budget, the change that saves most cost per drop added, then
 * exchanges (one tensor dearer, another cheaper). Deterministic. Its B_min
 * is the narrowest width allocated, so the widening below (+1 bit on every
 * tensor, in its type) and hybrid's B_min search apply unchanged. On lenet5
 * (weights, r = 0.99): fixed+float+cluster cluster7 fixed5 cluster5
 * cluster3 fixed5 (6.69x, one evaluation; hybrid's answer cluster6 fixed5
 * cluster4 cluster2 fixed5), fixed 7 5 6 4 5 (5.59x; greedy's 6 5 5 4 5).
 * "plan": "offsets" is the closed form above.
 *
 * Steps. Propose that candidate; if it fails, B_min + 1 (the next B_min
 * that changes a width), until one passes or every tensor with a gain is
 * at its wmax; then done. Options: "samples", "gains", "b_min", "model",
 * "plan"; others are errors naming them.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES       500       /* images the gains are measured on */
#define OFF_ZERO      (-1000)   /* the offset of a tensor whose gain is 0 */
#define REF_WIDTH     16        /* where the range factor r_X is measured */
#define EST_SAMPLES   2000      /* images the drop estimate is measured on */

enum { PH_PROPOSE = 0, PH_WAIT = 1, PH_DONE = 2 };

typedef struct ana {
    int        n;          /* tuned tensors */
    double    *E;          /* noise gains */
    qt_type   *type;       /* fixed or ufixed, per tensor */
    int       *lo, *hi;    /* width range per tensor */
    int       *off;        /* offsets (OFF_ZERO: gain 0) */
    int       *w;          /* widths of the pending proposal */
    double     budget;     /* the mismatch the constraint allows (NaN: none) */
    int        bmin;       /* B_min of the pending proposal */
    int        phase;
    int        failed;     /* B_min of the failed proposal this one widens (0: none) */
    double     failed_acc; /* its metric */
    char       why[24];    /* how B_min was chosen: "", " (forced)", ... */
    int        estimate;   /* B_min from the drop estimate (0: from the bound) */
    qt__margins *M;        /* the estimate's margins (NULL: none) */
    int        alloc;      /* the plan is an allocation over (type, width) */
    double     pred;       /* the allocation's predicted drop */
    int        moves;      /* ... and the moves it took */
    int        bmin0;      /* its B_min (the narrowest width it gave) */
    /* training jobs: gradient and accumulator tensors take Sakr &
     * Shanbhag's formats (pf), widened by one bit per B_min above pin_b */
    int       *pin;        /* 1: a training point */
    qt_format *pf;
    int        pin_b;
} ana;

/* ------------------------------------------------------------------------ */
/* The bound, for every strategy                                             */
/* ------------------------------------------------------------------------ */

double qt__analytical_bound(const qt_search *s, const double *E, const qt_cand *c)
{
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    double b = 0;
    for (int i = 0; i < n; i++) {
        const qt_format *f = &c->fmt[i];
        if (f->type == QT_NONE) continue;
        if (f->type != QT_FIXED && f->type != QT_UFIXED) return NAN;
        if (!(E[i] >= 0) || !isfinite(E[i])) return NAN;
        b += E[i] * 12.0 * qt_noise_var(f, 0.0);
    }
    return b;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */
/* ------------------------------------------------------------------------ */

/* is the node's output >= 0 whatever its input (relu-like)? */
static int nonneg(const qt_graph *g, int node, int depth)
{
    const int *in;
    int nin = qt_graph_node_inputs(g, node, &in);
    if (depth > 64) return 0;
    switch (qt_graph_node_op(g, node)) {
    case QT_OP_RELU: case QT_OP_SIGMOID: case QT_OP_SOFTMAX:
        return 1;
    case QT_OP_CLIP:
        return qt_graph_node_attr(g, node)->lo >= 0.0f;
    case QT_OP_MAXPOOL: case QT_OP_AVGPOOL: case QT_OP_GAP: case QT_OP_GMP:
    case QT_OP_FLATTEN: case QT_OP_RESHAPE: case QT_OP_DROPOUT: case QT_OP_TRANSPOSE:
        return nin == 1 && nonneg(g, in[0], depth + 1);
    case QT_OP_CONCAT:
        for (int k = 0; k < nin; k++)
            if (!nonneg(g, in[k], depth + 1)) return 0;
        return nin > 0;
    default:
        return 0;
    }
}

static void ana_free(void *state)
{
    ana *a = state;
    if (!a) return;
    free(a->E);
    free(a->type);
    free(a->lo);
    free(a->hi);
    free(a->off);
    free(a->w);
    free(a->pin);
    free(a->pf);
    qt__margins_free(a->M);
    free(a);
}

static int bad_opt(qt_error *err, const char *key, const char *msg)
{
    return qt__fail(err, QT_EINVAL, -1, "strategy.%s: %s", key, msg);
}

/* the options: samples, gains, b_min */
static int parse_opts(const qt_search *s, const json_t *opts, int n, long *samples,
                      double *E, int *have_gains, int *bmin, int *estimate, int *plan,
                      qt_error *err)
{
    const char *key;
    const json_t *v;
    *samples = 0;
    *have_gains = 0;
    *bmin = 0;
    *estimate = 1;
    *plan = -1;
    if (!opts) return QT_OK;
    if (!json_is_object(opts))
        return qt__fail(err, QT_EINVAL, -1, "strategy: analytical's options must be an object");
    json_object_foreach((json_t *)opts, key, v) {
        if (!strcmp(key, "samples")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 100000000)
                return bad_opt(err, key, "must be an integer >= 1 (images the gains are "
                               "measured on)");
            *samples = (long)json_integer_value(v);
        } else if (!strcmp(key, "b_min")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 32)
                return bad_opt(err, key, "must be an integer in 1..32");
            *bmin = (int)json_integer_value(v);
        } else if (!strcmp(key, "model")) {
            const char *m = json_string_value(v);
            if (!m || (strcmp(m, "estimate") && strcmp(m, "bound")))
                return bad_opt(err, key, "must be \"estimate\" or \"bound\"");
            *estimate = !strcmp(m, "estimate");
        } else if (!strcmp(key, "plan")) {
            const char *m = json_string_value(v);
            if (!m || (strcmp(m, "allocate") && strcmp(m, "offsets")))
                return bad_opt(err, key, "must be \"allocate\" or \"offsets\"");
            *plan = !strcmp(m, "allocate");
        } else if (!strcmp(key, "gains")) {
            if (!json_is_array(v) || (int)json_array_size(v) != n)
                return qt__fail(err, QT_EINVAL, -1, "strategy.gains: must be an array of %d "
                                "numbers, one per tuned tensor", n);
            for (int i = 0; i < n; i++) {
                const json_t *x = json_array_get(v, (size_t)i);
                double e = json_is_number(x) ? json_number_value(x) : -1;
                if (!(e >= 0) || !isfinite(e))
                    return qt__fail(err, QT_EINVAL, -1, "strategy.gains[%d]: must be a "
                                    "number >= 0", i);
                E[i] = e;
            }
            *have_gains = 1;
        } else {
            return qt__fail(err, QT_EINVAL, -1, "strategy.%s: analytical has no such option "
                            "(samples, gains, b_min, model, plan)", key);
        }
    }
    (void)s;
    return QT_OK;
}

/* the widths at B_min = b */
static void widths_at(const ana *a, int b, int *w)
{
    for (int i = 0; i < a->n; i++) {
        int x;
        if (a->pin[i]) {                  /* its own width, + 1 per B_min widened */
            x = a->pf[i].width + (b > a->pin_b ? b - a->pin_b : 0);
            w[i] = x > a->hi[i] ? (a->pf[i].width > a->hi[i] ? a->pf[i].width : a->hi[i]) : x;
            continue;
        }
        x = a->off[i] == OFF_ZERO ? a->lo[i] : b + a->off[i];
        w[i] = x < a->lo[i] ? a->lo[i] : x > a->hi[i] ? a->hi[i] : x;
    }
}

/* a training point's format at width w: its range kept, the step finer */
static int pinned(const ana *a, int i, int w, qt_format *f)
{
    *f = a->pf[i];
    f->bias = (int16_t)(f->bias + (w - f->width));
    f->width = (uint8_t)w;
    return qt_format_check(f, NULL);
}

/* the candidate of widths w */
static int fill(const ana *a, const qt_search *s, const int *w, qt_cand *c)
{
    for (int i = 0; i < a->n; i++)
        if (a->pin[i] ? pinned(a, i, w[i], &c->fmt[i])
                      : qt_search_format(s, i, a->type[i], w[i], 0, &c->fmt[i]) != QT_OK)
            return QT_EINVAL;
    return QT_OK;
}

static double bound_at(const ana *a, const qt_search *s, int b, int *w, qt_cand *c)
{
    widths_at(a, b, w);
    if (fill(a, s, w, c)) return NAN;
    return qt__analytical_bound(s, a->E, c);
}

/* the model's figure for a candidate: the drop estimate or the bound */
static double model_of(const ana *a, const qt_search *s, const qt_cand *c)
{
    return a->estimate ? qt__drop_estimate(a->M, s, c) : qt__analytical_bound(s, a->E, c);
}

/* every tensor with a gain at its widest */
static int all_widest(const ana *a, const int *w)
{
    for (int i = 0; i < a->n; i++)
        if ((a->pin[i] || a->off[i] != OFF_ZERO) && w[i] < a->hi[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* The allocation over every allowed (type, width)                           */
/* ------------------------------------------------------------------------ */

#define ALLOC_EPS 1e-9    /* floor of a predicted drop added, in the ratio */

int qt__allocate(int n, const int *n_opt, qt__alloc_fn cost, qt__alloc_fn drop, void *u,
                 double budget, int *ch)
{
    int moves = 0;
    double c0 = cost(u, ch), d0 = drop(u, ch);
    for (;;) {
        int bi = -1, bo = -1, bj = -1, bp = -1;
        double br = 0, bs = 0, bc = 0, bd = 0;
        /* one tensor to a cheaper option: the most cost saved per drop added */
        for (int i = 0; i < n; i++) {
            int keep = ch[i];
            for (int o = 0; o < n_opt[i]; o++) {
                if (o == keep) continue;
                ch[i] = o;
                double c = cost(u, ch), d;
                if (c < c0 && (d = drop(u, ch)) <= budget) {
                    double save = c0 - c, ratio = save / (d - d0 > ALLOC_EPS ? d - d0 : ALLOC_EPS);
                    if (bi < 0 || ratio > br || (ratio == br && save > bs)) {
                        bi = i; bo = o; br = ratio; bs = save; bc = c; bd = d;
                    }
                }
            }
            ch[i] = keep;
        }
        if (bi < 0) {
            /* none: an exchange, one tensor to a dearer option and another
             * to a cheaper one, saving cost within the budget; the largest
             * saving (ties: the smaller drop) */
            for (int i = 0; i < n; i++) {
                int ki = ch[i];
                for (int up = ki + 1; up < n_opt[i]; up++) {
                    ch[i] = up;
                    for (int j = 0; j < n; j++) {
                        if (j == i) continue;
                        int kj = ch[j];
                        for (int o = 0; o < kj; o++) {
                            ch[j] = o;
                            double c = cost(u, ch), d;
                            if (c < c0 && (d = drop(u, ch)) <= budget) {
                                double save = c0 - c;
                                if (bi < 0 || save > bs || (save == bs && d < bd)) {
                                    bi = i; bo = up; bj = j; bp = o; bs = save; bc = c; bd = d;
                                }
                            }
                        }
                        ch[j] = kj;
                    }
                }
                ch[i] = ki;
            }
            if (bi < 0) break;
            ch[bj] = bp;
        }
        ch[bi] = bo;
        c0 = bc;
        d0 = bd;
        moves++;
    }
    return moves;
}

/* a tensor's option: a format's type and width, its bits per value and
 * its measured noise */
typedef struct aopt {
    int    t, w;
    double bits, var;
} aopt;

typedef struct actx {
    const qt_search *s;
    qt__margins *M;
    aopt   **opt;
    qt_cand *c;
    int      n;
    const ana *a;
} actx;

static void actx_fill(actx *x, const int *ch)
{
    for (int i = 0; i < x->n; i++)
        if (x->a->pin[i]) x->c->fmt[i] = x->a->pf[i];
        else qt_search_format(x->s, i, (qt_type)x->opt[i][ch[i]].t, x->opt[i][ch[i]].w, 0,
                              &x->c->fmt[i]);
}

static double actx_cost(void *u, const int *ch)
{
    actx *x = u;
    qt_result r;
    memset(&r, 0, sizeof r);
    actx_fill(x, ch);
    qt__cost(x->s, x->c, &r);
    return r.cost;
}

static double actx_drop(void *u, const int *ch)
{
    actx *x = u;
    actx_fill(x, ch);
    return qt__drop_estimate(x->M, x->s, x->c);
}

static int by_bits(const void *p, const void *q)
{
    const aopt *a = p, *b = q;
    if (a->bits != b->bits) return a->bits < b->bits ? -1 : 1;
    if (a->var != b->var) return a->var < b->var ? -1 : 1;
    return a->t != b->t ? a->t - b->t : a->w - b->w;
}

/* every tensor's type and width by qt__allocate over its options (the
 * formats of its allowed types and widths, bias fitted, that no cheaper
 * one beats on measured noise), from the least noisy of each; sets type,
 * lo, hi, off, bmin (the narrowest width allocated) and pred */
static int allocate(ana *a, const qt_search *s, qt_cand *c, double budget, int commit,
                    double *pred, qt_error *err)
{
    const qt_coord *co;
    const qt_graph *g = qt_search_graph(s);
    int n = qt_search_coords(s, &co), rc = QT_OK;
    actx x = { s, a->M, calloc((size_t)n, sizeof(aopt *)), c, n, a };
    int *no = calloc((size_t)n, sizeof *no), *ch = calloc((size_t)n, sizeof *ch);
    if (!x.opt || !no || !ch) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    for (int i = 0; i < n && !rc; i++) {
        int cap = QT_TYPE_COUNT * (co[i].wmax - co[i].wmin + 1), k = 0;
        aopt *o = x.opt[i] = calloc((size_t)(cap > 0 ? cap : 1), sizeof *o);
        if (!o) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); break; }
        if (a->pin[i]) {                  /* no noise in an inference: its own */
            o[0] = (aopt){ QT_FIXED, a->pf[i].width, qt_bits(&a->pf[i]), 0 };
            no[i] = 1;
            ch[i] = 0;
            continue;
        }
        for (int t = 0; t < QT_TYPE_COUNT; t++) {
            if (!(co[i].types >> t & 1u)) continue;
            for (int w = co[i].wmin; w <= co[i].wmax; w++) {
                qt_format f;
                if (qt_search_format(s, i, (qt_type)t, w, 0, &f) != QT_OK) continue;
                double v = qt__noise(a->M, s, i, &f);
                if (!(v >= 0) || !isfinite(v)) continue;
                o[k++] = (aopt){ t, w, qt_bits(&f), v };
            }
        }
        qsort(o, (size_t)k, sizeof *o, by_bits);
        /* the Pareto options: each strictly less noisy than every cheaper one */
        int m = 0;
        for (int j = 0; j < k; j++)
            if (!m || (o[j].var < o[m - 1].var && o[j].bits > o[m - 1].bits)) o[m++] = o[j];
            else if (o[j].bits == o[m - 1].bits && o[j].var < o[m - 1].var) o[m - 1] = o[j];
        if (!m)
            rc = qt__fail(err, QT_EINVAL, -1, "strategy: analytical: no format of '%s' %s has "
                          "a noise the estimate can price (outputs: fixed or ufixed)",
                          qt_graph_node_name(g, co[i].node), qt_qpoint_name(co[i].point));
        no[i] = m;
        ch[i] = m - 1;                                /* the least noisy */
    }
    if (rc) goto out;
    int moves = qt__allocate(n, no, actx_cost, actx_drop, &x, budget, ch);
    *pred = actx_drop(&x, ch);                  /* and c holds the allocation */
    if (!commit) goto out;
    a->moves = moves;
    a->pred = *pred;
    if (!(a->pred <= a->budget)) snprintf(a->why, sizeof a->why, " (none fits)");
    a->bmin = 32;
    for (int i = 0; i < n; i++) {
        const aopt *o = &x.opt[i][ch[i]];
        qt_format f;
        a->type[i] = (qt_type)o->t;
        a->w[i] = o->w;
        a->lo[i] = co[i].wmin;
        a->hi[i] = co[i].wmax;
        while (a->lo[i] < o->w && qt_search_format(s, i, a->type[i], a->lo[i], 0, &f)) a->lo[i]++;
        while (a->hi[i] > o->w && qt_search_format(s, i, a->type[i], a->hi[i], 0, &f)) a->hi[i]--;
        if (a->E[i] > 0 && o->w < a->bmin) a->bmin = o->w;
    }
    if (a->bmin == 32) a->bmin = a->w[0];
    a->bmin0 = a->bmin;
    for (int i = 0; i < n; i++) a->off[i] = a->E[i] > 0 ? a->w[i] - a->bmin : OFF_ZERO;
out:
    for (int i = 0; x.opt && i < n; i++) free(x.opt[i]);
    free(x.opt);
    free(no);
    free(ch);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Training points: Sakr & Shanbhag's rules                                  */
/* ------------------------------------------------------------------------ */

static int is_train_point(qt_qpoint p)
{
    return p == QT_QP_GRAD_OUTPUT || p == QT_QP_GRAD_WEIGHTS || p == QT_QP_ACCUMULATOR;
}

static int ceil2(double x) { return (int)ceil(log2(x)); }
static int floor2(double x) { return (int)floor(log2(x)); }

/* the first node with weights met going back from node n along first
 * inputs (n itself when it has them), or -1: where a gradient arriving at
 * n's output first becomes a weight gradient */
static int weight_node(const qt_graph *g, int n)
{
    for (int hops = 0; n >= 0 && hops <= qt_graph_nodes(g); hops++) {
        /* qt_graph_param only reads here */
        if (qt_graph_param((qt_graph *)g, n, 0)) return n;
        const int *in;
        if (qt_graph_node_inputs(g, n, &in) < 1) return -1;
        n = in[0];
    }
    return -1;
}

/* the step exponent of node m's weight gradients: Delta_GW = 2^e <= sigma_min / 4 */
static int gw_step(const qt__gstat *st, int m) { return floor2(st[m].gw_smin / 4); }

/* Coordinate i's format by Sakr & Shanbhag's training rules (REFERENCES.md
 * 3(b)), from the float training's statistics (qt__gstat: sigma per epoch,
 * min and max over the epochs), signed fixed point of range 2^eR and step
 * 2^eD, width eR - eD + 1:
 *   weight gradients      eR = ceil2(2 sigma_max / sqrt(0.1)),
 *                         eD = floor2(sigma_min / 4): the quantization
 *                         noise stays well below SGD's own;
 *   activation gradients  eR = ceil2(8 sigma_max / sqrt(0.1)),
 *                         eD = floor2(Delta_GW / sqrt(lambda)): their noise
 *                         reaches the weight gradient of the first weighted
 *                         node m behind them as
 *                         var(Delta_GA) x sum over the batch and m's output
 *                         positions of x^2, so lambda = batch x positions x
 *                         mean x^2 of m's input keeps it within Delta_GW's
                         (a batchnorm's gamma sees the normalised input:
                         mean x^2 = 1).
 *                         (Sakr's code takes lambda from the largest
 *                         singular value of a measured Jacobian; this is the
 *                         same propagation, exact for conv and dense layers
 *                         whose gradients are sums over the batch.) A
 *                         gradient that reaches no weight takes wmin bits;
 *   accumulator           eD = floor2(lr x Delta_GW) (the smallest update
 *                         must change it), eR = ceil2(max |w|).
 * Clamped to the space: wider than wmax keeps the range (a coarser step),
 * narrower than wmin keeps the step (more range). */
static int sakr_format(const qt_search *s, int i, qt_format *f, qt_error *err)
{
    const qt_coord *co;
    qt_search_coords(s, &co);
    const qt_coord *c = &co[i];
    const qt_graph *g = qt__search_ref(s);
    int batch;
    const qt__gstat *st = qt__search_gstats(s, &batch);
    const char *node = qt_graph_node_name(g, c->node), *pt = qt_qpoint_name(c->point);
    int eR = 0, eD = 0;
    if (!st)
        return qt__fail(err, QT_EINVAL, -1, "strategy: analytical: '%s' %s needs the float "
                        "training's statistics (a training job)", node, pt);
    if (!(c->types & (1u << QT_FIXED)))
        return qt__fail(err, QT_EINVAL, -1, "strategy: analytical needs fixed for '%s' %s: "
                        "the gradient and accumulator rules are for signed fixed point", node, pt);
    const qt__gstat *x = &st[c->node];
    if (c->point == QT_QP_GRAD_OUTPUT) {
        if (!(x->ga_smax > 0))
            return qt__fail(err, QT_EINVAL, -1, "strategy: analytical: no gradient reached "
                            "'%s' in the float training, so %s has no statistics", node, pt);
        eR = ceil2(8 * x->ga_smax / sqrt(0.1));
        int m = weight_node(g, c->node);
        if (m < 0 || !(st[m].gw_smin > 0)) {
            eD = eR - (c->wmin - 1);
        } else {
            int sh[3];
            const int *in;
            qt_graph_node_shape(g, m, sh);
            /* a batchnorm's weight (gamma) multiplies the normalised
             * input, whose mean square is 1 */
            double x2 = qt_graph_node_op(g, m) == QT_OP_BATCHNORM ? 1.0
                      : qt_graph_node_inputs(g, m, &in) > 0 ? st[in[0]].x2 : 0;
            double lam = (double)batch * sh[1] * sh[2] * x2;
            double dgw = ldexp(1.0, gw_step(st, m));
            eD = floor2(lam > 1 ? dgw / sqrt(lam) : dgw);
        }
    } else {
        if (!(x->gw_smin > 0))
            return qt__fail(err, QT_EINVAL, -1, "strategy: analytical: no weight gradient of "
                            "'%s' was seen in the float training, so %s has no statistics",
                            node, pt);
        if (c->point == QT_QP_GRAD_WEIGHTS) {
            eR = ceil2(2 * x->gw_smax / sqrt(0.1));
            eD = gw_step(st, c->node);
        } else {
            eR = ceil2(c->absmax);
            eD = floor2(qt_search_spec(s)->lr * ldexp(1.0, gw_step(st, c->node)));
        }
    }
    int w = eR - eD + 1, fb = -eD;
    if (w > c->wmax) { w = c->wmax; fb = w - 1 - eR; }
    if (w < c->wmin) w = c->wmin;
    if (qt_search_format(s, i, QT_FIXED, w, 0, f) != QT_OK)
        return qt__fail(err, QT_EINVAL, -1, "strategy: analytical: no fixed<%d> for '%s' %s",
                        w, node, pt);
    if (fb < -32768 || fb > 32767) fb = fb < 0 ? -32768 : 32767;
    f->bias = (int16_t)fb;
    qt_error e;
    if (qt_format_check(f, &e) != QT_OK)
        return qt__fail(err, QT_EINVAL, -1, "strategy: analytical: '%s' %s: fixed<%d> with %d "
                        "fractional bits: %s", node, pt, w, fb, e.text);
    return QT_OK;
}

static int ana_init(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    const qt_coord *co;
    const qt_graph *g = qt_search_graph(s);
    const qt_job_spec *sp = qt_search_spec(s);
    int n = qt_search_coords(s, &co), rc = QT_OK, have_gains, forced, estimate, plan;
    long samples;
    qt_cand *c = NULL;
    ana *a = calloc(1, sizeof *a);
    if (!a) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    a->n = n;
    size_t m = (size_t)(n ? n : 1);
    a->E = calloc(m, sizeof *a->E);
    a->type = calloc(m, sizeof *a->type);
    a->lo = calloc(m, sizeof *a->lo);
    a->hi = calloc(m, sizeof *a->hi);
    a->off = calloc(m, sizeof *a->off);
    a->w = calloc(m, sizeof *a->w);
    a->pin = calloc(m, sizeof *a->pin);
    a->pin_b = 1000;                      /* no widening before B_min is known */
    a->pf = calloc(m, sizeof *a->pf);
    if (!a->E || !a->type || !a->lo || !a->hi || !a->off || !a->w || !a->pin || !a->pf ||
        !(c = qt_cand_new(s))) {
        rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
        goto fail;
    }
    if ((rc = parse_opts(s, opts, n, &samples, a->E, &have_gains, &forced, &estimate, &plan,
                         err)))
        goto fail;
    if (n == 0) { rc = qt__fail(err, QT_EINVAL, -1, "space: no tensor to tune"); goto fail; }
    /* the plan: the allocation needs the drop estimate (a top-1 constraint
     * on the engine's data); by default it is taken whenever it can be */
    int can_alloc = estimate && sp->metric == QT_MET_TOP1 && qt_search_dataset(s);
    if (plan == 1 && (!can_alloc || forced)) {
        rc = qt__fail(err, QT_EINVAL, -1, "strategy.plan: \"allocate\" needs the drop estimate "
                      "(a top-1 constraint on the engine's data, model \"estimate\") and no "
                      "b_min");
        goto fail;
    }
    a->alloc = plan < 0 ? can_alloc && !forced : plan;

    /* types and width ranges; refuse what the model cannot cover */
    for (int i = 0; i < n; i++) {
        const char *node = qt_graph_node_name(g, co[i].node), *pt = qt_qpoint_name(co[i].point);
        if (is_train_point(co[i].point) && sp->kind == QT_JOB_TRAINING) {
            a->pin[i] = 1;
            a->type[i] = QT_FIXED;
            a->lo[i] = co[i].wmin;
            a->hi[i] = co[i].wmax;
            if ((rc = sakr_format(s, i, &a->pf[i], err))) goto fail;
            continue;
        }
        if (co[i].point != QT_QP_WEIGHTS && co[i].point != QT_QP_BIAS &&
            co[i].point != QT_QP_OUTPUT) {
            rc = qt__fail(err, QT_EINVAL, -1, "strategy: analytical cannot tune '%s' %s: noise "
                          "gains cover weights, bias and outputs only", node, pt);
            goto fail;
        }
        uint32_t fx = co[i].types & (1u << QT_FIXED), ufx = co[i].types & (1u << QT_UFIXED);
        if (a->alloc && co[i].point != QT_QP_OUTPUT) continue;   /* any type: measured */
        if (!fx && !ufx) {
            rc = qt__fail(err, QT_EINVAL, -1, "strategy: analytical needs fixed or ufixed for "
                          "'%s' %s (its space allows neither): the %s is for fixed point",
                          node, pt, a->alloc ? "estimate of an output's noise" : "bound");
            goto fail;
        }
        if (a->alloc) continue;
        a->type[i] = ufx && (!fx || (co[i].point == QT_QP_OUTPUT && nonneg(g, co[i].node, 0)))
                     ? QT_UFIXED : QT_FIXED;
        a->lo[i] = co[i].wmin;
        a->hi[i] = co[i].wmax;
        qt_format f;
        while (a->lo[i] <= a->hi[i] && qt_search_format(s, i, a->type[i], a->lo[i], 0, &f))
            a->lo[i]++;
        if (a->lo[i] > a->hi[i]) {
            rc = qt__fail(err, QT_EINVAL, -1, "strategy: analytical: no %s width in [%d, %d] "
                          "for '%s' %s", qt_type_name(a->type[i]), co[i].wmin, co[i].wmax,
                          node, pt);
            goto fail;
        }
    }

    /* the budget */
    const qt_result *base = qt_search_baseline(s);
    double th = qt_search_threshold(s);
    switch (sp->metric) {
    case QT_MET_TOP1: a->budget = base->top1 - th; break;
    case QT_MET_TOP5: a->budget = base->top5 - th; break;
    default:          a->budget = NAN; break;
    }
    if (a->budget < 0) a->budget = 0;
    if (isnan(a->budget) && !forced) {
        rc = qt__fail(err, QT_EINVAL, -1, "strategy.b_min: a loss constraint gives the mismatch "
                      "bound no budget; analytical needs b_min with it");
        goto fail;
    }

    /* the gains (the allocation takes those of the estimate's images) */
    if (!have_gains && !a->alloc) {
        if (!qt_search_dataset(s)) {
            rc = qt__fail(err, QT_EINVAL, -1, "strategy.gains: a search without the engine's "
                          "data needs the gains given (%d numbers, one per tuned tensor)", n);
            goto fail;
        }
        size_t ns = samples ? (size_t)samples : SAMPLES;
        if ((rc = qt__search_gains(s, ns, ns, a->E, err))) goto fail;
    }
    for (int i = 0; i < n; i++)
        if (a->pin[i]) a->E[i] = 0;     /* no gain: formats of their own */
    /* the drop estimate: top-1 constraints with the engine's data only */
    if (estimate && sp->metric == QT_MET_TOP1 && qt_search_dataset(s)) {
        if ((rc = qt__margins_new(s, EST_SAMPLES, have_gains ? a->E : NULL, &a->M, err)))
            goto fail;
        a->estimate = 1;
    }
    if (a->alloc) {
        if (!have_gains) memcpy(a->E, qt__margins_gains(a->M), m * sizeof *a->E);
        for (int i = 0; i < n; i++)
            if (a->pin[i]) a->E[i] = 0;
        double pred;
        if ((rc = allocate(a, s, c, a->budget, 1, &pred, err))) goto fail;
        a->pin_b = a->bmin;
        a->phase = PH_PROPOSE;
        qt_cand_free(c);
        *state = a;
        return QT_OK;
    }

    /* offsets from the range-scaled gains */
    double emin = INFINITY;
    double *eh = malloc(m * sizeof *eh);
    if (!eh) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto fail; }
    for (int i = 0; i < n; i++) {
        qt_format f;
        int wr = REF_WIDTH < a->lo[i] ? a->lo[i] : REF_WIDTH > 32 ? 32 : REF_WIDTH;
        if (qt_search_format(s, i, a->type[i], wr, 0, &f) != QT_OK) { eh[i] = 0; continue; }
        double r = qt_step(&f, 0.0) * ldexp(1.0, wr - 1);
        eh[i] = a->E[i] * r * r;
        if (eh[i] > 0 && eh[i] < emin) emin = eh[i];
    }
    for (int i = 0; i < n; i++)
        a->off[i] = eh[i] > 0 ? (int)nearbyint(0.5 * log2(eh[i] / emin)) : OFF_ZERO;
    free(eh);

    /* B_min: the smallest that fits, or the one forced */
    if (forced) {
        a->bmin = forced;
        snprintf(a->why, sizeof a->why, " (forced)");
    } else {
        int b;
        for (b = 1; b <= 32; b++) {
            if (isnan(bound_at(a, s, b, a->w, c))) continue;
            if (model_of(a, s, c) <= a->budget) break;
        }
        if (b > 32) {                 /* nothing fits: the first at the widest */
            int w32[64], *wt = n <= 64 ? w32 : malloc(m * sizeof *wt);
            if (!wt) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto fail; }
            widths_at(a, 32, wt);
            for (b = 1; b < 32; b++) {
                widths_at(a, b, a->w);
                if (!memcmp(a->w, wt, m * sizeof *wt)) break;
            }
            if (wt != w32) free(wt);
            snprintf(a->why, sizeof a->why, " (none fits)");
        }
        a->bmin = b;
    }
    a->pin_b = a->bmin;
    widths_at(a, a->bmin, a->w);
    a->phase = PH_PROPOSE;
    qt_cand_free(c);
    *state = a;
    return QT_OK;
fail:
    qt_cand_free(c);
    ana_free(a);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Proposing                                                                 */
/* ------------------------------------------------------------------------ */

/* append to a reason only whole pieces, "..." once one does not fit */
static void add(char *buf, size_t size, int *full, const char *fmt, ...)
{
    char piece[160];
    va_list ap;
    if (*full) return;
    va_start(ap, fmt);
    int k = vsnprintf(piece, sizeof piece, fmt, ap);
    va_end(ap);
    size_t at = strlen(buf);
    if (k < 0 || (size_t)k >= sizeof piece || at + (size_t)k + 4 >= size) {
        if (at + 4 <= size) memcpy(buf + at, "...", 4);
        *full = 1;
        return;
    }
    memcpy(buf + at, piece, (size_t)k + 1);
}

static int ana_propose(void *state, qt_search *s, qt_cand *c)
{
    ana *a = state;
    const qt_coord *co;
    const qt_graph *g = qt_search_graph(s);
    if (a->phase != PH_PROPOSE) return a->phase == PH_WAIT ? QT_WAIT : QT_DONE;
    qt_search_coords(s, &co);
    if (fill(a, s, a->w, c)) { a->phase = PH_DONE; return QT_DONE; }
    double bd = qt__analytical_bound(s, a->E, c);
    int full = 0;
    c->reason[0] = 0;
    if (a->alloc) {
        /* the allocation: its predicted drop, each tensor's format */
        double de = qt__drop_estimate(a->M, s, c);
        if (a->failed)
            add(c->reason, sizeof c->reason, &full, "analytical allocation%s, every tensor %+d "
                "bit(s): predicted drop %.3g %% (%+d failed: %.2f %%);", a->why,
                a->bmin - a->bmin0, 100 * de, a->failed - a->bmin0, 100 * a->failed_acc);
        else
            add(c->reason, sizeof c->reason, &full, "analytical allocation%s (%d moves): "
                "predicted drop %.3g %% %s budget %.3g %%;", a->why, a->moves, 100 * de,
                de <= a->budget ? "<=" : ">", 100 * a->budget);
        for (int i = 0; i < a->n; i++)
            if (a->pin[i])
                add(c->reason, sizeof c->reason, &full, " %s %s fixed<%d,%d>",
                    qt_graph_node_name(g, co[i].node), qt_qpoint_name(co[i].point),
                    c->fmt[i].width, c->fmt[i].bias);
            else
                add(c->reason, sizeof c->reason, &full, " %s%s%s %s<%d>",
                    qt_graph_node_name(g, co[i].node), co[i].point == QT_QP_WEIGHTS ? "" : " ",
                    co[i].point == QT_QP_WEIGHTS ? "" : qt_qpoint_name(co[i].point),
                    qt_type_name(a->type[i]), a->w[i]);
    } else if (isnan(a->budget))
        add(c->reason, sizeof c->reason, &full, "analytical: B_min = %d%s, bound %.3g %% "
            "(no budget for a loss)", a->bmin, a->why, 100 * bd);
    else if (a->estimate) {
        double de = qt__drop_estimate(a->M, s, c);
        add(c->reason, sizeof c->reason, &full, "analytical: B_min = %d%s, predicted drop "
            "%.3g %% %s budget %.3g %% (bound %.3g %%)", a->bmin, a->why, 100 * de,
            de <= a->budget ? "<=" : ">", 100 * a->budget, 100 * bd);
    } else
        add(c->reason, sizeof c->reason, &full, "analytical: B_min = %d%s, bound %.3g %% %s "
            "budget %.3g %%", a->bmin, a->why, 100 * bd, bd <= a->budget ? "<=" : ">",
            100 * a->budget);
    if (a->failed && !a->alloc)
        add(c->reason, sizeof c->reason, &full, qt_search_spec(s)->metric == QT_MET_LOSS
            ? " (B_min = %d failed: loss %.4g)" : " (B_min = %d failed: %.2f %%)", a->failed,
            qt_search_spec(s)->metric == QT_MET_LOSS ? a->failed_acc : 100 * a->failed_acc);
    for (int i = 0; i < a->n && !a->alloc; i++)
        if (a->pin[i])
            add(c->reason, sizeof c->reason, &full, ", %s %s fixed<%d,%d>",
                qt_graph_node_name(g, co[i].node), qt_qpoint_name(co[i].point),
                c->fmt[i].width, c->fmt[i].bias);
        else if (a->w[i] != a->bmin)
            add(c->reason, sizeof c->reason, &full, ", %s %s %+d",
                qt_graph_node_name(g, co[i].node), qt_qpoint_name(co[i].point),
                a->w[i] - a->bmin);
    a->phase = PH_WAIT;
    return QT_PROPOSE;
}

static void ana_observe(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    ana *a = state;
    (void)c;
    if (a->phase != PH_WAIT) return;
    if (r->feasible) { a->phase = PH_DONE; return; }
    /* widen: the next B_min that changes a width */
    if (all_widest(a, a->w)) { a->phase = PH_DONE; return; }
    int *w = malloc((size_t)a->n * sizeof *w);
    if (!w) { a->phase = PH_DONE; return; }
    int b = a->bmin;
    do widths_at(a, ++b, w); while (!memcmp(w, a->w, (size_t)a->n * sizeof *w) && b < 32 + 64);
    if (!memcmp(w, a->w, (size_t)a->n * sizeof *w)) { free(w); a->phase = PH_DONE; return; }
    memcpy(a->w, w, (size_t)a->n * sizeof *w);
    free(w);
    const qt_job_spec *sp = qt_search_spec(s);
    a->failed_acc = sp->metric == QT_MET_TOP5 ? r->top5 : sp->metric == QT_MET_LOSS ? r->loss
                                                                                  : r->top1;
    a->failed = a->bmin;
    a->bmin = b;
    a->why[0] = 0;
    a->phase = PH_PROPOSE;
}

/* ---- for hybrid: the plan without its proposing ---- */

int qt__ana_new(qt_search *s, const json_t *opts, void **plan, qt_error *err)
{
    return ana_init(s, opts, plan, err);
}

int qt__ana_bmin(const void *plan) { return ((const ana *)plan)->bmin; }

int qt__ana_cand(const void *plan, const qt_search *s, int b, int *w, qt_cand *c)
{
    const ana *a = plan;
    widths_at(a, b, w);
    return fill(a, s, w, c);
}

int qt__ana_range(const void *plan, int i, qt_type *t, int *lo, int *hi)
{
    const ana *a = plan;
    if (i < 0 || i >= a->n) return QT_EINVAL;
    *t = a->type[i];
    *lo = a->lo[i];
    *hi = a->hi[i];
    return QT_OK;
}

void qt__ana_free(void *plan) { ana_free(plan); }

int qt__ana_alloc_at(void *plan, const qt_search *s, double budget, qt_cand *c, double *pred)
{
    ana *a = plan;
    qt_error err;
    if (!a->alloc) return QT_EINVAL;
    return allocate(a, s, c, budget, 0, pred, &err);
}

int qt__ana_allocated(const void *plan, double *pred)
{
    const ana *a = plan;
    if (pred) *pred = a->alloc ? a->pred : NAN;
    return a->alloc;
}

qt__margins *qt__ana_margins(const void *plan, double *budget)
{
    const ana *a = plan;
    *budget = a->budget;
    return a->estimate ? a->M : NULL;
}

const qt_strategy qt__strat_analytical = {
    "analytical", "per-tensor widths in closed form from noise gains (Sakr & Shanbhag), "
    "verified by one evaluation and widened while it fails",
    ana_init, ana_propose, ana_observe, ana_free
};
