//! [`Snapshot`] (one opened index with its derived caches) and [`IndexHandle`] (the current
//! snapshot of an index directory, swapped when the directory is republished).
//!
//! Invariant: a request takes one `Arc<Snapshot>` at its start and reads only through it, so it
//! never mixes two versions of the index. A republish (atomic rename over the directory) is
//! noticed by [`IndexHandle::refresh`] — called every second by the server's watcher — through
//! the identity (inode, mtime, size) of `manifest.json`: the new index is opened beside the old,
//! checked to be the one still in place, and swapped in. Requests holding the old snapshot finish
//! on it (its RocksDB and tantivy files stay open after the old directory is unlinked).
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::body::Bytes;
use scopedex_store::{IndexReader, Result as StoreResult};

use crate::tokens::TokenTable;

/// What identifies one published version of `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

fn stamp(dir: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(dir.join(scopedex_store::manifest::MANIFEST_FILE)).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Some(Stamp {
        ino,
        mtime_ns,
        len: m.len(),
    })
}

/// Sort keys of `/api/saes/{sae}/features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSort {
    /// Feature id.
    Feature,
    /// Density (fraction of tokens where it fired).
    Density,
    /// Max activation.
    MaxAct,
}

/// Brief statistics of one feature (a row of the features overview).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brief {
    /// Feature id.
    pub feature: u32,
    /// Fraction of tokens where it fired.
    pub density: f64,
    /// Max activation.
    pub max_act: f32,
    /// Mean activation over firing tokens.
    pub mean_act: f32,
    /// Tokens where it fired.
    pub n_fired: u64,
}

/// Every feature of one SAE with precomputed orders (built once per snapshot, on first use).
#[derive(Debug)]
pub struct FeatureTable {
    /// Indexed by feature id; features without a stored row are zeros.
    pub briefs: Vec<Brief>,
    /// Ascending orders, `[sort][live as usize]`: feature ids sorted by the key (ties by id),
    /// all features (`[_][0]`) or only live ones (`[_][1]`).
    orders: [[Vec<u32>; 2]; 3],
}

impl FeatureTable {
    fn build(reader: &IndexReader, sae: &str) -> StoreResult<Self> {
        let d_sae = reader.sae(sae)?.d_sae;
        let briefs = (0..d_sae)
            .map(|f| {
                Ok(match reader.feature(sae, f)? {
                    Some(r) => Brief {
                        feature: f,
                        density: r.density,
                        max_act: r.max_act,
                        mean_act: r.mean_act,
                        n_fired: r.n_fired,
                    },
                    None => Brief {
                        feature: f,
                        density: 0.0,
                        max_act: 0.0,
                        mean_act: 0.0,
                        n_fired: 0,
                    },
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let order = |key: fn(&Brief) -> f64, live: bool| {
            let mut ids: Vec<u32> = briefs
                .iter()
                .filter(|b| !live || b.n_fired > 0)
                .map(|b| b.feature)
                .collect();
            ids.sort_by(|&a, &b| {
                key(&briefs[a as usize])
                    .total_cmp(&key(&briefs[b as usize]))
                    .then(a.cmp(&b))
            });
            ids
        };
        let by_id: fn(&Brief) -> f64 = |b| f64::from(b.feature);
        let by_density: fn(&Brief) -> f64 = |b| b.density;
        let by_max: fn(&Brief) -> f64 = |b| f64::from(b.max_act);
        let orders = [by_id, by_density, by_max].map(|k| [order(k, false), order(k, true)]);
        Ok(FeatureTable { briefs, orders })
    }

    /// Feature ids in ascending order of `sort`, optionally only live ones.
    pub fn order(&self, sort: FeatureSort, live: bool) -> &[u32] {
        let s = match sort {
            FeatureSort::Feature => 0,
            FeatureSort::Density => 1,
            FeatureSort::MaxAct => 2,
        };
        &self.orders[s][usize::from(live)]
    }
}

/// One opened index version with its token table and lazily built caches.
pub struct Snapshot {
    /// The reader (RocksDB + tantivy).
    pub reader: IndexReader,
    tokens: OnceLock<Arc<TokenTable>>,
    tables: HashMap<String, OnceLock<Arc<FeatureTable>>>,
    stamp: Option<Stamp>,
    responses: Mutex<ResponseCache>,
}

/// Serialized responses of this snapshot (feature dashboards, searches, "more like this"),
/// first in first out within a byte budget.
///
/// A dashboard is ~30–45 KB of JSON assembled from ~100 RocksDB reads, a search or similar
/// result a tantivy query plus a join per hit; researchers page back and forth over the same
/// features and queries, so the bytes are kept. The cache lives in the snapshot: a
/// republished index starts with an empty one, so nothing stale is ever served.
#[derive(Default)]
struct ResponseCache {
    map: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Byte budget of the response cache (`SCOPEDEX_RESPONSE_CACHE_MB`, or its earlier name
/// `SCOPEDEX_DASHBOARD_CACHE_MB`; default 256; 0 disables).
fn response_cache_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        ["SCOPEDEX_RESPONSE_CACHE_MB", "SCOPEDEX_DASHBOARD_CACHE_MB"]
            .iter()
            .find_map(|v| std::env::var(v).ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(256)
            << 20
    })
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("reader", &self.reader)
            .field("created", &self.reader.manifest().created)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Opens the index at `dir`; its tokenizer is loaded on first use ([`Snapshot::tokens`]).
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(dir.as_ref(), None)
    }

    /// Opens `dir`, reusing `previous`'s token table when the model is the same.
    fn open_with(dir: &Path, previous: Option<&Snapshot>) -> StoreResult<Self> {
        let before = stamp(dir);
        let reader = IndexReader::open(dir)?;
        let tokens = OnceLock::new();
        if let Some(p) = previous.filter(|p| p.reader.manifest().model == reader.manifest().model) {
            if let Some(t) = p.tokens.get() {
                let _ = tokens.set(t.clone());
            }
        }
        // The index's own vocabulary, when it has one: tokens render with no model at hand. A
        // vocabulary that does not read is an error (the index is not served half-rendered).
        if tokens.get().is_none() {
            if let Some(v) = reader.vocab()? {
                let _ = tokens.set(Arc::new(TokenTable::from_vocab(&v)));
            }
        }
        Ok(Self::from_reader(reader, tokens, before))
    }

    /// A snapshot of an already opened reader with a given token table (tests, CLI).
    pub fn with_tokens(reader: IndexReader, tokens: Arc<TokenTable>) -> Self {
        let s = stamp(reader.dir());
        Self::from_reader(reader, OnceLock::from(tokens), s)
    }

    fn from_reader(
        reader: IndexReader,
        tokens: OnceLock<Arc<TokenTable>>,
        stamp: Option<Stamp>,
    ) -> Self {
        let tables = reader
            .sae_ids()
            .into_iter()
            .map(|id| (id.to_string(), OnceLock::new()))
            .collect();
        Snapshot {
            reader,
            tokens,
            tables,
            stamp,
            responses: Mutex::new(ResponseCache::default()),
        }
    }

    /// An identifier of this published version (manifest creation time and file identity),
    /// the base of the API's ETags: a republish or reindex changes it.
    pub fn version_tag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.reader.manifest().created.hash(&mut h);
        if let Some(s) = self.stamp {
            (s.ino, s.mtime_ns, s.len).hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }

    /// The cached JSON response under `key`, if this snapshot served it before.
    pub fn cached_response(&self, key: &str) -> Option<Bytes> {
        let cache = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        cache.map.get(key).cloned()
    }

    /// Keeps a response's JSON, evicting the oldest entries beyond the byte budget.
    pub fn cache_response(&self, key: String, json: Bytes) {
        let budget = response_cache_budget();
        if json.len() + key.len() > budget {
            return;
        }
        let mut cache = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        if cache.map.contains_key(&key) {
            return;
        }
        let cost = json.len() + key.len();
        while cache.bytes + cost > budget {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            if let Some(b) = cache.map.remove(&old) {
                cache.bytes -= b.len() + old.len();
            }
        }
        cache.bytes += cost;
        cache.order.push_back(key.clone());
        cache.map.insert(key, json);
    }

    /// The cached response under `key`, or `build`'s body serialized and cached (errors are
    /// returned, not cached).
    pub fn cached_json<T: serde::Serialize>(
        &self,
        key: String,
        build: impl FnOnce() -> crate::error::ApiResult<T>,
    ) -> crate::error::ApiResult<Bytes> {
        if let Some(json) = self.cached_response(&key) {
            return Ok(json);
        }
        let json = serialize_json(&build()?).map_err(crate::error::ApiError::internal)?;
        self.cache_response(key, json.clone());
        Ok(json)
    }

    /// Token id → text: the index's `vocab.parquet` (read at open), else, for an index
    /// without one, the model's tokenizer ([`TokenTable::for_manifest`], loaded on first use).
    pub fn tokens(&self) -> &TokenTable {
        self.tokens
            .get_or_init(|| Arc::new(TokenTable::for_manifest(self.reader.manifest())))
    }

    /// The feature table of `sae`, built on first use ([`scopedex_store::Error::UnknownSae`]
    /// for an SAE not in the index).
    pub fn feature_table(&self, sae: &str) -> StoreResult<Arc<FeatureTable>> {
        let Some(cell) = self.tables.get(sae) else {
            return Err(self.reader.sae(sae).err().unwrap_or_else(|| {
                scopedex_store::Error::InvalidInput(format!("no feature table for {sae:?}"))
            }));
        };
        if let Some(t) = cell.get() {
            return Ok(t.clone());
        }
        let _span = tracing::info_span!("feature_table", sae).entered();
        let built = Arc::new(FeatureTable::build(&self.reader, sae)?);
        Ok(cell.get_or_init(|| built).clone())
    }
}

/// `body` as JSON in a buffer of exactly its size.
///
/// Serialized into a per-thread buffer that keeps its capacity: `serde_json::to_vec` starts at
/// 128 bytes and doubles its way up to the ~30–45 KB of a page (nine reallocations and
/// copies), and the cached bytes would keep the doubled capacity.
fn serialize_json<T: serde::Serialize>(body: &T) -> serde_json::Result<Bytes> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        serde_json::to_writer(&mut *buffer, body)?;
        let json = Bytes::copy_from_slice(&buffer);
        // A rare huge body (an export-sized page) should not stay pinned to the thread.
        if buffer.capacity() > 4 << 20 {
            *buffer = Vec::new();
        }
        Ok(json)
    })
}

/// The current [`Snapshot`] of one index directory; see the module docs.
pub struct IndexHandle {
    dir: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    reloading: Mutex<()>,
}

impl std::fmt::Debug for IndexHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexHandle")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl IndexHandle {
    /// Opens the index at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> StoreResult<Self> {
        let dir = dir.into();
        let snap = Snapshot::open(&dir)?;
        snap.tokens(); // load the tokenizer now rather than in the first request
        Ok(Self::new(dir, snap))
    }

    /// A handle starting from an already opened snapshot of `dir`.
    pub fn new(dir: impl Into<PathBuf>, snapshot: Snapshot) -> Self {
        IndexHandle {
            dir: dir.into(),
            current: RwLock::new(Arc::new(snapshot)),
            reloading: Mutex::new(()),
        }
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current snapshot (an `Arc` clone under a read lock).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a valid Arc (writers only assign).
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in the republished index if `manifest.json` changed since the current snapshot
    /// was opened. Returns whether it swapped. On an error (directory mid-publish, broken new
    /// index) the current snapshot stays and the error is returned for the caller to log.
    pub fn refresh(&self) -> StoreResult<bool> {
        let _guard = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        let now = stamp(&self.dir);
        if now.is_none() || now == current.stamp {
            return Ok(false);
        }
        let next = Snapshot::open_with(&self.dir, Some(&current))?;
        next.tokens();
        if next.stamp != now || stamp(&self.dir) != now {
            // Republished again while opening: the files may be of two versions. Next time.
            return Ok(false);
        }
        tracing::info!(
            dir = %self.dir.display(),
            created = %next.reader.manifest().created,
            "index republished; switched to the new version"
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(true)
    }

    /// Calls [`IndexHandle::refresh`] every `every` on a blocking thread, logging failures,
    /// until the runtime shuts down.
    pub fn spawn_watcher(self: &Arc<Self>, every: std::time::Duration) {
        let handle = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let h = Arc::clone(&handle);
                match tokio::task::spawn_blocking(move || h.refresh()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "index reload failed; keeping the current version")
                    }
                    Err(e) => tracing::warn!(error = %e, "index reload task failed"),
                }
            }
        });
    }
}
