/* The filter chains of the routes (see filter.h): built once at worker start from the table
 * below, then walked for each request, forwards for the request and backwards for the response
 * and the errors. Knows no filter's internals. */
#include "gateway/filter.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "gateway/gwconf.h"
#include "gateway/gwthread.h"
#include "gateway/req.h"

/* Every filter there is, in request order (see filter.h for why this order). A new filter is a
 * new file and a line here. */
static const struct filter_ops *const filter_table[] = {
    &ratelimit_filter, // first: a refused request costs no cache lookup and no breaker ticket
    &fallback_filter,
    &compress_filter, // negotiates before the cache looks up (its hits ask for variants)
    &cachehook_filter,
    &resil_filter,
};
#define FILTER_TABLE_N (sizeof(filter_table) / sizeof(filter_table[0]))

void filter_init(struct gw_shared *sh)
{
    for (size_t k = 0; k < FILTER_TABLE_N; k++)
        if (filter_table[k]->init != NULL)
            filter_table[k]->init(sh);
    for (size_t i = 0; i < sh->cfg->nroutes; i++) {
        struct filter_chain *ch = &sh->rt[i].chain;
        memset(ch, 0, sizeof(*ch));
        for (size_t k = 0; k < FILTER_TABLE_N; k++) {
            const struct filter_ops *ops = filter_table[k];
            if (ops->attach != NULL && !ops->attach(sh, i))
                continue;
            size_t size = (ops->state_size + 7) & ~(size_t)7;
            if (ch->n == FILTER_MAX || ch->state_size + size > FILTER_STATE_MAX) {
                /* a build-time limit, never a config one: the table above is all there is */
                ag_log(AG_LOG_ERROR, "filter %s: no room on route %zu (FILTER_MAX %d, "
                       "FILTER_STATE_MAX %d)", ops->name, i, FILTER_MAX, FILTER_STATE_MAX);
                abort();
            }
            ch->f[ch->n].ops = ops;
            ch->f[ch->n].off = ch->state_size;
            ch->n++;
            ch->state_size = (uint16_t)(ch->state_size + size);
        }
    }
}

void filter_deinit(struct gw_shared *sh)
{
    for (size_t k = FILTER_TABLE_N; k-- > 0;)
        if (filter_table[k]->deinit != NULL)
            filter_table[k]->deinit(sh);
}

void filter_thread_start(struct gwthread *th)
{
    for (size_t k = 0; k < FILTER_TABLE_N; k++)
        if (filter_table[k]->thread_start != NULL)
            filter_table[k]->thread_start(th);
}

void filter_thread_stop(struct gwthread *th)
{
    for (size_t k = FILTER_TABLE_N; k-- > 0;)
        if (filter_table[k]->thread_stop != NULL)
            filter_table[k]->thread_stop(th);
}

static inline void *filter__st(struct gw_req *r, unsigned i)
{
    return r->fstate + r->chain->f[i].off;
}

unsigned filter_transformer(struct gw_req *r)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++)
        if (ch->f[i].ops->transforms != NULL && ch->f[i].ops->transforms(r, filter__st(r, i)))
            return i + 1;
    return 0;
}

int filter_transform(struct gw_req *r, unsigned which, const char *p, size_t n, bool last,
                     struct buf *out)
{
    unsigned i = which - 1;
    return r->chain->f[i].ops->transform(r, filter__st(r, i), p, n, last, out);
}

unsigned filter_variant(struct gw_req *r, const struct filter_stored *s, struct filter_variant *v)
{
    memset(v, 0, sizeof(*v));
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++)
        if (ch->f[i].ops->variant != NULL) {
            ch->f[i].ops->variant(r, filter__st(r, i), s, v);
            return i + 1;
        }
    return 0;
}

int filter_derive(struct gw_req *r, unsigned which, const struct filter_stored *s,
                  const struct filter_variant *v, const struct filter_stored *prev,
                  struct buf *head, struct buf *body)
{
    unsigned i = which - 1;
    return r->chain->f[i].ops->derive(r, filter__st(r, i), s, v, prev, head, body);
}

bool filter_transformed(struct gw_req *r, unsigned which, unsigned *id, const char **body,
                        size_t *len)
{
    unsigned i = which - 1;
    const struct filter_ops *ops = r->chain->f[i].ops;
    return ops->transformed != NULL && ops->transformed(r, filter__st(r, i), id, body, len);
}

void *filter_state(struct gw_req *r, const struct filter_ops *ops)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++)
        if (ch->f[i].ops == ops)
            return filter__st(r, i);
    return NULL;
}

enum filter_verdict filter_request(struct gw_req *r, unsigned from)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = from; ch != NULL && i < ch->n; i++) {
        const struct filter_ops *ops = ch->f[i].ops;
        if (ops->on_request == NULL)
            continue;
        struct gw_err err = {.status = 503, .code = "unavailable", .msg = "refused",
                             .kind = GW_ERR_LOCAL};
        enum filter_verdict v = ops->on_request(r, filter__st(r, i), &err);
        switch (v) {
        case FILTER_CONTINUE:
            continue;
        case FILTER_WAIT:
            r->fpos = i;
            return FILTER_WAIT;
        case FILTER_ABORT:
            /* the filters before this one may still answer (a stale copy, the fallback) */
            if (filter_error(r, i, &err) != FILTER_RESPOND)
                gw_req_respond_error(r, err.status, err.code, err.msg, err.extra_headers);
            return FILTER_RESPOND;
        case FILTER_RESPOND:
        case FILTER_RETRY: // not a request-time verdict: taken as answered
        default:
            return FILTER_RESPOND;
        }
    }
    return FILTER_CONTINUE;
}

bool filter_upstream_header_skip(struct gw_req *r, const char *name, size_t len)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++)
        if (ch->f[i].ops->upstream_header_skip != NULL &&
            ch->f[i].ops->upstream_header_skip(r, filter__st(r, i), name, len))
            return true;
    return false;
}

bool filter_client_header_skip(struct gw_req *r, const char *name, size_t len)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++)
        if (ch->f[i].ops->client_header_skip != NULL &&
            ch->f[i].ops->client_header_skip(r, filter__st(r, i), name, len))
            return true;
    return false;
}

void filter_upstream_headers(struct gw_req *r, struct buf *head)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++)
        if (ch->f[i].ops->upstream_headers != NULL)
            ch->f[i].ops->upstream_headers(r, filter__st(r, i), head);
}

enum filter_verdict filter_response_head(struct gw_req *r, const struct h1_response *res)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = ch != NULL ? ch->n : 0; i-- > 0;) {
        if (ch->f[i].ops->on_response_head == NULL)
            continue;
        enum filter_verdict v = ch->f[i].ops->on_response_head(r, filter__st(r, i), res);
        if (v != FILTER_CONTINUE)
            return v;
    }
    return FILTER_CONTINUE;
}

void filter_client_headers(struct gw_req *r, struct gw_head *head)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = ch != NULL ? ch->n : 0; i-- > 0;)
        if (ch->f[i].ops->client_headers != NULL)
            ch->f[i].ops->client_headers(r, filter__st(r, i), head);
}

void filter_body(struct gw_req *r, const char *p, size_t n)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = ch != NULL ? ch->n : 0; i-- > 0;)
        if (ch->f[i].ops->on_body != NULL)
            ch->f[i].ops->on_body(r, filter__st(r, i), p, n);
}

void filter_response_done(struct gw_req *r, bool usable)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = ch != NULL ? ch->n : 0; i-- > 0;)
        if (ch->f[i].ops->on_response_done != NULL)
            ch->f[i].ops->on_response_done(r, filter__st(r, i), usable);
}

enum filter_verdict filter_error(struct gw_req *r, unsigned below, const struct gw_err *err)
{
    const struct filter_chain *ch = r->chain;
    if (ch == NULL)
        return FILTER_CONTINUE;
    if (below > ch->n)
        below = ch->n;
    for (unsigned i = below; i-- > 0;) {
        if (ch->f[i].ops->on_error == NULL)
            continue;
        enum filter_verdict v = ch->f[i].ops->on_error(r, filter__st(r, i), err);
        if (v == FILTER_RETRY || v == FILTER_RESPOND)
            return v;
    }
    return FILTER_CONTINUE;
}

void filter_end(struct gw_req *r)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = ch != NULL ? ch->n : 0; i-- > 0;)
        if (ch->f[i].ops->on_end != NULL)
            ch->f[i].ops->on_end(r, filter__st(r, i));
}

const char *filter_cache_status(const struct gw_req *r)
{
    const struct filter_chain *ch = r->chain;
    for (unsigned i = 0; ch != NULL && i < ch->n; i++) {
        if (ch->f[i].ops->cache_status == NULL)
            continue;
        const char *s = ch->f[i].ops->cache_status(r, r->fstate + ch->f[i].off);
        if (s != NULL)
            return s;
    }
    return NULL;
}
