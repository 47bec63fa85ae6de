//! The world the benchmark runs in: the sandbox DVV, a DVV bearer token for nginx and the direct
//! calls, benchmark citizens with their messages, and pools of citizen assertions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::{HeaderValue, Method};
use ikkuna_hetu::IdentityCode;
use serde_json::{json, Value};

use crate::client::Endpoint;

/// The `client_assertion_type` of `private_key_jwt`.
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
/// Lifetime of each minted citizen assertion (the gateway accepts at most 10 minutes).
pub const ASSERTION_TTL: Duration = Duration::from_secs(300);

/// A benchmark citizen: identity code and consent with provider-a.
pub struct Citizen {
    /// The identity code (a fictional test code, individual number 9xx).
    pub id: String,
    /// The consent the gateway and nginx address DVV with.
    pub consent_id: String,
}

/// The messages the workloads read.
pub struct Mail {
    /// W1/W2/W3 citizen.
    pub reader: Citizen,
    /// A message with a ≈10 KB body (W2).
    pub message_10k: i64,
    /// A message with two attachments: 1 MiB and 1 GiB (W3).
    pub attachments: (i64, i64, i64),
    /// W4 citizen, whose messages are each opened once.
    pub opener: Citizen,
}

/// A fictional identity code with a test individual number.
pub fn test_citizen(individual: u16) -> anyhow::Result<String> {
    Ok(IdentityCode::compose(14, 7, 1987, '-', individual)
        .context("composing an identity code")?
        .reveal()
        .to_owned())
}

/// Grants `citizen` a consent with the first provider; its id.
pub async fn grant(admin: &Endpoint, citizen: &str) -> anyhow::Result<Citizen> {
    let answer = admin
        .json(
            Method::POST,
            "/admin/consents/grant",
            &[],
            Some(json!({ "endUserId": citizen })),
        )
        .await?;
    Ok(Citizen {
        id: citizen.to_owned(),
        consent_id: answer["consentId"]
            .as_str()
            .context("grant answer without consentId")?
            .to_owned(),
    })
}

/// Delivers one message; its id and attachment ids.
pub async fn deliver(
    admin: &Endpoint,
    citizen: &str,
    title: &str,
    body: &str,
    attachments: &[(&str, u64)],
) -> anyhow::Result<(i64, Vec<i64>)> {
    let files: Vec<Value> = attachments
        .iter()
        .map(|(name, size)| json!({"name": name, "mediaType": "application/pdf", "size": size}))
        .collect();
    let answer = admin
        .json(
            Method::POST,
            "/admin/messages",
            &[],
            Some(json!({
                "endUserId": citizen,
                "title": title,
                "body": body,
                "senderName": "Benchmark Authority",
                "attachments": files,
            })),
        )
        .await?;
    let id = answer["messageId"].as_i64().context("no messageId")?;
    let attachment_ids = answer["attachmentIds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    Ok((id, attachment_ids))
}

/// Creates the benchmark citizens and their mail: a 20-message inbox with ≈10 KB bodies, one
/// message with a 1 MiB and a 1 GiB attachment, and a second citizen for first openings.
pub async fn mail(admin: &Endpoint) -> anyhow::Result<Mail> {
    let reader = grant(admin, &test_citizen(951)?).await?;
    let opener = grant(admin, &test_citizen(952)?).await?;
    let paragraph = "Tämä on vertailuviestin kappale, joka toistuu, jotta runko on noin kymmenen \
                     kilotavua. This paragraph repeats so the body is about ten kilobytes. ";
    let body: String = paragraph.repeat(10 * 1024 / paragraph.len() + 1);
    let mut message_10k = 0;
    for n in 0..20 {
        message_10k = deliver(admin, &reader.id, &format!("Päätös {n}"), &body, &[])
            .await?
            .0;
    }
    let (id, files) = deliver(
        admin,
        &reader.id,
        "Liitteet",
        "Kaksi liitettä.",
        &[("small.pdf", 1 << 20), ("large.pdf", 1 << 30)],
    )
    .await?;
    anyhow::ensure!(files.len() == 2, "two attachment ids expected");
    Ok(Mail {
        reader,
        message_10k,
        attachments: (id, files[0], files[1]),
        opener,
    })
}

/// Delivers `count` short messages to `citizen` over `parallel` connections; their ids.
pub async fn many_messages(
    admin: &Endpoint,
    citizen: &str,
    count: usize,
    parallel: usize,
) -> anyhow::Result<Vec<i64>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..parallel.max(1) {
        let (admin, citizen, next) = (admin.clone(), citizen.to_owned(), Arc::clone(&next));
        tasks.spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                ids.push(
                    deliver(&admin, &citizen, "Ilmoitus", "Lyhyt viesti.", &[])
                        .await?
                        .0,
                );
            }
            Ok::<_, anyhow::Error>(ids)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    all.sort_unstable();
    Ok(all)
}

/// A pool of valid citizen assertions (distinct `jti`s), as `Authorization` values.
pub fn assertions(
    data_dir: &Path,
    citizen: &str,
    count: usize,
) -> anyhow::Result<Vec<HeaderValue>> {
    (0..count)
        .map(|_| {
            let jwt = ikkuna_sandbox::mint_citizen_assertion(
                data_dir,
                citizen,
                ikkuna_sandbox::DEFAULT_ACR,
                ASSERTION_TTL,
            )?;
            Ok(HeaderValue::from_str(&format!("Bearer {jwt}"))?)
        })
        .collect()
}

/// A DVV bearer token for the provider, from the token endpoint with a `private_key_jwt` signed
/// with the provider's assertion key, over its mutual-TLS connection.
pub async fn dvv_token(
    dvv: &Endpoint,
    token_url: &str,
    provider_id: &str,
    assertion_key: &Path,
) -> anyhow::Result<String> {
    let pem = std::fs::read(assertion_key).context("reading the provider's assertion key")?;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem)?;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": provider_id,
        "sub": provider_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &key,
    )?;
    let form = format!(
        "grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion={jwt}&client_id={provider_id}"
    );
    let (status, body) = dvv
        .call(
            Method::POST,
            "/v1/token",
            &[],
            Some(("application/x-www-form-urlencoded", form.into_bytes())),
        )
        .await?;
    anyhow::ensure!(status.is_success(), "the token endpoint answered {status}");
    let answer: Value = serde_json::from_slice(&body)?;
    Ok(answer["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}
