//! Continuation tokens for inbox pages and the events feed.
//!
//! A token is opaque to the client but authenticated with the state key, and bound to the
//! consent (inbox) or provider (events) it was issued for, so that a tampered token or one
//! issued to someone else is recognised and refused with 400 instead of being misread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::keys::StateKey;

/// Longest token accepted before any decoding is attempted.
const MAX_TOKEN_LEN: usize = 512;
/// Bytes of MAC carried in a token.
const MAC_LEN: usize = 16;

/// Issues and checks continuation tokens.
#[derive(Clone, Debug)]
pub struct ContinuationCodec {
    key: StateKey,
}

impl ContinuationCodec {
    /// A codec keyed with the data directory's state key.
    pub fn new(key: StateKey) -> Self {
        Self { key }
    }

    /// Token for the inbox page after the message at `(createdAt ms, messageId)`.
    pub fn inbox(&self, consent_id: &str, after: (i64, i64)) -> String {
        self.seal(&format!("i|{consent_id}|{}|{}", after.0, after.1))
    }

    /// The position an inbox token stands for, if it is genuine and for this consent.
    pub fn open_inbox(&self, token: &str, consent_id: &str) -> Option<(i64, i64)> {
        let payload = self.open(token)?;
        let mut parts = payload.split('|');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("i"), Some(c), Some(ms), Some(id))
                if c == consent_id && parts.next().is_none() =>
            {
                Some((ms.parse().ok()?, id.parse().ok()?))
            }
            _ => None,
        }
    }

    /// Token for the events feed at `position`.
    pub fn events(&self, provider: &str, position: u64) -> String {
        self.seal(&format!("e|{provider}|{position}"))
    }

    /// The feed position an events token stands for, if genuine and for this provider.
    pub fn open_events(&self, token: &str, provider: &str) -> Option<u64> {
        let payload = self.open(token)?;
        let mut parts = payload.split('|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("e"), Some(p), Some(pos)) if p == provider && parts.next().is_none() => {
                pos.parse().ok()
            }
            _ => None,
        }
    }

    /// Token for the statement page of `period` (`[from, to)` in ms) after the opening at
    /// `(openedAt ms, openingId)`.
    pub fn statement(&self, provider: &str, period: (i64, i64), after: &(i64, String)) -> String {
        self.seal(&format!(
            "s|{provider}|{}|{}|{}|{}",
            period.0, period.1, after.0, after.1
        ))
    }

    /// The position a statement token stands for, if genuine and for this provider and period.
    pub fn open_statement(
        &self,
        token: &str,
        provider: &str,
        period: (i64, i64),
    ) -> Option<(i64, String)> {
        let payload = self.open(token)?;
        let parts: Vec<&str> = payload.split('|').collect();
        match parts.as_slice() {
            ["s", p, from, to, ms, id]
                if *p == provider
                    && from.parse::<i64>().ok()? == period.0
                    && to.parse::<i64>().ok()? == period.1 =>
            {
                Some((ms.parse().ok()?, (*id).to_owned()))
            }
            _ => None,
        }
    }

    fn seal(&self, payload: &str) -> String {
        let mac = self.key.mac(&[b"continuation", payload.as_bytes()]);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&mac[..MAC_LEN])
        )
    }

    fn open(&self, token: &str) -> Option<String> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, mac) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.key.mac(&[b"continuation", &payload]);
        if mac.len() != MAC_LEN
            || aws_lc_rs::constant_time::verify_slices_are_equal(&expected[..MAC_LEN], &mac)
                .is_err()
        {
            return None;
        }
        String::from_utf8(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> ContinuationCodec {
        ContinuationCodec::new(StateKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn round_trips_and_binds() {
        let c = codec();
        let t = c.inbox("cns-1", (1_700_000_000_000, 42));
        assert_eq!(c.open_inbox(&t, "cns-1"), Some((1_700_000_000_000, 42)));
        assert_eq!(c.open_inbox(&t, "cns-2"), None);
        assert_eq!(c.open_events(&t, "cns-1"), None);
        let e = c.events("provider-a", 17);
        assert_eq!(c.open_events(&e, "provider-a"), Some(17));
        assert_eq!(c.open_events(&e, "provider-b"), None);
    }

    #[test]
    fn refuses_tampering_and_junk() {
        let c = codec();
        let t = c.events("provider-a", 17);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("e|provider-a|99"),
            t.split_once('.').unwrap().1
        );
        assert_eq!(c.open_events(&forged, "provider-a"), None);
        for junk in ["", ".", "abc", "a.b.c", &"x".repeat(2000)] {
            assert_eq!(c.open_events(junk, "provider-a"), None);
        }
        let other = ContinuationCodec::new(StateKey::from_bytes(&[8; 32]));
        assert_eq!(other.open_events(&t, "provider-a"), None);
    }
}
