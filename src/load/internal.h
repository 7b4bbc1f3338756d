/* Declarations shared by the files of src/load/ and by its unit tests; no other folder includes it.
 * The pipeline: a scenario (YAML or the quick-mode command line) becomes a struct scenario; the
 * engine (run.c + client.c) runs it on per-thread loops, recording into per-thread stats (stats.c);
 * the stats merge into one struct load_result, which every report reads (text, JSON, HTML), and
 * which compare/merge also rebuild from JSON files. */
#ifndef AG_LOAD_INTERNAL_H
#define AG_LOAD_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/hist.h"
#include "http/url.h"
#include "net/sock.h"
#include "net/transport.h"

struct tls_client;
struct tls_session;

#define LOAD_MAX_THREADS 64
#define LOAD_MAX_VUS 100000
#define LOAD_ERR_LEN 512
#define LOAD_MAX_FAILED 0.01 /* default failed-request rate above which a run exits 1 */

/* ---------------------------------------------------------------- templates (tmpl.c) ---- */

enum tmpl_kind { TMPL_LIT, TMPL_RAND, TMPL_SEQ, TMPL_UUID, TMPL_PICK, TMPL_VAR };

struct tmpl_seg {
    enum tmpl_kind kind;
    char *lit; /* TMPL_LIT: the bytes (env values are resolved into literals) */
    size_t len;
    int64_t lo, hi; /* TMPL_RAND: inclusive bounds; TMPL_VAR: lo is the variable's index */
    char **choices; /* TMPL_PICK */
    size_t nchoices;
};

/* A compiled template: literal runs and function calls. Immutable once compiled, so threads share
 * it; the per-call state (random generator, sequence) lives in struct tmpl_ctx. */
struct tmpl {
    struct tmpl_seg *segs;
    size_t n;
    bool dynamic; /* has a function other than env: must be rendered per request */
};

struct tmpl_ctx {
    uint64_t *rng;         /* xorshift state of the calling VU */
    _Atomic uint64_t *seq; /* shared by all threads: {{seq}} is unique across the run */
    struct buf *scratch;   /* the caller's buffer: the path, a header value, a body rendered */
    const struct buf *vars; /* {{NAME}}: the calling VU's variables (extract:), or NULL */
};

/* Compiles <src>. Returns 0, or -1 with a message in <err> and the byte offset of the problem in
 * *<err_off> (so the caller can turn it into a column). */
int tmpl_compile(struct tmpl *t, const char *src, char *err, size_t errlen, size_t *err_off);
/* The same, where {{NAME}} for one of the <nvars> names in <vars> renders that variable. */
int tmpl_compile_vars(struct tmpl *t, const char *src, char *const *vars, size_t nvars, char *err,
                      size_t errlen, size_t *err_off);
void tmpl_free(struct tmpl *t);
/* True when what <t> renders can hold a line break: in its literal text (which includes the
 * values of {{env}}) or in a {{pick}} choice. A header value must not, or it would end the header
 * and start another one of the value's choosing. */
bool tmpl_has_line_break(const struct tmpl *t);
/* Appends the rendering of <t> to <out>. */
void tmpl_render(const struct tmpl *t, const struct tmpl_ctx *ctx, struct buf *out);
/* xorshift64* step: the generator behind {{rand}}, {{uuid}}, weights and think times. */
uint64_t tmpl_rand_next(uint64_t *state);

/* ------------------------------------------------------------ schedules (sched.c) ---- */

enum sched_kind { SCHED_VUS, SCHED_RATE };

struct sched_stage {
    uint64_t dur_us;
    double target; /* VUs, or iterations per second */
};

/* The shape of a run: a start value, then stages that move linearly to their target (k6's
 * ramping-vus and ramping-arrival-rate). A constant run is one stage whose target is the start. */
struct sched_plan {
    enum sched_kind kind;
    double start;
    struct sched_stage *stages;
    size_t nstages;
    uint64_t total_us;
};

/* Sets total_us from the stages. */
void sched_plan_finish(struct sched_plan *p);
/* The interpolated value (VUs or rate) at <t_us> from the start; 0 after the end. */
double sched_value_at(const struct sched_plan *p, uint64_t t_us);
/* Highest value over the plan (start and every target). */
double sched_peak(const struct sched_plan *p);
/* Open model: iterations due in [0, t_us] (the integral of the rate, not rounded). */
double sched_iterations_by(const struct sched_plan *p, uint64_t t_us);
/* Open model: intended start time (µs from the run's start) of iteration <n> (0-based), that is
 * the time at which the integral reaches n; UINT64_MAX when the plan ends before. */
uint64_t sched_intended_us(const struct sched_plan *p, uint64_t n);
/* Closed model: VUs active at <t_us>, rounded down as k6 does, never above <max>. */
unsigned sched_vus_at(const struct sched_plan *p, uint64_t t_us, unsigned max);

/* Open-model dispatcher of one thread: iterations <first>, <first>+<stride>, … of the plan, with a
 * bounded queue of iterations that found no free connection. Pure arithmetic, time passed in. */
struct sched_open {
    const struct sched_plan *plan;
    uint64_t next_n; /* next global iteration index for this thread */
    uint64_t stride;
    uint64_t next_us; /* its intended time, UINT64_MAX when the plan is over */
    uint64_t *queue;  /* intended times waiting for a connection (ring) */
    size_t qcap, qhead, qlen;
    size_t qlate;        /* queued iterations already counted as late (the oldest ones) */
    uint64_t late;       /* iterations that waited in the queue */
    uint64_t dropped;    /* iterations dropped because the queue was full */
    uint64_t max_lag_us; /* largest send delay behind the intended time */
};

void sched_open_init(struct sched_open *s, const struct sched_plan *p, uint64_t first,
                     uint64_t stride, size_t qcap);
void sched_open_deinit(struct sched_open *s);
/* Moves every iteration due by <now_us> into the queue (dropping, and counting, those that do not
 * fit). Returns how many arrived. */
size_t sched_open_arrivals(struct sched_open *s, uint64_t now_us);
/* Takes the oldest queued iteration for a free connection at <now_us>: returns 1 and its intended
 * time in *<intended>, 0 when none. */
int sched_open_take(struct sched_open *s, uint64_t now_us, uint64_t *intended);
/* Ends a dispatch tick: iterations still queued are late (no free connection when due). */
void sched_open_settle(struct sched_open *s);
/* Counts every queued iteration as dropped, not late (end of the run). */
void sched_open_drop_all(struct sched_open *s);

/* -------------------------------------------------------- scenario (scenario.c) ---- */

enum check_kind { CHECK_STATUS, CHECK_BODY, CHECK_HEADER, CHECK_LATENCY, CHECK_EXTRACT };

struct load_check {
    enum check_kind kind;
    int *statuses; /* CHECK_STATUS: allowed codes */
    size_t nstatuses;
    char *str; /* CHECK_BODY: substring; CHECK_HEADER: header name */
    size_t len;
    uint64_t latency_us; /* CHECK_LATENCY; CHECK_EXTRACT: len is the extract's index */
    char *label;         /* "status in [200, 201]", shown in reports */
    size_t id;           /* index over all checks of the scenario */
};

struct load_header {
    char *name;
    struct tmpl value;
};

/* extract: {token: 'json:$.token'} / 'header:X-Token' / 'regex:"id":(\d+)': a value of the
 * response kept in a variable of the VU for the next steps of its iteration (extract.c). */
enum extract_kind { EXTRACT_JSON, EXTRACT_HEADER, EXTRACT_REGEX };

#define EXTRACT_MAX_VALUE 4096 /* a longer value (or one with a line break) is not extracted */

struct load_extract {
    enum extract_kind kind;
    size_t var;  /* index into scenario.vars */
    char *expr;  /* the JSON path, header name or regex as written */
    void *regex; /* EXTRACT_REGEX: the compiled regex_t */
};

/* A value from a JSON body at a path like $.token, $.data.items[0].id: a string (its escapes
 * decoded), a number, true/false; 0 with the value appended to <out>, -1 when the path does not
 * lead to a scalar. */
int extract_json(const char *body, size_t len, const char *path, struct buf *out);
/* Checks a JSON path's syntax: 0, or -1 with a message. */
int extract_json_path_check(const char *path, char *err, size_t errlen);
/* Compiles <x>'s regex (POSIX extended; the first group is the value, else the whole match):
 * 0, or -1 with a message. */
int extract_regex_compile(struct load_extract *x, char *err, size_t errlen);
/* The first match of <x>'s regex in <body>: 0 with the value appended to <out>, -1 when none. */
int extract_regex(const struct load_extract *x, const char *body, size_t len, struct buf *out);
void extract_free(struct load_extract *x);

/* An iteration: one request, or a flow's steps in order (flows: in a scenario file). Its name is
 * the group shown in the report. */
struct load_flow {
    char *name; /* NULL for a single request */
    size_t first, n; /* its steps: scenario.reqs[first, first + n) */
    uint64_t weight;
};

struct load_req {
    char *name;
    char *group; /* the flow's name, NULL for a request of requests: */
    size_t flow;
    char *method;
    bool is_head;
    struct tmpl path; /* path and query */
    struct load_header *headers;
    size_t nheaders;
    struct tmpl body;
    bool has_body;
    uint64_t weight;
    uint64_t think_min_us, think_max_us;
    struct load_check *checks;
    size_t nchecks;
    struct load_extract *extracts;
    size_t nextracts;
    bool need_body;         /* a body check or extract: keep the response body */
    uint32_t header_checks; /* bit i: check i is a header-present check */
    bool dynamic;           /* templates to render per request */
    struct buf prebuilt;    /* the whole request when not dynamic: one write, no formatting */
};

/* Threshold expression: metric{name:x}: ['p(95)<500', ...] */
enum th_agg { TH_AVG, TH_MIN, TH_MED, TH_MAX, TH_P, TH_RATE, TH_COUNT };
enum th_op { TH_LT, TH_LE, TH_GT, TH_GE, TH_EQ, TH_NE };

struct threshold {
    char *metric; /* http_req_duration, http_req_failed, checks, http_reqs, iterations,
                     dropped_iterations, data_received, data_sent */
    char *tag;    /* request name from {name:x}, or NULL */
    char *expr;   /* as written: "p(95)<500" */
    enum th_agg agg;
    double pct; /* TH_P */
    enum th_op op;
    double value;
    bool abort_on_fail;      /* k6's abortOnFail: end the run as soon as it fails */
    uint64_t delay_abort_us; /* delayAbortEval: not judged before this much of the run */
    /* results */
    bool evaluated, ok;
    double observed;
};

struct scenario {
    char *file; /* NULL for quick mode */
    char *base_url;
    struct url url;
    struct sock_addr addr;
    struct load_req *reqs;
    size_t nreqs;
    struct load_flow *flows; /* every iteration kind (built by scenario_prepare) */
    size_t nflows;
    char **vars; /* names of the variables that extract: fills, {{NAME}} in templates */
    size_t nvars;
    uint64_t total_weight;
    size_t nchecks; /* over all requests */
    struct sched_plan plan;
    unsigned threads;
    unsigned max_vus;     /* closed: VU objects; open: connection limit */
    unsigned pre_vus;     /* open: connections opened at start */
    uint64_t timeout_us;  /* per request, connect included */
    uint64_t graceful_us; /* wait for in-flight requests after the end */
    struct threshold *th;
    size_t nth;
    double max_failed; /* the exit-1 rule: failed rate allowed (max_failed: / --max-failed);
                          < 0: the default, LOAD_MAX_FAILED */
    bool quick;
    /* https targets: one client context and one resumable session shared by every thread */
    bool tls_verify;   /* default on; off with tls: {verify: false} or -k */
    char *tls_ca_file; /* NULL: the system store */
    struct tls_client *tls;
    struct tls_session *tls_sess;
};

/* Loads a scenario file. Returns NULL and prints "file:line:col: key: message" lines to <errf>
 * (every error found). */
struct scenario *scenario_load(const char *path, FILE *errf);
/* Builds the request buffers and resolves the target; 0, or -1 with a message in <err>. */
int scenario_prepare(struct scenario *s, char *err, size_t errlen);
/* True when <s> is an RFC 9110 token: what a method or a header name may contain (so neither can
 * smuggle a space or a line break into the request). Checked for files and command lines alike. */
bool scenario_valid_token(const char *s);
/* True for Content-Length and Transfer-Encoding: the request's framing, which load writes from
 * the body itself; a second one given as a header would make every request malformed. */
bool scenario_header_framing(const char *name);
/* Sets the target of a scenario file (base_url, or --base-url): an http(s) URL whose path, if
 * any, prefixes every request path, so it may carry no query. 0, or -1 with the reason in
 * <err>, <s> unchanged. */
int scenario_set_base_url(struct scenario *s, const char *url, char *err, size_t errlen);
/* Adds one request to <s> (quick mode and the file loader). Returns it. */
struct load_req *scenario_add_req(struct scenario *s);
void scenario_destroy(struct scenario *s);
/* Renders request <r> into <out> (dynamic requests). */
void scenario_render(const struct scenario *s, const struct load_req *r, const struct tmpl_ctx *ctx,
                     struct buf *out);

/* ------------------------------------------------------------- stats (stats.c) ---- */

enum load_err {
    LERR_CONNECT_REFUSED,
    LERR_CONNECT_TIMEOUT,
    LERR_CONNECT_OTHER,
    LERR_LOCAL, /* out of file descriptors or ephemeral ports: the generator's limit, not the
                   target's */
    LERR_RESET,
    LERR_CLOSED,
    LERR_TIMEOUT,
    LERR_PROTOCOL,
    LERR_TLS, /* handshake failed or certificate not trusted */
    LERR__COUNT
};
extern const char *const load_err_names[LERR__COUNT];
extern const char *const load_err_text[LERR__COUNT];

#define STATS_RING 8 /* seconds kept per thread until the main thread collects them */

/* Endpoints (request definitions) that get a time series of their own in the reports: the first
 * STATS_EP_SERIES of a scenario (each costs a histogram per second slot per thread). */
#define STATS_EP_SERIES 16

/* One endpoint in one second of one thread. */
struct stats_ep_sec {
    struct hist h;
    uint64_t reqs, errors;
};

/* One second of one thread, collected by the main thread for the time series. */
struct stats_sec {
    _Atomic int64_t sec; /* which second this slot holds, -1: none */
    struct hist h;
    uint64_t reqs, errors, bytes_in;
    uint64_t dropped; /* open model: iterations dropped in this second */
    unsigned vus;
    struct stats_ep_sec *ep; /* the first min(neps, STATS_EP_SERIES) endpoints */
};

struct ep_stats {
    struct hist h;
    uint64_t reqs, failed;
};

/* Everything one thread counts: no locks, merged after the threads end. */
struct thread_stats {
    struct hist all;
    uint64_t reqs, failed, iterations, bytes_in, bytes_out, interrupted;
    uint64_t win_reqs, win_iters; /* completed within the planned duration: the rates' numerators */
    uint64_t status[600];
    uint64_t errors[LERR__COUNT];
    char tls_detail[160]; /* why the first TLS failure happened ("certificate verify …") */
    struct ep_stats *ep;  /* per request definition */
    uint64_t *check_pass, *check_fail; /* per check id */
    size_t neps, nchecks;
    uint64_t start_us;
    struct stats_sec ring[STATS_RING];
    int64_t cur_sec;
    uint64_t next_roll_us;    /* start of the next second: below it, stats_roll() is a compare */
    _Atomic int64_t done_sec; /* every second up to this one is complete in the ring */
    unsigned cur_vus;
};

void stats_init(struct thread_stats *t, size_t neps, size_t nchecks, uint64_t start_us);
void stats_deinit(struct thread_stats *t);
/* Advances the ring to the second of <now_us>, publishing the seconds before it. */
void stats_roll(struct thread_stats *t, uint64_t now_us);
/* Publishes every second (the thread is done). */
void stats_finish(struct thread_stats *t);
/* Active VUs (or busy connections) of this thread, for the time series. */
void stats_set_vus(struct thread_stats *t, unsigned vus);
/* A completed response. */
void stats_record(struct thread_stats *t, size_t ep, int status, uint64_t latency_us,
                  uint64_t now_us, uint64_t bytes_in, bool failed);
/* <n> open-model iterations dropped at <now_us> (no free connection). */
void stats_record_dropped(struct thread_stats *t, uint64_t n, uint64_t now_us);
/* A request that got no response. */
void stats_record_error(struct thread_stats *t, size_t ep, enum load_err e, uint64_t now_us);

/* --------------------------------------------------------------- results (result.c) ---- */

/* One endpoint in one second: its own time series (requests/s and p95 per endpoint). */
struct result_ep_sec {
    int64_t t; /* second since the start */
    uint64_t reqs, errors, p95_us;
};

struct result_ep {
    char *name, *method;
    char *group; /* the flow it is a step of, or NULL */
    uint64_t reqs, failed;
    struct hist h;
    struct result_ep_sec *series; /* seconds in order, those with requests; NULL: none kept */
    size_t nseries, series_cap;
};

struct result_check {
    char *label, *request;
    uint64_t pass, fail;
};

struct result_sec {
    int64_t t; /* second since the start */
    uint64_t reqs, errors, bytes_in, dropped;
    uint64_t p50_us, p95_us, p99_us;
    unsigned vus;
    double requested; /* open model: iterations the plan asked for in that second, 0 closed */
    /* the gateway in that second (gwctx.c), when gw: NAN for an unknown value */
    bool gw;
    double gw_hit_ratio, gw_origin, gw_cpu_ms_per_1k;
};

/* The gateway's side of a run (gwctx.c): its cache hit ratio, the requests its origin answered
 * and its CPU per 1k requests, from its admin /stats sampled each second. */
struct result_gw {
    bool present;
    char *admin; /* the /stats URL */
    double requests, hit_ratio, origin, cpu_ms_per_1k; /* NAN: unknown */
};

/* The merged outcome of a run (or of several runs, or read back from JSON): what reports show. */
struct load_result {
    char *target, *mode; /* "closed" | "open" */
    double duration_s;   /* measured, from start to the last response */
    double planned_s;
    /* Rates, as wrk: what completed within the planned duration (or up to a Ctrl-C) divided by
     * that duration, so the graceful stop after the end never dilutes them. rate_s 0: unknown (a
     * report of an older version): rates fall back to everything over duration_s. */
    double rate_s;
    uint64_t rate_reqs, rate_iters;
    unsigned threads, vus_max;
    int64_t started_at; /* wall clock, seconds */
    uint64_t reqs, iterations, failed, bytes_in, bytes_out, checks_pass, checks_fail;
    uint64_t dropped, late, interrupted, max_lag_us;
    struct hist h;
    uint64_t status[600];
    uint64_t errors[LERR__COUNT];
    struct result_ep *eps;
    size_t neps;
    struct result_check *checks;
    size_t nchecks;
    struct result_sec *series;
    size_t nseries, series_cap;
    struct threshold *th; /* copies, owned */
    size_t nth;
    unsigned machines;    /* runs merged into this one */
    char tls_detail[160]; /* first TLS failure, for the error summary ("" when none) */
    bool aborted;         /* ended early by Ctrl-C */
    double aborted_at_s;
    char *aborted_by; /* "metric: expr" of the abortOnFail threshold that ended the run, or NULL */
    double requested_rate; /* open model: the plan's peak rate (iterations/s); 0 closed */
    /* The run's verdict for reports ("FAILED: 2 of 3 thresholds failed"), set before they are
     * written; "" when unknown (a report read back). verdict_ok: it passed. */
    char verdict[320];
    bool verdict_ok;
    struct result_gw gw;
};

struct load_result *result_create(void);
void result_destroy(struct load_result *r);
struct result_sec *result_add_sec(struct load_result *r);
/* Appends a zeroed second to the series of endpoint <e>. */
struct result_ep_sec *result_ep_add_sec(struct result_ep *e);
/* Adds <src> into <dst> (histograms exactly; series by second). */
void result_merge(struct load_result *dst, const struct load_result *src);
/* Finds or adds the endpoint <name>/<method>, the check <label> of <request>. */
struct result_ep *result_ep(struct load_result *r, const char *name, const char *method);
struct result_check *result_check(struct load_result *r, const char *label, const char *request);
double result_rps(const struct load_result *r);
/* "5%", "0.5%" or a fraction "0.05" into [0, 1]; 0 or -1. */
int result_parse_ratio(const char *s, double *out);
/* The exit-1 rule of a finished run: NULL when it passes, else why it failed ("100.00% of the
 * requests failed, above the 1% allowed (--max-failed)") in <why>. <max_failed> < 0 is the
 * default. A run with no untagged http_req_failed threshold is judged on max_failed; with one,
 * that threshold decides (exit 99, as k6). A run where no request completed always fails. */
const char *result_failure(const struct load_result *r, double max_failed, char *why,
                           size_t whylen);
/* Iterations per second, over the same window as result_rps. */
double result_iter_rate(const struct load_result *r);
double result_failed_rate(const struct load_result *r);
/* Fraction of responses under <us> (0 when none). */
double result_under(const struct load_result *r, uint64_t us);

/* ------------------------------------------------------ gateway context (gwctx.c) ---- */

struct gw_sample {
    uint64_t t_us;
    double requests, hits, misses, cpu_s;
};

struct gwctx {
    char *url; /* NULL: no gateway context */
    struct gw_sample *samples;
    size_t n, cap;
    uint64_t next_us;
    unsigned errors;
};

/* Finds the gateway's /stats at <admin> (--gateway-admin URL): 0 (nothing to do when <admin> is
 * NULL), or -1 with a message when no apigate /stats answers there. */
int gwctx_open(struct gwctx *g, const char *admin, const struct scenario *s, bool verbose);
/* Takes a sample when a second has passed since the last (blocking, at most 500 ms). */
void gwctx_poll(struct gwctx *g, uint64_t now_us);
/* Takes the last sample and fills <r>->gw and the gateway fields of <r>'s series. */
void gwctx_finish(struct gwctx *g, struct load_result *r, uint64_t start_us);
void gwctx_close(struct gwctx *g);

/* ---------------------------------------------------------- thresholds (threshold.c) ---- */

/* Parses "metric{name:x}" and one expression into <t>; 0, or -1 with a message in <err>. */
int threshold_parse(struct threshold *t, const char *metric_key, const char *expr, char *err,
                    size_t errlen);
void threshold_free(struct threshold *t);
/* Evaluates <t> on <r>; sets observed/ok. Returns ok. */
bool threshold_eval(struct threshold *t, const struct load_result *r);
/* True when <t> can be judged while the run goes (from the per-second series): what abortOnFail
 * supports. */
bool threshold_live(const struct threshold *t);
/* Evaluates all; returns the number that failed. */
size_t threshold_eval_all(struct threshold *th, size_t n, const struct load_result *r);
/* "p(95)" / "avg" …: the observed value's display form (ms for durations, % for rates). */
void threshold_format_observed(const struct threshold *t, char *out, size_t outlen);

/* ------------------------------------------------------- engine (run.c, client.c) ---- */

#include "core/loop.h"
#include "http/h1parse.h"
#include "net/h1cli.h"

#define CLIENT_MAGIC 0x4C434C49u /* "LCLI" */

enum client_state {
    CL_IDLE,       /* no request: connected (fd >= 0) or not */
    CL_CONNECTING, /* connect in progress, a request may be waiting */
    CL_HANDSHAKE,  /* TLS handshake in progress (https), a request may be waiting */
    CL_WRITING,    /* request partly written */
    CL_READING,    /* waiting for / reading the response */
    CL_PAUSED,     /* think time or backoff after an error (closed model) */
};

struct lthread;

/* One connection and the iteration it carries. Closed model: one per VU. Open model: a pool. */
struct client {
    uint32_t magic;
    struct lthread *t;
    unsigned vu; /* global VU index (closed) or pool slot (open) */
    int fd;              /* tr.fd while connected, -1 otherwise */
    struct transport tr; /* TCP, or TLS for https; owns fd */
    bool tls;            /* tr is a TLS transport */
    enum client_state state;
    bool active;       /* closed: the VU is within the current target */
    bool want_request; /* connecting with a request to send */
    bool reused;       /* this connection served a response before */
    bool retried;      /* the current request was resent after a stale keep-alive */
    bool keep_alive;
    const struct load_req *req;
    size_t req_idx;
    size_t flow, step;   /* the iteration's flow and the step in flight */
    struct buf *vars;    /* this VU's variables (scenario.nvars), reset at each iteration */
    uint32_t ex_ok;      /* bit i: extract i of the request got its value */
    bool flow_pending;   /* closed model: the next start is the flow's next step */
    const struct buf *wreq; /* the request: the prebuilt buffer or wbuf */
    uint64_t origin_us; /* latency is measured from here: the send, or the intended time */
    uint64_t deadline_us;
    uint64_t done_us; /* when the response completed */
    uint64_t resp_bytes;
    int status;
    struct h1cli x; /* the exchange in flight (net/h1cli): request out, response events in */
    uint32_t hdr_ok; /* header-present checks that passed */
    struct buf rbuf, wbuf, body;
    struct loop_timer timer; /* think time / backoff */
    struct loop_timer more;  /* reading resumes here once a read's budget was used up */
    struct client *next_idle;
};

/* Sets up <c> (no fd yet). */
void client_init(struct client *c, struct lthread *t, unsigned vu);
void client_deinit(struct client *c);
/* Opens the connection without a request (open model warm-up). */
void client_connect(struct client *c);
/* Sends request <idx> of the scenario; latency will be measured from <origin_us> (0: from the
 * moment the request is written, the connect excluded). <now_us> is a fresh clock reading.
 * Completion or failure ends in run__client_done(). */
void client_start(struct client *c, size_t idx, uint64_t origin_us, uint64_t now_us);
/* Fails the request in flight if <now_us> is past its deadline. */
void client_check_timeout(struct client *c, uint64_t now_us);
/* Closes the connection (the request in flight, if any, is forgotten: the caller counts it). */
void client_close(struct client *c);
/* Engine side: <c> finished an iteration (<err> true when it failed without a response). */
void run__client_done(struct client *c, bool err, enum load_err kind);
/* What client.c needs from its thread. */
struct scenario *run__scenario(const struct lthread *t);
struct thread_stats *run__stats(struct lthread *t);
struct loop *run__loop(const struct lthread *t);
/* Renders <r> for <c> (its VU's variables, its thread's generator). */
void run__render(struct client *c, const struct load_req *r, struct buf *out);
/* Header extracts of <c>'s request, while the response head <res> is in the buffer. */
struct h1_response;
void run__extract_headers(struct client *c, const struct h1_response *res);
uint64_t *run__bytes_out(struct lthread *t);

struct run_opts {
    bool progress;     /* live progress on stderr */
    bool tty;          /* rewrite one line instead of printing one per second */
    struct gwctx *gw;  /* gateway context to sample during the run, or NULL */
};

/* Runs <s>; returns the merged result (never NULL). */
struct load_result *run_scenario(struct scenario *s, const struct run_opts *o);

/* --------------------------------------------------------------------- reports ---- */

void report_text(const struct load_result *r, FILE *out);
/* Writes the JSON report to <out> (the format compare and merge read back). */
void report_json(const struct load_result *r, struct buf *out);
/* Reads a JSON report; NULL with a message in <err>. */
struct load_result *report_json_read(const char *path, char *err, size_t errlen);
void report_html(const struct load_result *r, struct buf *out);
/* --summary-export: k6's JSON summary shape (report_k6.c). */
void report_k6_summary(const struct load_result *r, struct buf *out);
/* The `load compare --html` page: <cmp_json> (what --json writes) as tables, the series of the
 * <n> runs overlaid on one chart per metric, a verdict banner for the --fail-on rules. */
void report_html_compare(const struct load_result *const *runs, const char *const *files,
                         size_t n, const struct buf *cmp_json, struct buf *out);
/* Writes <b> to <path>; 0 or -1 with a message on stderr. */
int report_write_file(const char *path, const struct buf *b);
/* Checks, before a run, that report <path> can be written after it: a missing or read-only
 * directory, or a directory given as the file, would otherwise be found only once the whole run
 * is over and its report lost. Leaves nothing behind (a file created to check is removed) and an
 * existing file unchanged. 0, or -1 with a message on stderr. */
int report_check_path(const char *path);

/* compare.c */
void compare_print(const struct load_result *a, const struct load_result *b, FILE *out);
int compare_main(int argc, char **argv);
int merge_main(int argc, char **argv);

/* Human duration for reports: "1.23ms", "812µs", "1.5s". */
const char *load_fmt_us(double us, char *out, size_t outlen);
/* "1.2 MB". */
const char *load_fmt_bytes(uint64_t b, char *out, size_t outlen);

#endif
