/*
 * quant.c -- the per-type traits table and everything it drives: checking,
 * scalar reference quantizers, limits, steps, noise, bias fitting and the
 * array dispatch. Text and JSON forms live in format.c, fast array kernels
 * in kernels.c, codebooks in cluster.c.
 */
#include "internal.h"

#include <assert.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK 16384   /* elements per OpenMP work item */

/* ------------------------------------------------------------------------ */
/* Result codes and errors                                                  */
/* ------------------------------------------------------------------------ */

const char *qt_strerror(int rc)
{
    switch (rc) {
#define QT_RC_STR(name, val, msg) case val: return msg;
    QT_RC_MAP(QT_RC_STR)
#undef QT_RC_STR
    }
    return "unknown error";
}

int qt_errorf(qt_error *err, int rc, int pos, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
        err->pos = pos;
    }
    return rc;
}

void qt__prefix(qt_error *err, const char *prefix)
{
    size_t n, m;
    if (!err) return;
    n = strlen(prefix);
    m = strnlen(err->text, sizeof err->text - 1);
    if (n >= sizeof err->text) return;
    if (m > sizeof err->text - 1 - n) m = sizeof err->text - 1 - n;
    memmove(err->text + n, err->text, m);
    memcpy(err->text, prefix, n);
    err->text[n + m] = 0;
}

float qt__to_float_rz(double v)
{
    float f = (float)v;
    if (isfinite(v) && fabs((double)f) > fabs(v))
        f = nextafterf(f, 0.0f);
    return f;
}

/* ------------------------------------------------------------------------ */
/* Random words                                                             */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

qt_rkey qt_rand_key(uint64_t seed, uint64_t stream)
{
    uint64_t k = splitmix64(seed ^ splitmix64(stream + 0x51ed2701ull));
    qt_rkey key = { (uint32_t)k, (uint32_t)(k >> 32) };
    return key;
}

uint32_t qt_rand32(uint64_t seed, uint64_t stream, uint64_t index)
{
    return qt__rand_k(qt__key(seed, stream), index);
}

/* ------------------------------------------------------------------------ */
/* Shared checks                                                            */
/* ------------------------------------------------------------------------ */

static int check_width(const qt_format *f, int lo, int hi, qt_error *err)
{
    if (f->width == 0)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s: width 0: a format needs at least %d bit%s",
                        qt_type_name(f->type), lo, lo > 1 ? "s" : "");
    if (f->width > QT_MAX_WIDTH)
        return qt__fail(err, QT_EINVAL, -1, "%s: width %d exceeds %d bits",
                        qt_type_name(f->type), f->width, QT_MAX_WIDTH);
    if (f->width < lo || f->width > hi)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s: width %d out of range [%d, %d]",
                        qt_type_name(f->type), f->width, lo, hi);
    return QT_OK;
}

static int check_round(const qt_format *f, qt_error *err)
{
    if (f->round >= QT_ROUND_COUNT)
        return qt__fail(err, QT_EINVAL, -1, "%s: unknown rounding mode %d",
                        qt_type_name(f->type), f->round);
    return QT_OK;
}

/* fields a type does not use must be zero so equal formats compare equal */
#define U_E  (1 << 0)   /* ebits */
#define U_R  (1 << 1)   /* round */
#define U_O  (1 << 2)   /* overflow */
#define U_FL (1 << 3)   /* flags */
#define U_B  (1 << 4)   /* bias */
#define U_T  (1 << 5)   /* thresh */

static int check_unused(const qt_format *f, int used, qt_error *err)
{
    const char *what = NULL;
    if (!(used & U_E) && f->ebits) what = "exponent bits";
    else if (!(used & U_R) && f->round) what = "a rounding mode";
    else if (!(used & U_O) && f->overflow) what = "an overflow mode";
    else if (!(used & U_FL) && f->flags) what = "flags";
    else if (!(used & U_B) && f->bias) what = "a bias";
    else if (!(used & U_T) && f->thresh != 0.0f) what = "a threshold";
    else if (f->etype) what = "an element type";
    else if (f->block) what = "a block size";
    else if (f->pad_) what = "padding";
    if (what)
        return qt__fail(err, QT_EINVAL, -1, "%s takes no %s",
                        qt_type_name(f->type), what);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* none                                                                     */
/* ------------------------------------------------------------------------ */

static int none_check(const qt_format *f, qt_error *err)
{
    if (f->width != 32)
        return qt__fail(err, QT_EINVAL, -1, "none: width must be 32");
    return check_unused(f, 0, err);
}
static double none_ref(const qt_format *f, double x, uint32_t r)
{
    return (double)(float)x;
}
static void none_array(const qt_format *f, float *x, size_t n, const qt_sr *sr) {}
static void none_limits(const qt_format *f, double *mx, double *lo, double *mp)
{
    *mx = FLT_MAX; *lo = -FLT_MAX; *mp = 0x1p-149;
}
static double none_step(const qt_format *f, double m)
{
    int e;
    m = fabs(m);
    if (m < 0x1p-126) return 0x1p-149;
    frexp(m, &e);
    return ldexp(1.0, e - 1 - 23);
}
static double bits_width(const qt_format *f) { return f->width; }

/* ------------------------------------------------------------------------ */
/* fixed and ufixed                                                         */
/* ------------------------------------------------------------------------ */

static void fixed_qrange(const qt_format *f, double *qlo, double *qhi)
{
    int W = f->width;
    if (f->type == QT_UFIXED) {
        *qlo = 0.0;
        *qhi = ldexp(1.0, W) - 1.0;
    } else {
        *qhi = ldexp(1.0, W - 1) - 1.0;
        *qlo = (f->flags & QT_F_SYM) ? -*qhi : -ldexp(1.0, W - 1);
    }
}

static int fixed_check(const qt_format *f, qt_error *err)
{
    int sym = f->type == QT_FIXED && (f->flags & QT_F_SYM);
    int rc = check_width(f, sym ? 2 : 1, 32, err);
    if (rc) return rc;
    if ((rc = check_round(f, err))) return rc;
    if (f->overflow != QT_SAT && f->overflow != QT_WRAP)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s: overflow must be sat or wrap (inf needs a float)",
                        qt_type_name(f->type));
    if (f->bias > 126 || f->bias < f->width - 128)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s<%d,%d>: fractional bits out of range [%d, 126] "
                        "(values must fit float32)",
                        qt_type_name(f->type), f->width, f->bias,
                        f->width - 128);
    if (f->type == QT_UFIXED && f->flags)
        return qt__fail(err, QT_EINVAL, -1, "ufixed takes no flags (sym is for fixed)");
    if (f->flags & ~QT_F_SYM)
        return qt__fail(err, QT_EINVAL, -1, "fixed: only the sym flag applies");
    return check_unused(f, U_R | U_O | U_FL | U_B, err);
}

static double wrap_q(const qt_format *f, double q)
{
    int W = f->width;
    if (f->type == QT_UFIXED) {
        double m = ldexp(1.0, W), r = fmod(q, m);
        return r < 0 ? r + m : r;
    }
    if (f->flags & QT_F_SYM) {
        double m = ldexp(1.0, W - 1), r = fmod(fabs(q), m);
        return q < 0 ? -r : r;
    }
    double m = ldexp(1.0, W), h = ldexp(1.0, W - 1), r = fmod(q, m);
    if (r >= h) r -= m;
    if (r < -h) r += m;
    return r;
}

double qt__fixed_ref(const qt_format *f, double x, uint32_t r)
{
    double qlo, qhi, s, q;
    if (isnan(x)) return x;
    fixed_qrange(f, &qlo, &qhi);
    s = ldexp(x, f->bias);
    q = isinf(s) ? s : qt__round_int(s, f->round, r);
    if (q < qlo || q > qhi) {
        if (f->overflow == QT_WRAP && isfinite(q))
            q = wrap_q(f, q);
        else
            q = q < qlo ? qlo : qhi;
    }
    return ldexp(q, -f->bias) + 0.0;   /* + 0.0: fixed point has no -0 */
}

static void fixed_limits(const qt_format *f, double *mx, double *lo, double *mp)
{
    double qlo, qhi;
    fixed_qrange(f, &qlo, &qhi);
    *mx = qt__to_float_rz(ldexp(qhi, -f->bias));
    *lo = qt__to_float_rz(ldexp(qlo, -f->bias));
    *mp = ldexp(1.0, -f->bias);
}
static double fixed_step(const qt_format *f, double m) { return ldexp(1.0, -f->bias); }

static int fixed_fit(qt_format *f, double a)
{
    /* largest F with qhi * 2^-F >= a */
    double qlo, qhi;
    int F;
    fixed_qrange(f, &qlo, &qhi);
    F = (int)floor(log2(qhi / a));
    while (F > -200 && ldexp(qhi, -F) < a) F--;
    while (ldexp(qhi, -(F + 1)) >= a) F++;
    if (F > 126) F = 126;
    if (F < f->width - 128) { f->bias = (int16_t)(f->width - 128); return QT_ERANGE; }
    f->bias = (int16_t)F;
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* float (minifloat)                                                        */
/* ------------------------------------------------------------------------ */

void qt__float_params(const qt_format *f, qt_fparams *p)
{
    int E = f->ebits, M = f->width - 1 - E;
    int top = (1 << E) - 1;                /* all-ones exponent code */
    p->M = M;
    p->emin = 1 - f->bias;
    p->sub = !(f->flags & QT_F_NOSUB);
    if (f->flags & QT_F_FINITE) {
        p->emax = top - f->bias;
        p->maxval = ldexp(2.0 - ldexp(1.0, -M), p->emax);
    } else if (f->flags & QT_F_FN) {
        if (M >= 1) {
            p->emax = top - f->bias;
            p->maxval = ldexp(2.0 - ldexp(1.0, 1 - M), p->emax);
        } else {                            /* the top binade is only NaN */
            p->emax = top - 1 - f->bias;
            p->maxval = ldexp(1.0, p->emax);
        }
    } else {                                /* ieee: top code is inf/NaN */
        p->emax = top - 1 - f->bias;
        p->maxval = ldexp(2.0 - ldexp(1.0, -M), p->emax);
    }
}

static int float_check(const qt_format *f, qt_error *err)
{
    qt_fparams p;
    int rc, E = f->ebits;
    if (f->width == 0 || f->width > 32)
        return check_width(f, 2, 32, err);
    if (E == 0)
        return qt__fail(err, QT_EINVAL, -1, "float: needs at least 1 exponent bit");
    if (E >= f->width)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,e%d>: exponent bits must be fewer than the "
                        "width (sign + E + M = W)", f->width, E);
    if (E > 8)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,e%d>: more than 8 exponent bits cannot be "
                        "held in float32", f->width, E);
    if (f->width - 1 - E > 23)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,e%d>: %d mantissa bits exceed float32's 23",
                        f->width, E, f->width - 1 - E);
    if ((rc = check_round(f, err))) return rc;
    if ((f->flags & QT_F_FN) && (f->flags & QT_F_FINITE))
        return qt__fail(err, QT_EINVAL, -1, "float: fn and finite exclude each other");
    if (f->flags & ~(QT_F_NOSUB | QT_F_FN | QT_F_FINITE))
        return qt__fail(err, QT_EINVAL, -1, "float: unknown flags");
    if (f->overflow == QT_WRAP)
        return qt__fail(err, QT_EINVAL, -1,
                        "float: overflow wrap applies to fixed and ufixed only");
    if (f->overflow == QT_INF && (f->flags & (QT_F_FN | QT_F_FINITE)))
        return qt__fail(err, QT_EINVAL, -1,
                        "float: overflow to inf needs ieee specials (this "
                        "format has no inf code)");
    if (f->overflow >= QT_OVERFLOW_COUNT)
        return qt__fail(err, QT_EINVAL, -1, "float: unknown overflow mode");
    qt__float_params(f, &p);
    if (p.emax < p.emin)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,e%d>: no normal numbers (use finite or more "
                        "exponent bits)", f->width, E);
    if (p.emax > 127)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,e%d,b%d>: largest value 2^%d overflows float32 "
                        "(raise the bias)", f->width, E, f->bias, p.emax);
    if ((p.sub ? p.emin - p.M : p.emin) < -149 || p.emin < -148)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,e%d,b%d>: smallest value below float32's "
                        "2^-149 (lower the bias)", f->width, E, f->bias);
    return check_unused(f, U_E | U_R | U_O | U_FL | U_B, err);
}

double qt__float_ref(const qt_format *f, double x, uint32_t r)
{
    qt_fparams p;
    double y, q;
    int e;
    if (isnan(x) || x == 0.0) return x;
    qt__float_params(f, &p);
    if (isinf(x))
        return f->overflow == QT_INF ? x : copysign(p.maxval, x);
    if (!p.sub && fabs(x) < ldexp(1.0, p.emin)) {
        q = qt__round_int(ldexp(x, -p.emin), f->round, r);
        return ldexp(q, p.emin);
    }
    frexp(x, &e);
    e -= 1;                                 /* 2^e <= |x| < 2^(e+1) */
    if (e < p.emin) e = p.emin;
    q = qt__round_int(ldexp(x, p.M - e), f->round, r);
    y = ldexp(q, e - p.M);
    if (fabs(y) > p.maxval) {
        int toward_zero = f->round == QT_RZ || (f->round == QT_RD && x > 0);
        if (toward_zero || f->overflow != QT_INF)
            y = copysign(p.maxval, x);
        else
            y = copysign(INFINITY, x);
    }
    return y;
}

static void float_limits(const qt_format *f, double *mx, double *lo, double *mp)
{
    qt_fparams p;
    qt__float_params(f, &p);
    *mx = p.maxval;
    *lo = -p.maxval;
    *mp = p.sub ? ldexp(1.0, p.emin - p.M) : ldexp(1.0, p.emin);
}

static double float_step(const qt_format *f, double m)
{
    qt_fparams p;
    int e;
    qt__float_params(f, &p);
    m = fabs(m);
    if (m < ldexp(1.0, p.emin))
        return p.sub ? ldexp(1.0, p.emin - p.M) : ldexp(1.0, p.emin);
    frexp(m, &e);
    e -= 1;
    if (e > p.emax) e = p.emax;
    return ldexp(1.0, e - p.M);
}

static int float_fit(qt_format *f, double a)
{
    /* largest bias whose maxval >= a, within the valid range */
    qt_format g = *f;
    int best = INT16_MIN;
    for (int b = 300; b >= -300; b--) {
        qt_fparams p;
        g.bias = (int16_t)b;
        if (qt_format_check(&g, NULL) != QT_OK) continue;
        qt__float_params(&g, &p);
        if (p.maxval >= a) { best = b; break; }
        best = INT16_MIN + 1;           /* remember that valid ones exist */
    }
    if (best > INT16_MIN + 1) { f->bias = (int16_t)best; return QT_OK; }
    /* none holds a: take the valid bias with the widest range */
    for (int b = -300; b <= 300; b++) {
        g.bias = (int16_t)b;
        if (qt_format_check(&g, NULL) == QT_OK) { f->bias = (int16_t)b; break; }
    }
    return QT_ERANGE;
}

/* ------------------------------------------------------------------------ */
/* log: sign + (W-1)-bit code; code 0 is zero, else +-2^(code - B)          */
/* ------------------------------------------------------------------------ */

static void log_kr(const qt_format *f, int *kmin, int *kmax)
{
    *kmin = 1 - f->bias;
    *kmax = (1 << (f->width - 1)) - 1 - f->bias;
}

static int log_check(const qt_format *f, qt_error *err)
{
    int kmin, kmax, rc = check_width(f, 2, 9, err);
    if (rc) return rc;
    if ((rc = check_round(f, err))) return rc;
    if (f->overflow != QT_SAT)
        return qt__fail(err, QT_EINVAL, -1, "log: overflow must be sat");
    log_kr(f, &kmin, &kmax);
    if (kmin < -149 || kmax > 127)
        return qt__fail(err, QT_EINVAL, -1,
                        "log<%d,b%d>: magnitudes 2^%d..2^%d exceed float32's "
                        "2^-149..2^127", f->width, f->bias, kmin, kmax);
    return check_unused(f, U_R | U_O | U_B, err);
}

static double log_ref(const qt_format *f, double x, uint32_t r)
{
    int kmin, kmax, k;
    double a, lo, hi, y;
    long clo;
    if (isnan(x) || x == 0.0) return x;
    log_kr(f, &kmin, &kmax);
    a = fabs(x);
    if (a >= ldexp(1.0, kmax)) return copysign(ldexp(1.0, kmax), x);
    frexp(a, &k);
    k -= 1;
    if (k < kmin) { lo = 0.0; hi = ldexp(1.0, kmin); clo = 0; }
    else { lo = ldexp(1.0, k); hi = 2.0 * lo; clo = k - kmin + 1; }
    if (a == lo) return x;
    switch (f->round) {
    case QT_RZ: y = lo; break;
    case QT_RD: y = x > 0 ? lo : hi; break;
    case QT_RNA: y = a >= 0.5 * (lo + hi) ? hi : lo; break;
    case QT_RNE: {
        double mid = 0.5 * (lo + hi);
        y = a < mid ? lo : a > mid ? hi : ((clo & 1) ? hi : lo);
        break;
    }
    default: {
        double u = (double)(r >> 8) * 0x1p-24;
        y = u < (a - lo) / (hi - lo) ? hi : lo;
    }
    }
    return copysign(y, x);
}

static void log_limits(const qt_format *f, double *mx, double *lo, double *mp)
{
    int kmin, kmax;
    log_kr(f, &kmin, &kmax);
    *mx = ldexp(1.0, kmax); *lo = -*mx; *mp = ldexp(1.0, kmin);
}

static double log_step(const qt_format *f, double m)
{
    int kmin, kmax, k;
    log_kr(f, &kmin, &kmax);
    m = fabs(m);
    if (m < ldexp(1.0, kmin)) return ldexp(1.0, kmin);
    frexp(m, &k);
    k -= 1;
    if (k >= kmax) k = kmax - 1;
    return ldexp(1.0, k);
}

static int log_fit(qt_format *f, double a)
{
    /* largest B with 2^kmax >= a */
    int codes = (1 << (f->width - 1)) - 1;
    int k = (int)ceil(log2(a));
    int B = codes - k;
    while (ldexp(1.0, codes - B) < a) B--;
    if (1 - B < -149) B = 150;
    if (codes - B > 127) { f->bias = (int16_t)(codes - 127); return QT_ERANGE; }
    f->bias = (int16_t)B;
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* binary and ternary: scale s = 2^-B                                       */
/* ------------------------------------------------------------------------ */

static int scale_check(const qt_format *f, qt_error *err)
{
    if (f->bias < -127 || f->bias > 149)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s: scale 2^%d outside float32 (bias in [-127, 149])",
                        qt_type_name(f->type), -f->bias);
    return QT_OK;
}

static int binary_check(const qt_format *f, qt_error *err)
{
    int rc = check_width(f, 1, 1, err);
    if (rc) return rc;
    if ((rc = scale_check(f, err))) return rc;
    return check_unused(f, U_B, err);
}

static double binary_ref(const qt_format *f, double x, uint32_t r)
{
    if (isnan(x)) return x;
    return x >= 0 ? ldexp(1.0, -f->bias) : -ldexp(1.0, -f->bias);
}

static void scale_limits(const qt_format *f, double *mx, double *lo, double *mp)
{
    *mx = ldexp(1.0, -f->bias); *lo = -*mx; *mp = *mx;
}
static double scale_step(const qt_format *f, double m) { return ldexp(1.0, -f->bias); }

static int scale_fit(qt_format *f, double a)
{
    int e;
    frexp(a, &e);                        /* s = largest power of two <= a */
    int B = -(e - 1);
    if (B < -127) { f->bias = -127; return QT_ERANGE; }
    if (B > 149) B = 149;
    f->bias = (int16_t)B;
    return QT_OK;
}

static int ternary_check(const qt_format *f, qt_error *err)
{
    int rc = check_width(f, 2, 2, err);
    if (rc) return rc;
    if ((rc = scale_check(f, err))) return rc;
    if (f->flags & ~QT_F_AUTO)
        return qt__fail(err, QT_EINVAL, -1, "ternary: only the auto flag applies");
    if ((f->flags & QT_F_AUTO) && f->thresh != 0.0f)
        return qt__fail(err, QT_EINVAL, -1, "ternary: auto and a threshold exclude each other");
    if (!(f->flags & QT_F_AUTO) && !(f->thresh >= 0.0f && f->thresh <= 1e30f))
        return qt__fail(err, QT_EINVAL, -1,
                        "ternary: threshold must be finite and >= 0");
    return check_unused(f, U_B | U_FL | U_T, err);
}

static double ternary_apply(double x, double s, double t)
{
    if (isnan(x)) return x;
    return x > t ? s : x < -t ? -s : 0.0;
}

/* deterministic mean |x| over finite elements: fixed chunks, ordered sum */
static double mean_abs(const float *x, size_t n)
{
    size_t nc = (n + CHUNK - 1) / CHUNK;
    double total = 0.0, count = 0.0;
    double *sums = malloc(2 * (nc ? nc : 1) * sizeof *sums);
    if (!sums) {                             /* fall back: one thread */
        for (size_t i = 0; i < n; i++)
            if (isfinite(x[i])) { total += fabsf(x[i]); count += 1; }
        return count ? total / count : 0.0;
    }
    #pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        double s = 0.0, k = 0.0;
        size_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (size_t i = c * CHUNK; i < end; i++)
            if (isfinite(x[i])) { s += fabsf(x[i]); k += 1; }
        sums[2 * c] = s; sums[2 * c + 1] = k;
    }
    for (size_t c = 0; c < nc; c++) { total += sums[2 * c]; count += sums[2 * c + 1]; }
    free(sums);
    return count ? total / count : 0.0;
}

static void ternary_array(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    double s = ldexp(1.0, -f->bias);
    double t = (f->flags & QT_F_AUTO) ? 0.7 * mean_abs(x, n) : f->thresh * s;
    #pragma omp parallel for schedule(static) if (n >= 2 * CHUNK)
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ternary_apply(x[i], s, t);
}

/* ------------------------------------------------------------------------ */
/* sparse                                                                   */
/* ------------------------------------------------------------------------ */

static int sparse_check(const qt_format *f, qt_error *err)
{
    if (f->width != 32)
        return qt__fail(err, QT_EINVAL, -1, "sparse: width must be 32");
    if (!(f->thresh >= 0.0f && f->thresh <= FLT_MAX))
        return qt__fail(err, QT_EINVAL, -1, "sparse: threshold must be finite and >= 0");
    return check_unused(f, U_T, err);
}

static double sparse_ref(const qt_format *f, double x, uint32_t r)
{
    if (isnan(x)) return x;
    return fabs(x) > f->thresh ? (double)(float)x : 0.0;
}

/* ------------------------------------------------------------------------ */
/* cluster                                                                  */
/* ------------------------------------------------------------------------ */

static int cluster_check(const qt_format *f, qt_error *err)
{
    int rc = check_width(f, 1, 16, err);
    if (rc) return rc;
    return check_unused(f, 0, err);
}

static void cluster_array(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    int k = 1 << f->width;
    float *levels = malloc((size_t)k * sizeof *levels);
    int got;
    if (!levels) return;                      /* documented: OOM leaves x */
    got = qt_codebook_fit(x, n, k, levels);
    if (got > 0)
        qt_codebook_apply(levels, got, x, n);
    free(levels);
}

/* ------------------------------------------------------------------------ */
/* block: K elements share a power-of-two (E8M0) scale                      */
/* ------------------------------------------------------------------------ */

static qt_format block_elem(const qt_format *f)
{
    qt_format e = { 0 };
    e.type = f->etype;
    e.width = f->width;
    e.ebits = f->ebits;
    e.round = f->round;
    e.overflow = f->overflow;
    e.flags = f->flags;
    e.bias = f->bias;
    return e;
}

static int block_check(const qt_format *f, qt_error *err)
{
    qt_format e;
    int rc;
    if (f->etype != QT_FIXED && f->etype != QT_FLOAT)
        return qt__fail(err, QT_EINVAL, -1,
                        "block: element type must be fixed or float");
    if (f->block < 1)
        return qt__fail(err, QT_EINVAL, -1, "block: block size must be >= 1");
    if (f->width > 16)
        return qt__fail(err, QT_EINVAL, -1,
                        "block: elements of %d bits; at most 16", f->width);
    if (f->thresh != 0.0f || f->pad_)
        return qt__fail(err, QT_EINVAL, -1, "block takes no threshold");
    e = block_elem(f);
    if ((rc = qt_format_check(&e, err)) != QT_OK) {
        qt__prefix(err, "block element: ");
        return rc;
    }
    return QT_OK;
}

static int block_emax(const qt_format *e)
{
    double mx, lo, mp;
    int k;
    qt__traits(e->type)->limits(e, &mx, &lo, &mp);
    frexp(mx, &k);
    return k - 1;
}

static void block_one(const qt_format *e, int emax,
                      float *x, size_t n, qt_key key, uint64_t off)
{
    double amax = 0.0, X;
    int k, se;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && fabsf(x[i]) > amax) amax = fabsf(x[i]);
    if (amax == 0.0) se = -127;
    else { frexp(amax, &k); se = (k - 1) - emax; }
    if (se < -127) se = -127;
    if (se > 127) se = 127;
    X = ldexp(1.0, se);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = e->round == QT_SR ? qt__rand_k(key, off + i) : 0;
        double v = qt__traits(e->type)->ref(e, (double)x[i] / X, r);
        x[i] = (float)(v * X);
    }
}

static void block_array(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    qt_format e = block_elem(f);
    int emax = block_emax(&e);
    size_t K = f->block, nb = (n + K - 1) / K;
    qt_key key = qt__key(sr ? sr->seed : 0, sr ? sr->stream : 0);
    uint64_t off = sr ? sr->offset : 0;
    #pragma omp parallel for schedule(static) if (n >= 2 * CHUNK)
    for (size_t b = 0; b < nb; b++) {
        size_t len = (b + 1) * K <= n ? K : n - b * K;
        block_one(&e, emax, x + b * K, len, key, off + b * K);
    }
}

static void block_limits(const qt_format *f, double *mx, double *lo, double *mp)
{
    *mx = FLT_MAX; *lo = -FLT_MAX; *mp = 0x1p-149;
}

static double block_step(const qt_format *f, double m)
{
    /* the step at |m| when m is the block's largest magnitude */
    qt_format e = block_elem(f);
    int emax = block_emax(&e), k, se;
    if (m == 0.0) return 0x1p-149;
    frexp(fabs(m), &k);
    se = (k - 1) - emax;
    if (se < -127) se = -127;
    return ldexp(qt__traits(e.type)->step(&e, ldexp(fabs(m), -se)), se);
}

static double block_bits(const qt_format *f) { return f->width + 8.0 / f->block; }

/* ------------------------------------------------------------------------ */
/* Printing and JSON per type live in format.c; the table refers to them.   */
/* ------------------------------------------------------------------------ */


static int none_fit(qt_format *f, double a) { return QT_OK; }

/* ------------------------------------------------------------------------ */
/* The table: adding a type is adding a row.                                */
/* ------------------------------------------------------------------------ */

static const qt_traits traits[QT_TYPE_COUNT] = {
    [QT_NONE] = {
        .name = "none", .positional = "",
        .build = qt__build_none, .check = none_check, .ref = none_ref,
        .array = none_array, .limits = none_limits, .step = none_step,
        .bits = bits_width, .fit = none_fit,
        .print = qt__print_none, .to_json = qt__json_none },
    [QT_FIXED] = {
        .name = "fixed", .positional = "WF",
        .build = qt__build_fixed, .check = fixed_check, .ref = qt__fixed_ref,
        .array = qt__fixed_array, .limits = fixed_limits, .step = fixed_step,
        .bits = bits_width, .fit = fixed_fit,
        .print = qt__print_fixed, .to_json = qt__json_fixed },
    [QT_UFIXED] = {
        .name = "ufixed", .positional = "WF",
        .build = qt__build_fixed, .check = fixed_check, .ref = qt__fixed_ref,
        .array = qt__fixed_array, .limits = fixed_limits, .step = fixed_step,
        .bits = bits_width, .fit = fixed_fit,
        .print = qt__print_fixed, .to_json = qt__json_fixed },
    [QT_FLOAT] = {
        .name = "float", .positional = "W",
        .build = qt__build_float, .check = float_check, .ref = qt__float_ref,
        .array = qt__float_array, .limits = float_limits, .step = float_step,
        .bits = bits_width, .fit = float_fit,
        .print = qt__print_float, .to_json = qt__json_float },
    [QT_LOG] = {
        .name = "log", .positional = "W",
        .build = qt__build_log, .check = log_check, .ref = log_ref,
        .limits = log_limits, .step = log_step,
        .bits = bits_width, .fit = log_fit,
        .print = qt__print_log, .to_json = qt__json_log },
    [QT_BINARY] = {
        .name = "binary", .positional = "",
        .build = qt__build_binary, .check = binary_check, .ref = binary_ref,
        .limits = scale_limits, .step = scale_step,
        .bits = bits_width, .fit = scale_fit,
        .print = qt__print_binary, .to_json = qt__json_scale },
    [QT_TERNARY] = {
        .name = "ternary", .positional = "",
        .build = qt__build_ternary, .check = ternary_check,
        .array = ternary_array, .array_ref = ternary_array,
        .limits = scale_limits, .step = scale_step,
        .bits = bits_width, .fit = scale_fit,
        .print = qt__print_ternary, .to_json = qt__json_ternary },
    [QT_CLUSTER] = {
        .name = "cluster", .positional = "W",
        .build = qt__build_cluster, .check = cluster_check,
        .array = cluster_array, .array_ref = cluster_array,
        .limits = none_limits, .step = none_step,
        .bits = bits_width, .fit = none_fit,
        .print = qt__print_cluster, .to_json = qt__json_cluster },
    [QT_BLOCK] = {
        .name = "block", .positional = "EK",
        .build = qt__build_block, .check = block_check,
        .array = block_array, .array_ref = block_array,
        .limits = block_limits, .step = block_step,
        .bits = block_bits, .fit = none_fit,
        .print = qt__print_block, .to_json = qt__json_block },
    [QT_SPARSE] = {
        .name = "sparse", .positional = "T",
        .build = qt__build_sparse, .check = sparse_check, .ref = sparse_ref,
        .limits = none_limits, .step = none_step,
        .bits = bits_width, .fit = none_fit,
        .print = qt__print_sparse, .to_json = qt__json_sparse },
};

_Static_assert(QT_TYPE_COUNT == 10, "a new type needs a row in traits[]");
_Static_assert(sizeof(qt_format) == 16, "qt_format is hashed as 16 bytes");

const qt_traits *qt__traits(int type)
{
    return type >= 0 && type < QT_TYPE_COUNT ? &traits[type] : NULL;
}

const char *qt_type_name(qt_type t)
{
    return (unsigned)t < QT_TYPE_COUNT ? traits[t].name : "?";
}

/* ------------------------------------------------------------------------ */
/* Public entry points                                                      */
/* ------------------------------------------------------------------------ */

qt_format qt_format_none(void)
{
    qt_format f = { 0 };
    f.type = QT_NONE;
    f.width = 32;
    return f;
}

int qt_format_check(const qt_format *f, qt_error *err)
{
    if (!f)
        return qt__fail(err, QT_EINVAL, -1, "no format");
    if (f->type >= QT_TYPE_COUNT)
        return qt__fail(err, QT_EINVAL, -1, "unknown format type %d", f->type);
    if (err) { err->pos = -1; err->text[0] = 0; }
    return traits[f->type].check(f, err);
}

bool qt_format_equal(const qt_format *a, const qt_format *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

double qt_max(const qt_format *f)
{
    double mx, lo, mp;
    traits[f->type].limits(f, &mx, &lo, &mp);
    return mx;
}

double qt_lowest(const qt_format *f)
{
    double mx, lo, mp;
    traits[f->type].limits(f, &mx, &lo, &mp);
    return lo;
}

double qt_min_pos(const qt_format *f)
{
    double mx, lo, mp;
    traits[f->type].limits(f, &mx, &lo, &mp);
    return mp;
}

double qt_step(const qt_format *f, double x)
{
    return traits[f->type].step(f, x);
}

double qt_bits(const qt_format *f)
{
    return traits[f->type].bits(f);
}

double qt_noise_var(const qt_format *f, double x)
{
    double d = qt_step(f, x), v, over = 0.0;
    double a = fabs(x), mx = qt_max(f);
    switch (f->round) {
    case QT_RNE: case QT_RNA: v = d * d / 12.0; break;
    case QT_SR: v = d * d / 6.0; break;
    default: v = d * d / 3.0; break;
    }
    if (f->type == QT_BINARY || f->type == QT_TERNARY)
        v = d * d / 12.0;
    if (a > mx) over = (a - mx) * (a - mx);
    return v + over;
}

int qt_fit_bias(qt_format *f, double absmax)
{
    if (!(absmax >= 0.0) || isinf(absmax))
        return QT_ERANGE;
    if (absmax == 0.0)
        return QT_OK;
    return traits[f->type].fit(f, absmax);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int qt_fit_bias_percentile(qt_format *f, const float *x, size_t n, double p)
{
    float *a;
    size_t m = 0, idx;
    double v;
    int rc;
    if (!(p > 0.0 && p <= 100.0))
        return QT_EINVAL;
    if (f->type == QT_BINARY || f->type == QT_TERNARY) {
        v = mean_abs(x, n);
        if (v == 0.0) return QT_EINVAL;
        return qt_fit_bias(f, v);
    }
    a = malloc((n ? n : 1) * sizeof *a);
    if (!a) return QT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) a[m++] = fabsf(x[i]);
    if (m == 0) { free(a); return QT_EINVAL; }
    if (p == 100.0) {
        v = 0.0;
        for (size_t i = 0; i < m; i++) if (a[i] > v) v = a[i];
    } else {
        qsort(a, m, sizeof *a, cmp_float);
        idx = (size_t)ceil(p / 100.0 * (double)m) - 1;
        if (idx >= m) idx = m - 1;
        v = a[idx];
    }
    free(a);
    rc = qt_fit_bias(f, v);
    return rc;
}

float qt_quantize1(const qt_format *f, float x, uint32_t rnd)
{
    const qt_traits *t = &traits[f->type];
    if (t->ref)
        return qt__to_float_rz(t->ref(f, (double)x, rnd));
    /* tensor-fitted: a one-element tensor */
    float v = x;
    t->array(f, &v, 1, NULL);
    return v;
}

static void ref_loop(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    const qt_traits *t = &traits[f->type];
    qt_key key = qt__key(sr ? sr->seed : 0, sr ? sr->stream : 0);
    uint64_t off = sr ? sr->offset : 0;
    int stoch = f->round == QT_SR;
    #pragma omp parallel for schedule(static) if (n >= 2 * CHUNK)
    for (size_t i = 0; i < n; i++) {
        uint32_t r = stoch ? qt__rand_k(key, off + i) : 0;
        x[i] = qt__to_float_rz(t->ref(f, (double)x[i], r));
    }
}

void qt_quantize(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    const qt_traits *t = &traits[f->type];
    if (t->array) t->array(f, x, n, sr);
    else ref_loop(f, x, n, sr);
}

void qt_quantize_ref(const qt_format *f, float *x, size_t n, const qt_sr *sr)
{
    const qt_traits *t = &traits[f->type];
    if (t->array_ref) t->array_ref(f, x, n, sr);
    else if (t->ref) ref_loop(f, x, n, sr);
    else t->array(f, x, n, sr);
}

/* exact a+b rounded to odd in double: rounding this to any format of at
 * most 51 significant bits gives the correctly rounded exact sum */
static double sum_round_odd(double a, double b)
{
    double s = a + b, bp, ap, t;
    if (!isfinite(s)) return s;
    bp = s - a; ap = s - bp;
    t = (a - ap) + (b - bp);
    if (t != 0.0) {
        uint64_t u;
        memcpy(&u, &s, 8);
        if (!(u & 1)) s = nextafter(s, t > 0 ? INFINITY : -INFINITY);
    }
    return s;
}

static float arith_round(const qt_format *f, double exact, uint32_t rnd)
{
    const qt_traits *t = &traits[f->type];
    if (t->ref)
        return qt__to_float_rz(t->ref(f, exact, rnd));
    float v = (float)exact;
    t->array(f, &v, 1, NULL);
    return v;
}

float qt_mul(const qt_format *f, float a, float b, uint32_t rnd)
{
    return arith_round(f, (double)a * (double)b, rnd);   /* exact in double */
}

float qt_add(const qt_format *f, float a, float b, uint32_t rnd)
{
    double s = sum_round_odd(a, b);
    /* an exact zero sum: -0 if both operands are -0, or if their signs
     * differ and the rounding is toward -inf (IEEE 754 6.3) */
    if (s == 0.0) {
        int na = signbit(a) != 0, nb = signbit(b) != 0;
        s = (na && nb) || (na != nb && f->round == QT_RD) ? -0.0 : 0.0;
    }
    return arith_round(f, s, rnd);
}
