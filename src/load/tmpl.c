/* Request templates: "{{rand 1 1000}}", "{{seq}}", "{{uuid}}", "{{pick a b c}}", "{{env NAME}}"
 * and "{{token}}" (a variable of the VU, filled by a flow step's extract:) inside paths, header
 * values and bodies. Compiled once into literal runs and calls so rendering a
 * request is a few appends; {{env}} is resolved at compile time (the environment does not change
 * during a run), so a template with only env calls is static and gets a prebuilt request. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

#define TMPL_MAX_ARGS 64

uint64_t tmpl_rand_next(uint64_t *state)
{
    /* xorshift64* (Vigna): fast, 2^64-1 period, good enough for picking paths and think times. */
    uint64_t x = *state;
    if (x == 0)
        x = 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static struct tmpl_seg *tmpl__push(struct tmpl *t, enum tmpl_kind kind)
{
    t->segs = xrealloc(t->segs, (t->n + 1) * sizeof(*t->segs));
    struct tmpl_seg *s = &t->segs[t->n++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    return s;
}

/* Appends literal bytes, merging with a preceding literal so rendering stays one append per run. */
static void tmpl__lit(struct tmpl *t, const char *p, size_t n)
{
    if (n == 0)
        return;
    struct tmpl_seg *s = t->n > 0 && t->segs[t->n - 1].kind == TMPL_LIT ? &t->segs[t->n - 1]
                                                                        : tmpl__push(t, TMPL_LIT);
    s->lit = xrealloc(s->lit, s->len + n + 1);
    memcpy(s->lit + s->len, p, n);
    s->len += n;
    s->lit[s->len] = '\0';
}

static int tmpl__int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

/* Compiles one call: <inner> is the text between the braces, already copied and NUL-terminated.
 * Splits it into whitespace-separated words in place. */
static int tmpl__call(struct tmpl *t, char *inner, char *const *vars, size_t nvars, char *err,
                      size_t errlen)
{
    char *argv[TMPL_MAX_ARGS];
    size_t argc = 0;
    for (char *p = strtok(inner, " \t"); p; p = strtok(NULL, " \t")) {
        if (argc == TMPL_MAX_ARGS) {
            snprintf(err, errlen, "too many arguments (at most %d)", TMPL_MAX_ARGS - 1);
            return -1;
        }
        argv[argc++] = p;
    }
    if (argc == 0) {
        snprintf(err, errlen, "empty template '{{}}'");
        return -1;
    }
    const char *fn = argv[0];
    for (size_t i = 0; i < nvars && argc == 1; i++) {
        if (strcmp(fn, vars[i]) == 0) { /* a variable of the VU, filled by extract: */
            tmpl__push(t, TMPL_VAR)->lo = (int64_t)i;
            t->dynamic = true;
            return 0;
        }
    }
    if (strcmp(fn, "rand") == 0) {
        struct tmpl_seg tmp = {0};
        if (argc != 3 || tmpl__int(argv[1], &tmp.lo) || tmpl__int(argv[2], &tmp.hi) ||
            tmp.lo > tmp.hi) {
            snprintf(err, errlen,
                     "rand takes two integers MIN MAX with MIN <= MAX: {{rand 1 1000}}");
            return -1;
        }
        struct tmpl_seg *s = tmpl__push(t, TMPL_RAND);
        s->lo = tmp.lo;
        s->hi = tmp.hi;
        t->dynamic = true;
    } else if (strcmp(fn, "seq") == 0 || strcmp(fn, "uuid") == 0) {
        if (argc != 1) {
            snprintf(err, errlen, "%s takes no argument", fn);
            return -1;
        }
        tmpl__push(t, fn[0] == 's' ? TMPL_SEQ : TMPL_UUID);
        t->dynamic = true;
    } else if (strcmp(fn, "pick") == 0) {
        if (argc < 2) {
            snprintf(err, errlen, "pick needs at least one choice: {{pick a b c}}");
            return -1;
        }
        struct tmpl_seg *s = tmpl__push(t, TMPL_PICK);
        s->nchoices = argc - 1;
        s->choices = xcalloc(s->nchoices, sizeof(char *));
        for (size_t i = 1; i < argc; i++)
            s->choices[i - 1] = xstrdup(argv[i]);
        t->dynamic = true;
    } else if (strcmp(fn, "env") == 0) {
        if (argc != 2) {
            snprintf(err, errlen, "env takes one variable name: {{env NAME}}");
            return -1;
        }
        const char *v = getenv(argv[1]);
        if (v == NULL) {
            snprintf(err, errlen, "environment variable %s is not set", argv[1]);
            return -1;
        }
        tmpl__lit(t, v, strlen(v));
    } else {
        snprintf(err, errlen,
                 "unknown template function '%s'; known: rand, seq, uuid, pick, env%s", fn,
                 nvars ? ", or a variable that an extract: fills" : "");
        return -1;
    }
    return 0;
}

int tmpl_compile(struct tmpl *t, const char *src, char *err, size_t errlen, size_t *err_off)
{
    return tmpl_compile_vars(t, src, NULL, 0, err, errlen, err_off);
}

int tmpl_compile_vars(struct tmpl *t, const char *src, char *const *vars, size_t nvars, char *err,
                      size_t errlen, size_t *err_off)
{
    memset(t, 0, sizeof(*t));
    const char *p = src;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (open == NULL) {
            tmpl__lit(t, p, strlen(p));
            return 0;
        }
        tmpl__lit(t, p, (size_t)(open - p));
        const char *close = strstr(open + 2, "}}");
        if (close == NULL) {
            snprintf(err, errlen, "'{{' without a closing '}}'");
            *err_off = (size_t)(open - src);
            goto fail;
        }
        char *inner = xstrndup(open + 2, (size_t)(close - open - 2));
        int rc = tmpl__call(t, inner, vars, nvars, err, errlen);
        free(inner);
        if (rc == -1) {
            *err_off = (size_t)(open - src);
            goto fail;
        }
        p = close + 2;
    }
fail:
    tmpl_free(t);
    return -1;
}

bool tmpl_has_line_break(const struct tmpl *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct tmpl_seg *s = &t->segs[i];
        if (s->kind == TMPL_LIT && strpbrk(s->lit, "\r\n"))
            return true;
        for (size_t c = 0; c < s->nchoices; c++)
            if (strpbrk(s->choices[c], "\r\n"))
                return true;
    }
    return false;
}

void tmpl_free(struct tmpl *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->segs[i].lit);
        for (size_t j = 0; j < t->segs[i].nchoices; j++)
            free(t->segs[i].choices[j]);
        free(t->segs[i].choices);
    }
    free(t->segs);
    t->segs = NULL;
    t->n = 0;
    t->dynamic = false;
}

/* Uniform in [0, n) without modulo bias worth caring about for n far below 2^64. */
static uint64_t tmpl__below(uint64_t *rng, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)tmpl_rand_next(rng) * n) >> 64);
}

void tmpl_render(const struct tmpl *t, const struct tmpl_ctx *ctx, struct buf *out)
{
    char tmp[48];
    for (size_t i = 0; i < t->n; i++) {
        const struct tmpl_seg *s = &t->segs[i];
        switch (s->kind) {
        case TMPL_LIT:
            buf_append(out, s->lit, s->len);
            break;
        case TMPL_RAND: {
            uint64_t span = (uint64_t)(s->hi - s->lo) + 1; /* 0 when the range is all of int64 */
            uint64_t r = span ? tmpl__below(ctx->rng, span) : tmpl_rand_next(ctx->rng);
            int n = snprintf(tmp, sizeof(tmp), "%" PRId64, (int64_t)((uint64_t)s->lo + r));
            buf_append(out, tmp, (size_t)n);
            break;
        }
        case TMPL_SEQ: {
            uint64_t v = atomic_fetch_add_explicit(ctx->seq, 1, memory_order_relaxed) + 1;
            int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
            buf_append(out, tmp, (size_t)n);
            break;
        }
        case TMPL_UUID: {
            /* Version 4 (random) UUID, RFC 9562 §5.4. */
            uint64_t hi = tmpl_rand_next(ctx->rng), lo = tmpl_rand_next(ctx->rng);
            hi = (hi & ~0xF000ull) | 0x4000ull;
            lo = (lo & ~(3ull << 62)) | (2ull << 62);
            int n =
                snprintf(tmp, sizeof(tmp), "%08x-%04x-%04x-%04x-%012" PRIx64, (unsigned)(hi >> 32),
                         (unsigned)(hi >> 16) & 0xFFFF, (unsigned)hi & 0xFFFF, (unsigned)(lo >> 48),
                         (uint64_t)(lo & 0xFFFFFFFFFFFFull));
            buf_append(out, tmp, (size_t)n);
            break;
        }
        case TMPL_PICK:
            buf_append_str(out, s->choices[tmpl__below(ctx->rng, s->nchoices)]);
            break;
        case TMPL_VAR:
            if (ctx->vars)
                buf_append(out, buf_head(&ctx->vars[s->lo]), buf_pending(&ctx->vars[s->lo]));
            break;
        }
    }
}
