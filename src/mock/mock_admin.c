/* Admin endpoints of the mock, on the same port under /_mock/: the live profile (read and
 * replace), the counters tests use to prove what the origin really served, and their reset.
 * Answers are JSON and never counted in the stats. */
#include <stdio.h>
#include <string.h>

#include "core/xmalloc.h"
#include "mock/internal.h"

/* Exact path comparison (the query, if any, is ignored). */
static bool mock_admin__is(const struct h1_request *req, const char *path)
{
    return req->path_len == strlen(path) && memcmp(req->path, path, req->path_len) == 0;
}

/* GET /_mock/stats: live gauges (in flight, queue, pool) and the counters of the current profile.
 */
static void mock_admin__stats(struct mock_thread *th, struct buf *out)
{
    struct mock_server *srv = th->srv;
    struct mock_profile *p = mock_server_get_profile(srv);
    long inflight = 0;
    for (size_t i = 0; i < srv->nthreads; i++)
        inflight += atomic_load_explicit(&srv->threads[i].inflight, memory_order_relaxed);
    uint64_t in_use = 0, queued = 0;
    mock_pool_counts(p->pool, &in_use, &queued);
    buf_printf(out,
               "{\"uptime_ms\":%llu,\"threads\":%zu,\"inflight\":%ld,\"queue\":%llu,"
               "\"db_in_use\":%llu,\"db_pool_size\":%llu,\"profile\":",
               (unsigned long long)(loop_now_ms(th->loop) - srv->start_ms), srv->nthreads, inflight,
               (unsigned long long)queued, (unsigned long long)in_use,
               (unsigned long long)p->pool_conf.size);
    buf_append_json_str(out, p->name, strlen(p->name));
    buf_append_str(out, ",");
    mock_stats_json(p, out);
    buf_append_str(out, "}");
    mock_profile_unref(p);
}

/* Routes /_mock/...; returns the status, the JSON body in <out>. Runs on a loop thread: a profile
 * parse is fast enough (milliseconds) not to matter for a test tool. */
int mock_admin_handle(struct mock_thread *th, const struct h1_request *req, const char *body,
                      size_t body_len, struct buf *out)
{
    bool get = req->method_id == H1_M_GET || req->method_id == H1_M_HEAD;
    bool post = req->method_id == H1_M_POST || req->method_id == H1_M_PUT;
    if (mock_admin__is(req, "/_mock/stats")) {
        if (!get)
            goto method;
        mock_admin__stats(th, out);
        return 200;
    }
    if (mock_admin__is(req, "/_mock/reset")) {
        if (!post)
            goto method;
        struct mock_profile *p = mock_server_get_profile(th->srv);
        mock_stats_reset(p->stats);
        mock_profile_unref(p);
        buf_append_str(out, "{\"reset\":true}");
        return 200;
    }
    if (mock_admin__is(req, "/_mock/profile")) {
        if (get) {
            struct mock_profile *p = mock_server_get_profile(th->srv);
            mock_profile_json(p, out);
            mock_profile_unref(p);
            return 200;
        }
        if (!post)
            goto method;
        struct buf err = BUF_INIT;
        struct mock_profile *np =
            mock_profile_parse(body ? body : "", body_len, "profile", th->srv->nthreads, &err);
        if (!np) {
            /* one line per problem, as on the command line */
            if (err.len > 0 && err.data[err.len - 1] == '\n')
                err.len--;
            buf_append(&err, "", 1); /* a C string from here */
            mock_body_error(out, err.data);
            buf_deinit(&err);
            return 400;
        }
        buf_deinit(&err);
        size_t nroutes = np->nroutes;
        mock_server_set_profile(th->srv, np);
        buf_printf(out, "{\"ok\":true,\"routes\":%zu}", nroutes);
        return 200;
    }
    mock_body_error(out, "unknown admin endpoint; use /_mock/stats, /_mock/reset, /_mock/profile");
    return 404;
method:
    mock_body_error(out, "method not allowed here");
    return 405;
}
