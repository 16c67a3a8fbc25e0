/*
 * onnx.c -- ONNX import: an ONNX model (opsets 7-17) becomes an engine
 * graph (engine.h, "ONNX import").
 *
 * The nodes are walked in file order (valid ONNX is topologically sorted).
 * Every tensor name is tracked as either a constant (an initializer, a
 * Constant node, a bound input, or a result folded at import time) or an
 * engine node id. Constants meet activations as QT_OP_CONST nodes named
 * after their tensors, or become a node's parameters (weights, bias,
 * batchnorm statistics) where the op has them.
 *
 * Dims. Shapes are static: every activation's ONNX dims are the engine
 * node's per-sample dims, with the batch in front in batched mode (written
 * -1 here, "N" in messages). After each engine node is added, its dims are
 * checked against what ONNX says the output is: the dims computed here, and
 * those declared in value_info or the graph outputs when present.
 *
 * Batched mode (opts.whole = 0): dim 0 of every activation is the batch.
 * Constants have no batch: one with the full rank of the activation it meets
 * must have dim 0 == 1 (which is dropped); a lower-rank one aligns from the
 * right. Anything acting across dim 0 is refused naming the node.
 *
 * The op mapping is the table ops[] at the end: one function per op family.
 *
 * Decisions the contract leaves open:
 *  - Names: characters the engine refuses (controls, space, quotes,
 *    backslash) and non-ASCII bytes become '_'; past QT_NAME_MAX - 1 a name
 *    keeps its first characters and gets "~" and 8 hex digits of its hash;
 *    a taken name (or "default") gets _2, _3, ... Expansions: Gemm's
 *    transpose "<name>.t", Gemm's full-C add "<name>.bias" (its constant is
 *    named after C, scaled by beta), MatMul by a 1-D B "<name>.r" (the
 *    reshape dropping the unit dim).
 *  - Flatten in batched mode: axis 1, or a larger axis when the dims
 *    between 1 and it are all 1 (otherwise dim 0 would not be the batch).
 *  - Squeeze without axes in batched mode drops the per-sample 1s only.
 *  - Reshape to a per-sample scalar (rank 0) and dims of size 0 are
 *    refused (the engine's reshape has no rank-0 form; no empty tensors).
 *  - Clip with min > max gives max everywhere (ONNX); opset < 11 defaults
 *    are -FLT_MAX/FLT_MAX (ONNX's), opset >= 11 missing inputs -inf/inf.
 *  - BatchNormalization: engine momentum = 1 - ONNX momentum (the weight of
 *    the new batch); epsilon 0 becomes the smallest float (0 means 1e-5 to
 *    the engine).
 *  - Concat of more than QT_MAX_INPUTS inputs, MatMul with a constant A,
 *    and constant data of types other than float32 are QT_ENOTSUP.
 *  - Constant-only Add/Sub/Mul/Div, Reshape/Flatten/Squeeze/Unsqueeze,
 *    Transpose, Concat, Identity and Dropout are folded (integer results stay
 *    exact when both operands are integers); other ops on constants get the
 *    constant as a CONST node.
 */
#include "onnx_internal.h"

#include <float.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAXD QT_ONNX_MAX_DIMS
#define SPATIAL_MAX (1 << 15)     /* kernel, stride, dilation, pads bounds */
#define PAD_MAX     (1 << 20)     /* Pad op */

enum { T_UNDEF = 0, T_CONST = 1, T_NODE = 2 };

/* one ONNX tensor name */
typedef struct tval {
    const char *name;               /* borrowed from the model (NULL: free slot) */
    int         kind;               /* T_UNDEF, T_CONST or T_NODE */
    int         node;               /* T_NODE: the engine node */
    const Onnx__TensorProto *tp;    /* T_CONST from an initializer, decoded on use */
    const qt_onnx_tensor *c;        /* T_CONST: the value (borrowed or in owned[]) */
    int         cnode[2];           /* CONST node made of c: [drop dim 0]; -1: none */
    int         uses;               /* consuming nodes, plus one if a graph output */
    int         is_output;
    size_t      last_user;          /* index of the last node consuming it */
    const Onnx__ValueInfoProto *vi; /* declared type and shape, or NULL */
} tval;

typedef struct imp {
    const qt_onnx_opts *o;
    int          whole;             /* 1: every tensor is one sample */
    int          off;               /* ONNX dims before the per-sample ones (0/1) */
    int64_t      batch;             /* batched: the input's static dim 0, or -1 */
    int64_t      opset;             /* default domain */
    Onnx__GraphProto *gp;
    qt_graph    *g;
    qt_error    *err;
    tval        *tab;               /* open addressing, cap a power of 2 */
    size_t       cap;
    qt_onnx_tensor **owned;         /* decoded and folded constants */
    size_t       n_owned, cap_owned;
    unsigned char *fused;           /* per node: folded into an earlier one */
    /* the node being imported */
    const Onnx__NodeProto *nd;
    size_t       idx;
    const char  *op;                /* its op type */
    char         base[256];         /* its name (sanitised), engine nodes start so */
} imp;

typedef int (*op_fn)(imp *st);

static const char *S(const char *s) { return s ? s : ""; }

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static int fail(imp *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(imp *st, int rc, const char *fmt, ...)
{
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (st->nd)
        return qt_errorf(st->err, rc, -1, "node '%.60s' (%.32s): %s", st->base, st->op, msg);
    return qt_errorf(st->err, rc, -1, "%s", msg);
}

/* dims as text, the batch as N: "Nx3x4", "scalar" */
static const char *dstr(char *buf, size_t cap, int nd, const int64_t *d)
{
    size_t at = 0;
    if (nd == 0) { snprintf(buf, cap, "scalar"); return buf; }
    buf[0] = 0;
    for (int k = 0; k < nd && at < cap; k++) {
        int w = d[k] < 0 ? snprintf(buf + at, cap - at, k ? "xN" : "N")
                         : snprintf(buf + at, cap - at, k ? "x%lld" : "%lld", (long long)d[k]);
        if (w < 0) break;
        at += (size_t)w;
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The tensor table                                                          */
/* ------------------------------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* the entry for name (created when create is set; NULL for "" or absent) */
static tval *look(imp *st, const char *name, int create)
{
    if (!name || !*name) return NULL;
    size_t m = st->cap - 1, k = (size_t)fnv1a(name) & m;
    for (;; k = (k + 1) & m) {
        tval *t = &st->tab[k];
        if (!t->name) {
            if (!create) return NULL;
            t->name = name;
            t->cnode[0] = t->cnode[1] = -1;
            return t;
        }
        if (!strcmp(t->name, name)) return t;
    }
}

static int own(imp *st, qt_onnx_tensor *c)
{
    if (st->n_owned == st->cap_owned) {
        size_t nc = st->cap_owned ? 2 * st->cap_owned : 32;
        qt_onnx_tensor **no = realloc(st->owned, nc * sizeof *no);
        if (!no) { qt_onnx_tensor_free(c); return fail(st, QT_ENOMEM, "out of memory"); }
        st->owned = no;
        st->cap_owned = nc;
    }
    st->owned[st->n_owned++] = c;
    return QT_OK;
}

/* a new owned tensor */
static int new_tensor(imp *st, const char *name, int dtype, int nd, const int64_t *d,
                      qt_onnx_tensor **out)
{
    qt_onnx_tensor *c = qt__onnx_tensor_new(name, dtype, nd, d);
    if (!c) return fail(st, QT_ENOMEM, "out of memory (or a tensor past %zu elements)",
                        QT__ONNX_MAX_COUNT);
    *out = c;
    return own(st, c);
}

/* the value of a constant (decoding an initializer on first use) */
static int cval(imp *st, tval *t, const qt_onnx_tensor **c)
{
    if (!t->c) {
        qt_onnx_tensor *d;
        int rc = qt__onnx_tensor_decode(t->tp, "initializer: ", &d, st->err);
        if (rc) return rc;
        if ((rc = own(st, d))) return rc;
        t->c = d;
    }
    *c = t->c;
    return QT_OK;
}

/* full ONNX dims of an engine node's output (the batch is -1) */
static int act_dims(imp *st, int id, int64_t *d)
{
    int ps[QT_MAX_RANK], r = qt_graph_node_dims(st->g, id, ps);
    if (st->off) d[0] = -1;
    for (int k = 0; k < r; k++) d[st->off + k] = ps[k];
    return r + st->off;
}

static int dims_of(imp *st, tval *t, int *nd, int64_t *d)
{
    if (t->kind == T_NODE) { *nd = act_dims(st, t->node, d); return QT_OK; }
    const qt_onnx_tensor *c;
    int rc = cval(st, t, &c);
    if (rc) return rc;
    *nd = c->ndim;
    memcpy(d, c->dims, (size_t)c->ndim * sizeof *d);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

/* printable ASCII without spaces, quotes or backslashes (engine rule; non-
 * ASCII bytes too, so shortening never cuts a character in two) */
static void sanitise(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (; in[k] && k + 1 < cap; k++) {
        unsigned char ch = (unsigned char)in[k];
        out[k] = ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\' ? '_' : (char)ch;
    }
    out[k] = 0;
}

static int name_taken(imp *st, const char *s)
{
    return qt_graph_find(st->g, s) >= 0 || !strcmp(s, "default");
}

/* a unique engine name from base + suffix: past QT_NAME_MAX - 1 characters
 * the base is cut and a hash of the whole name appended; a taken name gets
 * _2, _3, ... */
static void make_name(imp *st, const char *base, const char *suffix, char out[QT_NAME_MAX])
{
    char full[400], clean[300];
    sanitise(*base ? base : "tensor", clean, sizeof clean);
    snprintf(full, sizeof full, "%s%s", clean, suffix);
    if (strlen(full) < QT_NAME_MAX) {
        memcpy(out, full, strlen(full) + 1);
    } else {
        int keep = QT_NAME_MAX - 1 - 9 - (int)strlen(suffix);
        unsigned h = (unsigned)(fnv1a(base) ^ (fnv1a(suffix) >> 7));
        snprintf(out, QT_NAME_MAX, "%.*s~%08x%s", keep, clean, h, suffix);
    }
    if (!name_taken(st, out)) return;
    char stem[QT_NAME_MAX];
    memcpy(stem, out, QT_NAME_MAX);
    for (int k = 2;; k++) {
        char sfx[16];
        int ls = snprintf(sfx, sizeof sfx, "_%d", k);
        int keep = (int)strlen(stem);
        if (keep > QT_NAME_MAX - 1 - ls) keep = QT_NAME_MAX - 1 - ls;
        snprintf(out, QT_NAME_MAX, "%.*s%s", keep, stem, sfx);
        if (!name_taken(st, out)) return;
    }
}

/* ------------------------------------------------------------------------ */
/* Attributes                                                                */
/* ------------------------------------------------------------------------ */

static const Onnx__AttributeProto *find_attr(imp *st, const char *name)
{
    for (size_t k = 0; k < st->nd->n_attribute; k++) {
        const Onnx__AttributeProto *a = st->nd->attribute[k];
        if (a && a->name && !strcmp(a->name, name)) return a;
    }
    return NULL;
}

static int atype(const Onnx__AttributeProto *a)
{
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return (int)a->type;
    if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static int attr_int(imp *st, const char *name, int64_t def, int64_t *v)
{
    const Onnx__AttributeProto *a = find_attr(st, name);
    *v = def;
    if (!a) return QT_OK;
    if (atype(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return fail(st, QT_ECORRUPT, "attribute '%s' must be an int", name);
    *v = a->i;
    return QT_OK;
}

static int attr_float(imp *st, const char *name, float def, float *v)
{
    const Onnx__AttributeProto *a = find_attr(st, name);
    *v = def;
    if (!a) return QT_OK;
    int t = atype(a);
    if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) *v = a->f;
    else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) *v = (float)a->i;
    else return fail(st, QT_ECORRUPT, "attribute '%s' must be a float", name);
    return QT_OK;
}

/* *n = -1 when absent */
static int attr_ints(imp *st, const char *name, const int64_t **v, int *n)
{
    const Onnx__AttributeProto *a = find_attr(st, name);
    *v = NULL;
    *n = -1;
    if (!a) return QT_OK;
    if (atype(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
        return fail(st, QT_ECORRUPT, "attribute '%s' must be a list of ints", name);
    if (a->n_ints > 64)
        return fail(st, QT_ENOTSUP, "attribute '%s' has %zu values", name, a->n_ints);
    *v = a->ints;
    *n = (int)a->n_ints;
    return QT_OK;
}

/* a string attribute as printable text (NUL-terminated, cut at cap) */
static int attr_str(imp *st, const char *name, const char *def, char *buf, size_t cap)
{
    const Onnx__AttributeProto *a = find_attr(st, name);
    snprintf(buf, cap, "%s", def);
    if (!a) return QT_OK;
    if (atype(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
        return fail(st, QT_ECORRUPT, "attribute '%s' must be a string", name);
    size_t k = 0;
    for (; k < a->s.len && k + 1 < cap; k++) {
        unsigned char ch = a->s.data[k];
        buf[k] = ch < 0x20 || ch > 0x7e ? '?' : (char)ch;
    }
    buf[k] = 0;
    return QT_OK;
}

static int in_range(imp *st, int64_t v, int64_t lo, int64_t hi, const char *what)
{
    if (v < lo || v > hi)
        return fail(st, QT_ENOTSUP, "%s = %lld is outside the supported range %lld..%lld",
                    what, (long long)v, (long long)lo, (long long)hi);
    return QT_OK;
}

static int norm_axis(imp *st, int64_t a, int r, const char *what, int *out)
{
    if (a < -r || a >= (r ? r : 1))
        return fail(st, QT_EINVAL, "%s %lld is out of range for rank %d", what, (long long)a, r);
    *out = (int)(a < 0 ? a + r : a);
    return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Inputs, outputs and engine nodes                                          */
/* ------------------------------------------------------------------------ */

/* input k of the node; NULL when absent or empty (optional) */
static tval *in_t(imp *st, int k)
{
    if (k < 0 || (size_t)k >= st->nd->n_input) return NULL;
    return look(st, st->nd->input[k], 0);
}

static int need_in(imp *st, int k, tval **t)
{
    *t = in_t(st, k);
    if (!*t) return fail(st, QT_ECORRUPT, "input %d is missing", k);
    return QT_OK;
}

/* input k as a constant (NULL when absent); an activation is QT_ENOTSUP */
static int const_in(imp *st, int k, const char *what, const qt_onnx_tensor **c)
{
    tval *t = in_t(st, k);
    *c = NULL;
    if (!t) return QT_OK;
    if (t->kind != T_CONST)
        return fail(st, QT_ENOTSUP, "%s ('%.60s') must be a constant (an initializer)",
                    what, t->name);
    return cval(st, t, c);
}

/* an integer constant vector (shape, axes, pads) */
static int ints_in(imp *st, int k, const char *what, const qt_onnx_tensor **c)
{
    int rc = const_in(st, k, what, c);
    if (rc || !*c) return rc;
    if (!(*c)->i)
        return fail(st, QT_ENOTSUP, "%s '%.60s' is %s (integers expected)", what,
                    (*c)->name, qt__onnx_dtype_name((*c)->dtype));
    if ((*c)->ndim > 1 || (*c)->count > 64)
        return fail(st, QT_ENOTSUP, "%s '%.60s' must be a short 1-D list", what, (*c)->name);
    return QT_OK;
}

/* a scalar float constant (one element); *have = 0 when absent */
static int scalar_in(imp *st, int k, const char *what, float *v, int *have)
{
    const qt_onnx_tensor *c;
    int rc = const_in(st, k, what, &c);
    *have = 0;
    if (rc || !c) return rc;
    if (c->count != 1)
        return fail(st, QT_EINVAL, "%s '%.60s' must hold one value (has %zu)", what,
                    c->name, c->count);
    *v = c->f[0];
    *have = 1;
    return QT_OK;
}

static int out_used(imp *st, int k)
{
    if ((size_t)k >= st->nd->n_output) return 0;
    tval *t = look(st, st->nd->output[k], 0);
    return t && t->uses > 0;
}

static int new_out(imp *st, int k, tval **t)
{
    *t = NULL;
    if ((size_t)k >= st->nd->n_output)
        return fail(st, QT_ECORRUPT, "has no output %d", k);
    if (!*st->nd->output[k]) return QT_OK;            /* omitted */
    *t = look(st, st->nd->output[k], 1);
    if ((*t)->kind != T_UNDEF)
        return fail(st, QT_ECORRUPT, "output '%.60s' is already defined", (*t)->name);
    return QT_OK;
}

/* check the engine's dims for a node output against ONNX's */
static int check_dims(imp *st, const tval *t, int id, const int64_t *exp, int exp_nd)
{
    int64_t d[MAXD + 1];
    char b1[64], b2[64];
    int nd = act_dims(st, id, d);
    size_t per = qt_graph_node_size(st->g, id);
    if (per > QT__ONNX_MAX_COUNT)
        return fail(st, QT_ENOTSUP, "output '%.60s' has %zu values per sample (at most %zu)",
                    t->name, per, QT__ONNX_MAX_COUNT);
    if (exp) {
        int ok = nd == exp_nd;
        for (int k = 0; ok && k < nd; k++) ok = exp[k] < 0 || exp[k] == d[k];
        if (!ok)
            return fail(st, QT_EINVAL, "the engine computes %s for output '%.40s', ONNX "
                        "says %s", dstr(b1, sizeof b1, nd, d), t->name,
                        dstr(b2, sizeof b2, exp_nd, exp));
    }
    const Onnx__TypeProto *ty = t->vi ? t->vi->type : NULL;
    if (!ty || ty->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !ty->tensor_type)
        return QT_OK;
    const Onnx__TypeProto__Tensor *tt = ty->tensor_type;
    if (tt->has_elem_type && tt->elem_type != 0 && tt->elem_type != QT_ONNX_FLOAT)
        return fail(st, QT_ENOTSUP, "output '%.60s' is %s: only float32 activations are "
                    "supported", t->name, qt__onnx_dtype_name(tt->elem_type));
    if (!tt->shape) return QT_OK;
    int ok = (int)tt->shape->n_dim == nd;
    int64_t decl[MAXD + 1];
    for (int k = 0; ok && k < nd; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[k];
        decl[k] = -1;
        if (!dm || dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            continue;
        decl[k] = dm->dim_value;
        if (k < st->off) continue;           /* the batch */
        ok = dm->dim_value == d[k];
    }
    if (!ok) {
        if ((int)tt->shape->n_dim != nd)
            return fail(st, QT_EINVAL, "the engine computes %s for output '%.60s', its "
                        "value_info declares rank %zu", dstr(b1, sizeof b1, nd, d), t->name,
                        tt->shape->n_dim);
        return fail(st, QT_EINVAL, "the engine computes %s for output '%.40s', its "
                    "value_info declares %s", dstr(b1, sizeof b1, nd, d), t->name,
                    dstr(b2, sizeof b2, nd, decl));
    }
    return QT_OK;
}

/* output k of the node is engine node id; exp: ONNX's dims for it */
static int set_out(imp *st, int k, int id, const int64_t *exp, int exp_nd)
{
    tval *t;
    int rc = new_out(st, k, &t);
    if (rc || !t) return rc;
    if ((rc = check_dims(st, t, id, exp, exp_nd))) return rc;
    t->kind = T_NODE;
    t->node = id;
    return QT_OK;
}

/* output k of the node is the constant c (owned or borrowed for longer) */
static int set_const_out(imp *st, int k, const qt_onnx_tensor *c)
{
    tval *t;
    int rc = new_out(st, k, &t);
    if (rc || !t) return rc;
    t->kind = T_CONST;
    t->c = c;
    return QT_OK;
}

/* output k is another tensor under a new name (Identity, folded nodes) */
static int alias_out(imp *st, int k, const tval *src)
{
    if (src->kind == T_NODE) {
        int64_t d[MAXD + 1];
        int nd = act_dims(st, src->node, d);
        return set_out(st, k, src->node, d, nd);
    }
    tval *t;
    int rc = new_out(st, k, &t);
    if (rc || !t) return rc;
    t->kind = T_CONST;
    t->tp = src->tp;
    t->c = src->c;
    return QT_OK;
}

/* add an engine node named after the ONNX node (plus suffix) */
static int add(imp *st, qt_op op, const char *suffix, const int *in, int n_in,
               const qt_attr *a, int *id)
{
    char nm[QT_NAME_MAX];
    make_name(st, st->base, suffix, nm);
    int r = qt_graph_add(st->g, op, nm, in, n_in, a, st->err);
    if (r < 0) return r;
    *id = r;
    return QT_OK;
}

static int fill_param(imp *st, int id, int which, const float *v, size_t n)
{
    qt_tensor *t = qt_graph_param(st->g, id, which);
    if (!t || t->size != n)
        return fail(st, QT_EINVAL, "engine node '%s' has %zu values for parameter %d, "
                    "ONNX gives %zu", qt_graph_node_name(st->g, id), t ? t->size : 0,
                    which, n);
    if (n) memcpy(t->data, v, n * sizeof *v);
    return QT_OK;
}

/* a constant as a QT_OP_CONST node (drop: without its dim 0, which is 1) */
static int materialise(imp *st, const qt_onnx_tensor *c, const char *tname, int drop,
                       int *id)
{
    qt_attr a;
    char nm[QT_NAME_MAX], buf[64];
    memset(&a, 0, sizeof a);
    if (c->dtype != QT_ONNX_FLOAT)
        return fail(st, QT_ENOTSUP, "constant '%.60s' is %s: only float32 data is supported",
                    tname, qt__onnx_dtype_name(c->dtype));
    a.rank = c->ndim - drop;
    if (a.rank > QT_MAX_RANK)
        return fail(st, QT_ENOTSUP, "constant '%.60s' has %d dims (at most %d per sample)",
                    tname, a.rank, QT_MAX_RANK);
    for (int k = 0; k < a.rank; k++) {
        if (c->dims[k + drop] < 1)
            return fail(st, QT_ENOTSUP, "constant '%.60s' is empty (%s)", tname,
                        dstr(buf, sizeof buf, c->ndim, c->dims));
        a.shape[k] = (int)c->dims[k + drop];
    }
    make_name(st, tname, "", nm);
    int r = qt_graph_add(st->g, QT_OP_CONST, nm, NULL, 0, &a, st->err);
    if (r < 0) return r;
    *id = r;
    return fill_param(st, r, 0, c->f, c->count);
}

/* t as an engine node. ref_rank: the full rank of the activation it meets
 * (batched mode: a constant of that rank drops its dim 0, which must be 1;
 * a lower rank keeps its dims; < 0: on its own, as if of full rank) */
static int as_node(imp *st, tval *t, int ref_rank, int *id)
{
    const qt_onnx_tensor *c;
    int rc, drop = 0;
    if (t->kind == T_NODE) { *id = t->node; return QT_OK; }
    if ((rc = cval(st, t, &c))) return rc;
    if (!st->whole) {
        if (ref_rank < 0) ref_rank = c->ndim;
        if (c->ndim > ref_rank)
            return fail(st, QT_ENOTSUP, "constant '%.60s' has more dims (%d) than the "
                        "activation it meets (%d): broadcasting would mix the batch (dim 0)",
                        t->name, c->ndim, ref_rank);
        if (c->ndim == ref_rank) {
            if (ref_rank == 0)
                return fail(st, QT_ENOTSUP, "scalar constant '%.60s' cannot be a batched "
                            "activation", t->name);
            if (c->dims[0] != 1)
                return fail(st, QT_ENOTSUP, "constant '%.60s' has dim 0 = %lld, but dim 0 is "
                            "the batch in batched mode (it must be 1)", t->name,
                            (long long)c->dims[0]);
            drop = 1;
        }
    }
    if (t->cnode[drop] >= 0) { *id = t->cnode[drop]; return QT_OK; }
    if ((rc = materialise(st, c, t->name, drop, id))) return rc;
    t->cnode[drop] = *id;
    return QT_OK;
}

/* the node's data input k as an activation on its own */
static int act_in(imp *st, int k, int *id, int *nd, int64_t *d)
{
    tval *t;
    int rc = need_in(st, k, &t);
    if (!rc) rc = as_node(st, t, -1, id);
    if (!rc) *nd = act_dims(st, *id, d);
    return rc;
}

/* numpy broadcasting of two full dim lists (-1: the batch) */
static int broadcast(imp *st, int na, const int64_t *a, int nb, const int64_t *b,
                     int *no, int64_t *o)
{
    char b1[64], b2[64];
    int n = na > nb ? na : nb;
    for (int k = 0; k < n; k++) {
        int ia = k - (n - na), ib = k - (n - nb);
        int64_t x = ia >= 0 ? a[ia] : 1, y = ib >= 0 ? b[ib] : 1;
        if (x == y || y == 1) o[k] = x;
        else if (x == 1) o[k] = y;
        else
            return fail(st, x < 0 || y < 0 ? QT_ENOTSUP : QT_EINVAL,
                        "cannot broadcast %s with %s%s", dstr(b1, sizeof b1, na, a),
                        dstr(b2, sizeof b2, nb, b),
                        x < 0 || y < 0 ? " (dim 0 is the batch: constants need 1 there)" : "");
    }
    *no = n;
    return QT_OK;
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int k = from; k < to; k++) p *= d[k];
    return p;
}

/* ------------------------------------------------------------------------ */
/* Constant folding                                                          */
/* ------------------------------------------------------------------------ */

/* element index in a (dims ad, rank na, aligned right in rank n) of the
 * output coordinate co */
static size_t bidx(const int64_t *co, int n, int na, const int64_t *ad)
{
    size_t ix = 0;
    for (int k = 0; k < na; k++) {
        int64_t c = co[k + n - na];
        ix = ix * (size_t)ad[k] + (size_t)(ad[k] == 1 ? 0 : c);
    }
    return ix;
}

static int fold_binary(imp *st, int opk, const qt_onnx_tensor *a, const qt_onnx_tensor *b)
{
    int64_t d[MAXD];
    int n, rc;
    qt_onnx_tensor *c;
    if ((rc = broadcast(st, a->ndim, a->dims, b->ndim, b->dims, &n, d))) return rc;
    int ints = a->i && b->i;
    if ((rc = new_tensor(st, st->nd->output[0], ints ? QT_ONNX_INT64 : QT_ONNX_FLOAT, n, d, &c)))
        return rc;
    int64_t co[MAXD] = { 0 };
    for (size_t e = 0; e < c->count; e++) {
        size_t ia = bidx(co, n, a->ndim, a->dims), ib = bidx(co, n, b->ndim, b->dims);
        if (ints) {
            int64_t x = a->i[ia], y = b->i[ib], v;
            switch (opk) {
            case 0: v = (int64_t)((uint64_t)x + (uint64_t)y); break;
            case 1: v = (int64_t)((uint64_t)x - (uint64_t)y); break;
            case 2: v = (int64_t)((uint64_t)x * (uint64_t)y); break;
            default:
                if (y == 0 || (x == INT64_MIN && y == -1))
                    return fail(st, QT_EINVAL, "integer division by zero or overflow");
                v = x / y;
            }
            c->i[e] = v;
            c->f[e] = (float)v;
        } else {
            float x = a->f[ia], y = b->f[ib];
            c->f[e] = opk == 0 ? x + y : opk == 1 ? x - y : opk == 2 ? x * y : x / y;
        }
        for (int k = n - 1; k >= 0; k--) {           /* next coordinate */
            if (++co[k] < d[k]) break;
            co[k] = 0;
        }
    }
    return set_const_out(st, 0, c);
}

/* a constant with new dims (same values) */
static int fold_reshape(imp *st, const qt_onnx_tensor *x, int nd, const int64_t *d)
{
    qt_onnx_tensor *c;
    int rc = new_tensor(st, st->nd->output[0], x->dtype, nd, d, &c);
    if (rc) return rc;
    if (c->count != x->count)
        return fail(st, QT_EINVAL, "cannot reshape %zu values to %zu", x->count, c->count);
    memcpy(c->f, x->f, x->count * sizeof *c->f);
    if (x->i) memcpy(c->i, x->i, x->count * sizeof *c->i);
    return set_const_out(st, 0, c);
}

/* ------------------------------------------------------------------------ */
/* Op functions                                                              */
/* ------------------------------------------------------------------------ */

/* the activation reshaped to full dims d (batched: d[0] is the batch) */
static int emit_reshape(imp *st, tval *x, int nd, const int64_t *d)
{
    int rc, id, xid;
    qt_attr a;
    char buf[64];
    if (x->kind == T_CONST) {
        const qt_onnx_tensor *c;
        if ((rc = cval(st, x, &c))) return rc;
        return fold_reshape(st, c, nd, d);
    }
    memset(&a, 0, sizeof a);
    a.rank = nd - st->off;
    if (a.rank < 1)
        return fail(st, QT_ENOTSUP, "reshaping to a per-sample scalar is not supported");
    if (a.rank > QT_MAX_RANK)
        return fail(st, QT_ENOTSUP, "result has %d dims per sample (at most %d)", a.rank,
                    QT_MAX_RANK);
    for (int k = 0; k < a.rank; k++) {
        int64_t v = d[st->off + k];
        if (v < 1 || (uint64_t)v > QT__ONNX_MAX_COUNT)
            return fail(st, QT_ENOTSUP, "result %s has an empty or huge dim",
                        dstr(buf, sizeof buf, nd, d));
        a.shape[k] = (int)v;
    }
    xid = x->node;
    if ((rc = add(st, QT_OP_RESHAPE, "", &xid, 1, &a, &id))) return rc;
    int64_t e[MAXD + 1];
    memcpy(e, d, (size_t)nd * sizeof *d);
    if (st->off) e[0] = -1;
    return set_out(st, 0, id, e, nd);
}

static int op_flatten(imp *st)
{
    tval *x;
    int64_t axis, d[MAXD + 1], o[2];
    int nd, ax, rc;
    if ((rc = need_in(st, 0, &x)) || (rc = dims_of(st, x, &nd, d))) return rc;
    if ((rc = attr_int(st, "axis", 1, &axis))) return rc;
    if (axis < -nd || axis > nd)
        return fail(st, QT_EINVAL, "axis %lld is out of range for rank %d", (long long)axis, nd);
    ax = (int)(axis < 0 ? axis + nd : axis);
    if (x->kind == T_NODE && st->off) {
        if (ax == 0)
            return fail(st, QT_ENOTSUP, "Flatten with axis 0 merges the batch (dim 0) into "
                        "one row");
        if (prod(d, 1, ax) != 1)
            return fail(st, QT_ENOTSUP, "Flatten with axis %d folds per-sample dims into "
                        "dim 0, the batch", ax);
        o[0] = -1;
        o[1] = prod(d, 1, nd);
        return emit_reshape(st, x, 2, o);
    }
    o[0] = prod(d, 0, ax);
    o[1] = prod(d, ax, nd);
    return emit_reshape(st, x, 2, o);
}

static int op_reshape(imp *st)
{
    tval *x;
    const qt_onnx_tensor *s;
    int64_t d[MAXD + 1], o[MAXD + 1], allowzero;
    int nd, rc, infer = -1;
    if ((rc = need_in(st, 0, &x)) || (rc = dims_of(st, x, &nd, d))) return rc;
    if ((rc = ints_in(st, 1, "shape", &s))) return rc;
    if (!s) return fail(st, QT_ECORRUPT, "the shape input is missing");
    if ((rc = attr_int(st, "allowzero", 0, &allowzero))) return rc;
    int no = (int)s->count;
    if (no > MAXD)
        return fail(st, QT_ENOTSUP, "target has %d dims (at most %d)", no, MAXD);
    int batched = x->kind == T_NODE && st->off;
    size_t total = 1;                        /* values to place (per sample if batched) */
    for (int k = batched; k < nd; k++) total *= (size_t)d[k];
    if (batched) {
        int64_t s0 = no ? s->i[0] : 0;
        if (no == 0 || !((s0 == 0 && !allowzero) || s0 == -1 || (st->batch > 0 && s0 == st->batch)))
            return fail(st, QT_ENOTSUP, "Reshape target dim 0 (%lld) does not keep the batch "
                        "(use 0, -1 or the model's batch size)", no ? (long long)s0 : 0LL);
        o[0] = -1;
    }
    size_t known = 1;
    for (int k = batched; k < no; k++) {
        int64_t v = s->i[k];
        if (v == 0 && !allowzero) {
            if (k >= nd) return fail(st, QT_EINVAL, "target dim %d copies a dim the input "
                                     "does not have", k);
            v = d[k];
        }
        if (v == -1) {
            if (infer >= 0) return fail(st, QT_EINVAL, "target has two -1 dims");
            infer = k;
            continue;
        }
        if (v < 0 || (uint64_t)v > QT__ONNX_MAX_COUNT)
            return fail(st, QT_EINVAL, "target dim %d is %lld", k, (long long)v);
        o[k] = v;
        known *= (size_t)v;
        if (known > QT__ONNX_MAX_COUNT) return fail(st, QT_EINVAL, "target is too large");
    }
    if (batched && no && s->i[0] == -1 && infer >= 0)
        return fail(st, QT_EINVAL, "target has two -1 dims");
    if (infer >= 0) {
        if (known == 0 || total % known)
            return fail(st, QT_EINVAL, "cannot infer the -1 dim: %zu values into blocks of %zu",
                        total, known);
        o[infer] = (int64_t)(total / known);
    } else if (known != total) {
        return fail(st, QT_EINVAL, "cannot reshape %zu values%s to %zu", total,
                    batched ? " per sample" : "", known);
    }
    return emit_reshape(st, x, no, o);
}

/* Squeeze and Unsqueeze */
static int op_squeeze(imp *st)
{
    tval *x;
    const qt_onnx_tensor *ac = NULL;
    const int64_t *axes = NULL;
    int64_t d[MAXD + 1], o[MAXD + 1];
    int nd, na = -1, rc, unsq = !strcmp(st->op, "Unsqueeze");
    unsigned char mark[2 * MAXD + 2] = { 0 };
    if ((rc = need_in(st, 0, &x)) || (rc = dims_of(st, x, &nd, d))) return rc;
    if (st->opset < 13) {
        if ((rc = attr_ints(st, "axes", &axes, &na))) return rc;
    } else {
        if ((rc = ints_in(st, 1, "axes", &ac))) return rc;
        if (ac) { axes = ac->i; na = (int)ac->count; }
    }
    int batched = x->kind == T_NODE && st->off;
    if (unsq) {
        if (na < 0) return fail(st, QT_ECORRUPT, "axes are missing");
        int no = nd + na;
        if (no > MAXD) return fail(st, QT_ENOTSUP, "result has %d dims (at most %d)", no, MAXD);
        for (int k = 0; k < na; k++) {
            int a = 0;
            if ((rc = norm_axis(st, axes[k], no, "axis", &a))) return rc;
            if (mark[a]) return fail(st, QT_EINVAL, "axis %d is repeated", a);
            if (batched && a == 0)
                return fail(st, QT_ENOTSUP, "Unsqueeze at axis 0 moves the batch (dim 0)");
            mark[a] = 1;
        }
        for (int k = 0, j = 0; k < no; k++) o[k] = mark[k] ? 1 : d[j++];
        return emit_reshape(st, x, no, o);
    }
    if (na < 0) {                           /* every 1 (batched: not the batch) */
        for (int k = batched; k < nd; k++) mark[k] = d[k] == 1;
    } else {
        for (int k = 0; k < na; k++) {
            int a = 0;
            if ((rc = norm_axis(st, axes[k], nd, "axis", &a))) return rc;
            if (batched && a == 0)
                return fail(st, QT_ENOTSUP, "Squeeze of axis 0 removes the batch (dim 0)");
            if (d[a] != 1)
                return fail(st, QT_EINVAL, "axis %d has size %lld, not 1", a, (long long)d[a]);
            mark[a] = 1;
        }
    }
    int no = 0;
    for (int k = 0; k < nd; k++)
        if (!mark[k]) o[no++] = d[k];
    return emit_reshape(st, x, no, o);
}

static int op_transpose(imp *st)
{
    tval *x;
    const int64_t *pv;
    int64_t d[MAXD + 1], o[MAXD + 1];
    int nd, np, rc, perm[MAXD];
    unsigned char seen[MAXD] = { 0 };
    char buf[64];
    if ((rc = need_in(st, 0, &x)) || (rc = dims_of(st, x, &nd, d))) return rc;
    if ((rc = attr_ints(st, "perm", &pv, &np))) return rc;
    if (np >= 0 && np != nd)
        return fail(st, QT_EINVAL, "perm has %d entries for rank %d", np, nd);
    for (int k = 0; k < nd; k++) {
        int64_t p = np < 0 ? nd - 1 - k : pv[k];
        if (p < 0 || p >= nd || seen[p])
            return fail(st, QT_EINVAL, "perm is not a permutation of 0..%d", nd - 1);
        seen[p] = 1;
        perm[k] = (int)p;
        o[k] = d[p];
    }
    if (x->kind == T_CONST) {                 /* fold */
        const qt_onnx_tensor *c;
        qt_onnx_tensor *y;
        if ((rc = cval(st, x, &c)) || (rc = new_tensor(st, st->nd->output[0], c->dtype, nd, o, &y)))
            return rc;
        int64_t co[MAXD] = { 0 }, st_in[MAXD];
        for (int k = nd - 1, s = 1; k >= 0; k--) { st_in[k] = s; s *= (int)c->dims[k]; }
        for (size_t e = 0; e < y->count; e++) {
            size_t src = 0;
            for (int k = 0; k < nd; k++) src += (size_t)(co[k] * st_in[perm[k]]);
            y->f[e] = c->f[src];
            if (c->i) y->i[e] = c->i[src];
            for (int k = nd - 1; k >= 0; k--) {
                if (++co[k] < o[k]) break;
                co[k] = 0;
            }
        }
        return set_const_out(st, 0, y);
    }
    qt_attr a;
    memset(&a, 0, sizeof a);
    if (st->off && perm[0] != 0)
        return fail(st, QT_ENOTSUP, "Transpose moves the batch (perm[0] = %d on %s)", perm[0],
                    dstr(buf, sizeof buf, nd, d));
    a.rank = nd - st->off;
    for (int k = st->off; k < nd; k++) a.perm[k - st->off] = perm[k] - st->off;
    int id, xid = x->node;
    if ((rc = add(st, QT_OP_TRANSPOSE, "", &xid, 1, &a, &id))) return rc;
    return set_out(st, 0, id, o, nd);
}

static int op_concat(imp *st)
{
    int64_t axis, d[MAXD + 1], o[MAXD + 1], e[MAXD + 1];
    int n = (int)st->nd->n_input, nd = -1, ne, ax = 0, rc, ref = -1, all_const = 1, ints = 1;
    char b1[64], b2[64];
    if ((rc = attr_int(st, "axis", INT64_MIN, &axis))) return rc;
    if (axis == INT64_MIN) return fail(st, QT_ECORRUPT, "attribute 'axis' is missing");
    if (n < 1) return fail(st, QT_ECORRUPT, "has no inputs");
    for (int k = 0; k < n; k++) {
        tval *t;
        if ((rc = need_in(st, k, &t)) || (rc = dims_of(st, t, &ne, e))) return rc;
        if (t->kind == T_NODE) { all_const = 0; ref = ne; }
        else {
            const qt_onnx_tensor *c;
            if ((rc = cval(st, t, &c))) return rc;
            if (!c->i) ints = 0;
        }
        if (k == 0) {
            nd = ne;
            memcpy(o, e, sizeof e);
            if ((rc = norm_axis(st, axis, nd, "axis", &ax))) return rc;
            o[ax] = 0;
        } else if (ne != nd) {
            return fail(st, QT_EINVAL, "inputs have ranks %d and %d", nd, ne);
        }
        for (int j = 0; j < nd; j++) {
            if (j == ax) { o[j] += e[j]; continue; }
            if (e[j] == o[j] || (st->off && j == 0 && (e[j] < 0 || o[j] < 0))) {
                if (e[j] < 0) o[j] = -1;
                continue;
            }
            return fail(st, QT_EINVAL, "input %d is %s, input 0 is %s (only axis %d may differ)",
                        k, dstr(b1, sizeof b1, ne, e), dstr(b2, sizeof b2, nd, d), ax);
        }
        if (k == 0) memcpy(d, e, sizeof e);
    }
    if (all_const) {                           /* fold */
        qt_onnx_tensor *y;
        if ((rc = new_tensor(st, st->nd->output[0], ints ? QT_ONNX_INT64 : QT_ONNX_FLOAT, nd, o, &y)))
            return rc;
        size_t outer = (size_t)prod(o, 0, ax), inner = (size_t)prod(o, ax + 1, nd), at = 0;
        for (size_t r = 0; r < outer; r++)
            for (int k = 0; k < n; k++) {
                const qt_onnx_tensor *c;
                cval(st, in_t(st, k), &c);
                size_t blk = (size_t)c->dims[ax] * inner;
                memcpy(y->f + at, c->f + r * blk, blk * sizeof *y->f);
                if (ints) memcpy(y->i + at, c->i + r * blk, blk * sizeof *y->i);
                at += blk;
            }
        return set_const_out(st, 0, y);
    }
    if (st->off && ax == 0)
        return fail(st, QT_ENOTSUP, "Concat along axis 0 joins samples of the batch");
    if (n > QT_MAX_INPUTS)
        return fail(st, QT_ENOTSUP, "%d inputs (the engine joins at most %d)", n, QT_MAX_INPUTS);
    int ids[QT_MAX_INPUTS], id;
    for (int k = 0; k < n; k++)
        if ((rc = as_node(st, in_t(st, k), ref, &ids[k]))) return rc;
    qt_attr a;
    memset(&a, 0, sizeof a);
    a.axis = ax - st->off;
    if ((rc = add(st, QT_OP_CONCAT, "", ids, n, &a, &id))) return rc;
    return set_out(st, 0, id, o, nd);
}

/* Add, Sub, Mul, Div */
static int op_binary(imp *st)
{
    static const char *const names[] = { "Add", "Sub", "Mul", "Div" };
    static const qt_op ops_[] = { QT_OP_ADD, QT_OP_SUB, QT_OP_MUL, QT_OP_DIV };
    tval *a, *b;
    int64_t da[MAXD + 1], db[MAXD + 1], o[MAXD + 1];
    int na, nb, no, rc, opk = 0;
    while (strcmp(st->op, names[opk])) opk++;
    if ((rc = need_in(st, 0, &a)) || (rc = need_in(st, 1, &b))) return rc;
    if ((rc = dims_of(st, a, &na, da)) || (rc = dims_of(st, b, &nb, db))) return rc;
    if (a->kind == T_CONST && b->kind == T_CONST) {
        const qt_onnx_tensor *ca, *cb;
        if ((rc = cval(st, a, &ca)) || (rc = cval(st, b, &cb))) return rc;
        return fold_binary(st, opk, ca, cb);
    }
    if (st->off && a->kind == T_NODE && b->kind == T_NODE && na != nb)
        return fail(st, QT_ENOTSUP, "activations of rank %d and %d: broadcasting would align "
                    "the batch (dim 0) with another dim", na, nb);
    if ((rc = broadcast(st, na, da, nb, db, &no, o))) return rc;
    int ref = a->kind == T_NODE ? na : nb, in[2], id;
    if ((rc = as_node(st, a, ref, &in[0])) || (rc = as_node(st, b, ref, &in[1]))) return rc;
    if ((rc = add(st, ops_[opk], "", in, 2, NULL, &id))) return rc;
    return set_out(st, 0, id, o, no);
}

/* Relu, Sigmoid, Tanh, LeakyRelu, Clip */
static int op_unary(imp *st)
{
    qt_attr a;
    qt_op op;
    int64_t d[MAXD + 1];
    int nd, rc, x, id;
    memset(&a, 0, sizeof a);
    if (!strcmp(st->op, "Relu")) op = QT_OP_RELU;
    else if (!strcmp(st->op, "Sigmoid")) op = QT_OP_SIGMOID;
    else if (!strcmp(st->op, "Tanh")) op = QT_OP_TANH;
    else if (!strcmp(st->op, "LeakyRelu")) {
        op = QT_OP_LEAKY;
        if ((rc = attr_float(st, "alpha", 0.01f, &a.alpha))) return rc;
    } else {
        op = QT_OP_CLIP;
        if (st->opset < 11) {
            if ((rc = attr_float(st, "min", -FLT_MAX, &a.lo)) ||
                (rc = attr_float(st, "max", FLT_MAX, &a.hi))) return rc;
        } else {
            int h;
            a.lo = -INFINITY;
            a.hi = INFINITY;
            if ((rc = scalar_in(st, 1, "min", &a.lo, &h)) ||
                (rc = scalar_in(st, 2, "max", &a.hi, &h))) return rc;
        }
        if (a.lo > a.hi) a.lo = a.hi;         /* ONNX: everything becomes max */
    }
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if ((rc = add(st, op, "", &x, 1, &a, &id))) return rc;
    return set_out(st, 0, id, d, nd);
}

static int op_prelu(imp *st)
{
    const qt_onnx_tensor *s;
    int64_t d[MAXD + 1], o[MAXD + 1];
    int nd, no, rc, x, id, drop = 0;
    qt_attr a;
    char buf[64];
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    tval *t = in_t(st, 1);
    if (!t) return fail(st, QT_ECORRUPT, "the slope input is missing");
    if (t->kind != T_CONST)
        return fail(st, QT_ENOTSUP, "the slope ('%.60s') must be a constant (an initializer)",
                    t->name);
    if ((rc = cval(st, t, &s))) return rc;
    if (s->dtype != QT_ONNX_FLOAT)
        return fail(st, QT_ENOTSUP, "slope '%.60s' is %s (float32 expected)", t->name,
                    qt__onnx_dtype_name(s->dtype));
    if ((rc = broadcast(st, nd, d, s->ndim, s->dims, &no, o))) return rc;
    if (no != nd || memcmp(o + st->off, d + st->off, (size_t)(nd - st->off) * sizeof *o))
        return fail(st, QT_EINVAL, "slope %s does not broadcast to the input",
                    dstr(buf, sizeof buf, s->ndim, s->dims));
    if (st->off && s->ndim == nd) {
        if (s->dims[0] != 1)
            return fail(st, QT_ENOTSUP, "slope '%.60s' has dim 0 = %lld, but dim 0 is the batch",
                        t->name, (long long)s->dims[0]);
        drop = 1;
    }
    memset(&a, 0, sizeof a);
    a.rank = s->ndim - drop;
    for (int k = 0; k < a.rank; k++) a.shape[k] = (int)s->dims[k + drop];
    if ((rc = add(st, QT_OP_PRELU, "", &x, 1, &a, &id))) return rc;
    if ((rc = fill_param(st, id, 0, s->f, s->count))) return rc;
    return set_out(st, 0, id, d, nd);
}

/* kernel geometry of Conv, MaxPool, AveragePool: strides, dilations, pads
 * (auto_pad resolved against the static input dims in[0..S)); out[] gets
 * the output dims */
static int spatial(imp *st, qt_attr *a, int S, const int64_t *in, int ceil_mode,
                   int dil_ok, int64_t *out)
{
    const int64_t *sv, *dv, *pv;
    int ns, ndl, np, rc;
    char ap[32];
    if ((rc = attr_ints(st, "strides", &sv, &ns)) || (rc = attr_ints(st, "dilations", &dv, &ndl)) ||
        (rc = attr_ints(st, "pads", &pv, &np)) || (rc = attr_str(st, "auto_pad", "NOTSET", ap, sizeof ap)))
        return rc;
    if ((ns >= 0 && ns != S) || (ndl >= 0 && ndl != S) || (np >= 0 && np != 2 * S))
        return fail(st, QT_EINVAL, "strides/dilations/pads do not match %d spatial dims", S);
    int mode = !strcmp(ap, "NOTSET") ? 0 : !strcmp(ap, "VALID") ? 1 :
               !strcmp(ap, "SAME_UPPER") ? 2 : !strcmp(ap, "SAME_LOWER") ? 3 : -1;
    if (mode < 0)
        return fail(st, QT_ENOTSUP, "auto_pad '%s' is not supported (NOTSET, VALID, SAME_UPPER, "
                    "SAME_LOWER)", ap);
    for (int k = 0; k < S; k++) {
        int64_t s = ns > 0 ? sv[k] : 1, dl = ndl > 0 ? dv[k] : 1;
        if ((rc = in_range(st, s, 1, SPATIAL_MAX, "stride")) ||
            (rc = in_range(st, dl, 1, SPATIAL_MAX, "dilation"))) return rc;
        if (dl != 1 && !dil_ok) return fail(st, QT_ENOTSUP, "dilations other than 1");
        a->stride[k] = (int)s;
        a->dilation[k] = (int)dl;
        int64_t ext = (int64_t)(a->kernel[k] - 1) * dl + 1, pb = 0, pe = 0;
        if (mode == 0 && np > 0) {
            pb = pv[k];
            pe = pv[k + S];
        } else if (mode >= 2) {
            int64_t o = (in[k] + s - 1) / s, tot = (o - 1) * s + ext - in[k];
            if (tot < 0) tot = 0;
            pb = mode == 2 ? tot / 2 : tot - tot / 2;
            pe = tot - pb;
        }
        if ((rc = in_range(st, pb, 0, SPATIAL_MAX, "pad")) ||
            (rc = in_range(st, pe, 0, SPATIAL_MAX, "pad"))) return rc;
        a->pad[k] = (int)pb;
        a->pad[k + S] = (int)pe;
        int64_t num = in[k] + pb + pe - ext;
        if (num < 0)
            return fail(st, QT_EINVAL, "the kernel extent %lld is larger than the padded input "
                        "%lld", (long long)ext, (long long)(in[k] + pb + pe));
        int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
        if (ceil_mode && (o - 1) * s >= in[k] + pb) o--;
        out[k] = o;
    }
    return QT_OK;
}

static int op_conv(imp *st)
{
    const qt_onnx_tensor *w, *b;
    const int64_t *ks;
    int64_t d[MAXD + 1], o[MAXD + 1], group;
    int nd, nks, rc, x, id;
    qt_attr a;
    char buf[64];
    tval *wt = in_t(st, 1);
    if (!wt) return fail(st, QT_ECORRUPT, "the weights input is missing");
    if (wt->kind != T_CONST)
        return fail(st, QT_ENOTSUP, "weights must be an initializer ('%.60s' is computed)",
                    wt->name);
    if ((rc = cval(st, wt, &w)) || (rc = const_in(st, 2, "bias", &b))) return rc;
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    int S = w->ndim - 2;
    if (S < 1 || S > 3)
        return fail(st, QT_ENOTSUP, "weights %s: only 1-D, 2-D and 3-D convolutions",
                    dstr(buf, sizeof buf, w->ndim, w->dims));
    if (w->dtype != QT_ONNX_FLOAT || (b && b->dtype != QT_ONNX_FLOAT))
        return fail(st, QT_ENOTSUP, "weights and bias must be float32");
    if (nd != S + 2)
        return fail(st, QT_EINVAL, "input %s for %d-D weights %s", dstr(buf, sizeof buf, nd, d),
                    S, w->name);
    memset(&a, 0, sizeof a);
    if ((rc = attr_ints(st, "kernel_shape", &ks, &nks)) || (rc = attr_int(st, "group", 1, &group)))
        return rc;
    if (nks >= 0 && (nks != S || memcmp(ks, w->dims + 2, (size_t)S * sizeof *ks)))
        return fail(st, QT_EINVAL, "kernel_shape does not match the weights %s",
                    dstr(buf, sizeof buf, w->ndim, w->dims));
    for (int k = 0; k < S; k++) {
        if ((rc = in_range(st, w->dims[k + 2], 1, SPATIAL_MAX, "kernel size"))) return rc;
        a.kernel[k] = (int)w->dims[k + 2];
    }
    if ((rc = in_range(st, group, 1, INT_MAX, "group")) ||
        (rc = in_range(st, w->dims[0], 1, INT_MAX, "output channels"))) return rc;
    if (d[1] >= 0 && d[1] != w->dims[1] * group)
        return fail(st, QT_EINVAL, "input has %lld channels, weights %s with group %lld need %lld",
                    (long long)d[1], dstr(buf, sizeof buf, w->ndim, w->dims), (long long)group,
                    (long long)(w->dims[1] * group));
    if (b && (b->ndim != 1 || b->dims[0] != w->dims[0]))
        return fail(st, QT_EINVAL, "bias %s for %lld output channels",
                    dstr(buf, sizeof buf, b->ndim, b->dims), (long long)w->dims[0]);
    if ((rc = spatial(st, &a, S, d + 2, 0, 1, o + 2))) return rc;
    a.groups = (int)group;
    a.out = (int)w->dims[0];
    a.bias = b != NULL;
    o[0] = d[0];
    o[1] = w->dims[0];
    if ((rc = add(st, QT_OP_CONV, "", &x, 1, &a, &id))) return rc;
    if ((rc = fill_param(st, id, 0, w->f, w->count))) return rc;
    if (b && (rc = fill_param(st, id, 1, b->f, b->count))) return rc;
    return set_out(st, 0, id, o, nd);
}

/* MaxPool, AveragePool */
static int op_pool(imp *st)
{
    const int64_t *ks;
    int64_t d[MAXD + 1], o[MAXD + 1], ceil_mode, so, cip;
    int nd, nks, rc, x, id, maxp = !strcmp(st->op, "MaxPool");
    qt_attr a;
    char buf[64];
    memset(&a, 0, sizeof a);
    if ((rc = attr_ints(st, "kernel_shape", &ks, &nks)) ||
        (rc = attr_int(st, "ceil_mode", 0, &ceil_mode)) ||
        (rc = attr_int(st, "storage_order", 0, &so)) ||
        (rc = attr_int(st, "count_include_pad", 0, &cip))) return rc;
    int S = nks;
    if (S < 1 || S > 3)
        return fail(st, QT_ENOTSUP, "kernel_shape with %d dims (1 to 3 supported)", S);
    if (so != 0) return fail(st, QT_ENOTSUP, "storage_order %lld (only 0)", (long long)so);
    if (maxp && out_used(st, 1))
        return fail(st, QT_ENOTSUP, "the Indices output is used (not supported)");
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if (nd != S + 2)
        return fail(st, QT_EINVAL, "input %s for a %d-D kernel", dstr(buf, sizeof buf, nd, d), S);
    for (int k = 0; k < S; k++) {
        if ((rc = in_range(st, ks[k], 1, SPATIAL_MAX, "kernel size"))) return rc;
        a.kernel[k] = (int)ks[k];
    }
    if ((rc = spatial(st, &a, S, d + 2, ceil_mode != 0, maxp, o + 2))) return rc;
    a.ceil_mode = ceil_mode != 0;
    a.count_pad = !maxp && cip != 0;
    o[0] = d[0];
    o[1] = d[1];
    if ((rc = add(st, maxp ? QT_OP_MAXPOOL : QT_OP_AVGPOOL, "", &x, 1, &a, &id))) return rc;
    return set_out(st, 0, id, o, nd);
}

/* GlobalAveragePool, GlobalMaxPool: keep [C, 1, ...] */
static int op_global(imp *st)
{
    int64_t d[MAXD + 1], o[MAXD + 1];
    int nd, rc, x, id;
    qt_attr a;
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if (nd < 3) return fail(st, QT_EINVAL, "input has rank %d (N, C and spatial dims needed)", nd);
    memset(&a, 0, sizeof a);
    a.axis = 1 - st->off;
    a.mode = 1;
    for (int k = 0; k < nd; k++) o[k] = k < 2 ? d[k] : 1;
    if ((rc = add(st, strcmp(st->op, "GlobalMaxPool") ? QT_OP_GAP : QT_OP_GMP, "", &x, 1, &a, &id)))
        return rc;
    return set_out(st, 0, id, o, nd);
}

static int op_batchnorm(imp *st)
{
    static const char *const what[4] = { "scale", "B", "mean", "var" };
    const qt_onnx_tensor *p[4];
    int64_t d[MAXD + 1], spatial_attr, training;
    int nd, rc, x, id;
    float eps, mom;
    qt_attr a;
    char buf[64];
    if ((rc = attr_float(st, "epsilon", 1e-5f, &eps)) || (rc = attr_float(st, "momentum", 0.9f, &mom)) ||
        (rc = attr_int(st, "spatial", 1, &spatial_attr)) ||
        (rc = attr_int(st, "training_mode", 0, &training))) return rc;
    if (training || out_used(st, 1) || out_used(st, 2) || out_used(st, 3) || out_used(st, 4))
        return fail(st, QT_ENOTSUP, "training-mode BatchNormalization is not supported");
    if (!spatial_attr)
        return fail(st, QT_ENOTSUP, "spatial=0 (per-activation statistics) is not supported");
    if (!(eps >= 0.0f))
        return fail(st, QT_EINVAL, "epsilon %g must be >= 0", (double)eps);
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if (nd < 2) return fail(st, QT_EINVAL, "input has rank %d (N and C needed)", nd);
    for (int k = 0; k < 4; k++) {
        if ((rc = const_in(st, k + 1, what[k], &p[k]))) return rc;
        if (!p[k]) return fail(st, QT_ECORRUPT, "input '%s' is missing", what[k]);
        if (p[k]->dtype != QT_ONNX_FLOAT || p[k]->count != (size_t)d[1] || p[k]->ndim != 1)
            return fail(st, QT_EINVAL, "%s '%.60s' is %s %s, expected float %lld", what[k],
                        p[k]->name, qt__onnx_dtype_name(p[k]->dtype),
                        dstr(buf, sizeof buf, p[k]->ndim, p[k]->dims), (long long)d[1]);
    }
    memset(&a, 0, sizeof a);
    a.axis = 1 - st->off;
    a.eps = eps > 0.0f ? eps : FLT_TRUE_MIN;      /* the engine reads 0 as 1e-5 */
    a.momentum = 1.0f - mom;                       /* ONNX keeps mom of the old value */
    if (!(a.momentum >= 0.0f && a.momentum <= 1.0f)) a.momentum = 0.0f;
    if ((rc = add(st, QT_OP_BATCHNORM, "", &x, 1, &a, &id))) return rc;
    for (int k = 0; k < 4; k++)
        if ((rc = fill_param(st, id, k, p[k]->f, p[k]->count))) return rc;
    return set_out(st, 0, id, d, nd);
}

static int op_gemm(imp *st)
{
    const qt_onnx_tensor *B, *C;
    int64_t d[MAXD + 1], o[2], ta, tb;
    float alpha, beta;
    int nd, rc, x, id;
    qt_attr a;
    char buf[64];
    if ((rc = attr_float(st, "alpha", 1.0f, &alpha)) || (rc = attr_float(st, "beta", 1.0f, &beta)) ||
        (rc = attr_int(st, "transA", 0, &ta)) || (rc = attr_int(st, "transB", 0, &tb))) return rc;
    tval *bt = in_t(st, 1);
    if (!bt) return fail(st, QT_ECORRUPT, "input B is missing");
    if (bt->kind != T_CONST)
        return fail(st, QT_ENOTSUP, "B ('%.60s') must be a constant (an initializer)", bt->name);
    if ((rc = cval(st, bt, &B)) || (rc = const_in(st, 2, "C", &C))) return rc;
    if (B->ndim != 2 || B->dtype != QT_ONNX_FLOAT)
        return fail(st, QT_EINVAL, "B must be a 2-D float32 matrix (is %s %s)",
                    qt__onnx_dtype_name(B->dtype), dstr(buf, sizeof buf, B->ndim, B->dims));
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if (nd != 2) return fail(st, QT_EINVAL, "A has rank %d (2 expected)", nd);
    if (ta) {
        if (st->off)
            return fail(st, QT_ENOTSUP, "transA would move the batch (dim 0 of A)");
        memset(&a, 0, sizeof a);
        a.rank = 2;
        a.perm[0] = 1;
        a.perm[1] = 0;
        if ((rc = add(st, QT_OP_TRANSPOSE, ".t", &x, 1, &a, &x))) return rc;
        int64_t t = d[0];
        d[0] = d[1];
        d[1] = t;
    }
    int64_t K = d[1], N = tb ? B->dims[0] : B->dims[1], KB = tb ? B->dims[1] : B->dims[0];
    if (KB != K)
        return fail(st, QT_EINVAL, "A has %lld columns, B %s%s has %lld rows", (long long)K,
                    dstr(buf, sizeof buf, 2, B->dims), tb ? " (transposed)" : "", (long long)KB);
    o[0] = d[0];
    o[1] = N;
    /* C: a bias when it is one row (scalar, [N], [1,N], [1,1]); else an add */
    int bias = 0, full = 0;
    if (C && beta != 0.0f) {
        int64_t cl = C->ndim ? C->dims[C->ndim - 1] : 1;
        if (C->dtype != QT_ONNX_FLOAT || C->ndim > 2 || (cl != 1 && cl != N) ||
            (C->ndim == 2 && C->dims[0] != 1 && C->dims[0] != d[0]))
            return fail(st, QT_EINVAL, "C %s does not broadcast to %lldx%lld",
                        dstr(buf, sizeof buf, C->ndim, C->dims), (long long)d[0], (long long)N);
        if (C->ndim < 2 || C->dims[0] == 1) bias = 1;
        else full = 1;
    }
    float *w = malloc((size_t)(N * K + N) * sizeof *w);
    if (!w) return fail(st, QT_ENOMEM, "out of memory");
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            w[n * K + k] = alpha * B->f[tb ? n * K + k : k * N + n];
    if (bias)
        for (int64_t n = 0; n < N; n++)
            w[N * K + n] = beta * C->f[C->count == 1 ? 0 : n];
    memset(&a, 0, sizeof a);
    a.out = (int)N;
    a.bias = bias;
    a.axis = 1 - st->off;
    rc = add(st, QT_OP_DENSE, "", &x, 1, &a, &id);
    if (!rc) rc = fill_param(st, id, 0, w, (size_t)(N * K));
    if (!rc && bias) rc = fill_param(st, id, 1, w + N * K, (size_t)N);
    free(w);
    if (rc) return rc;
    if (full) {                                /* + beta C as a constant node */
        int in[2] = { id, -1 };
        tval *ct = in_t(st, 2);
        if (beta == 1.0f) {
            rc = as_node(st, ct, 2, &in[1]);
        } else {
            qt_onnx_tensor *sc;
            if ((rc = new_tensor(st, ct->name, QT_ONNX_FLOAT, C->ndim, C->dims, &sc))) return rc;
            for (size_t k = 0; k < C->count; k++) sc->f[k] = beta * C->f[k];
            tval tmp = *ct;
            tmp.c = sc;
            tmp.cnode[0] = tmp.cnode[1] = -1;
            rc = as_node(st, &tmp, 2, &in[1]);
        }
        if (rc || (rc = add(st, QT_OP_ADD, ".bias", in, 2, NULL, &id))) return rc;
    }
    return set_out(st, 0, id, o, 2);
}

/* the Add that may fold into a MatMul's bias: the MatMul's only consumer,
 * with a 1-D float constant of n values as its other operand */
static const qt_onnx_tensor *bias_add(imp *st, int64_t n, size_t *which)
{
    tval *y = look(st, st->nd->output[0], 0);
    if (!y || y->uses != 1 || y->is_output || y->last_user <= st->idx) return NULL;
    const Onnx__NodeProto *ad = st->gp->node[y->last_user];
    if (!ad || strcmp(S(ad->op_type), "Add") || (*S(ad->domain) && strcmp(ad->domain, "ai.onnx")) ||
        ad->n_input != 2 || ad->n_output < 1)
        return NULL;
    int other = !strcmp(ad->input[0], y->name) ? 1 : 0;
    if (!strcmp(ad->input[other], y->name)) return NULL;
    tval *b = look(st, ad->input[other], 0);
    const qt_onnx_tensor *c;
    if (!b || b->kind != T_CONST || cval(st, b, &c)) return NULL;
    if (c->dtype != QT_ONNX_FLOAT || c->ndim != 1 || c->dims[0] != n) return NULL;
    *which = y->last_user;
    return c;
}

static int op_matmul(imp *st)
{
    const qt_onnx_tensor *B;
    int64_t d[MAXD + 1], o[MAXD + 1];
    int nd, rc, x, id;
    qt_attr a;
    char buf[64];
    tval *at, *bt;
    if ((rc = need_in(st, 0, &at)) || (rc = need_in(st, 1, &bt))) return rc;
    if (bt->kind != T_CONST)
        return fail(st, QT_ENOTSUP, "B ('%.60s') is an activation: only a constant B is "
                    "supported", bt->name);
    if (at->kind != T_NODE)
        return fail(st, QT_ENOTSUP, "A ('%.60s') is a constant: only A an activation and B a "
                    "constant are supported", at->name);
    if ((rc = cval(st, bt, &B))) return rc;
    if (B->dtype != QT_ONNX_FLOAT)
        return fail(st, QT_ENOTSUP, "B is %s (float32 expected)", qt__onnx_dtype_name(B->dtype));
    x = at->node;
    nd = act_dims(st, x, d);
    int ps = nd - st->off;                     /* A's per-sample rank */
    int64_t K = d[nd - 1];
    if (nd == 0 || ps < 1)
        return fail(st, QT_ENOTSUP, "A %s: the contracted dim would be the batch",
                    dstr(buf, sizeof buf, nd, d));
    int64_t KB = B->ndim == 1 ? B->dims[0] : B->ndim ? B->dims[B->ndim - 2] : -1;
    if (KB != K)
        return fail(st, QT_EINVAL, "A %s and B %s do not multiply", dstr(buf, sizeof buf, nd, d),
                    B->name);
    memset(&a, 0, sizeof a);
    if (B->ndim <= 2) {                        /* dense: W = B^T */
        int64_t N = B->ndim == 2 ? B->dims[1] : 1;
        size_t fuse = 0;
        const qt_onnx_tensor *bias = B->ndim == 2 ? bias_add(st, N, &fuse) : NULL;
        float *w = malloc((size_t)(N * K) * sizeof *w);
        if (!w) return fail(st, QT_ENOMEM, "out of memory");
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) w[n * K + k] = B->f[k * N + n];
        a.out = (int)N;
        a.bias = bias != NULL;
        a.axis = ps - 1;
        rc = add(st, QT_OP_DENSE, "", &x, 1, &a, &id);
        if (!rc) rc = fill_param(st, id, 0, w, (size_t)(N * K));
        if (!rc && bias) rc = fill_param(st, id, 1, bias->f, bias->count);
        free(w);
        if (rc) return rc;
        memcpy(o, d, sizeof o);
        o[nd - 1] = N;
        if (B->ndim == 1) {                    /* [.., K] x [K] drops the last dim */
            if (ps < 2)
                return fail(st, QT_ENOTSUP, "the result would be a per-sample scalar");
            memset(&a, 0, sizeof a);
            a.rank = ps - 1;
            for (int k = 0; k < a.rank; k++) a.shape[k] = (int)d[st->off + k];
            x = id;
            if ((rc = add(st, QT_OP_RESHAPE, ".r", &x, 1, &a, &id))) return rc;
            return set_out(st, 0, id, o, nd - 1);
        }
        if (bias) st->fused[fuse] = 1;
        return set_out(st, 0, id, o, nd);
    }
    /* B with batch dims: matmul */
    int drop = 0, no;
    if (ps < 2)
        return fail(st, QT_ENOTSUP, "A %s has no [M, K] per sample for a batched B",
                    dstr(buf, sizeof buf, nd, d));
    if (st->off) {
        if (B->ndim > nd)
            return fail(st, QT_ENOTSUP, "B has more dims than A: it would broadcast over the batch");
        if (B->ndim == nd) {
            if (B->dims[0] != 1)
                return fail(st, QT_ENOTSUP, "B has dim 0 = %lld, but dim 0 is the batch",
                            (long long)B->dims[0]);
            drop = 1;
        }
    }
    if (B->ndim - drop > QT_MAX_RANK) return fail(st, QT_ENOTSUP, "B has too many dims");
    if ((rc = broadcast(st, nd - 2, d, B->ndim - 2, B->dims, &no, o))) return rc;
    o[no] = d[nd - 2];
    o[no + 1] = B->dims[B->ndim - 1];
    a.rank = B->ndim - drop;
    for (int k = 0; k < a.rank; k++) a.shape[k] = (int)B->dims[k + drop];
    a.axis = ps - 2;
    a.out = (int)B->dims[B->ndim - 1];
    if ((rc = add(st, QT_OP_MATMUL, "", &x, 1, &a, &id))) return rc;
    if ((rc = fill_param(st, id, 0, B->f, B->count))) return rc;
    return set_out(st, 0, id, o, no + 2);
}

/* Softmax, LogSoftmax */
static int op_softmax(imp *st)
{
    int64_t d[MAXD + 1], axis;
    int nd, rc, x, id, ax = 0;
    qt_attr a;
    if ((rc = attr_int(st, "axis", st->opset < 13 ? 1 : -1, &axis))) return rc;
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if ((rc = norm_axis(st, axis, nd, "axis", &ax))) return rc;
    if (st->off && ax == 0)
        return fail(st, QT_ENOTSUP, "axis 0 normalises across the batch (dim 0)");
    memset(&a, 0, sizeof a);
    a.axis = ax - st->off;
    a.mode = st->opset < 13;
    if ((rc = add(st, strcmp(st->op, "Softmax") ? QT_OP_LOGSOFTMAX : QT_OP_SOFTMAX, "", &x, 1,
                  &a, &id))) return rc;
    return set_out(st, 0, id, d, nd);
}

static int op_pad(imp *st)
{
    int64_t d[MAXD + 1], o[MAXD + 1], pads[2 * MAXD];
    int nd, rc, x, id, np;
    float value = 0.0f;
    char mode[32];
    qt_attr a;
    if ((rc = act_in(st, 0, &x, &nd, d))) return rc;
    if ((rc = attr_str(st, "mode", "constant", mode, sizeof mode))) return rc;
    if (st->opset < 11) {
        const int64_t *pv;
        if ((rc = attr_ints(st, "pads", &pv, &np)) || (rc = attr_float(st, "value", 0.0f, &value)))
            return rc;
        if (np < 0) return fail(st, QT_ECORRUPT, "attribute 'pads' is missing");
        if (np == 2 * nd) memcpy(pads, pv, (size_t)np * sizeof *pv);
    } else {
        const qt_onnx_tensor *pc;
        int h;
        if ((rc = ints_in(st, 1, "pads", &pc))) return rc;
        if (!pc) return fail(st, QT_ECORRUPT, "the pads input is missing");
        np = (int)pc->count;
        if (np == 2 * nd) memcpy(pads, pc->i, (size_t)np * sizeof *pads);
        if ((rc = scalar_in(st, 2, "constant_value", &value, &h))) return rc;
        if (st->nd->n_input > 3 && *st->nd->input[3])
            return fail(st, QT_ENOTSUP, "the axes input is not supported");
    }
    if (np != 2 * nd) return fail(st, QT_EINVAL, "%d pads for rank %d", np, nd);
    memset(&a, 0, sizeof a);
    a.mode = !strcmp(mode, "constant") ? QT_PAD_CONSTANT : !strcmp(mode, "reflect") ? QT_PAD_REFLECT
           : !strcmp(mode, "edge") ? QT_PAD_EDGE : -1;
    if (a.mode < 0)
        return fail(st, QT_ENOTSUP, "mode '%s' is not supported (constant, reflect, edge)", mode);
    if (st->off && (pads[0] || pads[nd]))
        return fail(st, QT_ENOTSUP, "pads on dim 0, the batch");
    for (int k = 0; k < nd; k++) {
        if ((rc = in_range(st, pads[k], -PAD_MAX, PAD_MAX, "pad")) ||
            (rc = in_range(st, pads[k + nd], -PAD_MAX, PAD_MAX, "pad"))) return rc;
        o[k] = d[k] < 0 ? -1 : d[k] + pads[k] + pads[k + nd];
        if (d[k] >= 0 && (o[k] < 1 || (uint64_t)o[k] > QT__ONNX_MAX_COUNT))
            return fail(st, QT_EINVAL, "dim %d would be %lld", k, (long long)o[k]);
        if (k >= st->off) {
            a.pads[k - st->off] = (int)pads[k];
            a.pads[k - st->off + nd - st->off] = (int)pads[k + nd];
        }
    }
    a.value = value;
    if ((rc = add(st, QT_OP_PAD, "", &x, 1, &a, &id))) return rc;
    return set_out(st, 0, id, o, nd);
}

static int op_dropout(imp *st)
{
    tval *x;
    float ratio = 0.5f;
    int rc, id, h;
    qt_attr a;
    if ((rc = need_in(st, 0, &x))) return rc;
    if (out_used(st, 1))
        return fail(st, QT_ENOTSUP, "the mask output is used (inference Dropout has none)");
    if (st->opset < 12) {
        if ((rc = attr_float(st, "ratio", 0.5f, &ratio))) return rc;
    } else {
        const qt_onnx_tensor *tm;
        if ((rc = scalar_in(st, 1, "ratio", &ratio, &h)) || (rc = const_in(st, 2, "training_mode", &tm)))
            return rc;
        if (tm && (tm->count != 1 || tm->f[0] != 0.0f))
            return fail(st, QT_ENOTSUP, "training-mode Dropout is not supported");
    }
    if (!(ratio >= 0.0f && ratio < 1.0f))
        return fail(st, QT_ENOTSUP, "ratio %g (0 <= ratio < 1 supported)", (double)ratio);
    if (x->kind == T_CONST) return alias_out(st, 0, x);     /* identity at inference */
    memset(&a, 0, sizeof a);
    a.alpha = ratio;
    int xid = x->node;
    if ((rc = add(st, QT_OP_DROPOUT, "", &xid, 1, &a, &id))) return rc;
    int64_t d[MAXD + 1];
    int nd = act_dims(st, xid, d);
    return set_out(st, 0, id, d, nd);
}

static int op_identity(imp *st)
{
    tval *x;
    int rc = need_in(st, 0, &x);
    return rc ? rc : alias_out(st, 0, x);
}

static int op_constant(imp *st)
{
    const Onnx__AttributeProto *at = NULL;
    qt_onnx_tensor *c;
    int rc;
    char ctx[128];
    for (size_t k = 0; k < st->nd->n_attribute; k++) {
        const Onnx__AttributeProto *x = st->nd->attribute[k];
        if (x && x->name && strncmp(x->name, "value", 5) == 0) { at = x; break; }
        if (x && x->name && !strcmp(x->name, "sparse_value"))
            return fail(st, QT_ENOTSUP, "sparse_value is not supported");
    }
    if (!at) return fail(st, QT_ECORRUPT, "has no value attribute");
    const char *nm = st->nd->n_output ? st->nd->output[0] : "";
    if (!strcmp(at->name, "value")) {
        if (!at->t) return fail(st, QT_ECORRUPT, "attribute 'value' is not a tensor");
        snprintf(ctx, sizeof ctx, "node '%.60s' (Constant): ", st->base);
        if ((rc = qt__onnx_tensor_decode(at->t, ctx, &c, st->err))) return rc;
        if ((rc = own(st, c))) return rc;
    } else {
        int isf = !strcmp(at->name, "value_float") || !strcmp(at->name, "value_floats");
        int list = !strcmp(at->name, "value_floats") || !strcmp(at->name, "value_ints");
        if (!isf && strcmp(at->name, "value_int") && strcmp(at->name, "value_ints"))
            return fail(st, QT_ENOTSUP, "attribute '%.40s' is not supported", at->name);
        int64_t n = list ? (int64_t)(isf ? at->n_floats : at->n_ints) : 1;
        if ((rc = new_tensor(st, nm, isf ? QT_ONNX_FLOAT : QT_ONNX_INT64, list, &n, &c))) return rc;
        for (int64_t k = 0; k < n; k++) {
            if (isf) c->f[k] = list ? at->floats[k] : at->f;
            else { c->i[k] = list ? at->ints[k] : at->i; c->f[k] = (float)c->i[k]; }
        }
    }
    return set_const_out(st, 0, c);
}

static const struct { const char *op; op_fn fn; } ops[] = {
    { "Conv", op_conv },               { "Gemm", op_gemm },
    { "MatMul", op_matmul },           { "Relu", op_unary },
    { "Add", op_binary },              { "Sub", op_binary },
    { "Mul", op_binary },              { "Div", op_binary },
    { "MaxPool", op_pool },            { "AveragePool", op_pool },
    { "GlobalAveragePool", op_global },{ "GlobalMaxPool", op_global },
    { "BatchNormalization", op_batchnorm },
    { "Flatten", op_flatten },         { "Reshape", op_reshape },
    { "Softmax", op_softmax },         { "LogSoftmax", op_softmax },
    { "Sigmoid", op_unary },           { "Tanh", op_unary },
    { "LeakyRelu", op_unary },         { "Clip", op_unary },
    { "PRelu", op_prelu },             { "Concat", op_concat },
    { "Transpose", op_transpose },     { "Squeeze", op_squeeze },
    { "Unsqueeze", op_squeeze },       { "Pad", op_pad },
    { "Dropout", op_dropout },         { "Identity", op_identity },
    { "Constant", op_constant },
};

static op_fn find_op(const char *name)
{
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(ops[k].op, name)) return ops[k].fn;
    return NULL;
}

static int unsupported(imp *st)
{
    char list[192];
    size_t at = 0;
    /* as many names as the message has room for */
    size_t head = strlen("node '' (): operator not supported (supported: )")
                + (strlen(st->base) < 60 ? strlen(st->base) : 60)
                + (strlen(st->op) < 32 ? strlen(st->op) : 32);
    size_t room = sizeof st->err->text - 1 - head;
    list[0] = 0;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        size_t l = strlen(ops[k].op) + 2;
        if (at + l + 5 > room) { snprintf(list + at, sizeof list - at, ", ..."); break; }
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", ops[k].op);
    }
    return fail(st, QT_ENOTSUP, "operator not supported (supported: %s)", list);
}

/* ------------------------------------------------------------------------ */
/* The model                                                                 */
/* ------------------------------------------------------------------------ */

static int is_default_domain(const char *d)
{
    return !d || !*d || !strcmp(d, "ai.onnx");
}

/* the one unbound graph input becomes the engine's input node */
static int make_input(imp *st, tval *t)
{
    const Onnx__TypeProto *ty = t->vi ? t->vi->type : NULL;
    int dims[QT_MAX_RANK];
    size_t per = 1;
    if (!ty || ty->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !ty->tensor_type)
        return fail(st, QT_ENOTSUP, "input '%.60s' is not a tensor", t->name);
    const Onnx__TypeProto__Tensor *tt = ty->tensor_type;
    if (!tt->has_elem_type || tt->elem_type != QT_ONNX_FLOAT)
        return fail(st, QT_ENOTSUP, "input '%.60s' is %s: only float32 inputs are supported",
                    t->name, qt__onnx_dtype_name(tt->has_elem_type ? tt->elem_type : 0));
    if (!tt->shape)
        return fail(st, QT_ENOTSUP, "input '%.60s' has no shape (static dims are needed)", t->name);
    int nd = (int)tt->shape->n_dim, r = nd - st->off;
    if (nd > MAXD || r < 0 || r > QT_MAX_RANK)
        return fail(st, QT_ENOTSUP, "input '%.60s' has %d dims (%d to %d supported%s)", t->name,
                    nd, st->off, QT_MAX_RANK + st->off, st->off ? " with the batch" : "");
    for (int k = 0; k < nd; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[k];
        int known = dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (k < st->off) {
            st->batch = known && dm->dim_value > 0 ? dm->dim_value : -1;
            continue;
        }
        if (!known || dm->dim_value < 1 || (uint64_t)dm->dim_value > QT__ONNX_MAX_COUNT)
            return fail(st, QT_ENOTSUP, "input '%.60s': dim %d is %s; it must be a known "
                        "size%s", t->name, k, known ? "not a usable size" : "symbolic",
                        st->off ? " (only dim 0, the batch, may vary)" : "");
        dims[k - st->off] = (int)dm->dim_value;
        per *= (size_t)dm->dim_value;
        if (per > QT__ONNX_MAX_COUNT)
            return fail(st, QT_ENOTSUP, "input '%.60s' is too large", t->name);
    }
    char nm[QT_NAME_MAX];
    make_name(st, t->name, "", nm);
    int id = qt_graph_input_nd(st->g, nm, r, dims, st->err);
    if (id < 0) return id;
    t->kind = T_NODE;
    t->node = id;
    return QT_OK;
}

/* a bound input: check it against the declared type */
static int bind_input(imp *st, tval *t, const qt_onnx_tensor *b)
{
    const Onnx__TypeProto *ty = t->vi ? t->vi->type : NULL;
    char b1[64];
    if (ty && ty->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && ty->tensor_type) {
        const Onnx__TypeProto__Tensor *tt = ty->tensor_type;
        if (tt->has_elem_type && tt->elem_type != b->dtype)
            return fail(st, QT_EINVAL, "binding for input '%.60s' is %s, the model declares %s",
                        t->name, qt__onnx_dtype_name(b->dtype), qt__onnx_dtype_name(tt->elem_type));
        if (tt->shape) {
            int ok = (int)tt->shape->n_dim == b->ndim;
            for (int k = 0; ok && k < b->ndim; k++) {
                const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[k];
                if (dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
                    ok = dm->dim_value == b->dims[k];
            }
            if (!ok)
                return fail(st, QT_EINVAL, "binding for input '%.60s' is %s, which does not "
                            "match the declared shape", t->name, dstr(b1, sizeof b1, b->ndim, b->dims));
        }
    }
    t->kind = T_CONST;
    t->c = b;
    return QT_OK;
}

static int import(imp *st, const Onnx__ModelProto *m)
{
    const Onnx__GraphProto *gp = m->graph;
    int rc;
    /* the default-domain opset */
    int found = 0;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *os = m->opset_import[k];
        if (os && is_default_domain(os->domain)) {
            st->opset = os->has_version ? os->version : 0;
            found = 1;
        }
    }
    if (!gp)
        return fail(st, QT_ECORRUPT, "not an ONNX model (it has no graph)");
    if (!found)
        return fail(st, QT_ENOTSUP, "the model imports no default-domain (ai.onnx) opset");
    if (st->opset < 7 || st->opset > 17)
        return fail(st, QT_ENOTSUP, "opset %lld of the default domain (ai.onnx) is not "
                    "supported (7 to 17)", (long long)st->opset);
    /* the table */
    size_t names = gp->n_initializer + gp->n_input + gp->n_output + gp->n_value_info + 16;
    for (size_t k = 0; k < gp->n_node; k++)
        names += gp->node[k]->n_input + gp->node[k]->n_output;
    st->cap = 64;
    while (st->cap < 2 * names) st->cap *= 2;
    st->tab = calloc(st->cap, sizeof *st->tab);
    st->fused = calloc(gp->n_node + 1, 1);
    if (!st->tab || !st->fused) return fail(st, QT_ENOMEM, "out of memory");
    for (size_t k = 0; k < gp->n_initializer; k++) {
        tval *t = look(st, gp->initializer[k]->name, 1);
        if (!t) return fail(st, QT_ECORRUPT, "initializer %zu has no name", k);
        if (t->kind != T_UNDEF)
            return fail(st, QT_ECORRUPT, "initializer '%.60s' is defined twice", t->name);
        t->kind = T_CONST;
        t->tp = gp->initializer[k];
    }
    if (gp->n_sparse_initializer)
        return fail(st, QT_ENOTSUP, "sparse initializers are not supported");
    for (size_t k = 0; k < gp->n_value_info; k++) {
        tval *t = look(st, gp->value_info[k]->name, 1);
        if (t) t->vi = gp->value_info[k];
    }
    for (size_t k = 0; k < gp->n_output; k++) {
        tval *t = look(st, gp->output[k]->name, 1);
        if (!t) return fail(st, QT_ECORRUPT, "graph output %zu has no name", k);
        t->vi = gp->output[k];
        t->is_output = 1;
        t->uses++;
    }
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *nd = gp->node[k];
        for (size_t j = 0; j < nd->n_input; j++) {
            tval *t = look(st, nd->input[j], 1);
            if (t) { t->uses++; t->last_user = k; }
        }
    }
    /* graph inputs: bound ones are constants, one becomes the engine input */
    int n_real = 0;
    tval *unbound[2] = { NULL, NULL };
    int n_unbound = 0;
    for (size_t k = 0; k < gp->n_input; k++) {
        tval *t = look(st, gp->input[k]->name, 1);
        if (!t) return fail(st, QT_ECORRUPT, "graph input %zu has no name", k);
        if (t->kind == T_CONST) continue;        /* an initializer (IR < 4 lists them) */
        t->vi = gp->input[k];
        const qt_onnx_tensor *b = st->o && st->o->binds && n_real < st->o->n_binds
                                ? st->o->binds[n_real] : NULL;
        n_real++;
        if (b) {
            if ((rc = bind_input(st, t, b))) return rc;
        } else {
            if (n_unbound < 2) unbound[n_unbound] = t;
            n_unbound++;
        }
    }
    if (st->o && st->o->n_binds > n_real)
        return fail(st, QT_EINVAL, "%d bindings for a model with %d inputs", st->o->n_binds, n_real);
    if (n_unbound == 0)
        return fail(st, QT_EINVAL, "every graph input is bound: one must stay unbound (the input)");
    if (n_unbound > 1)
        return fail(st, QT_EINVAL, "%d graph inputs are unbound ('%.40s', '%.40s'%s): bind all "
                    "but one with qt_onnx_opts.binds", n_unbound, unbound[0]->name,
                    unbound[1]->name, n_unbound > 2 ? ", ..." : "");
    if ((rc = make_input(st, unbound[0]))) return rc;
    /* the nodes, in order */
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *nd = gp->node[k];
        st->nd = nd;
        st->idx = k;
        st->op = S(nd->op_type);
        if (nd->name && *nd->name) sanitise(nd->name, st->base, sizeof st->base);
        else {
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%.80s_%zu", st->op, k);
            sanitise(tmp, st->base, sizeof st->base);
        }
        for (size_t j = 0; j < nd->n_input; j++) {
            tval *t = look(st, nd->input[j], 0);
            if (*nd->input[j] && (!t || t->kind == T_UNDEF))
                return fail(st, QT_ECORRUPT, "input '%.60s' is not defined before the node "
                            "(by a node, an initializer or a graph input)", nd->input[j]);
        }
        if (nd->n_output < 1) return fail(st, QT_ECORRUPT, "has no outputs");
        if (st->fused[k]) {                     /* an Add folded into a MatMul bias */
            tval *y = NULL;
            for (size_t j = 0; j < nd->n_input && !y; j++) {
                tval *t = look(st, nd->input[j], 0);
                if (t && t->kind == T_NODE) y = t;
            }
            if (!y) return fail(st, QT_ECORRUPT, "fused Add has no activation input");
            if ((rc = alias_out(st, 0, y))) return rc;
            continue;
        }
        if (!is_default_domain(nd->domain))
            return fail(st, QT_ENOTSUP, "operator domain '%.40s' is not supported", nd->domain);
        op_fn fn = find_op(st->op);
        if (!fn) return unsupported(st);
        if ((rc = fn(st))) return rc;
    }
    st->nd = NULL;
    /* the output */
    int oi = st->o ? st->o->output : 0;
    if (oi < 0 || (size_t)oi >= gp->n_output)
        return fail(st, QT_EINVAL, "output %d requested, the model has %zu", oi, gp->n_output);
    tval *y = look(st, gp->output[oi]->name, 0);
    if (!y || y->kind == T_UNDEF)
        return fail(st, QT_ECORRUPT, "graph output '%.60s' is not computed by any node",
                    S(gp->output[oi]->name));
    if (y->kind == T_CONST)
        return fail(st, QT_ENOTSUP, "graph output '%.60s' is a constant (it does not depend on "
                    "the input)", y->name);
    qt_graph_set_output(st->g, y->node);
    return QT_OK;
}

int qt_onnx_load_mem(const void *buf, size_t len, const qt_onnx_opts *opts,
                     qt_graph **out, qt_error *err)
{
    imp st;
    int rc;
    *out = NULL;
    if (!buf && len) return qt_errorf(err, QT_EINVAL, -1, "no buffer");
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m)
        return qt_errorf(err, QT_ECORRUPT, -1, "not a valid ONNX model (truncated or corrupt "
                         "protobuf)");
    memset(&st, 0, sizeof st);
    st.o = opts;
    st.whole = opts && opts->whole;
    st.off = !st.whole;
    st.batch = -1;
    st.gp = m->graph;
    st.err = err;
    st.g = qt_graph_new();
    if (!st.g) rc = qt_errorf(err, QT_ENOMEM, -1, "out of memory");
    else rc = import(&st, m);
    for (size_t k = 0; k < st.n_owned; k++) qt_onnx_tensor_free(st.owned[k]);
    free(st.owned);
    free(st.tab);
    free(st.fused);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc) {
        qt_graph_free(st.g);
        return rc;
    }
    *out = st.g;
    return QT_OK;
}

int qt_onnx_load(const char *path, const qt_onnx_opts *opts, qt_graph **out, qt_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc;
    *out = NULL;
    if ((rc = qt__onnx_read_file(path, &buf, &len, err))) return rc;
    rc = qt_onnx_load_mem(buf, len, opts, out, err);
    free(buf);
    if (rc && err) {                            /* name the file (its end if long) */
        char msg[sizeof err->text];
        size_t pl = strlen(path);
        snprintf(msg, sizeof msg, "%s", err->text);
        qt_errorf(err, rc, err->pos, "'%s%s': %s", pl > 60 ? "..." : "",
                  pl > 60 ? path + pl - 57 : path, msg);
    }
    return rc;
}
