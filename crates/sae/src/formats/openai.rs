//! openai/sparse_autoencoder's autoencoders (GPT-2 small, `{location}_v5_32k/autoencoders/{L}.pt`
//! and `_v5_128k`; v1/v4 `{location}[_v4]/autoencoders/{L}.pt`): a torch `state_dict()` with
//! `pre_bias` [d], `encoder.weight` [n, d], `latent_bias` [n], `decoder.weight` [d, n] (plus
//! statistics buffers) and the non-tensor entries `"activation": "TopK"` and
//! `"activation_state_dict": {"k": 32, "postact_fn": "ReLU"}`.
//!
//! Encode (its `model.py`): for TopK autoencoders the input is normalised per token (mean
//! removed, divided by the unbiased std + 1e-5), then `pre = (x − pre_bias) encoderᵀ +
//! latent_bias`, the k largest kept, ReLU; ReLU autoencoders (v1/v4) take the raw input. Decode
//! `lat decoderᵀ + pre_bias` (in the normalised space).
//!
//! The file does not name its hook; the release folder does: `resid_post_mlp` →
//! `hook_resid_post`, `resid_delta_attn` → `hook_attn_out`, `resid_delta_mlp` → `hook_mlp_out`
//! (`resid_post_attn`, `mlp_post_act` read hooks scopedex does not capture and are refused).
use std::io::BufReader;
use std::path::Path;

use candle_core::pickle::{Object, Stack};

use crate::error::{Error, Result};
use crate::id::{Position, SaeId, Width};
use crate::params::{Activation, InputNorm, Resolved, SaeFormat};

/// Whether `path` is an OpenAI autoencoder file.
pub(crate) fn is_openai(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "pt")
}

/// Loads and resolves one `.pt` file.
pub(crate) fn load(path: &Path) -> Result<Resolved> {
    let (layer, position) = site(path)?;
    let tensors = candle_core::pickle::read_all(path).map_err(|e| Error::Unsupported {
        path: path.to_path_buf(),
        field: "(torch file)".into(),
        value: e.to_string(),
        reason: "not a readable torch state dict".into(),
    })?;
    let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| Error::MissingTensor {
                path: path.to_path_buf(),
                name: name.to_string(),
            })?;
        let data = t
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Error::invalid(path, name, e.to_string()))?;
        if let Some((i, v)) = crate::weights::first_non_finite(&data) {
            return Err(Error::invalid(
                path,
                name,
                format!("holds a non-finite value ({v} at {i})"),
            ));
        }
        Ok((t.dims().to_vec(), data))
    };
    let (_, pre_bias) = get("pre_bias")?;
    let (_, latent_bias) = get("latent_bias")?;
    let (d, n) = (pre_bias.len(), latent_bias.len());
    let (enc_shape, enc) = get("encoder.weight")?;
    let (dec_shape, dec) = get("decoder.weight")?;
    if enc_shape != [n, d] || dec_shape != [d, n] || d == 0 || n == 0 {
        return Err(Error::invalid(
            path,
            "encoder.weight",
            format!(
                "encoder {enc_shape:?} and decoder {dec_shape:?} do not match pre_bias [{d}] and \
                 latent_bias [{n}] (expected [{n}, {d}] and [{d}, {n}])"
            ),
        ));
    }
    let (activation, k) = activation(path)?;
    let (activation, top_k, input_norm) = match (activation.as_str(), k) {
        ("TopK", Some(k)) if k > 0 && k <= n => {
            (Activation::TopK { k }, Some(k), InputNorm::LayerNorm)
        }
        ("TopK", k) => {
            return Err(Error::invalid(
                path,
                "activation_state_dict.k",
                format!("= {k:?}, expected 1..={n}"),
            ))
        }
        ("ReLU", _) => (Activation::Relu, None, InputNorm::None),
        (other, _) => {
            return Err(Error::UnknownActivation {
                path: path.to_path_buf(),
                field: "activation".into(),
                value: other.into(),
                expected: "TopK, ReLU",
            })
        }
    };
    Ok(Resolved {
        name: name_of(path),
        id: Some(SaeId {
            layer,
            position,
            width: Width::of(n, d),
        }),
        format: SaeFormat::OpenAi,
        hook_in: position.hook_in(layer),
        hook_out: position.hook_out(layer),
        d_in: d,
        d_sae: n,
        d_out: d,
        activation,
        top_k,
        source_sha256: crate::weights::sha256_of(path)?,
        // W_enc = encoder.weightᵀ [d, n]; W_dec = decoder.weightᵀ [n, d].
        w_enc: crate::weights::transpose_scaled(&enc, n, d, 1.0),
        b_enc: latent_bias,
        pre_bias: Some(pre_bias.clone()),
        gate_by_decoder_norm: false,
        input_norm,
        w_dec: crate::weights::transpose_scaled(&dec, d, n, 1.0),
        b_dec: pre_bias,
        s_in: 1.0,
        s_out: 1.0,
    })
}

/// `resid_post_mlp_v5_32k/autoencoders/6.pt`.
fn name_of(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The layer (the file stem) and position (the release folder's location).
fn site(path: &Path) -> Result<(u32, Position)> {
    let unknown = |reason: String| Error::Repo {
        path: path.to_path_buf(),
        reason: format!(
            "{reason}: an OpenAI autoencoder's hook comes from its release path, e.g. \
             resid_post_mlp_v5_32k/autoencoders/6.pt"
        ),
    };
    let layer: u32 = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| unknown("the file name is not a layer number".into()))?;
    let release = path
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let location = ["_v5_32k", "_v5_128k", "_v4"]
        .iter()
        .find_map(|suffix| release.strip_suffix(suffix))
        .unwrap_or(&release);
    let position = match location {
        "resid_post_mlp" => Position::R,
        "resid_delta_attn" => Position::A,
        "resid_delta_mlp" => Position::M,
        "resid_post_attn" | "mlp_post_act" => {
            return Err(unknown(format!(
                "location {location} reads a hook scopedex does not capture \
                 (hook_resid_mid / mlp.hook_post)"
            )))
        }
        other => return Err(unknown(format!("unknown location {other:?}"))),
    };
    Ok((layer, position))
}

/// `"activation"` and `activation_state_dict.k` from the pickle (candle's tensor reader drops
/// non-tensor entries).
fn activation(path: &Path) -> Result<(String, Option<usize>)> {
    let bad = |reason: String| Error::invalid(path, "(pickle)", reason);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(format!("not a torch zip archive: {e}")))?;
    let pkl = (0..zip.len())
        .find(|&i| {
            zip.by_index(i)
                .ok()
                .and_then(|m| m.name().ok().map(|n| n.ends_with("data.pkl")))
                .unwrap_or(false)
        })
        .ok_or_else(|| bad("no data.pkl in the archive".into()))?;
    let member = zip
        .by_index(pkl)
        .map_err(|e| bad(format!("data.pkl: {e}")))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut BufReader::new(member))
        .map_err(|e| bad(format!("data.pkl: {e}")))?;
    let root = stack
        .finalize()
        .map_err(|e| bad(format!("data.pkl: {e}")))?;
    let entries = dict_entries(&root);
    let text = |o: &Object| match o {
        Object::Unicode(s) => Some(s.clone()),
        _ => None,
    };
    let activation = entries
        .iter()
        .find(|(k, _)| text(k).as_deref() == Some("activation"))
        .and_then(|(_, v)| text(v))
        .unwrap_or_else(|| "ReLU".into());
    let k = entries
        .iter()
        .find(|(k, _)| text(k).as_deref() == Some("activation_state_dict"))
        .and_then(|(_, v)| {
            dict_entries(v)
                .into_iter()
                .find(|(k, _)| text(k).as_deref() == Some("k"))
                .and_then(|(_, v)| match v {
                    Object::Int(k) => usize::try_from(k).ok(),
                    Object::Long(k) => usize::try_from(k).ok(),
                    _ => None,
                })
        });
    Ok((activation, k))
}

/// The entries of a dict, also when torch wrote it as `OrderedDict(...)` plus its items.
fn dict_entries(o: &Object) -> Vec<(Object, Object)> {
    match o {
        Object::Dict(d) => d.clone(),
        Object::Reduce { args, .. } | Object::Build { args, .. } => dict_entries(args),
        Object::Tuple(items) | Object::List(items) => items.iter().flat_map(dict_entries).collect(),
        _ => Vec::new(),
    }
}
