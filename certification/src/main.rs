//! `ikkuna-certify`: certify an Ikkuna deployment and write `report.json` and `report.html`.
//!
//! Exit status: 0 certified (or a partial run without a mandatory failure), 1 not certified (a
//! mandatory requirement failed or is unproven), 2 the run itself could not start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ikkuna_certify::{attach, certify, launch, read_expected_failures, Attach, Launch, RunOptions};

/// The auditors' certification suite for Ikkuna gateways.
#[derive(Parser)]
#[command(name = "ikkuna-certify", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the catalogue and write DIR/report.json and DIR/report.html.
    Run {
        /// Where the report goes.
        #[arg(long)]
        report_dir: PathBuf,
        /// Mode 1: the gateway binary; the suite starts a recording backend and the gateway.
        #[arg(long, conflicts_with = "gateway_url")]
        gateway_bin: Option<PathBuf>,
        /// Mode 1: extra environment overrides for the gateway, KEY=VALUE (repeatable).
        #[arg(long = "gateway-env", value_parser = parse_env)]
        gateway_env: Vec<(String, String)>,
        /// Mode 1: leave one of the suite's launch settings out (an `IKKUNA_…` name, repeatable),
        /// for a gateway that does not know it; its cases then measure the documented default.
        #[arg(long = "omit-env")]
        omit_env: Vec<String>,
        /// Mode 2: the running gateway's operator API (https://HOST:PORT; default: `gatewayUrl`
        /// of the backend's sandbox.json).
        #[arg(long, requires = "backend_dir")]
        gateway_url: Option<String>,
        /// Mode 2: its admin listener (http://HOST:PORT; default: `gatewayAdminUrl` of
        /// sandbox.json).
        #[arg(long)]
        admin_url: Option<String>,
        /// Mode 2: its data directory (default: `[store] data_dir` of --gateway-config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Mode 2: the deployment runs under a supervisor that restarts it (systemd, Kubernetes,
        /// a shell loop): the suite may SIGKILL the process it finds listening on the operator
        /// port (openings across a crash) and start a second instance of the same binary with
        /// the same configuration against a foreign DVV (TLS-2).
        #[arg(long)]
        supervised: bool,
        /// Mode 2: its log file.
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// Its audit file (both modes; default: auditLog from the backend's sandbox.json).
        #[arg(long)]
        audit_file: Option<PathBuf>,
        /// Mode 2: the gateway's configuration file, read (never changed): the values the cases
        /// measure against (deadlines, assertion lifetime, levels, client CA, webhooks), its
        /// `[audit]` file and pseudonym key, and the configuration named on the report.
        #[arg(long)]
        gateway_config: Option<PathBuf>,
        /// Mode 2: the client certificate (PEM) to present when the operator listener requires one.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// Mode 2: its key (PEM).
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// Mode 2: the address (HOST:PORT) the deployment's webhook endpoint points at; the suite
        /// receives its webhooks there (with the backend's gateway certificate and the
        /// configuration's webhook secret).
        #[arg(long)]
        webhook_listen: Option<String>,
        /// Mode 2: the audit trail's pseudonym key file, to reconstruct one citizen's accesses.
        #[arg(long)]
        audit_key: Option<PathBuf>,
        /// Mode 2: the running conformance backend's data directory (with sandbox.json).
        #[arg(long)]
        backend_dir: Option<PathBuf>,
        /// Mode 2: CA of the gateway's server certificate (default: the backend's CA).
        #[arg(long)]
        gateway_ca: Option<PathBuf>,
        /// Mode 2: the deployment's consent revocation bound in seconds.
        #[arg(long, default_value_t = 30)]
        revocation_bound_secs: u64,
        /// Run only these requirement or case ids (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// TOML file `requirements = [...]` of requirements expected to fail.
        #[arg(long)]
        expected_failures: Option<PathBuf>,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected KEY=VALUE".to_owned())
}

fn main() -> ExitCode {
    let Command::Run {
        report_dir,
        gateway_bin,
        gateway_env,
        omit_env,
        gateway_url,
        admin_url,
        data_dir,
        supervised,
        log_file,
        audit_file,
        audit_key,
        gateway_config,
        client_cert,
        client_key,
        webhook_listen,
        backend_dir,
        gateway_ca,
        revocation_bound_secs,
        only,
        expected_failures,
    } = Cli::parse().command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ikkuna-certify: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let expected = match &expected_failures {
            Some(p) => read_expected_failures(p)?,
            None => Vec::new(),
        };
        let opts = RunOptions {
            only,
            expected_failures: expected,
        };
        let work_dir = report_dir.join("work");
        let report = if let Some(bin) = gateway_bin {
            let (_backend, target, http) = launch(Launch {
                gateway_bin: bin,
                work_dir,
                env: gateway_env,
                audit_file,
                omit_env,
            })
            .await?;
            certify(target, http, "launched", &opts).await?
        } else {
            let Some(backend_dir) = backend_dir else {
                anyhow::bail!(
                    "give --gateway-bin (mode 1) or --backend-dir and the deployment (mode 2)"
                );
            };
            let info = ikkuna_certify::target::Backend::open(&backend_dir)?.info;
            let from_info = |key: &str| info[key].as_str().map(str::to_owned);
            let Some(url) = gateway_url.or_else(|| from_info("gatewayUrl")) else {
                anyhow::bail!("mode 2 needs --gateway-url (sandbox.json has no gatewayUrl)");
            };
            let admin_url = admin_url.or_else(|| from_info("gatewayAdminUrl"));
            let data_dir = data_dir.or_else(|| {
                gateway_config
                    .as_deref()
                    .and_then(|c| ikkuna_certify::target::read_gateway_config(c).ok())
                    .map(|(_, d)| d)
            });
            let Some(data_dir) = data_dir else {
                anyhow::bail!("mode 2 needs --data-dir or --gateway-config");
            };
            let (config_audit, config_key) = gateway_config
                .as_deref()
                .map(ikkuna_certify::target::read_audit_config)
                .unwrap_or((None, None));
            let audit_file = audit_file.or(config_audit);
            let audit_key = audit_key.or(config_key);
            let client_cert = client_cert
                .zip(client_key)
                .map(|(cert, key)| ikkuna_certify::http::ClientCert { cert, key });
            let (target, http) = attach(Attach {
                gateway_url: url,
                admin_url,
                data_dir,
                log_file,
                audit_file,
                audit_key,
                backend_dir,
                gateway_ca,
                revocation_bound: Duration::from_secs(revocation_bound_secs),
                work_dir,
                gateway_config,
                client_cert,
                webhook_listen,
                supervised,
            })
            .await?;
            certify(target, http, "attached", &opts).await?
        };
        report.write(&report_dir)?;
        Ok::<_, anyhow::Error>(report)
    });
    match result {
        Ok(report) => {
            let s = &report.summary;
            println!(
                "{}: {} pass, {} fail, {} error, {} not applicable, {} not checked, {} gaps ({})",
                s.decision,
                s.pass,
                s.fail,
                s.error,
                s.not_applicable,
                s.not_checked,
                s.gaps,
                report_dir.join("report.html").display()
            );
            if report.exit_ok() {
                ExitCode::SUCCESS
            } else {
                println!("mandatory failures: {}", s.mandatory_failures.join(", "));
                if !s.mandatory_unproven.is_empty() {
                    println!("not proven: {}", s.mandatory_unproven.join(", "));
                }
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ikkuna-certify: {e:#}");
            ExitCode::from(2)
        }
    }
}
