#!/usr/bin/env bash
# Issue 16 doctor item 2: "thresholds come from one documented table". docs/doctor.md's
# Thresholds table must say what src/doctor/rules.h decides: each row is checked against the
# constants it states (a constant changed without the table, or the table edited alone, fails
# here). The rules' behaviour at these constants is tested by tests/unit/test_rules.c.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_cmd python3

python3 - "$AG_SRC/src/doctor/rules.h" "$AG_SRC/docs/doctor.md" <<'PY'
import re, sys
hdr, doc = open(sys.argv[1]).read(), open(sys.argv[2]).read()
C = {}
for name, val in re.findall(r"^#define (RULES_\w+) +(\S+(?: << \d+\)?)?)", hdr, re.M):
    v = val.strip("()").replace("ll", "")
    C[name] = eval(v) if "<<" in v else float(v)

def pct(x): return "%g%%" % (C[x] * 100)
def ms(x):
    v = C[x]
    return "%g s" % (v / 1000) if v >= 1000 else "%g ms" % v
def s(x): return "%g s" % C[x]
def n(x):  # thousands with a space, as the table writes them
    return "{:,}".format(int(C[x])).replace(",", " ")
def mb(x):
    v = C[x]
    return "1 GB" if v == 1 << 30 else "%d MB" % (v >> 20)

rows = {}
for line in doc[doc.index("## Thresholds"):].split("\n")[1:]:
    if line.startswith("## "):
        break
    m = re.match(r"\| \[([\w-]+)\]", line)
    if m:
        rows.setdefault(m.group(1), []).append(line)

want = [
    ("pg-connections", ["> " + pct("RULES_PG_CONN_WARN"), "> " + pct("RULES_PG_CONN_CRIT")]),
    ("pg-role-connections", ["≥ " + pct("RULES_PG_LIMIT_WARN")]),
    ("pg-idle-in-transaction", ["≥ " + s("RULES_PG_IDLE_TX_WARN_S"), "≥ " + s("RULES_PG_IDLE_TX_CRIT_S")]),
    ("pg-long-queries", ["≥ " + s("RULES_PG_LONG_QUERY_WARN_S")]),
    ("pg-blocked-queries", ["≥ " + s("RULES_PG_BLOCKED_CRIT_S")]),
    ("pg-slow-statements", ["≥ %d calls" % C["RULES_PG_STMT_MIN_CALLS"], "≥ " + ms("RULES_PG_STMT_WARN_MS"),
                            "≥ " + ms("RULES_PG_STMT_CRIT_MS"), "< %d calls" % C["RULES_PG_STMT_MIN_CALLS"],
                            "≥ " + ms("RULES_PG_STMT_ONEOFF_WARN_MS")]),
    ("pg-missing-index", ["≥ " + n("RULES_PG_SEQ_MIN_ROWS_PER_SCAN") + " rows"]),
    ("pg-cache-hit-ratio", ["≥ " + n("RULES_PG_HIT_MIN_BLOCKS") + " blocks", "< " + pct("RULES_PG_HIT_WARN")]),
    ("pg-replication-lag", ["≥ %s or %s" % (s("RULES_PG_REPL_WARN_S"), mb("RULES_PG_REPL_WARN_BYTES")),
                            "≥ %s or %s" % (s("RULES_PG_REPL_CRIT_S"), mb("RULES_PG_REPL_CRIT_BYTES"))]),
    ("pgb-pool-starvation", ["≥ " + s("RULES_PGB_WAIT_CRIT_S")]),
    ("redis-hit-ratio", ["≥ %d lookups" % C["RULES_REDIS_MIN_LOOKUPS"], "≥ " + pct("RULES_REDIS_HIT_WARN"),
                         "< " + pct("RULES_REDIS_HIT_CRIT")]),
    ("redis-memory", ["≥ " + pct("RULES_REDIS_MEM_WARN")]),
    ("redis-clients", ["≥ " + pct("RULES_REDIS_CLIENTS_WARN")]),
    ("redis-slowlog", ["≥ %g ms" % (C["RULES_REDIS_SLOW_WARN_US"] / 1000)]),
    ("redis-latency", ["≥ %g ms" % C["RULES_REDIS_PING_WARN_MS"]]),
    ("gw-5xx-rate", ["≥ %d requests" % C["RULES_GW_MIN_REQUESTS"], "> " + pct("RULES_GW_5XX_WARN"),
                     "> " + pct("RULES_GW_5XX_CRIT")]),
    ("gw-latency", ["> " + ms("RULES_GW_P95_WARN_MS"), "> " + ms("RULES_GW_P95_CRIT_MS")]),
    ("gw-cache-hit-ratio", ["≥ %d lookups" % C["RULES_GW_MIN_REQUESTS"], "≥ " + pct("RULES_GW_HIT_TARGET"),
                            "< " + pct("RULES_GW_HIT_WARN"),
                            "%g–%g%%" % (C["RULES_GW_HIT_WARN"] * 100, C["RULES_GW_HIT_TARGET"] * 100)]),
    ("gw-shed", ["≥ " + pct("RULES_GW_SHED_WARN")]),
    ("gw-pool-wait", ["> " + ms("RULES_GW_POOL_WAIT_WARN_MS")]),
    ("gw-connection-churn", ["≥ %d upstream requests" % C["RULES_GW_MIN_REQUESTS"], "> %g" % C["RULES_GW_CHURN_WARN"]]),
    ("host-ephemeral-ports", ["≥ " + pct("RULES_HOST_PORTS_WARN"), "≥ " + pct("RULES_HOST_PORTS_CRIT")]),
    ("host-db-connection-churn", ["≥ " + n("RULES_HOST_DB_TIME_WAIT_WARN"), "≥ " + n("RULES_HOST_DB_TIME_WAIT_CRIT")]),
]
bad = []
for row, parts in want:
    if row not in rows:
        bad.append("no row for %s in docs/doctor.md's Thresholds table" % row)
        continue
    text = " ".join(rows[row])
    for p in parts:
        if p not in text:
            bad.append("%s: the table lacks '%s' (rules.h): %s" % (row, p, text))
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("%d rows, %d thresholds match rules.h" % (len(want), sum(len(p) for _, p in want)))
PY
log "ok"
