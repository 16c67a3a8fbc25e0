/*
 * strat_analytical.c -- the analytical strategy (being written).
 */
#include "internal.h"

static int init_(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    (void)s; (void)opts; (void)state;
    return qt__fail(err, QT_ENOTSUP, -1, "strategy: 'analytical' is not implemented yet");
}

static int propose_(void *state, qt_search *s, qt_cand *c)
{
    (void)state; (void)s; (void)c;
    return QT_DONE;
}

static void observe_(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    (void)state; (void)s; (void)c; (void)r;
}

static void free_(void *state) { (void)state; }

const qt_strategy qt__strat_analytical = {
    "analytical", "(not implemented yet)", init_, propose_, observe_, free_
};
