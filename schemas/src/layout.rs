//! The capture directory's layout, as readers check it: partition directory names
//! (`host=NAME/dt=YYYY-MM-DD/hr=HH`, or `dt=YYYY-MM-DD/hr=HH` in captures written before
//! the host level) and a segment's footer. capq reads through these; the
//! `catalog` fuzz target (recorder/fuzz) feeds them arbitrary names and bytes.

use std::cell::Cell;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::basic::Encoding;
use parquet::file::metadata::{ColumnChunkMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::ChunkReader;

thread_local! {
    /// Set while a reader that may panic on bad input runs under `catch_unwind`.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err` without a word on stderr (with
/// [`install_panic_hook`] installed): arrow-ipc 59 panics on some malformed schemas (an
/// `Int` of bit width 0 in a segment's embedded Arrow schema, found by the `catalog` fuzz
/// target) where it should return an error.
pub fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> std::thread::Result<T> {
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(f);
    QUIET.with(|q| q.set(false));
    r
}

/// Keeps the panic hook in place (it prints, and a fuzzer's aborts) except for panics
/// [`quietly`] catches. Call once, at start.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.with(|q| q.get()) {
            previous(info)
        }
    }));
}

/// A host name as it is spelled in paths (`host=NAME` directories, segment names): every
/// character but `[A-Za-z0-9.-]` becomes `_`, so the name is one path component that hive
/// readers take as it is (no `=`, `/`, `%` to escape).
pub fn host_value(host: &str) -> String {
    let s: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    if s.is_empty() || s == "." || s == ".." {
        "unknown".into()
    } else {
        s
    }
}

/// The host a `host=NAME` directory names; `None` for anything else.
pub fn host_of(name: &str) -> Option<&str> {
    name.strip_prefix("host=").filter(|v| !v.is_empty() && host_value(v) == *v)
}

/// The hour (since the epoch) a `dt=YYYY-MM-DD` directory's day starts at; `None` for
/// anything else (only the canonical spelling: `dt=2026-1-5` parses, but is not one).
pub fn day_of(name: &str) -> Option<i64> {
    let v = name.strip_prefix("dt=")?;
    if v.len() != 10 || v.as_bytes()[4] != b'-' || v.as_bytes()[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        let s = v.get(r)?;
        s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<i64>().ok()).flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d) * 24)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The hour of the day an `hr=HH` directory names (`hr=00` to `hr=23`).
pub fn hour_of(name: &str) -> Option<i64> {
    let v = name.strip_prefix("hr=")?;
    if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<i64>().ok().filter(|h| *h < 24)
}

/// What a segment's footer says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Footer {
    /// First and last event times, µs since the epoch.
    pub times: Option<(i64, i64)>,
    /// The recording host (`capture.host`), as [`host_value`] spells it.
    pub host: Option<String>,
    /// The segment's own Arrow schema (its columns are a prefix of the table's, field
    /// metadata as written).
    pub schema: SchemaRef,
    /// The top-level columns of one Parquet column each whose every page holding values is
    /// dictionary-encoded, in every row group (a reader can hand them over as dictionaries
    /// without hashing a row).
    pub dictionary: Vec<String>,
    /// The footer as read, for a reader that would otherwise read it again.
    pub metadata: Arc<ParquetMetaData>,
}

/// Reads a segment's footer (not its page index): whether its columns are `want`'s
/// (names and types, in order; a segment of an older schema version may lack trailing
/// nullable columns, which read as null), its first/last event times and host from its
/// metadata. `Err` says, in a few words, why it cannot be used.
pub fn check_footer<R: ChunkReader + 'static>(data: R, want: &Schema) -> Result<Footer, String> {
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Skip)
        .parse_and_finish(&data)
        .map_err(|e| format!("corrupt or truncated segment: {e}"))?;
    let r = Arc::new(metadata);
    let meta = r.file_metadata();
    let kv = meta.key_value_metadata();
    let schema = quietly(|| parquet_to_arrow_schema(meta.schema_descr(), kv))
        .map_err(|_| "unreadable schema: its embedded Arrow schema is malformed".to_string())?
        .map_err(|e| format!("unreadable schema: {e}"))?;
    let n = schema.fields().len();
    let same = n <= want.fields().len()
        && want.fields()[n..].iter().all(|f| f.is_nullable())
        && schema
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err("its columns differ from this capq's schema (written by another schema version?)".into());
    }
    let descr = meta.schema_descr();
    let dictionary = (0..descr.num_columns())
        .filter(|&i| descr.column(i).path().parts().len() == 1)
        .filter(|&i| r.row_groups().iter().all(|g| dictionary_only(g.column(i))))
        .map(|i| descr.column(i).path().parts()[0].clone())
        .collect();
    let text = |k: &str| kv.and_then(|kv| kv.iter().find(|x| x.key == k)).and_then(|x| x.value.as_deref());
    let num = |k: &str| text(k).and_then(|v| v.parse::<i64>().ok());
    Ok(Footer {
        times: num("capture.first_ts_us").zip(num("capture.last_ts_us")),
        host: text("capture.host").map(host_value),
        schema: Arc::new(schema),
        dictionary,
        metadata: r.clone(),
    })
}

/// Whether every data page of a column chunk is dictionary-encoded (its writer recorded
/// which encodings its pages used; without that record, no).
fn dictionary_only(c: &ColumnChunkMetaData) -> bool {
    c.dictionary_page_offset().is_some()
        && c.page_encoding_stats_mask()
            .is_some_and(|m| m.is_only(Encoding::RLE_DICTIONARY) || m.is_only(Encoding::PLAIN_DICTIONARY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert_eq!(day_of("dt=1970-01-01"), Some(0));
        assert_eq!(day_of("dt=2026-01-15"), Some(20_468 * 24));
        assert_eq!(day_of("dt=2024-02-29"), Some(19_782 * 24));
        for bad in
            ["dt=2023-02-29", "dt=2026-1-5", "dt=notadate", "dt=2026-13-01", "dt=+026-01-01", "dt=2026-01-1x", "x"]
        {
            assert_eq!(day_of(bad), None, "{bad}");
        }
        assert_eq!((hour_of("hr=00"), hour_of("hr=23")), (Some(0), Some(23)));
        for bad in ["hr=24", "hr=zz", "hr=1", "hr=+1", "hr=001"] {
            assert_eq!(hour_of(bad), None, "{bad}");
        }
        assert_eq!(host_of("host=web-1.eu"), Some("web-1.eu"));
        for bad in ["host=", "host=a b", "host=a%2F", "dt=2026-01-01", "host=.."] {
            assert_eq!(host_of(bad), None, "{bad}");
        }
        assert_eq!(host_value("db 1/x"), "db_1_x");
        assert_eq!(host_value(""), "unknown");
    }
}
