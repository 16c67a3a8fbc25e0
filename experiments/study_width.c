/*
 * study_width.c -- issue #9, study 1: the word-width sweep of TensorQuant
 * (Loroch et al.; the slides' "Fixed-Point Experiments" tables), through
 * qtune: relative accuracy over fixed-point width W with F = W/2 and with
 * the best F per W, extrinsic and intrinsic, for nearest, stochastic and
 * down rounding, on the zoo models trained on Fashion-MNIST.
 *
 * For each model, quantization and rounding, one job of the grid strategy
 * (tuner/strat_grid.c) in "uniform" mode: every tuned tensor gets
 * fixed<W, F> with F = W/2 + d for every W of --widths and every d in
 * -k..k (--k; "bias": {"search": k, "from": "half"}), F >= 0 ("frac":
 * [0, 30]). So the F = W/2 entry is d = 0 and the best F is the best of
 * the 2k + 1. The same F for every tensor, as TensorQuant's tables have it.
 *   extrinsic: the weights, the biases and the output of every node (the
 *              input image's too) are quantized; arithmetic in float.
 *   intrinsic: the intrinsic point of every node but the input, in EACH
 *              mode (engine.h: operands, every product and every partial
 *              sum rounded and saturated in the format: bit-true W-bit
 *              hardware); nothing else.
 * Rounding: nearest (rna: ties away, TensorQuant's "nearest"), stochastic
 * (sr), down (rd, toward -inf: TensorQuant's "down", truncation of two's
 * complement).
 * Relative accuracy = top-1 of the quantized model / top-1 of the float
 * model, both on the same first N images of the validation split (the
 * test split is not used); N per model and quantization below (--val,
 * --val-big, --intr-val, --intr-val-big), every candidate on all N
 * ("early_stop": false).
 *
 * The jobs run through a store (--db, default build/studies.db): a re-run
 * or a run after an interruption answers every evaluation already
 * measured from it and computes only the rest (studies.h).
 *
 *   study_width [--models mlp,lenet5,vgg,resnet] [--db FILE] [--widths 2,4,...]
 *               [--k K] [--val N] [--val-big N] [--intr-val N] [--intr-val-big N]
 *               [--models-dir DIR] [--md FILE] [--json FILE] [--svg DIR]
 *
 * Outputs: Markdown (stdout or --md) with the command and the run time at
 * the top, JSON (--json), and with --svg two plots per model:
 * study_width_MODEL.svg (F = W/2) and study_width_MODEL_bestF.svg, relative
 * accuracy against W, one line per quantization x rounding.
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
#define NQ 2
#define NR 3
#define MAXW 32
#define NF 34                   /* F = 0..33 */

static const char *const MODELS[NM] = { "mlp", "lenet5", "vgg", "resnet" };
static const char *const QUANT[NQ] = { "extrinsic", "intrinsic" };
static const char *const ROUND[NR] = { "nearest", "stochastic", "down" };
static const char *const RCODE[NR] = { "rna", "sr", "rd" };

/* one job's results: top-1 per (W, F), NaN when not measured */
typedef struct cell {
    int    done;
    double top1[MAXW + 1][NF];
    double base;               /* float top-1 on the same images */
    size_t images;
    int    evals, computed;
    double seconds;            /* summed evaluation time */
} cell;

typedef struct study_w {
    cell   c[NM][NQ][NR];
    int    widths[MAXW], nw, k;
    size_t val[NM][NQ];
    int    on[NM];
} study_w;

static void collect(void *user, qt_search *s)
{
    cell *c = user;
    for (int w = 0; w <= MAXW; w++)
        for (int f = 0; f < NF; f++) c->top1[w][f] = NAN;
    c->base = qt_search_baseline(s)->top1;
    c->images = qt_search_split(s);
    c->evals = qt_search_evals(s);
    c->computed = qt_search_computed(s);
    c->seconds = 0;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    for (int i = 0; i < qt_search_evals(s); i++) {
        const qt_cand *cand;
        const qt_result *r;
        qt_search_result(s, i, &cand, &r);
        c->seconds += r->seconds;
        for (int j = 0; j < n; j++) {
            const qt_format *f = &cand->fmt[j];
            if (f->type == QT_NONE) continue;
            if (f->width <= MAXW && f->bias >= 0 && f->bias < NF && !r->fail)
                c->top1[f->width][f->bias] = r->top1;
            break;                   /* the same format on every tensor */
        }
    }
    c->done = 1;
}

/* F = W/2's relative accuracy, and the best F (ties: nearest W/2, then the
 * smaller); NaN / -1 when not measured */
static double rel_half(const cell *c, int w)
{
    double t = c->top1[w][w / 2];
    return c->base > 0 ? t / c->base : NAN;
}

static double rel_best(const cell *c, int w, int *F)
{
    double best = NAN;
    *F = -1;
    for (int f = 0; f < NF; f++) {
        double t = c->top1[w][f];
        if (isnan(t)) continue;
        int better = isnan(best) || t > best ||
                     (t == best && (abs(f - w / 2) < abs(*F - w / 2) ||
                                    (abs(f - w / 2) == abs(*F - w / 2) && f < *F)));
        if (better) { best = t; *F = f; }
    }
    return c->base > 0 ? best / c->base : NAN;
}

static void write_md(FILE *f, const void *user, const study_info *in)
{
    const study_w *S = user;
    study_md_head(f, "# Study 1: word-width sweep (TensorQuant), Fashion-MNIST zoo models", in);
    fprintf(f, "Entries are (relative accuracy, F) as in TensorQuant's tables: top-1 of the "
            "quantized model over top-1 of the float model on the same first N images of the "
            "validation split (not the test split), with fixed<W,F> (signed, saturating) on "
            "every tuned tensor. *Extrinsic*: weights, biases and every node's output "
            "(the input image too), arithmetic in float. *Intrinsic*: every node but the "
            "input computes in fixed<W,F> (qtune's EACH mode: operands, every product and "
            "every partial sum rounded and saturated). F = W/2, or the best F in "
            "W/2-%d..W/2+%d (F >= 0; ties to the F nearest W/2). Rounding: nearest = ties "
            "away (TensorQuant's), stochastic, down = toward -inf.\n\n", S->k, S->k);
    fprintf(f, "| model | float top-1 | images extrinsic | images intrinsic |\n|---|---|---|---|\n");
    for (int m = 0; m < NM; m++) {
        if (!S->on[m]) continue;
        const cell *c0 = &S->c[m][0][0], *c1 = &S->c[m][1][0];
        fprintf(f, "| %s | %.2f %% | %zu | %zu%s |\n", MODELS[m], 100 * c0->base, c0->images,
                c1->images, c1->images < c0->images ? " (limit: intrinsic is slow)" : "");
    }
    fprintf(f, "\n");
    for (int q = 0; q < NQ; q++)
        for (int r = 0; r < NR; r++)
            for (int best = 0; best < 2; best++) {
                fprintf(f, "## %s, %s rounding, %s\n\n| model |", QUANT[q], ROUND[r],
                        best ? "best F for each W" : "F = W/2");
                for (int i = 0; i < S->nw; i++) fprintf(f, " %d bit |", S->widths[i]);
                fprintf(f, "\n|---|");
                for (int i = 0; i < S->nw; i++) fprintf(f, "---|");
                fprintf(f, "\n");
                for (int m = 0; m < NM; m++) {
                    if (!S->on[m]) continue;
                    const cell *c = &S->c[m][q][r];
                    fprintf(f, "| %s |", MODELS[m]);
                    for (int i = 0; i < S->nw; i++) {
                        int w = S->widths[i], F = w / 2;
                        double v = best ? rel_best(c, w, &F) : rel_half(c, w);
                        if (isnan(v)) fprintf(f, " - |");
                        else fprintf(f, " %.2f,%d |", v, F);
                    }
                    fprintf(f, "\n");
                }
                fprintf(f, "\n");
            }
}

static int write_json(const char *path, const void *user, const study_info *in)
{
    const study_w *S = user;
    json_t *models = json_array();
    for (int m = 0; m < NM; m++) {
        if (!S->on[m]) continue;
        json_t *runs = json_array();
        for (int q = 0; q < NQ; q++)
            for (int r = 0; r < NR; r++) {
                const cell *c = &S->c[m][q][r];
                json_t *ws = json_array();
                for (int i = 0; i < S->nw; i++) {
                    int w = S->widths[i], F;
                    double rb = rel_best(c, w, &F), rh = rel_half(c, w);
                    json_t *all = json_array();
                    for (int f = 0; f < NF; f++)
                        if (!isnan(c->top1[w][f]))
                            json_array_append_new(all, json_pack("{s:i,s:f,s:f}", "F", f,
                                                  "top1", c->top1[w][f], "relative",
                                                  c->top1[w][f] / c->base));
                    json_array_append_new(ws, json_pack("{s:i,s:i,s:o,s:i,s:o,s:o}", "W", w,
                        "F_half", w / 2, "relative_half", isnan(rh) ? json_null() : json_real(rh),
                        "F_best", F, "relative_best", isnan(rb) ? json_null() : json_real(rb),
                        "all", all));
                }
                json_array_append_new(runs, json_pack("{s:s,s:s,s:s,s:f,s:I,s:i,s:i,s:f,s:o}",
                    "quantization", QUANT[q], "rounding", ROUND[r], "mode", RCODE[r],
                    "float_top1", c->base, "images", (json_int_t)c->images, "evaluations",
                    c->evals, "computed", c->computed, "eval_seconds", c->seconds, "widths", ws));
            }
        json_array_append_new(models, json_pack("{s:s,s:o}", "model", MODELS[m], "runs", runs));
    }
    json_t *wl = json_array();
    for (int i = 0; i < S->nw; i++) json_array_append_new(wl, json_integer(S->widths[i]));
    return study_json_write(path, "width (issue 9, study 1)", in,
                            json_pack("{s:s,s:o,s:i,s:o}", "split", "validation (first N images)",
                                      "widths", wl, "k", S->k, "models", models));
}

static void write_svgs(const char *dir, const void *user)
{
    const study_w *S = user;
    for (int m = 0; m < NM; m++) {
        if (!S->on[m]) continue;
        for (int best = 0; best < 2; best++) {
            qt_plot_series ser[NQ * NR];
            qt_plot_pt pts[NQ * NR][MAXW];
            char names[NQ * NR][40], title[160];
            int ns = 0;
            for (int q = 0; q < NQ; q++)
                for (int r = 0; r < NR; r++) {
                    const cell *c = &S->c[m][q][r];
                    int np = 0;
                    for (int i = 0; i < S->nw; i++) {
                        int w = S->widths[i], F;
                        double v = best ? rel_best(c, w, &F) : rel_half(c, w);
                        pts[ns][np++] = (qt_plot_pt){ w, v, 0, 1 };
                    }
                    snprintf(names[ns], sizeof names[ns], "%s %s", QUANT[q], ROUND[r]);
                    ser[ns] = (qt_plot_series){ names[ns], pts[ns], np, 1 };
                    ns++;
                }
            qt_plot p;
            qt_plot_init(&p);
            snprintf(title, sizeof title, "%s: relative top-1 over word width, %s", MODELS[m],
                     best ? "best F per W" : "F = W/2");
            p.title = title;
            p.xlabel = "word width W (bits)";
            p.series = ser;
            p.n_series = ns;
            study_svg("study_width", &p, dir, "study_width_%s%s.svg", MODELS[m],
                      best ? "_bestF" : "");
        }
    }
}

static int parse_widths(const char *s, int *w, int *n)
{
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 2 || v > 16 || *n >= MAXW) return -1;
        for (int i = 0; i < *n; i++) if (w[i] == v) return -1;
        w[(*n)++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return *n ? 0 : -1;
}

/* study_width's own options (width_option: a study_option_fn) */
typedef struct width_opts {
    const char *widths;          /* --widths: a comma list */
    size_t      intr, intr_big;  /* --intr-val, --intr-val-big */
} width_opts;

static int width_option(void *user, const char *opt, const char *v)
{
    width_opts *w = user;
    if (!strcmp(opt, "--widths")) w->widths = v;
    else if (!strcmp(opt, "--intr-val")) return study_size_arg(v, &w->intr);
    else if (!strcmp(opt, "--intr-val-big")) return study_size_arg(v, &w->intr_big);
    else return 1;
    return 0;
}

int main(int argc, char **argv)
{
    qt_runtime_init(argv);
    static const study_writers out = { write_md, write_json, write_svgs };
    study_opts o;
    width_opts wo = { "2,4,6,8,10,12,14,16", 2000, 160 };
    static study_w S;
    int rc = study_parse_args("study_width", "usage: study_width [--models LIST] [--db FILE] "
                              "[--widths LIST] [--k K] [--val N] [--val-big N] [--intr-val N] "
                              "[--intr-val-big N] [--models-dir DIR] [--md FILE] [--json FILE] "
                              "[--svg DIR]", argc, argv, &o, width_option, &wo);
    if (rc) return rc;
    S.k = o.k;
    if (parse_widths(wo.widths, S.widths, &S.nw)) {
        fprintf(stderr, "study_width: --widths: a comma list of distinct widths 2..16\n");
        return 2;
    }
    int any = 0;
    for (int m = 0; m < NM; m++) any += S.on[m] = list_has(o.models, MODELS[m]);
    if (!any) { fprintf(stderr, "study_width: no model selected\n"); return 2; }

    study_info in;
    study *st;
    if (study_begin("study_width", o.db, argc, argv, &in, &st)) return 1;
    char wl[160];
    size_t at = 0;
    for (int i = 0; i < S.nw; i++)
        at += (size_t)snprintf(wl + at, sizeof wl - at, "%s%d", i ? "," : "", S.widths[i]);
    int nj = 0, total = 0;
    for (int m = 0; m < NM; m++) total += S.on[m] * NQ * NR;
    for (int m = 0; m < NM && !rc; m++) {
        if (!S.on[m]) continue;
        char path[1024];
        if (study_checkpoint(o.mdir, MODELS[m], path, sizeof path)) { rc = QT_ENOENT; break; }
        int big = m >= 2;
        S.val[m][0] = big ? o.val_big : o.val;
        S.val[m][1] = big ? wo.intr_big : wo.intr;
        for (int q = 0; q < NQ && !rc; q++)
            for (int r = 0; r < NR && !rc; r++) {
                char job[2048], label[96], bias[64];
                if (S.k) snprintf(bias, sizeof bias, "{\"search\":%d,\"from\":\"half\"}", S.k);
                else snprintf(bias, sizeof bias, "\"half\"");
                snprintf(job, sizeof job,
                    "{\"model\":\"%s\",\"space\":[{\"nodes\":\"*\",\"points\":%s,"
                    "\"types\":[\"fixed\"],\"widths\":[1,32],\"rounding\":\"%s\"}],"
                    "\"strategy\":{\"name\":\"grid\",\"mode\":\"uniform\",\"widths\":{\"list\":[%s]},"
                    "\"bias\":%s,\"frac\":[0,30]},"
                    "\"cost\":\"%s\",\"constraint\":{\"metric\":\"top1\",\"relative\":0.99},"
                    "\"val_limit\":%zu,\"early_stop\":false,\"seed\":1}",
                    path, q ? "[\"intrinsic\"]" : "[\"weights\",\"bias\",\"output\"]", RCODE[r],
                    wl, bias, q ? "bitops" : "weight_bits", S.val[m][q]);
                snprintf(label, sizeof label, "job %d/%d %s %s %s", ++nj, total, MODELS[m],
                         QUANT[q], ROUND[r]);
                rc = study_run(st, label, job, collect, &S.c[m][q][r]);
            }
    }
    return study_finish(st, rc, &in, &o, &out, &S);
}
