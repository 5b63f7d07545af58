//! Where and how the forward's tensor work runs, chosen once when a model is loaded.
//!
//! A layer calls these operations and has one forward; the backend decides how each runs:
//! - [`Backend::cpu`]: f32 on the CPU with scopedex's fused kernels ([`cpu`]): one parallel
//!   pass per element-wise step, attention on packed rows, projections that accumulate into
//!   the residual stream.
//! - any other device or dtype (or `SCOPEDEX_CPU_KERNELS=off`): candle's ops ([`candle_ops`]),
//!   with attention on a padded layout. In bf16 / f16 the weights and the residual stream are in
//!   that dtype, as in transformers; norms and the attention softmax run in f32 (transformers
//!   does the same: its RMSNorm upcasts, its eager softmax takes `dtype=float32`), because the
//!   residual stream's massive dimensions would swamp a bf16 sum of squares.
use candle_core::{DType, Device, Tensor};

pub(crate) mod candle_ops;
pub(crate) mod cpu;

pub(crate) use cpu::{Heads, ScoreRule};

use crate::layers::mlp::GateAct;

use crate::{Error, Result};

/// The device a model runs on, the dtype of its weights and activations, and the kernels it
/// runs with.
#[derive(Debug, Clone)]
pub struct Backend {
    device: Device,
    dtype: DType,
    kernels: Kernels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// [`cpu`]: CPU f32 only.
    FusedCpu,
    /// [`candle_ops`]: any device and dtype.
    Candle,
}

impl Default for Backend {
    fn default() -> Self {
        Backend::cpu()
    }
}

impl Backend {
    /// The CPU, f32, with the fused kernels (candle's ops when `SCOPEDEX_CPU_KERNELS=off`, for
    /// A/B measurements and for bisecting a numerical difference).
    pub fn cpu() -> Self {
        Backend::on(&Device::Cpu)
    }

    /// The f32 backend for `device`: the fused kernels on the CPU (unless turned off),
    /// candle's ops elsewhere.
    pub fn on(device: &Device) -> Self {
        let kernels = if device.is_cpu() && cpu::enabled() {
            Kernels::FusedCpu
        } else {
            Kernels::Candle
        };
        Backend {
            device: device.clone(),
            dtype: DType::F32,
            kernels,
        }
    }

    /// The backend for `device` in `dtype` (f32, bf16 or f16): as [`Backend::on`] for f32,
    /// candle's ops for the half types.
    pub fn new(device: &Device, dtype: DType) -> Result<Self> {
        if device.is_cuda() {
            // Beside a half-precision model, the f32 GEMMs left are the SAEs' (the encoder, and
            // decoder directions × unembedding for logit effects), kept in f32 for the bias add
            // and selection. Their activation side comes from bf16 / f16 rows, which TF32's
            // 10-bit mantissa holds exactly (unless an SAE normalises its input), so TF32
            // mostly rounds the SAE's weights, and it runs on the tensor cores at several
            // times f32's rate. An f32 run stays exact f32.
            let tf32 = dtype != DType::F32;
            candle_core::cuda::set_gemm_reduced_precision_f32(tf32);
            tracing::debug!(tf32, "CUDA f32 GEMMs");
        }
        match dtype {
            DType::F32 => Ok(Backend::on(device)),
            DType::BF16 | DType::F16 => Ok(Backend {
                device: device.clone(),
                dtype,
                kernels: Kernels::Candle,
            }),
            other => Err(Error::BadInput(format!(
                "dtype {other:?} cannot run a model; use f32, bf16 or f16"
            ))),
        }
    }

    /// candle's ops on `device`, even on the CPU (the reference the fused kernels are tested
    /// against).
    pub fn candle_ops(device: &Device) -> Self {
        Backend {
            device: device.clone(),
            dtype: DType::F32,
            kernels: Kernels::Candle,
        }
    }

    /// The device the weights and activations live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the weights and the residual stream (hooks and logits are handed out in
    /// f32 whatever it is).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A short description for logs and `scopedex info`.
    pub fn describe(&self) -> String {
        let device = match self.device.location() {
            candle_core::DeviceLocation::Cpu => "cpu".to_string(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
        };
        let dtype = format!("{:?}", self.dtype).to_lowercase();
        match self.kernels {
            Kernels::FusedCpu => format!("{device} {dtype} (fused kernels)"),
            Kernels::Candle => format!("{device} {dtype} (candle ops)"),
        }
    }

    fn fused(&self) -> bool {
        self.kernels == Kernels::FusedCpu
    }

    /// The attention inputs shared by every block of one forward over sequences of `lengths`:
    /// one RoPE table per entry of `ropes` (inverse frequencies) and what the sliding `windows`
    /// the layers use need.
    pub(crate) fn attention_context(
        &self,
        lengths: &[usize],
        ropes: &[Vec<f32>],
        windows: &[usize],
    ) -> Result<AttnCtx> {
        if self.fused() {
            let t = lengths.iter().copied().max().unwrap_or(0);
            return Ok(AttnCtx::Packed(Packed {
                lengths: lengths.to_vec(),
                ropes: ropes
                    .iter()
                    .map(|f| crate::layers::rope::cos_sin_vecs(f, t))
                    .collect(),
            }));
        }
        Ok(AttnCtx::Padded(candle_ops::Padded::new(
            lengths,
            ropes,
            windows,
            &self.device,
            self.dtype,
        )?))
    }

    /// Causal attention of the fused qkv rows `[rows, (nh + 2 nkv)·hd]` → `[rows, nh·hd]`,
    /// scored by `rule`, q and k rotated by the context's RoPE table `rope` (none: learned
    /// positions).
    pub(crate) fn attention(
        &self,
        qkv: &Tensor,
        ctx: &AttnCtx,
        rule: ScoreRule,
        rope: Option<usize>,
    ) -> Result<Tensor> {
        match ctx {
            AttnCtx::Packed(p) => {
                let rope = rope.map(|i| cpu::Rope {
                    cos: &p.ropes[i].0,
                    sin: &p.ropes[i].1,
                });
                cpu::causal_attention(qkv, &p.lengths, rule, rope)
            }
            AttnCtx::Padded(p) => candle_ops::padded_attention(qkv, p, rule, rope),
        }
    }

    /// RMSNorm with gain `w` of `x: [rows, d]`.
    pub(crate) fn rms_norm(&self, x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
        if self.fused() {
            return cpu::rms_norm(x, w, eps);
        }
        in_f32(x, |x| Ok(candle_nn::ops::rms_norm(x, w, eps)?))
    }

    /// `(h / rms(h), h / rms(h) · w)`.
    pub(crate) fn rms_norm_pair(
        &self,
        h: &Tensor,
        w: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor)> {
        if self.fused() {
            return cpu::rms_norm_pair(h, w, eps);
        }
        in_f32_pair(h, |h| candle_ops::rms_norm_pair(h, w, eps))
    }

    /// `(h, h / rms(h), h / rms(h) · w)` for `h = x + a`.
    pub(crate) fn add_rms_norm(
        &self,
        x: &Tensor,
        a: &Tensor,
        w: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        if self.fused() {
            return cpu::add_rms_norm(x, a, w, eps);
        }
        let h = (x + a)?;
        let (normalized, scaled) = in_f32_pair(&h, |h| candle_ops::rms_norm_pair(h, w, eps))?;
        Ok((h, normalized, scaled))
    }

    /// `residual + x · wt` (`residual` zero when `None`) for `x: [m, k]`, `wt: [k, n]`. The
    /// fused kernels accumulate into a copy of the residual, which spares a separate add.
    pub(crate) fn linear(
        &self,
        x: &Tensor,
        wt: &Tensor,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        if self.fused() {
            return cpu::linear(x, wt, residual);
        }
        // A BLAS sgemm on CPU f32 when one is installed (2x candle's kernel), candle otherwise.
        let y = scopedex_linalg::matmul(x, wt)?;
        Ok(match residual {
            Some(r) => (r + y)?,
            None => y,
        })
    }

    /// RMSNorm of every q head with gain `wq` and every k head with `wk` (each `[head_dim]`) in
    /// fused qkv rows; v unchanged.
    pub(crate) fn rms_norm_qk_heads(
        &self,
        qkv: &Tensor,
        heads: Heads,
        (wq, wk): (&Tensor, &Tensor),
        eps: f32,
    ) -> Result<Tensor> {
        if self.fused() {
            return cpu::rms_norm_qk_heads(qkv, heads, wq, wk, eps);
        }
        let Heads {
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        } = heads;
        let rows = qkv.dim(0)?;
        let part = |start: usize, n: usize, w: Option<&Tensor>| -> Result<Tensor> {
            let t = qkv.narrow(1, start * hd, n * hd)?;
            Ok(match w {
                Some(w) => in_f32(&t.contiguous()?.reshape((rows * n, hd))?, |t| {
                    Ok(candle_nn::ops::rms_norm(t, w, eps)?)
                })?
                .reshape((rows, n * hd))?,
                None => t,
            })
        };
        let q = part(0, nh, Some(wq))?;
        let k = part(nh, nkv, Some(wk))?;
        let v = part(nh + nkv, nkv, None)?;
        Ok(Tensor::cat(&[&q, &k, &v], 1)?)
    }

    /// `x + y`.
    pub(crate) fn add(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        if self.fused() {
            return cpu::add(x, y);
        }
        Ok((x + y)?)
    }

    /// A gated MLP's hidden layer: `act(x·Wg) · (x·Wu)` for `x: [rows, d]` and the fused
    /// `wt = [Wg | Wu]`, `[d, 2·d_mlp]` (SwiGLU: SiLU; GeGLU: tanh GELU).
    pub(crate) fn gated_hidden(
        &self,
        x: &Tensor,
        wt: &Tensor,
        d_mlp: usize,
        act: GateAct,
    ) -> Result<Tensor> {
        if self.fused() {
            return cpu::gated_hidden(x, wt, d_mlp, act);
        }
        let gu = self.linear(x, wt, None)?;
        let gate = gu.narrow(1, 0, d_mlp)?;
        let up = gu.narrow(1, d_mlp, d_mlp)?;
        let gate = match act {
            GateAct::Silu => candle_nn::ops::silu(&gate)?,
            GateAct::GeluTanh => gate.gelu()?,
        };
        Ok((gate * up)?)
    }

    /// GELU, tanh approximation (`gelu_new`).
    pub(crate) fn gelu_tanh(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused() {
            return cpu::gelu_tanh(x);
        }
        Ok(x.gelu()?)
    }

    /// LayerNorm of `x: [rows, d]`: `((x − mean) / sqrt(var + eps), that · w + b)`.
    pub(crate) fn layer_norm_pair(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor)> {
        in_f32_pair(x, |x| {
            let mean = x.mean_keepdim(1)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(1)?;
            let normalized = centred.broadcast_div(&(var + eps as f64)?.sqrt()?)?;
            let scaled = normalized.broadcast_mul(w)?.broadcast_add(b)?;
            Ok((normalized, scaled))
        })
    }

    /// `cap · tanh(x / cap)`.
    pub(crate) fn softcap(&self, x: &Tensor, cap: f32) -> Result<Tensor> {
        Ok(((x / cap as f64)?.tanh()? * cap as f64)?)
    }
}

/// `f(x)` computed in f32 and returned in `x`'s dtype (norm weights are kept in f32).
fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => f(x),
        dt => Ok(f(&x.to_dtype(DType::F32)?)?.to_dtype(dt)?),
    }
}

/// [`in_f32`] for a norm's `(normalized, scaled)` pair.
fn in_f32_pair(
    x: &Tensor,
    f: impl FnOnce(&Tensor) -> Result<(Tensor, Tensor)>,
) -> Result<(Tensor, Tensor)> {
    match x.dtype() {
        DType::F32 => f(x),
        dt => {
            let (a, b) = f(&x.to_dtype(DType::F32)?)?;
            Ok((a.to_dtype(dt)?, b.to_dtype(dt)?))
        }
    }
}

/// Per-forward attention inputs, in the layout the backend's attention reads.
pub(crate) enum AttnCtx {
    /// The fused CPU kernel's: packed rows.
    Packed(Packed),
    /// candle's: a padded `[B, T_max]` layout.
    Padded(candle_ops::Padded),
}

/// Inputs of the fused CPU attention.
pub(crate) struct Packed {
    /// Rows of each packed sequence.
    lengths: Vec<usize>,
    /// Per RoPE table: cos and sin, f32 `[max(lengths), head_dim / 2]`, row-major.
    ropes: Vec<(Vec<f32>, Vec<f32>)>,
}
