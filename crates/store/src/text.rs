//! The tantivy index of contexts (`tantivy/`): one document per context, with its text and the
//! active features of every SAE as terms.
//!
//! Schema:
//! - `context_id` (u64; indexed, fast, stored);
//! - `text` (tantivy's default tokenizer: split on non-alphanumerics, lowercase, drop tokens
//!   over 40 bytes; frequencies and positions, so phrase queries work; not stored — the text
//!   lives in RocksDB and snippets are cut from it);
//! - `feat`: pre-tokenized feature terms ([`crate::query::context_feature_terms`]): for every
//!   feature active in the context, `SAE/F` plus `SAE/F>T` for each strength bucket T it
//!   reaches, positioned at the token where the feature's activation is highest. No field
//!   norms: feature clauses are scored by constants, not by BM25 length normalisation.
//!
//! Built from `contexts.parquet`, each SAE's `context_features.parquet` and (for the strength
//! buckets) `features.parquet` `max_act`; rebuilt by `reindex`. Queries are in the language of
//! [`crate::query`]; hits are ranked by score (BM25 of the text terms, plus 1 per feature
//! clause and 1 per strength bucket the feature reaches above the one asked for, so stronger
//! firings rank first), ties by lower context_id. "More like this" ([`TextIndex::similar`])
//! scores a context by the summed weights of the feature terms it shares with the source.
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tantivy::collector::TopDocs;
use tantivy::postings::TermInfo;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, TEXT,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{PreTokenizedString, TextAnalyzer, Token};
use tantivy::{Index, IndexReader as TantivyReader, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::layout::IndexLayout;
use crate::manifest::Manifest;
use crate::parquet::TableReader;
use crate::query::{self, feature_term, Node, QueryContext, STRENGTH_BUCKETS};
use crate::records::{ContextFeaturesRecord, ContextRecord, FeatureRecord};

/// Field name of the context id.
pub const FIELD_CONTEXT_ID: &str = "context_id";
/// Field name of the context text.
pub const FIELD_TEXT: &str = "text";
/// Field name of the feature terms.
pub const FIELD_FEATURES: &str = "feat";

/// Feature terms of the source used by "more like this" at most: the highest-weighted (rarest)
/// ones, ties by term text. Bounds the query's cost for contexts with thousands of features.
pub const MAX_SIMILAR_TERMS: usize = 512;

/// Indexing memory budget (tantivy's per-thread minimum is 15 MB).
const WRITER_BUDGET: usize = 64 << 20;

struct Fields {
    id: Field,
    text: Field,
    feat: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_u64_field(FIELD_CONTEXT_ID, INDEXED | FAST | STORED);
    let text = b.add_text_field(FIELD_TEXT, TEXT);
    let feat = b.add_text_field(
        FIELD_FEATURES,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                .set_fieldnorms(false),
        ),
    );
    (b.build(), Fields { id, text, feat })
}

/// Rows of one sorted table, one at a time.
pub(crate) struct Rows<T: crate::parquet::Table> {
    reader: Option<TableReader<T>>,
    buf: std::vec::IntoIter<T>,
    pub(crate) head: Option<T>,
}

impl<T: crate::parquet::Table> Rows<T> {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let reader = if path.exists() {
            Some(TableReader::<T>::open(path)?)
        } else {
            None
        };
        let mut rows = Rows {
            reader,
            buf: Vec::new().into_iter(),
            head: None,
        };
        rows.head = rows.pull()?;
        Ok(rows)
    }

    fn pull(&mut self) -> Result<Option<T>> {
        loop {
            if let Some(r) = self.buf.next() {
                return Ok(Some(r));
            }
            match self.reader.as_mut().and_then(Iterator::next) {
                Some(batch) => self.buf = batch?.into_iter(),
                None => return Ok(None),
            }
        }
    }

    pub(crate) fn advance(&mut self) -> Result<Option<T>> {
        let next = self.pull()?;
        Ok(std::mem::replace(&mut self.head, next))
    }
}

/// `max_act` of every feature of `sae` (0 where `features.parquet` has no row).
pub(crate) fn feature_maxes(layout: &IndexLayout, sae: &str, d_sae: u32) -> Result<Vec<f32>> {
    let mut max = vec![0.0f32; d_sae as usize];
    let path = layout.features(sae);
    if path.exists() {
        for batch in TableReader::<FeatureRecord>::open(&path)? {
            for r in batch? {
                if let Some(m) = max.get_mut(r.feature as usize) {
                    *m = r.max_act;
                }
            }
        }
    }
    Ok(max)
}

/// Recreates `dir` from the Parquet files under `layout` (a missing file: no rows).
pub(crate) fn build(dir: &Path, layout: &IndexLayout, manifest: &Manifest) -> Result<u64> {
    crate::fsutil::remove_dir_all_if_exists(dir)?;
    crate::fsutil::create_dir_all(dir)?;
    let _span = tracing::info_span!("build_tantivy", path = %dir.display()).entered();
    let (schema, f) = schema();
    let t = |e| Error::tantivy(dir, e);
    let index = Index::create_in_dir(dir, schema).map_err(t)?;
    let mut writer: tantivy::IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, WRITER_BUDGET).map_err(t)?;
    // Per SAE: its context features (sorted by context id, as the writer enforces) and the
    // feature maxes the strength buckets are relative to.
    let mut saes = Vec::with_capacity(manifest.saes.len());
    for s in &manifest.saes {
        saes.push((
            s.id.as_str(),
            Rows::<ContextFeaturesRecord>::open(&layout.context_features(&s.id))?,
            feature_maxes(layout, &s.id, s.d_sae)?,
        ));
    }
    let mut n = 0u64;
    let mut contexts = Rows::<ContextRecord>::open(&layout.contexts())?;
    while let Some(c) = contexts.advance()? {
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.id, c.context_id);
        doc.add_text(f.text, &c.text);
        let mut tokens: Vec<Token> = Vec::new();
        for (sae, rows, max) in &mut saes {
            // Rows of contexts that are not in contexts.parquet are skipped.
            while rows
                .head
                .as_ref()
                .is_some_and(|r| r.context_id < c.context_id)
            {
                rows.advance()?;
            }
            if rows
                .head
                .as_ref()
                .is_some_and(|r| r.context_id == c.context_id)
            {
                let rec = rows.advance()?.expect("head checked above");
                for (text, position) in query::context_feature_terms(sae, &rec, max) {
                    tokens.push(Token {
                        offset_from: 0,
                        offset_to: 0,
                        position: position as usize,
                        text,
                        position_length: 1,
                    });
                }
            }
        }
        if !tokens.is_empty() {
            tokens.sort_by(|a, b| a.position.cmp(&b.position).then(a.text.cmp(&b.text)));
            doc.add_pre_tokenized_text(
                f.feat,
                PreTokenizedString {
                    text: String::new(),
                    tokens,
                },
            );
        }
        writer.add_document(doc).map_err(t)?;
        n += 1;
    }
    writer.commit().map_err(t)?;
    // One segment: "more like this" opens every source term's postings once per segment.
    let segments = index.searchable_segment_ids().map_err(t)?;
    if segments.len() > 1 {
        writer.merge(&segments).wait().map_err(t)?;
    }
    writer.wait_merging_threads().map_err(t)?;
    crate::fsutil::sync_tree(dir)?;
    Ok(n)
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The matching context.
    pub context_id: u64,
    /// Score (higher is better): BM25 of text terms plus the feature clauses' constants, or
    /// the summed term weights for "more like this".
    pub score: f32,
}

/// A fragment of a context's text around the query's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The fragment (at most ~150 characters).
    pub fragment: String,
    /// Byte ranges of matched terms within `fragment`.
    pub highlighted: Vec<Range<usize>>,
}

/// What "more like this" searched with and found.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarResult {
    /// Best first (ties by lower context_id); the source context is never among them.
    pub hits: Vec<SearchHit>,
    /// The feature terms used, with their weights, highest first (at most
    /// [`MAX_SIMILAR_TERMS`]; terms no context has are dropped).
    pub terms: Vec<(String, f32)>,
}

/// The weight of a feature term shared with the source: BM25's inverse document frequency,
/// `ln(1 + (N - df + 0.5) / (df + 0.5))` for a term in `df` of `N` contexts.
pub fn term_weight(df: u64, n: u64) -> f32 {
    let (df, n) = (df as f64, n as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

/// A searcher over `tantivy/`; `Send + Sync`.
pub(crate) struct TextIndex {
    path: PathBuf,
    reader: TantivyReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// Every feature term's statistics (built on the first "more like this" from the term
    /// dictionaries): a source has thousands of terms, and a hash lookup per term is far
    /// cheaper than a term-dictionary search per term and request.
    feature_terms: OnceLock<std::result::Result<FeatureTerms, String>>,
}

/// A feature term's contexts (`df`), its weight and where its postings are in each segment.
struct TermStats {
    term: String,
    df: u32,
    /// [`term_weight`] for the searcher's document count.
    weight: f32,
    /// `(segment ordinal, term info)` for the segments that hold the term.
    postings: Vec<(u32, TermInfo)>,
}

/// Every feature term of the index, found by string or by (SAE, feature, level) without
/// building the string.
#[derive(Default)]
struct FeatureTerms {
    stats: Vec<TermStats>,
    by_term: rustc_hash::FxHashMap<String, u32>,
    /// Per SAE: `feature × LEVELS + level` → index into `stats` (`u32::MAX`: no such term).
    by_feature: rustc_hash::FxHashMap<String, Vec<u32>>,
}

/// Strength levels of a feature's terms (the base term and one per bucket).
const LEVELS: usize = 1 + crate::query::STRENGTH_BUCKETS.len();

impl FeatureTerms {
    fn feature(&self, sae_terms: &[u32], feature: u32, level: usize) -> Option<u32> {
        sae_terms
            .get(feature as usize * LEVELS + level)
            .copied()
            .filter(|&i| i != u32::MAX)
    }
}

impl TextIndex {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingIndex {
                path: dir.to_path_buf(),
                reason: "tantivy/ is missing; run `scopedex reindex` to rebuild it".into(),
            });
        }
        let t = |e| Error::tantivy(dir, e);
        let index = Index::open_in_dir(dir).map_err(t)?;
        let schema = index.schema();
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| {
                Error::corrupt(
                    dir.display().to_string(),
                    format!("tantivy field {name} missing; run `scopedex reindex`"),
                )
            })
        };
        let fields = Fields {
            id: field(FIELD_CONTEXT_ID)?,
            text: field(FIELD_TEXT)?,
            feat: field(FIELD_FEATURES)?,
        };
        let analyzer = index.tokenizer_for_field(fields.text).map_err(t)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(t)?;
        Ok(TextIndex {
            path: dir.to_path_buf(),
            reader,
            fields,
            analyzer,
            feature_terms: OnceLock::new(),
        })
    }

    fn feature_terms(&self) -> Result<&FeatureTerms> {
        let r = self.feature_terms.get_or_init(|| {
            let searcher = self.reader.searcher();
            let mut out = FeatureTerms::default();
            for (ord, seg) in searcher.segment_readers().iter().enumerate() {
                let inv = seg
                    .inverted_index(self.fields.feat)
                    .map_err(|e| e.to_string())?;
                let mut stream = inv.terms().stream().map_err(|e| e.to_string())?;
                while stream.advance() {
                    let term = String::from_utf8_lossy(stream.key()).into_owned();
                    let info = stream.value().clone();
                    let next = out.stats.len() as u32;
                    let i = *out.by_term.entry(term.clone()).or_insert(next);
                    if i == next {
                        out.stats.push(TermStats {
                            term,
                            df: 0,
                            weight: 0.0,
                            postings: Vec::new(),
                        });
                    }
                    let stats = &mut out.stats[i as usize];
                    stats.df += info.doc_freq;
                    stats.postings.push((ord as u32, info));
                }
            }
            let n = searcher.num_docs();
            for (i, st) in out.stats.iter_mut().enumerate() {
                st.weight = term_weight(u64::from(st.df), n);
                if let Some((sae, f, level)) = crate::query::parse_feature_term(&st.term) {
                    let slots = out.by_feature.entry(sae.to_string()).or_default();
                    let at = f as usize * LEVELS + level;
                    if slots.len() <= at {
                        slots.resize(at + 1, u32::MAX);
                    }
                    slots[at] = i as u32;
                }
            }
            Ok(out)
        });
        r.as_ref().map_err(|e| {
            Error::corrupt(
                self.path.display().to_string(),
                format!("reading the feature terms: {e}"),
            )
        })
    }

    /// Parses `query` against the SAEs `saes` (`(id, d_sae)`).
    pub(crate) fn parse(&self, q: &str, saes: &[(String, u32)]) -> Result<Node> {
        let mut analyzer = self.analyzer.clone();
        let mut tokenize = |s: &str| {
            let mut out = Vec::new();
            let mut stream = analyzer.token_stream(s);
            stream.process(&mut |t| out.push(t.text.clone()));
            out
        };
        let mut cx = QueryContext {
            saes,
            tokenize: &mut tokenize,
        };
        query::parse(q, &mut cx).map_err(|e| Error::Query {
            query: q.to_string(),
            message: e.to_string(),
            position: Some(e.position),
        })
    }

    fn feature_query(&self, sae: &str, feature: u32, level: usize) -> Box<dyn Query> {
        let term = |l: usize| -> Box<dyn Query> {
            let t = Term::from_field_text(self.fields.feat, &feature_term(sae, feature, l));
            Box::new(ConstScoreQuery::new(
                Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
                1.0,
            ))
        };
        let mut clauses = vec![(Occur::Must, term(level))];
        // Higher buckets only add to the score: stronger firings rank first.
        for l in level + 1..=STRENGTH_BUCKETS.len() {
            clauses.push((Occur::Should, term(l)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn not(&self, inner: Box<dyn Query>) -> Box<dyn Query> {
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, inner),
        ]))
    }

    /// The tantivy query of a parsed tree.
    fn compile(&self, node: &Node) -> Box<dyn Query> {
        match node {
            Node::Text { tokens, .. } => {
                let terms: Vec<Term> = tokens
                    .iter()
                    .map(|t| Term::from_field_text(self.fields.text, t))
                    .collect();
                if terms.len() == 1 {
                    Box::new(TermQuery::new(
                        terms[0].clone(),
                        IndexRecordOption::WithFreqs,
                    ))
                } else {
                    Box::new(PhraseQuery::new(terms))
                }
            }
            Node::Feature(f) => self.feature_query(&f.sae, f.feature, f.level),
            Node::Not(inner) => self.not(self.compile(inner)),
            Node::Or(children) => Box::new(BooleanQuery::new(
                children
                    .iter()
                    .map(|c| (Occur::Should, self.compile(c)))
                    .collect(),
            )),
            Node::And(children) => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = children
                    .iter()
                    .map(|c| match c {
                        Node::Not(inner) => (Occur::MustNot, self.compile(inner)),
                        other => (Occur::Must, self.compile(other)),
                    })
                    .collect();
                // Only exclusions: everything else matches.
                if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
        }
    }

    fn top(&self, q: &dyn Query, limit: usize) -> Result<Vec<SearchHit>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let t = |e| Error::tantivy(&self.path, e);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(q, &TopDocs::with_limit(limit).order_by_score())
            .map_err(t)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let ids = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64(FIELD_CONTEXT_ID)
                .map_err(t)?;
            let context_id = ids.first(addr.doc_id).ok_or_else(|| {
                Error::corrupt(
                    self.path.display().to_string(),
                    format!("document {addr:?} has no context_id"),
                )
            })?;
            hits.push(SearchHit { context_id, score });
        }
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.context_id.cmp(&b.context_id))
        });
        Ok(hits)
    }

    /// The best `limit` contexts for a parsed query, best first (ties: lower context_id).
    pub(crate) fn search(&self, node: &Node, limit: usize) -> Result<Vec<SearchHit>> {
        self.top(&*self.compile(node), limit)
    }

    /// "More like this": contexts sharing feature terms with `terms` (the source's terms, see
    /// [`crate::query::context_feature_terms`]), scored by the summed [`term_weight`] of the
    /// shared terms (only the [`MAX_SIMILAR_TERMS`] highest); `exclude` (the source context)
    /// is left out. Best `limit` first, ties by lower context id.
    pub(crate) fn similar(
        &self,
        terms: &[String],
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        let all = self.feature_terms()?;
        let mut found: Vec<u32> = terms
            .iter()
            .filter_map(|t| all.by_term.get(t.as_str()).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        self.rank_similar(all, found, exclude, limit)
    }

    /// [`Self::similar`] for a source given as features: per SAE, `(feature, level)` for each
    /// active feature, which has the terms of levels `0..=level` (no strings are built).
    pub(crate) fn similar_to_features(
        &self,
        sources: &[(&str, Vec<(u32, usize)>)],
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        let all = self.feature_terms()?;
        let mut found = Vec::new();
        for (sae, features) in sources {
            let Some(slots) = all.by_feature.get(*sae) else {
                continue;
            };
            for &(f, level) in features {
                found.extend((0..=level).filter_map(|l| all.feature(slots, f, l)));
            }
        }
        found.sort_unstable();
        found.dedup();
        self.rank_similar(all, found, exclude, limit)
    }

    /// Ranks contexts by the summed weights of the terms `found` (indices into `all`, no
    /// duplicates) they have, keeping the [`MAX_SIMILAR_TERMS`] highest-weighted terms.
    fn rank_similar(
        &self,
        all: &FeatureTerms,
        mut found: Vec<u32>,
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        let order = |a: &u32, b: &u32| {
            let (x, y) = (&all.stats[*a as usize], &all.stats[*b as usize]);
            y.weight
                .total_cmp(&x.weight)
                .then_with(|| x.term.cmp(&y.term))
        };
        if found.len() > MAX_SIMILAR_TERMS {
            found.select_nth_unstable_by(MAX_SIMILAR_TERMS - 1, order);
            found.truncate(MAX_SIMILAR_TERMS);
        }
        found.sort_by(order);
        let weighted: Vec<&TermStats> = found.iter().map(|&i| &all.stats[i as usize]).collect();
        let terms_used = || {
            weighted
                .iter()
                .map(|s| (s.term.clone(), s.weight))
                .collect()
        };
        if weighted.is_empty() {
            return Ok(SimilarResult {
                hits: Vec::new(),
                terms: terms_used(),
            });
        }
        // Score accumulation over the terms' postings (a weighted union, as a disjunction of
        // constant-score term queries would compute, without its per-clause scorers): every
        // context gets the sum of the weights of the terms it has, in `weighted` order.
        let searcher = self.reader.searcher();
        let t = |e| Error::tantivy(&self.path, e);
        let mut scored: Vec<SearchHit> = Vec::new();
        for (ord, seg) in searcher.segment_readers().iter().enumerate() {
            let inv = seg.inverted_index(self.fields.feat).map_err(t)?;
            let mut scores = vec![0.0f32; seg.max_doc() as usize];
            for stats in &weighted {
                let Some((_, info)) = stats.postings.iter().find(|(o, _)| *o as usize == ord)
                else {
                    continue;
                };
                let mut block = inv
                    .read_block_postings_from_terminfo(info, IndexRecordOption::Basic)
                    .map_err(|e| Error::io(&self.path, e))?;
                while !block.docs().is_empty() {
                    for &doc in block.docs() {
                        scores[doc as usize] += stats.weight;
                    }
                    block.advance();
                }
            }
            let ids = seg.fast_fields().u64(FIELD_CONTEXT_ID).map_err(t)?;
            for (doc, &score) in scores.iter().enumerate() {
                if score > 0.0 {
                    let context_id = ids.first(doc as u32).ok_or_else(|| {
                        Error::corrupt(
                            self.path.display().to_string(),
                            format!("document {doc} has no context_id"),
                        )
                    })?;
                    if exclude != Some(context_id) {
                        scored.push(SearchHit { context_id, score });
                    }
                }
            }
        }
        let order = |a: &SearchHit, b: &SearchHit| {
            b.score
                .total_cmp(&a.score)
                .then(a.context_id.cmp(&b.context_id))
        };
        if scored.len() > limit {
            if limit > 0 {
                scored.select_nth_unstable_by(limit - 1, order);
            }
            scored.truncate(limit);
        }
        scored.sort_by(order);
        Ok(SimilarResult {
            hits: scored,
            terms: terms_used(),
        })
    }

    /// Snippets of `texts` for a parsed query (one per text, same order).
    pub(crate) fn snippets(
        &self,
        node: &Node,
        texts: &[&str],
        max_chars: usize,
    ) -> Result<Vec<Snippet>> {
        let q = self.compile(node);
        let searcher = self.reader.searcher();
        let mut generator = SnippetGenerator::create(&searcher, &*q, self.fields.text)
            .map_err(|e| Error::tantivy(&self.path, e))?;
        generator.set_max_num_chars(max_chars.max(1));
        Ok(texts
            .iter()
            .map(|t| {
                let s = generator.snippet(t);
                Snippet {
                    fragment: s.fragment().to_string(),
                    highlighted: s.highlighted().to_vec(),
                }
            })
            .collect())
    }

    /// Number of indexed contexts.
    pub(crate) fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}
