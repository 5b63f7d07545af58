//! The SAELens layout: `cfg.json` + `sae_weights.safetensors` (Gemma Scope-style SAEs too).
//!
//! Source: SAELens (jbloomAus/SAELens): `sae_lens/saes/sae.py` (`process_sae_in`: activation
//! norm, then `x - b_dec * apply_b_dec_to_input`; `decode`: `a @ W_dec + b_dec`),
//! `saes/standard_sae.py` (ReLU), `saes/topk_sae.py` (top-k of `hidden_pre`, then ReLU),
//! `saes/jumprelu_sae.py` (`relu(h) * (h > threshold)`), and the on-disk config of v6
//! (architecture fields at top level, run info under `metadata`) vs ≤ v5 (flat, with
//! `activation_fn_str` / `activation_fn_kwargs`).
//!
//! Tensors: `W_enc` [d_in, d_sae], `W_dec` [d_sae, d_in], `b_enc` [d_sae], `b_dec` [d_in], and
//! for jumprelu `threshold` [d_sae] (or `log_threshold`, exponentiated). SAELens has no
//! decoder-norm gating: the gate is `h` itself.
//!
//! `normalize_activations`: `"none"` / absent → no scaling; `"expected_average_only_in"` →
//! SAELens folds the scale into the weights before saving, so none is applied unless the cfg
//! carries a numeric `norm_scaling_factor` s (then `x·s` in, `/s` out); `"layer_norm"` normalises
//! each token (mean removed, divided by the unbiased std + 1e-5: OpenAI's TopK SAEs as SAELens
//! copies them) and reconstructions are compared in that space; `"constant_norm_rescale"` is
//! rejected.
use std::path::Path;

use crate::error::{Error, Result};
use crate::id::SaeId;
use crate::json::Fields;
use crate::params::{Activation, InputNorm, Resolved, SaeFormat, ThresholdKind};
use crate::weights::WeightsFile;

/// The config file of a SAELens SAE folder.
pub const CFG: &str = "cfg.json";
/// The weights file of a SAELens SAE folder.
pub const WEIGHTS: &str = "sae_weights.safetensors";

/// What the activation function needs from the weights file.
enum Arch {
    Standard,
    TopK(usize),
    JumpRelu,
}

/// Loads and resolves one SAELens folder.
pub(crate) fn load(dir: &Path) -> Result<Resolved> {
    let cfg_path = dir.join(CFG);
    let f = Fields::read(&cfg_path)?;
    let meta = f.nested("metadata");
    let d_in = f.usize("d_in")?;
    let d_sae = f.usize("d_sae")?;
    if d_in == 0 || d_sae == 0 || d_sae as u64 > u32::MAX as u64 {
        let field = if d_in == 0 { "d_in" } else { "d_sae" };
        return Err(Error::invalid(
            &cfg_path,
            field,
            "must be positive (and d_sae < 2^32)",
        ));
    }
    // v6 keeps hook_name under `metadata`; ≤ v5 at top level.
    let hook = match meta
        .as_ref()
        .map(|m| m.opt_str("hook_name"))
        .transpose()?
        .flatten()
    {
        Some(h) => h,
        None => f.str("hook_name")?,
    };
    let arch = architecture(&f)?;
    if let Arch::TopK(k) = arch {
        if k > d_sae {
            return Err(Error::invalid(
                &f.path,
                "k",
                format!("= {k} exceeds d_sae = {d_sae}"),
            ));
        }
    }
    let apply_b_dec = f.bool("apply_b_dec_to_input")?;
    let mut layer_norm = false;
    let scale = match f.opt_str("normalize_activations")?.as_deref() {
        None | Some("none") => 1.0,
        Some("layer_norm") => {
            layer_norm = true;
            1.0
        }
        Some("expected_average_only_in") => f.opt_f32("norm_scaling_factor")?.unwrap_or(1.0),
        Some(other) => {
            return Err(Error::Unsupported {
                path: cfg_path.clone(),
                field: "normalize_activations".into(),
                value: other.into(),
                reason: "supported: none, expected_average_only_in, layer_norm".into(),
            })
        }
    };
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::invalid(
            &cfg_path,
            "norm_scaling_factor",
            "must be positive",
        ));
    }

    let file = WeightsFile::open(&dir.join(WEIGHTS))?;
    let st = file.tensors()?;
    let w_enc = file.read(&st, "W_enc", &[d_in, d_sae])?;
    let b_enc = file.read(&st, "b_enc", &[d_sae])?;
    let w_dec = file.read(&st, "W_dec", &[d_sae, d_in])?;
    let b_dec = file.read(&st, "b_dec", &[d_in])?;
    let (activation, top_k) = match arch {
        Arch::Standard => (Activation::Relu, None),
        Arch::TopK(k) => (Activation::TopK { k }, Some(k)),
        Arch::JumpRelu => {
            let t = match file.read_opt(&st, "threshold", &[d_sae])? {
                Some(t) => t,
                None => match file.read_opt(&st, "log_threshold", &[d_sae])? {
                    Some(lt) => lt.into_iter().map(f32::exp).collect(),
                    None => {
                        return Err(Error::MissingTensor {
                            path: file.path().to_path_buf(),
                            name: "threshold".into(),
                        })
                    }
                },
            };
            (
                Activation::JumpRelu {
                    threshold: ThresholdKind::PerFeature(t),
                },
                None,
            )
        }
    };
    let id = SaeId::from_hooks(&hook, &hook, d_sae, d_in);
    let input_norm = if layer_norm {
        InputNorm::LayerNorm
    } else if centred_residual(&f, meta.as_ref(), &hook)? {
        InputNorm::Centre
    } else {
        InputNorm::None
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Resolved {
        name,
        id,
        format: SaeFormat::SaeLens,
        hook_in: hook.clone(),
        hook_out: hook,
        d_in,
        d_sae,
        d_out: d_in,
        activation,
        top_k,
        source_sha256: file.sha256(),
        w_enc,
        b_enc,
        pre_bias: apply_b_dec.then(|| b_dec.clone()),
        gate_by_decoder_norm: false,
        input_norm,
        w_dec,
        b_dec,
        s_in: scale,
        s_out: scale,
    })
}

/// Whether the cfg says the SAE read TransformerLens' centred residual stream:
/// `model_from_pretrained_kwargs.center_writing_weights` true (under `metadata` in v6, at the top
/// in ≤ v5; SAELens' `gpt2-small-res-jb` says so) and a hook on the residual stream or a
/// sublayer's contribution to it.
fn centred_residual(f: &Fields, meta: Option<&Fields>, hook: &str) -> Result<bool> {
    let kwargs = meta
        .and_then(|m| m.nested("model_from_pretrained_kwargs"))
        .or_else(|| f.nested("model_from_pretrained_kwargs"));
    let centred = match kwargs {
        Some(k) => k.opt_bool("center_writing_weights")?.unwrap_or(false),
        None => false,
    };
    let residual = [
        "hook_resid_pre",
        "hook_resid_mid",
        "hook_resid_post",
        "hook_attn_out",
        "hook_mlp_out",
    ]
    .iter()
    .any(|h| hook.ends_with(h));
    Ok(centred && residual)
}

/// The architecture: v6 `architecture`; ≤ v5 may say "standard" with `activation_fn_str`
/// "topk" and `activation_fn_kwargs.k`.
fn architecture(f: &Fields) -> Result<Arch> {
    let arch = f
        .opt_str("architecture")?
        .unwrap_or_else(|| "standard".into());
    let act_fn = match f.opt_str("activation_fn_str")? {
        Some(a) => Some(a),
        None => f.opt_str("activation_fn")?,
    };
    let k = || -> Result<usize> {
        let k = match f.opt_usize("k")? {
            Some(k) => Some(k),
            None => match f.nested("activation_fn_kwargs") {
                Some(kw) => kw.opt_usize("k")?,
                None => None,
            },
        };
        match k {
            Some(0) => Err(Error::invalid(&f.path, "k", "must be positive")),
            Some(k) => Ok(k),
            None => Err(Error::missing(&f.path, "k")),
        }
    };
    match arch.as_str() {
        "jumprelu" => Ok(Arch::JumpRelu),
        "topk" => Ok(Arch::TopK(k()?)),
        "standard" => match act_fn.as_deref() {
            None | Some("relu") => Ok(Arch::Standard),
            Some("topk") => Ok(Arch::TopK(k()?)),
            Some(other) => Err(Error::UnknownActivation {
                path: f.path.clone(),
                field: "activation_fn_str".into(),
                value: other.into(),
                expected: "relu, topk",
            }),
        },
        other => Err(Error::UnknownActivation {
            path: f.path.clone(),
            field: "architecture".into(),
            value: other.into(),
            expected: "standard, topk, jumprelu",
        }),
    }
}
