//! ONNX export of the model families, by hand on `tract_onnx::pb`: a trained [`LstmAe`] here
//! (burn has no LSTM export), a PCA monitor in [`pca`] ([`export_pca`]). Both follow the
//! bundle's graph contract (`moldops_shared::bundle`): input `window` `f32[N, W, F]` of raw
//! values, standardisation (`Sub`, `Div`) inside, outputs `score` `f32[N]` and `contributions`
//! `f32[N, F]` exactly as the model's own scoring ([`crate::score::score`]) computes them.
//!
//! burn works batch-first; ONNX's `LSTM` is sequence-first (`layout = 0`), so the standardised
//! input is transposed to `[W, N, F]` once and the reconstruction back at the end. Each
//! [`crate::lstm::FusedLstm`] becomes one `LSTM` node: `W = wᵀ`, `R = rᵀ` (gate blocks already
//! in ONNX's i, o, f, c order), `B = [b, 0]`; its `Y` (`[W, 1, N, H]`) is squeezed on axis 1.
//! The encoder's last `Y_h` (`[1, N, H]`) is repeated over the W steps (`Concat`) for the decoder.
//! A centring model ([`LstmAe::centre`]) subtracts the mean of the window's first W−1
//! standardised shots (`Slice`, `ReduceMean`, `Sub`) first; the error is then taken against
//! the centred window, which equals burn's error against the raw one.

mod check;
mod graph;
mod pca;

pub use check::tract_scores;
pub use pca::export_pca;

use crate::data::Normalizer;
use crate::lstm::FusedLstm;
use crate::lstm_ae::LstmAe;
use crate::score::{ScoreMode, read};
use graph::{Attr, Dim, Graph};
use moldops_shared::bundle::{CONTRIB_OUTPUT, INPUT_NAME};
use prost::Message;

/// Serialised ONNX model of `model` with `norm` baked in, for windows of `window` shots.
pub fn export_lstm_ae(
    model: &LstmAe,
    norm: &Normalizer,
    window: usize,
    mode: ScoreMode,
) -> anyhow::Result<Vec<u8>> {
    let f = norm.mean.len();
    anyhow::ensure!(f == norm.std.len() && f > 0, "normaliser has {} means and {} stds", f, norm.std.len());
    anyhow::ensure!(window > 0, "window must be > 0");
    let out_w = read(model.output.weight.val().into_data())?;
    anyhow::ensure!(out_w.len() % f == 0, "output layer does not produce {f} features");
    let mut g = Graph::default();
    g.input(INPUT_NAME, &[Dim::Named("N"), Dim::Fixed(window), Dim::Fixed(f)]);
    let mean = g.float("mean", &[f], &norm.mean);
    let std = g.float("std", &[f], &norm.std);
    let centred = g.op("Sub", &[INPUT_NAME, &mean], vec![]);
    let mut x = g.op("Div", &[&centred, &std], vec![]);
    if model.centre {
        // x − mean of its first W−1 shots (all W when W is 1), as `LstmAe::reconstruct`.
        let ctx = if window > 1 {
            let starts = g.int64("centre_starts", &[1], &[0]);
            let ends = g.int64("centre_ends", &[1], &[window as i64 - 1]);
            let axes = g.int64("centre_axes", &[1], &[1]);
            g.op("Slice", &[&x, &starts, &ends, &axes], vec![])
        } else {
            x.clone()
        };
        let mean = |g: &mut Graph, t: &str| {
            g.op("ReduceMean", &[t], vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))])
        };
        let mut c = mean(&mut g, &ctx);
        if model.centre_clip > 0.0 {
            let lo = g.float("centre_lo", &[], &[-model.centre_clip]);
            let hi = g.float("centre_hi", &[], &[model.centre_clip]);
            let dev = g.op("Sub", &[&ctx, &c], vec![]);
            let clipped = g.op("Clip", &[&dev, &lo, &hi], vec![]);
            let shift = mean(&mut g, &clipped);
            c = g.op("Add", &[&c, &shift], vec![]);
        }
        x = g.op("Sub", &[&x, &c], vec![]);
    }
    let mut seq = g.op("Transpose", &[&x], vec![("perm", Attr::Ints(vec![1, 0, 2]))]);
    if model.predict_last && window > 1 {
        let starts = g.int64("ctx_starts", &[1], &[0]);
        let ends = g.int64("ctx_ends", &[1], &[window as i64 - 1]);
        let axes0 = g.int64("ctx_axes", &[1], &[0]);
        seq = g.op("Slice", &[&seq, &starts, &ends, &axes0], vec![]);
    }
    let axes1 = g.int64("axes_1", &[1], &[1]);
    let mut last_h = String::new();
    for (k, layer) in model.encoder.iter().enumerate() {
        (seq, last_h) = lstm_node(&mut g, layer, &seq, &axes1, &format!("enc{k}"))?;
    }
    // W copies of the code along the time axis. (`Expand` to [W, 1, 1] is what this means,
    // but tract 0.23's declutter mis-shapes an LSTM fed by a broadcast; `Concat` is plain.)
    let copies: Vec<&str> = std::iter::repeat_n(last_h.as_str(), window).collect();
    seq = g.op("Concat", &copies, vec![("axis", Attr::Int(0))]);
    for (k, layer) in model.decoder.iter().enumerate() {
        (seq, _) = lstm_node(&mut g, layer, &seq, &axes1, &format!("dec{k}"))?;
    }
    let d_last = out_w.len() / f;
    let w_out = g.float("out_w", &[d_last, f], &out_w);
    let mut y = g.op("MatMul", &[&seq, &w_out], vec![]);
    if let Some(bias) = &model.output.bias {
        let b = g.float("out_b", &[f], &read(bias.val().into_data())?);
        y = g.op("Add", &[&y, &b], vec![]);
    }
    let recon = g.op("Transpose", &[&y], vec![("perm", Attr::Ints(vec![1, 0, 2]))]);
    let diff = g.op("Sub", &[&recon, &x], vec![]);
    let err = if mode == ScoreMode::LastSquared {
        g.op("Mul", &[&diff, &diff], vec![])
    } else {
        g.op("Abs", &[&diff], vec![])
    };
    let contrib_out = vec![CONTRIB_OUTPUT.to_string()];
    match mode {
        ScoreMode::Last | ScoreMode::LastSquared => {
            let last = g.int64("last_step", &[], &[window as i64 - 1]);
            g.node_named(
                "Gather",
                &[&err, &last],
                &contrib_out,
                vec![("axis", Attr::Int(1))],
                "contributions",
            );
        }
        ScoreMode::Window => g.node_named(
            "ReduceMean",
            &[&err],
            &contrib_out,
            vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))],
            "contributions",
        ),
    }
    g.score_outputs(f);
    let doc = format!("moldops LSTM autoencoder: window {window}, {f} features, score mode {mode:?}");
    Ok(g.into_model("moldops_lstm_ae", &doc).encode_to_vec())
}

/// One LSTM node over `input` (`[T, N, d_in]`); returns the squeezed `Y` (`[T, N, H]`) and `Y_h`.
fn lstm_node(
    g: &mut Graph,
    layer: &FusedLstm,
    input: &str,
    axes1: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let (d_in, h) = (layer.d_input, layer.d_hidden);
    let w = read(layer.w.val().into_data())?;
    let r = read(layer.r.val().into_data())?;
    let b = read(layer.b.val().into_data())?;
    anyhow::ensure!(
        w.len() == d_in * 4 * h && r.len() == h * 4 * h && b.len() == 4 * h,
        "{name}: weight shapes"
    );
    let w_t = g.float(&format!("{name}_W"), &[1, 4 * h, d_in], &transpose(&w, d_in, 4 * h));
    let r_t = g.float(&format!("{name}_R"), &[1, 4 * h, h], &transpose(&r, h, 4 * h));
    let mut bias = b;
    bias.extend(std::iter::repeat_n(0.0, 4 * h));
    let b_t = g.float(&format!("{name}_B"), &[1, 8 * h], &bias);
    let outs = g.node("LSTM", &[input, &w_t, &r_t, &b_t], 2, vec![("hidden_size", Attr::Int(h as i64))]);
    let y = g.op("Squeeze", &[&outs[0], axes1], vec![]);
    Ok((y, outs[1].clone()))
}

/// `m` (`rows × cols`, row-major) transposed.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; m.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = m[i * cols + j];
        }
    }
    out
}

#[cfg(test)]
mod tests;
