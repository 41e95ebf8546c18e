//! The PyTorch side of the training benchmarks: the windows and the network's shape written
//! where `bench/train_torch.py` reads them, and the script's command line.

use moldops_models::data::Windows;
use moldops_models::lstm_ae::LstmAeConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The windows and shape on disk, for as long as this lives.
pub(crate) struct TorchInput {
    dir: tempfile::TempDir,
}

impl TorchInput {
    /// Writes `windows` (raw little-endian f32) and `net`'s shape into a temporary folder.
    pub(crate) fn write(windows: &Windows, net: &LstmAeConfig) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let raw: Vec<u8> = windows.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("windows.f32"), raw)?;
        let shape = serde_json::json!({"n": windows.n, "w": windows.w, "f": windows.f, "centre": net.centre,
            "centre_clip": net.centre_clip, "predict_last": net.predict_last, "encoder": net.encoder});
        std::fs::write(dir.path().join("shape.json"), shape.to_string())?;
        Ok(Self { dir })
    }

    /// `python bench/train_torch.py --data … --shape …`; the caller adds its own options. The
    /// script is taken from the repository root when run there (a binary carried to another
    /// machine), else from where the bench was built.
    pub(crate) fn command(&self, python: &Path) -> Command {
        let here = Path::new("bench/train_torch.py");
        let script: PathBuf = if here.exists() {
            here.to_path_buf()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/train_torch.py")
        };
        let mut c = Command::new(python);
        c.arg(script).arg("--data").arg(self.dir.path().join("windows.f32"));
        c.arg("--shape").arg(self.dir.path().join("shape.json"));
        c
    }
}

/// What `bench/train_torch.py` reports of one round (each bench reads what it needs).
#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct TorchRound {
    pub(crate) seconds_per_epoch: f64,
    pub(crate) threads: usize,
    pub(crate) torch: String,
    /// `cpu`, or the CUDA device's name.
    #[serde(default)]
    pub(crate) device_name: String,
    /// `[inputs, hidden]` of each LSTM layer, encoder first, then decoder.
    pub(crate) lstm_layers: Vec<[usize; 2]>,
    /// `[inputs, outputs]` of the dense output layer.
    pub(crate) output_layer: [usize; 2],
    pub(crate) encoder_steps: usize,
    pub(crate) decoder_steps: usize,
}

impl TorchRound {
    /// An error unless PyTorch ran the network burn builds from `net` for windows of `w`
    /// shots: the two sides of a benchmark must do the same work.
    pub(crate) fn same_network(&self, net: &LstmAeConfig, w: usize) -> anyhow::Result<()> {
        let (layers, output, enc, dec) = ours(net, w);
        anyhow::ensure!(
            self.lstm_layers == layers
                && self.output_layer == output
                && self.encoder_steps == enc
                && self.decoder_steps == dec,
            "PyTorch's network is not ours: layers {:?} / {layers:?}, output {:?} / {output:?}, steps {}+{} / {enc}+{dec}",
            self.lstm_layers,
            self.output_layer,
            self.encoder_steps,
            self.decoder_steps
        );
        Ok(())
    }
}

/// The network as burn builds it, in the terms the torch script reports: LSTM layers, dense
/// output layer, encoder and decoder steps.
pub(crate) fn ours(cfg: &LstmAeConfig, w: usize) -> (Vec<[usize; 2]>, [usize; 2], usize, usize) {
    let mut layers = Vec::new();
    let mut d = cfg.features;
    for &h in cfg.encoder.iter().chain(&cfg.decoder()) {
        layers.push([d, h]);
        d = h;
    }
    let encoder_steps = if cfg.predict_last && w > 1 { w - 1 } else { w };
    (layers, [d, cfg.features], encoder_steps, w)
}
