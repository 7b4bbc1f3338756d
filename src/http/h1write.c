/* HTTP/1.1 head and chunk serializer into struct buf. No printf on this path: responses are
 * written per request at 100k+/s, so numbers are formatted by hand and each write reserves once.
 * It trusts its callers to pass valid names and values (they come from our parser or our code). */
#include "http/h1write.h"

#include <stdbool.h>
#include <string.h>

const char *h1_status_reason(int status)
{
    switch (status) {
    /* RFC 9110 §15 plus the registered extras an API gateway meets */
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

/* Decimal digits of <v> written backwards ending just before <end> (up to 20 bytes); returns
 * the first digit. */
static char *u64_dec(uint64_t v, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

void h1_write_status_line(struct buf *b, int status, const char *reason)
{
    if (!reason)
        reason = h1_status_reason(status);
    size_t rl = strlen(reason);
    buf_reserve(b, 9 + 4 + rl + 2);
    char *p = buf_tail(b);
    memcpy(p, "HTTP/1.1 ", 9);
    p += 9;
    /* status is 100..999 for anything we send; clamp garbage rather than write 4 digits */
    if (status < 100 || status > 999)
        status = 500;
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    memcpy(p, reason, rl);
    p += rl;
    *p++ = '\r';
    *p++ = '\n';
    buf_commit(b, (size_t)(p - buf_tail(b)));
}

void h1_write_header(struct buf *b, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    buf_reserve(b, name_len + 2 + value_len + 2);
    char *p = buf_tail(b);
    memcpy(p, name, name_len);
    p += name_len;
    *p++ = ':';
    *p++ = ' ';
    if (value_len)
        memcpy(p, value, value_len);
    p += value_len;
    *p++ = '\r';
    *p++ = '\n';
    buf_commit(b, (size_t)(p - buf_tail(b)));
}

void h1_write_header_str(struct buf *b, const char *name, const char *value)
{
    h1_write_header(b, name, strlen(name), value, strlen(value));
}

void h1_write_header_u64(struct buf *b, const char *name, uint64_t value)
{
    char tmp[20];
    char *end = tmp + sizeof(tmp);
    char *d = u64_dec(value, end);
    h1_write_header(b, name, strlen(name), d, (size_t)(end - d));
}

void h1_write_request_line(struct buf *b, const char *method, size_t method_len, const char *path,
                           size_t path_len, const char *query, size_t query_len)
{
    bool q = query != NULL;
    buf_reserve(b, method_len + 1 + path_len + (q ? 1 + query_len : 0) + 11);
    char *p = buf_tail(b);
    memcpy(p, method, method_len);
    p += method_len;
    *p++ = ' ';
    if (path_len)
        memcpy(p, path, path_len);
    p += path_len;
    if (q) {
        *p++ = '?';
        if (query_len)
            memcpy(p, query, query_len);
        p += query_len;
    }
    memcpy(p, " HTTP/1.1\r\n", 11);
    p += 11;
    buf_commit(b, (size_t)(p - buf_tail(b)));
}

void h1_write_host(struct buf *b, const char *host, size_t host_len, int port, int default_port)
{
    bool v6 = memchr(host, ':', host_len) != NULL;
    buf_reserve(b, host_len + 32); // "Host: ", brackets, ':' and up to 10 digits, CRLF
    char *p = buf_tail(b);
    memcpy(p, "Host: ", 6);
    p += 6;
    if (v6)
        *p++ = '[';
    memcpy(p, host, host_len);
    p += host_len;
    if (v6)
        *p++ = ']';
    if (port > 0 && port != default_port) {
        char tmp[20];
        char *end = tmp + sizeof(tmp);
        char *d = u64_dec((uint64_t)port, end);
        *p++ = ':';
        memcpy(p, d, (size_t)(end - d));
        p += end - d;
    }
    *p++ = '\r';
    *p++ = '\n';
    buf_commit(b, (size_t)(p - buf_tail(b)));
}

void h1_write_end_head(struct buf *b) { buf_append(b, "\r\n", 2); }

void h1_write_chunk(struct buf *b, const void *data, size_t len)
{
    if (len == 0) {
        buf_append(b, "0\r\n\r\n", 5);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    for (size_t v = len; v; v >>= 4)
        tmp[15 - n++] = hex[v & 15];
    buf_reserve(b, (size_t)n + 2 + len + 2);
    char *p = buf_tail(b);
    memcpy(p, tmp + 16 - n, (size_t)n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, data, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    buf_commit(b, (size_t)(p - buf_tail(b)));
}
