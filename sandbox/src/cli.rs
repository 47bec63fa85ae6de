//! The sandbox's command line (`serve`, `token`), shared by the `ikkuna-sandbox` binary and the
//! gateway's `ikkuna sandbox` subcommand, so both take the same options and one build serves both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use crate::{mint_citizen_assertion, start, SandboxOptions, DEFAULT_ACR};

/// The sandbox's commands, shared by `ikkuna-sandbox` and `ikkuna sandbox`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the sandbox and run until SIGINT or SIGTERM.
    Serve {
        /// Data directory (PKI, journal, sandbox.json, ikkuna.toml); created if missing.
        #[arg(long)]
        data_dir: PathBuf,
        /// DVV listener address (default: remembered port, else a free loopback port).
        #[arg(long)]
        dvv_listen: Option<SocketAddr>,
        /// Admin listener address, loopback only (default as for --dvv-listen).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Seed file replacing the built-in seed.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Bearer token lifetime in seconds.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        token_ttl: u64,
        /// Recording mode for auditors: a unique canary string in every title, body and
        /// attachment (prefix in DATA_DIR/canaries.json).
        #[arg(long)]
        canaries: bool,
        /// Largest file of a citizen's reply, in bytes (default: 10 MiB, the Suomi.fi Messages
        /// figure).
        #[arg(long)]
        reply_max_file_bytes: Option<u64>,
        /// Largest total of a reply's files, in bytes (default: 100 MiB).
        #[arg(long)]
        reply_max_total_bytes: Option<u64>,
        /// The first-open settlement window in seconds (the contract's is 7 days; tests and
        /// demos shorten it to see settled verdicts).
        #[arg(long, default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
        settlement_window_secs: u64,
    },
    /// Print a citizen assertion (JWT) signed by the sandbox operator's identity key.
    Token {
        /// Data directory of a sandbox started at least once.
        #[arg(long)]
        data_dir: PathBuf,
        /// The citizen's identity code.
        #[arg(long)]
        citizen: String,
        /// Assurance level (`acr`).
        #[arg(long, default_value = DEFAULT_ACR)]
        acr: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u64,
    },
}

/// Runs one command to its end (`serve` until SIGINT or SIGTERM). Logging is the caller's.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Token {
            data_dir,
            citizen,
            acr,
            ttl,
        } => mint_citizen_assertion(&data_dir, &citizen, &acr, Duration::from_secs(ttl))
            .map(|jwt| println!("{jwt}")),
        Command::Serve {
            data_dir,
            dvv_listen,
            admin_listen,
            seed,
            token_ttl,
            canaries,
            reply_max_file_bytes,
            reply_max_total_bytes,
            settlement_window_secs,
        } => {
            let mut opts = SandboxOptions::new(data_dir);
            opts.dvv_listen = dvv_listen;
            opts.admin_listen = admin_listen;
            opts.token_ttl = Duration::from_secs(token_ttl);
            opts.seed = seed;
            opts.canaries = canaries;
            opts.settlement_window = Duration::from_secs(settlement_window_secs);
            if let Some(bytes) = reply_max_file_bytes {
                opts.reply_limits.max_file_bytes = bytes;
            }
            if let Some(bytes) = reply_max_total_bytes {
                opts.reply_limits.max_total_bytes = bytes;
            }
            serve(opts)
        }
    }
}

fn serve(opts: SandboxOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sandbox = start(opts).await?;
        println!(
            "sandbox.json: {}",
            sandbox.data_dir().join("sandbox.json").display()
        );
        println!("DVV API:      {}", sandbox.dvv_url());
        println!("admin API:    {}", sandbox.admin_url());
        println!("gateway:      {}", sandbox.info().gateway_config.display());
        wait_for_signal().await?;
        tracing::info!("shutting down");
        sandbox.shutdown().await;
        Ok(())
    })
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}
