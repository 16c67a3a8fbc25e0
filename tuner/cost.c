/*
 * cost.c -- what a candidate costs.
 *
 *   weight bits  the stored weights and biases of every node (batchnorm:
 *                gamma and beta), each at its format's bits per value
 *                (qt_bits: block formats include their shared scale), 32
 *                when float.
 *   act bits     every node's output per inference (the input's too), at
 *                the output point's bits, 32 when float; views of their
 *                input (flatten, reshape, dropout) count only when their
 *                output point is quantized.
 *   bitops       over the nodes that multiply (conv, dense, matmul): MACs x
 *                weight bits x input activation bits, where the input's
 *                bits are its producer's output format, and an intrinsic
 *                format, when set, is what both operands are held in.
 * The compression is the fp32 cost over the candidate's, for the job's cost.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static double bits_or32(const qt_format *f)
{
    return f && f->type != QT_NONE ? qt_bits(f) : 32.0;
}

/* the candidate's format at (node, point), or NULL (float) */
static const qt_format *fmt_at(const qt_search *s, const qt_cand *c, int node, qt_qpoint p)
{
    for (int i = 0; i < s->n_coords; i++)
        if (s->coords[i].node == node && s->coords[i].point == p)
            return c && c->fmt[i].type != QT_NONE ? &c->fmt[i] : NULL;
    return NULL;
}

static int multiplies(qt_op op)
{
    return op == QT_OP_CONV || op == QT_OP_DENSE || op == QT_OP_MATMUL;
}

static void costs(const qt_search *s, const qt_cand *c, double *wb, double *ab, double *bo)
{
    qt_graph *g = (qt_graph *)s->g;          /* qt_graph_param is not const */
    double w = 0, a = 0, b = 0;
    for (int n = 0; n < qt_graph_nodes(g); n++) {
        for (int k = 0; k < 2; k++) {
            const qt_tensor *t = qt_graph_param(g, n, k);
            if (t) w += (double)t->size * bits_or32(fmt_at(s, c, n, k ? QT_QP_BIAS : QT_QP_WEIGHTS));
        }
        const qt_format *fo = fmt_at(s, c, n, QT_QP_OUTPUT);
        qt_op op = qt_graph_node_op(g, n);
        if (fo || (op != QT_OP_FLATTEN && op != QT_OP_RESHAPE && op != QT_OP_DROPOUT))
            a += (double)qt_graph_node_size(g, n) * bits_or32(fo);
        if (multiplies(qt_graph_node_op(g, n))) {
            const qt_format *fi = fmt_at(s, c, n, QT_QP_INTRINSIC);
            const int *in;
            qt_graph_node_inputs(g, n, &in);
            double wbits = fi ? qt_bits(fi) : bits_or32(fmt_at(s, c, n, QT_QP_WEIGHTS));
            double abits = fi ? qt_bits(fi) : bits_or32(fmt_at(s, c, in[0], QT_QP_OUTPUT));
            b += (double)qt_graph_node_macs(g, n) * wbits * abits;
        }
    }
    *wb = w; *ab = a; *bo = b;
}

void qt__cost_fp32(const qt_search *s, double *w, double *a, double *b)
{
    costs(s, NULL, w, a, b);
}

double qt_job_cost(const qt_job_spec *sp, double w, double a, double b)
{
    switch (sp->cost) {
    case QT_COST_WEIGHT_BITS: return w;
    case QT_COST_ACT_BITS:    return a;
    case QT_COST_BITOPS:      return b;
    default:                  return sp->w_weight * w + sp->w_act * a + sp->w_bitops * b;
    }
}

void qt__cost(const qt_search *s, const qt_cand *c, qt_result *r)
{
    costs(s, c, &r->weight_bits, &r->act_bits, &r->bitops);
    r->cost = qt_job_cost(&s->spec, r->weight_bits, r->act_bits, r->bitops);
    double c0 = qt_job_cost(&s->spec, s->w0, s->a0, s->b0);
    r->compression = r->cost > 0 ? c0 / r->cost : 0.0;
}
