#!/usr/bin/env python3
"""Short TCP connections on loopback, as fast as they come: THREADS clients make N in all
to one listener (on PORT, default any free port), each sending one byte at once and
closing; the listener's thread accepts, reads and closes each. State changes come on
every CPU at once, and a softirq often runs one inside another (the net probe's test of
its spare program). Prints this process's pid and the listener's port; exits 1 if a
connection failed (the rows cannot be exact).

usage: tcpstorm.py N THREADS [PORT]
"""
import os
import socket
import sys
import threading

n, threads = int(sys.argv[1]), int(sys.argv[2])
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
ls = socket.socket()
ls.bind(("127.0.0.1", port))
ls.listen(4096)
ls.settimeout(1)
clients_done = threading.Event()
failed = []


def serve():
    served = 0
    while served < n:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            if clients_done.is_set():
                return  # a client failed: no more connections come
            continue
        c.settimeout(None)
        c.recv(16)
        c.close()
        served += 1


def client(k):
    for _ in range(k):
        try:
            s = socket.create_connection(ls.getsockname(), timeout=30)
            s.sendall(b"x")
            s.close()
        except OSError as e:
            failed.append(e)


t = threading.Thread(target=serve)
t.start()
ws = [threading.Thread(target=client, args=(n // threads + (i < n % threads),)) for i in range(threads)]
for w in ws:
    w.start()
for w in ws:
    w.join()
clients_done.set()
t.join()
print(os.getpid(), ls.getsockname()[1], flush=True)
if failed:
    sys.exit(f"tcpstorm.py: {len(failed)} of {n} connections failed, the first: {failed[0]}")
