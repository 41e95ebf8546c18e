//! The model quality page: the label report ([`crate::labels::report`]) — per model key,
//! version and mould the labelled shots, TP/FP/FN/TN, precision and recall with their intervals
//! over lots, and each lot's alarms against its QC result or scrap count — read from the lake
//! on every visit, so labels that arrived since show at once.

use super::{Page, Shared};
use axum::extract::State;
use axum::http::HeaderMap;

/// `GET /quality`.
pub async fn page(State(c): State<Shared>, headers: HeaderMap) -> Page {
    let lake_dir = c.folders.lake.clone();
    let view = super::blocking(move || crate::labels::report(&lake_dir)).await?;
    c.render("quality.html", "quality", "Model quality", &headers, view)
}
