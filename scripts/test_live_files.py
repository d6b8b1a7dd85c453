#!/usr/bin/env python3
"""Live test of rows that must be true for the way real programs behave: the file probe's
sums per open file (shell redirects, dup'ed, inherited and leaked descriptors, exec,
threads, copies between files, files open before the recorder and at its end), each
file's close row checked exactly through capq; and execs that fail or whose path is not
the file that runs (fexecve, a symlink, a script).

usage: test_live_files.py RECORDER CAPQ   (as root)
"""
import os
import subprocess
import sys
import tempfile
import time

import duckdb

sys.path.insert(0, os.path.dirname(__file__))
from livecheck import capq, check, check_no_drops, finish, start  # noqa: E402


def workloads(w):
    """Runs every workload, each on files of its own under `w`."""
    # A shell redirect: sh opens the file, head writes through the inherited fd 1.
    subprocess.run(["/bin/sh", "-c", f"head -c 5555 /dev/zero > {w}/redir"], check=True)
    # A pipeline: cat reads a, tee writes b and (through sh's redirect) c.
    with open(f"{w}/a", "wb") as f:
        f.write(b"p" * 1234)
    subprocess.run(["/bin/sh", "-c", f"cat {w}/a | tee {w}/b > {w}/c"], check=True)
    # The rest in one Python child, so nothing of this process's own files mixes in.
    code = r'''
import mmap, os, sys, threading, time
w = sys.argv[1]
O = os.O_CREAT | os.O_WRONLY | os.O_TRUNC
# dup: 1,004 bytes through the copy, then 5 more after the original is closed.
fd = os.open(f"{w}/dup", O, 0o600)
d = os.dup(fd)
os.write(d, b"d" * 1004)
os.close(fd)
os.write(d, b"d" * 5)
os.close(d)
# dup2 and fcntl(F_DUPFD): 7 bytes through 50, 3 through 60.
import fcntl
fd = os.open(f"{w}/dup2", O, 0o600)
os.dup2(fd, 50)
os.write(50, b"x" * 7)
os.close(fd)
n = fcntl.fcntl(50, fcntl.F_DUPFD, 60)
os.write(n, b"y" * 3)
os.close(50)
os.close(n)
# Copies between files: sendfile 1,001 bytes, copy_file_range 2,005, splice 777 each way.
src = os.open(f"{w}/src", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
os.write(src, b"s" * 3000)
dst = os.open(f"{w}/sendfile", O, 0o600)
assert os.sendfile(dst, src, 0, 1001) == 1001
os.close(dst)
dst = os.open(f"{w}/copy_file_range", O, 0o600)
assert os.copy_file_range(src, dst, 2005, 0) == 2005
os.close(dst)
r, wp = os.pipe()
dst = os.open(f"{w}/splice", O, 0o600)
assert os.splice(src, wp, 777, offset_src=0) == 777
assert os.splice(r, dst, 777) == 777
os.close(dst)
os.close(src)
# pwritev2 and preadv2 (flags make Python use the *v2 calls).
fd = os.open(f"{w}/v2", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
assert os.pwritev(fd, [b"a" * 100, b"b" * 23], 0, os.RWF_DSYNC) == 123
buf = bytearray(200)
assert os.preadv(fd, [buf], 0, os.RWF_HIPRI) == 123
os.close(fd)
# truncate by path and by descriptor.
fd = os.open(f"{w}/trunc", O, 0o600)
os.write(fd, b"t" * 300)
os.truncate(f"{w}/trunc", 100)
os.ftruncate(fd, 50)
os.close(fd)
# A shared writable mapping marks the file.
fd = os.open(f"{w}/mapped", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
os.write(fd, b"\0" * 4096)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[:5] = b"hello"
m.close()
os.close(fd)
# A thread writes through the main thread's descriptor.
fd = os.open(f"{w}/thread", O, 0o600)
t = threading.Thread(target=lambda: os.write(fd, b"T" * 4321))
t.start(); t.join()
os.close(fd)
# close_range: three files at once.
fds = [os.open(f"{w}/range-{i}", O, 0o600) for i in range(3)]
for f in fds:
    os.write(f, b"r")
os.closerange(min(fds), max(fds) + 1)
# A daemon's log: workers forked after the open write 1,000 bytes each and exit; the
# parent writes 10 and closes last.
log = os.open(f"{w}/log", O | os.O_APPEND, 0o600)
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        os.write(log, b"w" * 1000)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
os.write(log, b"p" * 10)
os.close(log)
# The parent closes first: the last worker to exit ends the file.
log = os.open(f"{w}/log2", O | os.O_APPEND, 0o600)
kids = []
for i in range(2):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.2)
        os.write(log, b"w" * 500)
        os._exit(0)
    kids.append(pid)
os.close(log)
for pid in kids:
    os.waitpid(pid, 0)
# A child that shares the descriptor table (clone(CLONE_FILES) without threads) closes a
# file: the probe keys descriptors by process, so it learns of that close only when this
# process opens another file at the same number. Both rows must be whole: the first
# file's close (11 bytes) and the second file's open and close (22).
if os.uname().machine == "x86_64":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"{w}/shared-first", O, 0o600)
    os.write(fd, b"f" * 11)
    pid = libc.syscall(56, 0x400 | 17, 0, 0, 0, 0)  # SYS_clone: CLONE_FILES | SIGCHLD
    if pid == 0:
        os.close(fd)
        os._exit(0)
    os.waitpid(pid, 0)
    fd2 = os.open(f"{w}/shared-second", O, 0o600)
    assert fd2 == fd, (fd, fd2)
    os.write(fd2, b"s" * 22)
    os.close(fd2)
# Exit without close: 4,444 bytes.
pid = os.fork()
if pid == 0:
    fd = os.open(f"{w}/leaked", O, 0o600)
    os.write(fd, b"l" * 4444)
    os._exit(0)
os.waitpid(pid, 0)
# Closed on exec (Python's descriptors are O_CLOEXEC): 77 bytes; one kept across the exec
# (inheritable): 5 bytes, then sh writes 3 and exits.
fd = os.open(f"{w}/cloexec", O, 0o600)
os.write(fd, b"c" * 77)
kept = os.open(f"{w}/inherited", O, 0o600)
os.write(kept, b"i" * 5)
os.set_inheritable(kept, True)
sys.stdout.flush()
os.execv("/bin/sh", ["sh", "-c", f"printf abc >&{kept}"])
'''
    p = subprocess.run([sys.executable, "-c", code, w])
    check("the file workload ran", p.returncode, 0)


# A file name with a newline, a tab, bytes that are not UTF-8 and a 4-byte character;
# argv elements of non-UTF-8 bytes: 100 KiB (cut at --argv-max-bytes, 32 KiB) and 200 KiB
# (longer than the kernel takes for one string: the exec fails with E2BIG).
ODD_NAME = b"odd-\n\t\xff\xfe-\xf0\x9f\x98\x80.dat"
BIG_ARG = bytes(0x80 + i % 0x40 for i in range(100 << 10))  # continuation bytes: never UTF-8
HUGE_ARG = b"\xff" * (200 << 10)


def odd_names(w):
    fd = os.open(os.path.join(w.encode(), ODD_NAME), os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"123")
    os.close(fd)
    subprocess.run([b"/bin/true", b"odd-arg-\xc3\x28", BIG_ARG], check=True)
    try:
        subprocess.run([b"/bin/true", b"huge-arg", HUGE_ARG])
    except OSError:
        pass


def exec_workloads(w):
    """Execs that fail, and execs whose path is not the file that runs."""
    for argv in (["/nonexistent/prog", "a"], [f"{w}/noexec", "b"]):
        try:
            subprocess.run(argv)
        except (FileNotFoundError, PermissionError):
            pass
    # fexecve of /bin/true; a symlink to it; a shell script.
    subprocess.run([sys.executable, "-c", r'''
import os
fd = os.open("/bin/true", os.O_RDONLY)
pid = os.fork()
if pid == 0:
    os.execve(fd, ["true-by-fd"], {})
os.waitpid(pid, 0)
'''], check=True)
    subprocess.run([f"{w}/link-true", "via-link"], check=True)
    subprocess.run([f"{w}/script.sh", "by-script"], check=True)


def main():
    recorder, capq_bin = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        raise SystemExit("test_live_files.py must run as root (it loads BPF programs)")
    work = tempfile.mkdtemp(prefix="capture-files-")
    cap = os.path.join(work, "capture")
    w = os.path.join(work, "w")
    os.mkdir(w)

    # Open before the recorder starts, written before (10 bytes) and after (20), still
    # open when it stops.
    pre = subprocess.Popen([sys.executable, "-c", r'''
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600)
os.write(fd, b"b" * 10)
print("ready", flush=True)
sys.stdin.readline()
os.write(fd, b"a" * 20)
print("written", flush=True)
sys.stdin.readline()
''', f"{w}/preexisting"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pre.stdout.readline()

    rec = start(recorder, ["--output-dir", cap, "--probes", "exec,file"])
    time.sleep(1)  # the start-up scan of open files

    with open(f"{w}/noexec", "w") as f:
        f.write("#!/bin/sh\n")
    os.symlink("/bin/true", f"{w}/link-true")
    with open(f"{w}/script.sh", "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(f"{w}/script.sh", 0o755)
    workloads(w)
    exec_workloads(w)
    odd_names(w)
    pre.stdin.write("\n")
    pre.stdin.flush()
    pre.stdout.readline()
    # Held open across the end of the capture: 321 bytes.
    held = subprocess.Popen([sys.executable, "-c", r'''
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600)
os.write(fd, b"h" * 321)
print("ready", flush=True)
sys.stdin.readline()
''', f"{w}/held"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    held.stdout.readline()
    time.sleep(0.5)
    rec.send_signal(15)
    tail = rec.stderr.read()
    check("recorder exits 0 on SIGTERM", rec.wait(timeout=60), 0)
    print(tail.strip())
    for p in (pre, held):
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait()

    def closes(name):
        rows = capq(capq_bin, cap, f"""SELECT comm, bytes_read, bytes_written, reads, writes, closed_by, preexisting,
                   mmap_write FROM file WHERE op = 'close' AND abs_path = '{w}/{name}' ORDER BY ktime_ns""")
        return [(r["bytes_read"], r["bytes_written"], r["reads"], r["writes"], r["closed_by"]) for r in rows]

    want = {
        # name: [(bytes_read, bytes_written, reads, writes, closed_by)], one close row each
        "dup": [(0, 1009, 0, 2, "close")],
        "dup2": [(0, 10, 0, 2, "close")],
        "src": [(3783, 3000, 3, 1, "close")],
        "sendfile": [(0, 1001, 0, 1, "close")],
        "copy_file_range": [(0, 2005, 0, 1, "close")],
        "splice": [(0, 777, 0, 1, "close")],
        "v2": [(123, 123, 1, 1, "close")],
        "thread": [(0, 4321, 0, 1, "close")],
        "range-0": [(0, 1, 0, 1, "close")],
        "range-1": [(0, 1, 0, 1, "close")],
        "range-2": [(0, 1, 0, 1, "close")],
        "log": [(0, 3010, 0, 4, "close")],
        "log2": [(0, 1000, 0, 2, "exit")],
        "leaked": [(0, 4444, 0, 1, "exit")],
        "shared-first": [(0, 11, 0, 1, "close")],
        "shared-second": [(0, 22, 0, 1, "close")],
        "cloexec": [(0, 77, 0, 1, "exec")],
        "inherited": [(0, 8, 0, 2, "exit")],
        # a: written here first, then read by cat; b: written by tee; both close their files.
        "a": [(0, 1234, 0, 1, "close"), (1234, 0, 2, 0, "close")],
        "b": [(0, 1234, 0, 1, "close")],
        "held": [(0, 321, 0, 1, "capture_end")],
        "preexisting": [(0, 20, 0, 1, "capture_end")],
    }
    for name, rows in want.items():
        check(f"{name}: one close row with its sums", closes(name), rows)
    # The redirect and the pipeline's c: written by head and tee through sh's descriptor;
    # which process lets go last depends on the shell.
    for name, n in [("redir", 5555), ("c", 1234)]:
        got = [(r[1], r[4] in ("close", "exit")) for r in closes(name)]
        check(f"{name} (shell redirect): one close row, {n} bytes written", got, [(n, True)])

    rows = capq(capq_bin, cap, f"""SELECT op, path, length, ret FROM file WHERE op = 'truncate'
               AND abs_path = '{w}/trunc' ORDER BY ktime_ns""")
    check("truncate by path and ftruncate by descriptor", [(r["path"], r["length"], r["ret"]) for r in rows],
          [("{}/trunc".format(w), 100, 0), (f"{w}/trunc", 50, 0)])
    rows = capq(capq_bin, cap, f"SELECT mmap_write FROM file WHERE op = 'close' AND abs_path = '{w}/mapped'")
    check("a shared writable mapping marks the file", [r["mmap_write"] for r in rows], [True])
    rows = capq(capq_bin, cap, f"""SELECT op, preexisting, path, pid FROM file WHERE abs_path = '{w}/preexisting'
               ORDER BY ktime_ns""")
    check("a file open before the recorder: listed at start, its sums from then",
          [(r["op"], r["preexisting"], r["path"], r["pid"]) for r in rows],
          [("open", True, f"{w}/preexisting", pre.pid), ("close", True, f"{w}/preexisting", pre.pid)])
    rows = capq(capq_bin, cap, f"""SELECT count(*) AS n FROM file o JOIN file c USING (file_id)
               WHERE o.op = 'open' AND c.op = 'close' AND o.abs_path LIKE '{w}/%' AND c.abs_path = o.abs_path""")
    n_closes = capq(capq_bin, cap, f"SELECT count(*) AS n FROM file WHERE op = 'close' AND abs_path LIKE '{w}/%'")
    check("every close row joins its open row on file_id", rows[0]["n"], n_closes[0]["n"])

    # --- exec: failures with their error, and the file that actually ran.
    rows = capq(capq_bin, cap, f"""SELECT path, argv, failed, ret, error, exe_path FROM exec
               WHERE failed AND (path = '/nonexistent/prog' OR path = '{w}/noexec') ORDER BY ktime_ns""")
    check("failed execs: path, argv and error as asked",
          [(r["path"], r["argv"], r["failed"], r["ret"], r["error"], r["exe_path"]) for r in rows],
          [("/nonexistent/prog", ["/nonexistent/prog", "a"], True, -2, "ENOENT", None),
           (f"{w}/noexec", [f"{w}/noexec", "b"], True, -13, "EACCES", None)])
    true_bin = os.path.realpath("/bin/true")
    for what, where, want in [
        ("fexecve", "array_has(argv, 'true-by-fd')", true_bin),
        ("a symlinked binary", "array_has(argv, 'via-link')", true_bin),
        ("a script (its interpreter)", "array_has(argv, 'by-script')", os.path.realpath("/bin/sh")),
    ]:
        rows = capq(capq_bin, cap, f"SELECT path, exe_path, failed FROM exec WHERE {where}")
        check(f"exec_path names the file that ran: {what} ({rows[0]['path'] if rows else '-'})",
              [(r["exe_path"], r["failed"]) for r in rows], [(want, False)])

    # --- names and arguments kept exactly: valid UTF-8 as it is, anything else in *_raw.
    odd = os.path.join(w.encode(), ODD_NAME)
    rows = capq(capq_bin, cap, f"""SELECT op, encode(path_raw, 'hex') AS p, encode(abs_path_raw, 'hex') AS a,
               abs_path, bytes_written FROM file WHERE abs_path LIKE '{w}/odd-%' ORDER BY ktime_ns""")
    check("a file name with newline, tab, 0xff 0xfe and a 4-byte character: exact in path_raw, abs_path_raw",
          [(r["op"], r["p"], r["a"], r["bytes_written"]) for r in rows],
          [("open", odd.hex(), odd.hex(), 0), ("close", odd.hex(), odd.hex(), 3)])
    check("... and the string column shows U+FFFD for the invalid bytes only",
          {r["abs_path"] for r in rows}, {odd.decode("utf-8", "replace")})
    rows = capq(capq_bin, cap, """SELECT argv, encode(argv_raw[2], 'hex') AS a1, length(encode(argv_raw[3], 'hex')) / 2 AS n3,
               argv_truncated FROM exec WHERE NOT failed AND argv[2] LIKE 'odd-arg-%'""")
    want_cut = BIG_ARG[:(32 << 10) - len(b"/bin/true\0odd-arg-\xc3\x28\0")]
    check("argv of non-UTF-8 bytes: exact in argv_raw, cut at 32 KiB and flagged",
          [(r["argv"][1], r["a1"], r["n3"], r["argv_truncated"]) for r in rows],
          [("odd-arg-\ufffd(", b"odd-arg-\xc3\x28".hex(), len(want_cut), True)])
    raw = duckdb.sql(f"SELECT argv_raw[3] FROM '{cap}/exec/**/*.parquet' WHERE argv[2] LIKE 'odd-arg-%'").fetchall()
    check("DuckDB reads argv_raw as the exact bytes", [bytes(r[0]) for r in raw], [want_cut])
    rows = capq(capq_bin, cap, """SELECT error, length(encode(argv_raw[3], 'hex')) / 2 AS n, argv_truncated FROM exec
               WHERE failed AND argv[2] = 'huge-arg'""")
    # Read string by string from the caller's memory: the last one cut to the room left,
    # less its NUL.
    check("a 200 KiB argument: the exec fails (E2BIG), its argv kept to the limit and flagged",
          [(r["error"], r["n"], r["argv_truncated"]) for r in rows],
          [("E2BIG", (32 << 10) - len(b"/bin/true\0huge-arg\0") - 1, True)])
    check_no_drops(capq_bin, cap)
    finish("files", work)


if __name__ == "__main__":
    main()
