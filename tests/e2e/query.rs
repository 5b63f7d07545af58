//! `scopedex top / stats / cooc / search / activate`: `--json` output is the API body (validated
//! against `schemas/openapi.yaml` and equal to the server's builders), human output runs, and
//! caller mistakes exit with code 2 and one line on stderr.
#[path = "../../crates/server/tests/openapi/mod.rs"]
pub(crate) mod openapi;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scopedex_server::{views, Snapshot};
use scopedex_store::fixture::{self, FixtureSpec};
use serde_json::Value;

use crate::assets::{default_model, scopedex_bin};
use crate::index::{fabricate_sae, run_ok, small_corpus};

fn scopedex(args: &[&str]) -> Output {
    Command::new(scopedex_bin()).args(args).output().unwrap()
}

fn json_of(args: &[&str]) -> Value {
    let out = run_ok(args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scopedex {args:?}: stdout is not JSON: {e}"))
}

fn fixture_index(dir: &Path) -> PathBuf {
    let out = dir.join("index");
    fixture::write_index(&out, &FixtureSpec::default()).unwrap();
    out
}

#[test]
fn query_commands_print_the_api_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let index = fixture_index(tmp.path());
    let idx = index.to_str().unwrap();
    let spec = openapi::Spec::load();
    let snap = Snapshot::open(&index).unwrap();
    let same = |v: &Value, body: &dyn erased::Ser| assert_eq!(v, &body.value());

    let top = json_of(&["top", idx, "L1R-8x", "3", "--limit", "3", "--json"]);
    spec.check("GET", "/api/saes/L1R-8x/features/3/examples", 200, &top)
        .unwrap();
    same(
        &top,
        &views::examples(&snap, "L1R-8x", 3, "top", 3, 0).unwrap(),
    );
    let ex = top["examples"].as_array().unwrap();
    assert_eq!(ex.len(), 3);
    assert!(ex.windows(2).all(|w| {
        let (a, b) = (w[0]["max_act"].as_f64(), w[1]["max_act"].as_f64());
        a > b
            || (a == b && w[0]["context_id"].as_u64() <= w[1]["context_id"].as_u64())
            || w[0]["rank"].as_u64() < w[1]["rank"].as_u64()
    }));
    let iv = json_of(&["top", idx, "L1R-8x", "3", "--kind", "interval_1", "--json"]);
    assert!(iv["examples"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "interval_1"));

    let sae = json_of(&["stats", idx, "L2R-8x", "--json"]);
    spec.check("GET", "/api/saes/L2R-8x", 200, &sae).unwrap();
    same(&sae, &views::sae_summary(&snap, "L2R-8x").unwrap());
    let feat = json_of(&["stats", idx, "L2R-8x", "7", "--json"]);
    spec.check("GET", "/api/saes/L2R-8x/features/7", 200, &feat)
        .unwrap();
    same(&feat, &views::dashboard(&snap, "L2R-8x", 7).unwrap());

    let cooc = json_of(&[
        "cooc",
        idx,
        "L1R-8x",
        "5",
        "--other-sae",
        "L2R-8x",
        "--limit",
        "2",
        "--json",
    ]);
    spec.check(
        "GET",
        "/api/saes/L1R-8x/features/5/cooccurrence",
        200,
        &cooc,
    )
    .unwrap();
    same(
        &cooc,
        &views::cooccurrence(&snap, "L1R-8x", 5, Some("L2R-8x"), 2).unwrap(),
    );

    let search = json_of(&["search", idx, "fizz even", "--limit", "4", "--json"]);
    spec.check("GET", "/api/search", 200, &search).unwrap();
    same(&search, &views::search(&snap, "fizz even", 4).unwrap());
    assert_eq!(search["hits"].as_array().unwrap().len(), 4);
    assert!(search["hits"][0]["features"].as_array().unwrap().len() >= 2);

    // Features and words mixed (`scopedex search INDEX 'feat:SAE/F AND word'`).
    let f = snap
        .reader
        .context_features("L1R-8x", 6)
        .unwrap()
        .unwrap()
        .features[0];
    let q = format!("feat:L1R-8x/{f} AND (fizz OR even)");
    let search = json_of(&["search", idx, &q, "--limit", "100", "--json"]);
    spec.check("GET", "/api/search", 200, &search).unwrap();
    same(&search, &views::search(&snap, &q, 100).unwrap());
    assert!(search["hits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["context_id"] == 6 && h["matches"][0]["feature"] == f));

    let similar = json_of(&["similar", idx, "6", "--limit", "5", "--json"]);
    spec.check("GET", "/api/contexts/6/similar", 200, &similar)
        .unwrap();
    same(
        &similar,
        &views::similar_to_context(&snap, 6, None, 5).unwrap(),
    );
    assert_eq!(similar["hits"].as_array().unwrap().len(), 5);
    let one = json_of(&["similar", idx, "6", "--sae", "L2R-8x", "--json"]);
    same(
        &one,
        &views::similar_to_context(&snap, 6, Some("L2R-8x"), 10).unwrap(),
    );

    // Human output (not a terminal here: no colours, the strongest token in [[ ]]).
    let out =
        String::from_utf8(run_ok(&["top", idx, "L1R-8x", "3", "--limit", "2"]).stdout).unwrap();
    assert!(out.contains("[[") && !out.contains('\x1b'), "{out}");
    for args in [
        vec!["stats", idx, "L1R-8x"],
        vec!["stats", idx, "L1R-8x", "3"],
        vec!["cooc", idx, "L1R-8x", "3"],
        vec!["search", idx, "fizz"],
        vec!["search", idx, &q],
        vec!["similar", idx, "6"],
    ] {
        assert!(!run_ok(&args).stdout.is_empty(), "{args:?}");
    }
}

/// Serialization to a `Value`, object-safe, for the equality checks above.
mod erased {
    pub trait Ser {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> serde_json::Value {
            // Through text, as the CLI prints it (f32s in their shortest form).
            serde_json::from_str(&serde_json::to_string(self).unwrap()).unwrap()
        }
    }
}

#[test]
fn query_mistakes_exit_with_code_2_and_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let index = fixture_index(tmp.path());
    let idx = index.to_str().unwrap();
    let other = tmp.path().join("other-version");
    std::fs::create_dir_all(&other).unwrap();
    let manifest = std::fs::read_to_string(index.join("manifest.json")).unwrap();
    let v: Value = serde_json::from_str(&manifest).unwrap();
    let mut v2 = v.clone();
    v2["format_version"] = 99.into();
    std::fs::write(other.join("manifest.json"), v2.to_string()).unwrap();
    let missing = tmp.path().join("missing");
    let (other, missing) = (other.to_str().unwrap(), missing.to_str().unwrap());
    for (args, needle) in [
        (vec!["top", idx, "nope", "1"], "unknown SAE"),
        (vec!["top", idx, "L1R-8x", "48"], "out of range"),
        (vec!["top", idx, "L1R-8x", "1", "--kind", "middle"], "kind"),
        (vec!["top", idx, "L1R-8x", "1", "--limit", "5000"], "limit"),
        (vec!["stats", idx, "nope"], "unknown SAE"),
        (vec!["stats", idx, "L2R-8x", "40"], "out of range"),
        (
            vec!["cooc", idx, "L1R-8x", "1", "--other-sae", "zz"],
            "unknown SAE",
        ),
        (vec!["search", idx, "\"unclosed"], "query"),
        (vec!["search", idx, "feat:L1R-8x/1>0.3"], "character 14"),
        (vec!["similar", idx, "999"], "no context 999"),
        (vec!["similar", idx, "1", "--sae", "nope"], "unknown SAE"),
        (vec!["top", missing, "L1R-8x", "1"], "no index"),
        (vec!["search", missing, "x"], "no index"),
        (vec!["stats", other, "L1R-8x"], "format version"),
        (vec!["activate", missing, "hello"], "no index"),
    ] {
        let out = scopedex(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// On a real index (SmolLM2 + a fabricated SAE): tokens decode to text, search hits carry the
/// indexer's per-context features, and `activate` runs the model.
#[test]
fn query_commands_on_a_real_index() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let corpus = small_corpus(root, 40);
    let sae = root.join("L2R");
    fabricate_sae(&sae, 2, "hook_resid_post", 96, 8, 5);
    let index = root.join("index");
    let model = default_model();
    run_ok(&[
        "index",
        "--model",
        model.to_str().unwrap(),
        "--sae",
        sae.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        index.to_str().unwrap(),
        "--ctx-len",
        "24",
        "--top-k",
        "4",
        "--intervals",
        "3",
        "--samples-per-interval",
        "2",
    ]);
    let idx = index.to_str().unwrap();
    let spec = openapi::Spec::load();
    let sae_id = Snapshot::open(&index).unwrap().reader.sae_ids()[0].to_string();

    let list = views::feature_list(
        &Snapshot::open(&index).unwrap(),
        &sae_id,
        views::FeatureListParams {
            sort: scopedex_server::snapshot::FeatureSort::Density,
            descending: true,
            live: true,
            limit: 1,
            offset: 0,
        },
    )
    .unwrap();
    let f = list.features[0].feature.to_string();
    let top = json_of(&["top", idx, &sae_id, &f, "--json"]);
    spec.check("GET", "/api/saes/x/features/1/examples", 200, &top)
        .unwrap();
    let text: String = top["examples"][0]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        text.chars().filter(|c| c.is_alphabetic()).count() > 10 && !text.contains("<1"),
        "tokens should decode to text: {text:?}"
    );

    let word = text
        .split(|c: char| !c.is_alphabetic())
        .find(|w| w.len() >= 4)
        .unwrap()
        .to_string();
    let search = json_of(&["search", idx, &word, "--json"]);
    spec.check("GET", "/api/search", 200, &search).unwrap();
    let hits = search["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "no hit for {word:?}");
    assert!(
        hits.iter()
            .any(|h| !h["features"].as_array().unwrap().is_empty()),
        "hits carry their strongest features: {search}"
    );

    let act = json_of(&[
        "activate",
        idx,
        "The cat sat on the mat.",
        "--json",
        "--top-n",
        "3",
    ]);
    spec.check("POST", "/api/activate", 200, &act).unwrap();
    let tokens = act["tokens"].as_array().unwrap();
    assert!(tokens.len() >= 7);
    assert!(tokens[1..]
        .iter()
        .all(|t| t["features"].as_array().unwrap().len() == 3));

    // "More like this" for a free text: the model's features of the text of context 0 find
    // context 0 itself (same tokens, so the same features) among the best.
    let snap = Snapshot::open(&index).unwrap();
    let ctx0 = snap.reader.context(0).unwrap().unwrap();
    let like = json_of(&[
        "similar", idx, "--text", &ctx0.text, "--limit", "3", "--json",
    ]);
    spec.check("GET", "/api/contexts/0/similar", 200, &like)
        .unwrap();
    assert!(like.get("context_id").is_none());
    assert!(
        like["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["context_id"] == 0),
        "{like}"
    );
    // And a feature of the real index is found by a feature query, at its firing token.
    let q = format!("feat:{sae_id}/{f}");
    let by_feature = json_of(&["search", idx, &q, "--limit", "1000", "--json"]);
    let n_contexts = by_feature["hits"].as_array().unwrap().len();
    assert!(n_contexts >= top["examples"].as_array().unwrap().len());
    let first = &by_feature["hits"][0]["matches"][0];
    assert_eq!(first["feature"].as_u64().unwrap().to_string(), f);
}

/// `scopedex search … | head`: a reader that has gone is not an error (exit 0, no panic text).
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let index = fixture_index(tmp.path());
    for args in [
        vec!["search", index.to_str().unwrap(), "even", "--limit", "1000"],
        vec![
            "top",
            index.to_str().unwrap(),
            "L1R-8x",
            "3",
            "--limit",
            "1000",
            "--json",
        ],
    ] {
        let mut child = Command::new(scopedex_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
