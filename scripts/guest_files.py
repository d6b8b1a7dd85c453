"""The files workload of the kernel guests (scripts/test-kernels.sh, amd64 and arm64), run in
a shell that exits 7: a file created, written (12,345 bytes), read back, renamed and
unlinked; then one open file held through three descriptors, a forked child's inherited one
(1,000 bytes) and a dup (234), left open at exit. The checks are in scripts/qemu-lib.sh.
"""
import os

fd = os.open("data.txt", os.O_CREAT | os.O_WRONLY, 0o600)
os.write(fd, b"x" * 12345)
os.close(fd)
fd = os.open("data.txt", os.O_RDONLY)
assert len(os.read(fd, 20000)) == 12345
os.close(fd)
os.rename("data.txt", "moved.txt")
os.unlink("moved.txt")
fd = os.open("inherit.txt", os.O_CREAT | os.O_WRONLY, 0o600)
pid = os.fork()
if pid == 0:
    os.write(fd, b"k" * 1000)
    os._exit(0)
os.waitpid(pid, 0)
d = os.dup(fd)
os.close(fd)
os.write(d, b"k" * 234)
