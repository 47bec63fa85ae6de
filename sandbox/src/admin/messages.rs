//! `POST /admin/messages`: a sender delivers a new message to a citizen.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ikkuna_hetu::IdentityCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::MessageInput;
use crate::http::error::ApiError;
use crate::http::{json, Body};
use crate::model::{BodyFormat, MessageServiceType, ReplyAllowedBy};
use crate::notifications::Notifications;

/// Largest attachment size accepted (content is generated, so this only bounds arithmetic).
const MAX_ATTACHMENT_SIZE: u64 = 1 << 40;
/// Most attachments on one message.
const MAX_ATTACHMENTS: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewMessageBody {
    end_user_id: String,
    title: String,
    body: String,
    #[serde(default)]
    body_format: BodyFormat,
    #[serde(default)]
    message_service_type: MessageServiceType,
    sender_name: Option<String>,
    #[serde(default)]
    attachments: Vec<NewAttachmentBody>,
    /// The sender's notification settings (Suomi.fi defaults when left out).
    #[serde(default)]
    notifications: Notifications,
    #[serde(default)]
    reply_allowed_by: ReplyAllowedBy,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewAttachmentBody {
    name: String,
    media_type: String,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    message_id: i64,
    attachment_ids: Vec<i64>,
}

/// Delivers the message; 201 `{messageId, attachmentIds}`.
pub async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: NewMessageBody = super::typed_body(req).await?;
    let citizen = IdentityCode::parse(&body.end_user_id)
        .map_err(|e| ApiError::invalid_field("endUserId", e.to_string()))?;
    if body.title.trim().is_empty() || body.title.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "title",
            "must be 1 to 500 characters",
        ));
    }
    let sender_name = body
        .sender_name
        .unwrap_or_else(|| "Sandbox sender".to_owned());
    if sender_name.trim().is_empty() || sender_name.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "senderName",
            "must be 1 to 200 characters",
        ));
    }
    if body.attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::invalid_field(
            "attachments",
            "at most 100 attachments",
        ));
    }
    if let Some((field, reason)) = body.notifications.problems().into_iter().next() {
        return Err(ApiError::invalid_field(&field, reason));
    }
    let mut attachments = Vec::with_capacity(body.attachments.len());
    for (i, a) in body.attachments.into_iter().enumerate() {
        let plain = !a.name.trim().is_empty()
            && a.name.chars().count() <= 255
            && !a
                .name
                .chars()
                .any(|c| c.is_control() || matches!(c, '"' | '\\' | '/'));
        if !plain {
            return Err(ApiError::invalid_field(
                &format!("attachments[{i}].name"),
                "must be a plain file name",
            ));
        }
        if !a.media_type.contains('/') || a.media_type.parse::<http::HeaderValue>().is_err() {
            return Err(ApiError::invalid_field(
                &format!("attachments[{i}].mediaType"),
                "must be a media type",
            ));
        }
        if a.size > MAX_ATTACHMENT_SIZE {
            return Err(ApiError::invalid_field(
                &format!("attachments[{i}].size"),
                "must be at most 1 TiB",
            ));
        }
        attachments.push((a.name, a.media_type, a.size));
    }
    let (title, text) = match &app.canaries {
        Some(c) => {
            let n = u64::from(rand::random::<u32>());
            (c.title(&body.title, n), c.body(&body.body, n))
        }
        None => (body.title, body.body),
    };
    let (message_id, attachment_ids) = app
        .domain
        .create_message(MessageInput {
            citizen,
            sender_name,
            title,
            body: text,
            body_format: body.body_format,
            service_type: body.message_service_type,
            attachments,
            notifications: body.notifications,
            reply_allowed_by: body.reply_allowed_by,
            in_reply_to: None,
        })
        .map_err(|e| {
            tracing::error!(error = %e, "message creation failed");
            ApiError::internal()
        })?;
    Ok(json(
        StatusCode::CREATED,
        &Created {
            message_id,
            attachment_ids,
        },
    ))
}
