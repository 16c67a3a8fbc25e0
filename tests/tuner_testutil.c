/*
 * tuner_testutil.c -- the tuner's tests' shared pieces (tuner_testutil.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tuner_testutil.h"

#include <stdio.h>
#include <string.h>

const qt_result tu_float = { .top1 = 0.9, .top5 = 1.0, .loss = 0.1, .images = 1000 };

qt_graph *tu_mlp(void)
{
    qt_graph *g;
    qt_error err;
    assert_int_equal(qt_zoo_build("mlp", &g, &err), QT_OK);
    return g;
}

int tu_search_rc(const char *job, const qt_graph *g, qt_eval_fn fn, void *user, int workers,
                 qt_search **s, qt_error *err)
{
    qt_job_spec sp;
    *s = NULL;
    int rc = qt_job_parse(job, &sp, err);
    if (rc) fprintf(stderr, "%s: %s\n", job, err->text);
    assert_int_equal(rc, QT_OK);
    if (workers) sp.workers = workers;
    memset(err, 0, sizeof *err);
    rc = qt_search_new_custom(&sp, g, &tu_float, 1.0, fn, user, NULL, s, err);
    qt_job_clear(&sp);
    return rc;
}

qt_search *tu_search(const char *job, const qt_graph *g, qt_eval_fn fn, void *user, int workers)
{
    qt_search *s;
    qt_error err;
    int rc = tu_search_rc(job, g, fn, user, workers, &s, &err);
    if (rc) fprintf(stderr, "%s: %s\n", job, err.text);
    assert_int_equal(rc, QT_OK);
    return s;
}

void tu_run(qt_search *s)
{
    qt_error err;
    int rc = qt_search_run(s, NULL, NULL, &err);
    if (rc) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(rc, QT_OK);
}

void tu_result(qt_result *r, double top1)
{
    r->top1 = top1;
    r->top5 = 1.0;
    r->loss = 1.0 - top1;
    r->images = 1000;
}

void tu_count(pthread_mutex_t *mu, int *calls)
{
    pthread_mutex_lock(mu);
    (*calls)++;
    pthread_mutex_unlock(mu);
}

int tu_need_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r)
{
    tu_need *y = user;
    const qt_coord *co;
    int n = qt_search_coords(s, &co);
    double acc = 0.9;
    for (int i = 0; i < n; i++) {
        int w = c->fmt[i].type == QT_NONE ? 32 : c->fmt[i].width;
        if (w < y->need[i]) acc -= 0.02 * (y->need[i] - w);
    }
    tu_result(r, acc > 0 ? acc : 0);
    tu_count(&y->mu, &y->calls);
    return QT_OK;
}

void tu_need_clear(tu_need *y)
{
    memset(y->need, 0, sizeof y->need);
    y->calls = 0;
}
