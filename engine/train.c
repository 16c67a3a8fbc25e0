/*
 * train.c -- evaluation over a data set, and training with SGD (momentum,
 * weight decay) or Adam under any quantization configuration.
 *
 * Training under a configuration: the forward pass uses the configured
 * weights/bias/output/intrinsic formats (float master weights, quantized
 * copies), the backward pass the grad_output and grad_weights formats; after
 * each update the weights and biases themselves are rounded to the
 * accumulator format, which models a weight store of that precision.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int check_input(const qt_graph *g, const qt_dataset *d, qt_error *err)
{
    int s[3];
    qt_dataset_shape(d, s);
    const qt_node *in = &g->nodes[0];
    if (g->n < 2)
        return qt__fail(err, QT_EINVAL, -1, "the graph has no layers");
    if ((size_t)s[0] * s[1] * s[2] != in->per)
        return qt__fail(err, QT_EINVAL, -1, "data of %dx%dx%d does not fit input '%s' of %dx%dx%d",
                        s[0], s[1], s[2], in->name, in->shape[0], in->shape[1], in->shape[2]);
    if ((int)g->nodes[g->output].per < qt_dataset_classes(d))
        return qt__fail(err, QT_EINVAL, -1, "output '%s' has %zu values for %d classes",
                        g->nodes[g->output].name, g->nodes[g->output].per, qt_dataset_classes(d));
    return QT_OK;
}

/* top-1 / top-5 of one sample's logits */
static void score(const float *z, int classes, int label, int *top1, int *top5, int *bad)
{
    int rank = 0;
    *bad = 0;
    for (int k = 0; k < classes; k++) {
        if (!isfinite(z[k])) *bad = 1;
        if (k != label && (z[k] > z[label] || (z[k] == z[label] && k < label))) rank++;
    }
    if (!isfinite(z[label])) *bad = 1;
    *top1 = !*bad && rank == 0;
    *top5 = !*bad && rank < 5;
}

/* the label's logit minus the largest other (-inf when any is not finite) */
static float margin_of(const float *z, int classes, int label, int bad)
{
    if (bad) return -INFINITY;
    float other = -INFINITY;
    for (int k = 0; k < classes; k++)
        if (k != label && z[k] > other) other = z[k];
    return z[label] - other;
}

int qt_evaluate(qt_graph *g, const qt_qconfig *cfg, const qt_dataset *d,
                const qt_eval_opts *opts, qt_metrics *m, qt_error *err)
{
    qt_eval_opts o = { 0 };
    int rc;
    if (opts) o = *opts;
    if (o.batch <= 0) o.batch = 256;
    memset(m, 0, sizeof *m);
    if ((rc = check_input(g, d, err))) return rc;
    size_t total = qt_dataset_count(d), per = g->nodes[0].per;
    if (o.limit && o.limit < total) total = o.limit;
    int classes = qt_dataset_classes(d);
    const float *X = qt_dataset_images(d);
    const uint8_t *L = qt_dataset_labels(d);
    uint8_t *correct = o.correct;
    uint8_t *own = NULL;
    if (!correct && o.cb) {
        own = malloc(total ? total : 1);
        if (!own) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
        correct = own;
    }
    double loss = 0.0, t1 = 0.0, t5 = 0.0;
    int n;
    for (size_t start = 0; start < total; start += (size_t)n) {
        size_t nb = (size_t)o.batch;
        if (o.first_batch > 0 && start < o.first_images) {
            nb = (size_t)o.first_batch;
            if (nb > o.first_images - start) nb = o.first_images - start;
        }
        n = (int)(total - start < nb ? total - start : nb);
        const qt_tensor *y;
        g->sample_base = start;
        int from = o.resume ? o.resume(o.prefix_user, g, start, n) : 0;
        rc = qt_forward_from(g, cfg, from, X + start * per, n, 0, &y, err);
        if (rc) break;
        if (o.saved) o.saved(o.prefix_user, g, start, n, from);
        size_t F = g->nodes[g->output].per;
        for (int i = 0; i < n; i++) {
            const float *z = y->data + (size_t)i * F;
            int a, b, bad;
            score(z, classes, L[start + i], &a, &b, &bad);
            t1 += a; t5 += b;
            if (bad) m->nan_count++;
            else loss += qt_softmax_xent(z, &L[start + i], 1, classes, NULL);
            if (correct) correct[start + i] = (uint8_t)a;
            if (o.margin) o.margin[start + i] = margin_of(z, classes, L[start + i], bad);
        }
        m->count = start + (size_t)n;
        m->top1 = t1 / (double)m->count;
        m->top5 = t5 / (double)m->count;
        m->loss = m->count > m->nan_count ? loss / (double)(m->count - m->nan_count) : INFINITY;
        if (o.cb && o.cb(o.user, m, correct)) { m->stopped = 1; break; }
    }
    g->sample_base = 0;
    free(own);
    return rc;
}

qt_train_opts qt_train_defaults(void)
{
    qt_train_opts o;
    memset(&o, 0, sizeof o);
    o.optim = QT_SGD;
    o.epochs = 1;
    o.batch = 64;
    o.lr = 0.01;
    o.momentum = 0.9;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.adam_eps = 1e-8;
    o.lr_gamma = 0.1;
    o.seed = 1;
    return o;
}

static double lr_at(const qt_train_opts *o, int epoch, double frac)
{
    if (o->cosine)
        return o->lr * 0.5 * (1.0 + cos(M_PI * ((double)epoch + frac) / o->epochs));
    if (o->lr_step > 0)
        return o->lr * pow(o->lr_gamma, epoch / o->lr_step);
    return o->lr;
}

static void progress(FILE *f, int epoch, int epochs, size_t done, size_t total,
                     double loss, double acc, double secs)
{
    int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(f, "\repoch %d/%d [%s] %3d%%  loss %.4f  acc %.2f%%  %.0f img/s ",
            epoch + 1, epochs, bar, total ? (int)(100.0 * done / total) : 100, loss,
            100.0 * acc, secs > 0 ? (double)done / secs : 0.0);
    fflush(f);
}

int qt_train(qt_graph *g, const qt_qconfig *cfg, const qt_dataset *d,
             const qt_train_opts *opts, qt_train_stats *stats, qt_error *err)
{
    qt_train_opts o = opts ? *opts : qt_train_defaults();
    qt_stats *prev_stats = g->stats;
    int rc;
    if ((rc = check_input(g, d, err))) return rc;
    if (o.batch <= 0 || o.epochs < 0 || !(o.lr >= 0))
        return qt__fail(err, QT_EINVAL, -1, "training: batch %d, epochs %d, lr %g", o.batch, o.epochs, o.lr);
    size_t count = qt_dataset_count(d), per = g->nodes[0].per;
    int classes = qt_dataset_classes(d);
    size_t F = g->nodes[g->output].per;
    /* optimizer state: two moments per trainable parameter */
    size_t np = 0;
    for (int i = 0; i < g->n; i++) np += g->nodes[i].p[QT_P_W].size + g->nodes[i].p[QT_P_B].size;
    float *m1 = calloc(np ? np : 1, sizeof *m1), *m2 = calloc(np ? np : 1, sizeof *m2);
    float *xb = malloc((size_t)o.batch * per * sizeof *xb);
    float *dz = malloc((size_t)o.batch * F * sizeof *dz);
    uint8_t *lb = malloc((size_t)o.batch);
    size_t *perm = malloc((count ? count : 1) * sizeof *perm);
    if (!m1 || !m2 || !xb || !dz || !lb || !perm) { rc = qt__fail(err, QT_ENOMEM, -1, "out of memory"); goto out; }
    const float *X = qt_dataset_images(d);
    const uint8_t *L = qt_dataset_labels(d);
    uint64_t t = 0;
    if (stats) memset(stats, 0, sizeof *stats);
    for (int ep = 0; ep < o.epochs; ep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (size_t i = 0; i < count; i++) perm[i] = i;
        for (size_t i = count; i > 1; i--) {
            uint64_t r = ((uint64_t)qt_rand32(o.seed, 0x5417 + (uint64_t)ep, i) << 32) |
                         qt_rand32(o.seed, 0x9417 + (uint64_t)ep, i);
            size_t j = (size_t)(r % i), tmp = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = tmp;
        }
        double sum_loss = 0.0, correct = 0.0;
        size_t seen = 0;
        if (o.stats) qt_graph_attach_stats(g, o.stats);
        for (size_t start = 0; start < count; start += (size_t)o.batch) {
            int n = (int)(count - start < (size_t)o.batch ? count - start : (size_t)o.batch);
            for (int i = 0; i < n; i++) {
                memcpy(xb + (size_t)i * per, X + perm[start + i] * per, per * sizeof(float));
                lb[i] = L[perm[start + i]];
            }
            const qt_tensor *y;
            g->sample_base = (uint64_t)ep * count + start;
            if ((rc = qt_forward(g, cfg, xb, n, 1, &y, err))) goto out;
            for (int i = 0; i < n; i++) {
                int a, b, bad;
                score(y->data + (size_t)i * F, classes, lb[i], &a, &b, &bad);
                correct += a;
            }
            /* logits may be wider than the classes: loss over the first F */
            double loss = qt_softmax_xent(y->data, lb, n, (int)F, dz);
            if (!isfinite(loss)) {
                rc = qt__fail(err, QT_ENAN, -1, "training diverged: loss is %g at epoch %d, "
                              "image %zu (lower the learning rate?)", loss, ep + 1, start);
                goto out;
            }
            sum_loss += loss * n;
            seen += (size_t)n;
            if ((rc = qt_backward(g, cfg, dz, err))) goto out;
            double lr = lr_at(&o, ep, (double)start / (double)count);
            t++;
            size_t off = 0;
            for (int i = 1; i < g->n; i++) {
                qt_node *nd = &g->nodes[i];
                for (int k = 0; k < 2; k++) {
                    qt_tensor *p = &nd->p[k], *gp = &nd->gp[k];
                    float *a1 = m1 + off, *a2 = m2 + off;
                    double wd = k == 0 && nd->op != QT_OP_BATCHNORM ? o.weight_decay : 0.0;
                    if (!p->size) continue;
                    if (o.optim == QT_SGD) {
                        for (size_t e = 0; e < p->size; e++) {
                            float gr = gp->data[e] + (float)wd * p->data[e];
                            a1[e] = (float)o.momentum * a1[e] + gr;
                            p->data[e] -= (float)lr * a1[e];
                        }
                    } else {
                        double c1 = 1.0 - pow(o.beta1, (double)t), c2 = 1.0 - pow(o.beta2, (double)t);
                        for (size_t e = 0; e < p->size; e++) {
                            float gr = gp->data[e] + (float)wd * p->data[e];
                            a1[e] = (float)o.beta1 * a1[e] + (float)(1 - o.beta1) * gr;
                            a2[e] = (float)o.beta2 * a2[e] + (float)(1 - o.beta2) * gr * gr;
                            p->data[e] -= (float)(lr * (a1[e] / c1) / (sqrt(a2[e] / c2) + o.adam_eps));
                        }
                    }
                    if (cfg) {
                        qt_nodeq q;
                        memset(&q, 0, sizeof q);
                        qt__qconfig_node(cfg, i, &q);
                        q.stream = ((uint64_t)(unsigned)i << 8);
                        qt__quantize_point(&q, QT_QP_ACCUMULATOR, p->data, p->size,
                                           (t << 32) | ((uint64_t)k << 31));
                    }
                    off += p->size;
                }
            }
            if (o.progress && ((start / (size_t)o.batch) % 20 == 0 || start + (size_t)n >= count)) {
                clock_gettime(CLOCK_MONOTONIC, &t1);
                progress(o.progress, ep, o.epochs, seen, count, sum_loss / seen, correct / seen,
                         (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
            }
        }
        if (o.stats) {
            qt_graph_attach_stats(g, prev_stats);
            if (o.epoch_cb) o.epoch_cb(o.user, ep, o.stats);
            qt_stats_reset(o.stats);
        }
        if (stats) {
            stats->epochs_done = ep + 1;
            stats->loss = seen ? sum_loss / seen : 0;
            stats->train_top1 = seen ? correct / seen : 0;
        }
        if (o.val) {
            qt_metrics vm;
            if ((rc = qt_evaluate(g, cfg, o.val, NULL, &vm, err))) goto out;
            if (stats) stats->val_top1 = vm.top1;
            if (o.progress) fprintf(o.progress, " val %.2f%%", 100.0 * vm.top1);
        }
        if (o.progress) fputc('\n', o.progress);
    }
    rc = QT_OK;
out:
    g->sample_base = 0;
    g->stats = prev_stats;
    free(m1); free(m2); free(xb); free(dz); free(lb); free(perm);
    return rc;
}
