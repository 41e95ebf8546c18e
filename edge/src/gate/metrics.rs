//! The gates' counters and latencies: Prometheus families on `/metrics` and a per-machine
//! summary on `/status` (decisions by kind, late, failed and owed writes, the live reject rate).

use moldops_shared::decision::{Decision, Outcome, Reason};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Labels of a decision count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// The gated machine.
    pub machine: String,
    /// `good`, `reject` or `uncertain`.
    pub decision: String,
    /// The [`Reason`]'s name.
    pub reason: String,
}

/// Labels of an output write count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The gated machine.
    pub machine: String,
    /// The [`Outcome`]'s name.
    pub outcome: String,
}

/// Label of a gate's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MachineLabel {
    /// The gated machine.
    pub machine: String,
}

/// What `/status` says about one gate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GateStatus {
    /// Output target (`host:port`), none when decisions are only recorded.
    pub output: Option<String>,
    /// Deadline, ms.
    pub deadline_ms: u64,
    /// Decisions since the start, by decision.
    pub decisions: BTreeMap<String, u64>,
    /// Decisions since the start, by what became of the write (`written`, `late`, `failed`,
    /// `not_wired`, `skipped`).
    pub outcomes: BTreeMap<String, u64>,
    /// Shots recorded before a restart that were never actuated.
    pub owed_after_restart: u64,
    /// Shots whose decision was not written again because the journal says it was.
    pub duplicates_suppressed: u64,
    /// Decision records the buffer refused (they never reach the lake).
    pub records_lost: u64,
    /// Shots offered after the gate had stopped: never decided.
    pub undecided: u64,
    /// Share of the last 1 000 decisions on live shots that were rejects.
    pub reject_rate: f64,
    /// Latency of the last write, ms.
    pub last_latency_ms: Option<f64>,
    /// Error of the latest failed write.
    pub last_error: Option<String>,
    #[serde(skip)]
    recent: std::collections::VecDeque<bool>,
}

/// Decisions kept for the live reject rate.
const RECENT: usize = 1000;

/// Every gate's metrics.
pub struct GateMetrics {
    /// `gate_decisions_total{machine,decision,reason}`.
    pub decisions: Family<DecisionLabel, Counter>,
    /// `gate_writes_total{machine,outcome}`.
    pub writes: Family<OutcomeLabel, Counter>,
    /// `gate_latency_seconds{machine}`: shot detection to the output's acknowledgement.
    pub latency: Family<MachineLabel, Histogram, fn() -> Histogram>,
    /// `gate_records_lost_total{machine}`: decision records the buffer refused.
    pub records_lost: Family<MachineLabel, Counter>,
    status: Mutex<BTreeMap<String, GateStatus>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
}

impl Default for GateMetrics {
    fn default() -> Self {
        GateMetrics {
            decisions: Family::default(),
            writes: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            records_lost: Family::default(),
            status: Mutex::new(BTreeMap::new()),
        }
    }
}

impl GateMetrics {
    /// Registers the families in `r` (names get the registry's prefix).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "gate_decisions",
            "Quality-gate decisions per machine, decision and reason",
            self.decisions.clone(),
        );
        r.register("gate_writes", "Quality-gate output writes per machine and outcome", self.writes.clone());
        r.register(
            "gate_latency_seconds",
            "Shot detection to the sorting output's acknowledgement",
            self.latency.clone(),
        );
        r.register(
            "gate_records_lost",
            "Quality-gate decision records the buffer refused (they never reach the lake)",
            self.records_lost.clone(),
        );
    }

    /// Counts a shot offered to a gate that had stopped.
    pub(crate) fn undecided(&self, machine: &str) {
        self.gate(machine, |s| s.undecided += 1);
    }

    /// Counts a decision record the buffer refused.
    pub(crate) fn record_lost(&self, machine: &str) {
        self.records_lost.get_or_create(&MachineLabel { machine: machine.into() }).inc();
        self.gate(machine, |s| s.records_lost += 1);
    }

    /// Updates one gate's status in place.
    pub fn gate(&self, machine: &str, f: impl FnOnce(&mut GateStatus)) {
        let mut all = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(machine.to_string()).or_default());
    }

    /// Counts one decision and how its write went.
    pub(crate) fn decided(
        &self,
        machine: &str,
        decision: Decision,
        reason: Reason,
        outcome: Outcome,
        latency_s: f64,
    ) {
        let (decision_name, outcome_name) = (decision.name().to_string(), outcome.name().to_string());
        let label = DecisionLabel {
            machine: machine.into(),
            decision: decision_name.clone(),
            reason: reason.name().into(),
        };
        self.decisions.get_or_create(&label).inc();
        self.writes
            .get_or_create(&OutcomeLabel { machine: machine.into(), outcome: outcome_name.clone() })
            .inc();
        let wrote =
            latency_s.is_finite() && matches!(outcome, Outcome::Written | Outcome::Late | Outcome::Failed);
        if wrote {
            self.latency.get_or_create(&MachineLabel { machine: machine.into() }).observe(latency_s);
        }
        self.gate(machine, |s| {
            *s.decisions.entry(decision_name).or_default() += 1;
            *s.outcomes.entry(outcome_name).or_default() += 1;
            if reason == Reason::OwedAfterRestart {
                s.owed_after_restart += 1;
                return;
            }
            if outcome == Outcome::Skipped {
                return;
            }
            if wrote {
                s.last_latency_ms = Some(latency_s * 1000.0);
            }
            s.recent.push_back(decision == Decision::Reject);
            if s.recent.len() > RECENT {
                s.recent.pop_front();
            }
            s.reject_rate = s.recent.iter().filter(|r| **r).count() as f64 / s.recent.len() as f64;
        });
    }

    /// A copy of every gate's status, by machine.
    pub fn status(&self) -> BTreeMap<String, GateStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_show_on_status_and_metrics() {
        let m = GateMetrics::default();
        let mut r = Registry::with_prefix("moldops");
        m.register(&mut r);
        m.decided("M1", Decision::Reject, Reason::ModelAlarm, Outcome::Written, 0.003);
        m.decided("M1", Decision::Good, Reason::ModelPass, Outcome::Written, 0.002);
        m.decided("M1", Decision::Uncertain, Reason::OwedAfterRestart, Outcome::Skipped, f64::NAN);
        let s = &m.status()["M1"];
        assert_eq!((s.decisions["reject"], s.outcomes["written"], s.owed_after_restart), (1, 2, 1));
        assert_eq!(s.reject_rate, 0.5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).expect("encode");
        assert!(
            text.contains(
                "moldops_gate_decisions_total{machine=\"M1\",decision=\"reject\",reason=\"model_alarm\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("moldops_gate_latency_seconds_count{machine=\"M1\"} 2"), "{text}");
    }
}
