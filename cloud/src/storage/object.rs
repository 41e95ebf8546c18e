//! Single files named by location, for the inputs a verb or a pipeline task reads whole (a
//! quality log in the inbox, a pull definition): whether one exists, and a local copy of it.
//!
//! A location is a path, a `file://` URL, or `s3://bucket/prefix/name`; a bucket's object is
//! fetched into the cache folder ([`super::mirror::cache_dir`]) under its own name, so that a
//! reader that goes by the file's extension (`.jsonl`, `.csv`, `.parquet`) sees the same name.

use super::mirror::{cache_dir, is_remote};
use super::{Store, hex};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Largest object [`local_file`] fetches (a plant's inbox file or definition, not a lake).
pub const MAX_FETCH_BYTES: u64 = 4 << 30;

/// The bucket (and prefix) above an `s3://` object URL and the object's name in it.
fn split(url: &str) -> Result<(Store, String)> {
    let rest = url.strip_prefix("s3://").context("an s3:// URL")?;
    let Some((parent, name)) = rest.trim_end_matches('/').rsplit_once('/') else {
        bail!("{url}: names a bucket, not an object")
    };
    if name.is_empty() || parent.is_empty() {
        bail!("{url}: no object name");
    }
    Ok((Store::open(&format!("s3://{parent}"))?, name.to_string()))
}

/// Whether the file or object at `location` exists; an error when that cannot be told (the
/// bucket unreachable, the keys refused), which must not pass for an absent file.
pub fn exists(location: &Path) -> Result<bool> {
    let Some(url) = location.to_str().filter(|_| is_remote(location)) else {
        let text = location.to_string_lossy();
        return Ok(Path::new(text.strip_prefix("file://").unwrap_or(&text)).exists());
    };
    let (store, name) = split(url)?;
    super::block_on(async move { Ok(store.head(&name).await?.is_some()) })
}

/// A local file holding what `location` names: the path itself, a `file://` URL's path, or a
/// bucket object fetched into the cache folder (fails when it is missing or larger than
/// [`MAX_FETCH_BYTES`]).
pub fn local_file(location: &Path) -> Result<PathBuf> {
    let Some(url) = location.to_str().filter(|_| is_remote(location)) else {
        let text = location.to_string_lossy();
        return Ok(PathBuf::from(text.strip_prefix("file://").unwrap_or(&text).to_string()));
    };
    let (store, name) = split(url)?;
    match super::block_on(async { store.size(&name).await })? {
        None => bail!("{url}: no such object"),
        Some(size) if size > MAX_FETCH_BYTES => {
            bail!("{url}: {size} bytes, more than the {MAX_FETCH_BYTES} a verb fetches whole")
        }
        Some(_) => {}
    }
    let Some((bytes, _)) = super::block_on(async { store.get(&name).await })? else {
        bail!("{url}: removed while it was being read")
    };
    let dir = cache_dir().join("objects").join(&hex(url.as_bytes())[..16]);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(&name);
    moldops_common::fs::write_atomic(&path, &bytes)?;
    tracing::info!("{url}: fetched {} bytes into {}", bytes.len(), path.display());
    Ok(path)
}
