/*
 * onnx_conformance.c -- run the ONNX backend test cases (Debian package
 * libonnx-testdata) through qt_onnx_load + qt_forward and compare.
 *
 *   onnx_conformance [--data DIR] [--filter SUBSTR] [--min-pass N] [-v]
 *
 * DIR is a data root holding node/ and pytorch-converted/ (default
 * /usr/share/libonnx-testdata/data), or one directory of cases. SUBSTR
 * selects cases by name (case-insensitive); -v lists each run case's
 * engine nodes. Each case is
 * a directory with model.onnx and test_data_set_N/ with input_k.pb and output_k.pb.
 *
 * A case is SKIPped, with the reason, when its model uses an operator the
 * importer does not map, when input 0 or output 0 is not float32 (other
 * inputs are bound as constants and may be of any numeric type: shapes,
 * axes, pads), when the model has more than one output (the engine computes
 * one; the second float results of the op and Indices/mask outputs cannot
 * be compared, and the importer refuses a used Indices/mask output by
 * design), or when its opset is outside 7..17. Otherwise it is loaded in
 * whole mode (every ONNX tensor is one sample), inputs after the first are
 * bound from input_k.pb, input_0 is run as a batch of 1, and output 0 must
 * have the same dims and |y - ref| <= atol + rtol |ref| (NaN matches NaN).
 * Any load or run error of such a case is a FAIL.
 *
 * Exit status: non-zero when a case FAILs or fewer than --min-pass pass.
 */
#define _GNU_SOURCE           /* strcasestr */
#include "engine.h"
#include "onnx.pb-c.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RTOL 1e-3
#define ATOL 1e-7     /* ONNX's backend defaults */

/* the operators the importer maps (engine/onnx.c, ops[]) */
static const char *const supported[] = {
    "Conv", "Gemm", "MatMul", "Relu", "Add", "Sub", "Mul", "Div", "MaxPool",
    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
    "Flatten", "Reshape", "Softmax", "LogSoftmax", "Sigmoid", "Tanh", "LeakyRelu",
    "Clip", "PRelu", "Concat", "Transpose", "Squeeze", "Unsqueeze", "Pad",
    "Dropout", "Identity", "Constant", NULL
};

enum { PASS, FAIL, SKIP, NSTAT, PASS_UP = NSTAT };
static const char *const stat_name[NSTAT] = { "PASS", "FAIL", "SKIP" };

static int verbose;

static int is_supported(const char *op)
{
    for (int k = 0; supported[k]; k++)
        if (!strcmp(supported[k], op)) return 1;
    return 0;
}

static const char *dtype_name(int dt)
{
    static const char *const n[] = { "undefined", "float", "uint8", "int8", "uint16", "int16",
        "int32", "int64", "string", "bool", "float16", "double", "uint32", "uint64",
        "complex64", "complex128", "bfloat16" };
    return dt >= 0 && dt < (int)(sizeof n / sizeof n[0]) ? n[dt] : "other";
}

static int read_all(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        unsigned char *nb = realloc(b, cap *= 2);
        if (!nb) { free(b); b = NULL; }
        else b = nb;
    }
    fclose(f);
    if (!b) return -1;
    *buf = b;
    *len = n;
    return 0;
}

static int elem_type(const Onnx__ValueInfoProto *vi)
{
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vi->type->tensor_type)
        return -1;
    return vi->type->tensor_type->elem_type;
}

static const char *dims_str(char *buf, size_t cap, int nd, const int64_t *d)
{
    size_t at = 0;
    if (nd == 0) { snprintf(buf, cap, "scalar"); return buf; }
    buf[0] = 0;
    for (int k = 0; k < nd && at < cap; k++)
        at += (size_t)snprintf(buf + at, cap - at, k ? "x%lld" : "%lld", (long long)d[k]);
    return buf;
}

/* the dims of a tensor named in the graph (initializer or declared input) */
static int find_dims(const Onnx__GraphProto *g, const char *name, int64_t *d)
{
    for (size_t k = 0; k < g->n_initializer; k++)
        if (g->initializer[k]->name && !strcmp(g->initializer[k]->name, name)) {
            for (size_t j = 0; j < g->initializer[k]->n_dims && j < 8; j++)
                d[j] = g->initializer[k]->dims[j];
            return (int)g->initializer[k]->n_dims;
        }
    for (size_t k = 0; k < g->n_input; k++) {
        const Onnx__TypeProto *ty = g->input[k]->type;
        if (strcmp(g->input[k]->name, name) || !ty || !ty->tensor_type || !ty->tensor_type->shape)
            continue;
        const Onnx__TensorShapeProto *sh = ty->tensor_type->shape;
        for (size_t j = 0; j < sh->n_dim && j < 8; j++) d[j] = sh->dim[j]->dim_value;
        return (int)sh->n_dim;
    }
    return -1;
}

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && !strcmp(n->attribute[k]->name, name)) return n->attribute[k];
    return NULL;
}

/* Models of opsets 1..6 (all of pytorch-converted, a few node cases) are run
 * as opset 7 when every node means the same in both: the op's definition
 * did not change, or changed only by attributes that do not matter here.
 * Refused: Add/Sub/Mul/Div with the legacy 'axis' broadcast, training-mode
 * BatchNormalization (is_test = 0), PRelu with a per-channel slope of more
 * than one value (opset 6 broadcasts it per channel, opset 7 as numpy),
 * Reshape before opset 5 and Concat before opset 4 (attribute forms). */
static void can_upgrade(const Onnx__ModelProto *m, int64_t opset, char *why, size_t cap)
{
    const Onnx__GraphProto *g = m->graph;
    why[0] = 0;
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        const char *op = n->op_type;
        const Onnx__AttributeProto *a;
        int64_t d[8];
        if ((!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) &&
            find_attr(n, "axis"))
            snprintf(why, cap, "%s with the legacy 'axis' broadcast", op);
        else if (!strcmp(op, "BatchNormalization") && (!(a = find_attr(n, "is_test")) || !a->i))
            snprintf(why, cap, "training-mode BatchNormalization (is_test = 0)");
        else if (!strcmp(op, "PRelu") && n->n_input > 1) {
            int nd = find_dims(g, n->input[1], d);
            int64_t cnt = 1;
            for (int j = 0; j < nd; j++) cnt *= d[j];
            if (nd < 0 || cnt != 1)
                snprintf(why, cap, "PRelu with a per-channel slope (opset 6 semantics)");
        } else if ((!strcmp(op, "Reshape") && opset < 5) || (!strcmp(op, "Concat") && opset < 4))
            snprintf(why, cap, "%s in its opset-%lld form", op, (long long)opset);
        if (why[0]) return;
    }
}

/* inspect the model: SKIP reason, or empty; *n_inputs = non-initializer
 * inputs; *upgrade = 1 when an opset < 7 model is to run as opset 7 */
static void skip_reason(const Onnx__ModelProto *m, char *why, size_t cap, int *n_inputs,
                        int *upgrade)
{
    const Onnx__GraphProto *g = m->graph;
    why[0] = 0;
    *n_inputs = 0;
    *upgrade = 0;
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx")) {
            snprintf(why, cap, "op %s:%s", n->domain, n->op_type);
            return;
        }
        if (!is_supported(n->op_type)) {
            snprintf(why, cap, "op %s", n->op_type);
            return;
        }
        if (!strcmp(n->op_type, "Dropout") && n->n_input >= 3 && *n->input[2]) {
            snprintf(why, cap, "training-mode Dropout (input '%s'): refused by design",
                     n->input[2]);
            return;
        }
    }
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if (o->domain && *o->domain && strcmp(o->domain, "ai.onnx")) continue;
        if (o->version > 17) {
            snprintf(why, cap, "opset %lld (7..17 supported)", (long long)o->version);
            return;
        }
        if (o->version < 7) {
            char w[160];
            can_upgrade(m, o->version, w, sizeof w);
            if (w[0]) {
                snprintf(why, cap, "opset %lld, not runnable as 7: %s", (long long)o->version, w);
                return;
            }
            *upgrade = 1;
        }
    }
    for (size_t k = 0; k < g->n_input; k++) {
        int init = 0;
        for (size_t j = 0; j < g->n_initializer && !init; j++)
            init = g->initializer[j]->name && !strcmp(g->initializer[j]->name, g->input[k]->name);
        if (init) continue;
        if (*n_inputs == 0 && elem_type(g->input[k]) != 1) {
            snprintf(why, cap, "input 0 '%s' is %s", g->input[k]->name,
                     dtype_name(elem_type(g->input[k])));
            return;
        }
        ++*n_inputs;
    }
    if (*n_inputs == 0) { snprintf(why, cap, "no runtime input (the output is a constant)"); return; }
    if (g->n_output < 1) { snprintf(why, cap, "no outputs"); return; }
    for (size_t k = 0; k < g->n_input + g->n_output; k++) {
        const Onnx__ValueInfoProto *vi = k < g->n_input ? g->input[k] : g->output[k - g->n_input];
        const Onnx__TypeProto *ty = vi->type;
        if (!ty || ty->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !ty->tensor_type ||
            !ty->tensor_type->shape)
            continue;
        for (size_t j = 0; j < ty->tensor_type->shape->n_dim; j++) {
            const Onnx__TensorShapeProto__Dimension *dm = ty->tensor_type->shape->dim[j];
            if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                dm->dim_value == 0) {
                snprintf(why, cap, "empty tensor '%s' (a dim of size 0)", vi->name);
                return;
            }
        }
    }
    if (elem_type(g->output[0]) != 1) {
        snprintf(why, cap, "output 0 '%s' is %s", g->output[0]->name,
                 dtype_name(elem_type(g->output[0])));
        return;
    }
    for (size_t k = 1; k < g->n_output; k++) {
        int dt = elem_type(g->output[k]);
        if (dt == 1)
            snprintf(why, cap, "second float32 result: output %zu '%s'", k, g->output[k]->name);
        else
            snprintf(why, cap, "output %zu '%s' (%s) is not computed by the engine", k,
                     g->output[k]->name, dtype_name(dt));
        return;
    }
}

/* run one data set; returns PASS or FAIL with msg */
static int run_set(const char *model, const unsigned char *mb, size_t mlen, const char *set,
                   int n_inputs, char *msg, size_t cap, double *worst_out)
{
    char path[1600], b1[96], b2[96];
    qt_onnx_tensor *in[16] = { 0 }, *ref = NULL, *x0 = NULL;
    qt_graph *g = NULL;
    qt_error err;
    int st = FAIL;
    (void)model;
    if (n_inputs < 1 || n_inputs > 16) {
        snprintf(msg, cap, "%d inputs", n_inputs);
        return FAIL;
    }
    for (int k = 0; k < n_inputs; k++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", set, k);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;            /* an optional input left out */
        if (qt_onnx_tensor_load(path, &in[k], &err)) {
            snprintf(msg, cap, "input_%d.pb: %s", k, err.text);
            goto out;
        }
    }
    snprintf(path, sizeof path, "%s/output_0.pb", set);
    if (qt_onnx_tensor_load(path, &ref, &err)) {
        snprintf(msg, cap, "output_0.pb: %s", err.text);
        goto out;
    }
    if (!in[0]) { snprintf(msg, cap, "no input_0.pb"); goto out; }
    x0 = in[0];
    in[0] = NULL;                 /* input 0 stays unbound: it is the runtime input */
    qt_onnx_opts o = { .whole = 1, .binds = (const qt_onnx_tensor *const *)in,
                       .n_binds = n_inputs, .output = 0 };
    int rc = qt_onnx_load_mem(mb, mlen, &o, &g, &err);
    if (rc) {
        snprintf(msg, cap, "load: %s", err.text);
        goto out;
    }
    if (qt_graph_node_size(g, 0) != x0->count) {
        snprintf(msg, cap, "input_0 has %zu values, the engine input %zu", x0->count,
                 qt_graph_node_size(g, 0));
        goto out;
    }
    if (verbose) {
        printf("     engine graph:");
        for (int k = 0; k < qt_graph_nodes(g); k++)
            printf(" %s=%s", qt_graph_node_name(g, k), qt_op_name(qt_graph_node_op(g, k)));
        printf("\n");
    }
    const qt_tensor *y;
    rc = qt_forward(g, NULL, x0->f, 1, 0, &y, &err);
    if (rc) { snprintf(msg, cap, "forward: %s", err.text); goto out; }
    int ed[QT_MAX_RANK], er = qt_graph_node_dims(g, qt_graph_output(g), ed);
    int64_t e64[QT_MAX_RANK];
    for (int k = 0; k < er; k++) e64[k] = ed[k];
    int same = er == ref->ndim;
    for (int k = 0; same && k < er; k++) same = e64[k] == ref->dims[k];
    if (!same || y->size != ref->count) {
        snprintf(msg, cap, "dims: engine %s, expected %s", dims_str(b1, sizeof b1, er, e64),
                 dims_str(b2, sizeof b2, ref->ndim, ref->dims));
        goto out;
    }
    double worst = 0.0;
    size_t wi = 0;
    int bad = 0;
    for (size_t i = 0; i < ref->count; i++) {
        double v = y->data[i], r = ref->f[i], q;
        if (isnan(r) || isnan(v)) q = isnan(r) && isnan(v) ? 0.0 : INFINITY;
        else if (isinf(r) || isinf(v)) q = v == r ? 0.0 : INFINITY;
        else q = fabs(v - r) / (ATOL + RTOL * fabs(r));
        if (q > worst || (i == 0)) { if (q > worst) worst = q; wi = i; }
        if (q > 1.0) bad = 1;
    }
    *worst_out = worst;
    if (bad) {
        snprintf(msg, cap, "value %zu of %zu: %.9g, expected %.9g (%.3g x tolerance)", wi,
                 ref->count, (double)y->data[wi], (double)ref->f[wi], worst);
        goto out;
    }
    snprintf(msg, cap, "%zu values, worst %.3g x tolerance", ref->count, worst);
    st = PASS;
out:
    for (int k = 0; k < 16; k++) qt_onnx_tensor_free(in[k]);
    qt_onnx_tensor_free(ref);
    qt_onnx_tensor_free(x0);
    qt_graph_free(g);
    return st;
}

static int run_case(const char *dir, const char *name, char *msg, size_t cap)
{
    char path[1024], why[256];
    msg[0] = 0;
    unsigned char *mb;
    size_t mlen;
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, name);
    if (read_all(path, &mb, &mlen)) { snprintf(msg, cap, "cannot read %s", path); return FAIL; }
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, mlen, mb);
    if (!m || !m->graph) {
        snprintf(msg, cap, "model.onnx does not parse");
        if (m) onnx__model_proto__free_unpacked(m, NULL);
        free(mb);
        return FAIL;
    }
    int n_inputs, upgrade;
    skip_reason(m, why, sizeof why, &n_inputs, &upgrade);
    if (!why[0] && upgrade) {                 /* run an opset < 7 model as opset 7 */
        for (size_t k = 0; k < m->n_opset_import; k++) {
            Onnx__OperatorSetIdProto *o = m->opset_import[k];
            if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) o->version = 7;
        }
        size_t n = onnx__model_proto__get_packed_size(m);
        unsigned char *nb = malloc(n ? n : 1);
        if (nb) {
            mlen = onnx__model_proto__pack(m, nb);
            free(mb);
            mb = nb;
        }
    }
    onnx__model_proto__free_unpacked(m, NULL);
    if (why[0]) {
        snprintf(msg, cap, "%s", why);
        free(mb);
        return SKIP;
    }
    /* every data set */
    snprintf(path, sizeof path, "%s/%s", dir, name);
    DIR *d = opendir(path);
    int st = PASS, sets = 0;
    double worst = 0.0;
    struct dirent *e;
    char last[512] = "";
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "test_data_set_", 14)) continue;
        char set[1400];
        double w = 0.0;
        snprintf(set, sizeof set, "%s/%s", path, e->d_name);
        int r = run_set(path, mb, mlen, set, n_inputs, last, sizeof last, &w);
        sets++;
        if (w > worst) worst = w;
        if (r != PASS) { st = r; snprintf(msg, cap, "%s: %s", e->d_name, last); break; }
    }
    if (d) closedir(d);
    free(mb);
    if (!sets) { snprintf(msg, cap, "no test_data_set_*"); return FAIL; }
    if (st == PASS) {
        if (sets == 1) snprintf(msg, cap, "%s", last);
        else snprintf(msg, cap, "%d data sets, worst %.3g x tolerance", sets, worst);
    }
    if (upgrade) {
        size_t l = strlen(msg);
        snprintf(msg + l, cap - l, " [opset < 7 model run as opset 7]");
        return st == PASS ? PASS_UP : st;
    }
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* reasons, grouped for the summary: "op X" and the rest by their first words */
typedef struct { char key[96]; int n; } tally;
static tally reasons[512];
static int n_reasons;

static void count_reason(const char *why)
{
    char key[96];
    if (!strncmp(why, "op ", 3)) snprintf(key, sizeof key, "unsupported op");
    else if (!strncmp(why, "input 0", 7)) snprintf(key, sizeof key, "input 0 not float32");
    else if (!strncmp(why, "output 0", 8)) snprintf(key, sizeof key, "output 0 not float32");
    else if (!strncmp(why, "second float32", 14)) snprintf(key, sizeof key, "second float32 output");
    else if (!strncmp(why, "output ", 7)) snprintf(key, sizeof key, "extra non-float output (indices/mask)");
    else if (!strncmp(why, "opset", 5)) snprintf(key, sizeof key, "opset < 7 with changed semantics");
    else if (!strncmp(why, "training-mode", 13)) snprintf(key, sizeof key, "training-mode Dropout");
    else if (!strncmp(why, "empty tensor", 12)) snprintf(key, sizeof key, "empty tensor");
    else if (!strncmp(why, "no runtime input", 16)) snprintf(key, sizeof key, "no runtime input");
    else snprintf(key, sizeof key, "%.40s", why);
    for (int k = 0; k < n_reasons; k++)
        if (!strcmp(reasons[k].key, key)) { reasons[k].n++; return; }
    if (n_reasons < 512) { snprintf(reasons[n_reasons].key, sizeof reasons[0].key, "%s", key); reasons[n_reasons++].n = 1; }
}

static void run_dir(const char *dir, const char *label, const char *filter, int tot[NSTAT])
{
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "onnx_conformance: cannot open %s\n", dir); tot[FAIL]++; return; }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (filter && !strcasestr(e->d_name, filter)) continue;
        char p[1024];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s/model.onnx", dir, e->d_name);
        if (stat(p, &sb) != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int cnt[NSTAT] = { 0 }, up = 0;
    for (size_t k = 0; k < n; k++) {
        char msg[1600];
        int s = run_case(dir, names[k], msg, sizeof msg);
        if (s == PASS_UP) { up++; s = PASS; }
        cnt[s]++;
        if (s == SKIP) count_reason(msg);
        printf("%s %s/%s: %s\n", stat_name[s], label, names[k], msg);
        free(names[k]);
    }
    free(names);
    printf("-- %s: %d pass (%d of them opset < 7 models run as 7), %d fail, %d skip (%zu cases)\n",
           label, cnt[PASS], up, cnt[FAIL], cnt[SKIP], n);
    for (int s = 0; s < NSTAT; s++) tot[s] += cnt[s];
}

int main(int argc, char **argv)
{
    const char *data = "/usr/share/libonnx-testdata/data", *filter = NULL;
    int min_pass = 0;
    qt_runtime_init(argv);
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--data") && k + 1 < argc) data = argv[++k];
        else if (!strcmp(argv[k], "--filter") && k + 1 < argc) filter = argv[++k];
        else if (!strcmp(argv[k], "--min-pass") && k + 1 < argc) min_pass = atoi(argv[++k]);
        else if (!strcmp(argv[k], "-v")) verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--data DIR] [--filter SUBSTR] [--min-pass N] [-v]\n",
                    argv[0]);
            return 2;
        }
    }
    int tot[NSTAT] = { 0 };
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof p, "%s/node", data);
    if (stat(p, &sb) == 0) {
        run_dir(p, "node", filter, tot);
        snprintf(p, sizeof p, "%s/pytorch-converted", data);
        run_dir(p, "pytorch-converted", filter, tot);
    } else {
        run_dir(data, data, filter, tot);
    }
    printf("== total: %d pass, %d fail, %d skip (rtol %g, atol %g)\n", tot[PASS], tot[FAIL],
           tot[SKIP], RTOL, ATOL);
    printf("== skipped:");
    for (int k = 0; k < n_reasons; k++) printf(" %s: %d%s", reasons[k].key, reasons[k].n,
                                               k + 1 < n_reasons ? ";" : "");
    printf("\n");
    if (tot[FAIL]) return 1;
    if (tot[PASS] < min_pass) {
        printf("== only %d cases pass, fewer than --min-pass %d\n", tot[PASS], min_pass);
        return 1;
    }
    return 0;
}
