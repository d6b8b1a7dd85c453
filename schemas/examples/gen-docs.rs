//! Writes schemas/README.md from the table definitions.
fn main() -> std::io::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    std::fs::write(path, capture_schemas::tables::render_markdown())?;
    eprintln!("wrote {path}");
    Ok(())
}
