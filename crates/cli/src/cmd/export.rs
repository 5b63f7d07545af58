//! `scopedex export neuronpedia`: an index's features as Neuronpedia / SAEDashboard dashboards.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use scopedex_export::{ExportOptions, Format, Vocab};
use scopedex_store::IndexReader;

/// `scopedex export …` targets.
#[derive(Debug, clap::Subcommand)]
pub enum ExportCommand {
    /// Write Neuronpedia dashboards (SAEDashboard's batch-{i}.json, or the bulk-import layout).
    Neuronpedia(NeuronpediaArgs),
}

/// Arguments of `scopedex export neuronpedia`.
#[derive(Debug, clap::Args)]
pub struct NeuronpediaArgs {
    /// The index directory.
    pub index: PathBuf,
    /// SAE id in the index, e.g. `L15R-8x`.
    #[arg(long)]
    pub sae: String,
    /// Output directory (created; must be empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Neuronpedia model id, e.g. `smollm2-135m` [default: the index's model id made one:
    /// lowercase, [a-z0-9-]].
    #[arg(long)]
    pub model_id: Option<String>,
    /// Neuronpedia source-set name [default: the SAE id].
    #[arg(long)]
    pub sae_set: Option<String>,
    /// `sae_id_suffix` of the batches (source id `{layer}-{sae_set}__{suffix}`).
    #[arg(long)]
    pub sae_id_suffix: Option<String>,
    /// Features to export: `A..B` (end exclusive), `A..=B`, `A-B`, `A..`, `..B` or `N`.
    #[arg(long)]
    pub features: Option<String>,
    /// Features per batch file (split as SAEDashboard's np.array_split).
    #[arg(long, default_value_t = scopedex_export::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// `batch` (SAEDashboard batch-{i}.json) or `bulk` (Neuronpedia bulk-import jsonl.gz).
    #[arg(long, default_value = "batch")]
    pub format: String,
    /// Write into a non-empty output directory, replacing a previous export.
    #[arg(long)]
    pub force: bool,
    /// `dataset` field [default: a short name of the corpus: the file's stem, or the files'
    /// common directory].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Do not load the SAE (from the manifest's source_path) for decoder-cosine neighbours.
    #[arg(long)]
    pub no_decoder_cosine: bool,
    /// Model or tokenizer.json whose vocabulary names the tokens [default: the index's model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Bulk: Neuronpedia creator id.
    #[arg(long, env = "DEFAULT_CREATOR_ID")]
    pub creator_id: Option<String>,
    /// Bulk: creator name [default: scopedex].
    #[arg(long)]
    pub creator_name: Option<String>,
}

/// Runs `scopedex export …`.
pub fn run(command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Neuronpedia(args) => neuronpedia(args),
    }
}

/// A caller mistake, carried as the store's caller error so `exit_code` maps it to 2.
fn usage(msg: String) -> anyhow::Error {
    anyhow::Error::new(scopedex_store::Error::InvalidInput(msg))
}

fn neuronpedia(args: NeuronpediaArgs) -> anyhow::Result<()> {
    let format = match args.format.as_str() {
        "batch" => Format::Batch,
        "bulk" => Format::Bulk,
        other => return Err(usage(format!("--format {other}: expected batch or bulk"))),
    };
    let reader = IndexReader::open(&args.index)?;
    let entry = reader.sae(&args.sae)?;
    let features = args
        .features
        .as_deref()
        .map(|s| scopedex_export::range::parse_feature_range(s, entry.d_sae))
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    let vocab = load_vocab(&reader, args.model.as_deref())?;
    let opts = ExportOptions {
        model_id: args.model_id,
        sae_set: args.sae_set,
        sae_id_suffix: args.sae_id_suffix,
        dataset: args.dataset,
        features,
        batch_size: args.batch_size,
        format,
        force: args.force,
        creator_id: args.creator_id,
        creator_name: args.creator_name,
        decoder_cosine: !args.no_decoder_cosine,
        ..ExportOptions::new(args.sae.clone(), args.out.clone())
    };
    let pb = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} features ({per_sec}, ETA {eta})",
        )
        .expect("invariant: the template is valid")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(250));
    crate::progress::report_when_piped(&pb, "features");
    let result = scopedex_export::export_neuronpedia(&reader, &vocab, &opts, &pb);
    pb.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) if e.is_user_error() => return Err(usage(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    println!(
        "{}",
        serde_json::json!({
            "dir": report.dir,
            "format": args.format,
            "batches": report.batches,
            "features": report.features,
            "activations": report.activations,
            "explanations": report.explanations,
            "first_feature": report.batch_ranges.first().map(|r| r.start),
            "end_feature": report.batch_ranges.last().map(|r| r.end),
            "provenance": report.provenance,
        })
    );
    Ok(())
}

/// The index's own vocabulary; for an older index without one, the vocabulary of `model` (or
/// of the model the index was built from).
fn load_vocab(reader: &IndexReader, model: Option<&Path>) -> anyhow::Result<Vocab> {
    let manifest = reader.manifest();
    if model.is_none() {
        if let Some(v) = reader.vocab()? {
            let size = v.len().max(manifest.tokenizer.vocab_size as usize);
            return Ok(Vocab::from_pieces(
                v.into_iter().map(|r| Some(r.piece)),
                size,
            ));
        }
    }
    let path = match model {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(&manifest.model.path),
    };
    let tok = scopedex_model::load_tokenizer(&path).with_context(|| {
        format!(
            "loading the tokenizer of {} to name tokens (pass --model PATH if the index's model moved)",
            path.display()
        )
    })?;
    let n = tok.tokenizer.get_vocab_size(true);
    let size = n.max(manifest.tokenizer.vocab_size as usize);
    Ok(Vocab::from_pieces(
        (0..n as u32).map(|id| tok.tokenizer.id_to_token(id)),
        size,
    ))
}
