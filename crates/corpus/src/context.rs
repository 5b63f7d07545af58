//! Fixed-length token contexts with exact byte offsets, and the windowing that makes them.
//!
//! A document's tokens are cut into consecutive windows of `ctx_len - 1` content tokens when a
//! BOS id is set (BOS is prepended, so every window is at most `ctx_len` tokens), or `ctx_len`
//! tokens without BOS. The last window of a document may be shorter; it is never filled from the
//! next document. An empty document (or one with no tokens) yields no context.
//!
//! Offsets: `token_starts[i]..token_ends[i]` is the byte range of token `i` within
//! [`Context::text`], which is the document substring from the first content token's start to the
//! last one's end. BOS is `(0, 0)`. Ranges are the tokenizer's own offsets (before any
//! post-processor, so a byte-level `" the"` covers its leading space), made to lie on UTF-8 char
//! boundaries: when a byte-level token holds only part of a multi-byte character, its range is
//! widened to the whole character (start rounded down, end rounded up), so two consecutive tokens
//! may both cover that one character. `&text[start..end]` therefore always slices, and for
//! byte-level BPE the token ranges tile the window text in order.
use std::sync::Arc;

use crate::{Error, Result};

/// How documents become contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextConfig {
    /// Tokens per context window, BOS included when `bos_id` is set.
    pub ctx_len: usize,
    /// Token prepended to every window (Llama Scope's `prepend_bos`); `None` for no BOS.
    pub bos_id: Option<u32>,
    /// Stop before the first context that would bring the total token count (BOS included)
    /// above this. Contexts are never truncated, so a bounded run is a prefix of the full run.
    pub max_tokens: Option<u64>,
}

impl ContextConfig {
    /// Windows of `ctx_len` tokens, with `bos_id` prepended when set, no token bound.
    pub fn new(ctx_len: usize, bos_id: Option<u32>) -> Self {
        ContextConfig {
            ctx_len,
            bos_id,
            max_tokens: None,
        }
    }

    /// Content (non-BOS) tokens per window.
    pub fn content_len(&self) -> usize {
        self.ctx_len
            .saturating_sub(usize::from(self.bos_id.is_some()))
    }

    /// Checks that a window holds at least one content token.
    pub fn validate(&self) -> Result<()> {
        if self.content_len() == 0 {
            return Err(Error::InvalidConfig(format!(
                "ctx_len {} leaves no room for content tokens{}",
                self.ctx_len,
                if self.bos_id.is_some() {
                    " after BOS"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }
}

/// One context window: up to `ctx_len` tokens of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Dense id, in corpus order, from 0.
    pub context_id: u64,
    /// The document's id (see [`Document::doc_id`](crate::Document::doc_id)).
    pub doc_id: String,
    /// Token ids, BOS first when configured.
    pub tokens: Vec<u32>,
    /// Byte offset in `text` where each token starts (BOS: 0).
    pub token_starts: Vec<u32>,
    /// Byte offset in `text` where each token ends, exclusive (BOS: 0).
    pub token_ends: Vec<u32>,
    /// The document substring the window covers.
    pub text: String,
}

impl Context {
    /// The source text of token `i` (empty for BOS). `None` when `i` is out of range.
    pub fn token_text(&self, i: usize) -> Option<&str> {
        let (s, e) = (*self.token_starts.get(i)?, *self.token_ends.get(i)?);
        self.text.get(s as usize..e as usize)
    }

    /// Number of tokens, BOS included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the context has no token (never true for contexts this crate makes).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Rounds `i` down to a char boundary of `s` (clamped to its length).
pub(crate) fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Rounds `i` up to a char boundary of `s` (clamped to its length).
pub(crate) fn ceil_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A document being cut into windows: its text and its not-yet-windowed tokens.
pub(crate) struct DocText {
    pub doc_id: String,
    pub file: std::path::PathBuf,
    pub text: String,
}

/// Accumulates one document's tokens (absolute byte offsets in the document) and cuts windows.
pub(crate) struct Windower {
    content_len: usize,
    bos_id: Option<u32>,
    doc: Option<Arc<DocText>>,
    ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
}

impl Windower {
    pub fn new(cfg: &ContextConfig) -> Self {
        Windower {
            content_len: cfg.content_len(),
            bos_id: cfg.bos_id,
            doc: None,
            ids: Vec::new(),
            offsets: Vec::new(),
        }
    }

    /// Adds tokens of `doc` (which must be the current document, or start a new one after
    /// [`Self::finish`]); returns the full windows now available, without ids.
    pub fn push(
        &mut self,
        doc: &Arc<DocText>,
        ids: &[u32],
        offsets: &[(usize, usize)],
        out: &mut Vec<Context>,
    ) {
        if !self.doc.as_ref().is_some_and(|d| Arc::ptr_eq(d, doc)) {
            self.finish(out);
            self.doc = Some(doc.clone());
        }
        self.ids.extend_from_slice(ids);
        self.offsets.extend_from_slice(offsets);
        let n = self.ids.len() / self.content_len * self.content_len;
        if n > 0 {
            for w in 0..n / self.content_len {
                let r = w * self.content_len..(w + 1) * self.content_len;
                out.push(self.window(doc, &self.ids[r.clone()], &self.offsets[r]));
            }
            self.ids.drain(..n);
            self.offsets.drain(..n);
        }
    }

    /// Ends the current document: emits its short last window, if any.
    pub fn finish(&mut self, out: &mut Vec<Context>) {
        if let Some(doc) = self.doc.take() {
            if !self.ids.is_empty() {
                out.push(self.window(&doc, &self.ids, &self.offsets));
            }
        }
        self.ids.clear();
        self.offsets.clear();
    }

    /// Drops the current document's pending tokens.
    pub fn discard(&mut self) {
        self.doc = None;
        self.ids.clear();
        self.offsets.clear();
    }

    /// A context (with `context_id` 0, set by the caller) for these content tokens.
    fn window(&self, doc: &DocText, ids: &[u32], offsets: &[(usize, usize)]) -> Context {
        let start = offsets.iter().map(|o| o.0).min().unwrap_or(0);
        let end = offsets.iter().map(|o| o.1).max().unwrap_or(0).max(start);
        let n = ids.len() + usize::from(self.bos_id.is_some());
        let mut tokens = Vec::with_capacity(n);
        let mut starts = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        if let Some(bos) = self.bos_id {
            tokens.push(bos);
            starts.push(0);
            ends.push(0);
        }
        tokens.extend_from_slice(ids);
        // Windows span at most ctx_len tokens of a document capped at 64 MiB: offsets fit u32.
        starts.extend(offsets.iter().map(|o| (o.0 - start) as u32));
        ends.extend(offsets.iter().map(|o| (o.1 - start) as u32));
        Context {
            context_id: 0,
            doc_id: doc.doc_id.clone(),
            tokens,
            token_starts: starts,
            token_ends: ends,
            text: doc.text[start..end].to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let s = "aé€b"; // a(1) é(2) €(3) b(1)
        assert_eq!(floor_boundary(s, 2), 1);
        assert_eq!(ceil_boundary(s, 2), 3);
        assert_eq!(ceil_boundary(s, 4), 6);
        assert_eq!(floor_boundary(s, 99), 7);
    }

    #[test]
    fn windows_with_and_without_bos() {
        let doc = Arc::new(DocText {
            doc_id: "f:0".into(),
            file: "f".into(),
            text: "a b c d e".into(),
        });
        let ids = [1, 2, 3, 4, 5];
        let offs: Vec<(usize, usize)> = (0..5).map(|i| (2 * i, 2 * i + 1)).collect();
        let mut out = Vec::new();
        let mut w = Windower::new(&ContextConfig::new(3, Some(9)));
        w.push(&doc, &ids[..3], &offs[..3], &mut out);
        assert_eq!(out.len(), 1);
        w.push(&doc, &ids[3..], &offs[3..], &mut out);
        w.finish(&mut out);
        let toks: Vec<_> = out.iter().map(|c| c.tokens.clone()).collect();
        assert_eq!(toks, [vec![9, 1, 2], vec![9, 3, 4], vec![9, 5]]);
        assert_eq!(out[1].text, "c d");
        assert_eq!(out[1].token_starts, [0, 0, 2]);
        assert_eq!(out[1].token_text(2), Some("d"));
        assert_eq!(out[2].token_text(0), Some(""));

        let mut out = Vec::new();
        let mut w = Windower::new(&ContextConfig::new(2, None));
        w.push(&doc, &ids, &offs, &mut out);
        w.finish(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].tokens, [5]);
        assert!(ContextConfig::new(1, Some(0)).validate().is_err());
        assert!(ContextConfig::new(1, None).validate().is_ok());
    }
}
