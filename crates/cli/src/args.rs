//! Command-line arguments: one variant per subcommand.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Precompute sparse-autoencoder feature activations over a corpus and serve them for search.
#[derive(Debug, Parser)]
#[command(name = "scopedex", version, about)]
pub struct Cli {
    /// More log output (-v info, -vv debug); SCOPEDEX_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Where commands that run the model or an SAE run them: `cpu`, `cuda` or `cuda:N` (CUDA
    /// needs a build with the `cuda` feature).
    #[arg(long, global = true, default_value = "cpu", env = "SCOPEDEX_DEVICE")]
    pub device: String,
    /// The model's weights and activations: `f32`, `bf16` or `f16` (hooks and SAEs stay f32;
    /// norms and softmax run in f32 whatever the dtype).
    #[arg(long, global = true, default_value = "f32", env = "SCOPEDEX_DTYPE")]
    pub dtype: String,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Index a corpus: one model pass feeding every SAE; publishes an index directory.
    Index(IndexArgs),
    /// Merge shard indexes (from `index --shard I/N`) into one index.
    Merge {
        /// The merged index directory to publish.
        out: PathBuf,
        /// Shard index directories (every shard of the run, any order).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Keep the merged accumulator state (`state/`), to merge the result again later.
        #[arg(long)]
        keep_state: bool,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild an index's serving store (RocksDB) and text index (tantivy) from its Parquet files.
    Reindex {
        /// The index directory.
        index: PathBuf,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove an index's accumulator state (`state/`, kept for `merge`); the index stays
    /// servable but can no longer be merged.
    DropState {
        /// The index directory.
        index: PathBuf,
    },
    /// Write a text file's activations (one text per line, BOS prepended) at hooks to safetensors.
    DumpActivations {
        /// Model: a GGUF file or an HF directory (config.json + safetensors + tokenizer.json).
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated hook names, e.g. `blocks.15.hook_resid_post,blocks.3.hook_mlp_out`.
        #[arg(long)]
        hooks: String,
        /// Text file, one text per line.
        #[arg(long)]
        input: PathBuf,
        /// Maximum tokens per text, BOS included.
        #[arg(long, default_value_t = 128)]
        ctx_len: usize,
        /// Output safetensors file (`tokens`, `text_index`, one `[T, d_model]` tensor per hook).
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode activations with one SAE into sparse codes (`row_ptr`, `features`, `values`).
    Encode {
        /// SAE folder (Llama Scope, SAELens or Gemma Scope), or a Llama Scope repo folder with --id.
        #[arg(long)]
        sae: PathBuf,
        /// SAE id inside a repo folder, e.g. `L15R-8x`.
        #[arg(long)]
        id: Option<String>,
        /// Safetensors file holding the activations.
        #[arg(long)]
        input: PathBuf,
        /// Tensor of --input to encode, `[T, d_in]` (or `[.., d_in]`).
        #[arg(long)]
        tensor: String,
        /// Output safetensors file: `row_ptr` I64 [T+1], `features` I64 [nnz], `values` F32 [nnz].
        #[arg(long)]
        out: PathBuf,
        /// Print reconstruction metrics (MSE, explained variance, L0, dead features) as JSON.
        #[arg(long)]
        metrics: bool,
        /// Tensor of --input the reconstruction is compared with (required for transcoders:
        /// the MLP output); defaults to --tensor.
        #[arg(long)]
        target: Option<String>,
    },
    /// Write a random TopK SAE in the Llama Scope layout (for tests and benchmarks).
    #[command(hide = true)]
    FabricateSae {
        /// Output SAE folder.
        #[arg(long)]
        out: PathBuf,
        /// Hook read, e.g. blocks.3.hook_resid_post.
        #[arg(long)]
        hook_in: String,
        /// Hook reconstructed (default: hook_in).
        #[arg(long)]
        hook_out: Option<String>,
        /// Model width.
        #[arg(long, default_value_t = 576)]
        d_model: usize,
        /// Number of features.
        #[arg(long)]
        d_sae: usize,
        /// TopK's k.
        #[arg(long, default_value_t = 32)]
        k: usize,
        /// Seed of the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Describe a model (family, layers, widths, hook points, vocabulary) as JSON.
    Info {
        /// A GGUF file or an HF directory (config.json + safetensors).
        #[arg(long)]
        model: PathBuf,
    },
    /// Export an index's features (Neuronpedia / SAEDashboard dashboards).
    #[command(subcommand)]
    Export(crate::cmd::export::ExportCommand),
    /// Explain features with a language model behind any OpenAI-compatible endpoint
    /// (resumable; published into the index).
    Explain(crate::cmd::explain::ExplainArgs),
    /// Score explanations by detection and fuzzing on held-out examples (resumable).
    Score(crate::cmd::explain::ScoreArgs),
    /// Features whose explanation matches a query.
    Features(crate::cmd::explain::FeaturesArgs),
    /// Read Neuronpedia explanation files (explanations/batch-N.jsonl.gz) into an index.
    ImportExplanations(crate::cmd::explain::ImportArgs),
    /// Train TopK SAEs (Llama Scope layout) on model activations; all ids share one model pass.
    TrainSae(TrainSaeArgs),
    /// Print three example queries (top, cooc, search) that work on a (demo) index.
    Demo {
        /// The index directory.
        #[arg(default_value = "out/demo-index")]
        index: PathBuf,
        /// Address the server listens on (used in the printed URLs).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Serve the JSON API (and the web UI) of an index.
    Serve(ServeArgs),
    /// Top (or interval) example contexts of one feature.
    Top(TopArgs),
    /// Statistics of an SAE, or of one feature (its dashboard).
    Stats(StatsArgs),
    /// Features that fire on the same tokens as one feature.
    Cooc(CoocArgs),
    /// Contexts matching a query of words, phrases and features, with their strongest features.
    Search(SearchArgs),
    /// Contexts most like one context (or a text): ranked by shared features, rarest first.
    Similar(SimilarArgs),
    /// Run the model and SAEs on a text: strongest features per token.
    Activate(ActivateArgs),
}

/// Arguments of `scopedex train-sae`.
#[derive(Debug, clap::Args)]
pub struct TrainSaeArgs {
    /// Model: a GGUF file or an HF directory.
    #[arg(long)]
    pub model: PathBuf,
    /// SAE ids to train, e.g. `L6R-8x` (R, A, M or TC); repeat for more.
    #[arg(long = "sae-id", required = true)]
    pub sae_ids: Vec<String>,
    /// Corpus files, directories or globs.
    #[arg(long, required = true, num_args = 1..)]
    pub corpus: Vec<PathBuf>,
    /// Training tokens drawn from the model (each SAE sees each `--epochs` times); held-out
    /// tokens come on top.
    #[arg(long, default_value_t = 1_000_000)]
    pub tokens: u64,
    /// Passes over the training tokens: passes after the first replay a bf16 spill file of the
    /// first (about 2·d_model bytes per token and hook), so more optimiser steps cost no more
    /// model forwards.
    #[arg(long, default_value_t = 1)]
    pub epochs: u32,
    /// Folder of the spill file used when `--epochs` > 1 (default: the system's temporary
    /// folder); the file is removed when training ends.
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Active features per token.
    #[arg(long, default_value_t = 32)]
    pub k: usize,
    /// Activation of the written SAEs. `topk`: exactly k per token, as trained. `jumprelu` (as
    /// the Llama Scope release): one threshold calibrated on the held-out tokens to a mean L0
    /// of k; SAELens' Llama Scope loader and lm_saes then compute the same codes as scopedex,
    /// at some cost in explained variance (the report gives both forms' figures). Both forms
    /// carry the threshold, so SAELens loads either (a TopK file as that JumpReLU).
    #[arg(long, default_value = "topk")]
    pub activation: scopedex_train::WrittenActivation,
    /// Output folder: one `<name-prefix>-<id>/` Llama Scope folder per SAE + train-report.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder name prefix (default: the model file name up to its first dot).
    #[arg(long)]
    pub name_prefix: Option<String>,
    /// Peak Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Tokens per optimiser step.
    #[arg(long, default_value_t = 2048)]
    pub batch_rows: usize,
    /// Rows of the shuffle buffer (per hook; half refilled at a time).
    #[arg(long, default_value_t = 32_768)]
    pub buffer_rows: usize,
    /// Held-out tokens for evaluation (taken first from the corpus, never trained on).
    #[arg(long, default_value_t = 8192)]
    pub eval_tokens: usize,
    /// AuxK: dead features used per token to model the residual (0 disables).
    #[arg(long, default_value_t = 256)]
    pub aux_k: usize,
    /// Activation cache for hyperparameter sweeps: when FILE and FILE.json exist and hold the
    /// same hooks, rows are replayed from it instead of running the model (same rows, same
    /// order); otherwise every row drawn from the model is written to it (bf16, about
    /// 2·d_model bytes per token and hook).
    #[arg(long, value_name = "FILE")]
    pub activation_cache: Option<PathBuf>,
    /// Weight of the AuxK loss (dead features reconstructing the residual).
    #[arg(long, default_value_t = 1.0 / 32.0)]
    pub aux_coeff: f32,
    /// A feature is dead after this many training tokens without firing.
    #[arg(long, default_value_t = 100_000)]
    pub dead_after_tokens: u64,
    /// Every this many training tokens (0: never), restart dead features at the rows the SAE
    /// reconstructs worst (decoder = the row's residual, encoder = its input direction); only
    /// before the final learning-rate decay.
    #[arg(long, default_value_t = 0)]
    pub resample_every_tokens: u64,
    /// Tokens per context window, BOS included.
    #[arg(long, default_value_t = 128)]
    pub ctx_len: usize,
    /// Contexts per model forward.
    #[arg(long, default_value_t = 16)]
    pub batch_contexts: usize,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Initial feature directions: `data` (each feature starts at a random training row, the
    /// encoder scale fitted to the rows: higher explained variance and far fewer dead features
    /// on A, M and TC hooks) or `random` (random unit directions, encoder = decoder).
    #[arg(long, default_value = "data")]
    pub init: scopedex_train::Init,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Arguments of `scopedex index`.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// Model: a GGUF file or an HF directory (config.json + safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// SAE: a folder (Llama Scope, SAELens or Gemma Scope), or a Llama Scope repo folder plus
    /// ids (`PATH:L15R-8x,L15TC-8x`); `#NAME` at the end sets one SAE's id by hand
    /// (`PATH#L12R-16k-l0-82`). Repeat for more SAEs; all share one model pass.
    #[arg(long = "sae", required = true)]
    pub saes: Vec<String>,
    /// Corpus files, directories or globs (.jsonl, .jsonl.zst, .json, .txt, .parquet).
    #[arg(long, required = true, num_args = 1..)]
    pub corpus: Vec<PathBuf>,
    /// Output index directory (published atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Tokens per context window, BOS included.
    #[arg(long, default_value_t = 128)]
    pub ctx_len: usize,
    /// Contexts per model forward.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Top contexts kept per feature.
    #[arg(long, default_value_t = 32)]
    pub top_k: usize,
    /// Activation intervals for interval samples.
    #[arg(long, default_value_t = 10)]
    pub intervals: usize,
    /// Samples kept per interval.
    #[arg(long, default_value_t = 8)]
    pub samples_per_interval: usize,
    /// Stop after this many corpus tokens.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Stop after this many documents.
    #[arg(long)]
    pub max_docs: Option<u64>,
    /// Index the I-th of N deterministic slices of the contexts (e.g. 0/4); merge with `merge`.
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Also write the sparse activation log (context, position, feature, value).
    #[arg(long)]
    pub keep_activations: bool,
    /// Mantissa bits kept in the activation log's values: 7 = bf16 precision (relative error
    /// ≤ 0.4 %), 10 = f16 precision (~0.5 byte per entry more), 23 = exact f32.
    #[arg(long, default_value_t = scopedex_store::DEFAULT_MANTISSA_BITS,
          value_parser = clap::value_parser!(u8).range(0..=23))]
    pub activation_bits: u8,
    /// Continue from the checkpoint an interrupted run left beside --out.
    #[arg(long)]
    pub resume: bool,
    /// Keep the accumulator state (`state/`) in a single-pass run too, so it can be merged
    /// (shards of `--shard I/N` always keep it).
    #[arg(long)]
    pub keep_state: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write a checkpoint every N batches (0: never).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Include the BOS position in statistics and rankings.
    #[arg(long)]
    pub include_bos: bool,
    /// Counters per feature of the top-token sketch (Misra–Gries). Top tokens are exact — and a
    /// shard merge identical to a single pass — while a feature fires on at most this many
    /// distinct tokens; beyond, each count is within n_fired/(N+1) of the truth.
    #[arg(long, default_value_t = 128)]
    pub token_counters: usize,
    /// Cross-SAE co-occurrence: `adjacent` (layers differ by ≤ 1), `all` or `none`.
    #[arg(long, default_value = "adjacent")]
    pub cross_cooc: String,
    /// `.txt` files hold one document per line.
    #[arg(long)]
    pub txt_lines: bool,
    /// Text column of `.parquet` corpus files.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Stop at the first bad corpus record (exit code 2) instead of skipping it.
    #[arg(long)]
    pub strict: bool,
}

/// Arguments of `scopedex serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The index directory.
    pub index: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Serve the web UI from this build directory instead of the one embedded in the binary.
    #[arg(long)]
    pub web: Option<PathBuf>,
    /// Do not load the model and SAEs (`/api/activate` answers 503).
    #[arg(long)]
    pub no_model: bool,
    /// The index's model at another path, for live activation when the recorded path is gone
    /// (checked against the recorded sha256).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Use --model even if its sha256 differs from the index's (reported by /api/health).
    #[arg(long)]
    pub force: bool,
    /// Allow browser pages from this origin to call the API (CORS), e.g.
    /// `https://neuronpedia.org`; repeat for more, `*` for any. Default: no CORS headers.
    #[arg(long = "cors", value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// An OpenAI-compatible embeddings endpoint (base URL): `/api/features/search` then ranks
    /// features by the meaning of their explanations as well (no cloud key needed with a
    /// local server).
    #[arg(long, env = "SCOPEDEX_EMBEDDINGS_ENDPOINT")]
    pub embeddings_endpoint: Option<String>,
    /// Embedding model name sent to `--embeddings-endpoint`.
    #[arg(long, env = "SCOPEDEX_EMBEDDINGS_MODEL", default_value = "default")]
    pub embeddings_model: String,
    /// Open connections at most (0: from the open-files limit).
    #[arg(long, default_value_t = 0)]
    pub max_connections: usize,
}

/// Arguments of `scopedex top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The index directory.
    pub index: PathBuf,
    /// SAE id, e.g. `L15R-8x`.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// `top`, `interval` (all intervals) or `interval_{i}`.
    #[arg(long, default_value = "top")]
    pub kind: String,
    /// Examples to show (1..=1000).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print the JSON of `GET /api/saes/{sae}/features/{feature}/examples`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `scopedex stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The index directory.
    pub index: PathBuf,
    /// SAE id.
    pub sae: String,
    /// Feature id (omit for the SAE's corpus-wide statistics).
    pub feature: Option<u32>,
    /// Print the JSON of `GET /api/saes/{sae}` or `GET /api/saes/{sae}/features/{feature}`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `scopedex cooc`.
#[derive(Debug, clap::Args)]
pub struct CoocArgs {
    /// The index directory.
    pub index: PathBuf,
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Only partners in this SAE.
    #[arg(long)]
    pub other_sae: Option<String>,
    /// Partners to show (1..=1000).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print the JSON of `GET /api/saes/{sae}/features/{feature}/cooccurrence`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `scopedex search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The index directory.
    pub index: PathBuf,
    /// Query: words, "phrases", feat:SAE/F (feature active), feat:SAE/F>0.5 (max activation
    /// ≥ 0.25/0.5/0.75 of the feature's max), -x / NOT x, AND (default), OR, ( ).
    pub query: String,
    /// Hits to show (1..=1000).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// SAEs whose strongest features each hit lists, comma-separated (at most 16; default: the
    /// SAEs the query names, then the others in index order, 16 in all).
    #[arg(long)]
    pub sae: Option<String>,
    /// Print the JSON of `GET /api/search`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `scopedex similar`.
#[derive(Debug, clap::Args)]
pub struct SimilarArgs {
    /// The index directory.
    pub index: PathBuf,
    /// The source context.
    #[arg(required_unless_present = "text", conflicts_with = "text")]
    pub context_id: Option<u64>,
    /// A free text instead of a context: runs the index's model and SAEs on it.
    #[arg(long)]
    pub text: Option<String>,
    /// Compare only this SAE's features.
    #[arg(long)]
    pub sae: Option<String>,
    /// Contexts to show (1..=1000).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print the JSON of `GET /api/contexts/{id}/similar`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `scopedex activate`.
#[derive(Debug, clap::Args)]
pub struct ActivateArgs {
    /// The index directory (its manifest names the model and SAEs).
    pub index: PathBuf,
    /// The text.
    pub text: String,
    /// Comma-separated SAE ids (default: every SAE of the index).
    #[arg(long)]
    pub saes: Option<String>,
    /// Features per token and SAE (1..=64).
    #[arg(long, default_value_t = 5)]
    pub top_n: usize,
    /// Print the JSON of `POST /api/activate`.
    #[arg(long)]
    pub json: bool,
}
