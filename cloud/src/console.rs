//! `moldops-cloud console`: the operator console, a web UI over one data folder for the people
//! running the plant and its models (data in a bucket: a local copy kept current, each change
//! published before the page answers, [`Console::writing`]).
//!
//! Pages, one module each, rendered on the server with minijinja templates (`console/templates/`),
//! plots as inline SVG, no script:
//! - [`fleet`]: sites, edges and machines — link state, last seen, buffer backlog, drops, errors.
//! - [`machine`]: one machine's recent shots as a trend of a chosen feature with its alarms
//!   marked, the models judging it, its production runs and molds.
//! - [`alarms`]: the edges' alarms with filters; one alarm's shot, the shots before it and its
//!   per-feature contributions; acknowledging it with a comment and a verdict on the part.
//! - [`quality`]: per model, version and mould, precision and recall against the labels that
//!   came back (operator verdicts, QC lot results, scrap counts), with a row per lot.
//! - [`models`]: registry keys and versions with stage, metrics and intervals, lineage and
//!   history; promote and archive (a rollback is re-promoting an archived version), and
//!   [`rollout_start`]: send the production version to chosen edges; [`version`]: one
//!   version's families, training curves and live score distribution.
//! - [`rollouts`]: per edge and model key the rollout state the edge reported, against the
//!   registry's production version.
//! - [`pipeline`]: runs, task states, durations and logs; [`reports`]: the HTML reports under
//!   the data folder.
//!
//! [`auth`] decides who may read and write, [`login`] signs browsers in, [`guard`] applies the
//! rules to every request (and refuses cross-site writes); [`audit`] keeps every write action
//! in the lake; [`metrics`] serves `/metrics`.
//! The read-only JSON API ([`crate::api`]) is served beside the pages under `api/`. Everything
//! is served under `--base-path` (e.g. `/moldops` behind a reverse proxy that keeps the prefix).

pub mod alarms;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod fleet;
pub mod guard;
pub mod login;
pub mod machine;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod quality;
pub mod reports;
pub mod rollout_start;
pub mod rollouts;
pub mod version;

use crate::api::Folders;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::Arc;

/// What every handler shares.
pub struct Console {
    /// The data folder's parts.
    pub folders: Folders,
    /// Who may read and write.
    pub access: auth::Access,
    /// Path prefix of every link ("" or e.g. "/moldops", without a trailing slash).
    pub base: String,
    /// The broker account rollouts are started with, when the console has one.
    pub rollout: Option<rollout_start::RolloutAccount>,
    /// How pipeline runs are started, when this console may start them.
    pub pipeline: Option<pipeline::Launch>,
    /// Requests, actions and pipeline runs for `/metrics`.
    pub metrics: metrics::Metrics,
    /// The lake summary, computed again only when the lake changes.
    pub summary: Arc<crate::api::cache::SummaryCache>,
    /// The kept-current copy the folders are in, when the data is in a bucket: every change
    /// is published through it ([`Console::writing`]).
    pub follower: Option<Arc<crate::storage::follow::Follower>>,
    templates: minijinja::Environment<'static>,
}

/// A shared console.
pub type Shared = Arc<Console>;

/// A page that could not be served: its status and the reason, shown to the user.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    reason: String,
}

impl Failure {
    /// A failure with a status.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Failure {
        Failure { status, reason: reason.into() }
    }

    /// A request that makes no sense.
    pub fn bad_request(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, reason)
    }

    /// A request for something that does not exist.
    pub fn not_found(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, reason)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html><meta charset=utf-8><link rel=icon href=\"data:,\"><title>moldops console: {}</title><h1>{}</h1><p>{}</p>",
            self.status,
            self.status,
            crate::report::escape(&self.reason)
        );
        (self.status, Html(body)).into_response()
    }
}

/// A rendered page or its failure.
pub type Page = Result<Html<String>, Failure>;

/// What every page's template gets besides its own view.
#[derive(Serialize)]
struct Frame<'a, V: Serialize> {
    /// Checked to be a plain path in [`router`], so links need no escaping.
    base: minijinja::Value,
    user: Option<String>,
    nav: &'static str,
    title: &'a str,
    view: V,
}

impl Console {
    /// Renders `template` with `view`, the signed-in user and the navigation.
    pub fn render(
        &self,
        template: &str,
        nav: &'static str,
        title: &str,
        headers: &HeaderMap,
        view: impl Serialize,
    ) -> Page {
        let frame = Frame {
            base: minijinja::Value::from_safe_string(self.base.clone()),
            user: self.access.user(headers),
            nav,
            title,
            view,
        };
        let t = self.templates.get_template(template).map_err(|e| anyhow::anyhow!(e))?;
        Ok(Html(t.render(&frame).map_err(|e| anyhow::anyhow!("rendering {template}: {e:#}"))?))
    }

    /// The user a write action is done as, or the refusal: writes always need a signed-in user.
    pub fn writer(&self, headers: &HeaderMap) -> Result<String, Failure> {
        self.access.user(headers).ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "sign in first: every change is done as a user and audited",
            )
        })
    }

    /// The path the sign-in cookie is sent for: the base path, or `/`.
    pub(crate) fn cookie_path(&self) -> &str {
        if self.base.is_empty() { "/" } else { &self.base }
    }

    /// A link to `path` (which starts with `/`) under the base path.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Runs a blocking read of the data folder off the async workers, again from a fresh listing
/// when a lake file vanished under it (a compaction ran meanwhile).
pub async fn blocking<T: Send + 'static>(
    mut read: impl FnMut() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(move || crate::lake::retry_vanished(&mut read))
        .await
        .map_err(|e| Failure::from(anyhow::Error::from(e)))?
        .map_err(Failure::from)
}

impl Console {
    /// Runs a blocking change of the data folder off the async workers, once; with the data in
    /// a bucket, publishes it before it returns (a change another writer's beat to the same
    /// object fails with 409 Conflict and is not made).
    pub async fn writing<T: Send + 'static>(
        &self,
        write: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        use crate::storage::follow::ChangeFailed;
        let run = async { tokio::task::spawn_blocking(write).await.map_err(anyhow::Error::from)? };
        match &self.follower {
            None => run.await.map_err(Failure::from),
            Some(f) => match f.change(run).await {
                Ok((done, _)) => Ok(done),
                Err(ChangeFailed::Change(e)) => Err(Failure::from(e)),
                Err(ChangeFailed::Publish(e)) => {
                    tracing::warn!("{e:#}");
                    Err(Failure::new(
                        axum::http::StatusCode::CONFLICT,
                        format!("not saved: {e:#}; reload the page and try again"),
                    ))
                }
            },
        }
    }
}

/// `value` percent-encoded as one path segment of a link.
pub fn path_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Every template, compiled in.
fn templates() -> anyhow::Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        ("base.html", include_str!("console/templates/base.html")),
        ("login.html", include_str!("console/templates/login.html")),
        ("fleet.html", include_str!("console/templates/fleet.html")),
        ("machine.html", include_str!("console/templates/machine.html")),
        ("alarms.html", include_str!("console/templates/alarms.html")),
        ("alarm.html", include_str!("console/templates/alarm.html")),
        ("models.html", include_str!("console/templates/models.html")),
        ("confirm.html", include_str!("console/templates/confirm.html")),
        ("rollout.html", include_str!("console/templates/rollout.html")),
        ("version.html", include_str!("console/templates/version.html")),
        ("rollouts.html", include_str!("console/templates/rollouts.html")),
        ("pipeline.html", include_str!("console/templates/pipeline.html")),
        ("reports.html", include_str!("console/templates/reports.html")),
        ("quality.html", include_str!("console/templates/quality.html")),
    ] {
        env.add_template(name, text)?;
    }
    env.add_filter("time", |ms: i64| crate::lake::quarantine::rfc3339_ms(ms).replace('T', " "));
    env.add_filter(
        "fixed",
        |v: f64, digits: usize| if v.is_finite() { format!("{v:.digits$}") } else { "–".into() },
    );
    env.add_filter("urlencode_path", |v: String| path_segment(&v));
    Ok(env)
}

/// What a console serves and how.
pub struct Settings {
    /// The data folder's parts.
    pub folders: Folders,
    /// Who may read and write.
    pub access: auth::Access,
    /// Path prefix (`--base-path`), "" for none.
    pub base_path: String,
    /// The broker account for rollouts started from the console (none: the page says how).
    pub rollout: Option<rollout_start::RolloutAccount>,
    /// How pipeline runs are started from the console (none: they are not).
    pub pipeline: Option<pipeline::Launch>,
    /// Memory for part files already read, in MiB (0: every page reads its files again); see
    /// [`crate::lake::cache`].
    pub lake_cache_mib: usize,
    /// The kept-current copy of a bucket the folders are in (none: a folder).
    pub follower: Option<Arc<crate::storage::follow::Follower>>,
}

/// Default of [`Settings::lake_cache_mib`].
pub const DEFAULT_LAKE_CACHE_MIB: usize = 256;

/// The console's routes.
pub fn router(settings: Settings) -> anyhow::Result<Router> {
    let Settings { folders, access, base_path, rollout, pipeline, lake_cache_mib, follower } = settings;
    let base = base_path.trim_end_matches('/').to_string();
    let plain = base.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
    let dots = base.split('/').any(|segment| segment == "." || segment == "..");
    if !base.is_empty() && (!base.starts_with('/') || !plain || dots || base.contains("//")) {
        anyhow::bail!("--base-path {base:?}: a path of A-Z a-z 0-9 / _ . - starting with `/`, e.g. /moldops");
    }
    if lake_cache_mib > 0 {
        crate::lake::cache::enable(lake_cache_mib.saturating_mul(1 << 20));
    }
    let summary = Arc::new(crate::api::cache::SummaryCache::new(&folders.lake));
    let console = Arc::new(Console {
        summary: summary.clone(),
        metrics: metrics::Metrics::default(),
        folders: folders.clone(),
        access,
        base: base.clone(),
        rollout,
        pipeline,
        follower,
        templates: templates()?,
    });
    let pages = Router::new()
        .route("/", get(fleet::page))
        .route("/machines/{machine}", get(machine::page))
        .route("/alarms", get(alarms::list))
        .route("/alarms/{machine}/{ts_ms}", get(alarms::one))
        .route("/alarms/{machine}/{ts_ms}/acknowledge", axum::routing::post(alarms::acknowledge))
        .route("/models", get(models::page))
        .route("/models/version", get(version::page))
        .route("/models/confirm", get(models::confirm))
        .route("/models/change", axum::routing::post(models::change))
        .route("/models/rollout", get(rollout_start::confirm).post(rollout_start::start))
        .route("/rollouts", get(rollouts::page))
        .route("/quality", get(quality::page))
        .route("/pipeline", get(pipeline::page))
        .route("/pipeline/start", axum::routing::post(pipeline::start))
        .route("/pipeline/{run}/{task}/log", get(pipeline::log))
        .route("/reports", get(reports::page))
        .route("/reports/view", get(reports::view))
        .route("/metrics", get(metrics_page))
        .nest_service("/api", crate::api::router_with(folders, summary))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), guard::gate))
        .route("/login", get(login::page).post(login::form))
        .route("/logout", axum::routing::post(login::logout))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), guard::same_origin))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), measure))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .with_state(console);
    let healthz = || async { "ok" };
    if base.is_empty() {
        return Ok(pages.route("/healthz", get(healthz)));
    }
    // `/moldops/` as well as `/moldops` is the fleet page (nesting matches only the latter);
    // `/healthz` stays at the root too, for probes that know no prefix.
    let home = base.clone();
    Ok(Router::new()
        .route(&format!("{base}/"), get(move || async move { Redirect::permanent(&home) }))
        .route(&format!("{base}/healthz"), get(healthz))
        .route("/healthz", get(healthz))
        .nest(&base, pages))
}

/// Counts every routed request with its route pattern, status and time.
async fn measure(State(c): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    c.metrics.request(&route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
async fn metrics_page(State(c): State<Shared>) -> Response {
    let data = c.folders.data.clone();
    let console = c.clone();
    let failed_pulls = c.follower.as_ref().map(|f| f.failed_pulls());
    match blocking(move || Ok(console.metrics.exposition(&data, failed_pulls))).await {
        Ok(text) => {
            ([(header::CONTENT_TYPE, crate::ingest::http::METRICS_CONTENT_TYPE)], text).into_response()
        }
        Err(f) => f.into_response(),
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
