//! The statistics drift is judged by, on binned data: the population stability index (PSI) and
//! the Kolmogorov–Smirnov distance of two histograms over the same bins, the KS p-value, and the
//! upper tail of the binomial distribution (an alarm rate against its target).
//!
//! Histograms are weights per bin (counts, or proportions times a sample size); both sides must
//! have the same bins. PSI floors every proportion at [`PSI_FLOOR`] so an empty bin on one side
//! gives a large but finite figure. The KS distance of binned data is the largest gap between
//! the two cumulative distributions at the bin edges: a lower bound of the KS statistic of the
//! raw values (ties inside a bin are not seen), so its p-value errs on the quiet side.

/// Smallest proportion PSI uses for a bin (an empty bin would make it infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// Proportions of `weights` (`None` when the total is not positive or not finite, or a weight
/// is negative or not finite).
fn proportions(weights: &[f64]) -> Option<Vec<f64>> {
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return None;
    }
    let total: f64 = weights.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| weights.iter().map(|w| w / total).collect())
}

/// Population stability index of `actual` against `reference`:
/// `Σ (a − e) · ln(a / e)` over the bins' proportions, each floored at [`PSI_FLOOR`]. 0 when
/// the shapes agree; by custom below 0.1 is stable, 0.1–0.25 a moderate shift, above 0.25 a
/// large one. `None` when the bins differ in number or a side is empty.
pub fn psi(reference: &[f64], actual: &[f64]) -> Option<f64> {
    if reference.len() != actual.len() || reference.is_empty() {
        return None;
    }
    let (e, a) = (proportions(reference)?, proportions(actual)?);
    Some(
        e.iter()
            .zip(&a)
            .map(|(e, a)| {
                let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// Kolmogorov–Smirnov distance of two histograms over the same bins: the largest absolute gap
/// between their cumulative proportions (0 to 1). `None` like [`psi`].
pub fn ks_distance(reference: &[f64], actual: &[f64]) -> Option<f64> {
    if reference.len() != actual.len() || reference.is_empty() {
        return None;
    }
    let (e, a) = (proportions(reference)?, proportions(actual)?);
    let (mut ce, mut ca, mut d) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (e, a) in e.iter().zip(&a) {
        ce += e;
        ca += a;
        d = d.max((ce - ca).abs());
    }
    Some(d)
}

/// Asymptotic p-value of a two-sample KS distance `d` between samples of `n` and `m` values
/// (Kolmogorov's distribution with Stephens' small-sample correction, as in Numerical
/// Recipes): the chance of a distance at least `d` if both came from one distribution.
pub fn ks_p_value(d: f64, n: f64, m: f64) -> f64 {
    if !(n > 0.0 && m > 0.0 && d.is_finite()) {
        return 1.0;
    }
    let ne = (n * m / (n + m)).sqrt();
    let lambda = (ne + 0.12 + 0.11 / ne) * d;
    kolmogorov_q(lambda)
}

/// `Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2 j² λ²}`, clamped to 0..=1.
fn kolmogorov_q(lambda: f64) -> f64 {
    // Below 0.2 the series converges too slowly to sum (100 terms give 0.02 at λ = 0.0011),
    // and Q(0.2) = 1 − 5·10⁻¹³: the distance says nothing.
    if lambda < 0.2 {
        return 1.0;
    }
    let (mut sum, mut sign) = (0.0, 1.0);
    for j in 1..=100 {
        let j = f64::from(j);
        let term = sign * (-2.0 * j * j * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 * sum.abs().max(1e-300) {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Natural log of the gamma function for `x > 0` (Lanczos, g = 7, 9 terms; about 15 digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Most terms [`binomial_upper_tail`] sums (far more than a period of
/// [`super::MAX_PERIOD_SHOTS`] needs: its terms shrink geometrically away from the mean).
const MAX_TERMS: u64 = 10_000_000;

/// Natural log of `P(X = i)` for `X ~ Binomial(n, p)`, `0 < p < 1`, `i ≤ n`.
fn ln_binomial_pmf(i: u64, n: u64, p: f64) -> f64 {
    let (nf, i_f) = (n as f64, i as f64);
    ln_gamma(nf + 1.0) - ln_gamma(i_f + 1.0) - ln_gamma(nf - i_f + 1.0)
        + i_f * p.ln()
        + (nf - i_f) * (-p).ln_1p()
}

/// `P(X ≥ k)` for `X ~ Binomial(n, p)`: how surprising `k` alarms in `n` shots are when the
/// true alarm rate is `p`. 1 for `k = 0`, 0 for `k > n` or `p ≤ 0` (or not a number), 1 for
/// `p ≥ 1`. Summed in log space from `k` away from the mean, where the terms shrink: upward
/// when `k` is above the mean `n·p`, else `1 −` the sum of `P(X = i)` for `i < k` downward
/// (at most [`MAX_TERMS`] terms, so a forged `n` cannot make it run long).
pub fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p.is_nan() || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let ratio = p / (1.0 - p);
    let (mut term, mut sum) = (1.0_f64, 1.0_f64);
    if k as f64 > n as f64 * p {
        // P(X = i + 1) / P(X = i) = (n − i) / (i + 1) · p / (1 − p) < 1 above the mean.
        let mut i = k;
        while i < n && i - k < MAX_TERMS {
            term *= (n - i) as f64 / (i + 1) as f64 * ratio;
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
            i += 1;
        }
        return (ln_binomial_pmf(k, n, p) + sum.ln()).exp().clamp(0.0, 1.0);
    }
    // P(X = i − 1) / P(X = i) = i / (n − i + 1) · (1 − p) / p < 1 below the mean.
    let top = k - 1;
    let mut i = top;
    while i > 0 && top - i < MAX_TERMS {
        term *= i as f64 / (n - i + 1) as f64 / ratio;
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
        i -= 1;
    }
    (1.0 - (ln_binomial_pmf(top, n, p) + sum.ln()).exp()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn psi_matches_a_hand_computed_value() {
        // Reference 25/25/25/25 %, actual 10/20/30/40 %:
        // (.1-.25)ln(.4) + (.2-.25)ln(.8) + (.3-.25)ln(1.2) + (.4-.25)ln(1.6) = 0.228 217 …
        let got = psi(&[25.0, 25.0, 25.0, 25.0], &[10.0, 20.0, 30.0, 40.0]).expect("psi");
        let want = -0.15 * 0.4_f64.ln() - 0.05 * 0.8_f64.ln() + 0.05 * 1.2_f64.ln() + 0.15 * 1.6_f64.ln();
        assert!(close(got, want, 1e-12) && close(got, 0.228_217, 1e-6), "{got}");
        // Same shape, other sample sizes: 0.
        assert!(close(psi(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).expect("psi"), 0.0, 1e-15));
        // An empty bin is floored, not infinite.
        let floored = psi(&[50.0, 50.0], &[100.0, 0.0]).expect("psi");
        let want = 0.5 * 2.0_f64.ln() + (PSI_FLOOR - 0.5) * (PSI_FLOOR / 0.5).ln();
        assert!(close(floored, want, 1e-12), "{floored}");
        assert_eq!(psi(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(psi(&[0.0, 0.0], &[1.0, 2.0]), None);
        assert_eq!(psi(&[1.0, -1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn ks_distance_is_the_largest_cumulative_gap() {
        // CDFs .25 .5 .75 1 against .1 .3 .6 1: gaps .15 .2 .15 0.
        let d = ks_distance(&[25.0, 25.0, 25.0, 25.0], &[10.0, 20.0, 30.0, 40.0]).expect("ks");
        assert!(close(d, 0.2, 1e-12), "{d}");
        assert!(close(ks_distance(&[1.0, 0.0], &[0.0, 1.0]).expect("ks"), 1.0, 1e-12));
    }

    #[test]
    fn ks_p_values_match_kolmogorovs_distribution() {
        // Q_KS(1.36) ≈ 0.0494 and Q_KS(1.63) ≈ 0.0098 (the familiar 5 % and 1 % points).
        assert!(close(kolmogorov_q(1.36), 0.0494, 5e-4), "{}", kolmogorov_q(1.36));
        assert!(close(kolmogorov_q(1.63), 0.0098, 3e-4), "{}", kolmogorov_q(1.63));
        assert_eq!(kolmogorov_q(0.0), 1.0);
        // Two samples of 500: d = 0.2 is far beyond chance, d = 0.02 is not.
        assert!(ks_p_value(0.2, 500.0, 500.0) < 1e-8);
        assert!(ks_p_value(0.02, 500.0, 500.0) > 0.9);
        // Near-identical histograms are no evidence at all, where the series has not converged.
        for lambda in [0.0011, 0.005, 0.01, 0.1, 0.19, 0.25] {
            assert!(kolmogorov_q(lambda) > 0.999_999, "Q({lambda}) = {}", kolmogorov_q(lambda));
        }
        assert!(ks_p_value(1e-4, 500.0, 500.0) > 0.999_999);
    }

    #[test]
    fn ln_gamma_and_the_binomial_tail_match_hand_computed_values() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-13));
        assert!(close(ln_gamma(5.0), 24.0_f64.ln(), 1e-12));
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-12));
        assert!(close(ln_gamma(101.0), 363.739_375_555_563_5, 1e-8));
        // P(X ≥ 2 | n = 3, p = .5) = (3 + 1) / 8.
        assert!(close(binomial_upper_tail(2, 3, 0.5), 0.5, 1e-12));
        // P(X ≥ 1 | n = 10, p = .1) = 1 − .9^10.
        assert!(close(binomial_upper_tail(1, 10, 0.1), 1.0 - 0.9_f64.powi(10), 1e-12));
        // P(X ≥ 10 | n = 10, p = .1) = 1e-10.
        assert!(close(binomial_upper_tail(10, 10, 0.1), 1e-10, 1e-20));
        assert_eq!(binomial_upper_tail(0, 10, 0.1), 1.0);
        assert_eq!(binomial_upper_tail(11, 10, 0.1), 0.0);
        // 20 alarms in 500 shots at a 1 % target: mean 5, very unlikely.
        let p = binomial_upper_tail(20, 500, 0.01);
        assert!(p > 0.0 && p < 1e-5, "{p}");
        // At or below the mean the tail is large, summed from the other side: P(X ≥ 5 | 500,
        // .01) = 1 − P(X ≤ 4), and both sides agree where they meet.
        let lower: f64 = (0..5).map(|i| ln_binomial_pmf(i, 500, 0.01).exp()).sum();
        assert!(close(binomial_upper_tail(5, 500, 0.01), 1.0 - lower, 1e-12));
        let (at, above) = (binomial_upper_tail(5, 500, 0.01), binomial_upper_tail(6, 500, 0.01));
        let pmf5 = ln_binomial_pmf(5, 500, 0.01).exp();
        assert!(close(at - above, pmf5, 1e-12), "{at} {above} {pmf5}");
        // Degenerate and forged inputs answer at once, within 0..=1.
        assert_eq!(binomial_upper_tail(1, 10, 0.0), 0.0);
        assert_eq!(binomial_upper_tail(1, 10, f64::NAN), 0.0);
        assert_eq!(binomial_upper_tail(3, 10, 1.0), 1.0);
        let huge = binomial_upper_tail(1 << 52, 1 << 53, 0.5);
        assert!((0.0..=1.0).contains(&huge), "{huge}");
        assert_eq!(binomial_upper_tail(1, 1 << 53, 0.5), 1.0);
    }
}
