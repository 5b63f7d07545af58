//! Run state on disk: periodic checkpoints beside the output (`{out}.checkpoint/`) for
//! `--resume`, and the final state inside a published index (`state/`) for `scopedex merge`.
//!
//! A state directory holds `progress.json` (fingerprint, contexts done, counters, cross pairs),
//! `sae-{i}.bin` and `cross-{i}.bin` (the accumulators' own versioned binary form). A checkpoint
//! is written to `{dir}.tmp` and swapped in by renames, so a crash leaves the previous one whole.
use std::path::{Path, PathBuf};

use scopedex_store::{ActivationEntry, ContextFeaturesRecord, Manifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::accum::{AccumConfig, CrossCooc, SaeAccumulator};
use crate::error::{Error, Result};
use crate::pass::PassState;
use crate::shard::Shard;

/// Identifies a run's inputs and settings: a checkpoint is only resumed by the same run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFingerprint(pub String);

impl RunFingerprint {
    /// sha256 over the model, SAEs, corpus files, context length and accumulator settings.
    pub fn of(manifest: &Manifest, accum: &AccumConfig, shard: Shard) -> Result<RunFingerprint> {
        let key = serde_json::json!({
            "model": manifest.model.sha256,
            "saes": manifest.saes.iter().map(|s| (&s.id, &s.source_sha256)).collect::<Vec<_>>(),
            "corpus": manifest.corpus.iter().map(|f| (&f.path, &f.sha256)).collect::<Vec<_>>(),
            "ctx_len": manifest.ctx_len,
            "parameters": manifest.parameters,
            "accum": accum,
            "shard": shard,
        });
        let bytes = serde_json::to_vec(&key).map_err(|e| Error::CorruptState(e.to_string()))?;
        Ok(RunFingerprint(hex::encode(Sha256::digest(&bytes))))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    fingerprint: Option<RunFingerprint>,
    contexts_done: u64,
    /// Spill parts (see [`Spill`]) that belong to this checkpoint.
    #[serde(default)]
    spill_parts: u32,
    contexts: u64,
    positions: u64,
    n_saes: usize,
    cross_pairs: Vec<(usize, usize)>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes `state` into `dir` (created; must not hold another state).
pub fn write_state(
    dir: &Path,
    state: &PassState,
    fingerprint: Option<&RunFingerprint>,
    contexts_done: u64,
) -> Result<()> {
    write_state_with_spill(dir, state, fingerprint, contexts_done, 0)
}

fn write_state_with_spill(
    dir: &Path,
    state: &PassState,
    fingerprint: Option<&RunFingerprint>,
    contexts_done: u64,
    spill_parts: u32,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (i, acc) in state.saes.iter().enumerate() {
        let p = dir.join(format!("sae-{i}.bin"));
        std::fs::write(&p, acc.to_bytes()?).map_err(|e| io(&p, e))?;
    }
    for (i, (_, _, cross)) in state.cross.iter().enumerate() {
        let p = dir.join(format!("cross-{i}.bin"));
        std::fs::write(&p, cross.to_bytes()?).map_err(|e| io(&p, e))?;
    }
    let progress = Progress {
        fingerprint: fingerprint.cloned(),
        contexts_done,
        spill_parts,
        contexts: state.contexts,
        positions: state.positions,
        n_saes: state.saes.len(),
        cross_pairs: state.cross.iter().map(|(a, b, _)| (*a, *b)).collect(),
    };
    let p = dir.join("progress.json");
    let json =
        serde_json::to_vec_pretty(&progress).map_err(|e| Error::CorruptState(e.to_string()))?;
    std::fs::write(&p, json).map_err(|e| io(&p, e))?;
    Ok(())
}

/// Reads a state written by [`write_state`]: the state, its fingerprint and contexts done.
pub fn read_state(dir: &Path) -> Result<(PassState, Option<RunFingerprint>, u64)> {
    let (state, fp, done, _) = read_state_with_spill(dir)?;
    Ok((state, fp, done))
}

fn read_state_with_spill(dir: &Path) -> Result<(PassState, Option<RunFingerprint>, u64, u32)> {
    let p = dir.join("progress.json");
    let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
    let progress: Progress = serde_json::from_slice(&bytes)
        .map_err(|e| Error::CorruptState(format!("{}: {e}", p.display())))?;
    let read = |name: String| -> Result<(Vec<u8>, std::path::PathBuf)> {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| io(&p, e)).map(|b| (b, p))
    };
    // A state that does not decode names its file, so the user knows what to delete.
    let named = |p: &Path| {
        let p = p.to_path_buf();
        move |e: Error| match e {
            Error::CorruptState(m) => Error::CorruptState(format!("{}: {m}", p.display())),
            other => other,
        }
    };
    let saes = (0..progress.n_saes)
        .map(|i| {
            let (bytes, p) = read(format!("sae-{i}.bin"))?;
            SaeAccumulator::from_bytes(&bytes).map_err(named(&p))
        })
        .collect::<Result<Vec<_>>>()?;
    let cross = progress
        .cross_pairs
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| {
            let (bytes, p) = read(format!("cross-{i}.bin"))?;
            Ok((a, b, CrossCooc::from_bytes(&bytes).map_err(named(&p))?))
        })
        .collect::<Result<Vec<_>>>()?;
    let state = PassState {
        saes,
        cross,
        contexts: progress.contexts,
        positions: progress.positions,
    };
    Ok((
        state,
        progress.fingerprint,
        progress.contexts_done,
        progress.spill_parts,
    ))
}

/// Per-context output of the contexts since the last checkpoint that is not part of the
/// accumulator state: each SAE's context features and (with `--keep-activations`) activation
/// log entries. Spilled to `{out}.checkpoint-spill/part-{n}.bin` before the checkpoint that
/// counts them, so a resumed run can hand them to the writer without re-running the model.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Spill {
    /// Per SAE (attachment order).
    pub context_features: Vec<Vec<ContextFeaturesRecord>>,
    /// Per SAE (attachment order); empty without `--keep-activations`.
    pub activations: Vec<Vec<ActivationEntry>>,
}

impl Spill {
    /// An empty spill for `n_saes` SAEs.
    pub fn new(n_saes: usize) -> Spill {
        Spill {
            context_features: vec![Vec::new(); n_saes],
            activations: vec![Vec::new(); n_saes],
        }
    }

    fn is_empty(&self) -> bool {
        self.context_features.iter().all(Vec::is_empty)
            && self.activations.iter().all(Vec::is_empty)
    }
}

/// The checkpoint of the run that publishes at `out`.
pub struct Checkpoint {
    dir: PathBuf,
    /// Spill parts written so far (those of the loaded checkpoint, then new ones).
    spill_parts: u32,
}

impl Checkpoint {
    /// `{out}.checkpoint`.
    pub fn at(out: &Path) -> Checkpoint {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".checkpoint");
        Checkpoint {
            dir: out.with_file_name(name),
            spill_parts: 0,
        }
    }

    /// Directory of the checkpoint.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.dir.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.dir.with_file_name(name)
    }

    fn spill_part(&self, n: u32) -> PathBuf {
        self.sibling("-spill").join(format!("part-{n:06}.bin"))
    }

    /// Saves atomically: spill `spill` (then empties it) as a new part, write `.tmp`, move the
    /// old checkpoint to `.old`, move `.tmp` in, drop `.old`.
    pub fn save(
        &mut self,
        fp: &RunFingerprint,
        state: &PassState,
        contexts_done: u64,
        spill: &mut Spill,
    ) -> Result<()> {
        let tmp = self.sibling(".tmp");
        let old = self.sibling(".old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        if !spill.is_empty() {
            let part = self.spill_part(self.spill_parts);
            let dir = self.sibling("-spill");
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let bytes =
                postcard::to_stdvec(&*spill).map_err(|e| Error::CorruptState(e.to_string()))?;
            std::fs::write(&part, bytes).map_err(|e| io(&part, e))?;
            self.spill_parts += 1;
            *spill = Spill::new(spill.context_features.len());
        }
        write_state_with_spill(&tmp, state, Some(fp), contexts_done, self.spill_parts)?;
        if self.dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
            }
            std::fs::rename(&self.dir, &old).map_err(|e| io(&self.dir, e))?;
        }
        std::fs::rename(&tmp, &self.dir).map_err(|e| io(&tmp, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        tracing::debug!(contexts_done, dir = %self.dir.display(), "checkpoint saved");
        Ok(())
    }

    /// The saved state and its spill when there is one (a crash between the renames leaves
    /// `.old`, used then). A checkpoint of another run is an error rather than silently ignored.
    pub fn load(&mut self, fp: &RunFingerprint) -> Result<Option<(PassState, u64, Vec<Spill>)>> {
        let dir = if self.dir.join("progress.json").is_file() {
            self.dir.clone()
        } else if self.sibling(".old").join("progress.json").is_file() {
            self.sibling(".old")
        } else {
            return Ok(None);
        };
        let (state, saved_fp, done, parts) = read_state_with_spill(&dir)?;
        if saved_fp.as_ref() != Some(fp) {
            return Err(Error::InvalidInput(format!(
                "checkpoint {} belongs to a different run (other model, SAEs, corpus or settings); \
                 delete it or run without --resume",
                dir.display()
            )));
        }
        let spills = (0..parts)
            .map(|n| {
                let p = self.spill_part(n);
                let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
                postcard::from_bytes(&bytes)
                    .map_err(|e| Error::CorruptState(format!("{}: {e}", p.display())))
            })
            .collect::<Result<Vec<Spill>>>()?;
        // Parts written after this checkpoint (a crash before it was saved) are overwritten.
        self.spill_parts = parts;
        Ok(Some((state, done, spills)))
    }

    /// Deletes the checkpoint (after a successful publish).
    pub fn remove(&self) -> Result<()> {
        for d in [
            self.dir.clone(),
            self.sibling(".old"),
            self.sibling(".tmp"),
            self.sibling("-spill"),
        ] {
            if d.exists() {
                std::fs::remove_dir_all(&d).map_err(|e| io(&d, e))?;
            }
        }
        Ok(())
    }
}
