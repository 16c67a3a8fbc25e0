/*
 * qconfig.c -- quantization configurations: which format at which point of
 * which node, parsed from JSON with node names and globs.
 */
#include "internal.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

struct qt_qconfig {
    int        n;         /* nodes of the graph it was made for */
    qt_format *fmt;       /* n * QT_QP_COUNT */
    uint8_t   *set;       /* n * QT_QP_COUNT: 1 if fmt is in force */
    uint8_t   *mode;      /* n: qt_intrinsic */
    uint64_t   seed;
};

static const char *point_names[QT_QP_COUNT] = {
    "weights", "bias", "output", "intrinsic", "grad_output", "grad_weights",
    "accumulator",
};

const char *qt_qpoint_name(qt_qpoint p)
{
    return (unsigned)p < QT_QP_COUNT ? point_names[p] : "?";
}

qt_qconfig *qt_qconfig_new(const qt_graph *g)
{
    qt_qconfig *c = calloc(1, sizeof *c);
    int n = qt_graph_nodes(g);
    if (!c) return NULL;
    c->n = n;
    c->fmt = calloc((size_t)(n ? n : 1) * QT_QP_COUNT, sizeof *c->fmt);
    c->set = calloc((size_t)(n ? n : 1) * QT_QP_COUNT, 1);
    c->mode = calloc((size_t)(n ? n : 1), 1);
    if (!c->fmt || !c->set || !c->mode) { qt_qconfig_free(c); return NULL; }
    return c;
}

void qt_qconfig_free(qt_qconfig *c)
{
    if (!c) return;
    free(c->fmt); free(c->set); free(c->mode);
    free(c);
}

int qt_qconfig_set(qt_qconfig *c, int node, qt_qpoint p, const qt_format *f)
{
    if (node < 0 || node >= c->n || (unsigned)p >= QT_QP_COUNT) return QT_EINVAL;
    if (f && qt_format_check(f, NULL) != QT_OK) return QT_EINVAL;
    size_t i = (size_t)node * QT_QP_COUNT + p;
    /* "none" is float: keep the configuration canonical */
    if (f && f->type != QT_NONE) { c->fmt[i] = *f; c->set[i] = 1; }
    else { memset(&c->fmt[i], 0, sizeof c->fmt[i]); c->set[i] = 0; }
    return QT_OK;
}

const qt_format *qt_qconfig_get(const qt_qconfig *c, int node, qt_qpoint p)
{
    if (!c || node < 0 || node >= c->n || (unsigned)p >= QT_QP_COUNT) return NULL;
    size_t i = (size_t)node * QT_QP_COUNT + p;
    return c->set[i] ? &c->fmt[i] : NULL;
}

qt_intrinsic qt_qconfig_intrinsic_mode(const qt_qconfig *c, int node)
{
    return (node >= 0 && node < c->n) ? (qt_intrinsic)c->mode[node] : QT_INTR_EACH;
}

void qt_qconfig_set_intrinsic_mode(qt_qconfig *c, int node, qt_intrinsic m)
{
    if (node >= 0 && node < c->n) c->mode[node] = (uint8_t)m;
}

void qt_qconfig_set_seed(qt_qconfig *c, uint64_t seed) { c->seed = seed; }

void qt__qconfig_node(const qt_qconfig *c, int node, qt_nodeq *q)
{
    for (int p = 0; p < QT_QP_COUNT; p++) q->fmt[p] = qt_qconfig_get(c, node, (qt_qpoint)p);
    q->mode = qt_qconfig_intrinsic_mode(c, node);
    q->seed = c->seed;
}

/* the node names, for messages: "a, b, c" (truncated) */
static void list_names(const qt_graph *g, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < qt_graph_nodes(g) && used + 4 < size; i++) {
        int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", qt_graph_node_name(g, i));
        if (k < 0 || (size_t)k >= size - used) { snprintf(buf + size - 4, 4, "..."); break; }
        used += (size_t)k;
    }
}

static int is_glob(const char *k)
{
    return strpbrk(k, "*?[") != NULL;
}

/* apply one entry (an object of points) to one node */
static int apply(qt_qconfig *c, const qt_graph *g, int node, const char *key,
                 json_t *val, int strict, qt_error *err)
{
    const char *pk;
    json_t *pv;
    int has_w = qt__op(qt_graph_node_op(g, node))->has_weights;
    json_object_foreach(val, pk, pv) {
        if (!strcmp(pk, "intrinsic_mode")) {
            const char *m = json_string_value(pv);
            if (!m || (strcmp(m, "each") && strcmp(m, "final")))
                return qt__fail(err, QT_EINVAL, -1,
                                "'%s'.intrinsic_mode must be \"each\" or \"final\"", key);
            c->mode[node] = !strcmp(m, "final") ? QT_INTR_FINAL : QT_INTR_EACH;
            continue;
        }
        int p;
        for (p = 0; p < QT_QP_COUNT; p++) if (!strcmp(pk, point_names[p])) break;
        if (p == QT_QP_COUNT)
            return qt__fail(err, QT_EINVAL, -1,
                            "'%s': unknown quantization point '%s' (weights, bias, output, "
                            "intrinsic, intrinsic_mode, grad_output, grad_weights, accumulator)",
                            key, pk);
        if ((p == QT_QP_WEIGHTS || p == QT_QP_BIAS || p == QT_QP_GRAD_WEIGHTS ||
             p == QT_QP_ACCUMULATOR) && !has_w) {
            if (strict)
                return qt__fail(err, QT_EINVAL, -1, "'%s': node '%s' (%s) has no parameters "
                                "for point '%s'", key, qt_graph_node_name(g, node),
                                qt_op_name(qt_graph_node_op(g, node)), pk);
            continue;
        }
        if (json_is_null(pv)) {
            qt_qconfig_set(c, node, (qt_qpoint)p, NULL);
            continue;
        }
        qt_format f;
        qt_error fe;
        if (qt_format_from_json(pv, &f, &fe) != QT_OK)
            return qt__fail(err, QT_EINVAL, -1, "'%s'.%s: %s", key, pk, fe.text);
        qt_qconfig_set(c, node, (qt_qpoint)p, &f);
    }
    return QT_OK;
}

int qt_qconfig_from_json(const qt_graph *g, const json_t *j, qt_qconfig **out,
                         qt_error *err)
{
    qt_qconfig *c;
    const char *key;
    json_t *val;
    int rc = QT_OK;
    if (!json_is_object(j))
        return qt__fail(err, QT_EINVAL, -1, "a quantization configuration must be a JSON object");
    json_object_foreach((json_t *)j, key, val)
        if (!json_is_object(val))
            return qt__fail(err, QT_EINVAL, -1, "'%s' must map to an object of points", key);
    c = qt_qconfig_new(g);
    if (!c) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    /* pass 0: default; pass 1: globs in order; pass 2: exact names (a key
     * that names a node is exact even with glob characters: "blk[0]") */
    for (int pass = 0; pass < 3 && rc == QT_OK; pass++) {
        json_object_foreach((json_t *)j, key, val) {
            int isdef = !strcmp(key, "default");
            int glob = !isdef && is_glob(key) && qt_graph_find(g, key) < 0;
            if ((pass == 0) != isdef || (pass == 1) != glob) continue;
            if (pass == 2 && (isdef || glob)) continue;
            int matched = 0;
            for (int i = 0; i < qt_graph_nodes(g) && rc == QT_OK; i++) {
                const char *nm = qt_graph_node_name(g, i);
                int hit = isdef ? i > 0 : glob ? fnmatch(key, nm, 0) == 0 : !strcmp(key, nm);
                if (!hit) continue;
                matched++;
                rc = apply(c, g, i, key, val, pass == 2, err);
            }
            if (rc) break;
            if (!matched && !isdef) {
                char names[140];
                list_names(g, names, sizeof names);
                rc = qt__fail(err, QT_EINVAL, -1, "'%s' matches no node (nodes: %s)", key, names);
                break;
            }
        }
    }
    if (rc) { qt_qconfig_free(c); return rc; }
    *out = c;
    return QT_OK;
}

int qt_qconfig_parse(const qt_graph *g, const char *text, qt_qconfig **out, qt_error *err)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    int rc;
    if (!j)
        return qt__fail(err, QT_EPARSE, je.position,
                        "configuration is not valid JSON: %s (line %d, column %d)",
                        je.text, je.line, je.column);
    rc = qt_qconfig_from_json(g, j, out, err);
    json_decref(j);
    return rc;
}

json_t *qt_qconfig_to_json(const qt_qconfig *c, const qt_graph *g)
{
    json_t *o = json_object();
    for (int i = 0; o && i < c->n && i < qt_graph_nodes(g); i++) {
        json_t *e = NULL;
        for (int p = 0; p < QT_QP_COUNT; p++) {
            const qt_format *f = qt_qconfig_get(c, i, (qt_qpoint)p);
            if (!f) continue;
            char buf[QT_TEXT_MAX];
            qt_format_print(f, buf, sizeof buf);
            if (!e) e = json_object();
            json_object_set_new(e, point_names[p], json_string(buf));
        }
        if (e && c->mode[i] == QT_INTR_FINAL)
            json_object_set_new(e, "intrinsic_mode", json_string("final"));
        if (e) json_object_set_new(o, qt_graph_node_name(g, i), e);
    }
    return o;
}
