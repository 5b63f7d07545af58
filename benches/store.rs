//! Store benchmark: write throughput (Parquet + publish), and point-lookup latency of the
//! serving store (feature statistics, one page of examples, search) over random features.
//!
//! Run: `cargo bench --profile dev -p scopedex-benches --bench store` (dependencies are built
//! with opt-level 3 in the dev profile, which is what matters here: RocksDB, Parquet and tantivy).
//! Sizes: `STORE_BENCH_CONTEXTS` (default 4000) contexts of 128 tokens, one SAE with
//! `STORE_BENCH_D_SAE` (default 4096) features, 16 top + 4×4 interval examples per feature.
use std::time::{Duration, Instant};

use scopedex_store::fixture::{mix, FixtureSpec};
use scopedex_store::{IndexReader, IndexWriter};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), samples[samples.len() - 1])
}

fn time_lookups(name: &str, n: u64, mut f: impl FnMut(u64)) {
    // Warm the block cache and code paths first.
    for i in 0..n / 10 {
        f(mix(i ^ 0xdead));
    }
    let samples: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(mix(i));
            t.elapsed()
        })
        .collect();
    let total: Duration = samples.iter().sum();
    let (p50, p99, max) = percentiles(samples);
    println!(
        "{name:<28} n={n:<6} p50={:>7.1} µs  p99={:>7.1} µs  max={:>8.1} µs  {:>9.0} ops/s (1 thread)",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6,
        n as f64 / total.as_secs_f64()
    );
}

fn main() {
    let contexts = env_or("STORE_BENCH_CONTEXTS", 4000);
    let d_sae = env_or("STORE_BENCH_D_SAE", 4096) as u32;
    let spec = FixtureSpec {
        contexts,
        ctx_len: 128,
        saes: vec![("L1R-8x".into(), d_sae)],
        top_k: 16,
        intervals: 4,
        samples: 4,
        partners: 16,
        activation_l0: 0,
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("index");

    // Records are generated before timing, so only the store's work is measured.
    let ctx = spec.contexts();
    let sae = "L1R-8x";
    let features: Vec<_> = (0..d_sae).map(|f| spec.feature(sae, f)).collect();
    let examples: Vec<_> = (0..d_sae).flat_map(|f| spec.examples_of(sae, f)).collect();
    let cooc: Vec<_> = (0..d_sae)
        .flat_map(|f| spec.cooccurrence_of(sae, f))
        .collect();

    let t = Instant::now();
    let mut w = IndexWriter::create(&out, spec.manifest()).expect("writer");
    for c in ctx.chunks(256) {
        w.write_contexts(c).expect("contexts");
    }
    for c in features.chunks(1024) {
        w.write_features(sae, c).expect("features");
    }
    for c in examples.chunks(1024) {
        w.write_examples(sae, c).expect("examples");
    }
    for c in cooc.chunks(4096) {
        w.write_cooccurrence(sae, c).expect("cooc");
    }
    w.write_summary(sae, &spec.summary(sae, d_sae))
        .expect("summary");
    let parquet_time = t.elapsed();
    let report = w.publish().expect("publish");
    let total_time = t.elapsed();
    let rows = ctx.len() + features.len() + examples.len() + cooc.len();
    println!(
        "write: {} contexts, {} features, {} examples ({} acts each), {} cooc rows",
        ctx.len(),
        features.len(),
        examples.len(),
        spec.ctx_len,
        cooc.len()
    );
    println!(
        "write Parquet                {:>7.2} s  {:>9.0} rows/s  {:>6.1} MB Parquet",
        parquet_time.as_secs_f64(),
        rows as f64 / parquet_time.as_secs_f64(),
        report.parquet_bytes as f64 / 1e6
    );
    println!(
        "publish (RocksDB + tantivy)  {:>7.2} s;  total {:.2} s = {:.0} rows/s end to end",
        (total_time - parquet_time).as_secs_f64(),
        total_time.as_secs_f64(),
        rows as f64 / total_time.as_secs_f64()
    );

    let r = IndexReader::open(&out).expect("reader");
    let n = 20_000;
    time_lookups("feature(sae, f)", n, |x| {
        let f = (x % u64::from(d_sae)) as u32;
        assert!(r.feature(sae, f).expect("lookup").is_some());
    });
    time_lookups("examples(top, limit 16)", n, |x| {
        let f = (x % u64::from(d_sae)) as u32;
        let e = r
            .examples(sae, f, Some(scopedex_store::ExampleKind::Top), 16, 0)
            .expect("lookup");
        assert_eq!(e.len(), 16);
    });
    time_lookups("examples(all 32)", n, |x| {
        let f = (x % u64::from(d_sae)) as u32;
        assert_eq!(r.examples(sae, f, None, 100, 0).expect("lookup").len(), 32);
    });
    time_lookups("cooccurrence(limit 16)", n, |x| {
        let f = (x % u64::from(d_sae)) as u32;
        assert!(!r.cooccurrence(sae, f, None, 16).expect("lookup").is_empty());
    });
    time_lookups("contexts(16 ids)", n / 4, |x| {
        let ids: Vec<u64> = (0..16).map(|i| mix(x + i) % contexts).collect();
        assert_eq!(r.contexts(&ids).expect("lookup").len(), 16);
    });
    time_lookups("search(2 words, limit 20)", n / 4, |x| {
        let q = format!("w{} w{}", x % 50, (x >> 8) % 50);
        r.search(&q, 20).expect("search");
    });

    // Throughput with both cores hammering one shared reader (what the server does).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = 50_000u64;
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads as u64 {
            let r = r.clone();
            s.spawn(move || {
                for i in 0..per {
                    let f = (mix(i ^ (k << 40)) % u64::from(d_sae)) as u32;
                    r.feature(sae, f).expect("lookup");
                }
            });
        }
    });
    let el = t.elapsed().as_secs_f64();
    println!(
        "feature(sae, f) x {threads} threads  {:>9.0} ops/s",
        (per * threads as u64) as f64 / el
    );
}
