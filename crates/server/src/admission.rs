//! [`Admission`]: a bounded, deadline-limited queue in front of expensive work.
//!
//! Expensive requests (the live model, uncached rankings and scans) run at most `permits` at a
//! time. Up to `max_waiting` more wait in arrival order (tokio's semaphore is fair), each for
//! at most `max_wait`; anything beyond is refused at once with 503 and `Retry-After`, so a
//! flood of expensive requests costs the server a bounded amount of memory and time, and cheap
//! requests (health, cached answers, dashboards) never queue behind it.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{ApiError, ApiResult};

/// A bounded queue of expensive work; see the module docs.
#[derive(Debug)]
pub struct Admission {
    what: &'static str,
    permits: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// Decrements the waiting count however the wait ends (admitted, timed out, cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// `permits` running at once, `max_waiting` queued for at most `max_wait` each. `what`
    /// names the work in refusals ("live activation").
    pub const fn new(
        what: &'static str,
        permits: usize,
        max_waiting: usize,
        max_wait: Duration,
    ) -> Self {
        Admission {
            what,
            permits: Semaphore::const_new(permits),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Adds permits (a pool sized at start-up, e.g. one per core).
    pub fn add_permits(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Waits for a permit; 503 `overloaded` with `Retry-After` when the queue is full or the
    /// wait exceeds `max_wait`.
    pub async fn enter(&self) -> ApiResult<SemaphorePermit<'_>> {
        if let Ok(p) = self.permits.try_acquire() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(self.refusal(format!("{} requests are already queued", self.max_waiting)));
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.max_wait, self.permits.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(ApiError::internal(e)),
            Err(_) => Err(self.refusal(format!(
                "no slot freed within {} ms",
                self.max_wait.as_millis()
            ))),
        }
    }

    fn refusal(&self, why: String) -> ApiError {
        let retry = self.max_wait.as_secs().max(1);
        ApiError::overloaded(
            format!("the server is busy with {} ({why}); retry later", self.what),
            retry,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_the_queue_and_after_the_deadline() {
        let a = Admission::new("tests", 1, 1, Duration::from_millis(50));
        let held = a.enter().await.unwrap();
        // One waiter fits in the queue; it times out since the permit is held.
        let (first, second) = tokio::join!(a.enter(), async {
            tokio::task::yield_now().await;
            a.enter().await
        });
        let first = first.unwrap_err();
        let second = second.unwrap_err();
        for e in [&first, &second] {
            assert_eq!(e.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.kind, "overloaded");
            assert_eq!(e.retry_after, Some(1));
        }
        assert!(second.detail.contains("queued"), "{}", second.detail);
        assert!(first.detail.contains("within"), "{}", first.detail);
        assert_eq!(a.waiting.load(Ordering::Acquire), 0);
        drop(held);
        let _permit = a.enter().await.unwrap();
    }
}
