//! Small statistics shared by the quality steps: column standardization, the two-sample
//! Kolmogorov–Smirnov test, Pearson correlation matrices, and binary classification scores
//! (confusion counts, precision / recall / F1, average precision = PR-AUC as scikit-learn
//! computes it).

use serde::{Deserialize, Serialize};

/// Mean and standard deviation (population) per column, fitted on rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per-column mean of the fitted rows.
    pub mean: Vec<f64>,
    /// Per-column population standard deviation of the fitted rows (1 where it was 0).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fits on `rows` (a zero deviation becomes 1, as scikit-learn's StandardScaler does).
    pub fn fit(rows: &[Vec<f64>]) -> Self {
        let width = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mean: Vec<f64> = (0..width).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let std = (0..width)
            .map(|j| {
                let var = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if var > 0.0 { var.sqrt() } else { 1.0 }
            })
            .collect();
        Standardizer { mean, std }
    }

    /// Standardizes one row: `(value − mean) / std` per column.
    pub fn transform(&self, row: &[f64]) -> Vec<f64> {
        row.iter().zip(&self.mean).zip(&self.std).map(|((v, m), s)| (v - m) / s).collect()
    }

    /// Standardizes every row of `rows`.
    pub fn transform_all(&self, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
        rows.iter().map(|r| self.transform(r)).collect()
    }
}

/// Two-sample KS result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ks {
    /// Largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// Asymptotic p-value (Kolmogorov distribution with the effective sample size).
    pub p_value: f64,
}

/// Two-sample Kolmogorov–Smirnov test of `a` against `b` (NaN-free).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Ks {
    if a.is_empty() || b.is_empty() {
        return Ks { statistic: 1.0, p_value: 0.0 };
    }
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let (n, m) = (x.len(), y.len());
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < n && j < m {
        let v = x[i].min(y[j]);
        while i < n && x[i] <= v {
            i += 1;
        }
        while j < m && y[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    let en = ((n * m) as f64 / (n + m) as f64).sqrt();
    let lambda = (en + 0.12 + 0.11 / en) * d;
    Ks { statistic: d, p_value: kolmogorov_q(lambda) }
}

/// The Kolmogorov survival function `Q(λ) = 2 Σ (−1)^{k−1} e^{−2k²λ²}`.
fn kolmogorov_q(lambda: f64) -> f64 {
    // Below 0.2 the series converges too slowly to sum (100 terms give 0.02 at λ = 0.0011),
    // and Q(0.2) = 1 − 5·10⁻¹³: the distance says nothing.
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let term = (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Pearson correlation matrix of the columns of `rows` (a constant column correlates 0).
pub fn correlation(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let s = Standardizer::fit(rows);
    let z = s.transform_all(rows);
    let width = s.mean.len();
    let n = rows.len().max(1) as f64;
    (0..width)
        .map(|a| {
            (0..width)
                .map(|b| if a == b { 1.0 } else { z.iter().map(|r| r[a] * r[b]).sum::<f64>() / n })
                .collect()
        })
        .collect()
}

/// Counts of a binary prediction against truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// True positives: predicted positive and positive.
    pub tp: usize,
    /// False positives: predicted positive but negative.
    pub fp: usize,
    /// False negatives: predicted negative but positive.
    pub fn_: usize,
    /// True negatives: predicted negative and negative.
    pub tn: usize,
}

impl Confusion {
    /// Counts `predicted` against `truth` pairwise (extra values of the longer slice are ignored).
    pub fn of(predicted: &[bool], truth: &[bool]) -> Self {
        let mut c = Confusion::default();
        for (&p, &t) in predicted.iter().zip(truth) {
            match (p, t) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    /// tp / (tp + fp); 0 when nothing is predicted positive (scikit-learn's zero_division=0).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0 when there are no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// 2·tp / (2·tp + fp + fn); 0 when there are no predicted and no actual positives.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Average precision (scikit-learn's `average_precision_score`, as
/// [`metrics::average_precision_by`](crate::metrics::average_precision_by)). 0 when there is no
/// positive.
pub fn average_precision(scores: &[f64], truth: &[bool]) -> f64 {
    crate::metrics::average_precision_by(scores.len(), |i| scores[i], |i| truth[i]).unwrap_or(0.0)
}
