//! The original's eight classifiers behind one call, [`fit_predict`]: fit on training rows,
//! return class predictions and a ranking score for the held-out rows (the score sklearn's
//! `average_precision` scorer would use: the decision function where the estimator has one —
//! SVM, AdaBoost, QDA — else the class-1 probability).
//!
//! Where each comes from:
//! - [`knn`]: smartcore (`KNNClassifier`).
//! - [`svm`]: our SMO after libsvm (smartcore's `SVC` was 100× slower than libsvm).
//! - [`tree`], [`forest`], [`adaboost`]: our CART (smartcore's and linfa's trees lack
//!   `max_features`, `ccp_alpha`, sample weights; smartcore's forest has no probabilities;
//!   no crate has AdaBoost).
//! - [`nb`]: our Gaussian NB (smartcore's has no `var_smoothing`).
//! - [`qda`]: ours (no crate has one). [`mlp`] + [`lbfgs`]: ours (no crate has an MLP with L-BFGS).
//!
//! All are binary: labels 0 (good) and 1 (defective).

pub mod adaboost;
pub mod forest;
pub mod knn;
pub mod lbfgs;
pub mod mlp;
pub mod nb;
pub mod qda;
pub mod svm;
pub mod tree;

use super::data::Matrix;
use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

/// Predicted classes and ranking scores (higher = more likely class 1) for held-out rows.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Predicted class per held-out row: 0 (good) or 1 (defective).
    pub pred: Vec<u8>,
    /// Ranking score per held-out row (decision function or class-1 probability); higher means
    /// more likely defective.
    pub score: Vec<f64>,
}

impl Prediction {
    /// Class 1 where its probability is above ½ (argmax, ties to class 0 as numpy's).
    pub fn from_proba(score: Vec<f64>) -> Self {
        Self { pred: score.iter().map(|&p| u8::from(p > 0.5)).collect(), score }
    }
}

pub(crate) fn smartcore_err(e: smartcore::error::Failed) -> anyhow::Error {
    anyhow!("smartcore: {e}")
}

/// Which classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// k-nearest neighbours ([`knn`]).
    Knn,
    /// RBF-kernel support vector machine ([`svm`]).
    Svm,
    /// Single CART decision tree ([`tree`]).
    Tree,
    /// Random forest of CART trees ([`forest`]).
    Forest,
    /// Multi-layer perceptron trained with L-BFGS ([`mlp`]).
    Mlp,
    /// AdaBoost over decision stumps ([`adaboost`]).
    Adaboost,
    /// Gaussian naive Bayes ([`nb`]).
    Nb,
    /// Quadratic discriminant analysis ([`qda`]).
    Qda,
}

impl Kind {
    /// All eight classifiers, in the original's order.
    pub const ALL: [Kind; 8] =
        [Kind::Knn, Kind::Svm, Kind::Tree, Kind::Forest, Kind::Mlp, Kind::Adaboost, Kind::Nb, Kind::Qda];

    /// Short name used on the command line and in records.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Knn => "knn",
            Kind::Svm => "svm",
            Kind::Tree => "tree",
            Kind::Forest => "forest",
            Kind::Mlp => "mlp",
            Kind::Adaboost => "adaboost",
            Kind::Nb => "nb",
            Kind::Qda => "qda",
        }
    }

    /// The name the original stored its results under.
    pub fn display(self) -> &'static str {
        match self {
            Kind::Knn => "Nearest Neighbors",
            Kind::Svm => "RBF SVM",
            Kind::Tree => "Decision Tree",
            Kind::Forest => "Random Forest",
            Kind::Mlp => "Neural Net",
            Kind::Adaboost => "AdaBoost",
            Kind::Nb => "Naive Bayes",
            Kind::Qda => "QDA",
        }
    }

    /// The classifier whose [`key`](Kind::key) is `s`; errors on any other name, listing the
    /// valid ones.
    pub fn parse(s: &str) -> Result<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.key()).collect();
            anyhow!("unknown classifier {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// One classifier with its parameters; JSON `{"classifier": "knn", "n_neighbors": 5, ...}`
/// with sklearn's parameter names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "classifier", rename_all = "lowercase")]
pub enum Params {
    /// k-nearest neighbours parameters.
    Knn(knn::KnnParams),
    /// RBF SVM parameters.
    Svm(svm::SvmParams),
    /// Decision tree parameters.
    Tree(tree::TreeParams),
    /// Random forest parameters.
    Forest(forest::ForestParams),
    /// MLP parameters.
    Mlp(mlp::MlpParams),
    /// AdaBoost parameters.
    Adaboost(adaboost::AdaBoostParams),
    /// Naive Bayes parameters.
    Nb(nb::NbParams),
    /// QDA parameters.
    Qda(qda::QdaParams),
}

impl Params {
    /// Which classifier these parameters are for.
    pub fn kind(&self) -> Kind {
        match self {
            Params::Knn(_) => Kind::Knn,
            Params::Svm(_) => Kind::Svm,
            Params::Tree(_) => Kind::Tree,
            Params::Forest(_) => Kind::Forest,
            Params::Mlp(_) => Kind::Mlp,
            Params::Adaboost(_) => Kind::Adaboost,
            Params::Nb(_) => Kind::Nb,
            Params::Qda(_) => Kind::Qda,
        }
    }

    /// The parameters alone, as a JSON object (for records and tables).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("classifier");
        }
        v
    }
}

/// Fits `params` on (`x`, `y`) and predicts `test`. `seed` drives every random choice.
pub fn fit_predict(params: &Params, x: &Matrix, y: &[u8], test: &Matrix, seed: u64) -> Result<Prediction> {
    Ok(match params {
        Params::Knn(p) => knn::fit_predict(p, x, y, test)?,
        Params::Svm(p) => svm::fit_predict(p, x, y, test),
        Params::Tree(p) => {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let w = vec![1.0; x.rows];
            let t = tree::Tree::fit(x, y, &w, p, &mut rng);
            Prediction::from_proba((0..test.rows).map(|i| t.proba(test.row(i))).collect())
        }
        Params::Forest(p) => forest::fit_predict(p, x, y, test, seed),
        Params::Mlp(p) => mlp::fit_predict(p, x, y, test, seed),
        Params::Adaboost(p) => adaboost::fit_predict(p, x, y, test, seed)?,
        Params::Nb(p) => nb::fit_predict(p, x, y, test),
        Params::Qda(p) => qda::fit_predict(p, x, y, test)?,
    })
}
