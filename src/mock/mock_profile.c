/* Mock profiles: the YAML (or JSON) description of the simulated API — routes, latency, DB pool,
 * cold start, stall — parsed into an immutable struct mock_profile with every error reported as
 * "file:line:col: key: what is wrong; what is allowed". Hand-written over the ynode tree rather
 * than cfg.h tables because the format needs free-form maps (headers), fractional parameters
 * (sigma, alpha) and a latency key that is either a scalar or a map. Also owns the built-in
 * default profile (the seed) and precomputes constant responses. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/units.h"
#include "config/yaml.h"
#include "core/xmalloc.h"
#include "http/h1write.h"
#include "mock/internal.h"

/* The seed: an API whose DB requests take 40 ms on a pool of 10 connections. Under 200 users the
 * queue pushes p95 toward 800 ms and the queue timeout turns the excess into 503s. */
const char mock_profile_default_yaml[] =
    "# apigate mock built-in profile: the seed API (40 ms DB requests, pool of 10)\n"
    "global:\n"
    "  db_pool: {size: 10, service: {dist: fixed, ms: 40}, queue_timeout: 720ms}\n"
    "routes:\n"
    "  - {method: GET, path: '/api/users/{id}', handler: user, db: true, body_size: 1KB}\n"
    "  - {method: PUT, path: '/api/users/{id}', handler: user, db: true}\n"
    "  - {method: DELETE, path: '/api/users/{id}', handler: user, db: true}\n"
    "  - {method: GET, path: /api/orders, handler: orders, db: true, body_size: 2KB}\n"
    "  - {method: GET, path: /api/catalog/products, handler: products, db: true, body_size: 4KB,\n"
    "     cache_control: 'public, max-age=60', etag: true, last_modified: true}\n"
    "  - {method: GET, path: /api/catalog/search, handler: search, db: true, body_size: 2KB}\n"
    "  - {method: POST, path: /api/auth/login, handler: login, db: true}\n"
    "  - {method: GET, path: /api/auth/me, handler: me, db: true, body_size: 512}\n"
    "  - {method: GET, path: /api/health, handler: health}\n"
    "  - {method: ANY, path: /echo, handler: echo}\n"
    "  - {method: ANY, path: '/echo/*', handler: echo}\n";

/* One parse: every error is collected ("one run reports every error"), none stops the parse. */
struct mock_pctx {
    const char *file;
    struct buf *err;
    int nerr;
};

/* Adds "file:line:col: key: message" at <n>'s position (the file alone when <n> is NULL). */
static void mock_profile__err(struct mock_pctx *c, const struct ynode *n, const char *key,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void mock_profile__err(struct mock_pctx *c, const struct ynode *n, const char *key,
                              const char *fmt, ...)
{
    if (n)
        buf_printf(c->err, "%s:%d:%d: ", n->file ? n->file : c->file, n->line, n->col);
    else
        buf_printf(c->err, "%s: ", c->file);
    if (key)
        buf_printf(c->err, "%s: ", key);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(c->err, fmt, ap);
    va_end(ap);
    buf_append_str(c->err, "\n");
    c->nerr++;
}

/* A scalar's text, or NULL with an error. */
static const char *mock_profile__scalar(struct mock_pctx *c, const struct ynode *n, const char *key)
{
    if (n->type != YNODE_SCALAR) {
        mock_profile__err(c, n, key, "expected a value, got a %s", ynode_type_name(n));
        return NULL;
    }
    return n->str;
}

/* YAML 1.1 booleans as people write them; anything else is an error, not false. */
static int mock_profile__bool(struct mock_pctx *c, const struct ynode *n, const char *key,
                              bool *out)
{
    const char *s = mock_profile__scalar(c, n, key);
    if (!s)
        return -1;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0) {
        *out = false;
        return 0;
    }
    mock_profile__err(c, n, key, "'%s' is not a boolean; use true or false", s);
    return -1;
}

/* A decimal integer in [min, max]; a sign, a fraction or trailing text is an error. */
static int mock_profile__uint(struct mock_pctx *c, const struct ynode *n, const char *key,
                              uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = mock_profile__scalar(c, n, key);
    if (!s)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < min || v > max) {
        mock_profile__err(c, n, key, "'%s' is not an integer in %llu..%llu", s,
                          (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

/* A finite number in [min, max] (sigma, alpha). */
static int mock_profile__double(struct mock_pctx *c, const struct ynode *n, const char *key,
                                double min, double max, double *out)
{
    const char *s = mock_profile__scalar(c, n, key);
    if (!s)
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || v < min || v > max) {
        mock_profile__err(c, n, key, "'%s' is not a number in %g..%g", s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* A duration in ms: "250ms", "1.5s"; <bare_ms>: a bare number means milliseconds (inside
 * latency maps, where keys say "ms"), otherwise seconds as everywhere in apigate. */
static int mock_profile__duration(struct mock_pctx *c, const struct ynode *n, const char *key,
                                  bool bare_ms, double *out_ms)
{
    const char *s = mock_profile__scalar(c, n, key);
    if (!s)
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (bare_ms && *s && !*end && isfinite(v) && v >= 0) {
        *out_ms = v;
    } else {
        uint64_t us;
        if (units_parse_duration_us(s, &us) != 0) {
            mock_profile__err(c, n, key, "'%s' is not a duration; use e.g. 40ms, 1.5s, 2m%s", s,
                              bare_ms ? " (a bare number is milliseconds)" : "");
            return -1;
        }
        *out_ms = (double)us / 1000.0;
    }
    if (*out_ms > 3600e3) {
        mock_profile__err(c, n, key, "'%s' is over 1h", s);
        return -1;
    }
    return 0;
}

/* A duration in whole milliseconds (rounded up) for timers: a bare number is seconds here. */
static int mock_profile__duration_u64(struct mock_pctx *c, const struct ynode *n, const char *key,
                                      uint64_t *out)
{
    double ms;
    if (mock_profile__duration(c, n, key, false, &ms) != 0)
        return -1;
    *out = (uint64_t)ceil(ms);
    return 0;
}

/* A size ("512", "1KB", "2MB") up to <max> bytes. */
static int mock_profile__size(struct mock_pctx *c, const struct ynode *n, const char *key,
                              uint64_t max, uint64_t *out)
{
    const char *s = mock_profile__scalar(c, n, key);
    if (!s)
        return -1;
    if (units_parse_size(s, out) != 0 || *out > max) {
        mock_profile__err(c, n, key, "'%s' is not a size up to %llu bytes; use e.g. 512, 1KB, 2MB",
                          s, (unsigned long long)max);
        return -1;
    }
    return 0;
}

/* Checks that <map> is a map whose keys are all in the NULL-terminated <known>. */
static int mock_profile__keys(struct mock_pctx *c, const struct ynode *map, const char *what,
                              const char *const *known)
{
    if (map->type != YNODE_MAP) {
        mock_profile__err(c, map, what, "expected a map, got a %s", ynode_type_name(map));
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < ynode_size(map); i++) {
        const struct ynode *k = ynode_key(map, i);
        bool ok = false;
        for (size_t j = 0; known[j]; j++)
            ok = ok || (k->type == YNODE_SCALAR && strcmp(k->str, known[j]) == 0);
        if (ok)
            continue;
        char list[512] = "";
        for (size_t j = 0; known[j]; j++) {
            strncat(list, j ? ", " : "", sizeof(list) - strlen(list) - 1);
            strncat(list, known[j], sizeof(list) - strlen(list) - 1);
        }
        mock_profile__err(c, k, what, "unknown key '%s'; known: %s",
                          k->type == YNODE_SCALAR ? k->str : "?", list);
        bad = -1;
    }
    return bad;
}

static const char *const mock_latency_keys[] = {"dist",   "ms",    "min",   "max", "mean", "stddev",
                                                "median", "sigma", "alpha", "cap", NULL};

/* latency: "20ms" (fixed) or {dist: …, parameters…}. The distribution is inferred from the
 * parameters when dist is absent. */
static int mock_profile__latency(struct mock_pctx *c, const struct ynode *n, const char *key,
                                 struct mock_latency *l)
{
    memset(l, 0, sizeof(*l));
    int before = c->nerr;
    if (n->type == YNODE_SCALAR) {
        if (mock_profile__duration(c, n, key, true, &l->ms) != 0)
            return -1;
        l->dist = l->ms > 0 ? MOCK_DIST_FIXED : MOCK_DIST_NONE;
        return 0;
    }
    if (mock_profile__keys(c, n, key, mock_latency_keys) != 0)
        return -1;
    const struct ynode *v;
    bool has[16] = {false};
    double *fields[] = {NULL, &l->ms, &l->min, &l->max, &l->mean, &l->stddev, &l->median};
    for (size_t i = 1; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if ((v = ynode_get(n, mock_latency_keys[i])) != NULL) {
            has[i] = true;
            mock_profile__duration(c, v, mock_latency_keys[i], true, fields[i]);
        }
    }
    if ((v = ynode_get(n, "sigma")) != NULL) {
        has[7] = true;
        mock_profile__double(c, v, "sigma", 0, 10, &l->sigma);
    }
    if ((v = ynode_get(n, "alpha")) != NULL) {
        has[8] = true;
        mock_profile__double(c, v, "alpha", 0.01, 100, &l->alpha);
    }
    if ((v = ynode_get(n, "cap")) != NULL)
        mock_profile__duration(c, v, "cap", true, &l->cap);
    if ((v = ynode_get(n, "dist")) != NULL) {
        const char *s = mock_profile__scalar(c, v, "dist");
        if (s && mock_dist_parse(s, &l->dist) != 0)
            mock_profile__err(c, v, "dist",
                              "unknown distribution '%s'; use fixed, uniform, "
                              "normal, lognormal or pareto",
                              s);
    } else if (has[8]) {
        l->dist = MOCK_DIST_PARETO;
    } else if (has[6]) {
        l->dist = MOCK_DIST_LOGNORMAL;
    } else if (has[4]) {
        l->dist = MOCK_DIST_NORMAL;
    } else if (has[2] && has[3]) {
        l->dist = MOCK_DIST_UNIFORM;
    } else {
        l->dist = MOCK_DIST_FIXED;
    }
    if (c->nerr != before)
        return -1;
    /* each distribution names what it needs */
    switch (l->dist) {
    case MOCK_DIST_NONE:
        break;
    case MOCK_DIST_FIXED:
        if (!has[1])
            mock_profile__err(c, n, key, "fixed latency needs 'ms'");
        break;
    case MOCK_DIST_UNIFORM:
        if (!has[2] || !has[3] || l->min > l->max)
            mock_profile__err(c, n, key, "uniform latency needs 'min' <= 'max'");
        break;
    case MOCK_DIST_NORMAL:
        if (!has[4] || !has[5])
            mock_profile__err(c, n, key, "normal latency needs 'mean' and 'stddev'");
        break;
    case MOCK_DIST_LOGNORMAL:
        if (!has[6] || !has[7] || l->median <= 0)
            mock_profile__err(c, n, key, "lognormal latency needs 'median' > 0 and 'sigma'");
        break;
    case MOCK_DIST_PARETO:
        if (!has[2] || !has[8] || l->min <= 0)
            mock_profile__err(c, n, key, "pareto latency needs 'min' > 0 (the scale) and 'alpha'");
        if (l->cap == 0)
            l->cap = 60e3; /* a heavy tail can draw hours; a mock that hangs should say hang: */
        break;
    }
    return c->nerr != before ? -1 : 0;
}

static const char *const mock_handler_names[] = {"json",     "static", "user",    "orders",
                                                 "products", "search", "login",   "me",
                                                 "echo",     "health", "counter", NULL};

static const char *const mock_route_keys[] = {
    "name",    "method",        "path",         "handler",
    "status",  "body",          "content_type", "latency",
    "db",      "error_rate",    "error_status", "body_size",
    "headers", "cache_control", "etag",         "last_modified",
    "chunked", "close",         "hang",         NULL};

/* An RFC 9110 token: what a method or a header name may be. */
static bool mock_profile__token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s))
            return false;
    }
    return true;
}

/* No CR, LF or other control bytes: a profile cannot inject header lines. */
static bool mock_profile__header_value(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < ' ' && *s != '\t')
            return false;
        if (*s == 127)
            return false;
    }
    return true;
}

/* Fills <r> from the route map <n>: defaults first, then each key, each checked where it is. */
static void mock_profile__route(struct mock_pctx *c, const struct ynode *n, struct mock_route *r)
{
    r->status = 200;
    r->error_status = 500;
    r->content_type = xstrdup("application/json");
    r->method = xstrdup("GET");
    r->headers = xstrdup("");
    if (mock_profile__keys(c, n, "route", mock_route_keys) != 0)
        return;
    const struct ynode *v;
    const char *s;
    if ((v = ynode_get(n, "method")) != NULL && (s = mock_profile__scalar(c, v, "method"))) {
        if (!mock_profile__token(s)) {
            mock_profile__err(c, v, "method",
                              "'%s' is not a method token; use GET, POST, … or "
                              "ANY",
                              s);
        } else {
            free(r->method);
            /* methods are case-sensitive on the wire, but "post" in a profile means POST */
            r->method = xstrdup(strcmp(s, "*") == 0 ? "ANY" : s);
            for (char *m = r->method; *m; m++)
                if (*m >= 'a' && *m <= 'z')
                    *m = (char)(*m - 32);
        }
    }
    if ((v = ynode_get(n, "path")) == NULL) {
        mock_profile__err(c, n, "route", "missing 'path' (e.g. /api/users/{id})");
    } else if ((s = mock_profile__scalar(c, v, "path")) != NULL) {
        char perr[128];
        if (mock_pattern_compile(&r->pattern, s, perr, sizeof(perr)) != 0)
            mock_profile__err(c, v, "path", "'%s': %s", s, perr);
    }
    if ((v = ynode_get(n, "name")) != NULL && (s = mock_profile__scalar(c, v, "name")))
        r->name = xstrdup(s);
    if ((v = ynode_get(n, "handler")) != NULL && (s = mock_profile__scalar(c, v, "handler"))) {
        size_t i = 0;
        while (mock_handler_names[i] && strcmp(mock_handler_names[i], s) != 0)
            i++;
        if (mock_handler_names[i])
            r->handler = (enum mock_handler)i;
        else
            mock_profile__err(c, v, "handler",
                              "unknown handler '%s'; use json, static, user, "
                              "orders, products, search, login, me, echo, "
                              "health or counter",
                              s);
    }
    uint64_t u;
    if ((v = ynode_get(n, "status")) != NULL &&
        mock_profile__uint(c, v, "status", 200, 599, &u) == 0)
        r->status = (int)u;
    if ((v = ynode_get(n, "error_status")) != NULL &&
        mock_profile__uint(c, v, "error_status", 400, 599, &u) == 0)
        r->error_status = (int)u;
    if ((v = ynode_get(n, "body")) != NULL && (s = mock_profile__scalar(c, v, "body"))) {
        r->body = xstrdup(s);
        if (!ynode_get(n, "handler"))
            r->handler = MOCK_H_STATIC;
    }
    if (r->handler == MOCK_H_STATIC && !r->body)
        r->body = xstrdup("{}");
    if ((v = ynode_get(n, "content_type")) != NULL &&
        (s = mock_profile__scalar(c, v, "content_type"))) {
        if (!mock_profile__header_value(s)) {
            mock_profile__err(c, v, "content_type", "control characters are not allowed");
        } else {
            free(r->content_type);
            r->content_type = xstrdup(s);
        }
    }
    if ((v = ynode_get(n, "latency")) != NULL)
        mock_profile__latency(c, v, "latency", &r->latency);
    if ((v = ynode_get(n, "db")) != NULL)
        mock_profile__bool(c, v, "db", &r->db);
    if ((v = ynode_get(n, "error_rate")) != NULL &&
        (s = mock_profile__scalar(c, v, "error_rate"))) {
        if (units_parse_percent(s, &r->error_rate) != 0 || r->error_rate < 0 || r->error_rate > 1)
            mock_profile__err(c, v, "error_rate", "'%s' is not a fraction; use 0..1 or 0%%..100%%",
                              s);
    }
    if ((v = ynode_get(n, "body_size")) != NULL)
        mock_profile__size(c, v, "body_size", 64ull << 20, &r->body_size);
    if ((v = ynode_get(n, "cache_control")) != NULL &&
        (s = mock_profile__scalar(c, v, "cache_control"))) {
        if (!mock_profile__header_value(s))
            mock_profile__err(c, v, "cache_control", "control characters are not allowed");
        else
            r->cache_control = xstrdup(s);
    }
    if ((v = ynode_get(n, "headers")) != NULL) {
        if (v->type != YNODE_MAP) {
            mock_profile__err(c, v, "headers", "expected a map of header names to values");
        } else {
            struct buf h = BUF_INIT;
            for (size_t i = 0; i < ynode_size(v); i++) {
                const struct ynode *k = ynode_key(v, i), *val = ynode_value(v, i);
                const char *ks = mock_profile__scalar(c, k, "headers");
                const char *vs = mock_profile__scalar(c, val, "headers");
                if (!ks || !vs)
                    continue;
                if (!mock_profile__token(ks))
                    mock_profile__err(c, k, "headers", "'%s' is not a header name", ks);
                else if (strcasecmp(ks, "Content-Length") == 0 ||
                         strcasecmp(ks, "Transfer-Encoding") == 0)
                    /* The mock frames every answer itself; a second length made it ambiguous. */
                    mock_profile__err(c, k, "headers", "%s is written by the mock; use body_size "
                                      "or chunked: true", ks);
                else if (!mock_profile__header_value(vs))
                    mock_profile__err(c, val, ks, "control characters are not allowed");
                else
                    buf_printf(&h, "%s: %s\r\n", ks, vs);
            }
            buf_append(&h, "", 1);
            free(r->headers);
            r->headers = xstrdup(h.data);
            buf_deinit(&h);
        }
    }
    bool *flags[] = {&r->etag, &r->last_modified, &r->chunked, &r->close, &r->hang};
    const char *flag_keys[] = {"etag", "last_modified", "chunked", "close", "hang"};
    for (size_t i = 0; i < 5; i++) {
        if ((v = ynode_get(n, flag_keys[i])) != NULL)
            mock_profile__bool(c, v, flag_keys[i], flags[i]);
    }
    if (!r->name && r->pattern.text) {
        size_t len = strlen(r->method) + strlen(r->pattern.text) + 2;
        r->name = xmalloc(len);
        snprintf(r->name, len, "%s %s", r->method, r->pattern.text);
    }
}

static const char *const mock_global_keys[] = {"db_pool",  "cold_start",        "stall",
                                               "max_body", "keepalive_timeout", NULL};
static const char *const mock_pool_keys[] = {"size", "service", "queue_timeout", "queue_limit",
                                             NULL};
static const char *const mock_cold_keys[] = {"idle", "extra", NULL};
static const char *const mock_stall_keys[] = {"every", "for", NULL};

/* global: db_pool, cold_start, stall, keepalive_timeout, max_body. */
static void mock_profile__global(struct mock_pctx *c, const struct ynode *n, struct mock_profile *p)
{
    if (mock_profile__keys(c, n, "global", mock_global_keys) != 0)
        return;
    const struct ynode *s, *v;
    if ((s = ynode_get(n, "db_pool")) != NULL &&
        mock_profile__keys(c, s, "db_pool", mock_pool_keys) == 0) {
        if ((v = ynode_get(s, "size")) != NULL)
            mock_profile__uint(c, v, "size", 1, 100000, &p->pool_conf.size);
        else
            mock_profile__err(c, s, "db_pool", "missing 'size'");
        if ((v = ynode_get(s, "service")) != NULL)
            mock_profile__latency(c, v, "service", &p->pool_conf.service);
        if ((v = ynode_get(s, "queue_timeout")) != NULL)
            mock_profile__duration_u64(c, v, "queue_timeout", &p->pool_conf.queue_timeout_ms);
        if ((v = ynode_get(s, "queue_limit")) != NULL)
            mock_profile__uint(c, v, "queue_limit", 0, 10000000, &p->pool_conf.queue_limit);
    }
    if ((s = ynode_get(n, "cold_start")) != NULL &&
        mock_profile__keys(c, s, "cold_start", mock_cold_keys) == 0) {
        if ((v = ynode_get(s, "idle")) != NULL)
            mock_profile__duration_u64(c, v, "idle", &p->cold_idle_ms);
        if ((v = ynode_get(s, "extra")) != NULL)
            mock_profile__duration_u64(c, v, "extra", &p->cold_extra_ms);
        if (!p->cold_idle_ms || !p->cold_extra_ms)
            mock_profile__err(c, s, "cold_start", "needs 'idle' and 'extra' durations > 0");
    }
    if ((s = ynode_get(n, "stall")) != NULL &&
        mock_profile__keys(c, s, "stall", mock_stall_keys) == 0) {
        if ((v = ynode_get(s, "every")) != NULL)
            mock_profile__duration_u64(c, v, "every", &p->stall_every_ms);
        if ((v = ynode_get(s, "for")) != NULL)
            mock_profile__duration_u64(c, v, "for", &p->stall_for_ms);
        if (!p->stall_every_ms || !p->stall_for_ms || p->stall_for_ms >= p->stall_every_ms)
            mock_profile__err(c, s, "stall",
                              "needs 'every' > 'for' > 0 (e.g. {every: 5s, for: "
                              "1s})");
    }
    if ((v = ynode_get(n, "keepalive_timeout")) != NULL)
        mock_profile__duration_u64(c, v, "keepalive_timeout", &p->keepalive_timeout_ms);
    if ((v = ynode_get(n, "max_body")) != NULL)
        mock_profile__size(c, v, "max_body", 1ull << 30, &p->max_body);
}

/* Frees the routes and what they own (also of a profile that failed to parse). */
static void mock_profile__free_routes(struct mock_profile *p)
{
    for (size_t i = 0; i < p->nroutes; i++) {
        struct mock_route *r = &p->routes[i];
        free(r->name);
        free(r->method);
        mock_pattern_free(&r->pattern);
        free(r->body);
        free(r->content_type);
        free(r->headers);
        free(r->cache_control);
        free(r->pre);
        free((void *)r->built);
    }
    free(p->routes);
    p->routes = NULL;
    p->nroutes = 0;
}

/* Routes whose answer never depends on the request get their bytes (after the Date line) built
 * once: the hot path is then a memcpy, as nginx's `return 200`. */
static void mock_profile__precompute(struct mock_route *r)
{
    if (r->handler != MOCK_H_STATIC && r->handler != MOCK_H_HEALTH && r->handler != MOCK_H_PRODUCTS)
        return;
    if (r->chunked || r->close || r->hang)
        return;
    struct mock_reqinfo ri = {0};
    struct buf body = BUF_INIT, out = BUF_INIT;
    mock_body_build(r, &ri, &body);
    buf_printf(&out, "Server: apigate-mock\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
               r->content_type, buf_pending(&body));
    if (r->cache_control)
        buf_printf(&out, "Cache-Control: %s\r\n", r->cache_control);
    if (r->etag) {
        mock_body_etag(buf_head(&body), buf_pending(&body), r->pre_etag);
        buf_printf(&out, "ETag: %s\r\n", r->pre_etag);
    }
    if (r->last_modified)
        buf_printf(&out, "Last-Modified: %s\r\n", mock_last_modified);
    buf_append_str(&out, r->headers);
    buf_append_str(&out, "\r\n");
    buf_append(&out, buf_head(&body), buf_pending(&body));
    r->pre_len = buf_pending(&out);
    r->pre = xmalloc(r->pre_len);
    memcpy(r->pre, buf_head(&out), r->pre_len);
    buf_deinit(&body);
    buf_deinit(&out);
}

static const char *const mock_top_keys[] = {"global", "routes", NULL};

struct mock_profile *mock_profile_parse(const char *text, size_t len, const char *name,
                                        size_t nthreads, struct buf *err)
{
    char yerr[512];
    struct ynode *root = yaml_load_string(text, len, name, yerr, sizeof(yerr));
    if (!root) {
        buf_printf(err, "%s\n", yerr);
        return NULL;
    }
    struct mock_pctx c = {name, err, 0};
    struct mock_profile *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    p->max_body = 1 << 20;
    p->pool_conf.service.dist = MOCK_DIST_NONE;
    if (mock_profile__keys(&c, root, "profile", mock_top_keys) == 0) {
        const struct ynode *g = ynode_get(root, "global");
        if (g)
            mock_profile__global(&c, g, p);
        const struct ynode *rs = ynode_get(root, "routes");
        if (!rs) {
            mock_profile__err(&c, root, "routes", "missing: a profile needs a list of routes");
        } else if (rs->type != YNODE_SEQ) {
            mock_profile__err(&c, rs, "routes", "expected a list, got a %s", ynode_type_name(rs));
        } else {
            p->nroutes = ynode_size(rs);
            p->routes = xcalloc(p->nroutes ? p->nroutes : 1, sizeof(*p->routes));
            for (size_t i = 0; i < p->nroutes; i++) {
                p->routes[i].index = i;
                mock_profile__route(&c, ynode_item(rs, i), &p->routes[i]);
            }
        }
        for (size_t i = 0; i < p->nroutes; i++) {
            if (p->routes[i].db && p->pool_conf.size == 0)
                mock_profile__err(&c, ynode_item(rs, i), "db",
                                  "route uses the DB pool but global.db_pool is not set");
        }
    }
    yaml_tree_free(root);
    if (c.nerr > 0) {
        mock_profile__free_routes(p);
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < p->nroutes; i++) {
        mock_profile__precompute(&p->routes[i]);
        p->routes[i].built = xcalloc(1, sizeof(*p->routes[i].built));
    }
    p->name = xstrdup(name);
    p->source = xstrndup(text, len);
    p->pool = mock_pool_create(p->pool_conf.size, p->pool_conf.queue_limit);
    p->stats = mock_stats_create(nthreads, p->nroutes);
    return p;
}

#define MOCK_PROFILE_MAX_FILE (16u << 20) /* a profile larger than this is a wrong path */

struct mock_profile *mock_profile_load(const char *path, size_t nthreads, struct buf *err)
{
    struct buf text = BUF_INIT;
    char why[128];
    struct mock_profile *p = NULL;
    if (buf_read_file(&text, path, MOCK_PROFILE_MAX_FILE, why, sizeof(why)) == -1)
        buf_printf(err, "%s: %s\n", path, why);
    else
        p = mock_profile_parse(text.data ? text.data : "", buf_pending(&text), path, nthreads, err);
    buf_deinit(&text);
    return p;
}

void mock_profile_ref(struct mock_profile *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void mock_profile_unref(struct mock_profile *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    mock_profile__free_routes(p);
    mock_pool_destroy(p->pool);
    mock_stats_destroy(p->stats);
    free(p->name);
    free(p->source);
    free(p);
}

/* The parsed distribution, for GET /_mock/profile. */
static void mock_profile__latency_json(const struct mock_latency *l, struct buf *out)
{
    buf_printf(out, "{\"dist\":\"%s\"", mock_dist_name(l->dist));
    switch (l->dist) {
    case MOCK_DIST_NONE:
        break;
    case MOCK_DIST_FIXED:
        buf_printf(out, ",\"ms\":%g", l->ms);
        break;
    case MOCK_DIST_UNIFORM:
        buf_printf(out, ",\"min\":%g,\"max\":%g", l->min, l->max);
        break;
    case MOCK_DIST_NORMAL:
        buf_printf(out, ",\"mean\":%g,\"stddev\":%g", l->mean, l->stddev);
        break;
    case MOCK_DIST_LOGNORMAL:
        buf_printf(out, ",\"median\":%g,\"sigma\":%g", l->median, l->sigma);
        break;
    case MOCK_DIST_PARETO:
        buf_printf(out, ",\"min\":%g,\"alpha\":%g", l->min, l->alpha);
        break;
    }
    if (l->cap > 0)
        buf_printf(out, ",\"cap\":%g", l->cap);
    buf_append_str(out, "}");
}

void mock_profile_json(const struct mock_profile *p, struct buf *out)
{
    buf_append_str(out, "{\"name\":");
    buf_append_json_str(out, p->name, strlen(p->name));
    buf_printf(out, ",\"global\":{\"db_pool\":{\"size\":%llu,\"service\":",
               (unsigned long long)p->pool_conf.size);
    mock_profile__latency_json(&p->pool_conf.service, out);
    buf_printf(out,
               ",\"queue_timeout_ms\":%llu,\"queue_limit\":%llu},"
               "\"cold_start\":{\"idle_ms\":%llu,\"extra_ms\":%llu},"
               "\"stall\":{\"every_ms\":%llu,\"for_ms\":%llu},\"max_body\":%llu,"
               "\"keepalive_timeout_ms\":%llu},\"routes\":[",
               (unsigned long long)p->pool_conf.queue_timeout_ms,
               (unsigned long long)p->pool_conf.queue_limit, (unsigned long long)p->cold_idle_ms,
               (unsigned long long)p->cold_extra_ms, (unsigned long long)p->stall_every_ms,
               (unsigned long long)p->stall_for_ms, (unsigned long long)p->max_body,
               (unsigned long long)p->keepalive_timeout_ms);
    for (size_t i = 0; i < p->nroutes; i++) {
        const struct mock_route *r = &p->routes[i];
        buf_append_str(out, i ? ",{\"name\":" : "{\"name\":");
        buf_append_json_str(out, r->name, strlen(r->name));
        buf_append_str(out, ",\"method\":");
        buf_append_json_str(out, r->method, strlen(r->method));
        buf_append_str(out, ",\"path\":");
        buf_append_json_str(out, r->pattern.text, strlen(r->pattern.text));
        buf_printf(out,
                   ",\"handler\":\"%s\",\"status\":%d,\"latency\":", mock_handler_names[r->handler],
                   r->status);
        mock_profile__latency_json(&r->latency, out);
        buf_printf(out, ",\"db\":%s,\"error_rate\":%g,\"error_status\":%d,\"body_size\":%llu",
                   r->db ? "true" : "false", r->error_rate, r->error_status,
                   (unsigned long long)r->body_size);
        if (r->cache_control) {
            buf_append_str(out, ",\"cache_control\":");
            buf_append_json_str(out, r->cache_control, strlen(r->cache_control));
        }
        buf_printf(out,
                   ",\"etag\":%s,\"last_modified\":%s,\"chunked\":%s,\"close\":%s,"
                   "\"hang\":%s}",
                   r->etag ? "true" : "false", r->last_modified ? "true" : "false",
                   r->chunked ? "true" : "false", r->close ? "true" : "false",
                   r->hang ? "true" : "false");
    }
    buf_append_str(out, "],\"source\":");
    buf_append_json_str(out, p->source, strlen(p->source));
    buf_append_str(out, "}");
}
