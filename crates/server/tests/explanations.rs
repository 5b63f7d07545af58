//! Explanations through the API builders on a fixture index: the dashboard, the SAE table,
//! search hits (the features at the matched words lead, with their explanations) and the
//! feature search, each validated against `schemas/openapi.yaml`.
mod openapi;

use scopedex_server::{views, Snapshot};
use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::{ExplanationRecord, ExplanationScores, IndexReader};

fn row(feature: u32, text: &str) -> ExplanationRecord {
    ExplanationRecord {
        feature,
        text: text.into(),
        model: "m".into(),
        prompt_version: "scopedex-delphi-v1".into(),
        settings: "{}".into(),
        train_contexts: vec![],
        created: "2026-12-06T00:00:00Z".into(),
        scorer_model: "s".into(),
        scored: "2026-12-06T00:00:01Z".into(),
        detection: ExplanationScores {
            n: 10,
            precision: 0.5,
            recall: 1.0,
            f1: 2.0 / 3.0,
            balanced_accuracy: 0.75,
            auroc: f32::NAN,
        },
        fuzzing: ExplanationScores::default(),
    }
}

#[test]
fn explanations_on_dashboards_tables_hits_and_feature_search() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    let sae = spec.saes[0].0.clone();
    // Explain every feature that fires on context 33's first word ("ctx33", position 1).
    let r = IndexReader::open(&out).unwrap();
    let cf = r.context_features(&sae, 33).unwrap().unwrap();
    let at_word: Vec<u32> = (0..cf.features.len())
        .filter(|&i| cf.max_pos[i] == 1)
        .map(|i| cf.features[i])
        .collect();
    drop(r);
    let mut rows: Vec<ExplanationRecord> = at_word
        .iter()
        .map(|&f| row(f, &format!("marker word {f}")))
        .collect();
    let legal = (0..).find(|f| !at_word.contains(f)).unwrap();
    rows.push(row(legal, "legal documents and contracts"));
    scopedex_store::explanations::publish(&out, &sae, rows).unwrap();

    let spec_api = openapi::Spec::load();
    let snap = Snapshot::open(&out).unwrap();
    let check =
        |path: &str, body: &serde_json::Value| spec_api.check("GET", path, 200, body).unwrap();

    let d = serde_json::to_value(views::dashboard(&snap, &sae, legal).unwrap()).unwrap();
    check(&format!("/api/saes/{sae}/features/{legal}"), &d);
    assert_eq!(d["explanation"]["text"], "legal documents and contracts");
    assert_eq!(d["explanation"]["score"], 0.75);
    assert_eq!(
        d["explanation"]["detection"]["auroc"],
        serde_json::Value::Null
    );
    assert_eq!(d["explanation"]["fuzzing"], serde_json::Value::Null);
    let d1 = serde_json::to_value(views::dashboard(&snap, &spec.saes[1].0, 0).unwrap()).unwrap();
    assert_eq!(d1["explanation"], serde_json::Value::Null);

    let params = views::FeatureListParams {
        sort: scopedex_server::snapshot::FeatureSort::Feature,
        descending: false,
        live: false,
        limit: 5,
        offset: legal as usize,
    };
    let list = serde_json::to_value(views::feature_list(&snap, &sae, params).unwrap()).unwrap();
    check(&format!("/api/saes/{sae}/features"), &list);
    assert_eq!(
        list["features"][0]["explanation"],
        "legal documents and contracts"
    );
    assert_eq!(list["features"][0]["explanation_score"], 0.75);

    let hits = serde_json::to_value(views::search_listing(&snap, "ctx33", 5, Some(&sae)).unwrap())
        .unwrap();
    check("/api/search", &hits);
    let hit = &hits["hits"][0];
    assert_eq!(hit["context_id"], 33);
    let got: Vec<u64> = hit["at_words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_u64().unwrap())
        .collect();
    let mut want: Vec<u64> = at_word.iter().map(|&f| u64::from(f)).collect();
    want.truncate(views::AT_WORDS_FEATURES);
    assert_eq!(got.len(), want.len(), "{hit}");
    assert!(got.iter().all(|f| at_word.contains(&(*f as u32))));
    for f in hit["at_words"].as_array().unwrap() {
        assert_eq!(f["explanation"], format!("marker word {}", f["feature"]));
    }

    // expl: terms combine with words and feat: terms in the context search.
    let by_expl = views::search_listing(&snap, "expl:\"legal contracts\"", 50, Some(&sae)).unwrap();
    let by_feat =
        views::search_listing(&snap, &format!("feat:{sae}/{legal}"), 50, Some(&sae)).unwrap();
    let ids = |r: &views::SearchResults| r.hits.iter().map(|h| h.context_id).collect::<Vec<_>>();
    assert!(!by_feat.hits.is_empty());
    assert_eq!(ids(&by_expl), ids(&by_feat));
    let combined = views::search_listing(&snap, "expl:legal -ctx33", 50, Some(&sae)).unwrap();
    assert!(ids(&combined).iter().all(|&c| c != 33));
    for bad in ["expl:zzzunknown", "expl:\"legal", "expl:"] {
        assert!(views::search_listing(&snap, bad, 5, None).is_err(), "{bad}");
    }
    let found =
        serde_json::to_value(views::feature_search(&snap, "contracts legal", None, 10).unwrap())
            .unwrap();
    check("/api/features/search", &found);
    assert_eq!(found["hits"][0]["feature"], legal);
    assert_eq!(found["hits"][0]["sae"], sae.as_str());
    for bad in ["", "   "] {
        assert!(views::feature_search(&snap, bad, None, 10).is_err());
    }
    assert!(views::feature_search(&snap, "x", Some("nope"), 10).is_err());
    assert!(views::feature_search(&snap, "x", None, 0).is_err());
}

/// A loopback `/embeddings` server: one dimension per topic word.
fn embedding_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let (mut line, mut len) = (String::new(), 0usize);
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let data: Vec<serde_json::Value> = req["input"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let t = t.as_str().unwrap().to_lowercase();
                            let has = |w: &str| if t.contains(w) { 1.0 } else { 0.0 };
                            serde_json::json!({"index": i, "embedding": [has("law"), has("legal"), has("week"), 0.01]})
                        })
                        .collect();
                    let out = serde_json::json!({ "data": data }).to_string();
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", out.len());
                    if stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(out.as_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn feature_search_by_meaning_finds_what_no_word_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    let sae = spec.saes[0].0.clone();
    scopedex_store::explanations::publish(
        &out,
        &sae,
        vec![
            row(3, "days of the week"),
            row(4, "legal documents"),
            row(5, "numbers"),
        ],
    )
    .unwrap();
    let snap = Snapshot::open(&out).unwrap();
    // No explanation has the word "law".
    assert!(views::feature_search(&snap, "law", None, 10)
        .unwrap()
        .hits
        .is_empty());
    let client = scopedex_explain::ChatClient::with_key(
        scopedex_explain::EndpointConfig::new(embedding_server(), "toy"),
        None,
    )
    .unwrap();
    // "law" embeds near "legal": feature 4 first.
    let r = views::feature_search_by_meaning(&snap, "law legal", Some(&sae), 3, &client).unwrap();
    assert_eq!(r.hits.len(), 3);
    assert_eq!(r.hits[0].feature, 4);
    let body = serde_json::to_value(&r).unwrap();
    openapi::Spec::load()
        .check("GET", "/api/features/search", 200, &body)
        .unwrap();
    // An endpoint that is down is a 503, not a 500.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg =
        scopedex_explain::EndpointConfig::new(format!("http://127.0.0.1:{port}/v1"), "toy");
    cfg.max_retries = 0;
    let down = scopedex_explain::ChatClient::with_key(cfg, None).unwrap();
    let e = views::feature_search_by_meaning(&snap, "law", None, 3, &down).unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.kind),
        (503, "embeddings_unavailable"),
        "{e:?}"
    );
}

/// Over HTTP (the router in-process): the feature search and its errors, a republish of
/// explanations picked up by the running server, and the embeddings switch.
#[tokio::test]
async fn the_feature_search_endpoint_over_http() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    let sae = spec.saes[0].0.clone();
    let handle = std::sync::Arc::new(scopedex_server::IndexHandle::open(&out).unwrap());
    let app = scopedex_server::router(scopedex_server::AppState::new(handle.clone()));
    let api = openapi::Spec::load();
    let get = |uri: String| {
        let app = app.clone();
        let api = &api;
        async move {
            let resp = app
                .oneshot(Request::get(&uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            api.check("GET", uri.split('?').next().unwrap(), status.as_u16(), &v)
                .unwrap_or_else(|e| panic!("{e}"));
            (status, v)
        }
    };
    let (s, v) = get("/api/features/search?q=legal".into()).await;
    assert_eq!(
        (s, v["hits"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    // Published while the server runs: its watcher's refresh swaps the new version in.
    scopedex_store::explanations::publish(&out, &sae, vec![row(7, "legal documents")]).unwrap();
    assert!(handle.refresh().unwrap(), "the republish is noticed");
    let (_, found) = get("/api/features/search?q=legal".into()).await;
    assert_eq!(found["hits"][0]["feature"], 7, "{found}");
    for (uri, status, kind) in [
        ("/api/features/search", 400, "missing_query"),
        ("/api/features/search?q=%20", 400, "empty_query"),
        ("/api/features/search?q=x&limit=0", 400, "invalid_limit"),
        ("/api/features/search?q=x&sae=nope", 404, "unknown_sae"),
        (
            "/api/features/search?q=x&meaning=true",
            400,
            "no_embeddings",
        ),
    ] {
        let (s, v) = get(uri.into()).await;
        assert_eq!(s.as_u16(), status, "{uri}: {v}");
        if kind != "invalid_limit" {
            assert_eq!(v["error"], kind, "{uri}: {v}");
        }
    }
    let (s, _) = get("/api/features/search?q=legal&meaning=false".into()).await;
    assert_eq!(s, StatusCode::OK);
}
