#!/usr/bin/env python3
"""Live benchmark: workload slowdown and recorder cost, against no tracing and bpftrace.

For an open/close storm (open, write 64 bytes, close one file: the tightest loop), the same
storm as a Python program writes it (`with open(p, "r+b") as f: f.write(...)`: the open,
write and close, plus the fstat, ioctl and lseek Python's file objects make), a tree
storm (open, read to the end, close 1000 files of 4 KiB in turn, as `grep -r` does) and an
exec storm, on 1 and on 2 worker processes, runs the
workload untraced, under capture_linux_rotating (all probes it has), and under bpftrace
printing one line per event, all in this one run. Reports events generated vs recorded,
drops, the untraced time, the slowdown ratio, the time added per event, recorder CPU
seconds per million events (from the moment it is recording to its exit: loading the
probes and the /proc scan are not counted), bytes on disk per event, the slowdown of two
floors of the file probe (CAPTURE_BENCH_FILE_FLOOR): `hook`, its program returning at once,
and `records` (column `floor`), one record per open and per close with the time, the
process and the fd and nothing else, the least this recorder's pipeline does; and
bpftrace's slowdown and lines. Times are the best of --rounds rounds, recorder CPU and
bytes per event their median. A run's drops include the records its reader could not
decode (`malformed`), and a floor that dropped any is marked `!`. bpftrace gets no ratio
(`missed!`, and a line at the end) when it printed fewer lines than the workload made
events: without tracefs mounted (this script mounts it when it can) its tracepoints attach
nothing, and a tracer that records nothing is not a peer.

usage: bench_live.py RECORDER CAPQ STORM [--opens N] [--execs N] [--workloads open,open-py,tree,exec] [--rounds R]
                    [--against OTHER_RECORDER] [--recorder-args ARGS] [--no-peers]
       (as root; the Python storm runs --opens/2 iterations per worker)
"""
import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BPFTRACE = {
    "open": 'tracepoint:syscalls:sys_exit_openat { printf("%d %s open %d\\n", pid, comm, args->ret); } '
            'tracepoint:syscalls:sys_enter_close { printf("%d %s close %d\\n", pid, comm, args->fd); }',
    "exec": 'tracepoint:sched:sched_process_exec { printf("%d %s %s\\n", pid, comm, str(args->filename)); }',
}
BPFTRACE["tree"] = BPFTRACE["open-py"] = BPFTRACE["open"]

# The open storm in Python; prints the loop's elapsed seconds like `storm`.
PY_OPEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pystorm.py")
# What each workload's rows look like: its command name and a part of its file names.
COMM = {"open": "storm", "tree": "storm", "open-py": os.path.basename(sys.executable)[:15]}
PATTERN = {"open": "storm-", "tree": "tree-", "open-py": "pystorm-"}


def run_workers(storm, kind, n, workers, scratch):
    """Runs the workers; returns the slowest one's loop time and their CPU seconds in all
    (user and system, start-up included: the time the probes add to their syscalls is
    charged here, not the time they waited for a CPU)."""
    procs = []
    for _ in range(workers):
        if kind == "open-py":
            args = [sys.executable, PY_OPEN, str(n), scratch]
        else:
            args = [storm, kind, str(n)] + ([scratch] if kind != "exec" else [])
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, text=True))
    times, cpu = [], 0.0
    for p in procs:
        times.append(float(p.stdout.read().strip()))
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu += ru.ru_utime + ru.ru_stime
    return max(times), cpu


def capq(capq_bin, cap, sql):
    out = subprocess.run([capq_bin, "--dir", cap, "--format", "json", sql], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


DROPS = ("SELECT coalesce(sum(dropped_ringbuf_full + dropped_kernel_other + dropped_backpressure"
         " + dropped_write_error), 0) AS d FROM stats")


def under_recorder(a, kind, n, workers, scratch, floor="off", recorder=None):
    """The workload under the recorder. `floor` (CAPTURE_BENCH_FILE_FLOOR) cuts the file
    probe down: `hook`, a program that returns at once; `records`, one record per open and
    per close with the time, the process and the fd, through the same ring buffers, reader
    and writer, and nothing else. Returns the elapsed time, the rows recorded, the records
    dropped, the recorder's CPU seconds and bytes on disk per row (the last three only with
    the floor off)."""
    cap = tempfile.mkdtemp(prefix="bench-cap-")
    own = [] if recorder else shlex.split(a.recorder_args)
    rec = subprocess.Popen([recorder or a.recorder, "--output-dir", cap, "-q", *own], stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, CAPTURE_BENCH_FILE_FLOOR=floor))
    # A floor's warning comes first.
    line = rec.stderr.readline()
    while "recording" not in line:
        assert line, rec.stderr.read()
        line = rec.stderr.readline()
    # CPU spent loading the probes and scanning /proc is not per event: counted from here.
    with open(f"/proc/{rec.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_at_start = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    elapsed, wcpu = run_workers(a.storm, kind, n, workers, scratch)
    time.sleep(0.3)
    rec.send_signal(signal.SIGTERM)
    tail = rec.stderr.read()
    _, status, ru = os.wait4(rec.pid, 0)
    cpu = ru.ru_utime + ru.ru_stime - cpu_at_start
    if recorder:
        # Another build (--against): its segments may be of a schema this capq does not
        # read, so what it recorded is taken from its own last line ("stopped: N events,
        # N rows in S segments (...), D dropped, M malformed"): all its rows and its drops.
        subprocess.run(["rm", "-rf", cap])
        m = re.search(r"stopped: \d+ events, (\d+) rows .*?, (\d+) dropped, (\d+) malformed", tail)
        assert m, f"--against {recorder}: no summary line in its output: {tail!r}"
        return elapsed, int(m.group(1)), int(m.group(2)) + int(m.group(3)), cpu, None, wcpu
    # Records the reader could not decode count with the drops: a run that wrote fewer rows
    # than its probe handed over did less work than it is measured for.
    m = re.search(r"stopped: .*, (\d+) malformed", tail)
    assert m, f"{recorder or a.recorder}: no summary line in its output: {tail!r}"
    drops = capq(a.capq, cap, DROPS)[0]["d"] + int(m.group(1))
    if floor != "off":
        subprocess.run(["rm", "-rf", cap])
        return elapsed, None, drops, None, None, wcpu
    if kind != "exec":
        q = (f"SELECT count(*) AS n FROM file WHERE comm = '{COMM[kind]}' AND op IN ('open', 'close') "
             f"AND abs_path LIKE '%/{PATTERN[kind]}%'")
        table = "file"
    else:
        q = "SELECT count(*) AS n FROM exec WHERE path = '/bin/true' AND NOT from_procfs"
        table = "exec"
    recorded = capq(a.capq, cap, q)[0]["n"]
    total_rows = capq(a.capq, cap, f"SELECT count(*) AS n FROM {table}")[0]["n"]
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.join(cap, table)) for f in fs if f.endswith(".parquet"))
    subprocess.run(["rm", "-rf", cap])
    return elapsed, recorded, drops, cpu, size / max(total_rows, 1), wcpu


def under_bpftrace(a, kind, n, workers, scratch):
    out = tempfile.NamedTemporaryFile(prefix="bench-bpftrace-", delete=False)
    bt = subprocess.Popen(["bpftrace", "-e", BPFTRACE[kind]], stdout=out, stderr=subprocess.PIPE, text=True)
    # bpftrace says "Attaching N probes..." once it is ready.
    for _ in range(200):
        time.sleep(0.05)
        with open(out.name) as f:
            if "Attaching" in f.read(200):
                break
    elapsed, _ = run_workers(a.storm, kind, n, workers, scratch)
    time.sleep(0.3)
    bt.send_signal(signal.SIGINT)
    bt.wait()
    with open(out.name) as f:
        comm = f" {COMM.get(kind)} "
        lines = sum(1 for line in f if comm in line or "/bin/true" in line)
    os.unlink(out.name)
    return elapsed, lines


def against_cell(runs, base, generated):
    """The --against build's slowdown; marked "!" when a run of it dropped or lost records
    (fewer rows in all than the workload generated)."""
    bad = any(r[2] or r[1] < generated for r in runs)
    return f"{min(r[0] for r in runs) / base:>7.2f}x" + ("!" if bad else " ")


def paired_cell(runs, measure=0, base=0):
    """This build against the --against build, round by round: the median over rounds of
    (this build's figure - the other's) / that round's untraced figure, with the lowest and
    highest such difference. A change that costs nothing centres on 0.00 however noisy
    the machine; its spread says how far one round may be trusted. Figures: the loop time
    (measure 0, base 0), or the workers' CPU seconds (measure 5, base 1: what the probes
    add to the workload's own syscalls, without the time it waited for a CPU)."""
    diffs = sorted((r[measure] - o[measure]) / b[base] for r, o, b in zip(runs["rec"], runs["against"], runs["base"]))
    lo, hi = median_ci(diffs)
    ci = f" ci {lo:+.3f},{hi:+.3f}" if lo is not None else ""
    return f"{statistics.median(diffs):+6.3f}x [{diffs[0]:+.2f},{diffs[-1]:+.2f}]{ci}"


def median_ci(xs):
    """A 95% confidence interval of the median of sorted `xs`, distribution-free: the
    order statistics k and n-k+1 where a fair coin gives fewer than k heads in n throws
    with probability at most 2.5%. (None, None) under 6 rounds, where none exists."""
    n = len(xs)
    k, below = 0, 0.0
    while True:
        p = math.comb(n, k) / 2**n
        if below + p > 0.025:
            break
        below += p
        k += 1
    if k == 0:
        return None, None
    return xs[k - 1], xs[n - k]


def against_cpu(runs, generated):
    """The --against build's recorder CPU seconds per million events (median)."""
    return f"{statistics.median(r[3] for r in runs['against']) / generated * 1e6:>9.2f}"


def ensure_tracefs():
    """bpftrace's tracepoint probes attach nothing, silently, without tracefs mounted."""
    if os.path.ismount("/sys/kernel/tracing"):
        return
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], capture_output=True, text=True)
    if r.returncode == 0:
        print("mounted tracefs at /sys/kernel/tracing (bpftrace's tracepoints need it)")
    else:
        print(f"could not mount tracefs ({r.stderr.strip()}): bpftrace will record nothing and get no ratio")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("recorder")
    p.add_argument("capq")
    p.add_argument("storm")
    p.add_argument("--opens", type=int, default=200_000)
    p.add_argument("--execs", type=int, default=2_000)
    p.add_argument("--workloads", default="open,open-py,tree,exec",
                   help="comma-separated, from: open, open-py, tree, exec")
    p.add_argument("--rounds", type=int, default=3, help="runs of each variant; the best is shown")
    p.add_argument("--against", metavar="RECORDER",
                   help="another build of the recorder (say, before a change), run in the same rounds: "
                        "its slowdown is shown in the column `against`, and in `paired` the median over "
                        "rounds of this build's time less the other's, over that round's untraced time "
                        "[lowest, highest]")
    p.add_argument("--recorder-args", default="", metavar="ARGS",
                   help="more options for this build of the recorder (not --against's), e.g. '--journal off'")
    p.add_argument("--workers", default="1,2", metavar="N,...",
                   help="how many workers run the storm at once, one line each (default 1,2)")
    p.add_argument("--no-peers", action="store_true",
                   help="skip the floors and bpftrace (columns hook, floor, bpftrace: -), for more rounds "
                        "of untraced, this build and --against in the same time")
    a = p.parse_args()
    unknown = set(a.workloads.split(",")) - {"open", "open-py", "tree", "exec"}
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    try:
        worker_counts = [int(w) for w in a.workers.split(",")]
    except ValueError:
        worker_counts = []
    if not worker_counts or min(worker_counts) < 1:
        p.error(f"--workers {a.workers}: give worker counts of 1 or more, comma-separated, e.g. 1,2")
    if unknown:
        p.error(f"unknown workload {', '.join(sorted(unknown))}: choose from open, open-py, tree, exec")
    if not a.no_peers:
        if shutil.which("bpftrace") is None:
            sys.exit("bench_live.py: bpftrace is not installed: install it (apt-get install bpftrace; "
                     "bench-live.sh does) or pass --no-peers to skip the floors and bpftrace")
        ensure_tracefs()
    scratch = tempfile.mkdtemp(prefix="bench-storm-")
    refused = []
    print(f"{'workload':<8} {'workers':>7} {'generated':>10} {'recorded':>9} {'drops':>6} {'base s':>7} "
          f"{'slowdown':>9} {'ns/event':>9} {'cpu s/M ev':>10} {'B/event':>8} {'hook':>7} {'floor':>7} {'bpftrace':>9} {'bt lines':>9}"
          + (f" {'against':>8} {'paired':>21} {'paired worker cpu':>22} {'its cpu':>9}" if a.against else ""))
    sizes = {"open": a.opens, "open-py": a.opens // 2, "tree": a.opens, "exec": a.execs}
    for kind in a.workloads.split(","):
        n = sizes[kind]
        per_iter = 1 if kind == "exec" else 2
        for workers in worker_counts:
            # Each round runs every variant once, in turn; a variant's time is its best
            # round, as is the untraced time (so a slow round flatters no ratio). Every
            # recorder run counts: the fewest rows recorded and the most drops are shown.
            # With --against, the two builds take turns to run first.
            runs = {}
            for i in range(a.rounds):
                runs.setdefault("base", []).append(run_workers(a.storm, kind, n, workers, scratch))
                builds = [("rec", None)] + ([("against", a.against)] if a.against else [])
                for name, recorder in builds[::-1] if i % 2 else builds:
                    runs.setdefault(name, []).append(under_recorder(a, kind, n, workers, scratch, recorder=recorder))
                if kind != "exec" and not a.no_peers:
                    for m in ("hook", "records"):
                        runs.setdefault(m, []).append(under_recorder(a, kind, n, workers, scratch, floor=m))
                if not a.no_peers:
                    runs.setdefault("bt", []).append(under_bpftrace(a, kind, n, workers, scratch))
            paired = f"{paired_cell(runs):>21} {paired_cell(runs, 5, 1):>22}" if a.against else ""
            runs["base"].append(run_workers(a.storm, kind, n, workers, scratch))
            base = min(r[0] for r in runs["base"])
            rec_t = min(r[0] for r in runs["rec"])
            recorded = min(r[1] for r in runs["rec"])
            drops = max(r[2] for r in runs["rec"])
            cpu = statistics.median(r[3] for r in runs["rec"])
            bpe = statistics.median(r[4] for r in runs["rec"])
            bt_lines = min(r[1] for r in runs["bt"]) if "bt" in runs else "-"
            # A peer that printed fewer lines than there were events did not do the work
            # it is compared for (tracefs missing, a probe that did not attach): no ratio.
            if "bt" not in runs:
                bt = f"{'-':>9}"
            elif bt_lines < n * workers * per_iter:
                bt = f"{'missed!':>9}"
                refused.append(f"bpftrace, {kind} x{workers}: {bt_lines} lines for {n * workers * per_iter} events")
            else:
                bt = f"{min(r[0] for r in runs['bt']) / base:>8.2f}x"
            # The tree storm also makes its 1000 files first, the Python storm its one file
            # (an open and a close each).
            made = {"tree": 2000, "open-py": 2}.get(kind, 0)
            generated = n * workers * per_iter + made * workers
            # ns/event: time the workload lost per event it generated, per worker.
            added = (rec_t - base) / (n * per_iter) * 1e9
            # A floor whose runs dropped records is marked with "!".
            hook, floor = (f"{min(r[0] for r in runs[m]) / base:.2f}x" + ("!" if any(r[2] for r in runs[m]) else "")
                           if m in runs else "-" for m in ("hook", "records"))
            print(f"{kind:<8} {workers:>7} {generated:>10} {recorded:>9} {drops:>6} {base:>7.3f} {rec_t / base:>8.2f}x "
                  f"{added:>9.0f} {cpu / generated * 1e6:>10.2f} {bpe:>8.1f} {hook:>7} {floor:>7} {bt} {bt_lines:>9}"
                  + (f" {against_cell(runs['against'], base, generated)} {paired} {against_cpu(runs, generated)}"
                     if a.against else ""),
                  flush=True)
    subprocess.run(["rm", "-rf", scratch])
    for r in refused:
        print(f"no ratio for {r} (it did not record every event)")


if __name__ == "__main__":
    main()
