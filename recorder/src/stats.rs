//! Recorder health: counters shared by the reader, the writers and the loader, and the
//! `stats` rows made from them once per interval.
//!
//! Every counter is cumulative and updated per batch or per poll, never per event: the
//! decoder keeps plain per-probe counts and the batcher publishes them here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use capture_schemas::{Probe, Table};

/// Cumulative counters of one probe.
#[derive(Debug, Default)]
pub struct ProbeHealth {
    pub events: AtomicU64,
    pub dropped_ringbuf_full: AtomicU64,
    pub dropped_kernel_other: AtomicU64,
    pub dropped_backpressure: AtomicU64,
    pub dropped_write_error: AtomicU64,
    pub malformed: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub rows_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub segments: AtomicU64,
}

/// A copy of a probe's counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub events: u64,
    pub dropped_ringbuf_full: u64,
    pub dropped_kernel_other: u64,
    pub dropped_backpressure: u64,
    pub dropped_write_error: u64,
    pub malformed: u64,
    pub invalid_utf8: u64,
    pub rows_written: u64,
    pub bytes_written: u64,
    pub segments: u64,
}

impl Snapshot {
    /// Counts since `earlier` (counters only grow).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            events: self.events - earlier.events,
            dropped_ringbuf_full: self.dropped_ringbuf_full - earlier.dropped_ringbuf_full,
            dropped_kernel_other: self.dropped_kernel_other - earlier.dropped_kernel_other,
            dropped_backpressure: self.dropped_backpressure - earlier.dropped_backpressure,
            dropped_write_error: self.dropped_write_error - earlier.dropped_write_error,
            malformed: self.malformed - earlier.malformed,
            invalid_utf8: self.invalid_utf8 - earlier.invalid_utf8,
            rows_written: self.rows_written - earlier.rows_written,
            bytes_written: self.bytes_written - earlier.bytes_written,
            segments: self.segments - earlier.segments,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped_ringbuf_full + self.dropped_kernel_other + self.dropped_backpressure + self.dropped_write_error
    }
}

impl ProbeHealth {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            events: self.events.load(Relaxed),
            dropped_ringbuf_full: self.dropped_ringbuf_full.load(Relaxed),
            dropped_kernel_other: self.dropped_kernel_other.load(Relaxed),
            dropped_backpressure: self.dropped_backpressure.load(Relaxed),
            dropped_write_error: self.dropped_write_error.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            invalid_utf8: self.invalid_utf8.load(Relaxed),
            rows_written: self.rows_written.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            segments: self.segments.load(Relaxed),
        }
    }
}

/// The uploader's counters (`--upload`, `upload.rs`): cumulative but for the two gauges.
#[derive(Debug, Default)]
pub struct UploadHealth {
    /// Set when the recorder uploads: the `stats` table then gets an `upload` row.
    pub enabled: std::sync::atomic::AtomicBool,
    pub segments: AtomicU64,
    pub bytes: AtomicU64,
    pub failures: AtomicU64,
    /// Segments published and not yet uploaded (a gauge).
    pub pending: AtomicU64,
    /// When the oldest pending segment was published, µs since the epoch; 0 when none waits
    /// (a gauge).
    pub oldest_pending_us: std::sync::atomic::AtomicI64,
}

impl UploadHealth {
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// How long the oldest pending segment has waited, in ms, at `now_us`.
    pub fn lag_ms(&self, now_us: i64) -> i64 {
        match self.oldest_pending_us.load(Relaxed) {
            0 => 0,
            t => (now_us - t).max(0) / 1000,
        }
    }
}

/// The counters of every probe, plus those of the `stats` table itself and the uploader.
#[derive(Debug, Default)]
pub struct Health {
    probes: [ProbeHealth; Probe::COUNT],
    stats_table: ProbeHealth,
    pub upload: UploadHealth,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    pub fn probe(&self, probe: Probe) -> &ProbeHealth {
        &self.probes[probe as usize]
    }

    /// The counters a table's writer adds to: its probe's, or the stats table's own.
    pub fn table(&self, table: Table) -> &ProbeHealth {
        match table.probe() {
            Some(p) => self.probe(p),
            None => &self.stats_table,
        }
    }

    /// Totals over every probe.
    pub fn total(&self) -> Snapshot {
        let mut t = Snapshot::default();
        for p in Probe::ALL {
            let s = self.probe(p).snapshot();
            t.events += s.events;
            t.dropped_ringbuf_full += s.dropped_ringbuf_full;
            t.dropped_kernel_other += s.dropped_kernel_other;
            t.dropped_backpressure += s.dropped_backpressure;
            t.dropped_write_error += s.dropped_write_error;
            t.malformed += s.malformed;
            t.invalid_utf8 += s.invalid_utf8;
            t.rows_written += s.rows_written;
            t.bytes_written += s.bytes_written;
            t.segments += s.segments;
        }
        t
    }
}

/// Turns counter deltas into `stats` rows, one per enabled probe per interval.
pub struct StatsEmitter {
    probes: Vec<Probe>,
    last: [Snapshot; Probe::COUNT],
    /// The uploader's segments, bytes and failures at the last row.
    last_upload: [u64; 3],
    last_at: Instant,
}

impl StatsEmitter {
    pub fn new(probes: &[Probe], now: Instant) -> StatsEmitter {
        StatsEmitter {
            probes: probes.to_vec(),
            last: [Snapshot::default(); Probe::COUNT],
            last_upload: [0; 3],
            last_at: now,
        }
    }

    pub fn since_last(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.last_at)
    }

    /// The rows of the interval ending now; `wall_now_us` is the wall clock in µs.
    pub fn emit(&mut self, health: &Health, now: Instant, wall_now_us: i64) -> RecordBatch {
        let interval_ms = self.since_last(now).as_millis() as i64;
        self.last_at = now;
        let mut b = crate::builders::stats::Builder::with_capacity(self.probes.len() + 1);
        for &p in &self.probes {
            let cur = health.probe(p).snapshot();
            let d = cur.since(&self.last[p as usize]);
            self.last[p as usize] = cur;
            b.ts.append_value(wall_now_us);
            b.interval_ms.append_value(interval_ms);
            b.probe.append_value(p.name());
            b.events.append_value(d.events as i64);
            b.dropped_ringbuf_full.append_value(d.dropped_ringbuf_full as i64);
            b.dropped_kernel_other.append_value(d.dropped_kernel_other as i64);
            b.dropped_backpressure.append_value(d.dropped_backpressure as i64);
            b.dropped_write_error.append_value(d.dropped_write_error as i64);
            b.malformed.append_value(d.malformed as i64);
            b.invalid_utf8.append_value(d.invalid_utf8 as i64);
            b.rows_written.append_value(d.rows_written as i64);
            b.bytes_written.append_value(d.bytes_written as i64);
            b.segments.append_value(d.segments as i64);
            for c in [&mut b.upload_segments, &mut b.upload_bytes, &mut b.upload_failures, &mut b.upload_pending] {
                c.append_null();
            }
            b.upload_lag_ms.append_null();
        }
        let u = &health.upload;
        if u.is_enabled() {
            let now = [u.segments.load(Relaxed), u.bytes.load(Relaxed), u.failures.load(Relaxed)];
            let d: Vec<i64> = now.iter().zip(self.last_upload).map(|(n, l)| (n - l) as i64).collect();
            self.last_upload = now;
            b.ts.append_value(wall_now_us);
            b.interval_ms.append_value(interval_ms);
            b.probe.append_value("upload");
            for c in [
                &mut b.events,
                &mut b.dropped_ringbuf_full,
                &mut b.dropped_kernel_other,
                &mut b.dropped_backpressure,
                &mut b.dropped_write_error,
                &mut b.malformed,
                &mut b.invalid_utf8,
                &mut b.rows_written,
                &mut b.bytes_written,
                &mut b.segments,
            ] {
                c.append_value(0);
            }
            b.upload_segments.append_value(d[0]);
            b.upload_bytes.append_value(d[1]);
            b.upload_failures.append_value(d[2]);
            b.upload_pending.append_value(u.pending.load(Relaxed) as i64);
            b.upload_lag_ms.append_value(u.lag_ms(wall_now_us));
        }
        b.finish(0)
    }
}
