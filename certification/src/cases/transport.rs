//! TLS-1..3: old TLS versions refused, a DVV endpoint from another CA refused, and DVV's recording
//! showing mutual TLS and accepted client assertions.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::outcome::{Outcome, Verdict};
use crate::target::wait_until;

/// Longest an `openssl s_client` attempt may take.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(10);

/// Result of one handshake attempt with openssl.
enum Handshake {
    Established,
    Refused,
    ClientCannot,
}

async fn openssl(
    hostport: &str,
    flag: &str,
    client: Option<&crate::http::ClientCert>,
) -> anyhow::Result<(Handshake, String)> {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        hostport,
        flag,
        "-cipher",
        "DEFAULT@SECLEVEL=0",
    ]);
    if let Some(c) = client {
        cmd.arg("-cert").arg(&c.cert).arg("-key").arg(&c.key);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let output = tokio::time::timeout(OPENSSL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("openssl did not finish"))??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let established = text
        .lines()
        .any(|l| l.contains("Cipher is ") && !l.contains("(NONE)"));
    let cannot = text.contains("no protocols available") || text.contains("unknown option");
    let line = text
        .lines()
        .find(|l| l.contains("Cipher is"))
        .or_else(|| text.lines().find(|l| l.contains("alert")))
        .unwrap_or("")
        .trim()
        .to_owned();
    let h = if established {
        Handshake::Established
    } else if cannot {
        Handshake::ClientCannot
    } else {
        Handshake::Refused
    };
    Ok((h, line))
}

/// What offering TLS 1.0 and 1.1 to one endpoint showed.
#[derive(Debug, PartialEq, Eq)]
pub enum OldTls {
    /// Both refused while TLS 1.2 (the control) completed.
    Refused,
    /// These versions completed a handshake.
    Accepted(Vec<&'static str>),
    /// Nothing learned (openssl unusable, or not even TLS 1.2 completed).
    Blind(String),
}

/// Offers TLS 1.2 (control), then 1.0 and 1.1, to `hostport`; `log` gets one line per attempt.
pub async fn probe_old_tls(
    hostport: &str,
    client: Option<&crate::http::ClientCert>,
    log: &mut Vec<String>,
) -> OldTls {
    let control = match openssl(hostport, "-tls1_2", client).await {
        Ok(c) => c,
        Err(e) => return OldTls::Blind(format!("openssl is not usable here: {e}")),
    };
    log.push(format!("TLS 1.2 (control): {}", control.1));
    if !matches!(control.0, Handshake::Established) {
        return OldTls::Blind(
            "openssl could not complete even a TLS 1.2 handshake: nothing learned".to_owned(),
        );
    }
    let mut accepted = Vec::new();
    for (flag, name) in [("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")] {
        let (h, line) = match openssl(hostport, flag, client).await {
            Ok(r) => r,
            Err(e) => return OldTls::Blind(format!("openssl failed offering {name}: {e}")),
        };
        log.push(format!("{name}: {line}"));
        match h {
            Handshake::Established => accepted.push(name),
            Handshake::Refused => {}
            Handshake::ClientCannot => {
                return OldTls::Blind(format!("this openssl cannot offer {name}"))
            }
        }
    }
    if accepted.is_empty() {
        OldTls::Refused
    } else {
        OldTls::Accepted(accepted)
    }
}

/// A local `openssl s_server` that still offers TLS 1.0–1.2: the negative control showing the
/// TLS-1 probe sees an old-TLS endpoint (a rustls gateway can never be one, so without this the
/// check could not fail). Killed on drop.
pub struct OldTlsStandIn {
    /// `127.0.0.1:port` it listens on.
    pub hostport: String,
    _child: tokio::process::Child,
}

impl OldTlsStandIn {
    /// Generates a throwaway self-signed certificate in `dir` and starts the server.
    pub async fn start(dir: &Path) -> anyhow::Result<OldTlsStandIn> {
        std::fs::create_dir_all(dir)?;
        let (cert, key) = (dir.join("old-tls-cert.pem"), dir.join("old-tls-key.pem"));
        let made = tokio::time::timeout(
            OPENSSL_TIMEOUT,
            tokio::process::Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=localhost", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("openssl req did not finish"))??;
        anyhow::ensure!(made.success(), "openssl req could not make a certificate");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let hostport = format!("127.0.0.1:{port}");
        // stdin stays open (piped, never written): s_server stops at end of input.
        let child = tokio::process::Command::new("openssl")
            .args(["s_server", "-accept", &hostport, "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&hostport).await.is_err() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the old-TLS stand-in did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(OldTlsStandIn {
            hostport,
            _child: child,
        })
    }
}

/// TLS-1: TLS 1.0 and 1.1 handshakes fail; a TLS 1.2 one (the control) succeeds. The same probe
/// pointed at a local stand-in that offers TLS 1.0 must see it accepted (the negative control):
/// otherwise a refusal from the gateway proves nothing.
pub async fn old_versions(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let hostport = ctx
        .target
        .gateway_url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let mut lines = Vec::new();
    let stand_in = match OldTlsStandIn::start(&ctx.target.work_dir.join("old-tls")).await {
        Ok(s) => s,
        Err(e) => {
            return Ok(out.conclude(
                Verdict::NotChecked,
                format!("the old-TLS stand-in (negative control) could not start: {e}"),
            ))
        }
    };
    let control = probe_old_tls(&stand_in.hostport, None, &mut lines).await;
    drop(stand_in);
    for l in lines.drain(..) {
        out.log(format!(
            "stand-in offering TLS 1.0-1.2 (negative control) — {l}"
        ));
    }
    if !matches!(control, OldTls::Accepted(_)) {
        return Ok(out.conclude(
            Verdict::NotChecked,
            format!("the probe did not see the stand-in accept old TLS ({control:?}): it could not see the gateway do so either"),
        ));
    }
    let client = ctx.http.client_cert.as_ref();
    let seen = probe_old_tls(&hostport, client, &mut lines).await;
    for l in lines {
        out.log(l);
    }
    Ok(match seen {
        OldTls::Blind(why) => out.conclude(Verdict::NotChecked, why),
        OldTls::Refused => out.decide(
            true,
            "TLS 1.0 and 1.1 handshakes are refused (TLS 1.2 control succeeded; the same probe saw a TLS 1.0 stand-in accept)",
            "",
        ),
        OldTls::Accepted(v) => out.decide(
            false,
            "",
            format!("handshake completed with {}", v.join(" and ")),
        ),
    })
}

/// TLS-2: a second backend under another CA, the gateway pointed at it with its own credentials
/// there but the first CA as its trust anchor: nothing may get through.
pub async fn foreign_ca(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let guard = ctx.target.process.lock().await;
    let template;
    let process = match (guard.as_ref(), &ctx.target.supervised) {
        (Some(p), _) => p,
        (None, Some(s)) => {
            // Mode 2 under a supervisor: a second instance of the same binary and configuration.
            template = s.second_instance(ctx.target.work_dir.join("foreign-gateway.log"));
            &template
        }
        (None, None) => {
            return Ok(out.conclude(
                Verdict::NotChecked,
                "the suite does not control the gateway process in this mode (give --supervised and --gateway-config)",
            ))
        }
    };
    let dir = ctx.target.work_dir.join("foreign-backend");
    let _ = std::fs::remove_dir_all(&dir);
    let foreign = ikkuna_sandbox::start(ikkuna_sandbox::SandboxOptions::new(&dir)).await?;
    let info = foreign.info().clone();
    let provider = info
        .providers
        .first()
        .ok_or_else(|| anyhow::anyhow!("the foreign backend has no provider"))?;
    let citizen = info
        .citizens
        .iter()
        .find(|c| c.consent == ikkuna_sandbox::CitizenConsent::Active)
        .map(|c| c.id.clone())
        .ok_or_else(|| anyhow::anyhow!("the foreign backend has no consenting citizen"))?;
    let listen = free_port()?;
    let admin = free_port()?;
    let store = ctx.target.work_dir.join("foreign-gateway");
    std::fs::create_dir_all(&store)?;
    set_private(&store);
    let path = |p: &Path| p.display().to_string();
    let env = vec![
        ("IKKUNA_DVV_BASE_URL".to_owned(), info.dvv_url.clone()),
        (
            "IKKUNA_DVV_CLIENT_CERT".to_owned(),
            path(&provider.client_cert),
        ),
        (
            "IKKUNA_DVV_CLIENT_KEY_FILE".to_owned(),
            path(&provider.client_key),
        ),
        (
            "IKKUNA_DVV_ASSERTION_KEY_FILE".to_owned(),
            path(&provider.assertion_key),
        ),
        (
            "IKKUNA_SERVER_LISTEN".to_owned(),
            format!("127.0.0.1:{listen}"),
        ),
        (
            "IKKUNA_ADMIN_LISTEN".to_owned(),
            format!("127.0.0.1:{admin}"),
        ),
        ("IKKUNA_STORE_DATA_DIR".to_owned(), path(&store)),
    ];
    let mut env = env;
    if ctx.target.audit_file.is_some() {
        // Its own audit file, so the certified gateway's chain is not interleaved.
        env.push((
            "IKKUNA_AUDIT_FILE".to_owned(),
            path(&store.join("audit.jsonl")),
        ));
    }
    out.log("a second backend with its own CA; the gateway gets its credentials there, not its CA");
    let log = ctx.target.work_dir.join("foreign-gateway.log");
    let mut child = Some(process.spawn(&env, &log)?);
    let healthy = wait_until(
        &ctx.http,
        &format!("http://127.0.0.1:{admin}/healthz"),
        Duration::from_secs(20),
        &mut child,
    )
    .await;
    let result = match healthy {
        Err(e) => {
            out.log(format!("the gateway did not come up: {e:#}"));
            None
        }
        Ok(()) => {
            let token = ctx.signer.sign(&ctx.signer.claims(&citizen), None)?;
            ctx.remember(&token);
            // Not through `Http::gateway`: this call is not an access of the certified gateway.
            let ans = ctx
                .http
                .request(
                    "GET",
                    &format!("https://127.0.0.1:{listen}/v1/messages"),
                    &[("authorization".to_owned(), format!("Bearer {token}"))],
                    None,
                )
                .await?;
            out.log(format!(
                "inbox through the misdirected gateway → {}",
                ans.summary()
            ));
            Some(ans.status)
        }
    };
    if let Some(mut c) = child.take() {
        let _ = c.kill().await;
    }
    let calls = ctx
        .http
        .admin(&format!("{}/admin/calls", info.admin_url), "GET", None)
        .await?;
    let calls = crate::ctx::list_of(calls.json(), "calls");
    foreign.shutdown().await;
    out.log(format!(
        "calls the foreign backend received: {}",
        calls.len()
    ));
    let served = matches!(result, Some(s) if (200..300).contains(&s));
    Ok(out.decide(
        calls.is_empty() && !served,
        "no request crossed to a DVV endpoint whose certificate the configured CA did not sign",
        format!(
            "the foreign backend received {} call(s); operator answer {:?}",
            calls.len(),
            result
        ),
    ))
}

/// TLS-3: DVV identified the gateway by its client certificate and accepted its client
/// assertion. The control: the recording backend itself refuses a caller without a client
/// certificate (checked here on every run), and it grants tokens only for assertions it verifies,
/// so the gateway's accepted calls are evidence of both; any refused token request fails the case.
pub async fn client_authenticated(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let dvv = ctx.target.backend.info["dvvUrl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bare = crate::http::Http::new(&ctx.target.backend.path("caCert")?)?;
    let anonymous = bare
        .request(
            "POST",
            &format!("{dvv}/v1/token"),
            &[(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            None,
        )
        .await;
    let anonymous_refused = match &anonymous {
        Err(_) => true,
        Ok(a) => a.status == 401 || a.status == 403,
    };
    out.log(format!(
        "control: a token request without a client certificate → {}",
        match &anonymous {
            Ok(a) => a.summary(),
            Err(e) => format!("refused ({e})"),
        }
    ));
    if !anonymous_refused {
        return Ok(out.error(
            "the recording backend served a caller without a client certificate: its recording proves nothing about mutual TLS",
        ));
    }
    let calls = ctx.dvv_calls(0).await?;
    let tokens = calls
        .iter()
        .filter(|c| c["path"] == "/v1/token" && c["status"] == 200)
        .count();
    let refused_tokens = calls
        .iter()
        .filter(|c| c["path"] == "/v1/token" && c["status"] != 200 && !c["status"].is_null())
        .count();
    let messages = calls
        .iter()
        .filter(|c| c["path"].as_str().unwrap_or("").contains("/messages") && c["status"] == 200)
        .count();
    out.log(format!(
        "recorded under this provider's certificate: {tokens} token grants ({refused_tokens} refused), {messages} message calls answered"
    ));
    let mut problems = Vec::new();
    if tokens == 0 || messages == 0 {
        problems.push(format!(
            "no authenticated traffic recorded (token grants {tokens}, message calls {messages})"
        ));
    }
    if refused_tokens > 0 {
        problems.push(format!(
            "{refused_tokens} token request(s) refused: the gateway presented a client assertion DVV did not accept"
        ));
    }
    Ok(out.decide(
        problems.is_empty(),
        format!(
            "{tokens} token grants and {messages} message calls under the provider's certificate and accepted client assertions; the backend refuses callers without them (control)"
        ),
        problems.join("; "),
    ))
}

/// TLS-5: where the operator listener requires a client certificate, a caller without one gets
/// nothing; the suite's own calls (with one) are the control.
pub async fn operator_client_cert(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    if !ctx.target.settings.client_cert_required {
        return Ok(out.conclude(
            Verdict::NotApplicable,
            "the configuration checked does not require operator client certificates (no server.client_ca)",
        ));
    }
    if ctx.http.client_cert.is_none() {
        return Ok(out.conclude(
            Verdict::NotChecked,
            "the listener requires client certificates but none was given (--client-cert, --client-key)",
        ));
    }
    let token = ctx.token(&ctx.fx.a.code)?;
    let with = ctx
        .call("GET", "/v1/messages?limit=1", Some(&token))
        .await?;
    out.log(format!("with the client certificate → {}", with.summary()));
    if with.status != 200 {
        return Ok(out.error(format!(
            "the control failed: with a client certificate the inbox answered {}",
            with.summary()
        )));
    }
    let bare = crate::http::Http::new(&ctx.http.ca)?;
    let without = bare
        .request(
            "GET",
            &format!("{}/v1/messages?limit=1", ctx.target.gateway_url),
            &[("authorization".to_owned(), format!("Bearer {token}"))],
            None,
        )
        .await;
    out.log(format!(
        "without one → {}",
        match &without {
            Ok(a) => a.summary(),
            Err(e) => format!("no answer ({e:#})"),
        }
    ));
    let leaked = matches!(&without, Ok(a) if (200..300).contains(&a.status) || a.contains(&ctx.suite_prefix));
    Ok(out.decide(
        !leaked,
        "a caller without a client certificate is refused; one with it is served",
        "a caller without a client certificate was served",
    ))
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(unix)]
pub(crate) fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(not(unix))]
pub(crate) fn set_private(_dir: &Path) {}
