//! Crash safety of the open segments: what a SIGKILL leaves (a temporary Parquet file with
//! complete row groups and no footer, and its journal) is published at the next start,
//! every row exactly once, whatever moment the crash came at.

mod common;
use common::{host, walk};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_linux::journal::{recover, Recovered};
use agent_linux::retention::Retention;
use agent_linux::segment::{JournalMode, SegmentWriter, WriterConfig};
use agent_linux::stats::Health;
use agent_linux::synth::Synth;
use agent_linux::writer::list_segments;
use agent_linux::Table;
use arrow_array::{Array, Int64Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// `n` file rows, well inside one hour (2027-01-15) for the synthetic ktimes.
fn file_batch(synth: &mut Synth, n: usize) -> RecordBatch {
    common::file_batch(synth, n, 1_800_000_000 * 1_000_000_000 - 3_700_000_000_000)
}

fn config(dir: &Path, mode: JournalMode) -> Arc<WriterConfig> {
    let mut cfg = WriterConfig::new(dir, host());
    cfg.row_group_rows = 1000;
    cfg.journal = mode;
    Arc::new(cfg)
}

/// Writes `sizes` batches and "crashes": the writer is leaked, never finished, exactly as
/// a SIGKILL leaves it (what it wrote is in the kernel, its memory is gone). Returns the
/// batches written.
fn write_and_crash(cfg: &Arc<WriterConfig>, sizes: &[usize], seed: u64) -> Vec<RecordBatch> {
    let mut w = SegmentWriter::new(Table::File, cfg.clone(), Health::new(), Arc::new(Retention::unlimited()));
    let mut s = Synth::new(seed);
    let batches: Vec<RecordBatch> = sizes.iter().map(|&n| file_batch(&mut s, n)).collect();
    for b in &batches {
        assert!(w.write(b.clone()).unwrap().is_empty(), "no rotation in these tests");
    }
    std::mem::forget(w);
    batches
}

fn hidden(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Every row of the published file segments, as (ktime_ns, ts) pairs in order.
fn published_rows(dir: &Path) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for p in list_segments(dir, Table::File) {
        for b in ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p).unwrap()).unwrap().build().unwrap() {
            out.extend(keys(&b.unwrap()));
        }
    }
    out
}

fn keys(b: &RecordBatch) -> Vec<(i64, i64)> {
    let id = b.column_by_name("ktime_ns").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    let ts = b.column_by_name("ts").unwrap().as_any().downcast_ref::<arrow_array::TimestampMicrosecondArray>().unwrap();
    (0..b.num_rows()).map(|i| (id.value(i), ts.value(i))).collect()
}

fn all_keys(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    batches.iter().flat_map(keys).collect()
}

fn recover_all(cfg: &Arc<WriterConfig>) -> Recovered {
    recover(cfg, &Arc::new(Retention::unlimited()), |_| true).unwrap()
}

#[test]
fn a_crash_mid_segment_is_recovered_exactly_with_normal_row_groups() {
    for mode in [JournalMode::Lz4, JournalMode::Plain] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), mode);
        // 3 complete row groups in the file, 700 rows only in the journal; the third
        // batch crosses a row group boundary.
        let batches = write_and_crash(&cfg, &[600, 600, 1300, 1200], 7);
        let left = hidden(dir.path());
        assert_eq!(left.len(), 2, "{left:?}: the temporary segment and its journal");
        assert!(published_rows(dir.path()).is_empty());

        let r = recover_all(&cfg);
        assert_eq!((r.segments, r.rows, r.unreadable, r.kept), (1, 3700, 0, 0), "{mode:?}");
        assert_eq!(published_rows(dir.path()), all_keys(&batches), "{mode:?}: every row once, in order");
        assert!(hidden(dir.path()).is_empty(), "{mode:?}: leftovers removed");
        let seg = &list_segments(dir.path(), Table::File)[0];
        let r = SerializedFileReader::new(std::fs::File::open(seg).unwrap()).unwrap();
        let groups: Vec<i64> = r.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [1000, 1000, 1000, 700], "row groups as a normal segment's");
        let name = seg.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("file-") && name.contains(&format!("-r{}-", std::process::id())), "{name}");
        assert!(name.ends_with("-1.parquet"), "{name}");
        let kv = r.metadata().file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|k| k.key == "capture.recovered_from"));
        assert!(kv.iter().any(|k| k.key == "capture.rows" && k.value.as_deref() == Some("3700")));
    }
}

#[test]
fn a_crash_before_the_first_row_group_is_recovered_from_the_journal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Lz4);
    let batches = write_and_crash(&cfg, &[10, 300, 5], 8);
    let r = recover_all(&cfg);
    assert_eq!((r.segments, r.rows), (1, 315));
    assert_eq!(published_rows(dir.path()), all_keys(&batches));
}

/// The journal of the one open segment under `dir`.
fn journal_of(dir: &Path) -> PathBuf {
    let j: Vec<PathBuf> = walk(dir).into_iter().filter(|p| p.to_string_lossy().ends_with(".journal")).collect();
    assert_eq!(j.len(), 1, "{j:?}");
    j[0].clone()
}

/// The rows in the journal of the one open segment under `dir`.
fn journal_rows(dir: &Path) -> usize {
    let r = arrow_ipc::reader::StreamReader::try_new(std::fs::File::open(journal_of(dir)).unwrap(), None).unwrap();
    r.map(|b| b.unwrap().num_rows()).sum()
}

#[test]
fn deferred_rows_reach_the_journal_by_their_deadline_unless_a_row_group_takes_them_first() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Plain);
    let mut w = SegmentWriter::new(Table::File, cfg.clone(), Health::new(), Arc::new(Retention::unlimited()));
    let mut s = Synth::new(9);
    let batches: Vec<RecordBatch> = [600, 600, 300, 100].iter().map(|&n| file_batch(&mut s, n)).collect();
    let (due, later) = (Instant::now() + Duration::from_secs(3600), Instant::now() + Duration::from_secs(7200));

    // Not due: in the row group in memory only.
    w.write_by(batches[0].clone(), due).unwrap();
    assert_eq!((journal_rows(dir.path()), w.next_due()), (0, Some(due)));
    // The first 1,000 rows reach the file as a row group; the new journal holds the 200
    // after them, and nothing waits.
    w.write_by(batches[1].clone(), later).unwrap();
    assert_eq!((journal_rows(dir.path()), w.next_due()), (200, None));
    // Waiting again, until the earliest deadline of what waits.
    w.write_by(batches[2].clone(), due).unwrap();
    w.write_by(batches[3].clone(), later).unwrap();
    w.journal_due(due - Duration::from_secs(1));
    assert_eq!((journal_rows(dir.path()), w.next_due()), (200, Some(due)));
    // The rows due go, in order; those due later wait on.
    w.journal_due(due);
    assert_eq!((journal_rows(dir.path()), w.next_due()), (500, Some(later)));
    w.journal_due(later);
    assert_eq!((journal_rows(dir.path()), w.next_due()), (600, None));
    // A batch past its deadline goes to the journal as it is written.
    let last = file_batch(&mut s, 50);
    w.write_by(last.clone(), Instant::now()).unwrap();
    assert_eq!((journal_rows(dir.path()), w.next_due()), (650, None));

    std::mem::forget(w);
    let r = recover_all(&cfg);
    assert_eq!((r.segments, r.rows), (1, 1650));
    let mut all = batches;
    all.push(last);
    assert_eq!(published_rows(dir.path()), all_keys(&all), "every row once, in order");
}

#[test]
fn a_journal_torn_mid_batch_gives_back_every_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Plain);
    let batches = write_and_crash(&cfg, &[1500, 200, 250], 9);
    let journal = journal_of(dir.path());
    let len = std::fs::metadata(&journal).unwrap().len();
    // Cut into the last batch: the crash came while it was being written.
    std::fs::File::options().write(true).open(&journal).unwrap().set_len(len - 100).unwrap();
    let r = recover_all(&cfg);
    assert_eq!(r.rows, 1700, "{r:?}: the row group in the file, then the first journal batch (500 + 200)");
    assert_eq!(published_rows(dir.path()), all_keys(&batches)[..1700]);
}

#[test]
fn a_recovery_cut_short_by_another_crash_never_publishes_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Lz4);
    let batches = write_and_crash(&cfg, &[2500], 10);
    let saved: Vec<(PathBuf, Vec<u8>)> =
        walk(dir.path()).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    assert_eq!(recover_all(&cfg).segments, 1);
    // The crash came after the recovered segment was renamed into place, before the
    // leftovers were removed: they are there again.
    for (p, bytes) in &saved {
        std::fs::write(p, bytes).unwrap();
    }
    recover_all(&cfg);
    assert_eq!(published_rows(dir.path()), all_keys(&batches), "the rows once");
    assert!(hidden(dir.path()).is_empty());

    // After the temporary file's removal, before the journal's: the journal alone goes.
    let journal = saved.iter().find(|(p, _)| p.to_string_lossy().ends_with(".journal")).unwrap();
    std::fs::write(&journal.0, &journal.1).unwrap();
    let r = recover_all(&cfg);
    assert_eq!((r.segments, r.rows), (0, 0));
    assert!(hidden(dir.path()).is_empty());
    assert_eq!(published_rows(dir.path()).len(), 2500);
}

#[test]
fn a_journal_that_never_replaced_its_predecessor_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Lz4);
    let batches = write_and_crash(&cfg, &[400], 11);
    let journal = journal_of(dir.path());
    let new = PathBuf::from(format!("{}.new", journal.display()));
    std::fs::write(&new, b"half a journal").unwrap();
    let r = recover_all(&cfg);
    assert_eq!(r.rows, 400);
    assert_eq!(published_rows(dir.path()), all_keys(&batches));
    assert!(!new.exists());
}

#[test]
fn unreadable_leftovers_are_deleted_with_a_count_and_nothing_else_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Lz4);
    write_and_crash(&cfg, &[1200], 12);
    let journal = journal_of(dir.path());
    std::fs::write(&journal, b"not arrow at all").unwrap();
    let r = recover_all(&cfg);
    assert_eq!((r.segments, r.unreadable), (0, 1));
    assert!(hidden(dir.path()).is_empty());
}

#[test]
fn the_start_up_scan_keeps_a_temporary_segment_that_has_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Lz4);
    write_and_crash(&cfg, &[1200], 13);
    let report = Retention::unlimited().scan(dir.path()).unwrap();
    assert_eq!(report.stale_temp_removed, 0);
    assert_eq!(hidden(dir.path()).len(), 2);

    // Without a journal (--journal off), the scan removes it and counts it.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Off);
    write_and_crash(&cfg, &[1200], 13);
    assert_eq!(hidden(dir.path()).len(), 1);
    assert_eq!(Retention::unlimited().scan(dir.path()).unwrap().stale_temp_removed, 1);
    assert!(hidden(dir.path()).is_empty());
}

#[test]
fn a_published_segment_leaves_no_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Lz4);
    let mut w = SegmentWriter::new(Table::File, cfg.clone(), Health::new(), Arc::new(Retention::unlimited()));
    let mut s = Synth::new(14);
    w.write(file_batch(&mut s, 2500)).unwrap();
    w.publish().unwrap();
    assert!(hidden(dir.path()).is_empty());
    assert_eq!(recover_all(&cfg), Recovered::default());
}

#[test]
fn a_journal_that_makes_the_ipc_reader_panic_is_unreadable_not_fatal() {
    // The schema message of the `catalog` fuzz find (an Int of bit width 0): arrow-ipc 59
    // panics decoding it where it should fail.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), JournalMode::Plain);
    write_and_crash(&cfg, &[1200], 15);
    let journal = journal_of(dir.path());
    // This run's package directory, not the compile-time one (see schemas/tests/layout.rs).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    std::fs::copy(format!("{manifest_dir}/tests/data/malformed-schema.journal"), &journal).unwrap();
    capture_schemas::layout::install_panic_hook();
    let r = recover_all(&cfg);
    assert_eq!((r.segments, r.unreadable), (0, 1));
    assert!(hidden(dir.path()).is_empty());
}
