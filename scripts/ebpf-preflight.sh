#!/usr/bin/env bash
# Checks what building and running the eBPF recorder needs, one verdict per item.
#
#   scripts/ebpf-preflight.sh            check only; exit 0 when everything needed is there
#   scripts/ebpf-preflight.sh --install  install the build packages first (Debian/Ubuntu,
#                                        Fedora, Arch), then check
#
# Build: clang, libelf, zlib, pkg-config, make, a C compiler (libbpf-sys builds its
# vendored libbpf). Run: kernel >= 5.8 (BPF ring buffers), BTF, tracefs (informational), privileges,
# and for each probe in schemas/src/probes.rs whether its hooks exist on this kernel, and
# which hook takes the file and module probes' syscalls (fexit or tp_btf/sys_exit).
set -u

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

install_packages() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if command -v apt-get >/dev/null; then
        $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
            clang llvm libelf-dev zlib1g-dev pkg-config make gcc libc6-dev
    elif command -v dnf >/dev/null; then
        $sudo dnf install -y clang llvm elfutils-libelf-devel zlib-devel pkgconf make gcc glibc-devel
    elif command -v pacman >/dev/null; then
        $sudo pacman -S --needed --noconfirm clang llvm libelf zlib pkgconf make gcc
    else
        echo "FAIL  install: no apt-get, dnf or pacman; install clang, libelf, zlib, pkg-config, make by hand" >&2
        return 1
    fi
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --install) install_packages || exit 1 ;;
    "") ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

fail=0
ok()   { printf 'ok    %-22s %s\n' "$1" "$2"; }
warn() { printf 'WARN  %-22s %s\n' "$1" "$2"; }
bad()  { printf 'FAIL  %-22s %s\n' "$1" "$2"; fail=1; }

# --- build ---
if command -v clang >/dev/null; then ok clang "$(clang --version | head -1)"; else bad clang "missing: scripts/ebpf-preflight.sh --install"; fi
if command -v cc >/dev/null; then ok "C compiler" "$(cc --version | head -1)"; else bad "C compiler" "missing (gcc): --install"; fi
if command -v make >/dev/null; then ok make "$(make --version | head -1)"; else bad make "missing: --install"; fi
if command -v pkg-config >/dev/null; then
    ok pkg-config "$(pkg-config --version)"
    if pkg-config --exists libelf; then ok libelf "$(pkg-config --modversion libelf)"; else bad libelf "missing (libelf-dev / elfutils-libelf-devel): --install"; fi
    if pkg-config --exists zlib; then ok zlib "$(pkg-config --modversion zlib)"; else bad zlib "missing (zlib1g-dev / zlib-devel): --install"; fi
else
    bad pkg-config "missing: --install"
fi

# --- kernel ---
rel=$(uname -r)
major=${rel%%.*}; rest=${rel#*.}; minor=${rest%%.*}
if [ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -ge 8 ]; }; then
    ok kernel "$rel"
else
    bad kernel "$rel: BPF ring buffers need 5.8 or later"
fi
if [ -r /sys/kernel/btf/vmlinux ]; then
    ok BTF "/sys/kernel/btf/vmlinux"
else
    bad BTF "/sys/kernel/btf/vmlinux missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y"
fi
tracefs=""
for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
    if [ -d "$d/events" ]; then tracefs=$d; break; fi
done
if [ -n "$tracefs" ]; then
    ok tracefs "$tracefs"
elif [ -d /sys/kernel/tracing ]; then
    ok tracefs "not mounted (the probes attach to BTF raw tracepoints and do not need it)"
else
    ok tracefs "none (not needed: the probes attach to BTF raw tracepoints)"
fi

# --- privileges ---
if [ "$(id -u)" -eq 0 ]; then
    ok privileges "root"
else
    eff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
    # CAP_PERFMON is bit 38, CAP_BPF bit 39.
    if [ $(( (0x$eff >> 38) & 3 )) -eq 3 ]; then
        ok privileges "CAP_BPF and CAP_PERFMON"
    else
        unpriv=$(cat /proc/sys/kernel/unprivileged_bpf_disabled 2>/dev/null || echo "?")
        bad privileges "not root and no CAP_BPF+CAP_PERFMON (kernel.unprivileged_bpf_disabled=$unpriv): run as root, or: sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_sys_resource,cap_sys_nice+ep target/release/capture_linux_rotating"
    fi
fi

# --- hooks per probe: from the probe list (schemas/src/probes.rs), as the loader reads it ---
has_btf_type() {
    [ -r /sys/kernel/btf/vmlinux ] && grep -aq "$1" /sys/kernel/btf/vmlinux
}
cgroup2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
here=$(cd "$(dirname "$0")/.." && pwd)
probe_list() {
    # One line per probe: NAME OBJECT HOOK... (a hook written ?name is optional).
    awk '
        /^[[:space:]]*name: "/ { split($0, a, "\""); name = a[2] }
        /^[[:space:]]*object: "/ { split($0, a, "\""); obj = a[2] }
        /^[[:space:]]*hooks: &\[/ { inhooks = 1; hooks = "" }
        inhooks {
            line = $0
            while (match(line, /"\??[a-z_]+\/[a-z_0-9]+"/)) {
                hooks = hooks " " substr(line, RSTART + 1, RLENGTH - 2)
                line = substr(line, RSTART + RLENGTH)
            }
            if ($0 ~ /\]/) { inhooks = 0; print name, obj hooks }
        }' "$here/schemas/src/probes.rs"
}
while read -r name obj hooks; do
    if [ ! -f "$here/bpf/$obj.bpf.c" ]; then
        warn "probe $name" "not part of this build (no bpf/$obj.bpf.c)"
        continue
    fi
    have="" lack="" optional_lack=""
    for h in $hooks; do
        opt=""
        case $h in \?*) opt=1; h=${h#\?} ;; esac
        case $h in
            tp_btf/*) has_btf_type "btf_trace_${h#tp_btf/}" && present=1 || present="" ;;
            iter/*) has_btf_type "bpf_iter_${h#iter/}" && present=1 || present="" ;;
            cgroup_skb/*|cgroup/*) [ -n "$cgroup2" ] && present=1 || present="" ;;
            *) present="" ;;
        esac
        if [ -n "$present" ]; then have="$have $h"
        elif [ -n "$opt" ]; then optional_lack="$optional_lack $h"
        else lack="$lack $h"
        fi
    done
    if [ -n "$lack" ]; then
        warn "probe $name" "unavailable on this kernel: no${lack} (the other probes run)"
    elif [ -n "$optional_lack" ]; then
        ok "probe $name" "${have# } (without${optional_lack})"
    else
        ok "probe $name" "${have# }"
    fi
done < <(probe_list)
# --- the syscall hook of the file and module probes: fexit where the kernel lets it load,
# else tp_btf/sys_exit. Only loading tells (a kernel may have every part and still refuse
# it), so with a built recorder its --list-probes answers; without one, what is visible. ---
recorder=""
for d in "${CARGO_TARGET_DIR:-$here/target}/release" "${CARGO_TARGET_DIR:-$here/target}/debug"; do
    [ -x "$d/capture_linux_rotating" ] && { recorder=$d/capture_linux_rotating; break; }
done
if [ -n "$recorder" ] && [ "$(id -u)" -eq 0 ]; then
    "$recorder" --list-probes 2>/dev/null | awk '/^[a-z]/ {p = $1} $1 == "syscalls:" {sub(/^ *syscalls: /, ""); print p "\t" $0}' |
        while IFS=$'\t' read -r p how; do
            case $how in
                fexit*) ok "syscalls of $p" "$how" ;;
                *) warn "syscalls of $p" "$how" ;;
            esac
        done
else
    case $(uname -m) in x86_64) wrapper=__x64_sys_read ;; aarch64) wrapper=__arm64_sys_read ;; *) wrapper=none ;; esac
    direct=$( { zcat /proc/config.gz 2>/dev/null || cat "/boot/config-$rel" 2>/dev/null; } | grep -c '^CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS=y')
    if has_btf_type "$wrapper" && [ "${direct:-0}" -gt 0 ]; then
        ok "syscall hook" "fexit likely (syscall wrappers in BTF, BPF trampolines built in); loading decides: capture_linux_rotating --list-probes (as root)"
    else
        warn "syscall hook" "tp_btf/sys_exit likely (no $wrapper in BTF or no CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS): every syscall passes it; capture_linux_rotating --list-probes (as root) tells"
    fi
fi
[ -n "$cgroup2" ] && ok cgroup2 "$cgroup2 (the dns probe attaches to its root)" || warn cgroup2 "no cgroup v2 mount: the dns probe cannot attach (mount -t cgroup2 none /sys/fs/cgroup)"

if [ "$fail" -eq 0 ]; then
    echo "verdict: ready to build and run the eBPF recorder"
else
    echo "verdict: not ready (see FAIL lines; scripts/ebpf-preflight.sh --install installs the build packages)"
fi
exit "$fail"
