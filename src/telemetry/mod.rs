//! Telemetry: logs (JSON lines in production, readable text in the sandbox; every line passes
//! through the redaction layer) and the Prometheus metrics registry.

mod json_line;
pub mod metrics;
pub mod redact;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

impl LogFormat {
    /// `IKKUNA_LOG_FORMAT=json|text` when set, else `default`.
    pub fn from_env_or(default: LogFormat) -> LogFormat {
        match std::env::var("IKKUNA_LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            Ok("text") => LogFormat::Text,
            _ => default,
        }
    }
}

/// Installs the global subscriber at level `info` (or `RUST_LOG`); a second call is a no-op.
pub fn init_logs(format: LogFormat) {
    init_logs_with(format, "info");
}

/// Installs the global subscriber, writing redacted lines to stderr. `RUST_LOG`, when set, wins
/// over `level` (a filter directive such as `info` or `ikkuna=debug`).
pub fn init_logs_with(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(redact::RedactingMakeWriter::new(std::io::stderr));
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json_line::JsonLine)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
