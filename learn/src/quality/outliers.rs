//! The percentile fence of the reference's "IQR" step: per column, with `q_lo` and `q_hi` the
//! 2.5th and 97.5th percentiles (numpy's linear interpolation) and `R = q_hi − q_lo`, a value
//! outside `[q_lo − 1.5·R, q_hi + 1.5·R]` (or not finite) makes its row an outlier.
//!
//! The reference fitted each column on the rows left by the columns before it, so its result
//! depended on the column order. By default every column is fitted on all rows
//! (`sequential = false`); `sequential = true` reproduces the reference. Rows are only marked,
//! never removed: the caller decides (augment keeps marked normal shots out of training only).

use serde::{Deserialize, Serialize};

/// Settings of the fence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FenceConfig {
    /// Lower percentile (0–100).
    pub lower_percentile: f64,
    /// Upper percentile (0–100).
    pub upper_percentile: f64,
    /// Multiplier of the inter-percentile range.
    pub k: f64,
    /// Fit each column on the rows the previous columns kept (the reference's behaviour).
    pub sequential: bool,
}

impl Default for FenceConfig {
    fn default() -> Self {
        FenceConfig { lower_percentile: 2.5, upper_percentile: 97.5, k: 1.5, sequential: false }
    }
}

/// Fence settings outside their domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "fence: need 0 <= lower_percentile < upper_percentile <= 100 and k >= 0, got {lower} / {upper} / {k}"
)]
pub struct BadFence {
    /// The `lower_percentile` that was given.
    pub lower: f64,
    /// The `upper_percentile` that was given.
    pub upper: f64,
    /// The `k` that was given.
    pub k: f64,
}

impl FenceConfig {
    /// Problems with the settings, if any.
    pub fn validate(&self) -> Result<(), BadFence> {
        let ok = (0.0..=100.0).contains(&self.lower_percentile)
            && (0.0..=100.0).contains(&self.upper_percentile)
            && self.lower_percentile < self.upper_percentile
            && self.k >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(BadFence { lower: self.lower_percentile, upper: self.upper_percentile, k: self.k })
        }
    }
}

/// The fitted bounds of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnFence {
    /// Column name (empty when no name was given for it).
    pub column: String,
    /// Lower bound `q_lo − k·R`; smaller values are outliers.
    pub low: f64,
    /// Upper bound `q_hi + k·R`; larger values are outliers.
    pub high: f64,
    /// Rows outside the bounds (including non-finite values).
    pub flagged: usize,
}

/// The `p`-th percentile (0–100) of `sorted` (ascending, finite), numpy's "linear" method.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = p / 100.0 * (n - 1) as f64;
            let i = pos.floor() as usize;
            let frac = pos - i as f64;
            if i + 1 >= n { sorted[n - 1] } else { sorted[i] + frac * (sorted[i + 1] - sorted[i]) }
        }
    }
}

/// Marks outlier rows. `columns[j]` holds column `j` (all the same length); `names[j]` its name.
/// Returns the mask (true = outlier) and each column's fence.
pub fn fence(columns: &[Vec<f64>], names: &[String], cfg: &FenceConfig) -> (Vec<bool>, Vec<ColumnFence>) {
    let n = columns.first().map_or(0, Vec::len);
    let mut outlier = vec![false; n];
    let mut fences = Vec::with_capacity(columns.len());
    for (j, col) in columns.iter().enumerate() {
        let mut fit: Vec<f64> = col
            .iter()
            .enumerate()
            .filter(|&(i, v)| v.is_finite() && !(cfg.sequential && outlier[i]))
            .map(|(_, &v)| v)
            .collect();
        fit.sort_by(f64::total_cmp);
        let q_lo = percentile(&fit, cfg.lower_percentile);
        let q_hi = percentile(&fit, cfg.upper_percentile);
        let r = q_hi - q_lo;
        let (low, high) = (q_lo - cfg.k * r, q_hi + cfg.k * r);
        let mut flagged = 0;
        for (i, &v) in col.iter().enumerate() {
            // NaN bounds (no finite value at all) flag every row, as the reference's NaN test did.
            if !(v >= low && v <= high) {
                flagged += 1;
                outlier[i] = true;
            }
        }
        fences.push(ColumnFence { column: names.get(j).cloned().unwrap_or_default(), low, high, flagged });
    }
    (outlier, fences)
}
