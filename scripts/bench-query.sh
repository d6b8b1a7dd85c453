#!/usr/bin/env bash
# Query benchmark (not a test): capq against DuckDB and Polars on one synthetic capture.
#
#   scripts/bench-query.sh [--events 30000000] [--rounds 3] [--dir DIR] [--only NAME,...]
#                          [--against OTHER_CAPQ]     (this build against another, no DuckDB)
#
# Builds capq and the synth_capture example (release), writes a capture of EVENTS
# synthetic events through the real pipeline into DIR (default target/bench-query-EVENTS;
# kept, and reused while it is there), installs DuckDB and Polars from PyPI into the venv
# if missing, then runs scripts/bench_query.py. Environment: CARGO_TARGET_DIR (default
# target), CAPTURE_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${CAPTURE_VENV:-.venv}
events=30000000
dir=""
rest=()
while [ $# -gt 0 ]; do
    case "$1" in
        --events) events=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) rest+=("$1"); shift ;;
    esac
done
dir=${dir:-$target/bench-query-$events}
cargo build --release --locked -q -p capq
cargo build --release --locked -q -p agent-linux --example synth_capture
if [ ! -e "$dir/.complete" ]; then
    rm -rf "$dir"
    echo "writing $events synthetic events into $dir"
    "$target/release/examples/synth_capture" "$dir" "$events" 1
    touch "$dir/.complete"
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import duckdb, polars" 2>/dev/null ||
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-readers.txt
exec "$venv/bin/python" scripts/bench_query.py "$target/release/capq" "$dir" "${rest[@]}"
