//! [`LiveModel`]: the model and SAEs of an index, loaded for `/api/activate` and
//! `scopedex activate` (text → strongest features per token).
//!
//! The model comes from the manifest's `model.path`, each SAE from its `source_path` (an `--sae`
//! spec), attached under its manifest id. One forward captures every hook the requested SAEs
//! read. The BOS position gets no features when the index excluded BOS from its statistics, so
//! live and indexed activations are comparable.
use std::collections::BTreeSet;
use std::sync::Arc;

use candle_core::Device;
use scopedex_index::{load_saes, AttachedSae, SaeSpec};
use scopedex_model::{load_tokenizer, CapturePlan, Llama, ModelTokenizer};
use scopedex_store::{ContextFeaturesRecord, Manifest};

use crate::error::{ApiError, ApiResult};
use crate::tokens::{tokenizer_path, TokenTable};
use crate::views::{ActivatedToken, Activation, TokenFeature};

/// Longest text accepted, in characters (413 beyond).
pub const MAX_TEXT_CHARS: usize = 8192;
/// Tokens run through the model at most (BOS included); longer texts are cut.
pub const MAX_TOKENS: usize = 1024;
/// Largest `top_n`.
pub const MAX_TOP_N: usize = 64;
/// Default `top_n`.
pub const DEFAULT_TOP_N: usize = 5;

/// The model, tokenizer and SAEs of one index.
pub struct LiveModel {
    model: Llama,
    tokenizer: ModelTokenizer,
    tokens: Arc<TokenTable>,
    saes: Vec<AttachedSae>,
    exclude_bos: bool,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("saes", &self.sae_ids())
            .finish_non_exhaustive()
    }
}

impl LiveModel {
    /// Loads the model, tokenizer and every SAE of `manifest` on the CPU.
    pub fn load(manifest: &Manifest) -> scopedex_index::Result<Self> {
        let _span = tracing::info_span!("load_live_model", model = %manifest.model.path).entered();
        let model = Llama::load(std::path::Path::new(&manifest.model.path), &Device::Cpu)?;
        let tokenizer = load_tokenizer(&tokenizer_path(manifest))?;
        let mut saes = Vec::with_capacity(manifest.saes.len());
        for entry in &manifest.saes {
            let spec: SaeSpec = entry.source_path.parse()?;
            let mut loaded = load_saes(&[spec], model.config(), model.device())?;
            if loaded.len() != 1 || loaded[0].sae.d_sae() != entry.d_sae as usize {
                return Err(scopedex_index::Error::InvalidInput(format!(
                    "SAE {} at {:?} does not match the index (expected one SAE with d_sae {})",
                    entry.id, entry.source_path, entry.d_sae
                )));
            }
            let mut sae = loaded.remove(0);
            sae.id = entry.id.clone();
            saes.push(sae);
        }
        let tokens = Arc::new(TokenTable::from_tokenizer(&tokenizer));
        Ok(LiveModel {
            model,
            tokenizer,
            tokens,
            saes,
            exclude_bos: manifest.parameters.exclude_bos,
        })
    }

    /// Ids of the loaded SAEs.
    pub fn sae_ids(&self) -> Vec<&str> {
        self.saes.iter().map(|s| s.id.as_str()).collect()
    }

    /// Checks a request before any work: text length (413), `top_n` range and SAE ids (422).
    /// Returns the indices of the SAEs to run (all when `saes` is `None`).
    pub fn check(
        &self,
        text: &str,
        saes: Option<&[String]>,
        top_n: usize,
    ) -> ApiResult<Vec<usize>> {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(ApiError::too_large(
                "text_too_long",
                format!("text has {chars} characters; at most {MAX_TEXT_CHARS} are accepted"),
            ));
        }
        if top_n == 0 || top_n > MAX_TOP_N {
            return Err(ApiError::unprocessable(
                "invalid_top_n",
                format!("top_n must be between 1 and {MAX_TOP_N}, got {top_n}"),
            ));
        }
        match saes {
            None => Ok((0..self.saes.len()).collect()),
            Some(ids) => ids
                .iter()
                .map(|id| {
                    self.saes.iter().position(|s| &s.id == id).ok_or_else(|| {
                        ApiError::unprocessable(
                            "unknown_sae",
                            format!("unknown SAE {id:?} (loaded: {})", self.sae_ids().join(", ")),
                        )
                    })
                })
                .collect(),
        }
    }

    /// Runs the model and SAEs on `text` (cut to [`MAX_TOKENS`]); per token, the `top_n`
    /// strongest positive features of each SAE in `saes` order. Call [`LiveModel::check`]
    /// first (this repeats it).
    pub fn activate(
        &self,
        text: &str,
        saes: Option<&[String]>,
        top_n: usize,
    ) -> ApiResult<Activation> {
        let which = self.check(text, saes, top_n)?;
        let _span = tracing::debug_span!("activate", chars = text.len()).entered();
        let ids = self.tokenizer.encode_with_bos(text, MAX_TOKENS)?;
        let mut tokens: Vec<ActivatedToken> = ids
            .iter()
            .enumerate()
            .map(|(pos, &id)| ActivatedToken {
                pos,
                token_id: id,
                token: self.tokens.text(id),
                features: Vec::new(),
            })
            .collect();
        if ids.is_empty() || which.is_empty() {
            return Ok(Activation {
                tokens,
                similar: None,
            });
        }
        let hooks: BTreeSet<_> = which.iter().map(|&i| self.saes[i].hook_in).collect();
        let captured = self
            .model
            .forward_capture(&[&ids], &CapturePlan::new(hooks))?;
        let skip_bos = self.exclude_bos && self.tokenizer.bos_id.is_some_and(|b| ids[0] == b);
        for &i in &which {
            let sae = &self.saes[i];
            let rows = captured.valid_rows(sae.hook_in)?;
            let codes = sae.sae.encode(&rows).map_err(ApiError::internal)?;
            for (pos, tok) in tokens.iter_mut().enumerate() {
                if (skip_bos && pos == 0) || pos >= codes.n_rows() {
                    continue;
                }
                let (fs, vs) = codes.row(pos);
                let mut row: Vec<(u32, f32)> = fs
                    .iter()
                    .copied()
                    .zip(vs.iter().copied())
                    .filter(|&(_, v)| v > 0.0)
                    .collect();
                row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                tok.features
                    .extend(
                        row.into_iter()
                            .take(top_n)
                            .map(|(feature, act)| TokenFeature {
                                sae: sae.id.clone(),
                                feature,
                                act,
                            }),
                    );
            }
        }
        Ok(Activation {
            tokens,
            similar: None,
        })
    }

    /// Runs the model and the SAEs `which` (indices from [`LiveModel::check`]) on `text` and
    /// returns, per SAE, every active feature of the text as the indexer records a context's
    /// (`scopedex_index::context_features`): the input of "more like this" for free text.
    pub fn text_features(
        &self,
        text: &str,
        which: &[usize],
    ) -> ApiResult<Vec<(String, ContextFeaturesRecord)>> {
        let ids = self.tokenizer.encode_with_bos(text, MAX_TOKENS)?;
        if ids.is_empty() || which.is_empty() {
            return Ok(Vec::new());
        }
        let hooks: BTreeSet<_> = which.iter().map(|&i| self.saes[i].hook_in).collect();
        let captured = self
            .model
            .forward_capture(&[&ids], &CapturePlan::new(hooks))?;
        let skip_bos = self.exclude_bos && self.tokenizer.bos_id.is_some_and(|b| ids[0] == b);
        let mut out = Vec::with_capacity(which.len());
        for &i in which {
            let sae = &self.saes[i];
            let rows = captured.valid_rows(sae.hook_in)?;
            let codes = sae.sae.encode(&rows).map_err(ApiError::internal)?;
            let mut recs =
                scopedex_index::context_features(&[0], &[ids.as_slice()], &codes, skip_bos);
            out.push((sae.id.clone(), recs.remove(0)));
        }
        Ok(out)
    }
}
