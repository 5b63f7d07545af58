//! Atomic publish of a finished index directory, and recovery after a crash.
//!
//! An index is written to a sibling `{out}.tmp-{pid}-{n}` and, once complete (all files
//! fsynced, `manifest.json` written last), moved into place:
//!
//! 1. `out` does not exist: `rename(tmp, out)`, fsync the parent. Atomic.
//! 2. `out` exists, Linux: `renameat2(tmp, out, RENAME_EXCHANGE)` swaps the two directories in
//!    one step, fsync the parent, then delete `tmp` (which now holds the old index). A crash at
//!    any point leaves `out` holding either the complete old or the complete new index; at
//!    worst a complete stale directory remains at `{out}.tmp-*`, removed by the next writer.
//! 3. `out` exists, no exchange (other OS or filesystem): `rename(out, {out}.old-{pid}-{n})`,
//!    `rename(tmp, out)`, delete the old one. A crash between the two renames leaves no `out`
//!    but both complete directories beside it; [`recover`] (run by every
//!    [`crate::IndexWriter::create`], and by `scopedex` commands that write) moves the new one
//!    in if it is complete (has a manifest), else the old one back.
//!
//! A crash before publish leaves `out` untouched and an incomplete `{out}.tmp-*`, which the next
//! writer removes once its process is gone.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::manifest::MANIFEST_FILE;

static SEQ: AtomicU32 = AtomicU32::new(0);

const TMP_TAG: &str = ".tmp-";
const OLD_TAG: &str = ".old-";

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(out: &Path) -> Result<String> {
    out.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "index path {} has no UTF-8 file name",
                out.display()
            ))
        })
}

/// A fresh sibling of `out`: `{out}{tag}{pid}-{n}`.
fn sibling(out: &Path, tag: &str) -> Result<PathBuf> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    Ok(parent_of(out).join(format!(
        "{}{tag}{}-{n}",
        file_name(out)?,
        std::process::id()
    )))
}

/// A new temporary directory path for building `out`.
pub(crate) fn tmp_path(out: &Path) -> Result<PathBuf> {
    sibling(out, TMP_TAG)
}

/// Siblings of `out` with `tag`, as (path, pid of the process that made them).
fn siblings(out: &Path, tag: &str) -> Result<Vec<(PathBuf, Option<u32>)>> {
    let parent = parent_of(out);
    let prefix = format!("{}{tag}", file_name(out)?);
    let entries = match std::fs::read_dir(&parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&parent, e)),
    };
    let mut out_paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&parent, e))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse().ok());
        out_paths.push((entry.path(), pid));
    }
    out_paths.sort();
    Ok(out_paths)
}

/// Moves the complete directory `tmp` to `out` as described in the module docs.
/// `allow_exchange = false` forces the two-rename path (for tests).
pub(crate) fn swap_into_place(tmp: &Path, out: &Path, allow_exchange: bool) -> Result<()> {
    let parent = parent_of(out);
    if !out.exists() {
        fsutil::rename(tmp, out)?;
        return fsutil::sync_dir(&parent);
    }
    if allow_exchange && fsutil::exchange(tmp, out)? {
        fsutil::sync_dir(&parent)?;
        // `tmp` now holds the previous index.
        fsutil::remove_dir_all_if_exists(tmp)?;
        return fsutil::sync_dir(&parent);
    }
    let old = sibling(out, OLD_TAG)?;
    fsutil::rename(out, &old)?;
    fsutil::sync_dir(&parent)?;
    fsutil::rename(tmp, out)?;
    fsutil::sync_dir(&parent)?;
    fsutil::remove_dir_all_if_exists(&old)?;
    fsutil::sync_dir(&parent)
}

/// What [`recover`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// `out` was in place (or there was nothing to recover); stale siblings of dead
    /// processes, if any, were removed.
    Nothing,
    /// A publish was interrupted between its renames; the new index (complete) was moved in.
    PublishedNew(PathBuf),
    /// A publish was interrupted between its renames; the new index was not complete, so the
    /// old one was moved back.
    RestoredOld(PathBuf),
}

/// Repairs the state a crash can leave around `out` (see the module docs) and removes
/// temporary directories of processes that no longer run. Safe to call at any time while no
/// other process is publishing `out`.
pub fn recover(out: impl AsRef<Path>) -> Result<Recovery> {
    let out = out.as_ref();
    let dead = |pid: Option<u32>| pid.is_some_and(|p| !fsutil::pid_alive(p));
    let mut action = Recovery::Nothing;
    if !out.exists() {
        let olds = siblings(out, OLD_TAG)?;
        if let Some((old, _)) = olds.last() {
            let complete_new = siblings(out, TMP_TAG)?
                .into_iter()
                .find(|(p, pid)| dead(*pid) && p.join(MANIFEST_FILE).is_file());
            if let Some((new, _)) = complete_new {
                fsutil::rename(&new, out)?;
                action = Recovery::PublishedNew(new);
            } else {
                fsutil::rename(old, out)?;
                action = Recovery::RestoredOld(old.clone());
            }
            fsutil::sync_dir(&parent_of(out))?;
        }
    }
    if out.exists() {
        for (p, pid) in siblings(out, OLD_TAG)?
            .into_iter()
            .chain(siblings(out, TMP_TAG)?)
        {
            if dead(pid) {
                tracing::info!(path = %p.display(), "removing stale directory of a dead process");
                fsutil::remove_dir_all_if_exists(&p)?;
            }
        }
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(path: &Path, content: &str, complete: bool) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join("data"), content).unwrap();
        if complete {
            std::fs::write(path.join(MANIFEST_FILE), "{}").unwrap();
        }
    }

    fn content(path: &Path) -> String {
        std::fs::read_to_string(path.join("data")).unwrap()
    }

    #[test]
    fn both_swap_paths_replace_the_old_directory() {
        for allow_exchange in [true, false] {
            let root = tempfile::tempdir().unwrap();
            let out = root.path().join("index");
            let tmp = tmp_path(&out).unwrap();
            dir_with(&out, "old", true);
            dir_with(&tmp, "new", true);
            swap_into_place(&tmp, &out, allow_exchange).unwrap();
            assert_eq!(content(&out), "new");
            assert_eq!(
                std::fs::read_dir(root.path()).unwrap().count(),
                1,
                "no leftovers"
            );
        }
    }

    #[test]
    fn recovery_between_the_two_renames() {
        // A dead pid: above Linux's pid_max (2^22).
        let dead_pid = 4_194_999;
        for new_complete in [true, false] {
            let root = tempfile::tempdir().unwrap();
            let out = root.path().join("index");
            let old = root.path().join(format!("index.old-{dead_pid}-0"));
            let new = root.path().join(format!("index.tmp-{dead_pid}-1"));
            dir_with(&old, "old", true);
            dir_with(&new, "new", new_complete);
            let action = recover(&out).unwrap();
            if new_complete {
                assert_eq!(action, Recovery::PublishedNew(new.clone()));
                assert_eq!(content(&out), "new");
            } else {
                assert_eq!(action, Recovery::RestoredOld(old.clone()));
                assert_eq!(content(&out), "old");
            }
            assert!(!old.exists() && !new.exists(), "stale siblings removed");
        }
    }

    #[test]
    fn recovery_keeps_directories_of_live_processes() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("index");
        dir_with(&out, "current", true);
        let mine = tmp_path(&out).unwrap();
        dir_with(&mine, "in progress", false);
        assert_eq!(recover(&out).unwrap(), Recovery::Nothing);
        assert!(mine.exists());
        assert_eq!(content(&out), "current");
    }
}
