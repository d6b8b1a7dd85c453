//! The recorder's own column encoders (`intcol.rs` for integers, `strcol.rs` for strings,
//! `boolcol.rs` for booleans, through `pqfile.rs`) against parquet's `ArrowWriter`: the
//! same rows written both ways read back the same, with the same encodings, statistics,
//! bloom filters and pages, within a few bytes of each other.

use std::sync::Arc;

use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::host::HostInfo;
use agent_linux::pqfile::SegmentFile;
use agent_linux::segment::WriterConfig;
use agent_linux::synth::Synth;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{Field, Schema};
use bytes::Bytes;
use capture_schemas::abi;
use capture_schemas::{Probe, Table};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, PageType};
use parquet::file::properties::{EnabledStatistics, ReaderProperties, WriterProperties, WriterPropertiesBuilder};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use parquet::file::statistics::Statistics;

/// The file table's rows as the decoder makes them, in batches of 16 Ki.
fn file_batches(n: usize) -> Vec<RecordBatch> {
    let mut s = Synth::new(11);
    let mut d = Decoder::new(16 * 1024, 1, EnvpMode::Redacted);
    let mut out = Vec::new();
    let mut rec = Vec::new();
    for _ in 0..n {
        rec.clear();
        s.record(abi::Kind::File, &mut rec);
        d.decode(Probe::File, &rec).expect("decodes");
        if d.builders.len(Table::File) >= 16 * 1024 {
            out.extend(d.builders.finish(Table::File, 0));
        }
    }
    out.extend(d.builders.finish(Table::File, 0));
    out
}

fn with_ours(batches: &[RecordBatch], props: &WriterProperties) -> (Bytes, Vec<String>) {
    let tmp = tempfile::tempfile().unwrap();
    let mut w = SegmentFile::try_new(tmp, batches[0].schema(), props.clone()).unwrap();
    let own = w.own_columns().into_iter().map(String::from).collect();
    for b in batches {
        w.write(b).unwrap();
    }
    let mut f = w.into_inner().unwrap();
    use std::io::{Read, Seek};
    f.rewind().unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    (Bytes::from(v), own)
}

fn with_parquets(batches: &[RecordBatch], props: &WriterProperties) -> Bytes {
    let mut w = ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props.clone())).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    Bytes::from(w.into_inner().unwrap())
}

fn read(data: &Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(data.clone()).unwrap().build().unwrap().map(Result::unwrap).collect()
}

/// Rows of `a` and `b`, compared as one batch each.
fn same_rows(a: &[RecordBatch], b: &[RecordBatch]) {
    let a = arrow_select::concat::concat_batches(&a[0].schema(), a).unwrap();
    let b = arrow_select::concat::concat_batches(&b[0].schema(), b).unwrap();
    assert_eq!(a.num_rows(), b.num_rows());
    for (i, f) in a.schema().fields().iter().enumerate() {
        assert_eq!(a.column(i).to_data(), b.column(i).to_data(), "column {}", f.name());
    }
}

/// A column chunk as a reader sees it: its path, encodings, statistics, whether it has a
/// bloom filter, its size, and each page's (type, encoding, rows).
#[derive(Debug, PartialEq)]
struct Chunk {
    path: String,
    encodings: Vec<Encoding>,
    stats: Option<Statistics>,
    /// The bloom filter's bytes.
    bloom: Option<i32>,
    size: i64,
    pages: Vec<(PageType, Encoding, u32)>,
    /// The offset index's bytes of values per page (byte arrays).
    value_bytes: Option<Vec<i64>>,
}

fn reader(data: &Bytes) -> SerializedFileReader<Bytes> {
    let opts = ReadOptionsBuilder::new()
        .with_page_index()
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    SerializedFileReader::new_with_options(data.clone(), opts).unwrap()
}

/// Every chunk of every row group, after checking that its offset index names its data
/// pages as they lie: one after another from the chunk's first data page to its end, each
/// size counting its header, the first rows adding up.
fn chunks(data: &Bytes) -> Vec<Vec<Chunk>> {
    let r = reader(data);
    let index = r.metadata().offset_index().expect("an offset index").clone();
    let mut out = Vec::new();
    for (g, rg) in r.metadata().row_groups().iter().enumerate() {
        let mut cols = Vec::new();
        for (i, c) in rg.columns().iter().enumerate() {
            let pages: Vec<_> = r
                .get_row_group(g)
                .unwrap()
                .get_column_page_reader(i)
                .unwrap()
                .map(|p| {
                    let p = p.unwrap();
                    (p.page_type(), p.encoding(), p.num_values())
                })
                .collect();
            let locs = index[g][i].page_locations();
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            assert_eq!(locs[0].offset, c.data_page_offset(), "{}", c.column_path());
            let mut rows = 0;
            let data_pages: Vec<_> = pages.iter().filter(|p| p.0 == PageType::DATA_PAGE).collect();
            assert_eq!(locs.len(), data_pages.len());
            for (k, l) in locs.iter().enumerate() {
                assert_eq!(l.first_row_index, rows);
                rows += data_pages[k].2 as i64;
                let end = locs.get(k + 1).map_or(start + c.compressed_size(), |n| n.offset);
                assert_eq!(l.offset + l.compressed_page_size as i64, end, "{} page {k}", c.column_path());
            }
            assert_eq!(rows, rg.num_rows());
            cols.push(Chunk {
                path: c.column_path().string(),
                encodings: c.encodings().collect(),
                stats: c.statistics().cloned(),
                bloom: c.bloom_filter_length(),
                size: c.compressed_size(),
                pages,
                value_bytes: index[g][i].unencoded_byte_array_data_bytes().cloned(),
            });
        }
        out.push(cols);
    }
    out
}

/// The chunks of `ours` and `theirs` alike but for a few bytes of size.
fn alike(ours: &Bytes, theirs: &Bytes) {
    let (a, b) = (chunks(ours), chunks(theirs));
    assert_eq!(a.len(), b.len(), "row groups");
    for (ga, gb) in a.iter().zip(&b) {
        for (ca, cb) in ga.iter().zip(gb) {
            assert!(ca.size <= cb.size + 16, "{}: {} bytes against {}", ca.path, ca.size, cb.size);
            assert_eq!(Chunk { size: 0, ..ca.clone_meta() }, Chunk { size: 0, ..cb.clone_meta() });
        }
    }
}

impl Chunk {
    fn clone_meta(&self) -> Chunk {
        Chunk {
            path: self.path.clone(),
            encodings: self.encodings.clone(),
            stats: self.stats.clone(),
            bloom: self.bloom,
            size: self.size,
            pages: self.pages.clone(),
            value_bytes: self.value_bytes.clone(),
        }
    }
}

/// Every value of an integer column of row group `g` is in its bloom filter.
fn in_bloom(data: &Bytes, g: usize, name: &str, batches: &[RecordBatch]) {
    let r = reader(data);
    let i = r.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.name() == name).unwrap();
    let rg = r.get_row_group(g).unwrap();
    let bloom = rg.get_column_bloom_filter(i).unwrap_or_else(|| panic!("a bloom filter on {name}"));
    let rows = r.metadata().row_group(g).num_rows() as usize;
    let all = arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap();
    let first: usize = (0..g).map(|k| r.metadata().row_group(k).num_rows() as usize).sum();
    let col = all.column_by_name(name).unwrap().slice(first, rows);
    // The values, not the nulls.
    if let Some(a) = col.as_primitive_opt::<Int32Type>() {
        assert!(a.iter().flatten().all(|v| bloom.check(&v)), "{name}: a value not in the filter");
    } else {
        assert!(
            col.as_primitive::<Int64Type>().iter().flatten().all(|v| bloom.check(&v)),
            "{name}: a value not in the filter"
        );
    }
}

#[test]
fn file_table_segments_read_back_as_written_and_as_parquets_own() {
    let batches = file_batches(300_000);
    let props = WriterConfig::new("/nonexistent", HostInfo::fixed("t", "t")).properties(Table::File);
    let (ours, own) = with_ours(&batches, &props);
    let expected = "ts ktime_ns pid tid ppid uid gid comm exec_id cgroup_id op path abs_path path2 flags mode fd ret \
                    bytes_read bytes_written reads writes ino dev file_id closed_by preexisting mmap_write length";
    assert_eq!(own, expected.split_whitespace().collect::<Vec<_>>(), "the columns the recorder's encoders take");
    let theirs = with_parquets(&batches, &props);
    same_rows(&read(&ours), &batches);
    same_rows(&read(&theirs), &batches);
    alike(&ours, &theirs);
    let a = chunks(&ours);
    assert_eq!(a.len(), 3, "row groups of 128 Ki rows");
    assert!(a[0].iter().find(|c| c.path == "pid").and_then(|c| c.bloom).is_some(), "pid's bloom filter, its length");
    assert!(ours.len() <= theirs.len() + theirs.len() / 10_000, "ours {} against {}", ours.len(), theirs.len());
    for g in 0..3 {
        in_bloom(&ours, g, "pid", &batches);
        in_bloom(&ours, g, "exec_id", &batches);
    }
}

fn table(cols: Vec<(&str, ArrayRef)>, batch_rows: usize) -> Vec<RecordBatch> {
    // Nullable where the array has nulls or its name says so.
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0 || n.starts_with("nullable")))
            .collect::<Vec<_>>(),
    ));
    let n = cols[0].1.len();
    let batch = RecordBatch::try_new(schema, cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    (0..n).step_by(batch_rows).map(|o| batch.slice(o, batch_rows.min(n - o))).collect()
}

/// A xorshift stream: runs of random lengths (1 to 20) of random small values.
fn random_runs(n: usize) -> Vec<i32> {
    let (mut x, mut out) = (0x9e37_79b9_7f4a_7c15u64, Vec::with_capacity(n));
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (len, v) = (1 + (x % 20) as usize, (x >> 32) as i32 % 300);
        out.extend(std::iter::repeat_n(v, len.min(n - out.len())));
    }
    out
}

/// Columns that take every path of the encoder: one value (indices of 0 bits), long runs,
/// random runs, wide dictionaries, and dictionaries that pass their page limit (INT32 and
/// INT64: PLAIN pages after the dictionary's).
#[test]
fn every_width_and_the_plain_fallback_read_back_as_parquets_own() {
    let n = 3 * 65_536;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("one", Arc::new(Int64Array::from(vec![7i64; n]))),
        ("runs", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| (i / 37) % 5)))),
        ("random", Arc::new(Int32Array::from(random_runs(n)))),
        ("wide", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| (i * 7919) % 30_000 - 15_000)))),
        ("distinct", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 1_000_003)))),
        ("distinct32", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| i.wrapping_mul(-1_000_003))))),
        // 60,000 distinct a row group: indices of 16 bits (17 and more: below).
        ("wider", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| i.wrapping_mul(-7) % 60_000)))),
        ("mixed", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| if i % 100 < 50 { 3 } else { i % 9 })))),
    ];
    for (codec, batches) in codec_cases(cols) {
        let batches = &batches;
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_dictionary_page_size_limit(256 * 1024)
            .set_max_row_group_row_count(Some(131_072))
            .set_bloom_filter_enabled(true)
            .set_bloom_filter_fpp(0.01)
            .set_bloom_filter_max_ndv(131_072)
            .build();
        let (ours, own) = with_ours(batches, &props);
        assert_eq!(own.len(), 8);
        same_rows(&read(&ours), batches);
        alike(&ours, &with_parquets(batches, &props));
        let a = chunks(&ours);
        for c in [4, 5] {
            let plain = a[0][c].pages.iter().filter(|p| p.1 == Encoding::PLAIN && p.0 == PageType::DATA_PAGE).count();
            let dict = a[0][c].pages.iter().filter(|p| p.1 == Encoding::RLE_DICTIONARY).count();
            assert!(plain > 0 && dict > 0, "{}: dictionary pages, then PLAIN: {:?}", a[0][c].path, a[0][c].pages);
        }
        for g in 0..2 {
            for name in ["random", "distinct", "distinct32", "wider"] {
                in_bloom(&ours, g, name, batches);
            }
        }
    }
}

/// Columns without a dictionary: PLAIN throughout (INT32 and INT64), and INT64 and
/// timestamps DELTA_BINARY_PACKED (steady times, deltas of every width up to 64 bits, wrapping
/// ones, a constant), with and without statistics and a bloom filter, in batches of uneven
/// sizes, compressed or not.
#[test]
fn columns_without_a_dictionary_read_back_as_parquets_own() {
    let n = 2 * 65_536 + 5_000;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Runs of deltas as wide as 0 to 64 bits, and the extremes side by side.
    let widths: Vec<i64> = (0..n)
        .map(|i| match i % 5_000 {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -1,
            _ => (next() >> (i / 700 % 65)) as i64,
        })
        .collect();
    let mut t = 1_764_000_000_000_000i64;
    let times: Vec<i64> = (0..n)
        .map(|_| {
            t += (next() % 3_000) as i64;
            t
        })
        .collect();
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("one", Arc::new(Int64Array::from(vec![7i64; n]))),
        ("random", Arc::new(Int32Array::from(random_runs(n)))),
        ("distinct", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 1_000_003)))),
        ("negative", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| i.wrapping_mul(-1_000_003))))),
        ("dict", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| (i / 37) % 5)))),
        ("ts", Arc::new(TimestampMicrosecondArray::from(times.clone()).with_timezone("UTC"))),
        ("ktime", Arc::new(Int64Array::from(times.iter().map(|t| t * 1000 - 5).collect::<Vec<_>>()))),
        ("widths", Arc::new(Int64Array::from(widths))),
        ("steady", Arc::new(Int64Array::from(vec![-3i64; n]))),
    ];
    for (codec, batches) in codec_cases(cols) {
        let batches = &batches;
        let mut b = WriterProperties::builder()
            .set_compression(codec)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_column_dictionary_enabled("dict".into(), true)
            .set_max_row_group_row_count(Some(65_536))
            .set_column_statistics_enabled("one".into(), EnabledStatistics::Chunk)
            .set_column_statistics_enabled("distinct".into(), EnabledStatistics::Chunk)
            .set_column_statistics_enabled("negative".into(), EnabledStatistics::Chunk)
            .set_column_encoding("negative".into(), Encoding::PLAIN)
            .set_column_statistics_enabled("ts".into(), EnabledStatistics::Chunk)
            .set_column_statistics_enabled("widths".into(), EnabledStatistics::Chunk);
        for c in ["ts", "ktime", "widths", "steady"] {
            b = b.set_column_encoding(c.into(), Encoding::DELTA_BINARY_PACKED);
        }
        let props = with_blooms(b, &["random", "distinct", "widths"]).build();
        let (ours, own) = both_alike(batches, &props);
        assert_eq!(own, ["one", "random", "distinct", "negative", "dict", "ts", "ktime", "widths", "steady"]);
        let a = chunks(&ours);
        assert_eq!(a.len(), 3, "row groups");
        for g in &a {
            for c in &g[..4] {
                assert!(c.pages.iter().all(|p| p.0 == PageType::DATA_PAGE && p.1 == Encoding::PLAIN), "{c:?}");
            }
            for c in &g[5..] {
                let delta =
                    |p: &(PageType, Encoding, u32)| p.0 == PageType::DATA_PAGE && p.1 == Encoding::DELTA_BINARY_PACKED;
                assert!(c.pages.iter().all(delta), "{c:?}");
            }
            assert!(g[0].stats.is_some() && g[1].stats.is_none() && g[5].stats.is_some(), "statistics where asked");
        }
        for g in 0..3 {
            for name in ["random", "distinct", "widths"] {
                in_bloom(&ours, g, name, batches);
            }
        }
    }
}

/// Nullable columns without a dictionary, PLAIN (INT32 and INT64) and delta-encoded: ids
/// in open order with nulls between (the file table's `file_id`), a column mostly null
/// (its `length`), runs of nulls long enough that batches are all null or have a null
/// buffer without a null in them, a nullable column whose batches have no null buffer, one
/// all null; with and without statistics and a bloom filter, in batches of uneven sizes,
/// compressed or not.
#[test]
fn nullable_columns_without_a_dictionary_read_back_as_parquets_own() {
    let n = 2 * 65_536 + 5_000;
    let ids = || Int64Array::from_iter((0..n as i64).map(|i| (i % 3 != 1).then_some((1 << 40) + i / 2)));
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("ids", Arc::new(ids())),
        ("ids_stats", Arc::new(ids())),
        ("sparse", Arc::new(Int64Array::from_iter((0..n as i64).map(|i| (i % 50 == 7).then_some(i * 4096))))),
        ("runs", Arc::new(Int64Array::from_iter((0..n as i64).map(|i| ((i / 30_000) % 2 == 1).then_some(i))))),
        ("nullable_full", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| 1_000 + i * 3)))),
        ("plain32", Arc::new(Int32Array::from_iter((0..n as i32).map(|i| (i % 5 != 0).then_some(-i))))),
        ("none", Arc::new(Int64Array::from(vec![None::<i64>; n]))),
    ];
    for (codec, batches) in codec_cases(cols) {
        let batches = &batches;
        assert!(batches[0].schema().fields().iter().all(|f| f.is_nullable()));
        assert!(batches.iter().all(|b| b.column(4).nulls().is_none()), "nullable_full: no null buffer");
        let mut b = WriterProperties::builder()
            .set_compression(codec)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_max_row_group_row_count(Some(65_536));
        for c in ["ids", "ids_stats", "runs", "nullable_full", "none"] {
            b = b.set_column_encoding(c.into(), Encoding::DELTA_BINARY_PACKED);
        }
        for c in ["ids_stats", "sparse", "plain32", "none"] {
            b = b.set_column_statistics_enabled(c.into(), EnabledStatistics::Chunk);
        }
        let props = with_blooms(b, &["ids_stats", "sparse"]).build();
        let (ours, own) = both_alike(batches, &props);
        assert_eq!(own, ["ids", "ids_stats", "sparse", "runs", "nullable_full", "plain32", "none"]);
        let a = chunks(&ours);
        assert_eq!(a.len(), 3, "row groups");
        let nulls = |c: &Chunk| c.stats.as_ref().and_then(|s| s.null_count_opt());
        assert_eq!(nulls(&a[0][1]), Some((0..65_536).filter(|i| i % 3 == 1).count() as u64), "ids_stats: its nulls");
        assert_eq!(nulls(&a[0][6]), Some(65_536), "none: all null");
        for g in 0..3 {
            in_bloom(&ours, g, "ids_stats", batches);
            in_bloom(&ours, g, "sparse", batches);
        }
    }
}

/// `b` with a bloom filter on each of `cols`: 1% false positives, sized for 65,536 values.
fn with_blooms(mut b: WriterPropertiesBuilder, cols: &[&str]) -> WriterPropertiesBuilder {
    for &c in cols {
        b = b
            .set_column_bloom_filter_enabled(c.into(), true)
            .set_column_bloom_filter_fpp(c.into(), 0.01)
            .set_column_bloom_filter_max_ndv(c.into(), 65_536);
    }
    b
}

/// `batches` written by these encoders, after checking that they read back as written and
/// that parquet's writer makes the same chunks; and the columns the encoders took.
fn both_alike(batches: &[RecordBatch], props: &WriterProperties) -> (Bytes, Vec<String>) {
    let (ours, own) = with_ours(batches, props);
    same_rows(&read(&ours), batches);
    alike(&ours, &with_parquets(batches, props));
    (ours, own)
}

/// `cols` under each codec the encoders take: uncompressed and zstd in batches of 16 Ki
/// rows, and zstd again in batches of uneven sizes.
fn codec_cases(cols: Vec<(&str, ArrayRef)>) -> [(Compression, Vec<RecordBatch>); 3] {
    let batches = table(cols, 16_384);
    let uneven_batches = uneven(&arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap());
    [
        (Compression::UNCOMPRESSED, batches.clone()),
        (Compression::ZSTD(Default::default()), batches),
        (Compression::ZSTD(Default::default()), uneven_batches),
    ]
}

/// Indices of 19 bits: 300,000 distinct values in one row group.
#[test]
fn nineteen_bit_indices_read_back() {
    let n = 300_000;
    let cols: Vec<(&str, ArrayRef)> =
        vec![("v", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| i.wrapping_mul(7) % 300_000))))];
    let batches = table(cols, 16_384);
    let props = WriterProperties::builder()
        .set_dictionary_page_size_limit(2 << 20)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(n))
        .build();
    let (ours, own) = with_ours(&batches, &props);
    assert_eq!(own, ["v"]);
    same_rows(&read(&ours), &batches);
    alike(&ours, &with_parquets(&batches, &props));
}

/// Batches of the sizes the batcher cuts: full ones, and shorter ones cut by the flush
/// interval at any row.
fn uneven(batch: &RecordBatch) -> Vec<RecordBatch> {
    let (mut out, mut at) = (Vec::new(), 0);
    for len in [16_384, 7_777, 10_000, 1_000, 16_384, 20_001, 3].iter().cycle() {
        if at == batch.num_rows() {
            return out;
        }
        let len = (*len).min(batch.num_rows() - at);
        out.push(batch.slice(at, len));
        at += len;
    }
    unreachable!()
}

/// Strings, nullable or not: a constant, runs, empty strings, nulls alone and in runs that
/// make batches all null, nullable columns whose batches have no null buffer (short values,
/// and long ones that parquet's writer takes in mini-batches cut by bytes), a dictionary
/// that passes its limit, long values whose PLAIN pages end at the data page size limit,
/// a column mostly null, null slots that hold bytes, values taking turns, and values of
/// every width up to 33 bytes a byte apart; batches of uneven sizes.
#[test]
fn strings_read_back_as_parquets_own() {
    let n = 2 * 65_536 + 5_000;
    let s = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef { Arc::new((0..n).map(f).collect::<StringArray>()) };
    // All values, no null buffer: a nullable field's batches as the decoder makes them
    // when no row is null.
    let full = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        let a: StringArray = (0..n).map(|i| Some(f(i))).collect();
        let (offsets, values, _) = a.into_parts();
        Arc::new(StringArray::new(offsets, values, None))
    };
    let cols: Vec<(&str, ArrayRef, bool)> = vec![
        ("one", s(&|_| Some("open".into())), false),
        ("runs", s(&|i| Some(format!("comm-{}", (i / 13) % 40))), false),
        ("empty", s(&|i| Some(if i % 3 == 0 { String::new() } else { format!("/p/{}", i % 1000) })), false),
        ("nulls", s(&|i| (i % 7 != 0).then(|| format!("/tmp/{}", i % 5000))), true),
        ("null_runs", s(&|i| ((i / 30_000) % 2 == 1).then(|| format!("x{}", i % 17))), true),
        ("no_buffer", full(&|i| format!("/usr/lib/{}", i % 300)), true),
        ("no_buffer_long", full(&|i| format!("/{:0>95}", (i * 7) % 3_000)), true),
        ("distinct", s(&|i| Some(format!("/home/user/file-{i:08}"))), false),
        // Two or three values taking turns, as `op` does (open, close, open; an unlink
        // now and then), and values of every width up to 33 bytes, each row but every
        // other one byte off the row before (its first, middle or last).
        ("turns", s(&|i| Some(["open", "close", "open", "close", "unlink"][(i * 7 / 3) % 5].into())), false),
        (
            "one_byte",
            s(&|i| {
                let w = 1 + (i / 6) % 33;
                let mut v = vec![b'a'; w];
                if i % 2 == 1 {
                    v[[0, w / 2, w - 1][(i / 2) % 3]] = b'b';
                }
                Some(String::from_utf8(v).unwrap())
            }),
            false,
        ),
        ("long", s(&|i| (i % 11 != 0).then(|| format!("{i:0>200}"))), true),
        // Mostly null, as `path2` and `closed_by` are: whole words of the validity bitmap
        // without a value.
        ("sparse", s(&|i| (i % 97 == 0).then(|| format!("/srv/{}", i % 61))), true),
        // Null slots that hold bytes, as an Arrow array may: only the values count.
        (
            "null_bytes",
            {
                let a: StringArray = (0..n).map(|i| Some(format!("/var/{:0>60}", i % 4_000))).collect();
                let (offsets, values, _) = a.into_parts();
                let valid: arrow_buffer::NullBuffer = (0..n).map(|i| i % 5 != 0).collect();
                Arc::new(StringArray::new(offsets, values, Some(valid)))
            },
            true,
        ),
    ];
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(n, a, null)| Field::new(*n, a.data_type().clone(), *null)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, cols.into_iter().map(|(_, a, _)| a).collect()).unwrap();
    assert!(batch.column(5).nulls().is_none());
    let batches = uneven(&batch);
    for codec in [Compression::UNCOMPRESSED, Compression::ZSTD(Default::default())] {
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_dictionary_page_size_limit(256 * 1024)
            .set_data_page_size_limit(256 * 1024)
            .set_max_row_group_row_count(Some(131_072))
            .build();
        let (ours, own) = with_ours(&batches, &props);
        assert_eq!(own.len(), 13);
        same_rows(&read(&ours), &batches);
        alike(&ours, &with_parquets(&batches, &props));
        let a = chunks(&ours);
        let plain = |c: &Chunk| c.pages.iter().filter(|p| p.0 == PageType::DATA_PAGE && p.1 == Encoding::PLAIN).count();
        assert!(plain(&a[0][7]) > 0, "distinct: PLAIN after the dictionary: {:?}", a[0][7].pages);
        assert!(a[0][10].pages.iter().any(|p| p.2 < 20_000 && p.0 == PageType::DATA_PAGE), "long: pages cut by size");
    }
}

/// Booleans: all false, all true, rare trues (as `preexisting` and `mmap_write`), runs, an
/// irregular pattern; in batches of uneven sizes (bit offsets that are not whole bytes),
/// batches split across row groups, pages cut by the row limit after the mini-batch that
/// reaches it (the default sizes, and sizes that are not whole bytes).
#[test]
fn booleans_read_back_as_parquets_own() {
    let n = 2 * 65_536 + 5_000;
    let b = |f: &dyn Fn(usize) -> bool| -> ArrayRef { Arc::new((0..n).map(|i| Some(f(i))).collect::<BooleanArray>()) };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("false", b(&|_| false)),
        ("true", b(&|_| true)),
        ("rare", b(&|i| i % 997 == 3)),
        ("runs", b(&|i| (i / 300) % 2 == 1)),
        ("mixed", b(&|i| (i * 7 + i / 11) % 3 == 0)),
    ];
    for (codec, batches) in codec_cases(cols) {
        for (batch_size, page_rows) in [(1024, 20_000), (1_001, 4_999)] {
            let props = WriterProperties::builder()
                .set_compression(codec)
                .set_statistics_enabled(EnabledStatistics::None)
                .set_write_batch_size(batch_size)
                .set_data_page_row_count_limit(page_rows)
                .set_max_row_group_row_count(Some(65_536))
                .build();
            let (ours, own) = both_alike(&batches, &props);
            assert_eq!(own, ["false", "true", "rare", "runs", "mixed"]);
            let a = chunks(&ours);
            assert_eq!(a.len(), 3, "row groups");
            let pages = a[0][0].pages.len();
            assert!(pages >= 65_536 / (page_rows + batch_size), "{pages} pages of {page_rows} rows or more");
        }
    }
}
