//! Progress of long steps: an indicatif bar when stderr is a terminal, otherwise a log line at
//! every quarter.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Where progress goes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Bars in a terminal, log lines otherwise; nothing at all when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress { terminal: std::io::stderr().is_terminal(), quiet }
    }

    /// A tracker of `total` steps named `what`.
    pub fn bar(&self, what: &str, total: u64) -> Bar {
        let bar = (self.terminal && !self.quiet).then(|| {
            let b = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
                b.set_style(style);
            }
            b.set_message(what.to_string());
            b
        });
        Bar { bar, what: what.to_string(), total, quiet: self.quiet, last_quarter: 0 }
    }
}

/// One tracked step.
pub struct Bar {
    bar: Option<ProgressBar>,
    what: String,
    total: u64,
    quiet: bool,
    last_quarter: u64,
}

impl Bar {
    /// Moves the tracker to step `pos` of its total (off a terminal: logs each quarter passed).
    pub fn set(&mut self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        } else if !self.quiet && self.total > 0 {
            let quarter = pos * 4 / self.total;
            if quarter > self.last_quarter {
                self.last_quarter = quarter;
                tracing::info!("{}: {pos}/{}", self.what, self.total);
            }
        }
    }

    /// Clears the terminal bar; does nothing off a terminal.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
