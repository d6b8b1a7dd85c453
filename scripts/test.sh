#!/usr/bin/env bash
# The whole test suite: what README tells you to run and what CI (.ci/run) runs.
#
#   scripts/test.sh
#
# 1. builds everything once in the release profile (tests, tools and benchmarks share it),
# 2. runs the unit and integration tests (decoder, segments, capq's CLI),
# 3. writes a synthetic capture and reads it with DuckDB, pyarrow, pandas and Polars
#    from PyPI (installed into a virtualenv), checking they agree with capq.
# Environment: CARGO_TARGET_DIR (default target), CAPTURE_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${CAPTURE_VENV:-.venv}

step() { printf '\n== %s\n' "$*"; }

step "build (release profile, all targets)"
cargo build --release --locked --workspace --all-targets

step "unit and integration tests"
cargo test --release --locked --workspace

step "real readers: DuckDB, pyarrow, pandas, Polars from PyPI"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-readers.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$target/release/examples/synth_capture" "$tmp/capture" 30000 7
"$venv/bin/python" scripts/check_readers.py "$tmp/capture" "$target/release/capq"

step "all tests passed"
