//! The `ikkuna` command: run the gateway, check a configuration, or try it with the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ikkuna::config;

#[cfg(feature = "sandbox")]
mod sandbox_cmd;

/// The example operator inbox, compiled into the binary so `ikkuna sandbox --open` serves it from
/// the same build (`cargo run --example operator_backend` would build the dev-dependencies too).
#[cfg(feature = "sandbox")]
#[path = "../examples/operator_backend.rs"]
#[allow(dead_code)]
mod operator_backend;

#[derive(Parser)]
#[command(
    name = "ikkuna",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("IKKUNA_COMMIT"), ")"),
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
    /// The compensation ledger: openings recorded, delivered and first opens, per month.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The webhook queue: list parked deliveries, or queue them again.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// The openings outbox: list openings DVV refused for good, or report them again.
    Openings {
        #[command(subcommand)]
        command: OpeningsCommand,
    },
    /// The audit trail: verify its hash chain, or find a citizen's pseudonym.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the built-in sandbox DVV backend and the gateway together on loopback and print a
    /// guided tour (`--open`: the example operator inbox too); `serve` and `token` are the
    /// sandbox's own commands.
    #[cfg(feature = "sandbox")]
    Sandbox(sandbox_cmd::SandboxArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report every edited, removed, inserted or reordered line. One
    /// active file brings its rotated predecessors along; several files are taken in order.
    Verify {
        /// The audit file(s), oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the pseudonym of an identity code under the configured key (`-` reads the code
    /// from standard input, keeping it out of the shell history).
    Pseudonym {
        /// The identity code, or `-`.
        id: String,
        /// The gateway's TOML configuration file (for audit.pseudonym_key_file).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Per month (UTC): openings recorded, delivered, pending, parked, and DVV's first opens.
    Report {
        /// First day included (YYYY-MM-DD, UTC).
        #[arg(long, value_parser = ikkuna::ledger::parse_date)]
        from: Option<chrono::NaiveDate>,
        /// Last day included (YYYY-MM-DD, UTC).
        #[arg(long, value_parser = ikkuna::ledger::parse_date)]
        to: Option<chrono::NaiveDate>,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: ReportFormat,
        /// The gateway's TOML configuration file (for its data directory).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Compare a month (UTC) of this gateway's openings with DVV's statement: openings only DVV
    /// has, only this gateway has, first-open disagreements, provisional verdicts. Exits non-zero
    /// when a discrepancy is final.
    Reconcile {
        /// The month, YYYY-MM (UTC).
        #[arg(long, value_parser = ikkuna::ledger::Month::parse)]
        month: ikkuna::ledger::Month,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReconcileFormat,
        /// The gateway's TOML configuration file (for its store and DVV connection).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReconcileFormat {
    Text,
    Json,
    Csv,
}

#[derive(Subcommand)]
enum OpeningsCommand {
    /// List openings DVV refused for a reason the contract names permanent, one JSON object per
    /// line (ids, times, reason; never an identity code).
    Parked {
        /// The gateway's TOML configuration file (for its store).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Report parked openings again (all of them, or those given with --id).
    Replay {
        /// A parked opening's id (from `parked`); repeat for several. Default: all.
        #[arg(long = "id")]
        ids: Vec<String>,
        /// The gateway's TOML configuration file (for its store).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// List parked deliveries, one JSON object per line.
    Parked {
        /// The gateway's TOML configuration file (for its data directory).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Queue parked deliveries again (all of them, or those given with --id).
    Replay {
        /// A parked delivery's id (from `parked`); repeat for several. Default: all.
        #[arg(long = "id")]
        ids: Vec<i64>,
        /// The gateway's TOML configuration file (for its data directory).
        #[arg(long, short)]
        config: PathBuf,
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
        Command::Run { config } => runtime.block_on(run(config)),
        Command::CheckConfig { file } => check_config(&file),
        Command::Ledger { command } => runtime.block_on(ledger(command)),
        Command::Audit { command } => match command {
            AuditCommand::Verify { files } => ikkuna::audit::cli::verify_command(&files),
            AuditCommand::Pseudonym { id, config } => {
                ikkuna::audit::cli::pseudonym_command(&id, &config)
            }
        },
        Command::Webhooks { command } => runtime.block_on(webhooks(command)),
        Command::Openings { command } => runtime.block_on(openings(command)),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox_cmd::run(args, &runtime),
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
    let config = config::load_from_process(&path)?;
    // `[log]` (or IKKUNA_LOG_FORMAT / IKKUNA_LOG_LEVEL; RUST_LOG wins) decides the output.
    ikkuna::telemetry::init_logs_with(config.log.format, &config.log.level);
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
    let loaded = config::load_from_process(path).and_then(|c| {
        // Key files others can read refuse start-up, so they fail the check too.
        match config::insecure_secret_files(&c) {
            exposed if exposed.is_empty() => Ok(c),
            exposed => Err(config::ConfigErrors(exposed)),
        }
    });
    match loaded {
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

/// Opens the store named by a configuration file (the gateway may be running: SQLite's WAL lets
/// both work at once).
async fn open_store(path: &std::path::Path) -> anyhow::Result<ikkuna::openings::Outbox> {
    let config = config::load_from_process(path)?;
    Ok(ikkuna::store::open(&config.store).await?)
}

async fn ledger(command: LedgerCommand) -> anyhow::Result<()> {
    match command {
        LedgerCommand::Report {
            from,
            to,
            format,
            config,
        } => {
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(from <= to, "--from must not be after --to");
            }
            let store = open_store(&config).await?;
            let report =
                ikkuna::ledger::report(&store, ikkuna::ledger::Period { from, to }).await?;
            match format {
                ReportFormat::Json => println!("{}", report.to_json()),
                ReportFormat::Csv => print!("{}", report.to_csv()),
            }
            Ok(())
        }
        LedgerCommand::Reconcile {
            month,
            format,
            config,
        } => {
            ikkuna::tls_provider::install();
            let loaded = config::load_from_process(&config)?;
            let store = ikkuna::store::open(&loaded.store).await?;
            let dvv = ikkuna::dvv::DvvClient::new(&loaded.dvv)?;
            let outcome = ikkuna::ledger::reconcile(&store, &dvv, month).await?;
            match format {
                ReconcileFormat::Text => print!("{}", outcome.to_text()),
                ReconcileFormat::Json => println!("{}", outcome.to_json()),
                ReconcileFormat::Csv => print!("{}", outcome.to_csv()),
            }
            anyhow::ensure!(
                outcome.is_clean(),
                "{} final discrepancies with DVV's statement",
                outcome.final_discrepancies
            );
            Ok(())
        }
    }
}

async fn openings(command: OpeningsCommand) -> anyhow::Result<()> {
    match command {
        OpeningsCommand::Parked { config } => {
            print!(
                "{}",
                ikkuna::openings::cli::parked(open_store(&config).await?).await?
            );
        }
        OpeningsCommand::Replay { ids, config } => {
            let store = open_store(&config).await?;
            println!("{}", ikkuna::openings::cli::replay(store, &ids).await?);
        }
    }
    Ok(())
}

async fn webhooks(command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Parked { config } => {
            print!(
                "{}",
                ikkuna::webhooks::cli::parked(open_store(&config).await?).await?
            );
        }
        WebhooksCommand::Replay { ids, config } => {
            let store = open_store(&config).await?;
            println!("{}", ikkuna::webhooks::cli::replay(store, &ids).await?);
        }
    }
    Ok(())
}
