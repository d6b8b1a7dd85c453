//! The reader: waits on every probe's ring buffers and hands each record, as a slice into
//! the mmap'd ring, to the pipeline's decoder, each probe's rings merged in time order
//! ([`crate::ring`]). No copy, no allocation per event.
//!
//! The kernel side wakes the reader only when enough bytes are waiting; the poll timeout
//! bounds how long a quiet probe's records wait. After each poll: time-driven batching,
//! kernel drop counters (one map read per probe), and the status line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use capture_schemas::abi::{DROP_CAUSES, DROP_RINGBUF_FULL};
use libbpf_rs::MapCore;
use std::os::fd::AsFd;

use crate::host;
use crate::loader::LiveProbe;
use crate::pipeline::{Pipeline, Summary};
use crate::ring::{Poller, Ring, RingSet};
use crate::stats::Snapshot;
use crate::units::human_bytes;

/// How far behind the clock a pass stops. The probes stamp records with the kernel's
/// NMI-safe copy of CLOCK_BOOTTIME and the reader reads the ordinary one; they agree to far
/// better than this, so a close stamped before the pass time still has its open in a ring.
const CLOCK_MARGIN_NS: u64 = 1_000_000;

pub struct ReadOptions {
    /// Longest a record waits in a ring buffer that has not reached its wake-up threshold.
    pub poll_interval: Duration,
    /// Stop after this long (None: until signalled).
    pub duration: Option<Duration>,
    /// Show a live status line on stderr.
    pub status: bool,
    /// How often the probes' interval iterators run (the net probe's interim rows).
    pub flow_interval: Duration,
    /// Iterator runs created at start (probe, program, run), read first, in order.
    pub at_start: Vec<IterRun>,
}

/// One run of a probe's iterator: the probe's and the program's names, and the run.
pub type IterRun = (&'static str, &'static str, libbpf_rs::Iter);

/// Reads iterator runs to their end, in order, on a thread of their own.
fn spawn_iters(runs: Vec<IterRun>) -> Option<std::thread::JoinHandle<()>> {
    if runs.is_empty() {
        return None;
    }
    let spawned = std::thread::Builder::new().name("iterators".into()).spawn(move || {
        for (probe, name, it) in runs {
            if let Err(e) = crate::loader::read_iter(it) {
                log::warn!("{probe} probe: {name} failed: {e}");
            }
        }
    });
    spawned.map_err(|e| log::warn!("starting the iterator thread: {e}")).ok()
}

/// Starts every probe's interval iterators (`ProbeSpec::each_interval`) on a thread of
/// their own: their records arrive through the rings like any other, and the reader
/// drains the rings meanwhile (a walk over more flows than a ring holds would overflow it
/// otherwise). The iterators are created here (a bpf(2) call each, with the privileges
/// the reader has), then read there.
fn start_interval_iters(probes: &[LiveProbe], at_end: bool) -> Option<std::thread::JoinHandle<()>> {
    let mut runs = Vec::new();
    for p in probes {
        let spec = p.probe.spec();
        let extra = if at_end { spec.at_end } else { &[] };
        for &name in spec.each_interval.iter().chain(extra) {
            match p.iter(name) {
                Ok(Some(it)) => runs.push((p.probe.name(), name, it)),
                Ok(None) => {}
                Err(e) => log::warn!("{} probe: starting {name}: {e}", p.probe.name()),
            }
        }
    }
    spawn_iters(runs)
}

/// A probe's kernel drop counts as last read.
#[derive(Clone, Default)]
struct KernelDrops {
    causes: [u64; DROP_CAUSES],
    /// The programs' recursion misses at the last reading, taken by a spare or not.
    misses: u64,
    /// Of the misses, those counted lost so far.
    lost: u64,
}

/// Feeds the kernel drop counters into the pipeline's health counters: the probes' own
/// counts by cause, and the records the kernel's recursion guard skipped (kernel, other).
/// A skipped call is counted lost once its spares have had till the next reading to take
/// it: a spare runs right after its program proper, in the same call, but a task
/// preempted in between takes it later, and counting it lost at the first reading made
/// a run with every call taken report drops (3 in one run on 7.2). `settled`: the
/// programs are detached, so every spare has run and all the misses count.
fn publish_drops(probes: &[LiveProbe], pipeline: &Pipeline, last: &mut [KernelDrops], settled: bool) {
    for (p, last) in probes.iter().zip(last.iter_mut()) {
        let d = p.drops();
        let h = pipeline.health().probe(p.probe);
        let taken = p.nested_taken();
        let misses = p.recursion_misses_total();
        let lost = if settled { misses } else { last.misses }.saturating_sub(taken);
        last.misses = misses;
        if lost > last.lost {
            h.dropped_kernel_other.fetch_add(lost - last.lost, Ordering::Relaxed);
            last.lost = lost;
        }
        for (cause, (&now, prev)) in d.dropped.iter().zip(last.causes.iter_mut()).enumerate() {
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
    let u = &pipeline.health().upload;
    let upload = if u.is_enabled() {
        let now_us = crate::host::realtime_ns() / 1000;
        format!(
            "  upload {} waiting, lag {}s, {} sent, {} failed",
            u.pending.load(std::sync::atomic::Ordering::Relaxed),
            u.lag_ms(now_us) / 1000,
            human_bytes(u.bytes.load(std::sync::atomic::Ordering::Relaxed)),
            u.failures.load(std::sync::atomic::Ordering::Relaxed)
        )
    } else {
        String::new()
    };
    format!(
        "\r\x1b[2K{}s  {}  drops {}  {} in {} segments{upload}",
        started.elapsed().as_secs(),
        parts.join("  "),
        dropped,
        human_bytes(bytes),
        segments
    )
}

/// Reads until `stop` is set or the duration is up, then flushes everything.
pub fn run(
    probes: &mut [LiveProbe],
    mut pipeline: Pipeline,
    stop: &AtomicBool,
    opts: ReadOptions,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut sets = Vec::with_capacity(probes.len());
    for p in probes.iter() {
        let rings = p
            .rings
            .iter()
            .map(|m| Ring::map(m.as_fd(), m.max_entries()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| anyhow::anyhow!("mapping the {} probe's ring buffers: {e}", p.probe.name()))?;
        sets.push((p.probe, RingSet::new(rings)));
    }
    let poller = Poller::new(probes.iter().flat_map(|p| p.rings.iter().map(|m| m.as_fd())))
        .map_err(|e| anyhow::anyhow!("waiting on the ring buffers (epoll): {e}"))?;
    // One pass over every ring: records stamped before the clock (read per probe, just
    // before its rings are looked at), in time order per probe. True if a record was still
    // being written.
    let mut drain = |pipeline: &mut Pipeline, everything: bool| {
        let mut busy = false;
        for (probe, set) in &mut sets {
            let clock = || {
                if everything {
                    u64::MAX
                } else {
                    (host::boottime_ns().max(0) as u64).saturating_sub(CLOCK_MARGIN_NS)
                }
            };
            let pass = set.consume(clock, |rec| {
                // Malformed records are counted by the decoder; nothing to do here.
                let _ = pipeline.push(*probe, rec);
            });
            busy |= pass.busy;
        }
        busy
    };
    let mut last_drops = vec![KernelDrops::default(); probes.len()];
    let mut prev = vec![Snapshot::default(); probes.len()];
    let mut last_status = Instant::now();
    let mut last_flows = Instant::now();
    let mut iterating = spawn_iters(opts.at_start);
    let mut stderr = std::io::stderr();
    while !stop.load(Ordering::Relaxed) {
        poller.wait(opts.poll_interval).map_err(|e| anyhow::anyhow!("polling the ring buffers: {e}"))?;
        drain(&mut pipeline, false);
        let now = Instant::now();
        pipeline.tick(now);
        // One walk at a time: a walk still running at the next interval delays the next.
        if now.duration_since(last_flows) >= opts.flow_interval && iterating.as_ref().is_none_or(|h| h.is_finished()) {
            last_flows = now;
            iterating = start_interval_iters(probes, false);
        }
        if now.duration_since(last_status) >= Duration::from_secs(1) {
            let secs = now.duration_since(last_status).as_secs_f64();
            last_status = now;
            publish_drops(probes, &pipeline, &mut last_drops, false);
            if opts.status {
                let _ = write!(stderr, "{}", status_line(probes, &pipeline, &mut prev, secs, started));
                let _ = stderr.flush();
            }
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    // Flows still open get a last interim row with their final counters, and files still
    // open a row with their sums (`ProbeSpec::at_end`), drained as they come. Then detach
    // the programs, and take everything left in the rings (a record the kernel was still
    // writing is finished within microseconds), then the final counters.
    if let Some(h) = iterating.take() {
        let _ = h.join();
    }
    if let Some(h) = start_interval_iters(probes, true) {
        while !h.is_finished() {
            poller.wait(Duration::from_millis(10)).map_err(|e| anyhow::anyhow!("polling the ring buffers: {e}"))?;
            drain(&mut pipeline, false);
        }
        let _ = h.join();
    }
    for p in probes.iter_mut() {
        p.detach();
    }
    for _ in 0..1000 {
        if !drain(&mut pipeline, true) {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    publish_drops(probes, &pipeline, &mut last_drops, true);
    if opts.status {
        let _ = writeln!(stderr);
    }
    Ok(pipeline.finish())
}
