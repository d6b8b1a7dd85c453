//! Local segments read on the thread that asks.
//!
//! object_store's `LocalFileSystem` opens the file and reads each range on tokio's
//! blocking pool, so every read is a hand-off to another thread and back: a point filter
//! on `pid` over 30 M events made 208 reads, 226 opens and 2,519 futex calls, and the
//! kernel's scheduling was about half of its `perf` samples. A segment is read from the
//! page cache in microseconds, so [`InlineLocal`] reads ranges where they are asked for
//! (as DuckDB does), up to [`INLINE_MAX`] bytes a request, and leaves everything else
//! (listing, whole-object and larger reads, conditional reads, writes, and any read that
//! fails or that it would refuse, for its own error) to `LocalFileSystem`.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// The most bytes one request reads inline: a column chunk of a segment is well under
/// it, while a CSV scan (`CREATE EXTERNAL TABLE`) asks for a partition's share of its file
/// at once, which `LocalFileSystem` streams.
pub const INLINE_MAX: u64 = 64 << 20;

/// `LocalFileSystem`, with byte ranges read inline (the module's doc).
#[derive(Debug, Default)]
pub struct InlineLocal {
    inner: LocalFileSystem,
}

impl InlineLocal {
    pub fn new() -> InlineLocal {
        InlineLocal { inner: LocalFileSystem::new() }
    }

    /// `ranges` of `location`, with the file's metadata; `None` where anything is amiss
    /// (no such file, a range past its end, a failed read): `LocalFileSystem` then says why.
    fn read(&self, location: &Path, ranges: &[Range<u64>]) -> Option<(Vec<Bytes>, std::fs::Metadata)> {
        if ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum::<u64>() > INLINE_MAX {
            return None;
        }
        let file = File::open(self.inner.path_to_filesystem(location).ok()?).ok()?;
        let meta = file.metadata().ok()?;
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            if r.start > r.end || r.end > meta.len() {
                return None;
            }
            let mut buf = vec![0u8; (r.end - r.start) as usize];
            file.read_exact_at(&mut buf, r.start).ok()?;
            out.push(Bytes::from(buf));
        }
        Some((out, meta))
    }
}

fn nonempty(r: &GetRange) -> bool {
    matches!(r, GetRange::Bounded(r) if r.start < r.end)
}

/// The e-tag `LocalFileSystem` gives a file: inode, modification time (µs) and size.
fn etag(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("{:x}-{:x}-{:x}", meta.ino(), mtime, meta.len())
}

impl fmt::Display for InlineLocal {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "InlineLocal({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InlineLocal {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let plain = !options.head
            && options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none();
        // An empty range is LocalFileSystem's error (get_ranges answers it with no bytes).
        if let (true, Some(GetRange::Bounded(r))) =
            (plain && options.range.as_ref().is_some_and(nonempty), &options.range)
        {
            if let Some((mut bytes, meta)) = self.read(location, std::slice::from_ref(r)) {
                let meta = ObjectMeta {
                    location: location.clone(),
                    last_modified: meta.modified().map(Into::into).unwrap_or_default(),
                    size: meta.len(),
                    e_tag: Some(etag(&meta)),
                    version: None,
                };
                let data = bytes.pop().unwrap_or_default();
                return Ok(GetResult {
                    payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(data) }).boxed()),
                    meta,
                    range: r.clone(),
                    attributes: Default::default(),
                });
            }
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        match self.read(location, ranges) {
            Some((bytes, _)) => Ok(bytes),
            None => self.inner.get_ranges(location, ranges).await,
        }
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ranges_read_inline_are_those_local_file_system_reads_and_its_errors_stay() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("seg.parquet"), &data).unwrap();
        let path = Path::from_absolute_path(dir.path().join("seg.parquet")).unwrap();
        let (ours, theirs) = (InlineLocal::new(), LocalFileSystem::new());
        let ranges = [0..10, 99_990..100_000, 5..5, 1_000..60_000];
        assert_eq!(ours.get_ranges(&path, &ranges).await.unwrap(), theirs.get_ranges(&path, &ranges).await.unwrap());
        let said = |r: Result<Bytes>| r.map_err(|e| e.to_string());
        for r in ranges {
            let got = said(ours.get_range(&path, r.clone()).await);
            assert_eq!(got, said(theirs.get_range(&path, r.clone()).await), "{r:?}");
            if r.start < r.end {
                assert_eq!(got, Ok(Bytes::copy_from_slice(&data[r.start as usize..r.end as usize])));
            }
        }
        let got =
            ours.get_opts(&path, GetOptions { range: Some((10..20).into()), ..Default::default() }).await.unwrap();
        assert_eq!((got.meta.size, got.range.clone()), (100_000, 10..20));
        assert_eq!(got.meta.e_tag, theirs.head(&path).await.unwrap().e_tag);
        // Read here, not a file handed over for the blocking pool to read.
        assert!(matches!(got.payload, GetResultPayload::Stream(_)));
        assert_eq!(got.bytes().await.unwrap(), Bytes::copy_from_slice(&data[10..20]));
        // Whole reads, and what fails, go to LocalFileSystem, with its errors.
        assert_eq!(ours.get(&path).await.unwrap().bytes().await.unwrap(), Bytes::from(data.clone()));
        // Past the end: what LocalFileSystem answers (a shorter range, or an error).
        for r in [99_000..100_001, 100_001..100_002] {
            assert_eq!(said(ours.get_range(&path, r.clone()).await), said(theirs.get_range(&path, r.clone()).await));
            let one = std::slice::from_ref(&r);
            let (a, b) = (ours.get_ranges(&path, one).await, theirs.get_ranges(&path, one).await);
            assert_eq!(a.map_err(|e| e.to_string()), b.map_err(|e| e.to_string()));
        }
        let missing = Path::from_absolute_path(dir.path().join("gone.parquet")).unwrap();
        let first = [Range { start: 0, end: 1 }];
        assert!(matches!(ours.get_ranges(&missing, &first).await, Err(object_store::Error::NotFound { .. })));
        // More than INLINE_MAX at once goes to LocalFileSystem (a file it streams).
        let big = dir.path().join("big.csv");
        std::fs::File::create(&big).unwrap().set_len(INLINE_MAX + 1).unwrap();
        let big = Path::from_absolute_path(big).unwrap();
        let got = ours.get_opts(&big, GetOptions { range: Some((0..INLINE_MAX + 1).into()), ..Default::default() });
        assert!(matches!(got.await.unwrap().payload, GetResultPayload::File(..)));
        let here = Path::from_absolute_path(dir.path()).unwrap();
        assert_eq!(ours.list(Some(&here)).count().await, 2);
    }
}
