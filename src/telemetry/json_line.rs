//! The JSON log line, written straight into one buffer.
//!
//! The same object `tracing-subscriber`'s JSON format writes with flattened events (`timestamp`,
//! `level`, the event's fields, `target`, the current `span` with its `name`, and `spans` from
//! the root), at a fraction of its cost: that format rebuilds every event through a serde map
//! and parses each span's stored fields back from JSON for every line, about 26k instructions
//! for the access-log line the gateway writes on every request (issue 22). Here the event's
//! fields are written as they are visited, and a span's fields (already stored as a JSON object
//! by the JSON field formatter) are spliced in as they are.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// Formats each event as one JSON object per line (see the module's doc).
pub struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut line = String::with_capacity(320);
        line.push_str("{\"timestamp\":\"");
        let now = chrono::Utc::now();
        write!(line, "{}", now.format("%Y-%m-%dT%H:%M:%S%.6fZ"))?;
        line.push_str("\",\"level\":\"");
        line.push_str(meta.level().as_str());
        line.push('"');
        event.record(&mut Fields { line: &mut line });
        line.push_str(",\"target\":");
        push_str(&mut line, meta.target());
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = current {
            line.push_str(",\"span\":");
            push_span(&mut line, &span);
            line.push_str(",\"spans\":[");
            if let Some(scope) = ctx.event_scope() {
                for (i, span) in scope.from_root().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    push_span(&mut line, &span);
                }
            }
            line.push(']');
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// A span as an object: its recorded fields, then its `name`.
fn push_span<S: for<'a> LookupSpan<'a>>(line: &mut String, span: &SpanRef<'_, S>) {
    let extensions = span.extensions();
    let fields = extensions
        .get::<FormattedFields<JsonFields>>()
        .map(|f| f.fields.as_str())
        .unwrap_or("{}");
    // The JSON field formatter stores an object (`{}` when the span has no fields).
    match fields.strip_suffix('}') {
        Some(open) if open.len() > 1 => {
            line.push_str(open);
            line.push(',');
        }
        _ => line.push('{'),
    }
    line.push_str("\"name\":");
    push_str(line, span.name());
    line.push('}');
}

/// `s` as a JSON string (as it is when nothing in it needs an escape, the usual case).
fn push_str(line: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        match serde_json::to_string(s) {
            Ok(quoted) => line.push_str(&quoted),
            Err(_) => line.push_str("\"\""),
        }
    } else {
        line.push('"');
        line.push_str(s);
        line.push('"');
    }
}

/// Writes each field of an event as `,"name":value`, as the JSON format records them.
struct Fields<'a> {
    line: &'a mut String,
}

impl Fields<'_> {
    fn key(&mut self, field: &Field) -> bool {
        // Fields a `log` record carries for its metadata, which the line's own keys replace.
        if field.name().starts_with("log.") {
            return false;
        }
        self.line.push(',');
        push_str(self.line, field.name());
        self.line.push(':');
        true
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            push_str(self.line, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            push_str(self.line, &format!("{value:?}"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.line.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            match serde_json::Number::from_f64(value) {
                Some(n) => {
                    let _ = write!(self.line, "{n}");
                }
                None => self.line.push_str("null"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().expect("buffer").clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
                .collect()
        }
    }

    /// Events of every field type, inside no span, one span, nested spans and a span without
    /// fields.
    fn emit() {
        tracing::info!(target: "ikkuna::access", method = "GET", route = "/v1/messages",
            status = 200u16, latency_ms = 1.25, error = "", signed = -3i64, ok = true,
            nan = f64::NAN, "operator api");
        let outer = tracing::info_span!("request", request_id = "r-1", n = 2u64);
        let _o = outer.enter();
        tracing::warn!(reason = ?Some("quoted \"text\"\n"), backslash = "a\\b", control = "x\u{1}", "inside {}", "one");
        let inner = tracing::info_span!("dvv");
        let _i = inner.enter();
        tracing::error!(target: "ikkuna::dvv", "nested");
    }

    #[test]
    fn lines_are_those_of_the_json_format_with_flattened_events() {
        let ours = Buffer::default();
        let theirs = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(ours.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(theirs.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let (mut ours, mut theirs) = (ours.lines(), theirs.lines());
        assert_eq!(ours.len(), 3);
        for line in ours.iter_mut().chain(theirs.iter_mut()) {
            let time = line["timestamp"].as_str().expect("timestamp").to_owned();
            assert!(
                chrono::DateTime::parse_from_rfc3339(&time).is_ok(),
                "{time}"
            );
            line.as_object_mut().expect("object").remove("timestamp");
        }
        assert_eq!(ours, theirs);
        assert_eq!(ours[1]["span"]["request_id"], "r-1");
        assert_eq!(ours[2]["spans"][1]["name"], "dvv");
    }
}
