/*
 * plot.c -- SVG and terminal plots of measured points (see plot.h).
 *
 * Both renderers share the axes: a range that covers every usable point,
 * the baseline and the threshold, widened to whole 1-2-5 steps (whole
 * powers of two on a log2 axis), so the first and last ticks sit on the
 * edges of the plot area. Numbers are written without printf's locale
 * (coordinates as integers of hundredths, labels with the decimal point
 * forced to '.'), so output depends on the input alone.
 */
#include "plot.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TICKS 64

typedef struct axis {
    double lo, hi;            /* ends, in axis units: the value, or its log2 */
    int    log, pct;          /* log2 axis; labels as percentages */
    int    n;                 /* number of ticks */
    double t[MAX_TICKS];      /* tick positions in axis units, lo..hi */
} axis;

typedef struct bounds { double xmin, xmax, ymin, ymax; int n, max_n; } bounds;

void qt_plot_init(qt_plot *p)
{
    memset(p, 0, sizeof *p);
    p->baseline = NAN;
    p->threshold = NAN;
}

static int usable(const qt_plot *p, const qt_plot_pt *q)
{
    return isfinite(q->x) && isfinite(q->y) && (!p->xlog || q->x > 0);
}

static int has_text(const char *s) { return s && *s; }

/* Check the input and find the data's extent; nothing is written. */
static int collect(const qt_plot *p, bounds *b, qt_error *err)
{
    b->xmin = b->ymin = INFINITY;
    b->xmax = b->ymax = -INFINITY;
    b->n = b->max_n = 0;
    if (!p || p->n_series < 0 || (p->n_series && !p->series))
        return qt_errorf(err, QT_EINVAL, -1, "plot: no plot or bad series list");
    for (int s = 0; s < p->n_series; s++) {
        const qt_plot_series *se = &p->series[s];
        if (se->n < 0 || (se->n && !se->pts))
            return qt_errorf(err, QT_EINVAL, -1, "plot: series %d has %d points and %s array",
                             s, se->n, se->pts ? "an" : "no");
        if (se->n > b->max_n) b->max_n = se->n;
        for (int i = 0; i < se->n; i++) {
            const qt_plot_pt *q = &se->pts[i];
            if (!usable(p, q)) continue;
            b->n++;
            b->xmin = fmin(b->xmin, q->x); b->xmax = fmax(b->xmax, q->x);
            b->ymin = fmin(b->ymin, q->y); b->ymax = fmax(b->ymax, q->y);
        }
    }
    if (!b->n)
        return qt_errorf(err, QT_EINVAL, -1, "plot: no point to plot (every x and y %s)",
                         p->xlog ? "NaN or infinite, or x <= 0 on the log axis"
                                 : "NaN or infinite, or no points");
    if (isfinite(p->baseline)) { b->ymin = fmin(b->ymin, p->baseline); b->ymax = fmax(b->ymax, p->baseline); }
    if (isfinite(p->threshold)) { b->ymin = fmin(b->ymin, p->threshold); b->ymax = fmax(b->ymax, p->threshold); }
    if (fmax(fmax(fabs(b->xmin), fabs(b->xmax)), fmax(fabs(b->ymin), fabs(b->ymax))) > 1e300)
        return qt_errorf(err, QT_EINVAL, -1, "plot: values beyond 1e300 cannot be plotted");
    return QT_OK;
}

/* ---- axes ---------------------------------------------------------------- */

static double nice_step(double span, int target)
{
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * mag;
}

/* Ticks for [min, max] (values, > 0 when log), about target intervals. */
static void axis_fit(axis *a, double min, double max, int target, int log, int pct)
{
    a->log = log;
    a->pct = pct;
    target = target < 1 ? 1 : target > 40 ? 40 : target;   /* at most 42 ticks */
    if (log) {
        double lo = floor(log2(min) + 1e-9), hi = ceil(log2(max) - 1e-9), step = 1;
        if (hi <= lo) { lo -= 1; hi += 1; }
        static const double m[3] = {1, 2, 5};   /* steps of 1, 2, 5, 10, 20, ... octaves */
        for (int k = 0; (hi - lo) / step > target; k++)
            step = m[(k + 1) % 3] * pow(10, (k + 1) / 3);
        double ilo = floor(lo / step), ihi = ceil(hi / step);
        a->n = (int)(ihi - ilo) + 1;
        for (int k = 0; k < a->n && k < MAX_TICKS; k++) a->t[k] = (ilo + k) * step;
    } else {
        /* one value (or a span too small for steps to be normal numbers) */
        if (max - min <= 1e-12 * fmax(fabs(min), fabs(max)) || max - min < 1e-290) {
            double d = fabs(min) * 0.05;
            if (!(d >= 1e-290)) d = pct ? 0.01 : 1;
            min -= d;
            max += d;
        }
        double step = nice_step(max - min, target);
        double ilo = floor(min / step + 1e-9), ihi = ceil(max / step - 1e-9);
        a->n = (int)(ihi - ilo) + 1;
        for (int k = 0; k < a->n && k < MAX_TICKS; k++) {
            double t = (ilo + k) * step;
            a->t[k] = fabs(t) < step * 1e-9 ? 0 : t;
        }
    }
    if (a->n > MAX_TICKS) a->n = MAX_TICKS;   /* not reached: target <= 40 */
    a->lo = a->t[0];
    a->hi = a->t[a->n - 1];
}

/* Where v falls between the axis ends: 0 at lo, 1 at hi. */
static double frac(const axis *a, double v)
{
    return ((a->log ? log2(v) : v) - a->lo) / (a->hi - a->lo);
}

/* %.*g with '.' as the decimal point whatever LC_NUMERIC says */
static void fmt_g(char *buf, size_t n, int prec, double v)
{
    if (v == 0) v = 0;   /* no "-0" */
    snprintf(buf, n, "%.*g", prec, v);
    const char *dp = localeconv()->decimal_point;
    char *q;
    if (dp && *dp && strcmp(dp, ".") && (q = strstr(buf, dp))) {
        size_t l = strlen(dp);
        *q = '.';
        memmove(q + 1, q + l, strlen(q + l) + 1);
    }
}

static void tick_label(const axis *a, double t, char *buf, size_t n)
{
    if (a->log) {
        /* 1/16 .. 512 as numbers, then 1Ki, 2Ki, .. 512Ti (bits: 64Ki is
         * 65536, never 64000), else 2^e */
        static const char *const prefix[] = {"", "Ki", "Mi", "Gi", "Ti"};
        int e = (int)lround(t);
        if (e >= -4 && e < 50) fmt_g(buf, n, 6, ldexp(1, e >= 0 ? e % 10 : e));
        else snprintf(buf, n, "2^%d", e);
        if (e >= 10 && e < 50) strncat(buf, prefix[e / 10], n - strlen(buf) - 1);
    } else if (a->pct) {
        fmt_g(buf, n, 6, t * 100);
        strncat(buf, "%", n - strlen(buf) - 1);
    } else {
        fmt_g(buf, n, 6, t);
    }
}

/* "float 91.23%": a horizontal line's label */
static void line_label(const qt_plot *p, const char *name, double v, char *buf, size_t n)
{
    char num[32];
    fmt_g(num, sizeof num, 4, p->y_percent ? v * 100 : v);
    snprintf(buf, n, "%s %s%s", name, num, p->y_percent ? "%" : "");
}

/* ---- SVG ----------------------------------------------------------------- */

/* a coordinate to 1/100 px, trailing zeros dropped */
static void put_coord(FILE *f, double v)
{
    long long q = isfinite(v) ? llround(v * 100) : 0;
    if (q < 0) { putc('-', f); q = -q; }
    fprintf(f, "%lld", q / 100);
    int r = (int)(q % 100);
    if (r % 10) fprintf(f, ".%02d", r);
    else if (r) fprintf(f, ".%d", r / 10);
}

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: putc((unsigned char)*s < 0x20 ? ' ' : *s, f);  /* no control chars in XML */
        }
    }
}

/* printf for SVG: %f coordinate, %d int, %s raw text, %e XML-escaped text */
static void emit(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *c = fmt; *c; c++) {
        if (*c != '%') { putc(*c, f); continue; }
        switch (*++c) {
        case 'f': put_coord(f, va_arg(ap, double)); break;
        case 'd': fprintf(f, "%d", va_arg(ap, int)); break;
        case 's': fputs(va_arg(ap, const char *), f); break;
        case 'e': put_escaped(f, va_arg(ap, const char *)); break;
        case '\0': c--; break;
        default: putc(*c, f);
        }
    }
    va_end(ap);
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_PALETTE ((int)(sizeof palette / sizeof palette[0]))

typedef struct frame { axis x, y; double px0, px1, py0, py1; } frame;
typedef struct spt { double x, y; int i; } spt;

static double fx(const frame *f, double x) { return f->px0 + frac(&f->x, x) * (f->px1 - f->px0); }
static double fy(const frame *f, double y) { return f->py1 - frac(&f->y, y) * (f->py1 - f->py0); }

static int cmp_spt(const void *a, const void *b)
{
    const spt *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    if (p->y != q->y) return p->y < q->y ? -1 : 1;
    return (p->i > q->i) - (p->i < q->i);
}

/* The usable points of a series (only front ones if front_only) in x order. */
static int sorted_pts(const qt_plot *p, const qt_plot_series *s, int front_only, spt *out)
{
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (usable(p, &s->pts[i]) && (!front_only || s->pts[i].front))
            out[m++] = (spt){s->pts[i].x, s->pts[i].y, i};
    qsort(out, (size_t)m, sizeof *out, cmp_spt);
    return m;
}

static void series_name(const qt_plot *p, int s, char *buf, size_t n)
{
    if (has_text(p->series[s].name)) snprintf(buf, n, "%s", p->series[s].name);
    else snprintf(buf, n, "series %d", s + 1);
}

/* The baseline (h 0) or threshold (h 1): its dashed line under the points
 * (label 0), or its label over them (label 1). The baseline's label goes
 * above its line, the threshold's below (it is usually the lower of the
 * two), unless that leaves the plot. */
static void svg_hline(FILE *out, const qt_plot *p, const frame *f, int h, int label)
{
    static const char *const cls[2] = {"baseline", "threshold"}, *const name[2] = {"baseline", "constraint"},
                      *const colour[2] = {"#555555", "#d62728"}, *const dash[2] = {"6 4", "3 3"};
    double y = h ? p->threshold : p->baseline;
    const char *nm = h ? p->threshold_label : p->baseline_label;
    if (!isfinite(y)) return;
    double py = fy(f, y);
    if (!label) {
        emit(out, "<line class=\"%s\" x1=\"%f\" y1=\"%f\" x2=\"%f\" y2=\"%f\" stroke=\"%s\" "
             "stroke-width=\"1.2\" stroke-dasharray=\"%s\"/>\n", cls[h], f->px0, py, f->px1, py,
             colour[h], dash[h]);
        return;
    }
    int below = h && (!isfinite(p->baseline) || p->threshold <= p->baseline);
    if (below && py + 14 > f->py1) below = 0;
    if (!below && py - 14 < f->py0) below = 1;
    char buf[256];
    line_label(p, has_text(nm) ? nm : name[h], y, buf, sizeof buf);
    emit(out, "<text class=\"%s\" x=\"%f\" y=\"%f\" text-anchor=\"end\" fill=\"%s\" "
         "stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">%e</text>\n",
         cls[h], f->px1 - 4, below ? py + 13 : py - 4, colour[h], buf);
}

int qt_plot_svg(const qt_plot *p, FILE *out, qt_error *err)
{
    bounds b;
    int rc = collect(p, &b, err);
    if (rc) return rc;
    if (!out) return qt_errorf(err, QT_EINVAL, -1, "plot: no output stream");
    spt *sp = malloc((size_t)(b.max_n ? b.max_n : 1) * sizeof *sp);
    if (!sp) return qt_errorf(err, QT_ENOMEM, -1, "plot: out of memory");

    int W = p->width > 0 ? p->width : 640, H = p->height > 0 ? p->height : 420;
    W = W < 240 ? 240 : W > 4000 ? 4000 : W;
    H = H < 180 ? 180 : H > 4000 ? 4000 : H;
    frame f;
    axis_fit(&f.x, b.xmin, b.xmax, (W - 160) / 90, p->xlog, 0);
    axis_fit(&f.y, b.ymin, b.ymax, (H - 100) / 55, 0, p->y_percent);
    char buf[256], nm[200];
    size_t ylw = 0, legw = 0;
    for (int k = 0; k < f.y.n; k++) {
        tick_label(&f.y, f.y.t[k], buf, sizeof buf);
        if (strlen(buf) > ylw) ylw = strlen(buf);
    }
    if (p->n_series > 1)
        for (int s = 0; s < p->n_series; s++) {
            series_name(p, s, nm, 40);
            if (strlen(nm) > legw) legw = strlen(nm);
        }
    f.px0 = 14 + 7.0 * (double)ylw + (has_text(p->ylabel) ? 22 : 0);
    f.px1 = W - 18 - (p->n_series > 1 ? 40 + 7.0 * (double)legw : 0);
    f.py0 = has_text(p->title) ? 40 : 16;
    f.py1 = H - (has_text(p->xlabel) ? 48 : 30);

    emit(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
         "font-family=\"sans-serif\" font-size=\"12\">\n"
         "<rect class=\"bg\" x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
         W, H, W, H, W, H);
    if (has_text(p->title))
        emit(out, "<text class=\"title\" x=\"%f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" "
             "font-weight=\"bold\">%e</text>\n", (f.px0 + f.px1) / 2, p->title);
    for (int k = 0; k < f.x.n; k++) {
        double x = f.px0 + (f.x.t[k] - f.x.lo) / (f.x.hi - f.x.lo) * (f.px1 - f.px0);
        tick_label(&f.x, f.x.t[k], buf, sizeof buf);
        emit(out, "<line class=\"grid\" x1=\"%f\" y1=\"%f\" x2=\"%f\" y2=\"%f\" stroke=\"#e8e8e8\"/>\n"
             "<line class=\"xtick\" x1=\"%f\" y1=\"%f\" x2=\"%f\" y2=\"%f\" stroke=\"#000000\"/>\n"
             "<text class=\"xtick\" x=\"%f\" y=\"%f\" text-anchor=\"middle\">%e</text>\n",
             x, f.py0, x, f.py1, x, f.py1, x, f.py1 + 5, x, f.py1 + 18, buf);
    }
    for (int k = 0; k < f.y.n; k++) {
        double y = f.py1 - (f.y.t[k] - f.y.lo) / (f.y.hi - f.y.lo) * (f.py1 - f.py0);
        tick_label(&f.y, f.y.t[k], buf, sizeof buf);
        emit(out, "<line class=\"grid\" x1=\"%f\" y1=\"%f\" x2=\"%f\" y2=\"%f\" stroke=\"#e8e8e8\"/>\n"
             "<line class=\"ytick\" x1=\"%f\" y1=\"%f\" x2=\"%f\" y2=\"%f\" stroke=\"#000000\"/>\n"
             "<text class=\"ytick\" x=\"%f\" y=\"%f\" text-anchor=\"end\">%e</text>\n",
             f.px0, y, f.px1, y, f.px0 - 5, y, f.px0, y, f.px0 - 8, y + 4, buf);
    }
    emit(out, "<rect class=\"frame\" x=\"%f\" y=\"%f\" width=\"%f\" height=\"%f\" fill=\"none\" "
         "stroke=\"#000000\"/>\n", f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0);
    if (has_text(p->xlabel))
        emit(out, "<text class=\"xlabel\" x=\"%f\" y=\"%f\" text-anchor=\"middle\">%e</text>\n",
             (f.px0 + f.px1) / 2, (double)H - 12, p->xlabel);
    if (has_text(p->ylabel)) {
        double cy = (f.py0 + f.py1) / 2;
        emit(out, "<text class=\"ylabel\" x=\"18\" y=\"%f\" text-anchor=\"middle\" "
             "transform=\"rotate(-90 18 %f)\">%e</text>\n", cy, cy, p->ylabel);
    }
    svg_hline(out, p, &f, 0, 0);
    svg_hline(out, p, &f, 1, 0);

    for (int s = 0; s < p->n_series; s++) {
        const qt_plot_series *se = &p->series[s];
        const char *c = palette[s % N_PALETTE];
        series_name(p, s, nm, sizeof nm);
        emit(out, "<g class=\"series\" data-name=\"%e\">\n", nm);
        int m;
        if (se->line && (m = sorted_pts(p, se, 0, sp)) > 1) {
            emit(out, "<polyline class=\"line\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                 "points=\"", c);
            for (int i = 0; i < m; i++)
                emit(out, i ? " %f,%f" : "%f,%f", fx(&f, sp[i].x), fy(&f, sp[i].y));
            emit(out, "\"/>\n");
        }
        /* the front as a staircase: at cost x[i] .. x[i+1], accuracy y[i] */
        if ((m = sorted_pts(p, se, 1, sp)) > 1) {
            emit(out, "<path class=\"step\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                 "d=\"M%f %f", c, fx(&f, sp[0].x), fy(&f, sp[0].y));
            for (int i = 1; i < m; i++) emit(out, " H%f V%f", fx(&f, sp[i].x), fy(&f, sp[i].y));
            emit(out, "\"/>\n");
        }
        for (int pass = 0; pass < 2; pass++)   /* front markers on top */
            for (int i = 0; i < se->n; i++) {
                const qt_plot_pt *q = &se->pts[i];
                if (!usable(p, q) || !!q->front != pass) continue;
                double r = pass ? 4 : 2.5;
                if (q->feasible)
                    emit(out, "<circle class=\"%s\" cx=\"%f\" cy=\"%f\" r=\"%f\" fill=\"%s\"%s/>\n",
                         pass ? "front" : "pt", fx(&f, q->x), fy(&f, q->y), r, c,
                         pass ? " stroke=\"#ffffff\" stroke-width=\"1\"" : " fill-opacity=\"0.55\"");
                else
                    emit(out, "<circle class=\"%s infeasible\" cx=\"%f\" cy=\"%f\" r=\"%f\" "
                         "fill=\"#ffffff\" stroke=\"%s\" stroke-width=\"%s\"/>\n",
                         pass ? "front" : "pt", fx(&f, q->x), fy(&f, q->y), r, c,
                         pass ? "1.5" : "1");
            }
        emit(out, "</g>\n");
    }
    svg_hline(out, p, &f, 0, 1);
    svg_hline(out, p, &f, 1, 1);
    if (p->n_series > 1)
        for (int s = 0; s < p->n_series; s++) {
            const char *c = palette[s % N_PALETTE];
            double lx = f.px1 + 14, ly = f.py0 + 10 + 18.0 * s;
            series_name(p, s, nm, 40);
            emit(out, "<line class=\"legend\" x1=\"%f\" y1=\"%f\" x2=\"%f\" y2=\"%f\" stroke=\"%s\" "
                 "stroke-width=\"2\"/>\n<circle class=\"legend\" cx=\"%f\" cy=\"%f\" r=\"3\" "
                 "fill=\"%s\"/>\n<text class=\"legend\" x=\"%f\" y=\"%f\">%e</text>\n",
                 lx, ly, lx + 18, ly, c, lx + 9, ly, c, lx + 24, ly + 4, nm);
        }
    emit(out, "</svg>\n");
    free(sp);
    if (fflush(out) != 0 || ferror(out))
        return qt_errorf(err, QT_EIO, -1, "plot: writing the SVG failed: %s", strerror(errno));
    return QT_OK;
}

int qt_plot_svg_file(const qt_plot *p, const char *path, qt_error *err)
{
    bounds b;
    int rc = collect(p, &b, err);
    if (rc) return rc;
    if (!has_text(path)) return qt_errorf(err, QT_EINVAL, -1, "plot: no output path");
    size_t n = strlen(path);
    char *tmp = malloc(n + 8);
    if (!tmp) return qt_errorf(err, QT_ENOMEM, -1, "plot: out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".XXXXXX", 8);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = qt_errorf(err, QT_EIO, -1, "%s: cannot create: %s", path, strerror(errno));
        goto out_free;
    }
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        rc = qt_errorf(err, QT_EIO, -1, "%s: %s", path, strerror(errno));
        close(fd);
        goto out_unlink;
    }
    rc = qt_plot_svg(p, f, err);
    int e = errno;
    if (!rc && fsync(fd) != 0) { e = errno; rc = QT_EIO; }
    if (fclose(f) != 0 && !rc) { e = errno; rc = QT_EIO; }
    if (!rc && rename(tmp, path) != 0) { e = errno; rc = QT_EIO; }
    if (rc == QT_EIO) qt_errorf(err, QT_EIO, -1, "%s: cannot write: %s", path, strerror(e));
out_unlink:
    if (rc) unlink(tmp);
out_free:
    free(tmp);
    return rc;
}

/* ---- text ---------------------------------------------------------------- */

/* a line without trailing blanks */
static void put_line(FILE *out, const char *s, int len)
{
    while (len > 0 && s[len - 1] == ' ') len--;
    fwrite(s, 1, (size_t)len, out);
    putc('\n', out);
}

static void put_centred(FILE *out, char *line, int cols, int from, int width, const char *s)
{
    int l = (int)strlen(s);
    if (l > cols) l = cols;
    int at = from + (width - l) / 2;
    if (at + l > cols) at = cols - l;
    if (at < 0) at = 0;
    memset(line, ' ', (size_t)cols);
    memcpy(line + at, s, (size_t)l);
    put_line(out, line, cols);
}

/* append "  item" (no blanks before the first) to leg, which holds cap bytes */
__attribute__((format(printf, 4, 5)))
static void leg_add(char *leg, size_t cap, size_t *ll, const char *fmt, ...)
{
    char item[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    int w = snprintf(leg + *ll, cap - *ll, "%s%s", *ll ? "  " : "", item);
    *ll = w < 0 ? *ll : *ll + (size_t)w >= cap ? cap - 1 : *ll + (size_t)w;
}

int qt_plot_ascii(const qt_plot *p, int cols, int rows, FILE *out)
{
    bounds b;
    int rc = collect(p, &b, NULL);
    if (rc) return rc;
    if (!out) return QT_EINVAL;
    cols = cols < 30 ? 30 : cols > 1000 ? 1000 : cols;
    rows = rows < 10 ? 10 : rows > 1000 ? 1000 : rows;
    int H = rows - 3 - has_text(p->title) - has_text(p->ylabel) - has_text(p->xlabel);
    axis ax, ay;
    char lab[MAX_TICKS][40];
    int ylw = 0;
    for (int target = (H - 1) / 3; ; target--) {   /* ticks at least 2 rows apart */
        axis_fit(&ay, b.ymin, b.ymax, target, 0, p->y_percent);
        if (ay.n <= (H + 1) / 2 || target <= 1) break;
    }
    for (int k = 0; k < ay.n; k++) {
        tick_label(&ay, ay.t[k], lab[k], sizeof lab[k]);
        if ((int)strlen(lab[k]) > ylw) ylw = (int)strlen(lab[k]);
    }
    int W = cols - ylw - 1;
    int ycell[MAX_TICKS], xcell[MAX_TICKS], xstart[MAX_TICKS];
    for (int k = 0; k < ay.n; k++)
        ycell[k] = (H - 1) - (int)lround((ay.t[k] - ay.lo) / (ay.hi - ay.lo) * (H - 1));
    char xl[MAX_TICKS][40];
    for (int target = W / 6; ; target--) {   /* x labels that fit, a blank apart */
        axis_fit(&ax, b.xmin, b.xmax, target, p->xlog, 0);
        int ok = 1, end = -1;
        for (int k = 0; k < ax.n; k++) {
            tick_label(&ax, ax.t[k], xl[k], sizeof xl[k]);
            int l = (int)strlen(xl[k]);
            xcell[k] = (int)lround((ax.t[k] - ax.lo) / (ax.hi - ax.lo) * (W - 1));
            int st = ylw + 1 + xcell[k] - l / 2;
            if (st + l > cols) st = cols - l;
            if (st < 0) st = 0;
            xstart[k] = st;
            if (st <= end) ok = 0;
            end = st + l;
        }
        if (ok || target <= 1) break;
    }

    char *grid = malloc((size_t)H * (size_t)W), *line = malloc((size_t)cols + 1);
    if (!grid || !line) { free(grid); free(line); return QT_ENOMEM; }
    memset(grid, ' ', (size_t)H * (size_t)W);
    double hy[2] = {p->baseline, p->threshold};
    for (int h = 0; h < 2; h++)
        if (isfinite(hy[h])) {
            int r = (H - 1) - (int)lround(frac(&ay, hy[h]) * (H - 1));
            memset(grid + (size_t)r * W, h ? '=' : '-', (size_t)W);
        }
    static const char marks[] = "*o+x#@%&";
    int any_front = 0, any_other = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int s = 0; s < p->n_series; s++)
            for (int i = 0; i < p->series[s].n; i++) {
                const qt_plot_pt *q = &p->series[s].pts[i];
                if (!usable(p, q) || !!q->front != pass) continue;
                int c = (int)lround(frac(&ax, q->x) * (W - 1));
                int r = (H - 1) - (int)lround(frac(&ay, q->y) * (H - 1));
                char m = p->n_series > 1 ? marks[s % 8] : pass ? '*' : '.';
                grid[(size_t)r * W + c] = m;
                if (pass) any_front = 1; else any_other = 1;
            }

    if (has_text(p->title)) put_centred(out, line, cols, 0, cols, p->title);
    if (has_text(p->ylabel)) put_centred(out, line, cols, 0, 0, p->ylabel);   /* at the left */
    for (int r = 0; r < H; r++) {
        int k = 0;
        while (k < ay.n && ycell[k] != r) k++;
        memset(line, ' ', (size_t)cols);
        if (k < ay.n) memcpy(line + ylw - strlen(lab[k]), lab[k], strlen(lab[k]));
        line[ylw] = k < ay.n ? '+' : '|';
        memcpy(line + ylw + 1, grid + (size_t)r * W, (size_t)W);
        put_line(out, line, cols);
    }
    memset(line, ' ', (size_t)cols);
    line[ylw] = '+';
    memset(line + ylw + 1, '-', (size_t)W);
    for (int k = 0; k < ax.n; k++) line[ylw + 1 + xcell[k]] = '+';
    put_line(out, line, cols);
    memset(line, ' ', (size_t)cols);
    for (int k = 0; k < ax.n; k++) {
        int l = (int)strlen(xl[k]);
        if (k && xstart[k] < xstart[k - 1] + (int)strlen(xl[k - 1]) + 1) continue;  /* no room */
        memcpy(line + xstart[k], xl[k], (size_t)l);
    }
    put_line(out, line, cols);
    if (has_text(p->xlabel)) put_centred(out, line, cols, ylw + 1, W, p->xlabel);

    /* the legend, cut at cols */
    char leg[1024] = "", nm[200];
    size_t ll = 0;
    if (p->n_series > 1) {
        for (int s = 0; s < p->n_series; s++) {
            series_name(p, s, nm, 40);
            leg_add(leg, sizeof leg, &ll, "%c %s", marks[s % 8], nm);
        }
    } else {
        if (any_front) leg_add(leg, sizeof leg, &ll, "* front");
        if (any_other) leg_add(leg, sizeof leg, &ll, ". measured");
    }
    if (isfinite(p->baseline)) {
        line_label(p, has_text(p->baseline_label) ? p->baseline_label : "baseline", p->baseline,
                   nm, sizeof nm);
        leg_add(leg, sizeof leg, &ll, "- %s", nm);
    }
    if (isfinite(p->threshold)) {
        line_label(p, has_text(p->threshold_label) ? p->threshold_label : "constraint",
                   p->threshold, nm, sizeof nm);
        leg_add(leg, sizeof leg, &ll, "= %s", nm);
    }
    put_line(out, leg, (int)ll < cols ? (int)ll : cols);
    free(grid);
    free(line);
    if (fflush(out) != 0 || ferror(out)) return QT_EIO;
    return QT_OK;
}
