//! The resumable journal of a run: one JSON line per finished feature, appended beside the
//! index in `{index}.explain-journal/{action}-{sae}.jsonl` and fsynced in groups (at least
//! every [`SYNC_EVERY`]), so a stopped run loses at most the last moments of work and resumes
//! with the features it has not finished. Nothing in the journal is visible in the published
//! index until the run publishes; the journal is then removed.
//!
//! A line cut short by a crash (the last one, without its newline) is dropped on open; any
//! other line that does not parse is an error naming the file and line.
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Longest time a finished feature waits for its line to be fsynced.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);

/// The journal path of `action` (`explain`, `score`) on `sae` of the index at `index`.
pub fn journal_path(index: &Path, action: &str, sae: &str) -> PathBuf {
    let name = index
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".into());
    let dir = index
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(format!("{name}.explain-journal"));
    dir.join(format!("{action}-{sae}.jsonl"))
}

/// An open journal of entries `T`.
pub struct Journal<T> {
    path: PathBuf,
    file: std::fs::File,
    last_sync: Instant,
    dirty: bool,
    _entries: std::marker::PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    /// Opens (creating it and its folder when missing) the journal at `path` and returns the
    /// entries already in it.
    pub fn open(path: &Path) -> Result<(Self, Vec<T>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut entries = Vec::new();
        let mut keep_bytes = 0u64;
        if path.exists() {
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let mut reader = std::io::BufReader::new(f);
            let mut line = String::new();
            let mut n = 0;
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .map_err(|e| Error::io(path, e))?;
                if read == 0 {
                    break;
                }
                n += 1;
                if !line.ends_with('\n') {
                    tracing::warn!(path = %path.display(), line = n, "dropping a journal line cut short by an interruption");
                    break;
                }
                let entry: T =
                    serde_json::from_str(line.trim_end()).map_err(|e| Error::BadLine {
                        path: path.to_path_buf(),
                        line: n,
                        detail: e.to_string(),
                    })?;
                entries.push(entry);
                keep_bytes += read as u64;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        // Cut a partial last line so the next entry starts on a line of its own.
        if file.metadata().map_err(|e| Error::io(path, e))?.len() > keep_bytes {
            file.set_len(keep_bytes).map_err(|e| Error::io(path, e))?;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                last_sync: Instant::now(),
                dirty: false,
                _entries: std::marker::PhantomData,
            },
            entries,
        ))
    }

    /// Appends one entry (one `write` of the whole line); fsyncs when the last sync is older
    /// than [`SYNC_EVERY`].
    pub fn append(&mut self, entry: &T) -> Result<()> {
        let mut line = serde_json::to_string(entry).map_err(|e| Error::BadLine {
            path: self.path.clone(),
            line: 0,
            detail: format!("could not serialize an entry: {e}"),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        self.dirty = true;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Fsyncs what was appended.
    pub fn sync(&mut self) -> Result<()> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| Error::io(&self.path, e))?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the journal (after its entries were published), and its folder when empty.
    pub fn remove(self) -> Result<()> {
        let path = self.path.clone();
        drop(self);
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        if let Some(dir) = path.parent() {
            // Other runs' journals may still be there.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

impl<T> Drop for Journal<T> {
    fn drop(&mut self) {
        if self.dirty {
            let _ = self.file.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct E {
        f: u32,
    }

    #[test]
    fn entries_survive_reopen_and_a_cut_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(&dir.path().join("idx"), "explain", "L6R-8x");
        assert!(path.ends_with("idx.explain-journal/explain-L6R-8x.jsonl"));
        {
            let (mut j, old) = Journal::<E>::open(&path).unwrap();
            assert!(old.is_empty());
            j.append(&E { f: 1 }).unwrap();
            j.append(&E { f: 2 }).unwrap();
        }
        // A crash in the middle of a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"f\": 3").unwrap();
        drop(f);
        let (mut j, old) = Journal::<E>::open(&path).unwrap();
        assert_eq!(old, vec![E { f: 1 }, E { f: 2 }]);
        j.append(&E { f: 4 }).unwrap();
        drop(j);
        let (j, old) = Journal::<E>::open(&path).unwrap();
        assert_eq!(old, vec![E { f: 1 }, E { f: 2 }, E { f: 4 }]);
        j.remove().unwrap();
        assert!(!path.exists() && !path.parent().unwrap().exists());
    }

    #[test]
    fn a_bad_line_in_the_middle_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "{\"f\": 1}\nnot json\n{\"f\": 2}\n").unwrap();
        let e = Journal::<E>::open(&path).err().unwrap();
        let msg = e.to_string();
        assert!(msg.contains("j.jsonl:2:"), "{msg}");
    }
}
