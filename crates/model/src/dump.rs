//! Activations of a list of texts at chosen hooks, as `scopedex dump-activations` writes them.
//!
//! Each text is tokenized, BOS prepended (when the model has one), truncated to `ctx_len`
//! tokens, and run in batches; the output keeps only real tokens, in text order. The output
//! file (safetensors) holds `tokens` I64 `[T]`, `text_index` I64 `[T]` (index of the text in the
//! input list) and one F32 `[T, d_model]` tensor per hook, named by the hook.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::{CapturePlan, Error, HookPoint, Model, ModelTokenizer, Result};

/// Activations of many texts, padding excluded.
#[derive(Debug, Clone)]
pub struct Activations {
    /// Token ids, text after text: `[T]`.
    pub tokens: Vec<u32>,
    /// For each token, the index of its text in the input: `[T]`.
    pub text_index: Vec<u32>,
    /// One f32 `[T, d_model]` tensor per hook.
    pub hooks: BTreeMap<HookPoint, Tensor>,
}

/// Texts per forward batch.
const BATCH: usize = 16;

impl Activations {
    /// Tokenizes `texts` (BOS + text, truncated to `ctx_len`), runs them in batches and gathers
    /// the activations at `hooks`. Texts that yield no token are skipped.
    pub fn collect(
        model: &Model,
        tokenizer: &ModelTokenizer,
        texts: &[&str],
        hooks: &BTreeSet<HookPoint>,
        ctx_len: usize,
    ) -> Result<Activations> {
        if ctx_len == 0 {
            return Err(Error::BadInput("ctx_len must be > 0".into()));
        }
        if hooks.is_empty() {
            return Err(Error::BadInput("no hook requested".into()));
        }
        let plan = CapturePlan::new(hooks.iter().copied());
        plan.validate(model.config().n_layers)?;
        let mut seqs = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let ids = tokenizer.encode_with_bos(text, ctx_len)?;
            if !ids.is_empty() {
                seqs.push((i as u32, ids));
            }
        }
        let mut tokens = Vec::new();
        let mut text_index = Vec::new();
        let mut parts: BTreeMap<HookPoint, Vec<Tensor>> = BTreeMap::new();
        for chunk in seqs.chunks(BATCH) {
            let batch: Vec<&[u32]> = chunk.iter().map(|(_, s)| s.as_slice()).collect();
            let out = model.forward_capture(&batch, &plan)?;
            for h in hooks {
                let rows = out.valid_rows(*h)?.to_device(&Device::Cpu)?;
                parts.entry(*h).or_default().push(rows);
            }
            for (i, s) in chunk {
                tokens.extend_from_slice(s);
                text_index.extend(std::iter::repeat_n(*i, s.len()));
            }
        }
        let d = model.config().d_model;
        let hooks = hooks
            .iter()
            .map(|h| {
                let t = match parts.remove(h) {
                    Some(p) => Tensor::cat(&p, 0)?,
                    None => Tensor::zeros((0, d), candle_core::DType::F32, &Device::Cpu)?,
                };
                Ok((*h, t))
            })
            .collect::<Result<_>>()?;
        Ok(Activations {
            tokens,
            text_index,
            hooks,
        })
    }

    /// Writes the safetensors file described in the module doc.
    pub fn save(&self, path: &Path) -> Result<()> {
        let n = self.tokens.len();
        let as_i64 = |v: &[u32]| -> Result<Tensor> {
            Ok(Tensor::from_vec(
                v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(),
                n,
                &Device::Cpu,
            )?)
        };
        let mut map: HashMap<String, Tensor> = HashMap::new();
        map.insert("tokens".into(), as_i64(&self.tokens)?);
        map.insert("text_index".into(), as_i64(&self.text_index)?);
        for (h, t) in &self.hooks {
            map.insert(h.to_string(), t.clone());
        }
        candle_core::safetensors::save(&map, path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}
