//! Tokenization throughput of `scopedex-corpus`: the nlp-corpus asset (100 JSON lists of English
//! sentences) through the model's byte-level BPE (SmolLM2's, rebuilt from the GGUF by
//! `scopedex_model::load_tokenizer`) into 128-token contexts with BOS, on 1 and 2 rayon threads.
//!
//! Reports text MB/s, contexts/s and tokens/s for the full stream (read + tokenize + window), and
//! the read-only rate for reference. The goal is ≥ 10× the model forward (~1,000 tokens/s on
//! this 2-core machine), i.e. ≥ 10k tokens/s.
//!
//! Run: `cargo bench -p scopedex-benches --bench tokenize` (or, without an optimised build of the
//! workspace, `cargo test -p scopedex-benches --bench tokenize`: dependencies are optimised in the
//! dev profile too). Options: `--corpus PATH` `--model GGUF|tokenizer.json` `--bos ID` (with a
//! bare tokenizer.json) `--ctx-len N` `--threads 1,2` `--save-tokenizer PATH`.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use scopedex_corpus::{contexts, ContextConfig, CorpusSpec};

struct Args {
    corpus: PathBuf,
    model: PathBuf,
    ctx_len: usize,
    threads: Vec<usize>,
    /// BOS id when `model` is a bare `tokenizer.json` (which carries none).
    bos: Option<u32>,
    /// Write the loaded tokenizer as `tokenizer.json` here (to run elsewhere without the GGUF).
    save_tokenizer: Option<PathBuf>,
}

fn args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        corpus: root.join("assets/corpora/nlp-corpus"),
        model: root.join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ctx_len: 128,
        threads: vec![1, 2],
        bos: None,
        save_tokenizer: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus" => a.corpus = val().into(),
            "--model" => a.model = val().into(),
            "--ctx-len" => a.ctx_len = val().parse().expect("--ctx-len N"),
            "--threads" => {
                a.threads = val()
                    .split(',')
                    .map(|t| t.parse().expect("--threads 1,2"))
                    .collect()
            }
            "--bos" => a.bos = Some(val().parse().expect("--bos ID")),
            "--save-tokenizer" => a.save_tokenizer = Some(val().into()),
            // Flags cargo passes to bench binaries.
            "--bench" | "--nocapture" => {}
            other => eprintln!("ignoring argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    if !a.corpus.exists() || !a.model.exists() {
        eprintln!(
            "tokenize bench: assets missing ({} / {}); run scripts/fetch-assets.sh",
            a.corpus.display(),
            a.model.display()
        );
        return;
    }
    let tok = scopedex_model::load_tokenizer(&a.model).expect("load the model's tokenizer");
    let bos = tok.bos_id.or(a.bos);
    if let Some(path) = &a.save_tokenizer {
        tok.tokenizer
            .save(path, false)
            .expect("save tokenizer.json");
    }
    let tokenizer = Arc::new(tok.tokenizer);
    let spec = CorpusSpec::new([a.corpus.clone()]);

    // Read-only pass: corpus size and reader throughput.
    let t = Instant::now();
    let (mut docs, mut bytes) = (0u64, 0u64);
    for d in spec.documents().expect("corpus") {
        let d = d.expect("document");
        docs += 1;
        bytes += d.text.len() as u64;
    }
    let read_s = t.elapsed().as_secs_f64();
    let mb = bytes as f64 / 1e6;
    println!(
        "corpus {}: {docs} documents, {mb:.2} MB of text; read only: {read_s:.3} s = {:.1} MB/s",
        a.corpus.display(),
        mb / read_s
    );
    println!(
        "tokenizer: {} (bos {:?}), ctx_len {}",
        a.model.display(),
        bos,
        a.ctx_len
    );

    for &threads in &a.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool");
        let (n_ctx, n_tok, secs) = pool.install(|| {
            let t = Instant::now();
            let mut stream = contexts(
                spec.documents().expect("corpus"),
                tokenizer.clone(),
                ContextConfig::new(a.ctx_len, bos),
            );
            for chunk in stream.by_ref() {
                chunk.expect("contexts");
            }
            assert!(stream.skip_report().is_empty(), "{}", stream.skip_report());
            (
                stream.contexts_emitted(),
                stream.tokens_emitted(),
                t.elapsed().as_secs_f64(),
            )
        });
        println!(
            "threads {threads}: {n_ctx} contexts, {n_tok} tokens in {secs:.3} s = {:.2} MB/s, {:.0} contexts/s, {:.0} tokens/s",
            mb / secs,
            n_ctx as f64 / secs,
            n_tok as f64 / secs
        );
    }
}
