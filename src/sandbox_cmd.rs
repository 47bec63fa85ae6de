//! `ikkuna sandbox`: the sandbox DVV backend and the gateway together on loopback, so a newcomer
//! sees the window work with one command. The only bridge from the gateway to the sandbox crate,
//! behind the `sandbox` cargo feature.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config;

/// How long the printed demo assertion stays valid.
const DEMO_ASSERTION_TTL: Duration = Duration::from_secs(1800);

/// Runs both until SIGINT/SIGTERM, printing a ready-to-paste curl.
pub async fn run(data_dir: PathBuf) -> anyhow::Result<()> {
    let sandbox = ikkuna_sandbox::start(ikkuna_sandbox::SandboxOptions::new(&data_dir))
        .await
        .context("starting the sandbox DVV backend")?;
    let info = sandbox.info().clone();
    let config = config::load(&info.gateway_config, &config::process_env)?;
    let gateway = crate::app::start(config).await?;

    let citizen = info
        .citizens
        .iter()
        .filter(|c| matches!(c.consent, ikkuna_sandbox::CitizenConsent::Active))
        .max_by_key(|c| c.messages)
        .context("the sandbox seed has no citizen with an active consent")?;
    let token = ikkuna_sandbox::mint_citizen_assertion(
        sandbox.data_dir(),
        &citizen.id,
        ikkuna_sandbox::DEFAULT_ACR,
        DEMO_ASSERTION_TTL,
    )?;
    let sandbox_json = sandbox.data_dir().join("sandbox.json");
    println!(
        "\nIkkuna is running against the sandbox DVV backend.\n\
         \n  operator API   {gw}\n  gateway admin  http://{admin}/readyz\n  sandbox DVV    {dvv}\n  sandbox admin  {sadmin}\n  details        {json}\n\
         \nList the inbox of {name} (a fictional citizen; assertion valid {mins} minutes):\n\
         \n  curl --cacert {ca} -H 'Authorization: Bearer {token}' {gw}/v1/messages\n\
         \nA fresh assertion for any seeded citizen:\n\
         \n  cargo run -p ikkuna-sandbox -- token --data-dir {dir} --citizen ID\n\
         \nStop with Ctrl-C.",
        gw = info.gateway_url,
        admin = gateway.admin_addr,
        dvv = info.dvv_url,
        sadmin = info.admin_url,
        json = sandbox_json.display(),
        name = citizen.name,
        mins = DEMO_ASSERTION_TTL.as_secs() / 60,
        ca = info.ca_cert.display(),
        dir = sandbox.data_dir().display(),
    );
    crate::app::wait_for_stop_signal().await;
    gateway.shutdown().await;
    sandbox.shutdown().await;
    Ok(())
}
