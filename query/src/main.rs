//! `capq`: parse arguments, run, map the result to an exit code.

use clap::Parser;

fn main() {
    capture_schemas::layout::install_panic_hook();
    let cli = capq::Cli::parse();
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
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
            writeln!(buf, "capq: {level}: {}", rec.args())
        })
        .init();
    let quiet = cli.quiet;
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(capq::STACK_BYTES).build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("capq: error: cannot start the runtime: {e}");
                std::process::exit(1);
            }
        };
    // Planning and running deep SQL recurses once per level of nesting: this thread and the
    // runtime's get stacks sized for the deepest statement capq accepts (capq::MAX_DEPTH).
    let ran = std::thread::Builder::new()
        .name("capq".into())
        .stack_size(capq::STACK_BYTES)
        .spawn(move || runtime.block_on(capq::run(cli)))
        .map_err(|e| capq::Failure { message: format!("cannot start a thread: {e}"), code: 1 })
        .and_then(|t| t.join().unwrap_or_else(|_| Err(capq::Failure { message: "capq panicked".into(), code: 1 })));
    let code = match ran {
        Ok(capq::Outcome::Ok) => 0,
        Ok(capq::Outcome::Partial) => {
            if !quiet {
                eprintln!("capq: warning: some segments were skipped (see above); the answer covers the rest");
            }
            3
        }
        Err(f) if f.code == 0 => 0, // the reader closed the pipe: nothing more to say
        Err(f) => {
            eprintln!("capq: error: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}
