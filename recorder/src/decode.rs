//! Ring-buffer records → Arrow builders.
//!
//! [`Decoder::decode`] takes a record exactly as the ring-buffer callback hands it over and
//! appends one row straight into the builders of its table: no owned intermediate, no heap
//! allocation of its own, no syscall. Every length is checked before the first append, so
//! a malformed record leaves the builders untouched; it is counted and skipped.
//!
//! Strings that are not valid UTF-8 are kept with U+FFFD in place of the bad bytes and
//! counted as `invalid_utf8`: dropping them would let a process hide its exec from the
//! record with a single 0xff byte in its argv.

use arrow_array::builder::{BinaryBuilder, ListBuilder, StringBuilder};
use capture_schemas::abi::{self, Hdr, Pod};
use capture_schemas::{Probe, Table};

use crate::builders::{Builders, Common};
use crate::open_files::{abs_parts, OpenFiles};
use crate::strings::{append_addr, append_exact, append_lossy, as_text, c_str, write_lossy};
use crate::{community_id, dns_wire, kernel};

/// Why a record was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {}-byte header", core::mem::size_of::<Hdr>())]
    Short { len: usize },
    #[error("record carries ABI version {abi}, this recorder reads version {}", abi::ABI_VERSION)]
    BadAbi { abi: u16 },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u16 },
    #[error("header says {declared} bytes but the record has {actual}")]
    LenOverrun { declared: usize, actual: usize },
    #[error("kind {kind} needs at least {need} bytes, the header says {len}")]
    TooShortForKind { kind: u16, len: usize, need: usize },
    #[error("kind {kind} declares a {need}-byte tail but has {have} bytes after its fixed part")]
    TailOverrun { kind: u16, need: u64, have: usize },
    #[error("kind {kind} has an invalid {field} value {value}")]
    BadField { kind: u16, field: &'static str, value: u32 },
}

/// What happens to environment values in the `exec` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EnvpMode {
    /// Every variable as captured.
    Full,
    /// Values of variables whose names look like secrets, and passwords in URLs, are
    /// replaced by [`REDACTED`].
    #[default]
    Redacted,
    /// No environment at all (`envc` still says how many there were).
    None,
}

pub use crate::redact::REDACTED;
use crate::redact::{Redactor, Rules};

/// What happens to secrets in the `exec` table's argv (see `redact.rs` for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ArgvMode {
    /// Every argument as captured.
    Full,
    /// `NAME=value` with a secret-looking NAME, the argument after a password flag, and
    /// passwords in URLs are replaced by [`REDACTED`].
    #[default]
    Redacted,
}

/// Cumulative counts of one probe's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeCounts {
    pub events: u64,
    pub malformed: u64,
    pub invalid_utf8: u64,
}

/// A close record the kernel wrote at its struct file's reuse ([`abi::FILE_REUSED`]),
/// waiting for its closer's late record ([`abi::FILE_LATE`]) to name the process.
struct Held {
    f: abi::File,
    /// The open-file table's `file_id` and path for it, taken when it came: the open that
    /// reused the struct comes next, under the same key.
    named: Option<(i64, Vec<u8>)>,
}

/// Closes held at once, at most; one more writes the oldest as it came.
const HELD_MAX: usize = 16;

/// How long a held close waits for its closer, in boot-clock nanoseconds, before it is
/// written as it came (under the process that reused its struct). The closer comes once
/// the scheduler runs it again: a preempted task waits a time slice or so, milliseconds.
pub const HELD_WAIT_NS: u64 = 200_000_000;

/// Close rows of files whose struct the kernel reused before the close was seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReusedCloses {
    /// Close records written at the reuse ([`abi::FILE_REUSED`]).
    pub reused: u64,
    /// Of those, the ones whose closer's record came and named the row's process.
    pub named: u64,
}

/// Decodes records into the builders of every table.
pub struct Decoder {
    pub builders: Builders,
    counts: [DecodeCounts; Probe::COUNT],
    boot_seed: u64,
    envp: EnvpMode,
    argv: ArgvMode,
    name: dns_wire::Name,
    open_files: OpenFiles,
    /// Bytes assembled for a `*_raw` column (reused: no allocation per event).
    scratch: Vec<u8>,
    held: Vec<Held>,
    /// A close decoded again from [`Decoder::held`]: what the open-file table said of it.
    named: Option<Option<(i64, Vec<u8>)>>,
    reused: ReusedCloses,
}

impl Decoder {
    /// `batch_rows` sizes the builders; `boot_seed` keys `exec_id` (see [`abi::exec_id`]).
    pub fn new(batch_rows: usize, boot_seed: u64, envp: EnvpMode) -> Decoder {
        Decoder {
            builders: Builders::new(batch_rows),
            counts: [DecodeCounts::default(); Probe::COUNT],
            boot_seed,
            envp,
            argv: ArgvMode::Redacted,
            name: dns_wire::Name::new(),
            open_files: OpenFiles::with_base(OpenFiles::run_base(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            )),
            scratch: Vec::new(),
            held: Vec::with_capacity(HELD_MAX),
            named: None,
            reused: ReusedCloses::default(),
        }
    }

    pub fn reused_closes(&self) -> ReusedCloses {
        self.reused
    }

    /// Writes the held closes that came [`HELD_WAIT_NS`] or more before `boot_ns` (the
    /// boot clock now) as they came: their closer's record is not coming.
    pub fn release_held(&mut self, boot_ns: u64) {
        while let Some(h) = self.held.first() {
            if h.f.hdr.ktime_ns.saturating_add(HELD_WAIT_NS) > boot_ns {
                break;
            }
            let h = self.held.remove(0);
            self.write_held(h);
        }
    }

    /// Writes every held close as it came (the capture is ending).
    pub fn release_all(&mut self) {
        while !self.held.is_empty() {
            let h = self.held.remove(0);
            self.write_held(h);
        }
    }

    fn write_held(&mut self, h: Held) {
        let ok = self.replay(h.f, h.named);
        self.counts[Probe::File as usize].invalid_utf8 += u64::from(!ok);
    }

    /// A close record marked [`abi::FILE_REUSED`] is held; one marked [`abi::FILE_LATE`]
    /// joins the held close of the same file and open (its key and generation): the
    /// closer's process, descriptor, result and time, the held record's sums. A late
    /// record with no held close to join (written already, or none came) adds nothing.
    /// Returns whether the strings of what was written were valid UTF-8.
    #[cold]
    #[inline(never)]
    fn reused_close(&mut self, rec: &[u8]) -> bool {
        let Some(f) = abi::File::read(rec) else { return true };
        if f.fflags & abi::FILE_LATE != 0 {
            let Some(i) = self.held.iter().position(|h| h.f.file_key == f.file_key && h.f.gen == f.gen) else {
                return true;
            };
            let h = self.held.remove(i);
            self.reused.named += 1;
            let joined = abi::File { hdr: f.hdr, fd: f.fd, ret: f.ret, how: f.how, ..h.f };
            return self.replay(joined, h.named);
        }
        self.reused.reused += 1;
        let mut ok = true;
        if self.held.len() == HELD_MAX {
            let h = self.held.remove(0);
            ok = self.replay(h.f, h.named);
        }
        let named = self.open_files.closed(f.file_key);
        self.held.push(Held { f, named });
        ok
    }

    /// Decodes a held close (its marks cleared), named by `named` instead of the table.
    fn replay(&mut self, mut f: abi::File, named: Option<(i64, Vec<u8>)>) -> bool {
        f.fflags &= !(abi::FILE_REUSED | abi::FILE_LATE);
        // The fixed part alone: a close is named by its open, not by a path of its own.
        f.hdr.len = core::mem::size_of::<abi::File>() as u32;
        (f.path_len, f.path2_len, f.cwd_len) = (0, 0, 0);
        self.named = Some(named);
        let ok = self.decode_inner(f.as_bytes()).map_or(true, |(_, ok)| ok);
        if let Some(Some((_, p))) = self.named.take() {
            self.open_files.recycle(p);
        }
        ok
    }

    /// argv as captured (`Full`) or with its secrets redacted (`Redacted`, the default).
    pub fn with_argv(mut self, argv: ArgvMode) -> Decoder {
        self.argv = argv;
        self
    }

    pub fn counts(&self, probe: Probe) -> DecodeCounts {
        self.counts[probe as usize]
    }

    /// Appends the record's row to its table and returns the table, or counts the record
    /// as malformed under `probe` (the ring buffer it came from) and returns why.
    #[inline]
    pub fn decode(&mut self, probe: Probe, rec: &[u8]) -> Result<Table, DecodeError> {
        match self.decode_inner(rec) {
            Ok((table, utf8_ok)) => {
                let c = &mut self.counts[probe as usize];
                c.events += 1;
                c.invalid_utf8 += u64::from(!utf8_ok);
                Ok(table)
            }
            Err(e) => {
                self.counts[probe as usize].malformed += 1;
                Err(e)
            }
        }
    }

    fn decode_inner(&mut self, rec: &[u8]) -> Result<(Table, bool), DecodeError> {
        let hdr = Hdr::read(rec).ok_or(DecodeError::Short { len: rec.len() })?;
        if hdr.abi != abi::ABI_VERSION {
            return Err(DecodeError::BadAbi { abi: hdr.abi });
        }
        let kind = abi::Kind::from_u16(hdr.kind).ok_or(DecodeError::UnknownKind { kind: hdr.kind })?;
        let need = kind.fixed_size();
        let len = hdr.len as usize;
        if len > rec.len() {
            return Err(DecodeError::LenOverrun { declared: len, actual: rec.len() });
        }
        if len < need {
            return Err(DecodeError::TooShortForKind { kind: hdr.kind, len, need });
        }
        // Bytes past `hdr.len` (ring-buffer slack) are not part of the record.
        let rec = &rec[..len];
        let tail = &rec[need..];
        let seed = self.boot_seed;
        // Exhaustive over the kinds: a kind added to the ABI does not compile until it is
        // decoded here.
        match kind {
            abi::Kind::Exec => {
                let e = abi::Exec::read(rec).ok_or(DecodeError::Short { len })?;
                let [path, argv, envp, exe] =
                    split_tail(hdr.kind, tail, [e.path_len, e.argv_len, e.envp_len, e.exe_len])?;
                let b = &mut self.builders.exec;
                let mut ok = append_common(&mut b.common, &hdr, seed);
                b.parent_exec_id.append_value(abi::exec_id(seed, hdr.ppid, hdr.parent_start_ns));
                b.start_ktime_ns.append_value(hdr.start_ns as i64);
                b.euid.append_value(i64::from(e.euid));
                b.loginuid.append_option((e.loginuid != u32::MAX).then_some(i64::from(e.loginuid)));
                ok &= append_exact(&mut b.path, &mut b.path_raw, path);
                let argv_rules = if self.argv == ArgvMode::Full { Rules::OFF } else { Rules::ARGV };
                ok &= append_list(&mut b.argv, &mut b.argv_raw, argv, Some(argv_rules), &mut self.scratch);
                let envp_rules = match self.envp {
                    EnvpMode::Full => Some(Rules::OFF),
                    EnvpMode::Redacted => Some(Rules::ENVP),
                    EnvpMode::None => None,
                };
                ok &= append_list(&mut b.envp, &mut b.envp_raw, envp, envp_rules, &mut self.scratch);
                b.argc.append_value(e.argc as i32);
                b.envc.append_value(e.envc as i32);
                b.argv_truncated.append_value(e.flags & abi::EXEC_ARGV_TRUNCATED != 0);
                b.envp_truncated.append_value(e.flags & abi::EXEC_ENVP_TRUNCATED != 0);
                let tty = c_str(&e.tty);
                if tty.is_empty() {
                    b.tty.append_null();
                } else {
                    ok &= append_lossy(&mut b.tty, tty);
                }
                b.pidns.append_value(i64::from(e.pidns));
                b.mntns.append_value(i64::from(e.mntns));
                b.netns.append_value(i64::from(e.netns));
                b.from_procfs.append_value(e.flags & abi::EXEC_FROM_PROCFS != 0);
                if exe.is_empty() {
                    b.exe_path.append_null();
                    b.exe_path_raw.append_null();
                } else {
                    ok &= append_exact(&mut b.exe_path, &mut b.exe_path_raw, exe);
                }
                let failed = e.flags & abi::EXEC_FAILED != 0;
                b.failed.append_value(failed);
                b.ret.append_value(e.ret);
                b.error.append_option(failed.then(|| kernel::errno_name(i64::from(e.ret)).unwrap_or("unknown")));
                Ok((Table::Exec, ok))
            }
            abi::Kind::Exit => {
                let e = abi::Exit::read(rec).ok_or(DecodeError::Short { len })?;
                let b = &mut self.builders.exit;
                let ok = append_common(&mut b.common, &hdr, seed);
                let s = e.exit_status;
                b.exit_code.append_value(((s >> 8) & 0xff) as i32);
                b.signal.append_value((s & 0x7f) as i32);
                b.core_dumped.append_value(s & 0x80 != 0);
                b.lifetime_ns.append_value(hdr.ktime_ns.saturating_sub(hdr.start_ns) as i64);
                Ok((Table::Exit, ok))
            }
            abi::Kind::File => {
                let f = abi::File::read(rec).ok_or(DecodeError::Short { len })?;
                let op = file_op(f.op).ok_or(DecodeError::BadField { kind: hdr.kind, field: "op", value: f.op })?;
                let closed_by = match (f.op, f.how) {
                    (abi::FILE_CLOSE, abi::CLOSE_CLOSE) => Some("close"),
                    (abi::FILE_CLOSE, abi::CLOSE_EXIT) => Some("exit"),
                    (abi::FILE_CLOSE, abi::CLOSE_EXEC) => Some("exec"),
                    (abi::FILE_CLOSE, abi::CLOSE_END) => Some("capture_end"),
                    (abi::FILE_CLOSE, v) => {
                        return Err(DecodeError::BadField { kind: hdr.kind, field: "how", value: u32::from(v) })
                    }
                    _ => None,
                };
                let [path, path2, cwd] = split_tail(hdr.kind, tail, [f.path_len, f.path2_len, f.cwd_len])?;
                if f.op == abi::FILE_CLOSE && f.fflags & (abi::FILE_REUSED | abi::FILE_LATE) != 0 {
                    // Read again there: passing `f` made every file record a 176-byte copy.
                    return Ok((Table::File, self.reused_close(rec)));
                }
                let b = &mut self.builders.file;
                let mut ok = append_common(&mut b.common, &hdr, seed);
                b.op.append_value(op);
                let abs = abs_parts(cwd, path);
                let mut file_id = None;
                if let (abi::FILE_OPEN, true, Some(abs)) = (f.op, f.ret >= 0 && f.file_key != 0, abs) {
                    file_id = Some(self.open_files.opened(f.file_key, abs));
                }
                // A close is the open file's last row: its path leaves the table.
                let closed = if f.op == abi::FILE_CLOSE && f.file_key != 0 {
                    let named = if self.named.is_some() {
                        self.named.take().flatten()
                    } else {
                        self.open_files.closed(f.file_key)
                    };
                    named.map(|(id, p)| {
                        file_id = Some(id);
                        p
                    })
                } else {
                    None
                };
                // Reads, writes and the rest: the open file's id and path, in one lookup.
                let known = match f.op {
                    abi::FILE_OPEN | abi::FILE_CLOSE => None,
                    _ if f.file_key == 0 => None,
                    _ => self.open_files.get(f.file_key),
                };
                if let Some((id, _)) = known {
                    file_id = Some(id);
                }
                if f.file_key != 0 && path.is_empty() {
                    // Close, read, write and ftruncate records carry no path: they take the
                    // absolute path of the file's open record, when that was known.
                    let named = match &closed {
                        Some(p) => Some(p.as_slice()),
                        None => known.map(|(_, p)| p),
                    };
                    match named {
                        // The same bytes in both columns: validated once.
                        Some(p) => match as_text(p) {
                            Some(text) => {
                                b.path.append_value(text);
                                b.path_raw.append_null();
                                b.abs_path.append_value(text);
                                b.abs_path_raw.append_null();
                            }
                            None => {
                                ok &= append_exact(&mut b.path, &mut b.path_raw, p);
                                append_exact(&mut b.abs_path, &mut b.abs_path_raw, p);
                            }
                        },
                        None => {
                            b.path.append_value("");
                            b.path_raw.append_null();
                            b.abs_path.append_null();
                            b.abs_path_raw.append_null();
                        }
                    }
                } else if let (Some(text), Some([b"", b"", _])) = (as_text(path), abs) {
                    // An absolute path is its own absolute path: validated once.
                    b.path.append_value(text);
                    b.path_raw.append_null();
                    b.abs_path.append_value(text);
                    b.abs_path_raw.append_null();
                } else {
                    ok &= append_exact(&mut b.path, &mut b.path_raw, path);
                    match abs {
                        Some(parts) => {
                            let mut valid = true;
                            for part in parts {
                                valid &= write_lossy(&mut b.abs_path, part);
                            }
                            b.abs_path.append_value("");
                            if valid {
                                b.abs_path_raw.append_null();
                            } else {
                                self.scratch.clear();
                                for part in parts {
                                    self.scratch.extend_from_slice(part);
                                }
                                b.abs_path_raw.append_value(&self.scratch);
                            }
                            ok &= valid;
                        }
                        None => {
                            b.abs_path.append_null();
                            b.abs_path_raw.append_null();
                        }
                    }
                }
                if let Some(p) = closed {
                    self.open_files.recycle(p);
                }
                if f.op == abi::FILE_RENAME {
                    ok &= append_exact(&mut b.path2, &mut b.path2_raw, path2);
                } else {
                    b.path2.append_null();
                    b.path2_raw.append_null();
                }
                b.flags.append_value(i64::from(f.flags));
                b.mode.append_value(f.mode as i32);
                b.fd.append_value(f.fd);
                b.ret.append_value(f.ret);
                b.bytes_read.append_value(f.bytes_read as i64);
                b.bytes_written.append_value(f.bytes_written as i64);
                b.reads.append_value(i64::from(f.reads));
                b.writes.append_value(i64::from(f.writes));
                b.ino.append_value(f.ino as i64);
                b.dev.append_value(i64::from(f.dev));
                b.file_id.append_option(file_id);
                b.closed_by.append_option(closed_by);
                b.preexisting.append_value(f.fflags & abi::FILE_PREEXISTING != 0);
                b.mmap_write.append_value(f.fflags & abi::FILE_MMAP_WRITE != 0);
                b.length.append_option((f.op == abi::FILE_TRUNCATE).then_some(f.length.min(i64::MAX as u64) as i64));
                Ok((Table::File, ok))
            }
            abi::Kind::Net => {
                let n = abi::Net::read(rec).ok_or(DecodeError::Short { len })?;
                let outcome = net_outcome(n.outcome).ok_or(DecodeError::BadField {
                    kind: hdr.kind,
                    field: "outcome",
                    value: u32::from(n.outcome),
                })?;
                let owner = net_owner(n.owner).ok_or(DecodeError::BadField {
                    kind: hdr.kind,
                    field: "owner",
                    value: u32::from(n.owner),
                })?;
                let ep = Endpoint::check(hdr.kind, &n.ep)?;
                let b = &mut self.builders.net;
                let ok = append_common(&mut b.common, &hdr, seed);
                ep.append(&mut b.ep);
                b.outcome.append_value(outcome);
                b.interim.append_value(n.flags & abi::NET_UPDATE != 0);
                b.preexisting.append_value(n.flags & abi::NET_PREEXISTING != 0);
                b.owner.append_value(owner);
                b.bytes_sent.append_value(n.bytes_sent as i64);
                b.bytes_recv.append_value(n.bytes_recv as i64);
                b.segs_sent.append_value(n.segs_sent as i64);
                b.segs_recv.append_value(n.segs_recv as i64);
                let tcp = ep.tcp;
                b.retransmits.append_option(tcp.then_some(i64::from(n.retrans)));
                b.srtt_us.append_option(tcp.then_some(i64::from(n.srtt_us)));
                b.start_ktime_ns.append_value(n.start_ns as i64);
                b.last_ktime_ns.append_option((!tcp).then_some(n.last_ns as i64));
                b.duration_ns.append_value(hdr.ktime_ns.saturating_sub(n.start_ns) as i64);
                Ok((Table::Net, ok))
            }
            abi::Kind::Dns => {
                let d = abi::Dns::read(rec).ok_or(DecodeError::Short { len })?;
                let ep = Endpoint::check(hdr.kind, &d.ep)?;
                let [msg] = split_tail(hdr.kind, tail, [d.msg_len])?;
                let b = &mut self.builders.dns;
                let mut ok = append_common(&mut b.common, &hdr, seed);
                ep.append(&mut b.ep);
                let mut complete = d.msg_len >= d.wire_len;
                let h = dns_wire::header(msg);
                b.txid.append_value(h.map_or(0, |h| i32::from(h.id)));
                let is_response = h.is_some_and(|h| h.is_response());
                b.is_response.append_value(is_response);
                let name = &mut self.name;
                let question = h.filter(|h| h.qdcount > 0).and_then(|_| dns_wire::question(msg, name));
                b.flags.append_value(h.map_or(0, |h| i32::from(h.flags)));
                match question {
                    Some((qtype, qclass, _)) => {
                        ok &= append_lossy(&mut b.qname, name.as_bytes());
                        dns_wire::write_type(&mut b.qtype, qtype);
                        b.qtype.append_value("");
                        dns_wire::write_class(&mut b.qclass, qclass);
                        b.qclass.append_value("");
                    }
                    None => {
                        complete = false;
                        b.qname.append_null();
                        b.qtype.append_null();
                        b.qclass.append_null();
                    }
                }
                match h.filter(|_| is_response) {
                    Some(h) => {
                        dns_wire::write_rcode(&mut b.rcode, h.rcode());
                        b.rcode.append_value("");
                    }
                    None => b.rcode.append_null(),
                }
                if let (Some(h), Some((_, _, at))) = (h, question) {
                    let sink = dns_wire::AnswerSink {
                        data: b.answers.values(),
                        names: b.answer_names.values(),
                        types: b.answer_types.values(),
                        ttls: b.answer_ttls.values(),
                    };
                    complete &= dns_wire::answers(msg, at, h.ancount, sink, name);
                }
                b.answers.append(true);
                b.answer_names.append(true);
                b.answer_types.append(true);
                b.answer_ttls.append(true);
                b.latency_ns.append_option((is_response && d.latency_ns > 0).then_some(d.latency_ns as i64));
                b.msg_truncated.append_value(!complete);
                b.raw.append_option((!complete).then_some(msg));
                b.msg_len.append_value(d.msg_len as i32);
                b.wire_len.append_value(d.wire_len.min(i32::MAX as u32) as i32);
                Ok((Table::Dns, ok))
            }
            abi::Kind::Module => {
                let m = abi::Module::read(rec).ok_or(DecodeError::Short { len })?;
                let (op, syscall) = match m.syscall {
                    abi::MODULE_INIT => ("load", "init_module"),
                    abi::MODULE_FINIT => ("load", "finit_module"),
                    abi::MODULE_DELETE => ("unload", "delete_module"),
                    v => return Err(DecodeError::BadField { kind: hdr.kind, field: "syscall", value: v }),
                };
                let [name, path, params] = split_tail(hdr.kind, tail, [m.name_len, m.path_len, m.params_len])?;
                let b = &mut self.builders.module;
                let mut ok = append_common(&mut b.common, &hdr, seed);
                b.op.append_value(op);
                b.syscall.append_value(syscall);
                if name.is_empty() {
                    b.name.append_null();
                } else {
                    ok &= append_lossy(&mut b.name, name);
                }
                if m.syscall == abi::MODULE_FINIT && !path.is_empty() {
                    ok &= append_lossy(&mut b.path, path);
                } else {
                    b.path.append_null();
                }
                if m.syscall == abi::MODULE_DELETE {
                    b.params.append_null();
                } else {
                    ok &= append_lossy(&mut b.params, params);
                }
                b.params_truncated.append_value(m.status & abi::MODULE_PARAMS_TRUNCATED != 0);
                b.flags.append_value(i64::from(m.flags));
                b.ret.append_value(m.ret);
                b.error.append_option(if m.ret < 0 {
                    Some(kernel::errno_name(m.ret).unwrap_or("unknown"))
                } else {
                    None
                });
                let seen = m.status & (abi::MODULE_LOADED | abi::MODULE_FREED);
                b.loaded.append_value(m.status & abi::MODULE_LOADED != 0);
                b.freed.append_value(m.status & abi::MODULE_FREED != 0);
                let mut letters = [0; 64];
                b.taint.append_option((seen != 0).then(|| kernel::taint_letters(m.taints, &mut letters)));
                b.image_bytes
                    .append_option((m.syscall == abi::MODULE_INIT).then_some(m.image_len.min(i64::MAX as u64) as i64));
                Ok((Table::Module, ok))
            }
        }
    }
}

/// Splits a tail into pieces of the declared lengths, checking they fit.
#[inline]
fn split_tail<const N: usize>(kind: u16, tail: &[u8], lens: [u32; N]) -> Result<[&[u8]; N], DecodeError> {
    let need: u64 = lens.iter().map(|&l| u64::from(l)).sum();
    if need > tail.len() as u64 {
        return Err(DecodeError::TailOverrun { kind, need, have: tail.len() });
    }
    let mut at = 0;
    Ok(lens.map(|l| {
        let piece = &tail[at..at + l as usize];
        at += l as usize;
        piece
    }))
}

#[inline]
fn append_common(c: &mut Common, h: &Hdr, seed: u64) -> bool {
    c.ktime_ns.append_value(h.ktime_ns as i64);
    c.pid.append_value(h.pid as i32);
    c.tid.append_value(h.tid as i32);
    c.ppid.append_value(h.ppid as i32);
    c.uid.append_value(i64::from(h.uid));
    c.gid.append_value(i64::from(h.gid));
    let p = &mut c.last;
    let ok = if p.kept && p.pid == h.pid && p.start_ns == h.start_ns && p.comm == h.comm {
        c.comm.append_value(&p.text);
        c.exec_id.append_value(p.exec_id);
        true
    } else {
        let exec_id = abi::exec_id(seed, h.pid, h.start_ns);
        c.exec_id.append_value(exec_id);
        let name = c_str(&h.comm);
        match as_text(name) {
            Some(text) => {
                c.comm.append_value(text);
                (p.pid, p.start_ns, p.comm, p.exec_id, p.kept) = (h.pid, h.start_ns, h.comm, exec_id, true);
                p.text.clear();
                p.text.push_str(text);
                true
            }
            None => append_lossy(&mut c.comm, name),
        }
    };
    c.cgroup_id.append_value(h.cgroup_id as i64);
    ok
}

/// Appends NUL-separated strings as one list value, with the secrets `rules` find
/// redacted (`None`: an empty list). When any string is not valid UTF-8, `raw` gets every
/// string's exact bytes (redacted alike); else a null. `scratch` holds a redacted string.
fn append_list(
    list: &mut ListBuilder<StringBuilder>,
    raw: &mut ListBuilder<BinaryBuilder>,
    bytes: &[u8],
    rules: Option<Rules>,
    scratch: &mut Vec<u8>,
) -> bool {
    let mut ok = true;
    // A final NUL ends the last string; without it the last string was cut short.
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    let Some(rules) = rules.filter(|_| !bytes.is_empty()) else {
        list.append(true);
        raw.append(false);
        return true;
    };
    let values = list.values();
    let mut r = Redactor::new(rules);
    for item in body.split(|&b| b == 0) {
        let item = if r.redact(item, scratch) { scratch.as_slice() } else { item };
        ok &= append_lossy(values, item);
    }
    list.append(true);
    if ok {
        raw.append(false);
    } else {
        let values = raw.values();
        let mut r = Redactor::new(rules);
        for item in body.split(|&b| b == 0) {
            let item = if r.redact(item, scratch) { scratch.as_slice() } else { item };
            values.append_value(item);
        }
        raw.append(true);
    }
    ok
}

fn file_op(op: u32) -> Option<&'static str> {
    Some(match op {
        abi::FILE_OPEN => "open",
        abi::FILE_CLOSE => "close",
        abi::FILE_UNLINK => "unlink",
        abi::FILE_RENAME => "rename",
        abi::FILE_READ => "read",
        abi::FILE_WRITE => "write",
        abi::FILE_TRUNCATE => "truncate",
        _ => return None,
    })
}

fn net_outcome(v: u16) -> Option<&'static str> {
    Some(match v {
        abi::NET_OPEN => "open",
        abi::NET_CLOSED => "closed",
        abi::NET_REFUSED => "refused",
        abi::NET_TIMEOUT => "timeout",
        abi::NET_RESET => "reset",
        abi::NET_FAILED => "failed",
        abi::NET_EVICTED => "evicted",
        _ => return None,
    })
}

fn net_owner(v: u16) -> Option<&'static str> {
    Some(match v {
        abi::OWNER_NONE => "none",
        abi::OWNER_CONNECT => "connect",
        abi::OWNER_ACCEPT => "accept",
        abi::OWNER_LISTEN => "listen",
        abi::OWNER_SEND => "send",
        abi::OWNER_SOCKET => "socket",
        abi::OWNER_PROCFS => "procfs",
        _ => return None,
    })
}

/// A record's endpoint, checked before anything is appended.
struct Endpoint<'a> {
    raw: &'a abi::Endpoint,
    family: &'static str,
    proto: &'static str,
    direction: &'static str,
    tcp: bool,
}

impl<'a> Endpoint<'a> {
    fn check(kind: u16, ep: &'a abi::Endpoint) -> Result<Endpoint<'a>, DecodeError> {
        let family = match i32::from(ep.family) {
            libc::AF_INET => "ipv4",
            libc::AF_INET6 => "ipv6",
            _ => return Err(DecodeError::BadField { kind, field: "family", value: u32::from(ep.family) }),
        };
        let proto = match i32::from(ep.proto) {
            libc::IPPROTO_TCP => "tcp",
            libc::IPPROTO_UDP => "udp",
            _ => return Err(DecodeError::BadField { kind, field: "proto", value: u32::from(ep.proto) }),
        };
        let direction = match ep.direction {
            abi::DIR_OUT => "out",
            abi::DIR_IN => "in",
            _ => return Err(DecodeError::BadField { kind, field: "direction", value: u32::from(ep.direction) }),
        };
        Ok(Endpoint { raw: ep, family, proto, direction, tcp: proto == "tcp" })
    }

    fn append(&self, b: &mut crate::builders::Endpoint) {
        let e = self.raw;
        b.family.append_value(self.family);
        b.proto.append_value(self.proto);
        b.direction.append_value(self.direction);
        append_addr(&mut b.saddr, e.family, &e.saddr);
        b.sport.append_value(i32::from(e.sport));
        append_addr(&mut b.daddr, e.family, &e.daddr);
        b.dport.append_value(i32::from(e.dport));
        b.netns.append_value(i64::from(e.netns));
        community_id::append(&mut b.community_id, e);
    }
}
