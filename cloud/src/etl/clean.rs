//! The drop rules of the ETL, as one polars expression giving each shot its drop reason (null
//! when kept). Rules, first match wins:
//!
//! 1. `sentinel`: any value at or beyond the sentinel magnitude (2^32-like register garbage,
//!    e.g. a cushion of 4.294967e8);
//! 2. `idle`: every value is zero or missing (the machine cycling without injecting);
//! 3. `impossible`: a value outside its physical limits (e.g. a cycle time of 107 400 s);
//! 4. `duplicate`: the same shot number at the same time as the shot before it (the same shot
//!    from two sources, e.g. an import overlapping the live feed).

use polars::prelude::{DataType, Expr, NULL, PlSmallStr, all_horizontal, any_horizontal, col, lit, when};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every drop reason, in the order the rules are checked.
pub const REASONS: [&str; 4] = ["sentinel", "idle", "impossible", "duplicate"];

/// Name of the drop-reason column while the ETL works.
pub const REASON_COLUMN: &str = "__drop_reason";

/// Settings of the drop rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanRules {
    /// A value whose magnitude is at least this is a sentinel.
    pub sentinel_abs: f64,
    /// Physical limits `[min, max]` (inclusive) of named values; values not named have none.
    pub limits: BTreeMap<String, [f64; 2]>,
}

impl Default for CleanRules {
    fn default() -> Self {
        let hour = 3600.0;
        let limits = [
            ("Cycle_Time", [0.001, hour]),
            ("Injection_Time", [0.0, hour]),
            ("Filling_Time", [0.0, hour]),
            ("Plasticizing_Time", [0.0, hour]),
            ("Clamp_Close_Time", [0.0, hour]),
        ];
        CleanRules {
            sentinel_abs: 1.0e8,
            limits: limits.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }
}

impl CleanRules {
    /// The drop-reason expression over a frame sorted by time (then shot number) with the
    /// given value columns and an `i64` column `ts_ms`.
    pub fn reason(&self, values: &[PlSmallStr]) -> polars::prelude::PolarsResult<Expr> {
        let th = self.sentinel_abs;
        let sentinel: Vec<Expr> = values
            .iter()
            .map(|c| col(c.clone()).gt_eq(lit(th)).or(col(c.clone()).lt_eq(lit(-th))).fill_null(lit(false)))
            .collect();
        let idle: Vec<Expr> =
            values.iter().map(|c| col(c.clone()).eq(lit(0.0)).fill_null(lit(true))).collect();
        let impossible: Vec<Expr> = values
            .iter()
            .filter_map(|c| self.limits.get(c.as_str()).map(|l| (c, l)))
            .map(|(c, [lo, hi])| {
                col(c.clone()).lt(lit(*lo)).or(col(c.clone()).gt(lit(*hi))).fill_null(lit(false))
            })
            .collect();
        let duplicate = col("shot_number")
            .eq(col("shot_number").shift(lit(1)))
            .and(col("ts_ms").eq(col("ts_ms").shift(lit(1))))
            .fill_null(lit(false));
        let any = |v: Vec<Expr>| if v.is_empty() { Ok(lit(false)) } else { any_horizontal(v) };
        let all = |v: Vec<Expr>| if v.is_empty() { Ok(lit(true)) } else { all_horizontal(v) };
        Ok(when(any(sentinel)?)
            .then(lit(REASONS[0]))
            .when(all(idle)?)
            .then(lit(REASONS[1]))
            .when(any(impossible)?)
            .then(lit(REASONS[2]))
            .when(duplicate)
            .then(lit(REASONS[3]))
            .otherwise(lit(NULL).cast(DataType::String)))
    }
}
