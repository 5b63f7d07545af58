//! The search query language: words, phrases and SAE features, combined with AND / OR / NOT
//! and parentheses. Parsed here (with error positions), compiled to tantivy in [`crate::text`].
//!
//! ```text
//! query    := or
//! or       := and ( "OR" and )*
//! and      := unary ( ["AND"] unary )*          juxtaposition means AND
//! unary    := ( "-" | "NOT" | "+" ) unary | primary
//! primary  := "(" or ")" | phrase | feature | word
//! phrase   := ["text:"] '"' chars '"'
//! feature  := "feat:" SAE "/" FEATURE [ (">" | ">=") THRESHOLD ]
//! word     := ["text:"] chars up to whitespace, '(', ')' or '"'
//! ```
//!
//! Meaning, per context (the brute-force tests evaluate exactly this):
//! - a word matches when the context's text contains it as a token (tantivy's default
//!   tokenizer: split on non-alphanumerics, lowercase, tokens over 40 bytes dropped); a word
//!   that tokenizes to several tokens (`e-mail`) and a phrase match those tokens consecutively;
//!   a word with no letters or digits (`&`) is ignored;
//! - `feat:SAE/F` matches when feature F of SAE is active in the context (activation > 0 at a
//!   counted position; see [`crate::records::ContextFeaturesRecord`]);
//! - `feat:SAE/F>T` (or `>=T`), T one of [`STRENGTH_BUCKETS`] (also written as a percentage,
//!   `>50%`), matches when the feature's max activation in the context is ≥ T × its max
//!   activation over the corpus (`features.parquet` `max_act`); `>0` is the same as no
//!   threshold. `>` is read as "in the bucket", i.e. ≥;
//! - `-x` / `NOT x` excludes, `x AND y` / `x y` both, `x OR y` either; NOT binds tightest, then
//!   AND, then OR. A query of exclusions only (`-feat:A/1`) matches every other context.
//!
//! Errors carry the 0-based character position of the offending part of the query.

/// Strength buckets of feature terms, as fractions of the feature's corpus-wide max activation.
pub const STRENGTH_BUCKETS: [f32; 3] = [0.25, 0.5, 0.75];

/// Deepest nesting of parentheses and negations accepted (bounds the parser's recursion).
pub const MAX_DEPTH: usize = 32;

/// The name of the text index's feature field (and the query prefix `feat:`).
pub const FEATURE_PREFIX: &str = "feat:";

/// The term of feature `feature` of `sae` at strength level `level`: `L15R-8x/1234` for level 0
/// (active at all), `L15R-8x/1234>0.5` for level `i + 1` (bucket [`STRENGTH_BUCKETS`]`[i]`).
pub fn feature_term(sae: &str, feature: u32, level: usize) -> String {
    match level.checked_sub(1).and_then(|i| STRENGTH_BUCKETS.get(i)) {
        None => format!("{sae}/{feature}"),
        Some(t) => format!("{sae}/{feature}>{t}"),
    }
}

/// The inverse of [`feature_term`]: `(sae, feature, level)` of a term.
pub fn parse_feature_term(term: &str) -> Option<(&str, u32, usize)> {
    let (base, level) = match term.split_once('>') {
        None => (term, 0),
        Some((base, t)) => {
            let t: f32 = t.parse().ok()?;
            (base, 1 + STRENGTH_BUCKETS.iter().position(|&b| b == t)?)
        }
    };
    let (sae, f) = base.rsplit_once('/')?;
    Some((sae, f.parse().ok()?, level))
}

/// The strength level of an activation: 0 when only active, `i + 1` when `max_act ≥
/// STRENGTH_BUCKETS[i] × feature_max` for the highest such `i`. A feature whose corpus-wide
/// max is not positive (or not finite) has level 0.
pub fn strength_level(max_act: f32, feature_max: f32) -> usize {
    if !(feature_max > 0.0 && feature_max.is_finite()) {
        return 0;
    }
    // f64 so that `t × max` is exact for the bucket fractions and any f32 max.
    STRENGTH_BUCKETS
        .iter()
        .take_while(|&&t| f64::from(max_act) >= f64::from(t) * f64::from(feature_max))
        .count()
}

/// The feature terms of one context's record for `sae`: per active feature, the base term and
/// one term per strength bucket it reaches ([`feature_term`]), each with the position of the
/// feature's max in the context. `feature_max[f]` is feature `f`'s corpus-wide max activation
/// (missing: 0, i.e. base term only).
pub fn context_feature_terms(
    sae: &str,
    rec: &crate::records::ContextFeaturesRecord,
    feature_max: &[f32],
) -> Vec<(String, u32)> {
    let mut out = Vec::with_capacity(rec.features.len() * 2);
    for ((&f, &act), &pos) in rec.features.iter().zip(&rec.max_acts).zip(&rec.max_pos) {
        let max = feature_max.get(f as usize).copied().unwrap_or(0.0);
        for level in 0..=strength_level(act, max) {
            out.push((feature_term(sae, f, level), pos));
        }
    }
    out
}

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

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        position,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Minus,
    Plus,
    Word(String),
    Phrase(String),
}

struct Lexed {
    tok: Tok,
    pos: usize,
}

fn is_stop(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

fn lex(chars: &[char]) -> Result<Vec<Lexed>, QueryError> {
    let mut out = Vec::new();
    let mut i = 0;
    let phrase = |start: usize, quote: usize| -> Result<(String, usize), QueryError> {
        match chars[quote + 1..].iter().position(|&c| c == '"') {
            Some(n) => Ok((
                chars[quote + 1..quote + 1 + n].iter().collect(),
                quote + n + 2,
            )),
            None => err(start, "unclosed quote: a phrase needs a closing \""),
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pos = i;
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '"' => {
                let (text, next) = phrase(pos, i)?;
                i = next;
                Tok::Phrase(text)
            }
            '-' | '+'
                if chars
                    .get(i + 1)
                    .is_some_and(|&n| !n.is_whitespace() && n != ')') =>
            {
                i += 1;
                if c == '-' {
                    Tok::Minus
                } else {
                    Tok::Plus
                }
            }
            _ => {
                let start = i;
                while i < chars.len() && !is_stop(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.eq_ignore_ascii_case("text:") && chars.get(i) == Some(&'"') {
                    let (text, next) = phrase(start, i)?;
                    i = next;
                    Tok::Phrase(text)
                } else {
                    match word.as_str() {
                        "AND" | "&&" => Tok::And,
                        "OR" | "||" => Tok::Or,
                        "NOT" => Tok::Not,
                        _ => Tok::Word(word),
                    }
                }
            }
        };
        out.push(Lexed { tok, pos });
    }
    Ok(out)
}

/// What the parser needs to know about the index.
pub struct QueryContext<'a> {
    /// `(SAE id, d_sae)` of every SAE of the index.
    pub saes: &'a [(String, u32)],
    /// The text tokenizer (the one the text field was indexed with).
    pub tokenize: &'a mut dyn FnMut(&str) -> Vec<String>,
}

struct Parser<'a, 'b> {
    toks: Vec<Lexed>,
    at: usize,
    end: usize,
    depth: usize,
    cx: &'a mut QueryContext<'b>,
}

/// Parses `query` into a tree; `Ok(None)` never happens for a non-empty query — a query
/// with no searchable term is an error.
pub fn parse(query: &str, cx: &mut QueryContext<'_>) -> Result<Node, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    let toks = lex(&chars)?;
    if toks.is_empty() {
        return err(0, "the query is empty");
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: chars.len(),
        depth: 0,
        cx,
    };
    let node = p.or()?;
    if let Some(t) = p.toks.get(p.at) {
        return err(t.pos, "unmatched ')'");
    }
    node.map_or_else(
        || {
            err(
                0,
                "the query has no searchable term (a word needs letters or digits, and words over 40 bytes are not indexed)",
            )
        },
        Ok,
    )
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.pos)
    }

    fn or(&mut self) -> Result<Option<Node>, QueryError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            items.push(self.and()?);
        }
        let mut items: Vec<Node> = items.into_iter().flatten().collect();
        Ok(match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Node::Or(items)),
        })
    }

    fn and(&mut self) -> Result<Option<Node>, QueryError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                None | Some(Tok::RParen) | Some(Tok::Or) => break,
                Some(Tok::And) => self.at += 1,
                _ => {}
            }
            items.push(self.unary()?);
        }
        let mut items: Vec<Node> = items.into_iter().flatten().collect();
        Ok(match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Node::And(items)),
        })
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                self.pos(),
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Option<Node>, QueryError> {
        match self.peek() {
            Some(Tok::Minus) | Some(Tok::Not) => {
                self.at += 1;
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(inner.map(|n| Node::Not(Box::new(n))))
            }
            Some(Tok::Plus) => {
                self.at += 1;
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(inner)
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Option<Node>, QueryError> {
        let pos = self.pos();
        let Some(t) = self.toks.get(self.at) else {
            return err(pos, "expected a word, phrase, feat: term or '(' here");
        };
        let tok = t.tok.clone();
        self.at += 1;
        match tok {
            Tok::LParen => {
                self.enter()?;
                if self.peek() == Some(&Tok::RParen) {
                    return err(pos, "empty parentheses");
                }
                let inner = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return err(pos, "unclosed '(': add a matching ')'");
                }
                self.at += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::RParen => err(pos, "unexpected ')'"),
            Tok::And | Tok::Or => err(
                pos,
                "expected a word, phrase or feat: term before and after AND / OR",
            ),
            Tok::Not | Tok::Minus | Tok::Plus => unreachable!("handled by unary"),
            Tok::Phrase(text) => Ok(self.text(&text, pos)),
            Tok::Word(w) => {
                // `get` rather than indexing: the word may start with a multi-byte character.
                let prefixed =
                    |p: &str| w.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
                if prefixed(FEATURE_PREFIX) {
                    return self
                        .feature(&w[FEATURE_PREFIX.len()..], pos + FEATURE_PREFIX.len())
                        .map(|f| Some(Node::Feature(f)));
                }
                let w = if prefixed("text:") { &w[5..] } else { &w[..] };
                Ok(self.text(w, pos))
            }
        }
    }

    fn text(&mut self, text: &str, position: usize) -> Option<Node> {
        let tokens = (self.cx.tokenize)(text);
        (!tokens.is_empty()).then_some(Node::Text { tokens, position })
    }

    /// `SAE/FEATURE[>T]`, starting at character `pos` of the query.
    fn feature(&self, spec: &str, pos: usize) -> Result<FeatureRef, QueryError> {
        let chars: Vec<char> = spec.chars().collect();
        let Some(slash) = chars.iter().position(|&c| c == '/') else {
            return err(pos, "expected feat:SAE/FEATURE, e.g. feat:L15R-8x/1234");
        };
        let sae: String = chars[..slash].iter().collect();
        let Some(&(_, d_sae)) = self.cx.saes.iter().find(|(id, _)| *id == sae) else {
            let known: Vec<&str> = self.cx.saes.iter().map(|(id, _)| id.as_str()).collect();
            return err(
                pos,
                format!("unknown SAE {sae:?} (this index has: {})", known.join(", ")),
            );
        };
        let f_start = slash + 1;
        let f_end = chars[f_start..]
            .iter()
            .position(|&c| c == '>')
            .map_or(chars.len(), |n| f_start + n);
        let digits: String = chars[f_start..f_end].iter().collect();
        let feature: u32 = match digits.parse() {
            Ok(f) if digits.bytes().all(|b| b.is_ascii_digit()) => f,
            _ => {
                return err(
                    pos + f_start,
                    format!("expected a feature number after {sae}/, got {digits:?}"),
                )
            }
        };
        if feature >= d_sae {
            return err(
                pos + f_start,
                format!("feature {feature} is out of range for SAE {sae:?} (d_sae = {d_sae})"),
            );
        }
        let mut level = 0;
        if f_end < chars.len() {
            let mut t_start = f_end + 1;
            if chars.get(t_start) == Some(&'=') {
                t_start += 1;
            }
            let text: String = chars[t_start..].iter().collect();
            let value = match text.strip_suffix('%') {
                Some(p) => p.parse::<f64>().map(|v| v / 100.0),
                None => text.parse::<f64>(),
            };
            let allowed = || {
                STRENGTH_BUCKETS
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            level = match value {
                Ok(0.0) => 0,
                Ok(v) => match STRENGTH_BUCKETS
                    .iter()
                    .position(|&t| (f64::from(t) - v).abs() < 1e-9)
                {
                    Some(i) => i + 1,
                    None => {
                        return err(
                            pos + t_start,
                            format!(
                                "strength threshold {text:?} is not a bucket: use one of {} \
                                 (fractions of the feature's max activation) or 0",
                                allowed()
                            ),
                        )
                    }
                },
                Err(_) => {
                    return err(
                        pos + t_start,
                        format!(
                            "expected a strength threshold after '>', one of {}, got {text:?}",
                            allowed()
                        ),
                    )
                }
            };
        }
        Ok(FeatureRef {
            sae,
            feature,
            level,
            position: pos - FEATURE_PREFIX.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple_tokenize(s: &str) -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .collect()
    }

    fn p(q: &str) -> Result<Node, QueryError> {
        let saes = vec![("L1R-8x".to_string(), 48u32), ("L2R".to_string(), 40)];
        let mut tok = simple_tokenize;
        let mut cx = QueryContext {
            saes: &saes,
            tokenize: &mut tok,
        };
        parse(q, &mut cx)
    }

    fn word(w: &str, position: usize) -> Node {
        Node::Text {
            tokens: vec![w.to_string()],
            position,
        }
    }

    fn feat(sae: &str, feature: u32, level: usize, position: usize) -> Node {
        Node::Feature(FeatureRef {
            sae: sae.into(),
            feature,
            level,
            position,
        })
    }

    #[test]
    fn precedence_and_operators() {
        assert_eq!(
            p("a b OR c").unwrap(),
            Node::Or(vec![
                Node::And(vec![word("a", 0), word("b", 2)]),
                word("c", 7)
            ])
        );
        assert_eq!(
            p("a AND (b OR -c)").unwrap(),
            Node::And(vec![
                word("a", 0),
                Node::Or(vec![word("b", 7), Node::Not(Box::new(word("c", 13)))])
            ])
        );
        assert_eq!(
            p("NOT a +b").unwrap(),
            Node::And(vec![Node::Not(Box::new(word("a", 4))), word("b", 7)])
        );
        assert_eq!(
            p("\"Bank  Account\" text:\"x y\"").unwrap(),
            Node::And(vec![
                Node::Text {
                    tokens: vec!["bank".into(), "account".into()],
                    position: 0
                },
                Node::Text {
                    tokens: vec!["x".into(), "y".into()],
                    position: 16
                }
            ])
        );
        // Words without letters or digits are ignored; a lone '-' is such a word.
        assert_eq!(
            p("a & - b").unwrap(),
            Node::And(vec![word("a", 0), word("b", 6)])
        );
        assert_eq!(p("text:Bank").unwrap(), word("bank", 0));
    }

    #[test]
    fn feature_terms_and_buckets() {
        assert_eq!(p("feat:L1R-8x/12").unwrap(), feat("L1R-8x", 12, 0, 0));
        assert_eq!(
            p("x FEAT:L2R/3>0.5").unwrap(),
            Node::And(vec![word("x", 0), feat("L2R", 3, 2, 2)])
        );
        assert_eq!(p("feat:L2R/3>=0.25").unwrap(), feat("L2R", 3, 1, 0));
        assert_eq!(p("feat:L2R/3>75%").unwrap(), feat("L2R", 3, 3, 0));
        assert_eq!(p("feat:L2R/3>0").unwrap(), feat("L2R", 3, 0, 0));
        assert_eq!(
            p("-feat:L2R/3").unwrap(),
            Node::Not(Box::new(feat("L2R", 3, 0, 1)))
        );
        let n = p("feat:L2R/1 -feat:L2R/2 (feat:L1R-8x/3 OR b)").unwrap();
        let pos: Vec<(String, u32)> = n
            .positive_features()
            .iter()
            .map(|f| (f.sae.clone(), f.feature))
            .collect();
        assert_eq!(pos, vec![("L2R".into(), 1), ("L1R-8x".into(), 3)]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let at = |q: &str| {
            let e = p(q).unwrap_err();
            (e.position, e.message)
        };
        assert_eq!(at("").0, 0);
        assert_eq!(at("a (b").0, 2);
        assert!(at("a (b").1.contains("unclosed"));
        assert_eq!(at("a b)").0, 3);
        assert_eq!(at("\"open").0, 0);
        assert_eq!(at("x \"open").0, 2);
        assert_eq!(at("a AND").0, 5);
        assert_eq!(at("a OR OR b").0, 5);
        assert_eq!(at("()").0, 0);
        assert_eq!(at("feat:nope/1").0, 5);
        assert!(at("feat:nope/1").1.contains("L1R-8x"));
        assert_eq!(at("a feat:L2R/x1").0, 11);
        assert_eq!(at("feat:L2R/40").0, 9);
        assert!(at("feat:L2R/40").1.contains("d_sae = 40"));
        assert_eq!(at("feat:L2R/4>0.3").0, 11);
        assert_eq!(at("feat:L2R/4>=x").0, 12);
        assert_eq!(at("feat:L2R").0, 5);
        assert_eq!(at("& -").0, 0);
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(at(&deep).1.contains("nests"));
        // Positions count characters, not bytes; multi-byte words are fine.
        assert_eq!(at("é a)").0, 3);
        assert!(p("\u{fffd}\u{fffd} éé feat").is_ok());
    }

    #[test]
    fn strength_levels() {
        assert_eq!(strength_level(0.1, 1.0), 0);
        assert_eq!(strength_level(0.25, 1.0), 1);
        assert_eq!(strength_level(0.5, 1.0), 2);
        assert_eq!(strength_level(0.74, 1.0), 2);
        assert_eq!(strength_level(3.0, 4.0), 3);
        assert_eq!(strength_level(3.0, 0.0), 0);
        assert_eq!(feature_term("L1R", 5, 0), "L1R/5");
        assert_eq!(feature_term("L1R", 5, 2), "L1R/5>0.5");
        for level in 0..=3 {
            let t = feature_term("L1R-8x", 77, level);
            assert_eq!(parse_feature_term(&t), Some(("L1R-8x", 77, level)));
        }
        assert_eq!(parse_feature_term("L1R/5>0.3"), None);
        assert_eq!(parse_feature_term("L1R5"), None);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    /// Random strings over the grammar's characters (and multi-byte ones) never panic, and
    /// every error position lies within the query.
    #[test]
    fn random_input_parses_or_errors_within_bounds() {
        let alphabet: Vec<char> = "ab éü💩()\"-+:/>=%.05AND ORNOTfeat:L1R-8x/text:"
            .chars()
            .collect();
        let saes = vec![("L1R-8x".to_string(), 48u32)];
        let mut seed = 1u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 59) as usize;
            let q: String = (0..len)
                .map(|i| {
                    let x = crate::fixture::mix(seed ^ i as u64);
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let mut tok = |s: &str| -> Vec<String> {
                s.split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(str::to_lowercase)
                    .collect()
            };
            let mut cx = QueryContext {
                saes: &saes,
                tokenize: &mut tok,
            };
            if let Err(e) = parse(&q, &mut cx) {
                assert!(e.position <= q.chars().count(), "{q:?}: {e}");
            }
        }
    }
}
