//! The LSTM autoencoder over windows of consecutive shots: stacked LSTM encoder, its last
//! hidden state repeated over the window, a mirrored LSTM decoder and a dense output layer
//! per time step. The default (16-4 / 4-16) is the original's architecture, but over real
//! windows instead of one-shot "sequences".

use crate::autoencoder::{Autoencoder, linear};
use crate::lstm::FusedLstm;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Shape of an [`LstmAe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmAeConfig {
    /// Features per shot (F).
    pub features: usize,
    /// Encoder hidden sizes; the decoder mirrors them (`[16, 4]` → decoder `[4, 16]`).
    pub encoder: Vec<usize>,
    /// The encoder sees the first W−1 shots only, so the last shot is predicted from the ones
    /// before it rather than reconstructed from a code that already saw it.
    #[serde(default)]
    pub predict_last: bool,
}

impl LstmAeConfig {
    /// The original's 16-4-4-16 over `features` features.
    pub fn new(features: usize) -> Self {
        LstmAeConfig { features, encoder: vec![16, 4], predict_last: true }
    }

    /// Decoder hidden sizes: the encoder's, reversed.
    pub fn decoder(&self) -> Vec<usize> {
        self.encoder.iter().rev().copied().collect()
    }

    /// A model with weights drawn from a generator seeded with `seed`.
    pub fn init(&self, seed: u64, device: &Device) -> anyhow::Result<LstmAe> {
        anyhow::ensure!(self.features > 0, "an LSTM autoencoder needs at least one feature");
        anyhow::ensure!(
            !self.encoder.is_empty() && self.encoder.iter().all(|&h| h > 0),
            "encoder sizes must be non-empty and positive, not {:?}",
            self.encoder
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut d_in = self.features;
        let mut encoder = Vec::new();
        for &h in &self.encoder {
            encoder.push(FusedLstm::new(d_in, h, &mut rng, device));
            d_in = h;
        }
        let mut decoder = Vec::new();
        for h in self.decoder() {
            decoder.push(FusedLstm::new(d_in, h, &mut rng, device));
            d_in = h;
        }
        let output = linear(d_in, self.features, &mut rng, device);
        Ok(LstmAe { encoder, decoder, output, predict_last: self.predict_last })
    }
}

/// The LSTM autoencoder; see the module doc.
#[derive(Module, Debug)]
pub struct LstmAe {
    pub encoder: Vec<FusedLstm>,
    pub decoder: Vec<FusedLstm>,
    pub output: Linear,
    /// See [`LstmAeConfig::predict_last`].
    pub predict_last: bool,
}

impl Autoencoder for LstmAe {
    fn reconstruct(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, w, _] = x.dims();
        let mut seq = if self.predict_last && w > 1 { x.narrow(1, 0, w - 1) } else { x };
        let mut last = None;
        for layer in &self.encoder {
            let (all, h) = layer.forward(seq);
            seq = all;
            last = Some(h);
        }
        // `init` refuses an empty encoder, so `last` is set.
        let code = last.map_or(seq.clone(), |h| h.unsqueeze_dim::<3>(1).repeat_dim(1, w));
        let mut seq = code;
        for layer in &self.decoder {
            seq = layer.forward(seq).0;
        }
        self.output.forward(seq)
    }
}
