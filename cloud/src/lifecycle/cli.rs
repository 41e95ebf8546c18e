//! `moldops-cloud lifecycle plan`: prints which model keys are due for training and writes the
//! trigger file the lifecycle pipeline runs on.

use super::{plan, sources};
use crate::registry::Registry;
use crate::registry::cli::RegistryLocation;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Arguments of `moldops-cloud lifecycle`.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The `lifecycle` subcommand.
    #[command(subcommand)]
    pub command: LifecycleCommand,
}

/// The `lifecycle` subcommands.
#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Which (machine, mould) keys have enough shots and no model yet, which models drifted
    /// since their newest version, and which the labels show clearly below target; `--out`
    /// writes them as the trigger of the lifecycle pipeline (removed when there are none).
    Plan(PlanArgs),
}

/// Arguments of `lifecycle plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Lake folder.
    #[arg(long, default_value = "moldops-data/lake")]
    pub lake: PathBuf,
    /// Where the registry is.
    #[command(flatten)]
    pub loc: RegistryLocation,
    /// Shots a new mould needs in the lake before a model is trained for it.
    #[arg(long, default_value_t = 300)]
    pub min_shots: u64,
    /// The drift trigger (`moldops-cloud drift --trigger FILE`): its keys are retrained unless a
    /// version was built after their drifted period. An absent file means no drift.
    #[arg(long)]
    pub drift_trigger: Option<PathBuf>,
    /// Retrain a key whose newest version's precision is clearly (its 95 % upper bound) below
    /// this, from the labels in the lake (docs/labels.md); 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub min_precision: f64,
    /// … whose recall is clearly below this; 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub min_recall: f64,
    /// A key without a production model whose newest candidate the gate refused is trained
    /// again this many seconds after that candidate was built (with the shots gathered since).
    #[arg(long, default_value_t = 3600)]
    pub retry_after_s: u64,
    /// Labelled shots a version needs before its labels can call for retraining.
    #[arg(long, default_value_t = 50)]
    pub min_labelled: u64,
    /// Write the plan here when keys are due (and remove the file when none are).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `lifecycle` command.
pub fn run(args: LifecycleArgs) -> Result<()> {
    match args.command {
        LifecycleCommand::Plan(a) => {
            let registry = Registry::open(&a.loc.path()?)?;
            anyhow::ensure!(
                (0.0..=1.0).contains(&a.min_precision) && (0.0..=1.0).contains(&a.min_recall),
                "--min-precision and --min-recall are shares (0 to 1)"
            );
            let targets = (a.min_precision > 0.0 || a.min_recall > 0.0).then_some(plan::LabelTargets {
                min_labelled: a.min_labelled,
                min_precision: a.min_precision,
                min_recall: a.min_recall,
            });
            let options = sources::Options {
                drift_trigger: a.drift_trigger.as_deref(),
                targets,
                min_shots: a.min_shots,
                retry_after_ms: i64::try_from(a.retry_after_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            };
            let p = sources::plan(&crate::config::working_folder(&a.lake)?, &registry, &options)?;
            if let Some(out) = &a.out {
                p.write(out)?;
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            for e in &p.train {
                match &e.reason {
                    plan::Reason::NewKey { shots } => {
                        println!("{}: train (a new mould with {shots} shots)", e.key)
                    }
                    plan::Reason::Drift { model_id, reasons, .. } => {
                        println!("{}: retrain ({model_id} drifted: {})", e.key, reasons.join("; "))
                    }
                    plan::Reason::Retry { model_id, shots } => {
                        println!(
                            "{}: train again ({model_id} was refused by the gate; {shots} shots now)",
                            e.key
                        )
                    }
                    plan::Reason::Labels { model_id, labelled, precision_high, recall_high } => {
                        let pct =
                            |r: &Option<f64>| r.map_or("–".to_string(), |r| format!("{:.0} %", 100.0 * r));
                        println!(
                            "{}: retrain ({model_id} on {labelled} labelled shots: precision at most {}, recall at most {})",
                            e.key,
                            pct(precision_high),
                            pct(recall_high)
                        )
                    }
                }
            }
            for (key, shots) in &p.waiting {
                println!("{key}: learning at the edge ({shots} of {} shots)", p.min_shots);
            }
            if p.train.is_empty() && p.waiting.is_empty() {
                println!("every mould in the lake has a model");
            }
            Ok(())
        }
    }
}
