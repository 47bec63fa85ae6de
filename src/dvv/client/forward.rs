//! The inbox and message calls as the bytes the operator receives: DVV's answer validated
//! against the contract and forwarded as DVV sent it when already canonical, re-encoded from the
//! typed value otherwise (see [`crate::dvv::canonical`]).

use bytes::Bytes;
use http::{Method, StatusCode};

use super::{DvvClient, Payload, Upstream};
use crate::dvv::canonical::{self, Message};
use crate::dvv::error::DvvError;
use crate::dvv::transport::{error_from, json_error, read_json_bytes, trace_id, Lane};

impl DvvClient {
    /// [`DvvClient::list_messages`], as the JSON bytes to answer the operator with.
    pub async fn list_messages_json(
        &self,
        consent_id: &str,
        continuation: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Upstream<Bytes>, DvvError> {
        let url = self.inbox_url(consent_id, continuation, limit)?;
        let span = tracing::debug_span!("dvv", op = "list_messages", consent_id);
        self.get_checked("list_messages", span, url, canonical::page)
            .await
    }

    /// [`DvvClient::get_message`], as the JSON bytes to answer the operator with, or the decoded
    /// message when DVV withheld its content.
    pub async fn get_message_json(
        &self,
        consent_id: &str,
        message_id: i64,
    ) -> Result<Upstream<Message>, DvvError> {
        let id = message_id.to_string();
        let url = self.url(&["v1", "consents", consent_id, "messages", &id])?;
        let span = tracing::debug_span!("dvv", op = "get_message", consent_id, message_id);
        self.get_checked("get_message", span, url, canonical::message)
            .await
    }

    /// A citizen-facing GET answered by JSON, checked by `check` inside the call (so a body
    /// that is not the contract's counts as the call's failure, as with typed calls).
    async fn get_checked<T>(
        &self,
        op: &'static str,
        span: tracing::Span,
        url: url::Url,
        check: fn(Bytes) -> Result<T, serde_json::Error>,
    ) -> Result<Upstream<T>, DvvError> {
        self.run(op, span, |token| {
            let url = url.clone();
            async move {
                let response = self
                    .send(
                        Lane::Interactive,
                        Method::GET,
                        url,
                        Payload::Empty,
                        &token,
                        None,
                    )
                    .await?;
                if response.status() != StatusCode::OK {
                    return Err(error_from(response).await);
                }
                let trace_id = trace_id(response.headers());
                let bytes = read_json_bytes(response, &trace_id).await?;
                let value = check(bytes).map_err(|e| json_error(&e, &trace_id))?;
                Ok(Upstream { value, trace_id })
            }
        })
        .await
    }
}
