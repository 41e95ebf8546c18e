//! Limited-memory BFGS minimiser for the MLP (the solver the original grid fixes). Memory 10,
//! backtracking Armijo line search, and scipy's `fmin_l_bfgs_b` stopping rules as sklearn
//! calls it: projected gradient ≤ `pgtol`, relative decrease ≤ `factr·eps` (factr 1e7),
//! `max_iter` iterations, `max_fun` evaluations.

const MEMORY: usize = 10;
const FTOL: f64 = 1e7 * f64::EPSILON;

/// Where the minimiser stopped.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// The point reached (the best found, as the search only accepts decreases).
    pub x: Vec<f64>,
    /// The objective's value at `x`.
    pub f: f64,
    /// Number of L-BFGS iterations taken (each may evaluate the objective several times).
    pub iterations: usize,
    /// Whether a stopping test (small gradient or small relative decrease) was met, rather than the
    /// iteration or evaluation budget running out or the line search failing.
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimises `fg` (value, gradient written into its second argument) from `x`.
pub fn minimize(
    mut fg: impl FnMut(&[f64], &mut [f64]) -> f64,
    mut x: Vec<f64>,
    max_iter: usize,
    max_fun: usize,
    pgtol: f64,
) -> Minimum {
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut f = fg(&x, &mut g);
    let mut evals = 1;
    let mut mem: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::with_capacity(MEMORY);
    let mut iterations = 0;
    if max_abs(&g) <= pgtol {
        return Minimum { x, f, iterations, converged: true };
    }
    let (mut xn, mut gn) = (vec![0.0; n], vec![0.0; n]);
    while iterations < max_iter && evals < max_fun {
        iterations += 1;
        // Two-loop recursion: d = −H·g.
        let mut q = g.clone();
        let mut alphas = vec![0.0; mem.len()];
        for (k, (s, y, rho)) in mem.iter().enumerate().rev() {
            alphas[k] = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= alphas[k] * y);
        }
        let gamma = mem.last().map_or(1.0, |(s, y, _)| dot(s, y) / dot(y, y));
        q.iter_mut().for_each(|v| *v *= gamma);
        for (k, (s, y, rho)) in mem.iter().enumerate() {
            let beta = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (alphas[k] - beta) * s);
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            mem.clear();
            d = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        let mut step = if mem.is_empty() { 1.0 / dot(&d, &d).sqrt().max(1e-300) } else { 1.0 };
        let mut fnew;
        loop {
            xn.iter_mut().zip(&x).zip(&d).for_each(|((xn, x), d)| *xn = x + step * d);
            fnew = fg(&xn, &mut gn);
            evals += 1;
            if fnew <= f + 1e-4 * step * slope || step < 1e-20 || evals >= max_fun {
                break;
            }
            step *= 0.5;
        }
        if fnew > f {
            // No decrease found along d: stop where we are.
            return Minimum { x, f, iterations, converged: false };
        }
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-10 * dot(&y, &y) {
            if mem.len() == MEMORY {
                mem.remove(0);
            }
            mem.push((s, y, 1.0 / sy));
        }
        let decrease = (f - fnew) / f.abs().max(fnew.abs()).max(1.0);
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        f = fnew;
        if decrease <= FTOL || max_abs(&g) <= pgtol {
            return Minimum { x, f, iterations, converged: true };
        }
    }
    Minimum { x, f, iterations, converged: false }
}
