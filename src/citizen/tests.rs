//! Every refusal of issue 3 item 3, with real keys generated here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256};
use serde_json::{json, Value};

use super::*;

const ISSUER: &str = "https://idp.operator.test";
const AUDIENCE: &str = "ikkuna";
const CITIZEN: &str = "131052-308T";

struct TestKey {
    kid: &'static str,
    pair: KeyPair,
}

impl TestKey {
    fn ec(kid: &'static str) -> Self {
        Self {
            kid,
            pair: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }

    fn ed(kid: &'static str) -> Self {
        Self {
            kid,
            pair: KeyPair::generate_for(&PKCS_ED25519).unwrap(),
        }
    }

    fn rsa(kid: &'static str) -> Self {
        Self {
            kid,
            pair: KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        let raw = self.pair.public_key_raw();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        if self.pair.is_compatible(&PKCS_ECDSA_P256_SHA256) {
            json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
                   "kid": self.kid, "use": "sig", "alg": "ES256"})
        } else if self.pair.is_compatible(&PKCS_ED25519) {
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(raw), "kid": self.kid, "use": "sig"})
        } else {
            let (n, e) = rsa_public_components(raw);
            json!({"kty": "RSA", "n": b64(&n), "e": b64(&e), "kid": self.kid, "use": "sig"})
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        let pem = self.pair.serialize_pem();
        if self.pair.is_compatible(&PKCS_ECDSA_P256_SHA256) {
            EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
        } else if self.pair.is_compatible(&PKCS_ED25519) {
            EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()
        } else {
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
        }
    }

    fn sign(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }
}

/// `n` and `e` from a DER RSAPublicKey (`SEQUENCE { INTEGER n, INTEGER e }`).
fn rsa_public_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] & 0x80 == 0 {
            (input[1] as usize, 2)
        } else {
            let n = (input[1] & 0x7f) as usize;
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (tag, seq, _) = read_tlv(der);
    assert_eq!(tag, 0x30);
    let (_, n, rest) = read_tlv(seq);
    let (_, e, _) = read_tlv(rest);
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    (strip(n), strip(e))
}

/// The HTTP status the operator API answers a refusal with (the one mapping in `api::error`).
fn status_of(err: AssertionError) -> u16 {
    crate::api::error::ApiError::from(err).status().as_u16()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn good_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": CITIZEN,
        "acr": ACR_HIGH_FI,
        "iat": now,
        "exp": now + 300,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn write_jwks(path: &Path, keys: &[&TestKey]) {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    jwks: PathBuf,
    ec: TestKey,
    ed: TestKey,
    verifier: AssertionVerifier,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let ec = TestKey::ec("ec-1");
    let ed = TestKey::ed("ed-1");
    write_jwks(&jwks, &[&ec, &ed]);
    let settings = VerifierSettings::new(ISSUER, AUDIENCE, JwksSource::File(jwks.clone()));
    let verifier = AssertionVerifier::new(settings).await.unwrap();
    Fixture {
        _dir: dir,
        jwks,
        ec,
        ed,
        verifier,
    }
}

async fn refuse(f: &Fixture, token: &str) -> AssertionError {
    let err = f
        .verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .expect_err("the assertion must be refused");
    // Nothing the client or a log sees carries the identity code or the token.
    for text in [
        format!("{err}"),
        format!("{err:?}"),
        crate::api::error::ApiError::from(err).reason().to_string(),
    ] {
        assert!(!text.contains(CITIZEN), "{text}");
        assert!(!text.contains(token), "{text}");
    }
    err
}

fn hand_made(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[tokio::test]
async fn a_good_es256_assertion_passes() {
    let f = fixture().await;
    let token = f.ec.sign(Algorithm::ES256, &good_claims());
    let citizen = f
        .verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(citizen.identity.reveal(), CITIZEN);
    assert_eq!(citizen.acr, ACR_HIGH_FI);
    assert!(citizen.expires_at > chrono::Utc::now());
    assert!(!format!("{citizen:?}").contains(CITIZEN));
    // The scheme is case-insensitive.
    f.verifier
        .verify(Some(&format!("bearer {token}")))
        .await
        .unwrap();
}

#[tokio::test]
async fn eddsa_and_rsa_assertions_pass() {
    let f = fixture().await;
    let token = f.ed.sign(Algorithm::EdDSA, &good_claims());
    f.verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .unwrap();

    let rsa = TestKey::rsa("rsa-1");
    write_jwks(&f.jwks, &[&f.ec, &f.ed, &rsa]);
    f.verifier.refresh_keys().await.unwrap();
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let token = rsa.sign(alg, &good_claims());
        f.verifier
            .verify(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
    }
    // RS512 is a valid RSA algorithm but not on the default allow-list.
    let token = rsa.sign(Algorithm::RS512, &good_claims());
    assert_eq!(
        refuse(&f, &token).await,
        AssertionError::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn missing_or_misshapen_credentials_are_401() {
    let f = fixture().await;
    let cases = [
        (None, AssertionError::Missing),
        (Some(""), AssertionError::Missing),
        (Some("Basic dXNlcjpwYXNz"), AssertionError::Scheme),
        (Some("Bearer"), AssertionError::Scheme),
        (Some("Bearer abc"), AssertionError::Malformed),
        (Some("Bearer a.b.c.d"), AssertionError::Malformed),
        (Some("Bearer a b.c"), AssertionError::Malformed),
        (Some("Bearer !!!.###.$$$"), AssertionError::Malformed),
        (Some("Bearer e30.e30.AAAA"), AssertionError::Malformed),
    ];
    for (header, expected) in cases {
        let err = f.verifier.verify(header).await.unwrap_err();
        assert_eq!(err, expected, "{header:?}");
        assert_eq!(status_of(err), 401);
    }
}

#[tokio::test]
async fn time_claims_are_enforced_with_skew() {
    let f = fixture().await;
    let now = now();
    let cases = [
        (
            with(
                with(good_claims(), "exp", json!(now - 120)),
                "iat",
                json!(now - 400),
            ),
            AssertionError::Expired,
        ),
        (
            with(good_claims(), "nbf", json!(now + 120)),
            AssertionError::NotYetValid,
        ),
        (
            with(
                with(good_claims(), "iat", json!(now + 120)),
                "exp",
                json!(now + 400),
            ),
            AssertionError::IssuedInFuture,
        ),
        (
            with(good_claims(), "exp", json!(now + 3600)),
            AssertionError::LifetimeTooLong,
        ),
        (
            with(
                with(good_claims(), "nbf", json!(now - 3000)),
                "exp",
                json!(now + 100),
            ),
            AssertionError::LifetimeTooLong,
        ),
        (
            with(good_claims(), "exp", json!("tomorrow")),
            AssertionError::MissingClaim("exp"),
        ),
    ];
    for (claims, expected) in cases {
        let err = refuse(&f, &f.ec.sign(Algorithm::ES256, &claims)).await;
        assert_eq!(err, expected, "{claims}");
        assert_eq!(status_of(err), 401);
    }
    let mut no_exp = good_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let err = refuse(&f, &f.ec.sign(Algorithm::ES256, &no_exp)).await;
    assert_eq!(err, AssertionError::MissingClaim("exp"));
    let mut no_start = good_claims();
    no_start.as_object_mut().unwrap().remove("iat");
    let err = refuse(&f, &f.ec.sign(Algorithm::ES256, &no_start)).await;
    assert_eq!(err, AssertionError::MissingClaim("iat"));

    // Within the 30 s skew: just expired, and issued slightly ahead of our clock.
    for claims in [
        with(
            with(good_claims(), "exp", json!(now - 10)),
            "iat",
            json!(now - 200),
        ),
        with(good_claims(), "iat", json!(now + 10)),
    ] {
        let token = f.ec.sign(Algorithm::ES256, &claims);
        f.verifier
            .verify(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let f = fixture().await;
    let cases = [
        (
            with(good_claims(), "aud", json!("another-gateway")),
            AssertionError::WrongAudience,
        ),
        (
            with(good_claims(), "aud", json!(["a", "b"])),
            AssertionError::WrongAudience,
        ),
        (
            with(good_claims(), "iss", json!("https://evil.test")),
            AssertionError::WrongIssuer,
        ),
        (
            with(good_claims(), "iss", json!(null)),
            AssertionError::MissingClaim("iss"),
        ),
    ];
    for (claims, expected) in cases {
        let err = refuse(&f, &f.ec.sign(Algorithm::ES256, &claims)).await;
        assert_eq!(err, expected);
        assert_eq!(status_of(err), 401);
    }
    let token = f.ec.sign(
        Algorithm::ES256,
        &with(good_claims(), "aud", json!(["other", AUDIENCE])),
    );
    f.verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
}

#[tokio::test]
async fn unsigned_tokens_are_refused() {
    let f = fixture().await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": "ec-1", "typ": "JWT"});
        for signature in [&b""[..], b"x"] {
            let token = hand_made(&header, &good_claims(), signature);
            let err = refuse(&f, &token).await;
            assert_eq!(err, AssertionError::AlgorithmNotAllowed);
            assert_eq!(status_of(err), 401);
        }
    }
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let f = fixture().await;
    // The classic confusion: HS256 keyed with the bytes of the published public key, in each form
    // an attacker might try.
    let jwk = f.ec.jwk();
    let public_forms: Vec<Vec<u8>> = vec![
        f.ec.pair.public_key_raw().to_vec(),
        f.ec.pair.public_key_pem().into_bytes(),
        serde_json::to_vec(&jwk).unwrap(),
    ];
    for secret in public_forms {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("ec-1".into());
            let token =
                jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(&secret))
                    .unwrap();
            assert_eq!(
                refuse(&f, &token).await,
                AssertionError::AlgorithmNotAllowed
            );
        }
    }

    // A shared-secret key in the JWKS is never trusted either.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let secret = b"0123456789abcdef0123456789abcdef";
    let doc = json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(secret), "alg": "HS256"},
        f.ec.jwk(),
    ]});
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let mut settings = VerifierSettings::new(ISSUER, AUDIENCE, JwksSource::File(path));
    let verifier = AssertionVerifier::new(settings.clone()).await.unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".into());
    let token =
        jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(secret)).unwrap();
    let err = verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .unwrap_err();
    assert_eq!(err, AssertionError::AlgorithmNotAllowed);

    // Configuring HMAC is refused outright.
    settings.algorithms.push(Algorithm::HS256);
    assert!(matches!(
        AssertionVerifier::new(settings).await,
        Err(VerifierBuildError::SymmetricAlgorithm("HS256"))
    ));
}

#[tokio::test]
async fn the_algorithm_must_fit_the_key() {
    let f = fixture().await;
    // An Ed25519 signature presented under the EC key's kid.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ec-1".into());
    let token = jsonwebtoken::encode(&header, &good_claims(), &f.ed.encoding_key()).unwrap();
    let err = refuse(&f, &token).await;
    assert_eq!(err, AssertionError::KeyMismatch);
    assert_eq!(status_of(err), 401);
    // ES256 presented under the Ed25519 key's kid.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ed-1".into());
    let token = jsonwebtoken::encode(&header, &good_claims(), &f.ec.encoding_key()).unwrap();
    assert_eq!(refuse(&f, &token).await, AssertionError::KeyMismatch);
}

#[tokio::test]
async fn a_signature_by_another_key_or_over_other_claims_fails() {
    let f = fixture().await;
    let good = f.ec.sign(Algorithm::ES256, &good_claims());
    let (header, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged = with(good_claims(), "sub", json!("010190-999K"));
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{header}.{payload}.{signature}");
    let err = refuse(&f, &tampered).await;
    assert_eq!(err, AssertionError::BadSignature);
    assert_eq!(status_of(err), 401);

    // Signed by a key the issuer does not have, under a trusted kid.
    let impostor = TestKey::ec("ec-1");
    let token = impostor.sign(Algorithm::ES256, &good_claims());
    assert_eq!(refuse(&f, &token).await, AssertionError::BadSignature);
}

#[tokio::test]
async fn an_unknown_kid_triggers_exactly_one_refresh_per_window() {
    let f = fixture().await;
    assert_eq!(f.verifier.key_reloads(), 0);
    let stranger = TestKey::ec("stranger");
    let token = stranger.sign(Algorithm::ES256, &good_claims());
    let err = refuse(&f, &token).await;
    assert_eq!(err, AssertionError::UnknownKey);
    assert_eq!(status_of(err), 401);
    assert_eq!(f.verifier.key_reloads(), 1);

    // A flood of unknown kids inside the cooldown window causes no further reload.
    let bearer = format!("Bearer {token}");
    let flood =
        futures_util::future::join_all((0..50).map(|_| f.verifier.verify(Some(&bearer)))).await;
    assert!(flood.iter().all(|r| *r == Err(AssertionError::UnknownKey)));
    assert_eq!(f.verifier.key_reloads(), 1);

    // No kid at all is refused without touching the key set.
    let header = json!({"alg": "ES256"});
    let token = hand_made(&header, &good_claims(), b"sig");
    assert_eq!(refuse(&f, &token).await, AssertionError::UnknownKey);
    assert_eq!(f.verifier.key_reloads(), 1);
}

#[tokio::test]
async fn an_unknown_kid_is_found_after_its_refresh() {
    let f = fixture().await;
    let rotated = TestKey::ec("ec-2");
    write_jwks(&f.jwks, &[&f.ec, &f.ed, &rotated]);
    let token = rotated.sign(Algorithm::ES256, &good_claims());
    f.verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(f.verifier.key_reloads(), 1);
}

#[tokio::test]
async fn a_jwks_file_changed_on_disk_is_picked_up_by_the_periodic_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let old = TestKey::ec("old");
    let new = TestKey::ec("new");
    write_jwks(&path, &[&old]);
    let mut settings = VerifierSettings::new(ISSUER, AUDIENCE, JwksSource::File(path.clone()));
    settings.refresh = Duration::from_millis(1000);
    settings.unknown_kid_cooldown = Duration::from_secs(3600);
    let verifier = AssertionVerifier::new(settings).await.unwrap();
    let bearer = |t: String| format!("Bearer {t}");
    let old_token = bearer(old.sign(Algorithm::ES256, &good_claims()));
    let new_token = bearer(new.sign(Algorithm::ES256, &good_claims()));

    // Spend the unknown-kid refresh, so only the periodic one can bring in the new key.
    assert_eq!(
        verifier.verify(Some(&new_token)).await,
        Err(AssertionError::UnknownKey)
    );
    write_jwks(&path, &[&new]);
    assert_eq!(
        verifier.verify(Some(&new_token)).await,
        Err(AssertionError::UnknownKey)
    );
    verifier.verify(Some(&old_token)).await.unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier.verify(Some(&new_token)).await.unwrap();
    assert_eq!(
        verifier.verify(Some(&old_token)).await,
        Err(AssertionError::UnknownKey)
    );

    // A broken file does not lock everyone out: the previous keys stay.
    std::fs::write(&path, b"{not json").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier.verify(Some(&new_token)).await.unwrap();
}

#[tokio::test]
async fn acr_must_be_accepted() {
    let f = fixture().await;
    for acr in [
        json!("http://ftn.ficora.fi/2017/loa1"),
        json!("http://eidas.europa.eu/LoA/low"),
        json!(null),
        json!(3),
    ] {
        let token =
            f.ec.sign(Algorithm::ES256, &with(good_claims(), "acr", acr));
        let err = refuse(&f, &token).await;
        assert_eq!(err, AssertionError::AcrNotAccepted);
        assert_eq!(status_of(err), 403);
    }
    for acr in default_accepted_acr() {
        let token =
            f.ec.sign(Algorithm::ES256, &with(good_claims(), "acr", json!(acr)));
        f.verifier
            .verify(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sub_must_be_a_valid_identity_code() {
    let f = fixture().await;
    for sub in [
        json!("131052-308X"),
        json!("131052308T"),
        json!("user-42"),
        json!(131052),
    ] {
        let token =
            f.ec.sign(Algorithm::ES256, &with(good_claims(), "sub", sub));
        let err = refuse(&f, &token).await;
        assert!(
            matches!(
                err,
                AssertionError::InvalidSubject | AssertionError::MissingClaim("sub")
            ),
            "{err:?}"
        );
        assert_eq!(status_of(err), 401);
    }
}

#[tokio::test]
async fn acting_on_behalf_of_someone_else_is_403() {
    let f = fixture().await;
    let cases = [
        ("act", json!({"sub": "010190-999K"})),
        ("may_act", json!({"sub": "010190-999K"})),
        ("on_behalf_of", json!("010190-999K")),
        ("mandate", json!({"type": "ISA"})),
        ("represented_person", json!("010190-999K")),
        ("principal", json!("010190-999K")),
        ("act", json!(null)),
        // The shapes a case-sensitive list of top-level names let through.
        ("actor", json!("x")),
        ("Act", json!({"x": 1})),
        ("acting_for", json!(true)),
        ("represented_person_id", json!(7)),
        ("valtuudet", json!(["x"])),
        ("puolesta", json!(true)),
        ("ext", json!({"act": {"type": "x"}})),
        ("people", json!(["010190-999W"])),
    ];
    for (claim, value) in cases {
        let token =
            f.ec.sign(Algorithm::ES256, &with(good_claims(), claim, value));
        let err = refuse(&f, &token).await;
        assert_eq!(err, AssertionError::OnBehalfOf, "{claim}");
        assert_eq!(status_of(err), 403);
    }
}

/// Property tests of "own mail only": generated claim sets, signed and verified for real.
mod own_mail_only {
    use super::*;
    use ikkuna_hetu::IdentityCode;
    use proptest::prelude::*;

    /// Claim names an identity service may send that name no one else.
    const BENIGN_KEYS: &[&str] = &[
        "jti",
        "amr",
        "azp",
        "sid",
        "nonce",
        "auth_time",
        "name",
        "given_name",
        "family_name",
        "locale",
        "email",
        "scope",
        "client_id",
        "active",
        "contact",
        "factor",
        "mandatory_mfa",
        "device",
        "app_version",
        "birthdate",
        "session_state",
        "reward",
        "forward",
    ];

    /// The representation vocabulary, as identity services might spell it.
    const VOCABULARY: &[&str] = &[
        "act",
        "actor",
        "acting for",
        "act as",
        "on behalf of",
        "may act",
        "mandate",
        "mandates",
        "delegation",
        "delegator",
        "represented person id",
        "representative",
        "principal",
        "impersonator",
        "proxy",
        "obo",
        "guardian",
        "valtuudet",
        "valtuutus",
        "valtakirja",
        "puolesta",
        "edustaja",
        "edustettava",
        "huoltaja",
        "holhooja",
        "asiamies",
        "päämies",
        "fullmakt",
        "ombud",
        "företrädare",
        "ställföreträdare",
        "vårdnadshavare",
        "förmyndare",
        "god man",
        "huvudman",
    ];

    fn spell(words: &str, style: u8) -> String {
        let parts: Vec<&str> = words.split(' ').collect();
        let cap = |w: &str| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        };
        match style % 7 {
            0 => parts.join("_"),
            1 => parts.join("-").to_uppercase(),
            2 => parts.iter().map(|w| cap(w)).collect(),
            3 => {
                let mut out = parts[0].to_owned();
                out.extend(parts[1..].iter().map(|w| cap(w)));
                out
            }
            4 => format!("x_{}", parts.join("_")),
            5 => format!("urn:example:{}", parts.join("")),
            _ => parts.join(".").to_uppercase(),
        }
    }

    fn benign_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            // No letter that could be a century sign, so no identity code by chance.
            "[g-t0-9 ]{0,24}".prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::from(CITIZEN)),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(BENIGN_KEYS).prop_map(str::to_owned),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn benign_claims() -> impl Strategy<Value = Vec<(String, Value)>> {
        prop::collection::vec(
            (
                prop::sample::select(BENIGN_KEYS).prop_map(str::to_owned),
                benign_value(),
            ),
            0..6,
        )
    }

    /// A valid identity code that is not the citizen's.
    fn another_code() -> impl Strategy<Value = String> {
        (1u8..=28, 1u8..=12, 1900u16..2024, 2u16..=999, 0usize..3).prop_filter_map(
            "another person",
            |(d, m, y, n, s)| {
                let sign = match (y, s) {
                    (1900..=1999, 0) => '-',
                    (1900..=1999, 1) => 'Y',
                    (1900..=1999, _) => 'X',
                    (_, 0) => 'A',
                    (_, 1) => 'B',
                    _ => 'C',
                };
                let code = IdentityCode::compose(d, m, y, sign, n).ok()?;
                (code.reveal() != CITIZEN).then(|| code.reveal().to_owned())
            },
        )
    }

    /// One way of acting for someone else: a representation key, another person's code in a
    /// value (as is, lower case or embedded), or an object with its own subject.
    fn marker() -> impl Strategy<Value = (Option<String>, Value)> {
        prop_oneof![
            (
                prop::sample::select(VOCABULARY),
                any::<u8>(),
                benign_value()
            )
                .prop_map(|(w, style, v)| (Some(spell(w, style)), v)),
            (another_code(), 0u8..3).prop_map(|(code, how)| {
                let v = match how {
                    0 => code,
                    1 => code.to_lowercase(),
                    _ => format!("urn:fi:hetu:{code}"),
                };
                (None, Value::from(v))
            }),
            (
                prop::sample::select(&["sub", "Sub", "SUBJECT", "subject"][..]),
                "[g-t]{1,8}"
            )
                .prop_map(|(k, v)| (None, object([(k.to_owned(), Value::from(v))]))),
        ]
    }

    /// Puts `value` under `key` (or a benign key) `depth` objects deep inside `claims`.
    fn plant(claims: &mut Value, key: Option<String>, value: Value, depth: usize, via: &str) {
        let key = key.unwrap_or_else(|| "note".to_owned());
        let mut nested = object([(key, value)]);
        for _ in 0..depth {
            nested = object([(via.to_owned(), Value::from(vec![nested]))]);
        }
        let top = if depth == 0 {
            nested.as_object().unwrap().clone()
        } else {
            serde_json::Map::from_iter([(format!("{via}_outer"), nested)])
        };
        claims.as_object_mut().unwrap().extend(top);
    }

    fn object<const N: usize>(pairs: [(String, Value); N]) -> Value {
        Value::Object(pairs.into_iter().collect())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 192,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    #[test]
    fn claim_sets_that_name_no_one_else_pass() {
        let rt = runtime();
        let f = rt.block_on(fixture());
        proptest!(config(), |(extra in benign_claims())| {
            let mut claims = good_claims();
            claims.as_object_mut().unwrap().extend(extra);
            let token = f.ec.sign(Algorithm::ES256, &claims);
            let verdict = rt.block_on(f.verifier.verify(Some(&format!("Bearer {token}"))));
            prop_assert!(verdict.is_ok(), "{claims} refused: {verdict:?}");
        });
    }

    #[test]
    fn any_claim_set_acting_for_someone_else_is_refused() {
        let rt = runtime();
        let f = rt.block_on(fixture());
        proptest!(config(), |(
            extra in benign_claims(),
            (key, value) in marker(),
            depth in 0usize..4,
            via in prop::sample::select(BENIGN_KEYS),
        )| {
            let mut claims = good_claims();
            claims.as_object_mut().unwrap().extend(extra);
            plant(&mut claims, key, value, depth, via);
            let token = f.ec.sign(Algorithm::ES256, &claims);
            let verdict = rt.block_on(f.verifier.verify(Some(&format!("Bearer {token}"))));
            prop_assert_eq!(verdict.err(), Some(AssertionError::OnBehalfOf), "{}", claims);
        });
    }

    #[test]
    fn strict_mode_refuses_every_claim_off_the_list() {
        let rt = runtime();
        let f = rt.block_on(fixture());
        let mut settings =
            VerifierSettings::new(ISSUER, AUDIENCE, JwksSource::File(f.jwks.clone()));
        settings.allowed_claims = Some(vec!["jti".to_owned(), "amr".to_owned()]);
        let strict = rt.block_on(AssertionVerifier::new(settings)).unwrap();
        proptest!(config(), |(extra in benign_claims())| {
            let mut claims = good_claims();
            claims.as_object_mut().unwrap().extend(extra);
            let off_list = claims
                .as_object()
                .unwrap()
                .keys()
                .any(|k| !VERIFIER_CLAIMS.contains(&k.as_str()) && k != "jti" && k != "amr");
            let token = f.ec.sign(Algorithm::ES256, &claims);
            let verdict = rt.block_on(strict.verify(Some(&format!("Bearer {token}"))));
            if off_list {
                prop_assert_eq!(verdict.err(), Some(AssertionError::ClaimNotAllowed));
            } else {
                prop_assert!(verdict.is_ok(), "{claims}: {verdict:?}");
            }
        });
    }
}

#[tokio::test]
async fn critical_header_extensions_are_refused() {
    let f = fixture().await;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    header.crit = Some(vec!["exp".into()]);
    let token = jsonwebtoken::encode(&header, &good_claims(), &f.ec.encoding_key()).unwrap();
    assert_eq!(
        refuse(&f, &token).await,
        AssertionError::UnsupportedCritical
    );
}

#[tokio::test]
async fn settings_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let missing = JwksSource::File(dir.path().join("absent.json"));
    let base = VerifierSettings::new(ISSUER, AUDIENCE, missing.clone());
    assert!(matches!(
        AssertionVerifier::new(base.clone()).await,
        Err(VerifierBuildError::Jwks(JwksError::Read { .. }))
    ));
    let mut s = base.clone();
    s.accepted_acr.clear();
    assert!(matches!(
        AssertionVerifier::new(s).await,
        Err(VerifierBuildError::NoAcceptedAcr)
    ));
    let mut s = base.clone();
    s.algorithms.clear();
    assert!(matches!(
        AssertionVerifier::new(s).await,
        Err(VerifierBuildError::NoAlgorithms)
    ));
    let s = VerifierSettings::new(
        ISSUER,
        AUDIENCE,
        JwksSource::Url {
            url: "http://idp.test/jwks".into(),
            ca_file: None,
        },
    );
    assert!(matches!(
        AssertionVerifier::new(s).await,
        Err(VerifierBuildError::Jwks(JwksError::Url))
    ));
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, br#"{"keys": []}"#).unwrap();
    let s = VerifierSettings::new(ISSUER, AUDIENCE, JwksSource::File(empty));
    assert!(matches!(
        AssertionVerifier::new(s).await,
        Err(VerifierBuildError::Jwks(JwksError::NoUsableKeys))
    ));
}

#[tokio::test]
async fn keys_can_come_from_an_https_url_trusting_only_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ec("url-1");
    let body = serde_json::to_vec(&json!({"keys": [key.jwk()]})).unwrap();
    let (url, ca_file) = serve_https_once(dir.path(), body).await;
    let settings = VerifierSettings::new(
        ISSUER,
        AUDIENCE,
        JwksSource::Url {
            url,
            ca_file: Some(ca_file),
        },
    );
    let verifier = AssertionVerifier::new(settings).await.unwrap();
    let token = key.sign(Algorithm::ES256, &good_claims());
    verifier
        .verify(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
}

/// An https server on loopback that answers every request with `body`; returns its URL and the
/// PEM of the CA that issued its certificate.
async fn serve_https_once(dir: &Path, body: Vec<u8>) -> (String, PathBuf) {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}/jwks.json"), ca_file)
}

#[tokio::test]
async fn a_remembered_signature_still_has_its_claims_checked_and_ends_with_its_key() {
    let f = fixture().await;
    let bearer = |t: &str| format!("Bearer {t}");

    // A token that verified once is accepted again (from the remembered signature) …
    let token = f.ec.sign(Algorithm::ES256, &good_claims());
    f.verifier.verify(Some(&bearer(&token))).await.unwrap();
    f.verifier.verify(Some(&bearer(&token))).await.unwrap();
    // … but its claims are judged at every call: once expired (beyond the skew) it is refused.
    let later = now() + 300 + 3600;
    let err = f
        .verifier
        .verify_at(Some(&bearer(&token)), later)
        .await
        .unwrap_err();
    assert_eq!(err, AssertionError::Expired);

    // Another signature over the same header and claims is a different token: verified afresh.
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
    assert_eq!(refuse(&f, &forged).await, AssertionError::BadSignature);

    // The issuer replaces the key under the same kid: the remembered verification ends with the
    // key set it was made under, and the old key's token is refused.
    let replacement = TestKey::ec("ec-1");
    write_jwks(&f.jwks, &[&replacement, &f.ed]);
    f.verifier.refresh_keys().await.unwrap();
    assert_eq!(refuse(&f, &token).await, AssertionError::BadSignature);
    let fresh = replacement.sign(Algorithm::ES256, &good_claims());
    f.verifier.verify(Some(&bearer(&fresh))).await.unwrap();

    // The key is withdrawn: its tokens stop at the key lookup, remembered or not.
    write_jwks(&f.jwks, &[&f.ed]);
    f.verifier.refresh_keys().await.unwrap();
    assert_eq!(refuse(&f, &fresh).await, AssertionError::UnknownKey);
}

#[tokio::test]
async fn a_refused_assertion_is_not_remembered() {
    let f = fixture().await;
    // Signed correctly but for another audience: refused, and refused again (nothing remembered
    // makes a second attempt cheaper or different).
    let token = f.ec.sign(
        Algorithm::ES256,
        &with(good_claims(), "aud", json!("other")),
    );
    assert_eq!(refuse(&f, &token).await, AssertionError::WrongAudience);
    assert_eq!(refuse(&f, &token).await, AssertionError::WrongAudience);
    assert!(!f.verifier.remembers(&token));
    let good = f.ec.sign(Algorithm::ES256, &good_claims());
    f.verifier
        .verify(Some(&format!("Bearer {good}")))
        .await
        .unwrap();
    assert!(f.verifier.remembers(&good));
}
