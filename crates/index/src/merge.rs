//! `scopedex merge`: combine shard indexes into one, equal to a single pass over the corpus.
//!
//! Each shard index carries its final accumulator state (`state/`); states are merged (the
//! accumulators' merge is associative and commutative), contexts are merged by id (each shard's
//! are sorted), activation logs are copied through, and the result is finished and published
//! like a single run. The model and SAEs are loaded again (from the manifest) for logit effects.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use scopedex_model::{Backend, Model};
use scopedex_store::parquet::Table;
use scopedex_store::{
    ActivationReader, ActivationWriterOptions, ContextFeaturesRecord, ContextRecord, IndexLayout,
    IndexWriter, IndexWriterOptions, Manifest, PublishReport, TableReader,
};

use crate::checkpoint::read_state;
use crate::error::{Error, Result};
use crate::finish::{finish_into, save_state};
use crate::job::{load_saes, SaeSpec};
use crate::pass::PassState;

/// What a merge did.
#[derive(Debug)]
pub struct MergeReport {
    /// Publish details.
    pub publish: PublishReport,
    /// Shards merged.
    pub shards: usize,
    /// Warnings for the user.
    pub warnings: Vec<String>,
}

/// Merges the shard indexes `shards` into a new index published at `out`.
pub fn run_merge(
    out: &Path,
    shards: &[PathBuf],
    logit_top_n: usize,
    keep_state: bool,
) -> Result<MergeReport> {
    if shards.is_empty() {
        return Err(Error::InvalidInput(
            "merge needs at least one shard directory".into(),
        ));
    }
    // Before reading anything: a mistyped --out must not cost a merge, or the user's files.
    scopedex_store::check_replaceable(out)?;
    let manifests = shards
        .iter()
        .map(|d| Manifest::load(d).map_err(Error::from))
        .collect::<Result<Vec<_>>>()?;
    check_compatible(shards, &manifests)?;

    // States, folded in shard order (any order gives the same result).
    let mut state: Option<PassState> = None;
    for dir in shards {
        let (s, _, _) = read_state(&dir.join("state"))?;
        state = Some(match state {
            None => s,
            Some(acc) => acc.merge(s)?,
        });
    }
    let state = state.expect("invariant: shards is not empty");

    let first = &manifests[0];
    // Merging runs no forward: logit effects need only the embedding and unembedding, on the
    // CPU whatever device the shards ran on.
    let backend = Backend::cpu();
    let device = backend.device();
    let model = Model::load_blocks(Path::new(&first.model.path), &backend, 0)?;
    let specs = first
        .saes
        .iter()
        .map(|s| s.source_path.parse::<SaeSpec>())
        .collect::<Result<Vec<_>>>()?;
    let saes = load_saes(&specs, model.config(), device)?;
    for (s, entry) in saes.iter().zip(&first.saes) {
        if s.id != entry.id || s.sae.source_sha256() != entry.source_sha256 {
            return Err(Error::InvalidInput(format!(
                "SAE {} at {} changed since the shards were indexed (sha256 differs)",
                entry.id, entry.source_path
            )));
        }
    }

    let mut manifest = first.clone();
    manifest.shards = manifests.iter().flat_map(|m| m.shards.clone()).collect();
    manifest.shards.sort_by_key(|s| s.index);
    manifest.created = scopedex_store::now_rfc3339();
    // The log is rewritten at the shards' own precision (rounding is idempotent).
    let writer_options = IndexWriterOptions {
        activations: ActivationWriterOptions {
            mantissa_bits: first.parameters.activation_mantissa_bits(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut writer = IndexWriter::with_options(out, manifest, writer_options)?;
    // Every shard was tokenized by the same tokenizer (the model's sha256 matched).
    if let Some(vocab) = scopedex_store::read_vocab(&shards[0])? {
        writer.write_vocab(&vocab)?;
    }
    merge_contexts(&mut writer, shards)?;
    if first.parameters.keep_activations {
        for entry in &first.saes {
            for dir in shards {
                let reader =
                    ActivationReader::open(IndexLayout::new(dir).activations_dir(&entry.id))?;
                for batch in reader.batches() {
                    writer.write_activations(&entry.id, &batch?)?;
                }
            }
        }
    }
    if keep_state {
        save_state(writer.tmp_dir(), &state)?;
    }
    let warnings = finish_into(&mut writer, &model, &saes, state, logit_top_n)?;
    let publish = writer.publish()?;
    Ok(MergeReport {
        publish,
        shards: shards.len(),
        warnings,
    })
}

/// Same model, SAEs, corpus and settings; shard indices `0..N` each present exactly once.
fn check_compatible(dirs: &[PathBuf], manifests: &[Manifest]) -> Result<()> {
    let first = &manifests[0];
    let key = |m: &Manifest| {
        (
            m.model.sha256.clone(),
            m.saes
                .iter()
                .map(|s| (s.id.clone(), s.source_sha256.clone()))
                .collect::<Vec<_>>(),
            m.corpus
                .iter()
                .map(|f| f.sha256.clone())
                .collect::<Vec<_>>(),
            m.ctx_len,
            m.parameters.clone(),
        )
    };
    let mut seen = Vec::new();
    let mut count = None;
    for (dir, m) in dirs.iter().zip(manifests) {
        if key(m) != key(first) {
            return Err(Error::InvalidInput(format!(
                "{} was indexed with another model, SAEs, corpus or settings than {}",
                dir.display(),
                dirs[0].display()
            )));
        }
        for s in &m.shards {
            if *count.get_or_insert(s.count) != s.count {
                return Err(Error::InvalidInput(format!(
                    "{}: shard {}/{} does not belong to a run of {} shards",
                    dir.display(),
                    s.index,
                    s.count,
                    count.unwrap_or(0)
                )));
            }
            if seen.contains(&s.index) {
                return Err(Error::InvalidInput(format!(
                    "{}: shard {}/{} is given twice",
                    dir.display(),
                    s.index,
                    s.count
                )));
            }
            seen.push(s.index);
        }
    }
    let n = count.unwrap_or(0);
    let missing: Vec<String> = (0..n)
        .filter(|i| !seen.contains(i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::InvalidInput(format!(
            "shards missing from the merge: {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// k-way merge of the shards' contexts (and each SAE's context features) by context id; each
/// shard's files are sorted by id.
fn merge_contexts(writer: &mut IndexWriter, shards: &[PathBuf]) -> Result<()> {
    let paths: Vec<PathBuf> = shards
        .iter()
        .map(|d| IndexLayout::new(d).contexts())
        .collect();
    merge_sorted::<ContextRecord>(
        &paths,
        |c| c.context_id,
        |batch| writer.write_contexts(batch).map_err(Error::from),
    )?;
    let saes: Vec<String> = writer
        .manifest_mut()
        .saes
        .iter()
        .map(|s| s.id.clone())
        .collect();
    for sae in saes {
        let paths: Vec<PathBuf> = shards
            .iter()
            .map(|d| IndexLayout::new(d).context_features(&sae))
            .collect();
        merge_sorted::<ContextFeaturesRecord>(
            &paths,
            |c| c.context_id,
            |batch| {
                writer
                    .write_context_features(&sae, batch)
                    .map_err(Error::from)
            },
        )?;
    }
    Ok(())
}

/// Streams the rows of several tables sorted by `key` into `sink`, in global key order.
fn merge_sorted<T: Table>(
    paths: &[PathBuf],
    key: impl Fn(&T) -> u64,
    mut sink: impl FnMut(&[T]) -> Result<()>,
) -> Result<()> {
    struct Source<T: Table> {
        reader: TableReader<T>,
        buf: std::vec::IntoIter<T>,
    }
    impl<T: Table> Source<T> {
        fn next(&mut self) -> Result<Option<T>> {
            loop {
                if let Some(c) = self.buf.next() {
                    return Ok(Some(c));
                }
                match self.reader.next() {
                    Some(batch) => self.buf = batch?.into_iter(),
                    None => return Ok(None),
                }
            }
        }
    }
    let mut sources = paths
        .iter()
        .map(|p| {
            Ok(Source {
                reader: TableReader::<T>::open(p)?,
                buf: Vec::new().into_iter(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut heads: Vec<Option<T>> = Vec::with_capacity(sources.len());
    let mut heap = BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        let head = s.next()?;
        if let Some(c) = &head {
            heap.push(Reverse((key(c), i)));
        }
        heads.push(head);
    }
    let mut out = Vec::with_capacity(1024);
    while let Some(Reverse((_, i))) = heap.pop() {
        let c = heads[i]
            .take()
            .expect("invariant: a heap entry has its head");
        out.push(c);
        if out.len() == 1024 {
            sink(&out)?;
            out.clear();
        }
        if let Some(next) = sources[i].next()? {
            heap.push(Reverse((key(&next), i)));
            heads[i] = Some(next);
        }
    }
    if !out.is_empty() {
        sink(&out)?;
    }
    Ok(())
}
