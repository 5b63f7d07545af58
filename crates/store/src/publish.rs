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

/// Whether a publish may replace what is at `out`: nothing, an empty directory, or a directory
/// whose `manifest.json` scopedex wrote (any format version). Anything else (a user's folder,
/// the corpus, a regular file) is [`Error::NotOurs`], so a mistyped `--out` never destroys
/// data. Commands call this before any work; [`swap_into_place`] checks again just before the
/// swap.
pub fn check_replaceable(out: &Path) -> Result<()> {
    let not_ours = |reason: String| Error::NotOurs {
        path: out.to_path_buf(),
        reason,
    };
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(out, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(not_ours("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(not_ours("it is a file, not a directory".into()));
    }
    if is_scopedex_output(out) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    match entries.next() {
        None => Ok(()),
        Some(first) => {
            let name = first.map_err(|e| Error::io(out, e))?.file_name();
            Err(not_ours(format!(
                "it is a directory without a scopedex {MANIFEST_FILE} (it holds {:?}{})",
                name,
                if entries.next().is_some() {
                    ", ..."
                } else {
                    ""
                }
            )))
        }
    }
}

/// A directory with a `manifest.json` that scopedex wrote (`created_by` names it, or the
/// format version is one scopedex ever used with the manifest's required keys).
fn is_scopedex_output(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join(MANIFEST_FILE)) else {
        return false;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    let created_by = json.get("created_by").and_then(|v| v.as_str());
    let shaped = json.get("format_version").is_some_and(|v| v.is_u64())
        && json.get("saes").is_some_and(|v| v.is_array())
        && json.get("model").is_some_and(|v| v.is_object());
    shaped && created_by.is_none_or(|c| c.starts_with("scopedex"))
}

/// Moves the complete directory `tmp` to `out` as described in the module docs.
/// `allow_exchange = false` forces the two-rename path (for tests).
pub(crate) fn swap_into_place(tmp: &Path, out: &Path, allow_exchange: bool) -> Result<()> {
    let parent = parent_of(out);
    check_replaceable(out)?;
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
            std::fs::write(path.join(MANIFEST_FILE), OUR_MANIFEST).unwrap();
        }
    }

    const OUR_MANIFEST: &str =
        r#"{"format_version": 2, "model": {}, "saes": [], "created_by": "scopedex 0.1.0"}"#;

    #[test]
    fn only_nothing_an_empty_directory_or_our_output_is_replaceable() {
        let root = tempfile::tempdir().unwrap();
        let p = |n: &str| root.path().join(n);
        assert!(check_replaceable(&p("missing")).is_ok());
        std::fs::create_dir(p("empty")).unwrap();
        assert!(check_replaceable(&p("empty")).is_ok());
        dir_with(&p("ours"), "x", true);
        assert!(check_replaceable(&p("ours")).is_ok());

        dir_with(&p("user"), "precious", false);
        std::fs::write(p("file"), "precious").unwrap();
        std::fs::create_dir(p("other")).unwrap();
        std::fs::write(p("other").join(MANIFEST_FILE), r#"{"name": "npm"}"#).unwrap();
        std::fs::create_dir(p("foreign")).unwrap();
        std::fs::write(
            p("foreign").join(MANIFEST_FILE),
            r#"{"format_version": 2, "model": {}, "saes": [], "created_by": "other-tool"}"#,
        )
        .unwrap();
        for name in ["user", "file", "other", "foreign"] {
            let err = check_replaceable(&p(name)).unwrap_err();
            assert!(matches!(err, Error::NotOurs { .. }), "{name}: {err}");
            assert!(err.is_user_error());
        }
        // Refused at the swap too, and the user's directory is untouched.
        let tmp = tmp_path(&p("user")).unwrap();
        dir_with(&tmp, "new", true);
        for allow_exchange in [true, false] {
            assert!(swap_into_place(&tmp, &p("user"), allow_exchange).is_err());
            assert_eq!(content(&p("user")), "precious");
            assert!(!p("user").join(MANIFEST_FILE).exists());
        }
        assert_eq!(std::fs::read_to_string(p("file")).unwrap(), "precious");
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
