#!/usr/bin/env bash
# What the arm64 guests of scripts/test-kernels.sh run: the recorder cross-built for
# aarch64-unknown-linux-gnu from this tree's tracked files, and a Debian arm64 userland for
# it and the workload (python3, iproute2, dnsmasq, dig, kmod). Prints one line, the
# recorder's path and the userland's, for test-kernels.sh --arm64 RECORDER ROOT.
#
#   sudo scripts/build-arm64.sh
#
# The cross toolchain is Debian's own, in a chroot of sid: rustc, cargo and
# libstd-rust-dev:arm64 of one version (rustup's targets are not on the registries this
# project may use; trixie's rustc 1.85 is older than the locked dependencies need:
# DataFusion 1.94, object_store's let chains 1.88), gcc-aarch64-linux-gnu, clang for the
# BPF objects, and libelf and zlib for arm64. The userland is `debootstrap --arch arm64`,
# its second stage run through qemu-user (binfmt_misc). Both, and the cargo target dir and
# crates, are cached in ~/.cache/capture-arm64; sid's archive is read even when its
# Release file has expired. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "build-arm64.sh installs packages and builds chroots: run it as root" >&2
    exit 1
fi
exec 3>&1 1>&2
cache=${XDG_CACHE_HOME:-$HOME/.cache}/capture-arm64
mkdir -p "$cache"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/sbin:/usr/sbin
# arm64 binaries run through qemu-user (debootstrap's second stage in the userland).
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
# The chroot's /proc and /dev: mounted by this shell (never inside a $(...), whose changes
# to `mounted` would be lost) and unmounted when it exits, so no bind mount of /dev stays
# in the cache for a later rm -rf to walk into.
mounted=()
cleanup() {
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 143' TERM INT
mount_chroot() {
    local root=$1
    mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc" && mounted+=("$root/proc"); }
    mountpoint -q "$root/dev" || { mount --bind /dev "$root/dev" && mounted+=("$root/dev"); }
}
# Before a tree is removed: whatever is mounted in it (a run stopped half way).
unmount_under() {
    local m
    awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
        umount -l "$m"
    done
}
# Runs a command in the chroot ROOT (mounted by mount_chroot).
in_chroot() {
    local root=$1
    shift
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # This machine's CA bundle (an intercepting proxy's certificate may be in it).
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"
    chroot "$root" /usr/bin/env SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt CARGO_HTTP_CAINFO=/etc/ssl/certs/host-ca.crt "$@"
}

# 1. The toolchain: a sid chroot with Debian's Rust and the arm64 cross pieces.
tc=$cache/sid
if [ ! -x "$tc/usr/bin/aarch64-linux-gnu-gcc" ]; then
    unmount_under "$tc"
    rm -rf "$tc"
    start=$SECONDS
    debootstrap --variant=minbase --include=ca-certificates sid "$tc" http://deb.debian.org/debian >/dev/null
    mount_chroot "$tc"
    in_chroot "$tc" sh -c 'dpkg --add-architecture arm64 &&
        apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rustc cargo \
            libstd-rust-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross clang llvm \
            libelf-dev:arm64 zlib1g-dev:arm64 libelf-dev zlib1g-dev pkg-config make gcc libc6-dev >/dev/null'
    echo "== toolchain chroot (debootstrap sid, apt-get): $((SECONDS - start)) s"
fi
mount_chroot "$tc"
echo "== toolchain: $(in_chroot "$tc" rustc --version), $(in_chroot "$tc" aarch64-linux-gnu-gcc --version | head -n 1)"

# 2. The recorder, cross-built from this tree's tracked files.
rm -rf "$tc/src" && mkdir -p "$tc/src"
git ls-files -z | tar --null -T - -cf - | tar -x -C "$tc/src"
start=$SECONDS
in_chroot "$tc" sh -c 'cd /src &&
    CARGO_HOME=/cargo CARGO_TARGET_DIR=/build \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig \
    cargo build --release --locked -q -p agent-linux --features with-ebpf-load --bin capture_linux_rotating \
        --target aarch64-unknown-linux-gnu'
recorder=$tc/build/aarch64-unknown-linux-gnu/release/capture_linux_rotating
echo "== cross build: $((SECONDS - start)) s, $(readelf -h "$recorder" | sed -n "s/^ *Machine: *//p")"

# 3. The userland the guest runs the recorder and the workload in.
# test-kernels.sh's guest script needs these; a userland made with other packages is made anew.
rootfs=$cache/rootfs
packages=python3,iproute2,dnsmasq-base,bind9-dnsutils,kmod
if [ "$(cat "$rootfs/.capture-packages" 2>/dev/null)" != "$packages" ]; then
    unmount_under "$rootfs"
    rm -rf "$rootfs"
    start=$SECONDS
    debootstrap --arch=arm64 --variant=minbase --include=$packages trixie "$rootfs" \
        http://deb.debian.org/debian >/dev/null
    echo "$packages" >"$rootfs/.capture-packages"
    echo "== arm64 userland (debootstrap, trixie): $((SECONDS - start)) s"
fi
echo "$recorder $rootfs" >&3

