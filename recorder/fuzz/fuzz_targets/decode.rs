//! Fuzzes the decoder with raw records and with mutated synthetic ones.
//!
//! Input: byte 0 picks the mode. Even: the rest is a sequence of records, each prefixed by
//! a little-endian u16 length. Odd: byte 1 picks a kind and byte 2 a seed; a valid record
//! of that kind is generated, then patched by (u16 offset, u8 value) triples from the rest
//! and cut to the length in the last two bytes. Every table is then finished into a
//! RecordBatch, which checks the builders stayed consistent.
#![no_main]

use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::synth::Synth;
use agent_linux::abi::Kind;
use agent_linux::{Probe, Table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(64, 1, EnvpMode::Redacted);
    let probe = Probe::ALL[usize::from(data.first().copied().unwrap_or(0) / 2) % Probe::COUNT];
    match data {
        [mode, rest @ ..] if mode % 2 == 0 => {
            let mut rest = rest;
            while rest.len() >= 2 {
                let n = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
                let _ = d.decode(probe, &rest[2..2 + n]);
                rest = &rest[2 + n..];
            }
        }
        [_, kind, seed, patch @ ..] => {
            let mut rec = Vec::new();
            Synth::new(u64::from(*seed)).record(Kind::ALL[usize::from(*kind) % Kind::ALL.len()], &mut rec);
            let mut chunks = patch.chunks_exact(3);
            for c in &mut chunks {
                let at = usize::from(u16::from_le_bytes([c[0], c[1]]));
                if at < rec.len() {
                    rec[at] = c[2];
                }
            }
            if let [a, b] = chunks.remainder() {
                rec.truncate(usize::from(u16::from_le_bytes([*a, *b])));
            }
            let _ = d.decode(probe, &rec);
        }
        _ => {}
    }
    for t in Table::ALL {
        if let Some(b) = d.builders.finish(t, 0) {
            assert_eq!(b.num_rows(), b.column(0).len());
        }
    }
});
