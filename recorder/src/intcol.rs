//! Integer columns written as dictionary-encoded Parquet column chunks, without parquet's
//! generic column writer.
//!
//! That writer interns every value through a hash table of byte slices (`ahash`, then a
//! `memcmp` call) and pushes each dictionary index through its RLE encoder one value at a
//! time. For the file table its integer columns were about two thirds of the segment
//! writer's CPU (`perf`, `bench_pipeline --tables file`). Here a non-nullable INT32 or
//! INT64 column with a dictionary is interned in an open-addressing table keyed by the value
//! itself, its indices are bit-packed a page at a time, and the finished chunk (dictionary
//! page, data pages, offset index, statistics, bloom filter) goes into the row group whole
//! (`SerializedRowGroupWriter::append_column`). The pages, encodings and metadata are the
//! ones parquet's writer makes for such a column; the tests read both back and compare.
//!
//! Parquet falls back to PLAIN once a chunk's dictionary passes its page size limit; here the
//! chunk then goes PLAIN from its first page (the values are all still at hand).

use std::io::Write;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, PageType, Type as PhysicalType};
use parquet::bloom_filter::Sbbf;
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, PageEncodingStats};
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// Whether [`IntColumn`] writes column `descr` under `props`: a required (non-nullable,
/// not repeated) INT32 or INT64 without a logical type, with a dictionary and no encoding
/// of its own, compressed with zstd or not at all.
pub fn handles(descr: &ColumnDescPtr, props: &WriterProperties) -> bool {
    let path = descr.path();
    matches!(descr.physical_type(), PhysicalType::INT32 | PhysicalType::INT64)
        && descr.max_def_level() == 0
        && descr.max_rep_level() == 0
        && descr.logical_type_ref().is_none()
        && props.dictionary_enabled(path)
        && props.encoding(path).is_none()
        && matches!(props.compression(path), Compression::ZSTD(_) | Compression::UNCOMPRESSED)
}

/// One empty slot of the interning table.
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    value: i64,
    index: u32,
}

/// One column's values for the row group being written.
pub struct IntColumn {
    descr: ColumnDescPtr,
    wide: bool,
    codec: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    stats: bool,
    bloom_fpp: Option<f64>,
    offset_index: bool,
    page_rows: usize,
    dict_limit: usize,
    /// Open addressing, linear probing; `len` a power of two, at most half full.
    slots: Vec<Slot>,
    shift: u32,
    seed: u64,
    /// The distinct values in order of first sight: the dictionary page.
    dict: Vec<i64>,
    /// Each row's dictionary index; empty once the chunk went PLAIN.
    indices: Vec<u32>,
    /// The rows' values, once the dictionary passed its limit.
    plain: Option<Vec<i64>>,
}

impl IntColumn {
    pub fn new(descr: ColumnDescPtr, props: &WriterProperties, seed: u64) -> Result<IntColumn> {
        let path = descr.path().clone();
        let codec = props.compression(&path);
        let zstd = match codec {
            Compression::ZSTD(level) => Some(
                zstd::bulk::Compressor::new(level.compression_level())
                    .map_err(|e| ParquetError::General(format!("zstd: {e}")))?,
            ),
            _ => None,
        };
        let stats = props.statistics_enabled(&path) != EnabledStatistics::None;
        let bloom_fpp = props.bloom_filter_properties(&path).map(|b| b.fpp());
        let wide = descr.physical_type() == PhysicalType::INT64;
        let mut c = IntColumn {
            descr,
            wide,
            codec,
            zstd,
            stats,
            bloom_fpp,
            offset_index: !props.offset_index_disabled(),
            // Parquet's writer checks the limit after each write batch, so its pages end on
            // the first multiple of the write batch size past it.
            page_rows: props.data_page_row_count_limit().max(1).next_multiple_of(props.write_batch_size().max(1)),
            dict_limit: props.dictionary_page_size_limit(),
            slots: Vec::new(),
            shift: 0,
            seed: seed | 1,
            dict: Vec::new(),
            indices: Vec::new(),
            plain: None,
        };
        c.resize(1024);
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

    /// A multiply-fold hash under a per-process seed: values a process controls (byte
    /// counts, descriptors, return values) cannot be picked to collide.
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

    pub fn write_i32(&mut self, values: &[i32]) {
        self.write(values.iter().map(|&v| v as i64), values.len());
    }

    pub fn write_i64(&mut self, values: &[i64]) {
        self.write(values.iter().copied(), values.len());
    }

    #[inline]
    fn write(&mut self, values: impl Iterator<Item = i64>, n: usize) {
        if let Some(plain) = &mut self.plain {
            plain.extend(values);
            return;
        }
        self.indices.reserve(n);
        // Neighbouring rows often share a value (one process's uid, gid, cgroup, parent):
        // those skip the table.
        let mut last = None;
        for v in values {
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
        if self.dict.len() * self.width() > self.dict_limit {
            let plain = self.indices.iter().map(|&i| self.dict[i as usize]).collect();
            self.plain = Some(plain);
            self.indices = Vec::new();
        }
    }

    pub fn rows(&self) -> usize {
        self.plain.as_ref().map_or(self.indices.len(), Vec::len)
    }

    /// What the chunk would take on disk before compression, about.
    pub fn estimated_bytes(&self) -> usize {
        match &self.plain {
            Some(p) => p.len() * self.width(),
            None => {
                self.dict.len() * self.width() + (self.indices.len() * bit_width(self.dict.len()) as usize).div_ceil(8)
            }
        }
    }

    /// Encodes the row group's chunk and starts the next one empty: the chunk's bytes, with
    /// offsets counted from their start, and what the row group needs to know of them.
    pub fn finish(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        let rows = self.rows();
        let mut sink = TrackedWrite::new(Vec::new());
        let mut locations = Vec::new();
        let mut encoding_stats = Vec::new();
        let (mut compressed, mut uncompressed) = (0u64, 0u64);
        let mut data_offset = None;
        let mut dict_offset = None;
        let mut raw = Vec::new();
        let (min, max);
        let z = &mut self.zstd;
        {
            let mut pages = SerializedPageWriter::new(&mut sink);
            let mut put = |page: Page, raw_len: usize, first_row: usize, pages: &mut SerializedPageWriter<_>| {
                let spec = pages.write_page(CompressedPage::new(page, raw_len))?;
                compressed += spec.compressed_size as u64;
                uncompressed += spec.uncompressed_size as u64;
                if spec.page_type == PageType::DICTIONARY_PAGE {
                    dict_offset = Some(spec.offset as i64);
                } else {
                    data_offset.get_or_insert(spec.offset as i64);
                    locations.push(PageLocation {
                        offset: spec.offset as i64,
                        compressed_page_size: spec.compressed_size as i32,
                        first_row_index: first_row as i64,
                    });
                }
                Ok::<_, ParquetError>(())
            };
            let (encoding, n) = match &self.plain {
                None => {
                    (min, max) = (self.dict.iter().min().copied(), self.dict.iter().max().copied());
                    raw.clear();
                    put_plain(&mut raw, self.dict.iter().copied(), self.wide);
                    let buf = compress(z, &raw)?;
                    let page = Page::DictionaryPage {
                        buf,
                        num_values: self.dict.len() as u32,
                        encoding: Encoding::PLAIN,
                        is_sorted: false,
                    };
                    put(page, raw.len(), 0, &mut pages)?;
                    encoding_stats.push(PageEncodingStats {
                        page_type: PageType::DICTIONARY_PAGE,
                        encoding: Encoding::PLAIN,
                        count: 1,
                    });
                    let mut n = 0;
                    for (p, chunk) in self.indices.chunks(self.page_rows).enumerate() {
                        // Each page is as wide as its largest index (parquet's writer: as
                        // the dictionary so far, which the early pages of a chunk find small).
                        let bits = bit_width(chunk.iter().max().map_or(0, |&m| m as usize + 1));
                        raw.clear();
                        raw.push(bits as u8);
                        rle_hybrid(chunk, bits, &mut raw);
                        let buf = compress(z, &raw)?;
                        put(
                            data_page(buf, chunk.len(), Encoding::RLE_DICTIONARY),
                            raw.len(),
                            p * self.page_rows,
                            &mut pages,
                        )?;
                        n += 1;
                    }
                    (Encoding::RLE_DICTIONARY, n)
                }
                Some(values) => {
                    (min, max) = (values.iter().min().copied(), values.iter().max().copied());
                    let mut n = 0;
                    for (p, chunk) in values.chunks(self.page_rows).enumerate() {
                        raw.clear();
                        put_plain(&mut raw, chunk.iter().copied(), self.wide);
                        let buf = compress(z, &raw)?;
                        put(data_page(buf, chunk.len(), Encoding::PLAIN), raw.len(), p * self.page_rows, &mut pages)?;
                        n += 1;
                    }
                    (Encoding::PLAIN, n)
                }
            };
            if n > 0 {
                encoding_stats.push(PageEncodingStats { page_type: PageType::DATA_PAGE, encoding, count: n });
            }
        }
        sink.flush()?;
        let encodings = if self.plain.is_some() {
            vec![Encoding::PLAIN, Encoding::RLE]
        } else {
            vec![Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY]
        };
        let mut meta = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(self.codec)
            .set_encodings(encodings)
            .set_page_encoding_stats(encoding_stats)
            .set_total_compressed_size(compressed as i64)
            .set_total_uncompressed_size(uncompressed as i64)
            .set_num_values(rows as i64)
            .set_data_page_offset(data_offset.unwrap_or(0))
            .set_dictionary_page_offset(dict_offset);
        if self.stats {
            let s: Statistics = if self.wide {
                ValueStatistics::<i64>::new(min, max, None, Some(0), false)
                    .with_backwards_compatible_min_max(true)
                    .into()
            } else {
                ValueStatistics::<i32>::new(min.map(|v| v as i32), max.map(|v| v as i32), None, Some(0), false)
                    .with_backwards_compatible_min_max(true)
                    .into()
            };
            meta = meta.set_statistics(s);
        }
        let bloom_filter = match self.bloom_fpp {
            None => None,
            Some(fpp) => {
                let mut f = Sbbf::new_with_ndv_fpp(self.distinct() as u64, fpp)?;
                let mut add = |v: i64| {
                    if self.wide {
                        f.insert(&v)
                    } else {
                        f.insert(&(v as i32))
                    }
                };
                match &self.plain {
                    None => self.dict.iter().for_each(|&v| add(v)),
                    Some(values) => values.iter().for_each(|&v| add(v)),
                }
                Some(f)
            }
        };
        let bytes_written = sink.bytes_written() as u64;
        let close = ColumnCloseResult {
            bytes_written,
            rows_written: rows as u64,
            metadata: meta.build()?,
            bloom_filter,
            column_index: None,
            offset_index: self
                .offset_index
                .then_some(OffsetIndexMetaData { page_locations: locations, unencoded_byte_array_data_bytes: None }),
        };
        let bytes = Bytes::from(sink.into_inner()?);
        self.reset();
        Ok((bytes, close))
    }

    /// Distinct values, for sizing the bloom filter (exact with a dictionary; with PLAIN,
    /// at least the dictionary's limit).
    fn distinct(&self) -> usize {
        self.dict.len().max(1)
    }

    fn reset(&mut self) {
        self.dict.clear();
        self.indices.clear();
        self.plain = None;
        if self.slots.len() > 1 << 16 {
            self.resize(1024);
        } else {
            self.slots.fill(Slot { value: 0, index: EMPTY });
        }
    }
}

/// A page's bytes as the chunk stores them: zstd-compressed, or as they are.
fn compress(z: &mut Option<zstd::bulk::Compressor<'static>>, raw: &[u8]) -> Result<Bytes> {
    match z {
        None => Ok(Bytes::copy_from_slice(raw)),
        Some(z) => {
            let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
            z.compress_to_buffer(raw, &mut out).map_err(|e| ParquetError::General(format!("zstd: {e}")))?;
            Ok(Bytes::from(out))
        }
    }
}

fn data_page(buf: Bytes, rows: usize, encoding: Encoding) -> Page {
    Page::DataPage {
        buf,
        num_values: rows as u32,
        encoding,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    }
}

fn put_plain(out: &mut Vec<u8>, values: impl Iterator<Item = i64>, wide: bool) {
    for v in values {
        if wide {
            out.extend_from_slice(&v.to_le_bytes());
        } else {
            out.extend_from_slice(&(v as i32).to_le_bytes());
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

/// Parquet's RLE/bit-packing hybrid of `values`, each under `2^bits`: runs of 8 or more
/// equal values (starting on a group boundary) as RLE runs, the rest bit-packed 8 at a time,
/// the last group padded with zeros.
pub fn rle_hybrid(values: &[u32], bits: u32, out: &mut Vec<u8>) {
    let value_bytes = bits.div_ceil(8) as usize;
    let mut i = 0;
    // Start of the groups waiting to go out as one bit-packed run.
    let mut packed_from = 0;
    let flush_packed = |out: &mut Vec<u8>, from: usize, to: usize| {
        let mut at = from;
        while at < to {
            let groups = ((to - at).div_ceil(8)).min(MAX_GROUPS);
            put_varint(out, ((groups as u64) << 1) | 1);
            for g in 0..groups {
                let s = at + g * 8;
                let mut group = [0u32; 8];
                let n = (to - s).min(8);
                group[..n].copy_from_slice(&values[s..s + n]);
                pack8(&group, bits, out);
            }
            at += groups * 8;
        }
    };
    while i < values.len() {
        let v = values[i];
        let mut run = 1;
        while i + run < values.len() && values[i + run] == v {
            run += 1;
        }
        if run >= 8 {
            flush_packed(out, packed_from, i);
            put_varint(out, (run as u64) << 1);
            out.extend_from_slice(&v.to_le_bytes()[..value_bytes]);
            i += run;
            packed_from = i;
        } else {
            // This group of 8 (or what is left) goes bit-packed.
            i = (i + 8).min(values.len());
        }
    }
    flush_packed(out, packed_from, values.len());
}

/// Eight values of `bits` bits each, least significant bit first: `bits` bytes.
#[inline]
fn pack8(group: &[u32; 8], bits: u32, out: &mut Vec<u8>) {
    // Fewer than 8 bits wait in `acc` between values, so a value of up to 32 bits fits.
    let (mut acc, mut held) = (0u64, 0u32);
    for &v in group {
        acc |= (v as u64) << held;
        held += bits;
        while held >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            held -= 8;
        }
    }
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

    #[test]
    fn groups_pack_as_bit_by_bit_at_every_width() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for bits in 1..=32u32 {
            let mut group = [0u32; 8];
            for v in &mut group {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = (x as u32) & (u32::MAX >> (32 - bits));
            }
            let mut out = Vec::new();
            pack8(&group, bits, &mut out);
            assert_eq!(out, pack_slowly(&group, bits), "{bits} bits");
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
