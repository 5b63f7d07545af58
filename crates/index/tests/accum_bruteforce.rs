//! The accumulators against a brute-force computation over the dense activations, written
//! independently here from the documented definitions; and the merge/serialization properties.
// Index loops mirror the definitions (n[f], both[f][g]) more plainly than iterator chains.
#![allow(clippy::needless_range_loop)]
use std::collections::BTreeMap;

use scopedex_index::{
    AccumConfig, BatchContexts, CoocConfig, CrossCooc, SaeAccumulator, SaeResults,
};
use scopedex_sae::{ReconTerms, SparseCodes};
use scopedex_store::records::{ExampleKind, ExampleRecord};

// ---------------------------------------------------------------- fixture

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Contexts with dense activations `acts[c][pos][f]` (multiples of 1/4: sums are exact).
struct Fixture {
    d_sae: usize,
    d_in: usize,
    ids: Vec<u64>,
    tokens: Vec<Vec<u32>>,
    acts: Vec<Vec<Vec<f32>>>,
    x: Vec<Vec<Vec<f32>>>,
    x_hat: Vec<Vec<Vec<f32>>>,
    /// Contexts of each batch.
    batches: Vec<Vec<usize>>,
}

fn fixture(seed: u64, n_ctx: usize, d_sae: usize) -> Fixture {
    let mut rng = Rng(seed);
    let d_in = 5;
    let mut ids: Vec<u64> = (0..n_ctx as u64)
        .map(|i| 1000 + (i * 7919) % 4093)
        .collect();
    // Distinct ids in an arbitrary order.
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    let (mut tokens, mut acts, mut x, mut x_hat) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n_ctx {
        let len = 1 + rng.below(24) as usize;
        tokens.push(
            (0..len)
                .map(|p| if p == 0 { 0 } else { 1 + rng.below(11) as u32 })
                .collect(),
        );
        let mut a = vec![vec![0f32; d_sae]; len];
        for (p, row) in a.iter_mut().enumerate() {
            for (f, v) in row.iter_mut().enumerate() {
                if f == d_sae - 1 {
                    continue; // a dead feature
                }
                let prob = if f < 4 { 40 } else { 12 };
                if rng.below(100) < prob {
                    let q = (1 + rng.below(if f % 3 == 0 { 60 } else { 12 })) as f32;
                    // Large values at BOS, which must be ignored.
                    let scale = if p == 0 {
                        64.0
                    } else if f % 5 == 0 {
                        8.0
                    } else {
                        0.25
                    };
                    *v = q * scale;
                }
            }
        }
        acts.push(a);
        let xs: Vec<Vec<f32>> = (0..len)
            .map(|_| {
                (0..d_in)
                    .map(|_| rng.below(64) as f32 * 0.125 - 3.0)
                    .collect()
            })
            .collect();
        x_hat.push(
            xs.iter()
                .map(|r| {
                    r.iter()
                        .map(|&v| v + (rng.below(9) as f32 - 4.0) * 0.0625)
                        .collect()
                })
                .collect(),
        );
        x.push(xs);
    }
    let mut batches = vec![];
    let mut c = 0;
    while c < n_ctx {
        let n = (1 + rng.below(6) as usize).min(n_ctx - c);
        batches.push((c..c + n).collect());
        c += n;
    }
    Fixture {
        d_sae,
        d_in,
        ids,
        tokens,
        acts,
        x,
        x_hat,
        batches,
    }
}

fn codes_of(acts: &[Vec<Vec<f32>>], ctxs: &[usize], d_sae: usize) -> SparseCodes {
    let mut codes = SparseCodes::new(d_sae);
    for &c in ctxs {
        for row in &acts[c] {
            let (f, v): (Vec<u32>, Vec<f32>) = row
                .iter()
                .enumerate()
                .filter(|x| *x.1 > 0.0)
                .map(|(f, &v)| (f as u32, v))
                .unzip();
            codes.push_row(&f, &v);
        }
    }
    codes
}

fn feed(acc: &mut SaeAccumulator, fx: &Fixture, batch: &[usize]) {
    let ids: Vec<u64> = batch.iter().map(|&c| fx.ids[c]).collect();
    let toks: Vec<&[u32]> = batch.iter().map(|&c| fx.tokens[c].as_slice()).collect();
    let b = BatchContexts {
        context_ids: &ids,
        tokens: &toks,
    };
    acc.add_batch(&b, &codes_of(&fx.acts, batch, fx.d_sae))
        .unwrap();
    let x: Vec<f32> = batch.iter().flat_map(|&c| fx.x[c].concat()).collect();
    let xh: Vec<f32> = batch.iter().flat_map(|&c| fx.x_hat[c].concat()).collect();
    let first_rows: Vec<usize> = toks
        .iter()
        .scan(0, |row, t| {
            let first = *row;
            *row += t.len();
            Some(first)
        })
        .collect();
    let terms = ReconTerms::from_rows(&x, &xh, fx.d_in, &first_rows).unwrap();
    acc.add_reconstruction(&b, &terms).unwrap();
}

fn config() -> AccumConfig {
    AccumConfig {
        top_k: 5,
        intervals: 4,
        samples_per_interval: 2,
        hist_bins: 12,
        hist_range: (0.1, 1000.0),
        top_tokens: 4,
        token_counters: 64,
        density_bins: 8,
        density_min_log10: -4.0,
        cooc: CoocConfig {
            partners: 6,
            exact_budget_bytes: 1 << 20,
            sketch_counters: 64,
        },
        exclude_bos: true,
    }
}

fn single_pass(fx: &Fixture, cfg: &AccumConfig) -> SaeAccumulator {
    let mut acc = SaeAccumulator::new("L1R", fx.d_in, fx.d_sae, cfg).unwrap();
    for b in &fx.batches {
        feed(&mut acc, fx, b);
    }
    acc
}

// ---------------------------------------------------------------- brute force

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn prio(f: u32, ctx: u64) -> u64 {
    splitmix(ctx ^ splitmix(f as u64))
}

/// (max over positions ≥ 1, first position of it), per context, for feature f.
fn ctx_max(fx: &Fixture, c: usize, f: usize) -> (f32, u32) {
    let mut best = (0f32, 0u32);
    for (p, row) in fx.acts[c].iter().enumerate().skip(1) {
        if row[f] > best.0 {
            best = (row[f], p as u32);
        }
    }
    best
}

fn example(fx: &Fixture, c: usize, f: usize, kind: ExampleKind, rank: u16) -> ExampleRecord {
    let (m, p) = ctx_max(fx, c, f);
    let acts = fx.acts[c]
        .iter()
        .enumerate()
        .map(|(pos, row)| if pos == 0 { 0.0 } else { row[f] })
        .collect();
    ExampleRecord {
        feature: f as u32,
        kind,
        rank,
        context_id: fx.ids[c],
        max_pos: p,
        max_act: m,
        acts,
    }
}

fn by_rank(fx: &Fixture, f: usize, v: &mut [usize]) {
    v.sort_by(|&a, &b| {
        let (ma, mb) = (ctx_max(fx, a, f).0, ctx_max(fx, b, f).0);
        mb.partial_cmp(&ma).unwrap().then(fx.ids[a].cmp(&fx.ids[b]))
    });
}

fn brute_examples(fx: &Fixture, cfg: &AccumConfig, f: usize) -> Vec<ExampleRecord> {
    let n_ctx = fx.ids.len();
    let mut firing: Vec<usize> = (0..n_ctx).filter(|&c| ctx_max(fx, c, f).0 > 0.0).collect();
    by_rank(fx, f, &mut firing);
    let mut out: Vec<ExampleRecord> = firing
        .iter()
        .take(cfg.top_k)
        .enumerate()
        .map(|(r, &c)| example(fx, c, f, ExampleKind::Top, r as u16))
        .collect();
    if firing.is_empty() {
        return out;
    }
    // Buckets of a quarter octave (f32 bits >> 21), bottom-s by (priority, id) in each.
    let key = |c: usize| (prio(f as u32, fx.ids[c]), fx.ids[c]);
    let mut buckets: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for &c in &firing {
        buckets
            .entry(ctx_max(fx, c, f).0.to_bits() >> 21)
            .or_default()
            .push(c);
    }
    let max4 = (ctx_max(fx, firing[0], f).0 * 4.0) as u64;
    let n = cfg.intervals as u64;
    let mut per: Vec<Vec<usize>> = vec![vec![]; cfg.intervals];
    for (_, mut v) in buckets {
        v.sort_by_key(|&c| key(c));
        v.truncate(cfg.samples_per_interval);
        for c in v {
            // Interval i: i·max/N ≤ a < (i+1)·max/N, in integers (a is a multiple of 1/4).
            let a4 = (ctx_max(fx, c, f).0 * 4.0) as u64;
            let i = (0..n).filter(|&j| a4 * n >= j * max4).max().unwrap_or(0);
            per[i as usize].push(c);
        }
    }
    for (i, mut v) in per.into_iter().enumerate() {
        v.sort_by_key(|&c| key(c));
        v.truncate(cfg.samples_per_interval);
        by_rank(fx, f, &mut v);
        for (r, c) in v.into_iter().enumerate() {
            out.push(example(fx, c, f, ExampleKind::Interval(i as u16), r as u16));
        }
    }
    out
}

fn check_against_brute_force(fx: &Fixture, cfg: &AccumConfig, res: &SaeResults) {
    let d = fx.d_sae;
    let counted: Vec<(usize, usize)> = (0..fx.ids.len())
        .flat_map(|c| (1..fx.tokens[c].len()).map(move |p| (c, p)))
        .collect();
    let t = counted.len() as u64;
    assert_eq!(res.summary.tokens_indexed, t);
    let l0: u64 = counted
        .iter()
        .map(|&(c, p)| fx.acts[c][p].iter().filter(|&&v| v > 0.0).count() as u64)
        .sum();
    assert_eq!(res.summary.mean_l0, l0 as f64 / t as f64);
    let edges = &res.summary.act_hist_edges;
    assert_eq!(edges.len(), cfg.hist_bins + 1);
    let mut n_fired = vec![0u64; d];
    for f in 0..d {
        let vals: Vec<(f32, u32)> = counted
            .iter()
            .filter(|&&(c, p)| fx.acts[c][p][f] > 0.0)
            .map(|&(c, p)| (fx.acts[c][p][f], fx.tokens[c][p]))
            .collect();
        n_fired[f] = vals.len() as u64;
        let r = &res.features[f];
        assert_eq!(r.feature, f as u32);
        assert_eq!(r.n_fired, vals.len() as u64, "feature {f}");
        assert_eq!(r.density, vals.len() as f64 / t as f64);
        let max = vals.iter().map(|v| v.0).fold(0f32, f32::max);
        assert_eq!(r.max_act, max);
        let sum: f64 = vals.iter().map(|v| v.0 as f64).sum();
        let mean = if vals.is_empty() {
            0.0
        } else {
            (sum / vals.len() as f64) as f32
        };
        assert_eq!(r.mean_act, mean);
        let mut hist = vec![0u64; cfg.hist_bins];
        for &(v, _) in &vals {
            let mut b = 0;
            for i in 0..cfg.hist_bins {
                if v >= edges[i] {
                    b = i;
                }
            }
            hist[b] += 1;
        }
        assert_eq!(r.act_hist, hist, "feature {f}");
        let mut tc: BTreeMap<u32, u64> = BTreeMap::new();
        for &(_, tok) in &vals {
            *tc.entry(tok).or_default() += 1;
        }
        let mut tc: Vec<(u32, u64)> = tc.into_iter().collect();
        tc.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        tc.truncate(cfg.top_tokens);
        let got: Vec<(u32, u64)> = r.top_tokens.iter().map(|x| (x.token, x.count)).collect();
        assert_eq!(got, tc, "top tokens of feature {f}");
        let got: Vec<&ExampleRecord> = res
            .examples
            .iter()
            .filter(|e| e.feature == f as u32)
            .collect();
        let want = brute_examples(fx, cfg, f);
        assert_eq!(got.len(), want.len(), "examples of feature {f}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(*g, w, "feature {f}");
        }
    }
    assert_eq!(
        res.summary.dead_features as usize,
        n_fired.iter().filter(|&&n| n == 0).count()
    );
    assert!(res.summary.dead_features >= 1);
    // Density histogram.
    let lo = cfg.density_min_log10 as f64;
    let w = -lo / cfg.density_bins as f64;
    let mut dh = vec![0u64; cfg.density_bins];
    for &n in n_fired.iter().filter(|&&n| n > 0) {
        let l = (n as f64 / t as f64).log10();
        dh[(((l - lo) / w).floor().max(0.0) as usize).min(cfg.density_bins - 1)] += 1;
    }
    assert_eq!(res.summary.density_hist, dh);
    // Co-occurrence.
    let mut both = vec![vec![0u64; d]; d];
    for &(c, p) in &counted {
        let on: Vec<usize> = (0..d).filter(|&f| fx.acts[c][p][f] > 0.0).collect();
        for &a in &on {
            for &b in &on {
                if a != b {
                    both[a][b] += 1;
                }
            }
        }
    }
    let mut want = vec![];
    for f in 0..d {
        let stats = |g: usize| {
            let (nab, na, nb) = (both[f][g] as f64, n_fired[f] as f64, n_fired[g] as f64);
            let tt = t as f64;
            let jac = nab / (na + nb - nab);
            let npmi = if nab == tt {
                1.0
            } else {
                ((nab / tt).ln() - (na / tt).ln() - (nb / tt).ln()) / -(nab / tt).ln()
            };
            (jac, npmi.clamp(-1.0, 1.0))
        };
        // Ranked by association: n_both ≥ MIN_COOC_COUNT, NPMI desc, n_both desc, id asc.
        let mut ps: Vec<usize> = (0..d)
            .filter(|&g| both[f][g] >= scopedex_index::accum::cooc::MIN_COOC_COUNT)
            .collect();
        ps.sort_by(|&a, &b| {
            stats(b)
                .1
                .total_cmp(&stats(a).1)
                .then(both[f][b].cmp(&both[f][a]))
                .then(a.cmp(&b))
        });
        ps.truncate(cfg.cooc.partners);
        for g in ps {
            let (jac, npmi) = stats(g);
            want.push((f as u32, g as u32, both[f][g], jac, npmi));
        }
    }
    assert_eq!(res.cooccurrence.len(), want.len());
    for (r, w) in res.cooccurrence.iter().zip(&want) {
        assert_eq!((r.feature, r.other_feature, r.n_both), (w.0, w.1, w.2));
        assert_eq!(r.other_sae, "L1R");
        assert!((r.jaccard as f64 - w.3).abs() < 1e-6, "{r:?} {w:?}");
        assert!((r.npmi as f64 - w.4).abs() < 1e-5, "{r:?} {w:?}");
    }
    // Explained variance, two-pass.
    let rows: Vec<(usize, usize)> = counted.clone();
    let mut mean = vec![0f64; fx.d_in];
    for &(c, p) in &rows {
        for (m, &v) in mean.iter_mut().zip(&fx.x[c][p]) {
            *m += v as f64 / rows.len() as f64;
        }
    }
    let (mut sse, mut sst) = (0f64, 0f64);
    for &(c, p) in &rows {
        for i in 0..fx.d_in {
            sse += (fx.x[c][p][i] as f64 - fx.x_hat[c][p][i] as f64).powi(2);
            sst += (fx.x[c][p][i] as f64 - mean[i]).powi(2);
        }
    }
    assert!((res.summary.explained_variance - (1.0 - sse / sst)).abs() < 1e-9);
}

// ---------------------------------------------------------------- tests

#[test]
fn priority_matches_the_documented_hash() {
    for (f, c) in [(0u32, 0u64), (7, 123456), (49, u64::MAX)] {
        assert_eq!(scopedex_index::accum::intervals::priority(f, c), prio(f, c));
    }
}

#[test]
fn single_pass_equals_brute_force() {
    for seed in [1u64, 2, 3] {
        let fx = fixture(seed, 60, 50);
        let cfg = config();
        let acc = single_pass(&fx, &cfg);
        assert!(acc.cooc_exact());
        let res = acc.finish(None).unwrap();
        assert!(res.sketch.cooc_exact && res.sketch.top_tokens_max_error == 0);
        // The fixture exercises what it should: several intervals, and ties in the top lists.
        for i in 0..cfg.intervals as u16 {
            assert!(res
                .examples
                .iter()
                .any(|e| e.kind == ExampleKind::Interval(i)));
        }
        let tops: Vec<&ExampleRecord> = res
            .examples
            .iter()
            .filter(|e| e.kind == ExampleKind::Top)
            .collect();
        assert!(tops
            .windows(2)
            .any(|w| w[0].feature == w[1].feature && w[0].max_act == w[1].max_act));
        check_against_brute_force(&fx, &cfg, &res);
    }
}

#[test]
fn sketch_mode_with_enough_counters_is_exact() {
    let fx = fixture(4, 50, 50);
    let mut cfg = config();
    cfg.cooc.exact_budget_bytes = 0; // forces the sketch
    let acc = single_pass(&fx, &cfg);
    assert!(!acc.cooc_exact());
    let res = acc.finish(None).unwrap();
    assert_eq!(res.sketch.cooc_max_error, 0);
    check_against_brute_force(&fx, &cfg, &res);
}

#[test]
fn top_k_and_bos_handling_with_k_larger_than_contexts() {
    let fx = fixture(5, 8, 50);
    let mut cfg = config();
    cfg.top_k = 100;
    cfg.samples_per_interval = 100;
    let res = single_pass(&fx, &cfg).finish(None).unwrap();
    check_against_brute_force(&fx, &cfg, &res);
    for e in &res.examples {
        assert_eq!(e.acts[0], 0.0);
        assert_eq!(e.acts[e.max_pos as usize], e.max_act);
    }
}

fn shard_results(
    fx: &Fixture,
    cfg: &AccumConfig,
    assign: &[usize],
    order: &[[usize; 2]],
) -> SaeResults {
    let mut shards: Vec<Option<SaeAccumulator>> = (0..4)
        .map(|_| Some(SaeAccumulator::new("L1R", fx.d_in, fx.d_sae, cfg).unwrap()))
        .collect();
    for (b, batch) in fx.batches.iter().enumerate() {
        feed(shards[assign[b]].as_mut().unwrap(), fx, batch);
    }
    // Each step merges shard j into shard i.
    for &[i, j] in order {
        let a = shards[i].take().unwrap();
        let b = shards[j].take().unwrap();
        shards[i] = Some(a.merge(b).unwrap());
    }
    shards
        .into_iter()
        .flatten()
        .next()
        .unwrap()
        .finish(None)
        .unwrap()
}

#[test]
fn four_shards_merged_in_any_grouping_equal_one_pass() {
    for seed in [11u64, 12] {
        let fx = fixture(seed, 70, 50);
        let cfg = config();
        let want = single_pass(&fx, &cfg).finish(None).unwrap();
        let mut rng = Rng(seed);
        let orders: [[[usize; 2]; 3]; 4] = [
            [[0, 1], [2, 3], [0, 2]],
            [[3, 2], [3, 1], [3, 0]],
            [[1, 3], [0, 2], [1, 0]],
            [[2, 0], [1, 2], [3, 1]],
        ];
        for order in &orders {
            let assign: Vec<usize> = fx.batches.iter().map(|_| rng.below(4) as usize).collect();
            let got = shard_results(&fx, &cfg, &assign, order);
            assert_eq!(got, want);
        }
        // Contiguous slices, as --shard I/N does.
        let n = fx.batches.len();
        let assign: Vec<usize> = (0..n).map(|b| b * 4 / n).collect();
        assert_eq!(shard_results(&fx, &cfg, &assign, &orders[0]), want);
    }
}

#[test]
fn merge_in_sketch_mode_without_eviction_equals_one_pass() {
    let fx = fixture(13, 40, 50);
    let mut cfg = config();
    cfg.cooc.exact_budget_bytes = 0;
    let want = single_pass(&fx, &cfg).finish(None).unwrap();
    let assign: Vec<usize> = (0..fx.batches.len()).map(|b| (b * 7) % 4).collect();
    assert_eq!(
        shard_results(&fx, &cfg, &assign, &[[1, 0], [2, 3], [2, 1]]),
        want
    );
}

#[test]
fn state_round_trip_and_resume() {
    let fx = fixture(21, 50, 50);
    for budget in [1u64 << 20, 0] {
        let mut cfg = config();
        cfg.cooc.exact_budget_bytes = budget;
        let want = single_pass(&fx, &cfg).finish(None).unwrap();
        let mut acc = SaeAccumulator::new("L1R", fx.d_in, fx.d_sae, &cfg).unwrap();
        let half = fx.batches.len() / 2;
        for b in &fx.batches[..half] {
            feed(&mut acc, &fx, b);
        }
        let bytes = acc.to_bytes().unwrap();
        let mut resumed = SaeAccumulator::from_bytes(&bytes).unwrap();
        assert_eq!(resumed.to_bytes().unwrap(), bytes);
        for b in &fx.batches[half..] {
            feed(&mut resumed, &fx, b);
        }
        assert_eq!(resumed.finish(None).unwrap(), want);
        assert!(SaeAccumulator::from_bytes(&bytes[..bytes.len() / 2]).is_err());
        assert!(SaeAccumulator::from_bytes(b"garbage!garbage").is_err());
    }
}

#[test]
fn sketches_respect_their_error_bounds() {
    let fx = fixture(31, 80, 50);
    let mut cfg = config();
    cfg.token_counters = 4;
    cfg.top_tokens = 3;
    cfg.cooc = CoocConfig {
        partners: 3,
        exact_budget_bytes: 0,
        sketch_counters: 5,
    };
    let res = single_pass(&fx, &cfg).finish(None).unwrap();
    assert!(res.sketch.cooc_max_error > 0 && res.sketch.top_tokens_max_error > 0);
    let d = fx.d_sae;
    let counted: Vec<(usize, usize)> = (0..fx.ids.len())
        .flat_map(|c| (1..fx.tokens[c].len()).map(move |p| (c, p)))
        .collect();
    let mut both = vec![vec![0u64; d]; d];
    let mut stream = vec![0u64; d]; // partner-stream weight of each feature
    let mut tok = vec![BTreeMap::<u32, u64>::new(); d];
    for &(c, p) in &counted {
        let on: Vec<usize> = (0..d).filter(|&f| fx.acts[c][p][f] > 0.0).collect();
        for &a in &on {
            *tok[a].entry(fx.tokens[c][p]).or_default() += 1;
            stream[a] += on.len() as u64 - 1;
            for &b in &on {
                if a != b {
                    both[a][b] += 1;
                }
            }
        }
    }
    let m = cfg.cooc.sketch_counters as u64;
    assert!(res.sketch.cooc_max_error <= stream.iter().max().unwrap() / (m + 1));
    for r in &res.cooccurrence {
        let truth = both[r.feature as usize][r.other_feature as usize];
        assert!(
            r.n_both <= truth && truth <= r.n_both + res.sketch.cooc_max_error,
            "{r:?} true {truth}"
        );
    }
    for fr in &res.features {
        let bound = fr.n_fired / (cfg.token_counters as u64 + 1);
        for tc in &fr.top_tokens {
            let truth = tok[fr.feature as usize][&tc.token];
            assert!(
                tc.count <= truth && truth <= tc.count + bound.min(res.sketch.top_tokens_max_error)
            );
        }
    }
}

fn cross_fixture() -> (Fixture, Vec<Vec<Vec<f32>>>) {
    let fx = fixture(41, 40, 30);
    // A second SAE on the same rows: a different random code.
    let fy = fixture(42, 40, 20);
    let acts_b = fx
        .acts
        .iter()
        .enumerate()
        .map(|(c, ctx)| {
            ctx.iter()
                .enumerate()
                .map(|(p, _)| {
                    fy.acts[c % 40]
                        .get(p)
                        .cloned()
                        .unwrap_or_else(|| vec![0.0; 20])
                })
                .collect()
        })
        .collect();
    (fx, acts_b)
}

fn cross_run(
    fx: &Fixture,
    acts_b: &[Vec<Vec<f32>>],
    cfg: &AccumConfig,
    batches: &[Vec<usize>],
) -> CrossCooc {
    let mut cc = CrossCooc::new("A", fx.d_sae, "B", 20, cfg).unwrap();
    for batch in batches {
        let ids: Vec<u64> = batch.iter().map(|&c| fx.ids[c]).collect();
        let toks: Vec<&[u32]> = batch.iter().map(|&c| fx.tokens[c].as_slice()).collect();
        let b = BatchContexts {
            context_ids: &ids,
            tokens: &toks,
        };
        cc.add_batch(
            &b,
            &codes_of(&fx.acts, batch, fx.d_sae),
            &codes_of(acts_b, batch, 20),
        )
        .unwrap();
    }
    cc
}

#[test]
fn cross_sae_cooccurrence_equals_brute_force_and_merges() {
    let (fx, acts_b) = cross_fixture();
    for budget in [1u64 << 20, 0] {
        let mut cfg = config();
        cfg.cooc.exact_budget_bytes = budget;
        let cc = cross_run(&fx, &acts_b, &cfg, &fx.batches);
        assert_eq!(cc.is_exact(), budget > 0);
        let bytes = cc.to_bytes().unwrap();
        assert_eq!(CrossCooc::from_bytes(&bytes).unwrap(), cc);
        let res = cc.finish();
        assert_eq!(res.sketch.cooc_max_error, 0);
        // Brute force.
        let counted: Vec<(usize, usize)> = (0..fx.ids.len())
            .flat_map(|c| (1..fx.tokens[c].len()).map(move |p| (c, p)))
            .collect();
        let t = counted.len() as f64;
        let mut both = vec![vec![0u64; 20]; fx.d_sae];
        let (mut na, mut nb) = (vec![0u64; fx.d_sae], vec![0u64; 20]);
        for &(c, p) in &counted {
            for f in 0..fx.d_sae {
                na[f] += (fx.acts[c][p][f] > 0.0) as u64;
                for g in 0..20 {
                    if f == 0 {
                        nb[g] += (acts_b[c][p][g] > 0.0) as u64;
                    }
                    if fx.acts[c][p][f] > 0.0 && acts_b[c][p][g] > 0.0 {
                        both[f][g] += 1;
                    }
                }
            }
        }
        let tokens = t as u64;
        let rank = |cands: Vec<(usize, u64)>, n_self: u64, n_other: &dyn Fn(usize) -> u64| {
            let npmi =
                |c: u64, g: usize| scopedex_index::accum::cooc::npmi(c, n_self, n_other(g), tokens);
            let mut ps: Vec<(usize, u64)> = cands
                .into_iter()
                .filter(|&(_, c)| c >= scopedex_index::accum::cooc::MIN_COOC_COUNT)
                .collect();
            ps.sort_by(|&(x, cx), &(y, cy)| {
                npmi(cy, y)
                    .total_cmp(&npmi(cx, x))
                    .then(cy.cmp(&cx))
                    .then(x.cmp(&y))
            });
            ps.truncate(cfg.cooc.partners);
            ps
        };
        let mut want_a = vec![];
        for f in 0..fx.d_sae {
            let cands = (0..20).map(|g| (g, both[f][g])).collect();
            for (g, c) in rank(cands, na[f], &|g| nb[g]) {
                want_a.push((f as u32, g as u32, c));
            }
        }
        let got_a: Vec<(u32, u32, u64)> = res
            .a
            .iter()
            .map(|r| (r.feature, r.other_feature, r.n_both))
            .collect();
        assert_eq!(got_a, want_a);
        assert!(res.a.iter().all(|r| r.other_sae == "B"));
        let mut want_b = vec![];
        for g in 0..20 {
            let cands = (0..fx.d_sae).map(|f| (f, both[f][g])).collect();
            for (f, c) in rank(cands, nb[g], &|f| na[f]) {
                want_b.push((g as u32, f as u32, c));
            }
        }
        let got_b: Vec<(u32, u32, u64)> = res
            .b
            .iter()
            .map(|r| (r.feature, r.other_feature, r.n_both))
            .collect();
        assert_eq!(got_b, want_b);
        assert!(res.b.iter().all(|r| r.other_sae == "A"));
        for r in &res.a {
            let (f, g) = (r.feature as usize, r.other_feature as usize);
            let jac = both[f][g] as f64 / (na[f] + nb[g] - both[f][g]) as f64;
            assert!((r.jaccard as f64 - jac).abs() < 1e-6);
            let p = both[f][g] as f64 / t;
            let npmi = (p / (na[f] as f64 / t * nb[g] as f64 / t)).ln() / -p.ln();
            assert!((r.npmi as f64 - npmi).abs() < 1e-5);
        }
        // Shards.
        let half = fx.batches.len() / 2;
        let x = cross_run(&fx, &acts_b, &cfg, &fx.batches[..half]);
        let y = cross_run(&fx, &acts_b, &cfg, &fx.batches[half..]);
        assert_eq!(y.merge(x).unwrap().finish(), res);
    }
}

#[test]
fn rejects_bad_batches_and_mismatched_merges() {
    let fx = fixture(51, 6, 50);
    let cfg = config();
    let mut acc = SaeAccumulator::new("L1R", fx.d_in, fx.d_sae, &cfg).unwrap();
    let ids = [fx.ids[0]];
    let toks = [fx.tokens[0].as_slice()];
    let b = BatchContexts {
        context_ids: &ids,
        tokens: &toks,
    };
    // Codes of two contexts for a batch of one.
    assert!(acc.add_batch(&b, &codes_of(&fx.acts, &[0, 1], 50)).is_err());
    let mut bad = codes_of(&fx.acts, &[0], 50);
    bad.d_sae = 49;
    assert!(acc.add_batch(&b, &bad).is_err());
    let mut bad = SparseCodes::new(50);
    for _ in 0..fx.tokens[0].len() {
        bad.push_row(&[3, 2], &[1.0, 1.0]);
    }
    assert!(acc.add_batch(&b, &bad).is_err());
    let other = SaeAccumulator::new("L2R", fx.d_in, fx.d_sae, &cfg).unwrap();
    assert!(acc.clone().merge(other).is_err());
    let mut cfg2 = cfg.clone();
    cfg2.top_k += 1;
    let other = SaeAccumulator::new("L1R", fx.d_in, fx.d_sae, &cfg2).unwrap();
    assert!(acc.merge(other).is_err());
    cfg2.cooc.sketch_counters = 1;
    assert!(SaeAccumulator::new("L1R", 5, 50, &cfg2).is_err());
}
