/* Typed config sections from descriptor tables: each entry names a key, its type, where it goes in
 * the C struct (offsetof), its default, its bounds and a one-line doc. The same tables fill the
 * structs, validate them with "file:line:col: key: what is wrong; what is allowed", and print the
 * reference (`--help-config`, docs/). All errors of one file are collected, then reported at once. */
#ifndef AG_CONFIG_CFG_H
#define AG_CONFIG_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/yaml.h"

enum cfg_type {
    CFG_BOOL,     /* bool */
    CFG_INT,      /* int64_t, bounds min..max */
    CFG_DURATION, /* uint64_t milliseconds, bounds as durations ("1ms".."1h") */
    CFG_DURATION_US, /* uint64_t microseconds, for the few keys finer than a millisecond */
    CFG_SIZE,     /* uint64_t bytes */
    CFG_PERCENT,  /* double fraction 0..1 */
    CFG_STRING,   /* char * (malloc'd; freed by cfg_free_section) */
    CFG_ENUM,     /* int: index of the value in the '|'-separated list in .choices */
    CFG_STRLIST,  /* struct cfg_strlist */
    CFG_SECTION,  /* nested map described by .sub (same struct, fields at their own offsets) */
};

struct cfg_strlist {
    char **v;
    size_t n;
};

struct cfg_desc {
    const char *key;
    enum cfg_type type;
    size_t offset;             /* offsetof(struct …, field) */
    const char *def;           /* default as written in YAML (NULL: no default / required) */
    const char *min;           /* bound as written ("1ms", "0", "1KB"), NULL for none */
    const char *max;
    const char *doc;           /* one line for the reference */
    const char *choices;       /* CFG_ENUM: "round_robin|least_request|ewma" */
    const struct cfg_desc *sub;/* CFG_SECTION: nested table, terminated by {NULL} */
    bool required;
};

/* Collected errors of one load. */
struct cfg_errors {
    char **msgs;
    size_t n;
};
/* Adds "file:line:col: message" for <node> (node may be NULL: no position). */
void cfg_error(struct cfg_errors *e, const struct ynode *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_errors_print(const struct cfg_errors *e, FILE *out);
/* Sorts the messages from index <from> on by the line and column of their "file:line:col: "
 * prefix (stable; messages without a position come first), so errors read top to bottom. */
void cfg_errors_sort(struct cfg_errors *e, size_t from);
void cfg_errors_free(struct cfg_errors *e);

/* Fills the struct at <base> from map <node> with table <desc> (terminated by {NULL}): defaults
 * first, then the values present. Unknown keys are errors ("unknown key 'x'; known: a, b, c").
 * <node> may be NULL (all defaults). Returns the number of errors added. */
size_t cfg_apply(const struct cfg_desc *desc, void *base, const struct ynode *node,
                 struct cfg_errors *errs);
/* cfg_apply() for a section that lives inside a larger document:
 * - <where> ("upstreams.api", "routes[2].cache"; NULL or "" for none) prefixes every key path in
 *   the messages: "upstreams.api.balance: 'x' is not allowed; ...";
 * - <manual> (NULL-terminated, or NULL) lists keys the caller parses itself (lists of maps, say):
 *   they are neither applied nor unknown, and are listed among the known keys in messages;
 * - <node> may be NULL or YAML null ("cache:" alone): defaults only, required keys reported at
 *   <node> (or without a position when NULL).
 * Returns the number of errors added. */
size_t cfg_apply_at(const struct cfg_desc *desc, void *base, const struct ynode *node,
                    const char *where, const char *const *manual, struct cfg_errors *errs);
/* Sets only the defaults of <desc> into <base>. */
void cfg_defaults(const struct cfg_desc *desc, void *base);
/* Frees CFG_STRING and CFG_STRLIST fields of the struct at <base>. */
void cfg_free_section(const struct cfg_desc *desc, void *base);
/* Parses one scalar node as <type> into <out> with the bounds of <d>; returns 0 or adds an error
 * and returns -1. Used for fields that a table cannot express (lists of maps). */
int cfg_parse_scalar(const struct cfg_desc *d, const struct ynode *node, void *out,
                     struct cfg_errors *errs);
/* Prints the reference of a table as Markdown rows: key, type, default, bounds, doc; nested
 * sections get <prefix>.key names. */
void cfg_print_reference(const struct cfg_desc *desc, const char *prefix, FILE *out);

#endif
