//! Logs of every moldops binary: to stderr (stdout carries machine-readable lines), filtered by
//! `RUST_LOG` or else the binary's default, coloured only on a terminal.

/// Installs the global subscriber; `default` is the filter when `RUST_LOG` is unset or invalid.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
