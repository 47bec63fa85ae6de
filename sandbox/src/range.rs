//! The `Range` header, in the one form the contract supports: a single byte range.

/// What a `Range` header asks of a resource of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, several ranges, or unparsable): send everything with 200.
    Full,
    /// Send `[start, end)` with 206.
    Partial {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Nothing of the resource is in the range: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value against a resource of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeRequest::Full,
        // bytes=-n: the last n bytes.
        (true, false) => {
            let Some(n) = digits(last).then(|| last.parse::<u64>().ok()).flatten() else {
                return RangeRequest::Full;
            };
            if n == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    start: size.saturating_sub(n),
                    end: size,
                }
            }
        }
        // bytes=a- or bytes=a-b.
        (false, _) => {
            let Some(start) = digits(first).then(|| first.parse::<u64>().ok()).flatten() else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                size
            } else {
                match digits(last).then(|| last.parse::<u64>().ok()).flatten() {
                    Some(b) if b >= start => b.saturating_add(1).min(size),
                    _ => return RangeRequest::Full,
                }
            };
            if start >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial { start, end }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(Some("bytes=0-9"), 100), Partial { start: 0, end: 10 });
        assert_eq!(
            parse(Some("bytes=90-"), 100),
            Partial {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            parse(Some("bytes=-10"), 100),
            Partial {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            parse(Some("bytes=-1000"), 100),
            Partial { start: 0, end: 100 }
        );
        assert_eq!(
            parse(Some("bytes=50-5000"), 100),
            Partial {
                start: 50,
                end: 100
            }
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn ignored() {
        for h in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse(Some(h), 100), Full, "{h}");
        }
        assert_eq!(parse(None, 100), Full);
    }
}
