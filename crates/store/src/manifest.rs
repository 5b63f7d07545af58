//! `manifest.json`: what an index was built from and with which parameters.
//!
//! The manifest is written last into the temporary directory before publish, so an index
//! directory with a manifest is complete. [`FORMAT_VERSION`] changes whenever the layout of the
//! directory, a Parquet schema or a RocksDB encoding changes incompatibly; readers refuse other
//! versions with [`Error::FormatVersion`]. Unknown JSON fields are ignored (additive changes keep
//! the version), and fields added after version 1 carry `#[serde(default)]`.
//!
//! SAE ids double as directory names (`saes/{sae_id}/`) and RocksDB key prefixes, so
//! [`validate_sae_id`] allows only `[A-Za-z0-9._+-]`, not starting with `.`, at most 128 bytes.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Version of the index directory format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

/// File name of the manifest inside an index directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The model the activations came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Path the model was loaded from (as given on the command line).
    pub path: String,
    /// Human-readable id, e.g. `SmolLM2-135M` or a Hugging Face repo id.
    pub id: String,
    /// sha256 (hex) of the weights file (or of the first shard's index file).
    pub sha256: String,
    /// Number of transformer blocks of the model (0 in indexes written before it was recorded).
    #[serde(default)]
    pub n_layers: u32,
    /// Width of the residual stream (0 in indexes written before it was recorded).
    #[serde(default)]
    pub d_model: u32,
}

/// The tokenizer that produced `contexts.parquet`'s token ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// Where it came from: a `tokenizer.json` path, or `gguf:{model path}`.
    pub source: String,
    /// sha256 (hex) of the tokenizer file, when it is a file of its own.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Vocabulary size.
    pub vocab_size: u32,
    /// BOS token id prepended to every context, if any.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

/// One corpus input file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusFile {
    /// Path as given (documents' `doc_id`s are relative to the corpus root).
    pub path: String,
    /// sha256 (hex) of the file's bytes.
    pub sha256: String,
    /// File size in bytes.
    #[serde(default)]
    pub bytes: u64,
}

/// Parameters of the indexing run that shape the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexParameters {
    /// Number of top examples kept per feature.
    pub top_k: u32,
    /// Number of activation intervals for interval samples.
    pub intervals: u32,
    /// Samples kept per interval.
    pub samples_per_interval: u32,
    /// Whether the BOS position was excluded from statistics.
    pub exclude_bos: bool,
    /// Whether the sparse activation log (`saes/*/activations/`) was written.
    #[serde(default)]
    pub keep_activations: bool,
    /// `--max-tokens`, if the corpus was truncated.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Anything else worth recording (co-occurrence mode and error bound, batch size, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `parameters.extra` key recording the activation log's mantissa bits.
pub const ACTIVATION_MANTISSA_BITS_KEY: &str = "activation_mantissa_bits";

impl IndexParameters {
    /// Mantissa bits of the activation log's values; 10 for indexes written before the key
    /// existed (their writers kept f16 precision).
    pub fn activation_mantissa_bits(&self) -> u8 {
        self.extra
            .get(ACTIVATION_MANTISSA_BITS_KEY)
            .and_then(|v| v.as_u64())
            .map_or(10, |b| b.min(23) as u8)
    }
}

impl Default for IndexParameters {
    fn default() -> Self {
        IndexParameters {
            top_k: 32,
            intervals: 10,
            samples_per_interval: 8,
            exclude_bos: true,
            keep_activations: false,
            max_tokens: None,
            extra: BTreeMap::new(),
        }
    }
}

/// One SAE attached to the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaeEntry {
    /// Id, e.g. `L15R-8x`; also the directory name under `saes/`.
    pub id: String,
    /// Source format, e.g. `llama-scope` or `saelens`.
    pub format: String,
    /// Input width.
    pub d_in: u32,
    /// Number of features; feature indices are `0..d_sae`.
    pub d_sae: u32,
    /// TopK's k, for TopK SAEs.
    #[serde(default)]
    pub k: Option<u32>,
    /// Hook the SAE reads, e.g. `blocks.15.hook_resid_post`.
    pub hook_in: String,
    /// Hook it reconstructs (differs from `hook_in` for transcoders).
    pub hook_out: String,
    /// Path the SAE was loaded from.
    pub source_path: String,
    /// sha256 (hex) of the SAE weights file.
    pub source_sha256: String,
}

/// One shard this index was built from (`--shard I/N`), or the single full run (`0/1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Shard index `I`.
    pub index: u32,
    /// Number of shards `N`.
    pub count: u32,
    /// Contexts in this shard.
    #[serde(default)]
    pub contexts: u64,
}

/// Contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Must equal [`FORMAT_VERSION`] to be read.
    pub format_version: u32,
    /// The model.
    pub model: ModelInfo,
    /// The tokenizer.
    pub tokenizer: TokenizerInfo,
    /// Corpus input files, in reading order.
    pub corpus: Vec<CorpusFile>,
    /// Context window length in tokens (BOS included).
    pub ctx_len: u32,
    /// Indexing parameters.
    pub parameters: IndexParameters,
    /// SAEs, in the order they were given.
    pub saes: Vec<SaeEntry>,
    /// Shards merged into this index.
    #[serde(default)]
    pub shards: Vec<ShardInfo>,
    /// Number of contexts in `contexts.parquet` (filled in by the writer at publish).
    #[serde(default)]
    pub contexts: u64,
    /// Creation time, RFC 3339 UTC (see [`now_rfc3339`]).
    pub created: String,
    /// The program that wrote it, e.g. `scopedex 0.1.0`.
    #[serde(default)]
    pub created_by: String,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            model: ModelInfo::default(),
            tokenizer: TokenizerInfo::default(),
            corpus: Vec::new(),
            ctx_len: 0,
            parameters: IndexParameters::default(),
            saes: Vec::new(),
            shards: Vec::new(),
            contexts: 0,
            created: now_rfc3339(),
            created_by: format!("scopedex {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl Manifest {
    /// The SAE with this id.
    pub fn sae(&self, id: &str) -> Result<&SaeEntry> {
        self.saes
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::UnknownSae {
                sae: id.to_string(),
                known: self
                    .saes
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Checks what the store relies on: the format version, safe and unique SAE ids, `d_sae > 0`.
    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(Error::InvalidInput(format!(
                "manifest format_version {} (this build writes {FORMAT_VERSION})",
                self.format_version
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for sae in &self.saes {
            validate_sae_id(&sae.id)?;
            if !seen.insert(sae.id.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "SAE id {:?} appears twice",
                    sae.id
                )));
            }
            if sae.d_sae == 0 {
                return Err(Error::InvalidInput(format!(
                    "SAE {:?} has d_sae = 0",
                    sae.id
                )));
            }
        }
        Ok(())
    }

    /// Reads `{dir}/manifest.json`, checking the format version before anything else.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        if !dir.is_dir() {
            return Err(Error::MissingIndex {
                path: dir.to_path_buf(),
                reason: "directory does not exist".into(),
            });
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingIndex {
                    path: dir.to_path_buf(),
                    reason: format!("{MANIFEST_FILE} not found (not an index, or never published)"),
                })
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        // Look at the version alone first: another version may not parse as this struct.
        #[derive(Deserialize)]
        struct VersionOnly {
            format_version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        if v.format_version != FORMAT_VERSION {
            return Err(Error::FormatVersion {
                path: dir.to_path_buf(),
                found: v.format_version,
                expected: FORMAT_VERSION,
            });
        }
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        m.validate()?;
        Ok(m)
    }

    /// Writes `{dir}/manifest.json` (pretty-printed) and fsyncs it.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        json.push(b'\n');
        // Written beside and renamed over: a reader never sees half a manifest, and the new
        // inode tells a running server that the index changed (see the server's snapshot).
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp-{}", std::process::id()));
        crate::fsutil::write_synced(&tmp, &json)?;
        crate::fsutil::rename(&tmp, &path)?;
        crate::fsutil::sync_dir(dir)
    }
}

/// Checks that an SAE id is safe as a directory name and key prefix: 1..=128 bytes of
/// `[A-Za-z0-9._+-]`, not starting with `.`.
pub fn validate_sae_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "SAE id {id:?} must be 1-128 characters of [A-Za-z0-9._+-] and not start with '.'"
        )))
    }
}

/// sha256 of a file's bytes as lowercase hex, read in 1 MiB chunks (constant memory).
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The current time as RFC 3339 UTC with second precision, e.g. `2025-01-31T12:00:00Z`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (civil-from-days, H. Hinnant).
fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_735_689_599), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn sha256_of_file_matches_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            sha256_file(dir.path().join("nope")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn sae_ids_are_checked() {
        for ok in ["L15R-8x", "layer_3.res+1", "a"] {
            validate_sae_id(ok).unwrap();
        }
        for bad in ["", "..", ".hidden", "a/b", "a\0b", "a b", "../x"] {
            assert!(validate_sae_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manifest_round_trips_and_checks_version() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            saes: vec![SaeEntry {
                id: "L1R".into(),
                d_sae: 8,
                ..Default::default()
            }],
            ..Default::default()
        };
        m.save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), m);
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            br#"{"format_version": 999}"#,
        )
        .unwrap();
        match Manifest::load(dir.path()) {
            Err(Error::FormatVersion {
                found: 999,
                expected: FORMAT_VERSION,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Manifest::load(&dir.path().join("missing")),
            Err(Error::MissingIndex { .. })
        ));
    }
}
