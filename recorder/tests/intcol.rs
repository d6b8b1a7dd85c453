//! The integer columns' own encoder (`intcol.rs`, through `pqfile.rs`) against parquet's
//! `ArrowWriter`: the same rows written both ways read back the same, with the same
//! encodings, statistics and bloom filters, in no more bytes.

use std::sync::Arc;

use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::host::HostInfo;
use agent_linux::pqfile::SegmentFile;
use agent_linux::segment::WriterConfig;
use agent_linux::synth::Synth;
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use capture_schemas::abi;
use capture_schemas::{Probe, Table};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::ReaderProperties;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
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

fn with_ours(batches: &[RecordBatch], props: &WriterProperties) -> Bytes {
    let tmp = tempfile::tempfile().unwrap();
    let mut w = SegmentFile::try_new(tmp, batches[0].schema(), props.clone()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    let mut f = w.into_inner().unwrap();
    use std::io::{Read, Seek};
    f.rewind().unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    Bytes::from(v)
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

/// Per column chunk: (path, encodings, statistics, has a bloom filter, compressed size).
type Chunk = (String, Vec<String>, Option<Statistics>, bool, i64, String);

fn chunks(data: &Bytes) -> Vec<Vec<Chunk>> {
    let r = SerializedFileReader::new(data.clone()).unwrap();
    r.metadata()
        .row_groups()
        .iter()
        .map(|rg| {
            rg.columns()
                .iter()
                .map(|c| {
                    let enc: Vec<String> = c.encodings().map(|e| format!("{e:?}")).collect();
                    (
                        c.column_path().string(),
                        enc,
                        c.statistics().cloned(),
                        c.bloom_filter_offset().is_some(),
                        c.compressed_size(),
                        format!("{:?}", c.page_encoding_stats()),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn file_table_segments_read_back_as_written_and_as_parquets_own() {
    let batches = file_batches(300_000);
    let props = WriterConfig::new("/nonexistent", HostInfo::fixed("t", "t")).properties(Table::File);
    let ours = with_ours(&batches, &props);
    let theirs = with_parquets(&batches, &props);
    same_rows(&read(&ours), &batches);
    same_rows(&read(&theirs), &batches);
    let (a, b) = (chunks(&ours), chunks(&theirs));
    assert_eq!(a.len(), 3, "row groups of 128 Ki rows");
    assert_eq!(a.len(), b.len());
    let mut own = 0;
    for (ga, gb) in a.iter().zip(&b) {
        for (ca, cb) in ga.iter().zip(gb) {
            assert_eq!((&ca.0, &ca.1, &ca.2, ca.3), (&cb.0, &cb.1, &cb.2, cb.3), "column chunk {}", ca.0);
            // The same pages compressed alike: a few bytes apart at most.
            assert!(ca.4 <= cb.4 + 16, "{}: {} bytes against {}", ca.0, ca.4, cb.4);
        }
        own += ga.iter().filter(|c| ["pid", "exec_id", "ino", "ret"].contains(&c.0.as_str())).count();
    }
    assert_eq!(own, 12);
    assert!(ours.len() <= theirs.len() + theirs.len() / 10_000, "ours {} against {}", ours.len(), theirs.len());
    // Pages start on the same rows (the offset index), and readers find the rows of one pid
    // through the bloom filter as before.
    let opts = || {
        ReadOptionsBuilder::new()
            .with_page_index()
            .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
            .build()
    };
    let r = SerializedFileReader::new_with_options(ours.clone(), opts()).unwrap();
    let p = SerializedFileReader::new_with_options(theirs.clone(), opts()).unwrap();
    let starts = |r: &SerializedFileReader<Bytes>| -> Vec<Vec<Vec<i64>>> {
        let index = r.metadata().offset_index().expect("an offset index");
        index
            .iter()
            .map(|rg| rg.iter().map(|c| c.page_locations().iter().map(|l| l.first_row_index).collect()).collect())
            .collect()
    };
    assert_eq!(starts(&r), starts(&p));
    let pid = batches[0].column_by_name("pid").unwrap().as_any().downcast_ref::<Int32Array>().unwrap().value(0);
    let rg = r.get_row_group(0).unwrap();
    let i = r.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.name() == "pid").unwrap();
    let bloom = rg.get_column_bloom_filter(i).expect("a bloom filter on pid");
    assert!(bloom.check(&pid));
}

/// Columns that take every path of the encoder: one value (indices of 0 bits), long runs,
/// wide dictionaries, and a dictionary past its page limit (PLAIN from the first page).
#[test]
fn every_width_and_the_plain_fallback_read_back() {
    let n = 140_000;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("one", Arc::new(Int64Array::from(vec![7i64; n]))),
        ("runs", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| (i / 37) % 5)))),
        ("wide", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| (i * 7919) % 40_000 - 20_000)))),
        ("distinct", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 1_000_003)))),
        // 100,000 distinct in the first row group: indices of 17 bits.
        ("wider", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| i.wrapping_mul(-7) % 100_000)))),
        ("mixed", Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| if i % 100 < 50 { 3 } else { i % 9 })))),
    ];
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), false)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let batches: Vec<RecordBatch> = (0..n).step_by(10_000).map(|o| batch.slice(o, 10_000.min(n - o))).collect();
    for codec in [Compression::UNCOMPRESSED, Compression::ZSTD(Default::default())] {
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_dictionary_page_size_limit(512 * 1024)
            .set_max_row_group_row_count(Some(100_000))
            .build();
        let ours = with_ours(&batches, &props);
        same_rows(&read(&ours), &batches);
        let (a, b) = (chunks(&ours), chunks(&with_parquets(&batches, &props)));
        for (ga, gb) in a.iter().zip(&b) {
            for (ca, cb) in ga.iter().zip(gb) {
                assert_eq!(&ca.2, &cb.2, "{} statistics", ca.0);
            }
        }
        let distinct = &a[0][3];
        assert_eq!(distinct.1, ["PLAIN", "RLE"], "past the dictionary limit: PLAIN");
        for c in [0, 1, 2, 4, 5] {
            assert!(a[0][c].1.contains(&"RLE_DICTIONARY".to_string()), "{}: {:?}", a[0][c].0, a[0][c].1);
        }
    }
    assert_eq!(batch.column(0).data_type(), &DataType::Int64);
}
