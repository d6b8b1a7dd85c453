#!/usr/bin/env bash
# Soak (not a test): the real recorder under a steady file storm, RSS, CPU and drops
# sampled every 30 s, generated against recorded at the end (scripts/soak.py says how).
#
#   scripts/soak.sh [--minutes 60] [--rate 300000] [--out DIR] [--all-probes]        (as root)
#
# Environment: CARGO_TARGET_DIR (default target), CAPTURE_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${CAPTURE_VENV:-.venv}
if [ "$(id -u)" != 0 ]; then
    echo "soak.sh loads BPF programs: run it as root" >&2
    exit 1
fi
cargo build --release --locked -q -p agent-linux --features with-ebpf-load --bins
cargo build --release --locked -q -p agent-linux --example storm
cargo build --release --locked -q -p capq
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import matplotlib" 2>/dev/null ||
    "$venv/bin/pip" install --quiet --disable-pip-version-check matplotlib==3.11.2
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
exec "$venv/bin/python" scripts/soak.py "$target/release/capture_linux_rotating" "$target/release/capq" \
    "$target/release/examples/storm" "$@"
