//! Scores of a binary classifier on held-out rows, computed as scikit-learn computes them:
//! F1 of the positive class (1), average precision (PR-AUC, `average_precision_score`) and
//! balanced accuracy.

/// F1 of class 1; 0 when there are no predicted and no true positives (sklearn's
/// `zero_division` default).
pub fn f1(y: &[u8], pred: &[u8]) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&t, &p) in y.iter().zip(pred) {
        match (t, p) {
            (1, 1) => tp += 1,
            (0, 1) => fp += 1,
            (1, 0) => fn_ += 1,
            _ => {}
        }
    }
    let denom = 2 * tp + fp + fn_;
    if denom == 0 { 0.0 } else { 2.0 * tp as f64 / denom as f64 }
}

/// Mean recall over the two classes (a class absent from `y` is left out, as sklearn does).
pub fn balanced_accuracy(y: &[u8], pred: &[u8]) -> f64 {
    let mut hit = [0usize; 2];
    let mut total = [0usize; 2];
    for (&t, &p) in y.iter().zip(pred) {
        let c = usize::from(t == 1);
        total[c] += 1;
        if t == p {
            hit[c] += 1;
        }
    }
    let recalls: Vec<f64> =
        (0..2).filter(|&c| total[c] > 0).map(|c| hit[c] as f64 / total[c] as f64).collect();
    if recalls.is_empty() { 0.0 } else { recalls.iter().sum::<f64>() / recalls.len() as f64 }
}

/// Average precision: Σ (Rₙ − Rₙ₋₁)·Pₙ over the distinct score thresholds, highest first
/// (tied scores form one threshold), exactly as `sklearn.metrics.average_precision_score`.
/// NaN when `y` has no positive row.
pub fn average_precision(y: &[u8], score: &[f64]) -> f64 {
    average_precision_by(y.len(), |i| score[i], |i| y[i] == 1).unwrap_or(f64::NAN)
}

/// The one implementation of average precision behind every caller (grid search, quality gate,
/// training metrics): rows `0..n`, row `i` scored `score(i)` and positive when `positive(i)`.
/// `None` when no row is positive; callers decide what that means for them.
pub fn average_precision_by(
    n: usize,
    score: impl Fn(usize) -> f64,
    positive: impl Fn(usize) -> bool,
) -> Option<f64> {
    let positives = (0..n).filter(|&i| positive(i)).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut ap, mut last_recall) = (0.0, 0.0);
    for (k, &r) in order.iter().enumerate() {
        if positive(r) {
            tp += 1;
        } else {
            fp += 1;
        }
        let threshold_ends = order.get(k + 1).is_none_or(|&next| score(next) != score(r));
        if threshold_ends {
            let recall = tp as f64 / positives as f64;
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (recall - last_recall) * precision;
            last_recall = recall;
        }
    }
    Some(ap)
}

/// Mean and population standard deviation (numpy's `std`, ddof 0) of `v`.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
