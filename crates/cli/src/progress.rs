//! Progress where no terminal shows the bar: indicatif draws nothing when stderr is a file or a
//! pipe (a Slurm or CI log, `| tee`), so a long stage would log nothing for many minutes. There,
//! [`report_when_piped`] prints the bar's state as one plain line every [`EVERY`].
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::ProgressBar;

/// How often a piped run prints its progress (`SCOPEDEX_PROGRESS_SECS` overrides).
pub const EVERY: Duration = Duration::from_secs(30);

fn every() -> Duration {
    std::env::var("SCOPEDEX_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(EVERY, Duration::from_secs)
}

/// When stderr is not a terminal, prints `what`'s progress (position, total, rate, ETA, the
/// bar's message) every [`EVERY`] (or `SCOPEDEX_PROGRESS_SECS`) until the bar is finished.
pub fn report_when_piped(pb: &ProgressBar, what: &'static str) {
    if std::io::stderr().is_terminal() {
        return;
    }
    let pb = pb.clone();
    let every = every();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let mut last = 0u64;
        loop {
            std::thread::sleep(every);
            if pb.is_finished() {
                return;
            }
            let pos = pb.position();
            let elapsed = started.elapsed().as_secs_f64();
            // The average rate since the start: indicatif's recent rate falls to 0 while a
            // later phase (e.g. "writing") holds the position, and its ETA runs away.
            let rate = pos as f64 / elapsed.max(1e-9);
            let total = pb.length().map(|l| format!("/{l}")).unwrap_or_default();
            let eta = match pb.length() {
                Some(l) if l > pos && pos > last && rate > 0.0 => {
                    format!(", ETA {:.0} s", (l - pos) as f64 / rate)
                }
                _ => String::new(),
            };
            last = pos;
            eprintln!(
                "[{:>5} s] {what}: {pos}{total} ({rate:.0}/s{eta}) {}",
                elapsed as u64,
                pb.message()
            );
        }
    });
}
