//! The operator API's routes, each declared once: path, method, the query parameters it takes,
//! the ids in its path, its handler and its audit action.
//!
//! The router is built from [`Route::ALL`] and the audit step takes the action from the route the
//! request matched, so a route cannot be served without an audit action: adding a variant without
//! one does not compile.

use axum::http::Method;
use axum::routing::{get, post, MethodRouter};

use super::handlers;
use super::state::SharedWindow;
use crate::audit::Action;

/// One route of the operator API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /v1/consent`: the citizen's consent state.
    Consent,
    /// `GET /v1/messages`: an inbox page.
    Inbox,
    /// `GET /v1/messages/{message_id}`: one message (records its opening).
    Message,
    /// `POST /v1/messages/{message_id}/receipt`: confirm receipt of a Verifiable message.
    Receipt,
    /// `GET /v1/messages/{message_id}/attachments/{attachment_id}`: a streamed attachment.
    Attachment,
    /// `POST /v1/messages/{message_id}/replies`: the citizen's reply, streamed to DVV.
    Reply,
}

/// Which ids a route's path carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathIds {
    /// None.
    None,
    /// `{message_id}`.
    Message,
    /// `{message_id}` and `{attachment_id}`.
    MessageAndAttachment,
}

impl Route {
    /// Every route the router serves, in the order of the README.
    pub const ALL: [Route; 6] = [
        Route::Consent,
        Route::Inbox,
        Route::Message,
        Route::Receipt,
        Route::Attachment,
        Route::Reply,
    ];

    /// The path template (axum syntax; also the `route` metric label).
    pub const fn path(self) -> &'static str {
        match self {
            Self::Consent => "/v1/consent",
            Self::Inbox => "/v1/messages",
            Self::Message => "/v1/messages/{message_id}",
            Self::Receipt => "/v1/messages/{message_id}/receipt",
            Self::Attachment => "/v1/messages/{message_id}/attachments/{attachment_id}",
            Self::Reply => "/v1/messages/{message_id}/replies",
        }
    }

    /// The one method the route serves (also the `Allow` of its 405 answers).
    pub fn method(self) -> Method {
        match self {
            Self::Receipt | Self::Reply => Method::POST,
            _ => Method::GET,
        }
    }

    /// What the audit trail calls an access through this route.
    pub const fn action(self) -> Action {
        match self {
            Self::Consent => Action::ConsentCheck,
            Self::Inbox => Action::InboxList,
            Self::Message => Action::MessageRead,
            Self::Receipt => Action::ReceiptConfirmation,
            Self::Attachment => Action::Attachment,
            Self::Reply => Action::Reply,
        }
    }

    /// The query parameters the route takes; any other answers 400.
    pub const fn query(self) -> &'static [&'static str] {
        match self {
            Self::Inbox => &["continuationToken", "limit"],
            _ => &[],
        }
    }

    /// The ids in the route's path.
    pub const fn ids(self) -> PathIds {
        match self {
            Self::Consent | Self::Inbox => PathIds::None,
            Self::Message | Self::Receipt | Self::Reply => PathIds::Message,
            Self::Attachment => PathIds::MessageAndAttachment,
        }
    }

    /// The handler, under the route's one method.
    pub(super) fn handler(self) -> MethodRouter<SharedWindow> {
        match self {
            Self::Consent => get(handlers::consent_state),
            Self::Inbox => get(handlers::list_messages),
            Self::Message => get(handlers::get_message),
            Self::Receipt => post(handlers::confirm_receipt),
            Self::Attachment => get(handlers::get_attachment),
            Self::Reply => post(super::replies::post_reply),
        }
    }

    /// Whether step 7 (`server.request_timeout_ms`) bounds the whole request. An upload's length
    /// is the client's, so a reply is bounded instead by a deadline on every DVV call and an idle
    /// timeout on every chunk in either direction (see `replies.rs`).
    pub const fn has_deadline(self) -> bool {
        !matches!(self, Self::Reply)
    }
}
