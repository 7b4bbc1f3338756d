/* Rate limit algorithms and their per-key state, without I/O or clocks (the caller passes the
 * time): GCRA (a smooth rate with a burst), fixed window and sliding window (the weighted
 * estimate of the previous and current windows), a bounded table of per-key cells shared by a
 * worker's threads (sharded locks), and the unverified read of a JWT claim used as a key.
 * The rate limit filter (ratelimit.c) is their only user. */
#ifndef AG_GATEWAY_RLIMIT_H
#define AG_GATEWAY_RLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rlimit_algo {
    RLIMIT_GCRA = 0, // generic cell rate algorithm: <count>/<period> spaced evenly, <burst> at once
    RLIMIT_FIXED,    // at most <count> per calendar window of <period>
    RLIMIT_SLIDING,  // at most <count> in any <period>, estimated from two fixed windows
};

struct rlimit_policy {
    enum rlimit_algo algo;
    uint64_t count;     // requests per period (>= 1)
    uint64_t period_ns; // 1 s, 1 min or 1 h
    uint64_t burst;     // GCRA: requests admitted at once from an idle key (>= 1)
    uint64_t t_ns;      // GCRA: emission interval, period / count
};

/* The state of one key. Zero is a key never seen. */
struct rlimit_cell {
    uint64_t a; // GCRA: theoretical arrival time (ns); windows: index of the current window + 1
    uint64_t b; // windows: current count (low 32 bits), previous window's count (high 32 bits)
};

struct rlimit_verdict {
    bool allowed;
    uint64_t remaining; // requests the key could still make now
    uint64_t reset_ns;  // until the key's quota is whole again (GCRA) or its window ends
    uint64_t retry_ns;  // refused: until a request would be admitted
};

/* <count> >= 1, <period_ns> >= 1, <burst> >= 1 (GCRA; ignored by the windows). */
void rlimit_policy_init(struct rlimit_policy *p, enum rlimit_algo algo, uint64_t count,
                        uint64_t period_ns, uint64_t burst);
/* One request of the key whose state is <c>, at <now_ns> (monotonic, > 0). */
void rlimit_take(const struct rlimit_policy *p, struct rlimit_cell *c, uint64_t now_ns,
                 struct rlimit_verdict *v);
/* True when <c> behaves as a key never seen (its quota is whole): it may be dropped. */
bool rlimit_cell_idle(const struct rlimit_policy *p, const struct rlimit_cell *c, uint64_t now_ns);

/* Per-key cells of one policy, shared by threads: 64 shards, each behind its own lock, of
 * 8-way buckets. Memory is fixed at creation (max_keys rounded up to a multiple of 512 cells,
 * 24 bytes each): a new key takes a free or idle cell of its bucket, else the bucket's least
 * constrained one (that key starts again with a whole quota: counted in evictions). */
struct rlimit_table;
struct rlimit_table *rlimit_table_create(const struct rlimit_policy *p, size_t max_keys);
void rlimit_table_destroy(struct rlimit_table *t);
/* One request of the key whose (keyed) hash is <key>. */
void rlimit_table_take(struct rlimit_table *t, uint64_t key, uint64_t now_ns,
                       struct rlimit_verdict *v);
size_t rlimit_table_capacity(const struct rlimit_table *t);
/* Cells holding a key that is not idle at <now_ns> (walks the table: for tests and stats). */
size_t rlimit_table_live(struct rlimit_table *t, uint64_t now_ns);
/* Keys dropped while their quota was not whole (a flood of more keys than cells). */
uint64_t rlimit_table_evictions(const struct rlimit_table *t);
const struct rlimit_policy *rlimit_table_policy(const struct rlimit_table *t);

/* ---- sharing a GCRA limit between instances (shared: true; rlshare.c does the Redis side) ----
 * Admission stays local: each instance takes from its own cells, and every sync interval it
 * reports what it admitted per active key to a global TAT kept in Redis, and sets its cell from
 * the answer. The arithmetic is here, without I/O, so a unit test can run N instances against a
 * model of the script (rlimit_gcra_global is what its Lua computes). */

#define RLIMIT_NAME_LEN 32 /* a key's name in Redis: hex of a keyed hash (never the key) */

/* The script's step, in µs of Redis's clock: the global TAT <tat> (0: none yet) at <now>, moved
 * by <delta> admissions of emission interval <t_us>, kept at most <cap_us> ahead of <now>.
 * Returns the new TAT (>= now); the debt the script answers is that minus <now>. */
double rlimit_gcra_global(double tat, double now, uint64_t delta, double t_us, double cap_us);
/* The local TAT after a sync answered <debt_ns> (global TAT minus Redis's now, as of the reply)
 * while <pending> more requests were admitted here after the sync's counts were taken: now +
 * debt + pending emission intervals. */
uint64_t rlimit_gcra_merge(const struct rlimit_policy *p, uint64_t now_ns, uint64_t debt_ns,
                           uint64_t pending);

/* Computes the Redis name of the key being taken (called at most once per cell and key, under
 * the table's lock: only for a key new to its cell). */
typedef void rlimit_name_fn(void *arg, char name[RLIMIT_NAME_LEN]);

/* One key's report, taken by rlimit_table_drain. */
struct rlimit_report {
    uint64_t key;
    uint64_t delta; // admitted here since the last report
    char name[RLIMIT_NAME_LEN];
};

/* Gives <t> the per-cell sync state (56 bytes per cell more): from then on
 * rlimit_table_take_sync notes every active key for the next drain. */
void rlimit_table_sync_enable(struct rlimit_table *t);
/* rlimit_table_take on a table with sync: an admitted request is counted for the next report,
 * and the key is listed as active (a refused one too: its cell must learn the global state).
 * <name> gives the key's Redis name when the cell is new to it. */
void rlimit_table_take_sync(struct rlimit_table *t, uint64_t key, uint64_t now_ns,
                            struct rlimit_verdict *v, rlimit_name_fn *name, void *arg);
/* Takes up to <max> reports of keys active since their last one, none with a sync still in
 * flight (those stay listed), and marks them in flight. Returns their number. */
size_t rlimit_table_drain(struct rlimit_table *t, struct rlimit_report *out, size_t max);
/* The sync of <key> is over: <ok> with the global debt <debt_ns> as of <now_ns> (its cell is set
 * from it, rlimit_gcra_merge), or failed (the cell keeps its local state: that key is limited by this
 * instance alone until a sync succeeds). A key that left its cell meanwhile is ignored. */
void rlimit_table_merge(struct rlimit_table *t, uint64_t key, bool ok, uint64_t debt_ns,
                        uint64_t now_ns);
/* Keys listed for the next drain (for tests and stats). */
size_t rlimit_table_active(struct rlimit_table *t);

/* ---- sharing a window limit (fixed_window, sliding_window; rlshare.c does the Redis side) ----
 * A window's count starts again at zero each window, so a lag carried as a debt (as GCRA does)
 * would be an overshoot in every window. Instead each instance admits within a budget that Redis
 * reserved for it: each sync adds the instance's admissions to its count in Redis's current
 * window and reserves it a grant (rlimit_window_grant) out of what no instance has used or holds
 * reserved; the instance admits at most that grant, minus what it admitted since the report,
 * until the next sync. The reservations never sum past the limit, so the only overshoot is the
 * lease (a RLIMIT_LEASE_DIV-th of the limit) an instance admits on before its first sync of a key
 * in a window it did not report in the previous one (a key new to it, or idle a whole window):
 * Redis assumes that lease for instances of the previous window only. When the Redis window of a
 * grant ends, the budget becomes the lease (a sliding one: the smaller of the two). A failed sync
 * lifts the budget: that key is limited by this instance alone until a sync succeeds. */

#define RLIMIT_LEASE_DIV 16

/* The lease: ceil(count / RLIMIT_LEASE_DIV). */
uint64_t rlimit_window_lease(const struct rlimit_policy *p);
/* The script's grant (its Lua is the same arithmetic): this instance has used <mine> in the
 * current window (<delta> of it in this report), the others hold <others> (the larger of used
 * and reserved each, plus a lease for each instance of the previous window that has not reported
 * in this one), the previous window held <prev> (sliding: weighted by the part still inside the
 * period, <elapsed_ns> into the current one). The grant is what is left, at most twice the
 * reported admissions (a busy instance's budget doubles each sync; an idle one reserves little)
 * and at least the lease when that much is left. */
uint64_t rlimit_window_grant(const struct rlimit_policy *p, uint64_t mine, uint64_t delta,
                             uint64_t others, uint64_t prev, uint64_t elapsed_ns);
/* The window sync of <key> is over: <ok> with grant <grant> for the Redis window ending at
 * <wend_ns> (our clock), or failed (no budget: counted here alone). A key that left its cell
 * meanwhile is ignored. */
void rlimit_table_merge_window(struct rlimit_table *t, uint64_t key, bool ok, uint64_t grant,
                               uint64_t wend_ns);

/* The value of claim <claim> in the payload of the JWT of an Authorization value
 * "Bearer <header>.<payload>.<signature>" (scheme case-insensitive), NOT VERIFIED: the payload
 * is base64url-decoded and its top-level member <claim> read. A string value is copied as
 * written between its quotes (escapes kept), a number, true, false as their text; an object,
 * array, null, a missing claim or any malformed input give -1. Returns the length written to
 * <out> (at most <cap>; longer values give -1). */
long rlimit_jwt_claim(const char *auth, size_t len, const char *claim, char *out, size_t cap);

#endif
