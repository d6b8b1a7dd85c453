#!/usr/bin/env python3
"""capq's interactive prompt on a real terminal (a pty): it answers, and its memory stays
flat over many statements (issue 12 found 14 KB kept per statement).

usage: test_repl.py CAPQ CAPTURE_DIR [STATEMENTS]
"""
import os
import pty
import select
import sys
import tempfile
import time

from livecheck import check, finish


def main():
    capq, cap = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    home = tempfile.mkdtemp(prefix="capq-repl-")
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["HOME"] = home  # its history file goes here
        os.execv(capq, [capq, "--dir", cap, "--format", "csv"])
    out = bytearray()

    def drain(wait):
        while select.select([fd], [], [], wait)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            out.extend(chunk)
            wait = 0

    def rss_kb():
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

    def send(data):
        # The terminal's buffers are small both ways: read its output while writing.
        while data:
            _, writable, _ = select.select([], [fd], [], 0.05)
            if writable:
                data = data[os.write(fd, data):]
            drain(0)

    def answered(i):
        # As a person types: the next statement once this one's answer and prompt are
        # back (typed ahead, a line editor may see keys while the terminal is cooked).
        want = f"a,n\r\n{i},".encode()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            at = out.rfind(want)
            if at >= 0 and b"capq> " in out[at:]:
                del out[:at]
                return True
            drain(0.05)
        return False

    drain(2.0)
    samples = {}
    for i in range(1, n + 1):
        # Distinct statements: each is a new history entry and a new plan.
        send(f"SELECT {i} AS a, count(*) AS n FROM exec;\n".encode())
        if not answered(i):
            break
        if i in (n // 10, n):
            drain(1.0)
            samples[i] = rss_kb()
    send(b"\\q\n")
    deadline = time.monotonic() + 60
    while True:
        drain(0.1)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            break
    if not done:
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    if not done:
        print(f"     capq did not exit within 60 s of \\q; its last output: {text[-300:]!r}")
    check(f"the prompt answered all {n} statements", sorted(samples), [n // 10, n])
    check("capq exits 0 on \\q", os.waitstatus_to_exitcode(status), 0)
    first, last = samples.get(n // 10, 0), samples.get(n, 1 << 30)
    print(f"     RSS after {n // 10} statements: {first} KB, after {n}: {last} KB")
    check(f"memory flat over {n - n // 10} statements (under 2 MiB more)", last - first < 2048, True)
    finish("REPL", home)


if __name__ == "__main__":
    main()
