//! `moldops-cloud api`: a read-only HTTP API over one data folder, for dashboards and the people
//! running the plant — what has arrived in the lake, the models in the registry with their stages
//! and metrics, and the pipeline runs. It reads the same files the commands write; it changes
//! nothing (promotion, rollout and runs stay CLI commands with their own checks). Data in a
//! bucket (`--data-dir s3://…`) is served from a local copy kept current
//! ([`crate::storage::follow`]).
//!
//! `GET /healthz` · `GET /lake` · `GET /models` · `GET /pipeline/runs` (JSON). The lake
//! summary is cached until the lake changes ([`cache`]).
//!
//! It binds to loopback unless told otherwise (`--listen`); in Kubernetes a NetworkPolicy
//! admits only the pods and namespaces labelled for it (`deploy/k8s/base/networkpolicy.yaml`).
//! It has no write endpoint; any added later must require authentication.

pub mod cache;
pub mod cli;

use crate::pipeline::RunStore;
use crate::registry::Registry;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use std::path::PathBuf;
use std::sync::Arc;

/// The folders the API reads.
#[derive(Debug, Clone)]
pub struct Folders {
    /// The Parquet lake (`<data>/lake`), summarised for `GET /lake`.
    pub lake: PathBuf,
    /// The model registry (`<data>/registry`), listed for `GET /models`.
    pub registry: PathBuf,
    /// The data folder itself; `GET /pipeline/runs` lists the runs under `<data>/pipeline/runs`.
    pub data: PathBuf,
}

impl Folders {
    /// The standard layout under a data folder.
    pub fn under(data: &std::path::Path) -> Self {
        Folders { lake: data.join("lake"), registry: data.join("registry"), data: data.to_path_buf() }
    }
}

/// A failure as `500` with the error's text.
struct ApiError(anyhow::Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, format!("{:#}", self.0)).into_response()
    }
}

type Reply = Result<Json<serde_json::Value>, ApiError>;

/// Runs a file-reading closure off the async workers and answers its value as JSON.
async fn blocking<T: serde::Serialize + Send + 'static>(
    read: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Reply {
    let v = tokio::task::spawn_blocking(read).await.map_err(|e| ApiError(e.into()))?.map_err(ApiError)?;
    Ok(Json(serde_json::to_value(v).map_err(|e| ApiError(e.into()))?))
}

async fn lake(State(s): State<Arc<Served>>) -> Reply {
    let summary = s.lake_summary.get().await.map_err(ApiError)?;
    Ok(Json(serde_json::to_value(&*summary).map_err(|e| ApiError(e.into()))?))
}

async fn models(State(s): State<Arc<Served>>) -> Reply {
    let f = s.folders.clone();
    blocking(move || {
        if !f.registry.exists() {
            return Ok(Vec::new());
        }
        let reg = Registry::open(&f.registry)?;
        let mut out = Vec::new();
        for key in reg.keys()? {
            out.push(serde_json::json!({ "key": key.label(), "versions": reg.versions(&key)? }));
        }
        Ok(out)
    })
    .await
}

async fn runs(State(s): State<Arc<Served>>) -> Reply {
    let data = s.folders.data.clone();
    blocking(move || RunStore::new(&data).list()).await
}

/// What the handlers share: the folders and the cached lake summary.
struct Served {
    folders: Folders,
    lake_summary: Arc<cache::SummaryCache>,
}

/// The API's routes over `folders`.
pub fn router(folders: Folders) -> Router {
    let summary = Arc::new(cache::SummaryCache::new(&folders.lake));
    router_with(folders, summary)
}

/// The API's routes over `folders`, with a lake summary cache shared with another server (the
/// console serves the API too: one cache, one scan per change of the lake).
pub fn router_with(folders: Folders, lake_summary: Arc<cache::SummaryCache>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/lake", get(lake))
        .route("/models", get(models))
        .route("/pipeline/runs", get(runs))
        .with_state(Arc::new(Served { lake_summary, folders }))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    folders: Folders,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(folders)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
