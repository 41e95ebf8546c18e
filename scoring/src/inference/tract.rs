//! The tract backend (pure Rust, default): the graph is typed for one window `[1, W, F]` and
//! optimised once; each shot runs it in a fresh run state. A state kept between shots would
//! keep its operators' inner state too (an LSTM's scan), and the same window would score
//! differently each time.

use super::{Engine, Output};
use anyhow::{Context, Result, anyhow};
use moldops_shared::bundle::{CONTRIB_OUTPUT, INPUT_NAME, SCORE_OUTPUT};
use tract_onnx::prelude::*;

/// A bundle's graph optimised by tract for one window shape.
pub struct TractEngine {
    plan: std::sync::Arc<TypedRunnableModel>,
    shape: [usize; 3],
    score_at: usize,
    contrib_at: usize,
}

impl TractEngine {
    /// Parses, types and optimises `onnx` for one window of `window` × `features`.
    pub fn new(onnx: &[u8], window: usize, features: usize) -> Result<Self> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .map_err(|e| anyhow!("ONNX graph does not load: {e}"))?;
        let inputs: Vec<String> =
            model.input_outlets()?.iter().map(|o| model.node(o.node).name.clone()).collect();
        if inputs != [INPUT_NAME] {
            anyhow::bail!("graph inputs are {inputs:?}, the contract has one input {INPUT_NAME:?}");
        }
        let shape = [1, window, features];
        model.set_input_fact(0, f32::fact(shape).into())?;
        let typed = model
            .into_optimized()
            .map_err(|e| anyhow!("ONNX graph does not type for window {window}×{features}: {e}"))?;
        let outputs: Vec<String> = typed
            .output_outlets()?
            .iter()
            .map(|o| typed.outlet_label(*o).unwrap_or(&typed.node(o.node).name).to_string())
            .collect();
        let find = |name: &str| {
            outputs
                .iter()
                .position(|o| o == name)
                .ok_or_else(|| anyhow!("graph has no output {name:?} (outputs: {outputs:?})"))
        };
        let (score_at, contrib_at) = (find(SCORE_OUTPUT)?, find(CONTRIB_OUTPUT)?);
        let plan = typed.into_runnable().context("building the tract plan")?;
        Ok(TractEngine { plan, shape, score_at, contrib_at })
    }
}

impl Engine for TractEngine {
    fn run(&mut self, window: &[f32]) -> Result<Output> {
        let input = Tensor::from_shape(&self.shape, window)?;
        let out = self.plan.run(tvec!(input.into()))?;
        let score = out[self.score_at].to_plain_array_view::<f32>()?;
        let score = *score.iter().next().ok_or_else(|| anyhow!("empty score output"))?;
        let contributions = out[self.contrib_at].to_plain_array_view::<f32>()?.iter().copied().collect();
        Ok(Output { score, contributions })
    }
}
