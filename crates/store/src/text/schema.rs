//! The tantivy schema of the text index: field names and options (see the module docs of
//! [`crate::text`]).
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, TEXT,
};

/// Field name of the context id.
pub const FIELD_CONTEXT_ID: &str = "context_id";
/// Field name of the context text.
pub const FIELD_TEXT: &str = "text";
/// Field name of the feature terms.
pub const FIELD_FEATURES: &str = "feat";

pub(super) struct Fields {
    pub(super) id: Field,
    pub(super) text: Field,
    pub(super) feat: Field,
}

pub(super) fn schema() -> (Schema, Fields) {
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
