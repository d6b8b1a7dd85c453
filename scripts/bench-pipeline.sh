#!/usr/bin/env bash
# Benchmark of the columnar core: synthetic records -> decoder -> Parquet segments.
#
#   scripts/bench-pipeline.sh [EVENTS]        (default 2000000 file events)
#
# Per table: events/s of wall time, events per CPU-second of the whole process (reader
# and writer threads together), decode-only rate, and bytes on disk per event; then the
# file table under each compression codec, and under each crash journal mode. Records
# are generated before timing starts.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -q -p agent-linux --example bench_pipeline
echo "== every table, zstd (the default)"
"$target/release/examples/bench_pipeline" --events "$events"
for c in snappy lz4 none; do
    echo "== file table, $c"
    "$target/release/examples/bench_pipeline" --events "$events" --tables file --compression "$c" | tail -1
done
# The crash journal's cost: the same binary, the file table under each --journal mode,
# alternating so the VM's drift falls on all alike. `written/event` counts every byte
# handed to write(2) (segments and journals) per event.
echo "== file table, by crash journal mode (3 rounds, alternating)"
for round in 1 2 3; do
    for j in off plain lz4 zstd; do
        printf '%-6s' "$j"
        "$target/release/examples/bench_pipeline" --events "$events" --tables file --journal "$j" | tail -1
    done
done
