#!/usr/bin/python3
"""Side-by-side NBD server benchmark: nbdd vs nbdkit vs qemu-nbd.

Run it through bench/run.sh (which sets PATH, finds or builds nbdd and checks the tools).
Every knob is an environment variable; see bench/README.md.

For each transport (Unix socket, TCP loopback) it starts the three servers, each serving a
1 GiB disk (nbdd `memory 1G`, nbdkit `memory 1G`, qemu-nbd over a 1 GiB file in tmpfs),
prefills every disk with a full sequential write, then runs every workload BENCH_RUNS times,
rotating the order of the servers on each (run, workload) so that machine noise is spread
over all of them. For each measurement it records fio's IOPS, bandwidth, mean and p99
completion latency, and the server's CPU time (utime+stime of /proc/PID/stat, all threads)
across the fio run, per GiB moved and per completed I/O. It prints the machine (CPU model,
kernel, nproc, load average at start and end) and medians per (workload, transport, server)
with nbdd's ratio to each peer, then checks the targets of issues 8 and 26.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GiB = 1 << 30
MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def env_float(name, default):
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


def env_list(name, default):
    v = os.environ.get(name)
    if v in (None, ""):
        return list(default)
    return [x.strip() for x in v.split(",") if x.strip()]


# name: fio options. "conns" is the number of NBD connections (fio numjobs, one connection each).
WORKLOADS = {
    "4k-randread-qd1": dict(rw="randread", bs="4k", iodepth=1),
    "4k-randread-qd16": dict(rw="randread", bs="4k", iodepth=16),
    "4k-randwrite-qd1": dict(rw="randwrite", bs="4k", iodepth=1),
    "4k-randwrite-qd16": dict(rw="randwrite", bs="4k", iodepth=16),
    "64k-randrw70-qd16": dict(rw="randrw", rwmixread=70, bs="64k", iodepth=16),
    "1m-read-qd4": dict(rw="read", bs="1m", iodepth=4),
    "1m-write-qd4": dict(rw="write", bs="1m", iodepth=4),
    "4k-randread-8conn-qd4": dict(rw="randread", bs="4k", iodepth=4, numjobs=8),
    "4k-randwrite-8conn-qd4": dict(rw="randwrite", bs="4k", iodepth=4, numjobs=8),
    # several fio jobs at depth 16 each, so that on 2 cores the server runs out of CPU before
    # fio does (issue 26)
    "4k-randread-qd16-j4": dict(rw="randread", bs="4k", iodepth=16, numjobs=4),
    "4k-randwrite-qd16-j4": dict(rw="randwrite", bs="4k", iodepth=16, numjobs=4),
}
SERVERS = ["nbdd", "nbdkit", "qemu-nbd"]
# "nbdd-b" is a second nbdd binary (NBDD_B, NBDD_B_ARGS) for A/B runs of a fix:
# BENCH_SERVERS=nbdd,nbdd-b,nbdkit NBDD_B=/path/to/patched/nbdd bench/run.sh table
# "nbdd-hosted" is nbdd hosting an nbdkit plugin .so (BENCH_PLUGIN, default nbdkit's own memory
# plugin) through its nbdkit ABI adaptor (issue 23); nbdkit then serves the same .so:
# BENCH_SERVERS=nbdd-hosted,nbdkit BENCH_TRANSPORTS=unix bench/run.sh table
KNOWN_SERVERS = SERVERS + ["nbdd-b", "nbdd-hosted"]
TRANSPORTS = ["unix", "tcp"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine_info():
    """CPU model (lscpu), nproc and kernel, so that tables from different machines are told
    apart."""
    model = ""
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                      if line.startswith("Model name:")), "")
    except OSError:
        pass
    return (f"CPU {model or 'unknown'}, nproc {len(os.sched_getaffinity(0))}, "
            f"kernel {os.uname().release}")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_seconds(pid):
    """utime+stime of the whole process (every thread, including those already exited)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_ctx_switches(pid):
    """Voluntary + involuntary context switches summed over the live threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches:" in line:  # voluntary_... and nonvoluntary_...
                        total += int(line.split()[1])
        except OSError:
            pass  # the thread ended meanwhile
    return total


def wait_connectable(kind, addr, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            if kind == "unix":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(1)
                s.connect(addr)
            else:
                s = socket.create_connection(("127.0.0.1", addr), timeout=1)
            # read the greeting so the server does not log a premature disconnect as an error
            s.recv(18)
            s.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {addr} in {timeout} s")


class Server:
    """One server process serving a 1 GiB disk on one transport."""
    serial = 0

    def __init__(self, name, transport, workdir, cfg):
        self.name, self.transport, self.workdir, self.cfg = name, transport, workdir, cfg
        self.proc = None
        self.image = None
        Server.serial += 1
        self.tag = f"{name}-{transport}-{Server.serial}"
        self.sock = os.path.join(workdir, f"{self.tag}.sock")
        self.port = None

    def uri(self):
        # BENCH_TLS (bench/tls.sh): nbds, the client certificates from $HOME/.pki/libnbd
        scheme = "nbds" if self.cfg["tls"] else "nbd"
        if self.transport == "unix":
            return f"{scheme}+unix:///?socket={self.sock}"
        return f"{scheme}://127.0.0.1:{self.port}/"

    def command(self):
        if self.transport == "unix":
            where_nbdkit = ["-U", self.sock]
        else:
            self.port = free_port()
            where_nbdkit = ["-i", "127.0.0.1", "-p", str(self.port)]
        if self.cfg["tls"]:  # the same certificate directory for every server (nbdkit's layout)
            tls_dir = os.path.join(self.cfg["tls"], "server")
            where_nbdkit += ["--tls=require", f"--tls-certificates={tls_dir}"]
        if self.name == "nbdd":
            return [self.cfg["nbdd"], "-f", *self.cfg["nbdd_args"], *where_nbdkit, "memory", "1G"]
        if self.name == "nbdd-hosted":
            return [self.cfg["nbdd"], "-f", *self.cfg["nbdd_args"], *where_nbdkit, self.cfg["plugin"], "1G"]
        if self.name == "nbdd-b":
            return [self.cfg["nbdd_b"], "-f", *self.cfg["nbdd_b_args"], *where_nbdkit, "memory", "1G"]
        if self.name == "nbdkit":
            return ["nbdkit", "-f", *self.cfg["nbdkit_args"], *where_nbdkit, self.cfg["nbdkit_plugin"], "1G"]
        if self.name == "qemu-nbd":
            self.image = os.path.join(self.cfg["tmpfs"], f"nbdd-bench-{os.getpid()}-{self.transport}.img")
            with open(self.image, "wb") as f:
                f.truncate(GiB)
            where = ["-k", self.sock] if self.transport == "unix" else ["-b", "127.0.0.1", "-p", str(self.port)]
            if self.cfg["tls"]:
                where += ["--object", f"tls-creds-x509,id=tls0,dir={self.cfg['tls']}/server,endpoint=server",
                          "--tls-creds=tls0"]
            # -t: keep serving after the last client; -e: allow the 8-connection workloads
            shared = str(self.cfg.get("qemu_shared", 64))
            return ["qemu-nbd", "-t", "-e", shared, "-f", "raw", *self.cfg["qemu_args"], *where, self.image]
        raise ValueError(self.name)

    def start(self):
        cmd = self.command()
        log(f"bench: start {' '.join(cmd)}")
        logpath = os.path.join(self.workdir, f"{self.tag}.log")
        self.errlog = open(logpath, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.errlog, stderr=self.errlog)
        try:
            wait_connectable(self.transport, self.sock if self.transport == "unix" else self.port, self.proc)
        except RuntimeError as e:
            with open(logpath, errors="replace") as f:
                raise RuntimeError(f"{self.name}: {e}; its output:\n{f.read()[-2000:]}") from None

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def ctx_switches(self):
        return proc_ctx_switches(self.proc.pid)

    def stop(self):
        stop_process(self.proc, signal.SIGTERM, 5)
        if self.image and os.path.exists(self.image):
            os.unlink(self.image)
        if hasattr(self, "errlog"):
            self.errlog.close()


def stop_process(proc, sig, timeout):
    """Sends sig to proc if it still runs, waits up to timeout seconds, then kills it."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serving(servers, transports, cfg, workdir):
    """Yields an iterator of (transport, {name: Server}): per transport every server started
    and prefilled, and stopped once the caller moves on. On the way out, however it is left,
    every server still running is stopped and workdir removed."""
    started = []

    def per_transport():
        for transport in transports:
            live = {}
            for name in servers:
                srv = Server(name, transport, workdir, cfg)
                started.append(srv)
                srv.start()
                live[name] = srv
            for srv in live.values():
                prefill(srv)
            yield transport, live
            for srv in live.values():
                srv.stop()

    try:
        yield per_transport()
    finally:
        for srv in started:
            try:
                srv.stop()
            except Exception as e:  # keep cleaning up the others
                log(f"bench: stopping {srv.name}: {e}")
        shutil.rmtree(workdir, ignore_errors=True)


def fio_args(uri, opts, seconds, ramp):
    args = ["fio", "--name=bench", "--ioengine=nbd", f"--uri={uri}", "--output-format=json+",
            "--group_reporting=1", "--norandommap=1", "--randrepeat=0", "--thread=1"]
    if seconds is not None:
        args += ["--time_based=1", f"--runtime={seconds}"]
        if ramp:
            args.append(f"--ramp_time={ramp}")
    for k, v in opts.items():
        args.append(f"--{k}={v}")
    return args


def fio_result(args, p, out):
    if p.returncode != 0:
        raise RuntimeError(f"fio failed ({p.returncode}): {' '.join(args)}\n{out[-3000:]}")
    out = out[out.index("{"):]  # fio may print notes before the JSON
    return json.loads(out)


def run_fio(uri, opts, seconds, ramp):
    args = fio_args(uri, opts, seconds, ramp)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return fio_result(args, p, p.stdout)


def merged_percentile(bins_list, q):
    """Percentile q (0..100) over several fio clat_ns bin maps {ns: count}."""
    merged = {}
    for bins in bins_list:
        for k, c in bins.items():
            merged[int(k)] = merged.get(int(k), 0) + c
    total = sum(merged.values())
    if total == 0:
        return 0.0
    want = total * q / 100.0
    acc = 0
    for k in sorted(merged):
        acc += merged[k]
        if acc >= want:
            return float(k)
    return float(max(merged))


def summarize(fio_json):
    job = fio_json["jobs"][0]
    ios = 0
    iops = 0.0
    bw = 0.0
    lat_sum = 0.0
    bins = []
    p99s = []
    for d in ("read", "write"):
        s = job[d]
        n = s["total_ios"]
        if n == 0:
            continue
        ios += n
        iops += s["iops"]
        bw += s["bw_bytes"]
        lat_sum += s["clat_ns"]["mean"] * n
        if "bins" in s["clat_ns"]:
            bins.append(s["clat_ns"]["bins"])
        p99s.append(s["clat_ns"]["percentile"]["99.000000"])
    if ios == 0:
        raise RuntimeError("fio did no I/O")
    p99 = merged_percentile(bins, 99.0) if bins else max(p99s)
    bytes_moved = (job["read"]["io_bytes"] + job["write"]["io_bytes"])
    return dict(iops=iops, mibs=bw / MiB, lat_mean_us=lat_sum / ios / 1000.0, lat_p99_us=p99 / 1000.0,
                bytes=bytes_moved, ios=ios)


def prefill(server):
    t = time.monotonic()
    run_fio(server.uri(), dict(rw="write", bs="1m", iodepth=4, size="1g"), None, 0)
    log(f"bench: prefilled {server.name}/{server.transport} (1 GiB) in {time.monotonic() - t:.1f} s")


def measure(server, wl_opts, seconds, ramp):
    """One fio run. The server's CPU is read after the ramp (fio's io_bytes exclude the ramp
    too) and when fio has exited. Context switches are sampled while fio runs (per-connection
    threads of nbdkit take their counts with them when they exit), over [ramp+0.25 s,
    ramp+seconds-0.25 s], and divided by fio's mean IOPS times that interval."""
    args = fio_args(server.uri(), wl_opts, seconds, ramp)
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True)
        c0 = server.cpu()
        if ramp:
            time.sleep(ramp)
            c0 = server.cpu()
        x0 = x1 = None
        if seconds > 1:
            time.sleep(0.25)
            x0, tx0 = server.ctx_switches(), time.monotonic()
            time.sleep(max(0.0, seconds - 0.5))
            x1, tx1 = server.ctx_switches(), time.monotonic()
        p.wait()
        c1 = server.cpu()
        wall = time.monotonic() - t0
        out.seek(0)
        j = fio_result(args, p, out.read())
    s = summarize(j)
    s["cpu_s"] = c1 - c0
    s["cpu_per_gib"] = s["cpu_s"] / (s["bytes"] / GiB) if s["bytes"] else float("nan")
    # fio's total_ios, like its io_bytes, exclude the ramp: the same window as the CPU time
    s["cpu_us_per_io"] = s["cpu_s"] * 1e6 / s["ios"]
    s["ctx_per_io"] = (x1 - x0) / (s["iops"] * (tx1 - tx0)) if x0 is not None and s["iops"] else float("nan")
    s["wall"] = wall
    return s


def fmt_num(x):
    if x >= 100000:
        return f"{x / 1000:.0f}k"
    if x >= 10000:
        return f"{x / 1000:.1f}k"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"



def server_config(servers):
    """Checks the BENCH_SERVERS names and returns what Server needs to start each of them
    (shared by the table and by cps.py)."""
    for s in servers:
        if s not in KNOWN_SERVERS:
            sys.exit(f"bench: unknown server {s}; known: {', '.join(KNOWN_SERVERS)}")
    if "nbdd-b" in servers and not os.environ.get("NBDD_B"):
        sys.exit("bench: server nbdd-b needs NBDD_B=/path/to/nbdd")
    plugin = os.environ.get("BENCH_PLUGIN", "")
    if not plugin and "nbdd-hosted" in servers:
        plugindir = subprocess.run(["pkg-config", "--variable=plugindir", "nbdkit"], stdout=subprocess.PIPE,
                                   text=True, check=True).stdout.strip()
        plugin = os.path.join(plugindir, "nbdkit-memory-plugin.so")
    return dict(
        plugin=plugin,
        # with nbdd-hosted (or BENCH_PLUGIN), nbdkit serves the very same .so, by path
        nbdkit_plugin=plugin or "memory",
        nbdd=os.environ.get("NBDD", "nbdd"),
        nbdd_args=os.environ.get("NBDD_ARGS", "").split(),
        nbdd_b=os.environ.get("NBDD_B", ""),
        nbdd_b_args=os.environ.get("NBDD_B_ARGS", "").split(),
        nbdkit_args=os.environ.get("NBDKIT_ARGS", "").split(),
        qemu_args=os.environ.get("QEMU_NBD_ARGS", "").split(),
        tmpfs=os.environ.get("BENCH_TMPFS", "/dev/shm"),
        # BENCH_TLS=DIR (set by bench/tls.sh): DIR/server holds the server certificates
        tls=os.environ.get("BENCH_TLS", ""),
    )

def print_issue26_targets(results, med, workloads, transports):
    """The targets of issue 26 that this table can check (its syscall target is checked by
    bench/syscalls.py): every 4 KiB row >= 1.5x nbdkit's IOPS; server CPU per 4 KiB request at
    depth 16 <= 0.6x nbdkit's; depth-1 CPU per GiB <= nbdkit's; 1 MiB rows >= 1.2x nbdkit's
    MiB/s with lower CPU per GiB. Each line shows the ratio of medians (which decides) and the
    ratio of each round (whose servers ran back to back)."""
    checks = []  # (text, nbdd/nbdkit ratio, "min", "max" or "below", bound, per-round ratios)
    for t in transports:
        for w in workloads:
            a, b = med.get((w, t, "nbdd")), med.get((w, t, "nbdkit"))
            if not a or not b:
                continue

            def add(metric, label, kind, bound):
                if a[metric] > 0 and b[metric] > 0:
                    rounds = [x[metric] / y[metric] for x, y in zip(results[(w, t, "nbdd")],
                                                                    results[(w, t, "nbdkit")])
                              if x[metric] > 0 and y[metric] > 0]
                    checks.append((f"{w} {t}: {label}", a[metric] / b[metric], kind, bound, rounds))

            if w.startswith("4k-"):
                add("iops", "IOPS >= 1.5x nbdkit", "min", 1.5)
            if w.startswith("4k-") and ("-qd16" in w):
                add("cpu_us_per_io", "server CPU/IO <= 0.6x nbdkit", "max", 0.6)
            if w.startswith("4k-") and w.endswith("-qd1"):
                add("cpu_per_gib", "CPU/GiB <= nbdkit", "max", 1.0)
            if w.startswith("1m-"):
                add("mibs", "MiB/s >= 1.2x nbdkit", "min", 1.2)
                add("cpu_per_gib", "CPU/GiB < nbdkit", "below", 1.0)
    if not checks:
        return
    print()
    print("Targets (issue 26; nbdd/nbdkit):")
    fails = 0
    for text, got, kind, bound, rounds in checks:
        ok = {"min": got >= bound, "max": got <= bound, "below": got < bound}[kind]
        fails += not ok
        paired = ", ".join(f"{x:.2f}" for x in rounds)
        print(f"- {'PASS' if ok else 'FAIL'} {text}: {got:.2f}x (per round: {paired})")
    print(f"\n{len(checks) - fails}/{len(checks)} targets met.")


def main():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    runs = env_int("BENCH_RUNS", 1 if quick else 3)
    seconds = env_int("BENCH_SECONDS", 2 if quick else 10)
    ramp = env_int("BENCH_RAMP", 0 if quick else 1)
    servers = env_list("BENCH_SERVERS", SERVERS)
    transports = env_list("BENCH_TRANSPORTS", TRANSPORTS)
    workloads = env_list("BENCH_WORKLOADS", WORKLOADS.keys())
    for w in workloads:
        if w not in WORKLOADS:
            sys.exit(f"bench: unknown workload {w}; known: {', '.join(WORKLOADS)}")
    cfg = server_config(servers)
    out_json = os.environ.get("BENCH_JSON", "")
    log(f"bench: runs={runs} seconds={seconds} ramp={ramp} servers={','.join(servers)} "
        f"transports={','.join(transports)} workloads={len(workloads)}")
    # plus about 0.3 s per measurement for fio's start-up and exit
    est = int(runs * (seconds + ramp + 0.3) * len(workloads) * len(servers) * len(transports))
    log(f"bench: this will take about {est // 60} min {est % 60} s")
    load_start = load_average()

    results = {}  # (workload, transport, server) -> [summary per run]
    workdir = tempfile.mkdtemp(prefix="nbdd-bench-")
    with serving(servers, transports, cfg, workdir) as per_transport:
        for transport, live in per_transport:
            for r in range(runs):
                for wi, w in enumerate(workloads):
                    k = (r + wi) % len(servers)
                    order = servers[k:] + servers[:k]  # rotate the order run by run
                    for name in order:
                        s = measure(live[name], WORKLOADS[w], seconds, ramp)
                        results.setdefault((w, transport, name), []).append(s)
                        log(f"bench: run {r + 1}/{runs} {w:24s} {transport:4s} {name:8s} "
                            f"{s['iops']:10.0f} IOPS {s['mibs']:8.1f} MiB/s "
                            f"mean {s['lat_mean_us']:8.1f} us p99 {s['lat_p99_us']:8.1f} us "
                            f"cpu {s['cpu_per_gib']:.3f} s/GiB {s['cpu_us_per_io']:.2f} us/io "
                            f"ctx/io {s['ctx_per_io']:.2f}")

    load_end = load_average()
    med = {}
    for key, lst in results.items():
        med[key] = {m: statistics.median(x[m] for x in lst)
                    for m in ("iops", "mibs", "lat_mean_us", "lat_p99_us", "cpu_per_gib", "cpu_us_per_io",
                              "ctx_per_io")}
    machine = machine_info()
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"runs": runs, "seconds": seconds, "ramp": ramp, "machine": machine,
                       "load_start": load_start, "load_end": load_end,
                       "raw": {"|".join(k): v for k, v in results.items()},
                       "median": {"|".join(k): v for k, v in med.items()}}, f, indent=1)

    # the server every other one is compared with: nbdd-hosted if measured (issue 23's rows),
    # else nbdd, else the first listed
    base_name = next((n for n in ("nbdd-hosted", "nbdd") if n in servers), servers[0])
    if cfg["plugin"]:
        print(f"nbdd-hosted and nbdkit serve {cfg['plugin']} 1G.")
    print(f"Machine: {machine}; load average {load_start} at start, {load_end} at end.")
    print(f"Medians of {runs} run(s) x {seconds} s (ramp {ramp} s). "
          f"Ratios are {base_name} / peer: >1 is better for IOPS and MiB/s, <1 is better for latency and CPU.")
    print()
    print("| workload | transport | server | IOPS | MiB/s | mean lat us | p99 lat us | server CPU s/GiB "
          f"| server CPU us/IO | {base_name}/peer IOPS | {base_name}/peer p99 | {base_name}/peer CPU/GiB "
          f"| {base_name}/peer CPU/IO | server ctx sw/IO |")
    print("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for w in workloads:
        for t in transports:
            base = med.get((w, t, base_name))
            for name in servers:
                m = med.get((w, t, name))
                if m is None:
                    continue
                if base is not None and name != base_name:
                    ratio = (f"{base['iops'] / m['iops']:.2f}x", f"{base['lat_p99_us'] / m['lat_p99_us']:.2f}x",
                             f"{base['cpu_per_gib'] / m['cpu_per_gib']:.2f}x" if m["cpu_per_gib"] > 0 else "-",
                             f"{base['cpu_us_per_io'] / m['cpu_us_per_io']:.2f}x" if m["cpu_us_per_io"] > 0 else "-")
                else:
                    ratio = ("", "", "", "")
                print(f"| {w} | {t} | {name} | {fmt_num(m['iops'])} | {fmt_num(m['mibs'])} | "
                      f"{m['lat_mean_us']:.1f} | {m['lat_p99_us']:.1f} | {m['cpu_per_gib']:.3f} | "
                      f"{m['cpu_us_per_io']:.2f} | {ratio[0]} | {ratio[1]} | {ratio[2]} | {ratio[3]} | "
                      f"{m['ctx_per_io']:.2f} |")

    # targets of issue 8
    if "nbdd" in servers:
        print()
        print("Targets (issue 8):")
        checks = []
        for t in transports:
            for w in workloads:
                base = med.get((w, t, "nbdd"))
                if base is None:
                    continue
                nk = med.get((w, t, "nbdkit"))
                qm = med.get((w, t, "qemu-nbd"))
                def rounds(peer, metric, inverse=False):
                    # The same ratio per round (the servers of one round ran back to back),
                    # shown next to the ratio of medians that decides PASS/FAIL.
                    a, b = results[(w, t, "nbdd")], results[(w, t, peer)]
                    return [(y[metric] / x[metric] if inverse else x[metric] / y[metric])
                            for x, y in zip(a, b) if x[metric] > 0 and y[metric] > 0]

                if nk and w in ("4k-randread-qd16", "4k-randwrite-qd16"):
                    checks.append((f"{w} {t}: IOPS >= 1.3x nbdkit", base["iops"] / nk["iops"], 1.3,
                                   rounds("nbdkit", "iops")))
                if nk and w in ("1m-read-qd4", "1m-write-qd4"):
                    checks.append((f"{w} {t}: MiB/s >= 1.1x nbdkit", base["mibs"] / nk["mibs"], 1.1,
                                   rounds("nbdkit", "mibs")))
                if nk and w in ("4k-randread-qd16", "4k-randwrite-qd16", "1m-read-qd4", "1m-write-qd4"):
                    if base["cpu_per_gib"] > 0 and nk["cpu_per_gib"] > 0:
                        checks.append((f"{w} {t}: CPU/GiB lower than nbdkit (nbdkit/nbdd)",
                                       nk["cpu_per_gib"] / base["cpu_per_gib"], 1.0,
                                       rounds("nbdkit", "cpu_per_gib", inverse=True)))
                if qm:
                    checks.append((f"{w} {t}: IOPS >= qemu-nbd", base["iops"] / qm["iops"], 1.0,
                                   rounds("qemu-nbd", "iops")))
        for text, got, need, per_round in checks:
            ok = got >= need
            paired = ", ".join(f"{x:.2f}" for x in per_round)
            print(f"- {'PASS' if ok else 'FAIL'} {text}: {got:.2f}x (per round: {paired})")
        fails = sum(1 for _, got, need, _ in checks if got < need)
        print(f"\n{len(checks) - fails}/{len(checks)} targets met.")

    if "nbdd" in servers and "nbdkit" in servers:
        print_issue26_targets(results, med, workloads, transports)

    # target of issue 23: hosting nbdkit's plugin is at least as fast as nbdkit on the same .so
    if "nbdd-hosted" in servers and "nbdkit" in servers:
        print()
        print("Target (issue 23): nbdd hosting the plugin >= nbdkit on the same .so:")
        for t in transports:
            for w in workloads:
                h, nk = med.get((w, t, "nbdd-hosted")), med.get((w, t, "nbdkit"))
                if not h or not nk:
                    continue
                metric = "mibs" if w.startswith("1m") else "iops"
                got = h[metric] / nk[metric]
                cpu = f", CPU/GiB {h['cpu_per_gib'] / nk['cpu_per_gib']:.2f}x" if nk["cpu_per_gib"] > 0 else ""
                print(f"- {'PASS' if got >= 1.0 else 'FAIL'} {w} {t}: {metric} {got:.2f}x{cpu}")


if __name__ == "__main__":
    main()
