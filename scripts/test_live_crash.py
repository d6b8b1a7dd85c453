#!/usr/bin/env python3
"""Live crash test: the real recorder, killed with SIGKILL at 20 random moments.

A workload process opens files named by a sequence number (e-0, e-1, ...) about 800 times a
second and logs when it opened each. The recorder (`--probes file --pid WORKLOAD`, default
flush interval 1 s) is started, killed with SIGKILL after a random 0.3 to 4 s, and started
again, 20 times; runs take turns with short segments (`--max-segment-age 2s`, so some
segments are published between kills), small row groups (`--row-group-rows 1024`, so
journals roll over and row groups reach the temporary file) and small batches as well
(`--batch-rows 128 --row-group-rows 2048`: batches cut full, before the flush interval, so
their rows wait out of the journal until their deadline, and a row group that reaches the
file first takes them there). A last run stops with SIGTERM. Meanwhile a
reader lists the capture every 50 ms and opens every visible segment with pyarrow.

Checks:
- every start after a kill whose leftovers hold rows says what it recovered, and every run
  exits 0 at the end;
- every event opened while a recorder ran, older than the flush interval at the kill, is
  in the `file` table exactly once; no event is there twice;
- no visible file was ever unreadable (pyarrow, during the kills; DuckDB and capq at the end,
  with the same row count);
- control: with `--journal off` the same kill loses events (so the check above can fail).

Prints the loss window of each kill: seconds between the kill and the newest event recorded
before it.

usage: test_live_crash.py RECORDER CAPQ        (as root)
"""
import glob
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import duckdb
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from livecheck import capq, check, finish

FLUSH = 1.0  # --flush-interval (the default)
KILLS = 20

WORKLOAD = r"""
import os, signal, sys, time
d, log = sys.argv[1], sys.argv[2]
times = []
def stop(*_):
    with open(log, "w") as f:
        f.write("\n".join(repr(t) for t in times))
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
sys.stdout.write("ready\n"); sys.stdout.flush()
n = 0
while True:
    os.close(os.open(f"{d}/e-{n}", os.O_CREAT | os.O_WRONLY, 0o600))
    times.append(time.time())
    n += 1
    time.sleep(0.001)
"""


class Recorder:
    """One run of the recorder; its stderr is collected by a thread."""

    def __init__(self, recorder, args):
        self.proc = subprocess.Popen([recorder, *args], stderr=subprocess.PIPE, text=True)
        self.lines = []
        # A start may first warn about what a killed run left (a segment opened an instant
        # before the kill, its journal not yet made): those lines come before the one that
        # says it records. Whether rows were lost is the event checks' to find.
        first = self.proc.stderr.readline()
        while first.startswith("capture_linux_rotating: warning:"):
            self.lines.append(first)
            first = self.proc.stderr.readline()
        self.ready = time.time()
        self.lines.append(first)
        if "recording" not in first:
            self.proc.kill()
            raise SystemExit(f"recorder did not start: {first}{self.proc.stderr.read()}")
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def kill(self):
        t = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join()
        return t


def watch(cap, stop, bad, seen):
    """Opens every visible segment as it appears, until `stop`; failures go to `bad`."""
    while not stop.is_set():
        for p in glob.glob(f"{cap}/*/host=*/dt=*/hr=*/*.parquet"):
            if p in seen:
                continue
            try:
                seen[p] = pq.read_table(p).num_rows
            except FileNotFoundError:
                pass
            except Exception as e:  # noqa: BLE001 - any failure to read is the finding
                bad.append(f"{p}: {e}")
                seen[p] = None
        time.sleep(0.05)


def recorded(capq_bin, cap, files):
    """Sequence number -> times recorded, of the workload's opens."""
    rows = capq(capq_bin, cap, f"SELECT path FROM file WHERE op = 'open' AND path LIKE '{files}/e-%'")
    count = {}
    for r in rows:
        n = int(r["path"].rsplit("e-", 1)[1])
        count[n] = count.get(n, 0) + 1
    return count


def main():
    recorder, capq_bin = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        raise SystemExit("test_live_crash.py must run as root (it loads BPF programs)")
    rng = random.Random(int(os.environ.get("CRASH_SEED", "12")))
    work = tempfile.mkdtemp(prefix="capture-crash-")
    cap, files, log = f"{work}/capture", f"{work}/files", f"{work}/times"
    os.mkdir(files)
    wl = subprocess.Popen([sys.executable, "-c", WORKLOAD, files, log], stdout=subprocess.PIPE, text=True)
    try:
        run(recorder, capq_bin, rng, work, cap, files, log, wl)
    finally:
        # A failed check must not leave the workload running: it holds the suite's output
        # open, and the suite would wait for it for ever.
        if wl.poll() is None:
            wl.kill()


def run(recorder, capq_bin, rng, work, cap, files, log, wl):
    assert wl.stdout.readline().strip() == "ready"
    base = ["--output-dir", cap, "--probes", "file", "--pid", str(wl.pid), "--flush-interval", f"{FLUSH}s"]

    stop, bad, seen = threading.Event(), [], {}
    watcher = threading.Thread(target=watch, args=(cap, stop, bad, seen), daemon=True)
    watcher.start()

    def journals():
        return set(glob.glob(f"{cap}/file/*/*/*/.*.journal"))

    def held(paths):
        # Rows the leftovers hold: each journal's row groups in the file, then its batches
        # (up to a torn last one). Rows that waited for their deadline out of the journal
        # are not there: a crash before it left an empty journal, with nothing to say.
        n = 0
        for p in paths:
            try:
                with open(p, "rb") as f:
                    r = pa_ipc.open_stream(f)
                    n += int(r.schema.metadata.get(b"capture.journal.base_rows", b"0"))
                    for b in r:
                        n += b.num_rows
            except (OSError, pa.ArrowInvalid):
                pass
        return n

    def said_recovered(r, before, rows):
        # Recovery runs in the writer thread as the run starts; a kill before it is done
        # leaves the journals for the next start.
        return not rows or any("recovered" in l and " file rows" in l for l in r.lines) or bool(before & journals())

    windows, said, recoveries, empty = [], [], 0, 0
    for i in range(KILLS):
        extra = [["--max-segment-age", "2s"], ["--row-group-rows", "1024"],
                 ["--batch-rows", "128", "--row-group-rows", "2048"]][i % 3]
        before = journals()
        rows = held(before)
        recoveries += rows > 0
        empty += bool(before) and not rows
        r = Recorder(recorder, base + extra)
        time.sleep(rng.uniform(0.3, 4.0))
        killed = r.kill()
        windows.append((r.ready, killed))
        said.append(said_recovered(r, before, rows))
        time.sleep(rng.uniform(0, 0.3))
    before = journals()
    rows = held(before)
    recoveries += rows > 0
    empty += bool(before) and not rows
    print(f"     starts that found leftovers without rows (killed before any row was due): {empty}")
    check(f"starts that found rows to recover (of {KILLS + 1})", recoveries >= KILLS // 2, True)
    last = Recorder(recorder, base)
    time.sleep(2)
    last.proc.send_signal(signal.SIGTERM)
    check("last run exits 0 on SIGTERM", last.proc.wait(timeout=60), 0)
    last.reader.join()
    said.append(said_recovered(last, before, rows))
    stopped = time.time()
    check(f"every start after a kill says what it recovered ({KILLS + 1} starts)", said, [True] * (KILLS + 1))

    # The control run: the same kill without the journal loses events.
    control_cap = f"{work}/control"
    r = Recorder(recorder, [*base[:1], control_cap, *base[2:], "--journal", "off"])
    time.sleep(2.5)
    control = (r.ready, r.kill())
    wl.send_signal(signal.SIGTERM)
    wl.wait(timeout=30)
    stop.set()
    watcher.join()
    with open(log) as f:
        times = [float(t) for t in f.read().split()]

    count = recorded(capq_bin, cap, files)
    twice = sorted(n for n, c in count.items() if c > 1)
    check("no event recorded twice", twice[:10], [])
    missing, losses = [], []
    for ready, killed in windows:
        promised = [n for n, t in enumerate(times) if ready <= t <= killed - FLUSH]
        missing += [n for n in promised if n not in count]
        before = [t for n, t in enumerate(times) if ready <= t <= killed and n in count]
        losses.append(killed - max(before) if before else float("nan"))
    promised = [n for n, t in enumerate(times) if windows[-1][1] < t and last.ready <= t <= stopped - 0.5]
    missing += [n for n in promised if n not in count]
    check(f"every event older than the flush interval at each of {KILLS} kills is there", missing[:10], [])
    flushed = [x for x in losses if x == x]
    print(f"     seconds lost per kill: min {min(flushed):.2f}, median {statistics.median(flushed):.2f}, "
          f"max {max(flushed):.2f} (flush interval {FLUSH}s; "
          f"{len(losses) - len(flushed)} runs killed before their first flush lost all they saw)")
    print("     lost: " + " ".join(f"{x:.2f}" for x in losses))
    print("     run:  " + " ".join(f"{k - r:.2f}" for r, k in windows))

    check("no visible segment was ever unreadable by pyarrow", bad[:5], [])
    check(f"the watcher read every segment as it appeared ({len(seen)})", len(seen) >= recoveries, True)
    hidden = [p for p in glob.glob(f"{cap}/**/.*", recursive=True) if not p.endswith("/.capture.lock")]
    check("no leftovers after a clean stop", hidden, [])
    total = sum(pq.read_table(p).num_rows for p in glob.glob(f"{cap}/file/host=*/dt=*/hr=*/*.parquet"))
    duck = duckdb.sql(f"SELECT count(*) FROM read_parquet('{cap}/file/*/*/*/*.parquet')").fetchall()[0][0]
    via_capq = capq(capq_bin, cap, "SELECT count(*) AS n FROM file")[0]["n"]
    check("DuckDB, capq and pyarrow read the same rows", (duck, via_capq), (total, total))

    promised = [n for n, t in enumerate(times) if control[0] <= t <= control[1] - FLUSH]
    got = recorded(capq_bin, control_cap, files) if glob.glob(f"{control_cap}/file/*/*/*/*.parquet") else {}
    check("control, --journal off: the same kill loses events (the check above can fail)",
          sum(1 for n in promised if n not in got) > 0, True)
    finish("crash", work)


if __name__ == "__main__":
    main()
