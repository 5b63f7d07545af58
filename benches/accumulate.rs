//! Per-feature accumulator throughput (`scopedex_index::SaeAccumulator::add_batch`) on random
//! sparse codes at SmolLM2 SAE shapes: d_sae 4608 (8x) and 18432 (32x), k = 32 active features
//! per token, contexts of 128 tokens, batches of 16 contexts (2048 rows), default settings
//! (top-k 32, 10 intervals × 8, co-occurrence exact for 4608, sketched for 18432).
//!
//! Feature ids are skewed (a few features fire often, most rarely), as in real SAEs. Reported:
//! rows/s of `add_batch` after a warm-up that fills the top-k lists, the time per 2048-row batch
//! (compare: the model forward takes ~2 s per 2k tokens), and the cost of merge, serialization
//! and finish. Run: `cargo bench -p scopedex-benches --bench accumulate`
//! (`SCOPEDEX_BENCH_QUICK=1` halves the batch counts).
use std::time::Instant;

use scopedex_index::{AccumConfig, BatchContexts, SaeAccumulator};
use scopedex_sae::SparseCodes;

const CTX: usize = 128;
const CTXS_PER_BATCH: usize = 16;
const K: usize = 32;
const VOCAB: u64 = 49152;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Batch {
    ids: Vec<u64>,
    tokens: Vec<Vec<u32>>,
    codes: SparseCodes,
}

fn batch(rng: &mut Rng, d_sae: usize, first_id: u64) -> Batch {
    let ids: Vec<u64> = (0..CTXS_PER_BATCH as u64).map(|i| first_id + i).collect();
    let tokens: Vec<Vec<u32>> = (0..CTXS_PER_BATCH)
        .map(|_| (0..CTX).map(|_| (rng.next() % VOCAB) as u32).collect())
        .collect();
    let mut codes = SparseCodes::new(d_sae);
    let mut row: Vec<u32> = Vec::with_capacity(K);
    let mut vals: Vec<f32> = Vec::with_capacity(K);
    for _ in 0..CTXS_PER_BATCH * CTX {
        row.clear();
        while row.len() < K {
            // Skewed: f = d·u³ favours low ids.
            let f = (d_sae as f64 * rng.unit().powi(3)) as u32;
            if !row.contains(&f) {
                row.push(f);
            }
        }
        row.sort_unstable();
        vals.clear();
        vals.extend(
            row.iter()
                .map(|_| (0.05 + 10.0 * rng.unit().powi(2)) as f32),
        );
        codes.push_row(&row, &vals);
    }
    Batch { ids, tokens, codes }
}

fn run(d_sae: usize, warm: usize, timed: usize, cooc: bool) {
    let mut cfg = AccumConfig::default();
    if !cooc {
        cfg.cooc.partners = 0;
    }
    let mut rng = Rng(d_sae as u64);
    let batches: Vec<Batch> = (0..warm + timed)
        .map(|i| batch(&mut rng, d_sae, (i * CTXS_PER_BATCH) as u64))
        .collect();
    let mut acc = SaeAccumulator::new("bench", 576, d_sae, &cfg).expect("valid config");
    let add = |acc: &mut SaeAccumulator, b: &Batch| {
        let toks: Vec<&[u32]> = b.tokens.iter().map(|t| t.as_slice()).collect();
        let bc = BatchContexts {
            context_ids: &b.ids,
            tokens: &toks,
        };
        acc.add_batch(&bc, &b.codes).expect("valid batch");
    };
    for b in &batches[..warm] {
        add(&mut acc, b);
    }
    let t = Instant::now();
    for b in &batches[warm..] {
        add(&mut acc, b);
    }
    let dt = t.elapsed().as_secs_f64();
    let rows = (timed * CTXS_PER_BATCH * CTX) as f64;
    println!(
        "d_sae {d_sae:>6}  cooc {:<6} add_batch: {:>9.0} rows/s  {:>7.1} ms per 2048-row batch  ({} threads)",
        if !cooc {
            "off"
        } else if acc.cooc_exact() {
            "exact"
        } else {
            "sketch"
        },
        rows / dt,
        dt * 1e3 / timed as f64,
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let bytes = acc.to_bytes().expect("encodes");
    let t_ser = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = SaeAccumulator::from_bytes(&bytes).expect("decodes");
    let t_de = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let merged = acc.merge(back).expect("same settings");
    let t_merge = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let res = merged.finish(None).expect("finishes");
    let t_fin = t.elapsed().as_secs_f64();
    println!(
        "               state {:.1} MB; to_bytes {:.2} s, from_bytes {:.2} s, merge {:.2} s, finish {:.2} s ({} examples, {} partners)",
        bytes.len() as f64 / 1e6,
        t_ser,
        t_de,
        t_merge,
        t_fin,
        res.examples.len(),
        res.cooccurrence.len()
    );
}

fn main() {
    let quick = std::env::var_os("SCOPEDEX_BENCH_QUICK").is_some();
    let (warm, timed) = if quick { (4, 5) } else { (8, 10) };
    for d in [4608, 18432] {
        run(d, warm, timed, true);
        run(d, warm, timed, false);
    }
}
