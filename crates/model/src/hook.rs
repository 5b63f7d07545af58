//! Hook points, capture plans and captured activations.
//!
//! Hook names follow TransformerLens (as SAELens and Llama Scope configs spell them), so a hook
//! parsed from an SAE config names the same tensor here. A [`CapturePlan`] is an explicit
//! argument of [`crate::Model::forward_capture`]; there is no global hook registry.
//!
//! Invariant: every tensor in [`Captured::hooks`] is f32 `[sum(lengths), width]`, the real tokens
//! packed sequence by sequence; `width` is `d_model` except for `attn.hook_z`
//! (`n_heads · head_dim`, see [`crate::Model::hook_width`]).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// A point in the forward pass whose activations can be captured, tagged with its block index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// `blocks.{L}.hook_resid_pre`: the residual stream entering block L.
    ResidPre(usize),
    /// `blocks.{L}.hook_resid_post`: the residual stream after block L.
    ResidPost(usize),
    /// `blocks.{L}.hook_attn_out`: what block L's attention adds to the residual stream (after
    /// `o_proj`; for Gemma after its post-attention norm).
    AttnOut(usize),
    /// `blocks.{L}.attn.hook_z`: block L's attention heads' outputs before the output
    /// projection, heads concatenated (`[n_heads · head_dim]` wide; Gemma Scope's attention
    /// SAEs read it).
    AttnZ(usize),
    /// `blocks.{L}.mlp.hook_in`: the MLP's input, i.e. the pre-MLP norm's output, gain
    /// included (Gemma Scope 2's transcoders read it).
    MlpIn(usize),
    /// `blocks.{L}.hook_mlp_out`: what block L's MLP adds to the residual stream (after
    /// `down_proj`; for Gemma after its post-MLP norm).
    MlpOut(usize),
    /// `blocks.{L}.ln2.hook_normalized`: block L's post-attention RMSNorm input divided by its
    /// RMS, before the gain (TransformerLens folds the gain into the MLP), as Llama Scope's
    /// transcoders read it; its norm is ≈ sqrt(d_model).
    Ln2Normalized(usize),
}

impl HookPoint {
    /// The block index the hook belongs to.
    pub fn layer(&self) -> usize {
        match *self {
            HookPoint::ResidPre(l)
            | HookPoint::ResidPost(l)
            | HookPoint::AttnOut(l)
            | HookPoint::AttnZ(l)
            | HookPoint::MlpIn(l)
            | HookPoint::MlpOut(l)
            | HookPoint::Ln2Normalized(l) => l,
        }
    }

    /// Parses a comma-separated list of hook names (`"blocks.0.hook_resid_post,blocks.3.hook_mlp_out"`).
    pub fn parse_list(list: &str) -> Result<BTreeSet<HookPoint>> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }
}

/// One kind of hook point of a model, for `scopedex info` and documentation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HookSite {
    /// The name pattern, `blocks.{L}.hook_resid_post`.
    pub name: &'static str,
    /// Width of its activations.
    pub width: usize,
    /// What it is in this family's modules.
    pub meaning: &'static str,
}

/// Every kind of hook point of a model with `cfg`, with its width and meaning in its family.
pub fn hook_sites(cfg: &crate::Config) -> Vec<HookSite> {
    use crate::Family;
    let gemma = matches!(cfg.family, Family::Gemma2 | Family::Gemma3);
    let layer_norm = cfg.family == Family::Gpt2;
    let site = |name, hook: HookPoint, meaning| HookSite {
        name,
        width: cfg.hook_width(hook),
        meaning,
    };
    vec![
        site(
            "blocks.{L}.hook_resid_pre",
            HookPoint::ResidPre(0),
            "the residual stream entering block L (after the embedding for L = 0)",
        ),
        site(
            "blocks.{L}.attn.hook_z",
            HookPoint::AttnZ(0),
            "the attention heads' outputs before the output projection, heads concatenated",
        ),
        site(
            "blocks.{L}.hook_attn_out",
            HookPoint::AttnOut(0),
            if gemma {
                "what attention adds to the residual stream: post_attention_layernorm's output"
            } else {
                "what attention adds to the residual stream: the output projection's output"
            },
        ),
        site(
            "blocks.{L}.ln2.hook_normalized",
            HookPoint::Ln2Normalized(0),
            if layer_norm {
                "ln_2's input centred and divided by its standard deviation, before gain and bias"
            } else if gemma {
                "pre_feedforward_layernorm's input divided by its RMS, before the (1 + w) gain"
            } else {
                "post_attention_layernorm's input divided by its RMS, before the gain"
            },
        ),
        site(
            "blocks.{L}.mlp.hook_in",
            HookPoint::MlpIn(0),
            "the MLP's input: the pre-MLP norm's output, gain included",
        ),
        site(
            "blocks.{L}.hook_mlp_out",
            HookPoint::MlpOut(0),
            if gemma {
                "what the MLP adds to the residual stream: post_feedforward_layernorm's output"
            } else {
                "what the MLP adds to the residual stream: its down projection's output"
            },
        ),
        site(
            "blocks.{L}.hook_resid_post",
            HookPoint::ResidPost(0),
            "the residual stream after block L",
        ),
    ]
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HookPoint::ResidPre(l) => write!(f, "blocks.{l}.hook_resid_pre"),
            HookPoint::ResidPost(l) => write!(f, "blocks.{l}.hook_resid_post"),
            HookPoint::AttnOut(l) => write!(f, "blocks.{l}.hook_attn_out"),
            HookPoint::AttnZ(l) => write!(f, "blocks.{l}.attn.hook_z"),
            HookPoint::MlpIn(l) => write!(f, "blocks.{l}.mlp.hook_in"),
            HookPoint::MlpOut(l) => write!(f, "blocks.{l}.hook_mlp_out"),
            HookPoint::Ln2Normalized(l) => write!(f, "blocks.{l}.ln2.hook_normalized"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || Error::UnknownHook(s.to_string());
        let rest = s.strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, name) = rest.split_once('.').ok_or_else(unknown)?;
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unknown());
        }
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        Ok(match name {
            "hook_resid_pre" => HookPoint::ResidPre(layer),
            "hook_resid_post" => HookPoint::ResidPost(layer),
            "hook_attn_out" => HookPoint::AttnOut(layer),
            "attn.hook_z" => HookPoint::AttnZ(layer),
            "mlp.hook_in" => HookPoint::MlpIn(layer),
            "hook_mlp_out" => HookPoint::MlpOut(layer),
            "ln2.hook_normalized" => HookPoint::Ln2Normalized(layer),
            _ => return Err(unknown()),
        })
    }
}

/// What a forward pass should return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturePlan {
    /// Hook points to capture. The forward stops after the deepest hooked block unless
    /// `logits` is set.
    pub hooks: BTreeSet<HookPoint>,
    /// Also run every block, the final norm and the LM head, returning last-position logits.
    pub logits: bool,
}

impl CapturePlan {
    /// A plan capturing `hooks`, without logits.
    pub fn new(hooks: impl IntoIterator<Item = HookPoint>) -> Self {
        CapturePlan {
            hooks: hooks.into_iter().collect(),
            logits: false,
        }
    }

    /// The same plan, with last-position logits requested.
    pub fn with_logits(mut self) -> Self {
        self.logits = true;
        self
    }

    /// Number of blocks the forward must run: deepest hooked layer + 1 (all blocks with logits).
    pub fn blocks_needed(&self, n_layers: usize) -> usize {
        if self.logits {
            return n_layers;
        }
        self.hooks.iter().map(|h| h.layer() + 1).max().unwrap_or(0)
    }

    /// Checks every hook names a layer of a model with `n_layers` blocks.
    pub fn validate(&self, n_layers: usize) -> Result<()> {
        for h in &self.hooks {
            if h.layer() >= n_layers {
                return Err(Error::LayerOutOfRange {
                    hook: h.to_string(),
                    layer: h.layer(),
                    n_layers,
                });
            }
        }
        Ok(())
    }
}

/// The output of [`crate::Model::forward_capture`].
#[derive(Debug, Clone)]
pub struct Captured {
    /// Number of real (non-padding) tokens of each sequence of the batch.
    pub lengths: Vec<usize>,
    /// One f32 `[sum(lengths), width]` tensor per captured hook: the real tokens, sequence by
    /// sequence, position by position (no padding).
    pub hooks: BTreeMap<HookPoint, Tensor>,
    /// f32 `[B, vocab]`: logits at the last real position of each sequence (`lengths[b] - 1`),
    /// when the plan asked for them. Only the last position is computed, to spare the
    /// `vocab × d_model` product at every position.
    pub logits: Option<Tensor>,
}

impl Captured {
    /// f32 `[sum(lengths), width]`: the rows of `hook`, sequence by sequence, position by
    /// position.
    pub fn valid_rows(&self, hook: HookPoint) -> Result<Tensor> {
        let t = self
            .hooks
            .get(&hook)
            .ok_or_else(|| Error::NotCaptured(hook.to_string()))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    /// f32 `[B, T_max, width]`: `hook` right-padded per sequence, padding rows zero.
    pub fn padded(&self, hook: HookPoint) -> Result<Tensor> {
        let rows = self.valid_rows(hook)?;
        let t_max = self.lengths.iter().copied().max().unwrap_or(0);
        let d = rows.dim(1)?;
        let mut parts = Vec::with_capacity(self.lengths.len());
        let mut start = 0;
        for &l in &self.lengths {
            let seq = rows.narrow(0, start, l)?;
            parts.push(if l < t_max {
                let zeros = Tensor::zeros((t_max - l, d), DType::F32, rows.device())?;
                Tensor::cat(&[&seq, &zeros], 0)?
            } else {
                seq
            });
            start += l;
        }
        Ok(Tensor::stack(&parts, 0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for h in [
            HookPoint::ResidPre(0),
            HookPoint::ResidPost(15),
            HookPoint::AttnOut(3),
            HookPoint::MlpOut(29),
            HookPoint::Ln2Normalized(7),
            HookPoint::AttnZ(4),
            HookPoint::MlpIn(9),
        ] {
            let s = h.to_string();
            assert_eq!(s.parse::<HookPoint>().unwrap(), h, "{s}");
        }
        assert_eq!(
            "blocks.12.ln2.hook_normalized"
                .parse::<HookPoint>()
                .unwrap(),
            HookPoint::Ln2Normalized(12)
        );
    }

    #[test]
    fn unknown_hook_names_are_errors() {
        for bad in [
            "",
            "blocks.x.hook_resid_post",
            "blocks.1.hook_resid_mid",
            "blocks..hook_mlp_out",
            "block.1.hook_mlp_out",
            "blocks.-1.hook_mlp_out",
            "blocks.1.ln1.hook_normalized",
        ] {
            let err = bad.parse::<HookPoint>().unwrap_err();
            assert!(matches!(err, Error::UnknownHook(_)), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn plan_depth_and_validation() {
        let plan = CapturePlan::new([HookPoint::AttnOut(2), HookPoint::ResidPost(5)]);
        assert_eq!(plan.blocks_needed(30), 6);
        assert_eq!(plan.clone().with_logits().blocks_needed(30), 30);
        assert!(plan.validate(6).is_ok());
        let err = plan.validate(5).unwrap_err();
        assert!(
            matches!(err, Error::LayerOutOfRange { layer: 5, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("blocks.5.hook_resid_post"),
            "{err}"
        );
        let list =
            HookPoint::parse_list("blocks.0.hook_resid_post, blocks.1.hook_mlp_out").unwrap();
        assert_eq!(list.len(), 2);
    }
}
