//! Which of DVV's JSON answers the gateway may forward to the operator byte for byte.
//!
//! What the operator receives must hold the contract's fields and nothing else (a field DVV adds
//! is dropped, never forwarded: the operator sees only what the contract promises), with
//! timestamps in the contract's form (RFC 3339, UTC, milliseconds) and every optional field
//! present (`null` when empty). Decoding into the typed structs of [`super::contract`] and
//! encoding them again guarantees that, at the price of allocating and copying every title and
//! body twice. An answer that already is exactly that — each object holds exactly the contract's
//! fields, each present once, every timestamp already in the contract's form — means the same
//! JSON as its re-encoding, so its own bytes are forwarded after this check. Anything else (an
//! unknown field, a timestamp with an offset, an absent optional field) takes the typed path and
//! is re-encoded, as before.
//!
//! The check is a full parse (serde_json validates the syntax, UTF-8 and escapes of every
//! string) into shapes that keep nothing but the few facts the gateway acts on.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::contract::{BodyFormat, MessageDetail, MessagePage, MessageServiceType, ReplyAllowedBy};

/// An inbox page as the operator receives it: DVV's own bytes when they are already in the
/// contract's canonical form, otherwise the typed page re-encoded.
pub fn page(bytes: Bytes) -> Result<Bytes, serde_json::Error> {
    if is_canonical::<Page>(&bytes) {
        return Ok(bytes);
    }
    let page: MessagePage = serde_json::from_slice(&bytes)?;
    serde_json::to_vec(&page).map(Bytes::from)
}

/// One message as DVV answered it.
#[derive(Debug)]
pub enum Message {
    /// The content may be released: these are the bytes to send (DVV's own when canonical).
    Release(Bytes),
    /// DVV withheld the content (a Verifiable message whose receipt is not confirmed yet).
    Withheld(Box<MessageDetail>),
}

/// A message as the operator receives it (see [`page`]); a withheld one is decoded, for the
/// refusal that names its summary.
pub fn message(bytes: Bytes) -> Result<Message, serde_json::Error> {
    if let Some(detail) = parse_strict::<Detail>(&bytes) {
        let withheld = detail.message_service_type == MessageServiceType::Verifiable
            && detail.receipt_confirmed_at.0.is_none();
        if !withheld {
            return Ok(Message::Release(bytes));
        }
    }
    let detail: MessageDetail = serde_json::from_slice(&bytes)?;
    if detail.is_withheld() {
        return Ok(Message::Withheld(Box::new(detail)));
    }
    serde_json::to_vec(&detail)
        .map(Bytes::from)
        .map(Message::Release)
}

/// The strict shape of `bytes`, when they hold one. UTF-8 is checked once for the whole body
/// (the parser then reads `&str` and need not check each string again); a body that is not UTF-8
/// is not canonical and takes the typed path, which reports it.
fn parse_strict<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let text = std::str::from_utf8(bytes).ok()?;
    serde_json::from_str(text).ok()
}

fn is_canonical<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
    parse_strict::<T>(bytes).is_some()
}

// ---- the canonical shapes: exactly the contract's fields, nothing kept but what is acted on ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // the fields are checked, not read
struct Page {
    messages: Vec<Summary>,
    continuation_token: Nullable<Text>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Summary {
    message_id: i64,
    sender_name: Text,
    title: Text,
    created_at: Time,
    read_at: Nullable<Time>,
    message_service_type: MessageServiceType,
    receipt_confirmed_at: Nullable<Time>,
    attachment_count: u32,
    reply_allowed_by: ReplyAllowedBy,
    in_reply_to_message_id: Present<Option<i64>>,
    // Only a message without replies is checked here; one with replies takes the typed path.
    replies: [(); 0],
    notifications: Present<Option<Notifications>>,
}

/// [`MessageDetail`] with its summary's fields written out (`flatten` cannot deny unknown fields).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Detail {
    message_id: i64,
    sender_name: Text,
    title: Text,
    created_at: Time,
    read_at: Nullable<Time>,
    message_service_type: MessageServiceType,
    receipt_confirmed_at: Nullable<Time>,
    attachment_count: u32,
    reply_allowed_by: ReplyAllowedBy,
    in_reply_to_message_id: Present<Option<i64>>,
    replies: [(); 0],
    notifications: Present<Option<Notifications>>,
    body_format: BodyFormat,
    body: Nullable<Text>,
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Attachment {
    attachment_id: i64,
    name: Text,
    media_type: Text,
    size: u64,
}

/// The sender's notification settings with every field present and only the values the typed
/// path writes back unchanged (an unknown value is re-encoded as the gateway reads it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Notifications {
    sender_details_in_notifications: SenderShown,
    customised_new_message_notification: Present<Option<Customised>>,
    unread_message_notification: Unread,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Customised {
    title: Localised,
    content: Localised,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Localised {
    fi: Text,
    sv: Text,
    en: Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Unread {
    reminder: Reminder,
}

#[derive(Deserialize)]
enum SenderShown {
    #[serde(rename = "Organisation and service name")]
    Shown,
    #[serde(rename = "None")]
    Hidden,
}

#[derive(Deserialize)]
enum Reminder {
    #[serde(rename = "Default reminder")]
    Default,
    #[serde(rename = "No reminders")]
    NoReminders,
}

/// A field that must be present even where its value may be `null` (serde would take a missing
/// `Option` field as `None`).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Present<T>(T);

/// A JSON string: parsed and checked by serde_json, not kept.
struct Text;

/// A timestamp exactly as the typed path writes it: `YYYY-MM-DDTHH:MM:SS.mmmZ`, a real date.
struct Time;

/// A string leaf of a canonical answer.
trait Leaf: Sized {
    const EXPECTING: &'static str;
    fn check(s: &str) -> Option<Self>;
}

impl Leaf for Text {
    const EXPECTING: &'static str = "a string";
    fn check(_: &str) -> Option<Self> {
        Some(Text)
    }
}

impl Leaf for Time {
    const EXPECTING: &'static str = "a timestamp in the form YYYY-MM-DDTHH:MM:SS.mmmZ";
    fn check(s: &str) -> Option<Self> {
        canonical_time(s).then_some(Time)
    }
}

struct LeafVisitor<L>(std::marker::PhantomData<L>);

impl<L: Leaf> Visitor<'_> for LeafVisitor<L> {
    type Value = L;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(L::EXPECTING)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<L, E> {
        L::check(s).ok_or_else(|| E::custom("not in the contract's canonical form"))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(LeafVisitor::<Text>(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(LeafVisitor::<Time>(std::marker::PhantomData))
    }
}

/// An optional field that must be present, as the typed path writes it (`null` when empty).
struct Nullable<L>(Option<L>);

struct NullableVisitor<L>(std::marker::PhantomData<L>);

impl<L: Leaf> Visitor<'_> for NullableVisitor<L> {
    type Value = Nullable<L>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "null or {}", L::EXPECTING)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Nullable(None))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        LeafVisitor::<L>(std::marker::PhantomData)
            .visit_str(s)
            .map(|l| Nullable(Some(l)))
    }
}

impl<'de, L: Leaf> Deserialize<'de> for Nullable<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_any`, not `deserialize_option`: serde treats a missing field of a type
        // that asks for an option as `None`; this one must be present.
        d.deserialize_any(NullableVisitor::<L>(std::marker::PhantomData))
    }
}

/// Whether `s` is a timestamp exactly as the typed path writes one (chrono's RFC 3339 with
/// milliseconds and `Z`): fixed positions, digits, and a date and time that exist (no leap
/// second: chrono would write `:59.` plus the extra second's fraction, a different string).
fn canonical_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let fixed = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if fixed.iter().any(|(at, c)| b[*at] != *c) {
        return false;
    }
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    if !digits.iter().all(|at| b[*at].is_ascii_digit()) {
        return false;
    }
    let num = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let Ok(year) = i32::try_from(year) else {
        return false;
    };
    chrono::NaiveDate::from_ymd_opt(year, month, day).is_some()
        && hour < 24
        && minute < 60
        && second < 60
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn summary() -> Value {
        json!({
            "messageId": 7, "senderName": "Verohallinto \u{e4}", "title": "P\u{e4}\u{e4}t\u{f6}s \"1\"",
            "createdAt": "2026-11-21T10:00:00.000Z", "readAt": null,
            "messageServiceType": "Normal", "receiptConfirmedAt": null, "attachmentCount": 1,
            "replyAllowedBy": "No one", "inReplyToMessageId": null, "replies": [],
            "notifications": {
                "senderDetailsInNotifications": "None",
                "customisedNewMessageNotification": {
                    "title": {"fi": "Uusi viesti", "sv": "Nytt meddelande", "en": "New message"},
                    "content": {"fi": "Lue.", "sv": "L\u{e4}s.", "en": "Read."}
                },
                "unreadMessageNotification": {"reminder": "Default reminder"}
            }
        })
    }

    fn detail() -> Value {
        let mut d = summary();
        let o = d.as_object_mut().expect("object");
        o.insert("bodyFormat".into(), json!("Markdown"));
        o.insert("body".into(), json!("Rivi 1\nRivi 2 \\ \u{1f600}"));
        o.insert(
            "attachments".into(),
            json!([{"attachmentId": 3, "name": "a.pdf", "mediaType": "application/pdf", "size": 10}]),
        );
        d
    }

    fn page_of(messages: Vec<Value>, token: Value) -> Value {
        json!({"messages": messages, "continuationToken": token})
    }

    /// What the typed path makes of `bytes` (the answer before forwarding existed).
    fn reencoded_page(bytes: &[u8]) -> Value {
        let page: MessagePage = serde_json::from_slice(bytes).expect("typed");
        serde_json::to_value(page).expect("encode")
    }

    fn reencoded_detail(bytes: &[u8]) -> Value {
        let detail: MessageDetail = serde_json::from_slice(bytes).expect("typed");
        serde_json::to_value(detail).expect("encode")
    }

    fn released(m: Message) -> Bytes {
        match m {
            Message::Release(b) => b,
            Message::Withheld(_) => panic!("withheld"),
        }
    }

    #[test]
    fn canonical_answers_are_forwarded_as_dvv_sent_them() {
        // Spacing and escapes of DVV's own, which re-encoding would change.
        let raw = Bytes::from(
            serde_json::to_string_pretty(&page_of(vec![summary(), summary()], json!("t-1")))
                .expect("json")
                .replace('\u{e4}', "\\u00e4"),
        );
        let out = page(raw.clone()).expect("page");
        assert_eq!(out.as_ptr(), raw.as_ptr(), "the very bytes, not a copy");
        assert_eq!(
            serde_json::from_slice::<Value>(&out).expect("json"),
            reencoded_page(&raw)
        );
        let raw = Bytes::from(serde_json::to_vec(&detail()).expect("json"));
        let out = released(message(raw.clone()).expect("message"));
        assert_eq!(out.as_ptr(), raw.as_ptr());
        assert_eq!(
            serde_json::from_slice::<Value>(&out).expect("json"),
            reencoded_detail(&raw)
        );
    }

    #[test]
    fn anything_else_is_reencoded_exactly_as_the_typed_path_did() {
        let mut unknown_top = page_of(vec![summary()], Value::Null);
        unknown_top["somethingNew"] = json!({"identity": "010190-999W"});
        let mut unknown_inner = summary();
        unknown_inner["senderBusinessId"] = json!("1234567-8");
        let mut offset_time = summary();
        offset_time["createdAt"] = json!("2026-11-21T12:00:00+02:00");
        let mut micros = summary();
        micros["readAt"] = json!("2026-11-21T10:00:00.123456Z");
        let mut absent_optional = summary();
        absent_optional
            .as_object_mut()
            .expect("object")
            .remove("readAt");
        let mut leap = summary();
        leap["createdAt"] = json!("2026-12-31T23:59:60.000Z");
        let mut no_settings = summary();
        no_settings
            .as_object_mut()
            .expect("object")
            .remove("notifications");
        let mut unknown_setting = summary();
        unknown_setting["notifications"]["senderDetailsInNotifications"] = json!("Logo only");
        let mut unknown_reminder = summary();
        unknown_reminder["notifications"]["unreadMessageNotification"]["reminder"] =
            json!("Weekly");
        let mut absent_customised = summary();
        absent_customised["notifications"]
            .as_object_mut()
            .expect("object")
            .remove("customisedNewMessageNotification");
        let mut extra_setting = summary();
        extra_setting["notifications"]["senderBusinessId"] = json!("1234567-8");
        let pages = [
            unknown_top,
            page_of(vec![unknown_inner], Value::Null),
            page_of(vec![offset_time], Value::Null),
            page_of(vec![micros], Value::Null),
            page_of(vec![absent_optional], Value::Null),
            page_of(vec![leap], Value::Null),
            page_of(vec![no_settings], Value::Null),
            page_of(vec![unknown_setting], Value::Null),
            page_of(vec![unknown_reminder], Value::Null),
            page_of(vec![absent_customised], Value::Null),
            page_of(vec![extra_setting], Value::Null),
            json!({"messages": []}),
        ];
        for p in pages {
            let raw = Bytes::from(serde_json::to_vec(&p).expect("json"));
            assert!(serde_json::from_slice::<Page>(&raw).is_err(), "{p}");
            let out = page(raw.clone()).expect("page");
            assert_ne!(out.as_ptr(), raw.as_ptr(), "{p}");
            let out: Value = serde_json::from_slice(&out).expect("json");
            assert_eq!(out, reencoded_page(&raw), "{p}");
            let text = out.to_string();
            assert!(
                !text.contains("somethingNew") && !text.contains("senderBusinessId"),
                "unknown fields are dropped: {text}"
            );
        }
        let mut d = detail();
        d["attachments"][0]["checksum"] = json!("abc");
        let raw = Bytes::from(serde_json::to_vec(&d).expect("json"));
        let out = released(message(raw.clone()).expect("message"));
        assert!(!String::from_utf8_lossy(&out).contains("checksum"));
        assert_eq!(
            serde_json::from_slice::<Value>(&out).expect("json"),
            reencoded_detail(&raw)
        );
    }

    /// A notification setting the gateway does not know reaches the operator as its fail-closed
    /// reading: the sender not named, no reminders.
    #[test]
    fn unknown_notification_settings_reach_the_operator_closed() {
        let mut m = summary();
        m["notifications"]["senderDetailsInNotifications"] = json!("Logo only");
        m["notifications"]["unreadMessageNotification"]["reminder"] = json!("Weekly");
        let raw = Bytes::from(serde_json::to_vec(&page_of(vec![m], Value::Null)).expect("json"));
        let out: Value = serde_json::from_slice(&page(raw).expect("page")).expect("json");
        let settings = &out["messages"][0]["notifications"];
        assert_eq!(settings["senderDetailsInNotifications"], "None");
        assert_eq!(
            settings["unreadMessageNotification"]["reminder"],
            "No reminders"
        );
        assert_eq!(
            settings["customisedNewMessageNotification"]["title"]["fi"],
            "Uusi viesti"
        );
    }

    #[test]
    fn duplicated_fields_and_broken_json_are_not_forwarded() {
        let dup = br#"{"messages": [], "continuationToken": null, "continuationToken": "x"}"#;
        assert!(serde_json::from_slice::<Page>(dup).is_err());
        for bad in [
            &br#"{"messages": [], "continuationToken": null} trailing"#[..],
            br#"{"messages": [{"messageId": 1}], "continuationToken": null}"#,
            b"\xff",
            b"{\"messages\": [], \"continuationToken\": \"\xff\"}",
        ] {
            assert!(page(Bytes::copy_from_slice(bad)).is_err());
        }
    }

    #[test]
    fn a_withheld_message_is_decoded_for_its_refusal() {
        let mut d = detail();
        d["messageServiceType"] = json!("Verifiable");
        d["body"] = Value::Null;
        d["attachments"] = json!([]);
        let raw = Bytes::from(serde_json::to_vec(&d).expect("json"));
        match message(raw).expect("message") {
            Message::Withheld(detail) => assert_eq!(detail.summary.message_id, 7),
            Message::Release(_) => panic!("released a withheld message"),
        }
        d["receiptConfirmedAt"] = json!("2026-11-21T11:00:00.000Z");
        d["body"] = json!("now visible");
        let raw = Bytes::from(serde_json::to_vec(&d).expect("json"));
        let out = released(message(raw.clone()).expect("message"));
        assert_eq!(out.as_ptr(), raw.as_ptr());
    }

    #[test]
    fn timestamps_are_canonical_only_in_the_typed_paths_own_form() {
        for good in ["2026-11-21T10:00:00.000Z", "2024-02-29T23:59:59.999Z"] {
            assert!(canonical_time(good), "{good}");
            let t: chrono::DateTime<chrono::Utc> = good.parse().expect("time");
            assert_eq!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), good);
        }
        for bad in [
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00.000+00:00",
            "2026-11-21 10:00:00.000Z",
            "2025-02-29T10:00:00.000Z",
            "2026-13-01T10:00:00.000Z",
            "2026-11-21T24:00:00.000Z",
            "2026-11-21T10:00:60.000Z",
            "2026-11-21t10:00:00.000z",
            "2026-11-2xT10:00:00.000Z",
        ] {
            assert!(!canonical_time(bad), "{bad}");
        }
    }
}
