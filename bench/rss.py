#!/usr/bin/python3
"""Resident memory of nbdd, nbdkit and qemu-nbd (run through bench/run.sh).

For each server, a fresh process serving a 1 GiB disk on a Unix socket:
  idle        after start-up and one probe connection
  N idle      after N clients (BENCH_RSS_CONNS, default 1000) completed the handshake
              (raw sockets, NBD_OPT_EXPORT_NAME) and stay connected doing nothing
  256 MiB     a second fresh process, after fio wrote the first 256 MiB of the disk
              (qemu-nbd keeps its data in the tmpfs file, i.e. in the page cache, not in its RSS)
Prints VmRSS and the thread count from /proc/PID/status.
"""
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2
OPT_EXPORT_NAME = 1


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_mib(pid):
    st = status(pid)
    return int(st["VmRSS"].split()[0]) / 1024.0, int(st["Threads"])


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed during the handshake")
        buf += chunk
    return buf


def nbd_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    greet = recv_exact(s, 18)
    if greet[:8] != NBDMAGIC or struct.unpack(">Q", greet[8:16])[0] != IHAVEOPT:
        raise ConnectionError("not a newstyle NBD server")
    (sflags,) = struct.unpack(">H", greet[16:18])
    cflags = FLAG_FIXED_NEWSTYLE | (sflags & FLAG_NO_ZEROES)
    s.sendall(struct.pack(">I", cflags) + struct.pack(">QII", IHAVEOPT, OPT_EXPORT_NAME, 0))
    recv_exact(s, 10 if cflags & FLAG_NO_ZEROES else 134)  # size, transmission flags[, zeroes]
    return s


def settle():
    time.sleep(1.0)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    conns = bench.env_int("BENCH_RSS_CONNS", 1000)
    want = min(hard, max(soft, conns + 256)) if hard != resource.RLIM_INFINITY else max(soft, conns + 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the servers inherit it
    if want < conns + 64:
        sys.exit(f"bench: RLIMIT_NOFILE hard limit {hard} is too low for {conns} connections")
    servers = bench.env_list("BENCH_SERVERS", bench.SERVERS)
    cfg = dict(
        nbdd=os.environ.get("NBDD", "nbdd"),
        nbdd_args=os.environ.get("NBDD_ARGS", "").split(),
        nbdkit_args=os.environ.get("NBDKIT_ARGS", "").split(),
        qemu_args=os.environ.get("QEMU_NBD_ARGS", "").split(),
        qemu_shared=conns + 16,
        tmpfs=os.environ.get("BENCH_TMPFS", "/dev/shm"),
    )
    workdir = tempfile.mkdtemp(prefix="nbdd-rss-")
    rows = []
    try:
        for name in servers:
            srv = bench.Server(name, "unix", workdir, cfg)
            srv.start()
            try:
                settle()
                idle = rss_mib(srv.proc.pid)
                t0 = time.monotonic()
                socks = []
                try:
                    for _ in range(conns):
                        socks.append(nbd_connect(srv.sock))
                    opened = time.monotonic() - t0
                    settle()
                    with_conns = rss_mib(srv.proc.pid)
                    err = ""
                except OSError as e:
                    with_conns, opened, err = None, None, f"after {len(socks)} connections: {e}"
                finally:
                    for s in socks:
                        s.close()
            finally:
                srv.stop()
            srv = bench.Server(name, "unix", workdir, cfg)
            srv.start()
            try:
                bench.run_fio(srv.uri(), dict(rw="write", bs="1m", iodepth=4, size="256m"), None, 0)
                settle()
                written = rss_mib(srv.proc.pid)
            finally:
                srv.stop()
            rows.append((name, idle, with_conns, opened, written, err))
            bench.log(f"bench: rss {name}: idle {idle} conns {with_conns} written {written} {err}")
    finally:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"RSS (VmRSS, MiB; threads in parentheses). Each server serves a 1 GiB disk on a Unix socket.")
    print()
    print(f"| server | idle | {conns} idle connections | per connection | after writing 256 MiB |")
    print("|---|--:|--:|--:|--:|")
    for name, idle, wc, opened, written, err in rows:
        if wc:
            per = (wc[0] - idle[0]) * 1024.0 / conns
            conn_cell = f"{wc[0]:.1f} ({wc[1]})"
            per_cell = f"{per:.1f} KiB"
        else:
            conn_cell, per_cell = f"failed: {err}", "-"
        note = " (data in tmpfs)" if name == "qemu-nbd" else ""
        print(f"| {name} | {idle[0]:.1f} ({idle[1]}) | {conn_cell} | {per_cell} | {written[0]:.1f} ({written[1]}){note} |")


if __name__ == "__main__":
    main()
