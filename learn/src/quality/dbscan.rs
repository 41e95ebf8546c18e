//! DBSCAN on 2-D points and the reference's grid search over it.
//!
//! [`dbscan`] follows scikit-learn: a point is a core point when at least `min_samples` points
//! (itself included) lie within `eps` (Euclidean, inclusive); clusters grow from core points in
//! index order; points reached by no cluster are noise (−1). Neighbours are found by a sweep over
//! the points sorted by x, so a fit costs O(n log n + pairs within eps).
//!
//! [`grid`] is the reference's selection (`customize`): for eps in 1..=9, then min_samples in
//! 1..=9, accept a labelling only when it has **exactly two distinct labels** and **strictly
//! more noise** than the best so far (which starts at "all 0", noise 0). The result is the
//! one-cluster-plus-noise labelling with the most noise, or none. (Written here because linfa's
//! DBSCAN would bring ndarray and a spatial index for 2-D data of a few hundred points.)

use serde::{Deserialize, Serialize};

/// Label of a noise point.
pub const NOISE: i32 = -1;

/// Cluster labels (0, 1, … in order of discovery; −1 noise) of `points` (x, y).
pub fn dbscan(points: &[[f64; 2]], eps: f64, min_samples: usize) -> Vec<i32> {
    let neighbours = neighbours(points, eps);
    cluster(&neighbours, min_samples)
}

/// For every point, the indices of the points within `eps` of it, itself included, ascending.
pub fn neighbours(points: &[[f64; 2]], eps: f64) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| points[a][0].total_cmp(&points[b][0]).then(a.cmp(&b)));
    let mut out = vec![Vec::new(); n];
    let eps2 = eps * eps;
    for (pos, &i) in order.iter().enumerate() {
        for &j in &order[pos..] {
            let dx = points[j][0] - points[i][0];
            if dx > eps {
                break;
            }
            let dy = points[j][1] - points[i][1];
            if dx * dx + dy * dy <= eps2 {
                out[i].push(j);
                if i != j {
                    out[j].push(i);
                }
            }
        }
    }
    for list in &mut out {
        list.sort_unstable();
    }
    out
}

/// DBSCAN's expansion over precomputed neighbour lists.
pub fn cluster(neighbours: &[Vec<usize>], min_samples: usize) -> Vec<i32> {
    let n = neighbours.len();
    let core: Vec<bool> = neighbours.iter().map(|l| l.len() >= min_samples).collect();
    let mut labels = vec![NOISE; n];
    let mut next = 0;
    let mut stack = Vec::new();
    for start in 0..n {
        if labels[start] != NOISE || !core[start] {
            continue;
        }
        labels[start] = next;
        stack.push(start);
        while let Some(p) = stack.pop() {
            for &q in &neighbours[p] {
                if labels[q] == NOISE {
                    labels[q] = next;
                    if core[q] {
                        stack.push(q);
                    }
                }
            }
        }
        next += 1;
    }
    labels
}

/// The grid searched (the reference's: 1..=9 both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridConfig {
    /// Neighbourhood radii tried, in order (Euclidean distance in the points' units).
    pub eps: Vec<f64>,
    /// Minimum neighbourhood sizes (the point itself included) tried for each `eps`, in order.
    pub min_samples: Vec<usize>,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig { eps: (1..=9).map(f64::from).collect(), min_samples: (1..=9).collect() }
    }
}

/// The labelling the grid chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridChoice {
    /// Radius of the chosen labelling.
    pub eps: f64,
    /// Minimum neighbourhood size of the chosen labelling.
    pub min_samples: usize,
    /// Number of points labelled noise.
    pub noise: usize,
    #[serde(skip)]
    /// Label per point: 0 for the cluster, [`NOISE`] for noise (not serialised).
    pub labels: Vec<i32>,
}

/// The reference's selection (see the module doc); `None` when no candidate qualifies.
pub fn grid(points: &[[f64; 2]], cfg: &GridConfig) -> Option<GridChoice> {
    let mut best: Option<GridChoice> = None;
    for &eps in &cfg.eps {
        let nb = neighbours(points, eps);
        for &ms in &cfg.min_samples {
            let labels = cluster(&nb, ms);
            let noise = labels.iter().filter(|&&l| l == NOISE).count();
            let distinct = {
                let mut seen: Vec<i32> = labels.clone();
                seen.sort_unstable();
                seen.dedup();
                seen.len()
            };
            if distinct == 2 && noise > best.as_ref().map_or(0, |b| b.noise) {
                best = Some(GridChoice { eps, min_samples: ms, noise, labels });
            }
        }
    }
    best
}
