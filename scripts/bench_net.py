#!/usr/bin/env python3
"""Network benchmark (not a test): TCP and DNS workloads untraced, under the recorder and
under libbpf-tools' tcplife, in one run.

Workloads (the `storm` example, a compiled loop, so the probes' cost is not hidden behind
an interpreter's):
- tcp:  N short connections on loopback (connect, 64 bytes each way, close); each gives
        two `net` rows (client and server side) and two tcplife lines;
- bulk: one connection carrying M MiB (throughput: the recorder must cost nothing per
        packet);
- dns:  Q queries over UDP to dnsmasq on 127.0.0.1:53, each waiting for its response;
        each gives two `dns` rows (query, response).
Each runs --rounds times per configuration; the best time is kept. The recorder runs
every probe it has (--probes exec,file,net,dns). Reports, per workload: events generated
and recorded, drops, untraced time, slowdown, recorder CPU seconds per million events
(from the moment it records to its exit), bytes per event on disk, and tcplife's slowdown
and the lines it printed. A peer that recorded nothing gets no ratio.

usage: bench_net.py RECORDER CAPQ STORM [--conns N] [--bulk-mib M] [--queries Q] [--rounds R]
                    [--workloads tcp,bulk,dns] [--probes exec,file,net,dns] [--tcplife PATH]
       (as root)
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def capq(capq_bin, cap, sql):
    out = subprocess.run([capq_bin, "--dir", cap, "--format", "json", sql], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_storm(storm, kind, n, extra):
    out = subprocess.run([storm, kind, str(n), *extra], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def disk_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet"))


def under_recorder(a, kind, n, extra, work):
    cap = tempfile.mkdtemp(dir=work)
    rec = subprocess.Popen([a.recorder, "--output-dir", cap, "--probes", a.probes, "-q"],
                           stderr=subprocess.PIPE, text=True)
    line = rec.stderr.readline()
    if "recording" not in line:
        rec.kill()
        raise SystemExit(f"recorder did not start: {line}{rec.stderr.read()}")
    cpu0 = cpu_seconds(rec.pid)
    t = run_storm(a.storm, kind, n, extra)
    time.sleep(0.3)
    rec.send_signal(signal.SIGTERM)
    rec.stderr.read()
    _, status, usage = os.wait4(rec.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    if kind == "dns":
        recorded = capq(a.capq, cap, "SELECT count(*) AS n FROM dns WHERE comm = 'storm'")[0]["n"]
    else:
        recorded = capq(a.capq, cap, "SELECT count(*) AS n FROM net WHERE comm = 'storm' AND proto = 'tcp' AND NOT interim")[0]["n"]
    drops = capq(a.capq, cap, "SELECT coalesce(sum(dropped_ringbuf_full + dropped_kernel_other + dropped_backpressure"
                              " + dropped_write_error), 0) AS d FROM stats")[0]["d"]
    size = disk_bytes(cap)
    shutil.rmtree(cap)
    return t, recorded, drops, cpu, size


def under_tcplife(a, kind, n, extra, work):
    # Into a file, not a pipe read at the end: a full pipe would block tcplife.
    path = os.path.join(work, "tcplife.out")
    with open(path, "w") as sink:
        tl = subprocess.Popen([a.tcplife], stdout=sink, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # loaded and attached
        t = run_storm(a.storm, kind, n, extra)
        time.sleep(0.5)
        tl.send_signal(signal.SIGINT)
        err = tl.communicate(timeout=30)[1]
    with open(path) as f:
        out = f.read()
    lost = sum(int(w) for line in err.splitlines() for w in line.split() if "lost" in line.lower() and w.isdigit())
    if lost:
        print(f"tcplife: lost {lost} events", file=sys.stderr)
    return t, sum(1 for line in out.splitlines() if " storm " in f" {line} ")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("recorder")
    p.add_argument("capq")
    p.add_argument("storm")
    p.add_argument("--conns", type=int, default=20000)
    p.add_argument("--bulk-mib", type=int, default=4096)
    p.add_argument("--queries", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workloads", default="tcp,bulk,dns")
    p.add_argument("--probes", default="exec,file,net,dns", help="the recorder's --probes")
    p.add_argument("--tcplife", default=shutil.which("tcplife") or "/usr/sbin/tcplife")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_net.py loads BPF programs: run it as root")
    work = tempfile.mkdtemp(prefix="bench-net-")
    os.chmod(work, 0o755)
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("10.1.2.3 alpha.test\n10.1.2.4 beta.test\n")
    os.chmod(hosts, 0o644)
    dns = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
                            "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--local=/test/",
                            "--pid-file=", "--log-facility=/dev/null", "--dns-forward-max=1000"])
    time.sleep(1)
    rows = []
    try:
        for kind, n, extra, events_per in [("tcp", a.conns, [], 2), ("bulk", a.bulk_mib, [], 2),
                                           ("dns", a.queries, ["53"], 2)]:
            if kind not in a.workloads.split(","):
                continue
            untraced = min(run_storm(a.storm, kind, n, extra) for _ in range(a.rounds))
            runs = [under_recorder(a, kind, n, extra, work) for _ in range(a.rounds)]
            best = min(runs, key=lambda r: r[0])
            generated = (2 * n if kind == "tcp" else 2 if kind == "bulk" else 2 * n)
            recorded = {r[1] for r in runs}
            drops = sum(r[2] for r in runs)
            cpu = sorted(r[3] for r in runs)[len(runs) // 2]
            size = sorted(r[4] for r in runs)[len(runs) // 2]
            tl = None
            if kind != "dns" and os.path.exists(a.tcplife):
                tl_runs = [under_tcplife(a, kind, n, extra, work) for _ in range(a.rounds)]
                tl = (min(r[0] for r in tl_runs), {r[1] for r in tl_runs})
            rows.append((kind, n, generated, recorded, drops, untraced, best[0], cpu, size, tl))
    finally:
        dns.terminate()
        dns.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    print("| workload | size | events generated | recorded (each round) | drops | untraced s | slowdown "
          "| recorder CPU s per M events | bytes/event on disk | tcplife slowdown | tcplife lines |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for kind, n, gen, rec, drops, untraced, t, cpu, size, tl in rows:
        size_txt = f"{n} MiB" if kind == "bulk" else f"{n:,}"
        tl_ratio = tl_lines = ""
        if tl:
            tl_lines = ", ".join(f"{x:,}" for x in sorted(tl[1]))
            # A peer that recorded nothing gets no ratio.
            tl_ratio = f"{tl[0] / untraced:.2f}x" if max(tl[1]) > 0 else "recorded nothing"
        # Per event figures mean nothing for one connection carrying gigabytes.
        per_m = "" if kind == "bulk" else f"{cpu / gen * 1e6:.2f}"
        per_event = "" if kind == "bulk" else f"{size / gen:.1f}"
        print(f"| {kind} | {size_txt} | {gen:,} | {', '.join(f'{x:,}' for x in sorted(rec))} | {drops} | {untraced:.3f} "
              f"| {t / untraced:.2f}x | {per_m} | {per_event} | {tl_ratio} | {tl_lines} |")
    if any(kind == "bulk" for kind, *_ in rows):
        for kind, n, _, _, _, untraced, t, *_ in rows:
            if kind == "bulk":
                print(f"\nbulk throughput: untraced {n / untraced:,.0f} MiB/s, recorder {n / t:,.0f} MiB/s "
                      f"({(1 - untraced / t) * 100:+.1f}% time)")


if __name__ == "__main__":
    main()
