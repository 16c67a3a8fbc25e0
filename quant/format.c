/*
 * format.c -- text and JSON forms of formats.
 *
 * Text and JSON are both read into a qt_spec (what was given), then the
 * type's build function applies defaults, rejects what does not apply and
 * checks the result. Printing is canonical: parse(print(f)) == f.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static const char *round_names[QT_ROUND_COUNT] = { "rne", "rna", "sr", "rd", "rz" };
static const char *overflow_names[QT_OVERFLOW_COUNT] = { "sat", "wrap", "inf" };

const char *qt_round_name(qt_round r)
{
    return (unsigned)r < QT_ROUND_COUNT ? round_names[r] : "?";
}

const char *qt_overflow_name(qt_overflow o)
{
    return (unsigned)o < QT_OVERFLOW_COUNT ? overflow_names[o] : "?";
}

/* Named formats are shorthands for text forms. */
static const struct { const char *name, *text; } named[] = {
    { "fp32",      "none" },
    { "fp16",      "float<16,e5,b15>" },
    { "half",      "float<16,e5,b15>" },
    { "bf16",      "float<16,e8,b127>" },
    { "bfloat16",  "float<16,e8,b127>" },
    { "fp8e4m3",   "float<8,e4,b7,fn>" },
    { "fp8e5m2",   "float<8,e5,b15>" },
    { "fp6e2m3",   "float<6,e2,b1,finite>" },
    { "fp6e3m2",   "float<6,e3,b3,finite>" },
    { "fp4",       "float<4,e2,b1,finite>" },
    { "fp4e2m1",   "float<4,e2,b1,finite>" },
    { "mxfp8",     "block<float<8,e4,b7,fn>,32>" },
    { "mxfp8e4m3", "block<float<8,e4,b7,fn>,32>" },
    { "mxfp8e5m2", "block<float<8,e5,b15,sat>,32>" },
    { "mxfp6",     "block<float<6,e2,b1,finite>,32>" },
    { "mxfp6e2m3", "block<float<6,e2,b1,finite>,32>" },
    { "mxfp6e3m2", "block<float<6,e3,b3,finite>,32>" },
    { "mxfp4",     "block<float<4,e2,b1,finite>,32>" },
    { "mxint8",    "block<fixed<8,6,sym>,32>" },
};

static void spec_init(qt_spec *s)
{
    memset(s, 0, sizeof *s);
    s->type = -1;
    s->round = -1;
    s->overflow = -1;
    s->specials = -1;
}

static int type_by_name(const char *name, size_t len)
{
    for (int t = 0; t < QT_TYPE_COUNT; t++) {
        const char *n = qt__traits(t)->name;
        if (strlen(n) == len && strncasecmp(n, name, len) == 0)
            return t;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Builders: spec -> format                                                 */
/* ------------------------------------------------------------------------ */

/* reject fields given that the type does not take; allowed is a string of
 * letters: w f e b t k r o s(sym) n(nosub) p(specials) a(auto) */
static int only(const qt_spec *s, const char *allowed, const char *tname, qt_error *err)
{
    static const struct { char c; const char *what; } fields[] = {
        { 'w', "width" }, { 'f', "fractional bits" }, { 'e', "exponent bits" },
        { 'b', "bias" }, { 't', "threshold" }, { 'k', "block size" },
        { 'r', "rounding mode" }, { 'o', "overflow mode" },
        { 's', "sym" }, { 'n', "nosub" }, { 'p', "ieee/fn/finite" },
        { 'a', "auto" }, { 'x', "element format" },
    };
    int given[13] = {
        s->has_w, s->has_f, s->has_e, s->has_b, s->has_t, s->has_k,
        s->round >= 0, s->overflow >= 0, s->sym, s->nosub,
        s->specials >= 0, s->t_auto, s->has_elem,
    };
    for (int i = 0; i < 13; i++)
        if (given[i] && !strchr(allowed, fields[i].c))
            return qt__fail(err, QT_EINVAL, -1, "%s takes no %s", tname,
                            fields[i].what);
    return QT_OK;
}

static int int_field(int v, int lo, int hi, const char *tname, const char *what,
                     qt_error *err)
{
    if (v < lo || v > hi)
        return qt__fail(err, QT_EINVAL, -1, "%s: %s %d out of range [%d, %d]",
                        tname, what, v, lo, hi);
    return QT_OK;
}

/* width: 0 and > 32 get their own messages from qt_format_check */
static int width_field(const qt_spec *s, const char *tname, qt_error *err)
{
    if (!s->has_w)
        return qt__fail(err, QT_EINVAL, -1, "%s: a width is required", tname);
    if (s->w < 0)
        return qt__fail(err, QT_EINVAL, -1, "%s: width %d is negative", tname, s->w);
    if (s->w == 0)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s: width 0: a format needs at least 1 bit", tname);
    if (s->w > QT_MAX_WIDTH)
        return qt__fail(err, QT_EINVAL, -1, "%s: width %d exceeds %d bits",
                        tname, s->w, QT_MAX_WIDTH);
    return QT_OK;
}

int qt__build_none(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "", "none", err);
    if (rc) return rc;
    *f = qt_format_none();
    return QT_OK;
}

int qt__build_fixed(const qt_spec *s, qt_format *f, qt_error *err)
{
    const char *tn = qt_type_name(s->type);
    int rc = only(s, s->type == QT_FIXED ? "wfbros" : "wfbro", tn, err);
    if (rc) return rc;
    if ((rc = width_field(s, tn, err))) return rc;
    if (s->has_f && s->has_b)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s: give the fractional bits once (F or bF)", tn);
    if (!s->has_f && !s->has_b)
        return qt__fail(err, QT_EINVAL, -1,
                        "%s<%d,F>: the fractional bits F are required", tn, s->w);
    int F = s->has_f ? s->f : s->b;
    if ((rc = int_field(F, -1000, 1000, tn, "fractional bits", err))) return rc;
    memset(f, 0, sizeof *f);
    f->type = (uint8_t)s->type;
    f->width = (uint8_t)s->w;
    f->bias = (int16_t)F;
    f->round = (uint8_t)(s->round >= 0 ? s->round : QT_RNE);
    f->overflow = (uint8_t)(s->overflow >= 0 ? s->overflow : QT_SAT);
    f->flags = s->sym ? QT_F_SYM : 0;
    return qt_format_check(f, err);
}

int qt__build_float(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "webronp", "float", err);
    if (rc) return rc;
    if ((rc = width_field(s, "float", err))) return rc;
    if (!s->has_e)
        return qt__fail(err, QT_EINVAL, -1,
                        "float<%d,...>: the exponent bits eE are required", s->w);
    if ((rc = int_field(s->e, 0, 31, "float", "exponent bits", err))) return rc;
    memset(f, 0, sizeof *f);
    f->type = QT_FLOAT;
    f->width = (uint8_t)s->w;
    f->ebits = (uint8_t)s->e;
    if (s->has_b) {
        if ((rc = int_field(s->b, -1000, 1000, "float", "bias", err))) return rc;
        f->bias = (int16_t)s->b;
    } else {
        f->bias = (int16_t)(s->e >= 1 ? (1 << (s->e - 1)) - 1 : 0);
    }
    f->round = (uint8_t)(s->round >= 0 ? s->round : QT_RNE);
    f->flags = (uint8_t)((s->nosub ? QT_F_NOSUB : 0) |
                         (s->specials > 0 ? s->specials : 0));
    if (s->overflow >= 0)
        f->overflow = (uint8_t)s->overflow;
    else
        f->overflow = (f->flags & (QT_F_FN | QT_F_FINITE)) ? QT_SAT : QT_INF;
    return qt_format_check(f, err);
}

int qt__build_log(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "wbro", "log", err);
    if (rc) return rc;
    if ((rc = width_field(s, "log", err))) return rc;
    memset(f, 0, sizeof *f);
    f->type = QT_LOG;
    f->width = (uint8_t)s->w;
    if (s->has_b) {
        if ((rc = int_field(s->b, -1000, 1000, "log", "bias", err))) return rc;
        f->bias = (int16_t)s->b;
    } else {
        f->bias = (int16_t)(s->w >= 2 ? (1 << (s->w - 2)) - 1 : 0);
    }
    f->round = (uint8_t)(s->round >= 0 ? s->round : QT_RNE);
    f->overflow = (uint8_t)(s->overflow >= 0 ? s->overflow : QT_SAT);
    return qt_format_check(f, err);
}

int qt__build_binary(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "b", "binary", err);
    if (rc) return rc;
    memset(f, 0, sizeof *f);
    f->type = QT_BINARY;
    f->width = 1;
    if (s->has_b) {
        if ((rc = int_field(s->b, -1000, 1000, "binary", "bias", err))) return rc;
        f->bias = (int16_t)s->b;
    }
    return qt_format_check(f, err);
}

int qt__build_ternary(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "bta", "ternary", err);
    if (rc) return rc;
    memset(f, 0, sizeof *f);
    f->type = QT_TERNARY;
    f->width = 2;
    if (s->has_b) {
        if ((rc = int_field(s->b, -1000, 1000, "ternary", "bias", err))) return rc;
        f->bias = (int16_t)s->b;
    }
    if (s->has_t && s->t_auto)
        return qt__fail(err, QT_EINVAL, -1, "ternary: give a threshold or auto, not both");
    if (s->has_t) {
        if (!(s->t >= 0.0 && s->t <= 1e30))
            return qt__fail(err, QT_EINVAL, -1,
                            "ternary: threshold %g must be finite and >= 0", s->t);
        f->thresh = (float)s->t;
    } else {
        f->flags = QT_F_AUTO;               /* TWN: 0.7 * mean|x| */
    }
    return qt_format_check(f, err);
}

int qt__build_cluster(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "w", "cluster", err);
    if (rc) return rc;
    if ((rc = width_field(s, "cluster", err))) return rc;
    memset(f, 0, sizeof *f);
    f->type = QT_CLUSTER;
    f->width = (uint8_t)s->w;
    return qt_format_check(f, err);
}

int qt__build_block(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "kx", "block", err);
    if (rc) return rc;
    if (!s->has_elem)
        return qt__fail(err, QT_EINVAL, -1,
                        "block<ELEM,K>: the element format is required");
    if (!s->has_k)
        return qt__fail(err, QT_EINVAL, -1, "block<ELEM,K>: the block size K is required");
    if ((rc = int_field(s->k, 1, 65535, "block", "block size", err))) return rc;
    if (s->elem.type != QT_FIXED && s->elem.type != QT_FLOAT)
        return qt__fail(err, QT_EINVAL, -1,
                        "block: element must be fixed or float, not %s",
                        qt_type_name(s->elem.type));
    memset(f, 0, sizeof *f);
    f->type = QT_BLOCK;
    f->etype = s->elem.type;
    f->width = s->elem.width;
    f->ebits = s->elem.ebits;
    f->round = s->elem.round;
    f->overflow = s->elem.overflow;
    f->flags = s->elem.flags;
    f->bias = s->elem.bias;
    f->block = (uint16_t)s->k;
    return qt_format_check(f, err);
}

int qt__build_sparse(const qt_spec *s, qt_format *f, qt_error *err)
{
    int rc = only(s, "t", "sparse", err);
    if (rc) return rc;
    if (!s->has_t)
        return qt__fail(err, QT_EINVAL, -1, "sparse<T>: the threshold T is required");
    if (!(s->t >= 0.0 && s->t <= FLT_MAX))
        return qt__fail(err, QT_EINVAL, -1,
                        "sparse: threshold %g must be finite and >= 0", s->t);
    memset(f, 0, sizeof *f);
    f->type = QT_SPARSE;
    f->width = 32;
    f->thresh = (float)s->t;
    return qt_format_check(f, err);
}

static int build(const qt_spec *s, qt_format *f, qt_error *err)
{
    return qt__traits(s->type)->build(s, f, err);
}

/* ------------------------------------------------------------------------ */
/* Text parsing                                                             */
/* ------------------------------------------------------------------------ */

typedef struct { const char *p; size_t n; int pos; } tok;

static tok trim(const char *p, size_t n, int pos)
{
    while (n && isspace((unsigned char)*p)) { p++; n--; pos++; }
    while (n && isspace((unsigned char)p[n - 1])) n--;
    tok t = { p, n, pos };
    return t;
}

/* strict integer: optional sign, digits, nothing else */
static int tok_int(tok t, int *out)
{
    char buf[32], *end;
    long v;
    if (t.n == 0 || t.n >= sizeof buf) return 0;
    memcpy(buf, t.p, t.n);
    buf[t.n] = 0;
    if (!isdigit((unsigned char)buf[buf[0] == '-' || buf[0] == '+']))
        return 0;
    errno = 0;
    v = strtol(buf, &end, 10);
    if (*end || errno || v < -100000 || v > 100000) return 0;
    *out = (int)v;
    return 1;
}

static int tok_num(tok t, double *out)
{
    char buf[64], *end;
    if (t.n == 0 || t.n >= sizeof buf) return 0;
    memcpy(buf, t.p, t.n);
    buf[t.n] = 0;
    if (!(isdigit((unsigned char)buf[0]) || buf[0] == '.' || buf[0] == '-' || buf[0] == '+'))
        return 0;
    errno = 0;
    float v = strtof(buf, &end);
    if (*end || errno) return 0;
    *out = v;
    return 1;
}

static int tok_is(tok t, const char *word)
{
    return strlen(word) == t.n && strncasecmp(t.p, word, t.n) == 0;
}

static int parse_at(const char *text, size_t len, int pos0, qt_format *out,
                    qt_error *err, int depth);

/* one argument inside <...> */
static int parse_arg(qt_spec *s, tok a, const char **pp, qt_error *err, int depth)
{
    const char *tn = qt_type_name(s->type);
    const char *pos_kinds = qt__traits(s->type)->positional;
    char kind = **pp;
    int iv;
    double dv;

    if (a.n == 0)
        return qt__fail(err, QT_EPARSE, a.pos, "%s: empty argument", tn);
    /* positional element format (block) */
    if (kind == 'E') {
        qt_format e;
        int rc = parse_at(a.p, a.n, a.pos, &e, err, depth + 1);
        if (rc) return rc;
        s->elem = e;
        s->has_elem = 1;
        (*pp)++;
        return QT_OK;
    }
    if (kind && kind != 'T' && tok_int(a, &iv)) {
        if (kind == 'W') { s->has_w = 1; s->w = iv; }
        else if (kind == 'F') { s->has_f = 1; s->f = iv; }
        else if (kind == 'K') { s->has_k = 1; s->k = iv; }
        (*pp)++;
        return QT_OK;
    }
    if (kind == 'T' && tok_num(a, &dv)) {
        s->has_t = 1; s->t = dv;
        (*pp)++;
        return QT_OK;
    }
    /* keyword options */
    for (int r = 0; r < QT_ROUND_COUNT; r++)
        if (tok_is(a, round_names[r])) {
            if (s->round >= 0)
                return qt__fail(err, QT_EPARSE, a.pos, "%s: rounding given twice", tn);
            s->round = r;
            return QT_OK;
        }
    for (int o = 0; o < QT_OVERFLOW_COUNT; o++)
        if (tok_is(a, overflow_names[o])) {
            if (s->overflow >= 0)
                return qt__fail(err, QT_EPARSE, a.pos, "%s: overflow given twice", tn);
            s->overflow = o;
            return QT_OK;
        }
    if (tok_is(a, "sym")) { s->sym = 1; return QT_OK; }
    if (tok_is(a, "nosub")) { s->nosub = 1; return QT_OK; }
    if (tok_is(a, "auto")) { s->t_auto = 1; return QT_OK; }
    if (tok_is(a, "ieee") || tok_is(a, "fn") || tok_is(a, "finite")) {
        if (s->specials >= 0)
            return qt__fail(err, QT_EPARSE, a.pos, "%s: give one of ieee, fn, finite", tn);
        s->specials = tok_is(a, "ieee") ? 0 : tok_is(a, "fn") ? QT_F_FN : QT_F_FINITE;
        return QT_OK;
    }
    if (a.n >= 2 && (a.p[0] == 'e' || a.p[0] == 'E' || a.p[0] == 'b' || a.p[0] == 'B')) {
        tok rest = { a.p + 1, a.n - 1, a.pos + 1 };
        if (tok_int(rest, &iv)) {
            if (a.p[0] == 'e' || a.p[0] == 'E') {
                if (s->has_e) return qt__fail(err, QT_EPARSE, a.pos, "%s: exponent bits given twice", tn);
                s->has_e = 1; s->e = iv;
            } else {
                if (s->has_b) return qt__fail(err, QT_EPARSE, a.pos, "%s: bias given twice", tn);
                s->has_b = 1; s->b = iv;
            }
            return QT_OK;
        }
    }
    if (a.n >= 2 && (a.p[0] == 't' || a.p[0] == 'T')) {
        tok rest = { a.p + 1, a.n - 1, a.pos + 1 };
        if (tok_num(rest, &dv)) {
            if (s->has_t) return qt__fail(err, QT_EPARSE, a.pos, "%s: threshold given twice", tn);
            s->has_t = 1; s->t = dv;
            return QT_OK;
        }
    }
    if (a.n >= 2 && (a.p[0] == 'k' || a.p[0] == 'K')) {
        tok rest = { a.p + 1, a.n - 1, a.pos + 1 };
        if (tok_int(rest, &iv) && s->type == QT_BLOCK) { s->has_k = 1; s->k = iv; return QT_OK; }
    }
    if (tok_int(a, &iv) || tok_num(a, &dv)) {
        if (!*pos_kinds)
            return qt__fail(err, QT_EPARSE, a.pos,
                            "%s takes no positional number ('%.*s')", tn, (int)a.n, a.p);
        return qt__fail(err, QT_EPARSE, a.pos,
                        "%s: too many positional numbers at '%.*s'", tn, (int)a.n, a.p);
    }
    return qt__fail(err, QT_EPARSE, a.pos, "%s: unknown option '%.*s'", tn,
                    (int)a.n, a.p);
}

/* TensorQuant comma strings: "nearest,16,8", "sparse,0.01", "ternary,1,0.5" */
static int parse_tq(const char *text, size_t len, int pos0, qt_format *out, qt_error *err)
{
    tok parts[4];
    size_t np = 0, start = 0;
    qt_spec s;
    int W, F;
    double m, t;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == ',') {
            if (np == 4)
                return qt__fail(err, QT_EPARSE, pos0 + (int)i,
                                "TensorQuant quantizer: too many fields");
            parts[np++] = trim(text + start, i - start, pos0 + (int)start);
            start = i + 1;
        }
    }
    spec_init(&s);
    static const struct { const char *name; int round; } modes[] = {
        { "nearest", QT_RNA }, { "zero", QT_RZ }, { "down", QT_RD },
        { "stochastic", QT_SR },
    };
    for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) {
        if (!tok_is(parts[0], modes[k].name)) continue;
        if (np != 3 || !tok_int(parts[1], &W) || !tok_int(parts[2], &F))
            return qt__fail(err, QT_EPARSE, parts[0].pos,
                            "TensorQuant '%s,W,F' needs two integers", modes[k].name);
        if (!(W > 0 && F >= 0 && F < W))
            return qt__fail(err, QT_EINVAL, parts[1].pos,
                            "TensorQuant '%s,%d,%d': needs W > 0 and 0 <= F < W",
                            modes[k].name, W, F);
        s.type = QT_FIXED;
        s.has_w = 1; s.w = W; s.has_f = 1; s.f = F; s.round = modes[k].round;
        return build(&s, out, err);
    }
    if (tok_is(parts[0], "sparse")) {
        if (np != 2 || !tok_num(parts[1], &t))
            return qt__fail(err, QT_EPARSE, parts[0].pos, "TensorQuant 'sparse,T' needs a threshold");
        s.type = QT_SPARSE; s.has_t = 1; s.t = t;
        return build(&s, out, err);
    }
    if (tok_is(parts[0], "binary") || tok_is(parts[0], "ternary")) {
        int bin = tok_is(parts[0], "binary");
        int e;
        if (np > (size_t)(bin ? 2 : 3) || !tok_num(parts[1], &m) || !(m > 0))
            return qt__fail(err, QT_EPARSE, parts[0].pos,
                            "TensorQuant '%s,m%s': m must be a positive number",
                            bin ? "binary" : "ternary", bin ? "" : "[,t]");
        double fr = frexp(m, &e);
        if (fr != 0.5)
            return qt__fail(err, QT_EINVAL, parts[1].pos,
                            "scale m=%g: qtune keeps binary/ternary scales as "
                            "powers of two (2^-bias)", m);
        s.type = bin ? QT_BINARY : QT_TERNARY;
        s.has_b = 1; s.b = -(e - 1);
        if (np == 3) {
            if (!tok_num(parts[2], &t))
                return qt__fail(err, QT_EPARSE, parts[2].pos, "TensorQuant ternary: bad threshold");
            s.has_t = 1; s.t = t / m;
        }
        return build(&s, out, err);
    }
    return qt__fail(err, QT_EPARSE, pos0,
                    "unknown TensorQuant quantizer '%.*s' (nearest, zero, down, "
                    "stochastic, sparse, binary, ternary)", (int)parts[0].n, parts[0].p);
}

/* libnumber: "FIXED 15 -3", "EXP 8", "FLOAT 16" */
static int parse_libnumber(const char *text, size_t len, int pos0, qt_format *out, qt_error *err)
{
    tok w[3];
    size_t nw = 0, i = 0;
    int N, B = 0;
    qt_spec s;
    while (i < len) {
        while (i < len && isspace((unsigned char)text[i])) i++;
        if (i == len) break;
        size_t st = i;
        while (i < len && !isspace((unsigned char)text[i])) i++;
        if (nw == 3)
            return qt__fail(err, QT_EPARSE, pos0 + (int)st, "libnumber format: too many fields");
        w[nw].p = text + st; w[nw].n = i - st; w[nw].pos = pos0 + (int)st; nw++;
    }
    if (nw < 2 || !tok_int(w[1], &N) || (nw == 3 && !tok_int(w[2], &B)))
        return qt__fail(err, QT_EPARSE, pos0, "libnumber format: 'TYPE bits [bias]'");
    spec_init(&s);
    if (tok_is(w[0], "FIXED")) {
        if (N < 2)
            return qt__fail(err, QT_EINVAL, w[1].pos, "libnumber FIXED needs at least 2 bits");
        s.type = QT_FIXED; s.has_w = 1; s.w = N; s.has_f = 1; s.f = N - 2 + B; s.sym = 1;
    } else if (tok_is(w[0], "EXP")) {
        s.type = QT_LOG; s.has_w = 1; s.w = N;
        if (nw == 3) { s.has_b = 1; s.b = B; }
    } else if (tok_is(w[0], "FLOAT")) {
        if (nw == 3)
            return qt__fail(err, QT_EINVAL, w[2].pos, "libnumber FLOAT takes no bias");
        if (N == 32) { *out = qt_format_none(); return QT_OK; }
        if (N != 16)
            return qt__fail(err, QT_EINVAL, w[1].pos, "libnumber FLOAT is 16 or 32 bits");
        s.type = QT_FLOAT; s.has_w = 1; s.w = 16; s.has_e = 1; s.e = 5;
    } else {
        return qt__fail(err, QT_EPARSE, w[0].pos,
                        "unknown libnumber type '%.*s' (FIXED, EXP, FLOAT)",
                        (int)w[0].n, w[0].p);
    }
    return build(&s, out, err);
}

static int parse_at(const char *text, size_t len, int pos0, qt_format *out,
                    qt_error *err, int depth)
{
    tok t = trim(text, len, pos0);
    const char *p = t.p, *lt;
    size_t n = t.n, nl;
    qt_spec s;

    if (depth > 1)
        return qt__fail(err, QT_EPARSE, t.pos, "formats nest at most one level (block<ELEM,K>)");
    if (n == 0)
        return qt__fail(err, QT_EPARSE, t.pos, "empty format");
    if (n > 4 && strncasecmp(p, "tq:", 3) == 0) {
        tok r = trim(p + 3, n - 3, t.pos + 3);
        if (tok_is(r, "fp16")) {               /* TensorQuant's kernel truncates */
            spec_init(&s);
            s.type = QT_FLOAT; s.has_w = 1; s.w = 16; s.has_e = 1; s.e = 5; s.round = QT_RZ;
            return build(&s, out, err);
        }
        if (tok_is(r, "logarithmic"))
            return parse_at("log<8,b63,rz>", 13, r.pos, out, err, depth);
        return parse_tq(r.p, r.n, r.pos, out, err);
    }
    lt = memchr(p, '<', n);
    if (!lt && memchr(p, ',', n))
        return parse_tq(p, n, t.pos, out, err);
    if (!lt) {
        for (size_t i = 0; i < n; i++)
            if (isspace((unsigned char)p[i]))
                return parse_libnumber(p, n, t.pos, out, err);
        if (tok_is(t, "logarithmic"))
            return parse_at("log<8,b63,rz>", 13, t.pos, out, err, depth);
        for (size_t i = 0; i < sizeof named / sizeof *named; i++)
            if (tok_is(t, named[i].name))
                return parse_at(named[i].text, strlen(named[i].text), t.pos, out, err, depth);
    }
    nl = lt ? (size_t)(lt - p) : n;
    spec_init(&s);
    {
        tok nm = trim(p, nl, t.pos);
        s.type = type_by_name(nm.p, nm.n);
    }
    if (s.type < 0) {
        tok nm = trim(p, nl, t.pos);
        return qt__fail(err, QT_EPARSE, t.pos,
                        "unknown format '%.*s' (types: none fixed ufixed float log "
                        "binary ternary cluster block sparse; names like fp16, "
                        "bf16, mxfp8)", (int)nm.n, nm.p);
    }
    if (lt) {
        const char *kinds = qt__traits(s.type)->positional;
        size_t i = nl + 1, start = i;
        int d = 0;
        if (p[n - 1] != '>')
            return qt__fail(err, QT_EPARSE, t.pos + (int)n - 1,
                            "%s: missing '>' at the end", qt_type_name(s.type));
        for (; i < n - 1; i++) {
            if (p[i] == '<') d++;
            else if (p[i] == '>') {
                if (--d < 0)
                    return qt__fail(err, QT_EPARSE, t.pos + (int)i, "unbalanced '>'");
            } else if (p[i] == ',' && d == 0) {
                int rc = parse_arg(&s, trim(p + start, i - start, t.pos + (int)start),
                                   &kinds, err, depth);
                if (rc) return rc;
                start = i + 1;
            }
        }
        if (d != 0)
            return qt__fail(err, QT_EPARSE, t.pos + (int)n - 1, "unbalanced '<'");
        if (!(n - 1 - start == 0 && start == nl + 1)) {     /* not "type<>" */
            int rc = parse_arg(&s, trim(p + start, n - 1 - start, t.pos + (int)start),
                               &kinds, err, depth);
            if (rc) return rc;
        } else {
            return qt__fail(err, QT_EPARSE, t.pos + (int)nl, "%s<>: empty argument list",
                            qt_type_name(s.type));
        }
    }
    return build(&s, out, err);
}

int qt_format_parse(const char *text, qt_format *out, qt_error *err)
{
    qt_format f;
    int rc;
    if (err) { err->pos = -1; err->text[0] = 0; }
    if (!text || !out)
        return qt__fail(err, QT_EINVAL, -1, "no text to parse");
    size_t n = strlen(text);
    if (n > 1024)
        return qt__fail(err, QT_EPARSE, 0, "format text longer than 1024 bytes");
    rc = parse_at(text, n, 0, &f, err, 0);
    if (rc == QT_OK) *out = f;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                 */
/* ------------------------------------------------------------------------ */

/* append ",opt" for the options that differ from the defaults */
static int opts(char *o, size_t size, const qt_format *f, int def_overflow)
{
    int n = 0;
    o[0] = 0;
    if (f->flags & QT_F_SYM) n += snprintf(o + n, size - n, ",sym");
    if (f->flags & QT_F_NOSUB) n += snprintf(o + n, size - n, ",nosub");
    if (f->flags & QT_F_FN) n += snprintf(o + n, size - n, ",fn");
    if (f->flags & QT_F_FINITE) n += snprintf(o + n, size - n, ",finite");
    if (f->round != QT_RNE) n += snprintf(o + n, size - n, ",%s", round_names[f->round]);
    if (f->overflow != def_overflow)
        n += snprintf(o + n, size - n, ",%s", overflow_names[f->overflow]);
    return n;
}

int qt__print_none(const qt_format *f, char *buf, size_t size)
{
    return snprintf(buf, size, "none");
}

int qt__print_fixed(const qt_format *f, char *buf, size_t size)
{
    char o[64];
    opts(o, sizeof o, f, QT_SAT);
    return snprintf(buf, size, "%s<%d,%d%s>", qt_type_name(f->type), f->width, f->bias, o);
}

static int float_default_overflow(const qt_format *f)
{
    return (f->flags & (QT_F_FN | QT_F_FINITE)) ? QT_SAT : QT_INF;
}

int qt__print_float(const qt_format *f, char *buf, size_t size)
{
    char o[64];
    opts(o, sizeof o, f, float_default_overflow(f));
    return snprintf(buf, size, "float<%d,e%d,b%d%s>", f->width, f->ebits, f->bias, o);
}

int qt__print_log(const qt_format *f, char *buf, size_t size)
{
    char o[64];
    opts(o, sizeof o, f, QT_SAT);
    return snprintf(buf, size, "log<%d,b%d%s>", f->width, f->bias, o);
}

int qt__print_binary(const qt_format *f, char *buf, size_t size)
{
    return snprintf(buf, size, "binary<b%d>", f->bias);
}

int qt__print_ternary(const qt_format *f, char *buf, size_t size)
{
    if (f->flags & QT_F_AUTO)
        return snprintf(buf, size, "ternary<b%d,auto>", f->bias);
    return snprintf(buf, size, "ternary<b%d,t%.9g>", f->bias, (double)f->thresh);
}

int qt__print_cluster(const qt_format *f, char *buf, size_t size)
{
    return snprintf(buf, size, "cluster<%d>", f->width);
}

int qt__print_block(const qt_format *f, char *buf, size_t size)
{
    qt_format e = { 0 };
    char eb[QT_TEXT_MAX];
    e.type = f->etype; e.width = f->width; e.ebits = f->ebits; e.round = f->round;
    e.overflow = f->overflow; e.flags = f->flags; e.bias = f->bias;
    qt_format_print(&e, eb, sizeof eb);
    return snprintf(buf, size, "block<%s,%d>", eb, f->block);
}

int qt__print_sparse(const qt_format *f, char *buf, size_t size)
{
    return snprintf(buf, size, "sparse<%.9g>", (double)f->thresh);
}

int qt_format_print(const qt_format *f, char *buf, size_t size)
{
    const qt_traits *t = f ? qt__traits(f->type) : NULL;
    if (!t) return snprintf(buf, size, "?");
    return t->print(f, buf, size);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

static void jset(json_t *o, const char *k, json_t *v) { json_object_set_new(o, k, v); }

static void json_round(const qt_format *f, json_t *o)
{
    jset(o, "round", json_string(round_names[f->round]));
    jset(o, "overflow", json_string(overflow_names[f->overflow]));
}

void qt__json_none(const qt_format *f, json_t *o) {}

void qt__json_fixed(const qt_format *f, json_t *o)
{
    jset(o, "width", json_integer(f->width));
    jset(o, "frac", json_integer(f->bias));
    if (f->type == QT_FIXED)
        jset(o, "symmetric", json_boolean(f->flags & QT_F_SYM));
    json_round(f, o);
}

void qt__json_float(const qt_format *f, json_t *o)
{
    jset(o, "width", json_integer(f->width));
    jset(o, "exp_bits", json_integer(f->ebits));
    jset(o, "bias", json_integer(f->bias));
    jset(o, "subnormals", json_boolean(!(f->flags & QT_F_NOSUB)));
    jset(o, "specials", json_string((f->flags & QT_F_FN) ? "fn" :
                                    (f->flags & QT_F_FINITE) ? "finite" : "ieee"));
    json_round(f, o);
}

void qt__json_log(const qt_format *f, json_t *o)
{
    jset(o, "width", json_integer(f->width));
    jset(o, "bias", json_integer(f->bias));
    json_round(f, o);
}

void qt__json_scale(const qt_format *f, json_t *o)
{
    jset(o, "bias", json_integer(f->bias));
}

void qt__json_ternary(const qt_format *f, json_t *o)
{
    jset(o, "bias", json_integer(f->bias));
    if (f->flags & QT_F_AUTO) jset(o, "threshold", json_string("auto"));
    else jset(o, "threshold", json_real(f->thresh));
}

void qt__json_cluster(const qt_format *f, json_t *o)
{
    jset(o, "width", json_integer(f->width));
}

void qt__json_block(const qt_format *f, json_t *o)
{
    qt_format e = { 0 };
    e.type = f->etype; e.width = f->width; e.ebits = f->ebits; e.round = f->round;
    e.overflow = f->overflow; e.flags = f->flags; e.bias = f->bias;
    jset(o, "block_size", json_integer(f->block));
    jset(o, "element", qt_format_to_json(&e));
}

void qt__json_sparse(const qt_format *f, json_t *o)
{
    jset(o, "threshold", json_real(f->thresh));
}

json_t *qt_format_to_json(const qt_format *f)
{
    const qt_traits *t = qt__traits(f->type);
    json_t *o = json_object();
    if (!o || !t) { json_decref(o); return NULL; }
    jset(o, "type", json_string(t->name));
    t->to_json(f, o);
    return o;
}

static int j_int(const char *key, json_t *v, int *out, qt_error *err)
{
    if (!json_is_integer(v))
        return qt__fail(err, QT_EINVAL, -1, "field '%s' must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < -100000 || x > 100000)
        return qt__fail(err, QT_EINVAL, -1, "field '%s' = %lld is out of range",
                        key, (long long)x);
    *out = (int)x;
    return QT_OK;
}

static int j_name(const char *key, json_t *v, const char **names, int count,
                  int *out, qt_error *err)
{
    if (!json_is_string(v))
        return qt__fail(err, QT_EINVAL, -1, "field '%s' must be a string", key);
    for (int i = 0; i < count; i++)
        if (strcasecmp(json_string_value(v), names[i]) == 0) { *out = i; return QT_OK; }
    return qt__fail(err, QT_EINVAL, -1, "field '%s': unknown value '%s'", key,
                    json_string_value(v));
}

static int from_json(const json_t *j, qt_format *out, qt_error *err, int depth)
{
    qt_spec s;
    const char *key;
    json_t *v, *jt;
    int rc = QT_OK;

    if (json_is_string(j)) {
        if (depth > 0) {
            qt_format e;
            rc = parse_at(json_string_value(j), strlen(json_string_value(j)), 0, &e, err, 1);
            if (rc == QT_OK) *out = e;
            return rc;
        }
        return qt_format_parse(json_string_value(j), out, err);
    }
    if (!json_is_object(j))
        return qt__fail(err, QT_EINVAL, -1, "a format must be a JSON object or a string");
    if (depth > 1)
        return qt__fail(err, QT_EINVAL, -1, "formats nest at most one level");
    jt = json_object_get(j, "type");
    if (!json_is_string(jt))
        return qt__fail(err, QT_EINVAL, -1, "field 'type' (a string) is required");
    spec_init(&s);
    s.type = type_by_name(json_string_value(jt), strlen(json_string_value(jt)));
    if (s.type < 0)
        return qt__fail(err, QT_EINVAL, -1, "field 'type': unknown type '%s'",
                        json_string_value(jt));
    json_object_foreach((json_t *)j, key, v) {
        if (!strcmp(key, "type")) continue;
        if (!strcmp(key, "width")) { rc = j_int(key, v, &s.w, err); s.has_w = 1; }
        else if (!strcmp(key, "frac")) { rc = j_int(key, v, &s.f, err); s.has_f = 1; }
        else if (!strcmp(key, "exp_bits")) { rc = j_int(key, v, &s.e, err); s.has_e = 1; }
        else if (!strcmp(key, "bias")) { rc = j_int(key, v, &s.b, err); s.has_b = 1; }
        else if (!strcmp(key, "block_size")) { rc = j_int(key, v, &s.k, err); s.has_k = 1; }
        else if (!strcmp(key, "round"))
            rc = j_name(key, v, round_names, QT_ROUND_COUNT, &s.round, err);
        else if (!strcmp(key, "overflow"))
            rc = j_name(key, v, overflow_names, QT_OVERFLOW_COUNT, &s.overflow, err);
        else if (!strcmp(key, "symmetric")) {
            if (!json_is_boolean(v)) rc = qt__fail(err, QT_EINVAL, -1, "field 'symmetric' must be true or false");
            else s.sym = json_is_true(v);
        } else if (!strcmp(key, "subnormals")) {
            if (!json_is_boolean(v)) rc = qt__fail(err, QT_EINVAL, -1, "field 'subnormals' must be true or false");
            else s.nosub = json_is_false(v);
        } else if (!strcmp(key, "specials")) {
            static const char *sp[] = { "ieee", "fn", "finite" };
            int k = 0;
            rc = j_name(key, v, sp, 3, &k, err);
            if (rc == QT_OK) s.specials = k == 0 ? 0 : k == 1 ? QT_F_FN : QT_F_FINITE;
        } else if (!strcmp(key, "threshold")) {
            if (json_is_string(v) && !strcmp(json_string_value(v), "auto")) s.t_auto = 1;
            else if (json_is_number(v)) { s.has_t = 1; s.t = (float)json_number_value(v); }
            else rc = qt__fail(err, QT_EINVAL, -1, "field 'threshold' must be a number or \"auto\"");
        } else if (!strcmp(key, "element")) {
            rc = from_json(v, &s.elem, err, depth + 1);
            if (rc) qt__prefix(err, "field 'element': ");
            s.has_elem = 1;
        } else
            rc = qt__fail(err, QT_EINVAL, -1, "unknown field '%s' for a %s format",
                          key, qt_type_name(s.type));
        if (rc) return rc;
    }
    return build(&s, out, err);
}

int qt_format_from_json(const json_t *j, qt_format *out, qt_error *err)
{
    qt_format f;
    int rc;
    if (err) { err->pos = -1; err->text[0] = 0; }
    if (!j || !out) return qt__fail(err, QT_EINVAL, -1, "no JSON");
    rc = from_json(j, &f, err, 0);
    if (rc == QT_OK) *out = f;
    return rc;
}
