//! The router tested in-process (`tower::ServiceExt::oneshot`, no port) against the store's
//! fixture index: every response is validated against `schemas/openapi.yaml`; malformed
//! requests never get a 5xx; a republished index is picked up without failed or mixed reads;
//! static files and SPA routes.
mod openapi;

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use scopedex_server::{router, AppState, IndexHandle};
use scopedex_store::fixture::{self, FixtureSpec};
use serde_json::Value;
use tower::ServiceExt;

struct Api {
    app: Router,
    spec: openapi::Spec,
    handle: Arc<IndexHandle>,
}

impl Api {
    fn new(dir: &Path) -> Api {
        let handle = Arc::new(IndexHandle::open(dir).unwrap());
        Api {
            app: router(AppState::new(handle.clone())),
            spec: openapi::Spec::load(),
            handle,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    /// GET `uri`; the body must be JSON valid for the documented status.
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let req = Request::get(uri).body(Body::empty()).unwrap();
        let (status, body) = self.send(req).await;
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("GET {uri} {status}: not JSON ({e})"));
        self.spec
            .check("GET", uri, status.as_u16(), &v)
            .unwrap_or_else(|e| panic!("{e}\nbody: {v}"));
        (status, v)
    }

    async fn ok(&self, uri: &str) -> Value {
        let (status, v) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {v}");
        v
    }

    async fn post(&self, uri: &str, ctype: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let req = Request::post(uri)
            .header("content-type", ctype)
            .body(body.into())
            .unwrap();
        let (status, body) = self.send(req).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        self.spec
            .check("POST", uri, status.as_u16(), &v)
            .unwrap_or_else(|e| panic!("{e}\nbody: {v}"));
        (status, v)
    }
}

fn fixture_index(dir: &Path, spec: &FixtureSpec) -> std::path::PathBuf {
    let out = dir.join("index");
    fixture::write_index(&out, spec).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_matches_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec::default();
    let api = Api::new(&fixture_index(dir.path(), &spec));

    let h = api.ok("/api/health").await;
    assert_eq!(h["model_loaded"], false);
    let info = api.ok("/api/index").await;
    assert_eq!(info["n_contexts"], 64);
    assert_eq!(info["saes"], serde_json::json!(["L1R-8x", "L2R-8x"]));
    let saes = api.ok("/api/saes").await;
    assert_eq!(saes["saes"].as_array().unwrap().len(), 2);
    let s = api.ok("/api/saes/L2R-8x").await;
    assert_eq!(s["d_sae"], 40);
    assert_eq!(s["hook_in"], "blocks.1.hook_resid_post");

    // Features overview: every sort, both orders, live filter, paging.
    let all = api.ok("/api/saes/L1R-8x/features?limit=1000").await;
    assert_eq!(all["total"], 48);
    let ids: Vec<u64> = all["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..48).rev().collect::<Vec<_>>(),
        "default: by feature, desc"
    );
    let live = api
        .ok("/api/saes/L1R-8x/features?live=true&sort=density&order=asc&limit=1000")
        .await;
    assert_eq!(live["total"], 48 - 48 / 7, "every 7th feature is dead");
    let d: Vec<f64> = live["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["density"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]) && d[0] > 0.0);
    let page = api
        .ok("/api/saes/L1R-8x/features?sort=max_act&limit=5&offset=3")
        .await;
    let maxes: Vec<f64> = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["max_act"].as_f64().unwrap())
        .collect();
    assert_eq!(maxes.len(), 5);
    assert!(maxes.windows(2).all(|w| w[0] >= w[1]));
    let r = api.ok("/api/saes/L1R-8x/random").await;
    assert_ne!(
        r["feature"].as_u64().unwrap() % 7,
        6,
        "random features are live"
    );

    // Dashboard, examples, co-occurrence.
    let dash = api.ok("/api/saes/L1R-8x/features/3").await;
    // The second answer comes from the snapshot's dashboard cache: the same document.
    assert_eq!(api.ok("/api/saes/L1R-8x/features/3").await, dash);
    assert_eq!(dash["d_sae"], 48);
    assert_eq!(dash["top_examples"].as_array().unwrap().len(), 4);
    assert_eq!(dash["intervals"].as_array().unwrap().len(), 2);
    let ex0 = &dash["top_examples"][0];
    assert_eq!(
        ex0["tokens"].as_array().unwrap().len(),
        ex0["acts"].as_array().unwrap().len()
    );
    assert_eq!(
        ex0["tokens"][0], "<1>",
        "placeholder tokens without a tokenizer"
    );
    assert_eq!(dash["cooccurrence"].as_array().unwrap().len(), 6);
    let top = api
        .ok("/api/saes/L1R-8x/features/3/examples?kind=top&limit=2&offset=1")
        .await;
    let ranks: Vec<u64> = top["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(ranks, vec![1, 2]);
    let iv = api
        .ok("/api/saes/L1R-8x/features/3/examples?kind=interval")
        .await;
    assert_eq!(iv["examples"].as_array().unwrap().len(), 4);
    let iv1 = api
        .ok("/api/saes/L1R-8x/features/3/examples?kind=interval_1")
        .await;
    assert!(iv1["examples"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "interval_1"));
    let cooc = api
        .ok("/api/saes/L1R-8x/features/3/cooccurrence?other_sae=L2R-8x&limit=2")
        .await;
    let partners = cooc["partners"].as_array().unwrap();
    assert_eq!(partners.len(), 2);
    assert!(partners.iter().all(|p| p["other_sae"] == "L2R-8x"));

    // Search: hits carry text and the context's strongest features per SAE.
    let res = api.ok("/api/search?q=fizz&limit=5").await;
    let hits = res["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    for h in hits {
        let id = h["context_id"].as_u64().unwrap();
        assert_eq!(id % 3, 0);
        assert!(h["text"].as_str().unwrap().contains("fizz"));
        let want: Vec<(String, u64)> = spec
            .saes
            .iter()
            .flat_map(|(sae, d)| {
                spec.context_features_of(sae, *d, id)
                    .features
                    .into_iter()
                    .take(scopedex_server::views::SEARCH_FEATURES_PER_SAE)
                    .map(move |f| (sae.clone(), u64::from(f)))
            })
            .collect();
        let got: Vec<(String, u64)> = h["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["sae"].as_str().unwrap().to_string(),
                    f["feature"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    // No model: 503 in the error shape.
    let (status, v) = api
        .post("/api/activate", "application/json", r#"{"text":"hello"}"#)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "model_not_loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_documented_status_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(&fixture_index(dir.path(), &FixtureSpec::default()));
    for (uri, status, kind) in [
        ("/api/saes/nope", 404, "unknown_sae"),
        ("/api/saes/L1R-8x/features/48", 404, "feature_out_of_range"),
        ("/api/saes/L1R-8x/features/abc", 400, "invalid_path"),
        ("/api/saes/L1R-8x/features/-1", 400, "invalid_path"),
        ("/api/saes/L1R-8x/features/99999999999", 400, "invalid_path"),
        ("/api/saes/L1R-8x/features?limit=1001", 400, "invalid_limit"),
        ("/api/saes/L1R-8x/features?limit=0", 400, "invalid_limit"),
        (
            "/api/saes/L1R-8x/features?limit=x",
            400,
            "invalid_query_string",
        ),
        ("/api/saes/L1R-8x/features?sort=bogus", 400, "invalid_sort"),
        ("/api/saes/L1R-8x/features?order=up", 400, "invalid_order"),
        (
            "/api/saes/L1R-8x/features/1/examples?kind=middle",
            400,
            "invalid_kind",
        ),
        (
            "/api/saes/L1R-8x/features/1/examples?offset=99999999999",
            400,
            "invalid_offset",
        ),
        (
            "/api/saes/L1R-8x/features/1/cooccurrence?other_sae=zz",
            404,
            "unknown_sae",
        ),
        ("/api/search", 400, "missing_query"),
        ("/api/search?q=", 400, "empty_query"),
        ("/api/search?q=a&limit=100000", 400, "invalid_limit"),
        ("/api/search?q=%22unclosed", 400, "invalid_query"),
        ("/api/search?q=feat:nope/1", 400, "invalid_query"),
        ("/api/search?q=feat:L1R-8x/48", 400, "invalid_query"),
        ("/api/search?q=feat:L1R-8x/1%3E0.3", 400, "invalid_query"),
        ("/api/contexts/9999/similar", 404, "unknown_context"),
        ("/api/contexts/abc/similar", 400, "invalid_path"),
        ("/api/contexts/1/similar?sae=nope", 404, "unknown_sae"),
        ("/api/contexts/1/similar?limit=0", 400, "invalid_limit"),
        (
            "/api/saes/L1R-8x/features/1/occurrences",
            404,
            "no_activation_log",
        ),
        (
            "/api/saes/L1R-8x/features/48/occurrences",
            404,
            "feature_out_of_range",
        ),
    ] {
        let (got, v) = api.get(uri).await;
        assert_eq!(got.as_u16(), status, "GET {uri}: {v}");
        assert_eq!(v["error"], kind, "GET {uri}: {v}");
    }
    let long = format!("/api/search?q={}", "a".repeat(1001));
    assert_eq!(api.get(&long).await.0, StatusCode::BAD_REQUEST);
}

/// Malformed requests of every kind: never a 5xx, and API errors are JSON `{error, detail}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_get_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture_index(dir.path(), &FixtureSpec::default());
    let web = dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<html>app</html>").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "s3cr3t-c0ntent").unwrap();
    let handle = Arc::new(IndexHandle::open(&index).unwrap());
    let app = router(AppState::new(handle).with_web(web));

    let junk = [
        "/api/saes/L1R-8x/features/4294967295",
        "/api/saes/L1R-8x/features/4294967296",
        "/api/saes/L1R-8x/features/1.5",
        "/api/saes/L1R-8x/features/%00",
        "/api/saes/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/saes/..%2F..%2Fsecret.txt/features/1",
        "/api/saes/L1R-8x%00/features/1",
        "/api/saes/%F0%9F%92%A9/features/1",
        "/api/saes/%FF%FE/features/1",
        "/api/saes/L1R-8x/features?limit=18446744073709551616",
        "/api/saes/L1R-8x/features?limit=-5&offset=-1",
        "/api/saes/L1R-8x/features?live=maybe",
        "/api/saes/L1R-8x/features?offset=18446744073709551615",
        "/api/saes/L1R-8x/features/1/examples?kind=interval_99999",
        "/api/saes/L1R-8x/features/1/examples?kind=interval_65535",
        "/api/saes/L1R-8x/features/1/examples?limit=1000&offset=16777216",
        "/api/saes/L1R-8x/features/1/cooccurrence?limit=1000000",
        "/api/search?q=%FF%FE",
        "/api/search?q=AND%20OR%20NOT",
        "/api/search?q=text:%22a%22~99999999",
        "/api/search?q=*",
        "/api/search?q=%E2%80%AE%F0%9F%92%A9%20%CC%81%CC%81",
        "/api/search?q=a&limit=1000",
        "/api/search?q=a&q=b",
        "/api/search?q=feat:",
        "/api/search?q=feat:L1R-8x/",
        "/api/search?q=feat:L1R-8x/99999999999999999999",
        "/api/search?q=feat:L1R-8x/1%3E",
        "/api/search?q=feat:L1R-8x/1%3E%3E%3E1e999",
        "/api/search?q=-%22a%20b%22%20OR%20c",
        "/api/search?q=((((((((((((((((((((((((((((((((((((a",
        "/api/search?q=-(-(-(-a)))",
        "/api/contexts/18446744073709551615/similar",
        "/api/contexts/18446744073709551616/similar",
        "/api/contexts/-1/similar",
        "/api/contexts/1/similar?limit=99999999999999999999",
        "/api/saes/L1R-8x/features/1/occurrences?cursor=-1",
        "/api/saes/L1R-8x/features/1/occurrences?cursor=%FF",
        "/api/nope",
        "/api",
        "/api/saes/L1R-8x/random/extra",
        "/../secret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e/secret.txt",
        "/sae/..%2F..%2Fsecret.txt",
        "/static/%00",
    ];
    let spec = openapi::Spec::load();
    for uri in junk {
        let Ok(req) = Request::get(uri).body(Body::empty()) else {
            continue; // not even a valid URI for the client
        };
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(!status.is_server_error(), "GET {uri}: {status}");
        assert!(
            !String::from_utf8_lossy(&body).contains("s3cr3t-c0ntent"),
            "GET {uri} leaked a file outside the web directory"
        );
        if uri.starts_with("/api/") && status != StatusCode::OK {
            let v: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("GET {uri}: {status} without a JSON body"));
            assert!(
                v["error"].is_string() && v["detail"].is_string(),
                "{uri}: {v}"
            );
            if spec.check("GET", uri, status.as_u16(), &v).is_err() && status != 404 {
                panic!("GET {uri}: {status} undocumented: {v}");
            }
        }
    }

    // Bodies: invalid JSON, wrong shapes, wrong content type, oversized, unicode junk.
    let big = format!(r#"{{"text":"{}"}}"#, "a".repeat(70_000));
    let long_text = format!(r#"{{"text":"{}"}}"#, "é".repeat(9000));
    let bodies: Vec<(&str, String)> = vec![
        ("application/json", "{".into()),
        ("application/json", "".into()),
        ("application/json", "[]".into()),
        ("application/json", r#"{"text":5}"#.into()),
        ("application/json", r#"{"text":"x","top_n":-1}"#.into()),
        ("application/json", r#"{"text":"x","top_n":1e99}"#.into()),
        ("application/json", r#"{"text":"\ud800"}"#.into()),
        ("application/json", "\u{feff}{\"text\":\"x\"}".into()),
        ("text/plain", r#"{"text":"x"}"#.into()),
        ("application/json", big),
        ("application/json", long_text),
    ];
    for (ctype, body) in bodies {
        let req = Request::post("/api/activate")
            .header("content-type", ctype)
            .body(Body::from(body.clone()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        assert!(
            status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "POST {ctype} {:.40}: {status}",
            body
        );
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        spec.check("POST", "/api/activate", status.as_u16(), &v)
            .unwrap();
    }
    let oversized = format!(r#"{{"text":"{}"}}"#, "a".repeat(70_000));
    let req = Request::post("/api/activate")
        .header("content-type", "application/json")
        .body(Body::from(oversized))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Wrong method on an API route.
    let req = Request::delete("/api/saes").body(Body::empty()).unwrap();
    assert!(!app
        .clone()
        .oneshot(req)
        .await
        .unwrap()
        .status()
        .is_server_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_and_spa_routes_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture_index(dir.path(), &FixtureSpec::default());
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), "<html>app</html>").unwrap();
    std::fs::write(web.join("assets/app.js"), "console.log(1)").unwrap();
    let handle = Arc::new(IndexHandle::open(&index).unwrap());
    let app = router(AppState::new(handle).with_web(web));
    for (uri, status, body) in [
        ("/", 200, "<html>app</html>"),
        ("/sae/L1R-8x/3", 200, "<html>app</html>"),
        ("/search", 200, "<html>app</html>"),
        ("/activate", 200, "<html>app</html>"),
        ("/assets/app.js", 200, "console.log(1)"),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{uri}");
        let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(b, body.as_bytes(), "{uri}");
    }
    let resp = app
        .clone()
        .oneshot(Request::get("/missing.js").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Republishing the directory (atomic rename) switches the server to the new index; requests
/// running meanwhile all succeed, each on one consistent version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_index_is_picked_up_without_failed_or_mixed_reads() {
    let dir = tempfile::tempdir().unwrap();
    let a = FixtureSpec::default();
    let b = FixtureSpec {
        contexts: 40,
        saes: vec![("L1R-8x".into(), 48), ("L3R-8x".into(), 24)],
        ..FixtureSpec::default()
    };
    let index = fixture_index(dir.path(), &a);
    let api = Api::new(&index);
    assert!(!api.handle.refresh().unwrap(), "nothing changed yet");
    // Contexts of a feature's dashboard (cached per snapshot once served).
    let dash_contexts = |v: &Value| -> Vec<u64> {
        v["top_examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["context_id"].as_u64().unwrap())
            .collect()
    };
    let before = dash_contexts(&api.ok("/api/saes/L1R-8x/features/5").await);
    assert!(
        before.iter().any(|&c| c >= 40),
        "version a shows contexts version b lacks: {before:?}"
    );

    // Hammer the API from another task while the index is republished a few times.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = api.app.clone();
    let stop2 = stop.clone();
    let load = tokio::spawn(async move {
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for uri in [
                "/api/index",
                "/api/saes/L1R-8x/features/5",
                "/api/search?q=even",
                "/api/contexts/0/similar",
            ] {
                let resp = app
                    .clone()
                    .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "{uri} during republish");
                let v: Value = serde_json::from_slice(
                    &axum::body::to_bytes(resp.into_body(), usize::MAX)
                        .await
                        .unwrap(),
                )
                .unwrap();
                if uri == "/api/index" {
                    let n_ctx = v["n_contexts"].as_u64().unwrap();
                    let saes = v["saes"].to_string();
                    // One version or the other, never a mix.
                    assert!(
                        (n_ctx == 64 && saes.contains("L2R-8x"))
                            || (n_ctx == 40 && saes.contains("L3R-8x")),
                        "{v}"
                    );
                }
                n += 1;
            }
            tokio::task::yield_now().await;
        }
        n
    });
    for spec in [&b, &a, &b] {
        let out = index.clone();
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || fixture::write_index(&out, &spec).unwrap())
            .await
            .unwrap();
        let h = api.handle.clone();
        assert!(tokio::task::spawn_blocking(move || h.refresh())
            .await
            .unwrap()
            .unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.await.unwrap() > 0);

    let info = api.ok("/api/index").await;
    assert_eq!(info["n_contexts"], 40);
    // No dashboard cached for an older version is served after the switch.
    let after = dash_contexts(&api.ok("/api/saes/L1R-8x/features/5").await);
    assert!(after.iter().all(|&c| c < 40), "stale dashboard: {after:?}");
    // Nor a cached search or "more like this".
    let hits = api.ok("/api/search?q=even").await;
    let ids: Vec<u64> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["context_id"].as_u64().unwrap())
        .collect();
    assert!(ids.iter().all(|&c| c < 40), "stale search: {ids:?}");
    let similar = api.ok("/api/contexts/0/similar").await;
    assert!(
        similar["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["context_id"].as_u64().unwrap() < 40),
        "stale similar: {similar}"
    );
    api.ok("/api/saes/L3R-8x").await;
    let (status, _) = api.get("/api/saes/L2R-8x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let all = api.ok("/api/saes/L3R-8x/features?limit=1000").await;
    assert_eq!(all["total"], 24, "feature tables are per version");
}
