/* Reads PostgreSQL's EXPLAIN (VERBOSE, FORMAT JSON) output: the sequential scans of a plan with
 * their filter and the join conditions above them, and the estimated (and, with ANALYZE, actual)
 * rows. Pure: text in, struct out, so unit tests feed it saved plans. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "doctor/internal.h"

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Appends <cond> to <dst> (" AND " between), keeping it a C string within <n>. */
static void cat_cond(char *dst, size_t n, const char *cond)
{
    if (cond == NULL || cond[0] == '\0')
        return;
    size_t used = strlen(dst);
    if (used + 1 >= n)
        return;
    snprintf(dst + used, n - used, "%s%s", used ? " AND " : "", cond);
}

static void walk(const cJSON *node, const char *joins, struct explain_result *r)
{
    if (!cJSON_IsObject(node))
        return;
    const char *type = jstr(node, "Node Type");
    /* Conditions of this node that tie it to its children's rows. */
    char conds[512];
    snprintf(conds, sizeof(conds), "%s", joins);
    cat_cond(conds, sizeof(conds), jstr(node, "Hash Cond"));
    cat_cond(conds, sizeof(conds), jstr(node, "Merge Cond"));
    cat_cond(conds, sizeof(conds), jstr(node, "Join Filter"));
    if (type && strcmp(type, "Seq Scan") == 0 && r->n_scans < EXPLAIN_MAX_SCANS) {
        struct explain_scan *s = &r->scans[r->n_scans++];
        snprintf(s->schema, sizeof(s->schema), "%s",
                 jstr(node, "Schema") ? jstr(node, "Schema") : "");
        snprintf(s->relation, sizeof(s->relation), "%s",
                 jstr(node, "Relation Name") ? jstr(node, "Relation Name") : "");
        snprintf(s->alias, sizeof(s->alias), "%s",
                 jstr(node, "Alias") ? jstr(node, "Alias") : s->relation);
        snprintf(s->filter, sizeof(s->filter), "%s",
                 jstr(node, "Filter") ? jstr(node, "Filter") : "");
        snprintf(s->join, sizeof(s->join), "%s", joins);
        s->est_rows = jnum(node, "Plan Rows");
        s->actual_rows = jnum(node, "Actual Rows");
        double loops = jnum(node, "Actual Loops");
        if (s->actual_rows >= 0 && loops > 1)
            s->actual_rows *= loops;
    }
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(node, "Plans");
    const cJSON *k;
    cJSON_ArrayForEach(k, kids)
    {
        walk(k, conds, r);
    }
}

int explain_parse(const char *json, struct explain_result *r)
{
    memset(r, 0, sizeof(*r));
    r->root_actual = -1;
    cJSON *doc = cJSON_Parse(json);
    const cJSON *top = cJSON_IsArray(doc) ? cJSON_GetArrayItem(doc, 0) : doc;
    const cJSON *plan = cJSON_IsObject(top) ? cJSON_GetObjectItemCaseSensitive(top, "Plan") : NULL;
    if (!cJSON_IsObject(plan)) {
        cJSON_Delete(doc);
        return -1;
    }
    snprintf(r->root_type, sizeof(r->root_type), "%s",
             jstr(plan, "Node Type") ? jstr(plan, "Node Type") : "?");
    r->root_est = jnum(plan, "Plan Rows");
    r->root_actual = jnum(plan, "Actual Rows");
    walk(plan, "", r);
    cJSON_Delete(doc);
    return 0;
}

static void rows(char *out, size_t n, double est, double actual)
{
    if (actual >= 0)
        snprintf(out, n, "estimated %.0f / actual %.0f rows", est, actual);
    else
        snprintf(out, n, "estimated %.0f rows", est);
}

void explain_summary(const struct explain_result *r, char *out, size_t outlen)
{
    char rw[96], one[512];
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < r->n_scans; i++) {
        const struct explain_scan *s = &r->scans[i];
        bool aliased = strcmp(s->alias, s->relation) != 0;
        rows(rw, sizeof(rw), s->est_rows, s->actual_rows);
        snprintf(one, sizeof(one), "%sSeq Scan on %s%s%s%s%s%s%s (%s)", i ? "; " : "", s->schema,
                 s->schema[0] ? "." : "", s->relation, aliased ? " " : "", aliased ? s->alias : "",
                 s->filter[0] ? ", filter " : "", s->filter, rw);
        used += (size_t)snprintf(out + used, outlen - used, "%s", one);
        if (used >= outlen)
            return;
    }
    rows(rw, sizeof(rw), r->root_est, r->root_actual);
    snprintf(out + used, outlen - used, "%s%s at the top, %s",
             r->n_scans ? "; " : "no sequential scan; ", r->root_type, rw);
}
