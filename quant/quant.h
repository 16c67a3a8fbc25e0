/*
 * quant.h -- number formats for qtune: parse, print, quantize, and describe.
 *
 * A format is (type, width, bias) plus a rounding mode and an overflow mode.
 * Every type is one row of a traits table (quant.c); this header is the only
 * public interface of the quant/ module, which depends on nothing else of
 * qtune.
 *
 *   qt_format f;
 *   qt_error  err;
 *   if (qt_format_parse("fixed<8,4>", &f, &err) != QT_OK)
 *       fprintf(stderr, "%s\n", err.text);
 *   qt_quantize(&f, data, n, NULL);          // in place, nearest-even
 *
 * Values are always carried as float32. A format describes which float32
 * values are allowed and how any other value is mapped onto them.
 *
 * Text grammar (case-insensitive keywords; spaces allowed around tokens):
 *
 *   format  := NAME | TYPE [ '<' arg { ',' arg } '>' ]
 *   TYPE    := none | fixed | ufixed | float | log | binary | ternary
 *            | cluster | block | sparse
 *   fixed<W,F[,opts]>    signed two's complement, q*2^-F, q in [-2^(W-1), 2^(W-1)-1]
 *                        opts: sym (sign-magnitude: q in +-(2^(W-1)-1))
 *   ufixed<W,F[,opts]>   unsigned, q*2^-F, q in [0, 2^W-1]
 *   float<W,eE[,bB][,opts]>  sign, E exponent bits, M=W-1-E mantissa bits,
 *                        exponent bias B (default 2^(E-1)-1), subnormals on.
 *                        opts: nosub (no subnormals), ieee (default: top
 *                        exponent is inf/NaN), fn (only the all-ones code is
 *                        NaN, as OCP E4M3), finite (no inf or NaN codes),
 *                        inf (overflow to +-inf; default for ieee) | sat
 *   log<W[,bB][,opts]>   sign + (W-1)-bit exponent code E; E=0 is zero,
 *                        otherwise +-2^(E-B); B defaults to 2^(W-2)-1.
 *                        Rounding is to the nearest value (linear distance).
 *   binary[<bB>]         +-s with s = 2^-B (x >= 0 gives +s)
 *   ternary[<bB[,tT|,auto]>]  {-s,0,+s}, s = 2^-B; |x| > T*s gives +-s.
 *                        T defaults to 0.5; auto: T*s = 0.7*mean|x| over the
 *                        array (TWN), recomputed at every call.
 *   cluster<W>           2^W-level codebook fitted by 1-D k-means to the very
 *                        array being quantized (deterministic quantile init).
 *   block<ELEM,K>        K consecutive elements share a power-of-two scale
 *                        X = 2^(floor(log2 max|x|) - emax(ELEM)), stored as
 *                        E8M0 (2^-127..2^127); each element is ELEM(x/X)*X.
 *                        ELEM is a fixed<...> or float<...> format. A two's
 *                        complement fixed ELEM can round to -2^(emax+1)*X,
 *                        which raises the scale if quantized again; use sym
 *                        (as mxint8 does) for an idempotent block format.
 *   sparse<T>            x if |x| > T, else 0 (TensorQuant's pruning)
 *   none                 identity (float32)
 *
 *   opts (any type that rounds): rne (nearest, ties to even; default),
 *        rna (nearest, ties away), sr (stochastic), rd (down, toward -inf),
 *        rz (toward zero); overflow: sat (default), wrap (fixed, ufixed only)
 *
 *   NAME := fp32 | fp16 | half | bf16 | bfloat16 | fp8e4m3 | fp8e5m2
 *         | mxfp8 | mxfp8e4m3 | mxfp8e5m2 | mxfp6 | mxfp6e2m3 | mxfp6e3m2
 *         | mxfp4 | mxint8
 *
 * Also accepted (qt_format_parse), so existing configurations carry over:
 *   TensorQuant: "nearest,W,F" (ties away), "zero,W,F", "down,W,F",
 *     "stochastic,W,F", "logarithmic", "fp16" (TensorQuant's kernel truncates:
 *     float<16,e5,b15,rz>), "binary[,m]", "ternary[,m[,t]]", "sparse,t", "none"
 *   libnumber: "FIXED N [B]" = fixed<N,N-2+B,sym>, "EXP N [B]" = log<N,bB>,
 *     "FLOAT 16" = fp16, "FLOAT 32" = float32.
 *
 * NaN and infinities, for every type:
 *   - NaN in gives NaN out (so a NaN produced upstream stays detectable).
 *   - +-inf saturate to the largest magnitude of the format, except for
 *     float formats with overflow mode inf (the ieee default), where they stay
 *     +-inf, and for sparse/none, which pass them through. Wrap mode
 *     saturates infinities (they have no residue).
 *   - binary maps +inf to +s and -inf to -s; ternary likewise.
 *   - cluster maps +-inf to the extreme levels of the codebook fitted to the
 *     array's finite values; an array with no finite value is left as is.
 *   - block: the scale comes from the finite elements; +-inf saturate.
 *
 * Threads: every function is reentrant; formats are plain values. Array
 * quantization uses OpenMP across the array; results do not depend on the
 * number of threads (stochastic rounding draws from a counter-based
 * generator keyed by seed, stream and element index).
 */
#ifndef QT_QUANT_H
#define QT_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Result codes, shared by every qtune module.                              */
/* ------------------------------------------------------------------------ */

#define QT_RC_MAP(XX)                                              \
    XX(OK,       0,  "ok")                                         \
    XX(EINVAL,  -1,  "invalid argument")                           \
    XX(EPARSE,  -2,  "malformed input")                            \
    XX(ERANGE,  -3,  "value out of range")                         \
    XX(ENOMEM,  -4,  "out of memory")                              \
    XX(EIO,     -5,  "input/output error")                         \
    XX(ENOTSUP, -6,  "not supported")                              \
    XX(ENOENT,  -7,  "not found")                                  \
    XX(ECORRUPT,-8,  "corrupt data")                               \
    XX(EBUSY,   -9,  "resource busy")                              \
    XX(ECANCEL, -10, "cancelled")                                  \
    XX(ENAN,    -11, "NaN encountered")                            \
    XX(EFULL,   -12, "disk full")

typedef enum qt_rc {
#define QT_RC_ENUM(name, val, msg) QT_##name = val,
    QT_RC_MAP(QT_RC_ENUM)
#undef QT_RC_ENUM
} qt_rc;

/* Static message for a result code; never NULL. */
const char *qt_strerror(int rc);

/* Caller-owned error detail (no allocation needed to fill it). */
typedef struct qt_error {
    int  pos;           /* byte offset in the input where it went wrong, or -1 */
    char text[192];     /* what is wrong, for a person */
} qt_error;

/* Fill err (if not NULL) with pos and a printf-style message; returns rc,
 * so callers can write: return qt_errorf(err, QT_EINVAL, -1, "...", ...); */
int qt_errorf(qt_error *err, int rc, int pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */
/* ------------------------------------------------------------------------ */

/* Persisted by store/: never renumber. */
typedef enum qt_type {
    QT_NONE    = 0,  /* identity, float32 */
    QT_FIXED   = 1,
    QT_UFIXED  = 2,
    QT_FLOAT   = 3,
    QT_LOG     = 4,
    QT_BINARY  = 5,
    QT_TERNARY = 6,
    QT_CLUSTER = 7,
    QT_BLOCK   = 8,
    QT_SPARSE  = 9,
    QT_TYPE_COUNT
} qt_type;

typedef enum qt_round {
    QT_RNE = 0,      /* nearest, ties to even (default) */
    QT_RNA = 1,      /* nearest, ties away from zero (C round()) */
    QT_SR  = 2,      /* stochastic: up with probability (x-lo)/(hi-lo) */
    QT_RD  = 3,      /* down, toward -inf (floor) */
    QT_RZ  = 4,      /* toward zero (truncate) */
    QT_ROUND_COUNT
} qt_round;

typedef enum qt_overflow {
    QT_SAT  = 0,     /* saturate at the largest magnitude (default) */
    QT_WRAP = 1,     /* two's complement wrap-around (fixed, ufixed) */
    QT_INF  = 2,     /* IEEE: overflow to +-inf (float with ieee specials) */
    QT_OVERFLOW_COUNT
} qt_overflow;

/* qt_format.flags */
enum {
    QT_F_SYM    = 1 << 0,  /* fixed: sign-magnitude, symmetric range */
    QT_F_NOSUB  = 1 << 1,  /* float: no subnormals */
    QT_F_FN     = 1 << 2,  /* float: all-ones code is NaN, no inf (E4M3) */
    QT_F_FINITE = 1 << 3,  /* float: no inf/NaN codes at all (E2M1, E3M2) */
    QT_F_AUTO   = 1 << 4   /* ternary: threshold = 0.7*mean|x| */
};

/*
 * A number format: a plain value, copy it freely. Fields a type does not use
 * are zero (qt_format_check enforces it), so two equal formats compare equal
 * with memcmp and hash the same.
 */
typedef struct qt_format {
    uint8_t  type;     /* qt_type */
    uint8_t  width;    /* bits per value; block: bits per element */
    uint8_t  ebits;    /* float (and block of float): exponent bits E */
    uint8_t  round;    /* qt_round */
    uint8_t  overflow; /* qt_overflow */
    uint8_t  flags;    /* QT_F_* */
    uint8_t  etype;    /* block: element type, QT_FIXED or QT_FLOAT */
    uint8_t  pad_;     /* zero */
    int16_t  bias;     /* fixed/ufixed: fractional bits F; float/log: exponent
                          bias; binary/ternary: scale s = 2^-bias */
    uint16_t block;    /* block: elements per shared scale (K) */
    float    thresh;   /* ternary: threshold as a fraction of s;
                          sparse: absolute threshold */
} qt_format;

#define QT_MAX_WIDTH  32
#define QT_TEXT_MAX   96   /* enough for any canonical text form + NUL */

/* The identity format (none). */
qt_format qt_format_none(void);

/* Check that a format is possible; QT_OK or QT_EINVAL with err filled (err
 * may be NULL). Every other function assumes a checked format. */
int qt_format_check(const qt_format *f, qt_error *err);

/* Parse the text grammar above (and TensorQuant/libnumber strings) into *out.
 * QT_OK, or QT_EPARSE/QT_EINVAL with err saying what is wrong and where. */
int qt_format_parse(const char *text, qt_format *out, qt_error *err);

/* Canonical text form into buf (always NUL-terminated). Returns the length
 * the full text needs (like snprintf); parse(print(f)) == f exactly. */
int qt_format_print(const qt_format *f, char *buf, size_t size);

/* JSON form, e.g. {"type":"fixed","width":8,"frac":4,"round":"rne",...}.
 * Returns a new reference (NULL only on out-of-memory). */
json_t *qt_format_to_json(const qt_format *f);

/* Parse the JSON form (an object) or a JSON string holding the text form.
 * Borrowed reference; QT_OK or an error naming the offending field. */
int qt_format_from_json(const json_t *j, qt_format *out, qt_error *err);

bool qt_format_equal(const qt_format *a, const qt_format *b);

/* Names, for messages and JSON: "fixed", "rne", "sat", ... */
const char *qt_type_name(qt_type t);
const char *qt_round_name(qt_round r);
const char *qt_overflow_name(qt_overflow o);

/* ------------------------------------------------------------------------ */
/* Describing a format                                                      */
/* ------------------------------------------------------------------------ */

/* Largest finite value (the most negative is -qt_max, or 0 for ufixed, or
 * -2^(W-1)*2^-F for two's complement fixed: use qt_lowest). For tensor-fitted
 * types (cluster, block, ternary auto, sparse, none): FLT_MAX. */
double qt_max(const qt_format *f);
double qt_lowest(const qt_format *f);
/* Smallest positive representable magnitude (0 if not defined). */
double qt_min_pos(const qt_format *f);

/* Distance between the two representable values around magnitude |x|
 * (the step, or ulp, at |x|); inside the range only. */
double qt_step(const qt_format *f, double x);

/* Expected squared error E[(Q(x)-x)^2] for an input of magnitude |x| that
 * falls uniformly within its step: step^2/12 for nearest, step^2/6 for
 * stochastic, step^2/3 for down and toward-zero. Beyond the range, the
 * squared saturation error is added. */
double qt_noise_var(const qt_format *f, double x);

/* Storage bits per value (block: W + 8/K for the shared scale). */
double qt_bits(const qt_format *f);

/* Set f->bias for the finest resolution at which absmax does not overflow
 * (fixed, ufixed, float, log; binary/ternary take s = largest power of two
 * <= absmax). Types without a bias are left as they are. absmax == 0 leaves
 * the bias unchanged. QT_ERANGE if absmax is NaN, inf or negative, or if no
 * valid bias holds absmax (the bias is then the one with the widest range). */
int qt_fit_bias(qt_format *f, double absmax);

/* Fit to a percentile p in (0,100] of |x[i]| over the finite elements
 * (p = 100 is the absolute maximum). binary/ternary use mean|x| instead.
 * QT_EINVAL for p out of range or no finite element. */
int qt_fit_bias_percentile(qt_format *f, const float *x, size_t n, double p);

/* ------------------------------------------------------------------------ */
/* Quantizing                                                               */
/* ------------------------------------------------------------------------ */

/* Counter-based random word for stochastic rounding: a pure function of
 * (seed, stream, index), so the bits are the same on any number of threads.
 * Rounding uses the top 24 bits: up iff (r>>8)*2^-24 < frac. */
uint32_t qt_rand32(uint64_t seed, uint64_t stream, uint64_t index);

/* The same words with the (seed, stream) part computed once, for kernels
 * that draw many words of one stream: qt_rand32_k(qt_rand_key(seed,
 * stream), index) == qt_rand32(seed, stream, index). */
typedef struct qt_rkey { uint32_t k0, k1; } qt_rkey;
qt_rkey qt_rand_key(uint64_t seed, uint64_t stream);

static inline uint32_t qt_rand_mix32_(uint32_t x)
{
    x ^= x >> 17; x *= 0xed5ad4bbu;
    x ^= x >> 11; x *= 0xac4c1b51u;
    x ^= x >> 15; x *= 0x31848babu;
    x ^= x >> 14;
    return x;
}

static inline uint32_t qt_rand32_k(qt_rkey k, uint64_t index)
{
    uint32_t lo = (uint32_t)index, hi = (uint32_t)(index >> 32);
    return qt_rand_mix32_((lo ^ k.k0) + qt_rand_mix32_(hi ^ k.k1));
}

/* Where stochastic rounding draws from: element i of an array call uses
 * qt_rand32(seed, stream, offset + i). NULL means {0, 0, 0}. */
typedef struct qt_sr {
    uint64_t seed;    /* run seed */
    uint64_t stream;  /* e.g. a hash of the tensor's name */
    uint64_t offset;  /* index of x[0] within the stream */
} qt_sr;

/* Quantize x[0..n) in place. Tensor-fitted types (cluster, block, ternary
 * auto) treat the whole array as the tensor. */
void qt_quantize(const qt_format *f, float *x, size_t n, const qt_sr *sr);

/* Reference path, one element at a time and in double (the fast path is
 * tested against it bit for bit): same contract as qt_quantize. */
void qt_quantize_ref(const qt_format *f, float *x, size_t n, const qt_sr *sr);

/* One value; rnd is the random word (ignored unless f->round == QT_SR).
 * Tensor-fitted types treat x as a one-element tensor. */
float qt_quantize1(const qt_format *f, float x, uint32_t rnd);

/* Bit-true arithmetic of a unit working in format f: the exact product or
 * sum of a and b, rounded once with f's rounding and overflow mode.
 * Defined for fixed, ufixed, float, log and none; for other types the exact
 * result is quantized as by qt_quantize1. */
float qt_mul(const qt_format *f, float a, float b, uint32_t rnd);
float qt_add(const qt_format *f, float a, float b, uint32_t rnd);

/* ------------------------------------------------------------------------ */
/* Codebooks (cluster)                                                      */
/* ------------------------------------------------------------------------ */

/* Fit k levels to the finite values of x[0..n) with 1-D k-means (initial
 * levels at evenly spaced quantiles; Lloyd iterations until no level moves,
 * at most 10000 rounds). levels[] is sorted ascending; returns the number of distinct
 * levels written (<= k), or a negative qt_rc. Deterministic. */
int qt_codebook_fit(const float *x, size_t n, int k, float *levels);

/* Replace each x[i] by its nearest level (ties toward the lower level). */
void qt_codebook_apply(const float *levels, int k, float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* QT_QUANT_H */
