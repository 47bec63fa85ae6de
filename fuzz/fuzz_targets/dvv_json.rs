//! Fuzzes decoding of DVV's JSON responses into the contract types (`ikkuna::dvv::contract`),
//! exactly as the client does (`serde_json::from_slice`): consent lookup, inbox page, message,
//! opening and receipt answers, events page and token response. Every input is tried as each.
//!
//! Properties: no panic; what decodes re-encodes, and the re-encoding is a fixed point (decode and
//! encode again gives the same bytes), so what the gateway passes on to operators is stable; the
//! `Debug` of content-bearing types does not depend on the content (titles, sender names, bodies,
//! attachment names, the access token), so a stray `{:?}` cannot log it.
#![no_main]

use ikkuna::dvv::contract::{
    ConsentRecord, EventPage, MessageDetail, MessagePage, OpeningAnswer, ReceiptAnswer,
    TokenResponse,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    round_trip::<ConsentRecord>(data);
    round_trip::<OpeningAnswer>(data);
    round_trip::<ReceiptAnswer>(data);
    round_trip::<EventPage>(data);
    if let Some(page) = round_trip::<MessagePage>(data) {
        for summary in &page.messages {
            let mut other = summary.clone();
            other.title.push_str("-other content");
            other.sender_name.push_str("-other sender");
            assert_eq!(
                format!("{summary:?}"),
                format!("{other:?}"),
                "Debug shows content"
            );
        }
    }
    if let Some(detail) = round_trip::<MessageDetail>(data) {
        let mut other = detail.clone();
        other.summary.title.push_str("-other content");
        if let Some(body) = other.body.as_mut() {
            body.push_str("-other body");
        }
        for attachment in &mut other.attachments {
            attachment.name.push_str("-other name");
        }
        assert_eq!(
            format!("{detail:?}"),
            format!("{other:?}"),
            "Debug shows content"
        );
    }
    if let Ok(token) = serde_json::from_slice::<TokenResponse>(data) {
        let shown = format!("{token:?}");
        let other = TokenResponse {
            access_token: format!("{}-other token", token.access_token),
            token_type: token.token_type,
            expires_in: token.expires_in,
        };
        assert_eq!(shown, format!("{other:?}"), "Debug shows the access token");
    }
});

/// Decodes `data` as `T`; when it decodes, checks that it encodes and that decoding and encoding
/// that encoding again gives the same bytes.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let encoded = serde_json::to_vec(&value).expect("a decoded value encodes");
    let again: T = serde_json::from_slice(&encoded).expect("an encoded value decodes");
    let encoded_again = serde_json::to_vec(&again).expect("a decoded value encodes");
    assert_eq!(encoded, encoded_again, "encoding is not a fixed point");
    Some(value)
}
