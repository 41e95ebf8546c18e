//! The PyTorch side of the training benchmarks: the windows and the network's shape written
//! where `bench/train_torch.py` reads them, and the script's command line.

use moldops_models::data::Windows;
use moldops_models::lstm_ae::LstmAeConfig;
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
