/*
 * study_auto.c -- issue #9, study 4: libnumber's automatic quantizer
 * (Oh et al., PACT'18; ../shared/REFERENCES.md 2(c), 2(d)) through qtune,
 * on the zoo models trained on Fashion-MNIST: the parameter size reduction
 * against fp32 at <= 1 % and <= 7 % relative accuracy loss, choosing the
 * type per tensor, beside libnumber's 7.13x (1 %), 8.91x (7 %) geomean and
 * 16x maximum over its 11 models.
 *
 * For each model, tolerance (relative top-1 constraint r = 0.99 and
 * r = 0.93) and space, one job of the greedy strategy (tuner/strat_greedy.c:
 * libnumber's two passes of two phases -- a global coarse search, then
 * greedy single-tensor bias, bit-width and type moves, recovery, and the
 * fine-tuning again), cost "weight_bits" (the parameter size):
 *   fixed:           the weights of every conv and dense node (one tensor
 *                    per layer, as libnumber's per-layer weight formats),
 *                    fixed point only;
 *   fixed+float+log: the same, the type chosen per tensor among fixed,
 *                    float (minifloat, exponent bits by width) and log
 *                    (sign + exponent; libnumber's EXP).
 * Widths --widths (default 2..16: libnumber's FPGA range for FIXED;
 * float from 3 bits, log from 2), the bias (fractional bits of fixed,
 * exponent bias of float and log) searched within the fitted one +-k
 * (--bias-k, default 3; 0: fitted only, no bias moves), nearest-even
 * rounding, saturation. Biases (and the resnet's batchnorm scales) stay
 * fp32, as libnumber leaves them: its maximum of exactly 16x is 2-bit
 * weights over 32. So two compressions are reported: of the tuned weights
 * (libnumber's "parameter size") and of all parameters (qtune's
 * weight_bits cost, the biases at 32 bits). Activations stay float (libnumber
 * tunes one global activation format beside the weights; not here).
 *
 * Accuracy is top-1 on the first N images of the validation split (--val
 * for mlp and lenet5, --val-big for vgg and resnet), relative to float on
 * the same images; the test split is never used. The search's statistical
 * early stop is on (its default: failing candidates stop early, passing
 * ones run on all N, so an answer's accuracy is exact). Greedy's options:
 * "subset" off (both passes on all N images), and with --estimate R
 * (default 0: off) moves whose predicted drop exceeds R x the budget are
 * taken as failed without being evaluated.
 *
 * Then one more job per model, the grid in "list" mode with early stop off:
 * every answer on the whole validation split. The first N images are the
 * search's, so the rest are held out of it: the answer's relative top-1
 * there says how much of the search's accuracy was fitted to its N images.
 *
 * The jobs run through a store (--db, default build/studies.db): a re-run
 * or a run after an interruption answers every evaluation already measured
 * from it and computes only the rest (studies.h).
 *
 *   study_auto [--models mlp,lenet5,vgg,resnet] [--db FILE] [--widths LO,HI]
 *              [--bias-k K] [--estimate R] [--val N] [--val-big N]
 *              [--models-dir DIR] [--md FILE] [--json FILE] [--svg FILE]
 *
 * Outputs: Markdown (stdout or --md) with the command and run time at the
 * top, JSON (--json), and with --svg one plot: the compression of the
 * weights per model, one series per space and tolerance, libnumber's
 * geomeans as reference lines.
 */
#include "studies.h"
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef QT_SOURCE_DIR
#define QT_SOURCE_DIR "."
#endif

#define NM   4
#define NT   2                 /* tolerances */
#define NS   2                 /* spaces */
#define MAXL 24

static const char *const MODELS[NM] = { "mlp", "lenet5", "vgg", "resnet" };
static const double REL[NT] = { 0.99, 0.93 };
static const char *const TOL[NT] = { "1 %", "7 %" };
static const char *const SPACE[NS] = { "fixed", "fixed+float+log" };
static const char *const TYPES[NS] = { "\"fixed\"", "\"fixed\",\"float\",\"log\"" };
/* libnumber's parameter size reduction, geomean over its 11 models (Sec. 6) */
static const double LIBNUMBER[NT] = { 7.13, 8.91 };
#define LIBNUMBER_MAX 16.0

typedef struct layer {
    char   name[QT_NAME_MAX];
    double size;                  /* its weights (the tuned tensor) */
} layer;

/* one job's answer */
typedef struct run {
    int       done, answered, feasible;
    double    top1, rel;
    double    comp_w;             /* the tuned weights against fp32 */
    double    comp_all;           /* all parameters (biases fp32) against fp32 */
    double    bits_w;             /* bits per tuned weight */
    size_t    images;             /* the images its accuracy is on (N unless stopped early) */
    int       evals, computed;
    double    eval_seconds;       /* summed evaluation time (stored: as computed) */
    qt_format fmt[MAXL];          /* per layer (QT_NONE: float) */
    /* the check: the answer on the whole validation split */
    int       cand;               /* its candidate in the check job (-1: none) */
    double    top1_split;         /* on the whole split */
    double    rel_split, rel_held; /* relative on the whole split; on the images after N */
} run;

typedef struct model {
    int    on;
    char   path[1024];
    layer  L[MAXL];
    int    nl;
    double params, wparams;       /* all parameters; the tuned weights */
    double base;                  /* float top-1 on the images */
    size_t images;
    double base_split;            /* float top-1 on the whole validation split */
    size_t split;                 /* its images */
    run    R[NT][NS];
} model;

typedef struct study_a {
    model  M[NM];
    int    wlo, whi, bias_k;
    double estimate;
} study_a;

/* what study_run hands the collector */
typedef struct target {
    model *m;
    run   *r;
} target;

/* ---- the jobs ---- */

static void collect(void *user, qt_search *s)
{
    target *tg = user;
    model *m = tg->m;
    run *r = tg->r;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    const qt_graph *g = qt_search_graph(s);
    m->base = qt_search_baseline(s)->top1;
    m->images = qt_search_split(s);
    r->evals = qt_search_evals(s);
    r->computed = qt_search_computed(s);
    r->eval_seconds = 0;
    for (int h = 0; h < r->evals; h++) {
        const qt_result *x;
        qt_search_result(s, h, NULL, &x);
        r->eval_seconds += x->seconds;
    }
    for (int l = 0; l < m->nl; l++) r->fmt[l] = qt_format_none();
    r->cand = -1;
    r->top1_split = r->rel_split = r->rel_held = NAN;
    const qt_result *res;
    const qt_cand *best = qt_search_best(s, &res, &r->feasible);
    r->done = 1;
    r->answered = best != NULL;
    if (!best) return;
    for (int i = 0; i < n; i++) {
        const char *name = qt_graph_node_name(g, co[i].node);
        for (int l = 0; l < m->nl; l++)
            if (!strcmp(m->L[l].name, name)) r->fmt[l] = best->fmt[i];
    }
    double bits = 0;
    for (int l = 0; l < m->nl; l++)
        bits += m->L[l].size * (r->fmt[l].type == QT_NONE ? 32.0 : qt_bits(&r->fmt[l]));
    r->bits_w = bits / m->wparams;
    r->comp_w = 32.0 * m->wparams / bits;
    r->comp_all = res->compression;              /* the job's cost is weight_bits */
    r->top1 = res->top1;
    r->images = res->images;
    r->rel = m->base > 0 ? res->top1 / m->base : NAN;
}

/* the check job: float and every answer on the whole validation split; the
 * first N images are the search's, so the rest are held out of it */
static void collect_check(void *user, qt_search *s)
{
    model *m = user;
    m->base_split = qt_search_baseline(s)->top1;
    m->split = qt_search_split(s);
    double n = (double)m->images, all = (double)m->split;
    double base_held = all > n ? (m->base_split * all - m->base * n) / (all - n) : NAN;
    for (int t = 0; t < NT; t++)
        for (int sp = 0; sp < NS; sp++) {
            run *r = &m->R[t][sp];
            r->top1_split = r->rel_split = r->rel_held = NAN;
            if (r->cand < 0) continue;
            const qt_result *x;
            qt_search_result(s, r->cand, NULL, &x);
            r->top1_split = x->top1;
            r->rel_split = m->base_split > 0 ? x->top1 / m->base_split : NAN;
            if (r->images == m->images && base_held > 0)      /* exact on the first N */
                r->rel_held = (x->top1 * all - r->top1 * n) / (all - n) / base_held;
        }
}

/* the top of a job into buf at *at: the model and its space, one rule per
 * conv and dense layer, its weights, of the types, with more ("": none) */
static int space_json(const model *m, const char *types, const char *more, char *buf,
                      size_t size, size_t *at)
{
    if (study_append(buf, size, at, "{\"model\":\"%s\",\"space\":[", m->path)) return -1;
    for (int l = 0; l < m->nl; l++)
        if (study_append(buf, size, at, "%s{\"nodes\":\"%s\",\"points\":[\"weights\"],"
                         "\"types\":[%s]%s}", l ? "," : "", m->L[l].name, types, more))
            return -1;
    return 0;
}

/* the job: one rule per conv and dense layer, its weights */
static int job_json(const study_a *S, const model *m, int t, int sp, size_t n, char *buf,
                    size_t size)
{
    size_t at = 0;
    char rule[96], strat[80];
    if (S->bias_k)
        snprintf(rule, sizeof rule, ",\"widths\":[%d,%d],\"bias\":{\"search\":%d}", S->wlo,
                 S->whi, S->bias_k);
    else snprintf(rule, sizeof rule, ",\"widths\":[%d,%d],\"bias\":\"fit\"", S->wlo, S->whi);
    if (S->estimate > 0)
        snprintf(strat, sizeof strat, "{\"name\":\"greedy\",\"estimate\":%g}", S->estimate);
    else snprintf(strat, sizeof strat, "\"greedy\"");
    if (space_json(m, TYPES[sp], rule, buf, size, &at)) return -1;
    return study_append(buf, size, &at, "],\"strategy\":%s,\"cost\":\"weight_bits\","
                        "\"constraint\":{\"metric\":\"top1\",\"relative\":%.2f},"
                        "\"val_limit\":%zu,\"seed\":1,\"cache_mb\":512}", strat, REL[t], n);
}

/* the check job: the distinct answers as a list; cand set per run */
static int check_json(model *m, char *buf, size_t size)
{
    char cands[NT * NS][2048];
    int nc = 0;
    size_t at = 0;
    for (int t = 0; t < NT; t++)
        for (int sp = 0; sp < NS; sp++) {
            run *r = &m->R[t][sp];
            r->cand = -1;
            if (!r->answered) continue;
            char *c = cands[nc];
            size_t ca = 0;
            if (study_append(c, sizeof cands[0], &ca, "{")) return -1;
            for (int l = 0; l < m->nl; l++) {
                char txt[QT_TEXT_MAX];
                qt_format_print(&r->fmt[l], txt, sizeof txt);
                if (r->fmt[l].type != QT_NONE &&
                    study_append(c, sizeof cands[0], &ca, "%s\"%s weights\":\"%s\"",
                                 ca > 1 ? "," : "", m->L[l].name, txt))
                    return -1;
            }
            if (study_append(c, sizeof cands[0], &ca, "}")) return -1;
            for (int u = 0; u < nc; u++)
                if (!strcmp(cands[u], c)) r->cand = u;
            if (r->cand < 0) r->cand = nc++;
        }
    if (!nc) return 1;
    if (space_json(m, TYPES[1], "", buf, size, &at) ||
        study_append(buf, size, &at, "],\"strategy\":{\"name\":\"grid\",\"mode\":\"list\","
                     "\"candidates\":["))
        return -1;
    for (int u = 0; u < nc; u++)
        if (study_append(buf, size, &at, "%s%s", u ? "," : "", cands[u])) return -1;
    return study_append(buf, size, &at, "]},\"cost\":\"weight_bits\",\"constraint\":"
                        "{\"metric\":\"top1\",\"relative\":0.99},\"early_stop\":false,"
                        "\"seed\":1}");
}

static void add_layer(void *user, const char *name, double weights, double params,
                      double macs)
{
    model *m = user;
    layer *L = &m->L[m->nl++];
    snprintf(L->name, sizeof L->name, "%s", name);
    L->size = weights;
    m->wparams += weights;
}

static int load_layers(model *m)
{
    m->nl = 0;
    m->wparams = 0;
    return study_layers_of("study_auto", m->path, MAXL, &m->params, add_layer, m);
}

/* ---- outputs ---- */

/* libnumber's notation: I (FIXED), F (FLOAT), E (EXP, log); F32 float */
static void lib_name(const qt_format *f, char *buf, size_t size)
{
    switch (f->type) {
    case QT_NONE:  snprintf(buf, size, "F32"); break;
    case QT_FIXED: snprintf(buf, size, "I%d", f->width); break;
    case QT_FLOAT: snprintf(buf, size, "F%d", f->width); break;
    case QT_LOG:   snprintf(buf, size, "E%d", f->width); break;
    default:       snprintf(buf, size, "%s%d", qt_type_name((qt_type)f->type), f->width); break;
    }
}

static void formats(const model *m, const run *r, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = 0;
    for (int l = 0; l < m->nl; l++) {
        char e[16];
        lib_name(&r->fmt[l], e, sizeof e);
        if (study_append(buf, size, &at, "%s%s", l ? "-" : "", e)) return;
    }
}

/* a tolerance and space over the models answered (0 when none): the
 * geomean and the max of the weights' compression, the geomean of all
 * parameters' */
typedef struct overall {
    double gm_w, max_w, gm_all;
    int    n;
} overall;

static overall summary(const study_a *S, int t, int sp)
{
    overall g = { 0, 0, 0, 0 };
    double lw = 0, la = 0;
    for (int i = 0; i < NM; i++) {
        const run *r = &S->M[i].R[t][sp];
        if (!S->M[i].on || !r->answered) continue;
        lw += log(r->comp_w);
        la += log(r->comp_all);
        if (r->comp_w > g.max_w) g.max_w = r->comp_w;
        g.n++;
    }
    if (g.n) {
        g.gm_w = exp(lw / g.n);
        g.gm_all = exp(la / g.n);
    }
    return g;
}

static void write_md(FILE *f, const void *user, const study_info *in)
{
    const study_a *S = user;
    char bias[64];
    if (S->bias_k) snprintf(bias, sizeof bias, "searched within the fitted one +-%d", S->bias_k);
    else snprintf(bias, sizeof bias, "fitted to the tensor's range");
    study_md_head(f, "# Study 4: automatic quantizer (libnumber), Fashion-MNIST zoo models", in);
    fprintf(f, "libnumber's tuner (the greedy strategy: a global coarse search, then greedy "
            "single-tensor bias, bit-width and type moves; two passes, both here on all N "
            "images), cost = parameter size (weight_bits), constraint top-1 >= r x float on "
            "the same first N validation images, r = 0.99 (1 %% loss) and 0.93 (7 %%). Tuned: "
            "the weights of every conv and dense layer, one format per layer; widths %d..%d; "
            "bias (fixed: fractional bits; float, log: exponent bias) %s; nearest-even "
            "rounding, saturation; biases, batchnorm and activations fp32. Spaces: *fixed* "
            "(fixed point, two's complement) and *fixed+float+log* (the type chosen per "
            "layer). Greedy's drop estimate %s.\n\n", S->wlo, S->whi, bias,
            S->estimate > 0 ? "is on: moves predicted to lose more than the ratio given x "
            "the budget are not evaluated" : "is off: every move is evaluated");
    fprintf(f, "Compression, weights: the tuned weights at their formats against fp32 "
            "(libnumber's parameter size: its 16x maximum is 2-bit weights); all parameters: "
            "the same with biases and batchnorm at 32 bits (qtune's weight_bits). Formats in "
            "libnumber's notation, one per layer in the model's order: I = fixed, F = float, "
            "E = log (EXP), then the width; F32 = left float.\n\n");
    fprintf(f, "| model | loss | space | compression, weights | compression, all parameters | "
            "bits/weight | relative top-1 (first N) | held out | evaluations (computed) | "
            "formats |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        for (int t = 0; t < NT; t++)
            for (int sp = 0; sp < NS; sp++) {
                const run *r = &m->R[t][sp];
                char fs[512];
                if (!r->answered) {
                    fprintf(f, "| %s | %s | %s | (no answer) | | | | | %d (%d) | |\n", MODELS[i],
                            TOL[t], SPACE[sp], r->evals, r->computed);
                    continue;
                }
                formats(m, r, fs, sizeof fs);
                char held[16];
                if (isnan(r->rel_held)) snprintf(held, sizeof held, "-");
                else snprintf(held, sizeof held, "%.3f", r->rel_held);
                fprintf(f, "| %s | %s | %s | **%.2fx** | %.2fx | %.2f | %.3f%s | %s | %d (%d) | "
                        "%s |\n", MODELS[i], TOL[t], SPACE[sp], r->comp_w, r->comp_all,
                        r->bits_w, r->rel, r->feasible ? "" : " (infeasible)", held, r->evals,
                        r->computed, fs);
            }
    }
    fprintf(f, "\n*Held out*: the answer's top-1 over float's on the validation images the "
            "search did not see (the split's images after the first N; from one more job per "
            "model that measures every answer on the whole split).\n");
    fprintf(f, "\nLayers (in the order of the formats), weights per layer; float top-1 on the "
            "first N validation images and on the whole split:\n\n");
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        fprintf(f, "- %s (%.2f %% on %zu validation images, %.2f %% on %zu; %.0f weights tuned "
                "of %.0f parameters): ", MODELS[i], 100 * m->base, m->images,
                100 * m->base_split, m->split, m->wparams, m->params);
        for (int l = 0; l < m->nl; l++)
            fprintf(f, "%s%s %.0f", l ? ", " : "", m->L[l].name, m->L[l].size);
        fprintf(f, "\n");
    }
    fprintf(f, "\n## Geomean across the models, beside libnumber\n\n");
    fprintf(f, "| loss | space | geomean, weights | max, weights | geomean, all parameters | "
            "libnumber geomean (11 models) | libnumber max |\n|---|---|---|---|---|---|---|\n");
    for (int t = 0; t < NT; t++)
        for (int sp = 0; sp < NS; sp++) {
            overall g = summary(S, t, sp);
            fprintf(f, "| %s | %s | **%.2fx** (%d models) | %.2fx | %.2fx | %.2fx | %.0fx |\n",
                    TOL[t], SPACE[sp], g.gm_w, g.n, g.max_w, g.gm_all, LIBNUMBER[t],
                    LIBNUMBER_MAX);
        }
    fprintf(f, "\nWhat choosing the type per layer buys (compression of the weights, "
            "fixed+float+log over fixed):\n\n| model | 1 %% | 7 %% |\n|---|---|---|\n");
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        fprintf(f, "| %s", MODELS[i]);
        for (int t = 0; t < NT; t++) {
            const run *a = &m->R[t][0], *b = &m->R[t][1];
            if (a->answered && b->answered) fprintf(f, " | x%.2f", b->comp_w / a->comp_w);
            else fprintf(f, " | -");
        }
        fprintf(f, " |\n");
    }
    fprintf(f, "\n");
}

static json_t *fmt_json(const model *m, const run *r)
{
    json_t *a = json_array();
    for (int l = 0; l < m->nl; l++) {
        char e[16], txt[QT_TEXT_MAX];
        lib_name(&r->fmt[l], e, sizeof e);
        qt_format_print(&r->fmt[l], txt, sizeof txt);
        json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "layer", m->L[l].name,
                                           "libnumber", e, "format", txt));
    }
    return a;
}

static int write_json(const char *path, const void *user, const study_info *in)
{
    const study_a *S = user;
    json_t *models = json_array(), *geo = json_array();
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        json_t *layers = json_array(), *runs = json_array();
        for (int l = 0; l < m->nl; l++)
            json_array_append_new(layers, json_pack("{s:s,s:f}", "layer", m->L[l].name,
                                                    "weights", m->L[l].size));
        for (int tt = 0; tt < NT; tt++)
            for (int sp = 0; sp < NS; sp++) {
                const run *r = &m->R[tt][sp];
                json_t *o = json_pack("{s:f,s:s,s:b,s:b,s:i,s:i,s:f}", "relative", REL[tt],
                                      "space", SPACE[sp], "answered", r->answered, "feasible",
                                      r->feasible, "evaluations", r->evals, "computed",
                                      r->computed, "eval_seconds", r->eval_seconds);
                if (r->answered) {
                    json_object_set_new(o, "top1", json_real(r->top1));
                    json_object_set_new(o, "relative_top1", json_real(r->rel));
                    json_object_set_new(o, "compression_weights", json_real(r->comp_w));
                    json_object_set_new(o, "compression_parameters", json_real(r->comp_all));
                    json_object_set_new(o, "bits_per_weight", json_real(r->bits_w));
                    if (!isnan(r->rel_split)) {
                        json_object_set_new(o, "top1_split", json_real(r->top1_split));
                        json_object_set_new(o, "relative_top1_split", json_real(r->rel_split));
                    }
                    if (!isnan(r->rel_held))
                        json_object_set_new(o, "relative_top1_held_out", json_real(r->rel_held));
                    json_object_set_new(o, "formats", fmt_json(m, r));
                }
                json_array_append_new(runs, o);
            }
        json_array_append_new(models, json_pack("{s:s,s:f,s:I,s:f,s:I,s:f,s:f,s:o,s:o}", "model",
                              MODELS[i], "float_top1", m->base, "images", (json_int_t)m->images,
                              "float_top1_split", m->base_split, "split", (json_int_t)m->split,
                              "parameters", m->params, "weights_tuned", m->wparams, "layers",
                              layers, "runs", runs));
    }
    for (int tt = 0; tt < NT; tt++)
        for (int sp = 0; sp < NS; sp++) {
            overall g = summary(S, tt, sp);
            json_array_append_new(geo, json_pack("{s:f,s:s,s:i,s:f,s:f,s:f,s:f,s:f}",
                                  "relative", REL[tt], "space", SPACE[sp], "models", g.n,
                                  "geomean_weights", g.gm_w, "max_weights", g.max_w,
                                  "geomean_parameters", g.gm_all, "libnumber_geomean",
                                  LIBNUMBER[tt], "libnumber_max", LIBNUMBER_MAX));
        }
    return study_json_write(path, "auto (issue 9, study 4: libnumber)", in,
        json_pack("{s:s,s:s,s:s,s:[i,i],s:i,s:f,s:o,s:o}",
                  "split", "validation (first N images)", "strategy", "greedy",
                  "tuned", "weights of every conv and dense layer; biases, batchnorm, "
                  "activations fp32", "widths", S->wlo, S->whi, "bias_k", S->bias_k,
                  "estimate", S->estimate, "models", models, "geomeans", geo));
}

/* --svg names the plot's file (its own settings: not study_svg's relative
 * top-1) */
static void write_svg(const char *path, const void *user)
{
    const study_a *S = user;
    static const char *const NAME[NT][NS] = {
        { "fixed, 1 % loss", "fixed+float+log, 1 % loss" },
        { "fixed, 7 % loss", "fixed+float+log, 7 % loss" },
    };
    qt_plot_series ser[NT * NS];
    qt_plot_pt pts[NT * NS][NM];
    int ns = 0;
    for (int t = 0; t < NT; t++)
        for (int sp = 0; sp < NS; sp++) {
            int np = 0;
            for (int i = 0; i < NM; i++) {
                const run *r = &S->M[i].R[t][sp];
                if (!S->M[i].on || !r->answered) continue;
                pts[ns][np++] = (qt_plot_pt){ i + 1, r->comp_w, 1, r->feasible };
            }
            if (np) { ser[ns] = (qt_plot_series){ NAME[t][sp], pts[ns], np, 1 }; ns++; }
        }
    if (!ns) return;
    qt_plot p;
    qt_error err;
    qt_plot_init(&p);
    p.title = "libnumber's tuner (greedy): weight compression vs fp32";
    p.xlabel = "model: 1 mlp, 2 lenet5, 3 vgg, 4 resnet";
    p.ylabel = "compression of the weights (x)";
    p.series = ser;
    p.n_series = ns;
    p.baseline = LIBNUMBER[0];
    p.baseline_label = "libnumber geomean, 1 %";
    p.threshold = LIBNUMBER[1];
    p.threshold_label = "libnumber geomean, 7 %";
    p.width = 820;
    if (qt_plot_svg_file(&p, path, &err)) fprintf(stderr, "study_auto: %s\n", err.text);
}

/* study_auto's own options (a study_option_fn); it takes no --k */
static int auto_option(void *user, const char *opt, const char *v)
{
    study_a *S = user;
    if (!strcmp(opt, "--widths"))
        return sscanf(v, "%d,%d", &S->wlo, &S->whi) != 2 || S->wlo < 1 || S->whi > 32 ||
               S->wlo > S->whi ? -1 : 0;
    if (!strcmp(opt, "--bias-k")) {
        S->bias_k = atoi(v);
        return S->bias_k < 0 || S->bias_k > 8 ? -1 : 0;
    }
    if (!strcmp(opt, "--estimate")) {
        S->estimate = atof(v);
        return S->estimate == 0 || (S->estimate > 1 && S->estimate < 1e6) ? 0 : -1;
    }
    return strcmp(opt, "--k") ? 1 : 2;
}

int main(int argc, char **argv)
{
    qt_runtime_init(argv);
    static const study_writers out = { write_md, write_json, write_svg };
    study_opts o;
    static study_a S;
    S.wlo = 2;
    S.whi = 16;
    S.bias_k = 3;
    S.estimate = 0;
    int rc = study_parse_args("study_auto", "usage: study_auto [--models LIST] [--db FILE] "
                              "[--widths LO,HI] [--bias-k K] [--estimate R] [--val N] "
                              "[--val-big N] [--models-dir DIR] [--md FILE] [--json FILE] "
                              "[--svg FILE]", argc, argv, &o, auto_option, &S);
    if (rc) return rc;
    int any = 0;
    for (int i = 0; i < NM; i++) any += S.M[i].on = list_has(o.models, MODELS[i]);
    if (!any) { fprintf(stderr, "study_auto: no model selected\n"); return 2; }

    study_info in;
    study *st;
    if (study_begin("study_auto", o.db, argc, argv, &in, &st)) return 1;
    int nj = 0, total = (NT * NS + 1) * any;
    static char job[16384];
    for (int i = 0; i < NM && !rc; i++) {
        model *m = &S.M[i];
        if (!m->on) continue;
        if (study_checkpoint(o.mdir, MODELS[i], m->path, sizeof m->path) || load_layers(m)) {
            rc = QT_ENOENT;
            break;
        }
        size_t n = i >= 2 ? o.val_big : o.val;
        for (int t = 0; t < NT && !rc; t++)
            for (int sp = 0; sp < NS && !rc; sp++) {
                char label[96];
                target tg = { m, &m->R[t][sp] };
                if (job_json(&S, m, t, sp, n, job, sizeof job)) { rc = QT_EINVAL; break; }
                snprintf(label, sizeof label, "job %d/%d %s r=%.2f %s", ++nj, total, MODELS[i],
                         REL[t], SPACE[sp]);
                rc = study_run(st, label, job, collect, &tg);
            }
        if (rc) break;
        char label[96];
        int k = check_json(m, job, sizeof job);
        if (k < 0) { rc = QT_EINVAL; break; }
        snprintf(label, sizeof label, "job %d/%d %s: the answers on the whole validation split",
                 ++nj, total, MODELS[i]);
        if (k == 0) rc = study_run(st, label, job, collect_check, m);
    }
    return study_finish(st, rc, &in, &o, &out, &S);
}
