//! Bench worker processes and the rate they drain at over time.
//!
//! Progress comes from the workers themselves (each prints its count of handler runs
//! to stdout every tick), not from counting rows: a count over 10^6 steps several
//! times a second would load the database the bench is measuring. The database is
//! asked only to confirm the end of the drain and for the timestamps the headline
//! `steps_per_s` is computed from.

use serde_json::json;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How often a bench worker reports its count.
pub(super) const TICK: Duration = Duration::from_millis(50);

/// Counts handler runs in a bench worker and prints the running total every tick.
pub(super) fn report_handled(handled: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(TICK).await;
            let n = handled.load(Ordering::Relaxed);
            if n != last {
                last = n;
                // A few bytes to a pipe: the blocking write does not hold the runtime.
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{n}").and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
        }
    });
}

pub(super) struct Workers {
    children: Vec<tokio::process::Child>,
    /// Latest count each worker printed.
    handled: Vec<Arc<AtomicU64>>,
}

impl Workers {
    pub(super) fn start(url: &str, n: usize, pool: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut children = Vec::with_capacity(n);
        let mut handled = Vec::with_capacity(n);
        for _ in 0..n {
            let mut child = tokio::process::Command::new(&exe)
                .args(["__bench-worker", "--pool", &pool.to_string()])
                .env("STEPWISE_DATABASE_URL", url)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let count = Arc::new(AtomicU64::new(0));
            if let Some(stdout) = child.stdout.take() {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(n) = line.trim().parse() {
                            count.store(n, Ordering::Relaxed);
                        }
                    }
                });
            }
            children.push(child);
            handled.push(count);
        }
        Ok(Self { children, handled })
    }

    /// Steps the workers have run so far (handler runs; an outcome commits within a
    /// batch of it).
    pub(super) fn handled(&self) -> u64 {
        self.handled.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Fails once every worker process has exited: nothing would drain the runs, and
    /// the bench would wait for ever (a worker that cannot open the store, say).
    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        let mut exited = Vec::new();
        for c in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                exited.push(status);
            }
        }
        if !exited.is_empty() && exited.len() == self.children.len() {
            return Err(super::CliError::failed(format!(
                "every bench worker exited before the drain finished (first: {}); their errors are above",
                exited[0]
            )));
        }
        Ok(())
    }

    /// Peak resident memory of the largest worker, in MiB (Linux).
    pub(super) fn peak_rss_mib(&self) -> Option<f64> {
        self.children
            .iter()
            .filter_map(|c| c.id())
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb / 1024.0)
            })
            .reduce(f64::max)
    }

    pub(super) async fn stop(mut self) {
        for c in &self.children {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for c in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(15), c.wait()).await;
        }
    }
}

/// The drain's progress over time: every tick's count, and the rate per `every`.
pub(super) struct RateLog {
    started: Instant,
    every: Option<Duration>,
    /// (seconds since the drain started, steps run by then), one per tick.
    ticks: Vec<(f64, u64)>,
    /// (seconds, steps) at the end of the last reported interval.
    reported: (f64, u64),
    intervals: Vec<serde_json::Value>,
}

impl RateLog {
    pub(super) fn new(every: Option<Duration>) -> Self {
        Self {
            started: Instant::now(),
            every,
            ticks: Vec::new(),
            reported: (0.0, 0),
            intervals: Vec::new(),
        }
    }

    /// Records the count now; returns the line to print when an interval ended.
    pub(super) fn tick(&mut self, handled: u64) -> Option<String> {
        let t = self.started.elapsed().as_secs_f64();
        self.ticks.push((t, handled));
        let every = self.every?.as_secs_f64();
        let (t0, n0) = self.reported;
        if t - t0 < every {
            return None;
        }
        let rate = (handled.saturating_sub(n0)) as f64 / (t - t0);
        self.reported = (t, handled);
        let t = (t * 10.0).round() / 10.0;
        self.intervals
            .push(json!({ "t": t, "steps_per_s": rate.round() }));
        Some(format!("t={t:.1}s steps/s={rate:.0} done={handled}"))
    }

    /// `rate_over_time` (with `--report-every`) and the first and last tenth of the
    /// drain's rates, so a sag shows.
    pub(super) fn finish(self, total: u64, report: &mut serde_json::Value) {
        if self.every.is_some() {
            report["rate_over_time"] = serde_json::Value::Array(self.intervals);
        }
        if let Some((first, last)) = tenths(&self.ticks, total) {
            report["first_tenth_steps_per_s"] = json!(first.round());
            report["last_tenth_steps_per_s"] = json!(last.round());
        }
    }
}

/// Rates over the first and the last 10% of `total` steps, from the ticks at which the
/// count crossed 0, 10%, 90% and 100%. None when a tenth took too few ticks to time.
fn tenths(ticks: &[(f64, u64)], total: u64) -> Option<(f64, f64)> {
    let crossed = |n: u64| ticks.iter().find(|(_, done)| *done >= n).map(|(t, _)| *t);
    let begin = ticks
        .iter()
        .rev()
        .find(|(_, done)| *done == 0)
        .map(|(t, _)| *t)?;
    let tenth = total.div_ceil(10);
    let (t10, t90, t100) = (crossed(tenth)?, crossed(total - tenth)?, crossed(total)?);
    let min = 4.0 * TICK.as_secs_f64();
    if t10 - begin < min || t100 - t90 < min {
        return None;
    }
    Some((tenth as f64 / (t10 - begin), tenth as f64 / (t100 - t90)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_compare_the_first_and_last_tenth_of_a_sagging_drain() {
        // 1,000 steps: 100 per second for the first 900, then 50 per second.
        let mut ticks = vec![(0.0, 0)];
        for i in 1..=9 {
            ticks.push((i as f64, i * 100));
        }
        ticks.push((11.0, 1000));
        let (first, last) = tenths(&ticks, 1000).unwrap();
        assert_eq!(first, 100.0);
        assert_eq!(last, 50.0);
    }

    #[test]
    fn tenths_are_not_timed_from_too_few_ticks() {
        assert!(tenths(&[(0.0, 0), (0.05, 1000)], 1000).is_none());
    }
}
