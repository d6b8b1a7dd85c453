//! One table's rotating Parquet segments.
//!
//! A segment is written under a hidden temporary name in its partition directory, then
//! fsynced and renamed into place (never over an existing file), and the directory is
//! fsynced: readers see complete segments or none. Segments rotate on bytes written plus
//! bytes buffered, on age, on rows, and when the hour partition changes; a file is opened
//! only when its first batch arrives, so there are no empty segments. Beside the open
//! segment, its crash journal (`journal.rs`) keeps what a crash would lose.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use capture_schemas::abi::ABI_VERSION;
use capture_schemas::{Table, SCHEMA_VERSION};
use parquet::basic::{Compression as PqCompression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::dir::Dir;
use crate::host::HostInfo;
use crate::journal::{temp_name, Flushed, Journal};
use crate::pqfile::SegmentFile;
use crate::retention::Retention;
use crate::stats::{Health, Snapshot};

/// Parquet compression codec of the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    /// zstd level 1: the best size for the CPU it costs here.
    #[default]
    Zstd,
    Snappy,
    Lz4,
    None,
}

impl Compression {
    fn parquet(self) -> PqCompression {
        match self {
            // Level 1 is a valid zstd level; the fallback is never taken.
            Compression::Zstd => PqCompression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()),
            Compression::Snappy => PqCompression::SNAPPY,
            Compression::Lz4 => PqCompression::LZ4_RAW,
            Compression::None => PqCompression::UNCOMPRESSED,
        }
    }
}

/// How the open segments are kept safe from a crash (see `journal.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JournalMode {
    /// An Arrow IPC journal beside each open segment, uncompressed: the least CPU of the
    /// three. It takes the rows a row group does not bring to the file within
    /// `--flush-interval`: at most about 40 Ki rows a second a table, 257 bytes each for the
    /// file table, beside the segment's 8, for about 1% of a CPU (README, Columnar core).
    #[default]
    Plain,
    /// The same, LZ4-compressed: a quarter of the bytes, 40% more CPU.
    Lz4,
    /// The same, zstd-compressed: a seventh of the bytes, 40% more CPU.
    Zstd,
    /// No journal: a SIGKILL or power cut loses each table's open segment.
    Off,
}

/// Where and how segments are written.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub dir: PathBuf,
    pub compression: Compression,
    /// Rotate when bytes written plus bytes buffered reach this.
    pub max_segment_bytes: u64,
    /// Rotate a segment this long after it was opened.
    pub max_segment_age: Duration,
    /// Rotate after this many rows.
    pub max_segment_rows: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub journal: JournalMode,
    pub host: HostInfo,
    /// Every published segment's path is sent here (the uploader's queue, `upload.rs`).
    pub published: Option<crossbeam_channel::Sender<PathBuf>>,
}

impl WriterConfig {
    pub fn new(dir: impl Into<PathBuf>, host: HostInfo) -> WriterConfig {
        WriterConfig {
            dir: dir.into(),
            compression: Compression::Zstd,
            max_segment_bytes: 128 << 20,
            max_segment_age: Duration::from_secs(600),
            max_segment_rows: 10_000_000,
            row_group_rows: 128 * 1024,
            journal: JournalMode::Plain,
            host,
            published: None,
        }
    }

    /// The Parquet properties of `table`'s segments.
    pub fn properties(&self, table: Table) -> WriterProperties {
        let mut b = WriterProperties::builder()
            .set_compression(self.compression.parquet())
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_statistics_enabled(EnabledStatistics::None)
            .set_created_by(format!("capture agent-linux {}", env!("CARGO_PKG_VERSION")));
        // Times grow steadily: delta encoding stores them in a byte or two, where a
        // dictionary would only cost time; so do file ids (numbered in open order; with a
        // dictionary, 10.2 bytes per file event against 8.1). Everything else keeps the
        // default dictionary: without it the file mix measured 10.6 instead of 7.9 bytes
        // per event, for 5% speed.
        for col in ["ts", "ktime_ns", "file_id"] {
            if table.schema().field_with_name(col).is_ok() {
                b = b
                    .set_column_dictionary_enabled(ColumnPath::from(col), false)
                    .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
            }
        }
        // The file table's columns whose dictionary saves (almost) nothing on disk, mostly
        // null or nearly constant, while interning every value cost the writer a hash and
        // a probe each. cgroup_id, bytes_written and writes keep theirs: +0.25, +0.13 and
        // +0.12 bytes per event without it on the storm (README, issue 11's figures).
        // `reads` and `closed_by` have theirs again since the recorder's own encoders
        // (which skip the table for a row equal to the one before) took them: PLAIN they
        // were a quarter and an eighth of the bytes zstd was handed (8 bytes a row each
        // way), for pages of a few KiB; with it, 100,000 file events took 1.3% fewer
        // instructions (callgrind) and 8.16 bytes per event against 8.19 (README).
        // `path2` (a rename's new path, null in 98.9% of rows) has its dictionary again
        // since strcol.rs takes nulls a bitmap word at a time: 97 KB less of 16.2 MB for
        // 2 M synthetic file events (its PLAIN pages were 812 KB before zstd), and 0.1%
        // fewer instructions than PLAIN through parquet's writer (README).
        if table == Table::File {
            for col in FILE_PLAIN_COLUMNS {
                b = b.set_column_dictionary_enabled(ColumnPath::from(col), false);
            }
            // The boot-clock nanoseconds, delta-encoded, are random in their low bits:
            // zstd made their pages 0.03% larger, and spent 0.4% of the pipeline's
            // instructions doing it.
            for col in FILE_UNCOMPRESSED_COLUMNS {
                b = b.set_column_compression(ColumnPath::from(col), PqCompression::UNCOMPRESSED);
            }
        }
        // Column chunk statistics (min, max, nulls) where queries prune by them: time, and
        // the process keys. Kept for every column they cost 10% of the pipeline's CPU
        // (`scripts/bench-pipeline.sh`, file table: 0.92 -> 0.83 s for 2 M events), most
        // of it comparing strings no query prunes by.
        for col in STATS_COLUMNS {
            if table.schema().field_with_name(col).is_ok() {
                b = b.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::Chunk);
            }
        }
        // A bloom filter per row group on the file table's process keys, so that a lookup
        // of one process (`WHERE pid = ...`, `exec_id = ...`) reads only the row groups
        // that may hold it: min/max cannot say, every row group spans most pids. Over 30
        // M synthetic events, `pid = 5278` (488 rows) read 7 row groups of 185, 133 -> 48
        // ms of CPU; the pipeline took 2.9% more instructions (callgrind) and 8.19 bytes
        // per event against 8.18 (README, Queries). Not on exec, exit, net or dns, whose
        // exec_ids are nearly one per row: there the filters added 1.4% to 7.6% to the
        // bytes. Each filter starts sized for a row group of distinct values (parquet's
        // default is 1 Mi: 2 MiB a filter while it fills) and is folded to its fill when
        // written.
        if table == Table::File {
            for col in BLOOM_COLUMNS {
                b = b
                    .set_column_bloom_filter_enabled(ColumnPath::from(col), true)
                    .set_column_bloom_filter_fpp(ColumnPath::from(col), 0.01)
                    .set_column_bloom_filter_max_ndv(ColumnPath::from(col), self.row_group_rows.max(1) as u64);
            }
        }
        b.build()
    }
}

/// File table columns written without a dictionary (see `properties`).
const FILE_PLAIN_COLUMNS: [&str; 5] = ["dev", "length", "path_raw", "abs_path_raw", "path2_raw"];

/// File table columns whose pages are stored uncompressed (see `properties`).
const FILE_UNCOMPRESSED_COLUMNS: [&str; 1] = ["ktime_ns"];

/// Columns whose chunks carry statistics.
const STATS_COLUMNS: [&str; 4] = ["ts", "ktime_ns", "pid", "exec_id"];

/// File table columns whose row groups carry a bloom filter (see `properties`).
const BLOOM_COLUMNS: [&str; 2] = ["pid", "exec_id"];

/// Bounds of a segment's rows and the counters when it was opened.
struct Open {
    writer: SegmentFile,
    /// `.STEM.parquet.tmp` is the temporary file, `.STEM.journal` its journal.
    stem: String,
    journal: Option<Journal>,
    /// Rows written since the journal's last row but not appended to it yet, in order:
    /// they go to it by their deadline, unless a row group brings them to the file first.
    deferred: Deferred,
    /// Row groups in the file when the journal was last started.
    groups: usize,
    /// The temporary file's name in `dir`, and its path (for messages).
    tmp_name: String,
    tmp: PathBuf,
    dir: Dir,
    opened: Instant,
    hour: i64,
    rows: u64,
    first_us: i64,
    last_us: i64,
    at_open: Snapshot,
}

/// Pieces of batches written to the segment but not to its journal yet.
///
/// The journal is there for the rows a crash would lose: those of the row group in memory.
/// A batch cut because it was full comes young, and under load its row group reaches the
/// file well within `--flush-interval`; journaling it would write every row twice (257
/// bytes a file row in the journal, against 8 in the segment). So each batch carries the
/// time by which its oldest row must reach the kernel (`deadline`: the batcher's own,
/// which cuts a batch by then), and waits here until then; a row group that reaches the
/// file first takes its rows, and they never go to the journal.
#[derive(Default)]
struct Deferred {
    /// In row order, each with its deadline and the Arrow memory it holds (of its whole
    /// batch: a piece keeps its batch's buffers).
    pieces: std::collections::VecDeque<(RecordBatch, Instant, usize)>,
    bytes: usize,
}

/// The Arrow memory deferred rows may hold, per table; past it they go to the journal.
const DEFER_BYTES: usize = 64 << 20;

impl Deferred {
    fn push(&mut self, piece: RecordBatch, due: Instant, bytes: usize) {
        self.pieces.push_back((piece, due, bytes));
        self.bytes += bytes;
    }

    /// The earliest deadline of the rows waiting.
    fn due(&self) -> Option<Instant> {
        self.pieces.iter().map(|p| p.1).min()
    }

    fn clear(&mut self) {
        *self = Deferred::default();
    }
}

impl Open {
    /// Appends the deferred rows due by `now` to the journal, with every row before them
    /// (the journal holds rows in order); all of them without `now`. Batches come in
    /// order of their deadlines, so the rows after wait on.
    fn journal_deferred(&mut self, now: Option<Instant>) {
        let d = &mut self.deferred;
        let n = match now {
            Some(now) => d.pieces.iter().rposition(|p| p.1 <= now).map_or(0, |i| i + 1),
            None => d.pieces.len(),
        };
        let pieces: Vec<_> = d.pieces.drain(..n).collect();
        d.bytes -= pieces.iter().map(|p| p.2).sum::<usize>();
        let Some(j) = self.journal.as_mut() else { return };
        if let Some(e) = pieces.iter().find_map(|p| j.append(&p.0).err()) {
            self.journal_failed("appending to", e);
        }
    }

    /// Starts a new journal after a row group reached the file: the file is synced first,
    /// so the footer in the new journal never names bytes a power cut could lose. `piece`
    /// was the last batch written; the rows still in memory are its tail.
    fn roll_journal(&mut self, piece: &RecordBatch, mode: JournalMode) {
        self.groups = self.writer.flushed_row_groups().len();
        let synced = self.writer.sync().and_then(|()| self.writer.inner().sync_data());
        let flushed = synced.and_then(|()| {
            Flushed::of(self.writer.flushed_row_groups(), self.writer.bytes_written() as u64).map_err(pq_io)
        });
        let tail = self.writer.in_progress_rows().min(piece.num_rows());
        let tail = piece.slice(piece.num_rows() - tail, tail);
        let schema = piece.schema();
        match flushed.and_then(|f| Journal::start(&self.dir, &self.stem, &schema, &f, Some(&tail), true, mode)) {
            Ok(j) => {
                // The deferred rows are in the row group, or in the tail.
                self.journal = Some(j);
                self.deferred.clear();
            }
            Err(e) => {
                // The old journal goes on: it gets every row since its footer.
                log::warn!("{}: renewing its crash journal: {e}; the old one goes on", self.tmp.display());
                self.deferred.push(piece.clone(), Instant::now(), 0);
                self.journal_deferred(None);
            }
        }
    }

    /// Gives up the journal of this segment (a crash would lose it, as without one).
    fn journal_failed(&mut self, what: &str, e: io::Error) {
        log::warn!("{}: {what} its crash journal: {e}; a crash would lose this segment", self.tmp.display());
        self.deferred.clear();
        if let Some(j) = self.journal.take() {
            let _ = j.remove(&self.dir);
        }
    }
}

/// What a failed write lost.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}{hint}")]
pub struct WriteError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
    pub hint: &'static str,
    /// Rows that were in the lost segment.
    pub rows_lost: u64,
}

fn hint_for(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => " (free space on that file system, or lower --max-total-bytes)",
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => " (choose a writable --output-dir)",
        _ => "",
    }
}

fn pq_io(e: parquet::errors::ParquetError) -> io::Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<io::Error>() {
            Ok(io) => *io,
            Err(other) => io::Error::other(other),
        },
        other => io::Error::other(other),
    }
}

/// Hours since the epoch of a µs timestamp.
pub fn hour_of(us: i64) -> i64 {
    us.div_euclid(3_600_000_000)
}

/// `dt=YYYY-MM-DD/hr=HH` of an hour since the epoch (under `TABLE/host=NAME/`).
pub fn partition_of(hour: i64) -> (String, String) {
    let t = chrono::DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default();
    (t.format("dt=%Y-%m-%d").to_string(), t.format("hr=%H").to_string())
}

/// Opens `root/parts...` one component at a time from a descriptor of `root`, making
/// what is missing (mode 0750) and refusing to pass through a symlink: the recorder only
/// follows links it made, and it makes none (see `dir.rs`).
pub fn ensure_dir(root: &Path, parts: &[&str]) -> io::Result<Dir> {
    let mut d = Dir::open(root)?;
    for part in parts {
        d = d.sub_or_create(part)?;
    }
    Ok(d)
}

/// `PID-T` (T: when this process first named a file, in ns, hex): unique among the names
/// of temporary segments, even where the pid of a recorder is the same at each start (in
/// a container) and a crash left files named by the last one.
fn process_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        format!("{}-{:x}", std::process::id(), ns as u64)
    })
}

fn ts_column(batch: &RecordBatch) -> &TimestampMicrosecondArray {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("column 0 of every table is ts, microseconds")
}

/// Splits a batch into one batch per hour of `ts` (almost always just the batch itself).
pub fn split_by_hour(batch: RecordBatch) -> Vec<(i64, RecordBatch)> {
    let ts = ts_column(&batch).values();
    let (Some(&min), Some(&max)) = (ts.iter().min(), ts.iter().max()) else { return Vec::new() };
    if hour_of(min) == hour_of(max) {
        return vec![(hour_of(min), batch)];
    }
    let mut hours: Vec<i64> = ts.iter().map(|&t| hour_of(t)).collect();
    hours.sort_unstable();
    hours.dedup();
    hours
        .into_iter()
        .filter_map(|h| {
            let mask = BooleanArray::from_iter(ts.iter().map(|&t| Some(hour_of(t) == h)));
            arrow_select::filter::filter_record_batch(&batch, &mask).ok().map(|b| (h, b))
        })
        .collect()
}

/// The rotating segments of one table.
pub struct SegmentWriter {
    table: Table,
    cfg: Arc<WriterConfig>,
    props: WriterProperties,
    health: Arc<Health>,
    retention: Arc<Retention>,
    open: Option<Open>,
    seq: u64,
    host: String,
    /// Set when this writer republishes the leftovers of a crash (`PID-SEQ` of their
    /// name): one segment, named after them, with no journal and no rotation.
    recovering: Option<String>,
}

impl SegmentWriter {
    pub fn new(table: Table, cfg: Arc<WriterConfig>, health: Arc<Health>, retention: Arc<Retention>) -> SegmentWriter {
        SegmentWriter {
            table,
            props: cfg.properties(table),
            host: capture_schemas::layout::host_value(&cfg.host.host),
            cfg,
            health,
            retention,
            open: None,
            seq: 0,
            recovering: None,
        }
    }

    /// A writer for the rows recovered from the leftovers `.TABLE-FROM.parquet.tmp`.
    pub fn recovering(
        table: Table,
        cfg: Arc<WriterConfig>,
        health: Arc<Health>,
        retention: Arc<Retention>,
        from: &str,
    ) -> SegmentWriter {
        let mut w = SegmentWriter::new(table, cfg, health, retention);
        w.recovering = Some(from.to_string());
        w
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Appends a batch, opening, splitting and rotating segments as needed; returns the
    /// paths published on the way. Its rows go to the crash journal now.
    pub fn write(&mut self, batch: RecordBatch) -> Result<Vec<PathBuf>, WriteError> {
        self.write_by(batch, Instant::now())
    }

    /// As [`SegmentWriter::write`], but the rows need to reach the crash journal only by
    /// `due` (see [`Deferred`]; [`SegmentWriter::journal_due`] takes them there).
    pub fn write_by(&mut self, batch: RecordBatch, due: Instant) -> Result<Vec<PathBuf>, WriteError> {
        let bytes = batch.get_array_memory_size();
        let mut published = Vec::new();
        for (hour, piece) in split_by_hour(batch) {
            if self.open.as_ref().is_some_and(|o| o.hour != hour) {
                published.extend(self.publish()?);
            }
            if self.open.is_none() {
                if let Err(e) = self.open_segment(hour, piece.num_rows() as u64) {
                    self.health
                        .table(self.table)
                        .dropped_write_error
                        .fetch_add(e.rows_lost, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
            let o = self.open.as_mut().expect("a segment is open");
            let ts = ts_column(&piece).values();
            let (lo, hi) = ts.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
            let rows = piece.num_rows() as u64;
            if let Err(e) = o.writer.write(&piece) {
                return Err(self.abort("writing segment", pq_io(e), rows));
            }
            o.rows += rows;
            o.first_us = o.first_us.min(lo);
            o.last_us = o.last_us.max(hi);
            if o.journal.is_some() && o.writer.flushed_row_groups().len() != o.groups {
                o.roll_journal(&piece, self.cfg.journal);
            } else if o.journal.is_some() {
                o.deferred.push(piece, due, bytes);
                // Those due go now; past the memory bound, all.
                let by = (o.deferred.bytes <= DEFER_BYTES).then(Instant::now);
                o.journal_deferred(by);
            }
            let size = o.writer.bytes_written() as u64 + o.writer.in_progress_size() as u64;
            let full = size >= self.cfg.max_segment_bytes || o.rows >= self.cfg.max_segment_rows;
            if full && self.recovering.is_none() {
                published.extend(self.publish()?);
            }
        }
        Ok(published)
    }

    /// When deferred rows must reach the crash journal, if any wait.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.as_ref().and_then(|o| o.deferred.due())
    }

    /// Appends the deferred rows to the crash journal once their deadline has come.
    pub fn journal_due(&mut self, now: Instant) {
        if let Some(o) = self.open.as_mut().filter(|o| o.deferred.due().is_some_and(|d| d <= now)) {
            o.journal_deferred(Some(now));
        }
    }

    /// Publishes the open segment if it is older than the age limit; makes its journal
    /// durable otherwise.
    pub fn tick(&mut self, now: Instant) -> Result<Option<PathBuf>, WriteError> {
        if let Some(o) = &mut self.open {
            if let Some(Err(e)) = o.journal.as_mut().map(Journal::sync) {
                o.journal_failed("syncing", e);
            }
        }
        match &self.open {
            Some(o) if now.saturating_duration_since(o.opened) >= self.cfg.max_segment_age => self.publish(),
            _ => Ok(None),
        }
    }

    fn open_segment(&mut self, hour: i64, rows: u64) -> Result<(), WriteError> {
        let (dt, hr) = partition_of(hour);
        let host = format!("host={}", self.host);
        let dir = ensure_dir(&self.cfg.dir, &[self.table.name(), &host, &dt, &hr]).map_err(|source| WriteError {
            what: "creating partition directory under",
            path: self.cfg.dir.clone(),
            hint: hint_for(&source),
            source,
            rows_lost: rows,
        })?;
        self.seq += 1;
        // A recovering writer's own temporary file is named apart from the leftovers.
        let r = if self.recovering.is_some() { "r" } else { "" };
        let stem = format!("{}-{}-{r}{}", self.table.name(), process_token(), self.seq);
        let tmp_name = temp_name(&stem);
        let tmp = dir.path().join(&tmp_name);
        let file = dir.create_new(&tmp_name, 0o640).map_err(|source| WriteError {
            what: "creating segment",
            path: tmp.clone(),
            hint: hint_for(&source),
            source,
            rows_lost: rows,
        })?;
        let writer = SegmentFile::try_new(file, self.table.schema(), self.props.clone()).map_err(|e| {
            let _ = dir.unlink(&tmp_name);
            let source = pq_io(e);
            WriteError { what: "starting segment", path: tmp.clone(), hint: hint_for(&source), source, rows_lost: rows }
        })?;
        let journal = match self.cfg.journal {
            _ if self.recovering.is_some() => None,
            JournalMode::Off => None,
            mode => Journal::start(&dir, &stem, &self.table.schema(), &Flushed::default(), None, false, mode)
                .map_err(|e| log::warn!("{}: no crash journal for this segment: {e}", tmp.display()))
                .ok(),
        };
        self.open = Some(Open {
            writer,
            stem,
            journal,
            deferred: Deferred::default(),
            groups: 0,
            tmp_name,
            tmp,
            dir,
            opened: Instant::now(),
            hour,
            rows: 0,
            first_us: i64::MAX,
            last_us: i64::MIN,
            at_open: self.health.table(self.table).snapshot(),
        });
        Ok(())
    }

    /// Drops the open segment after an error: removes its temporary file and counts its
    /// rows (plus `more` not yet in it) as lost.
    fn abort(&mut self, what: &'static str, source: io::Error, more: u64) -> WriteError {
        let o = self.open.take().expect("abort with an open segment");
        let rows_lost = o.rows + more;
        let path = o.tmp.clone();
        drop(o.writer);
        let _ = o.dir.unlink(&o.tmp_name);
        if let Some(j) = o.journal {
            let _ = j.remove(&o.dir);
        }
        self.health.table(self.table).dropped_write_error.fetch_add(rows_lost, std::sync::atomic::Ordering::Relaxed);
        WriteError { what, path, hint: hint_for(&source), source, rows_lost }
    }

    /// Finishes the open segment and renames it into place.
    pub fn publish(&mut self) -> Result<Option<PathBuf>, WriteError> {
        let Some(mut o) = self.open.take() else { return Ok(None) };
        let journal = o.journal.take();
        let drops = self.health.table(self.table).snapshot().since(&o.at_open);
        let first = chrono::DateTime::from_timestamp_micros(o.first_us).unwrap_or_default();
        let last = chrono::DateTime::from_timestamp_micros(o.last_us).unwrap_or_default();
        let h = &self.cfg.host;
        let kv = [
            ("capture.table", self.table.name().to_string()),
            ("capture.schema_version", SCHEMA_VERSION.to_string()),
            ("capture.abi_version", ABI_VERSION.to_string()),
            ("capture.host", h.host.clone()),
            ("capture.kernel_release", h.kernel_release.clone()),
            ("capture.boot_id", h.boot_id.clone()),
            ("capture.recorder_version", env!("CARGO_PKG_VERSION").to_string()),
            ("capture.first_ts", first.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            ("capture.last_ts", last.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            ("capture.first_ts_us", o.first_us.to_string()),
            ("capture.last_ts_us", o.last_us.to_string()),
            ("capture.rows", o.rows.to_string()),
            ("capture.dropped_ringbuf_full", drops.dropped_ringbuf_full.to_string()),
            ("capture.dropped_kernel_other", drops.dropped_kernel_other.to_string()),
            ("capture.dropped_backpressure", drops.dropped_backpressure.to_string()),
            ("capture.dropped_write_error", drops.dropped_write_error.to_string()),
            ("capture.malformed", drops.malformed.to_string()),
        ];
        for (k, v) in kv {
            o.writer.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        if let Some(from) = &self.recovering {
            o.writer.append_key_value_metadata(KeyValue::new("capture.recovered_from".into(), from.clone()));
        }
        // On failure the rows are gone: the temporary file and its journal with them.
        let discard = |dir: &Dir, tmp: &str, journal: Option<Journal>| {
            let _ = dir.unlink(tmp);
            if let Some(j) = journal {
                let _ = j.remove(dir);
            }
        };
        let rows = o.rows;
        let start = first.format("%Y%m%dT%H%M%S%.3fZ").to_string().replace('.', "");
        let file = match o.writer.into_inner() {
            Ok(f) => f,
            Err(e) => {
                discard(&o.dir, &o.tmp_name, journal);
                return Err(self.lost("finishing segment", o.tmp, pq_io(e), rows));
            }
        };
        let size = match file.sync_all().and_then(|()| file.metadata()) {
            Ok(m) => m.len(),
            Err(e) => {
                discard(&o.dir, &o.tmp_name, journal);
                return Err(self.lost("syncing segment", o.tmp, e, rows));
            }
        };
        drop(file);
        // The name carries the first event's time; a clash (same millisecond, another
        // recorder's sequence) takes the next free sequence number.
        // A recovered segment is named after the leftovers it came from: recovering them
        // again (a crash between the rename and their removal) finds it there.
        let mut attempt = 0;
        let path = loop {
            let name = match &self.recovering {
                Some(from) => format!("{}-{}-{}-r{}.parquet", self.table.name(), start, self.host, from),
                None => format!("{}-{}-{}-{:06}.parquet", self.table.name(), start, self.host, self.seq + attempt),
            };
            let path = o.dir.path().join(&name);
            match o.dir.rename_noreplace(&o.tmp_name, &name) {
                Ok(()) => break path,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && self.recovering.is_some() => {
                    log::info!("{} was already recovered", path.display());
                    discard(&o.dir, &o.tmp_name, journal);
                    return Ok(Some(path));
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempt < 1000 => attempt += 1,
                Err(e) => {
                    discard(&o.dir, &o.tmp_name, journal);
                    return Err(self.lost("publishing segment", path, e, rows));
                }
            }
        };
        self.seq += attempt;
        if let Err(e) = o.dir.sync() {
            log::warn!("syncing directory {}: {e}", o.dir.path().display());
        }
        // Only now: until the rename is on disk, the journal is what recovers these rows.
        if let Some(j) = journal {
            if let Err(e) = j.remove(&o.dir) {
                log::warn!("{}: removing the journal of a published segment: {e}", o.dir.path().display());
            }
        }
        let c = self.health.table(self.table);
        c.segments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        c.bytes_written.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        c.rows_written.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
        log::debug!("published {} ({rows} rows, {size} bytes)", path.display());
        self.retention.published(&path, size);
        if let Some(tx) = &self.cfg.published {
            let _ = tx.send(path.clone());
        }
        Ok(Some(path))
    }

    fn lost(&self, what: &'static str, path: PathBuf, source: io::Error, rows: u64) -> WriteError {
        self.health.table(self.table).dropped_write_error.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
        WriteError { what, path, hint: hint_for(&source), source, rows_lost: rows }
    }
}
