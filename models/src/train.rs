//! The training loop shared by every autoencoder: Adam on the mean squared reconstruction
//! error, mini-batches shuffled by a seeded generator, early stopping on the validation loss
//! (the best epoch's weights are kept), a progress bar per epoch in a terminal and a log line
//! per epoch otherwise. The same seed and data give the same weights on the CPU.

use crate::autoencoder::Autoencoder;
use crate::data::Windows;
use crate::score::read;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Most epochs.
    pub epochs: usize,
    /// Training windows per mini-batch (default 32).
    pub batch_size: usize,
    /// Adam learning rate (default 1e-3).
    pub learning_rate: f64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Seeds the batch order (the weights are seeded by the model's `init`).
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { epochs: 100, batch_size: 32, learning_rate: 1e-3, patience: 10, seed: 42 }
    }
}

/// Losses of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean squared reconstruction error over the epoch's training batches, as each was trained.
    pub train_loss: f64,
    /// Mean squared reconstruction error of the validation windows after the epoch; the
    /// training loss when there are none.
    pub val_loss: f64,
}

/// A trained model (inference form) and how training went.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model with the best epoch's weights, in inference form.
    pub model: M,
    /// Losses of every epoch run, in order.
    pub history: Vec<EpochLog>,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    /// True when early stopping ended training before [`TrainConfig::epochs`] epochs.
    pub stopped_early: bool,
    /// Wall-clock training time, in seconds.
    pub seconds: f64,
}

/// Trains `model` (created on `device`, which must not be an autodiff device: training runs on
/// `device.autodiff()`) on standardised windows. `val` may be empty: the training loss then
/// decides early stopping. `label` names the run in progress output.
pub fn fit<M>(
    model: M,
    train: &Windows,
    val: &Windows,
    cfg: &TrainConfig,
    device: &Device,
    label: &str,
) -> anyhow::Result<Trained<M>>
where
    M: Autoencoder,
{
    anyhow::ensure!(train.n > 0, "{label}: no training windows");
    anyhow::ensure!(cfg.batch_size > 0 && cfg.epochs > 0, "{label}: batch size and epochs must be > 0");
    let started = std::time::Instant::now();
    let ad = device.clone().autodiff();
    let mut model = model.to_device(&ad).train();
    let mut optim = AdamConfig::new().with_epsilon(1e-7).init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..train.n).collect();
    let bar = progress(cfg.epochs, label);
    let mut history = Vec::new();
    let (mut best, mut best_loss, mut best_epoch, mut stale) = (model.valid(), f64::INFINITY, 0, 0);
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            let batch = train.select(chunk);
            let x = batch.tensor(0, batch.n, &ad);
            let loss = (model.reconstruct(x.clone()) - x).square().mean();
            let value = read(loss.clone().into_data())?.first().copied().unwrap_or(f32::NAN);
            total += f64::from(value) * chunk.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
        }
        let train_loss = total / train.n as f64;
        let current = model.valid();
        let val_loss =
            if val.n > 0 { loss(&current, val, cfg.batch_size.max(256), device)? } else { train_loss };
        anyhow::ensure!(val_loss.is_finite(), "{label}: loss became {val_loss} in epoch {epoch}");
        history.push(EpochLog { epoch, train_loss, val_loss });
        if val_loss < best_loss {
            (best, best_loss, best_epoch, stale) = (current, val_loss, epoch, 0);
        } else {
            stale += 1;
        }
        match &bar {
            Some(b) => {
                b.set_message(format!(
                    "train {train_loss:.4} · val {val_loss:.4} · best {best_loss:.4} @{best_epoch}"
                ));
                b.inc(1);
            }
            None => tracing::info!(model = label, epoch, train_loss, val_loss, best_epoch, "epoch"),
        }
        if stale >= cfg.patience {
            break;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let stopped_early = history.len() < cfg.epochs;
    Ok(Trained { model: best, history, best_epoch, stopped_early, seconds: started.elapsed().as_secs_f64() })
}

/// Mean squared reconstruction error of standardised `windows` (inference form model).
pub fn loss<M: Autoencoder>(
    model: &M,
    windows: &Windows,
    batch: usize,
    device: &Device,
) -> anyhow::Result<f64> {
    let mut total = 0.0;
    let mut start = 0;
    while start < windows.n {
        let end = (start + batch.max(1)).min(windows.n);
        let x = windows.tensor(start, end, device);
        let l = read((model.reconstruct(x.clone()) - x).square().mean().into_data())?;
        total += f64::from(l.first().copied().unwrap_or(f32::NAN)) * (end - start) as f64;
        start = end;
    }
    Ok(total / windows.n.max(1) as f64)
}

fn progress(epochs: usize, label: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(epochs as u64);
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] epoch {pos}/{len} {msg}")
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_string());
    Some(bar)
}

#[cfg(test)]
mod tests;
