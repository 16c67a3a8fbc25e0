/*
 * test_pareto.c -- qt_pareto against a brute-force definition of the
 * front on random sets with many ties and duplicates, NaNs, infinities and
 * signed zeros; aliasing front == pts; the output sorted by cost.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "tuner.h"

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int below(int n) { return (int)(rnd() % (uint64_t)n); }
static double unit(void) { return (double)(rnd() >> 11) * 0x1p-53; }

/* q beats p: no worse in both, better in one, or identical and earlier */
static int beats(const qt_point *q, int qi, const qt_point *p, int pi)
{
    if (isnan(q->cost) || isnan(q->acc)) return 0;
    if (!(q->cost <= p->cost && q->acc >= p->acc)) return 0;
    if (q->cost < p->cost || q->acc > p->acc) return 1;
    return qi < pi;
}

/* the front by definition, as input indices sorted by cost */
static int brute(const qt_point *pts, int n, int *idx)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(pts[i].cost) || isnan(pts[i].acc)) continue;
        int on = 1;
        for (int j = 0; j < n && on; j++)
            if (j != i && beats(&pts[j], j, &pts[i], i)) on = 0;
        if (on) idx[m++] = i;
    }
    /* insertion sort by cost (costs on a front are distinct) */
    for (int i = 1; i < m; i++)
        for (int k = i; k > 0 && pts[idx[k]].cost < pts[idx[k - 1]].cost; k--) {
            int t = idx[k]; idx[k] = idx[k - 1]; idx[k - 1] = t;
        }
    return m;
}

static double rand_value(int mode)
{
    switch (mode) {
    case 0: return (double)below(4);                       /* a tiny grid: ties */
    case 1: return (double)below(20) * 0.25;
    case 2: return unit();                                  /* continuous */
    default: {                                              /* anything */
        int c = below(40);
        if (c == 0) return NAN;
        if (c == 1) return INFINITY;
        if (c == 2) return -INFINITY;
        if (c == 3) return -0.0;
        if (c == 4) return 0.0;
        return below(2) ? (double)below(6) : unit() * 10 - 5;
    }
    }
}

/* the same point, bit for bit (-0.0 is not 0.0); padding is not compared */
static void assert_point_equal(const qt_point *a, const qt_point *b)
{
    assert_memory_equal(&a->cost, &b->cost, sizeof a->cost);
    assert_memory_equal(&a->acc, &b->acc, sizeof a->acc);
    assert_int_equal(a->id, b->id);
}

static void check_set(const qt_point *pts, int n)
{
    qt_point front[256], alias[256];
    int idx[256];
    int k = qt_pareto(pts, n, front);
    int m = brute(pts, n, idx);
    assert_int_equal(k, m);
    for (int i = 0; i < k; i++) {
        const qt_point *want = &pts[idx[i]];
        if (front[i].id != want->id)
            fail_msg("n %d: front[%d] is id %d (cost %g acc %g), want id %d (cost %g acc %g)",
                     n, i, front[i].id, front[i].cost, front[i].acc, want->id, want->cost,
                     want->acc);
        assert_point_equal(&front[i], want);
        if (i > 0) {
            assert_true(front[i - 1].cost < front[i].cost);
            assert_true(front[i - 1].acc < front[i].acc);
        }
    }
    /* front == pts */
    if (n) memcpy(alias, pts, (size_t)n * sizeof *pts);
    assert_int_equal(qt_pareto(alias, n, alias), k);
    for (int i = 0; i < k; i++) assert_point_equal(&alias[i], &front[i]);
}

static void t_random(void **st)
{
    qt_point pts[256];
    for (int it = 0; it < 10000; it++) {
        int n = it < 50 ? it % 5 : below(201);
        int cm = below(4), am = below(4);
        int nan_every = below(3) ? 0 : 2 + below(10);
        for (int i = 0; i < n; i++) {
            pts[i].cost = rand_value(cm);
            pts[i].acc = rand_value(am);
            pts[i].id = 1000 + i * 7;                       /* not the index */
            if (nan_every && below(nan_every) == 0) {
                if (below(2)) pts[i].cost = NAN;
                else pts[i].acc = NAN;
            }
            if (i > 0 && below(8) == 0) {                   /* an exact duplicate */
                int j = below(i);
                pts[i].cost = pts[j].cost;
                pts[i].acc = pts[j].acc;
            }
        }
        check_set(pts, n);
    }
}

static void t_known(void **st)
{
    /* ids 0..: (cost, acc) */
    qt_point pts[] = {
        { 4, 0.90, 0 }, { 2, 0.80, 1 }, { 2, 0.85, 2 }, { 3, 0.85, 3 }, { 1, 0.50, 4 },
        { 5, 0.90, 5 }, { 4, 0.90, 6 }, { NAN, 1.0, 7 }, { 0, NAN, 8 }, { 6, 0.95, 9 },
    };
    qt_point front[10];
    int k = qt_pareto(pts, 10, front);
    static const int want[] = { 4, 2, 0, 9 };
    assert_int_equal(k, 4);
    for (int i = 0; i < k; i++) assert_int_equal(front[i].id, want[i]);

    /* nothing, only NaNs, one point */
    assert_int_equal(qt_pareto(pts, 0, front), 0);
    assert_int_equal(qt_pareto(NULL, 0, NULL), 0);
    assert_int_equal(qt_pareto(pts + 7, 2, front), 0);
    assert_int_equal(qt_pareto(pts + 4, 1, front), 1);
    assert_int_equal(front[0].id, 4);
    /* a first point of accuracy -inf is still on the front */
    qt_point inf[] = { { 1, -INFINITY, 0 }, { 2, -INFINITY, 1 }, { 3, 0, 2 } };
    assert_int_equal(qt_pareto(inf, 3, front), 2);
    assert_int_equal(front[0].id, 0);
    assert_int_equal(front[1].id, 2);
    /* identical points: the first is kept */
    qt_point dup[] = { { 1, 1, 10 }, { 1, 1, 11 }, { 1, 1, 12 } };
    assert_int_equal(qt_pareto(dup, 3, dup), 1);
    assert_int_equal(dup[0].id, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_known),
        cmocka_unit_test(t_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
