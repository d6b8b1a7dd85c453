//! Writes a synthetic capture with every table, through the real pipeline.
//!
//! cargo run --release -p agent-linux --example synth_capture -- OUT_DIR [EVENTS] [SEED] [HOST]
//!
//! HOST (default `synthetic-host`) names the `host=` partition: runs with other hosts into
//! one directory make a fleet's tree.

use agent_linux::abi;
use agent_linux::batcher::BatchConfig;
use agent_linux::host::HostInfo;
use agent_linux::pipeline::Pipeline;
use agent_linux::segment::WriterConfig;
use agent_linux::synth::Synth;
use agent_linux::writer::WritersConfig;
use agent_linux::Probe;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: synth_capture OUT_DIR [EVENTS] [SEED] [HOST]");
        std::process::exit(2);
    };
    let events: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let name = args.get(4).map_or("synthetic-host", String::as_str);
    let host = HostInfo::fixed(name, "5e1f0000-0000-4000-8000-000000000001");
    let mut batch = BatchConfig::new(host.boot_seed);
    batch.batch_rows = 4096;
    let mut p = Pipeline::start(WriterConfig::new(out, host), &WritersConfig::default(), batch).unwrap_or_else(|e| {
        eprintln!("synth_capture: {e}");
        std::process::exit(1);
    });
    let mut s = Synth::new(seed);
    let mut rec = Vec::with_capacity(4096);
    // A mix like a busy build machine's: file operations dominate.
    let mix: [(abi::Kind, Probe, u64); 6] = [
        (abi::Kind::File, Probe::File, 80),
        (abi::Kind::Net, Probe::Net, 8),
        (abi::Kind::Dns, Probe::Dns, 5),
        (abi::Kind::Exec, Probe::Exec, 4),
        (abi::Kind::Exit, Probe::Exec, 3),
        (abi::Kind::Module, Probe::Module, 0),
    ];
    for i in 0..events {
        let roll = s.rng.below(100);
        let mut acc = 0;
        let &(kind, probe, _) = mix
            .iter()
            .find(|(_, _, pct)| {
                acc += pct;
                roll < acc
            })
            .unwrap_or(&mix[0]);
        let (kind, probe) = if i % 5000 == 0 { (abi::Kind::Module, Probe::Module) } else { (kind, probe) };
        rec.clear();
        s.record(kind, &mut rec);
        p.push(probe, &rec).expect("synthetic records decode");
    }
    let summary = p.finish();
    println!(
        "{} events, {} rows written, {} segments, {} bytes",
        summary.totals.events, summary.totals.rows_written, summary.totals.segments, summary.totals.bytes_written
    );
}
