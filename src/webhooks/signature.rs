//! The webhook signature: `Ikkuna-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"` with the configured secret. The timestamp is signed with the body, so a receiver
//! that rejects old timestamps (the README's replay window) cannot be fed a captured delivery.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "ikkuna-signature";
/// How old a signature timestamp receivers should accept, in seconds (documented in the README).
pub const REPLAY_WINDOW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 over `"<timestamp>.<body>"`. HMAC takes keys of any length, so this is `None`
/// only in theory; callers treat that as "no valid signature".
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={timestamp},v1={tag}")
}

/// Why a signature was not accepted (receiver side; used by tests and shown in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<digits>,v1=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is outside the replay window.
    #[error("signature timestamp outside the replay window")]
    Stale,
    /// No `v1` value matches the body and secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a header value against `body`, accepting timestamps within `window_secs` of `now`
/// (unix seconds). Comparison is constant-time. Several `v1=` values (a secret rotation) may be
/// present; one match suffices.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    window_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(value.parse::<i64>().map_err(|_| VerifyError::Malformed)?);
            }
            Some(("v1", value)) => {
                tags.push(hex::decode(value).map_err(|_| VerifyError::Malformed)?);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if tags.is_empty() {
        return Err(VerifyError::Malformed);
    }
    // `abs_diff`, not `(now - timestamp).abs()`: a far-off timestamp such as `t=-9223372036854775808`
    // must be refused as stale, not overflow (found by fuzz/fuzz_targets/webhook_signature.rs).
    let within = u64::try_from(window_secs).is_ok_and(|window| now.abs_diff(timestamp) <= window);
    if !within {
        return Err(VerifyError::Stale);
    }
    let ok = tags
        .iter()
        .any(|tag| mac(secret, timestamp, body).is_some_and(|mac| mac.verify_slice(tag).is_ok()));
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key "secret", "1700000000.{}"), computed independently with openssl:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign(b"secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn verify_accepts_own_and_refuses_tampering() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(b"k", 1_000, body);
        assert_eq!(verify(b"k", &header, body, 1_100, 300), Ok(()));
        assert_eq!(
            verify(b"k", &header, br#"{"id":"evt_2"}"#, 1_100, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, body, 1_100, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", &header, body, 1_000 + 301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"k", "v1=00", body, 1_000, 300),
            Err(VerifyError::Malformed)
        );
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(b"k", &rotated, body, 1_000, 300), Ok(()));
    }

    /// Fuzzer regression (fuzz target `webhook_signature`): timestamps and clocks at the ends of
    /// `i64` overflowed `now - timestamp`; they are stale, and a negative window accepts nothing.
    #[test]
    fn extreme_timestamps_are_stale_not_overflows() {
        let body = b"{}";
        for (t, now) in [(i64::MIN, 1_700_000_000), (i64::MAX, -1), (1, i64::MIN)] {
            let header = sign(b"k", t, body);
            assert_eq!(
                verify(b"k", &header, body, now, 300),
                Err(VerifyError::Stale)
            );
            assert_eq!(verify(b"k", &header, body, t, i64::MAX), Ok(()));
        }
        let header = sign(b"k", 1_000, body);
        assert_eq!(
            verify(b"k", &header, body, 1_000, -1),
            Err(VerifyError::Stale)
        );
    }
}
