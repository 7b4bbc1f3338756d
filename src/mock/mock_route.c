/* Route patterns of the mock ("/api/users/{id}", "/static/{rest}") and query-parameter lookup. The
 * matcher walks pattern and path once, capturing {name} segments as slices of the path: no
 * allocation per request. Route order (first match wins) is the profile's business, not this
 * file's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "mock/internal.h"

/* Validates at load time what the matcher assumes: '{name}' is a whole segment, '*' is last. */
int mock_pattern_compile(struct mock_pattern *p, const char *text, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (text[0] != '/') {
        snprintf(err, errlen, "must start with '/'");
        return -1;
    }
    for (const char *s = text; *s; s++) {
        if (*s == '*' && s[1] != '\0') {
            snprintf(err, errlen, "'*' is only allowed at the end");
            goto fail;
        }
        if (*s == '?' || *s == '#' || *s == ' ') {
            snprintf(err, errlen, "'%c' is not allowed in a path pattern", *s);
            goto fail;
        }
        if (*s == '}') {
            snprintf(err, errlen, "'}' without '{'");
            goto fail;
        }
        if (*s != '{')
            continue;
        if (s[-1] != '/') {
            snprintf(err, errlen, "'{' must start a path segment");
            goto fail;
        }
        const char *end = strchr(s, '}');
        if (!end || end == s + 1) {
            snprintf(err, errlen, "'{' needs a name and a closing '}'");
            goto fail;
        }
        if (end[1] != '\0' && end[1] != '/') {
            snprintf(err, errlen, "'{name}' must be a whole path segment");
            goto fail;
        }
        for (const char *c = s + 1; c < end; c++) {
            if (*c == '{' || *c == '/' || *c == '*') {
                snprintf(err, errlen, "bad character '%c' in a parameter name", *c);
                goto fail;
            }
        }
        if (p->nparams == MOCK_MAX_PARAMS) {
            snprintf(err, errlen, "at most %d {parameters}", MOCK_MAX_PARAMS);
            goto fail;
        }
        p->params[p->nparams++] = xstrndup(s + 1, (size_t)(end - s - 1));
        s = end;
    }
    p->text = xstrdup(text);
    return 0;
fail:
    mock_pattern_free(p);
    return -1;
}

/* Frees the names and the text (also of a half-compiled pattern). */
void mock_pattern_free(struct mock_pattern *p)
{
    for (size_t i = 0; i < p->nparams; i++) {
        free(p->params[i]);
        p->params[i] = NULL;
    }
    p->nparams = 0;
    free(p->text);
    p->text = NULL;
}

/* One pass over pattern and path; captures are slices of <path> (valid while it is). */
int mock_pattern_match(const struct mock_pattern *p, const char *path, size_t len,
                       struct mock_param *params)
{
    const char *s = p->text;
    size_t i = 0, np = 0;
    while (*s) {
        if (*s == '*')
            return (int)np; /* any suffix */
        if (*s == '/' && s[1] == '*' && i == len)
            return (int)np; // a trailing slash-star also matches the bare prefix
        if (*s == '{') {
            size_t start = i;
            while (i < len && path[i] != '/')
                i++;
            if (i == start)
                return -1; /* a parameter is never empty */
            params[np].name = p->params[np];
            params[np].value = path + start;
            params[np].value_len = i - start;
            np++;
            s = strchr(s, '}') + 1;
            continue;
        }
        if (i >= len || path[i] != *s)
            return -1;
        i++;
        s++;
    }
    return i == len ? (int)np : -1;
}

/* Linear scan of a&b=c: queries are short and this runs once per request at most. */
bool mock_query_get(const char *q, size_t len, const char *name, const char **val, size_t *val_len)
{
    if (!q)
        return false;
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && q[i] != '&')
            i++;
        /* [start, i) is one parameter */
        size_t eq = start;
        while (eq < i && q[eq] != '=')
            eq++;
        if (eq - start == nlen && memcmp(q + start, name, nlen) == 0) {
            *val = eq < i ? q + eq + 1 : q + i;
            *val_len = eq < i ? i - eq - 1 : 0;
            return true;
        }
        i++;
    }
    return false;
}
