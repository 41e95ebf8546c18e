//! Neural models (burn) for moldops: the LSTM autoencoder over shot windows ([`lstm_ae`], its
//! layer [`lstm`]), the per-shot dense baseline ([`dense_ae`]), their training loop ([`train`]),
//! scoring ([`score`]) and ONNX export ([`onnx`]); the classical PCA monitor with Hotelling's T²
//! and Q ([`pca`]), exported the same way; the conditional GAN ([`gan`]).
#![warn(missing_docs)]

pub mod autoencoder;
pub mod data;
pub mod dense_ae;
pub mod device;
pub mod gan;
pub mod lstm;
pub mod lstm_ae;
pub mod onnx;
pub mod pca;
pub mod score;
pub mod train;
