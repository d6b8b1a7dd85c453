//! The whole columnar path in one value: records in, published segments out.
//!
//! `push` records as the ring buffers hand them over, `tick` after each poll, `finish` at
//! the end. The live recorder, the tests and the benchmark all drive this same type.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use capture_schemas::{Probe, Table};

use crate::batcher::{BatchConfig, Batcher};
use crate::decode::{DecodeError, ReusedCloses};
use crate::segment::WriterConfig;
use crate::stats::{Health, Snapshot};
use crate::writer::{Writers, WritersConfig};

pub struct Pipeline {
    batcher: Batcher,
    writers: Writers,
    health: Arc<Health>,
}

/// What a finished pipeline did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub totals: Snapshot,
    pub write_errors: u64,
    pub reused_closes: ReusedCloses,
}

impl Pipeline {
    pub fn start(writer: WriterConfig, writers: &WritersConfig, batch: BatchConfig) -> io::Result<Pipeline> {
        let health = Health::new();
        let writers = Writers::start(writer, writers, health.clone())?;
        let batcher = Batcher::new(batch, writers.sink(), health.clone());
        Ok(Pipeline { batcher, writers, health })
    }

    #[inline]
    pub fn push(&mut self, probe: Probe, rec: &[u8]) -> Result<Table, DecodeError> {
        self.batcher.push(probe, rec)
    }

    pub fn tick(&mut self, now: Instant) {
        self.batcher.tick(now);
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn writers(&self) -> &Writers {
        &self.writers
    }

    /// Flushes every table, publishes every open segment and stops the writers; then
    /// writes the last `stats` interval, which counts those segments.
    pub fn finish(mut self) -> Summary {
        self.batcher.flush();
        let reused_closes = self.batcher.decoder.reused_closes();
        let Pipeline { batcher, writers, health } = self;
        // The batcher's queues close here: the writers see the end of their input.
        let write_errors = writers.finish(batcher.into_final_stats());
        Summary { totals: health.total(), write_errors, reused_closes }
    }
}
