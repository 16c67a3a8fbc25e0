/*
 * studies.h -- the driver shared by issue #9's study programs
 * (study_width, study_layers): jobs run through a qtune store, so that a
 * re-run, or a run after an interruption, answers every evaluation already
 * measured from the store and computes only the rest.
 *
 *   study *st;
 *   study_open("study_width", "build/studies.db", &st);
 *   study_run(st, "mlp extrinsic nearest", job_json, collect, me);
 *   ...
 *   study_close(st);
 *
 * Each job is a tuning job (tuner/job.c) run as `qtune tune --db` runs it:
 * a job of the store whose spec is the same (canonical JSON) is replayed
 * (resume is replay: store.h), otherwise a new one is stored first; the
 * search's evaluation cache is the store (qt_store_cache), so every
 * evaluation is committed as it finishes and every stored one is reused,
 * whichever job measured it. The test split is never measured here.
 *
 * Progress goes to stderr: each job as it starts, evaluations done (and
 * how many came from the store) every few seconds, and a line when it
 * ends. SIGINT or SIGTERM stops the search within a batch of images; the
 * job is recorded paused and the program exits with status 130 (run the
 * same command again to go on).
 */
#ifndef QT_STUDIES_H
#define QT_STUDIES_H

#include "api.h"
#include "tuner.h"

typedef struct study study;

/* Open (creating) the store at db (its directory must exist). New object;
 * errors on stderr, naming the file. */
int  study_open(const char *prog, const char *db, study **out);
void study_close(study *st);

/* What a study reads of a finished search (s is alive during the call:
 * its coordinates, history, baseline). */
typedef void (*study_collect_fn)(void *user, qt_search *s);

/* Run the job (JSON text) through the store and give the finished search
 * to fn. QT_OK; QT_ECANCEL after a signal (the caller should exit 130);
 * or an error, printed. */
int  study_run(study *st, const char *label, const char *job_json, study_collect_fn fn,
               void *user);

/* Totals so far: jobs run, evaluations, computed now, answered from the
 * store, and the summed duration of every evaluation (stored ones at the
 * time they took when computed). */
typedef struct study_totals {
    int    jobs, evals, computed, reused;
    double eval_seconds;
} study_totals;
void study_get_totals(const study *st, study_totals *t);

/* Has a signal asked the program to stop? */
int  study_stopped(void);

/* Helpers for the programs. */
double      study_now(void);                    /* monotonic seconds */
int         study_listed(const char *list, const char *name);   /* comma list */
/* the command line as one string (static buffer) */
const char *study_command(int argc, char **argv);
/* the trained zoo checkpoint of model into path (dir: NULL for
 * <source>/experiments/models); QT_ENOENT with the command that makes it */
int         study_checkpoint(const char *dir, const char *model, char *path, size_t size);
/* relative path from the source tree when under it, else as is */
const char *study_rel(const char *path);
/* the current date and time, UTC, "2026-11-23 18:40 UTC" (static buffer) */
const char *study_date(void);
/* the 1-, 5- and 15-minute load averages, "1.02 0.98 0.71", into buf */
void        study_loadavg(char *buf, size_t size);

#endif
