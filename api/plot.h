/*
 * plot.h -- SVG and terminal plots of measured points: Pareto fronts (cost
 * against accuracy) and sweeps (several named series of (x, y) lines).
 * Private to api/: `qtune pareto --plot FILE.svg` and `--ascii`, and the
 * studies' sweep plots. No plotting library: the SVG is written here.
 *
 *   qt_plot_pt pts[] = {{x, y, front, feasible}, ...};
 *   qt_plot_series s = {"lenet5", pts, n, 0};
 *   qt_plot p;
 *   qt_plot_init(&p);                      // NAN baseline/threshold, defaults
 *   p.title = "LeNet-5"; p.xlabel = "weight bits"; p.ylabel = "top-1";
 *   p.series = &s; p.n_series = 1; p.baseline = 0.912; p.threshold = 0.902;
 *   p.xlog = 1; p.y_percent = 1;
 *   rc = qt_plot_svg_file(&p, "front.svg", &err);
 *
 * What is drawn: every point as a small dot in its series' colour (points
 * not feasible as hollow rings); points with .front set as larger dots
 * joined by a step line in x order (the attainable accuracy at each cost);
 * series with .line set joined by a straight line in x order; baseline and
 * threshold as labelled dashed horizontal lines; 1-2-5 ticks (powers of two
 * for xlog); a legend to the right when there is more than one series.
 * Axes end on ticks and cover every point, the baseline and the threshold.
 * Points with a NaN or infinite coordinate (or x <= 0 on a log axis) are
 * skipped. Output depends only on the input: same input, same bytes, in any
 * locale. The SVG's elements carry classes for tools and tests: "xtick",
 * "ytick" (tick lines and labels), "pt"/"front" plus "infeasible" (markers,
 * circles), "step", "line", "baseline", "threshold", "legend", "title",
 * "xlabel", "ylabel".
 */
#ifndef QT_PLOT_H
#define QT_PLOT_H

#include <stdio.h>

#include "quant.h"   /* qt_error, qt_errorf, result codes */

typedef struct qt_plot_pt {
    double x, y;
    int    front;     /* on the Pareto front: large dot, on the step line */
    int    feasible;  /* meets the constraint; 0: drawn as a hollow ring */
} qt_plot_pt;         /* NaN/infinite x or y: skipped */

typedef struct qt_plot_series {
    const char       *name;   /* legend text (NULL: "series N") */
    const qt_plot_pt *pts;    /* borrowed */
    int               n;
    int               line;   /* join all points in x order */
} qt_plot_series;

typedef struct qt_plot {
    const char *title, *xlabel, *ylabel;     /* NULL: none */
    const qt_plot_series *series;            /* borrowed */
    int    n_series;
    double baseline;     /* horizontal reference line, e.g. float accuracy (NAN: none) */
    double threshold;    /* horizontal constraint line (NAN: none) */
    int    xlog;         /* log2 x axis */
    int    y_percent;    /* y values are fractions, label ticks as % */
    const char *baseline_label;   /* NULL: "baseline" (the value is appended) */
    const char *threshold_label;  /* NULL: "constraint" (the value is appended) */
    int    width, height;         /* SVG size in px (0: 640 x 420; 240 x 180 to 4000 x 4000) */
} qt_plot;

/* Zero p and set baseline and threshold to NAN. */
void qt_plot_init(qt_plot *p);

/* Write an SVG document to out. QT_EINVAL (nothing written) when there is no
 * point to plot or the input is malformed; QT_ENOMEM; QT_EIO when writing
 * (or the final flush of out) fails. */
int qt_plot_svg(const qt_plot *p, FILE *out, qt_error *err);

/* The same into path, atomically: a temporary file in path's directory is
 * written, synced and renamed over path; on failure path is untouched and the
 * temporary file removed. QT_EIO names the path and the reason. */
int qt_plot_svg_file(const qt_plot *p, const char *path, qt_error *err);

/* Draw the plot as text, rows lines of at most cols characters (at least
 * 30 x 10): a title line, the y label, the plot area with y tick labels and
 * a '|' axis ('+' at ticks), the x axis ('+' at ticks) and its labels, the x
 * label, a legend line. One series: '*' front points, '.' the others;
 * several: one mark per series ("*o+x#@%&"), front or not. '-' the baseline,
 * '=' the threshold (points drawn over them). Trailing blanks are trimmed.
 * QT_EINVAL when there is no point, QT_ENOMEM, QT_EIO when out fails. */
int qt_plot_ascii(const qt_plot *p, int cols, int rows, FILE *out);

#endif /* QT_PLOT_H */
