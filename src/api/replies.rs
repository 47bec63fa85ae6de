//! `POST /v1/messages/{id}/replies`: the citizen's reply, streamed through to DVV.
//!
//! The pipeline has admitted the request (assertion, rate limits, active consent) before a byte
//! of the body is read. The handler then asks DVV, without releasing content, whether the
//! message accepts a reply and whether the `Idempotency-Key` was used, and checks a declared
//! `Content-Length` against DVV's limits: each of these refusals (403, 409 with the original
//! receipt, 413) is answered with the upload unread. Only then does it relay the body (see
//! [`crate::replies`]) while DVV receives it; a limit broken part-way is a 413 and the upload to
//! DVV is aborted, so DVV drops the partial reply. A reply is not an opening.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{Admitted, MessageId};
use super::handlers::{forget_if_revoked, json_no_store};
use super::state::SharedWindow;
use crate::audit::{PartEvidence, ReplyEvidence};
use crate::dvv::{upload, DvvError, ReplyAllowedBy, ReplyReceipt, Upstream};
use crate::replies::{self, PartTally, RelayBounds, RelayError};

/// What the checks before the upload decided.
enum Admission {
    /// Relay the upload under these bounds with this key.
    Upload(RelayBounds, String, String),
    /// Answered without the upload (the key was used: the original receipt).
    Answered(Response),
}

/// `POST /v1/messages/{id}/replies`.
pub async fn post_reply(
    ctx: Ctx,
    State(window): State<SharedWindow>,
    MessageId(message_id): MessageId,
    headers: HeaderMap,
    admitted: Admitted,
    body: Body,
) -> Result<Response, ApiError> {
    let (bounds, key, boundary) = match admit(&ctx, &window, message_id, &headers, &admitted).await
    {
        Ok(Admission::Upload(bounds, key, boundary)) => (bounds, key, boundary),
        // The body is dropped unread; the pipeline discards what of it was sent (5b).
        Ok(Admission::Answered(response)) => return Ok(response),
        Err(refusal) => return Err(refusal),
    };
    let consent_id = admitted.consent_id.as_str();
    let out_boundary = format!("ikkuna-{}", uuid::Uuid::new_v4().simple());
    let content_type = format!("multipart/form-data; boundary={out_boundary}");
    let (sender, upload) = upload::channel();
    let call = window
        .dvv
        .send_reply(consent_id, message_id, &key, &content_type, upload);
    let relay = replies::relay(
        body.into_data_stream(),
        boundary,
        sender,
        &out_boundary,
        &bounds,
    );
    let (answer, tally) = run(call, relay, window.replies.answer_timeout).await;
    let tally = tally.unwrap_or_default();
    let answer = match answer {
        Outcome::Answered(answer) => answer,
        Outcome::Relay(error) => {
            note(&ctx, None, &tally);
            return Err(ctx.refuse(ApiError::from(error)));
        }
    };
    let answer = answer.map_err(|e| {
        note(&ctx, None, &tally);
        ctx.refuse(upstream_refusal(&window, consent_id, e))
    })?;
    ctx.dvv_trace(answer.trace_id.as_deref());
    let receipt = answer.value;
    note(&ctx, Some(receipt.reply_id), &tally);
    if receipt.repeated {
        return Ok(repeated(&ctx, &receipt, answer.trace_id.as_deref()));
    }
    if !replies::receipt_matches(&receipt, &tally) {
        return Err(ctx.refuse(ApiError::reply_receipt_mismatch(answer.trace_id)));
    }
    Ok(json_no_store(
        &ctx,
        StatusCode::CREATED,
        &receipt,
        answer.trace_id.as_deref(),
    ))
}

/// The checks made before a byte of the upload is read: the key and the form's shape, then DVV's
/// reply policy (not allowed: 403; key used: the original receipt; declared size beyond the
/// limits: 413).
async fn admit(
    ctx: &Ctx,
    window: &super::state::Window,
    message_id: i64,
    headers: &HeaderMap,
    admitted: &Admitted,
) -> Result<Admission, ApiError> {
    let key = idempotency_key(headers).ok_or_else(|| ctx.refuse(ApiError::reply_key_required()))?;
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| ctx.refuse(ApiError::reply_not_multipart()))?;
    let consent_id = admitted.consent_id.as_str();
    let policy = window
        .dvv
        .reply_policy(consent_id, message_id, &key)
        .await
        .map_err(|e| ctx.refuse(forget_if_revoked(window, consent_id, e)))?;
    ctx.dvv_trace(policy.trace_id.as_deref());
    let trace_id = policy.trace_id;
    let policy = policy.value;
    if let Some(original) = policy.previous_reply {
        note(ctx, Some(original.reply_id), &[]);
        return Ok(Admission::Answered(repeated(
            ctx,
            &original,
            trace_id.as_deref(),
        )));
    }
    if policy.reply_allowed_by != ReplyAllowedBy::Anyone {
        return Err(ctx.refuse(ApiError::replies_not_allowed(trace_id)));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > replies::max_request_bytes(&policy.limits)) {
        return Err(ctx.refuse(ApiError::reply_declared_too_large()));
    }
    let bounds = RelayBounds {
        limits: policy.limits,
        accepted: policy.accepted_media_types,
        read_idle: window.streams.write_idle,
        write_idle: window.replies.upload_idle,
    };
    Ok(Admission::Upload(bounds, key, boundary))
}

/// How the upload ended: DVV answered (or its call failed), or the relay failed first.
enum Outcome {
    Answered(Result<Upstream<ReplyReceipt>, DvvError>),
    Relay(RelayError),
}

/// Runs the DVV call and the relay together. A relay failure ends the upload at once (the relay
/// drops its sender, the upload to DVV aborts); a relay that finished waits at most
/// `answer_timeout` for DVV's answer; a relay that lost DVV (`Closed`) waits for the call to say
/// why. DVV may accept the reply as soon as it has read the closing boundary, while the relay is
/// still handing over the end of the upload: a receipt that arrives first waits (at most
/// `answer_timeout`) for the relay's tally, which it is then judged against. The relay's tally
/// comes back whenever it finished.
async fn run<C, R>(
    call: C,
    relay: R,
    answer_timeout: std::time::Duration,
) -> (Outcome, Option<Vec<PartTally>>)
where
    C: std::future::Future<Output = Result<Upstream<ReplyReceipt>, DvvError>>,
    R: std::future::Future<Output = Result<Vec<PartTally>, RelayError>>,
{
    tokio::pin!(call);
    tokio::pin!(relay);
    let relayed = tokio::select! {
        answer = &mut call => {
            let tally = match &answer {
                Ok(receipt) if !receipt.value.repeated => {
                    match tokio::time::timeout(answer_timeout, relay).await {
                        Ok(Ok(tally)) => Some(tally),
                        Ok(Err(_)) | Err(_) => None,
                    }
                }
                _ => None,
            };
            return (Outcome::Answered(answer), tally);
        }
        relayed = &mut relay => relayed,
    };
    match relayed {
        Ok(tally) => match tokio::time::timeout(answer_timeout, call).await {
            Ok(answer) => (Outcome::Answered(answer), Some(tally)),
            Err(_) => (
                Outcome::Answered(Err(DvvError::Timeout { trace_id: None })),
                Some(tally),
            ),
        },
        Err(RelayError::Upstream(upload::SendError::Closed)) => {
            match tokio::time::timeout(answer_timeout, call).await {
                Ok(answer @ Err(_)) => (Outcome::Answered(answer), None),
                // DVV answered before taking the whole body: not a reply it can have recorded
                // from this upload unless it repeats an original (409), which `answer` carries.
                Ok(answer @ Ok(_)) => (Outcome::Answered(answer), None),
                Err(_) => (
                    Outcome::Relay(RelayError::Upstream(upload::SendError::Closed)),
                    None,
                ),
            }
        }
        Err(error) => (Outcome::Relay(error), None),
    }
}

/// DVV's refusals of the upload in the reply's own terms (413, 415 and 403 "not allowed" keep
/// their meaning); everything else as any DVV failure.
fn upstream_refusal(window: &super::state::Window, consent_id: &str, e: DvvError) -> ApiError {
    match &e {
        DvvError::BadRequest { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::reply_declared_too_large()
        }
        DvvError::BadRequest { status, .. } if *status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::from(RelayError::TypeNotAccepted)
        }
        DvvError::Forbidden { reason, trace_id } if reason.contains("Replies not allowed") => {
            ApiError::replies_not_allowed(trace_id.clone())
        }
        _ => forget_if_revoked(window, consent_id, e),
    }
}

/// The 409 of a repeated key: the original receipt, with the `reason` every error of the house
/// style carries.
fn repeated(ctx: &Ctx, original: &ReplyReceipt, trace_id: Option<&str>) -> Response {
    let mut body = serde_json::to_value(original).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(fields) = body.as_object_mut() {
        fields.insert(
            "reason".to_owned(),
            serde_json::Value::from(REPEATED_REASON),
        );
    }
    json_no_store(ctx, StatusCode::CONFLICT, &body, trace_id)
}

/// The reason of a repeated reply's 409.
const REPEATED_REASON: &str = "Reply already sent with this Idempotency-Key";

/// Notes the reply's evidence for the audit record: ids, sizes and hashes only.
fn note(ctx: &Ctx, reply_id: Option<i64>, tally: &[PartTally]) {
    ctx.reply(ReplyEvidence {
        reply_id,
        parts: tally
            .iter()
            .map(|p| PartEvidence {
                kind: match p.kind {
                    replies::PartKind::Text => "text".to_owned(),
                    replies::PartKind::File => "file".to_owned(),
                },
                size: p.size,
                sha256: p.sha256.clone(),
            })
            .collect(),
    });
}

/// The `Idempotency-Key` header, when it has the contract's shape.
fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all("idempotency-key").iter();
    let key = values.next()?.to_str().ok()?;
    let ok = values.next().is_none()
        && (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{run, Outcome};
    use crate::dvv::upload::SendError;
    use crate::dvv::{ReplyReceipt, Upstream};
    use crate::replies::{receipt_matches, PartKind, PartTally, RelayError};

    fn receipt(repeated: bool) -> Upstream<ReplyReceipt> {
        let mut value: ReplyReceipt = serde_json::from_value(serde_json::json!({
            "replyId": 7, "messageId": 4100006, "sentAt": "2026-11-30T10:15:02.250Z",
            "bodyLength": 1,
            "attachments": [{"name": "a.png", "mediaType": "image/png", "size": 3,
                             "sha256": "ab".repeat(32)}]
        }))
        .expect("a receipt");
        value.repeated = repeated;
        Upstream {
            value,
            trace_id: None,
        }
    }

    fn tally() -> Vec<PartTally> {
        vec![
            PartTally {
                kind: PartKind::Text,
                size: 1,
                sha256: "00".repeat(32),
            },
            PartTally {
                kind: PartKind::File,
                size: 3,
                sha256: "ab".repeat(32),
            },
        ]
    }

    /// DVV answers 201 the moment it has read the closing boundary, while the relay still hands
    /// over the end of the upload: the receipt must be judged against the finished relay's tally,
    /// not against nothing (which answered the operator 502 for a reply DVV had taken whole).
    #[tokio::test]
    async fn a_receipt_that_overtakes_the_relay_waits_for_its_tally() {
        let relay = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, RelayError>(tally())
        };
        let (outcome, got) = run(async { Ok(receipt(false)) }, relay, Duration::from_secs(5)).await;
        let Outcome::Answered(Ok(answer)) = outcome else {
            panic!("DVV's receipt is the outcome");
        };
        let got = got.expect("the relay's tally");
        assert_eq!(got, tally());
        assert!(receipt_matches(&answer.value, &got));
    }

    /// A receipt whose relay then broke has no tally to vouch for it (the operator gets 502).
    #[tokio::test]
    async fn a_receipt_whose_relay_broke_has_no_tally() {
        let relay = async { Err::<Vec<PartTally>, _>(RelayError::Upstream(SendError::Closed)) };
        let (outcome, got) = run(async { Ok(receipt(false)) }, relay, Duration::from_secs(5)).await;
        assert!(matches!(outcome, Outcome::Answered(Ok(_))));
        assert_eq!(got, None);
    }

    /// A relay that never ends after DVV answered is waited for at most the answer timeout.
    #[tokio::test]
    async fn a_stuck_relay_after_the_answer_is_bounded() {
        let relay = std::future::pending::<Result<Vec<PartTally>, RelayError>>();
        let started = tokio::time::Instant::now();
        let (outcome, got) = run(
            async { Ok(receipt(false)) },
            relay,
            Duration::from_millis(100),
        )
        .await;
        assert!(matches!(outcome, Outcome::Answered(Ok(_))));
        assert_eq!(got, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A repeated key's original receipt is answered at once: it describes another upload.
    #[tokio::test]
    async fn a_repeated_receipt_does_not_wait_for_the_relay() {
        let relay = std::future::pending::<Result<Vec<PartTally>, RelayError>>();
        let (outcome, got) =
            run(async { Ok(receipt(true)) }, relay, Duration::from_secs(600)).await;
        let Outcome::Answered(Ok(answer)) = outcome else {
            panic!("the original receipt is the outcome");
        };
        assert!(answer.value.repeated);
        assert_eq!(got, None);
    }
}
