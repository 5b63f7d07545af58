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
//!
//! Files: `terms` (feature-term spelling and strength levels), `ast` (the tree and errors),
//! `lex` (tokens), `parse` (the parser).
mod ast;
mod lex;
mod parse;
mod terms;

pub use ast::{FeatureRef, Node, QueryError};
pub use parse::{parse, QueryContext, MAX_DEPTH};
pub use terms::{
    context_feature_terms, feature_term, parse_feature_term, strength_level, FEATURE_PREFIX,
    STRENGTH_BUCKETS,
};
