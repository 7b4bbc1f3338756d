/* Descriptor tables -> typed C structs. One table per config section says, for each key, its type,
 * its place in the struct, its default, its bounds and its doc; this file fills the struct from a
 * YAML map, collects every error with its position, and prints the reference. It knows nothing
 * about what the keys mean (that is the job of each module's table). */
#include "config/cfg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/units.h"
#include "core/buf.h"
#include "core/xmalloc.h"

/* A table with an invalid default or bound is a bug of the program, not of the config file. */
static void cfg__bug(const struct cfg_desc *d, const char *what, const char *value)
{
    fprintf(stderr, "bug: config table key '%s': invalid %s '%s'\n", d->key, what,
            value ? value : "(null)");
    abort();
}

void cfg_error(struct cfg_errors *e, const struct ynode *node, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    if (node != NULL && node->file != NULL)
        buf_printf(&b, "%s:%d:%d: ", node->file, node->line, node->col);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    buf_append(&b, "", 1);
    e->msgs = xrealloc(e->msgs, (e->n + 1) * sizeof(*e->msgs));
    e->msgs[e->n++] = b.data; /* ownership moves to the list */
}

/* Line and column of a "file:line:col: message", from the first ":<digits>:<digits>: " (file
 * names rarely hold that pattern; messages written by cfg_error() always start with it). */
static void cfg__msg_pos(const char *m, long *line, long *col)
{
    *line = *col = 0;
    for (const char *p = strchr(m, ':'); p != NULL; p = strchr(p + 1, ':')) {
        char *end;
        if (p[1] < '0' || p[1] > '9')
            continue;
        long l = strtol(p + 1, &end, 10);
        if (end[0] != ':' || end[1] < '0' || end[1] > '9')
            continue;
        long c = strtol(end + 1, &end, 10);
        if (end[0] != ':' || end[1] != ' ')
            continue;
        *line = l;
        *col = c;
        return;
    }
}

void cfg_errors_sort(struct cfg_errors *e, size_t from)
{
    /* Insertion sort: stable, and a config has few errors. */
    for (size_t i = from + 1; i < e->n; i++) {
        char *m = e->msgs[i];
        long l, c;
        cfg__msg_pos(m, &l, &c);
        size_t j = i;
        while (j > from) {
            long lj, cj;
            cfg__msg_pos(e->msgs[j - 1], &lj, &cj);
            if (lj < l || (lj == l && cj <= c))
                break;
            e->msgs[j] = e->msgs[j - 1];
            j--;
        }
        e->msgs[j] = m;
    }
}

void cfg_errors_print(const struct cfg_errors *e, FILE *out)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(out, "%s\n", e->msgs[i]);
}

void cfg_errors_free(struct cfg_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}

/* ---- scalars ---- */

/* YAML's null: an empty plain value ("key:"), "~" or "null". */
static bool cfg__is_null(const struct ynode *n)
{
    return n->type == YNODE_SCALAR && !n->quoted &&
           (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0);
}

static int cfg__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int cfg__parse_int(const char *s, int64_t *out)
{
    if (*s == '\0' || *s == ' ' || *s == '+')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Index of <s> in "a|b|c", or -1. */
static int cfg__enum_index(const char *choices, const char *s)
{
    size_t slen = strlen(s);
    int i = 0;
    for (const char *p = choices; p != NULL; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == slen && memcmp(p, s, len) == 0)
            return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* "a|b|c" as "a, b, c" into <b>. */
static void cfg__choices_list(struct buf *b, const char *choices)
{
    for (const char *p = choices; *p; p++) {
        if (*p == '|')
            buf_append_str(b, ", ");
        else
            buf_append(b, p, 1);
    }
}

static const char *cfg__type_word(enum cfg_type t)
{
    switch (t) {
    case CFG_BOOL:
        return "true or false";
    case CFG_INT:
        return "an integer";
    case CFG_DURATION:
        return "a duration (e.g. 250ms, 2s, 1m)";
    case CFG_DURATION_US:
        return "a duration (e.g. 50us, 1ms)";
    case CFG_SIZE:
        return "a size (e.g. 512, 64KB, 256MB)";
    case CFG_PERCENT:
        return "a percentage (e.g. 50% or 0.5)";
    case CFG_STRING:
        return "a string";
    case CFG_ENUM:
        return "one of the listed values";
    case CFG_STRLIST:
        return "a string or a list of strings";
    case CFG_SECTION:
        return "a map";
    }
    return "?";
}

/* Numeric types share one path: the value as a comparable number, and its text for messages. */
static int cfg__num(enum cfg_type t, const char *s, int64_t *i, uint64_t *u, double *f)
{
    switch (t) {
    case CFG_INT:
        return cfg__parse_int(s, i);
    case CFG_DURATION:
        return units_parse_duration_ms(s, u);
    case CFG_DURATION_US:
        return units_parse_duration_us(s, u);
    case CFG_SIZE:
        return units_parse_size(s, u);
    case CFG_PERCENT:
        return units_parse_percent(s, f);
    default:
        return -1;
    }
}

/* -1, 0, 1 as a < b, a == b, a > b for values of type <t>. */
static int cfg__cmp(enum cfg_type t, int64_t ai, uint64_t au, double af, int64_t bi, uint64_t bu,
                    double bf)
{
    if (t == CFG_INT)
        return ai < bi ? -1 : ai > bi;
    if (t == CFG_PERCENT)
        return af < bf ? -1 : af > bf;
    return au < bu ? -1 : au > bu;
}

/* Checks <v> against the bounds of <d>; returns 0 or -1 with an error. Percentages are bounded
 * to 0..100% unless the table says otherwise: they are fractions. */
static int cfg__check_bounds(const struct cfg_desc *d, const char *path, const struct ynode *node,
                             int64_t vi, uint64_t vu, double vf, struct cfg_errors *errs)
{
    const char *min = d->min, *max = d->max;
    if (d->type == CFG_PERCENT) {
        min = min ? min : "0%";
        max = max ? max : "100%";
    }
    int64_t bi = 0;
    uint64_t bu = 0;
    double bf = 0;
    if (min != NULL) {
        if (cfg__num(d->type, min, &bi, &bu, &bf) == -1)
            cfg__bug(d, "min", min);
        if (cfg__cmp(d->type, vi, vu, vf, bi, bu, bf) < 0)
            goto out_of_range;
    }
    if (max != NULL) {
        if (cfg__num(d->type, max, &bi, &bu, &bf) == -1)
            cfg__bug(d, "max", max);
        if (cfg__cmp(d->type, vi, vu, vf, bi, bu, bf) > 0)
            goto out_of_range;
    }
    return 0;
out_of_range:
    if (min != NULL && max != NULL)
        cfg_error(errs, node, "%s: %s is out of range; allowed %s..%s", path, node->str, min, max);
    else if (min != NULL)
        cfg_error(errs, node, "%s: %s is too small; the minimum is %s", path, node->str, min);
    else
        cfg_error(errs, node, "%s: %s is too large; the maximum is %s", path, node->str, max);
    return -1;
}

static void cfg__strlist_free(struct cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Count bounds of a list or length bounds of a string, written as integers in the table. */
static int cfg__check_count(const struct cfg_desc *d, const char *path, const struct ynode *node,
                            size_t n, const char *what, struct cfg_errors *errs)
{
    int64_t lo = 0, hi = INT64_MAX;
    if (d->min != NULL && cfg__parse_int(d->min, &lo) == -1)
        cfg__bug(d, "min", d->min);
    if (d->max != NULL && cfg__parse_int(d->max, &hi) == -1)
        cfg__bug(d, "max", d->max);
    if ((int64_t)n < lo) {
        if (lo == 1 && d->type == CFG_STRING)
            cfg_error(errs, node, "%s: must not be empty", path);
        else
            cfg_error(errs, node, "%s: needs at least %" PRId64 " %s (has %zu)", path, lo, what, n);
        return -1;
    }
    if ((int64_t)n > hi) {
        cfg_error(errs, node, "%s: allows at most %" PRId64 " %s (has %zu)", path, hi, what, n);
        return -1;
    }
    return 0;
}

static int cfg__parse_value(const struct cfg_desc *d, const char *path, const struct ynode *node,
                            void *out, struct cfg_errors *errs)
{
    if (d->type == CFG_SECTION) {
        cfg_error(errs, node, "%s: is a section, not a value", path);
        return -1;
    }
    if (d->type == CFG_STRLIST) {
        struct cfg_strlist l = {NULL, 0};
        if (cfg__is_null(node)) {
            /* "key:" alone: an empty list */
        } else if (node->type == YNODE_SCALAR) {
            l.v = xmalloc(sizeof(*l.v));
            l.v[l.n++] = xstrndup(node->str, node->len);
        } else if (node->type == YNODE_SEQ) {
            for (size_t i = 0; i < node->n; i++) {
                if (node->items[i]->type != YNODE_SCALAR) {
                    cfg_error(errs, node->items[i], "%s: item %zu is a %s; expected a string", path,
                              i + 1, ynode_type_name(node->items[i]));
                    cfg__strlist_free(&l);
                    return -1;
                }
            }
            l.v = xmalloc((node->n ? node->n : 1) * sizeof(*l.v));
            for (size_t i = 0; i < node->n; i++)
                l.v[l.n++] = xstrndup(node->items[i]->str, node->items[i]->len);
        } else {
            cfg_error(errs, node, "%s: expected %s, got a map", path, cfg__type_word(d->type));
            return -1;
        }
        if (cfg__check_count(d, path, node, l.n, "items", errs) == -1) {
            cfg__strlist_free(&l);
            return -1;
        }
        cfg__strlist_free((struct cfg_strlist *)out);
        *(struct cfg_strlist *)out = l;
        return 0;
    }
    if (node->type != YNODE_SCALAR) {
        cfg_error(errs, node, "%s: expected %s, got a %s", path, cfg__type_word(d->type),
                  ynode_type_name(node));
        return -1;
    }
    if (strlen(node->str) != node->len) { /* "\0" in a quoted value: C strings would cut it */
        cfg_error(errs, node, "%s: contains a NUL byte", path);
        return -1;
    }
    if (d->type == CFG_STRING) {
        char **dst = out;
        if (cfg__is_null(node)) {
            if (d->min != NULL && cfg__check_count(d, path, node, 0, "characters", errs) == -1)
                return -1;
            free(*dst);
            *dst = NULL;
            return 0;
        }
        if (cfg__check_count(d, path, node, node->len, "characters", errs) == -1)
            return -1;
        free(*dst);
        *dst = xstrndup(node->str, node->len);
        return 0;
    }
    if (cfg__is_null(node)) {
        cfg_error(errs, node, "%s: needs a value: %s", path, cfg__type_word(d->type));
        return -1;
    }
    const char *s = node->str;
    switch (d->type) {
    case CFG_BOOL: {
        bool v;
        if (cfg__parse_bool(s, &v) == -1) {
            cfg_error(errs, node, "%s: '%s' is not a boolean; use true or false", path, s);
            return -1;
        }
        *(bool *)out = v;
        return 0;
    }
    case CFG_ENUM: {
        int i = d->choices ? cfg__enum_index(d->choices, s) : -1;
        if (i < 0) {
            struct buf b = BUF_INIT;
            cfg__choices_list(&b, d->choices ? d->choices : "");
            cfg_error(errs, node, "%s: '%s' is not allowed; use one of: %.*s", path, s, (int)b.len,
                      b.data ? b.data : "");
            buf_deinit(&b);
            return -1;
        }
        *(int *)out = i;
        return 0;
    }
    case CFG_INT:
    case CFG_DURATION:
    case CFG_DURATION_US:
    case CFG_SIZE:
    case CFG_PERCENT: {
        int64_t vi = 0;
        uint64_t vu = 0;
        double vf = 0;
        if (cfg__num(d->type, s, &vi, &vu, &vf) == -1) {
            cfg_error(errs, node, "%s: '%s' is not %s", path, s, cfg__type_word(d->type));
            return -1;
        }
        if (cfg__check_bounds(d, path, node, vi, vu, vf, errs) == -1)
            return -1;
        if (d->type == CFG_INT)
            *(int64_t *)out = vi;
        else if (d->type == CFG_PERCENT)
            *(double *)out = vf;
        else
            *(uint64_t *)out = vu;
        return 0;
    }
    default:
        cfg_error(errs, node, "%s: unsupported type", path);
        return -1;
    }
}

int cfg_parse_scalar(const struct cfg_desc *d, const struct ynode *node, void *out,
                     struct cfg_errors *errs)
{
    return cfg__parse_value(d, d->key, node, out, errs);
}

/* ---- defaults ---- */

static void *cfg__field(void *base, const struct cfg_desc *d) { return (char *)base + d->offset; }

static void cfg__default_one(const struct cfg_desc *d, void *base)
{
    void *out = cfg__field(base, d);
    if (d->def == NULL) {
        /* No default: the zero value (NULL string, empty list), so cfg_free_section stays safe. */
        if (d->type == CFG_STRING) {
            free(*(char **)out);
            *(char **)out = NULL;
        } else if (d->type == CFG_STRLIST) {
            cfg__strlist_free(out);
        }
        return;
    }
    /* The default goes through the same parser as a value, so a table cannot hold a default
     * that a user could not write. Lists are written in YAML ("[GET, HEAD]"). */
    struct ynode plain = {.type = YNODE_SCALAR, .str = (char *)d->def, .len = strlen(d->def),
                          .quoted = d->type == CFG_STRING};
    struct ynode *tree = NULL;
    const struct ynode *v = &plain;
    if (d->type == CFG_STRLIST) {
        char err[256];
        tree = yaml_load_string(d->def, strlen(d->def), "<default>", err, sizeof(err));
        if (tree == NULL)
            cfg__bug(d, "default", d->def);
        if (tree->type != YNODE_MAP) /* an empty document loads as an empty map: no items */
            v = tree;
        else
            plain.len = 0;
    }
    struct cfg_errors errs = {NULL, 0};
    if (cfg__parse_value(d, d->key, v, out, &errs) == -1) {
        if (errs.n)
            fprintf(stderr, "%s\n", errs.msgs[0]);
        cfg__bug(d, "default", d->def);
    }
    yaml_tree_free(tree);
}

void cfg_defaults(const struct cfg_desc *desc, void *base)
{
    for (const struct cfg_desc *d = desc; d->key != NULL; d++) {
        if (d->type == CFG_SECTION)
            cfg_defaults(d->sub, base);
        else
            cfg__default_one(d, base);
    }
}

/* ---- apply ---- */

static unsigned cfg__distance(const char *a, const char *b)
{
    /* Levenshtein over short keys, two rows. */
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    unsigned prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            unsigned del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(*prev));
    }
    return prev[lb];
}

static void cfg__suggest(const char *word, const char *cand, const char **best, unsigned *best_d)
{
    unsigned dist = cfg__distance(word, cand);
    if (dist < *best_d && dist < strlen(cand)) {
        *best_d = dist;
        *best = cand;
    }
}

static void cfg__unknown_key(const struct cfg_desc *desc, const char *const *manual,
                             const char *path_prefix, const struct ynode *key,
                             struct cfg_errors *errs)
{
    struct buf known = BUF_INIT;
    const char *best = NULL;
    unsigned best_d = 3; /* suggest only close matches: a typo, not a different word */
    for (const struct cfg_desc *d = desc; d->key != NULL; d++) {
        buf_printf(&known, "%s%s", known.len ? ", " : "", d->key);
        cfg__suggest(key->str, d->key, &best, &best_d);
    }
    for (size_t i = 0; manual != NULL && manual[i] != NULL; i++) {
        buf_printf(&known, "%s%s", known.len ? ", " : "", manual[i]);
        cfg__suggest(key->str, manual[i], &best, &best_d);
    }
    if (best != NULL)
        cfg_error(errs, key, "%s%s: unknown key; did you mean '%s'? known: %.*s", path_prefix,
                  key->str, best, (int)known.len, known.data ? known.data : "");
    else
        cfg_error(errs, key, "%s%s: unknown key; known: %.*s", path_prefix, key->str,
                  (int)known.len, known.data ? known.data : "(none)");
    buf_deinit(&known);
}

/* Required keys of a section that is absent: reported at <at> (the map that lacks the section, or
 * no position). */
static void cfg__missing_required(const struct cfg_desc *desc, const struct ynode *at,
                                  const char *prefix, const char *section, struct cfg_errors *errs)
{
    struct buf p = BUF_INIT;
    buf_printf(&p, "%s%s%s", prefix, section ? section : "", section ? "." : "");
    buf_append(&p, "", 1);
    for (const struct cfg_desc *d = desc; d->key != NULL; d++) {
        if (d->required)
            cfg_error(errs, at, "%s%s: missing (required: %s)", p.data, d->key,
                      d->doc ? d->doc : cfg__type_word(d->type));
        else if (d->type == CFG_SECTION)
            cfg__missing_required(d->sub, at, p.data, d->key, errs);
    }
    buf_deinit(&p);
}

/* Applies the values of map <node> (defaults are already in place). <prefix> is "" or "a.b.". */
static bool cfg__in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static void cfg__apply_values(const struct cfg_desc *desc, void *base, const struct ynode *node,
                              const char *prefix, const char *const *manual,
                              struct cfg_errors *errs)
{
    if (node->type != YNODE_MAP) {
        if (*prefix)
            cfg_error(errs, node, "%.*s: expected a map of settings, got a %s",
                      (int)strlen(prefix) - 1, prefix, ynode_type_name(node));
        else
            cfg_error(errs, node, "expected a map of settings, got a %s", ynode_type_name(node));
        return;
    }
    for (size_t i = 0; i < ynode_size(node); i++) {
        const struct ynode *k = ynode_key(node, i), *v = ynode_value(node, i);
        const struct cfg_desc *d = desc;
        while (d->key != NULL && strcmp(d->key, k->str) != 0)
            d++;
        if (d->key == NULL) {
            if (!cfg__in_list(manual, k->str))
                cfg__unknown_key(desc, manual, prefix, k, errs);
            continue;
        }
        struct buf path = BUF_INIT;
        buf_printf(&path, "%s%s", prefix, d->key);
        if (d->type == CFG_SECTION) {
            if (!cfg__is_null(v)) { /* "section:" alone keeps the defaults */
                buf_append(&path, ".", 1);
                buf_append(&path, "", 1);
                cfg__apply_values(d->sub, base, v, path.data, NULL, errs);
            }
        } else {
            buf_append(&path, "", 1);
            cfg__parse_value(d, path.data, v, cfg__field(base, d), errs);
        }
        buf_deinit(&path);
    }
    for (const struct cfg_desc *d = desc; d->key != NULL; d++) {
        const struct ynode *v = ynode_get(node, d->key);
        if (d->required && v == NULL)
            cfg_error(errs, node, "%s%s: missing (required: %s)", prefix, d->key,
                      d->doc ? d->doc : cfg__type_word(d->type));
        else if (d->type == CFG_SECTION && (v == NULL || cfg__is_null(v)))
            cfg__missing_required(d->sub, node, prefix, d->key, errs);
    }
}

size_t cfg_apply_at(const struct cfg_desc *desc, void *base, const struct ynode *node,
                    const char *where, const char *const *manual, struct cfg_errors *errs)
{
    size_t before = errs->n;
    struct buf prefix = BUF_INIT;
    if (where != NULL && *where != '\0')
        buf_printf(&prefix, "%s.", where);
    buf_append(&prefix, "", 1);
    cfg_defaults(desc, base);
    if (node == NULL || cfg__is_null(node))
        cfg__missing_required(desc, node, prefix.data, NULL, errs);
    else
        cfg__apply_values(desc, base, node, prefix.data, manual, errs);
    buf_deinit(&prefix);
    return errs->n - before;
}

size_t cfg_apply(const struct cfg_desc *desc, void *base, const struct ynode *node,
                 struct cfg_errors *errs)
{
    return cfg_apply_at(desc, base, node, NULL, NULL, errs);
}

void cfg_free_section(const struct cfg_desc *desc, void *base)
{
    for (const struct cfg_desc *d = desc; d->key != NULL; d++) {
        void *f = cfg__field(base, d);
        if (d->type == CFG_SECTION) {
            cfg_free_section(d->sub, base);
        } else if (d->type == CFG_STRING) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (d->type == CFG_STRLIST) {
            cfg__strlist_free(f);
        }
    }
}

/* ---- reference ---- */

static const char *cfg__type_name(enum cfg_type t)
{
    static const char *const names[] = {
        [CFG_BOOL] = "bool",         [CFG_INT] = "integer",     [CFG_DURATION] = "duration",
        [CFG_DURATION_US] = "duration", [CFG_SIZE] = "size",    [CFG_PERCENT] = "percent",
        [CFG_STRING] = "string",     [CFG_ENUM] = "enum",       [CFG_STRLIST] = "list",
        [CFG_SECTION] = "section"};
    return (size_t)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* Writes <s> for a Markdown table cell: '|' would end the cell. */
static void cfg__md(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

void cfg_print_reference(const struct cfg_desc *desc, const char *prefix, FILE *out)
{
    for (const struct cfg_desc *d = desc; d->key != NULL; d++) {
        fputs("| `", out);
        if (prefix && *prefix) {
            cfg__md(out, prefix);
            fputc('.', out);
        }
        cfg__md(out, d->key);
        fputs("` | ", out);
        if (d->type == CFG_ENUM && d->choices) {
            cfg__md(out, d->choices);
        } else {
            fputs(cfg__type_name(d->type), out);
        }
        fputs(" | ", out);
        if (d->required)
            fputs("required", out);
        else if (d->def && *d->def)
        {
            fputc('`', out);
            cfg__md(out, d->def);
            fputc('`', out);
        }
        else
            fputs("-", out);
        fputs(" | ", out);
        if (d->min && d->max) {
            cfg__md(out, d->min);
            fputs("..", out);
            cfg__md(out, d->max);
        } else if (d->min) {
            fputs("≥ ", out);
            cfg__md(out, d->min);
        } else if (d->max) {
            fputs("≤ ", out);
            cfg__md(out, d->max);
        } else {
            fputs("-", out);
        }
        fputs(" | ", out);
        cfg__md(out, d->doc);
        fputs(" |\n", out);
        if (d->type == CFG_SECTION && d->sub) {
            struct buf p = BUF_INIT;
            if (prefix && *prefix)
                buf_printf(&p, "%s.", prefix);
            buf_printf(&p, "%s", d->key);
            buf_append(&p, "", 1);
            cfg_print_reference(d->sub, p.data, out);
            buf_deinit(&p);
        }
    }
}
