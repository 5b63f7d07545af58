//! The recursive-descent parser: tokens to a [`Node`] tree (OR of ANDs of unary terms), with
//! `feat:` terms checked against the index's SAEs and text tokenized by the index's tokenizer.
use super::ast::{err, FeatureRef, Node, QueryError};
use super::lex::{lex, Lexed, Tok};
use super::terms::{FEATURE_PREFIX, STRENGTH_BUCKETS};

/// Deepest nesting of parentheses and negations accepted (bounds the parser's recursion).
pub const MAX_DEPTH: usize = 32;

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
