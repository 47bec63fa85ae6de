//! Reading an audit trail without knowing its code: a JSON line per access, each carrying the hash
//! of the previous line, and the citizen only as a keyed pseudonym (HMAC-SHA256). The suite
//! verifies the chain and computes pseudonyms itself, trying the usual encodings, so it never
//! has to trust the gateway's own verifier.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the chain check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Chain {
    /// Every line after the first names the hash of the one before it.
    Verified(usize),
    /// Some lines link and the line at this index (0-based) does not: edited, removed or reordered.
    BrokenAt(usize),
    /// No line links to its predecessor in any known encoding: the format is not recognised.
    Unrecognised,
}

fn encodings(bytes: &[u8]) -> Vec<String> {
    vec![
        hex::encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        STANDARD.encode(bytes),
    ]
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            if let Some((_, rest)) = s.split_once(':') {
                out.push(rest.to_owned());
            }
        }
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Checks that each line carries the SHA-256 of the previous line (with or without its newline).
pub fn verify_chain(lines: &[&[u8]]) -> Chain {
    let mut linked = 0;
    let mut first_break = None;
    for i in 1..lines.len() {
        let prev = lines[i - 1];
        let mut with_nl = prev.to_vec();
        with_nl.push(b'\n');
        let mut candidates = encodings(&Sha256::digest(prev));
        candidates.extend(encodings(&Sha256::digest(&with_nl)));
        let mut fields = Vec::new();
        if let Ok(v) = serde_json::from_slice::<Value>(lines[i]) {
            strings(&v, &mut fields);
        }
        if fields
            .iter()
            .any(|f| candidates.iter().any(|c| c.eq_ignore_ascii_case(f)))
        {
            linked += 1;
        } else if first_break.is_none() {
            first_break = Some(i);
        }
    }
    match (linked, first_break) {
        (_, None) => Chain::Verified(lines.len()),
        (0, Some(_)) => Chain::Unrecognised,
        (_, Some(i)) => Chain::BrokenAt(i),
    }
}

/// Every plausible pseudonym of `code` under the key file's content: the key raw, trimmed, or
/// hex/base64-decoded; the MAC in hex or base64.
pub fn pseudonyms(key_file: &[u8], code: &str) -> Vec<String> {
    let trimmed = String::from_utf8_lossy(key_file).trim().to_owned();
    let mut keys = vec![key_file.to_vec(), trimmed.as_bytes().to_vec()];
    keys.extend(hex::decode(&trimmed).ok());
    keys.extend(STANDARD.decode(&trimmed).ok());
    keys.extend(URL_SAFE_NO_PAD.decode(&trimmed).ok());
    let mut out = Vec::new();
    for k in keys {
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&k) {
            mac.update(code.as_bytes());
            out.extend(encodings(&mac.finalize().into_bytes()));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for i in 0..n {
            let prev = lines
                .last()
                .map(|l| hex::encode(Sha256::digest(l.as_bytes())))
                .unwrap_or_default();
            lines.push(format!("{{\"seq\":{i},\"prev\":\"{prev}\"}}"));
        }
        lines
    }

    #[test]
    fn a_chain_verifies_and_every_tampering_is_found() {
        let lines = chain(5);
        let view = |l: &[String]| l.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        let check = |l: &[String]| {
            let v = view(l);
            verify_chain(&v.iter().map(|x| x.as_slice()).collect::<Vec<_>>())
        };
        assert_eq!(check(&lines), Chain::Verified(5));
        let mut removed = lines.clone();
        removed.remove(2);
        assert_eq!(check(&removed), Chain::BrokenAt(2));
        let mut edited = lines.clone();
        edited[1] = edited[1].replace("\"seq\":1", "\"seq\":9");
        assert_eq!(check(&edited), Chain::BrokenAt(2));
        assert_eq!(check(&["{}".into(), "{}".into()]), Chain::Unrecognised);
    }

    #[test]
    fn pseudonyms_cover_hex_keys() {
        let key = b"00112233\n";
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0x00, 0x11, 0x22, 0x33]).unwrap();
        mac.update(b"010190-936V");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert!(pseudonyms(key, "010190-936V").contains(&expected));
    }
}
