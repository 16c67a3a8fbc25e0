/*
 * strat_uniform.c -- one format everywhere, swept over widths: the
 * baseline rows of the papers' tables, and the strategy table.
 *
 * For k = 0, 1, ... and each width w from the widest allowed down to the
 * narrowest, one candidate gives every tuned tensor its k-th allowed type
 * (in qt_type order; its last when it allows fewer) at width w, clamped to
 * its own width range, the bias fitted to its range. So a space of fixed
 * weights and ufixed activations sweeps both together. All candidates are
 * proposed in one round: they do not depend on each other. Options: none.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct uni {
    int k, width;         /* the next (type rank, width) to propose */
    int wmax, wmin;
    int kmax;             /* most types any tensor allows */
    qt_format *last;      /* the last proposal (clamping repeats some) */
    int n_last;
} uni;

static int uni_init(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    if (opts && json_object_size(opts) > 0)
        return qt__fail(err, QT_EINVAL, -1, "strategy: uniform takes no options");
    uni *u = calloc(1, sizeof *u);
    if (!u) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    u->wmin = 32;
    for (int i = 0; i < n; i++) {
        int nt = __builtin_popcount(c[i].types);
        if (nt > u->kmax) u->kmax = nt;
        if (c[i].wmax > u->wmax) u->wmax = c[i].wmax;
        if (c[i].wmin < u->wmin) u->wmin = c[i].wmin;
    }
    u->width = u->wmax;
    u->last = calloc((size_t)(n ? n : 1), sizeof *u->last);
    if (!u->last) { free(u); return qt__fail(err, QT_ENOMEM, -1, "out of memory"); }
    *state = u;
    return QT_OK;
}

static int uni_propose(void *state, qt_search *s, qt_cand *cand)
{
    uni *u = state;
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    for (; u->k < u->kmax; u->k++, u->width = u->wmax) {
        for (; u->width >= u->wmin; u->width--) {
            int set = 0, t0 = -1, mixed = 0;
            for (int i = 0; i < n; i++) {
                int t = qt__kth_type(c[i].types, u->k);
                int w = u->width < c[i].wmin ? c[i].wmin : u->width > c[i].wmax ? c[i].wmax : u->width;
                cand->fmt[i].type = QT_NONE;
                if (t < 0) continue;
                if (qt_search_format(s, i, (qt_type)t, w, 0, &cand->fmt[i]) != QT_OK) {
                    cand->fmt[i].type = QT_NONE;
                    continue;
                }
                set++;
                if (t0 < 0) t0 = t;
                else if (t != t0) mixed = 1;
            }
            if (!set) continue;
            if (u->n_last && !memcmp(u->last, cand->fmt, (size_t)n * sizeof *u->last))
                continue;                      /* every tensor clamped: same as the last */
            memcpy(u->last, cand->fmt, (size_t)n * sizeof *u->last);
            u->n_last = n;
            snprintf(cand->reason, sizeof cand->reason, "uniform: %d bits, %s on %d of %d tensors",
                     u->width, mixed ? "each tensor's type" : qt_type_name((qt_type)t0), set, n);
            u->width--;
            return QT_PROPOSE;
        }
    }
    return QT_DONE;
}

static void uni_observe(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    (void)state; (void)s; (void)c; (void)r;
}

static void uni_free(void *state)
{
    uni *u = state;
    if (u) free(u->last);
    free(u);
}

const qt_strategy qt__strat_uniform = {
    "uniform", "one format for every tuned tensor, swept over widths",
    uni_init, uni_propose, uni_observe, uni_free
};

/* ---- the table of strategies ---- */

extern const qt_strategy qt__strat_grid;             /* strat_grid.c */
static const qt_strategy *const strategies[] = {
    &qt__strat_uniform, &qt__strat_bisect, &qt__strat_greedy, &qt__strat_analytical,
    &qt__strat_hybrid, &qt__strat_grid, NULL
};

const qt_strategy *const *qt_strategies(void) { return strategies; }

const qt_strategy *qt_strategy_find(const char *name)
{
    for (int i = 0; strategies[i]; i++)
        if (!strcmp(strategies[i]->name, name)) return strategies[i];
    return NULL;
}
