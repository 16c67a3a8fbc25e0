/*
 * tuner.h -- the precision search: spaces, costs, constraints, strategies,
 * the evaluator and the Pareto front.
 *
 * A job asks: which number format for each tuned tensor of a model gives
 * the lowest cost while the model keeps an accuracy constraint on a
 * validation split? It is a JSON document (qt_job_parse), e.g.
 *
 *   { "model": "experiments/models/lenet5.qtck",
 *     "space": [ { "nodes": "conv*", "points": ["weights"],
 *                  "types": ["fixed", "float"], "widths": [2, 16] },
 *                { "nodes": "relu*", "points": ["output"],
 *                  "types": ["ufixed"], "widths": [2, 16] } ],
 *     "cost": "weight_bits",
 *     "constraint": { "metric": "top1", "relative": 0.99 },
 *     "strategy": "bisection",
 *     "budget": { "evaluations": 500, "seconds": 3600 } }
 *
 * and qt_search runs it: a strategy proposes candidates (one format per
 * tuned tensor, with the reason it proposes them), the evaluator measures
 * each on the validation split against the float model, and every measured
 * point is kept so the Pareto front of cost against accuracy can be read
 * at any time.
 *
 * Ownership: *_new, *_parse and *_load give new objects to release with
 * the matching *_free; accessors return borrowed pointers valid as long as
 * their owner. Errors: a qt_rc, with the caller's qt_error naming the JSON
 * field ("space[1].widths: 0 is not a width (1..32)").
 *
 * Threads: a qt_search is driven by one thread (qt_search_step/run); it
 * runs evaluations on its own worker pool. Strategies see results in the
 * order they proposed the candidates, whatever the pool size, so a job's
 * outcome does not depend on the number of workers. qt_search_cancel may
 * be called from any thread.
 */
#ifndef QT_TUNER_H
#define QT_TUNER_H

#include "engine.h"

#include <jansson.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */
/* ------------------------------------------------------------------------ */

/* What a candidate costs; every result also reports all three and the
 * compression against fp32. */
typedef enum qt_cost_kind {
    QT_COST_WEIGHT_BITS = 0,  /* bits of every stored parameter (untuned: 32) */
    QT_COST_ACT_BITS    = 1,  /* bits of every node output per inference */
    QT_COST_BITOPS      = 2,  /* sum over MAC layers: MACs x weight bits x
                                 input activation bits */
    QT_COST_WEIGHTED    = 3   /* w_weight*weight + w_act*act + w_bitops*bitops */
} qt_cost_kind;

typedef enum qt_metric { QT_MET_TOP1 = 0, QT_MET_TOP5 = 1, QT_MET_LOSS = 2 } qt_metric;

typedef enum qt_job_kind {
    QT_JOB_INFERENCE = 0,     /* candidates configure the trained model */
    QT_JOB_TRAINING  = 1      /* candidates configure training from a seed */
} qt_job_kind;

/* The bias (fractional bits / exponent bias / scale) of a candidate's format:
 * fitted to the tensor's measured range, or searched within fitted +- k. */
typedef enum qt_bias_policy { QT_BIAS_FIT = 0, QT_BIAS_SEARCH = 1 } qt_bias_policy;

/* One rule of the space: nodes (a name or glob), the points tuned on them,
 * the types and widths allowed. Later rules override earlier ones for the
 * same (node, point). */
typedef struct qt_space_rule {
    char           nodes[QT_NAME_MAX];
    uint32_t       points;           /* bit (1 << qt_qpoint) */
    uint32_t       types;            /* bit (1 << qt_type) */
    int            wmin, wmax;       /* 1..32 */
    qt_round       round;
    qt_bias_policy bias;
    int            bias_k;           /* QT_BIAS_SEARCH: +- k */
} qt_space_rule;

#define QT_JOB_MAX_RULES 32
#define QT_JOB_PATH_MAX  512

/* Where a dataset other than the built-in Fashion-MNIST is read from (the
 * job's "data"): IDX files (gzip or not) and their normalisation. The
 * validation split is the last val_count images of a val_seed permutation
 * of the training images, the rest is the training split, as
 * Fashion-MNIST's are. qtuned fills it in from dataset.register. */
typedef struct qt_job_data {
    char     train_images[QT_JOB_PATH_MAX], train_labels[QT_JOB_PATH_MAX];
    char     test_images[QT_JOB_PATH_MAX], test_labels[QT_JOB_PATH_MAX];  /* "": none */
    qt_norm  norm;
    size_t   val_count;                /* 0: a sixth of the images, at most 10000 */
    uint64_t val_seed;                 /* default 0x5eed5eed (Fashion-MNIST's) */
} qt_job_data;

typedef struct qt_job_spec {
    char           model[512];       /* zoo name, checkpoint or ONNX path */
    char           dataset[64];      /* "fashion-mnist" (built in) or another name
                                        with its data below */
    int            has_data;         /* data is set (every dataset but fashion-mnist) */
    qt_job_data    data;
    qt_job_kind    kind;
    qt_space_rule  rules[QT_JOB_MAX_RULES];
    int            n_rules;
    qt_cost_kind   cost;
    double         w_weight, w_act, w_bitops;   /* QT_COST_WEIGHTED */
    qt_metric      metric;
    double         relative;         /* r in (0, 1]: keep >= r x float; when
                                        0, absolute applies: */
    double         absolute;         /* lose at most d >= 0 (top1/top5: a
                                        fraction; loss: nats) */
    char           strategy[32];     /* uniform bisection greedy analytical hybrid */
    json_t        *strategy_opts;    /* strategy-specific options, or NULL */
    int            max_evals;        /* budget: evaluations (0: none) */
    double         max_seconds;      /* budget: wall time (0: none) */
    size_t         val_limit;        /* evaluate on the first n val images (0: all) */
    double         alpha;            /* early-stop error rate (default 0.01; 0: only
                                        the exact stop) */
    int            early_pass;       /* also stop once a candidate cannot fail */
    int            full_eval;        /* 1: no early stop, every candidate runs
                                        the whole split ("early_stop": false) */
    int            hardest_first;    /* 1: whole-split candidates see the
                                        validation images in the float model's
                                        order of margin, smallest first, and
                                        only the exact early stop applies
                                        ("val_order": "hardest_first") */
    uint64_t       seed;             /* stochastic rounding and splits */
    int            workers;          /* evaluation threads (default 1) */
    int            cache_mb;         /* prefix reuse memory in MiB (the JSON
                                        default is 256; 0: off) */
    int            epochs;           /* QT_JOB_TRAINING: epochs per candidate */
    double         lr;               /* QT_JOB_TRAINING: SGD learning rate */
    size_t         train_limit;      /* QT_JOB_TRAINING: training images (0: all) */
} qt_job_spec;

/* A split (train, val or test) of the job's dataset: Fashion-MNIST's, or
 * read from the job's data files (the validation split carved from the
 * training images). Errors name the file and the problem. New object. */
int qt_job_dataset(const qt_job_spec *s, qt_split split, qt_dataset **out, qt_error *err);

/* The job's cost from the three kinds (cost.c documents them): one of
 * them, or the weighted sum. */
double qt_job_cost(const qt_job_spec *s, double weight_bits, double act_bits, double bitops);

/* Parse and validate a job; a bad job names the field and the problem
 * (QT_EINVAL/QT_EPARSE). The model is not opened here (see qt_search_new).
 * The spec holds a reference to strategy_opts: release with qt_job_clear. */
int  qt_job_parse(const char *json, qt_job_spec *out, qt_error *err);
int  qt_job_from_json(const json_t *j, qt_job_spec *out, qt_error *err);
void qt_job_clear(qt_job_spec *s);
/* The canonical JSON of a job (defaults filled in): new reference. */
json_t *qt_job_to_json(const qt_job_spec *s);

/* ------------------------------------------------------------------------ */
/* Candidates and results                                                    */
/* ------------------------------------------------------------------------ */

/* A tuned tensor: one quantization point of one node. */
typedef struct qt_coord {
    int            node;
    qt_qpoint      point;
    uint32_t       types;
    int            wmin, wmax;
    qt_round       round;
    qt_bias_policy bias;
    int            bias_k;
    /* measured on the calibration images by qt_search_new */
    double         absmax;           /* largest |value| */
    uint64_t       values;           /* values per inference (outputs) or stored */
} qt_coord;

/* A candidate: one format per coordinate (type QT_NONE: float). */
typedef struct qt_cand {
    qt_format *fmt;                   /* n_coords formats */
    char       reason[160];           /* why the strategy proposed it */
    size_t     images;                /* evaluate on the first n validation
                                         images only (0, or n >= the split:
                                         the search's whole split). A subset
                                         result is judged against the float
                                         model on the same n images; it is
                                         never the search's answer nor on
                                         its Pareto front (qt_result.subset) */
} qt_cand;

typedef enum qt_fail_class {
    QT_FAIL_NONE = 0, QT_FAIL_NAN = 1, QT_FAIL_NOMEM = 2, QT_FAIL_TIMEOUT = 3,
    QT_FAIL_CRASH = 4, QT_FAIL_OTHER = 5
} qt_fail_class;

typedef struct qt_result {
    double        top1, top5, loss;   /* on the images evaluated */
    size_t        images;             /* evaluated (fewer when stopped early) */
    int           feasible;           /* meets the constraint */
    int           early;              /* decided before the whole split (the
                                         verdict is feasible's; the metrics
                                         are of the images evaluated) */
    double        cost;               /* the job's cost */
    double        weight_bits, act_bits, bitops;
    double        compression;        /* fp32 cost / cost */
    double        seconds;
    double        macs;               /* multiply-accumulates the engine ran
                                         for it (0: answered from a cache or
                                         a custom evaluator) */
    int           cached;             /* answered from the cache */
    size_t        subset;             /* 0: measured on the whole split; n:
                                         only on its first n images (the
                                         candidate's images), feasible
                                         against the float model there.
                                         Not an answer: qt_search_best skips
                                         it, and so should Pareto fronts */
    qt_fail_class fail;               /* a failed evaluation and why */
    char          error[192];
} qt_result;

/* ------------------------------------------------------------------------ */
/* Strategies: deterministic state machines behind one method table          */
/* ------------------------------------------------------------------------ */

typedef struct qt_search qt_search;

enum { QT_PROPOSE = 0, QT_WAIT = 1, QT_DONE = 2 };

typedef struct qt_strategy {
    const char *name;
    const char *summary;
    /* new state, from the job's strategy_opts; QT_EINVAL naming the option */
    int  (*init)(qt_search *s, const json_t *opts, void **state, qt_error *err);
    /* QT_PROPOSE: *c filled (formats and reason); QT_WAIT: results of
     * earlier proposals are needed first; QT_DONE: converged */
    int  (*propose)(void *state, qt_search *s, qt_cand *c);
    /* the result of a proposal, in proposal order */
    void (*observe)(void *state, qt_search *s, const qt_cand *c, const qt_result *r);
    void (*free)(void *state);
} qt_strategy;

const qt_strategy *qt_strategy_find(const char *name);
const qt_strategy *const *qt_strategies(void);     /* NULL-terminated */

/* ------------------------------------------------------------------------ */
/* Running a search                                                          */
/* ------------------------------------------------------------------------ */

/* Evaluations a search may take from elsewhere (the store) instead of
 * computing them, and where it reports each one it computes, as soon as it
 * finishes (so a crash loses at most the evaluations still running). Both
 * may be NULL. lookup returns 1 and fills r when it has the key (the search
 * recomputes the cost fields for its own job). stored returns QT_OK, or an
 * error (a full disk) that stops the search with that code. Both are called
 * on the thread that runs qt_search_run. */
typedef struct qt_eval_cache {
    int  (*lookup)(void *user, const char *key, qt_result *r);
    int  (*stored)(void *user, const char *key, const qt_cand *c, const char *config_json,
                   const qt_result *r);
    void  *user;
} qt_eval_cache;

/* Open the model and data, measure the float baseline and the tensors'
 * ranges, and set up the strategy. New object. */
int  qt_search_new(const qt_job_spec *spec, const qt_eval_cache *cache,
                   qt_search **out, qt_error *err);
void qt_search_free(qt_search *s);

/* A search with another evaluator than the engine: tests (synthetic
 * accuracy functions whose optimum is known) and simulations. g is the
 * model the space refers to (borrowed; it must outlive the search), base
 * the float result; fn fills top1/top5/loss/images of a candidate and the
 * search fills the rest. Every tensor's range is taken as absmax. */
typedef int (*qt_eval_fn)(void *user, const qt_search *s, const qt_cand *c, qt_result *r);
int  qt_search_new_custom(const qt_job_spec *spec, const qt_graph *g, const qt_result *base,
                          double absmax, qt_eval_fn fn, void *user,
                          const qt_eval_cache *cache, qt_search **out, qt_error *err);

/* Run until the strategy is done, a budget ends or the search is cancelled.
 * progress (optional) is called after each evaluation. */
typedef void (*qt_progress_cb)(void *user, const qt_search *s, const qt_cand *c,
                               const qt_result *r);
int  qt_search_run(qt_search *s, qt_progress_cb cb, void *user, qt_error *err);
void qt_search_cancel(qt_search *s);

/* What the search knows. */
const qt_job_spec *qt_search_spec(const qt_search *s);
const qt_graph  *qt_search_graph(const qt_search *s);
int              qt_search_coords(const qt_search *s, const qt_coord **c);
const qt_result *qt_search_baseline(const qt_search *s);     /* float */
/* The float model on the first n validation images (n = 0 or >= the split:
 * the baseline): top-1 from the baseline's per-image verdicts, top-5 and
 * loss measured once per n for such constraints (a custom search: its
 * baseline). What a subset candidate is judged against. */
int              qt_search_baseline_on(qt_search *s, size_t n, qt_result *b, qt_error *err);
size_t           qt_search_split(const qt_search *s);        /* validation images */
double           qt_search_threshold(const qt_search *s);    /* the metric bound */
int              qt_search_evals(const qt_search *s);        /* evaluations so far */
int              qt_search_computed(const qt_search *s);     /* ... not from a cache */

/* The work a search did: what prefix reuse and the early stop saved. */
typedef struct qt_search_work {
    int      computed;        /* evaluations the engine computed */
    int      early_fail;      /* ... stopped early as failing */
    int      early_pass;      /* ... stopped early as passing */
    double   images;          /* validation images they ran */
    double   macs;            /* multiply-accumulates of those forwards */
    double   macs_full;       /* ... had each run the whole split from the
                                 input (no early stop, no prefix reuse) */
    uint64_t prefix_hits;     /* batches resumed from a kept prefix */
    uint64_t prefix_batches;  /* batches looked up */
    size_t   prefix_peak;     /* most bytes of activations kept at once */
} qt_search_work;
void qt_search_work_get(const qt_search *s, qt_search_work *w);

/* The answer: the cheapest feasible candidate, or, when none was found,
 * the closest one (*feasible = 0), among the results measured on the whole
 * split (subset == 0: a candidate judged on a few images is a screening
 * step, not an answer). NULL before the first such result. */
const qt_cand   *qt_search_best(const qt_search *s, const qt_result **r, int *feasible);

/* Measure a candidate (NULL: the float model) on the test split, which the
 * search never uses for its decisions: the figures to report beside the
 * validation ones. Engine searches only (QT_ENOTSUP for custom ones). */
int   qt_search_measure_test(qt_search *s, const qt_cand *c, qt_result *r, qt_error *err);
/* The validation images the search evaluates on (NULL for custom ones). */
const qt_dataset *qt_search_dataset(const qt_search *s);

/* A candidate as an engine configuration (new object), and as canonical
 * JSON (new string, free()). */
int   qt_search_config(const qt_search *s, const qt_cand *c, qt_qconfig **cfg, qt_error *err);
char *qt_search_config_json(const qt_search *s, const qt_cand *c);

/* The i-th result in proposal order, 0 <= i < qt_search_evals (borrowed).
 * A Pareto front of the search should take only those with subset == 0. */
void             qt_search_result(const qt_search *s, int i, const qt_cand **c,
                                  const qt_result **r);

/* Helpers for strategies (which propose and observe; they never evaluate
 * themselves). */
qt_cand *qt_cand_new(const qt_search *s);               /* all float */
void     qt_cand_copy(const qt_search *s, qt_cand *dst, const qt_cand *src);
void     qt_cand_free(qt_cand *c);
/* The format of coordinate i at width w and type t, its bias fitted to the
 * measured range (QT_EINVAL if t cannot have width w). */
int      qt_search_format(const qt_search *s, int coord, qt_type t, int w, int bias_delta,
                          qt_format *f);

/* ------------------------------------------------------------------------ */
/* Pareto fronts                                                             */
/* ------------------------------------------------------------------------ */

typedef struct qt_point {
    double cost;
    double acc;          /* the job's metric; higher is better (loss negated) */
    int    id;           /* the caller's index of the point */
} qt_point;

/* The non-dominated points of pts (lower cost and higher acc dominate;
 * ties keep the first), sorted by cost; writes them to front and returns
 * their number. front may alias pts. */
int qt_pareto(const qt_point *pts, int n, qt_point *front);

#ifdef __cplusplus
}
#endif
#endif /* QT_TUNER_H */
