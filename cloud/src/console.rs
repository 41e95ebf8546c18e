//! `moldops-cloud console`: the operator console, a web UI over one data folder for the people
//! running the plant and its models.
//!
//! Pages, one module each, rendered on the server with minijinja templates (`console/templates/`),
//! plots as inline SVG, no script:
//! - [`fleet`]: sites, edges and machines — link state, last seen, buffer backlog, drops, errors.
//! - [`machine`]: one machine's recent shots as a trend of a chosen feature with its alarms
//!   marked, the models judging it, its production runs and molds.
//! - [`alarms`]: the edges' alarms with filters; one alarm's shot, the shots before it and its
//!   per-feature contributions; acknowledging it with a comment.
//! - [`models`]: registry keys and versions with stage, metrics and intervals, lineage and
//!   history; promote and archive (a rollback is re-promoting an archived version).
//! - [`rollouts`]: per edge and model key the rollout state the edge reported, against the
//!   registry's production version.
//! - [`pipeline`]: runs, task states, durations and logs; [`reports`]: the HTML reports under
//!   the data folder.
//!
//! [`auth`] decides who may read and write; [`audit`] keeps every write action in the lake.
//! The read-only JSON API ([`crate::api`]) is served beside the pages under `api/`. Everything
//! is served under `--base-path` (e.g. `/moldops` behind a reverse proxy that keeps the prefix).

pub mod alarms;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod fleet;
pub mod machine;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod reports;
pub mod rollouts;

use crate::api::Folders;
use axum::Router;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What every handler shares.
pub struct Console {
    /// The data folder's parts.
    pub folders: Folders,
    /// Who may read and write.
    pub access: auth::Access,
    /// Path prefix of every link ("" or e.g. "/moldops", without a trailing slash).
    pub base: String,
    /// Requests, actions and pipeline runs for `/metrics`.
    pub metrics: metrics::Metrics,
    /// The lake summary, computed again only when the lake changes.
    pub summary: crate::api::cache::SummaryCache,
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

    /// A request that asks for something that does not exist or makes no sense.
    pub fn bad_request(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, reason)
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
    fn cookie_path(&self) -> &str {
        if self.base.is_empty() { "/" } else { &self.base }
    }

    /// A link to `path` (which starts with `/`) under the base path.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Runs a blocking read of the data folder off the async workers.
pub async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| Failure::from(anyhow::Error::from(e)))?
        .map_err(Failure::from)
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
        ("rollouts.html", include_str!("console/templates/rollouts.html")),
        ("pipeline.html", include_str!("console/templates/pipeline.html")),
        ("reports.html", include_str!("console/templates/reports.html")),
    ] {
        env.add_template(name, text)?;
    }
    env.add_filter("time", |ms: i64| crate::lake::quarantine::rfc3339_ms(ms).replace('T', " "));
    env.add_filter(
        "fixed",
        |v: f64, digits: usize| if v.is_finite() { format!("{v:.digits$}") } else { "–".into() },
    );
    env.add_filter("urlencode_path", |v: String| {
        percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC).to_string()
    });
    Ok(env)
}

/// The console's routes over `folders`, under `base`.
pub fn router(folders: Folders, access: auth::Access, base: &str) -> anyhow::Result<Router> {
    let base = base.trim_end_matches('/').to_string();
    let plain = base.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
    if !base.is_empty() && (!base.starts_with('/') || !plain || base.contains("//")) {
        anyhow::bail!("--base-path {base:?}: a path of A-Z a-z 0-9 / _ . - starting with `/`, e.g. /moldops");
    }
    let console = Arc::new(Console {
        summary: crate::api::cache::SummaryCache::new(&folders.lake),
        metrics: metrics::Metrics::default(),
        folders: folders.clone(),
        access,
        base: base.clone(),
        templates: templates()?,
    });
    let pages = Router::new()
        .route("/", get(fleet::page))
        .route("/machines/{machine}", get(machine::page))
        .route("/alarms", get(alarms::list))
        .route("/alarms/{machine}/{ts_ms}", get(alarms::one))
        .route("/alarms/{machine}/{ts_ms}/acknowledge", axum::routing::post(alarms::acknowledge))
        .route("/models", get(models::page))
        .route("/models/confirm", get(models::confirm))
        .route("/models/change", axum::routing::post(models::change))
        .route("/rollouts", get(rollouts::page))
        .route("/pipeline", get(pipeline::page))
        .route("/pipeline/{run}/{task}/log", get(pipeline::log))
        .route("/reports", get(reports::page))
        .route("/reports/view", get(reports::view))
        .route("/metrics", get(metrics_page))
        .nest_service("/api", crate::api::router(folders))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), gate))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), measure))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(console);
    if base.is_empty() {
        return Ok(pages);
    }
    // `/moldops/` as well as `/moldops` is the fleet page (nesting matches only the latter).
    let home = base.clone();
    Ok(Router::new()
        .route(&format!("{base}/"), get(move || async move { Redirect::permanent(&home) }))
        .nest(&base, pages))
}

/// Reads need a signed-in user unless the console is on loopback; a browser is sent to sign in.
async fn gate(State(c): State<Shared>, request: Request, next: Next) -> Response {
    if c.access.may_read(request.headers()) {
        return next.run(request).await;
    }
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && request.method() == axum::http::Method::GET {
        Redirect::to(&c.link("/login")).into_response()
    } else {
        Failure::new(StatusCode::UNAUTHORIZED, "sign in first (a bearer token or the console's sign-in page)")
            .into_response()
    }
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
    match blocking(move || Ok(console.metrics.exposition(&data))).await {
        Ok(text) => {
            ([(header::CONTENT_TYPE, crate::ingest::http::METRICS_CONTENT_TYPE)], text).into_response()
        }
        Err(f) => f.into_response(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

#[derive(Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

#[derive(Serialize)]
struct LoginView {
    refused: bool,
}

/// The sign-in form; with `?token=` (the link the demo prints) it signs in at once.
async fn login_page(State(c): State<Shared>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    match q.token {
        Some(token) => sign_in(&c, &headers, &token),
        None => c.render("login.html", "", "Sign in", &headers, LoginView { refused: false }).into_response(),
    }
}

async fn login(State(c): State<Shared>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    sign_in(&c, &headers, &f.token)
}

fn sign_in(c: &Console, headers: &HeaderMap, token: &str) -> Response {
    let token = token.trim();
    match c.access.who(token) {
        Some(user) => {
            tracing::info!(user = %user, "console sign-in");
            let cookie =
                format!("{}={token}; Path={}; HttpOnly; SameSite=Strict", auth::COOKIE, c.cookie_path());
            ([(header::SET_COOKIE, cookie)], Redirect::to(&c.link("/"))).into_response()
        }
        None => {
            tracing::warn!("console sign-in refused: unknown token");
            let page = c.render("login.html", "", "Sign in", headers, LoginView { refused: true });
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
    }
}

async fn logout(State(c): State<Shared>) -> Response {
    let cookie = format!("{}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0", auth::COOKIE, c.cookie_path());
    ([(header::SET_COOKIE, cookie)], Redirect::to(&c.link("/login"))).into_response()
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
