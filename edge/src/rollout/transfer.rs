//! Fetching a bundle over MQTT and deciding whether to trust it. [`Transfer`] collects the
//! retained chunks of one bundle (any order, duplicates ignored, sizes checked) until it is
//! whole; [`check`] then verifies the whole: its sha256 against the desired state, the
//! signature and file hashes ([`Bundle::verify`]), that it is the desired model key and
//! version, and the feature binding against the features this edge computes for the machine.

use moldops_shared::bundle::{Bundle, BundleError, Manifest, ModelKey};
use moldops_shared::rollout::BundleRef;

/// Why a chunk, a fetched bundle or a stored bundle was refused; its text is the reason
/// reported on the rejected rollout state.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RefusedBundle {
    /// A chunk index past the bundle's chunk count.
    #[error("chunk {index} of a bundle with {chunks} chunks")]
    NoSuchChunk { index: u32, chunks: u32 },
    /// A chunk whose length is not the one its position implies.
    #[error("chunk {index} has {got} bytes, expected {expected}")]
    ChunkSize { index: u32, got: usize, expected: u64 },
    /// The assembled bytes do not hash to the desired state's sha256.
    #[error("bundle hash mismatch: desired state says {desired}, received {actual}")]
    Hash { desired: String, actual: String },
    /// The container, signature, file hashes or feature binding are wrong.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A validly signed bundle for another model key.
    #[error("bundle is for model key {got}, desired for {desired}")]
    WrongKey { got: String, desired: String },
    /// A validly signed bundle of another version.
    #[error("bundle is version {got}, desired {desired}")]
    WrongVersion { got: u32, desired: u32 },
    /// The bundle carries no ONNX model file.
    #[error("bundle has no {0}")]
    NoModel(&'static str),
    /// The bundle could not be read back from the edge's store, or stored there.
    #[error("bundle store: {0:#}")]
    Store(anyhow::Error),
    /// The ONNX model does not load or warm up on this edge's backend.
    #[error("model does not load: {0:#}")]
    Load(anyhow::Error),
}

/// The chunks of one bundle received so far.
#[derive(Debug, Clone)]
pub(crate) struct Transfer {
    pub bundle: BundleRef,
    chunks: Vec<Option<Vec<u8>>>,
    received: u32,
}

impl Transfer {
    pub(crate) fn new(bundle: BundleRef) -> Self {
        let n = bundle.chunks as usize;
        Transfer { bundle, chunks: vec![None; n], received: 0 }
    }

    /// Takes chunk `index`; an error says why the chunk cannot belong to this bundle.
    pub(crate) fn accept(&mut self, index: u32, data: &[u8]) -> Result<(), RefusedBundle> {
        let b = &self.bundle;
        if index >= b.chunks {
            return Err(RefusedBundle::NoSuchChunk { index, chunks: b.chunks });
        }
        let start = u64::from(index) * u64::from(b.chunk_bytes);
        let expected = (b.bytes.saturating_sub(start)).min(u64::from(b.chunk_bytes));
        if data.len() as u64 != expected {
            return Err(RefusedBundle::ChunkSize { index, got: data.len(), expected });
        }
        let slot = &mut self.chunks[index as usize];
        if slot.is_none() {
            *slot = Some(data.to_vec());
            self.received += 1;
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn received(&self) -> u32 {
        self.received
    }

    /// The whole byte string once every chunk arrived.
    pub(crate) fn complete(&self) -> Option<Vec<u8>> {
        if self.received < self.bundle.chunks {
            return None;
        }
        let mut out = Vec::with_capacity(self.bundle.bytes as usize);
        for c in self.chunks.iter().flatten() {
            out.extend_from_slice(c);
        }
        Some(out)
    }
}

/// Checks a fetched (or stored) bundle against what was desired; the error is the reason
/// reported on the rejected state.
pub(crate) fn check(
    bytes: &[u8],
    desired: &BundleRef,
    key: &ModelKey,
    public_key: &[u8; 32],
    available: &[String],
) -> Result<(Bundle, Manifest), RefusedBundle> {
    let actual = moldops_shared::bundle::sha256_hex(bytes);
    if actual != desired.sha256 {
        return Err(RefusedBundle::Hash { desired: desired.sha256.clone(), actual });
    }
    let bundle = Bundle::from_bytes(bytes)?;
    let manifest = bundle.verify(public_key)?;
    if &manifest.model_key != key {
        return Err(RefusedBundle::WrongKey { got: manifest.model_key.label(), desired: key.label() });
    }
    if manifest.version != desired.version {
        return Err(RefusedBundle::WrongVersion { got: manifest.version, desired: desired.version });
    }
    manifest.check_features(available)?;
    Ok((bundle, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_assemble_in_any_order_and_bad_ones_are_refused() {
        let bytes: Vec<u8> = (0..10u8).collect();
        let r = BundleRef::describe("m@1", 1, &bytes, 4);
        assert_eq!(r.chunks, 3);
        let mut t = Transfer::new(r);
        t.accept(2, &bytes[8..]).expect("last chunk");
        assert!(t.complete().is_none());
        t.accept(0, &bytes[..4]).expect("first");
        t.accept(0, &bytes[..4]).expect("duplicate is harmless");
        assert!(matches!(t.accept(1, &bytes[4..7]), Err(RefusedBundle::ChunkSize { .. })), "short chunk");
        assert!(matches!(t.accept(3, &bytes[..2]), Err(RefusedBundle::NoSuchChunk { .. })), "no such chunk");
        t.accept(1, &bytes[4..8]).expect("middle");
        assert_eq!(t.received(), 3);
        assert_eq!(t.complete(), Some(bytes));
    }
}
