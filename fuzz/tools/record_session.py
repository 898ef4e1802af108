#!/usr/bin/python3
"""Record what real NBD clients send: a TCP proxy that logs the client->server direction.

    fuzz/tools/record_session.py --listen 10810 --upstream 127.0.0.1:10809 --out DIR

Every accepted connection is forwarded to the upstream server (nbdd, or any NBD server);
the client's bytes are written to DIR/<n>.segs as a list of segments, one per recv()
(u32 big-endian length, then the bytes). A segment boundary is where the client waited for
the server, so tools/make_seeds.py turns each boundary into a "let the server answer" step.
Stops after --count connections (default: run until killed).
"""
import argparse
import os
import selectors
import socket
import struct
import sys
import threading


def serve_one(client: socket.socket, upstream: tuple, path: str) -> None:
    server = socket.create_connection(upstream)
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, "c")
    sel.register(server, selectors.EVENT_READ, "s")
    open_ends = 2
    with open(path, "wb") as log:
        while open_ends:
            for key, _ in sel.select():
                src = key.fileobj
                dst = server if key.data == "c" else client
                try:
                    data = src.recv(1 << 20)
                except ConnectionError:
                    data = b""
                if not data:
                    sel.unregister(src)
                    open_ends -= 1
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                if key.data == "c":
                    log.write(struct.pack(">I", len(data)) + data)
                    log.flush()
                try:
                    dst.sendall(data)
                except OSError:
                    pass
    client.close()
    server.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="host:port of the NBD server")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--prefix", default="session")
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    os.makedirs(args.out, exist_ok=True)
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", args.listen))
    lst.listen(8)
    n = 0
    threads = []
    while args.count == 0 or n < args.count:
        client, _ = lst.accept()  # one thread per client: nbdcopy/qemu open several at once
        n += 1
        path = os.path.join(args.out, f"{args.prefix}-{n:03d}.segs")
        t = threading.Thread(target=serve_one, args=(client, (host, int(port)), path))
        t.start()
        threads.append(t)
        print(f"record_session: recording {path}", file=sys.stderr)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
