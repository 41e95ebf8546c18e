//! Conditional GAN for tabular rows (the reference's `buildGAN`, fixed): trains on rows of
//! two classes and generates rows of a chosen class — in moldops, defect shots for augmentation.
//!
//! What differs from the reference, and why:
//! - **Output range.** Columns are min–max scaled to `[-1, 1]` on the training rows
//!   ([`MinMax`]), so the generator's `tanh` output covers the whole scaled range; the
//!   reference put `tanh` on standardized data, which cannot reach values beyond one standard
//!   deviation. Generated rows are mapped back with the same scaler.
//! - **Two optimizers** (Adam, lr 2e-4, β1 0.5 each) instead of one shared by both networks.
//! - **Seeded.** Weights, batches, noise, label smoothing and dropout masks all come from one
//!   ChaCha generator seeded by [`GanConfig::seed`]; see [`net`].
//! - **Loss on logits.** Binary cross-entropy is computed from the discriminator's logit with
//!   `log_sigmoid`, which is the reference's sigmoid + BCE without its overflow.
//!
//! Kept from the reference: latent 32, label embedding multiplied into the noise / sample,
//! layer sizes, LeakyReLU 0.2, BatchNorm (Keras momentum 0.8 = burn momentum 0.2), dropout 0.4,
//! batches of 32 with 8 rows of the positive class drawn with replacement, one-sided noisy
//! label smoothing (real ~ U[1.0, 1.1], fake ~ U[-0.1, 0]) for the first 2/3 of the steps,
//! generator trained on random labels with target 1.
//!
//! CPU by default: pass `Device::flex()`; any other burn device works the same.

pub mod net;

/// The burn device type, for callers that do not depend on burn themselves.
pub use burn::tensor::Device;
#[cfg(test)]
mod tests;

use anyhow::{Result, bail, ensure};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_sigmoid;
use net::{Discriminator, Generator, normal, one_hot};
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of the GAN and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// Noise dimension.
    pub latent: usize,
    /// Generator hidden layer widths.
    pub generator_hidden: Vec<usize>,
    /// Discriminator hidden layer widths.
    pub discriminator_hidden: Vec<usize>,
    /// Training steps (one batch each).
    pub steps: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Rows of the positive class (label 1) in each batch.
    pub positives_per_batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Adam β1.
    pub beta1: f32,
    /// Fraction of the steps that use noisy label smoothing.
    pub smoothing_fraction: f64,
    /// Discriminator dropout probability.
    pub dropout: f64,
    /// BatchNorm momentum (weight of the new batch statistics).
    pub batchnorm_momentum: f64,
    /// Seed of everything random in training.
    pub seed: u64,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            latent: 32,
            generator_hidden: vec![128, 256, 512],
            discriminator_hidden: vec![512, 256, 128],
            steps: 600,
            batch: 32,
            positives_per_batch: 8,
            learning_rate: 2e-4,
            beta1: 0.5,
            smoothing_fraction: 2.0 / 3.0,
            dropout: 0.4,
            batchnorm_momentum: 0.2,
            seed: 42,
        }
    }
}

/// Per-column min–max scaling to `[-1, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    /// Per column, the middle of the fitted rows' range, `(min + max) / 2`; maps to 0.
    pub center: Vec<f64>,
    /// Per column, half the fitted range, `(max − min) / 2`; 1 for a constant column.
    pub half_range: Vec<f64>,
}

impl MinMax {
    /// Fits on `rows` (all of the same width, at least one). A constant column gets half-range 1.
    pub fn fit(rows: &[Vec<f64>]) -> Self {
        let width = rows.first().map_or(0, Vec::len);
        let mut lo = vec![f64::INFINITY; width];
        let mut hi = vec![f64::NEG_INFINITY; width];
        for r in rows {
            for (j, &v) in r.iter().enumerate() {
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        let center = lo.iter().zip(&hi).map(|(l, h)| (l + h) / 2.0).collect();
        let half_range = lo.iter().zip(&hi).map(|(l, h)| if h > l { (h - l) / 2.0 } else { 1.0 }).collect();
        MinMax { center, half_range }
    }

    /// Maps a row into `[-1, 1]` (rows inside the fitted range).
    pub fn transform(&self, row: &[f64]) -> Vec<f64> {
        row.iter().zip(&self.center).zip(&self.half_range).map(|((v, c), h)| (v - c) / h).collect()
    }

    /// Maps a scaled row back.
    pub fn inverse(&self, row: &[f64]) -> Vec<f64> {
        row.iter().zip(&self.center).zip(&self.half_range).map(|((v, c), h)| v * h + c).collect()
    }
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// Training steps run, one batch each ([`GanConfig::steps`]).
    pub steps: usize,
    /// `(step, discriminator loss, generator loss)` every 50 steps and at the last step.
    pub losses: Vec<(usize, f32, f32)>,
}

/// A trained generator with its scaler.
#[derive(Debug)]
pub struct Gan {
    generator: Generator,
    scaler: MinMax,
    latent: usize,
    device: Device,
}

/// Number of classes the GAN conditions on.
pub const CLASSES: usize = 2;

/// Trains on `rows` with `labels` in {0, 1} (both present). `progress(step, steps)` is called
/// after every step. `device` is a plain device (autodiff is added for training).
pub fn train(
    rows: &[Vec<f64>],
    labels: &[usize],
    cfg: &GanConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Gan, TrainLog)> {
    ensure!(rows.len() == labels.len(), "{} rows but {} labels", rows.len(), labels.len());
    ensure!(cfg.batch > cfg.positives_per_batch, "batch must exceed positives_per_batch");
    ensure!((0.0..1.0).contains(&cfg.dropout), "dropout must be within [0, 1)");
    let width = rows.first().map_or(0, Vec::len);
    ensure!(width > 0, "no columns to learn");
    if let Some(r) = rows.iter().find(|r| r.len() != width || r.iter().any(|v| !v.is_finite())) {
        bail!("a training row has {} values (expected {width}) or a non-finite value", r.len());
    }
    let pos: Vec<usize> = (0..rows.len()).filter(|&i| labels[i] == 1).collect();
    let neg: Vec<usize> = (0..rows.len()).filter(|&i| labels[i] == 0).collect();
    ensure!(
        !pos.is_empty() && !neg.is_empty(),
        "both classes are needed ({} positive, {} negative)",
        pos.len(),
        neg.len()
    );

    let scaler = MinMax::fit(rows);
    let scaled: Vec<Vec<f32>> =
        rows.iter().map(|r| scaler.transform(r).into_iter().map(|v| v as f32).collect()).collect();
    let ad = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut g = Generator::new(
        cfg.latent,
        CLASSES,
        &cfg.generator_hidden,
        width,
        cfg.batchnorm_momentum,
        &mut rng,
        &ad,
    );
    let mut d = Discriminator::new(CLASSES, &cfg.discriminator_hidden, width, &mut rng, &ad);
    let adam = AdamConfig::new().with_beta_1(cfg.beta1).with_epsilon(1e-7);
    let (mut opt_g, mut opt_d) = (adam.init(), adam.init());
    let smooth_until = (cfg.steps as f64 * cfg.smoothing_fraction) as usize;
    let n = cfg.batch;
    let mut log = TrainLog { steps: cfg.steps, losses: Vec::new() };

    for step in 0..cfg.steps {
        // Discriminator: a real batch (8 positives, 24 negatives) and fakes of the same labels.
        let mut idx: Vec<usize> = (0..n)
            .map(|k| {
                if k < cfg.positives_per_batch {
                    pos[rng.random_range(0..pos.len())]
                } else {
                    neg[rng.random_range(0..neg.len())]
                }
            })
            .collect();
        idx.shuffle(&mut rng);
        let batch_labels: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
        let real: Vec<f32> = idx.iter().flat_map(|&i| scaled[i].iter().copied()).collect();
        let real = Tensor::<2>::from_data(TensorData::new(real, [n, width]), &ad);
        let onehot = one_hot(&batch_labels, CLASSES, &ad);
        let smooth = step < smooth_until;
        let t_real = targets(n, if smooth { Some((1.0, 1.1)) } else { None }, 1.0, &mut rng, &ad);
        let t_fake = targets(n, if smooth { Some((-0.1, 0.0)) } else { None }, 0.0, &mut rng, &ad);
        let fake = g.forward(noise(n, cfg.latent, &mut rng, &ad), onehot.clone()).detach();
        let loss_real = bce(d.forward(real, onehot.clone(), cfg.dropout, Some(&mut rng)), t_real);
        let loss_fake = bce(d.forward(fake, onehot, cfg.dropout, Some(&mut rng)), t_fake);
        let d_loss = (loss_real + loss_fake).div_scalar(2.0);
        let d_value: f32 = d_loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(d_loss.backward(), &d);
        d = opt_d.step(cfg.learning_rate, d, grads);

        // Generator: random labels, target "real".
        let gl: Vec<usize> = (0..n).map(|_| rng.random_range(0..CLASSES)).collect();
        let onehot = one_hot(&gl, CLASSES, &ad);
        let gen_rows = g.forward(noise(n, cfg.latent, &mut rng, &ad), onehot.clone());
        let ones = Tensor::<2>::ones([n, 1], &ad);
        let g_loss = bce(d.forward(gen_rows, onehot, cfg.dropout, Some(&mut rng)), ones);
        let g_value: f32 = g_loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(g_loss.backward(), &g);
        g = opt_g.step(cfg.learning_rate, g, grads);

        if step % 50 == 0 || step + 1 == cfg.steps {
            log.losses.push((step, d_value, g_value));
        }
        progress(step + 1, cfg.steps);
    }
    Ok((Gan { generator: g.valid(), scaler, latent: cfg.latent, device: device.clone() }, log))
}

/// Mean binary cross-entropy of logits against (possibly soft) targets.
fn bce(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let pos = log_sigmoid(logits.clone());
    let neg = log_sigmoid(logits.neg());
    let one_minus = targets.clone().neg().add_scalar(1.0);
    (targets.mul(pos) + one_minus.mul(neg)).neg().mean()
}

/// Targets `[n, 1]`: uniform in `range` when given, else `hard`.
fn targets(
    n: usize,
    range: Option<(f64, f64)>,
    hard: f32,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<2> {
    let v: Vec<f32> =
        (0..n).map(|_| range.map_or(hard, |(lo, hi)| rng.random_range(lo..=hi) as f32)).collect();
    Tensor::from_data(TensorData::new(v, [n, 1]), device)
}

/// Standard normal noise `[n, latent]`.
fn noise(n: usize, latent: usize, rng: &mut ChaCha8Rng, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..n * latent).map(|_| normal(rng) as f32).collect();
    Tensor::from_data(TensorData::new(v, [n, latent]), device)
}

impl Gan {
    /// `n` rows of class `label` in the scaled space (each value within `[-1, 1]`).
    pub fn generate_scaled(&self, n: usize, label: usize, seed: u64) -> Result<Vec<Vec<f64>>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        ensure!(label < CLASSES, "label {label} is not a class");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z = noise(n, self.latent, &mut rng, &self.device);
        let out = self.generator.forward(z, one_hot(&vec![label; n], CLASSES, &self.device));
        let width = out.dims()[1];
        let values: Vec<f32> = out
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading generated rows: {e:?}"))?;
        Ok(values.chunks(width).map(|c| c.iter().map(|&v| v as f64).collect()).collect())
    }

    /// `n` rows of class `label` in the original units.
    pub fn generate(&self, n: usize, label: usize, seed: u64) -> Result<Vec<Vec<f64>>> {
        Ok(self.generate_scaled(n, label, seed)?.iter().map(|r| self.scaler.inverse(r)).collect())
    }

    /// The scaler fitted on the training rows.
    pub fn scaler(&self) -> &MinMax {
        &self.scaler
    }
}
