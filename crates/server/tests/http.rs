//! HTTP behaviour shared by every route: compression by `Accept-Encoding`, strong ETags per
//! index version with 304 on `If-None-Match` (a republish changes them), `Cache-Control`, CORS
//! only when configured; and the connection limits of `serve_with` on a real socket: idle and
//! half-sent requests are closed, a connection cap leaves later clients waiting, not failing.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use scopedex_server::serve::{serve_with, ServeOptions};
use scopedex_server::{router, AppState, IndexHandle};
use scopedex_store::fixture::{self, FixtureSpec};
use tower::ServiceExt;

fn fixture_index(dir: &Path, spec: &FixtureSpec) -> std::path::PathBuf {
    let out = dir.join("index");
    fixture::write_index(&out, spec).unwrap();
    out
}

async fn get(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

#[tokio::test]
async fn compression_etags_and_cache_control_per_index_version() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture_index(dir.path(), &FixtureSpec::default());
    let handle = Arc::new(IndexHandle::open(&index).unwrap());
    let app = router(AppState::new(handle.clone()));
    let uri = "/api/saes/L1R-8x/features/5";

    let (status, plain_h, plain) = get(&app, uri, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(plain_h.get("content-encoding").is_none());
    assert_eq!(plain_h["cache-control"], "no-cache");
    let plain_tag = plain_h["etag"].to_str().unwrap().to_string();
    assert!(
        plain_tag.starts_with('"') && plain_tag.ends_with("-identity\""),
        "{plain_tag}"
    );

    for enc in ["gzip", "br", "zstd"] {
        let (status, h, body) = get(&app, uri, &[("accept-encoding", enc)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["content-encoding"], enc);
        assert!(
            body.len() < plain.len() / 2,
            "{enc}: {} of {}",
            body.len(),
            plain.len()
        );
        let tag = h["etag"].to_str().unwrap();
        assert_ne!(tag, plain_tag, "a strong tag differs per encoding");
        let decoded = match enc {
            "zstd" => zstd::decode_all(&body[..]).unwrap(),
            "gzip" => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            _ => continue,
        };
        assert_eq!(decoded, plain, "{enc} decodes to the plain body");
    }

    // A current tag gets 304 with no body; another tag gets the body.
    let (status, h, body) = get(&app, uri, &[("if-none-match", &plain_tag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h["etag"].to_str().unwrap(), plain_tag);
    let (status, _, _) = get(&app, uri, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(status, StatusCode::OK);
    // Health is never cached.
    let (_, h, _) = get(&app, "/api/health", &[]).await;
    assert!(h.get("etag").is_none());

    // A republish changes the version, so the old tag no longer matches.
    let other = FixtureSpec {
        contexts: 40,
        ..FixtureSpec::default()
    };
    fixture::write_index(&index, &other).unwrap();
    assert!(handle.refresh().unwrap());
    let (status, h, _) = get(&app, uri, &[("if-none-match", &plain_tag)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(h["etag"].to_str().unwrap(), plain_tag);
}

#[tokio::test]
async fn cors_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture_index(dir.path(), &FixtureSpec::default());
    let handle = Arc::new(IndexHandle::open(&index).unwrap());
    let preflight = |app: axum::Router| async move {
        let req = Request::options("/api/activate")
            .header("origin", "https://example.org")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .unwrap();
        app.oneshot(req).await.unwrap()
    };
    let off = preflight(router(AppState::new(handle.clone()))).await;
    assert!(off.headers().get("access-control-allow-origin").is_none());
    let state =
        AppState::new(handle.clone()).with_cors(vec!["https://example.org".parse().unwrap()]);
    let on = preflight(router(state.clone())).await;
    assert!(on.status().is_success(), "{}", on.status());
    assert_eq!(
        on.headers()["access-control-allow-origin"],
        "https://example.org"
    );
    let methods = on.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    // Another origin gets no grant.
    let req = Request::get("/api/health")
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let resp = router(state).oneshot(req).await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

/// Reads until the server closes the connection (or `limit` passes); returns what was read and
/// whether it closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn idle_and_half_sent_connections_are_closed_and_the_cap_queues_clients() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture_index(dir.path(), &FixtureSpec::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = AppState::new(Arc::new(IndexHandle::open(&index).unwrap()));
    let opts = ServeOptions {
        max_connections: 2,
        header_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_secs(2),
        shutdown_grace: Duration::from_millis(100),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve_with(listener, state, opts, async {
        let _ = stop_rx.await;
    }));
    let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();

    // An idle connection is closed after the header timeout.
    let start = Instant::now();
    let mut idle = connect();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5));
    assert!(
        closed && start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // A body declared huge and never sent: closed (408 or a reset), never held open.
    let start = Instant::now();
    let mut half = connect();
    half.write_all(
        b"POST /api/activate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{\"text\"",
    )
    .unwrap();
    let (resp, closed) = read_until_closed(&mut half, Duration::from_secs(10));
    assert!(
        closed && start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let head = String::from_utf8_lossy(&resp);
    assert!(resp.is_empty() || head.starts_with("HTTP/1.1 4"), "{head}");

    // With the cap at 2, two idle clients hold both slots; a third is served once the header
    // timeout frees one, instead of failing.
    let _a = connect();
    let _b = connect();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let mut c = connect();
    c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (resp, _) = read_until_closed(&mut c, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 200"));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "served after {waited:?}: it waited for a slot"
    );
    stop_tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
}
