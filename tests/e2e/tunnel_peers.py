"""Peers for the Upgrade tunnel tests (tests/e2e/10[0-4]_*.sh): a WebSocket echo server and
client on the `websockets` library (Debian python3-websockets, run by /usr/bin/python3), and a
raw HTTP/1.1 upstream and client on plain sockets for what a library will not do (refuse an
upgrade, switch unasked, send early bytes, half-close, flood a client that never reads).

    tunnel_peers.py ws-echo PORT [CERT KEY]       WebSocket echo server (no compression; wss)
    tunnel_peers.py ws-client URL echo            text, binary and 1 MB random frames echoed
    tunnel_peers.py ws-client URL wait-close S    open, then wait up to S s for the server's close
    tunnel_peers.py raw-up PORT LOGFILE           raw upstream: behaviour by path (see serve())
    tunnel_peers.py raw-client PORT PATH [EXTRA]  Upgrade request (+EXTRA bytes at once), prints
                                                  everything until the close or 5 s of quiet
"""
import asyncio
import os
import socket
import sys
import threading
import time


def ws_echo(port, cert=None, key=None):
    import websockets
    ssl_ctx = None
    if cert:
        import ssl
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(cert, key)

    async def echo(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with websockets.serve(echo, "127.0.0.1", port, max_size=None, compression=None,
                                    ssl=ssl_ctx):
            await asyncio.Future()

    asyncio.run(main())


def ws_client(url, mode, arg=None):
    import websockets

    ssl_ctx = None
    if url.startswith("wss:"):
        import ssl
        ssl_ctx = ssl.create_default_context()
        ssl_ctx.check_hostname = False
        ssl_ctx.verify_mode = ssl.CERT_NONE  # the tests' self-signed certificate

    async def main():
        async with websockets.connect(url, max_size=None, compression=None, ssl=ssl_ctx,
                                      open_timeout=10, close_timeout=5) as ws:
            if mode == "echo":
                await ws.send("hello, tunnel")
                assert await ws.recv() == "hello, tunnel"
                print("text ok")
                await ws.send(b"\x00\x01\x02binary\xff")
                assert await ws.recv() == b"\x00\x01\x02binary\xff"
                print("binary ok")
                big = os.urandom(1 << 20)
                await ws.send(big)
                got = await asyncio.wait_for(ws.recv(), 30)
                assert got == big, "1 MB echo differs"
                print("1MB ok")
                for i in range(20):
                    await ws.send("m%d" % i)
                    assert await ws.recv() == "m%d" % i
                print("20 round trips ok")
            elif mode == "wait-close":
                t0 = time.monotonic()
                await ws.send("hi")
                assert await ws.recv() == "hi"
                print("open ok")
                try:
                    await asyncio.wait_for(ws.wait_closed(), float(arg))
                    print("closed after %.1f s" % (time.monotonic() - t0))
                except asyncio.TimeoutError:
                    print("still open after %s s" % arg)

    asyncio.run(main())


def read_head(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"


def raw_up(port, logfile):
    lock = threading.Lock()

    def note(line):
        with lock, open(logfile, "a") as f:
            f.write(line + "\n")

    def echo(c, first=b""):
        if first:
            c.sendall(first)
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)

    def serve(c):
        try:
            while True:
                head, rest = read_head(c)
                if head is None:
                    return
                line = head.split("\r\n", 1)[0]
                note(line)
                path = line.split(" ")[1]
                up = "\r\nupgrade:" in head.lower()
                note("upgrade-header " + ("yes" if up else "no"))
                if path.startswith("/deny"):
                    c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied")
                    continue  # keep-alive: a smuggled second request would show in the log
                if "/switch" in path or "/ws" in path:
                    c.sendall(SWITCH)
                    echo(c, rest)
                    return
                if path.startswith("/noupgradehdr"):
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n")
                    echo(c, rest)
                    return
                if path.startswith("/slow101"):
                    time.sleep(0.5)  # the client's early bytes reach the gateway meanwhile
                    c.sendall(SWITCH + b"after-101:")
                    echo(c, rest)
                    return
                if path.startswith("/halfclose"):
                    c.sendall(SWITCH)
                    got = rest
                    while True:
                        d = c.recv(65536)
                        if not d:
                            break
                        got += d
                    note("halfclose got " + got.decode("latin-1"))
                    c.sendall(b"echo:" + got + b":bye")
                    c.shutdown(socket.SHUT_WR)
                    time.sleep(0.5)
                    return
                if path.startswith("/flood"):
                    c.sendall(SWITCH)
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
                    return
                if path.startswith("/sink"):
                    c.sendall(SWITCH)
                    time.sleep(60)  # never reads: the client's flood must stop at the gateway
                    return
                body = b"plain"
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        finally:
            c.close()

    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(128)
    while True:
        c, _ = lst.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def raw_client(port, path, extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n" % path)
    s.sendall(req.encode() + extra)
    out = b""
    state = "open"
    try:
        while True:
            d = s.recv(65536)
            if not d:
                state = "closed"
                break
            out += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        state = "reset"
    sys.stdout.write(out.decode("latin-1") + "\n[" + state + "]\n")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "ws-echo":
        ws_echo(int(sys.argv[2]), *sys.argv[3:5])
    elif cmd == "ws-client":
        ws_client(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif cmd == "raw-up":
        raw_up(int(sys.argv[2]), sys.argv[3])
    elif cmd == "raw-client":
        extra = sys.argv[4].encode().decode("unicode_escape").encode("latin-1") \
            if len(sys.argv) > 4 else b""
        raw_client(int(sys.argv[2]), sys.argv[3], extra)
    else:
        sys.exit("unknown command " + cmd)
