//! Names and sizes an export derives from the manifest when no option gives them: the
//! Neuronpedia model id, the short `dataset` name and the model's layer count.
//!
//! Neuronpedia's model ids (`POST /api/model/new`) are 2–32 characters, start with a lowercase
//! letter, hold only `[a-z0-9.-]`, end with a letter or digit and contain no `--` or `..`.
//! Derived ids keep to the stricter `[a-z0-9-]` (a `.` in a file name such as
//! `SmolLM2-135M-Instruct.Q4_1` is a quantisation suffix, not a version number); ids given
//! with `--model-id` are checked against the full rule.
use std::path::Path;

use scopedex_store::Manifest;

use crate::error::{Error, Result};

/// Longest model id Neuronpedia accepts.
pub const MAX_MODEL_ID_CHARS: usize = 32;

/// The manifest's model id made into a Neuronpedia model id: its last path component,
/// lowercased, every run of characters outside `[a-z0-9]` replaced by one `-`, leading and
/// trailing `-` dropped, cut to [`MAX_MODEL_ID_CHARS`], prefixed with `model-` when it would
/// not start with a letter (`SmolLM2-135M-Instruct.Q4_1` → `smollm2-135m-instruct-q4-1`).
pub fn default_model_id(id: &str) -> String {
    let last = id.rsplit(['/', '\\']).next().unwrap_or(id);
    let mut s = String::with_capacity(last.len());
    for c in last.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    let s = if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.to_string()
    } else if s.is_empty() {
        "model".to_string()
    } else {
        format!("model-{s}")
    };
    let mut cut: String = s.chars().take(MAX_MODEL_ID_CHARS).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    cut
}

/// Checks a model id given by the user against Neuronpedia's rule (see the module doc).
pub fn check_model_id(id: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Usage(format!(
            "--model-id {id:?} is not a Neuronpedia model id: {why} (e.g. {:?})",
            default_model_id(id)
        )))
    };
    if id.len() < 2 || id.len() > MAX_MODEL_ID_CHARS {
        return bad("it must have 2 to 32 characters");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return bad("only lowercase letters, digits, '-' and '.' are allowed");
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if id.ends_with(['-', '.']) || id.contains("--") || id.contains("..") {
        return bad("it must not end with '-' or '.' nor contain '--' or '..'");
    }
    Ok(())
}

/// A short name for the corpus files: one file gives its name without extensions
/// (`corpus.json` → `corpus`); several give the name of their deepest common directory
/// (`…/nlp-corpus/doc-{0..9}.json` → `nlp-corpus`), or, with none, the first file's name and
/// how many more there are (`a (+2 files)`). Empty for no files.
pub fn default_dataset<'a>(paths: impl IntoIterator<Item = &'a str>) -> String {
    let paths: Vec<&Path> = paths.into_iter().map(Path::new).collect();
    let stem = |p: &Path| -> String {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string());
        match name.find('.') {
            Some(i) if i > 0 => name[..i].to_string(),
            _ => name,
        }
    };
    match paths.as_slice() {
        [] => String::new(),
        [one] => stem(one),
        [first, rest @ ..] => {
            let mut common: Vec<_> = first.parent().map_or(Vec::new(), |p| p.iter().collect());
            for p in rest {
                let other: Vec<_> = p.parent().map_or(Vec::new(), |p| p.iter().collect());
                let n = common
                    .iter()
                    .zip(&other)
                    .take_while(|(a, b)| a == b)
                    .count();
                common.truncate(n);
            }
            let name = common
                .last()
                .map(|c| c.to_string_lossy().into_owned())
                .filter(|c| !c.is_empty() && c != "/" && c != "." && c != "..");
            name.unwrap_or_else(|| format!("{} (+{} files)", stem(first), rest.len()))
        }
    }
}

/// Where the model's layer count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayersSource {
    /// The manifest's `model.n_layers`.
    Manifest,
    /// The deepest `blocks.{N}.…` hook of the index's SAEs, plus one: a lower bound, for
    /// indexes written before the manifest recorded `n_layers`.
    HookNames,
    /// Neither is known.
    Unknown,
}

impl LayersSource {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            LayersSource::Manifest => "manifest model.n_layers",
            LayersSource::HookNames => {
                "derived: deepest hook layer of the index's SAEs + 1 (a lower bound; the manifest \
                 has no model.n_layers)"
            }
            LayersSource::Unknown => "unknown: no model.n_layers and no blocks.N hook",
        }
    }
}

/// The model's number of layers: the manifest's when recorded (non-zero), else the deepest
/// `blocks.{N}` of any SAE's input or output hook plus one.
pub fn model_layers(manifest: &Manifest) -> (u32, LayersSource) {
    if manifest.model.n_layers > 0 {
        return (manifest.model.n_layers, LayersSource::Manifest);
    }
    let deepest = manifest
        .saes
        .iter()
        .flat_map(|s| [s.hook_in.as_str(), s.hook_out.as_str()])
        .filter_map(hook_layer)
        .max();
    match deepest {
        Some(l) => (l + 1, LayersSource::HookNames),
        None => (0, LayersSource::Unknown),
    }
}

/// `N` of a hook name `blocks.{N}.…`.
pub fn hook_layer(hook: &str) -> Option<u32> {
    hook.strip_prefix("blocks.")
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopedex_store::SaeEntry;

    #[test]
    fn model_ids_follow_neuronpedia() {
        let cases = [
            ("SmolLM2-135M-Instruct.Q4_1", "smollm2-135m-instruct-q4-1"),
            ("HuggingFaceTB/SmolLM2-135M", "smollm2-135m"),
            ("SmolLM2 135M.Q4_1", "smollm2-135m-q4-1"),
            ("--Gemma__2--2b--", "gemma-2-2b"),
            ("2b-model", "model-2b-model"),
            ("", "model"),
            ("...", "model"),
        ];
        for (input, want) in cases {
            let got = default_model_id(input);
            assert_eq!(got, want, "{input}");
            check_model_id(&got).unwrap();
        }
        let long = default_model_id(&"abcdefgh-".repeat(10));
        assert!(
            long.len() <= MAX_MODEL_ID_CHARS && !long.ends_with('-'),
            "{long}"
        );
        check_model_id(&long).unwrap();
        check_model_id("llama3.1-8b").unwrap();
        for bad in ["Gemma", "a", "x_y", "1abc", "abc-", "a--b", "a..b", "a.b."] {
            let err = check_model_id(bad).unwrap_err();
            assert!(
                err.is_user_error() && err.to_string().contains(bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn dataset_names_are_short() {
        assert_eq!(default_dataset(["/tmp/x/corpus.json"]), "corpus");
        assert_eq!(default_dataset(["data.jsonl.zst"]), "data");
        assert_eq!(
            default_dataset(["/a/nlp-corpus/doc-0.json", "/a/nlp-corpus/doc-1.json"]),
            "nlp-corpus"
        );
        assert_eq!(
            default_dataset(["/a/c/sub/x.txt", "/a/c/y.txt", "/a/c/sub2/z.txt"]),
            "c"
        );
        assert_eq!(default_dataset(["a.txt", "b.txt", "c.txt"]), "a (+2 files)");
        assert_eq!(default_dataset([]), "");
    }

    #[test]
    fn layers_from_manifest_or_hooks() {
        let mut m = Manifest::default();
        assert_eq!(model_layers(&m), (0, LayersSource::Unknown));
        let sae = |hook: &str| SaeEntry {
            hook_in: hook.into(),
            hook_out: hook.into(),
            ..SaeEntry::default()
        };
        m.saes = vec![
            sae("blocks.2.hook_resid_post"),
            sae("blocks.11.hook_mlp_out"),
        ];
        assert_eq!(model_layers(&m), (12, LayersSource::HookNames));
        m.model.n_layers = 30;
        assert_eq!(model_layers(&m), (30, LayersSource::Manifest));
        assert_eq!(hook_layer("blocks.15.hook_resid_post"), Some(15));
        assert_eq!(hook_layer("hook_embed"), None);
    }
}
