#!/usr/bin/env bash
# Network benchmark (not a test): a TCP connection storm, a bulk transfer and a DNS query
# storm on loopback, untraced, under capture_linux_rotating (every probe) and under
# libbpf-tools' tcplife, all in one run.
#
#   scripts/bench-net.sh [--conns N] [--bulk-mib M] [--queries Q] [--rounds R]     (as root)
#
# Installs dnsmasq, dig and libbpf-tools (Debian/Ubuntu) when missing, builds the
# recorder, capq and the storm workload in the release profile, then runs
# scripts/bench_net.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-net.sh loads BPF programs: run it as root" >&2
    exit 1
fi
target=${CARGO_TARGET_DIR:-target}
need=""
command -v dnsmasq >/dev/null || need="$need dnsmasq-base"
command -v tcplife >/dev/null || [ -x /usr/sbin/tcplife ] || need="$need libbpf-tools"
if [ -n "$need" ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
fi
cargo build --release --locked -q -p agent-linux --features with-ebpf-load --bin capture_linux_rotating --example storm
cargo build --release --locked -q -p capq
python3 scripts/bench_net.py "$target/release/capture_linux_rotating" "$target/release/capq" \
    "$target/release/examples/storm" "$@"
