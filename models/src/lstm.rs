//! One LSTM layer with its four gates fused into one weight matrix, laid out the way ONNX's
//! `LSTM` operator stores them, so that export is a transpose and nothing else.
//!
//! `w` is `[d_input, 4H]`, `r` is `[H, 4H]`, `b` is `[4H]`; the column blocks are the gates in
//! ONNX order i, o, f, c. Per step: `g = x_t·w + h·r + b`, `i, o, f = σ(g_i, g_o, g_f)`,
//! `c̃ = tanh(g_c)`, `c = f⊙c + i⊙c̃`, `h = o⊙tanh(c)` — ONNX's default activations. The input
//! projection of all time steps is one matrix product before the recurrence, which is why this
//! layer is used instead of `burn::nn::Lstm` (four separate gate controllers, eight products
//! per step).

use burn::module::{Module, Param};
use burn::tensor::Device;
use burn::tensor::{Tensor, TensorData, activation};
use rand::Rng;

/// A batch-first LSTM layer (`[N, T, d_input]` → `[N, T, H]`).
#[derive(Module, Debug)]
pub struct FusedLstm {
    /// Input weights `[d_input, 4H]`, gate blocks i, o, f, c.
    pub w: Param<Tensor<2>>,
    /// Recurrent weights `[H, 4H]`.
    pub r: Param<Tensor<2>>,
    /// Bias `[4H]`.
    pub b: Param<Tensor<1>>,
    /// Width of each input step (`d_input`).
    pub d_input: usize,
    /// Hidden size H: the width of each output step and of the cell state.
    pub d_hidden: usize,
}

/// Uniform `U(-k, k)` values from the caller's seeded generator.
pub(crate) fn uniform(rng: &mut impl Rng, n: usize, k: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-k..=k)).collect()
}

impl FusedLstm {
    /// A layer with PyTorch's initialisation, `U(-1/√H, 1/√H)`, drawn from `rng`; the forget
    /// gate's bias starts at 1.
    pub fn new(d_input: usize, d_hidden: usize, rng: &mut impl Rng, device: &Device) -> Self {
        let h = d_hidden;
        let k = 1.0 / (h as f32).sqrt();
        let w = uniform(rng, d_input * 4 * h, k);
        let r = uniform(rng, h * 4 * h, k);
        let mut b = uniform(rng, 4 * h, k);
        for v in &mut b[2 * h..3 * h] {
            *v = 1.0;
        }
        FusedLstm {
            w: Param::from_data(TensorData::new(w, [d_input, 4 * h]), device),
            r: Param::from_data(TensorData::new(r, [h, 4 * h]), device),
            b: Param::from_data(TensorData::new(b, [4 * h]), device),
            d_input,
            d_hidden,
        }
    }

    /// All hidden states `[N, T, H]` and the last one `[N, H]`, from zero initial state.
    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<2>) {
        let [n, t, d] = x.dims();
        let h_dim = self.d_hidden;
        let device = x.device();
        let projected = (x.reshape([n * t, d]).matmul(self.w.val()) + self.b.val().unsqueeze_dim(0))
            .reshape([n, t, 4 * h_dim]);
        let r = self.r.val();
        let mut h = Tensor::<2>::zeros([n, h_dim], &device);
        let mut c = Tensor::<2>::zeros([n, h_dim], &device);
        let mut all = Vec::with_capacity(t);
        for step in 0..t {
            let g = projected.clone().narrow(1, step, 1).reshape([n, 4 * h_dim]) + h.matmul(r.clone());
            let gates = activation::sigmoid(g.clone().narrow(1, 0, 3 * h_dim));
            let i = gates.clone().narrow(1, 0, h_dim);
            let o = gates.clone().narrow(1, h_dim, h_dim);
            let f = gates.narrow(1, 2 * h_dim, h_dim);
            let candidate = g.narrow(1, 3 * h_dim, h_dim).tanh();
            c = f * c + i * candidate;
            h = o * c.clone().tanh();
            all.push(h.clone());
        }
        (Tensor::stack(all, 1), h)
    }
}
