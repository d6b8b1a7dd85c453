//! `capture_linux_rotating`: parse arguments, run the recorder, map errors to exit codes.

use clap::Parser;

fn main() {
    let cli = agent_linux::capture::Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|buf, rec| {
            use std::io::Write;
            writeln!(buf, "capture_linux_rotating: {}: {}", rec.level().as_str().to_ascii_lowercase(), rec.args())
        })
        .init();
    if let Err(e) = agent_linux::capture::run(cli) {
        eprintln!("capture_linux_rotating: error: {e:#}");
        std::process::exit(1);
    }
}
