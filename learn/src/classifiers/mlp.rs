//! Multi-layer perceptron with one ReLU hidden layer and a logistic output, trained by
//! L-BFGS ([`lbfgs`]) on the mean log-loss plus `alpha/(2n)·‖W‖²` — sklearn's
//! `MLPClassifier(solver="lbfgs")`, the original's only solver. Written here because neither
//! smartcore nor linfa has an MLP, and burn (in `models/`) has no L-BFGS. Weights start
//! Glorot-uniform (bound √(6/(fan_in+fan_out)), biases too) from a seeded generator, so the
//! fitted net is not sklearn's: its scores match only within a tolerance.

use super::Prediction;
use super::lbfgs;
use crate::data::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

fn default_alpha() -> f64 {
    1.0
}

fn default_max_iter() -> usize {
    3000
}

/// Parameters, named as in sklearn (`hidden_layer_sizes` is one layer's width, as in the
/// original grid); `alpha` defaults to 1 and `max_iter` to 3000 as the original fixed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpParams {
    /// Number of units in the single ReLU hidden layer (0 is treated as 1).
    pub hidden_layer_sizes: usize,
    #[serde(default = "default_alpha")]
    /// L2 penalty strength on the weights (the loss adds `alpha/(2n)·‖W‖²`).
    pub alpha: f64,
    #[serde(default = "default_max_iter")]
    /// Maximum number of L-BFGS iterations.
    pub max_iter: usize,
}

struct Net<'a> {
    x: &'a Matrix,
    y: &'a [u8],
    h: usize,
    alpha: f64,
}

impl Net<'_> {
    /// Offsets of W1 (d×h), b1 (h), w2 (h), b2 (1) in the parameter vector.
    fn len(&self) -> usize {
        self.x.cols * self.h + 2 * self.h + 1
    }

    fn forward(&self, w: &[f64], row: &[f64], hidden: &mut [f64]) -> f64 {
        let (d, h) = (self.x.cols, self.h);
        let (w1, rest) = w.split_at(d * h);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(h);
        hidden.copy_from_slice(b1);
        for (xi, wrow) in row.iter().zip(w1.chunks_exact(h)) {
            hidden.iter_mut().zip(wrow).for_each(|(a, w)| *a += xi * w);
        }
        hidden.iter_mut().for_each(|a| *a = a.max(0.0));
        b2[0] + hidden.iter().zip(w2).map(|(a, w)| a * w).sum::<f64>()
    }

    fn loss_grad(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let (d, h, n) = (self.x.cols, self.h, self.x.rows as f64);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut hidden = vec![0.0; h];
        let mut loss = 0.0;
        let w2 = &w[d * h + h..d * h + 2 * h];
        for i in 0..self.x.rows {
            let row = self.x.row(i);
            let z = self.forward(w, row, &mut hidden);
            let p = (1.0 / (1.0 + (-z).exp())).clamp(f64::EPSILON, 1.0 - f64::EPSILON);
            let t = f64::from(self.y[i]);
            loss -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
            let dz = (p - t) / n;
            let (gw1, rest) = grad.split_at_mut(d * h);
            let (gb1, rest) = rest.split_at_mut(h);
            let (gw2, gb2) = rest.split_at_mut(h);
            gb2[0] += dz;
            for j in 0..h {
                gw2[j] += dz * hidden[j];
                if hidden[j] > 0.0 {
                    let dh = dz * w2[j];
                    gb1[j] += dh;
                    for (k, xk) in row.iter().enumerate() {
                        gw1[k * h + j] += dh * xk;
                    }
                }
            }
        }
        let mut penalty = 0.0;
        let weights = (0..d * h).chain(d * h + h..d * h + 2 * h);
        for k in weights {
            penalty += w[k] * w[k];
            grad[k] += self.alpha / n * w[k];
        }
        loss / n + 0.5 * self.alpha / n * penalty
    }

    fn init(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let (d, h) = (self.x.cols, self.h);
        let b1 = (6.0 / (d + h) as f64).sqrt();
        let b2 = (6.0 / (h + 1) as f64).sqrt();
        let mut w = Vec::with_capacity(self.len());
        w.extend((0..d * h + h).map(|_| rng.random_range(-b1..b1)));
        w.extend((0..h + 1).map(|_| rng.random_range(-b2..b2)));
        w
    }
}

/// Fits the net on (`x`, `y`) with weights seeded by `seed` and scores `test` by its class-1
/// probability.
pub fn fit_predict(p: &MlpParams, x: &Matrix, y: &[u8], test: &Matrix, seed: u64) -> Prediction {
    let net = Net { x, y, h: p.hidden_layer_sizes.max(1), alpha: p.alpha };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w0 = net.init(&mut rng);
    let fitted = lbfgs::minimize(|w, g| net.loss_grad(w, g), w0, p.max_iter, 15_000, 1e-4);
    let mut hidden = vec![0.0; net.h];
    let score: Vec<f64> = (0..test.rows)
        .map(|i| 1.0 / (1.0 + (-net.forward(&fitted.x, test.row(i), &mut hidden)).exp()))
        .collect();
    Prediction::from_proba(score)
}
