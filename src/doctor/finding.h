/* Findings of `apigate doctor`: what a probe or a rule concluded, with the evidence it saw, the
 * fix it recommends and the doc section that explains it. A list is filled by one thread (each
 * probe owns its own list; doctor.c merges them after the join), sorted, then printed as text or
 * JSON. No I/O except the report functions. */
#ifndef AG_DOCTOR_FINDING_H
#define AG_DOCTOR_FINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/buf.h"

enum finding_sev { FINDING_OK = 0, FINDING_INFO, FINDING_WARNING, FINDING_CRITICAL };

struct finding {
    char component[16]; /* "postgres", "pgbouncer", "redis", "gateway", "host", "target", "plan" */
    char id[48];        /* stable, also the anchor in docs/doctor.md: "pg-connections" */
    enum finding_sev sev;
    char *title;    /* one line for people */
    char *evidence; /* the numbers, may span lines */
    char *source;   /* where the numbers came from: a query, a /proc file, a URL */
    char *fix;      /* concrete: a config line, a statement, a setting with its value */
    size_t seq;     /* insertion order, keeps the sort stable */
};

struct finding_list {
    struct finding *v;
    size_t n;
    size_t cap;
};

void finding_list_init(struct finding_list *l);
void finding_list_deinit(struct finding_list *l);

/* Appends a finding with a printf-formatted title. The returned pointer stays valid until the next
 * add (the array may move): fill evidence/source/fix right away. */
struct finding *finding_add(struct finding_list *l, const char *component, const char *id,
                            enum finding_sev sev, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Appends one line to the evidence / sets the source / appends one line to the fix. */
void finding_evidence(struct finding *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void finding_source(struct finding *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void finding_fix(struct finding *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Moves every finding of <src> to the end of <dst>; <src> is left empty. */
void finding_list_move(struct finding_list *dst, struct finding_list *src);
/* First finding with <id>, or NULL (tests and cross-component rules use it). */
const struct finding *finding_find(const struct finding_list *l, const char *id);
/* Worst severity in the list, FINDING_OK when empty. */
enum finding_sev finding_list_worst(const struct finding_list *l);
/* Number of findings at <sev>. */
size_t finding_list_count(const struct finding_list *l, enum finding_sev sev);

/* Groups by component, components ordered by their worst finding (worst first, then name), and
 * inside a component worst first, then in the order they were added. */
void finding_list_sort(struct finding_list *l);

/* "ok", "info", "warning", "critical"; parse returns 0 or -1. */
const char *finding_sev_name(enum finding_sev s);
int finding_sev_parse(const char *s, enum finding_sev *out);

/* The report for people: components as headings, one block per finding. <color> adds ANSI colors
 * to severities. */
void finding_report_text(const struct finding_list *l, FILE *out, bool color);
/* The report as one JSON document (shape documented in docs/doctor.md#json) appended to <out>. */
void finding_report_json(const struct finding_list *l, struct buf *out);

#endif
