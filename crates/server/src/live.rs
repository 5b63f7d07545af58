//! [`LiveModel`]: the model and SAEs of an index, loaded for `/api/activate` and
//! `scopedex activate` (text → strongest features per token).
//!
//! The model comes from the manifest's `model.path`, each SAE from its `source_path` (an `--sae`
//! spec), attached under its manifest id. One forward captures every hook the requested SAEs
//! read. The BOS position gets no features when the index excluded BOS from its statistics, so
//! live and indexed activations are comparable.
use std::collections::BTreeSet;
use std::sync::Arc;

use scopedex_index::{load_saes, AttachedSae, SaeSpec};
use scopedex_model::{load_tokenizer, Backend, CapturePlan, Model, ModelTokenizer};
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
/// SAEs one request runs at most (a longer `saes` list is 422; without one, the first this
/// many of the index).
pub const MAX_REQUEST_SAES: usize = 16;
/// Items of a request's `saes` list at most (duplicates included).
pub const MAX_SAE_LIST_ITEMS: usize = 64;
/// Features one answer lists at most (tokens × SAEs × `top_n`, ~50 bytes of JSON each): a
/// request that could exceed it is 413 before the model runs.
pub const MAX_ANSWER_FEATURES: usize = 131_072;

/// The model, tokenizer and SAEs of one index.
pub struct LiveModel {
    model: Model,
    tokenizer: ModelTokenizer,
    tokens: Arc<TokenTable>,
    saes: Vec<AttachedSae>,
    exclude_bos: bool,
    model_path: std::path::PathBuf,
    forced: bool,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("saes", &self.sae_ids())
            .finish_non_exhaustive()
    }
}

/// Where the live model comes from when the index's recorded path will not do, and where it
/// runs.
#[derive(Debug, Clone, Default)]
pub struct ModelOverride {
    /// The device and kernels the live model runs on (the CPU by default).
    pub backend: Backend,
    /// A copy of the index's model at another path (`--model`): checked against the sha256
    /// the manifest recorded.
    pub model: Option<std::path::PathBuf>,
    /// Use `model` even when its sha256 differs from the recorded one (`--force`); the
    /// mismatch is logged and shown in `/api/health`.
    pub force: bool,
}

/// Which model file to load for `manifest`: the override (checked by sha256 unless forced) or
/// the recorded path, which must exist. Returns the path and whether its hash was overridden.
fn model_path(
    manifest: &Manifest,
    over: &ModelOverride,
) -> scopedex_index::Result<(std::path::PathBuf, bool)> {
    let recorded = &manifest.model;
    let Some(path) = &over.model else {
        let path = std::path::PathBuf::from(&recorded.path);
        if !path.exists() {
            return Err(scopedex_index::Error::InvalidInput(format!(
                "the index's model {} is missing (the index was built elsewhere, or the file \
                 moved); pass --model PATH with a copy of it (sha256 {}). Queries that need no \
                 model still work",
                recorded.path, recorded.sha256
            )));
        }
        return Ok((path, false));
    };
    let sha = scopedex_store::sha256_file(scopedex_index::model_weights_file(path))?;
    if sha == recorded.sha256 {
        return Ok((path.clone(), false));
    }
    if !over.force {
        return Err(scopedex_index::Error::InvalidInput(format!(
            "--model {}: sha256 {sha} differs from the model the index was built with ({} \
             sha256 {}); its activations would not match the index. Pass --force to use it \
             anyway",
            path.display(),
            recorded.path,
            recorded.sha256
        )));
    }
    tracing::warn!(
        model = %path.display(),
        sha256 = %sha,
        recorded = %recorded.sha256,
        "--force: serving live activations from a model other than the index's"
    );
    Ok((path.clone(), true))
}

impl LiveModel {
    /// Loads the model, tokenizer and every SAE of `manifest` on the CPU, from the recorded
    /// paths.
    pub fn load(manifest: &Manifest) -> scopedex_index::Result<Self> {
        Self::load_with(manifest, &ModelOverride::default())
    }

    /// [`LiveModel::load`] with the model taken from `over` when given.
    pub fn load_with(manifest: &Manifest, over: &ModelOverride) -> scopedex_index::Result<Self> {
        let (model_path, forced) = model_path(manifest, over)?;
        let _span = tracing::info_span!("load_live_model", model = %model_path.display()).entered();
        let model = Model::load(&model_path, &over.backend)?;
        let tokenizer = if over.model.is_some() {
            load_tokenizer(&model_path)?
        } else {
            load_tokenizer(&tokenizer_path(manifest))?
        };
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
            model_path,
            forced,
        })
    }

    /// The model file loaded, and whether it was forced despite a sha256 mismatch.
    pub fn model_source(&self) -> (&std::path::Path, bool) {
        (&self.model_path, self.forced)
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
        let which: Vec<usize> = match saes {
            None => (0..self.saes.len().min(MAX_REQUEST_SAES)).collect(),
            Some(ids) if ids.len() > MAX_SAE_LIST_ITEMS => {
                return Err(ApiError::bad_request(
                    "too_many_saes",
                    format!(
                        "saes has {} items; at most {MAX_SAE_LIST_ITEMS} are accepted",
                        ids.len()
                    ),
                ))
            }
            Some(ids) => {
                // Duplicates run once: repeating an id must not multiply the work.
                let mut which = Vec::with_capacity(ids.len().min(MAX_REQUEST_SAES));
                for id in ids {
                    let i = self.saes.iter().position(|s| &s.id == id).ok_or_else(|| {
                        ApiError::not_found(
                            "unknown_sae",
                            format!("unknown SAE {id:?} (loaded: {})", self.sae_ids().join(", ")),
                        )
                    })?;
                    if !which.contains(&i) {
                        which.push(i);
                    }
                    if which.len() > MAX_REQUEST_SAES {
                        return Err(ApiError::bad_request(
                            "too_many_saes",
                            format!("at most {MAX_REQUEST_SAES} distinct SAEs per request"),
                        ));
                    }
                }
                which
            }
        };
        // Tokens are at most one per character plus BOS, and at most MAX_TOKENS.
        let tokens = (chars + 1).min(MAX_TOKENS);
        let features = tokens * which.len() * top_n;
        if features > MAX_ANSWER_FEATURES {
            return Err(ApiError::too_large(
                "answer_too_large",
                format!(
                    "up to {features} features in the answer ({tokens} tokens × {} SAEs × top_n \
                     {top_n}); at most {MAX_ANSWER_FEATURES}: send less text, fewer SAEs or a \
                     smaller top_n",
                    which.len()
                ),
            ));
        }
        Ok(which)
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
