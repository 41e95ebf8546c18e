//! Test support shared by the fuzz tests of `moldops-shared`, `moldops-edge` and
//! `moldops-cloud`, written once so their harnesses cannot drift apart.
//!
//! - [`fuzz`]: the time-budgeted property runner over `arbtest` (`ARBTEST_BUDGET_MS` runs
//!   longer, `ARBTEST_SEED` replays a failure), a watchdog for unbounded work, and the
//!   check that every refusal has a reason.
//! - [`hostile`]: numbers and text cuts meant to break decoders.
//! - [`toml`]: breaking valid TOML examples (configs, profiles) node by node.
//! - [`metrics`]: a dashboard charts only metrics the daemon serves.
//! - [`normal`]: a seeded standard normal source for simulated process noise.
#![warn(missing_docs)]

pub mod fuzz;
pub mod hostile;
pub mod metrics;
pub mod normal;
pub mod toml;

pub use arbtest::arbitrary::{self, Unstructured};
