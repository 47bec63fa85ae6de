//! A strict JSON reader over DVV's bytes for the canonical check, made for what that check does:
//! read every token once, allocate nothing, keep nothing.
//!
//! Measured under callgrind on a 20-message inbox page (issue 22, release build): serde_json's
//! strict typed visit spent 147k instructions per page (about 320 per string token); jiter's pull
//! API and sonic-rs' serde driver, tried in its place, spent no less. This reader and the shape
//! walk spend 102k: a key is compared in place with the field expected next, a string is scanned
//! eight bytes at a time, UTF-8 is checked once for the whole body (simdutf8), and whatever the
//! canonical form never holds (an escaped key or enumeration value, a float where an integer
//! belongs, a surrogate escape) is refused outright, so such an answer takes the typed path
//! instead of being decided here.
//!
//! Strict JSON otherwise (RFC 8259): the whole body is valid UTF-8, strings hold no raw control
//! characters and only the standard escapes, numbers have no leading zeros, nothing follows the
//! value but whitespace.

use super::shape::{NotCanonical, Walk};

/// A position in one JSON document.
pub(super) struct Cursor<'a> {
    /// The document, checked to be UTF-8 once: a string's text is sliced from it (the quotes
    /// around it are ASCII, so its ends are character boundaries) and never checked again.
    text: &'a str,
    at: usize,
    /// The document holds no byte below 0x20 at all (no control character, and no whitespace
    /// but spaces): a string then ends at its first quote or backslash, found by `memchr`.
    compact: bool,
}

/// A string as written between its quotes, and whether it held an escape.
pub(super) struct RawStr<'a> {
    pub raw: &'a str,
    pub escaped: bool,
}

impl<'a> RawStr<'a> {
    /// The string when it holds no escape (so what is written is its text).
    pub fn plain(&self) -> Walk<&'a str> {
        if self.escaped {
            return Err(NotCanonical);
        }
        Ok(self.raw)
    }
}

impl<'a> Cursor<'a> {
    /// A reader of `bytes`, refused at once when they are not UTF-8 (checked once, here, so the
    /// string scan need only look for quotes, backslashes and control characters).
    pub fn new(bytes: &'a [u8]) -> Walk<Self> {
        let text = simdutf8::basic::from_utf8(bytes).map_err(|_| NotCanonical)?;
        // Branch-free over each block, so the compiler checks sixteen bytes per instruction.
        let compact = bytes
            .chunks(64)
            .all(|block| block.iter().fold(0u8, |low, &b| low | u8::from(b < 0x20)) == 0);
        Ok(Cursor {
            text,
            at: 0,
            compact,
        })
    }

    /// The first byte of the next value (after whitespace), not consumed.
    pub fn peek(&mut self) -> Walk<u8> {
        while let Some(&b) = self.text.as_bytes().get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(b);
            }
            self.at += 1;
        }
        Err(NotCanonical)
    }

    /// `byte`, after whitespace.
    fn consume(&mut self, byte: u8) -> Walk {
        if self.peek()? == byte {
            self.at += 1;
            Ok(())
        } else {
            Err(NotCanonical)
        }
    }

    /// `null`.
    pub fn null(&mut self) -> Walk {
        self.peek()?;
        if self.text.as_bytes()[self.at..].starts_with(b"null") {
            self.at += 4;
            Ok(())
        } else {
            Err(NotCanonical)
        }
    }

    /// A string: its text as written, its escapes checked (a surrogate escape is refused: whether it
    /// pairs is left to the typed path).
    pub fn string(&mut self) -> Walk<RawStr<'a>> {
        self.consume(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.skip_plain();
            match self.text.as_bytes().get(self.at) {
                Some(b'"') => {
                    let raw = self.text.get(start..self.at).ok_or(NotCanonical)?;
                    self.at += 1;
                    return Ok(RawStr { raw, escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(NotCanonical), // a control character, or the end
            }
        }
    }

    /// Moves past bytes that need no attention in a string, to the first quote, backslash or
    /// control character (or the end): eight bytes at a time, then one at a time. Past the first
    /// 24 bytes of a compact document (most strings end sooner), `memchr` takes over: it looks
    /// at 16 or 32 bytes per step but costs more to start.
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::from_le_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        const QUOTES: u64 = ONES * b'"' as u64;
        const BACKSLASHES: u64 = ONES * b'\\' as u64;
        const SPACES: u64 = ONES * 0x20;
        let rest = self.text.as_bytes().get(self.at..).unwrap_or_default();
        for (i, chunk) in rest.chunks_exact(8).enumerate() {
            if i == 3 && self.compact {
                let rest = self.text.as_bytes().get(self.at..).unwrap_or_default();
                self.at += memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                return;
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            // A high bit for each byte below 0x20, equal to `"` or equal to `\`: the lowest one
            // exact (a borrow may also mark bytes above it), so it is where the scan stops.
            let q = x ^ QUOTES;
            let b = x ^ BACKSLASHES;
            let special = (x.wrapping_sub(SPACES) | q.wrapping_sub(ONES) | b.wrapping_sub(ONES))
                & !x
                & !q
                & !b
                & HIGH;
            if special != 0 {
                self.at += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.at += 8;
        }
        while let Some(&b) = self.text.as_bytes().get(self.at) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return;
            }
            self.at += 1;
        }
    }

    /// One escape, the cursor on its backslash.
    fn escape(&mut self) -> Walk {
        let Some(&kind) = self.text.as_bytes().get(self.at + 1) else {
            return Err(NotCanonical);
        };
        self.at += 2;
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => {
                let hex = self.text.get(self.at..self.at + 4).ok_or(NotCanonical)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(NotCanonical);
                }
                let unit = u16::from_str_radix(hex, 16).map_err(|_| NotCanonical)?;
                if (0xD800..=0xDFFF).contains(&unit) {
                    return Err(NotCanonical);
                }
                self.at += 4;
                Ok(())
            }
            _ => Err(NotCanonical),
        }
    }

    /// An integer within `i64`, written as JSON writes integers (no fraction or exponent — the
    /// typed path would not read one as an integer — and not `-0`, which it reads as a float).
    pub fn int(&mut self) -> Walk<i64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let digits = self.text.as_bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.text.as_bytes()[self.at..self.at + digits];
        let leading_zero = digits > 1 && text[0] == b'0';
        if digits == 0 || leading_zero || (negative && text == b"0") {
            return Err(NotCanonical);
        }
        self.at += digits;
        if matches!(self.text.as_bytes().get(self.at), Some(b'.' | b'e' | b'E')) {
            return Err(NotCanonical);
        }
        let magnitude = text.iter().try_fold(0i64, |n, d| {
            n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))
        });
        // Accumulated negatively, so that i64::MIN fits.
        match (magnitude, negative) {
            (Some(n), true) => Ok(n),
            (Some(n), false) => n.checked_neg().ok_or(NotCanonical),
            (None, _) => Err(NotCanonical),
        }
    }

    /// An object's first key, as its index in `fields` (`guess` compared first), or `None` for
    /// `{}`. A key not among `fields`, or written with an escape, is refused.
    pub fn object_first(&mut self, fields: &[&str], guess: usize) -> Walk<Option<usize>> {
        self.consume(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(None);
        }
        self.key(fields, guess).map(Some)
    }

    /// The object's next key (see [`Cursor::object_first`]), or `None` at its end.
    pub fn object_next(&mut self, fields: &[&str], guess: usize) -> Walk<Option<usize>> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                self.key(fields, guess).map(Some)
            }
            b'}' => {
                self.at += 1;
                Ok(None)
            }
            _ => Err(NotCanonical),
        }
    }

    /// A key and its colon. The expected field is compared in place first (a field name holds
    /// no quote, backslash or control character, so its bytes and a closing quote are the whole
    /// key); anything else is read as a string and looked up.
    fn key(&mut self, fields: &[&str], guess: usize) -> Walk<usize> {
        self.consume(b'"')?;
        let expected = fields.get(guess).ok_or(NotCanonical)?.as_bytes();
        let rest = &self.text.as_bytes()[self.at..];
        let field = if rest.get(expected.len()) == Some(&b'"') && rest.starts_with(expected) {
            self.at += expected.len() + 1;
            guess
        } else {
            self.at -= 1;
            // An escaped key's raw bytes hold a backslash, so they match no field name.
            let key = self.string()?.raw;
            fields.iter().position(|f| *f == key).ok_or(NotCanonical)?
        };
        self.consume(b':')?;
        Ok(field)
    }

    /// Opens an array: whether it has a first element.
    pub fn array_first(&mut self) -> Walk<bool> {
        self.consume(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// After an element: whether another follows.
    pub fn array_next(&mut self) -> Walk<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Ok(true)
            }
            b']' => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(NotCanonical),
        }
    }

    /// Nothing but whitespace is left.
    pub fn finish(&mut self) -> Walk {
        match self.peek() {
            Err(NotCanonical) => Ok(()),
            Ok(_) => Err(NotCanonical),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(json: &str) -> Walk<usize> {
        let mut c = Cursor::new(json.as_bytes())?;
        let n = c.string()?.raw.len();
        c.finish()?;
        Ok(n)
    }

    #[test]
    fn strings_are_read_as_rfc_8259_has_them() {
        for good in [
            r#""""#,
            r#""ab""#,
            r#""long enough to take the eight-byte path \" and back""#,
            r#""\\ \/ \b \f \n \r \t \u00e4 \uFFFF""#,
            "\"p\u{e4}\u{e4}t\u{f6}s \u{1f600}\"",
        ] {
            assert!(strings(good).is_ok(), "{good}");
        }
        for bad in [
            "\"",
            "\"abc",
            "\"raw\ncontrol\"",
            "\"raw control in the eight-byte path\u{1}........\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            r#""\ud800\udc00""#,
            r#""a" trailing"#,
        ] {
            assert!(strings(bad).is_err(), "{bad}");
        }
        assert!(Cursor::new(b"\"\xff\"").is_err(), "not UTF-8");
    }

    #[test]
    fn integers_are_those_the_typed_path_reads_as_i64() {
        let int = |s: &str| Cursor::new(s.as_bytes()).and_then(|mut c| c.int());
        for (text, n) in [
            ("0", 0),
            ("7", 7),
            ("-12", -12),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(int(text).ok(), Some(n), "{text}");
        }
        for bad in [
            "",
            "-",
            "-0",
            "01",
            "1.0",
            "1e2",
            "1E2",
            "+1",
            "9223372036854775808",
        ] {
            assert!(int(bad).is_err(), "{bad}");
        }
    }
}
