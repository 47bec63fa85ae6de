//! The DVV client against the real sandbox over real sockets: the sandbox's own `ikkuna.toml`
//! is loaded with the gateway's configuration loader, and every `DvvClient` call is exercised,
//! including the sandbox's fault injection (5xx, latency, stalled bodies).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ikkuna::config::{self, Config};
use ikkuna::dvv::{
    ConsentRecord, ConsentState, DvvClient, DvvError, EventType, MessageServiceType,
    MessageSummary, OpeningReport,
};
use ikkuna_hetu::IdentityCode;
use ikkuna_sandbox::{CitizenConsent, RunningSandbox, SandboxOptions};

struct Harness {
    sandbox: RunningSandbox,
    config: Config,
    _dir: tempfile::TempDir,
}

/// A sandbox in a temporary directory, and its `ikkuna.toml` loaded with `overrides` as the
/// environment.
async fn start(overrides: &[(&str, &str)]) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = ikkuna_sandbox::start(SandboxOptions::new(dir.path()))
        .await
        .expect("sandbox starts");
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = move |name: &str| {
        overrides
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let config = config::load(&sandbox.info().gateway_config, &env)
        .unwrap_or_else(|errors| panic!("the sandbox's ikkuna.toml loads: {errors}"));
    Harness {
        sandbox,
        config,
        _dir: dir,
    }
}

impl Harness {
    fn client(&self) -> DvvClient {
        DvvClient::new(&self.config.dvv).expect("client builds")
    }

    fn citizens(&self, consent: CitizenConsent) -> Vec<IdentityCode> {
        self.sandbox
            .info()
            .citizens
            .iter()
            .filter(|c| c.consent == consent)
            .map(|c| IdentityCode::parse(&c.id).expect("seeded codes are valid"))
            .collect()
    }

    /// Sets a fault plan on the sandbox's admin API.
    async fn faults(&self, plan: serde_json::Value) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = http::Request::post(format!("{}/admin/faults", self.sandbox.admin_url()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(plan.to_string())))
            .expect("request");
        let response = client.request(request).await.expect("admin API answers");
        assert_eq!(response.status(), StatusCode::OK, "fault plan accepted");
    }

    async fn clear_faults(&self) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = http::Request::delete(format!("{}/admin/faults", self.sandbox.admin_url()))
            .body(Full::new(Bytes::new()))
            .expect("request");
        client.request(request).await.expect("admin API answers");
    }
}

/// Every message of a consent, following continuation tokens one small page at a time.
async fn all_messages(client: &DvvClient, consent: &ConsentRecord) -> Vec<MessageSummary> {
    let mut messages = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let page = client
            .list_messages(&consent.consent_id, continuation.as_deref(), Some(7))
            .await
            .expect("page")
            .value;
        assert!(page.messages.len() <= 7);
        messages.extend(page.messages);
        match page.continuation_token {
            Some(token) => continuation = Some(token),
            None => return messages,
        }
    }
}

#[tokio::test]
async fn every_call_works_against_the_sandbox() {
    let harness = start(&[]).await;
    let client = harness.client();
    client.ensure_token().await.expect("token from the sandbox");

    // Find an active consent with a Normal message with attachments and a Verifiable one.
    let mut normal = None;
    let mut verifiable = None;
    for citizen in harness.citizens(CitizenConsent::Active) {
        let found = client.lookup_consent(&citizen).await.expect("lookup");
        assert!(found.trace_id.is_some(), "DVV's traceId is kept");
        let consent = found.value.expect("active citizens have a consent");
        assert_eq!(consent.state, ConsentState::Active);
        for message in all_messages(&client, &consent).await {
            match message.message_service_type {
                MessageServiceType::Normal if message.attachment_count > 0 && normal.is_none() => {
                    normal = Some((consent.clone(), message));
                }
                MessageServiceType::Verifiable
                    if message.receipt_confirmed_at.is_none() && verifiable.is_none() =>
                {
                    verifiable = Some((consent.clone(), message));
                }
                _ => {}
            }
        }
    }
    let (consent, message) = normal.expect("the seed has a Normal message with attachments");

    // The message, its attachment whole and by range, and an unsatisfiable range.
    let detail = client
        .get_message(&consent.consent_id, message.message_id)
        .await
        .expect("message")
        .value;
    assert!(detail.body.is_some());
    let attachment = detail
        .attachments
        .first()
        .expect("attachment metadata")
        .clone();
    let whole = client
        .get_attachment(
            &consent.consent_id,
            message.message_id,
            attachment.attachment_id,
            None,
        )
        .await
        .expect("attachment")
        .value;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(
        whole.headers["content-length"].to_str().unwrap(),
        attachment.size.to_string()
    );
    assert!(
        whole.headers.get("cache-control").is_none(),
        "only the allowed headers pass"
    );
    let bytes = whole.body.collect().await.expect("streamed").to_bytes();
    assert_eq!(bytes.len() as u64, attachment.size);

    let range = HeaderValue::from_static("bytes=1-4");
    let part = client
        .get_attachment(
            &consent.consent_id,
            message.message_id,
            attachment.attachment_id,
            Some(&range),
        )
        .await
        .expect("range")
        .value;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert!(part.headers.contains_key("content-range"));
    let part_bytes = part.body.collect().await.expect("streamed").to_bytes();
    assert_eq!(&part_bytes[..], &bytes[1..5]);
    let beyond = HeaderValue::from_str(&format!("bytes={}-", attachment.size + 10)).unwrap();
    let error = client
        .get_attachment(
            &consent.consent_id,
            message.message_id,
            attachment.attachment_id,
            Some(&beyond),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DvvError::RangeNotSatisfiable {
                content_range: Some(_),
                ..
            }
        ),
        "{error:?}"
    );

    // The opening: 201 first, 409 with the original answer on repetition.
    let opening = OpeningReport {
        opening_id: uuid::Uuid::new_v4().to_string(),
        opened_at: chrono::Utc::now(),
    };
    let first = client
        .report_opening(&consent.consent_id, message.message_id, &opening)
        .await
        .expect("opening")
        .value;
    assert!(!first.repeated);
    assert_eq!(first.message_id, message.message_id);
    let again = client
        .report_opening(&consent.consent_id, message.message_id, &opening)
        .await
        .expect("repeated opening")
        .value;
    assert!(again.repeated);
    assert_eq!(
        (again.first_open, again.read_at),
        (first.first_open, first.read_at)
    );

    // Receipt confirmation: a Normal message is refused; a Verifiable one is withheld until
    // confirmed, then released; confirming twice answers the original.
    let error = client
        .confirm_receipt(&consent.consent_id, message.message_id)
        .await
        .unwrap_err();
    assert!(matches!(error, DvvError::BadRequest { .. }), "{error:?}");
    let (v_consent, v_message) =
        verifiable.expect("the seed has an unconfirmed Verifiable message");
    let withheld = client
        .get_message(&v_consent.consent_id, v_message.message_id)
        .await
        .expect("verifiable message")
        .value;
    assert!(withheld.is_withheld() && withheld.body.is_none());
    let receipt = client
        .confirm_receipt(&v_consent.consent_id, v_message.message_id)
        .await
        .expect("receipt")
        .value;
    assert!(!receipt.repeated);
    let repeated = client
        .confirm_receipt(&v_consent.consent_id, v_message.message_id)
        .await
        .expect("repeated receipt")
        .value;
    assert!(repeated.repeated);
    assert_eq!(repeated.receipt_confirmed_at, receipt.receipt_confirmed_at);
    let released = client
        .get_message(&v_consent.consent_id, v_message.message_id)
        .await
        .expect("released")
        .value;
    assert!(!released.is_withheld() && released.body.is_some());

    // The event feed: from the start, then continuing after what was read.
    let page = client.events(None).await.expect("events").value;
    assert!(
        page.events
            .iter()
            .any(|e| e.event_type == EventType::MessageRead
                && e.metadata.message_id == Some(message.message_id)),
        "the first opening shows in the feed"
    );
    let next = client
        .events(Some(&page.continuation_token))
        .await
        .expect("next events")
        .value;
    assert!(next.events.iter().all(|e| !page.events.contains(e)));
}

#[tokio::test]
async fn consent_states_and_foreign_ids_are_typed_errors() {
    let harness = start(&[]).await;
    let client = harness.client();

    for citizen in harness.citizens(CitizenConsent::None) {
        let found = client.lookup_consent(&citizen).await.expect("lookup");
        assert_eq!(found.value, None, "no consent is Ok(None)");
    }
    let revoked = harness.citizens(CitizenConsent::Revoked);
    let citizen = revoked.first().expect("the seed has a revoked consent");
    let consent = client
        .lookup_consent(citizen)
        .await
        .expect("lookup")
        .value
        .expect("record");
    assert_eq!(consent.state, ConsentState::Revoked);
    assert!(consent.revoked_at.is_some());
    let error = client
        .list_messages(&consent.consent_id, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DvvError::Forbidden { reason, .. } if reason == "Consent revoked"),
        "{error:?}"
    );
    assert!(error.trace_id().is_some());

    let error = client
        .list_messages("no-such-consent", None, None)
        .await
        .unwrap_err();
    assert!(matches!(error, DvvError::NotFound { .. }), "{error:?}");
    let active = harness.citizens(CitizenConsent::Active);
    let consent = client
        .lookup_consent(&active[0])
        .await
        .unwrap()
        .value
        .unwrap();
    let error = client
        .get_message(&consent.consent_id, 987_654_321)
        .await
        .unwrap_err();
    assert!(matches!(error, DvvError::NotFound { .. }), "{error:?}");
    let error = client
        .list_messages(&consent.consent_id, None, Some(1000))
        .await
        .unwrap_err();
    assert!(matches!(error, DvvError::BadRequest { .. }), "{error:?}");
    let error = client.events(Some("forged-token")).await.unwrap_err();
    assert!(matches!(error, DvvError::BadRequest { .. }), "{error:?}");
}

#[tokio::test]
async fn faults_are_retried_bounded_and_survived() {
    let harness = start(&[
        ("IKKUNA_DVV_CALL_TIMEOUT_MS", "1500"),
        ("IKKUNA_DVV_CONNECT_TIMEOUT_MS", "500"),
        ("IKKUNA_DVV_BODY_IDLE_TIMEOUT_MS", "500"),
    ])
    .await;
    let client = harness.client();
    // A consent with a Normal message that has an attachment (for the stalled-body case).
    let mut found = None;
    for citizen in harness.citizens(CitizenConsent::Active) {
        let consent = client
            .lookup_consent(&citizen)
            .await
            .unwrap()
            .value
            .unwrap();
        let message = all_messages(&client, &consent).await.into_iter().find(|m| {
            m.attachment_count > 0 && m.message_service_type == MessageServiceType::Normal
        });
        if let Some(message) = message {
            found = Some((consent, message));
            break;
        }
    }
    let (consent, message) = found.expect("the seed has a Normal message with attachments");
    let detail = client
        .get_message(&consent.consent_id, message.message_id)
        .await
        .unwrap()
        .value;
    let attachment = detail.attachments[0].clone();

    // Every call answered 503: retried within the deadline, then a typed 5xx.
    harness
        .faults(serde_json::json!({"durationMs": 60_000, "errorRate": 1.0}))
        .await;
    let started = Instant::now();
    let error = client
        .list_messages(&consent.consent_id, None, None)
        .await
        .unwrap_err();
    assert!(matches!(error, DvvError::Upstream5xx { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));

    // DVV slower than the deadline: a timeout within the deadline.
    harness
        .faults(serde_json::json!({"durationMs": 60_000, "latencyMs": 5_000}))
        .await;
    let started = Instant::now();
    let error = client
        .list_messages(&consent.consent_id, None, None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "timeout");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // A body stalling mid-stream: BodyStalled after the idle timeout.
    let attachments = format!(
        "/v1/consents/{}/messages/{}/attachments",
        consent.consent_id, message.message_id
    );
    harness
        .faults(serde_json::json!({"durationMs": 60_000, "stallRate": 1.0, "paths": attachments}))
        .await;
    let stream = client
        .get_attachment(
            &consent.consent_id,
            message.message_id,
            attachment.attachment_id,
            None,
        )
        .await
        .expect("head arrives")
        .value;
    let started = Instant::now();
    let error = stream.body.collect().await.unwrap_err();
    assert!(matches!(error, DvvError::BodyStalled { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Healthy again once the faults end.
    harness.clear_faults().await;
    client
        .list_messages(&consent.consent_id, None, None)
        .await
        .expect("recovered");
    client.ensure_token().await.expect("token still good");
}
