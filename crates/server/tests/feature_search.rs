//! Feature-aware search, "more like this" and feature occurrences through the HTTP API: every
//! response is validated against `schemas/openapi.yaml` and compared with the store's answers
//! (whose brute-force checks are in the store's `feature_search` tests).
mod openapi;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use scopedex_server::{router, AppState, IndexHandle};
use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::{IndexReader, IndexWriterOptions};
use serde_json::Value;
use tower::ServiceExt;

struct Api {
    app: axum::Router,
    spec: openapi::Spec,
    reader: IndexReader,
    fixture: FixtureSpec,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("index");
        let fixture = FixtureSpec {
            activation_l0: 3,
            ..FixtureSpec::default()
        };
        let mut options = IndexWriterOptions::default();
        options.activations.mantissa_bits = 23;
        fixture::write_index_with(&out, &fixture, options).unwrap();
        let handle = Arc::new(IndexHandle::open(&out).unwrap());
        Api {
            app: router(AppState::new(handle)),
            spec: openapi::Spec::load(),
            reader: IndexReader::open(&out).unwrap(),
            fixture,
            _dir: dir,
        }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let req = Request::get(uri).body(Body::empty()).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
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
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ids(v: &Value) -> Vec<u64> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["context_id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_queries_return_hits_with_the_firing_token() {
    let api = Api::new();
    // A feature of context 5, and a word of it.
    let cf = api.reader.context_features("L1R-8x", 5).unwrap().unwrap();
    let f = cf.features[0];
    let q = format!("feat:L1R-8x/{f} AND (even OR odd) -feat:L2R-8x/6");
    let v = api
        .ok(&format!("/api/search?limit=1000&q={}", enc(&q)))
        .await;
    let want: Vec<u64> = api
        .reader
        .search(&q, 1000)
        .unwrap()
        .iter()
        .map(|h| h.context_id)
        .collect();
    assert_eq!(ids(&v), want);
    assert!(want.contains(&5));
    assert_eq!(v["features"][0]["sae"], "L1R-8x");
    assert_eq!(v["features"][0]["feature"], f);
    assert_eq!(v["features"][0]["negated"], false);
    assert_eq!(v["features"][1]["negated"], true);
    for h in v["hits"].as_array().unwrap() {
        let id = h["context_id"].as_u64().unwrap();
        let rec = api.reader.context_features("L1R-8x", id).unwrap().unwrap();
        let i = rec.features.iter().position(|&x| x == f).unwrap();
        let m = &h["matches"][0];
        assert_eq!(h["matches"].as_array().unwrap().len(), 1, "{h}");
        assert_eq!(m["pos"], rec.max_pos[i]);
        assert_eq!(m["max_act"].as_f64().unwrap() as f32, rec.max_acts[i]);
        // The highlighted range is the token at the max position.
        let ctx = api.fixture.context(id);
        let p = rec.max_pos[i] as usize;
        assert_eq!(m["start"], ctx.token_starts[p]);
        assert_eq!(m["end"], ctx.token_ends[p]);
    }
    // Strength buckets narrow the hits.
    let strong = api
        .ok(&format!(
            "/api/search?limit=1000&q={}",
            enc(&format!("feat:L1R-8x/{f}>0.75"))
        ))
        .await;
    let any = api
        .ok(&format!(
            "/api/search?limit=1000&q={}",
            enc(&format!("feat:L1R-8x/{f}"))
        ))
        .await;
    assert!(ids(&strong).iter().all(|i| ids(&any).contains(i)));
    assert_eq!(strong["features"][0]["min_strength"], 0.75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_list_the_strongest_features_of_the_chosen_saes() {
    let api = Api::new();
    let saes: Vec<String> = api.reader.sae_ids().iter().map(|s| s.to_string()).collect();
    assert!(saes.len() >= 2 && saes.len() <= scopedex_server::views::MAX_HIT_SAES);
    let listed = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| h["features"].as_array().unwrap().clone())
            .map(|f| f["sae"].as_str().unwrap().to_string())
            .collect();
        out.dedup();
        out
    };
    // By default every SAE of a small index, in index order.
    let all = api.ok("/api/search?limit=50&q=even").await;
    assert_eq!(all["feature_saes"], serde_json::json!(saes));
    let mut seen = listed(&all);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), saes.len(), "every SAE has features in some hit");
    // One SAE: only its features, and the same hits (the choice does not filter contexts).
    let one = &saes[1];
    let v = api
        .ok(&format!("/api/search?limit=50&q=even&sae={}", enc(one)))
        .await;
    assert_eq!(v["feature_saes"], serde_json::json!([one]));
    assert_eq!(ids(&v), ids(&all));
    assert_eq!(listed(&v), vec![one.clone()]);
    for (a, b) in all["hits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["hits"].as_array().unwrap())
    {
        let of_one: Vec<&Value> = a["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["sae"] == one.as_str())
            .collect();
        assert_eq!(
            b["features"].as_array().unwrap().iter().collect::<Vec<_>>(),
            of_one
        );
    }
    // Listed in index order whatever the order asked, duplicates once.
    let both = format!("{},{},{}", saes[1], saes[0], saes[1]);
    let v = api
        .ok(&format!("/api/search?limit=5&q=even&sae={}", enc(&both)))
        .await;
    assert_eq!(v["feature_saes"], serde_json::json!([saes[0], saes[1]]));
    let (status, v) = api.get("/api/search?limit=5&q=even&sae=L9Z-8x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "unknown_sae");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_syntax_is_a_400_with_the_position() {
    let api = Api::new();
    for (q, pos) in [
        ("bank (account", 5usize),
        ("feat:L1R-8x/1>0.6", 14),
        ("feat:L9/1", 5),
        ("a OR", 4),
        ("é)", 1),
    ] {
        let (status, v) = api.get(&format!("/api/search?q={}", enc(q))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(v["error"], "invalid_query");
        assert_eq!(v["position"], pos, "{q}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("character {pos}")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_contexts_match_the_store_and_list_shared_features() {
    let api = Api::new();
    for (uri, sae) in [
        ("/api/contexts/7/similar?limit=10", None),
        (
            "/api/contexts/7/similar?limit=10&sae=L2R-8x",
            Some("L2R-8x"),
        ),
    ] {
        let v = api.ok(uri).await;
        let want = api.reader.similar_to_context(7, sae, 10).unwrap().unwrap();
        assert_eq!(
            ids(&v),
            want.hits.iter().map(|h| h.context_id).collect::<Vec<_>>()
        );
        assert_eq!(v["context_id"], 7);
        assert_eq!(v["terms"], want.terms.len());
        assert_eq!(v["hits"].as_array().unwrap().len(), 10);
        for h in v["hits"].as_array().unwrap() {
            let shared = h["shared"].as_array().unwrap();
            assert!(!shared.is_empty());
            let total: f64 = shared.iter().map(|s| s["weight"].as_f64().unwrap()).sum();
            assert!(total <= h["score"].as_f64().unwrap() + 1e-3);
            for s in shared {
                if let Some(only) = sae {
                    assert_eq!(s["sae"], only);
                }
                // A shared feature fires in both contexts.
                let s_sae = s["sae"].as_str().unwrap();
                let f = s["feature"].as_u64().unwrap() as u32;
                for id in [7, h["context_id"].as_u64().unwrap()] {
                    let rec = api.reader.context_features(s_sae, id).unwrap().unwrap();
                    assert!(rec.features.contains(&f));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occurrences_page_with_a_cursor_through_every_context() {
    let api = Api::new();
    let cf = api.reader.context_features("L2R-8x", 3).unwrap().unwrap();
    let f = cf.features[cf.features.len() / 2];
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            None => format!("/api/saes/L2R-8x/features/{f}/occurrences?limit=5"),
            Some(c) => format!("/api/saes/L2R-8x/features/{f}/occurrences?limit=5&cursor={c}"),
        };
        let v = api.ok(&uri).await;
        let page = v["occurrences"].as_array().unwrap();
        assert!(page.len() <= 5);
        all.extend(page.iter().map(|o| o["context_id"].as_u64().unwrap()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    // Every context whose features include f, in order.
    let want: Vec<u64> = (0..api.fixture.contexts)
        .filter(|&i| {
            api.fixture
                .context_features_of("L2R-8x", 40, i)
                .features
                .contains(&f)
        })
        .collect();
    assert_eq!(all, want);
    assert!(all.len() > 5, "more than one page");
    let (status, v) = api
        .get(&format!(
            "/api/saes/L2R-8x/features/{f}/occurrences?cursor=x"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_cursor");
}

/// CPU time per "more like this" and per feature query, in process (no HTTP), on the index at
/// `$SCOPEDEX_MEASURE_INDEX`: `cargo test -p scopedex-server --test feature_search -- --ignored
/// --nocapture time_per`.
#[test]
#[ignore = "a measurement, not a check"]
fn time_per_similar_and_feature_query() {
    let Some(dir) = std::env::var_os("SCOPEDEX_MEASURE_INDEX") else {
        return;
    };
    let snap = scopedex_server::Snapshot::open(&dir).unwrap();
    let n = snap.reader.manifest().contexts;
    let sae = snap.reader.sae_ids()[0].to_string();
    let _ = scopedex_server::views::similar_to_context(&snap, 0, None, 20); // warm caches
                                                                            // The best of 5 rounds: the machine these run on is shared and busy.
    let best = |f: &dyn Fn(u64)| -> f64 {
        (0..5)
            .map(|round| {
                let t = std::time::Instant::now();
                for i in 0..40 {
                    f(round * 40 + i);
                }
                t.elapsed().as_secs_f64() / 40.0
            })
            .fold(f64::INFINITY, f64::min)
    };
    let pick = |i: u64| scopedex_store::fixture::mix(i) % n;
    let similar = best(&|i| {
        scopedex_server::views::similar_to_context(&snap, pick(i), None, 20).unwrap();
    });
    let similar_store = best(&|i| {
        snap.reader.similar_to_context(pick(i), None, 20).unwrap();
    });
    let similar_live = best(&|i| {
        snap.reader.similar_list_live(pick(i), None, 20).unwrap();
    });
    let feature = best(&|i| {
        if let Some(cf) = snap.reader.context_features(&sae, pick(i + 7)).unwrap() {
            let f = cf.features[0];
            scopedex_server::views::search(&snap, &format!("feat:{sae}/{f} AND the"), 20).unwrap();
        }
    });
    let saes = snap.reader.sae_ids();
    let features_gets = best(&|i| {
        for j in 0..20 {
            for s in &saes {
                snap.reader
                    .with_context_features(s, pick(i * 20 + j), |cf| cf.len())
                    .unwrap();
            }
        }
    });
    let features_batched = best(&|i| {
        let ids: Vec<u64> = (0..20).map(|j| pick(i * 20 + j)).collect();
        for s in &saes {
            snap.reader
                .with_context_features_many(s, &ids, |_, cf| {
                    cf.len();
                })
                .unwrap();
        }
    });
    let context_gets = best(&|i| {
        let ids: Vec<u64> = (0..20).map(|j| pick(i * 20 + j)).collect();
        snap.reader.contexts(&ids).unwrap();
    });
    let hits_only = best(&|i| {
        if let Some(cf) = snap.reader.context_features(&sae, pick(i + 7)).unwrap() {
            let f = cf.features[0];
            let node = snap
                .reader
                .parse_query(&format!("feat:{sae}/{f} AND the"))
                .unwrap();
            snap.reader.search_parsed(&node, 20).unwrap();
        }
    });
    println!(
        "20 hits x {} SAEs context-feature gets {:.2} ms (batched per SAE, after: {:.2} ms), 20 \
         context gets {:.2} ms, feature query hits only {:.2} ms",
        saes.len(),
        features_gets * 1e3,
        features_batched * 1e3,
        context_gets * 1e3,
        hits_only * 1e3
    );
    let words = ["the", "river", "music", "of", "film", "island"];
    let word = best(&|i| {
        scopedex_server::views::search(&snap, words[i as usize % words.len()], 20).unwrap();
    });
    println!(
        "{}: similar (body, precomputed: {}) {:.2} ms, similar live with shared features {:.2} \
         ms, of which ranking {:.2} ms, feature query {:.2} ms, word search {:.2} ms",
        dir.to_string_lossy(),
        snap.reader.similar_lists_precomputed(),
        similar * 1e3,
        similar_live * 1e3,
        similar_store * 1e3,
        feature * 1e3,
        word * 1e3
    );
}
