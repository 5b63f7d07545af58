//! `scopedex index` / `merge` end to end on SmolLM2 with fabricated Llama-Scope-format SAEs:
//! results against a brute force over the activation log, 4 shards merged against one pass,
//! and SIGKILL at several points followed by `--resume`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use scopedex_sae::{fabricate_llama_scope, FabricateSpec};
use scopedex_store::parquet::read_all;
use scopedex_store::{
    ActivationEntry, ActivationReader, ContextFeaturesRecord, ContextRecord, CooccurrenceRecord,
    ExampleKind, ExampleRecord, FeatureRecord, IndexLayout, IndexReader, SIMILAR_LIST_LEN,
};

use crate::assets::{default_model, scopedex_bin, workspace_root};

/// Fabricates a TopK SAE in the Llama Scope layout reading `blocks.{layer}.{hook}`.
pub fn fabricate_sae(dir: &Path, layer: usize, hook: &str, d_sae: usize, k: usize, seed: u64) {
    let hook = format!("blocks.{layer}.{hook}");
    let spec = FabricateSpec {
        d_model: 576,
        d_sae,
        k,
        hook_in: hook.clone(),
        hook_out: hook,
        norm: (30.0, 30.0),
        seed,
    };
    fabricate_llama_scope(dir, &spec).unwrap();
}

/// A small corpus: the first `n` sentences of the nlp-corpus asset's first file, as a JSON list.
pub fn small_corpus(dir: &Path, n: usize) -> PathBuf {
    let src = workspace_root().join("assets/corpora/nlp-corpus/doc-0.json");
    let all: Vec<String> = serde_json::from_slice(
        &std::fs::read(&src)
            .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-assets.sh", src.display())),
    )
    .unwrap();
    let path = dir.join("corpus.json");
    std::fs::write(&path, serde_json::to_vec(&all[..n]).unwrap()).unwrap();
    path
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = Command::new(scopedex_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scopedex {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    corpus: PathBuf,
    sae_a: PathBuf,
    sae_b: PathBuf,
}

fn fixture(sentences: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let corpus = small_corpus(&root, sentences);
    let sae_a = root.join("L2R");
    let sae_b = root.join("L3M");
    fabricate_sae(&sae_a, 2, "hook_resid_post", 96, 8, 7);
    fabricate_sae(&sae_b, 3, "hook_mlp_out", 64, 6, 11);
    Fixture {
        _tmp: tmp,
        root,
        corpus,
        sae_a,
        sae_b,
    }
}

fn index_args<'a>(f: &'a Fixture, model: &'a str, out: &'a str) -> Vec<String> {
    [
        "index",
        "--model",
        model,
        "--sae",
        f.sae_a.to_str().unwrap(),
        "--sae",
        f.sae_b.to_str().unwrap(),
        "--corpus",
        f.corpus.to_str().unwrap(),
        "--out",
        out,
        "--ctx-len",
        "24",
        "--batch-size",
        "4",
        "--top-k",
        "5",
        "--intervals",
        "4",
        "--samples-per-interval",
        "3",
        // Exact top-token counts at this corpus size, so shard merges are identical.
        "--token-counters",
        "4096",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_index(f: &Fixture, out: &Path, extra: &[&str]) {
    let model = default_model();
    let mut args = index_args(f, model.to_str().unwrap(), out.to_str().unwrap());
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&argv);
}

/// Every table of every SAE, for equality checks between runs.
#[derive(Debug, PartialEq)]
struct Tables {
    contexts: Vec<ContextRecord>,
    features: BTreeMap<String, Vec<FeatureRecord>>,
    examples: BTreeMap<String, Vec<ExampleRecord>>,
    cooc: BTreeMap<String, Vec<CooccurrenceRecord>>,
    context_features: BTreeMap<String, Vec<ContextFeaturesRecord>>,
}

fn tables(dir: &Path) -> Tables {
    let layout = IndexLayout::new(dir);
    let reader = IndexReader::open(dir).unwrap();
    let mut t = Tables {
        contexts: read_all(layout.contexts()).unwrap(),
        features: BTreeMap::new(),
        examples: BTreeMap::new(),
        cooc: BTreeMap::new(),
        context_features: BTreeMap::new(),
    };
    for sae in reader.sae_ids() {
        t.features
            .insert(sae.into(), read_all(layout.features(sae)).unwrap());
        t.examples
            .insert(sae.into(), read_all(layout.examples(sae)).unwrap());
        t.cooc
            .insert(sae.into(), read_all(layout.cooccurrence(sae)).unwrap());
        t.context_features
            .insert(sae.into(), read_all(layout.context_features(sae)).unwrap());
    }
    t
}

#[test]
fn index_matches_brute_force_over_the_activation_log() {
    let f = fixture(30);
    let out = f.root.join("index");
    // An exact log (23 mantissa bits): the brute force must agree bit for bit.
    run_index(&f, &out, &["--keep-activations", "--activation-bits", "23"]);
    let reader = IndexReader::open(&out).unwrap();
    let layout = IndexLayout::new(&out);
    let contexts: Vec<ContextRecord> = read_all(layout.contexts()).unwrap();
    assert!(contexts.len() >= 30, "{} contexts", contexts.len());
    for (i, c) in contexts.iter().enumerate() {
        assert_eq!(c.context_id, i as u64);
        assert_eq!(c.tokens[0], 1, "BOS <|im_start|> first");
        assert!(c.tokens.len() <= 24);
    }
    let counted: u64 = contexts.iter().map(|c| c.tokens.len() as u64 - 1).sum();
    for sae in ["L2R-1x", "L3M-1x"] {
        assert!(reader.sae_ids().contains(&sae), "{:?}", reader.sae_ids());
        let entries: Vec<ActivationEntry> = ActivationReader::open(layout.activations_dir(sae))
            .unwrap()
            .batches()
            .flat_map(|b| b.unwrap())
            .collect();
        let d_sae = reader.sae(sae).unwrap().d_sae;
        // Brute force: per feature, per context, the max over positions >= 1 (BOS excluded).
        let mut per_ctx: BTreeMap<(u32, u64), f32> = BTreeMap::new();
        let mut fired = vec![0u64; d_sae as usize];
        for e in entries.iter().filter(|e| e.pos >= 1) {
            let m = per_ctx.entry((e.feature, e.context_id)).or_insert(0.0);
            *m = m.max(e.value);
            fired[e.feature as usize] += 1;
        }
        let summary = reader.sae_summary(sae).unwrap().unwrap();
        assert_eq!(summary.tokens_indexed, counted);
        // Each context's active features (search terms and hits' features), strongest first.
        for c in &contexts {
            let rec = reader.context_features(sae, c.context_id).unwrap().unwrap();
            let brute: Vec<(u32, f32)> = per_ctx
                .iter()
                .filter(|((_, cid), m)| *cid == c.context_id && **m > 0.0)
                .map(|(&(f, _), &m)| (f, m))
                .collect();
            assert_eq!(
                rec.features.len(),
                brute.len(),
                "{sae} ctx {}: every active feature is kept",
                c.context_id
            );
            assert!(rec.max_acts.windows(2).all(|w| w[0] >= w[1]));
            for ((f, m), p) in rec.features.iter().zip(&rec.max_acts).zip(&rec.max_pos) {
                let b = per_ctx[&(*f, c.context_id)];
                assert_eq!(*m, b, "{sae} ctx {} f {f}", c.context_id);
                // The max position is a counted position where the log has (about) the max.
                let at = entries
                    .iter()
                    .find(|e| {
                        e.context_id == c.context_id && e.feature == *f && u32::from(e.pos) == *p
                    })
                    .unwrap_or_else(|| panic!("{sae} ctx {} f {f}: no entry at {p}", c.context_id));
                assert!(*p >= 1 && at.value == b);
            }
        }
        for feat in 0..d_sae {
            let rec = reader.feature(sae, feat).unwrap().unwrap();
            assert_eq!(rec.n_fired, fired[feat as usize], "{sae}/{feat} n_fired");
            let density = fired[feat as usize] as f64 / counted as f64;
            assert!(
                (rec.density - density).abs() < 1e-12,
                "{sae}/{feat} density"
            );
            let brute: BTreeMap<u64, f32> = per_ctx
                .range((feat, 0)..(feat + 1, 0))
                .map(|(&(_, c), &m)| (c, m))
                .collect();
            let got = reader
                .examples(sae, feat, Some(ExampleKind::Top), 100, 0)
                .unwrap();
            // Every chosen context has the brute-force max, the list is ordered, and no context
            // left out beats the last one chosen.
            assert_eq!(got.len(), brute.len().min(5), "{sae}/{feat} list length");
            for w in got.windows(2) {
                let ordered = w[0].max_act > w[1].max_act
                    || (w[0].max_act == w[1].max_act && w[0].context_id < w[1].context_id);
                assert!(ordered, "{sae}/{feat} order");
            }
            for g in &got {
                let b = brute[&g.context_id];
                assert_eq!(g.max_act, b, "{sae}/{feat}");
                assert_eq!(g.acts.len(), contexts[g.context_id as usize].tokens.len());
                assert_eq!(g.acts[g.max_pos as usize], g.max_act);
                assert!(g.max_pos >= 1, "BOS is excluded");
            }
            if let Some(last) = got.last() {
                for (c, &b) in &brute {
                    if !got.iter().any(|g| g.context_id == *c) {
                        let beats = b > last.max_act || (b == last.max_act && *c < last.context_id);
                        assert!(!beats, "{sae}/{feat}: context {c} ({b}) left out");
                    }
                }
            }
        }
    }
}

#[test]
fn four_shards_merged_equal_one_pass() {
    let f = fixture(24);
    let single = f.root.join("single");
    // A non-default log precision: the merge must keep the shards' own.
    let log = ["--keep-activations", "--activation-bits", "10"];
    run_index(&f, &single, &log);
    let mut shard_dirs = Vec::new();
    for i in [2, 0, 3, 1] {
        let dir = f.root.join(format!("shard-{i}"));
        let shard = format!("{i}/4");
        run_index(&f, &dir, &[&log[..], &["--shard", &shard]].concat());
        shard_dirs.push(dir.to_str().unwrap().to_string());
    }
    let merged = f.root.join("merged");
    let mut args = vec!["merge", merged.to_str().unwrap()];
    args.extend(shard_dirs.iter().map(String::as_str));
    run_ok(&args);
    let (a, b) = (tables(&single), tables(&merged));
    assert_same(&a.contexts, &b.contexts, "contexts");
    for sae in a.features.keys() {
        assert_same(
            &a.features[sae],
            &b.features[sae],
            &format!("{sae} features"),
        );
        assert_same(
            &a.examples[sae],
            &b.examples[sae],
            &format!("{sae} examples"),
        );
        assert_same(&a.cooc[sae], &b.cooc[sae], &format!("{sae} cooccurrence"));
        let what = format!("{sae} context features");
        assert_same(&a.context_features[sae], &b.context_features[sae], &what);
        let log = |dir: &Path| {
            let mut v: Vec<ActivationEntry> =
                ActivationReader::open(IndexLayout::new(dir).activations_dir(sae))
                    .unwrap()
                    .batches()
                    .flat_map(|b| b.unwrap())
                    .collect();
            v.sort_by_key(|e| (e.feature, e.context_id, e.pos));
            v
        };
        let (la, lb) = (log(&single), log(&merged));
        assert!(!la.is_empty());
        assert_same(&la, &lb, &format!("{sae} activation log"));
    }
    for dir in [&single, &merged] {
        let m = IndexReader::open(dir).unwrap().manifest().clone();
        assert_eq!(
            m.parameters.activation_mantissa_bits(),
            10,
            "{}",
            dir.display()
        );
    }
    assert_eq!(a, b);
    let (ra, rb) = (
        IndexReader::open(&single).unwrap(),
        IndexReader::open(&merged).unwrap(),
    );
    for sae in ra.sae_ids() {
        assert_eq!(ra.sae_summary(sae).unwrap(), rb.sae_summary(sae).unwrap());
    }
    // "More like this" lists: precomputed by a single pass and by the merge (the same lists),
    // not by the shards, whose stores answer live.
    assert_eq!(ra.similar_lists_precomputed(), SIMILAR_LIST_LEN);
    assert_eq!(rb.similar_lists_precomputed(), SIMILAR_LIST_LEN);
    let mut listed = 0;
    for c in 0..ra.manifest().contexts {
        let list = ra.similar_list(c, None, SIMILAR_LIST_LEN).unwrap();
        assert_eq!(list, rb.similar_list(c, None, SIMILAR_LIST_LEN).unwrap());
        listed += list.map_or(0, |l| l.hits.len());
    }
    assert!(listed > 0);
    for dir in &shard_dirs {
        let r = IndexReader::open(dir).unwrap();
        assert_eq!(r.similar_lists_precomputed(), 0, "{dir}");
    }
    // A missing shard is refused with a clear message.
    let out = Command::new(scopedex_bin())
        .args(["merge", f.root.join("bad").to_str().unwrap()])
        .args(&shard_dirs[..3])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

/// Equal lists, or a panic showing the first pair that differs (not both whole lists).
/// The pass that looks one batch ahead (the next batch's forward beside this one's
/// accumulation; the default on a GPU) writes the index a sequential pass writes, checkpoints
/// (which first drain the batch in flight) included.
#[test]
fn lookahead_pass_equals_sequential_pass() {
    let f = fixture(24);
    let model = default_model();
    let extra = ["--keep-activations", "--checkpoint-every", "2"];
    let mut dirs = Vec::new();
    for pipeline in ["0", "1"] {
        let out = f.root.join(format!("pipeline-{pipeline}"));
        let mut args = index_args(&f, model.to_str().unwrap(), out.to_str().unwrap());
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = Command::new(scopedex_bin())
            .args(&args)
            .env("SCOPEDEX_PIPELINE", pipeline)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dirs.push(out);
    }
    let (a, b) = (tables(&dirs[0]), tables(&dirs[1]));
    assert!(!a.contexts.is_empty());
    assert_eq!(a, b, "the lookahead pass wrote a different index");
    for sae in a.features.keys() {
        let log = |dir: &Path| -> Vec<ActivationEntry> {
            ActivationReader::open(IndexLayout::new(dir).activations_dir(sae))
                .unwrap()
                .batches()
                .flat_map(|b| b.unwrap())
                .collect()
        };
        assert_eq!(log(&dirs[0]), log(&dirs[1]), "{sae} activation log");
    }
}

fn assert_same<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T], what: &str) {
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        panic!(
            "{what} differ at row {i}:\n single: {:?}\n merged: {:?}",
            a[i], b[i]
        );
    }
    assert_eq!(a.len(), b.len(), "{what}: row counts");
}

/// Waits until `cond` holds or the child exits; true when `cond` held.
fn wait_for(child: &mut std::process::Child, cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if cond() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn sigkill_leaves_the_previous_index_and_resume_finishes_identically() {
    let f = fixture(40);
    let reference = f.root.join("reference");
    run_index(&f, &reference, &[]);
    let want = tables(&reference);

    // A previous index at `out` (from a smaller corpus) must survive every kill.
    let out = f.root.join("out");
    let small = fixture(8);
    let model = default_model();
    let prev = index_args(&small, model.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&prev.iter().map(String::as_str).collect::<Vec<_>>());
    let previous = tables(&out);

    let checkpoint = f.root.join("out.checkpoint");
    type Condition = Box<dyn Fn() -> bool>;
    let kill_points: Vec<(&str, Condition)> = vec![
        ("at start", Box::new(|| true)),
        (
            "after a checkpoint",
            Box::new({
                let c = checkpoint.clone();
                move || c.join("progress.json").is_file()
            }),
        ),
        (
            "while writing the index",
            Box::new({
                let root = f.root.clone();
                move || {
                    std::fs::read_dir(&root).unwrap().flatten().any(|e| {
                        e.file_name().to_string_lossy().starts_with("out.tmp-")
                            && e.path().join("state/progress.json").is_file()
                    })
                }
            }),
        ),
    ];
    for (name, cond) in kill_points {
        let mut args = index_args(&f, model.to_str().unwrap(), out.to_str().unwrap());
        args.extend(["--checkpoint-every", "1", "--resume"].map(String::from));
        let mut child = Command::new(scopedex_bin())
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let hit = wait_for(&mut child, cond);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        if hit {
            assert_eq!(
                tables(&out),
                previous,
                "previous index intact after kill {name}"
            );
        }
    }
    // Resume from whatever checkpoint the kills left, and finish.
    let mut args = index_args(&f, model.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--checkpoint-every", "1", "--resume"].map(String::from));
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        tables(&out),
        want,
        "resumed run equals an uninterrupted one"
    );
    assert!(!checkpoint.exists(), "checkpoint removed after publish");
}
