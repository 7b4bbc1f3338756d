/* HTTP/1.1 serializer: request and response heads, chunk framing, status reasons. Writes into a
 * struct buf; never fails (buffers grow, callers bound sizes). */
#ifndef AG_HTTP_H1WRITE_H
#define AG_HTTP_H1WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/h1parse.h"

/* Standard reason phrase for <status> ("OK", "Not Found"), "Unknown" otherwise. */
const char *h1_status_reason(int status);
/* "HTTP/1.1 <status> <reason>\r\n". */
void h1_write_status_line(struct buf *b, int status, const char *reason);
/* "<name>: <value>\r\n". */
void h1_write_header(struct buf *b, const char *name, size_t name_len, const char *value,
                     size_t value_len);
void h1_write_header_str(struct buf *b, const char *name, const char *value);
void h1_write_header_u64(struct buf *b, const char *name, uint64_t value);
/* The request line of every request one of our clients sends (the proxy and the cache's refresh
 * through proxy_write_head, load, net/httpc): "<method> <path>[?<query>] HTTP/1.1\r\n".
 * <query> NULL: none (a <path> may carry its query itself). */
void h1_write_request_line(struct buf *b, const char *method, size_t method_len, const char *path,
                           size_t path_len, const char *query, size_t query_len);
/* "Host: <host>[:<port>]\r\n" for a server's address: an IPv6 literal (a ':' in <host>) in
 * brackets; the port left out when <port> is <= 0 or equals <default_port> (0: none is). */
void h1_write_host(struct buf *b, const char *host, size_t host_len, int port, int default_port);
/* Final "\r\n" of a head. */
void h1_write_end_head(struct buf *b);
/* One chunk: "<hex len>\r\n<data>\r\n"; <len> 0 writes the last chunk "0\r\n\r\n". */
void h1_write_chunk(struct buf *b, const void *data, size_t len);

#endif
