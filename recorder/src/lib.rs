//! The recorder's library: from raw ring-buffer records to published Parquet segments.
//!
//! records ─▶ [`decode`] ─▶ [`builders`] ─▶ [`batcher`] ─▶ bounded channels ─▶ [`writer`]
//! threads ─▶ [`segment`] files ─▶ [`retention`]. [`pipeline`] assembles the chain;
//! [`stats`] counts what flows and what is lost; [`synth`] produces the exact bytes the
//! BPF probes write, for tests and benchmarks.

pub mod batcher;
pub mod boolcol;
pub mod builders;
#[cfg(feature = "with-ebpf-load")]
pub mod capture;
pub mod community_id;
pub mod decode;
pub mod dir;
pub mod dns_wire;
pub mod host;
pub mod intcol;
pub mod journal;
pub mod kernel;
#[cfg(feature = "with-ebpf-load")]
pub mod loader;
pub mod open_files;
pub mod pipeline;
pub mod pqfile;
pub mod preempt;
#[cfg(feature = "with-ebpf-load")]
pub mod privs;
pub mod procfs;
#[cfg(feature = "with-ebpf-load")]
pub mod reader;
pub mod redact;
pub mod retention;
#[cfg(feature = "with-ebpf-load")]
pub mod ring;
pub mod segment;
pub mod stats;
pub mod strcol;
pub mod strings;
pub mod synth;
pub mod units;
#[cfg(feature = "upload")]
pub mod upload;
pub mod writer;

pub use capture_schemas::{abi, Probe, Table, PROBES};
