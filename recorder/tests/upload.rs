//! `--upload`: published segments shipped in order, local copies removed or recorded, and
//! what a store that is down leaves for the next start. The live test against a real
//! S3-compatible server is scripts/test_live_fleet.py; here the store is object_store's
//! in-memory one, or a real S3 client pointed at a closed port.
#![cfg(feature = "upload")]

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_linux::retention::Retention;
use agent_linux::segment::{SegmentWriter, WriterConfig};
use agent_linux::stats::Health;
use agent_linux::synth::Synth;
use agent_linux::upload::{UploadConfig, Uploader};
use agent_linux::writer::list_segments;
use agent_linux::Table;
use arrow_array::Array;
use capture_schemas::remote::S3Url;
use common::{file_batch, host};
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

const HOUR_NS: i64 = 3_600_000_000_000;

fn offset() -> i64 {
    let base = 1_800_000_000 * 1_000_000_000i64;
    base - base.rem_euclid(HOUR_NS) - 3_700_000_000_000
}

fn cfg(dir: &Path, keep_local: bool) -> UploadConfig {
    UploadConfig {
        url: S3Url::parse("s3://bkt/fleet").unwrap().unwrap(),
        dir: dir.to_path_buf(),
        keep_local,
        host: "h".into(),
    }
}

/// Publishes `n` file segments of 2000 rows through a writer that queues them on `up`.
fn publish(dir: &Path, up: Option<&Uploader>, retention: &Arc<Retention>, health: &Arc<Health>, n: usize, seed: u64) {
    let mut wc = WriterConfig::new(dir, host());
    wc.max_segment_rows = 2000;
    wc.published = up.map(Uploader::sender);
    let mut w = SegmentWriter::new(Table::File, Arc::new(wc), health.clone(), retention.clone());
    let mut s = Synth::new(seed);
    for _ in 0..n {
        w.write(file_batch(&mut s, 2000, offset())).unwrap();
    }
    w.publish().unwrap();
}

fn keys(store: &InMemory) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = futures::executor::block_on(
        store.list(None).map(|m| m.map(|m| (m.location.to_string(), m.size))).collect::<Vec<_>>(),
    )
    .into_iter()
    .map(Result::unwrap)
    .collect();
    v.sort();
    v
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap().to_string_lossy().into_owned()
}

#[test]
fn published_segments_are_uploaded_under_their_partition_and_removed_locally() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(InMemory::new());
    let (retention, health) = (Arc::new(Retention::unlimited()), Health::new());
    let mut up = Uploader::with_store(cfg(dir.path(), true), store.clone());
    up.start(retention.clone(), health.clone()).unwrap();
    publish(dir.path(), Some(&up), &retention, &health, 4, 1);
    let s = up.finish(Duration::from_secs(30));
    let local = list_segments(dir.path(), Table::File);
    assert_eq!((s.segments, s.pending, s.failures), (4, 0, 0));
    let want: Vec<(String, u64)> =
        local.iter().map(|p| (format!("fleet/{}", rel(dir.path(), p)), std::fs::metadata(p).unwrap().len())).collect();
    assert!(want.iter().all(|(k, _)| k.starts_with("fleet/file/host=test-host/dt=")), "{want:?}");
    assert_eq!(keys(&store), want, "every segment, at the key of its path, with its size");
    let ledger = std::fs::read_to_string(dir.path().join(".uploaded")).unwrap();
    let mut ledger: Vec<&str> = ledger.lines().collect();
    ledger.sort();
    assert_eq!(ledger, local.iter().map(|p| rel(dir.path(), p)).collect::<Vec<_>>(), "--keep-local: the ledger");

    // The next start sends nothing again (the ledger); without --keep-local it removes the
    // uploaded copies, and the partition directories they leave empty.
    let again = Arc::new(InMemory::new());
    let mut up = Uploader::with_store(cfg(dir.path(), true), again.clone());
    up.start(retention.clone(), Health::new()).unwrap();
    assert_eq!(up.finish(Duration::from_secs(5)).segments, 0);
    assert!(keys(&again).is_empty());
    let mut up = Uploader::with_store(cfg(dir.path(), false), again.clone());
    up.start(retention.clone(), Health::new()).unwrap();
    up.finish(Duration::from_secs(5));
    assert!(keys(&again).is_empty());
    assert!(list_segments(dir.path(), Table::File).is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("file")).unwrap().count(), 0, "empty partitions removed");
}

#[test]
fn a_store_that_is_down_leaves_the_segments_for_the_next_start_which_sends_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let (retention, health) = (Arc::new(Retention::unlimited()), Health::new());
    // A real S3 client, at a port where nothing listens.
    let down = object_store::aws::AmazonS3Builder::new()
        .with_endpoint("http://127.0.0.1:9")
        .with_allow_http(true)
        .with_bucket_name("bkt")
        .with_region("us-east-1")
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .with_retry(object_store::RetryConfig { max_retries: 0, ..Default::default() })
        .build()
        .unwrap();
    let mut up = Uploader::with_store(cfg(dir.path(), false), Arc::new(down));
    up.start(retention.clone(), health.clone()).unwrap();
    publish(dir.path(), Some(&up), &retention, &health, 3, 2);
    std::thread::sleep(Duration::from_millis(1500));
    let u = &health.upload;
    assert!(u.lag_ms(agent_linux::host::realtime_ns() / 1000) >= 1000, "the oldest waiting segment's lag");
    let s = up.finish(Duration::from_secs(1));
    assert!(s.failures >= 1, "{s:?}");
    assert_eq!((s.segments, s.pending), (0, 3));
    let waiting: Vec<(String, u64)> = list_segments(dir.path(), Table::File)
        .iter()
        .map(|p| (format!("fleet/{}", rel(dir.path(), p)), std::fs::metadata(p).unwrap().len()))
        .collect();
    assert_eq!(waiting.len(), 3, "kept locally");

    // One of them reached the store before the crash that kept it from being recorded:
    // the next start finds it there and does not send it again.
    let store = Arc::new(InMemory::new());
    let first = object_store::path::Path::parse(&waiting[0].0).unwrap();
    let bytes = std::fs::read(dir.path().join(waiting[0].0.strip_prefix("fleet/").unwrap())).unwrap();
    let stored = futures::executor::block_on(store.put(&first, bytes.into())).unwrap().e_tag;
    let health = Health::new();
    let mut up = Uploader::with_store(cfg(dir.path(), false), store.clone());
    up.start(retention.clone(), health.clone()).unwrap();
    let s = up.finish(Duration::from_secs(30));
    assert_eq!((s.segments, s.pending, s.failures), (3, 0, 0));
    assert_eq!(keys(&store), waiting);
    // The in-memory store gives each PUT a new ETag: the same one means it was not sent again.
    let now = futures::executor::block_on(store.head(&first)).unwrap().e_tag;
    assert_eq!(now, stored, "the segment already stored was not sent again");
    assert!(list_segments(dir.path(), Table::File).is_empty());
}

#[test]
fn the_stats_table_gets_an_upload_row() {
    let health = Health::new();
    health.upload.enabled.store(true, std::sync::atomic::Ordering::Relaxed);
    health.upload.segments.store(3, std::sync::atomic::Ordering::Relaxed);
    health.upload.bytes.store(3000, std::sync::atomic::Ordering::Relaxed);
    health.upload.pending.store(2, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::Instant::now();
    let mut e = agent_linux::stats::StatsEmitter::new(&[agent_linux::Probe::File], now);
    let b = e.emit(&health, now, 5_000_000);
    assert_eq!(b.num_rows(), 2);
    let col = |name: &str| {
        b.column_by_name(name).unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().clone()
    };
    let probe = b.column_by_name("probe").unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
    assert_eq!((probe.value(0), probe.value(1)), ("file", "upload"));
    assert!(col("upload_segments").is_null(0), "null on probe rows");
    assert_eq!(
        (col("upload_segments").value(1), col("upload_bytes").value(1), col("upload_pending").value(1)),
        (3, 3000, 2)
    );
    health.upload.segments.store(5, std::sync::atomic::Ordering::Relaxed);
    let b = e.emit(&health, now, 6_000_000);
    let segs = b.column_by_name("upload_segments").unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
    assert_eq!(segs.value(1), 2, "counts per interval");
}
