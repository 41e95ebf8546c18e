//! The ONNX Runtime backend (cargo feature `ort`, `load-dynamic`): the shared library is found
//! at start-up (`models.ort_library`, else `ORT_DYLIB_PATH`), loaded and version-checked once
//! per process by [`init`], so a missing or too old library is a clear start-up error instead
//! of a panic at the first shot.

use super::{Engine, Output};
use anyhow::{Result, anyhow, bail};
use moldops_shared::bundle::{CONTRIB_OUTPUT, INPUT_NAME, SCORE_OUTPUT};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// The library to load: the configured path, else `ORT_DYLIB_PATH`.
pub fn library_path(configured: Option<PathBuf>) -> Result<PathBuf> {
    let path =
        configured.or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from)).ok_or_else(|| {
            anyhow!(
                "no ONNX Runtime library: set models.ort_library or ORT_DYLIB_PATH to libonnxruntime.so \
                 (e.g. from `pip install onnxruntime`: …/onnxruntime/capi/libonnxruntime.so.1.*)"
            )
        })?;
    if !path.is_file() {
        bail!("ONNX Runtime library {} does not exist", path.display());
    }
    Ok(path)
}

/// Loads the library and creates the process's ONNX Runtime environment (once).
pub fn init(path: &Path) -> Result<()> {
    let env = ENV.get_or_init(|| {
        let builder = ort::init_from(path).map_err(|e| format!("loading {}: {e}", path.display()))?;
        builder.with_name("moldops-edge").build().map_err(|e| e.to_string())
    });
    env.as_ref().map(|_| ()).map_err(|e| anyhow!("ONNX Runtime: {e}"))
}

fn environment() -> Result<&'static ort::environment::Environment> {
    match ENV.get() {
        Some(Ok(env)) => Ok(env),
        Some(Err(e)) => bail!("ONNX Runtime: {e}"),
        None => bail!("ONNX Runtime was not initialised (Backend::open)"),
    }
}

/// A bundle's graph in an ONNX Runtime session (one intra-op thread) for one window shape.
pub struct OrtEngine {
    session: Session,
    shape: [usize; 3],
}

impl OrtEngine {
    /// Builds a session for `onnx` with window `window` × `features`, checking the graph has the
    /// contract's input and outputs; fails when [`init`] has not loaded ONNX Runtime.
    pub fn new(onnx: &[u8], window: usize, features: usize) -> Result<Self> {
        let env = environment()?;
        let session = Session::builder(env)
            .map_err(|e| anyhow!("{e}"))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| anyhow!("{e}"))?
            .with_intra_threads(1)
            .map_err(|e| anyhow!("{e}"))?
            .commit_from_memory(onnx)
            .map_err(|e| anyhow!("ONNX graph does not load: {e}"))?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if inputs != [INPUT_NAME] {
            bail!("graph inputs are {inputs:?}, the contract has one input {INPUT_NAME:?}");
        }
        for name in [SCORE_OUTPUT, CONTRIB_OUTPUT] {
            if !session.outputs().iter().any(|o| o.name() == name) {
                bail!("graph has no output {name:?}");
            }
        }
        Ok(OrtEngine { session, shape: [1, window, features] })
    }
}

impl Engine for OrtEngine {
    fn run(&mut self, window: &[f32]) -> Result<Output> {
        let input = TensorRef::from_array_view((self.shape, window)).map_err(|e| anyhow!("{e}"))?;
        let out = self.session.run(ort::inputs![INPUT_NAME => input]).map_err(|e| anyhow!("{e}"))?;
        let (_, score) =
            out[SCORE_OUTPUT].try_extract_tensor::<f32>().map_err(|e| anyhow!("score output: {e}"))?;
        let (_, contrib) = out[CONTRIB_OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow!("contributions output: {e}"))?;
        let score = *score.first().ok_or_else(|| anyhow!("empty score output"))?;
        Ok(Output { score, contributions: contrib.to_vec() })
    }
}
