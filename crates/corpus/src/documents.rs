//! [`Documents`]: the corpus as a stream of [`Document`]s, in a deterministic order (files sorted
//! by path, records in file order), reading one file at a time.
//!
//! Bad input never ends the stream in the default mode: each bad record or file becomes a
//! [`Skip`] in the [`SkipReport`]. With [`CorpusSpec::strict`], the first one is returned as
//! [`Error::BadInput`] and the stream ends.
use crate::document::Document;
use crate::readers::{self, Limits, Source};
use crate::skip::{Skip, SkipReport};
use crate::spec::{CorpusFile, CorpusSpec};
use crate::{Error, Result};

/// Streaming iterator over the corpus's documents. See the [module docs](self).
pub struct Documents {
    files: Vec<CorpusFile>,
    next_file: usize,
    source: Option<Box<dyn Source>>,
    txt_lines: bool,
    text_column: String,
    max_docs: Option<u64>,
    strict: bool,
    limits: Limits,
    yielded: u64,
    report: SkipReport,
    done: bool,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("files", &self.files.len())
            .field("next_file", &self.next_file)
            .field("yielded", &self.yielded)
            .field("skipped", &self.report.skipped)
            .finish()
    }
}

impl CorpusSpec {
    /// The documents of the corpus (resolving the files first).
    pub fn documents(&self) -> Result<Documents> {
        self.documents_with(Limits::default())
    }

    pub(crate) fn documents_with(&self, limits: Limits) -> Result<Documents> {
        let files = self.resolve_files()?;
        Ok(Documents {
            files,
            next_file: 0,
            source: None,
            txt_lines: self.txt_lines,
            text_column: self.text_column.clone(),
            max_docs: self.max_docs,
            strict: self.strict,
            limits,
            yielded: 0,
            report: SkipReport::default(),
            done: false,
        })
    }
}

impl Documents {
    /// The corpus files, in reading order.
    pub fn files(&self) -> &[CorpusFile] {
        &self.files
    }

    /// What was skipped so far (everything, once the iterator has ended).
    pub fn skip_report(&self) -> &SkipReport {
        &self.report
    }

    /// Path of the file being read (the last document's file).
    pub(crate) fn current_path(&self) -> Option<std::path::PathBuf> {
        let i = self.next_file.checked_sub(1)?;
        self.files.get(i).map(|f| f.path.clone())
    }

    /// Documents yielded so far.
    pub fn yielded(&self) -> u64 {
        self.yielded
    }

    /// Counts a skip found downstream (e.g. a tokenizer failure), or in strict mode returns it as
    /// the error that ends the run.
    pub(crate) fn record_skip(&mut self, skip: Skip) -> Result<()> {
        if self.strict {
            self.done = true;
            return Err(Error::BadInput(skip));
        }
        self.report.record(skip);
        Ok(())
    }
}

impl Iterator for Documents {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.max_docs.is_some_and(|m| self.yielded >= m) {
                self.done = true;
                self.source = None;
                return None;
            }
            let source = match &mut self.source {
                Some(s) => s,
                None => {
                    let file = self.files.get(self.next_file)?;
                    self.next_file += 1;
                    self.source.insert(readers::open(
                        file,
                        self.txt_lines,
                        &self.text_column,
                        self.limits,
                    ))
                }
            };
            match source.next_item() {
                None => self.source = None,
                Some(Ok(doc)) => {
                    self.yielded += 1;
                    return Some(Ok(doc));
                }
                Some(Err(skip)) => {
                    if let Err(e) = self.record_skip(skip) {
                        self.source = None;
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}
