//! The one source of truth shared by the recorder and `capq`: the event ABI mirrored from
//! `bpf/events.h` ([`abi`]) and the Arrow schema of every table ([`tables`]).

pub mod abi;
pub mod tables;

pub use tables::{Probe, Table, SCHEMA_VERSION};
