//! `ikkuna sandbox`: the sandbox DVV backend and the gateway together on loopback, so a newcomer
//! sees the window work with one command and one build, and the sandbox's own commands
//! (`serve`, `token`) from the same binary. The only bridge from the gateway to the sandbox crate,
//! behind the `sandbox` cargo feature, and part of the binary only: the library never links it.

mod tour;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use ikkuna::config;

use crate::operator_backend;

/// How long the printed demo assertions stay valid: the longest lifetime the gateway accepts
/// (`assertions.max_lifetime_secs`, 600 s in the sandbox profile as in production).
const DEMO_ASSERTION_TTL: Duration = Duration::from_secs(600);

/// Where the example inbox listens unless told otherwise (taken: any free loopback port).
const INBOX_LISTEN: &str = "127.0.0.1:8088";

/// `ikkuna sandbox [--open]`, or one of the sandbox's own commands.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SandboxArgs {
    /// The sandbox's own commands; without one, the demo runs.
    #[command(subcommand)]
    command: Option<SandboxCommand>,
    #[command(flatten)]
    demo: DemoArgs,
}

/// The sandbox's commands, as `ikkuna-sandbox` has them.
#[derive(Subcommand, Debug)]
enum SandboxCommand {
    #[command(flatten)]
    Sandbox(ikkuna_sandbox::cli::Command),
}

/// Options of the demo (`ikkuna sandbox` without a subcommand).
#[derive(Args, Debug)]
struct DemoArgs {
    /// Where the sandbox keeps its throwaway PKI, state and the gateway's store.
    #[arg(long, default_value = "data/sandbox")]
    data_dir: PathBuf,
    /// Also start the example operator inbox (examples/operator_backend.rs) with its verified
    /// webhook receiver, and print its address.
    #[arg(long)]
    open: bool,
    /// Where the example inbox listens with --open (default 127.0.0.1:8088, else a free port).
    #[arg(long, requires = "open")]
    inbox_listen: Option<SocketAddr>,
    /// Largest file of a citizen's reply the sandbox DVV accepts, in bytes (default 10 MiB, the
    /// Suomi.fi Messages figure); the total of a reply's files is raised to match when smaller.
    #[arg(long)]
    reply_max_file_bytes: Option<u64>,
}

/// Runs the chosen command to its end. The sandbox's own commands build their runtime; the demo
/// runs on `runtime`.
pub fn run(args: SandboxArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match args.command {
        Some(SandboxCommand::Sandbox(command)) => {
            ikkuna::telemetry::init_logs(ikkuna::telemetry::LogFormat::from_env_or(
                ikkuna::telemetry::LogFormat::Text,
            ));
            ikkuna_sandbox::cli::run(command)
        }
        None => {
            ikkuna::telemetry::init_logs(ikkuna::telemetry::LogFormat::from_env_or(
                ikkuna::telemetry::LogFormat::Text,
            ));
            runtime.block_on(demo(args.demo))
        }
    }
}

/// Runs the sandbox, the gateway (and with --open the example inbox) until SIGINT/SIGTERM,
/// printing the guided tour.
async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // A misspelt IKKUNA_… variable is an error here as for `ikkuna run`.
    let unknown = config::unknown_variables(std::env::vars_os().map(|(name, _)| name));
    if !unknown.is_empty() {
        return Err(config::ConfigErrors(unknown).into());
    }
    let mut options = ikkuna_sandbox::SandboxOptions::new(&args.data_dir);
    if let Some(bytes) = args.reply_max_file_bytes {
        options.reply_limits.max_file_bytes = bytes;
        options.reply_limits.max_total_bytes = options.reply_limits.max_total_bytes.max(bytes);
    }
    let sandbox = ikkuna_sandbox::start(options)
        .await
        .context("starting the sandbox DVV backend")?;
    let info = sandbox.info().clone();

    // With --open, the inbox's webhook receiver comes first: the gateway is configured to
    // deliver to it (on top of ikkuna.toml and the process environment).
    let mut overrides: HashMap<String, String> = HashMap::new();
    let inbox = if args.open {
        let secret = webhook_secret(sandbox.data_dir())?;
        let running = start_inbox(sandbox.data_dir(), &secret, args.inbox_listen).await?;
        if let Some(hooks) = running.webhooks {
            overrides.insert(
                "IKKUNA_WEBHOOKS_ENDPOINTS".into(),
                format!("https://{hooks}/webhooks"),
            );
            overrides.insert(
                "IKKUNA_WEBHOOKS_SECRET_FILE".into(),
                secret.display().to_string(),
            );
            overrides.insert(
                "IKKUNA_WEBHOOKS_CA_CERT".into(),
                info.ca_cert.display().to_string(),
            );
        }
        Some(running)
    } else {
        None
    };
    let env = |name: &str| {
        overrides
            .get(name)
            .cloned()
            .or_else(|| config::process_env(name))
    };
    let config = config::load(&info.gateway_config, &env)?;
    let gateway = ikkuna::app::start(config).await?;

    let text = tour::Tour::new(
        &sandbox,
        gateway.admin_addr,
        inbox.as_ref().map(|i| i.inbox),
    )?
    .render(&std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ikkuna")))?;
    // The tour goes to stdout (it holds demo assertions for fictional citizens, never logged).
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();

    ikkuna::app::wait_for_stop_signal().await;
    if let Some(inbox) = inbox {
        inbox.served.abort();
    }
    gateway.shutdown().await;
    sandbox.shutdown().await;
    Ok(())
}

/// The example inbox in-process, on `listen` (default [`INBOX_LISTEN`], else any free port).
async fn start_inbox(
    data_dir: &Path,
    secret: &Path,
    listen: Option<SocketAddr>,
) -> anyhow::Result<operator_backend::Running> {
    let args = |listen: SocketAddr| operator_backend::Args {
        data_dir: data_dir.to_path_buf(),
        listen,
        webhook_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        webhook_secret_file: Some(secret.to_path_buf()),
    };
    match listen {
        Some(addr) => operator_backend::start(args(addr)).await,
        None => {
            let default: SocketAddr = INBOX_LISTEN.parse().context("default inbox address")?;
            match operator_backend::start(args(default)).await {
                Ok(running) => Ok(running),
                Err(_) => {
                    operator_backend::start(args(SocketAddr::from(([127, 0, 0, 1], 0)))).await
                }
            }
        }
    }
    .context("starting the example inbox")
}

/// `DATA_DIR/webhooks.secret`: 32 random bytes as hex, mode 0600, created once and kept.
fn webhook_secret(data_dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("webhooks.secret");
    if path.exists() {
        return Ok(path);
    }
    let secret: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(hex::encode(secret).as_bytes())?;
    Ok(path)
}
