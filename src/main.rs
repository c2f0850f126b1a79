//! The `mpreg` command line: a thin client of the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Long-running nodes log their life; one-shot clients only warnings; a full-screen view
    // nothing (its errors print once the terminal is restored; RUST_LOG still overrides).
    mpreg::init_logging_with(if args.is_serve() {
        "mpreg=info,warn"
    } else if args.is_screen() {
        "off"
    } else {
        "warn"
    });
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpreg: {e}");
            ExitCode::FAILURE
        }
    }
}
