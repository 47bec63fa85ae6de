//! `ikkuna-sandbox`: run the reference DVV backend, or mint a citizen assertion for a demo.
//! The same commands are `ikkuna sandbox serve|token` in the gateway binary.

use std::process::ExitCode;

use clap::Parser;
use ikkuna_sandbox::cli::Command;

/// Reference implementation of the DVV viewing-connection API for Ikkuna.
#[derive(Parser)]
#[command(name = "ikkuna-sandbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match ikkuna_sandbox::cli::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ikkuna-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
