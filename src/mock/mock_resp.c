/* Response bytes of the mock: status line, Date, framing (Content-Length or chunks), route
 * headers, validators and the 304 decision. Pure formatting into a struct buf; the connection code
 * decides when the bytes go out. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/h1write.h"
#include "http/headers.h"
#include "mock/internal.h"

/* Formatted at most once per second per thread (nginx does the same): no lock, no per-request
 * strftime. */
const char *mock_thread_date(struct mock_thread *th)
{
    uint64_t sec = loop_now_ms(th->loop) / 1000;
    if (sec != th->date_sec) {
        th->date_sec = sec;
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(th->date, sizeof(th->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return th->date;
}

/* Appends a whole response. <r> may be NULL (admin, errors): no route headers then. <etag>:
 * the ETag to send or NULL. <body> is framed with Content-Length or, for chunked routes, chunks. */
void mock_resp_write(struct mock_thread *th, struct buf *dst, int status,
                     const struct mock_route *r, const char *ctype, const char *body, size_t blen,
                     const char *etag, const char *extra, bool keep_alive, int minor,
                     bool head_only)
{
    buf_reserve(dst, 256 + blen);
    buf_printf(dst, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: apigate-mock\r\n", status,
               h1_status_reason(status), mock_thread_date(th));
    bool no_body = status == 304 || status == 204 || (status >= 100 && status < 200);
    bool chunked = r && r->chunked && !no_body;
    if (!no_body || status == 304) {
        if (status != 304) {
            buf_printf(dst, "Content-Type: %s\r\n", ctype ? ctype : "application/json");
            if (chunked)
                buf_append_str(dst, "Transfer-Encoding: chunked\r\n");
            else
                buf_printf(dst, "Content-Length: %zu\r\n", blen);
        }
        if (r && r->cache_control)
            buf_printf(dst, "Cache-Control: %s\r\n", r->cache_control);
        if (etag)
            buf_printf(dst, "ETag: %s\r\n", etag);
        if (r && r->last_modified)
            buf_printf(dst, "Last-Modified: %s\r\n", mock_last_modified);
    }
    if (r)
        buf_append_str(dst, r->headers);
    if (extra)
        buf_append_str(dst, extra);
    if (!keep_alive)
        buf_append_str(dst, "Connection: close\r\n");
    else if (minor == 0)
        buf_append_str(dst, "Connection: keep-alive\r\n");
    buf_append_str(dst, "\r\n");
    if (no_body || head_only)
        return;
    if (!chunked) {
        buf_append(dst, body, blen);
        return;
    }
    /* a few chunks, so a client that mishandles chunk boundaries shows it */
    size_t step = blen > 3 ? (blen + 2) / 3 : blen;
    for (size_t off = 0; off < blen; off += step) {
        size_t n = blen - off < step ? blen - off : step;
        buf_printf(dst, "%zx\r\n", n);
        buf_append(dst, body + off, n);
        buf_append_str(dst, "\r\n");
    }
    buf_append_str(dst, "0\r\n\r\n");
}

/* Error answers: JSON body, no route headers. */
void mock_resp_error(struct mock_thread *th, struct buf *dst, int status, const char *msg,
                     bool keep_alive, int minor)
{
    struct buf body = BUF_INIT;
    mock_body_error(&body, msg);
    mock_resp_write(th, dst, status, NULL, NULL, buf_head(&body), buf_pending(&body), NULL, NULL,
                    keep_alive, minor, false);
    buf_deinit(&body);
}

/* True when If-None-Match lists <etag> (or "*"); weak comparison, as RFC 9110 §13.1.2 wants. */
static bool mock_resp__inm_match(const struct h1_header *inm, const char *etag)
{
    const char *v = inm->value, *end = inm->value + inm->value_len;
    size_t elen = strlen(etag);
    while (v < end) {
        while (v < end && (*v == ' ' || *v == ','))
            v++;
        const char *s = v;
        while (v < end && *v != ',')
            v++;
        const char *e = v;
        while (e > s && e[-1] == ' ')
            e--;
        if (e - s == 1 && *s == '*')
            return true;
        if (e - s >= 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if ((size_t)(e - s) == elen && memcmp(s, etag, elen) == 0)
            return true;
    }
    return false;
}

/* Should this GET/HEAD be answered 304? */
bool mock_resp_not_modified(const struct h1_request *req, const struct mock_route *r,
                            const char *etag)
{
    if (req->method_id != H1_M_GET && req->method_id != H1_M_HEAD)
        return false;
    const struct h1_header *inm = headers_find(req->headers, req->nheaders, "If-None-Match");
    if (inm)
        return etag && mock_resp__inm_match(inm, etag);
    const struct h1_header *ims = headers_find(req->headers, req->nheaders, "If-Modified-Since");
    if (ims && r->last_modified) {
        /* our Last-Modified is always the exact string we sent: compare by value and, failing
         * that, accept any later-looking date of the same format by comparing parsed times */
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        char tmp[64];
        size_t n = ims->value_len < sizeof(tmp) - 1 ? ims->value_len : sizeof(tmp) - 1;
        memcpy(tmp, ims->value, n);
        tmp[n] = '\0';
        char *end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end && *end == '\0')
            return (int64_t)timegm(&tm) >= mock_last_modified_s;
    }
    return false;
}
