//! What an accumulator hands back: the records of one SAE ([`SaeResults`], or streamed as
//! [`ResultsChunk`]s) and the exactness of its sketches ([`SketchReport`]).
use scopedex_store::records::{CooccurrenceRecord, ExampleRecord, FeatureRecord, SaeSummary};
use serde::{Deserialize, Serialize};

/// Whether the sketches stayed exact, and their largest error bounds (0 = exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SketchReport {
    /// Co-occurrence counted densely (exact).
    pub cooc_exact: bool,
    /// Largest `true − reported` bound of any co-occurrence count (0 when exact).
    pub cooc_max_error: u64,
    /// Largest `true − reported` bound of any top-token count (0 when exact).
    pub top_tokens_max_error: u64,
}

impl Default for SketchReport {
    fn default() -> Self {
        SketchReport {
            cooc_exact: true,
            cooc_max_error: 0,
            top_tokens_max_error: 0,
        }
    }
}

/// Everything one SAE produced, records sorted deterministically: features by id; examples by
/// (feature, kind: top then intervals ascending, rank); co-occurrence by (feature, n_both desc,
/// partner).
#[derive(Debug, Clone, PartialEq)]
pub struct SaeResults {
    /// Per-SAE totals.
    pub summary: SaeSummary,
    /// One record per feature (dead ones included).
    pub features: Vec<FeatureRecord>,
    /// Top and interval examples.
    pub examples: Vec<ExampleRecord>,
    /// Within-SAE partners.
    pub cooccurrence: Vec<CooccurrenceRecord>,
    /// Exactness of the sketches.
    pub sketch: SketchReport,
}

/// The records of a range of features (see
/// [`SaeAccumulator::finish_streaming`](super::SaeAccumulator::finish_streaming)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultsChunk {
    /// Per-feature records of the range.
    pub features: Vec<FeatureRecord>,
    /// Their examples.
    pub examples: Vec<ExampleRecord>,
    /// Their partners.
    pub cooccurrence: Vec<CooccurrenceRecord>,
}
