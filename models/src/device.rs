//! Where a model trains: the CPU (burn's `flex`, always there) or a GPU, chosen with
//! `--device auto|cpu|gpu[:N]|cuda[:N]`. The training code is the same for all; only the
//! [`Device`] differs.
//!
//! # The GPU backend
//! GPUs are reached through burn's `wgpu` backend (cargo feature `wgpu`, which the GPU image
//! ships): Vulkan on Linux, so an NVIDIA GPU needs its Vulkan driver (in a container:
//! `NVIDIA_DRIVER_CAPABILITIES` including `graphics`). It builds offline; burn 0.22's CUDA
//! backend does not (its build script downloads an LLVM bundle), see `docs/training.md`.
//!
//! - `auto` (the default): the first GPU when this build has the backend and the machine has
//!   one, else the CPU — logged either way.
//! - `gpu[:N]`: the Nth GPU (discrete first, then integrated and virtual); an error when there
//!   is none, never a silent fall-back to the CPU.
//! - `cuda[:N]`: the Nth *NVIDIA* GPU, for scripts written for CUDA tools. This build reaches it
//!   through Vulkan, not the CUDA runtime; the resolved [`TrainingDevice::description`] says so.
//! - `cpu`: the CPU.
//!
//! Adapters are listed on Vulkan only (wgpu's other Linux API, OpenGL, is not used to find a
//! GPU). A GPU is used only after it computed a small product correctly: a driver that is half
//! there fails the request with the reason (or, for `auto`, falls back to the CPU), not a
//! training run half-way.
//!
//! Software rasterisers (lavapipe, llvmpipe) are not GPUs: `auto` never picks one and `gpu`
//! finds none, unless `MOLDOPS_GPU_SOFTWARE=1` is set — which exists so the GPU code path can
//! be tested on a machine without a GPU.

use std::fmt;
use std::str::FromStr;

pub use burn::tensor::Device;

/// Environment variable that lets software GPU adapters count as GPUs (tests only).
pub const SOFTWARE_GPU_ENV: &str = "MOLDOPS_GPU_SOFTWARE";

/// What the user asked for (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// A GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The Nth GPU of any vendor; an error when there is none.
    Gpu(usize),
    /// The Nth NVIDIA GPU; an error when there is none.
    Nvidia(usize),
}

impl FromStr for DeviceRequest {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (name, index) = match s.split_once(':') {
            Some((name, index)) => {
                let n = index.parse::<usize>().map_err(|_| DeviceError::Unknown(s.clone()))?;
                (name, Some(n))
            }
            None => (s.as_str(), None),
        };
        match (name, index) {
            ("auto", None) => Ok(Self::Auto),
            ("cpu" | "flex", None) => Ok(Self::Cpu),
            // `wgpu` is the old `--backend` name of the same thing.
            ("gpu" | "wgpu", n) => Ok(Self::Gpu(n.unwrap_or(0))),
            ("cuda", n) => Ok(Self::Nvidia(n.unwrap_or(0))),
            _ => Err(DeviceError::Unknown(s.clone())),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Gpu(n) => write!(f, "gpu:{n}"),
            Self::Nvidia(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl serde::Serialize for DeviceRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a device request cannot be met.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The name is not one of the accepted forms.
    #[error("unknown device {0:?}: one of auto, cpu, gpu[:N], cuda[:N]")]
    Unknown(String),
    /// A GPU was required and this binary has no GPU backend.
    #[error(
        "device {0} needs a GPU, and this build has no GPU backend (build with `--features \
         moldops-models/wgpu`, as the GPU image is); use --device auto or cpu to train on the CPU"
    )]
    NoBackend(DeviceRequest),
    /// A GPU was required and none (or not enough) was found.
    #[error(
        "device {asked} needs a GPU, and this machine has {found}; check the GPU's Vulkan driver \
         (in a container: NVIDIA_DRIVER_CAPABILITIES must include graphics), or use --device \
         auto or cpu to train on the CPU"
    )]
    NotFound {
        /// What was asked.
        asked: DeviceRequest,
        /// What was found, in words.
        found: String,
    },
    /// The GPU was found but does not compute (a driver half there, a lost device).
    #[error(
        "device {asked} ({description}) was found but does not compute: {reason}; check the GPU's \
         Vulkan driver, or use --device auto or cpu to train on the CPU"
    )]
    Broken {
        /// What was asked.
        asked: DeviceRequest,
        /// The device found.
        description: String,
        /// What went wrong.
        reason: String,
    },
}

impl DeviceError {
    /// Why no GPU is used, in words, for `auto`'s log line.
    fn why_no_gpu(&self) -> String {
        match self {
            Self::Unknown(s) => format!("unknown device {s:?}"),
            Self::NoBackend(_) => "this build has no GPU backend".into(),
            Self::NotFound { found, .. } => format!("this machine has {found}"),
            Self::Broken { description, reason, .. } => format!("{description} does not compute: {reason}"),
        }
    }
}

/// The device a run trains on, and how reports and the registry name it.
#[derive(Debug, Clone)]
pub struct TrainingDevice {
    /// The burn device.
    pub device: Device,
    /// `cpu`, or e.g. `gpu:0 NVIDIA H200 (Vulkan, driver 580.1)`.
    pub description: String,
    /// Whether it is a GPU.
    pub gpu: bool,
}

impl TrainingDevice {
    /// The CPU.
    pub fn cpu() -> Self {
        Self { device: Device::flex(), description: "cpu".into(), gpu: false }
    }

    /// Multiplies a small matrix on the device and reads the product back: proves that the
    /// device computes (a GPU whose driver is half there fails here, not mid-training).
    pub fn check(&self) -> anyhow::Result<()> {
        use burn::tensor::{Tensor, TensorData};
        let a = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &self.device);
        let product = crate::score::read(a.clone().matmul(a).into_data())?;
        anyhow::ensure!(
            product == [7.0, 10.0, 15.0, 22.0],
            "{} computed [[1, 2], [3, 4]]² as {product:?}",
            self.description
        );
        Ok(())
    }
}

/// The device for a request: see the module doc for what each form means. A GPU is used only
/// after it computed a small product correctly ([`TrainingDevice::check`]).
pub fn resolve(request: DeviceRequest) -> Result<TrainingDevice, DeviceError> {
    match request {
        DeviceRequest::Cpu => Ok(TrainingDevice::cpu()),
        DeviceRequest::Auto => match gpu::find(DeviceRequest::Gpu(0)).and_then(|d| working(d, request)) {
            Ok(d) => {
                tracing::info!(device = %d.description, "--device auto: training on the GPU");
                Ok(d)
            }
            Err(e) => {
                tracing::info!(reason = %e.why_no_gpu(), "--device auto: no usable GPU, training on the CPU");
                Ok(TrainingDevice::cpu())
            }
        },
        asked => gpu::find(asked).and_then(|d| working(d, asked)),
    }
}

/// `d` when it computes; the GPU runtime panics on some driver failures, caught here so that
/// they become a [`DeviceError::Broken`] with the reason.
fn working(d: TrainingDevice, asked: DeviceRequest) -> Result<TrainingDevice, DeviceError> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.check()));
    let reason = match outcome {
        Ok(Ok(())) => return Ok(d),
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the GPU runtime panicked".into()),
    };
    Err(DeviceError::Broken { asked, description: d.description, reason })
}

#[cfg(not(feature = "wgpu"))]
mod gpu {
    use super::{DeviceError, DeviceRequest, TrainingDevice};

    pub(super) fn find(asked: DeviceRequest) -> Result<TrainingDevice, DeviceError> {
        Err(DeviceError::NoBackend(asked))
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    //! GPU adapters as wgpu lists them on Vulkan, mapped to burn's per-kind device indices.

    use super::{Device, DeviceError, DeviceRequest, SOFTWARE_GPU_ENV, TrainingDevice};
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::wgpu;
    use std::sync::OnceLock;

    /// PCI vendor id of NVIDIA.
    const NVIDIA: u32 = 0x10de;

    /// One adapter the request may take.
    struct Candidate {
        kind: DeviceKind,
        info: wgpu::AdapterInfo,
    }

    pub(super) fn find(asked: DeviceRequest) -> Result<TrainingDevice, DeviceError> {
        let software = std::env::var(SOFTWARE_GPU_ENV).is_ok_and(|v| v == "1");
        let all = candidates(software);
        let found = if all.is_empty() {
            "no GPU adapter on Vulkan".to_string()
        } else {
            let names: Vec<&str> = all.iter().map(|c| c.info.name.as_str()).collect();
            format!("{} GPU(s): {}", all.len(), names.join(", "))
        };
        let (n, pick) = match asked {
            DeviceRequest::Nvidia(n) => (n, all.into_iter().filter(|c| c.info.vendor == NVIDIA).nth(n)),
            DeviceRequest::Gpu(n) => (n, all.into_iter().nth(n)),
            DeviceRequest::Auto | DeviceRequest::Cpu => (0, all.into_iter().next()),
        };
        let Some(c) = pick else { return Err(DeviceError::NotFound { asked, found }) };
        let name = if matches!(asked, DeviceRequest::Nvidia(_)) { "cuda" } else { "gpu" };
        let description =
            format!("{name}:{n} {} ({:?} via wgpu, driver {})", c.info.name, c.info.backend, c.info.driver);
        Ok(TrainingDevice { device: Device::wgpu(c.kind), description, gpu: true })
    }

    /// The Vulkan adapters, listed once per process: the Vulkan loader does not survive
    /// instances created and dropped on several threads at once, and the list does not change.
    fn adapters() -> &'static [wgpu::AdapterInfo] {
        static ADAPTERS: OnceLock<Vec<wgpu::AdapterInfo>> = OnceLock::new();
        ADAPTERS.get_or_init(|| {
            let backends = wgpu::Backends::VULKAN;
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            futures::executor::block_on(instance.enumerate_adapters(backends))
                .iter()
                .map(|a| a.get_info())
                .collect()
        })
    }

    /// Hardware adapters (and the first software one when `software`: burn does not number
    /// them), discrete first, each with the index burn gives it within its kind.
    fn candidates(software: bool) -> Vec<Candidate> {
        let (mut discrete, mut integrated, mut virt, mut cpu) = (0, 0, 0, 0);
        let mut out: Vec<(u8, Candidate)> = Vec::new();
        for info in adapters().iter().cloned() {
            let (rank, kind) = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => (0, DeviceKind::DiscreteGpu(post_inc(&mut discrete))),
                wgpu::DeviceType::IntegratedGpu => (1, DeviceKind::IntegratedGpu(post_inc(&mut integrated))),
                wgpu::DeviceType::VirtualGpu => (2, DeviceKind::VirtualGpu(post_inc(&mut virt))),
                wgpu::DeviceType::Cpu if software && post_inc(&mut cpu) == 0 => (3, DeviceKind::Cpu),
                wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => continue,
            };
            out.push((rank, Candidate { kind, info }));
        }
        out.sort_by_key(|(rank, _)| *rank);
        out.into_iter().map(|(_, c)| c).collect()
    }

    fn post_inc(n: &mut usize) -> usize {
        *n += 1;
        *n - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print_back() {
        for (s, r) in [
            ("auto", DeviceRequest::Auto),
            ("CPU", DeviceRequest::Cpu),
            ("gpu", DeviceRequest::Gpu(0)),
            ("gpu:2", DeviceRequest::Gpu(2)),
            ("wgpu", DeviceRequest::Gpu(0)),
            ("cuda", DeviceRequest::Nvidia(0)),
            ("cuda:1", DeviceRequest::Nvidia(1)),
        ] {
            assert_eq!(s.parse::<DeviceRequest>().ok(), Some(r), "{s}");
        }
        for bad in ["", "tpu", "gpu:x", "cpu:1", "cuda:-1", "auto:0"] {
            assert!(bad.parse::<DeviceRequest>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(DeviceRequest::Nvidia(1).to_string(), "cuda:1");
    }

    #[test]
    fn cpu_and_auto_always_resolve() {
        let cpu = resolve(DeviceRequest::Cpu).expect("cpu");
        assert!(!cpu.gpu && cpu.description == "cpu");
        // auto never fails: a GPU when there is one, else the CPU.
        let auto = resolve(DeviceRequest::Auto).expect("auto");
        assert_eq!(auto.gpu, auto.description != "cpu");
        cpu.check().expect("the CPU computes");
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn a_required_gpu_without_the_backend_is_an_error_not_the_cpu() {
        let e = resolve(DeviceRequest::Nvidia(0)).expect_err("no backend");
        assert!(e.to_string().contains("no GPU backend"), "{e}");
    }
}
