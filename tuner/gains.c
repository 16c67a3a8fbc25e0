/*
 * gains.c -- noise gains of the tuned tensors (Sakr & Shanbhag,
 * REFERENCES.md 3(b)): how much the mismatch probability between a
 * quantized and the float model grows with the quantization noise of each
 * tensor.
 *
 * With Z the float logits (the graph's output node), yhat = argmax Z (the
 * first maximum) and m_i = Z_yhat - Z_i the margins, tensor X's gain is
 *
 *   E_X = mean over samples of
 *         sum_{i != yhat, m_i != 0}  sum_{h in X} (d m_i / d x_h)^2 / (24 m_i^2)
 *
 * so that p_m <= sum_X E_X Delta_X^2 for uniform rounding noise of step
 * Delta_X (variance Delta^2/12, a Chebyshev bound on the symmetric
 * linearised margin, union over i). The samples are the first `samples`
 * images of the data set.
 *
 * Activations (a node's output point): per chunk of up to CHUNK samples,
 * one forward and then one backward per class i, the gradient of row s
 * being e_yhat(s) - e_i (zero where i == yhat(s) or m_i == 0);
 * qt_graph_grad(node, -1) then holds every sample's d m_i / d a. Cost:
 * about (1 + C) batched passes per sample for C classes.
 * Parameters (weights and bias points): the engine sums parameter gradients
 * over a batch, and the gain needs each sample's squared gradient, so each
 * sample is run alone: one forward and C - 1 backward passes at batch 1.
 * That is the expensive part (C - 1 unbatched backward passes per sample).
 * Both kinds on 500 images: about 1 s for lenet5, 15 s for the small VGG
 * (2 cores).
 *
 * Other points (intrinsic, gradients, accumulator) have no gain here: NaN.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 64          /* samples per batched activation pass */

static int is_act(const qt_coord *c) { return c->point == QT_QP_OUTPUT; }
static int is_param(const qt_coord *c)
{
    return c->point == QT_QP_WEIGHTS || c->point == QT_QP_BIAS;
}

static double sumsq(const float *x, size_t n)
{
    double s = 0;
    for (size_t k = 0; k < n; k++) s += (double)x[k] * (double)x[k];
    return s;
}

/* the first maximum of a row of logits */
static int argmax(const float *z, int C)
{
    int b = 0;
    for (int k = 1; k < C; k++)
        if (z[k] > z[b]) b = k;
    return b;
}

/* activation gains of the coordinates flagged in want, summed (not yet
 * averaged) into E over the first N images */
static int act_gains(qt_graph *g, const float *img, size_t per, size_t N, int C,
                     const qt_coord *co, int n, double *E, qt_error *err)
{
    float *dout = malloc((size_t)CHUNK * (size_t)C * sizeof *dout);
    float *z = malloc((size_t)CHUNK * (size_t)C * sizeof *z);
    double *w = malloc((size_t)CHUNK * sizeof *w);
    int *yh = malloc((size_t)CHUNK * sizeof *yh);
    int rc = QT_OK;
    if (!dout || !z || !w || !yh) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    for (size_t s0 = 0; s0 < N; s0 += CHUNK) {
        int nb = (int)(N - s0 < CHUNK ? N - s0 : CHUNK);
        const qt_tensor *o;
        if ((rc = qt_forward(g, NULL, img + s0 * per, nb, 0, &o, err))) goto out;
        memcpy(z, o->data, (size_t)nb * (size_t)C * sizeof *z);
        for (int r = 0; r < nb; r++) yh[r] = argmax(z + (size_t)r * C, C);
        for (int i = 0; i < C; i++) {
            int any = 0;
            memset(dout, 0, (size_t)nb * (size_t)C * sizeof *dout);
            for (int r = 0; r < nb; r++) {
                double m = (double)z[(size_t)r * C + yh[r]] - (double)z[(size_t)r * C + i];
                w[r] = 0;
                if (i == yh[r] || m == 0) continue;
                dout[(size_t)r * C + yh[r]] = 1.0f;
                dout[(size_t)r * C + i] = -1.0f;
                w[r] = 1.0 / (24.0 * m * m);
                any = 1;
            }
            if (!any) continue;
            if ((rc = qt_backward(g, NULL, dout, err))) goto out;
            for (int k = 0; k < n; k++) {
                if (!is_act(&co[k])) continue;
                const qt_tensor *gr = qt_graph_grad(g, co[k].node, -1);
                size_t pe = qt_graph_node_size(g, co[k].node);
                for (int r = 0; r < nb; r++)
                    if (w[r] > 0) E[k] += w[r] * sumsq(gr->data + (size_t)r * pe, pe);
            }
        }
    }
out:
    free(dout);
    free(z);
    free(w);
    free(yh);
    return rc;
}

/* parameter gains, one sample at a time (see the top of the file) */
static int param_gains(qt_graph *g, const float *img, size_t per, size_t N, int C,
                       const qt_coord *co, int n, double *E, qt_error *err)
{
    float *dout = calloc((size_t)C, sizeof *dout);
    float *z = malloc((size_t)C * sizeof *z);
    int rc = QT_OK;
    if (!dout || !z) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    for (size_t s = 0; s < N; s++) {
        const qt_tensor *o;
        if ((rc = qt_forward(g, NULL, img + s * per, 1, 0, &o, err))) goto out;
        memcpy(z, o->data, (size_t)C * sizeof *z);
        int y = argmax(z, C);
        for (int i = 0; i < C; i++) {
            double m = (double)z[y] - (double)z[i];
            if (i == y || m == 0) continue;
            memset(dout, 0, (size_t)C * sizeof *dout);
            dout[y] = 1.0f;
            dout[i] = -1.0f;
            if ((rc = qt_backward(g, NULL, dout, err))) goto out;
            double wt = 1.0 / (24.0 * m * m);
            for (int k = 0; k < n; k++) {
                if (!is_param(&co[k])) continue;
                const qt_tensor *gr = qt_graph_grad(g, co[k].node, co[k].point == QT_QP_BIAS);
                if (gr) E[k] += wt * sumsq(gr->data, gr->size);
            }
        }
    }
out:
    free(dout);
    free(z);
    return rc;
}

int qt__gains(qt_graph *g, const qt_dataset *d, size_t samples, const qt_coord *coords,
              int n, double *E, qt_error *err)
{
    int shape[3], na = 0, np = 0, rc;
    size_t N = qt_dataset_count(d);
    if (samples < N) N = samples;
    int out = qt_graph_output(g);
    size_t Cs = qt_graph_node_size(g, out);
    qt_dataset_shape(d, shape);
    size_t per = (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2];
    if (per != qt_graph_node_size(g, 0))
        return qt__fail(err, QT_EINVAL, -1, "gains: the images have %zu values, the model's "
                        "input '%s' takes %zu", per, qt_graph_node_name(g, 0),
                        qt_graph_node_size(g, 0));
    if (Cs < 2 || Cs > 1000000)
        return qt__fail(err, QT_EINVAL, -1, "gains: the output '%s' has %zu values; margins "
                        "need at least 2 classes", qt_graph_node_name(g, out), Cs);
    if (N == 0) return qt__fail(err, QT_EINVAL, -1, "gains: no samples");
    for (int k = 0; k < n; k++) {
        if (coords[k].node < 0 || coords[k].node >= qt_graph_nodes(g))
            return qt__fail(err, QT_EINVAL, -1, "gains: coordinate %d has no node", k);
        E[k] = is_act(&coords[k]) || is_param(&coords[k]) ? 0.0 : NAN;
        na += is_act(&coords[k]);
        np += is_param(&coords[k]);
    }
    const float *img = qt_dataset_images(d);
    if (na && (rc = act_gains(g, img, per, N, (int)Cs, coords, n, E, err))) return rc;
    if (np && (rc = param_gains(g, img, per, N, (int)Cs, coords, n, E, err))) return rc;
    for (int k = 0; k < n; k++) E[k] /= (double)N;
    return QT_OK;
}

int qt__search_gains(const qt_search *s, size_t samples_act, size_t samples_param, double *E,
                     qt_error *err)
{
    const qt_coord *co;
    const qt_dataset *d = qt_search_dataset(s);
    int n = qt_search_coords(s, &co), rc = QT_OK;
    if (!d) return qt__fail(err, QT_EINVAL, -1, "gains: a custom search has no data to "
                            "measure them on");
    qt_graph *g = qt_graph_clone(qt_search_graph(s));
    qt_coord *sub = malloc((size_t)(n ? n : 1) * sizeof *sub);
    double *e = malloc((size_t)(n ? n : 1) * sizeof *e);
    int *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!g || !sub || !e || !idx) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    for (int k = 0; k < n; k++) E[k] = NAN;
    /* outputs, then parameters, each on its own number of images */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        int m = 0;
        for (int k = 0; k < n; k++)
            if (pass == 0 ? is_act(&co[k]) : is_param(&co[k])) { idx[m] = k; sub[m++] = co[k]; }
        if (!m) continue;
        rc = qt__gains(g, d, pass == 0 ? samples_act : samples_param, sub, m, e, err);
        for (int j = 0; j < m && !rc; j++) E[idx[j]] = e[j];
    }
out:
    free(idx);
    free(e);
    free(sub);
    qt_graph_free(g);
    return rc;
}
