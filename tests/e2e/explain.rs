//! Explain and score 20 features of the test index (`scripts/make-test-index.sh`) end to end
//! against the real llama.cpp server (`scripts/llama-server.sh`, llama-cpp-python[server])
//! serving the SmolLM2-135M-Instruct GGUF: explanations stored in the index, shown by the
//! API (validated against `schemas/openapi.yaml`), found by the feature search, present in the
//! Neuronpedia export and valid against its schema.
use std::path::{Path, PathBuf};
use std::process::Command;

use scopedex_server::{views, Snapshot};
use serde_json::Value;

use crate::assets::{default_model, scopedex_bin, workspace_root};
use crate::query::openapi;

/// The llama.cpp server of `scripts/llama-server.sh`, stopped when dropped.
struct LlamaServer {
    url: String,
    pid_file: PathBuf,
}

impl LlamaServer {
    fn start(dir: &Path) -> LlamaServer {
        let script = workspace_root().join("scripts/llama-server.sh");
        let cached = Command::new("bash")
            .arg(&script)
            .arg("cached")
            .status()
            .unwrap();
        assert!(
            cached.success(),
            "the llama.cpp server is not installed: run `bash scripts/llama-server.sh install` \
             (scripts/test.sh does) first"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pid_file = dir.join("llama.pid");
        let out = Command::new("bash")
            .arg(&script)
            .args([
                "start",
                &port.to_string(),
                default_model().to_str().unwrap(),
            ])
            .env("SCOPEDEX_LLAMA_PID_FILE", &pid_file)
            .env("SCOPEDEX_LLAMA_LOG", dir.join("llama.log"))
            .env("SCOPEDEX_LLAMA_CTX", "4096")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "llama-server.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LlamaServer {
            url: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            pid_file,
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/llama-server.sh"))
            .arg("stop")
            .env("SCOPEDEX_LLAMA_PID_FILE", &self.pid_file)
            .status();
    }
}

fn run_json(args: &[&str]) -> Value {
    let out = Command::new(scopedex_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scopedex {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "scopedex {args:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn explain_and_score_with_the_real_llama_cpp_server() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let made = Command::new("bash")
        .arg(workspace_root().join("scripts/make-test-index.sh"))
        .arg(&index)
        .env("SCOPEDEX_BIN", scopedex_bin())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = LlamaServer::start(tmp.path());
    let idx = index.to_str().unwrap();
    let sae = "L2R-1x";
    let common = [
        "--sae",
        sae,
        "--features",
        "0-19",
        "--endpoint",
        &server.url,
        "--model",
        "SmolLM2-135M-Instruct.Q4_1",
        "--concurrency",
        "2",
        "--json",
    ];
    let mut args = vec!["explain", idx];
    args.extend(common);
    args.extend(["--examples", "12", "--max-tokens", "48"]);
    let report = run_json(&args);
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(
        n("explained") + n("no_examples") + n("endpoint_failures") + n("unparsed"),
        20,
        "{report}"
    );
    assert_eq!(n("endpoint_failures"), 0, "{report}");
    // A 135M model often follows the format; the machinery is what is checked.
    assert!(n("explained") >= 10, "{report}");
    assert!(n("prompt_tokens") > 0 && n("completion_tokens") > 0);
    assert_eq!(report["published"], true);

    let mut args = vec!["score", idx];
    args.extend(common);
    args.extend([
        "--test-examples",
        "4",
        "--non-activating",
        "4",
        "--per-prompt",
        "8",
        "--max-tokens",
        "32",
        "--logprobs",
        "--similar",
        "0.5",
    ]);
    let scored = run_json(&args);
    assert_eq!(scored["scored"], report["explained"], "{scored}");
    assert_eq!(scored["failed"], 0, "{scored}");
    assert_eq!(scored["published"], true);

    // Stored, and shown by the API.
    let spec = openapi::Spec::load();
    let snap = Snapshot::open(&index).unwrap();
    let explained: Vec<_> = snap.reader.explanations(sae).unwrap();
    assert_eq!(explained.len() as u64, n("explained"));
    let first = &explained[0];
    assert!(first.detection.n > 0 && first.fuzzing.n > 0, "{first:?}");
    assert_eq!(first.scorer_model, "SmolLM2-135M-Instruct.Q4_1");
    let dash = views::dashboard(&snap, sae, first.feature).unwrap();
    let body = serde_json::to_value(&dash).unwrap();
    spec.check(
        "GET",
        &format!("/api/saes/{sae}/features/{}", first.feature),
        200,
        &body,
    )
    .unwrap();
    assert_eq!(body["explanation"]["text"], first.text.as_str());
    assert!(body["explanation"]["detection"]["n"].as_u64().unwrap() > 0);

    // Found by the feature search, by a word of its own explanation.
    let word = first
        .text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .max_by_key(|w| w.len())
        .unwrap_or("the")
        .to_string();
    let found = views::feature_search(&snap, &word, Some(sae), 50).unwrap();
    assert!(
        found.hits.iter().any(|h| h.feature == first.feature),
        "{word}: {found:?}"
    );
    let body = serde_json::to_value(&found).unwrap();
    spec.check("GET", "/api/features/search", 200, &body)
        .unwrap();
    let cli = run_json(&["features", idx, &word, "--sae", sae, "--json"]);
    // The same body (f32 values aside, which the CLI prints at f32 precision).
    let ids = |v: &Value| -> Vec<(Value, Value)> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["feature"].clone(), h["explanation"]["text"].clone()))
            .collect()
    };
    assert_eq!(ids(&cli), ids(&body));

    // In the Neuronpedia export, valid against its schema.
    let out = tmp.path().join("np");
    let export = run_json(&[
        "export",
        "neuronpedia",
        idx,
        "--sae",
        sae,
        "--out",
        out.to_str().unwrap(),
        "--format",
        "bulk",
    ]);
    assert_eq!(export["explanations"], report["explained"]);
    let dir = PathBuf::from(export["dir"].as_str().unwrap());
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            workspace_root().join("schemas/neuronpedia-explanation.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rows =
        scopedex_export::bulk::read_jsonl_gz(&dir.join("explanations/batch-0.jsonl.gz")).unwrap();
    assert_eq!(rows.len() as u64, n("explained"));
    for r in &rows {
        let errors = scopedex_export::validate::validate(&schema, r);
        assert!(errors.is_empty(), "{errors:?}");
    }
    let scores =
        scopedex_export::bulk::read_jsonl_gz(&dir.join("explanation-scores/batch-0.jsonl.gz"))
            .unwrap();
    assert!(!scores.is_empty());
    drop(server);
}
