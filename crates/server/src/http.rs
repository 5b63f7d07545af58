//! HTTP behaviour every response shares: compression by `Accept-Encoding`, strong ETags and
//! `Cache-Control` per index version, and CORS when configured.
//!
//! An index version is immutable, so the API's answers are cacheable: a GET under `/api/` gets
//! `ETag: "{version}-{encoding}"` (the version changes on republish and reindex; the encoding
//! part keeps gzip and identity bodies apart, as a strong tag must) and `Cache-Control:
//! no-cache` (revalidate: the URL outlives the version); a matching `If-None-Match` gets 304.
//! The web UI's hashed assets are immutable for a year; its `index.html` is revalidated.
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Adds ETag / Cache-Control (see the module docs); answers 304 to a current `If-None-Match`.
pub(crate) async fn caching(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") && path != "/api/health";
    let asset = path.starts_with("/assets/");
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    if !get {
        return next.run(req).await;
    }
    let if_none_match = req.headers().get(IF_NONE_MATCH).cloned();
    let version = api.then(|| state.index.snapshot().version_tag());
    let mut resp = next.run(req).await;
    if !resp.status().is_success() {
        return resp;
    }
    let headers = resp.headers_mut();
    if asset {
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        return resp;
    }
    if !api {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return resp;
    }
    // A republish during the request: the body may be of either version, so no tag.
    let Some(version) = version.filter(|v| *v == state.index.snapshot().version_tag()) else {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return resp;
    };
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    let tag = format!("\"{version}-{encoding}\"");
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let tag = HeaderValue::from_str(&tag).expect("invariant: hex and a token are valid");
    if matches {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        let h = not_modified.headers_mut();
        h.insert(ETAG, tag);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        return not_modified;
    }
    headers.insert(ETAG, tag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
