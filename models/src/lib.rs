//! Neural models (burn) for moldops. Empty until the training issue lands.

pub mod gan;
