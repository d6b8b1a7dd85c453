//! `--upload s3://bucket/prefix`: ships every published segment to S3-compatible object
//! storage, from a thread of its own, so capture never waits for the network.
//!
//! - **What and when.** A segment is queued once it is published (fsynced, renamed into
//!   place, its directory fsynced: `segment.rs`), and goes to
//!   `PREFIX/TABLE/host=NAME/dt=.../hr=.../NAME.parquet`, the key of its local path. The
//!   queue goes in publish order: the head is retried (back-off from 1 s doubling to 60 s)
//!   until it is confirmed, and nothing passes it.
//! - **Confirmed** means the store answered the PUT with success; the PUT carries the
//!   segment's SHA-256 (`x-amz-checksum-sha256`), which the store checks before it stores
//!   anything. Only then is the local copy removed (or, with `--keep-local`, its name appended to
//!   `DIR/.uploaded`, fsynced).
//! - **Never lost, never twice.** The local segments are the queue: at start, every segment
//!   under the capture directory not named in `.uploaded` is queued again (oldest first),
//!   so a crash, a stop with uploads pending or an outage longer than the run loses
//!   nothing. Before a segment is sent again (after a failed attempt, or at start) the
//!   store is asked for it: an object of that key and size is taken as the upload that
//!   was confirmed too late to be recorded (segment names are unique: table, first event
//!   time, host, sequence), so no segment is stored twice.
//! - **What it costs.** One PUT per segment (and a HEAD before any retry); the segment is
//!   read into memory for the PUT (at most `--max-segment-bytes`).
//!
//! Counters: [`crate::stats::UploadHealth`], in the `stats` table's `upload` row and the
//! status line.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use capture_schemas::layout::host_value;
use capture_schemas::remote::{s3_store, Retries, S3Url};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::dir::Dir;
use crate::retention::Retention;
use crate::stats::Health;

/// The ledger of uploaded segments kept locally (`--keep-local`).
const LEDGER: &str = ".uploaded";

/// Where and how to upload.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub url: S3Url,
    /// The capture directory the segments are published in.
    pub dir: PathBuf,
    /// Keep each segment locally once uploaded.
    pub keep_local: bool,
    /// This host's name (as `host=` directories spell it), for segments of captures
    /// written before the host level.
    pub host: String,
}

/// A segment waiting for its upload.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    /// Its path inside the capture directory, `/`-separated.
    rel: String,
    published: SystemTime,
    /// Ask the store whether it is there before sending it.
    check_first: bool,
}

/// What the uploader did, said at stop.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub segments: u64,
    pub bytes: u64,
    pub failures: u64,
    /// Left for the next start.
    pub pending: u64,
}

pub struct Uploader {
    cfg: Arc<UploadConfig>,
    store: Arc<dyn ObjectStore>,
    tx: Sender<PathBuf>,
    rx: Option<Receiver<PathBuf>>,
    /// Set at stop: the last moment to start or finish an upload.
    deadline: Arc<Mutex<Option<Instant>>>,
    handle: Option<JoinHandle<()>>,
    health: Option<Arc<Health>>,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Store(#[from] object_store::Error),
    #[error("reading the segment: {0}")]
    Local(io::Error),
    #[error("no answer within the time left")]
    Timeout,
}

impl Uploader {
    /// Checks the URL and builds the store client (nothing is sent yet).
    pub fn new(cfg: UploadConfig) -> Result<Uploader, String> {
        let store = s3_store(&cfg.url, Retries::Brief)?;
        Ok(Uploader::with_store(cfg, store))
    }

    /// An uploader to any store (tests).
    pub fn with_store(cfg: UploadConfig, store: Arc<dyn ObjectStore>) -> Uploader {
        let (tx, rx) = unbounded();
        Uploader {
            cfg: Arc::new(cfg),
            store,
            tx,
            rx: Some(rx),
            deadline: Arc::new(Mutex::new(None)),
            handle: None,
            health: None,
        }
    }

    /// The queue the segment writers send each published segment to
    /// (`WriterConfig::published`); segments wait there until [`Uploader::start`].
    pub fn sender(&self) -> Sender<PathBuf> {
        self.tx.clone()
    }

    /// Queues what the capture directory holds that was not uploaded, then starts the
    /// thread. Call with the directory locked (the writers started): no other recorder
    /// owns its segments.
    pub fn start(&mut self, retention: Arc<Retention>, health: Arc<Health>) -> io::Result<()> {
        let Some(rx) = self.rx.take() else { return Ok(()) };
        let root = Dir::open(&self.cfg.dir)?;
        let ledger = read_ledger(&root)?;
        let mut pending = Vec::new();
        let mut still_local = Vec::new();
        // Retention scanned the directory at start: its list is every local segment,
        // oldest first.
        for (path, published) in retention.segments() {
            let Some(rel) = rel_of(&self.cfg.dir, &path) else { continue };
            if ledger.contains(&rel) {
                if self.cfg.keep_local {
                    still_local.push(rel);
                } else if let Err(e) = retention.remove(&path) {
                    log::warn!("upload: removing {} (uploaded before): {e}", path.display());
                }
                continue;
            }
            pending.push(Pending { path, rel, published, check_first: true });
        }
        rewrite_ledger(&root, &still_local)?;
        if !pending.is_empty() {
            log::info!(
                "upload: {} segments under {} wait from before this start",
                pending.len(),
                self.cfg.dir.display()
            );
        }
        health.upload.enabled.store(true, Relaxed);
        self.health = Some(health.clone());
        let (cfg, store, deadline) = (self.cfg.clone(), self.store.clone(), self.deadline.clone());
        self.handle = Some(
            std::thread::Builder::new()
                .name("segment-upload".into())
                .spawn(move || run(rx, root, cfg, store, retention, health, pending.into(), deadline))?,
        );
        Ok(())
    }

    /// Keeps uploading what is queued for at most `drain`, then stops; what is left stays
    /// in the capture directory for the next start. Call after the writers finished.
    pub fn finish(mut self, drain: Duration) -> Summary {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + drain);
        drop(self.tx);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let Some(health) = self.health else { return Summary::default() };
        let u = &health.upload;
        Summary {
            segments: u.segments.load(Relaxed),
            bytes: u.bytes.load(Relaxed),
            failures: u.failures.load(Relaxed),
            pending: u.pending.load(Relaxed),
        }
    }
}

/// `TABLE/host=NAME/dt=/hr=/NAME.parquet` of a segment under `dir`.
fn rel_of(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let parts: Option<Vec<&str>> = rel.iter().map(|c| c.to_str()).collect();
    Some(parts?.join("/"))
}

/// The object key of a segment: its path in the capture, with this host's `host=` level
/// added to a segment of a capture written before the host level.
fn key_of(cfg: &UploadConfig, rel: &str) -> Result<ObjectPath, String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let rel = if parts.len() == 4 {
        format!("{}/host={}/{}", parts[0], host_value(&cfg.host), parts[1..].join("/"))
    } else {
        rel.to_string()
    };
    ObjectPath::parse(cfg.url.key(&rel)).map_err(|e| e.to_string())
}

fn read_ledger(root: &Dir) -> io::Result<HashSet<String>> {
    let mut text = String::new();
    match root.open_read(LEDGER) {
        Ok(mut f) => {
            f.read_to_string(&mut text)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", root.path().join(LEDGER).display()))),
    }
    Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// Replaces the ledger by `names` (the uploaded segments still here), atomically.
fn rewrite_ledger(root: &Dir, names: &[String]) -> io::Result<()> {
    let tmp = ".uploaded.tmp";
    let _ = root.unlink(tmp);
    let mut f = root.create_new(tmp, 0o640)?;
    for n in names {
        writeln!(f, "{n}")?;
    }
    f.sync_all()?;
    root.rename_replace(tmp, LEDGER)?;
    root.sync()
}

/// Appends one name to the ledger and syncs it.
fn append_ledger(root: &Dir, name: &str) -> io::Result<()> {
    let mut f = root.open_append(LEDGER, 0o640)?;
    f.write_all(format!("{name}\n").as_bytes())?;
    f.sync_data()
}

/// Opens `rel` below `root` one component at a time, never through a link.
fn open_segment(root: &Dir, rel: &str) -> io::Result<std::fs::File> {
    let parts: Vec<&str> = rel.split('/').collect();
    let (name, dirs) = parts.split_last().ok_or_else(|| io::Error::other("empty path"))?;
    let mut d = root.sub(dirs.first().ok_or_else(|| io::Error::other("not a segment path"))?)?;
    for p in &dirs[1..] {
        d = d.sub(p)?;
    }
    d.open_read(name)
}

/// Sends one segment; returns its size once the store confirmed it.
async fn upload_one(store: &dyn ObjectStore, root: &Dir, p: &Pending, key: &ObjectPath) -> Result<u64, Failure> {
    let mut data = Vec::new();
    open_segment(root, &p.rel).and_then(|mut f| f.read_to_end(&mut data)).map_err(Failure::Local)?;
    let size = data.len() as u64;
    if p.check_first {
        if let Ok(meta) = store.head(key).await {
            if meta.size == size {
                log::debug!("upload: {key} is already stored");
                return Ok(size);
            }
        }
    }
    store.put(key, PutPayload::from(data)).await?;
    Ok(size)
}

#[allow(clippy::too_many_arguments)]
fn run(
    rx: Receiver<PathBuf>,
    root: Dir,
    cfg: Arc<UploadConfig>,
    store: Arc<dyn ObjectStore>,
    retention: Arc<Retention>,
    health: Arc<Health>,
    mut queue: VecDeque<Pending>,
    deadline: Arc<Mutex<Option<Instant>>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!(
                "upload: cannot start its runtime ({e}): nothing is uploaded this run; the segments stay in {}",
                cfg.dir.display()
            );
            return;
        }
    };
    let u = &health.upload;
    let mut seen: HashSet<PathBuf> = queue.iter().map(|p| p.path.clone()).collect();
    let mut open = true;
    let mut backoff = Duration::from_secs(1);
    let mut last_warning: Option<Instant> = None;
    let stop_at = || *deadline.lock().unwrap_or_else(|e| e.into_inner());
    let mut take = |queue: &mut VecDeque<Pending>, path: PathBuf| {
        if seen.insert(path.clone()) {
            if let Some(rel) = rel_of(&cfg.dir, &path) {
                queue.push_back(Pending { path, rel, published: SystemTime::now(), check_first: false });
            }
        }
    };
    loop {
        while let Ok(p) = rx.try_recv() {
            take(&mut queue, p);
        }
        u.pending.store(queue.len() as u64, Relaxed);
        let oldest = queue.front().map_or(0, |p| {
            p.published.duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_micros().max(1) as i64)
        });
        u.oldest_pending_us.store(oldest, Relaxed);
        let now = Instant::now();
        if stop_at().is_some_and(|d| now >= d) {
            break;
        }
        let Some(head) = queue.front_mut() else {
            if !open {
                break;
            }
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(p) => take(&mut queue, p),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            continue;
        };
        let key = match key_of(&cfg, &head.rel) {
            Ok(k) => k,
            Err(e) => {
                log::error!("upload: {}: no object key for it ({e}): left in place, not uploaded", head.path.display());
                u.failures.fetch_add(1, Relaxed);
                queue.pop_front();
                continue;
            }
        };
        let left = stop_at().map(|d| d.saturating_duration_since(now));
        let attempt = rt.block_on(async {
            match left {
                Some(left) => tokio::time::timeout(left, upload_one(store.as_ref(), &root, head, &key))
                    .await
                    .unwrap_or(Err(Failure::Timeout)),
                None => upload_one(store.as_ref(), &root, head, &key).await,
            }
        });
        match attempt {
            Ok(size) => {
                let done = if cfg.keep_local { append_ledger(&root, &head.rel) } else { retention.remove(&head.path) };
                if let Err(e) = done {
                    log::warn!("upload: {} is uploaded, but recording that failed ({e}): the next start checks the store and does not send it again", head.path.display());
                }
                u.segments.fetch_add(1, Relaxed);
                u.bytes.fetch_add(size, Relaxed);
                log::debug!("upload: {} -> {key} ({size} bytes)", head.rel);
                queue.pop_front();
                backoff = Duration::from_secs(1);
            }
            Err(Failure::Local(e)) if e.kind() == io::ErrorKind::NotFound => {
                log::warn!("upload: {} was deleted before its upload (by --max-total-bytes or --max-age): its rows are not in the store", head.path.display());
                u.failures.fetch_add(1, Relaxed);
                queue.pop_front();
            }
            Err(e) => {
                u.failures.fetch_add(1, Relaxed);
                head.check_first = true;
                let rel = head.rel.clone();
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    log::warn!(
                        "upload of {} to {} failed: {e}; retrying every {}s at most, {} segments wait (they stay in {})",
                        rel,
                        cfg.url,
                        backoff.as_secs(),
                        queue.len(),
                        cfg.dir.display()
                    );
                    last_warning = Some(Instant::now());
                }
                // Wait out the back-off, taking what is published meanwhile.
                let until = Instant::now() + backoff;
                while let Some(wait) = until.checked_duration_since(Instant::now()) {
                    if stop_at().is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    match rx.recv_timeout(wait.min(Duration::from_millis(250))) {
                        Ok(p) => take(&mut queue, p),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            open = false;
                            std::thread::sleep(wait.min(Duration::from_millis(250)));
                        }
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
    u.pending.store(queue.len() as u64, Relaxed);
    if !queue.is_empty() {
        log::warn!(
            "upload: {} segments not uploaded yet; they stay in {} and go at the next start with --upload",
            queue.len(),
            cfg.dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prefix: &str) -> UploadConfig {
        UploadConfig {
            url: S3Url::parse(&format!("s3://bkt/{prefix}")).unwrap().unwrap(),
            dir: PathBuf::from("/cap"),
            keep_local: false,
            host: "web 1".into(),
        }
    }

    #[test]
    fn keys_keep_the_layout_and_give_old_segments_a_host() {
        let c = cfg("fleet");
        let k = key_of(&c, "exec/host=web-2/dt=2026-11-29/hr=23/exec-x.parquet").unwrap();
        assert_eq!(k.as_ref(), "fleet/exec/host=web-2/dt=2026-11-29/hr=23/exec-x.parquet");
        let k = key_of(&c, "exec/dt=2026-11-29/hr=23/exec-x.parquet").unwrap();
        assert_eq!(k.as_ref(), "fleet/exec/host=web_1/dt=2026-11-29/hr=23/exec-x.parquet");
        assert_eq!(
            rel_of(Path::new("/cap"), Path::new("/cap/file/host=a/dt=x/hr=y/f.parquet")).unwrap(),
            "file/host=a/dt=x/hr=y/f.parquet"
        );
    }
}
