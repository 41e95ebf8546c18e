//! k-nearest neighbours: smartcore's `KNNClassifier` (exhaustive `LinearSearch`, so neighbour
//! sets are exact) with uniform or inverse-distance weights and euclidean, manhattan or
//! minkowski (p = 2, sklearn's default) distance; the class-1 probability is the score.

use super::{Prediction, smartcore_err};
use crate::data::Matrix;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use smartcore::algorithm::neighbour::KNNAlgorithmName;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::metrics::distance::{Distance, Distances};
use smartcore::neighbors::KNNWeightFunction;
use smartcore::neighbors::knn_classifier::{KNNClassifier, KNNClassifierParameters};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// How neighbours' votes are weighted (sklearn's `weights`).
pub enum Weights {
    /// Every neighbour counts the same.
    Uniform,
    /// Neighbours count by the inverse of their distance.
    Distance,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// Distance between rows (sklearn's `metric`).
pub enum Metric {
    /// Straight-line (L2) distance.
    Euclidean,
    /// Sum of absolute differences (L1).
    Manhattan,
    /// Minkowski with p = 2 (sklearn's default p), i.e. euclidean computed another way.
    Minkowski,
}

/// Parameters, named as in sklearn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnParams {
    /// Number of neighbours `k`; must not exceed the training rows.
    pub n_neighbors: usize,
    /// How the neighbours' votes are weighted.
    pub weights: Weights,
    /// Distance used to find the neighbours.
    pub metric: Metric,
}

/// Fits on (`x`, `y`) and scores `test` by class-1 probability; errors if `n_neighbors` exceeds
/// the training rows or smartcore fails.
pub fn fit_predict(p: &KnnParams, x: &Matrix, y: &[u8], test: &Matrix) -> Result<Prediction> {
    if p.n_neighbors > x.rows {
        bail!("KNN: n_neighbors {} exceeds the {} training rows", p.n_neighbors, x.rows);
    }
    let params = KNNClassifierParameters::default()
        .with_k(p.n_neighbors)
        .with_algorithm(KNNAlgorithmName::LinearSearch)
        .with_weight(match p.weights {
            Weights::Uniform => KNNWeightFunction::Uniform,
            Weights::Distance => KNNWeightFunction::Distance,
        });
    match p.metric {
        Metric::Euclidean => run(params.with_distance(Distances::euclidian()), x, y, test),
        Metric::Manhattan => run(params.with_distance(Distances::manhattan()), x, y, test),
        Metric::Minkowski => run(params.with_distance(Distances::minkowski(2)), x, y, test),
    }
}

fn run<D: Distance<Vec<f64>>>(
    params: KNNClassifierParameters<f64, D>,
    x: &Matrix,
    y: &[u8],
    test: &Matrix,
) -> Result<Prediction> {
    let xm = DenseMatrix::new(x.rows, x.cols, x.data.clone(), false).map_err(smartcore_err)?;
    let tm = DenseMatrix::new(test.rows, test.cols, test.data.clone(), false).map_err(smartcore_err)?;
    let ym: Vec<u32> = y.iter().map(|&v| u32::from(v)).collect();
    let model: KNNClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>, D> =
        KNNClassifier::fit(&xm, &ym, params).map_err(smartcore_err)?;
    // Classes are the sorted distinct labels: column 1 is class 1 (both are in every fold).
    let proba = model.predict_proba(&tm).map_err(smartcore_err)?;
    // smartcore normalises by multiplying with 1/Σw, which can leave 1 − 1 ulp where sklearn's
    // division gives exactly 1; rounding to 1e-12 keeps sklearn's ties (PR-AUC depends on them).
    let score: Vec<f64> =
        proba.iter().map(|p| (p.get(1).copied().unwrap_or(0.0) * 1e12).round() / 1e12).collect();
    Ok(Prediction::from_proba(score))
}
