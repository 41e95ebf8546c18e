//! Runs an exported graph with tract (the edge's default runtime) — the parity check after
//! export and in tests.

use crate::data::Windows;
use crate::score::Scores;
use tract_onnx::prelude::*;

/// Scores and contributions of raw `windows` by the ONNX model `bytes`, run with tract.
pub fn tract_scores(bytes: &[u8], windows: &Windows) -> anyhow::Result<Scores> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| anyhow::anyhow!("tract cannot read the model: {e:?}"))?
        .with_input_fact(0, f32::fact([windows.n, windows.w, windows.f]).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| anyhow::anyhow!("tract cannot prepare the model: {e:?}"))?;
    let input =
        tract_ndarray::Array3::from_shape_vec((windows.n, windows.w, windows.f), windows.data.clone())?;
    let out = model
        .run(tvec!(input.into_tensor().into()))
        .map_err(|e| anyhow::anyhow!("tract run failed: {e:?}"))?;
    anyhow::ensure!(out.len() == 2, "model has {} outputs, not 2", out.len());
    let view = |k: usize| -> anyhow::Result<Vec<f32>> {
        Ok(out[k]
            .to_plain_array_view::<f32>()
            .map_err(|e| anyhow::anyhow!("output {k}: {e:?}"))?
            .iter()
            .copied()
            .collect())
    };
    Ok(Scores { score: view(0)?, contributions: view(1)? })
}
