/*
 * strat_bisect.c -- the bisection strategy: each tensor's own width, then
 * their combination in order of sensitivity, then a repair.
 *
 * Phase 1, per tensor in isolation (every other tensor float). A task is
 * one (tensor, type) for every type the tensor allows that can take one of
 * its widths; its widths [lo, hi] are the tensor's [wmin, wmax] cut to what
 * the type can be. The answer lies in [L, R] = [lo, hi + 1], hi + 1 meaning
 * float (taken to pass: the float model meets any constraint of r <= 1).
 * Each round proposes, for every task still searching, its probe
 * mid = floor((L + R) / 2) with the bias fitted: pass sets R = mid, fail
 * L = mid + 1, until L == R. So a task takes ceil or floor of
 * log2(hi - lo + 2) probes (exactly 3 for [2, 8]), and the rounds of
 * phase 1 are the most any task takes. A task ending at R = hi + 1 failed
 * even at hi: with no other type passing, the tensor stays float.
 *   Bias search (the rule's "bias": {"search": k}): a task that found w
 * proposes, in one round, the deltas -k..k (not 0) at w and at w - 1
 * (w - 1 >= lo; it failed at the fitted bias), skipping formats that
 * cannot be or equal the fitted one. If some delta passes at w - 1, the
 * task's answer is w - 1 with the best delta there; otherwise w with the
 * best passing delta (0 included). Best: highest metric, then the smaller
 * |delta|, then the first proposed (the negative one). No further width is
 * tried below w - 1, and a task that fails even at hi gets no bias search.
 *   A tensor's answer is its task of lowest cost (bits per value times its
 * values) that passed, ties to the earlier type (qt_type order); its
 * margin is that result's metric minus the threshold (loss: negated), and
 * the smaller the margin the more sensitive the tensor.
 *
 * Phase 2 (AIMET-style). The m tensors with an answer are ordered from the
 * largest margin to the smallest (ties: coordinate order). One candidate
 * puts all m at their answers; if it passes, that is the answer. Otherwise
 * the largest k whose prefix (the first k in that order at their answers,
 * the rest float) passes is binary-searched, one candidate per round, on
 * [0, m] with k = 0 (float) passing and k = m failing. Option "phase2":
 * false skips this prefix search (the full combination is still tried).
 *
 * Phase 3, when the full combination fails: from it, each step widens by
 * one bit the next tensor round a cycle that starts at the most sensitive
 * and goes towards the least, skipping those at their type's widest width
 * (keeping its bias delta when that width can take it, else delta 0). Going
 * round spreads the repair: widening the most sensitive tensor to its
 * widest first spends many bits on one (on lenet5, fc3 to 8 bits: 4.34x
 * against 5.62x round the cycle);
 * once every tensor is at its widest, each step returns the most sensitive
 * one still quantized to float instead (never the last: that would be the
 * float model). One candidate per step, until one passes. The search's
 * answer (qt_search_best) is then the cheaper of that and the largest
 * passing prefix, both of which have been evaluated.
 *
 * Option "estimate" (default false): phase-1 probes whose drop estimate
 * (gains.c, the tensor alone) exceeds SKIP x the budget are taken as failed
 * unevaluated, and the next reason says so. On lenet5 (r = 0.99) fixed: the
 * same 6.40x in 20 evaluations instead of 28; fixed+float+cluster: 6.62x
 * in 49 instead of 8.25x in 56 (a per-tensor width ruled out that the
 * combination needed), hence off.
 *
 * A candidate equal to one already evaluated (the prefix of one tensor is
 * that tensor's own phase-1 answer) is not proposed again: its result is
 * taken from the history. Everything depends only on the results, in
 * proposal order, so the proposals do not depend on the number of workers.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_BISECT = 0, T_BIAS = 1, T_DONE = 2 };                 /* task stages */
enum { PH_TENSORS, PH_FULL, PH_PREFIX, PH_REPAIR, PH_DONE };   /* phases */
enum { PR_PROBE, PR_BIAS, PR_COMBO };                          /* probe kinds */
enum { RP_GAIN, RP_CYCLE, RP_SENSITIVE, RP_COUNT };            /* repair rules */
static const char *const repair_names[RP_COUNT] = { "gain", "cycle", "sensitive" };

/* phase 1: one (tensor, type) */
typedef struct task {
    int     coord;
    qt_type type;
    int     lo, hi;        /* the widths this type can take in the tensor's range */
    int     L, R;          /* the answer lies in [L, R]; R == hi + 1: float */
    double  score_R;       /* the metric at R, when R <= hi */
    int     failed;        /* the widest width failed so far (0: none) */
    int     stage;         /* T_BISECT, T_BIAS, T_DONE */
    int     pending;       /* probes proposed, not yet observed */
    int     slot;          /* T_BIAS: the next (width, delta) slot to consider */
    /* the answer, once bisected: width, bias delta, metric */
    int     aw, ad;
    double  ascore;
} task;

/* a proposal awaiting its result, in proposal order */
typedef struct probe {
    int kind;              /* PR_* */
    int task;              /* PR_PROBE, PR_BIAS */
    int width, delta;
} probe;

/* a tensor's phase-1 answer, in sensitivity order */
typedef struct answer {
    int     coord;
    qt_type type;
    int     w, delta;      /* phase 1 */
    int     hi;            /* its type's widest width */
    double  margin;        /* metric - threshold at its answer */
    double  loss;          /* float's metric - metric at its answer (>= 0) */
    double  values;        /* values of the tensor (the cost of one more bit) */
    int     cw;            /* phase 3: current width, 0 = float */
} answer;

#define EST_SAMPLES 2000   /* images the drop estimate is measured on */
#define SKIP        1.5    /* predicted drop / budget beyond which a probe is not evaluated */

typedef struct bis {
    qt__margins *M;        /* option "estimate": the drop estimate (NULL: off) */
    double  budget;        /* the top-1 drop the constraint allows */
    int     n_ruled;       /* probes the estimate ruled out */
    char    ruled[112];    /* the last, for the next reason */
    int     phase2;        /* option: binary-search the prefixes */
    int     repair;        /* option: RP_* */
    int     phase;         /* PH_* */
    task   *t;
    int     nt;
    probe  *q;             /* FIFO of pending proposals */
    int     qhead, qtail;
    answer *a;             /* the m tensors with an answer, least sensitive first */
    int     m;
    int     n_float;       /* tuned tensors left float by phase 1 */
    int     float_coord;   /* the first of them */
    int     float_untunable; /* ... because none of its types can be proposed */
    int     lo, hi;        /* PH_PREFIX: prefix lo passes, prefix hi fails */
    int     last;          /* PH_REPAIR: the answer changed by the last step */
    int     rr;            /* PH_REPAIR: the next tensor round the cycle (0: the
                              most sensitive) */
} bis;

/* ---- small helpers ---- */

static double score(const qt_search *s, const qt_result *r)
{
    switch (qt_search_spec(s)->metric) {
    case QT_MET_TOP5: return r->top5;
    case QT_MET_LOSS: return -r->loss;
    default:          return r->top1;
    }
}

static double thr_score(const qt_search *s)
{
    return qt_search_spec(s)->metric == QT_MET_LOSS ? -qt_search_threshold(s)
                                                    : qt_search_threshold(s);
}

static int passed(const qt_result *r) { return r->feasible && r->fail == QT_FAIL_NONE; }

/* the format of coord at (t, w, delta); delta 0 when w cannot take delta */
static int format_at(const qt_search *s, int coord, qt_type t, int w, int delta, qt_format *f)
{
    if (qt_search_format(s, coord, t, w, delta, f) == QT_OK) return QT_OK;
    return delta ? qt_search_format(s, coord, t, w, 0, f) : QT_EINVAL;
}

/* float, as qt_cand_new leaves it */
static qt_format float_fmt(void)
{
    qt_format f;
    memset(&f, 0, sizeof f);
    f.type = QT_NONE;
    return f;
}

/* the result of an earlier candidate with the same formats, or NULL */
static const qt_result *known(const qt_search *s, const qt_cand *c)
{
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    for (int h = qt_search_evals(s) - 1; h >= 0; h--) {
        const qt_cand *hc;
        const qt_result *hr;
        int i;
        qt_search_result(s, h, &hc, &hr);
        for (i = 0; i < n; i++)
            if (!(hc->fmt[i].type == QT_NONE && c->fmt[i].type == QT_NONE) &&
                !qt_format_equal(&hc->fmt[i], &c->fmt[i]))
                break;
        if (i == n) return hr;
    }
    return NULL;
}

/* queue a proposal; the queue holds the most that can be pending at once
 * (bis_init), and it empties at the end of every round */
static void push(bis *b, int kind, int task_, int width, int delta)
{
    b->q[b->qtail++] = (probe){ kind, task_, width, delta };
}

/* ---- set-up ---- */

static void bis_free(void *state)
{
    bis *b = state;
    if (!b) return;
    free(b->t);
    free(b->q);
    free(b->a);
    qt__margins_free(b->M);
    free(b);
}

static int bis_init(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c), phase2 = 1, repair = RP_GAIN, estimate = 0;
    if (opts && !json_is_object(opts))
        return qt__fail(err, QT_EINVAL, -1, "strategy: bisection's options must be an object");
    if (opts) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)opts, key, v) {
            if (!strcmp(key, "repair")) {
                const char *r = json_string_value(v);
                for (repair = 0; r && repair < RP_COUNT; repair++)
                    if (!strcmp(r, repair_names[repair])) break;
                if (!r || repair == RP_COUNT)
                    return qt__fail(err, QT_EINVAL, -1, "strategy.repair: must be \"gain\", "
                                    "\"cycle\" or \"sensitive\"");
                continue;
            }
            if (!strcmp(key, "estimate")) {
                if (!json_is_boolean(v))
                    return qt__fail(err, QT_EINVAL, -1, "strategy.estimate: must be true or "
                                    "false");
                estimate = json_is_true(v);
                continue;
            }
            if (strcmp(key, "phase2") != 0)
                return qt__fail(err, QT_EINVAL, -1, "strategy.%s: not an option of bisection "
                                "(it takes: phase2, repair, estimate)", key);
            if (!json_is_boolean(v))
                return qt__fail(err, QT_EINVAL, -1, "strategy.phase2: must be true or false");
            phase2 = json_is_true(v);
        }
    }
    bis *b = calloc(1, sizeof *b);
    if (!b) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    b->phase2 = phase2;
    b->repair = repair;
    /* the drop estimate (a top-1 constraint on the engine's data only) */
    if (estimate && qt_search_spec(s)->metric == QT_MET_TOP1 && qt_search_dataset(s)) {
        b->budget = qt_search_baseline(s)->top1 - qt_search_threshold(s);
        int rc = b->budget > 0 ? qt__margins_new(s, EST_SAMPLES, NULL, &b->M, err) : QT_OK;
        if (rc) { bis_free(b); return rc; }
    }
    b->float_coord = -1;
    size_t cap = 1, ncoord = n > 0 ? (size_t)n : 1;
    for (int i = 0; i < n; i++) cap += (size_t)__builtin_popcount(c[i].types);
    b->t = calloc(cap, sizeof *b->t);
    b->a = calloc(ncoord, sizeof *b->a);
    /* pending at once: a probe, or every bias slot, per task; or one combination */
    size_t qcap = 1;
    for (int i = 0; i < n; i++)
        qcap += (size_t)__builtin_popcount(c[i].types) * (size_t)(2 * (2 * c[i].bias_k + 1) + 1);
    b->q = malloc(qcap * sizeof *b->q);
    if (!b->t || !b->a || !b->q) {
        bis_free(b);
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    for (int i = 0; i < n; i++)
        for (int ty = 0; ty < QT_TYPE_COUNT; ty++) {
            if (!(c[i].types >> ty & 1u)) continue;
            int lo = 0, hi = 0;
            qt_format f;
            for (int w = c[i].wmin; w <= c[i].wmax; w++)
                if (qt_search_format(s, i, (qt_type)ty, w, 0, &f) == QT_OK) {
                    if (!lo) lo = w;
                    hi = w;
                }
            if (!lo) continue;                    /* this type cannot be proposed here */
            task *t = &b->t[b->nt++];
            t->coord = i;
            t->type = (qt_type)ty;
            t->lo = lo;
            t->hi = hi;
            t->L = lo;
            t->R = hi + 1;
        }
    *state = b;
    return QT_OK;
}

/* ---- phase 1 ---- */

/* the (width, delta) of bias slot j of task t: 0 when it is not proposed */
static int bias_slot(const qt_search *s, const task *t, int j, int *w, int *d, qt_format *f)
{
    const qt_coord *c;
    qt_search_coords(s, &c);
    int k = c[t->coord].bias_k, per = 2 * k + 1;
    qt_format f0;
    *w = t->R - j / per;
    *d = -k + j % per;
    if (*d == 0 || *w < t->lo) return 0;
    if (qt_search_format(s, t->coord, t->type, *w, *d, f) != QT_OK) return 0;
    if (qt_search_format(s, t->coord, t->type, *w, 0, &f0) != QT_OK) return 0;
    return !qt_format_equal(f, &f0);              /* types without a bias: nothing new */
}

static int bias_slots(const qt_search *s, const task *t)
{
    const qt_coord *c;
    qt_search_coords(s, &c);
    return 2 * (2 * c[t->coord].bias_k + 1);
}

/* does the task's tensor search its bias? */
static int c_bias(const qt_search *s, const task *t)
{
    const qt_coord *c;
    qt_search_coords(s, &c);
    return c[t->coord].bias == QT_BIAS_SEARCH && c[t->coord].bias_k > 0;
}

/* propose the next phase-1 probe: QT_PROPOSE, QT_WAIT, or QT_DONE when
 * every task is done */
static int propose_tensors(bis *b, qt_search *s, qt_cand *cand)
{
    int waiting = 0;
    char name[QT_NAME_MAX + 16];
    for (int i = 0; i < b->nt; i++) {
        task *t = &b->t[i];
        if (t->stage == T_BISECT && !t->pending) {
            int w = (t->L + t->R) / 2;
            qt_format *f = &cand->fmt[t->coord];
            if (qt_search_format(s, t->coord, t->type, w, 0, f) != QT_OK) {
                t->stage = T_DONE;                /* cannot be: every type's widths are */
                t->R = t->hi + 1;                 /* an interval, all valid */
                continue;
            }
            if (b->M) {
                /* the estimate of this tensor alone at w: far above the
                 * budget, the probe is taken as failed unevaluated */
                double d = qt__drop_estimate(b->M, s, cand);
                if (d > SKIP * b->budget) {
                    qt__say(b->ruled, sizeof b->ruled, "; the estimate ruled out %s %s %d bits "
                            "(predicted drop %.2f %% > %.1f x budget)",
                            qt__tensor_name(s, t->coord, name, sizeof name),
                            qt_type_name(t->type), w, 100 * d, SKIP);
                    b->n_ruled++;
                    t->L = w + 1;
                    t->failed = w;
                    cand->fmt[t->coord] = float_fmt();
                    if (t->L >= t->R) {
                        t->aw = t->R;
                        t->ad = 0;
                        t->ascore = t->score_R;
                        t->stage = T_DONE;
                        if (t->R <= t->hi && c_bias(s, t)) t->stage = T_BIAS;
                        continue;
                    }
                    i--;                          /* this task's next probe */
                    continue;
                }
            }
            push(b, PR_PROBE, i, w, 0);
            t->pending = 1;
            char known_[48];
            int pw = t->R <= t->hi ? t->R : 0;
            if (pw && t->failed)
                snprintf(known_, sizeof known_, "%d passed, %d failed", pw, t->failed);
            else if (pw) snprintf(known_, sizeof known_, "%d passed", pw);
            else if (t->failed) snprintf(known_, sizeof known_, "%d failed", t->failed);
            else snprintf(known_, sizeof known_, "first probe of %d..%d", t->lo, t->hi);
            qt__say(cand->reason, sizeof cand->reason, "bisection: %s alone, %s %d bits (%s%s)%s",
                    qt__tensor_name(s, t->coord, name, sizeof name), qt_type_name(t->type), w,
                    known_, w == t->hi ? ", the widest" : "", b->ruled);
            b->ruled[0] = 0;
            return QT_PROPOSE;
        }
        if (t->stage == T_BIAS) {
            for (; t->slot < bias_slots(s, t); t->slot++) {
                int w, d;
                qt_format f;
                if (!bias_slot(s, t, t->slot, &w, &d, &f)) continue;
                push(b, PR_BIAS, i, w, d);
                t->slot++;
                t->pending++;
                cand->fmt[t->coord] = f;
                qt__say(cand->reason, sizeof cand->reason,
                        "bisection: %s alone, %s %d bits, bias %+d (%d passed at the fitted "
                        "bias%s)", qt__tensor_name(s, t->coord, name, sizeof name),
                        qt_type_name(t->type), w, d, t->R, w < t->R ? ", this width failed" : "");
                return QT_PROPOSE;
            }
            if (!t->pending) t->stage = T_DONE;
        }
        if (t->stage != T_DONE) waiting = 1;
    }
    return waiting ? QT_WAIT : QT_DONE;
}

static void observe_probe(bis *b, qt_search *s, const probe *p, const qt_result *r)
{
    task *t = &b->t[p->task];
    const qt_coord *c;
    qt_search_coords(s, &c);
    t->pending--;
    if (p->kind == PR_PROBE) {
        if (passed(r)) { t->R = p->width; t->score_R = score(s, r); }
        else { t->L = p->width + 1; t->failed = p->width; }
        if (t->L < t->R) return;
        t->aw = t->R;
        t->ad = 0;
        t->ascore = t->score_R;
        t->stage = t->R <= t->hi && c[t->coord].bias == QT_BIAS_SEARCH && c[t->coord].bias_k > 0
                   ? T_BIAS : T_DONE;
        return;
    }
    /* a bias probe: narrower beats wider; then the metric, then |delta| */
    if (passed(r)) {
        double sc = score(s, r);
        int better = p->width < t->aw ||
                     (p->width == t->aw && (sc > t->ascore ||
                                            (sc == t->ascore && abs(p->delta) < abs(t->ad))));
        if (better) { t->aw = p->width; t->ad = p->delta; t->ascore = sc; }
    }
    if (!t->pending && t->slot >= bias_slots(s, t)) t->stage = T_DONE;
}

static int by_margin(const void *x, const void *y)
{
    const answer *a = x, *b = y;
    if (a->margin != b->margin) return a->margin > b->margin ? -1 : 1;
    return a->coord - b->coord;
}

/* every tensor's answer, and the sensitivity order */
static void finish_tensors(bis *b, qt_search *s)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    double thr = thr_score(s);
    for (int i = 0; i < n; i++) {
        const task *best = NULL;
        double best_cost = 0;
        int any = 0;
        for (int k = 0; k < b->nt; k++) {
            const task *t = &b->t[k];
            if (t->coord != i) continue;
            any = 1;
            if (t->R > t->hi) continue;          /* failed even at its widest */
            qt_format f;
            if (format_at(s, i, t->type, t->aw, t->ad, &f) != QT_OK) continue;
            double cost = qt_bits(&f) * (double)c[i].values;
            if (!best || cost < best_cost) { best = t; best_cost = cost; }
        }
        if (!best) {
            if (b->n_float++ == 0) { b->float_coord = i; b->float_untunable = !any; }
            continue;
        }
        answer *a = &b->a[b->m++];
        a->coord = i;
        a->type = best->type;
        a->w = a->cw = best->aw;
        a->delta = best->ad;
        a->hi = best->hi;
        a->margin = best->ascore - thr;
        a->loss = score(s, qt_search_baseline(s)) - best->ascore;
        if (a->loss < 0) a->loss = 0;
        a->values = (double)c[i].values;
    }
    qsort(b->a, (size_t)b->m, sizeof *b->a, by_margin);
}

/* ---- phases 2 and 3 ---- */

/* fill cand with answers [0, k) at their phase-1 widths (use_cw: at cw) */
static void combo(const bis *b, const qt_search *s, qt_cand *cand, int k, int use_cw)
{
    for (int j = 0; j < k; j++) {
        const answer *a = &b->a[j];
        int w = use_cw ? a->cw : a->w;
        if (w == 0) continue;                     /* float */
        if (format_at(s, a->coord, a->type, w, a->delta, &cand->fmt[a->coord]) != QT_OK)
            cand->fmt[a->coord] = float_fmt();
    }
}

static void float_note(const bis *b, const qt_search *s, char *buf, size_t size)
{
    const qt_coord *c;
    char name[QT_NAME_MAX + 16];
    qt_search_coords(s, &c);
    buf[0] = 0;
    if (b->n_float == 1 && b->float_untunable)
        qt__say(buf, size, "; %s stays float (none of its types can be proposed)",
                qt__tensor_name(s, b->float_coord, name, sizeof name));
    else if (b->n_float == 1)
        qt__say(buf, size, "; %s stays float (fails alone even at %d bits)",
                qt__tensor_name(s, b->float_coord, name, sizeof name), c[b->float_coord].wmax);
    else if (b->n_float > 1)
        qt__say(buf, size, "; %d tensors stay float (they fail alone even at their widest)",
                b->n_float);
}

/* the repair's next step on b->a[].cw: 1, or 0 when nothing is left to try.
 * Widening goes round the tensors from the most sensitive, one bit each
 * (b->rr: how far round the cycle it is), skipping those at their widest. */
static int repair_step(bis *b)
{
    if (b->repair == RP_GAIN) {
        /* the largest predicted gain per bit added: a tensor's loss alone
         * shrinks 4x per bit (its noise variance does), and one more bit
         * costs its number of values */
        int best = -1;
        double bg = 0;
        for (int j = b->m - 1; j >= 0; j--) {
            const answer *a = &b->a[j];
            if (!a->cw || a->cw >= a->hi) continue;
            double g = a->loss * ldexp(0.75, -2 * (a->cw - a->w)) / a->values;
            if (best < 0 || g > bg) { best = j; bg = g; }
        }
        if (best >= 0) { b->a[best].cw++; b->last = best; return 1; }
    }
    for (int k = 0; b->repair != RP_GAIN && k < b->m; k++) {
        int j = b->m - 1 - (b->repair == RP_CYCLE ? (b->rr + k) % b->m : k);
        if (b->a[j].cw && b->a[j].cw < b->a[j].hi) {
            b->a[j].cw++;
            b->last = j;
            b->rr = (b->rr + k + 1) % b->m;
            return 1;
        }
    }
    int quantized = 0;
    for (int j = 0; j < b->m; j++) quantized += b->a[j].cw != 0;
    if (quantized <= 1) return 0;
    for (int j = b->m - 1; j >= 0; j--)
        if (b->a[j].cw) { b->a[j].cw = 0; b->last = j; return 1; }
    return 0;
}

/* a combination's verdict moves the phase on */
static void observe_combo(bis *b, int pass)
{
    switch (b->phase) {
    case PH_FULL:
        if (pass) { b->phase = PH_DONE; break; }
        if (b->phase2 && b->m > 1) { b->phase = PH_PREFIX; b->lo = 0; b->hi = b->m; break; }
        b->phase = PH_REPAIR;
        b->last = -1;
        break;
    case PH_PREFIX: {
        int mid = (b->lo + b->hi) / 2;
        if (pass) b->lo = mid; else b->hi = mid;
        if (b->hi - b->lo <= 1) { b->phase = PH_REPAIR; b->last = -1; }
        break;
    }
    case PH_REPAIR:
        if (pass) b->phase = PH_DONE;
        break;
    default:
        break;
    }
}

static int bis_propose(void *state, qt_search *s, qt_cand *cand)
{
    bis *b = state;
    char name[QT_NAME_MAX + 16], note[QT_NAME_MAX + 96];
    for (;;) {
        if (b->phase == PH_TENSORS) {
            int st = propose_tensors(b, s, cand);
            if (st != QT_DONE) return st;
            finish_tensors(b, s);
            b->phase = b->m ? PH_FULL : PH_DONE;
            continue;
        }
        if (b->phase == PH_DONE) return QT_DONE;
        if (b->qhead < b->qtail) return QT_WAIT;  /* one combination per round */
        const qt_coord *c;
        int n = qt_search_coords(s, &c);
        for (int i = 0; i < n; i++) cand->fmt[i] = float_fmt();
        if (b->phase == PH_FULL) {
            combo(b, s, cand, b->m, 0);
            float_note(b, s, note, sizeof note);
            qt__say(cand->reason, sizeof cand->reason,
                    "bisection: all %d tensors at their own widths%s", b->m, note);
        } else if (b->phase == PH_PREFIX) {
            int mid = (b->lo + b->hi) / 2;
            char lo[32], hi[32];
            combo(b, s, cand, mid, 0);
            if (b->lo) qt__say(lo, sizeof lo, "the first %d passed", b->lo);
            else qt__say(lo, sizeof lo, "float passes");
            if (b->hi < b->m) qt__say(hi, sizeof hi, "the first %d failed", b->hi);
            else qt__say(hi, sizeof hi, "all %d failed", b->m);
            qt__say(cand->reason, sizeof cand->reason,
                    "bisection: the %d least sensitive tensors at their own widths (%s, %s)",
                    mid, lo, hi);
        } else {                                  /* PH_REPAIR */
            if (!repair_step(b)) { b->phase = PH_DONE; continue; }
            const answer *a = &b->a[b->last];
            combo(b, s, cand, b->m, 1);
            qt__tensor_name(s, a->coord, name, sizeof name);
            if (a->cw && b->repair == RP_GAIN)
                qt__say(cand->reason, sizeof cand->reason,
                        "bisection repair: %s widened to %d bits (largest predicted gain per "
                        "bit: alone it lost %.3g at %d bits)", name, a->cw, a->loss, a->w);
            else if (a->cw)
                qt__say(cand->reason, sizeof cand->reason,
                        "bisection repair: %s widened to %d bits (%s)", name, a->cw,
                        b->repair == RP_CYCLE ? "next round the cycle from the most sensitive"
                                          : "the most sensitive below its widest");
            else
                qt__say(cand->reason, sizeof cand->reason,
                        "bisection repair: %s back to float (every tensor at its widest)", name);
        }
        const qt_result *r = known(s, cand);
        if (r) { observe_combo(b, passed(r)); continue; }
        push(b, PR_COMBO, -1, 0, 0);
        return QT_PROPOSE;
    }
}

static void bis_observe(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    bis *b = state;
    (void)c;
    if (b->qhead == b->qtail) return;             /* not ours: cannot happen */
    probe p = b->q[b->qhead++];
    if (b->qhead == b->qtail) b->qhead = b->qtail = 0;
    if (p.kind == PR_COMBO) observe_combo(b, passed(r));
    else observe_probe(b, s, &p, r);
}

const qt_strategy qt__strat_bisect = {
    "bisection", "per-tensor widths by bisection, combined in order of sensitivity, "
    "then repaired", bis_init, bis_propose, bis_observe, bis_free
};
