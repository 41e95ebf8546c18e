//! Production runs: consecutive kept shots of one machine, in time order, belong to one run
//! until a gap of more than 15 minutes (total duration, across midnight and days) or a mold
//! change ([`moldops_shared::features::starts_run`]). A run's id is `{machine}-{first shot ms}`,
//! so it is the same whichever rerun computes it; a date continues the run of the date before
//! from that date's [`Tail`].

use super::state::Tail;
use moldops_shared::features::{run_id, starts_run};

/// Run ids for shots given as `(ts_ms, mold)` in time order, continuing from `seed`. Returns
/// the ids and the tail after the last shot (`seed` when there are none).
pub fn segment<'a>(
    machine_id: &str,
    shots: impl Iterator<Item = (i64, Option<&'a str>)>,
    seed: Option<&Tail>,
) -> (Vec<String>, Option<Tail>) {
    let mut ids = Vec::new();
    let mut prev: Option<(i64, Option<String>, String)> =
        seed.map(|t| (t.ts_ms, t.mold.clone(), t.run_id.clone()));
    for (ts_ms, mold) in shots {
        let id = match &prev {
            Some((pts, pmold, pid)) if !starts_run(*pts, pmold.as_deref(), ts_ms, mold) => pid.clone(),
            _ => run_id(machine_id, ts_ms),
        };
        ids.push(id.clone());
        prev = Some((ts_ms, mold.map(str::to_string), id));
    }
    (ids, prev.map(|(ts_ms, mold, run_id)| Tail { ts_ms, mold, run_id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn gaps_over_fifteen_minutes_of_total_duration_split() {
        let day = 24 * 60 * MIN;
        let shots =
            [(0, Some("A")), (15 * MIN, Some("A")), (30 * MIN + 1, Some("A")), (day + 35 * MIN, Some("A"))];
        let (ids, tail) = segment("M1", shots.into_iter(), None);
        assert_eq!(
            ids,
            ["M1-0", "M1-0", format!("M1-{}", 30 * MIN + 1).as_str(), &format!("M1-{}", day + 35 * MIN)]
        );
        assert_eq!(tail.map(|t| t.ts_ms), Some(day + 35 * MIN));
    }

    #[test]
    fn mold_changes_split_and_seeds_continue() {
        let seed = Tail { ts_ms: 0, mold: Some("A".into()), run_id: "M1-x".into() };
        let shots = [(MIN, Some("A")), (2 * MIN, Some("B")), (3 * MIN, Some("B"))];
        let (ids, _) = segment("M1", shots.into_iter(), Some(&seed));
        assert_eq!(ids, ["M1-x", &format!("M1-{}", 2 * MIN), &format!("M1-{}", 2 * MIN)]);
        let (none, tail) = segment("M1", std::iter::empty(), Some(&seed));
        assert!(none.is_empty());
        assert_eq!(tail, Some(seed));
    }
}
