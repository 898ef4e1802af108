#!/usr/bin/python3
"""Connections per second: nbdd next to nbdkit (run through `bench/run.sh cps`).

Each server serves `memory 1G` on a Unix socket (the same Server class as bench.py). The
client is bench/cps.cpp (CPS=path, built by run.sh): each connection is a handshake
(NBD_OPT_GO of the default export), one 4 KiB read and NBD_CMD_DISC, then the client waits for
the server to close. For each number of parallel clients (BENCH_CPS_CLIENTS, default 1,4) and
each of BENCH_RUNS rounds (default 3) every server gets BENCH_CPS_SECONDS (default 5) in turn,
the order rotating per round. The table shows medians of connections per second and of the
server's CPU time per connection (utime+stime of every thread, /proc/PID/stat), and the
ratio of the first server (nbdd) to each other one.
"""
import os
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def measure(cps, srv, seconds, clients):
    cpu0 = srv.cpu()
    out = subprocess.run([cps, srv.sock, str(seconds), str(clients)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=True).stdout
    cpu = srv.cpu() - cpu0
    fields = dict(kv.split("=") for kv in out.split())
    conns, errors, took = int(fields["connections"]), int(fields["errors"]), float(fields["seconds"])
    if errors or conns == 0:
        raise RuntimeError(f"{srv.name}: {errors} failed connections of {conns + errors}: {out}")
    return dict(cps=conns / took, cpu_us=cpu / conns * 1e6, conns=conns)


def main():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    runs = bench.env_int("BENCH_RUNS", 1 if quick else 3)
    seconds = bench.env_float("BENCH_CPS_SECONDS", 2 if quick else 5)
    clients_list = [int(c) for c in bench.env_list("BENCH_CPS_CLIENTS", ["1", "4"])]
    servers = bench.env_list("BENCH_SERVERS", ["nbdd", "nbdkit"])
    cps = os.environ["CPS"]
    cfg = bench.server_config(servers)
    bench.log(f"bench: cps runs={runs} seconds={seconds} clients={clients_list} servers={','.join(servers)}")
    workdir = tempfile.mkdtemp(prefix="nbdd-cps-")
    live = {}
    results = {}  # (clients, server) -> [measurement per run]
    try:
        for name in servers:
            srv = bench.Server(name, "unix", workdir, cfg)
            live[name] = srv
            srv.start()
        for clients in clients_list:
            for run in range(runs):
                k = run % len(servers)
                for name in servers[k:] + servers[:k]:
                    m = measure(cps, live[name], seconds, clients)
                    bench.log(f"bench: clients={clients} run={run + 1} {name}: {m['cps']:.0f} conn/s, "
                              f"{m['cpu_us']:.0f} us CPU/conn")
                    results.setdefault((clients, name), []).append(m)
    finally:
        for srv in live.values():
            srv.stop()
        for f in os.listdir(workdir):
            os.unlink(os.path.join(workdir, f))
        os.rmdir(workdir)

    first = servers[0]
    head = "| clients | server | conn/s | server CPU µs/conn |"
    rule = "|---|---|---|---|"
    for other in servers[1:]:
        head += f" {first}/{other} conn/s | {first}/{other} CPU |"
        rule += "---|---|"
    print(f"Connections per second (Unix socket; handshake + one 4 KiB read + DISC; medians of {runs} x {seconds} s)")
    print()
    print(head)
    print(rule)
    for clients in clients_list:
        med = {name: {key: statistics.median(m[key] for m in results[(clients, name)]) for key in ("cps", "cpu_us")}
               for name in servers}
        for name in servers:
            row = f"| {clients} | {name} | {med[name]['cps']:.0f} | {med[name]['cpu_us']:.0f} |"
            for other in servers[1:]:
                if name == first:
                    row += f" {med[first]['cps'] / med[other]['cps']:.2f}x | {med[first]['cpu_us'] / med[other]['cpu_us']:.2f}x |"
                else:
                    row += " | |"
            print(row)


if __name__ == "__main__":
    main()
