#!/usr/bin/python3
"""nbdd's resident memory after bursts of load (issue 27, "memory after load").

Starts nbdd (NBDD, default build/default/nbdd) serving `memory 1G` on a Unix socket, then
runs ROUNDS (BENCH_RSS_ROUNDS, default 8) bursts of CONNS (BENCH_RSS_CONNS, default 1000)
concurrent connections: every one connects, completes the handshake (NBD_OPT_GO), sends one
read of READ bytes (BENCH_RSS_READ, default 65536) at its own offset, reads the reply, and
closes. After each round (once nbdd has seen every connection end) it prints VmRSS from
/proc/PID/status. Memory is given back when the last line is close to the first one.

    bench/rss_rounds.py [nbdd-binary] [extra nbdd options...]
"""
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
OPT_GO = 7
REP_MAGIC = 0x3E889045565A9
REP_ACK = 1
REQ_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698
CMD_READ = 0


def env_int(name, default):
    return int(os.environ.get(name, default))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return bytes(buf)


def burst(path, conns, read_bytes):
    socks = []
    for _ in range(conns):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
        socks.append(s)
    for s in socks:  # greeting, then GO for the default export
        recv_exact(s, 18)
        s.sendall(struct.pack(">I", 3) + struct.pack(">QIII", IHAVEOPT, OPT_GO, 6, 0) + struct.pack(">H", 0))
    for s in socks:  # option replies until ACK
        while True:
            magic, _opt, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
            if magic != REP_MAGIC:
                raise ConnectionError("bad option reply")
            recv_exact(s, length)
            if rtype == REP_ACK:
                break
            if rtype & 0x80000000:
                raise ConnectionError(f"GO refused: {rtype:#x}")
    for i, s in enumerate(socks):
        offset = (i * read_bytes) % (1 << 30)
        s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, i, offset, read_bytes))
    for s in socks:
        magic, err, _cookie = struct.unpack(">IIQ", recv_exact(s, 16))
        if magic != REPLY_MAGIC or err != 0:
            raise ConnectionError("bad read reply")
        recv_exact(s, read_bytes)
    for s in socks:
        s.close()


def wait_for_log(path, text, count, limit=30.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        with open(path) as f:
            if f.read().count(text) >= count:
                return True
        time.sleep(0.05)
    return False


def main():
    nbdd = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NBDD", "build/default/nbdd")
    extra = sys.argv[2:]
    rounds = env_int("BENCH_RSS_ROUNDS", 8)
    conns = env_int("BENCH_RSS_CONNS", 1000)
    read_bytes = env_int("BENCH_RSS_READ", 65536)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, conns + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "nbd.sock")
        err_path = os.path.join(tmp, "nbdd.stderr")
        with open(err_path, "w") as err:
            proc = subprocess.Popen([nbdd, "-f", "-v", "-U", sock, *extra, "memory", "1G"],
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            while not os.path.exists(sock):
                time.sleep(0.02)
            time.sleep(0.2)
            print(f"idle            {rss_kib(proc.pid) / 1024:7.1f} MiB")
            for r in range(1, rounds + 1):
                t0 = time.monotonic()
                burst(sock, conns, read_bytes)
                # -v logs " end reason=" once per finished connection
                if not wait_for_log(err_path, " end reason=", r * conns):
                    sys.exit("nbdd did not finish every connection")
                time.sleep(0.3)
                print(f"after round {r}   {rss_kib(proc.pid) / 1024:7.1f} MiB   ({time.monotonic() - t0:.1f} s)",
                      flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
            with open(err_path) as f:
                trims = [line.strip() for line in f if "memory given back" in line]
            if trims:
                print(f"{len(trims)} trims; the last: {trims[-1]}")


if __name__ == "__main__":
    main()
