//! The batcher: decodes records into per-table builders and cuts them into batches at
//! `batch_rows` or `flush_interval`, whichever comes first.
//!
//! `push` is the per-event path: decode, compare one length, nothing else. Clocks are read
//! in `tick`, which the reader calls after each poll, and once per cut batch (the
//! boot-to-wall offset), never per event.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capture_schemas::{Probe, Table};

use crate::decode::{ArgvMode, DecodeCounts, DecodeError, Decoder, EnvpMode};
use crate::host;
use crate::stats::{Health, StatsEmitter};
use crate::writer::{Backpressure, Sink};

#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub batch_rows: usize,
    pub flush_interval: Duration,
    pub stats_interval: Duration,
    pub backpressure: Backpressure,
    pub envp: EnvpMode,
    pub argv: ArgvMode,
    /// The probes running, one `stats` row each per interval.
    pub probes: Vec<Probe>,
    pub boot_seed: u64,
}

impl BatchConfig {
    pub fn new(boot_seed: u64) -> BatchConfig {
        BatchConfig {
            batch_rows: 16 * 1024,
            flush_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(10),
            backpressure: Backpressure::Block,
            envp: EnvpMode::Redacted,
            argv: ArgvMode::Redacted,
            probes: Probe::ALL.to_vec(),
            boot_seed,
        }
    }
}

pub struct Batcher {
    pub decoder: Decoder,
    cfg: BatchConfig,
    sink: Sink,
    health: Arc<Health>,
    pending_since: [Option<Instant>; Table::COUNT],
    published: [DecodeCounts; Probe::COUNT],
    stats: StatsEmitter,
}

impl Batcher {
    pub fn new(cfg: BatchConfig, sink: Sink, health: Arc<Health>) -> Batcher {
        let now = Instant::now();
        Batcher {
            decoder: Decoder::new(cfg.batch_rows, cfg.boot_seed, cfg.envp).with_argv(cfg.argv),
            stats: StatsEmitter::new(&cfg.probes, now),
            cfg,
            sink,
            health,
            pending_since: [None; Table::COUNT],
            published: [DecodeCounts::default(); Probe::COUNT],
        }
    }

    /// Decodes one record from `probe`'s ring buffer; cuts a batch when its table is full.
    #[inline]
    pub fn push(&mut self, probe: Probe, rec: &[u8]) -> Result<Table, DecodeError> {
        let r = self.decoder.decode(probe, rec);
        if let Ok(t) = r {
            if self.decoder.builders.len(t) >= self.cfg.batch_rows {
                self.cut(t);
            }
        }
        r
    }

    /// Time-driven work: cuts batches older than `flush_interval`, publishes counters and
    /// emits `stats` rows when their interval is up.
    pub fn tick(&mut self, now: Instant) {
        self.decoder.release_held(host::boottime_ns().max(0) as u64);
        for t in Table::events() {
            if self.decoder.builders.len(t) == 0 {
                continue;
            }
            let since = *self.pending_since[t.index()].get_or_insert(now);
            if now.saturating_duration_since(since) >= self.cfg.flush_interval {
                self.cut(t);
            }
        }
        self.publish_counts();
        if self.stats.since_last(now) >= self.cfg.stats_interval {
            self.emit_stats(now);
        }
    }

    /// Cuts every non-empty table (the final `stats` interval comes after the writers
    /// have published their last segments: [`Batcher::final_stats`]).
    pub fn flush(&mut self) {
        self.decoder.release_all();
        for t in Table::events() {
            if self.decoder.builders.len(t) > 0 {
                self.cut(t);
            }
        }
        self.publish_counts();
    }

    /// Lets go of the writers' queues, keeping what makes the last `stats` interval: call
    /// it once every segment is published, so the rows count the last segments too.
    pub fn into_final_stats(self) -> impl FnOnce() -> arrow_array::RecordBatch {
        let Batcher { mut stats, health, .. } = self;
        move || stats.emit(&health, Instant::now(), host::realtime_ns() / 1000)
    }

    fn emit_stats(&mut self, now: Instant) {
        let rows = self.stats.emit(&self.health, now, host::realtime_ns() / 1000);
        if rows.num_rows() > 0 {
            let _ = self.sink.send(Table::Stats, rows, self.cfg.backpressure);
        }
    }

    fn publish_counts(&mut self) {
        for p in Probe::ALL {
            let c = self.decoder.counts(p);
            let last = &mut self.published[p as usize];
            let h = self.health.probe(p);
            h.events.fetch_add(c.events - last.events, Relaxed);
            h.malformed.fetch_add(c.malformed - last.malformed, Relaxed);
            h.invalid_utf8.fetch_add(c.invalid_utf8 - last.invalid_utf8, Relaxed);
            *last = c;
        }
    }

    fn cut(&mut self, t: Table) {
        // The deadline `tick` cuts a batch by: its oldest row reaches the journal by then
        // too (rows since the last tick are younger than it).
        let since = self.pending_since[t.index()].take().unwrap_or_else(Instant::now);
        let Some(batch) = self.decoder.builders.finish(t, host::boot_to_wall_offset_ns()) else { return };
        let rows = batch.num_rows() as u64;
        if self.sink.send_by(t, batch, since + self.cfg.flush_interval, self.cfg.backpressure).is_err() {
            if let Some(p) = t.probe() {
                self.health.probe(p).dropped_backpressure.fetch_add(rows, Relaxed);
            }
        }
    }
}
