//! The baseline: a dense autoencoder over one shot at a time (F → 16 → 4 → 16 → F, ReLU in
//! the hidden layers, linear bottleneck). This is what the original's one-step LSTM amounted
//! to, so beside the window model it shows what looking at the shots before adds.

use crate::autoencoder::{Autoencoder, linear};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, activation};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Shape of a [`DenseAe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseAeConfig {
    /// Features per shot (F): the width of the input and of the reconstruction.
    pub features: usize,
    /// Hidden sizes, the middle one the bottleneck (default `[16, 4, 16]`).
    pub hidden: Vec<usize>,
}

impl DenseAeConfig {
    /// The baseline's default shape over `features` features: hidden sizes `[16, 4, 16]`.
    pub fn new(features: usize) -> Self {
        DenseAeConfig { features, hidden: vec![16, 4, 16] }
    }

    /// A model with weights drawn from a generator seeded with `seed`.
    pub fn init(&self, seed: u64, device: &Device) -> anyhow::Result<DenseAe> {
        anyhow::ensure!(self.features > 0, "a dense autoencoder needs at least one feature");
        anyhow::ensure!(
            self.hidden.iter().all(|&h| h > 0),
            "hidden sizes must be positive, not {:?}",
            self.hidden
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::new();
        let mut d_in = self.features;
        for &h in self.hidden.iter().chain(std::iter::once(&self.features)) {
            layers.push(linear(d_in, h, &mut rng, device));
            d_in = h;
        }
        Ok(DenseAe { layers, bottleneck: self.hidden.len() / 2 })
    }
}

/// The per-shot dense autoencoder; see the module doc.
#[derive(Module, Debug)]
pub struct DenseAe {
    /// The dense layers, input to output: one per hidden size, then one back to F features.
    pub layers: Vec<Linear>,
    /// Index of the layer whose output is the (linear) bottleneck.
    pub bottleneck: usize,
}

impl Autoencoder for DenseAe {
    fn reconstruct(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, w, f] = x.dims();
        let mut y = x.reshape([n * w, f]);
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            y = layer.forward(y);
            if k != last && k != self.bottleneck {
                y = activation::relu(y);
            }
        }
        y.reshape([n, w, f])
    }
}
