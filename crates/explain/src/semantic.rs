//! Feature search by meaning: the query and every explanation embedded through an
//! OpenAI-compatible `/embeddings` endpoint (a local llama.cpp / vLLM / Ollama server needs no
//! cloud key), ranked by cosine similarity and fused with the text ranking (reciprocal rank
//! fusion, k = 60), so a feature found by both ranks first. Explanation vectors are cached
//! beside the index (`{index}.explain-journal/embeddings-{model}.jsonl`, keyed by the text), so
//! each text is embedded once per model.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::ChatClient;
use crate::error::{Error, Result};

/// Texts per `/embeddings` request.
const BATCH: usize = 64;
/// Reciprocal rank fusion's constant.
const RRF_K: f32 = 60.0;

#[derive(Serialize, Deserialize)]
struct CachedVector {
    text: String,
    vector: Vec<f32>,
}

/// One feature as a candidate: SAE, feature, explanation text.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// SAE id.
    pub sae: String,
    /// Feature.
    pub feature: u32,
    /// Its explanation.
    pub text: String,
}

/// A ranked feature with its fused score and cosine similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The candidate.
    pub candidate: Candidate,
    /// Reciprocal-rank-fusion score (higher is better).
    pub score: f32,
    /// Cosine similarity of the query and the explanation.
    pub cosine: f32,
}

fn cache_path(index: &Path, model: &str) -> PathBuf {
    let safe: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::journal::journal_path(index, "embeddings", &safe)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 || a.len() != b.len() {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Ranks `candidates` for `query` by meaning, fused with `text_ranking` (the text search's
/// order, best first, as indices into `candidates`); best `limit` first.
pub fn rank(
    index: &Path,
    client: &ChatClient,
    query: &str,
    candidates: &[Candidate],
    text_ranking: &[usize],
    limit: usize,
) -> Result<Vec<Ranked>> {
    let path = cache_path(index, &client.config().model);
    let mut cache: HashMap<String, Vec<f32>> = HashMap::new();
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        for (i, line) in text.lines().enumerate() {
            match serde_json::from_str::<CachedVector>(line) {
                Ok(v) => {
                    cache.insert(v.text, v.vector);
                }
                // A torn last line from an interrupted run: embedded again.
                Err(_) if i + 1 == text.lines().count() => {}
                Err(e) => {
                    return Err(Error::BadLine {
                        path: path.clone(),
                        line: i + 1,
                        detail: e.to_string(),
                    })
                }
            }
        }
    }
    let mut missing: Vec<String> = candidates
        .iter()
        .map(|c| c.text.clone())
        .filter(|t| !cache.contains_key(t))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        for chunk in missing.chunks(BATCH) {
            let vectors = client.embed(chunk)?;
            for (text, vector) in chunk.iter().zip(vectors) {
                let line = serde_json::to_string(&CachedVector {
                    text: text.clone(),
                    vector: vector.clone(),
                })
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
                writeln!(file, "{line}").map_err(|e| Error::io(&path, e))?;
                cache.insert(text.clone(), vector);
            }
        }
        file.sync_data().map_err(|e| Error::io(&path, e))?;
    }
    let q = client
        .embed(&[query.to_string()])?
        .pop()
        .ok_or_else(|| Error::InvalidInput("the endpoint returned no query embedding".into()))?;
    let cos: Vec<f32> = candidates
        .iter()
        .map(|c| cache.get(&c.text).map_or(0.0, |v| cosine(&q, v)))
        .collect();
    let mut by_meaning: Vec<usize> = (0..candidates.len()).collect();
    by_meaning.sort_by(|&a, &b| cos[b].total_cmp(&cos[a]).then(a.cmp(&b)));
    let mut fused = vec![0f32; candidates.len()];
    for (rank, &i) in by_meaning.iter().enumerate() {
        fused[i] += 1.0 / (RRF_K + rank as f32 + 1.0);
    }
    for (rank, &i) in text_ranking.iter().enumerate() {
        if let Some(f) = fused.get_mut(i) {
            *f += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| fused[b].total_cmp(&fused[a]).then(a.cmp(&b)));
    Ok(order
        .into_iter()
        .take(limit)
        .map(|i| Ranked {
            candidate: candidates[i].clone(),
            score: fused[i],
            cosine: cos[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_empty_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 1.0]), 0.0);
    }
}
