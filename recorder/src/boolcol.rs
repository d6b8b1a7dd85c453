//! Required BOOLEAN columns written as Parquet column chunks, without parquet's generic
//! column writer.
//!
//! A boolean page in data page v1 is PLAIN: one bit a row, least significant first, as an
//! Arrow bitmap holds them. parquet's writer takes them a value at a time
//! (`BooleanArray::value`, then its bit writer): for the file table's two flags
//! (`preexisting`, `mmap_write`) about 45 instructions a value, 3% of the pipeline's end
//! to end (callgrind, README). Here each batch's bits are copied into the page a word at a
//! time, and the pages end where parquet's writer ends them: after the mini-batch (of the
//! write batch size, counted from each batch's start) that brings the page to its row
//! limit.

use arrow_array::BooleanArray;
use arrow_buffer::BooleanBufferBuilder;
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, Type as PhysicalType};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnDescPtr;

use crate::intcol::{compress, compressor, Chunk, Done, MiniBatches};

/// Whether [`BoolColumn`] writes column `descr`, an Arrow `arrow` array, under `props`: a
/// required, not repeated BOOLEAN without statistics or a bloom filter, PLAIN (the only
/// encoding data page v1 has for it), compressed with zstd or not at all, without
/// content-defined chunks, and pages that fit the data page size limit.
pub fn handles(descr: &ColumnDescPtr, arrow: &DataType, props: &WriterProperties) -> bool {
    let path = descr.path();
    let rows = props.data_page_row_count_limit().max(1).saturating_add(props.write_batch_size().max(1));
    *arrow == DataType::Boolean
        && descr.physical_type() == PhysicalType::BOOLEAN
        && descr.max_def_level() == 0
        && descr.max_rep_level() == 0
        && matches!(props.encoding(path), None | Some(Encoding::PLAIN))
        && matches!(props.compression(path), Compression::ZSTD(_) | Compression::UNCOMPRESSED)
        && props.statistics_enabled(path) == EnabledStatistics::None
        && props.bloom_filter_properties(path).is_none()
        && props.writer_version() == WriterVersion::PARQUET_1_0
        && props.content_defined_chunking().is_none()
        && rows <= u32::MAX as usize
        // parquet's writer cuts a page whose bytes reach the limit: none of these does.
        && rows.div_ceil(8) < props.column_data_page_size_limit(path)
}

/// One column's chunk of the row group being written.
pub struct BoolColumn {
    descr: ColumnDescPtr,
    codec: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    offset_index: bool,
    batches: MiniBatches,
    /// The page being filled, a bit a row.
    page: BooleanBufferBuilder,
    pages: Vec<Done>,
    rows: usize,
}

impl BoolColumn {
    /// A column that [`handles`] accepts.
    pub fn new(descr: ColumnDescPtr, props: &WriterProperties) -> Result<BoolColumn> {
        let codec = props.compression(descr.path());
        Ok(BoolColumn {
            zstd: compressor(codec)?,
            codec,
            offset_index: !props.offset_index_disabled(),
            batches: MiniBatches::of(props),
            page: BooleanBufferBuilder::new(props.data_page_row_count_limit().min(1 << 20)),
            pages: Vec::new(),
            rows: 0,
            descr,
        })
    }

    /// Appends `values` (a required column: its null buffer, if any, is ignored, as
    /// parquet's writer ignores it).
    pub fn write(&mut self, values: &BooleanArray) -> Result<()> {
        let bits = values.values();
        self.rows += bits.len();
        let mut at = 0;
        while at < bits.len() {
            // Whole mini-batches while the page stays under its limit, then the one that
            // reaches it.
            let room = self.batches.limit.saturating_sub(self.page.len());
            let take = room.div_ceil(self.batches.size).max(1).saturating_mul(self.batches.size);
            let end = bits.len().min(at.saturating_add(take));
            self.page.append_buffer(&bits.slice(at, end - at));
            at = end;
            if self.page.len() >= self.batches.limit {
                self.flush_page()?;
            }
        }
        Ok(())
    }

    /// Compresses the page being filled, if it has rows.
    fn flush_page(&mut self) -> Result<()> {
        let rows = self.page.len();
        if rows == 0 {
            return Ok(());
        }
        let raw = self.page.as_slice();
        let buf = compress(&mut self.zstd, raw)?;
        self.pages.push(Done { buf, raw_len: raw.len(), rows, encoding: Encoding::PLAIN, value_bytes: 0 });
        self.page.truncate(0);
        Ok(())
    }

    /// The bytes of the chunk so far: its pages compressed, the page being filled as it is.
    pub fn estimated_bytes(&self) -> usize {
        self.pages.iter().map(|p| p.buf.len()).sum::<usize>() + self.page.len().div_ceil(8)
    }

    /// Writes the row group's chunk and starts the next one empty: the chunk's bytes, with
    /// offsets counted from their start, and what the row group needs to know of them.
    pub fn finish(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        self.flush_page()?;
        let chunk = Chunk {
            descr: &self.descr,
            codec: self.codec,
            dict: None,
            rows: self.rows,
            stats: None,
            bloom_filter: None,
            offset_index: self.offset_index,
            byte_array: false,
        };
        let out = chunk.write(&mut self.zstd, self.pages.drain(..))?;
        self.rows = 0;
        Ok(out)
    }
}
