//! ONNX export of a fitted [`Pca`] monitor on the bundle's graph contract: the window's last
//! shot (`Gather`), standardised (`Sub`, `Div`), contributions `z ⊙ (z M) + (z R)²` (two
//! `MatMul`s; `M` and `R` are symmetric, so `z M` is `(M z)ᵀ`) and their mean as the score,
//! exactly as [`Pca::score`] computes them.

use super::graph::{Attr, Dim, Graph};
use crate::pca::Pca;
use moldops_shared::bundle::{CONTRIB_OUTPUT, INPUT_NAME};
use prost::Message;

/// Serialised ONNX model of `pca` for windows of `window` shots.
pub fn export_pca(pca: &Pca, window: usize) -> anyhow::Result<Vec<u8>> {
    let f = pca.features();
    anyhow::ensure!(f > 0 && pca.norm.std.len() == f, "PCA has {} means and {} stds", f, pca.norm.std.len());
    anyhow::ensure!(pca.t2.len() == f * f && pca.q.len() == f * f, "PCA matrices are not {f} × {f}");
    anyhow::ensure!(window > 0, "window must be > 0");
    let mut g = Graph::default();
    g.input(INPUT_NAME, &[Dim::Named("N"), Dim::Fixed(window), Dim::Fixed(f)]);
    let last_step = g.int64("last_step", &[], &[window as i64 - 1]);
    let last = g.op("Gather", &[INPUT_NAME, &last_step], vec![("axis", Attr::Int(1))]);
    let mean = g.float("mean", &[f], &pca.norm.mean);
    let std = g.float("std", &[f], &pca.norm.std);
    let centred = g.op("Sub", &[&last, &mean], vec![]);
    let z = g.op("Div", &[&centred, &std], vec![]);
    let m = g.float("t2_matrix", &[f, f], &pca.t2);
    let r = g.float("q_matrix", &[f, f], &pca.q);
    let zm = g.op("MatMul", &[&z, &m], vec![]);
    let t2 = g.op("Mul", &[&z, &zm], vec![]);
    let res = g.op("MatMul", &[&z, &r], vec![]);
    let q = g.op("Mul", &[&res, &res], vec![]);
    g.node_named("Add", &[&t2, &q], &[CONTRIB_OUTPUT.to_string()], vec![], "contributions");
    g.score_outputs(f);
    let doc = format!(
        "moldops PCA monitor (T² and Q): window {window} (last shot scored), {f} features, {} components",
        pca.components
    );
    Ok(g.into_model("moldops_pca", &doc).encode_to_vec())
}
