//! capq's executable is linked at a fixed address (not position-independent): as a PIE the
//! dynamic loader applied 220,000 relocations to 3.4 MB of pointer tables at every start
//! and copied each page it wrote, 2.5 ms of a 4.8 ms `capq 'SELECT 1'` (README, Queries).
//! The libraries it loads, its stack and heap are still placed at random. The recorder,
//! which runs as root, stays position-independent.

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    // Not where a static-pie may be asked for (musl, +crt-static).
    let fixed = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !var("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "crt-static");
    if fixed {
        println!("cargo:rustc-link-arg-bin=capq=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
