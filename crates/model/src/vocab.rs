//! [`TokenSpelling`]: every token of a tokenizer spelled three ways — the vocabulary's piece,
//! the decoded text and the bytes it stands for — so an index can render tokens (and rebuild
//! partial UTF-8 characters) with no model at hand.
use tokenizers::DecoderWrapper;

use crate::tokenizer::ModelTokenizer;

/// One token of a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpelling {
    /// The vocabulary's own spelling (`Ġthe`, `▁the`, `<0x0A>`).
    pub piece: String,
    /// The token decoded on its own (` the`); U+FFFD where it is part of a UTF-8 character.
    pub text: String,
    /// The bytes the token stands for.
    pub bytes: Vec<u8>,
}

/// GPT-2's byte ↔ printable character table (`bytes_to_unicode`), inverted: char → byte.
fn byte_level_inverse() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable
        .iter()
        .zip(&chars)
        .filter_map(|(&b, &c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

/// `<0xHH>` (SentencePiece byte fallback) → the byte.
fn byte_fallback(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

impl ModelTokenizer {
    /// Every id of the vocabulary (added tokens included), in id order.
    pub fn vocabulary(&self) -> Vec<TokenSpelling> {
        let tok = &self.tokenizer;
        let byte_level = matches!(tok.get_decoder(), Some(DecoderWrapper::ByteLevel(_)));
        let inverse = byte_level.then(byte_level_inverse);
        let n = tok.get_vocab_size(true) as u32;
        (0..n)
            .map(|id| {
                let piece = tok.id_to_token(id).unwrap_or_default();
                let text = match tok.decode(&[id], false) {
                    Ok(s) if !s.is_empty() => s,
                    _ if !piece.is_empty() => piece.clone(),
                    _ => format!("<{id}>"),
                };
                let bytes = match (&inverse, byte_fallback(&piece)) {
                    (_, Some(b)) => vec![b],
                    (Some(inv), None) => piece
                        .chars()
                        .map(|c| inv.get(&c).copied())
                        .collect::<Option<Vec<u8>>>()
                        // Added tokens (`<|endoftext|>`) are not byte-level encoded.
                        .unwrap_or_else(|| piece.as_bytes().to_vec()),
                    (None, None) => piece.replace('\u{2581}', " ").into_bytes(),
                };
                TokenSpelling { piece, text, bytes }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_covers_every_byte_once() {
        let inv = byte_level_inverse();
        assert_eq!(inv.len(), 256);
        let mut seen: Vec<u8> = inv.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(inv[&'Ġ'], b' ');
        assert_eq!(inv[&'Ċ'], b'\n');
        assert_eq!(inv[&'a'], b'a');
    }

    #[test]
    fn byte_fallback_pieces() {
        assert_eq!(byte_fallback("<0x0A>"), Some(b'\n'));
        assert_eq!(byte_fallback("<0xE2>"), Some(0xE2));
        assert_eq!(byte_fallback("<0x0>"), None);
        assert_eq!(byte_fallback("hello"), None);
    }
}
