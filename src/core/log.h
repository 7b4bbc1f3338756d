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

/* A limiter for messages that could repeat per request ("redis down"): log_limit_ok() returns true
 * at most once per <interval_ms> and reports, through <suppressed>, how many calls it swallowed. */
struct log_limit {
    uint64_t _last_ms;
    uint64_t _suppressed;
};
bool log_limit_ok(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint64_t *suppressed);

#endif
