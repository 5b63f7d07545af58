//! One feature's state ([`FeatureState`]: statistics, top tokens, top-k, interval samples,
//! co-occurrence row), how one batch's entries update it and how two states merge.
use scopedex_sae::SparseCodes;
use serde::{Deserialize, Serialize};

use super::batch::{BatchContexts, BatchView, Entry};
use super::config::AccumConfig;
use super::cooc::{CoocMode, CoocRow, Scratch};
use super::intervals::{priority, IntervalSampler};
use super::sketch::MisraGries;
use super::stats::{FeatureStats, HistEdges};
use super::topk::{Example, SparseAct, TopK};

/// Everything kept for one feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FeatureState {
    pub(super) stats: FeatureStats,
    pub(super) tokens: MisraGries,
    pub(super) top: TopK,
    pub(super) intervals: IntervalSampler,
    pub(super) cooc: CoocRow,
}

/// Reusable per-task buffers.
#[derive(Default)]
pub(super) struct Buffers {
    tokens: Scratch,
    partners: Scratch,
}

/// Settings shared by the per-feature work of one batch.
pub(super) struct Ctx<'a> {
    pub(super) cfg: &'a AccumConfig,
    pub(super) edges: &'a HistEdges,
    pub(super) view: &'a BatchView,
    pub(super) batch: &'a BatchContexts<'a>,
    pub(super) codes: &'a SparseCodes,
}

impl FeatureState {
    pub(super) fn new(cfg: &AccumConfig, mode: CoocMode, f: usize, d: usize) -> Self {
        FeatureState {
            stats: FeatureStats::new(cfg.hist_bins),
            tokens: MisraGries::default(),
            top: TopK::default(),
            intervals: IntervalSampler::default(),
            cooc: CoocRow::new(mode, f, d),
        }
    }

    /// Feature `f`'s entries of one batch.
    pub(super) fn update(&mut self, f: u32, col: &[Entry], cx: &Ctx, buf: &mut Buffers) {
        let (cfg, view, codes) = (cx.cfg, cx.view, cx.codes);
        let (k, n, s) = (cfg.top_k, cfg.intervals, cfg.samples_per_interval);
        buf.tokens.xs.clear();
        let mut i = 0;
        while i < col.len() {
            let c = view.row_ctx[col[i].row as usize];
            let (mut j, mut gmax, mut gpos) = (i, 0f32, 0u32);
            while j < col.len() && view.row_ctx[col[j].row as usize] == c {
                let (r, v) = (col[j].row as usize, codes.values[col[j].j as usize]);
                self.stats.add(v, cx.edges);
                buf.tokens.xs.push(view.row_tok[r]);
                if v > gmax {
                    gmax = v;
                    gpos = view.row_pos[r];
                }
                j += 1;
            }
            let group = &col[i..j];
            let cid = cx.batch.context_ids[c as usize];
            let make = || Example {
                context_id: cid,
                max_act: gmax,
                max_pos: gpos,
                len: cx.batch.tokens[c as usize].len() as u32,
                acts: group
                    .iter()
                    .map(|e| SparseAct {
                        pos: view.row_pos[e.row as usize],
                        act: codes.values[e.j as usize],
                    })
                    .collect(),
            };
            if self.top.would_enter(k, gmax, cid) {
                self.top.push(k, make());
            }
            let prio = priority(f, cid);
            self.intervals
                .offer(gmax, (prio, cid), self.stats.max, n, s, make);
            i = j;
        }
        buf.tokens.add_to(&mut self.tokens, cfg.token_counters, 0);
        self.cooc
            .update(f, col, codes, cfg.cooc.sketch_counters, &mut buf.partners);
        self.intervals.collapse(self.stats.max, n, s);
    }

    pub(super) fn merge(&mut self, o: FeatureState, cfg: &AccumConfig) {
        self.stats.merge(&o.stats);
        self.tokens.merge(&o.tokens, cfg.token_counters);
        self.top.merge(o.top, cfg.top_k);
        self.intervals.merge(
            o.intervals,
            self.stats.max,
            cfg.intervals,
            cfg.samples_per_interval,
        );
        self.cooc.merge(&o.cooc, cfg.cooc.sketch_counters);
    }
}
