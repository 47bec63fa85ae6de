//! "Own mail only": whether an assertion acts for someone else, decided by what its claims say.
//!
//! Mandates (Suomi.fi-valtuudet) are excluded from private services, so an assertion that names
//! another person or a representation is refused, whatever the claim is called, wherever it is
//! nested and whatever its case. A deny-list of claim names fails open (`act` refused, `Act` or a
//! nested `ext.act` accepted), so three rules look at every key and value of the token instead:
//!
//! 1. **Another identity.** Any value or key anywhere (other than the top-level `sub` itself)
//!    holding a valid identity code other than `sub`'s.
//! 2. **Another subject.** Any nested object holding its own `sub` (or `subject`), and any
//!    top-level key spelled like `sub` that is not `sub` (`Sub`, `SUB`).
//! 3. **Representation vocabulary.** Any key, at any depth, whose words or letters match the
//!    representation vocabulary in English, Finnish or Swedish (`act`, `actor`, `on_behalf_of`,
//!    `mandate`, `delegation`, `represented_person`, `valtuudet`, `puolesta`, `edustaja`,
//!    `fullmakt`, `ombud`, `företrädare`, …), after folding case and accents.
//!
//! Strict mode (`assertions.allowed_claims`) also refuses every top-level claim not on the
//! allow-list, so an operator can accept exactly the claims its identity service sends.

use ikkuna_hetu::IdentityCode;
use serde_json::{Map, Value};

use super::error::AssertionError;

/// Claims the verifier itself reads; always allowed in strict mode.
pub const VERIFIER_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "acr"];

/// Words that name a representation when they are a whole word of a key (`act_as`, `Act`,
/// `mayAct`); short, so only whole words count (`active`, `contact`, `factor` do not).
const WORDS: &[&str] = &[
    "act",
    "acts",
    "acting",
    "actor",
    "actors",
    "obo",
    "proxy",
    "proxies",
    "mandat",
    "subject",
    "principal",
    "principals",
    "guardian",
    "trustee",
    "ward",
    "wards",
];

/// Stems that name a representation anywhere in a key's letters (case, accents and separators
/// folded away): English, Finnish, Swedish.
const STEMS: &[&str] = &[
    // English
    "behalf",
    "mayact",
    "actas",
    "actfor",
    "actingfor",
    "actingas",
    "mandate",
    "delegat",
    "represent",
    "impersonat",
    "principal",
    "proxy",
    "guardian",
    "custodian",
    "attorney",
    // Finnish: valtuudet, valtuutus, valtuutettu, valtakirja, puolesta, edustaja, edustettava,
    // huoltaja, holhooja, holhous, asiamies, päämies
    "valtuu",
    "valtakirj",
    "puolesta",
    "edusta",
    "edustettav",
    "huoltaj",
    "holhoo",
    "holhou",
    "asiamie",
    "paamie",
    // Swedish: fullmakt, fullmäktig, ombud, företrädare, ställföreträdare, vårdnadshavare,
    // förmyndare, god man, huvudman
    "fullmakt",
    "fullmaktig",
    "ombud",
    "foretrad",
    "vardnadshav",
    "formyndar",
    "godman",
    "huvudman",
];

/// Claim names every assertion carries, known not to name a representation (a unit test runs
/// each through the full rules), so the common keys skip folding and the vocabulary scan.
const PLAIN_KEYS: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "acr",
    "jti",
    "amr",
    "auth_time",
];

/// Whether a claim name (at any depth) names a representation or another subject.
pub fn names_representation(key: &str) -> bool {
    if PLAIN_KEYS.contains(&key) {
        return false;
    }
    names_representation_by_rules(key)
}

fn names_representation_by_rules(key: &str) -> bool {
    let folded = fold(key);
    let flat: String = folded.chars().filter(|c| c.is_alphanumeric()).collect();
    flat == "sub"
        || words(key).iter().any(|w| WORDS.contains(&w.as_str()))
        || STEMS.iter().any(|s| flat.contains(s))
}

/// Refuses an assertion that acts for someone else, or (strict mode) holds a claim outside
/// `allowed`. `claims` is the whole claim set; `sub` is its subject as sent.
pub fn check(
    claims: &Map<String, Value>,
    allowed: Option<&[String]>,
) -> Result<(), AssertionError> {
    let sub = claims.get("sub").and_then(Value::as_str);
    if let Some(allowed) = allowed {
        let unknown = claims
            .keys()
            .any(|k| !VERIFIER_CLAIMS.contains(&k.as_str()) && !allowed.iter().any(|a| a == k));
        if unknown {
            return Err(AssertionError::ClaimNotAllowed);
        }
    }
    for (key, value) in claims {
        if key == "sub" {
            continue;
        }
        if names_representation(key) || names_another(key, sub) || acts_for_another(value, sub) {
            return Err(AssertionError::OnBehalfOf);
        }
    }
    Ok(())
}

/// Whether a nested value names another person, subject or representation.
fn acts_for_another(value: &Value, sub: Option<&str>) -> bool {
    match value {
        Value::String(s) => names_another(s, sub),
        Value::Array(items) => items.iter().any(|v| acts_for_another(v, sub)),
        Value::Object(map) => map.iter().any(|(k, v)| {
            names_representation(k) || names_another(k, sub) || acts_for_another(v, sub)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Whether `text` holds a valid identity code other than `sub`, anywhere in it and in any case.
fn names_another(text: &str, sub: Option<&str>) -> bool {
    const LEN: usize = 11;
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    if bytes.len() < LEN {
        return false;
    }
    (0..=bytes.len() - LEN).any(|i| {
        let window = &bytes[i..i + LEN];
        // Cheap shape filter first: six digits, a century sign, three digits.
        if !window[..6].iter().all(u8::is_ascii_digit)
            || !window[7..10].iter().all(u8::is_ascii_digit)
            || !b"+-YXWVUABCDEF".contains(&window[6])
        {
            return false;
        }
        let Ok(candidate) = std::str::from_utf8(window) else {
            return false;
        };
        IdentityCode::parse(candidate).is_ok() && Some(candidate) != sub
    })
}

/// Lower case with Finnish and Swedish letters folded to ASCII (ä → a, ö → o, å → a).
fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ä' | 'å' | 'á' | 'à' | 'â' => 'a',
            'ö' | 'ó' | 'ò' | 'ô' | 'ø' => 'o',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'ü' | 'ú' => 'u',
            other => other,
        })
        .collect()
}

/// The words of a key: split at anything not a letter or digit and at lower→upper case changes
/// (`mayAct` → `may`, `act`), folded.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(fold(&current));
                current.clear();
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            out.push(fold(&current));
            current.clear();
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    if !current.is_empty() {
        out.push(fold(&current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUB: &str = "131052-308T";

    #[test]
    fn the_plain_keys_pass_the_full_rules_too() {
        for key in PLAIN_KEYS {
            assert!(!names_representation_by_rules(key), "{key}");
        }
    }

    fn refused(extra: Value) -> Option<AssertionError> {
        let mut claims =
            json!({"iss": "i", "aud": "a", "sub": SUB, "acr": "x", "exp": 1, "iat": 0});
        let (Value::Object(map), Value::Object(more)) = (&mut claims, extra) else {
            unreachable!()
        };
        map.extend(more);
        check(map, None).err()
    }

    #[test]
    fn the_shapes_the_old_name_list_accepted_are_refused() {
        for extra in [
            json!({"actor": "x"}),
            json!({"Act": {"sub": "x"}}),
            json!({"ACT": true}),
            json!({"acting_for": "x"}),
            json!({"actingFor": "x"}),
            json!({"represented_person_id": "x"}),
            json!({"valtuudet": ["x"]}),
            json!({"puolesta": true}),
            json!({"ext": {"act": {"sub": "x"}}}),
            json!({"ext": {"claims": [{"Mandate": 1}]}}),
            json!({"Päämies": "x"}),
            json!({"företrädare": "x"}),
            json!({"fullmakt": "x"}),
            json!({"ombud": "x"}),
            json!({"edustettava": "x"}),
            json!({"x-on-behalf-of": "x"}),
            json!({"Sub": SUB}),
            json!({"profile": {"sub": SUB}}),
            json!({"profile": {"Subject": "someone"}}),
            json!({"note": "for 010190-999W please"}),
            json!({"people": ["010190-999w"]}),
            json!({"010190-999W": true}),
        ] {
            assert_eq!(
                refused(extra.clone()),
                Some(AssertionError::OnBehalfOf),
                "{extra}"
            );
        }
    }

    #[test]
    fn ordinary_claims_and_the_citizens_own_code_pass() {
        for extra in [
            json!({"jti": "0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f"}),
            json!({"amr": ["mfa"], "azp": "operator-app", "auth_time": 1, "sid": "s-1"}),
            json!({"name": "Maija", "given_name": "Maija", "locale": "fi"}),
            json!({"nationalIdentificationNumber": SUB, "urn:oid:1.2.246.21": SUB}),
            json!({"active": true, "contact": "x", "factor": 2, "reward": 1, "forward": 0}),
            json!({"mandatory_mfa": true}),
            json!({"phone": "0401234567", "n": 31052308}),
        ] {
            assert_eq!(refused(extra.clone()), None, "{extra}");
        }
    }

    #[test]
    fn strict_mode_refuses_every_claim_not_allowed() {
        let mut claims = serde_json::Map::new();
        for k in VERIFIER_CLAIMS {
            claims.insert((*k).to_owned(), json!(1));
        }
        claims.insert("sub".into(), json!(SUB));
        let allowed = vec!["jti".to_owned()];
        assert_eq!(check(&claims, Some(&allowed)), Ok(()));
        claims.insert("jti".into(), json!("x"));
        assert_eq!(check(&claims, Some(&allowed)), Ok(()));
        claims.insert("email".into(), json!("x"));
        assert_eq!(
            check(&claims, Some(&allowed)),
            Err(AssertionError::ClaimNotAllowed)
        );
        assert_eq!(check(&claims, None), Ok(()));
    }
}
