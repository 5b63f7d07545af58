//! What must never happen to a user's data: every command that publishes refuses an `--out`
//! that scopedex did not write (a user's folder, a regular file), before any work and with
//! exit code 2; a run that indexes nothing, or whose model produces NaN, fails and leaves the
//! published index as it was.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scopedex_store::IndexReader;

use crate::assets::{default_model, scopedex_bin, workspace_root};
use crate::index::{fabricate_sae, run_ok, small_corpus};

fn scopedex(args: &[&str]) -> Output {
    Command::new(scopedex_bin()).args(args).output().unwrap()
}

/// A folder of a user's with one file in it.
fn user_folder(root: &Path) -> PathBuf {
    let dir = root.join("thesis");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("chapter1.tex"), "years of work").unwrap();
    dir
}

fn assert_refused(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(
        err.contains("refusing") || err.contains("not written by") || err.contains("not empty"),
        "{what}: {err}"
    );
}

/// Every entry of `root`, sorted, for "nothing appeared or vanished" checks.
fn listing(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn index_args(model: &str, sae: &Path, corpus: &Path, out: &Path) -> Vec<String> {
    [
        "index",
        "--model",
        model,
        "--sae",
        sae.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ctx-len",
        "16",
        "--batch-size",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(args: &[String]) -> Output {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    scopedex(&argv)
}

#[test]
fn every_publishing_command_refuses_an_out_that_is_not_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let corpus = small_corpus(root, 12);
    let sae = root.join("L2R");
    fabricate_sae(&sae, 2, "hook_resid_post", 64, 4, 3);
    let model = default_model();
    let model = model.to_str().unwrap();
    let folder = user_folder(root);
    let file = root.join("notes.txt");
    std::fs::write(&file, "precious").unwrap();
    let before = listing(root);

    for out in [&folder, &file, &corpus] {
        let o = run(&index_args(model, &sae, &corpus, out));
        assert_refused(&o, &format!("index --out {}", out.display()));
        let o = scopedex(&["merge", out.to_str().unwrap(), "/nonexistent-shard"]);
        assert_refused(&o, &format!("merge {}", out.display()));
        let o = scopedex(&[
            "train-sae",
            "--model",
            model,
            "--sae-id",
            "L2R-8x",
            "--corpus",
            corpus.to_str().unwrap(),
            "--tokens",
            "2000",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_refused(&o, &format!("train-sae --out {}", out.display()));
    }
    let o = scopedex(&["reindex", folder.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        listing(root),
        before,
        "nothing created or removed beside them"
    );
    assert_eq!(listing(&folder), vec!["chapter1.tex"]);
    assert_eq!(
        std::fs::read_to_string(folder.join("chapter1.tex")).unwrap(),
        "years of work"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");

    // Export: a non-empty folder is refused; --force removes only what an export wrote.
    let index = root.join("index");
    run_ok(
        &index_args(model, &sae, &corpus, &index)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let export = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "export",
            "neuronpedia",
            index.to_str().unwrap(),
            "--sae",
            "L2R-1x",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        scopedex(&a)
    };
    assert_refused(&export(&folder, &[]), "export into a user's folder");
    let o = export(&folder, &["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(listing(&folder).contains(&"chapter1.tex".to_string()));
    // Bulk: a user's folder where the source would go is never replaced, even with --force.
    let bulk = root.join("bulk");
    let o = export(&bulk, &["--format", "bulk", "--model-id", "smol-test"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sources: Vec<PathBuf> = std::fs::read_dir(bulk.join("smol-test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sources.len(), 1, "{sources:?}");
    // Our own earlier export is replaced...
    let o = export(
        &bulk,
        &["--format", "bulk", "--model-id", "smol-test", "--force"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // ...a folder holding anything else is not.
    std::fs::write(sources[0].join("mine.txt"), "keep").unwrap();
    let o = export(
        &bulk,
        &["--format", "bulk", "--model-id", "smol-test", "--force"],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(sources[0].join("mine.txt")).unwrap(),
        "keep"
    );
}

/// A copy of the tiny Llama-3.1 fixture whose first input norm is NaN (bf16 0x7FC0).
fn nan_model(root: &Path) -> PathBuf {
    let src = workspace_root().join("tests/fixtures/tiny-llama31");
    let dst = root.join("nan-llama");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let name = "model.layers.0.input_layernorm.weight";
    let shard = dst.join(index["weight_map"][name].as_str().unwrap());
    let mut bytes = std::fs::read(&shard).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header[name]["dtype"], "BF16");
    let offsets = &header[name]["data_offsets"];
    let (a, b) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    for pair in bytes[8 + header_len + a..8 + header_len + b].chunks_mut(2) {
        pair.copy_from_slice(&0x7FC0u16.to_le_bytes());
    }
    std::fs::write(&shard, bytes).unwrap();
    dst
}

#[test]
fn a_run_that_indexes_nothing_or_meets_nan_keeps_the_published_index() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let fixture = workspace_root().join("tests/fixtures/tiny-llama31");
    let corpus = small_corpus(root, 12);
    let sae = root.join("L0R");
    let spec = scopedex_sae::FabricateSpec {
        d_model: 64,
        d_sae: 32,
        k: 4,
        hook_in: "blocks.0.hook_resid_post".into(),
        hook_out: "blocks.0.hook_resid_post".into(),
        norm: (8.0, 8.0),
        seed: 5,
    };
    scopedex_sae::fabricate_llama_scope(&sae, &spec).unwrap();
    let out = root.join("index");
    let model = fixture.to_str().unwrap();
    run_ok(
        &index_args(model, &sae, &corpus, &out)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let contexts = IndexReader::open(&out).unwrap().num_contexts();
    assert!(contexts > 0);
    let unchanged = |what: &str| {
        assert_eq!(
            std::fs::read(out.join("manifest.json")).unwrap(),
            manifest,
            "{what}: the published index was replaced"
        );
        assert_eq!(IndexReader::open(&out).unwrap().num_contexts(), contexts);
        assert_eq!(
            listing(root)
                .iter()
                .filter(|n| n.starts_with("index"))
                .count(),
            1
        );
    };

    // Every corpus file is skipped (malformed JSON).
    let bad = root.join("bad-corpus");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("a.json"), "[\"unterminated").unwrap();
    std::fs::write(bad.join("b.jsonl"), "{not json}\n").unwrap();
    let o = run(&index_args(model, &sae, &bad, &out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing was indexed"), "{err}");
    unchanged("all files skipped");

    // The model produces NaN: the run stops naming the hook and the context.
    let nan = nan_model(root);
    let o = run(&index_args(nan.to_str().unwrap(), &sae, &corpus, &out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("non-finite") && err.contains("blocks.0.hook_resid_post"),
        "{err}"
    );
    assert!(err.contains("context 0"), "{err}");
    unchanged("NaN activations");
}
