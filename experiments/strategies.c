/*
 * strategies.c -- every strategy on every zoo model: the tuner's closing
 * table (issue #5) and the search-efficiency study (issue #9, study 7).
 *
 * For each model (trained checkpoints in experiments/models) and each space
 *   fixed:  the weights of every node, fixed point, 2..8 bits
 *   mixed:  the same with types fixed, float and cluster
 * and each strategy (uniform, bisection, greedy, analytical, hybrid), one
 * job at r = 0.99 (top-1) on the first --val validation images (default
 * 2000), run through the library exactly as `qtune tune` runs it. Reported
 * per run: evaluations (and how many computed), wall time, weight bits per
 * stored value, activation bits per value, compression against fp32,
 * validation and test top-1 of the answer (float's beside), whether it is
 * feasible, the engine's multiply-accumulates (and what they would have
 * been without prefix reuse and the early stop), and the trace of the
 * cheapest feasible cost after each evaluation.
 *
 *   strategies [--models mlp,lenet5,vgg,resnet] [--spaces fixed,mixed]
 *              [--strategies uniform,...] [--val N] [--json FILE]
 *              [--md FILE] [--svg DIR] [--val-order random|hardest_first]
 *
 * --val-order is the jobs' "val_order" (default random): hardest_first
 * shows what ordering the validation images by the float model's margin
 * saves (the answers must not change: every verdict is exact).
 *
 * Writes a Markdown table (stdout or --md), JSON (--json) and, with --svg,
 * one plot per (model, space): cheapest feasible compression against
 * evaluations spent, one line per strategy. Never fails on figures; a
 * non-zero exit is a real error (a model that does not load, a bad option).
 */
#include "tuner.h"
#include "plot.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef QT_SOURCE_DIR
#define QT_SOURCE_DIR "."
#endif


typedef struct run {
    char   model[16], space[8], strategy[16];
    int    evals, computed, feasible;
    double seconds, bits_w, bits_a, compression, val, val_float, test, test_float;
    double macs, macs_full;
    double *trace;           /* cheapest feasible compression after each evaluation */
    int    nt;               /* the answer per tensor: */
    char   (*tensor)[QT_NAME_MAX];   /* node names */
    char   (*fmt)[48];       /* its format (qt_format_print), "-" without an answer */
    int    *width;           /* its width in bits (0: none) */
    char   *config;          /* canonical JSON of the answer (NULL: none) */
} run;

static const char *val_order = "random";

static int do_run(const char *model, const char *space, const char *strategy, int val, run *o)
{
    char job[1024];
    const char *types = strcmp(space, "mixed") ? "\"fixed\"" : "\"fixed\",\"float\",\"cluster\"";
    qt_job_spec sp;
    qt_search *s = NULL;
    qt_error err;
    snprintf(job, sizeof job, "{\"model\":\"%s/experiments/models/%s.qtck\",\"strategy\":\"%s\","
             "\"val_limit\":%d,\"constraint\":{\"metric\":\"top1\",\"relative\":0.99},"
             "\"val_order\":\"%s\",\"space\":[{\"nodes\":\"*\",\"points\":[\"weights\"],"
             "\"types\":[%s],\"widths\":[2,8]}]}", QT_SOURCE_DIR, model, strategy, val,
             val_order, types);
    memset(o, 0, sizeof *o);
    snprintf(o->model, sizeof o->model, "%s", model);
    snprintf(o->space, sizeof o->space, "%s", space);
    snprintf(o->strategy, sizeof o->strategy, "%s", strategy);
    double t0 = now_s();
    int rc = qt_job_parse(job, &sp, &err);
    if (!rc) rc = qt_search_new(&sp, NULL, &s, &err);
    if (!rc) rc = qt_search_run(s, NULL, NULL, &err);
    if (rc) {
        fprintf(stderr, "strategies: %s/%s/%s: %s\n", model, space, strategy, err.text);
        qt_search_free(s);
        qt_job_clear(&sp);
        return rc;
    }
    o->seconds = now_s() - t0;
    o->evals = qt_search_evals(s);
    o->computed = qt_search_computed(s);
    const qt_result *b = qt_search_baseline(s), *r;
    const qt_cand *best = qt_search_best(s, &r, &o->feasible);
    const qt_graph *g = qt_search_graph(s);
    double params = (double)qt_graph_param_count(g);
    o->val_float = b->top1;
    o->trace = malloc((size_t)(o->evals ? o->evals : 1) * sizeof *o->trace);
    double cheapest = INFINITY;
    for (int i = 0; i < o->evals; i++) {
        const qt_result *x;
        qt_search_result(s, i, NULL, &x);
        if (x->feasible && !x->fail && !x->subset && x->cost < cheapest) cheapest = x->cost;
        o->trace[i] = isfinite(cheapest) ? b->cost / cheapest : NAN;
    }
    const qt_coord *co;
    int nt = qt_search_coords(s, &co);
    o->tensor = calloc((size_t)(nt ? nt : 1), sizeof *o->tensor);
    o->fmt = calloc((size_t)(nt ? nt : 1), sizeof *o->fmt);
    o->width = calloc((size_t)(nt ? nt : 1), sizeof *o->width);
    if (o->tensor && o->fmt && o->width) {
        o->nt = nt;
        for (int k = 0; k < nt; k++) {
            snprintf(o->tensor[k], sizeof o->tensor[k], "%s", qt_graph_node_name(g, co[k].node));
            snprintf(o->fmt[k], sizeof o->fmt[k], "-");
            if (best && qt_format_print(&best->fmt[k], o->fmt[k], sizeof o->fmt[k]) >= 0)
                o->width[k] = best->fmt[k].width;
        }
    }
    if (best) {
        qt_result tq, tf;
        o->config = qt_search_config_json(s, best);
        o->bits_w = r->weight_bits / params;
        o->bits_a = b->act_bits > 0 ? 32.0 * r->act_bits / b->act_bits : 32.0;
        o->compression = r->compression;
        o->val = r->top1;
        if (!qt_search_measure_test(s, best, &tq, &err) &&
            !qt_search_measure_test(s, NULL, &tf, &err)) {
            o->test = tq.top1;
            o->test_float = tf.top1;
        }
    }
    qt_search_work w;
    qt_search_work_get(s, &w);
    o->macs = w.macs;
    o->macs_full = w.macs_full;
    fprintf(stderr, "%-7s %-6s %-10s %4d evals %6.1f s  %5.2fx  val %.2f%%  test %.2f%%%s\n",
            model, space, strategy, o->evals, o->seconds, o->compression, 100 * o->val,
            100 * o->test, o->feasible ? "" : "  (infeasible)");
    qt_search_free(s);
    qt_job_clear(&sp);
    return QT_OK;
}

/* the cheapest feasible answer of a searching strategy (bisection, greedy,
 * hybrid) among R[i..j): the searched optimum analytical is compared with */
static const run *searched_best(const run *R, int i, int j)
{
    const run *b = NULL;
    for (int k = i; k < j; k++)
        if (R[k].feasible && R[k].nt && strcmp(R[k].strategy, "uniform") &&
            strcmp(R[k].strategy, "analytical") && (!b || R[k].compression > b->compression))
            b = &R[k];
    return b;
}

/* per (model, space): every strategy's answer per tensor, and analytical's
 * width against the searched optimum's */
static void write_md_tensors(FILE *f, const run *R, int n)
{
    for (int i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && !strcmp(R[j].model, R[i].model) &&
                        !strcmp(R[j].space, R[i].space); j++) {}
        const run *an = NULL, *sb = searched_best(R, i, j);
        int nt = 0;
        for (int k = i; k < j; k++) {
            if (!strcmp(R[k].strategy, "analytical") && R[k].nt) an = &R[k];
            if (R[k].nt > nt) nt = R[k].nt;
        }
        if (!nt) continue;
        fprintf(f, "\n### %s, %s space: the answers per tensor\n\n| tensor |", R[i].model,
                R[i].space);
        for (int k = i; k < j; k++) fprintf(f, " %s |", R[k].strategy);
        if (an && sb) fprintf(f, " analytical - %s (bits) |", sb->strategy);
        fprintf(f, "\n|---|");
        for (int k = i; k < j; k++) fprintf(f, "---|");
        if (an && sb) fprintf(f, "---:|");
        fprintf(f, "\n");
        int within = 0, rows = 0;
        for (int t = 0; t < nt; t++) {
            const run *nm = NULL;
            for (int k = i; k < j && !nm; k++) if (t < R[k].nt) nm = &R[k];
            fprintf(f, "| %s |", nm->tensor[t]);
            for (int k = i; k < j; k++) fprintf(f, " %s |", t < R[k].nt ? R[k].fmt[t] : "");
            if (an && sb && t < an->nt && t < sb->nt && an->width[t] && sb->width[t]) {
                int d = an->width[t] - sb->width[t];
                fprintf(f, " %+d |", d);
                within += abs(d) <= 1;
                rows++;
            } else if (an && sb) {
                fprintf(f, " |");
            }
            fprintf(f, "\n");
        }
        if (an && sb)
            fprintf(f, "\nAnalytical (one evaluation) within one bit of %s's answer (the "
                    "cheapest searched, %.2fx against analytical's %.2fx) on %d of %d tensors.\n",
                    sb->strategy, sb->compression, an->compression, within, rows);
    }
}

static void write_md(FILE *f, const run *R, int n, int val)
{
    fprintf(f, "| model | space | strategy | evals (computed) | wall s | bits/weight | "
            "bits/act | compression | val top-1 (float) | test top-1 (float) | MACs (full) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const run *r = &R[i];
        fprintf(f, "| %s | %s | %s | %d (%d) | %.1f | %.2f | %.1f | %.2fx%s | %.2f %% (%.2f) | "
                "%.2f %% (%.2f) | %.3g (%.3g) |\n", r->model, r->space, r->strategy, r->evals,
                r->computed, r->seconds, r->bits_w, r->bits_a, r->compression,
                r->feasible ? "" : " (infeasible)", 100 * r->val, 100 * r->val_float,
                100 * r->test, 100 * r->test_float, r->macs, r->macs_full);
    }
    fprintf(f, "\nr = 0.99 (top-1) on the first %d validation images; weights of every node "
            "tuned, 2..8 bits; fixed: fixed point; mixed: fixed, float or cluster per tensor.\n",
            val);
    write_md_tensors(f, R, n);
}

static int write_json(const char *path, const run *R, int n, int val)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        const run *r = &R[i];
        json_t *t = json_array();
        for (int k = 0; k < r->evals; k++)
            json_array_append_new(t, isfinite(r->trace[k]) ? json_real(r->trace[k]) : json_null());
        json_t *pt = json_object();
        for (int k = 0; k < r->nt; k++)
            json_object_set_new(pt, r->tensor[k], json_string(r->fmt[k]));
        json_t *cfg = r->config ? json_loads(r->config, 0, NULL) : NULL;
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i,s:i,s:b,s:f,s:f,s:f,s:f,s:f,s:f,"
                                           "s:f,s:f,s:f,s:f,s:o,s:o,s:o}",
            "model", r->model, "space", r->space, "strategy", r->strategy, "evaluations", r->evals,
            "computed", r->computed, "feasible", r->feasible, "seconds", r->seconds,
            "bits_per_weight", r->bits_w, "bits_per_activation", r->bits_a,
            "compression", r->compression, "val_top1", r->val, "val_top1_float", r->val_float,
            "test_top1", r->test, "test_top1_float", r->test_float, "macs", r->macs,
            "macs_full", r->macs_full, "trace_compression", t, "answer", pt,
            "config", cfg ? cfg : json_null()));
    }
    json_t *o = json_pack("{s:s,s:i,s:f,s:o}", "command", "strategies", "val_limit", val,
                          "relative", 0.99, "runs", a);
    int rc = json_dump_file(o, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return rc;
}

static void write_svgs(const char *dir, const run *R, int n)
{
    for (int i = 0; i < n; i++) {
        if (i > 0 && !strcmp(R[i].model, R[i - 1].model) && !strcmp(R[i].space, R[i - 1].space))
            continue;
        qt_plot_series ser[8];
        qt_plot_pt *pts[8];
        int ns = 0;
        for (int j = i; j < n && ns < 8 && !strcmp(R[j].model, R[i].model) &&
                        !strcmp(R[j].space, R[i].space); j++) {
            pts[ns] = calloc((size_t)(R[j].evals ? R[j].evals : 1), sizeof **pts);
            for (int k = 0; k < R[j].evals; k++)
                pts[ns][k] = (qt_plot_pt){ k + 1, R[j].trace[k], 0, 1 };
            ser[ns] = (qt_plot_series){ R[j].strategy, pts[ns], R[j].evals, 1 };
            ns++;
        }
        char path[1024], title[128];
        qt_plot p;
        qt_error err;
        qt_plot_init(&p);
        if (snprintf(path, sizeof path, "%s/strategies_%s_%s.svg", dir, R[i].model,
                     R[i].space) >= (int)sizeof path ||
            snprintf(title, sizeof title, "%s, %s space: cheapest feasible compression",
                     R[i].model, R[i].space) >= (int)sizeof title) {
            fprintf(stderr, "strategies: output path too long under %s\n", dir);
            for (int k = 0; k < ns; k++) free(pts[k]);
            continue;
        }
        p.title = title;
        p.xlabel = "evaluations";
        p.ylabel = "weight compression vs fp32 (x)";
        p.series = ser;
        p.n_series = ns;
        p.xlog = 1;
        if (qt_plot_svg_file(&p, path, &err)) fprintf(stderr, "strategies: %s\n", err.text);
        for (int k = 0; k < ns; k++) free(pts[k]);
    }
}

int main(int argc, char **argv)
{
    qt_runtime_init(argv);   /* OMP_WAIT_POLICY=passive unless the user set one */
    const char *models = "mlp,lenet5,vgg,resnet", *spaces = "fixed,mixed";
    const char *strats = "uniform,bisection,greedy,analytical,hybrid";
    const char *json = NULL, *md = NULL, *svg = NULL;
    int val = 2000;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "strategies: %s needs a value\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--models")) models = v;
        else if (!strcmp(argv[i], "--spaces")) spaces = v;
        else if (!strcmp(argv[i], "--strategies")) strats = v;
        else if (!strcmp(argv[i], "--val")) val = atoi(v);
        else if (!strcmp(argv[i], "--json")) json = v;
        else if (!strcmp(argv[i], "--md")) md = v;
        else if (!strcmp(argv[i], "--svg")) svg = v;
        else if (!strcmp(argv[i], "--val-order")) val_order = v;
        else { fprintf(stderr, "strategies: unknown option %s\n", argv[i]); return 2; }
        i++;
    }
    if (val < 1) { fprintf(stderr, "strategies: --val must be >= 1\n"); return 2; }
    static const char *const M[] = { "mlp", "lenet5", "vgg", "resnet" };
    static const char *const S[] = { "fixed", "mixed" };
    static const char *const T[] = { "uniform", "bisection", "greedy", "analytical", "hybrid" };
    run R[40];
    int n = 0, rc = 0;
    for (int m = 0; m < 4; m++)
        for (int sp = 0; sp < 2; sp++)
            for (int t = 0; t < 5; t++) {
                if (!list_has(models, M[m]) || !list_has(spaces, S[sp]) || !list_has(strats, T[t]))
                    continue;
                if ((rc = do_run(M[m], S[sp], T[t], val, &R[n]))) goto out;
                n++;
            }
    if (n == 0) { fprintf(stderr, "strategies: nothing selected\n"); return 2; }
    FILE *f = md ? fopen(md, "w") : stdout;
    if (!f) { perror(md); rc = 1; goto out; }
    fprintf(f, "Command: strategies --models %s --spaces %s --strategies %s --val %d%s%s\n\n",
            models, spaces, strats, val, strcmp(val_order, "random") ? " --val-order " : "",
            strcmp(val_order, "random") ? val_order : "");
    write_md(f, R, n, val);
    if (md) fclose(f);
    if (json && write_json(json, R, n, val)) { fprintf(stderr, "strategies: cannot write %s\n", json); rc = 1; }
    if (svg) write_svgs(svg, R, n);
out:
    for (int i = 0; i < n; i++) {
        free(R[i].trace);
        free(R[i].tensor);
        free(R[i].fmt);
        free(R[i].width);
        free(R[i].config);
    }
    return rc ? 1 : 0;
}
