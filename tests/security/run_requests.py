#!/usr/bin/env python3
"""Request-side security corpus runner (tests/security/requests/*.tsv, poisoning/*.tsv).

Runs an origin in this process that records the exact bytes of every connection and parses them
strictly (Content-Length or chunked), so a request smuggled past the gateway shows up as an extra
request, a request with a strange method or target, or garbage. Every case is sent twice to the
gateway: whole, and split into pieces of 1 to 5 bytes with a pause between them. After each send a
check request goes on a new connection and must come back 200 with its own answer, and the origin
must have seen it whole (leftover bytes on a pooled upstream connection would prefix it).

Usage: run_requests.py GATEWAY_PORT ORIGIN_PORT OUT_DIR FILE.tsv...
The gateway routes /api/ (not cached) and /api/c/ (cached) to the origin; nothing else.
Exit 0 when every case holds its verdict, 1 otherwise (each failure printed, raw bytes in OUT_DIR).

Case files: tab-separated lines, '#' comments. requests/*.tsv: name, verdict, request bytes as a
Python bytes literal body (\\r\\n, \\x00, \\t). Verdicts:
  reject [STATUS]   the first answer has STATUS (e.g. 400, 4xx, 400|501; default 4xx|5xx; 'none':
                    the connection closed without an answer) and the origin sees no request of
                    the case (a head and part of a body cut off by the gateway is not one)
  forward N [body=B] [without=NAME] [target=T1,T2...]
                    the first answer (after any 100 Continue) is 200 and the origin sees exactly N
                    requests: the first with body B, none with header NAME, with targets T1, T2...
  safe              either, as long as nothing below breaks
Always: the origin sees only /api/ targets, no garbage, no more requests than the client got
answers with 2xx, and the check request after the case is clean.
poisoning/*.tsv: name, header line ("Name: value"): sent on the cached route /api/c/; the origin
must not receive that header with the client's value, and the entry must then be served to a request without it.
"""
import codecs
import os
import socket
import sys
import threading
import time


def unescape(s):
    return codecs.escape_decode(s.encode())[0]


# ---- the recording origin ----

class Origin:
    def __init__(self, port):
        self.lock = threading.Lock()
        self.events = []  # ("req", method, target, headers(list of (name, value)), body) or ("garbage", bytes)
        self.raw = []  # (conn id, bytes) in arrival order
        self.nconn = 0
        self.lst = socket.socket()
        self.lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lst.bind(("127.0.0.1", port))
        self.lst.listen(128)
        threading.Thread(target=self.accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.events, self.raw = [], []

    def snapshot(self):
        with self.lock:
            return list(self.events), list(self.raw)

    def accept(self):
        while True:
            c, _ = self.lst.accept()
            with self.lock:
                self.nconn += 1
                cid = self.nconn
            threading.Thread(target=self.serve, args=(c, cid), daemon=True).start()

    def record(self, ev):
        with self.lock:
            self.events.append(ev)

    def serve(self, c, cid):
        buf = b""
        in_body = False

        def more():
            nonlocal buf
            d = c.recv(65536)
            if not d:
                raise EOFError
            with self.lock:
                self.raw.append((cid, d))
            buf += d

        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    if len(buf) > 65536:
                        raise ValueError("head too long")
                    more()
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                    raise ValueError("bad request line %r" % lines[0])
                hdrs = []
                for ln in lines[1:]:
                    if b":" not in ln or ln[:1] in (b" ", b"\t"):
                        raise ValueError("bad header line %r" % ln)
                    k, v = ln.split(b":", 1)
                    hdrs.append((k.decode("latin-1").lower(), v.strip()))
                names = [k for k, _ in hdrs]
                te = [v for k, v in hdrs if k == "transfer-encoding"]
                cl = [v for k, v in hdrs if k == "content-length"]
                if te and cl or len(cl) > 1 or len(te) > 1:
                    raise ValueError("ambiguous framing forwarded: %r" % head)
                body = b""
                in_body = True
                if te:
                    if te[0].lower() != b"chunked":
                        raise ValueError("transfer-encoding %r forwarded" % te[0])
                    while True:
                        while b"\r\n" not in buf:
                            more()
                        line, buf = buf.split(b"\r\n", 1)
                        size = int(line.split(b";")[0], 16)
                        while len(buf) < size + 2:
                            more()
                        if buf[size:size + 2] != b"\r\n":
                            raise ValueError("chunk data not followed by CRLF")
                        body += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break  # the gateway sends no trailers
                elif cl:
                    n = int(cl[0])
                    while len(buf) < n:
                        more()
                    body, buf = buf[:n], buf[n:]
                in_body = False
                self.record(("req", parts[0], parts[1], hdrs, body))
                answer = b"ok " + parts[0] + b" " + parts[1]
                extra = b"Cache-Control: max-age=60\r\n" if parts[1].startswith(b"/api/c/") else b""
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(answer), extra)
                          + (answer if parts[0] != b"HEAD" else b""))  # HEAD: no body
                del names
        except EOFError:
            if buf:
                # a head or body cut short by the gateway closing (the client went away): not
                # smuggling; bytes that do not start a request are
                partial = any(buf.startswith(m) for m in (b"GET ", b"POST ", b"HEAD ", b"PUT "))
                self.record(("truncated" if partial or in_body else "garbage", buf))
        except (ValueError, IndexError) as e:
            self.record(("garbage", ("%s; then %r" % (e, buf[:200])).encode()))
        except OSError:
            pass
        finally:
            c.close()


# ---- the client side ----

def send_case(port, data, split):
    """Sends data (whole or in small pieces), half-closes, returns every byte answered."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        if split:
            sizes = [1, 2, 3, 5]
            i = k = 0
            while i < len(data):
                n = sizes[k % len(sizes)]
                s.sendall(data[i:i + n])
                i += n
                k += 1
                if k < 300:  # a pause between the first pieces; a big head then goes on unpaused
                    time.sleep(0.002)
        else:
            s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        s.close()


def parse_responses(data):
    """Status codes of the responses in data (Content-Length or chunked bodies)."""
    out = []
    while data:
        if b"\r\n\r\n" not in data:
            break
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ")[1])
        except (IndexError, ValueError):
            out.append(-1)
            break
        out.append(status)
        if 100 <= status < 200:
            continue
        cl = None
        chunked = False
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                cl = int(v.strip())
            elif k == b"transfer-encoding" and v.strip().lower() == b"chunked":
                chunked = True
        if chunked:
            while True:
                line, _, data = data.partition(b"\r\n")
                size = int(line.split(b";")[0] or b"0", 16)
                data = data[size + 2:]
                if size == 0:
                    break
        elif cl is not None:
            data = data[cl:]
    return out


def status_ok(status, pat):
    for p in pat.split("|"):
        if p.endswith("xx") and len(p) == 3 and str(status)[:1] == p[0]:
            return True
        if p == str(status):
            return True
    return False


def check_request(gport, origin, tag):
    """A clean request after the case: its own answer, and the origin saw exactly it."""
    target = ("/api/check-%s" % tag).encode()
    req = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    out = send_case(gport, req, False)
    st = parse_responses(out)
    if st[:1] != [200] or not out.endswith(b"ok GET " + target):
        return "check request answered %r" % out[:300]
    deadline = time.time() + 2
    while time.time() < deadline:
        evs, _ = origin.snapshot()
        mine = [e for e in evs if e[0] == "req" and e[2] == target]
        if mine:
            return None
        time.sleep(0.01)
    return "the origin never saw the check request"


def run_request_case(gport, origin, name, verdict, data, split, outdir):
    origin.reset()
    out = send_case(gport, data, split)
    time.sleep(0.05)  # the gateway's last forwarded bytes reach the origin
    statuses = [st for st in parse_responses(out) if st >= 200 or st < 100]  # 100 Continue aside
    evs, raw = origin.snapshot()
    mode = "split" if split else "whole"
    errs = []
    reqs = [e for e in evs if e[0] == "req"]
    for e in evs:
        if e[0] == "garbage":
            errs.append("the origin got garbage: %r" % e[1][:200])
        elif not e[2].startswith(b"/api/"):
            errs.append("the origin got %r %r (outside /api/)" % (e[1], e[2]))
    ok2xx = sum(1 for s in statuses if 200 <= s < 300)
    if len(reqs) > ok2xx:
        errs.append("the origin saw %d requests, the client got %d 2xx answers (%r)"
                    % (len(reqs), ok2xx, statuses))
    v = verdict.split()
    if v[0] == "reject":
        pat = v[1] if len(v) > 1 else "4xx|5xx"
        if not (statuses and status_ok(statuses[0], pat)) and not (
                not statuses and "none" in pat.split("|")):
            errs.append("want %s, got %r" % (pat, statuses))
        if reqs:
            errs.append("rejected, yet the origin saw %d request(s): %r"
                        % (len(reqs), [(r[1], r[2], r[4][:60]) for r in reqs]))
    elif v[0] == "forward":
        n = int(v[1]) if len(v) > 1 else 1
        if statuses[:1] != [200]:
            errs.append("want 200, got %r" % statuses)
        if len(reqs) != n:
            errs.append("want %d request(s) at the origin, got %d: %r"
                        % (n, len(reqs), [(r[1], r[2], r[4][:60]) for r in reqs]))
        for opt in v[2:]:
            if opt.startswith("body=") and reqs and reqs[0][4] != unescape(opt[5:]):
                errs.append("origin body %r, want %r" % (reqs[0][4], unescape(opt[5:])))
            elif opt.startswith("without="):
                for r in reqs:
                    if any(k == opt[8:].lower() for k, _ in r[3]):
                        errs.append("the origin received %s: %r" % (opt[8:], r[3]))
            elif opt.startswith("target="):
                for r, t in zip(reqs, opt[7:].split(",")):
                    if r[2] != t.encode():
                        errs.append("the origin received target %r, want %r" % (r[2], t))
            elif not opt.startswith("body="):
                errs.append("unknown verdict option %r" % opt)
    elif v[0] != "safe":
        errs.append("unknown verdict %r" % verdict)
    err = check_request(gport, origin, "%s-%s" % (name, mode))
    if err:
        errs.append(err)
    if errs:
        with open(os.path.join(outdir, "%s.%s.raw" % (name, mode)), "wb") as f:
            f.write(b"== sent\n" + data + b"\n== answered\n" + out + b"\n== origin received\n")
            for cid, d in raw:
                f.write(b"[conn %d] " % cid + d + b"\n")
    return errs, statuses, len(reqs)


def run_poison_case(gport, origin, name, header, n, split):
    origin.reset()
    target = ("/api/c/poison-%d-%s" % (n, "split" if split else "whole")).encode()
    hname = header.split(b":", 1)[0].strip().lower().decode("latin-1")
    hval = header.split(b":", 1)[1].strip()
    data = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n\r\n"
    out = send_case(gport, data, split)
    errs = []
    if parse_responses(out)[:1] != [200]:
        errs.append("answered %r" % out[:200])
    time.sleep(0.05)
    evs, _ = origin.snapshot()
    for e in evs:
        # the gateway sets some of these itself (X-Forwarded-Host: the Host it got): the client's
        # value must not arrive
        if e[0] == "req" and any(k == hname and v == hval for k, v in e[3]):
            errs.append("the origin received %s on a cached route" % header.decode("latin-1"))
        if e[0] == "garbage":
            errs.append("the origin got garbage: %r" % e[1][:200])
    plain = send_case(gport, b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n", False)
    if b"X-Cache: HIT" not in plain or not plain.endswith(b"ok GET " + target):
        errs.append("a plain request did not get the entry: %r" % plain[:300])
    return errs


def main():
    gport, oport, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    origin = Origin(oport)
    failures = total = 0
    for path in sys.argv[4:]:
        family = os.path.basename(path)
        kind = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as f:
            rows = [ln.rstrip("\n").split("\t") for ln in f
                    if ln.strip() and not ln.startswith("#")]
        for i, row in enumerate(rows):
            for split in (False, True):
                total += 1
                mode = "split" if split else "whole"
                if kind == "requests":
                    name, verdict, req = row
                    errs, st, nreq = run_request_case(gport, origin, name, verdict, unescape(req),
                                                      split, outdir)
                    label = "%s %s %s (%s): answers %r, origin %d" % (family, name, mode, verdict,
                                                                     st, nreq)
                elif kind == "poisoning":
                    name, header = row
                    errs = run_poison_case(gport, origin, name, unescape(header), i, split)
                    label = "%s %s %s" % (family, name, mode)
                else:
                    print("skip %s: no runner for %s/" % (path, kind))
                    break
                if errs:
                    failures += 1
                    print("FAIL " + label)
                    for e in errs:
                        print("     " + e)
                else:
                    print("ok   " + label)
    print("%d of %d case runs failed" % (failures, total))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
