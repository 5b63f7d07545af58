//! The decoder every family runs: embedding, packing, the family's blocks up to the deepest
//! hook, hook capture, final norm and logits.
//!
//! [`Model::forward_capture`] runs a batch through blocks `0..=L` where L is the deepest hooked
//! layer (every block, the final norm and the LM head when logits are asked for) and returns
//! the hooked activations. Weights are in the backend's dtype on its device (norm gains in f32).
use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use crate::backend::Backend;
use crate::config::Config;
use crate::families::Family;
use crate::gguf::GgufSource;
use crate::hook::{CapturePlan, Captured, HookPoint};
use crate::layers::block::{BlockHooks, DecoderBlock};
use crate::layers::norm::Norm;
use crate::layers::rope;
use crate::weights::{read_hf_config, SafetensorsSource, WeightSource};
use crate::{Error, Result};

/// A loaded language model of any supported [`Family`].
#[derive(Debug, Clone)]
pub struct Model {
    cfg: Config,
    backend: Backend,
    /// `[vocab, d_model]`, in the backend's dtype.
    embed_tokens: Tensor,
    /// Multiplies the token embeddings (Gemma), already rounded to the backend's dtype.
    embed_scale: Option<f64>,
    /// Learned position embeddings, `[n_positions, d_model]` (GPT-2).
    pos_embed: Option<Tensor>,
    blocks: Vec<std::sync::Arc<dyn DecoderBlock>>,
    final_norm: Norm,
    /// f32 `[vocab, d_model]`; the same tensor as `embed_tokens` when tied.
    lm_head: Tensor,
    /// RoPE inverse frequencies, one table per kind of layer.
    ropes: Vec<Vec<f32>>,
    /// The distinct sliding windows the loaded blocks use.
    windows: Vec<usize>,
    span: tracing::Span,
}

impl Model {
    /// Loads a GGUF file, or an HF directory (`config.json` + `model.safetensors` or sharded
    /// `model.safetensors.index.json`), every weight on the backend's device in its dtype (a
    /// GGUF dequantized once; a checkpoint already in that dtype loaded as stored).
    pub fn load(path: &Path, backend: &Backend) -> Result<Model> {
        Self::load_blocks(path, backend, usize::MAX)
    }

    /// The configuration of the model at `path` (GGUF header or HF `config.json`), without
    /// loading any weight.
    pub fn read_config(path: &Path) -> Result<Config> {
        if path.is_dir() {
            read_hf_config(path)
        } else {
            Ok(GgufSource::open(path)?.1)
        }
    }

    /// Like [`Model::load`], but loads only the first `max_blocks` blocks (plus embedding, final
    /// norm and unembedding). A job that hooks layer 6 of a 30-layer model then holds a quarter
    /// of the weights; [`Model::forward_capture`] refuses hooks (and logits) beyond them.
    pub fn load_blocks(path: &Path, backend: &Backend, max_blocks: usize) -> Result<Model> {
        let _span = tracing::info_span!("load_model", path = %path.display()).entered();
        if path.is_dir() {
            let cfg = read_hf_config(path)?;
            let mut src = SafetensorsSource::open(path)?;
            Self::from_source(&mut src, cfg, backend, max_blocks)
        } else {
            let (mut src, cfg) = GgufSource::open(path)?;
            Self::from_source(&mut src, cfg, backend, max_blocks)
        }
    }

    /// Builds the model (its first `max_blocks` blocks) from a weight source answering in HF
    /// names.
    fn from_source(
        src: &mut dyn WeightSource,
        cfg: Config,
        backend: &Backend,
        max_blocks: usize,
    ) -> Result<Model> {
        let mut src = crate::weights::InDtype {
            inner: src,
            dtype: backend.dtype(),
        };
        let parts = cfg
            .family
            .load(&mut src, &cfg, backend.device(), max_blocks)?;
        let (ropes, _) = rope::tables(&cfg);
        let mut windows: Vec<usize> = parts.blocks.iter().filter_map(|b| b.window()).collect();
        windows.sort_unstable();
        windows.dedup();
        Ok(Model {
            span: tracing::span!(tracing::Level::TRACE, "model", family = cfg.family.name()),
            cfg,
            backend: backend.clone(),
            embed_tokens: parts.embed_tokens,
            // √d rounded to the activation dtype, as transformers' Gemma does.
            embed_scale: parts
                .embed_scale
                .map(|scale| round_to(scale, backend.dtype()))
                .transpose()?,
            pos_embed: parts.pos_embed,
            blocks: parts.blocks.into_iter().map(std::sync::Arc::from).collect(),
            final_norm: parts.final_norm,
            lm_head: parts.lm_head,
            ropes,
            windows,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The model's family.
    pub fn family(&self) -> Family {
        self.cfg.family
    }

    /// Blocks held in memory (`config().n_layers` unless loaded with [`Model::load_blocks`]).
    pub fn blocks_loaded(&self) -> usize {
        self.blocks.len()
    }

    /// The backend the model runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The device the weights live on.
    pub fn device(&self) -> &candle_core::Device {
        self.backend.device()
    }

    /// Unembedding `W_U` as f32 `[vocab, d_model]` (the embedding matrix when tied).
    pub fn unembedding(&self) -> Result<Tensor> {
        Ok(self.lm_head.to_dtype(DType::F32)?)
    }

    /// The width of the activations at `hook`: `n_heads · head_dim` for `attn.hook_z`,
    /// `d_model` for every other hook.
    pub fn hook_width(&self, hook: HookPoint) -> usize {
        self.cfg.hook_width(hook)
    }

    /// Runs a batch (`seqs[b]` are token ids; lengths may differ, none empty) and returns the
    /// activations at `plan.hooks`, each f32 `[sum(lengths), width]` whatever the backend's dtype (sequence by sequence),
    /// plus last-position logits `[B, vocab]` when `plan.logits`.
    ///
    /// The batch is packed: every projection and MLP runs on the real tokens only, so a batch
    /// of short contexts costs its tokens, not `B × T_max`. With the fused CPU kernels attention
    /// does too; candle's ops see a padded `[B, T_max]` layout, a small share of the FLOPs.
    pub fn forward_capture(&self, seqs: &[&[u32]], plan: &CapturePlan) -> Result<Captured> {
        let _enter = self.span.enter();
        plan.validate(self.cfg.n_layers)?;
        let needed = plan.blocks_needed(self.cfg.n_layers);
        if needed > self.blocks.len() {
            return Err(Error::BadInput(format!(
                "the plan needs {needed} blocks ({}) but only {} were loaded",
                if plan.logits {
                    "logits run every block"
                } else {
                    "its deepest hook"
                },
                self.blocks.len()
            )));
        }
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        if let Some(i) = lengths.iter().position(|&l| l == 0) {
            return Err(Error::BadInput(format!(
                "sequence {i} of the batch is empty"
            )));
        }
        let b = seqs.len();
        if b == 0 {
            return Ok(Captured {
                lengths,
                hooks: BTreeMap::new(),
                logits: None,
            });
        }
        if let Some(pos) = &self.pos_embed {
            let n_positions = pos.dim(0)?;
            if let Some(i) = lengths.iter().position(|&l| l > n_positions) {
                return Err(Error::BadInput(format!(
                    "sequence {i} has {} tokens, beyond the model's {n_positions} positions",
                    lengths[i]
                )));
            }
        }
        let rows: usize = lengths.iter().sum();
        let mut ids = Vec::with_capacity(rows);
        for (i, s) in seqs.iter().enumerate() {
            if let Some(&bad) = s.iter().find(|&&id| id as usize >= self.cfg.vocab_size) {
                return Err(Error::BadInput(format!(
                    "sequence {i} holds token id {bad}, beyond the vocabulary of {}",
                    self.cfg.vocab_size
                )));
            }
            ids.extend_from_slice(s);
        }
        let ids = Tensor::from_vec(ids, rows, self.device())?;
        let mut x = self.embed_tokens.index_select(&ids, 0)?; // [rows, d]
        if let Some(scale) = self.embed_scale {
            x = (x * scale)?;
        }
        if let Some(pos) = &self.pos_embed {
            let positions: Vec<u32> = lengths.iter().flat_map(|&l| 0..l as u32).collect();
            let positions = Tensor::from_vec(positions, rows, self.device())?;
            x = (x + pos.index_select(&positions, 0)?)?;
        }

        let be = &self.backend;
        let ctx = be.attention_context(&lengths, &self.ropes, &self.windows)?;
        let mut hooks = BTreeMap::new();
        let mut put = |h: HookPoint, v: Option<&Tensor>| -> Result<()> {
            if plan.hooks.contains(&h) {
                // A block forms every output a hook asks for (see `BlockHooks`).
                let v = v.expect("hooked block output was formed");
                // Handed out in f32 whatever the backend's dtype (a no-op in f32).
                hooks.insert(h, v.to_dtype(DType::F32)?);
            }
            Ok(())
        };
        let n_blocks = plan.blocks_needed(self.cfg.n_layers);
        for (l, block) in self.blocks.iter().take(n_blocks).enumerate() {
            put(HookPoint::ResidPre(l), Some(&x))?;
            let wants = BlockHooks {
                z: plan.hooks.contains(&HookPoint::AttnZ(l)),
                attn_out: plan.hooks.contains(&HookPoint::AttnOut(l)),
                mlp_out: plan.hooks.contains(&HookPoint::MlpOut(l)),
            };
            let out = block.forward(be, &x, &ctx, wants)?;
            put(HookPoint::AttnZ(l), out.z.as_ref())?;
            put(HookPoint::AttnOut(l), out.attn_out.as_ref())?;
            put(HookPoint::Ln2Normalized(l), Some(&out.ln2))?;
            put(HookPoint::MlpIn(l), Some(&out.mlp_in))?;
            put(HookPoint::MlpOut(l), out.mlp_out.as_ref())?;
            put(HookPoint::ResidPost(l), Some(&out.resid_post))?;
            x = out.resid_post;
        }
        let logits = if plan.logits {
            // Packed row of each sequence's last token.
            let last: Vec<u32> = lengths
                .iter()
                .scan(0usize, |end, &l| {
                    *end += l;
                    Some((*end - 1) as u32)
                })
                .collect();
            let last = Tensor::from_vec(last, b, self.device())?;
            let h = self.final_norm.forward(be, &x.index_select(&last, 0)?)?; // [b, d]
            let logits = scopedex_linalg::matmul(&h, &self.lm_head.t()?)?.to_dtype(DType::F32)?;
            Some(match self.cfg.final_softcap {
                Some(cap) => be.softcap(&logits, cap)?,
                None => logits,
            })
        } else {
            None
        };
        Ok(Captured {
            lengths,
            hooks,
            logits,
        })
    }
}

/// `v` rounded to `dtype` (and back to f64).
fn round_to(v: f32, dtype: DType) -> Result<f64> {
    Ok(Tensor::new(&[v], &candle_core::Device::Cpu)?
        .to_dtype(dtype)?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused CPU kernels against candle's ops (the path other devices run) on the real
    /// model, with a batch of unequal lengths (including length 1) and every hook kind.
    #[test]
    fn fused_cpu_forward_matches_candle_ops() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        if !path.is_file() {
            eprintln!(
                "skipped: {} missing (scripts/fetch-assets.sh)",
                path.display()
            );
            return;
        }
        let mut model = Model::load(&path, &Backend::cpu()).unwrap();
        let mut s = 12345u64;
        let seqs: Vec<Vec<u32>> = [7usize, 1, 40, 19, 33]
            .iter()
            .map(|&len| {
                (0..len)
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                        3 + (s >> 33) as u32 % 40_000
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let hooks = (0..4).chain([29]).flat_map(|l| {
            [
                HookPoint::ResidPre(l),
                HookPoint::AttnOut(l),
                HookPoint::Ln2Normalized(l),
                HookPoint::MlpOut(l),
                HookPoint::ResidPost(l),
            ]
        });
        // Every hook; then without attn_out/mlp_out, where the fused path folds the residual
        // adds into o_proj/down_proj.
        let all = CapturePlan::new(hooks).with_logits();
        let folded = CapturePlan::new((0..4).flat_map(|l| {
            [
                HookPoint::ResidPre(l),
                HookPoint::Ln2Normalized(l),
                HookPoint::ResidPost(l),
            ]
        }));
        for plan in [all, folded] {
            model.backend = Backend::cpu();
            let fused = model.forward_capture(&refs, &plan).unwrap();
            model.backend = Backend::candle_ops(&candle_core::Device::Cpu);
            let candle = model.forward_capture(&refs, &plan).unwrap();
            assert_eq!(fused.hooks.len(), plan.hooks.len());
            for (h, a) in &fused.hooks {
                let rel = rel_l2(a, &candle.hooks[h]);
                assert!(rel < 1e-5, "{h}: relative L2 difference {rel:e}");
            }
            if let (Some(a), Some(b)) = (&fused.logits, &candle.logits) {
                assert!(rel_l2(a, b) < 1e-5);
            }
        }
    }

    fn rel_l2(a: &Tensor, b: &Tensor) -> f32 {
        let err = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
        let norm = b.sqr().unwrap().sum_all().unwrap();
        (err.to_scalar::<f32>().unwrap() / norm.to_scalar::<f32>().unwrap()).sqrt()
    }
}
