//! Quality-gate decisions as lake records: for every shot of a gated machine the edge records
//! what the gate decided, why, what it wrote to the sorting output and how long that took, as
//! one record of kind [`RecordKind::Decision`] (dataset `edge_decisions`), uploaded and
//! acknowledged exactly once like the shot itself.
//!
//! The record is the evidence trail of one part: the decision ([`Decision`]), its reason
//! ([`Reason`]), the model that judged it (the record's [`ModelStamp`](crate::score::ModelStamp),
//! none when limits alone decided), its score and threshold, each limit it broke
//! (`limit.{feature}` = the value), the value written to the output and how the write went
//! ([`Outcome`]). Codes travel as numbers (every record value is one); [`Decision::name`] and
//! friends give their names back.

use crate::record::{Record, RecordKind};
use thiserror::Error;

/// Device id of decision records: the edge's gate, not a device it polls.
pub const DEVICE_ID: &str = "_gate";

/// Names of the values a decision record carries.
pub mod value {
    /// The gate's decision from the evidence ([`super::Decision`] code).
    pub const DECISION: &str = "decision";
    /// Why ([`super::Reason`] code).
    pub const REASON: &str = "reason";
    /// The decision the output was driven with: the decision, or the fail-safe ([`super::Decision`] code).
    pub const ACTUATED: &str = "actuated";
    /// How the output write went ([`super::Outcome`] code).
    pub const OUTCOME: &str = "outcome";
    /// Milliseconds from the shot's detection (its poll) to the output's acknowledgement (or
    /// to the failure).
    pub const LATENCY_MS: &str = "latency_ms";
    /// Seq of the judged shot in the same buffer epoch as the decision record (absent for a
    /// shot owed after a restart, whose record is no longer at hand).
    pub const SHOT_SEQ: &str = "shot_seq";
    /// The model's score, when a model judged the shot.
    pub const SCORE: &str = "score";
    /// The model's alarm threshold, when a model judged the shot.
    pub const THRESHOLD: &str = "threshold";
    /// Features of the shot the model had to fill in (missing, or older than its tolerance).
    pub const MISSING: &str = "missing_features";
    /// Prefix of a broken limit: `limit.{feature}` = the feature's value.
    pub const LIMIT_PREFIX: &str = "limit.";
}

macro_rules! coded {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The number the record carries.
            pub fn code(self) -> f64 {
                match self { $($name::$variant => $code as f64,)+ }
            }

            /// The variant of a record's number.
            pub fn from_code(code: f64) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }

            /// Its name, as configs, logs and metrics write it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded! {
    /// What happens to a part.
    Decision {
        /// The part passes.
        Good = 0 => "good",
        /// The part is scrap.
        Reject = 1 => "reject",
        /// The part cannot be judged reliably: divert it to inspection.
        Uncertain = 2 => "uncertain",
    }
}

coded! {
    /// Why the gate decided as it did.
    Reason {
        /// The active model judged the shot normal, and no limit was broken.
        ModelPass = 0 => "model_pass",
        /// The active model's score was above its threshold.
        ModelAlarm = 1 => "model_alarm",
        /// A value was outside its configured limits (whatever the model said).
        LimitBroken = 2 => "limit_broken",
        /// No model is active for the shot; every configured limit held.
        LimitsPass = 3 => "limits_pass",
        /// No model is active and no limits are configured: nothing can judge the shot.
        NoJudge = 4 => "no_judge",
        /// A model is active but its window is not full yet (after a start, restart or a gap).
        Warming = 5 => "warming",
        /// The model had to fill in more of the shot's features than the gate allows.
        FeaturesMissing = 6 => "features_missing",
        /// The active model failed to score the shot.
        InferenceFailed = 7 => "inference_failed",
        /// The shot was recorded before a restart but never decided: nothing is written for it
        /// (the output's watchdog took the fail-safe); recorded so that every shot has a record.
        OwedAfterRestart = 8 => "owed_after_restart",
        /// The shot was met again (its buffer was replaced after corruption) and had been
        /// actuated already: not written again.
        AlreadyActuated = 9 => "already_actuated",
    }
}

coded! {
    /// How driving the output went.
    Outcome {
        /// The output acknowledged the decision within the deadline.
        Written = 0 => "written",
        /// The deadline had passed before the write: the fail-safe was written instead.
        Late = 1 => "late",
        /// The write failed or was not acknowledged within the deadline; the output's own
        /// watchdog must take the fail-safe (see docs/quality-gate.md).
        Failed = 2 => "failed",
        /// The gate has no output (decisions recorded only).
        NotWired = 3 => "not_wired",
        /// The part was gone before the gate saw its shot (read back from the controller's
        /// history after an outage, or owed after a restart): nothing was written; the output's
        /// watchdog took the fail-safe.
        Skipped = 4 => "skipped",
    }
}

/// One decision of the gate, for the buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    /// Machine of the shot.
    pub machine_id: String,
    /// The shot's time.
    pub ts_ms: i64,
    /// The shot's number.
    pub shot_number: Option<u64>,
    /// The shot's mold.
    pub mold: Option<String>,
    /// The shot's seq (see [`value::SHOT_SEQ`]).
    pub shot_seq: Option<u64>,
    /// Decided from the evidence.
    pub decision: Decision,
    /// Why.
    pub reason: Reason,
    /// Written to the output.
    pub actuated: Decision,
    /// How the write went.
    pub outcome: Outcome,
    /// Shot detection to acknowledgement, in milliseconds.
    pub latency_ms: f64,
    /// The model that judged the shot, with its score and threshold.
    pub model: Option<ModelJudgement>,
    /// Features the model had to fill in.
    pub missing: Option<usize>,
    /// Limits broken: feature and value.
    pub broken: Vec<(String, f64)>,
}

/// What the active model said about a shot, for its decision record.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelJudgement {
    /// The exact model and bundle.
    pub stamp: crate::score::ModelStamp,
    /// Its score.
    pub score: f32,
    /// Its alarm threshold.
    pub threshold: f32,
}

impl DecisionRecord {
    /// The decision as a record for the edge's buffer (its seq is assigned there).
    pub fn to_record(&self) -> Record {
        let mut values = vec![
            (value::DECISION.to_string(), self.decision.code()),
            (value::REASON.to_string(), self.reason.code()),
            (value::ACTUATED.to_string(), self.actuated.code()),
            (value::OUTCOME.to_string(), self.outcome.code()),
            (value::LATENCY_MS.to_string(), if self.latency_ms.is_finite() { self.latency_ms } else { -1.0 }),
        ];
        values.extend(self.shot_seq.map(|s| (value::SHOT_SEQ.to_string(), s as f64)));
        values.extend(self.missing.map(|n| (value::MISSING.to_string(), n as f64)));
        if let Some(m) = &self.model {
            // A score that is not a number stays out (the gate decided `inference_failed`).
            let finite = [(value::SCORE, m.score), (value::THRESHOLD, m.threshold)];
            values.extend(
                finite.into_iter().filter(|(_, v)| v.is_finite()).map(|(n, v)| (n.to_string(), f64::from(v))),
            );
        }
        for (feature, v) in self.broken.iter().filter(|(_, v)| v.is_finite()) {
            values.push((crate::score::limited_name(value::LIMIT_PREFIX, feature), *v));
        }
        let mut r = Record::new(RecordKind::Decision, &self.machine_id, DEVICE_ID, self.ts_ms, values);
        r.shot_number = self.shot_number;
        r.mold = self.mold.clone();
        r.model = self.model.as_ref().map(|m| m.stamp.clone());
        r
    }
}

/// Why a decision record is not valid.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecisionError {
    /// A decision record lacks one of the [`value`] names (the one held).
    #[error("decision record without value {0}")]
    Missing(&'static str),
    /// A coded value holds no known code (the name).
    #[error("decision value {0} holds no known code")]
    Code(&'static str),
}

/// Checks a record of kind `decision`: each code known.
pub fn check_record(r: &Record) -> Result<(), DecisionError> {
    let get = |name: &'static str| r.values.get(name).copied().ok_or(DecisionError::Missing(name));
    let known = |name: &'static str, ok: bool| if ok { Ok(()) } else { Err(DecisionError::Code(name)) };
    known(value::DECISION, Decision::from_code(get(value::DECISION)?).is_some())?;
    known(value::ACTUATED, Decision::from_code(get(value::ACTUATED)?).is_some())?;
    known(value::REASON, Reason::from_code(get(value::REASON)?).is_some())?;
    known(value::OUTCOME, Outcome::from_code(get(value::OUTCOME)?).is_some())?;
    get(value::LATENCY_MS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::ModelStamp;

    fn decision() -> DecisionRecord {
        DecisionRecord {
            machine_id: "M1".into(),
            ts_ms: 1_700_000_000_000,
            shot_number: Some(42),
            mold: Some("A".into()),
            shot_seq: Some(1234),
            decision: Decision::Reject,
            reason: Reason::ModelAlarm,
            actuated: Decision::Reject,
            outcome: Outcome::Written,
            latency_ms: 3.5,
            model: Some(ModelJudgement {
                stamp: ModelStamp {
                    key: "M1".into(),
                    id: "M1@3".into(),
                    version: 3,
                    bundle_sha256: "ab".repeat(32),
                },
                score: 7.5,
                threshold: 3.0,
            }),
            missing: Some(0),
            broken: vec![("cushion".into(), 9.5), ("y".repeat(300), 1.0)],
        }
    }

    #[test]
    fn a_decision_becomes_a_valid_record_with_its_evidence() {
        let r = decision().to_record();
        assert_eq!(
            (r.kind, r.device_id.as_str(), r.shot_number),
            (RecordKind::Decision, DEVICE_ID, Some(42))
        );
        assert_eq!(r.values[value::DECISION], 1.0);
        assert_eq!(r.values[value::SCORE], 7.5);
        assert_eq!(r.values["limit.cushion"], 9.5);
        assert!(r.values.keys().all(|k| k.len() <= crate::limits::MAX_ID_BYTES), "{:?}", r.values.keys());
        assert_eq!(r.model.as_ref().map(|m| m.version), Some(3));
        crate::codec::check_record(&r).expect("valid");
        let mut nan = decision();
        if let Some(m) = nan.model.as_mut() {
            m.score = f32::NAN;
        }
        let r = nan.to_record();
        assert!(!r.values.contains_key(value::SCORE), "a NaN score stays out");
        crate::codec::check_record(&r).expect("still valid");
    }

    #[test]
    fn unknown_codes_and_missing_values_are_refused() {
        let mut r = decision().to_record();
        r.values.insert(value::OUTCOME.into(), 9.0);
        assert_eq!(check_record(&r), Err(DecisionError::Code(value::OUTCOME)));
        r.values.remove(value::DECISION);
        assert_eq!(check_record(&r), Err(DecisionError::Missing(value::DECISION)));
    }

    #[test]
    fn codes_round_trip() {
        for d in Decision::ALL {
            assert_eq!(Decision::from_code(d.code()), Some(*d));
        }
        assert_eq!(Reason::from_code(8.0), Some(Reason::OwedAfterRestart));
        assert_eq!(Outcome::from_code(0.5), None);
    }
}
