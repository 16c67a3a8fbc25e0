/*
 * strat_hybrid.c -- analytical start, searched finish.
 *
 * 1. The analytical plan (strat_analytical.c): every tensor's offset from
 *    its noise gain, and B_min from the mismatch bound. The bound is
 *    conservative (a Chebyshev step), so its B_min usually passes with
 *    bits to spare: keep the offsets and
 * 2. binary-search B_min in [1, the bound's B_min] for the smallest that
 *    passes (one candidate per round; B_min values that give the same
 *    widths as one already tried are skipped). If the bound's own B_min
 *    fails, widen it one at a time as the analytical strategy does.
 * 2b. Calibrate (option "calibrate", default true; with an allocated plan,
 *    strat_analytical.c): the estimate's level is off while its ranking
 *    holds, so the allocation is redone at the budget that the measured
 *    drop of the answer says the estimate needs (predicted / measured x
 *    the real budget, at most 4x the last that passed), then by geometric
 *    bisection between a budget that passed and one that failed, at most
 *    SCALE_MAX evaluations; the cheapest that passes is refined. On lenet5
 *    (r = 0.99) fixed+float+cluster: 8.00x at the third evaluation, 8.34x
 *    in 36 (143 before the allocation, 54 with it and no calibration);
 *    fixed: 6.47x in 13 (35 before).
 * 3. Refine (option "refine": "greedy", the default, or "none"): from the
 *    passing candidate, one round proposes, for each tensor above its
 *    narrowest width, one bit fewer in its type and one bit fewer in each
 *    other type its space allows (bias fitted; e.g. fixed<5> ->
 *    cluster<4>: a type that fits the tensor better can pay for the bit);
 *    of those that pass, take the one that saves the most cost per
 *    accuracy lost (accuracy lost floored at 1e-6; ties: the larger
 *    saving, then the proposal order); repeat until none passes. These are
 *    the greedy strategy's bit and type moves, started where the analysis
 *    put every tensor instead of from a global width.
 * The estimate. When the plan has the drop estimate (a top-1 constraint on
 *    the engine's data: gains.c), a B_min probe whose predicted drop
 *    exceeds SKIP x the budget is not evaluated but taken as failed; the
 *    reason of the next proposal says what was ruled out. Option "skip":
 *    false evaluates them. Refine moves are never ruled out: near the
 *    budget the estimate is off by about 0.3 points either way (on lenet5,
 *    fc5 4 -> 3 bits from a configuration at the budget's edge was
 *    predicted 1.4 % and measured 0.9 %, a pass), and far above it the
 *    linearisation underestimates (fc3 at 4 bits: predicted 1.4 %,
 *    measured 4.8 %), so a refine move is never clearly out.
 * Tabu. A refine move that fails more than TABU x the float model's margin
 *    over the bound below its configuration (early stops included) is not
 *    proposed again: from a configuration with fewer bits it would fail
 *    again (on lenet5: fc3 cluster 5 -> fixed 4, 87 %, every round).
 * 4. Plateau (option "plateau", default true): when no bit can go, one
 *    round changes one tensor's type at its width (equal cost); the most
 *    accurate that passes and is strictly more accurate than the
 *    configuration is taken and step 3 resumes; none: step 5.
 * 5. Repair (option "repair", default true; cost-aware): the refine path
 *    is greedy and stops at the bound's edge, while results it measured on
 *    the way failed by a few images at a lower cost. Of the whole-split
 *    failures cheaper than the search's answer and within the float
 *    model's margin of the bound, the closest (ties: cheaper, earlier) is
 *    tried with one more bit on each tensor where that stays cheaper than
 *    the answer; the cheapest that passes becomes the start of step 3
 *    again. After REPAIR_MISSES rounds in a row where none passes, done.
 *    On lenet5 (fixed+float+cluster, r = 0.99) this took hybrid from 7.64x
 *    to 8.34x.
 * Options: "refine", "skip", "plateau", "repair", "calibrate", and the
 * analytical strategy's "samples", "gains", "model" and "plan".
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H_BISECT = 0, H_WIDEN = 1, H_REFINE = 2, H_DONE = 3, H_REPAIR = 4, H_SCALE = 5 };

#define SCALE_MAX  4      /* calibration evaluations at most */
#define SCALE_UP   4.0    /* the most one calibration step multiplies the budget by */

#define REPAIR_MISSES 3   /* repair rounds in a row that find nothing: done */
#define REPAIR_BASES 1    /* near misses repaired per repair round */

#define SKIP      1.5     /* predicted drop / budget beyond which a candidate is not evaluated */
#define TYPES_MAX 16
#define TABU      2.0     /* a refine move that fails this many budgets below its
                             configuration is not proposed again */

/* a refine move: tensor i to (type, width) */
typedef struct hmove {
    int i, t, w;
} hmove;

typedef struct hyb {
    void    *plan;
    int      n;
    int      phase;
    int      refine;          /* 1: greedy bit moves after the B_min search */
    int      L, R, top;       /* B_min search: the answer is in [L, R]; top = bound's */
    int      probe;           /* the B_min proposed and awaited (0: none) */
    int      pass_b;          /* the smallest B_min that passed (0: none) */
    int      have;            /* a passing candidate is in best */
    int     *w, *tmp;         /* widths scratch */
    qt_cand *best;            /* the passing candidate refined from */
    qt_result best_r;
    int     *bw;              /* its widths */
    /* refine round */
    int      pending;         /* proposals awaited */
    int      next;            /* next move of the round to propose (-1: build it) */
    int      chosen;          /* tensor of the best move so far (-1) */
    double   chosen_ratio, chosen_save;
    qt_result chosen_r;
    int     *bt;              /* the best candidate's types */
    hmove   *mv;              /* this round's moves (proposed ones) */
    int      n_mv, cap_mv;
    int      skip;            /* option: rule out by the estimate */
    int      plateau;         /* this round changes types at the same width */
    int      use_plateau;     /* option "plateau" */
    double   chosen_score;
    /* repair: near misses one bit wider */
    int      use_repair;      /* option "repair" */
    qt_cand **rp;             /* this round's candidates */
    int      n_rp, cap_rp, rp_next, rp_pending, rp_chosen;
    qt_result rp_r;
    uint8_t *repaired;        /* per history entry: already a repair base */
    uint8_t *tabu;            /* per (tensor, type, width): failed by far, not proposed again */
    int      n_tabu;
    int      cap_repaired;
    int      rp_misses;       /* repair rounds in a row where none passed */
    qt__margins *M;           /* the plan's estimate (borrowed; NULL: none) */
    double   budget;
    /* calibration: the allocation at budgets scaled to what was measured */
    int      calibrate;       /* option "calibrate" (with an allocated plan) */
    int      n_scale;         /* calibration evaluations so far */
    double   lo_b, hi_b;      /* budgets whose allocation passed / failed (0: none) */
    double   scale_b;         /* the budget proposed and awaited (0: none) */
    qt_cand *sc;              /* its candidate */
    char     ruled[96];       /* what the estimate ruled out, for the reasons */
    int      n_ruled;         /* ... in this round (refine) or search (B_min) */
} hyb;

static void hyb_free(void *state)
{
    hyb *h = state;
    if (!h) return;
    if (h->plan) qt__ana_free(h->plan);
    qt_cand_free(h->best);
    qt_cand_free(h->sc);
    free(h->w);
    free(h->tmp);
    free(h->bw);
    free(h->bt);
    free(h->mv);
    for (int i = 0; i < h->cap_rp; i++) qt_cand_free(h->rp[i]);
    free(h->rp);
    free(h->repaired);
    free(h->tabu);
    free(h);
}

static int hyb_init(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    const qt_coord *co;
    int n = qt_search_coords(s, &co), rc;
    hyb *h = calloc(1, sizeof *h);
    json_t *aopts = NULL;
    if (!h) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    h->n = n;
    h->refine = 1;
    h->skip = 1;
    h->use_plateau = 1;
    h->use_repair = 1;
    h->calibrate = 1;
    if (opts) {
        const char *k;
        json_t *v;
        aopts = json_object();
        if (!aopts) { hyb_free(h); return qt__fail(err, QT_ENOMEM, -1, "out of memory"); }
        json_object_foreach((json_t *)opts, k, v) {
            if (!strcmp(k, "refine")) {
                const char *r = json_string_value(v);
                if (!r || (strcmp(r, "greedy") && strcmp(r, "none"))) {
                    json_decref(aopts);
                    hyb_free(h);
                    return qt__fail(err, QT_EINVAL, -1, "strategy.refine: must be \"greedy\" "
                                    "or \"none\"");
                }
                h->refine = !strcmp(r, "greedy");
            } else if (!strcmp(k, "skip")) {
                if (!json_is_boolean(v)) {
                    json_decref(aopts);
                    hyb_free(h);
                    return qt__fail(err, QT_EINVAL, -1, "strategy.skip: must be true or false");
                }
                h->skip = json_is_true(v);
            } else if (!strcmp(k, "repair")) {
                if (!json_is_boolean(v)) {
                    json_decref(aopts);
                    hyb_free(h);
                    return qt__fail(err, QT_EINVAL, -1, "strategy.repair: must be true or "
                                    "false");
                }
                h->use_repair = json_is_true(v);
            } else if (!strcmp(k, "plateau")) {
                if (!json_is_boolean(v)) {
                    json_decref(aopts);
                    hyb_free(h);
                    return qt__fail(err, QT_EINVAL, -1, "strategy.plateau: must be true or "
                                    "false");
                }
                h->use_plateau = json_is_true(v);
            } else if (!strcmp(k, "calibrate")) {
                if (!json_is_boolean(v)) {
                    json_decref(aopts);
                    hyb_free(h);
                    return qt__fail(err, QT_EINVAL, -1, "strategy.calibrate: must be true or "
                                    "false");
                }
                h->calibrate = json_is_true(v);
            } else if (!strcmp(k, "samples") || !strcmp(k, "gains") || !strcmp(k, "model") ||
                       !strcmp(k, "plan")) {
                json_object_set(aopts, k, v);
            } else {
                json_decref(aopts);
                hyb_free(h);
                return qt__fail(err, QT_EINVAL, -1, "strategy.%s: not an option of hybrid "
                                "(it takes: refine, skip, plateau, repair, calibrate, samples, gains, model, plan)", k);
            }
        }
    }
    rc = qt__ana_new(s, aopts, &h->plan, err);
    json_decref(aopts);
    if (rc) { h->plan = NULL; hyb_free(h); return rc; }
    h->w = calloc((size_t)(n ? n : 1), sizeof *h->w);
    h->tmp = calloc((size_t)(n ? n : 1), sizeof *h->tmp);
    h->bw = calloc((size_t)(n ? n : 1), sizeof *h->bw);
    h->bt = calloc((size_t)(n ? n : 1), sizeof *h->bt);
    h->cap_mv = (n ? n : 1) * TYPES_MAX;
    h->mv = calloc((size_t)h->cap_mv, sizeof *h->mv);
    h->best = qt_cand_new(s);
    h->sc = qt_cand_new(s);
    h->tabu = calloc((size_t)(n ? n : 1) * 32 * 33, 1);
    h->cap_rp = REPAIR_BASES * (n ? n : 1);
    h->rp = calloc((size_t)h->cap_rp, sizeof *h->rp);
    for (int i = 0; h->rp && i < h->cap_rp; i++)
        if (!(h->rp[i] = qt_cand_new(s))) { h->cap_rp = i; break; }
    if (!h->w || !h->tmp || !h->bw || !h->bt || !h->mv || !h->best || !h->sc || !h->rp || !h->tabu ||
        h->cap_rp < REPAIR_BASES * (n ? n : 1)) {
        hyb_free(h);
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    h->top = qt__ana_bmin(h->plan);
    h->M = qt__ana_margins(h->plan, &h->budget);
    if (!h->skip || !(h->budget > 0)) h->M = NULL;
    if (!qt__ana_allocated(h->plan, NULL) || !(h->budget > 0) || !h->refine) h->calibrate = 0;
    h->L = 1;
    h->R = h->top;
    h->phase = H_BISECT;
    *state = h;
    return QT_OK;
}

/* the widths at B_min b equal those at c */
static int same_widths(hyb *h, const qt_search *s, int b, int c, qt_cand *scratch)
{
    qt__ana_cand(h->plan, s, b, h->w, scratch);
    qt__ana_cand(h->plan, s, c, h->tmp, scratch);
    return !memcmp(h->w, h->tmp, (size_t)h->n * sizeof *h->w);
}

static double metric(const qt_search *s, const qt_result *r)
{
    const qt_job_spec *sp = qt_search_spec(s);
    return sp->metric == QT_MET_TOP5 ? r->top5 : sp->metric == QT_MET_LOSS ? -r->loss : r->top1;
}

/* would the estimate rule c out? (then say what, in h->ruled) */
static int ruled_out(hyb *h, const qt_search *s, const qt_cand *c, const char *what)
{
    if (!h->M) return 0;
    double d = qt__drop_estimate(h->M, s, c);
    if (!(d > SKIP * h->budget)) return 0;
    if (h->n_ruled++ == 0)
        snprintf(h->ruled, sizeof h->ruled, "; the estimate ruled out %.40s (predicted drop "
                 "%.2f %% > %.1f x budget)", what, 100 * d, SKIP);
    return 1;
}

/* h->ruled with the count of the others, appended to a reason */
static void add_ruled(const hyb *h, qt_cand *c)
{
    size_t at = strlen(c->reason);
    if (!h->n_ruled || at >= sizeof c->reason) return;
    if (h->n_ruled == 1)
        snprintf(c->reason + at, sizeof c->reason - at, "%s", h->ruled);
    else
        snprintf(c->reason + at, sizeof c->reason - at, "%s and %d more", h->ruled,
                 h->n_ruled - 1);
}

static int propose_bmin(hyb *h, qt_search *s, qt_cand *c, int b, const char *why)
{
    if (qt__ana_cand(h->plan, s, b, h->w, c)) { h->phase = H_DONE; return QT_DONE; }
    snprintf(c->reason, sizeof c->reason, "hybrid: analytical offsets at B_min = %d (%s; "
             "the plan's B_min is %d)", b, why, h->top);
    add_ruled(h, c);
    h->probe = b;
    return QT_PROPOSE;
}

/* this round's moves from best: one bit fewer in each allowed type */
static void build_round(hyb *h, qt_search *s, qt_cand *c)
{
    const qt_coord *co;
    char what[96], tn[64];
    qt_search_coords(s, &co);
    h->n_mv = 0;
    h->n_ruled = 0;
    h->n_tabu = 0;
    for (int i = 0; i < h->n; i++) {
        qt_type t0;
        int lo, hi;
        qt__ana_range(h->plan, i, &t0, &lo, &hi);
        int w = h->bw[i] - (h->plateau ? 0 : 1);
        if (w < co[i].wmin || w < 1) continue;
        /* its own type first, then the others in qt_type order */
        for (int k = -1; k < TYPES_MAX && h->n_mv < h->cap_mv; k++) {
            int t = k < 0 ? h->bt[i] : k;
            if (k < 0 && h->plateau) continue;      /* plateau: other types only */
            if (k >= 0 && (t == h->bt[i] || !(co[i].types >> t & 1u))) continue;
            if (k < 0 && w < lo) continue;          /* the plan's type: its own range */
            if (h->tabu[((size_t)i * 32 + (size_t)t) * 33 + (size_t)w]) { h->n_tabu++; continue; }
            qt_cand_copy(s, c, h->best);
            if (qt_search_format(s, i, (qt_type)t, w, 0, &c->fmt[i]) != QT_OK) continue;
            qt__tensor_name(s, i, tn, sizeof tn);
            if (t == h->bt[i]) snprintf(what, sizeof what, "%s at %d bits", tn, w);
            else snprintf(what, sizeof what, "%s as %s<%d>", tn, qt_type_name((qt_type)t), w);
            (void)what;           /* refine moves are not ruled out: see the top */
            h->mv[h->n_mv++] = (hmove){ i, t, w };
        }
    }
}

static void start_refine(hyb *h);

/* the B_min search passed: calibrate the allocation's budget first */
static void after_bmin(hyb *h)
{
    if (!h->calibrate || !h->have) { start_refine(h); return; }
    h->phase = H_SCALE;
    h->n_scale = 0;
    h->lo_b = h->budget;
    h->hi_b = 0;
    h->scale_b = 0;
}

static void start_refine(hyb *h)
{
    h->phase = h->refine ? H_REFINE : H_DONE;
    h->next = -1;                     /* the round is built on the first propose */
    h->pending = 0;
    h->chosen = -1;
    h->plateau = 0;
}

/* the refine path is done: repair the cheapest near misses. Of the
 * whole-split results that failed (not stopped early: their metric is the
 * split's) and cost less than the search's answer, the REPAIR_BASES
 * closest to the bound (ties: cheaper, earlier) not repaired before each
 * propose one more bit on every tensor that still leaves them cheaper than
 * the answer. The cheapest that passes becomes the refine path's start;
 * none: done. Returns 1 when a round was built. */
static int start_repair(hyb *h, qt_search *s)
{
    const qt_coord *co;
    const qt_result *br;
    int feasible;
    qt_search_coords(s, &co);
    h->phase = H_DONE;
    if (!h->use_repair || !h->refine) return 0;
    if (!qt_search_best(s, &br, &feasible) || !feasible) return 0;
    double bound = qt_search_threshold(s), top = br->cost;
    double margin = metric(s, qt_search_baseline(s)) -
                    (qt_search_spec(s)->metric == QT_MET_LOSS ? -bound : bound);
    if (h->rp_misses >= REPAIR_MISSES) return 0;
    int n = qt_search_evals(s), base[REPAIR_BASES] = { 0 }, nb = 0;
    if (n > h->cap_repaired) {
        uint8_t *nr = realloc(h->repaired, (size_t)n + 64);
        if (!nr) return 0;
        memset(nr + h->cap_repaired, 0, (size_t)(n + 64 - h->cap_repaired));
        h->repaired = nr;
        h->cap_repaired = n + 64;
    }
    for (int i = 0; i < n; i++) {
        const qt_result *r;
        qt_search_result(s, i, NULL, &r);
        if (h->repaired[i] || r->feasible || r->fail != QT_FAIL_NONE || r->early || r->subset ||
            r->cached || !(r->cost < top))
            continue;
        double gap = bound - metric(s, r);
        if (qt_search_spec(s)->metric == QT_MET_LOSS) gap = -bound - metric(s, r);
        if (!(gap < margin)) continue;                 /* not a near miss */
        int at = nb < REPAIR_BASES ? nb++ : REPAIR_BASES;
        while (at > 0) {
            const qt_result *q;
            qt_search_result(s, base[at - 1], NULL, &q);
            double qg = qt_search_spec(s)->metric == QT_MET_LOSS ? -bound - metric(s, q)
                                                                 : bound - metric(s, q);
            if (gap < qg || (gap == qg && r->cost < q->cost)) {
                if (at < REPAIR_BASES) base[at] = base[at - 1];
                at--;
            } else break;
        }
        if (at < REPAIR_BASES) base[at] = i;
    }
    h->n_rp = 0;
    for (int b = 0; b < nb; b++) {
        const qt_cand *bc;
        const qt_result *r;
        qt_search_result(s, base[b], &bc, &r);
        h->repaired[base[b]] = 1;
        for (int i = 0; i < h->n && h->n_rp < h->cap_rp; i++) {
            const qt_format *f = &bc->fmt[i];
            if (f->type == QT_NONE || f->width + 1 > co[i].wmax) continue;
            qt_cand *c = h->rp[h->n_rp];
            qt_result cr;
            char tn[64];
            qt_cand_copy(s, c, bc);
            c->images = 0;
            if (qt_search_format(s, i, (qt_type)f->type, f->width + 1, 0, &c->fmt[i]) != QT_OK)
                continue;
            memset(&cr, 0, sizeof cr);
            qt__cost(s, c, &cr);
            if (!(cr.cost < top)) continue;
            qt__tensor_name(s, i, tn, sizeof tn);
            snprintf(c->reason, sizeof c->reason, "hybrid repair: %s one more bit (%s %d -> %d) "
                     "on a near miss (%.2f %% at %.2fx; the answer is %.2fx)", tn,
                     qt_type_name((qt_type)f->type), f->width, f->width + 1, 100 * r->top1,
                     r->compression, br->compression);
            h->n_rp++;
        }
    }
    if (!h->n_rp) return 0;
    h->phase = H_REPAIR;
    h->rp_next = h->rp_pending = 0;
    h->rp_chosen = -1;
    return 1;
}

/* calibration: the estimate's level is off (on lenet5 it predicted 0.92 %
 * for a plan that measured 0.25-0.55 %), its ranking much less so; so the
 * allocation is redone at the budget that, scaled by predicted over
 * measured drop of the cheapest passing candidate, should meet the real
 * one (at most SCALE_UP x the last that passed); after a failure, the
 * geometric mean of the budgets that passed and failed. A budget whose
 * allocation is no cheaper than the answer is skipped. QT_DONE: refine. */
static int propose_scale(hyb *h, qt_search *s, qt_cand *c)
{
    double bud;
    qt__margins *M = qt__ana_margins(h->plan, &bud);
    const qt_result *base = qt_search_baseline(s);
    for (int tries = 0; h->n_scale < SCALE_MAX && tries < 8; tries++) {
        double b, pred_best = qt__drop_estimate(M, s, h->best);
        double meas = base->top1 - h->best_r.top1, pred;
        char why[96];
        if (!(h->hi_b > 0)) {
            double floor_ = 0.25 * h->budget;
            b = h->budget * pred_best / (meas > floor_ ? meas : floor_);
            if (b > SCALE_UP * h->lo_b) b = SCALE_UP * h->lo_b;
            snprintf(why, sizeof why, "the answer's drop was predicted %.2f %%, measured %.2f %%",
                     100 * pred_best, 100 * meas);
        } else {
            b = sqrt(h->lo_b * h->hi_b);
            snprintf(why, sizeof why, "between %.2f %% (passed) and %.2f %% (failed)",
                     100 * h->lo_b, 100 * h->hi_b);
        }
        if (!(b > 1.1 * h->lo_b) || (h->hi_b > 0 && !(b < h->hi_b / 1.1))) return QT_DONE;
        if (qt__ana_alloc_at(h->plan, s, b, c, &pred) != QT_OK) return QT_DONE;
        qt_result cr;
        memset(&cr, 0, sizeof cr);
        qt__cost(s, c, &cr);
        if (!(cr.cost < h->best_r.cost)) { h->lo_b = b; continue; }   /* nothing cheaper */
        int k = snprintf(c->reason, sizeof c->reason, "hybrid calibrate: the allocation at a "
                         "budget of %.2f %% for the estimate (%s; predicted %.2f %%)", 100 * b,
                         why, 100 * pred);
        if (k < 0) c->reason[0] = 0;
        qt_cand_copy(s, h->sc, c);
        h->scale_b = b;
        h->n_scale++;
        return QT_PROPOSE;
    }
    return QT_DONE;
}

static int hyb_propose(void *state, qt_search *s, qt_cand *c)
{
    hyb *h = state;
    const qt_coord *co;
    qt_search_coords(s, &co);
    if (h->phase == H_BISECT) {
        if (h->probe) return QT_WAIT;
        /* skip B_min values whose widths a tried one already gave, and
         * those the estimate rules out */
        while (h->L < h->R) {
            int mid = (h->L + h->R) / 2;
            if (mid > h->L && same_widths(h, s, mid, mid - 1, c)) { h->L = mid; continue; }
            char what[32];
            snprintf(what, sizeof what, "B_min = %d", mid);
            if (qt__ana_cand(h->plan, s, mid, h->w, c) == QT_OK && ruled_out(h, s, c, what)) {
                h->L = mid + 1;
                continue;
            }
            return propose_bmin(h, s, c, mid, "binary search below the plan's");
        }
        if (h->pass_b == h->R) {
            after_bmin(h);
        } else {
            h->phase = H_WIDEN;
            return propose_bmin(h, s, c, h->R, h->R == h->top ? "the plan's own"
                                                                : "the smallest left to try");
        }
    }
    if (h->phase == H_WIDEN) {
        if (h->probe) return QT_WAIT;
        return propose_bmin(h, s, c, h->R, "widened after a failure");
    }
    if (h->phase == H_SCALE) {
        if (h->scale_b > 0) return QT_WAIT;
        int st = propose_scale(h, s, c);
        if (st != QT_DONE) return st;
        start_refine(h);
    }
    if (h->phase == H_REFINE) {
        if (h->next < 0) {
            build_round(h, s, c);
            h->next = 0;
        }
        if (h->next < h->n_mv) {
            const hmove *m = &h->mv[h->next++];
            char tn[64];
            qt_cand_copy(s, c, h->best);
            qt_search_format(s, m->i, (qt_type)m->t, m->w, 0, &c->fmt[m->i]);
            qt__tensor_name(s, m->i, tn, sizeof tn);
            if (h->plateau)
                snprintf(c->reason, sizeof c->reason, "hybrid plateau: %s %s -> %s at %d bits "
                         "(same cost, no bit could go: more accuracy may let one)", tn, qt_type_name((qt_type)h->bt[m->i]),
                         qt_type_name((qt_type)m->t), m->w);
            else if (m->t == h->bt[m->i])
                snprintf(c->reason, sizeof c->reason, "hybrid refine: %s one bit fewer "
                         "(%d -> %d)", tn, h->bw[m->i], m->w);
            else
                snprintf(c->reason, sizeof c->reason, "hybrid refine: %s %s %d -> %s %d bits "
                         "(one bit fewer, bias fitted)", tn, qt_type_name((qt_type)h->bt[m->i]),
                         h->bw[m->i], qt_type_name((qt_type)m->t), m->w);
            add_ruled(h, c);
            h->pending++;
            return QT_PROPOSE;
        }
        if (h->pending) return QT_WAIT;
        if (!start_repair(h, s)) return QT_DONE;   /* a round with no move left */
    }
    if (h->phase == H_REPAIR) {
        if (h->rp_next < h->n_rp) {
            qt_cand_copy(s, c, h->rp[h->rp_next++]);
            h->rp_pending++;
            return QT_PROPOSE;
        }
        if (h->rp_pending) return QT_WAIT;
        return QT_DONE;
    }
    return QT_DONE;
}

static void take(hyb *h, qt_search *s, const qt_cand *c, const qt_result *r)
{
    qt_cand_copy(s, h->best, c);
    h->best_r = *r;
    for (int i = 0; i < h->n; i++) {
        h->bw[i] = c->fmt[i].type == QT_NONE ? 32 : c->fmt[i].width;
        h->bt[i] = c->fmt[i].type;
    }
    h->have = 1;
}

static void hyb_observe(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    hyb *h = state;
    if (h->phase == H_BISECT || h->phase == H_WIDEN) {
        int b = h->probe;
        h->probe = 0;
        if (r->feasible) {
            if (!h->have || r->cost <= h->best_r.cost) take(h, s, c, r);
            if (!h->pass_b || b < h->pass_b) h->pass_b = b;
            if (h->phase == H_WIDEN) { after_bmin(h); return; }
            h->R = b;
        } else {
            if (h->phase == H_WIDEN) {
                /* widen: the next B_min that changes a width, up to 32 */
                int nb = b;
                qt_cand *tmp = qt_cand_new(s);
                if (!tmp) { h->phase = H_DONE; return; }
                while (nb < 32 && same_widths(h, s, nb + 1, b, tmp)) nb++;
                qt_cand_free(tmp);
                if (nb >= 32) {
                    if (h->have) after_bmin(h);
                    else h->phase = H_DONE;
                    return;
                }
                h->R = h->L = nb + 1;
                return;
            }
            h->L = b + 1;
        }
        return;
    }
    if (h->phase == H_SCALE && h->scale_b > 0) {
        if (r->feasible && !r->subset) {
            if (r->cost < h->best_r.cost) take(h, s, c, r);
            h->lo_b = h->scale_b;
        } else {
            h->hi_b = h->scale_b;
        }
        h->scale_b = 0;
        return;
    }
    if (h->phase == H_REPAIR && h->rp_pending > 0) {
        int k = h->rp_next - h->rp_pending;
        h->rp_pending--;
        if (r->feasible && !r->subset && (h->rp_chosen < 0 || r->cost < h->rp_r.cost)) {
            h->rp_chosen = k;
            h->rp_r = *r;
        }
        if (h->rp_pending == 0 && h->rp_next >= h->n_rp) {
            if (h->rp_chosen < 0) {           /* the next near misses, if any */
                h->rp_misses++;
                if (!start_repair(h, s)) h->phase = H_DONE;
                return;
            }
            h->rp_misses = 0;
            take(h, s, h->rp[h->rp_chosen], &h->rp_r);
            start_refine(h);                  /* and refine from the repaired one */
        }
        return;
    }
    if (h->phase != H_REFINE || h->pending <= 0) return;
    /* which move this result is: proposals are observed in order */
    int k = h->next - h->pending;
    h->pending--;
    if (h->plateau) {             /* equal cost, strictly more accurate: the most accurate */
        double sc = metric(s, r);
        if (r->feasible && r->cost <= h->best_r.cost && sc > metric(s, &h->best_r) + 1e-12 &&
            (h->chosen < 0 || sc > h->chosen_score ||
             (sc == h->chosen_score && r->cost < h->chosen_r.cost))) {
            h->chosen = k;
            h->chosen_score = sc;
            h->chosen_r = *r;
        }
    } else if (!r->feasible && r->fail == QT_FAIL_NONE) {
        /* far below its configuration (more than TABU x the float model's
         * margin over the bound; early stops included, their metric is of
         * the images seen): this move is out for the rest */
        const qt_result *b = qt_search_baseline(s);
        double margin = metric(s, b) - (qt_search_spec(s)->metric == QT_MET_LOSS
                                        ? -qt_search_threshold(s) : qt_search_threshold(s));
        double below = metric(s, &h->best_r) - metric(s, r);
        const hmove *m = &h->mv[k];
        if (margin > 0 && below > TABU * margin)
            h->tabu[((size_t)m->i * 32 + (size_t)m->t) * 33 + (size_t)m->w] = 1;
    } else if (r->feasible) {
        double save = h->best_r.cost - r->cost;
        double lost = metric(s, &h->best_r) - metric(s, r);
        double ratio = save / (lost > 1e-6 ? lost : 1e-6);
        if (save > 0 && (h->chosen < 0 || ratio > h->chosen_ratio ||
                         (ratio == h->chosen_ratio && save > h->chosen_save))) {
            h->chosen = k;
            h->chosen_ratio = ratio;
            h->chosen_save = save;
            h->chosen_r = *r;
        }
    }
    if (h->pending == 0 && h->next >= h->n_mv) {
        if (h->chosen < 0 && !h->plateau && h->use_plateau) {
            start_refine(h);          /* no bit can go: try the types at the same width */
            h->plateau = 1;
            return;
        }
        if (h->chosen < 0) {
            if (!start_repair(h, s)) h->phase = H_DONE;
            return;
        }
        const hmove *m = &h->mv[h->chosen];
        if (qt_search_format(s, m->i, (qt_type)m->t, m->w, 0, &h->best->fmt[m->i]) != QT_OK) {
            h->phase = H_DONE;
            return;
        }
        h->bw[m->i] = m->w;
        h->bt[m->i] = m->t;
        h->best_r = h->chosen_r;
        start_refine(h);
    }
}

const qt_strategy qt__strat_hybrid = {
    "hybrid", "analytical offsets, B_min binary-searched below the bound, then greedy "
    "one-bit-fewer moves",
    hyb_init, hyb_propose, hyb_observe, hyb_free
};
