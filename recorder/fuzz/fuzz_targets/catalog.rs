//! capq's catalog checks, as it meets a capture directory: partition directory names and
//! segment footers (`capture_schemas::layout`). Arbitrary bytes (the corpus starts from
//! real segments, so mutations reach the footer's thrift and the schema's metadata) must
//! give a verdict, never a panic, a hang or an allocation as large as a length field
//! claims; a name that parses must lie in range.
#![no_main]

use bytes::Bytes;
use capture_schemas::layout::{check_footer, day_of, hour_of};
use capture_schemas::Table;
use libfuzzer_sys::fuzz_target;

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // Over libfuzzer's hook (which aborts on a panic): the panics `layout::quietly` turns
    // into verdicts are not crashes; any other panic still is.
    HOOK.call_once(capture_schemas::layout::install_panic_hook);
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(h) = day_of(name) {
            assert_eq!(h % 24, 0, "{name}: a day starts at an hour divisible by 24");
            assert!(name.len() == 13, "{name}");
        }
        if let Some(h) = hour_of(name) {
            assert!((0..24).contains(&h), "{name}");
        }
    }
    let segment = Bytes::copy_from_slice(data);
    for t in Table::ALL {
        let _ = check_footer(segment.clone(), &t.schema());
    }
});
