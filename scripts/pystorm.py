"""The open storm in Python (scripts/bench_live.py's open-py, scripts/bench-hooks.sh):
N times open DIR/pystorm-<pid>.dat, write 64 bytes, close (Python's own fstat, lseek and
ioctl calls between them); prints the loop's elapsed seconds, like `storm`.

usage: pystorm.py N DIR
"""
import os
import sys
import time

n, path = int(sys.argv[1]), f"{sys.argv[2]}/pystorm-{os.getpid()}.dat"
open(path, "wb").close()
data = b"x" * 64
t0 = time.perf_counter()
for _ in range(n):
    with open(path, "r+b") as f:
        f.write(data)
print(f"{time.perf_counter() - t0:.6f}")
os.unlink(path)
