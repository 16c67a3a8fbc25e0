/*
 * search.c -- running a job: the tuned tensors, the float baseline, the
 * evaluator with its cache and early stop, the worker pool and the answer.
 *
 * The loop, in rounds: ask the strategy for proposals until it waits, is
 * done or a budget is reached; answer each proposal from the search's own
 * memo, then the caller's cache (the store), and compute the rest on the
 * worker pool; then give every result to the strategy in proposal order.
 * Which proposals a round holds depends only on earlier results, so the
 * outcome does not depend on the number of workers.
 *
 * Accept or reject (top-1 constraints): the candidate and the float model
 * are compared on the same images. With r the relative bound, image i
 * contributes d_i = c_i - r f_i (c, f: candidate and float correct), or
 * c_i - f_i + delta for an absolute bound; the candidate meets the
 * constraint iff the sum over the validation split is >= 0. After each
 * batch the evaluation stops as soon as
 *   - the sum can no longer reach 0 even if every remaining image goes the
 *     candidate's way (exact: the verdict is the full split's), or
 *   - alpha > 0 and the mean so far is below 0 by more than the
 *     Hoeffding-Serfling bound for sampling without replacement,
 *       eps = (hi - lo) sqrt((1 - (m-1)/M) ln(K/alpha) / (2m)),
 *     with K the number of batches (a union bound over every look). The
 *     validation split is a seeded random permutation, so the first m
 *     images are a random sample of it, and the probability that such a
 *     stop rejects a candidate the full split would accept is <= alpha.
 * With "early_pass" the mirror images of both rules also stop a candidate
 * that can no longer fail (the sum reaches 0 whatever the rest does, or the
 * mean is above 0 by more than eps).
 * top-5 and loss constraints are decided on the whole split.
 *
 * Subsets. A candidate may ask for its first n validation images only
 * (qt_cand.images; the split is a random permutation, so they are a random
 * sample): the evaluator stops there (qt_eval_opts.limit), the early stop's
 * M is n, and the verdict compares it with the float model on the same n
 * images -- top-1 from the baseline's per-image verdicts, top-5 and loss
 * measured once per n between rounds (qt_search_baseline_on). Its memo and
 * cache keys add n (a whole-split candidate keeps the key it always had,
 * so stored evaluations stay valid), r->subset says n, and it is never the
 * answer: qt_search_best and Pareto fronts take whole-split results only.
 */
#include "internal.h"

#include <fnmatch.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* The tuned tensors                                                         */
/* ------------------------------------------------------------------------ */

static int point_applies(const qt_graph *g, int node, qt_qpoint p)
{
    qt_graph *gg = (qt_graph *)g;
    switch (p) {
    case QT_QP_WEIGHTS: case QT_QP_GRAD_WEIGHTS: case QT_QP_ACCUMULATOR:
        return qt_graph_param(gg, node, 0) != NULL && qt_graph_node_op(g, node) != QT_OP_CONST;
    case QT_QP_BIAS:
        return qt_graph_param(gg, node, 1) != NULL;
    case QT_QP_OUTPUT: case QT_QP_GRAD_OUTPUT:
        return 1;
    case QT_QP_INTRINSIC:
        return node != 0;
    default:
        return 0;
    }
}

static int node_matches(const qt_graph *g, int node, const char *pat)
{
    const char *name = qt_graph_node_name(g, node);
    return strcmp(name, pat) == 0 || fnmatch(pat, name, 0) == 0;
}

/* the coordinates: every (node, point) some rule names, the last rule
 * naming it deciding its types and widths; in node, then point order */
static int build_coords(qt_search *s, qt_error *err)
{
    const qt_graph *g = s->g;
    int nn = qt_graph_nodes(g);
    int *rule_of = malloc((size_t)nn * QT_QP_COUNT * sizeof *rule_of);
    if (!rule_of) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    for (int i = 0; i < nn * QT_QP_COUNT; i++) rule_of[i] = -1;
    for (int r = 0; r < s->spec.n_rules; r++) {
        const qt_space_rule *ru = &s->spec.rules[r];
        int matched = 0, applied = 0;
        for (int n = 0; n < nn; n++) {
            if (!node_matches(g, n, ru->nodes)) continue;
            matched++;
            for (int p = 0; p < QT_QP_COUNT; p++)
                if ((ru->points >> p & 1u) && point_applies(g, n, (qt_qpoint)p)) {
                    rule_of[n * QT_QP_COUNT + p] = r;
                    applied++;
                }
        }
        if (!matched || !applied) {
            char names[120];
            size_t at = 0;
            names[0] = 0;
            for (int n = 0; n < nn && at + 4 < sizeof names; n++) {
                int k = snprintf(names + at, sizeof names - at, "%s%s", n ? " " : "",
                                 qt_graph_node_name(g, n));
                if (k < 0) break;
                at += (size_t)k;
            }
            free(rule_of);
            return matched
                ? qt__fail(err, QT_EINVAL, -1, "space[%d]: the nodes '%s' match have none of "
                           "the points named (weights need a layer with weights)", r, ru->nodes)
                : qt__fail(err, QT_EINVAL, -1, "space[%d].nodes: '%s' matches no node (%s%s)",
                           r, ru->nodes, names, at + 4 >= sizeof names ? " ..." : "");
        }
    }
    int count = 0;
    for (int i = 0; i < nn * QT_QP_COUNT; i++) count += rule_of[i] >= 0;
    s->coords = calloc((size_t)(count ? count : 1), sizeof *s->coords);
    if (!s->coords) { free(rule_of); return qt__fail(err, QT_ENOMEM, -1, "out of memory"); }
    for (int n = 0; n < nn; n++)
        for (int p = 0; p < QT_QP_COUNT; p++) {
            int r = rule_of[n * QT_QP_COUNT + p];
            if (r < 0) continue;
            const qt_space_rule *ru = &s->spec.rules[r];
            qt_coord *c = &s->coords[s->n_coords++];
            c->node = n;
            c->point = (qt_qpoint)p;
            c->types = ru->types;
            c->wmin = ru->wmin;
            c->wmax = ru->wmax;
            c->round = ru->round;
            c->bias = ru->bias;
            c->bias_k = ru->bias_k;
            c->absmax = 1.0;
            if (p == QT_QP_WEIGHTS || p == QT_QP_BIAS) {
                const qt_tensor *t = qt_graph_param((qt_graph *)g, n, p == QT_QP_BIAS);
                c->values = t->size;
            } else {
                c->values = qt_graph_node_size(g, n);
            }
        }
    free(rule_of);
    return QT_OK;
}

/* the largest |value| of every coordinate: parameters directly, activations
 * over up to 2048 validation images in float; gradients (training jobs)
 * from the float baseline's training (gst) */
static int calibrate(qt_search *s, qt_graph *g, const qt__gstat *gst, qt_error *err)
{
    qt_stats *st = qt_stats_new(g);
    qt_dataset *cal = NULL;
    int rc;
    if (!st) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    size_t n = qt_dataset_count(s->val);
    if ((rc = qt_dataset_subset(s->val, 0, 0, n < 2048 ? n : 2048, &cal, err))) goto out;
    qt_graph_attach_stats(g, st);
    qt_metrics m;
    rc = qt_evaluate(g, NULL, cal, NULL, &m, err);
    qt_graph_attach_stats(g, NULL);
    if (rc) goto out;
    for (int i = 0; i < s->n_coords; i++) {
        qt_coord *c = &s->coords[i];
        if (c->point == QT_QP_GRAD_OUTPUT || c->point == QT_QP_GRAD_WEIGHTS) {
            c->absmax = !gst ? 0 : c->point == QT_QP_GRAD_OUTPUT ? gst[c->node].ga_absmax
                                                                  : gst[c->node].gw_absmax;
        } else if (c->point == QT_QP_WEIGHTS || c->point == QT_QP_BIAS ||
                   c->point == QT_QP_ACCUMULATOR) {
            const qt_tensor *t = qt_graph_param(g, c->node, c->point == QT_QP_BIAS);
            double mx = 0;
            for (size_t k = 0; k < t->size; k++)
                if (fabs(t->data[k]) > mx) mx = fabs(t->data[k]);
            c->absmax = mx;
        } else {
            c->absmax = qt_stats_get(st, c->node, QT_ST_ACT)->absmax;
        }
        if (!(c->absmax > 0) || !isfinite(c->absmax)) c->absmax = 1.0;
    }
out:
    qt_dataset_free(cal);
    qt_stats_free(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Keys: what makes two evaluations the same                                 */
/* ------------------------------------------------------------------------ */

typedef struct h128 { uint64_t a, b; } h128;

static void hmix(h128 *h, const void *p, size_t n)
{
    const unsigned char *x = p;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ x[i]) * 0x100000001b3ull;
        h->b = (h->b ^ x[i]) * 0x00000100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
}

static void model_key(qt_search *s)
{
    h128 h = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull };
    int v = QT_ENGINE_VERSION;
    char gh[33];
    hmix(&h, &v, sizeof v);
    qt_graph_hash(s->g, gh);
    hmix(&h, gh, 32);
    uint64_t dh = s->val ? qt_dataset_hash(s->val) : 0;
    hmix(&h, &dh, sizeof dh);
    /* scores are over the data's classes (Fashion-MNIST's 10: older keys
     * stay valid; before engine v2's class count every data set had >= 10) */
    int cls = s->val ? qt_dataset_classes(s->val) : 10;
    if (cls != 10) hmix(&h, &cls, sizeof cls);
    hmix(&h, &s->spec.seed, sizeof s->spec.seed);
    /* early stops depend on the constraint and the error rate */
    hmix(&h, &s->spec.metric, sizeof s->spec.metric);
    hmix(&h, &s->spec.relative, sizeof s->spec.relative);
    hmix(&h, &s->spec.absolute, sizeof s->spec.absolute);
    hmix(&h, &s->spec.alpha, sizeof s->spec.alpha);
    hmix(&h, &s->spec.early_pass, sizeof s->spec.early_pass);
    if (s->spec.full_eval) hmix(&h, "full", 4);     /* (older keys stay valid) */
    if (s->hval) hmix(&h, "hardest", 7);           /* early stops see other images */
    if (s->spec.kind == QT_JOB_TRAINING) {          /* a training run per candidate */
        uint64_t th = s->train ? qt_dataset_hash(s->train) : 0;
        hmix(&h, &th, sizeof th);
        hmix(&h, &s->spec.epochs, sizeof s->spec.epochs);
        hmix(&h, &s->spec.lr, sizeof s->spec.lr);
    }
    snprintf(s->model_key, sizeof s->model_key, "%016llx%016llx",
             (unsigned long long)h.a, (unsigned long long)h.b);
}

/* a candidate on the whole split keeps the key it always had; one on the
 * first n images adds n */
static void cand_key(const qt_search *s, const char *cfg_json, size_t images, char key[65])
{
    h128 h = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull };
    hmix(&h, s->model_key, strlen(s->model_key));
    hmix(&h, cfg_json, strlen(cfg_json));
    if (images) {
        uint64_t n = images;
        hmix(&h, "images", 6);
        hmix(&h, &n, sizeof n);
    }
    snprintf(key, 65, "%.32s%016llx%016llx", s->model_key,
             (unsigned long long)h.a, (unsigned long long)h.b);
}

/* ------------------------------------------------------------------------ */
/* Candidates and formats                                                    */
/* ------------------------------------------------------------------------ */

qt_cand *qt_cand_new(const qt_search *s)
{
    qt_cand *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fmt = calloc((size_t)(s->n_coords ? s->n_coords : 1), sizeof *c->fmt);
    if (!c->fmt) { free(c); return NULL; }
    for (int i = 0; i < s->n_coords; i++) c->fmt[i].type = QT_NONE;
    return c;
}

void qt_cand_copy(const qt_search *s, qt_cand *dst, const qt_cand *src)
{
    memcpy(dst->fmt, src->fmt, (size_t)s->n_coords * sizeof *dst->fmt);
    memcpy(dst->reason, src->reason, sizeof dst->reason);
    dst->images = src->images;
}

void qt_cand_free(qt_cand *c)
{
    if (!c) return;
    free(c->fmt);
    free(c);
}

int qt__kth_type(uint32_t mask, int k)
{
    int last = -1;
    for (int t = 0; t < 32; t++)
        if (mask >> t & 1u) {
            if (k-- == 0) return t;
            last = t;
        }
    return last;
}

void qt__say(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

const char *qt__tensor_name(const qt_search *s, int i, char *buf, size_t size)
{
    qt__say(buf, size, "%s %s", qt_graph_node_name(s->g, s->coords[i].node),
            qt_qpoint_name(s->coords[i].point));
    return buf;
}

static const char *round_name(qt_round r)
{
    switch (r) {
    case QT_RNA: return "rna";
    case QT_SR:  return "sr";
    case QT_RD:  return "rd";
    case QT_RZ:  return "rz";
    default:     return "rne";
    }
}

/* exponent bits of a minifloat of width w: E4M3 at 8, E5M10 at 16 */
static int float_ebits(int w)
{
    return w <= 3 ? 1 : w <= 5 ? 2 : w <= 7 ? 3 : w == 8 ? 4 : w <= 16 ? 5 : 8;
}

int qt_search_format(const qt_search *s, int coord, qt_type t, int w, int bias_delta,
                     qt_format *f)
{
    const qt_coord *c = &s->coords[coord];
    char txt[64];
    const char *rn = round_name(c->round);
    qt_error e;
    if (w < 1 || w > 32) return QT_EINVAL;
    switch (t) {
    case QT_FIXED:   snprintf(txt, sizeof txt, "fixed<%d,0,%s>", w, rn); break;
    case QT_UFIXED:  snprintf(txt, sizeof txt, "ufixed<%d,0,%s>", w, rn); break;
    case QT_FLOAT:
        if (w < 3) return QT_EINVAL;
        snprintf(txt, sizeof txt, "float<%d,e%d,%s>", w, float_ebits(w), rn);
        break;
    case QT_LOG:
        if (w < 2) return QT_EINVAL;
        snprintf(txt, sizeof txt, "log<%d,%s>", w, rn);
        break;
    case QT_BINARY:  if (w != 1) return QT_EINVAL; snprintf(txt, sizeof txt, "binary"); break;
    case QT_TERNARY: if (w != 2) return QT_EINVAL; snprintf(txt, sizeof txt, "ternary"); break;
    case QT_CLUSTER:
        if (w > 8) return QT_EINVAL;
        snprintf(txt, sizeof txt, "cluster<%d>", w);
        break;
    default:
        return QT_ENOTSUP;
    }
    if (qt_format_parse(txt, f, &e) != QT_OK) return QT_EINVAL;
    if (t == QT_CLUSTER) return QT_OK;
    qt_fit_bias(f, c->absmax);                /* QT_ERANGE keeps the widest */
    if (bias_delta) {
        f->bias = (int16_t)(f->bias + bias_delta);
        if (qt_format_check(f, &e) != QT_OK) return QT_EINVAL;
    }
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Configurations                                                            */
/* ------------------------------------------------------------------------ */

int qt_search_config(const qt_search *s, const qt_cand *c, qt_qconfig **cfg, qt_error *err)
{
    qt_qconfig *q = qt_qconfig_new(s->g);
    if (!q) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    for (int i = 0; i < s->n_coords; i++)
        if (c->fmt[i].type != QT_NONE) {
            int rc = qt_qconfig_set(q, s->coords[i].node, s->coords[i].point, &c->fmt[i]);
            if (rc) {
                qt_qconfig_free(q);
                return qt__fail(err, rc, -1, "coordinate %d: cannot set its format", i);
            }
        }
    qt_qconfig_set_seed(q, s->spec.seed);
    *cfg = q;
    return QT_OK;
}

char *qt_search_config_json(const qt_search *s, const qt_cand *c)
{
    qt_qconfig *q;
    if (qt_search_config(s, c, &q, NULL)) return NULL;
    json_t *j = qt_qconfig_to_json(q, s->g);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    qt_qconfig_free(q);
    return txt;
}

/* ------------------------------------------------------------------------ */
/* Evaluating                                                                */
/* ------------------------------------------------------------------------ */

size_t qt_search_split(const qt_search *s)
{
    return s->val ? qt_dataset_count(s->val) : s->base.images;
}

/* the images a candidate is evaluated on: 0 for the whole split */
static size_t cand_images(const qt_search *s, const qt_cand *c)
{
    size_t m = qt_search_split(s);
    return c->images && (!m || c->images < m) ? c->images : 0;
}

/* the float model on the first n images, as far as known (see
 * qt_search_baseline_on): n = 0 or unknown n give the baseline */
static void base_on(const qt_search *s, size_t n, qt_result *b)
{
    *b = s->base;
    if (!n) return;
    for (int i = 0; i < s->n_sub; i++)
        if (s->sub[i].n == n) {
            b->top1 = s->sub[i].top1; b->top5 = s->sub[i].top5; b->loss = s->sub[i].loss;
            b->images = n;
            return;
        }
}

int qt_search_baseline_on(qt_search *s, size_t n, qt_result *b, qt_error *err)
{
    size_t m = qt_search_split(s);
    if (!n || (m && n >= m)) { *b = s->base; return QT_OK; }
    for (int i = 0; i < s->n_sub; i++)
        if (s->sub[i].n == n) { base_on(s, n, b); return QT_OK; }
    struct qt__subbase e = { n, s->base.top1, s->base.top5, s->base.loss };
    if (s->val && s->base_correct) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += s->base_correct[i];
        e.top1 = (double)k / (double)n;
        if (s->spec.metric != QT_MET_TOP1) {       /* measured once for this n */
            qt_eval_opts eo;
            qt_metrics mm;
            memset(&eo, 0, sizeof eo);
            eo.limit = n;
            qt_graph *ref = s->spec.kind == QT_JOB_TRAINING ? s->trained : s->own_g;
            int rc = qt_evaluate(ref, NULL, s->val, &eo, &mm, err);
            if (rc) return rc;
            e.top5 = mm.top5;
            e.loss = mm.loss;
        }
    }
    struct qt__subbase *ns = realloc(s->sub, (size_t)(s->n_sub + 1) * sizeof *ns);
    if (!ns) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    s->sub = ns;
    s->sub[s->n_sub++] = e;
    base_on(s, n, b);
    return QT_OK;
}

double qt__threshold_on(const qt_search *s, size_t n)
{
    qt_result b;
    base_on(s, n, &b);
    double rel = s->spec.relative, d = s->spec.absolute;
    switch (s->spec.metric) {
    case QT_MET_TOP5: return rel > 0 ? rel * b.top5 : b.top5 - d;
    case QT_MET_LOSS: return rel > 0 ? b.loss / rel : b.loss + d;
    default:          return rel > 0 ? rel * b.top1 : b.top1 - d;
    }
}

int qt__feasible(const qt_search *s, const qt_result *r)
{
    if (r->fail != QT_FAIL_NONE) return 0;
    qt_result bb;
    base_on(s, r->subset, &bb);
    const qt_result *b = &bb;
    double rel = s->spec.relative, d = s->spec.absolute;
    switch (s->spec.metric) {
    case QT_MET_TOP5:
        return rel > 0 ? r->top5 >= rel * b->top5 - 1e-12 : r->top5 >= b->top5 - d - 1e-12;
    case QT_MET_LOSS:
        return rel > 0 ? r->loss <= b->loss / rel + 1e-12 : r->loss <= b->loss + d + 1e-12;
    default:
        return rel > 0 ? r->top1 >= rel * b->top1 - 1e-12 : r->top1 >= b->top1 - d - 1e-12;
    }
}

typedef struct stopper {
    const qt_search *s;
    const uint8_t *base; /* the float model's verdicts, in the evaluation's order */
    int    exact;        /* 1: hardest first, so only the exact stop holds */
    size_t M;            /* images in the split */
    double lo, hi;       /* range of one image's contribution */
    double rest_max0;    /* the largest the remaining sum can be, from image 0 */
    int    batches;
    int    stopped;      /* -1: can no longer meet the constraint; 1: can no
                            longer fail */
} stopper;

static double contrib(const qt_search *s, int c, int f)
{
    return s->spec.relative > 0 ? c - s->spec.relative * f : c - f + s->spec.absolute;
}

static int early_cb(void *user, const qt_metrics *m, const uint8_t *correct)
{
    stopper *st = user;
    const qt_search *s = st->s;
    if (atomic_load(&((qt_search *)s)->cancel)) return 1;
    size_t n = m->count;
    if (n >= st->M) return 0;
    double sum = 0, best = 0, worst = 0;
    for (size_t i = 0; i < n; i++) sum += contrib(s, correct[i], st->base[i]);
    for (size_t i = n; i < st->M; i++) {
        best += contrib(s, 1, st->base[i]);
        worst += contrib(s, 0, st->base[i]);
    }
    if (sum + best < -1e-9) { st->stopped = -1; return 1; }          /* exact */
    if (s->spec.early_pass && sum + worst >= 1e-9) { st->stopped = 1; return 1; }
    if (!st->exact && s->spec.alpha > 0 && n >= 64) {
        double f = (double)(n - 1) / (double)st->M;
        double eps = (st->hi - st->lo) *
                     sqrt((1.0 - f) * log((double)st->batches / s->spec.alpha) / (2.0 * (double)n));
        if (sum / (double)n + eps < 0) { st->stopped = -1; return 1; }
        if (s->spec.early_pass && sum / (double)n - eps > 0) { st->stopped = 1; return 1; }
    }
    return 0;
}

/* one epoch of the float baseline's training: fold what it saw into
 * s->gstat (qt__gstat) */
static void epoch_stats(void *user, int epoch, const qt_stats *st)
{
    qt_search *s = user;
    int nodes = qt_graph_nodes(s->g);
    (void)epoch;
    for (int k = 0; k < nodes; k++) {
        qt__gstat *g = &s->gstat[k];
        const qt_tstats *w = qt_stats_get(st, k, QT_ST_GRAD_WEIGHTS);
        const qt_tstats *a = qt_stats_get(st, k, QT_ST_GRAD_ACT);
        const qt_tstats *x = qt_stats_get(st, k, QT_ST_ACT);
        if (w && w->count) {
            double sd = qt_tstats_std(w);
            if (w->absmax > g->gw_absmax) g->gw_absmax = w->absmax;
            if (sd > 0 && (g->gw_smin == 0 || sd < g->gw_smin)) g->gw_smin = sd;
            if (sd > g->gw_smax) g->gw_smax = sd;
        }
        if (a && a->count) {
            double sd = qt_tstats_std(a);
            if (a->absmax > g->ga_absmax) g->ga_absmax = a->absmax;
            if (sd > 0 && (g->ga_smin == 0 || sd < g->ga_smin)) g->ga_smin = sd;
            if (sd > g->ga_smax) g->ga_smax = sd;
        }
        if (x && x->count) g->x2 = x->sum2 / (double)x->count;
    }
}

/* train a copy of the job's model under cfg (NULL: float); new graph;
 * with st (the float baseline), what each epoch saw goes to s->gstat */
static int train_copy(qt_search *s, const qt_qconfig *cfg, qt_stats *st, qt_graph **out,
                      qt_error *err)
{
    qt_graph *t = qt_graph_clone(s->own_g);
    qt_train_opts to = qt_train_defaults();
    qt_train_stats ts;
    if (!t) return qt__fail(err, QT_ENOMEM, -1, "out of memory cloning the model");
    to.epochs = s->spec.epochs;
    to.lr = s->spec.lr;
    to.seed = s->spec.seed;
    if (st) {
        to.stats = st;
        to.epoch_cb = epoch_stats;
        to.user = s;
        s->train_batch = to.batch;
    }
    int rc = qt_train(t, cfg, s->train, &to, &ts, err);
    if (rc) { qt_graph_free(t); return rc; }
    *out = t;
    return QT_OK;
}

const qt__gstat *qt__search_gstats(const qt_search *s, int *batch)
{
    if (batch) *batch = s->train_batch;
    return s->gstat;
}

const qt_graph *qt__search_ref(const qt_search *s)
{
    return s->trained ? s->trained : s->g;
}

/* an evaluation's batches: 256 images; on the hardest-first copy the first
 * quarter goes in batches of 64, where a failing candidate runs out of
 * room (on lenet5, r = 0.99, 2000 images, bisection's failing probes stop
 * after 256-512 images). Every evaluation of d uses the same batches, so
 * prefixes (keyed by a batch's first image and size) are shared. */
static void batches(const qt_search *s, const qt_dataset *d, qt_eval_opts *eo)
{
    eo->batch = 256;
    if (d == s->hval) {
        eo->first_batch = 64;
        eo->first_images = qt_dataset_count(d) / 4;
    }
}

/* an evaluation's prefix reuse and MAC count, around each batch */
typedef struct prefix_ctx {
    qt_search *s;
    uint64_t  *sig;        /* NULL: no prefix reuse */
    double     macs;
} prefix_ctx;

static int prefix_resume(void *user, qt_graph *g, size_t start, int n)
{
    prefix_ctx *p = user;
    return p->sig ? qt__pcache_resume(p->s->pc, p->sig, g, start, n) : 0;
}

static void prefix_saved(void *user, qt_graph *g, size_t start, int n, int from)
{
    prefix_ctx *p = user;
    p->macs += (double)n * p->s->suffix_macs[from];
    if (p->sig) qt__pcache_save(p->s->pc, p->sig, g, start, n, from);
}

/* an evaluation under cfg takes part in prefix reuse: its signatures,
 * counted `times` (2: the float model's, every candidate's start), and the
 * hooks in eo; without a cache or memory, only the MAC count. Release
 * p->sig after the evaluation. */
static void prefix_begin(qt_search *s, const qt_qconfig *cfg, const qt_dataset *d, int times,
                         prefix_ctx *p, qt_eval_opts *eo)
{
    p->s = s;
    p->sig = NULL;
    p->macs = 0;
    eo->resume = prefix_resume;
    eo->saved = prefix_saved;
    eo->prefix_user = p;
    if (!s->pc || !cfg) return;
    int nb = qt__pcache_boundaries(s->pc);
    p->sig = malloc((size_t)(nb ? nb : 1) * sizeof *p->sig);
    /* batches of the hardest-first copy hold other images than the same
     * rows of the random order: their prefixes get keys of their own */
    uint64_t tag = d == s->hval ? 0x6861726465737431ull : 0;
    if (p->sig && qt__pcache_sigs(s->pc, cfg, s->spec.seed ^ tag, p->sig)) {
        free(p->sig);
        p->sig = NULL;
    }
    if (p->sig) qt__pcache_note(s->pc, p->sig, times);
}

/* one evaluation through the engine on graph g (a worker's own); training
 * jobs first train a fresh copy of the model under the candidate */
static void eval_engine(qt_search *s, qt_graph *g, const qt_cand *c, qt_result *r)
{
    qt_graph *trained = NULL;
    qt_qconfig *cfg = NULL;
    qt_error err;
    qt_metrics m;
    size_t sub = cand_images(s, c);
    const qt_dataset *d = s->hval && !sub ? s->hval : s->val;
    stopper st = { s, d == s->hval ? s->hbase_correct : s->base_correct, d == s->hval,
                   sub ? sub : qt_dataset_count(d), 0, 0, 0, 0, 0 };
    qt_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    batches(s, d, &eo);
    eo.limit = sub;                   /* the early stop's M is then sub */
    st.batches = (int)((st.M + 255) / 256);
    if (s->spec.relative > 0) { st.lo = -s->spec.relative; st.hi = 1; }
    else { st.lo = -1 + s->spec.absolute; st.hi = 1 + s->spec.absolute; }
    if (s->spec.metric == QT_MET_TOP1 && !s->spec.full_eval) { eo.cb = early_cb; eo.user = &st; }
    prefix_ctx pctx;
    int rc = qt_search_config(s, c, &cfg, &err);
    if (!rc && s->spec.kind == QT_JOB_TRAINING && !(rc = train_copy(s, cfg, NULL, &trained, &err)))
        g = trained;
    prefix_begin(s, rc || trained ? NULL : cfg, d, 1, &pctx, &eo);
    if (!rc) rc = qt_evaluate(g, cfg, d, &eo, &m, &err);
    r->macs = pctx.macs;
    free(pctx.sig);
    qt_qconfig_free(cfg);
    qt_graph_free(trained);
    if (rc) {
        r->fail = rc == QT_ENOMEM ? QT_FAIL_NOMEM : QT_FAIL_OTHER;
        snprintf(r->error, sizeof r->error, "%s", err.text);
        return;
    }
    r->top1 = m.top1; r->top5 = m.top5; r->loss = m.loss;
    r->images = m.count;
    r->early = m.stopped && st.stopped;
    if (r->early) r->feasible = st.stopped > 0;
    if (r->early && st.exact)     /* the most (failed) or least (passed) the split could give */
        r->top1 = (m.top1 * (double)m.count + (r->feasible ? 0.0 : (double)(st.M - m.count))) /
                  (double)st.M;
    if (m.count && m.nan_count == m.count) {
        r->fail = QT_FAIL_NAN;
        snprintf(r->error, sizeof r->error, "every image's logits hold NaN or inf");
    }
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */
/* ------------------------------------------------------------------------ */

/* "val_order": "hardest_first": one float pass over the split gives every
 * image's margin and the float model's metrics m and verdicts (in the
 * random order, s->base_correct; in hval's, s->hbase_correct); s->hval holds
 * the images by margin, smallest first (wrong ones first, the most wrong
 * at the head), ties by their place in the split, so the order depends on
 * the model and data alone */
typedef struct hard_key { float m; size_t i; } hard_key;

static int hard_cmp(const void *a, const void *b)
{
    const hard_key *x = a, *y = b;
    if (x->m != y->m) return x->m < y->m ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int hardest_first(qt_search *s, qt_graph *ref, qt_metrics *m, qt_error *err)
{
    size_t n = qt_dataset_count(s->val);
    float *mg = malloc((n ? n : 1) * sizeof *mg);
    hard_key *k = malloc((n ? n : 1) * sizeof *k);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    s->hbase_correct = malloc(n ? n : 1);
    int rc = QT_OK;
    if (!mg || !k || !idx || !s->hbase_correct) {
        rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
        goto out;
    }
    qt_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.correct = s->base_correct;
    eo.margin = mg;
    if ((rc = qt_evaluate(ref, NULL, s->val, &eo, m, err))) goto out;
    for (size_t i = 0; i < n; i++) {
        k[i].m = isnan(mg[i]) ? -INFINITY : mg[i];
        k[i].i = i;
    }
    qsort(k, n, sizeof *k, hard_cmp);
    for (size_t i = 0; i < n; i++) {
        idx[i] = k[i].i;
        s->hbase_correct[i] = s->base_correct[idx[i]];
    }
    rc = qt_dataset_select(s->val, idx, n, &s->hval, err);
out:
    free(mg);
    free(k);
    free(idx);
    return rc;
}

static int finish_setup(qt_search *s, qt_error *err)
{
    int rc;
    qt__cost_fp32(s, &s->w0, &s->a0, &s->b0);
    qt__cost(s, NULL, &s->base);
    s->base.feasible = 1;
    const qt_result *b = &s->base;
    double rel = s->spec.relative, d = s->spec.absolute;
    switch (s->spec.metric) {
    case QT_MET_TOP5: s->threshold = rel > 0 ? rel * b->top5 : b->top5 - d; break;
    case QT_MET_LOSS: s->threshold = rel > 0 ? b->loss / rel : b->loss + d; break;
    default:          s->threshold = rel > 0 ? rel * b->top1 : b->top1 - d; break;
    }
    model_key(s);
    s->strat = qt_strategy_find(s->spec.strategy);
    if (!s->strat)
        return qt__fail(err, QT_ENOTSUP, -1, "strategy: '%s' is not implemented yet",
                        s->spec.strategy);
    if ((rc = s->strat->init(s, s->spec.strategy_opts, &s->state, err))) return rc;
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* The job's data                                                            */
/* ------------------------------------------------------------------------ */

#define DATA_VAL_MAX 10000

/* the validation (and, with train, the training) split of the job's data */
static int load_splits(const qt_job_spec *spec, qt_dataset **val, qt_dataset **train,
                       qt_error *err)
{
    const qt_job_data *d = &spec->data;
    qt_dataset *all = NULL;
    int rc;
    *val = NULL;
    if (train) *train = NULL;
    if (!spec->has_data) {
        if ((rc = qt_dataset_fashion_mnist(QT_SPLIT_VAL, val, err))) return rc;
        if (train && (rc = qt_dataset_fashion_mnist(QT_SPLIT_TRAIN, train, err))) {
            qt_dataset_free(*val);
            *val = NULL;
        }
        return rc;
    }
    if ((rc = qt_dataset_load_idx(d->train_images, d->train_labels, &d->norm, &all, err)))
        return rc;
    size_t n = qt_dataset_count(all), vc = d->val_count;
    if (!vc) {
        vc = n / 6 < DATA_VAL_MAX ? n / 6 : DATA_VAL_MAX;
        if (!vc) vc = 1;
    }
    if (vc > n || (train && vc >= n)) {
        rc = qt__fail(err, QT_EINVAL, -1, "%s: %zu images, too few for a validation split of "
                      "%zu%s (data.val_count)", d->train_images, n, vc,
                      train ? " and a training split" : "");
        goto out;
    }
    if ((rc = qt_dataset_subset(all, d->val_seed, n - vc, vc, val, err))) goto out;
    if (train && (rc = qt_dataset_subset(all, d->val_seed, 0, n - vc, train, err))) {
        qt_dataset_free(*val);
        *val = NULL;
    }
out:
    qt_dataset_free(all);
    return rc;
}

int qt_job_dataset(const qt_job_spec *spec, qt_split split, qt_dataset **out, qt_error *err)
{
    const qt_job_data *d = &spec->data;
    *out = NULL;
    if (!spec->has_data) return qt_dataset_fashion_mnist(split, out, err);
    switch (split) {
    case QT_SPLIT_VAL: return load_splits(spec, out, NULL, err);
    case QT_SPLIT_TRAIN: {
        qt_dataset *val = NULL;
        int rc = load_splits(spec, &val, out, err);
        qt_dataset_free(val);
        return rc;
    }
    case QT_SPLIT_TEST:
        if (!d->test_images[0])
            return qt__fail(err, QT_ENOTSUP, -1, "dataset '%s' has no test split (data."
                            "test_images)", spec->dataset);
        return qt_dataset_load_idx(d->test_images, d->test_labels, &d->norm, out, err);
    case QT_SPLIT_FULLTRAIN:
        return qt_dataset_load_idx(d->train_images, d->train_labels, &d->norm, out, err);
    }
    return qt__fail(err, QT_EINVAL, -1, "no such split");
}

/* the data must fit the model: per-sample size against its input, labels
 * against its outputs; errors name the files */
static int check_fit(const qt_job_spec *spec, const qt_graph *g, const qt_dataset *d,
                     const char *images, const char *labels, qt_error *err)
{
    int ds[3], gs[3];
    if (!spec->has_data) return QT_OK;      /* Fashion-MNIST: the engine's checks */
    qt_dataset_shape(d, ds);
    qt_graph_node_shape(g, 0, gs);
    if ((size_t)ds[0] * ds[1] * ds[2] != qt_graph_node_size(g, 0))
        return qt__fail(err, QT_EINVAL, -1, "%s: images of %dx%dx%d do not fit the model's "
                        "input '%s' of %dx%dx%d", images, ds[0], ds[1], ds[2],
                        qt_graph_node_name(g, 0), gs[0], gs[1], gs[2]);
    size_t outs = qt_graph_node_size(g, qt_graph_output(g));
    const uint8_t *l = qt_dataset_labels(d);
    for (size_t i = 0; i < qt_dataset_count(d); i++)
        if (l[i] >= outs)
            return qt__fail(err, QT_EINVAL, -1, "%s: label %d >= %zu, the classes of the "
                            "model's output '%s'", labels, l[i], outs,
                            qt_graph_node_name(g, qt_graph_output(g)));
    return QT_OK;
}

static qt_search *alloc_search(const qt_job_spec *spec)
{
    qt_search *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->spec = *spec;
    if (s->spec.strategy_opts) json_incref(s->spec.strategy_opts);
    atomic_init(&s->cancel, 0);
    return s;
}

int qt_search_new(const qt_job_spec *spec, const qt_eval_cache *cache, qt_search **out,
                  qt_error *err)
{
    qt_search *s = alloc_search(spec);
    qt_dataset *val = NULL;
    qt_stats *gst = NULL;
    int rc;
    *out = NULL;
    if (!s) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    if (cache) s->cache = *cache;
    if ((rc = qt_model_load(spec->model, &s->own_g, err))) goto fail;
    s->g = s->own_g;
    qt_dataset *tr = NULL;
    if ((rc = load_splits(spec, &val, spec->kind == QT_JOB_TRAINING ? &tr : NULL, err)))
        goto fail;
    if ((rc = check_fit(spec, s->g, val, spec->data.train_images, spec->data.train_labels,
                        err)) ||
        (tr && (rc = check_fit(spec, s->g, tr, spec->data.train_images,
                               spec->data.train_labels, err)))) {
        qt_dataset_free(tr);
        goto fail;
    }
    size_t n = qt_dataset_count(val);
    if (spec->val_limit && spec->val_limit < n) n = spec->val_limit;
    if ((rc = qt_dataset_subset(val, 0, 0, n, &s->val, err))) { qt_dataset_free(tr); goto fail; }
    qt_dataset_free(val);
    val = NULL;
    double t0 = now();
    qt_graph *ref = s->own_g;         /* the float model the candidates are compared with */
    if (spec->kind == QT_JOB_TRAINING) {
        size_t nt = qt_dataset_count(tr);
        if (spec->train_limit && spec->train_limit < nt) nt = spec->train_limit;
        rc = qt_dataset_subset(tr, 0, 0, nt, &s->train, err);
        qt_dataset_free(tr);
        if (rc) goto fail;
        s->gstat = calloc((size_t)qt_graph_nodes(s->g), sizeof *s->gstat);
        if (!s->gstat || !(gst = qt_stats_new(s->own_g))) {
            rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
            goto fail;
        }
        if ((rc = train_copy(s, NULL, gst, &s->trained, err))) goto fail;
        ref = s->trained;
    }
    if ((rc = build_coords(s, err)) || (rc = calibrate(s, ref, s->gstat, err))) goto fail;
    qt_stats_free(gst);
    gst = NULL;
    int nodes = qt_graph_nodes(s->g);
    s->suffix_macs = calloc((size_t)nodes + 1, sizeof *s->suffix_macs);
    if (!s->suffix_macs) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto fail; }
    for (int k = nodes - 1; k >= 0; k--)
        s->suffix_macs[k] = s->suffix_macs[k + 1] + (double)qt_graph_node_macs(s->g, k);
    if (spec->kind == QT_JOB_INFERENCE && spec->cache_mb > 0 &&
        !(s->pc = qt__pcache_new(s->g, s->coords, s->n_coords, (size_t)spec->cache_mb << 20))) {
        rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
        goto fail;
    }
    s->base_correct = malloc(n ? n : 1);
    if (!s->base_correct) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto fail; }
    qt_metrics m;
    if (spec->hardest_first && spec->metric == QT_MET_TOP1 &&
        (rc = hardest_first(s, ref, &m, err)))
        goto fail;
    /* the float model's prefixes are every candidate's until its first
     * quantized node: keep them (of the order whole-split candidates see).
     * Hardest first, the margins' pass has measured the float model, and
     * this one runs only to keep them. */
    if (!s->hval || s->pc) {
        qt_eval_opts eo;
        qt_metrics mp;
        memset(&eo, 0, sizeof eo);
        eo.correct = s->hval ? NULL : s->base_correct;
        const qt_dataset *bd = s->hval ? s->hval : s->val;
        batches(s, bd, &eo);
        prefix_ctx pctx;
        qt_qconfig *fcfg = s->pc ? qt_qconfig_new(s->g) : NULL;
        prefix_begin(s, fcfg, bd, 2, &pctx, &eo);
        rc = qt_evaluate(ref, NULL, bd, &eo, s->hval ? &mp : &m, err);
        free(pctx.sig);
        qt_qconfig_free(fcfg);
        if (rc) goto fail;
    }
    s->base.top1 = m.top1; s->base.top5 = m.top5; s->base.loss = m.loss;
    s->base.images = m.count;
    s->base.seconds = now() - t0;
    if ((rc = finish_setup(s, err))) goto fail;
    *out = s;
    return QT_OK;
fail:
    qt_stats_free(gst);
    qt_dataset_free(val);
    qt_search_free(s);
    return rc;
}

int qt_search_new_custom(const qt_job_spec *spec, const qt_graph *g, const qt_result *base,
                         double absmax, qt_eval_fn fn, void *user,
                         const qt_eval_cache *cache, qt_search **out, qt_error *err)
{
    qt_search *s = alloc_search(spec);
    int rc;
    *out = NULL;
    if (!s) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    if (cache) s->cache = *cache;
    s->g = g;
    s->efn = fn;
    s->euser = user;
    s->base = *base;
    if ((rc = build_coords(s, err))) goto fail;
    for (int i = 0; i < s->n_coords; i++) s->coords[i].absmax = absmax > 0 ? absmax : 1.0;
    if ((rc = finish_setup(s, err))) goto fail;
    *out = s;
    return QT_OK;
fail:
    qt_search_free(s);
    return rc;
}

void qt_search_free(qt_search *s)
{
    if (!s) return;
    if (s->strat && s->state) s->strat->free(s->state);
    for (int i = 0; i < s->n_hist; i++) qt_cand_free(s->hist[i].c);
    free(s->hist);
    free(s->coords);
    free(s->base_correct);
    free(s->hbase_correct);
    qt_dataset_free(s->hval);
    free(s->sub);
    free(s->suffix_macs);
    qt__pcache_free(s->pc);
    qt_dataset_free(s->val);
    qt_dataset_free(s->train);
    qt_graph_free(s->trained);
    free(s->gstat);
    qt_graph_free(s->own_g);
    json_decref(s->spec.strategy_opts);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */
/* ------------------------------------------------------------------------ */

#define ROUND_MAX 256

typedef struct job {
    qt_search *s;
    qt_cand  **c;
    qt_result *r;
    char     **cj;         /* canonical configurations */
    int       *todo;       /* indices into c/r to compute */
    int        n_todo;
    atomic_int next;
    qt_graph **graphs;     /* one per worker */
    int        threads;    /* OpenMP threads per worker */
    /* completions, handed from the workers to the driving thread */
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int       *done_q;     /* indices in completion order */
    int        n_done;
    int        store_rc;   /* the cache refused an evaluation */
} job;

/* complete: not cut short by a cancel (a custom evaluator always is) */
static int complete(const qt_search *s, const qt_result *r)
{
    return s->efn || r->fail != QT_FAIL_NONE || r->early ||
           r->images == (r->subset ? r->subset : qt_dataset_count(s->val));
}

static void compute(job *j, int w, int k)
{
    qt_search *s = j->s;
    qt_result *r = &j->r[k];
    double t0 = now();
    if (s->efn) {
        int rc = s->efn(s->euser, s, j->c[k], r);
        if (rc) { r->fail = QT_FAIL_OTHER; snprintf(r->error, sizeof r->error, "%s", qt_strerror(rc)); }
    } else {
        eval_engine(s, j->graphs[w], j->c[k], r);
    }
    r->subset = cand_images(s, j->c[k]);
    r->seconds = now() - t0;
}

/* on the driving thread, as each evaluation finishes: its cost and verdict,
 * and the cache stores it at once (a crash loses at most the evaluations
 * still running) */
static void finish(job *j, int k)
{
    qt_search *s = j->s;
    qt_result *r = &j->r[k];
    if (!complete(s, r)) return;             /* cancelled midway: nothing to keep */
    qt__cost(s, j->c[k], r);
    if (!r->early) r->feasible = qt__feasible(s, r);
    s->computed++;
    s->work.computed++;
    if (r->early) { s->work.early_fail += !r->feasible; s->work.early_pass += r->feasible; }
    if (!s->efn) {
        s->work.images += (double)r->images;
        s->work.macs += r->macs;
        s->work.macs_full += (double)(r->subset ? r->subset : qt_dataset_count(s->val)) *
                             s->suffix_macs[0];
    }
    if (s->cache.stored && !j->store_rc) {
        char key[65];
        cand_key(s, j->cj[k], r->subset, key);
        int rc = s->cache.stored(s->cache.user, key, j->c[k], j->cj[k], r);
        if (rc) {
            j->store_rc = rc;
            qt_search_cancel(s);
        }
    }
}

static void *worker(void *arg)
{
    void **a = arg;
    job *j = a[0];
    int w = (int)(intptr_t)a[1];
    omp_set_num_threads(j->threads);
    for (;;) {
        if (atomic_load(&j->s->cancel)) break;
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_todo) break;
        compute(j, w, j->todo[i]);
        pthread_mutex_lock(&j->mu);
        j->done_q[j->n_done++] = i;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_lock(&j->mu);
    j->done_q[j->n_todo]++;                  /* one more worker gone */
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* compute the to-do list on the pool and finish (store) the evaluations in
 * proposal order as they complete: each one as soon as it and every one
 * proposed before it in the round are computed, so the store's history has
 * the order of an uninterrupted run and a crash loses at most what was
 * still running (plus what finished behind it). After a cancel only the
 * computed prefix is kept. The graphs exist already. */
static void run_pool(job *j, int workers)
{
    if (workers <= 1 || j->n_todo <= 1) {
        for (int i = 0; i < j->n_todo && !atomic_load(&j->s->cancel); i++) {
            compute(j, 0, j->todo[i]);
            finish(j, j->todo[i]);
        }
        return;
    }
    pthread_t th[64];
    void *args[64][2];
    uint8_t fin[ROUND_MAX];
    int started = 0, seen = 0, next = 0;
    memset(fin, 0, sizeof fin);
    atomic_store(&j->next, 0);
    j->n_done = 0;
    j->done_q[j->n_todo] = 0;                /* the count of workers gone */
    for (int w = 0; w < workers && w < 64; w++) {
        args[w][0] = j;
        args[w][1] = (void *)(intptr_t)w;
        if (pthread_create(&th[w], NULL, worker, args[w]) != 0) break;
        started++;
    }
    if (started == 0) {
        for (int i = 0; i < j->n_todo && !atomic_load(&j->s->cancel); i++) {
            compute(j, 0, j->todo[i]);
            finish(j, j->todo[i]);
        }
        return;
    }
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (seen < j->n_done) fin[j->done_q[seen++]] = 1;
        if (next < j->n_todo && fin[next]) {
            pthread_mutex_unlock(&j->mu);
            while (next < j->n_todo && fin[next]) finish(j, j->todo[next++]);
            pthread_mutex_lock(&j->mu);
            continue;
        }
        if (j->done_q[j->n_todo] == started) break;
        pthread_cond_wait(&j->cv, &j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    for (int w = 0; w < started; w++) pthread_join(th[w], NULL);
}

static int find_memo(const qt_search *s, const char *cfg_json, size_t images, qt_result *r,
                     char **jsons)
{
    for (int i = 0; i < s->n_hist; i++)
        if (jsons[i] && s->hist[i].c->images == images && strcmp(jsons[i], cfg_json) == 0) {
            *r = s->hist[i].r;
            return 1;
        }
    return 0;
}

static int push_hist(qt_search *s, qt_cand *c, const qt_result *r)
{
    if (s->n_hist == s->cap_hist) {
        int cap = s->cap_hist ? 2 * s->cap_hist : 64;
        qt_hist *h = realloc(s->hist, (size_t)cap * sizeof *h);
        if (!h) return QT_ENOMEM;
        s->hist = h;
        s->cap_hist = cap;
    }
    s->hist[s->n_hist].c = c;
    s->hist[s->n_hist].r = *r;
    s->n_hist++;
    return QT_OK;
}

int qt_search_run(qt_search *s, qt_progress_cb cb, void *user, qt_error *err)
{
    int workers = s->spec.workers > 0 ? s->spec.workers : 1;
    int rc = QT_OK, done = 0;
    double t0 = now();
    qt_graph *graphs[64] = { 0 };
    char **jsons = NULL;     /* canonical configs of the history, for the memo */
    int cap_json = 0;
    if (workers > 64) workers = 64;
    if (!s->efn) {
        graphs[0] = s->own_g;
        for (int w = 1; w < workers; w++)
            if (!(graphs[w] = qt_graph_clone(s->own_g))) {
                rc = qt__fail(err, QT_ENOMEM, -1, "out of memory cloning the model");
                goto out;
            }
    }
    int threads = omp_get_max_threads() / workers;
    if (threads < 1) threads = 1;

    while (!done) {
        qt_cand *c[ROUND_MAX];
        qt_result r[ROUND_MAX];
        char *cj[ROUND_MAX] = { 0 };
        int todo[ROUND_MAX], n = 0, n_todo = 0;
        if (atomic_load(&s->cancel)) { rc = qt__fail(err, QT_ECANCEL, -1, "cancelled"); break; }
        if (s->spec.max_seconds > 0 && s->seconds0 + now() - t0 >= s->spec.max_seconds) break;
        while (n < ROUND_MAX) {
            if (s->spec.max_evals > 0 && s->n_hist + n >= s->spec.max_evals) { done = 1; break; }
            qt_cand *nc = qt_cand_new(s);
            if (!nc) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto round_fail; }
            int st = s->strat->propose(s->state, s, nc);
            if (st != QT_PROPOSE) {
                qt_cand_free(nc);
                if (st == QT_DONE) done = 1;
                break;
            }
            nc->images = cand_images(s, nc);
            c[n++] = nc;
        }
        if (n == 0) {
            if (!done) rc = qt__fail(err, QT_EINVAL, -1, "strategy '%s' waits with nothing "
                                     "to wait for", s->strat->name);
            break;
        }
        /* the float model on each subset's images (measured here, between
         * rounds, when the constraint is not top-1) */
        for (int i = 0; i < n; i++) {
            qt_result fb;
            if (c[i]->images && (rc = qt_search_baseline_on(s, c[i]->images, &fb, err)))
                goto round_fail;
        }
        /* answer what is known: the memo, then the cache */
        for (int i = 0; i < n; i++) {
            memset(&r[i], 0, sizeof r[i]);
            cj[i] = qt_search_config_json(s, c[i]);
            if (!cj[i]) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto round_fail; }
            int known = find_memo(s, cj[i], c[i]->images, &r[i], jsons);
            for (int k = 0; k < i && !known; k++)
                if (c[k]->images == c[i]->images && !strcmp(cj[k], cj[i]))
                    known = 2;                                  /* computed in this round */
            if (known == 1) { r[i].cached = 1; continue; }
            if (known == 2) { r[i].cached = -1; continue; }     /* filled after the pool */
            char key[65];
            cand_key(s, cj[i], c[i]->images, key);
            if (s->cache.lookup && s->cache.lookup(s->cache.user, key, &r[i])) {
                r[i].cached = 1;
                r[i].subset = c[i]->images;
                qt__cost(s, c[i], &r[i]);     /* this job's cost, whoever measured it */
                continue;
            }
            todo[n_todo++] = i;
        }
        int done_q[ROUND_MAX + 1];
        job j;
        memset(&j, 0, sizeof j);
        j.s = s; j.c = c; j.r = r; j.cj = cj; j.todo = todo; j.n_todo = n_todo;
        j.graphs = graphs; j.threads = threads; j.done_q = done_q;
        atomic_init(&j.next, 0);
        pthread_mutex_init(&j.mu, NULL);
        pthread_cond_init(&j.cv, NULL);
        run_pool(&j, workers);
        pthread_cond_destroy(&j.cv);
        pthread_mutex_destroy(&j.mu);
        if (j.store_rc) {
            rc = qt__fail(err, j.store_rc, -1, "the cache could not keep an evaluation (%s); "
                          "the search stopped", qt_strerror(j.store_rc));
            goto round_fail;
        }
        if (atomic_load(&s->cancel)) {
            rc = qt__fail(err, QT_ECANCEL, -1, "cancelled");
            goto round_fail;
        }
        for (int i = 0; i < n; i++)
            if (r[i].cached == -1)
                for (int k = 0; k < i; k++)
                    if (c[k]->images == c[i]->images && !strcmp(cj[k], cj[i])) {
                        r[i] = r[k];
                        r[i].cached = 1;
                        break;
                    }
        /* observe in proposal order */
        for (int i = 0; i < n; i++) {
            if (s->n_hist == cap_json) {
                int cap = cap_json ? 2 * cap_json : 64;
                char **nj = realloc(jsons, (size_t)cap * sizeof *nj);
                if (!nj || push_hist(s, c[i], &r[i])) {
                    if (nj) jsons = nj;
                    for (int k = i; k < n; k++) { qt_cand_free(c[k]); free(cj[k]); }
                    rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
                    goto out;
                }
                jsons = nj;
                cap_json = cap;
            } else if (push_hist(s, c[i], &r[i])) {
                for (int k = i; k < n; k++) { qt_cand_free(c[k]); free(cj[k]); }
                rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
                goto out;
            }
            jsons[s->n_hist - 1] = cj[i];
            s->strat->observe(s->state, s, c[i], &s->hist[s->n_hist - 1].r);
            if (cb) cb(user, s, c[i], &s->hist[s->n_hist - 1].r);
        }
        continue;
round_fail:
        for (int i = 0; i < n; i++) { qt_cand_free(c[i]); free(cj[i]); }
        goto out;
    }
out:
    s->seconds0 += now() - t0;
    for (int w = 1; w < workers; w++) qt_graph_free(graphs[w]);
    for (int i = 0; i < s->n_hist && jsons; i++) free(jsons[i]);
    free(jsons);
    return rc;
}

void qt_search_cancel(qt_search *s) { atomic_store(&s->cancel, 1); }

void qt_search_work_get(const qt_search *s, qt_search_work *w)
{
    *w = s->work;
    if (s->pc) qt__pcache_counts(s->pc, &w->prefix_hits, &w->prefix_batches, &w->prefix_peak);
}

int qt_search_measure_test(qt_search *s, const qt_cand *c, qt_result *r, qt_error *err)
{
    qt_dataset *test = NULL;
    qt_qconfig *cfg = NULL;
    qt_metrics m;
    int rc;
    memset(r, 0, sizeof *r);
    if (s->efn || !s->own_g)
        return qt__fail(err, QT_ENOTSUP, -1, "a custom search has no test split");
    if ((rc = qt_job_dataset(&s->spec, QT_SPLIT_TEST, &test, err))) return rc;
    /* scored over as many classes as the validation split (a test file may
     * lack the top ones) */
    if (s->val && qt_dataset_classes(test) < qt_dataset_classes(s->val) &&
        (rc = qt_dataset_set_classes(test, qt_dataset_classes(s->val), err)))
        goto out;
    if ((rc = check_fit(&s->spec, s->own_g, test, s->spec.data.test_images,
                        s->spec.data.test_labels, err)))
        goto out;
    if (c && (rc = qt_search_config(s, c, &cfg, err))) goto out;
    double t0 = now();
    qt_graph *g = s->own_g, *trained = NULL;
    if (s->spec.kind == QT_JOB_TRAINING) {       /* train under the candidate again */
        if (!c) g = s->trained;
        else if ((rc = train_copy(s, cfg, NULL, &trained, err))) goto out;
        else g = trained;
    }
    rc = qt_evaluate(g, cfg, test, NULL, &m, err);
    qt_graph_free(trained);
    if (rc) goto out;
    r->top1 = m.top1; r->top5 = m.top5; r->loss = m.loss;
    r->images = m.count;
    r->seconds = now() - t0;
    if (c) qt__cost(s, c, r);
    else qt__cost(s, NULL, r);
    r->feasible = qt__feasible(s, r);
out:
    qt_qconfig_free(cfg);
    qt_dataset_free(test);
    return rc;
}

const qt_dataset *qt_search_dataset(const qt_search *s) { return s->val; }

/* ------------------------------------------------------------------------ */
/* Accessors and the answer                                                  */
/* ------------------------------------------------------------------------ */

const qt_job_spec *qt_search_spec(const qt_search *s) { return &s->spec; }
const qt_graph *qt_search_graph(const qt_search *s) { return s->g; }
int qt_search_coords(const qt_search *s, const qt_coord **c) { *c = s->coords; return s->n_coords; }
const qt_result *qt_search_baseline(const qt_search *s) { return &s->base; }
double qt_search_threshold(const qt_search *s) { return s->threshold; }
int qt_search_evals(const qt_search *s) { return s->n_hist; }
int qt_search_computed(const qt_search *s) { return s->computed; }

void qt_search_result(const qt_search *s, int i, const qt_cand **c, const qt_result **r)
{
    if (c) *c = s->hist[i].c;
    if (r) *r = &s->hist[i].r;
}

/* the metric, higher is better */
static double score(const qt_search *s, const qt_result *r)
{
    switch (s->spec.metric) {
    case QT_MET_TOP5: return r->top5;
    case QT_MET_LOSS: return -r->loss;
    default:          return r->top1;
    }
}

const qt_cand *qt_search_best(const qt_search *s, const qt_result **r, int *feasible)
{
    int best = -1, bf = 0;
    for (int i = 0; i < s->n_hist; i++) {
        const qt_result *x = &s->hist[i].r;
        if (x->fail != QT_FAIL_NONE || x->subset) continue;     /* subsets: screening only */
        if (best < 0) { best = i; bf = x->feasible; continue; }
        const qt_result *b = &s->hist[best].r;
        if (x->feasible && !bf) { best = i; bf = 1; continue; }
        if (!x->feasible && bf) continue;
        if (bf ? (x->cost < b->cost || (x->cost == b->cost && score(s, x) > score(s, b)))
               : (score(s, x) > score(s, b) || (score(s, x) == score(s, b) && x->cost < b->cost)))
            best = i;
    }
    if (best < 0) return NULL;
    if (r) *r = &s->hist[best].r;
    if (feasible) *feasible = bf;
    return s->hist[best].c;
}
