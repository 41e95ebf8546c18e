//! Shutdown on SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes), as a `CancellationToken`.
//!
//! Daemons hand clones of the token to their tasks; the first signal cancels it. The future
//! form, [`signal`], is for a `select!` in a command's main loop.

use anyhow::{Context, Result};
pub use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGINT or SIGTERM. Fails only when the handlers cannot be installed.
pub async fn signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")
}

/// Resolves on the first SIGINT or SIGTERM, logging the request. When the handlers cannot be
/// installed it logs why and never resolves: the signals then keep their default action and
/// still end the process.
pub async fn requested() {
    match signal().await {
        Ok(()) => tracing::info!("shutdown requested"),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no signal handler; signals end the process");
            std::future::pending::<()>().await
        }
    }
}

/// A token cancelled by the first SIGINT or SIGTERM ([`requested`]). Must be called inside a
/// Tokio runtime.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        requested().await;
        cancel.cancel();
    });
    token
}
