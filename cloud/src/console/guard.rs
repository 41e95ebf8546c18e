//! The rules every request passes: who may read ([`gate`]), that a change comes from the
//! console's own pages ([`same_origin`]), and the headers that keep pages out of frames and
//! scripts out of pages ([`security_headers`]).

use super::{Failure, Shared};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// Reads need a signed-in user unless the console is on loopback; a browser is sent to sign in.
///
/// Open reads also need a loopback `Host` (`localhost`, `127.0.0.1`, `[::1]`): a web page
/// the operator visits could otherwise point its own host name at 127.0.0.1 (DNS rebinding)
/// and read the console through the operator's browser; a reverse proxy on the same host
/// forwards another host name and so gets no open reads either.
pub async fn gate(State(c): State<Shared>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let signed_in = c.access.user(headers).is_some();
    if signed_in || (c.access.open_reads && loopback_host(headers)) {
        return next.run(request).await;
    }
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html && request.method() == Method::GET {
        Redirect::to(&c.link("/login")).into_response()
    } else {
        Failure::new(StatusCode::UNAUTHORIZED, "sign in first (a bearer token or the console's sign-in page)")
            .into_response()
    }
}

/// Whether the request's `Host` names the loopback interface.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A change (any method but GET and HEAD) is refused when the browser says it comes from
/// another site (`Sec-Fetch-Site`) or another origin (`Origin` against `Host`): the cookie's
/// `SameSite=Strict` alone lets a sibling site on the same domain through.
pub async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let fetch_site = text("sec-fetch-site");
    let cross_site = fetch_site.is_some_and(|s| s != "same-origin" && s != "none");
    let origin_host = text(header::ORIGIN.as_str()).map(|o| o.split_once("://").map_or(o, |(_, rest)| rest));
    let foreign_origin = match (origin_host, text(header::HOST.as_str())) {
        (Some(origin), Some(host)) => !origin.eq_ignore_ascii_case(host),
        (Some(_), None) => true,
        _ => false,
    };
    if cross_site || foreign_origin {
        tracing::warn!(?fetch_site, origin = ?origin_host, "console: a change from another site refused");
        return Failure::new(StatusCode::FORBIDDEN, "changes are accepted only from the console's own pages")
            .into_response();
    }
    next.run(request).await
}

/// Security headers on every answer that has not set its own: no framing, no sniffing, no
/// referrer to other sites (a sign-in link carries a token; `no-referrer` would also make the
/// browser send `Origin: null` with the console's own forms), and a policy that allows no
/// script and nothing from elsewhere.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_get_open_reads() {
        let host = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(v).expect("header"));
            loopback_host(&h)
        };
        for ok in ["127.0.0.1:8490", "localhost:8490", "LOCALHOST", "[::1]:8490", "127.0.0.2"] {
            assert!(host(ok), "{ok}");
        }
        for refused in ["evil.example:8490", "console.plant.local", "10.0.0.5:8490", "localhost.evil.example"]
        {
            assert!(!host(refused), "{refused}");
        }
        assert!(!loopback_host(&HeaderMap::new()), "no Host, no open reads");
    }
}
