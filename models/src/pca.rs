//! PCA process monitor: the classical multivariate baseline plant data teams trust, Hotelling's
//! T² in the principal subspace and Q (SPE) in the residual, scored per shot.
//!
//! Fitted on standardised good shots: the correlation matrix's leading eigenvectors `P` (`F × k`,
//! the fewest whose eigenvalues explain [`PcaConfig::variance`] of the total, at most F − 1) with
//! eigenvalues `Λ`. For a shot `z` (standardised), `T² = zᵀ P Λ⁻¹ Pᵀ z` and `Q = ‖(I − P Pᵀ) z‖²`.
//! Both are split over the features exactly (their sums are T² and Q): T²'s complete
//! decomposition `z_j · (P Λ⁻¹ Pᵀ z)_j` (can be negative) and Q's squared residuals. Each is
//! divided by its mean on the training shots (`k` and `θ₁ = Σ_{j>k} λ_j`), so a feature's
//! contribution is `z_j·(M z)_j + (R z)_j²` with `M = P Λ⁻¹ Pᵀ / k` and `R = (I − P Pᵀ) / √θ₁`,
//! and the score is their mean: the combined index `T²/k + Q/θ₁` over F (about 2/F on
//! training shots). The threshold is calibrated on held-out shots like every family's; see
//! `docs/training.md`. The window's last shot is scored; the W − 1 before it are ignored (the
//! bundle contract's input stays `[N, W, F]`).

use crate::data::{Normalizer, Windows};
use crate::score::Scores;
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// How many components a [`Pca`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcaConfig {
    /// Share of the total variance the kept components explain, in (0, 1].
    pub variance: f64,
}

impl Default for PcaConfig {
    fn default() -> Self {
        PcaConfig { variance: 0.9 }
    }
}

/// A fitted PCA monitor; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Standardisation of the raw features (mean and population std of the training shots).
    pub norm: Normalizer,
    /// Kept components (k).
    pub components: usize,
    /// All eigenvalues of the correlation matrix, largest first (F).
    pub eigenvalues: Vec<f64>,
    /// Share of the variance the kept components explain.
    pub explained: f64,
    /// `M = P Λ⁻¹ Pᵀ / k`, `F × F` row-major (symmetric).
    pub t2: Vec<f32>,
    /// `R = (I − P Pᵀ) / √θ₁`, `F × F` row-major (symmetric).
    pub q: Vec<f32>,
}

impl Pca {
    /// Fits on `rows` of `f` raw features (row-major); rows with a non-finite value are skipped.
    pub fn fit(rows: &[f32], f: usize, cfg: &PcaConfig) -> anyhow::Result<Pca> {
        anyhow::ensure!(f > 0, "PCA needs at least one feature");
        anyhow::ensure!(
            cfg.variance > 0.0 && cfg.variance <= 1.0,
            "PCA variance share must be in (0, 1], not {}",
            cfg.variance
        );
        let clean: Vec<f32> =
            rows.chunks_exact(f).filter(|r| r.iter().all(|v| v.is_finite())).flatten().copied().collect();
        let n = clean.len() / f;
        anyhow::ensure!(n >= 2, "PCA needs at least 2 complete shots, got {n}");
        let norm = Normalizer::fit(&clean, f);
        let z = DMatrix::from_fn(n, f, |i, j| f64::from((clean[i * f + j] - norm.mean[j]) / norm.std[j]));
        let cov = (z.transpose() * &z) / n as f64;
        let eig = SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..f).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let eigenvalues: Vec<f64> = order.iter().map(|&i| eig.eigenvalues[i].max(0.0)).collect();
        let total: f64 = eigenvalues.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut k = 0;
        let mut acc = 0.0;
        while k < f && acc < cfg.variance * total {
            acc += eigenvalues[k];
            k += 1;
        }
        let k = k.clamp(1, (f - 1).max(1));
        let explained = eigenvalues[..k].iter().sum::<f64>() / total;
        // Floors keep a degenerate direction or an empty residual from dividing by zero.
        let floor = 1e-9 * total;
        let theta1 = eigenvalues[k..].iter().sum::<f64>().max(1e-6 * total);
        let p = DMatrix::from_fn(f, k, |i, c| eig.eigenvectors[(i, order[c])]);
        let inv =
            DMatrix::from_diagonal(&nalgebra::DVector::from_fn(k, |c, _| 1.0 / eigenvalues[c].max(floor)));
        let m = &p * inv * p.transpose() / k as f64;
        let r = (DMatrix::identity(f, f) - &p * p.transpose()) / theta1.sqrt();
        let flat = |a: &DMatrix<f64>| (0..f * f).map(|x| a[(x / f, x % f)] as f32).collect();
        Ok(Pca { t2: flat(&m), q: flat(&r), norm, components: k, eigenvalues, explained })
    }

    /// Features (F).
    pub fn features(&self) -> usize {
        self.norm.mean.len()
    }

    /// Scores and contributions of the last shot of each raw window.
    pub fn score(&self, windows: &Windows) -> Scores {
        let f = self.features();
        let mut out =
            Scores { score: Vec::with_capacity(windows.n), contributions: Vec::with_capacity(windows.n * f) };
        for i in 0..windows.n {
            let last = &windows.window(i)[(windows.w - 1) * f..];
            let z: Vec<f32> = (0..f).map(|j| (last[j] - self.norm.mean[j]) / self.norm.std[j]).collect();
            let row = |m: &[f32], j: usize| -> f32 { (0..f).map(|c| z[c] * m[c * f + j]).sum() };
            let start = out.contributions.len();
            for (j, zj) in z.iter().enumerate() {
                let r = row(&self.q, j);
                out.contributions.push(zj * row(&self.t2, j) + r * r);
            }
            out.score.push(out.contributions[start..].iter().sum::<f32>() / f as f32);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of three features where the third is the sum of the first two (plus a little noise).
    fn correlated(n: usize) -> Vec<f32> {
        let mut rows = Vec::new();
        for i in 0..n {
            let a = ((i * 37 % 101) as f32 / 101.0) - 0.5;
            let b = ((i * 59 % 103) as f32 / 103.0) - 0.5;
            let noise = ((i * 13 % 7) as f32 - 3.0) * 1e-3;
            rows.extend([a, b, a + b + noise]);
        }
        rows
    }

    fn one(values: [f32; 3]) -> Windows {
        Windows::new(values.to_vec(), 1, 1, 3).expect("shape")
    }

    #[test]
    fn a_broken_correlation_scores_far_above_training_shots() {
        let rows = correlated(500);
        let pca = Pca::fit(&rows, 3, &PcaConfig::default()).expect("fit");
        assert_eq!(pca.components, 2, "two directions explain the data: {:?}", pca.eigenvalues);
        let train = pca.score(&Windows::new(rows.clone(), 500, 1, 3).expect("shape"));
        let mean = train.score.iter().sum::<f32>() / 500.0;
        assert!((mean - 2.0 / 3.0).abs() < 0.05, "combined index over F is about 2/F on training: {mean}");
        // Each value within its range, but the third no longer the sum of the others.
        let broken = pca.score(&one([0.3, 0.3, -0.3]));
        assert!(broken.score[0] > 50.0 * mean, "Q catches it: {broken:?}");
        let big = broken.contributions.iter().copied().fold(f32::MIN, f32::max);
        assert!(big > 0.0 && broken.contributions.iter().sum::<f32>() / 3.0 - broken.score[0] < 1e-3);
    }

    #[test]
    fn contributions_sum_to_the_combined_index() {
        let rows = correlated(200);
        let pca = Pca::fit(&rows, 3, &PcaConfig { variance: 0.5 }).expect("fit");
        assert_eq!(pca.components, 1);
        let s = pca.score(&one([0.4, -0.2, 0.1]));
        let sum: f32 = s.contributions.iter().sum();
        assert!((sum / 3.0 - s.score[0]).abs() < 1e-5);
    }

    #[test]
    fn too_few_shots_or_a_bad_share_are_refused() {
        assert!(Pca::fit(&[1.0, 2.0, 3.0], 3, &PcaConfig::default()).is_err());
        assert!(Pca::fit(&correlated(10), 3, &PcaConfig { variance: 1.5 }).is_err());
        let with_nan: Vec<f32> = correlated(10).into_iter().map(|_| f32::NAN).collect();
        assert!(Pca::fit(&with_nan, 3, &PcaConfig::default()).is_err());
    }
}
