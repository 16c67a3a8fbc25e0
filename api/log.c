/*
 * log.c -- qtuned's log: one line per message, "2024-05-01T12:00:00.123
 * info  text", to stderr or a file (appended), from any thread.
 */
#include "daemon.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static FILE *log_out;
static int log_level = QT_LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const names[] = { "error", "warn", "info", "debug" };

const char *qd_log_level_name(int level)
{
    return level >= 0 && level <= QT_LOG_DEBUG ? names[level] : "?";
}

int qd_log_level_parse(const char *name)
{
    for (int i = 0; i <= QT_LOG_DEBUG; i++) if (!strcmp(name, names[i])) return i;
    return -1;
}

int qd_log_open(const char *file, int level, qt_error *err)
{
    log_level = level;
    if (!file || !*file) { log_out = stderr; return QT_OK; }
    FILE *f = fopen(file, "a");
    if (!f) return qt_errorf(err, QT_EIO, -1, "log file %s: %s", file, strerror(errno));
    setvbuf(f, NULL, _IOLBF, 0);
    log_out = f;
    return QT_OK;
}

void qd_log_close(void)
{
    if (log_out && log_out != stderr) fclose(log_out);
    log_out = NULL;
}

void qd_log(int level, const char *fmt, ...)
{
    if (level > log_level) return;
    struct timeval tv;
    struct tm tm;
    char when[32];
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_mu);
    FILE *f = log_out ? log_out : stderr;
    fprintf(f, "%s.%03d %-5s ", when, (int)(tv.tv_usec / 1000), qd_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&log_mu);
}
