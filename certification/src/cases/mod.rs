//! The cases: each a reusable check that proves (part of) a requirement of the catalogue, run in
//! the order of [`ALL`] against one shared context. A case never panics; a problem it cannot get
//! past becomes an `ERROR` verdict with the reason.

mod assertions;
mod consent;
mod durability;
mod fair_openings;
mod hooks;
pub mod iso;
mod notifications;
mod openings;
mod own;
mod replies;
mod store;
mod trace;
pub mod transport;
mod window;

use crate::ctx::Ctx;
use crate::outcome::Outcome;

/// Every case, in the order they run. Scans of the gateway's files and checks over every answer
/// come last, so they see the whole run.
pub const ALL: &[&str] = &[
    "assert-control",
    "assert-lifetime-at-max",
    "assert-acr-accepted-levels",
    "assert-expired",
    "assert-not-yet-valid",
    "assert-lifetime-just-over",
    "assert-too-long-lived",
    "assert-no-exp",
    "assert-wrong-aud",
    "assert-wrong-iss",
    "assert-alg-none",
    "assert-hmac-public-key",
    "assert-unknown-kid",
    "assert-tampered",
    "assert-acr-refused-levels",
    "assert-acr-missing",
    "assert-invalid-identity-code",
    "assert-sub-missing",
    "assert-on-behalf-of",
    "assert-representation-generated",
    "consent-none",
    "consent-century-twins",
    "window-no-store",
    "own-mail-only",
    "verifiable-before-receipt",
    "verifiable-opening-after-receipt",
    "receipt-relayed-once",
    "openings-exactly-once",
    "openings-opened-at",
    "openings-none-for-head",
    "openings-none-on-failed-upstream",
    "openings-retry-same-key",
    "openings-corroborated",
    "openings-revoked-before-delivery",
    "consent-revoked-within-bound",
    "consent-bound-without-feed",
    "openings-crash",
    "ledger-reconciles-after-crash",
    "openings-synced-before-release",
    "audit-synced-before-answer",
    "tls-foreign-dvv-ca",
    "window-open-files",
    "iso-silent-sockets",
    "iso-stalled-reader",
    "iso-revocation-mid-download",
    "consent-recording",
    "tls-old-versions",
    "operator-client-cert",
    "dvv-client-authenticated",
    "ops-health",
    "limits-burst",
    "openings-none-for-listed",
    "notify-hidden-sender",
    "notify-read-elsewhere",
    "replies-refused-when-not-allowed",
    "replies-once-per-key",
    "webhooks-ids-only",
    "webhooks-signed",
    "metrics-clean",
    "trace-no-identity-code",
    "secrets-not-logged",
    "audit-trail",
    "window-no-canary",
    "window-no-encoded-canary",
    "window-no-store-every-answer",
    "api-error-shape",
    "openings-store-full",
];

/// Runs one case by id.
pub async fn run(id: &str, ctx: &Ctx) -> Outcome {
    let result = match id {
        a if a.starts_with("assert-") => assertions::run(a, ctx).await,
        "consent-century-twins" => consent::century_twins(ctx).await,
        "consent-bound-without-feed" => consent::bound_without_feed(ctx).await,
        "window-no-store-every-answer" => window::no_store_every_answer(ctx).await,
        "window-no-encoded-canary" => window::no_encoded_canary(ctx).await,
        "window-open-files" => window::open_files(ctx).await,
        "verifiable-opening-after-receipt" => openings::verifiable_after_receipt(ctx).await,
        "receipt-relayed-once" => own::receipt_relayed_once(ctx).await,
        "openings-opened-at" => openings::opened_at(ctx).await,
        "openings-none-for-head" => openings::none_for_head(ctx).await,
        "openings-none-on-failed-upstream" => openings::none_on_failed_upstream(ctx).await,
        "openings-retry-same-key" => openings::retry_same_key(ctx).await,
        "openings-corroborated" => fair_openings::corroborated(ctx).await,
        "openings-revoked-before-delivery" => fair_openings::revoked_before_delivery(ctx).await,
        "ledger-reconciles-after-crash" => fair_openings::reconciles_after_crash(ctx).await,
        "iso-silent-sockets" => iso::silent_sockets(ctx).await,
        "iso-stalled-reader" => iso::stalled_reader(ctx).await,
        "iso-revocation-mid-download" => iso::revocation_mid_download(ctx).await,
        "operator-client-cert" => transport::operator_client_cert(ctx).await,
        "webhooks-ids-only" => hooks::ids_only(ctx).await,
        "replies-refused-when-not-allowed" => replies::refused_when_not_allowed(ctx).await,
        "replies-once-per-key" => replies::once_per_key(ctx).await,
        "notify-hidden-sender" => notifications::hidden_sender(ctx).await,
        "notify-read-elsewhere" => notifications::read_elsewhere(ctx).await,
        "webhooks-signed" => hooks::signed(ctx).await,
        "api-error-shape" => hooks::error_shape(ctx).await,
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
        "openings-store-full" => store::store_full(ctx).await,
        "openings-synced-before-release" => durability::opening_synced(ctx).await,
        "audit-synced-before-answer" => durability::audit_synced(ctx).await,
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
