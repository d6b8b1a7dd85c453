#!/usr/bin/env bash
# Drops under a sustained burst: RUNS two-worker open storms (ITER open/write/close per
# worker), each under a fresh recorder started with the given options; prints each run's
# worker times and drops, then how many runs dropped records.
#
#   sudo -E scripts/bench-drops.sh [RUNS] [ITER] [-- recorder options...]
#   e.g. scripts/bench-drops.sh 30 200000 -- --nice 0 --writer-queue 10MiB
#
# Builds like bench-live.sh; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}; iter=${2:-200000}
shift $(( $# < 2 ? $# : 2 )); [ "${1:-}" = "--" ] && shift
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-drops.sh loads BPF programs: run it as root (sudo -E scripts/bench-drops.sh)" >&2
    exit 1
fi
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -q -p agent-linux --features with-ebpf-load --bin capture_linux_rotating --example storm
work=$(mktemp -d -t bench-drops.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/scratch"
dropped_runs=0
for i in $(seq "$runs"); do
    rm -rf "$work/cap"
    "$target/release/capture_linux_rotating" --output-dir "$work/cap" -q "$@" 2>"$work/err" &
    rec=$!
    until grep -q recording "$work/err"; do
        kill -0 $rec 2>/dev/null || { cat "$work/err" >&2; exit 1; }
        sleep 0.05
    done
    sleep 0.3
    "$target/release/examples/storm" open "$iter" "$work/scratch" >"$work/w1" &
    w=$!
    "$target/release/examples/storm" open "$iter" "$work/scratch" >"$work/w2"
    wait $w
    sleep 0.3
    kill -TERM $rec
    wait $rec
    drops=$(grep -o '[0-9]* dropped' "$work/err" | cut -d' ' -f1)
    [ "$drops" -gt 0 ] && dropped_runs=$((dropped_runs + 1))
    echo "run $i: workers $(cat "$work/w1" "$work/w2" | paste -sd' ') s, $drops dropped"
done
echo "$dropped_runs of $runs runs dropped records (recorder options: ${*:-none})"
