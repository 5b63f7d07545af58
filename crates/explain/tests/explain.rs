//! `explain` and `score` end to end against a real HTTP server on loopback answering recorded
//! responses: prompts sent, explanations published into a real index (RocksDB, tantivy,
//! Parquet), resume after a stop, retries, and every kind of bad answer counted.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{completion, last_user, recorded, system_of, Reply, TestServer};
use scopedex_explain::scorer::ScorerKind;
use scopedex_explain::{ChatClient, EndpointConfig, ExplainConfig, ScoreConfig};
use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::IndexReader;

fn index() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    (dir, out, spec.saes[0].0.clone())
}

/// An SAE wide enough that most contexts have features that never fire in them (the
/// scorers' negatives).
fn wide_index() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let spec = FixtureSpec {
        saes: vec![("L1R-8x".into(), 512)],
        ..Default::default()
    };
    fixture::write_index(&out, &spec).unwrap();
    (dir, out, spec.saes[0].0.clone())
}

fn client(server: &TestServer) -> ChatClient {
    let mut c = EndpointConfig::new(&server.url, "test-model");
    c.timeout = Duration::from_secs(5);
    c.backoff = Duration::from_millis(10);
    c.max_retries = 3;
    ChatClient::with_key(c, Some("sk-test-key".into())).unwrap()
}

fn config() -> ExplainConfig {
    ExplainConfig {
        concurrency: 4,
        ..Default::default()
    }
}

fn no_stop() -> AtomicBool {
    AtomicBool::new(false)
}

#[test]
fn features_are_explained_published_and_not_asked_again() {
    let (_dir, out, sae) = index();
    let server = TestServer::start(|_, _| Reply::ok(recorded("explain_ok.json")));
    let c = client(&server);
    let features: Vec<u32> = (0..10).collect();
    let mut calls = 0;
    let report = scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &c,
        &config(),
        &mut |_| calls += 1,
        &no_stop(),
    )
    .unwrap();
    assert_eq!(
        (report.explained, report.already_done, report.published),
        (10, 0, true)
    );
    assert_eq!(server.count(), 10);
    assert_eq!(calls, 11, "once at the start, once per feature");
    assert_eq!(
        report.prompt_tokens,
        10 * 207,
        "usage of the recorded response, summed"
    );
    // What was sent: the model, delphi's layout, the key in the header only.
    let bodies = server.bodies.lock().unwrap().clone();
    assert_eq!(bodies[0]["model"], "test-model");
    assert_eq!(bodies[0]["temperature"], 0.0);
    assert!(system_of(&bodies[0]).contains("[EXPLANATION]:"));
    assert_eq!(bodies[0]["messages"].as_array().unwrap().len(), 8);
    let user = last_user(&bodies[0]);
    assert!(
        user.starts_with("Example 1: ") && user.contains("<<") && user.contains("Activations: ("),
        "{user}"
    );
    assert!(!serde_json::to_string(&bodies[0])
        .unwrap()
        .contains("sk-test-key"));

    let r = IndexReader::open(&out).unwrap();
    let e = r.explanation(&sae, 3).unwrap().unwrap();
    assert_eq!(e.text, "Days of the week.");
    assert_eq!(e.model, "test-model");
    assert_eq!(e.prompt_version, scopedex_explain::prompt::PROMPT_VERSION);
    assert!(!e.train_contexts.is_empty());
    let settings: serde_json::Value = serde_json::from_str(&e.settings).unwrap();
    assert_eq!(settings["sampling"]["n_train"], 40);
    assert_eq!(settings["sampling"]["train_type"], "quantiles");
    assert_eq!(
        r.search_explanations("week", Some(&sae), 20).unwrap().len(),
        10
    );
    assert!(!scopedex_explain::journal::journal_path(&out, "explain", &sae).exists());
    drop(r);

    // Explained once: not asked again; --force asks again.
    let report = scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &c,
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!((report.explained, report.already_done), (0, 10));
    assert_eq!(server.count(), 10);
    let forced = ExplainConfig {
        force: true,
        ..config()
    };
    let report =
        scopedex_explain::explain(&out, &sae, &[1, 2], &c, &forced, &mut |_| {}, &no_stop())
            .unwrap();
    assert_eq!((report.explained, report.total_explained), (2, 10));
    assert_eq!(server.count(), 12);
}

#[test]
fn a_stopped_run_publishes_nothing_and_resumes_where_it_stopped() {
    let (_dir, out, sae) = index();
    let server = TestServer::start(|_, _| Reply::ok(completion("[EXPLANATION]: numbers")));
    let c = client(&server);
    let features: Vec<u32> = (0..20).collect();
    let stop = AtomicBool::new(false);
    let one_at_a_time = ExplainConfig {
        concurrency: 1,
        ..config()
    };
    let report = scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &c,
        &one_at_a_time,
        &mut |p| {
            if p.done == 5 {
                stop.store(true, Ordering::Relaxed);
            }
        },
        &stop,
    )
    .unwrap();
    assert!(!report.published);
    // The request in flight when the stop came finishes too.
    let stopped_at = report.explained;
    assert!((5..=6).contains(&stopped_at), "{report:?}");
    // Nothing visible in the published index; the journal holds what was done.
    let r = IndexReader::open(&out).unwrap();
    assert!(r.explanations(&sae).unwrap().is_empty());
    drop(r);
    let journal = scopedex_explain::journal::journal_path(&out, "explain", &sae);
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        stopped_at
    );
    // A crash in the middle of the next line is survived too.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"{\"status\":\"explained\",\"feat")
        })
        .unwrap();

    let report = scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &c,
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!(
        (
            report.already_done,
            report.explained,
            report.total_explained
        ),
        (stopped_at, 20 - stopped_at, 20)
    );
    assert_eq!(server.count(), 20, "no feature asked twice");
    assert!(report.published && !journal.exists());
    assert_eq!(
        IndexReader::open(&out)
            .unwrap()
            .explanations(&sae)
            .unwrap()
            .len(),
        20
    );
}

#[test]
fn bad_endpoints_and_bad_answers_are_counted_with_clear_reasons() {
    let (_dir, out, sae) = index();
    // Per feature (from the first example of the prompt, which differs by feature): a 500
    // then success, 429 with Retry-After then success, a 400, invalid JSON, an empty answer,
    // a truncated answer, a ramble, text that is no explanation, and a slow answer.
    let attempts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let seen = attempts.clone();
    let server = TestServer::start(move |body, _| {
        let user = last_user(body);
        let mut a = seen.lock().unwrap();
        let n = a.entry(user.clone()).or_default();
        *n += 1;
        // The feature number is not in the prompt; route by a hash of the examples.
        let kind = user
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 8;
        match (kind, *n) {
            (0, 1) => Reply::status(500, "{\"error\":\"overloaded\"}"),
            (1, 1) => {
                let mut r = Reply::status(429, "{\"error\":\"rate limited\"}");
                r.headers.push(("retry-after".into(), "0".into()));
                r
            }
            (2, _) => Reply::status(400, "{\"error\":\"model not found\"}"),
            (3, _) => Reply::ok("{\"choices\": [ not json"),
            (4, _) => Reply::ok(completion("")),
            (5, _) => Reply::ok(recorded("explain_truncated.json")),
            (6, _) => Reply::ok(completion(
                "I am not sure what these examples have in common.",
            )),
            _ => Reply::ok(completion("[EXPLANATION]: fine")),
        }
    });
    let c = client(&server);
    let features: Vec<u32> = (0..40).collect();
    let report = scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &c,
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    let total = report.explained + report.endpoint_failures + report.unparsed + report.no_examples;
    assert_eq!(total, 40, "{report:?}");
    assert!(
        report.explained > 0 && report.endpoint_failures > 0 && report.unparsed > 0,
        "{report:?}"
    );
    let reasons: Vec<&str> = report.failures.iter().map(|f| f.1.as_str()).collect();
    let has = |s: &str| reasons.iter().any(|r| r.contains(s));
    assert!(
        has("HTTP 400") || has("not a chat completion") || has("the answer"),
        "{reasons:?}"
    );
    for r in &reasons {
        assert!(!r.contains("sk-test-key"));
    }
    // Retried features (500, 429) got explained on their second try.
    let a = attempts.lock().unwrap();
    assert!(a.values().any(|&n| n == 2), "some request was retried");
    drop(a);
    // Only the explained ones are published; the next run asks the failed ones again.
    let r = IndexReader::open(&out).unwrap();
    assert_eq!(r.explanations(&sae).unwrap().len(), report.explained);
    drop(r);
    let before = server.count();
    let again = scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &c,
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!(again.already_done, report.explained);
    assert!(server.count() > before);
}

#[test]
fn a_down_or_slow_endpoint_fails_each_feature_and_publishes_nothing_new() {
    let (_dir, out, sae) = index();
    // A port that was just released: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = EndpointConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    cfg.max_retries = 1;
    cfg.backoff = Duration::from_millis(5);
    let down = ChatClient::with_key(cfg, None).unwrap();
    let report = scopedex_explain::explain(
        &out,
        &sae,
        &[0, 1, 2],
        &down,
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!(report.endpoint_failures, 3);
    assert!(
        report.failures[0].1.contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        report.failures
    );
    assert!(
        report.failures[0].1.contains("gave up after 2 tries"),
        "{:?}",
        report.failures
    );

    let slow = TestServer::start(|_, _| Reply {
        delay: Duration::from_millis(800),
        ..Reply::ok(completion("[EXPLANATION]: late"))
    });
    let mut cfg = EndpointConfig::new(&slow.url, "m");
    cfg.timeout = Duration::from_millis(200);
    cfg.max_retries = 1;
    cfg.backoff = Duration::from_millis(5);
    let c = ChatClient::with_key(cfg, None).unwrap();
    let report =
        scopedex_explain::explain(&out, &sae, &[4], &c, &config(), &mut |_| {}, &no_stop())
            .unwrap();
    assert_eq!(report.endpoint_failures, 1);
    assert!(
        report.failures[0].1.contains("timed out") || report.failures[0].1.contains("imeout"),
        "{:?}",
        report.failures
    );
    assert_eq!(slow.count(), 2, "one retry after the timeout");
    assert!(IndexReader::open(&out)
        .unwrap()
        .explanations(&sae)
        .unwrap()
        .is_empty());
}

#[test]
fn a_feature_without_examples_is_counted_and_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let spec = FixtureSpec {
        top_k: 0,
        intervals: 0,
        ..Default::default()
    };
    fixture::write_index(&out, &spec).unwrap();
    let server = TestServer::start(|_, _| Reply::ok(completion("[EXPLANATION]: x")));
    let report = scopedex_explain::explain(
        &out,
        &spec.saes[0].0,
        &[0, 1],
        &client(&server),
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!(report.no_examples, 2);
    assert!(report.failures[0].1.contains("no stored example"));
    assert_eq!(server.count(), 0);
}

#[test]
fn detection_and_fuzzing_scores_follow_the_answers() {
    let (_dir, out, sae) = wide_index();
    let explainer = TestServer::start(|_, _| Reply::ok(completion("[EXPLANATION]: numbers")));
    let features: Vec<u32> = (0..6).collect();
    scopedex_explain::explain(
        &out,
        &sae,
        &features,
        &client(&explainer),
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();

    // A scorer that says 1 to everything, with P(1) = 0.8 for every entry.
    let scorer = TestServer::start(|body, _| {
        let user = last_user(body);
        let n = user.matches("\nExample ").count();
        let list = vec!["1"; n].join(", ");
        let mut logprobs = Vec::new();
        for _ in 0..n {
            logprobs.push(serde_json::json!({"token": "1", "logprob": (0.8f32).ln(),
                "top_logprobs": [{"token": "1", "logprob": (0.8f32).ln()}, {"token": "0", "logprob": (0.2f32).ln()}]}));
        }
        let body = serde_json::json!({
            "choices": [{"message": {"content": format!("[{list}]")}, "finish_reason": "stop",
                         "logprobs": {"content": logprobs}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5}
        });
        Reply::ok(body.to_string())
    });
    let config = ScoreConfig {
        logprobs: true,
        concurrency: 3,
        ..Default::default()
    };
    let report = scopedex_explain::score(
        &out,
        &sae,
        &features,
        &client(&scorer),
        &config,
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!(
        (report.scored, report.failed, report.unreadable_answers),
        (6, 0, 0),
        "{report:?}"
    );
    let r = IndexReader::open(&out).unwrap();
    for f in features {
        let e = r.explanation(&sae, f).unwrap().unwrap();
        for s in [e.detection, e.fuzzing] {
            // All said 1: recall 1, precision = positives / all, balanced accuracy 0.5, and
            // every probability equal: AUROC 0.5.
            assert!(s.n > 0);
            assert_eq!(s.recall, 1.0);
            assert_eq!(s.balanced_accuracy, 0.5);
            assert_eq!(s.auroc, 0.5);
            assert!(s.precision > 0.0 && s.precision < 1.0, "{s:?}");
        }
        assert_eq!(e.scorer_model, "test-model");
        assert!(!e.scored.is_empty());
    }
    assert_eq!(report.distributions["detection_recall"].mean, 1.0);
    assert_eq!(
        report.distributions["fuzzing_balanced_accuracy"].median,
        0.5
    );
    // The detection prompts hold the explanation; fuzzing prompts mark tokens.
    let bodies = scorer.bodies.lock().unwrap().clone();
    assert!(bodies
        .iter()
        .all(|b| last_user(b).contains("Feature explanation: numbers")));
    assert!(bodies
        .iter()
        .any(|b| system_of(b).contains("marked") && last_user(b).contains("<<")));
    assert!(bodies
        .iter()
        .all(|b| b["logprobs"] == true && b["top_logprobs"] == 5));
    // Scored once: not asked again.
    let n = scorer.count();
    let again = scopedex_explain::score(
        &out,
        &sae,
        &(0..6).collect::<Vec<_>>(),
        &client(&scorer),
        &config,
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!((again.already_done, scorer.count()), (6, n));
}

#[test]
fn unreadable_scorer_answers_count_as_wrong() {
    let (_dir, out, sae) = wide_index();
    let explainer = TestServer::start(|_, _| Reply::ok(completion("[EXPLANATION]: numbers")));
    scopedex_explain::explain(
        &out,
        &sae,
        &[0, 1],
        &client(&explainer),
        &config(),
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    let scorer = TestServer::start(|_, _| Reply::ok(recorded("detection_logprobs.json")));
    let config = ScoreConfig {
        scorers: vec![ScorerKind::Detection],
        ..Default::default()
    };
    let report = scopedex_explain::score(
        &out,
        &sae,
        &[0, 1],
        &client(&scorer),
        &config,
        &mut |_| {},
        &no_stop(),
    )
    .unwrap();
    assert_eq!(report.scored, 2);
    assert_eq!(report.unreadable_answers, report.requests);
    let e = IndexReader::open(&out)
        .unwrap()
        .explanation(&sae, 0)
        .unwrap()
        .unwrap();
    // Every answer wrong: positives missed, negatives called positive.
    assert_eq!(e.detection.recall, 0.0);
    assert_eq!(e.detection.balanced_accuracy, 0.0);
    assert_eq!(e.fuzzing.n, 0, "fuzzing was not asked for");
}

#[test]
fn search_by_meaning_fuses_embeddings_with_the_text_ranking_and_caches_vectors() {
    use scopedex_explain::semantic::{rank, Candidate};
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    // A toy embedder: one dimension per topic.
    let server = TestServer::start(|body, _| {
        let inputs: Vec<String> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_lowercase())
            .collect();
        let data: Vec<serde_json::Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let has = |ws: &[&str]| if ws.iter().any(|w| t.contains(w)) { 1.0 } else { 0.0 };
                serde_json::json!({"index": i, "embedding": [
                    has(&["coin", "bank", "money"]), has(&["day", "week"]), has(&["legal", "law"]), 0.01
                ]})
            })
            .collect();
        Reply::ok(serde_json::json!({"data": data}).to_string())
    });
    let c = ChatClient::with_key(EndpointConfig::new(&server.url, "toy-embedder"), None).unwrap();
    let cand = |f: u32, t: &str| Candidate {
        sae: "L6R-8x".into(),
        feature: f,
        text: t.into(),
    };
    let candidates = vec![
        cand(0, "days of the week"),
        cand(1, "coins and banknotes"),
        cand(2, "legal documents"),
    ];
    // No explanation has the word "money": the meaning alone ranks feature 1 first.
    let ranked = rank(&index, &c, "money", &candidates, &[], 3).unwrap();
    assert_eq!(ranked[0].candidate.feature, 1);
    assert!(ranked[0].cosine > 0.9 && ranked[1].cosine < 0.1);
    let first = server.count();
    assert_eq!(first, 2, "one batch of explanations, one query");
    // Fused with a text ranking that found feature 2: feature 2 is third by
    // meaning but first by text, so its two reciprocal ranks beat feature 1's one.
    let ranked = rank(&index, &c, "money", &candidates, &[2], 3).unwrap();
    assert_eq!(
        ranked
            .iter()
            .map(|r| r.candidate.feature)
            .collect::<Vec<_>>(),
        vec![2, 1, 0]
    );
    assert_eq!(
        server.count(),
        first + 1,
        "explanation vectors come from the cache"
    );
}
