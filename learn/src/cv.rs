//! Cross-validation plumbing: stratified, shuffled, seeded k-fold splits and a standard scaler
//! that is fitted on each training fold only (the original scaled all rows before its CV,
//! which leaks the held-out rows' mean and spread into training).

use super::data::Matrix;
use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The number of folds used when `requested` are asked for and the rarer class has
/// `minority` rows: every test fold must hold at least one row of each class, so
/// `min(requested, minority)`; fewer than 2 is an error.
pub fn effective_folds(requested: usize, minority: usize) -> Result<usize> {
    let k = requested.min(minority);
    if k < 2 {
        bail!(
            "cannot cross-validate: the rarer class has {minority} row(s), at least 2 are needed \
             (and {requested} fold(s) were requested)"
        );
    }
    Ok(k)
}

/// Test indices of `k` stratified folds over `y` (values 0/1), shuffled with `seed`: each
/// class's rows are shuffled, then dealt round-robin onto the folds, continuing where the
/// previous class stopped so fold sizes differ by at most one. Folds are returned sorted.
pub fn stratified_folds(y: &[u8], k: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if k < 2 {
        bail!("k-fold needs k ≥ 2, got {k}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0usize;
    for class in [0u8, 1] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        if idx.len() < k {
            bail!("class {class} has {} row(s), fewer than the {k} folds", idx.len());
        }
        idx.shuffle(&mut rng);
        for i in idx {
            folds[next % k].push(i);
            next += 1;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    Ok(folds)
}

/// The complement of `test` in `0..n`.
pub fn train_indices(n: usize, test: &[usize]) -> Vec<usize> {
    let mut in_test = vec![false; n];
    for &i in test {
        in_test[i] = true;
    }
    (0..n).filter(|&i| !in_test[i]).collect()
}

/// Per-column mean and standard deviation (ddof 0), as sklearn's `StandardScaler`; a column
/// with zero spread keeps scale 1.
#[derive(Debug, Clone)]
pub struct Scaler {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Scaler {
    /// Learns each column's mean and standard deviation from the rows of `x`.
    pub fn fit(x: &Matrix) -> Self {
        let n = x.rows.max(1) as f64;
        let mut mean = vec![0.0; x.cols];
        for i in 0..x.rows {
            for (m, v) in mean.iter_mut().zip(x.row(i)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; x.cols];
        for i in 0..x.rows {
            for ((s, v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
                *s += (v - m).powi(2);
            }
        }
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / n).sqrt();
                // sklearn treats a spread below 10·eps·|mean| as zero.
                if sd < 10.0 * f64::EPSILON * m.abs().max(1.0) { 1.0 } else { sd }
            })
            .collect();
        Self { mean, scale }
    }

    /// Returns `x` with each column centred on the fitted mean and divided by the fitted scale.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let mut out = x.clone();
        for i in 0..x.rows {
            let row = &mut out.data[i * x.cols..(i + 1) * x.cols];
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}
