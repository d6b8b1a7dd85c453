//! Segments on disk: rotation by rows, size, age and hour; retention; atomic publish;
//! metadata; permissions; symlinks; the directory lock; back-pressure; a full disk.

mod common;
use common::{file_batch, host, walk};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_linux::batcher::{BatchConfig, Batcher};
use agent_linux::pipeline::Pipeline;
use agent_linux::retention::Retention;
use agent_linux::segment::{SegmentWriter, WriterConfig};
use agent_linux::stats::Health;
use agent_linux::synth::Synth;
use agent_linux::writer::{list_segments, Backpressure, Sink, WritersConfig};
use agent_linux::{abi, Probe, Table};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

const HOUR_NS: i64 = 3_600_000_000_000;

/// An offset that puts synthetic ktimes (about 3.7e12 ns) at the start of an hour.
fn offset_at_hour_start() -> i64 {
    let base = 1_800_000_000 * 1_000_000_000i64; // 2027-01-15
    base - base.rem_euclid(HOUR_NS) - 3_700_000_000_000
}

fn rows_in(path: &Path) -> i64 {
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    r.metadata().file_metadata().num_rows()
}

fn kv(path: &Path) -> std::collections::HashMap<String, String> {
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    r.metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
        .collect()
}

fn segment_writer(dir: &Path, f: impl FnOnce(&mut WriterConfig)) -> (SegmentWriter, Arc<Health>) {
    let mut cfg = WriterConfig::new(dir, host());
    f(&mut cfg);
    let health = Health::new();
    let w = SegmentWriter::new(Table::File, Arc::new(cfg), health.clone(), Arc::new(Retention::unlimited()));
    (w, health)
}

#[test]
fn rotates_by_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, health) = segment_writer(dir.path(), |c| c.max_segment_rows = 1000);
    let mut s = Synth::new(1);
    let mut published = Vec::new();
    for _ in 0..10 {
        published.extend(w.write(file_batch(&mut s, 500, offset_at_hour_start())).unwrap());
    }
    assert_eq!(published.len(), 5);
    assert!(w.publish().unwrap().is_none(), "nothing left open");
    for p in &published {
        assert_eq!(rows_in(p), 1000);
    }
    assert_eq!(list_segments(dir.path(), Table::File), {
        let mut p = published.clone();
        p.sort();
        p
    });
    let h = health.probe(Probe::File).snapshot();
    assert_eq!((h.rows_written, h.segments), (5000, 5));
}

#[test]
fn rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 * 1024;
    let (mut w, _) = segment_writer(dir.path(), |c| {
        c.max_segment_bytes = limit;
        c.row_group_rows = 4096;
    });
    let mut s = Synth::new(2);
    for _ in 0..60 {
        w.write(file_batch(&mut s, 4096, offset_at_hour_start())).unwrap();
    }
    w.publish().unwrap();
    let segs = list_segments(dir.path(), Table::File);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let total: i64 = segs.iter().map(|p| rows_in(p)).sum();
    assert_eq!(total, 60 * 4096);
    for p in &segs[..segs.len() - 1] {
        let size = std::fs::metadata(p).unwrap().len();
        // Rotation happens after the batch that crossed the limit: at most one batch over.
        assert!(size >= limit / 2 && size < limit * 2, "{} is {size} bytes", p.display());
    }
}

#[test]
fn rotates_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = segment_writer(dir.path(), |c| c.max_segment_age = Duration::from_secs(60));
    let mut s = Synth::new(3);
    w.write(file_batch(&mut s, 10, offset_at_hour_start())).unwrap();
    assert!(w.tick(Instant::now()).unwrap().is_none(), "young segment stays open");
    let p = w.tick(Instant::now() + Duration::from_secs(61)).unwrap().expect("old segment published");
    assert_eq!(rows_in(&p), 10);
    assert!(w.tick(Instant::now() + Duration::from_secs(200)).unwrap().is_none(), "no empty segments");
}

#[test]
fn splits_batches_at_hour_boundaries_into_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = segment_writer(dir.path(), |_| {});
    let mut s = Synth::new(4);
    // Synthetic ktimes advance ~1 µs per event: start 5 ms before an hour ends.
    let offset = offset_at_hour_start() - 5_000_000;
    let batch = file_batch(&mut s, 20_000, offset);
    w.write(batch).unwrap();
    w.publish().unwrap();
    let segs = list_segments(dir.path(), Table::File);
    assert_eq!(segs.len(), 2, "{segs:?}");
    let total: i64 = segs.iter().map(|p| rows_in(p)).sum();
    assert_eq!(total, 20_000);
    for p in &segs {
        let m = kv(p);
        let (first, last): (i64, i64) =
            (m["capture.first_ts_us"].parse().unwrap(), m["capture.last_ts_us"].parse().unwrap());
        assert_eq!(first.div_euclid(3_600_000_000), last.div_euclid(3_600_000_000), "one hour per segment");
        let hr = p.parent().unwrap().file_name().unwrap().to_string_lossy().to_string();
        let want = format!("hr={:02}", first.div_euclid(3_600_000_000).rem_euclid(24));
        assert_eq!(hr, want);
    }
}

#[test]
fn metadata_names_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, health) = segment_writer(dir.path(), |_| {});
    let mut s = Synth::new(5);
    let offset = offset_at_hour_start();
    w.write(file_batch(&mut s, 100, offset)).unwrap();
    health.probe(Probe::File).dropped_ringbuf_full.fetch_add(17, Ordering::Relaxed);
    let p = w.publish().unwrap().unwrap();
    let m = kv(&p);
    for (k, v) in [
        ("capture.table", "file"),
        ("capture.schema_version", &capture_schemas::SCHEMA_VERSION.to_string()),
        ("capture.abi_version", &capture_schemas::abi::ABI_VERSION.to_string()),
        ("capture.host", "test-host"),
        ("capture.kernel_release", "synthetic"),
        ("capture.boot_id", "00000000-0000-0000-0000-000000000001"),
        ("capture.recorder_version", env!("CARGO_PKG_VERSION")),
        ("capture.rows", "100"),
        ("capture.dropped_ringbuf_full", "17"),
        ("capture.dropped_backpressure", "0"),
        ("capture.malformed", "0"),
    ] {
        assert_eq!(m.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(m["capture.first_ts"].starts_with("2027-01-15T"), "{}", m["capture.first_ts"]);
    assert!(m.contains_key("capture.last_ts") && m.contains_key("capture.dropped_kernel_other"));
    // The schema (with column descriptions) travels in the file.
    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap()).unwrap();
    let f = r.schema().field_with_name("abs_path").unwrap().clone();
    assert!(f.metadata()["description"].contains("Absolute path"));
    // Name, mode, directory modes.
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("file-20270115T") && name.ends_with("Z-test-host-000001.parquet"), "{name}");
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    for d in [p.parent().unwrap(), p.parent().unwrap().parent().unwrap()] {
        assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o750);
    }
}

#[test]
fn statistics_only_on_the_columns_queries_prune_by() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = segment_writer(dir.path(), |_| {});
    let mut s = Synth::new(9);
    w.write(file_batch(&mut s, 200, offset_at_hour_start())).unwrap();
    let p = w.publish().unwrap().unwrap();
    let r = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
    let rg = r.metadata().row_group(0);
    let with_stats: Vec<&str> =
        rg.columns().iter().filter(|c| c.statistics().is_some()).map(|c| c.column_path().parts()[0].as_str()).collect();
    assert_eq!(with_stats, ["ts", "ktime_ns", "pid", "exec_id"], "README names these");
}

#[test]
fn bloom_filters_on_the_file_tables_process_keys() {
    use agent_linux::decode::{Decoder, EnvpMode};
    use parquet::arrow::ProjectionMask;
    use parquet::file::properties::ReaderProperties;
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use std::collections::HashSet;
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = segment_writer(dir.path(), |c| c.row_group_rows = 500);
    let mut s = Synth::new(9);
    w.write(file_batch(&mut s, 2000, offset_at_hour_start())).unwrap();
    let p = w.publish().unwrap().unwrap();
    let options = ReadOptionsBuilder::new()
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    let r = SerializedFileReader::new_with_options(std::fs::File::open(&p).unwrap(), options).unwrap();
    assert_eq!(r.metadata().num_row_groups(), 4);
    let schema = r.metadata().file_metadata().schema_descr_ptr();
    let at = |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).path().parts()[0] == name).unwrap();
    for g in 0..4 {
        let rg = r.get_row_group(g).unwrap();
        // Every value of the row group is in its filter; of 1,000 values between its
        // least and greatest that are not, few are (1% asked; folded, at most 5% here).
        let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap()).unwrap();
        let mask = ProjectionMask::columns(b.parquet_schema(), ["pid", "exec_id"]);
        let rows = b.with_row_groups(vec![g]).with_projection(mask).build().unwrap().next().unwrap().unwrap();
        let pids: HashSet<i32> = rows
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap()
            .values()
            .iter()
            .copied()
            .collect();
        let ids: Vec<i64> =
            rows.column(1).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().values().to_vec();
        let pid = rg.get_column_bloom_filter(at("pid")).expect("a bloom filter on pid");
        let exec_id = rg.get_column_bloom_filter(at("exec_id")).expect("a bloom filter on exec_id");
        assert!(pids.iter().all(|v| pid.check(v)) && ids.iter().all(|v| exec_id.check(v)));
        let (lo, hi) = (*pids.iter().min().unwrap(), *pids.iter().max().unwrap());
        let absent: Vec<i32> = (lo..hi).filter(|v| !pids.contains(v)).take(1000).collect();
        assert_eq!(absent.len(), 1000);
        let maybe = absent.iter().filter(|v| pid.check(*v)).count();
        assert!(maybe <= 50, "row group {g}: {maybe} of 1,000 absent pids pass");
        for col in ["ts", "path", "comm", "cgroup_id"] {
            assert!(rg.get_column_bloom_filter(at(col)).is_none(), "{col}");
        }
    }
    // None on the exec table, whose exec_ids are one per row.
    let mut d = Decoder::new(100, 1, EnvpMode::Redacted);
    let mut rec = Vec::new();
    for _ in 0..100 {
        rec.clear();
        s.exec(&mut rec);
        d.decode(Probe::Exec, &rec).unwrap();
    }
    let cfg = Arc::new(WriterConfig::new(dir.path(), host()));
    let mut w = SegmentWriter::new(Table::Exec, cfg, Health::new(), Arc::new(Retention::unlimited()));
    w.write(d.builders.finish(Table::Exec, offset_at_hour_start()).unwrap()).unwrap();
    let p = w.publish().unwrap().unwrap();
    let options = ReadOptionsBuilder::new()
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    let r = SerializedFileReader::new_with_options(std::fs::File::open(&p).unwrap(), options).unwrap();
    let rg = r.get_row_group(0).unwrap();
    assert!((0..rg.num_columns()).all(|i| rg.get_column_bloom_filter(i).is_none()));
}

#[test]
fn refuses_to_write_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("file")).unwrap();
    let (mut w, health) = segment_writer(dir.path(), |_| {});
    let err = w.write(file_batch(&mut Synth::new(6), 10, offset_at_hour_start())).unwrap_err();
    assert!(
        err.to_string().contains("file is a symbolic link or not a directory: the recorder follows no link"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert_eq!(health.probe(Probe::File).snapshot().dropped_write_error, 10);
}

#[test]
fn a_symlinked_table_directory_is_refused_at_start_and_nothing_behind_it_is_touched() {
    // What issue 12 found: with `file` a link to elsewhere, the start-up scan and
    // retention listed and deleted what was there.
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let part = elsewhere.path().join("dt=2020-01-01/hr=00");
    std::fs::create_dir_all(&part).unwrap();
    std::fs::write(part.join("important.parquet"), b"x").unwrap();
    std::fs::write(part.join(".w.parquet.tmp"), b"y").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("file")).unwrap();
    let retention = Retention::new(Some(1), Some(std::time::Duration::from_secs(1)));
    let err = retention.scan(dir.path()).unwrap_err();
    assert!(err.to_string().contains("file is a symbolic link"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
    assert!(part.join("important.parquet").exists() && part.join(".w.parquet.tmp").exists());
}

#[test]
fn retention_keeps_total_size_and_deletes_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WriterConfig::new(dir.path(), host());
    cfg.max_segment_rows = 2000;
    let retention = Arc::new(Retention::new(Some(200_000), None));
    let mut w = SegmentWriter::new(Table::File, Arc::new(cfg), Health::new(), retention.clone());
    let mut s = Synth::new(7);
    let mut published = Vec::new();
    for _ in 0..40 {
        published.extend(w.write(file_batch(&mut s, 2000, offset_at_hour_start())).unwrap());
    }
    let left = list_segments(dir.path(), Table::File);
    let total: u64 = left.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(total <= 200_000, "total {total}");
    assert!(retention.deleted() > 0);
    // What is left is the newest suffix of what was published.
    let mut newest = published[published.len() - left.len()..].to_vec();
    newest.sort();
    assert_eq!(left, newest);
    assert_eq!(retention.total_bytes(), total);
}

#[test]
fn retention_by_age_and_stale_temp_files_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("exec/dt=2020-01-01/hr=00");
    std::fs::create_dir_all(&part).unwrap();
    let old = part.join("exec-20200101T000000000Z-h-000001.parquet");
    std::fs::write(&old, b"old").unwrap();
    let stale = part.join(".exec-1-1.parquet.tmp");
    std::fs::write(&stale, b"half").unwrap();
    // Age the file by a day.
    let t = std::time::SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(t).unwrap();
    let fresh = dir.path().join("exec/dt=2020-01-01/hr=01");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("exec-x.parquet"), b"new").unwrap();

    let r = Retention::new(None, Some(Duration::from_secs(3600)));
    let report = r.scan(dir.path()).unwrap();
    assert_eq!((report.segments, report.stale_temp_removed), (2, 1));
    assert!(!old.exists() && !stale.exists() && !part.exists(), "old segment, temp file and empty partition removed");
    assert!(fresh.join("exec-x.parquet").exists());
}

#[test]
fn a_polling_reader_never_sees_a_partial_segment() {
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, stop) = (dir.path().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::HashSet::<PathBuf>::new();
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for p in list_segments(&dir, Table::File) {
                    // Every visible segment opens and reads completely, at any moment.
                    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                        .unwrap_or_else(|e| panic!("partial segment visible: {}: {e}", p.display()));
                    let rows: usize = r.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
                    assert!(rows > 0);
                    checks += 1;
                    seen.insert(p);
                }
            }
            (seen.len(), checks)
        })
    };
    let mut wc = WriterConfig::new(dir.path(), host());
    wc.max_segment_rows = 3000;
    let mut bc = BatchConfig::new(1);
    bc.batch_rows = 1000;
    let mut p = Pipeline::start(wc, &WritersConfig::default(), bc).unwrap();
    let mut s = Synth::new(8);
    let mut rec = Vec::new();
    for _ in 0..60_000 {
        rec.clear();
        s.file(&mut rec);
        p.push(Probe::File, &rec).unwrap();
    }
    let summary = p.finish();
    stop.store(true, Ordering::Relaxed);
    let (seen, checks) = reader.join().unwrap();
    assert_eq!(summary.totals.rows_written, 60_000);
    assert_eq!(list_segments(dir.path(), Table::File).len(), 20);
    assert!(seen >= 1 && checks >= 1, "the reader saw {seen} segments");
}

#[test]
fn pipeline_writes_every_table_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pipeline::start(
        WriterConfig::new(dir.path(), host()),
        &WritersConfig { threads: 2, ..Default::default() },
        BatchConfig::new(1),
    )
    .unwrap();
    let mut s = Synth::new(9);
    let mut rec = Vec::new();
    let kinds = [
        (abi::Kind::Exec, Probe::Exec, 30),
        (abi::Kind::Exit, Probe::Exec, 20),
        (abi::Kind::File, Probe::File, 500),
        (abi::Kind::Net, Probe::Net, 40),
        (abi::Kind::Dns, Probe::Dns, 60),
        (abi::Kind::Module, Probe::Module, 3),
    ];
    for (kind, probe, n) in kinds {
        for _ in 0..n {
            rec.clear();
            s.record(kind, &mut rec);
            p.push(probe, &rec).unwrap();
        }
    }
    p.push(Probe::Net, b"garbage").unwrap_err();
    let summary = p.finish();
    assert_eq!(summary.totals.events, 653);
    assert_eq!(summary.totals.malformed, 1);
    assert_eq!(summary.write_errors, 0);
    for (t, n) in [
        (Table::Exec, 30),
        (Table::Exit, 20),
        (Table::File, 500),
        (Table::Net, 40),
        (Table::Dns, 60),
        (Table::Module, 3),
        (Table::Stats, 5),
    ] {
        let rows: i64 = list_segments(dir.path(), t).iter().map(|p| rows_in(p)).sum();
        assert_eq!(rows, n, "{}", t.name());
    }
    // The stats rows, summed per probe, describe every segment on disk: the last interval
    // is taken after the last segments are published.
    let mut stats: std::collections::HashMap<String, (i64, i64)> = Default::default();
    for seg in list_segments(dir.path(), Table::Stats) {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(seg).unwrap()).unwrap().build().unwrap();
        for b in reader {
            let b = b.unwrap();
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let (probe, segs, rows) = (col("probe"), col("segments"), col("rows_written"));
            use arrow_array::cast::AsArray;
            for i in 0..b.num_rows() {
                let e = stats.entry(probe.as_string::<i32>().value(i).to_string()).or_default();
                e.0 += segs.as_primitive::<arrow_array::types::Int64Type>().value(i);
                e.1 += rows.as_primitive::<arrow_array::types::Int64Type>().value(i);
            }
        }
    }
    for p in Probe::ALL {
        let tables: Vec<Table> = Table::ALL.into_iter().filter(|t| t.probe() == Some(p)).collect();
        let segs = tables.iter().map(|&t| list_segments(dir.path(), t).len() as i64).sum::<i64>();
        let rows = tables.iter().flat_map(|&t| list_segments(dir.path(), t)).map(|s| rows_in(&s)).sum::<i64>();
        assert_eq!(
            stats.get(p.name()).copied(),
            Some((segs, rows)),
            "{}: stats against the segments on disk",
            p.name()
        );
    }
}

#[test]
fn second_recorder_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        Pipeline::start(WriterConfig::new(dir.path(), host()), &WritersConfig::default(), BatchConfig::new(1)).unwrap();
    let err = Pipeline::start(WriterConfig::new(dir.path(), host()), &WritersConfig::default(), BatchConfig::new(1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("another recorder is writing to"), "{err}");
    p.finish();
}

#[test]
fn backpressure_drop_is_bounded_and_counted() {
    // A bound of one byte: the first batch passes (the queue is empty), none after it.
    let (sink, rx) = Sink::channel(1);
    let health = Health::new();
    let mut cfg = BatchConfig::new(1);
    cfg.batch_rows = 10;
    cfg.backpressure = Backpressure::Drop;
    let mut b = Batcher::new(cfg, sink, health.clone());
    let mut s = Synth::new(10);
    let mut rec = Vec::new();
    for _ in 0..50 {
        rec.clear();
        s.file(&mut rec);
        b.push(Probe::File, &rec).unwrap();
    }
    assert_eq!(rx.len(), 1, "one batch queued, the rest dropped");
    assert_eq!(health.probe(Probe::File).snapshot().dropped_backpressure, 40);
}

/// A real full disk: a 1 MiB tmpfs. Needs root (CI runs as root).
#[test]
fn full_disk_loses_only_the_open_segment_and_leaves_no_temp_files() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0750", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let mut wc = WriterConfig::new(&mnt, host());
    wc.max_segment_rows = 5000;
    wc.compression = agent_linux::segment::Compression::None;
    let mut bc = BatchConfig::new(1);
    bc.batch_rows = 5000;
    let mut p = Pipeline::start(wc, &WritersConfig::default(), bc).unwrap();
    let mut s = Synth::new(11);
    let mut rec = Vec::new();
    for _ in 0..200_000 {
        rec.clear();
        s.file(&mut rec);
        p.push(Probe::File, &rec).unwrap();
    }
    let summary = p.finish();
    assert!(summary.write_errors > 0);
    let t = summary.totals;
    assert!(t.dropped_write_error > 0);
    assert_eq!(t.rows_written + t.dropped_write_error, 200_000, "every row written or counted lost");
    let segs = list_segments(&mnt, Table::File);
    let rows: i64 = segs.iter().map(|p| rows_in(p)).sum();
    assert_eq!(rows as u64, t.rows_written, "published segments intact and readable");
    let mut temps = 0;
    for e in walk(&mnt) {
        if e.file_name().unwrap().to_string_lossy().ends_with(".tmp") {
            temps += 1;
        }
    }
    assert_eq!(temps, 0);
}
