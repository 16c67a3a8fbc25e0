/* internal.h -- private to quant/: the per-type traits table and helpers. */
#ifndef QT_QUANT_INTERNAL_H
#define QT_QUANT_INTERNAL_H

#include "quant.h"
#include <math.h>
#include <string.h>

/* A format as read from text or JSON before defaults and checks: each field
 * has a "given" flag so a type can reject what does not apply to it. */
typedef struct qt_spec {
    int       type;
    int       has_w, w;          /* width */
    int       has_f, f;          /* fixed: fractional bits */
    int       has_e, e;          /* float: exponent bits */
    int       has_b, b;          /* bias */
    int       has_t;             /* threshold given */
    double    t;                 /* threshold value */
    int       t_auto;            /* ternary: auto threshold */
    int       has_k, k;          /* block size */
    int       has_elem;          /* block: element format given */
    qt_format elem;
    int       round;             /* -1: not given */
    int       overflow;          /* -1: not given */
    int       sym;               /* fixed: sign-magnitude given */
    int       nosub;             /* float: no subnormals given */
    int       specials;          /* float: -1 not given, 0 ieee, QT_F_FN, QT_F_FINITE */
} qt_spec;

/* One row per type. Functions a type does not need are NULL. */
typedef struct qt_traits {
    const char *name;
    /* positional arguments in text form: 'W' width, 'F' frac, 'T' threshold,
     * 'E' element format, 'K' block size */
    const char *positional;
    /* spec -> format with defaults; rejects fields that do not apply */
    int (*build)(const qt_spec *s, qt_format *f, qt_error *err);
    /* validity of a built format */
    int (*check)(const qt_format *f, qt_error *err);
    /* scalar reference on an exact double input; NULL for tensor-fitted */
    double (*ref)(const qt_format *f, double x, uint32_t r);
    /* array quantization (fast path); NULL: element-wise ref */
    void (*array)(const qt_format *f, float *x, size_t n, const qt_sr *sr);
    /* array quantization (reference path); NULL: element-wise ref */
    void (*array_ref)(const qt_format *f, float *x, size_t n, const qt_sr *sr);
    /* largest finite, lowest finite, smallest positive */
    void (*limits)(const qt_format *f, double *max, double *lowest, double *minpos);
    double (*step)(const qt_format *f, double mag);
    double (*bits)(const qt_format *f);
    /* bias for absmax: the finest that holds it */
    int (*fit)(qt_format *f, double absmax);
    int (*print)(const qt_format *f, char *buf, size_t size);
    void (*to_json)(const qt_format *f, json_t *obj);
} qt_traits;

const qt_traits *qt__traits(int type);

/* errors: the public qt_errorf under the module's short name */
#define qt__fail qt_errorf

/* rounding of a double to an integer, by mode; r is the random word */
static inline double qt__round_int(double s, int mode, uint32_t r)
{
    switch (mode) {
    case QT_RNE: return rint(s);
    case QT_RNA: return round(s);
    case QT_RD:  return floor(s);
    case QT_RZ:  return trunc(s);
    default: {
        double fl = floor(s);
        double u = (double)(r >> 8) * 0x1p-24;
        /* copysign: a negative value rounded up to zero is -0, as in
         * every other mode */
        return copysign(u < s - fl ? fl + 1.0 : fl, s);
    }
    }
}

/* float parameters, derived once */
typedef struct qt_fparams {
    int    M;        /* mantissa bits */
    int    emin;     /* exponent of the smallest normal */
    int    emax;     /* exponent of the largest finite binade */
    double maxval;   /* largest finite value */
    int    sub;      /* subnormals on */
} qt_fparams;

void qt__float_params(const qt_format *f, qt_fparams *p);

/* the scalar references the kernels and bit-true arithmetic reuse */
double qt__fixed_ref(const qt_format *f, double x, uint32_t r);
double qt__float_ref(const qt_format *f, double x, uint32_t r);

/* fast kernels (kernels.c) */
void qt__fixed_array(const qt_format *f, float *x, size_t n, const qt_sr *sr);
void qt__float_array(const qt_format *f, float *x, size_t n, const qt_sr *sr);
int  qt__float_fast_ok(const qt_format *f);

/* random: key from (seed, stream), then a word per index -- the public
 * generator of quant.h (qt_rand_key, qt_rand32_k) under the kernels' names */
typedef qt_rkey qt_key;
#define qt__key(seed, stream) qt_rand_key(seed, stream)
#define qt__mix32(x) qt_rand_mix32_(x)
#define qt__rand_k(k, index) qt_rand32_k(k, index)

static inline float qt__bits2f(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint32_t qt__f2bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

/* per-type text/JSON functions (format.c) */
int qt__print_none(const qt_format *, char *, size_t);
int qt__print_fixed(const qt_format *, char *, size_t);
int qt__print_float(const qt_format *, char *, size_t);
int qt__print_log(const qt_format *, char *, size_t);
int qt__print_binary(const qt_format *, char *, size_t);
int qt__print_ternary(const qt_format *, char *, size_t);
int qt__print_cluster(const qt_format *, char *, size_t);
int qt__print_block(const qt_format *, char *, size_t);
int qt__print_sparse(const qt_format *, char *, size_t);
void qt__json_none(const qt_format *, json_t *);
void qt__json_fixed(const qt_format *, json_t *);
void qt__json_float(const qt_format *, json_t *);
void qt__json_log(const qt_format *, json_t *);
void qt__json_scale(const qt_format *, json_t *);
void qt__json_ternary(const qt_format *, json_t *);
void qt__json_cluster(const qt_format *, json_t *);
void qt__json_block(const qt_format *, json_t *);
void qt__json_sparse(const qt_format *, json_t *);
int qt__build_none(const qt_spec *, qt_format *, qt_error *);
int qt__build_fixed(const qt_spec *, qt_format *, qt_error *);
int qt__build_float(const qt_spec *, qt_format *, qt_error *);
int qt__build_log(const qt_spec *, qt_format *, qt_error *);
int qt__build_binary(const qt_spec *, qt_format *, qt_error *);
int qt__build_ternary(const qt_spec *, qt_format *, qt_error *);
int qt__build_cluster(const qt_spec *, qt_format *, qt_error *);
int qt__build_block(const qt_spec *, qt_format *, qt_error *);
int qt__build_sparse(const qt_spec *, qt_format *, qt_error *);

/* put prefix in front of err->text (truncating the end) */
void qt__prefix(qt_error *err, const char *prefix);

/* largest float <= v in magnitude (v finite) */
float qt__to_float_rz(double v);

#endif
