//! The one source of truth shared by the recorder and `capq`: the event ABI mirrored from
//! `bpf/events.h` ([`abi`]), the probes ([`probes`]) and every table ([`tables`]).

pub mod abi;
pub mod layout;
pub mod probes;
pub mod remote;
pub mod tables;

pub use probes::{Probe, ProbeSpec, PROBES};
pub use tables::{Table, SCHEMA_VERSION};
