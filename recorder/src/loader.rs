//! Opens, configures, loads and attaches the BPF probes (libbpf-rs skeletons built from
//! `bpf/*.bpf.c` by `build.rs`).
//!
//! Lifecycle per probe: check its hooks in the kernel's BTF → open → set read-only config
//! and map sizes → load → fill filter maps → attach. A probe that cannot run here is
//! reported in one line and the others go on. libbpf's own messages go to our
//! log; when a load fails, the verifier's log is part of the error.

use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::Mutex;

use capture_schemas::Probe;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, OpenObject, PrintLevel};

#[allow(clippy::all, dead_code, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
mod exec_skel {
    include!(concat!(env!("OUT_DIR"), "/exec_provenance.skel.rs"));
}
#[allow(clippy::all, dead_code, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
mod file_skel {
    include!(concat!(env!("OUT_DIR"), "/file_ops.skel.rs"));
}

/// The compiled BPF objects, for tests that compare their BTF with the Rust mirror.
pub const OBJECTS: &[(&str, &str)] = &[
    ("exec_provenance", concat!(env!("OUT_DIR"), "/exec_provenance.bpf.o")),
    ("file_ops", concat!(env!("OUT_DIR"), "/file_ops.bpf.o")),
];

/// Probes this build carries; the others are not written yet.
pub const BUILT: &[Probe] = &[Probe::Exec, Probe::File];

/// Longest path prefix the kernel-side exclusion filter holds, and how many.
pub const PREFIX_MAX: usize = 64;
pub const PREFIXES_MAX: usize = 8;

/// What the probes are told before they load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The recorder's own process, always excluded.
    pub self_tgid: u32,
    /// Only this process (0: all).
    pub filter_pid: u32,
    /// Only these command names (empty: all).
    pub comms: Vec<String>,
    /// file: paths starting with these are not recorded.
    pub exclude_prefixes: Vec<String>,
    /// exec: bytes of argv and of envp each.
    pub args_max: u32,
    /// file: one row per read/write call as well.
    pub file_rw_events: bool,
    /// file: benchmarks only, the probe cut down to its floor (`CAPTURE_BENCH_FILE_FLOOR`).
    pub file_floor: FileFloor,
    /// Bytes of each ring buffer (a power of two, a multiple of the page size); each probe
    /// has one per CPU, up to `RINGS_MAX`.
    pub ringbuf_bytes: u32,
    /// The kernel wakes the reader by the time this much is waiting (see `wakeup_share`).
    pub wakeup_bytes: u64,
}

/// Benchmarks only: how far the file probe is cut down (`floor_mode` in
/// bpf/file_ops.bpf.c), to measure what any file probe on its hook costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFloor {
    /// The probe as it is.
    Off = 0,
    /// The program returns at once: the cost of the hook.
    Hook = 1,
    /// One record per open and per close with the time, the process and the fd, nothing
    /// else.
    Records = 2,
}

/// A probe running in the kernel: its ring buffers (one per CPU, see `nr_rings`) and drop
/// counters, and what keeps its programs attached.
pub struct LiveProbe {
    pub probe: Probe,
    pub rings: Vec<MapHandle>,
    pub drops: MapHandle,
    /// The loaded skeleton: its links keep the programs attached.
    skel: Box<dyn std::any::Any>,
}

/// Why a probe did not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel lacks what the probe needs; the others can still run.
    #[error("{probe} probe unavailable: {why}")]
    Unavailable { probe: &'static str, why: String },
    #[error(
        "permission denied loading BPF programs ({probe} probe): run as root, or give the binary the capabilities: sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_sys_resource,cap_sys_nice+ep {exe}"
    )]
    Permission { probe: &'static str, exe: String },
    #[error("the kernel verifier rejected the {probe} probe: {error}\n--- verifier log ---\n{log}")]
    Verifier { probe: &'static str, error: String, log: String },
    #[error("{probe} probe: {what}: {error}")]
    Other { probe: &'static str, what: &'static str, error: String },
}

/// libbpf's messages: debug and info go to our log; warnings are kept (the verifier log
/// arrives as warnings when a load fails) to be shown with the error.
static LIBBPF_WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn libbpf_print(level: PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        PrintLevel::Debug => log::trace!("libbpf: {msg}"),
        PrintLevel::Info => log::debug!("libbpf: {msg}"),
        PrintLevel::Warn => {
            log::debug!("libbpf: {msg}");
            let mut w = LIBBPF_WARNINGS.lock().unwrap_or_else(|p| p.into_inner());
            if w.len() < 4000 {
                w.push(msg.to_string());
            }
        }
    }
}

/// Routes libbpf's output into our log. Call once, first.
pub fn init_logging() {
    libbpf_rs::set_print(Some((PrintLevel::Debug, libbpf_print)));
}

fn take_warnings() -> String {
    let mut w = LIBBPF_WARNINGS.lock().unwrap_or_else(|p| p.into_inner());
    let tail = w.len().saturating_sub(60);
    let s = w[tail..].join("\n");
    w.clear();
    s
}

/// The BTF raw tracepoints (`tp_btf/...`) each probe attaches to.
pub fn hooks(probe: Probe) -> &'static [&'static str] {
    match probe {
        Probe::Exec => &["sched_process_exec", "sched_process_exit"],
        Probe::File => &["sys_exit"],
        _ => &[],
    }
}

/// The running kernel's BTF, or why there is none to use.
fn vmlinux_btf() -> Result<libbpf_rs::btf::Btf<'static>, String> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing; it needs CONFIG_DEBUG_INFO_BTF=y)".into()
        );
    }
    libbpf_rs::btf::Btf::from_vmlinux().map_err(|e| format!("reading the kernel's BTF: {e}"))
}

/// Whether this kernel has what `probe` needs (BTF, and a `btf_trace_<name>` type for
/// each of its tracepoints), checked before loading so a missing hook is one clear line.
fn check_hooks(probe: Probe, btf: &Result<libbpf_rs::btf::Btf<'static>, String>) -> Result<(), String> {
    let btf = btf.as_ref().map_err(Clone::clone)?;
    if !BUILT.contains(&probe) {
        return Err(format!("the {} probe is not part of this build yet", probe.name()));
    }
    let missing: Vec<&str> = hooks(probe)
        .iter()
        .copied()
        .filter(|tp| btf.type_by_name::<libbpf_rs::btf::types::Typedef>(&format!("btf_trace_{tp}")).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("this kernel has no BTF raw tracepoint {}", missing.join(", ")))
    }
}

fn classify(probe: &'static str, what: &'static str, e: libbpf_rs::Error) -> LoadError {
    let log = take_warnings();
    let text = e.to_string();
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied || text.contains("Operation not permitted") {
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "BINARY".into());
        return LoadError::Permission { probe, exe };
    }
    if what == "loading" && log.contains("PROG LOAD LOG") {
        return LoadError::Verifier { probe, error: text, log };
    }
    LoadError::Other {
        probe,
        what,
        error: if log.is_empty() { text } else { format!("{text} ({})", log.lines().last().unwrap_or("")) },
    }
}

/// CPUs online now (at least 1).
fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.clamp(1, u32::MAX as libc::c_long) as u32
}

/// Each CPU's share of `--wakeup-bytes`: a CPU wakes the reader once it has written this
/// much since its last wake-up, so at most the total waits unannounced. At least 16 KiB
/// (so a machine with many CPUs does not wake the reader every few records), which makes
/// the bound 16 KiB per CPU where that is more than the total.
fn wakeup_share(total: u64) -> u64 {
    (total / u64::from(online_cpus())).max(16 << 10).min(total)
}

/// Most ring buffers a probe has (`CAP_RINGS_MAX` in bpf/common.bpf.h).
pub const RINGS_MAX: u32 = 8;

/// Ring buffers per probe: one per online CPU, rounded down to a power of two, at most
/// `RINGS_MAX` (CPUs share rings past that, CPU number modulo the count).
pub fn nr_rings() -> u32 {
    1 << (31 - online_cpus().min(RINGS_MAX).leading_zeros())
}

/// A skeleton's eight ring maps, borrowed as given: `rings_of!(&mut open.maps)`.
macro_rules! rings_of {
    ($($maps:tt)+) => {
        [
            $($maps)+.ring0,
            $($maps)+.ring1,
            $($maps)+.ring2,
            $($maps)+.ring3,
            $($maps)+.ring4,
            $($maps)+.ring5,
            $($maps)+.ring6,
            $($maps)+.ring7,
        ]
    };
}

/// Sizes a probe's rings: the first `n` get `bytes`, the rest one page.
fn size_rings(maps: [&mut libbpf_rs::OpenMapMut<'_>; RINGS_MAX as usize], n: u32, bytes: u32) -> libbpf_rs::Result<()> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
    maps.into_iter().enumerate().try_for_each(|(i, m)| m.set_max_entries(if (i as u32) < n { bytes } else { page }))
}

/// Handles on a loaded probe's first `n` rings.
fn ring_handles(maps: [&libbpf_rs::Map<'_>; RINGS_MAX as usize], n: u32) -> libbpf_rs::Result<Vec<MapHandle>> {
    maps.into_iter().take(n as usize).map(MapHandle::try_from).collect()
}

fn nr_cpus() -> u32 {
    libbpf_rs::num_possible_cpus().map(|n| n as u32).unwrap_or(256)
}

/// Storage for a skeleton's object, kept for the life of the process: the probes run
/// until the recorder exits.
fn object_storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

fn comm_key(c: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    let b = c.as_bytes();
    k[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
    k
}

fn fill_comm_filter(map: &dyn MapCore, comms: &[String]) -> libbpf_rs::Result<()> {
    for c in comms {
        map.update(&comm_key(c), &[1u8], MapFlags::ANY)?;
    }
    Ok(())
}

/// Loads and attaches each probe, in order. The kernel's BTF (a few MB) is parsed once
/// for all their hook checks.
pub fn load_all(probes: &[Probe], cfg: &LoadConfig) -> Vec<(Probe, Result<LiveProbe, LoadError>)> {
    let btf = vmlinux_btf();
    probes.iter().map(|&p| (p, load(p, cfg, &btf))).collect()
}

fn load(
    probe: Probe,
    cfg: &LoadConfig,
    btf: &Result<libbpf_rs::btf::Btf<'static>, String>,
) -> Result<LiveProbe, LoadError> {
    log::debug!("loading the {} probe", probe.name());
    check_hooks(probe, btf).map_err(|why| LoadError::Unavailable { probe: probe.name(), why })?;
    take_warnings();
    match probe {
        Probe::Exec => load_exec(cfg),
        Probe::File => load_file(cfg),
        p => Err(LoadError::Unavailable { probe: p.name(), why: "not part of this build yet".into() }),
    }
}

fn load_exec(cfg: &LoadConfig) -> Result<LiveProbe, LoadError> {
    const P: &str = "exec";
    let builder = exec_skel::ExecProvenanceSkelBuilder::default();
    let mut open = builder.open(object_storage()).map_err(|e| classify(P, "opening", e))?;
    let nr = nr_rings();
    {
        let ro = open.maps.rodata_data.as_deref_mut().ok_or_else(|| LoadError::Other {
            probe: P,
            what: "configuring",
            error: "no .rodata".into(),
        })?;
        ro.self_tgid = cfg.self_tgid;
        ro.filter_pid = cfg.filter_pid;
        ro.filter_comm_on = !cfg.comms.is_empty();
        ro.wakeup_bytes_cpu = wakeup_share(cfg.wakeup_bytes);
        ro.nr_rings = nr;
        ro.args_max = cfg.args_max;
    }
    size_rings(rings_of!(&mut open.maps), nr, cfg.ringbuf_bytes)
        .map_err(|e| classify(P, "sizing the ring buffers", e))?;
    open.maps.scratch.set_max_entries(nr_cpus()).map_err(|e| classify(P, "sizing the scratch map", e))?;
    let mut skel = open.load().map_err(|e| classify(P, "loading", e))?;
    fill_comm_filter(&skel.maps.comm_filter, &cfg.comms).map_err(|e| classify(P, "filling the comm filter", e))?;
    skel.attach().map_err(|e| classify(P, "attaching", e))?;
    let rings = ring_handles(rings_of!(&skel.maps), nr).map_err(|e| classify(P, "ring buffers", e))?;
    let drops = MapHandle::try_from(&skel.maps.drops).map_err(|e| classify(P, "drop counters", e))?;
    Ok(LiveProbe { probe: Probe::Exec, rings, drops, skel: Box::new(skel) })
}

fn load_file(cfg: &LoadConfig) -> Result<LiveProbe, LoadError> {
    const P: &str = "file";
    let builder = file_skel::FileOpsSkelBuilder::default();
    let mut open = builder.open(object_storage()).map_err(|e| classify(P, "opening", e))?;
    let nr = nr_rings();
    {
        let ro = open.maps.rodata_data.as_deref_mut().ok_or_else(|| LoadError::Other {
            probe: P,
            what: "configuring",
            error: "no .rodata".into(),
        })?;
        ro.self_tgid = cfg.self_tgid;
        ro.filter_pid = cfg.filter_pid;
        ro.filter_comm_on = !cfg.comms.is_empty();
        ro.wakeup_bytes_cpu = wakeup_share(cfg.wakeup_bytes);
        ro.nr_rings = nr;
        ro.file_rw_events = cfg.file_rw_events;
        ro.floor_mode = cfg.file_floor as u32;
        ro.nr_prefixes = cfg.exclude_prefixes.len().min(PREFIXES_MAX) as u32;
    }
    size_rings(rings_of!(&mut open.maps), nr, cfg.ringbuf_bytes)
        .map_err(|e| classify(P, "sizing the ring buffers", e))?;
    open.maps.scratch.set_max_entries(nr_cpus()).map_err(|e| classify(P, "sizing the scratch map", e))?;
    let mut skel = open.load().map_err(|e| classify(P, "loading", e))?;
    fill_comm_filter(&skel.maps.comm_filter, &cfg.comms).map_err(|e| classify(P, "filling the comm filter", e))?;
    for (i, prefix) in cfg.exclude_prefixes.iter().take(PREFIXES_MAX).enumerate() {
        let mut v = [0u8; 4 + PREFIX_MAX];
        let b = prefix.as_bytes();
        let n = b.len().min(PREFIX_MAX);
        v[..4].copy_from_slice(&(n as u32).to_ne_bytes());
        v[4..4 + n].copy_from_slice(&b[..n]);
        skel.maps
            .exclude_prefixes
            .update(&(i as u32).to_ne_bytes(), &v, MapFlags::ANY)
            .map_err(|e| classify(P, "filling the path filter", e))?;
    }
    skel.attach().map_err(|e| classify(P, "attaching", e))?;
    let rings = ring_handles(rings_of!(&skel.maps), nr).map_err(|e| classify(P, "ring buffers", e))?;
    let drops = MapHandle::try_from(&skel.maps.drops).map_err(|e| classify(P, "drop counters", e))?;
    Ok(LiveProbe { probe: Probe::File, rings, drops, skel: Box::new(skel) })
}

impl LiveProbe {
    /// Detaches the programs (no new records); the rings and counters stay readable.
    pub fn detach(&mut self) {
        self.skel = Box::new(());
    }

    /// Whether the drop counters can be read (a bpf(2) call on an open map) with the
    /// privileges this process has now.
    pub fn drops_readable(&self) -> bool {
        self.drops.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY).is_ok()
    }

    /// The probe's drop counters summed over CPUs (one syscall; call per poll, not per event).
    pub fn drops(&self) -> capture_schemas::abi::Drops {
        use capture_schemas::abi::{Drops, Pod};
        let mut total = Drops::default();
        if let Ok(Some(per_cpu)) = self.drops.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY) {
            for v in per_cpu {
                if let Some(d) = Drops::read(&v) {
                    total.submitted += d.submitted;
                    for (t, x) in total.dropped.iter_mut().zip(d.dropped) {
                        *t += x;
                    }
                }
            }
        }
        total
    }
}
