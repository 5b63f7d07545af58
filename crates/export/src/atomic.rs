//! Crash- and disk-full-safe output files: every file is written under a temporary name in its
//! final directory, flushed, fsynced and only then renamed into place, so a file with a final
//! name (`batch-3.json`) is always complete. A failed write removes its temporary file.
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Prefix of temporary files (hidden, so importers globbing `batch-*` never see them).
pub const TMP_PREFIX: &str = ".tmp-";

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{TMP_PREFIX}{}-{name}", std::process::id()))
}

/// Writes `path` atomically with `write`, which gets a buffered writer of the temporary file.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| -> io::Result<()> {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    match result {
        Ok(()) => {
            sync_dir(path.parent().unwrap_or(Path::new(".")));
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(Error::io(path, e))
        }
    }
}

/// fsyncs a directory so renames into it are durable (best effort: not every filesystem
/// allows opening a directory).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Makes `dir` ready for an export: creates it if missing; refuses a non-empty one unless
/// `force`, in which case the entries `ours` recognises (files a previous export wrote) are
/// removed first so no stale batch outlives the new export. Other entries are left alone.
pub fn prepare_dir(dir: &Path, force: bool, ours: impl Fn(&str) -> bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!(
                "output {} exists and is not a directory",
                dir.display()
            )))
        }
        Ok(_) => {
            let entries: Vec<_> = fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .collect::<io::Result<_>>()
                .map_err(|e| Error::io(dir, e))?;
            if !entries.is_empty() && !force {
                return Err(Error::Usage(format!(
                    "output directory {} is not empty (pass --force to overwrite)",
                    dir.display()
                )));
            }
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                if ours(&name) || name.starts_with(TMP_PREFIX) {
                    let p = e.path();
                    let r = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                    r.map_err(|err| Error::io(&p, err))?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_neither_the_file_nor_a_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("batch-0.json");
        let err = write_atomic(&path, |w| {
            w.write_all(&[b'x'; 3 << 20])?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        })
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_good_write_replaces_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn prepare_refuses_non_empty_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        prepare_dir(&dir, false, |_| false).unwrap();
        fs::write(dir.join("batch-9.json"), "{}").unwrap();
        fs::write(dir.join("notes.txt"), "keep").unwrap();
        assert!(matches!(
            prepare_dir(&dir, false, |_| false),
            Err(Error::Usage(_))
        ));
        prepare_dir(&dir, true, |n| n.starts_with("batch-")).unwrap();
        assert!(!dir.join("batch-9.json").exists());
        assert!(dir.join("notes.txt").exists());
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            prepare_dir(&file, true, |_| true),
            Err(Error::Usage(_))
        ));
    }
}
