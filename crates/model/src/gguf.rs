//! GGUF model files: metadata summary, the resolved [`Config`], and a weight source that
//! dequantizes to f32 at load.
//!
//! [`summarize`] describes a file cheaply (manifest, `scopedex info`) without reading tensors.
//! [`GgufSource`] maps HF tensor names to llama.cpp's (`blk.{i}.attn_q.weight`, ...) and undoes
//! llama.cpp's permutation of `attn_q`/`attn_k` rows (stored for interleaved-pair RoPE), so the
//! forward sees HF's layout and uses rotate-half RoPE. Every quantization candle can read
//! (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q8_K) is dequantized to f32 here.
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use crate::config::Config;
use crate::families::Family;
use crate::weights::WeightSource;
use crate::{Error, Result};

/// Shape facts about a GGUF model, read from its metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GgufSummary {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name` when present.
    pub name: Option<String>,
    /// Number of transformer blocks (`{arch}.block_count`).
    pub n_layers: usize,
    /// Width of the residual stream (`{arch}.embedding_length`).
    pub d_model: usize,
    /// Number of tokens in `tokenizer.ggml.tokens`.
    pub vocab_size: usize,
    /// `tokenizer.ggml.model`, e.g. `gpt2`.
    pub tokenizer_model: Option<String>,
    /// Number of tensors stored in the file.
    pub n_tensors: usize,
}

/// Opens a GGUF file and parses its header and metadata (no tensor data is read).
pub fn read_content(path: &Path) -> Result<Content> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    Content::read(&mut reader).map_err(|e| Error::BadGguf {
        path: path.to_path_buf(),
        detail: crate::error::candle_message(&e),
    })
}

/// Reads the summary of a GGUF model file.
pub fn summarize(path: &Path) -> Result<GgufSummary> {
    let content = read_content(path)?;
    let md = &content.metadata;
    let field = |key: &str| -> Result<&Value> {
        md.get(key).ok_or_else(|| Error::BadField {
            path: path.to_path_buf(),
            field: key.to_string(),
            detail: "is missing".into(),
        })
    };
    let bad = |key: &str, e: candle_core::Error| Error::BadField {
        path: path.to_path_buf(),
        field: key.to_string(),
        detail: crate::error::candle_message(&e),
    };
    let architecture = field("general.architecture")?
        .to_string()
        .map_err(|e| bad("general.architecture", e))?
        .clone();
    let as_usize = |key: String| -> Result<usize> {
        let v = field(&key)?;
        v.to_u64()
            .map(|x| x as usize)
            .or_else(|_| v.to_u32().map(|x| x as usize))
            .map_err(|e| bad(&key, e))
    };
    let n_layers = as_usize(format!("{architecture}.block_count"))?;
    let d_model = as_usize(format!("{architecture}.embedding_length"))?;
    let vocab_size = field("tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|e| bad("tokenizer.ggml.tokens", e))?
        .len();
    let opt_string = |key: &str| md.get(key).and_then(|v| v.to_string().ok()).cloned();
    Ok(GgufSummary {
        name: opt_string("general.name"),
        tokenizer_model: opt_string("tokenizer.ggml.model"),
        architecture,
        n_layers,
        d_model,
        vocab_size,
        n_tensors: content.tensor_infos.len(),
    })
}

/// Typed access to GGUF metadata, naming the file and key in errors.
pub(crate) struct Meta<'a> {
    pub(crate) path: &'a Path,
    pub(crate) content: &'a Content,
}

impl<'a> Meta<'a> {
    pub(crate) fn bad(&self, key: &str, detail: impl Into<String>) -> Error {
        Error::BadField {
            path: self.path.to_path_buf(),
            field: key.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<&'a Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.bad(key, "is missing"))
    }

    pub(crate) fn opt(&self, key: &str) -> Option<&'a Value> {
        self.content.metadata.get(key)
    }

    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        value_usize(self.get(key)?).ok_or_else(|| self.bad(key, "is not a non-negative integer"))
    }

    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => value_usize(v)
                .map(Some)
                .ok_or_else(|| self.bad(key, "is not a non-negative integer")),
        }
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => v
                .to_f32()
                .map(f64::from)
                .or_else(|_| v.to_f64())
                .map(Some)
                .map_err(|e| self.bad(key, crate::error::candle_message(&e))),
        }
    }

    pub(crate) fn string(&self, key: &str) -> Result<&'a str> {
        self.get(key)?
            .to_string()
            .map(String::as_str)
            .map_err(|e| self.bad(key, crate::error::candle_message(&e)))
    }
}

fn value_usize(v: &Value) -> Option<usize> {
    match v {
        Value::U8(x) => Some(*x as usize),
        Value::U16(x) => Some(*x as usize),
        Value::U32(x) => Some(*x as usize),
        Value::U64(x) => usize::try_from(*x).ok(),
        Value::I8(x) => usize::try_from(*x).ok(),
        Value::I16(x) => usize::try_from(*x).ok(),
        Value::I32(x) => usize::try_from(*x).ok(),
        Value::I64(x) => usize::try_from(*x).ok(),
        _ => None,
    }
}

/// Resolves the [`Config`] of a GGUF file by its family (`general.architecture`).
pub(crate) fn config_from_content(path: &Path, content: &Content) -> Result<Config> {
    check_tensor_sizes(path, content)?;
    let m = Meta { path, content };
    let arch = m.string("general.architecture")?;
    let family = Family::from_gguf_architecture(arch)
        .ok_or_else(|| Family::unknown(path, "architecture (general.architecture)", arch))?;
    let cfg = family.config_from_gguf(&m)?;
    cfg.validate(path)?;
    Ok(cfg)
}

/// The config from the keys every llama.cpp architecture shares (`{arch}.block_count`,
/// `{arch}.embedding_length`, ...) and the tensor table (vocabulary from `token_embd.weight`,
/// tied when `output.weight` is absent); a family adds or checks its own keys.
pub(crate) fn standard_config(m: &Meta, family: Family) -> Result<Config> {
    let (path, content) = (m.path, m.content);
    let arch = m.string("general.architecture")?;
    let key = |k: &str| format!("{arch}.{k}");
    let d_model = m.usize(&key("embedding_length"))?;
    let n_heads = m.usize(&key("attention.head_count"))?;
    if n_heads == 0 {
        return Err(m.bad(&key("attention.head_count"), "must be > 0"));
    }
    let n_kv_heads = m
        .opt_usize(&key("attention.head_count_kv"))?
        .unwrap_or(n_heads);
    let head_dim = m
        .opt_usize(&key("attention.key_length"))?
        .unwrap_or(d_model / n_heads);
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| Error::BadTensor {
            path: path.to_path_buf(),
            tensor: "token_embd.weight".into(),
            detail: "is missing".into(),
        })?;
    let vocab_size = match embd.shape.dims() {
        [v, _] => *v,
        other => {
            return Err(Error::BadTensor {
                path: path.to_path_buf(),
                tensor: "token_embd.weight".into(),
                detail: format!("has shape {other:?}, expected [vocab, d_model]"),
            })
        }
    };
    let tokenizer_id = |k: &str| -> Result<Option<u32>> {
        Ok(m.opt_usize(k)?.and_then(|x| u32::try_from(x).ok()))
    };
    Ok(Config {
        family,
        n_layers: m.usize(&key("block_count"))?,
        d_model,
        n_heads,
        n_kv_heads,
        head_dim,
        d_mlp: m.usize(&key("feed_forward_length"))?,
        vocab_size,
        rms_norm_eps: m
            .opt_f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5),
        rope_theta: m.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0) as f32,
        rope_scaling: None,
        rope_freq_factors: None,
        tied_embeddings: !content.tensor_infos.contains_key("output.weight"),
        max_position: m.opt_usize(&key("context_length"))?.unwrap_or(4096),
        bos_token_id: tokenizer_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: tokenizer_id("tokenizer.ggml.eos_token_id")?,
        ..Config::empty(family)
    })
}

/// Checks that every tensor's declared size fits in memory arithmetic (its element count and
/// its extent in the file), so absurd header values are an error naming the tensor, not an
/// overflow when a tensor is read.
fn check_tensor_sizes(path: &Path, content: &Content) -> Result<()> {
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    for (name, info) in &content.tensor_infos {
        let bad = |detail: String| Error::BadTensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            detail,
        };
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| bad(format!("shape {:?} overflows", info.shape.dims())))?;
        let block = info.ggml_dtype.block_size() as u64;
        let bytes = (elems / block.max(1))
            .checked_mul(info.ggml_dtype.type_size() as u64)
            .ok_or_else(|| bad(format!("shape {:?} overflows", info.shape.dims())))?;
        let end = (content.tensor_data_offset)
            .checked_add(info.offset)
            .and_then(|o| o.checked_add(bytes))
            .ok_or_else(|| bad(format!("offset {} overflows", info.offset)))?;
        if end > file_len {
            return Err(bad(format!(
                "declares {bytes} bytes at offset {} beyond the end of the file ({file_len} bytes)",
                info.offset
            )));
        }
    }
    Ok(())
}

/// Weights of a GGUF file, answered in HF names and orientation, dequantized to f32.
pub(crate) struct GgufSource {
    path: PathBuf,
    content: Content,
    reader: BufReader<File>,
    family: Family,
    n_heads: usize,
    n_kv_heads: usize,
}

impl GgufSource {
    /// Opens `path` and parses its header; `cfg` gives the head counts for un-permuting q/k.
    pub(crate) fn open(path: &Path) -> Result<(Self, Config)> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| Error::BadGguf {
            path: path.to_path_buf(),
            detail: crate::error::candle_message(&e),
        })?;
        let mut cfg = config_from_content(path, &content)?;
        let mut src = GgufSource {
            path: path.to_path_buf(),
            content,
            reader,
            family: cfg.family,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
        };
        if src.content.tensor_infos.contains_key("rope_freqs.weight") {
            let f = src.read("rope_freqs.weight", &Device::Cpu)?;
            let f = f.flatten_all()?.to_vec1::<f32>()?;
            cfg.rope_freq_factors = Some(f);
            cfg.validate(path)?;
        }
        Ok((src, cfg))
    }

    /// Reads and dequantizes one tensor by its GGUF name.
    fn read(&mut self, gguf_name: &str, device: &Device) -> Result<Tensor> {
        let q = self
            .content
            .tensor(&mut self.reader, gguf_name, &Device::Cpu)
            .map_err(|e| Error::BadTensor {
                path: self.path.clone(),
                tensor: gguf_name.to_string(),
                detail: crate::error::candle_message(&e),
            })?;
        let t = q.dequantize(&Device::Cpu).map_err(|e| Error::Unsupported {
            path: self.path.clone(),
            what: "quantization".into(),
            detail: format!("{gguf_name} is {:?}: {e}", q.dtype()),
        })?;
        Ok(t.to_dtype(DType::F32)?.to_device(device)?)
    }
}

/// The llama.cpp name of an HF tensor name in the naming most architectures share (Llama and
/// its relatives), or `None` if it has no GGUF counterpart.
pub(crate) fn standard_tensor_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, name) = rest.split_once('.')?;
    let short = match name {
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}"))
}

/// The llama.cpp name of a Gemma 2/3 HF tensor: its four block norms have their own names
/// (`post_attention_layernorm` is a post-norm there, not the pre-MLP norm).
pub(crate) fn gemma_tensor_name(hf: &str) -> Option<String> {
    let rest = hf.strip_prefix("model.layers.");
    if let Some((layer, name)) = rest.and_then(|r| r.split_once('.')) {
        let short = match name {
            "post_attention_layernorm.weight" => Some("post_attention_norm.weight"),
            "pre_feedforward_layernorm.weight" => Some("ffn_norm.weight"),
            "post_feedforward_layernorm.weight" => Some("post_ffw_norm.weight"),
            _ => None,
        };
        if let Some(short) = short {
            return Some(format!("blk.{layer}.{short}"));
        }
    }
    standard_tensor_name(hf)
}

/// Undoes llama.cpp's `permute` of q/k rows: GGUF row `(h, i, j)` of shape
/// `(n_head, head_dim/2, 2)` holds HF row `(h, j, i)`.
fn unpermute(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if n_head == 0 || rows % (2 * n_head) != 0 {
        return Err(candle_core::Error::Msg(format!(
            "{rows} rows cannot be split into {n_head} heads of even width"
        ))
        .into());
    }
    let hd = rows / n_head;
    Ok(w.reshape((n_head, hd / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

impl WeightSource for GgufSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn is_gguf(&self) -> bool {
        true
    }

    fn has(&self, name: &str) -> bool {
        self.family
            .gguf_tensor_name(name)
            .is_some_and(|g| self.content.tensor_infos.contains_key(&g))
    }

    fn load_raw(&mut self, name: &str, device: &Device) -> Result<Tensor> {
        let g = self
            .family
            .gguf_tensor_name(name)
            .ok_or_else(|| Error::BadTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
                detail: "has no GGUF counterpart".into(),
            })?;
        if !self.content.tensor_infos.contains_key(&g) {
            return Err(Error::BadTensor {
                path: self.path.clone(),
                tensor: g,
                detail: "is missing".into(),
            });
        }
        let t = self.read(&g, &Device::Cpu)?;
        let permuted = self.family.gguf_permutes_qk();
        let t = if permuted && name.ends_with("q_proj.weight") {
            unpermute(&t, self.n_heads)?
        } else if permuted && name.ends_with("k_proj.weight") {
            unpermute(&t, self.n_kv_heads)?
        } else {
            t
        };
        Ok(t.to_device(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.gguf");
        std::fs::write(&path, b"GGUF\x03\x00").unwrap();
        let err = summarize(&path).unwrap_err();
        assert!(err.is_user_error(), "a bad file is the user's input: {err}");
        let err = err.to_string();
        assert!(err.contains("broken.gguf"), "{err}");
        let runtime = Error::Candle(candle_core::Error::Msg("shape mismatch".into()));
        assert!(!runtime.is_user_error());
    }

    /// A GGUF (v3) with the given u64 metadata and one f32 tensor header `token_embd.weight`
    /// of `dims`, and no tensor data.
    fn gguf_with(path: &Path, meta: &[(&str, u64)], dims: &[u64]) {
        let mut b: Vec<u8> = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend((meta.len() as u64 + 1).to_le_bytes()); // key-value pairs
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend((s.len() as u64).to_le_bytes());
            b.extend(s.as_bytes());
        };
        string(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes()); // string
        string(&mut b, "llama");
        for (k, v) in meta {
            string(&mut b, k);
            b.extend(10u32.to_le_bytes()); // u64
            b.extend(v.to_le_bytes());
        }
        string(&mut b, "token_embd.weight");
        b.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(0u32.to_le_bytes()); // f32
        b.extend(0u64.to_le_bytes()); // offset
        while b.len() % 32 != 0 {
            b.push(0);
        }
        // Data for small tensors (f32 zeros), none for absurd ones.
        let elems = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if let Some(n) = elems.filter(|&n| n <= 1 << 16) {
            b.resize(b.len() + 4 * n as usize, 0);
        }
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn absurd_header_dimensions_are_an_error_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absurd.gguf");
        let huge = 1u64 << 62;
        let meta = [
            ("llama.embedding_length", 64),
            ("llama.attention.head_count", 4),
            ("llama.block_count", 2),
            ("llama.feed_forward_length", 128),
        ];
        // Tensor dimensions whose product overflows.
        gguf_with(&path, &meta, &[huge, huge]);
        let content = read_content(&path).unwrap();
        let err = config_from_content(&path, &content)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("token_embd.weight") && err.contains("overflows"),
            "{err}"
        );
        // A tensor that fits in arithmetic but not in the file.
        gguf_with(&path, &meta, &[64, 1 << 17]);
        let content = read_content(&path).unwrap();
        let err = config_from_content(&path, &content)
            .unwrap_err()
            .to_string();
        assert!(err.contains("beyond the end of the file"), "{err}");
        // Header values beyond any model.
        let meta = [
            ("llama.embedding_length", huge),
            ("llama.attention.head_count", 4),
            ("llama.block_count", 2),
            ("llama.feed_forward_length", 128),
        ];
        gguf_with(&path, &meta, &[64, 8]);
        let content = read_content(&path).unwrap();
        let err = config_from_content(&path, &content)
            .unwrap_err()
            .to_string();
        assert!(err.contains("beyond any real model"), "{err}");
    }

    #[test]
    fn errors_carry_no_backtrace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.gguf");
        std::fs::write(&path, b"GGUF\x03\x00\x00\x00\xff").unwrap();
        let err = summarize(&path).unwrap_err().to_string();
        assert!(!err.contains("backtrace"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = summarize(Path::new("/nonexistent/m.gguf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/m.gguf"), "{err}");
    }
}
