//! Arrow schemas and row ⇄ batch conversion of the record tables. Column names follow the record
//! fields; `schemas/index.md` documents them (checked by a test).
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{
    DataType, Field, Fields, Float32Type, Float64Type, Schema, SchemaRef, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::error::ArrowError;

use super::columns::{
    binaries, field, list_of, list_prim, list_struct, prim, split, strings, Columns,
};
use super::Table;
use crate::error::{Error, Result};
use crate::records::{
    ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleKind, ExampleRecord,
    FeatureRecord, NeighbourRecord, SaeSummary, TokenCount, TokenValue, VocabRecord,
};

fn schema_once(
    cell: &'static OnceLock<SchemaRef>,
    fields: impl FnOnce() -> Vec<Field>,
) -> SchemaRef {
    cell.get_or_init(|| Arc::new(Schema::new(fields()))).clone()
}

fn batch(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> std::result::Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(schema, columns)
}

// ---------------------------------------------------------------------------------------------
// contexts

impl Table for ContextRecord {
    const NAME: &'static str = "contexts";
    const ROWS_PER_GROUP: usize = 4096;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("context_id", DataType::UInt64),
                field("doc_id", DataType::Utf8),
                field("tokens", list_of(DataType::UInt32)),
                field("token_starts", list_of(DataType::UInt32)),
                field("token_ends", list_of(DataType::UInt32)),
                field("text", DataType::Utf8),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        batch(
            Self::schema(),
            vec![
                prim::<UInt64Type>(rows.iter().map(|r| r.context_id).collect()),
                strings(rows.iter().map(|r| r.doc_id.as_str())),
                list_prim::<UInt32Type>(rows.iter().map(|r| r.tokens.as_slice())),
                list_prim::<UInt32Type>(rows.iter().map(|r| r.token_starts.as_slice())),
                list_prim::<UInt32Type>(rows.iter().map(|r| r.token_ends.as_slice())),
                strings(rows.iter().map(|r| r.text.as_str())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let ids = c.prim::<UInt64Type>("context_id")?;
        let doc_ids = c.strings("doc_id")?;
        let tokens = c.list_prim::<UInt32Type>("tokens")?;
        let starts = c.list_prim::<UInt32Type>("token_starts")?;
        let ends = c.list_prim::<UInt32Type>("token_ends")?;
        let texts = c.strings("text")?;
        Ok(tokens
            .into_iter()
            .zip(starts)
            .zip(ends)
            .enumerate()
            .map(|(i, ((tokens, token_starts), token_ends))| ContextRecord {
                context_id: ids[i],
                doc_id: doc_ids.value(i).to_string(),
                tokens,
                token_starts,
                token_ends,
                text: texts.value(i).to_string(),
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// features

fn token_count_type() -> DataType {
    list_of(DataType::Struct(Fields::from(vec![
        field("token", DataType::UInt32),
        field("count", DataType::UInt64),
    ])))
}

fn token_value_type() -> DataType {
    list_of(DataType::Struct(Fields::from(vec![
        field("token", DataType::UInt32),
        field("value", DataType::Float32),
    ])))
}

fn token_values_column(
    rows: &[FeatureRecord],
    get: impl Fn(&FeatureRecord) -> &[TokenValue],
) -> ArrayRef {
    let all = || rows.iter().flat_map(|r| get(r).iter());
    list_struct(
        &token_value_type(),
        rows.iter().map(|r| get(r).len()),
        vec![
            prim::<UInt32Type>(all().map(|t| t.token).collect()),
            prim::<Float32Type>(all().map(|t| t.value).collect()),
        ],
    )
}

fn read_token_values(c: &Columns<'_>, name: &str) -> Result<Vec<Vec<TokenValue>>> {
    let (offsets, values) = c.list(name)?;
    let tokens = c.struct_child::<UInt32Type>(name, values, "token")?;
    let vals = c.struct_child::<Float32Type>(name, values, "value")?;
    Ok(split(offsets, tokens)
        .zip(split(offsets, vals))
        .map(|(t, v)| {
            t.iter()
                .zip(v)
                .map(|(&token, &value)| TokenValue { token, value })
                .collect::<Vec<_>>()
        })
        .collect())
}

impl Table for FeatureRecord {
    const NAME: &'static str = "features";
    const ROWS_PER_GROUP: usize = 8192;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("feature", DataType::UInt32),
                field("n_fired", DataType::UInt64),
                field("density", DataType::Float64),
                field("max_act", DataType::Float32),
                field("mean_act", DataType::Float32),
                field("act_hist", list_of(DataType::UInt64)),
                field("top_tokens", token_count_type()),
                field("logit_pos", token_value_type()),
                field("logit_neg", token_value_type()),
                field("logit_hist", list_of(DataType::UInt64)),
                field("logit_hist_min", DataType::Float32),
                field("logit_hist_max", DataType::Float32),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        let tt = || rows.iter().flat_map(|r| r.top_tokens.iter());
        batch(
            Self::schema(),
            vec![
                prim::<UInt32Type>(rows.iter().map(|r| r.feature).collect()),
                prim::<UInt64Type>(rows.iter().map(|r| r.n_fired).collect()),
                prim::<Float64Type>(rows.iter().map(|r| r.density).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.max_act).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.mean_act).collect()),
                list_prim::<UInt64Type>(rows.iter().map(|r| r.act_hist.as_slice())),
                list_struct(
                    &token_count_type(),
                    rows.iter().map(|r| r.top_tokens.len()),
                    vec![
                        prim::<UInt32Type>(tt().map(|t| t.token).collect()),
                        prim::<UInt64Type>(tt().map(|t| t.count).collect()),
                    ],
                ),
                token_values_column(rows, |r| r.logit_pos.as_slice()),
                token_values_column(rows, |r| r.logit_neg.as_slice()),
                list_prim::<UInt64Type>(rows.iter().map(|r| r.logit_hist.as_slice())),
                prim::<Float32Type>(rows.iter().map(|r| r.logit_hist_min).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.logit_hist_max).collect()),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let feature = c.prim::<UInt32Type>("feature")?;
        let n_fired = c.prim::<UInt64Type>("n_fired")?;
        let density = c.prim::<Float64Type>("density")?;
        let max_act = c.prim::<Float32Type>("max_act")?;
        let mean_act = c.prim::<Float32Type>("mean_act")?;
        let act_hist = c.list_prim::<UInt64Type>("act_hist")?;
        let (tt_off, tt_vals) = c.list("top_tokens")?;
        let tt_tok = c.struct_child::<UInt32Type>("top_tokens", tt_vals, "token")?;
        let tt_cnt = c.struct_child::<UInt64Type>("top_tokens", tt_vals, "count")?;
        let top_tokens = split(tt_off, tt_tok)
            .zip(split(tt_off, tt_cnt))
            .map(|(t, n)| {
                t.iter()
                    .zip(n)
                    .map(|(&token, &count)| TokenCount { token, count })
                    .collect::<Vec<_>>()
            });
        let logit_pos = read_token_values(&c, "logit_pos")?;
        let logit_neg = read_token_values(&c, "logit_neg")?;
        // Files written before the logit histogram existed lack its columns.
        let n = batch.num_rows();
        let (logit_hist, lo, hi) = if batch.column_by_name("logit_hist").is_some() {
            (
                c.list_prim::<UInt64Type>("logit_hist")?,
                c.prim::<Float32Type>("logit_hist_min")?.to_vec(),
                c.prim::<Float32Type>("logit_hist_max")?.to_vec(),
            )
        } else {
            (vec![Vec::new(); n], vec![0.0; n], vec![0.0; n])
        };
        Ok(act_hist
            .into_iter()
            .zip(top_tokens)
            .zip(logit_pos)
            .zip(logit_neg)
            .zip(logit_hist)
            .enumerate()
            .map(
                |(i, ((((act_hist, top_tokens), logit_pos), logit_neg), logit_hist))| {
                    FeatureRecord {
                        feature: feature[i],
                        n_fired: n_fired[i],
                        density: density[i],
                        max_act: max_act[i],
                        mean_act: mean_act[i],
                        act_hist,
                        top_tokens,
                        logit_pos,
                        logit_neg,
                        logit_hist,
                        logit_hist_min: lo[i],
                        logit_hist_max: hi[i],
                    }
                },
            )
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// examples

impl Table for ExampleRecord {
    const NAME: &'static str = "examples";
    // 4096 examples × 128 positions × 4 bytes ≈ 2 MiB of activations per row group.
    const ROWS_PER_GROUP: usize = 4096;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("feature", DataType::UInt32),
                field("kind", DataType::Utf8),
                field("rank", DataType::UInt16),
                field("context_id", DataType::UInt64),
                field("max_pos", DataType::UInt32),
                field("max_act", DataType::Float32),
                field("acts", list_of(DataType::Float32)),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        let kinds: Vec<String> = rows.iter().map(|r| r.kind.as_string()).collect();
        batch(
            Self::schema(),
            vec![
                prim::<UInt32Type>(rows.iter().map(|r| r.feature).collect()),
                strings(kinds.iter().map(String::as_str)),
                prim::<UInt16Type>(rows.iter().map(|r| r.rank).collect()),
                prim::<UInt64Type>(rows.iter().map(|r| r.context_id).collect()),
                prim::<UInt32Type>(rows.iter().map(|r| r.max_pos).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.max_act).collect()),
                list_prim::<Float32Type>(rows.iter().map(|r| r.acts.as_slice())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let feature = c.prim::<UInt32Type>("feature")?;
        let kind = c.strings("kind")?;
        let rank = c.prim::<UInt16Type>("rank")?;
        let context_id = c.prim::<UInt64Type>("context_id")?;
        let max_pos = c.prim::<UInt32Type>("max_pos")?;
        let max_act = c.prim::<Float32Type>("max_act")?;
        let acts = c.list_prim::<Float32Type>("acts")?;
        acts.into_iter()
            .enumerate()
            .map(|(i, acts)| {
                let kind = ExampleKind::parse(kind.value(i)).ok_or_else(|| {
                    Error::corrupt(
                        format!("{location} column kind"),
                        format!("{:?} is neither `top` nor `interval_{{i}}`", kind.value(i)),
                    )
                })?;
                Ok(ExampleRecord {
                    feature: feature[i],
                    kind,
                    rank: rank[i],
                    context_id: context_id[i],
                    max_pos: max_pos[i],
                    max_act: max_act[i],
                    acts,
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// cooccurrence

impl Table for CooccurrenceRecord {
    const NAME: &'static str = "cooccurrence";
    const ROWS_PER_GROUP: usize = 65_536;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("feature", DataType::UInt32),
                field("other_sae", DataType::Utf8),
                field("other_feature", DataType::UInt32),
                field("n_both", DataType::UInt64),
                field("jaccard", DataType::Float32),
                field("npmi", DataType::Float32),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        batch(
            Self::schema(),
            vec![
                prim::<UInt32Type>(rows.iter().map(|r| r.feature).collect()),
                strings(rows.iter().map(|r| r.other_sae.as_str())),
                prim::<UInt32Type>(rows.iter().map(|r| r.other_feature).collect()),
                prim::<UInt64Type>(rows.iter().map(|r| r.n_both).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.jaccard).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.npmi).collect()),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let feature = c.prim::<UInt32Type>("feature")?;
        let other_sae = c.strings("other_sae")?;
        let other_feature = c.prim::<UInt32Type>("other_feature")?;
        let n_both = c.prim::<UInt64Type>("n_both")?;
        let jaccard = c.prim::<Float32Type>("jaccard")?;
        let npmi = c.prim::<Float32Type>("npmi")?;
        Ok((0..batch.num_rows())
            .map(|i| CooccurrenceRecord {
                feature: feature[i],
                other_sae: other_sae.value(i).to_string(),
                other_feature: other_feature[i],
                n_both: n_both[i],
                jaccard: jaccard[i],
                npmi: npmi[i],
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// decoder neighbours

impl Table for NeighbourRecord {
    const NAME: &'static str = "neighbours";
    const ROWS_PER_GROUP: usize = 65_536;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("feature", DataType::UInt32),
                field("other_sae", DataType::Utf8),
                field("other_feature", DataType::UInt32),
                field("cosine", DataType::Float32),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        batch(
            Self::schema(),
            vec![
                prim::<UInt32Type>(rows.iter().map(|r| r.feature).collect()),
                strings(rows.iter().map(|r| r.other_sae.as_str())),
                prim::<UInt32Type>(rows.iter().map(|r| r.other_feature).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.cosine).collect()),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let feature = c.prim::<UInt32Type>("feature")?;
        let other_sae = c.strings("other_sae")?;
        let other_feature = c.prim::<UInt32Type>("other_feature")?;
        let cosine = c.prim::<Float32Type>("cosine")?;
        Ok((0..batch.num_rows())
            .map(|i| NeighbourRecord {
                feature: feature[i],
                other_sae: other_sae.value(i).to_string(),
                other_feature: other_feature[i],
                cosine: cosine[i],
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// vocabulary

impl Table for VocabRecord {
    const NAME: &'static str = "vocab";
    const ROWS_PER_GROUP: usize = 65_536;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("token_id", DataType::UInt32),
                field("piece", DataType::Utf8),
                field("text", DataType::Utf8),
                field("bytes", DataType::Binary),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        batch(
            Self::schema(),
            vec![
                prim::<UInt32Type>(rows.iter().map(|r| r.token_id).collect()),
                strings(rows.iter().map(|r| r.piece.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
                binaries(rows.iter().map(|r| r.bytes.as_slice())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let token_id = c.prim::<UInt32Type>("token_id")?;
        let piece = c.strings("piece")?;
        let text = c.strings("text")?;
        let bytes = c.binaries("bytes")?;
        Ok((0..batch.num_rows())
            .map(|i| VocabRecord {
                token_id: token_id[i],
                piece: piece.value(i).to_string(),
                text: text.value(i).to_string(),
                bytes: bytes.value(i).to_vec(),
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// summary

impl Table for SaeSummary {
    const NAME: &'static str = "summary";
    const ROWS_PER_GROUP: usize = 1;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("sae_id", DataType::Utf8),
                field("d_in", DataType::UInt32),
                field("d_sae", DataType::UInt32),
                field("tokens_indexed", DataType::UInt64),
                field("mean_l0", DataType::Float64),
                field("dead_features", DataType::UInt32),
                field("explained_variance", DataType::Float64),
                field("act_hist_edges", list_of(DataType::Float32)),
                field("density_hist_edges", list_of(DataType::Float32)),
                field("density_hist", list_of(DataType::UInt64)),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        batch(
            Self::schema(),
            vec![
                strings(rows.iter().map(|r| r.sae_id.as_str())),
                prim::<UInt32Type>(rows.iter().map(|r| r.d_in).collect()),
                prim::<UInt32Type>(rows.iter().map(|r| r.d_sae).collect()),
                prim::<UInt64Type>(rows.iter().map(|r| r.tokens_indexed).collect()),
                prim::<Float64Type>(rows.iter().map(|r| r.mean_l0).collect()),
                prim::<UInt32Type>(rows.iter().map(|r| r.dead_features).collect()),
                prim::<Float64Type>(rows.iter().map(|r| r.explained_variance).collect()),
                list_prim::<Float32Type>(rows.iter().map(|r| r.act_hist_edges.as_slice())),
                list_prim::<Float32Type>(rows.iter().map(|r| r.density_hist_edges.as_slice())),
                list_prim::<UInt64Type>(rows.iter().map(|r| r.density_hist.as_slice())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let sae_id = c.strings("sae_id")?;
        let d_in = c.prim::<UInt32Type>("d_in")?;
        let d_sae = c.prim::<UInt32Type>("d_sae")?;
        let tokens_indexed = c.prim::<UInt64Type>("tokens_indexed")?;
        let mean_l0 = c.prim::<Float64Type>("mean_l0")?;
        let dead = c.prim::<UInt32Type>("dead_features")?;
        let ev = c.prim::<Float64Type>("explained_variance")?;
        let ahe = c.list_prim::<Float32Type>("act_hist_edges")?;
        let dhe = c.list_prim::<Float32Type>("density_hist_edges")?;
        let dh = c.list_prim::<UInt64Type>("density_hist")?;
        Ok(ahe
            .into_iter()
            .zip(dhe)
            .zip(dh)
            .enumerate()
            .map(
                |(i, ((act_hist_edges, density_hist_edges), density_hist))| SaeSummary {
                    sae_id: sae_id.value(i).to_string(),
                    d_in: d_in[i],
                    d_sae: d_sae[i],
                    tokens_indexed: tokens_indexed[i],
                    mean_l0: mean_l0[i],
                    dead_features: dead[i],
                    explained_variance: ev[i],
                    act_hist_edges,
                    density_hist_edges,
                    density_hist,
                },
            )
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// context features

impl Table for ContextFeaturesRecord {
    const NAME: &'static str = "context_features";
    const ROWS_PER_GROUP: usize = 16_384;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        schema_once(&S, || {
            vec![
                field("context_id", DataType::UInt64),
                field("features", list_of(DataType::UInt32)),
                field("max_acts", list_of(DataType::Float32)),
                field("max_pos", list_of(DataType::UInt32)),
            ]
        })
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        batch(
            Self::schema(),
            vec![
                prim::<UInt64Type>(rows.iter().map(|r| r.context_id).collect()),
                list_prim::<UInt32Type>(rows.iter().map(|r| r.features.as_slice())),
                list_prim::<Float32Type>(rows.iter().map(|r| r.max_acts.as_slice())),
                list_prim::<UInt32Type>(rows.iter().map(|r| r.max_pos.as_slice())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let ids = c.prim::<UInt64Type>("context_id")?;
        let features = c.list_prim::<UInt32Type>("features")?;
        let max_acts = c.list_prim::<Float32Type>("max_acts")?;
        let max_pos = c.list_prim::<UInt32Type>("max_pos")?;
        features
            .into_iter()
            .zip(max_acts)
            .zip(max_pos)
            .enumerate()
            .map(|(i, ((features, max_acts), max_pos))| {
                if features.len() != max_acts.len() || features.len() != max_pos.len() {
                    return Err(Error::corrupt(
                        format!("{location} row {i}"),
                        format!(
                            "{} features but {} max_acts and {} max_pos",
                            features.len(),
                            max_acts.len(),
                            max_pos.len()
                        ),
                    ));
                }
                Ok(ContextFeaturesRecord {
                    context_id: ids[i],
                    features,
                    max_acts,
                    max_pos,
                })
            })
            .collect()
    }
}
