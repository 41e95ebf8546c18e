//! AdaBoost (SAMME, sklearn's only algorithm since 1.6) over depth-1 trees of our own
//! [`tree`](super::tree) — no crate offers AdaBoost (neither smartcore nor linfa), and the
//! stumps need sample weights. Follows `AdaBoostClassifier._boost_discrete`: weighted error,
//! estimator weight `lr·ln((1−err)/err)` (the `ln(K−1)` term is 0 for two classes), stop at a
//! perfect stump (weight 1) or at one no better than chance; the decision function is the
//! weight-normalised vote Σ wᵢ·(±1), class 1 where it is > 0.

use super::Prediction;
use super::tree::{Criterion, MaxFeatures, Tree, TreeParams};
use crate::data::Matrix;
use anyhow::{Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Parameters, named as in sklearn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaBoostParams {
    /// Maximum number of boosting rounds (stumps); boosting may stop earlier.
    pub n_estimators: usize,
    /// Shrinks each stump's weight `ln((1−err)/err)` by this factor (> 0).
    pub learning_rate: f64,
}

/// Fits up to `n_estimators` stumps on (`x`, `y`) and scores `test` by the normalised weighted vote
/// in [−1, 1]; errors if the first stump is no better than chance (weighted error ≥ ½).
pub fn fit_predict(p: &AdaBoostParams, x: &Matrix, y: &[u8], test: &Matrix, seed: u64) -> Result<Prediction> {
    let stump = TreeParams {
        criterion: Criterion::Gini,
        max_depth: Some(1),
        max_features: MaxFeatures::All,
        ccp_alpha: 0.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = x.rows;
    let mut w = vec![1.0 / n as f64; n];
    let mut ensemble: Vec<(Tree, f64)> = Vec::new();
    for round in 0..p.n_estimators {
        let tree = Tree::fit(x, y, &w, &stump, &mut rng);
        let wrong: Vec<bool> = (0..n).map(|i| u8::from(tree.proba(x.row(i)) > 0.5) != y[i]).collect();
        let total: f64 = w.iter().sum();
        let err = wrong.iter().zip(&w).filter(|(b, _)| **b).map(|(_, w)| w).sum::<f64>() / total;
        if err <= 0.0 {
            ensemble.push((tree, 1.0));
            break;
        }
        if err >= 0.5 {
            if ensemble.is_empty() {
                bail!("AdaBoost: the first stump is no better than chance (weighted error {err:.3})");
            }
            break;
        }
        let alpha = p.learning_rate * ((1.0 - err) / err).ln();
        ensemble.push((tree, alpha));
        if round + 1 < p.n_estimators {
            for (wi, &bad) in w.iter_mut().zip(&wrong) {
                if bad && *wi > 0.0 {
                    *wi = (wi.ln() + alpha).exp();
                }
            }
            let sum: f64 = w.iter().sum();
            if sum <= 0.0 {
                break;
            }
            w.iter_mut().for_each(|wi| *wi /= sum);
        }
    }
    let norm: f64 = ensemble.iter().map(|(_, a)| a).sum();
    let score: Vec<f64> = (0..test.rows)
        .map(|i| {
            let vote: f64 =
                ensemble.iter().map(|(t, a)| if t.proba(test.row(i)) > 0.5 { *a } else { -*a }).sum();
            vote / norm
        })
        .collect();
    let pred = score.iter().map(|&s| u8::from(s > 0.0)).collect();
    Ok(Prediction { pred, score })
}
