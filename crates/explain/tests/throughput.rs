//! scopedex's own work per feature (reading examples from RocksDB, sampling, building the
//! prompt, HTTP, parsing, journal, publish) against a loopback server that answers at once:
//! the rate scopedex sustains when the model is never the bottleneck. Run explicitly:
//! `cargo test --workspace --test throughput -- --ignored --nocapture`.
mod common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use common::{completion, Reply, TestServer};
use scopedex_explain::{ChatClient, EndpointConfig, ExplainConfig};
use scopedex_store::fixture::{self, FixtureSpec};

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn explanations_per_second_against_an_instant_server() {
    let n_features: u32 = std::env::var("SCOPEDEX_BENCH_FEATURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    // The test index's example layout: 12 top examples, 5 intervals x 4, 64-token contexts.
    let spec = FixtureSpec {
        contexts: 2048,
        ctx_len: 64,
        saes: vec![("L6R-8x".into(), n_features)],
        top_k: 12,
        intervals: 5,
        samples: 4,
        ..Default::default()
    };
    fixture::write_index(&out, &spec).unwrap();
    let body = completion("[EXPLANATION]: numbers and counts");
    let server = TestServer::start(move |_, _| Reply::ok(body.clone()));
    let client = ChatClient::with_key(EndpointConfig::new(&server.url, "instant"), None).unwrap();
    let features: Vec<u32> = (0..n_features).collect();
    let config = ExplainConfig {
        concurrency: 16,
        ..Default::default()
    };
    let start = Instant::now();
    let report = scopedex_explain::explain(
        &out,
        "L6R-8x",
        &features,
        &client,
        &config,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.explained, n_features as usize);
    println!(
        "explain: {} features in {:.2} s = {:.0} features/s (scopedex's own work; model time {:.2} s summed over requests; publish included)",
        n_features,
        secs,
        f64::from(n_features) / secs,
        report.model_seconds
    );
}
