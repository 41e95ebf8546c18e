//! Logs of every moldops binary: to stderr (stdout carries machine-readable lines), filtered by
//! `RUST_LOG` or else the binary's default, coloured only on a terminal; one JSON object per
//! line instead with `MOLDOPS_LOG_FORMAT=json` (for log collectors: Loki, Elasticsearch, …).

/// Environment variable choosing the log format: `text` (default) or `json`.
pub const FORMAT_VAR: &str = "MOLDOPS_LOG_FORMAT";

/// Installs the global subscriber; `default` is the filter when `RUST_LOG` is unset or invalid.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match std::env::var(FORMAT_VAR).as_deref() {
        Ok("json") => builder.json().with_current_span(false).init(),
        Ok(other) if other != "text" => {
            builder.with_ansi(false).init();
            tracing::warn!(value = other, "{FORMAT_VAR} is neither text nor json; logging text");
        }
        _ => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}
