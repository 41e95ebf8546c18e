//! ONNX inference of a model bundle's graph: one window of shots in, a score and per-feature
//! contributions out (the contract in [`moldops_shared::bundle`]). Two backends run the same
//! graph: [`tract`] (pure Rust, the default) and, with the cargo feature `ort`, ONNX Runtime
//! loaded at run time from the library `ORT_DYLIB_PATH` (or `models.ort_library`) names.
//! [`Backend::open`] checks at start-up that the chosen backend can run, and falls back to
//! tract when configured to; [`Model::load`] builds and warms a runnable model.

#[cfg(feature = "ort")]
pub mod ort;
pub mod reference;
pub mod tract;

use anyhow::{Result, bail};
use moldops_shared::bundle::Manifest;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which inference engine runs the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// tract, the pure-Rust engine built into every edge (the default, `"tract"` in config).
    #[default]
    Tract,
    /// ONNX Runtime, loaded at run time; needs the cargo feature `ort` (`"ort"` in config).
    Ort,
}

impl BackendKind {
    /// The name used in config (`models.backend`) and shown in `/status`: `tract` or `ort`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

/// The result of scoring one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The window's anomaly score; the shot alarms when it is above the manifest's `threshold`.
    pub score: f32,
    /// One value per manifest feature, in manifest order.
    pub contributions: Vec<f32>,
}

/// A runnable graph for one window shape.
pub trait Engine: Send {
    /// Scores one window: `window.len() == W·F`, row-major `[W, F]`, oldest shot first.
    fn run(&mut self, window: &[f32]) -> Result<Output>;
}

/// A backend that passed its start-up check.
#[derive(Debug, Clone)]
pub struct Backend {
    kind: BackendKind,
    #[allow(dead_code)]
    ort_library: Option<PathBuf>,
}

impl Backend {
    /// The pure-Rust backend; always available.
    pub fn tract() -> Backend {
        Backend { kind: BackendKind::Tract, ort_library: None }
    }

    /// Opens `kind`. For `ort`: loads ONNX Runtime from `ort_library` (else `ORT_DYLIB_PATH`);
    /// when that fails, falls back to tract with a warning if `fallback`, else fails saying why.
    pub fn open(kind: BackendKind, ort_library: Option<PathBuf>, fallback: bool) -> Result<Backend> {
        match kind {
            BackendKind::Tract => Ok(Backend::tract()),
            BackendKind::Ort => match open_ort(ort_library) {
                Ok(b) => Ok(b),
                Err(e) if fallback => {
                    tracing::warn!(error = %format!("{e:#}"), "ONNX Runtime unavailable; scoring with tract (models.fallback = true)");
                    Ok(Backend::tract())
                }
                Err(e) => Err(
                    e.context("models.backend = \"ort\" (set models.fallback = true to use tract instead)")
                ),
            },
        }
    }

    /// The engine this backend runs: the one opened, or tract after a fallback.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Builds an engine for `onnx` with window `window` × `features`.
    pub fn engine(&self, onnx: &[u8], window: usize, features: usize) -> Result<Box<dyn Engine>> {
        match self.kind {
            BackendKind::Tract => Ok(Box::new(tract::TractEngine::new(onnx, window, features)?)),
            #[cfg(feature = "ort")]
            BackendKind::Ort => Ok(Box::new(ort::OrtEngine::new(onnx, window, features)?)),
            #[cfg(not(feature = "ort"))]
            BackendKind::Ort => bail!("this edge was built without the `ort` feature"),
        }
    }
}

#[cfg(feature = "ort")]
fn open_ort(library: Option<PathBuf>) -> Result<Backend> {
    let path = ort::library_path(library)?;
    ort::init(&path)?;
    Ok(Backend { kind: BackendKind::Ort, ort_library: Some(path) })
}

#[cfg(not(feature = "ort"))]
fn open_ort(_library: Option<PathBuf>) -> Result<Backend> {
    bail!("this edge was built without the `ort` feature (cargo build --features ort)")
}

/// A bundle's graph, ready to score windows of its manifest's shape.
pub struct Model {
    manifest: Manifest,
    engine: Box<dyn Engine>,
    backend: BackendKind,
}

impl Model {
    /// Builds the engine for `onnx` and warms it with one window of fill values, checking the
    /// outputs have the contract's shape and are finite.
    pub fn load(manifest: Manifest, onnx: &[u8], backend: &Backend) -> Result<Model> {
        let (w, f) = (manifest.window as usize, manifest.features.len());
        let engine = backend.engine(onnx, w, f)?;
        let mut model = Model { manifest, engine, backend: backend.kind() };
        let fills: Vec<f32> = model.manifest.features.iter().map(|s| s.fill).collect();
        let window: Vec<f32> = (0..w).flat_map(|_| fills.iter().copied()).collect();
        let out = model.score(&window)?;
        if !out.score.is_finite() {
            bail!("warm-up score is not finite ({})", out.score);
        }
        Ok(model)
    }

    /// Scores one `[W, F]` window (row-major, oldest first).
    pub fn score(&mut self, window: &[f32]) -> Result<Output> {
        let (w, f) = (self.window(), self.manifest.features.len());
        if window.len() != w * f {
            bail!("window has {} values, the model takes {w}×{f}", window.len());
        }
        let out = self.engine.run(window)?;
        if out.contributions.len() != f {
            bail!("model gave {} contributions for {f} features", out.contributions.len());
        }
        Ok(out)
    }

    /// The manifest of the bundle the graph came from (features, window, threshold, tolerance).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The window `W`: how many consecutive shots of a run one score takes.
    pub fn window(&self) -> usize {
        self.manifest.window as usize
    }

    /// The engine that runs this model's graph.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }
}

#[cfg(test)]
mod tests;
