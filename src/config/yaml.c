/* YAML into a node tree with positions, through libyaml's event parser (the only file that
 * includes <yaml.h>). One document per file. Aliases are resolved by copying, "<<" merge keys are
 * applied, duplicate keys are errors (libyaml accepts them silently and the last one would win,
 * which hides typos). Nesting depth and alias expansion are bounded, so a hostile file costs
 * bounded memory and stack. */
#include "config/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/xmalloc.h"

#define YAML_MAX_DEPTH 128          /* deeper than any config; keeps copy/free recursion safe */
#define YAML_MAX_NODES (1u << 18)   /* after alias expansion ("billion laughs" stops here) */
#define YAML_MAX_FILE (64u << 20)

struct yaml_anchor {
    char *name;
    const struct ynode *node;
};

struct yaml_frame {
    struct ynode *node;
    char *anchor; /* registered when the collection ends, so an alias cannot reach into itself */
};

struct yaml_build {
    const char *file;
    struct ynode *root;
    struct yaml_frame stack[YAML_MAX_DEPTH];
    size_t depth;
    struct yaml_anchor *anchors;
    size_t nanchors, anchors_cap;
    size_t nodes;
    struct ynode *graveyard; /* merge sources, kept until the end of the load */
    int docs;
    char *err;
    size_t errlen;
    const char *text; /* for positions of reader errors, which carry only a byte offset */
    size_t textlen;
};

static void yaml__err(struct yaml_build *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void yaml__err(struct yaml_build *b, int line, int col, const char *fmt, ...)
{
    if (b->err == NULL || b->errlen == 0)
        return;
    int n = line > 0 ? snprintf(b->err, b->errlen, "%s:%d:%d: ", b->file, line, col)
                     : snprintf(b->err, b->errlen, "%s: ", b->file);
    if (n < 0 || (size_t)n >= b->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void yaml__free_node(struct ynode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        yaml__free_node(n->items[i]);
    free(n->items);
    free(n->str);
    free(n);
}

void yaml_tree_free(struct ynode *root)
{
    if (root == NULL)
        return;
    char *file = (char *)root->file;
    yaml__free_node(root);
    free(file);
}

static struct ynode *yaml__new(struct yaml_build *b, enum ynode_type type, yaml_mark_t mark)
{
    if (b->nodes >= YAML_MAX_NODES)
        return NULL;
    b->nodes++;
    struct ynode *n = xcalloc(1, sizeof(*n));
    n->type = type;
    n->file = b->file;
    n->line = (int)mark.line + 1;
    n->col = (int)mark.column + 1;
    return n;
}

static void yaml__push_item(struct ynode *parent, struct ynode *child)
{
    /* Grow by doubling: n is the count, capacity is the next power of two at or above it. */
    size_t n = parent->n;
    if (n == 0 || (n & (n - 1)) == 0)
        parent->items = xrealloc(parent->items, (n ? n * 2 : 4) * sizeof(*parent->items));
    parent->items[parent->n++] = child;
}

/* Deep copy for an alias; NULL when the node budget is spent. */
static struct ynode *yaml__copy(struct yaml_build *b, const struct ynode *src)
{
    if (b->nodes >= YAML_MAX_NODES)
        return NULL;
    b->nodes++;
    struct ynode *n = xcalloc(1, sizeof(*n));
    n->type = src->type;
    n->file = b->file;
    n->line = src->line;
    n->col = src->col;
    n->quoted = src->quoted;
    if (src->str != NULL) {
        n->str = xstrndup(src->str, src->len);
        n->len = src->len;
    }
    for (size_t i = 0; i < src->n; i++) {
        struct ynode *c = yaml__copy(b, src->items[i]);
        if (c == NULL) {
            yaml__free_node(n);
            return NULL;
        }
        yaml__push_item(n, c);
    }
    return n;
}

/* Attaches <n> to the collection on top of the stack (or makes it the root). */
static int yaml__attach(struct yaml_build *b, struct ynode *n)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    struct ynode *parent = b->stack[b->depth - 1].node;
    if (parent->type == YNODE_MAP && parent->n % 2 == 0 && n->type != YNODE_SCALAR) {
        yaml__err(b, n->line, n->col, "a key must be a plain value, not a %s",
                  ynode_type_name(n));
        yaml__free_node(n);
        return -1;
    }
    yaml__push_item(parent, n);
    return 0;
}

static int yaml__too_many_at(struct yaml_build *b, const struct ynode *at)
{
    yaml__err(b, at->line, at->col, "document too large (over %u nodes after expanding aliases)",
              YAML_MAX_NODES);
    return -1;
}

static bool yaml__is_merge_key(const struct ynode *k)
{
    return !k->quoted && k->len == 2 && memcmp(k->str, "<<", 2) == 0;
}

static int yaml__key_cmp(const void *a, const void *b)
{
    const struct ynode *x = *(const struct ynode *const *)a, *y = *(const struct ynode *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    /* equal keys: order by position so the error names the later one */
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : x->col > y->col);
}

/* Reports a key that appears twice among the keys of <map>. */
static int yaml__check_dups(struct yaml_build *b, const struct ynode *map)
{
    size_t npairs = map->n / 2;
    if (npairs < 2)
        return 0;
    const struct ynode **keys = xmalloc(npairs * sizeof(*keys));
    for (size_t i = 0; i < npairs; i++)
        keys[i] = map->items[2 * i];
    qsort(keys, npairs, sizeof(*keys), yaml__key_cmp);
    int rc = 0;
    for (size_t i = 1; i < npairs; i++) {
        if (keys[i]->len == keys[i - 1]->len &&
            memcmp(keys[i]->str, keys[i - 1]->str, keys[i]->len) == 0) {
            yaml__err(b, keys[i]->line, keys[i]->col, "duplicate key '%s' (first at line %d)",
                      keys[i]->str, keys[i - 1]->line);
            rc = -1;
            break;
        }
    }
    free(keys);
    return rc;
}

static bool yaml__has_key(const struct ynode *map, size_t npairs_limit, const struct ynode *key)
{
    for (size_t i = 0; i < npairs_limit; i++) {
        const struct ynode *k = map->items[2 * i];
        if (k->len == key->len && memcmp(k->str, key->str, k->len) == 0)
            return true;
    }
    return false;
}

/* Applies "<<: *base" and "<<: [*a, *b]": copies of the pairs of the merged maps are added unless
 * the map (or an earlier merged map) has that key already. Then checks duplicates among explicit
 * keys. The merge sources themselves go to the graveyard, not to free(): an anchor defined inside
 * one ("<<: &base {...}") must stay valid for later aliases. */
static int yaml__finish_map(struct yaml_build *b, struct ynode *map)
{
    bool merges = false;
    for (size_t i = 0; i < map->n; i += 2)
        merges |= yaml__is_merge_key(map->items[i]);
    if (!merges)
        return yaml__check_dups(b, map);

    struct ynode **items = map->items;
    size_t n = map->n;
    map->items = NULL;
    map->n = 0;
    int rc = 0;
    size_t first_src = b->graveyard->n;
    for (size_t i = 0; i < n; i += 2) {
        struct ynode *k = items[i], *v = items[i + 1];
        if (!yaml__is_merge_key(k)) {
            yaml__push_item(map, k);
            yaml__push_item(map, v);
            continue;
        }
        bool ok = v->type == YNODE_MAP;
        if (v->type == YNODE_SEQ) {
            ok = true;
            for (size_t j = 0; j < v->n; j++)
                ok &= v->items[j]->type == YNODE_MAP;
        }
        if (!ok && rc == 0) {
            yaml__err(b, v->line, v->col, "'<<' merges a map or a list of maps, not a %s",
                      ynode_type_name(v));
            rc = -1;
        }
        yaml__push_item(b->graveyard, k);
        yaml__push_item(b->graveyard, v);
    }
    free(items);
    if (rc == 0)
        rc = yaml__check_dups(b, map);
    for (size_t s = first_src + 1; s < b->graveyard->n && rc == 0; s += 2) {
        const struct ynode *v = b->graveyard->items[s];
        size_t nmaps = v->type == YNODE_MAP ? 1 : v->n;
        for (size_t m = 0; m < nmaps && rc == 0; m++) {
            const struct ynode *src = v->type == YNODE_MAP ? v : v->items[m];
            for (size_t i = 0; i + 1 < src->n; i += 2) {
                if (yaml__has_key(map, map->n / 2, src->items[i]))
                    continue;
                struct ynode *kc = yaml__copy(b, src->items[i]);
                struct ynode *vc = kc ? yaml__copy(b, src->items[i + 1]) : NULL;
                if (vc == NULL) {
                    yaml__free_node(kc);
                    rc = yaml__too_many_at(b, src->items[i]);
                    break;
                }
                yaml__push_item(map, kc);
                yaml__push_item(map, vc);
            }
        }
    }
    return rc;
}

static int yaml__anchor_add(struct yaml_build *b, char *name, const struct ynode *node)
{
    /* A later anchor of the same name shadows the earlier one (YAML 1.2): search from the end. */
    if (b->nanchors == b->anchors_cap) {
        b->anchors_cap = b->anchors_cap ? b->anchors_cap * 2 : 8;
        b->anchors = xrealloc(b->anchors, b->anchors_cap * sizeof(*b->anchors));
    }
    b->anchors[b->nanchors].name = name;
    b->anchors[b->nanchors].node = node;
    b->nanchors++;
    return 0;
}

static const struct ynode *yaml__anchor_find(struct yaml_build *b, const char *name)
{
    for (size_t i = b->nanchors; i > 0; i--)
        if (strcmp(b->anchors[i - 1].name, name) == 0)
            return b->anchors[i - 1].node;
    return NULL;
}

static int yaml__too_many(struct yaml_build *b, yaml_mark_t m)
{
    struct ynode at = {.line = (int)m.line + 1, .col = (int)m.column + 1};
    return yaml__too_many_at(b, &at);
}

/* Handles one parser event; returns 0, or -1 with the error written. */
static int yaml__event(struct yaml_build *b, yaml_event_t *ev)
{
    yaml_mark_t m = ev->start_mark;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            yaml__err(b, (int)m.line + 1, (int)m.column + 1,
                      "only one YAML document per file (found a second '---')");
            return -1;
        }
        return 0;
    case YAML_SCALAR_EVENT: {
        struct ynode *n = yaml__new(b, YNODE_SCALAR, m);
        if (n == NULL)
            return yaml__too_many(b, m);
        n->str = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->len = ev->data.scalar.length;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (yaml__attach(b, n) == -1)
            return -1;
        if (ev->data.scalar.anchor != NULL)
            yaml__anchor_add(b, xstrdup((const char *)ev->data.scalar.anchor), n);
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (b->depth == YAML_MAX_DEPTH) {
            yaml__err(b, (int)m.line + 1, (int)m.column + 1, "nesting deeper than %d levels",
                      YAML_MAX_DEPTH);
            return -1;
        }
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        struct ynode *n = yaml__new(b, seq ? YNODE_SEQ : YNODE_MAP, m);
        if (n == NULL)
            return yaml__too_many(b, m);
        if (yaml__attach(b, n) == -1)
            return -1;
        const yaml_char_t *anchor = seq ? ev->data.sequence_start.anchor
                                        : ev->data.mapping_start.anchor;
        b->stack[b->depth].node = n;
        b->stack[b->depth].anchor = anchor ? xstrdup((const char *)anchor) : NULL;
        b->depth++;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct yaml_frame *f = &b->stack[--b->depth];
        if (f->node->type == YNODE_MAP && yaml__finish_map(b, f->node) == -1) {
            free(f->anchor);
            f->anchor = NULL;
            return -1;
        }
        if (f->anchor != NULL)
            yaml__anchor_add(b, f->anchor, f->node);
        f->anchor = NULL;
        return 0;
    }
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const struct ynode *src = yaml__anchor_find(b, name);
        if (src == NULL) {
            yaml__err(b, (int)m.line + 1, (int)m.column + 1, "unknown alias '*%s'%s", name,
                      " (anchors must be defined, and complete, before use)");
            return -1;
        }
        struct ynode *n = yaml__copy(b, src);
        if (n == NULL)
            return yaml__too_many(b, m);
        /* the copy is reported where the alias is written */
        n->line = (int)m.line + 1;
        n->col = (int)m.column + 1;
        return yaml__attach(b, n);
    }
    default:
        return 0;
    }
}

/* Line and column (1-based) of byte <off> of the text. */
static void yaml__pos_of(const struct yaml_build *b, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < b->textlen; i++) {
        if (b->text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void yaml__parser_err(struct yaml_build *b, const yaml_parser_t *p)
{
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        yaml__pos_of(b, p->problem_offset, &line, &col);
        yaml__err(b, line, col, "%s", p->problem ? p->problem : "cannot read the input");
        return;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        yaml__err(b, 0, 0, "out of memory");
        return;
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context != NULL)
        yaml__err(b, line, col, "%s %s (started at line %d)", p->problem ? p->problem : "error",
                  p->context, (int)p->context_mark.line + 1);
    else
        yaml__err(b, line, col, "%s", p->problem ? p->problem : "syntax error");
}

struct ynode *yaml_load_string(const char *text, size_t len, const char *name, char *err,
                               size_t errlen)
{
    struct yaml_build b;
    memset(&b, 0, sizeof(b));
    b.file = xstrdup(name ? name : "<string>");
    b.err = err;
    b.errlen = errlen;
    b.text = text;
    b.textlen = len;
    b.graveyard = xcalloc(1, sizeof(*b.graveyard));
    b.graveyard->type = YNODE_SEQ;
    if (err && errlen)
        err[0] = '\0';

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        yaml__err(&b, 0, 0, "out of memory");
        free((char *)b.file);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            yaml__parser_err(&b, &parser);
            rc = -1;
            break;
        }
        bool end = ev.type == YAML_STREAM_END_EVENT;
        rc = yaml__event(&b, &ev);
        yaml_event_delete(&ev);
        if (rc == -1 || end)
            break;
    }
    yaml_parser_delete(&parser);

    for (size_t i = 0; i < b.depth; i++)
        free(b.stack[i].anchor);
    for (size_t i = 0; i < b.nanchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    yaml__free_node(b.graveyard);
    if (rc == -1) {
        /* partial tree: everything hangs off the root (attach happens before push) */
        if (b.root != NULL)
            yaml__free_node(b.root);
        free((char *)b.file);
        return NULL;
    }
    if (b.root == NULL) { /* empty file, or only comments */
        yaml_mark_t m = {0, 0, 0};
        b.root = yaml__new(&b, YNODE_MAP, m);
    } else if (b.root->type == YNODE_SCALAR && !b.root->quoted && b.root->len == 0) {
        /* "---" alone parses as an empty plain scalar: also an empty document */
        b.root->type = YNODE_MAP;
        free(b.root->str);
        b.root->str = NULL;
    }
    return b.root;
}

struct ynode *yaml_load_file(const char *path, char *err, size_t errlen)
{
    bool is_stdin = strcmp(path, "-") == 0; /* `apigate check -c -` reads a pipe */
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (is_stdin)
        path = "<stdin>";
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 65536;
            data = xrealloc(data, cap);
        }
        size_t r = fread(data + len, 1, cap - len, f);
        len += r;
        if (len > YAML_MAX_FILE) {
            snprintf(err, errlen, "%s: file larger than %u MB", path, YAML_MAX_FILE >> 20);
            free(data);
            if (!is_stdin)
                fclose(f);
            return NULL;
        }
        if (r == 0)
            break;
    }
    bool failed = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (failed) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        free(data);
        return NULL;
    }
    struct ynode *root = yaml_load_string(data, len, path, err, errlen);
    free(data);
    return root;
}

const struct ynode *ynode_get(const struct ynode *map, const char *key)
{
    if (map == NULL || map->type != YNODE_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct ynode *k = map->items[i];
        if (k->len == klen && memcmp(k->str, key, klen) == 0)
            return map->items[i + 1];
    }
    return NULL;
}

size_t ynode_size(const struct ynode *n)
{
    if (n == NULL)
        return 0;
    if (n->type == YNODE_MAP)
        return n->n / 2;
    if (n->type == YNODE_SEQ)
        return n->n;
    return 0;
}

const struct ynode *ynode_key(const struct ynode *map, size_t i)
{
    if (map == NULL || map->type != YNODE_MAP || i >= map->n / 2)
        return NULL;
    return map->items[2 * i];
}

const struct ynode *ynode_value(const struct ynode *map, size_t i)
{
    if (map == NULL || map->type != YNODE_MAP || i >= map->n / 2)
        return NULL;
    return map->items[2 * i + 1];
}

const struct ynode *ynode_item(const struct ynode *seq, size_t i)
{
    if (seq == NULL || seq->type != YNODE_SEQ || i >= seq->n)
        return NULL;
    return seq->items[i];
}

const char *ynode_type_name(const struct ynode *n)
{
    if (n == NULL)
        return "nothing";
    switch (n->type) {
    case YNODE_SCALAR:
        return "scalar";
    case YNODE_SEQ:
        return "sequence";
    case YNODE_MAP:
        return "map";
    }
    return "?";
}
