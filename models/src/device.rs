//! Where a model trains: the CPU (`flex`, always there) or a GPU through the `cuda` / `wgpu`
//! cargo features. The training code is the same for all; only the [`Device`] differs.

pub use burn::tensor::Device;

/// Names accepted by [`device`].
pub const BACKENDS: [&str; 3] = ["cpu", "cuda", "wgpu"];

/// The device for a backend name: `cpu`, `cuda` (feature `cuda`) or `wgpu` (feature `wgpu`).
pub fn device(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        "cuda" | "wgpu" => anyhow::bail!(
            "backend {name:?} needs moldops built with the cargo feature `{name}` (moldops-models/{name})"
        ),
        other => anyhow::bail!("unknown backend {other:?}; one of {}", BACKENDS.join(", ")),
    }
}
