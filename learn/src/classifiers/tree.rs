//! CART decision tree for two classes, written here because no crate offers what the grid
//! and the ensembles need together: smartcore's and linfa's trees have no `max_features`
//! and no minimal cost-complexity pruning (`ccp_alpha`), and smartcore's takes no sample
//! weights (which AdaBoost and bootstrap counts need). It follows scikit-learn's
//! `DecisionTreeClassifier`: best split over a random subset of features (drawn until
//! `max_features` non-constant ones were seen), thresholds at midpoints, weighted Gini or
//! entropy (log₂), then pruning of the weakest link while its effective alpha ≤ `ccp_alpha`.
//! Among equally good splits the first found wins; sklearn's order is its own random
//! permutation, so ties can resolve differently (one reason its tolerance is not zero).

use crate::data::Matrix;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Impurity measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// Gini impurity `1 − Σ p²`.
    Gini,
    /// Shannon entropy in bits (log₂).
    Entropy,
}

/// How many features each split looks at. The original grid's `auto` meant `sqrt` for
/// classifiers (and was removed from sklearn 1.3); it is accepted here as a name for `sqrt`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxFeatures {
    #[serde(alias = "auto")]
    /// √(number of features), rounded down, at least 1.
    Sqrt,
    /// log₂(number of features), rounded down, at least 1.
    Log2,
    /// All features (sklearn's `None`).
    All,
}

impl MaxFeatures {
    /// How many features a split draws out of `n_features` (at least 1 for `Sqrt` and `Log2`).
    pub fn count(self, n_features: usize) -> usize {
        let n = n_features as f64;
        match self {
            MaxFeatures::Sqrt => (n.sqrt() as usize).max(1),
            MaxFeatures::Log2 => (n.log2() as usize).max(1),
            MaxFeatures::All => n_features,
        }
    }
}

fn default_all() -> MaxFeatures {
    MaxFeatures::All
}

/// Parameters, named as in sklearn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeParams {
    /// Impurity measure splits minimise.
    pub criterion: Criterion,
    /// Depth at which nodes stop splitting (the root is depth 0); `None` means no limit.
    pub max_depth: Option<usize>,
    #[serde(default = "default_all")]
    /// Features each split considers; defaults to all of them.
    pub max_features: MaxFeatures,
    #[serde(default)]
    /// Cost-complexity pruning strength (≥ 0); 0, the default, prunes nothing.
    pub ccp_alpha: f64,
}

#[derive(Debug, Clone)]
struct Node {
    /// Weighted class totals of the training rows that reach this node.
    counts: [f64; 2],
    impurity: f64,
    /// (feature, threshold, left child, right child); rows with x ≤ threshold go left.
    split: Option<(usize, f64, usize, usize)>,
}

/// A fitted tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
}

fn impurity(c: [f64; 2], criterion: Criterion) -> f64 {
    let total = c[0] + c[1];
    if total <= 0.0 {
        return 0.0;
    }
    let (p0, p1) = (c[0] / total, c[1] / total);
    match criterion {
        Criterion::Gini => 1.0 - p0 * p0 - p1 * p1,
        Criterion::Entropy => [p0, p1].iter().filter(|&&p| p > 0.0).map(|&p| -p * p.log2()).sum(),
    }
}

/// Smallest gap between two values that sklearn still splits between.
const FEATURE_THRESHOLD: f64 = 1e-7;

struct Builder<'a> {
    x: &'a Matrix,
    y: &'a [u8],
    w: &'a [f64],
    p: &'a TreeParams,
    max_features: usize,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    fn counts(&self, idx: &[usize]) -> [f64; 2] {
        let mut c = [0.0; 2];
        for &i in idx {
            c[usize::from(self.y[i] == 1)] += self.w[i];
        }
        c
    }

    /// Builds the subtree of the rows `idx` at `depth`, returns its node index.
    fn build(&mut self, idx: &mut [usize], depth: usize, rng: &mut ChaCha8Rng) -> usize {
        let counts = self.counts(idx);
        let imp = impurity(counts, self.p.criterion);
        let id = self.nodes.len();
        self.nodes.push(Node { counts, impurity: imp, split: None });
        let at_max_depth = self.p.max_depth.is_some_and(|d| depth >= d);
        if at_max_depth || idx.len() < 2 || imp <= 0.0 {
            return id;
        }
        let Some((feature, threshold)) = self.best_split(idx, counts, rng) else {
            return id;
        };
        let mid = partition(idx, |i| self.x.get(i, feature) <= threshold);
        let (left_idx, right_idx) = idx.split_at_mut(mid);
        let left = self.build(left_idx, depth + 1, rng);
        let right = self.build(right_idx, depth + 1, rng);
        self.nodes[id].split = Some((feature, threshold, left, right));
        id
    }

    fn best_split(&self, idx: &[usize], total: [f64; 2], rng: &mut ChaCha8Rng) -> Option<(usize, f64)> {
        let mut features: Vec<usize> = (0..self.x.cols).collect();
        features.shuffle(rng);
        let mut best: Option<(f64, usize, f64)> = None;
        let mut seen = 0usize;
        let mut sorted: Vec<(f64, usize)> = Vec::with_capacity(idx.len());
        for f in features {
            if seen >= self.max_features {
                break;
            }
            sorted.clear();
            sorted.extend(idx.iter().map(|&i| (self.x.get(i, f), i)));
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            if sorted[sorted.len() - 1].0 <= sorted[0].0 + FEATURE_THRESHOLD {
                continue; // constant here: does not count towards max_features
            }
            seen += 1;
            let mut left = [0.0; 2];
            for k in 0..sorted.len() - 1 {
                let i = sorted[k].1;
                left[usize::from(self.y[i] == 1)] += self.w[i];
                if sorted[k + 1].0 <= sorted[k].0 + FEATURE_THRESHOLD {
                    continue;
                }
                let right = [total[0] - left[0], total[1] - left[1]];
                let (wl, wr) = (left[0] + left[1], right[0] + right[1]);
                let proxy = -wl * impurity(left, self.p.criterion) - wr * impurity(right, self.p.criterion);
                if best.is_none_or(|(b, _, _)| proxy > b) {
                    let mut thr = (sorted[k].0 + sorted[k + 1].0) / 2.0;
                    if thr == sorted[k + 1].0 || !thr.is_finite() {
                        thr = sorted[k].0;
                    }
                    best = Some((proxy, f, thr));
                }
            }
        }
        best.map(|(_, f, t)| (f, t))
    }
}

/// Moves the rows for which `pred` holds to the front; returns how many there are.
fn partition(idx: &mut [usize], pred: impl Fn(usize) -> bool) -> usize {
    let mut mid = 0;
    for k in 0..idx.len() {
        if pred(idx[k]) {
            idx.swap(mid, k);
            mid += 1;
        }
    }
    mid
}

impl Tree {
    /// Fits a tree to the rows of `x` with labels `y` (0/1) and weights `w` (rows of weight 0
    /// are left out, as bootstrap samples that were not drawn).
    pub fn fit(x: &Matrix, y: &[u8], w: &[f64], p: &TreeParams, rng: &mut ChaCha8Rng) -> Tree {
        let mut idx: Vec<usize> = (0..x.rows).filter(|&i| w[i] > 0.0).collect();
        let mut b = Builder { x, y, w, p, max_features: p.max_features.count(x.cols), nodes: Vec::new() };
        b.build(&mut idx, 0, rng);
        let mut tree = Tree { nodes: b.nodes };
        if p.ccp_alpha > 0.0 {
            tree.prune(p.ccp_alpha);
        }
        tree
    }

    /// Minimal cost-complexity pruning as sklearn's `_cost_complexity_prune`: repeatedly
    /// collapse the internal node with the smallest effective alpha while that alpha ≤ `alpha`.
    fn prune(&mut self, alpha: f64) {
        let total = self.nodes[0].counts[0] + self.nodes[0].counts[1];
        let r = |n: &Node| (n.counts[0] + n.counts[1]) / total * n.impurity;
        loop {
            // (risk of the subtree's leaves, number of leaves) for every node, bottom-up.
            let mut branch = vec![(0.0, 0usize); self.nodes.len()];
            for id in (0..self.nodes.len()).rev() {
                branch[id] = match self.nodes[id].split {
                    None => (r(&self.nodes[id]), 1),
                    Some((_, _, l, rt)) => (branch[l].0 + branch[rt].0, branch[l].1 + branch[rt].1),
                };
            }
            let mut weakest: Option<(f64, usize)> = None;
            self.for_each_reachable(|id, node| {
                if node.split.is_some() {
                    let g = (r(node) - branch[id].0) / (branch[id].1 as f64 - 1.0);
                    if weakest.is_none_or(|(b, _)| g < b) {
                        weakest = Some((g, id));
                    }
                }
            });
            match weakest {
                Some((g, id)) if g <= alpha => self.nodes[id].split = None,
                _ => break,
            }
        }
    }

    fn for_each_reachable(&self, mut f: impl FnMut(usize, &Node)) {
        let mut stack = vec![0usize];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id];
            f(id, node);
            if let Some((_, _, l, r)) = node.split {
                stack.push(r);
                stack.push(l);
            }
        }
    }

    /// Probability of class 1 for one row (the weighted share of class 1 in its leaf).
    pub fn proba(&self, row: &[f64]) -> f64 {
        let mut id = 0;
        while let Some((f, t, l, r)) = self.nodes[id].split {
            id = if row[f] <= t { l } else { r };
        }
        let c = self.nodes[id].counts;
        let total = c[0] + c[1];
        if total > 0.0 { c[1] / total } else { 0.0 }
    }

    /// Number of leaves reachable from the root.
    pub fn leaves(&self) -> usize {
        let mut n = 0;
        self.for_each_reachable(|_, node| n += usize::from(node.split.is_none()));
        n
    }
}

/// A seed for a tree's own generator drawn from `rng`.
pub fn child_seed(rng: &mut ChaCha8Rng) -> u64 {
    rng.random()
}
