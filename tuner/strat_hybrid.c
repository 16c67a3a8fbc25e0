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
 * 3. Refine (option "refine": "greedy", the default, or "none"): from the
 *    passing candidate, one round proposes one bit fewer on each tensor
 *    above its narrowest width; of those that pass, take the one that
 *    saves the most cost per accuracy lost (accuracy lost floored at 1e-6;
 *    ties: the larger saving, then the lower index); repeat until none
 *    passes. This is the greedy strategy's bit move, started where the
 *    analysis put every tensor instead of from a global width.
 * Options: "refine", and the analytical strategy's "samples" and "gains".
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H_BISECT = 0, H_WIDEN = 1, H_REFINE = 2, H_DONE = 3 };

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
    int      next;            /* next tensor to propose a move for */
    int      chosen;          /* tensor of the best move so far (-1) */
    double   chosen_ratio, chosen_save;
    qt_result chosen_r;
    int     *moved;           /* tensor of each awaited proposal */
    int      n_moved;
} hyb;

static void hyb_free(void *state)
{
    hyb *h = state;
    if (!h) return;
    if (h->plan) qt__ana_free(h->plan);
    qt_cand_free(h->best);
    free(h->w);
    free(h->tmp);
    free(h->bw);
    free(h->moved);
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
            } else if (!strcmp(k, "samples") || !strcmp(k, "gains")) {
                json_object_set(aopts, k, v);
            } else {
                json_decref(aopts);
                hyb_free(h);
                return qt__fail(err, QT_EINVAL, -1, "strategy.%s: not an option of hybrid "
                                "(it takes: refine, samples, gains)", k);
            }
        }
    }
    rc = qt__ana_new(s, aopts, &h->plan, err);
    json_decref(aopts);
    if (rc) { h->plan = NULL; hyb_free(h); return rc; }
    h->w = calloc((size_t)(n ? n : 1), sizeof *h->w);
    h->tmp = calloc((size_t)(n ? n : 1), sizeof *h->tmp);
    h->bw = calloc((size_t)(n ? n : 1), sizeof *h->bw);
    h->moved = calloc((size_t)(n ? n : 1), sizeof *h->moved);
    h->best = qt_cand_new(s);
    if (!h->w || !h->tmp || !h->bw || !h->moved || !h->best) {
        hyb_free(h);
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    h->top = qt__ana_bmin(h->plan);
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

static int propose_bmin(hyb *h, qt_search *s, qt_cand *c, int b, const char *why)
{
    if (qt__ana_cand(h->plan, s, b, h->w, c)) { h->phase = H_DONE; return QT_DONE; }
    snprintf(c->reason, sizeof c->reason, "hybrid: analytical offsets at B_min = %d (%s; "
             "the bound's B_min is %d)", b, why, h->top);
    h->probe = b;
    return QT_PROPOSE;
}

static void start_refine(hyb *h)
{
    h->phase = h->refine ? H_REFINE : H_DONE;
    h->next = 0;
    h->pending = 0;
    h->n_moved = 0;
    h->chosen = -1;
}

static int hyb_propose(void *state, qt_search *s, qt_cand *c)
{
    hyb *h = state;
    const qt_coord *co;
    const qt_graph *g = qt_search_graph(s);
    qt_search_coords(s, &co);
    if (h->phase == H_BISECT) {
        if (h->probe) return QT_WAIT;
        /* skip B_min values whose widths a tried one already gave */
        while (h->L < h->R) {
            int mid = (h->L + h->R) / 2;
            if (mid > h->L && same_widths(h, s, mid, mid - 1, c)) { h->L = mid; continue; }
            return propose_bmin(h, s, c, mid, "binary search below the bound");
        }
        if (h->pass_b == h->R) {
            start_refine(h);
        } else {
            h->phase = H_WIDEN;
            return propose_bmin(h, s, c, h->R, h->R == h->top ? "the bound's own"
                                                                : "the smallest left to try");
        }
    }
    if (h->phase == H_WIDEN) {
        if (h->probe) return QT_WAIT;
        return propose_bmin(h, s, c, h->R, "widened after a failure");
    }
    if (h->phase == H_REFINE) {
        while (h->next < h->n) {
            int i = h->next++;
            qt_type t;
            int lo, hi;
            qt__ana_range(h->plan, i, &t, &lo, &hi);
            if (h->bw[i] <= lo) continue;
            qt_cand_copy(s, c, h->best);
            if (qt_search_format(s, i, t, h->bw[i] - 1, 0, &c->fmt[i]) != QT_OK) continue;
            snprintf(c->reason, sizeof c->reason, "hybrid refine: %s %s one bit fewer (%d -> %d)",
                     qt_graph_node_name(g, co[i].node), qt_qpoint_name(co[i].point), h->bw[i],
                     h->bw[i] - 1);
            h->moved[h->n_moved++] = i;
            h->pending++;
            return QT_PROPOSE;
        }
        if (h->pending) return QT_WAIT;
        return QT_DONE;                 /* (observe moves on when the round ends) */
    }
    return QT_DONE;
}

static void take(hyb *h, qt_search *s, const qt_cand *c, const qt_result *r)
{
    qt_cand_copy(s, h->best, c);
    h->best_r = *r;
    for (int i = 0; i < h->n; i++) h->bw[i] = c->fmt[i].type == QT_NONE ? 32 : c->fmt[i].width;
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
            if (h->phase == H_WIDEN) { start_refine(h); return; }
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
                    if (h->have) start_refine(h);
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
    if (h->phase != H_REFINE || h->pending <= 0) return;
    /* which tensor this result moved: proposals are observed in order */
    int k = h->n_moved - h->pending, i = h->moved[k];
    h->pending--;
    if (r->feasible) {
        double save = h->best_r.cost - r->cost;
        double lost = metric(s, &h->best_r) - metric(s, r);
        double ratio = save / (lost > 1e-6 ? lost : 1e-6);
        if (save > 0 && (h->chosen < 0 || ratio > h->chosen_ratio ||
                         (ratio == h->chosen_ratio && save > h->chosen_save))) {
            h->chosen = i;
            h->chosen_ratio = ratio;
            h->chosen_save = save;
            h->chosen_r = *r;
            /* keep the candidate: rebuild it from best when applied */
        }
    }
    if (h->pending == 0 && h->next >= h->n) {
        if (h->chosen < 0) { h->phase = H_DONE; return; }
        qt_type t;
        int lo, hi, j = h->chosen;
        qt__ana_range(h->plan, j, &t, &lo, &hi);
        if (qt_search_format(s, j, t, h->bw[j] - 1, 0, &h->best->fmt[j]) != QT_OK) {
            h->phase = H_DONE;
            return;
        }
        h->bw[j]--;
        h->best_r = h->chosen_r;
        start_refine(h);
    }
}

const qt_strategy qt__strat_hybrid = {
    "hybrid", "analytical offsets, B_min binary-searched below the bound, then greedy "
    "one-bit-fewer moves",
    hyb_init, hyb_propose, hyb_observe, hyb_free
};
