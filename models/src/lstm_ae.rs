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
    /// Each window is centred on the mean of its first W−1 shots before the LSTMs see it (and
    /// the mean added back to the output), so the model learns how a shot deviates from the
    /// shots just before it: a run at a new operating point is not an anomaly, a sudden jump
    /// is. Pair it with [`crate::data::Normalizer::fit_centred`].
    #[serde(default)]
    pub centre: bool,
    /// When > 0, the centre is made robust to a few outlying context shots (say, a defect
    /// episode just before): the mean plus the mean of the shots' deviations from it clipped
    /// to ±`centre_clip` (standardised units).
    #[serde(default)]
    pub centre_clip: f32,
}

impl LstmAeConfig {
    /// The original's 16-4-4-16 over `features` features.
    pub fn new(features: usize) -> Self {
        LstmAeConfig { features, encoder: vec![16, 4], predict_last: true, centre: true, centre_clip: 1.0 }
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
        Ok(LstmAe {
            encoder,
            decoder,
            output,
            predict_last: self.predict_last,
            centre: self.centre,
            centre_clip: self.centre_clip,
        })
    }
}

/// The LSTM autoencoder; see the module doc.
#[derive(Module, Debug)]
pub struct LstmAe {
    /// Encoder layers in order, sized by [`LstmAeConfig::encoder`].
    pub encoder: Vec<FusedLstm>,
    /// Decoder layers in order, sized by [`LstmAeConfig::decoder`] (the encoder's, mirrored).
    pub decoder: Vec<FusedLstm>,
    /// Dense layer applied at every time step, from the last decoder size back to F features.
    pub output: Linear,
    /// See [`LstmAeConfig::predict_last`].
    pub predict_last: bool,
    /// See [`LstmAeConfig::centre`].
    pub centre: bool,
    /// See [`LstmAeConfig::centre_clip`].
    pub centre_clip: f32,
}

/// Centre of each window, `[N, 1, F]`: the mean over its first W−1 shots (all W when W is 1);
/// with `clip > 0` plus the mean of those shots' deviations from it clipped to ±`clip`.
pub fn context_centre(x: Tensor<3>, clip: f32) -> Tensor<3> {
    let [_, w, _] = x.dims();
    let ctx = if w > 1 { x.narrow(1, 0, w - 1) } else { x };
    let c = ctx.clone().mean_dim(1);
    if clip > 0.0 {
        let shift = (ctx - c.clone()).clamp(-clip, clip).mean_dim(1);
        return c + shift;
    }
    c
}

impl Autoencoder for LstmAe {
    fn reconstruct(&self, x: Tensor<3>) -> Tensor<3> {
        if self.centre {
            let c = context_centre(x.clone(), self.centre_clip);
            return self.reconstruct_centred(x - c.clone()) + c;
        }
        self.reconstruct_centred(x)
    }
}

impl LstmAe {
    /// The LSTMs and the output layer on an (already centred, if so configured) window.
    fn reconstruct_centred(&self, x: Tensor<3>) -> Tensor<3> {
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
