//! The last line of defence for logs: every formatted log line passes through [`redact`] before
//! it reaches its destination, so an identity code, a bearer token or a JWT cannot be written
//! even when someone logs a whole request, header map or error by mistake.
//!
//! Three patterns are scrubbed:
//! - Finnish identity codes `DDMMYYCZZZQ` (century sign `+ - Y X W V U A B C D E F`, either
//!   case), standing alone (not inside a longer word such as a UUID), whether or not the check
//!   character is right: a mistyped code still names a person;
//! - whatever follows `Bearer ` (any case);
//! - JWT-looking strings: three base64url segments, the first starting with `eyJ`.

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// What replaces an identity code.
pub const REDACTED_IDENTITY: &str = "[redacted-id]";
/// What replaces a bearer token or a JWT.
pub const REDACTED_TOKEN: &str = "[redacted-token]";

/// Returns `line` with every identity code, bearer token and JWT replaced.
pub fn redact(line: &str) -> Cow<'_, str> {
    let bytes = line.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let hit = identity_code_at(bytes, i)
            .map(|len| (len, REDACTED_IDENTITY))
            .or_else(|| bearer_at(bytes, i).map(|len| (len, REDACTED_TOKEN)))
            .or_else(|| jwt_at(bytes, i).map(|len| (len, REDACTED_TOKEN)));
        match hit {
            Some((len, replacement)) => {
                let buf = out.get_or_insert_with(|| String::with_capacity(line.len()));
                buf.push_str(&line[copied..i]);
                buf.push_str(replacement);
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(line),
        Some(mut buf) => {
            buf.push_str(&line[copied..]);
            Cow::Owned(buf)
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Whether `bytes[i]` starts a new word: the byte before is not alphanumeric, or is the `m` that
/// ends an ANSI colour sequence (`ESC [ 0 ; 1 m`), as the text format writes before values.
fn starts_word(bytes: &[u8], i: usize, word: fn(u8) -> bool) -> bool {
    if i == 0 || !word(bytes[i - 1]) {
        return true;
    }
    if bytes[i - 1] != b'm' {
        return false;
    }
    let mut j = i - 1;
    while j > 0 && (bytes[j - 1].is_ascii_digit() || bytes[j - 1] == b';') {
        j -= 1;
    }
    j >= 2 && bytes[j - 1] == b'[' && bytes[j - 2] == 0x1b
}

fn two_digits(bytes: &[u8], at: usize) -> Option<u8> {
    let (a, b) = (*bytes.get(at)?, *bytes.get(at + 1)?);
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'))
}

/// Length of an identity code starting at `i`, if one does.
fn identity_code_at(bytes: &[u8], i: usize) -> Option<usize> {
    if !starts_word(bytes, i, is_word) {
        return None;
    }
    let day = two_digits(bytes, i)?;
    let month = two_digits(bytes, i + 2)?;
    two_digits(bytes, i + 4)?;
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let sign = bytes.get(i + 6)?.to_ascii_uppercase();
    if !b"+-YXWVUABCDEF".contains(&sign) {
        return None;
    }
    if !bytes.get(i + 7..i + 10)?.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let check = bytes.get(i + 10)?.to_ascii_uppercase();
    if !check.is_ascii_alphanumeric() {
        return None;
    }
    if bytes.get(i + 11).is_some_and(|b| is_word(*b)) {
        return None;
    }
    Some(11)
}

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

/// Length of `Bearer <token>` starting at `i` (the word is kept out of the count: only the token
/// is replaced, so the line still says a bearer token was there).
fn bearer_at(bytes: &[u8], i: usize) -> Option<usize> {
    const WORD: &[u8] = b"bearer";
    if i < WORD.len() + 1 {
        return None;
    }
    let start = i - 1;
    if !bytes.get(start).is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let word = bytes.get(start - WORD.len()..start)?;
    if !word.eq_ignore_ascii_case(WORD) {
        return None;
    }
    if !starts_word(bytes, start - WORD.len(), is_word) {
        return None;
    }
    // Already scrubbed (e.g. a JWT replaced earlier on the line) or nothing: leave it.
    if bytes.get(i) == Some(&b'[') {
        return None;
    }
    let len = bytes[i..].iter().take_while(|b| token_char(**b)).count();
    (len > 0).then_some(len)
}

fn base64url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Length of a JWT (`eyJ…`.`…`.`…`) starting at `i`.
fn jwt_at(bytes: &[u8], i: usize) -> Option<usize> {
    if !bytes.get(i..)?.starts_with(b"eyJ") || !starts_word(bytes, i, base64url_char) {
        return None;
    }
    let mut at = i;
    for segment in 0..3 {
        let len = bytes[at..]
            .iter()
            .take_while(|b| base64url_char(**b))
            .count();
        if len == 0 && segment < 2 {
            return None;
        }
        at += len;
        if segment < 2 {
            if bytes.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
    }
    Some(at - i)
}

/// The target of the operator API's access log. Its events carry only structured fields that
/// cannot hold an identity code, a token or content — the route template, a method from a fixed
/// set, the status, the latency, a fixed error label, the gateway's own request id, and DVV's
/// trace id redacted on its own ([`redact`] of that one field) — so its lines skip the redaction
/// pass over the whole formatted line. Nothing else may log under this target.
pub const ACCESS_LOG_TARGET: &str = "ikkuna::access";

/// A [`MakeWriter`] whose writers buffer one log event and write it redacted when dropped
/// (tracing's formatter writes each event through a fresh writer). Access-log events
/// ([`ACCESS_LOG_TARGET`]) are written as formatted: their fields were made safe one by one.
#[derive(Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps the destination `inner`.
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            buf: Vec::with_capacity(256),
            inner: self.inner.make_writer(),
            scrub: true,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter {
            buf: Vec::with_capacity(256),
            inner: self.inner.make_writer_for(meta),
            scrub: meta.target() != ACCESS_LOG_TARGET,
        }
    }
}

/// Buffers one event; on drop writes it, redacted (unless it is an access-log line), in one
/// piece.
pub struct RedactingWriter<W: Write> {
    buf: Vec<u8>,
    inner: W,
    scrub: bool,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if !self.scrub {
            let _ = self.inner.write_all(&self.buf);
            let _ = self.inner.flush();
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = redact(&text);
        let _ = self.inner.write_all(clean.as_bytes());
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_codes_in_every_century_and_case_are_scrubbed() {
        for code in [
            "010190-999K",
            "010190Y999K",
            "311299+123A",
            "010105A123B",
            "010105f123b",
            "131052-308T",
        ] {
            let line = format!(r#"{{"sub":"{code}","x":"id {code}."}}"#);
            let clean = redact(&line);
            assert!(!clean.contains(code), "{code} leaked: {clean}");
            assert_eq!(clean.matches(REDACTED_IDENTITY).count(), 2, "{clean}");
        }
    }

    #[test]
    fn uuids_numbers_and_dates_are_left_alone() {
        for line in [
            "request_id=2b1f3a7e-1234-4c5d-9e8f-0123456789ab",
            "request_id=12310190-9999-4c5d-9e8f-0123456789ab",
            "latency_ms=12.5 status=200 at 2026-01-12T10:00:00Z",
            "message 1234567 attachment 99",
        ] {
            assert_eq!(redact(line), line);
        }
    }

    #[test]
    fn bearer_tokens_and_jwts_are_scrubbed() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIwMTAxOTAtOTk5SyJ9.c2lnbmF0dXJl";
        let line = format!("authorization: Bearer {jwt} and later {jwt}, bearer abc.def+/=");
        let clean = redact(&line);
        assert!(!clean.contains("eyJ"), "{clean}");
        assert!(!clean.contains("abc.def"), "{clean}");
        assert!(clean.contains("Bearer [redacted-token]"), "{clean}");
        assert_eq!(
            redact("no tokens here: eyJ alone"),
            "no tokens here: eyJ alone"
        );
    }

    #[test]
    fn colour_codes_do_not_shield_a_value() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        let line = format!("\x1b[3msub\x1b[0m\x1b[2m=\x1b[0m010190-999W \x1b[3mt\x1b[0m=\x1b[0m{jwt} \x1b[1mBearer abc");
        let clean = redact(&line);
        assert!(
            !clean.contains("010190") && !clean.contains("eyJ") && !clean.contains("abc"),
            "{clean:?}"
        );
        assert_eq!(redact("item010190-999W"), "item010190-999W");
    }

    #[test]
    fn the_writer_scrubs_each_event() {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let target = sink.clone();
        let make = RedactingMakeWriter::new(move || SinkWriter(target.clone()));
        let subscriber = tracing_subscriber::fmt().json().with_writer(make).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(request = ?"GET /x Authorization: Bearer secret-token", "oops 010190-999K");
        });
        let text = String::from_utf8(sink.lock().expect("sink").clone()).expect("utf8");
        assert!(text.contains(REDACTED_IDENTITY), "{text}");
        assert!(
            !text.contains("010190-999K") && !text.contains("secret-token"),
            "{text}"
        );
    }

    #[test]
    fn only_access_log_lines_skip_the_line_pass() {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let target = sink.clone();
        let make = RedactingMakeWriter::new(move || SinkWriter(target.clone()));
        let subscriber = tracing_subscriber::fmt().json().with_writer(make).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "ikkuna::api::layers", route = "010190-999K", "other");
            tracing::info!(target: ACCESS_LOG_TARGET, route = "/v1/messages", marker = "010190-999K", "access");
        });
        let text = String::from_utf8(sink.lock().expect("sink").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!lines[0].contains("010190-999K"), "{text}");
        // The access target is written as formatted: its fields must be safe on their own.
        assert!(lines[1].contains("010190-999K"), "{text}");
    }

    struct SinkWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for SinkWriter {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
