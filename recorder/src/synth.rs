//! Synthetic records: the exact bytes the BPF probes write, for tests and benchmarks.
//!
//! [`encode`] lays out one record from an ABI struct and its tail pieces, filling in kind,
//! ABI version, lengths and the header's total length exactly as `bpf/events.h` says.
//! [`Synth`] draws realistic records (commands, paths, argv lengths, flows, DNS messages)
//! from a seeded generator, so every run produces the same bytes.

use capture_schemas::abi::{self, Hdr, Pod};

/// Identity of the task a record is about.
#[derive(Debug, Clone)]
pub struct Task {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub cgroup_id: u64,
}

impl Task {
    /// The record header of an event of `kind` at `ktime_ns` by this task (`len` is set by
    /// [`encode`]). As in the probes, only exec records carry the parent's start time.
    pub fn hdr(&self, kind: u16, ktime_ns: u64) -> Hdr {
        let mut comm = [0u8; 16];
        let n = self.comm.len().min(15);
        comm[..n].copy_from_slice(&self.comm.as_bytes()[..n]);
        Hdr {
            kind,
            abi: abi::ABI_VERSION,
            len: 0,
            ktime_ns,
            start_ns: self.start_ns,
            parent_start_ns: if kind == abi::KIND_EXEC { self.parent_start_ns } else { 0 },
            cgroup_id: self.cgroup_id,
            pid: self.pid,
            tid: self.tid,
            ppid: self.ppid,
            uid: self.uid,
            gid: self.gid,
            _pad0: 0,
            comm,
        }
    }
}

/// Joins strings NUL-terminated, as argv and envp lie in a process's memory.
pub fn nul_join<S: AsRef<[u8]>>(items: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(s.as_ref());
        out.push(0);
    }
    out
}

/// Appends one record to `out`: the fixed part (its header's `len` set to the total) and
/// the tail pieces. The caller sets the tail lengths in the fixed part, or uses the
/// `*_record` helpers below, which do.
pub fn encode<T: Pod>(out: &mut Vec<u8>, fixed: &T, tail: &[&[u8]]) {
    let start = out.len();
    out.extend_from_slice(fixed.as_bytes());
    for piece in tail {
        out.extend_from_slice(piece);
    }
    let total = (out.len() - start) as u32;
    // `len` is at offset 4 of every record (cap_hdr.len).
    out[start + 4..start + 8].copy_from_slice(&total.to_ne_bytes());
}

/// An exec record; `exe` is the resolved file that ran (empty for a failed exec).
pub fn exec_record(out: &mut Vec<u8>, mut e: abi::Exec, path: &[u8], argv: &[u8], envp: &[u8], exe: &[u8]) {
    e.hdr.kind = abi::KIND_EXEC;
    e.path_len = path.len() as u32;
    e.argv_len = argv.len() as u32;
    e.envp_len = envp.len() as u32;
    e.exe_len = exe.len() as u32;
    encode(out, &e, &[path, argv, envp, exe]);
}

pub fn exit_record(out: &mut Vec<u8>, mut e: abi::Exit) {
    e.hdr.kind = abi::KIND_EXIT;
    encode(out, &e, &[]);
}

/// A plausible kernel address for the struct file of a task's descriptor.
fn file_key(task: usize, fd: i32) -> u64 {
    0xffff_8880_0000_0000 + ((task as u64) << 16) + ((fd as u64) << 8)
}

pub fn file_record(out: &mut Vec<u8>, mut f: abi::File, path: &[u8], path2: &[u8], cwd: &[u8]) {
    f.hdr.kind = abi::KIND_FILE;
    f.path_len = path.len() as u32;
    f.path2_len = path2.len() as u32;
    f.cwd_len = cwd.len() as u32;
    encode(out, &f, &[path, path2, cwd]);
}

pub fn net_record(out: &mut Vec<u8>, mut n: abi::Net) {
    n.hdr.kind = abi::KIND_NET;
    encode(out, &n, &[]);
}

pub fn dns_record(out: &mut Vec<u8>, mut d: abi::Dns, msg: &[u8]) {
    d.hdr.kind = abi::KIND_DNS;
    d.msg_len = msg.len() as u32;
    if d.wire_len == 0 {
        d.wire_len = d.msg_len;
    }
    encode(out, &d, &[msg]);
}

pub fn module_record(out: &mut Vec<u8>, mut m: abi::Module, name: &[u8], path: &[u8], params: &[u8]) {
    m.hdr.kind = abi::KIND_MODULE;
    m.name_len = name.len() as u32;
    m.path_len = path.len() as u32;
    m.params_len = params.len() as u32;
    encode(out, &m, &[name, path, params]);
}

/// An answer of a DNS response built by [`dns_message`].
#[derive(Debug, Clone)]
pub enum Answer {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Cname(String),
}

fn push_name(msg: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
}

/// A DNS message as on the wire: one question, and for a response its answers, each
/// naming the question by a compression pointer.
pub fn dns_message(txid: u16, response: bool, rcode: u16, qname: &str, qtype: u16, answers: &[Answer]) -> Vec<u8> {
    let flags: u16 = if response { 0x8180 | rcode } else { 0x0100 };
    let mut m = Vec::with_capacity(64);
    for v in [txid, flags, 1, answers.len() as u16, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    push_name(&mut m, qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    for a in answers {
        m.extend_from_slice(&[0xc0, 12]);
        let (t, rdata): (u16, Vec<u8>) = match a {
            Answer::A(ip) => (1, ip.to_vec()),
            Answer::Aaaa(ip) => (28, ip.to_vec()),
            Answer::Cname(n) => {
                let mut r = Vec::new();
                push_name(&mut r, n);
                (5, r)
            }
        };
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&300u32.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
    }
    m
}

/// splitmix64: small, fast and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `true` with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

const COMMANDS: &[&str] = &[
    "bash",
    "sh",
    "python3",
    "node",
    "sshd",
    "systemd",
    "cron",
    "nginx",
    "postgres",
    "java",
    "git",
    "make",
    "cc1",
    "ld",
    "rustc",
    "cargo",
    "ls",
    "cat",
    "grep",
    "sed",
    "awk",
    "find",
    "tar",
    "gzip",
    "curl",
    "containerd",
    "dockerd",
    "kubelet",
    "journald",
    "rsyslogd",
];
const DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/etc",
    "/var/log",
    "/tmp",
    "/home/alice/src/capture",
    "/home/alice",
    "/var/lib/postgresql/15/main/base/16384",
    "/usr/share/zoneinfo",
    "/run/user/1000",
    "/opt/app/static",
];
const FILES: &[&str] = &[
    "libc.so.6",
    "ld.so.cache",
    "passwd",
    "group",
    "nsswitch.conf",
    "syslog",
    "auth.log",
    "main.rs",
    "lib.rs",
    "Cargo.toml",
    "index.html",
    "app.js",
    "config.yaml",
    "2619",
    "2619_fsm",
    "UTC",
    "hosts",
    "resolv.conf",
    "localtime",
    "libpthread.so.0",
    "libm.so.6",
    "output.log",
    "data.json",
    "cache.db",
];
const RELATIVE: &[&str] = &["src/main.rs", "Cargo.lock", "target/debug/build", ".git/HEAD", "README.md", "notes.txt"];
const ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/home/alice",
    "LANG=C.UTF-8",
    "TERM=xterm-256color",
    "SHELL=/bin/bash",
    "USER=alice",
    "LOGNAME=alice",
    "PWD=/home/alice/src/capture",
    "SHLVL=2",
    "XDG_RUNTIME_DIR=/run/user/1000",
    "SSH_AUTH_SOCK=/tmp/ssh-XXXX/agent.1234",
    "EDITOR=vim",
    "LESS=-R",
    "HISTSIZE=10000",
    "GITHUB_TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG",
    "CARGO_HOME=/home/alice/.cargo",
    "RUSTUP_HOME=/home/alice/.rustup",
    "DISPLAY=:0",
    "COLORTERM=truecolor",
];
const HOSTS: &[&str] =
    &["example.com", "api.github.com", "deb.debian.org", "static.crates.io", "db.internal", "www.google.com"];

/// A seeded generator of realistic records for every kind.
pub struct Synth {
    pub rng: Rng,
    ktime: u64,
    tasks: Vec<Task>,
    scratch: Vec<u8>,
    /// File operations come in runs from one task, as syscall streams do.
    run_task: usize,
    run_left: u32,
    /// An opened file whose close is still to come.
    pending: Option<Pending>,
}

struct Pending {
    path: Vec<u8>,
    relative: bool,
    fd: i32,
    ino: u64,
    size: u64,
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Synth {
    pub fn new(seed: u64) -> Synth {
        let mut rng = Rng::new(seed);
        let tasks = (0..256)
            .map(|i| {
                let pid = 1000 + rng.below(400_000) as u32;
                let start_ns = 1_000_000_000 + rng.below(3_600_000_000_000);
                Task {
                    pid,
                    tid: if rng.chance(20) { pid + 1 + rng.below(8) as u32 } else { pid },
                    ppid: if i == 0 { 1 } else { 1000 + rng.below(400_000) as u32 },
                    uid: *rng.pick(&[0, 0, 1000, 1000, 1000, 33, 999]),
                    gid: *rng.pick(&[0, 1000, 33]),
                    comm: rng.pick(COMMANDS).to_string(),
                    start_ns,
                    parent_start_ns: start_ns.saturating_sub(rng.below(1_000_000_000_000)),
                    cgroup_id: 4000 + rng.below(40),
                }
            })
            .collect();
        Synth {
            rng,
            ktime: 3_700_000_000_000,
            tasks,
            scratch: Vec::with_capacity(8192),
            run_task: 0,
            run_left: 0,
            pending: None,
        }
    }

    fn next_event(&mut self) -> (u64, usize) {
        self.ktime += 1 + self.rng.below(2_000);
        let t = self.rng.below(self.tasks.len() as u64) as usize;
        (self.ktime, t)
    }

    /// Appends one realistic record of `kind` to `out`.
    pub fn record(&mut self, kind: abi::Kind, out: &mut Vec<u8>) {
        match kind {
            abi::Kind::Exec => self.exec(out),
            abi::Kind::Exit => self.exit(out),
            abi::Kind::File => self.file(out),
            abi::Kind::Net => self.net(out),
            abi::Kind::Dns => self.dns(out),
            abi::Kind::Module => self.module(out),
        }
    }

    pub fn exec(&mut self, out: &mut Vec<u8>) {
        let (ktime, t) = self.next_event();
        let comm = *self.rng.pick(COMMANDS);
        // Most execs are a new process's (fork, then exec): the task becomes a child of
        // what it was, with its own pid and start time, so its exec_id is new. The rest
        // are a process replacing its program (a shell's `exec`): the same exec_id.
        if self.rng.chance(90) {
            let parent = &self.tasks[t];
            let pid = 1000 + self.rng.below(400_000) as u32;
            self.tasks[t] = Task {
                pid,
                tid: pid,
                ppid: parent.pid,
                parent_start_ns: parent.start_ns,
                start_ns: ktime.saturating_sub(1 + self.rng.below(1_000_000)),
                comm: comm.to_string(),
                ..parent.clone()
            };
        } else {
            self.tasks[t].comm = comm.to_string();
        }
        let path = format!("/usr/bin/{comm}");
        // Most commands take a few arguments; a few take hundreds (compilers, xargs).
        let argc = if self.rng.chance(5) { 50 + self.rng.below(300) } else { 1 + self.rng.below(6) } as usize;
        let mut argv: Vec<String> = vec![comm.to_string()];
        for i in 1..argc {
            argv.push(match self.rng.below(3) {
                0 => format!("--opt-{i}"),
                1 => format!("{}/{}", self.rng.pick(DIRS), self.rng.pick(FILES)),
                _ => format!("{}", self.rng.below(100_000)),
            });
        }
        let envc = 10 + self.rng.below(ENV.len() as u64 - 9) as usize;
        let envp: Vec<&str> = ENV[..envc].to_vec();
        let task = &self.tasks[t];
        let mut e = abi::Exec { hdr: task.hdr(abi::KIND_EXEC, ktime), ..Default::default() };
        e.hdr.comm = [0; 16];
        e.hdr.comm[..comm.len().min(15)].copy_from_slice(&comm.as_bytes()[..comm.len().min(15)]);
        e.euid = task.uid;
        e.loginuid = if task.uid == 0 { u32::MAX } else { 1000 };
        e.argc = argc as u32;
        e.envc = envc as u32;
        e.pidns = 4_026_531_836;
        e.mntns = 4_026_531_841;
        e.netns = 4_026_531_840;
        if self.rng.chance(30) {
            e.tty[..5].copy_from_slice(b"pts/0");
        }
        exec_record(out, e, path.as_bytes(), &nul_join(&argv), &nul_join(&envp), path.as_bytes());
    }

    pub fn exit(&mut self, out: &mut Vec<u8>) {
        let (ktime, t) = self.next_event();
        let status = match self.rng.below(10) {
            0 => 1 << 8,
            1 => 9,
            2 => 2 << 8,
            _ => 0,
        };
        exit_record(out, abi::Exit { hdr: self.tasks[t].hdr(abi::KIND_EXIT, ktime), exit_status: status, _pad0: 0 });
    }

    /// A realistic file-op stream: runs of operations by one task, mostly opens each
    /// followed by its close (which carries the byte sums of reading the whole file), with
    /// failed opens, unlinks, renames and a few per-call reads and writes. A path always
    /// has the same inode and size.
    pub fn file(&mut self, out: &mut Vec<u8>) {
        if self.run_left == 0 {
            self.run_task = self.rng.below(self.tasks.len() as u64) as usize;
            self.run_left = 1 + self.rng.below(40) as u32;
            self.pending = None;
        }
        self.run_left -= 1;
        self.ktime += 1 + self.rng.below(2_000);
        let t = self.run_task;
        let mut f =
            abi::File { hdr: self.tasks[t].hdr(abi::KIND_FILE, self.ktime), fd: -1, dev: 0x803, ..Default::default() };
        const HOME: &[u8] = b"/home/alice/src/capture";
        if let Some(p) = self.pending.take() {
            f.op = abi::FILE_CLOSE;
            f.fd = p.fd;
            f.ino = p.ino;
            f.file_key = file_key(t, p.fd);
            f.how = abi::CLOSE_CLOSE;
            if self.rng.chance(80) {
                f.reads = (p.size / 4096 + 1) as u32;
                f.bytes_read = p.size;
            } else {
                f.writes = 1 + (p.size / 8192) as u32;
                f.bytes_written = p.size;
            }
            // Close records carry the path resolved from the open file.
            self.scratch.clear();
            if p.relative {
                self.scratch.extend_from_slice(HOME);
                self.scratch.push(b'/');
            }
            self.scratch.extend_from_slice(&p.path);
            file_record(out, f, &self.scratch, b"", b"");
            return;
        }
        self.scratch.clear();
        let relative = self.rng.chance(15);
        if relative {
            self.scratch.extend_from_slice(self.rng.pick(RELATIVE).as_bytes());
        } else {
            // Each task works in a few directories of its own.
            let dir = DIRS[(t * 7 + self.rng.below(3) as usize) % DIRS.len()];
            self.scratch.extend_from_slice(dir.as_bytes());
            self.scratch.push(b'/');
            self.scratch.extend_from_slice(self.rng.pick(FILES).as_bytes());
        }
        let h = fnv(&self.scratch);
        f.ino = 100_000 + h % 50_000;
        let size = [832, 4096, 1_024, 65_536, 12_288, 2_210][(h >> 20) as usize % 6];
        let cwd: &[u8] = if relative { HOME } else { b"" };
        let roll = self.rng.below(100);
        let path2;
        match roll {
            0..=87 => {
                f.op = abi::FILE_OPEN;
                f.flags = *self.rng.pick(&[0o2100000, 0o2100000, 0o2100000, 0o100000, 0o2101101]);
                f.mode = if f.flags & 0o100 != 0 { 0o644 } else { 0 };
                let fail = self.rng.chance(10);
                let fd = 3 + self.rng.below(4) as i32;
                f.fd = if fail { -1 } else { fd };
                f.ret = if fail { -2 } else { i64::from(fd) };
                if !fail {
                    f.file_key = file_key(t, fd);
                    self.pending = Some(Pending { path: self.scratch.clone(), relative, fd, ino: f.ino, size });
                }
                path2 = Vec::new();
            }
            88..=92 => {
                f.op = abi::FILE_UNLINK;
                path2 = Vec::new();
            }
            93..=94 => {
                f.op = abi::FILE_RENAME;
                let mut p = self.scratch.clone();
                p.extend_from_slice(b".new");
                path2 = p;
            }
            _ => {
                let write = self.rng.chance(50);
                f.op = if write { abi::FILE_WRITE } else { abi::FILE_READ };
                f.fd = 3 + self.rng.below(4) as i32;
                let n = self.rng.below(8192);
                f.ret = n as i64;
                if write {
                    (f.bytes_written, f.writes) = (n, 1);
                } else {
                    (f.bytes_read, f.reads) = (n, 1);
                }
                path2 = Vec::new();
            }
        }
        let path = std::mem::take(&mut self.scratch);
        file_record(out, f, &path, &path2, cwd);
        self.scratch = path;
    }

    pub fn net(&mut self, out: &mut Vec<u8>) {
        let (ktime, t) = self.next_event();
        let v6 = self.rng.chance(20);
        let mut n = abi::Net { hdr: self.tasks[t].hdr(abi::KIND_NET, ktime), ..Default::default() };
        let e = &mut n.ep;
        e.family = if v6 { libc::AF_INET6 as u16 } else { libc::AF_INET as u16 };
        e.proto = if self.rng.chance(80) { libc::IPPROTO_TCP as u8 } else { libc::IPPROTO_UDP as u8 };
        e.direction = if self.rng.chance(70) { abi::DIR_OUT } else { abi::DIR_IN };
        if v6 {
            e.saddr = "2001:db8::10".parse::<std::net::Ipv6Addr>().unwrap_or(std::net::Ipv6Addr::LOCALHOST).octets();
            e.daddr = std::net::Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 1 + self.rng.below(100) as u16).octets();
        } else {
            e.saddr[..4].copy_from_slice(&[10, 0, 0, 5]);
            e.daddr[..4].copy_from_slice(&[93, 184, self.rng.below(4) as u8, 1 + self.rng.below(250) as u8]);
        }
        e.sport = 32768 + self.rng.below(28_000) as u16;
        e.dport = *self.rng.pick(&[443, 443, 443, 80, 53, 22, 5432, 6443]);
        e.netns = 4_026_531_840;
        n.outcome = if self.rng.chance(90) { abi::NET_CLOSED } else { abi::NET_REFUSED };
        n.owner = if e.direction == abi::DIR_OUT { abi::OWNER_CONNECT } else { abi::OWNER_ACCEPT };
        n.bytes_sent = self.rng.below(20_000);
        n.bytes_recv = self.rng.below(2_000_000);
        n.segs_sent = 1 + n.bytes_sent / 1448;
        n.segs_recv = 1 + n.bytes_recv / 1448;
        n.srtt_us = 200 + self.rng.below(40_000) as u32;
        n.start_ns = ktime.saturating_sub(self.rng.below(30_000_000_000));
        n.sock_cookie = self.rng.below(1 << 40);
        net_record(out, n);
    }

    pub fn dns(&mut self, out: &mut Vec<u8>) {
        let (ktime, t) = self.next_event();
        let host = *self.rng.pick(HOSTS);
        let response = self.rng.chance(50);
        let txid = self.rng.below(65_536) as u16;
        let qtype = if self.rng.chance(70) { 1 } else { 28 };
        let nx = host.ends_with(".internal") && self.rng.chance(50);
        let answers: Vec<Answer> = if !response || nx {
            Vec::new()
        } else if qtype == 1 {
            vec![Answer::A([93, 184, 216, 34])]
        } else {
            vec![Answer::Aaaa(
                std::net::Ipv6Addr::new(0x2606, 0x2800, 0x220, 1, 0x248, 0x1893, 0x25c8, 0x1946).octets(),
            )]
        };
        let msg = dns_message(txid, response, if nx { 3 } else { 0 }, host, qtype, &answers);
        let mut d = abi::Dns { hdr: self.tasks[t].hdr(abi::KIND_DNS, ktime), ..Default::default() };
        let e = &mut d.ep;
        e.family = libc::AF_INET as u16;
        e.proto = libc::IPPROTO_UDP as u8;
        e.direction = abi::DIR_OUT;
        e.saddr[..4].copy_from_slice(&[10, 0, 0, 5]);
        e.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        e.sport = 40_000 + self.rng.below(20_000) as u16;
        e.dport = 53;
        e.netns = 4_026_531_840;
        d.latency_ns = if response { 200_000 + self.rng.below(30_000_000) } else { 0 };
        dns_record(out, d, &msg);
    }

    pub fn module(&mut self, out: &mut Vec<u8>) {
        let (ktime, t) = self.next_event();
        let name = *self.rng.pick(&["nf_tables", "overlay", "br_netfilter", "wireguard", "vfat"]);
        let syscall = match self.rng.below(10) {
            0..=5 => abi::MODULE_FINIT,
            6 => abi::MODULE_INIT,
            _ => abi::MODULE_DELETE,
        };
        let failed = self.rng.chance(20);
        let path =
            if syscall == abi::MODULE_FINIT { format!("/lib/modules/6.18.0/kernel/{name}.ko") } else { String::new() };
        let params: &[u8] = if syscall == abi::MODULE_DELETE { b"" } else { b"debug=1" };
        let m = abi::Module {
            hdr: self.tasks[t].hdr(abi::KIND_MODULE, ktime),
            syscall,
            flags: if syscall == abi::MODULE_DELETE { libc::O_NONBLOCK as u32 } else { 0 },
            ret: if failed { -i64::from(libc::EEXIST) } else { 0 },
            image_len: if syscall == abi::MODULE_INIT { 40_000 + self.rng.below(400_000) } else { 0 },
            taints: if failed { 0 } else { 1 << 13 },
            status: match (failed, syscall) {
                (true, _) => 0,
                (false, abi::MODULE_DELETE) => abi::MODULE_FREED,
                (false, _) => abi::MODULE_LOADED,
            },
            ..Default::default()
        };
        let name = if failed && syscall != abi::MODULE_DELETE { "" } else { name };
        module_record(out, m, name.as_bytes(), path.as_bytes(), params);
    }
}
