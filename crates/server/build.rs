//! Embeds the built web UI (`web/dist/`, from `npm run build`) into the binary, so `scopedex
//! serve` shows it from any working directory. Without a build the list is empty and the
//! server serves the API only (or `--web DIR`). Build the UI before the binary to embed it.
use std::path::{Path, PathBuf};

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, path.canonicalize().unwrap_or(path)));
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let web = manifest_dir.join("../../web");
    let dist = web.join("dist");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        // Re-embedded whenever the build output changes.
        println!("cargo:rerun-if-changed={}", dist.display());
        walk(&dist, &dist, &mut files);
    } else {
        // No build yet: re-checked when the UI's sources change (a later `npm run build` alone
        // is not seen; build the UI first, as scripts/demo.sh and scripts/test.sh do).
        println!(
            "cargo:rerun-if-changed={}",
            web.join("package.json").display()
        );
        println!("cargo:rerun-if-changed={}", web.join("src").display());
    }
    let mut code = String::from("/// `(path under web/dist, contents)` of the embedded web UI.\n");
    code.push_str("pub(crate) static WEB_FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("web_files.rs");
    std::fs::write(out, code).unwrap();
}
