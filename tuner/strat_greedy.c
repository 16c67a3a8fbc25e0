/*
 * strat_greedy.c -- libnumber's auto-tuning (REFERENCES.md 2(c), Algorithms
 * 1-2): a global coarse search, then greedy single-tensor moves, in two
 * passes of two phases.
 *
 * A configuration is, per tuned tensor, a type, a width and a bias delta
 * (the bias relative to the one qt_search_format fits to the tensor's
 * range at that type and width; +1 is one step finer and half the range).
 *
 * Phase 1, coarse and global: every tensor gets its k-th allowed type (its
 * last when it allows fewer; types in qt_type order, the only order the
 * space keeps) and the same width, clamped to its own range. Type k = 0
 * starts at the widest width and halves it while the candidate passes; on
 * the first failure a binary search runs between that width and the
 * narrowest width that passed (of any type). A type that cannot go
 * narrower (its narrowest valid width passed) or whose search ended hands
 * over "the reduced width" -- the halved width, or the width that failed --
 * to the next type, which starts there (libnumber: FLOAT16 passes, FLOAT
 * stops, FIXED8; FIXED3 passes, FIXED2 fails, EXP2). The cheapest passing
 * candidate is the starting configuration. When no type passes at its
 * widest width, the strategy is done and the search answers the closest.
 *
 * Phase 2, fine-tuning (Algorithm 2), each set of moves one round:
 *   - bias +1 on one tensor (fixed, ufixed, float, log; only where the
 *     space's bias policy is {"search": k}, within +-k): while one passes,
 *     take the most accurate (ties: the lower tensor index);
 *   - one bit fewer on one tensor (moves that save no cost are not
 *     proposed): while one passes, take the largest cost saved per accuracy
 *     lost, dcost / max(dacc, 1e-6) (ties: larger dcost, lower index);
 *   - a type change on one tensor (another allowed type at the same width,
 *     and at one bit fewer when that saves cost: a type that fits the
 *     tensor better can pay for the bit, e.g. fixed<5> -> cluster<4>; the
 *     bias fitted): if none passes, the phase ends; else the best
 *     (ratio, then dcost, then accuracy, then index) is tried and the moves
 *     above run again. A type change is kept when, after them, the
 *     configuration is cheaper than before it (or as cheap and more
 *     accurate); otherwise it is undone and the next passing change of the
 *     same round is tried. (Not in libnumber: equal-cost type changes that
 *     pass would otherwise wander over a plateau, or cycle.)
 * Phase 3, recovery, when the configuration fails the pass-2 evaluation:
 *   bias -1 and one more bit on one tensor each (in that order: bias moves
 *   cost nothing); while none passes, take the most accurate and repeat;
 *   then take the first that passes. Nothing left to try: done.
 * Phase 4: phase 2 again from there.
 *
 * Passes (libnumber's). Pass 1 -- phases 1 and 2 -- evaluates on the
 * first `subset` validation images (qt_cand.images; the search judges them
 * against the float model on the same images), except the very first
 * candidate (the widest), which runs on the whole split so that the search
 * has an answer whatever the budget (subset results never are one). Pass 2
 * evaluates on the whole split: phase 3 checks the configuration pass 1
 * ended with and recovers if it fails there, and phase 4 fine-tunes from
 * it. Reasons end with "[pass 1: first 500 images]" or "[pass 2: all 2000
 * images]". Pass 1's results are kept apart from pass 2's (the memo is by
 * configuration and images). On lenet5 (r = 0.99, 2000 images) a 500-image
 * pass 1 cut the images evaluated by 23 % with the same answer in the
 * fixed+float+cluster space, and cost more and found less in the fixed one
 * (the subset's verdicts are noisy at a 0.9-point budget): see the
 * option.
 *
 * The strategy keeps its own memo of every configuration it has seen, so
 * it never proposes one twice (the search's memo would answer, but count
 * it against the evaluation budget). A set of moves answered entirely from
 * the memo is decided without waiting.
 *
 * Options: "subset" n >= 1 or false (default false: both passes on the
 * whole split, since the fixed-space result above is worse with 500; n >=
 * the split is the same),
 * "max_rounds" n >= 1 (default 1000): sets of moves decided, counting
 * those answered from the memo; at the limit the strategy is done.
 * "estimate" (default false; true: 3; or the ratio r > 1): one-bit-fewer
 * and type-change moves whose drop estimate (gains.c, of the whole
 * configuration) exceeds r x the budget are taken as failed unevaluated;
 * the next reason counts them. Top-1 constraints on the engine's data only
 * (otherwise ignored). r = 3, lenet5 (r = 0.99, 2000 images): the same
 * 6.47x in 30 evaluations instead of 34 (fixed), the same 8.03x in 104
 * instead of 147 (fixed+float+cluster); mlp the same answers in 14 of 15
 * and 15 of 19. r = 1.5 cut more and lost answers (5.61x, 6.72x): whole
 * configurations near the edge are predicted less well than one tensor.
 * Deterministic: no randomness, results seen in proposal order.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS_ACC   1e-6    /* floor of an accuracy loss in the ratio */
#define TYPES_MAX 16      /* qt_type values a mask can name */
#define SUBSET_DEFAULT 0   /* pass 1's images by default: the whole split */
#define EST_SAMPLES 2000   /* images the drop estimate is measured on */
#define SKIP        3.0    /* predicted drop / budget beyond which a move is not evaluated
                              (option "estimate": true; 1.5, bisection's, lost answers) */

/* the kinds of move, and the phases and their steps */
enum { MV_GLOBAL, MV_CHECK, MV_BIAS_UP, MV_BIT_DOWN, MV_TYPE, MV_BIAS_DOWN, MV_BIT_UP };
enum { PH_1, PH_2, PH_3, PH_4, PH_DONE };
enum { ST_BIAS, ST_BITS, ST_TYPE, ST_CHECK, ST_RECOVER };

/* a configuration seen, with its result once known */
typedef struct memo_e {
    uint64_t hash;        /* of its formats and images */
    size_t   images;      /* evaluated on the first n images (0: the split) */
    int      known;       /* the result arrived */
    int      feasible;
    double   score;       /* the job's metric, higher is better; -inf: failed */
    double   cost;
} memo_e;

/* one move of the current set: a change of the current configuration */
typedef struct move {
    int  kind;            /* MV_* */
    int  coord;           /* the tensor changed (MV_GLOBAL, MV_CHECK: -1) */
    int  t, w, d;         /* its new type, width, bias delta (MV_GLOBAL: rank, width) */
    int  memo;            /* the configuration's memo entry */
    char reason[160];
} move;

typedef struct greedy {
    int        n;             /* tuned tensors */
    int        K;             /* type ranks (most types a tensor allows) */
    int        wlo, whi;      /* the widths any tensor allows */
    int       *ak, *bk;       /* per rank: narrowest and widest valid global width (0: none) */
    size_t     sub;           /* pass 1's images (0: the whole split) */
    size_t     img;           /* the images of the current pass's moves */
    size_t     split;         /* the validation images */
    int        max_rounds;
    /* the memo: entries and their formats (n per entry) */
    memo_e    *memo;
    qt_format *mfmt;
    int        n_memo, cap_memo;
    /* the current set of moves, and which of its configurations are proposed */
    move      *mv;
    int        n_mv, cap_mv;
    int       *pend;          /* memo entries to propose, in order */
    int       *pend_mv;       /* the move each comes from (its reason) */
    int        n_pend, n_prop, n_obs;
    int        open;          /* a set awaits its decision */
    int        rounds;        /* sets decided */
    qt_format *tmp;           /* n formats: a configuration being built */
    /* where the search is */
    int        phase, step;
    int       *t, *w, *d;     /* the current configuration */
    int        cur;           /* its memo entry (-1: none yet) */
    /* phase 1 */
    int        k, lo, hi;     /* rank; this rank's failing width, narrowest passing (0: none) */
    int        wtry;          /* the width proposed */
    int        reduced;       /* the width the next rank starts at */
    int        any;           /* something passed */
    int        best;          /* the cheapest passing global candidate (memo), its rank and width */
    int        best_k, best_w;
    char       note[64];      /* why the next phase-1 width */
    /* phase 2: a type change on trial, from the base configuration */
    int        trial;
    int       *bt, *bw, *bd, bcur;
    move      *tl;            /* the passing type changes of the base, best first */
    int        n_tl, pos_tl;
    int        oom;           /* out of memory: done */
    /* option "estimate": moves the drop estimate rules out */
    const qt_search *s;
    qt__margins *M;           /* NULL: off */
    double     budget, skip;
    int        n_ruled;       /* in all */
    int        set_ruled;     /* in the current set */
} greedy;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static int clampi(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

static int has_bias(int t)
{
    return t == QT_FIXED || t == QT_UFIXED || t == QT_FLOAT || t == QT_LOG;
}

static double score_of(const qt_search *s, const qt_result *r)
{
    if (r->fail != QT_FAIL_NONE) return -INFINITY;
    switch (qt_search_spec(s)->metric) {
    case QT_MET_TOP5: return r->top5;
    case QT_MET_LOSS: return -r->loss;
    default:          return r->top1;
    }
}

/* the metric for a reason: "91.20 %" or "loss 0.3120" */
static void fmt_acc(const qt_search *s, double score, char *buf, size_t n)
{
    if (!isfinite(score)) snprintf(buf, n, "failed");
    else if (qt_search_spec(s)->metric == QT_MET_LOSS) snprintf(buf, n, "loss %.4f", -score);
    else snprintf(buf, n, "%.2f %%", 100 * score);
}

static const char *cost_unit(const qt_search *s)
{
    switch (qt_search_spec(s)->cost) {
    case QT_COST_WEIGHT_BITS: case QT_COST_ACT_BITS: return "bits";
    case QT_COST_BITOPS: return "bit-ops";
    default: return "of cost";
    }
}

static double cost_of(const qt_search *s, qt_format *f)
{
    qt_cand c;
    qt_result r;
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    c.fmt = f;
    qt__cost(s, &c, &r);
    return r.cost;
}

static uint64_t hash_fmt(const qt_format *f, int n)
{
    const unsigned char *p = (const unsigned char *)f;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < (size_t)n * sizeof *f; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* the global phase-1 configuration of rank k at width w into f; QT_OK, or
 * QT_EINVAL when some tensor cannot have it */
static int global_cfg(greedy *g, const qt_search *s, int k, int w, qt_format *f)
{
    const qt_coord *c;
    qt_search_coords(s, &c);
    for (int i = 0; i < g->n; i++) {
        int t = qt__kth_type(c[i].types, k);
        if (t < 0 || qt_search_format(s, i, (qt_type)t, clampi(w, c[i].wmin, c[i].wmax), 0,
                                      &f[i]) != QT_OK)
            return QT_EINVAL;
    }
    return QT_OK;
}

/* the name of rank k: one type's, or a description when tensors differ */
static void rank_name(const qt_search *s, int k, char *buf, size_t n)
{
    const qt_coord *c;
    int m = qt_search_coords(s, &c), t0 = qt__kth_type(c[0].types, k);
    for (int i = 1; i < m; i++)
        if (qt__kth_type(c[i].types, k) != t0) { snprintf(buf, n, "their type #%d", k + 1); return; }
    snprintf(buf, n, "%s", qt_type_name((qt_type)t0));
}

/* ------------------------------------------------------------------------ */
/* The memo and the current set                                              */
/* ------------------------------------------------------------------------ */

/* the memo entry of configuration f, added (unknown) when new; -1: no memory */
static int memo_get(greedy *g, const qt_format *f, int *added)
{
    uint64_t h = hash_fmt(f, g->n) ^ (uint64_t)g->img * 0x9e3779b97f4a7c15ull;
    size_t sz = (size_t)g->n * sizeof *f;
    *added = 0;
    for (int i = 0; i < g->n_memo; i++)
        if (g->memo[i].hash == h && g->memo[i].images == g->img &&
            !memcmp(&g->mfmt[(size_t)i * g->n], f, sz))
            return i;
    if (g->n_memo == g->cap_memo) {
        int cap = g->cap_memo ? 2 * g->cap_memo : 64;
        memo_e *m = realloc(g->memo, (size_t)cap * sizeof *m);
        if (!m) return -1;
        g->memo = m;
        qt_format *mf = realloc(g->mfmt, (size_t)cap * sz);
        if (!mf) return -1;
        g->mfmt = mf;
        g->cap_memo = cap;
    }
    memo_e *e = &g->memo[g->n_memo];
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->images = g->img;
    memcpy(&g->mfmt[(size_t)g->n_memo * g->n], f, sz);
    *added = 1;
    return g->n_memo++;
}

static void begin_set(greedy *g)
{
    g->n_mv = g->n_pend = g->n_prop = g->n_obs = 0;
    g->set_ruled = 0;
    g->open = 1;
    g->rounds++;
}

/* add a move whose configuration is f; proposed when the memo does not
 * know it. Returns the move, or NULL (out of memory). */
static move *add_move(greedy *g, int kind, int coord, int t, int w, int d, const qt_format *f)
{
    int added;
    if (g->n_mv == g->cap_mv) { g->oom = 1; return NULL; }      /* sized in init */
    int e = memo_get(g, f, &added);
    if (e < 0) { g->oom = 1; return NULL; }
    move *m = &g->mv[g->n_mv];
    m->kind = kind; m->coord = coord; m->t = t; m->w = w; m->d = d; m->memo = e;
    m->reason[0] = 0;
    if (added && g->M && (kind == MV_BIT_DOWN || kind == MV_TYPE)) {
        /* a narrower or other format whose predicted drop is far over the
         * budget: failed, unevaluated (the memo keeps the verdict) */
        qt_cand c;
        memset(&c, 0, sizeof c);
        c.fmt = (qt_format *)f;
        double pd = qt__drop_estimate(g->M, g->s, &c);
        if (pd > g->skip * g->budget) {
            memo_e *x = &g->memo[e];
            x->known = 1;
            x->feasible = 0;
            x->score = -INFINITY;
            x->cost = cost_of(g->s, (qt_format *)f);
            g->n_ruled++;
            g->set_ruled++;
            added = 0;
        }
    }
    if (added) {
        g->pend[g->n_pend] = e;
        g->pend_mv[g->n_pend++] = g->n_mv;
    }
    g->n_mv++;
    return m;
}

static const qt_format *cur_fmt(const greedy *g)
{
    return &g->mfmt[(size_t)g->cur * g->n];
}

/* make a move's configuration the current one */
static void apply(greedy *g, const qt_search *s, const move *m)
{
    if (m->kind == MV_GLOBAL) {
        const qt_coord *c;
        qt_search_coords(s, &c);
        for (int i = 0; i < g->n; i++) {
            g->t[i] = qt__kth_type(c[i].types, m->t);
            g->w[i] = clampi(m->w, c[i].wmin, c[i].wmax);
            g->d[i] = 0;
        }
    } else if (m->coord >= 0) {
        g->t[m->coord] = m->t;
        g->w[m->coord] = m->w;
        g->d[m->coord] = m->d;
    }
    g->cur = m->memo;
}

/* ------------------------------------------------------------------------ */
/* Building the sets of moves                                                */
/* ------------------------------------------------------------------------ */

/* a move of coordinate i to (t, w, d) from the current configuration; 0 if
 * the format is not possible (or, with need_saving, saves nothing) */
static move *single(greedy *g, const qt_search *s, int kind, int i, int t, int w, int d,
                    int need_saving, double *saved)
{
    qt_format f;
    if (qt_search_format(s, i, (qt_type)t, w, d, &f) != QT_OK) return NULL;
    memcpy(g->tmp, cur_fmt(g), (size_t)g->n * sizeof *g->tmp);
    g->tmp[i] = f;
    if (need_saving || saved) {
        double dc = g->memo[g->cur].cost - cost_of(s, g->tmp);
        if (saved) *saved = dc;
        if (need_saving && !(dc > 0)) return NULL;
    }
    return add_move(g, kind, i, t, w, d, g->tmp);
}

static void build_phase1(greedy *g, const qt_search *s)
{
    char rn[48];
    begin_set(g);
    if (global_cfg(g, s, g->k, g->wtry, g->tmp) != QT_OK) return;   /* decided as a failure */
    /* the first candidate runs on the whole split: the search has an answer
     * even if the budget ends in pass 1 */
    size_t img = g->img;
    if (g->n_memo == 0) g->img = 0;
    move *m = add_move(g, MV_GLOBAL, -1, g->k, g->wtry, 0, g->tmp);
    g->img = img;
    if (!m) return;
    rank_name(s, g->k, rn, sizeof rn);
    qt__say(m->reason, sizeof m->reason, "greedy phase 1: all tensors %s %d bits (%s)",
             rn, g->wtry, g->note);
}

static void build_phase2(greedy *g, const qt_search *s)
{
    const qt_coord *c;
    char tn[96], acc[32];
    int ph = g->phase == PH_4 ? 4 : 2;
    qt_search_coords(s, &c);
    fmt_acc(s, g->memo[g->cur].score, acc, sizeof acc);
    begin_set(g);
    for (int i = 0; i < g->n && !g->oom; i++) {
        move *m = NULL;
        double saved = 0;
        qt__tensor_name(s, i, tn, sizeof tn);
        if (g->step == ST_BIAS) {
            if (c[i].bias != QT_BIAS_SEARCH || !has_bias(g->t[i]) || g->d[i] + 1 > c[i].bias_k)
                continue;
            if ((m = single(g, s, MV_BIAS_UP, i, g->t[i], g->w[i], g->d[i] + 1, 0, NULL)))
                qt__say(m->reason, sizeof m->reason, "greedy phase %d: %s bias +1 (%s %d bits, "
                         "fitted%+d -> fitted%+d: finer step); now %s", ph, tn,
                         qt_type_name((qt_type)g->t[i]), g->w[i], g->d[i], g->d[i] + 1, acc);
        } else if (g->step == ST_BITS) {
            if (g->w[i] - 1 < c[i].wmin) continue;
            if ((m = single(g, s, MV_BIT_DOWN, i, g->t[i], g->w[i] - 1, g->d[i], 1, &saved)))
                qt__say(m->reason, sizeof m->reason, "greedy phase %d: %s one bit fewer "
                         "(%d -> %d), saves %.3g %s; now %s", ph, tn, g->w[i], g->w[i] - 1,
                         saved, cost_unit(s), acc);
        } else {
            for (int t = 0; t < TYPES_MAX && !g->oom; t++) {
                if (!(c[i].types >> t & 1u) || t == g->t[i]) continue;
                if ((m = single(g, s, MV_TYPE, i, t, g->w[i], 0, 0, NULL)))
                    qt__say(m->reason, sizeof m->reason, "greedy phase %d: %s %s -> %s at %d "
                             "bits, bias fitted; now %s", ph, tn, qt_type_name((qt_type)g->t[i]),
                             qt_type_name((qt_type)t), g->w[i], acc);
                /* the new type one bit narrower: a type that represents the
                 * tensor better may pay for the bit (only when it saves) */
                if (g->w[i] - 1 < c[i].wmin || g->oom) continue;
                if ((m = single(g, s, MV_TYPE, i, t, g->w[i] - 1, 0, 1, &saved)))
                    qt__say(m->reason, sizeof m->reason, "greedy phase %d: %s %s %d -> %s %d "
                             "bits (one bit fewer), bias fitted, saves %.3g %s; now %s", ph, tn,
                             qt_type_name((qt_type)g->t[i]), g->w[i], qt_type_name((qt_type)t),
                             g->w[i] - 1, saved, cost_unit(s), acc);
            }
        }
    }
}

static void build_check(greedy *g, const qt_search *s)
{
    begin_set(g);
    memcpy(g->tmp, cur_fmt(g), (size_t)g->n * sizeof *g->tmp);
    move *m = add_move(g, MV_CHECK, -1, 0, 0, 0, g->tmp);
    if (m) qt__say(m->reason, sizeof m->reason, "greedy pass 2: the configuration phase 2 "
                    "ended with, on the whole split (%zu images)", g->split);
    (void)s;
}

static void build_recover(greedy *g, const qt_search *s)
{
    const qt_coord *c;
    char tn[96], acc[32], need[32];
    qt_search_coords(s, &c);
    fmt_acc(s, g->memo[g->cur].score, acc, sizeof acc);
    double th = qt_search_threshold(s);
    fmt_acc(s, qt_search_spec(s)->metric == QT_MET_LOSS ? -th : th, need, sizeof need);
    begin_set(g);
    for (int i = 0; i < g->n && !g->oom; i++) {         /* bias -1: no cost */
        if (c[i].bias != QT_BIAS_SEARCH || !has_bias(g->t[i]) || g->d[i] - 1 < -c[i].bias_k)
            continue;
        qt__tensor_name(s, i, tn, sizeof tn);
        move *m = single(g, s, MV_BIAS_DOWN, i, g->t[i], g->w[i], g->d[i] - 1, 0, NULL);
        if (m) qt__say(m->reason, sizeof m->reason, "greedy phase 3: %s bias -1 (wider range) "
                        "to recover from %s (needs %s)", tn, acc, need);
    }
    for (int i = 0; i < g->n && !g->oom; i++) {
        if (g->w[i] + 1 > c[i].wmax) continue;
        qt__tensor_name(s, i, tn, sizeof tn);
        move *m = single(g, s, MV_BIT_UP, i, g->t[i], g->w[i] + 1, g->d[i], 0, NULL);
        if (m) qt__say(m->reason, sizeof m->reason, "greedy phase 3: %s one more bit (%d -> %d) "
                        "to recover from %s (needs %s)", tn, g->w[i], g->w[i] + 1, acc, need);
    }
}

static void build(greedy *g, const qt_search *s)
{
    switch (g->phase) {
    case PH_1: build_phase1(g, s); break;
    case PH_3: if (g->step == ST_CHECK) build_check(g, s); else build_recover(g, s); break;
    default:   build_phase2(g, s); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Deciding                                                                  */
/* ------------------------------------------------------------------------ */

static const memo_e *res(const greedy *g, int j) { return &g->memo[g->mv[j].memo]; }

/* phase 1: the next rank, from "the reduced width" once something passed */
static void next_rank(greedy *g, const qt_search *s)
{
    char prev[48];
    int k0 = g->k;
    if (k0 >= 0) rank_name(s, k0, prev, sizeof prev);
    for (g->k++; g->k < g->K; g->k++) {
        if (!g->ak[g->k]) continue;
        int start = g->any ? (g->bk[g->k] < g->reduced ? g->bk[g->k] : g->reduced) : g->bk[g->k];
        if (start < g->ak[g->k]) continue;
        g->lo = 0;
        g->wtry = start;
        if (k0 < 0) qt__say(g->note, sizeof g->note, "the widest");
        else if (g->any) qt__say(g->note, sizeof g->note, "next type at the reduced width");
        else qt__say(g->note, sizeof g->note, "%s failed at its widest", prev);
        return;
    }
    if (!g->any) { g->phase = PH_DONE; return; }      /* the search answers the closest */
    move m = { MV_GLOBAL, -1, g->best_k, g->best_w, 0, g->best, "" };
    apply(g, s, &m);
    g->phase = PH_2;
    g->step = ST_BIAS;
    g->trial = 0;
}

/* phase 1: bisect between this rank's failing width and the narrowest pass */
static void bisect(greedy *g, const qt_search *s)
{
    int top = g->hi < g->bk[g->k] + 1 ? g->hi : g->bk[g->k] + 1;
    if (top - g->lo > 1) {
        g->wtry = (g->lo + top) / 2;
        qt__say(g->note, sizeof g->note, "binary search: %d failed, %d passed", g->lo, g->hi);
    } else {
        g->reduced = g->lo;
        next_rank(g, s);
    }
}

static void decide_phase1(greedy *g, const qt_search *s)
{
    int pass = g->n_mv > 0 && res(g, 0)->feasible;
    if (pass) {
        const memo_e *e = res(g, 0);
        if (!g->any || e->cost < g->memo[g->best].cost) {
            g->best = g->mv[0].memo;
            g->best_k = g->k;
            g->best_w = g->wtry;
        }
        g->any = 1;
        g->hi = g->wtry;
        if (g->lo) { bisect(g, s); return; }
        if (g->wtry <= g->ak[g->k]) {                 /* this type cannot go narrower */
            g->reduced = g->wtry / 2;
            next_rank(g, s);
            return;
        }
        qt__say(g->note, sizeof g->note, "%d passed: halving", g->wtry);
        g->wtry = g->wtry / 2 > g->ak[g->k] ? g->wtry / 2 : g->ak[g->k];
        return;
    }
    g->lo = g->wtry;
    if (!g->any) next_rank(g, s);
    else bisect(g, s);
}

static void end_phase(greedy *g)
{
    g->trial = 0;
    if (g->phase == PH_2) { g->phase = PH_3; g->step = ST_CHECK; g->img = 0; }   /* pass 2 */
    else g->phase = PH_DONE;
}

static void save_base(greedy *g)
{
    memcpy(g->bt, g->t, (size_t)g->n * sizeof *g->t);
    memcpy(g->bw, g->w, (size_t)g->n * sizeof *g->w);
    memcpy(g->bd, g->d, (size_t)g->n * sizeof *g->d);
    g->bcur = g->cur;
}

static void revert_base(greedy *g)
{
    memcpy(g->t, g->bt, (size_t)g->n * sizeof *g->t);
    memcpy(g->w, g->bw, (size_t)g->n * sizeof *g->w);
    memcpy(g->d, g->bd, (size_t)g->n * sizeof *g->d);
    g->cur = g->bcur;
}

/* the bias and width moves after a type change ended: keep it if it paid */
static void end_of_moves(greedy *g, const qt_search *s)
{
    if (!g->trial) { g->step = ST_TYPE; return; }
    const memo_e *now = &g->memo[g->cur], *base = &g->memo[g->bcur];
    if (now->cost < base->cost || (now->cost == base->cost && now->score > base->score)) {
        g->trial = 0;
        g->step = ST_TYPE;
        return;
    }
    revert_base(g);
    if (++g->pos_tl < g->n_tl) {
        apply(g, s, &g->tl[g->pos_tl]);
        g->step = ST_BIAS;
    } else {
        end_phase(g);
    }
}

/* type moves, best first: ratio, saved cost, accuracy, index */
static int type_better(const greedy *g, const move *a, const move *b)
{
    const memo_e *c = &g->memo[g->cur], *x = &g->memo[a->memo], *y = &g->memo[b->memo];
    double dx = c->cost - x->cost, dy = c->cost - y->cost;
    double ax = c->score - x->score, ay = c->score - y->score;
    double rx = dx / (ax > EPS_ACC ? ax : EPS_ACC), ry = dy / (ay > EPS_ACC ? ay : EPS_ACC);
    if (rx != ry) return rx > ry;
    if (dx != dy) return dx > dy;
    return x->score > y->score;
}

static void decide_phase2(greedy *g, const qt_search *s)
{
    const memo_e *c = &g->memo[g->cur];
    int best = -1;
    double bratio = 0, bdc = 0;
    switch (g->step) {
    case ST_BIAS:
        for (int j = 0; j < g->n_mv; j++)
            if (res(g, j)->feasible && (best < 0 || res(g, j)->score > res(g, best)->score))
                best = j;
        if (best >= 0) apply(g, s, &g->mv[best]);
        else g->step = ST_BITS;
        return;
    case ST_BITS:
        for (int j = 0; j < g->n_mv; j++) {
            const memo_e *e = res(g, j);
            if (!e->feasible) continue;
            double dc = c->cost - e->cost, da = c->score - e->score;
            double ratio = dc / (da > EPS_ACC ? da : EPS_ACC);
            if (best < 0 || ratio > bratio || (ratio == bratio && dc > bdc)) {
                best = j;
                bratio = ratio;
                bdc = dc;
            }
        }
        if (best >= 0) apply(g, s, &g->mv[best]);
        else end_of_moves(g, s);
        return;
    default:                                          /* ST_TYPE */
        g->n_tl = 0;
        for (int j = 0; j < g->n_mv; j++) {           /* insertion: stable, so index breaks ties */
            if (!res(g, j)->feasible) continue;
            int at = g->n_tl;
            while (at > 0 && type_better(g, &g->mv[j], &g->tl[at - 1])) {
                g->tl[at] = g->tl[at - 1];
                at--;
            }
            g->tl[at] = g->mv[j];
            g->n_tl++;
        }
        if (!g->n_tl) { end_phase(g); return; }
        save_base(g);
        g->pos_tl = 0;
        g->trial = 1;
        apply(g, s, &g->tl[0]);
        g->step = ST_BIAS;
        return;
    }
}

static void decide_phase3(greedy *g, const qt_search *s)
{
    if (g->step == ST_CHECK) {
        if (g->n_mv) g->cur = g->mv[0].memo;          /* its whole-split result */
        if (g->n_mv && res(g, 0)->feasible) { g->phase = PH_4; g->step = ST_BIAS; }
        else g->step = ST_RECOVER;
        return;
    }
    if (!g->n_mv) { g->phase = PH_DONE; return; }     /* nothing left to try */
    int best = 0;
    for (int j = 0; j < g->n_mv; j++)
        if (res(g, j)->feasible) {
            apply(g, s, &g->mv[j]);
            g->phase = PH_4;
            g->step = ST_BIAS;
            return;
        }
    for (int j = 1; j < g->n_mv; j++)
        if (res(g, j)->score > res(g, best)->score) best = j;
    apply(g, s, &g->mv[best]);
}

static void decide(greedy *g, const qt_search *s)
{
    switch (g->phase) {
    case PH_1: decide_phase1(g, s); break;
    case PH_3: decide_phase3(g, s); break;
    default:   decide_phase2(g, s); break;
    }
}

/* ------------------------------------------------------------------------ */
/* The strategy                                                              */
/* ------------------------------------------------------------------------ */

static void gr_free(void *state)
{
    greedy *g = state;
    if (!g) return;
    free(g->ak); free(g->bk);
    free(g->memo); free(g->mfmt);
    free(g->mv); free(g->tl);
    free(g->pend); free(g->pend_mv);
    free(g->tmp);
    free(g->t); free(g->w); free(g->d);
    free(g->bt); free(g->bw); free(g->bd);
    qt__margins_free(g->M);
    free(g);
}

static int opt_int(const json_t *v, const char *name, int *out, qt_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000000)
        return qt__fail(err, QT_EINVAL, -1, "strategy.%s: greedy needs an integer >= 1%s", name,
                        strcmp(name, "subset") ? "" : " (or false: the whole split)");
    *out = (int)json_integer_value(v);
    return QT_OK;
}

static int gr_init(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c), rc;
    const qt_dataset *val = qt_search_dataset(s);
    size_t split = qt_search_split(s);
    /* pass 1's images: SUBSET_DEFAULT (a custom evaluator may not know
     * qt_cand.images: it gets the whole split unless the option asks) */
    int subset = val ? SUBSET_DEFAULT : 0, max_rounds = 1000;
    double estimate = 0;
    if (opts) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)opts, key, v) {
            if (!strcmp(key, "subset") && json_is_false(v)) { subset = 0; rc = QT_OK; }
            else if (!strcmp(key, "subset")) rc = opt_int(v, key, &subset, err);
            else if (!strcmp(key, "max_rounds")) rc = opt_int(v, key, &max_rounds, err);
            else if (!strcmp(key, "estimate")) {
                rc = QT_OK;
                if (json_is_boolean(v)) estimate = json_is_true(v) ? SKIP : 0;
                else if (json_is_number(v) && json_number_value(v) > 1 &&
                         json_number_value(v) < 1e6) estimate = json_number_value(v);
                else rc = qt__fail(err, QT_EINVAL, -1, "strategy.estimate: true, false, or the "
                                   "ratio of predicted drop to budget (> 1) beyond which a move "
                                   "is not evaluated");
            } else rc = qt__fail(err, QT_EINVAL, -1, "strategy.%s: greedy has no such option "
                                 "(subset, max_rounds, estimate)", key);
            if (rc) return rc;
        }
    }
    if (split && (size_t)subset >= split) subset = 0;          /* the whole split */
    greedy *g = calloc(1, sizeof *g);
    if (!g) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    int m = n ? n : 1;
    g->n = n;
    g->sub = g->img = (size_t)subset;
    g->split = split;
    g->max_rounds = max_rounds;
    g->s = s;
    /* the drop estimate (a top-1 constraint on the engine's data only) */
    if (estimate > 0 && qt_search_spec(s)->metric == QT_MET_TOP1 && val) {
        g->skip = estimate;
        g->budget = qt_search_baseline(s)->top1 - qt_search_threshold(s);
        if (g->budget > 0 && (rc = qt__margins_new(s, EST_SAMPLES, NULL, &g->M, err))) {
            gr_free(g);
            return rc;
        }
    }
    g->cap_mv = 2 * m * TYPES_MAX + 2;          /* a type move at w and at w - 1 */
    g->mv = calloc((size_t)g->cap_mv, sizeof *g->mv);
    g->tl = calloc((size_t)g->cap_mv, sizeof *g->tl);
    g->pend = calloc((size_t)g->cap_mv, sizeof *g->pend);
    g->pend_mv = calloc((size_t)g->cap_mv, sizeof *g->pend_mv);
    g->tmp = calloc((size_t)m, sizeof *g->tmp);
    g->t = calloc((size_t)m, sizeof *g->t);
    g->w = calloc((size_t)m, sizeof *g->w);
    g->d = calloc((size_t)m, sizeof *g->d);
    g->bt = calloc((size_t)m, sizeof *g->bt);
    g->bw = calloc((size_t)m, sizeof *g->bw);
    g->bd = calloc((size_t)m, sizeof *g->bd);
    g->wlo = 32;
    for (int i = 0; i < n; i++) {
        int nt = __builtin_popcount(c[i].types);
        if (nt > g->K) g->K = nt;
        if (c[i].wmin < g->wlo) g->wlo = c[i].wmin;
        if (c[i].wmax > g->whi) g->whi = c[i].wmax;
    }
    g->ak = calloc((size_t)(g->K ? g->K : 1), sizeof *g->ak);
    g->bk = calloc((size_t)(g->K ? g->K : 1), sizeof *g->bk);
    if (!g->mv || !g->tl || !g->pend || !g->pend_mv || !g->tmp || !g->t || !g->w || !g->d ||
        !g->bt || !g->bw || !g->bd || !g->ak || !g->bk) {
        gr_free(g);
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    /* the global widths each rank can take */
    for (int k = 0; k < g->K; k++)
        for (int w = g->wlo; w <= g->whi; w++)
            if (global_cfg(g, s, k, w, g->tmp) == QT_OK) {
                if (!g->ak[k]) g->ak[k] = w;
                g->bk[k] = w;
            }
    g->cur = -1;
    g->best = -1;
    g->k = -1;
    g->phase = PH_1;
    if (n == 0) g->phase = PH_DONE;
    else next_rank(g, s);
    *state = g;
    return QT_OK;
}

/* decide every set whose results are in, build the next, until one has
 * something to propose or the strategy is done */
static void advance(greedy *g, const qt_search *s)
{
    for (;;) {
        if (g->open) { decide(g, s); g->open = 0; }
        if (g->oom || g->phase == PH_DONE) { g->phase = PH_DONE; return; }
        if (g->rounds >= g->max_rounds) { g->phase = PH_DONE; return; }
        build(g, s);
        if (g->oom) { g->phase = PH_DONE; return; }
        if (g->n_pend) return;
    }
}

static int gr_propose(void *state, qt_search *s, qt_cand *cand)
{
    greedy *g = state;
    if (g->n_prop == g->n_pend) {
        if (g->n_obs < g->n_prop) return QT_WAIT;     /* results first */
        advance(g, s);
        if (g->phase == PH_DONE) return QT_DONE;
    }
    int e = g->pend[g->n_prop];
    memcpy(cand->fmt, &g->mfmt[(size_t)e * g->n], (size_t)g->n * sizeof *cand->fmt);
    cand->images = g->memo[e].images;
    snprintf(cand->reason, sizeof cand->reason, "%s", g->mv[g->pend_mv[g->n_prop]].reason);
    if (g->n_prop == 0 && g->set_ruled) {
        size_t at = strlen(cand->reason);
        snprintf(cand->reason + at, sizeof cand->reason - at, "; the estimate ruled out %d "
                 "move%s", g->set_ruled, g->set_ruled == 1 ? "" : "s");
    }
    if (g->sub) {                 /* which pass: the tag fits, the reason gives way */
        char tag[64];
        int k = snprintf(tag, sizeof tag, " [pass %d: %s %zu images]",
                         g->phase <= PH_2 ? 1 : 2, cand->images ? "first" : "all",
                         cand->images ? cand->images : g->split);
        size_t at = strlen(cand->reason);
        if (at + (size_t)k >= sizeof cand->reason) at = sizeof cand->reason - 1 - (size_t)k;
        memcpy(cand->reason + at, tag, (size_t)k + 1);
    }
    g->n_prop++;
    return QT_PROPOSE;
}

static void gr_observe(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    greedy *g = state;
    (void)c;
    if (g->n_obs >= g->n_prop) return;                /* not ours: ignore */
    memo_e *e = &g->memo[g->pend[g->n_obs++]];
    e->known = 1;
    e->feasible = r->feasible && r->fail == QT_FAIL_NONE;
    e->score = score_of(s, r);
    e->cost = r->cost;
}

const qt_strategy qt__strat_greedy = {
    "greedy", "libnumber's two-pass, four-phase search: global halving and binary search, "
    "then single-tensor bias, width and type moves ranked by cost saved per accuracy lost",
    gr_init, gr_propose, gr_observe, gr_free
};
