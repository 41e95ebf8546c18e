//! Quadratic discriminant analysis, written here because neither smartcore nor linfa has one.
//! As sklearn 1.9's `QuadraticDiscriminantAnalysis` (svd solver): per class mean and
//! covariance with ddof 0 (older releases divided by n − 1), regularised as
//! `(1 − reg_param)·Σ + reg_param·I` (what sklearn's shrinking of the squared singular values
//! amounts to), decision `−½(Mahalanobis² + ln|Σ|) + ln prior`, and the difference of the two
//! classes' decisions as the score (sklearn's `decision_function`). Cholesky instead of SVD;
//! a covariance that is not positive definite (reg_param 0 with collinear features) is an
//! error, as sklearn's rank check makes it.

use super::Prediction;
use crate::data::Matrix;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Parameters, named as in sklearn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QdaParams {
    /// Shrinkage of each class covariance towards the identity, in [0, 1]: `(1 − r)·Σ + r·I`.
    pub reg_param: f64,
}

struct ClassModel {
    log_prior: f64,
    mean: Vec<f64>,
    /// Lower Cholesky factor of the regularised covariance, row-major d×d.
    chol: Vec<f64>,
    log_det: f64,
}

/// Cholesky factor L (row-major) of the symmetric positive definite `a` (d×d), or None.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

fn fit_class(x: &Matrix, rows: &[usize], n_total: usize, reg: f64, class: u8) -> Result<ClassModel> {
    let d = x.cols;
    let n = rows.len();
    if n < 2 {
        bail!("QDA: class {class} has {n} training row(s), at least 2 are needed");
    }
    let mut mean = vec![0.0; d];
    for &i in rows {
        mean.iter_mut().zip(x.row(i)).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0; d * d];
    let mut c = vec![0.0; d];
    for &i in rows {
        c.iter_mut().zip(x.row(i)).zip(&mean).for_each(|((c, v), m)| *c = v - m);
        for a in 0..d {
            for b in 0..=a {
                cov[a * d + b] += c[a] * c[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..=a {
            let v = (1.0 - reg) * cov[a * d + b] / n as f64 + if a == b { reg } else { 0.0 };
            cov[a * d + b] = v;
            cov[b * d + a] = v;
        }
    }
    let Some(chol) = cholesky(&cov, d) else {
        bail!("QDA: the covariance of class {class} is singular (reg_param {reg}); raise reg_param");
    };
    let log_det = 2.0 * (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>();
    Ok(ClassModel { log_prior: (n as f64 / n_total as f64).ln(), mean, chol, log_det })
}

impl ClassModel {
    fn decision(&self, row: &[f64]) -> f64 {
        let d = self.mean.len();
        // Solve L z = (x − μ); Mahalanobis² = |z|².
        let mut z = vec![0.0; d];
        for i in 0..d {
            let s: f64 = (0..i).map(|k| self.chol[i * d + k] * z[k]).sum();
            z[i] = (row[i] - self.mean[i] - s) / self.chol[i * d + i];
        }
        let maha: f64 = z.iter().map(|v| v * v).sum();
        -0.5 * (maha + self.log_det) + self.log_prior
    }
}

/// Fits one Gaussian per class on (`x`, `y`) and scores `test` by the difference of the two
/// classes' decisions; errors if a class has fewer than 2 training rows or a regularised
/// covariance is singular.
pub fn fit_predict(p: &QdaParams, x: &Matrix, y: &[u8], test: &Matrix) -> Result<Prediction> {
    let models = [0u8, 1]
        .iter()
        .map(|&c| {
            let rows: Vec<usize> = (0..x.rows).filter(|&i| y[i] == c).collect();
            fit_class(x, &rows, x.rows, p.reg_param, c)
        })
        .collect::<Result<Vec<_>>>()?;
    let score: Vec<f64> =
        (0..test.rows).map(|i| models[1].decision(test.row(i)) - models[0].decision(test.row(i))).collect();
    let pred = score.iter().map(|&s| u8::from(s > 0.0)).collect();
    Ok(Prediction { pred, score })
}
