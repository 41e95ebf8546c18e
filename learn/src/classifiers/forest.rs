//! Random forest on our own [`tree`](super::tree) (smartcore's forest has no class
//! probabilities, which PR-AUC needs, and its trees lack `ccp_alpha`): bootstrap samples as
//! integer row weights, `max_features` per split, class-1 probability averaged over the trees
//! (sklearn's `RandomForestClassifier.predict_proba`).

use super::Prediction;
use super::tree::{Tree, TreeParams, child_seed};
use crate::data::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Parameters, named as in sklearn. Unlike sklearn's forest, a `max_features` left out of the
/// JSON means all features (the tree's default); the grids always set it (`sqrt` or `log2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Number of trees, each fitted on its own bootstrap sample.
    pub n_estimators: usize,
    #[serde(flatten)]
    /// Parameters of every tree (flattened into the same JSON object).
    pub tree: TreeParams,
}

/// Fits `n_estimators` trees on bootstrap samples of (`x`, `y`) and scores `test` by the
/// class-1 probability averaged over the trees; `seed` fixes the samples and feature draws.
pub fn fit_predict(p: &ForestParams, x: &Matrix, y: &[u8], test: &Matrix, seed: u64) -> Prediction {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut score = vec![0.0; test.rows];
    for _ in 0..p.n_estimators {
        let mut tree_rng = ChaCha8Rng::seed_from_u64(child_seed(&mut rng));
        let mut w = vec![0.0; x.rows];
        for _ in 0..x.rows {
            w[tree_rng.random_range(0..x.rows)] += 1.0;
        }
        let tree = Tree::fit(x, y, &w, &p.tree, &mut tree_rng);
        for (i, s) in score.iter_mut().enumerate() {
            *s += tree.proba(test.row(i));
        }
    }
    let n = p.n_estimators.max(1) as f64;
    score.iter_mut().for_each(|s| *s /= n);
    Prediction::from_proba(score)
}
