/* Per-thread counters of a run: histograms (never stored samples, so memory stays flat however long
 * the run), status and error counts, per-endpoint and per-check tallies, and a small ring of
 * per-second slots that the main thread collects into the time series while the run goes on.
 * A thread writes only its own struct; the main thread reads a second only after the thread has
 * published it (done_sec, release/acquire), and everything else after the thread has joined. */
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "load/internal.h"

const char *const load_err_names[LERR__COUNT] = {
    "connect_refused", "connect_timeout", "connect_error",  "local_limit", "reset",
    "closed",          "request_timeout", "protocol_error", "tls_error",
};

const char *const load_err_text[LERR__COUNT] = {
    "connection refused",
    "connect timed out",
    "connect failed",
    "out of file descriptors or local ports on the generator (raise ulimit -n / port range)",
    "connection reset by peer",
    "server closed the connection before the response ended",
    "request timed out",
    "invalid HTTP response",
    "TLS handshake failed or certificate not trusted",
};

void stats_init(struct thread_stats *t, size_t neps, size_t nchecks, uint64_t start_us)
{
    memset(t, 0, sizeof(*t));
    hist_init(&t->all);
    t->neps = neps;
    t->nchecks = nchecks;
    t->ep = xcalloc(neps ? neps : 1, sizeof(*t->ep));
    for (size_t i = 0; i < neps; i++)
        hist_init(&t->ep[i].h);
    t->check_pass = xcalloc(nchecks ? nchecks : 1, sizeof(uint64_t));
    t->check_fail = xcalloc(nchecks ? nchecks : 1, sizeof(uint64_t));
    t->start_us = start_us;
    size_t nser = neps < STATS_EP_SERIES ? neps : STATS_EP_SERIES;
    for (size_t i = 0; i < STATS_RING; i++) {
        atomic_store(&t->ring[i].sec, -1);
        hist_init(&t->ring[i].h);
        t->ring[i].ep = xcalloc(nser ? nser : 1, sizeof(*t->ring[i].ep));
        for (size_t e = 0; e < nser; e++)
            hist_init(&t->ring[i].ep[e].h);
    }
    t->cur_sec = 0;
    t->next_roll_us = start_us + 1000000u;
    atomic_store(&t->ring[0].sec, 0);
    atomic_store(&t->done_sec, -1);
}

void stats_deinit(struct thread_stats *t)
{
    for (size_t i = 0; i < STATS_RING; i++) {
        free(t->ring[i].ep);
        t->ring[i].ep = NULL;
    }
    free(t->ep);
    free(t->check_pass);
    free(t->check_fail);
    t->ep = NULL;
    t->check_pass = t->check_fail = NULL;
}

/* The slot of the current second. */
static inline struct stats_sec *stats__slot(struct thread_stats *t)
{
    return &t->ring[t->cur_sec % STATS_RING];
}

void stats_roll(struct thread_stats *t, uint64_t now_us)
{
    if (now_us < t->next_roll_us)
        return;
    int64_t sec = now_us > t->start_us ? (int64_t)((now_us - t->start_us) / 1000000u) : 0;
    if (sec <= t->cur_sec)
        return;
    struct stats_sec *s = &t->ring[sec % STATS_RING];
    /* Seconds skipped without any event simply have no slot: the collector sees an empty second. */
    hist_reset(&s->h);
    s->reqs = s->errors = s->bytes_in = s->dropped = 0;
    for (size_t e = 0; e < t->neps && e < STATS_EP_SERIES; e++) {
        hist_reset(&s->ep[e].h);
        s->ep[e].reqs = s->ep[e].errors = 0;
    }
    s->vus = t->cur_vus;
    atomic_store_explicit(&s->sec, sec, memory_order_relaxed);
    t->cur_sec = sec;
    t->next_roll_us = t->start_us + (uint64_t)(sec + 1) * 1000000u;
    atomic_store_explicit(&t->done_sec, sec - 1, memory_order_release);
}

void stats_finish(struct thread_stats *t)
{
    atomic_store_explicit(&t->done_sec, t->cur_sec, memory_order_release);
}

void stats_set_vus(struct thread_stats *t, unsigned vus)
{
    t->cur_vus = vus;
    struct stats_sec *s = stats__slot(t);
    if (vus > s->vus)
        s->vus = vus;
}

/* The endpoint's slot of the current second, NULL past STATS_EP_SERIES. */
static inline struct stats_ep_sec *stats__ep_slot(struct stats_sec *s, size_t ep)
{
    return ep < STATS_EP_SERIES ? &s->ep[ep] : NULL;
}

/* The hot path of every response: four histogram records (run, endpoint, second, endpoint in the
 * second) and counters, no branch on anything but the second boundary and the endpoint cap. */
void stats_record(struct thread_stats *t, size_t ep, int status, uint64_t latency_us,
                  uint64_t now_us, uint64_t bytes_in, bool failed)
{
    stats_roll(t, now_us);
    struct stats_sec *s = stats__slot(t);
    hist_record(&t->all, latency_us);
    hist_record(&t->ep[ep].h, latency_us);
    hist_record(&s->h, latency_us);
    struct stats_ep_sec *es = stats__ep_slot(s, ep);
    if (es != NULL) {
        hist_record(&es->h, latency_us);
        es->reqs++;
        es->errors += failed;
    }
    t->reqs++;
    t->ep[ep].reqs++;
    s->reqs++;
    t->bytes_in += bytes_in;
    s->bytes_in += bytes_in;
    if (status >= 0 && status < 600)
        t->status[status]++;
    if (failed) {
        t->failed++;
        t->ep[ep].failed++;
        s->errors++;
    }
}

void stats_record_error(struct thread_stats *t, size_t ep, enum load_err e, uint64_t now_us)
{
    stats_roll(t, now_us);
    struct stats_sec *s = stats__slot(t);
    t->reqs++;
    t->failed++;
    t->errors[e]++;
    t->ep[ep].reqs++;
    t->ep[ep].failed++;
    s->reqs++;
    s->errors++;
    struct stats_ep_sec *es = stats__ep_slot(s, ep);
    if (es != NULL) {
        es->reqs++;
        es->errors++;
    }
}

void stats_record_dropped(struct thread_stats *t, uint64_t n, uint64_t now_us)
{
    if (n == 0)
        return;
    stats_roll(t, now_us);
    stats__slot(t)->dropped += n;
}
