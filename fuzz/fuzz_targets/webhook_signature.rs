//! Fuzzes webhook signature verification (`ikkuna::webhooks::signature`) with arbitrary header
//! values, bodies, secrets, clocks and windows. Properties: `verify` never panics; when it accepts,
//! the header carries a `v1` tag that `sign` makes with that very secret, timestamp and body (a
//! verified signature was made with the secret); a header `sign` made verifies at its own time and
//! fails with another secret or another body.
#![no_main]

use ikkuna::webhooks::signature::{sign, verify, VerifyError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: now (8 bytes) | window (8) | secret length (1) | secret | header length (2) | header |
    // body (the rest). Short inputs fall back to defaults so small mutations still reach verify.
    let mut rest = data;
    let now = take_i64(&mut rest).unwrap_or(1_700_000_000);
    let window = take_i64(&mut rest).unwrap_or(300);
    let secret_len = usize::from(take(&mut rest, 1).map_or(8, |b| b[0]));
    let secret = take(&mut rest, secret_len).unwrap_or(b"whsec-fuzz");
    let header_len =
        take(&mut rest, 2).map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let header = take(&mut rest, header_len).unwrap_or(b"");
    let body = rest;
    let header = String::from_utf8_lossy(header);

    if verify(secret, &header, body, now, window).is_ok() {
        let timestamp = header
            .split(',')
            .filter_map(|part| part.trim().split_once('='))
            .rfind(|(key, _)| *key == "t")
            .and_then(|(_, value)| value.parse::<i64>().ok())
            .expect("an accepted header has a timestamp");
        let signed = sign(secret, timestamp, body);
        let expected = signed.rsplit_once("v1=").expect("sign writes v1").1;
        assert!(
            header
                .split(',')
                .filter_map(|part| part.trim().split_once('='))
                .any(|(key, value)| key == "v1" && value.eq_ignore_ascii_case(expected)),
            "an accepted header must carry the tag made with the secret"
        );
    }

    // What `sign` makes verifies at its own time, and only with the same secret and body.
    let own = sign(secret, now, body);
    assert_eq!(verify(secret, &own, body, now, window.max(0)), Ok(()));
    assert_eq!(
        verify(&other_secret(secret), &own, body, now, window.max(0)),
        Err(VerifyError::Mismatch)
    );
    let mut other_body = body.to_vec();
    other_body.push(b'x');
    assert_eq!(
        verify(secret, &own, &other_body, now, window.max(0)),
        Err(VerifyError::Mismatch)
    );
});

/// A secret HMAC cannot confuse with `secret`. (HMAC pads short keys with zeros and hashes long
/// ones, so merely appending a byte is not enough: flip the first byte and keep the length.)
fn other_secret(secret: &[u8]) -> Vec<u8> {
    let mut other = secret.to_vec();
    match other.first_mut() {
        Some(first) if secret.len() <= 64 => *first ^= 1,
        _ => other = b"a different secret".to_vec(),
    }
    other
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn take_i64(rest: &mut &[u8]) -> Option<i64> {
    take(rest, 8).map(|b| i64::from_le_bytes(b.try_into().expect("eight bytes")))
}
