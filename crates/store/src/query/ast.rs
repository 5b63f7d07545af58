//! The parsed query: [`Node`] trees over text and [`FeatureRef`] leaves, and [`QueryError`]
//! (a message at a character position).

/// A feature in a query.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRef {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Required strength level (0 = active; `i + 1` = bucket `STRENGTH_BUCKETS[i]`).
    pub level: usize,
    /// Character position of the term in the query.
    pub position: usize,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Text tokens that must appear consecutively (one token: a word).
    Text {
        /// Tokens after the text tokenizer.
        tokens: Vec<String>,
        /// Character position in the query.
        position: usize,
    },
    /// A feature (at a strength level).
    Feature(FeatureRef),
    /// Every child matches.
    And(Vec<Node>),
    /// Some child matches.
    Or(Vec<Node>),
    /// The child does not match.
    Not(Box<Node>),
}

impl Node {
    /// Leaf terms of the tree (each word of a phrase counts): what bounds a query's work.
    pub fn term_count(&self) -> usize {
        match self {
            Node::Text { tokens, .. } => tokens.len().max(1),
            Node::Feature(_) => 1,
            Node::And(v) | Node::Or(v) => v.iter().map(Node::term_count).sum(),
            Node::Not(n) => n.term_count(),
        }
    }

    /// Features that must (or may) match for a context to be a hit: every feature term not
    /// under a negation, in query order. Used to point at the firing token of a hit.
    pub fn positive_features(&self) -> Vec<&FeatureRef> {
        fn walk<'a>(n: &'a Node, negated: bool, out: &mut Vec<&'a FeatureRef>) {
            match n {
                Node::Text { .. } => {}
                Node::Feature(f) => {
                    if !negated {
                        out.push(f)
                    }
                }
                Node::And(c) | Node::Or(c) => c.iter().for_each(|c| walk(c, negated, out)),
                Node::Not(c) => walk(c, !negated, out),
            }
        }
        let mut out = Vec::new();
        walk(self, false, &mut out);
        out
    }
}

/// A syntax or reference error in a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct QueryError {
    /// 0-based character position in the query.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

pub(super) fn err<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        position,
        message: message.into(),
    })
}
