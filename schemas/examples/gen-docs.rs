//! Writes schemas/README.md from the table definitions.
fn main() -> std::io::Result<()> {
    // This run's package directory (a shared target dir may hold another checkout's build).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{manifest_dir}/README.md");
    std::fs::write(&path, capture_schemas::tables::render_markdown())?;
    eprintln!("wrote {path}");
    Ok(())
}
