//! Token ids to the strings SAEDashboard writes.
//!
//! SAEDashboard's `NeuronpediaRunner.get_vocab_dict` maps every id to its raw vocabulary piece
//! (`tokenizer.vocab`, e.g. `Ġthe` for a byte-level BPE), with a fixed table of substrings
//! replaced (`Ġ` → space, `Ċ` → newline, `âĢĶ` → `—`, ...), and pads ids past the tokenizer's
//! vocabulary up to the model's `d_vocab` with `<|outofrange|>`; ids beyond `d_vocab` are also
//! `<|outofrange|>` (`to_str_tokens_safe`). [`Vocab`] reproduces that table.

/// The string SAEDashboard writes for an id outside the vocabulary.
pub const OUT_OF_RANGE_TOKEN: &str = "<|outofrange|>";

/// SAEDashboard's `HTML_ANOMALIES` (neuronpedia_runner.py), applied in this order.
pub const HTML_ANOMALIES: [(&str, &str); 10] = [
    ("âĢĶ", "—"),
    ("âĢĵ", "–"),
    ("âĢľ", "“"),
    ("âĢĿ", "”"),
    ("âĢĺ", "‘"),
    ("âĢĻ", "’"),
    ("âĢĭ", " "),
    ("Ġ", " "),
    ("Ċ", "\n"),
    ("ĉ", "\t"),
];

/// Display strings of every token id.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    pieces: Vec<String>,
}

impl Vocab {
    /// Builds the table from raw vocabulary pieces indexed by id (`None` where the tokenizer
    /// has no piece), padded with [`OUT_OF_RANGE_TOKEN`] up to `vocab_size`.
    pub fn from_pieces(
        pieces: impl IntoIterator<Item = Option<String>>,
        vocab_size: usize,
    ) -> Self {
        let mut out: Vec<String> = pieces
            .into_iter()
            .map(|p| match p {
                Some(p) => clean_piece(&p),
                None => OUT_OF_RANGE_TOKEN.to_string(),
            })
            .collect();
        if out.len() < vocab_size {
            out.resize(vocab_size, OUT_OF_RANGE_TOKEN.to_string());
        }
        Vocab { pieces: out }
    }

    /// A stand-in vocabulary of `n` tokens named `tok{id}` (tests, indexes whose tokenizer is
    /// unavailable).
    pub fn synthetic(n: usize) -> Self {
        Vocab {
            pieces: (0..n).map(|i| format!("tok{i}")).collect(),
        }
    }

    /// Number of ids with a string.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The display string of `id`.
    pub fn token_str(&self, id: u32) -> &str {
        self.pieces
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or(OUT_OF_RANGE_TOKEN)
    }
}

/// A raw vocabulary piece with SAEDashboard's substring replacements applied.
pub fn clean_piece(piece: &str) -> String {
    let mut s = piece.to_string();
    for (from, to) in HTML_ANOMALIES {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_cleaned_and_padded() {
        let v = Vocab::from_pieces(
            [
                Some("Ġthe".to_string()),
                Some("ĊĊ".into()),
                None,
                Some("âĢĶx".into()),
            ],
            6,
        );
        assert_eq!(v.token_str(0), " the");
        assert_eq!(v.token_str(1), "\n\n");
        assert_eq!(v.token_str(2), OUT_OF_RANGE_TOKEN);
        assert_eq!(v.token_str(3), "—x");
        assert_eq!(v.token_str(5), OUT_OF_RANGE_TOKEN);
        assert_eq!(v.token_str(99), OUT_OF_RANGE_TOKEN);
        assert_eq!(v.len(), 6);
    }
}
