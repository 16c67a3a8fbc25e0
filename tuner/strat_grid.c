/*
 * strat_grid.c -- the grid strategy: every candidate of an explicit grid,
 * evaluated, none pruned (studies, sweeps).
 *
 * The grid is made once, when the search starts, and proposed in a fixed
 * order that depends only on the job and the tensors' measured ranges.
 * Options (the job's "strategy": {"name": "grid", ...}):
 *
 *   "mode"     "uniform" (default): one format for every tuned tensor at
 *              once; "each": one tensor at a time quantized, every other
 *              float (per-layer tables); "list": the candidates given in
 *              "candidates".
 *   "widths"   [lo, hi] (every width from lo to hi), or a list of widths
 *              in the order to try them (any length but 2; for exactly two
 *              separate widths, {"list": [a, b]}). The widths are used as
 *              given for every tensor. Default: each tensor's own width
 *              range (the space's rules); in uniform mode the widths of
 *              the union of those ranges, each tensor clamped to its own.
 *   "types"    a list of the space's types, in the order to try them
 *              (default: every type some rule allows, in qt_type order).
 *              A uniform candidate of type t quantizes the tensors whose
 *              rule allows t and leaves the others float.
 *   "bias"     "fit" (default): the bias fitted to the tensor's measured
 *              range (qt_search_format, delta 0); "half": fixed point with
 *              F = floor(W/2) fractional bits (an absolute bias, the same
 *              for every tensor: TensorQuant's F = W/2; fixed and ufixed
 *              types only); {"search": k} (1 <= k <= 16): every delta
 *              -k..k from the fitted bias, or with "from": "half" every
 *              F = floor(W/2) - k .. floor(W/2) + k.
 *   "frac"     [lo, hi]: leave out every candidate in which a fixed or ufixed
 *              tensor would have fractional bits F outside lo..hi (e.g.
 *              [0, 30]: no negative F, which intrinsic arithmetic runs on
 *              its slow reference path and which rounds small weights to
 *              0). Default: any F the format allows.
 *   "candidates"  mode "list" only: a non-empty array of objects
 *              {"NODE POINT": format, ...} ("fc1 weights": "fixed<8,6>";
 *              "NODE" alone when one point of that node is tuned; formats as
 *              text or JSON, quant.h). Tuned tensors not named stay float.
 *
 * Order: uniform: type, then width, then bias (deltas ascending); each:
 * tensor (coordinate order), then type, width, bias; list: as given. A
 * (type, width, bias) that some tensor of the candidate cannot take (a
 * float narrower than 3 bits, a bias out of the format's range) is left
 * out, and so is a candidate equal to an earlier one (clamped widths, a
 * bias delta on a type without a bias): the grid never proposes the same
 * configuration twice. Each reason reads "grid K/N: " and names the type,
 * width and bias (F for fixed point) and the tensor(s).
 *
 * The strategy never looks at the results: the job's constraint only marks
 * each candidate feasible or not, and the answer is the cheapest feasible.
 * With the early stop on, failing candidates are measured on part of the
 * split: studies set "early_stop": false. Candidates are proposed one round
 * per `workers` of them, so progress is reported as they finish.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { G_UNIFORM = 0, G_EACH = 1, G_LIST = 2 };
enum { B_FIT = 0, B_HALF = 1 };

#define GRID_MAX_K 16

typedef struct grid {
    int        n;           /* tensors (coordinates) */
    int        count, cap;  /* candidates */
    qt_format *fmt;         /* count x n formats */
    uint64_t  *hash;        /* of each candidate's formats */
    char     (*reason)[160];
    int        next;        /* the next to propose */
    int        observed;    /* results seen */
    int        round;       /* proposals per round */
} grid;

/* the options, parsed */
typedef struct gopts {
    int mode;
    int widths[32], n_widths;      /* n_widths 0: the rules' ranges */
    int types[QT_TYPE_COUNT], n_types;
    int bias_from, k;              /* B_FIT or B_HALF; deltas -k..k */
    int frac_lo, frac_hi;          /* fixed point: F in lo..hi */
} gopts;

static void grid_free(void *state)
{
    grid *g = state;
    if (!g) return;
    free(g->fmt);
    free(g->hash);
    free(g->reason);
    free(g);
}

/* add the candidate fmt (n formats) unless it equals an earlier one;
 * reason is finished later (it needs the count). QT_ENOMEM or QT_OK. */
static int add(grid *g, const qt_format *fmt, const char *reason)
{
    uint64_t h = qt__fnv1a(QT__FNV_SEED, fmt, (size_t)g->n * sizeof *fmt);
    for (int i = 0; i < g->count; i++)
        if (g->hash[i] == h && !memcmp(&g->fmt[(size_t)i * g->n], fmt, (size_t)g->n * sizeof *fmt))
            return QT_OK;
    if (g->count == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        qt_format *nf = realloc(g->fmt, (size_t)cap * (size_t)(g->n ? g->n : 1) * sizeof *nf);
        if (!nf) return QT_ENOMEM;
        g->fmt = nf;
        uint64_t *nh = realloc(g->hash, (size_t)cap * sizeof *nh);
        if (!nh) return QT_ENOMEM;
        g->hash = nh;
        char (*nr)[160] = realloc(g->reason, (size_t)cap * sizeof *nr);
        if (!nr) return QT_ENOMEM;
        g->reason = nr;
        g->cap = cap;
    }
    memcpy(&g->fmt[(size_t)g->count * g->n], fmt, (size_t)g->n * sizeof *fmt);
    g->hash[g->count] = h;
    snprintf(g->reason[g->count], sizeof g->reason[0], "%s", reason);
    g->count++;
    return QT_OK;
}

/* the format of tensor i at (t, w) with the bias of option o and delta d;
 * QT_EINVAL when it cannot be */
static int build(const qt_search *s, int i, qt_type t, int w, const gopts *o, int d,
                 qt_format *f)
{
    int fixed = t == QT_FIXED || t == QT_UFIXED;
    if (o->bias_from == B_FIT) {
        if (qt_search_format(s, i, t, w, d, f) != QT_OK) return QT_EINVAL;
    } else {
        qt_format f0;
        int F = w / 2 + d;
        if (qt_search_format(s, i, t, w, 0, &f0) != QT_OK) return QT_EINVAL;
        if (qt_search_format(s, i, t, w, F - f0.bias, f) != QT_OK || f->bias != F)
            return QT_EINVAL;
    }
    if (fixed && (f->bias < o->frac_lo || f->bias > o->frac_hi)) return QT_EINVAL;
    return QT_OK;
}

/* the bias part of a reason: "F=4 (W/2)", "F=5 (fitted+1)", "fitted bias-1" */
static void bias_text(const gopts *o, qt_type t, int d, const qt_format *f, int one_tensor,
                      char *buf, size_t size)
{
    int fixed = t == QT_FIXED || t == QT_UFIXED;
    if (o->bias_from == B_HALF) {
        if (d) qt__say(buf, size, "F=%d (W/2%+d)", f->bias, d);
        else qt__say(buf, size, "F=%d (W/2)", f->bias);
    } else if (fixed && one_tensor) {
        if (d) qt__say(buf, size, "F=%d (fitted%+d)", f->bias, d);
        else qt__say(buf, size, "F=%d (fitted)", f->bias);
    } else if (t == QT_CLUSTER) {
        qt__say(buf, size, "codebook fitted");
    } else {
        if (d) qt__say(buf, size, "%s fitted%+d", fixed ? "F" : "bias", d);
        else qt__say(buf, size, "%s fitted", fixed ? "F" : "bias");
    }
}

/* ---- options ---- */

static int type_of(const char *name)
{
    for (int t = 1; t < QT_TYPE_COUNT; t++)
        if (!strcmp(name, qt_type_name((qt_type)t))) return t;
    return -1;
}

static int parse_widths(const json_t *v, gopts *o, qt_error *err)
{
    const json_t *list = v;
    if (json_is_object(v)) {
        list = json_object_get(v, "list");
        if (!list || json_object_size(v) != 1)
            return qt__fail(err, QT_EINVAL, -1, "strategy.widths: an object must be "
                            "{\"list\": [w, ...]}");
    }
    if (!json_is_array(list) || json_array_size(list) == 0)
        return qt__fail(err, QT_EINVAL, -1, "strategy.widths: must be [lo, hi] or a list of "
                        "widths");
    size_t n = json_array_size(list);
    int w[32];
    if (n > 32)
        return qt__fail(err, QT_EINVAL, -1, "strategy.widths: at most 32 widths");
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(list, i);
        if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 32)
            return qt__fail(err, QT_EINVAL, -1, "strategy.widths[%zu]: must be an integer "
                            "1..32", i);
        w[i] = (int)json_integer_value(e);
    }
    if (n == 2 && list == v) {                       /* [lo, hi] */
        if (w[0] > w[1])
            return qt__fail(err, QT_EINVAL, -1, "strategy.widths: [%d, %d]: lo > hi (a list "
                            "of two widths is {\"list\": [%d, %d]})", w[0], w[1], w[0], w[1]);
        o->n_widths = 0;
        for (int x = w[0]; x <= w[1]; x++) o->widths[o->n_widths++] = x;
        return QT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (w[j] == w[i])
                return qt__fail(err, QT_EINVAL, -1, "strategy.widths: %d is listed twice", w[i]);
        o->widths[i] = w[i];
    }
    o->n_widths = (int)n;
    return QT_OK;
}

static int parse_types(const qt_search *s, const json_t *v, gopts *o, qt_error *err)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    uint32_t space = 0;
    for (int i = 0; i < n; i++) space |= c[i].types;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > QT_TYPE_COUNT)
        return qt__fail(err, QT_EINVAL, -1, "strategy.types: must be a non-empty list of the "
                        "space's types");
    o->n_types = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *name = json_string_value(json_array_get(v, i));
        int t = name ? type_of(name) : -1;
        if (t < 0)
            return qt__fail(err, QT_EINVAL, -1, "strategy.types[%zu]: must be a type name "
                            "(fixed, ufixed, float, log, ...)", i);
        if (!(space >> t & 1u))
            return qt__fail(err, QT_EINVAL, -1, "strategy.types: %s is not a type of the "
                            "space", name);
        for (int j = 0; j < o->n_types; j++)
            if (o->types[j] == t)
                return qt__fail(err, QT_EINVAL, -1, "strategy.types: %s is listed twice", name);
        o->types[o->n_types++] = t;
    }
    return QT_OK;
}

static int parse_bias(const json_t *v, gopts *o, qt_error *err)
{
    const char *sv = json_string_value(v);
    o->k = 0;
    if (sv && !strcmp(sv, "fit")) { o->bias_from = B_FIT; return QT_OK; }
    if (sv && !strcmp(sv, "half")) { o->bias_from = B_HALF; return QT_OK; }
    if (!json_is_object(v))
        return qt__fail(err, QT_EINVAL, -1, "strategy.bias: must be \"fit\", \"half\" or "
                        "{\"search\": k}");
    const char *key;
    json_t *e;
    int have_k = 0;
    o->bias_from = B_FIT;
    json_object_foreach((json_t *)v, key, e) {
        if (!strcmp(key, "search")) {
            if (!json_is_integer(e) || json_integer_value(e) < 1 ||
                json_integer_value(e) > GRID_MAX_K)
                return qt__fail(err, QT_EINVAL, -1, "strategy.bias.search: must be an integer "
                                "1..%d", GRID_MAX_K);
            o->k = (int)json_integer_value(e);
            have_k = 1;
        } else if (!strcmp(key, "from")) {
            const char *f = json_string_value(e);
            if (!f || (strcmp(f, "fit") && strcmp(f, "half")))
                return qt__fail(err, QT_EINVAL, -1, "strategy.bias.from: must be \"fit\" or "
                                "\"half\"");
            o->bias_from = strcmp(f, "fit") ? B_HALF : B_FIT;
        } else {
            return qt__fail(err, QT_EINVAL, -1, "strategy.bias.%s: not a key of bias (search, "
                            "from)", key);
        }
    }
    if (!have_k)
        return qt__fail(err, QT_EINVAL, -1, "strategy.bias.search: required (the deltas -k..k)");
    return QT_OK;
}

static int parse_frac(const json_t *v, gopts *o, qt_error *err)
{
    const json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(a) ||
        !json_is_integer(b) || json_integer_value(a) > json_integer_value(b) ||
        json_integer_value(a) < -1000 || json_integer_value(b) > 1000)
        return qt__fail(err, QT_EINVAL, -1, "strategy.frac: must be [lo, hi], integers "
                        "-1000 <= lo <= hi <= 1000");
    o->frac_lo = (int)json_integer_value(a);
    o->frac_hi = (int)json_integer_value(b);
    return QT_OK;
}

/* the tensor a list key names: "NODE POINT", or "NODE" with one point tuned */
static int list_coord(const qt_search *s, const char *key)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c), found = -1, hits = 0;
    const qt_graph *g = qt_search_graph(s);
    const char *sp = strrchr(key, ' ');
    for (int i = 0; i < n; i++) {
        const char *name = qt_graph_node_name(g, c[i].node);
        size_t len = strlen(name);
        if (sp && (size_t)(sp - key) == len && !strncmp(key, name, len) &&
            !strcmp(sp + 1, qt_qpoint_name(c[i].point)))
            return i;
        if (!strcmp(key, name)) { found = i; hits++; }
    }
    return hits == 1 ? found : hits > 1 ? -2 : -1;
}

static int parse_list(qt_search *s, const json_t *v, grid *g, qt_error *err)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return qt__fail(err, QT_EINVAL, -1, "strategy.candidates: must be a non-empty list of "
                        "objects {\"NODE POINT\": format, ...}");
    qt_format *fmt = calloc((size_t)(g->n ? g->n : 1), sizeof *fmt);
    if (!fmt) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    int rc = QT_OK;
    for (size_t k = 0; k < json_array_size(v) && !rc; k++) {
        const json_t *o = json_array_get(v, k);
        const char *key;
        json_t *e;
        char reason[160], part[96], txt[QT_TEXT_MAX];
        size_t at = 0;
        reason[0] = 0;
        memset(fmt, 0, (size_t)g->n * sizeof *fmt);
        if (!json_is_object(o)) {
            rc = qt__fail(err, QT_EINVAL, -1, "strategy.candidates[%zu]: must be an object "
                          "{\"NODE POINT\": format, ...}", k);
            break;
        }
        json_object_foreach((json_t *)o, key, e) {
            int i = list_coord(s, key);
            qt_error fe;
            qt_format f;
            if (i < 0) {
                rc = qt__fail(err, QT_EINVAL, -1, "strategy.candidates[%zu]: '%.60s' %s", k,
                              key, i == -2 ? "names a node with several tuned points: give "
                              "'NODE POINT'" : "is not a tuned tensor ('NODE POINT' of the "
                              "space)");
                break;
            }
            int frc = json_is_string(e) ? qt_format_parse(json_string_value(e), &f, &fe)
                                        : qt_format_from_json(e, &f, &fe);
            if (frc) {
                rc = qt__fail(err, QT_EINVAL, -1, "strategy.candidates[%zu].%.60s: %s", k, key,
                              fe.text);
                break;
            }
            fmt[i] = f;
            qt__tensor_name(s, i, part, sizeof part);
            qt_format_print(&f, txt, sizeof txt);
            if (at < sizeof reason) {
                int m = snprintf(reason + at, sizeof reason - at, "%s%s %s", at ? ", " : "",
                                 part, txt);
                at += m > 0 ? (size_t)m : 0;
            }
        }
        if (rc) break;
        if (at >= sizeof reason) memcpy(reason + sizeof reason - 4, "...", 4);
        if (!at) qt__say(reason, sizeof reason, "every tensor float");
        int before = g->count;
        if (add(g, fmt, reason)) rc = qt__fail(err, QT_ENOMEM, -1, "out of memory");
        else if (g->count == before)
            rc = qt__fail(err, QT_EINVAL, -1, "strategy.candidates[%zu]: the same "
                          "configuration as an earlier one", k);
    }
    free(fmt);
    return rc;
}

/* ---- the grid ---- */

/* the candidates over the tensors of `only`: -1, every tensor with one
 * format (uniform mode; each tensor clamped to its own widths unless the
 * widths are given), or tensor i alone, every other float (each mode); in
 * type, width, bias order. fmt: n formats of scratch. */
static int make_set(qt_search *s, const gopts *o, grid *g, int only, qt_format *fmt)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c);
    int i0 = only < 0 ? 0 : only, i1 = only < 0 ? n : only + 1;
    for (int ti = 0; ti < o->n_types; ti++) {
        qt_type t = (qt_type)o->types[ti];
        int lo = 33, hi = 0, users = 0;
        for (int i = i0; i < i1; i++)
            if (c[i].types >> t & 1u) {
                users++;
                if (c[i].wmin < lo) lo = c[i].wmin;
                if (c[i].wmax > hi) hi = c[i].wmax;
            }
        if (!users) continue;
        int nw = o->n_widths ? o->n_widths : hi - lo + 1;
        for (int wi = 0; wi < nw; wi++) {
            int w = o->n_widths ? o->widths[wi] : lo + wi;
            for (int d = -o->k; d <= o->k; d++) {
                int ok = 1, first = -1;
                memset(fmt, 0, (size_t)n * sizeof *fmt);
                for (int i = i0; i < i1 && ok; i++) {
                    if (!(c[i].types >> t & 1u)) continue;
                    int wc = w;
                    if (!o->n_widths) wc = w < c[i].wmin ? c[i].wmin : w > c[i].wmax ? c[i].wmax : w;
                    ok = build(s, i, t, wc, o, d, &fmt[i]) == QT_OK;
                    if (first < 0) first = i;
                }
                if (!ok) continue;
                char reason[160], bt[48], name[96];
                bias_text(o, t, d, &fmt[first], only >= 0, bt, sizeof bt);
                if (only >= 0)
                    qt__say(reason, sizeof reason, "%s alone, %s %d bits %s",
                            qt__tensor_name(s, only, name, sizeof name), qt_type_name(t), w, bt);
                else if (users == n)
                    qt__say(reason, sizeof reason, "%s %d bits, %s, all %d tensors",
                            qt_type_name(t), w, bt, n);
                else
                    qt__say(reason, sizeof reason, "%s %d bits, %s, %d of %d tensors (the others "
                            "float)", qt_type_name(t), w, bt, users, n);
                if (add(g, fmt, reason)) return QT_ENOMEM;
            }
        }
    }
    return QT_OK;
}

/* the grid of mode uniform (one set) or each (one set per tensor) */
static int make_grid(qt_search *s, const gopts *o, grid *g)
{
    int n = g->n, rc = QT_OK;
    qt_format *fmt = calloc((size_t)(n ? n : 1), sizeof *fmt);
    if (!fmt) return QT_ENOMEM;
    if (o->mode == G_UNIFORM) rc = make_set(s, o, g, -1, fmt);
    else
        for (int i = 0; i < n && !rc; i++) rc = make_set(s, o, g, i, fmt);
    free(fmt);
    return rc;
}

static int grid_init(qt_search *s, const json_t *opts, void **state, qt_error *err)
{
    const qt_coord *c;
    int n = qt_search_coords(s, &c), rc;
    gopts o;
    const json_t *list = NULL;
    int has_types = 0;
    memset(&o, 0, sizeof o);
    o.frac_lo = -1000;
    o.frac_hi = 1000;
    if (opts && !json_is_object(opts))
        return qt__fail(err, QT_EINVAL, -1, "strategy: grid's options must be an object");
    if (opts) {
        const json_t *m = json_object_get(opts, "mode");
        if (m) {
            const char *mv = json_string_value(m);
            if (mv && !strcmp(mv, "uniform")) o.mode = G_UNIFORM;
            else if (mv && !strcmp(mv, "each")) o.mode = G_EACH;
            else if (mv && !strcmp(mv, "list")) o.mode = G_LIST;
            else return qt__fail(err, QT_EINVAL, -1, "strategy.mode: must be \"uniform\", "
                                 "\"each\" or \"list\"");
        }
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)opts, key, v) {
            if (!strcmp(key, "mode")) continue;
            if (!strcmp(key, "candidates")) {
                if (o.mode != G_LIST)
                    return qt__fail(err, QT_EINVAL, -1, "strategy.candidates: only with "
                                    "\"mode\": \"list\"");
                list = v;
                continue;
            }
            if (!strcmp(key, "widths") || !strcmp(key, "types") || !strcmp(key, "bias") ||
                !strcmp(key, "frac")) {
                if (o.mode == G_LIST)
                    return qt__fail(err, QT_EINVAL, -1, "strategy.%s: not used with \"mode\": "
                                    "\"list\" (its candidates give their formats)", key);
                if (!strcmp(key, "widths")) rc = parse_widths(v, &o, err);
                else if (!strcmp(key, "types")) { rc = parse_types(s, v, &o, err); has_types = 1; }
                else if (!strcmp(key, "bias")) rc = parse_bias(v, &o, err);
                else rc = parse_frac(v, &o, err);
                if (rc) return rc;
                continue;
            }
            return qt__fail(err, QT_EINVAL, -1, "strategy.%s: not an option of grid (it takes: "
                            "mode, widths, types, bias, frac, candidates)", key);
        }
    }
    if (o.mode == G_LIST && !list)
        return qt__fail(err, QT_EINVAL, -1, "strategy.candidates: required with \"mode\": "
                        "\"list\"");
    if (o.mode != G_LIST && !has_types) {
        uint32_t space = 0;
        for (int i = 0; i < n; i++) space |= c[i].types;
        for (int t = 1; t < QT_TYPE_COUNT; t++)
            if (space >> t & 1u) o.types[o.n_types++] = t;
    }
    if (o.mode != G_LIST && o.bias_from == B_HALF)
        for (int i = 0; i < o.n_types; i++)
            if (o.types[i] != QT_FIXED && o.types[i] != QT_UFIXED)
                return qt__fail(err, QT_EINVAL, -1, "strategy.bias: \"half\" (F = W/2) needs "
                                "fixed-point types, and the grid has %s (give \"types\")",
                                qt_type_name((qt_type)o.types[i]));
    grid *g = calloc(1, sizeof *g);
    if (!g) return qt__fail(err, QT_ENOMEM, -1, "out of memory");
    g->n = n;
    g->round = qt_search_spec(s)->workers > 0 ? qt_search_spec(s)->workers : 1;
    if (o.mode == G_LIST) {
        if ((rc = parse_list(s, list, g, err))) { grid_free(g); return rc; }
    } else {
        rc = make_grid(s, &o, g);
        if (rc) { grid_free(g); return qt__fail(err, rc, -1, "out of memory"); }
    }
    /* number the reasons now that the count is known */
    for (int i = 0; i < g->count; i++) {
        char r[160];
        memcpy(r, g->reason[i], sizeof r);
        qt__say(g->reason[i], sizeof g->reason[i], "grid %d/%d: %s", i + 1, g->count, r);
    }
    *state = g;
    return QT_OK;
}

static int grid_propose(void *state, qt_search *s, qt_cand *cand)
{
    grid *g = state;
    (void)s;
    if (g->next >= g->count) return QT_DONE;
    if (g->next - g->observed >= g->round) return QT_WAIT;
    memcpy(cand->fmt, &g->fmt[(size_t)g->next * g->n], (size_t)g->n * sizeof *cand->fmt);
    memcpy(cand->reason, g->reason[g->next], sizeof cand->reason);
    g->next++;
    return QT_PROPOSE;
}

static void grid_observe(void *state, qt_search *s, const qt_cand *c, const qt_result *r)
{
    grid *g = state;
    (void)s; (void)c; (void)r;
    g->observed++;
}

const qt_strategy qt__strat_grid = {
    "grid", "every candidate of an explicit grid (uniform, one tensor at a time, or a list)",
    grid_init, grid_propose, grid_observe, grid_free
};
