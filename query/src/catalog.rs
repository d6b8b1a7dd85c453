//! Finds a capture's segments, checks them, and registers every table with DataFusion.
//!
//! The listing is our own, not DataFusion's: hidden files (segments still being written
//! are `.<name>.tmp`), files not ending in `.parquet` and symlinks are never read, nor
//! directories other than `dt=YYYY-MM-DD/hr=HH` partitions. Each segment's footer is read
//! and its schema compared with the table's before DataFusion sees it, so a corrupt or
//! truncated segment is skipped, and the query answers from the rest; what was skipped is
//! kept per table, for the caller to name when a query reads that table. `--since/--until` prune whole hour partitions by path and
//! whole segments by the first/last event times in their metadata; DataFusion then prunes
//! row groups by the `ts` statistics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture_schemas::layout::{check_footer, day_of, hour_of};
use capture_schemas::Table;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

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

/// What registering a capture found.
#[derive(Debug, Default)]
pub struct Report {
    pub segments: usize,
    pub pruned: usize,
    /// What was skipped, each with its table and why: segments, and directories that are
    /// not partitions.
    pub skipped: Vec<(Table, PathBuf, String)>,
    /// The segments each table was registered over.
    pub used: Vec<(Table, Vec<PathBuf>)>,
}

/// `DIR/<table>/dt=YYYY-MM-DD/hr=HH/*.parquet`, without following symlinks or reading
/// hidden files. Returns each segment with the hour (since the epoch) of its partition,
/// and the directories that were not partitions (skipped, with why).
pub fn list_table(dir: &Path, table: Table) -> (Vec<(PathBuf, i64)>, Vec<(PathBuf, String)>) {
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
    let mut partitions = |p: &Path, parse: fn(&str) -> Option<i64>, level: &str| -> Vec<(PathBuf, i64)> {
        let mut good = Vec::new();
        for (path, name, _) in entries(p).into_iter().filter(|(_, _, ft)| ft.is_dir()) {
            match parse(&name) {
                Some(v) => good.push((path, v)),
                None => bad.push((path, format!("not a partition directory (expected {level}): ignored"))),
            }
        }
        good
    };
    let mut out = Vec::new();
    for (dt_path, day) in partitions(&dir.join(table.name()), day_of, "dt=YYYY-MM-DD") {
        for (hr_path, h) in partitions(&dt_path, hour_of, "hr=00 to hr=23") {
            for (seg, name, ft) in entries(&hr_path) {
                if ft.is_file() && name.ends_with(".parquet") {
                    out.push((seg, day + h));
                }
            }
        }
    }
    (out, bad)
}

/// Reads a segment's footer: its first/last event times and whether its schema is the
/// table's (`capture_schemas::layout`). `Err` says why the segment cannot be used.
fn check_segment(path: &Path, want: &SchemaRef) -> Result<Option<(i64, i64)>, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    check_footer(f, want)
}

/// Registers every table of the capture in `ctx`: its usable segments, or an empty table
/// with its schema when it has none, filtered to `window`.
pub async fn register_all(ctx: &SessionContext, dir: &Path, window: Window) -> datafusion::error::Result<Report> {
    let mut report = Report::default();
    for table in Table::ALL {
        let schema = table.schema();
        let mut used = Vec::new();
        let (segments, not_partitions) = list_table(dir, table);
        report.skipped.extend(not_partitions.into_iter().map(|(p, why)| (table, p, why)));
        for (path, h) in segments {
            if !window.overlaps(h * 3_600_000_000, (h + 1) * 3_600_000_000 - 1) {
                report.pruned += 1;
                continue;
            }
            match check_segment(&path, &schema) {
                Ok(Some((first, last))) if !window.overlaps(first, last) => report.pruned += 1,
                Ok(_) => used.push(std::path::absolute(&path).unwrap_or(path.clone())),
                Err(why) => report.skipped.push((table, path, why)),
            }
        }
        report.segments += used.len();
        register(ctx, table, &used, window)?;
        report.used.push((table, used));
    }
    Ok(report)
}

/// Registers `table` in `ctx` (replacing it) over `segments`, filtered to `window`.
pub fn register(
    ctx: &SessionContext,
    table: Table,
    segments: &[PathBuf],
    window: Window,
) -> datafusion::error::Result<()> {
    let schema = table.schema();
    let urls = segments
        .iter()
        .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let provider: Arc<dyn datafusion::catalog::TableProvider> = if urls.is_empty() {
        Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?)
    } else {
        let options = ListingOptions::new(Arc::new(ParquetFormat::new().with_enable_pruning(true)))
            .with_file_extension(".parquet");
        let config =
            ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
        Arc::new(ListingTable::try_new(config)?)
    };
    let provider = if window.is_open() {
        provider
    } else {
        let ts = |us: i64| lit(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())));
        let mut df = ctx.read_table(provider)?;
        if let Some(s) = window.since {
            df = df.filter(col("ts").gt_eq(ts(s)))?;
        }
        if let Some(u) = window.until {
            df = df.filter(col("ts").lt(ts(u)))?;
        }
        df.into_view()
    };
    ctx.deregister_table(table.name())?;
    ctx.register_table(table.name(), provider)?;
    Ok(())
}

/// Reads every page of a segment (what a query would decode), for the segments a failed
/// query read: `Err` says why one cannot be read.
pub fn read_whole(path: &Path) -> Result<(), String> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| format!("corrupt segment: {e}"))?;
    for batch in reader {
        batch.map_err(|e| format!("corrupt data in segment: {e}"))?;
    }
    Ok(())
}
