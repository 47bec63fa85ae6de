//! The `ikkuna` command: run the gateway, check a configuration, or try it with the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ikkuna::config;

#[derive(Parser)]
#[command(
    name = "ikkuna",
    version,
    about = "A window onto Finnish authority mail for private digipost operators"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file (`IKKUNA_…` variables override its keys).
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and the files it names, report every error, and exit.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Run the built-in sandbox DVV backend and the gateway together on loopback.
    #[cfg(feature = "sandbox")]
    Sandbox {
        /// Where the sandbox keeps its throwaway PKI, state and the gateway's store.
        #[arg(long, default_value = "data/sandbox")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ikkuna: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run { config } => {
            ikkuna::telemetry::init_logs(ikkuna::telemetry::LogFormat::from_env_or(
                ikkuna::telemetry::LogFormat::Json,
            ));
            runtime.block_on(run(config))
        }
        Command::CheckConfig { file } => check_config(&file),
        #[cfg(feature = "sandbox")]
        Command::Sandbox { data_dir } => {
            ikkuna::telemetry::init_logs(ikkuna::telemetry::LogFormat::from_env_or(
                ikkuna::telemetry::LogFormat::Text,
            ));
            runtime.block_on(ikkuna::sandbox_cmd::run(data_dir))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ikkuna: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = config::load(&path, &config::process_env)?;
    let gateway = ikkuna::app::start(config).await?;
    ikkuna::app::wait_for_stop_signal().await;
    tracing::info!("stopping: draining requests in flight");
    if tokio::time::timeout(ikkuna::app::STOP_GRACE, gateway.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("stop grace period passed; exiting with work in flight");
    }
    Ok(())
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    match config::load(path, &config::process_env) {
        Ok(_) => {
            println!("{}: configuration is valid", path.display());
            Ok(())
        }
        Err(errors) => {
            eprintln!("{}: configuration is invalid:", path.display());
            Err(errors.into())
        }
    }
}
