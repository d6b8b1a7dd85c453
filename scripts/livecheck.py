"""What the live tests share: exact checks that print ok/FAIL lines (scripts/test.sh
counts them) and queries through the real capq binary."""
import json
import os
import shutil
import subprocess
import sys

FAILS = []


def start(recorder, args, env=None):
    """Starts the recorder with `args` (quiet, flushing every 200 ms) and waits for its
    "recording" line; exits with its error if it does not start. `env`: variables added to
    this process's (a benchmark floor's), whose warnings may come before that line."""
    rec = subprocess.Popen([recorder, *args, "--flush-interval", "200ms", "-q"], stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, **env) if env else None)
    line = rec.stderr.readline()
    while env and line.startswith(f"{os.path.basename(recorder)}: warning: "):
        line = rec.stderr.readline()
    if "recording" not in line:
        rec.kill()
        raise SystemExit(f"recorder did not start: {line}{rec.stderr.read()}")
    print(f"recorder pid {rec.pid}: {line.strip()}")
    return rec


def check(what, got, want):
    """One exact check: prints `ok   what` or `FAIL what` with both values."""
    if got == want:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}\n     got:  {got!r}\n     want: {want!r}")
        FAILS.append(what)


def capq(capq_bin, cap, sql):
    """The rows of `sql` over the capture `cap`, as dicts, through capq's JSON output."""
    out = subprocess.run([capq_bin, "--dir", cap, "--format", "json", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"capq failed ({out.returncode}): {out.stderr.strip()}\n  for: {sql}")
    return [json.loads(line) for line in out.stdout.splitlines()]


def check_no_drops(capq_bin, cap, probe=None):
    """Nothing dropped and nothing malformed, by the stats table (of one probe, or all)."""
    where = f" WHERE probe = '{probe}'" if probe else ""
    rows = capq(capq_bin, cap, "SELECT sum(dropped_ringbuf_full + dropped_kernel_other + dropped_backpressure"
                               f" + dropped_write_error) AS dropped, sum(malformed) AS malformed FROM stats{where}")
    check(f"{probe or 'every probe'}: zero drops, zero malformed", (rows[0]["dropped"], rows[0]["malformed"]), (0, 0))


def finish(what, work):
    """Exits 1 keeping the captures in `work` when a check failed, else removes them."""
    if FAILS:
        print(f"{len(FAILS)} {what} checks failed; captures kept in {work}")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print(f"all {what} checks passed")
