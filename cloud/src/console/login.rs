//! Signing a browser in and out: the token, checked against the users file, is kept in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the request came over HTTPS through a
//! proxy that says so with `X-Forwarded-Proto`).
//!
//! `GET /login?token=…` signs in directly, the link the demo prints — only on a console that
//! listens on loopback: elsewhere a token in a URL would end up in proxy logs.

use super::{Console, Shared, auth};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `?token=`.
#[derive(Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
}

#[derive(Serialize)]
struct LoginView {
    refused: bool,
}

/// `GET /login`: the sign-in form; with `?token=` on a loopback console, signs in at once.
pub async fn page(State(c): State<Shared>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    match q.token {
        Some(token) if c.access.open_reads => sign_in(&c, &headers, &token),
        Some(_) => super::Failure::bad_request("sign in with the form: a token in a URL ends up in logs")
            .into_response(),
        None => c.render("login.html", "", "Sign in", &headers, LoginView { refused: false }).into_response(),
    }
}

/// `POST /login`.
pub async fn form(State(c): State<Shared>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    sign_in(&c, &headers, &f.token)
}

fn sign_in(c: &Console, headers: &HeaderMap, token: &str) -> Response {
    let token = token.trim();
    match c.access.who(token) {
        Some(user) => {
            tracing::info!(user = %user, "console sign-in");
            let cookie = format!(
                "{}={token}; Path={}; HttpOnly; SameSite=Strict{}",
                auth::COOKIE,
                c.cookie_path(),
                secure(headers)
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&c.link("/"))).into_response()
        }
        None => {
            tracing::warn!("console sign-in refused: unknown token");
            let page = c.render("login.html", "", "Sign in", headers, LoginView { refused: true });
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
    }
}

/// `; Secure` when the request came over HTTPS through a proxy.
fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

/// `POST /logout`: forgets the cookie.
pub async fn logout(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let cookie = format!(
        "{}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0{}",
        auth::COOKIE,
        c.cookie_path(),
        secure(&headers)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&c.link("/login"))).into_response()
}
