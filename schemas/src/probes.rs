//! The probes, one entry each: the BPF object that implements it, the hooks its programs
//! attach to, what it records, and the options that shape it. The loader, `--probes` and
//! its help, `scripts/ebpf-preflight.sh`, the schema docs and `recorder/build.rs` all read
//! this list; the tables each probe fills say so themselves (`Table::probe`).
//!
//! This file uses nothing outside itself: `recorder/build.rs` includes it as it is.

/// A probe: one BPF object with its own ring buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probe {
    Exec = 0,
    File = 1,
    Net = 2,
    Dns = 3,
    Module = 4,
}

/// One probe's entry.
#[derive(Debug)]
pub struct ProbeSpec {
    pub probe: Probe,
    /// Its name in `--probes` and in the `stats` table.
    pub name: &'static str,
    /// `bpf/<object>.bpf.c`.
    pub object: &'static str,
    /// Each program's section, as in its `SEC("...")`: `tp_btf/<tracepoint>`,
    /// `iter/<target>`, `cgroup_skb/<ingress|egress>` (on the cgroup v2 root),
    /// `cgroup/<sock_create|sock_release>` (same). A leading `?` marks a hook the probe can
    /// run without: where the kernel lacks it, that program is not loaded.
    pub hooks: &'static [&'static str],
    /// The syscalls it records at their exit, by the kernel's name for them (`openat`).
    /// Where the kernel lets fexit programs load, each has an `fexit` program,
    /// `<name>_fx_<syscall>` in the object (with `_loop`/`_noloop` variants where it
    /// walks descriptors), attached to the syscall's wrapper (`__x64_sys_openat`,
    /// `__arm64_sys_openat`), and the `tp_btf/sys_exit` program is not loaded; elsewhere
    /// that one program sees every syscall (`--syscall-hook`). Empty: no syscall hooks.
    pub syscalls: &'static [&'static str],
    /// What it records, for `--help` and the docs.
    pub summary: &'static str,
    /// The command-line options that apply to it alone.
    pub options: &'static [&'static str],
    /// Its `iter/` programs the recorder runs once at start, in this order (to list what
    /// was there before it), and at every `--flow-interval` and at the end.
    pub at_start: &'static [&'static str],
    pub each_interval: &'static [&'static str],
    /// Its `iter/` programs the recorder runs once when it stops, after the interval ones
    /// (to write what is still open).
    pub at_end: &'static [&'static str],
}

pub static PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        probe: Probe::Exec,
        name: "exec",
        object: "exec_provenance",
        hooks: &["tp_btf/sched_process_exec", "tp_btf/sched_process_exit"],
        syscalls: &[],
        summary: "every exec with argv and envp, the file that ran, ids, namespaces and tty; every process exit",
        options: &["--argv-max-bytes", "--envp"],
        at_start: &[],
        each_interval: &[],
        at_end: &[],
    },
    ProbeSpec {
        probe: Probe::File,
        name: "file",
        object: "file_ops",
        hooks: &["tp_btf/sys_exit", "tp_btf/sched_process_fork", "tp_btf/sched_process_exit", "iter/task_file"],
        syscalls: &[
            "read", "pread64", "readv", "preadv", "preadv2", "write", "pwrite64", "writev", "pwritev", "pwritev2",
            "sendfile64", "splice", "copy_file_range", "close", "dup", "dup2", "dup3", "fcntl", "mmap", "open",
            "openat", "openat2", "unlink", "unlinkat", "rename", "renameat", "renameat2", "truncate", "ftruncate",
            "close_range", "execve", "execveat",
        ],
        summary: "open, close (bytes and calls summed per open file through any of its descriptors, closed by close, exit or exec), unlink, rename, truncate; and the exec table's failed execs",
        options: &["--exclude-path-prefix", "--file-rw-events"],
        at_start: &["file_scan_start"],
        each_interval: &[],
        at_end: &["file_scan_end"],
    },
    ProbeSpec {
        probe: Probe::Net,
        name: "net",
        object: "net_flow",
        hooks: &[
            "tp_btf/inet_sock_set_state",
            "?tp_btf/sock_send_length",
            "?tp_btf/sock_recv_length",
            "iter/task_file",
            "iter/tcp",
            "?cgroup_skb/egress",
            "?cgroup_skb/ingress",
            "?cgroup/sock_create",
            "?cgroup/sock_release",
            "?iter/udp",
        ],
        syscalls: &[],
        summary: "TCP connections (owner, bytes, segments, RTT, outcome) and UDP flows per socket and peer; interim rows while open",
        options: &["--flow-interval"],
        at_start: &["net_scan_owners", "net_scan_tcp"],
        each_interval: &["net_update_tcp", "net_update_udp"],
        at_end: &[],
    },
    ProbeSpec {
        probe: Probe::Dns,
        name: "dns",
        object: "dns_query",
        hooks: &["cgroup_skb/egress", "cgroup_skb/ingress"],
        syscalls: &[],
        summary: "DNS queries and responses over UDP and TCP, as the asking socket sees them",
        options: &["--dns-port"],
        at_start: &[],
        each_interval: &[],
        at_end: &[],
    },
    ProbeSpec {
        probe: Probe::Module,
        name: "module",
        object: "module_load",
        hooks: &["tp_btf/module_load", "tp_btf/module_free", "tp_btf/sys_exit"],
        syscalls: &["init_module", "finit_module", "delete_module"],
        summary: "kernel module loads and unloads: one row per init_module, finit_module or delete_module call (failed ones too) with its file, parameters, result and the module's taint",
        options: &[],
        at_start: &[],
        each_interval: &[],
        at_end: &[],
    },
];

impl Probe {
    pub const ALL: [Probe; 5] = [Probe::Exec, Probe::File, Probe::Net, Probe::Dns, Probe::Module];
    pub const COUNT: usize = Self::ALL.len();

    /// This probe's entry in [`PROBES`].
    pub fn spec(self) -> &'static ProbeSpec {
        &PROBES[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn from_name(name: &str) -> Option<Probe> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Every probe's name, comma-separated, for help and errors.
    pub fn names() -> String {
        Self::ALL.map(Probe::name).join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_in_enum_order() {
        for (i, p) in PROBES.iter().enumerate() {
            assert_eq!(p.probe as usize, i, "{}", p.name);
            assert_eq!(Probe::ALL[i], p.probe);
        }
        assert_eq!(PROBES.len(), Probe::COUNT);
    }
}
