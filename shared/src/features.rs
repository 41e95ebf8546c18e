//! The feature schema both sides compute for a shot: which columns a shot's feature vector has,
//! in which order, and when a peripheral reading counts for a shot. The cloud ETL (`etl_data`)
//! and the edge's feature assembler use these definitions and nothing else, so a model trained
//! on `etl_data` sees at the edge exactly what it was trained on.
//!
//! A feature vector is the shot's own values, sorted by name, then one column per peripheral
//! value, named `{device}.{value}` and sorted by that name. `{device}` is the device id with the
//! `{machine_id}-` prefix removed (`M1-tcu` serving `M1` becomes `tcu`), so machines with the
//! same peripherals share column names. A peripheral reading counts for a shot when it was taken
//! at or before the shot (`sample_ts <= shot_ts`) and at most the tolerance earlier; the latest
//! such reading of the device wins, and a device with none leaves its columns missing (NaN).

/// Separator between device and value in a peripheral column name.
pub const SEPARATOR: char = '.';

/// Default as-of tolerance: half of a typical 60 s cycle. The ETL's `auto` tolerance derives
/// one per machine from its own cycle instead; this is the fallback while a machine has too few
/// shots to tell.
pub const DEFAULT_TOLERANCE_MS: i64 = 30_000;

/// The largest as-of tolerance either side accepts: one day (the ETL reads a date's
/// peripherals and the day before's).
pub const MAX_TOLERANCE_MS: i64 = 86_400_000;

/// A gap between consecutive shots longer than this (total duration) starts a new production run.
pub const RUN_GAP_MS: i64 = 15 * 60 * 1000;

/// The short name of a peripheral device for column names: `device_id` without the
/// `{machine_id}-` prefix (the device id itself when it has no such prefix, or nothing after it).
pub fn device_alias<'a>(machine_id: &str, device_id: &'a str) -> &'a str {
    device_id
        .strip_prefix(machine_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(device_id)
}

/// Column name of one peripheral value: `{device}.{value}`.
pub fn peripheral_column(device_alias: &str, value: &str) -> String {
    format!("{device_alias}{SEPARATOR}{value}")
}

/// The ordered feature names: shot value names sorted (duplicates removed), then peripheral
/// column names ([`peripheral_column`]) sorted (duplicates removed).
pub fn feature_names<'a>(
    shot_values: impl IntoIterator<Item = &'a str>,
    peripheral_columns: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut shots: Vec<String> = shot_values.into_iter().map(str::to_string).collect();
    shots.sort_unstable();
    shots.dedup();
    let mut peripherals: Vec<String> = peripheral_columns.into_iter().collect();
    peripherals.sort_unstable();
    peripherals.dedup();
    shots.extend(peripherals);
    shots
}

/// How much older than a shot at `shot_ts_ms` a peripheral reading taken at `sample_ts_ms` is;
/// `None` when it was taken after the shot (such a reading never counts for it).
pub fn reading_age(shot_ts_ms: i64, sample_ts_ms: i64) -> Option<i64> {
    (sample_ts_ms <= shot_ts_ms).then(|| shot_ts_ms.saturating_sub(sample_ts_ms))
}

/// True when a reading `age_ms` older than the shot counts under `tolerance_ms` (both edges
/// inclusive: a reading at the shot's own millisecond, and one exactly the tolerance earlier).
pub fn within_tolerance(age_ms: i64, tolerance_ms: i64) -> bool {
    (0..=tolerance_ms).contains(&age_ms)
}

/// True when a shot at `ts_ms` with `mold` starts a new production run after a previous shot
/// at `prev_ts_ms` with `prev_mold`: a gap over [`RUN_GAP_MS`] (total duration, whatever the
/// days in between) or another mold.
pub fn starts_run(prev_ts_ms: i64, prev_mold: Option<&str>, ts_ms: i64, mold: Option<&str>) -> bool {
    ts_ms.saturating_sub(prev_ts_ms) > RUN_GAP_MS || prev_mold != mold
}

/// The id of a production run: `{machine_id}-{ts of its first shot, ms}`. Stable across reruns.
pub fn run_id(machine_id: &str, first_ts_ms: i64) -> String {
    format!("{machine_id}-{first_ts_ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_strip_the_machine_prefix_only() {
        assert_eq!(device_alias("M1", "M1-tcu"), "tcu");
        assert_eq!(device_alias("M1", "M10-tcu"), "M10-tcu");
        assert_eq!(device_alias("M1", "M1-"), "M1-");
        assert_eq!(device_alias("M1", "chiller"), "chiller");
    }

    #[test]
    fn names_are_shots_then_peripherals_each_sorted() {
        let names = feature_names(
            ["b", "a", "b"],
            [peripheral_column("tcu", "flow"), peripheral_column("dryer", "dew_point")],
        );
        assert_eq!(names, ["a", "b", "dryer.dew_point", "tcu.flow"]);
    }

    #[test]
    fn tolerance_edges_are_inclusive() {
        let counts =
            |shot, sample, tol| reading_age(shot, sample).is_some_and(|age| within_tolerance(age, tol));
        assert!(counts(10_000, 10_000, 0));
        assert!(counts(10_000, 7_000, 3_000));
        assert!(!counts(10_000, 6_999, 3_000));
        assert!(!counts(10_000, 10_001, 3_000));
    }

    #[test]
    fn runs_split_on_total_gap_and_mold() {
        let day = 86_400_000;
        assert!(!starts_run(0, Some("A"), RUN_GAP_MS, Some("A")));
        assert!(starts_run(0, Some("A"), RUN_GAP_MS + 1, Some("A")));
        assert!(starts_run(0, Some("A"), day + 5 * 60_000, Some("A")));
        assert!(starts_run(0, Some("A"), 1, Some("B")));
        assert_eq!(run_id("M1", 42), "M1-42");
    }
}
