//! Classical (Torgerson) MDS to a few dimensions: the eigendecomposition of the double-centred
//! squared-distance matrix `B = −½·J·D²·J` (nalgebra's `SymmetricEigen`), coordinates
//! `v_k·√λ_k` for the largest eigenvalues. Deterministic: eigenpairs are sorted by eigenvalue
//! and each axis is flipped so that its entry of largest magnitude is positive (ties: the
//! first). The reference used sklearn's metric SMACOF with a random start, which is neither.
//!
//! Cost is bounded by landmark MDS (de Silva & Tenenbaum 2004): with more than
//! [`MdsConfig::max_exact`] points, a seeded sample of [`MdsConfig::landmarks`] points is
//! embedded exactly and every point is placed by distance-based triangulation against them,
//! `x = −½·L#·(δ² − mean δ²)`. Time O(n·m + m³) and memory O(n·m) instead of O(n³) and O(n²).

use anyhow::{Result, ensure};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of the embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdsConfig {
    /// Above this many points, landmark MDS is used.
    pub max_exact: usize,
    /// Number of landmarks (seeded sample).
    pub landmarks: usize,
}

impl Default for MdsConfig {
    fn default() -> Self {
        MdsConfig { max_exact: 800, landmarks: 400 }
    }
}

/// An embedding: one row of `dims` coordinates per point.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Coordinates of each input point, in input order, `dims` values each.
    pub coords: Vec<Vec<f64>>,
    /// Eigenvalues of the kept axes, largest first.
    pub eigenvalues: Vec<f64>,
    /// Whether landmark MDS was used.
    pub landmark: bool,
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Embeds `points` into `dims` dimensions (see the module doc). `seed` picks the landmarks.
pub fn embed(points: &[Vec<f64>], dims: usize, cfg: &MdsConfig, seed: u64) -> Result<Embedding> {
    let n = points.len();
    ensure!(dims > 0, "MDS needs at least one dimension");
    ensure!(points.iter().flatten().all(|v| v.is_finite()), "MDS input holds a non-finite value");
    if n <= cfg.max_exact.max(dims + 1) {
        let (coords, eigenvalues, _) = classical(points, dims);
        return Ok(Embedding { coords, eigenvalues, landmark: false });
    }
    ensure!(cfg.landmarks > dims, "MDS needs more landmarks than dimensions");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = sample(&mut rng, n, cfg.landmarks.min(n)).into_vec();
    idx.sort_unstable();
    let marks: Vec<Vec<f64>> = idx.iter().map(|&i| points[i].clone()).collect();
    let (_, eigenvalues, vectors) = classical(&marks, dims);
    let m = marks.len();
    // Column means of the landmarks' squared distances.
    let d2: Vec<Vec<f64>> = marks.iter().map(|a| marks.iter().map(|b| sq_dist(a, b)).collect()).collect();
    let mean: Vec<f64> = (0..m).map(|j| d2.iter().map(|r| r[j]).sum::<f64>() / m as f64).collect();
    let coords = points
        .iter()
        .map(|p| {
            let delta: Vec<f64> = marks.iter().zip(&mean).map(|(l, mu)| sq_dist(p, l) - mu).collect();
            (0..eigenvalues.len())
                .map(|k| {
                    let lam = eigenvalues[k];
                    if lam <= 0.0 {
                        return 0.0;
                    }
                    let dot: f64 = (0..m).map(|i| vectors[(i, k)] * delta[i]).sum();
                    -0.5 * dot / lam.sqrt()
                })
                .collect()
        })
        .collect();
    Ok(Embedding { coords, eigenvalues, landmark: true })
}

/// Exact classical MDS: coordinates, the kept eigenvalues (negative ones clamped to 0) and
/// their eigenvectors (sign-fixed, as columns).
fn classical(points: &[Vec<f64>], dims: usize) -> (Vec<Vec<f64>>, Vec<f64>, DMatrix<f64>) {
    let n = points.len();
    if n == 0 {
        return (Vec::new(), vec![0.0; dims], DMatrix::zeros(0, dims));
    }
    let mut b = DMatrix::from_fn(n, n, |i, j| sq_dist(&points[i], &points[j]));
    let rows: Vec<f64> = (0..n).map(|i| b.row(i).sum() / n as f64).collect();
    let all = rows.iter().sum::<f64>() / n as f64;
    for i in 0..n {
        for j in 0..n {
            b[(i, j)] = -0.5 * (b[(i, j)] - rows[i] - rows[j] + all);
        }
    }
    let eig = SymmetricEigen::new(b);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &c| eig.eigenvalues[c].total_cmp(&eig.eigenvalues[a]).then(a.cmp(&c)));
    let mut vectors = DMatrix::zeros(n, dims);
    let mut values = Vec::with_capacity(dims);
    for (k, &col) in order.iter().take(dims).enumerate() {
        let mut v: DVector<f64> = eig.eigenvectors.column(col).into_owned();
        let mut big = 0;
        for i in 1..n {
            if v[i].abs() > v[big].abs() + 1e-12 {
                big = i;
            }
        }
        if v[big] < 0.0 {
            v = -v;
        }
        vectors.set_column(k, &v);
        values.push(eig.eigenvalues[col].max(0.0));
    }
    while values.len() < dims {
        values.push(0.0);
    }
    let coords = (0..n).map(|i| (0..dims).map(|k| vectors[(i, k)] * values[k].sqrt()).collect()).collect();
    (coords, values, vectors)
}
