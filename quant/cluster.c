/*
 * cluster.c -- 1-D k-means codebooks for the cluster format.
 *
 * Deterministic: the initial levels are evenly spaced quantiles of the
 * sorted finite values, and Lloyd's iterations on sorted data assign each
 * run of values between two midpoints to one level, so no randomness and no
 * dependence on thread count. An iteration costs O(k log n) (binary search
 * for each cell boundary, prefix sums for each mean), so Lloyd's method is
 * run until no level moves (at most 10000 rounds).
 */
#include "internal.h"

#include <stdlib.h>

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* first index i in [lo, hi) with v[i] > t (v sorted ascending) */
static size_t upper(const float *v, size_t lo, size_t hi, double t)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((double)v[mid] > t) hi = mid; else lo = mid + 1;
    }
    return lo;
}

int qt_codebook_fit(const float *x, size_t n, int k, float *levels)
{
    float *v;
    double *c, *pre;
    size_t m = 0;
    int nl, iter;

    if (k < 1 || !levels) return QT_EINVAL;
    v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return QT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) v[m++] = x[i];
    if (m == 0) { free(v); return 0; }
    qsort(v, m, sizeof *v, cmp_f);

    /* distinct values: if there are at most k, they are the codebook */
    {
        size_t d = 1;
        for (size_t i = 1; i < m && d <= (size_t)k; i++)
            if (v[i] != v[i - 1]) d++;
        if (d <= (size_t)k) {
            nl = 0;
            for (size_t i = 0; i < m; i++)
                if (i == 0 || v[i] != v[i - 1]) levels[nl++] = v[i];
            free(v);
            return nl;
        }
    }

    c = malloc((size_t)k * sizeof *c);
    pre = malloc((m + 1) * sizeof *pre);     /* prefix sums for cluster means */
    if (!c || !pre) { free(v); free(c); free(pre); return QT_ENOMEM; }
    pre[0] = 0.0;
    for (size_t i = 0; i < m; i++) pre[i + 1] = pre[i] + v[i];
    for (int j = 0; j < k; j++)
        c[j] = v[(size_t)(((double)j + 0.5) / k * (double)m)];

    for (iter = 0; iter < 10000; iter++) {
        size_t start = 0;
        int moved = 0;
        for (int j = 0; j < k; j++) {
            size_t end = j + 1 < k ? upper(v, start, m, 0.5 * (c[j] + c[j + 1])) : m;
            if (end > start) {
                double mean = (pre[end] - pre[start]) / (double)(end - start);
                if (mean != c[j]) { c[j] = mean; moved = 1; }
            }
            start = end;
        }
        /* keep levels ordered (means of ordered runs are ordered) */
        if (!moved) break;
    }
    nl = 0;
    for (int j = 0; j < k; j++) {
        float l = (float)c[j];
        if (nl == 0 || l != levels[nl - 1]) levels[nl++] = l;
    }
    free(v); free(c); free(pre);
    return nl;
}

void qt_codebook_apply(const float *levels, int k, float *x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= 32768)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        int lo = 0, hi = k - 1;
        if (isnan(v) || k < 1) continue;
        /* largest level <= v by bisection, then the nearer neighbour */
        if (v <= levels[0]) { x[i] = levels[0]; continue; }
        if (v >= levels[k - 1]) { x[i] = levels[k - 1]; continue; }
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (levels[mid] <= v) lo = mid; else hi = mid;
        }
        x[i] = ((double)v - levels[lo] <= (double)levels[hi] - v) ? levels[lo] : levels[hi];
    }
}
