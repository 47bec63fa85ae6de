//! The walk that decides whether DVV's bytes already are in the contract's canonical form.
//!
//! One pass of a strict reader (`cursor`: it checks the syntax, UTF-8, every string's escapes,
//! and refuses control characters) over the answer, with the contract's shapes written out as code:
//! each object must hold exactly its fields, each once (a bit per field), every leaf of the
//! expected type, every timestamp in the typed path's own form, every enumeration value one the
//! typed path writes back unchanged. Nothing is allocated or kept but the one fact the gateway
//! acts on (whether a message is withheld). Anything else is refused and takes the typed path.

use serde::de::{value::StrDeserializer, DeserializeOwned, IntoDeserializer};

use super::cursor::Cursor;
use crate::dvv::contract::{BodyFormat, MessageServiceType, ReplyAllowedBy};

/// The answer is not in the canonical form (which part does not matter: it is re-encoded).
#[derive(Debug)]
pub(super) struct NotCanonical;

/// The outcome of reading one part of an answer.
pub(super) type Walk<T = ()> = Result<T, NotCanonical>;

/// What the gateway acts on in a canonical message: whether its content is withheld.
pub(super) struct DetailFacts {
    /// A Verifiable message whose receipt is not confirmed: DVV withheld the content.
    pub withheld: bool,
}

/// Whether `bytes` are an inbox page in the canonical form.
pub(super) fn page(bytes: &[u8]) -> Walk {
    let mut j = Cursor::new(bytes)?;
    object(
        &mut j,
        &["messages", "continuationToken"],
        |j, field| match field {
            0 => array(j, |j| message(j, Kind::Summary).map(drop)),
            _ => nullable(j, text),
        },
    )?;
    j.finish()
}

/// The facts of a message in the canonical form.
pub(super) fn detail(bytes: &[u8]) -> Walk<DetailFacts> {
    let mut j = Cursor::new(bytes)?;
    let facts = message(&mut j, Kind::Detail)?;
    j.finish()?;
    Ok(facts)
}

/// A message of an inbox page, or one message with its body and attachments.
#[derive(Clone, Copy)]
enum Kind {
    Summary,
    Detail,
}

/// A detail's fields; a summary's are the first [`SUMMARY_FIELDS`] of them (one list, so one bit
/// per field in both). In the order DVV writes them: each key is compared first with the field
/// after the previous one (any order is read, only more slowly).
const MESSAGE: [&str; 15] = [
    "messageId",
    "senderName",
    "title",
    "createdAt",
    "readAt",
    "messageServiceType",
    "receiptConfirmedAt",
    "attachmentCount",
    "notifications",
    "replyAllowedBy",
    "inReplyToMessageId",
    "replies",
    "bodyFormat",
    "body",
    "attachments",
];
const SUMMARY_FIELDS: usize = 12;

fn message(j: &mut Cursor<'_>, kind: Kind) -> Walk<DetailFacts> {
    let fields = match kind {
        Kind::Summary => &MESSAGE[..SUMMARY_FIELDS],
        Kind::Detail => &MESSAGE[..],
    };
    let mut verifiable = false;
    let mut receipt_confirmed = false;
    object(j, fields, |j, field| match field {
        0 => int(j).map(drop),
        1 | 2 => text(j),
        3 => time(j),
        4 => nullable(j, time),
        5 => {
            verifiable = enumeration::<MessageServiceType>(j)? == MessageServiceType::Verifiable;
            Ok(())
        }
        6 => {
            receipt_confirmed = j.peek()? != b'n';
            nullable(j, time)
        }
        7 => {
            let n = int(j)?;
            u32::try_from(n).map(drop).map_err(|_| NotCanonical)
        }
        8 => nullable(j, notifications),
        9 => enumeration::<ReplyAllowedBy>(j).map(drop),
        10 => nullable(j, |j| int(j).map(drop)),
        // Only a message without replies is checked here; one with replies takes the typed path.
        11 => match j.array_first()? {
            false => Ok(()),
            true => Err(NotCanonical),
        },
        12 => enumeration::<BodyFormat>(j).map(drop),
        13 => nullable(j, text),
        _ => array(j, attachment),
    })?;
    Ok(DetailFacts {
        withheld: verifiable && !receipt_confirmed,
    })
}

fn attachment(j: &mut Cursor<'_>) -> Walk {
    object(
        j,
        &["attachmentId", "name", "mediaType", "size"],
        |j, f| match f {
            0 => int(j).map(drop),
            1 | 2 => text(j),
            _ => u64::try_from(int(j)?).map(drop).map_err(|_| NotCanonical),
        },
    )
}

/// The sender's notification settings, only with the values the typed path writes back
/// unchanged (an unknown value is re-encoded as the gateway reads it: fail-closed).
fn notifications(j: &mut Cursor<'_>) -> Walk {
    const FIELDS: [&str; 3] = [
        "senderDetailsInNotifications",
        "customisedNewMessageNotification",
        "unreadMessageNotification",
    ];
    object(j, &FIELDS, |j, f| match f {
        0 => one_of(j, &["Organisation and service name", "None"]),
        1 => nullable(j, |j| {
            object(j, &["title", "content"], |j, _| {
                object(j, &["fi", "sv", "en"], |j, _| text(j))
            })
        }),
        _ => object(j, &["reminder"], |j, _| {
            one_of(j, &["Default reminder", "No reminders"])
        }),
    })
}

/// An object whose keys are exactly `fields`, each once; `value` reads the value of field `i`.
fn object<'j>(
    j: &mut Cursor<'j>,
    fields: &[&str],
    mut value: impl FnMut(&mut Cursor<'j>, usize) -> Walk,
) -> Walk {
    debug_assert!(fields.len() < 32);
    let mut seen = 0u32;
    let mut key = j.object_first(fields, 0)?;
    while let Some(field) = key {
        let bit = 1u32 << field;
        if seen & bit != 0 {
            return Err(NotCanonical);
        }
        seen |= bit;
        value(j, field)?;
        // DVV writes the fields in one order: the next key is most likely the next field.
        let guess = if field + 1 < fields.len() {
            field + 1
        } else {
            0
        };
        key = j.object_next(fields, guess)?;
    }
    if seen == (1u32 << fields.len()) - 1 {
        Ok(())
    } else {
        Err(NotCanonical)
    }
}

/// An array, each element read by `element`.
fn array<'j>(j: &mut Cursor<'j>, mut element: impl FnMut(&mut Cursor<'j>) -> Walk) -> Walk {
    let mut more = j.array_first()?;
    while more {
        element(j)?;
        more = j.array_next()?;
    }
    Ok(())
}

/// `null`, or what `value` reads. The field itself must be present (the object's walk sees to
/// that), as the typed path writes every optional field.
fn nullable<'j>(j: &mut Cursor<'j>, value: impl FnOnce(&mut Cursor<'j>) -> Walk) -> Walk {
    if j.peek()? == b'n' {
        j.null()
    } else {
        value(j)
    }
}

fn text(j: &mut Cursor<'_>) -> Walk {
    j.string().map(drop)
}

fn time(j: &mut Cursor<'_>) -> Walk {
    if super::canonical_time(j.string()?.plain()?.as_bytes()) {
        Ok(())
    } else {
        Err(NotCanonical)
    }
}

/// An integer within `i64` (what the typed path reads; a float or a larger number is not).
fn int(j: &mut Cursor<'_>) -> Walk<i64> {
    j.int()
}

/// One of the contract enumeration's values, read by the contract's own type (one definition of
/// the values the typed path accepts).
fn enumeration<T: DeserializeOwned>(j: &mut Cursor<'_>) -> Walk<T> {
    let s = j.string()?.plain()?;
    let d: StrDeserializer<'_, serde::de::value::Error> = s.into_deserializer();
    T::deserialize(d).map_err(|_| NotCanonical)
}

fn one_of(j: &mut Cursor<'_>, values: &[&str]) -> Walk {
    let s = j.string()?.plain()?;
    if values.contains(&s) {
        Ok(())
    } else {
        Err(NotCanonical)
    }
}
