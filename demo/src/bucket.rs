//! `--object-store s3://bucket/prefix`: the demo's lake and registry in an S3-compatible
//! bucket (endpoint and credentials from the `AWS_*` environment) instead of its folder. The
//! ingest commits into `{prefix}/lake` through the lease protocol, the learning pipeline's tasks
//! work on `{prefix}/lake` and `{prefix}/registry`; run records, logs, the quality log and the
//! report stay in the demo folder, and at the end the bucket's lake and registry are copied
//! into it for the verdict, the report and the console.

use anyhow::{Context, Result};
use moldops_cloud::storage::Store;
use moldops_cloud::storage::mirror::Mirror;
use std::path::{Path, PathBuf};

/// The bucket prefix the demo works in.
pub struct DemoBucket {
    url: String,
}

impl DemoBucket {
    /// Checks the bucket (it must honour conditional writes) and that `lake/` and `registry/`
    /// under the prefix are empty: the demo counts every shot in the lake against the
    /// simulator, and never removes what it did not write.
    pub fn open(url: &str) -> Result<DemoBucket> {
        let url = url.trim_end_matches('/').to_string();
        anyhow::ensure!(url.starts_with("s3://"), "--object-store {url}: an s3://bucket/prefix URL");
        let store = Store::open(&url)?;
        moldops_cloud::storage::block_on(async {
            store.verify_conditional_writes().await?;
            for dataset in ["lake", "registry"] {
                let held = store.list(dataset).await?;
                anyhow::ensure!(
                    held.is_empty(),
                    "{url}/{dataset} holds {} objects: give the demo an empty prefix (it counts every shot \
                     in the lake and removes nothing it did not write)",
                    held.len()
                );
            }
            Ok(())
        })?;
        Ok(DemoBucket { url })
    }

    /// The lake's location, as the ingest and the tasks take it.
    pub fn lake(&self) -> String {
        format!("{}/lake", self.url)
    }

    /// The registry's location.
    pub fn registry(&self) -> String {
        format!("{}/registry", self.url)
    }

    /// Copies the bucket's lake and registry into `dir/lake` and `dir/registry`.
    pub fn copy_into(&self, dir: &Path) -> Result<()> {
        for (url, to) in [(self.lake(), dir.join("lake")), (self.registry(), dir.join("registry"))] {
            let store = Store::open(&url)?;
            let cache = dir.join(".bucket-copy");
            let (mirror, _) = moldops_cloud::storage::block_on(Mirror::open(store, &cache))?;
            copy_tree(mirror.folder(), &to)?;
        }
        Ok(())
    }
}

/// Copies the files under `from` (dot files left out) to the same places under `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut pending: Vec<PathBuf> = vec![from.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let dest = to.join(path.strip_prefix(from).context("a file under the copy")?);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::copy(&path, &dest).with_context(|| format!("copying to {}", dest.display()))?;
        }
    }
    Ok(())
}
