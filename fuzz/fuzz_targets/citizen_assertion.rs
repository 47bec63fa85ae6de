//! Fuzzes the citizen-assertion front end: `AssertionVerifier::verify`, the public entry that
//! takes the untrusted `Authorization` value (scheme, JWS segments, base64url, JSON header, key
//! lookup, signature, claims). The verifier trusts a fixed ES256 test key (fuzz/fixtures/).
//!
//! The first input byte picks a mode:
//! - raw (even): the rest is the header value as sent. Nobody can sign without the private key,
//!   so verification must fail;
//! - signed (odd): the rest is `<JOSE header JSON> 0x00 <claims JSON>`, which this target signs
//!   with the fixture key, so the claim checks behind the signature are reached too. Numeric
//!   `exp`, `iat` and `nbf` claims are offsets from now (a fixed corpus cannot hold fresh times).
//!   A second verification (served by the verified-signature cache) must agree with the first,
//!   and the same token with one byte changed must be refused.
//!
//! Always: no panic, and an error's texts are fixed strings (they never echo the token, its
//! claims or the identity code); an accepted citizen's `Debug` never shows the identity code.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ikkuna::api::error::ApiError;
use ikkuna::citizen::{AssertionError, AssertionVerifier, Citizen, JwksSource, VerifierSettings};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ISSUER: &str = "https://idp.fuzz.invalid";
const AUDIENCE: &str = "ikkuna-fuzz";

/// Every refusal; `MissingClaim` carries only fixed claim names.
const ERRORS: &[AssertionError] = &[
    AssertionError::Missing,
    AssertionError::Scheme,
    AssertionError::Malformed,
    AssertionError::AlgorithmNotAllowed,
    AssertionError::UnsupportedCritical,
    AssertionError::UnknownKey,
    AssertionError::KeyMismatch,
    AssertionError::BadSignature,
    AssertionError::MissingClaim("iss"),
    AssertionError::MissingClaim("aud"),
    AssertionError::MissingClaim("exp"),
    AssertionError::MissingClaim("nbf"),
    AssertionError::MissingClaim("iat"),
    AssertionError::MissingClaim("sub"),
    AssertionError::WrongIssuer,
    AssertionError::WrongAudience,
    AssertionError::Expired,
    AssertionError::NotYetValid,
    AssertionError::IssuedInFuture,
    AssertionError::LifetimeTooLong,
    AssertionError::InvalidSubject,
    AssertionError::AcrNotAccepted,
    AssertionError::OnBehalfOf,
    AssertionError::ClaimNotAllowed,
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: AssertionVerifier,
    key: EncodingKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let settings = VerifierSettings::new(
            ISSUER,
            AUDIENCE,
            JwksSource::File(dir.join("citizen-jwks.json")),
        );
        let verifier = runtime
            .block_on(AssertionVerifier::new(settings))
            .expect("verifier over the fixture JWKS");
        let pem = std::fs::read(dir.join("citizen-es256.pem")).expect("fixture key");
        let key = EncodingKey::from_ec_pem(&pem).expect("fixture key is an EC key");
        Fixture {
            runtime,
            verifier,
            key,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    if mode % 2 == 0 {
        let header = String::from_utf8_lossy(rest);
        let result = f.runtime.block_on(f.verifier.verify(Some(&header)));
        match result {
            Ok(_) => panic!("an assertion not signed by this target was accepted"),
            Err(error) => assert_fixed(error),
        }
    } else {
        signed(f, rest);
    }
});

fn signed(f: &Fixture, rest: &[u8]) {
    let mut parts = rest.splitn(2, |b| *b == 0);
    let header = parts.next().unwrap_or_default();
    let claims = relative_times(parts.next().unwrap_or_default());
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(&claims)
    );
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &f.key, Algorithm::ES256)
        .expect("signing with the fixture key");
    let token = format!("{signing_input}.{signature}");
    let authorization = format!("Bearer {token}");

    let first = f.runtime.block_on(f.verifier.verify(Some(&authorization)));
    let again = f.runtime.block_on(f.verifier.verify(Some(&authorization)));
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the cached verification agrees"),
        // Time passed between the calls: a claim at the edge of its window may just have expired.
        (Ok(_), Err(AssertionError::Expired | AssertionError::LifetimeTooLong)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "the second verification agrees"),
        (Err(_), Ok(_)) => {} // Likewise at the edge of nbf/iat.
        (Ok(_), Err(b)) => panic!("accepted, then refused with {b:?}"),
    }
    if trace() {
        eprintln!("signed assertion: {:?}", first.as_ref().map(|_| "accepted"));
    }
    match first {
        Ok(citizen) => accepted(&citizen, &claims),
        Err(error) => assert_fixed(error),
    }

    // One changed byte anywhere in the token: the signature no longer covers it.
    if let Some(&pick) = rest.last() {
        let mut tampered = token.clone().into_bytes();
        let at = usize::from(pick) * 7 % tampered.len();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = format!("Bearer {}", String::from_utf8_lossy(&tampered));
        if let Ok(_citizen) = f.runtime.block_on(f.verifier.verify(Some(&tampered))) {
            panic!("a token with a changed byte was accepted");
        }
    }
}

/// Whether to print each signed assertion's outcome (`FUZZ_TRACE=1`, to check which seeds reach
/// the claim checks: `cargo fuzz run citizen_assertion fuzz/corpus/citizen_assertion -- -runs=0`).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// What an accepted assertion must have said.
fn accepted(citizen: &Citizen, claims: &[u8]) {
    let claims: Value = serde_json::from_slice(claims).expect("accepted claims are JSON");
    let sub = claims["sub"].as_str().expect("accepted claims have a sub");
    assert_eq!(citizen.identity.reveal(), sub);
    assert_eq!(claims["acr"].as_str(), Some(citizen.acr.as_str()));
    assert_eq!(claims["iss"].as_str(), Some(ISSUER));
    assert!(
        !format!("{citizen:?}").contains(sub),
        "Debug shows the identity code"
    );
}

/// The error's texts are among the fixed ones, so they cannot carry any part of the input.
fn assert_fixed(error: AssertionError) {
    assert!(
        ERRORS
            .iter()
            .any(|known| known.to_string() == error.to_string()
                && ApiError::from(*known).reason() == ApiError::from(error).reason()
                && known.kind() == error.kind()),
        "unexpected error text: {error:?}"
    );
}

/// Claims JSON with numeric `exp`, `iat` and `nbf` read as offsets from now; anything that is not
/// a JSON object is signed as it is.
fn relative_times(claims: &[u8]) -> Vec<u8> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(claims) else {
        return claims.to_vec();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for name in ["exp", "iat", "nbf"] {
        if let Some(offset) = map.get(name).and_then(Value::as_i64) {
            map.insert(name.to_owned(), Value::from(now.saturating_add(offset)));
        }
    }
    serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
}
