//! What the segment tests share.

use std::path::{Path, PathBuf};

use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::host::HostInfo;
use agent_linux::synth::Synth;
use agent_linux::{Probe, Table};
use arrow_array::RecordBatch;

pub fn host() -> HostInfo {
    HostInfo::fixed("test-host", "00000000-0000-0000-0000-000000000001")
}

/// Every file under `p`, hidden ones included.
pub fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// `n` file rows decoded from synthetic records, with `ts` at `offset_ns` + ktime.
pub fn file_batch(synth: &mut Synth, n: usize, offset_ns: i64) -> RecordBatch {
    let mut d = Decoder::new(n, 1, EnvpMode::Redacted);
    let mut rec = Vec::new();
    for _ in 0..n {
        rec.clear();
        synth.file(&mut rec);
        d.decode(Probe::File, &rec).unwrap();
    }
    d.builders.finish(Table::File, offset_ns).unwrap()
}
