//! Benchmark: synthetic records → decoder → batcher → Parquet segments, per table.
//!
//! Records are generated first into one buffer, laid out as in a BPF ring buffer (8-byte
//! aligned), so the timed part is exactly what the live reader does with them. Reports
//! events/s of wall time, events per CPU-second of the whole process (reader and writer
//! threads together: the "per core" figure), and bytes on disk per event.
//!
//! With `--rate`, records are handed over at that pace, as a live reader hands over what a
//! host makes (the batcher's and writers' time-driven work included); CPU time still counts
//! only work, not the waits.
//!
//! cargo run --release -p agent-linux --example bench_pipeline -- [--events N] [--rate N] [--compression zstd|snappy|lz4|none] [--tables file,exec,...] [--out DIR]

use std::time::{Duration, Instant};

use agent_linux::abi;
use agent_linux::batcher::BatchConfig;
use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::host::HostInfo;
use agent_linux::pipeline::Pipeline;
use agent_linux::segment::{Compression, JournalMode, WriterConfig};
use agent_linux::synth::Synth;
use agent_linux::writer::{list_segments, WritersConfig};
use agent_linux::{Probe, Table};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Events of the file table; other tables scale from it (exec records are large).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    #[arg(long, value_enum, default_value_t = Compression::Zstd)]
    compression: Compression,
    /// The crash journal (`--journal off` is the pipeline without it).
    #[arg(long, value_enum, default_value_t = JournalMode::Plain)]
    journal: JournalMode,
    #[arg(long, value_delimiter = ',', default_value = "file,exec,exit,net,dns,module")]
    tables: Vec<String>,
    /// Rows per batch handed to the writers.
    #[arg(long, default_value_t = 16 * 1024)]
    batch_rows: usize,
    /// Events per second of each table, handed over 1 ms at a time (default: as fast as
    /// the pipeline takes them).
    #[arg(long)]
    rate: Option<u64>,
    /// Where segments go (a temporary directory by default).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain integers; all-zero is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage to fill in.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Bytes this process has handed to write(2) so far (`wchar` of /proc/self/io).
fn bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("wchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = args.out.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    println!(
        "{:<7} {:>9} {:>8} {:>12} {:>8} {:>14} {:>12} {:>11} {:>9} {:>13}",
        "table",
        "events",
        "wall s",
        "events/s",
        "cpu s",
        "events/cpu-s",
        "decode-only/s",
        "bytes/event",
        "segments",
        "written/event"
    );
    for name in &args.tables {
        let (kind, probe, table, scale) = match name.as_str() {
            "file" => (abi::Kind::File, Probe::File, Table::File, 1),
            "exec" => (abi::Kind::Exec, Probe::Exec, Table::Exec, 20),
            "exit" => (abi::Kind::Exit, Probe::Exec, Table::Exit, 2),
            "net" => (abi::Kind::Net, Probe::Net, Table::Net, 2),
            "dns" => (abi::Kind::Dns, Probe::Dns, Table::Dns, 2),
            "module" => (abi::Kind::Module, Probe::Module, Table::Module, 20),
            other => {
                eprintln!("bench_pipeline: unknown table '{other}'");
                std::process::exit(2);
            }
        };
        let n = (args.events / scale).max(1);
        // Generate: one buffer, records 8-byte aligned as in the ring buffer.
        let mut s = Synth::new(7);
        let mut buf = Vec::with_capacity(n as usize * 200);
        let mut offsets = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let start = buf.len();
            s.record(kind, &mut buf);
            offsets.push((start, buf.len()));
            buf.resize(buf.len().next_multiple_of(8), 0);
        }
        let host = HostInfo::fixed("bench", "b");

        // Decode only: the reader's share of the work.
        let t0 = Instant::now();
        let mut d = Decoder::new(16 * 1024, 1, EnvpMode::Redacted);
        let mut rows = 0;
        for &(a, b) in &offsets {
            d.decode(probe, &buf[a..b]).expect("decodes");
            if d.builders.len(table) >= 16 * 1024 {
                rows += d.builders.finish(table, 0).map_or(0, |b| b.num_rows());
            }
        }
        rows += d.builders.finish(table, 0).map_or(0, |b| b.num_rows());
        assert_eq!(rows as u64, n);
        let decode_rate = n as f64 / t0.elapsed().as_secs_f64();

        // End to end.
        let dir = root.join(name);
        let mut wc = WriterConfig::new(&dir, host.clone());
        wc.compression = args.compression;
        wc.journal = args.journal;
        let mut bc = BatchConfig::new(host.boot_seed);
        bc.probes = vec![probe];
        bc.batch_rows = args.batch_rows;
        let cpu0 = cpu_seconds();
        let w0 = bytes_written();
        let t0 = Instant::now();
        let mut p = Pipeline::start(wc, &WritersConfig::default(), bc).expect("pipeline");
        match args.rate {
            None => {
                for &(a, b) in &offsets {
                    p.push(probe, &buf[a..b]).expect("decodes");
                }
            }
            Some(rate) => {
                // Each millisecond, the records due by then; the batcher's tick after each.
                let start = Instant::now();
                let mut next = 0usize;
                for ms in 1u64.. {
                    let due = ((rate * ms / 1000) as usize).min(offsets.len());
                    for &(a, b) in &offsets[next..due] {
                        p.push(probe, &buf[a..b]).expect("decodes");
                    }
                    next = due;
                    let at = start + Duration::from_millis(ms);
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    p.tick(Instant::now());
                    if next == offsets.len() {
                        break;
                    }
                }
            }
        }
        let summary = p.finish();
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let written = bytes_written() - w0;
        let segs = list_segments(&dir, table);
        let bytes: u64 = segs.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
        assert_eq!(summary.totals.rows_written, n);
        println!(
            "{:<7} {:>9} {:>8.2} {:>12.0} {:>8.2} {:>14.0} {:>12.0} {:>11.2} {:>9} {:>13.2}",
            name,
            n,
            wall,
            n as f64 / wall,
            cpu,
            n as f64 / cpu,
            decode_rate,
            bytes as f64 / n as f64,
            segs.len(),
            written as f64 / n as f64
        );
    }
}
