//! [`IndexWriter`]: streams an index into a temporary directory and publishes it atomically.
//!
//! Usage: [`IndexWriter::create`] with the manifest (SAEs known up front), any number of
//! `write_*` calls in any interleaving (contexts in increasing `context_id` order), then
//! [`IndexWriter::publish`], which closes the Parquet files, builds `rocksdb/` and `tantivy/`
//! from them, writes `manifest.json` and swaps the directory into place (see
//! [`crate::publish`]). Dropping the writer without publishing deletes the temporary
//! directory; a crash leaves it behind for the next writer's [`crate::recover`] to remove.
//! Either way the previously published index is untouched.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::IndexLayout;
use crate::manifest::Manifest;
use crate::parquet::{ActivationWriter, ActivationWriterOptions, TableWriter};
use crate::records::{
    ActivationEntry, ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleRecord,
    FeatureRecord, NeighbourRecord, SaeSummary, VocabRecord,
};
use crate::{fsutil, publish, rocks, similar, text};

/// Settings of an [`IndexWriter`].
#[derive(Debug, Clone, Default)]
pub struct IndexWriterOptions {
    /// Settings of the activation log writers (one per SAE, created on first use).
    pub activations: ActivationWriterOptions,
    /// Keep the temporary directory when the writer is dropped without publishing (for
    /// debugging, or for a caller that resumes into it itself). Default: delete it.
    pub keep_tmp_on_drop: bool,
    /// Leave out the precomputed "more like this" lists (a shard of a sharded run: the merge
    /// computes them once over every context; a store without them answers live). Default:
    /// build them.
    pub skip_similar_lists: bool,
    /// Test hook: publish with two renames even where an atomic exchange is available.
    #[doc(hidden)]
    pub force_rename_fallback: bool,
}

/// What [`IndexWriter::publish`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishReport {
    /// The published index directory.
    pub path: PathBuf,
    /// Contexts written.
    pub contexts: u64,
    /// Per SAE: rows of features, examples and co-occurrence, and activation log entries.
    pub saes: BTreeMap<String, SaeCounts>,
    /// Bytes of all Parquet files (activation logs included).
    pub parquet_bytes: u64,
}

/// Row counts of one SAE's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SaeCounts {
    /// Rows of `features.parquet`.
    pub features: u64,
    /// Rows of `examples.parquet`.
    pub examples: u64,
    /// Rows of `cooccurrence.parquet`.
    pub cooccurrence: u64,
    /// Rows of `context_features.parquet`.
    pub context_features: u64,
    /// Entries of the activation log (0 when not kept).
    pub activations: u64,
    /// Bytes of the activation log.
    pub activation_bytes: u64,
}

#[derive(Default)]
struct SaeTables {
    d_sae: u32,
    features: Option<TableWriter<FeatureRecord>>,
    examples: Option<TableWriter<ExampleRecord>>,
    cooc: Option<TableWriter<CooccurrenceRecord>>,
    neighbours: Option<TableWriter<NeighbourRecord>>,
    context_features: Option<TableWriter<ContextFeaturesRecord>>,
    last_context_features: Option<u64>,
    summary: Option<SaeSummary>,
    activations: Option<ActivationWriter>,
}

/// Writes one index directory; see the module docs.
pub struct IndexWriter {
    out: PathBuf,
    tmp: IndexLayout,
    manifest: Manifest,
    options: IndexWriterOptions,
    contexts: Option<TableWriter<ContextRecord>>,
    last_context: Option<u64>,
    vocab: Option<TableWriter<VocabRecord>>,
    saes: BTreeMap<String, SaeTables>,
    finished: bool,
}

fn open_lazily<T: crate::parquet::Table>(
    slot: &mut Option<TableWriter<T>>,
    path: PathBuf,
) -> Result<&mut TableWriter<T>> {
    if slot.is_none() {
        *slot = Some(TableWriter::create(path)?);
    }
    // Just filled above.
    Ok(slot.as_mut().expect("writer slot was just filled"))
}

impl IndexWriter {
    /// Starts an index that will be published at `out`, with default options.
    pub fn create(out: impl AsRef<Path>, manifest: Manifest) -> Result<Self> {
        Self::with_options(out, manifest, IndexWriterOptions::default())
    }

    /// Starts an index that will be published at `out`. Validates the manifest, repairs what an
    /// earlier crash may have left around `out` ([`crate::recover`]) and creates the temporary
    /// directory `{out}.tmp-{pid}-{n}`.
    pub fn with_options(
        out: impl AsRef<Path>,
        manifest: Manifest,
        options: IndexWriterOptions,
    ) -> Result<Self> {
        let out = out.as_ref().to_path_buf();
        manifest.validate()?;
        publish::check_replaceable(&out)?;
        publish::recover(&out)?;
        let tmp = IndexLayout::new(publish::tmp_path(&out)?);
        fsutil::create_dir_all(tmp.root())?;
        let mut saes = BTreeMap::new();
        for sae in &manifest.saes {
            fsutil::create_dir_all(&tmp.sae_dir(&sae.id))?;
            saes.insert(
                sae.id.clone(),
                SaeTables {
                    d_sae: sae.d_sae,
                    ..Default::default()
                },
            );
        }
        tracing::debug!(tmp = %tmp.root().display(), out = %out.display(), "index writer created");
        Ok(IndexWriter {
            out,
            tmp,
            manifest,
            options,
            contexts: None,
            vocab: None,
            last_context: None,
            saes,
            finished: false,
        })
    }

    /// The temporary directory being written.
    pub fn tmp_dir(&self) -> &Path {
        self.tmp.root()
    }

    /// The manifest that will be published (the writer fills in `contexts`).
    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    fn sae(&mut self, sae: &str) -> Result<&mut SaeTables> {
        if !self.saes.contains_key(sae) {
            return Err(self.manifest.sae(sae).err().unwrap_or_else(|| {
                Error::InvalidInput(format!(
                    "SAE {sae:?} was added to the manifest after create"
                ))
            }));
        }
        Ok(self.saes.get_mut(sae).expect("presence checked above"))
    }

    fn check_feature(sae: &str, d_sae: u32, feature: u32) -> Result<()> {
        if feature < d_sae {
            Ok(())
        } else {
            Err(Error::FeatureOutOfRange {
                sae: sae.to_string(),
                feature,
                d_sae,
            })
        }
    }

    /// Appends contexts; ids must be strictly increasing across calls, and each context's
    /// `tokens`, `token_starts` and `token_ends` of equal length.
    pub fn write_contexts(&mut self, batch: &[ContextRecord]) -> Result<()> {
        for c in batch {
            if self.last_context.is_some_and(|last| c.context_id <= last) {
                return Err(Error::InvalidInput(format!(
                    "context {} written after context {:?}: ids must be strictly increasing",
                    c.context_id, self.last_context
                )));
            }
            if c.token_starts.len() != c.tokens.len() || c.token_ends.len() != c.tokens.len() {
                return Err(Error::InvalidInput(format!(
                    "context {}: {} tokens, {} starts, {} ends",
                    c.context_id,
                    c.tokens.len(),
                    c.token_starts.len(),
                    c.token_ends.len()
                )));
            }
            self.last_context = Some(c.context_id);
        }
        open_lazily(&mut self.contexts, self.tmp.contexts())?.write(batch)
    }

    /// Writes the vocabulary that made the index's token ids (`vocab.parquet`), all of it in
    /// one call: ids must be `0..n` in order. An index written without one renders tokens
    /// through the model's tokenizer, when it is at hand.
    pub fn write_vocab(&mut self, vocab: &[VocabRecord]) -> Result<()> {
        if self.vocab.is_some() {
            return Err(Error::InvalidInput(
                "the vocabulary was already written".into(),
            ));
        }
        check_vocab(vocab, "vocabulary")?;
        open_lazily(&mut self.vocab, self.tmp.vocab())?.write(vocab)
    }

    /// Appends feature statistics of `sae` (any order; one row per feature).
    pub fn write_features(&mut self, sae: &str, batch: &[FeatureRecord]) -> Result<()> {
        let path = self.tmp.features(sae);
        let t = self.sae(sae)?;
        for r in batch {
            Self::check_feature(sae, t.d_sae, r.feature)?;
        }
        open_lazily(&mut t.features, path)?.write(batch)
    }

    /// Appends examples of `sae` (any order; `(feature, kind, rank)` unique).
    pub fn write_examples(&mut self, sae: &str, batch: &[ExampleRecord]) -> Result<()> {
        let path = self.tmp.examples(sae);
        let t = self.sae(sae)?;
        for r in batch {
            Self::check_feature(sae, t.d_sae, r.feature)?;
            if rocks::kind_code(r.kind).is_none() {
                return Err(Error::InvalidInput(
                    "interval index 65535 is not supported".into(),
                ));
            }
        }
        open_lazily(&mut t.examples, path)?.write(batch)
    }

    /// Appends co-occurrence partners of `sae`'s features. Rows of one feature should be
    /// consecutive (they may be split across calls); `other_sae` must be in the manifest.
    pub fn write_cooccurrence(&mut self, sae: &str, batch: &[CooccurrenceRecord]) -> Result<()> {
        for r in batch {
            let other = self.manifest.sae(&r.other_sae)?;
            Self::check_feature(&other.id, other.d_sae, r.other_feature)?;
        }
        let path = self.tmp.cooccurrence(sae);
        let t = self.sae(sae)?;
        for r in batch {
            Self::check_feature(sae, t.d_sae, r.feature)?;
        }
        open_lazily(&mut t.cooc, path)?.write(batch)
    }

    /// Appends decoder-cosine neighbours of features of `sae`, grouped by feature (a
    /// feature's rows in one call, closest first).
    pub fn write_neighbours(&mut self, sae: &str, batch: &[NeighbourRecord]) -> Result<()> {
        for r in batch {
            let other = self.manifest.sae(&r.other_sae)?;
            Self::check_feature(&other.id, other.d_sae, r.other_feature)?;
        }
        let path = self.tmp.neighbours(sae);
        let t = self.sae(sae)?;
        for r in batch {
            Self::check_feature(sae, t.d_sae, r.feature)?;
        }
        open_lazily(&mut t.neighbours, path)?.write(batch)
    }

    /// Appends the active features of `sae` per context. Context ids must be strictly
    /// increasing across calls (per SAE); each record's `features`, `max_acts` and `max_pos`
    /// of equal length, every feature below `d_sae`. Contexts without a record have none.
    pub fn write_context_features(
        &mut self,
        sae: &str,
        batch: &[ContextFeaturesRecord],
    ) -> Result<()> {
        let path = self.tmp.context_features(sae);
        let t = self.sae(sae)?;
        for r in batch {
            if t.last_context_features
                .is_some_and(|last| r.context_id <= last)
            {
                return Err(Error::InvalidInput(format!(
                    "context features of SAE {sae:?}: context {} written after context {:?}: \
                     ids must be strictly increasing",
                    r.context_id, t.last_context_features
                )));
            }
            if r.features.len() != r.max_acts.len() || r.features.len() != r.max_pos.len() {
                return Err(Error::InvalidInput(format!(
                    "context features of SAE {sae:?}, context {}: {} features but {} max_acts \
                     and {} max_pos",
                    r.context_id,
                    r.features.len(),
                    r.max_acts.len(),
                    r.max_pos.len()
                )));
            }
            for &f in &r.features {
                Self::check_feature(sae, t.d_sae, f)?;
            }
            t.last_context_features = Some(r.context_id);
        }
        open_lazily(&mut t.context_features, path)?.write(batch)
    }

    /// Sets the summary of `sae` (its `sae_id` must be `sae`). The last call wins.
    pub fn write_summary(&mut self, sae: &str, summary: &SaeSummary) -> Result<()> {
        if summary.sae_id != sae {
            return Err(Error::InvalidInput(format!(
                "summary of {:?} written for SAE {sae:?}",
                summary.sae_id
            )));
        }
        self.sae(sae)?.summary = Some(summary.clone());
        Ok(())
    }

    /// Appends entries to `sae`'s sparse activation log (any order).
    pub fn write_activations(&mut self, sae: &str, entries: &[ActivationEntry]) -> Result<()> {
        let dir = self.tmp.activations_dir(sae);
        let options = self.options.activations.clone();
        let t = self.sae(sae)?;
        for e in entries {
            Self::check_feature(sae, t.d_sae, e.feature)?;
        }
        if t.activations.is_none() {
            t.activations = Some(ActivationWriter::create(dir, options)?);
        }
        t.activations
            .as_mut()
            .expect("activation writer was just created")
            .write(entries)
    }

    /// Finishes every file, builds the serving store and the text index from the Parquet
    /// files, writes the manifest and publishes the directory at `out`.
    pub fn publish(mut self) -> Result<PublishReport> {
        let _span = tracing::info_span!("publish", out = %self.out.display()).entered();
        let mut report = PublishReport {
            path: self.out.clone(),
            contexts: 0,
            saes: BTreeMap::new(),
            parquet_bytes: 0,
        };
        let contexts = self.contexts.take();
        let (n, bytes) = finish_or_empty(contexts, self.tmp.contexts())?;
        report.contexts = n;
        report.parquet_bytes += bytes;
        let (_, bytes) = finish_or_empty(self.vocab.take(), self.tmp.vocab())?;
        report.parquet_bytes += bytes;
        let mut any_activations = false;
        for (id, t) in std::mem::take(&mut self.saes) {
            let mut counts = SaeCounts::default();
            let (n, b) = finish_or_empty(t.features, self.tmp.features(&id))?;
            counts.features = n;
            report.parquet_bytes += b;
            let (n, b) = finish_or_empty(t.examples, self.tmp.examples(&id))?;
            counts.examples = n;
            report.parquet_bytes += b;
            let (n, b) = finish_or_empty(t.cooc, self.tmp.cooccurrence(&id))?;
            counts.cooccurrence = n;
            report.parquet_bytes += b;
            let (_, b) = finish_or_empty(t.neighbours, self.tmp.neighbours(&id))?;
            report.parquet_bytes += b;
            let (n, b) = finish_or_empty(t.context_features, self.tmp.context_features(&id))?;
            counts.context_features = n;
            report.parquet_bytes += b;
            let mut summary = TableWriter::<SaeSummary>::create(self.tmp.summary(&id))?;
            summary.write(t.summary.as_slice())?;
            report.parquet_bytes += summary.finish()?.1;
            if let Some(a) = t.activations {
                let stats = a.finish()?;
                counts.activations = stats.entries;
                counts.activation_bytes = stats.bytes;
                report.parquet_bytes += stats.bytes;
                any_activations = true;
            }
            report.saes.insert(id, counts);
        }
        self.manifest.contexts = report.contexts;
        self.manifest.parameters.keep_activations |= any_activations;
        if any_activations {
            self.manifest.parameters.extra.insert(
                crate::manifest::ACTIVATION_MANTISSA_BITS_KEY.to_string(),
                self.options.activations.mantissa_bits.into(),
            );
        }

        rocks::build(&self.tmp.rocksdb(), &self.tmp, &self.manifest)?;
        text::build(&self.tmp.tantivy(), &self.tmp, &self.manifest)?;
        if !self.options.skip_similar_lists {
            similar::build(
                &self.tmp,
                &self.manifest,
                &self.tmp.rocksdb(),
                &self.tmp.tantivy(),
            )?;
        }
        // The manifest last: a directory with a manifest is complete.
        fsutil::sync_tree(self.tmp.root())?;
        self.manifest.save(self.tmp.root())?;
        fsutil::sync_dir(self.tmp.root())?;
        publish::swap_into_place(
            self.tmp.root(),
            &self.out,
            !self.options.force_rename_fallback,
        )?;
        self.finished = true;
        tracing::info!(
            contexts = report.contexts,
            bytes = report.parquet_bytes,
            "index published"
        );
        Ok(report)
    }
}

/// Checks that a vocabulary's ids are `0..n` in order (`what` names it in the error).
pub(crate) fn check_vocab(vocab: &[VocabRecord], what: &str) -> Result<()> {
    match vocab
        .iter()
        .enumerate()
        .find(|(i, r)| r.token_id as usize != *i)
    {
        Some((i, r)) => Err(Error::corrupt(
            what,
            format!(
                "row {i} has token_id {}, expected {i} (ids must be dense and in order)",
                r.token_id
            ),
        )),
        None => Ok(()),
    }
}

fn finish_or_empty<T: crate::parquet::Table>(
    w: Option<TableWriter<T>>,
    path: PathBuf,
) -> Result<(u64, u64)> {
    match w {
        Some(w) => w.finish(),
        // Every table exists in every index, so scripts over the directory need no special cases.
        None => TableWriter::<T>::create(path)?.finish(),
    }
}

impl Drop for IndexWriter {
    fn drop(&mut self) {
        if self.finished || self.options.keep_tmp_on_drop {
            return;
        }
        // Close open files before deleting them.
        self.contexts = None;
        self.vocab = None;
        self.saes.clear();
        if let Err(e) = fsutil::remove_dir_all_if_exists(self.tmp.root()) {
            tracing::warn!(error = %e, "could not remove the temporary index directory");
        }
    }
}

/// Rebuilds `rocksdb/` and `tantivy/` of the index at `dir` from its Parquet files (for
/// `scopedex reindex`). Each is built beside the old one and swapped in by rename, so a crash
/// leaves the old or the new store, and readers that have the old one open keep working.
pub fn rebuild_serving(dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    let manifest = Manifest::load(dir)?;
    let layout = IndexLayout::new(dir);
    let _span = tracing::info_span!("rebuild_serving", dir = %dir.display()).entered();
    remove_stale_rebuilds(dir)?;
    let pid = std::process::id();
    let new_rocks = dir.join(format!("{}.new-{pid}", crate::layout::ROCKSDB_DIR));
    rocks::build(&new_rocks, &layout, &manifest)?;
    let new_text = dir.join(format!("{}.new-{pid}", crate::layout::TANTIVY_DIR));
    text::build(&new_text, &layout, &manifest)?;
    // The similar lists read both new stores; each store is swapped in only when complete.
    similar::build(&layout, &manifest, &new_rocks, &new_text)?;
    let new_explanations = dir.join(format!(
        "{}.new-{pid}",
        crate::layout::EXPLANATIONS_TEXT_DIR
    ));
    let explained = crate::explanations::build_text(&new_explanations, &layout, &manifest)?;
    replace_dir(&new_rocks, &layout.rocksdb())?;
    replace_dir(&new_text, &layout.tantivy())?;
    if explained > 0 {
        replace_dir(&new_explanations, &layout.explanations_text())?;
    } else {
        fsutil::remove_dir_all_if_exists(&layout.explanations_text())?;
    }
    // Rewritten (same content, new inode) so a running server reopens the new stores and
    // lets go of the old files.
    manifest.save(dir)?;
    Ok(())
}

/// Removes what an interrupted rebuild left inside the index: `rocksdb.new-{pid}`,
/// `tantivy.new-{pid}` (and a manifest's temporary) of processes that no longer run.
fn remove_stale_rebuilds(dir: &Path) -> Result<()> {
    let prefixes = [
        format!("{}.new-", crate::layout::ROCKSDB_DIR),
        format!("{}.new-", crate::layout::TANTIVY_DIR),
        format!("{}.new-", crate::layout::EXPLANATIONS_TEXT_DIR),
        format!("{}.tmp-", crate::manifest::MANIFEST_FILE),
    ];
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p.as_str()))
            .and_then(|rest| rest.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !fsutil::pid_alive(pid) {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing what an interrupted reindex left");
            if path.is_dir() {
                fsutil::remove_dir_all_if_exists(&path)?;
            } else {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(())
}

fn replace_dir(new: &Path, target: &Path) -> Result<()> {
    if target.exists() && fsutil::exchange(new, target)? {
        fsutil::remove_dir_all_if_exists(new)?;
    } else {
        fsutil::remove_dir_all_if_exists(target)?;
        fsutil::rename(new, target)?;
    }
    fsutil::sync_dir(target.parent().unwrap_or(Path::new(".")))
}
