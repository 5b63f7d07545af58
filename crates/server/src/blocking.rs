//! Request work that blocks (RocksDB reads, tantivy queries, Parquet scans) runs on tokio's
//! blocking pool, at most one task per core at a time.
//!
//! Why the limit: the pool grows to hundreds of threads, so under load every cache miss would
//! run at once and share the cores with each other and with the async workers that answer
//! cached responses — every request slows down together (a p99 of 200 ms for dashboards at 64
//! connections, measured). Queued in order (tokio's semaphore is fair), a miss waits its turn
//! and cached answers keep their cores.
use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

fn permits() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores)
    })
}

/// Runs `f` on the blocking pool once a core's permit is free.
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let _permit = permits().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
