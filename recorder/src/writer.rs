//! Writer threads: batches arrive over channels and become segments.
//!
//! Tables are spread over the threads (table index modulo thread count), so each table's
//! segments are written by exactly one thread in arrival order. Each thread's queue is
//! bounded in bytes (`queue_bytes`, the Arrow memory of the batches waiting): a burst the
//! writer cannot keep up with waits there, in memory, instead of filling the kernel's ring
//! buffers; past it the reader waits or drops batches (`Backpressure`). A batch larger than
//! the whole bound still passes when the queue is empty. Before taking batches, each
//! thread publishes what a crash left of its tables' segments (`journal::recover`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use capture_schemas::Table;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use crate::retention::{lock_dir, Retention, ScanReport};
use crate::segment::{SegmentWriter, WriteError, WriterConfig};
use crate::stats::Health;
use crate::units::human_bytes;

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

/// Threads, queue bound and retention limits of the writers.
#[derive(Debug, Clone)]
pub struct WritersConfig {
    pub threads: usize,
    /// Arrow memory of the batches waiting for each writer thread, at most.
    pub queue_bytes: u64,
    pub max_total_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Default for WritersConfig {
    fn default() -> Self {
        WritersConfig { threads: 1, queue_bytes: 64 << 20, max_total_bytes: None, max_age: None }
    }
}

/// A batch on its way to a writer, with the bytes it holds of the queue's bound.
pub struct Queued {
    pub table: Table,
    pub batch: RecordBatch,
    /// When its oldest row must be in the crash journal (`SegmentWriter::write_by`).
    pub due: Instant,
    bytes: u64,
}

/// The bytes waiting in one writer thread's queue, against its bound.
struct Budget {
    limit: u64,
    state: Mutex<BudgetState>,
    freed: Condvar,
}

struct BudgetState {
    used: u64,
    /// The most `used` has been (logged at exit, to size `queue_bytes`).
    peak: u64,
    /// The writer thread has stopped: nothing will be freed.
    closed: bool,
}

impl Budget {
    fn new(limit: u64) -> Budget {
        Budget { limit, state: Mutex::new(BudgetState { used: 0, peak: 0, closed: false }), freed: Condvar::new() }
    }

    /// Takes `bytes` of the bound, waiting for the writer to free room when `wait`; false
    /// when there is no room (and not `wait`) or the writer has stopped.
    fn take(&self, bytes: u64, wait: bool) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.closed {
                return false;
            }
            if st.used == 0 || st.used + bytes <= self.limit {
                st.used += bytes;
                st.peak = st.peak.max(st.used);
                return true;
            }
            if !wait {
                return false;
            }
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give(&self, bytes: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.used = st.used.saturating_sub(bytes);
        self.freed.notify_all();
    }

    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.closed = true;
        log::debug!("writer queue: at most {} of {} held", human_bytes(st.peak), human_bytes(self.limit));
        self.freed.notify_all();
    }
}

/// One writer thread's queue: the channel and its byte bound.
#[derive(Clone)]
struct Queue {
    tx: Sender<Queued>,
    budget: Arc<Budget>,
}

/// The sending side, held by the batcher.
#[derive(Clone)]
pub struct Sink {
    queues: Vec<Queue>,
}

impl Sink {
    /// A sink of one queue bounded to `queue_bytes`, read by the caller (for tests of
    /// back-pressure; the caller frees nothing, so the queue fills, and a `Block` send to a
    /// full queue waits for ever: test with `Drop`).
    pub fn channel(queue_bytes: u64) -> (Sink, Receiver<Queued>) {
        let (tx, rx) = unbounded();
        (Sink { queues: vec![Queue { tx, budget: Arc::new(Budget::new(queue_bytes)) }] }, rx)
    }

    /// Hands a batch to its writer; returns it back when it was not taken (queue full in
    /// `Drop` mode, or writers gone). Runs once per batch, not per event.
    pub fn send(&self, table: Table, batch: RecordBatch, mode: Backpressure) -> Result<(), RecordBatch> {
        self.send_by(table, batch, Instant::now(), mode)
    }

    /// As [`Sink::send`], for a batch whose rows need to be in the crash journal only by
    /// `due`.
    pub fn send_by(
        &self,
        table: Table,
        batch: RecordBatch,
        due: Instant,
        mode: Backpressure,
    ) -> Result<(), RecordBatch> {
        let q = &self.queues[table.index() % self.queues.len()];
        let bytes = batch.get_array_memory_size() as u64;
        if !q.budget.take(bytes, mode == Backpressure::Block) {
            return Err(batch);
        }
        q.tx.send(Queued { table, batch, due, bytes }).map_err(|e| {
            q.budget.give(bytes);
            e.into_inner().batch
        })
    }
}

/// The running writer threads.
pub struct Writers {
    sink: Sink,
    handles: Vec<JoinHandle<u64>>,
    retention: Arc<Retention>,
    cfg: Arc<WriterConfig>,
    health: Arc<Health>,
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
    rx: Receiver<Queued>,
    budget: &Budget,
    cfg: Arc<WriterConfig>,
    health: Arc<Health>,
    retention: Arc<Retention>,
    mine: impl Fn(Table) -> bool,
) -> u64 {
    // However this thread ends (a panic included), senders waiting for room stop waiting.
    struct CloseOnExit<'a>(&'a Budget);
    impl Drop for CloseOnExit<'_> {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _close = CloseOnExit(budget);
    match crate::journal::recover(&cfg, &retention, &mine) {
        Ok(r) if r.segments > 0 || r.unreadable > 0 || r.kept > 0 => log::debug!("recovery: {r:?}"),
        Ok(_) => {}
        Err(e) => log::error!("recovering segments left by a crash under {}: {e}", cfg.dir.display()),
    }
    let mut writers: Vec<SegmentWriter> =
        Table::ALL.iter().map(|&t| SegmentWriter::new(t, cfg.clone(), health.clone(), retention.clone())).collect();
    let mut logs: Vec<ErrorLog> = Table::ALL.iter().map(|_| ErrorLog { last: None, suppressed: 0 }).collect();
    let mut errors = 0u64;
    let tick_every = Duration::from_millis(250).min(cfg.max_segment_age);
    let mut last_tick = Instant::now();
    loop {
        // Awake for the next tick, or for deferred rows due in a journal before it.
        let wake = writers.iter().filter_map(SegmentWriter::next_due).fold(last_tick + tick_every, Instant::min);
        let msg = rx.recv_timeout(wake.saturating_duration_since(Instant::now()));
        match msg {
            Ok(Queued { table, batch, due, bytes }) => {
                let written = writers[table.index()].write_by(batch, due);
                budget.give(bytes);
                if let Err(e) = written {
                    errors += 1;
                    logs[table.index()].report(table, &e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        for w in &mut writers {
            w.journal_due(now);
        }
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

/// Creates the capture directory (mode 0750) if needed; it must not be a symlink, nor
/// writable by other users (they could swap what the recorder writes and deletes).
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.permissions().mode() & 0o022 != 0 => Err(io::Error::other(format!(
            "writable by {} (mode {:04o}): refusing to record there; chmod go-w it, or choose a directory of your own",
            if m.permissions().mode() & 0o002 != 0 { "every user" } else { "its group" },
            m.permissions().mode() & 0o7777
        ))),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(
            "a symlink; the recorder does not follow links it did not make: pass the real directory",
        )),
        Ok(_) => Err(io::Error::other("exists and is not a directory")),
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
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        let n = wc.threads.max(1);
        for i in 0..n {
            let (tx, rx) = unbounded();
            let budget = Arc::new(Budget::new(wc.queue_bytes));
            let (cfg, health, retention, b) = (cfg.clone(), health.clone(), retention.clone(), budget.clone());
            let mine = move |t: Table| t.index() % n == i;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("segment-writer-{i}"))
                    .spawn(move || run(rx, &b, cfg, health, retention, mine))?,
            );
            queues.push(Queue { tx, budget });
        }
        Ok(Writers { sink: Sink { queues }, handles, retention, cfg, health, scan, _lock: lock })
    }

    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    pub fn scan_report(&self) -> ScanReport {
        self.scan
    }

    pub fn retention(&self) -> &Arc<Retention> {
        &self.retention
    }

    /// Closes the channels, lets every thread publish its open segments, and waits; then
    /// writes `last` (the final `stats` rows, made once those segments are counted) as a
    /// segment of its own. Returns the number of write errors.
    pub fn finish(self, last: impl FnOnce() -> RecordBatch) -> u64 {
        let Writers { sink, handles, retention, cfg, health, .. } = self;
        drop(sink);
        let mut errors: u64 = handles.into_iter().map(|h| h.join().unwrap_or(1)).sum();
        let rows = last();
        if rows.num_rows() > 0 {
            let mut w = SegmentWriter::new(Table::Stats, cfg, health, retention);
            if let Err(e) = w.write(rows).and_then(|_| w.publish()) {
                errors += 1;
                log::error!("stats segment lost at shutdown, {} rows: {e}", e.rows_lost);
            }
        }
        errors
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn budget_admits_up_to_its_limit_and_one_batch_past_it_when_empty() {
        let b = Budget::new(100);
        assert!(b.take(150, false), "a batch over the limit passes an empty queue");
        assert!(!b.take(1, false), "nothing more while it waits");
        b.give(150);
        assert!(b.take(60, false));
        assert!(b.take(40, false), "exactly the limit");
        assert!(!b.take(1, false));
    }

    #[test]
    fn a_blocked_sender_waits_for_room_and_stops_waiting_when_the_writer_stops() {
        let b = Arc::new(Budget::new(100));
        assert!(b.take(100, true));
        let taken = Arc::new(AtomicBool::new(false));
        let (b2, t2) = (b.clone(), taken.clone());
        let waiter = std::thread::spawn(move || {
            let ok = b2.take(50, true);
            t2.store(true, Ordering::SeqCst);
            ok
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!taken.load(Ordering::SeqCst), "no room: the sender waits");
        b.give(60);
        assert!(waiter.join().unwrap(), "room freed: the sender goes on");

        let (b3, t3) = (b.clone(), Arc::new(AtomicBool::new(false)));
        let t3c = t3.clone();
        let waiter = std::thread::spawn(move || {
            let ok = b3.take(100, true);
            t3c.store(true, Ordering::SeqCst);
            ok
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t3.load(Ordering::SeqCst));
        b.close();
        assert!(!waiter.join().unwrap(), "writer stopped: the batch is handed back");
    }
}
