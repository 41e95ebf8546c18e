//! Gaussian naive Bayes, written here because smartcore's `GaussianNB` has no
//! `var_smoothing` (the original grid's only parameter). As sklearn's `GaussianNB`: class
//! priors from counts, per-class mean and variance (ddof 0) plus `var_smoothing × the largest
//! feature variance`, joint log-likelihood, probabilities through log-sum-exp.

use super::Prediction;
use crate::data::Matrix;
use serde::{Deserialize, Serialize};

/// Parameters, named as in sklearn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NbParams {
    /// Fraction of the largest feature variance added to every class variance for stability (≥ 0).
    pub var_smoothing: f64,
}

fn mean_var(x: &Matrix, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; x.cols];
    for &i in rows {
        mean.iter_mut().zip(x.row(i)).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; x.cols];
    for &i in rows {
        var.iter_mut().zip(x.row(i)).zip(&mean).for_each(|((s, v), m)| *s += (v - m) * (v - m));
    }
    var.iter_mut().for_each(|s| *s /= n);
    (mean, var)
}

/// Fits Gaussian naive Bayes on (`x`, `y`) and scores `test` by the class-1 probability.
pub fn fit_predict(p: &NbParams, x: &Matrix, y: &[u8], test: &Matrix) -> Prediction {
    let all: Vec<usize> = (0..x.rows).collect();
    let epsilon = p.var_smoothing * mean_var(x, &all).1.iter().copied().fold(0.0, f64::max);
    let classes: Vec<(f64, Vec<f64>, Vec<f64>)> = [0u8, 1]
        .iter()
        .map(|&c| {
            let rows: Vec<usize> = all.iter().copied().filter(|&i| y[i] == c).collect();
            let (mean, mut var) = mean_var(x, &rows);
            var.iter_mut().for_each(|v| *v += epsilon);
            (rows.len() as f64 / x.rows as f64, mean, var)
        })
        .collect();
    let mut pred = Vec::with_capacity(test.rows);
    let mut score = Vec::with_capacity(test.rows);
    for i in 0..test.rows {
        let row = test.row(i);
        let jll: Vec<f64> = classes
            .iter()
            .map(|(prior, mean, var)| {
                let norm: f64 = var.iter().map(|v| (2.0 * std::f64::consts::PI * v).ln()).sum();
                let dist: f64 = row.iter().zip(mean).zip(var).map(|((x, m), v)| (x - m) * (x - m) / v).sum();
                prior.ln() - 0.5 * norm - 0.5 * dist
            })
            .collect();
        let max = jll[0].max(jll[1]);
        let lse = ((jll[0] - max).exp() + (jll[1] - max).exp()).ln() + max;
        pred.push(u8::from(jll[1] > jll[0]));
        score.push((jll[1] - lse).exp());
    }
    Prediction { pred, score }
}
