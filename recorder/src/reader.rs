//! The reader: polls every probe's ring buffer and hands each record, as the slice libbpf
//! gives (pointing into the mmap'd ring), to the pipeline's decoder. No copy, no
//! allocation per event.
//!
//! The kernel side wakes the reader only when enough bytes are waiting; the poll timeout
//! bounds how long a quiet probe's records wait. After each poll: time-driven batching,
//! kernel drop counters (one map read per probe), and the status line.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use capture_schemas::abi::{DROP_CAUSES, DROP_RINGBUF_FULL};
use capture_schemas::Probe;
use libbpf_rs::RingBufferBuilder;

use crate::loader::LiveProbe;
use crate::pipeline::{Pipeline, Summary};
use crate::stats::Snapshot;
use crate::units::human_bytes;

pub struct ReadOptions {
    /// Longest a record waits in a ring buffer that has not reached its wake-up threshold.
    pub poll_interval: Duration,
    /// Stop after this long (None: until signalled).
    pub duration: Option<Duration>,
    /// Show a live status line on stderr.
    pub status: bool,
}

/// Feeds the kernel drop counters into the pipeline's health counters.
fn publish_drops(probes: &[LiveProbe], pipeline: &Pipeline, last: &mut [[u64; DROP_CAUSES]]) {
    for (p, last) in probes.iter().zip(last.iter_mut()) {
        let d = p.drops();
        let h = pipeline.health().probe(p.probe);
        for (cause, (&now, prev)) in d.dropped.iter().zip(last.iter_mut()).enumerate() {
            let delta = now.saturating_sub(*prev);
            *prev = now;
            if delta == 0 {
                continue;
            }
            if cause == DROP_RINGBUF_FULL {
                h.dropped_ringbuf_full.fetch_add(delta, Ordering::Relaxed);
            } else {
                h.dropped_kernel_other.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }
}

fn status_line(
    probes: &[LiveProbe],
    pipeline: &Pipeline,
    prev: &mut [Snapshot],
    secs: f64,
    started: Instant,
) -> String {
    let mut parts = Vec::new();
    let mut dropped = 0;
    let (mut bytes, mut segments) = (0, 0);
    for (p, prev) in probes.iter().zip(prev.iter_mut()) {
        let s = pipeline.health().probe(p.probe).snapshot();
        parts.push(format!("{} {:.0}/s", p.probe.name(), (s.events - prev.events) as f64 / secs));
        dropped += s.dropped();
        bytes += s.bytes_written;
        segments += s.segments;
        *prev = s;
    }
    format!(
        "\r\x1b[2K{}s  {}  drops {}  {} in {} segments",
        started.elapsed().as_secs(),
        parts.join("  "),
        dropped,
        human_bytes(bytes),
        segments
    )
}

/// Reads until `stop` is set or the duration is up, then flushes everything.
pub fn run(probes: &[LiveProbe], pipeline: Pipeline, stop: &AtomicBool, opts: &ReadOptions) -> anyhow::Result<Summary> {
    let pipeline = RefCell::new(pipeline);
    let started = Instant::now();
    {
        let mut builder = RingBufferBuilder::new();
        for p in probes {
            let probe: Probe = p.probe;
            let pipeline = &pipeline;
            builder.add(&p.events, move |rec: &[u8]| {
                // Malformed records are counted by the decoder; nothing to do here.
                let _ = pipeline.borrow_mut().push(probe, rec);
                0
            })?;
        }
        let rb = builder.build()?;
        let mut last_drops = vec![[0u64; DROP_CAUSES]; probes.len()];
        let mut prev = vec![Snapshot::default(); probes.len()];
        let mut last_status = Instant::now();
        let mut stderr = std::io::stderr();
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = rb.poll(opts.poll_interval) {
                if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                    return Err(anyhow::anyhow!("polling the ring buffers: {e}"));
                }
            }
            let now = Instant::now();
            pipeline.borrow_mut().tick(now);
            if now.duration_since(last_status) >= Duration::from_secs(1) {
                let secs = now.duration_since(last_status).as_secs_f64();
                last_status = now;
                let p = pipeline.borrow();
                publish_drops(probes, &p, &mut last_drops);
                if opts.status {
                    let _ = write!(stderr, "{}", status_line(probes, &p, &mut prev, secs, started));
                    let _ = stderr.flush();
                }
            }
            if opts.duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
        }
        // Drain what is already in the rings, then take the final counters.
        let _ = rb.consume();
        publish_drops(probes, &pipeline.borrow(), &mut last_drops);
        if opts.status {
            let _ = writeln!(stderr);
        }
    }
    Ok(pipeline.into_inner().finish())
}
