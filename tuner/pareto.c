/*
 * pareto.c -- the non-dominated points of a set of (cost, accuracy) points.
 *
 * Sort by cost ascending, then accuracy descending, then input order; a
 * point is on the front iff its accuracy is strictly greater than that of
 * every point kept before it. O(n log n). So of points with equal cost
 * only the most accurate can be kept, and of identical points only the
 * first: a point is dropped iff another has cost <= and acc >= with one
 * strict, or is identical and comes first. Points with a NaN cost or acc
 * are dropped (they are neither better nor worse than anything).
 */
#include "quant.h"
#include "tuner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ranked {
    qt_point p;
    int      order;      /* position in the input */
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p.cost < y->p.cost) return -1;
    if (x->p.cost > y->p.cost) return 1;
    if (x->p.acc > y->p.acc) return -1;
    if (x->p.acc < y->p.acc) return 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Returns the number of points written to front, or QT_ENOMEM (negative)
 * when the scratch array cannot be allocated (front is then unchanged). */
int qt_pareto(const qt_point *pts, int n, qt_point *front)
{
    ranked *r;
    int m = 0, k = 0;
    if (n <= 0 || !pts) return 0;
    r = malloc((size_t)n * sizeof *r);
    if (!r) return QT_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (isnan(pts[i].cost) || isnan(pts[i].acc)) continue;
        r[m].p = pts[i];
        r[m].order = i;
        m++;
    }
    qsort(r, (size_t)m, sizeof *r, cmp_ranked);
    /* front may alias pts: everything needed is in r by now */
    for (int i = 0; i < m; i++)
        if (k == 0 || r[i].p.acc > front[k - 1].acc) front[k++] = r[i].p;
    free(r);
    return k;
}
