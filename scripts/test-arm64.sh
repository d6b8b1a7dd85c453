#!/usr/bin/env bash
# The recorder on arm64: cross-built for aarch64-unknown-linux-gnu, then run in Debian's
# arm64 kernel booted with qemu-system-aarch64 -machine virt -cpu max (software
# emulation) over a Debian arm64 userland, and its capture checked here with capq,
# exactly: execs, a failed exec, an exit code, file rows through fork and dup, a TCP
# exchange, no drops; and the hooks each probe chose there.
#
#   sudo scripts/test-arm64.sh CAPQ [SUITE]            (the kernel's suite; default trixie)
#
# The cross toolchain is Debian's own, in a chroot of sid: rustc, cargo and
# libstd-rust-dev:arm64 of one version (rustup's targets are not on the registries this
# project may use; trixie's rustc 1.85 is older than the locked dependencies need:
# DataFusion 1.94, object_store's let chains 1.88), gcc-aarch64-linux-gnu, and libelf and
# zlib for arm64. The userland is `debootstrap --arch arm64` run through qemu-user
# (binfmt_misc). Both, the kernel package and the crates are cached in
# ~/.cache/capture-arm64; sid's archive is read even when its Release file has expired.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
capq=$(realpath "$1")
suite=${2:-trixie}
if [ "$(id -u)" -ne 0 ]; then
    echo "test-arm64.sh installs packages, builds chroots and boots a kernel: run it as root" >&2
    exit 1
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/capture-arm64
mkdir -p "$cache"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/sbin:/usr/sbin
# arm64 binaries run through qemu-user (debootstrap's second stage in the userland).
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
mounted=()
cleanup() {
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
in_chroot() {
    local root=$1
    shift
    for fs in proc dev; do
        if ! mountpoint -q "$root/$fs"; then
            if [ $fs = proc ]; then mount -t proc proc "$root/proc"; else mount --bind /dev "$root/dev"; fi
            mounted+=("$root/$fs")
        fi
    done
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # This machine's CA bundle (an intercepting proxy's certificate may be in it).
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"
    chroot "$root" /usr/bin/env SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt CARGO_HTTP_CAINFO=/etc/ssl/certs/host-ca.crt "$@"
}

# 1. The toolchain: a sid chroot with Debian's Rust and the arm64 cross pieces.
tc=$cache/sid
if [ ! -x "$tc/usr/bin/aarch64-linux-gnu-gcc" ]; then
    rm -rf "$tc"
    debootstrap --variant=minbase --include=ca-certificates sid "$tc" http://deb.debian.org/debian >/dev/null
    in_chroot "$tc" sh -c 'dpkg --add-architecture arm64 &&
        apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rustc cargo \
            libstd-rust-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross clang llvm \
            libelf-dev:arm64 zlib1g-dev:arm64 libelf-dev zlib1g-dev pkg-config make gcc libc6-dev >/dev/null'
fi
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
echo "== cross build: $((SECONDS - start)) s, $(file -b "$recorder" | cut -d, -f1-2)"

# 3. The userland the guest runs the recorder and the workload in.
rootfs=$cache/rootfs
if [ ! -x "$rootfs/usr/bin/python3" ]; then
    rm -rf "$rootfs"
    debootstrap --arch=arm64 --variant=minbase --include=python3,iproute2 trixie "$rootfs" \
        http://deb.debian.org/debian >/dev/null
fi

# 4. The kernel and busybox, arm64 packages of $suite.
apt_dir=$cache/apt-$suite
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb [arch=arm64] http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
apt_arm64() {
    "$@" -q -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" -o APT::Sandbox::User=root \
        -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Acquire::Check-Valid-Until=false
}
apt_arm64 apt-get update >/dev/null
pkg=$(apt_arm64 apt-cache --names-only search '^linux-image-[0-9][0-9.]*(-[0-9]+|\+deb[0-9]+)-arm64-unsigned$' |
    awk '{print $1}' | sort -V | tail -n 1)
kdir=$cache/$pkg
if [ ! -d "$kdir/root/boot" ]; then
    rm -rf "$kdir" && mkdir -p "$kdir"
    (cd "$kdir" && apt_arm64 apt-get download "$pkg" busybox-static >/dev/null &&
        for deb in ./*.deb; do dpkg -x "$deb" root; done && rm -f ./*.deb)
    [ -e "$kdir/root/lib" ] || ln -s usr/lib "$kdir/root/lib"
    find "$kdir/root/lib/modules/" -name '*.ko.xz' -exec xz -d {} +
    depmod -b "$kdir/root" "$(ls "$kdir/root/lib/modules")"
fi
release=$(ls "$kdir/root/lib/modules")

# 5. The guest: busybox initramfs with the 9p modules; the userland over 9p, read-only.
work=$(mktemp -d)
out=$work/out
mkdir -p "$out" "$work/initramfs"/{bin,modules,proc,sys,dev,host}
cp "$kdir/root/usr/bin/busybox" "$work/initramfs/bin/busybox"
for m in 9pnet_virtio 9p; do
    modprobe -d "$kdir/root" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$work/initramfs/modules/"
    basename "$ko" >>"$work/initramfs/modules/order"
done
. scripts/qemu-lib.sh
write_init "$work/initramfs/init"
(cd "$work/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"
cp "$recorder" "$out/capture_linux_rotating"
cp scripts/guest_files.py "$out/"
cat >"$out/guest.sh" <<'EOF'
uname -rm >/mnt/uname
cd /tmp
RUST_LOG=info /mnt/capture_linux_rotating --output-dir /tmp/capture --flush-interval 200ms -q >/tmp/recorder.log 2>&1 &
rec=$!
i=0
until grep -q recording /tmp/recorder.log || ! kill -0 $rec 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 1200 ] || break; sleep 0.5
done
mkdir -p /tmp/work && cd /tmp/work
/bin/sh -c '/nonexistent-kernel-test 2>/dev/null; /usr/bin/python3 /mnt/guest_files.py; /bin/true kernel-test-12345; exit 7'
/usr/bin/python3 -c '
import os, socket
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
s = socket.create_connection(ls.getsockname()); c, _ = ls.accept()
s.sendall(b"q" * 100000); n = 0
while n < 100000: n += len(c.recv(65536))
c.sendall(b"r" * 54321); n = 0
while n < 54321: n += len(s.recv(65536))
s.close(); c.close()
print(os.getpid(), ls.getsockname()[1])' >/mnt/net.txt
sleep 2
kill -TERM $rec
wait $rec
echo $? >/mnt/recorder.rc
cp /tmp/recorder.log /mnt/recorder.log
cp -r /tmp/capture /mnt/capture
EOF
start=$SECONDS
timeout 1800 qemu-system-aarch64 -machine virt -cpu max -accel tcg,thread=multi -smp 2 -m 2048 -nographic -no-reboot \
    -kernel "$kdir/root/boot/vmlinuz-$release" -initrd "$work/initramfs.gz" \
    -append "console=ttyAMA0 panic=-1 quiet" \
    -virtfs "local,path=$rootfs,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=out,security_model=none" >"$work/console.log" 2>&1 || true
echo "== $release (arm64, $suite): guest ran $((SECONDS - start)) s"

# 6. The checks.
fails=0
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; fails=$((fails + 1)); }
q() { "$capq" --dir "$out/capture" --format csv "$1" | tail -n +2; }
if [ "$(cat "$out/recorder.rc" 2>/dev/null)" != 0 ]; then
    fail "$release: the recorder did not run to a clean stop; console, guest and recorder logs:"
    tail -n 20 "$work/console.log" "$out/guest.log" "$out/recorder.log" 2>/dev/null | sed 's/^/     /'
    exit 1
fi
sed 's/^/     recorder: /' "$out/recorder.log"
[ "$(cat "$out/uname")" = "$release aarch64" ] && ok "$release: booted aarch64, recorder stopped cleanly" ||
    fail "$release: guest ran $(cat "$out/uname")"
check_exec_rows
check_file_rows
read -r npid nport <"$out/net.txt" || true
got=$(q "SELECT string_agg(concat_ws(' ', direction, pid, bytes_sent, bytes_recv), ';' ORDER BY direction)
         FROM net WHERE proto = 'tcp' AND NOT interim AND ${nport:-0} IN (sport, dport)")
[ "$got" = "in $npid 54321 100000;out $npid 100000 54321" ] && ok "$release: net TCP rows exact, both sides" ||
    fail "$release: net TCP rows '$got'"
for pr in file module; do
    line=$(grep -o "$pr probe: its syscalls by .*" "$out/recorder.log" || grep -o "$pr probe unavailable.*" "$out/recorder.log" || true)
    echo "     $pr: ${line:-no line}"
done
got=$(q "SELECT coalesce(sum(dropped_ringbuf_full + dropped_kernel_other + dropped_backpressure + dropped_write_error + malformed), 0) FROM stats")
[ "$got" = 0 ] && ok "$release: zero drops, zero malformed" || fail "$release: $got dropped or malformed"
rm -rf "$work"
[ "$fails" -eq 0 ]
