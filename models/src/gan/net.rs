//! The conditional GAN's two networks (after the reference's `buildGAN`, see
//! `docs/augment.md`): the generator multiplies the noise by a label embedding and maps it
//! through Dense 128/256/512 (LeakyReLU 0.2, BatchNorm) to a `tanh` output; the discriminator
//! multiplies the sample by a label embedding and maps it through Dense 512/256/128 (LeakyReLU
//! 0.2, dropout 0.4 after the second and third layers) to one logit.
//!
//! Every weight and every dropout mask comes from the caller's seeded ChaCha generator, never
//! from burn's device RNG, so training is reproducible even while other threads use burn.

use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::{leaky_relu, tanh};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Slope of the LeakyReLU activations.
pub const LEAKY_SLOPE: f64 = 0.2;

/// A dense layer with Glorot-uniform weights and zero bias drawn from `rng`.
pub fn dense(d_in: usize, d_out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Linear {
    let limit = (6.0 / (d_in + d_out) as f64).sqrt();
    let w: Vec<f32> = (0..d_in * d_out).map(|_| rng.random_range(-limit..limit) as f32).collect();
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

/// A `rows × cols` embedding table with N(0, 1)-like entries (sum of uniforms) from `rng`.
fn embedding(rows: usize, cols: usize, rng: &mut ChaCha8Rng, device: &Device) -> Param<Tensor<2>> {
    let w: Vec<f32> = (0..rows * cols).map(|_| normal(rng) as f32).collect();
    Param::from_tensor(Tensor::from_data(TensorData::new(w, [rows, cols]), device))
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One-hot rows for labels in `0..classes`.
pub fn one_hot(labels: &[usize], classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l.min(classes - 1)] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [labels.len(), classes]), device)
}

/// The generator: `(noise ⊙ embed(label)) → [Dense → LeakyReLU → BatchNorm]… → Dense → tanh`.
#[derive(Module, Debug)]
pub struct Generator {
    embed: Param<Tensor<2>>,
    hidden: Vec<Linear>,
    norms: Vec<BatchNorm>,
    out: Linear,
}

impl Generator {
    /// A new generator for `features` outputs.
    pub fn new(
        latent: usize,
        classes: usize,
        hidden: &[usize],
        features: usize,
        bn_momentum: f64,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let embed = embedding(classes, latent, rng, device);
        let mut layers = Vec::new();
        let mut norms = Vec::new();
        let mut d_in = latent;
        for &h in hidden {
            layers.push(dense(d_in, h, rng, device));
            norms.push(BatchNormConfig::new(h).with_momentum(bn_momentum).init(device));
            d_in = h;
        }
        let out = dense(d_in, features, rng, device);
        Generator { embed, hidden: layers, norms, out }
    }

    /// Rows in the scaled space `[-1, 1]`: `noise` is `[n, latent]`, `labels` one-hot `[n, classes]`.
    pub fn forward(&self, noise: Tensor<2>, labels: Tensor<2>) -> Tensor<2> {
        let mut x = noise.mul(labels.matmul(self.embed.val()));
        for (layer, norm) in self.hidden.iter().zip(&self.norms) {
            x = norm.forward(leaky_relu(layer.forward(x), LEAKY_SLOPE));
        }
        tanh(self.out.forward(x))
    }
}

/// The discriminator: `(sample ⊙ embed(label)) → Dense → LeakyReLU → [Dense → LeakyReLU →
/// Dropout]… → Dense(1)`, a logit.
#[derive(Module, Debug)]
pub struct Discriminator {
    embed: Param<Tensor<2>>,
    hidden: Vec<Linear>,
    out: Linear,
}

impl Discriminator {
    /// A new discriminator for samples of `features` columns.
    pub fn new(
        classes: usize,
        hidden: &[usize],
        features: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let embed = embedding(classes, features, rng, device);
        let mut layers = Vec::new();
        let mut d_in = features;
        for &h in hidden {
            layers.push(dense(d_in, h, rng, device));
            d_in = h;
        }
        Discriminator { embed, hidden: layers, out: dense(d_in, 1, rng, device) }
    }

    /// Logits `[n, 1]`. Layers after the first drop units with probability `dropout`, the masks
    /// drawn from `rng` (no dropout when `rng` is `None`).
    pub fn forward(
        &self,
        x: Tensor<2>,
        labels: Tensor<2>,
        dropout: f64,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Tensor<2> {
        let mut x = x.mul(labels.matmul(self.embed.val()));
        for (i, layer) in self.hidden.iter().enumerate() {
            x = leaky_relu(layer.forward(x), LEAKY_SLOPE);
            if i > 0
                && dropout > 0.0
                && let Some(r) = rng.as_deref_mut()
            {
                let mask = dropout_mask(x.dims(), dropout, r, &x.device());
                x = x.mul(mask);
            }
        }
        self.out.forward(x)
    }
}

/// An inverted-dropout mask: 0 with probability `p`, else `1 / (1 - p)`.
fn dropout_mask(dims: [usize; 2], p: f64, rng: &mut ChaCha8Rng, device: &Device) -> Tensor<2> {
    let keep = (1.0 / (1.0 - p)) as f32;
    let v: Vec<f32> =
        (0..dims[0] * dims[1]).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }).collect();
    Tensor::from_data(TensorData::new(v, dims), device)
}
