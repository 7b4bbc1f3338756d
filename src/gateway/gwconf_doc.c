/* Printing the gateway config: the reference of every key (`--help-config`, docs) and the
 * effective configuration of a loaded file (`apigate check --dump`), both from the descriptor
 * tables, so neither can drift from the loader. */
#include "gateway/gwconf.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config/units.h"
#include "gateway/gwconf_priv.h"

/* ---- reference ---- */

static void gwconf__row(FILE *out, const char *key, const char *type, const char *def,
                        const char *doc)
{
    fprintf(out, "| `%s` | %s | %s | - | %s |\n", key, type, def, doc);
}

void gwconf_print_reference(FILE *out)
{
    fprintf(out, "| key | type | default | bounds | description |\n"
                 "|---|---|---|---|---|\n");
    gwconf__row(out, "listen", "address or list", "`127.0.0.1:8080`",
                "client listeners: host:port (HTTP), or `{address: host:port, tls: {...}}` "
                "(HTTPS); each gets one SO_REUSEPORT socket per thread");
    gwconf__row(out, "listen[].tls", "section", "(plain HTTP)",
                "TLS termination on that listener (docs/tls.md): `cert` and `key`, and/or "
                "`certs: [{cert, key}, ...]` chosen by SNI (ECDSA and RSA side by side)");
    gwconf__row(out, "listen[].tls.certs", "list", "(none)",
                "more certificates, `{cert: FILE, key: FILE}` each; the first certificate "
                "(cert/key, else certs[0]) is the default");
    cfg_print_reference(gwconf__listen_tls_desc, "listen[].tls", out);
    gwconf__row(out, "admin", "address or map", "`127.0.0.1:9901`",
                "the admin listener: `admin: host:port` (or off) sets `admin.address` only; "
                "the map form takes the keys below");
    cfg_print_reference(gwconf__admin_desc, "admin", out);
    cfg_print_reference(gwconf__root_desc, "", out);
    gwconf__row(out, "upstreams.NAME.servers", "list", "(required)",
                "host:port, http://host:port or https://host:port (TLS), or a map "
                "{address, weight (1..1000, default 1), backup (default false)}");
    cfg_print_reference(gwconf__upstream_desc, "upstreams.NAME", out);
    gwconf__row(out, "upstreams.NAME.health", "section", "(off)",
                "active health checks, on when the section is present");
    cfg_print_reference(gwconf__health_desc, "upstreams.NAME.health", out);
    gwconf__row(out, "upstreams.NAME.tls", "section", "(for https:// servers)",
                "TLS to the servers; present = TLS for every server of the upstream");
    cfg_print_reference(gwconf__tls_desc, "upstreams.NAME.tls", out);
    cfg_print_reference(gwconf__route_desc, "routes[]", out);
    gwconf__row(out, "routes[].cache", "section", "(not cached)",
                "present = cached; `cache: {}` = pure RFC 9111 (origin headers rule)");
    cfg_print_reference(gwconf__rcache_desc, "routes[].cache", out);
    cfg_print_reference(gwconf__rinvalidate_desc, "routes[].cache.invalidate", out);
    gwconf__row(out, "routes[].breaker", "section", "(off)",
                "circuit breaker, on when the section is present");
    cfg_print_reference(gwconf__breaker_desc, "routes[].breaker", out);
    gwconf__row(out, "routes[].rate_limit", "section", "(off)",
                "requests per key and period, 429 above it (docs/ratelimit.md); on when present");
    cfg_print_reference(gwconf__ratelimit_desc, "routes[].rate_limit", out);
    gwconf__row(out, "routes[].fallback", "section", "(off)",
                "response served when the upstream fails and no stale copy exists");
    cfg_print_reference(gwconf__fallback_desc, "routes[].fallback", out);
    gwconf__row(out, "routes[].fallback.headers", "map", "(none)",
                "headers of the fallback response, Name: value");
    gwconf__row(out, "routes[].compress", "section", "(off)",
                "response compression (gzip, br, zstd by Accept-Encoding), on when the section "
                "is present; see docs/compression.md");
    cfg_print_reference(gwconf__compress_desc, "routes[].compress", out);
}

/* ---- effective configuration ---- */

/* One line's start: the indentation, unless the line continues a "- " list item. */
static void doc__key(FILE *out, int indent, bool *inline_first, const char *key)
{
    if (inline_first && *inline_first)
        *inline_first = false;
    else
        fprintf(out, "%*s", indent, "");
    fprintf(out, "%s:", key);
}

/* A YAML double-quoted scalar. */
static void doc__str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '$' && s[1] == '{')
            fputs("$$", out); /* the loader expands ${NAME}; $${ is a literal ${ */
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\t')
            fputs("\\t", out);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

/* Durations and sizes in the largest unit that keeps them exact, so a dump loads back to the
 * same values. */
static void doc__duration(FILE *out, uint64_t ms)
{
    if (ms != 0 && ms % 3600000 == 0)
        fprintf(out, "%" PRIu64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        fprintf(out, "%" PRIu64 "m", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        fprintf(out, "%" PRIu64 "s", ms / 1000);
    else
        fprintf(out, "%" PRIu64 "ms", ms);
}

static void doc__size(FILE *out, uint64_t b)
{
    static const char *const names[] = {"TB", "GB", "MB", "KB"};
    for (int i = 0; i < 4; i++) {
        uint64_t unit = 1ull << (10 * (4 - i));
        if (b != 0 && b % unit == 0) {
            fprintf(out, "%" PRIu64 "%s", b / unit, names[i]);
            return;
        }
    }
    fprintf(out, "%" PRIu64, b);
}

static void doc__enum(FILE *out, const char *choices, int idx)
{
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (p == NULL) {
        fprintf(out, "%d", idx);
        return;
    }
    fprintf(out, "%.*s", (int)strcspn(p, "|"), p);
}

static void doc__table(FILE *out, const struct cfg_desc *desc, const void *base, int indent,
                       bool *inline_first)
{
    for (const struct cfg_desc *d = desc; d->key; d++) {
        const void *f = (const char *)base + d->offset;
        if (d->type == CFG_SECTION) {
            doc__key(out, indent, inline_first, d->key);
            fputc('\n', out);
            doc__table(out, d->sub, base, indent + 2, NULL);
            continue;
        }
        if (d->type == CFG_STRING && *(char *const *)f == NULL)
            continue;
        if (d->type == CFG_STRLIST && ((const struct cfg_strlist *)f)->n == 0)
            continue;
        doc__key(out, indent, inline_first, d->key);
        fputc(' ', out);
        if (d->type == CFG_STRING && strcmp(d->key, "key_secret") == 0) {
            fputs("\"<redacted>\"\n", out); // too short to be taken for a secret if reused
            continue;
        }
        switch (d->type) {
        case CFG_BOOL:
            fputs(*(const bool *)f ? "true" : "false", out);
            break;
        case CFG_INT:
            fprintf(out, "%" PRId64, *(const int64_t *)f);
            break;
        case CFG_DURATION:
            doc__duration(out, *(const uint64_t *)f);
            break;
        case CFG_DURATION_US: {
            char t[32];
            fputs(units_format_duration_us(*(const uint64_t *)f, t, sizeof(t)), out);
            break;
        }
        case CFG_SIZE:
            doc__size(out, *(const uint64_t *)f);
            break;
        case CFG_PERCENT:
            fprintf(out, "%.10g%%", *(const double *)f * 100.0);
            break;
        case CFG_STRING:
            doc__str(out, *(char *const *)f);
            break;
        case CFG_ENUM:
            doc__enum(out, d->choices, *(const int *)f);
            break;
        case CFG_STRLIST: {
            const struct cfg_strlist *l = f;
            fputc('[', out);
            for (size_t i = 0; i < l->n; i++) {
                if (i)
                    fputs(", ", out);
                doc__str(out, l->v[i]);
            }
            fputc(']', out);
            break;
        }
        case CFG_SECTION:
            break;
        }
        fputc('\n', out);
    }
}

static void doc__upstream(FILE *out, const struct gw_upstream *u)
{
    fputs("  ", out);
    doc__str(out, u->name);
    fputs(":\n    servers:\n", out);
    for (size_t i = 0; i < u->nservers; i++) {
        const struct gw_upserver *s = &u->servers[i];
        fputs("      - {address: ", out);
        doc__str(out, s->spec);
        fprintf(out, ", weight: %" PRId64 ", backup: %s}\n", s->weight,
                s->backup ? "true" : "false");
    }
    doc__table(out, gwconf__upstream_desc, u, 4, NULL);
    if (u->health.enabled) {
        fputs("    health:\n", out);
        doc__table(out, gwconf__health_desc, u, 6, NULL);
    }
    if (u->tls.enabled) {
        fputs("    tls:\n", out);
        doc__table(out, gwconf__tls_desc, u, 6, NULL);
    }
}

static void doc__route(FILE *out, const struct gw_route *r)
{
    bool first = true;
    fputs("  - ", out);
    doc__table(out, gwconf__route_desc, r, 4, &first);
    if (r->cache.enabled) {
        fputs("    cache:\n", out);
        doc__table(out, gwconf__rcache_desc, r, 6, NULL);
    }
    if (r->breaker.enabled) {
        fputs("    breaker:\n", out);
        doc__table(out, gwconf__breaker_desc, r, 6, NULL);
    }
    if (r->rate_limit.enabled) {
        fputs("    rate_limit:\n", out);
        doc__table(out, gwconf__ratelimit_desc, r, 6, NULL);
    }
    if (r->compress.enabled) {
        fputs("    compress:\n", out);
        doc__table(out, gwconf__compress_desc, r, 6, NULL);
    }
    if (r->fallback.enabled) {
        fputs("    fallback:\n", out);
        doc__table(out, gwconf__fallback_desc, r, 6, NULL);
        if (r->fallback.nheaders > 0) {
            fputs("      headers:\n", out);
            for (size_t i = 0; i < r->fallback.nheaders; i++) {
                fputs("        ", out);
                doc__str(out, r->fallback.headers[i].name);
                fputs(": ", out);
                doc__str(out, r->fallback.headers[i].value);
                fputc('\n', out);
            }
        }
    }
}

void gwconf_dump(const struct gw_config *c, FILE *out)
{
    fprintf(out, "# effective configuration of %s: every key with its value, defaults included\n",
            c->path ? c->path : "(string)");
    fputs("listen:\n", out);
    for (size_t i = 0; i < c->nlisten; i++) {
        const struct gw_listen_tls *t = &c->listen[i].tls;
        if (!t->enabled) {
            fputs("  - ", out);
            doc__str(out, c->listen[i].spec);
            fputc('\n', out);
            continue;
        }
        fputs("  - address: ", out);
        doc__str(out, c->listen[i].spec);
        fputs("\n    tls:\n      certs:\n", out);
        for (size_t k = 0; k < t->ncerts; k++) {
            fputs("        - {cert: ", out);
            doc__str(out, t->certs[k].cert);
            fputs(", key: ", out);
            doc__str(out, t->certs[k].key);
            fputs("}\n", out);
        }
        struct gw_listen_tls rest = *t; /* cert/key are in certs already */
        rest.cert = rest.key = NULL;
        doc__table(out, gwconf__listen_tls_desc, &rest, 6, NULL);
    }
    if (c->admin_enabled) {
        fputs("admin:\n", out);
        doc__table(out, gwconf__admin_desc, c, 2, NULL);
    } else {
        fputs("admin: off\n", out);
    }
    for (const struct cfg_desc *d = gwconf__root_desc; d->key; d++) {
        const struct cfg_desc one[] = {*d, {NULL}};
        doc__table(out, one, c, 0, NULL);
    }
    fputs(c->nupstreams ? "upstreams:\n" : "upstreams: {}\n", out);
    for (size_t i = 0; i < c->nupstreams; i++)
        doc__upstream(out, &c->upstreams[i]);
    fputs(c->nroutes ? "routes:\n" : "routes: []\n", out);
    for (size_t i = 0; i < c->nroutes; i++)
        doc__route(out, &c->routes[i]);
}
