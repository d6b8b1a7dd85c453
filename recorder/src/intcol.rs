//! Integer columns written as Parquet column chunks (dictionary-encoded, PLAIN or
//! delta-encoded), without parquet's generic column writer: required ones with or without
//! a dictionary, nullable ones without.
//!
//! That writer interns every value through a hash table of byte slices (`ahash`, then a
//! `memcmp` call) and pushes each dictionary index through its RLE encoder one value at a
//! time. For the file table its integer columns were about two thirds of the segment
//! writer's CPU (`perf`, `bench_pipeline --tables file`). Here a non-nullable INT32 or
//! INT64 column with a dictionary is interned in an open-addressing table keyed by the value
//! itself, each page's indices are bit-packed and compressed when the page is full, and the
//! finished chunk (dictionary page, data pages, offset index, statistics, bloom filter) goes
//! into the row group whole (`SerializedRowGroupWriter::append_column`). The encodings and
//! metadata are the ones parquet's writer makes for such a column, and so are the pages:
//! checked after each mini-batch of the write batch size, counted from each batch's start
//! ([`MiniBatches`]). The tests write both and compare.
//!
//! As in parquet's writer, once the dictionary reaches its page size limit the rest of the
//! chunk goes PLAIN (the pages before keep the dictionary). A column without a dictionary
//! is PLAIN throughout: parquet's writer spent 17 ns a row on the file table's `reads`
//! (its `ArrowColumnWriter`, levels and all, for 8 bytes copied). A nullable one (the file
//! table's `file_id` and `length`) has each page's definition levels packed in front of its
//! values, as parquet's writer packs them.

use std::io::Write;

use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, LogicalType, PageType, Type as PhysicalType};
use parquet::bloom_filter::Sbbf;
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, PageEncodingStats};
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// Whether [`IntColumn`] writes column `descr`, an Arrow `arrow` array, under `props`: a
/// not repeated Int32 or Int64 without a logical type, or a Timestamp; either required and
/// with a dictionary and no encoding of its own, or, required or nullable, without one and
/// PLAIN or (64-bit) DELTA_BINARY_PACKED; compressed with zstd or not at all, in data page
/// v1, without page statistics (no column index is made here) or content-defined chunks,
/// and pages that fit the data page size limit.
pub fn handles(descr: &ColumnDescPtr, arrow: &DataType, props: &WriterProperties) -> bool {
    let path = descr.path();
    let ok_type = match (arrow, descr.physical_type()) {
        (DataType::Int32, PhysicalType::INT32) | (DataType::Int64, PhysicalType::INT64) => {
            descr.logical_type_ref().is_none()
        }
        // The same i64 values and statistics; the logical type is the schema's alone.
        (DataType::Timestamp(..), PhysicalType::INT64) => {
            matches!(descr.logical_type_ref(), Some(LogicalType::Timestamp { .. }))
        }
        _ => false,
    };
    // A page's bytes at most, a row: PLAIN 8; DELTA_BINARY_PACKED 8 and its blocks' headers
    // (a varint and 4 widths a 256 rows).
    let mut row_bytes = 8;
    let ok_encoding = if props.dictionary_enabled(path) {
        props.encoding(path).is_none()
            // Nor does parquet's writer then cut a mini-batch by the dictionary's bytes left.
            && props.write_batch_size().saturating_mul(8) <= props.column_dictionary_page_size_limit(path)
    } else {
        match props.encoding(path) {
            None | Some(Encoding::PLAIN) => true,
            Some(Encoding::DELTA_BINARY_PACKED) => {
                row_bytes = 9;
                descr.physical_type() == PhysicalType::INT64
            }
            Some(_) => false,
        }
    };
    let nullable = descr.max_def_level() == 1;
    ok_type
        && ok_encoding
        && descr.max_def_level() <= 1
        && !(nullable && props.dictionary_enabled(path))
        && descr.max_rep_level() == 0
        && matches!(props.compression(path), Compression::ZSTD(_) | Compression::UNCOMPRESSED)
        && props.statistics_enabled(path) != EnabledStatistics::Page
        && props.writer_version() == WriterVersion::PARQUET_1_0
        && props.content_defined_chunking().is_none()
        && page_rows(props, nullable)
            .is_some_and(|rows| rows.saturating_mul(row_bytes) <= props.column_data_page_size_limit(path))
}

/// The most rows a data page can get: parquet's writer checks its row limit after each
/// mini-batch (of the write batch size; for a nullable column's batch whose levels are all
/// one value, of the row limit: see [`IntColumn::write`]), so a page ends at most a
/// mini-batch past the limit. `None` when that is out of range.
fn page_rows(props: &WriterProperties, nullable: bool) -> Option<usize> {
    let limit = props.data_page_row_count_limit().max(1);
    let batch = props.write_batch_size().max(1);
    let rows = limit.checked_add(if nullable { batch.max(limit) } else { batch })?;
    (rows <= u32::MAX as usize).then_some(rows)
}

/// Where parquet's writer checks its page and dictionary limits: after each mini-batch of
/// `size` rows, counted from the start of each batch written; a page ends at the first
/// check that finds `limit` rows or more in it.
#[derive(Clone, Copy)]
pub(crate) struct MiniBatches {
    pub size: usize,
    pub limit: usize,
}

impl MiniBatches {
    pub fn of(props: &WriterProperties) -> MiniBatches {
        MiniBatches { size: props.write_batch_size().max(1), limit: props.data_page_row_count_limit().max(1) }
    }
}

/// One empty slot of the interning table.
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    value: i64,
    index: u32,
}

/// A data page, encoded and compressed, waiting for the chunk to be written.
pub(crate) struct Done {
    pub buf: Bytes,
    pub raw_len: usize,
    pub rows: usize,
    pub encoding: Encoding,
    /// The bytes of its values, for BYTE_ARRAY columns (the offset index counts them).
    pub value_bytes: i64,
}

/// One column's chunk of the row group being written.
pub struct IntColumn {
    descr: ColumnDescPtr,
    wide: bool,
    codec: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    stats: bool,
    /// The bloom filter's false positive rate, and the distinct values it is sized for
    /// before it is folded (as parquet's writer sizes and folds it).
    bloom: Option<(f64, u64)>,
    offset_index: bool,
    batches: MiniBatches,
    dict_limit: usize,
    /// The column has a dictionary (until its limit); without one, every page is PLAIN, or
    /// with `delta` DELTA_BINARY_PACKED.
    dictionary: bool,
    delta: bool,
    /// Nullable (then without a dictionary): each page has definition levels.
    nullable: bool,
    /// Open addressing, linear probing; `len` a power of two, at most half full.
    slots: Vec<Slot>,
    shift: u32,
    seed: u64,
    /// The distinct values in order of first sight: the dictionary page.
    dict: Vec<i64>,
    /// The page being filled: its rows, their definition levels (nullable columns), and
    /// its dictionary indices, or its values (not the nulls) once PLAIN.
    page_len: usize,
    levels: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<i64>,
    /// The dictionary reached its limit: the rest of the chunk is PLAIN.
    plain: bool,
    /// With `plain`: the bloom filter (filled as pages go) and the PLAIN pages' min and max.
    filter: Option<Sbbf>,
    plain_range: Option<(i64, i64)>,
    pages: Vec<Done>,
    rows: usize,
    /// The chunk's nulls.
    nulls: usize,
    /// Scratch for a page before compression.
    raw: Vec<u8>,
}

impl IntColumn {
    /// A column that [`handles`] accepts.
    pub fn new(descr: ColumnDescPtr, props: &WriterProperties, seed: u64) -> Result<IntColumn> {
        let path = descr.path().clone();
        let codec = props.compression(&path);
        let zstd = compressor(codec)?;
        let nullable = descr.max_def_level() == 1;
        let mut c = IntColumn {
            wide: descr.physical_type() == PhysicalType::INT64,
            descr,
            codec,
            zstd,
            stats: props.statistics_enabled(&path) != EnabledStatistics::None,
            bloom: props.bloom_filter_properties(&path).map(|b| (b.fpp(), b.ndv())),
            offset_index: !props.offset_index_disabled(),
            batches: MiniBatches::of(props),
            dict_limit: props.column_dictionary_page_size_limit(&path),
            dictionary: props.dictionary_enabled(&path),
            delta: props.encoding(&path) == Some(Encoding::DELTA_BINARY_PACKED),
            nullable,
            slots: Vec::new(),
            shift: 0,
            seed: seed | 1,
            dict: Vec::new(),
            page_len: 0,
            levels: Vec::new(),
            indices: Vec::new(),
            values: Vec::new(),
            plain: false,
            filter: None,
            plain_range: None,
            pages: Vec::new(),
            rows: 0,
            nulls: 0,
            raw: Vec::new(),
        };
        c.resize(1024);
        c.reset()?;
        Ok(c)
    }

    fn width(&self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }

    fn resize(&mut self, len: usize) {
        self.slots = vec![Slot { value: 0, index: EMPTY }; len];
        self.shift = 64 - len.trailing_zeros();
        for (i, &v) in self.dict.iter().enumerate() {
            let mut at = self.slot_of(v);
            while self.slots[at].index != EMPTY {
                at = (at + 1) & (self.slots.len() - 1);
            }
            self.slots[at] = Slot { value: v, index: i as u32 };
        }
    }

    /// A multiply-fold hash under a random seed per process: values a process controls
    /// (byte counts, descriptors, return values) cannot be chosen ahead to collide in it,
    /// as they could under a fixed hash.
    #[inline]
    fn slot_of(&self, v: i64) -> usize {
        let p = ((v as u64) ^ self.seed) as u128 * 0x9E37_79B9_7F4A_7C15u128;
        let h = (p as u64) ^ ((p >> 64) as u64);
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn intern(&mut self, v: i64) -> u32 {
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(v);
        loop {
            let s = self.slots[at];
            if s.index == EMPTY {
                let index = self.dict.len() as u32;
                self.slots[at] = Slot { value: v, index };
                self.dict.push(v);
                if self.dict.len() * 2 > self.slots.len() {
                    self.resize(self.slots.len() * 2);
                }
                return index;
            }
            if s.value == v {
                return s.index;
            }
            at = (at + 1) & mask;
        }
    }

    /// Appends `values`, those `nulls` marks null left out (a required column's are
    /// ignored).
    pub fn write_i32(&mut self, values: &[i32], nulls: Option<&NullBuffer>) -> Result<()> {
        self.write(values, nulls, |&v| v as i64)
    }

    pub fn write_i64(&mut self, values: &[i64], nulls: Option<&NullBuffer>) -> Result<()> {
        self.write(values, nulls, |&v| v)
    }

    #[inline]
    fn write<T>(&mut self, values: &[T], nulls: Option<&NullBuffer>, as_i64: impl Fn(&T) -> i64) -> Result<()> {
        let nulls = nulls.filter(|_| self.nullable);
        // A nullable column's batch without a null buffer, or all null, has its levels all
        // one value: parquet's writer takes it in mini-batches as long as the page row
        // limit (with a null buffer, even one without a null in it, in write batches).
        let uniform = self.nullable && nulls.is_none_or(|n| n.null_count() == n.len());
        let size = if uniform { self.batches.limit } else { self.batches.size };
        self.rows += values.len();
        self.nulls += nulls.map_or(0, |n| n.null_count());
        let mut at = 0;
        while at < values.len() {
            let end = values.len().min(at + size);
            let now = &values[at..end];
            if let Some(n) = nulls {
                // Nullable, so without a dictionary (`handles`): a level a row, 64 rows to
                // a word of the validity bitmap, then the values of the valid rows, no
                // branch a row either way (Arrow's bit iterators cost 36 instructions a row).
                let (levels, values) = (self.levels.len(), self.values.len());
                push_levels(&mut self.levels, n, at, now.len());
                self.values.resize(values + now.len(), 0);
                let mut kept = values;
                for (&level, v) in self.levels[levels..].iter().zip(now) {
                    self.values[kept] = as_i64(v);
                    kept += level as usize;
                }
                self.values.truncate(kept);
            } else if self.plain {
                if self.nullable {
                    self.levels.resize(self.levels.len() + now.len(), 1);
                }
                self.values.extend(now.iter().map(&as_i64));
            } else {
                self.indices.reserve(now.len());
                // Neighbouring rows often share a value (one process's uid, gid, cgroup,
                // parent): those skip the table.
                let mut last = None;
                for v in now.iter().map(&as_i64) {
                    let i = match last {
                        Some((lv, li)) if lv == v => li,
                        _ => {
                            let i = self.intern(v);
                            last = Some((v, i));
                            i
                        }
                    };
                    self.indices.push(i);
                }
            }
            self.page_len += now.len();
            at = end;
            if self.page_len >= self.batches.limit {
                self.page()?;
            }
            if !self.plain && self.dict.len() * self.width() >= self.dict_limit {
                self.fall_back()?;
            }
        }
        Ok(())
    }

    /// The dictionary is full: the page being filled goes out with it, the rest PLAIN.
    fn fall_back(&mut self) -> Result<()> {
        self.page()?;
        self.plain = true;
        if let Some((fpp, ndv)) = self.bloom {
            let mut f = Sbbf::new_with_ndv_fpp(ndv.max(self.dict.len() as u64), fpp)?;
            for &v in &self.dict {
                self.add(&mut f, v);
            }
            self.filter = Some(f);
        }
        Ok(())
    }

    fn add(&self, f: &mut Sbbf, v: i64) {
        if self.wide {
            f.insert(&v)
        } else {
            f.insert(&(v as i32))
        }
    }

    /// Encodes and compresses the page being filled, if it has rows.
    fn page(&mut self) -> Result<()> {
        if self.page_len == 0 {
            return Ok(());
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        if self.nullable {
            // Data page v1: the levels' byte length, then their RLE/bit-packed hybrid.
            raw.extend_from_slice(&[0; 4]);
            rle_hybrid(&self.levels, 1, &mut raw);
            let len = (raw.len() - 4) as u32;
            raw[..4].copy_from_slice(&len.to_le_bytes());
            self.levels.clear();
        }
        let encoding = if !self.plain {
            // As wide as its largest index (parquet's writer: as the dictionary so far,
            // which the early pages of a chunk find small).
            // A fold, not `max()`: it vectorizes (the `max()` loop was a quarter of this
            // function's time).
            let bits = bit_width(self.indices.iter().fold(0, |m, &i| m.max(i)) as usize + 1);
            raw.push(bits as u8);
            rle_hybrid(&self.indices, bits, &mut raw);
            // Cleared, not taken: the next page fills the same buffer.
            self.indices.clear();
            Encoding::RLE_DICTIONARY
        } else {
            let encoding = if self.delta {
                put_delta(&mut raw, &self.values);
                Encoding::DELTA_BINARY_PACKED
            } else {
                put_plain(&mut raw, self.values.iter().copied(), self.wide);
                Encoding::PLAIN
            };
            // A page of nulls only has no values to count.
            if self.stats && !self.values.is_empty() {
                let (lo, hi) = self.values.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                self.plain_range = Some(self.plain_range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
            if let Some(mut f) = self.filter.take() {
                for &v in &self.values {
                    self.add(&mut f, v);
                }
                self.filter = Some(f);
            }
            self.values.clear();
            encoding
        };
        let buf = compress(&mut self.zstd, &raw)?;
        self.pages.push(Done { buf, raw_len: raw.len(), rows: self.page_len, encoding, value_bytes: 0 });
        self.page_len = 0;
        self.raw = raw;
        Ok(())
    }

    /// The bytes of the chunk so far: its pages compressed, its dictionary and the page
    /// being filled as they are.
    pub fn estimated_bytes(&self) -> usize {
        let pages: usize = self.pages.iter().map(|p| p.buf.len()).sum();
        let open = (self.indices.len() * bit_width(self.dict.len()) as usize + self.levels.len()).div_ceil(8)
            + self.values.len() * self.width();
        pages + self.dict.len() * self.width() + open
    }

    /// Writes the row group's chunk and starts the next one empty: the chunk's bytes, with
    /// offsets counted from their start, and what the row group needs to know of them.
    pub fn finish(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        self.page()?;
        let dictionary = self.pages.iter().any(|p| p.encoding == Encoding::RLE_DICTIONARY);
        let mut dict_page = Vec::new();
        if dictionary {
            put_plain(&mut dict_page, self.dict.iter().copied(), self.wide);
        }
        let stats = self.stats.then(|| {
            // Every dictionary entry is a value of some row (of the pages before any fallback).
            let dict = self
                .dict
                .iter()
                .fold(None, |r: Option<(i64, i64)>, &v| Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))));
            let range = match (dict, self.plain_range) {
                (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                (r, None) | (None, r) => r,
            };
            let (min, max) = (range.map(|r| r.0), range.map(|r| r.1));
            let nulls = Some(self.nulls as u64);
            if self.wide {
                ValueStatistics::<i64>::new(min, max, None, nulls, false).with_backwards_compatible_min_max(true).into()
            } else {
                ValueStatistics::<i32>::new(min.map(|v| v as i32), max.map(|v| v as i32), None, nulls, false)
                    .with_backwards_compatible_min_max(true)
                    .into()
            }
        });
        // As parquet's writer makes it: sized for the configured distinct values, each value
        // in (from the dictionary: once, not once a row), then folded to the fill it has.
        let bloom_filter = match (self.bloom, self.filter.take()) {
            (None, _) => None,
            (Some((fpp, _)), Some(mut f)) => {
                f.fold_to_target_fpp(fpp);
                Some(f)
            }
            (Some((fpp, ndv)), None) => {
                let mut f = Sbbf::new_with_ndv_fpp(ndv.max(self.dict.len() as u64), fpp)?;
                for &v in &self.dict {
                    self.add(&mut f, v);
                }
                f.fold_to_target_fpp(fpp);
                Some(f)
            }
        };
        let chunk = Chunk {
            descr: &self.descr,
            codec: self.codec,
            dict: dictionary.then_some((dict_page.as_slice(), self.dict.len())),
            rows: self.rows,
            stats,
            bloom_filter,
            offset_index: self.offset_index,
            byte_array: false,
        };
        let out = chunk.write(&mut self.zstd, self.pages.drain(..))?;
        self.reset()?;
        Ok(out)
    }

    fn reset(&mut self) -> Result<()> {
        self.dict.clear();
        self.page_len = 0;
        self.levels.clear();
        self.indices.clear();
        self.values.clear();
        self.pages.clear();
        self.plain_range = None;
        self.rows = 0;
        self.nulls = 0;
        // Without a dictionary the chunk is PLAIN from its first row, and its bloom filter
        // is filled as its pages go, sized as parquet's writer sizes it.
        self.plain = !self.dictionary;
        self.filter = match self.bloom {
            Some((fpp, ndv)) if self.plain => Some(Sbbf::new_with_ndv_fpp(ndv, fpp)?),
            _ => None,
        };
        if self.slots.len() > 1 << 16 {
            self.resize(1024);
        } else {
            self.slots.fill(Slot { value: 0, index: EMPTY });
        }
        Ok(())
    }
}

/// A column chunk's parts, written out by [`Chunk::write`].
pub(crate) struct Chunk<'a> {
    pub descr: &'a ColumnDescPtr,
    pub codec: Compression,
    /// The dictionary page's bytes (PLAIN) and entries, when some page uses it.
    pub dict: Option<(&'a [u8], usize)>,
    pub rows: usize,
    pub stats: Option<Statistics>,
    pub bloom_filter: Option<Sbbf>,
    pub offset_index: bool,
    /// A BYTE_ARRAY column: the offset index counts each page's value bytes.
    pub byte_array: bool,
}

impl Chunk<'_> {
    /// The chunk's bytes, its dictionary page first, with offsets counted from their start;
    /// and what the row group needs to know of them.
    pub fn write(
        self,
        zstd: &mut Option<zstd::bulk::Compressor<'static>>,
        pages: impl ExactSizeIterator<Item = Done>,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        let mut sink = TrackedWrite::new(Vec::new());
        let mut locations = Vec::with_capacity(pages.len());
        let mut value_bytes = Vec::with_capacity(pages.len());
        let mut encoding_stats: Vec<PageEncodingStats> = Vec::new();
        let (mut compressed, mut uncompressed) = (0i64, 0i64);
        let (mut dict_offset, mut data_offset) = (None, None);
        {
            let mut out = SerializedPageWriter::new(&mut sink);
            if let Some((raw, entries)) = self.dict {
                let buf = compress(zstd, raw)?;
                let page = Page::DictionaryPage {
                    buf,
                    num_values: entries as u32,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                };
                let spec = out.write_page(CompressedPage::new(page, raw.len()))?;
                (compressed, uncompressed) = (spec.compressed_size as i64, spec.uncompressed_size as i64);
                dict_offset = Some(spec.offset as i64);
                encoding_stats.push(PageEncodingStats {
                    page_type: PageType::DICTIONARY_PAGE,
                    encoding: Encoding::PLAIN,
                    count: 1,
                });
            }
            let mut first_row = 0;
            for p in pages {
                let page = Page::DataPage {
                    buf: p.buf,
                    num_values: p.rows as u32,
                    encoding: p.encoding,
                    def_level_encoding: Encoding::RLE,
                    rep_level_encoding: Encoding::RLE,
                    statistics: None,
                };
                let spec = out.write_page(CompressedPage::new(page, p.raw_len))?;
                compressed += spec.compressed_size as i64;
                uncompressed += spec.uncompressed_size as i64;
                data_offset.get_or_insert(spec.offset as i64);
                locations.push(PageLocation {
                    offset: spec.offset as i64,
                    compressed_page_size: spec.compressed_size as i32,
                    first_row_index: first_row as i64,
                });
                value_bytes.push(p.value_bytes);
                first_row += p.rows;
                match encoding_stats.last_mut() {
                    Some(s) if s.page_type == PageType::DATA_PAGE && s.encoding == p.encoding => s.count += 1,
                    _ => encoding_stats.push(PageEncodingStats {
                        page_type: PageType::DATA_PAGE,
                        encoding: p.encoding,
                        count: 1,
                    }),
                }
            }
        }
        sink.flush()?;
        // As parquet's writer lists them: RLE (its levels' encoding, with or without levels)
        // and every page's.
        let encodings: Vec<Encoding> = std::iter::once(Encoding::RLE)
            .chain(encoding_stats.iter().map(|s| s.encoding))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut meta = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(self.codec)
            .set_encodings(encodings)
            .set_page_encoding_stats(encoding_stats)
            .set_total_compressed_size(compressed)
            .set_total_uncompressed_size(uncompressed)
            .set_num_values(self.rows as i64)
            .set_data_page_offset(data_offset.unwrap_or(0))
            .set_dictionary_page_offset(dict_offset);
        if let Some(s) = self.stats {
            meta = meta.set_statistics(s);
        }
        let close = ColumnCloseResult {
            bytes_written: sink.bytes_written() as u64,
            rows_written: self.rows as u64,
            metadata: meta.build()?,
            bloom_filter: self.bloom_filter,
            column_index: None,
            offset_index: self.offset_index.then_some(OffsetIndexMetaData {
                page_locations: locations,
                unencoded_byte_array_data_bytes: self.byte_array.then_some(value_bytes),
            }),
        };
        Ok((Bytes::from(sink.into_inner()?), close))
    }
}

/// The compressor of `codec` (zstd; `None` for no compression).
pub(crate) fn compressor(codec: Compression) -> Result<Option<zstd::bulk::Compressor<'static>>> {
    match codec {
        Compression::ZSTD(level) => zstd::bulk::Compressor::new(level.compression_level())
            .map(Some)
            .map_err(|e| ParquetError::General(format!("zstd: {e}"))),
        _ => Ok(None),
    }
}

/// A page's bytes as the chunk stores them: zstd-compressed, or as they are.
pub(crate) fn compress(z: &mut Option<zstd::bulk::Compressor<'static>>, raw: &[u8]) -> Result<Bytes> {
    match z {
        None => Ok(Bytes::copy_from_slice(raw)),
        Some(z) => {
            let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
            z.compress_to_buffer(raw, &mut out).map_err(|e| ParquetError::General(format!("zstd: {e}")))?;
            Ok(Bytes::from(out))
        }
    }
}

/// DELTA_BINARY_PACKED of 64-bit `values`, as parquet's encoder makes it: a header (block
/// size 256, 4 miniblocks, the count, the first value, 0 when there is none), then each block of
/// up to 256 deltas as its least delta and 4 miniblocks of 64, each as wide as its largest
/// delta above the least and padded with zeros; a last block's unused miniblocks have width
/// 0 and no bytes.
fn put_delta(out: &mut Vec<u8>, values: &[i64]) {
    const MINI: usize = 64;
    const MINIS: usize = 4;
    const BLOCK: usize = MINI * MINIS;
    let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
    put_varint(out, BLOCK as u64);
    put_varint(out, MINIS as u64);
    put_varint(out, values.len() as u64);
    put_varint(out, zigzag(values.first().copied().unwrap_or(0)));
    let mut buf = [0i64; BLOCK];
    let mut at = 1;
    while at < values.len() {
        let n = (values.len() - at).min(BLOCK);
        let deltas = &mut buf[..n];
        // Each value and the one before as two slices, no bounds check a value: with the OR
        // of the widths below, `put_delta` took 24.1 M instructions where it took 34.6 M
        // with either alone (the 1.15 M times and file ids of 400,000 file events).
        let (now, before) = (&values[at..at + n], &values[at - 1..at - 1 + n]);
        for ((d, &v), &b) in deltas.iter_mut().zip(now).zip(before) {
            *d = v.wrapping_sub(b);
        }
        at += n;
        let min = deltas.iter().copied().min().unwrap_or(0);
        put_varint(out, zigzag(min));
        let widths = out.len();
        out.extend_from_slice(&[0; MINIS]);
        for (m, mini) in deltas.chunks(MINI).enumerate() {
            // The last miniblock padded with zeros.
            let mut above = [0u64; MINI];
            let mut all = 0;
            for (a, &d) in above.iter_mut().zip(mini) {
                *a = d.wrapping_sub(min) as u64;
                all |= *a;
            }
            // As wide as the largest delta above the least: its highest bit is the highest
            // of them all (an OR, where a maximum of 64-bit integers has no vector compare
            // to use on baseline x86-64).
            let bits = 64 - all.leading_zeros();
            out[widths + m] = bits as u8;
            pack64(&above, bits, out);
        }
    }
}

/// 64 values of `bits` bits each, least significant bit first: `bits` words of 8 bytes.
fn pack64(values: &[u64; 64], bits: u32, out: &mut Vec<u8>) {
    // One copy a width, as `rle_hybrid`'s groups: eight groups of 8 values, each `B` bytes,
    // in straight-line code (a width read at run time cost a loop with a branch a value;
    // `put_delta` and this were 49 instructions a value, callgrind, README).
    macro_rules! widths {
        ($($b:literal)*) => {
            match bits {
                $($b => pack64_of::<$b>(values, out),)*
                _ => panic!("pack64: {bits} bits (at most 64)"),
            }
        };
    }
    widths!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
            33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64)
}

fn pack64_of<const B: usize>(values: &[u64; 64], out: &mut Vec<u8>) {
    out.reserve(8 * B);
    for group in values.chunks_exact(8) {
        out.extend_from_slice(&pack8::<B, u64>(group.try_into().expect("8 values")));
    }
}

fn put_plain(out: &mut Vec<u8>, values: impl ExactSizeIterator<Item = i64>, wide: bool) {
    // Sized once and filled, without a capacity check a value.
    let width = if wide { 8 } else { 4 };
    let start = out.len();
    out.resize(start + values.len() * width, 0);
    for (to, v) in out[start..].chunks_exact_mut(width).zip(values) {
        if wide {
            to.copy_from_slice(&v.to_le_bytes());
        } else {
            to.copy_from_slice(&(v as i32).to_le_bytes());
        }
    }
}

/// Appends the definition levels of rows `start..start + len` (1 valid, 0 null), a word of
/// the validity bitmap at a time and no branch a row.
pub(crate) fn push_levels(levels: &mut Vec<u32>, nulls: &NullBuffer, start: usize, len: usize) {
    let bits = nulls.inner().inner().bit_chunks(nulls.offset() + start, len);
    let at = levels.len();
    levels.resize(at + len, 0);
    let words = bits.iter().chain((bits.remainder_len() > 0).then(|| bits.remainder_bits()));
    for (word, out) in words.zip(levels[at..].chunks_mut(64)) {
        for (k, level) in out.iter_mut().enumerate() {
            *level = ((word >> k) & 1) as u32;
        }
    }
}

/// Bits for indices into a dictionary of `len` entries (as parquet counts them: 0 for one).
pub fn bit_width(len: usize) -> u32 {
    usize::BITS - len.saturating_sub(1).leading_zeros()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Groups of 8 values in one bit-packed run at most (a header of one byte, as parquet's own
/// encoder writes them).
const MAX_GROUPS: usize = 63;

/// Parquet's RLE/bit-packing hybrid of `values`, each under `2^bits`, as parquet's own
/// encoder makes it: runs of 8 or more equal values (starting on a group boundary) as RLE
/// runs, the rest bit-packed 8 at a time with the last group padded with zeros, except a
/// last run of equal values after no bit-packed group, which is an RLE run however short.
pub fn rle_hybrid(values: &[u32], bits: u32, out: &mut Vec<u8>) {
    // One copy of the encoder a width: with `B` known, a group packs in straight-line
    // code, shifts and stores fixed, and goes out as `B` bytes in one fixed-size copy (a
    // width read at run time cost a loop and a `memcpy` call a group: 9% of the segment
    // writer's instructions, callgrind, README).
    macro_rules! widths {
        ($($b:literal)*) => {
            match bits {
                $($b => hybrid::<$b>(values, out),)*
                _ => panic!("rle_hybrid: {bits} bits (at most 32)"),
            }
        };
    }
    widths!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
}

fn hybrid<const B: usize>(values: &[u32], out: &mut Vec<u8>) {
    let value_bytes = B.div_ceil(8);
    let mut i = 0;
    // Start of the groups waiting to go out as one bit-packed run.
    let mut packed_from = 0;
    while i < values.len() {
        let v = values[i];
        let run = run_at(values, i);
        // A run of 8 or more; or, as parquet's encoder ends, the values left when they are
        // all one run and no bit-packed group waits.
        if run >= 8 || (i + run == values.len() && packed_from == i) {
            bit_packed::<B>(&values[packed_from..i], out);
            put_varint(out, (run as u64) << 1);
            out.extend_from_slice(&v.to_le_bytes()[..value_bytes]);
            i += run;
            packed_from = i;
        } else {
            // This group of 8 (or what is left) goes bit-packed.
            i = (i + 8).min(values.len());
        }
    }
    bit_packed::<B>(&values[packed_from..], out);
}

/// How many values from `values[i]` on equal it, exactly when that is 8 or more or reaches
/// the end; otherwise some number under 8 (which one does not matter to the encoder).
#[inline]
fn run_at(values: &[u32], i: usize) -> usize {
    let v = values[i];
    let differs = |c: &[u32]| c.iter().fold(0, |d, &x| d | (x ^ v)) != 0;
    let mut n = match values.get(i..i + 8) {
        // Eight compared at once (a fold vectorizes; a loop that stops at the first
        // difference does not): in bit-packed stretches the run ends there.
        Some(eight) if differs(eight) => return 1,
        Some(_) => 8,
        None => 1,
    };
    if n == 8 {
        // Then 16 at a time: nearly constant columns are one long run a page.
        while let Some(c) = values.get(i + n..i + n + 16) {
            if differs(c) {
                break;
            }
            n += 16;
        }
    }
    while i + n < values.len() && values[i + n] == v {
        n += 1;
    }
    n
}

/// `values` as bit-packed runs of groups of 8, `B` bits a value, the last group padded
/// with zeros.
fn bit_packed<const B: usize>(values: &[u32], out: &mut Vec<u8>) {
    for run in values.chunks(MAX_GROUPS * 8) {
        let groups = run.len().div_ceil(8);
        put_varint(out, ((groups as u64) << 1) | 1);
        out.reserve(groups * B);
        let mut eights = run.chunks_exact(8);
        for g in &mut eights {
            out.extend_from_slice(&pack8::<B, u32>(g.try_into().expect("8 values")));
        }
        let tail = eights.remainder();
        if !tail.is_empty() {
            let mut group = [0u32; 8];
            group[..tail.len()].copy_from_slice(tail);
            out.extend_from_slice(&pack8::<B, u32>(&group));
        }
    }
}

/// Eight values of `B` bits each (up to 64), least significant bit first: `B` bytes.
#[inline(always)]
fn pack8<const B: usize, T: Copy + Into<u64>>(group: &[T; 8]) -> [u8; B] {
    // Eight bytes at a time: fewer than 64 bits wait in `acc` between values, so a value of
    // up to 64 bits fits. With `B` fixed, the loop unrolls and every shift is a constant.
    let mut buf = [0u8; 72];
    let (mut acc, mut held, mut at) = (0u128, 0usize, 0usize);
    for &v in group {
        acc |= u128::from(v.into()) << held;
        held += B;
        if held >= 64 {
            buf[at..at + 8].copy_from_slice(&(acc as u64).to_le_bytes());
            at += 8;
            acc >>= 64;
            held -= 64;
        }
    }
    buf[at..at + 8].copy_from_slice(&(acc as u64).to_le_bytes());
    let mut packed = [0u8; B];
    packed.copy_from_slice(&buf[..B]);
    packed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_widths_are_parquets() {
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 0);
        assert_eq!(bit_width(2), 1);
        assert_eq!(bit_width(3), 2);
        assert_eq!(bit_width(256), 8);
        assert_eq!(bit_width(257), 9);
    }

    /// Each value's bits, one at a time, least significant first.
    fn pack_slowly(values: &[u32], bits: u32) -> Vec<u8> {
        let mut out = vec![0u8; (values.len() * bits as usize).div_ceil(8)];
        for (k, &v) in values.iter().enumerate() {
            for b in 0..bits {
                if v >> b & 1 == 1 {
                    let at = k * bits as usize + b as usize;
                    out[at / 8] |= 1 << (at % 8);
                }
            }
        }
        out
    }

    /// A xorshift's next value.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Parquet's hybrid the plain way: each run counted one value at a time, each group
    /// packed a bit at a time.
    fn hybrid_slowly(values: &[u32], bits: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let packed = |out: &mut Vec<u8>, from: usize, to: usize| {
            for run in values[from..to].chunks(MAX_GROUPS * 8) {
                let groups = run.len().div_ceil(8);
                put_varint(out, ((groups as u64) << 1) | 1);
                let mut padded = run.to_vec();
                padded.resize(groups * 8, 0);
                out.extend(pack_slowly(&padded, bits));
            }
        };
        let (mut i, mut packed_from) = (0, 0);
        while i < values.len() {
            let run = values[i..].iter().take_while(|&&v| v == values[i]).count();
            if run >= 8 || (i + run == values.len() && packed_from == i) {
                packed(&mut out, packed_from, i);
                put_varint(&mut out, (run as u64) << 1);
                out.extend_from_slice(&values[i].to_le_bytes()[..bits.div_ceil(8) as usize]);
                i += run;
                packed_from = i;
            } else {
                i = (i + 8).min(values.len());
            }
        }
        packed(&mut out, packed_from, values.len());
        out
    }

    #[test]
    fn groups_pack_as_bit_by_bit_at_every_width() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for bits in 1..=32u32 {
            // No two neighbours equal, so every value is bit-packed: 600 values are a
            // run of 63 groups and one of 12 (the last padded), 61 one of 8 (padded).
            for len in [8, 61, 64, 600] {
                let mut values: Vec<u32> = Vec::new();
                for _ in 0..len {
                    let mut v = (next(&mut x) as u32) & (u32::MAX >> (32 - bits));
                    if values.last() == Some(&v) {
                        v ^= 1;
                    }
                    values.push(v);
                }
                let mut want = Vec::new();
                for run in values.chunks(MAX_GROUPS * 8) {
                    let groups = run.len().div_ceil(8);
                    want.push((groups << 1 | 1) as u8);
                    let mut packed = pack_slowly(run, bits);
                    packed.resize(groups * bits as usize, 0);
                    want.extend(packed);
                }
                let mut out = Vec::new();
                rle_hybrid(&values, bits, &mut out);
                assert_eq!(out, want, "{bits} bits, {len} values");
            }
        }
    }

    #[test]
    fn hybrid_matches_the_plain_encoder_on_runs_of_every_length() {
        let mut x = 0x0f1e_2d3c_4b5a_6978u64;
        for bits in 0..=32u32 {
            for _ in 0..20 {
                // Runs of 1 to 80 values (long ones cross the 16-value steps of the run
                // scan at every offset), of a few distinct values, so neighbouring runs
                // sometimes join.
                let mut values = Vec::new();
                while values.len() < 2000 {
                    let r = next(&mut x);
                    let run = 1 + (r % 80) as usize * usize::from(r >> 60 < 6);
                    let v = ((r >> 8) as u32 % 5).wrapping_mul(0x9E37_79B9) & (u32::MAX >> (32 - bits.max(1)));
                    let v = if bits == 0 { 0 } else { v };
                    values.extend(std::iter::repeat_n(v, run));
                }
                let len = 1 + (next(&mut x) % 2000) as usize;
                let mut out = Vec::new();
                rle_hybrid(&values[..len], bits, &mut out);
                assert_eq!(out, hybrid_slowly(&values[..len], bits), "{bits} bits, {len} values");
            }
        }
    }

    #[test]
    fn miniblocks_pack_as_bit_by_bit_at_every_width() {
        let mut x = 0x5851_f42d_4c95_7f2du64;
        for bits in 0..=64u32 {
            let mask = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
            let mut values = [0u64; 64];
            for v in &mut values {
                *v = next(&mut x) & mask;
            }
            let mut want = vec![0u8; 8 * bits as usize];
            for (k, &v) in values.iter().enumerate() {
                for b in 0..bits as usize {
                    if v >> b & 1 == 1 {
                        let at = k * bits as usize + b;
                        want[at / 8] |= 1 << (at % 8);
                    }
                }
            }
            let mut out = vec![0xee];
            pack64(&values, bits, &mut out);
            assert_eq!(out[0], 0xee, "{bits} bits: what was there is kept");
            assert_eq!(&out[1..], want, "{bits} bits");
        }
    }

    #[test]
    fn hybrid_runs_and_groups() {
        let mut out = Vec::new();
        rle_hybrid(&[5; 20], 3, &mut out);
        assert_eq!(out, [40, 5], "one RLE run of 20");
        out.clear();
        rle_hybrid(&[1, 2, 3], 2, &mut out);
        // One bit-packed group: 1 | 2<<2 | 3<<4 = 0b110_1001, then zeros.
        assert_eq!(out, [3, 0b0011_1001, 0]);
    }
}
