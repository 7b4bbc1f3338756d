/* YAML loaded into a small node tree in which every node keeps its file, line and column, so any
 * later validation error can say "file:line:col: ...". The only file that includes <yaml.h> is
 * yaml.c. Anchors/aliases are resolved by copying; tags are ignored. */
#ifndef AG_CONFIG_YAML_H
#define AG_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>

enum ynode_type { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP };

struct ynode {
    enum ynode_type type;
    const char *file; /* shared by every node of one document; owned by the root */
    int line;         /* 1-based */
    int col;          /* 1-based */
    char *str;        /* YNODE_SCALAR: NUL-terminated value */
    size_t len;       /* YNODE_SCALAR: value length */
    bool quoted;      /* YNODE_SCALAR: was quoted (so "null"/"true" stay strings) */
    struct ynode **items; /* YNODE_SEQ: n items; YNODE_MAP: n/2 pairs, key at 2i, value at 2i+1 */
    size_t n;
};

/* Loads <path> ("-": standard input, named "<stdin>" in messages). Returns the root, or NULL with "file:line:col: message" in <err>. An empty file
 * gives an empty map. */
struct ynode *yaml_load_file(const char *path, char *err, size_t errlen);
/* Loads <text>; <name> is used as the file name in positions and errors. */
struct ynode *yaml_load_string(const char *text, size_t len, const char *name, char *err,
                               size_t errlen);
/* Frees a tree returned by yaml_load_*(). (Not "yaml_free": libyaml exports a yaml_free(void *)
 * of its own, and ours would replace it inside libyaml at link time.) */
void yaml_tree_free(struct ynode *root);

/* Map lookup: the value node for <key>, or NULL (also NULL when <map> is not a map). */
const struct ynode *ynode_get(const struct ynode *map, const char *key);
/* Number of pairs of a map, or items of a sequence. */
size_t ynode_size(const struct ynode *n);
/* Key and value of pair <i> of a map. */
const struct ynode *ynode_key(const struct ynode *map, size_t i);
const struct ynode *ynode_value(const struct ynode *map, size_t i);
/* Item <i> of a sequence. */
const struct ynode *ynode_item(const struct ynode *seq, size_t i);
/* "map", "sequence", "scalar" for messages. */
const char *ynode_type_name(const struct ynode *n);

#endif
