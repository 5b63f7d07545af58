//! An index is self-contained and movable: built from one working directory with relative
//! paths, moved to another directory, with its model gone, every query (CLI, API, web pages) and
//! the export give the same answers, tokens render as text (the index carries its vocabulary),
//! and live activation says which file is missing and takes `serve --model` (checked by sha256).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::assets::{default_model, scopedex_bin};
use crate::index::{fabricate_sae, small_corpus};

fn scopedex_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(scopedex_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok_in(dir: &Path, args: &[&str]) -> Output {
    let o = scopedex_in(dir, args);
    assert!(
        o.status.success(),
        "scopedex {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json_in(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&ok_in(dir, args).stdout).unwrap()
}

/// One HTTP/1.1 request on a fresh connection: (status, lower-cased headers, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: {e} after {} bytes", raw.len()));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// A running `scopedex serve`, killed on drop.
pub struct Server {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `scopedex serve INDEX ARGS` from `dir` on a free port and waits for `/api/health`.
pub fn serve(dir: &Path, index: &Path, extra: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(scopedex_bin())
        .current_dir(dir)
        .args(["serve", index.to_str().unwrap(), "--addr", &addr])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("scopedex serve exited early: {status}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn queries(dir: &Path, index: &str) -> Vec<Value> {
    vec![
        json_in(dir, &["top", index, "L2R-1x", "3", "--json"]),
        json_in(dir, &["stats", index, "L2R-1x", "3", "--json"]),
        json_in(dir, &["stats", index, "L2R-1x", "--json"]),
        json_in(dir, &["cooc", index, "L2R-1x", "3", "--json"]),
        json_in(dir, &["search", index, "the", "--json"]),
        json_in(dir, &["similar", index, "1", "--json"]),
    ]
}

/// Every `"token"` string of a JSON value.
fn tokens_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("token", Value::String(s)) => out.push(s.clone()),
                    _ => tokens_of(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| tokens_of(x, out)),
        _ => {}
    }
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_moved_index_answers_the_same_without_its_model() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let build = root.join("build");
    std::fs::create_dir_all(build.join("models")).unwrap();
    std::fs::copy(default_model(), build.join("models/model.gguf")).unwrap();
    small_corpus(&build, 16);
    fabricate_sae(&root.join("saes/L2R"), 2, "hook_resid_post", 64, 4, 9);
    // Relative paths, from the build directory.
    ok_in(
        &build,
        &[
            "index",
            "--model",
            "models/model.gguf",
            "--sae",
            "../saes/L2R",
            "--corpus",
            "corpus.json",
            "--out",
            "index",
            "--ctx-len",
            "16",
            "--batch-size",
            "4",
        ],
    );
    let before = queries(&build, "index");
    ok_in(
        &build,
        &[
            "export",
            "neuronpedia",
            "index",
            "--sae",
            "L2R-1x",
            "--out",
            "np",
        ],
    );
    let export_before = read_tree(&build.join("np"));

    // Move the index elsewhere, keep the model apart, remove the build directory.
    let elsewhere = root.join("elsewhere/deeper");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(build.join("index"), elsewhere.join("moved")).unwrap();
    let kept_model = root.join("kept-model.gguf");
    std::fs::rename(build.join("models/model.gguf"), &kept_model).unwrap();
    std::fs::remove_dir_all(&build).unwrap();
    let cwd = root.join("elsewhere");
    let index = "deeper/moved";

    let after = queries(&cwd, index);
    assert_eq!(before, after, "every model-free query answers the same");
    let mut tokens = Vec::new();
    after.iter().for_each(|v| tokens_of(v, &mut tokens));
    assert!(!tokens.is_empty());
    let placeholders = tokens
        .iter()
        .filter(|t| {
            t.starts_with('<') && t.ends_with('>') && t[1..t.len() - 1].parse::<u32>().is_ok()
        })
        .count();
    assert_eq!(placeholders, 0, "tokens render as text: {tokens:?}");
    ok_in(
        &cwd,
        &[
            "export",
            "neuronpedia",
            index,
            "--sae",
            "L2R-1x",
            "--out",
            "np",
        ],
    );
    let export_after = read_tree(&cwd.join("np"));
    assert_eq!(
        export_after.iter().map(|f| &f.0).collect::<Vec<_>>(),
        export_before.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in export_after.iter().zip(&export_before) {
        if a != b {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            let ctx = |v: &[u8]| {
                String::from_utf8_lossy(&v[at.saturating_sub(80)..(at + 80).min(v.len())])
                    .into_owned()
            };
            panic!(
                "export file {name} differs at byte {at}:\nmoved: {}\nbefore: {}",
                ctx(a),
                ctx(b)
            );
        }
    }

    // Live activation: the missing model is named, and --model supplies it.
    let o = scopedex_in(&cwd, &["activate", index, "hello world"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("model.gguf") && err.contains("--model"),
        "{err}"
    );

    let server = serve(
        &cwd,
        Path::new(index),
        &["--model", kept_model.to_str().unwrap()],
    );
    let (status, _, body) = http(server.port, "GET", "/api/saes/L2R-1x/features/3", "");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), before[1]);
    let (status, _, body) = http(
        server.port,
        "POST",
        "/api/activate",
        r#"{"text": "hello world", "saes": ["L2R-1x", "L2R-1x", "L2R-1x"]}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["tokens"].as_array().unwrap().len() >= 3);
    let (status, _, body) = http(server.port, "GET", "/api/health", "");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["model_mismatch"],
        false
    );
    // The web UI comes from the binary, whatever the working directory.
    assert!(
        scopedex_server::web::embedded(),
        "build the web UI before the tests (scripts/test.sh does: cd web && npm run build)"
    );
    for page in ["/", "/sae/L2R-1x/3", "/search?q=the"] {
        let (status, head, body) = http(server.port, "GET", page, "");
        assert_eq!(status, 200, "{page}");
        assert!(head.contains("text/html"), "{page}: {head}");
        assert!(String::from_utf8_lossy(&body).contains("<script"), "{page}");
    }
    drop(server);

    // A different file under --model is refused unless --force, which /api/health reports.
    let other = root.join("other.gguf");
    let mut bytes = std::fs::read(&kept_model).unwrap();
    bytes.extend_from_slice(&[0; 32]);
    std::fs::write(&other, bytes).unwrap();
    let o = scopedex_in(
        &cwd,
        &[
            "serve",
            index,
            "--addr",
            "127.0.0.1:1",
            "--model",
            other.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("sha256") && err.contains("--force"), "{err}");
    let server = serve(
        &cwd,
        Path::new(index),
        &["--model", other.to_str().unwrap(), "--force"],
    );
    let (_, _, body) = http(server.port, "GET", "/api/health", "");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["model_mismatch"],
        true
    );
}
