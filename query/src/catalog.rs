//! Finds a capture's segments, checks them, and registers every table with DataFusion.
//!
//! The listing is our own, not DataFusion's: hidden files (segments still being written
//! are `.<name>.tmp`), files not ending in `.parquet` and symlinks are never read. Each
//! segment's footer is read and its schema compared with the table's before DataFusion
//! sees it, so a corrupt or truncated segment is skipped with a warning naming it and the
//! query answers from the rest. `--since/--until` prune whole hour partitions by path and
//! whole segments by the first/last event times in their metadata; DataFusion then prunes
//! row groups by the `ts` statistics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture_schemas::Table;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{col, lit};
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
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
    /// Segments skipped, each with why (already printed as a warning).
    pub skipped: Vec<(PathBuf, String)>,
}

/// `DIR/<table>/dt=YYYY-MM-DD/hr=HH/*.parquet`, without following symlinks or reading
/// hidden files. Returns each file with the hour (since the epoch) of its partition when
/// the path names one.
pub fn list_table(dir: &Path, table: Table) -> Vec<(PathBuf, Option<i64>)> {
    fn walk(p: &Path, hour: Option<i64>, date: Option<i64>, out: &mut Vec<(PathBuf, Option<i64>)>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if ft.is_dir() {
                let (mut d, mut h) = (date, hour);
                if let Some(v) = name.strip_prefix("dt=") {
                    d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .ok()
                        .map(|x| x.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp() / 3600);
                } else if let Some(v) = name.strip_prefix("hr=") {
                    h = v.parse::<i64>().ok().filter(|h| (0..24).contains(h)).and_then(|h| d.map(|d| d + h));
                }
                walk(&e.path(), h, d, out);
            } else if ft.is_file() && name.ends_with(".parquet") {
                out.push((e.path(), hour));
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join(table.name()), None, None, &mut out);
    out.sort();
    out
}

/// Reads a segment's footer: its first/last event times and whether its schema is the
/// table's. `Err` says why the segment cannot be used.
fn check_segment(path: &Path, want: &SchemaRef) -> Result<Option<(i64, i64)>, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let r = SerializedFileReader::new(f).map_err(|e| format!("corrupt or truncated segment: {e}"))?;
    let meta = r.metadata().file_metadata();
    let kv = meta.key_value_metadata();
    let schema = parquet_to_arrow_schema(meta.schema_descr(), kv).map_err(|e| format!("unreadable schema: {e}"))?;
    let same = schema.fields().len() == want.fields().len()
        && schema
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err("its columns differ from this capq's schema (written by another schema version?)".into());
    }
    let get = |k: &str| {
        kv.and_then(|kv| kv.iter().find(|x| x.key == k)).and_then(|x| x.value.as_deref()?.parse::<i64>().ok())
    };
    Ok(get("capture.first_ts_us").zip(get("capture.last_ts_us")))
}

/// Registers every table of the capture in `ctx`: its usable segments, or an empty table
/// with its schema when it has none, filtered to `window`.
pub async fn register_all(ctx: &SessionContext, dir: &Path, window: Window) -> datafusion::error::Result<Report> {
    let mut report = Report::default();
    for table in Table::ALL {
        let schema = table.schema();
        let mut urls = Vec::new();
        for (path, hour) in list_table(dir, table) {
            if let Some(h) = hour {
                if !window.overlaps(h * 3_600_000_000, (h + 1) * 3_600_000_000 - 1) {
                    report.pruned += 1;
                    continue;
                }
            }
            match check_segment(&path, &schema) {
                Ok(Some((first, last))) if !window.overlaps(first, last) => report.pruned += 1,
                Ok(_) => {
                    let abs = std::path::absolute(&path).unwrap_or(path.clone());
                    urls.push(ListingTableUrl::parse(abs.to_string_lossy())?);
                    report.segments += 1;
                }
                Err(why) => {
                    log::warn!("skipping {}: {why}", path.display());
                    report.skipped.push((path, why));
                }
            }
        }
        let provider: Arc<dyn datafusion::catalog::TableProvider> = if urls.is_empty() {
            Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?)
        } else {
            let options = ListingOptions::new(Arc::new(ParquetFormat::new().with_enable_pruning(true)))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema.clone());
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
        ctx.register_table(table.name(), provider)?;
    }
    Ok(report)
}
