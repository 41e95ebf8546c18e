//! Live scores as lake records: every shot an edge scores becomes one record of kind
//! [`RecordKind::Score`] in the edge's buffer, uploaded and acknowledged exactly once like the
//! shot itself (dataset `edge_scores`), stamped with the model that judged it ([`ModelStamp`]).
//! An alarm's record also carries each feature's contribution to the score.
//!
//! The live `scores` and `alarms` MQTT topics stay a best-effort feed for dashboards; these
//! records are the durable copy: a broker outage or a restart of either side loses none of them.
//!
//! A shot of a mould without a model of its own may be judged by the edge's cold-start baseline
//! instead (docs/mould-lifecycle.md): its stamp is [`ModelStamp::cold_start`] — id
//! `{key}@learning` while the baseline learns (the record never alarms) or `{key}@baseline`
//! after, version [`COLD_START_VERSION`] and no bundle — so the lake can tell how each shot was
//! judged ([`ModelStamp::judge`]) and count the learning shots of each new key.
//!
//! A score record names its shot by the edge and buffer epoch of its batch and the shot's seq
//! ([`value::SHOT_SEQ`]); it repeats the shot's machine, time, shot number and mold, so the
//! lake's `edge_scores` partitions line up with `raw_data`'s.

use crate::bundle::sha256_hex;
use crate::limits;
use crate::record::{Record, RecordKind};
use crate::rollout::ScoreMessage;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Device id of score records: the edge's scorer, not a device it polls (an edge refuses a
/// device configured with this id). Records an edge drops from a full buffer are tallied per
/// machine and device, so dropped scores are counted apart from dropped shots.
pub const DEVICE_ID: &str = "_scores";

/// Names of the values a score record carries.
pub mod value {
    /// The anomaly score of the window ending with the shot.
    pub const SCORE: &str = "score";
    /// The judging model's alarm threshold.
    pub const THRESHOLD: &str = "threshold";
    /// 1 when the score is above the threshold (an alarm), else 0.
    pub const ALARM: &str = "alarm";
    /// Seq of the scored shot in the same buffer epoch as the score record.
    pub const SHOT_SEQ: &str = "shot_seq";
    /// Prefix of an alarm's per-feature contributions: `contribution.{feature}`.
    pub const CONTRIBUTION_PREFIX: &str = "contribution.";
}

/// Longest model key label: a machine id, `/` and a mold, each at most
/// [`limits::MAX_ID_BYTES`].
pub const MAX_KEY_BYTES: usize = 2 * limits::MAX_ID_BYTES + 1;

/// Version in the stamp of a shot judged by a cold-start baseline: registry versions start at 1.
pub const COLD_START_VERSION: u32 = 0;

/// The phase of a cold-start baseline that judged a shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdStartPhase {
    /// Learning from the mould's first shots: no alarm possible.
    Learning,
    /// Judging against the limits it learned.
    Baseline,
}

impl ColdStartPhase {
    /// `learning` or `baseline`: the stamp id's suffix after `@`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColdStartPhase::Learning => "learning",
            ColdStartPhase::Baseline => "baseline",
        }
    }
}

/// What judged a shot, read from its stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// A registry model (a bundle the edge verified).
    Model,
    /// The mould's cold-start baseline in that phase.
    ColdStart(ColdStartPhase),
}

/// Largest integer an `f64` value holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The model that judged a record: its key, its registry id and version, and the exact bundle
/// (sha256 of its transport bytes), so a question about a part traces to the model that passed
/// it and the data that model was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStamp {
    /// Label of the model key (`M1` or `M1/MOLD-A`).
    pub key: String,
    /// Registry id of the model (`{key}@{version}`).
    pub id: String,
    /// Registry version.
    pub version: u32,
    /// Sha256 (lowercase hex) of the bundle the edge verified and loaded; empty for a
    /// cold-start baseline.
    pub bundle_sha256: String,
}

/// Why a model stamp or a score record is not valid.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScoreError {
    /// A model stamp's key or id is empty, too long or holds a control character.
    #[error("model stamp {field} is not a valid name ({len} bytes)")]
    Name {
        /// `key` or `id`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A model stamp's bundle hash is not 64 lowercase hex digits.
    #[error("model stamp bundle_sha256 is not a sha256 in hex")]
    Sha256,
    /// A score record carries no model stamp.
    #[error("score record without a model stamp")]
    NoStamp,
    /// A stamp of version [`COLD_START_VERSION`] that is not exactly a cold-start stamp
    /// (`{key}@learning` or `{key}@baseline` with an empty bundle hash).
    #[error("model stamp of version 0 is not a cold-start baseline's")]
    ColdStart,
    /// A score record lacks one of the [`value`] names (the one held).
    #[error("score record without value {0}")]
    Missing(&'static str),
    /// `alarm` is not 0 or 1, or `shot_seq` is not a whole number in range (the name).
    #[error("score value {0} is out of range")]
    Range(&'static str),
}

impl ModelStamp {
    /// The stamp of a shot judged by the cold-start baseline of the key labelled `key` in
    /// `phase`: id `{key}@learning` or `{key}@baseline`, version [`COLD_START_VERSION`], no
    /// bundle hash.
    pub fn cold_start(key: &str, phase: ColdStartPhase) -> ModelStamp {
        ModelStamp {
            key: key.to_string(),
            id: format!("{key}@{}", phase.as_str()),
            version: COLD_START_VERSION,
            bundle_sha256: String::new(),
        }
    }

    /// What judged the shot: a registry model, or a cold-start baseline in its phase.
    pub fn judge(&self) -> Judge {
        if self.version != COLD_START_VERSION || !self.bundle_sha256.is_empty() {
            return Judge::Model;
        }
        let phase = self.id.strip_prefix(self.key.as_str()).and_then(|rest| rest.strip_prefix('@'));
        match phase {
            Some("learning") => Judge::ColdStart(ColdStartPhase::Learning),
            Some("baseline") => Judge::ColdStart(ColdStartPhase::Baseline),
            _ => Judge::Model,
        }
    }

    /// Checks the stamp's identifiers and hash (a cold-start stamp: its exact form).
    pub fn check(&self) -> Result<(), ScoreError> {
        for (field, name) in [("key", &self.key), ("id", &self.id)] {
            let bad = name.trim().is_empty()
                || name.len() > MAX_KEY_BYTES + 12
                || name.chars().any(char::is_control);
            if bad {
                return Err(ScoreError::Name { field, len: name.len() });
            }
        }
        if self.version == COLD_START_VERSION {
            return match self.judge() {
                Judge::ColdStart(_) => Ok(()),
                Judge::Model => Err(ScoreError::ColdStart),
            };
        }
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if self.bundle_sha256.len() != 64 || !self.bundle_sha256.bytes().all(hex) {
            return Err(ScoreError::Sha256);
        }
        Ok(())
    }
}

/// The value name of `feature`'s contribution: `contribution.{feature}`, or, when that would
/// break the value-name limit, a prefix of it ending in `~` and 16 hex digits of the feature
/// name's sha256 (distinct names stay distinct; a reader matches them against the model's
/// feature list).
pub fn contribution_name(feature: &str) -> String {
    limited_name(value::CONTRIBUTION_PREFIX, feature)
}

/// `{prefix}{name}` as a value name: whole when it fits the value-name limit, else cut and
/// ended in `~` and 16 hex digits of `name`'s sha256 (see [`contribution_name`]).
pub fn limited_name(prefix: &str, name: &str) -> String {
    let feature = name;
    let full = format!("{prefix}{feature}");
    if full.len() <= limits::MAX_ID_BYTES {
        return full;
    }
    let hash = sha256_hex(feature.as_bytes());
    let mut cut = limits::MAX_ID_BYTES - 17;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{}", &full[..cut], &hash[..16])
}

impl ScoreMessage {
    /// The model that judged the shot.
    pub fn stamp(&self) -> ModelStamp {
        ModelStamp {
            key: self.model_key.clone(),
            id: self.model_id.clone(),
            version: self.version,
            bundle_sha256: self.bundle_sha256.clone(),
        }
    }

    /// The scored shot as a record for the edge's buffer (its seq is assigned there): score,
    /// threshold, alarm and the shot's seq, the model stamp, and an alarm's contributions.
    pub fn to_record(&self) -> Record {
        let mut values = vec![
            (value::SCORE.to_string(), f64::from(self.score)),
            (value::THRESHOLD.to_string(), f64::from(self.threshold)),
            (value::ALARM.to_string(), if self.alarm { 1.0 } else { 0.0 }),
            (value::SHOT_SEQ.to_string(), self.seq as f64),
        ];
        if self.alarm {
            values.extend(
                self.contributions
                    .iter()
                    .filter(|(_, c)| c.is_finite())
                    .map(|(f, c)| (contribution_name(f), f64::from(*c))),
            );
        }
        let mut r = Record::new(RecordKind::Score, &self.machine_id, DEVICE_ID, self.ts_ms, values);
        r.shot_number = self.shot_number;
        r.mold = self.mold.clone();
        r.model = Some(self.stamp());
        r
    }
}

/// Checks a record of kind `score`: a valid model stamp, a score and a threshold, an alarm of 0
/// or 1 (0 when a learning baseline judged the shot), and the shot's seq as a whole number.
pub fn check_record(r: &Record) -> Result<(), ScoreError> {
    let stamp = r.model.as_ref().ok_or(ScoreError::NoStamp)?;
    stamp.check()?;
    let get = |name: &'static str| r.values.get(name).copied().ok_or(ScoreError::Missing(name));
    get(value::SCORE)?;
    get(value::THRESHOLD)?;
    let alarm = get(value::ALARM)?;
    let learning = stamp.judge() == Judge::ColdStart(ColdStartPhase::Learning);
    let allowed: &[f64] = if learning { &[0.0] } else { &[0.0, 1.0] };
    if !allowed.contains(&alarm) {
        return Err(ScoreError::Range(value::ALARM));
    }
    let seq = get(value::SHOT_SEQ)?;
    if seq.fract() != 0.0 || !(0.0..=MAX_EXACT).contains(&seq) {
        return Err(ScoreError::Range(value::SHOT_SEQ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(alarm: bool) -> ScoreMessage {
        ScoreMessage {
            edge_id: "e1".into(),
            machine_id: "M1".into(),
            mold: Some("A".into()),
            shot_number: Some(42),
            seq: 1234,
            ts_ms: 1_700_000_000_000,
            model_key: "M1".into(),
            model_id: "M1@3".into(),
            version: 3,
            bundle_sha256: "ab".repeat(32),
            score: 7.5,
            threshold: 3.0,
            alarm,
            contributions: vec![("Cycle_Time".into(), 5.0), ("x".repeat(200), 2.5)],
        }
    }

    #[test]
    fn an_alarm_becomes_a_stamped_record_with_its_contributions() {
        let r = message(true).to_record();
        assert_eq!(
            (r.kind, r.device_id.as_str(), r.shot_number, r.mold.as_deref()),
            (RecordKind::Score, DEVICE_ID, Some(42), Some("A"))
        );
        assert_eq!(r.values[value::ALARM], 1.0);
        assert_eq!(r.values[value::SHOT_SEQ], 1234.0);
        assert_eq!(r.values["contribution.Cycle_Time"], 5.0);
        let long = r.values.keys().find(|k| k.contains('~')).expect("a cut contribution name");
        assert!(long.len() <= limits::MAX_ID_BYTES && long.starts_with("contribution.xxx"), "{long}");
        assert_eq!(r.model.as_ref().map(|m| m.id.as_str()), Some("M1@3"));
        assert_eq!(check_record(&r), Ok(()));
        assert_eq!(crate::codec::check_record(&r), Ok(()));
    }

    #[test]
    fn a_quiet_shot_carries_no_contributions() {
        let r = message(false).to_record();
        assert_eq!(r.values.len(), 4);
        assert_eq!(r.values[value::ALARM], 0.0);
    }

    #[test]
    fn cold_start_stamps_pass_and_say_how_the_shot_was_judged() {
        let mut m = message(false);
        let stamp = ModelStamp::cold_start("M1/MOLD-X", ColdStartPhase::Learning);
        (m.model_key, m.model_id, m.version, m.bundle_sha256) =
            (stamp.key.clone(), stamp.id.clone(), stamp.version, stamp.bundle_sha256.clone());
        let r = m.to_record();
        assert_eq!(check_record(&r), Ok(()));
        assert_eq!(crate::codec::check_record(&r), Ok(()));
        let judged = r.model.as_ref().map(ModelStamp::judge);
        assert_eq!(judged, Some(Judge::ColdStart(ColdStartPhase::Learning)));
        assert_eq!(r.model.as_ref().map(|s| s.id.as_str()), Some("M1/MOLD-X@learning"));
        // Learning never alarms.
        let mut alarmed = r.clone();
        alarmed.values.insert(value::ALARM.into(), 1.0);
        assert_eq!(check_record(&alarmed), Err(ScoreError::Range(value::ALARM)));
        // After learning the baseline may alarm.
        let baseline = ModelStamp::cold_start("M1/MOLD-X", ColdStartPhase::Baseline);
        assert_eq!(baseline.judge(), Judge::ColdStart(ColdStartPhase::Baseline));
        alarmed.model = Some(baseline);
        assert_eq!(check_record(&alarmed), Ok(()));
        // A registry model's stamp is a model.
        assert_eq!(message(true).stamp().judge(), Judge::Model);
        // Version 0 in any other form, or a cold-start id with a hash, is refused.
        for bad in [
            ModelStamp { id: "M1/MOLD-Y@learning".into(), ..stamp.clone() },
            ModelStamp { id: "M1/MOLD-X@guess".into(), ..stamp.clone() },
            ModelStamp { bundle_sha256: "ab".repeat(32), ..stamp.clone() },
        ] {
            assert_eq!(bad.check(), Err(ScoreError::ColdStart), "{bad:?}");
        }
        let no_hash = ModelStamp { version: 1, ..stamp };
        assert_eq!(no_hash.check(), Err(ScoreError::Sha256), "a model needs its bundle hash");
    }

    #[test]
    fn forged_score_records_are_refused_with_a_reason() {
        let good = message(true).to_record();
        let mut r = good.clone();
        r.model = None;
        assert_eq!(check_record(&r), Err(ScoreError::NoStamp));
        let mut r = good.clone();
        r.values.insert(value::ALARM.into(), 0.5);
        assert_eq!(check_record(&r), Err(ScoreError::Range(value::ALARM)));
        let mut r = good.clone();
        r.values.insert(value::SHOT_SEQ.into(), -1.0);
        assert_eq!(check_record(&r), Err(ScoreError::Range(value::SHOT_SEQ)));
        let mut r = good.clone();
        r.values.remove(value::THRESHOLD);
        assert_eq!(check_record(&r), Err(ScoreError::Missing(value::THRESHOLD)));
        let mut r = good.clone();
        if let Some(m) = r.model.as_mut() {
            m.bundle_sha256 = "AB".repeat(32);
        }
        assert_eq!(check_record(&r), Err(ScoreError::Sha256));
        let mut r = good;
        if let Some(m) = r.model.as_mut() {
            m.key = "M1\n".into();
        }
        assert!(matches!(
            crate::codec::check_record(&r),
            Err(crate::RecordError::Score(ScoreError::Name { .. }))
        ));
    }
}
