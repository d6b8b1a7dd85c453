//! String columns with a dictionary, nullable or not, written as Parquet column chunks by
//! the recorder: the byte-array counterpart of [`crate::intcol`] (which see).
//!
//! parquet's writer hashes every string with `ahash`, probes a table of slices and compares
//! with a `memcmp` call, then pushes each index through its RLE encoder one at a time, and
//! each definition level through another. Here a string equal to the row before's skips
//! the table, strings are compared inline (up to 32 bytes, without a call to `memcmp`),
//! and levels and indices are packed a page at a time. The pages are the ones
//! parquet's writer makes: each page's indices as wide as the dictionary so far, the
//! dictionary page PLAIN, the rest of the chunk PLAIN once the dictionary reaches its page
//! size limit, PLAIN pages cut at the data page size limit too.

use arrow_array::{Array, StringArray};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, LogicalType, Type as PhysicalType};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnDescPtr;

use arrow_buffer::bit_iterator::BitIndexIterator;

use crate::intcol::{bit_width, compress, compressor, push_levels, rle_hybrid, Chunk, Done, MiniBatches};

/// Whether [`StrColumn`] writes column `descr`, an Arrow `arrow` array, under `props`: a
/// Utf8 column, nullable or not, not repeated, with a dictionary and no encoding of its own,
/// compressed with zstd or not at all, in data page v1, without statistics, bloom filter or
/// content-defined chunks.
pub fn handles(descr: &ColumnDescPtr, arrow: &DataType, props: &WriterProperties) -> bool {
    let path = descr.path();
    *arrow == DataType::Utf8
        && descr.physical_type() == PhysicalType::BYTE_ARRAY
        && descr.logical_type_ref() == Some(&LogicalType::String)
        && descr.max_def_level() <= 1
        && descr.max_rep_level() == 0
        && props.dictionary_enabled(path)
        && props.encoding(path).is_none()
        && matches!(props.compression(path), Compression::ZSTD(_) | Compression::UNCOMPRESSED)
        && props.statistics_enabled(path) == EnabledStatistics::None
        && props.bloom_filter_properties(path).is_none()
        && props.writer_version() == WriterVersion::PARQUET_1_0
        && props.content_defined_chunking().is_none()
        // A page gets fewer than twice the row limit (a whole-batch mini-batch can start
        // just under it), and counts its rows in a u32.
        && props.data_page_row_count_limit().checked_mul(2).is_some_and(|rows| rows <= u32::MAX as usize)
}

const EMPTY: u32 = u32::MAX;

/// The last value written from the array being written: its dictionary index, and where
/// its bytes start and how many there are in the array's data (`NONE` before the first, a
/// length no value has: one compare tells every value from it).
#[derive(Clone, Copy)]
struct Last {
    index: u32,
    at: usize,
    len: usize,
}

const NONE: Last = Last { index: EMPTY, at: 0, len: usize::MAX };

/// `a == b`, without a call to `memcmp` for values of up to 32 bytes: they are compared as
/// two overlapping loads of 1, 4, 8 or 16 bytes each.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // The 16, 8 or 4 bytes of `x` from `i`, as one integer.
    let w16 = |x: &[u8], i: usize| u128::from_le_bytes(x[i..i + 16].try_into().expect("16 bytes"));
    let w8 = |x: &[u8], i: usize| u64::from_le_bytes(x[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |x: &[u8], i: usize| u32::from_le_bytes(x[i..i + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        17..=32 => w16(a, 0) == w16(b, 0) && w16(a, n - 16) == w16(b, n - 16),
        _ => a == b,
    }
}

#[derive(Clone, Copy)]
struct Slot {
    /// The hash's low bits: most mismatches end here, without a look at the bytes.
    tag: u32,
    index: u32,
}

/// One column's chunk of the row group being written.
pub struct StrColumn {
    descr: ColumnDescPtr,
    codec: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    offset_index: bool,
    nullable: bool,
    batches: MiniBatches,
    dict_limit: usize,
    page_limit: usize,
    hasher: foldhash::fast::RandomState,
    /// Open addressing, linear probing; `len` a power of two, at most half full.
    slots: Vec<Slot>,
    shift: u32,
    /// The dictionary page as it is written (PLAIN: each entry's length, 4 bytes, then its
    /// bytes), and where each entry's bytes are in it.
    dict: Vec<u8>,
    entries: Vec<(u32, u32)>,
    /// The page being filled: its rows, their definition levels (nullable columns), the
    /// dictionary indices of its values, or once PLAIN the values as the page holds them.
    page_len: usize,
    levels: Vec<u32>,
    indices: Vec<u32>,
    plain: Vec<u8>,
    value_bytes: i64,
    /// The dictionary reached its limit: the rest of the chunk is PLAIN.
    fell_back: bool,
    pages: Vec<Done>,
    rows: usize,
    raw: Vec<u8>,
}

impl StrColumn {
    /// A column that [`handles`] accepts.
    pub fn new(descr: ColumnDescPtr, props: &WriterProperties) -> Result<StrColumn> {
        let path = descr.path().clone();
        let codec = props.compression(&path);
        let mut c = StrColumn {
            zstd: compressor(codec)?,
            codec,
            offset_index: !props.offset_index_disabled(),
            nullable: descr.max_def_level() == 1,
            batches: MiniBatches::of(props),
            dict_limit: props.column_dictionary_page_size_limit(&path),
            page_limit: props.column_data_page_size_limit(&path),
            hasher: foldhash::fast::RandomState::default(),
            slots: Vec::new(),
            shift: 0,
            dict: Vec::new(),
            entries: Vec::new(),
            page_len: 0,
            levels: Vec::new(),
            indices: Vec::new(),
            plain: Vec::new(),
            value_bytes: 0,
            fell_back: false,
            pages: Vec::new(),
            rows: 0,
            raw: Vec::new(),
            descr,
        };
        c.resize(256);
        Ok(c)
    }

    #[inline]
    fn entry(&self, i: u32) -> &[u8] {
        let (at, len) = self.entries[i as usize];
        &self.dict[at as usize..(at + len) as usize]
    }

    #[inline]
    fn hash(&self, v: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        // The bytes alone: foldhash's `write` folds their length in itself (what
        // `hash_one` hashes first is the length again).
        let mut h = self.hasher.build_hasher();
        h.write(v);
        h.finish()
    }

    fn resize(&mut self, len: usize) {
        self.slots = vec![Slot { tag: 0, index: EMPTY }; len];
        self.shift = 64 - len.trailing_zeros();
        for i in 0..self.entries.len() as u32 {
            let h = self.hash(self.entry(i));
            let mut at = (h >> self.shift) as usize;
            while self.slots[at].index != EMPTY {
                at = (at + 1) & (len - 1);
            }
            self.slots[at] = Slot { tag: h as u32, index: i };
        }
    }

    /// `v`'s index in the dictionary.
    #[inline]
    fn intern(&mut self, v: &[u8]) -> u32 {
        let h = self.hash(v);
        let mask = self.slots.len() - 1;
        let mut at = (h >> self.shift) as usize;
        loop {
            let s = self.slots[at];
            if s.index == EMPTY {
                let index = self.entries.len() as u32;
                self.dict.extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.entries.push((self.dict.len() as u32, v.len() as u32));
                self.dict.extend_from_slice(v);
                self.slots[at] = Slot { tag: h as u32, index };
                if self.entries.len() * 2 > self.slots.len() {
                    self.resize(self.slots.len() * 2);
                }
                return index;
            }
            if s.tag == h as u32 && same(self.entry(s.index), v) {
                return s.index;
            }
            at = (at + 1) & mask;
        }
    }

    /// Appends the rows of `array`, in the mini-batches parquet's writer would take:
    /// checking the page and the dictionary after each.
    pub fn write(&mut self, array: &StringArray) -> Result<()> {
        let nulls = array.nulls().filter(|_| self.nullable);
        // A nullable column's batch without a null buffer, or all null, has its levels all
        // one value: parquet's writer takes it in mini-batches as long as the page row limit.
        let uniform = self.nullable && nulls.is_none_or(|n| n.null_count() == n.len());
        let size = if uniform { self.batches.limit } else { self.batches.size };
        let mut row = 0;
        let mut last = NONE;
        while row < array.len() {
            let end = row + size.min(array.len() - row);
            // Cut by the bytes the values would add to the page being filled: the
            // dictionary page, or once PLAIN the data page (parquet's ByteBudgetChunker).
            let sub = self.sub_batch(array, row, end);
            let mut at = row;
            while at < end {
                let stop = (at + sub).min(end);
                last = self.mini_batch(array, at, stop, last)?;
                at = stop;
            }
            row = end;
        }
        Ok(())
    }

    /// Rows of `array[start..end]` to take at a time: those whose values, each with its
    /// 4-byte length, fit the bytes left in the page being filled (the one that passes
    /// included), scaled to rows by the share of them that are not null.
    fn sub_batch(&self, array: &StringArray, start: usize, end: usize) -> usize {
        let rows = end - start;
        let offsets = array.value_offsets();
        let nulls = array.nulls().filter(|_| self.nullable);
        let valid = |r: &usize| nulls.is_none_or(|n| n.is_valid(*r));
        // Counted a word of the validity bitmap at a time: a null column's mini-batches
        // are mostly nulls.
        let values = nulls.map_or(rows, |n| n.inner().slice(start, rows).count_set_bits());
        if values == 0 {
            return rows;
        }
        let budget = if self.fell_back { self.page_limit } else { self.dict_limit.saturating_sub(self.dict.len()) };
        // All the rows' bytes, nulls' too (an Arrow null has none, or bytes not counted
        // below): when they fit, the values do.
        let fit = if (offsets[end] - offsets[start]) as usize + 4 * values <= budget {
            values
        } else {
            let mut sum = 0usize;
            (start..end)
                .filter(valid)
                .position(|r| {
                    sum += (offsets[r + 1] - offsets[r]) as usize + 4;
                    sum > budget
                })
                .map_or(values, |k| k + 1)
        };
        let levels = if values == rows { fit } else { (fit * rows).div_ceil(values).max(1) };
        rows.min(levels.max(1))
    }

    /// Appends rows `start..end` of `array`, then cuts the page when it is full (rows, or
    /// its estimated bytes) and falls back to PLAIN when the dictionary is. `last` is the
    /// row before's index and where its value is in `array`'s data.
    fn mini_batch(&mut self, array: &StringArray, start: usize, end: usize, mut last: Last) -> Result<Last> {
        let nulls = array.nulls().filter(|_| self.nullable);
        match nulls {
            // The valid rows, found a word of the validity bitmap at a time (a row at a
            // time, `path2`'s and `closed_by`'s nulls cost 49 instructions a row).
            Some(n) => {
                push_levels(&mut self.levels, n, start, end - start);
                let bits = n.inner();
                let rows = BitIndexIterator::new(bits.values(), bits.offset() + start, end - start);
                last = self.values(array, rows.map(|k| start + k), last);
            }
            None => {
                if self.nullable {
                    self.levels.resize(self.levels.len() + (end - start), 1);
                }
                last = self.values(array, start..end, last);
            }
        }
        self.page_len += end - start;
        self.rows += end - start;
        let bytes = if self.fell_back {
            self.plain.len()
        } else {
            // Parquet's estimate: the most an RLE run of the indices can take.
            let groups = self.indices.len().div_ceil(8);
            let bits = bit_width(self.entries.len()) as usize;
            1 + (groups * (1 + bits)).max(groups * (1 + bits.div_ceil(8)))
        };
        if self.page_len >= self.batches.limit || bytes >= self.page_limit {
            self.page()?;
        }
        if !self.fell_back && self.dict.len() >= self.dict_limit {
            // The page being filled goes out with the dictionary; the rest PLAIN.
            self.page()?;
            self.fell_back = true;
        }
        Ok(last)
    }

    /// Appends the values of `rows` of `array` to the page being filled: their indices, or
    /// once PLAIN the values themselves.
    #[inline]
    fn values(&mut self, array: &StringArray, rows: impl Iterator<Item = usize>, mut last: Last) -> Last {
        let offsets = array.value_offsets();
        let data = array.value_data();
        if self.fell_back {
            for r in rows {
                let v = &data[offsets[r] as usize..offsets[r + 1] as usize];
                self.value_bytes += v.len() as i64;
                self.plain.extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.plain.extend_from_slice(v);
            }
        } else {
            self.indices.reserve(rows.size_hint().0);
            for r in rows {
                let (from, to) = (offsets[r] as usize, offsets[r + 1] as usize);
                let v = &data[from..to];
                self.value_bytes += v.len() as i64;
                // A row often repeats the row before (one process's comm, an open and its
                // close): those skip the table, compared where the array holds them.
                if v.len() != last.len || !same(&data[last.at..last.at + last.len], v) {
                    last = Last { index: self.intern(v), at: from, len: v.len() };
                }
                self.indices.push(last.index);
            }
        }
        last
    }

    /// Encodes and compresses the page being filled, if it has rows.
    fn page(&mut self) -> Result<()> {
        if self.page_len == 0 {
            return Ok(());
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        if self.nullable {
            raw.extend_from_slice(&[0; 4]);
            rle_hybrid(&self.levels, 1, &mut raw);
            let len = (raw.len() - 4) as u32;
            raw[..4].copy_from_slice(&len.to_le_bytes());
        }
        let encoding = if self.fell_back {
            raw.extend_from_slice(&self.plain);
            Encoding::PLAIN
        } else {
            let bits = bit_width(self.entries.len());
            raw.push(bits as u8);
            rle_hybrid(&self.indices, bits, &mut raw);
            Encoding::RLE_DICTIONARY
        };
        let buf = compress(&mut self.zstd, &raw)?;
        self.pages.push(Done { buf, raw_len: raw.len(), rows: self.page_len, encoding, value_bytes: self.value_bytes });
        self.raw = raw;
        self.page_len = 0;
        self.levels.clear();
        self.indices.clear();
        self.plain.clear();
        self.value_bytes = 0;
        Ok(())
    }

    /// The bytes of the chunk so far: its pages compressed, its dictionary and the page
    /// being filled as they are.
    pub fn estimated_bytes(&self) -> usize {
        let pages: usize = self.pages.iter().map(|p| p.buf.len()).sum();
        let open = (self.indices.len() * bit_width(self.entries.len()) as usize + self.levels.len()).div_ceil(8);
        pages + self.dict.len() + open + self.plain.len()
    }

    /// Writes the row group's chunk and starts the next one empty (see
    /// [`crate::intcol::IntColumn::finish`]).
    pub fn finish(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        self.page()?;
        let dictionary = self.pages.iter().any(|p| p.encoding == Encoding::RLE_DICTIONARY);
        let chunk = Chunk {
            descr: &self.descr,
            codec: self.codec,
            dict: dictionary.then_some((self.dict.as_slice(), self.entries.len())),
            rows: self.rows,
            stats: None,
            bloom_filter: None,
            offset_index: self.offset_index,
            byte_array: true,
        };
        let out = chunk.write(&mut self.zstd, self.pages.drain(..))?;
        self.dict.clear();
        self.entries.clear();
        self.fell_back = false;
        self.rows = 0;
        if self.slots.len() > 1 << 16 {
            self.resize(256);
        } else {
            self.slots.fill(Slot { tag: 0, index: EMPTY });
        }
        Ok(out)
    }
}
