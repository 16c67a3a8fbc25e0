/*
 * stats.c -- per-tensor statistics: range, moments, a log2 histogram of
 * magnitudes (for percentiles) and sparsity before and after quantization.
 *
 * Accumulation is sequential per tensor and in a fixed order, so the
 * figures do not depend on the thread count.
 */
#include "internal.h"

#include <float.h>
#include <stdlib.h>

struct qt_stats {
    int        n;
    qt_tstats *t;          /* n * QT_ST_KINDS */
};

static void init_one(qt_tstats *s)
{
    memset(s, 0, sizeof *s);
    s->min = INFINITY;
    s->max = -INFINITY;
}

qt_stats *qt_stats_new(const qt_graph *g)
{
    qt_stats *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n = qt_graph_nodes(g);
    s->t = malloc((size_t)(s->n ? s->n : 1) * QT_ST_KINDS * sizeof *s->t);
    if (!s->t) { free(s); return NULL; }
    qt_stats_reset(s);
    return s;
}

void qt_stats_free(qt_stats *s)
{
    if (!s) return;
    free(s->t);
    free(s);
}

void qt_stats_reset(qt_stats *s)
{
    for (int i = 0; i < s->n * QT_ST_KINDS; i++) init_one(&s->t[i]);
}

const qt_tstats *qt_stats_get(const qt_stats *s, int node, qt_stat_kind k)
{
    if (node < 0 || node >= s->n || (unsigned)k >= QT_ST_KINDS) return NULL;
    return &s->t[node * QT_ST_KINDS + k];
}

static int bin_of(double a)
{
    if (!(a >= 0x1p-64)) return 0;
    if (a >= 0x1p32) return QT_HIST_BINS - 1;
    int b = (int)floor((log2(a) + 64.0) * QT_HIST_SUB);
    if (b < 0) b = 0;
    if (b > QT_HIST_OCT * QT_HIST_SUB - 1) b = QT_HIST_OCT * QT_HIST_SUB - 1;
    return 1 + b;
}

/* add x[0..n) (float values) and, when q is not NULL, the zeros of q;
 * returns the zeros of x */
uint64_t qt__stats_add(qt_stats *st, int node, qt_stat_kind k, const float *x,
                       const float *q, size_t n)
{
    if (!st || node < 0 || node >= st->n) return 0;
    qt_tstats *s = &st->t[node * QT_ST_KINDS + k];
    double mn = s->min, mx = s->max, am = s->absmax, sum = 0, sum2 = 0;
    uint64_t zeros = 0, zq = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v)) { bad++; continue; }
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        if (fabs(v) > am) am = fabs(v);
        sum += v;
        sum2 += v * v;
        zeros += v == 0.0;
        s->hist[bin_of(fabs(v))]++;
    }
    if (q) { for (size_t i = 0; i < n; i++) zq += q[i] == 0.0f; }
    else zq = zeros;
    s->min = mn; s->max = mx; s->absmax = am;
    s->sum += sum; s->sum2 += sum2;
    s->count += n - bad;
    s->nonfinite += bad;
    s->zeros += zeros;
    s->zeros_q += zq;
    return zeros;
}

/* zeros after quantization, for values already added with q == NULL
 * (which counted zeros_before as their zeros_q) */
void qt__stats_zeros_q(qt_stats *st, int node, qt_stat_kind k, const float *q,
                       size_t n, uint64_t zeros_before)
{
    if (!st || node < 0 || node >= st->n) return;
    qt_tstats *s = &st->t[node * QT_ST_KINDS + k];
    uint64_t zq = 0;
    for (size_t i = 0; i < n; i++) zq += q[i] == 0.0f;
    s->zeros_q += zq;
    s->zeros_q -= zeros_before;
}

double qt_tstats_mean(const qt_tstats *s) { return s->count ? s->sum / (double)s->count : 0.0; }

double qt_tstats_std(const qt_tstats *s)
{
    if (!s->count) return 0.0;
    double m = qt_tstats_mean(s), v = s->sum2 / (double)s->count - m * m;
    return v > 0 ? sqrt(v) : 0.0;
}

double qt_tstats_sparsity(const qt_tstats *s)
{
    uint64_t all = s->count + s->nonfinite;
    return all ? (double)s->zeros / (double)all : 0.0;
}

double qt_tstats_sparsity_q(const qt_tstats *s)
{
    uint64_t all = s->count + s->nonfinite;
    return all ? (double)s->zeros_q / (double)all : 0.0;
}

double qt_tstats_percentile_abs(const qt_tstats *s, double p)
{
    if (!s->count || !(p > 0 && p <= 100)) return 0.0;
    if (p == 100) return s->absmax;
    double want = p / 100.0 * (double)s->count, acc = 0;
    for (int b = 0; b < QT_HIST_BINS; b++) {
        acc += (double)s->hist[b];
        if (acc >= want) {
            double edge = b == 0 ? 0x1p-64 : b == QT_HIST_BINS - 1 ? s->absmax
                        : exp2((double)b / QT_HIST_SUB - 64.0);
            return edge < s->absmax ? edge : s->absmax;
        }
    }
    return s->absmax;
}

json_t *qt_stats_to_json(const qt_stats *s, const qt_graph *g)
{
    static const char *kinds[QT_ST_KINDS] = { "activations", "weights", "bias",
                                              "grad_activations", "grad_weights" };
    json_t *o = json_object();
    for (int i = 0; o && i < s->n; i++) {
        json_t *e = NULL;
        for (int k = 0; k < QT_ST_KINDS; k++) {
            const qt_tstats *t = &s->t[i * QT_ST_KINDS + k];
            if (!t->count && !t->nonfinite) continue;
            if (!e) e = json_object();
            json_object_set_new(e, kinds[k], json_pack("{sI sI sf sf sf sf sf sf sf sf sf}",
                "count", (json_int_t)t->count, "nonfinite", (json_int_t)t->nonfinite,
                "min", t->count ? t->min : 0.0, "max", t->count ? t->max : 0.0,
                "absmax", t->absmax, "mean", qt_tstats_mean(t), "std", qt_tstats_std(t),
                "sparsity", qt_tstats_sparsity(t), "sparsity_q", qt_tstats_sparsity_q(t),
                "p99", qt_tstats_percentile_abs(t, 99.0), "p999", qt_tstats_percentile_abs(t, 99.9)));
        }
        if (e) json_object_set_new(o, qt_graph_node_name(g, i), e);
    }
    return o;
}

void qt_graph_attach_stats(qt_graph *g, qt_stats *s) { g->stats = s; }
