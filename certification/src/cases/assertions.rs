//! OWN-1, OWN-2: citizen assertions the gateway must refuse, and one it must accept (the control
//! that keeps the refusals from passing against a gateway that refuses everything).

use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::forge;
use crate::outcome::Outcome;

const PROBE: &str = "/v1/messages?limit=1";

/// A refusal case by id.
pub async fn run(id: &str, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let s = &ctx.signer;
    let a = &ctx.fx.a.code;
    let now = chrono::Utc::now().timestamp();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = s.claims(a);
        edit(&mut c);
        c
    };
    let (token, what) = match id {
        "assert-control" => {
            let out = Outcome::new();
            let answer = ctx.call("GET", PROBE, Some(&ctx.token(a)?)).await?;
            return Ok(out.decide(
                answer.status == 200,
                "a good assertion is accepted (200): the refusals below are meaningful",
                format!("a good assertion was not accepted: {}", answer.summary()),
            ));
        }
        "assert-expired" => (
            s.sign(
                &with(&|c| {
                    c["iat"] = json!(now - 900);
                    c["nbf"] = json!(now - 900);
                    c["exp"] = json!(now - 600);
                }),
                None,
            )?,
            "expired ten minutes ago",
        ),
        "assert-not-yet-valid" => (
            s.sign(
                &with(&|c| {
                    c["nbf"] = json!(now + 600);
                    c["exp"] = json!(now + 900);
                }),
                None,
            )?,
            "nbf ten minutes ahead",
        ),
        "assert-too-long-lived" => (
            s.sign(&with(&|c| c["exp"] = json!(now + 7 * 86_400)), None)?,
            "lifetime of seven days",
        ),
        "assert-wrong-aud" => (
            s.sign(&with(&|c| c["aud"] = json!("some-other-service")), None)?,
            "aud of another service",
        ),
        "assert-wrong-iss" => (
            s.sign(
                &with(&|c| c["iss"] = json!("https://attacker.invalid")),
                None,
            )?,
            "iss of another identity service",
        ),
        "assert-alg-none" => (s.alg_none(&s.claims(a)), "alg none, no signature"),
        "assert-hmac-public-key" => (
            s.hmac_with_public_key(&s.claims(a))?,
            "HS256 keyed with the public key",
        ),
        "assert-unknown-kid" => (
            s.sign(&s.claims(a), Some("cert-unknown-kid"))?,
            "kid not in the JWKS",
        ),
        "assert-tampered" => {
            let good = s.sign(&s.claims(a), None)?;
            (
                forge::tamper(&good, &s.claims(&ctx.fx.b.code)),
                "payload swapped for another citizen's, signature kept",
            )
        }
        "assert-acr-too-low" => (
            s.sign(
                &with(&|c| c["acr"] = json!("http://ftn.ficora.fi/2017/loa1")),
                None,
            )?,
            "acr loa1 (weak identification)",
        ),
        "assert-invalid-identity-code" => {
            let mut bad = a.clone();
            let last = bad.pop().unwrap_or('0');
            bad.push(if last == 'A' { 'B' } else { 'A' });
            (
                s.sign(&with(&|c| c["sub"] = json!(bad)), None)?,
                "sub with a wrong check character",
            )
        }
        other => anyhow::bail!("no such case: {other}"),
    };
    refused(ctx, &token, what).await
}

/// OWN-2: `act`, `may_act` and `on_behalf_of` each refused.
pub async fn on_behalf_of(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let s = &ctx.signer;
    let mut out = Outcome::new();
    let mut accepted = Vec::new();
    for claim in ["act", "may_act", "on_behalf_of"] {
        let mut c = s.claims(&ctx.fx.a.code);
        c[claim] = json!({"sub": ctx.fx.b.code});
        let token = s.sign(&c, None)?;
        ctx.remember(&token);
        let ans = ctx.call("GET", PROBE, Some(&token)).await?;
        out.log(format!("claim {claim}: {}", ans.summary()));
        if !(400..500).contains(&ans.status) || ans.status == 404 || ans.status == 429 {
            accepted.push(format!("{claim} → {}", ans.status));
        }
    }
    Ok(out.decide(
        accepted.is_empty(),
        "assertions carrying act, may_act or on_behalf_of are refused",
        format!("not refused: {}", accepted.join(", ")),
    ))
}

async fn refused(ctx: &Ctx, token: &str, what: &str) -> anyhow::Result<Outcome> {
    ctx.remember(token);
    let mut out = Outcome::new();
    let ans = ctx.call("GET", PROBE, Some(token)).await?;
    out.log(format!(
        "GET {PROBE} with an assertion: {what} → {}",
        ans.summary()
    ));
    let refused = matches!(ans.status, 400 | 401 | 403);
    Ok(out.decide(
        refused,
        format!("refused ({}) : {what}", ans.status),
        format!("not refused ({}): {what}", ans.status),
    ))
}
