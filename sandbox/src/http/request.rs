//! Reading requests defensively: bounded bodies with a deadline, JSON that must be an object,
//! query strings without duplicates.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest request body either API accepts.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send its body.
const BODY_DEADLINE: Duration = Duration::from_secs(15);

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes (413) and slow senders (408).
pub async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > MAX_BODY as u64 => return Err(ApiError::too_large(MAX_BODY)),
            Some(_) => {}
            None => return Err(ApiError::bad_request("Invalid Content-Length")),
        }
    }
    let collected =
        tokio::time::timeout(BODY_DEADLINE, Limited::new(body, MAX_BODY).collect()).await;
    match collected {
        Err(_) => Err(ApiError::new(
            http::StatusCode::REQUEST_TIMEOUT,
            "Request body not received in time",
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY))
        }
        Ok(Err(_)) => Err(ApiError::bad_request("Request body could not be read")),
    }
}

/// Parses a body that must be one JSON object. An empty body counts as `{}` only when
/// `empty_is_object` is set. Syntax errors name the position, never the content.
pub fn json_object(bytes: &[u8], empty_is_object: bool) -> Result<Map<String, Value>, ApiError> {
    if empty_is_object && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "Malformed JSON at line {} column {}",
            e.line(),
            e.column()
        ))),
    }
}

/// A required string field of a JSON object.
pub fn string_field<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::invalid_field(field, "must be a string")),
        None => Err(ApiError::invalid_field(field, "is required")),
    }
}

/// Decodes a query string; a parameter given twice is refused. Empty values count as absent.
pub fn query(raw: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    let Some(raw) = raw else { return Ok(out) };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k =
            decode_component(k).ok_or_else(|| ApiError::bad_request("Malformed query string"))?;
        let v =
            decode_component(v).ok_or_else(|| ApiError::bad_request("Malformed query string"))?;
        if out.contains_key(&k) {
            return Err(ApiError::bad_request(format!(
                "Query parameter {} given more than once",
                sanitize(&k)
            )));
        }
        out.insert(k, v);
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space); a repeated key is refused.
pub fn form(bytes: &[u8]) -> Result<HashMap<String, String>, ()> {
    let text = std::str::from_utf8(bytes).map_err(|_| ())?;
    let mut out = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode_component(&k.replace('+', " ")).ok_or(())?;
        let v = decode_component(&v.replace('+', " ")).ok_or(())?;
        if out.insert(k, v).is_some() {
            return Err(());
        }
    }
    Ok(out)
}

fn decode_component(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A parameter name fit to echo: short and plain.
fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect()
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_rules() {
        let q = query(Some("limit=5&continuationToken=a%2Eb")).unwrap();
        assert_eq!(q["limit"], "5");
        assert_eq!(q["continuationToken"], "a.b");
        assert!(query(Some("limit=1&limit=2")).is_err());
        assert!(query(Some("continuationToken=&limit=")).unwrap().is_empty());
        assert!(query(Some("x=%ff")).is_err());
    }

    #[test]
    fn form_rules() {
        let f = form(b"grant_type=client_credentials&a=b+c%2B").unwrap();
        assert_eq!(f["a"], "b c+");
        assert!(form(b"a=1&a=2").is_err());
    }

    #[test]
    fn json_rules() {
        assert!(json_object(b"{", false).is_err());
        assert!(json_object(b"[]", false).is_err());
        assert!(json_object(b"", false).is_err());
        assert!(json_object(b"  ", true).unwrap().is_empty());
        let e = json_object(br#"{"endUserId": "131052-308T" "#, false).unwrap_err();
        assert_eq!(e.into_response().status(), http::StatusCode::BAD_REQUEST);
    }
}
