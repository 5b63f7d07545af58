//! [`TextIndex`]: the searcher over `tantivy/` — opening it, parsing queries with its
//! tokenizer, compiling them to tantivy queries, ranked search and snippets.
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader as TantivyReader, ReloadPolicy, Term};

use super::more_like_this::FeatureTerms;
use super::schema::{Fields, FIELD_CONTEXT_ID, FIELD_FEATURES, FIELD_TEXT};
use crate::error::{Error, Result};
use crate::query::{self, feature_term, Node, QueryContext, STRENGTH_BUCKETS};

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

/// A searcher over `tantivy/`; `Send + Sync`.
pub(crate) struct TextIndex {
    pub(super) path: PathBuf,
    pub(super) reader: TantivyReader,
    pub(super) fields: Fields,
    analyzer: TextAnalyzer,
    /// Every feature term's statistics (built on the first "more like this" from the term
    /// dictionaries): a source has thousands of terms, and a hash lookup per term is far
    /// cheaper than a term-dictionary search per term and request.
    pub(super) feature_terms: OnceLock<std::result::Result<FeatureTerms, String>>,
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
