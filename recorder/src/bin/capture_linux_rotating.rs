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
            let level = match rec.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(buf, "capture_linux_rotating: {level}: {}", rec.args())
        })
        .init();
    if let Err(e) = agent_linux::capture::run(cli) {
        eprintln!("capture_linux_rotating: error: {e:#}");
        std::process::exit(1);
    }
}
