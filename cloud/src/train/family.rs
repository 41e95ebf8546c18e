//! The model families `train` fits per key, behind one face: the LSTM autoencoder over windows
//! (centred by default) and the PCA monitor (Hotelling's T² and Q on the window's last shot).
//! Each scores raw windows, exports to ONNX on the bundle contract and names its parameters
//! for the registry; [`crate::train::select`] picks one per key.

use super::TrainArgs;
use anyhow::Result;
use moldops_models::data::{Normalizer, Windows};
use moldops_models::lstm_ae::{LstmAe, LstmAeConfig};
use moldops_models::pca::{Pca, PcaConfig};
use moldops_models::score::{self, Scores};
use moldops_models::train::{TrainConfig, Trained};
use serde::{Deserialize, Serialize};

/// Which families `train --family` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FamilyChoice {
    /// Both; validation picks one per key (see `docs/training.md`).
    #[default]
    Auto,
    /// The LSTM autoencoder only.
    LstmAe,
    /// The PCA monitor only.
    Pca,
}

impl FamilyChoice {
    /// Whether the LSTM autoencoder is fitted.
    pub fn lstm_ae(self) -> bool {
        matches!(self, FamilyChoice::Auto | FamilyChoice::LstmAe)
    }

    /// Whether the PCA monitor is fitted.
    pub fn pca(self) -> bool {
        matches!(self, FamilyChoice::Auto | FamilyChoice::Pca)
    }
}

/// One fitted model of a family, ready to score, export and register.
pub(super) enum Fitted {
    /// The LSTM autoencoder with its standardisation and training settings.
    LstmAe { trained: Box<Trained<LstmAe>>, cfg: LstmAeConfig, train: TrainConfig, norm: Normalizer },
    /// The PCA monitor (it carries its own standardisation).
    Pca { pca: Pca, cfg: PcaConfig },
}

impl Fitted {
    /// The family's name: the manifest's `kind` and the report's key.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Fitted::LstmAe { .. } => "lstm_ae",
            Fitted::Pca { .. } => "pca",
        }
    }

    /// Scores of raw (unstandardised) windows, as the exported graph computes them.
    pub(super) fn score_raw(
        &self,
        raw: &Windows,
        args: &TrainArgs,
        device: &moldops_models::device::Device,
    ) -> Result<Scores> {
        match self {
            Fitted::LstmAe { trained, norm, .. } => {
                score::score(&trained.model, &norm.apply(raw), args.score_mode, 256, device)
            }
            Fitted::Pca { pca, .. } => Ok(pca.score(raw)),
        }
    }

    /// The ONNX graph for windows of `args.window` shots.
    pub(super) fn export(&self, args: &TrainArgs) -> Result<Vec<u8>> {
        match self {
            Fitted::LstmAe { trained, norm, .. } => {
                moldops_models::onnx::export_lstm_ae(&trained.model, norm, args.window, args.score_mode)
            }
            Fitted::Pca { pca, .. } => moldops_models::onnx::export_pca(pca, args.window),
        }
    }

    /// What the registry records as this model's parameters (beside the run's settings).
    pub(super) fn params(&self) -> serde_json::Value {
        match self {
            Fitted::LstmAe { trained, cfg, train, norm } => serde_json::json!({
                "architecture": cfg,
                "train": train,
                "normalizer": norm,
                "best_epoch": trained.best_epoch,
            }),
            Fitted::Pca { pca, cfg } => serde_json::json!({
                "pca": {
                    "variance_share": cfg.variance,
                    "components": pca.components,
                    "explained": pca.explained,
                    "eigenvalues": pca.eigenvalues,
                },
                "normalizer": pca.norm,
            }),
        }
    }

    /// How long fitting took and how it went, for the report.
    pub(super) fn fit_summary(&self, seconds: f64) -> FitSummary {
        match self {
            Fitted::LstmAe { trained, .. } => FitSummary {
                epochs_run: trained.history.len(),
                best_epoch: trained.best_epoch,
                stopped_early: trained.stopped_early,
                train_seconds: trained.seconds,
                history: trained.history.clone(),
            },
            Fitted::Pca { .. } => FitSummary { train_seconds: seconds, ..FitSummary::default() },
        }
    }
}

/// Training's course, as reported (epochs are 0 for a family fitted in closed form).
#[derive(Debug, Clone, Default)]
pub(super) struct FitSummary {
    pub(super) epochs_run: usize,
    pub(super) best_epoch: usize,
    pub(super) stopped_early: bool,
    pub(super) train_seconds: f64,
    pub(super) history: Vec<moldops_models::train::EpochLog>,
}

/// Fits the PCA monitor on the training part's good shots.
pub(super) fn fit_pca(args: &TrainArgs, train_rows: &[f32], f: usize) -> Result<Fitted> {
    let cfg = PcaConfig { variance: args.pca_variance };
    Ok(Fitted::Pca { pca: Pca::fit(train_rows, f, &cfg)?, cfg })
}
