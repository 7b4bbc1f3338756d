/* Error log: one line per event on stderr, plain text or JSON lines. The ag_log() macro checks the
 * level before formatting anything, so a disabled debug line costs one comparison. Per-request
 * facts go to the access log and to counters, not here. Thread-safe: each line is one write(2). */
#ifndef AG_CORE_LOG_H
#define AG_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { AG_LOG_DEBUG = 0, AG_LOG_INFO, AG_LOG_WARN, AG_LOG_ERROR, AG_LOG_FATAL };

extern enum log_level log_min_level;

/* Sets the lowest level written (default AG_LOG_INFO). */
void log_set_level(enum log_level level);
/* Parses "debug|info|warn|error"; returns -1 on anything else. */
int log_parse_level(const char *s, enum log_level *out);
/* JSON lines ({"ts":..,"level":..,"proc":..,"msg":..}) instead of text. */
void log_set_json(bool json);
/* Names the process in each line ("supervisor", "worker"); <name> must outlive the log. */
void log_set_proc(const char *name);
/* Writes one line; use the ag_log() macro instead. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ag_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= log_min_level)                                                              \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)

/* A limiter for messages that could repeat per request or per event (accept failing with EMFILE,
 * a full disk, Redis down): one struct per cause, zero-initialised (usually `static` at the call
 * site, or in the object the cause belongs to). Safe to share between threads. */
struct log_limit {
    _Atomic uint64_t _last_ms;
    _Atomic uint64_t _suppressed;
};
/* True at most once per <interval_ms> of <now_ms> (any monotonic ms); reports through
 * <suppressed> how many calls it swallowed since the last true. */
bool log_limit_ok(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint64_t *suppressed);

/* The hot error sites' logging: at most one line per cause (<lim>) per second; the line written
 * after a quiet spell ends with "(N similar lines suppressed)" when some were swallowed, so a burst
 * of 351 EMFILE errors is two lines, not 351. Checks the level first like ag_log(). */
#define LOG_LIMIT_INTERVAL_MS 1000
#define ag_log_limited(level, lim, ...)                                                            \
    do {                                                                                           \
        if ((level) >= log_min_level)                                                              \
            log_write_limited((level), (lim), __VA_ARGS__);                                        \
    } while (0)
void log_write_limited(enum log_level level, struct log_limit *lim, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
