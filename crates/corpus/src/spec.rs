//! What to read: [`CorpusSpec`] and its expansion into a sorted list of [`CorpusFile`]s.
//!
//! A path argument is a file, a directory (walked recursively) or a glob pattern (`*`, `?`, `[`).
//! Directories and globs keep only files with a supported extension (other files, such as a
//! `README.md` beside the corpus, are ignored and logged at debug level); a file named explicitly
//! must have one. The result is sorted by path and deduplicated, so runs are deterministic.
//!
//! Each file gets a *document-id prefix*: its path relative to the argument that found it (the
//! directory, the glob's literal leading directories, or the file's own name for a file
//! argument). When two files from different arguments share a prefix, both use their full path.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A corpus file format, chosen by extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.jsonl`: one JSON object per line with a text field.
    Jsonl,
    /// `.jsonl.zst`: zstd-compressed JSONL (SlimPajama's layout).
    JsonlZst,
    /// `.txt`: one document per file, or one per line with [`CorpusSpec::txt_lines`].
    Txt,
    /// `.parquet` with a string text column.
    Parquet,
    /// `.json` holding a list of strings.
    JsonList,
}

impl Format {
    /// The format of `path` by its extension, if supported.
    pub fn of(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".jsonl.zst") {
            Some(Format::JsonlZst)
        } else if name.ends_with(".jsonl") {
            Some(Format::Jsonl)
        } else if name.ends_with(".txt") {
            Some(Format::Txt)
        } else if name.ends_with(".parquet") {
            Some(Format::Parquet)
        } else if name.ends_with(".json") {
            Some(Format::JsonList)
        } else {
            None
        }
    }
}

/// One file of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    /// The file's path (as found from the spec's argument).
    pub path: PathBuf,
    /// Prefix of its documents' ids: the path relative to the argument that found it.
    pub id_prefix: String,
    /// Its format.
    pub format: Format,
    /// Its size in bytes (on disk, compressed for `.jsonl.zst`).
    pub size: u64,
}

/// What corpus to read and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusSpec {
    /// Files, directories or glob patterns.
    pub paths: Vec<PathBuf>,
    /// `.txt` files hold one document per line (blank lines are not documents).
    pub txt_lines: bool,
    /// The JSONL field / Parquet column holding the text (default `text`).
    pub text_column: String,
    /// Stop after this many documents.
    pub max_docs: Option<u64>,
    /// Stop at the first bad record or file with [`Error::BadInput`] instead of skipping it.
    pub strict: bool,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        CorpusSpec {
            paths: Vec::new(),
            txt_lines: false,
            text_column: "text".to_string(),
            max_docs: None,
            strict: false,
        }
    }
}

impl CorpusSpec {
    /// A spec reading `paths` with the defaults (text field `text`, skip bad input).
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        CorpusSpec {
            paths: paths.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Expands the paths into the corpus files, sorted by path.
    pub fn resolve_files(&self) -> Result<Vec<CorpusFile>> {
        if self.paths.is_empty() {
            return Err(Error::InvalidConfig("no corpus path given".into()));
        }
        if self.text_column.is_empty() {
            return Err(Error::InvalidConfig("empty text column name".into()));
        }
        // path -> (id prefix, format); BTreeMap sorts and deduplicates.
        let mut found = Found::new();
        for arg in &self.paths {
            if expand(arg, &mut found)? == 0 {
                return Err(Error::NoFiles {
                    what: arg.display().to_string(),
                });
            }
        }
        // Disambiguate prefixes shared by distinct files.
        let mut uses: HashMap<String, usize> = HashMap::new();
        for (prefix, _) in found.values() {
            *uses.entry(prefix.clone()).or_default() += 1;
        }
        let mut files = Vec::with_capacity(found.len());
        for (path, (prefix, format)) in found {
            let size = std::fs::metadata(&path)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?
                .len();
            let id_prefix = if uses[&prefix] > 1 {
                slash_path(&path)
            } else {
                prefix
            };
            files.push(CorpusFile {
                path,
                id_prefix,
                format,
                size,
            });
        }
        Ok(files)
    }
}

fn is_glob(arg: &Path) -> bool {
    arg.to_string_lossy().contains(['*', '?', '['])
}

/// `path` with `/` separators, as ids are written.
fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn relative(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => slash_path(rel),
        _ => slash_path(path),
    }
}

type Found = BTreeMap<PathBuf, (String, Format)>;

/// Adds the files `arg` names to `found`; returns how many it matched (duplicates included).
fn expand(arg: &Path, found: &mut Found) -> Result<usize> {
    if is_glob(arg) && !arg.exists() {
        let pattern = arg.to_string_lossy().into_owned();
        // The literal leading directories of the pattern are the root for ids.
        let root: PathBuf = arg
            .components()
            .take_while(|c| !is_glob(Path::new(c.as_os_str())))
            .collect();
        let paths = glob::glob(&pattern).map_err(|e| Error::Glob {
            pattern: pattern.clone(),
            detail: e.to_string(),
        })?;
        let mut n = 0;
        for entry in paths {
            let path = entry.map_err(|e| Error::Io {
                path: e.path().to_path_buf(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            if path.is_dir() {
                n += walk(&path, &root, found)?;
            } else {
                n += usize::from(add_if_supported(&path, &root, found));
            }
        }
        return Ok(n);
    }
    let meta = std::fs::metadata(arg).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: arg.to_path_buf(),
            }
        } else {
            Error::Io {
                path: arg.to_path_buf(),
                source,
            }
        }
    })?;
    if meta.is_dir() {
        walk(arg, arg, found)
    } else {
        let format = Format::of(arg).ok_or_else(|| Error::UnsupportedFile {
            path: arg.to_path_buf(),
        })?;
        let name = arg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| slash_path(arg));
        found.entry(arg.to_path_buf()).or_insert((name, format));
        Ok(1)
    }
}

fn add_if_supported(path: &Path, root: &Path, found: &mut Found) -> bool {
    match Format::of(path) {
        Some(format) => {
            found
                .entry(path.to_path_buf())
                .or_insert_with(|| (relative(path, root), format));
            true
        }
        None => {
            tracing::debug!(path = %path.display(), "not a corpus file, ignored");
            false
        }
    }
}

/// Recursively adds the supported files under `dir`. Symlinked directories are not followed
/// (no cycles); symlinked files are.
fn walk(dir: &Path, root: &Path, found: &mut Found) -> Result<usize> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let ty = entry.file_type().map_err(io)?;
        if ty.is_dir() {
            n += walk(&path, root, found)?;
        } else if ty.is_file() || (ty.is_symlink() && path.is_file()) {
            n += usize::from(add_if_supported(&path, root, found));
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, rel: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "x").unwrap();
        p
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            Format::of(Path::new("a/b.JSONL.zst")),
            Some(Format::JsonlZst)
        );
        assert_eq!(Format::of(Path::new("b.jsonl")), Some(Format::Jsonl));
        assert_eq!(Format::of(Path::new("b.json")), Some(Format::JsonList));
        assert_eq!(Format::of(Path::new("b.txt")), Some(Format::Txt));
        assert_eq!(Format::of(Path::new("b.parquet")), Some(Format::Parquet));
        assert_eq!(Format::of(Path::new("b.md")), None);
        assert_eq!(Format::of(Path::new("b.zst")), None);
    }

    #[test]
    fn dirs_globs_and_files_sorted_with_relative_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        touch(d, "c/doc-10.json");
        touch(d, "c/doc-2.json");
        touch(d, "c/README.md");
        touch(d, "c/sub/x.jsonl.zst");
        touch(d, "g/a.txt");
        touch(d, "g/b.parquet");
        let single = touch(d, "one.jsonl");
        let spec = CorpusSpec::new([d.join("c"), d.join("g/*.txt"), single.clone(), single]);
        let files = spec.resolve_files().unwrap();
        let ids: Vec<&str> = files.iter().map(|f| f.id_prefix.as_str()).collect();
        assert_eq!(
            ids,
            [
                "doc-10.json",
                "doc-2.json",
                "sub/x.jsonl.zst",
                "a.txt",
                "one.jsonl"
            ]
        );
        assert_eq!(files[2].format, Format::JsonlZst);
        assert_eq!(files[0].size, 1);
    }

    #[test]
    fn colliding_prefixes_use_full_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let a = touch(tmp.path(), "a/x.txt");
        let b = touch(tmp.path(), "b/x.txt");
        let spec = CorpusSpec::new([tmp.path().join("b"), tmp.path().join("a")]);
        let files = spec.resolve_files().unwrap();
        assert_eq!(files[0].path, a);
        assert_eq!(files[0].id_prefix, slash_path(&a));
        assert_eq!(files[1].id_prefix, slash_path(&b));
    }

    #[test]
    fn caller_mistakes_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let md = touch(tmp.path(), "README.md");
        let err = |spec: CorpusSpec| spec.resolve_files().unwrap_err().to_string();
        assert!(err(CorpusSpec::new([tmp.path().join("nope.jsonl")])).contains("not found"));
        assert!(err(CorpusSpec::new([md])).contains("unsupported corpus file"));
        assert!(err(CorpusSpec::new([tmp.path().join("*.jsonl")])).contains("no corpus files"));
        assert!(err(CorpusSpec::new([tmp.path()])).contains("no corpus files"));
        assert!(err(CorpusSpec::new(Vec::<PathBuf>::new())).contains("no corpus path"));
    }
}
