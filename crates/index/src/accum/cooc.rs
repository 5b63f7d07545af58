//! Co-occurrence: for each feature, its top partners by the number of counted positions where
//! both fire, with Jaccard and NPMI; within one SAE ([`CoocRow`], driven by the SAE accumulator)
//! and between two SAEs on the same rows ([`CrossCooc`]).
//!
//! Two modes, chosen from the memory budget ([`CoocConfig::exact_budget_bytes`]):
//! * **exact**: dense `u32` counts (within an SAE the upper triangle, row `f` holding partners
//!   `g > f`: `4·d·(d−1)/2` bytes, 128 MiB for d = 8192, 512 MiB for 16384; across SAEs the full
//!   `d_a × d_b` matrix). Counts saturate at `u32::MAX` (> 4·10⁹ co-firing positions).
//! * **sketch**: a Misra–Gries summary with `m` = [`CoocConfig::sketch_counters`] counters per
//!   feature over its partner stream (see [`super::sketch`]): the reported `n_both` is a lower
//!   bound, `n_both ≤ true ≤ n_both + err(f)` with `err(f) ≤ Σ_{positions where f fires}(L0−1) / (m+1)`
//!   ≈ `n_fired(f)·(L0−1)/(m+1)`; the largest `err` is reported in [`super::SketchReport`].
//!
//! Jaccard = `n_both / (n_a + n_b − n_both)`; NPMI = `ln(p_ab / (p_a·p_b)) / −ln(p_ab)` with
//! probabilities over the counted positions (NPMI = 1 when `p_ab = 1`).
//!
//! Partners are ranked by association, not by raw count (by count, the densest features would
//! fill every list with NPMI ≈ 0): pairs that co-fired at least [`MIN_COOC_COUNT`] times, by NPMI
//! descending, then `n_both` descending, then partner id ascending ([`rank_partners`]). In exact
//! mode every pair is a candidate; in a sketch, every partner it tracks (its `m` heavy hitters;
//! their counts are lower bounds, so a rare partner the sketch dropped can be missed, by at
//! most the error bound above).
use rayon::prelude::*;
use scopedex_sae::SparseCodes;
use scopedex_store::records::CooccurrenceRecord;
use serde::{Deserialize, Serialize};

use super::batch::{BatchContexts, BatchView, Entry};
use super::config::{AccumConfig, CoocConfig};
use super::persist::{self, MAGIC_CROSS};
use super::results::SketchReport;
use super::sketch::{count_runs, MgBuf, MisraGries};
use crate::error::{Error, Result};

/// Top partners of one feature, `(partner, n_both)`.
type Partners = Vec<(u32, u64)>;

/// Fewest co-firing positions for a partner to be listed: the NPMI of a pair seen once or
/// twice is noise (two features firing once, together, score a perfect 1).
pub const MIN_COOC_COUNT: u64 = 3;
/// The `limit` partners of a feature that fired `n_self` times among `candidates`
/// `(partner, n_both)`: `n_both ≥ MIN_COOC_COUNT`, by NPMI descending, then `n_both`
/// descending, then partner id (see the module docs). `n_other(g)` is the partner's count.
pub(crate) fn rank_partners(
    candidates: impl Iterator<Item = (u32, u64)>,
    n_self: u64,
    n_other: impl Fn(u32) -> u64,
    tokens: u64,
    limit: usize,
) -> Partners {
    let mut v: Vec<(f64, u32, u64)> = candidates
        .filter(|&(_, c)| c >= MIN_COOC_COUNT)
        .map(|(g, c)| (npmi(c, n_self, n_other(g), tokens), g, c))
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
    v.truncate(limit);
    v.into_iter().map(|(_, g, c)| (g, c)).collect()
}

/// How co-occurrence is counted for a pair of feature sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CoocMode {
    /// Not computed (`partners == 0`).
    Off,
    /// Dense exact counts.
    Exact,
    /// Misra–Gries per feature.
    Sketch,
}

impl CoocMode {
    /// Mode for `cells` dense `u32` counters under `cfg`.
    pub fn choose(cfg: &CoocConfig, cells: u128) -> CoocMode {
        if cfg.partners == 0 {
            CoocMode::Off
        } else if cells * 4 <= cfg.exact_budget_bytes as u128 {
            CoocMode::Exact
        } else {
            CoocMode::Sketch
        }
    }
}

/// Co-occurrence state of one feature within its SAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum CoocRow {
    /// Not computed.
    Off,
    /// Counts with partners `g > f` at index `g − f − 1`.
    Dense(Vec<u32>),
    /// Heavy hitters over all partners.
    Sketch(MisraGries),
}

impl CoocRow {
    /// Empty row for feature `f` of `d` features.
    pub fn new(mode: CoocMode, f: usize, d: usize) -> CoocRow {
        match mode {
            CoocMode::Off => CoocRow::Off,
            CoocMode::Exact => CoocRow::Dense(vec![0; d - f - 1]),
            CoocMode::Sketch => CoocRow::Sketch(MisraGries::default()),
        }
    }

    /// Counts feature `f`'s entries of one batch.
    pub fn update(
        &mut self,
        f: u32,
        col: &[Entry],
        codes: &SparseCodes,
        m: usize,
        scratch: &mut Scratch,
    ) {
        match self {
            CoocRow::Off => {}
            CoocRow::Dense(row) => {
                for e in col {
                    let end = codes.row_ptr[e.row as usize + 1];
                    for &g in &codes.features[e.j as usize + 1..end] {
                        let c = &mut row[(g - f - 1) as usize];
                        *c = c.saturating_add(1);
                    }
                }
            }
            CoocRow::Sketch(mg) => {
                scratch.xs.clear();
                for e in col {
                    let r = e.row as usize;
                    let (a, b) = (codes.row_ptr[r], codes.row_ptr[r + 1]);
                    scratch
                        .xs
                        .extend_from_slice(&codes.features[a..e.j as usize]);
                    scratch
                        .xs
                        .extend_from_slice(&codes.features[e.j as usize + 1..b]);
                }
                scratch.add_to(mg, m, codes.d_sae);
            }
        }
    }

    /// Adds `other` (same feature).
    pub fn merge(&mut self, other: &CoocRow, m: usize) {
        match (self, other) {
            (CoocRow::Dense(a), CoocRow::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x = x.saturating_add(*y);
                }
            }
            (CoocRow::Sketch(a), CoocRow::Sketch(b)) => a.merge(b, m),
            _ => {}
        }
    }

    /// Error bound of this row (0 when exact).
    pub fn err(&self) -> u64 {
        match self {
            CoocRow::Sketch(mg) => mg.err(),
            _ => 0,
        }
    }
}

/// Reusable buffers for turning a partner stream into counts.
#[derive(Default)]
pub(crate) struct Scratch {
    pub xs: Vec<u32>,
    items: Vec<u32>,
    counts: Vec<u64>,
    /// Dense counters over the item universe (all zero between uses), allocated on first need.
    dense: Vec<u32>,
    mg: MgBuf,
}

impl Scratch {
    /// Counts `xs` (items `< universe`) and adds the counts to `mg`. Long streams are counted
    /// with dense counters (O(len) + sorting the distinct items), short ones by sorting.
    pub fn add_to(&mut self, mg: &mut MisraGries, m: usize, universe: usize) {
        if self.xs.is_empty() {
            return;
        }
        if self.xs.len() >= 256 && universe > 0 {
            if self.dense.len() < universe {
                self.dense.resize(universe, 0);
            }
            self.items.clear();
            for &x in &self.xs {
                let c = &mut self.dense[x as usize];
                if *c == 0 {
                    self.items.push(x);
                }
                *c += 1;
            }
            self.items.sort_unstable();
            self.counts.clear();
            for &x in &self.items {
                let c = &mut self.dense[x as usize];
                self.counts.push(*c as u64);
                *c = 0;
            }
        } else {
            count_runs(&mut self.xs, &mut self.items, &mut self.counts);
        }
        mg.add_sorted_with(&self.items, &self.counts, 0, m, &mut self.mg);
    }
}

/// Top partners of feature `f` within an SAE, `(partner, n_both)`, ranked by
/// [`rank_partners`]; `n_fired[g]` is feature `g`'s count over `tokens` counted positions.
pub(crate) fn partners_within(
    rows: &[&CoocRow],
    f: usize,
    limit: usize,
    n_fired: &[u64],
    tokens: u64,
) -> Vec<(u32, u64)> {
    let n_other = |g: u32| n_fired[g as usize];
    match rows[f] {
        CoocRow::Off => Vec::new(),
        CoocRow::Sketch(mg) => rank_partners(
            mg.top(usize::MAX).into_iter(),
            n_fired[f],
            n_other,
            tokens,
            limit,
        ),
        CoocRow::Dense(own) => {
            let below = (0..f).filter_map(|g| match rows[g] {
                CoocRow::Dense(r) => Some((g as u32, r[f - g - 1] as u64)),
                _ => None,
            });
            let above = own
                .iter()
                .enumerate()
                .map(|(i, &c)| ((f + 1 + i) as u32, c as u64));
            rank_partners(below.chain(above), n_fired[f], n_other, tokens, limit)
        }
    }
}

/// One output record.
pub(crate) fn record(
    feature: u32,
    other_sae: &str,
    other: u32,
    n_both: u64,
    n_a: u64,
    n_b: u64,
    tokens: u64,
) -> CooccurrenceRecord {
    let union = (n_a + n_b).saturating_sub(n_both).max(n_both);
    let jaccard = if union == 0 {
        0.0
    } else {
        n_both as f64 / union as f64
    };
    CooccurrenceRecord {
        feature,
        other_sae: other_sae.to_string(),
        other_feature: other,
        n_both,
        jaccard: jaccard as f32,
        npmi: npmi(n_both, n_a, n_b, tokens) as f32,
    }
}

/// NPMI of two events over `t` trials (see the module doc); −1 when they never co-occur.
pub fn npmi(n_ab: u64, n_a: u64, n_b: u64, t: u64) -> f64 {
    if n_ab == 0 || n_a == 0 || n_b == 0 || t == 0 {
        return -1.0;
    }
    let t = t as f64;
    let p_ab = n_ab as f64 / t;
    if p_ab >= 1.0 {
        return 1.0;
    }
    let pmi = (n_ab as f64 * t / (n_a as f64 * n_b as f64)).ln();
    (pmi / -p_ab.ln()).clamp(-1.0, 1.0)
}

/// Dense or sketched counts between two SAEs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CrossState {
    Off,
    /// `rows[f_a][f_b]`.
    Dense(Vec<Vec<u32>>),
    /// Partners in B of each A feature, and partners in A of each B feature.
    Sketch {
        a: Vec<MisraGries>,
        b: Vec<MisraGries>,
    },
}

/// Co-occurrence between the features of two SAEs attached to the same run (same rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossCooc {
    sae_a: String,
    sae_b: String,
    d_a: usize,
    d_b: usize,
    cfg: CoocConfig,
    exclude_bos: bool,
    tokens: u64,
    n_a: Vec<u64>,
    n_b: Vec<u64>,
    state: CrossState,
}

/// Results of [`CrossCooc::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct CrossCoocResults {
    /// Partners in SAE B of each feature of SAE A (`feature` ∈ A, `other_sae` = B), sorted by
    /// feature, then as [`rank_partners`] ranks them.
    pub a: Vec<CooccurrenceRecord>,
    /// Partners in SAE A of each feature of SAE B (`feature` ∈ B, `other_sae` = A).
    pub b: Vec<CooccurrenceRecord>,
    /// Exact or sketched, and the sketch's largest error.
    pub sketch: SketchReport,
}

impl CrossCooc {
    /// Empty counts between SAE `sae_a` (`d_a` features) and `sae_b` (`d_b`); uses `cfg.cooc`
    /// and `cfg.exclude_bos`.
    pub fn new(
        sae_a: &str,
        d_a: usize,
        sae_b: &str,
        d_b: usize,
        cfg: &AccumConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let mode = CoocMode::choose(&cfg.cooc, d_a as u128 * d_b as u128);
        let state = match mode {
            CoocMode::Off => CrossState::Off,
            CoocMode::Exact => CrossState::Dense(vec![vec![0; d_b]; d_a]),
            CoocMode::Sketch => CrossState::Sketch {
                a: vec![MisraGries::default(); d_a],
                b: vec![MisraGries::default(); d_b],
            },
        };
        Ok(CrossCooc {
            sae_a: sae_a.to_string(),
            sae_b: sae_b.to_string(),
            d_a,
            d_b,
            cfg: cfg.cooc.clone(),
            exclude_bos: cfg.exclude_bos,
            tokens: 0,
            n_a: vec![0; d_a],
            n_b: vec![0; d_b],
            state,
        })
    }

    /// Whether counts are exact (dense).
    pub fn is_exact(&self) -> bool {
        !matches!(self.state, CrossState::Sketch { .. })
    }

    /// Counts one batch; `codes_a` and `codes_b` have one row per position of `batch`.
    pub fn add_batch(
        &mut self,
        batch: &BatchContexts,
        codes_a: &SparseCodes,
        codes_b: &SparseCodes,
    ) -> Result<()> {
        let va = BatchView::new(batch, codes_a, self.d_a, self.exclude_bos)?;
        let vb = BatchView::new(batch, codes_b, self.d_b, self.exclude_bos)?;
        self.tokens += va.n_counted;
        for (f, n) in self.n_a.iter_mut().enumerate() {
            *n += va.column(f).len() as u64;
        }
        for (g, n) in self.n_b.iter_mut().enumerate() {
            *n += vb.column(g).len() as u64;
        }
        let m = self.cfg.sketch_counters;
        match &mut self.state {
            CrossState::Off => {}
            CrossState::Dense(rows) => {
                rows.par_iter_mut()
                    .with_min_len(64)
                    .enumerate()
                    .for_each(|(f, row)| {
                        for e in va.column(f) {
                            for &g in codes_b.row(e.row as usize).0 {
                                let c = &mut row[g as usize];
                                *c = c.saturating_add(1);
                            }
                        }
                    });
            }
            CrossState::Sketch { a, b } => {
                sketch_side(a, &va, codes_b, m);
                sketch_side(b, &vb, codes_a, m);
            }
        }
        Ok(())
    }

    /// Adds `other` (same SAEs, sizes and configuration): exact, associative and commutative in
    /// exact mode; see [`super::sketch`] for sketch mode.
    pub fn merge(mut self, other: CrossCooc) -> Result<CrossCooc> {
        if (
            &self.sae_a,
            &self.sae_b,
            self.d_a,
            self.d_b,
            &self.cfg,
            self.exclude_bos,
        ) != (
            &other.sae_a,
            &other.sae_b,
            other.d_a,
            other.d_b,
            &other.cfg,
            other.exclude_bos,
        ) {
            return Err(Error::Mismatch(format!(
                "cross co-occurrence {}×{} ({}×{}) cannot merge {}×{} ({}×{}) or settings differ",
                self.sae_a,
                self.sae_b,
                self.d_a,
                self.d_b,
                other.sae_a,
                other.sae_b,
                other.d_a,
                other.d_b
            )));
        }
        self.tokens += other.tokens;
        add_counts(&mut self.n_a, &other.n_a);
        add_counts(&mut self.n_b, &other.n_b);
        let m = self.cfg.sketch_counters;
        match (&mut self.state, &other.state) {
            (CrossState::Dense(x), CrossState::Dense(y)) => {
                x.par_iter_mut().zip(y).for_each(|(r, s)| {
                    for (p, q) in r.iter_mut().zip(s) {
                        *p = p.saturating_add(*q);
                    }
                });
            }
            (CrossState::Sketch { a, b }, CrossState::Sketch { a: oa, b: ob }) => {
                a.par_iter_mut().zip(oa).for_each(|(x, y)| x.merge(y, m));
                b.par_iter_mut().zip(ob).for_each(|(x, y)| x.merge(y, m));
            }
            (CrossState::Off, CrossState::Off) => {}
            _ => return Err(Error::Mismatch("cross co-occurrence modes differ".into())),
        }
        Ok(self)
    }

    /// Top partners of every feature of both SAEs.
    pub fn finish(self) -> CrossCoocResults {
        let limit = self.cfg.partners;
        let t = self.tokens;
        let (pa, pb): (Vec<Partners>, Vec<Partners>) = match &self.state {
            CrossState::Off => (vec![Vec::new(); self.d_a], vec![Vec::new(); self.d_b]),
            CrossState::Dense(rows) => (
                rows.par_iter()
                    .enumerate()
                    .map(|(f, r)| {
                        let it = r.iter().enumerate().map(|(g, &c)| (g as u32, c as u64));
                        rank_partners(it, self.n_a[f], |g| self.n_b[g as usize], t, limit)
                    })
                    .collect(),
                (0..self.d_b)
                    .into_par_iter()
                    .map(|g| {
                        let it = rows
                            .iter()
                            .enumerate()
                            .map(|(f, r)| (f as u32, r[g] as u64));
                        rank_partners(it, self.n_b[g], |f| self.n_a[f as usize], t, limit)
                    })
                    .collect(),
            ),
            CrossState::Sketch { a, b } => (
                a.par_iter()
                    .enumerate()
                    .map(|(f, mg)| {
                        let it = mg.top(usize::MAX).into_iter();
                        rank_partners(it, self.n_a[f], |g| self.n_b[g as usize], t, limit)
                    })
                    .collect(),
                b.par_iter()
                    .enumerate()
                    .map(|(g, mg)| {
                        let it = mg.top(usize::MAX).into_iter();
                        rank_partners(it, self.n_b[g], |f| self.n_a[f as usize], t, limit)
                    })
                    .collect(),
            ),
        };
        let sketch = match &self.state {
            CrossState::Sketch { a, b } => SketchReport {
                cooc_exact: false,
                cooc_max_error: a.iter().chain(b).map(|m| m.err()).max().unwrap_or(0),
                top_tokens_max_error: 0,
            },
            _ => SketchReport::default(),
        };
        let emit = |parts: Vec<Vec<(u32, u64)>>, n_self: &[u64], n_other: &[u64], other: &str| {
            let mut out = Vec::new();
            for (f, list) in parts.into_iter().enumerate() {
                for (g, c) in list {
                    out.push(record(
                        f as u32,
                        other,
                        g,
                        c,
                        n_self[f],
                        n_other[g as usize],
                        self.tokens,
                    ));
                }
            }
            out
        };
        CrossCoocResults {
            a: emit(pa, &self.n_a, &self.n_b, &self.sae_b),
            b: emit(pb, &self.n_b, &self.n_a, &self.sae_a),
            sketch,
        }
    }

    /// Compact binary form of the whole state (for checkpoints and shards).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        persist::encode(MAGIC_CROSS, self)
    }

    /// Inverse of [`CrossCooc::to_bytes`]; checks the shapes.
    pub fn from_bytes(bytes: &[u8]) -> Result<CrossCooc> {
        let c: CrossCooc = persist::decode(MAGIC_CROSS, bytes)?;
        let ok = c.n_a.len() == c.d_a
            && c.n_b.len() == c.d_b
            && match &c.state {
                CrossState::Off => true,
                CrossState::Dense(r) => r.len() == c.d_a && r.iter().all(|x| x.len() == c.d_b),
                CrossState::Sketch { a, b } => a.len() == c.d_a && b.len() == c.d_b,
            };
        if !ok {
            return Err(Error::CorruptState(
                "cross co-occurrence shapes do not match".into(),
            ));
        }
        Ok(c)
    }
}

fn add_counts(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Adds, for every feature of `view`, its partners among `other`'s features on the same rows.
fn sketch_side(mgs: &mut [MisraGries], view: &BatchView, other: &SparseCodes, m: usize) {
    mgs.par_chunks_mut(64)
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (ci, chunk)| {
            for (i, mg) in chunk.iter_mut().enumerate() {
                let col = view.column(ci * 64 + i);
                if col.is_empty() {
                    continue;
                }
                scratch.xs.clear();
                for e in col {
                    scratch.xs.extend_from_slice(other.row(e.row as usize).0);
                }
                scratch.add_to(mg, m, other.d_sae);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sorted_counting_agree() {
        let xs: Vec<u32> = (0..1000u32).map(|i| (i * i + 7 * i) % 97).collect();
        let (mut a, mut b) = (MisraGries::default(), MisraGries::default());
        let mut s = Scratch {
            xs: xs.clone(),
            ..Default::default()
        };
        s.add_to(&mut a, 1000, 97); // dense path (len ≥ 256)
        s.xs = xs;
        s.add_to(&mut b, 1000, 0); // sorting path
        assert_eq!(a, b);
        assert!(s.dense.iter().all(|&c| c == 0));
        assert_eq!(a.top(1000).iter().map(|x| x.1).sum::<u64>(), 1000);
    }

    #[test]
    fn npmi_edges() {
        assert_eq!(npmi(0, 3, 3, 10), -1.0);
        assert_eq!(npmi(10, 10, 10, 10), 1.0);
        assert!((npmi(5, 5, 5, 10) - 1.0).abs() < 1e-12);
        assert!(npmi(1, 5, 5, 10) < 0.0);
    }
}
