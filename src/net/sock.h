/* Socket helpers: address parsing, listeners (SO_REUSEPORT), non-blocking connect, options.
 * Every socket is created non-blocking and close-on-exec. */
#ifndef AG_NET_SOCK_H
#define AG_NET_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct sock_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses "host:port", "[v6]:port" or ":port" (all interfaces) with a numeric host or "localhost".
 * Returns 0, or -1 with a message for people in <err>. */
int sock_parse_addr(const char *s, struct sock_addr *out, char *err, size_t errlen);
/* Resolves <host> and <port> (blocking getaddrinfo: call from a resolver thread or at start). */
int sock_resolve(const char *host, int port, struct sock_addr *out, char *err, size_t errlen);
/* "127.0.0.1:8080" / "[::1]:8080" into <out>. */
void sock_addr_format(const struct sock_addr *a, char *out, size_t outlen);
/* Port of <a>. */
int sock_addr_port(const struct sock_addr *a);
/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this host can connect. */
bool sock_addr_is_loopback(const struct sock_addr *a);

/* Creates a listening socket bound to <a>, with SO_REUSEADDR and, when <reuseport>, SO_REUSEPORT.
 * Returns the fd or -1 with a message in <err>. */
int sock_listen(const struct sock_addr *a, bool reuseport, int backlog, char *err, size_t errlen);
/* Starts a non-blocking connect to <a>; returns the fd (the connect may still be in progress:
 * wait for LOOP_WRITE then call sock_connect_result()) or -1 with errno. */
int sock_connect(const struct sock_addr *a);
/* 0 when the connect completed, or the errno that failed it. */
int sock_connect_result(int fd);
/* TCP_NODELAY on. */
void sock_set_nodelay(int fd);
/* Sets SO_LINGER to 0 so close() sends RST (abortive close of a broken upstream). */
void sock_set_linger0(int fd);

#endif
