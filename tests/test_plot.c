/*
 * test_plot.c -- api/plot.c: the SVG is parsed back by a small XML checker
 * (balanced tags, quoted attributes, valid entities) and the axis transform
 * is recovered from the tick marks and their labels; markers, the front's
 * step line, the baseline and the threshold must land where that transform
 * puts their values (within 0.5 px). Log2 axes, skipped NaN points, XML
 * escaping, 1-2-5 ticks over random ranges, empty input, /dev/full, the
 * atomic file writer. The text plot is read back the same way (cells from
 * the tick labels). Sample plots are left in the build directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plot.h"

#ifndef QT_PLOT_OUT_DIR
#define QT_PLOT_OUT_DIR "."
#endif

static uint64_t rng_state = 777;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unit(void) { return (double)(rnd() >> 11) * 0x1p-53; }

/* ---- rendering into memory ---- */

static char *render_svg(const qt_plot *p, int *rc, qt_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *rc = qt_plot_svg(p, f, err);
    fclose(f);
    return buf;
}

static char *render_ascii(const qt_plot *p, int cols, int rows, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *rc = qt_plot_ascii(p, cols, rows, f);
    fclose(f);
    return buf;
}

/* ---- a small XML reader: enough to check an SVG is well formed ---- */

#define MAX_ATTR 24
typedef struct el {
    char *name;
    int   na;
    char *an[MAX_ATTR], *av[MAX_ATTR];
    char *text;   /* unescaped character data directly inside (text elements) */
} el;

typedef struct doc { el *e; int n; char *arena; size_t used; } doc;

static char *arena_put(doc *d, const char *s, size_t n)
{
    char *p = d->arena + d->used;
    memcpy(p, s, n);
    p[n] = 0;
    d->used += n + 1;
    return p;
}

/* unescape in place; 0 on an unknown or unterminated entity */
static int unescape(char *s)
{
    static const char *const ent[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
                                         {"&quot;", "\""}, {"&#39;", "'"}};
    char *w = s;
    for (char *r = s; *r;) {
        if (*r != '&') { *w++ = *r++; continue; }
        int k = 0;
        while (k < 5 && strncmp(r, ent[k][0], strlen(ent[k][0]))) k++;
        if (k == 5) return 0;
        *w++ = ent[k][1][0];
        r += strlen(ent[k][0]);
    }
    *w = 0;
    return 1;
}

static int is_name(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == ':' || c == '_'; }

/* Parse src; 1 if well formed (one svg root, balanced tags, quoted
 * attributes, valid entities, nothing after the root). */
static int parse_svg(const char *src, doc *d)
{
    size_t len = strlen(src);
    d->arena = malloc(2 * len + 16);
    d->e = calloc(len / 4 + 4, sizeof *d->e);
    d->n = 0;
    d->used = 0;
    char *stack[64];
    int depth = 0, roots = 0, cur = -1;
    const char *s = src;
    if (!strncmp(s, "<?xml", 5)) {
        s = strstr(s, "?>");
        if (!s) return 0;
        s += 2;
    }
    while (*s) {
        if (*s != '<') {   /* character data */
            const char *t = strchr(s, '<');
            if (!t) t = s + strlen(s);
            if (!depth) {
                for (const char *c = s; c < t; c++) if (*c != ' ' && *c != '\n') return 0;
            } else if (cur >= 0 && !d->e[cur].text) {
                char *txt = arena_put(d, s, (size_t)(t - s));
                if (!unescape(txt)) return 0;
                d->e[cur].text = txt;
            }
            s = t;
            continue;
        }
        if (s[1] == '/') {   /* end tag */
            const char *nm = s + 2, *t = nm;
            while (is_name(*t)) t++;
            if (*t != '>' || !depth || strncmp(stack[depth - 1], nm, (size_t)(t - nm)) ||
                strlen(stack[depth - 1]) != (size_t)(t - nm))
                return 0;
            depth--;
            cur = -1;
            s = t + 1;
            continue;
        }
        el *e = &d->e[d->n];
        const char *nm = s + 1, *t = nm;
        while (is_name(*t)) t++;
        if (t == nm) return 0;
        e->name = arena_put(d, nm, (size_t)(t - nm));
        for (;;) {
            while (*t == ' ' || *t == '\n') t++;
            if (*t == '/' || *t == '>') break;
            const char *an = t;
            while (is_name(*t)) t++;
            if (t == an || t[0] != '=' || t[1] != '"' || e->na == MAX_ATTR) return 0;
            const char *av = t + 2, *q = strchr(av, '"');
            if (!q || memchr(av, '<', (size_t)(q - av))) return 0;
            e->an[e->na] = arena_put(d, an, (size_t)(t - an));
            e->av[e->na] = arena_put(d, av, (size_t)(q - av));
            if (!unescape(e->av[e->na])) return 0;
            for (int k = 0; k < e->na; k++) if (!strcmp(e->an[k], e->an[e->na])) return 0;
            e->na++;
            t = q + 1;
            if (*t != ' ' && *t != '\n' && *t != '/' && *t != '>') return 0;
        }
        if (!depth && roots++) return 0;
        if (!depth && strcmp(e->name, "svg")) return 0;
        cur = d->n++;
        if (*t == '/') {
            if (t[1] != '>') return 0;
            s = t + 2;
            cur = -1;
            if (!depth) return 0;   /* an empty root */
        } else {
            if (depth == 64) return 0;
            stack[depth++] = e->name;
            s = t + 1;
        }
    }
    return depth == 0 && roots == 1;
}

static void doc_free(doc *d) { free(d->arena); free(d->e); }

static const char *attr(const el *e, const char *name)
{
    for (int k = 0; k < e->na; k++) if (!strcmp(e->an[k], name)) return e->av[k];
    return NULL;
}

static double num(const el *e, const char *name)
{
    const char *v = attr(e, name);
    assert_non_null(v);
    char *end;
    double x = strtod(v, &end);
    assert_true(*end == 0 && end != v);
    return x;
}

static int has_class(const el *e, const char *cls)
{
    const char *c = attr(e, "class");
    size_t l = strlen(cls);
    for (; c && *c; c++)
        if ((c == attr(e, "class") || c[-1] == ' ') && !strncmp(c, cls, l) && (!c[l] || c[l] == ' '))
            return 1;
    return 0;
}

static int count(const doc *d, const char *name, const char *cls)
{
    int m = 0;
    for (int i = 0; i < d->n; i++)
        m += !strcmp(d->e[i].name, name) && (!cls || has_class(&d->e[i], cls));
    return m;
}

static const el *find(const doc *d, const char *name, const char *cls)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->e[i].name, name) && has_class(&d->e[i], cls)) return &d->e[i];
    return NULL;
}

static doc parse_ok(const char *svg)
{
    doc d;
    assert_non_null(svg);
    assert_true(parse_svg(svg, &d));
    return d;
}

/* ---- axis transforms, from the tick marks and their labels ---- */

/* "0.5", "85%" (0.85), "2^-20", "64Ki" (65536), "2Mi", "1Gi", "4Ti" */
static double label_value(const char *s)
{
    char *end;
    if (!strncmp(s, "2^", 2)) return ldexp(1, (int)strtol(s + 2, &end, 10));
    double v = strtod(s, &end);
    assert_true(end != s);
    if (*end == '%') { v /= 100; end++; }
    static const char *const prefix[] = {"Ki", "Mi", "Gi", "Ti"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(end, prefix[k])) { v = ldexp(v, 10 * (k + 1)); end += 2; }
    assert_int_equal(*end, 0);
    return v;
}

typedef struct xform { double a, b; int log; int n; double tick[64]; } xform;

static double to_px(const xform *t, double v) { return t->a + t->b * (t->log ? log2(v) : v); }

/* px = a + b * u from the tick lines (x1 or y1) and the labels of class cls */
static xform recover(const doc *d, const char *cls, int log)
{
    xform t = {.log = log};
    double px[64] = {0};
    int nl = 0, nt = 0;
    for (int i = 0; i < d->n; i++) {
        const el *e = &d->e[i];
        if (!has_class(e, cls)) continue;
        if (!strcmp(e->name, "line")) {
            assert_true(nl < 64);
            px[nl++] = num(e, cls[0] == 'x' ? "x1" : "y1");
        } else if (!strcmp(e->name, "text")) {
            assert_true(nt < 64);
            assert_non_null(e->text);
            t.tick[nt++] = label_value(e->text);
        }
    }
    assert_int_equal(nl, nt);
    assert_true(nl >= 2);
    t.n = nl;
    double u0 = log ? log2(t.tick[0]) : t.tick[0], u1 = log ? log2(t.tick[nl - 1]) : t.tick[nl - 1];
    t.b = (px[nl - 1] - px[0]) / (u1 - u0);
    t.a = px[0] - t.b * u0;
    for (int k = 0; k < nl; k++) assert_true(fabs(to_px(&t, t.tick[k]) - px[k]) < 0.05);
    return t;
}

/* ---- point sets ---- */

static void mark_front(qt_plot_pt *pt, int n, double threshold)
{
    for (int i = 0; i < n; i++) {
        pt[i].front = !isnan(pt[i].x) && !isnan(pt[i].y);
        pt[i].feasible = !(pt[i].y < threshold);
        for (int j = 0; j < n && pt[i].front; j++)
            if (j != i && pt[j].x <= pt[i].x && pt[j].y >= pt[i].y &&
                (pt[j].x < pt[i].x || pt[j].y > pt[i].y || j < i))
                pt[i].front = 0;
    }
}

/* n points, cost spread over [lo, hi], accuracy rising with cost plus noise */
static void make_points(qt_plot_pt *pt, int n, double lo, double hi, int logx, double threshold)
{
    for (int i = 0; i < n; i++) {
        double u = unit();
        pt[i].x = logx ? lo * pow(hi / lo, u) : lo + (hi - lo) * u;
        pt[i].y = 0.5 + 0.4 * u - 0.2 * unit() * unit();
    }
    mark_front(pt, n, threshold);
}

static void check_markers(const doc *d, const xform *tx, const xform *ty, const qt_plot_pt *pt,
                          int n)
{
    int shown = 0, fronts = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(pt[i].x) || !isfinite(pt[i].y) || (tx->log && pt[i].x <= 0)) continue;
        shown++;
        fronts += pt[i].front;
        double ex = to_px(tx, pt[i].x), ey = to_px(ty, pt[i].y);
        int found = 0;
        for (int k = 0; k < d->n && !found; k++) {
            const el *e = &d->e[k];
            if (strcmp(e->name, "circle") || !has_class(e, pt[i].front ? "front" : "pt")) continue;
            if (!!has_class(e, "infeasible") != !pt[i].feasible) continue;
            found = fabs(num(e, "cx") - ex) <= 0.5 && fabs(num(e, "cy") - ey) <= 0.5;
        }
        if (!found) fail_msg("point %d (%g, %g) has no marker at (%g, %g)", i, pt[i].x, pt[i].y, ex, ey);
    }
    assert_int_equal(count(d, "circle", "front"), fronts);
    assert_int_equal(count(d, "circle", "pt") + count(d, "circle", "front"), shown);
}

/* the step path's corners: M x y, then (x, y) after each "H x V y" */
static void check_step(const doc *d, const xform *tx, const xform *ty, const qt_plot_pt *pt, int n)
{
    const el *e = find(d, "path", "step");
    assert_non_null(e);
    const char *s = attr(e, "d");
    double vx[512], vy[512], cx = 0, cy = 0;
    int nv = 0;
    while (*s) {
        char c = *s++;
        char *end;
        double a = strtod(s, &end);
        assert_true(end != s);
        s = end;
        if (c == 'M') { cx = a; cy = strtod(s, &end); s = end; vx[nv] = cx; vy[nv++] = cy; }
        else if (c == 'H') cx = a;
        else if (c == 'V') { cy = a; vx[nv] = cx; vy[nv++] = cy; }
        else fail_msg("unexpected path command %c", c);
        while (*s == ' ') s++;
    }
    /* the front points in x order */
    int idx[512], m = 0;
    for (int i = 0; i < n; i++) if (pt[i].front) idx[m++] = i;
    for (int i = 1; i < m; i++)
        for (int k = i; k > 0 && pt[idx[k]].x < pt[idx[k - 1]].x; k--) {
            int t = idx[k]; idx[k] = idx[k - 1]; idx[k - 1] = t;
        }
    assert_int_equal(nv, m);
    for (int i = 0; i < m; i++) {
        assert_true(fabs(vx[i] - to_px(tx, pt[idx[i]].x)) <= 0.5);
        assert_true(fabs(vy[i] - to_px(ty, pt[idx[i]].y)) <= 0.5);
        if (i) assert_true(vy[i] <= vy[i - 1] + 1e-9);   /* a front climbs */
    }
}

static qt_plot one_series(const qt_plot_series *s)
{
    qt_plot p;
    qt_plot_init(&p);
    p.series = s;
    p.n_series = 1;
    return p;
}

/* ---- tests ---- */

static void test_svg_front_points_map_back(void **state)
{
    for (int trial = 0; trial < 8; trial++) {
        qt_plot_pt pt[120];
        int n = 20 + (int)(rnd() % 100);
        double lo = (trial & 1 ? -50 : 1) * (1 + 100 * unit()), hi = lo + 1e-3 + 1000 * unit();
        make_points(pt, n, lo, hi, 0, 0.7);
        qt_plot_series s = {"s", pt, n, 0};
        qt_plot p = one_series(&s);
        p.title = "front";
        p.xlabel = "cost";
        p.ylabel = "accuracy";
        p.y_percent = trial & 2;
        p.width = trial & 4 ? 900 : 0;
        int rc;
        qt_error err = {0};
        char *svg = render_svg(&p, &rc, &err);
        assert_int_equal(rc, QT_OK);
        doc d = parse_ok(svg);
        xform tx = recover(&d, "xtick", 0), ty = recover(&d, "ytick", 0);
        assert_true(tx.b > 0 && ty.b < 0);   /* x grows right, y grows up */
        check_markers(&d, &tx, &ty, pt, n);
        check_step(&d, &tx, &ty, pt, n);
        assert_non_null(find(&d, "text", "title"));
        assert_string_equal(find(&d, "text", "xlabel")->text, "cost");
        assert_string_equal(find(&d, "text", "ylabel")->text, "accuracy");
        assert_null(find(&d, "text", "legend"));   /* one series: no legend */
        doc_free(&d);
        free(svg);
    }
}

static void test_svg_baseline_threshold(void **state)
{
    qt_plot_pt pt[40];
    make_points(pt, 40, 10, 200, 0, 0.75);
    qt_plot_series s = {"s", pt, 40, 0};
    qt_plot p = one_series(&s);
    p.baseline = 0.97;        /* above every point: must widen the axis */
    p.threshold = 0.75;
    p.y_percent = 1;
    p.baseline_label = "float";
    int rc;
    char *svg = render_svg(&p, &rc, NULL);
    assert_int_equal(rc, QT_OK);
    doc d = parse_ok(svg);
    xform tx = recover(&d, "xtick", 0), ty = recover(&d, "ytick", 0);
    const el *bl = find(&d, "line", "baseline"), *th = find(&d, "line", "threshold");
    assert_non_null(bl);
    assert_non_null(th);
    assert_true(fabs(num(bl, "y1") - to_px(&ty, 0.97)) <= 0.5);
    assert_true(fabs(num(bl, "y2") - num(bl, "y1")) < 1e-9);
    assert_true(fabs(num(th, "y1") - to_px(&ty, 0.75)) <= 0.5);
    assert_true(fabs(num(th, "y2") - num(th, "y1")) < 1e-9);
    /* across the whole plot: from the first x tick to the last */
    assert_true(fabs(num(bl, "x1") - to_px(&tx, tx.tick[0])) < 0.05);
    assert_true(fabs(num(bl, "x2") - to_px(&tx, tx.tick[tx.n - 1])) < 0.05);
    assert_non_null(attr(bl, "stroke-dasharray"));
    assert_string_equal(find(&d, "text", "baseline")->text, "float 97%");
    assert_string_equal(find(&d, "text", "threshold")->text, "constraint 75%");
    assert_true(ty.tick[ty.n - 1] >= 0.97);
    check_markers(&d, &tx, &ty, pt, 40);
    doc_free(&d);
    free(svg);

    p.baseline = p.threshold = NAN;   /* none */
    svg = render_svg(&p, &rc, NULL);
    d = parse_ok(svg);
    assert_null(find(&d, "line", "baseline"));
    assert_null(find(&d, "line", "threshold"));
    doc_free(&d);
    free(svg);
}

static void test_svg_xlog(void **state)
{
    qt_plot_pt pt[64];
    make_points(pt, 60, 3000, 5e6, 1, 0.6);
    pt[60] = (qt_plot_pt){1 << 14, 0.9, 1, 1};   /* exact powers of two */
    pt[61] = (qt_plot_pt){1 << 20, 0.95, 1, 1};
    pt[62] = (qt_plot_pt){0, 0.9, 0, 1};          /* not on a log axis */
    pt[63] = (qt_plot_pt){-8, 0.9, 0, 1};
    mark_front(pt, 62, 0.6);
    pt[62].front = pt[63].front = 0;
    qt_plot_series s = {"s", pt, 64, 0};
    qt_plot p = one_series(&s);
    p.xlog = 1;
    int rc;
    char *svg = render_svg(&p, &rc, NULL);
    assert_int_equal(rc, QT_OK);
    doc d = parse_ok(svg);
    xform tx = recover(&d, "xtick", 1), ty = recover(&d, "ytick", 0);
    for (int k = 0; k < tx.n; k++) {   /* ticks at powers of two */
        double e = log2(tx.tick[k]);
        assert_true(fabs(e - round(e)) < 1e-9);
    }
    assert_true(tx.tick[0] <= 3000 && tx.tick[tx.n - 1] >= 5e6);
    check_markers(&d, &tx, &ty, pt, 64);   /* skips x <= 0 itself */
    /* 2^14 and 2^20: one pixel distance per octave, the same */
    double a = to_px(&tx, 1 << 14), b = to_px(&tx, 1 << 17), c = to_px(&tx, 1 << 20);
    assert_true(fabs((b - a) - (c - b)) < 1e-6);
    doc_free(&d);
    free(svg);
}

static void test_svg_nan_skipped(void **state)
{
    qt_plot_pt pt[30];
    make_points(pt, 30, 1, 2, 0, 0);
    pt[3].x = NAN;
    pt[7].y = NAN;
    pt[11].x = INFINITY;
    pt[12].y = -INFINITY;
    pt[20].x = NAN; pt[20].front = 1;   /* a NaN marked as front is skipped too */
    qt_plot_series s = {"s", pt, 30, 1};
    qt_plot p = one_series(&s);
    int rc;
    char *svg = render_svg(&p, &rc, NULL);
    assert_int_equal(rc, QT_OK);
    doc d = parse_ok(svg);
    xform tx = recover(&d, "xtick", 0), ty = recover(&d, "ytick", 0);
    assert_int_equal(count(&d, "circle", "pt") + count(&d, "circle", "front"), 25);
    for (int i = 0; i < 30; i++) if (!isfinite(pt[i].x) || !isfinite(pt[i].y)) pt[i].front = 0;
    check_markers(&d, &tx, &ty, pt, 30);
    /* the line joins the 25 usable points only */
    const el *pl = find(&d, "polyline", "line");
    assert_non_null(pl);
    int commas = 0;
    for (const char *c = attr(pl, "points"); *c; c++) commas += *c == ',';
    assert_int_equal(commas, 25);
    for (char *c = svg; *c; c++) *c = (char)(*c | 0x20);   /* lower case */
    assert_null(strstr(svg, "nan"));
    assert_null(strstr(svg, "\"inf"));   /* (the class "infeasible" is fine) */
    assert_null(strstr(svg, "-inf"));
    assert_null(strstr(svg, ">inf"));
    doc_free(&d);
    free(svg);
}

static void test_svg_escaping(void **state)
{
    qt_plot_pt pt[3] = {{1, 1, 1, 1}, {2, 2, 1, 1}, {3, 1.5, 0, 1}};
    qt_plot_series s[2] = {{"a<b>&\"c\"", pt, 3, 1}, {"it's", pt, 2, 0}};
    qt_plot p;
    qt_plot_init(&p);
    p.series = s;
    p.n_series = 2;
    p.title = "x < y & z > w \"quoted\"";
    p.xlabel = "</text><script>";
    p.baseline = 1.2;
    p.baseline_label = "a&b";
    int rc;
    char *svg = render_svg(&p, &rc, NULL);
    assert_int_equal(rc, QT_OK);
    doc d = parse_ok(svg);
    assert_string_equal(find(&d, "text", "title")->text, p.title);
    assert_string_equal(find(&d, "text", "xlabel")->text, p.xlabel);
    assert_string_equal(find(&d, "text", "baseline")->text, "a&b 1.2");
    assert_null(strstr(svg, "<script>"));
    assert_non_null(strstr(svg, "&lt;script&gt;"));
    /* legend: one entry per series, in order, names as given */
    int k = 0;
    for (int i = 0; i < d.n; i++)
        if (!strcmp(d.e[i].name, "text") && has_class(&d.e[i], "legend")) {
            assert_true(k < 2);
            assert_string_equal(d.e[i].text, s[k].name);
            k++;
        }
    assert_int_equal(k, 2);
    doc_free(&d);
    free(svg);
}

static void test_svg_empty_is_einval(void **state)
{
    qt_plot_pt nan_pt[2] = {{NAN, 1, 1, 1}, {1, NAN, 0, 0}};
    qt_plot_pt neg[1] = {{-1, 1, 1, 1}};
    qt_plot_series all_nan = {"n", nan_pt, 2, 0}, none = {"z", NULL, 0, 0}, logneg = {"l", neg, 1, 0};
    qt_plot cases[4];
    qt_plot_init(&cases[0]);                      /* no series at all */
    cases[1] = one_series(&all_nan);
    cases[2] = one_series(&none);
    cases[3] = one_series(&logneg);
    cases[3].xlog = 1;
    for (int i = 0; i < 4; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        qt_error err = {0};
        assert_int_equal(qt_plot_svg(&cases[i], f, &err), QT_EINVAL);
        assert_non_null(strstr(err.text, "no point"));
        assert_int_equal(qt_plot_ascii(&cases[i], 80, 24, f), QT_EINVAL);
        fclose(f);
        assert_int_equal(len, 0);   /* nothing written */
        free(buf);
    }
    qt_plot_series bad = {"b", NULL, 3, 0};   /* points claimed, none given */
    qt_plot p = one_series(&bad);
    qt_error err = {0};
    assert_int_equal(qt_plot_svg(&p, stdout, &err), QT_EINVAL);
    assert_true(err.text[0] != 0);
    assert_int_equal(qt_plot_svg_file(&cases[1], QT_PLOT_OUT_DIR "/plot_never.svg", &err), QT_EINVAL);
    assert_int_equal(access(QT_PLOT_OUT_DIR "/plot_never.svg", F_OK), -1);
}

static void test_svg_full_device_is_eio(void **state)
{
    qt_plot_pt pt[200];
    make_points(pt, 200, 1, 100, 0, 0.6);
    qt_plot_series s = {"s", pt, 200, 1};
    qt_plot p = one_series(&s);
    FILE *f = fopen("/dev/full", "w");
    if (!f) skip();
    qt_error err = {0};
    assert_int_equal(qt_plot_svg(&p, f, &err), QT_EIO);
    assert_true(err.text[0] != 0);
    fclose(f);
    f = fopen("/dev/full", "w");
    assert_int_equal(qt_plot_ascii(&p, 80, 24, f), QT_EIO);
    fclose(f);
}

static int count_dir_entries(const char *dir, const char *prefix)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int m = 0;
    for (struct dirent *e; (e = readdir(dp));) m += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(dp);
    return m;
}

static void test_svg_file_atomic(void **state)
{
    char dir[] = "/tmp/qt_plot_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/front.svg", dir);
    FILE *old = fopen(path, "w");
    fputs("old", old);
    fclose(old);

    qt_plot_pt pt[50];
    make_points(pt, 50, 1, 100, 0, 0.6);
    qt_plot_series s = {"s", pt, 50, 0};
    qt_plot p = one_series(&s);
    qt_error err = {0};
    assert_int_equal(qt_plot_svg_file(&p, path, &err), QT_OK);
    int rc;
    char *mem = render_svg(&p, &rc, NULL);
    FILE *f = fopen(path, "r");
    char *got = calloc(1, strlen(mem) + 2);
    size_t n = fread(got, 1, strlen(mem) + 1, f);
    fclose(f);
    assert_int_equal(n, strlen(mem));
    assert_string_equal(got, mem);
    assert_int_equal(count_dir_entries(dir, "front.svg"), 1);   /* no temporary left */

    /* a missing directory: QT_EIO naming the path, the old file untouched */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.svg", dir);
    assert_int_equal(qt_plot_svg_file(&p, bad, &err), QT_EIO);
    assert_non_null(strstr(err.text, bad));

    /* failing to render leaves the old file as it was */
    qt_plot_pt nan_pt = {NAN, NAN, 0, 0};
    qt_plot_series e = {"e", &nan_pt, 1, 0};
    qt_plot pe = one_series(&e);
    assert_int_equal(qt_plot_svg_file(&pe, path, &err), QT_EINVAL);
    f = fopen(path, "r");
    n = fread(got, 1, strlen(mem) + 1, f);
    fclose(f);
    assert_int_equal(n, strlen(mem));
    assert_int_equal(count_dir_entries(dir, "front.svg"), 1);

    unlink(path);
    rmdir(dir);
    free(got);
    free(mem);
}

static void test_svg_deterministic(void **state)
{
    qt_plot_pt pt[80];
    make_points(pt, 80, 0.001, 0.9, 0, 0.6);
    qt_plot_series s = {"s", pt, 80, 1};
    qt_plot p = one_series(&s);
    p.title = "t";
    p.baseline = 0.8123456;
    p.threshold = 0.61;
    int rc1, rc2;
    char *a = render_svg(&p, &rc1, NULL), *b = render_svg(&p, &rc2, NULL);
    assert_int_equal(rc1, QT_OK);
    assert_string_equal(a, b);
    /* a decimal-comma locale, if the system has one, changes nothing */
    const char *locs[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", NULL};
    for (int i = 0; locs[i]; i++)
        if (setlocale(LC_NUMERIC, locs[i])) {
            char *c = render_svg(&p, &rc1, NULL);
            setlocale(LC_NUMERIC, "C");
            assert_string_equal(a, c);
            free(c);
            break;
        }
    /* the input array is not reordered or written */
    qt_plot_pt copy[80];
    memcpy(copy, pt, sizeof pt);
    free(render_svg(&p, &rc1, NULL));
    assert_memory_equal(copy, pt, sizeof pt);
    char *ta = render_ascii(&p, 72, 20, &rc1), *tb = render_ascii(&p, 72, 20, &rc2);
    assert_string_equal(ta, tb);
    free(ta); free(tb); free(a); free(b);
}

/* ticks over random ranges: equal 1-2-5 steps (octaves for log2) covering
 * the data, a sensible number of them */
static void test_svg_nice_ticks(void **state)
{
    for (int trial = 0; trial < 300; trial++) {
        int logx = trial % 3 == 0;
        double scale = pow(10, -6 + 12 * unit()), lo = (unit() - 0.3) * scale,
               hi = lo + scale * pow(10, -4 * unit());
        if (trial % 10 == 1) hi = lo;   /* a single value */
        if (logx) { lo = fabs(lo) + 1e-3; hi = lo * pow(2, 30 * unit()); }
        qt_plot_pt pt[2] = {{lo, lo, 1, 1}, {hi, hi, 1, 1}};
        qt_plot_series s = {"s", pt, 2, 0};
        qt_plot p = one_series(&s);
        p.xlog = logx;
        int rc;
        char *svg = render_svg(&p, &rc, NULL);
        assert_int_equal(rc, QT_OK);
        doc d = parse_ok(svg);
        xform ts[2] = {recover(&d, "xtick", logx), recover(&d, "ytick", 0)};
        for (int a = 0; a < 2; a++) {
            const xform *t = &ts[a];
            int lg = a == 0 && logx;
            assert_true(t->n >= 2 && t->n <= 12);
            double u0 = lg ? log2(t->tick[0]) : t->tick[0], u1 = lg ? log2(t->tick[1]) : t->tick[1];
            double step = u1 - u0, mag = pow(10, floor(log10(step) + 1e-9)), m = step / mag;
            assert_true(fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6);
            for (int k = 1; k < t->n; k++) {
                double uk = lg ? log2(t->tick[k]) : t->tick[k], up = lg ? log2(t->tick[k - 1]) : t->tick[k - 1];
                assert_true(fabs((uk - up) - step) <= 1e-6 * fabs(step) + 1e-9 * fabs(uk));
                /* ticks are whole multiples of the step */
                assert_true(fabs(uk / step - round(uk / step)) < 1e-4);
            }
            double vlo = lo, vhi = hi;
            double eps = 1e-5 * (fabs(vlo) + fabs(vhi));
            assert_true(t->tick[0] <= vlo + eps);
            assert_true(t->tick[t->n - 1] >= vhi - eps);
        }
        doc_free(&d);
        free(svg);
    }
}

static void test_svg_series_lines(void **state)
{
    qt_plot_pt pts[3][12];
    qt_plot_series s[3];
    static const char *const names[3] = {"fixed<8,f>", "minifloat e4m3", "posit8"};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 12; i++)   /* given in a shuffled x order */
            pts[k][i] = (qt_plot_pt){(double)((i * 5) % 12 + 1), 0.5 + 0.03 * k + 0.02 * (double)((i * 5) % 12), 0, 1};
        s[k] = (qt_plot_series){names[k], pts[k], 12, 1};
    }
    qt_plot p;
    qt_plot_init(&p);
    p.series = s;
    p.n_series = 3;
    int rc;
    char *svg = render_svg(&p, &rc, NULL);
    assert_int_equal(rc, QT_OK);
    doc d = parse_ok(svg);
    xform tx = recover(&d, "xtick", 0), ty = recover(&d, "ytick", 0);
    assert_int_equal(count(&d, "polyline", "line"), 3);
    assert_int_equal(count(&d, "text", "legend"), 3);
    assert_null(find(&d, "path", "step"));   /* no front points */
    int k = 0;
    for (int i = 0; i < d.n; i++) {
        if (strcmp(d.e[i].name, "polyline")) continue;
        const char *c = attr(&d.e[i], "points");
        for (int j = 1; j <= 12; j++) {   /* in x order: x = j */
            char *end;
            double px = strtod(c, &end), py = strtod(end + 1, &end);
            assert_true(fabs(px - to_px(&tx, j)) <= 0.5);
            assert_true(fabs(py - to_px(&ty, 0.5 + 0.03 * k + 0.02 * (j - 1))) <= 0.5);
            c = end;
        }
        /* the legend is right of the plot, clear of the points */
        k++;
    }
    const el *leg = find(&d, "text", "legend");
    assert_true(num(leg, "x") > to_px(&tx, tx.tick[tx.n - 1]));
    doc_free(&d);
    free(svg);
}

/* ---- text plots ---- */

typedef struct tplot {
    char  *lines[200];
    int    n, ylw, H, W, top;   /* lines; label width; plot rows, columns; first plot line */
    double ylo, yhi, xlo, xhi;  /* axis ends (log2 for log) */
} tplot;

static tplot read_ascii(char *txt, int has_title, int has_ylabel, int logx)
{
    tplot t = {0};
    for (char *s = strtok(txt, "\n"); s; s = strtok(NULL, "\n")) t.lines[t.n++] = s;
    t.top = has_title + has_ylabel;
    /* the x axis: the first line of blanks then only '+' and '-', '+' first
     * (plot rows start with a label or a '|') */
    int ax = t.top;
    for (; ax < t.n; ax++) {
        const char *l = t.lines[ax] + strspn(t.lines[ax], " ");
        if (*l == '+' && l[1] && strspn(l, "+-") == strlen(l)) break;
    }
    assert_true(ax < t.n - 1);
    t.H = ax - t.top;
    t.ylw = (int)strspn(t.lines[ax], " ");
    t.W = (int)strlen(t.lines[ax]) - t.ylw - 1;
    /* y ticks: '+' on the axis, the label to its left */
    int first = -1, last = -1;
    for (int r = 0; r < t.H; r++) {
        char *l = t.lines[t.top + r];
        assert_true((int)strlen(l) > t.ylw);
        if (l[t.ylw] != '+') { assert_int_equal(l[t.ylw], '|'); continue; }
        char lab[64];
        memcpy(lab, l, (size_t)t.ylw);
        lab[t.ylw] = 0;
        double v = label_value(lab + strspn(lab, " "));
        if (first < 0) { first = r; t.yhi = v; }
        last = r;
        t.ylo = v;
    }
    assert_int_equal(first, 0);          /* the axis ends on ticks */
    assert_int_equal(last, t.H - 1);
    /* x ticks: '+' on the axis row paired with the labels below, in order */
    char *axl = t.lines[ax], *labs = t.lines[ax + 1];
    double vals[64];
    int cells[64], nc = 0, nv = 0;
    for (int c = t.ylw + 1; axl[c]; c++) if (axl[c] == '+') cells[nc++] = c - t.ylw - 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", labs);
    for (char *s = strtok(buf, " "); s; s = strtok(NULL, " ")) vals[nv++] = label_value(s);
    assert_int_equal(nc, nv);
    assert_int_equal(cells[0], 0);
    assert_int_equal(cells[nc - 1], t.W - 1);
    t.xlo = logx ? log2(vals[0]) : vals[0];
    t.xhi = logx ? log2(vals[nv - 1]) : vals[nv - 1];
    return t;
}

static char cell(const tplot *t, int r, int c)
{
    const char *l = t->lines[t->top + r];
    return (int)strlen(l) > t->ylw + 1 + c ? l[t->ylw + 1 + c] : ' ';
}

static void test_ascii_positions(void **state)
{
    for (int trial = 0; trial < 6; trial++) {
        int logx = trial & 1, cols = 60 + 20 * (trial % 3), rows = 18 + 4 * trial;
        qt_plot_pt pt[60];
        make_points(pt, 60, logx ? 100 : -5, logx ? 1e6 : 40, logx, 0.65);
        qt_plot_series s = {"s", pt, 60, 0};
        qt_plot p = one_series(&s);
        p.title = "T";
        p.ylabel = "top-1";
        p.xlabel = "bits";
        p.xlog = logx;
        p.y_percent = 1;
        p.baseline = 0.93;
        p.threshold = 0.65;
        int rc;
        char *txt = render_ascii(&p, cols, rows, &rc);
        assert_int_equal(rc, QT_OK);
        int nl = 0;
        for (char *c = txt; *c; c++) nl += *c == '\n';
        assert_int_equal(nl, rows);
        tplot t = read_ascii(txt, 1, 1, logx);
        for (int i = 0; i < t.n; i++) assert_true((int)strlen(t.lines[i]) <= cols);
        assert_string_equal(t.lines[0] + strspn(t.lines[0], " "), "T");
        assert_non_null(strstr(t.lines[t.n - 1], "- baseline 93%"));
        assert_non_null(strstr(t.lines[t.n - 1], "= constraint 65%"));
        /* every point where the axes put it */
        double fr[60], fc[60];
        for (int i = 0; i < 60; i++) {
            double u = logx ? log2(pt[i].x) : pt[i].x;
            fc[i] = (u - t.xlo) / (t.xhi - t.xlo) * (t.W - 1);
            fr[i] = (t.yhi - pt[i].y) / (t.yhi - t.ylo) * (t.H - 1);
            int ok = 0;
            for (int r = (int)floor(fr[i]); r <= (int)ceil(fr[i]); r++)
                for (int c = (int)floor(fc[i]); c <= (int)ceil(fc[i]); c++)
                    if (fabs(r - fr[i]) <= 0.5 + 1e-9 && fabs(c - fc[i]) <= 0.5 + 1e-9) {
                        char ch = cell(&t, r, c);
                        ok |= pt[i].front ? ch == '*' : ch == '.' || ch == '*';
                    }
            if (!ok) fail_msg("point %d (%g, %g) not at row %g col %g", i, pt[i].x, pt[i].y, fr[i], fc[i]);
        }
        /* and no mark elsewhere; the lines at their rows */
        double rb = (t.yhi - 0.93) / (t.yhi - t.ylo) * (t.H - 1), rt = (t.yhi - 0.65) / (t.yhi - t.ylo) * (t.H - 1);
        for (int r = 0; r < t.H; r++)
            for (int c = 0; c < t.W; c++) {
                char ch = cell(&t, r, c);
                if (ch == '*' || ch == '.') {
                    int near = 0;
                    for (int i = 0; i < 60 && !near; i++)
                        near = (ch == '.' || pt[i].front) && fabs(r - fr[i]) <= 0.5 + 1e-9 &&
                               fabs(c - fc[i]) <= 0.5 + 1e-9;
                    if (!near) fail_msg("stray '%c' at row %d col %d", ch, r, c);
                } else if (fabs(r - rb) <= 0.5 + 1e-9 && (ch == '-' || fabs(r - rb) < 0.5 - 1e-9)) {
                    assert_int_equal(ch, '-');   /* on a tie (x.5) either row will do */
                } else if (fabs(r - rt) <= 0.5 + 1e-9 && (ch == '=' || fabs(r - rt) < 0.5 - 1e-9)) {
                    assert_int_equal(ch, '=');
                } else {
                    assert_int_equal(ch, ' ');
                }
            }
        free(txt);
    }
}

static void test_ascii_series_marks(void **state)
{
    qt_plot_pt a[2] = {{1, 1, 0, 1}, {9, 3, 1, 1}}, b[2] = {{5, 2, 0, 1}, {NAN, 1, 0, 1}};
    qt_plot_series s[2] = {{"alpha", a, 2, 1}, {"beta", b, 2, 1}};
    qt_plot p;
    qt_plot_init(&p);
    p.series = s;
    p.n_series = 2;
    int rc;
    char *txt = render_ascii(&p, 40, 12, &rc);   /* 12 rows: 9 plot rows, even steps */
    assert_int_equal(rc, QT_OK);
    tplot t = read_ascii(txt, 0, 0, 0);
    int stars = 0, os = 0;
    for (int r = 0; r < t.H; r++)
        for (int c = 0; c < t.W; c++) { stars += cell(&t, r, c) == '*'; os += cell(&t, r, c) == 'o'; }
    assert_int_equal(stars, 2);
    assert_int_equal(os, 1);
    assert_string_equal(t.lines[t.n - 1], "* alpha  o beta");
    free(txt);
}

/* ---- samples for people: plot_sample_*.svg and .txt in the build dir ---- */

static void test_sample_files(void **state)
{
    qt_plot_pt pt[90];
    for (int i = 0; i < 90; i++) {   /* weight bits of a 60k-parameter model */
        double bits = 60e3 * (1.5 + 30.5 * pow(unit(), 1.5));
        double acc = 0.912 - 0.6 * exp(-(bits / 60e3 - 1.2) * 1.1) - 0.03 * unit() * unit();
        pt[i] = (qt_plot_pt){bits, acc > 0.1 ? acc : 0.1, 0, 1};
    }
    mark_front(pt, 90, 0.902);
    qt_plot_series s = {"lenet5", pt, 90, 0};
    qt_plot p = one_series(&s);
    p.title = "LeNet-5 on Fashion-MNIST: weight bits vs. top-1";
    p.xlabel = "weight bits";
    p.ylabel = "validation top-1";
    p.baseline = 0.912;
    p.baseline_label = "float";
    p.threshold = 0.902;
    p.xlog = 1;
    p.y_percent = 1;
    qt_error err = {0};
    assert_int_equal(qt_plot_svg_file(&p, QT_PLOT_OUT_DIR "/plot_sample_pareto.svg", &err), QT_OK);
    FILE *f = fopen(QT_PLOT_OUT_DIR "/plot_sample_pareto.txt", "w");
    assert_int_equal(qt_plot_ascii(&p, 80, 24, f), QT_OK);
    fclose(f);

    qt_plot_pt sw[4][8];
    qt_plot_series ss[4];
    static const char *const names[4] = {"fixed", "minifloat", "posit", "log"};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 8; i++) {
            double bits = 2 + i;
            sw[k][i] = (qt_plot_pt){bits, 0.912 - 0.8 * exp(-(bits - 1.5) * (0.6 + 0.25 * k)), 0, 1};
        }
        ss[k] = (qt_plot_series){names[k], sw[k], 8, 1};
    }
    qt_plot q;
    qt_plot_init(&q);
    q.title = "bits per weight, by format";
    q.xlabel = "bits per weight";
    q.ylabel = "top-1";
    q.series = ss;
    q.n_series = 4;
    q.baseline = 0.912;
    q.baseline_label = "float";
    q.y_percent = 1;
    assert_int_equal(qt_plot_svg_file(&q, QT_PLOT_OUT_DIR "/plot_sample_sweep.svg", &err), QT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_front_points_map_back),
        cmocka_unit_test(test_svg_baseline_threshold),
        cmocka_unit_test(test_svg_xlog),
        cmocka_unit_test(test_svg_nan_skipped),
        cmocka_unit_test(test_svg_escaping),
        cmocka_unit_test(test_svg_empty_is_einval),
        cmocka_unit_test(test_svg_full_device_is_eio),
        cmocka_unit_test(test_svg_file_atomic),
        cmocka_unit_test(test_svg_deterministic),
        cmocka_unit_test(test_svg_nice_ticks),
        cmocka_unit_test(test_svg_series_lines),
        cmocka_unit_test(test_ascii_positions),
        cmocka_unit_test(test_ascii_series_marks),
        cmocka_unit_test(test_sample_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
