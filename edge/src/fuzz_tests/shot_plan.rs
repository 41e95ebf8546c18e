//! Fuzz tests of shot planning across counter wraps, resets and history backfill.

use super::*;
use crate::shot::{self, ShotPlan};
use moldops_shared::profile;

#[test]
fn fuzz_shot_plan() {
    fuzz("edge/shot_plan", |u| {
        let bits = *u.choose(&[16u32, 32, 64])?;
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let current = any_u64(u)? & mask;
        let last = match u.int_in_range(0..=4)? {
            0 => None,
            1 => Some(any_u64(u)?),
            // A mark stored under a wider counter: equal to `current` within `bits`, or near it.
            2 => Some((current.wrapping_sub(u.int_in_range(0..=2)?) & mask) | (any_u64(u)? & !mask)),
            _ => Some(current.wrapping_sub(u.int_in_range(0..=100)?) & mask),
        };
        // A history ring's depth is a u16 (`History::depth`).
        let depth = u64::from(*u.choose(&[0, 1, 2, 10, 64, u16::MAX])?);
        let plan = timed("shot::plan", || shot::plan(last, current, bits, depth));
        // No shot: the same counter, or one equal to it within the counter's width.
        let same = last.is_some_and(|l| profile::counter_delta(l, current, bits) == 0);
        assert_eq!(matches!(plan, ShotPlan::None), same, "{last:?} -> {current} ({bits} bits): {plan:?}");
        match &plan {
            ShotPlan::None => {}
            ShotPlan::Reset { previous, current: c } => {
                assert_eq!((Some(*previous), *c), (last, current));
            }
            ShotPlan::Record { backfill, current: c } => {
                assert_eq!(*c, current);
                assert!(backfill.len() as u64 <= depth.saturating_sub(1), "{plan:?}");
                assert!(backfill.iter().all(|n| *n <= mask && *n != current), "{plan:?}");
                let backfilled = backfill.len();
                let missed = shot::missed(last, current, bits, backfilled);
                if let Some(l) = last {
                    let delta = profile::counter_delta(l, current, bits);
                    assert_eq!(missed + backfilled as u64, delta - 1, "every shot is recorded or missed");
                }
            }
        }
        Ok(())
    });
}

/// Found by `fuzz_shot_plan`, fixed: when the last recorded shot has bits above the counter's
/// width (recorded while the counter was u32, now u16 — or any stored shot number ≥ 2^bits)
/// and equals the current counter modulo 2^bits, the wrap-aware delta is 0 and `plan` computed
/// `delta - 1` (`edge/src/shot.rs`, `plan`): a panic in debug builds, a bogus backfill of
/// `history_depth - 1` shots in release. `plan` now gives `ShotPlan::None` for a zero delta.
#[test]
fn regression_shot_plan_panics_when_the_last_shot_is_wider_than_the_counter() {
    let plan = std::panic::catch_unwind(|| shot::plan(Some(65_541), 5, 16, 8)).expect("plan does not panic");
    assert!(matches!(plan, ShotPlan::None), "{plan:?}");
}
