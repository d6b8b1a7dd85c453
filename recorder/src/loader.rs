//! Opens, configures, loads and attaches the BPF probes: one sequence for every probe in
//! the probe list (`capture_schemas::PROBES`), over the objects `build.rs` compiled.
//!
//! Per probe: check its hooks in the kernel's BTF (a required one missing: the probe is
//! unavailable, one line; an optional one: that program is not loaded) → open → write
//! [`abi::Config`] into its `.rodata.cap_cfg` and size its maps → load → fill its filter
//! maps → attach each program as its section says (`tp_btf/`, `iter/`, `cgroup_skb/` and
//! `cgroup/` on the cgroup v2 root). libbpf's own messages go to our log; when a load
//! fails, the verifier's log is part of the error.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

use capture_schemas::abi::{self, Pod};
use capture_schemas::{Probe, ProbeSpec};
use libbpf_rs::btf::types::{Enum, Func, Typedef};
use libbpf_rs::btf::Btf;
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Object, ObjectBuilder, OpenObject, PrintLevel};

mod objects {
    include!(concat!(env!("OUT_DIR"), "/objects.rs"));
}

/// The compiled BPF objects (name, path at build time), for tests that read their BTF.
pub fn objects() -> impl Iterator<Item = (&'static str, &'static str)> {
    objects::OBJECTS.iter().map(|(name, path, _)| (*name, *path))
}

fn object_bytes(object: &str) -> Option<&'static [u8]> {
    objects::OBJECTS.iter().find(|(name, _, _)| *name == object).map(|(_, _, bytes)| *bytes)
}

/// Whether this build carries the probe's object.
pub fn built(probe: Probe) -> bool {
    object_bytes(probe.spec().object).is_some()
}

/// Longest path prefix the kernel-side exclusion filter holds, and how many.
pub const PREFIX_MAX: usize = abi::PREFIX_MAX;
pub const PREFIXES_MAX: usize = abi::PREFIXES_MAX;

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
    /// file and module: which hook takes the syscalls they record.
    pub syscall_hook: SyscallHook,
    /// dns: the ports that carry DNS.
    pub dns_ports: Vec<u16>,
    /// Bytes of each ring buffer (a power of two, a multiple of the page size); each probe
    /// has one per CPU, up to `RINGS_MAX`.
    pub ringbuf_bytes: u32,
    /// The kernel wakes the reader by the time this much is waiting (see `wakeup_share`).
    pub wakeup_bytes: u64,
}

/// Benchmarks only: how far the file probe is cut down (`CAP_FLOOR_*` in bpf/events.h),
/// to measure what any file probe on its hook costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFloor {
    /// The probe as it is.
    Off = abi::FLOOR_OFF as isize,
    /// The program returns at once: the cost of the hook.
    Hook = abi::FLOOR_HOOK as isize,
    /// One record per open and per close with the time, the process and the fd, nothing
    /// else.
    Records = abi::FLOOR_RECORDS as isize,
}

/// Which hook takes the syscalls the file and module probes record (`--syscall-hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyscallHook {
    /// fexit where the kernel lets it load, else tp_btf/sys_exit.
    Auto,
    /// fexit on each recorded syscall's wrapper (a probe that cannot load it does not run).
    Fexit,
    /// The tp_btf/sys_exit raw tracepoint, which every syscall of every process passes.
    SysExit,
}

/// The kernel's prefix for a syscall's wrapper function (`__x64_sys_openat`).
#[cfg(target_arch = "x86_64")]
const SYSCALL_PREFIX: &str = "__x64_sys_";
#[cfg(target_arch = "aarch64")]
const SYSCALL_PREFIX: &str = "__arm64_sys_";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYSCALL_PREFIX: &str = "__unsupported_arch_sys_";

/// The syscall an `fexit` program takes: its name after `_fx_`, without `_loop`/`_noloop`
/// (and a spare's `_nested`, `_nested2`).
pub fn fexit_syscall(prog: &str) -> Option<&str> {
    let (_, rest) = prog.split_once("_fx_")?;
    let rest = spare_of(rest).0;
    Some(rest.strip_suffix("_noloop").or_else(|| rest.strip_suffix("_loop")).unwrap_or(rest))
}

impl LoadConfig {
    /// The struct every object finds in its `.rodata.cap_cfg`.
    fn config(&self) -> abi::Config {
        let mut ports = [0u16; abi::DNS_PORTS_MAX];
        for (slot, p) in ports.iter_mut().zip(&self.dns_ports) {
            *slot = *p;
        }
        abi::Config {
            self_tgid: self.self_tgid,
            filter_pid: self.filter_pid,
            filter_comm_on: u32::from(!self.comms.is_empty()),
            nr_rings: nr_rings(),
            wakeup_bytes_cpu: wakeup_share(self.wakeup_bytes),
            args_max: self.args_max,
            file_rw_events: u32::from(self.file_rw_events),
            file_floor: self.file_floor as u32,
            nr_prefixes: self.exclude_prefixes.len().min(PREFIXES_MAX) as u32,
            dns_ports: ports,
            preempt: 0, // set where the object is configured (it depends on the kernel and hook)
            _pad0: 0,
        }
    }
}

/// A probe running in the kernel: its ring buffers (one per CPU, see `nr_rings`), drop
/// counters, iterators, and what keeps its programs attached.
pub struct LiveProbe {
    pub probe: Probe,
    pub rings: Vec<MapHandle>,
    pub drops: MapHandle,
    /// Its `iter/` programs, by program name: each run of one walks the kernel's objects
    /// (and writes its records into the rings).
    iters: Vec<(String, Link)>,
    /// Links of the attached programs; dropped to detach.
    links: Vec<Link>,
    /// Which hook takes its syscalls, and why (None: it records none).
    pub syscall_hooks: Option<String>,
    /// The loaded object: its maps and programs live as long as it does.
    _object: Object,
}

/// Why a probe did not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel lacks what the probe needs; the others can still run.
    #[error("{probe} probe unavailable: {why}")]
    Unavailable { probe: &'static str, why: String },
    #[error(
        "permission denied loading BPF programs ({probe} probe): run as root, or give the binary the capabilities: sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_sys_resource,cap_sys_nice+ep {exe}"
    )]
    Permission { probe: &'static str, exe: String },
    #[error("the kernel verifier rejected the {probe} probe: {error}\n--- verifier log ---\n{log}")]
    Verifier { probe: &'static str, error: String, log: String },
    #[error("{probe} probe: {what}: {error}")]
    Other { probe: &'static str, what: String, error: String },
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

/// The running kernel's BTF, or why there is none to use.
fn vmlinux_btf() -> Result<Btf<'static>, String> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing; it needs CONFIG_DEBUG_INFO_BTF=y)".into()
        );
    }
    Btf::from_vmlinux().map_err(|e| format!("reading the kernel's BTF: {e}"))
}

/// One hook of a probe, as `ProbeSpec::hooks` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub section: &'static str,
    pub optional: bool,
}

impl Hook {
    pub fn parse(s: &'static str) -> Hook {
        match s.strip_prefix('?') {
            Some(section) => Hook { section, optional: true },
            None => Hook { section: s, optional: false },
        }
    }

    /// Whether this kernel has the hook, from its BTF (cgroup hooks: a cgroup v2 mount).
    fn present(&self, btf: &Btf<'static>) -> bool {
        let (kind, name) = self.section.split_once('/').unwrap_or((self.section, ""));
        match kind {
            "tp_btf" => btf.type_by_name::<Typedef>(&format!("btf_trace_{name}")).is_some(),
            "iter" => btf.type_by_name::<Func>(&format!("bpf_iter_{name}")).is_some(),
            "cgroup_skb" | "cgroup" => cgroup2_root().is_some(),
            _ => false,
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// on a hybrid layout), from /proc/self/mounts.
pub fn cgroup2_root() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| dir.replace("\\040", " "))
    })
}

/// The hooks of `spec` this kernel lacks: `Err` when a required one is missing.
fn check_hooks(spec: &ProbeSpec, btf: &Result<Btf<'static>, String>) -> Result<Vec<Hook>, String> {
    let btf = btf.as_ref().map_err(Clone::clone)?;
    if !built(spec.probe) {
        return Err(format!("the {} probe is not part of this build yet (no bpf/{}.bpf.c)", spec.name, spec.object));
    }
    let missing: Vec<Hook> = spec.hooks.iter().map(|h| Hook::parse(h)).filter(|h| !h.present(btf)).collect();
    let required: Vec<&str> = missing.iter().filter(|h| !h.optional).map(|h| h.section).collect();
    if required.iter().any(|h| h.starts_with("cgroup")) && cgroup2_root().is_none() {
        return Err(format!(
            "no cgroup v2 hierarchy is mounted for its hooks {} (mount -t cgroup2 none /sys/fs/cgroup)",
            required.join(", ")
        ));
    }
    if !required.is_empty() {
        return Err(format!("this kernel lacks its hook {}", required.join(", ")));
    }
    Ok(missing)
}

fn classify(probe: &'static str, what: impl Into<String>, e: libbpf_rs::Error) -> LoadError {
    let what = what.into();
    let log = take_warnings();
    let text = format!("{e:#}");
    if what == "loading" && log.contains("PROG LOAD LOG") {
        // A helper this kernel does not offer to the program's type (older kernels offer
        // fewer): the kernel lacks what the probe needs, as with a missing hook.
        if let Some(line) = log.lines().find(|l| l.contains("cannot use helper") || l.contains("unknown func")) {
            return LoadError::Unavailable {
                probe,
                why: format!("this kernel's BPF lacks what it needs ({})", line.trim()),
            };
        }
        return LoadError::Verifier { probe, error: text, log };
    }
    // After the verifier's case: it rejects a program with EACCES too.
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied || text.contains("Operation not permitted") {
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "BINARY".into());
        return LoadError::Permission { probe, exe };
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

/// Most ring buffers a probe has (`CAP_RINGS_MAX`).
pub const RINGS_MAX: u32 = abi::RINGS_MAX as u32;

/// Ring buffers per probe: one per online CPU, rounded down to a power of two, at most
/// `RINGS_MAX` (CPUs share rings past that, CPU number modulo the count).
pub fn nr_rings() -> u32 {
    1 << (31 - online_cpus().min(RINGS_MAX).leading_zeros())
}

fn ring_name(i: u32) -> String {
    format!("ring{i}")
}

fn nr_cpus() -> u32 {
    libbpf_rs::num_possible_cpus().map(|n| n as u32).unwrap_or(256)
}

fn comm_key(c: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    let b = c.as_bytes();
    k[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
    k
}

/// Loads and attaches each probe, in order. The kernel's BTF (a few MB) is parsed once
/// for all their hook checks.
pub fn load_all(probes: &[Probe], cfg: &LoadConfig) -> Vec<(Probe, Result<LiveProbe, LoadError>)> {
    let btf = vmlinux_btf();
    probes.iter().map(|&p| (p, load(p.spec(), cfg, &btf))).collect()
}

/// Which hook takes `probe`'s syscalls on this kernel, and why: found by loading and
/// attaching it as the recorder would (fexit's support shows only then), its records
/// unread, then detaching. None for a probe that records no syscalls or cannot run.
pub fn syscall_hook_choice(probe: Probe, hook: SyscallHook) -> Option<Result<String, String>> {
    let spec = probe.spec();
    if spec.syscalls.is_empty() {
        return None;
    }
    let cfg = LoadConfig {
        self_tgid: std::process::id(),
        filter_pid: 0,
        comms: Vec::new(),
        exclude_prefixes: Vec::new(),
        args_max: 32 << 10,
        file_rw_events: false,
        file_floor: FileFloor::Off,
        syscall_hook: hook,
        dns_ports: vec![53],
        ringbuf_bytes: 256 << 10,
        wakeup_bytes: 64 << 10,
    };
    match load(spec, &cfg, &vmlinux_btf()) {
        Ok(mut live) => {
            live.detach();
            live.syscall_hooks.take().map(Ok)
        }
        Err(LoadError::Unavailable { .. }) => None,
        Err(e) => Some(Err(e.to_string().lines().next().unwrap_or_default().to_string())),
    }
}

/// The hooks each probe would use on this kernel, or why it cannot run: what
/// `--list-probes` and the preflight print.
pub fn hook_report(probe: Probe) -> Result<Vec<(Hook, bool)>, String> {
    let btf = vmlinux_btf()?;
    let spec = probe.spec();
    let missing = check_hooks(spec, &Ok(btf))?;
    Ok(spec.hooks.iter().map(|h| Hook::parse(h)).map(|h| (h, !missing.contains(&h))).collect())
}

/// Loads a probe; one with syscall hooks tries fexit first (unless `--syscall-hook
/// sys-exit`), and under `auto` falls back to tp_btf/sys_exit where fexit cannot load or
/// attach, saying why.
fn load(
    spec: &'static ProbeSpec,
    cfg: &LoadConfig,
    btf: &Result<Btf<'static>, String>,
) -> Result<LiveProbe, LoadError> {
    let p = spec.name;
    if spec.syscalls.is_empty() || cfg.syscall_hook == SyscallHook::SysExit {
        let why = if spec.syscalls.is_empty() { "" } else { " (--syscall-hook sys-exit)" };
        return load_variant(spec, cfg, btf, false, why);
    }
    let e = match load_variant(spec, cfg, btf, true, "") {
        Ok(live) => return Ok(live),
        Err(e) => e,
    };
    log::debug!("{p} probe: fexit: {e}");
    // SAFETY: geteuid has no preconditions.
    let refused = matches!(e, LoadError::Permission { .. }) && unsafe { libc::geteuid() } == 0;
    let why = match &e {
        _ if refused => "the kernel refused it to root (EPERM: no BPF trampolines here)".to_string(),
        LoadError::Verifier { log, .. } => verifier_verdict(log),
        _ => e.to_string().lines().next().unwrap_or_default().to_string(),
    };
    match cfg.syscall_hook {
        // Whatever stopped fexit, the tracepoint may still load; if not, its error is the one.
        SyscallHook::Auto => load_variant(spec, cfg, btf, false, &format!(" (fexit did not load here: {why})")),
        _ if refused || matches!(e, LoadError::Unavailable { .. }) => Err(LoadError::Unavailable {
            probe: p,
            why: format!("--syscall-hook fexit: {why} (--syscall-hook auto falls back to {SYS_EXIT})"),
        }),
        _ => Err(e),
    }
}

/// The verifier's verdict on the first program it rejected, in one line: the program and
/// the log's last two lines before its statistics (5.10, say: `the verifier rejected
/// file_fx_copy_file_range: func '__x64_sys_copy_file_range' arg0 type FWD is not a
/// struct; invalid bpf_context access off=0 size=8`).
pub fn verifier_verdict(log: &str) -> String {
    let prog = log.lines().find_map(|l| l.split("prog '").nth(1)?.split('\'').next()).unwrap_or("?");
    let body: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("BEGIN PROG LOAD LOG"))
        .skip(1)
        .take_while(|l| !l.contains("END PROG LOAD LOG"))
        .filter(|l| !l.trim().is_empty() && !l.starts_with("processed ") && !l.starts_with(';'))
        .collect();
    let detail: Vec<&str> = body.iter().rev().take(2).rev().map(|l| l.trim()).collect();
    format!("the verifier rejected {prog}: {}", detail.join("; "))
}

/// The syscalls of `spec` whose wrapper this kernel has, for its fexit programs; `Err`
/// when the kernel names none of its core ones as expected.
fn fexit_targets(spec: &ProbeSpec, btf: &Btf<'static>) -> Result<Vec<&'static str>, String> {
    let have: Vec<&'static str> = spec
        .syscalls
        .iter()
        .copied()
        .filter(|s| btf.type_by_name::<Func>(&format!("{SYSCALL_PREFIX}{s}")).is_some())
        .collect();
    if have.is_empty() {
        return Err(format!("this kernel has no syscall wrapper {SYSCALL_PREFIX}{} to attach to", spec.syscalls[0]));
    }
    Ok(have)
}

fn load_variant(
    spec: &'static ProbeSpec,
    cfg: &LoadConfig,
    btf: &Result<Btf<'static>, String>,
    fexit: bool,
    why: &str,
) -> Result<LiveProbe, LoadError> {
    let p = spec.name;
    log::debug!("loading the {p} probe{}", if fexit { " with fexit" } else { "" });
    let missing = check_hooks(spec, btf).map_err(|why| LoadError::Unavailable { probe: p, why })?;
    let targets = match (fexit, btf) {
        (true, Ok(btf)) => fexit_targets(spec, btf).map_err(|why| LoadError::Unavailable { probe: p, why })?,
        _ => Vec::new(),
    };
    take_warnings();
    let bytes = object_bytes(spec.object).expect("checked by check_hooks");
    let mut open = ObjectBuilder::default()
        .name(spec.object)
        .and_then(|b| b.open_memory(bytes))
        .map_err(|e| classify(p, "opening", e))?;
    let has_loop = btf.as_ref().is_ok_and(has_bpf_loop);
    // Where a task can be preempted inside a program (common.bpf.h): bodies with
    // preemption off where the kernel has the kfuncs (6.10+), and the spares for it where
    // the probe has them (spare.bpf.h; fexit's only where fexit is taken).
    let pre = preemption(btf);
    let preempts = pre.preempts() != Some(false);
    let spares = preempts
        && open.progs().any(|prog| {
            let name = prog.name().to_string_lossy();
            is_preempt_spare(&name) && (fexit || prog.section() != "fexit")
        });
    let preempt_kfuncs = btf.as_ref().is_ok_and(|btf| btf.type_by_name::<Func>("bpf_preempt_disable").is_some());
    // Only tracing programs take it (tp_btf and fexit; not the cgroup and iterator ones).
    let tracing = open.progs().any(|prog| {
        let section = prog.section().to_string_lossy();
        section == "fexit" || section.starts_with("tp_btf/")
    });
    let preempt = if tracing && preempts && preempt_kfuncs { abi::PREEMPT_OFF } else { 0 }
        | if spares { abi::PREEMPT_SPARES } else { 0 };
    if preempt & abi::PREEMPT_OFF != 0 {
        log::info!(
            "{p} probe: its tracing programs run with preemption off (this kernel preempts tasks in kernel code: {}, from {})",
            pre.model.as_deref().unwrap_or("model unknown"),
            pre.source
        );
    }
    if tracing && preempts && !preempt_kfuncs {
        log::warn!(
            "{p} probe: this kernel can preempt tasks inside BPF programs ({}, from {}) but has no bpf_preempt_disable (6.10 and later): a record being assembled when its task is preempted can be overwritten by another task's on that CPU",
            pre.model.as_deref().unwrap_or("model unknown"),
            pre.source
        );
    }
    configure(&mut open, spec, cfg, &missing, has_loop, fexit.then_some(&targets[..]), preempt)?;
    let object = open.load().map_err(|e| classify(p, "loading", e))?;
    fill_maps(&object, p, cfg)?;
    let (links, iters) = attach(&object, p)?;
    let map = |name: &str| -> Result<MapHandle, LoadError> {
        let m = object.maps().find(|m| m.name() == name).ok_or_else(|| LoadError::Other {
            probe: p,
            what: format!("map {name}"),
            error: "not in the object".into(),
        })?;
        MapHandle::try_from(&m).map_err(|e| classify(p, format!("map {name}"), e))
    };
    let rings = (0..nr_rings()).map(|i| map(&ring_name(i))).collect::<Result<Vec<_>, _>>()?;
    let drops = map("drops")?;
    let mut hooks: Vec<String> = spec
        .hooks
        .iter()
        .map(|h| Hook::parse(h))
        .filter(|h| !(missing.contains(h) || (fexit && h.section == SYS_EXIT)))
        .map(|h| h.section.to_string())
        .collect();
    let syscall_hooks = if fexit {
        let model = format!("{}, from {}", pre.model.as_deref().unwrap_or("unknown"), pre.source);
        let preempting = match pre.preempts() {
            Some(false) => String::new(),
            _ if spares => format!(
                ", each with two spares for the calls the kernel skips while another task is preempted inside it (preemption model {model})"
            ),
            _ => format!(
                " (preemption model {model}: a call made while another task is preempted inside the same program is not recorded, and is counted in dropped_kernel_other)"
            ),
        };
        hooks.insert(
            0,
            format!("fexit/{SYSCALL_PREFIX}* ({} syscalls{})", targets.len(), if spares { ", spares" } else { "" }),
        );
        log::debug!("{p} probe: fexit on {SYSCALL_PREFIX}{{{}}}", targets.join(","));
        Some(format!(
            "fexit on {} syscall wrappers ({SYSCALL_PREFIX}{}, ...){preempting}: no program runs on other syscalls",
            targets.len(),
            targets[0]
        ))
    } else if !spec.syscalls.is_empty() {
        Some(format!("{SYS_EXIT}, which every syscall passes{why}"))
    } else {
        None
    };
    if let Some(s) = &syscall_hooks {
        log::info!("{p} probe: its syscalls by {s}");
    }
    // The tracepoints' programs with a spare of this rank for preempted tasks loaded.
    let tp_spares_of = |rank: u8| -> Vec<String> {
        object
            .progs()
            .filter(|prog| prog.autoload() && prog.section() != "fexit")
            .map(|prog| prog.name().to_string_lossy().into_owned())
            .filter(|name| is_preempt_spare(name) && spare_of(name).1 == rank)
            .map(|name| spare_of(&name).0.to_string())
            .collect()
    };
    let spares_lines = [
        (tp_spares_of(1), "each with a spare for the calls the kernel skips while another task is preempted inside it"),
        (
            tp_spares_of(2),
            "with a second spare for the calls the kernel skips while other tasks are preempted inside it and its first",
        ),
    ];
    for (progs, what) in spares_lines.iter().filter(|(progs, _)| !progs.is_empty()) {
        log::info!(
            "{p} probe: {} {what} (preemption model {}, from {})",
            progs.join(", "),
            pre.model.as_deref().unwrap_or("unknown"),
            pre.source
        );
    }
    log::info!("{p} probe: hooks {}", hooks.join(", "));
    for h in &missing {
        log::info!("{p} probe: runs without {} (not in this kernel)", h.section);
    }
    let live = LiveProbe { probe: spec.probe, rings, drops, iters, links, syscall_hooks, _object: object };
    if spares {
        live.arm_spares(true); // every program proper is attached now
    }
    Ok(live)
}

/// A program's program proper and its rank: 0 for a program proper, 1 for its first
/// spare (`<name>_nested`), 2 for its second (`<name>_nested2`), which the kernel must
/// run in that order (spare.bpf.h).
fn spare_of(prog: &str) -> (&str, u8) {
    if let Some(base) = prog.strip_suffix("_nested") {
        (base, 1)
    } else if let Some(base) = prog.strip_suffix("_nested2") {
        (base, 2)
    } else {
        (prog, 0)
    }
}

/// A spare program (`<name>_nested`, `<name>_nested2`): takes what its program proper's
/// recursion guard skipped (net_flow.bpf.c's net_state; spare.bpf.h's programs).
fn is_spare(prog: &str) -> bool {
    spare_of(prog).1 > 0
}

/// The spares for a hook that interrupts reach too, which load on every kernel
/// (net_flow.bpf.c's state_stack; its second, `net_state_nested2`, only where the kernel
/// preempts).
const NESTING_SPARES: &[&str] = &["net_state_nested"];

/// A spare for the calls skipped while another task is preempted inside its program
/// proper (spare.bpf.h's marks), loaded only where the kernel preempts.
fn is_preempt_spare(prog: &str) -> bool {
    is_spare(prog) && !NESTING_SPARES.contains(&prog)
}

/// The kernel's preemption model (see preempt.rs), found once.
fn preemption(btf: &Result<Btf<'static>, String>) -> crate::preempt::Preemption {
    static FOUND: std::sync::OnceLock<crate::preempt::Preemption> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            crate::preempt::detect(|name| match btf {
                Ok(btf) => btf.type_by_name::<Func>(name).is_some(),
                Err(_) => true, // no BTF: no answer from it
            })
        })
        .clone()
}

/// Whether this kernel offers the bpf_loop helper (5.17+): its number is in the kernel's
/// `enum bpf_func_id`.
fn has_bpf_loop(btf: &Btf<'static>) -> bool {
    btf.type_by_name::<Enum>("bpf_func_id").is_some_and(|e| e.iter().any(|m| m.name == Some("BPF_FUNC_loop".as_ref())))
}

/// Before load: the config struct, map sizes, and the programs this kernel cannot attach
/// (a missing hook; a program written in two variants, `_loop` for kernels with bpf_loop
/// and `_noloop` for the others, loads in one; fexit spares where `preempt`, the objects's
/// `cap_cfg.preempt`, says so).
fn configure(
    open: &mut OpenObject,
    spec: &ProbeSpec,
    cfg: &LoadConfig,
    missing: &[Hook],
    has_loop: bool,
    fexit: Option<&[&str]>,
    preempt: u32,
) -> Result<(), LoadError> {
    let spares = preempt & abi::PREEMPT_SPARES != 0;
    let p = spec.name;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
    let nr = nr_rings();
    let mut config = cfg.config();
    config.preempt = preempt;
    let mut configured = false;
    for mut m in open.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        let sized = if let Some(i) = name.strip_prefix("ring").and_then(|i| i.parse::<u32>().ok()) {
            m.set_max_entries(if i < nr { cfg.ringbuf_bytes } else { page })
        } else if name.ends_with("scratch") {
            m.set_max_entries(nr_cpus())
        } else if name == "fx_done" {
            // Task storage (5.11+): only where the spares run.
            m.set_autocreate(spares)
        } else if name.ends_with(".rodata.cap_cfg") || name == ".rodata.cap_cfg" {
            let v = m.initial_value_mut().ok_or_else(|| LoadError::Other {
                probe: p,
                what: "configuring".into(),
                error: ".rodata.cap_cfg has no initial value".into(),
            })?;
            let bytes = config.as_bytes();
            if v.len() < bytes.len() {
                return Err(LoadError::Other {
                    probe: p,
                    what: "configuring".into(),
                    error: format!(".rodata.cap_cfg holds {} bytes, struct cap_config {}", v.len(), bytes.len()),
                });
            }
            v[..bytes.len()].copy_from_slice(bytes);
            configured = true;
            Ok(())
        } else {
            Ok(())
        };
        sized.map_err(|e| classify(p, format!("sizing map {name}"), e))?;
    }
    if !configured {
        return Err(LoadError::Other {
            probe: p,
            what: "configuring".into(),
            error: "the object has no .rodata.cap_cfg (include common.bpf.h)".into(),
        });
    }
    for mut prog in open.progs_mut() {
        let section = prog.section().to_string_lossy().into_owned();
        let name = prog.name().to_string_lossy().into_owned();
        let syscall = (section == "fexit").then(|| fexit_syscall(&name)).flatten();
        let known = match syscall {
            Some(sys) => spec.syscalls.contains(&sys),
            None => spec.hooks.iter().any(|h| Hook::parse(h).section == section),
        };
        if !known {
            return Err(LoadError::Other {
                probe: p,
                what: format!("program {name}"),
                error: format!(
                    "its section {section} is not among the probe's hooks (or syscalls, for fexit/PROBE_fx_SYSCALL) in schemas/src/probes.rs"
                ),
            });
        }
        let base = spare_of(&name).0;
        let other_variant = (base.ends_with("_loop") && !has_loop) || (base.ends_with("_noloop") && has_loop);
        let off = match (syscall, fexit) {
            // fexit: only where chosen, and where this kernel has the syscall's wrapper;
            // a spare only where spares run.
            (Some(sys), Some(targets)) => !targets.contains(&sys) || (is_spare(&name) && !spares),
            (Some(_), None) => true,
            (None, _) => {
                missing.iter().any(|h| h.section == section)
                    || (fexit.is_some() && section == SYS_EXIT)
                    || (is_preempt_spare(&name) && !spares)
            }
        };
        if off || other_variant {
            prog.set_autoload(false);
        } else if let Some(sys) = syscall {
            prog.set_attach_target(0, Some(format!("{SYSCALL_PREFIX}{sys}")))
                .map_err(|e| classify(p, format!("setting {name}'s target"), e))?;
        }
    }
    Ok(())
}

/// The raw tracepoint every syscall passes on its way out.
const SYS_EXIT: &str = "tp_btf/sys_exit";

/// After load: the maps the loader fills (each optional: only the objects that have them).
fn fill_maps(object: &Object, p: &'static str, cfg: &LoadConfig) -> Result<(), LoadError> {
    for m in object.maps() {
        let name = m.name().to_string_lossy();
        if name == "comm_filter" {
            for c in &cfg.comms {
                m.update(&comm_key(c), &[1u8], MapFlags::ANY).map_err(|e| classify(p, "filling the comm filter", e))?;
            }
        } else if name == "exclude_prefixes" {
            for (i, prefix) in cfg.exclude_prefixes.iter().take(PREFIXES_MAX).enumerate() {
                let mut v = [0u8; 4 + PREFIX_MAX];
                let b = prefix.as_bytes();
                let n = b.len().min(PREFIX_MAX);
                v[..4].copy_from_slice(&(n as u32).to_ne_bytes());
                v[4..4 + n].copy_from_slice(&b[..n]);
                m.update(&(i as u32).to_ne_bytes(), &v, MapFlags::ANY)
                    .map_err(|e| classify(p, "filling the path filter", e))?;
            }
        }
    }
    Ok(())
}

type Links = (Vec<Link>, Vec<(String, Link)>);

/// Attaches every loaded program as its section says, in the order that makes the kernel
/// run each spare after its program proper, and `<name>_nested2` after `<name>_nested`
/// (net_flow.bpf.c and spare.bpf.h rely on it).
fn attach(object: &Object, p: &'static str) -> Result<Links, LoadError> {
    let mut links = Vec::new();
    let mut iters = Vec::new();
    let mut cgroup: Option<std::fs::File> = None;
    // A spare runs after its program proper: a tracepoint calls its programs in the order
    // they were attached, a BPF trampoline the last attached first.
    let mut progs: Vec<_> = object.progs_mut().collect();
    progs.sort_by_key(|prog| {
        let rank = spare_of(&prog.name().to_string_lossy()).1;
        if prog.section() == "fexit" {
            2 - rank
        } else {
            rank
        }
    });
    for prog in progs {
        if !prog.autoload() {
            continue; // not loaded: its hook is missing here
        }
        let name = prog.name().to_string_lossy().into_owned();
        let section = prog.section().to_string_lossy().into_owned();
        let what = || format!("attaching {name} ({section})");
        if section.starts_with("iter/") {
            let link = prog.attach_iter_with_opts(libbpf_rs::IterOpts::None).map_err(|e| classify(p, what(), e))?;
            iters.push((name, link));
        } else if section.starts_with("cgroup_skb/") || section.starts_with("cgroup/") {
            if cgroup.is_none() {
                let root = cgroup2_root().ok_or_else(|| LoadError::Unavailable {
                    probe: p,
                    why: "no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup)".into(),
                })?;
                cgroup = Some(std::fs::File::open(&root).map_err(|e| LoadError::Other {
                    probe: p,
                    what: format!("opening the cgroup v2 root {root}"),
                    error: e.to_string(),
                })?);
            }
            let fd = cgroup.as_ref().map_or(-1, |f| f.as_raw_fd());
            links.push(prog.attach_cgroup(fd).map_err(|e| classify(p, what(), e))?);
        } else {
            links.push(prog.attach().map_err(|e| classify(p, what(), e))?);
        }
    }
    Ok((links, iters))
}

/// Reads an iterator to its end. The programs print nothing (they write records into the
/// rings); the kernel answers EAGAIN when a program has printed nothing for a long run of
/// objects (a million sockets or files), and the walk goes on at the next read.
pub fn read_iter(mut it: libbpf_rs::Iter) -> std::io::Result<()> {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    loop {
        match it.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl LiveProbe {
    /// Detaches the programs (no new records); the rings and counters stay readable.
    /// Spares are disarmed first, and the programs detached last attached first (so the
    /// programs proper go before their spares: bpf/spare.bpf.h).
    pub fn detach(&mut self) {
        self.arm_spares(false);
        while self.links.pop().is_some() {}
        self.iters.clear();
    }

    /// Arms (or disarms) the spares' count of what they take (`fx_armed`, spare.bpf.h),
    /// where the object has them.
    fn arm_spares(&self, on: bool) {
        if let Some(map) = self._object.maps().find(|m| m.name() == "fx_armed") {
            if let Err(e) = map.update(&0u32.to_ne_bytes(), &u32::from(on).to_ne_bytes(), MapFlags::ANY) {
                log::warn!("{} probe: setting fx_armed: {e}", self.probe.name());
            }
        }
    }

    /// A new run of the probe's iterator `name` (one bpf(2) call), or `None` when the
    /// probe has no such iterator (its hook is missing here). Its program writes its
    /// records into the rings as [`read_iter`] reads it, on any thread.
    pub fn iter(&self, name: &str) -> std::io::Result<Option<libbpf_rs::Iter>> {
        let Some((_, link)) = self.iters.iter().find(|(n, _)| n == name) else { return Ok(None) };
        libbpf_rs::Iter::new(link).map(Some).map_err(std::io::Error::other)
    }

    /// Whether the drop counters can be read (a bpf(2) call on an open map) with the
    /// privileges this process has now.
    pub fn drops_readable(&self) -> bool {
        self.drops.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY).is_ok()
    }

    /// The probe's drop counters summed over CPUs (one syscall; call per poll, not per event).
    pub fn drops(&self) -> abi::Drops {
        let mut total = abi::Drops::default();
        if let Ok(Some(per_cpu)) = self.drops.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY) {
            for v in per_cpu {
                if let Some(d) = abi::Drops::read(&v) {
                    total.submitted += d.submitted;
                    for (t, x) in total.dropped.iter_mut().zip(d.dropped) {
                        *t += x;
                    }
                }
            }
        }
        total
    }

    /// The records the kernel skipped because the program was already running on that
    /// CPU (its recursion guard: a softirq or a preempting task hitting the same hook),
    /// summed over the probe's programs: one bpf(2) call each, with the privileges the
    /// drop counters need. Where a program has spares (`<name>_nested`, `_nested2`), they
    /// take what it skips and count that in the `nested_taken` map: those are not lost,
    /// and the spares' own misses are no measure (see net_flow.bpf.c, spare.bpf.h).
    pub fn recursion_misses(&self) -> u64 {
        // Read before the misses: every event taken was missed first, so the difference
        // never counts a taken event as lost.
        let taken = self.nested_taken();
        self.recursion_misses_total().saturating_sub(taken)
    }

    /// The runs the kernel's recursion guard skipped in the programs proper, taken by a
    /// spare or not.
    pub fn recursion_misses_total(&self) -> u64 {
        self.recursion_misses_by_program().iter().map(|(_, n)| n).sum()
    }

    /// The programs whose runs the kernel's recursion guard skipped, and how many, spares
    /// left out (what they took is subtracted in [`Self::recursion_misses`] only).
    pub fn recursion_misses_by_program(&self) -> Vec<(String, u64)> {
        use std::os::fd::AsFd;
        let mut misses = Vec::new();
        for prog in self._object.progs() {
            if !prog.autoload() || is_spare(&prog.name().to_string_lossy()) {
                continue; // not loaded here, or a spare
            }
            let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
            let mut len = std::mem::size_of_val(&info) as u32;
            // SAFETY: `info` is a bpf_prog_info of `len` bytes that outlives the call, and
            // the kernel writes at most `len` bytes of it (fewer on an older kernel, whose
            // fields the zeroed rest stands for).
            let ret = unsafe {
                libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(
                    prog.as_fd().as_raw_fd(),
                    &mut info as *mut _ as *mut _,
                    &mut len,
                )
            };
            if ret == 0 && info.recursion_misses > 0 {
                misses.push((prog.name().to_string_lossy().into_owned(), info.recursion_misses));
            }
        }
        misses
    }

    /// What the spare took (`nested_taken`, summed over CPUs); 0 without the map.
    pub fn nested_taken(&self) -> u64 {
        let Some(map) = self._object.maps().find(|m| m.name() == "nested_taken") else { return 0 };
        match map.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY) {
            Ok(Some(per_cpu)) => {
                per_cpu.iter().filter_map(|v| v.get(..8)).map(|b| u64::from_ne_bytes(b.try_into().unwrap())).sum()
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fexit_programs_name_their_syscall() {
        assert_eq!(fexit_syscall("file_fx_openat"), Some("openat"));
        assert_eq!(fexit_syscall("file_fx_close_range_loop"), Some("close_range"));
        assert_eq!(fexit_syscall("file_fx_execve_noloop"), Some("execve"));
        assert_eq!(fexit_syscall("file_sys_exit_loop"), None);
        // Spares (bpf/spare.bpf.h) take the same syscall.
        assert_eq!(fexit_syscall("file_fx_openat_nested"), Some("openat"));
        assert_eq!(fexit_syscall("file_fx_close_range_loop_nested"), Some("close_range"));
        assert_eq!(fexit_syscall("file_fx_close_range_loop_nested2"), Some("close_range"));
        assert_eq!(spare_of("file_fx_read_nested2"), ("file_fx_read", 2));
        assert_eq!(spare_of("net_send_nested"), ("net_send", 1));
        assert_eq!(spare_of("net_send"), ("net_send", 0));
        assert!(is_spare("file_fx_openat_nested") && !is_spare("file_fx_openat"));
        assert!(is_preempt_spare("net_send_nested") && is_preempt_spare("file_fx_openat_nested"));
        assert!(is_spare("net_state_nested") && !is_preempt_spare("net_state_nested"));
        // net_state's second spare loads only where the kernel preempts, after its first.
        assert!(is_preempt_spare("net_state_nested2"));
        assert_eq!(spare_of("net_state_nested2"), ("net_state", 2));
    }

    #[test]
    fn the_verifier_verdict_is_one_line() {
        // Debian's 5.10 on an fexit program whose first argument points to a struct its
        // BTF only forward-declares (as the log came back from the guest).
        let log = "libbpf: prog 'file_fx_copy_file_range': BPF program load failed: -EACCES
libbpf: prog 'file_fx_copy_file_range': -- BEGIN PROG LOAD LOG --
arg#0 type is not a struct
Unrecognized arg#0 type PTR
; FX(copy_file_range, NR_copy_file_range)
func '__x64_sys_copy_file_range' arg0 type FWD is not a struct
invalid bpf_context access off=0 size=8
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
-- END PROG LOAD LOG --
libbpf: prog 'file_fx_copy_file_range': failed to load: -EACCES";
        assert_eq!(
            verifier_verdict(log),
            "the verifier rejected file_fx_copy_file_range: func '__x64_sys_copy_file_range' arg0 type FWD is not a struct; invalid bpf_context access off=0 size=8"
        );
    }
}
