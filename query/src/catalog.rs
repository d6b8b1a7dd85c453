//! Finds a capture's segments, checks them, and registers every table with DataFusion.
//!
//! A capture is a local directory or an `s3://bucket/prefix` (what `--upload` ships). The
//! listing is our own, not DataFusion's: hidden files (segments still being written
//! are `.<name>.tmp`), files not ending in `.parquet` and symlinks are never read, nor
//! directories other than `host=NAME/dt=YYYY-MM-DD/hr=HH` partitions (or `dt=/hr=` right
//! under the table, as captures written before the host level lie; their host is the one
//! in each segment's footer). Every table gets the column `host`, last, as hive readers
//! add it. Over S3 the listing goes level by level and lists only the days and hours the
//! time window needs. Each segment's footer is read
//! and its schema compared with the table's before DataFusion sees it, so a corrupt or
//! truncated segment is skipped, and the query answers from the rest; what was skipped is
//! kept per table, for the caller to name when a query reads that table. `--since/--until` prune whole hour partitions by path and
//! whole segments by the first/last event times in their metadata; DataFusion then prunes
//! row groups by the `ts` statistics.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture_schemas::layout::{check_footer, day_of, host_of, hour_of, Footer};
use capture_schemas::remote::S3Url;
use capture_schemas::Table;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, DFSchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::provider_as_source;
use datafusion::datasource::MemTable;
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{col, lit, Expr, LogicalPlan, LogicalPlanBuilder, Projection, Union, UNNAMED_TABLE};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::dictscan::FileSchemas;

/// A half-open time window in µs since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    fn overlaps(&self, lo: i64, hi_inclusive: i64) -> bool {
        self.since.is_none_or(|s| hi_inclusive >= s) && self.until.is_none_or(|u| lo < u)
    }

    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

/// Where the capture lies.
#[derive(Debug, Clone)]
pub enum Source {
    Local(PathBuf),
    S3 { url: S3Url, store: Arc<dyn ObjectStore> },
}

impl Source {
    /// `s3://bucket/prefix` or a local directory. Over S3 nothing is sent yet.
    pub fn parse(dir: &Path) -> Result<Source, String> {
        match S3Url::parse(&dir.to_string_lossy())? {
            Some(url) => {
                let store = s3_store(&url)?;
                Ok(Source::S3 { url, store })
            }
            None => Ok(Source::Local(dir.to_path_buf())),
        }
    }
}

#[cfg(feature = "s3")]
fn s3_store(url: &S3Url) -> Result<Arc<dyn ObjectStore>, String> {
    Ok(capture_schemas::remote::s3_store(url, capture_schemas::remote::Retries::Patient)?)
}

/// A build without feature `s3` names the rebuild that reads `url`.
#[cfg(not(feature = "s3"))]
fn s3_store(url: &S3Url) -> Result<Arc<dyn ObjectStore>, String> {
    Err(format!(
        "{url}: this capq was built without S3 support; rebuild it with `cargo build --release -p capq --features s3`"
    ))
}

/// One segment: where it is (a local path, or `s3://bucket/key`) and its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub host: String,
}

/// What registering a capture found.
#[derive(Debug, Default)]
pub struct Report {
    pub segments: usize,
    pub pruned: usize,
    /// What was skipped, each with its table and why: segments, and directories that are
    /// not partitions.
    pub skipped: Vec<(Table, PathBuf, String)>,
    /// The segments each table was registered over.
    pub used: Vec<(Table, Vec<Segment>)>,
}

/// A segment found by a listing: where, the hour (since the epoch) of its partition, and
/// the host its `host=` directory names (none in a capture written before that level).
pub type Listed = (PathBuf, i64, Option<String>);

/// `DIR/<table>/host=NAME/dt=YYYY-MM-DD/hr=HH/*.parquet` (and `DIR/<table>/dt=/hr=/*.parquet`),
/// without following symlinks or reading hidden files. Returns each segment, and the
/// directories that were not partitions (skipped, with why).
pub fn list_table(dir: &Path, table: Table) -> (Vec<Listed>, Vec<(PathBuf, String)>) {
    let entries = |p: &Path| -> Vec<(PathBuf, String, std::fs::FileType)> {
        let Ok(rd) = std::fs::read_dir(p) else { return Vec::new() };
        let mut v: Vec<_> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ft = e.file_type().ok()?;
                (!name.starts_with('.')).then(|| (e.path(), name, ft))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let mut bad = Vec::new();
    // The directories under `p` whose names `parse` takes, with its value; the others are
    // named in `bad` as not partitions of the `level` expected there.
    // The table's own directory holds `host=` directories beside `dt=` ones: not named.
    let mut partitions = |p: &Path, parse: fn(&str) -> Option<i64>, level: &str| -> Vec<(PathBuf, i64)> {
        let mut good = Vec::new();
        for (path, name, _) in entries(p).into_iter().filter(|(_, _, ft)| ft.is_dir()) {
            match parse(&name) {
                Some(v) => good.push((path, v)),
                None if host_of(&name).is_some() => {}
                None => bad.push((path, format!("not a partition directory (expected {level}): ignored"))),
            }
        }
        good
    };
    // The table's `host=` directories, and itself when it holds `dt=` ones.
    let top = dir.join(table.name());
    let mut roots: Vec<(PathBuf, Option<String>)> = Vec::new();
    let mut legacy = false;
    for (path, name, ft) in entries(&top) {
        if !ft.is_dir() {
            continue;
        }
        match host_of(&name) {
            Some(h) => roots.push((path, Some(h.to_string()))),
            None => legacy = true,
        }
    }
    if legacy {
        roots.push((top, None));
    }
    let mut out = Vec::new();
    for (root, host) in roots {
        let level = if host.is_some() { "dt=YYYY-MM-DD" } else { "host=NAME or dt=YYYY-MM-DD" };
        let days: Vec<(PathBuf, i64)> = partitions(&root, day_of, level);
        for (dt_path, day) in days {
            for (hr_path, h) in partitions(&dt_path, hour_of, "hr=00 to hr=23") {
                for (seg, name, ft) in entries(&hr_path) {
                    if ft.is_file() && name.ends_with(".parquet") {
                        out.push((seg, day + h, host.clone()));
                    }
                }
            }
        }
    }
    (out, bad)
}

/// Reads a segment's footer: its first/last event times, host and whether its schema is
/// the table's (`capture_schemas::layout`); with the size and time of the file read,
/// which say whether DataFusion may take that footer as its own. `Err` says why the
/// segment cannot be used.
fn check_segment(path: &Path, want: &SchemaRef) -> Result<(Footer, std::fs::Metadata), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    Ok((check_footer(f, want)?, m))
}

/// Gives DataFusion the footer the catalog read (a scan would read and decode it again:
/// 36% of the CPU of a query answered from the footers alone; README, Queries). Its
/// metadata cache takes an entry as the file's while the file keeps that size and time,
/// which for a local file are what its store says of it.
fn share_footer(ctx: &SessionContext, location: &ObjectPath, file: &std::fs::Metadata, footer: &Footer) {
    let Ok(modified) = file.modified() else { return };
    let meta = ObjectMeta {
        location: location.clone(),
        last_modified: modified.into(),
        size: file.len(),
        e_tag: None,
        version: None,
    };
    let entry = CachedFileMetadataEntry::new(meta, Arc::new(CachedParquetMetaData::new(footer.metadata.clone())));
    ctx.runtime_env().cache_manager.get_file_metadata_cache().put(location, entry);
}

/// `f` of each of `items`, in order, run by as many threads as there are CPUs (up to one
/// per two items) taking the next item as they finish one: decoding footers is most of
/// the catalog's time.
fn each_on_every_cpu<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpus.min(items.len() / 2);
    if threads < 2 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(item) = items.get(i) else { return done };
            done.push((i, f(item)));
        }
    };
    let mut all: Vec<(usize, U)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, u)| u).collect()
}

fn hour_range(h: i64) -> (i64, i64) {
    (h * 3_600_000_000, (h + 1) * 3_600_000_000 - 1)
}

/// Lists a table's segments under an S3 prefix, one level at a time: only the days and
/// hours `window` needs are listed.
async fn list_s3(
    store: &Arc<dyn ObjectStore>,
    url: &S3Url,
    table: Table,
    window: Window,
    report: &mut Report,
) -> datafusion::error::Result<Vec<(ObjectPath, u64, Option<String>)>> {
    let dirs = |prefix: ObjectPath| {
        let store = store.clone();
        async move {
            let l = store.list_with_delimiter(Some(&prefix)).await?;
            let names = |p: &ObjectPath| p.filename().map(str::to_string).unwrap_or_default();
            let subs: Vec<(String, ObjectPath)> = l.common_prefixes.iter().map(|p| (names(p), p.clone())).collect();
            Ok::<_, object_store::Error>((subs, l.objects))
        }
    };
    let url_of = |p: &ObjectPath| PathBuf::from(format!("s3://{}/{p}", url.bucket));
    let top =
        ObjectPath::parse(url.key(table.name())).map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
    let mut roots: Vec<(ObjectPath, Option<String>)> = Vec::new();
    let mut legacy = false;
    for (name, p) in dirs(top.clone()).await?.0 {
        match host_of(&name) {
            Some(h) => roots.push((p, Some(h.to_string()))),
            None if day_of(&name).is_some() => legacy = true,
            None => report.skipped.push((
                table,
                url_of(&p),
                "not a partition directory (expected host=NAME): ignored".into(),
            )),
        }
    }
    if legacy {
        roots.push((top, None));
    }
    // The hour prefixes the window needs, from each root's days.
    let mut hours = Vec::new();
    for (root, host) in roots {
        for (name, p) in dirs(root).await?.0 {
            let Some(day) = day_of(&name) else {
                // Under the table itself, the first pass named what is not a partition.
                if host.is_some() {
                    report.skipped.push((
                        table,
                        url_of(&p),
                        "not a partition directory (expected dt=YYYY-MM-DD): ignored".into(),
                    ));
                }
                continue;
            };
            if !window.overlaps(day * 3_600_000_000, (day + 24) * 3_600_000_000 - 1) {
                report.pruned += 1;
                continue;
            }
            for (hname, hp) in dirs(p).await?.0 {
                match hour_of(&hname) {
                    Some(h) if window.overlaps(hour_range(day + h).0, hour_range(day + h).1) => {
                        hours.push((hp, host.clone()))
                    }
                    Some(_) => report.pruned += 1,
                    None => report.skipped.push((
                        table,
                        url_of(&hp),
                        "not a partition directory (expected hr=00 to hr=23): ignored".into(),
                    )),
                }
            }
        }
    }
    let listed: Vec<Vec<(ObjectPath, u64, Option<String>)>> = futures::stream::iter(hours)
        .map(|(hp, host)| {
            let dirs = &dirs;
            async move {
                let objects = dirs(hp).await?.1;
                Ok::<_, object_store::Error>(
                    objects
                        .into_iter()
                        .filter(|o| {
                            o.location.filename().is_some_and(|n| !n.starts_with('.') && n.ends_with(".parquet"))
                        })
                        .map(|o| (o.location, o.size, host.clone()))
                        .collect(),
                )
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(listed.into_iter().flatten().collect())
}

/// Reads a remote segment's footer (one ranged GET, two when the footer is larger than
/// 64 KiB).
async fn check_remote(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    size: u64,
    want: &SchemaRef,
) -> Result<Footer, String> {
    if size < 12 {
        return Err("corrupt or truncated segment: too short to be Parquet".into());
    }
    let tail = size.min(64 << 10);
    let mut bytes = store.get_range(path, size - tail..size).await.map_err(|e| e.to_string())?;
    let meta_len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().expect("4 bytes")) as u64;
    if meta_len + 8 > tail && meta_len + 8 <= size {
        bytes = store.get_range(path, size - meta_len - 8..size).await.map_err(|e| e.to_string())?;
    }
    check_footer(bytes, want)
}

/// Registers every table with no segments (its schema, no rows), and the S3 store: what
/// a statement needs of the tables it does not read. [`load`] registers one over its
/// segments.
pub fn register_empty(ctx: &SessionContext, src: &Source, window: Window) -> datafusion::error::Result<()> {
    if let Source::S3 { url, store } = src {
        let base = ObjectStoreUrl::parse(format!("s3://{}", url.bucket))?;
        ctx.register_object_store(base.as_ref(), store.clone());
    }
    for table in Table::ALL {
        register(ctx, table, &[], window)?;
    }
    Ok(())
}

/// Lists `table`'s segments, reads each one's footer, and registers the table over those
/// it can use, adding to `report` what was used, pruned and skipped.
pub async fn load(
    ctx: &SessionContext,
    src: &Source,
    table: Table,
    window: Window,
    report: &mut Report,
    files: &FileSchemas,
) -> datafusion::error::Result<()> {
    let schema = table.schema();
    let mut used = Vec::new();
    // Each segment's footer, with the local file's size and time.
    type Checked = Result<(Footer, Option<std::fs::Metadata>), String>;
    let checked: Vec<(PathBuf, Option<String>, Checked)> = match src {
        Source::Local(dir) => {
            let (segments, not_partitions) = list_table(dir, table);
            report.skipped.extend(not_partitions.into_iter().map(|(p, why)| (table, p, why)));
            let (wanted, pruned): (Vec<Listed>, Vec<Listed>) = segments.into_iter().partition(|(_, h, _)| {
                let (lo, hi) = hour_range(*h);
                window.overlaps(lo, hi)
            });
            report.pruned += pruned.len();
            let footers = each_on_every_cpu(&wanted, |(path, _, _)| check_segment(path, &schema));
            wanted
                .into_iter()
                .zip(footers)
                .map(|((path, _, host), checked)| {
                    (std::path::absolute(&path).unwrap_or(path), host, checked.map(|(f, m)| (f, Some(m))))
                })
                .collect()
        }
        Source::S3 { url, store } => {
            let listed = list_s3(store, url, table, window, report).await?;
            futures::stream::iter(listed)
                .map(|(p, size, host)| {
                    let schema = schema.clone();
                    async move {
                        let footer = check_remote(store.as_ref(), &p, size, &schema).await;
                        (PathBuf::from(format!("s3://{}/{p}", url.bucket)), host, footer.map(|f| (f, None)))
                    }
                })
                .buffered(32)
                .collect()
                .await
        }
    };
    for (path, host, checked) in checked {
        match checked {
            Ok((f, _)) if f.times.is_some_and(|(first, last)| !window.overlaps(first, last)) => report.pruned += 1,
            Ok((f, file)) => {
                let url = ListingTableUrl::parse(path.to_string_lossy())?;
                if let Some(file) = &file {
                    share_footer(ctx, url.prefix(), file, &f);
                }
                files.insert(url.prefix().to_string(), &f.schema, f.dictionary);
                let host = host.or(f.host).unwrap_or_else(|| "unknown".into());
                used.push(Segment { path, host });
            }
            Err(why) => report.skipped.push((table, path, why)),
        }
    }
    report.segments += used.len();
    register(ctx, table, &used, window)?;
    report.used.push((table, used));
    Ok(())
}

/// A table's schema with the `host` partition column last.
pub fn with_host(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(capture_schemas::tables::HOST_COLUMN.field()));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with its strings read as views (`Utf8View`): the Parquet reader then makes a
/// 16-byte view per row into the dictionary page it decoded instead of copying each
/// string (a group-by on `path` over 24 M rows: -22%, a filter on it: -52% or more).
/// Lists of strings too (`argv`, `envp`): the reader makes them so only where it is told
/// per file (dictscan::ViewLists), which DataFusion does not do for a list's items.
fn view_types(schema: &SchemaRef) -> SchemaRef {
    retype(schema, &DataType::Utf8, DataType::Utf8View)
}

/// `schema` with its top-level columns of type `from`, and the items of its top-level
/// lists of `from`, made `to`.
pub fn retype(schema: &SchemaRef, from: &DataType, to: DataType) -> SchemaRef {
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .map(|f| match retyped(f.data_type(), from, &to) {
            Some(t) => Arc::new(f.as_ref().clone().with_data_type(t)),
            None => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `t` with `from` made `to`, itself or as a list's items; `None` where it has no `from`.
pub fn retyped(t: &DataType, from: &DataType, to: &DataType) -> Option<DataType> {
    match t {
        t if t == from => Some(to.clone()),
        DataType::List(item) if item.data_type() == from => {
            Some(DataType::List(Arc::new(item.as_ref().clone().with_data_type(to.clone()))))
        }
        _ => None,
    }
}

/// Registers `table` in `ctx` (replacing it) over `segments`, filtered to `window`: one
/// listing per host, each with its `host` column, as one table.
pub fn register(
    ctx: &SessionContext,
    table: Table,
    segments: &[Segment],
    window: Window,
) -> datafusion::error::Result<()> {
    let schema = view_types(&table.schema());
    let mut by_host: BTreeMap<&str, Vec<ListingTableUrl>> = BTreeMap::new();
    for s in segments {
        by_host.entry(s.host.as_str()).or_default().push(ListingTableUrl::parse(s.path.to_string_lossy())?);
    }
    // Each host's listing with its host column, put together as one union of them all:
    // plans made directly, not through DataFrames, which clone the session's state at each
    // step and union two plans at a time (a fleet of 150 hosts: 281 ms of CPU for `SELECT
    // 1`, against 159 ms now; README, Queries). The first host's projection is checked and
    // its schema kept for the others, which differ only in the host's value.
    let mut hosts: Vec<Arc<LogicalPlan>> = Vec::with_capacity(by_host.len());
    let mut projected: Option<DFSchemaRef> = None;
    for (host, urls) in by_host {
        let options = ListingOptions::new(Arc::new(ParquetFormat::new().with_enable_pruning(true)))
            .with_file_extension(".parquet");
        let config =
            ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
        let source = provider_as_source(Arc::new(ListingTable::try_new(config)?));
        let scan = LogicalPlanBuilder::scan(UNNAMED_TABLE, source, None)?.build()?;
        let columns = schema.fields().iter().map(|f| col(Column::new(Some(UNNAMED_TABLE), f.name())));
        let columns: Vec<Expr> = columns.chain([lit(host).alias("host")]).collect();
        let plan = match &projected {
            Some(p) => LogicalPlan::Projection(Projection::try_new_with_schema(columns, Arc::new(scan), p.clone())?),
            None => LogicalPlanBuilder::from(scan).project(columns)?.build()?,
        };
        projected = Some(plan.schema().clone());
        hosts.push(Arc::new(plan));
    }
    let mut df = match hosts.len() {
        0 => ctx.read_table(Arc::new(MemTable::try_new(with_host(&schema), vec![vec![]])?))?,
        1 => DataFrame::new(ctx.state(), Arc::unwrap_or_clone(hosts.swap_remove(0))),
        _ => DataFrame::new(ctx.state(), LogicalPlan::Union(Union::try_new_with_loose_types(hosts)?)),
    };
    let ts = |us: i64| lit(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())));
    if let Some(s) = window.since {
        df = df.filter(col("ts").gt_eq(ts(s)))?;
    }
    if let Some(u) = window.until {
        df = df.filter(col("ts").lt(ts(u)))?;
    }
    ctx.deregister_table(table.name())?;
    ctx.register_table(table.name(), df.into_view())?;
    Ok(())
}

/// Reads every page of a segment (what a query would decode), for the segments a failed
/// query read: `Err` says why one cannot be read.
pub async fn read_whole(src: &Source, path: &Path) -> Result<(), String> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = match src {
        Source::Local(_) => {
            let f = File::open(path).map_err(|e| e.to_string())?;
            ParquetRecordBatchReaderBuilder::try_new(f).and_then(|b| b.build())
        }
        Source::S3 { url, store } => {
            let key = path.to_string_lossy();
            let key = key.strip_prefix(&format!("s3://{}/", url.bucket)).unwrap_or(&key);
            let key = ObjectPath::parse(key).map_err(|e| e.to_string())?;
            let bytes = store.get(&key).await.map_err(|e| e.to_string())?.bytes().await.map_err(|e| e.to_string())?;
            ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build())
        }
    }
    .map_err(|e| format!("corrupt segment: {e}"))?;
    for batch in reader {
        batch.map_err(|e| format!("corrupt data in segment: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    #[tokio::test]
    async fn s3_listing_goes_level_by_level_and_only_into_the_window() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let keys = [
            "cap/exec/host=a/dt=2026-01-01/hr=23/exec-1.parquet",
            "cap/exec/host=a/dt=2026-01-02/hr=00/exec-2.parquet",
            "cap/exec/host=a/dt=2026-01-02/hr=00/.exec-3.parquet.tmp",
            "cap/exec/host=a/dt=2026-01-02/hr=05/exec-4.parquet",
            "cap/exec/host=b/dt=2026-01-02/hr=00/exec-5.parquet",
            "cap/exec/dt=2026-01-02/hr=00/exec-old.parquet",
            "cap/exec/junk/x.parquet",
            "cap/file/host=a/dt=2026-01-02/hr=00/file-1.parquet",
        ];
        for k in keys {
            store.put(&ObjectPath::parse(k).unwrap(), PutPayload::from_static(b"x")).await.unwrap();
        }
        let url = S3Url::parse("s3://bkt/cap").unwrap().unwrap();
        let day2 = 20_455 * 86_400_000_000; // 2026-01-02T00:00Z in µs
        let window = Window { since: Some(day2), until: Some(day2 + 3_600_000_000) };
        let mut report = Report::default();
        let got = list_s3(&store, &url, Table::Exec, window, &mut report).await.unwrap();
        let mut got: Vec<(String, Option<String>)> = got.into_iter().map(|(p, _, h)| (p.to_string(), h)).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("cap/exec/dt=2026-01-02/hr=00/exec-old.parquet".to_string(), None),
                ("cap/exec/host=a/dt=2026-01-02/hr=00/exec-2.parquet".to_string(), Some("a".to_string())),
                ("cap/exec/host=b/dt=2026-01-02/hr=00/exec-5.parquet".to_string(), Some("b".to_string())),
            ]
        );
        // Day 1 of host a was pruned whole (its hours never listed), and hour 05 of day 2.
        assert_eq!(report.pruned, 2);
        assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
        assert!(report.skipped[0].1.ends_with("cap/exec/junk"), "{:?}", report.skipped);
    }
}
