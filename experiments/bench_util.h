/* bench_util.h -- small helpers shared by the benchmarks and studies: a
 * monotonic clock, a comparator for qsort, a comma-list test and the CPU's
 * model name. */
#ifndef QT_BENCH_UTIL_H
#define QT_BENCH_UTIL_H

#include <stdio.h>
#include <string.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* is name one of the comma-separated list's items? */
static inline int list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the "model name" line of /proc/cpuinfo, or "unknown" */
static inline void cpu_model(char *buf, size_t size)
{
    FILE *fp = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, size, "unknown");
    if (!fp) return;
    while (fgets(line, sizeof line, fp)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, size, "%s", c);
            }
            break;
        }
    }
    fclose(fp);
}

#endif
