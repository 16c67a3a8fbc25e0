/*
 * graph.c -- arenas, the op table, building graphs with shape inference,
 * parameter initialisation, accessors and cloning.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* Arenas                                                                    */
/* ------------------------------------------------------------------------ */

struct qt_block {
    struct qt_block *next;
    size_t size, used;
    unsigned char *mem;
};

#define ALIGN 64
#define BLOCK_MIN (1u << 20)

void *qt__arena_alloc(qt_arena *a, size_t bytes)
{
    struct qt_block *b = a->head;
    bytes = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (bytes == 0) bytes = ALIGN;
    if (!b || b->size - b->used < bytes) {
        size_t sz = bytes > BLOCK_MIN ? bytes : BLOCK_MIN;
        b = malloc(sizeof *b);
        if (!b) return NULL;
        b->mem = aligned_alloc(ALIGN, sz);
        if (!b->mem) { free(b); return NULL; }
        b->size = sz;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->mem + b->used;
    b->used += bytes;
    a->used += bytes;
    memset(p, 0, bytes);
    return p;
}

void qt__arena_free(qt_arena *a)
{
    struct qt_block *b = a->head;
    while (b) {
        struct qt_block *nx = b->next;
        free(b->mem);
        free(b);
        b = nx;
    }
    a->head = NULL;
    a->used = 0;
}

void qt__param_dims(qt_tensor *t, int ndim, const int *dims)
{
    size_t n = 1;
    t->ndim = ndim;
    for (int i = 0; i < QT_MAX_DIMS; i++) {
        t->shape[i] = i < ndim ? dims[i] : 1;
        if (i < ndim) n *= (size_t)dims[i];
    }
    t->size = n;
}

int qt__tensor_nd(qt_arena *a, qt_tensor *t, int ndim, const int *dims)
{
    qt__param_dims(t, ndim, dims);
    t->data = qt__arena_alloc(a, t->size * sizeof(float));
    return t->data ? QT_OK : QT_ENOMEM;
}

int qt__tensor(qt_arena *a, qt_tensor *t, int ndim, int d0, int d1, int d2, int d3)
{
    int d[4] = { d0, d1, d2, d3 };
    return qt__tensor_nd(a, t, ndim, d);
}

void qt__set_dims(qt_node *n, int rank, const int *dims)
{
    n->rank = rank;
    n->per = 1;
    for (int i = 0; i < QT_MAX_RANK; i++) {
        n->shape[i] = i < rank ? dims[i] : 1;
        if (i < rank) n->per *= (size_t)dims[i];
    }
}

void qt__set_chw(qt_node *n, int c, int h, int w)
{
    int d[3] = { c, h, w };
    qt__set_dims(n, 3, d);
}

const char *qt__ints(char *buf, size_t cap, const int *v, int n, char sep)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at < cap; i++) {
        int k = i ? snprintf(buf + at, cap - at, "%c%d", sep, v[i])
                  : snprintf(buf + at, cap - at, "%d", v[i]);
        if (k < 0) break;
        at += (size_t)k;
    }
    return buf;
}

int qt__spatial_attrs(qt_opctx *c, int *rank)
{
    const qt_attr *a = &c->n->a;
    char b1[48], b2[48], b3[48];
    int S = 0;
    if (a->kernel[0] < 1)
        return qt__shape_fail(c, "kernel %s: the first entry must be >= 1",
                              qt__ints(b1, sizeof b1, a->kernel, 3, 'x'));
    while (S < 3 && a->kernel[S] >= 1) S++;
    for (int j = S; j < 3; j++)
        if (a->kernel[j] != 0)
            return qt__shape_fail(c, "kernel %s: the entries after the leading ones >= 1 (the "
                                  "spatial rank, %d) must be 0",
                                  qt__ints(b1, sizeof b1, a->kernel, 3, 'x'), S);
    for (int j = S; j < 3; j++)
        if (a->stride[j] != 0 || a->dilation[j] != 0)
            return qt__shape_fail(c, "kernel %s is %d-D: stride %s and dilation %s must be 0 past it",
                                  qt__ints(b1, sizeof b1, a->kernel, S, 'x'), S,
                                  qt__ints(b2, sizeof b2, a->stride, 3, 'x'),
                                  qt__ints(b3, sizeof b3, a->dilation, 3, 'x'));
    for (int j = 2 * S; j < 6; j++)
        if (a->pad[j] != 0)
            return qt__shape_fail(c, "kernel %s is %d-D: pad %s has entries past the %d used",
                                  qt__ints(b1, sizeof b1, a->kernel, S, 'x'), S,
                                  qt__ints(b2, sizeof b2, a->pad, 6, ','), 2 * S);
    for (int j = 0; j < S; j++)
        if (a->stride[j] < 0)
            return qt__shape_fail(c, "stride %s must be >= 0 (0 means 1)",
                                  qt__ints(b1, sizeof b1, a->stride, S, 'x'));
    for (int j = 0; j < S; j++)
        if (a->dilation[j] < 0)
            return qt__shape_fail(c, "dilation %s must be >= 0 (0 means 1)",
                                  qt__ints(b1, sizeof b1, a->dilation, S, 'x'));
    *rank = S;
    return QT_OK;
}

const char *qt__dims_str(char *buf, size_t cap, int rank, const int *dims)
{
    if (rank == 0) { snprintf(buf, cap, "scalar"); return buf; }
    return qt__ints(buf, cap, dims, rank, 'x');
}

/* ------------------------------------------------------------------------ */
/* The op table                                                              */
/* ------------------------------------------------------------------------ */

static const qt_opdef ops[QT_OP_COUNT] = {
    [QT_OP_INPUT]     = { "input",     qt__op_input,     0, 0, 0 },
    [QT_OP_CONV]      = { "conv",      qt__op_conv,      1, 1, 1 },
    [QT_OP_DENSE]     = { "dense",     qt__op_dense,     1, 1, 1 },
    [QT_OP_MATMUL]    = { "matmul",    qt__op_matmul,    1, 1, 1 },
    [QT_OP_MAXPOOL]   = { "maxpool",   qt__op_maxpool,   1, 1, 0 },
    [QT_OP_AVGPOOL]   = { "avgpool",   qt__op_avgpool,   1, 1, 0 },
    [QT_OP_GAP]       = { "gap",       qt__op_gap,       1, 1, 0 },
    [QT_OP_BATCHNORM] = { "batchnorm", qt__op_batchnorm, 1, 1, 1 },
    [QT_OP_RELU]      = { "relu",      qt__op_relu,      1, 1, 0 },
    [QT_OP_CLIP]      = { "clip",      qt__op_clip,      1, 1, 0 },
    [QT_OP_LEAKY]     = { "leaky",     qt__op_leaky,     1, 1, 0 },
    [QT_OP_SIGMOID]   = { "sigmoid",   qt__op_sigmoid,   1, 1, 0 },
    [QT_OP_TANH]      = { "tanh",      qt__op_tanh,      1, 1, 0 },
    [QT_OP_SOFTMAX]   = { "softmax",   qt__op_softmax,   1, 1, 0 },
    [QT_OP_ADD]       = { "add",       qt__op_add,       2, 2, 0 },
    [QT_OP_MUL]       = { "mul",       qt__op_mul,       2, 2, 0 },
    [QT_OP_CONCAT]    = { "concat",    qt__op_concat,    1, QT_MAX_INPUTS, 0 },
    [QT_OP_FLATTEN]   = { "flatten",   qt__op_flatten,   1, 1, 0 },
    [QT_OP_RESHAPE]   = { "reshape",   qt__op_reshape,   1, 1, 0 },
    [QT_OP_DROPOUT]   = { "dropout",   qt__op_dropout,   1, 1, 0 },
    [QT_OP_SUB]       = { "sub",       qt__op_sub,       2, 2, 0 },
    [QT_OP_DIV]       = { "div",       qt__op_div,       2, 2, 0 },
    [QT_OP_PRELU]     = { "prelu",     qt__op_prelu,     1, 1, 1 },
    [QT_OP_TRANSPOSE] = { "transpose", qt__op_transpose, 1, 1, 0 },
    [QT_OP_PAD]       = { "pad",       qt__op_pad,       1, 1, 0 },
    [QT_OP_LOGSOFTMAX]= { "logsoftmax",qt__op_logsoftmax,1, 1, 0 },
    [QT_OP_GMP]       = { "gmp",       qt__op_gmp,       1, 1, 0 },
    [QT_OP_CONST]     = { "const",     qt__op_const,     0, 0, 1 },
};
_Static_assert(QT_OP_COUNT == 28, "a new op needs a row in ops[]");

const qt_opdef *qt__op(qt_op op)
{
    return (unsigned)op < QT_OP_COUNT ? &ops[op] : NULL;
}

const char *qt_op_name(qt_op op)
{
    return (unsigned)op < QT_OP_COUNT ? ops[op].name : "?";
}

int qt__shape_fail(qt_opctx *c, const char *fmt, ...)
{
    if (c->err) {
        /* the node first, then as much of the message as fits */
        int k = snprintf(c->err->text, sizeof c->err->text, "node '%s' (%.12s): ",
                         c->n->name, qt_op_name(c->n->op));
        if (k > 0 && (size_t)k < sizeof c->err->text) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err->text + k, sizeof c->err->text - (size_t)k, fmt, ap);
            va_end(ap);
        }
        c->err->pos = -1;
    }
    return QT_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Building                                                                  */
/* ------------------------------------------------------------------------ */

qt_graph *qt_graph_new(void)
{
    qt_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->output = -1;
    g->seed = 1;
    return g;
}

void qt_graph_free(qt_graph *g)
{
    if (!g) return;
    qt__arena_free(&g->params);
    qt__arena_free(&g->acts);
    free(g->nodes);
    free(g->wq);
    free(g);
}

void qt_graph_seed(qt_graph *g, uint64_t seed) { g->seed = seed; }

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* normal deviates from a counter: (seed, node, index) */
static float gauss(uint64_t seed, uint64_t node, uint64_t i)
{
    uint64_t a = mix64(seed ^ mix64(node * 0x100000001b3ull + 2 * i));
    uint64_t b = mix64(seed ^ mix64(node * 0x100000001b3ull + 2 * i + 1));
    double u1 = ((double)(a >> 11) + 1.0) * 0x1p-53, u2 = (double)(b >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* He initialisation for weights (fan-in from the weight shape), zero bias;
 * batchnorm: gamma 1, beta 0, running mean 0, variance 1 */
static void init_params(qt_graph *g, int id)
{
    qt_node *n = &g->nodes[id];
    if (n->op == QT_OP_BATCHNORM) {
        for (size_t i = 0; i < n->p[QT_P_W].size; i++) n->p[QT_P_W].data[i] = 1.0f;
        for (size_t i = 0; i < n->p[QT_P_RVAR].size; i++) n->p[QT_P_RVAR].data[i] = 1.0f;
        return;
    }
    if (n->op == QT_OP_PRELU) {             /* PyTorch's default slope */
        for (size_t i = 0; i < n->p[QT_P_W].size; i++) n->p[QT_P_W].data[i] = 0.25f;
        return;
    }
    if (n->p[QT_P_W].size) {
        /* fan-in: dense/conv store W as [out, ...]; matmul's B is [in, out] */
        size_t fan_in = n->op == QT_OP_MATMUL ? (size_t)n->p[QT_P_W].shape[0]
                      : n->p[QT_P_W].size / (size_t)n->p[QT_P_W].shape[0];
        float sd = (float)sqrt(2.0 / (double)fan_in);
        for (size_t i = 0; i < n->p[QT_P_W].size; i++)
            n->p[QT_P_W].data[i] = sd * gauss(g->seed, (uint64_t)id, i);
    }
}

static int valid_name(const char *s)
{
    if (!s || !*s || strlen(s) >= QT_NAME_MAX) return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || *s == '"' || *s == '\\') return 0;
    return 1;
}

static int add_node(qt_graph *g, qt_op op, const char *name, const int *inputs,
                    int n_in, const qt_attr *attr, qt_error *err)
{
    const qt_opdef *d = qt__op(op);
    char gen[QT_NAME_MAX];
    int rc;
    if (!d)
        return qt__fail(err, QT_EINVAL, -1, "unknown op %d", (int)op);
    if (!name) {
        snprintf(gen, sizeof gen, "%s%d", d->name, g->n);
        name = gen;
    }
    if (!valid_name(name))
        return qt__fail(err, QT_EINVAL, -1,
                        "node name '%.80s' must be 1..%d printable characters without "
                        "spaces or quotes", name, QT_NAME_MAX - 1);
    if (qt_graph_find(g, name) >= 0)
        return qt__fail(err, QT_EINVAL, -1, "node name '%s' is already used", name);
    if (!strcmp(name, "default"))
        return qt__fail(err, QT_EINVAL, -1, "'default' is reserved (it names every node "
                        "in a configuration)");
    if (n_in < d->min_in || n_in > d->max_in)
        return qt__fail(err, QT_EINVAL, -1, "node '%s' (%s): takes %d..%d inputs, got %d",
                        name, d->name, d->min_in, d->max_in, n_in);
    if (op != QT_OP_INPUT && g->n == 0)
        return qt__fail(err, QT_EINVAL, -1, "node '%s': add the input node first", name);
    for (int i = 0; i < n_in; i++)
        if (inputs[i] < 0 || inputs[i] >= g->n)
            return qt__fail(err, QT_EINVAL, -1, "node '%s': input %d is node id %d, "
                            "which does not exist yet", name, i, inputs[i]);
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        qt_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
        g->nodes = nn;
        g->cap = cap;
    }
    qt_node *n = &g->nodes[g->n];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = inputs[i];
    if (attr) n->a = *attr;
    qt_opctx c = { g, n, NULL, NULL, NULL, err };
    rc = d->fn(&c, QT_ACT_SHAPE);
    if (rc) return rc;
    for (int i = 0; i < QT_P_COUNT; i++) {
        qt_tensor *t = &n->p[i];
        if (!t->size) continue;
        int dims[QT_MAX_DIMS];
        memcpy(dims, t->shape, sizeof dims);
        if (qt__tensor_nd(&g->params, t, t->ndim, dims) != QT_OK)
            return qt__fail(err, QT_ENOMEM, -1, "out of memory");
        if (i < 2 && qt__tensor_nd(&g->params, &n->gp[i], t->ndim, dims) != QT_OK)
            return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    init_params(g, g->n);
    g->output = g->n;
    g->batch = 0;                         /* re-plan activations */
    return g->n++;
}

int qt_graph_input_nd(qt_graph *g, const char *name, int rank, const int *dims,
                      qt_error *err)
{
    qt_attr a;
    char buf[96];
    memset(&a, 0, sizeof a);
    if (g->n != 0)
        return qt__fail(err, QT_EINVAL, -1, "the input must be the first node");
    if (rank < 0 || rank > QT_MAX_RANK)
        return qt__fail(err, QT_EINVAL, -1, "input rank %d: must be 0..%d", rank, QT_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 1)
            return qt__fail(err, QT_EINVAL, -1, "input shape %s: dims must be >= 1",
                            qt__dims_str(buf, sizeof buf, rank, dims));
    a.rank = rank;
    for (int i = 0; i < rank; i++) a.shape[i] = dims[i];
    return add_node(g, QT_OP_INPUT, name, NULL, 0, &a, err);
}

int qt_graph_input(qt_graph *g, const char *name, int c, int h, int w, qt_error *err)
{
    int d[3] = { c, h, w };
    return qt_graph_input_nd(g, name, 3, d, err);
}

int qt_graph_add(qt_graph *g, qt_op op, const char *name, const int *inputs,
                 int n_inputs, const qt_attr *attr, qt_error *err)
{
    if (op == QT_OP_INPUT)
        return qt__fail(err, QT_EINVAL, -1, "use qt_graph_input for the input node");
    return add_node(g, op, name, inputs, n_inputs, attr, err);
}

int qt_graph_set_output(qt_graph *g, int node)
{
    if (node < 0 || node >= g->n) return QT_EINVAL;
    g->output = node;
    return QT_OK;
}

int qt_graph_output(const qt_graph *g) { return g->output; }
int qt_graph_nodes(const qt_graph *g) { return g->n; }

int qt_graph_find(const qt_graph *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

const char *qt_graph_node_name(const qt_graph *g, int node)
{
    return node >= 0 && node < g->n ? g->nodes[node].name : NULL;
}

qt_op qt_graph_node_op(const qt_graph *g, int node) { return g->nodes[node].op; }
const qt_attr *qt_graph_node_attr(const qt_graph *g, int node) { return &g->nodes[node].a; }

int qt_graph_node_inputs(const qt_graph *g, int node, const int **ids)
{
    *ids = g->nodes[node].in;
    return g->nodes[node].n_in;
}

int qt_graph_node_dims(const qt_graph *g, int node, int dims[QT_MAX_RANK])
{
    const qt_node *n = &g->nodes[node];
    memcpy(dims, n->shape, QT_MAX_RANK * sizeof(int));
    return n->rank;
}

void qt_graph_node_shape(const qt_graph *g, int node, int shape[3])
{
    const qt_node *n = &g->nodes[node];
    shape[0] = shape[1] = shape[2] = 1;
    if (n->rank <= 3) {
        for (int i = 0; i < n->rank; i++) shape[i] = n->shape[i];
        return;
    }
    for (int i = 0; i < n->rank - 2; i++) shape[0] *= n->shape[i];
    shape[1] = n->shape[n->rank - 2];
    shape[2] = n->shape[n->rank - 1];
}

size_t qt_graph_node_size(const qt_graph *g, int node) { return g->nodes[node].per; }

qt_tensor *qt_graph_param(qt_graph *g, int node, int which)
{
    if (node < 0 || node >= g->n || which < 0 || which >= QT_P_COUNT) return NULL;
    return g->nodes[node].p[which].size ? &g->nodes[node].p[which] : NULL;
}

size_t qt_graph_param_count(const qt_graph *g)
{
    size_t s = 0;
    for (int i = 0; i < g->n; i++)
        s += g->nodes[i].p[QT_P_W].size + g->nodes[i].p[QT_P_B].size;
    return s;
}

uint64_t qt_graph_macs(const qt_graph *g)
{
    uint64_t s = 0;
    for (int i = 0; i < g->n; i++) s += g->nodes[i].macs;
    return s;
}

uint64_t qt_graph_node_macs(const qt_graph *g, int node) { return g->nodes[node].macs; }

void qt_graph_hash(const qt_graph *g, char out[33])
{
    uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
#define MIX(p, n) do { const unsigned char *x_ = (const unsigned char *)(p); \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++) { a = (a ^ x_[i_]) * 0x100000001b3ull; \
            b = (b ^ x_[i_]) * 0x00000100000001b3ull + 0x9e3779b97f4a7c15ull; } } while (0)
    for (int i = 0; i < g->n; i++) {
        const qt_node *n = &g->nodes[i];
        MIX(n->name, strlen(n->name) + 1);
        MIX(&n->op, sizeof n->op);
        MIX(n->in, (size_t)n->n_in * sizeof *n->in);
        MIX(n->shape, (size_t)n->rank * sizeof *n->shape);
        MIX(&n->a, sizeof n->a);
        for (int k = 0; k < QT_P_COUNT; k++)
            if (n->p[k].size) MIX(n->p[k].data, n->p[k].size * sizeof(float));
    }
#undef MIX
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

qt_graph *qt_graph_clone(const qt_graph *src)
{
    qt_graph *g = qt_graph_new();
    qt_error err;
    if (!g) return NULL;
    g->seed = src->seed;
    for (int i = 0; i < src->n; i++) {
        const qt_node *s = &src->nodes[i];
        int rc = s->op == QT_OP_INPUT ? qt_graph_input_nd(g, s->name, s->a.rank, s->a.shape, &err)
                                      : qt_graph_add(g, s->op, s->name, s->in, s->n_in, &s->a, &err);
        if (rc < 0) { qt_graph_free(g); return NULL; }
        for (int k = 0; k < QT_P_COUNT; k++)
            if (s->p[k].size)
                memcpy(g->nodes[i].p[k].data, s->p[k].data, s->p[k].size * sizeof(float));
    }
    g->output = src->output;
    return g;
}
