//! `capture_linux_rotating`: parse arguments, run the recorder, map errors to exit codes.

use clap::Parser;

fn main() {
    // Panics that recovery catches (malformed leftovers of a crash) stay quiet; any other
    // prints as usual.
    capture_schemas::layout::install_panic_hook();
    let cli = match agent_linux::capture::Cli::try_parse() {
        Ok(cli) => cli,
        // A bad argument is one line, like every other error (clap adds a usage hint).
        Err(e) if e.use_stderr() => {
            // Its lines up to the usage hint, joined ("required arguments were not
            // provided:" names them on the next line), without clap's pointer to --help.
            let msg = e.to_string();
            let said: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect();
            let first = said.join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!("capture_linux_rotating: error: {first} (--help lists the options)");
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
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
        let lost = e.downcast_ref::<agent_linux::capture::SegmentsLost>().is_some();
        std::process::exit(if lost { 3 } else { 1 });
    }
}
