//! Bearer tokens and scopes (docs/design.md "Outside interfaces"): deny by default.
//!
//! `read` may GET anything (and `/metrics`); `write` may also start, cancel and
//! retry runs and groups and send signals; `admin` may do everything else
//! (workflows, locks, queues, schedules). A callback (`POST /v1/callbacks/{token}`) needs no
//! bearer token: its own token is the credential. `/healthz`, `/readyz` and the dashboard's static pages need no token
//! (the pages call the API with the viewer's own). The secret is only hashed and
//! looked up; it is never logged.

use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stepwise_store::{TokenRefusal, TokenScope};

/// Whether the API asks for tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but the health checks needs a bearer token of enough scope.
    #[default]
    Tokens,
    /// No tokens (`--insecure-no-auth`, or `stepwise dev` on a loopback address).
    Open,
}

/// The scope a request needs; `None` for the public health checks and the
/// dashboard's static pages (which call the API with the viewer's own token).
pub fn required_scope(method: &Method, path: &str) -> Option<TokenScope> {
    // Listed, not inferred: a route added anywhere else needs a token until it is
    // named here.
    if path == "/healthz" || path == "/readyz" || crate::dashboard::is_static(path) {
        return None;
    }
    // A callback's token (in the path) is its credential: the service that got it
    // from a step has no API token, and a stale token is refused by the store.
    if method == Method::POST && is_callback(path) {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        return Some(TokenScope::Read);
    }
    let write = method == Method::POST
        && (path == "/v1/runs"
            || path == "/v1/groups"
            || path == "/v1/signals"
            || (path.starts_with("/v1/runs/")
                && (path.ends_with("/cancel") || path.ends_with("/retry") || is_run_signal(path))));
    Some(if write {
        TokenScope::Write
    } else {
        TokenScope::Admin
    })
}

/// `/v1/callbacks/{token}`.
fn is_callback(path: &str) -> bool {
    path.strip_prefix("/v1/callbacks/")
        .is_some_and(|token| !token.is_empty() && !token.contains('/'))
}

/// `/v1/runs/{id}/signals/{name}`.
fn is_run_signal(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(parts.as_slice(), ["v1", "runs", _, "signals", name] if !name.is_empty())
}

/// Who is calling: the name of the token presented (`anonymous` without auth).
/// Handlers that record a holder (locks) read it from the request's extensions.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

pub async fn check(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Health checks answer load balancers under any name.
    if path != "/healthz" && path != "/readyz" {
        if let Some(refusal) = foreign_site(&request, state.auth) {
            return refusal;
        }
    }
    if state.auth == AuthMode::Open {
        request.extensions_mut().insert(Caller("anonymous".into()));
        return next.run(request).await;
    }
    let Some(needed) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(secret) = presented else {
        return unauthorized("send `Authorization: Bearer TOKEN` (see `stepwise tokens create`)");
    };
    match state.store.verify_token(secret).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Err(TokenRefusal::Unknown)) => unauthorized("the token is not known"),
        Ok(Err(TokenRefusal::Expired)) => unauthorized("the token has expired"),
        Ok(Err(TokenRefusal::Revoked)) => unauthorized("the token was revoked"),
        Ok(Ok(token)) if token.scope < needed => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs {} token; token {:?} is {}",
                with_article(needed.as_str()),
                token.name,
                token.scope.as_str()
            ),
        )
        .into_response(),
        Ok(Ok(token)) => {
            request.extensions_mut().insert(Caller(token.name));
            next.run(request).await
        }
    }
}

/// Refuses what a web page of another site could make a visitor's browser send:
/// a changing request whose `Origin` is not this server, and, without tokens (where
/// nothing else stands in the way), any request for a host name other than
/// `localhost` or an IP address — which is how DNS rebinding reaches a server on
/// loopback.
fn foreign_site(request: &Request, auth: AuthMode) -> Option<Response> {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if auth == AuthMode::Open {
        if let Some(host) = host {
            if !is_local_name(host) {
                return Some(forbidden(
                    "foreign_host",
                    format!(
                        "without tokens this server answers only to localhost or an IP \
                         address, not {host:?}; serve with tokens to use a host name"
                    ),
                ));
            }
        }
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let (false, Some(origin)) = (safe, origin) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let same = matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h));
        if !same {
            return Some(forbidden(
                "cross_origin",
                format!("a page of another site ({origin}) may not change anything here"),
            ));
        }
    }
    None
}

/// `localhost`, or an IP address, with or without a port.
fn is_local_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn forbidden(code: &'static str, message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, code, message).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// `a read`, `a write`, `an admin`.
fn with_article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}
