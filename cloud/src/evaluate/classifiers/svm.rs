//! RBF support vector machine: smartcore's `SVC` (an SMO-type solver with a fixed number of
//! passes) with `C` and `gamma`; the score is its decision function, as sklearn scores an
//! `SVC` without probabilities.

use super::{Prediction, smartcore_err};
use crate::evaluate::data::Matrix;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::svm::Kernels;
use smartcore::svm::svc::{SVC, SVCParameters};

/// Parameters, named as in sklearn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmParams {
    #[serde(rename = "C")]
    pub c: f64,
    pub gamma: f64,
}

pub fn fit_predict(p: &SvmParams, x: &Matrix, y: &[u8], test: &Matrix, seed: u64) -> Result<Prediction> {
    let xm = DenseMatrix::new(x.rows, x.cols, x.data.clone(), false).map_err(smartcore_err)?;
    let tm = DenseMatrix::new(test.rows, test.cols, test.data.clone(), false).map_err(smartcore_err)?;
    let ym: Vec<i32> = y.iter().map(|&v| i32::from(v)).collect();
    let params: SVCParameters<f64, i32, DenseMatrix<f64>, Vec<i32>> = SVCParameters::default()
        .with_c(p.c)
        .with_kernel(Kernels::rbf().with_gamma(p.gamma))
        .with_seed(Some(seed));
    let model = SVC::fit(&xm, &ym, &params).map_err(smartcore_err)?;
    let score = model.decision_function(&tm).map_err(smartcore_err)?;
    let pred = score.iter().map(|&s| u8::from(s > 0.0)).collect();
    Ok(Prediction { pred, score })
}
