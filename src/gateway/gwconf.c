/* Gateway config: descriptor tables for every section (config/cfg.h fills, bounds-checks and
 * documents the plain keys) plus the parts a table cannot express — `listen` as a string or a
 * list, the `upstreams` map, the `routes` list, server specs, fallback headers — and the checks
 * across sections (a route's upstream must exist). Every error of a file is collected. */
#include "gateway/gwconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/keyhash.h"
#include "cache/l2redis.h"
#include "codec/codec.h"
#include "config/yaml.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "gateway/gwconf_env.h"
#include "gateway/gwconf_priv.h"
#include "gateway/retry.h"
#include "gateway/route.h"
#include "gateway/worker.h"
#include "net/sock.h"
#include "net/tls.h"


/* ---- helpers ---- */

/* An empty YAML value (`cache:` with nothing after it) stands for an empty map. */
static bool gwconf__is_null(const struct ynode *n)
{
    return n != NULL && n->type == YNODE_SCALAR && !n->quoted &&
           (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0);
}

static bool gwconf__in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* Applies table <desc> to <base> from map <map> with cfg_apply_at() (defaults, values, unknown
 * keys named by the section path <where>, <manual> keys left to the caller). At the top level
 * (<where> ""), "x-" keys are the user's (as in docker-compose): a place for YAML anchors shared
 * by several routes or upstreams, so they are taken out of a shallow copy of the map first. */
static void gwconf__apply(const struct ynode *map, const char *where, const struct cfg_desc *desc,
                          const char *const *manual, void *base, struct cfg_errors *errs)
{
    struct ynode top;
    bool own = *where == '\0' && map != NULL && map->type == YNODE_MAP;
    if (own) {
        top = *map;
        top.items = xcalloc(map->n + 1, sizeof(*top.items));
        top.n = 0;
        for (size_t i = 0; i < ynode_size(map); i++) {
            if (strncmp(ynode_key(map, i)->str, "x-", 2) == 0)
                continue;
            top.items[top.n++] = map->items[2 * i];
            top.items[top.n++] = map->items[2 * i + 1];
        }
        map = &top;
    }
    cfg_apply_at(desc, base, map, where, manual, errs);
    if (own)
        free(top.items);
}

static const struct ynode *gwconf__get(const struct ynode *map, const char *key)
{
    return map && map->type == YNODE_MAP ? ynode_get(map, key) : NULL;
}

/* An HTTP token (RFC 9110 5.6.2): what a header name or a method may contain. */
static bool gwconf__token_ok(const char *t)
{
    if (*t == '\0')
        return false;
    for (; *t; t++)
        if (!isalnum((unsigned char)*t) && strchr("!#$%&'*+-.^_`|~", *t) == NULL)
            return false;
    return true;
}

/* A host name for a Host header or a Host match: visible characters, no spaces, no '/', no
 * CR/LF (a config value must never be able to inject a header). */
static bool gwconf__host_value_ok(const char *h)
{
    if (*h == '\0')
        return false;
    for (; *h; h++)
        if (!isgraph((unsigned char)*h) || *h == '/' || *h == ',')
            return false;
    return true;
}

/* ---- listen / admin ---- */

/* Adds listen address <s>. From the file (<errs> set) errors go to <errs> at node <n>; from the
 * command line (<errs> NULL) into <err>. Port 0 is refused: the supervisor binds one socket per
 * thread, and N sockets on "any free port" would be N different ports. */
static int gwconf__add_listen(struct gw_config *c, const struct ynode *n, const char *s,
                              struct cfg_errors *errs, char *err, size_t errlen)
{
    struct sock_addr a;
    char e[256] = "";
    bool parsed = sock_parse_addr(s, &a, e, sizeof(e)) == 0;
    if (!parsed || sock_addr_port(&a) == 0) {
        if (errs)
        {
            cfg_error(errs, n, "listen: bad address '%s'; allowed: host:port with a numeric "
                               "host or localhost and a port 1..65535 (e.g. 127.0.0.1:8080)", s);
        }
        else
            snprintf(err, errlen, "bad listen address '%s'; expected host:port with a numeric "
                                  "host or localhost and a port 1..65535", s);
        return -1;
    }
    for (size_t i = 0; i < c->nlisten; i++) {
        if (c->listen[i].addr.len == a.len && memcmp(&c->listen[i].addr.ss, &a.ss, a.len) == 0) {
            if (errs)
                cfg_error(errs, n, "listen: %s is listed twice; give each address once", s);
            else
                snprintf(err, errlen, "listen address '%s' given twice", s);
            return -1;
        }
    }
    c->listen = xrealloc(c->listen, (c->nlisten + 1) * sizeof(*c->listen));
    memset(&c->listen[c->nlisten], 0, sizeof(c->listen[0]));
    c->listen[c->nlisten].spec = xstrdup(s);
    c->listen[c->nlisten].addr = a;
    c->nlisten++;
    return 0;
}

/* <rel> read against the folder of the config file <cfgpath>, as nginx reads certificate paths
 * against its prefix: a config moved with its certificates keeps working from any working
 * directory. Absolute paths, and configs without a folder ("gw.yaml", "<stdin>"), as given. */
static char *gwconf__path_at(const char *cfgpath, const char *rel)
{
    const char *slash = cfgpath ? strrchr(cfgpath, '/') : NULL;
    if (rel[0] == '/' || slash == NULL)
        return xstrdup(rel);
    size_t dl = (size_t)(slash - cfgpath) + 1;
    char *p = xmalloc(dl + strlen(rel) + 1);
    memcpy(p, cfgpath, dl);
    strcpy(p + dl, rel);
    return p;
}

static void gwconf__listen_tls_free(struct gw_listen_tls *t)
{
    cfg_free_section(gwconf__listen_tls_desc, t);
    for (size_t i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert);
        free(t->certs[i].key);
    }
    free(t->certs);
    memset(t, 0, sizeof(*t));
}

/* Replaces the path in <*p> by the same path read against the config file's folder. */
static void gwconf__resolve(const struct gw_config *c, char **p)
{
    if (*p == NULL)
        return;
    char *r = gwconf__path_at(c->path, *p);
    free(*p);
    *p = r;
}

/* Loads the certificates of <t> as the worker will (tls_server_create): each pair alone first, so
 * a key that does not match its certificate is reported at that pair's position, then all of
 * them with the client CA and the cipher list. */
static void gwconf__listen_tls_load(const struct gw_listen_tls *t, const struct ynode *tn,
                                    const struct ynode *const *certn, const char *where,
                                    struct cfg_errors *errs)
{
    struct tls_server_cert *cs = xcalloc(t->ncerts, sizeof(*cs));
    for (size_t i = 0; i < t->ncerts; i++)
        cs[i] = (struct tls_server_cert){t->certs[i].cert, t->certs[i].key};
    struct tls_server_opts o = {
        .min_version = t->min_version == 1 ? 13 : 12,
        .tickets = t->session_tickets,
        .ticket_rotate_s = (unsigned)(t->ticket_rotation_ms / 1000),
        .session_cache = (long)t->session_cache,
    };
    char e[1024];
    size_t before = errs->n;
    for (size_t i = 0; i < t->ncerts; i++) {
        o.certs = &cs[i];
        o.ncerts = 1;
        struct tls_server *ts = tls_server_create(&o, e, sizeof(e));
        if (ts == NULL)
            cfg_error(errs, certn[i], "%s: %s", where, e);
        tls_server_destroy(ts);
    }
    if (errs->n == before) {
        o.certs = cs;
        o.ncerts = t->ncerts;
        o.client_ca = t->client_ca;
        o.ciphers = t->ciphers;
        struct tls_server *ts = tls_server_create(&o, e, sizeof(e));
        if (ts == NULL)
            cfg_error(errs, tn, "%s: %s", where, e);
        tls_server_destroy(ts);
    }
    free(cs);
}

/* `tls:` of listen entry <l>: the table keys, the `cert`/`key` shorthand and the `certs` list,
 * paths resolved, every file readable, then loaded. */
static void gwconf__parse_listen_tls(struct gw_config *c, struct gw_listen *l,
                                     const struct ynode *tn, const char *where,
                                     struct cfg_errors *errs)
{
    struct gw_listen_tls *t = &l->tls;
    if (tn->type != YNODE_MAP) {
        cfg_error(errs, tn, "%s: expected a map with cert and key (or certs), got a %s", where,
                  ynode_type_name(tn));
        return;
    }
    t->enabled = true;
    size_t before = errs->n;
    gwconf__apply(tn, where, gwconf__listen_tls_desc, gwconf__listen_tls_manual, t, errs);
    const struct ynode *list = ynode_get(tn, "certs");
    size_t max = 1 + (list && list->type == YNODE_SEQ ? ynode_size(list) : 0);
    t->certs = xcalloc(max, sizeof(*t->certs));
    const struct ynode **certn = xcalloc(max, sizeof(*certn));
    long *listi = xcalloc(max, sizeof(*listi)); /* index in certs:, -1 for the shorthand */
    if (t->cert != NULL || t->key != NULL) {
        if (t->cert == NULL || t->key == NULL)
            cfg_error(errs, tn, "%s: cert and key go together; give both", where);
        else {
            certn[t->ncerts] = ynode_get(tn, "cert");
            listi[t->ncerts] = -1;
            t->certs[t->ncerts].cert = gwconf__path_at(c->path, t->cert);
            t->certs[t->ncerts++].key = gwconf__path_at(c->path, t->key);
        }
    }
    if (list != NULL && list->type != YNODE_SEQ)
        cfg_error(errs, list, "%s.certs: expected a list of {cert, key} maps, got a %s", where,
                  ynode_type_name(list));
    for (size_t i = 0; list && list->type == YNODE_SEQ && i < ynode_size(list); i++) {
        const struct ynode *it = ynode_item(list, i);
        if (it->type != YNODE_MAP) {
            cfg_error(errs, it, "%s.certs[%zu]: expected a map {cert: FILE, key: FILE}, got a %s",
                      where, i, ynode_type_name(it));
            continue;
        }
        const struct ynode *cn = ynode_get(it, "cert"), *kn = ynode_get(it, "key");
        for (size_t k = 0; k < ynode_size(it); k++) {
            const struct ynode *key = ynode_key(it, k);
            if (strcmp(key->str, "cert") != 0 && strcmp(key->str, "key") != 0)
                cfg_error(errs, key, "%s.certs[%zu]: unknown key '%s'; known keys: cert, key",
                          where, i, key->str);
        }
        if (cn == NULL || kn == NULL || cn->type != YNODE_SCALAR || kn->type != YNODE_SCALAR ||
            cn->len == 0 || kn->len == 0) {
            cfg_error(errs, it, "%s.certs[%zu]: give cert and key, two PEM file paths", where, i);
            continue;
        }
        certn[t->ncerts] = it;
        listi[t->ncerts] = (long)i;
        t->certs[t->ncerts].cert = gwconf__path_at(c->path, cn->str);
        t->certs[t->ncerts++].key = gwconf__path_at(c->path, kn->str);
    }
    if (errs->n == before && t->ncerts == 0)
        cfg_error(errs, tn, "%s: no certificate; give cert and key, or certs: [{cert, key}, ...]",
                  where);
    gwconf__resolve(c, &t->cert);
    gwconf__resolve(c, &t->key);
    gwconf__resolve(c, &t->client_ca);
    /* Unreadable files at the key that names them, with the path as resolved. */
    for (size_t i = 0; i < t->ncerts; i++) {
        const struct ynode *in = certn[i];
        const char *paths[] = {t->certs[i].cert, t->certs[i].key};
        const char *names[] = {"cert", "key"};
        for (int k = 0; k < 2; k++) {
            if (access(paths[k], R_OK) == 0)
                continue;
            const struct ynode *at = listi[i] < 0 ? ynode_get(tn, names[k])
                                                  : ynode_get(in, names[k]);
            char sub[64] = "";
            if (listi[i] >= 0)
                snprintf(sub, sizeof(sub), ".certs[%ld]", listi[i]);
            cfg_error(errs, at ? at : in, "%s%s.%s: cannot read '%s': %s; give a readable PEM "
                      "file (relative paths start at the config file's folder)", where, sub,
                      names[k], paths[k], strerror(errno));
        }
    }
    if (t->client_ca != NULL && access(t->client_ca, R_OK) != 0)
        cfg_error(errs, ynode_get(tn, "client_ca"), "%s.client_ca: cannot read '%s': %s; give a "
                  "readable PEM file of CA certificates", where, t->client_ca, strerror(errno));
    if (t->client_ca == NULL && ynode_get(tn, "verify_client") != NULL)
        cfg_error(errs, ynode_get(tn, "verify_client"), "%s.verify_client: without client_ca "
                  "no client certificate is asked; give client_ca: FILE (the CAs that sign "
                  "client certificates)", where);
    if (errs->n == before)
        gwconf__listen_tls_load(t, tn, certn, where, errs);
    free(listi);
    free(certn);
}

/* One entry of `listen:`: "host:port" (plain HTTP) or {address: host:port, tls: {...}}. */
static void gwconf__parse_listen_item(struct gw_config *c, const struct ynode *it, size_t i,
                                      struct cfg_errors *errs)
{
    if (it->type == YNODE_SCALAR) {
        gwconf__add_listen(c, it, it->str, errs, NULL, 0);
        return;
    }
    if (it->type != YNODE_MAP) {
        cfg_error(errs, it, "listen[%zu]: expected host:port or {address: host:port, tls: {...}}, "
                            "got a %s", i, ynode_type_name(it));
        return;
    }
    for (size_t k = 0; k < ynode_size(it); k++) {
        const struct ynode *key = ynode_key(it, k);
        if (strcmp(key->str, "address") != 0 && strcmp(key->str, "tls") != 0)
            cfg_error(errs, key, "listen[%zu]: unknown key '%s'; known keys: address, tls", i,
                      key->str);
    }
    const struct ynode *an = ynode_get(it, "address"), *tn = ynode_get(it, "tls");
    if (an == NULL || an->type != YNODE_SCALAR) {
        cfg_error(errs, an ? an : it, "listen[%zu].address: missing; give host:port", i);
        return;
    }
    if (gwconf__add_listen(c, an, an->str, errs, NULL, 0) != 0 || tn == NULL)
        return;
    char where[48];
    snprintf(where, sizeof(where), "listen[%zu].tls", i);
    gwconf__parse_listen_tls(c, &c->listen[c->nlisten - 1], tn, where, errs);
}

/* `listen:` is one address or a list of them (DESIGN.md writes the short form); a list entry may
 * be a map with `tls:`. */
static void gwconf__parse_listen(struct gw_config *c, const struct ynode *n,
                                 struct cfg_errors *errs)
{
    if (n == NULL) {
        gwconf__add_listen(c, NULL, "127.0.0.1:8080", errs, NULL, 0);
        return;
    }
    if (n->type == YNODE_SCALAR) {
        gwconf__add_listen(c, n, n->str, errs, NULL, 0);
        return;
    }
    if (n->type == YNODE_MAP) {
        gwconf__parse_listen_item(c, n, 0, errs);
        return;
    }
    if (n->type != YNODE_SEQ || ynode_size(n) == 0) {
        cfg_error(errs, n, "listen: expected an address or a non-empty list of addresses "
                           "(host:port or {address: host:port, tls: {cert: FILE, key: FILE}})");
        return;
    }
    for (size_t i = 0; i < ynode_size(n); i++)
        gwconf__parse_listen_item(c, ynode_item(n, i), i, errs);
}

/* Sets the admin listener from <s>: an address, or "off"/false (YAML's `off` is a string to us,
 * as the table declares admin a string). */
static int gwconf__admin(struct gw_config *c, const char *s, char *err, size_t errlen)
{
    if (s == NULL || strcmp(s, "off") == 0 || strcmp(s, "false") == 0) {
        c->admin_enabled = false;
        return 0;
    }
    char e[256];
    if (sock_parse_addr(s, &c->admin_addr, e, sizeof(e)) != 0 ||
        sock_addr_port(&c->admin_addr) == 0) {
        snprintf(err, errlen, "bad address '%s'; allowed: host:port with a numeric host or "
                              "localhost and a port 1..65535 (e.g. 127.0.0.1:9901), or off", s);
        return -1;
    }
    c->admin_enabled = true;
    return 0;
}

/* `admin:` is an address (or off) or a map of gwconf__admin_desc; the address is checked with
 * the other cross-section rules (gwconf__check_globals), after every section has its values. */
static void gwconf__parse_admin(struct gw_config *c, const struct ynode *n,
                                struct cfg_errors *errs)
{
    if (n != NULL && n->type == YNODE_MAP) {
        gwconf__apply(n, "admin", gwconf__admin_desc, NULL, c, errs);
        return;
    }
    cfg_defaults(gwconf__admin_desc, c);
    if (n == NULL)
        return;
    if (n->type != YNODE_SCALAR) {
        cfg_error(errs, n, "admin: expected host:port, off, or a map {address, token_file, ...}, "
                           "got a %s", ynode_type_name(n));
        return;
    }
    struct cfg_desc d = gwconf__admin_desc[0];
    d.key = "admin";
    cfg_parse_scalar(&d, n, &c->admin, errs);
}

/* Reads admin.token_file into c->admin_cfg.token: one line of 16 to 4096 visible characters
 * (what a header can carry; trailing white space and the newline are not part of it). */
static int gwconf__read_token(struct gw_config *c, char *why, size_t whylen)
{
    const char *path = c->admin_cfg.token_file;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    char tok[4098];
    size_t n = fread(tok, 1, sizeof(tok), f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        snprintf(why, whylen, "cannot read '%s'", path);
        return -1;
    }
    while (n > 0 && isspace((unsigned char)tok[n - 1]))
        n--;
    const char *rule = "a token of 16 to 4096 visible ASCII characters on one line, e.g. from "
                       "'openssl rand -hex 32'";
    if (n < 16 || n > 4096) {
        snprintf(why, whylen, "'%s' holds %s%zu characters; %s", path, n > 4096 ? "over " : "",
                 n > 4096 ? (size_t)4096 : n, rule);
        explicit_bzero(tok, sizeof(tok));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isgraph((unsigned char)tok[i])) {
            snprintf(why, whylen, "'%s' has a space or control character at byte %zu; %s", path,
                     i + 1, rule);
            explicit_bzero(tok, sizeof(tok));
            return -1;
        }
    }
    c->admin_cfg.token = xstrndup(tok, n);
    c->admin_cfg.token_len = n;
    explicit_bzero(tok, sizeof(tok));
    return 0;
}

/* The admin rule: off loopback, mutating endpoints need a token, or an explicit insecure. */
static int gwconf__admin_policy(const struct gw_config *c, char *err, size_t errlen)
{
    if (!c->admin_enabled || sock_addr_is_loopback(&c->admin_addr) ||
        c->admin_cfg.token_file != NULL || c->admin_cfg.insecure)
        return 0;
    snprintf(err, errlen, "%s is not a loopback address and has no token_file: anyone who "
                          "reaches it could purge the cache; set admin.token_file (then POST "
                          "/cache/purge needs 'Authorization: Bearer TOKEN'), bind it to "
                          "127.0.0.1, or accept that with admin.insecure: true", c->admin);
    return -1;
}

bool gwconf_admin_open(const struct gw_config *c)
{
    return c->admin_enabled && !sock_addr_is_loopback(&c->admin_addr) &&
           c->admin_cfg.token == NULL;
}

/* ---- upstreams ---- */

/* A host the resolver can be asked about: DNS letters, digits, '-', '.', '_' (SRV-style names),
 * or ':' for IPv6 literals. Anything else is a typo that DNS would only reject later. */
static bool gwconf__hostname_ok(const char *h)
{
    if (*h == '\0' || strlen(h) > 253)
        return false;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_' && *p != ':')
            return false;
    return true;
}

/* Parses "host:port", "[v6]:port", "http://host[:port][/]" or "https://…" into <s>. */
static int gwconf__parse_server(const char *spec, struct gw_upserver *s, char *err, size_t errlen)
{
    const char *p = spec;
    int defport = 0;
    if (strncasecmp(p, "http://", 7) == 0) {
        p += 7;
        defport = 80;
    } else if (strncasecmp(p, "https://", 8) == 0) {
        p += 8;
        defport = 443;
        s->tls = true;
    } else if (strstr(p, "://") != NULL) {
        snprintf(err, errlen, "'%s': unsupported scheme; use host:port, http:// or https://", spec);
        return -1;
    }
    char hostport[300];
    size_t hl = strcspn(p, "/?#");
    if (p[hl] != '\0' && strcmp(p + hl, "/") != 0) {
        snprintf(err, errlen, "'%s': a server is an address, it cannot carry a path or a query",
                 spec);
        return -1;
    }
    if (hl == 0 || hl >= sizeof(hostport)) {
        snprintf(err, errlen, "'%s': missing host", spec);
        return -1;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    char host[300];
    const char *portstr = NULL;
    if (hostport[0] == '[') {
        char *close = strchr(hostport, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            snprintf(err, errlen, "'%s': expected [ipv6]:port", spec);
            return -1;
        }
        *close = '\0';
        snprintf(host, sizeof(host), "%s", hostport + 1);
        portstr = close[1] == ':' ? close + 2 : NULL;
    } else {
        char *colon = strrchr(hostport, ':');
        if (colon != NULL) {
            *colon = '\0';
            portstr = colon + 1;
        }
        snprintf(host, sizeof(host), "%s", hostport);
    }
    long port = defport;
    if (portstr != NULL) {
        char *end;
        port = strtol(portstr, &end, 10);
        if (*portstr == '\0' || *end != '\0' || port < 1 || port > 65535) {
            snprintf(err, errlen, "'%s': port must be a number from 1 to 65535", spec);
            return -1;
        }
    }
    if (port == 0) {
        snprintf(err, errlen, "'%s': missing port; write host:port or http(s)://host", spec);
        return -1;
    }
    if (!gwconf__hostname_ok(host)) {
        snprintf(err, errlen, "'%s': bad host name '%s'", spec, host);
        return -1;
    }
    char probe[340], e[256];
    if (strchr(host, ':'))
        snprintf(probe, sizeof(probe), "[%s]:%ld", host, port);
    else
        snprintf(probe, sizeof(probe), "%s:%ld", host, port);
    s->numeric = sock_parse_addr(probe, &s->addr, e, sizeof(e)) == 0;
    if (!s->numeric && strchr(host, ':')) {
        snprintf(err, errlen, "'%s': bad IPv6 address", spec);
        return -1;
    }
    /* Owned by the server only once it is valid: the caller drops a failed one as is. */
    s->spec = xstrdup(spec);
    s->host = xstrdup(host);
    s->port = (int)port;
    return 0;
}

/* `servers:` items are strings or {address, weight, backup} maps; a lone string is accepted for
 * an upstream with one server. An empty list is an error rather than an upstream that can only
 * answer 502. */
static void gwconf__parse_servers(struct gw_upstream *u, const struct ynode *n, const char *where,
                                  const struct ynode *at, struct cfg_errors *errs)
{
    if (n == NULL) {
        cfg_error(errs, at, "%s.servers: missing; list at least one server (host:port or "
                            "http(s)://host:port)", where);
        return;
    }
    if (n->type == YNODE_SCALAR && !gwconf__is_null(n)) {
        /* a single server written without brackets */
    } else if (n->type != YNODE_SEQ || ynode_size(n) == 0) {
        cfg_error(errs, n, "%s.servers: empty; list at least one server (host:port or "
                           "http(s)://host:port)", where);
        return;
    }
    size_t cnt = n->type == YNODE_SEQ ? ynode_size(n) : 1;
    u->servers = xcalloc(cnt, sizeof(*u->servers));
    for (size_t i = 0; i < cnt; i++) {
        const struct ynode *it = n->type == YNODE_SEQ ? ynode_item(n, i) : n;
        struct gw_upserver s = {.weight = 1};
        const struct ynode *addr = it;
        if (it->type == YNODE_MAP) {
            static const char *const keys[] = {"address", "weight", "backup", NULL};
            for (size_t k = 0; k < ynode_size(it); k++) {
                const struct ynode *key = ynode_key(it, k);
                if (key->type != YNODE_SCALAR || !gwconf__in_list(keys, key->str))
                    cfg_error(errs, key, "%s.servers[%zu]: unknown key '%s'; known keys: "
                                         "address, weight, backup", where, i,
                              key->type == YNODE_SCALAR ? key->str : "?");
            }
            addr = ynode_get(it, "address");
            const struct ynode *w = ynode_get(it, "weight");
            const struct ynode *b = ynode_get(it, "backup");
            static const struct cfg_desc wd = {"weight", CFG_INT, 0, "1", "1", "1000",
                                               "relative share of requests", NULL, NULL, false};
            static const struct cfg_desc bd = {"backup", CFG_BOOL, 0, "false", NULL, NULL,
                                               "backup server", NULL, NULL, false};
            if (w)
                cfg_parse_scalar(&wd, w, &s.weight, errs);
            if (b)
                cfg_parse_scalar(&bd, b, &s.backup, errs);
            if (addr == NULL) {
                cfg_error(errs, it, "%s.servers[%zu].address: missing; give host:port", where, i);
                continue;
            }
        }
        if (addr->type != YNODE_SCALAR) {
            cfg_error(errs, addr, "%s.servers[%zu]: expected host:port or a map with address, "
                                  "got a %s", where, i, ynode_type_name(addr));
            continue;
        }
        char e[400];
        if (gwconf__parse_server(addr->str, &s, e, sizeof(e)) != 0) {
            cfg_error(errs, addr, "%s.servers[%zu]: %s", where, i, e);
            continue;
        }
        u->servers[u->nservers++] = s;
    }
}

/* Loads the TLS files of <u> as the worker will (tls_client_create), so that a file that is
 * readable but no PEM, or a key that does not match its certificate, fails check and a reload at
 * the config's position instead of stopping the first worker at start. */
static void gwconf__tls_files_load(const struct gw_upstream *u, const struct ynode *t,
                                   const char *sub, struct cfg_errors *errs)
{
    struct tls_client_opts o = {
        .verify = u->tls.verify,
        .ca_file = u->tls.ca_file,
        .cert_file = u->tls.cert_file,
        .key_file = u->tls.key_file,
    };
    char e[512];
    struct tls_client *tc = tls_client_create(&o, e, sizeof(e));
    if (tc == NULL)
        cfg_error(errs, t, "%s: %s", sub, e);
    else
        tls_client_destroy(tc);
}

/* One `upstreams.NAME:` entry: the table keys, then servers, then the sections that switch on by
 * presence (health, tls), then checks across keys. */
static void gwconf__parse_upstream(struct gw_upstream *u, const struct ynode *key,
                                   const struct ynode *val, struct cfg_errors *errs)
{
    char where[300];
    snprintf(where, sizeof(where), "upstreams.%s", key->str);
    u->name = xstrdup(key->str);
    gwconf__apply(val, where, gwconf__upstream_desc, gwconf__upstream_manual, u, errs);
    if (val == NULL || val->type != YNODE_MAP) {
        if (val != NULL && gwconf__is_null(val))
            cfg_error(errs, val, "%s: empty; an upstream needs servers", where);
        cfg_defaults(gwconf__health_desc, u);
        cfg_defaults(gwconf__tls_desc, u);
        return;
    }
    gwconf__parse_servers(u, ynode_get(val, "servers"), where, key, errs);

    char sub[340];
    const struct ynode *h = ynode_get(val, "health");
    snprintf(sub, sizeof(sub), "%s.health", where);
    if (h != NULL) {
        gwconf__apply(h, sub, gwconf__health_desc, NULL, u, errs);
        u->health.enabled = true;
        if (u->health.path && u->health.path[0] != '/')
            cfg_error(errs, h, "%s.path: '%s' must start with '/'", sub, u->health.path);
        if (u->health.timeout_ms >= u->health.interval_ms) {
            const struct ynode *tn = gwconf__get(h, "timeout");
            if (tn == NULL) /* the default follows a short interval */
                u->health.timeout_ms = u->health.interval_ms / 2 ? u->health.interval_ms / 2 : 1;
            else
                cfg_error(errs, tn, "%s.timeout: %llums is not below interval %llums; a probe "
                                    "must end before the next one", sub,
                          (unsigned long long)u->health.timeout_ms,
                          (unsigned long long)u->health.interval_ms);
        }
        if (u->health.expect_min > u->health.expect_max)
            cfg_error(errs, h, "%s: expect_min %lld is above expect_max %lld", sub,
                      (long long)u->health.expect_min, (long long)u->health.expect_max);
    } else {
        cfg_defaults(gwconf__health_desc, u);
    }

    const struct ynode *t = ynode_get(val, "tls");
    snprintf(sub, sizeof(sub), "%s.tls", where);
    if (t != NULL)
        gwconf__apply(t, sub, gwconf__tls_desc, NULL, u, errs);
    else
        cfg_defaults(gwconf__tls_desc, u);
    bool any_tls = t != NULL;
    for (size_t i = 0; i < u->nservers; i++)
        any_tls |= u->servers[i].tls;
    if (any_tls) {
        u->tls.enabled = true;
        for (size_t i = 0; i < u->nservers; i++)
            u->servers[i].tls = true;
        size_t before_tls = errs->n;
        const char *files[] = {u->tls.ca_file, u->tls.cert_file, u->tls.key_file};
        const char *names[] = {"ca_file", "cert_file", "key_file"};
        for (int i = 0; i < 3; i++)
            if (files[i] && access(files[i], R_OK) != 0)
                cfg_error(errs, t ? ynode_get(t, names[i]) : key,
                          "%s.%s: cannot read '%s'; give a readable PEM file", sub, names[i],
                          files[i]);
        if ((u->tls.cert_file == NULL) != (u->tls.key_file == NULL))
            cfg_error(errs, t, "%s: cert_file and key_file go together; give both or neither",
                      sub);
        else if (errs->n == before_tls && (u->tls.ca_file || u->tls.cert_file))
            gwconf__tls_files_load(u, t, sub, errs);
    }
    if (u->host && !gwconf__host_value_ok(u->host))
        cfg_error(errs, ynode_get(val, "host"), "%s.host: '%s' is not a host name for a Host "
                                                "header; e.g. api.example.com or api:8080",
                  where, u->host);
    if (u->pool.max_idle > u->pool.max_connections) {
        /* The default max_idle follows a smaller max_connections; a written one must fit. */
        const struct ynode *mi = gwconf__get(gwconf__get(val, "pool"), "max_idle");
        if (mi == NULL)
            u->pool.max_idle = u->pool.max_connections;
        else
            cfg_error(errs, mi, "%s.pool.max_idle: %lld is above max_connections %lld; at most "
                                "max_connections", where, (long long)u->pool.max_idle,
                      (long long)u->pool.max_connections);
    }
}

/* `upstreams:` is a map so that routes can name an upstream; the order of the file is kept in
 * the array (upstream_index is stable for the data path). */
static void gwconf__parse_upstreams(struct gw_config *c, const struct ynode *n,
                                    struct cfg_errors *errs)
{
    if (n == NULL || gwconf__is_null(n))
        return;
    if (n->type != YNODE_MAP) {
        cfg_error(errs, n, "upstreams: expected a map of name: {servers: [...]}, got a %s",
                  ynode_type_name(n));
        return;
    }
    size_t cnt = ynode_size(n);
    c->upstreams = xcalloc(cnt ? cnt : 1, sizeof(*c->upstreams));
    for (size_t i = 0; i < cnt; i++) {
        const struct ynode *k = ynode_key(n, i);
        if (k->type != YNODE_SCALAR || k->len == 0) {
            cfg_error(errs, k, "upstreams: a name must be a non-empty string");
            continue;
        }
        if (gwconf_upstream_index(c, k->str) >= 0) {
            cfg_error(errs, k, "upstreams.%s: defined twice; names must be unique", k->str);
            continue;
        }
        struct gw_upstream *u = &c->upstreams[c->nupstreams++];
        gwconf__parse_upstream(u, k, ynode_value(n, i), errs);
    }
}

/* ---- routes ---- */

/* The words of `retry.on` / `breaker.failure_statuses`, checked here as resil.c will read them
 * (retry_on_parse), so a typo is a load error and not a silently ignored condition. */
static void gwconf__check_on(const struct ynode *sec, const char *key,
                             const struct cfg_strlist *l, const char *where,
                             struct cfg_errors *errs)
{
    if (sec == NULL || l->n == 0)
        return;
    struct retry_on on;
    const char *bad = NULL;
    if (retry_on_parse((const char *const *)l->v, l->n, &on, &bad) == 0)
        return;
    const struct ynode *v = ynode_get(sec, key);
    cfg_error(errs, v != NULL ? v : sec,
              "%s.%s: '%s' is not a failure kind; use connect_error, reset, timeout, 5xx or a "
              "status 500..599",
              where, key, bad);
}

/* `compress:` — the table, then the media types and codings checked by hand. */
static void gwconf__parse_compress(struct gw_route *r, const struct ynode *n, const char *where,
                                   struct cfg_errors *errs)
{
    gwconf__apply(n, where, gwconf__compress_desc, NULL, r, errs);
    struct gw_compress *z = &r->compress;
    z->enabled = true;
    const struct ynode *tn = gwconf__get(n, "types");
    for (size_t i = 0; i < z->types.n; i++) {
        const char *t = z->types.v[i];
        const char *slash = strchr(t, '/');
        bool ok = slash != NULL && slash != t && slash[1] != '\0' && strchr(slash + 1, '/') == NULL;
        for (const char *q = t; ok && *q; q++)
            ok = *q > ' ' && *q < 127 && *q != ';' && *q != ',' &&
                 (*q != '*' || (q == slash + 1 && q[1] == '\0'));
        if (!ok) {
            const struct ynode *v = tn != NULL && tn->type == YNODE_SEQ ? ynode_item(tn, i) : tn;
            cfg_error(errs, v != NULL ? v : n,
                      "%s.types: '%s' is not a media type; type/subtype (application/json) or "
                      "type/* (text/*)", where, t);
        }
    }
    const struct ynode *en = gwconf__get(n, "encodings");
    z->nenc = 0;
    if (z->encodings_str.n == 0) {
        z->enc[z->nenc++] = CODEC_BR;
        z->enc[z->nenc++] = CODEC_ZSTD;
        z->enc[z->nenc++] = CODEC_GZIP;
        return;
    }
    for (size_t i = 0; i < z->encodings_str.n; i++) {
        const char *e = z->encodings_str.v[i];
        int k = codec_from_name(e, strlen(e));
        const struct ynode *v = en != NULL && en->type == YNODE_SEQ ? ynode_item(en, i) : en;
        bool dup = false;
        for (size_t j = 0; j < z->nenc; j++)
            dup |= z->enc[j] == k;
        if (k <= CODEC_IDENTITY || strcmp(e, "x-gzip") == 0)
            cfg_error(errs, v != NULL ? v : n,
                      "%s.encodings: '%s' is not a coding the gateway makes; br, zstd or gzip",
                      where, e);
        else if (dup)
            cfg_error(errs, v != NULL ? v : n, "%s.encodings: '%s' is listed twice", where, e);
        else
            z->enc[z->nenc++] = k;
    }
}

/* `fallback:` — status and body from the table; headers are a free-form map (Name: value), so
 * they are read by hand and checked for what would break the response (':' in a name, CR/LF). */
static void gwconf__parse_fallback(struct gw_route *r, const struct ynode *n, const char *where,
                                   struct cfg_errors *errs)
{
    gwconf__apply(n, where, gwconf__fallback_desc, gwconf__fallback_manual, r, errs);
    r->fallback.enabled = true;
    r->fallback.body_len = r->fallback.body ? strlen(r->fallback.body) : 0;
    const struct ynode *h = gwconf__get(n, "headers");
    if (h == NULL || gwconf__is_null(h))
        return;
    if (h->type != YNODE_MAP) {
        cfg_error(errs, h, "%s.headers: expected a map of Name: value", where);
        return;
    }
    r->fallback.headers = xcalloc(ynode_size(h) + 1, sizeof(*r->fallback.headers));
    for (size_t i = 0; i < ynode_size(h); i++) {
        const struct ynode *k = ynode_key(h, i), *v = ynode_value(h, i);
        if (k->type != YNODE_SCALAR || !gwconf__token_ok(k->str)) {
            cfg_error(errs, k, "%s.headers: bad header name; letters, digits and -", where);
            continue;
        }
        if (v->type != YNODE_SCALAR || strpbrk(v->str, "\r\n") != NULL) {
            cfg_error(errs, v, "%s.headers.%s: expected a one-line string", where, k->str);
            continue;
        }
        r->fallback.headers[r->fallback.nheaders].name = xstrdup(k->str);
        r->fallback.headers[r->fallback.nheaders].value = xstrdup(v->str);
        r->fallback.nheaders++;
    }
}

/* `invalidate: {paths: [...], tags: [...]}` (the issue's spelling; `invalidate: [...]` and
 * `invalidate_tags: [...]` are the flat forms). Read into a scratch route so the map's defaults do
 * not wipe the flat keys, then moved over; a list given both ways is an error. <tags_node> and
 * <tags_key> become where the tags were written, for the tag checks' messages. */
static void gwconf__parse_invalidate(struct gw_route *r, const struct ynode *inv,
                                     const char *where, struct cfg_errors *errs,
                                     const struct ynode **tags_node, const char **tags_key)
{
    char sub[128];
    snprintf(sub, sizeof(sub), "%s.invalidate", where);
    struct gw_route *tmp = xcalloc(1, sizeof(*tmp));
    cfg_apply_at(gwconf__rinvalidate_desc, tmp, inv, sub, NULL, errs);
    struct cfg_strlist *from[2] = {&tmp->cache.invalidate, &tmp->cache.invalidate_tags};
    struct cfg_strlist *to[2] = {&r->cache.invalidate, &r->cache.invalidate_tags};
    const char *flat[2] = {"invalidate", "invalidate_tags"}, *inner[2] = {"paths", "tags"};
    for (int i = 0; i < 2; i++) {
        const struct ynode *in = ynode_get(inv, inner[i]);
        if (in == NULL)
            continue;
        if (i == 1) {
            *tags_node = in;
            *tags_key = "invalidate.tags";
        }
        if (to[i]->n > 0) {
            cfg_error(errs, in, "%s.%s: the same list is also given as %s; keep one of them",
                      sub, inner[i], flat[i]);
            continue;
        }
        free(to[i]->v);
        *to[i] = *from[i];
        memset(from[i], 0, sizeof(*from[i]));
    }
    cfg_free_section(gwconf__rinvalidate_desc, tmp);
    free(tmp);
}

/* `cache:` on a route: present means cached (even empty). Statuses are kept as written for the
 * dump and parsed into ints for the data path. */
static void gwconf__parse_rcache(struct gw_route *r, const struct ynode *n, const char *where,
                                 struct cfg_errors *errs)
{
    const struct ynode *inv = gwconf__get(n, "invalidate");
    bool inv_map = inv != NULL && inv->type == YNODE_MAP;
    if (inv_map) { /* the table reads the list form only: it sees the map without that key */
        struct ynode top = *n;
        top.items = xcalloc(n->n + 1, sizeof(*top.items));
        top.n = 0;
        for (size_t i = 0; i < ynode_size(n); i++) {
            if (ynode_value(n, i) == inv)
                continue;
            top.items[top.n++] = n->items[2 * i];
            top.items[top.n++] = n->items[2 * i + 1];
        }
        gwconf__apply(&top, where, gwconf__rcache_desc, NULL, r, errs);
        free(top.items);
    } else {
        gwconf__apply(n, where, gwconf__rcache_desc, NULL, r, errs);
    }
    r->cache.enabled = true;
    struct gw_route_cache *rc = &r->cache;
    const struct ynode *tags_node = gwconf__get(n, "invalidate_tags");
    const char *tags_key = "invalidate_tags";
    if (inv_map)
        gwconf__parse_invalidate(r, inv, where, errs, &tags_node, &tags_key);
    if (rc->statuses_str.n > 0) {
        rc->statuses = xcalloc(rc->statuses_str.n, sizeof(int));
        for (size_t i = 0; i < rc->statuses_str.n; i++) {
            char *end;
            long v = strtol(rc->statuses_str.v[i], &end, 10);
            if (*end != '\0' || v < 100 || v > 599) {
                cfg_error(errs, gwconf__get(n, "statuses"),
                          "%s.statuses: '%s' is not a status; numbers from 100 to 599", where,
                          rc->statuses_str.v[i]);
                continue;
            }
            rc->statuses[rc->nstatuses++] = (int)v;
        }
    }
    const struct ynode *paths_node = inv_map ? ynode_get(inv, "paths") : NULL;
    for (size_t i = 0; i < rc->invalidate.n; i++)
        if (rc->invalidate.v[i][0] != '/')
            cfg_error(errs, paths_node ? paths_node : inv,
                      "%s.%s: '%s' must be a path starting with '/'", where,
                      paths_node ? "invalidate.paths" : "invalidate", rc->invalidate.v[i]);
    for (size_t i = 0; i < rc->invalidate_tags.n; i++) {
        const char *t = rc->invalidate_tags.v[i];
        bool ok = t[0] != '\0' && strpbrk(t, " ,\t") == NULL;
        for (const char *b = strchr(t, '{'); ok && b != NULL; b = strchr(b + 1, '{')) {
            char *end;
            long v = strtol(b + 1, &end, 10);
            ok = end > b + 1 && *end == '}' && v >= 1 && v <= 32 && isdigit((unsigned char)b[1]);
        }
        if (!ok)
            cfg_error(errs, tags_node,
                      "%s.%s: '%s' is not a tag; one word (no space or comma), "
                      "{N} (1 to 32) for the Nth path segment after the match",
                      where, tags_key, t);
    }
    for (size_t i = 0; i < rc->vary.n; i++)
        if (!gwconf__token_ok(rc->vary.v[i]))
            cfg_error(errs, gwconf__get(n, "vary"),
                      "%s.vary: '%s' is not a header name; letters, digits and -", where,
                      rc->vary.v[i]);
}

/* `rate_limit:` — the table's keys, then the rate and the key forms, which the table only
 * knows as strings. */
static void gwconf__parse_ratelimit(struct gw_route *r, const struct ynode *n, const char *where,
                                    struct cfg_errors *errs)
{
    struct gw_rate_limit *rl = &r->rate_limit;
    gwconf__apply(n, where, gwconf__ratelimit_desc, NULL, r, errs);
    if (n->type != YNODE_MAP)
        return;
    rl->enabled = true;
    const struct ynode *rn = ynode_get(n, "rate");
    if (rl->rate == NULL) {
        if (rn == NULL || gwconf__is_null(rn))
            cfg_error(errs, rn ? rn : n, "%s.rate: %s; give N/s, N/m or N/h (200/s)", where,
                      rn ? "empty" : "missing");
    } else {
        const char *p = rl->rate;
        uint64_t v = 0;
        size_t digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 9) {
            v = v * 10 + (uint64_t)(*p++ - '0');
            digits++;
        }
        uint64_t per = 0;
        if (p[0] == '/' && p[1] != '\0' && p[2] == '\0')
            per = p[1] == 's' ? 1000 : p[1] == 'm' ? 60000 : p[1] == 'h' ? 3600000 : 0;
        if (digits == 0 || per == 0 || v < 1 || v > 10000000)
            cfg_error(errs, rn, "%s.rate: '%s' is not a rate; N/s, N/m or N/h with N 1..10000000 "
                      "(200/s, 1000/m, 5000/h)", where, rl->rate);
        rl->count = v ? v : 1;
        rl->period_ms = per ? per : 1000;
    }
    rl->key_kind = GW_RL_KEY_CLIENT;
    rl->key_name = NULL;
    const char *k = rl->key ? rl->key : "client";
    const struct ynode *kn = ynode_get(n, "key");
    if (strncmp(k, "header:", 7) == 0 && k[7] != '\0' && gwconf__token_ok(k + 7)) {
        rl->key_kind = GW_RL_KEY_HEADER;
        rl->key_name = k + 7;
    } else if (strncmp(k, "jwt:", 4) == 0 && k[4] != '\0' && strcspn(k + 4, "\"\\") ==
               strlen(k + 4)) {
        rl->key_kind = GW_RL_KEY_JWT;
        rl->key_name = k + 4;
    } else if (strcmp(k, "client") != 0) {
        cfg_error(errs, kn ? kn : n, "%s.key: '%s' is not a key; client, header:NAME (a header "
                  "name: letters, digits and -) or jwt:CLAIM", where, k);
    }
    const struct ynode *bn = ynode_get(n, "burst");
    if (bn != NULL && rl->burst > 0 && rl->algorithm != 0)
        cfg_error(errs, bn, "%s.burst: only with algorithm gcra; a window admits N per window",
                  where);
    rl->burst_eff = rl->burst > 0 ? (uint64_t)rl->burst : rl->count / 10;
    if (rl->burst_eff == 0)
        rl->burst_eff = 1;
}

/* One `routes[]` item. The pattern is normalised to route.h's form ("= /x" for exact, whichever
 * way it was written) so that the data path compiles exactly what was validated here. */
static void gwconf__parse_route(struct gw_config *c, struct gw_route *r, size_t idx,
                                const struct ynode *n, struct cfg_errors *errs)
{
    char where[64], sub[96];
    snprintf(where, sizeof(where), "routes[%zu]", idx);
    r->line = n->line;
    r->upstream_index = (size_t)-1;
    gwconf__apply(n, where, gwconf__route_desc, gwconf__route_manual, r, errs);
    if (n->type != YNODE_MAP)
        return;

    const struct ynode *mn = ynode_get(n, "match");
    if (r->match == NULL) {
        /* Absent or empty; a value of the wrong type was already reported by cfg. */
        if (mn == NULL || gwconf__is_null(mn))
            cfg_error(errs, mn ? mn : n, "%s.match: %s; give a path (/api/, \"= /exact\", "
                                         "/a/*.json)", where, mn ? "empty" : "missing");
    } else {
        const char *p = r->match;
        if (p[0] == '=') {
            r->exact = true;
            p++;
            while (*p == ' ')
                p++;
        }
        r->path = xstrdup(p);
        if (r->path[0] != '/') {
            cfg_error(errs, mn, "%s.match: '%s' must start with '/' (or \"= /\" for exact)", where,
                      r->match);
        }
        if (r->exact) {
            r->kind = GW_MATCH_EXACT;
            char *m = xmalloc(strlen(r->path) + 3);
            sprintf(m, "= %s", r->path);
            free(r->match);
            r->match = m;
        } else if (strpbrk(r->path, "*?") != NULL) {
            r->kind = GW_MATCH_GLOB;
        } else {
            r->kind = GW_MATCH_PREFIX;
        }
    }
    if (r->host && !gwconf__host_value_ok(r->host))
        cfg_error(errs, ynode_get(n, "host"), "%s.host: '%s' is not a host name; e.g. "
                                              "api.example.com", where, r->host);
    for (size_t i = 0; i < r->methods.n; i++) {
        char *m = r->methods.v[i];
        bool ok = m[0] != '\0';
        for (char *q = m; *q; q++) {
            *q = (char)toupper((unsigned char)*q);
            ok &= isalpha((unsigned char)*q) || *q == '-' || *q == '_';
        }
        if (!ok)
            cfg_error(errs, ynode_get(n, "methods"),
                      "%s.methods: '%s' is not a method name; GET, HEAD, POST, PUT, ...", where, m);
    }
    if (r->upstream != NULL) {
        long ui = gwconf_upstream_index(c, r->upstream);
        if (ui < 0) {
            char names[512];
            size_t o = 0;
            names[0] = '\0';
            for (size_t i = 0; i < c->nupstreams; i++)
                o += (size_t)snprintf(names + o, o < sizeof(names) ? sizeof(names) - o : 0,
                                      "%s%s", i ? ", " : "", c->upstreams[i].name);
            cfg_error(errs, ynode_get(n, "upstream"),
                      "%s.upstream: unknown upstream '%s'; defined: %s", where, r->upstream,
                      c->nupstreams ? names : "(none: add an upstreams: section)");
        } else {
            r->upstream_index = (size_t)ui;
        }
    } else {
        const struct ynode *un = ynode_get(n, "upstream");
        if (un == NULL || gwconf__is_null(un))
            cfg_error(errs, un ? un : n, "%s.upstream: %s; name one of the upstreams", where,
                      un ? "empty" : "missing");
    }

    const struct ynode *cn = ynode_get(n, "cache");
    snprintf(sub, sizeof(sub), "%s.cache", where);
    if (cn != NULL)
        gwconf__parse_rcache(r, cn, sub, errs);
    else
        cfg_defaults(gwconf__rcache_desc, r);

    const struct ynode *bn = ynode_get(n, "breaker");
    snprintf(sub, sizeof(sub), "%s.breaker", where);
    if (bn != NULL) {
        gwconf__apply(bn, sub, gwconf__breaker_desc, NULL, r, errs);
        r->breaker.enabled = true;
        gwconf__check_on(bn, "failure_statuses", &r->breaker.failure_statuses, sub, errs);
    } else {
        cfg_defaults(gwconf__breaker_desc, r);
    }
    const struct ynode *ln = ynode_get(n, "rate_limit");
    snprintf(sub, sizeof(sub), "%s.rate_limit", where);
    if (ln != NULL)
        gwconf__parse_ratelimit(r, ln, sub, errs);
    else
        cfg_defaults(gwconf__ratelimit_desc, r);
    snprintf(sub, sizeof(sub), "%s.retry", where);
    gwconf__check_on(ynode_get(n, "retry"), "on", &r->retry.on, sub, errs);

    const struct ynode *fn = ynode_get(n, "fallback");
    snprintf(sub, sizeof(sub), "%s.fallback", where);
    if (fn != NULL)
        gwconf__parse_fallback(r, fn, sub, errs);
    else
        cfg_defaults(gwconf__fallback_desc, r);

    const struct ynode *zn = ynode_get(n, "compress");
    snprintf(sub, sizeof(sub), "%s.compress", where);
    if (zn != NULL)
        gwconf__parse_compress(r, zn, sub, errs);
    else
        cfg_defaults(gwconf__compress_desc, r);

    if (r->timeout.first_byte_ms > r->timeout.total_ms) {
        /* Only written values conflict: a default gives way to the value next to it. */
        const struct ynode *tn = ynode_get(n, "timeout");
        const struct ynode *fb = gwconf__get(tn, "first_byte"), *tot = gwconf__get(tn, "total");
        if (fb == NULL)
            r->timeout.first_byte_ms = r->timeout.total_ms;
        else if (tot == NULL)
            r->timeout.total_ms = r->timeout.first_byte_ms;
        else
            cfg_error(errs, fb, "%s.timeout.first_byte: %llums is above total %llums; at most "
                                "total", where, (unsigned long long)r->timeout.first_byte_ms,
                      (unsigned long long)r->timeout.total_ms);
    }
}

/* `routes:` — the list, then what only the whole list shows: duplicates and patterns that
 * route.c would refuse. */
static void gwconf__parse_routes(struct gw_config *c, const struct ynode *n,
                                 struct cfg_errors *errs)
{
    if (n == NULL || gwconf__is_null(n))
        return;
    if (n->type != YNODE_SEQ) {
        cfg_error(errs, n, "routes: expected a list of {match, upstream, ...}, got a %s",
                  ynode_type_name(n));
        return;
    }
    size_t cnt = ynode_size(n);
    c->routes = xcalloc(cnt ? cnt : 1, sizeof(*c->routes));
    for (size_t i = 0; i < cnt; i++) {
        gwconf__parse_route(c, &c->routes[c->nroutes++], i, ynode_item(n, i), errs);
    }
    /* Same pattern, host and methods twice: the second can never match. */
    for (size_t i = 0; i < c->nroutes; i++) {
        for (size_t j = 0; j < i; j++) {
            const struct gw_route *a = &c->routes[i], *b = &c->routes[j];
            if (!a->match || !b->match || strcmp(a->match, b->match) != 0)
                continue;
            if ((a->host == NULL) != (b->host == NULL) ||
                (a->host && strcasecmp(a->host, b->host) != 0))
                continue;
            if (a->methods.n != 0 || b->methods.n != 0)
                continue;
            cfg_error(errs, ynode_get(ynode_item(n, i), "match"),
                      "routes[%zu].match: '%s' repeats routes[%zu] (line %d), which always wins; "
                      "remove one or add methods/host", i, a->match, j, b->line);
        }
    }
    /* route.c compiles the patterns the data path will use: reject what it would reject. */
    const char **pats = xcalloc(c->nroutes + 1, sizeof(*pats));
    size_t np = 0;
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].match && c->routes[i].path && c->routes[i].path[0] == '/')
            pats[np++] = c->routes[i].match;
    char e[256];
    struct route_table *rt = route_table_create(pats, np, e, sizeof(e));
    if (rt == NULL && np > 0)
        cfg_error(errs, n, "routes: %s", e);
    route_table_destroy(rt);
    free(pats);
}

/* ---- whole file ---- */

/* CPU quota of the container, rounded up, or 0 when there is none: cgroup v2 "cpu.max" holds
 * "QUOTA PERIOD" or "max PERIOD"; v1 has cfs_quota_us (-1: none) and cfs_period_us. */
static long gwconf__cgroup_cpus(void)
{
    long long quota = -1, period = 0;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f != NULL) {
        char q[32];
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
            quota = atoll(q);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) != NULL) {
        if (fscanf(f, "%lld", &quota) != 1)
            quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) != NULL) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (long)((quota + period - 1) / period);
}

/* The CPUs this process may really use: its affinity mask (taskset, cpusets) and the
 * container's CPU quota, not the host's count -- the GOMAXPROCS-in-Kubernetes trap, where a
 * 2-CPU pod on a 64-core node would start 64 threads and be throttled. */
static long gwconf__usable_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        n = CPU_COUNT(&set);
    long q = gwconf__cgroup_cpus();
    if (q > 0 && q < n)
        n = q;
    return n < 1 ? 1 : n;
}

/* workers.threads: 0 = one loop thread per usable CPU, within WORKER_MAX_THREADS sockets (one
 * per thread and listen address: the watchdog has one tick slot per socket). */
static int64_t gwconf__auto_threads(size_t nlisten)
{
    long n = gwconf__usable_cpus();
    long cap = WORKER_MAX_THREADS / (long)(nlisten ? nlisten : 1);
    if (n < 1)
        n = 1;
    return n > cap ? (cap < 1 ? 1 : cap) : n;
}
/* True when file <path> could be opened for appending: an existing file that is writable, or a
 * new one in an existing, writable directory. Creates nothing; the reason goes to <why>. The
 * worker opens the access log only after the config was accepted, and one it cannot open it
 * would only mention in its log before running without any, so check and serve refuse it here,
 * as they refuse an unreadable TLS file. */
static bool gwconf__writable(const char *path, char *why, size_t whylen)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(why, whylen, "it is a directory");
            return false;
        }
        if (access(path, W_OK) != 0) {
            snprintf(why, whylen, "%s", strerror(errno));
            return false;
        }
        return true;
    }
    if (errno != ENOENT) {
        snprintf(why, whylen, "%s", strerror(errno));
        return false;
    }
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 || (!S_ISDIR(st.st_mode) && (errno = ENOTDIR) != 0) ||
        access(dir, W_OK | X_OK) != 0) {
        snprintf(why, whylen, "directory %s: %s", dir, strerror(errno));
        return false;
    }
    return true;
}


/* cache.key_secret / key_secret_file: loaded once here (a reload reads the file again), at least
 * KEYHASH_MIN_SECRET bytes. */
static void gwconf__key_secret(struct gw_config *c, const struct ynode *cn,
                               struct cfg_errors *errs)
{
    struct gw_cache *cc = &c->cache;
    if (cc->key_secret != NULL && cc->key_secret_file != NULL) {
        cfg_error(errs, gwconf__get(cn, "key_secret_file"),
                  "cache.key_secret_file: key_secret is given too; give one of them");
        return;
    }
    if (cc->key_secret != NULL) {
        if (strlen(cc->key_secret) < KEYHASH_MIN_SECRET) {
            cfg_error(errs, gwconf__get(cn, "key_secret"),
                      "cache.key_secret: %zu bytes; at least %d (e.g. openssl rand -hex 32)",
                      strlen(cc->key_secret), KEYHASH_MIN_SECRET);
            return;
        }
        cc->key_secret_data = xstrdup(cc->key_secret);
        cc->key_secret_len = strlen(cc->key_secret);
        return;
    }
    if (cc->key_secret_file == NULL)
        return;
    const struct ynode *fn = gwconf__get(cn, "key_secret_file");
    FILE *f = fopen(cc->key_secret_file, "rb");
    if (f == NULL) {
        cfg_error(errs, fn, "cache.key_secret_file: cannot read '%s': %s; give a readable file",
                  cc->key_secret_file, strerror(errno));
        return;
    }
    char tmp[4097];
    size_t n = fread(tmp, 1, sizeof(tmp), f);
    fclose(f);
    while (n > 0 && n <= 4096 && isspace((unsigned char)tmp[n - 1]))
        n--;
    if (n > 4096) {
        cfg_error(errs, fn, "cache.key_secret_file: '%s' is over 4096 bytes; a secret of 16 to "
                            "4096 bytes", cc->key_secret_file);
    } else if (n < KEYHASH_MIN_SECRET) {
        cfg_error(errs, fn, "cache.key_secret_file: '%s' holds %zu bytes; at least %d (e.g. "
                            "openssl rand -hex 32 > FILE)", cc->key_secret_file, n,
                  KEYHASH_MIN_SECRET);
    } else {
        cc->key_secret_data = xmalloc(n + 1);
        memcpy(cc->key_secret_data, tmp, n);
        cc->key_secret_data[n] = '\0';
        cc->key_secret_len = n;
    }
    explicit_bzero(tmp, sizeof(tmp));
}

/* Checks across sections, after every section has its values (defaults included). */
static void gwconf__redis_nodes_ok(const char *url, const struct ynode *at,
                                   struct cfg_errors *errs);

static void gwconf__check_globals(struct gw_config *c, const struct ynode *root,
                                  struct cfg_errors *errs)
{
    const struct ynode *an = gwconf__get(root, "admin");
    const struct ynode *aan = an && an->type == YNODE_MAP ? gwconf__get(an, "address") : an;
    char e[600];
    bool addr_ok = gwconf__admin(c, c->admin, e, sizeof(e)) == 0;
    if (!addr_ok)
        cfg_error(errs, aan ? aan : an, "admin%s: %s", aan != an ? ".address" : "", e);
    if (!c->admin_enabled) {
        free(c->admin);
        c->admin = NULL;
    }
    const struct ynode *tfn = gwconf__get(an, "token_file");
    if (c->admin_cfg.token_file != NULL && gwconf__read_token(c, e, sizeof(e)) != 0)
        cfg_error(errs, tfn, "admin.token_file: %s", e);
    if (addr_ok && gwconf__admin_policy(c, e, sizeof(e)) != 0)
        cfg_error(errs, aan ? aan : an, "admin: %s", e);
    for (size_t i = 0; c->admin_enabled && i < c->nlisten; i++) {
        if (c->listen[i].addr.len == c->admin_addr.len &&
            memcmp(&c->listen[i].addr.ss, &c->admin_addr.ss, c->admin_addr.len) == 0)
            cfg_error(errs, an ? an : gwconf__get(root, "listen"),
                      "admin: %s is also a listen address; give admin another address, or off",
                      c->admin);
    }
    if (c->workers.threads == 0)
        c->workers.threads = gwconf__auto_threads(c->nlisten);
    if (c->nlisten > 0 && (size_t)c->workers.threads * c->nlisten > WORKER_MAX_THREADS)
        cfg_error(errs, gwconf__get(gwconf__get(root, "workers"), "threads"),
                  "workers.threads: %lld threads × %zu listen addresses is %lld sockets; at "
                  "most %d", (long long)c->workers.threads, c->nlisten,
                  (long long)c->workers.threads * (long long)c->nlisten, WORKER_MAX_THREADS);
    const struct ynode *cn = gwconf__get(root, "cache");
    if (c->cache.memory > 0 && c->cache.max_object_size > c->cache.memory) {
        const struct ynode *mo = gwconf__get(cn, "max_object_size");
        if (mo == NULL) /* the default follows a small memory limit */
            c->cache.max_object_size = c->cache.memory;
        else
            cfg_error(errs, mo, "cache.max_object_size: above cache.memory; at most the memory "
                                "limit");
    }
    if (c->cache.redis && strncmp(c->cache.redis, "redis://", 8) != 0 &&
        strncmp(c->cache.redis, "unix://", 7) != 0 &&
        strncmp(c->cache.redis, "redis+cluster://", 16) != 0 &&
        strncmp(c->cache.redis, "redis+sentinel://", 17) != 0)
        cfg_error(errs, gwconf__get(cn, "redis"),
                  "cache.redis: '%s' is not a Redis URL; redis://host:port/db, unix:///path, "
                  "{cluster: [address:port, ...]} or {sentinels: [address:port, ...], master: "
                  "NAME}",
                  c->cache.redis);
    else if (c->cache.redis && (strncmp(c->cache.redis, "redis+cluster://", 16) == 0 ||
                                strncmp(c->cache.redis, "redis+sentinel://", 17) == 0))
        gwconf__redis_nodes_ok(c->cache.redis, gwconf__get(cn, "redis"), errs);
    if (c->cache.redis && strncmp(c->cache.redis, "redis+cluster://", 16) == 0 &&
        c->cache.redis_prefix && strpbrk(c->cache.redis_prefix, "{}") != NULL)
        cfg_error(errs, gwconf__get(cn, "redis_prefix"),
                  "cache.redis_prefix: '%s' holds a brace; with a cluster the keys carry their "
                  "own hash tags ({path}), so a prefix cannot", c->cache.redis_prefix);
    gwconf__key_secret(c, cn, errs);
    /* a shared limit is counted in the cache's Redis: without one it could only be per instance */
    const struct ynode *rsn = gwconf__get(root, "routes");
    for (size_t i = 0; i < c->nroutes && c->cache.redis == NULL; i++) {
        if (!c->routes[i].rate_limit.enabled || !c->routes[i].rate_limit.shared)
            continue;
        const struct ynode *rn = rsn && rsn->type == YNODE_SEQ && i < ynode_size(rsn)
                                     ? ynode_item(rsn, i)
                                     : NULL;
        const struct ynode *sn = gwconf__get(gwconf__get(rn, "rate_limit"), "shared");
        cfg_error(errs, sn ? sn : rn,
                  "routes[%zu].rate_limit.shared: needs cache.redis, the Redis every instance "
                  "shares (redis://host:port, {cluster: [...]} or {sentinels: [...], master: "
                  "NAME})",
                  i);
    }
    const char *al = c->logging.access_log;
    const struct ynode *aln = gwconf__get(gwconf__get(root, "logging"), "access_log");
    char why[PATH_MAX + 64];
    if (al == NULL || al[0] == '\0')
        cfg_error(errs, aln, "logging.access_log: empty; a path, stderr, or off");
    else if (strcmp(al, "off") != 0 && strcmp(al, "stderr") != 0 && strcmp(al, "stdout") != 0 &&
             strcmp(al, "-") != 0 && !gwconf__writable(al, why, sizeof(why)))
        cfg_error(errs, aln, "logging.access_log: cannot write '%s': %s; give a file in an "
                             "existing, writable directory, stderr, or off", al, why);
}

/* The typed config from a YAML tree. Every section is parsed even after an error, so one run
 * reports everything; any error discards the result. */
/* One "address:port" of cache.redis's cluster or sentinels list: a numeric address (a name
 * would be resolved by hiredis, blocking a loop thread); 0 or -1 with an error added. */
static int gwconf__redis_node(const struct ynode *item, const char *what, struct buf *url,
                              struct cfg_errors *errs)
{
    if (item->type != YNODE_SCALAR) {
        cfg_error(errs, item, "cache.redis.%s: an item is a %s; give address:port strings", what,
                  ynode_type_name(item));
        return -1;
    }
    const char *colon = strrchr(item->str, ':');
    char host[64];
    unsigned char bin[16];
    char *end = NULL;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    size_t hl = colon != NULL ? (size_t)(colon - item->str) : 0;
    const char *h = item->str;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (colon == NULL || hl == 0 || hl >= sizeof(host) || end == colon + 1 || *end != '\0' ||
        port < 1 || port > 65535) {
        cfg_error(errs, item, "cache.redis.%s: '%s' is not address:port; e.g. 127.0.0.1:7000",
                  what, item->str);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1) {
        cfg_error(errs, item, "cache.redis.%s: '%s' is not a numeric address; names are not "
                              "resolved here, give the node's IP address", what, host);
        return -1;
    }
    buf_printf(url, "%s%s", url->data[url->len - 1] == '/' ? "" : ",", item->str);
    return 0;
}

/* cache.redis given as a cluster or sentinel URL (the form the map becomes, also accepted as
 * written): well formed, and every node a numeric address (hiredis would resolve a name with a
 * blocking getaddrinfo on a loop thread). */
static void gwconf__redis_nodes_ok(const char *url, const struct ynode *at,
                                   struct cfg_errors *errs)
{
    char hosts[L2REDIS_MAX_SEEDS][64], master[129], err[256];
    int ports[L2REDIS_MAX_SEEDS];
    int n = strncmp(url, L2REDIS_CLUSTER_SCHEME, strlen(L2REDIS_CLUSTER_SCHEME)) == 0
                ? l2redis_parse_seeds(url, hosts, ports, L2REDIS_MAX_SEEDS, err, sizeof(err))
                : l2redis_parse_sentinels(url, hosts, ports, L2REDIS_MAX_SEEDS, master,
                                          sizeof(master), err, sizeof(err));
    if (n < 0) {
        cfg_error(errs, at, "cache.redis: %s", err);
        return;
    }
    unsigned char bin[16];
    for (int i = 0; i < n; i++)
        if (inet_pton(AF_INET, hosts[i], bin) != 1 && inet_pton(AF_INET6, hosts[i], bin) != 1)
            cfg_error(errs, at, "cache.redis: '%s' is not a numeric address; names are not "
                                "resolved here, give the node's IP address", hosts[i]);
}

/* cache.redis written as a map, {cluster: [a:p, ...]} (seed nodes of a Redis Cluster) or
 * {sentinels: [a:p, ...], master: NAME}, becomes in place the URL the cache reads
 * (redis+cluster://a:p,a:p or redis+sentinel://a:p,a:p/NAME) before the tables apply: the table
 * types cache.redis as a string, and --dump prints the URL, which loads the same. */
static void gwconf__redis_map(struct ynode *root, struct cfg_errors *errs)
{
    struct ynode *rn = (struct ynode *)gwconf__get(gwconf__get(root, "cache"), "redis");
    if (rn == NULL || rn->type != YNODE_MAP)
        return;
    const struct ynode *cl = gwconf__get(rn, "cluster"), *se = gwconf__get(rn, "sentinels"),
                       *ma = gwconf__get(rn, "master");
    for (size_t i = 0; i < ynode_size(rn); i++) {
        const struct ynode *k = ynode_key(rn, i);
        if (strcmp(k->str, "cluster") != 0 && strcmp(k->str, "sentinels") != 0 &&
            strcmp(k->str, "master") != 0)
            cfg_error(errs, k, "cache.redis.%s: unknown key; known: cluster, sentinels, master "
                               "(or cache.redis: redis://host:port/db)", k->str);
    }
    const struct ynode *list = cl != NULL ? cl : se;
    const char *what = cl != NULL ? "cluster" : "sentinels";
    struct buf url = BUF_INIT;
    buf_append_str(&url, cl != NULL ? "redis+cluster://" : "redis+sentinel://");
    size_t before = errs->n;
    if (cl != NULL && se != NULL)
        cfg_error(errs, se, "cache.redis: cluster and sentinels together; give one of them");
    else if (list == NULL)
        cfg_error(errs, rn, "cache.redis: give cluster: [address:port, ...] (Redis Cluster "
                            "seeds) or sentinels: [address:port, ...] with master: NAME");
    else if (list->type == YNODE_SCALAR)
        gwconf__redis_node(list, what, &url, errs);
    else if (list->type != YNODE_SEQ || ynode_size(list) == 0 || ynode_size(list) > 16)
        cfg_error(errs, list, "cache.redis.%s: give a list of 1 to 16 address:port", what);
    else
        for (size_t i = 0; i < ynode_size(list); i++)
            gwconf__redis_node(ynode_item(list, i), what, &url, errs);
    if (cl != NULL && ma != NULL)
        cfg_error(errs, ma, "cache.redis.master: only with sentinels");
    if (se != NULL && cl == NULL) {
        if (ma == NULL || ma->type != YNODE_SCALAR || ma->len == 0 || ma->len > 128 ||
            strpbrk(ma->str, "/, ") != NULL)
            cfg_error(errs, ma != NULL ? ma : rn,
                      "cache.redis.master: the name the sentinels monitor is required (a plain "
                      "name, e.g. mymaster)");
        else
            buf_printf(&url, "/%s", ma->str);
    }
    if (errs->n == before) {
        free(rn->str);
        rn->str = xstrndup(url.data, url.len);
        rn->len = url.len;
        rn->quoted = true;
        rn->type = YNODE_SCALAR; /* its items stay, freed with the tree */
    }
    buf_deinit(&url);
}

static struct gw_config *gwconf__build(struct ynode *root, const char *path,
                                       struct cfg_errors *errs)
{
    size_t before = errs->n;
    struct gw_config *c = xcalloc(1, sizeof(*c));
    c->path = xstrdup(path);
    if (root->type != YNODE_MAP && !gwconf__is_null(root)) {
        cfg_error(errs, root, "top level: expected a map of sections (listen, upstreams, "
                              "routes, ...), got a %s", ynode_type_name(root));
        gwconf_free(c);
        return NULL;
    }
    size_t redis_errs = errs->n;
    gwconf__redis_map(root, errs);
    if (errs->n > redis_errs) { /* the map is reported; not again as "not a string" */
        gwconf_free(c);
        cfg_errors_sort(errs, before);
        return NULL;
    }
    gwconf__apply(root, "", gwconf__root_desc, gwconf__root_manual, c, errs);
    gwconf__parse_admin(c, gwconf__get(root, "admin"), errs);
    gwconf__parse_listen(c, gwconf__get(root, "listen"), errs);
    gwconf__parse_upstreams(c, gwconf__get(root, "upstreams"), errs);
    gwconf__parse_routes(c, gwconf__get(root, "routes"), errs);
    gwconf__check_globals(c, root, errs);
    if (errs->n > before) {
        /* In file order, as a person fixes them. */
        cfg_errors_sort(errs, before);
        gwconf_free(c);
        return NULL;
    }
    return c;
}

#define GWCONF_MAX_FILE (16u << 20) /* a config larger than this is a mistake */

struct gw_config *gwconf_load(const char *path, struct cfg_errors *errs)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        cfg_error(errs, NULL, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct buf text = BUF_INIT;
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && text.len <= GWCONF_MAX_FILE)
        buf_append(&text, chunk, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    struct gw_config *c = NULL;
    if (bad)
        cfg_error(errs, NULL, "%s: cannot read: %s", path, strerror(errno));
    else if (text.len > GWCONF_MAX_FILE)
        cfg_error(errs, NULL, "%s: larger than %u MB; is it really a config file?", path,
                  GWCONF_MAX_FILE >> 20);
    else
        c = gwconf_load_string(text.data ? text.data : "", text.len, path, errs);
    buf_deinit(&text);
    return c;
}

struct gw_config *gwconf_load_string(const char *text, size_t len, const char *name,
                                     struct cfg_errors *errs)
{
    char err[512];
    char *expanded = NULL;
    if (memmem(text, len, "${", 2) != NULL) {
        expanded = gwconf_env_expand(text, len, name, &len, errs);
        if (expanded == NULL)
            return NULL;
        text = expanded;
    }
    struct ynode *root = yaml_load_string(text, len, name, err, sizeof(err));
    free(expanded);
    if (root == NULL) {
        cfg_error(errs, NULL, "%s", err);
        return NULL;
    }
    struct gw_config *c = gwconf__build(root, name, errs);
    yaml_tree_free(root);
    return c;
}

void gwconf_free(struct gw_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nroutes; i++) {
        struct gw_route *r = &c->routes[i];
        cfg_free_section(gwconf__route_desc, r);
        cfg_free_section(gwconf__rcache_desc, r);
        cfg_free_section(gwconf__fallback_desc, r);
        cfg_free_section(gwconf__breaker_desc, r);
        cfg_free_section(gwconf__ratelimit_desc, r);
        cfg_free_section(gwconf__compress_desc, r);
        free(r->path);
        free(r->cache.statuses);
        for (size_t j = 0; j < r->fallback.nheaders; j++) {
            free(r->fallback.headers[j].name);
            free(r->fallback.headers[j].value);
        }
        free(r->fallback.headers);
    }
    free(c->routes);
    if (c->cache.key_secret_data != NULL) {
        explicit_bzero(c->cache.key_secret_data, c->cache.key_secret_len);
        free(c->cache.key_secret_data);
    }
    for (size_t i = 0; i < c->nupstreams; i++) {
        struct gw_upstream *u = &c->upstreams[i];
        cfg_free_section(gwconf__upstream_desc, u);
        cfg_free_section(gwconf__health_desc, u);
        cfg_free_section(gwconf__tls_desc, u);
        free(u->name);
        for (size_t j = 0; j < u->nservers; j++) {
            free(u->servers[j].spec);
            free(u->servers[j].host);
        }
        free(u->servers);
    }
    free(c->upstreams);
    for (size_t i = 0; i < c->nlisten; i++) {
        free(c->listen[i].spec);
        gwconf__listen_tls_free(&c->listen[i].tls);
    }
    free(c->listen);
    cfg_free_section(gwconf__root_desc, c);
    cfg_free_section(gwconf__admin_desc, c);
    if (c->admin_cfg.token != NULL)
        explicit_bzero(c->admin_cfg.token, c->admin_cfg.token_len);
    free(c->admin_cfg.token);
    free(c->path);
    free(c);
}

/* --listen replaces the whole list (it is what an operator means by "listen there instead"), with
 * plain HTTP listeners: TLS needs its certificates, which only the file can give. */
int gwconf_set_listen(struct gw_config *c, const char *addr, char *err, size_t errlen)
{
    struct gw_listen *old = c->listen;
    size_t nold = c->nlisten;
    c->listen = NULL;
    c->nlisten = 0;
    /* "a,b" gives several addresses; an empty one ("a,", "a,,b") is a typo, not nothing. */
    char *dup = xstrdup(addr);
    int rc = 0;
    for (char *tok = dup, *next; tok != NULL && rc == 0; tok = next) {
        next = strchr(tok, ',');
        if (next != NULL)
            *next++ = '\0';
        if (*tok == '\0') {
            snprintf(err, errlen, "empty listen address in '%s'", addr);
            rc = -1;
        } else {
            rc = gwconf__add_listen(c, NULL, tok, NULL, err, errlen);
        }
    }
    free(dup);
    if (rc == 0 && (size_t)c->workers.threads * c->nlisten > WORKER_MAX_THREADS) {
        snprintf(err, errlen, "%zu listen addresses × %lld threads is more than %d sockets",
                 c->nlisten, (long long)c->workers.threads, WORKER_MAX_THREADS);
        rc = -1;
    }
    struct gw_listen *drop = rc == 0 ? old : c->listen;
    size_t ndrop = rc == 0 ? nold : c->nlisten;
    for (size_t i = 0; i < ndrop; i++) {
        free(drop[i].spec);
        gwconf__listen_tls_free(&drop[i].tls);
    }
    free(drop);
    if (rc != 0) {
        c->listen = old;
        c->nlisten = nold;
    }
    return rc;
}

int gwconf_set_admin(struct gw_config *c, const char *addr, char *err, size_t errlen)
{
    bool was_enabled = c->admin_enabled;
    struct sock_addr was_addr = c->admin_addr;
    if (gwconf__admin(c, addr, err, errlen) != 0)
        return -1;
    char *was = c->admin;
    c->admin = c->admin_enabled ? xstrdup(addr) : NULL;
    char e[600];
    if (gwconf__admin_policy(c, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "--admin %s", e);
        free(c->admin);
        c->admin = was;
        c->admin_enabled = was_enabled;
        c->admin_addr = was_addr;
        return -1;
    }
    free(was);
    return 0;
}

int gwconf_set_threads(struct gw_config *c, long threads, char *err, size_t errlen)
{
    if (threads < 0 || threads > WORKER_MAX_THREADS) {
        snprintf(err, errlen, "threads must be from 0 (CPU count) to %d", WORKER_MAX_THREADS);
        return -1;
    }
    if (threads == 0)
        threads = gwconf__auto_threads(c->nlisten);
    if ((size_t)threads * c->nlisten > WORKER_MAX_THREADS) {
        snprintf(err, errlen, "%ld threads × %zu listen addresses is more than %d sockets",
                 threads, c->nlisten, WORKER_MAX_THREADS);
        return -1;
    }
    c->workers.threads = threads;
    return 0;
}

const struct gw_route *gwconf_route(const struct gw_config *c, size_t i)
{
    return i < c->nroutes ? &c->routes[i] : NULL;
}

const struct gw_upstream *gwconf_upstream(const struct gw_config *c, size_t i)
{
    return i < c->nupstreams ? &c->upstreams[i] : NULL;
}

long gwconf_upstream_index(const struct gw_config *c, const char *name)
{
    for (size_t i = 0; i < c->nupstreams; i++)
        if (c->upstreams[i].name && strcmp(c->upstreams[i].name, name) == 0)
            return (long)i;
    return -1;
}

const struct gw_upstream *gwconf_upstream_by_name(const struct gw_config *c, const char *name)
{
    long i = gwconf_upstream_index(c, name);
    return i < 0 ? NULL : &c->upstreams[i];
}

/* Compared by parsed address, not by spelling: "localhost:80" and "127.0.0.1:80" are the same
 * sockets. The backlog is part of a socket, so a new one needs new sockets too. */
bool gwconf_listen_changed(const struct gw_config *a, const struct gw_config *b)
{
    if (a->nlisten != b->nlisten || a->workers.threads != b->workers.threads ||
        a->server.backlog != b->server.backlog)
        return true;
    for (size_t i = 0; i < a->nlisten; i++)
        if (a->listen[i].addr.len != b->listen[i].addr.len ||
            memcmp(&a->listen[i].addr.ss, &b->listen[i].addr.ss, a->listen[i].addr.len) != 0)
            return true;
    return false;
}
