//! Gated promotion, what `models promote` runs: each candidate asked for goes through the
//! [`gate`](super::gate) — with the production version scored beside it on its held-out shots
//! ([`compare`](super::compare)) — and is promoted when it passes or stays a candidate with the
//! refusal recorded; `--force` promotes without the gate, recorded as forced; re-promoting an
//! archived version (the rollback) is not gated.

use super::gate::{self, Candidate, GateFile, GateRecord, HeldOut, Outcome, Versus};
use super::{Registry, Stage, Transition, compare};
use anyhow::{Context, Result, bail};
use moldops_shared::bundle::{Bundle, ModelKey};
use polars::prelude::DataFrame;
use serde::Serialize;
use std::path::PathBuf;

/// How to promote.
#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    /// Promote without the gate (a person's explicit choice).
    pub force: bool,
    /// The lake whose `etl_data` the gate scores candidate and production on, and whether it
    /// was named explicitly (a missing explicit lake is an error; a missing implied one is no
    /// lake).
    pub lake: Option<(PathBuf, bool)>,
    /// Gate settings (built-in defaults when empty).
    pub gate: GateFile,
}

/// What happened to one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The model key.
    pub key: ModelKey,
    /// The version.
    pub version: u32,
    /// The gate's outcome; `None` for a rollback (an archived version re-promoted, not gated).
    pub gate: Option<Outcome>,
    /// Whether the version is production now.
    pub promoted: bool,
    /// Why it was refused (the failed checks); empty otherwise.
    pub reasons: Vec<String>,
    /// The transitions made (none when refused).
    pub transitions: Vec<Transition>,
}

/// Everything one `models promote` did, for its output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromoteReport {
    /// One entry per version judged or promoted, in key order.
    pub decisions: Vec<Decision>,
}

impl PromoteReport {
    /// Every transition made, in order.
    pub fn transitions(&self) -> Vec<&Transition> {
        self.decisions.iter().flat_map(|d| &d.transitions).collect()
    }
}

/// `etl_data` of the lake, read once and only when a comparison needs it.
struct Lake {
    dir: Option<(PathBuf, bool)>,
    etl: Option<DataFrame>,
}

impl Lake {
    fn etl(&mut self) -> Result<Option<&DataFrame>> {
        let Some((dir, explicit)) = &self.dir else { return Ok(None) };
        if self.etl.is_none() {
            if !dir.is_dir() {
                if *explicit {
                    bail!("lake folder {} does not exist", dir.display());
                }
                return Ok(None);
            }
            let df = crate::etl::read_etl(dir)
                .with_context(|| format!("reading etl_data of {} for the gate", dir.display()))?;
            self.etl = Some(df);
        }
        Ok(self.etl.as_ref())
    }
}

/// For every key in `keys`, the newest version when it is a candidate (keys whose newest
/// version is production or archived are left alone).
pub fn promote_latest(reg: &Registry, keys: &[ModelKey], opts: &PromoteOptions) -> Result<PromoteReport> {
    let mut lake = Lake { dir: opts.lake.clone(), etl: None };
    let mut report = PromoteReport::default();
    for key in keys {
        let state = reg.state(key)?;
        match state.stages.iter().next_back() {
            Some((&version, Stage::Candidate)) => {
                report.decisions.push(decide(reg, key, version, opts, &mut lake)?);
            }
            Some((version, stage)) => {
                tracing::info!(key = %key.label(), version, ?stage, "newest version is not a candidate; left alone")
            }
            None => tracing::info!(key = %key.label(), "no versions"),
        }
    }
    Ok(report)
}

/// One version of one key: a candidate through the gate (unless forced), an archived one
/// re-promoted (the rollback).
pub fn promote_one(
    reg: &Registry,
    key: &ModelKey,
    version: u32,
    opts: &PromoteOptions,
) -> Result<PromoteReport> {
    let mut lake = Lake { dir: opts.lake.clone(), etl: None };
    Ok(PromoteReport { decisions: vec![decide(reg, key, version, opts, &mut lake)?] })
}

fn decide(
    reg: &Registry,
    key: &ModelKey,
    version: u32,
    opts: &PromoteOptions,
    lake: &mut Lake,
) -> Result<Decision> {
    let stage = reg.version(key, version)?.stage;
    let done = |gate: Option<Outcome>, transitions: Vec<Transition>| Decision {
        key: key.clone(),
        version,
        gate,
        promoted: true,
        reasons: Vec::new(),
        transitions,
    };
    match stage {
        Stage::Production => bail!("{}@{version} is already production", key.label()),
        Stage::Archived => return Ok(done(None, reg.promote(key, version)?)),
        Stage::Candidate => {}
    }
    if opts.force {
        let record = GateRecord::forced(version, None);
        return Ok(done(Some(Outcome::Forced), reg.promote_gated(key, version, record)?));
    }
    let record = judge(reg, key, version, &opts.gate.settings(&key.label()), lake)?;
    if record.outcome == Outcome::Passed {
        return Ok(done(Some(Outcome::Passed), reg.promote_gated(key, version, record)?));
    }
    let reasons: Vec<String> = record.reasons().into_iter().map(str::to_string).collect();
    tracing::warn!(key = %key.label(), version, ?reasons, "refused by the gate; stays a candidate");
    reg.record_gate(key, record)?;
    Ok(Decision {
        key: key.clone(),
        version,
        gate: Some(Outcome::Refused),
        promoted: false,
        reasons,
        transitions: vec![],
    })
}

/// The gate's decision on candidate `version` of `key`.
fn judge(
    reg: &Registry,
    key: &ModelKey,
    version: u32,
    settings: &gate::GateSettings,
    lake: &mut Lake,
) -> Result<GateRecord> {
    let info = reg.version(key, version)?;
    // Verified against its signer: the target the gate reads is the one the edge will.
    let manifest = Bundle::from_bytes(&reg.bundle_bytes(key, version)?)?.manifest_unverified()?;
    let held_out = HeldOut::from_metrics(&info.record.metrics);
    let versus = match reg.state(key)?.production() {
        None => Versus::NoProduction,
        Some(production) => match &held_out {
            None => Versus::Unavailable {
                production,
                why: "the candidate records no held-out window to score both on".into(),
            },
            Some(h) => match lake.etl()? {
                Some(etl) => compare::measure(reg, etl, key, version, production, h)?,
                None => Versus::Unavailable {
                    production,
                    why: "no lake (--lake, or --data-dir for <data-dir>/lake) to score both on the \
                          candidate's held-out shots"
                        .into(),
                },
            },
        },
    };
    let candidate = Candidate { version, held_out, false_alarm_target: manifest.false_alarm_target };
    Ok(gate::decide(settings, &candidate, &versus))
}

#[cfg(test)]
#[path = "promote_tests.rs"]
mod tests;
