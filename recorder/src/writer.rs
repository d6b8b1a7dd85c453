//! Writer threads: batches arrive over bounded channels and become segments.
//!
//! Tables are spread over the threads (table index modulo thread count), so each table's
//! segments are written by exactly one thread in arrival order. The channels are bounded:
//! memory held by batches in flight is at most `queue_batches` per thread.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use capture_schemas::Table;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::retention::{lock_dir, Retention, ScanReport};
use crate::segment::{SegmentWriter, WriteError, WriterConfig};
use crate::stats::Health;

/// What the reader does when the writers fall behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backpressure {
    /// Wait for the writers; the kernel ring buffers absorb the burst, and count what
    /// they cannot hold.
    #[default]
    Block,
    /// Drop the batch and count its rows in `stats.dropped_backpressure`.
    Drop,
}

/// Threads, queue depth and retention limits of the writers.
#[derive(Debug, Clone)]
pub struct WritersConfig {
    pub threads: usize,
    pub queue_batches: usize,
    pub max_total_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Default for WritersConfig {
    fn default() -> Self {
        WritersConfig { threads: 1, queue_batches: 8, max_total_bytes: None, max_age: None }
    }
}

/// The sending side, held by the batcher.
#[derive(Clone)]
pub struct Sink {
    senders: Vec<Sender<(Table, RecordBatch)>>,
}

impl Sink {
    /// A sink of one bounded channel, read by the caller (for tests of back-pressure).
    pub fn channel(capacity: usize) -> (Sink, Receiver<(Table, RecordBatch)>) {
        let (tx, rx) = bounded(capacity);
        (Sink { senders: vec![tx] }, rx)
    }

    fn route(&self, table: Table) -> &Sender<(Table, RecordBatch)> {
        &self.senders[table.index() % self.senders.len()]
    }

    /// Hands a batch to its writer; returns it back when it was not taken (queue full in
    /// `Drop` mode, or writers gone).
    pub fn send(&self, table: Table, batch: RecordBatch, mode: Backpressure) -> Result<(), RecordBatch> {
        let tx = self.route(table);
        match mode {
            Backpressure::Block => tx.send((table, batch)).map_err(|e| e.into_inner().1),
            Backpressure::Drop => tx.try_send((table, batch)).map_err(|e| match e {
                TrySendError::Full(m) | TrySendError::Disconnected(m) => m.1,
            }),
        }
    }
}

/// The running writer threads.
pub struct Writers {
    sink: Sink,
    handles: Vec<JoinHandle<u64>>,
    retention: Arc<Retention>,
    scan: ScanReport,
    _lock: File,
}

/// Rate-limits repeated write errors to one log line per table per 10 s.
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn report(&mut self, table: Table, e: &WriteError) {
        let now = Instant::now();
        if self.last.is_some_and(|l| now.duration_since(l) < Duration::from_secs(10)) {
            self.suppressed += 1;
            return;
        }
        let more = if self.suppressed > 0 {
            format!(" ({} similar errors suppressed)", self.suppressed)
        } else {
            String::new()
        };
        log::error!("{} segment lost, {} rows: {e}{more}", table.name(), e.rows_lost);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

fn run(
    rx: Receiver<(Table, RecordBatch)>,
    cfg: Arc<WriterConfig>,
    health: Arc<Health>,
    retention: Arc<Retention>,
) -> u64 {
    let mut writers: Vec<SegmentWriter> =
        Table::ALL.iter().map(|&t| SegmentWriter::new(t, cfg.clone(), health.clone(), retention.clone())).collect();
    let mut logs: Vec<ErrorLog> = Table::ALL.iter().map(|_| ErrorLog { last: None, suppressed: 0 }).collect();
    let mut errors = 0u64;
    let tick_every = Duration::from_millis(250).min(cfg.max_segment_age);
    let mut last_tick = Instant::now();
    loop {
        let msg = rx.recv_timeout(tick_every);
        match msg {
            Ok((table, batch)) => {
                if let Err(e) = writers[table.index()].write(batch) {
                    errors += 1;
                    logs[table.index()].report(table, &e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= tick_every {
            last_tick = now;
            for w in &mut writers {
                if let Err(e) = w.tick(now) {
                    errors += 1;
                    logs[w.table().index()].report(w.table(), &e);
                }
            }
        }
    }
    for w in &mut writers {
        if let Err(e) = w.publish() {
            errors += 1;
            log::error!("{} segment lost at shutdown, {} rows: {e}", w.table().name(), e.rows_lost);
        }
    }
    errors
}

/// Creates the capture directory (mode 0750) if needed; it must not be a symlink.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(format!(
            "{} is a symlink; the recorder does not follow links it did not make: pass the real directory",
            dir.display()
        ))),
        Ok(_) => Err(io::Error::other(format!("{} exists and is not a directory", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)
        }
        Err(e) => Err(e),
    }
}

impl Writers {
    /// Locks and scans the directory, then starts the threads.
    pub fn start(cfg: WriterConfig, wc: &WritersConfig, health: Arc<Health>) -> io::Result<Writers> {
        prepare_dir(&cfg.dir)
            .map_err(|e| io::Error::new(e.kind(), format!("output directory {}: {e}", cfg.dir.display())))?;
        let lock = lock_dir(&cfg.dir)?;
        let retention = Arc::new(Retention::new(wc.max_total_bytes, wc.max_age));
        let scan = retention
            .scan(&cfg.dir)
            .map_err(|e| io::Error::new(e.kind(), format!("scanning {}: {e}", cfg.dir.display())))?;
        let cfg = Arc::new(cfg);
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..wc.threads.max(1) {
            let (tx, rx) = bounded(wc.queue_batches.max(1));
            let (cfg, health, retention) = (cfg.clone(), health.clone(), retention.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("segment-writer-{i}"))
                    .spawn(move || run(rx, cfg, health, retention))?,
            );
            senders.push(tx);
        }
        Ok(Writers { sink: Sink { senders }, handles, retention, scan, _lock: lock })
    }

    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    pub fn scan_report(&self) -> ScanReport {
        self.scan
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Closes the channels, lets every thread publish its open segments, and waits.
    /// Returns the number of write errors.
    pub fn finish(self) -> u64 {
        drop(self.sink);
        self.handles.into_iter().map(|h| h.join().unwrap_or(1)).sum()
    }
}

/// The published segments under `dir/table`, sorted (for tests and tools).
pub fn list_segments(dir: &Path, table: Table) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                walk(&e.path(), out);
            } else if ft.is_file() && !name.starts_with('.') && name.ends_with(".parquet") {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join(table.name()), &mut out);
    out.sort();
    out
}
