//! What the training loop, the scorer and the exporter need from a model: a reconstruction of
//! a standardised window `[N, W, F]`, and a dense layer built from a seeded generator.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

/// A model that reconstructs windows of standardised shots.
pub trait Autoencoder: Module {
    /// Reconstruction of `x` (`[N, W, F]` → `[N, W, F]`).
    fn reconstruct(&self, x: Tensor<3>) -> Tensor<3>;
}

/// A dense layer with PyTorch's initialisation, `U(-1/√d_in, 1/√d_in)`, drawn from `rng`.
pub fn linear(d_in: usize, d_out: usize, rng: &mut impl Rng, device: &Device) -> Linear {
    let k = 1.0 / (d_in as f32).sqrt();
    let w = crate::lstm::uniform(rng, d_in * d_out, k);
    let b = crate::lstm::uniform(rng, d_out, k);
    Linear {
        weight: Param::from_data(TensorData::new(w, [d_in, d_out]), device),
        bias: Some(Param::from_data(TensorData::new(b, [d_out]), device)),
    }
}
