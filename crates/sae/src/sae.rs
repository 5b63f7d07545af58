//! The loaded SAE: resolved parameters, format detection, accessors and decode.
//!
//! Both on-disk formats are resolved into one set of `f32` parameters so that encoding has a
//! single code path (see `encode.rs` for the math and its sources):
//!
//! ```text
//! h    = (x * s_in - c) @ E + b_enc        E: [d_in, d_sae], c: pre-encoder bias (or 0)
//! gate = h * g                             g: decoder norms (Llama Scope with
//!                                             sparsity_include_decoder_norm) or 1
//! a    = select(gate, h)                   TopK / JumpReLU / ReLU; a_j is h_j or 0, always > 0
//! y    = (a @ D + b_dec) / s_out           D: [d_sae, d_out]
//! ```
//!
//! At load time `s_in` is folded into `E` and `c @ E` into `b_enc`, so the hot path is one GEMM
//! followed by a fused bias + gate + selection pass. `D` and `b_dec` are kept raw (unscaled) and
//! `s_out` is applied on decode, which keeps transcoders (`norm_in ≠ norm_out`) right.
use std::path::Path;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::codes::SparseCodes;
use crate::error::{Error, Result};
use crate::formats::{gemmascope, llamascope, openai, saelens};
use crate::id::SaeId;
use crate::params::{Activation, InputNorm, Resolved, SaeFormat, ThresholdKind};

/// A sparse autoencoder (or transcoder) ready to encode activations.
pub struct Sae {
    pub(crate) name: String,
    pub(crate) id: Option<SaeId>,
    pub(crate) format: SaeFormat,
    pub(crate) hook_in: String,
    pub(crate) hook_out: String,
    pub(crate) d_in: usize,
    pub(crate) d_sae: usize,
    pub(crate) d_out: usize,
    pub(crate) activation: Activation,
    pub(crate) top_k: Option<usize>,
    pub(crate) source_sha256: String,
    pub(crate) device: Device,
    /// `[d_in, d_sae]` f32 on `device`: `s_in · E`.
    pub(crate) w_enc: Tensor,
    /// `[d_sae]`: `b_enc − c @ E`.
    pub(crate) b_enc: Vec<f32>,
    /// `[d_sae]`: gate multipliers (decoder norms or ones).
    pub(crate) gate_scale: Vec<f32>,
    /// `[d_sae]`: JumpReLU thresholds, or zeros (ReLU, TopK floor).
    pub(crate) threshold: Vec<f32>,
    /// `[d_sae, d_out]`, raw.
    pub(crate) w_dec: Vec<f32>,
    /// `w_dec` on `device`, uploaded by the first device-side reconstruction.
    pub(crate) w_dec_device: OnceLock<Tensor>,
    /// `[d_out]`, raw.
    pub(crate) b_dec: Vec<f32>,
    pub(crate) s_out: f32,
    /// The per-token transform of inputs and reconstruction targets.
    pub(crate) input_norm: InputNorm,
    /// Rows per GEMM chunk (bounds the dense pre-activation buffer).
    pub(crate) chunk_rows: usize,
}

impl std::fmt::Debug for Sae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sae")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("format", &self.format)
            .field("hook_in", &self.hook_in)
            .field("hook_out", &self.hook_out)
            .field("d_in", &self.d_in)
            .field("d_sae", &self.d_sae)
            .field("d_out", &self.d_out)
            .field("activation", &self.activation_summary())
            .finish_non_exhaustive()
    }
}

/// Dense pre-activations per chunk are capped at this many `f32`s (32 MiB).
const CHUNK_ELEMS: usize = 8 << 20;
/// On a GPU, 256 MiB: 2,048 rows of a 32k-wide SAE per GEMM and selection, since each chunk
/// costs kernel launches and a copy to the host; selection's temporaries take a few times this.
const DEVICE_CHUNK_ELEMS: usize = 64 << 20;

impl Sae {
    /// Loads one SAE folder, Llama Scope (`hyperparams.json`) or SAELens (`cfg.json`),
    /// auto-detected. A Llama Scope repo folder holding exactly one SAE folder is accepted too;
    /// with several, use [`Sae::load_from_repo`].
    pub fn load(path: &Path, device: &Device) -> Result<Sae> {
        let resolved = if openai::is_openai(path) {
            openai::load(path)?
        } else if path.join(llamascope::HYPERPARAMS).is_file() {
            llamascope::load(path)?
        } else if path.join(saelens::CFG).is_file() {
            saelens::load(path)?
        } else if gemmascope::is_gemma_scope(path) {
            gemmascope::load(path)?
        } else if path.is_dir() {
            let found = llamascope::list_repo(path)?;
            match found.as_slice() {
                [] => {
                    return Err(Error::UnknownFormat {
                        path: path.to_path_buf(),
                    })
                }
                [(_, one)] => llamascope::load(one)?,
                many => {
                    return Err(Error::Repo {
                        path: path.to_path_buf(),
                        reason: format!(
                            "holds {} SAEs ({}); pick one by id",
                            many.len(),
                            list_ids(many)
                        ),
                    })
                }
            }
        } else if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        } else {
            return Err(Error::UnknownFormat {
                path: path.to_path_buf(),
            });
        };
        Sae::from_resolved(resolved, device)
    }

    /// Loads the SAE `id` from a Llama Scope repo folder (one sub-folder per layer, named
    /// `…-L{layer}{POS}-{exp}x` or identified by its hyperparams).
    pub fn load_from_repo(repo: &Path, id: &SaeId, device: &Device) -> Result<Sae> {
        let found = llamascope::list_repo(repo)?;
        match found.iter().find(|(i, _)| i == id) {
            Some((_, dir)) => Sae::from_resolved(llamascope::load(dir)?, device),
            None => Err(Error::Repo {
                path: repo.to_path_buf(),
                reason: format!("no SAE {id} (found: {})", list_ids(&found)),
            }),
        }
    }

    /// Builds an SAE from Llama Scope hyperparams and in-memory tensors (the trainer's and the
    /// benchmarks' entry point; no file is read, `source_sha256` is empty).
    pub fn from_llama_scope(
        name: &str,
        params: &llamascope::LlamaScopeHyperparams,
        tensors: &llamascope::LlamaScopeTensors,
        device: &Device,
    ) -> Result<Sae> {
        Sae::from_resolved(
            llamascope::resolve_in_memory(name, params, tensors)?,
            device,
        )
    }

    pub(crate) fn from_resolved(r: Resolved, device: &Device) -> Result<Sae> {
        let Resolved {
            name,
            id,
            format,
            hook_in,
            hook_out,
            d_in,
            d_sae,
            d_out,
            activation,
            top_k,
            source_sha256,
            mut w_enc,
            mut b_enc,
            pre_bias,
            gate_by_decoder_norm,
            input_norm,
            w_dec,
            b_dec,
            s_in,
            s_out,
        } = r;
        // b_enc −= c @ E (f64 accumulation), before E is scaled.
        if let Some(c) = &pre_bias {
            let mut acc = vec![0f64; d_sae];
            for (i, &ci) in c.iter().enumerate() {
                if ci != 0.0 {
                    let row = &w_enc[i * d_sae..(i + 1) * d_sae];
                    for (a, &w) in acc.iter_mut().zip(row) {
                        *a += ci as f64 * w as f64;
                    }
                }
            }
            for (b, a) in b_enc.iter_mut().zip(acc) {
                *b = (*b as f64 - a) as f32;
            }
        }
        if s_in != 1.0 {
            w_enc.par_iter_mut().for_each(|w| *w *= s_in);
        }
        let gate_scale = if gate_by_decoder_norm {
            w_dec
                .par_chunks(d_out.max(1))
                .map(|row| row.iter().map(|v| v * v).sum::<f32>().sqrt())
                .collect()
        } else {
            vec![1.0; d_sae]
        };
        let threshold = match &activation {
            Activation::JumpRelu {
                threshold: ThresholdKind::Scalar(t),
            } => vec![*t; d_sae],
            Activation::JumpRelu {
                threshold: ThresholdKind::PerFeature(t),
            } => t.clone(),
            Activation::TopK { .. } | Activation::Relu => vec![0.0; d_sae],
        };
        let w_enc = Tensor::from_vec(w_enc, (d_in, d_sae), device)?;
        let chunk_elems = if device.is_cuda() {
            DEVICE_CHUNK_ELEMS
        } else {
            CHUNK_ELEMS
        };
        let chunk_rows = (chunk_elems / d_sae.max(1)).clamp(1, 4096);
        tracing::debug!(%name, d_in, d_sae, d_out, ?format, "loaded SAE");
        Ok(Sae {
            name,
            id,
            format,
            hook_in,
            hook_out,
            d_in,
            d_sae,
            d_out,
            activation,
            top_k,
            source_sha256,
            device: device.clone(),
            w_enc,
            b_enc,
            gate_scale,
            threshold,
            w_dec,
            w_dec_device: OnceLock::new(),
            b_dec,
            s_out,
            input_norm,
            chunk_rows,
        })
    }

    /// The SAE's id, when its hooks and widths map to one (`L15R-8x`).
    pub fn id(&self) -> Option<&SaeId> {
        self.id.as_ref()
    }

    /// The SAE's name (its folder name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The on-disk layout it was loaded from.
    pub fn format(&self) -> SaeFormat {
        self.format
    }

    /// Input width (the model's hidden size).
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Number of features.
    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// Output (reconstruction) width.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// The hook the SAE reads.
    pub fn hook_in(&self) -> &str {
        &self.hook_in
    }

    /// The hook the SAE reconstructs.
    pub fn hook_out(&self) -> &str {
        &self.hook_out
    }

    /// The activation function.
    pub fn activation(&self) -> &Activation {
        &self.activation
    }

    /// The k the SAE was trained with (Llama Scope `top_k`, also for its JumpReLU conversions;
    /// SAELens topk `k`), i.e. the mean L0 a correct encode should come out near.
    pub fn top_k(&self) -> Option<usize> {
        self.top_k
    }

    /// Lowercase hex sha256 of the weights file (empty for in-memory SAEs).
    pub fn source_sha256(&self) -> &str {
        &self.source_sha256
    }

    /// Rows per GEMM chunk; encode never holds more than `chunk_rows × d_sae` dense values.
    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    /// Overrides the rows per GEMM chunk (at least 1).
    pub fn set_chunk_rows(&mut self, rows: usize) {
        self.chunk_rows = rows.max(1);
    }

    /// Checks that the SAE fits a model of hidden size `d_model` (input, and output width).
    pub fn check_d_model(&self, d_model: usize) -> Result<()> {
        for width in [self.d_in, self.d_out] {
            if width != d_model {
                return Err(Error::DModelMismatch {
                    sae: self.name.clone(),
                    sae_d_model: width,
                    model_d_model: d_model,
                });
            }
        }
        Ok(())
    }

    /// Checks the SAE reads `in_width`-wide activations at its input hook and writes
    /// `out_width`-wide ones at its output hook (`d_model` for residual-stream hooks,
    /// `n_heads · head_dim` for `attn.hook_z`).
    pub fn check_hook_widths(&self, in_width: usize, out_width: usize) -> Result<()> {
        for (side, hook, width, expected) in [
            ("input", &self.hook_in, self.d_in, in_width),
            ("output", &self.hook_out, self.d_out, out_width),
        ] {
            if width != expected {
                return Err(Error::HookWidthMismatch {
                    sae: self.name.clone(),
                    side,
                    hook: hook.clone(),
                    sae_width: width,
                    hook_width: expected,
                });
            }
        }
        Ok(())
    }

    /// A warning when `mean_l0` is outside 0.5×–2× the trained k (a sign of a wrong threshold
    /// convention or of activations from the wrong hook / scale); `None` when fine or unknown.
    pub fn check_mean_l0(&self, mean_l0: f64) -> Option<String> {
        let k = self.top_k? as f64;
        (!(0.5 * k..=2.0 * k).contains(&mean_l0)).then(|| {
            format!(
                "SAE {}: mean L0 {mean_l0:.1} is far from its trained k = {k} (expected 0.5×–2×); \
                 check the hook point, the activation scale and the threshold convention",
                self.name
            )
        })
    }

    fn activation_summary(&self) -> String {
        match &self.activation {
            Activation::TopK { k } => format!("topk(k={k})"),
            Activation::JumpRelu {
                threshold: ThresholdKind::Scalar(t),
            } => format!("jumprelu(threshold={t})"),
            Activation::JumpRelu { .. } => "jumprelu(per-feature thresholds)".into(),
            Activation::Relu => "relu".into(),
        }
    }

    /// Codes → `[N, d_out]` f32 reconstruction in the model's native scale:
    /// `(a @ W_dec + b_dec) / s_out`, computed sparsely.
    pub fn decode(&self, codes: &SparseCodes) -> Result<Tensor> {
        if codes.d_sae != self.d_sae {
            return Err(Error::Shape {
                what: "codes".into(),
                expected: format!("d_sae = {}", self.d_sae),
                found: vec![codes.n_rows(), codes.d_sae],
            });
        }
        let d_out = self.d_out;
        let n = codes.n_rows();
        let inv = 1.0 / self.s_out;
        let mut y = vec![0f32; n * d_out];
        y.par_chunks_mut(d_out.max(1))
            .enumerate()
            .try_for_each(|(r, out)| -> Result<()> {
                out.copy_from_slice(&self.b_dec);
                let (feats, vals) = codes.row(r);
                for (&f, &a) in feats.iter().zip(vals) {
                    let f = f as usize;
                    if f >= self.d_sae {
                        return Err(Error::Shape {
                            what: format!("codes row {r}"),
                            expected: format!("feature ids < {}", self.d_sae),
                            found: vec![f],
                        });
                    }
                    let row = &self.w_dec[f * d_out..(f + 1) * d_out];
                    for (o, &w) in out.iter_mut().zip(row) {
                        *o += a * w;
                    }
                }
                for o in out.iter_mut() {
                    *o *= inv;
                }
                Ok(())
            })?;
        Ok(Tensor::from_vec(y, (n, d_out), &self.device)?)
    }

    /// Feature directions in the output space, native scale: `[d_sae, d_out]` f32, row `f` =
    /// decoder column `f` / `s_out` (for logit effects `W_dec · W_U`).
    pub fn decoder_directions(&self) -> Result<Tensor> {
        let inv = 1.0 / self.s_out;
        let rows: Vec<f32> = self.w_dec.par_iter().map(|w| w * inv).collect();
        Ok(Tensor::from_vec(
            rows,
            (self.d_sae, self.d_out),
            &self.device,
        )?)
    }

    /// Whether the SAE's config says it was trained on TransformerLens' centred residual stream
    /// (SAELens `center_writing_weights`); its inputs and targets are then centred over d_model
    /// before use unless [`Sae::set_centre`] turned that off.
    pub fn trained_on_centred_residual(&self) -> bool {
        self.input_norm == InputNorm::Centre
    }

    /// The per-token transform applied to inputs and reconstruction targets.
    pub fn input_norm(&self) -> InputNorm {
        self.input_norm
    }

    /// Centre inputs and reconstruction targets over d_model (TransformerLens'
    /// `center_writing_weights`) or not. TransformerLens centres only LayerNorm models, so a
    /// caller serving another family turns it off.
    pub fn set_centre(&mut self, centre: bool) {
        if self.input_norm != InputNorm::LayerNorm {
            self.input_norm = if centre {
                InputNorm::Centre
            } else {
                InputNorm::None
            };
        }
    }

    /// A reconstruction target as the SAE sees it: `[N, d_out]` f32 on the SAE's device,
    /// centred over d_model when the SAE reads the centred residual stream.
    pub fn prepare_target(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.elem_count() / self.d_out.max(1);
        let x = x
            .reshape((n, self.d_out))?
            .to_dtype(DType::F32)?
            .to_device(&self.device)?;
        self.normalize(x)
    }

    /// [`InputNorm`] of `[N, d]` rows.
    fn normalize(&self, x: Tensor) -> Result<Tensor> {
        Ok(match self.input_norm {
            InputNorm::None => x,
            InputNorm::Centre => x.broadcast_sub(&x.mean_keepdim(1)?)?,
            InputNorm::LayerNorm => {
                let d = x.dim(1)?;
                let centred = x.broadcast_sub(&x.mean_keepdim(1)?)?;
                let var = (centred.sqr()?.sum_keepdim(1)? / (d.max(2) - 1) as f64)?;
                centred.broadcast_div(&(var.sqrt()? + 1e-5)?)?
            }
        })
    }

    /// The input as a contiguous `[N, d_in]` f32 tensor on the SAE's device, normalised as
    /// [`InputNorm`] says.
    pub(crate) fn prepare_input(&self, x: &Tensor) -> Result<Tensor> {
        self.normalize(self.input_rows(x)?)
    }

    /// The input as a contiguous `[N, d_in]` f32 tensor on the SAE's device, as given (what
    /// [`Sae::encode`] accepts; it normalises).
    pub(crate) fn input_rows(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let ok = dims.len() >= 2 && dims[dims.len() - 1] == self.d_in;
        if !ok {
            return Err(Error::Shape {
                what: format!("input of SAE {}", self.name),
                expected: format!("[N, {}] (or [.., {}])", self.d_in, self.d_in),
                found: dims.to_vec(),
            });
        }
        let n: usize = dims[..dims.len() - 1].iter().product();
        Ok(x.reshape((n, self.d_in))?
            .to_dtype(DType::F32)?
            .to_device(&self.device)?)
    }
}

fn list_ids(found: &[(SaeId, std::path::PathBuf)]) -> String {
    if found.is_empty() {
        return "none".into();
    }
    found
        .iter()
        .map(|(i, _)| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
