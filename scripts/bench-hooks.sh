#!/usr/bin/env bash
# Benchmark of the file probe's two syscall hooks under one Debian kernel booted with qemu
# (software emulation, one CPU, time counted in guest instructions: both hooks run on the
# same emulated machine in the same run, and the host's noise does not reach the guest's
# clock): fexit on each recorded syscall's wrapper against the tp_btf/sys_exit raw
# tracepoint, which every syscall passes. This host's kernel refuses fexit (EPERM), so
# the comparison can only be made in a guest.
#
#   scripts/bench-hooks.sh [--rounds N] [--against RECORDER] [SUITE:PACKAGE]
#                                                   (as root; default trixie:auto)
#
# Builds the recorder and the storm workload (release), boots the kernel once, and in each
# round runs every workload untraced, under `--probes file --syscall-hook fexit` and under
# `--syscall-hook sys-exit`, the three taking turns to go first:
#   open     storm open: open, write 64 bytes, close (only recorded syscalls)
#   open-py  the same loop in Python (fstat, lseek, ioctl and more between them)
#   tcp      storm tcp: short loopback TCP connections (socket syscalls, which the file
#            probe does not record, and a close of each socket)
# Prints per workload the untraced seconds (best), each hook's slowdown (best round over
# best untraced), and the paired difference fexit - sys_exit over that round's untraced
# time: median [lowest, highest] and its 95% confidence interval.
#
# --against RECORDER compares two builds instead of two hooks: RECORDER (another build's
# capture_linux_rotating) in place of fexit, this build under `--syscall-hook sys-exit`,
# and RECORDER under the same hook (`--syscall-hook sys-exit` if it has the option; builds
# before it had only that hook). The paired column is then RECORDER - this build: what
# this build saves of the workload's time, the probe's work in the kernel and the
# recorder's in user space together, on one CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5
against=
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --against) against=$(realpath "$2"); shift 2 ;;
        -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
done
if [ -n "$against" ] && [ ! -x "$against" ]; then
    echo "bench-hooks.sh: --against $against: not an executable (give another build's capture_linux_rotating)" >&2
    exit 2
fi
kernel=${1:-trixie:auto}
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-hooks.sh installs packages and boots kernels: run it as root" >&2
    exit 1
fi
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -q -p agent-linux --features with-ebpf-load --bin capture_linux_rotating --example storm
. scripts/qemu-lib.sh
qemu_setup
kdir=$(fetch_kernel "${kernel%%:*}" "${kernel#*:}")
work=$(mktemp -d)
out=$work/out
mkdir -p "$out"
cp "$target/release/capture_linux_rotating" "$target/release/examples/storm" scripts/pystorm.py "$out/"
# The two recorders compared: a variant's name, then its command.
first=fexit
first_cmd="/mnt/capture_linux_rotating --syscall-hook fexit"
if [ -n "$against" ]; then
    cp "$against" "$out/against"
    first=against
    first_cmd=/mnt/against
    if "$against" --help 2>/dev/null | grep -q -- --syscall-hook; then
        first_cmd="$first_cmd --syscall-hook sys-exit"
    fi
    echo "against: $against (in the guest: $first_cmd)"
fi
cat >"$out/guest.sh" <<EOF
uname -r >/mnt/uname
mkdir -p /tmp/storm
: >/mnt/results
workload() {
    case \$1 in
        open) /mnt/storm open 100000 /tmp/storm ;;
        open-py) /usr/bin/python3 /mnt/pystorm.py 30000 /tmp/storm ;;
        tcp) /mnt/storm tcp 3000 ;;
    esac
}
variant() {
    local v=\$1 r=\$2 rec=""
    if [ \$v != base ]; then
        case \$v in
            $first) cmd="$first_cmd" ;;
            sys-exit) cmd="/mnt/capture_linux_rotating --syscall-hook sys-exit" ;;
        esac
        \$cmd --probes file --output-dir /tmp/cap -q >/tmp/rec.log 2>&1 &
        rec=\$!
        i=0
        until grep -q recording /tmp/rec.log || ! kill -0 \$rec 2>/dev/null; do
            i=\$((i + 1)); [ \$i -lt 1200 ] || break; sleep 0.5
        done
        grep -q recording /tmp/rec.log || { cat /tmp/rec.log >>/mnt/errors; return; }
    fi
    for w in open open-py tcp; do
        echo "\$r \$w \$v \$(workload \$w)" >>/mnt/results
    done
    if [ -n "\$rec" ]; then
        kill -TERM \$rec
        wait \$rec || echo "round \$r \$v: the recorder exited \$?" >>/mnt/errors
        sed -n '/: stopped: /,\$p' /tmp/rec.log >>/mnt/summaries # and what follows it
        rm -rf /tmp/cap
    fi
}
for r in \$(seq 1 $rounds); do
    case \$((r % 3)) in
        1) order="base $first sys-exit" ;;
        2) order="$first sys-exit base" ;;
        0) order="sys-exit base $first" ;;
    esac
    for v in \$order; do variant \$v \$r; done
done
EOF
# One CPU, its time counted in instructions (qemu's -icount: 1 ns of guest time per
# instruction, idle time skipped): what the recorder does, in the kernel and in user
# space, comes out of the workload's time, and the host's own noise does not reach the
# guest's clock.
qemu_accel=tcg,thread=single qemu_smp=1 qemu_extra="-icount shift=0,sleep=off" qemu_timeout=3600 \
    boot_guest "$kdir" "$out"
echo "== $release: guest ran $guest_seconds s, $rounds rounds"
if [ -s "$out/errors" ] || [ ! -s "$out/results" ]; then
    echo "the guest did not finish its rounds:" >&2
    tail -n 20 "$out/errors" "$work/console.log" 2>/dev/null >&2
    exit 1
fi
# Every recorder run must have dropped nothing, or its time is not the probe's whole cost.
echo "recorder runs: $(grep -c ': stopped: ' "$out/summaries"), rows per run $(grep -o 'stopped: [0-9]* events' "$out/summaries" | awk '{print $2}' | sort -n | uniq | tr '\n' ' ')"
if grep ': stopped: ' "$out/summaries" | grep -qv ' 0 dropped, 0 malformed'; then
    cat "$out/summaries" >&2
    echo "a recorder run dropped or could not decode records (above): its time is not comparable" >&2
    exit 1
fi
python3 - "$out/results" "$first" <<'PY'
import math, statistics, sys
first = sys.argv[2]
runs = {}
for line in open(sys.argv[1]):
    r, w, v, t = line.split()
    runs.setdefault(w, {}).setdefault(v, {})[int(r)] = float(t)

def median_ci(xs):
    n, k, below = len(xs), 0, 0.0
    while below + math.comb(n, k) / 2**n <= 0.025:
        below += math.comb(n, k) / 2**n
        k += 1
    return (xs[k - 1], xs[n - k]) if k else (None, None)

print(f"{'workload':<8} {'base s':>7} {first:>7} {'sys_exit':>8} {first + ' - sys_exit (paired)':>34}")
for w, by in runs.items():
    rounds = sorted(set(by["base"]) & set(by[first]) & set(by["sys-exit"]))
    base = min(by["base"][r] for r in rounds)
    d = sorted((by[first][r] - by["sys-exit"][r]) / by["base"][r] for r in rounds)
    lo, hi = median_ci(d)
    ci = f" ci {lo:+.3f},{hi:+.3f}" if lo is not None else ""
    print(f"{w:<8} {base:>7.3f} {min(by[first][r] for r in rounds) / base:>6.2f}x "
          f"{min(by['sys-exit'][r] for r in rounds) / base:>7.2f}x "
          f"{statistics.median(d):+7.3f}x [{d[0]:+.2f},{d[-1]:+.2f}]{ci}")
PY
rm -rf "$work"
