//! Anomaly scores of windows: per-feature absolute reconstruction error of the window's last
//! shot ([`ScoreMode::Last`]: each new shot with the W−1 before it), its squared error
//! ([`ScoreMode::LastSquared`], the default: one feature far off counts more than many a little
//! off) or the absolute error averaged over the window ([`ScoreMode::Window`]); the score is the
//! mean over features. The ONNX export computes exactly this, so the edge alarms on the mode the
//! bundle was trained with.

use crate::autoencoder::Autoencoder;
use crate::data::Windows;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Which reconstruction errors make a window's score. The default, as `train --score-mode`'s,
/// is [`LastSquared`](ScoreMode::LastSquared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMode {
    /// The last shot's absolute errors.
    Last,
    /// The absolute errors averaged over all shots of the window.
    Window,
    /// The last shot's squared errors.
    #[default]
    LastSquared,
}

impl std::str::FromStr for ScoreMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "last" => Ok(ScoreMode::Last),
            "window" => Ok(ScoreMode::Window),
            "last_squared" => Ok(ScoreMode::LastSquared),
            other => anyhow::bail!("score mode must be last, last_squared or window, not {other:?}"),
        }
    }
}

/// Scores of `n` windows and their per-feature contributions (`[n, f]`, row-major).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    /// One score per window, in window order: the mean of its contributions.
    pub score: Vec<f32>,
    /// Per window and feature, the reconstruction error the [`ScoreMode`] selects, `[n, f]`.
    pub contributions: Vec<f32>,
}

/// Scores standardised `windows` with a model in inference form (`model.valid()`), in
/// batches of `batch` windows.
pub fn score<M: Autoencoder>(
    model: &M,
    windows: &Windows,
    mode: ScoreMode,
    batch: usize,
    device: &Device,
) -> anyhow::Result<Scores> {
    let mut out = Scores::default();
    let batch = batch.max(1);
    let mut start = 0;
    while start < windows.n {
        let end = (start + batch).min(windows.n);
        let x = windows.tensor(start, end, device);
        let diff = model.reconstruct(x.clone()) - x;
        let err = if mode == ScoreMode::LastSquared { diff.square() } else { diff.abs() };
        let [n, w, f] = err.dims();
        let contrib = match mode {
            ScoreMode::Last | ScoreMode::LastSquared => err.narrow(1, w - 1, 1).reshape([n, f]),
            ScoreMode::Window => err.mean_dim(1).reshape([n, f]),
        };
        let s = contrib.clone().mean_dim(1).reshape([n]);
        out.contributions.extend(read(contrib.into_data())?);
        out.score.extend(read(s.into_data())?);
        start = end;
    }
    Ok(out)
}

pub(crate) fn read(data: burn::tensor::TensorData) -> anyhow::Result<Vec<f32>> {
    data.try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("reading a tensor back: {e:?}"))
}
