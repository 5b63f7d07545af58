//! The Llama Scope / OpenMOSS lm_saes layout: `hyperparams.json` + `checkpoints/final.safetensors`.
//!
//! Sources: OpenMOSS Language-Model-SAEs (`src/lm_saes/sae.py`, the `nn.Linear` version that
//! matches the published tensor names: `compute_norm_factor`, `encode`, `decode`,
//! `activation_function_factory`) and SAELens `get_llama_scope_config_from_hf` /
//! `llama_scope_sae_huggingface_loader` (`sae_lens/loading/pretrained_sae_loaders.py`), which
//! give the repo layout `fnlp/Llama3_1-8B-Base-LX{R,A,M,TC}-{8,32}x/Llama3_1-8B-Base-L{n}{POS}-{exp}x/`.
//!
//! Tensors (PyTorch `nn.Linear` orientation): `encoder.weight` [d_sae, d_model], `encoder.bias`
//! [d_sae], `decoder.weight` [d_model, d_sae], `decoder.bias` [d_model]; BF16, F16 or F32.
//!
//! Math (lm_saes, raw weights, `norm_activation = "dataset-wise"`):
//! `s_in = sqrt(d_model) / norm["in"]`, `s_out = sqrt(d_model) / norm["out"]`;
//! `x' = x · s_in` (− `decoder.bias` when `use_decoder_bias && apply_decoder_bias_to_pre_encoder`);
//! `h = x' @ encoder.weightᵀ + encoder.bias`; `gate = h · ‖decoder.weight[:, j]‖` when
//! `sparsity_include_decoder_norm` (else `h`); jumprelu keeps `h_j` where `gate_j > thr` (strict),
//! topk keeps the k largest gates then ReLU; `y = (a @ decoder.weightᵀ + decoder.bias) / s_out`.
//! SAELens uses only `norm["in"]` and is therefore wrong for transcoders (in ≠ out); we use both.
//!
//! Threshold units: the file's `jump_relu_threshold` is compared with `gate / s_in`, i.e. the gate
//! must exceed `thr · s_in`. That is how lm_saes' inference mode reads the release (it folds
//! `s_in` into `encoder.bias` and `decoder.weight` before gating) and how SAELens 6 does
//! (`threshold = thr · s_in` against its folded pre-activation), so a file we write gives the
//! same codes in both. Callers still record the mean L0 and warn when it is far from `top_k`
//! ([`crate::Sae::check_mean_l0`]).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::{Position, SaeId};
use crate::json::Fields;
use crate::params::{Activation, Resolved, SaeFormat, ThresholdKind};
use crate::weights::{first_non_finite, transpose_scaled, WeightsFile};

/// The config file of a Llama Scope SAE folder.
pub const HYPERPARAMS: &str = "hyperparams.json";
/// The weights file, relative to the SAE folder.
pub const WEIGHTS: &str = "checkpoints/final.safetensors";
/// lm_saes' own checkpoint name, accepted when `checkpoints/final.safetensors` is absent.
const WEIGHTS_ALT: &str = "sae_weights.safetensors";

/// The `dataset_average_activation_norm` pair: mean L2 norm of the input / output activations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DatasetNorm {
    /// Mean input norm.
    #[serde(rename = "in")]
    pub input: f32,
    /// Mean output (target) norm; differs from `input` for transcoders.
    #[serde(rename = "out")]
    pub output: f32,
}

/// The `hyperparams.json` fields this crate reads and writes (lm_saes `SAEConfig` subset).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlamaScopeHyperparams {
    /// Input / output width.
    pub d_model: usize,
    /// Number of features.
    pub d_sae: usize,
    /// `d_sae / d_model`.
    pub expansion_factor: u32,
    /// Hook read, e.g. `blocks.15.hook_resid_post`.
    pub hook_point_in: String,
    /// Hook reconstructed (= `hook_point_in` except for transcoders).
    pub hook_point_out: String,
    /// `"jumprelu"`, `"topk"` or `"relu"`.
    pub act_fn: String,
    /// JumpReLU threshold in units of `gate / s_in`, required for `"jumprelu"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jump_relu_threshold: Option<f32>,
    /// k, required for `"topk"`; the published JumpReLU files record the training k too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// `"dataset-wise"` (with `dataset_average_activation_norm`) or `"inference"` (no scaling).
    pub norm_activation: String,
    /// Required for `"dataset-wise"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_average_activation_norm: Option<DatasetNorm>,
    /// Gate by the decoder column norms.
    pub sparsity_include_decoder_norm: bool,
    /// The SAE has a decoder bias.
    pub use_decoder_bias: bool,
    /// Subtract the decoder bias from the (scaled) input before encoding.
    pub apply_decoder_bias_to_pre_encoder: bool,
}

/// The four tensors of a Llama Scope checkpoint (any float dtype; written as given).
#[derive(Debug, Clone)]
pub struct LlamaScopeTensors {
    /// `[d_sae, d_model]`.
    pub encoder_weight: Tensor,
    /// `[d_sae]`.
    pub encoder_bias: Tensor,
    /// `[d_model, d_sae]`.
    pub decoder_weight: Tensor,
    /// `[d_model]`.
    pub decoder_bias: Tensor,
}

impl LlamaScopeHyperparams {
    /// Reads and validates `hyperparams.json`; unknown fields are ignored, missing required
    /// ones are an error naming the field.
    pub fn read(path: &Path) -> Result<LlamaScopeHyperparams> {
        let f = Fields::read(path)?;
        let d_model = f.usize("d_model")?;
        let d_sae = f.usize("d_sae")?;
        let hook_point_in = f.str("hook_point_in")?;
        // lm_saes defaults hook_point_out to hook_point_in.
        let hook_point_out = f
            .opt_str("hook_point_out")?
            .unwrap_or(hook_point_in.clone());
        let act_fn = f.str("act_fn")?.to_ascii_lowercase();
        let norm_activation = f.str("norm_activation")?;
        let norm = match f.get("dataset_average_activation_norm") {
            None => None,
            Some(serde_json::Value::Object(m)) => {
                // The published files key the pair "in"/"out"; lm_saes' code keys it by hook name.
                let pick = |keys: &[&str]| {
                    keys.iter()
                        .find_map(|k| m.get(*k).and_then(|v| v.as_f64()))
                        .map(|v| v as f32)
                };
                let field = "dataset_average_activation_norm";
                let input = pick(&["in", hook_point_in.as_str()])
                    .ok_or_else(|| Error::missing(path, format!("{field}.in")))?;
                let output = pick(&["out", hook_point_out.as_str()])
                    .or((hook_point_in == hook_point_out).then_some(input))
                    .ok_or_else(|| Error::missing(path, format!("{field}.out")))?;
                Some(DatasetNorm { input, output })
            }
            Some(v) => {
                return Err(Error::invalid(
                    path,
                    "dataset_average_activation_norm",
                    format!("expected an object {{\"in\": .., \"out\": ..}}, found {v}"),
                ))
            }
        };
        let expansion_factor = match f.opt_usize("expansion_factor")? {
            Some(e) => e as u32,
            None if d_model > 0 && d_sae % d_model == 0 => (d_sae / d_model) as u32,
            None => 0,
        };
        let p = LlamaScopeHyperparams {
            d_model,
            d_sae,
            expansion_factor,
            hook_point_in,
            hook_point_out,
            act_fn,
            jump_relu_threshold: f.opt_f32("jump_relu_threshold")?,
            top_k: f.opt_usize("top_k")?,
            norm_activation,
            dataset_average_activation_norm: norm,
            sparsity_include_decoder_norm: f.bool("sparsity_include_decoder_norm")?,
            use_decoder_bias: f.bool("use_decoder_bias")?,
            apply_decoder_bias_to_pre_encoder: f.bool("apply_decoder_bias_to_pre_encoder")?,
        };
        p.validate(path)?;
        Ok(p)
    }

    /// Checks the cross-field rules; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.d_model == 0 {
            return Err(Error::invalid(path, "d_model", "must be positive"));
        }
        if self.d_sae == 0 {
            return Err(Error::invalid(path, "d_sae", "must be positive"));
        }
        if self.d_sae as u64 > u32::MAX as u64 {
            return Err(Error::invalid(path, "d_sae", "must fit in 32 bits"));
        }
        if self.expansion_factor as usize * self.d_model != self.d_sae
            && self.d_sae % self.d_model == 0
        {
            return Err(Error::invalid(
                path,
                "expansion_factor",
                format!(
                    "{} does not match d_sae / d_model = {} / {}",
                    self.expansion_factor, self.d_sae, self.d_model
                ),
            ));
        }
        self.activation(path)?;
        self.scales(path)?;
        Ok(())
    }

    /// The activation named by `act_fn`.
    pub fn activation(&self, path: &Path) -> Result<Activation> {
        match self.act_fn.as_str() {
            "jumprelu" => Ok(Activation::JumpRelu {
                threshold: ThresholdKind::Scalar(
                    self.jump_relu_threshold
                        .ok_or_else(|| Error::missing(path, "jump_relu_threshold"))?,
                ),
            }),
            "topk" => match self.top_k {
                Some(0) => Err(Error::invalid(path, "top_k", "must be positive")),
                Some(k) if k > self.d_sae => Err(Error::invalid(
                    path,
                    "top_k",
                    format!("= {k} exceeds d_sae = {}", self.d_sae),
                )),
                Some(k) => Ok(Activation::TopK { k }),
                None => Err(Error::missing(path, "top_k")),
            },
            "relu" => Ok(Activation::Relu),
            other => Err(Error::UnknownActivation {
                path: path.to_path_buf(),
                field: "act_fn".into(),
                value: other.into(),
                expected: "jumprelu, topk, relu",
            }),
        }
    }

    /// `(s_in, s_out)`.
    pub fn scales(&self, path: &Path) -> Result<(f32, f32)> {
        match self.norm_activation.as_str() {
            "dataset-wise" => {
                let n = self
                    .dataset_average_activation_norm
                    .ok_or_else(|| Error::missing(path, "dataset_average_activation_norm"))?;
                for (field, v) in [("in", n.input), ("out", n.output)] {
                    if !(v.is_finite() && v > 0.0) {
                        return Err(Error::invalid(
                            path,
                            format!("dataset_average_activation_norm.{field}"),
                            format!("must be a positive number, found {v}"),
                        ));
                    }
                }
                let root = (self.d_model as f64).sqrt();
                Ok((
                    (root / n.input as f64) as f32,
                    (root / n.output as f64) as f32,
                ))
            }
            "inference" => Ok((1.0, 1.0)),
            other => Err(Error::Unsupported {
                path: path.to_path_buf(),
                field: "norm_activation".into(),
                value: other.into(),
                reason: "only \"dataset-wise\" and \"inference\" have a per-SAE scale; per-token \
                         or per-batch norms cannot be inverted on decode"
                    .into(),
            }),
        }
    }

    /// The id implied by the hook points and widths, when they map to one.
    pub fn id(&self) -> Option<SaeId> {
        let (layer, position) = Position::from_hooks(&self.hook_point_in, &self.hook_point_out)?;
        (self.expansion_factor > 0).then_some(SaeId {
            layer,
            position,
            width: crate::id::Width::Expansion(self.expansion_factor),
        })
    }
}

/// The SAE folders of a Llama Scope repo folder (sorted by id). Sub-folders without
/// `hyperparams.json` are skipped; each id comes from the hyperparams' hooks, else from the
/// folder name (`…-L15R-8x`).
pub fn list_repo(repo: &Path) -> Result<Vec<(SaeId, PathBuf)>> {
    let entries = std::fs::read_dir(repo).map_err(|e| Error::io(repo, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let dir = entry.map_err(|e| Error::io(repo, e))?.path();
        let hp = dir.join(HYPERPARAMS);
        if !hp.is_file() {
            continue;
        }
        let from_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(id_from_folder_name);
        let id = match LlamaScopeHyperparams::read(&hp) {
            Ok(p) => p.id().or(from_name),
            Err(_) => from_name,
        };
        if let Some(id) = id {
            out.push((id, dir));
        }
    }
    out.sort();
    Ok(out)
}

/// Finds an id at the end of a folder name, e.g. `Llama3_1-8B-Base-L15R-8x` → `L15R-8x`.
fn id_from_folder_name(name: &str) -> Option<SaeId> {
    name.char_indices()
        .filter(|&(i, c)| c == 'L' && (i == 0 || name[..i].ends_with('-')))
        .find_map(|(i, _)| name[i..].parse().ok())
}

/// Loads and resolves one SAE folder.
pub(crate) fn load(dir: &Path) -> Result<Resolved> {
    let hp_path = dir.join(HYPERPARAMS);
    let p = LlamaScopeHyperparams::read(&hp_path)?;
    let mut weights_path = dir.join(WEIGHTS);
    if !weights_path.is_file() && dir.join(WEIGHTS_ALT).is_file() {
        weights_path = dir.join(WEIGHTS_ALT);
    }
    let file = WeightsFile::open(&weights_path)?;
    let st = file.tensors()?;
    let (m, s) = (p.d_model, p.d_sae);
    let encoder_weight = file.read(&st, "encoder.weight", &[s, m])?;
    let encoder_bias = file.read(&st, "encoder.bias", &[s])?;
    let decoder_weight = file.read(&st, "decoder.weight", &[m, s])?;
    let decoder_bias = if p.use_decoder_bias {
        file.read(&st, "decoder.bias", &[m])?
    } else {
        vec![0.0; m]
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    resolve(
        name,
        &p,
        &hp_path,
        file.sha256(),
        [encoder_weight, encoder_bias, decoder_weight, decoder_bias],
    )
}

/// Resolves hyperparams + in-memory tensors (no file).
pub(crate) fn resolve_in_memory(
    name: &str,
    p: &LlamaScopeHyperparams,
    t: &LlamaScopeTensors,
) -> Result<Resolved> {
    let origin = PathBuf::from(format!("<in-memory SAE {name}>"));
    p.validate(&origin)?;
    let (m, s) = (p.d_model, p.d_sae);
    let parts = [
        ("encoder.weight", &t.encoder_weight, vec![s, m]),
        ("encoder.bias", &t.encoder_bias, vec![s]),
        ("decoder.weight", &t.decoder_weight, vec![m, s]),
        ("decoder.bias", &t.decoder_bias, vec![m]),
    ];
    let mut host = Vec::with_capacity(4);
    for (tname, tensor, expected) in parts {
        host.push(tensor_to_host(&origin, tname, tensor, &expected)?);
    }
    let host: [Vec<f32>; 4] = host
        .try_into()
        .expect("exactly four tensors were pushed above");
    resolve(name.to_string(), p, &origin, String::new(), host)
}

fn tensor_to_host(path: &Path, name: &str, t: &Tensor, expected: &[usize]) -> Result<Vec<f32>> {
    if t.dims() != expected {
        return Err(Error::TensorShape {
            path: path.to_path_buf(),
            name: name.into(),
            expected: expected.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    if let Some((index, value)) = first_non_finite(&v) {
        return Err(Error::NonFinite {
            path: path.to_path_buf(),
            name: name.into(),
            index,
            value,
        });
    }
    Ok(v)
}

fn resolve(
    name: String,
    p: &LlamaScopeHyperparams,
    hp_path: &Path,
    sha256: String,
    [encoder_weight, encoder_bias, decoder_weight, decoder_bias]: [Vec<f32>; 4],
) -> Result<Resolved> {
    let (m, s) = (p.d_model, p.d_sae);
    let (s_in, s_out) = p.scales(hp_path)?;
    let activation = match p.activation(hp_path)? {
        // In gate units (see the module docs).
        Activation::JumpRelu {
            threshold: ThresholdKind::Scalar(t),
        } => Activation::JumpRelu {
            threshold: ThresholdKind::Scalar(t * s_in),
        },
        other => other,
    };
    let pre_bias =
        (p.use_decoder_bias && p.apply_decoder_bias_to_pre_encoder).then(|| decoder_bias.clone());
    let b_dec = if p.use_decoder_bias {
        decoder_bias
    } else {
        vec![0.0; m]
    };
    Ok(Resolved {
        name,
        id: p.id(),
        format: SaeFormat::LlamaScope,
        hook_in: p.hook_point_in.clone(),
        hook_out: p.hook_point_out.clone(),
        d_in: m,
        d_sae: s,
        d_out: m,
        activation,
        top_k: p.top_k,
        source_sha256: sha256,
        w_enc: transpose_scaled(&encoder_weight, s, m, 1.0),
        b_enc: encoder_bias,
        pre_bias,
        gate_by_decoder_norm: p.sparsity_include_decoder_norm,
        input_norm: crate::params::InputNorm::None,
        w_dec: transpose_scaled(&decoder_weight, m, s, 1.0),
        b_dec,
        s_in,
        s_out,
    })
}

/// Writes an SAE in the Llama Scope layout: `dir/hyperparams.json` and
/// `dir/checkpoints/final.safetensors` (tensors in their own dtype). Shapes are checked against
/// `params` first; `dir` is created if needed.
pub fn write_llama_scope(
    dir: &Path,
    params: &LlamaScopeHyperparams,
    tensors: &LlamaScopeTensors,
) -> Result<()> {
    let hp_path = dir.join(HYPERPARAMS);
    params.validate(&hp_path)?;
    let (m, s) = (params.d_model, params.d_sae);
    let weights_path = dir.join(WEIGHTS);
    let named = [
        ("encoder.weight", &tensors.encoder_weight, vec![s, m]),
        ("encoder.bias", &tensors.encoder_bias, vec![s]),
        ("decoder.weight", &tensors.decoder_weight, vec![m, s]),
        ("decoder.bias", &tensors.decoder_bias, vec![m]),
    ];
    let mut map = HashMap::new();
    for (name, t, expected) in named {
        if t.dims() != expected.as_slice() {
            return Err(Error::TensorShape {
                path: weights_path.clone(),
                name: name.into(),
                expected,
                found: t.dims().to_vec(),
            });
        }
        map.insert(name.to_string(), t.contiguous()?);
    }
    let ckpt_dir = dir.join("checkpoints");
    std::fs::create_dir_all(&ckpt_dir).map_err(|e| Error::io(&ckpt_dir, e))?;
    let json = serde_json::to_string_pretty(params).map_err(|source| Error::Json {
        path: hp_path.clone(),
        source,
    })?;
    std::fs::write(&hp_path, json + "\n").map_err(|e| Error::io(&hp_path, e))?;
    candle_core::safetensors::save(&map, &weights_path).map_err(|e| Error::Safetensors {
        path: weights_path.clone(),
        reason: e.to_string(),
    })?;
    // The safetensors writer creates its file 0600; checkpoints are meant to be shared (a
    // colleague's run on the same cluster reads them), so they get the mode of any new file.
    set_default_file_mode(&weights_path)
}

/// Gives `path` the mode a new file gets from `open(0666)` under this process's umask.
pub(crate) fn set_default_file_mode(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666 & !umask))
            .map_err(|e| Error::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_name_ids() {
        let id = |s: &str| id_from_folder_name(s).map(|i| i.to_string());
        assert_eq!(id("Llama3_1-8B-Base-L15R-8x").as_deref(), Some("L15R-8x"));
        assert_eq!(id("Llama3_1-8B-Base-L0TC-32x").as_deref(), Some("L0TC-32x"));
        assert_eq!(id("Llama3_1Base-L1A-32x").as_deref(), Some("L1A-32x"));
        assert_eq!(id("L3M-8x").as_deref(), Some("L3M-8x"));
        assert_eq!(id("Llama3_1-8B-Base"), None);
    }

    #[cfg(unix)]
    #[test]
    fn written_checkpoints_are_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::FabricateSpec {
            d_model: 8,
            d_sae: 16,
            k: 2,
            hook_in: "blocks.0.hook_resid_post".into(),
            hook_out: "blocks.0.hook_resid_post".into(),
            norm: (1.0, 1.0),
            seed: 1,
        };
        crate::fabricate_llama_scope(dir.path(), &spec).unwrap();
        let weights = dir.path().join("checkpoints").join("final.safetensors");
        let mode = std::fs::metadata(&weights).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o044,
            0o044,
            "mode {mode:o}: group and others can read"
        );
    }
}
