//! `capture_linux_rotating`: the recorder's command line and its run.
//!
//! Order of work: parse → open the capture directory (lock, scan, writers) → load and
//! attach each probe (a probe this kernel cannot run is one warning) → rows for the
//! processes already running → drop every capability → read until SIGINT, SIGTERM or
//! `--duration` → flush every segment → exit 0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use capture_schemas::Probe;
use clap::Parser;

use crate::batcher::BatchConfig;
use crate::decode::{ArgvMode, EnvpMode};
use crate::host::{boottime_ns, HostInfo};
use crate::loader::{self, FileFloor, LiveProbe, LoadConfig, LoadError, SyscallHook};
use crate::pipeline::Pipeline;
use crate::reader::{self, ReadOptions};
use crate::segment::{Compression, JournalMode, WriterConfig};
use crate::units::{human_bytes, parse_duration, parse_size};
#[cfg(feature = "upload")]
use crate::upload::{UploadConfig, Uploader};
use crate::writer::{Backpressure, WritersConfig};
use crate::{privs, procfs};
#[cfg(feature = "upload")]
use capture_schemas::remote::S3Url;

/// Output format of the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Rotating Parquet segments, one table per probe (the only format).
    Parquet,
}

const EXAMPLES: &str = "\
EXAMPLES:
  sudo capture_linux_rotating                                  # every probe into ./capture
  sudo capture_linux_rotating --probes exec --duration 10m --output-dir /var/lib/capture
  sudo capture_linux_rotating --probes net,dns --flow-interval 10s
  capture_linux_rotating --list-probes                         # what this kernel can run
  sudo capture_linux_rotating --comm make --comm cc1 --envp none
  sudo capture_linux_rotating --max-total-bytes 20GiB --max-age 7d --compression zstd
  sudo AWS_PROFILE=fleet capture_linux_rotating --upload s3://telemetry/capture   # ship segments
  capq --dir ./capture \"SELECT comm, count(*) FROM exec GROUP BY comm\"

Privileges: root, or the binary with capabilities:
  sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_sys_resource,cap_sys_nice+ep capture_linux_rotating
Logging: RUST_LOG=debug shows each load step and libbpf's messages.
Exit status: 0 stopped (SIGINT, SIGTERM, --duration) with every segment written, 1 error,
2 usage error, 3 stopped but some segments could not be written (disk full...: their rows
are lost; the last lines say how many).";

/// The recorder stopped, but this many segments could not be written: exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("{0} segments could not be written (see the errors above): their rows are lost")]
pub struct SegmentsLost(pub u64);

/// Records kernel telemetry (eBPF) into rotating Parquet segments.
#[derive(Debug, Parser)]
#[command(name = "capture_linux_rotating", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Capture directory; tables go in its subdirectories.
    #[arg(long, short = 'o', default_value = "./capture")]
    pub output_dir: PathBuf,
    /// Probes to run, comma-separated: exec, file, net, dns, module (--list-probes says
    /// what each records and whether this kernel can run it). A probe this kernel cannot
    /// run is reported in one line and the others run.
    #[arg(long, value_delimiter = ',', default_value = "exec,file,net,dns,module")]
    pub probes: Vec<String>,
    /// Print each probe, its hooks and whether this kernel has them, then exit.
    #[arg(long)]
    pub list_probes: bool,
    /// Stop after this long (e.g. 30s, 10m, 2h); default: until SIGINT or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Parquet compression.
    #[arg(long, value_enum, default_value_t = Compression::Zstd)]
    pub compression: Compression,
    /// Rotate a segment at this size (bytes written plus buffered).
    #[arg(long, value_parser = parse_size, default_value = "128MiB")]
    pub max_segment_bytes: u64,
    /// Rotate a segment this long after it was opened.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub max_segment_age: Duration,
    /// Rotate a segment after this many rows.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_segment_rows: u64,
    /// Rows per Parquet row group (1024 to 1048576). Larger groups compress better and
    /// scan faster; each open segment holds its group being filled in memory.
    #[arg(long, default_value_t = 128 * 1024, value_parser = clap::value_parser!(u32).range(1024..=1 << 20))]
    pub row_group_rows: u32,
    /// Delete the oldest segments when the capture holds more than this.
    #[arg(long, value_parser = parse_size)]
    pub max_total_bytes: Option<u64>,
    /// Delete segments older than this.
    #[arg(long, value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Only this process id (filtered in the kernel); it must be running at start.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
    /// Only these command names (repeatable; filtered in the kernel).
    #[arg(long)]
    pub comm: Vec<String>,
    /// file: do not record paths under these prefixes (repeatable; at most 8 of 64 bytes).
    #[arg(long, default_values = ["/proc", "/sys"])]
    pub exclude_path_prefix: Vec<String>,
    /// exec: environment values: full, redacted (values of secret-looking names and
    /// passwords in URLs), or none.
    #[arg(long, value_enum, default_value_t = EnvpMode::Redacted)]
    pub envp: EnvpMode,
    /// exec: arguments: full, or redacted (NAME=value with a secret-looking NAME, the
    /// value after a password flag such as --password, passwords in URLs).
    #[arg(long, value_enum, default_value_t = ArgvMode::Redacted)]
    pub argv: ArgvMode,
    /// exec: bytes of argv, and of envp, read per exec (32KiB to 128KiB).
    #[arg(long, value_parser = parse_size, default_value = "32KiB")]
    pub argv_max_bytes: u64,
    /// file: also one row per read(2)/write(2) call on recorded files.
    #[arg(long)]
    pub file_rw_events: bool,
    /// file and module: the hook for the syscalls they record. auto: fexit on each
    /// syscall's wrapper where the kernel lets it load (no program runs on other syscalls),
    /// else the tp_btf/sys_exit raw tracepoint (every syscall passes it); RUST_LOG=info and
    /// --list-probes say which, and why.
    #[arg(long, value_enum, default_value_t = SyscallHook::Auto)]
    pub syscall_hook: SyscallHook,
    /// net: an open connection gets an update row (its counters so far) this often.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub flow_interval: Duration,
    /// dns: also treat this port as DNS (repeatable; 53 always is).
    #[arg(long = "dns-port", value_parser = clap::value_parser!(u16).range(1..))]
    pub dns_ports: Vec<u16>,
    /// Interval of the rows in the stats table.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub stats_interval: Duration,
    /// Size of each ring buffer (a power of two). Each probe has one per online CPU, rounded
    /// down to a power of two, at most 8 (CPUs share them past that): at the default, 16MiB
    /// per probe on 2 CPUs, 64MiB on 8 or more.
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    pub ringbuf_size: u64,
    /// The kernel wakes the reader by the time this much is waiting in a probe's ring
    /// buffers (each CPU after writing its share of it, at least 16KiB); at most half of
    /// --ringbuf-size is used.
    #[arg(long, value_parser = parse_size, default_value = "2MiB")]
    pub wakeup_bytes: u64,
    /// Longest a record waits in a ring buffer before the reader looks anyway.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub poll_interval: Duration,
    /// Rows per batch handed to the writers.
    #[arg(long, default_value_t = 16 * 1024)]
    pub batch_rows: usize,
    /// The longest an event waits in the recorder's memory: older events are in the kernel,
    /// in their segment's row groups or its journal, so a SIGKILL loses at most this (at
    /// least twice --poll-interval).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub flush_interval: Duration,
    /// The crash journal beside each open segment: the rows not yet in a row group in the
    /// file go to it by --flush-interval and are synced every 250 ms, and the next start
    /// publishes what a SIGKILL or a power cut left. `off` loses each table's open segment
    /// (up to --max-segment-age).
    #[arg(long, value_enum, default_value_t = JournalMode::Plain)]
    pub journal: JournalMode,
    /// Segment writer threads (1 to 16: one table's segments are written by one thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub writer_threads: u16,
    /// Memory for batches waiting for each writer thread (their Arrow size): a burst the
    /// writers cannot keep up with waits here instead of filling the ring buffers. Past it,
    /// --backpressure applies. (Batches already written wait apart for the crash journal,
    /// up to 64 MiB a table: README, On disk.)
    #[arg(long, value_parser = parse_size, default_value = "64MiB")]
    pub writer_queue: u64,
    /// When the writers' queue is full: block (the ring buffers absorb it, drops are
    /// counted there) or drop batches (counted in stats).
    #[arg(long, value_enum, default_value_t = Backpressure::Block)]
    pub backpressure: Backpressure,
    /// Added to the reader thread's niceness, as nice(1) does (-39 to 39; 0 leaves it).
    /// Below 0 the reader runs ahead of the processes it records, so a machine busy on every
    /// CPU does not starve it into letting the ring buffers overflow (as auditd's
    /// priority_boost does); needs CAP_SYS_NICE. The writer threads keep the priority the
    /// recorder was started with.
    #[arg(long, default_value_t = -5, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-39..=39))]
    pub nice: i32,
    /// Ship each published segment to S3-compatible object storage: s3://BUCKET/PREFIX.
    /// Keys mirror the capture tree (PREFIX/TABLE/host=NAME/dt=.../hr=.../SEGMENT), so one
    /// prefix holds a fleet. Credentials, region and endpoint as the AWS tools take them:
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
    /// AWS_ENDPOINT_URL (an S3-compatible server), AWS_PROFILE with ~/.aws/credentials and
    /// ~/.aws/config. Segments go in publish order, from a thread of their own; the local
    /// copy is removed once the store confirms it. What is not uploaded waits in
    /// --output-dir and is retried, across restarts. Needs a build with feature `upload`
    /// (`cargo build --release -p agent-linux --features with-ebpf-load,upload`).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub upload: Option<String>,
    /// With --upload: keep each segment locally once uploaded (retention still applies).
    #[arg(long, requires = "upload")]
    pub keep_local: bool,
    /// With --upload: at stop, how long to go on uploading what waits before exiting (the
    /// rest goes at the next start).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub upload_drain: Duration,
    /// No status line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

fn probes_of(names: &[String]) -> anyhow::Result<Vec<Probe>> {
    let mut out = Vec::new();
    for n in names {
        let p = Probe::from_name(n.trim())
            .with_context(|| format!("unknown probe '{n}': the probes are {}", Probe::names()))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("--probes is empty: name at least one of {}", Probe::names());
    }
    Ok(out)
}

/// `--list-probes`: one line per probe and per hook, with what this kernel has; for a probe
/// that records syscalls, which hook takes them here (tried by loading it).
fn list_probes(syscall_hook: SyscallHook) {
    for p in Probe::ALL {
        let spec = p.spec();
        match loader::hook_report(p) {
            Ok(hooks) => {
                println!("{:<7} ready        {}", spec.name, spec.summary);
                for (h, present) in hooks {
                    let state = match (present, h.optional) {
                        (true, _) => "ok",
                        (false, true) => "absent (optional: runs without it)",
                        (false, false) => "absent",
                    };
                    println!("        {:<40} {state}", h.section);
                }
                match loader::syscall_hook_choice(p, syscall_hook) {
                    Some(Ok(how)) => println!("        syscalls: {how}"),
                    Some(Err(e)) => println!("        syscalls: cannot load here: {e}"),
                    None => {}
                }
            }
            Err(why) => println!("{:<7} unavailable  {why}", spec.name),
        }
    }
}

/// Runs the recorder; returns when it has stopped and flushed.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.list_probes {
        loader::init_logging();
        list_probes(cli.syscall_hook);
        return Ok(());
    }
    let wanted = probes_of(&cli.probes)?;
    if let Some(pid) = cli.pid {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("--pid {pid}: no such process is running (it must be running when the recorder starts; --comm NAME follows a program by name)");
        }
    }
    if let Some(c) = cli.comm.iter().find(|c| c.is_empty() || c.contains('\0')) {
        bail!("--comm {c:?}: a command name is 1 to 15 bytes with no NUL (as in /proc/PID/comm)");
    }
    if cli.flow_interval < Duration::from_secs(1) {
        bail!("--flow-interval {:?}: must be at least 1s", cli.flow_interval);
    }
    if cli.dns_ports.len() >= capture_schemas::abi::DNS_PORTS_MAX {
        bail!("--dns-port: at most {} ports besides 53", capture_schemas::abi::DNS_PORTS_MAX - 1);
    }
    if !(32 << 10..=128 << 10).contains(&cli.argv_max_bytes) {
        bail!("--argv-max-bytes {}: must be between 32KiB and 128KiB", human_bytes(cli.argv_max_bytes));
    }
    if !cli.ringbuf_size.is_power_of_two() || cli.ringbuf_size < 4096 || cli.ringbuf_size > 1 << 30 {
        bail!("--ringbuf-size {}: must be a power of two between 4KiB and 1GiB", human_bytes(cli.ringbuf_size));
    }
    if cli.poll_interval < Duration::from_millis(1) {
        bail!("--poll-interval {:?}: must be at least 1ms", cli.poll_interval);
    }
    if cli.flush_interval < 2 * cli.poll_interval {
        bail!(
            "--flush-interval {:?}: must be at least twice --poll-interval ({:?}): an event waits up to one poll interval in the ring buffer and one more for the tick that cuts its batch",
            cli.flush_interval,
            cli.poll_interval
        );
    }
    if cli.exclude_path_prefix.len() > loader::PREFIXES_MAX
        || cli.exclude_path_prefix.iter().any(|p| p.len() > loader::PREFIX_MAX)
    {
        bail!(
            "--exclude-path-prefix: at most {} prefixes of at most {} bytes",
            loader::PREFIXES_MAX,
            loader::PREFIX_MAX
        );
    }
    #[cfg(not(feature = "upload"))]
    if let Some(u) = &cli.upload {
        bail!(
            "--upload {u}: this capture_linux_rotating was built without uploads; rebuild it with \
             `cargo build --release -p agent-linux --features with-ebpf-load,upload`"
        );
    }
    // The capture directory's checks before any probe loads: a refusal is its one line.
    crate::writer::prepare_dir(&cli.output_dir)
        .with_context(|| format!("output directory {}", cli.output_dir.display()))?;
    crate::retention::check_lock_path(&cli.output_dir)?;
    loader::init_logging();
    let host = HostInfo::current();
    let mut wc = WriterConfig::new(&cli.output_dir, host.clone());
    wc.compression = cli.compression;
    wc.journal = cli.journal;
    wc.max_segment_bytes = cli.max_segment_bytes;
    wc.max_segment_age = cli.max_segment_age;
    wc.max_segment_rows = cli.max_segment_rows;
    wc.row_group_rows = cli.row_group_rows as usize;
    #[cfg(feature = "upload")]
    let mut uploader = match &cli.upload {
        Some(u) => {
            let url = S3Url::parse(u)
                .map_err(|e| anyhow::anyhow!("--upload {e}"))?
                .with_context(|| format!("--upload {u}: not an object-store URL; write s3://BUCKET/PREFIX"))?;
            let up = Uploader::new(UploadConfig {
                url,
                dir: cli.output_dir.clone(),
                keep_local: cli.keep_local,
                host: host.host.clone(),
            })
            .map_err(|e| anyhow::anyhow!("--upload {e}"))?;
            wc.published = Some(up.sender());
            Some(up)
        }
        None => None,
    };
    let writers = WritersConfig {
        threads: usize::from(cli.writer_threads),
        queue_bytes: cli.writer_queue,
        max_total_bytes: cli.max_total_bytes,
        max_age: cli.max_age,
    };

    let cfg = LoadConfig {
        self_tgid: std::process::id(),
        filter_pid: cli.pid.unwrap_or(0),
        comms: cli.comm.clone(),
        exclude_prefixes: cli.exclude_path_prefix.clone(),
        args_max: cli.argv_max_bytes as u32,
        file_rw_events: cli.file_rw_events,
        file_floor: bench_file_floor()?,
        syscall_hook: cli.syscall_hook,
        dns_ports: std::iter::once(53).chain(cli.dns_ports.iter().copied().filter(|&p| p != 53)).collect(),
        ringbuf_bytes: cli.ringbuf_size as u32,
        wakeup_bytes: cli.wakeup_bytes.min(cli.ringbuf_size / 2),
    };
    match cfg.file_floor {
        FileFloor::Off => {}
        FileFloor::Hook => log::warn!("{FILE_FLOOR_ENV}=hook: the file probe records nothing (a benchmark floor, not a capture)"),
        FileFloor::Records => log::warn!("{FILE_FLOOR_ENV}=records: the file probe records only the time, process and fd of opens and closes (a benchmark floor, not a capture)"),
    }
    let mut live = Vec::new();
    for (p, loaded) in loader::load_all(&wanted, &cfg) {
        match loaded {
            Ok(lp) => {
                log::debug!("{} probe attached", p.name());
                live.push(lp);
            }
            Err(e @ LoadError::Unavailable { .. }) => log::warn!("{e}"),
            // A kernel whose verifier refuses a program the others have taken: the other
            // probes run (as where a hook is missing), and the log is kept for a report.
            Err(LoadError::Verifier { probe, log, .. }) => {
                log::debug!("{probe} probe: the verifier's log:\n{log}");
                log::warn!(
                    "{probe} probe unavailable: {} (this kernel's verifier refuses it: please report it with the log that RUST_LOG=debug prints)",
                    loader::verifier_verdict(&log)
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    if live.is_empty() {
        bail!("no probe could run on this kernel (see the warnings above)");
    }
    let running: Vec<Probe> = live.iter().map(|l| l.probe).collect();

    let mut batch = BatchConfig::new(host.boot_seed);
    batch.batch_rows = cli.batch_rows.max(1);
    // The batcher's clock starts at the first tick that sees a table's rows: up to a poll
    // interval after the event, and the tick that cuts comes up to one more after it.
    batch.flush_interval = cli.flush_interval - 2 * cli.poll_interval;
    batch.stats_interval = cli.stats_interval;
    batch.backpressure = cli.backpressure;
    batch.envp = cli.envp;
    batch.argv = cli.argv;
    batch.probes = running.clone();
    let mut pipeline = Pipeline::start(wc, &writers, batch)
        .with_context(|| format!("capture directory {}", cli.output_dir.display()))?;
    // The reader (this thread) only: the writers, started above, keep the priority the
    // recorder was started with, and their queue absorbs what they cannot keep up with.
    if let Err(e) = privs::renice(cli.nice) {
        log::warn!("could not renice the reader by {} ({e}): give it CAP_SYS_NICE, or pass --nice 0", cli.nice);
    }
    let scan = pipeline.writers().scan_report();
    if scan.stale_temp_removed > 0 {
        // Those with a journal are recovered by the writers (`journal.rs`).
        log::warn!(
            "removed {} unfinished segments without a crash journal, left by a recorder that did not stop cleanly (with --journal off, or killed as it opened them): their rows are lost",
            scan.stale_temp_removed
        );
    }
    if scan.segments > 0 {
        log::info!(
            "{} existing segments ({}) under {}",
            scan.segments,
            human_bytes(scan.bytes),
            cli.output_dir.display()
        );
    }

    if running.contains(&Probe::Exec) {
        let mut recs = Vec::new();
        let n = procfs::scan(&mut recs, cfg.args_max as usize, boottime_ns() as u64, std::process::id());
        for r in &recs {
            let _ = pipeline.push(Probe::Exec, r);
        }
        log::debug!("{n} running processes read from /proc");
    }
    // Iterators that list what was there before the recorder (the net probe's open
    // connections and their owners): created while every privilege is still held, read by
    // the reader's iterator thread, in order, while it drains the rings.
    let mut at_start = Vec::new();
    for lp in &live {
        for &name in lp.probe.spec().at_start {
            match lp.iter(name) {
                Ok(Some(it)) => at_start.push((lp.probe.name(), name, it)),
                Ok(None) => {}
                Err(e) => log::warn!("{} probe: listing at start ({name}) failed: {e}", lp.probe.name()),
            }
        }
    }
    // A bpf(2) call on a map already open: the drop counters are read like this each second.
    let kept_bpf =
        privs::drop_capabilities(|| live[0].drops_readable()).context("dropping capabilities after attaching")?;
    if kept_bpf {
        log::info!("this kernel checks CAP_BPF on every bpf(2) call: keeping CAP_BPF, dropping the rest");
    }
    privs::install_stop_handlers().context("installing signal handlers")?;
    #[cfg(feature = "upload")]
    if let Some(up) = &mut uploader {
        up.start(pipeline.writers().retention().clone(), pipeline.health().clone())
            .with_context(|| format!("starting uploads from {}", cli.output_dir.display()))?;
    }
    let names: Vec<&str> = running.iter().map(|p| p.name()).collect();
    eprintln!(
        "capture_linux_rotating: recording {} into {}{}",
        names.join(","),
        cli.output_dir.display(),
        match cli.duration {
            Some(d) => format!(" for {}s", d.as_secs()),
            None => " (Ctrl-C or SIGTERM to stop)".into(),
        }
    );
    let status = !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let opts = ReadOptions {
        poll_interval: cli.poll_interval,
        duration: cli.duration,
        status,
        flow_interval: cli.flow_interval,
        at_start,
    };
    let summary = reader::run(&mut live, pipeline, &privs::STOP, opts)?;
    let t = summary.totals;
    eprintln!(
        "capture_linux_rotating: stopped: {} events, {} rows in {} segments ({}), {} dropped, {} malformed",
        t.events,
        t.rows_written,
        t.segments,
        human_bytes(t.bytes_written),
        t.dropped(),
        t.malformed
    );
    if t.dropped() > 0 {
        eprintln!(
            "capture_linux_rotating: dropped: {} ring buffer full, {} kernel other, {} back-pressure, {} write errors",
            t.dropped_ringbuf_full, t.dropped_kernel_other, t.dropped_backpressure, t.dropped_write_error
        );
    }
    let r = summary.reused_closes;
    if r.reused > 0 {
        eprintln!(
            "capture_linux_rotating: file probe: closes written by an open that reused the file's struct before the close was seen: {}, named by their closer's own record: {} (the rest are under the reusing process: README, Known gaps)",
            r.reused, r.named
        );
    }
    for lp in &live {
        let taken = lp.nested_taken();
        if taken > 0 {
            let skipped = lp.recursion_misses_by_program();
            let total: u64 = skipped.iter().map(|(_, n)| n).sum();
            let by: Vec<String> = skipped.iter().map(|(name, n)| format!("{name} {n}")).collect();
            eprintln!(
                "capture_linux_rotating: {} probe: its spare programs took {taken} of the {total} calls the kernel's recursion guard skipped in the programs proper ({})",
                lp.probe.name(),
                by.join(", ")
            );
        }
    }
    if t.dropped_kernel_other > 0 {
        for lp in &live {
            if let Some(line) = kernel_other_line(lp) {
                eprintln!("capture_linux_rotating: {line}");
            }
        }
    }
    #[cfg(feature = "upload")]
    if let Some(up) = uploader {
        let u = up.finish(cli.upload_drain);
        eprintln!(
            "capture_linux_rotating: uploaded {} segments ({}) to {}, {} failed attempts, {} waiting for the next start",
            u.segments,
            human_bytes(u.bytes),
            cli.upload.as_deref().unwrap_or_default(),
            u.failures,
            u.pending
        );
    }
    if summary.write_errors > 0 {
        return Err(SegmentsLost(summary.write_errors).into());
    }
    Ok(())
}

/// What a probe's "kernel other" drops were, in one line (`None` when it had none): the
/// kernel reads that failed, the state maps that were full, and the programs whose runs
/// the kernel skipped because the same program was already running on that CPU (a
/// preempted or interrupted run; more likely on a preemptible kernel or a slow CPU).
fn kernel_other_line(lp: &LiveProbe) -> Option<String> {
    use capture_schemas::abi::{DROP_FILTER_MAP, DROP_READ_FAILED};
    let d = lp.drops();
    let skipped = lp.recursion_misses_by_program();
    let (reads, maps) = (d.dropped[DROP_READ_FAILED], d.dropped[DROP_FILTER_MAP]);
    if reads == 0 && maps == 0 && lp.recursion_misses() == 0 {
        return None;
    }
    let runs: Vec<String> = skipped.iter().map(|(name, n)| format!("{name} {n}")).collect();
    Some(format!(
        "{} probe, kernel other: {reads} failed kernel reads, {maps} full state maps, runs skipped by the kernel's recursion guard: {}",
        lp.probe.name(),
        if runs.is_empty() { "none".to_string() } else { runs.join(", ") }
    ))
}

/// Benchmarks only: `hook` or `records` cuts the file probe down to its floor (see
/// `floor_mode` in bpf/file_ops.bpf.c); `scripts/bench_live.py` measures both beside the
/// real probe.
const FILE_FLOOR_ENV: &str = "CAPTURE_BENCH_FILE_FLOOR";

fn bench_file_floor() -> anyhow::Result<FileFloor> {
    match std::env::var(FILE_FLOOR_ENV).as_deref() {
        Err(_) | Ok("") | Ok("off") => Ok(FileFloor::Off),
        Ok("hook") => Ok(FileFloor::Hook),
        Ok("records") => Ok(FileFloor::Records),
        Ok(v) => bail!("{FILE_FLOOR_ENV}={v:?}: use hook or records (benchmarks only), or unset it"),
    }
}
