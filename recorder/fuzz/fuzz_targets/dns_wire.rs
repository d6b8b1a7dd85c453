//! Fuzzes the DNS wire decoder with arbitrary messages, as the dns probe hands them over
//! (cut at 512 bytes): header, question and answers must never panic, loop or read past
//! the end, whatever the compression pointers, label lengths and counts say; and a record
//! carrying the message must decode into a valid row.
#![no_main]

use agent_linux::abi;
use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::dns_wire;
use agent_linux::synth;
use agent_linux::{Probe, Table};
use arrow_array::builder::{ArrayBuilder, Int64Builder, StringBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|msg: &[u8]| {
    let msg = &msg[..msg.len().min(abi::DNS_MSG_MAX)];
    let mut name = dns_wire::Name::new();
    let (mut data, mut names, mut types, mut ttls) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), Int64Builder::new());
    if let Some(h) = dns_wire::header(msg) {
        if let Some((_, _, at)) = dns_wire::question(msg, &mut name) {
            let sink = dns_wire::AnswerSink { data: &mut data, names: &mut names, types: &mut types, ttls: &mut ttls };
            dns_wire::answers(msg, at, h.ancount, sink, &mut name);
            // One item per record in every list, whatever the message holds.
            assert!(data.len() == names.len() && names.len() == types.len() && types.len() == ttls.len());
        }
    }
    let mut d = Decoder::new(4, 1, EnvpMode::Redacted);
    let mut x = abi::Dns::default();
    x.hdr.abi = abi::ABI_VERSION;
    x.ep.family = libc::AF_INET as u16;
    x.ep.proto = libc::IPPROTO_UDP as u8;
    x.ep.direction = abi::DIR_OUT;
    x.wire_len = msg.len() as u32;
    let mut rec = Vec::new();
    synth::dns_record(&mut rec, x, msg);
    assert_eq!(d.decode(Probe::Dns, &rec), Ok(Table::Dns));
    let b = d.builders.finish(Table::Dns, 0).expect("one row");
    assert_eq!(b.num_rows(), 1);
});
