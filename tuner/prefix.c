/*
 * prefix.c -- prefix reuse: a candidate that configures the first nodes of
 * the model as an earlier one did starts from that candidate's activations.
 *
 * Candidates differ only at the nodes that carry a tuned coordinate, so the
 * useful starting points ("boundaries") are those nodes: for a boundary k,
 * the state a forward from k needs is the frontier, the outputs of nodes
 * 1..k-1 that nodes k.. read (qt_graph_frontier). After each batch the
 * evaluator keeps every boundary's frontier it does not hold yet, keyed by
 *   (signature of the configuration of nodes 0..k-1, the batch's first
 *    image, its size),
 * and before each batch it restores the latest boundary it holds for the
 * candidate. The signature covers every point's format (canonical text),
 * the intrinsic mode and the rounding seed, so two candidates share a
 * prefix key only when the engine computes the same activations for it:
 * results are bit for bit those of a full forward.
 *
 * Admission: once the memory is full, a prefix is kept only when a second
 * evaluation has it (the float model's, every candidate's start, from the
 * first): a prefix only one candidate has would push out the ones they
 * share (greedy's
 * moves share the current configuration's, bisection's probes the float
 * model's). The signatures seen are counted in a table of 64-bit keys.
 *
 * Memory: at most the job's cache_mb of activations. What goes first is
 * decided as GreedyDual-Size does: an entry's priority is L + v, with v
 * the multiply-accumulates it saves per byte kept (the prefix's MACs over
 * the frontier's size) and L the priority of the last entry evicted, set
 * again on every hit; the lowest goes. Among equal entries that is least
 * recently used first, and a cheap-to-recompute, bulky prefix (the first
 * convolutions of a ResNet) goes before a dear, small one. Entries are shared by the search's workers (one
 * mutex; copies in and out happen under it, so no entry is freed while
 * read). Inference jobs only: a training job's candidates train their own
 * weights.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct pentry {
    uint64_t key;        /* signature of the boundary's prefix */
    size_t   start;      /* the batch: first image and size */
    int      n;
    int      b;          /* boundary index */
    float   *data;       /* the frontier, node after node, n samples each */
    size_t   bytes;
    double   prio;       /* GreedyDual-Size priority */
} pentry;

struct qt__pcache {
    pthread_mutex_t mu;
    const qt_graph *g;
    size_t   budget, bytes, peak;
    double   L;          /* GreedyDual-Size inflation */
    pentry  *e;
    int      n_e, cap_e;
    /* boundaries: nodes with a tuned coordinate and a non-empty frontier */
    int      nb;
    int     *bnode;      /* the node the boundary resumes at */
    int     *foff, *fn;  /* its frontier: front[foff[b] .. foff[b]+fn[b]) */
    int     *front;
    size_t  *fper;       /* floats per sample of the frontier */
    double  *vpb;        /* MACs a resume saves per byte kept */
    uint64_t hits, lookups, stored, evicted;
    /* admission: how many evaluations had each (boundary, signature) */
    uint64_t *seen_k;
    uint32_t *seen_n;
    size_t    seen_cap, seen_used;
};

static uint64_t seen_key(uint64_t sig, int b)
{
    uint64_t k = (sig ^ ((uint64_t)(unsigned)b * 0x9e3779b97f4a7c15ull)) | 1;   /* 0: empty */
    return k;
}

/* the count slot of a key, inserted (count 0) when absent; NULL: no memory */
static uint32_t *seen_slot(qt__pcache *pc, uint64_t key)
{
    if (2 * (pc->seen_used + 1) > pc->seen_cap) {
        size_t cap = pc->seen_cap ? 2 * pc->seen_cap : 1024;
        uint64_t *nk = calloc(cap, sizeof *nk);
        uint32_t *nn = calloc(cap, sizeof *nn);
        if (!nk || !nn) { free(nk); free(nn); return NULL; }
        for (size_t i = 0; i < pc->seen_cap; i++) {
            if (!pc->seen_k[i]) continue;
            size_t j = (size_t)(pc->seen_k[i] * 0xff51afd7ed558ccdull >> 17) & (cap - 1);
            while (nk[j]) j = (j + 1) & (cap - 1);
            nk[j] = pc->seen_k[i];
            nn[j] = pc->seen_n[i];
        }
        free(pc->seen_k);
        free(pc->seen_n);
        pc->seen_k = nk;
        pc->seen_n = nn;
        pc->seen_cap = cap;
    }
    size_t j = (size_t)(key * 0xff51afd7ed558ccdull >> 17) & (pc->seen_cap - 1);
    while (pc->seen_k[j] && pc->seen_k[j] != key) j = (j + 1) & (pc->seen_cap - 1);
    if (!pc->seen_k[j]) { pc->seen_k[j] = key; pc->seen_n[j] = 0; pc->seen_used++; }
    return &pc->seen_n[j];
}

void qt__pcache_note(qt__pcache *pc, const uint64_t *sig, int times)
{
    pthread_mutex_lock(&pc->mu);
    for (int b = 0; b < pc->nb; b++) {
        uint32_t *n = seen_slot(pc, seen_key(sig[b], b));
        if (n && *n < UINT32_MAX - (uint32_t)times) *n += (uint32_t)times;
    }
    pthread_mutex_unlock(&pc->mu);
}

uint64_t qt__fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *x = p;
    for (size_t i = 0; i < n; i++) h = (h ^ x[i]) * 0x100000001b3ull;
    return h;
}

qt__pcache *qt__pcache_new(const qt_graph *g, const qt_coord *coords, int n_coords,
                           size_t budget)
{
    int nodes = qt_graph_nodes(g);
    qt__pcache *pc = calloc(1, sizeof *pc);
    uint8_t *tuned = calloc((size_t)nodes + 1, 1);
    if (!pc || !tuned) goto fail;
    pthread_mutex_init(&pc->mu, NULL);
    pc->g = g;
    pc->budget = budget;
    for (int i = 0; i < n_coords; i++)
        if (coords[i].node >= 0 && coords[i].node < nodes) tuned[coords[i].node] = 1;
    int nb = 0, nf = 0;
    for (int k = 2; k < nodes; k++)
        if (tuned[k]) {
            int f = qt_graph_frontier(g, k, NULL, 0);
            if (f > 0) { nb++; nf += f; }
        }
    pc->bnode = calloc((size_t)nb + 1, sizeof *pc->bnode);
    pc->foff = calloc((size_t)nb + 1, sizeof *pc->foff);
    pc->fn = calloc((size_t)nb + 1, sizeof *pc->fn);
    pc->fper = calloc((size_t)nb + 1, sizeof *pc->fper);
    pc->vpb = calloc((size_t)nb + 1, sizeof *pc->vpb);
    pc->front = calloc((size_t)nf + 1, sizeof *pc->front);
    if (!pc->bnode || !pc->foff || !pc->fn || !pc->fper || !pc->vpb || !pc->front) goto fail;
    for (int k = 2, off = 0; k < nodes; k++) {
        if (!tuned[k]) continue;
        int f = qt_graph_frontier(g, k, pc->front + off, nf - off);
        if (f <= 0) continue;
        pc->bnode[pc->nb] = k;
        pc->foff[pc->nb] = off;
        pc->fn[pc->nb] = f;
        for (int i = 0; i < f; i++) pc->fper[pc->nb] += qt_graph_node_size(g, pc->front[off + i]);
        double macs = 0;
        for (int i = 0; i < k; i++) macs += (double)qt_graph_node_macs(g, i);
        pc->vpb[pc->nb] = macs / (double)(pc->fper[pc->nb] * sizeof(float));
        pc->nb++;
        off += f;
    }
    free(tuned);
    return pc;
fail:
    free(tuned);
    qt__pcache_free(pc);
    return NULL;
}

void qt__pcache_free(qt__pcache *pc)
{
    if (!pc) return;
    for (int i = 0; i < pc->n_e; i++) free(pc->e[i].data);
    free(pc->e);
    free(pc->seen_k);
    free(pc->seen_n);
    free(pc->bnode); free(pc->foff); free(pc->fn); free(pc->fper); free(pc->vpb); free(pc->front);
    pthread_mutex_destroy(&pc->mu);
    free(pc);
}

void qt__pcache_counts(qt__pcache *pc, uint64_t *hits, uint64_t *lookups, size_t *peak)
{
    pthread_mutex_lock(&pc->mu);
    if (hits) *hits = pc->hits;
    if (lookups) *lookups = pc->lookups;
    if (peak) *peak = pc->peak;
    pthread_mutex_unlock(&pc->mu);
}

int qt__pcache_sigs(const qt__pcache *pc, const qt_qconfig *cfg, uint64_t seed, uint64_t *sig)
{
    uint64_t h = qt__fnv1a(QT__FNV_SEED, &seed, sizeof seed);
    int node = 0;
    for (int b = 0; b < pc->nb; b++) {
        for (; node < pc->bnode[b]; node++) {
            h = qt__fnv1a(h, &node, sizeof node);
            for (int p = 0; p < QT_QP_COUNT; p++) {
                const qt_format *f = qt_qconfig_get(cfg, node, (qt_qpoint)p);
                char txt[QT_TEXT_MAX];
                if (!f) continue;
                if (qt_format_print(f, txt, sizeof txt) < 0) return QT_EINVAL;
                h = qt__fnv1a(h, &p, sizeof p);
                h = qt__fnv1a(h, txt, strlen(txt) + 1);
                if (p == QT_QP_INTRINSIC) {
                    int m = (int)qt_qconfig_intrinsic_mode(cfg, node);
                    h = qt__fnv1a(h, &m, sizeof m);
                }
            }
        }
        sig[b] = h;
    }
    return QT_OK;
}

static pentry *find(qt__pcache *pc, uint64_t key, int b, size_t start, int n)
{
    for (int i = 0; i < pc->n_e; i++) {
        pentry *e = &pc->e[i];
        if (e->key == key && e->b == b && e->start == start && e->n == n) return e;
    }
    return NULL;
}

int qt__pcache_resume(qt__pcache *pc, const uint64_t *sig, qt_graph *g, size_t start, int n)
{
    int from = 0;
    pthread_mutex_lock(&pc->mu);
    pc->lookups++;
    for (int b = pc->nb - 1; b >= 0; b--) {
        pentry *e = find(pc, sig[b], b, start, n);
        if (!e) continue;
        const float *x = e->data;
        int ok = 1;
        for (int i = 0; i < pc->fn[b] && ok; i++) {
            int node = pc->front[pc->foff[b] + i];
            ok = qt_graph_set_activation(g, node, x, n, NULL) == QT_OK;
            x += (size_t)n * qt_graph_node_size(g, node);
        }
        if (!ok) break;                      /* out of memory planning: run it all */
        e->prio = pc->L + pc->vpb[b];
        pc->hits++;
        from = pc->bnode[b];
        break;
    }
    pthread_mutex_unlock(&pc->mu);
    return from;
}

/* evict the lowest priorities until `need` more bytes fit; 0 when the
 * entry would itself be the first to go */
static int make_room(qt__pcache *pc, size_t need, double prio)
{
    if (need > pc->budget) return 0;
    while (pc->bytes + need > pc->budget && pc->n_e > 0) {
        int lru = 0;
        for (int i = 1; i < pc->n_e; i++)
            if (pc->e[i].prio < pc->e[lru].prio) lru = i;
        if (pc->e[lru].prio > prio) return 0;
        pc->L = pc->e[lru].prio;
        pc->bytes -= pc->e[lru].bytes;
        free(pc->e[lru].data);
        pc->e[lru] = pc->e[--pc->n_e];
        pc->evicted++;
    }
    return 1;
}

void qt__pcache_save(qt__pcache *pc, const uint64_t *sig, qt_graph *g, size_t start, int n,
                     int from)
{
    pthread_mutex_lock(&pc->mu);
    for (int b = 0; b < pc->nb; b++) {
        if (pc->bnode[b] <= from || find(pc, sig[b], b, start, n)) continue;
        size_t bytes = (size_t)n * pc->fper[b] * sizeof(float);
        uint32_t *seen = seen_slot(pc, seen_key(sig[b], b));
        if (pc->bytes + bytes > pc->budget && (!seen || *seen < 2))
            continue;                        /* only this evaluation has it: no room */
        if (!make_room(pc, bytes, pc->L + pc->vpb[b])) continue;
        if (pc->n_e == pc->cap_e) {
            int cap = pc->cap_e ? 2 * pc->cap_e : 64;
            pentry *ne = realloc(pc->e, (size_t)cap * sizeof *ne);
            if (!ne) break;
            pc->e = ne;
            pc->cap_e = cap;
        }
        float *data = malloc(bytes ? bytes : 1), *x = data;
        if (!data) break;
        for (int i = 0; i < pc->fn[b]; i++) {
            int node = pc->front[pc->foff[b] + i];
            size_t m = (size_t)n * qt_graph_node_size(g, node);
            memcpy(x, qt_graph_activation(g, node)->data, m * sizeof(float));
            x += m;
        }
        pc->e[pc->n_e++] = (pentry){ sig[b], start, n, b, data, bytes, pc->L + pc->vpb[b] };
        pc->bytes += bytes;
        pc->stored++;
        if (pc->bytes > pc->peak) pc->peak = pc->bytes;
    }
    pthread_mutex_unlock(&pc->mu);
}

int qt__pcache_boundaries(const qt__pcache *pc) { return pc->nb; }
