//! The lexer: characters to tokens (parentheses, operators, words, quoted phrases), each with
//! its character position.
use super::ast::{err, QueryError};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) struct Lexed {
    pub(super) tok: Tok,
    pub(super) pos: usize,
}

fn is_stop(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

pub(super) fn lex(chars: &[char]) -> Result<Vec<Lexed>, QueryError> {
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
