#!/usr/bin/python3
"""Server syscalls and CPU per request (issue 26); run it through `bench/run.sh syscalls`.

For each transport it starts every server of BENCH_SERVERS (default nbdd,nbdkit; the same
Server class and prefill as bench.py), then for each workload and server runs fio once while
counting the syscalls of every thread of the server process, including threads started
meanwhile (nbdkit starts its threads per connection):

- perf (the default where it works): `perf stat -p PID` on raw_syscalls:sys_enter, once
  unfiltered (every syscall) and once per kind below with a filter on the syscall number
  (`--filter 'id == 45 || ...'`, numbers from the kernel headers), started with its events
  disabled and enabled through its control descriptor just before fio starts, disabled as
  soon as fio exits; fio runs for BENCH_SECONDS. Every per-thread event costs the server on
  each of its context switches, hence one filtered event per kind rather than one per syscall
  name: the server loses about 10-25% of its IOPS while traced (more at depth 1, where it
  switches most). BENCH_SYSCALL_NAMES=1 counts each syscall by name instead
  ('syscalls:sys_enter_*', about 350 events) and names the largest "other" ones, at several
  times the cost (nbdkit at depth 1 then loses 80% of its IOPS).
- strace (BENCH_SYSCALL_TOOL=strace, or when perf cannot count here): `strace -f -c -p PID`.
  strace slows the server by an order of magnitude, so fio runs a fixed number of I/Os per job
  (BENCH_SYSCALL_IOS, number_ios) instead of a time, and the I/Os and CPU it shows are not
  comparable with untraced runs; the syscall counts per request are.

A request is one I/O that fio completed (its total_ios, reads plus writes, all jobs). Syscalls
are grouped: recv (read, readv, recvfrom, recvmsg, recvmmsg), send (write, writev, sendto,
sendmsg, sendmmsg), epoll (epoll_wait, epoll_pwait, epoll_pwait2), futex, io_uring_enter,
sched_yield (nbdd's busy polling), and other (the rest; its three largest are named when counted
by name or by strace). Server CPU per request is the server's
utime+stime (/proc/PID/stat) over the same window divided by the same I/O count, measured
while traced. The last lines check issue 26's target: at most 1 syscall per request at depth 16.
"""
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

DEFAULT_WORKLOADS = ["4k-randread-qd1", "4k-randread-qd16", "4k-randwrite-qd16",
                     "4k-randread-qd16-j4", "4k-randwrite-qd16-j4"]
GROUPS = [
    ("recv", ("read", "readv", "recvfrom", "recvmsg", "recvmmsg")),
    ("send", ("write", "writev", "sendto", "sendmsg", "sendmmsg")),
    ("epoll", ("epoll_wait", "epoll_pwait", "epoll_pwait2")),
    ("futex", ("futex", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue")),
    ("io_uring_enter", ("io_uring_enter",)),
    ("sched_yield", ("sched_yield",)),
]
GROUP_OF = {name: group for group, names in GROUPS for name in names}


def perf_works():
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-e",
                            "syscalls:sys_enter_getpid", "--", "true"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    # counted events print as "N,,raw_syscalls:sys_enter,..."; unusable ones "<not supported>"
    return p.returncode == 0 and any(line.split(",")[0].isdigit() and "raw_syscalls" in line
                                     for line in p.stderr.splitlines())


def syscall_numbers():
    """{name: number} of this machine's syscalls, from the kernel headers (linux-libc-dev), or
    {} when they are not found."""
    arch = platform.machine()
    headers = {"x86_64": ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"],
               "aarch64": ["/usr/include/asm-generic/unistd.h"]}.get(arch, [])
    for path in headers:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"^#define __NR(?:3264)?_(\w+)\s+(\d+)\s*$", text, re.M)}
    return {}


class PerfCounter:
    """perf stat on every thread of pid; counts only between start() and stop(). With numbers
    ({syscall name: number}), one raw_syscalls:sys_enter event per group filtered on its
    numbers; without, one event per syscall name."""
    logged = False

    def __init__(self, pid, workdir, numbers):
        self.out = os.path.join(workdir, f"perf-{pid}.csv")
        ctl_r, self.ctl_w = os.pipe()
        self.ack_r, ack_w = os.pipe()
        events = ["-e", "raw_syscalls:sys_enter"]
        self.groups = []  # the group of each filtered raw_syscalls event after the first
        if numbers:
            for group, names in GROUPS:
                ids = [numbers[n] for n in names if n in numbers]
                if ids:
                    self.groups.append(group)
                    events += ["-e", "raw_syscalls:sys_enter",
                               "--filter", " || ".join(f"id == {i}" for i in ids)]
        else:
            events += ["-e", "syscalls:sys_enter_*"]
        cmd = ["perf", "stat", "-x,", "-D", "-1", f"--control=fd:{ctl_r},{ack_w}", "-o", self.out,
               *events, "-p", str(pid)]
        if not PerfCounter.logged:  # the same command every time, bar the pid
            bench.log(f"bench: {' '.join(cmd)}")
            PerfCounter.logged = True
        self.proc = subprocess.Popen(cmd, pass_fds=(ctl_r, ack_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(ctl_r)
        os.close(ack_w)

    def _command(self, what):
        os.write(self.ctl_w, what + b"\n")
        ready, _, _ = select.select([self.ack_r], [], [], 30)
        if not ready or not os.read(self.ack_r, 64).startswith(b"ack"):
            raise RuntimeError(f"perf stat did not acknowledge '{what.decode()}'")

    def start(self):
        self._command(b"enable")  # acknowledged once perf has attached to every thread

    def stop(self):
        """Returns ({syscall name or group: count}, total)."""
        self._command(b"disable")
        self.close()
        counts, raw = {}, []
        with open(self.out) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) < 3 or line.startswith("#"):
                    continue
                n, event = (int(fields[0]) if fields[0].isdigit() else None), fields[2]
                if event == "raw_syscalls:sys_enter":
                    raw.append(n)  # in the order given: the total, then one per group
                elif event.startswith("syscalls:sys_enter_") and n:
                    counts[event[len("syscalls:sys_enter_"):]] = n
        if len(raw) != 1 + len(self.groups) or None in raw:
            raise RuntimeError(f"perf stat did not count every raw_syscalls event: {self.out}")
        counts.update(zip(self.groups, raw[1:]))
        return counts, raw[0]

    def close(self):
        bench.stop_process(self.proc, signal.SIGINT, 30)
        for fd in (self.ctl_w, self.ack_r):
            try:
                os.close(fd)
            except OSError:
                pass


class StraceCounter:
    """strace -f -c on every thread of pid, from start() to stop()."""

    def __init__(self, pid, workdir):
        self.pid, self.out = pid, os.path.join(workdir, f"strace-{pid}.txt")
        self.proc = None

    def start(self):
        cmd = ["strace", "-f", "-c", "-o", self.out, "-p", str(self.pid)]
        bench.log(f"bench: {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # strace says "Process N attached" per thread on stderr; one line is enough to know
        # it runs, then give it a moment for the remaining threads
        ready, _, _ = select.select([self.proc.stderr], [], [], 30)
        if not ready:
            raise RuntimeError("strace did not attach")
        time.sleep(0.5)

    def stop(self):
        self.close()
        counts = {}
        with open(self.out) as f:
            for line in f:
                fields = line.split()
                # "% time seconds usecs/call calls [errors] syscall"; skip headers and total
                if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                    counts[fields[-1]] = int(fields[3])
        return counts, sum(counts.values())

    def close(self):
        bench.stop_process(self.proc, signal.SIGINT, 30)


def measure(server, opts, tool, numbers, seconds, ios_per_job, workdir):
    pid = server.proc.pid
    counter = PerfCounter(pid, workdir, numbers) if tool == "perf" else StraceCounter(pid, workdir)
    try:
        if tool == "perf":
            args = bench.fio_args(server.uri(), opts, seconds, 0)
        else:
            args = bench.fio_args(server.uri(), opts, None, 0) + [f"--number_ios={ios_per_job}"]
        counter.start()
        c0 = server.cpu()
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        c1 = server.cpu()
        counts, total = counter.stop()
    finally:
        counter.close()
    s = bench.summarize(bench.fio_result(args, p, p.stdout))
    ios = s["ios"]
    per = {group: 0.0 for group, _ in GROUPS}
    others = {}
    for name, n in counts.items():
        if name in per:  # counted per group by perf
            per[name] += n / ios
        elif name in GROUP_OF:
            per[GROUP_OF[name]] += n / ios
        else:
            others[name] = n / ios
    per["total"] = total / ios
    # the rest of the total (perf's unfiltered raw_syscalls; strace's sum), including syscalls
    # without a syscalls:sys_enter_* event
    per["other"] = per["total"] - sum(per[g] for g, _ in GROUPS)
    top = sorted(others.items(), key=lambda kv: -kv[1])[:3]
    return dict(ios=ios, iops=s["iops"], cpu_us_per_io=(c1 - c0) * 1e6 / ios, per=per,
                top=[(k, v) for k, v in top if v >= 0.005])


def main():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    seconds = bench.env_int("BENCH_SECONDS", 2 if quick else 3)
    ios_per_job = bench.env_int("BENCH_SYSCALL_IOS", 20000)
    runs = bench.env_int("BENCH_RUNS", 1)
    servers = bench.env_list("BENCH_SERVERS", ["nbdd", "nbdkit"])
    transports = bench.env_list("BENCH_TRANSPORTS", bench.TRANSPORTS)
    workloads = bench.env_list("BENCH_SYSCALL_WORKLOADS", DEFAULT_WORKLOADS)
    for w in workloads:
        if w not in bench.WORKLOADS:
            sys.exit(f"bench: unknown workload {w}; known: {', '.join(bench.WORKLOADS)}")
    tool = os.environ.get("BENCH_SYSCALL_TOOL", "")
    if tool == "":
        tool = "perf" if perf_works() else "strace"
    if tool not in ("perf", "strace"):
        sys.exit(f"bench: BENCH_SYSCALL_TOOL={tool}: perf or strace")
    if tool == "strace" and not shutil.which("strace"):
        sys.exit("bench: perf cannot count syscalls here and strace is missing (apt-get install strace)")
    by_name = os.environ.get("BENCH_SYSCALL_NAMES", "") not in ("", "0")
    numbers = {} if by_name or tool != "perf" else syscall_numbers()
    cfg = bench.server_config(servers)
    length = f"{seconds} s" if tool == "perf" else f"{ios_per_job} I/Os per job"
    bench.log(f"bench: syscalls by {tool}, {runs} run(s) x {length}, servers={','.join(servers)} "
              f"transports={','.join(transports)} workloads={','.join(workloads)}")
    load_start = bench.load_average()

    results = {}  # (workload, transport, server) -> [measurement per run]
    workdir = tempfile.mkdtemp(prefix="nbdd-bench-sys-")
    with bench.serving(servers, transports, cfg, workdir) as per_transport:
        for transport, live in per_transport:
            for r in range(runs):
                for w in workloads:
                    for name in servers:
                        m = measure(live[name], bench.WORKLOADS[w], tool, numbers, seconds, ios_per_job,
                                    workdir)
                        results.setdefault((w, transport, name), []).append(m)
                        bench.log(f"bench: {w:22s} {transport:4s} {name:8s} {m['ios']:8d} I/Os "
                                  f"{m['per']['total']:.2f} syscalls/IO {m['cpu_us_per_io']:.2f} us CPU/IO")
    load_end = bench.load_average()

    def med(lst, f):
        return statistics.median(f(m) for m in lst)

    base_name = "nbdd" if "nbdd" in servers else servers[0]
    if tool == "strace":
        how = "strace -f -c -p PID (the server runs far slower: IOPS and CPU are not comparable)"
    elif numbers:
        how = "perf stat -p PID, raw_syscalls:sys_enter filtered by syscall numbers per kind"
    else:
        how = "perf stat -p PID -e 'syscalls:sys_enter_*' (by name: the server runs much slower)"
    print(f"Machine: {bench.machine_info()}; load average {load_start} at start, {load_end} at end.")
    print(f"Server syscalls per request (fio's completed I/Os), every thread, by {how}; "
          f"{'median (min-max) of ' + str(runs) + ' runs' if runs > 1 else '1 run'} x {length}. "
          "recv: read/readv/recvfrom/recvmsg/recvmmsg; send: write/writev/sendto/sendmsg/sendmmsg; "
          "epoll: epoll_wait/epoll_pwait/epoll_pwait2. IOPS and server CPU us/IO are measured while traced. "
          f"Ratios are {base_name} / peer (<1 is better).")
    print()
    groups = [g for g, _ in GROUPS]
    print(f"| workload | transport | server | I/Os | IOPS | syscalls/IO | {' | '.join(groups)} | other "
          f"| largest other | server CPU us/IO | {base_name}/peer syscalls | {base_name}/peer CPU |")
    print("|---|---|---|--:|--:|--:|" + "--:|" * len(groups) + "--:|---|--:|--:|--:|")
    for w in workloads:
        for t in transports:
            base = results.get((w, t, base_name))
            for name in servers:
                lst = results.get((w, t, name))
                if not lst:
                    continue
                total = med(lst, lambda m: m["per"]["total"])
                # batching makes the count depend on timing (and on the machine's load): show
                # the spread over the runs
                totals = [m["per"]["total"] for m in lst]
                spread = f" ({min(totals):.2f}-{max(totals):.2f})" if len(lst) > 1 else ""
                cpu = med(lst, lambda m: m["cpu_us_per_io"])
                cells = " | ".join(f"{med(lst, lambda m, g=g: m['per'][g]):.2f}" for g in groups + ["other"])
                top = ", ".join(f"{k} {v:.2f}" for k, v in lst[len(lst) // 2]["top"])
                ratio = ("", "")
                if base and name != base_name:
                    ratio = (f"{med(base, lambda m: m['per']['total']) / total:.2f}x" if total else "-",
                             f"{med(base, lambda m: m['cpu_us_per_io']) / cpu:.2f}x" if cpu else "-")
                print(f"| {w} | {t} | {name} | {med(lst, lambda m: m['ios']):.0f} | "
                      f"{bench.fmt_num(med(lst, lambda m: m['iops']))} | {total:.2f}{spread} | {cells} | {top} | "
                      f"{cpu:.2f} | {ratio[0]} | {ratio[1]} |")

    if "nbdd" in servers:
        rows = [(w, t) for w in workloads for t in transports if "-qd16" in w and (w, t, "nbdd") in results]
        if rows:
            print()
            print("Target (issue 26): at most 1 syscall per request at depth 16 (nbdd):")
            fails = 0
            for w, t in rows:
                got = med(results[(w, t, "nbdd")], lambda m: m["per"]["total"])
                fails += got > 1.0
                print(f"- {'PASS' if got <= 1.0 else 'FAIL'} {w} {t}: {got:.2f} syscalls/IO")
            print(f"\n{len(rows) - fails}/{len(rows)} targets met.")


if __name__ == "__main__":
    main()
