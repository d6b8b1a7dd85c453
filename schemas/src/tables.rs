//! The Arrow schema of every table, with a description of each column in its field metadata.
//!
//! Column types are chosen so every reader takes them without options: signed integers only
//! (Spark has no unsigned 64-bit), timestamps in microseconds UTC, addresses as strings.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Version of the table schemas, stored in every segment's metadata.
pub const SCHEMA_VERSION: u32 = 1;
/// Field metadata key holding a column's description.
pub const DESCRIPTION_KEY: &str = "description";

/// The tables of a capture, in a fixed order (their index is used for arrays of builders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Exec = 0,
    Exit = 1,
    File = 2,
    Net = 3,
    Dns = 4,
    Module = 5,
    Stats = 6,
}

/// The probes, each one BPF object with its own ring buffers; `exec` also produces `exit` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probe {
    Exec = 0,
    File = 1,
    Net = 2,
    Dns = 3,
    Module = 4,
}

impl Probe {
    pub const ALL: [Probe; 5] = [Probe::Exec, Probe::File, Probe::Net, Probe::Dns, Probe::Module];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Probe::Exec => "exec",
            Probe::File => "file",
            Probe::Net => "net",
            Probe::Dns => "dns",
            Probe::Module => "module",
        }
    }

    /// The BPF source in `bpf/` that implements this probe.
    pub fn bpf_source(self) -> &'static str {
        match self {
            Probe::Exec => "exec_provenance.bpf.c",
            Probe::File => "file_ops.bpf.c",
            Probe::Net => "net_flow.bpf.c",
            Probe::Dns => "dns_query.bpf.c",
            Probe::Module => "module_load.bpf.c",
        }
    }

    pub fn from_name(name: &str) -> Option<Probe> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl Table {
    pub const ALL: [Table; 7] =
        [Table::Exec, Table::Exit, Table::File, Table::Net, Table::Dns, Table::Module, Table::Stats];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Table::Exec => "exec",
            Table::Exit => "exit",
            Table::File => "file",
            Table::Net => "net",
            Table::Dns => "dns",
            Table::Module => "module",
            Table::Stats => "stats",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The probe whose records fill this table (`None` for `stats`, the recorder's own).
    pub fn probe(self) -> Option<Probe> {
        match self {
            Table::Exec | Table::Exit => Some(Probe::Exec),
            Table::File => Some(Probe::File),
            Table::Net => Some(Probe::Net),
            Table::Dns => Some(Probe::Dns),
            Table::Module => Some(Probe::Module),
            Table::Stats => None,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Table::Exec => "One row per exec (sched_process_exec), plus one per process already running when the recorder started (from_procfs).",
            Table::Exit => "One row per process exit (thread-group leader, sched_process_exit).",
            Table::File => "File operations: open, close (with bytes and calls summed over the open file's life), unlink, rename, and per-call read/write when enabled.",
            Table::Net => "TCP and UDP flows, one row per flow at its end, with bytes in each direction.",
            Table::Dns => "DNS queries and responses, decoded from the messages on the wire.",
            Table::Module => "Kernel module loads.",
            Table::Stats => "Recorder health: one row per probe per stats interval.",
        }
    }

    /// The column specs of this table, in schema order.
    pub fn columns(self) -> Vec<&'static Col> {
        let own: &'static [Col] = match self {
            Table::Exec => EXEC,
            Table::Exit => EXIT,
            Table::File => FILE,
            Table::Net => NET,
            Table::Dns => DNS,
            Table::Module => MODULE,
            Table::Stats => return STATS.iter().collect(),
        };
        COMMON.iter().chain(own).collect()
    }

    /// The Arrow schema, built once per table.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        SCHEMAS.get_or_init(|| Table::ALL.iter().map(|t| Arc::new(t.build_schema())).collect())[self.index()].clone()
    }

    fn build_schema(self) -> Schema {
        // No schema-level metadata: DataFusion refuses to join tables whose schema metadata
        // differ. Table name and versions are in each segment's key-value metadata.
        Schema::new(self.columns().into_iter().map(Col::field).collect::<Vec<Field>>())
    }
}

/// Logical column types used by the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Ts,
    I32,
    I64,
    Bool,
    Str,
    StrList,
}

impl Ty {
    pub fn data_type(self) -> DataType {
        match self {
            Ty::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Ty::I32 => DataType::Int32,
            Ty::I64 => DataType::Int64,
            Ty::Bool => DataType::Boolean,
            Ty::Str => DataType::Utf8,
            Ty::StrList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
        }
    }

    /// The type as the schema docs and `capq --tables` show it.
    pub fn sql_name(self) -> &'static str {
        match self {
            Ty::Ts => "TIMESTAMP (µs, UTC)",
            Ty::I32 => "INT",
            Ty::I64 => "BIGINT",
            Ty::Bool => "BOOLEAN",
            Ty::Str => "VARCHAR",
            Ty::StrList => "LIST<VARCHAR>",
        }
    }
}

/// One column: name, type, nullability and what it means.
#[derive(Debug)]
pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub nullable: bool,
    pub description: &'static str,
}

impl Col {
    pub fn field(&self) -> Field {
        Field::new(self.name, self.ty.data_type(), self.nullable)
            .with_metadata([(DESCRIPTION_KEY.to_string(), self.description.to_string())].into())
    }
}

const fn c(name: &'static str, ty: Ty, description: &'static str) -> Col {
    Col { name, ty, nullable: false, description }
}

const fn n(name: &'static str, ty: Ty, description: &'static str) -> Col {
    Col { name, ty, nullable: true, description }
}

/// Columns every event table starts with.
pub static COMMON: &[Col] = &[
    c("ts", Ty::Ts, "Wall-clock time of the event, UTC, microseconds (kernel boot clock plus the boot-to-wall offset taken once per batch)."),
    c("ktime_ns", Ty::I64, "Kernel CLOCK_BOOTTIME of the event in nanoseconds: exact event order within one boot."),
    c("pid", Ty::I32, "Process id (thread-group id)."),
    c("tid", Ty::I32, "Thread id."),
    c("ppid", Ty::I32, "Parent process id (real parent's thread-group id)."),
    c("uid", Ty::I64, "Real user id."),
    c("gid", Ty::I64, "Real group id."),
    c("comm", Ty::Str, "Task command name (at most 15 bytes, as the kernel keeps it)."),
    c("exec_id", Ty::I64, "Process key that survives PID reuse: hash of boot id, pid and process start time. Join exec.parent_exec_id to it for ancestry."),
    c("cgroup_id", Ty::I64, "cgroup v2 id of the task."),
];

static EXEC: &[Col] = &[
    c("parent_exec_id", Ty::I64, "exec_id of the parent process."),
    c("start_ktime_ns", Ty::I64, "Process start time, CLOCK_BOOTTIME ns."),
    c("euid", Ty::I64, "Effective user id after the exec."),
    n("loginuid", Ty::I64, "Audit login uid; null when unset."),
    c("path", Ty::Str, "The path that was executed, as passed to execve."),
    c("argv", Ty::StrList, "Command-line arguments, one string each."),
    c("envp", Ty::StrList, "Environment as NAME=value strings; secret values redacted by default."),
    c("argc", Ty::I32, "Number of arguments the kernel saw (argv may hold fewer when truncated)."),
    c("envc", Ty::I32, "Number of environment strings the kernel saw."),
    c("argv_truncated", Ty::Bool, "argv was cut at the size limit."),
    c("envp_truncated", Ty::Bool, "envp was cut at the size limit."),
    n("tty", Ty::Str, "Controlling terminal (e.g. pts/3); null when none."),
    c("pidns", Ty::I64, "PID namespace inode number."),
    c("mntns", Ty::I64, "Mount namespace inode number."),
    c("netns", Ty::I64, "Network namespace inode number."),
    c("from_procfs", Ty::Bool, "Row written at recorder start for a process already running, read from /proc."),
];

static EXIT: &[Col] = &[
    c("exit_code", Ty::I32, "Exit status passed to exit(2) (0-255); 0 when killed by a signal."),
    c("signal", Ty::I32, "Signal that ended the process; 0 when it exited normally."),
    c("core_dumped", Ty::Bool, "The process dumped core."),
    c("lifetime_ns", Ty::I64, "Nanoseconds from process start to exit."),
];

static FILE: &[Col] = &[
    c("op", Ty::Str, "open, close, unlink, rename, read or write."),
    c("path", Ty::Str, "Path as the process gave it (rename: the old path; close: the absolute path the file was opened by, empty when unknown)."),
    n(
        "abs_path",
        Ty::Str,
        "Absolute path: path itself when absolute, else resolved against the working directory; null when unknown.",
    ),
    n("path2", Ty::Str, "rename: the new path; null for other operations."),
    c("flags", Ty::I64, "open flags (O_*), unlinkat flags or renameat2 flags."),
    c("mode", Ty::I32, "open mode bits."),
    c("fd", Ty::I32, "File descriptor concerned; -1 when none."),
    c("ret", Ty::I64, "Syscall result: fd, byte count or 0 on success, -errno on failure."),
    c("bytes_read", Ty::I64, "close: bytes read over the open file's life; read: bytes of this call."),
    c("bytes_written", Ty::I64, "close: bytes written over the open file's life; write: bytes of this call."),
    c("reads", Ty::I64, "Number of read calls summed into bytes_read."),
    c("writes", Ty::I64, "Number of write calls summed into bytes_written."),
    c("ino", Ty::I64, "Inode number (0 when unknown)."),
    c("dev", Ty::I64, "Device number of the file system (0 when unknown)."),
];

static NET: &[Col] = &[
    c("family", Ty::Str, "ipv4 or ipv6."),
    c("proto", Ty::Str, "tcp or udp."),
    c("direction", Ty::Str, "out (this host connected or sent first) or in (accepted or received first)."),
    c("saddr", Ty::Str, "Local address, as text (compare with saddr = '10.0.0.1')."),
    c("sport", Ty::I32, "Local port."),
    c("daddr", Ty::Str, "Remote address, as text."),
    c("dport", Ty::I32, "Remote port."),
    c("bytes_sent", Ty::I64, "Payload bytes sent over the flow's life."),
    c("bytes_recv", Ty::I64, "Payload bytes received over the flow's life."),
    c("start_ktime_ns", Ty::I64, "CLOCK_BOOTTIME ns when the flow began."),
    c("duration_ns", Ty::I64, "Flow duration in nanoseconds."),
];

static DNS: &[Col] = &[
    c("family", Ty::Str, "ipv4 or ipv6."),
    c("proto", Ty::Str, "udp or tcp."),
    c("direction", Ty::Str, "out (sent by this host) or in (received)."),
    c("saddr", Ty::Str, "Local address, as text."),
    c("sport", Ty::I32, "Local port."),
    c("daddr", Ty::Str, "Remote address, as text."),
    c("dport", Ty::I32, "Remote port."),
    c("txid", Ty::I32, "DNS transaction id."),
    c("is_response", Ty::Bool, "The message is a response (QR bit)."),
    n("qname", Ty::Str, "Queried name, without the trailing dot; null when the message did not decode."),
    n("qtype", Ty::Str, "Query type (A, AAAA, CNAME, MX, TXT, PTR, ... or TYPEnnn)."),
    n("rcode", Ty::Str, "Response code (NOERROR, NXDOMAIN, SERVFAIL, ... ); null for queries."),
    c(
        "answers",
        Ty::StrList,
        "Answer records as text: addresses for A/AAAA, names for CNAME/PTR/NS, 'pref name' for MX.",
    ),
    n("latency_ns", Ty::I64, "Response: nanoseconds since the matching query; null for queries or when unmatched."),
    c("msg_truncated", Ty::Bool, "The captured message was shorter than on the wire, or did not decode completely."),
];

static MODULE: &[Col] = &[
    c("name", Ty::Str, "Module name."),
    c("source", Ty::Str, "init_module (image from memory) or finit_module (image from a file)."),
    n("path", Ty::Str, "finit_module: path of the module file; null otherwise."),
    c("params", Ty::Str, "Module parameters as passed."),
    c("flags", Ty::I64, "finit_module flags."),
];

static STATS: &[Col] = &[
    c("ts", Ty::Ts, "End of the interval, UTC."),
    c("interval_ms", Ty::I64, "Length of the interval in milliseconds."),
    c("probe", Ty::Str, "exec, file, net, dns or module."),
    c("events", Ty::I64, "Records decoded in the interval."),
    c("dropped_ringbuf_full", Ty::I64, "Records the kernel side could not reserve in the ring buffer."),
    c(
        "dropped_kernel_other",
        Ty::I64,
        "Records the kernel side dropped for other causes (failed reads, full state maps).",
    ),
    c("dropped_backpressure", Ty::I64, "Rows decoded but dropped because the segment writers fell behind."),
    c("dropped_write_error", Ty::I64, "Rows lost because their segment could not be written (e.g. disk full)."),
    c("malformed", Ty::I64, "Records skipped as malformed (short, unknown kind, bad lengths, wrong ABI version)."),
    c("invalid_utf8", Ty::I64, "Records kept whose strings held invalid UTF-8 (replaced by U+FFFD)."),
    c("rows_written", Ty::I64, "Rows written to segments in the interval."),
    c("bytes_written", Ty::I64, "Bytes of segments published in the interval."),
    c("segments", Ty::I64, "Segments published in the interval."),
];

/// Renders `schemas/README.md`: every table and column with its type and meaning.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Capture tables\n\n");
    out.push_str("<!-- Generated from schemas/src/tables.rs by `cargo run -p capture-schemas --example gen-docs`; a test fails when this file is out of date. -->\n\n");
    out.push_str(&format!("Schema version {SCHEMA_VERSION}, event ABI version {}.\n", crate::abi::ABI_VERSION));
    out.push_str("Segments lie at `DIR/<table>/dt=YYYY-MM-DD/hr=HH/<table>-<start>-<host>-<seq>.parquet`.\n");
    for t in Table::ALL {
        out.push_str(&format!(
            "\n## `{}`\n\n{}\n\n| column | type | null | meaning |\n|---|---|---|---|\n",
            t.name(),
            t.description()
        ));
        for col in t.columns() {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                col.name,
                col.ty.sql_name(),
                if col.nullable { "yes" } else { "no" },
                col.description
            ));
        }
    }
    out
}
