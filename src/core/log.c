/* Error log to stderr: text or JSON lines, one write(2) per line. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"

enum log_level log_min_level = AG_LOG_INFO;
static bool log_json;
static const char *log_proc = "apigate";

#define LOG_MSG_MAX 2048 /* longer messages are cut: an error line, not a dump */

static const char *const log_level_names[] = {"debug", "info", "warn", "error", "fatal"};

void log_set_level(enum log_level level) { log_min_level = level; }
void log_set_json(bool json) { log_json = json; }
void log_set_proc(const char *name) { log_proc = name ? name : "apigate"; }

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

/* Text lines stay one line per event: a message carrying a newline (a header value, say) must not
 * forge a second log line, so control characters are written as escapes. */
static void log__append_text(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c < 0x20 && c != '\t') {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 4);
        } else {
            buf_append(b, s + i, 1);
        }
    }
}

static void log__vwrite(enum log_level level, uint64_t suppressed, const char *fmt, va_list ap)
{
    char msg[LOG_MSG_MAX];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    size_t mlen = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    if (suppressed > 0) {
        int k = snprintf(msg + mlen, sizeof(msg) - mlen, " (%llu similar lines suppressed)",
                         (unsigned long long)suppressed);
        if (k > 0)
            mlen += (size_t)k < sizeof(msg) - mlen ? (size_t)k : sizeof(msg) - mlen - 1;
    }
    if ((unsigned)level > AG_LOG_FATAL)
        level = AG_LOG_FATAL;

    uint64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));

    /* The whole line is built first and written with one write(2), so lines of concurrent
     * threads and processes do not interleave (pipes keep writes up to PIPE_BUF whole). A long
     * message is cut, never the JSON around it. */
    struct buf line = BUF_INIT;
    if (log_json) {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":", ts,
                   log_level_names[level]);
        buf_append_json_str(&line, log_proc, strlen(log_proc));
        buf_printf(&line, ",\"pid\":%d,\"msg\":", (int)getpid());
        buf_append_json_str(&line, msg, mlen);
        buf_append(&line, "}\n", 2);
    } else {
        buf_printf(&line, "%s %s[%d] %s: ", ts, log_proc, (int)getpid(), log_level_names[level]);
        log__append_text(&line, msg, mlen);
        buf_append(&line, "\n", 1);
    }
    size_t off = 0;
    while (off < line.len) {
        ssize_t r = write(STDERR_FILENO, line.data + off, line.len - off);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* stderr closed or full: nothing better to do with a log line */
        off += (size_t)r;
    }
    buf_deinit(&line);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log__vwrite(level, 0, fmt, ap);
    va_end(ap);
}

void log_write_limited(enum log_level level, struct log_limit *lim, const char *fmt, ...)
{
    uint64_t suppressed = 0;
    if (!log_limit_ok(lim, clock_now_ms(), LOG_LIMIT_INTERVAL_MS, &suppressed))
        return;
    va_list ap;
    va_start(ap, fmt);
    log__vwrite(level, suppressed, fmt, ap);
    va_end(ap);
}

bool log_limit_ok(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint64_t *suppressed)
{
    uint64_t last = atomic_load_explicit(&l->_last_ms, memory_order_relaxed);
    /* one thread wins the slot for this interval; the others count as suppressed */
    if ((last != 0 && now_ms - last < interval_ms) ||
        !atomic_compare_exchange_strong(&l->_last_ms, &last, now_ms ? now_ms : 1)) {
        atomic_fetch_add_explicit(&l->_suppressed, 1, memory_order_relaxed);
        return false;
    }
    uint64_t n = atomic_exchange_explicit(&l->_suppressed, 0, memory_order_relaxed);
    if (suppressed != NULL)
        *suppressed = n;
    return true;
}
