//! Runs jobs on a pool of threads, many requests in flight: each worker takes the next job,
//! does it (prompt, request, parse) and hands the result to the caller's thread, which alone
//! writes the journal and reports progress. A stop flag (Ctrl-C) lets the requests in flight
//! finish and starts no new one.
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;

/// Progress of a run, passed to the caller's callback after every finished job.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Jobs finished (succeeded or failed) in this run.
    pub done: usize,
    /// Jobs of this run.
    pub total: usize,
    /// Jobs that failed.
    pub failed: usize,
    /// Prompt tokens so far, as the endpoint counts them.
    pub prompt_tokens: u64,
    /// Generated tokens so far.
    pub completion_tokens: u64,
}

/// Does `work` on every job with `concurrency` threads and passes each result to `sink` on
/// the calling thread, in the order they finish. Returns `false` when `stop` was raised
/// before every job started. An error from `sink` stops the run and is returned.
pub(crate) fn run_parallel<J, R>(
    jobs: Vec<J>,
    concurrency: usize,
    stop: &AtomicBool,
    work: impl Fn(J) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<()>,
) -> Result<bool>
where
    J: Send,
    R: Send,
{
    let n = jobs.len();
    let (job_tx, job_rx) = crossbeam_channel::bounded::<J>(n.max(1));
    for j in jobs {
        // The channel holds every job: this send cannot block or fail.
        let _ = job_tx.send(j);
    }
    drop(job_tx);
    let (res_tx, res_rx) = crossbeam_channel::unbounded::<R>();
    let mut received = 0;
    let mut outcome: Result<()> = Ok(());
    std::thread::scope(|s| {
        for _ in 0..concurrency.clamp(1, n.max(1)) {
            let job_rx = job_rx.clone();
            let res_tx = res_tx.clone();
            let work = &work;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(job) = job_rx.recv() else { break };
                    if res_tx.send(work(job)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        for r in res_rx.iter() {
            received += 1;
            if outcome.is_ok() {
                if let Err(e) = sink(r) {
                    stop.store(true, Ordering::Relaxed);
                    outcome = Err(e);
                }
            }
        }
    });
    outcome?;
    Ok(received == n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_job_runs_once_and_a_stop_leaves_the_rest() {
        let stop = AtomicBool::new(false);
        let mut got = Vec::new();
        let complete = run_parallel(
            (0..100).collect(),
            8,
            &stop,
            |j: u32| j * 2,
            |r| {
                got.push(r);
                Ok(())
            },
        )
        .unwrap();
        got.sort_unstable();
        assert!(complete);
        assert_eq!(got, (0..100).map(|j| j * 2).collect::<Vec<_>>());

        let started = AtomicUsize::new(0);
        let complete = run_parallel(
            (0..100).collect(),
            2,
            &stop,
            |j: u32| {
                started.fetch_add(1, Ordering::Relaxed);
                // Slow enough that the stop lands long before the last job.
                std::thread::sleep(std::time::Duration::from_millis(5));
                j
            },
            |r| {
                if r >= 3 {
                    stop.store(true, Ordering::Relaxed);
                }
                Ok(())
            },
        )
        .unwrap();
        assert!(!complete);
        assert!(started.load(Ordering::Relaxed) < 100);
    }

    #[test]
    fn a_sink_error_stops_the_run() {
        let stop = AtomicBool::new(false);
        let e = run_parallel(
            (0..50).collect(),
            4,
            &stop,
            |j: u32| j,
            |_| Err(crate::Error::InvalidInput("disk full".into())),
        );
        assert!(e.is_err());
    }
}
