//! Inbox paging parameters, checked before anything reaches DVV.

use axum::extract::FromRequestParts;

use super::error::ApiError;

/// Largest page DVV serves.
pub const MAX_LIMIT: u32 = 100;
/// Continuation tokens are opaque but short; anything longer is not DVV's.
const MAX_TOKEN_LEN: usize = 512;

/// `?continuationToken=&limit=` of `GET /v1/messages`.
#[derive(Debug, Default, PartialEq)]
pub struct PageQuery {
    /// Opaque token from the previous page.
    pub continuation_token: Option<String>,
    /// Page size, 1..=100.
    pub limit: Option<u32>,
}

impl PageQuery {
    /// Parses and validates the raw query string; unknown parameters are refused.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Self::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "continuationToken" => {
                    if value.is_empty()
                        || value.len() > MAX_TOKEN_LEN
                        || !value.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(ApiError::bad_request("continuationToken is malformed"));
                    }
                    out.continuation_token = Some(value.into_owned());
                }
                "limit" => {
                    let limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| ApiError::bad_request("limit must be 1-100"))?;
                    out.limit = Some(limit);
                }
                _ => return Err(ApiError::bad_request("Unknown query parameter")),
            }
        }
        Ok(out)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    /// Checked before the citizen is admitted, so a malformed page costs no DVV call.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        let ctx = super::context::Ctx::from_request_parts(parts, &()).await?;
        Self::parse(parts.uri.query()).map_err(|e| ctx.refuse(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_token_and_limit() {
        let q = PageQuery::parse(Some("limit=5&continuationToken=abc")).unwrap();
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.continuation_token.as_deref(), Some("abc"));
        assert_eq!(PageQuery::parse(None).unwrap(), PageQuery::default());
    }

    #[test]
    fn refuses_bad_values() {
        for q in [
            "limit=0",
            "limit=101",
            "limit=x",
            "continuationToken=",
            "foo=1",
        ] {
            assert!(PageQuery::parse(Some(q)).is_err(), "{q}");
        }
        let long = format!("continuationToken={}", "a".repeat(600));
        assert!(PageQuery::parse(Some(&long)).is_err());
    }
}
