/*
 * studies.h -- the driver shared by issue #9's study programs
 * (study_width, study_layers, study_auto): jobs run through a qtune store,
 * so that a re-run, or a run after an interruption, answers every
 * evaluation already measured from the store and computes only the rest.
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
#include "plot.h"
#include "tuner.h"
#include "bench_util.h"   /* now_s, list_has */

#include <stdio.h>

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
/* printf to buf at *at, *at moved past it: 0; -1 when it does not fit */
__attribute__((format(printf, 4, 5)))
int         study_append(char *buf, size_t size, size_t *at, const char *fmt, ...);
/* The conv and dense layers of the model at path, in graph order: fn gets
 * each one's name, its weight tensor's values, its parameters (weights and
 * bias) and its multiply-accumulates per image; *params gets the whole
 * model's parameters. At most max layers (more is an error). 0, or -1 with
 * the message on stderr, prefixed by prog (a model without such a layer is
 * an error too). */
typedef void (*study_layer_fn)(void *user, const char *name, double weights, double params,
                               double macs);
int         study_layers_of(const char *prog, const char *path, int max, double *params,
                            study_layer_fn fn, void *user);
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

/* ---- a program's command line, its run and its outputs ----
 *
 *   study_opts o;
 *   if ((rc = study_parse_args("study_width", USAGE, argc, argv, &o, own_option, &mine)))
 *       return rc;
 *   study_info in;
 *   if (study_begin("study_width", o.db, argc, argv, &in, &st)) return 1;
 *   ... rc = study_run(st, ...) for each job ...
 *   return study_finish(st, rc, &in, &o, &writers, &results);
 */

/* The options every study program takes, with their defaults. */
typedef struct study_opts {
    const char *models;        /* --models: a comma list (all four zoo models) */
    const char *db;            /* --db (<source>/build/studies.db) */
    const char *mdir;          /* --models-dir (NULL: study_checkpoint's default) */
    const char *md;            /* --md (NULL: the Markdown to stdout) */
    const char *json;          /* --json (NULL: none) */
    const char *svg;           /* --svg, the plots' directory (study_auto: its plot's
                                * file; NULL: none) */
    int         k;             /* --k, 0..16 (3) */
    size_t      val, val_big;  /* --val (2000), --val-big (500): images, >= 1 */
} study_opts;

/* A program's own options: 0 taken, -1 a bad value, 1 not one of its own
 * (then one of study_opts' or unknown), 2 unknown (one of study_opts' the
 * program does not take: study_auto has no --k). */
typedef int (*study_option_fn)(void *user, const char *opt, const char *val);

/* Parse argv, options with their values, into o (the defaults first); each
 * option is given to fn first (NULL: none). 0; or the exit status 2 after
 * usage (a line, on --help or an option without a value), an unknown
 * option or a bad value, on stderr. */
int  study_parse_args(const char *prog, const char *usage, int argc, char **argv,
                      study_opts *o, study_option_fn fn, void *user);
/* a whole number >= 1 into *out: 0, or -1 (for a study_option_fn) */
int  study_size_arg(const char *val, size_t *out);

/* What a program's outputs tell of its run. */
typedef struct study_info {
    const char  *prog;         /* the program, for messages */
    const char  *cmd;          /* study_command (a static buffer) */
    double       t0, wall;     /* now_s() at the start; seconds */
    char         load0[64];    /* study_loadavg at the start */
    char         load1[64];    /* ... and at the end */
    study_totals tot;          /* at the end */
} study_info;

/* Start a run: the command line, the time and the load average into in,
 * then study_open. */
int  study_begin(const char *prog, const char *db, int argc, char **argv, study_info *in,
                 study **out);

/* A program's outputs of its results S (its own type, as study_finish is
 * given it). json: 0 or -1; svgs: errors on stderr. */
typedef struct study_writers {
    void (*md)(FILE *f, const void *S, const study_info *in);
    int  (*json)(const char *path, const void *S, const study_info *in);
    void (*svgs)(const char *dir, const void *S);
} study_writers;

/* End a run whose jobs returned rc: the wall time, the load average and
 * the totals into in, st closed; then, unless a signal stopped the program
 * or rc is an error, the Markdown to o->md (or stdout), the JSON to
 * o->json and the plots into o->svg (each when given) and a closing line on
 * stderr. Returns the program's exit status: 0, 1 (an error, printed) or
 * 130 (a signal). */
int  study_finish(study *st, int rc, study_info *in, const study_opts *o,
                  const study_writers *w, const void *S);

/* The top of a study's Markdown: the title line ("# ..."), the command,
 * the run (date, wall time, cores, the totals) and the load averages. */
void study_md_head(FILE *f, const char *title, const study_info *in);

/* Write a study's JSON to path: {"study": name, "command", "date",
 * "wall_seconds", "totals", the members of fields in their order (stolen),
 * "loadavg_start", "loadavg_end"}. 0 or -1. */
int  study_json_write(const char *path, const char *name, const study_info *in,
                      json_t *fields);

/* Write p, a plot of relative top-1 (p's title, xlabel and series set by
 * the caller), to the file fmt names in dir, with what the studies' plots
 * share: the y axis "relative top-1 (quantized / float)" in %, the float
 * line at 1, 760 px wide. Errors (a path too long, the write) on stderr. */
__attribute__((format(printf, 4, 5)))
void study_svg(const char *prog, qt_plot *p, const char *dir, const char *fmt, ...);

#endif
