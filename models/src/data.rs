//! Windows of consecutive shots as the models see them: a dense `[N, W, F]` f32 block, and the
//! per-feature standardisation fitted on training rows.

use burn::tensor::{Device, Tensor, TensorData};

/// `n` windows of `w` shots with `f` features, row-major (`data[(i·w + t)·f + j]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    /// The `n·w·f` values in the layout above: by window, then shot, then feature.
    pub data: Vec<f32>,
    /// Number of windows (N).
    pub n: usize,
    /// Shots per window (W).
    pub w: usize,
    /// Features per shot (F).
    pub f: usize,
}

impl Windows {
    /// Wraps `data`; fails when its length is not `n·w·f`.
    pub fn new(data: Vec<f32>, n: usize, w: usize, f: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(data.len() == n * w * f, "windows: {} values for {n}×{w}×{f}", data.len());
        Ok(Windows { data, n, w, f })
    }

    /// No windows of shape `w × f`.
    pub fn empty(w: usize, f: usize) -> Self {
        Windows { data: Vec::new(), n: 0, w, f }
    }

    /// Values of window `i`.
    pub fn window(&self, i: usize) -> &[f32] {
        let len = self.w * self.f;
        &self.data[i * len..(i + 1) * len]
    }

    /// The windows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Windows {
        let mut data = Vec::with_capacity(indices.len() * self.w * self.f);
        for &i in indices {
            data.extend_from_slice(self.window(i));
        }
        Windows { data, n: indices.len(), w: self.w, f: self.f }
    }

    /// Windows `start..end` as a tensor `[end-start, w, f]`.
    pub fn tensor(&self, start: usize, end: usize, device: &Device) -> Tensor<3> {
        let len = self.w * self.f;
        let values = self.data[start * len..end * len].to_vec();
        Tensor::from_data(TensorData::new(values, [end - start, self.w, self.f]), device)
    }
}

/// Per-feature standardisation `(x − mean) / std`, the same inside the ONNX graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    /// Per feature, in feature order, the value subtracted: the mean of the fitted values.
    pub mean: Vec<f32>,
    /// Per feature, in feature order, the divisor: the standard deviation ([`Normalizer::fit`])
    /// or the spread around the window's context ([`Normalizer::fit_centred`]), at least
    /// [`MIN_STD`].
    pub std: Vec<f32>,
}

/// Smallest standard deviation divided by; constant features should be dropped before.
pub const MIN_STD: f32 = 1e-6;

impl Normalizer {
    /// Mean and population standard deviation of each column of `rows` (`f` columns), NaN
    /// values skipped; a column without values gets mean 0, std 1.
    pub fn fit(rows: &[f32], f: usize) -> Self {
        let mut sum = vec![0f64; f];
        let mut sq = vec![0f64; f];
        let mut count = vec![0u64; f];
        for row in rows.chunks_exact(f) {
            for (j, &v) in row.iter().enumerate() {
                if v.is_finite() {
                    sum[j] += f64::from(v);
                    sq[j] += f64::from(v) * f64::from(v);
                    count[j] += 1;
                }
            }
        }
        let mut mean = Vec::with_capacity(f);
        let mut std = Vec::with_capacity(f);
        for j in 0..f {
            if count[j] == 0 {
                mean.push(0.0);
                std.push(1.0);
                continue;
            }
            let m = sum[j] / count[j] as f64;
            let var = (sq[j] / count[j] as f64 - m * m).max(0.0);
            mean.push(m as f32);
            std.push((var.sqrt() as f32).max(MIN_STD));
        }
        Normalizer { mean, std }
    }

    /// For a model that centres each window on its context ([`crate::lstm_ae::LstmAeConfig::centre`]):
    /// the mean of every value of `windows`, and the standard deviation of each shot's deviation
    /// from the mean of its window's first W−1 shots (the scale of what the model sees), floored
    /// at 1 % of the feature's overall standard deviation so a feature that only moves between
    /// runs does not blow up. NaN values are skipped.
    pub fn fit_centred(windows: &Windows) -> Self {
        let (w, f) = (windows.w, windows.f);
        let overall = Normalizer::fit(&windows.data, f);
        let ctx = w.saturating_sub(1).max(1);
        let mut sq = vec![0f64; f];
        let mut count = vec![0u64; f];
        for i in 0..windows.n {
            let win = windows.window(i);
            for j in 0..f {
                let vals = (0..ctx).map(|t| win[t * f + j]).filter(|v| v.is_finite());
                let (s, c) = vals.fold((0f64, 0u64), |(s, c), v| (s + f64::from(v), c + 1));
                if c == 0 {
                    continue;
                }
                let m = s / c as f64;
                for t in 0..w {
                    let v = win[t * f + j];
                    if v.is_finite() {
                        sq[j] += (f64::from(v) - m).powi(2);
                        count[j] += 1;
                    }
                }
            }
        }
        let std = (0..f)
            .map(|j| {
                if count[j] == 0 {
                    return overall.std[j];
                }
                let s = (sq[j] / count[j] as f64).sqrt() as f32;
                s.max(0.01 * overall.std[j]).max(MIN_STD)
            })
            .collect();
        Normalizer { mean: overall.mean, std }
    }

    /// Standardised copy of `windows`.
    pub fn apply(&self, windows: &Windows) -> Windows {
        let f = windows.f;
        let data =
            windows.data.iter().enumerate().map(|(k, &v)| (v - self.mean[k % f]) / self.std[k % f]).collect();
        Windows { data, ..*windows }
    }
}
