//! The web UI embedded at build time (see `build.rs`): `index.html` for the single-page app's
//! routes, every other file of `web/dist/` by its path with its MIME type.
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// Whether the binary carries the web UI.
pub fn embedded() -> bool {
    WEB_FILES.iter().any(|(p, _)| *p == "index.html")
}

fn file(path: &str) -> Option<&'static [u8]> {
    WEB_FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

fn respond(path: &str, bytes: &'static [u8]) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut resp = bytes.into_response();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The app shell (`index.html`) for the UI's routes.
pub(crate) async fn index() -> Response {
    match file("index.html") {
        Some(b) => respond("index.html", b),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Any other embedded file by its path, or 404.
pub(crate) async fn asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    match file(path) {
        Some(b) => respond(path, b),
        None => crate::error::ApiError::not_found("not_found", "no such file").into_response(),
    }
}
