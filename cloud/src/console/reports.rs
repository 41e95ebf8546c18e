//! The reports page: the HTML reports under the data folder — `augment`'s data-quality report,
//! `train --html`'s model report, the demo's report — listed newest first and served as they
//! are, sandboxed (no script, no requests out of the page).

use super::{Failure, Page, Shared};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// Folder levels searched below the data folder.
const DEPTH: usize = 4;

/// Reports listed.
const MAX_LISTED: usize = 200;

/// Largest report served.
const MAX_BYTES: u64 = 32 << 20;

/// One report file.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFile {
    /// Path relative to the data folder.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modified (UTC ms).
    pub modified_ms: i64,
}

/// `GET /reports`.
pub async fn page(State(c): State<Shared>, headers: HeaderMap) -> Page {
    let data = c.folders.data.clone();
    let view = super::blocking(move || Ok(list(&data))).await?;
    c.render("reports.html", "reports", "Reports", &headers, view)
}

/// The `.html` files under `data` (not in the lake), newest first.
pub fn list(data: &Path) -> Vec<ReportFile> {
    let mut out = Vec::new();
    walk(data, data, 0, &mut out);
    out.sort_by(|a, b| b.modified_ms.cmp(&a.modified_ms).then_with(|| a.path.cmp(&b.path)));
    out.truncate(MAX_LISTED);
    out
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<ReportFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        if kind.is_dir() && depth < DEPTH && e.file_name() != "lake" {
            walk(root, &path, depth + 1, out);
        } else if kind.is_file() && path.extension().is_some_and(|x| x == "html") {
            let meta = e.metadata().ok();
            let modified_ms = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            out.push(ReportFile { path: rel, bytes: meta.map_or(0, |m| m.len()), modified_ms });
        }
    }
}

/// `?path=`.
#[derive(Debug, Deserialize)]
pub struct Which {
    /// The report, relative to the data folder.
    pub path: String,
}

/// `GET /reports/view?path=`: one report, if it is an `.html` file inside the data folder.
pub async fn view(State(c): State<Shared>, Query(which): Query<Which>) -> Result<Response, Failure> {
    let data = c.folders.data.clone();
    let file = inside(&data, &which.path)
        .ok_or_else(|| Failure::bad_request(format!("no report {:?}", which.path)))?;
    let body = super::blocking(move || {
        let len = std::fs::metadata(&file)?.len();
        if len > MAX_BYTES {
            anyhow::bail!("{} is {len} bytes, more than {MAX_BYTES}", file.display());
        }
        Ok(std::fs::read(&file)?)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
            ),
        ],
        body,
    )
        .into_response())
}

/// `rel` under `data`, when it names a plain `.html` file that does not leave it: no `..`, no
/// absolute path, and no symbolic link anywhere on the way (a link named `x.html` could point
/// at the users file beside the reports).
fn inside(data: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let html = |p: &Path| p.extension().is_some_and(|x| x == "html");
    if !html(rel) || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut at = data.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    let root = data.canonicalize().ok()?;
    let file = at.canonicalize().ok()?;
    (file.starts_with(&root) && html(&file) && file.is_file()).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_html_files_inside_the_data_folder_are_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("demo")).expect("mkdir");
        std::fs::write(data.join("demo/report.html"), "<p>r</p>").expect("write");
        std::fs::write(data.join("demo/secret.txt"), "s").expect("write");
        std::fs::write(dir.path().join("outside.html"), "o").expect("write");
        assert!(inside(&data, "demo/report.html").is_some());
        assert!(inside(&data, "demo/secret.txt").is_none());
        assert!(inside(&data, "../outside.html").is_none());
        assert!(inside(&data, dir.path().join("outside.html").to_str().expect("utf-8")).is_none());
        std::os::unix::fs::symlink(data.join("demo/secret.txt"), data.join("demo/link.html"))
            .expect("symlink");
        assert!(inside(&data, "demo/link.html").is_none(), "a link is not followed");
        let listed: Vec<String> = list(&data).into_iter().map(|r| r.path).collect();
        assert_eq!(listed, ["demo/report.html"], "links are not listed either");
    }
}
