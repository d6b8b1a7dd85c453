#!/usr/bin/env bash
# The whole test suite: what README tells you to run and what CI (.ci/run) runs.
#
#   scripts/test.sh
#
# 1. builds everything once in the release profile (tests, tools and benchmarks share it),
# 2. runs the unit and integration tests (decoder, segments, capq's CLI),
# 3. writes a synthetic capture and reads it with DuckDB, pyarrow, pandas and Polars
#    from PyPI (installed into a virtualenv), checking they agree with capq; drives capq's
#    prompt on a pseudo-terminal (10,000 statements: answers, flat memory);
# 4. with ENABLE_EBPF_BUILD=1 (as root; what CI runs): installs the eBPF build packages,
#    builds the recorder with the with-ebpf-load feature, checks the BPF objects' BTF
#    against the Rust ABI mirror, compiles the objects for arm64 too, and runs the live
#    tests: the real recorder, real BPF programs in this kernel, real workloads (exec and
#    file; the ways real programs hold files and run programs, test_live_files.py; TCP on
#    loopback for net; dnsmasq with dig, getent and Python for dns); then the same on
#    Debian's 7.x, 6.12, 6.1 and 5.10 kernels booted under qemu, and on arm64 (the recorder
#    cross-built by scripts/build-arm64.sh, Debian's arm64 6.12 under qemu-system-aarch64)
#    (scripts/test-kernels.sh), where the module probe is tested too.
# Environment: CARGO_TARGET_DIR (default target), CAPTURE_VENV (default .venv),
# ENABLE_EBPF_BUILD (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${CAPTURE_VENV:-.venv}

step() { printf '\n== %s  [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

# Everything below runs in suite(); its output is also kept in a log, from which the last
# line counts what passed: cargo's test results plus the Python checks' ok/FAIL lines. A
# carriage return ends a line too: a progress bar (Spark's) redrawn with them can come
# before a check's line with no newline between.
log=$(mktemp)
summary() {
    awk 'BEGIN { RS = "[\r\n]" }
         /^test result:/ { p += $4; f += $6 }
         /^ok  / { p++ } /^FAIL / { f++ }
         END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
    rm -f "$log"
}

suite() {

tmp=$(mktemp -d)
arm64_pid=
trap '[ -z "$arm64_pid" ] || kill -- "-$arm64_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
if [ "${ENABLE_EBPF_BUILD:-0}" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ENABLE_EBPF_BUILD=1 needs root (it installs packages and loads BPF programs): sudo -E scripts/test.sh" >&2
        exit 1
    fi
    # The arm64 recorder and userland build meanwhile (most of it downloads and unpacks
    # Debian packages, from nothing): its output comes at the arm64 step.
    # (In a process group of its own, so that a failure here stops all of it.)
    setsid scripts/build-arm64.sh >"$tmp/arm64.paths" 2>"$tmp/arm64.log" &
    arm64_pid=$!
fi

# capq with `s3` (the fleet test reads s3:// with it): every cargo run here asks for
# object_store's S3 client, so the DataFusion stack, which depends on object_store, is
# built once.
step "build (release profile, all targets)"
cargo build --release --locked --workspace --all-targets --features capq/s3

step "unit and integration tests"
cargo test --release --locked --workspace --features capq/s3

step "real readers: DuckDB, pyarrow, pandas, Polars from PyPI"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-readers.txt
"$target/release/examples/synth_capture" "$tmp/capture" 30000 7
"$venv/bin/python" scripts/check_readers.py "$tmp/capture" "$target/release/capq"
"$venv/bin/python" scripts/test_repl.py "$target/release/capq" "$tmp/capture"

if [ "${ENABLE_EBPF_BUILD:-0}" = 1 ]; then
    # Before anything else installs packages (one apt at a time), and so that the live
    # tests have the machine to themselves.
    step "arm64: the recorder cross-built (Debian sid's Rust in a chroot), an arm64 userland"
    arm64_status=0
    wait "$arm64_pid" || arm64_status=$?
    arm64_pid=
    cat "$tmp/arm64.log"
    if [ "$arm64_status" -ne 0 ]; then
        echo "scripts/build-arm64.sh failed (exit $arm64_status): its output is above" >&2
        exit 1
    fi

    step "eBPF build packages and preflight"
    scripts/ebpf-preflight.sh --install
    # The live DNS test's real server and clients, from Debian's packages.
    if ! command -v dnsmasq >/dev/null || ! command -v dig >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsmasq-base dnsutils >/dev/null
    fi

    step "eBPF build: recorder with-ebpf-load, BTF of the objects vs the Rust mirror"
    # Only agent-linux's own dependency graph: libbpf-rs changes the features of libc,
    # which, built workspace-wide, would rebuild the whole DataFusion stack once more.
    # README's build (no `upload`) refuses --upload in one line, before it touches the
    # output directory; then the build with uploads, which the live tests run.
    cargo build --release --locked -p agent-linux --features with-ebpf-load --bins
    if out=$("$target/release/capture_linux_rotating" --upload s3://bucket/prefix --output-dir "$tmp/no-upload" 2>&1); then
        echo "a build without \`upload\` accepted --upload: $out" >&2
        exit 1
    fi
    if [ "$(wc -l <<<"$out")" -ne 1 ] || ! grep -q 'built without uploads; rebuild it with `cargo build --release -p agent-linux --features with-ebpf-load,upload`' <<<"$out" || [ -e "$tmp/no-upload" ]; then
        echo "a build without \`upload\` given --upload: want one line naming the rebuild and no output directory, got: $out" >&2
        exit 1
    fi
    cargo build --release --locked -p agent-linux --features with-ebpf-load,upload --bins
    cargo test --release --locked -p agent-linux --features with-ebpf-load,upload
    make -C bpf check

    step "live tests: real recorder, real probes, real workloads"
    "$venv/bin/python" scripts/test_live.py "$target/release/capture_linux_rotating" "$target/release/capq"
    "$venv/bin/python" scripts/test_live_files.py "$target/release/capture_linux_rotating" "$target/release/capq"
    "$venv/bin/python" scripts/test_live_net.py "$target/release/capture_linux_rotating" "$target/release/capq"
    "$venv/bin/python" scripts/test_live_dns.py "$target/release/capture_linux_rotating" "$target/release/capq"
    "$venv/bin/python" scripts/test_live_crash.py "$target/release/capture_linux_rotating" "$target/release/capq"

    step "fleet: uploads to a real S3-compatible server (moto), capq over s3://, Spark and DuckDB"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-fleet.txt
    "$venv/bin/python" scripts/test_live_fleet.py "$target/release/capture_linux_rotating" "$target/release/capq" \
        "$target/release/examples/synth_capture"

    step "other kernels: Debian's 7.x, 6.12, 6.1 and 5.10 under qemu, arm64's 6.12, exact rows, the hook matrix"
    # shellcheck disable=SC2086 # $arm64: two paths, the recorder and its userland
    scripts/test-kernels.sh --arm64 $(cat "$tmp/arm64.paths") "$target/release/capture_linux_rotating" "$target/release/capq"
else
    step "eBPF build and live tests skipped (ENABLE_EBPF_BUILD=1 as root runs them)"
fi

step "all tests passed"
}

set +e
( set -e; suite ) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary
exit "$status"
