/*
 * bench_quant.c -- throughput of qt_quantize per type and rounding mode.
 *
 * Elements per second for a buffer of N float32 (default 16 Mi) per format
 * and rounding mode, on 1 and 2 OpenMP threads, beside two baselines timed
 * in the same run on the same buffer size:
 *   memcpy      dst <- src, 4N bytes; with T threads each copies 1/T of it
 *   inplace_rw  x[i] = x[i] * s (s a volatile 1.0f), the read+write traffic
 *               of one buffer, which is what an in-place quantize does
 * The target ratios (from the issue) are against memcpy: nearest rounding of
 * fixed and float at >= 50 % of memcpy's rate on 2 threads, stochastic
 * >= 25 %. Both ratios are printed.
 *
 * Every repetition refills the work buffer from a pristine copy (untimed),
 * then times one qt_quantize over it. After an untimed warm-up run of each
 * case the result is checked against qt_quantize_ref (a sample of windows,
 * bitwise, NaN == NaN; whole-array for tensor-fitted types) and against the
 * other thread count (results must not depend on threads); any mismatch is a
 * real error and ends the program with a non-zero status. Timings never do.
 *
 *   bench_quant [--quick] [--n N] [--reps R] [--json FILE]
 *
 * stdout is a Markdown table; --json writes everything (jansson).
 */
#define _GNU_SOURCE
#include "quant.h"
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS     1000
#define NTHREADS     2                 /* thread counts 1..NTHREADS */
#define CLUSTER_MAXN (1u << 20)        /* cluster is timed on at most 1 Mi */
#define SLOW_SECONDS 1.5               /* warm-up slower than this: <= 3 reps */
#define BUSY_FACTOR  2.0               /* memcpy this much slower than its best */
#define BUSY_SLACK_S 0.5e-3            /* ... and at least this much slower: a time
                                          slice lost to another process costs
                                          ms; cache state and timer noise on
                                          small buffers cost less */
#define MAX_WAITS    10                /* 0.3 s pauses waiting for a quiet machine, */
#define WAIT_BUDGET  200               /* per case and in all */

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_quant: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static float *alloc_floats(size_t n)
{
    size_t bytes = n * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) die("out of memory allocating %zu bytes", bytes);
    return p;
}

/* best and median of t[0..r) (t is sorted in place) */
static void best_median(double *t, int r, double *best, double *median)
{
    qsort(t, (size_t)r, sizeof *t, cmp_double);
    *best = t[0];
    *median = r % 2 ? t[r / 2] : 0.5 * (t[r / 2 - 1] + t[r / 2]);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t fbits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

/* bitwise equality, any NaN equal to any NaN */
static int same(float a, float b)
{
    return (isnan(a) && isnan(b)) || fbits(a) == fbits(b);
}

/* order-dependent hash of the bits, NaNs canonicalised */
static uint64_t hash_floats(const float *x, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = isnan(x[i]) ? 0x7fc00000u : fbits(x[i]);
        h = (h ^ b) * 0x100000001b3ull;
    }
    return h;
}

/* copy with the current OpenMP thread count, each thread one slice */
static void par_copy(float *restrict dst, const float *restrict src, size_t n)
{
    #pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        memcpy(dst + lo, src + lo, (hi - lo) * sizeof *dst);
    }
}

static volatile float g_scale = 1.0f;

/* the in-place read+write baseline: x[i] *= s, s unknown to the compiler */
static void inplace_rw(float *restrict x, size_t n)
{
    const float s = g_scale;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] * s;
}

/* ------------------------------------------------------------------------ */
/* input data                                                               */
/* ------------------------------------------------------------------------ */

/* Normal(0,1) by Box-Muller from a fixed-seed generator; 2 % exact zeros,
 * 0.1 % outliers (x * 64, to exercise saturation), and a few specials
 * (NaN, +-inf, subnormals, +-0) in the first 1024 elements, which the
 * correctness check always covers. */
static void fill_data(float *x, size_t n)
{
    uint64_t s = 0x5eed2024ull;
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        uint64_t a = splitmix64(&s), b = splitmix64(&s);
        double u1 = ((double)(a >> 11) + 1.0) * 0x1p-53;   /* (0,1] */
        double u2 = (double)(b >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1));
        double z[2] = { r * cos(two_pi * u2), r * sin(two_pi * u2) };
        for (int j = 0; j < 2 && i + (size_t)j < n; j++) {
            uint32_t c = (uint32_t)(splitmix64(&s) >> 32) % 1000u;
            float v = (float)z[j];
            if (c < 20) v = 0.0f;
            else if (c == 20) v *= 64.0f;
            x[i + (size_t)j] = v;
        }
    }
    const float specials[] = { NAN, -NAN, INFINITY, -INFINITY, 0x1p-140f,
                               -0x1p-149f, -0.0f, 0.0f, 3.5f, -3.5f, 0.03125f,
                               1e30f, -1e30f, 0x1.fffffep127f };
    size_t ns = sizeof specials / sizeof specials[0];
    for (size_t k = 0; k < ns && 37 * k + 5 < n; k++)
        x[37 * k + 5] = specials[k];
}

/* ------------------------------------------------------------------------ */
/* cases                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const MODES[] = { "rne", "rna", "sr", "rd", "rz" };
#define NMODES 5

typedef struct spec {
    const char *base;     /* format text without a rounding mode */
    int rounds;           /* 1: one case per rounding mode */
    unsigned modes;       /* bit m set: MODES[m] included (quick mode) */
} spec;

static const spec FULL[] = {
    { "fixed<8,4>", 1, 0x1f },
    { "fixed<16,8>", 1, 0x1f },
    { "ufixed<8,8>", 1, 0x1f },
    { "float<8,e4,b7>", 1, 0x1f },
    { "float<8,e4,b7,fn>", 1, 0x1f },
    { "float<16,e5,b15>", 1, 0x1f },
    { "float<16,e8,b127>", 1, 0x1f },
    { "log<4,b3>", 1, 0x1f },
    { "binary", 0, 0 },
    { "ternary<auto>", 0, 0 },
    { "sparse<0.01>", 0, 0 },
    { "mxfp8", 0, 0 },
    { "mxfp4", 0, 0 },
    { "mxint8", 0, 0 },
    { "cluster<4>", 0, 0 },
    { "none", 0, 0 },
};

static const spec QUICK[] = {
    { "fixed<8,4>", 1, 1u << 0 | 1u << 2 },
    { "float<8,e4,b7>", 1, 1u << 0 | 1u << 2 },
    { "float<16,e5,b15>", 1, 1u << 0 },
    { "float<16,e8,b127>", 1, 1u << 0 },
    { "mxfp8", 0, 0 },
    { "log<4,b3>", 1, 1u << 0 },
};

/* short names for the table, for the formats the issue names */
static const char *nickname(const char *base)
{
    if (!strcmp(base, "float<16,e5,b15>")) return "fp16";
    if (!strcmp(base, "float<16,e8,b127>")) return "bf16";
    if (!strcmp(base, "float<8,e4,b7>")) return "fp8 e4m3 ieee";
    if (!strcmp(base, "float<8,e4,b7,fn>")) return "fp8 e4m3 fn";
    return NULL;
}

typedef struct result {
    char text[QT_TEXT_MAX + 16];   /* what was parsed */
    char canon[QT_TEXT_MAX];       /* qt_format_print */
    char base[QT_TEXT_MAX];
    const char *mode;              /* NULL: the type has no rounding mode */
    qt_format f;
    size_t n;
    int threads, reps;
    double best, median;
    int waits;                     /* times we waited for a quiet machine */
    double local_mc;               /* best memcpy sample taken beside it */
} result;

/* "fixed<8,4>" + "sr" -> "fixed<8,4,sr>"; "binary" + NULL -> "binary" */
static void case_text(char *out, size_t size, const char *base, const char *mode)
{
    size_t len = strlen(base);
    if (!mode)
        snprintf(out, size, "%s", base);
    else if (len && base[len - 1] == '>')
        snprintf(out, size, "%.*s,%s>", (int)(len - 1), base, mode);
    else
        snprintf(out, size, "%s<%s>", base, mode);
}

/* ------------------------------------------------------------------------ */
/* correctness check against the reference path                             */
/* ------------------------------------------------------------------------ */

/* Compare out[] (qt_quantize of in[] with sr) with qt_quantize_ref.
 * Element-wise types: windows of 1024 at the start, the end and a few
 * unaligned places (block types: aligned to the block size) against the
 * reference on the same window with the stream offset moved along.
 * Tensor-fitted types (ternary auto, cluster): the reference on the whole
 * array, into scratch. Returns the number of mismatches (first few shown). */
static size_t verify(const qt_format *f, const char *text, const float *in,
                     const float *out, size_t n, const qt_sr *sr, float *scratch)
{
    size_t bad = 0;
    int whole = f->type == QT_CLUSTER ||
                (f->type == QT_TERNARY && (f->flags & QT_F_AUTO));
    if (whole) {
        memcpy(scratch, in, n * sizeof *in);
        qt_quantize_ref(f, scratch, n, sr);
        for (size_t i = 0; i < n; i++)
            if (!same(out[i], scratch[i]) && bad++ < 5)
                fprintf(stderr, "  %s: x[%zu]=%a: fast %a, ref %a\n",
                        text, i, (double)in[i], (double)out[i], (double)scratch[i]);
        return bad;
    }
    size_t align = f->type == QT_BLOCK ? f->block : 1, win = 1024;
    if (f->type == QT_BLOCK) win = (win + align - 1) / align * align;
    size_t starts[7] = { 0, n / 2 + 3, n / 3 + 1001, n / 7 + 17,
                         (n / 5) * 4 + 5, n > win ? n - win : 0, 65521 };
    for (int w = 0; w < 7; w++) {
        size_t s = starts[w] / align * align, len;
        if (s >= n) continue;
        len = n - s < win ? n - s : win;
        qt_sr r = sr ? *sr : (qt_sr){ 0, 0, 0 };
        r.offset += s;
        memcpy(scratch, in + s, len * sizeof *in);
        qt_quantize_ref(f, scratch, len, &r);
        for (size_t i = 0; i < len; i++)
            if (!same(out[s + i], scratch[i]) && bad++ < 5)
                fprintf(stderr, "  %s: x[%zu]=%a: fast %a, ref %a\n", text,
                        s + i, (double)in[s + i], (double)out[s + i],
                        (double)scratch[i]);
    }
    return bad;
}

/* ------------------------------------------------------------------------ */
/* baselines                                                                */
/* ------------------------------------------------------------------------ */

/* All timings of one baseline at one thread count, in the order taken:
 * base_reps at the start, a couple before every case, base_reps at the end.
 * The ratio uses the best over the whole run (the machine's capability);
 * start and end are kept to show drift. */
typedef struct samples {
    double *t;
    size_t n, cap;
} samples;

static void push(samples *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *t = realloc(s->t, cap * sizeof *t);
        if (!t) die("out of memory");
        s->t = t;
        s->cap = cap;
    }
    s->t[s->n++] = v;
}

/* best and median of s->t[from..to) */
static void stats(const samples *s, size_t from, size_t to, double *best,
                  double *median)
{
    size_t m = to - from;
    double *c = malloc((m ? m : 1) * sizeof *c);
    if (!c) die("out of memory");
    memcpy(c, s->t + from, m * sizeof *c);
    best_median(c, (int)m, best, median);
    free(c);
}

/* a memcpy sample taken beside a case says the machine was busy */
static int is_busy(double beside, double best)
{
    return beside > BUSY_FACTOR * best && beside > best + BUSY_SLACK_S;
}

enum { B_MEMCPY, B_RW, NBASE };
static const char *const BASE_NAME[NBASE] = { "memcpy", "inplace_rw" };

/* reps timings of each baseline on the current OpenMP thread count, each
 * after one untimed run, so that cache and thread wake-up state are the same
 * whether it follows another baseline or a quantize case */
static void time_baselines(samples *mc, samples *rw, const float *src,
                           float *dst, size_t n, int reps)
{
    par_copy(dst, src, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        #pragma omp parallel
        {
            size_t i = (size_t)omp_get_thread_num();
            size_t nt = (size_t)omp_get_num_threads();
            size_t lo = n * i / nt, hi = n * (i + 1) / nt;
            memcpy(dst + lo, src + lo, (hi - lo) * sizeof *dst);
        }
        push(mc, now_s() - t0);
    }
    if (memcmp(dst, src, n * sizeof *dst) != 0)
        die("memcpy baseline produced a wrong copy");
    inplace_rw(dst, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        inplace_rw(dst, n);
        push(rw, now_s() - t0);
    }
    if (memcmp(dst, src, n * sizeof *dst) != 0)
        die("in-place baseline changed the data");
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fprintf(to,
        "usage: bench_quant [--quick] [--n N] [--reps R] [--json FILE]\n"
        "  --quick     N = 2 Mi, R = 2, a few formats (demo)\n"
        "  --n N       elements per buffer (default 16777216)\n"
        "  --reps R    timed repetitions per case (default 5)\n"
        "  --json FILE write all results as JSON\n");
}

static int parse_size(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static const char *pct(char *buf, size_t size, double r)
{
    snprintf(buf, size, "%.1f %%", 100.0 * r);
    return buf;
}

int main(int argc, char **argv)
{
    int quick = 0;
    long long n_opt = -1, reps_opt = -1;
    const char *json_path = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            if (parse_size(argv[++i], 1, 1LL << 32, &n_opt)) {
                fprintf(stderr, "bench_quant: --n wants 1..2^32, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            if (parse_size(argv[++i], 1, MAX_REPS, &reps_opt)) {
                fprintf(stderr, "bench_quant: --reps wants 1..%d, not '%s'\n",
                        MAX_REPS, argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_quant: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    size_t n = n_opt > 0 ? (size_t)n_opt : quick ? (size_t)2 << 20 : (size_t)16 << 20;
    int reps = reps_opt > 0 ? (int)reps_opt : quick ? 2 : 5;
    int base_reps = reps < 5 ? 5 : reps;          /* baselines are cheap */
    const spec *specs = quick ? QUICK : FULL;
    size_t nspecs = quick ? sizeof QUICK / sizeof QUICK[0] : sizeof FULL / sizeof FULL[0];
    size_t n_cluster = n < CLUSTER_MAXN ? n : CLUSTER_MAXN;
    qt_sr sr = { 0x0123456789abcdefull, 42, 0 };
    int procs = omp_get_num_procs();
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    char cpu[256], date[64];
    time_t tnow = time(NULL);
    struct tm tm;

    cpu_model(cpu, sizeof cpu);
    gmtime_r(&tnow, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);

    /* ---- cases: parse everything first (a parse failure is an error) ---- */
    size_t ncases = 0, cap = nspecs * NMODES * NTHREADS;
    result *res = calloc(cap, sizeof *res);
    if (!res) die("out of memory");
    for (size_t s = 0; s < nspecs; s++) {
        for (int m = 0; m < (specs[s].rounds ? NMODES : 1); m++) {
            if (specs[s].rounds && !(specs[s].modes & (1u << m))) continue;
            const char *mode = specs[s].rounds ? MODES[m] : NULL;
            qt_format f;
            qt_error err;
            char text[QT_TEXT_MAX + 16];
            case_text(text, sizeof text, specs[s].base, mode);
            if (qt_format_parse(text, &f, &err) != QT_OK)
                die("cannot parse format '%s': %s", text, err.text);
            for (int th = 1; th <= NTHREADS; th++) {
                result *r = &res[ncases++];
                snprintf(r->text, sizeof r->text, "%s", text);
                qt_format_print(&f, r->canon, sizeof r->canon);
                snprintf(r->base, sizeof r->base, "%s", specs[s].base);
                r->mode = mode;
                r->f = f;
                r->threads = th;
                r->n = f.type == QT_CLUSTER ? n_cluster : n;
            }
        }
    }

    /* ---- buffers, filled and touched before any timing ---- */
    float *pristine = alloc_floats(n), *work = alloc_floats(n);
    float *dst = alloc_floats(n);
    omp_set_num_threads(NTHREADS);
    fill_data(pristine, n);
    par_copy(work, pristine, n);
    par_copy(dst, pristine, n);

    printf("# bench_quant\n\n");
    printf("- CPU: %s, %d logical CPUs (OpenMP), threads 1..%d\n", cpu, procs, NTHREADS);
    printf("- N = %zu float32 (%.1f MiB per buffer), reps = %d per case "
           "(best and median shown)%s\n",
           n, (double)n * 4.0 / (1 << 20), reps, quick ? ", --quick" : "");
    printf("- L3 per sysconf: %ld KiB (in a VM possibly the host's total); memcpy "
           "touches %.1f MiB\n", l3 / 1024, 8.0 * (double)n / (1 << 20));
    printf("- date: %s\n", date);
    if (procs < NTHREADS)
        printf("- WARNING: fewer CPUs than threads; 2-thread numbers are "
               "oversubscribed\n");
    fflush(stdout);

    /* ---- baselines at the start of the run ---- */
    samples base[NBASE][NTHREADS + 1];
    size_t start_end[NTHREADS + 1];     /* samples before the end round */
    memset(base, 0, sizeof base);
    for (int th = 1; th <= NTHREADS; th++) {
        omp_set_num_threads(th);
        time_baselines(&base[B_MEMCPY][th], &base[B_RW][th],
                       pristine, dst, n, base_reps);
    }

    /* ---- the cases ---- */
    double t[MAX_REPS];
    uint64_t hash1 = 0;
    int waits_total = 0;
    double t_all = now_s();
    for (size_t c = 0; c < ncases; c++) {
        result *r = &res[c];
        size_t nn = r->n;
        double warm;
        omp_set_num_threads(r->threads);

        /* untimed warm-up run, then the correctness checks */
        par_copy(work, pristine, nn);
        warm = now_s();
        qt_quantize(&r->f, work, nn, &sr);
        warm = now_s() - warm;
        size_t bad = verify(&r->f, r->text, pristine, work, nn, &sr, dst);
        if (bad) {
            fprintf(stderr, "bench_quant: %s (%d threads): %zu element(s) differ "
                    "from qt_quantize_ref; not benchmarking a broken fast path\n",
                    r->text, r->threads, bad);
            return 1;
        }
        uint64_t h = hash_floats(work, nn);
        if (r->threads == 1) hash1 = h;
        else if (h != hash1) {
            fprintf(stderr, "bench_quant: %s: result on %d threads differs from "
                    "1 thread (the contract says it must not)\n", r->text, r->threads);
            return 1;
        }

        /* Baseline samples right beside the case. If memcpy is now much
         * slower than its best so far, something else is using the machine:
         * wait a little and look again (a few seconds at most). */
        samples *mcs = &base[B_MEMCPY][r->threads], *rws = &base[B_RW][r->threads];
        double before = 0.0, after, dummy2;
        for (r->waits = 0;; r->waits++) {
            double sofar, b2;
            size_t k0 = mcs->n;
            stats(mcs, 0, k0, &sofar, &dummy2);
            time_baselines(mcs, rws, pristine, dst, n, 2);
            stats(mcs, k0, mcs->n, &b2, &dummy2);
            before = b2;
            if (!is_busy(b2, sofar) ||
                r->waits == MAX_WAITS || waits_total == WAIT_BUDGET)
                break;
            waits_total++;
            nanosleep(&(struct timespec){ 0, 300000000L }, NULL);
        }

        r->reps = warm > SLOW_SECONDS && reps > 3 ? 3 : reps;
        for (int k = 0; k < r->reps; k++) {
            par_copy(work, pristine, nn);            /* untimed refill */
            double t0 = now_s();
            qt_quantize(&r->f, work, nn, &sr);
            t[k] = now_s() - t0;
        }
        best_median(t, r->reps, &r->best, &r->median);

        /* and after: memcpy just before and just after the case (the worse
         * of the two) tells whether the machine stayed quiet while it ran */
        size_t k1 = mcs->n;
        time_baselines(mcs, rws, pristine, dst, n, 2);
        stats(mcs, k1, mcs->n, &after, &dummy2);
        r->local_mc = before > after ? before : after;
    }
    t_all = now_s() - t_all;

    /* ---- baselines at the end of the run ---- */
    for (int th = 1; th <= NTHREADS; th++) {
        omp_set_num_threads(th);
        start_end[th] = base[B_MEMCPY][th].n;
        time_baselines(&base[B_MEMCPY][th], &base[B_RW][th],
                       pristine, dst, n, base_reps);
    }

    /* best and median over the run; best of the start and end rounds */
    double bbest[NBASE][NTHREADS + 1], bmed[NBASE][NTHREADS + 1];
    double bstart[NBASE][NTHREADS + 1], bend[NBASE][NTHREADS + 1], dummy;
    for (int k = 0; k < NBASE; k++)
        for (int th = 1; th <= NTHREADS; th++) {
            const samples *sp = &base[k][th];
            stats(sp, 0, sp->n, &bbest[k][th], &bmed[k][th]);
            stats(sp, 0, (size_t)base_reps, &bstart[k][th], &dummy);
            stats(sp, start_end[th], sp->n, &bend[k][th], &dummy);
        }
#define RATE(k, th) ((double)n / bbest[k][th])

    /* ---- table ---- */
    char p1[32], p2[32];
    int nbusy = 0;
    printf("\n## Baselines (N = %zu; best of %zu samples taken through the run)\n\n",
           n, base[B_MEMCPY][1].n);
    printf("| baseline | threads | Gelem/s | GB/s moved | best ms | median ms | "
           "start ms | end ms |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int th = 1; th <= NTHREADS; th++)
        for (int k = 0; k < NBASE; k++)
            printf("| %s | %d | %.3f | %.1f | %.2f | %.2f | %.2f | %.2f |\n",
                   k == B_MEMCPY ? "memcpy (dst <- src)" : "in-place x *= s",
                   th, RATE(k, th) * 1e-9, 8.0 * RATE(k, th) * 1e-9,
                   1e3 * bbest[k][th], 1e3 * bmed[k][th],
                   1e3 * bstart[k][th], 1e3 * bend[k][th]);
    for (int th = 1; th <= NTHREADS; th++) {
        double d = bend[B_MEMCPY][th] / bstart[B_MEMCPY][th];
        if (d > 1.15 || d < 1 / 1.15)
            printf("\nNOTE: memcpy on %d thread(s) took %.2f times as long at the "
                   "end as at the start: the machine was probably busy; ratios are "
                   "noisy.\n", th, d);
    }

    printf("\n## qt_quantize (in place; best of reps; %% of the baseline at the same "
           "thread count)\n\n");
    printf("| format | canonical | mode | threads | n | best ms | median ms | "
           "Gelem/s | %% of memcpy | %% of in-place |\n");
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t c = 0; c < ncases; c++) {
        result *r = &res[c];
        double rate = (double)r->n / r->best;
        double rm = rate / RATE(B_MEMCPY, r->threads);
        double rr = rate / RATE(B_RW, r->threads);
        const char *nick = nickname(r->base);
        char nbuf[64], gbuf[32];
        int noop = r->f.type == QT_NONE;
        int busy = is_busy(r->local_mc, bbest[B_MEMCPY][r->threads]);
        nbusy += busy;
        snprintf(nbuf, sizeof nbuf, "%zu%s%s", r->n,
                 r->n < n && r->f.type == QT_CLUSTER ? " (cluster: 1 Mi)" : "",
                 r->reps < reps ? " (3 reps: slow)" : "");
        snprintf(gbuf, sizeof gbuf, "%.3f", rate * 1e-9);
        printf("| %s%s%s%s | %s | %s | %d | %s | %.2f | %.2f | %s | %s%s | %s |\n",
               r->base, nick ? " (" : "", nick ? nick : "", nick ? ")" : "",
               r->canon, r->mode ? r->mode : "-", r->threads, nbuf,
               1e3 * r->best, 1e3 * r->median, noop ? "no-op" : gbuf,
               noop ? "-" : pct(p1, sizeof p1, rm), busy ? " (busy)" : "",
               noop ? "-" : pct(p2, sizeof p2, rr));
    }
    if (nbusy)
        printf("\n(busy): memcpy beside this case was over %.1f times (and %.1f ms) "
               "slower than its best; another process was probably running, so "
               "the row is pessimistic. %d row(s).\n", BUSY_FACTOR,
               1e3 * BUSY_SLACK_S, nbusy);
    if (nbusy * 4 > (int)ncases)
        printf("\nWARNING: over a quarter of the rows ran on a busy machine; "
               "rerun on an idle one before reading the targets.\n");
    printf("\nAll %zu cases checked against qt_quantize_ref (sampled windows; whole "
           "array for ternary auto and cluster) and 1 vs %d threads: identical.\n"
           "`none` is the identity and does no work (a function call). "
           "Time in cases: %.1f s, of which %.1f s waiting for a quiet machine.\n",
           ncases, NTHREADS, t_all, 0.3 * waits_total);

    /* ---- targets ---- */
    static const struct { const char *base, *mode; double target; int primary; } TG[] = {
        { "fixed<8,4>", "rne", 0.50, 1 }, { "float<8,e4,b7>", "rne", 0.50, 1 },
        { "float<16,e5,b15>", "rne", 0.50, 1 },
        { "fixed<8,4>", "sr", 0.25, 1 }, { "float<8,e4,b7>", "sr", 0.25, 1 },
        { "float<16,e5,b15>", "sr", 0.25, 1 },
        { "fixed<16,8>", "rne", 0.50, 0 }, { "ufixed<8,8>", "rne", 0.50, 0 },
        { "float<8,e4,b7,fn>", "rne", 0.50, 0 }, { "float<16,e8,b127>", "rne", 0.50, 0 },
        { "fixed<16,8>", "sr", 0.25, 0 }, { "ufixed<8,8>", "sr", 0.25, 0 },
        { "float<8,e4,b7,fn>", "sr", 0.25, 0 }, { "float<16,e8,b127>", "sr", 0.25, 0 },
    };
    size_t ntg = sizeof TG / sizeof TG[0];
    json_t *jtargets = json_array();
    int met_primary = 0, n_primary = 0;
    printf("\n## Targets (%d threads, vs memcpy on %d threads; nearest >= 50 %%, "
           "stochastic >= 25 %%)\n\n", NTHREADS, NTHREADS);
    printf("| format | mode | %% of memcpy | target | result |\n"
           "|---|---|---:|---:|---|\n");
    for (size_t k = 0; k < ntg; k++) {
        result *r = NULL;
        for (size_t c = 0; c < ncases; c++)
            if (!strcmp(res[c].base, TG[k].base) && res[c].mode &&
                !strcmp(res[c].mode, TG[k].mode) && res[c].threads == NTHREADS)
                r = &res[c];
        if (!r) {
            if (TG[k].primary)
                printf("| %s | %s | - | %.0f %% | not run |\n", TG[k].base,
                       TG[k].mode, 100 * TG[k].target);
            continue;
        }
        double ratio = ((double)r->n / r->best) / RATE(B_MEMCPY, NTHREADS);
        int met = ratio >= TG[k].target;
        if (TG[k].primary) { n_primary++; met_primary += met; }
        int busy = is_busy(r->local_mc, bbest[B_MEMCPY][NTHREADS]);
        printf("| %s%s | %s | %s | %.0f %% | %s%s |\n", TG[k].base,
               TG[k].primary ? "" : " (other)", TG[k].mode,
               pct(p1, sizeof p1, ratio), 100 * TG[k].target,
               met ? "MET" : "NOT MET", busy ? " (busy: rerun)" : "");
        json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:f, s:b, s:b, s:b}",
                              "format", r->canon, "mode", r->mode,
                              "threads", NTHREADS, "ratio_memcpy", ratio,
                              "target", TG[k].target, "met", met,
                              "named_in_issue", TG[k].primary, "busy", busy);
        if (!o || json_array_append_new(jtargets, o))
            die("out of memory building JSON");
    }
    printf("\n%d of %d named targets met (the program exits 0 either way).\n",
           met_primary, n_primary);
    fflush(stdout);

    /* ---- JSON ---- */
    int rc = 0;
    if (json_path) {
        json_t *jcases = json_array(), *jbase = json_array();
        if (!jcases || !jbase || !jtargets) die("out of memory building JSON");
        for (int th = 1; th <= NTHREADS; th++)
            for (int k = 0; k < NBASE; k++) {
                json_t *a = json_pack("{s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f}",
                                      "name", BASE_NAME[k], "threads", th,
                                      "n", (json_int_t)n,
                                      "samples", (json_int_t)base[k][th].n,
                                      "best_s", bbest[k][th], "median_s", bmed[k][th],
                                      "gelem_s", RATE(k, th) * 1e-9,
                                      "start_best_s", bstart[k][th],
                                      "end_best_s", bend[k][th]);
                if (!a || json_array_append_new(jbase, a))
                    die("out of memory building JSON");
            }
        for (size_t c = 0; c < ncases; c++) {
            result *r = &res[c];
            double rate = (double)r->n / r->best;
            json_t *o = json_pack(
                "{s:s, s:s, s:s, s:o?, s:s?, s:i, s:I, s:i, s:f, s:f, s:f, s:f, "
                "s:f, s:f, s:f, s:i, s:b, s:b}",
                "format", r->canon, "text", r->text, "base", r->base,
                "format_json", qt_format_to_json(&r->f), "mode", r->mode,
                "threads", r->threads, "n", (json_int_t)r->n, "reps", r->reps,
                "best_s", r->best, "median_s", r->median,
                "gelem_s", rate * 1e-9, "gelem_s_median", (double)r->n / r->median * 1e-9,
                "ratio_memcpy", rate / RATE(B_MEMCPY, r->threads),
                "ratio_inplace_rw", rate / RATE(B_RW, r->threads),
                "memcpy_beside_s", r->local_mc, "quiet_waits", r->waits,
                "busy", is_busy(r->local_mc, bbest[B_MEMCPY][r->threads]),
                "verified", 1);
            if (!o || json_array_append_new(jcases, o))
                die("out of memory building JSON");
        }
        json_t *root = json_pack(
            "{s:s, s:s, s:{s:s, s:i, s:I, s:I}, s:I, s:I, s:i, s:i, s:b, s:[i,i], "
            "s:{s:I, s:I, s:I}, s:o, s:o, s:o, s:f, s:f, s:f}",
            "benchmark", "bench_quant", "date", date,
            "machine", "cpu", cpu, "omp_procs", procs,
            "online_cpus", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN),
            "l3_bytes", (json_int_t)l3,
            "n", (json_int_t)n, "cluster_n", (json_int_t)n_cluster,
            "reps", reps, "baseline_reps", base_reps, "quick", quick,
            "threads", 1, 2,
            "sr", "seed", (json_int_t)sr.seed, "stream", (json_int_t)sr.stream,
            "offset", (json_int_t)sr.offset,
            "baselines", jbase, "cases", jcases, "targets", jtargets,
            "seconds_in_cases", t_all, "seconds_waiting_for_quiet", 0.3 * waits_total,
            "busy_factor", BUSY_FACTOR);
        if (!root) die("cannot build the JSON document");
        if (json_dump_file(root, json_path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
            fprintf(stderr, "bench_quant: cannot write %s: %s\n", json_path,
                    strerror(errno));
            rc = 1;
        } else {
            fprintf(stderr, "bench_quant: wrote %s\n", json_path);
        }
        json_decref(root);
    } else {
        json_decref(jtargets);
    }

    for (int k = 0; k < NBASE; k++)
        for (int th = 1; th <= NTHREADS; th++) free(base[k][th].t);
    free(pristine); free(work); free(dst); free(res);
    return rc;
}
