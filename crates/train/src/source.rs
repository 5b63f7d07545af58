//! Where training rows come from: the [`ActivationSource`] trait, the model-backed source and
//! the shuffle buffer that decorrelates consecutive tokens with bounded memory.
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use scopedex_corpus::{Context, ContextConfig, ContextStream, CorpusSpec};
use scopedex_model::{load_tokenizer, Backend, CapturePlan, HookPoint, Model};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// A chunk of rows: for each hook of the source, `[n, d]` f32 row-major; row `r` of every hook
/// is the same token.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Number of rows.
    pub n: usize,
    /// One `[n, d]` array per hook, in [`ActivationSource::hooks`] order.
    pub data: Vec<Vec<f32>>,
}

/// A stream of activation rows at a fixed set of hooks.
pub trait ActivationSource {
    /// The hooks, in the order of [`Rows::data`].
    fn hooks(&self) -> &[String];
    /// Row width (the model's hidden size).
    fn d_model(&self) -> usize;
    /// The next chunk of rows, `None` when the stream is exhausted.
    fn next_rows(&mut self) -> Result<Option<Rows>>;
}

/// Activations of a model over a corpus: contexts of `ctx_len` tokens (BOS first), forwarded
/// `batch_contexts` at a time up to the deepest hook; BOS rows are dropped (their activations
/// are outliers that the index excludes too).
pub struct ModelSource {
    model: Model,
    stream: ContextStream,
    pending: VecDeque<Context>,
    hooks: Vec<HookPoint>,
    names: Vec<String>,
    bos: bool,
    batch_contexts: usize,
    /// Tokens forwarded so far (BOS included).
    pub tokens_forwarded: u64,
}

impl ModelSource {
    /// Opens the model and the corpus stream.
    pub fn open(
        model_path: &Path,
        corpus: &CorpusSpec,
        hooks: &[String],
        ctx_len: usize,
        batch_contexts: usize,
        backend: &Backend,
    ) -> Result<ModelSource> {
        let hook_points = hooks
            .iter()
            .map(|h| h.parse::<HookPoint>())
            .collect::<scopedex_model::Result<Vec<_>>>()?;
        let plan = CapturePlan::new(hook_points.iter().copied());
        // Only the blocks up to the deepest hook are loaded; `validate` below still checks the
        // hooks against the model's full depth.
        let depth = plan.blocks_needed(usize::MAX);
        let model = Model::load_blocks(model_path, backend, depth)?;
        let tokenizer = load_tokenizer(model_path)?;
        plan.validate(model.config().n_layers)?;
        // SAEs are trained on one width of activations, the residual stream's.
        let d_model = model.config().d_model;
        if let Some(h) = hook_points
            .iter()
            .find(|h| model.hook_width(**h) != d_model)
        {
            return Err(crate::Error::InvalidConfig(format!(
                "hook {h} is {} wide, not the residual stream's {d_model}: train-sae trains on \
                 residual-width hooks",
                model.hook_width(*h)
            )));
        }
        let cfg = ContextConfig::new(ctx_len, tokenizer.bos_id);
        cfg.validate()?;
        let docs = corpus.documents()?;
        let stream = scopedex_corpus::contexts(docs, Arc::new(tokenizer.tokenizer.clone()), cfg);
        Ok(ModelSource {
            model,
            stream,
            pending: VecDeque::new(),
            hooks: hook_points,
            names: hooks.to_vec(),
            bos: tokenizer.bos_id.is_some(),
            batch_contexts: batch_contexts.max(1),
            tokens_forwarded: 0,
        })
    }
}

impl ActivationSource for ModelSource {
    fn hooks(&self) -> &[String] {
        &self.names
    }

    fn d_model(&self) -> usize {
        self.model.config().d_model
    }

    fn next_rows(&mut self) -> Result<Option<Rows>> {
        while self.pending.len() < self.batch_contexts {
            match self.stream.next() {
                Some(chunk) => self.pending.extend(chunk?),
                None => break,
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let n_take = self.batch_contexts.min(self.pending.len());
        let batch: Vec<Context> = self.pending.drain(..n_take).collect();
        let seqs: Vec<&[u32]> = batch.iter().map(|c| c.tokens.as_slice()).collect();
        self.tokens_forwarded += seqs.iter().map(|s| s.len() as u64).sum::<u64>();
        let captured = self
            .model
            .forward_capture(&seqs, &CapturePlan::new(self.hooks.iter().copied()))?;
        let d = self.d_model();
        // Row r of valid_rows is (sequence, position) in order; keep positions ≥ 1 when BOS.
        let keep: Vec<bool> = seqs
            .iter()
            .flat_map(|s| (0..s.len()).map(|p| !(self.bos && p == 0)))
            .collect();
        let n = keep.iter().filter(|k| **k).count();
        let mut data = Vec::with_capacity(self.hooks.len());
        for &h in &self.hooks {
            let all = captured.valid_rows(h)?.flatten_all()?.to_vec1::<f32>()?;
            let mut rows = Vec::with_capacity(n * d);
            for (r, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
                rows.extend_from_slice(&all[r * d..(r + 1) * d]);
            }
            data.push(rows);
        }
        Ok(Some(Rows { n, data }))
    }
}

/// A shuffle buffer of `cap` rows per hook. Rows are served in random order; when fewer than
/// half the slots hold unserved rows, the served slots are refilled from the source and the
/// unserved set reshuffled, so each row is served exactly once and memory stays at `cap` rows.
pub struct ShuffleBuffer {
    d: usize,
    cap: usize,
    slots: Vec<Vec<f32>>,
    unserved: Vec<u32>,
    free: Vec<u32>,
    carry: Option<(Rows, usize)>,
    exhausted: bool,
    rng: Rng,
}

impl ShuffleBuffer {
    /// An empty buffer for `n_hooks` hooks of width `d`.
    pub fn new(n_hooks: usize, d: usize, cap: usize, seed: u64) -> ShuffleBuffer {
        ShuffleBuffer {
            d,
            cap,
            slots: vec![vec![0f32; cap * d]; n_hooks],
            unserved: Vec::with_capacity(cap),
            free: (0..cap as u32).rev().collect(),
            carry: None,
            exhausted: false,
            rng: Rng::new(seed),
        }
    }

    /// Takes `n` rows straight from the source (for the held-out set), bypassing the buffer.
    pub fn take_direct(&mut self, src: &mut dyn ActivationSource, n: usize) -> Result<Rows> {
        let mut out = Rows {
            n: 0,
            data: vec![Vec::new(); self.slots.len()],
        };
        while out.n < n {
            let Some((rows, off)) = self.next_source_row_chunk(src)? else {
                break;
            };
            let take = (rows.n - off).min(n - out.n);
            for (o, h) in out.data.iter_mut().zip(&rows.data) {
                o.extend_from_slice(&h[off * self.d..(off + take) * self.d]);
            }
            out.n += take;
            if off + take < rows.n {
                self.carry = Some((rows, off + take));
            }
        }
        Ok(out)
    }

    fn next_source_row_chunk(
        &mut self,
        src: &mut dyn ActivationSource,
    ) -> Result<Option<(Rows, usize)>> {
        if let Some(c) = self.carry.take() {
            return Ok(Some(c));
        }
        if self.exhausted {
            return Ok(None);
        }
        loop {
            match src.next_rows()? {
                Some(r) if r.n == 0 => continue,
                Some(r) => return Ok(Some((r, 0))),
                None => {
                    self.exhausted = true;
                    return Ok(None);
                }
            }
        }
    }

    /// Fills every free slot it can, then reshuffles the unserved rows.
    pub fn refill(&mut self, src: &mut dyn ActivationSource) -> Result<()> {
        while !self.free.is_empty() {
            let Some((rows, mut off)) = self.next_source_row_chunk(src)? else {
                break;
            };
            while off < rows.n {
                let Some(slot) = self.free.pop() else { break };
                let s = slot as usize * self.d;
                for (buf, h) in self.slots.iter_mut().zip(&rows.data) {
                    buf[s..s + self.d].copy_from_slice(&h[off * self.d..(off + 1) * self.d]);
                }
                self.unserved.push(slot);
                off += 1;
            }
            if off < rows.n {
                self.carry = Some((rows, off));
            }
        }
        self.rng.shuffle(&mut self.unserved);
        Ok(())
    }

    /// Rows currently held and not yet served.
    pub fn unserved(&self) -> usize {
        self.unserved.len()
    }

    /// The unserved rows of hook `h` (for norm estimation), in buffer order.
    pub fn peek_rows(&self, h: usize) -> impl Iterator<Item = &[f32]> + '_ {
        self.unserved.iter().map(move |&s| {
            let a = s as usize * self.d;
            &self.slots[h][a..a + self.d]
        })
    }

    /// The next batch of up to `rows` rows (one `[n, d]` array per hook), refilling first when
    /// half the buffer has been served; `None` once the source and the buffer are empty.
    pub fn next_batch(
        &mut self,
        src: &mut dyn ActivationSource,
        rows: usize,
    ) -> Result<Option<Rows>> {
        if self.unserved.len() < self.cap / 2 && !self.exhausted {
            self.refill(src)?;
        }
        let n = rows.min(self.unserved.len());
        if n == 0 {
            return Ok(None);
        }
        let mut out = Rows {
            n,
            data: vec![Vec::with_capacity(n * self.d); self.slots.len()],
        };
        for _ in 0..n {
            let slot = self.unserved.pop().expect("invariant: n ≤ unserved.len()");
            let a = slot as usize * self.d;
            for (o, buf) in out.data.iter_mut().zip(&self.slots) {
                o.extend_from_slice(&buf[a..a + self.d]);
            }
            self.free.push(slot);
        }
        Ok(Some(out))
    }
}

/// Errors out when a source yields no rows at all.
pub(crate) fn require_rows(rows: &Rows, what: &str) -> Result<()> {
    if rows.n == 0 {
        return Err(Error::NoData(format!(
            "the source produced no rows for {what}"
        )));
    }
    Ok(())
}
