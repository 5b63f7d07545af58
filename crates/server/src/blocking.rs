//! Where request work runs: short index reads on the async worker that received the request,
//! long work (table builds, Parquet scans) on tokio's blocking pool, at most one task per core
//! at a time.
//!
//! Why short work stays on the worker: the runtime has one worker per core, so a miss of a
//! dashboard, search or precomputed similar list (≤ ~1 ms of CPU on an index in memory) is
//! queued for a core either way, and a hand-off to another thread and back costs more than
//! the queueing saves. It also keeps every request in one first-in first-out order: given
//! their own queue, misses waited behind each other while cached answers went first, so the
//! tail was all misses. Measured on 2 cores at 64 connections (`scripts/bench-server.sh`):
//! feature queries p99 32.8 → 17.4 ms and 6.2k → 10.2k req/s, dashboards p99 75 → 9.8 ms,
//! uncached throughput +40–67 % on every endpoint.
//!
//! Under overload, long work is refused rather than queued without bound ([`Admission`]): at
//! most [`LONG_QUEUE_PER_CORE`] tasks per core wait, each at most [`LONG_MAX_WAIT`], and the
//! rest get 503 with `Retry-After` at once, so the workers stay free for cheap requests.
//!
//! Why long work does not: the pool grows to hundreds of threads, so under load every long
//! task would run at once and share the cores with each other and with the workers (a p99 of
//! 200 ms for dashboards at 64 connections when they ran there unbounded, measured). Queued in
//! order (tokio's semaphore is fair), a long task waits its turn and the workers keep their
//! cores.
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use std::time::Duration;

use crate::admission::Admission;
use crate::error::{ApiError, ApiResult};

/// How long a piece of request work may take, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// Bounded index reads (≤ ~1 ms of CPU): run in place, [`inline`].
    Short,
    /// Unbounded or first-use work (table builds, live ranking, scans): [`run`].
    Long,
}

/// Long tasks waiting for a core at most, per core; beyond, or after [`LONG_MAX_WAIT`], a
/// request is refused with 503 and `Retry-After` (cheap requests are never refused).
pub const LONG_QUEUE_PER_CORE: usize = 4;
/// Longest wait of a long task for a core.
pub const LONG_MAX_WAIT: Duration = Duration::from_secs(2);

fn long_work() -> &'static Admission {
    static A: OnceLock<Admission> = OnceLock::new();
    A.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let a = Admission::new(
            "expensive queries",
            0,
            LONG_QUEUE_PER_CORE * cores,
            LONG_MAX_WAIT,
        );
        a.add_permits(cores);
        a
    })
}

/// Runs `f` on the blocking pool once a core's permit is free (503 when too many wait).
pub(crate) async fn run<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let _permit = long_work().enter().await?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// Runs `f` here, on the calling worker; a panic is answered as an internal error (as the
/// blocking pool's join error would be) rather than dropping the connection.
pub(crate) fn inline<T>(f: impl FnOnce() -> ApiResult<T>) -> ApiResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(ApiError::internal(format!("request work panicked: {what}")))
    })
}

/// Runs `f` where `work` says.
pub(crate) async fn dispatch<T: Send + 'static>(
    work: Work,
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    match work {
        Work::Short => inline(f),
        Work::Long => run(f).await,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[tokio::test]
    async fn a_panic_in_either_place_is_an_internal_error() {
        for work in [Work::Short, Work::Long] {
            let r: ApiResult<()> = dispatch(work, || panic!("boom")).await;
            assert_eq!(r.unwrap_err().status, StatusCode::INTERNAL_SERVER_ERROR);
            let ok = dispatch(work, || Ok(7)).await;
            assert_eq!(ok.unwrap(), 7);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn short_work_runs_on_the_calling_thread() {
        let here = std::thread::current().id();
        let there = dispatch(Work::Short, || Ok(std::thread::current().id())).await;
        assert_eq!(there.unwrap(), here);
        let pool = dispatch(Work::Long, || Ok(std::thread::current().id())).await;
        assert_ne!(pool.unwrap(), here);
    }
}
