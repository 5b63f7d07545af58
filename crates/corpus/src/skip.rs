//! Skipped input: what was skipped, where, and why, plus the end-of-run summary.
//!
//! Invariant: every record or file that does not become a [`Document`](crate::Document) for a
//! reason other than being blank is one [`Skip`]: `SkipReport::skipped` counts them all, the first
//! [`SkipReport::MAX_SHOWN`] are kept in full, and per-kind counts are kept for the summary.
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where in a file a skipped item lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The whole file (or its remainder, when the detail says so).
    File,
    /// A 1-based line of a line-oriented file (JSONL, `.txt` lines, and parse errors in `.json`).
    Line(u64),
    /// A 0-based record index: an element of a `.json` list or a row of a `.parquet` file.
    Record(u64),
}

/// Why an item was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipKind {
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// A line or file that is not valid JSON, or JSON of the wrong shape (not an object / a list).
    MalformedJson,
    /// A record without the text field / column (or with a null text).
    MissingText,
    /// A record whose text field is not a string.
    NonStringText,
    /// A truncated or corrupt compressed stream, or a corrupt Parquet file.
    Corrupt,
    /// A file with no content.
    EmptyFile,
    /// A file or line holding NUL bytes: binary data, not text.
    Binary,
    /// A document (or record) larger than the size cap.
    TooLarge,
    /// An I/O error while reading the file.
    Io,
    /// The tokenizer failed on the document.
    Tokenizer,
}

impl SkipKind {
    /// Short human-readable name, as used in reports.
    pub fn name(self) -> &'static str {
        match self {
            SkipKind::InvalidUtf8 => "invalid UTF-8",
            SkipKind::MalformedJson => "malformed JSON",
            SkipKind::MissingText => "missing text",
            SkipKind::NonStringText => "non-string text",
            SkipKind::Corrupt => "corrupt data",
            SkipKind::EmptyFile => "empty file",
            SkipKind::Binary => "binary data",
            SkipKind::TooLarge => "too large",
            SkipKind::Io => "I/O error",
            SkipKind::Tokenizer => "tokenizer error",
        }
    }
}

impl fmt::Display for SkipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One skipped record or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The file, as resolved from the corpus spec.
    pub file: PathBuf,
    /// Where in the file.
    pub location: Location,
    /// The class of problem.
    pub kind: SkipKind,
    /// Specifics (the parser's message, the sizes involved...).
    pub detail: String,
}

impl Skip {
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        location: Location,
        kind: SkipKind,
        detail: impl Into<String>,
    ) -> Self {
        Skip {
            file: file.into(),
            location,
            kind,
            detail: detail.into(),
        }
    }

    /// `kind: detail`, the reason without the location.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.kind, self.detail)
    }
}

/// `file:line: kind: detail`, `file (record N): kind: detail` or `file: kind: detail`.
impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.location {
            Location::File => write!(f, "{file}: {}", self.reason()),
            Location::Line(l) => write!(f, "{file}:{l}: {}", self.reason()),
            Location::Record(r) => write!(f, "{file} (record {r}): {}", self.reason()),
        }
    }
}

/// The skips of a run: a count, the first few in full, and counts per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipReport {
    /// Number of skipped records and files.
    pub skipped: u64,
    /// The first [`SkipReport::MAX_SHOWN`] skips, in corpus order.
    pub first: Vec<Skip>,
    /// Count per kind.
    pub by_kind: BTreeMap<SkipKind, u64>,
}

impl SkipReport {
    /// How many skips are kept in full.
    pub const MAX_SHOWN: usize = 20;

    /// Counts `skip`, keeping it if it is among the first [`Self::MAX_SHOWN`].
    pub fn record(&mut self, skip: Skip) {
        tracing::debug!(%skip, "skipped corpus input");
        self.skipped += 1;
        *self.by_kind.entry(skip.kind).or_default() += 1;
        if self.first.len() < Self::MAX_SHOWN {
            self.first.push(skip);
        }
    }

    /// Whether nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.skipped == 0
    }
}

/// The end-of-run summary: a count line, then one line per skip shown.
impl fmt::Display for SkipReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.skipped == 0 {
            return f.write_str("no corpus input skipped");
        }
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        write!(
            f,
            "skipped {} corpus item{} ({})",
            self.skipped,
            if self.skipped == 1 { "" } else { "s" },
            kinds.join(", ")
        )?;
        if self.skipped > self.first.len() as u64 {
            write!(f, "; first {} shown", self.first.len())?;
        }
        for s in &self.first {
            write!(f, "\n  {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_truncates() {
        let mut r = SkipReport::default();
        assert_eq!(r.to_string(), "no corpus input skipped");
        for i in 0..25 {
            r.record(Skip::new(
                "a.jsonl",
                Location::Line(i + 1),
                SkipKind::MalformedJson,
                "x",
            ));
        }
        r.record(Skip::new(
            "b.json",
            Location::Record(3),
            SkipKind::NonStringText,
            "a number",
        ));
        assert_eq!(r.skipped, 26);
        assert_eq!(r.first.len(), 20);
        let s = r.to_string();
        assert!(s.starts_with(
            "skipped 26 corpus items (25 malformed JSON, 1 non-string text); first 20 shown\n  a.jsonl:1: malformed JSON: x"
        ), "{s}");
        assert_eq!(s.lines().count(), 21);
    }
}
