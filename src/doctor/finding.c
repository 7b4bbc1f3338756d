/* Finding list: add, merge, sort, and the two report forms (text for people, JSON for jq and CI).
 * Rules and probes decide severities; this file only stores and prints them. */
#include "doctor/finding.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/xmalloc.h"

static const char *const sev_names[] = {"ok", "info", "warning", "critical"};

void finding_list_init(struct finding_list *l)
{
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
}

static void finding_free_fields(struct finding *f)
{
    free(f->title);
    free(f->evidence);
    free(f->source);
    free(f->fix);
    f->title = f->evidence = f->source = f->fix = NULL;
}

void finding_list_deinit(struct finding_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        finding_free_fields(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* printf into a new string; vasprintf fails only on ENOMEM. */
static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort(); // only ENOMEM: same policy as xmalloc
    return s;
}

/* Appends <line> to *<field> with a newline in between. */
static void append_line(char **field, char *line)
{
    if (*field == NULL) {
        *field = line;
        return;
    }
    size_t a = strlen(*field), b = strlen(line);
    *field = xrealloc(*field, a + 1 + b + 1);
    (*field)[a] = '\n';
    memcpy(*field + a + 1, line, b + 1);
    free(line);
}

struct finding *finding_add(struct finding_list *l, const char *component, const char *id,
                            enum finding_sev sev, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    struct finding *f = &l->v[l->n];
    memset(f, 0, sizeof(*f));
    snprintf(f->component, sizeof(f->component), "%s", component);
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->sev = sev;
    f->seq = l->n;
    va_list ap;
    va_start(ap, fmt);
    f->title = vformat(fmt, ap);
    va_end(ap);
    l->n++;
    return f;
}

void finding_evidence(struct finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_line(&f->evidence, vformat(fmt, ap));
    va_end(ap);
}

void finding_source(struct finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(f->source);
    f->source = vformat(fmt, ap);
    va_end(ap);
}

void finding_fix(struct finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_line(&f->fix, vformat(fmt, ap));
    va_end(ap);
}

/* The findings' strings change owner, not copies: <src> only loses its array. */
void finding_list_move(struct finding_list *dst, struct finding_list *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            dst->cap = dst->cap ? dst->cap * 2 : 16;
            dst->v = xrealloc(dst->v, dst->cap * sizeof(*dst->v));
        }
        dst->v[dst->n] = src->v[i];
        dst->v[dst->n].seq = dst->n;
        dst->n++;
    }
    free(src->v);
    finding_list_init(src);
}

const struct finding *finding_find(const struct finding_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0)
            return &l->v[i];
    return NULL;
}

enum finding_sev finding_list_worst(const struct finding_list *l)
{
    enum finding_sev w = FINDING_OK;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].sev > w)
            w = l->v[i].sev;
    return w;
}

size_t finding_list_count(const struct finding_list *l, enum finding_sev sev)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++)
        c += l->v[i].sev == sev;
    return c;
}

/* qsort has no context argument: the worst severity of each component is computed first and
 * stored next to the finding it orders. */
struct sort_item {
    struct finding f;
    enum finding_sev comp_worst;
};

static int sort_cmp(const void *pa, const void *pb)
{
    const struct sort_item *a = pa, *b = pb;
    if (a->comp_worst != b->comp_worst)
        return a->comp_worst > b->comp_worst ? -1 : 1;
    int c = strcmp(a->f.component, b->f.component);
    if (c != 0)
        return c;
    if (a->f.sev != b->f.sev)
        return a->f.sev > b->f.sev ? -1 : 1;
    return a->f.seq < b->f.seq ? -1 : a->f.seq > b->f.seq;
}

void finding_list_sort(struct finding_list *l)
{
    if (l->n < 2)
        return;
    struct sort_item *items = xmalloc(l->n * sizeof(*items));
    for (size_t i = 0; i < l->n; i++) {
        items[i].f = l->v[i];
        items[i].comp_worst = FINDING_OK;
        for (size_t j = 0; j < l->n; j++)
            if (strcmp(l->v[j].component, l->v[i].component) == 0 &&
                l->v[j].sev > items[i].comp_worst)
                items[i].comp_worst = l->v[j].sev;
    }
    qsort(items, l->n, sizeof(*items), sort_cmp);
    for (size_t i = 0; i < l->n; i++) {
        l->v[i] = items[i].f;
        l->v[i].seq = i;
    }
    free(items);
}

const char *finding_sev_name(enum finding_sev s)
{
    return (unsigned)s < 4 ? sev_names[s] : "?";
}

int finding_sev_parse(const char *s, enum finding_sev *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, sev_names[i]) == 0) {
            *out = (enum finding_sev)i;
            return 0;
        }
    }
    return -1;
}

/* Prints <text> with every line indented by <indent>. */
static void print_indented(FILE *out, const char *label, const char *text)
{
    const char *p = text;
    bool first = true;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "    %-9s %.*s\n", first ? label : "", (int)n, p);
        first = false;
        p += n + (nl != NULL);
    }
}

/* Components as "== name ==" headings, then per finding: severity, title, [id], and the
 * evidence / source / fix blocks indented under it; the doc link only where there is something
 * to act on (warning and above). */
void finding_report_text(const struct finding_list *l, FILE *out, bool color)
{
    static const char *const colors[] = {"\033[32m", "\033[36m", "\033[33m", "\033[31;1m"};
    const char *comp = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const struct finding *f = &l->v[i];
        if (comp == NULL || strcmp(comp, f->component) != 0) {
            comp = f->component;
            fprintf(out, "%s== %s ==\n", i ? "\n" : "", comp);
        }
        if (color)
            fprintf(out, "%s%-8s\033[0m %s  [%s]\n", colors[f->sev], finding_sev_name(f->sev),
                    f->title, f->id);
        else
            fprintf(out, "%-8s %s  [%s]\n", finding_sev_name(f->sev), f->title, f->id);
        if (f->evidence)
            print_indented(out, "evidence:", f->evidence);
        if (f->source)
            print_indented(out, "source:", f->source);
        if (f->fix)
            print_indented(out, "fix:", f->fix);
        if (f->sev >= FINDING_WARNING)
            fprintf(out, "    %-9s docs/doctor.md#%s\n", "doc:", f->id);
    }
    fprintf(out, "\n%zu critical, %zu warning, %zu info, %zu ok\n",
            finding_list_count(l, FINDING_CRITICAL), finding_list_count(l, FINDING_WARNING),
            finding_list_count(l, FINDING_INFO), finding_list_count(l, FINDING_OK));
}

/* Built with cJSON rather than by hand: evidence and fixes carry quotes, newlines and whatever a
 * server put in a query text, and cJSON escapes all of it. */
void finding_report_json(const struct finding_list *l, struct buf *out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "worst", finding_sev_name(finding_list_worst(l)));
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    for (int s = FINDING_CRITICAL; s >= FINDING_OK; s--)
        cJSON_AddNumberToObject(sum, sev_names[s],
                                (double)finding_list_count(l, (enum finding_sev)s));
    /* The components in report order with their worst severity: a summary per box of the stack. */
    cJSON *comps = cJSON_AddArrayToObject(root, "components");
    for (size_t i = 0; i < l->n; i++) {
        if (i > 0 && strcmp(l->v[i - 1].component, l->v[i].component) == 0)
            continue;
        enum finding_sev worst = FINDING_OK;
        int count = 0;
        for (size_t j = 0; j < l->n; j++) {
            if (strcmp(l->v[j].component, l->v[i].component) != 0)
                continue;
            count++;
            if (l->v[j].sev > worst)
                worst = l->v[j].sev;
        }
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "component", l->v[i].component);
        cJSON_AddStringToObject(c, "worst", finding_sev_name(worst));
        cJSON_AddNumberToObject(c, "findings", count);
        cJSON_AddItemToArray(comps, c);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "findings");
    for (size_t i = 0; i < l->n; i++) {
        const struct finding *f = &l->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "component", f->component);
        cJSON_AddStringToObject(o, "id", f->id);
        cJSON_AddStringToObject(o, "severity", finding_sev_name(f->sev));
        cJSON_AddStringToObject(o, "title", f->title);
        if (f->evidence)
            cJSON_AddStringToObject(o, "evidence", f->evidence);
        if (f->source)
            cJSON_AddStringToObject(o, "source", f->source);
        if (f->fix)
            cJSON_AddStringToObject(o, "fix", f->fix);
        char doc[96];
        snprintf(doc, sizeof(doc), "docs/doctor.md#%s", f->id);
        cJSON_AddStringToObject(o, "doc", doc);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(root);
    buf_append_str(out, s);
    buf_append_str(out, "\n");
    cJSON_free(s);
    cJSON_Delete(root);
}
