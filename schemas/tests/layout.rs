//! Segment footers that once made the reader panic: a verdict instead.

use capture_schemas::layout::{check_footer, install_panic_hook};
use capture_schemas::Table;

#[test]
fn a_malformed_embedded_arrow_schema_is_a_verdict_not_a_panic() {
    install_panic_hook();
    // Found by the `catalog` fuzz target (a stats segment, mutated): its ARROW:schema
    // metadata declares an Int of bit width 0, on which arrow-ipc 59 panics.
    // The package directory of this run (not the compile-time one: a target dir shared by
    // two checkouts keeps the test binary of the other, whose path may be gone).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let bytes = std::fs::read(format!("{manifest_dir}/tests/data/malformed-arrow-schema.parquet")).unwrap();
    let got = check_footer(bytes::Bytes::from(bytes), &Table::Stats.schema());
    assert_eq!(got, Err("unreadable schema: its embedded Arrow schema is malformed".to_string()));
}
