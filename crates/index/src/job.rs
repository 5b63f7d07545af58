//! `scopedex index`: one run from model + SAEs + corpus to a published index directory.
//!
//! Flow: a reader thread streams contexts (tokenized in parallel) into a bounded channel; the
//! main thread batches them through [`process_batch`]; at the end the accumulators are finished
//! feature chunk by feature chunk into the [`IndexWriter`], which publishes atomically. The final
//! accumulator state is kept in the index (`state/`) so shards can be merged later, and a
//! checkpoint beside the output (`{out}.checkpoint/`) lets an interrupted run `--resume`.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use scopedex_corpus::{Context, ContextConfig, CorpusSpec};
use scopedex_model::{load_tokenizer, Backend, Config, Model};
use scopedex_sae::{Sae, SaeId};
use scopedex_store::{
    sha256_file, ActivationEntry, ActivationWriterOptions, ContextRecord, CorpusFile,
    IndexParameters, IndexWriter, IndexWriterOptions, Manifest, ModelInfo, PublishReport, SaeEntry,
    ShardInfo, TokenizerInfo, VocabRecord, ACTIVATION_MANTISSA_BITS_KEY,
};

use crate::accum::AccumConfig;
use crate::checkpoint::{Checkpoint, RunFingerprint, Spill};
use crate::error::{Error, Result};
use crate::finish::{finish_into, save_state};
use crate::pass::{
    accumulate_batch, encode_batch_fitting, AttachedSae, CrossPairs, EncodedBatch, PassState,
    StageTimes,
};
use crate::shard::Shard;

/// `PATH` (one SAE folder) or `PATH:ID,ID` (a Llama Scope repo folder and SAE ids), either
/// followed by `#NAME` to set the SAE's id by hand (one SAE only).
#[derive(Debug, Clone, PartialEq)]
pub struct SaeSpec {
    /// SAE folder or repo folder.
    pub path: PathBuf,
    /// Ids to take from a repo folder; empty for a single SAE folder.
    pub ids: Vec<SaeId>,
    /// The id to show instead of the one the SAE's files imply (`#NAME`).
    pub name: Option<String>,
}

impl std::str::FromStr for SaeSpec {
    type Err = Error;

    fn from_str(full: &str) -> Result<SaeSpec> {
        // `#NAME` last: an id set by hand.
        let (s, name) = match full.rsplit_once('#') {
            Some((spec, name)) => {
                let ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(Error::InvalidInput(format!(
                        "--sae {full}: the id after `#` must be letters, digits, `-`, `_` or `.`"
                    )));
                }
                (spec, Some(name.to_string()))
            }
            None => (full, None),
        };
        let mut spec = Self::parse_path(s)?;
        if name.is_some() && spec.ids.len() > 1 {
            return Err(Error::InvalidInput(format!(
                "--sae {full}: `#NAME` names one SAE, not {} ids",
                spec.ids.len()
            )));
        }
        spec.name = name;
        Ok(spec)
    }
}

impl SaeSpec {
    fn parse_path(s: &str) -> Result<SaeSpec> {
        // A `:` followed by ids; paths themselves may contain `:` only before the last one.
        if let Some((path, ids)) = s.rsplit_once(':') {
            if !ids.is_empty() && ids.starts_with('L') && !ids.contains('/') {
                let ids = ids
                    .split(',')
                    .map(|i| i.trim().parse::<SaeId>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::InvalidInput(format!("--sae {s}: {e}")))?;
                return Ok(SaeSpec {
                    path: PathBuf::from(path),
                    ids,
                    name: None,
                });
            }
        }
        Ok(SaeSpec {
            path: PathBuf::from(s),
            ids: Vec::new(),
            name: None,
        })
    }
}

/// Loads the SAEs of `specs` onto `device` and resolves their hooks against the model config
/// `model`. Ids must be unique.
pub fn load_saes(specs: &[SaeSpec], model: &Config, device: &Device) -> Result<Vec<AttachedSae>> {
    let device = device.clone();
    let mut out: Vec<AttachedSae> = Vec::new();
    for spec in specs {
        // Recorded absolute, so an index found from another directory still names its files.
        let abs = absolute(&spec.path);
        let loaded: Vec<(String, String, Sae)> = if spec.ids.is_empty() {
            let sae = Sae::load(&spec.path, &device)?;
            let id = match (&spec.name, sae.id()) {
                (Some(name), _) => name.clone(),
                (None, Some(id)) => id.to_string(),
                (None, None) => sae.name().to_string(),
            };
            let source = match &spec.name {
                Some(name) => format!("{}#{name}", abs.display()),
                None => abs.display().to_string(),
            };
            vec![(id, source, sae)]
        } else {
            spec.ids
                .iter()
                .map(|id| {
                    let sae = Sae::load_from_repo(&spec.path, id, &device)?;
                    Ok(match &spec.name {
                        Some(name) => (name.clone(), format!("{}:{id}#{name}", abs.display()), sae),
                        None => (id.to_string(), format!("{}:{id}", abs.display()), sae),
                    })
                })
                .collect::<Result<_>>()?
        };
        for (id, source, sae) in loaded {
            if out.iter().any(|s| s.id == id) {
                return Err(Error::InvalidInput(format!(
                    "SAE {id} is attached twice (from {})",
                    spec.path.display()
                )));
            }
            out.push(AttachedSae::new(id, source, sae, model)?);
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidInput("no SAE given (--sae PATH)".into()));
    }
    Ok(out)
}

/// Everything `scopedex index` needs.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// GGUF file or HF directory.
    pub model: PathBuf,
    /// SAEs to attach.
    pub saes: Vec<SaeSpec>,
    /// The corpus.
    pub corpus: CorpusSpec,
    /// Tokens per context window, BOS included.
    pub ctx_len: usize,
    /// Contexts per forward.
    pub batch_size: usize,
    /// Stop after this many corpus tokens (all shards together).
    pub max_tokens: Option<u64>,
    /// Accumulator settings.
    pub accum: AccumConfig,
    /// Cross-SAE co-occurrence pairs.
    pub cross_pairs: CrossPairs,
    /// Which slice of the contexts to index.
    pub shard: Shard,
    /// Also write the sparse activation log.
    pub keep_activations: bool,
    /// Mantissa bits kept in the activation log's values (7 = bf16 precision, 23 = exact).
    pub activation_mantissa_bits: u8,
    /// Logit effects kept per feature and sign.
    pub logit_top_n: usize,
    /// Output index directory.
    pub out: PathBuf,
    /// Continue from `{out}.checkpoint` when it matches this run.
    pub resume: bool,
    /// Write a checkpoint every this many batches (0: never).
    pub checkpoint_every: usize,
    /// Keep the accumulator state (`state/`) even in a single-pass run, so it can be merged.
    pub keep_state: bool,
    /// Where the model and the SAEs run.
    pub backend: Backend,
}

/// Progress events for a bar (the CLI owns the display).
pub trait Progress: Sync {
    /// `positions` token positions and `contexts` contexts done so far (this shard).
    fn advance(&self, positions: u64, contexts: u64);
    /// A phase started (e.g. "writing").
    fn phase(&self, name: &str);
}

/// What a run did.
#[derive(Debug)]
pub struct IndexReport {
    /// Publish details (paths, row counts, bytes).
    pub publish: PublishReport,
    /// Contexts of this shard.
    pub contexts: u64,
    /// Positions run through the model (BOS included).
    pub positions: u64,
    /// Seconds spent in the pass (excluding load and write).
    pub pass_seconds: f64,
    /// Where the pass's time went, stage by stage.
    pub stages: StageTimes,
    /// Seconds loading the model, tokenizer and SAEs.
    pub load_seconds: f64,
    /// Seconds after the pass: logit effects, final tables, RocksDB, tantivy, publish.
    pub finish_seconds: f64,
    /// Records skipped as bad input, with reasons (empty when none).
    pub skipped: String,
    /// Warnings for the user (e.g. mean L0 far from k).
    pub warnings: Vec<String>,
}

/// Blocks the forward must run for these SAEs (deepest hook + 1).
pub(crate) fn blocks_needed(saes: &[AttachedSae]) -> usize {
    saes.iter()
        .flat_map(|s| [s.hook_in, s.hook_out])
        .map(|h| h.layer() + 1)
        .max()
        .unwrap_or(0)
}

/// Runs one indexing job end to end and publishes the index at `opts.out`.
pub fn run_index(opts: &IndexOptions, progress: &dyn Progress) -> Result<IndexReport> {
    let load_started = Instant::now();
    // Before any work: a mistyped --out must not cost a pass, or the user's files.
    scopedex_store::check_replaceable(&opts.out)?;
    // The SAEs' hooks decide how many blocks to hold: check them against the model's config,
    // then load just the blocks they reach.
    let saes = load_saes(
        &opts.saes,
        &Model::read_config(&opts.model)?,
        opts.backend.device(),
    )?;
    let model = Model::load_blocks(&opts.model, &opts.backend, blocks_needed(&saes))?;
    let tokenizer = load_tokenizer(&opts.model)?;
    let manifest = build_manifest(opts, &model, &tokenizer, &saes)?;
    let fingerprint = RunFingerprint::of(&manifest, &opts.accum, opts.shard)?;
    let mut checkpoint = Checkpoint::at(&opts.out);

    let mut state = PassState::new(&saes, &opts.accum, opts.cross_pairs)?;
    let mut done_contexts = 0u64;
    let mut resumed_spills = Vec::new();
    if opts.resume {
        if let Some((s, n, spills)) = checkpoint.load(&fingerprint)? {
            tracing::info!(contexts = n, "resuming from checkpoint");
            state = s;
            done_contexts = n;
            resumed_spills = spills;
        }
    } else {
        checkpoint.remove()?;
    }
    let writer_options = IndexWriterOptions {
        activations: ActivationWriterOptions {
            mantissa_bits: opts.activation_mantissa_bits,
            ..Default::default()
        },
        // A shard's lists would rank only its own contexts, and the merge recomputes them.
        skip_similar_lists: opts.shard.count > 1,
        ..Default::default()
    };
    let mut writer = IndexWriter::with_options(&opts.out, manifest, writer_options)?;
    writer.write_vocab(&vocab_records(&tokenizer))?;
    // What the checkpointed contexts produced besides the state goes to the writer first.
    for spill in resumed_spills {
        write_spill(&mut writer, &saes, &spill)?;
    }
    let mut spill = Spill::new(saes.len());

    let cfg = ContextConfig {
        ctx_len: opts.ctx_len,
        bos_id: tokenizer.bos_id,
        max_tokens: opts.max_tokens,
    };
    let docs = opts.corpus.documents()?;
    let mut stream = scopedex_corpus::contexts(docs, Arc::new(tokenizer.tokenizer.clone()), cfg);
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Context>>(4);
    let shard = opts.shard;
    let batch_size = opts.batch_size.max(1);
    let started = Instant::now();
    // Batches are whole groups of `batch_size` consecutive context ids (see `shard`), so a
    // batch holds the same contexts whether the run is sharded or not.
    let reader = std::thread::spawn(move || -> Result<String> {
        let mut pending: Vec<Context> = Vec::with_capacity(batch_size);
        let mut pending_batch = None;
        for chunk in stream.by_ref() {
            for c in chunk? {
                if !shard.owns(c.context_id, batch_size) {
                    continue;
                }
                let b = Shard::batch_of(c.context_id, batch_size);
                if pending_batch != Some(b)
                    && !pending.is_empty()
                    && tx.send(std::mem::take(&mut pending)).is_err()
                {
                    return Ok(String::new());
                }
                pending_batch = Some(b);
                pending.push(c);
            }
        }
        if !pending.is_empty() {
            let _ = tx.send(pending);
        }
        let report = stream.skip_report();
        Ok(if report.is_empty() {
            String::new()
        } else {
            report.to_string()
        })
    });

    let load_seconds = load_started.elapsed().as_secs_f64();
    let mut stages = StageTimes::default();
    let mut batches = 0usize;
    let mut seen = 0u64; // contexts of this shard seen, resumed ones included
    let mut result: Result<()> = Ok(());
    // With a lookahead, batch i + 1's forward and encode run on their own thread while this one
    // accumulates batch i (`pending`); the state then trails the batches read by one.
    let lookahead = pipelined(&model);
    // Where an encoded batch goes (a macro: the sink borrows the pass's state mutably, only for
    // the moment it is used).
    macro_rules! sink {
        () => {
            BatchSink::new(
                &saes,
                &mut state,
                &mut writer,
                &mut spill,
                &mut stages,
                opts,
            )
        };
    }
    let mut pending: Option<(EncodedBatch, Vec<Context>)> = None;
    for batch in rx.iter() {
        let n_batch = batch.len() as u64;
        let step = || -> Result<()> {
            let records: Vec<ContextRecord> = batch.iter().map(context_record).collect();
            writer.write_contexts(&records)?;
            // Contexts before the checkpoint are re-written (cheap) but not re-run.
            let fresh: Vec<Context> = batch
                .into_iter()
                .enumerate()
                .filter(|(i, _)| seen + *i as u64 >= done_contexts)
                .map(|(_, c)| c)
                .collect();
            if fresh.is_empty() {
                return Ok(());
            }
            let ids: Vec<u64> = fresh.iter().map(|c| c.context_id).collect();
            let toks: Vec<&[u32]> = fresh.iter().map(|c| c.tokens.as_slice()).collect();
            let mut sink = sink!();
            let encoded = if lookahead {
                let (encoded, before) = std::thread::scope(|scope| {
                    let ahead = scope.spawn(|| encode_batch_fitting(&model, &saes, &ids, &toks));
                    let before = pending.take().map(|p| sink.add(p)).transpose();
                    let encoded = ahead
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e));
                    (encoded, before)
                });
                before?;
                encoded?
            } else {
                encode_batch_fitting(&model, &saes, &ids, &toks)?
            };
            drop(toks);
            if lookahead {
                pending = Some((encoded, fresh));
                Ok(())
            } else {
                sink.add((encoded, fresh))
            }
        };
        if let Err(e) = step() {
            result = Err(e);
            break;
        }
        seen += n_batch;
        batches += 1;
        progress.advance(state.positions, seen);
        if opts.checkpoint_every > 0 && batches % opts.checkpoint_every == 0 {
            // The state must hold every batch read before it is saved.
            if let Some(p) = pending.take() {
                sink!().add(p)?;
            }
            checkpoint.save(&fingerprint, &state, seen, &mut spill)?;
        }
    }
    if let (Ok(()), Some(p)) = (&result, pending.take()) {
        result = sink!().add(p);
    }
    drop(rx);
    let skipped = reader
        .join()
        .map_err(|_| Error::Mismatch("corpus reader thread panicked".into()))??;
    result?;
    if seen == 0 {
        return Err(Error::NothingIndexed(if skipped.is_empty() {
            "the corpus yielded no contexts (no text in it, or a shard that owns none: use \
             fewer shards)"
                .into()
        } else {
            format!("every corpus file was skipped:\n{skipped}")
        }));
    }
    let pass_seconds = started.elapsed().as_secs_f64();

    progress.phase("writing");
    let finish_started = Instant::now();
    let contexts = seen;
    let positions = state.positions;
    writer.manifest_mut().shards = vec![ShardInfo {
        index: opts.shard.index,
        count: opts.shard.count,
        contexts,
    }];
    // The accumulator state serves only a later merge: kept for the shards of a sharded run,
    // or on request (`--keep-state`); a single pass does without its ~30 % of the index.
    if opts.shard.count > 1 || opts.keep_state {
        save_state(writer.tmp_dir(), &state)?;
    }
    let warnings = finish_into(&mut writer, &model, &saes, state, opts.logit_top_n)?;
    let publish = writer.publish()?;
    checkpoint.remove()?;
    let finish_seconds = finish_started.elapsed().as_secs_f64();
    Ok(IndexReport {
        publish,
        contexts,
        positions,
        pass_seconds,
        stages,
        load_seconds,
        finish_seconds,
        skipped,
        warnings,
    })
}

/// The tokenizer's vocabulary as the index records it (`vocab.parquet`).
pub(crate) fn vocab_records(tokenizer: &scopedex_model::ModelTokenizer) -> Vec<VocabRecord> {
    tokenizer
        .vocabulary()
        .into_iter()
        .enumerate()
        .map(|(id, t)| VocabRecord {
            token_id: id as u32,
            piece: t.piece,
            text: t.text,
            bytes: t.bytes,
        })
        .collect()
}

/// Hands spilled per-context output of checkpointed contexts to the writer.
fn write_spill(writer: &mut IndexWriter, saes: &[AttachedSae], spill: &Spill) -> Result<()> {
    for (i, s) in saes.iter().enumerate() {
        if let Some(records) = spill.context_features.get(i) {
            writer.write_context_features(&s.id, records)?;
        }
        if let Some(entries) = spill.activations.get(i) {
            if !entries.is_empty() {
                writer.write_activations(&s.id, entries)?;
            }
        }
    }
    Ok(())
}

/// The manifest of a run (contexts are counted by the writer).
pub(crate) fn build_manifest(
    opts: &IndexOptions,
    model: &Model,
    tokenizer: &scopedex_model::ModelTokenizer,
    saes: &[AttachedSae],
) -> Result<Manifest> {
    let model_file = model_weights_file(&opts.model);
    let corpus = opts
        .corpus
        .resolve_files()?
        .into_iter()
        .map(|f| {
            Ok(CorpusFile {
                sha256: sha256_file(&f.path)?,
                bytes: std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0),
                path: f.path.display().to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let parameters = IndexParameters {
        top_k: opts.accum.top_k as u32,
        intervals: opts.accum.intervals as u32,
        samples_per_interval: opts.accum.samples_per_interval as u32,
        exclude_bos: opts.accum.exclude_bos,
        keep_activations: opts.keep_activations,
        max_tokens: opts.max_tokens,
        // Shards of one run must batch alike to equal a single pass (see `shard`).
        extra: [("batch_size".to_string(), serde_json::json!(opts.batch_size))]
            .into_iter()
            .chain(opts.keep_activations.then(|| {
                (
                    ACTIVATION_MANTISSA_BITS_KEY.to_string(),
                    serde_json::json!(opts.activation_mantissa_bits),
                )
            }))
            .collect(),
    };
    let sae_entries = saes
        .iter()
        .map(|s| SaeEntry {
            id: s.id.clone(),
            format: s.sae.format().as_str().to_string(),
            d_in: s.sae.d_in() as u32,
            d_sae: s.sae.d_sae() as u32,
            k: s.sae.top_k().map(|k| k as u32),
            hook_in: s.hook_in.to_string(),
            hook_out: s.hook_out.to_string(),
            source_path: s.source.clone(),
            source_sha256: s.sae.source_sha256().to_string(),
        })
        .collect();
    Ok(Manifest {
        model: ModelInfo {
            path: absolute(&opts.model).display().to_string(),
            id: model_id(&opts.model),
            sha256: sha256_file(&model_file)?,
            n_layers: model.config().n_layers as u32,
            d_model: model.config().d_model as u32,
        },
        tokenizer: TokenizerInfo {
            source: tokenizer_source(&absolute(&opts.model)),
            sha256: None,
            vocab_size: model.config().vocab_size as u32,
            bos_token_id: tokenizer.bos_id,
        },
        corpus,
        ctx_len: opts.ctx_len as u32,
        parameters,
        saes: sae_entries,
        ..Manifest::default()
    })
}

/// `path` made absolute and without `..` (resolved, so it stays valid when a directory it
/// passed through is removed); unchanged if that fails.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The file whose sha256 identifies a model: a GGUF itself, or an HF folder's
/// `model.safetensors` (or its shard index).
pub fn model_weights_file(model: &Path) -> PathBuf {
    if model.is_dir() {
        let single = model.join("model.safetensors");
        if single.is_file() {
            return single;
        }
        return model.join("model.safetensors.index.json");
    }
    model.to_path_buf()
}

fn model_id(model: &Path) -> String {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| model.display().to_string());
    name.strip_suffix(".gguf").unwrap_or(&name).to_string()
}

fn tokenizer_source(model: &Path) -> String {
    if model.is_dir() {
        model.join("tokenizer.json").display().to_string()
    } else {
        format!("gguf:{}", model.display())
    }
}

/// The store's record of a context.
/// Whether the pass looks one batch ahead: the next batch's forward and encode run while the
/// host accumulates the current one, so a GPU never waits for the accumulators. On the CPU both
/// would compete for the same cores, so batches run one after the other there.
/// `SCOPEDEX_PIPELINE=1` / `0` overrides (tests and measurements).
fn pipelined(model: &Model) -> bool {
    match std::env::var("SCOPEDEX_PIPELINE").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => !model.device().is_cpu(),
    }
}

/// Where an encoded batch goes: the accumulators, then the writer (and the checkpoint spill).
struct BatchSink<'a> {
    saes: &'a [AttachedSae],
    state: &'a mut PassState,
    writer: &'a mut IndexWriter,
    spill: &'a mut Spill,
    stages: &'a mut StageTimes,
    opts: &'a IndexOptions,
}

impl<'a> BatchSink<'a> {
    fn new(
        saes: &'a [AttachedSae],
        state: &'a mut PassState,
        writer: &'a mut IndexWriter,
        spill: &'a mut Spill,
        stages: &'a mut StageTimes,
        opts: &'a IndexOptions,
    ) -> Self {
        BatchSink {
            saes,
            state,
            writer,
            spill,
            stages,
            opts,
        }
    }

    fn add(&mut self, (encoded, contexts): (EncodedBatch, Vec<Context>)) -> Result<()> {
        let ids: Vec<u64> = contexts.iter().map(|c| c.context_id).collect();
        let toks: Vec<&[u32]> = contexts.iter().map(|c| c.tokens.as_slice()).collect();
        let out = accumulate_batch(self.saes, self.state, encoded, &ids, &toks)?;
        self.stages.add(&out.times);
        let write_started = Instant::now();
        for (i, records) in out.context_features.into_iter().enumerate() {
            self.writer
                .write_context_features(&self.saes[i].id, &records)?;
            if self.opts.checkpoint_every > 0 {
                self.spill.context_features[i].extend(records);
            }
        }
        if self.opts.keep_activations {
            for (i, codes) in out.codes.iter().enumerate() {
                let entries = activation_entries(&ids, &toks, codes);
                self.writer.write_activations(&self.saes[i].id, &entries)?;
                if self.opts.checkpoint_every > 0 {
                    self.spill.activations[i].extend(entries);
                }
            }
        }
        self.stages.write += write_started.elapsed().as_secs_f64();
        Ok(())
    }
}

pub(crate) fn context_record(c: &Context) -> ContextRecord {
    ContextRecord {
        context_id: c.context_id,
        doc_id: c.doc_id.clone(),
        tokens: c.tokens.clone(),
        token_starts: c.token_starts.clone(),
        token_ends: c.token_ends.clone(),
        text: c.text.clone(),
    }
}

/// The sparse activation log entries of one batch (rows = positions of the contexts in order).
fn activation_entries(
    ids: &[u64],
    tokens: &[&[u32]],
    codes: &scopedex_sae::SparseCodes,
) -> Vec<ActivationEntry> {
    let mut out = Vec::with_capacity(codes.nnz());
    let mut row = 0usize;
    for (&context_id, toks) in ids.iter().zip(tokens) {
        for pos in 0..toks.len() {
            let (fs, vs) = codes.row(row);
            out.extend(fs.iter().zip(vs).map(|(&feature, &value)| ActivationEntry {
                context_id,
                pos: pos as u16,
                feature,
                value,
            }));
            row += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sae_specs_parse_paths_ids_and_names() {
        let plain: SaeSpec = "/saes/L3R".parse().unwrap();
        assert_eq!((plain.ids.len(), plain.name), (0, None));
        let repo: SaeSpec = "/repo:L3R-8x,L4M-8x".parse().unwrap();
        assert_eq!(repo.path, PathBuf::from("/repo"));
        assert_eq!(repo.ids.len(), 2);
        let named: SaeSpec = "/gs/layer_12/width_16k/average_l0_82#L12R-16k-l0-82"
            .parse()
            .unwrap();
        assert_eq!(
            named.path,
            PathBuf::from("/gs/layer_12/width_16k/average_l0_82")
        );
        assert_eq!(named.name.as_deref(), Some("L12R-16k-l0-82"));
        let one: SaeSpec = "/repo:L3R-8x#mine".parse().unwrap();
        assert_eq!((one.ids.len(), one.name.as_deref()), (1, Some("mine")));
        for bad in ["/repo:L3R-8x,L4M-8x#x", "/a#", "/a#b c"] {
            assert!(bad.parse::<SaeSpec>().is_err(), "{bad}");
        }
    }
}
