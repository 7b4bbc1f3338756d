/* Scenario files (`apigate load run FILE.yaml`) into struct scenario, with every error of the file
 * reported as "file:line:col: key: what is wrong", and the request bytes prepared once: a request
 * without templates becomes one prebuilt buffer that the engine writes as is. Quick mode builds
 * the same struct from the command line (load.c). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/cfg.h"
#include "config/units.h"
#include "config/yaml.h"
#include "core/xmalloc.h"
#include "http/h1write.h"
#include "load/internal.h"
#include "net/tls.h"

#define SCEN_MAX_CHECKS 32 /* header checks are bits of a uint32_t */
#define SCEN_MAX_RATE 10000000.0

struct load_req *scenario_add_req(struct scenario *s)
{
    s->reqs = xrealloc(s->reqs, (s->nreqs + 1) * sizeof(*s->reqs));
    struct load_req *r = &s->reqs[s->nreqs++];
    memset(r, 0, sizeof(*r));
    r->weight = 1;
    r->flow = SIZE_MAX; /* a request of its own: scenario_prepare gives it a one-step flow */
    buf_init(&r->prebuilt);
    return r;
}

/* Frees what one request owns (its array slot belongs to the scenario). */
static void scenario__free_req(struct load_req *r)
{
    free(r->name);
    free(r->group);
    free(r->method);
    for (size_t i = 0; i < r->nextracts; i++)
        extract_free(&r->extracts[i]);
    free(r->extracts);
    tmpl_free(&r->path);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        tmpl_free(&r->headers[i].value);
    }
    free(r->headers);
    tmpl_free(&r->body);
    for (size_t i = 0; i < r->nchecks; i++) {
        free(r->checks[i].statuses);
        free(r->checks[i].str);
        free(r->checks[i].label);
    }
    free(r->checks);
    buf_deinit(&r->prebuilt);
}

void scenario_destroy(struct scenario *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nreqs; i++)
        scenario__free_req(&s->reqs[i]);
    free(s->reqs);
    for (size_t i = 0; i < s->nflows; i++)
        free(s->flows[i].name);
    free(s->flows);
    for (size_t i = 0; i < s->nvars; i++)
        free(s->vars[i]);
    free(s->vars);
    for (size_t i = 0; i < s->nth; i++)
        threshold_free(&s->th[i]);
    free(s->th);
    free(s->plan.stages);
    free(s->file);
    free(s->base_url);
    free(s->tls_ca_file);
    tls_session_destroy(s->tls_sess);
    tls_client_destroy(s->tls);
    free(s);
}

int scenario_set_base_url(struct scenario *s, const char *url, char *err, size_t errlen)
{
    struct url u;
    if (url_parse(url, &u, err, errlen) == -1)
        return -1;
    /* Request paths are appended to the base path: "http://h/api?k=1" + "/users" would send
     * "/api?k=1/users", the query swallowing the path. */
    if (strchr(u.path, '?') != NULL) {
        snprintf(err, errlen, "'%s' has a query; request paths are appended to its path, so "
                              "give the query in each request's path", url);
        return -1;
    }
    s->url = u;
    free(s->base_url);
    s->base_url = xstrdup(url);
    return 0;
}

/* ---- request bytes ---- */

static bool scenario__has_header(const struct load_req *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return true;
    return false;
}

void scenario_render(const struct scenario *s, const struct load_req *r, const struct tmpl_ctx *ctx,
                     struct buf *out)
{
    /* The head is written by http/h1write, as every client of ours writes its requests; the
     * templates are rendered to the scratch first (the path, each header value, the body). */
    struct buf *tmp = ctx->scratch;
    buf_reset(tmp);
    /* The base URL's path is a prefix: base "http://h/api" + path "/users" is "/api/users". */
    if (!s->quick) {
        size_t bl = strlen(s->url.path);
        while (bl > 0 && s->url.path[bl - 1] == '/')
            bl--;
        buf_append(tmp, s->url.path, bl);
    }
    tmpl_render(&r->path, ctx, tmp);
    h1_write_request_line(out, r->method, strlen(r->method), buf_head(tmp), buf_pending(tmp), NULL,
                          0);
    if (!scenario__has_header(r, "Host")) // the port of plain http is left out, as browsers do
        h1_write_host(out, s->url.host, strlen(s->url.host), s->url.port, 80);
    if (!scenario__has_header(r, "User-Agent"))
        h1_write_header(out, "User-Agent", 10, "apigate-load", 12);
    for (size_t i = 0; i < r->nheaders; i++) {
        buf_reset(tmp);
        tmpl_render(&r->headers[i].value, ctx, tmp);
        h1_write_header(out, r->headers[i].name, strlen(r->headers[i].name), buf_head(tmp),
                        buf_pending(tmp));
    }
    if (r->has_body) {
        /* The length is known only once the body is rendered. */
        buf_reset(tmp);
        tmpl_render(&r->body, ctx, tmp);
        h1_write_header_u64(out, "Content-Length", buf_pending(tmp));
        h1_write_end_head(out);
        if (buf_pending(tmp))
            buf_append(out, buf_head(tmp), buf_pending(tmp));
    } else {
        h1_write_end_head(out);
    }
}

int scenario_prepare(struct scenario *s, char *err, size_t errlen)
{
    if (s->url.tls && s->tls == NULL) {
        /* One context for every thread (thread-safe once built) and one session to resume, so
         * reconnections skip the full handshake as a browser's would. */
        struct tls_client_opts o = {.verify = s->tls_verify, .ca_file = s->tls_ca_file};
        char terr[256];
        s->tls = tls_client_create(&o, terr, sizeof(terr));
        if (s->tls == NULL) {
            snprintf(err, errlen, "%s: %s", s->base_url, terr);
            return -1;
        }
        s->tls_sess = tls_session_create();
    }
    char rerr[256];
    if (sock_resolve(s->url.host, s->url.port, &s->addr, rerr, sizeof(rerr)) == -1) {
        snprintf(err, errlen, "%s: %s", s->base_url, rerr);
        return -1;
    }
    /* Every request that is not a flow's step is an iteration of one step. Flows parsed from the
     * file come first in s->flows; these are added after them (prepare may run twice). */
    for (size_t i = 0; i < s->nreqs; i++) {
        struct load_req *r = &s->reqs[i];
        if (r->flow != SIZE_MAX)
            continue;
        s->flows = xrealloc(s->flows, (s->nflows + 1) * sizeof(*s->flows));
        s->flows[s->nflows] = (struct load_flow){NULL, i, 1, r->weight};
        r->flow = s->nflows++;
    }
    s->total_weight = 0;
    for (size_t f = 0; f < s->nflows; f++)
        s->total_weight += s->flows[f].weight;
    s->nchecks = 0;
    for (size_t i = 0; i < s->nreqs; i++) {
        struct load_req *r = &s->reqs[i];
        r->is_head = strcmp(r->method, "HEAD") == 0;
        r->header_checks = 0;
        r->need_body = false;
        for (size_t k = 0; k < r->nchecks; k++) {
            r->checks[k].id = s->nchecks++;
            if (r->checks[k].kind == CHECK_HEADER)
                r->header_checks |= 1u << k;
            if (r->checks[k].kind == CHECK_BODY)
                r->need_body = true;
        }
        for (size_t k = 0; k < r->nextracts; k++)
            if (r->extracts[k].kind != EXTRACT_HEADER)
                r->need_body = true;
        r->dynamic = r->path.dynamic || (r->has_body && r->body.dynamic);
        for (size_t h = 0; h < r->nheaders; h++)
            r->dynamic |= r->headers[h].value.dynamic;
        buf_reset(&r->prebuilt);
        if (!r->dynamic) {
            struct buf scratch = BUF_INIT;
            uint64_t rng = 1;
            _Atomic uint64_t seq = 0;
            struct tmpl_ctx ctx = {&rng, &seq, &scratch, NULL};
            scenario_render(s, r, &ctx, &r->prebuilt);
            buf_deinit(&scratch);
        }
    }
    if (s->total_weight == 0) {
        snprintf(err, errlen, "every request has weight 0: nothing to send");
        return -1;
    }
    return 0;
}

/* ---- YAML ---- */

struct scen_parse {
    struct scenario *s;
    struct cfg_errors errs;
};

#define SERR(p, node, ...) cfg_error(&(p)->errs, (node), __VA_ARGS__)

/* Scalars only: a map or list where a value belongs is an error at that node's position. */
static bool scen__is_scalar(struct scen_parse *p, const struct ynode *n, const char *key)
{
    if (n->type == YNODE_SCALAR)
        return true;
    SERR(p, n, "%s: expected a value, got a %s", key, ynode_type_name(n));
    return false;
}

/* A duration key ("500ms", "2m") into µs, or an error naming the key and the accepted forms. */
static int scen__duration(struct scen_parse *p, const struct ynode *n, const char *key,
                          uint64_t *us)
{
    if (!scen__is_scalar(p, n, key))
        return -1;
    if (units_parse_duration_us(n->str, us) == -1) {
        SERR(p, n, "%s: '%s' is not a duration; use 500ms, 30s, 2m", key, n->str);
        return -1;
    }
    return 0;
}

/* A non-negative integer up to <max>; "-1", "1.5" and "ten" are errors, not zero. */
static int scen__uint(struct scen_parse *p, const struct ynode *n, const char *key, uint64_t max,
                      uint64_t *out)
{
    if (!scen__is_scalar(p, n, key))
        return -1;
    char *end;
    unsigned long long v = strtoull(n->str, &end, 10);
    if (n->len == 0 || *end || !isdigit((unsigned char)n->str[0]) || v > max) {
        SERR(p, n, "%s: '%s' is not an integer in 0..%llu", key, n->str, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

/* "500/s", "30/m", or a bare number (per second). */
static int scen__rate(struct scen_parse *p, const struct ynode *n, const char *key, double *out)
{
    if (!scen__is_scalar(p, n, key))
        return -1;
    if (units_parse_rate(n->str, out) == -1 || !(*out >= 0.0) || *out > SCEN_MAX_RATE) {
        SERR(p, n, "%s: '%s' is not a rate; use 500/s, 30/m (at most 10M/s)", key, n->str);
        return -1;
    }
    return 0;
}

/* Compiles a templated value; returns <n>->str on success, NULL after adding the error. */
static char *scen__strdup_tmpl(struct scen_parse *p, const struct ynode *n, const char *key,
                               struct tmpl *t)
{
    char err[256];
    size_t off = 0;
    if (tmpl_compile_vars(t, n->str, p->s->vars, p->s->nvars, err, sizeof(err), &off) == -1) {
        /* Point at the template itself: the column of the scalar plus the offset inside it. */
        struct ynode at = *n;
        at.col = n->col + (int)off + (n->quoted ? 1 : 0);
        SERR(p, &at, "%s: %s", key, err);
        return NULL;
    }
    return n->str;
}

/* "100ms..1s" or "500ms". */
static int scen__think(struct scen_parse *p, const struct ynode *n, uint64_t *lo, uint64_t *hi)
{
    if (!scen__is_scalar(p, n, "think"))
        return -1;
    const char *dots = strstr(n->str, "..");
    if (dots == NULL) {
        if (units_parse_duration_us(n->str, lo) == -1)
            goto bad;
        *hi = *lo;
        return 0;
    }
    char *a = xstrndup(n->str, (size_t)(dots - n->str));
    int ra = units_parse_duration_us(a, lo);
    free(a);
    if (ra == -1 || units_parse_duration_us(dots + 2, hi) == -1)
        goto bad;
    if (*lo > *hi) {
        SERR(p, n, "think: the range '%s' ends before it starts", n->str);
        return -1;
    }
    return 0;
bad:
    SERR(p, n, "think: '%s' is not a duration or a range like 100ms..1s", n->str);
    return -1;
}

/* Appends an empty check of <kind> to <r>, or reports the per-request limit. */
static struct load_check *scen__add_check(struct scen_parse *p, struct load_req *r,
                                          const struct ynode *at, enum check_kind kind)
{
    if (r->nchecks == SCEN_MAX_CHECKS) {
        SERR(p, at, "checks: at most %d checks per request", SCEN_MAX_CHECKS);
        return NULL;
    }
    r->checks = xrealloc(r->checks, (r->nchecks + 1) * sizeof(*r->checks));
    struct load_check *c = &r->checks[r->nchecks++];
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    return c;
}

/* One check: key status | body_contains | header | latency_under. */
static void scen__check(struct scen_parse *p, struct load_req *r, const struct ynode *k,
                        const struct ynode *v)
{
    const char *key = k->str;
    struct buf label = BUF_INIT;
    if (strcmp(key, "status") == 0 || strcmp(key, "status_in") == 0) {
        size_t n = v->type == YNODE_SEQ ? ynode_size(v) : 1;
        if (v->type == YNODE_MAP || n == 0) {
            SERR(p, v, "checks.status: expected a status code or a list of them");
            return;
        }
        int *codes = xcalloc(n, sizeof(int));
        buf_append_str(&label, "status in [");
        for (size_t i = 0; i < n; i++) {
            const struct ynode *it = v->type == YNODE_SEQ ? ynode_item(v, i) : v;
            uint64_t code;
            if (scen__uint(p, it, "checks.status", 599, &code) == -1 || code < 100) {
                if (code < 100)
                    SERR(p, it, "checks.status: '%s' is not a status code (100..599)", it->str);
                free(codes);
                buf_deinit(&label);
                return;
            }
            codes[i] = (int)code;
            buf_printf(&label, "%s%d", i ? ", " : "", codes[i]);
        }
        buf_append_str(&label, "]");
        struct load_check *c = scen__add_check(p, r, k, CHECK_STATUS);
        if (c == NULL) {
            free(codes);
            buf_deinit(&label);
            return;
        }
        c->statuses = codes;
        c->nstatuses = n;
    } else if (strcmp(key, "body_contains") == 0 || strcmp(key, "body") == 0) {
        if (!scen__is_scalar(p, v, "checks.body_contains"))
            return;
        struct load_check *c = scen__add_check(p, r, k, CHECK_BODY);
        if (c == NULL)
            return;
        c->str = xstrdup(v->str);
        c->len = v->len;
        buf_printf(&label, "body contains \"%s\"", v->str);
    } else if (strcmp(key, "header") == 0 || strcmp(key, "header_present") == 0) {
        if (!scen__is_scalar(p, v, "checks.header"))
            return;
        struct load_check *c = scen__add_check(p, r, k, CHECK_HEADER);
        if (c == NULL)
            return;
        c->str = xstrdup(v->str);
        c->len = v->len;
        buf_printf(&label, "header %s present", v->str);
    } else if (strcmp(key, "latency_under") == 0 || strcmp(key, "duration_under") == 0) {
        uint64_t us;
        if (scen__duration(p, v, "checks.latency_under", &us) == -1)
            return;
        struct load_check *c = scen__add_check(p, r, k, CHECK_LATENCY);
        if (c == NULL)
            return;
        c->latency_us = us;
        buf_printf(&label, "latency under %s", v->str);
    } else {
        SERR(p, k,
             "checks: unknown check '%s'; known: status, body_contains, header, "
             "latency_under",
             key);
        return;
    }
    buf_append(&label, "", 1);
    r->checks[r->nchecks - 1].label = label.data;
}

/* checks: a list of one-key maps ([{status: 200}, {header: ETag}]) or one map of several. */
static void scen__checks(struct scen_parse *p, struct load_req *r, const struct ynode *n)
{
    if (n->type == YNODE_MAP) {
        for (size_t i = 0; i < ynode_size(n); i++)
            scen__check(p, r, ynode_key(n, i), ynode_value(n, i));
        return;
    }
    if (n->type != YNODE_SEQ) {
        SERR(p, n, "checks: expected a list like [{status: 200}, {body_contains: ok}]");
        return;
    }
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *it = ynode_item(n, i);
        if (it->type != YNODE_MAP) {
            SERR(p, it, "checks: each check is a map like {status: [200, 201]}");
            continue;
        }
        for (size_t j = 0; j < ynode_size(it); j++)
            scen__check(p, r, ynode_key(it, j), ynode_value(it, j));
    }
}

bool scenario_header_framing(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0;
}

bool scenario_valid_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

/* headers: {Name: value}; values may be templated, names are checked as tokens. */
static void scen__headers(struct scen_parse *p, struct load_req *r, const struct ynode *n)
{
    if (n->type != YNODE_MAP) {
        SERR(p, n, "headers: expected a map of header names to values");
        return;
    }
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *k = ynode_key(n, i), *v = ynode_value(n, i);
        if (!scenario_valid_token(k->str)) {
            SERR(p, k, "headers: '%s' is not a valid header name", k->str);
            continue;
        }
        if (scenario_header_framing(k->str)) {
            SERR(p, k, "headers: %s is written from the body; remove it", k->str);
            continue;
        }
        if (!scen__is_scalar(p, v, k->str))
            continue;
        if (strpbrk(v->str, "\r\n")) {
            SERR(p, v, "headers: %s: a value cannot contain a line break", k->str);
            continue;
        }
        struct tmpl t;
        if (scen__strdup_tmpl(p, v, "headers", &t) == NULL)
            continue;
        if (tmpl_has_line_break(&t)) { /* from {{env}}: the text itself was checked above */
            SERR(p, v, "headers: %s: a value cannot contain a line break (from {{env}})",
                 k->str);
            tmpl_free(&t);
            continue;
        }
        /* A request's own header replaces a default (top-level headers:) of the same name. */
        bool replaced = false;
        for (size_t h = 0; h < r->nheaders && !replaced; h++) {
            if (strcasecmp(r->headers[h].name, k->str) == 0) {
                tmpl_free(&r->headers[h].value);
                r->headers[h].value = t;
                replaced = true;
            }
        }
        if (replaced)
            continue;
        r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof(*r->headers));
        r->headers[r->nheaders].name = xstrdup(k->str);
        r->headers[r->nheaders].value = t;
        r->nheaders++;
    }
}

/* The index of variable <name> in s->vars, or SIZE_MAX. */
static size_t scen__var(const struct scenario *s, const char *name)
{
    for (size_t i = 0; i < s->nvars; i++)
        if (strcmp(s->vars[i], name) == 0)
            return i;
    return SIZE_MAX;
}

/* extract: {token: 'json:$.token', id: 'regex:"id":([0-9]+)', etag: 'header:ETag'}. Each one is
 * also a check ("extract token"), so a value that was not found shows in the report. */
static void scen__extracts(struct scen_parse *p, struct load_req *r, const struct ynode *n)
{
    if (n->type != YNODE_MAP) {
        SERR(p, n, "extract: expected a map like {token: 'json:$.token'}");
        return;
    }
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *k = ynode_key(n, i), *v = ynode_value(n, i);
        if (!scen__is_scalar(p, v, "extract"))
            continue;
        size_t var = scen__var(p->s, k->str);
        if (var == SIZE_MAX) /* an invalid name, already reported by the pre-scan */
            continue;
        struct load_extract x = {0};
        x.var = var;
        char err[256];
        if (strncmp(v->str, "json:", 5) == 0) {
            x.kind = EXTRACT_JSON;
            x.expr = xstrdup(v->str + 5);
            if (extract_json_path_check(x.expr, err, sizeof(err)) == -1) {
                SERR(p, v, "extract: %s: %s", k->str, err);
                extract_free(&x);
                continue;
            }
        } else if (strncmp(v->str, "header:", 7) == 0) {
            x.kind = EXTRACT_HEADER;
            const char *h = v->str + 7;
            while (*h == ' ')
                h++;
            x.expr = xstrdup(h);
            if (!scenario_valid_token(x.expr)) {
                SERR(p, v, "extract: %s: '%s' is not a header name", k->str, x.expr);
                extract_free(&x);
                continue;
            }
        } else if (strncmp(v->str, "regex:", 6) == 0) {
            x.kind = EXTRACT_REGEX;
            x.expr = xstrdup(v->str + 6);
            if (extract_regex_compile(&x, err, sizeof(err)) == -1) {
                SERR(p, v, "extract: %s: %s", k->str, err);
                extract_free(&x);
                continue;
            }
        } else {
            SERR(p, v,
                 "extract: %s: '%s' says not where to look; use json:$.path, header:Name or "
                 "regex:EXPR",
                 k->str, v->str);
            continue;
        }
        struct load_check *c = scen__add_check(p, r, k, CHECK_EXTRACT);
        if (c == NULL) {
            extract_free(&x);
            continue;
        }
        c->len = r->nextracts;
        struct buf label = BUF_INIT;
        buf_printf(&label, "extract %s", k->str);
        buf_append(&label, "", 1);
        c->label = label.data;
        r->extracts = xrealloc(r->extracts, (r->nextracts + 1) * sizeof(*r->extracts));
        r->extracts[r->nextracts++] = x;
    }
}

/* One entry of requests: (or, with <step>, one step of a flow, which may also extract: and
 * sleep:, and has no weight of its own). <defaults_headers> (the top-level headers:) come first,
 * and a request's own header of the same name replaces the default; think defaults to the
 * top-level think. Returns the request, or NULL. */
static struct load_req *scen__request(struct scen_parse *p, const struct ynode *n,
                                      const struct ynode *defaults_headers, uint64_t think_lo,
                                      uint64_t think_hi, bool step)
{
    if (n->type != YNODE_MAP) {
        SERR(p, n, "%s: each %s is a map with at least 'path'", step ? "steps" : "requests",
             step ? "step" : "request");
        return NULL;
    }
    struct load_req *r = scenario_add_req(p->s);
    r->think_min_us = think_lo;
    r->think_max_us = think_hi;
    const char *path_str = NULL;
    if (defaults_headers)
        scen__headers(p, r, defaults_headers);
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *k = ynode_key(n, i), *v = ynode_value(n, i);
        const char *key = k->str;
        if (strcmp(key, "name") == 0) {
            if (scen__is_scalar(p, v, key))
                r->name = xstrdup(v->str);
        } else if (strcmp(key, "method") == 0) {
            if (!scen__is_scalar(p, v, key))
                continue;
            if (!scenario_valid_token(v->str)) {
                SERR(p, v, "method: '%s' is not a valid HTTP method", v->str);
                continue;
            }
            r->method = xstrdup(v->str);
            for (char *c = r->method; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        } else if (strcmp(key, "path") == 0) {
            if (!scen__is_scalar(p, v, key))
                continue;
            if (v->str[0] != '/') {
                SERR(p, v, "path: '%s' must start with '/'", v->str);
                continue;
            }
            if (scen__strdup_tmpl(p, v, "path", &r->path) == NULL)
                continue;
            /* Whitespace inside {{ }} separates arguments; outside, it would break the request
             * line. */
            bool ws = false;
            for (size_t j = 0; j < r->path.n; j++) {
                const struct tmpl_seg *sg = &r->path.segs[j];
                if (sg->kind == TMPL_LIT && strpbrk(sg->lit, " \r\n\t"))
                    ws = true;
                for (size_t c = 0; c < sg->nchoices; c++)
                    ws |= strpbrk(sg->choices[c], "\r\n") != NULL;
            }
            if (ws) {
                SERR(p, v, "path: '%s' contains whitespace; percent-encode it", v->str);
                continue;
            }
            path_str = v->str;
        } else if (strcmp(key, "headers") == 0) {
            scen__headers(p, r, v);
        } else if (strcmp(key, "body") == 0) {
            if (!scen__is_scalar(p, v, key))
                continue;
            if (scen__strdup_tmpl(p, v, "body", &r->body))
                r->has_body = true;
        } else if (strcmp(key, "weight") == 0 && !step) {
            scen__uint(p, v, "weight", 1000000, &r->weight);
        } else if (strcmp(key, "think") == 0 || (step && strcmp(key, "sleep") == 0)) {
            scen__think(p, v, &r->think_min_us, &r->think_max_us);
        } else if (strcmp(key, "checks") == 0) {
            scen__checks(p, r, v);
        } else if (step && strcmp(key, "extract") == 0) {
            scen__extracts(p, r, v);
        } else if (step) {
            SERR(p, k,
                 "steps: unknown key '%s'; known: name, method, path, headers, body, extract, "
                 "sleep (or think), checks%s",
                 key, strcmp(key, "weight") == 0 ? " (the weight is the flow's)" : "");
        } else {
            SERR(p, k,
                 "requests: unknown key '%s'; known: name, method, path, headers, body, "
                 "weight, think, checks",
                 key);
        }
    }
    if (path_str == NULL && !ynode_get(n, "path"))
        SERR(p, n, "requests: 'path' is required");
    if (r->method == NULL)
        r->method = xstrdup(r->has_body ? "POST" : "GET");
    if (r->name == NULL) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s %s", r->method, path_str ? path_str : "?");
        buf_append(&b, "", 1);
        r->name = b.data;
    }
    return r;
}

/* Pre-scan of flows[].steps[].extract: the variable names, known before any template is compiled
 * so {{token}} in any step is a variable, not an unknown function. */
static void scen__scan_vars(struct scen_parse *p, const struct ynode *flows)
{
    static const char *const reserved[] = {"rand", "seq", "uuid", "pick", "env"};
    for (size_t f = 0; flows->type == YNODE_SEQ && f < ynode_size(flows); f++) {
        const struct ynode *steps = ynode_get(ynode_item(flows, f), "steps");
        for (size_t i = 0; steps && steps->type == YNODE_SEQ && i < ynode_size(steps); i++) {
            const struct ynode *ex = ynode_get(ynode_item(steps, i), "extract");
            for (size_t k = 0; ex && ex->type == YNODE_MAP && k < ynode_size(ex); k++) {
                const struct ynode *name = ynode_key(ex, k);
                bool ok = isalpha((unsigned char)name->str[0]) || name->str[0] == '_';
                for (const char *c = name->str; *c && ok; c++)
                    ok = isalnum((unsigned char)*c) || *c == '_';
                for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]) && ok; r++)
                    ok = strcmp(name->str, reserved[r]) != 0;
                if (!ok) {
                    SERR(p, name,
                         "extract: '%s' is not a variable name (letters, digits, '_'; not a "
                         "template function)",
                         name->str);
                    continue;
                }
                if (scen__var(p->s, name->str) != SIZE_MAX)
                    continue;
                p->s->vars = xrealloc(p->s->vars, (p->s->nvars + 1) * sizeof(char *));
                p->s->vars[p->s->nvars++] = xstrdup(name->str);
            }
        }
    }
}

/* flows: [{name: checkout, weight: 2, steps: [{…request…, extract: {…}, sleep: 1s}, …]}]: an
 * iteration runs the steps in order, on the VU's connection, with the VU's variables. */
static void scen__flows(struct scen_parse *p, const struct ynode *n, const struct ynode *hdrs,
                        uint64_t think_lo, uint64_t think_hi)
{
    struct scenario *s = p->s;
    if (n->type != YNODE_SEQ || ynode_size(n) == 0) {
        SERR(p, n, "flows: expected a non-empty list of {name, steps: [...]}");
        return;
    }
    for (size_t f = 0; f < ynode_size(n); f++) {
        const struct ynode *fl = ynode_item(n, f);
        if (fl->type != YNODE_MAP) {
            SERR(p, fl, "flows: each flow is a map {name, weight, steps}");
            continue;
        }
        for (size_t i = 0; i < ynode_size(fl); i++) {
            const char *k = ynode_key(fl, i)->str;
            if (strcmp(k, "name") != 0 && strcmp(k, "weight") != 0 && strcmp(k, "steps") != 0)
                SERR(p, ynode_key(fl, i), "flows: unknown key '%s'; known: name, weight, steps",
                     k);
        }
        const struct ynode *name = ynode_get(fl, "name"), *steps = ynode_get(fl, "steps"),
                           *w = ynode_get(fl, "weight");
        if (name == NULL || !scen__is_scalar(p, name, "flows.name")) {
            if (name == NULL)
                SERR(p, fl, "flows: 'name' is required (the group in the report)");
            continue;
        }
        uint64_t weight = 1;
        if (w)
            scen__uint(p, w, "flows.weight", 1000000, &weight);
        if (steps == NULL || steps->type != YNODE_SEQ || ynode_size(steps) == 0) {
            SERR(p, steps ? steps : fl, "flows: %s: 'steps' must be a non-empty list", name->str);
            continue;
        }
        size_t first = s->nreqs;
        for (size_t i = 0; i < ynode_size(steps); i++) {
            struct load_req *r =
                scen__request(p, ynode_item(steps, i), hdrs, think_lo, think_hi, true);
            if (r == NULL)
                continue;
            r->group = xstrdup(name->str);
            r->flow = s->nflows;
        }
        s->flows = xrealloc(s->flows, (s->nflows + 1) * sizeof(*s->flows));
        s->flows[s->nflows++] =
            (struct load_flow){xstrdup(name->str), first, s->nreqs - first, weight};
    }
}

/* stages: [{duration: 2m, target: 100}, …]; targets are VUs or rates. */
static void scen__stages(struct scen_parse *p, const struct ynode *n, bool rate)
{
    struct sched_plan *plan = &p->s->plan;
    if (n->type != YNODE_SEQ || ynode_size(n) == 0) {
        SERR(p, n, "stages: expected a non-empty list like [{duration: 1m, target: 100}]");
        return;
    }
    plan->stages = xcalloc(ynode_size(n), sizeof(*plan->stages));
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *st = ynode_item(n, i);
        if (st->type != YNODE_MAP) {
            SERR(p, st, "stages: each stage is a map {duration: 1m, target: 100}");
            continue;
        }
        const struct ynode *d = ynode_get(st, "duration"), *t = ynode_get(st, "target");
        for (size_t j = 0; j < ynode_size(st); j++) {
            const char *k = ynode_key(st, j)->str;
            if (strcmp(k, "duration") != 0 && strcmp(k, "target") != 0)
                SERR(p, ynode_key(st, j), "stages: unknown key '%s'; known: duration, target", k);
        }
        if (d == NULL || t == NULL) {
            SERR(p, st, "stages: a stage needs both 'duration' and 'target'");
            continue;
        }
        struct sched_stage *sg = &plan->stages[plan->nstages];
        if (scen__duration(p, d, "stages.duration", &sg->dur_us) == -1)
            continue;
        if (sg->dur_us == 0) {
            SERR(p, d, "stages.duration: a stage must last longer than 0");
            continue;
        }
        if (rate) {
            if (scen__rate(p, t, "stages.target", &sg->target) == -1)
                continue;
        } else {
            uint64_t v;
            if (scen__uint(p, t, "stages.target", LOAD_MAX_VUS, &v) == -1)
                continue;
            sg->target = (double)v;
        }
        plan->nstages++;
    }
}

static const char *const scen_keys =
    "base_url, executor, vus, duration, stages, rate, start_rate, pre_allocated_vus, max_vus, "
    "threads, timeout, graceful_stop, think, headers, requests, flows, thresholds, max_failed, "
    "tls";

/* thresholds: {metric{name:x}: [expr, …]}; each expression is parsed now, so a typo is an
 * error before the run rather than a threshold that can never fail. */
static void scen__thresholds(struct scen_parse *p, const struct ynode *n)
{
    struct scenario *s = p->s;
    if (n->type != YNODE_MAP) {
        SERR(p, n, "thresholds: expected a map like {http_req_duration: ['p(95)<500']}");
        return;
    }
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *k = ynode_key(n, i), *v = ynode_value(n, i);
        size_t m = v->type == YNODE_SEQ ? ynode_size(v) : 1;
        if (v->type == YNODE_MAP) {
            SERR(p, v, "thresholds: %s: expected a list of expressions like ['p(95)<500']", k->str);
            continue;
        }
        if (m == 0) { /* nothing would be checked, not even the metric's name */
            SERR(p, v, "thresholds: %s: an empty list; give expressions like ['p(95)<500'] or "
                       "remove the key", k->str);
            continue;
        }
        for (size_t j = 0; j < m; j++) {
            const struct ynode *e = v->type == YNODE_SEQ ? ynode_item(v, j) : v;
            /* k6's object form: {threshold: 'p(95)<500', abortOnFail: true, delayAbortEval: 10s} */
            bool abort = false;
            uint64_t delay_us = 0;
            if (e->type == YNODE_MAP) {
                const struct ynode *x = ynode_get(e, "threshold");
                for (size_t q = 0; q < ynode_size(e); q++) {
                    const struct ynode *qk = ynode_key(e, q), *qv = ynode_value(e, q);
                    if (strcmp(qk->str, "abortOnFail") == 0) {
                        if (!scen__is_scalar(p, qv, "thresholds.abortOnFail"))
                            continue;
                        if (strcmp(qv->str, "true") == 0)
                            abort = true;
                        else if (strcmp(qv->str, "false") != 0)
                            SERR(p, qv, "thresholds: abortOnFail: '%s' is not a boolean",
                                 qv->str);
                    } else if (strcmp(qk->str, "delayAbortEval") == 0) {
                        scen__duration(p, qv, "thresholds.delayAbortEval", &delay_us);
                    } else if (strcmp(qk->str, "threshold") != 0) {
                        SERR(p, qk,
                             "thresholds: unknown key '%s'; known: threshold, abortOnFail, "
                             "delayAbortEval",
                             qk->str);
                    }
                }
                if (x == NULL) {
                    SERR(p, e, "thresholds: %s: the map needs 'threshold: EXPR'", k->str);
                    continue;
                }
                e = x;
            }
            if (!scen__is_scalar(p, e, "thresholds"))
                continue;
            struct threshold t;
            char err[256];
            if (threshold_parse(&t, k->str, e->str, err, sizeof(err)) == -1) {
                SERR(p, e, "thresholds: %s", err);
                continue;
            }
            t.abort_on_fail = abort;
            t.delay_abort_us = delay_us;
            if (abort && !threshold_live(&t)) {
                SERR(p, e,
                     "thresholds: %s: abortOnFail is evaluated while the run goes, on "
                     "http_req_duration, http_req_failed, http_reqs, data_received and "
                     "dropped_iterations without {name:}",
                     k->str);
                threshold_free(&t);
                continue;
            }
            /* A per-name threshold must name a request: a typo would otherwise pass silently. */
            bool found = t.tag == NULL;
            for (size_t r = 0; r < s->nreqs && !found; r++)
                found = strcmp(s->reqs[r].name, t.tag) == 0;
            if (!found) {
                SERR(p, k, "thresholds: %s: no request is named '%s'", k->str, t.tag);
                threshold_free(&t);
                continue;
            }
            s->th = xrealloc(s->th, (s->nth + 1) * sizeof(*s->th));
            s->th[s->nth++] = t;
        }
    }
}

/* tls: {verify: false, ca_file: ca.pem} for https targets (verification is on by default). */
static void scen__tls(struct scen_parse *p, const struct ynode *n)
{
    struct scenario *s = p->s;
    if (n->type != YNODE_MAP) {
        SERR(p, n, "tls: expected a map like {verify: true, ca_file: ca.pem}");
        return;
    }
    for (size_t i = 0; i < ynode_size(n); i++) {
        const struct ynode *k = ynode_key(n, i), *v = ynode_value(n, i);
        if (strcmp(k->str, "verify") == 0) {
            if (!scen__is_scalar(p, v, "tls.verify"))
                continue;
            if (strcmp(v->str, "true") == 0 || strcmp(v->str, "yes") == 0)
                s->tls_verify = true;
            else if (strcmp(v->str, "false") == 0 || strcmp(v->str, "no") == 0)
                s->tls_verify = false;
            else
                SERR(p, v, "tls.verify: '%s' is not a boolean; use true or false", v->str);
        } else if (strcmp(k->str, "ca_file") == 0) {
            if (scen__is_scalar(p, v, "tls.ca_file")) {
                free(s->tls_ca_file);
                s->tls_ca_file = xstrdup(v->str);
            }
        } else {
            SERR(p, k, "tls: unknown key '%s'; known: verify, ca_file", k->str);
        }
    }
}

/* The whole file: every key checked, every error collected (not only the first). */
static void scen__top(struct scen_parse *p, const struct ynode *root)
{
    struct scenario *s = p->s;
    if (root->type != YNODE_MAP) {
        SERR(p, root, "expected a map with base_url and requests at the top");
        return;
    }
    static const char *const known[] = {
        "base_url",   "executor",          "vus",      "duration",   "stages",  "rate",
        "start_rate", "pre_allocated_vus", "max_vus",  "threads",    "timeout", "graceful_stop",
        "think",      "headers",           "requests", "thresholds", "tls",
        "max_failed", "flows"};
    for (size_t i = 0; i < ynode_size(root); i++) {
        const char *k = ynode_key(root, i)->str;
        bool ok = false;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]) && !ok; j++)
            ok = strcmp(k, known[j]) == 0;
        if (!ok)
            SERR(p, ynode_key(root, i), "unknown key '%s'; known: %s", k, scen_keys);
    }
    const struct ynode *n;
    /* base_url */
    if ((n = ynode_get(root, "base_url")) == NULL) {
        SERR(p, root, "base_url: required (e.g. base_url: http://127.0.0.1:8080)");
    } else if (scen__is_scalar(p, n, "base_url")) {
        char err[256];
        if (scenario_set_base_url(s, n->str, err, sizeof(err)) == -1)
            SERR(p, n, "base_url: %s", err);
    }
    /* executor */
    bool rate = ynode_get(root, "rate") != NULL || ynode_get(root, "start_rate") != NULL;
    if ((n = ynode_get(root, "executor")) != NULL && scen__is_scalar(p, n, "executor")) {
        if (strcmp(n->str, "vus") == 0 || strcmp(n->str, "ramping-vus") == 0 ||
            strcmp(n->str, "constant-vus") == 0)
            rate = false;
        else if (strcmp(n->str, "arrival_rate") == 0 ||
                 strcmp(n->str, "ramping-arrival-rate") == 0 ||
                 strcmp(n->str, "constant-arrival-rate") == 0)
            rate = true;
        else
            SERR(p, n, "executor: '%s' is not an executor; use vus or arrival_rate", n->str);
    }
    s->plan.kind = rate ? SCHED_RATE : SCHED_VUS;
    /* Keys of the other executor would be silently ignored: say so instead. */
    static const char *const rate_only[] = {"rate", "start_rate", "pre_allocated_vus", "max_vus"};
    if (!rate) {
        for (size_t i = 0; i < sizeof(rate_only) / sizeof(rate_only[0]); i++)
            if ((n = ynode_get(root, rate_only[i])))
                SERR(p, n, "%s: only for the arrival_rate executor", rate_only[i]);
    } else if ((n = ynode_get(root, "vus"))) {
        SERR(p, n,
             "vus: only for the vus executor; the arrival_rate executor uses "
             "pre_allocated_vus and max_vus");
    }
    size_t plan_errs = p->errs.n; /* a bad value already reported leaves its target at 0 */
    const struct ynode *stages = ynode_get(root, "stages");
    const struct ynode *dur = ynode_get(root, "duration");
    uint64_t dur_us = 0;
    if (dur)
        scen__duration(p, dur, "duration", &dur_us);
    if (rate) {
        double r0 = 0.0;
        const struct ynode *rn = ynode_get(root, "rate");
        const struct ynode *sn = ynode_get(root, "start_rate");
        if (rn)
            scen__rate(p, rn, "rate", &r0);
        if (sn)
            scen__rate(p, sn, "start_rate", &r0);
        s->plan.start = r0;
        if (stages) {
            scen__stages(p, stages, true);
        } else if (rn == NULL || dur == NULL) {
            SERR(p, root, "arrival_rate: give 'rate' and 'duration', or 'stages'");
        } else {
            if (dur_us == 0)
                SERR(p, dur, "duration: must be longer than 0");
            s->plan.stages = xcalloc(1, sizeof(*s->plan.stages));
            s->plan.stages[0] = (struct sched_stage){dur_us, r0};
            s->plan.nstages = 1;
        }
    } else {
        uint64_t v0 = 0;
        const struct ynode *vn = ynode_get(root, "vus");
        if (vn)
            scen__uint(p, vn, "vus", LOAD_MAX_VUS, &v0);
        s->plan.start = (double)v0;
        if (stages) {
            scen__stages(p, stages, false);
        } else if (vn == NULL || dur == NULL) {
            SERR(p, root, "vus: give 'vus' and 'duration', or 'stages'");
        } else {
            if (dur_us == 0)
                SERR(p, dur, "duration: must be longer than 0");
            s->plan.stages = xcalloc(1, sizeof(*s->plan.stages));
            s->plan.stages[0] = (struct sched_stage){dur_us, (double)v0};
            s->plan.nstages = 1;
        }
    }
    if (stages && dur)
        SERR(p, dur, "duration: give either 'duration' or 'stages', not both");
    sched_plan_finish(&s->plan);
    double peak = sched_peak(&s->plan);
    if (s->plan.nstages > 0 && !(peak > 0.0) && p->errs.n == plan_errs)
        SERR(p, stages ? stages : root, "%s: the plan never starts anything (every target is 0)",
             stages ? "stages" : (rate ? "rate" : "vus"));
    uint64_t v;
    if (rate) {
        uint64_t pre = (uint64_t)ceil(peak / 10.0), max;
        pre = pre < 1 ? 1 : (pre > 1000 ? 1000 : pre);
        if ((n = ynode_get(root, "pre_allocated_vus")) &&
            scen__uint(p, n, "pre_allocated_vus", LOAD_MAX_VUS, &v) == 0)
            pre = v;
        /* Enough connections for one second of the peak rate, so a server that stalls for a
         * second is measured rather than hidden behind a connection shortage. */
        max = (uint64_t)ceil(peak);
        max = max > 10000 ? 10000 : max;
        if (max < pre)
            max = pre;
        if ((n = ynode_get(root, "max_vus")) &&
            scen__uint(p, n, "max_vus", LOAD_MAX_VUS, &v) == 0) {
            max = v;
            if (max < pre)
                SERR(p, n, "max_vus: %llu is below pre_allocated_vus %llu", (unsigned long long)max,
                     (unsigned long long)pre);
            if (max == 0)
                SERR(p, n, "max_vus: must be at least 1");
        }
        s->pre_vus = (unsigned)pre;
        s->max_vus = (unsigned)(max ? max : 1);
    } else {
        s->max_vus = (unsigned)ceil(peak);
        s->pre_vus = 0;
    }
    s->threads = 1;
    if ((n = ynode_get(root, "threads")) &&
        scen__uint(p, n, "threads", LOAD_MAX_THREADS, &v) == 0) {
        if (v == 0)
            SERR(p, n, "threads: must be at least 1");
        s->threads = (unsigned)(v ? v : 1);
    }
    s->timeout_us = 10000000;
    if ((n = ynode_get(root, "timeout")) && scen__duration(p, n, "timeout", &s->timeout_us) == 0 &&
        s->timeout_us == 0)
        SERR(p, n, "timeout: must be longer than 0");
    s->graceful_us = 5000000;
    if ((n = ynode_get(root, "graceful_stop")))
        scen__duration(p, n, "graceful_stop", &s->graceful_us);
    s->max_failed = -1;
    if ((n = ynode_get(root, "max_failed")) && scen__is_scalar(p, n, "max_failed") &&
        result_parse_ratio(n->str, &s->max_failed) == -1) {
        SERR(p, n, "max_failed: '%s' is not a rate; use a percentage like 5%% or a fraction "
                   "like 0.05 (0 to 100%%)", n->str);
        s->max_failed = -1;
    }
    s->tls_verify = true;
    if ((n = ynode_get(root, "tls")))
        scen__tls(p, n);
    uint64_t think_lo = 0, think_hi = 0;
    if ((n = ynode_get(root, "think")))
        scen__think(p, n, &think_lo, &think_hi);
    const struct ynode *hdrs = ynode_get(root, "headers");
    /* requests and flows */
    const struct ynode *flows = ynode_get(root, "flows");
    if (flows)
        scen__scan_vars(p, flows);
    if ((n = ynode_get(root, "requests")) == NULL) {
        if (flows == NULL)
            SERR(p, root, "requests: required (a list of {name, method, path, ...}), or flows:");
    } else if (n->type != YNODE_SEQ || ynode_size(n) == 0) {
        SERR(p, n, "requests: expected a non-empty list");
    } else {
        for (size_t i = 0; i < ynode_size(n); i++)
            scen__request(p, ynode_item(n, i), hdrs, think_lo, think_hi, false);
    }
    if (flows)
        scen__flows(p, flows, hdrs, think_lo, think_hi);
    if ((n = ynode_get(root, "thresholds")))
        scen__thresholds(p, n);
}

struct scenario *scenario_load(const char *path, FILE *errf)
{
    char err[LOAD_ERR_LEN];
    struct ynode *root = yaml_load_file(path, err, sizeof(err));
    if (root == NULL) {
        fprintf(errf, "%s\n", err);
        return NULL;
    }
    struct scen_parse p = {0};
    p.s = xcalloc(1, sizeof(*p.s));
    p.s->file = xstrdup(path);
    scen__top(&p, root);
    yaml_tree_free(root);
    if (p.errs.n > 0) {
        cfg_errors_print(&p.errs, errf);
        cfg_errors_free(&p.errs);
        scenario_destroy(p.s);
        return NULL;
    }
    return p.s;
}
