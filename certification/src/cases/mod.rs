//! The cases: each a reusable check that proves (part of) a requirement of the catalogue, run in
//! the order of [`ALL`] against one shared context. A case never panics; a problem it cannot get
//! past becomes an `ERROR` verdict with the reason.

mod assertions;
mod consent;
mod openings;
mod own;
mod trace;
mod transport;
mod window;

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// Every case, in the order they run. Scans of the gateway's files come last, so they see the
/// whole run.
pub const ALL: &[&str] = &[
    "assert-control",
    "assert-expired",
    "assert-not-yet-valid",
    "assert-too-long-lived",
    "assert-wrong-aud",
    "assert-wrong-iss",
    "assert-alg-none",
    "assert-hmac-public-key",
    "assert-unknown-kid",
    "assert-tampered",
    "assert-acr-too-low",
    "assert-invalid-identity-code",
    "assert-on-behalf-of",
    "consent-none",
    "window-no-store",
    "own-mail-only",
    "verifiable-before-receipt",
    "openings-exactly-once",
    "consent-revoked-within-bound",
    "consent-recording",
    "openings-crash",
    "tls-old-versions",
    "tls-foreign-dvv-ca",
    "dvv-client-authenticated",
    "ops-health",
    "limits-burst",
    "openings-none-for-listed",
    "metrics-clean",
    "trace-no-identity-code",
    "secrets-not-logged",
    "audit-trail",
    "window-no-canary",
];

/// Runs one case by id.
pub async fn run(id: &str, ctx: &Ctx) -> Outcome {
    let result = match id {
        "assert-on-behalf-of" => assertions::on_behalf_of(ctx).await,
        a if a.starts_with("assert-") => assertions::run(a, ctx).await,
        "consent-none" => consent::none(ctx).await,
        "consent-revoked-within-bound" => consent::revoked_within_bound(ctx).await,
        "consent-recording" => consent::recording(ctx).await,
        "window-no-store" => window::no_store(ctx).await,
        "window-no-canary" => window::no_canary(ctx).await,
        "own-mail-only" => own::own_mail_only(ctx).await,
        "verifiable-before-receipt" => own::verifiable(ctx).await,
        "openings-exactly-once" => openings::exactly_once(ctx).await,
        "openings-crash" => openings::crash(ctx).await,
        "openings-none-for-listed" => openings::none_for_listed(ctx).await,
        "tls-old-versions" => transport::old_versions(ctx).await,
        "tls-foreign-dvv-ca" => transport::foreign_ca(ctx).await,
        "dvv-client-authenticated" => transport::client_authenticated(ctx).await,
        "secrets-not-logged" => trace::secrets_not_logged(ctx).await,
        "trace-no-identity-code" => trace::no_identity_code(ctx).await,
        "audit-trail" => trace::audit(ctx).await,
        "metrics-clean" => trace::metrics(ctx).await,
        "limits-burst" => trace::limits(ctx).await,
        "ops-health" => trace::health(ctx).await,
        other => Err(anyhow::anyhow!("no such case: {other}")),
    };
    result.unwrap_or_else(|e| Outcome::new().error(format!("{e:#}")))
}
