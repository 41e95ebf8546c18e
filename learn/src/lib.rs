//! The numeric kernels of the learning stages: pure computations on rows of `f64`, no I/O.
//!
//! They live in their own crate so that the dev profile — the one README's demo command and
//! the tests build — compiles them optimised (`[profile.dev.package.moldops-learn]` in the
//! workspace manifest) while the rest of the workspace keeps fast unoptimised builds.
//!
//! - [`data`]: the dense [`data::Matrix`] and the labelled [`data::Dataset`] the classifiers see.
//! - [`classifiers`]: the original's eight classifiers (tree, forest, AdaBoost, SVM, KNN, MLP,
//!   naive Bayes, QDA) behind one [`classifiers::fit_predict`].
//! - [`cv`]: stratified seeded folds and the per-fold scaler; [`metrics`]: F1, PR-AUC,
//!   balanced accuracy; [`grid`]: the parameter grids and their search over folds.
//! - [`quality`]: the percentile outlier fence, classical MDS, DBSCAN, weak labels and the
//!   synthetic-data gate.

#![warn(missing_docs)]

pub mod classifiers;
pub mod cv;
pub mod data;
pub mod grid;
pub mod metrics;
pub mod quality;
