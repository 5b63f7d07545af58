//! A small deterministic index for tests and benchmarks (shared by `tests/` and `benches/`).
//!
//! Every record is a pure function of a [`FixtureSpec`] and its indices, so a test can compare
//! what it reads back with what [`write_index`] wrote without keeping it. Context `i`'s text
//! contains the word `ctx{i}`, the word `even` or `odd`, and `fizz` when `i % 3 == 0`, so
//! searches have known answers.
use std::path::Path;

use crate::error::Result;
use crate::index_writer::{IndexWriter, IndexWriterOptions, PublishReport};
use crate::manifest::{
    CorpusFile, IndexParameters, Manifest, ModelInfo, SaeEntry, ShardInfo, TokenizerInfo,
};
use crate::records::*;

/// Shape of the fixture index.
#[derive(Debug, Clone)]
pub struct FixtureSpec {
    /// Number of contexts.
    pub contexts: u64,
    /// Tokens per context (BOS included).
    pub ctx_len: u32,
    /// `(sae id, d_sae)` of each SAE.
    pub saes: Vec<(String, u32)>,
    /// Top examples per feature.
    pub top_k: u16,
    /// Intervals, each with `samples` examples.
    pub intervals: u16,
    /// Samples per interval.
    pub samples: u16,
    /// Co-occurrence partners per feature and partner SAE.
    pub partners: u32,
    /// Also write an activation log with this many active features per position (0: none).
    pub activation_l0: u32,
}

impl Default for FixtureSpec {
    /// 64 contexts of 16 tokens; SAEs `L1R-8x` (d_sae 48) and `L2R-8x` (d_sae 40); 4 top
    /// examples, 2 intervals × 2 samples, 3 partners; no activation log.
    fn default() -> Self {
        FixtureSpec {
            contexts: 64,
            ctx_len: 16,
            saes: vec![("L1R-8x".into(), 48), ("L2R-8x".into(), 40)],
            top_k: 4,
            intervals: 2,
            samples: 2,
            partners: 3,
            activation_l0: 0,
        }
    }
}

/// splitmix64: a tiny deterministic hash for fixture values.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic float in `[0, 1)`.
pub fn unit(x: u64) -> f32 {
    (mix(x) >> 40) as f32 / (1u64 << 24) as f32
}

fn sae_seed(sae: &str) -> u64 {
    sae.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl FixtureSpec {
    /// The manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            model: ModelInfo {
                path: "fixture/model.gguf".into(),
                id: "fixture".into(),
                sha256: "00".repeat(32),
                n_layers: 4,
                d_model: 16,
            },
            tokenizer: TokenizerInfo {
                source: "fixture".into(),
                vocab_size: 1000,
                bos_token_id: Some(1),
                ..Default::default()
            },
            corpus: vec![CorpusFile {
                path: "fixture.txt".into(),
                sha256: "11".repeat(32),
                bytes: 1,
            }],
            ctx_len: self.ctx_len,
            parameters: IndexParameters {
                top_k: u32::from(self.top_k),
                intervals: u32::from(self.intervals),
                samples_per_interval: u32::from(self.samples),
                keep_activations: self.activation_l0 > 0,
                ..Default::default()
            },
            saes: self
                .saes
                .iter()
                .map(|(id, d_sae)| SaeEntry {
                    id: id.clone(),
                    format: "fixture".into(),
                    d_in: 64,
                    d_sae: *d_sae,
                    k: Some(8),
                    hook_in: "blocks.1.hook_resid_post".into(),
                    hook_out: "blocks.1.hook_resid_post".into(),
                    source_path: format!("fixture/{id}"),
                    source_sha256: "22".repeat(32),
                })
                .collect(),
            shards: vec![ShardInfo {
                index: 0,
                count: 1,
                contexts: self.contexts,
            }],
            ..Default::default()
        }
    }

    /// Context `i`.
    pub fn context(&self, i: u64) -> ContextRecord {
        let words: Vec<String> = (0..self.ctx_len.saturating_sub(1))
            .map(|p| match p {
                0 => format!("ctx{i}"),
                1 => if i % 2 == 0 { "even" } else { "odd" }.to_string(),
                2 if i % 3 == 0 => "fizz".to_string(),
                _ => format!("w{}", mix(i * 1000 + u64::from(p)) % 50),
            })
            .collect();
        let text = words.join(" ");
        let (mut starts, mut ends, mut tokens) = (vec![0], vec![0], vec![1]);
        let mut at = 0u32;
        for w in &words {
            starts.push(at);
            ends.push(at + w.len() as u32);
            tokens.push(2 + (mix(sae_seed(w)) % 998) as u32);
            at += w.len() as u32 + 1;
        }
        ContextRecord {
            context_id: i,
            doc_id: format!("fixture.txt:{}", i / 4),
            tokens,
            token_starts: starts,
            token_ends: ends,
            text,
        }
    }

    /// All contexts.
    pub fn contexts(&self) -> Vec<ContextRecord> {
        (0..self.contexts).map(|i| self.context(i)).collect()
    }

    /// Feature `f` of `sae` (every feature has a row; every 7th is dead).
    pub fn feature(&self, sae: &str, f: u32) -> FeatureRecord {
        let s = sae_seed(sae) ^ u64::from(f);
        let dead = f % 7 == 6;
        let n_fired = if dead { 0 } else { 1 + mix(s) % 500 };
        let tokens = self.contexts * u64::from(self.ctx_len - 1);
        FeatureRecord {
            feature: f,
            n_fired,
            density: n_fired as f64 / tokens.max(1) as f64,
            max_act: if dead { 0.0 } else { 1.0 + 9.0 * unit(s + 1) },
            mean_act: if dead { 0.0 } else { 0.5 + unit(s + 2) },
            act_hist: (0..8).map(|b| mix(s + 10 + b) % 100).collect(),
            top_tokens: (0..3)
                .map(|t| TokenCount {
                    token: (mix(s + 20 + t) % 1000) as u32,
                    count: 30 - t * 10,
                })
                .collect(),
            logit_pos: (0..2)
                .map(|t| TokenValue {
                    token: (mix(s + 30 + t) % 1000) as u32,
                    value: 2.0 - t as f32,
                })
                .collect(),
            logit_neg: (0..2)
                .map(|t| TokenValue {
                    token: (mix(s + 40 + t) % 1000) as u32,
                    value: -2.0 + t as f32,
                })
                .collect(),
            logit_hist: (0..8).map(|b| mix(s + 50 + b) % 200).collect(),
            logit_hist_min: -2.0,
            logit_hist_max: 2.0,
        }
    }

    /// All examples of `sae`, feature by feature, top list then intervals, by rank.
    pub fn examples_of(&self, sae: &str, f: u32) -> Vec<ExampleRecord> {
        let kinds = std::iter::repeat_n(ExampleKind::Top, usize::from(self.top_k))
            .enumerate()
            .map(|(r, k)| (k, r as u16))
            .chain(
                (0..self.intervals)
                    .flat_map(|i| (0..self.samples).map(move |r| (ExampleKind::Interval(i), r))),
            );
        kinds
            .map(|(kind, rank)| {
                let s = sae_seed(sae)
                    ^ (u64::from(f) << 20)
                    ^ (u64::from(rank) << 8)
                    ^ match kind {
                        ExampleKind::Top => 0,
                        ExampleKind::Interval(i) => 1 + u64::from(i),
                    };
                let max_pos = 1 + (mix(s) % u64::from(self.ctx_len - 1)) as u32;
                // Alternate sparse and dense activation vectors.
                let acts: Vec<f32> = (0..self.ctx_len)
                    .map(|p| {
                        if p == max_pos {
                            5.0
                        } else if rank % 2 == 0 && p % 3 != 0 {
                            0.0
                        } else {
                            unit(s + u64::from(p))
                        }
                    })
                    .collect();
                ExampleRecord {
                    feature: f,
                    kind,
                    rank,
                    context_id: mix(s + 99) % self.contexts,
                    max_pos,
                    max_act: 5.0,
                    acts,
                }
            })
            .collect()
    }

    /// Partners of feature `f` of `sae`, in every SAE of the fixture.
    pub fn cooccurrence_of(&self, sae: &str, f: u32) -> Vec<CooccurrenceRecord> {
        let mut out = Vec::new();
        for (other, d_other) in &self.saes {
            for j in 0..self.partners {
                let s = sae_seed(sae) ^ sae_seed(other) ^ (u64::from(f) << 16) ^ u64::from(j);
                out.push(CooccurrenceRecord {
                    feature: f,
                    other_sae: other.clone(),
                    other_feature: (mix(s) % u64::from(*d_other)) as u32,
                    // Distinct per (sae, j) so the serving order is fully determined.
                    n_both: 1000 - u64::from(j) * 10 - (sae_seed(other) % 7),
                    jaccard: unit(s + 1),
                    npmi: unit(s + 2) * 2.0 - 1.0,
                });
            }
        }
        out
    }

    /// The summary of `sae`.
    pub fn summary(&self, sae: &str, d_sae: u32) -> SaeSummary {
        SaeSummary {
            sae_id: sae.to_string(),
            d_in: 64,
            d_sae,
            tokens_indexed: self.contexts * u64::from(self.ctx_len - 1),
            mean_l0: 8.0,
            dead_features: d_sae.div_ceil(7),
            explained_variance: 0.75,
            act_hist_edges: (0..9).map(|i| 10f32.powi(i - 4)).collect(),
            density_hist_edges: (0..6).map(|i| -(i as f32)).collect(),
            density_hist: vec![1, 2, 3, 4, 5],
        }
    }

    /// Every active feature of `sae` in context `i` (as the indexer records them): the max
    /// over positions of [`FixtureSpec::activations_of_context`]'s entries, strongest first,
    /// ties by lower id, with the first position of the max. When the spec writes no
    /// activation log the same generator runs with 3 active features per position, so every
    /// context still has features.
    pub fn context_features_of(&self, sae: &str, d_sae: u32, i: u64) -> ContextFeaturesRecord {
        let l0 = if self.activation_l0 > 0 {
            self.activation_l0
        } else {
            3
        };
        let mut best: std::collections::BTreeMap<u32, (f32, u32)> = Default::default();
        for e in self.activations_with_l0(sae, d_sae, i, l0) {
            let b = best.entry(e.feature).or_insert((0.0, 0));
            if e.value > b.0 {
                *b = (e.value, u32::from(e.pos));
            }
        }
        let mut ranked: Vec<(u32, f32, u32)> =
            best.into_iter().map(|(f, (v, p))| (f, v, p)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ContextFeaturesRecord {
            context_id: i,
            features: ranked.iter().map(|r| r.0).collect(),
            max_acts: ranked.iter().map(|r| r.1).collect(),
            max_pos: ranked.iter().map(|r| r.2).collect(),
        }
    }

    /// Activation log entries of context `i` for `sae`: `activation_l0` features per position,
    /// drawn from a skewed distribution (never a dead feature), persisting over neighbouring
    /// positions half the time, with log-normal-ish values.
    pub fn activations_of_context(&self, sae: &str, d_sae: u32, i: u64) -> Vec<ActivationEntry> {
        self.activations_with_l0(sae, d_sae, i, self.activation_l0)
    }

    fn activations_with_l0(&self, sae: &str, d_sae: u32, i: u64, l0: u32) -> Vec<ActivationEntry> {
        let mut out = Vec::new();
        let mut prev: Vec<u32> = Vec::new();
        for pos in 1..self.ctx_len {
            let mut active: Vec<u32> = prev
                .iter()
                .copied()
                .filter(|&f| {
                    unit(sae_seed(sae) ^ (i << 24) ^ (u64::from(pos) << 40) ^ u64::from(f)) < 0.5
                })
                .collect();
            let mut k = 0u64;
            while (active.len() as u32) < l0 {
                let u = unit(sae_seed(sae) ^ (i << 20) ^ (u64::from(pos) << 48) ^ k);
                // u^3 skews towards low feature ids (a few dense features, a long tail).
                let f = ((u * u * u) * d_sae as f32) as u32 % d_sae;
                // Dead features (every 7th, see `feature`) never fire.
                if f % 7 != 6 && !active.contains(&f) {
                    active.push(f);
                }
                k += 1;
            }
            for &f in &active {
                let u = unit(i ^ (u64::from(pos) << 32) ^ (u64::from(f) << 8));
                let value = (1.0 + f as f32 % 5.0) * (0.1 + (-(1.0 - u).ln()) * 0.7);
                out.push(ActivationEntry {
                    context_id: i,
                    pos: pos as u16,
                    feature: f,
                    value,
                });
            }
            prev = active;
        }
        out
    }
}

/// Writes the fixture index to `out` (published), in batches of 16 contexts / 10 features.
pub fn write_index(out: &Path, spec: &FixtureSpec) -> Result<PublishReport> {
    write_index_with(out, spec, IndexWriterOptions::default())
}

/// [`write_index`] with explicit writer options.
pub fn write_index_with(
    out: &Path,
    spec: &FixtureSpec,
    options: IndexWriterOptions,
) -> Result<PublishReport> {
    let mut w = IndexWriter::with_options(out, spec.manifest(), options)?;
    fill(&mut w, spec)?;
    w.publish()
}

/// Streams every fixture record into `w` (without publishing).
pub fn fill(w: &mut IndexWriter, spec: &FixtureSpec) -> Result<()> {
    let contexts = spec.contexts();
    for chunk in contexts.chunks(16) {
        w.write_contexts(chunk)?;
    }
    for (sae, d_sae) in &spec.saes {
        let features: Vec<u32> = (0..*d_sae).collect();
        for chunk in features.chunks(10) {
            w.write_features(
                sae,
                &chunk
                    .iter()
                    .map(|&f| spec.feature(sae, f))
                    .collect::<Vec<_>>(),
            )?;
            w.write_examples(
                sae,
                &chunk
                    .iter()
                    .flat_map(|&f| spec.examples_of(sae, f))
                    .collect::<Vec<_>>(),
            )?;
            w.write_cooccurrence(
                sae,
                &chunk
                    .iter()
                    .flat_map(|&f| spec.cooccurrence_of(sae, f))
                    .collect::<Vec<_>>(),
            )?;
        }
        w.write_summary(sae, &spec.summary(sae, *d_sae))?;
        let ctx_features: Vec<ContextFeaturesRecord> = (0..spec.contexts)
            .map(|i| spec.context_features_of(sae, *d_sae, i))
            .collect();
        for chunk in ctx_features.chunks(16) {
            w.write_context_features(sae, chunk)?;
        }
        if spec.activation_l0 > 0 {
            for i in 0..spec.contexts {
                w.write_activations(sae, &spec.activations_of_context(sae, *d_sae, i))?;
            }
        }
    }
    Ok(())
}
