//! Facts about this host and its clocks that go into every segment.

use std::sync::OnceLock;

use capture_schemas::abi;

/// Identity of the machine and boot the records come from.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub host: String,
    pub kernel_release: String,
    pub boot_id: String,
    /// Seed of [`abi::exec_id`], derived from `boot_id`.
    pub boot_seed: u64,
}

impl HostInfo {
    /// Reads host name, kernel release and boot id; a fact that cannot be read is "unknown".
    pub fn current() -> HostInfo {
        let read =
            |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into());
        let boot_id = read("/proc/sys/kernel/random/boot_id");
        HostInfo {
            host: read("/proc/sys/kernel/hostname"),
            kernel_release: read("/proc/sys/kernel/osrelease"),
            boot_seed: abi::boot_seed(&boot_id),
            boot_id,
        }
    }

    /// A fixed identity, for tests and synthetic captures that must be reproducible.
    pub fn fixed(host: &str, boot_id: &str) -> HostInfo {
        HostInfo {
            host: host.into(),
            kernel_release: "synthetic".into(),
            boot_seed: abi::boot_seed(boot_id),
            boot_id: boot_id.into(),
        }
    }
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// CLOCK_BOOTTIME now, in ns, as the kernel keeps it: the clock of
/// `bpf_ktime_get_boot_ns()`. Inside a time namespace our CLOCK_BOOTTIME is shifted by the
/// namespace's offset (`/proc/self/timens_offsets`); it is taken off here.
pub fn boottime_ns() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        std::fs::read_to_string("/proc/self/timens_offsets").ok().and_then(|s| timens_boottime(&s)).unwrap_or(0)
    });
    clock_ns(libc::CLOCK_BOOTTIME) - offset
}

/// The boottime offset in the text of `/proc/PID/timens_offsets`, in ns.
fn timens_boottime(text: &str) -> Option<i64> {
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        (f.next()? == "boottime").then_some(())?;
        let secs: i64 = f.next()?.parse().ok()?;
        let nanos: i64 = f.next()?.parse().ok()?;
        Some(secs * 1_000_000_000 + nanos)
    })
}

/// Wall clock now, in ns since the Unix epoch.
pub fn realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Offset that turns CLOCK_BOOTTIME into wall-clock ns; taken once per batch (two vDSO reads).
pub fn boot_to_wall_offset_ns() -> i64 {
    realtime_ns() - boottime_ns()
}

#[cfg(test)]
mod tests {
    use super::timens_boottime;

    #[test]
    fn the_boottime_offset_of_a_time_namespace() {
        assert_eq!(
            timens_boottime("monotonic           0         0\nboottime        86400       500\n"),
            Some(86_400_000_000_500)
        );
        assert_eq!(timens_boottime("monotonic 5 0\n"), None);
        assert_eq!(timens_boottime("boottime -3 0\n"), Some(-3_000_000_000));
    }
}
