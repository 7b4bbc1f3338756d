"""Peers for the HTTP/2 extended CONNECT and request trailer tests (tests/e2e/144_*, 145_*): an
HTTP/2 client on python3-h2 (Debian's, run by /usr/bin/python3) that speaks RFC 8441 and WebSocket
framing by hand, and a raw HTTP/1.1 upstream that records what reached it.

    h2_peers.py ws PORT PATH [N]          extended CONNECT, then text, binary, 1 MB and 20 round
                                          trips echoed, the close handshake; N streams at once
    h2_peers.py status PORT PATH [PROTO]  one extended CONNECT (PROTO: websocket); prints its
                                          status and whether the settings announced it
    h2_peers.py raw PORT PATH MODE        tunnel to the raw upstream, one echo of raw bytes, then
                                          MODE: rst (RST_STREAM CANCEL), end (END_STREAM, wait for
                                          the upstream's), wait (wait for the gateway's end)
    h2_peers.py noread PORT PATH S        tunnel, never give the window back for S s
    h2_peers.py flood PORT PATH S         tunnel, send what the window allows for S s
    h2_peers.py trailers PORT PATH MODE   POST with DATA then trailing HEADERS; MODE: chunked (no
                                          content-length), cl (content-length), announce
                                          (content-length and a trailer field)
    h2_peers.py up PORT LOGFILE           raw upstream: behaviour by path (see up())
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---- the HTTP/2 client ----

class H2:
    def __init__(self, port, ack=True):
        import h2.config
        import h2.connection
        self.port = port
        self.ack = ack  # give DATA back to the windows (False: a client that never reads)
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.c.initiate_connection()
        self.flush()
        self.data = {}
        self.heads = {}
        self.trailers = {}
        self.ended = set()
        self.resets = {}
        self.remote_settings = {}
        self.goaway = None

    def flush(self):
        d = self.c.data_to_send()
        if d:
            self.s.sendall(d)

    def pump(self, timeout=10):
        import h2.events as ev
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(1 << 16)
        except socket.timeout:
            return False
        if not d:
            raise EOFError("connection closed")
        for e in self.c.receive_data(d):
            if isinstance(e, ev.RemoteSettingsChanged):
                for k, v in e.changed_settings.items():
                    self.remote_settings[int(k)] = v.new_value
            elif isinstance(e, ev.ResponseReceived):
                self.heads[e.stream_id] = dict(e.headers)
            elif isinstance(e, ev.TrailersReceived):
                self.trailers[e.stream_id] = dict(e.headers)
            elif isinstance(e, ev.DataReceived):
                self.data.setdefault(e.stream_id, bytearray()).extend(e.data)
                if self.ack:
                    self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, ev.StreamEnded):
                self.ended.add(e.stream_id)
            elif isinstance(e, ev.StreamReset):
                self.resets[e.stream_id] = e.error_code
            elif isinstance(e, ev.ConnectionTerminated):
                self.goaway = e.error_code
        self.flush()
        return True

    def until(self, cond, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(what)
            self.pump(min(left, 1.0))

    def connect_protocol(self):
        # the gateway's SETTINGS always name MAX_CONCURRENT_STREAMS (3); 8 is
        # SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)
        self.until(lambda: 3 in self.remote_settings, what="server settings")
        return self.remote_settings.get(8, 0)

    def xconnect(self, path, proto="websocket", extra=()):
        sid = self.c.get_next_available_stream_id()
        hdrs = [(":method", "CONNECT"), (":protocol", proto), (":scheme", "http"),
                (":path", path), (":authority", "127.0.0.1:%d" % self.port),
                ("sec-websocket-version", "13")] + list(extra)
        self.c.send_headers(sid, hdrs)
        self.flush()
        return sid

    def status(self, sid, timeout=10):
        self.until(lambda: sid in self.heads or sid in self.resets, timeout, "response head")
        if sid in self.resets:
            return "reset %d" % self.resets[sid]
        return self.heads[sid][":status"]

    def send(self, sid, data, end=False, timeout=30):
        data = memoryview(data)
        deadline = time.monotonic() + timeout
        while len(data):
            w = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if w <= 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("send window shut")
                self.pump(1.0)
                continue
            self.c.send_data(sid, bytes(data[:w]))
            data = data[w:]
            self.flush()
        if end:
            self.c.end_stream(sid)
            self.flush()

    def take(self, sid, n, timeout=30):
        self.until(lambda: len(self.data.get(sid, b"")) >= n, timeout, "%d bytes" % n)
        b = self.data[sid]
        out = bytes(b[:n])
        del b[:n]
        return out


# ---- WebSocket frames (RFC 6455 §5): the client masks, the server does not ----

def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    if n:
        k = (key * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
    return hdr + key + payload


def ws_recv(h, sid, timeout=30):
    b0, b1 = h.take(sid, 2, timeout)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", h.take(sid, 2, timeout))[0]
    elif n == 127:
        n = struct.unpack("!Q", h.take(sid, 8, timeout))[0]
    assert not (b1 & 0x80), "a server frame is never masked"
    return b0 & 0x0F, h.take(sid, n, timeout)


def ws_echo(h, sid, msg, opcode):
    h.send(sid, ws_frame(opcode, msg))
    op, got = ws_recv(h, sid)
    assert op == opcode and got == msg, "echo differs (%d bytes, opcode %d)" % (len(got), op)


def cmd_ws(port, path, n=1):
    h = H2(port)
    assert h.connect_protocol() == 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL not announced"
    print("settings ok")
    sids = [h.xconnect(path) for _ in range(int(n))]
    for sid in sids:
        st = h.status(sid)
        assert st == "200", "status %s" % st
        assert "sec-websocket-accept" not in h.heads[sid], h.heads[sid]
    print("200 ok")
    for sid in sids:
        ws_echo(h, sid, b"hello, tunnel", 1)
    print("text ok")
    for sid in sids:
        ws_echo(h, sid, b"\x00\x01\x02binary\xff", 2)
    print("binary ok")
    big = os.urandom(1 << 20)
    for sid in sids:
        ws_echo(h, sid, big, 2)
    print("1MB ok")
    for sid in sids:
        for i in range(20):
            ws_echo(h, sid, b"m%d" % i, 1)
    print("20 round trips ok")
    # the close handshake; the server then closes its TCP side: END_STREAM each way
    for sid in sids:
        h.send(sid, ws_frame(8, struct.pack("!H", 1000)))
        op, _ = ws_recv(h, sid)
        assert op == 8, "close frame expected, opcode %d" % op
        h.send(sid, b"", end=True)
    h.until(lambda: all(s in h.ended for s in sids), 10, "END_STREAM from the server")
    assert not any(s in h.resets for s in sids), h.resets
    print("closed cleanly")


def cmd_status(port, path, proto="websocket"):
    h = H2(port)
    print("announced %d" % h.connect_protocol())
    sid = h.xconnect(path, proto)
    st = h.status(sid)
    print("status %s" % st)
    if sid in h.heads and st != "200":
        h.until(lambda: sid in h.ended or sid in h.resets, 5, "end of the answer")
        print("body %s" % bytes(h.data.get(sid, b"")).decode("latin-1"))


def cmd_raw(port, path, mode):
    h = H2(port)
    sid = h.xconnect(path, extra=[("sec-websocket-protocol", "chat, superchat"),
                                  ("sec-websocket-extensions", "x-test")])
    st = h.status(sid)
    print("status %s" % st)
    if st != "200":
        return
    print("protocol %s" % h.heads[sid].get("sec-websocket-protocol"))
    h.send(sid, b"ping-raw")
    assert h.take(sid, 8) == b"ping-raw"
    print("echo ok")
    sys.stdout.flush()  # the test waits for it
    if mode == "rst":
        import h2.errors
        h.c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        h.flush()
        print("reset sent")
        time.sleep(1)  # the connection stays: only the stream ended
        h.c.ping(b"12345678")
        h.flush()
        h.pump(5)
        print("connection alive")
    elif mode == "end":
        h.send(sid, b"", end=True)
        h.until(lambda: sid in h.ended or sid in h.resets, 10, "the server's end")
        print("ended" if sid in h.ended else "reset %d" % h.resets[sid])
    elif mode == "wait":
        sys.stdout.flush()
        import h2.exceptions
        try:
            h.until(lambda: sid in h.ended or sid in h.resets, 40, "the server's end")
            print("ended" if sid in h.ended else "reset %d" % h.resets[sid])
        except EOFError:
            print("connection closed")
        except h2.exceptions.ProtocolError:
            # python-h2 takes no frame after a GOAWAY, not even the RST_STREAM of a stream
            # the GOAWAY let finish: the stream's end came
            print("stream ended after the goaway")
        if h.goaway is not None:
            print("goaway %d" % h.goaway)


def progress(path, n):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.replace(path + ".tmp", path)


def cmd_noread(port, path, out):
    """Reads the socket (so the session goes on) but never opens a window: received bytes are
    written to OUT until OUT.done exists, then the stream is reset."""
    h = H2(port, ack=False)
    sid = h.xconnect(path)
    print("status %s" % h.status(sid))
    sys.stdout.flush()
    while not os.path.exists(out + ".done"):
        h.pump(0.2)
        progress(out, len(h.data.get(sid, b"")))
    import h2.errors
    h.c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    h.flush()
    time.sleep(0.5)


def cmd_flood(port, path, out):
    """Sends what the stream's window allows, the count in OUT, until OUT.done exists; then
    resets the stream."""
    h = H2(port)
    sid = h.xconnect(path)
    print("status %s" % h.status(sid))
    sys.stdout.flush()
    sent = 0
    chunk = b"x" * 16384
    while not os.path.exists(out + ".done"):
        w = min(h.c.local_flow_control_window(sid), len(chunk))
        if w > 0:
            h.c.send_data(sid, chunk[:w])
            h.flush()
            sent += w
        else:
            h.pump(0.2)
        progress(out, sent)
    import h2.errors
    h.c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    h.flush()
    time.sleep(0.5)


def cmd_trailers(port, path, mode):
    h = H2(port)
    sid = h.c.get_next_available_stream_id()
    body = [b"hello ", b"world"]
    hdrs = [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "127.0.0.1:%d" % port), ("x-head", "1")]
    if mode in ("cl", "announce"):
        hdrs.append(("content-length", "11"))
    if mode == "announce":
        hdrs.append(("trailer", "x-checksum"))
    h.c.send_headers(sid, hdrs)
    for b in body:
        h.c.send_data(sid, b)
    # one legal trailer pair and the fields that must not be trailers (RFC 9110 §6.5.1)
    h.c.send_headers(sid, [("x-checksum", "abc123"), ("host", "evil.example"),
                           ("authorization", "Bearer t"), ("x-two", "2")], end_stream=True)
    h.flush()
    print("status %s" % h.status(sid))
    h.until(lambda: sid in h.ended or sid in h.resets, 10, "end of the answer")
    print("body %s" % bytes(h.data.get(sid, b"")).decode("latin-1"))


# ---- the raw upstream ----

def up(port, logfile):
    lock = threading.Lock()

    def note(line):
        with lock, open(logfile, "a") as f:
            f.write(line + "\n")

    def read_head(c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, b""
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        return head.decode("latin-1"), rest

    def field(head, name):
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name:
                return v.strip()
        return None

    def switch(c, head, accept=None):
        key = field(head, "sec-websocket-key") or ""
        if accept is None:
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        proto = field(head, "sec-websocket-protocol")
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n"
                   % (accept, "Sec-WebSocket-Protocol: %s\r\n" % proto.split(",")[0]
                      if proto else "")).encode())

    def echo_until_eof(c, rest, tag):
        try:
            if rest:
                c.sendall(rest)
            while True:
                d = c.recv(65536)
                if not d:
                    note("%s eof" % tag)
                    return
                c.sendall(d)
        except OSError as e:
            note("%s error %s" % (tag, e.__class__.__name__))

    def body(c, head, rest):
        """The request body as it came, framing included (chunked: up to its end)."""
        cl = field(head, "content-length")
        data = rest
        c.settimeout(5)
        if cl is not None:
            while len(data) < int(cl):
                d = c.recv(65536)
                if not d:
                    break
                data += d
        elif (field(head, "transfer-encoding") or "").lower() == "chunked":
            while not (data.startswith(b"0\r\n") or b"\r\n0\r\n" in data) or \
                    not data.endswith(b"\r\n\r\n"):
                d = c.recv(65536)
                if not d:
                    break
                data += d
        return data

    def serve(c):
        try:
            buf = b""
            head, rest = read_head(c, buf)
            if head is None:
                return
            path = head.split("\r\n", 1)[0].split(" ")[1]
            tag = path.split("?")[0]
            path = "/" + tag.rsplit("/", 1)[-1]  # the behaviour: by the last segment
            note("head %s" % repr(head))
            if path.startswith("/deny"):
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
                          b"denied")
            elif path.startswith("/badaccept"):
                switch(c, head, accept="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
                echo_until_eof(c, rest, tag)
            elif path.startswith("/echo"):
                switch(c, head)
                echo_until_eof(c, rest, tag)
            elif path.startswith("/closeafter"):
                switch(c, head)
                d = rest or c.recv(65536)
                c.sendall(d)
                c.shutdown(socket.SHUT_WR)  # a FIN: the stream's END_STREAM
                while c.recv(65536):
                    pass
                note("%s eof" % tag)
            elif path.startswith("/resetafter"):
                switch(c, head)
                d = rest or c.recv(65536)
                c.sendall(d)
                time.sleep(0.2)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                note("%s reset" % tag)
            elif path.startswith("/flood"):
                switch(c, head)
                chunk = b"f" * 65536
                sent = 0
                c.settimeout(1.0)
                while sent < (1 << 30):
                    try:
                        sent += c.send(chunk)
                    except socket.timeout:
                        pass
                    with open(logfile + ".flood", "w") as f:
                        f.write("%d\n" % sent)
            elif path.startswith("/sink"):
                switch(c, head)
                time.sleep(60)  # never reads
            else:
                data = body(c, head, rest)
                # one line: CR and LF written as \r and \n
                note("body %s" % data.decode("latin-1").replace("\r", "\\r").replace("\n", "\\n"))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                time.sleep(0.5)
        except OSError as e:
            note("error %s" % e.__class__.__name__)
        finally:
            c.close()

    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(128)
    while True:
        c, _ = lst.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    port = int(args[0])
    if cmd == "up":
        up(port, args[1])
    else:
        {"ws": cmd_ws, "status": cmd_status, "raw": cmd_raw, "noread": cmd_noread,
         "flood": cmd_flood, "trailers": cmd_trailers}[cmd](port, *args[1:])
