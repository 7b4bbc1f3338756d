/* Route table: exact patterns in a sorted array (binary search), prefixes sorted longest first,
 * globs matched by a small NFA over pattern positions, so a hostile path costs linear time
 * whatever the pattern. Compiled once at config load; route_match() never allocates. */
#include "gateway/route.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define ROUTE_GLOB_MAX 255 /* pattern bytes: bounds the NFA state array on the stack */

struct route_pat {
    char *s;       /* literal text (exact/prefix) or glob pattern */
    size_t len;
    size_t literal; /* specificity: literal bytes */
    int index;      /* position in the caller's array */
    enum route_kind kind;
};

struct route_table {
    struct route_pat *all;     /* by caller index */
    struct route_pat **exact;  /* sorted by (len, bytes) */
    size_t nexact;
    struct route_pat **prefix; /* longest first, then earlier first */
    size_t nprefix;
    struct route_pat **glob;   /* config order */
    size_t nglob;
    size_t n;
};

static int route__cmp_exact(const void *a, const void *b)
{
    const struct route_pat *x = *(struct route_pat *const *)a, *y = *(struct route_pat *const *)b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    int c = memcmp(x->s, y->s, x->len);
    if (c != 0)
        return c;
    return x->index - y->index; // duplicates: the earlier pattern first
}

static int route__cmp_prefix(const void *a, const void *b)
{
    const struct route_pat *x = *(struct route_pat *const *)a, *y = *(struct route_pat *const *)b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->index - y->index;
}

struct route_table *route_table_create(const char *const *patterns, size_t n, char *err,
                                       size_t errlen)
{
    return route_table_create_kinds(patterns, NULL, n, err, errlen);
}

struct route_table *route_table_create_kinds(const char *const *patterns,
                                             const enum route_kind *kinds, size_t n, char *err,
                                             size_t errlen)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    t->n = n;
    t->all = xcalloc(n ? n : 1, sizeof(*t->all));
    t->exact = xcalloc(n ? n : 1, sizeof(*t->exact));
    t->prefix = xcalloc(n ? n : 1, sizeof(*t->prefix));
    t->glob = xcalloc(n ? n : 1, sizeof(*t->glob));
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        struct route_pat *r = &t->all[i];
        r->index = (int)i;
        if (kinds != NULL) {
            r->kind = kinds[i];
        } else if (p[0] == '=') {
            p++;
            while (*p == ' ')
                p++;
            r->kind = ROUTE_EXACT;
        } else if (strpbrk(p, "*?") != NULL) {
            r->kind = ROUTE_GLOB;
        } else {
            r->kind = ROUTE_PREFIX;
        }
        if (p[0] != '/') {
            snprintf(err, errlen, "route pattern '%s' must start with '/' (or '= /' for exact)",
                     patterns[i]);
            route_table_destroy(t);
            return NULL;
        }
        r->s = xstrdup(p);
        r->len = strlen(p);
        if (r->kind == ROUTE_GLOB) {
            if (r->len > ROUTE_GLOB_MAX) {
                snprintf(err, errlen, "glob route pattern longer than %d bytes",
                         ROUTE_GLOB_MAX);
                route_table_destroy(t);
                return NULL;
            }
            for (size_t k = 0; k < r->len; k++)
                if (r->s[k] != '*' && r->s[k] != '?')
                    r->literal++;
            t->glob[t->nglob++] = r;
        } else if (r->kind == ROUTE_EXACT) {
            r->literal = r->len;
            t->exact[t->nexact++] = r;
        } else {
            r->literal = r->len;
            t->prefix[t->nprefix++] = r;
        }
    }
    qsort(t->exact, t->nexact, sizeof(*t->exact), route__cmp_exact);
    qsort(t->prefix, t->nprefix, sizeof(*t->prefix), route__cmp_prefix);
    return t;
}

void route_table_destroy(struct route_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->all[i].s);
    free(t->all);
    free(t->exact);
    free(t->prefix);
    free(t->glob);
    free(t);
}

/* Adds state <p> and what it reaches without input: a star matches the empty string. */
static void route__add_state(const struct route_pat *g, bool *set, size_t p)
{
    while (p <= g->len && !set[p]) {
        set[p] = true;
        if (p < g->len && g->s[p] == '*')
            p += (p + 1 < g->len && g->s[p + 1] == '*') ? 2 : 1;
        else
            break;
    }
}

/* NFA simulation: states are pattern positions; O(len * pattern length), no recursion. */
static bool route__glob_match(const struct route_pat *g, const char *s, size_t len)
{
    bool a[ROUTE_GLOB_MAX + 1], b[ROUTE_GLOB_MAX + 1];
    bool *cur = a, *next = b;
    memset(cur, 0, g->len + 1);
    route__add_state(g, cur, 0);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool any = false;
        memset(next, 0, g->len + 1);
        for (size_t p = 0; p < g->len; p++) {
            if (!cur[p])
                continue;
            char pc = g->s[p];
            if (pc == '*') {
                bool dbl = p + 1 < g->len && g->s[p + 1] == '*';
                if (dbl || c != '/') {
                    route__add_state(g, next, p); // the star eats c and stays
                    any = true;
                }
            } else if ((pc == '?' && c != '/') || pc == c) {
                route__add_state(g, next, p + 1);
                any = true;
            }
        }
        if (!any)
            return false;
        bool *tmp = cur;
        cur = next;
        next = tmp;
    }
    return cur[g->len];
}

int route_match(const struct route_table *t, const char *path, size_t len)
{
    return route_match_filtered(t, path, len, NULL, NULL);
}

int route_match_filtered(const struct route_table *t, const char *path, size_t len,
                         route_filter_cb *ok, void *arg)
{
    /* exact: binary search on (len, bytes) for the first equal pattern */
    size_t lo = 0, hi = t->nexact;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct route_pat *r = t->exact[mid];
        int c = r->len != len ? (r->len < len ? -1 : 1) : memcmp(r->s, path, len);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* equal patterns sort by index: the earliest acceptable one wins */
    for (size_t i = lo; i < t->nexact; i++) {
        const struct route_pat *r = t->exact[i];
        if (r->len != len || memcmp(r->s, path, len) != 0)
            break;
        if (ok == NULL || ok(arg, (size_t)r->index))
            return r->index;
    }
    const struct route_pat *best = NULL;
    for (size_t i = 0; i < t->nprefix; i++) {
        const struct route_pat *r = t->prefix[i];
        if (r->len <= len && memcmp(r->s, path, r->len) == 0 &&
            (ok == NULL || ok(arg, (size_t)r->index))) {
            best = r;
            break;
        }
    }
    for (size_t i = 0; i < t->nglob; i++) {
        const struct route_pat *g = t->glob[i];
        if (best != NULL && (g->literal < best->literal ||
                             (g->literal == best->literal && g->index > best->index)))
            continue;
        if (route__glob_match(g, path, len) && (ok == NULL || ok(arg, (size_t)g->index)))
            best = g;
    }
    return best != NULL ? best->index : -1;
}

enum route_kind route_kind_of(const struct route_table *t, size_t i) { return t->all[i].kind; }
