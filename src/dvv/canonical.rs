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
//! The check is one pass of a strict JSON reader (`cursor`) over the answer with the contract's
//! shapes written out (`shape`): it validates the syntax, UTF-8 and escapes of every string and
//! keeps nothing but the one fact the gateway acts on.

mod cursor;
mod shape;

use bytes::Bytes;

use super::contract::{MessageDetail, MessagePage};

/// An inbox page as the operator receives it: DVV's own bytes when they are already in the
/// contract's canonical form, otherwise the typed page re-encoded.
pub fn page(bytes: Bytes) -> Result<Bytes, serde_json::Error> {
    if shape::page(&bytes).is_ok() {
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
    if let Ok(facts) = shape::detail(&bytes) {
        if !facts.withheld {
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

/// Whether `s` is a timestamp exactly as the typed path writes one (chrono's RFC 3339 with
/// milliseconds and `Z`): fixed positions, digits, and a date and time that exist (no leap
/// second: chrono would write `:59.` plus the extra second's fraction, a different string).
fn canonical_time(b: &[u8]) -> bool {
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

    fn summary_without(field: &str) -> Value {
        let mut s = summary();
        s.as_object_mut().expect("object").remove(field);
        s
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
        let absent_optional = summary_without("readAt");
        let mut leap = summary();
        leap["createdAt"] = json!("2026-12-31T23:59:60.000Z");
        let no_settings = summary_without("notifications");
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
            assert!(shape::page(&raw).is_err(), "{p}");
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
        assert!(shape::page(dup).is_err());
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
    fn misplaced_punctuation_is_never_canonical() {
        let one = serde_json::to_string(&summary()).expect("json");
        let good = format!(r#"{{"messages":[{one},{one}],"continuationToken":null}}"#);
        assert!(shape::page(good.as_bytes()).is_ok());
        let mangled = |from: &str, to: &str| {
            assert!(good.contains(from), "{from}");
            good.replacen(from, to, 1)
        };
        for bad in [
            mangled("{\"messages\"", "{,\"messages\""),
            mangled("[{", "[,{"),
            mangled("},{", "},,{"),
            mangled("}],", "},],"),
            mangled(
                "\"continuationToken\":null}",
                "\"continuationToken\":null,}",
            ),
            mangled("\"messages\":", "\"messages\" "),
            mangled(",\"continuationToken\"", " \"continuationToken\""),
            mangled("null}", "nul}"),
            good.trim_end_matches('}').to_owned(),
            String::new(),
        ] {
            assert!(shape::page(bad.as_bytes()).is_err(), "{bad}");
            assert!(serde_json::from_str::<Value>(&bad).is_err(), "{bad}");
        }
        assert!(shape::page(format!("[{good}]").as_bytes()).is_err());
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
            assert!(canonical_time(good.as_bytes()), "{good}");
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
            assert!(!canonical_time(bad.as_bytes()), "{bad}");
        }
    }

    /// The walk's one promise, checked against the typed path on mangled answers: whatever it
    /// lets through byte for byte means exactly what the typed path would have sent (and a
    /// message it releases is one the typed path releases). Mangled: bytes that matter to JSON
    /// inserted, replaced or removed anywhere, or one field given another value, removed or
    /// joined by an unknown one.
    mod differential {
        use super::*;
        use proptest::prelude::*;

        const ALPHABET: &[u8] =
            b"{}[]\",:\\/0123456789-+.eEnultrfasbdDZT \n\t\x00\x1f\x7f\xc3\xa4\xff";

        #[derive(Debug, Clone)]
        enum Edit {
            Insert(usize, u8),
            Replace(usize, u8),
            Remove(usize),
        }

        fn edits() -> impl Strategy<Value = Vec<Edit>> {
            let byte = proptest::sample::select(ALPHABET);
            let edit = prop_oneof![
                (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
                (any::<usize>(), byte).prop_map(|(at, b)| Edit::Replace(at, b)),
                any::<usize>().prop_map(Edit::Remove),
            ];
            proptest::collection::vec(edit, 1..4)
        }

        fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
            for e in edits {
                let len = bytes.len();
                match *e {
                    Edit::Insert(at, b) => bytes.insert(at % (len + 1), b),
                    Edit::Replace(at, b) if len > 0 => bytes[at % len] = b,
                    Edit::Remove(at) if len > 0 => drop(bytes.remove(at % len)),
                    _ => {}
                }
            }
            bytes
        }

        fn sample_values() -> Vec<Value> {
            let mut verifiable = detail();
            verifiable["messageServiceType"] = json!("Verifiable");
            verifiable["receiptConfirmedAt"] = json!("2026-11-21T11:00:00.000Z");
            let mut plain = summary();
            plain["notifications"] = Value::Null;
            plain["inReplyToMessageId"] = json!(12);
            vec![
                page_of(vec![summary(), plain], json!("t-1")),
                detail(),
                verifiable,
            ]
        }

        fn samples() -> Vec<Vec<u8>> {
            let v = sample_values();
            vec![
                serde_json::to_vec(&v[0]).expect("json"),
                serde_json::to_vec_pretty(&v[1]).expect("json"),
                serde_json::to_vec(&v[2]).expect("json"),
            ]
        }

        /// Values a field may be given in place of its own: every JSON type, and the near
        /// misses of the contract's leaves.
        fn replacements() -> Vec<Value> {
            vec![
                Value::Null,
                json!(true),
                json!(0),
                json!(-1),
                json!(4_294_967_296_u64),
                json!(u64::MAX),
                json!(1.5),
                json!(-0.0),
                json!(""),
                json!("x\u{0}y"),
                json!("2026-11-21T10:00:00Z"),
                json!("2026-11-21T10:00:00.000Z"),
                json!("Verifiable"),
                json!("Normal"),
                json!("Anyone"),
                json!("None"),
                json!("No reminders"),
                json!([]),
                json!([1]),
                json!({}),
                json!({"fi": "a", "sv": "b", "en": "c"}),
                json!({"reminder": "Default reminder"}),
            ]
        }

        /// Every place in `v` (object members and array elements), as JSON pointers.
        fn places(v: &Value, at: &str, out: &mut Vec<String>) {
            let mut visit = |key: String, x: &Value| {
                let p = format!("{at}/{key}");
                out.push(p.clone());
                places(x, &p, out);
            };
            match v {
                Value::Object(m) => m.iter().for_each(|(k, x)| visit(k.clone(), x)),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, x)| visit(i.to_string(), x)),
                _ => {}
            }
        }

        #[derive(Debug, Clone)]
        enum Change {
            Set(usize, usize),
            Remove(usize),
            Add(usize),
        }

        /// A sample with one field changed, removed or one added, written compact or pretty.
        fn changed(which: usize, change: &Change, pretty: bool) -> Vec<u8> {
            let mut v = sample_values().swap_remove(which);
            let mut all = Vec::new();
            places(&v, "", &mut all);
            let pool = replacements();
            match *change {
                Change::Set(place, r) => {
                    if let Some(x) = v.pointer_mut(&all[place % all.len()]) {
                        *x = pool[r % pool.len()].clone();
                    }
                }
                Change::Remove(place) => {
                    let p = &all[place % all.len()];
                    let (parent, key) = p.rsplit_once('/').expect("pointer");
                    match v.pointer_mut(parent) {
                        Some(Value::Object(m)) => drop(m.remove(key)),
                        Some(Value::Array(a)) => drop(a.remove(key.parse().expect("index"))),
                        _ => {}
                    }
                }
                Change::Add(place) => {
                    let p = &all[place % all.len()];
                    if let Some(Value::Object(m)) = v.pointer_mut(p) {
                        m.insert("extra".into(), json!(1));
                    }
                }
            }
            if pretty {
                serde_json::to_vec_pretty(&v).expect("json")
            } else {
                serde_json::to_vec(&v).expect("json")
            }
        }

        fn same_as_typed_page(bytes: &[u8]) -> bool {
            let Ok(page) = serde_json::from_slice::<MessagePage>(bytes) else {
                return false;
            };
            serde_json::from_slice::<Value>(bytes).ok() == serde_json::to_value(page).ok()
        }

        fn same_as_typed_detail(bytes: &[u8], withheld: bool) -> bool {
            let Ok(d) = serde_json::from_slice::<MessageDetail>(bytes) else {
                return false;
            };
            d.is_withheld() == withheld
                && serde_json::from_slice::<Value>(bytes).ok() == serde_json::to_value(d).ok()
        }

        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            if shape::page(bytes).is_ok() {
                prop_assert!(
                    same_as_typed_page(bytes),
                    "{}",
                    String::from_utf8_lossy(bytes)
                );
            }
            if let Ok(facts) = shape::detail(bytes) {
                prop_assert!(
                    same_as_typed_detail(bytes, facts.withheld),
                    "{}",
                    String::from_utf8_lossy(bytes)
                );
            }
            Ok(())
        }

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 4000,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        #[test]
        fn the_samples_themselves_are_forwarded() {
            let s = samples();
            assert!(shape::page(&s[0]).is_ok());
            assert!(!shape::detail(&s[1]).expect("canonical").withheld);
            assert!(!shape::detail(&s[2]).expect("canonical").withheld);
        }

        proptest! {
            #![proptest_config(config())]
            #[test]
            fn what_the_walk_lets_through_means_what_the_typed_path_sends(
                which in 0usize..3,
                edits in edits(),
            ) {
                check(&apply(samples().swap_remove(which), &edits))?;
            }

            #[test]
            fn a_changed_field_passes_only_where_the_typed_path_agrees(
                which in 0usize..3,
                change in prop_oneof![
                    (any::<usize>(), any::<usize>()).prop_map(|(p, r)| Change::Set(p, r)),
                    any::<usize>().prop_map(Change::Remove),
                    any::<usize>().prop_map(Change::Add),
                ],
                pretty in any::<bool>(),
            ) {
                check(&changed(which, &change, pretty))?;
            }
        }
    }
}
