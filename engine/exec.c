/*
 * exec.c -- running a graph: planning activations for a batch, forward with
 * the quantization points applied, backward from any output gradient.
 *
 * Order of a node's forward under a configuration:
 *   weights and bias are quantized into a scratch copy (weights, bias points;
 *   the float parameters stay as they are), the kernel runs (which applies
 *   the intrinsic point itself), then the output point quantizes the result
 *   in place. Backward passes gradients straight through every quantizer
 *   (a kernel's backward sees the same quantized weights and bias as its
 *   forward, so dx = dy Wq);
 *   the gradient arriving at a node's output is quantized (grad_output)
 *   before the node's backward runs, and the parameter gradients after it
 *   (grad_weights).
 *
 * Stochastic rounding streams: every (node, point) pair has its own stream,
 * and element offsets count from the first sample of the data set
 * (g->sample_base), so results do not depend on the batch size.
 */
#include "internal.h"

#include <stdlib.h>
#include <unistd.h>

static uint64_t stream_of(int node, int point)
{
    return ((uint64_t)(unsigned)node << 8) | (unsigned)point;
}

void qt__quantize_point(const qt_nodeq *q, qt_qpoint p, float *x, size_t n,
                        uint64_t offset)
{
    const qt_format *f = q ? q->fmt[p] : NULL;
    if (!f) return;
    qt_sr sr = { q->seed, q->stream ^ stream_of(0, p), offset };
    qt_quantize(f, x, n, &sr);
}

static void node_q(const qt_qconfig *cfg, int id, qt_nodeq *q)
{
    memset(q, 0, sizeof *q);
    if (cfg) qt__qconfig_node(cfg, id, q);
    q->stream = stream_of(id, 0);
}

/* (re)allocate per-batch tensors for batch b */
static int plan(qt_graph *g, int b, qt_error *err)
{
    qt__arena_free(&g->acts);
    for (int i = 0; i < g->n; i++) {
        qt_node *n = &g->nodes[i];
        memset(&n->save, 0, sizeof n->save);
        memset(&n->save2, 0, sizeof n->save2);
        if (qt__tensor(&g->acts, &n->out, 2, b, (int)n->per, 0, 0) ||
            qt__tensor(&g->acts, &n->gout, 2, b, (int)n->per, 0, 0)) {
            g->batch = 0;
            return qt__fail(err, QT_ENOMEM, -1,
                            "out of memory planning batch %d at node '%s'", b, n->name);
        }
    }
    g->batch = b;
    return QT_OK;
}

int qt__scratch(qt_opctx *c, qt_tensor *t, size_t per_sample)
{
    if (t->data && t->size >= (size_t)c->g->batch * per_sample) return QT_OK;
    return qt__tensor(&c->g->acts, t, 2, c->g->batch, (int)per_sample, 0, 0);
}

static int ensure_wq(qt_graph *g, size_t n)
{
    if (g->wq_cap >= n) return QT_OK;
    free(g->wq);
    g->wq = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    g->wq_cap = g->wq ? n : 0;
    return g->wq ? QT_OK : QT_ENOMEM;
}

/* point c->w, c->b at a quantized copy of the node's parameters when its
 * weights or bias point is set (the float parameters stay as they are) */
static int quant_params(qt_graph *g, qt_node *nd, const qt_nodeq *q, qt_opctx *c,
                        qt_error *err)
{
    size_t nw = nd->p[QT_P_W].size, nb = nd->p[QT_P_B].size;
    if (!((q->fmt[QT_QP_WEIGHTS] && nw) || (q->fmt[QT_QP_BIAS] && nb)))
        return QT_OK;
    if (ensure_wq(g, nw + nb + 16))
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    float *wq = g->wq, *bq = g->wq + ((nw + 15) & ~(size_t)15);
    if (nw) {
        memcpy(wq, nd->p[QT_P_W].data, nw * sizeof(float));
        qt__quantize_point(q, QT_QP_WEIGHTS, wq, nw, 0);
        c->w = wq;
    }
    if (nb) {
        memcpy(bq, nd->p[QT_P_B].data, nb * sizeof(float));
        qt__quantize_point(q, QT_QP_BIAS, bq, nb, 0);
        c->b = bq;
    }
    return QT_OK;
}

int qt_forward(qt_graph *g, const qt_qconfig *cfg, const float *x, int n,
               int train, const qt_tensor **out, qt_error *err)
{
    return qt_forward_from(g, cfg, 0, x, n, train, out, err);
}

int qt_graph_set_activation(qt_graph *g, int node, const float *x, int n, qt_error *err)
{
    int rc;
    if (node < 1 || node >= g->n)
        return qt__fail(err, QT_EINVAL, -1, "node %d: not a node past the input (1..%d)",
                        node, g->n - 1);
    if (n < 1)
        return qt__fail(err, QT_EINVAL, -1, "batch of %d samples", n);
    if (n > g->batch && (rc = plan(g, n, err)))
        return rc;
    qt_node *nd = &g->nodes[node];
    memcpy(nd->out.data, x, (size_t)n * nd->per * sizeof(float));
    return QT_OK;
}

int qt_graph_frontier(const qt_graph *g, int k, int *nodes, int max)
{
    int count = 0;
    for (int j = 1; j < k && j < g->n; j++) {
        int needed = j == g->output;
        for (int i = k; i < g->n && !needed; i++)
            for (int e = 0; e < g->nodes[i].n_in; e++)
                if (g->nodes[i].in[e] == j) { needed = 1; break; }
        if (needed) {
            if (count < max) nodes[count] = j;
            count++;
        }
    }
    return count;
}

int qt_forward_from(qt_graph *g, const qt_qconfig *cfg, int from, const float *x, int n,
                    int train, const qt_tensor **out, qt_error *err)
{
    int rc;
    if (g->n == 0)
        return qt__fail(err, QT_EINVAL, -1, "the graph is empty");
    if (n < 1)
        return qt__fail(err, QT_EINVAL, -1, "batch of %d samples", n);
    if (from < 0 || from > g->n)
        return qt__fail(err, QT_EINVAL, -1, "cannot resume at node %d of %d", from, g->n);
    if (from > 1 && n > g->batch)
        return qt__fail(err, QT_EINVAL, -1, "resuming at node %d with a batch of %d: the "
                        "activations before it hold at most %d samples", from, n, g->batch);
    if (n > g->batch && (rc = plan(g, n, err)))
        return rc;
    g->n_cur = n;
    g->train = train;
    g->step++;
    qt_node *in = &g->nodes[0];
    memcpy(in->out.data, x, (size_t)n * in->per * sizeof(float));
    for (int i = 0; i < g->n; i = i == 0 && from > 1 ? from : i + 1) {
        qt_node *nd = &g->nodes[i];
        qt_nodeq q;
        node_q(cfg, i, &q);
        qt_opctx c = { g, nd, &q, nd->p[QT_P_W].data, nd->p[QT_P_B].data, err };
        if (i > 0) {
            if ((rc = quant_params(g, nd, &q, &c, err)))
                return rc;
            rc = qt__op(nd->op)->fn(&c, QT_ACT_FORWARD);
            if (rc) return rc;
        }
        size_t m = (size_t)n * nd->per;
        uint64_t z = 0;
        if (g->stats) {
            z = qt__stats_add(g->stats, i, QT_ST_ACT, nd->out.data, NULL, m);
            if (i > 0 && nd->p[QT_P_W].size)
                qt__stats_add(g->stats, i, QT_ST_WEIGHTS, nd->p[QT_P_W].data,
                              c.w != nd->p[QT_P_W].data ? c.w : NULL, nd->p[QT_P_W].size);
            if (i > 0 && nd->p[QT_P_B].size)
                qt__stats_add(g->stats, i, QT_ST_BIAS, nd->p[QT_P_B].data,
                              c.b != nd->p[QT_P_B].data ? c.b : NULL, nd->p[QT_P_B].size);
        }
        qt__quantize_point(&q, QT_QP_OUTPUT, nd->out.data, m, g->sample_base * nd->per);
        if (g->stats && q.fmt[QT_QP_OUTPUT])
            qt__stats_zeros_q(g->stats, i, QT_ST_ACT, nd->out.data, m, z);
    }
    g->outview = g->nodes[g->output].out;
    g->outview.shape[0] = n;
    g->outview.size = (size_t)n * g->nodes[g->output].per;
    if (out) *out = &g->outview;
    return QT_OK;
}

int qt_backward(qt_graph *g, const qt_qconfig *cfg, const float *dout, qt_error *err)
{
    int n = g->n_cur, rc;
    if (g->batch == 0 || n == 0)
        return qt__fail(err, QT_EINVAL, -1, "qt_backward needs a qt_forward first");
    for (int i = 0; i < g->n; i++) {
        qt_node *nd = &g->nodes[i];
        memset(nd->gout.data, 0, (size_t)n * nd->per * sizeof(float));
        for (int k = 0; k < 2; k++)
            if (nd->gp[k].size) memset(nd->gp[k].data, 0, nd->gp[k].size * sizeof(float));
    }
    qt_node *o = &g->nodes[g->output];
    memcpy(o->gout.data, dout, (size_t)n * o->per * sizeof(float));
    for (int i = g->output; i > 0; i--) {
        qt_node *nd = &g->nodes[i];
        qt_nodeq q;
        node_q(cfg, i, &q);
        uint64_t z = g->stats ? qt__stats_add(g->stats, i, QT_ST_GRAD_ACT, nd->gout.data,
                                              NULL, (size_t)n * nd->per) : 0;
        qt__quantize_point(&q, QT_QP_GRAD_OUTPUT, nd->gout.data, (size_t)n * nd->per,
                           g->sample_base * nd->per);
        if (g->stats && q.fmt[QT_QP_GRAD_OUTPUT])
            qt__stats_zeros_q(g->stats, i, QT_ST_GRAD_ACT, nd->gout.data, (size_t)n * nd->per, z);
        qt_opctx c = { g, nd, &q, nd->p[QT_P_W].data, nd->p[QT_P_B].data, err };
        if ((rc = quant_params(g, nd, &q, &c, err)))
            return rc;
        rc = qt__op(nd->op)->fn(&c, QT_ACT_BACKWARD);
        if (rc) return rc;
        for (int k = 0; k < 2; k++) {
            if (!nd->gp[k].size) continue;
            uint64_t zw = 0;
            if (g->stats && k == 0)
                zw = qt__stats_add(g->stats, i, QT_ST_GRAD_WEIGHTS, nd->gp[k].data, NULL, nd->gp[k].size);
            qt__quantize_point(&q, QT_QP_GRAD_WEIGHTS, nd->gp[k].data, nd->gp[k].size,
                               (uint64_t)k << 40);
            if (g->stats && k == 0 && q.fmt[QT_QP_GRAD_WEIGHTS])
                qt__stats_zeros_q(g->stats, i, QT_ST_GRAD_WEIGHTS, nd->gp[k].data, nd->gp[k].size, zw);
        }
    }
    return QT_OK;
}

const qt_tensor *qt_graph_grad(const qt_graph *g, int node, int which)
{
    if (node < 0 || node >= g->n) return NULL;
    if (which == -1) return &g->nodes[node].gout;
    if (which == 0 || which == 1)
        return g->nodes[node].gp[which].size ? &g->nodes[node].gp[which] : NULL;
    return NULL;
}

const qt_tensor *qt_graph_activation(const qt_graph *g, int node)
{
    return node >= 0 && node < g->n ? &g->nodes[node].out : NULL;
}

double qt_softmax_xent(const float *logits, const uint8_t *labels, int n,
                       int classes, float *dlogits)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        double mx = z[0], s = 0.0;
        for (int k = 1; k < classes; k++) if (z[k] > mx) mx = z[k];
        for (int k = 0; k < classes; k++) s += exp((double)z[k] - mx);
        double lse = mx + log(s);
        total += lse - z[labels[i]];
        if (dlogits)
            for (int k = 0; k < classes; k++)
                dlogits[(size_t)i * classes + k] =
                    (float)((exp((double)z[k] - lse) - (k == labels[i])) / n);
    }
    return n ? total / n : 0.0;
}

void qt_runtime_init(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("QT_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("QT_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* if that fails, carry on with the spinning policy */
}
