//! Parameter grids (the original's, and a small one for quick runs) and the grid search:
//! every candidate × fold fitted in parallel (rayon), scaling fitted on each training fold,
//! scored on the fold's real held-out rows; the best candidate is the one with the highest
//! mean F1 (first in grid order on ties, as sklearn's `GridSearchCV` ranks).

use super::classifiers::adaboost::AdaBoostParams;
use super::classifiers::forest::ForestParams;
use super::classifiers::knn::{KnnParams, Metric, Weights};
use super::classifiers::mlp::MlpParams;
use super::classifiers::nb::NbParams;
use super::classifiers::qda::QdaParams;
use super::classifiers::svm::SvmParams;
use super::classifiers::tree::{Criterion, MaxFeatures, TreeParams};
use super::classifiers::{Kind, Params, fit_predict};
use super::cv::{Scaler, train_indices};
use super::data::Matrix;
use super::metrics;
use anyhow::Result;
use rayon::prelude::*;
use std::time::Instant;

/// Which grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GridName {
    /// The original's grids (`max_features="auto"` dropped: it was `sqrt` under another name).
    Original,
    /// One to four candidates per classifier, for quick runs and tests.
    Small,
}

fn tree_grid(
    depths: &[usize],
    features: &[MaxFeatures],
    alphas: &[f64],
    criteria: &[Criterion],
) -> Vec<TreeParams> {
    let mut out = Vec::new();
    // sklearn's ParameterGrid order: keys sorted, the last one varying fastest.
    for &ccp_alpha in alphas {
        for &criterion in criteria {
            for &d in depths {
                for &max_features in features {
                    out.push(TreeParams { criterion, max_depth: Some(d), max_features, ccp_alpha });
                }
            }
        }
    }
    out
}

/// The candidates of `kind` in grid `name`, in sklearn's `ParameterGrid` order where it matters
/// only for ties.
pub fn grid(kind: Kind, name: GridName) -> Vec<Params> {
    use Criterion::{Entropy, Gini};
    use MaxFeatures::{Log2, Sqrt};
    let small = name == GridName::Small;
    match kind {
        Kind::Knn => {
            let ks: &[usize] = if small { &[5, 9] } else { &[1, 5, 9, 13, 17] };
            let metrics: &[Metric] = if small {
                &[Metric::Euclidean]
            } else {
                &[Metric::Euclidean, Metric::Manhattan, Metric::Minkowski]
            };
            let mut out = Vec::new();
            for &metric in metrics {
                for &n_neighbors in ks {
                    for weights in [Weights::Uniform, Weights::Distance] {
                        out.push(Params::Knn(KnnParams { n_neighbors, weights, metric }));
                    }
                }
            }
            out
        }
        Kind::Svm => {
            let (cs, gs): (&[f64], &[f64]) =
                if small { (&[1.0, 10.0], &[0.1]) } else { (&[0.1, 1.0, 10.0], &[0.1, 1.0, 10.0]) };
            cs.iter()
                .flat_map(|&c| gs.iter().map(move |&gamma| Params::Svm(SvmParams { c, gamma })))
                .collect()
        }
        Kind::Tree => {
            let g = if small {
                tree_grid(&[4, 8], &[Sqrt], &[0.01], &[Gini])
            } else {
                tree_grid(&[4, 6, 8], &[Sqrt, Log2], &[0.1, 0.01, 0.001], &[Gini, Entropy])
            };
            g.into_iter().map(Params::Tree).collect()
        }
        Kind::Forest => {
            let (ns, g): (&[usize], _) = if small {
                (&[50], tree_grid(&[6], &[Sqrt], &[0.0], &[Gini]))
            } else {
                (&[200, 400], tree_grid(&[4, 6, 8], &[Sqrt, Log2], &[0.0], &[Gini, Entropy]))
            };
            let mut out = Vec::new();
            for tree in &g {
                for &n_estimators in ns {
                    out.push(Params::Forest(ForestParams { n_estimators, tree: tree.clone() }));
                }
            }
            out
        }
        Kind::Mlp => {
            let hs: &[usize] = if small { &[10] } else { &[5, 10, 15] };
            hs.iter()
                .map(|&h| Params::Mlp(MlpParams { hidden_layer_sizes: h, alpha: 1.0, max_iter: 3000 }))
                .collect()
        }
        Kind::Adaboost => {
            let (ns, lrs): (&[usize], &[f64]) =
                if small { (&[50], &[0.1]) } else { (&[10, 50, 100], &[0.001, 0.01, 0.1]) };
            lrs.iter()
                .flat_map(|&lr| {
                    ns.iter().map(move |&n| {
                        Params::Adaboost(AdaBoostParams { n_estimators: n, learning_rate: lr })
                    })
                })
                .collect()
        }
        Kind::Nb => {
            let vs: &[f64] = if small { &[1e-9] } else { &[1e-2, 1e-5, 1e-10, 1e-15] };
            vs.iter().map(|&v| Params::Nb(NbParams { var_smoothing: v })).collect()
        }
        Kind::Qda => {
            let rs: &[f64] = if small { &[0.1, 0.5] } else { &[0.1, 0.2, 0.3, 0.4, 0.5] };
            rs.iter().map(|&r| Params::Qda(QdaParams { reg_param: r })).collect()
        }
    }
}

/// Confusion counts of the defective class (1) against the good one (0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Confusion {
    /// Good rows predicted good.
    pub tn: u64,
    /// Good rows predicted defective.
    pub fp: u64,
    /// Defective rows predicted good.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Defective rows predicted defective.
    pub tp: u64,
}

impl Confusion {
    /// The counts of `pred` against `truth`.
    pub fn of(truth: &[u8], pred: &[u8]) -> Confusion {
        let mut c = Confusion::default();
        for (t, p) in truth.iter().zip(pred) {
            match (t, p) {
                (1, 1) => c.tp += 1,
                (1, _) => c.fn_ += 1,
                (_, 1) => c.fp += 1,
                _ => c.tn += 1,
            }
        }
        c
    }
}

impl std::ops::Add for Confusion {
    type Output = Confusion;

    /// The counts of both.
    fn add(self, o: Confusion) -> Confusion {
        Confusion { tn: self.tn + o.tn, fp: self.fp + o.fp, fn_: self.fn_ + o.fn_, tp: self.tp + o.tp }
    }
}

/// Scores of one candidate on one fold.
#[derive(Debug, Clone)]
pub struct FoldScore {
    /// F1 of class 1 (defective) on the fold's test rows, in [0, 1].
    pub f1: f64,
    /// Average precision (PR-AUC) of the scores on the test rows, in [0, 1]; NaN if they hold no
    /// defective row.
    pub pr_auc: f64,
    /// Mean recall of the two classes on the test rows, in [0, 1].
    pub balanced_accuracy: f64,
    /// Seconds to scale, fit and predict the fold.
    pub seconds: f64,
    /// Confusion counts at the classifier's own decision on the test rows.
    pub confusion: Confusion,
    /// Each test row's score (higher: more likely defective) and true label, for curves over
    /// the folds.
    pub scored: Vec<(f64, u8)>,
}

/// One candidate's scores over the folds, or why it failed.
#[derive(Debug, Clone)]
pub struct CandidateResult {
    /// The candidate's classifier and parameters.
    pub params: Params,
    /// Scores per fold, in split order, or the first failing fold's error message.
    pub folds: Result<Vec<FoldScore>, String>,
}

impl CandidateResult {
    /// Mean F1 over the folds; `None` if any fold failed or the mean is NaN.
    pub fn mean_f1(&self) -> Option<f64> {
        let f = self.folds.as_ref().ok()?;
        let v: Vec<f64> = f.iter().map(|s| s.f1).collect();
        Some(metrics::mean_std(&v).0).filter(|m| !m.is_nan())
    }
}

/// What one fold trains and tests on: row indices into the dataset's matrix.
#[derive(Debug, Clone)]
pub struct Split {
    /// Dataset rows the classifier is fitted on: real rows outside the test fold, plus synthetic
    /// rows.
    pub train: Vec<usize>,
    /// Dataset rows it is scored on (the real rows of the test fold).
    pub test: Vec<usize>,
}

/// Splits from test folds over the rows `real` (indices into the dataset), adding `extra`
/// (synthetic rows) to every training side.
pub fn splits(real: &[usize], folds: &[Vec<usize>], extra: &[usize]) -> Vec<Split> {
    folds
        .iter()
        .map(|test| {
            let mut train: Vec<usize> =
                train_indices(real.len(), test).into_iter().map(|i| real[i]).collect();
            train.extend_from_slice(extra);
            Split { train, test: test.iter().map(|&i| real[i]).collect() }
        })
        .collect()
}

/// Scales (fitted on the training rows), fits and scores `params` on one split.
pub fn run_fold(params: &Params, x: &Matrix, y: &[u8], split: &Split, seed: u64) -> Result<FoldScore> {
    let start = Instant::now();
    let xtr = x.select(&split.train);
    let scaler = Scaler::fit(&xtr);
    let xtr = scaler.transform(&xtr);
    let xte = scaler.transform(&x.select(&split.test));
    let ytr: Vec<u8> = split.train.iter().map(|&i| y[i]).collect();
    let yte: Vec<u8> = split.test.iter().map(|&i| y[i]).collect();
    let p = fit_predict(params, &xtr, &ytr, &xte, seed)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(FoldScore {
        f1: metrics::f1(&yte, &p.pred),
        pr_auc: metrics::average_precision(&yte, &p.score),
        balanced_accuracy: metrics::balanced_accuracy(&yte, &p.pred),
        seconds,
        confusion: Confusion::of(&yte, &p.pred),
        scored: p.score.iter().copied().zip(yte.iter().copied()).collect(),
    })
}

/// Evaluates every candidate on every split in parallel; `tick` is called after each fit.
pub fn search(
    candidates: &[Params],
    x: &Matrix,
    y: &[u8],
    splits: &[Split],
    seed: u64,
    tick: &(dyn Fn() + Sync),
) -> Vec<CandidateResult> {
    let tasks: Vec<(usize, usize)> =
        (0..candidates.len()).flat_map(|c| (0..splits.len()).map(move |f| (c, f))).collect();
    let scores: Vec<Result<FoldScore, String>> = tasks
        .par_iter()
        .map(|&(c, f)| {
            let r = run_fold(&candidates[c], x, y, &splits[f], seed.wrapping_add(f as u64))
                .map_err(|e| format!("fold {}: {e:#}", f + 1));
            tick();
            r
        })
        .collect();
    let mut it = scores.into_iter();
    candidates
        .iter()
        .map(|params| {
            let folds: Result<Vec<FoldScore>, String> = it.by_ref().take(splits.len()).collect();
            CandidateResult { params: params.clone(), folds }
        })
        .collect()
}

/// Index of the best candidate (highest mean F1, first on ties), if any fitted on every fold.
pub fn best(results: &[CandidateResult]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, r) in results.iter().enumerate() {
        if let Some(m) = r.mean_f1()
            && best.is_none_or(|(_, b)| m > b)
        {
            best = Some((i, m));
        }
    }
    best.map(|(i, _)| i)
}

/// One fold's pick in [`held_out_selection`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldOutPick {
    /// Index into the results of the candidate chosen without this fold's scores.
    pub candidate: usize,
    /// That candidate's F1 on this fold.
    pub f1: f64,
}

/// The grid's choice judged on folds the choice did not look at: for each fold, the candidate
/// [`best`] picks from the *other* folds' F1 and that candidate's F1 on this fold.
///
/// The best-of-grid mean F1 is optimistic: it is the largest of many noisy means, each over the
/// very folds it is reported on. This estimate is not: no fold's score takes part in choosing
/// the candidate it judges. It reuses the search's fitted models (each fold's model was trained
/// on the other folds), so it costs nothing, and it is not a fully nested cross-validation,
/// which would rerun the whole grid inside each fold. `None` with fewer than two folds or when
/// no candidate scored every fold.
pub fn held_out_selection(results: &[CandidateResult]) -> Option<Vec<HeldOutPick>> {
    let scored: Vec<(usize, &[FoldScore])> =
        results.iter().enumerate().filter_map(|(i, r)| r.folds.as_deref().ok().map(|f| (i, f))).collect();
    let k = scored.iter().map(|(_, f)| f.len()).max()?;
    if k < 2 {
        return None;
    }
    (0..k)
        .map(|j| {
            let mut pick: Option<(usize, f64, f64)> = None;
            for &(i, folds) in scored.iter().filter(|(_, f)| f.len() == k) {
                let others: Vec<f64> =
                    folds.iter().enumerate().filter(|(m, _)| *m != j).map(|(_, s)| s.f1).collect();
                let mean = metrics::mean_std(&others).0;
                if !mean.is_nan() && pick.is_none_or(|(_, b, _)| mean > b) {
                    pick = Some((i, mean, folds[j].f1));
                }
            }
            pick.map(|(candidate, _, f1)| HeldOutPick { candidate, f1 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(f1: &[f64]) -> CandidateResult {
        let fold = |&f1: &f64| FoldScore {
            f1,
            pr_auc: f1,
            balanced_accuracy: f1,
            seconds: 0.0,
            confusion: Confusion::default(),
            scored: Vec::new(),
        };
        CandidateResult {
            params: Params::Nb(NbParams { var_smoothing: 1e-9 }),
            folds: Ok(f1.iter().map(fold).collect()),
        }
    }

    #[test]
    fn each_fold_is_judged_by_a_choice_made_without_it() {
        // Candidate 1 wins the grid only through its lucky fold 0; without fold 0, candidate 0 wins.
        let results = [candidate(&[0.5, 0.7, 0.7]), candidate(&[1.0, 0.6, 0.6]), candidate(&[0.1, 0.1, 0.1])];
        assert_eq!(best(&results), Some(1), "best of grid: mean 0.733");
        let picks = held_out_selection(&results).unwrap();
        let chosen: Vec<usize> = picks.iter().map(|p| p.candidate).collect();
        assert_eq!(chosen, [0, 1, 1]);
        let f1: Vec<f64> = picks.iter().map(|p| p.f1).collect();
        assert_eq!(f1, [0.5, 0.6, 0.6], "lower than the best-of-grid mean, as it should be");
        // A failed candidate takes no part; one fold is too few.
        let failed = CandidateResult { folds: Err("singular".into()), ..candidate(&[]) };
        assert_eq!(held_out_selection(&[failed.clone(), results[0].clone()]).map(|p| p.len()), Some(3));
        assert_eq!(held_out_selection(&[candidate(&[0.9])]), None);
        assert_eq!(held_out_selection(&[failed]), None);
    }
}
