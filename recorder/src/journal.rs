//! The crash journal of an open segment, and recovery from it at the next start.
//!
//! A segment is written as Parquet under a hidden temporary name (`.T-PID-SEQ.parquet.tmp`):
//! its complete row groups are in that file, the row group being filled is in memory, and
//! the footer that makes the file readable is written only when the segment is published.
//! The journal (`.T-PID-SEQ.journal`, an Arrow IPC stream beside it) holds what a crash
//! would otherwise lose:
//!
//! - in the stream's schema metadata, the Parquet footer of the row groups already in the
//!   file, where that data ends, and how many rows it holds (`base`);
//! - as record batches, the rows handed to the segment since, in order, each by its
//!   deadline: the time by which the batcher would have cut its batch
//!   (`--flush-interval` after its oldest row, less two poll intervals). A batch cut
//!   because it was full comes before that, and waits in the segment writer (`Deferred`
//!   in `segment.rs`); when its row group reaches the file first, its rows never go to the
//!   journal. One `write(2)` per batch, `fdatasync` at the writers' next tick.
//!
//! When a row group reaches the file, the file is synced and a new journal (new footer,
//! the rows still in memory) replaces the old one by `rename`, so at any moment one of the
//! two is there, and each describes every row exactly once with the file. Publishing the
//! segment removes the journal after the rename into place. So a `kill -9` loses only the
//! rows younger than their deadline (at most `--flush-interval`, plus what waits in the
//! writer's queue), and a power cut at most the rows of the last tick (250 ms) more.
//!
//! At start, [`recover`] reads each temporary segment back through its journal's footer,
//! adds the journal's rows, and publishes them as a normal segment (normal row groups and
//! size) named after the temporary file, so a recovery cut short by another crash finds
//! its segment already published instead of writing it twice.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_schema::{Schema, SchemaRef};
use capture_schemas::layout::quietly;
use capture_schemas::Table;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData,
};

use crate::dir::Dir;
use crate::retention::Retention;
use crate::segment::{JournalMode, SegmentWriter, WriteError, WriterConfig};
use crate::stats::Health;

const BASE: &str = "capture.journal.base_rows";
const DATA_END: &str = "capture.journal.data_end";
const FOOTER: &str = "capture.journal.footer";

/// Where a segment's complete row groups end, and their footer.
#[derive(Debug, Default, Clone)]
pub struct Flushed {
    /// Rows in the row groups in the file.
    pub rows: u64,
    /// Bytes of the file they occupy (from offset 0, with the leading magic).
    pub data_end: u64,
    /// A Parquet footer (metadata, its length, `PAR1`) for them; empty when there are none.
    pub footer: Vec<u8>,
}

impl Flushed {
    /// The footer of `row_groups`, the complete row groups of a file `data_end` long.
    pub fn of(row_groups: &[RowGroupMetaData], data_end: u64) -> parquet::errors::Result<Flushed> {
        let Some(first) = row_groups.first() else { return Ok(Flushed::default()) };
        let rows: i64 = row_groups.iter().map(|r| r.num_rows()).sum();
        let meta = FileMetaData::new(1, rows, None, None, first.schema_descr_ptr(), None);
        let md = ParquetMetaData::new(meta, row_groups.to_vec());
        let mut footer = Vec::new();
        ParquetMetaDataWriter::new(&mut footer, &md).finish()?;
        Ok(Flushed { rows: rows as u64, data_end, footer })
    }
}

/// The journal of the segment whose temporary file is `.STEM.parquet.tmp`.
pub struct Journal {
    name: String,
    writer: StreamWriter<BufWriter<File>>,
    dirty: bool,
}

pub fn journal_name(stem: &str) -> String {
    format!(".{stem}.journal")
}

pub fn temp_name(stem: &str) -> String {
    format!(".{stem}.parquet.tmp")
}

fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let v = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes().chunks(2).map(|p| if p.len() == 2 { Some(v(p[0])? << 4 | v(p[1])?) } else { None }).collect()
}

impl Journal {
    /// Writes a new journal for segment `stem`: `flushed` describes the row groups in the
    /// file, `tail` the rows since. It is written beside the old one, synced when
    /// `durable`, then renamed over it.
    pub fn start(
        dir: &Dir,
        stem: &str,
        schema: &SchemaRef,
        flushed: &Flushed,
        tail: Option<&RecordBatch>,
        durable: bool,
        mode: JournalMode,
    ) -> io::Result<Journal> {
        let name = journal_name(stem);
        let new = format!("{name}.new");
        let _ = dir.unlink(&new);
        let file = dir.create_new(&new, 0o640)?;
        let mut meta = schema.metadata().clone();
        meta.insert(BASE.into(), flushed.rows.to_string());
        meta.insert(DATA_END.into(), flushed.data_end.to_string());
        meta.insert(FOOTER.into(), hex(&flushed.footer));
        let js = Schema::new_with_metadata(schema.fields().clone(), meta);
        let codec = match mode {
            JournalMode::Lz4 => Some(arrow_ipc::CompressionType::LZ4_FRAME),
            JournalMode::Zstd => Some(arrow_ipc::CompressionType::ZSTD),
            JournalMode::Plain | JournalMode::Off => None,
        };
        let opts = IpcWriteOptions::default().try_with_compression(codec).map_err(io::Error::other)?;
        let writer = StreamWriter::try_new_with_options(BufWriter::with_capacity(1 << 20, file), &js, opts)
            .map_err(io::Error::other)?;
        let mut j = Journal { name, writer, dirty: true };
        if let Some(t) = tail.filter(|t| t.num_rows() > 0) {
            j.append(t)?;
        } else {
            j.writer.get_mut().flush()?;
        }
        if durable {
            j.sync()?;
        }
        dir.rename_replace(&new, &j.name)?;
        Ok(j)
    }

    /// Appends rows; they reach the kernel before this returns (a `kill -9` keeps them).
    pub fn append(&mut self, batch: &RecordBatch) -> io::Result<()> {
        self.writer.write(batch).map_err(arrow_io)?;
        self.writer.get_mut().flush()?;
        self.dirty = true;
        Ok(())
    }

    /// Makes what was appended durable (a power cut keeps it).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.writer.get_ref().get_ref().sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    pub fn remove(self, dir: &Dir) -> io::Result<()> {
        dir.unlink(&self.name)
    }
}

fn arrow_io(e: arrow_schema::ArrowError) -> io::Error {
    match e {
        arrow_schema::ArrowError::IoError(_, io) => io,
        other => io::Error::other(other),
    }
}

/// What a temporary segment and its journal still hold, read back.
pub struct Leftover {
    /// Rows of the row groups in the file, then the journal's.
    pub batches: Box<dyn Iterator<Item = io::Result<RecordBatch>>>,
    /// Rows the journal's footer promises from the file.
    pub file_rows: u64,
}

/// Opens the leftovers of segment `stem` in `dir` for reading, as rows of `table`. A
/// journal cut mid-batch (the crash came while writing it) ends at its last whole batch.
pub fn read_leftover(dir: &Dir, stem: &str, table: Table) -> io::Result<Leftover> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", journal_name(stem)));
    let journal = StreamReader::try_new(io::BufReader::new(dir.open_read(&journal_name(stem))?), None)
        .map_err(|e| bad(&format!("unreadable header ({e})")))?;
    let meta = journal.schema().metadata().clone();
    let num = |k: &str| meta.get(k).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad(&format!("no {k}")));
    let (base, data_end) = (num(BASE)?, num(DATA_END)?);
    let footer = meta.get(FOOTER).and_then(|h| unhex(h)).ok_or_else(|| bad("unreadable footer"))?;
    let schema = table.schema();
    let rebind = {
        let schema = schema.clone();
        move |b: RecordBatch| RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(io::Error::other)
    };
    // Up to a torn last message: the crash came while it was written.
    let journal_rows = journal.map_while(Result::ok).map(rebind);
    if base == 0 {
        return Ok(Leftover { batches: Box::new(journal_rows), file_rows: 0 });
    }
    if footer.len() < 8 || &footer[footer.len() - 4..] != b"PAR1" {
        return Err(bad("footer without its magic"));
    }
    let md = ParquetMetaDataReader::decode_metadata(&footer[..footer.len() - 8])
        .map_err(|e| bad(&format!("undecodable footer ({e})")))?;
    if md.file_metadata().num_rows() as u64 != base {
        return Err(bad("footer and journal disagree on the rows in the file"));
    }
    let file = dir.open_read(&temp_name(stem))?;
    if file.metadata()?.len() < data_end {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{}: shorter than the {data_end} bytes its journal promises", temp_name(stem)),
        ));
    }
    let arm = ArrowReaderMetadata::try_new(Arc::new(md), ArrowReaderOptions::new().with_schema(schema.clone()))
        .map_err(|e| bad(&format!("footer does not match the {} schema ({e})", table.name())))?;
    let from_file = ParquetRecordBatchReaderBuilder::new_with_metadata(file, arm)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(io::Error::other)?
        .map(|b| b.map_err(io::Error::other));
    Ok(Leftover { batches: Box::new(from_file.chain(journal_rows)), file_rows: base })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)).unwrap(), all);
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}

/// What recovery did at start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Segments published from leftovers, and their rows.
    pub segments: u64,
    pub rows: u64,
    /// Leftovers that could not be read back (deleted, with a warning each).
    pub unreadable: u64,
    /// Leftovers kept for the next start because writing their segment failed.
    pub kept: u64,
}

/// Publishes what the leftovers of a crash hold, in every partition of the tables `mine`
/// picks under `cfg.dir`, and removes them; says what it did in one line per segment. Runs
/// in the writer thread of those tables before it takes batches (the reader runs
/// meanwhile; the thread's queue holds what arrives). Needs the directory lock: no live
/// recorder owns the leftovers.
pub fn recover(
    cfg: &Arc<WriterConfig>,
    retention: &Arc<Retention>,
    mine: impl Fn(Table) -> bool,
) -> io::Result<Recovered> {
    let mut report = Recovered::default();
    let root = Dir::open(&cfg.dir)?;
    for table in Table::ALL.into_iter().filter(|&t| mine(t)) {
        let t = match root.sub(table.name()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // `host=NAME/dt=/hr=`, or `dt=/hr=` in captures written before the host level.
        for (name, sub) in subdirs(&t)? {
            let days = if name.starts_with("host=") { subdirs(&sub)? } else { vec![(name, sub)] };
            for (_, day) in days {
                for (_, hour) in subdirs(&day)? {
                    recover_partition(&hour, table, cfg, retention, &mut report)?;
                }
            }
        }
    }
    Ok(report)
}

fn subdirs(d: &Dir) -> io::Result<Vec<(String, Dir)>> {
    let mut out = Vec::new();
    for (name, ft) in d.entries()? {
        if let (true, Some(name)) = (ft.is_dir(), name.to_str()) {
            // A link or a directory replaced since it was listed: not ours (the scan says so).
            if let Ok(sub) = d.sub(name) {
                out.push((name.to_string(), sub));
            }
        }
    }
    Ok(out)
}

fn recover_partition(
    dir: &Dir,
    table: Table,
    cfg: &Arc<WriterConfig>,
    retention: &Arc<Retention>,
    report: &mut Recovered,
) -> io::Result<()> {
    let names: Vec<String> = dir
        .entries()?
        .into_iter()
        .filter(|(_, ft)| ft.is_file())
        .filter_map(|(n, _)| n.into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    for name in &names {
        if name.ends_with(".journal.new") {
            // A journal that never replaced its predecessor: the old one is complete.
            let _ = dir.unlink(name);
        }
    }
    for name in &names {
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".journal")) else { continue };
        if !names.contains(&temp_name(stem)) {
            // Its segment was published; the crash came before the journal was removed.
            let _ = dir.unlink(name);
            continue;
        }
        let from = stem.strip_prefix(table.name()).and_then(|s| s.strip_prefix('-')).unwrap_or(stem);
        let at = dir.path().join(temp_name(stem));
        // Reading back bytes a crash (or a disk) left: arrow-ipc and parquet may panic on
        // malformed input where they should fail (`capture_schemas::layout::quietly`).
        let attempt = quietly(AssertUnwindSafe(|| recover_one(dir, stem, from, table, cfg, retention)));
        let outcome = attempt.unwrap_or_else(|_| {
            Err(Failure::Unreadable(io::Error::new(io::ErrorKind::InvalidData, "malformed (the reader panicked)")))
        });
        match outcome {
            Ok(done) => {
                if let Some(e) = &done.unread {
                    log::warn!("{}: {} rows recovered, the rest is unreadable: {e}", at.display(), done.rows);
                }
                if done.rows > 0 {
                    log::warn!(
                        "recovered {} {} rows left by a crash ({} from the unfinished segment's row groups, {} from its journal): {}",
                        done.rows,
                        table.name(),
                        done.file_rows.min(done.rows),
                        done.rows.saturating_sub(done.file_rows),
                        done.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    );
                }
                report.segments += done.paths.len() as u64;
                report.rows += done.rows;
            }
            Err(Failure::Unreadable(e)) => {
                log::warn!("{}: left by a crash and unreadable, deleted: {e}", at.display());
                report.unreadable += 1;
            }
            Err(Failure::Write(e)) => {
                log::error!("{}: recovering it failed, kept for the next start: {e}", at.display());
                report.kept += 1;
                continue;
            }
        }
        // The temporary file first: a journal without one is known to be done with.
        let _ = dir.unlink(&temp_name(stem));
        let _ = dir.unlink(name);
    }
    Ok(())
}

enum Failure {
    Unreadable(io::Error),
    Write(WriteError),
}

struct Done {
    paths: Vec<std::path::PathBuf>,
    rows: u64,
    file_rows: u64,
    unread: Option<io::Error>,
}

fn recover_one(
    dir: &Dir,
    stem: &str,
    from: &str,
    table: Table,
    cfg: &Arc<WriterConfig>,
    retention: &Arc<Retention>,
) -> Result<Done, Failure> {
    let left = read_leftover(dir, stem, table).map_err(Failure::Unreadable)?;
    let mut w = SegmentWriter::recovering(table, cfg.clone(), Health::new(), retention.clone(), from);
    let mut done = Done { paths: Vec::new(), rows: 0, file_rows: left.file_rows, unread: None };
    for b in left.batches {
        match b {
            Ok(b) => {
                done.rows += b.num_rows() as u64;
                done.paths.extend(w.write(b).map_err(Failure::Write)?);
            }
            Err(e) => {
                done.unread = Some(e);
                break;
            }
        }
    }
    done.paths.extend(w.publish().map_err(Failure::Write)?);
    Ok(done)
}
