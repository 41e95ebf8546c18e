//! L2-regularised logistic regression fitted by Newton's method (IRLS) with balanced class
//! weights — scikit-learn's `LogisticRegression(C=1, class_weight="balanced")` objective. The
//! gate's efficacy check needs class probabilities for PR-AUC, which smartcore 0.7's logistic
//! regression and random forest do not expose; this is 60 lines on nalgebra.

use nalgebra::{DMatrix, DVector};

/// A fitted model on standardized features.
#[derive(Debug, Clone)]
pub struct Logistic {
    weights: DVector<f64>,
    bias: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Logistic {
    /// Fits on `rows` with labels `y` (true = positive). `c` is the inverse regularisation.
    pub fn fit(rows: &[Vec<f64>], y: &[bool], c: f64) -> Self {
        let n = rows.len();
        let d = rows.first().map_or(0, Vec::len);
        let pos = y.iter().filter(|&&t| t).count().max(1) as f64;
        let neg = (n as f64 - pos).max(1.0);
        let sample_w: Vec<f64> =
            y.iter().map(|&t| if t { n as f64 / (2.0 * pos) } else { n as f64 / (2.0 * neg) }).collect();
        // Parameters: d weights then the bias (not penalised).
        let mut theta = DVector::<f64>::zeros(d + 1);
        let x = DMatrix::from_fn(n, d + 1, |i, j| if j < d { rows[i][j] } else { 1.0 });
        for _ in 0..50 {
            let z = &x * &theta;
            let mut grad = DVector::<f64>::zeros(d + 1);
            let mut hess = DMatrix::<f64>::zeros(d + 1, d + 1);
            for i in 0..n {
                let p = sigmoid(z[i]);
                let r = sample_w[i] * c * (p - f64::from(u8::from(y[i])));
                let h = sample_w[i] * c * (p * (1.0 - p)).max(1e-12);
                let xi = x.row(i);
                grad += xi.transpose() * r;
                hess += xi.transpose() * xi * h;
            }
            for j in 0..d {
                grad[j] += theta[j];
                hess[(j, j)] += 1.0;
            }
            hess[(d, d)] += 1e-9;
            let Some(step) = hess.cholesky().map(|ch| ch.solve(&grad)) else { break };
            theta -= &step;
            if step.amax() < 1e-8 {
                break;
            }
        }
        Logistic { weights: theta.rows(0, d).into_owned(), bias: theta[d] }
    }

    /// Probability of the positive class.
    pub fn predict_proba(&self, row: &[f64]) -> f64 {
        let z: f64 = row.iter().zip(self.weights.iter()).map(|(a, b)| a * b).sum::<f64>() + self.bias;
        sigmoid(z)
    }
}
