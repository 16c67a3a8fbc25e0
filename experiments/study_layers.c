/*
 * study_layers.c -- issue #9, study 2: TensorQuant's per-layer table
 * (the slides' "Fixed-Point Experiments: Layers", Inception V3), through
 * qtune, on the zoo models trained on Fashion-MNIST.
 *
 * For each layer (every conv and dense node: the layers with
 * multiply-accumulates), the smallest (W, F) that keeps 100 %, 99 % and
 * 90 % of the float model's top-1 with that layer alone quantized and the
 * rest in float; then, per level, every layer at its answer together,
 * measured: the whole model's relative accuracy and compression.
 *
 * As in the paper, quantization is intrinsic with nearest rounding: the
 * layer computes in fixed<W,F> (qtune's EACH mode: its inputs, weights and
 * bias rounded to the format, every product and partial sum rounded and
 * saturated: bit-true W-bit hardware), rounding to nearest, ties away
 * (rna, TensorQuant's "nearest").
 *
 *   job 1 per model: the grid strategy in "each" mode over the layers'
 *     intrinsic points, W in --widths (default 2..16), F the fitted one
 *     (the finest that holds the layer's measured output range) + d for d
 *     in -k..k (--k, default 3), F >= 0;
 *   job 2 per model: the grid in "list" mode, one candidate per distinct
 *     level (every layer at its answer, a layer with no answer in float).
 * "Smallest (W, F)": the smallest W at which some F keeps the level; at it
 * the F with the highest accuracy (ties: the smaller F). Relative accuracy
 * is top-1 over float top-1 on the same first N images of the validation
 * split (--val for mlp and lenet5, --val-big for vgg and resnet), every
 * candidate on all N. Compression: of the weights (a layer's weights and
 * bias stored at its W bits, everything else 32) and of the bit-operations
 * (MACs x operand bits, qtune's "bitops" cost), both against fp32.
 *
 * The jobs run through a store (--db, default build/studies.db): a re-run
 * or a run after an interruption answers every evaluation already
 * measured from it and computes only the rest (studies.h).
 *
 *   study_layers [--models mlp,lenet5,vgg,resnet] [--db FILE] [--widths LO,HI]
 *                [--k K] [--val N] [--val-big N] [--models-dir DIR]
 *                [--md FILE] [--json FILE] [--svg DIR]
 *
 * Outputs: Markdown (stdout or --md) with the command and run time at the
 * top, JSON (--json), and with --svg one plot per model
 * (study_layers_MODEL.svg): each layer's relative accuracy (best F) against
 * W with the others float.
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

#define NM 4
#define NL 3
#define MAXL 24
#define MAXW 16
#define NF 34

static const char *const MODELS[NM] = { "mlp", "lenet5", "vgg", "resnet" };
static const double LEVEL[NL] = { 1.00, 0.99, 0.90 };
static const char *const LNAME[NL] = { "100 %", "99 %", "90 %" };

typedef struct layer {
    char   name[QT_NAME_MAX];
    double params, macs;
    double top1[MAXW + 1][NF];     /* alone at (W, F); NaN: not measured */
    int    W[NL], F[NL];           /* the answer per level; W 0: none (float) */
} layer;

typedef struct model {
    int    on;
    char   path[1024];
    layer  L[MAXL];
    int    nl;
    double params;                 /* the whole model's */
    double base;                   /* float top-1 on the images */
    size_t images;
    int    evals, computed;
    /* the whole model per level */
    double rel[NL], comp_w[NL], comp_bitops[NL], top1[NL];
    int    cand_of[NL];            /* the list candidate of each level */
} model;

typedef struct study_l {
    model M[NM];
    int   wlo, whi, k;
} study_l;

/* ---- job 1: each layer alone ---- */

static void collect_each(void *user, qt_search *s)
{
    model *m = user;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    const qt_graph *g = qt_search_graph(s);
    m->base = qt_search_baseline(s)->top1;
    m->images = qt_search_split(s);
    m->evals = qt_search_evals(s);
    m->computed = qt_search_computed(s);
    for (int l = 0; l < m->nl; l++)
        for (int w = 0; w <= MAXW; w++)
            for (int f = 0; f < NF; f++) m->L[l].top1[w][f] = NAN;
    for (int h = 0; h < qt_search_evals(s); h++) {
        const qt_cand *c;
        const qt_result *r;
        qt_search_result(s, h, &c, &r);
        for (int i = 0; i < n; i++) {
            const qt_format *f = &c->fmt[i];
            if (f->type == QT_NONE) continue;
            const char *name = qt_graph_node_name(g, co[i].node);
            for (int l = 0; l < m->nl; l++)
                if (!strcmp(m->L[l].name, name) && f->width <= MAXW && f->bias >= 0 &&
                    f->bias < NF && !r->fail)
                    m->L[l].top1[f->width][f->bias] = r->top1;
            break;
        }
    }
}

/* the best top-1 at W over F (F: the smaller on ties), NaN if none */
static double best_at(const layer *L, int w, int *F)
{
    double b = NAN;
    *F = -1;
    for (int f = 0; f < NF; f++)
        if (!isnan(L->top1[w][f]) && (isnan(b) || L->top1[w][f] > b)) { b = L->top1[w][f]; *F = f; }
    return b;
}

static void answers(model *m)
{
    for (int l = 0; l < m->nl; l++)
        for (int v = 0; v < NL; v++) {
            layer *L = &m->L[l];
            L->W[v] = 0;
            L->F[v] = -1;
            for (int w = 1; w <= MAXW && !L->W[v]; w++) {
                int F;
                double b = best_at(L, w, &F);
                if (!isnan(b) && b >= LEVEL[v] * m->base - 1e-12) { L->W[v] = w; L->F[v] = F; }
            }
        }
}

/* ---- job 2: every layer at its answer, per level ---- */

static void collect_list(void *user, qt_search *s)
{
    model *m = user;
    for (int v = 0; v < NL; v++) {
        const qt_result *r;
        qt_search_result(s, m->cand_of[v], NULL, &r);
        m->top1[v] = r->top1;
        m->rel[v] = m->base > 0 ? r->top1 / m->base : NAN;
        m->comp_bitops[v] = r->compression;        /* the job's cost is bitops */
    }
}

/* the list job's candidates: one per distinct level; cand_of and comp_w set */
static int list_json(model *m, char *buf, size_t size)
{
    char cands[NL][1536];
    int nc = 0;
    for (int v = 0; v < NL; v++) {
        char *c = cands[nc];
        size_t ca = 0;
        int first = 1;
        double bits = 0, tuned = 0;
        if (study_append(c, sizeof cands[0], &ca, "{")) return -1;
        for (int l = 0; l < m->nl; l++) {
            const layer *L = &m->L[l];
            if (!L->W[v]) continue;
            if (study_append(c, sizeof cands[0], &ca, "%s\"%s intrinsic\":\"fixed<%d,%d,rna>\"",
                             first ? "" : ",", L->name, L->W[v], L->F[v]))
                return -1;
            first = 0;
            bits += L->params * L->W[v];
            tuned += L->params;
        }
        if (study_append(c, sizeof cands[0], &ca, "}")) return -1;
        m->comp_w[v] = 32.0 * m->params / (bits + 32.0 * (m->params - tuned));
        int same = -1;
        for (int u = 0; u < nc; u++)
            if (!strcmp(cands[u], c)) same = u;
        if (same >= 0) { m->cand_of[v] = same; continue; }
        m->cand_of[v] = nc++;
    }
    size_t at = 0;
    if (study_append(buf, size, &at, "[")) return -1;
    for (int u = 0; u < nc; u++)
        if (study_append(buf, size, &at, "%s%s", u ? "," : "", cands[u])) return -1;
    return study_append(buf, size, &at, "]");
}

/* the rules of the space: every conv and dense node's intrinsic point */
static int rules_json(const model *m, int wlo, int whi, char *buf, size_t size)
{
    size_t at = 0;
    for (int l = 0; l < m->nl; l++) {
        int k = snprintf(buf + at, size - at, "%s{\"nodes\":\"%s\",\"points\":[\"intrinsic\"],"
                         "\"types\":[\"fixed\"],\"widths\":[%d,%d],\"rounding\":\"rna\"}",
                         l ? "," : "", m->L[l].name, wlo, whi);
        if (k < 0 || (size_t)k >= size - at) return -1;
        at += (size_t)k;
    }
    return 0;
}

static void add_layer(void *user, const char *name, double weights, double params,
                      double macs)
{
    model *m = user;
    layer *L = &m->L[m->nl++];
    snprintf(L->name, sizeof L->name, "%s", name);
    L->params = params;
    L->macs = macs;
}

static int load_layers(model *m)
{
    m->nl = 0;
    return study_layers_of("study_layers", m->path, MAXL, &m->params, add_layer, m);
}

/* ---- outputs ---- */

static void entry(char *buf, size_t size, int W, int F)
{
    if (W) snprintf(buf, size, "%d,%d", W, F);
    else snprintf(buf, size, "float");
}

static void write_md(FILE *f, const void *user, const study_info *in)
{
    const study_l *S = user;
    study_md_head(f, "# Study 2: per-layer word widths (TensorQuant), Fashion-MNIST zoo models",
                  in);
    fprintf(f, "Intrinsic quantization, nearest rounding (ties away), as in the paper's table: "
            "the layer computes in fixed<W,F> (operands, every product and partial sum rounded "
            "and saturated), every other layer in float. Entries are the smallest (W, F) whose "
            "relative top-1 (quantized / float, on the same first N validation images) is at "
            "least the column's level with that layer alone quantized; W in %d..%d, F the "
            "fitted one (the finest holding the layer's output range) %+d..%+d, F >= 0; at the "
            "smallest W, the F with the best accuracy. \"float\": no W up to %d keeps the level. "
            "The last rows put every layer at its answer together and measure it: the whole "
            "model's relative top-1, and its compression against fp32 of the weights (each "
            "layer's weights and bias at W bits, the rest 32) and of the bit-operations "
            "(MACs x operand bits).\n\n", S->wlo, S->whi, -S->k, S->k, S->whi);
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        fprintf(f, "## %s (float top-1 %.2f %% on %zu validation images; %d evaluations)\n\n",
                MODELS[i], 100 * m->base, m->images, m->evals);
        fprintf(f, "| layer | parameters | MACs | %s | %s | %s |\n|---|---|---|---|---|---|\n",
                LNAME[0], LNAME[1], LNAME[2]);
        for (int l = 0; l < m->nl; l++) {
            const layer *L = &m->L[l];
            char e[NL][16];
            for (int v = 0; v < NL; v++) entry(e[v], sizeof e[v], L->W[v], L->F[v]);
            fprintf(f, "| %s | %.0f | %.3g | %s | %s | %s |\n", L->name, L->params, L->macs,
                    e[0], e[1], e[2]);
        }
        fprintf(f, "| **together: relative top-1** | | | %.3f | %.3f | %.3f |\n", m->rel[0],
                m->rel[1], m->rel[2]);
        fprintf(f, "| **compression, weights** | | | x%.2f | x%.2f | x%.2f |\n", m->comp_w[0],
                m->comp_w[1], m->comp_w[2]);
        fprintf(f, "| **compression, bit-operations** | | | x%.2f | x%.2f | x%.2f |\n\n",
                m->comp_bitops[0], m->comp_bitops[1], m->comp_bitops[2]);
    }
}

static int write_json(const char *path, const void *user, const study_info *in)
{
    const study_l *S = user;
    json_t *models = json_array();
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        json_t *layers = json_array(), *levels = json_array();
        for (int l = 0; l < m->nl; l++) {
            const layer *L = &m->L[l];
            json_t *ans = json_array(), *sweep = json_array();
            for (int v = 0; v < NL; v++)
                json_array_append_new(ans, L->W[v] ? json_pack("{s:f,s:i,s:i}", "level",
                                      LEVEL[v], "W", L->W[v], "F", L->F[v])
                                      : json_pack("{s:f,s:n}", "level", LEVEL[v], "W"));
            for (int w = S->wlo; w <= S->whi; w++)
                for (int fb = 0; fb < NF; fb++)
                    if (!isnan(L->top1[w][fb]))
                        json_array_append_new(sweep, json_pack("{s:i,s:i,s:f,s:f}", "W", w,
                                              "F", fb, "top1", L->top1[w][fb], "relative",
                                              L->top1[w][fb] / m->base));
            json_array_append_new(layers, json_pack("{s:s,s:f,s:f,s:o,s:o}", "layer", L->name,
                                  "parameters", L->params, "macs", L->macs, "answers", ans,
                                  "sweep", sweep));
        }
        for (int v = 0; v < NL; v++)
            json_array_append_new(levels, json_pack("{s:f,s:f,s:f,s:f,s:f}", "level", LEVEL[v],
                                  "top1", m->top1[v], "relative", m->rel[v],
                                  "compression_weights", m->comp_w[v],
                                  "compression_bitops", m->comp_bitops[v]));
        json_array_append_new(models, json_pack("{s:s,s:f,s:I,s:i,s:i,s:o,s:o}", "model",
                              MODELS[i], "float_top1", m->base, "images", (json_int_t)m->images,
                              "evaluations", m->evals, "computed", m->computed, "layers", layers,
                              "together", levels));
    }
    return study_json_write(path, "layers (issue 9, study 2)", in,
                            json_pack("{s:s,s:s,s:[i,i],s:i,s:o}",
                                      "split", "validation (first N images)",
                                      "quantization", "intrinsic (EACH), rna",
                                      "widths", S->wlo, S->whi, "k", S->k, "models", models));
}

static void write_svgs(const char *dir, const void *user)
{
    const study_l *S = user;
    for (int i = 0; i < NM; i++) {
        const model *m = &S->M[i];
        if (!m->on) continue;
        qt_plot_series ser[MAXL];
        qt_plot_pt pts[MAXL][MAXW + 1];
        char title[160];
        for (int l = 0; l < m->nl; l++) {
            int np = 0;
            for (int w = S->wlo; w <= S->whi; w++) {
                int F;
                double b = best_at(&m->L[l], w, &F);
                pts[l][np++] = (qt_plot_pt){ w, b / m->base, 0, 1 };
            }
            ser[l] = (qt_plot_series){ m->L[l].name, pts[l], np, 1 };
        }
        qt_plot p;
        qt_plot_init(&p);
        snprintf(title, sizeof title, "%s: each layer alone intrinsic (nearest), best F",
                 MODELS[i]);
        p.title = title;
        p.xlabel = "word width W (bits) of that layer";
        p.series = ser;
        p.n_series = m->nl;
        p.threshold = 0.99;
        p.threshold_label = "level";
        study_svg("study_layers", &p, dir, "study_layers_%s.svg", MODELS[i]);
    }
}

/* --widths LO,HI, study_layers' own option (study_option_fn) */
static int layers_option(void *user, const char *opt, const char *v)
{
    study_l *S = user;
    if (strcmp(opt, "--widths")) return 1;
    int bad = sscanf(v, "%d,%d", &S->wlo, &S->whi) != 2 || S->wlo < 1 || S->whi > MAXW ||
              S->wlo > S->whi;
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    qt_runtime_init(argv);
    static const study_writers out = { write_md, write_json, write_svgs };
    study_opts o;
    static study_l S;
    S.wlo = 2;
    S.whi = 16;
    int rc = study_parse_args("study_layers", "usage: study_layers [--models LIST] [--db FILE] "
                              "[--widths LO,HI] [--k K] [--val N] [--val-big N] "
                              "[--models-dir DIR] [--md FILE] [--json FILE] [--svg DIR]",
                              argc, argv, &o, layers_option, &S);
    if (rc) return rc;
    S.k = o.k;
    int any = 0;
    for (int i = 0; i < NM; i++) any += S.M[i].on = list_has(o.models, MODELS[i]);
    if (!any) { fprintf(stderr, "study_layers: no model selected\n"); return 2; }

    study_info in;
    study *st;
    if (study_begin("study_layers", o.db, argc, argv, &in, &st)) return 1;
    int nj = 0, total = 2 * any;
    static char job[65536], rules[8192], list[16384];
    for (int i = 0; i < NM && !rc; i++) {
        model *m = &S.M[i];
        if (!m->on) continue;
        if (study_checkpoint(o.mdir, MODELS[i], m->path, sizeof m->path) || load_layers(m)) {
            rc = QT_ENOENT;
            break;
        }
        size_t n = i >= 2 ? o.val_big : o.val;
        char bias[48], label[96];
        if (S.k) snprintf(bias, sizeof bias, "{\"search\":%d}", S.k);
        else snprintf(bias, sizeof bias, "\"fit\"");
        if (rules_json(m, S.wlo, S.whi, rules, sizeof rules)) { rc = QT_EINVAL; break; }
        snprintf(job, sizeof job, "{\"model\":\"%s\",\"space\":[%s],\"strategy\":{\"name\":"
                 "\"grid\",\"mode\":\"each\",\"bias\":%s,\"frac\":[0,30]},\"cost\":\"bitops\","
                 "\"constraint\":{\"metric\":\"top1\",\"relative\":0.99},\"val_limit\":%zu,"
                 "\"early_stop\":false,\"seed\":1,\"cache_mb\":512}", m->path, rules, bias, n);
        snprintf(label, sizeof label, "job %d/%d %s: each layer alone", ++nj, total, MODELS[i]);
        if ((rc = study_run(st, label, job, collect_each, m))) break;
        answers(m);
        if (list_json(m, list, sizeof list)) { rc = QT_EINVAL; break; }
        snprintf(job, sizeof job, "{\"model\":\"%s\",\"space\":[%s],\"strategy\":{\"name\":"
                 "\"grid\",\"mode\":\"list\",\"candidates\":%s},\"cost\":\"bitops\","
                 "\"constraint\":{\"metric\":\"top1\",\"relative\":0.99},\"val_limit\":%zu,"
                 "\"early_stop\":false,\"seed\":1}", m->path, rules, list, n);
        snprintf(label, sizeof label, "job %d/%d %s: every layer at its answer", ++nj, total,
                 MODELS[i]);
        rc = study_run(st, label, job, collect_list, m);
    }
    return study_finish(st, rc, &in, &o, &out, &S);
}
