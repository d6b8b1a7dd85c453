#!/usr/bin/env bash
# Live benchmark (not a test): an open/close storm and an exec storm, on 1 and 2 worker
# processes, untraced, under capture_linux_rotating (every probe it has, writing Parquet)
# and under bpftrace printing one line per event, all in one run.
#
#   sudo -E scripts/bench-live.sh [--opens N] [--execs N] [--workloads open,open-py,tree,exec]
#                                 [--workers 1,2] [--rounds N] [--against OTHER_RECORDER_BINARY]
#                                 [--recorder-args ARGS] [--no-peers]
#
# Installs bpftrace (Debian/Ubuntu) when missing, builds the recorder, capq and the storm
# workload in the release profile, then runs scripts/bench_live.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-live.sh loads BPF programs: run it as root (sudo -E scripts/bench-live.sh)" >&2
    exit 1
fi
target=${CARGO_TARGET_DIR:-target}
command -v bpftrace >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bpftrace; }
cargo build --release --locked -q -p agent-linux --features with-ebpf-load --bin capture_linux_rotating --example storm
cargo build --release --locked -q -p capq
python3 scripts/bench_live.py "$target/release/capture_linux_rotating" "$target/release/capq" \
    "$target/release/examples/storm" "$@"
