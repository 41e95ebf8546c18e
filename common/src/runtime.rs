//! The Tokio runtime every moldops binary runs on: multi-threaded, with I/O and timers.

use anyhow::{Context, Result};

/// Builds the runtime (a thread per core).
pub fn build() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the Tokio runtime")
}

/// Runs `f` to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(build()?.block_on(f))
}
