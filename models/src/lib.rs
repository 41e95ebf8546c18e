//! Neural models (burn) for moldops. Empty until the training issue lands.

pub mod autoencoder;
pub mod data;
pub mod dense_ae;
pub mod device;
pub mod gan;
pub mod lstm;
pub mod lstm_ae;
pub mod onnx;
pub mod score;
pub mod train;
