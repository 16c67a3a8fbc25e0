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
 * Other points (intrinsic, gradients, accumulator) have no gain here: NaN;
 * the training points (gradients, accumulator) add no noise to an
 * inference, so the drop estimate takes them as noiseless.
 *
 * The model is the search's float reference (qt__search_ref): a training
 * job's float-trained copy, whose forward tensors its candidates quantize.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 64          /* samples per batched activation pass */

static int is_act(const qt_coord *c) { return c->point == QT_QP_OUTPUT; }
static int is_training(const qt_coord *c)
{
    return c->point == QT_QP_GRAD_OUTPUT || c->point == QT_QP_GRAD_WEIGHTS ||
           c->point == QT_QP_ACCUMULATOR;
}
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
                     const qt_coord *co, int n, double *E, double *G, double *M, int *Y,
                     qt_error *err)
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
        for (int r = 0; r < nb; r++) {
            yh[r] = argmax(z + (size_t)r * C, C);
            if (Y) Y[s0 + (size_t)r] = yh[r];
        }
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
                if (M) M[(s0 + (size_t)r) * (size_t)C + (size_t)i] = m;
                any = 1;
            }
            if (!any) continue;
            if ((rc = qt_backward(g, NULL, dout, err))) goto out;
            for (int k = 0; k < n; k++) {
                if (!is_act(&co[k])) continue;
                const qt_tensor *gr = qt_graph_grad(g, co[k].node, -1);
                size_t pe = qt_graph_node_size(g, co[k].node);
                for (int r = 0; r < nb; r++) {
                    if (!(w[r] > 0)) continue;
                    double v = sumsq(gr->data + (size_t)r * pe, pe);
                    E[k] += w[r] * v;
                    if (G) G[((s0 + (size_t)r) * (size_t)C + (size_t)i) * (size_t)n + (size_t)k] = v;
                }
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
                       const qt_coord *co, int n, double *E, double *G, double *M, int *Y,
                       double **A, qt_error *err)
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
        if (Y) Y[s] = y;
        for (int i = 0; i < C; i++) {
            double m = (double)z[y] - (double)z[i];
            if (i == y || m == 0) continue;
            memset(dout, 0, (size_t)C * sizeof *dout);
            dout[y] = 1.0f;
            dout[i] = -1.0f;
            if ((rc = qt_backward(g, NULL, dout, err))) goto out;
            double wt = 1.0 / (24.0 * m * m);
            if (M) M[s * (size_t)C + (size_t)i] = m;
            for (int k = 0; k < n; k++) {
                if (!is_param(&co[k])) continue;
                const qt_tensor *gr = qt_graph_grad(g, co[k].node, co[k].point == QT_QP_BIAS);
                double v = gr ? sumsq(gr->data, gr->size) : 0;
                E[k] += wt * v;
                if (A && A[k] && gr)
                    for (size_t h = 0; h < gr->size; h++)
                        A[k][h] += wt * (double)gr->data[h] * (double)gr->data[h];
                if (G) G[(s * (size_t)C + (size_t)i) * (size_t)n + (size_t)k] = v;
            }
        }
    }
out:
    free(dout);
    free(z);
    return rc;
}

/* the gains, and with G, M and Y (sized by the caller: N x C x n and N x C
 * doubles, zeroed, and N) every sample's squared margin gradients, margins
 * and float prediction */
static int gains_run(qt_graph *g, const qt_dataset *d, size_t samples, const qt_coord *coords,
                     int n, double *E, double *G, double *M, int *Y, double **A, qt_error *err)
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
    if (na && (rc = act_gains(g, img, per, N, (int)Cs, coords, n, E, G, M, Y, err))) return rc;
    if (np && (rc = param_gains(g, img, per, N, (int)Cs, coords, n, E, G, M, Y, A, err)))
        return rc;
    for (int k = 0; k < n; k++) E[k] /= (double)N;
    return QT_OK;
}

int qt__gains(qt_graph *g, const qt_dataset *d, size_t samples, const qt_coord *coords,
              int n, double *E, qt_error *err)
{
    return gains_run(g, d, samples, coords, n, E, NULL, NULL, NULL, NULL, err);
}

int qt__search_gains(const qt_search *s, size_t samples_act, size_t samples_param, double *E,
                     qt_error *err)
{
    const qt_coord *co;
    const qt_dataset *d = qt_search_dataset(s);
    int n = qt_search_coords(s, &co), rc = QT_OK;
    if (!d) return qt__fail(err, QT_EINVAL, -1, "gains: a custom search has no data to "
                            "measure them on");
    qt_graph *g = qt_graph_clone(qt__search_ref(s));
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

/* ------------------------------------------------------------------------ */
/* The mismatch estimate                                                     */
/* ------------------------------------------------------------------------ */

/* a measured noise variance: coordinate and format */
typedef struct noise_e {
    int       coord;
    qt_format f;
    double    var;
} noise_e;

struct qt__margins {
    int       N, C, n;     /* samples, classes, coordinates */
    double   *m;           /* N x C margins Z_yhat - Z_i (0: none) */
    double   *G;           /* N x C x n: sum_h (d m_i / d x_h)^2 */
    double   *E;           /* the gains (n) */
    double  **A;           /* per parameter coordinate, each value's share of
                              its gain (NULL: not a parameter) */
    int      *y;           /* N float predictions */
    uint8_t  *label;       /* N labels */
    qt_graph *g;           /* the float model (own copy): weights to measure */
    float    *buf;         /* scratch for a quantized parameter tensor */
    size_t    cap_buf;
    int       weighted;    /* param noise weighted by A (1; the plain mean
                              squared error predicted fc3 cluster<2> 0.42 %
                              where 4.5 % was measured on lenet5, weighted
                              10 %; fixed<4> 0.94 % / 3.2 %, weighted 4.0 %) */
    noise_e  *cache;       /* noise variances measured so far */
    int       n_cache, cap_cache;
};

void qt__margins_free(qt__margins *M)
{
    if (!M) return;
    free(M->m);
    free(M->G);
    free(M->E);
    for (int k = 0; M->A && k < M->n; k++) free(M->A[k]);
    free(M->A);
    free(M->y);
    free(M->label);
    free(M->buf);
    free(M->cache);
    qt_graph_free(M->g);
    free(M);
}

int qt__margins_new(const qt_search *s, size_t samples, const double *gains, qt__margins **out,
                    qt_error *err)
{
    const qt_coord *co;
    const qt_dataset *d = qt_search_dataset(s);
    int n = qt_search_coords(s, &co), rc;
    *out = NULL;
    if (!d) return qt__fail(err, QT_EINVAL, -1, "gains: a custom search has no data to "
                            "measure margins on");
    qt__margins *M = calloc(1, sizeof *M);
    if (!M) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    M->g = qt_graph_clone(qt__search_ref(s));
    size_t N = qt_dataset_count(d);
    if (samples < N) N = samples;
    M->N = (int)N;
    M->n = n;
    M->C = M->g ? (int)qt_graph_node_size(M->g, qt_graph_output(M->g)) : 0;
    size_t nm = N * (size_t)(M->C > 0 ? M->C : 1);
    M->m = calloc(nm ? nm : 1, sizeof *M->m);
    M->G = calloc(nm * (size_t)(n ? n : 1) + 1, sizeof *M->G);
    M->E = calloc((size_t)(n ? n : 1), sizeof *M->E);
    M->y = calloc(N ? N : 1, sizeof *M->y);
    M->label = malloc(N ? N : 1);
    M->A = calloc((size_t)(n ? n : 1), sizeof *M->A);
    for (int k = 0; M->A && M->g && k < n; k++) {
        const qt_tensor *t = is_param(&co[k]) ? qt_graph_param(M->g, co[k].node,
                                                              co[k].point == QT_QP_BIAS) : NULL;
        if (t && t->size && !(M->A[k] = calloc(t->size, sizeof **M->A))) {
            qt__margins_free(M);
            return qt__fail(err, QT_ENOMEM, -1, "out of memory");
        }
    }
    if (!M->g || !M->m || !M->G || !M->E || !M->y || !M->label || !M->A) {
        qt__margins_free(M);
        return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    }
    memcpy(M->label, qt_dataset_labels(d), N);
    if ((rc = gains_run(M->g, d, N, co, n, M->E, M->G, M->m, M->y, M->A, err))) {
        qt__margins_free(M);
        return rc;
    }
    if (gains)
        for (int k = 0; k < n; k++) M->E[k] = gains[k];
    M->weighted = 1;
    *out = M;
    return QT_OK;
}

const double *qt__margins_gains(const qt__margins *M) { return M->E; }

/* the error of quantizing a parameter tensor with f: its squared error per
 * value weighted by the value's share of the gain (A), or the plain mean
 * without one */
static double param_noise(qt__margins *M, const qt_coord *c, const double *A, const qt_format *f)
{
    qt_tensor *t = qt_graph_param(M->g, c->node, c->point == QT_QP_BIAS);
    if (!t || !t->size) return 0;
    if (t->size > M->cap_buf) {
        float *b = realloc(M->buf, t->size * sizeof *b);
        if (!b) return NAN;
        M->buf = b;
        M->cap_buf = t->size;
    }
    memcpy(M->buf, t->data, t->size * sizeof *M->buf);
    qt_quantize(f, M->buf, t->size, NULL);
    double e = 0, wsum = 0;
    for (size_t k = 0; k < t->size; k++) {
        double d = (double)M->buf[k] - (double)t->data[k], w = A ? A[k] : 1.0;
        e += w * d * d;
        wsum += w;
    }
    if (!(wsum > 0)) {                    /* no gain anywhere: the plain mean */
        e = 0;
        for (size_t k = 0; k < t->size; k++) {
            double d = (double)M->buf[k] - (double)t->data[k];
            e += d * d;
        }
        wsum = (double)t->size;
    }
    return e / wsum;
}

double qt__noise(qt__margins *M, const qt_search *s, int coord, const qt_format *f)
{
    const qt_coord *co;
    qt_search_coords(s, &co);
    if (f->type == QT_NONE) return 0;
    if (is_training(&co[coord])) return 0;        /* not in an inference */
    if (!is_param(&co[coord]))
        return f->type == QT_FIXED || f->type == QT_UFIXED ? qt_noise_var(f, 0.0) : NAN;
    for (int k = 0; k < M->n_cache; k++)
        if (M->cache[k].coord == coord && !memcmp(&M->cache[k].f, f, sizeof *f))
            return M->cache[k].var;
    double v = param_noise(M, &co[coord], M->weighted ? M->A[coord] : NULL, f);
    if (M->n_cache == M->cap_cache) {
        int cap = M->cap_cache ? 2 * M->cap_cache : 64;
        noise_e *e = realloc(M->cache, (size_t)cap * sizeof *e);
        if (!e) return v;
        M->cache = e;
        M->cap_cache = cap;
    }
    M->cache[M->n_cache++] = (noise_e){ coord, *f, v };
    return v;
}

static double estimate(qt__margins *M, const qt_search *s, const qt_cand *c, int drop);

double qt__mismatch_estimate(qt__margins *M, const qt_search *s, const qt_cand *c)
{
    return estimate(M, s, c, 0);
}

double qt__drop_estimate(qt__margins *M, const qt_search *s, const qt_cand *c)
{
    return estimate(M, s, c, 1);
}

static double estimate(qt__margins *M, const qt_search *s, const qt_cand *c, int drop)
{
    double var[256], *v = M->n <= 256 ? var : malloc((size_t)M->n * sizeof *v);
    double p = 0;
    int any = 0;
    if (!v) return NAN;
    for (int k = 0; k < M->n; k++) {
        v[k] = qt__noise(M, s, k, &c->fmt[k]);
        if (isnan(v[k])) { p = NAN; goto out; }
        any |= v[k] > 0;
    }
    if (!any) goto out;
    for (int i = 0; i < M->N; i++) {
        double ps = 0, pl = 0;
        for (int j = 0; j < M->C; j++) {
            double m = M->m[(size_t)i * (size_t)M->C + (size_t)j], sg = 0, pj;
            if (!(m > 0)) continue;
            const double *g = &M->G[((size_t)i * (size_t)M->C + (size_t)j) * (size_t)M->n];
            for (int k = 0; k < M->n; k++) sg += g[k] * v[k];
            pj = sg > 0 ? 0.5 * erfc(m / sqrt(2.0 * sg)) : 0;
            ps += pj;
            if (j == M->label[i]) pl = pj;
        }
        if (ps > 1) ps = 1;
        /* drop: a correct image is lost when any class overtakes; a wrong
         * one is won when its label does */
        if (!drop) p += ps;
        else p += M->y[i] == M->label[i] ? ps : -pl;
    }
    p /= (double)M->N;
out:
    if (v != var) free(v);
    return p;
}
