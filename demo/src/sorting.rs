//! The demo's quality gates (`--gate`): a simulated sorting output ([`moldops_sim::sorter`])
//! takes every machine's decisions from the edge, and at the end the parts it was told to pass
//! or divert are held against the simulator's quality log — defective parts caught and missed,
//! good parts diverted — before and after the models went active.

use anyhow::Result;
use moldops_edge::config::{Device, DeviceRole};
use moldops_edge::gate::GateConfig;
use moldops_edge::gate::config::{Codes, Limit, OutputConfig, OutputKind, OutputProtocol};
use moldops_shared::decision::Decision;
use moldops_sim::sorter::{Sorted, Sorter};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Registers per machine block on the sorter (three used).
const BLOCK: u16 = 4;

/// The running sorter and which register block belongs to which machine.
pub struct Sorting {
    /// Where it listens.
    pub addr: SocketAddr,
    sorter: Sorter,
    task: tokio::task::JoinHandle<()>,
    machines: BTreeMap<u16, String>,
    /// Parts sorted when the models went active (see [`Sorting::mark_models_active`]);
    /// `usize::MAX` until then.
    models_from: AtomicUsize,
}

impl Sorting {
    /// Starts the sorter on a free loopback port.
    pub async fn start() -> Result<Sorting> {
        let (addr, sorter, task) = moldops_sim::sorter::serve(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let models_from = AtomicUsize::new(usize::MAX);
        Ok(Sorting { addr, sorter, task, machines: BTreeMap::new(), models_from })
    }

    /// One gate per machine, writing to its block of the sorter, deadline 50 ms, fail-safe
    /// divert; its limits are the machine profile's engineering ranges (what decides until a
    /// model is active).
    pub fn gates(&mut self, devices: &[Device]) -> Vec<GateConfig> {
        let machines = devices.iter().filter(|d| d.cfg.role == DeviceRole::Machine);
        machines
            .enumerate()
            .map(|(i, d)| {
                let register = 100 + BLOCK * i as u16;
                self.machines.insert(register, d.cfg.machine_id().to_string());
                let limits = d
                    .profile
                    .value_tags()
                    .iter()
                    .filter_map(|t| {
                        t.range.map(|[lo, hi]| (t.name.clone(), Limit { min: Some(lo), max: Some(hi) }))
                    })
                    .collect();
                GateConfig {
                    machine: d.cfg.machine_id().to_string(),
                    deadline_ms: moldops_edge::gate::config::DEFAULT_DEADLINE_MS,
                    fail_safe: Decision::Uncertain,
                    max_missing_features: 0,
                    limits,
                    output: Some(OutputConfig {
                        protocol: OutputProtocol::ModbusTcp,
                        address: Some(self.addr.to_string()),
                        unit_id: 1,
                        kind: OutputKind::Registers,
                        register: Some(register),
                        decision_node: None,
                        shot_node: None,
                        opcua: None,
                        codes: Codes::default(),
                    }),
                }
            })
            .collect()
    }

    /// Notes that the models are active from now on: later parts count as model-sorted.
    pub fn mark_models_active(&self) {
        self.models_from.store(self.sorter.sorted().len(), Ordering::SeqCst);
    }

    /// Stops the sorter and holds what it received against the quality log.
    pub fn finish(self, quality_log: &Path) -> Result<SortingReport> {
        self.task.abort();
        let text = std::fs::read_to_string(quality_log)?;
        let mut truth: BTreeMap<(String, u32), bool> = BTreeMap::new();
        for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
            let (Some(m), Some(n)) = (v["machine_id"].as_str(), v["shot_number"].as_u64()) else { continue };
            truth.insert((m.to_string(), n as u32), v["label"].as_f64() == Some(1.0));
        }
        let sorted = self.sorter.sorted();
        let split = self.models_from.load(Ordering::SeqCst).min(sorted.len());
        let tally = |parts: &[Sorted]| {
            let mut t = Tally::default();
            for p in parts {
                let Some(machine) = self.machines.get(&p.register) else { continue };
                let Some(&defective) = truth.get(&(machine.clone(), p.shot)) else { continue };
                t.add(p.code, defective);
            }
            t
        };
        Ok(SortingReport {
            address: self.addr.to_string(),
            limits_only: tally(&sorted[..split]),
            with_models: tally(&sorted[split..]),
        })
    }
}

/// Parts the sorter was told about, held against the ground truth.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Parts written to the sorter (and found in the quality log).
    pub parts: u64,
    /// Passed as good.
    pub passed: u64,
    /// Rejected.
    pub rejected: u64,
    /// Diverted to inspection (uncertain).
    pub uncertain: u64,
    /// Defective parts.
    pub defective: u64,
    /// Defective parts rejected or diverted.
    pub caught: u64,
    /// Defective parts passed as good.
    pub missed: u64,
    /// Good parts rejected or diverted.
    pub good_diverted: u64,
}

impl Tally {
    fn add(&mut self, code: u16, defective: bool) {
        let codes = Codes::default();
        self.parts += 1;
        self.defective += u64::from(defective);
        let passed = code == codes.good;
        self.passed += u64::from(passed);
        self.rejected += u64::from(code == codes.reject);
        self.uncertain += u64::from(code == codes.uncertain);
        match (defective, passed) {
            (true, false) => self.caught += 1,
            (true, true) => self.missed += 1,
            (false, false) => self.good_diverted += 1,
            (false, true) => {}
        }
    }

    fn line(&self) -> String {
        format!(
            "{} parts: {} passed, {} rejected, {} diverted to inspection · defective parts caught {} of {} (missed {}) · good parts diverted {}",
            self.parts,
            self.passed,
            self.rejected,
            self.uncertain,
            self.caught,
            self.defective,
            self.missed,
            self.good_diverted
        )
    }
}

/// What the demo's gates did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortingReport {
    /// The sorter's address.
    pub address: String,
    /// Parts sorted before the models went active (engineering limits decide).
    pub limits_only: Tally,
    /// Parts sorted with the models active.
    pub with_models: Tally,
}

impl SortingReport {
    /// The report as text for the terminal.
    pub fn to_text(&self) -> String {
        format!(
            "quality gates (sorting output on {}, deadline 50 ms, fail-safe: divert):\n  limits only:  {}\n  with models:  {}",
            self.address,
            self.limits_only.line(),
            self.with_models.line()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_missed_and_diverted_follow_the_ground_truth() {
        let mut t = Tally::default();
        t.add(2, true);
        t.add(1, true);
        t.add(3, false);
        t.add(1, false);
        assert_eq!((t.parts, t.caught, t.missed, t.good_diverted, t.passed, t.uncertain), (4, 1, 1, 1, 2, 1));
    }
}
