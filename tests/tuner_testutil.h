/*
 * tuner_testutil.h -- what the tuner's tests share (tuner_testutil.c): the
 * zoo's mlp, custom searches of a job against a synthetic evaluator (the
 * float model at top-1 0.9), the end of a synthetic evaluation, and "need",
 * the evaluator in which tensor i needs need[i] bits.
 *
 *   qt_graph *g = tu_mlp();
 *   tu_need y = TU_NEED_INIT;
 *   y.need[0] = 5;
 *   qt_search *s = tu_search(job, g, tu_need_eval, &y, 1);
 *   tu_run(s);
 *   ...
 *   qt_search_free(s);
 *   qt_graph_free(g);
 *
 * Failures are cmocka's: a test includes cmocka.h before this header.
 */
#ifndef QT_TUNER_TESTUTIL_H
#define QT_TUNER_TESTUTIL_H

#include <pthread.h>

#include "tuner.h"

/* The zoo's mlp (784-300-100-10, untrained). New object. */
qt_graph *tu_mlp(void);

/* The float model of the synthetic searches: top-1 0.9, top-5 1, loss 0.1
 * on 1000 images. */
extern const qt_result tu_float;

/* A custom search of job (JSON text) on g (borrowed) with the evaluator
 * fn(user) on workers threads (0: the job's own), the float model tu_float
 * and every tensor's range 1.0. A job that does not parse fails the test
 * (the error printed). Returns the search's rc, with *s (NULL on an error)
 * and err. */
int        tu_search_rc(const char *job, const qt_graph *g, qt_eval_fn fn, void *user,
                        int workers, qt_search **s, qt_error *err);
/* The same where the search must be made: an error fails the test (the job
 * and the error printed). New object. */
qt_search *tu_search(const char *job, const qt_graph *g, qt_eval_fn fn, void *user,
                     int workers);
/* Run s to its end; an error fails the test (printed). */
void       tu_run(qt_search *s);

/* The end of a synthetic evaluation: r gets top-1 top1, top-5 1, loss
 * 1 - top1, 1000 images. */
void tu_result(qt_result *r, double top1);
/* One more call of an evaluator the workers share: ++*calls under mu. */
void tu_count(pthread_mutex_t *mu, int *calls);

/* "need": tensor i needs need[i] bits (float counts as 32); each bit
 * missing costs 0.02 of the float model's 0.9 (top-1 0 at the least). */
typedef struct tu_need {
    int             need[64];
    int             calls;     /* evaluations */
    pthread_mutex_t mu;
} tu_need;

#define TU_NEED_INIT { .mu = PTHREAD_MUTEX_INITIALIZER }

int  tu_need_eval(void *user, const qt_search *s, const qt_cand *c, qt_result *r);
/* need and calls back to 0 (the mutex stays) */
void tu_need_clear(tu_need *y);

#endif
