//! schemas/README.md must match what the code generates.

#[test]
fn schema_readme_is_up_to_date() {
    // The package directory of this run, not of the build: a target dir shared by two
    // checkouts would otherwise compare the other checkout's file.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{manifest_dir}/README.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == capture_schemas::tables::render_markdown(),
        "schemas/README.md is out of date: run `cargo run -p capture-schemas --example gen-docs`"
    );
}

#[test]
fn every_column_has_a_description_and_unique_name() {
    for t in capture_schemas::Table::ALL {
        let schema = t.schema();
        let mut names = std::collections::HashSet::new();
        for f in schema.fields() {
            assert!(names.insert(f.name().clone()), "{}.{} twice", t.name(), f.name());
            let d = f.metadata().get(capture_schemas::tables::DESCRIPTION_KEY);
            assert!(d.is_some_and(|d| d.len() > 5), "{}.{} has no description", t.name(), f.name());
        }
    }
}
