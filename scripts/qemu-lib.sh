# Shared by scripts/test-kernels.sh and scripts/bench-hooks.sh (sourced, not run): Debian's
# kernel packages fetched into a cache and booted under qemu (software emulation, no KVM
# needed) with a busybox initramfs that mounts a root read-only over 9p (this machine's,
# or for arm64 a Debian arm64 userland) and runs OUT/guest.sh in a chroot of it, OUT
# shared read-write at /mnt.
#
#   qemu_setup [arm64]            installs qemu and the initramfs tools when missing
#   fetch_kernel SUITE PACKAGE [ARCH]
#                                 prints the directory the package is unpacked in
#                                 (PACKAGE auto: the suite's newest kernel for ARCH,
#                                 amd64 by default; arm64 adds its busybox-static)
#   boot_guest KDIR OUT [ARCH ROOT]
#                                 boots it with OUT/guest.sh in a chroot of ROOT (default
#                                 /, amd64); returns when the guest is off (its console
#                                 in OUT/../console.log); sets $release and $guest_seconds
#                                 ($qemu_accel, $qemu_smp, $qemu_extra, $qemu_timeout:
#                                 other qemu settings)
qemu_setup() {
    need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    if [ "${1:-}" = arm64 ]; then command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm); fi
    [ -x /bin/busybox ] || need+=(busybox-static)
    command -v cpio >/dev/null || need+=(cpio)
    command -v xz >/dev/null || need+=(xz-utils)
    command -v zstd >/dev/null || need+=(zstd)
    command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    fi
    export PATH=$PATH:/sbin:/usr/sbin
}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/capture-kernels
mkdir -p "$cache"

# apt-get or apt-cache with a package list and cache of their own for one Debian suite and
# architecture ($arch: amd64 unless set); the archive is read even when its Release file
# has expired (sid's, between pushes).
apt_dir() {
    if [ "${arch:-amd64}" = amd64 ]; then echo "$cache/apt-$1"; else echo "$cache/apt-$1-$arch"; fi
}
apt_suite() {
    local tool=$1 suite=$2 a=${arch:-amd64}
    shift 2
    local dir
    dir=$(apt_dir "$suite")
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    echo "deb [arch=$a] http://deb.debian.org/debian $suite main" >"$dir/sources.list"
    "$tool" -q -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root \
        -o APT::Architecture="$a" -o APT::Architectures="$a" -o Acquire::Check-Valid-Until=false "$@"
}

# Downloads and unpacks a kernel package; prints the directory it is in.
fetch_kernel() {
    local suite=$1 pkg=$2 arch=${3:-amd64}
    if [ "$pkg" = auto ]; then
        apt_suite apt-get "$suite" update >/dev/null
        # Names: linux-image-6.1.0-50-amd64-unsigned (bookworm and older),
        # linux-image-6.12.107+deb13-amd64-unsigned (trixie), and in sid only
        # linux-image-7.2.13+deb14-amd64, which holds no kernel (see below).
        pkg=$(apt_suite apt-cache "$suite" --names-only search "^linux-image-[0-9][0-9.]*(-[0-9]+|\\+deb[0-9]+)-$arch(-unsigned)?\$" 2>/dev/null |
            awk '{print $1}' | sort -V | tail -n 1)
        [ -n "$pkg" ] || { echo "no kernel package found in $suite" >&2; return 1; }
    fi
    local dir=$cache/$pkg
    if [ ! -d "$dir/root/boot" ]; then
        [ -n "$(ls "$(apt_dir "$suite")"/lists/*Packages* 2>/dev/null)" ] || apt_suite apt-get "$suite" update >/dev/null
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$dir" && apt_suite apt-get "$suite" download "$pkg" >/dev/null && dpkg -x ./*.deb root && rm -f ./*.deb)
        # An arm64 guest's initramfs needs an arm64 busybox.
        if [ "$arch" != amd64 ]; then
            (cd "$dir" && apt_suite apt-get "$suite" download busybox-static >/dev/null && dpkg -x ./*.deb root && rm -f ./*.deb)
        fi
        # From 7.x (sid) the image package is empty: the kernel and its modules come in
        # linux-binary-unsigned-VERSION, linux-modules-VERSION and linux-base-VERSION.
        if ! compgen -G "$dir/root/boot/vmlinuz-*" >/dev/null && ! compgen -G "$dir/root/usr/lib/modules/*/vmlinuz*" >/dev/null; then
            local ver=${pkg#linux-image-}
            ver=${ver%-unsigned}
            (cd "$dir" && apt_suite apt-get "$suite" download "linux-binary-unsigned-$ver" "linux-modules-$ver" "linux-base-$ver" >/dev/null &&
                for deb in ./*.deb; do dpkg -x "$deb" root; done && rm -f ./*.deb)
        fi
    fi
    # trixie on ship modules under /usr/lib only (merged /usr), compressed: one path for
    # both layouts, and plain .ko files (busybox's insmod in the initramfs and the module
    # checks load them as the older packages have them).
    [ -e "$dir/root/lib" ] || ln -s usr/lib "$dir/root/lib"
    find "$dir/root/lib/modules/" -name '*.ko.xz' -exec xz -d {} +
    find "$dir/root/lib/modules/" -name '*.ko.zst' -exec zstd -q -d --rm {} +
    depmod -b "$dir/root" "$(ls "$dir/root/lib/modules")"
    echo "$dir"
}

# The guest's /init: modules for 9p, the shares, then the test in a chroot of the host.
write_init() {
    cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "/modules/$m" 2>/dev/null; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host
mount -t 9p -o trans=virtio,version=9p2000.L out /host/mnt
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t debugfs debugfs /host/sys/kernel/debug 2>/dev/null
mount -t devtmpfs dev /host/dev
mount -t tmpfs tmp /host/tmp
mount -t cgroup2 none /host/sys/fs/cgroup
ip link set lo up
chroot /host /bin/sh /mnt/guest.sh >/host/mnt/guest.log 2>&1
echo "guest: done ($?)"
sync
poweroff -f
EOF
    chmod +x "$1"
}


# Boots the kernel in KDIR with OUT/guest.sh in a chroot of ROOT (OUT's parent holds the
# initramfs and the console log); sets $release and $guest_seconds.
boot_guest() {
    local kdir=$1 out=$2 arch=${3:-amd64} root=${4:-/}
    local work
    work=$(dirname "$out")
    release=$(ls "$kdir/root/lib/modules")
    mkdir -p "$work/initramfs"/{bin,modules,proc,sys,dev,host}
    if [ "$arch" = amd64 ]; then
        cp /bin/busybox "$work/initramfs/bin/busybox"
    else
        cp "$kdir/root/usr/bin/busybox" "$work/initramfs/bin/busybox"
    fi
    rm -f "$work/initramfs/modules/order"
    for m in 9pnet_virtio 9p virtio_pci; do
        modprobe -d "$kdir/root" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | awk '!seen[$0]++' | while read -r ko; do
        cp "$ko" "$work/initramfs/modules/"
        basename "$ko" >>"$work/initramfs/modules/order"
    done
    write_init "$work/initramfs/init"
    (cd "$work/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"
    # The image: /boot/vmlinuz-RELEASE, or from 7.x beside the modules.
    local vmlinuz=$kdir/root/boot/vmlinuz-$release
    [ -e "$vmlinuz" ] || vmlinuz=$(ls "$kdir/root/lib/modules/$release"/vmlinuz* | head -n 1)
    local qemu=(qemu-system-x86_64) console=ttyS0
    if [ "$arch" = arm64 ]; then
        # Software emulation of a virt board with every feature qemu knows (-cpu max).
        qemu=(qemu-system-aarch64 -machine virt -cpu max) console=ttyAMA0
    fi
    local start boot
    # A kernel that panics before the guest's script started (no OUT/guest.log: nothing
    # of the test had run) is booted again, up to twice, saying so: Debian's 7.2 panicked
    # in one CI boot of many (an int3 oops in sched_clock_cpu while the kernel patched its
    # own code, software emulation racing on two vCPUs). A panic after that start counts.
    for boot in 1 2 3; do
        start=$SECONDS
        # shellcheck disable=SC2086 # $qemu_extra: more options, split on spaces
        timeout "${qemu_timeout:-900}" "${qemu[@]}" -accel "${qemu_accel:-tcg,thread=multi}" -smp "${qemu_smp:-2}" -m 2048 \
            -nographic -no-reboot ${qemu_extra:-} \
            -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
            -append "console=$console panic=-1 quiet" \
            -virtfs "local,path=$root,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
            -virtfs "local,path=$out,mount_tag=out,security_model=none" >"$work/console.log" 2>&1 || true
        guest_seconds=$((SECONDS - start))
        [ ! -e "$out/guest.log" ] && [ "$boot" -lt 3 ] && grep -q 'Kernel panic' "$work/console.log" || break
        echo "== $release: the kernel panicked while booting, before the guest's script ran; booting again ($(grep -m 1 -o 'RIP: .*' "$work/console.log" || echo 'no RIP line'))"
        cp "$work/console.log" "$work/console.$boot.log"
    done
}

# The checks of the files workload (scripts/guest_files.py, run by a shell that first
# fails to exec /nonexistent-kernel-test and ends with /bin/true kernel-test-12345 and
# exit 7), over the capture through the caller's q, ok and fail, named by $release; each
# counts for the probe in $P (exec, then file).
check_exec_rows() {
    P=exec
    local want got
    want="/bin/true /usr/bin/python3"
    got=$(q "SELECT string_agg(c.path, ' ' ORDER BY c.path) FROM exec c JOIN exec p ON c.parent_exec_id = p.exec_id
             WHERE p.path = '/bin/sh' AND array_to_string(p.argv, ' ') LIKE '%kernel-test-12345%' AND NOT c.failed")
    [ "$got" = "$want" ] && ok "$release: exec rows joined to their shell" || fail "$release: exec children '$got', want '$want'"
    got=$(q "SELECT x.exit_code FROM exit x JOIN exec e USING (exec_id)
             WHERE e.path = '/bin/sh' AND array_to_string(e.argv, ' ') LIKE '%kernel-test-12345%'")
    [ "$got" = 7 ] && ok "$release: exit code 7" || fail "$release: exit code '$got', want 7"
    got=$(q "SELECT concat_ws(' ', error, path, array_to_string(argv, ' ')) FROM exec WHERE failed AND path = '/nonexistent-kernel-test'")
    [ "$got" = "ENOENT /nonexistent-kernel-test /nonexistent-kernel-test" ] && ok "$release: a failed exec, with its error" ||
        fail "$release: failed exec row '$got'"
    got=$(q "SELECT exe_path FROM exec WHERE array_to_string(argv, ' ') = '/bin/true kernel-test-12345'")
    case $got in /host/*/true) ok "$release: exe_path names the file that ran ($got)" ;; *) fail "$release: exe_path '$got'" ;; esac
}

check_file_rows() {
    P=file
    local w want got
    # Resolved paths are seen from the guest's real root, not the chroot: /host/tmp/...
    w=/host/tmp/work
    want="open data.txt $w/data.txt 0 0;close $w/data.txt $w/data.txt 0 12345;open data.txt $w/data.txt 0 0;close $w/data.txt $w/data.txt 12345 0;rename data.txt $w/data.txt 0 0 moved.txt;unlink moved.txt $w/moved.txt 0 0"
    got=$(q "SELECT string_agg(concat_ws(' ', op, path, abs_path, bytes_read, bytes_written, path2), ';' ORDER BY ktime_ns)
             FROM file WHERE abs_path LIKE '%/tmp/work/%' AND abs_path NOT LIKE '%inherit%'")
    [ "$got" = "$want" ] && ok "$release: file rows exact" || fail "$release: file rows
     got:  $got
     want: $want"
    got=$(q "SELECT string_agg(concat_ws(' ', bytes_written, writes, closed_by), ';') FROM file
             WHERE op = 'close' AND abs_path = '$w/inherit.txt'")
    [ "$got" = "1234 2 exit" ] && ok "$release: one close row per open file: fork, dup, exit without close" ||
        fail "$release: inherit.txt close rows '$got', want '1234 2 exit'"
}
