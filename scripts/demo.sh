#!/usr/bin/env bash
# The main job on a fresh Debian/Ubuntu machine, in one command:
#
#   scripts/demo.sh [DURATION]          (default 20s; run as a user with sudo, or as root)
#
# installs what is needed (Rust via rustup if cargo is missing, the eBPF build packages),
# builds the recorder and capq, records for DURATION while a small workload runs, and
# shows what was seen with capq queries. The capture stays in ./capture.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! command -v cargo >/dev/null; then
    echo "== installing Rust (rustup)"
    command -v curl >/dev/null || { $sudo apt-get update -q && $sudo apt-get install -y -q curl ca-certificates; }
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
echo "== eBPF build packages"
scripts/ebpf-preflight.sh --install
echo "== building (release; the first build takes a while)"
# One cargo run for both: built apart, the recorder's arrow and parquet (fewer features)
# are built twice, and each build's last crates leave a core idle (README, Build cost).
# Without S3 (features `upload` and `capq/s3`, see README's Fleet): the demo records here.
cargo build --release --locked -p agent-linux -p capq --features agent-linux/with-ebpf-load
target=${CARGO_TARGET_DIR:-target}

echo "== recording for $duration into ./capture"
# A small workload, all on this machine: execs, files, a TCP exchange on loopback, and a
# DNS question to a stand-in server on 127.0.0.1:53 that answers NXDOMAIN.
( sleep 2
  for i in 1 2 3; do ls -la /etc >/dev/null; sh -c 'echo demo | wc -c' >/dev/null; cat /etc/os-release >/dev/null; done
  $sudo python3 - <<'PY' >/dev/null 2>&1 || true  # root: the stand-in server binds port 53
import socket, struct, threading
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
def serve():
    c, _ = ls.accept(); c.recv(65536); c.sendall(b"pong" * 100); c.close()
t = threading.Thread(target=serve); t.start()
s = socket.create_connection(ls.getsockname()); s.sendall(b"ping" * 250); s.recv(65536); s.close(); t.join()
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); dns.bind(("127.0.0.1", 53))
def answer():
    q, peer = dns.recvfrom(512)
    dns.sendto(q[:2] + struct.pack("!H", 0x8183) + q[4:], peer)  # the question back, NXDOMAIN
a = threading.Thread(target=answer); a.start()
ask = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); ask.settimeout(2)
name = b"".join(bytes([len(p)]) + p for p in b"demo.test".split(b".")) + b"\0"
ask.sendto(struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1), ("127.0.0.1", 53))
ask.recvfrom(512); a.join()
PY
) &
# Every probe; where the kernel has no module support, the module probe says so in one line.
$sudo "$target/release/capture_linux_rotating" --output-dir capture --duration "$duration"
$sudo chown -R "$(id -u):$(id -g)" capture 2>/dev/null || true

q() { echo; echo "-- $1"; "$target/release/capq" --dir capture "$1"; }
q "SELECT comm, count(*) AS execs FROM exec WHERE NOT from_procfs GROUP BY comm ORDER BY execs DESC LIMIT 10"
q "SELECT p.comm AS parent, c.comm AS child, c.argv FROM exec c JOIN exec p ON c.parent_exec_id = p.exec_id WHERE NOT c.from_procfs LIMIT 10"
q "SELECT op, count(*) AS n, sum(bytes_read) AS bytes_read, sum(bytes_written) AS bytes_written FROM file GROUP BY op ORDER BY n DESC"
q "SELECT comm, pid, proto, direction, owner, outcome, daddr, dport, bytes_sent, bytes_recv FROM net WHERE NOT interim ORDER BY ktime_ns LIMIT 10"
q "SELECT comm, is_response, qname, qtype, rcode, answers, latency_ns FROM dns ORDER BY ktime_ns LIMIT 10"
q "SELECT comm, op, syscall, name, path, error, taint FROM module ORDER BY ktime_ns LIMIT 10"
q "SELECT probe, sum(events) AS events, sum(dropped_ringbuf_full + dropped_kernel_other + dropped_backpressure + dropped_write_error) AS dropped FROM stats GROUP BY probe"
echo
echo "More: $target/release/capq --dir capture --tables    (every table and column)"
