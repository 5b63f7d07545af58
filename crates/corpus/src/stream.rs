//! [`ContextStream`]: documents → tokens → windows, in chunks, with tokenization in parallel.
//!
//! The stream works in *batches* of about [`BATCH_BYTES`] of text. A batch is a list of
//! *segments*: whole documents, or pieces of at most [`SEGMENT_BYTES`] of a long one. Segments are
//! tokenized in parallel on the rayon pool while the next batch is read (`rayon::join`), then cut
//! into windows sequentially, in order, so `context_id`s are dense and in corpus order whatever
//! the thread count. Each batch becomes one chunk (`Vec<Context>`), so memory is bounded by about
//! two batches of text and their tokens, independent of corpus and document size.
//!
//! Segmentation of long documents: a piece ends just before a single ASCII space that sits between
//! two non-whitespace bytes (searching back at most [`SPLIT_SEARCH_BYTES`] from the size limit),
//! which is a pre-token boundary for GPT-2/Llama-3-style byte-level, Metaspace and whitespace
//! pre-tokenizers, so the tokens are the same as tokenizing the whole document. Without such a
//! space (e.g. long runs of CJK text) the piece ends at a char boundary and the tokens next to it
//! may differ from whole-document tokenization.
use std::sync::Arc;

use rayon::prelude::*;
use tokenizers::Tokenizer;

use crate::context::{ceil_boundary, floor_boundary, Context, ContextConfig, DocText, Windower};
use crate::documents::Documents;
use crate::skip::{Location, Skip, SkipKind, SkipReport};
use crate::{Error, Result};

/// Text per batch (and so per chunk of contexts): 1 MiB.
pub const BATCH_BYTES: usize = 1 << 20;
/// Largest piece of a document tokenized at once: 64 KiB.
pub const SEGMENT_BYTES: usize = 64 << 10;
/// How far back from [`SEGMENT_BYTES`] a split point (a space between words) is looked for.
pub const SPLIT_SEARCH_BYTES: usize = 4 << 10;

/// A piece of a document to tokenize.
struct Seg {
    doc: Arc<DocText>,
    start: usize,
    end: usize,
    /// Last piece of its document.
    last: bool,
}

/// Segments read for one round, and how reading ended.
#[derive(Default)]
struct Batch {
    segs: Vec<Seg>,
    /// A strict-mode error met after these segments.
    error: Option<Error>,
    /// The documents are exhausted after these segments.
    exhausted: bool,
}

/// The reading side: documents and the unread rest of a long one.
struct Reader {
    docs: Documents,
    /// A document whose pieces from this byte offset on are not yet in a batch.
    pending: Option<(Arc<DocText>, usize)>,
}

impl Reader {
    fn fill(&mut self) -> Batch {
        let mut batch = Batch::default();
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            let (doc, start) = match self.pending.take() {
                Some(p) => p,
                None => match self.docs.next() {
                    None => {
                        batch.exhausted = true;
                        break;
                    }
                    Some(Err(e)) => {
                        batch.error = Some(e);
                        break;
                    }
                    Some(Ok(d)) if d.text.is_empty() => continue,
                    Some(Ok(d)) => {
                        let file = self.docs.current_path().unwrap_or_default();
                        let doc = DocText {
                            doc_id: d.doc_id,
                            file,
                            text: d.text,
                        };
                        (Arc::new(doc), 0)
                    }
                },
            };
            let end = split_point(&doc.text, start);
            let last = end == doc.text.len();
            bytes += end - start;
            if !last {
                self.pending = Some((doc.clone(), end));
            }
            batch.segs.push(Seg {
                doc,
                start,
                end,
                last,
            });
        }
        batch
    }
}

/// End of the piece of `text` starting at `start`.
fn split_point(text: &str, start: usize) -> usize {
    if text.len() - start <= SEGMENT_BYTES {
        return text.len();
    }
    let target = start + SEGMENT_BYTES;
    let b = text.as_bytes();
    let lo = target.saturating_sub(SPLIT_SEARCH_BYTES).max(start + 1);
    (lo..target)
        .rev()
        .find(|&p| {
            b[p] == b' ' && !b[p - 1].is_ascii_whitespace() && !b[p + 1].is_ascii_whitespace()
        })
        .unwrap_or_else(|| floor_boundary(text, target).max(ceil_boundary(text, start + 1)))
}

/// Token ids and absolute byte offsets of one segment.
type Tokens = std::result::Result<(Vec<u32>, Vec<(usize, usize)>), String>;

fn tokenize(tokenizer: &Tokenizer, seg: &Seg) -> Tokens {
    let piece = &seg.doc.text[seg.start..seg.end];
    let enc = tokenizer.encode(piece, false).map_err(|e| e.to_string())?;
    let offsets = enc
        .get_offsets()
        .iter()
        .map(|&(s, e)| {
            let s = floor_boundary(piece, s);
            let e = ceil_boundary(piece, e).max(s);
            (seg.start + s, seg.start + e)
        })
        .collect();
    Ok((enc.get_ids().to_vec(), offsets))
}

/// The tokenizer as used for contexts: no post-processor (its offset trimming would break the
/// round-trip; without special tokens it adds nothing), no truncation, no padding.
fn prepare(tokenizer: &Tokenizer) -> Result<Tokenizer> {
    let mut t = tokenizer.clone();
    t.with_post_processor(None::<tokenizers::PostProcessorWrapper>)
        .with_padding(None)
        .with_truncation(None)
        .map_err(|e| Error::InvalidConfig(format!("tokenizer: {e}")))?;
    Ok(t)
}

/// Streaming iterator over chunks of [`Context`]s. See the [module docs](self).
pub struct ContextStream {
    reader: Reader,
    tokenizer: Option<Tokenizer>,
    cfg: ContextConfig,
    windower: Windower,
    prefetched: Option<Batch>,
    /// Document whose remaining pieces are dropped (its tokenization failed).
    failed: Option<Arc<DocText>>,
    deferred: Option<Error>,
    next_id: u64,
    tokens: u64,
    finished: bool,
}

impl std::fmt::Debug for ContextStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextStream")
            .field("cfg", &self.cfg)
            .field("contexts", &self.next_id)
            .field("tokens", &self.tokens)
            .field("finished", &self.finished)
            .finish()
    }
}

/// Contexts of `docs` tokenized by `tokenizer`. Invalid configuration is reported as the first
/// item of the stream.
pub fn contexts(docs: Documents, tokenizer: Arc<Tokenizer>, cfg: ContextConfig) -> ContextStream {
    let prepared = cfg.validate().and_then(|()| prepare(&tokenizer));
    let (tokenizer, deferred) = match prepared {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e)),
    };
    ContextStream {
        reader: Reader {
            docs,
            pending: None,
        },
        tokenizer,
        windower: Windower::new(&cfg),
        cfg,
        prefetched: None,
        failed: None,
        deferred,
        next_id: 0,
        tokens: 0,
        finished: false,
    }
}

impl ContextStream {
    /// What was skipped so far; complete once the stream has ended.
    pub fn skip_report(&self) -> &SkipReport {
        self.reader.docs.skip_report()
    }

    /// Contexts emitted so far.
    pub fn contexts_emitted(&self) -> u64 {
        self.next_id
    }

    /// Tokens (BOS included) in the contexts emitted so far.
    pub fn tokens_emitted(&self) -> u64 {
        self.tokens
    }

    /// Documents read so far (including some read ahead of the contexts emitted).
    pub fn documents_read(&self) -> u64 {
        self.reader.docs.yielded()
    }

    /// The configuration.
    pub fn config(&self) -> &ContextConfig {
        &self.cfg
    }

    /// Numbers `windows` and appends them to `out`; stops the stream at the token bound.
    fn emit(&mut self, windows: Vec<Context>, out: &mut Vec<Context>) {
        for mut c in windows {
            if self.finished {
                return;
            }
            let n = c.tokens.len() as u64;
            if self.cfg.max_tokens.is_some_and(|m| self.tokens + n > m) {
                self.finished = true;
                return;
            }
            c.context_id = self.next_id;
            self.next_id += 1;
            self.tokens += n;
            out.push(c);
        }
    }

    /// Cuts the tokenized segments of `batch` into numbered contexts.
    fn assemble(&mut self, segs: Vec<Seg>, results: Vec<Tokens>) -> Result<Vec<Context>> {
        let mut out = Vec::new();
        for (seg, res) in segs.into_iter().zip(results) {
            if self.finished {
                break;
            }
            if self
                .failed
                .as_ref()
                .is_some_and(|d| Arc::ptr_eq(d, &seg.doc))
            {
                if seg.last {
                    self.failed = None;
                }
                continue;
            }
            let mut windows = Vec::new();
            match res {
                Ok((ids, offsets)) => self.windower.push(&seg.doc, &ids, &offsets, &mut windows),
                Err(e) => {
                    self.windower.discard();
                    if !seg.last {
                        self.failed = Some(seg.doc.clone());
                    }
                    let skip = Skip::new(
                        seg.doc.file.clone(),
                        Location::File,
                        SkipKind::Tokenizer,
                        format!("document {}: {e}", seg.doc.doc_id),
                    );
                    if let Err(err) = self.reader.docs.record_skip(skip) {
                        self.emit(windows, &mut out);
                        self.deferred = Some(err);
                        return Ok(out);
                    }
                    continue;
                }
            }
            if seg.last {
                self.windower.finish(&mut windows);
            }
            self.emit(windows, &mut out);
        }
        Ok(out)
    }
}

impl Iterator for ContextStream {
    type Item = Result<Vec<Context>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.deferred.take() {
                self.finished = true;
                return Some(Err(e));
            }
            if self.finished {
                return None;
            }
            let batch = match self.prefetched.take() {
                Some(b) => b,
                None => self.reader.fill(),
            };
            let more = batch.error.is_none() && !batch.exhausted;
            // Invariant: `tokenizer` is None only with `deferred` set, handled above.
            let tokenizer = self.tokenizer.as_ref()?;
            let reader = &mut self.reader;
            let (results, next) = rayon::join(
                || {
                    batch
                        .segs
                        .par_iter()
                        .map(|s| tokenize(tokenizer, s))
                        .collect::<Vec<_>>()
                },
                || more.then(|| reader.fill()),
            );
            self.prefetched = next;
            let chunk = match self.assemble(batch.segs, results) {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            if let Some(e) = batch.error {
                self.deferred.get_or_insert(e);
            } else if batch.exhausted {
                self.finished = true;
            }
            if !chunk.is_empty() {
                return Some(Ok(chunk));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points() {
        let word = "abcdefg ";
        let text = word.repeat(SEGMENT_BYTES / word.len() * 3);
        let p = split_point(&text, 0);
        assert!(p <= SEGMENT_BYTES && p > SEGMENT_BYTES - SPLIT_SEARCH_BYTES);
        assert_eq!(&text[p..p + 2], " a");
        let cjk = "語".repeat(SEGMENT_BYTES);
        let p = split_point(&cjk, 0);
        assert!(cjk.is_char_boundary(p) && p > 0 && p <= SEGMENT_BYTES);
        assert_eq!(split_point("short", 0), 5);
    }
}
