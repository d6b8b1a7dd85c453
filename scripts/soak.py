#!/usr/bin/env python3
"""Soak: the real recorder under a steady file storm for an hour (not a test).

    scripts/soak.sh [--minutes 60] [--rate 300000] [--out DIR] [--all-probes]      (as root)

Two `storm paced` workers (recorder/examples/storm.rs) open, write 64 bytes to and close
a file, at a fixed rate each, for the whole run; the recorder runs with its defaults plus
`--probes file --comm storm --file-rw-events` (three rows per iteration: open, write,
close; with --all-probes, every probe on every process and `--file-rw-events`), on a
pseudo-terminal so its status line can be read. Every 30 s: the recorder's
RSS (VmRSS) and CPU (user + system, share of one core), the events per second and drops
its status line shows. At the end (SIGTERM): the rows recorded for the storm files against
3 x the iterations the workers did, and the drops in the stats table.

Writes DIR/soak.tsv (one row per sample), DIR/soak.png (RSS, CPU and rate over time) and
prints a summary: RSS at 5 minutes and at the end, its change, generated and recorded.
Exits 1 when generated != recorded, something was dropped, or a sample of RSS after the
first 5 minutes is more than 5% from the one at 5 minutes (the summary also gives the
trend, a least-squares slope in MiB per hour).
"""
import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

from livecheck import capq

SAMPLE = 30.0
STATUS = re.compile(r"(\d+)s  .*?file (\d+)/s.*?  drops (\d+)")


def proc_stat(pid):
    """(RSS in MiB, CPU seconds) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / tick


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recorder")
    ap.add_argument("capq")
    ap.add_argument("storm")
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=int, default=300_000, help="events per second (3 per iteration)")
    ap.add_argument("--out", default=None, help="where the capture, table and plot go")
    ap.add_argument("--all-probes", action="store_true",
                    help="every probe, every process (the recorder's defaults) instead of the file probe "
                         "filtered to the storm")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("soak.py must run as root (it loads BPF programs)")
    out = a.out or tempfile.mkdtemp(prefix="capture-soak-")
    os.makedirs(out, exist_ok=True)
    cap, files = f"{out}/capture", f"{out}/files"
    os.makedirs(files, exist_ok=True)
    secs = a.minutes * 60

    master, slave = pty.openpty()
    scope = [] if a.all_probes else ["--probes", "file", "--comm", "storm"]
    rec = subprocess.Popen([a.recorder, "--output-dir", cap, *scope, "--file-rw-events"],
                           stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    buf = b""
    while b"recording" not in buf:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            raise SystemExit(f"recorder did not start: {buf.decode(errors='replace')}")
        buf += os.read(master, 4096)
    per_worker = a.rate / 3 / 2
    workers = [subprocess.Popen([a.storm, "paced", str(int(per_worker)), str(secs), files],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    started = time.time()
    samples = []
    last_line = None
    _, cpu0 = proc_stat(rec.pid)
    t_prev, cpu_prev = started, cpu0
    next_sample = started + SAMPLE
    print(f"soak: {a.minutes:g} min at {a.rate} events/s into {cap}; a sample every {SAMPLE:.0f} s")
    print("t_s\trss_mib\tcpu_pct\tevents_per_s\tdrops")
    while any(w.poll() is None for w in workers):
        r, _, _ = select.select([master], [], [], 1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            lines = STATUS.findall(chunk.decode(errors="replace"))
            if lines:
                last_line = lines[-1]
        now = time.time()
        if now >= next_sample:
            next_sample += SAMPLE
            rss, cpu = proc_stat(rec.pid)
            pct = 100 * (cpu - cpu_prev) / (now - t_prev)
            t_prev, cpu_prev = now, cpu
            rate = int(last_line[1]) if last_line else 0
            drops = int(last_line[2]) if last_line else 0
            samples.append((round(now - started), rss, pct, rate, drops))
            print("\t".join(str(x) if not isinstance(x, float) else f"{x:.1f}" for x in samples[-1]), flush=True)
    iterations = 0
    for w in workers:
        done, _ = w.stdout.read().split()
        iterations += int(done)
    rec.send_signal(signal.SIGTERM)
    tail = b""
    while True:
        r, _, _ = select.select([master], [], [], 120)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tail += chunk
    code = rec.wait(timeout=300)

    generated = 3 * iterations
    recorded = capq(a.capq, cap, f"SELECT count(*) AS n FROM file WHERE op IN ('open', 'write', 'close') AND path LIKE '{files}/storm-%'")[0]["n"]
    dropped = capq(a.capq, cap, "SELECT sum(dropped_ringbuf_full + dropped_kernel_other + dropped_backpressure"
                                " + dropped_write_error) AS d FROM stats")[0]["d"]
    with open(f"{out}/soak.tsv", "w") as f:
        f.write("t_s\trss_mib\tcpu_pct\tevents_per_s\tdrops\n")
        for s in samples:
            f.write("\t".join(str(x) if not isinstance(x, float) else f"{x:.1f}" for x in s) + "\n")
    after5 = [s for s in samples if s[0] >= 300]
    rss5, rss_end = after5[0][1], samples[-1][1]
    lo, hi = min(s[1] for s in after5), max(s[1] for s in after5)
    change = (rss_end - rss5) / rss5
    # The largest distance from the value at 5 minutes, and the trend (least squares).
    worst = max(abs(s[1] - rss5) for s in after5) / rss5
    n, mt, mr = len(after5), sum(s[0] for s in after5) / len(after5), sum(s[1] for s in after5) / len(after5)
    var = sum((s[0] - mt) ** 2 for s in after5)
    slope = sum((s[0] - mt) * (s[1] - mr) for s in after5) / var * 3600 if var else 0.0
    mean_rate = sum(s[3] for s in samples[1:]) / max(1, len(samples) - 1)
    mean_cpu = sum(s[2] for s in samples) / len(samples)
    plot(samples, f"{out}/soak.png", a)
    print(f"recorder exit {code}; {tail.decode(errors='replace').strip().splitlines()[-1] if tail else ''}")
    print(f"generated {generated} rows ({iterations} iterations x 3), recorded {recorded}, dropped {dropped}")
    print(f"events/s {mean_rate:.0f} (mean of samples), recorder CPU {mean_cpu:.1f}% of a core")
    print(f"RSS at 5 min {rss5:.1f} MiB, at the end {rss_end:.1f} MiB ({change:+.1%}); after 5 min "
          f"{lo:.1f} to {hi:.1f} MiB, at most {worst:.1%} from the value at 5 min; trend {slope:+.2f} MiB/hour")
    print(f"table {out}/soak.tsv, plot {out}/soak.png")
    ok = code == 0 and generated == recorded and not dropped and worst <= 0.05
    print("soak: " + ("passed" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def plot(samples, path, a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [s[0] / 60 for s in samples]
    fig, ax = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
    ax[0].plot(t, [s[1] for s in samples], marker=".")
    ax[0].set_ylabel("RSS (MiB)")
    ax[0].set_ylim(0, max(s[1] for s in samples) * 1.2)
    ax[0].axvline(5, color="grey", linestyle=":")
    ax[1].plot(t, [s[2] for s in samples], marker=".", color="tab:orange")
    ax[1].set_ylabel("CPU (% of a core)")
    ax[1].set_ylim(0, max(s[2] for s in samples) * 1.2)
    ax[2].plot(t, [s[3] / 1000 for s in samples], marker=".", color="tab:green")
    ax[2].set_ylabel("events/s (thousands)")
    ax[2].set_ylim(0, max(s[3] for s in samples) / 1000 * 1.2)
    ax[2].set_xlabel("minutes")
    scope = "every probe" if a.all_probes else "file probe, --comm storm"
    fig.suptitle(f"capture_linux_rotating ({scope}), file storm at {a.rate // 1000}k events/s, {a.minutes:g} min")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
