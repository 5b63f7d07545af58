//! Gemma Scope (Gemma 2) and Gemma Scope 2 (Gemma 3) JumpReLU SAEs and transcoders, in their
//! release layouts:
//! - Gemma Scope: `google/gemma-scope-{2b,9b,27b}-pt-{res,att,mlp,transcoders}/layer_{L}/width_{W}/
//!   average_l0_{N}/params.npz` with `W_enc` [d_in, d_sae], `W_dec` [d_sae, d_out], `b_enc`,
//!   `b_dec`, `threshold` [d_sae] (f32).
//! - Gemma Scope 2: `google/gemma-scope-2-{size}-{pt,it}/{resid_post,attn_out,mlp_out,transcoder}
//!   [_all]/layer_{L}_width_{W}_l0_{size}/params.safetensors` with the same tensors in lower
//!   case (`w_enc`, `w_dec`, ...).
//!
//! Neither file names its hook: it comes from the folders, as SAELens' loaders
//! (`get_gemma_2_config_from_hf`, the Gemma Scope 2 configs) map them: res / resid_post →
//! `hook_resid_post`, att / attn_out → `attn.hook_z` (the heads before the output projection),
//! mlp / mlp_out → `hook_mlp_out`; transcoders read `ln2.hook_normalized` (Gemma Scope: the
//! pre-MLP norm's input without its gain) or `mlp.hook_in` (Gemma Scope 2: the norm's output)
//! and predict `hook_mlp_out`.
//!
//! Encode (the Gemma Scope tutorial's `JumpReLUSAE`, SAELens `jumprelu_sae.py`):
//! `pre = x W_enc + b_enc; f = pre · (pre > threshold)`, strict, per feature; no input
//! normalisation and no `b_dec` subtraction. Decode `f W_dec + b_dec`.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::{Position, SaeId, Width};
use crate::params::{Activation, Resolved, SaeFormat, ThresholdKind};

/// Gemma Scope's weights file.
pub const NPZ: &str = "params.npz";
/// Gemma Scope 2's weights file.
pub const SAFETENSORS: &str = "params.safetensors";

/// Whether `dir` holds a Gemma Scope SAE.
pub(crate) fn is_gemma_scope(dir: &Path) -> bool {
    dir.join(NPZ).is_file() || dir.join(SAFETENSORS).is_file()
}

/// Loads and resolves one Gemma Scope folder.
pub(crate) fn load(dir: &Path) -> Result<Resolved> {
    let (layer, position) = site(dir)?;
    let (file, tensors) = read_tensors(dir)?;
    let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        tensors
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, shape, data)| (shape.clone(), data.clone()))
            .ok_or_else(|| Error::MissingTensor {
                path: file.clone(),
                name: name.to_string(),
            })
    };
    let (enc_shape, w_enc) = get("W_enc")?;
    let [d_in, d_sae] = enc_shape[..] else {
        return Err(bad_shape(&file, "W_enc", &enc_shape, "[d_in, d_sae]"));
    };
    let (dec_shape, w_dec) = get("W_dec")?;
    let d_out = match dec_shape[..] {
        [rows, d_out] if rows == d_sae => d_out,
        _ => return Err(bad_shape(&file, "W_dec", &dec_shape, "[d_sae, d_out]")),
    };
    let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
        let (shape, v) = get(name)?;
        if shape != [len] {
            return Err(bad_shape(&file, name, &shape, &format!("[{len}]")));
        }
        Ok(v)
    };
    let b_enc = vector("b_enc", d_sae)?;
    let b_dec = vector("b_dec", d_out)?;
    let threshold = vector("threshold", d_sae)?;
    if d_in == 0 || d_sae == 0 || d_out == 0 {
        return Err(bad_shape(&file, "W_enc", &enc_shape, "non-empty"));
    }
    let hook_in = position.hook_in(layer);
    let hook_out = position.hook_out(layer);
    if !matches!(position, Position::TC | Position::TM) && d_in != d_out {
        return Err(bad_shape(
            &file,
            "W_dec",
            &dec_shape,
            &format!("[{d_sae}, {d_in}]"),
        ));
    }
    Ok(Resolved {
        name: name_of(dir),
        id: Some(SaeId {
            layer,
            position,
            width: Width::Count(u32::try_from(d_sae).unwrap_or(u32::MAX)),
        }),
        format: SaeFormat::GemmaScope,
        hook_in,
        hook_out,
        d_in,
        d_sae,
        d_out,
        activation: Activation::JumpRelu {
            threshold: ThresholdKind::PerFeature(threshold),
        },
        top_k: None,
        source_sha256: crate::weights::sha256_of(&file)?,
        w_enc,
        b_enc,
        pre_bias: None,
        gate_by_decoder_norm: false,
        input_norm: crate::params::InputNorm::None,
        w_dec,
        b_dec,
        s_in: 1.0,
        s_out: 1.0,
    })
}

/// `release/layer_12/width_16k/average_l0_82` → `gemma-scope-…-res/layer_12/width_16k/average_l0_82`:
/// the last four path components (or fewer), as a readable name.
fn name_of(dir: &Path) -> String {
    let parts: Vec<String> = dir
        .components()
        .rev()
        .take(4)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The layer and position from the release's folder names.
fn site(dir: &Path) -> Result<(u32, Position)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let names: Vec<String> = dir
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_lowercase())
        .collect();
    let unknown = |reason: &str| Error::Repo {
        path: dir.clone(),
        reason: format!(
            "a Gemma Scope SAE's hook comes from its release folders, and {reason}: keep the \
             layout `gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz` (res, \
             att, mlp, transcoders) or `resid_post/layer_12_width_16k_l0_small/params.safetensors` \
             (Gemma Scope 2: resid_post, attn_out, mlp_out, transcoder)"
        ),
    };
    // The layer: a component `layer_{L}` (Gemma Scope) or `layer_{L}_width_…` (Gemma Scope 2).
    let layer = names
        .iter()
        .rev()
        .find_map(|n| {
            let rest = n.strip_prefix("layer_")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .ok_or_else(|| unknown("no folder is named layer_N"))?;
    // The site: the nearest folder naming one.
    let position = names
        .iter()
        .rev()
        .find_map(|n| {
            let n = n.trim_end_matches("_all");
            if n == "resid_post" || n.ends_with("-res") || n.contains("-res-") {
                Some(Position::R)
            } else if n == "attn_out" || n.ends_with("-att") || n.contains("-att-") {
                Some(Position::Z)
            } else if n == "mlp_out" || n.ends_with("-mlp") || n.contains("-mlp-") {
                Some(Position::M)
            } else if n.ends_with("-transcoders") {
                Some(Position::TC)
            } else if n == "transcoder" {
                Some(Position::TM)
            } else {
                None
            }
        })
        .ok_or_else(|| unknown("no folder names the site"))?;
    if names
        .iter()
        .any(|n| n.starts_with("transcoder") && n.contains("affine"))
    {
        return Err(Error::Unsupported {
            path: dir.clone(),
            field: "(folder)".into(),
            value: "transcoder_affine".into(),
            reason: "affine transcoders (with a skip connection) are not supported".into(),
        });
    }
    Ok((layer, position))
}

/// Every tensor of `params.npz` or `params.safetensors` as f32 (name, shape, values).
#[allow(clippy::type_complexity)]
fn read_tensors(dir: &Path) -> Result<(PathBuf, Vec<(String, Vec<usize>, Vec<f32>)>)> {
    let npz = dir.join(NPZ);
    let (file, tensors): (PathBuf, Vec<(String, Vec<usize>, Vec<f32>)>) = if npz.is_file() {
        let arrays = crate::npz::read_npz(&npz)?;
        let t = arrays
            .into_iter()
            .map(|a| (a.name, a.shape, a.data))
            .collect();
        (npz, t)
    } else {
        let st = dir.join(SAFETENSORS);
        let loaded = candle_core::safetensors::load(&st, &candle_core::Device::Cpu)
            .map_err(|e| Error::io(&st, std::io::Error::other(e.to_string())))?;
        let t = loaded
            .into_iter()
            .map(|(name, t)| {
                let shape = t.dims().to_vec();
                let data = t
                    .to_dtype(candle_core::DType::F32)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| Error::io(&st, std::io::Error::other(e.to_string())))?;
                Ok((name, shape, data))
            })
            .collect::<Result<Vec<_>>>()?;
        (st, t)
    };
    for (name, _, data) in &tensors {
        if let Some((i, v)) = crate::weights::first_non_finite(data) {
            return Err(Error::invalid(
                &file,
                name,
                format!("holds a non-finite value ({v} at {i})"),
            ));
        }
    }
    Ok((file, tensors))
}

fn bad_shape(file: &Path, name: &str, shape: &[usize], expected: &str) -> Error {
    Error::invalid(
        file,
        name,
        format!("has shape {shape:?}, expected {expected}"),
    )
}
