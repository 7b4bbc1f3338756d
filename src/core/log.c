/* Error log to stderr: text or JSON lines, one write(2) per line. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"

enum log_level log_min_level = AG_LOG_INFO;
static bool log_json;
static const char *log_proc = "apigate";

static const char *const log_level_names[] = {"debug", "info", "warn", "error", "fatal"};

void log_set_level(enum log_level level) { log_min_level = level; }
void log_set_json(bool json) { log_json = json; }
void log_set_proc(const char *name) { log_proc = name; }

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= AG_LOG_ERROR; i++) {
        if (strcmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = AG_LOG_WARN;
        return 0;
    }
    return -1;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t mlen = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;

    uint64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));

    char line[2400];
    int w;
    if (log_json) {
        struct buf j = BUF_INIT;
        buf_append_json_str(&j, msg, mlen);
        w = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%d,\"msg\":%.*s}\n",
                     ts, log_level_names[level], log_proc, (int)getpid(), (int)j.len, j.data);
        buf_deinit(&j);
    } else {
        w = snprintf(line, sizeof(line), "%s %s[%d] %s: %.*s\n", ts, log_proc, (int)getpid(),
                     log_level_names[level], (int)mlen, msg);
    }
    if (w < 0)
        return;
    size_t len = (size_t)w < sizeof(line) ? (size_t)w : sizeof(line) - 1;
    if ((size_t)w >= sizeof(line))
        line[len - 1] = '\n';
    ssize_t r = write(STDERR_FILENO, line, len);
    (void)r;
}

bool log_limit_ok(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint64_t *suppressed)
{
    if (l->_last_ms != 0 && now_ms - l->_last_ms < interval_ms) {
        l->_suppressed++;
        return false;
    }
    l->_last_ms = now_ms ? now_ms : 1;
    if (suppressed != NULL)
        *suppressed = l->_suppressed;
    l->_suppressed = 0;
    return true;
}
