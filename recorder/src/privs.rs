//! Signals and privileges of the capture binary.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT and SIGTERM.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM set [`STOP`]; the reader then flushes every segment and exits.
pub fn install_stop_handlers() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic,
        // which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Adds `delta` to the calling thread's niceness, as nice(1) does (on Linux, nice(2)
/// changes only the calling thread; threads it starts afterwards inherit it).
pub fn renice(delta: i32) -> std::io::Result<()> {
    if delta == 0 {
        return Ok(());
    }
    // SAFETY: nice takes no pointers. It returns the new niceness, which can be -1, so
    // errno tells a failure apart.
    unsafe {
        *libc::__errno_location() = 0;
        if libc::nice(delta) == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// CAP_BPF's number (Linux 5.8+).
const CAP_BPF: u32 = 39;

fn capset(effective: u64, permitted: u64) -> std::io::Result<()> {
    let hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [
        CapData { effective: effective as u32, permitted: permitted as u32, inheritable: 0 },
        CapData { effective: (effective >> 32) as u32, permitted: (permitted >> 32) as u32, inheritable: 0 },
    ];
    // SAFETY: capset with a valid header and two data words, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Drops every capability (effective, permitted, inheritable, bounding, ambient) and sets
/// no-new-privs. Once the probes are attached and `/proc` has been read, the recorder
/// needs none: its maps and ring buffers are open, and it writes files it owns.
///
/// Except on kernels that check CAP_BPF on every bpf(2) call, even on a map it already
/// holds open (Linux 5.10 with `kernel.unprivileged_bpf_disabled` set, Debian's default):
/// `bpf_works` is tried with CAP_BPF still permitted but not effective, and when it fails
/// CAP_BPF alone is kept. Returns whether it was.
pub fn drop_capabilities(bpf_works: impl FnOnce() -> bool) -> std::io::Result<bool> {
    // SAFETY: prctl with valid arguments; failures are reported, not UB.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _ = libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for cap in 0..64 {
            // Fails for caps past the kernel's last one, and without CAP_SETPCAP: fine.
            let _ = libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
    let bpf = 1u64 << CAP_BPF;
    let had_bpf = effective_caps() & bpf != 0;
    capset(0, if had_bpf { bpf } else { 0 })?;
    if !had_bpf || bpf_works() {
        capset(0, 0)?;
        return Ok(false);
    }
    capset(bpf, bpf)?;
    Ok(true)
}

/// The effective capability mask of this process, from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string())))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0)
}
