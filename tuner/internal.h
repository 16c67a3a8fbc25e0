/* internal.h -- private to tuner/: the search object, shared by the search
 * loop and the strategies. */
#ifndef QT_TUNER_INTERNAL_H
#define QT_TUNER_INTERNAL_H

#include "tuner.h"

#include <stdatomic.h>

#define qt__fail qt_errorf

typedef struct qt__pcache qt__pcache;

/* one observed evaluation */
typedef struct qt_hist {
    qt_cand   *c;
    qt_result  r;
} qt_hist;

struct qt_search {
    qt_job_spec    spec;          /* a copy (strategy_opts referenced) */
    const qt_graph *g;            /* the model (owned when own_g) */
    qt_graph      *own_g;
    qt_dataset    *val;           /* owned; NULL with a custom evaluator */
    qt_dataset    *train;         /* training jobs: the images each candidate trains on */
    qt_graph      *trained;       /* training jobs: the float-trained model (ranges) */
    qt_coord      *coords;
    int            n_coords;
    qt_result      base;          /* the float model */
    uint8_t       *base_correct;  /* per validation image, float top-1 */
    /* "val_order": "hardest_first" (top-1, engine jobs): the same images
     * in the float model's order of margin, for whole-split candidates */
    qt_dataset    *hval;          /* owned; NULL: random order */
    uint8_t       *hbase_correct; /* per image of hval, float top-1 */
    double         threshold;     /* on the job's metric */
    /* the cost of fp32 everywhere, per kind, for compression ratios */
    double         w0, a0, b0;
    /* the strategy */
    const qt_strategy *strat;
    void          *state;
    /* evaluation */
    qt_eval_fn     efn;           /* NULL: the engine */
    void          *euser;
    qt_eval_cache  cache;
    char           model_key[40]; /* content hash of model, data and settings */
    /* history, in proposal order */
    qt_hist       *hist;
    int            n_hist, cap_hist;
    int            computed;
    atomic_int     cancel;
    /* prefix reuse and the work done (prefix.c) */
    qt__pcache    *pc;            /* NULL: off */
    double        *suffix_macs;   /* per node k: MACs per sample of nodes k.. */
    qt_search_work work;
    double         seconds0;      /* wall time used before this run */
    /* the float model on the first n images, per subset size used */
    struct qt__subbase { size_t n; double top1, top5, loss; } *sub;
    int            n_sub;
    /* training jobs: what the float baseline's training saw (per node) */
    struct qt__gstat *gstat;
    int            train_batch;
};

/* ---- the float training run's statistics (training jobs) --------------- */
/* Per node, over the epochs of the float baseline's training: the standard
 * deviation of the elements of its weight gradients and of the gradient
 * arriving at its output, each epoch's over every minibatch of it (the
 * smallest and largest epoch's; 0: none seen), their largest |value|, and
 * the mean square of its output over the last epoch. Sakr & Shanbhag's
 * gradient and accumulator precisions come from these (strat_analytical.c). */
typedef struct qt__gstat {
    double gw_absmax, gw_smin, gw_smax;
    double ga_absmax, ga_smin, ga_smax;
    double x2;
} qt__gstat;
/* NULL unless a training job (the search's graph's nodes) */
const qt__gstat *qt__search_gstats(const qt_search *s, int *batch);
/* the float model the job's candidates are compared with: the trained
 * copy for a training job, the model otherwise (borrowed) */
const qt_graph *qt__search_ref(const qt_search *s);

/* ---- prefix reuse (prefix.c) ------------------------------------------ */
/* The activations kept for candidates that configure the first nodes alike;
 * shared by the search's workers (thread-safe). budget: bytes. */
qt__pcache *qt__pcache_new(const qt_graph *g, const qt_coord *coords, int n_coords,
                           size_t budget);
void qt__pcache_free(qt__pcache *pc);
/* how many signatures qt__pcache_sigs writes (the boundaries) */
int  qt__pcache_boundaries(const qt__pcache *pc);
/* the signature of each boundary's prefix under cfg */
int  qt__pcache_sigs(const qt__pcache *pc, const qt_qconfig *cfg, uint64_t seed, uint64_t *sig);
/* count an evaluation's prefixes (times: 2 for the float model's, which
 * every candidate starts with); only prefixes counted twice are kept */
void qt__pcache_note(qt__pcache *pc, const uint64_t *sig, int times);
/* restore the latest kept prefix of a batch into g; the node to run from
 * (0: none kept) */
int  qt__pcache_resume(qt__pcache *pc, const uint64_t *sig, qt_graph *g, size_t start, int n);
/* keep the prefixes past `from` of the batch g just ran */
void qt__pcache_save(qt__pcache *pc, const uint64_t *sig, qt_graph *g, size_t start, int n,
                     int from);
void qt__pcache_counts(qt__pcache *pc, uint64_t *hits, uint64_t *lookups, size_t *peak);

/* the k-th type set in a type mask (its last when it has fewer), or -1
 * (search.c) */
int  qt__kth_type(uint32_t mask, int k);
/* FNV-1a: h mixed with the n bytes at p (start from QT__FNV_SEED)
 * (prefix.c) */
#define QT__FNV_SEED 0xcbf29ce484222325ull
uint64_t qt__fnv1a(uint64_t h, const void *p, size_t n);
/* snprintf for the strategies' reasons and notes, which may be cut short
 * (long node names) (search.c) */
__attribute__((format(printf, 3, 4)))
void qt__say(char *buf, size_t size, const char *fmt, ...);
/* coordinate i's tensor, "fc1 weights", into buf; returns buf (search.c) */
const char *qt__tensor_name(const qt_search *s, int i, char *buf, size_t size);
/* cost of a candidate: fills r->weight_bits, act_bits, bitops, cost and
 * compression (cost.c) */
void qt__cost(const qt_search *s, const qt_cand *c, qt_result *r);
/* fp32 references of the three costs (cost.c) */
void qt__cost_fp32(const qt_search *s, double *w, double *a, double *b);
/* does a result meet the constraint? (search.c; a subset result against
 * the float model on its images: qt_search_baseline_on must have run for
 * that n, else the whole split's baseline is used) */
int  qt__feasible(const qt_search *s, const qt_result *r);
/* the metric bound on the first n images (0: the whole split's) */
double qt__threshold_on(const qt_search *s, size_t n);
/* the strategies (strat_*.c) */
extern const qt_strategy qt__strat_uniform;
extern const qt_strategy qt__strat_bisect;
extern const qt_strategy qt__strat_greedy;
extern const qt_strategy qt__strat_analytical;
extern const qt_strategy qt__strat_hybrid;

/* ---- analytical precision (gains.c, strat_analytical.c) ---------------- */
/* The noise gain E of each coordinate over the first `samples` images of d
 * (Sakr & Shanbhag, REFERENCES.md 3(b)): the mean over samples of
 * sum_{i != yhat} |d(Z_yhat - Z_i)/dX|^2 / (24 (Z_yhat - Z_i)^2), from the
 * float model g (run forward and backward: the caller's own copy). Weights,
 * bias and output points; every other point gets NaN. */
int    qt__gains(qt_graph *g, const qt_dataset *d, size_t samples, const qt_coord *coords,
                 int n, double *E, qt_error *err);
/* The mismatch bound sum_X E[X] Delta_X^2 of a candidate (E: one gain per
 * coordinate). Float (QT_NONE) coordinates add nothing; NaN when a
 * quantized coordinate is not fixed/ufixed or its gain is not finite.
 * Delta^2 is 12 x the format's noise variance: the step squared for
 * round-to-nearest, 2x for stochastic, 4x for rounding down/toward zero. */
double qt__analytical_bound(const qt_search *s, const double *E, const qt_cand *c);
/* The gains of every coordinate of a search (one per qt_search_coords
 * entry): outputs on the first samples_act validation images, weights and
 * bias on the first samples_param, with a copy of the search's model.
 * QT_EINVAL for a custom search (it has no data). */
int    qt__search_gains(const qt_search *s, size_t samples_act, size_t samples_param,
                        double *E, qt_error *err);
/* The mismatch estimate (gains.c): what the bound's Chebyshev step gives
 * away. Each sample's margins m_i and squared margin gradients per
 * coordinate G_iX are kept (the first `samples` validation images, a copy
 * of the model; gains, when given, replace the measured E), and a
 * candidate's margin noise is taken as Gaussian: sigma_i^2 = sum_X G_iX
 * var_X, p(sample) = min(1, sum_i Phi(-m_i / sigma_i)), the estimate their
 * mean. var_X is measured for weights and bias (the squared error of
 * quantizing the tensor itself, any type, cluster and float included, each
 * value's weighted by its share of the tensor's gain: the values that move
 * the margins count most) and
 * is the format's noise variance for outputs (fixed/ufixed; else NaN).
 * new: a new object (QT_EINVAL for a custom search); gains: borrowed, n
 * values; noise: var_X of one coordinate under f (cached); estimate: NaN
 * when some var_X is. */
typedef struct qt__margins qt__margins;
int    qt__margins_new(const qt_search *s, size_t samples, const double *gains,
                       qt__margins **out, qt_error *err);
void   qt__margins_free(qt__margins *M);
const double *qt__margins_gains(const qt__margins *M);
double qt__noise(qt__margins *M, const qt_search *s, int coord, const qt_format *f);
double qt__mismatch_estimate(qt__margins *M, const qt_search *s, const qt_cand *c);
/* The same model's expected loss of top-1 accuracy against the float
 * model: images the float model gets right count when any class overtakes
 * (as above), images it gets wrong count negatively when their label
 * overtakes. Comparable with the budget base.top1 - threshold. */
double qt__drop_estimate(qt__margins *M, const qt_search *s, const qt_cand *c);
/* The analytical plan for hybrid (strat_analytical.c): made as the
 * analytical strategy's init makes it (same options); its B_min; the
 * candidate at any B_min (widths into w, one per coordinate); each
 * tensor's type and width range; release. */
int    qt__ana_new(qt_search *s, const json_t *opts, void **plan, qt_error *err);
int    qt__ana_bmin(const void *plan);
int    qt__ana_cand(const void *plan, const qt_search *s, int b, int *w, qt_cand *c);
int    qt__ana_range(const void *plan, int i, qt_type *t, int *lo, int *hi);
void   qt__ana_free(void *plan);
/* the plan's drop-estimate margins (borrowed; NULL when B_min came from the
 * bound) and the budget the estimate is compared with */
qt__margins *qt__ana_margins(const void *plan, double *budget);
/* The analytical allocation (strat_analytical.c): n tensors, tensor i with
 * n_opt[i] options in ascending cost order; ch (in: the start, out: the
 * answer) one option per tensor. While one fits, take the change of one
 * tensor to a cheaper option whose drop stays <= budget that saves the
 * most cost per drop added (added drop floored at 1e-9; ties: the larger
 * saving, then the lower tensor and option); when none fits, the exchange
 * of one tensor to a dearer option (a later one) and another to a cheaper
 * (an earlier one) that saves the most cost within the budget (ties: the
 * smaller drop). cost and drop
 * of a whole choice. Returns the changes taken. Deterministic. */
typedef double (*qt__alloc_fn)(void *user, const int *choice);
int    qt__allocate(int n, const int *n_opt, qt__alloc_fn cost, qt__alloc_fn drop, void *user,
                    double budget, int *choice);
/* the plan is an allocation over (type, width) (1) or the offsets of the
 * closed form (0); its predicted drop (NaN for offsets) */
int    qt__ana_allocated(const void *plan, double *pred);
/* the allocation at another budget into c (the plan unchanged), its
 * predicted drop; QT_EINVAL when the plan is not an allocation */
int    qt__ana_alloc_at(void *plan, const qt_search *s, double budget, qt_cand *c,
                        double *pred);
/* ---- end analytical ------------------------------------------------------ */

#endif
