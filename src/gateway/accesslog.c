/* Access log batching: loop threads format lines into their own buffer (no lock), and hand full
 * or timed-out batches to a single logger thread under one mutex; the logger does the write(2).
 * If the disk stalls the pending buffer grows up to a cap, then lines are dropped and counted,
 * rather than blocking a loop thread. */
#include "gateway/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define ACCESSLOG_BATCH (32u * 1024u)          // a writer hands off at this size
#define ACCESSLOG_PENDING_MAX (16u << 20)      // beyond this the logger is behind: drop

struct accesslog {
    int fd;
    bool json;
    bool owns_fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct buf pending; // guarded by lock
    bool stop;          // guarded by lock
    uint64_t dropped;   // guarded by lock
};

struct accesslog_writer {
    struct accesslog *log;
    struct buf buf;
    size_t batch;     // hand-off size
    int64_t sec;      // second of the cached timestamp prefix
    char stamp[32];   // "2026-11-24T05:13:53" for <sec>
};

static void accesslog__write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            static struct log_limit write_lim; // a full disk fails every write
            ag_log_limited(AG_LOG_WARN, &write_lim, "access log write failed: %s",
                           strerror(errno));
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void *accesslog__thread(void *arg)
{
    struct accesslog *log = arg;
    struct buf local = BUF_INIT;
    pthread_mutex_lock(&log->lock);
    for (;;) {
        while (buf_pending(&log->pending) == 0 && !log->stop)
            pthread_cond_wait(&log->cond, &log->lock);
        bool stop = log->stop;
        struct buf tmp = log->pending; // swap: writers append to the emptied buffer meanwhile
        log->pending = local;
        local = tmp;
        pthread_mutex_unlock(&log->lock);
        if (buf_pending(&local) > 0)
            accesslog__write_all(log->fd, buf_head(&local), buf_pending(&local));
        buf_reset(&local);
        pthread_mutex_lock(&log->lock);
        if (stop && buf_pending(&log->pending) == 0)
            break;
    }
    pthread_mutex_unlock(&log->lock);
    buf_deinit(&local);
    return NULL;
}

struct accesslog *accesslog_create(const char *path, bool json, char *err, size_t errlen)
{
    struct accesslog *log = xcalloc(1, sizeof(*log));
    log->json = json;
    if (strcmp(path, "-") == 0 || strcmp(path, "stdout") == 0) {
        log->fd = STDOUT_FILENO;
    } else if (strcmp(path, "stderr") == 0) {
        log->fd = STDERR_FILENO;
    } else {
        log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log->fd == -1) {
            snprintf(err, errlen, "access log %s: %s", path, strerror(errno));
            free(log);
            return NULL;
        }
        log->owns_fd = true;
    }
    buf_init(&log->pending);
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->cond, NULL);
    if (pthread_create(&log->thread, NULL, accesslog__thread, log) != 0) {
        snprintf(err, errlen, "access log: cannot start the logger thread");
        pthread_mutex_destroy(&log->lock);
        pthread_cond_destroy(&log->cond);
        if (log->owns_fd)
            close(log->fd);
        free(log);
        return NULL;
    }
    return log;
}

void accesslog_destroy(struct accesslog *log)
{
    if (log == NULL)
        return;
    pthread_mutex_lock(&log->lock);
    log->stop = true;
    pthread_cond_signal(&log->cond);
    pthread_mutex_unlock(&log->lock);
    pthread_join(log->thread, NULL);
    if (log->dropped > 0)
        ag_log(AG_LOG_WARN, "access log: %llu lines dropped (disk too slow)",
               (unsigned long long)log->dropped);
    if (log->owns_fd)
        close(log->fd);
    log->fd = -1;
    buf_deinit(&log->pending);
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->cond);
    free(log);
}

struct accesslog_writer *accesslog_writer_create(struct accesslog *log)
{
    struct accesslog_writer *w = xcalloc(1, sizeof(*w));
    w->log = log;
    w->sec = -1;
    w->batch = ACCESSLOG_BATCH;
    buf_init(&w->buf);
    buf_reserve(&w->buf, ACCESSLOG_BATCH + 1024);
    return w;
}

void accesslog_writer_set_batch(struct accesslog_writer *w, size_t bytes) { w->batch = bytes; }

size_t accesslog_writer_pending(const struct accesslog_writer *w) { return buf_pending(&w->buf); }

void accesslog_flush(struct accesslog_writer *w)
{
    if (w == NULL || buf_pending(&w->buf) == 0)
        return;
    struct accesslog *log = w->log;
    pthread_mutex_lock(&log->lock);
    if (buf_pending(&log->pending) + buf_pending(&w->buf) <= ACCESSLOG_PENDING_MAX) {
        buf_append(&log->pending, buf_head(&w->buf), buf_pending(&w->buf));
    } else {
        /* count lines rather than block */
        const char *p = buf_head(&w->buf);
        for (size_t i = 0; i < buf_pending(&w->buf); i++)
            log->dropped += p[i] == '\n';
    }
    pthread_cond_signal(&log->cond);
    pthread_mutex_unlock(&log->lock);
    buf_reset(&w->buf);
}

void accesslog_writer_destroy(struct accesslog_writer *w)
{
    if (w == NULL)
        return;
    accesslog_flush(w);
    buf_deinit(&w->buf);
    free(w);
}

/* Appends <s> with the characters that would break a text line replaced (the target and the
 * request id come from the network). */
static void accesslog__append_text(struct buf *b, const char *s, size_t n)
{
    if (s == NULL || n == 0) {
        buf_append(b, "-", 1);
        return;
    }
    buf_reserve(b, n);
    char *out = buf_tail(b);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c <= ' ' || c == '"' || c == 0x7f) ? '_' : (char)c;
    }
    buf_commit(b, n);
}

/* Appends "name":"value" (or "name":null) to a JSON line. */
static void accesslog__json_field(struct buf *b, const char *name, const char *v, size_t n)
{
    buf_append_str(b, name);
    if (v != NULL)
        buf_append_json_str(b, v, n);
    else
        buf_append_str(b, "null");
}

static const char *accesslog__protocol(int minor)
{
    /* HTTP/2 as nginx's $server_protocol writes it, so one log parser reads both */
    return minor == 0 ? "HTTP/1.0" : minor == 1 ? "HTTP/1.1" : minor == 20 ? "HTTP/2.0" : NULL;
}

void accesslog_write(struct accesslog_writer *w, const struct accesslog_entry *e)
{
    struct buf *b = &w->buf;
    int64_t sec = (int64_t)(e->wall_ms / 1000);
    if (sec != w->sec) {
        /* gmtime_r once per second per thread, not per line */
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(w->stamp, sizeof(w->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        w->sec = sec;
    }
    unsigned ms = (unsigned)(e->wall_ms % 1000);
    const char *proto = accesslog__protocol(e->http_minor);
    if (w->log->json) {
        buf_printf(b, "{\"time\":\"%s.%03uZ\"", w->stamp, ms);
        accesslog__json_field(b, ",\"client\":", e->client, e->client ? strlen(e->client) : 0);
        accesslog__json_field(b, ",\"method\":", e->method, e->method_len);
        accesslog__json_field(b, ",\"path\":", e->target, e->target_len);
        accesslog__json_field(b, ",\"protocol\":", proto, proto ? strlen(proto) : 0);
        accesslog__json_field(b, ",\"host\":", e->host, e->host_len);
        buf_printf(b,
                   ",\"status\":%d,\"bytes\":%llu,\"total_ms\":%.3f,\"upstream_ms\":%.3f,"
                   "\"pool_wait_ms\":%.3f",
                   e->status, (unsigned long long)e->bytes, e->total_us / 1000.0,
                   e->upstream_us / 1000.0, e->pool_wait_us / 1000.0);
        accesslog__json_field(b, ",\"upstream\":", e->upstream,
                              e->upstream ? strlen(e->upstream) : 0);
        accesslog__json_field(b, ",\"request_id\":", e->request_id, e->request_id_len);
        accesslog__json_field(b, ",\"route\":", e->route, e->route ? strlen(e->route) : 0);
        accesslog__json_field(b, ",\"cache\":", e->cache, e->cache ? strlen(e->cache) : 0);
        accesslog__json_field(b, ",\"user_agent\":", e->user_agent, e->user_agent_len);
        if (e->upstream_ttfb_us > 0)
            buf_printf(b, ",\"upstream_ttfb_ms\":%.3f", e->upstream_ttfb_us / 1000.0);
        if (e->connect_us > 0)
            buf_printf(b, ",\"connect_ms\":%.3f", e->connect_us / 1000.0);
        if (e->trace_id != NULL) {
            buf_append_str(b, ",\"trace_id\":");
            buf_append_json_str(b, e->trace_id, e->trace_id_len);
        }
        buf_append_str(b, "}\n");
    } else {
        /* every field always present ("-" when empty), so positions never shift */
        buf_printf(b, "%s.%03uZ ", w->stamp, ms);
        accesslog__append_text(b, e->method, e->method_len);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->target, e->target_len);
        buf_printf(b, " %d %llu %.3f %.3f %.3f ", e->status, (unsigned long long)e->bytes,
                   e->total_us / 1000.0, e->upstream_us / 1000.0, e->pool_wait_us / 1000.0);
        accesslog__append_text(b, e->upstream, e->upstream ? strlen(e->upstream) : 0);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->request_id, e->request_id_len);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->trace_id, e->trace_id_len);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->client, e->client ? strlen(e->client) : 0);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->host, e->host_len);
        buf_append(b, " ", 1);
        accesslog__append_text(b, proto, proto ? strlen(proto) : 0);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->cache, e->cache ? strlen(e->cache) : 0);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->route, e->route ? strlen(e->route) : 0);
        buf_append(b, " ", 1);
        accesslog__append_text(b, e->user_agent, e->user_agent_len);
        buf_append(b, "\n", 1);
    }
    if (buf_pending(b) >= w->batch)
        accesslog_flush(w);
}
