//! OWN-1, OWN-2, OWN-4..6: citizen assertions the gateway must refuse — on every route, judged by
//! the status and by what DVV saw — and the ones it must accept (the controls that keep the
//! refusals from passing against a gateway that refuses everything). Boundaries, not far-off
//! values: a lifetime just over the maximum beside one exactly at it, every accepted and refused
//! level, a missing claim beside a wrong one, representation claims generated in many spellings.

use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::forge;
use crate::outcome::Outcome;

const PROBE: &str = "/v1/messages?limit=1";

/// The operator API's routes for citizen A, aimed at the probe message.
fn routes(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let m = &ctx.fx.a_probe;
    let mut r = vec![
        ("GET", "/v1/consent".to_owned()),
        ("GET", "/v1/messages?limit=5".to_owned()),
        ("GET", format!("/v1/messages/{}", m.id)),
        ("POST", format!("/v1/messages/{}/receipt", m.id)),
    ];
    if let Some(att) = m.attachment {
        r.push(("GET", format!("/v1/messages/{}/attachments/{att}", m.id)));
    }
    r
}

/// Sends `token` on every route; problems found (accepted anywhere, or DVV called for it).
pub async fn refused_everywhere(
    ctx: &Ctx,
    out: &mut Outcome,
    token: &str,
    what: &str,
) -> anyhow::Result<Vec<String>> {
    ctx.remember(token);
    let seq = ctx.last_seq().await?;
    let mut problems = Vec::new();
    let mut statuses = Vec::new();
    for (method, path) in routes(ctx) {
        let ans = ctx.call(method, &path, Some(token)).await?;
        statuses.push(ans.status);
        if !matches!(ans.status, 400 | 401 | 403) {
            problems.push(format!("{what}: {method} {path} answered {}", ans.status));
        }
        if ans.contains(&ctx.fx.a_probe.canary) {
            problems.push(format!("{what}: {method} {path} released content"));
        }
    }
    let seen = crate::ctx::consent_calls(&ctx.dvv_calls(seq).await?, None);
    out.log(format!(
        "{what}: {statuses:?} on {} routes; DVV calls on consents meanwhile: {}",
        statuses.len(),
        seen.len()
    ));
    if !seen.is_empty() {
        problems.push(format!(
            "{what}: DVV saw {} for a refused assertion",
            seen.join(", ")
        ));
    }
    Ok(problems)
}

async fn all_refused(ctx: &Ctx, probes: Vec<(String, String)>) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new();
    let mut problems = Vec::new();
    let n = probes.len();
    for (what, token) in probes {
        problems.extend(refused_everywhere(ctx, &mut out, &token, &what).await?);
    }
    Ok(out.decide(
        problems.is_empty(),
        format!("{n} assertion(s) refused on every route; DVV saw no consent call for any"),
        problems.join("; "),
    ))
}

async fn accepted(ctx: &Ctx, out: &mut Outcome, token: &str, what: &str) -> anyhow::Result<bool> {
    ctx.remember(token);
    let ans = ctx.call("GET", PROBE, Some(token)).await?;
    out.log(format!("{what} → {}", ans.summary()));
    Ok(ans.status == 200)
}

/// A refusal case by id.
pub async fn run(id: &str, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let s = &ctx.signer;
    let a = &ctx.fx.a.code;
    let now = chrono::Utc::now().timestamp();
    let set = &ctx.target.settings;
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = s.claims(a);
        edit(&mut c);
        c
    };
    let one = |what: &str, token: String| vec![(what.to_owned(), token)];
    let probes = match id {
        "assert-control" => {
            let mut out = Outcome::new();
            let ok = accepted(ctx, &mut out, &ctx.token(a)?, "a good assertion").await?;
            return Ok(out.decide(
                ok,
                "a good assertion is accepted (200): the refusals are meaningful",
                "a good assertion was not accepted",
            ));
        }
        "assert-lifetime-at-max" => {
            let mut out = Outcome::new();
            let max = set.max_lifetime_secs;
            let token = s.sign(
                &with(&|c| {
                    c["iat"] = json!(now - 5);
                    c["nbf"] = json!(now - 5);
                    c["exp"] = json!(now - 5 + max);
                }),
                None,
            )?;
            let ok = accepted(ctx, &mut out, &token, &format!("lifetime exactly {max} s")).await?;
            return Ok(out.decide(
                ok,
                format!("an assertion living exactly the maximum ({max} s) is accepted"),
                format!("an assertion living exactly the maximum ({max} s) was refused: the boundary probe below would prove nothing"),
            ));
        }
        "assert-acr-accepted-levels" => {
            let mut out = Outcome::new();
            let mut refused = Vec::new();
            for level in &set.accepted_acr {
                let token = s.sign(&with(&|c| c["acr"] = json!(level)), None)?;
                if !accepted(ctx, &mut out, &token, &format!("acr {level}")).await? {
                    refused.push(level.clone());
                }
            }
            return Ok(out.decide(
                refused.is_empty() && !set.accepted_acr.is_empty(),
                format!(
                    "each of the {} accepted levels is accepted",
                    set.accepted_acr.len()
                ),
                format!("accepted levels refused: {}", refused.join(", ")),
            ));
        }
        "assert-expired" => one(
            "expired one second beyond the leeway",
            s.sign(
                &with(&|c| {
                    let exp = now - set.leeway_secs - 2;
                    c["iat"] = json!(exp - 300);
                    c["nbf"] = json!(exp - 300);
                    c["exp"] = json!(exp);
                }),
                None,
            )?,
        ),
        "assert-not-yet-valid" => one(
            "nbf just beyond the leeway ahead",
            s.sign(
                &with(&|c| {
                    let nbf = now + set.leeway_secs + 5;
                    c["nbf"] = json!(nbf);
                    c["iat"] = json!(now);
                    c["exp"] = json!(nbf + 60);
                }),
                None,
            )?,
        ),
        "assert-lifetime-just-over" => {
            let over = set.max_lifetime_secs + set.leeway_secs + 2;
            one(
                &format!("lifetime {over} s (the maximum plus the leeway plus 2 s)"),
                s.sign(
                    &with(&|c| {
                        c["iat"] = json!(now - 5);
                        c["nbf"] = json!(now - 5);
                        c["exp"] = json!(now - 5 + over);
                    }),
                    None,
                )?,
            )
        }
        "assert-too-long-lived" => vec![
            (
                "lifetime of ten hours".to_owned(),
                s.sign(&with(&|c| c["exp"] = json!(now + 10 * 3600)), None)?,
            ),
            (
                "lifetime of seven days".to_owned(),
                s.sign(&with(&|c| c["exp"] = json!(now + 7 * 86_400)), None)?,
            ),
        ],
        "assert-no-exp" => one(
            "no exp",
            s.sign(
                &with(&|c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                }),
                None,
            )?,
        ),
        "assert-wrong-aud" => vec![
            (
                "aud of another service".to_owned(),
                s.sign(&with(&|c| c["aud"] = json!("some-other-service")), None)?,
            ),
            (
                "no aud".to_owned(),
                s.sign(
                    &with(&|c| {
                        c.as_object_mut().map(|o| o.remove("aud"));
                    }),
                    None,
                )?,
            ),
        ],
        "assert-wrong-iss" => vec![
            (
                "iss of another identity service".to_owned(),
                s.sign(
                    &with(&|c| c["iss"] = json!("https://attacker.invalid")),
                    None,
                )?,
            ),
            (
                "no iss".to_owned(),
                s.sign(
                    &with(&|c| {
                        c.as_object_mut().map(|o| o.remove("iss"));
                    }),
                    None,
                )?,
            ),
        ],
        "assert-alg-none" => one("alg none, no signature", s.alg_none(&s.claims(a))),
        "assert-hmac-public-key" => one(
            "HS256 keyed with the public key",
            s.hmac_with_public_key(&s.claims(a))?,
        ),
        "assert-unknown-kid" => one(
            "kid not in the JWKS",
            s.sign(&s.claims(a), Some("cert-unknown-kid"))?,
        ),
        "assert-tampered" => {
            let good = s.sign(&s.claims(a), None)?;
            one(
                "payload swapped for another citizen's, signature kept",
                forge::tamper(&good, &s.claims(&ctx.fx.b.code)),
            )
        }
        "assert-acr-refused-levels" => {
            let mut v = Vec::new();
            for (what, acr) in [
                ("acr loa1 (weak)", json!("http://ftn.ficora.fi/2017/loa1")),
                ("acr eIDAS low", json!("http://eidas.europa.eu/LoA/low")),
                ("acr empty", json!("")),
                ("acr in other case", json!("HTTP://FTN.FICORA.FI/2017/LOA3")),
                ("acr as a list", json!(["http://ftn.ficora.fi/2017/loa3"])),
                ("acr as a number", json!(3)),
            ] {
                if set
                    .accepted_acr
                    .iter()
                    .any(|a| Some(a.as_str()) == acr.as_str())
                {
                    continue;
                }
                v.push((
                    what.to_owned(),
                    s.sign(&with(&|c| c["acr"] = acr.clone()), None)?,
                ));
            }
            v
        }
        "assert-acr-missing" => one(
            "no acr at all",
            s.sign(
                &with(&|c| {
                    c.as_object_mut().map(|o| o.remove("acr"));
                }),
                None,
            )?,
        ),
        "assert-invalid-identity-code" => {
            let mut bad = a.clone();
            let last = bad.pop().unwrap_or('0');
            bad.push(if last == 'A' { 'B' } else { 'A' });
            let lower = format!("{}{}", &a[..6], a[6..].to_lowercase());
            let mut v = vec![(
                "sub with a wrong check character".to_owned(),
                s.sign(&with(&|c| c["sub"] = json!(bad)), None)?,
            )];
            if lower != *a {
                v.push((
                    "sub in lower case".to_owned(),
                    s.sign(&with(&|c| c["sub"] = json!(lower)), None)?,
                ));
            }
            v.push((
                "sub with an unknown century sign".to_owned(),
                s.sign(
                    &with(&|c| c["sub"] = json!(format!("{}Z{}", &a[..6], &a[7..]))),
                    None,
                )?,
            ));
            v
        }
        "assert-sub-missing" => one(
            "no sub",
            s.sign(
                &with(&|c| {
                    c.as_object_mut().map(|o| o.remove("sub"));
                }),
                None,
            )?,
        ),
        "assert-on-behalf-of" => {
            let mut v = Vec::new();
            for claim in ["act", "may_act", "on_behalf_of"] {
                v.push((
                    format!("claim {claim}"),
                    s.sign(&with(&|c| c[claim] = json!({"sub": ctx.fx.b.code})), None)?,
                ));
            }
            v
        }
        "assert-representation-generated" => representation(ctx, now)?,
        other => anyhow::bail!("no such case: {other}"),
    };
    all_refused(ctx, probes).await
}

/// Representation claims as an identity service might spell them: other names and cases, other
/// languages, nested, and unnamed claims that carry another person's identity code.
fn representation(ctx: &Ctx, _now: i64) -> anyhow::Result<Vec<(String, String)>> {
    let s = &ctx.signer;
    let b = &ctx.fx.b.code;
    let twin = crate::ctx::twins(&ctx.fx.a.code)
        .into_iter()
        .next()
        .unwrap_or_else(|| b.clone());
    let mut out = Vec::new();
    let mut add = |what: String, edit: &dyn Fn(&mut Value)| -> anyhow::Result<()> {
        let mut c = s.claims(&ctx.fx.a.code);
        edit(&mut c);
        out.push((what, s.sign(&c, None)?));
        Ok(())
    };
    for name in [
        "Act",
        "ACT",
        "actor",
        "onBehalfOf",
        "OnBehalfOf",
        "acting_for",
        "represented_person_id",
        "representedPerson",
        "principal",
        "mandate",
        "valtuudet",
        "puolesta",
        "fullmakt",
        "huvudman",
    ] {
        add(format!("claim {name} naming another person"), &|c| {
            c[name] = json!({"sub": b});
        })?;
    }
    add("a nested ext.act".to_owned(), &|c| {
        c["ext"] = json!({"act": {"sub": b}});
    })?;
    add("an object holding its own sub".to_owned(), &|c| {
        c["context"] = json!({"person": {"sub": b}});
    })?;
    add(
        "an unnamed claim carrying another identity code".to_owned(),
        &|c| {
            c["x_ref"] = json!(b);
        },
    )?;
    add("another identity code in a list".to_owned(), &|c| {
        c["people"] = json!(["someone", b]);
    })?;
    add("a century-sign twin's code in a claim".to_owned(), &|c| {
        c["x_person"] = json!(twin);
    })?;
    Ok(out)
}
