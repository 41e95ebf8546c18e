//! The feature vector of a shot at the edge, computed at shot time exactly as the cloud ETL
//! computes it for `etl_data` (definitions in [`moldops_shared::features`]): the shot's values,
//! then for every peripheral device of the machine the values of its latest reading taken at
//! or before the shot and within the tolerance, as `{device}.{value}` columns.
//!
//! The assembler keeps, per machine and device, the latest reading seen. Feed it records in
//! time order, readings before shots at equal times (the ETL's as-of join counts a reading
//! taken at the shot's own millisecond); a reading older than the one kept is ignored, one at
//! the same time replaces it (the ETL keeps the last of equal times too).

use moldops_shared::features::{
    device_alias, feature_names, peripheral_column, reading_age, within_tolerance,
};
use moldops_shared::{Record, RecordKind};
use std::collections::{BTreeMap, HashMap};

/// The latest reading of one peripheral device.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    ts_ms: i64,
    values: BTreeMap<String, f64>,
}

/// Builds shot feature vectors from a time-ordered stream of records.
#[derive(Debug, Clone)]
pub struct FeatureAssembler {
    tolerance_ms: i64,
    /// machine -> device alias -> latest reading.
    latest: HashMap<String, BTreeMap<String, Reading>>,
}

/// The feature vector of one shot: names (the shared order) and values (NaN where missing).
#[derive(Debug, Clone, PartialEq)]
pub struct ShotFeatures {
    /// Machine that made the shot (the shot record's `machine_id`).
    pub machine_id: String,
    /// The controller's shot counter, when the shot record carries one.
    pub shot_number: Option<u64>,
    /// Time of the shot, UTC milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Feature names in the shared order ([`moldops_shared::features::feature_names`]): the
    /// shot's value names sorted, then the `{device}.{value}` peripheral columns sorted.
    pub names: Vec<String>,
    /// One value per name, in the order of `names`; NaN where the shot has no such value or no
    /// reading of the device lies within the assembler's tolerance.
    pub values: Vec<f64>,
    /// Per feature, how much older than the shot its value is (ms): 0 for the shot's own
    /// values, the reading's age for a peripheral value (whatever it is where the value is NaN).
    /// A consumer with a tighter tolerance than the assembler's treats older values as missing.
    pub ages_ms: Vec<i64>,
}

impl ShotFeatures {
    /// The value of a named feature; NaN when it is not in the vector.
    pub fn get(&self, name: &str) -> f64 {
        self.names.iter().position(|n| n == name).map_or(f64::NAN, |i| self.values[i])
    }
}

impl FeatureAssembler {
    /// An assembler with no readings yet that counts a peripheral reading for a shot when it was
    /// taken at most `tolerance_ms` milliseconds before the shot (both edges inclusive).
    pub fn new(tolerance_ms: i64) -> Self {
        FeatureAssembler { tolerance_ms, latest: HashMap::new() }
    }

    /// Takes one record: a peripheral reading is kept (if not older than the one held), a
    /// shot yields its feature vector, the edge's own records (gaps, scores, health) are
    /// passed over.
    pub fn observe(&mut self, record: &Record) -> Option<ShotFeatures> {
        match record.kind {
            RecordKind::Peripheral => {
                self.reading(record);
                None
            }
            RecordKind::Shot => Some(self.shot(record)),
            RecordKind::Gap
            | RecordKind::Score
            | RecordKind::Status
            | RecordKind::Decision
            | RecordKind::Drift => None,
        }
    }

    fn reading(&mut self, record: &Record) {
        let alias = device_alias(&record.machine_id, &record.device_id).to_string();
        let devices = self.latest.entry(record.machine_id.clone()).or_default();
        match devices.get(&alias) {
            Some(held) if held.ts_ms > record.ts_ms => {}
            _ => {
                devices.insert(alias, Reading { ts_ms: record.ts_ms, values: record.values.clone() });
            }
        }
    }

    /// The ordered feature names of a shot of `machine_id` with `shot_values`: its values,
    /// then every value of every device of that machine seen so far.
    pub fn names<'a>(&self, machine_id: &str, shot_values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let peripherals = self.latest.get(machine_id).into_iter().flat_map(|devices| {
            devices.iter().flat_map(|(alias, r)| r.values.keys().map(move |v| peripheral_column(alias, v)))
        });
        feature_names(shot_values, peripherals)
    }

    /// The feature vector of a shot with the names of [`FeatureAssembler::names`].
    pub fn shot(&self, shot: &Record) -> ShotFeatures {
        let names = self.names(&shot.machine_id, shot.values.keys().map(String::as_str));
        let (values, ages_ms) = names
            .iter()
            .map(|n| match self.lookup(shot, n) {
                Some((v, age)) if within_tolerance(age, self.tolerance_ms) => (v, age),
                Some((_, age)) => (f64::NAN, age),
                None => (f64::NAN, 0),
            })
            .unzip();
        ShotFeatures {
            machine_id: shot.machine_id.clone(),
            shot_number: shot.shot_number,
            ts_ms: shot.ts_ms,
            names,
            values,
            ages_ms,
        }
    }

    /// One named feature of a shot: a shot value, or a peripheral value of a reading within
    /// the tolerance; NaN otherwise.
    pub fn value(&self, shot: &Record, name: &str) -> f64 {
        match self.lookup(shot, name) {
            Some((v, age)) if within_tolerance(age, self.tolerance_ms) => v,
            _ => f64::NAN,
        }
    }

    /// A named feature of a shot and its age: the shot's own value (age 0), or the value of
    /// the device's latest reading taken at or before the shot (age: how much earlier).
    fn lookup(&self, shot: &Record, name: &str) -> Option<(f64, i64)> {
        if let Some(v) = shot.values.get(name) {
            return Some((*v, 0));
        }
        self.latest.get(&shot.machine_id)?.iter().find_map(|(alias, r)| {
            let age = reading_age(shot.ts_ms, r.ts_ms)?;
            let value =
                name.strip_prefix(alias.as_str())?.strip_prefix(moldops_shared::features::SEPARATOR)?;
            r.values.get(value).map(|v| (*v, age))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: RecordKind, device: &str, ts_ms: i64, values: &[(&str, f64)]) -> Record {
        let mut r = Record::new(kind, "M1", device, ts_ms, values.iter().copied());
        r.shot_number = (kind == RecordKind::Shot).then_some(1);
        r
    }

    #[test]
    fn readings_count_only_within_tolerance_and_not_after_the_shot() {
        let mut a = FeatureAssembler::new(1_000);
        a.observe(&rec(RecordKind::Peripheral, "M1-tcu", 9_000, &[("flow", 1.0)]));
        let f = a
            .observe(&rec(RecordKind::Shot, "M1", 10_000, &[("Cycle_Time", 60.0)]))
            .expect("a shot yields features");
        assert_eq!(f.names, ["Cycle_Time", "tcu.flow"]);
        assert_eq!(f.values[1], 1.0);
        assert_eq!(f.ages_ms, [0, 1_000]);
        let late = a.shot(&rec(RecordKind::Shot, "M1", 10_001, &[]));
        assert!(late.get("tcu.flow").is_nan());
        assert_eq!(late.ages_ms, [1_001], "the age says why a consumer with more tolerance may use it");
        let early = a.shot(&rec(RecordKind::Shot, "M1", 8_999, &[]));
        assert!(early.get("tcu.flow").is_nan());
        // An older reading never replaces a newer one.
        a.observe(&rec(RecordKind::Peripheral, "M1-tcu", 8_000, &[("flow", 2.0)]));
        assert_eq!(a.shot(&rec(RecordKind::Shot, "M1", 9_500, &[])).get("tcu.flow"), 1.0);
    }
}
