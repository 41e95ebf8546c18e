//! The pipeline runner (replaces Airflow's learning DAG and KubernetesPodOperator): a DAG of
//! tasks, each the same `moldops-cloud` command a person would run, defined in TOML
//! ([`dag`], built-in [`dag::DEFAULT_TOML`]), run by [`runner`] in dependency order with
//! retries and back-off, on the [`local`] executor (child processes) or the [`kubernetes`]
//! executor (one Job per attempt, [`jobspec`]); run and task records in [`state`]; periodic
//! runs in [`schedule`]; the command line in [`cli`]; the same DAG as an Airflow DAG or Argo
//! workflow in [`export`].

pub mod cli;
pub mod dag;
pub mod executor;
pub mod export;
pub mod jobspec;
pub mod kube_settings;
pub mod kubernetes;
pub mod local;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod state;

pub use dag::PipelineDef;
pub use executor::Executor;
pub use state::{ExecutorKind, RunRecord, RunStatus, RunStore, TaskStatus};
