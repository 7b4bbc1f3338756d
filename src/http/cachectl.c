/* Cache-Control (RFC 9111 §5.2) into flags and numbers. It only parses: what a directive means
 * for storing or serving is cache/policy.c's job. Duplicates follow RFC 9111 §4.2.1: the first
 * occurrence of a valued directive wins (later ones are ignored); boolean directives accumulate,
 * so any no-store stays a no-store. Commas and "max-age=" inside quoted strings are data, not
 * directives (http-cache-tests freshness-max-age-ignore-quoted). */
#include "http/cachectl.h"

#include <string.h>

#include "http/internal.h"

#define DELTA_SATURATE INT64_C(2147483648) /* RFC 9111 §1.2.2 */

void cachectl_init(struct cache_control *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = cc->s_maxage = cc->stale_while_revalidate = cc->stale_if_error =
        cc->min_fresh = cc->max_stale = CACHECTL_ABSENT;
}

/* delta-seconds = 1*DIGIT, saturating; -1 if not that. */
static int64_t delta_seconds(const char *v, size_t len)
{
    if (len == 0)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)((unsigned char)v[i] - '0');
        if (d > 9)
            return -1;
        if (n < DELTA_SATURATE)
            n = n * 10 + d;
    }
    return n > DELTA_SATURATE ? DELTA_SATURATE : n;
}

static bool name_eq(const char *n, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    if (l != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lit[i])
            return false;
    }
    return true;
}

/* First valid occurrence wins; an invalid one is ignored unless it is the first max-age. */
static void set_delta(int64_t *field, int64_t v)
{
    if (*field == CACHECTL_ABSENT && v >= 0)
        *field = v;
}

struct directive {
    const char *name;
    size_t name_len;
    bool has_value;
    const char *value; /* for quoted-string: inside the quotes, escapes left as is */
    size_t value_len;
    bool malformed;    /* junk after the name or value, or an unterminated quote */
};

static void apply(struct cache_control *cc, const struct directive *d)
{
    const char *n = d->name;
    size_t l = d->name_len;
    int64_t v = d->has_value && !d->malformed ? delta_seconds(d->value, d->value_len) : -1;
    if (name_eq(n, l, "max-age")) {
        if (cc->max_age == CACHECTL_ABSENT && !cc->max_age_invalid) {
            if (v >= 0)
                cc->max_age = v;
            else
                cc->max_age_invalid = true; /* the policy treats the response as stale */
        }
    } else if (name_eq(n, l, "s-maxage")) {
        set_delta(&cc->s_maxage, v);
    } else if (name_eq(n, l, "stale-while-revalidate")) {
        set_delta(&cc->stale_while_revalidate, v);
    } else if (name_eq(n, l, "stale-if-error")) {
        set_delta(&cc->stale_if_error, v);
    } else if (name_eq(n, l, "min-fresh")) {
        set_delta(&cc->min_fresh, v);
    } else if (name_eq(n, l, "max-stale")) {
        if (!d->has_value)
            set_delta(&cc->max_stale, INT64_MAX);
        else
            set_delta(&cc->max_stale, v);
    } else if (name_eq(n, l, "no-cache")) {
        /* qualified form: only the listed fields need revalidation (RFC 9111 §5.2.2.4) */
        if (d->has_value)
            cc->no_cache_fields = true;
        else
            cc->no_cache = true;
    } else if (name_eq(n, l, "private")) {
        if (d->has_value)
            cc->private_fields = true;
        else
            cc->private_ = true;
    } else if (name_eq(n, l, "no-store")) {
        cc->no_store = true;
    } else if (name_eq(n, l, "public")) {
        cc->public_ = true;
    } else if (name_eq(n, l, "must-revalidate")) {
        cc->must_revalidate = true;
    } else if (name_eq(n, l, "proxy-revalidate")) {
        cc->proxy_revalidate = true;
    } else if (name_eq(n, l, "must-understand")) {
        cc->must_understand = true;
    } else if (name_eq(n, l, "no-transform")) {
        cc->no_transform = true;
    } else if (name_eq(n, l, "only-if-cached")) {
        cc->only_if_cached = true;
    } else if (name_eq(n, l, "immutable")) {
        cc->immutable = true;
    }
    /* anything else: an extension we do not know, ignored (RFC 9111 §5.2.3) */
}

void cachectl_parse(struct cache_control *cc, const char *value, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* skip list separators and OWS */
        while (i < len && (value[i] == ',' || value[i] == ' ' || value[i] == '\t'))
            i++;
        if (i >= len)
            break;
        struct directive d = {0};
        size_t n0 = i;
        while (i < len && h1__tchar[(unsigned char)value[i]])
            i++;
        d.name = value + n0;
        d.name_len = i - n0;
        if (i < len && value[i] == '=') {
            i++;
            d.has_value = true;
            if (i < len && value[i] == '"') {
                size_t v0 = ++i;
                while (i < len && value[i] != '"') {
                    if (value[i] == '\\' && i + 1 < len)
                        i++;
                    i++;
                }
                if (i >= len) {
                    d.malformed = true; /* unterminated */
                } else {
                    d.value = value + v0;
                    d.value_len = i - v0;
                    i++;
                }
            } else {
                size_t v0 = i;
                while (i < len && h1__tchar[(unsigned char)value[i]])
                    i++;
                d.value = value + v0;
                d.value_len = i - v0;
            }
        }
        /* after the directive only OWS then ',' may follow; else the whole element is junk
         * ("max-age =5", "max-age= 5", "max-age='5'", "max-age=5.0"), skipped quote-aware */
        while (i < len && (value[i] == ' ' || value[i] == '\t'))
            i++;
        if (i < len && value[i] != ',') {
            d.malformed = true;
            bool q = false;
            while (i < len && (q || value[i] != ',')) {
                if (value[i] == '"')
                    q = !q;
                else if (q && value[i] == '\\' && i + 1 < len)
                    i++;
                i++;
            }
        }
        if (d.name_len)
            apply(cc, &d);
    }
}
