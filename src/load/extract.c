/* Values taken from a response for the next steps of an iteration (`extract:` in a flow step):
 * a JSON path into the body (a small walker over the bytes, no tree built), a header (read by
 * client.c while the head is parsed), or the first match of a POSIX regex. A value is kept only
 * when it is at most EXTRACT_MAX_VALUE bytes and holds no line break: it may go into a header. */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

#define EXTRACT_MAX_DEPTH 64

struct jcur {
    const char *p, *end;
    int depth;
};

static void extract__ws(struct jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Skips a string whose opening quote is at c->p; -1 if unterminated. */
static int extract__skip_str(struct jcur *c)
{
    for (c->p++; c->p < c->end; c->p++) {
        if (*c->p == '\\') {
            c->p++;
            continue;
        }
        if (*c->p == '"') {
            c->p++;
            return 0;
        }
    }
    return -1;
}

/* Skips one value of any kind; -1 on malformed or too deep input. */
static int extract__skip(struct jcur *c)
{
    extract__ws(c);
    if (c->p >= c->end)
        return -1;
    char ch = *c->p;
    if (ch == '"')
        return extract__skip_str(c);
    if (ch == '{' || ch == '[') {
        if (++c->depth > EXTRACT_MAX_DEPTH)
            return -1;
        char close = ch == '{' ? '}' : ']';
        c->p++;
        extract__ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            c->depth--;
            return 0;
        }
        for (;;) {
            if (ch == '{') {
                extract__ws(c);
                if (c->p >= c->end || *c->p != '"' || extract__skip_str(c) == -1)
                    return -1;
                extract__ws(c);
                if (c->p >= c->end || *c->p != ':')
                    return -1;
                c->p++;
            }
            if (extract__skip(c) == -1)
                return -1;
            extract__ws(c);
            if (c->p >= c->end)
                return -1;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p != close)
                return -1;
            c->p++;
            c->depth--;
            return 0;
        }
    }
    /* a number, true, false or null */
    const char *s = c->p;
    while (c->p < c->end && (isalnum((unsigned char)*c->p) || strchr("+-.", *c->p)))
        c->p++;
    return c->p > s ? 0 : -1;
}

/* One path step: ".key" (or "['key']") or "[N]". */
struct jstep {
    const char *key;
    size_t klen;
    long index; /* -1: a key */
};

/* Parses the next step of <path> at *<pp>; 1 with <st> set, 0 at the end, -1 when malformed. */
static int extract__step(const char **pp, struct jstep *st)
{
    const char *p = *pp;
    if (*p == '\0')
        return 0;
    if (*p == '.') {
        p++;
        const char *k = p;
        while (*p && *p != '.' && *p != '[')
            p++;
        if (p == k)
            return -1;
        st->key = k;
        st->klen = (size_t)(p - k);
        st->index = -1;
    } else if (*p == '[' && (p[1] == '\'' || p[1] == '"')) {
        char q = p[1];
        const char *k = p + 2, *e = strchr(k, q);
        if (e == NULL || e[1] != ']')
            return -1;
        st->key = k;
        st->klen = (size_t)(e - k);
        st->index = -1;
        p = e + 2;
    } else if (*p == '[') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end != ']' || v < 0)
            return -1;
        st->key = NULL;
        st->klen = 0;
        st->index = v;
        p = end + 1;
    } else {
        return -1;
    }
    *pp = p;
    return 1;
}

int extract_json_path_check(const char *path, char *err, size_t errlen)
{
    if (path[0] != '$') {
        snprintf(err, errlen, "a JSON path starts with '$', like $.token or $.items[0].id");
        return -1;
    }
    const char *p = path + 1;
    struct jstep st;
    int r;
    while ((r = extract__step(&p, &st)) == 1)
        ;
    if (r == -1) {
        snprintf(err, errlen, "'%s' is not a JSON path like $.token, $.items[0].id or "
                              "$['a key']", path);
        return -1;
    }
    return 0;
}

/* Appends the JSON string at c->p (its quote) decoded; -1 on a bad escape. \uXXXX is kept only
 * for ASCII, which is what tokens and ids hold. */
static int extract__string(struct jcur *c, struct buf *out)
{
    for (c->p++; c->p < c->end; c->p++) {
        char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch != '\\') {
            buf_append(out, &ch, 1);
            continue;
        }
        if (++c->p >= c->end)
            return -1;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *f = strchr(from, *c->p);
        if (f && *c->p) {
            buf_append(out, &to[f - from], 1);
        } else if (*c->p == 'u' && c->end - c->p > 4) {
            char hex[5] = {c->p[1], c->p[2], c->p[3], c->p[4], 0};
            char *e;
            long v = strtol(hex, &e, 16);
            if (*e || v <= 0 || v > 0x7f)
                return -1;
            char a = (char)v;
            buf_append(out, &a, 1);
            c->p += 4;
        } else {
            return -1;
        }
    }
    return -1;
}

int extract_json(const char *body, size_t len, const char *path, struct buf *out)
{
    if (path[0] != '$')
        return -1;
    struct jcur c = {body, body + len, 0};
    const char *p = path + 1;
    struct jstep st;
    int r;
    while ((r = extract__step(&p, &st)) == 1) {
        extract__ws(&c);
        if (c.p >= c.end)
            return -1;
        if (st.index < 0) {
            if (*c.p != '{')
                return -1;
            c.p++;
            bool found = false;
            for (;;) {
                extract__ws(&c);
                if (c.p < c.end && *c.p == '}')
                    return -1;
                if (c.p >= c.end || *c.p != '"')
                    return -1;
                const char *k = c.p + 1;
                if (extract__skip_str(&c) == -1)
                    return -1;
                size_t klen = (size_t)(c.p - 1 - k);
                extract__ws(&c);
                if (c.p >= c.end || *c.p != ':')
                    return -1;
                c.p++;
                /* keys are compared as written: an escaped key never matches, which is fine */
                if (klen == st.klen && memcmp(k, st.key, klen) == 0) {
                    found = true;
                    break;
                }
                if (extract__skip(&c) == -1)
                    return -1;
                extract__ws(&c);
                if (c.p < c.end && *c.p == ',') {
                    c.p++;
                    continue;
                }
                return -1;
            }
            if (!found)
                return -1;
        } else {
            if (*c.p != '[')
                return -1;
            c.p++;
            for (long i = 0; i < st.index; i++) {
                if (extract__skip(&c) == -1)
                    return -1;
                extract__ws(&c);
                if (c.p >= c.end || *c.p != ',')
                    return -1;
                c.p++;
            }
            extract__ws(&c);
            if (c.p < c.end && *c.p == ']')
                return -1;
        }
    }
    if (r == -1)
        return -1;
    extract__ws(&c);
    if (c.p >= c.end)
        return -1;
    if (*c.p == '"')
        return extract__string(&c, out);
    if (*c.p == '{' || *c.p == '[' || *c.p == 'n')
        return -1; /* an object, an array or null: not a value to put in a request */
    const char *s = c.p;
    if (extract__skip(&c) == -1)
        return -1;
    buf_append(out, s, (size_t)(c.p - s));
    return 0;
}

int extract_regex_compile(struct load_extract *x, char *err, size_t errlen)
{
    regex_t *re = xcalloc(1, sizeof(*re));
    int rc = regcomp(re, x->expr, REG_EXTENDED);
    if (rc != 0) {
        char why[160];
        regerror(rc, re, why, sizeof(why));
        snprintf(err, errlen, "'%s' is not a valid regex (POSIX extended): %s", x->expr, why);
        free(re);
        return -1;
    }
    x->regex = re;
    return 0;
}

int extract_regex(const struct load_extract *x, const char *body, size_t len, struct buf *out)
{
    /* regexec wants a C string: the body kept for checks is at most 1 MiB */
    char *s = xstrndup(body, len);
    regmatch_t m[2];
    int rc = regexec((const regex_t *)x->regex, s, 2, m, 0);
    if (rc == 0) {
        int g = m[1].rm_so >= 0 ? 1 : 0;
        buf_append(out, s + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    }
    free(s);
    return rc == 0 ? 0 : -1;
}

void extract_free(struct load_extract *x)
{
    free(x->expr);
    x->expr = NULL;
    if (x->regex) {
        regfree((regex_t *)x->regex);
        free(x->regex);
        x->regex = NULL;
    }
}
