//! Every table, declared once: its columns (name, type, nullability, description), the
//! probe that fills it and what it holds.
//!
//! The declaration is [`with_tables!`], a macro that hands it to another macro. This
//! crate expands it into the [`Table`] enum and the Arrow schemas (below); the recorder
//! expands the same declaration into its Arrow builders (`recorder/src/builders.rs`), and
//! `schemas/README.md` is rendered from it. A column added here reaches the schema, the
//! builders, the docs and `capq --tables` at once; the decoder names each builder field,
//! so a column removed or renamed here fails to compile there, and a column it does not
//! fill fails every decoder test (the batch does not match its schema). The `Common`
//! group's builder is written by hand (its `ts` is derived), checked the same way.
//!
//! Column types are chosen so every reader takes them without options: signed integers
//! only (Spark has no unsigned 64-bit), timestamps in microseconds UTC, addresses as
//! strings.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub use crate::probes::Probe;

/// Version of the table schemas, stored in every segment's metadata.
pub const SCHEMA_VERSION: u32 = 5;
/// Field metadata key holding a column's description.
pub const DESCRIPTION_KEY: &str = "description";

/// The declaration of every table: `with_tables!(m)` expands to `m! { groups {..} tables {..} }`.
///
/// - A group is a set of columns several tables share, with the name of its column list
///   (`Common COMMON { .. }`). `Common` comes first and every event table starts with it;
///   the recorder derives its `ts` from `ktime_ns` once per batch.
/// - A table is `field: Variant = index, probe P, "description" [group fields] { columns }`,
///   where `field` is its SQL name and the recorder's builder field, and `P` the probe whose
///   records fill it (`None` for the recorder's own `stats`).
/// - A column is `name: Type => "description"`, or `name: Type | null => ..` when nullable.
///   Types: `Ts`, `I32`, `I64`, `Bool`, `Str`, `StrList`, `I64List`, `Bin`, `BinList` (see [`Ty`]).
#[macro_export]
macro_rules! with_tables {
    ($then:ident) => {
        $then! {
groups {
    Common COMMON {
        ts: Ts => "Wall-clock time of the event, UTC, microseconds (kernel boot clock plus the boot-to-wall offset taken once per batch).",
        ktime_ns: I64 => "Kernel CLOCK_BOOTTIME of the event in nanoseconds: exact event order within one boot.",
        pid: I32 => "Process id (thread-group id).",
        tid: I32 => "Thread id.",
        ppid: I32 => "Parent process id (real parent's thread-group id).",
        uid: I64 => "Real user id.",
        gid: I64 => "Real group id.",
        comm: Str => "Task command name (at most 15 bytes, as the kernel keeps it).",
        exec_id: I64 => "Process key that survives PID reuse: hash of boot id, pid and process start time. Join exec.parent_exec_id to it for ancestry.",
        cgroup_id: I64 => "cgroup v2 id of the task.",
    }
    Endpoint ENDPOINT {
        family: Str => "ipv4 or ipv6.",
        proto: Str => "tcp or udp.",
        direction: Str => "out (this host connected or sent first) or in (accepted or received first).",
        saddr: Str => "Local address, as text (compare with saddr = '10.0.0.1').",
        sport: I32 => "Local port.",
        daddr: Str => "Remote address, as text.",
        dport: I32 => "Remote port.",
        netns: I64 => "Network namespace inode number of the socket (0 when unknown).",
        community_id: Str => "Community ID v1 of the flow (seed 0), as Zeek and Suricata compute it: joins with network-sensor data.",
    }
}
tables {
    exec: Exec = 0, probe Some(Probe::Exec),
    "One row per exec (sched_process_exec), one per failed execve or execveat (failed, with the path and argv asked for and the error; written by the file probe, which sees every syscall return), plus one per process already running when the recorder started (from_procfs)."
    [common: Common] {
        parent_exec_id: I64 => "exec_id of the parent process.",
        start_ktime_ns: I64 => "Process start time, CLOCK_BOOTTIME ns.",
        euid: I64 => "Effective user id after the exec.",
        loginuid: I64 | null => "Audit login uid; null when unset.",
        path: Str => "The path that was executed, as passed to execve.",
        argv: StrList => "Command-line arguments, one string each; secrets redacted by default (NAME=value with a secret-looking NAME, the value after a password flag, passwords in URLs).",
        envp: StrList => "Environment as NAME=value strings; values of secret-looking names and passwords in URLs redacted by default.",
        argc: I32 => "Number of arguments the kernel saw (argv may hold fewer when truncated).",
        envc: I32 => "Number of environment strings the kernel saw.",
        argv_truncated: Bool => "argv was cut at the size limit.",
        envp_truncated: Bool => "envp was cut at the size limit.",
        tty: Str | null => "Controlling terminal (e.g. pts/3); null when none.",
        pidns: I64 => "PID namespace inode number.",
        mntns: I64 => "Mount namespace inode number.",
        netns: I64 => "Network namespace inode number.",
        from_procfs: Bool => "Row written at recorder start for a process already running, read from /proc.",
        exe_path: Str | null => "The executable file that ran, as the kernel resolved it: absolute, symlinks followed, what fexecve and execveat with a descriptor lead to (path is what was passed); for a script, its interpreter. from_procfs rows: /proc/PID/exe. Null for failed execs.",
        failed: Bool => "The exec failed: the process kept running its old program; path and argv are what it asked for (argv: up to 64 strings), envp is not read.",
        ret: I32 => "0, or for a failed exec -errno.",
        error: Str | null => "A failed exec's errno name (ENOENT, EACCES, ENOEXEC, E2BIG, ...); null otherwise.",
        path_raw: Bin | null => "path's exact bytes when they are not valid UTF-8 (path then shows U+FFFD for each invalid sequence); null when path is exact.",
        exe_path_raw: Bin | null => "exe_path's exact bytes when they are not valid UTF-8; null otherwise.",
        argv_raw: BinList | null => "Every argv string's exact bytes when any of them is not valid UTF-8 (argv then shows U+FFFD for each invalid sequence); null when argv is exact.",
        envp_raw: BinList | null => "Every envp string's exact bytes (secrets redacted as in envp) when any of them is not valid UTF-8; null when envp is exact.",
    }
    exit: Exit = 1, probe Some(Probe::Exec),
    "One row per process exit (thread-group leader, sched_process_exit)."
    [common: Common] {
        exit_code: I32 => "Exit status passed to exit(2) (0-255); 0 when killed by a signal.",
        signal: I32 => "Signal that ended the process; 0 when it exited normally.",
        core_dumped: Bool => "The process dumped core.",
        lifetime_ns: I64 => "Nanoseconds from process start to exit.",
    }
    file: File = 2, probe Some(Probe::File),
    "File operations. open: one row per open call (failed ones too), and at start one per regular file a process already held (preexisting). close: one row per open file when its last descriptor is gone (closed, the process exited, or closed on exec; dup'ed and inherited descriptors count toward the same file), with the bytes and calls summed over its life through any of its descriptors; one per file still open when the capture ended (closed_by = capture_end). unlink, rename, truncate: one row per call. read, write: one row per call, with --file-rw-events."
    [common: Common] {
        op: Str => "open, close, unlink, rename, truncate, read or write.",
        path: Str => "Path as the process gave it (rename: the old path; close, read, write, ftruncate: the absolute path the file was opened by, empty when unknown; preexisting open: the absolute path).",
        abs_path: Str | null => "Absolute path: path itself when absolute, else resolved against the working directory (or dirfd); null when unknown.",
        path2: Str | null => "rename: the new path; null for other operations.",
        flags: I64 => "open flags (O_*), unlinkat flags or renameat2 flags.",
        mode: I32 => "open mode bits.",
        fd: I32 => "File descriptor concerned (close: the last one to go); -1 when none.",
        ret: I64 => "Syscall result: fd, byte count or 0 on success, -errno on failure (close rows not written by close(2): 0).",
        bytes_read: I64 => "close: bytes read from the open file over its life (read, pread, readv, preadv, preadv2, and the reading side of sendfile, splice and copy_file_range); read: bytes of this call.",
        bytes_written: I64 => "close: bytes written to the open file over its life (write, pwrite, writev, pwritev, pwritev2, and the writing side of sendfile, splice and copy_file_range); write: bytes of this call.",
        reads: I64 => "Number of read calls summed into bytes_read.",
        writes: I64 => "Number of write calls summed into bytes_written.",
        ino: I64 => "Inode number (0 when unknown).",
        dev: I64 => "Device number of the file system (0 when unknown).",
        file_id: I64 | null => "The open file: its open row, its close row and the read, write and ftruncate rows on it share it (the recorder numbers opens in order, from the run's start time in Unix seconds shifted left 24 bits); null for unlink, rename, truncate by path, failed opens, and rows whose open was not seen.",
        closed_by: Str | null => "close: what ended the file's last descriptor: close (close, close_range, or dup2 over it), exit (the process exited holding it), exec (closed on exec, O_CLOEXEC), capture_end (still open when the capture ended: the sums so far); null for other operations.",
        preexisting: Bool => "The file was already open when the recorder started (its sums count from then), or was being opened as the start-up scan found it (the open's descriptor installed, its system call not yet returned): one row either way, never two.",
        mmap_write: Bool => "close: the file was mapped shared and writable; writes through the mapping are not in bytes_written.",
        length: I64 | null => "truncate: the length asked for; null for other operations.",
        path_raw: Bin | null => "path's exact bytes when they are not valid UTF-8 (path then shows U+FFFD for each invalid sequence); null when path is exact.",
        abs_path_raw: Bin | null => "abs_path's exact bytes when they are not valid UTF-8; null otherwise.",
        path2_raw: Bin | null => "path2's exact bytes when they are not valid UTF-8; null otherwise.",
    }
    net: Net = 3, probe Some(Probe::Net),
    "TCP connections and UDP flows (per socket and peer): one row per flow at its end, interim rows while it stays open (every --flow-interval), and interim rows for connections already open when the recorder started (preexisting). The process columns are the socket's owner (see owner), not the task the kernel event ran in."
    [common: Common, ep: Endpoint] {
        outcome: Str => "How the flow ended: closed (TCP: established, then closed; UDP: the socket was closed), refused (connection refused), timeout, reset (reset by the peer), failed (another error before it was established), evicted (UDP: the socket talked to more peers than it keeps, 8; this peer's totals end here and a later datagram starts a new row), or open (interim rows).",
        interim: Bool => "Interim row of a flow still open: its counters so far (at start for preexisting flows, then every --flow-interval, and when the recorder stops).",
        preexisting: Bool => "The flow was open before the recorder started (listed at start; its start time is when it was found).",
        owner: Str => "How the process columns were found: connect (the process that connected), accept (the first process to send or receive on an accepted connection), listen (the process that listened: no send or receive seen), send (UDP: the first process to send or receive on the socket; receiving needs 6.3+), socket (UDP: the process that created the socket, where none sent or received on it, or before 6.3 none sent), procfs (a preexisting connection: a process holding it at start), none (unknown: process columns are 0).",
        bytes_sent: I64 => "Payload bytes sent over the flow's life so far (TCP: first transmissions, retransmissions not counted again).",
        bytes_recv: I64 => "Payload bytes received over the flow's life so far.",
        segs_sent: I64 => "TCP segments or UDP datagrams sent.",
        segs_recv: I64 => "TCP segments or UDP datagrams received.",
        retransmits: I64 | null => "TCP: segments retransmitted; null for UDP.",
        srtt_us: I64 | null => "TCP: smoothed round-trip time in microseconds; null for UDP.",
        start_ktime_ns: I64 => "CLOCK_BOOTTIME ns when the flow began (TCP: connect or accept; UDP: first datagram).",
        last_ktime_ns: I64 | null => "UDP: CLOCK_BOOTTIME ns of the last datagram; null for TCP.",
        duration_ns: I64 => "Nanoseconds from the flow's start to this row.",
    }
    dns: Dns = 4, probe Some(Probe::Dns),
    "DNS queries and responses, decoded from the messages on the wire."
    [common: Common, ep: Endpoint] {
        txid: I32 => "DNS transaction id.",
        is_response: Bool => "The message is a response (QR bit).",
        flags: I32 => "The header's flags word: QR, opcode, AA, TC, RD, RA, AD, CD and rcode bits (0x0100 RD, 0x0080 RA, 0x0200 TC).",
        qname: Str | null => "Queried name, without the trailing dot; null when the message did not decode.",
        qtype: Str | null => "Query type (A, AAAA, CNAME, MX, TXT, PTR, ... or TYPEnnn).",
        qclass: Str | null => "Query class (IN, CH, HS, ANY or CLASSnnn).",
        rcode: Str | null => "Response code (NOERROR, NXDOMAIN, SERVFAIL, ... ); null for queries.",
        answers: StrList => "Answer records' data as text, in message order: addresses for A/AAAA, names for CNAME/PTR/NS (a CNAME chain in order), 'preference name' for MX, 'priority weight port target' for SRV, strings joined by spaces for TXT, the type name for others.",
        answer_names: StrList => "Owner name of each answer record, in the order of answers (the name a CNAME points from, then the name it points to, ...).",
        answer_types: StrList => "Type of each answer record, in the order of answers.",
        answer_ttls: I64List => "TTL in seconds of each answer record, in the order of answers.",
        latency_ns: I64 | null => "Response: nanoseconds since the matching query; null for queries or when unmatched.",
        msg_truncated: Bool => "The captured message was shorter than on the wire (longer than 512 bytes, or split over TCP segments), or did not decode completely (then what did decode is kept).",
        msg_len: I32 => "Bytes of the message captured (at most 512).",
        wire_len: I32 => "Bytes of the message on the wire.",
        raw: Bin | null => "The message's bytes as captured, when it did not decode completely (malformed or cut); null otherwise.",
    }
    module: Module = 5, probe Some(Probe::Module),
    "Kernel module loads and unloads: one row per init_module, finit_module or delete_module call, failed calls too, with what the kernel's module tracepoints saw during it. The process columns are the caller's."
    [common: Common] {
        op: Str => "load (init_module, finit_module) or unload (delete_module).",
        syscall: Str => "init_module (image from memory), finit_module (image from a file) or delete_module.",
        name: Str | null => "Module name: the kernel's, where the call got as far as module:module_load or module:module_free; else, for delete_module, the name asked for; null for a load refused before the kernel read the name (see path).",
        path: Str | null => "finit_module: absolute path of the module file, from its descriptor; null otherwise.",
        params: Str | null => "Loads: the module parameters as passed (empty when none); null for unloads.",
        params_truncated: Bool => "params was cut at 4,095 bytes.",
        flags: I64 => "finit_module flags (MODULE_INIT_IGNORE_MODVERSIONS 1, MODULE_INIT_IGNORE_VERMAGIC 2, MODULE_INIT_COMPRESSED_FILE 4) or delete_module flags (O_NONBLOCK 2048, O_TRUNC 512); 0 for init_module.",
        ret: I64 => "The call's result: 0 on success, -errno on failure.",
        error: Str | null => "The errno's name on failure (EEXIST, EPERM, ENOEXEC, ENOENT, EBUSY, ...; unknown for a number no errno has); null on success.",
        loaded: Bool => "module:module_load fired during the call: the module was linked into the kernel and its init ran (ret says whether the init succeeded).",
        freed: Bool => "module:module_free fired during the call: the module was unloaded, or freed after its init failed.",
        taint: Str | null => "The module's taint flags as the kernel prints them in /proc/modules, e.g. E (unsigned), O (out of tree), P (proprietary), C (staging); empty when untainted; null when no module tracepoint fired.",
        image_bytes: I64 | null => "init_module: bytes of the image passed; null otherwise.",
    }
    stats: Stats = 6, probe None,
    "Recorder health: one row per probe per stats interval."
    [] {
        ts: Ts => "End of the interval, UTC.",
        interval_ms: I64 => "Length of the interval in milliseconds.",
        probe: Str => "exec, file, net, dns or module; `upload` for the row of the uploader (`--upload`), whose counters are the upload_* columns.",
        events: I64 => "Records decoded in the interval.",
        dropped_ringbuf_full: I64 => "Records the kernel side could not reserve in the ring buffer.",
        dropped_kernel_other: I64 => "Records the kernel side dropped for other causes (failed reads, full state maps, events the kernel skipped while a probe program was already running on that CPU).",
        dropped_backpressure: I64 => "Rows decoded but dropped because the segment writers fell behind.",
        dropped_write_error: I64 => "Rows lost because their segment could not be written (e.g. disk full).",
        malformed: I64 => "Records skipped as malformed (short, unknown kind, bad lengths, wrong ABI version).",
        invalid_utf8: I64 => "Records whose strings held invalid UTF-8 (shown with U+FFFD in the string columns, kept exactly in the *_raw columns of paths, argv and envp).",
        rows_written: I64 => "Rows written to segments in the interval.",
        bytes_written: I64 => "Bytes of segments published in the interval.",
        segments: I64 => "Segments published in the interval.",
        upload_segments: I64 | null => "The `upload` row: segments whose upload was confirmed in the interval; null on probe rows and without --upload.",
        upload_bytes: I64 | null => "The `upload` row: bytes of those segments.",
        upload_failures: I64 | null => "The `upload` row: upload attempts that failed in the interval (each is retried).",
        upload_pending: I64 | null => "The `upload` row: segments published but not yet uploaded, at the end of the interval.",
        upload_lag_ms: I64 | null => "The `upload` row: how long the oldest pending segment has waited since it was published (0 when none waits).",
    }
}
        }
    };
}

/// `col!(name, Ty [, null], "description")`: one [`Col`], as a constant expression (so a
/// slice of them is a `&'static [Col]`).
macro_rules! col {
    ($name:ident, $ty:ident, $desc:literal) => {
        Col { name: stringify!($name), ty: Ty::$ty, nullable: false, description: $desc }
    };
    ($name:ident, $ty:ident, null, $desc:literal) => {
        Col { name: stringify!($name), ty: Ty::$ty, nullable: true, description: $desc }
    };
}

/// This crate's expansion of [`with_tables!`]: [`Group`], [`Table`] and the column lists.
macro_rules! define_tables {
    (
        groups { $(
            $group:ident $GROUP:ident {
                $( $gcol:ident : $gty:ident $(| $gnull:ident)? => $gdesc:literal ),* $(,)?
            }
        )* }
        tables { $(
            $field:ident : $Variant:ident = $idx:literal , probe $probe:expr , $about:literal
            [ $( $gfield:ident : $G:ident ),* ]
            { $( $col:ident : $ty:ident $(| $null:ident)? => $desc:literal ),* $(,)? }
        )* }
    ) => {
        $(
            #[doc = concat!("The columns of the `", stringify!($group), "` group.")]
            pub static $GROUP: &[Col] = &[ $( col!($gcol, $gty, $($gnull,)? $gdesc) ),* ];
        )*

        /// Sets of columns several tables share, in the order tables list them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Group { $( $group, )* }

        impl Group {
            pub fn columns(self) -> &'static [Col] {
                match self { $( Group::$group => $GROUP, )* }
            }
        }

        /// The tables of a capture, in a fixed order (their index is used for arrays).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Table { $( $Variant = $idx, )* }

        impl Table {
            pub const COUNT: usize = [$( stringify!($Variant) ),*].len();
            pub const ALL: [Table; Self::COUNT] = [ $( Table::$Variant ),* ];

            /// The table's SQL name and directory.
            pub fn name(self) -> &'static str {
                match self { $( Table::$Variant => stringify!($field), )* }
            }

            /// The probe whose records fill this table (`None` for `stats`, the recorder's own).
            pub fn probe(self) -> Option<Probe> {
                match self { $( Table::$Variant => $probe, )* }
            }

            pub fn description(self) -> &'static str {
                match self { $( Table::$Variant => $about, )* }
            }

            /// The groups the table starts with.
            pub fn groups(self) -> &'static [Group] {
                match self { $( Table::$Variant => &[ $( Group::$G ),* ], )* }
            }

            /// The table's own columns, after its groups'.
            pub fn own_columns(self) -> &'static [Col] {
                match self { $( Table::$Variant => &[ $( col!($col, $ty, $($null,)? $desc) ),* ], )* }
            }
        }
    };
}

crate::with_tables!(define_tables);

impl Table {
    pub fn from_name(name: &str) -> Option<Table> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The tables the probes fill (every table but `stats`).
    pub fn events() -> impl Iterator<Item = Table> {
        Self::ALL.into_iter().filter(|t| t.probe().is_some())
    }

    /// Every column of this table, in schema order: its groups', then its own.
    pub fn columns(self) -> Vec<&'static Col> {
        self.groups().iter().flat_map(|g| g.columns()).chain(self.own_columns()).collect()
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

impl Probe {
    /// The tables this probe's records fill.
    pub fn tables(self) -> impl Iterator<Item = Table> {
        Table::ALL.into_iter().filter(move |t| t.probe() == Some(self))
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
    I64List,
    Bin,
    BinList,
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
            Ty::I64List => DataType::List(Arc::new(Field::new("item", DataType::Int64, false))),
            Ty::Bin => DataType::Binary,
            Ty::BinList => DataType::List(Arc::new(Field::new("item", DataType::Binary, false))),
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
            Ty::I64List => "LIST<BIGINT>",
            Ty::Bin => "BLOB",
            Ty::BinList => "LIST<BLOB>",
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

/// The partition column readers add to every table from its `host=NAME` directories (capq
/// too, last): not stored in the segments.
pub const HOST_COLUMN: Col = Col {
    name: "host",
    ty: Ty::Str,
    nullable: false,
    description: "The recording host: the table's host=NAME partition, a column readers add (capq, DuckDB, pyarrow and Spark with hive partitioning); in captures written before that level, capq takes it from the segment's footer.",
};

impl Col {
    pub fn field(&self) -> Field {
        Field::new(self.name, self.ty.data_type(), self.nullable)
            .with_metadata([(DESCRIPTION_KEY.to_string(), self.description.to_string())].into())
    }
}

/// Renders `schemas/README.md`: every probe, and every table and column with its type and
/// meaning.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Capture tables\n\n");
    out.push_str("<!-- Generated from schemas/src/tables.rs and schemas/src/probes.rs by `cargo run -p capture-schemas --example gen-docs`; a test fails when this file is out of date. -->\n\n");
    out.push_str(&format!("Schema version {SCHEMA_VERSION}, event ABI version {}.\n", crate::abi::ABI_VERSION));
    out.push_str(
        "Segments lie at `DIR/<table>/host=<host>/dt=YYYY-MM-DD/hr=HH/<table>-<start>-<host>-<seq>.parquet` \
         (captures written before schema version 5 have no `host=` level; capq reads both). capq adds the \
         partition column `host` (string, last) to every table, as DuckDB, pyarrow and Spark do with hive \
         partitioning, which also add `dt` and `hr`.\n",
    );
    out.push_str("\n## Probes\n\n| probe | BPF object | hooks | tables | what it records |\n|---|---|---|---|---|\n");
    for p in crate::probes::PROBES {
        let tables: Vec<String> = p.probe.tables().map(|t| format!("`{}`", t.name())).collect();
        let mut hooks: Vec<String> = p.hooks.iter().map(|h| format!("`{h}`")).collect();
        if !p.syscalls.is_empty() {
            let all: Vec<&str> = p.syscalls.to_vec();
            hooks.insert(0, format!("`fexit` on the syscalls {} (else `tp_btf/sys_exit`)", all.join(", ")));
            hooks.retain(|h| h != "`tp_btf/sys_exit`");
        }
        out.push_str(&format!(
            "| `{}` | `bpf/{}.bpf.c` | {} | {} | {} |\n",
            p.name,
            p.object,
            hooks.join(", "),
            tables.join(", "),
            p.summary
        ));
    }
    out.push_str(
        "\nA hook written `?name` is optional: where the kernel lacks it, the probe runs without it. \
         `fexit` on a syscall attaches to its wrapper (`__x64_sys_openat`, `__arm64_sys_openat`) where the kernel \
         lets fexit programs load; elsewhere the one `tp_btf/sys_exit` program, which every syscall passes, \
         takes them (`--syscall-hook`; `--list-probes` says which loads here).\n",
    );
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
