//! Rate limits and fairness: `rate_limit = { key, limit, per, burst }` on a step and
//! `fairness_key` on a run, and the arithmetic of a generic cell rate (GCRA) that
//! both storage backends apply in their claim transactions.
//!
//! A key's state is one time, its theoretical arrival time (TAT). Each admission
//! moves it on by the emission interval `T = per / limit`; a start is admitted when
//! `now >= TAT - tau`, with `tau = (burst - 1) * T`. Over any window of length `W`
//! that admits at most `W / T + burst` starts: `limit + burst` per `per`.

use chrono::{DateTime, Duration as Span, Utc};
use serde::{Deserialize, Serialize};

/// A step's rate limit, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// A template over the run's input, e.g. `"openai:{{ input.tenant }}"`.
    pub key: String,
    /// Starts per `per_ms`, on average.
    pub limit: u32,
    pub per_ms: u64,
    /// Starts admitted at once after a quiet spell (default 1: evenly spaced).
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// A burst's tolerance is capped at 100 years (the stores' SQL caps it alike): a
/// huge burst of a slow limit would otherwise put times out of any calendar's range.
pub const MAX_TOLERANCE_US: i64 = 100 * 365 * 86_400 * 1_000_000;

/// A key's limit as stored (the file's, or the one `limits set` gave it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub per_ms: u64,
    pub burst: u32,
}

impl Rate {
    /// The emission interval, in microseconds (whole: the database keeps times to
    /// the microsecond).
    pub fn interval_us(&self) -> i64 {
        let us = u128::from(self.per_ms) * 1000 / u128::from(self.limit.max(1));
        us.clamp(1, i64::MAX as u128) as i64
    }

    fn tolerance_us(&self) -> i64 {
        self.interval_us()
            .saturating_mul(i64::from(self.burst.max(1) - 1))
            .min(MAX_TOLERANCE_US)
    }

    /// Where a key's admissions at `now` count from: its TAT, or `now` when the key
    /// has been idle since.
    pub fn start(tat: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        tat.map_or(now, |tat| tat.max(now))
    }

    /// How many of `wanted` starts the key admits at `now`, and its TAT after them
    /// (`start + admitted * T`).
    pub fn admit(&self, tat: Option<DateTime<Utc>>, now: DateTime<Utc>, wanted: u32) -> Admission {
        let t = self.interval_us();
        let start = Self::start(tat, now);
        // The k-th start (from 0) is admitted while start + k*T - tau <= now.
        let room = (now - start).num_microseconds().unwrap_or(0) + self.tolerance_us();
        let admitted = if room < 0 {
            0
        } else {
            (room / t + 1).min(i64::from(wanted)) as u32
        };
        let tat = start + Span::microseconds(t.saturating_mul(i64::from(admitted)));
        Admission { admitted, tat }
    }

    /// When a key whose TAT is `tat` admits its next start.
    pub fn next_start(&self, tat: DateTime<Utc>) -> DateTime<Utc> {
        tat - Span::microseconds(self.tolerance_us())
    }
}

/// What a claim may start under a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub admitted: u32,
    /// The key's TAT once those started.
    pub tat: DateTime<Utc>,
}

/// Checks a step's rate limit: a valid key template, positive numbers.
pub(super) fn check(step: &super::StepSpec, limit: &RateLimitSpec) -> Result<(), super::SpecError> {
    crate::Template::parse(&limit.key).map_err(|error| super::SpecError::InvalidTemplate {
        step: Some(step.name.clone()),
        field: "rate_limit.key",
        error,
    })?;
    if limit.limit == 0 {
        return Err(super::invalid(
            step,
            "rate_limit.limit",
            "must be at least 1".into(),
        ));
    }
    if limit.per_ms == 0 {
        return Err(super::invalid(
            step,
            "rate_limit.per",
            "must be longer than 0".into(),
        ));
    }
    if limit.burst == 0 {
        return Err(super::invalid(
            step,
            "rate_limit.burst",
            "must be at least 1".into(),
        ));
    }
    if step.resource.is_some() {
        return Err(super::invalid(
            step,
            "rate_limit",
            "a step takes a rate limit or a resource lock, not both".into(),
        ));
    }
    if step.action.waits() {
        return Err(super::invalid(
            step,
            "rate_limit",
            "a step that waits starts nothing to limit; put the limit on the step that works"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_fresh_key_admits_its_burst_then_one_per_interval() {
        let rate = Rate {
            limit: 10,
            per_ms: 1000,
            burst: 3,
        };
        let first = rate.admit(None, at(0), 10);
        assert_eq!(first.admitted, 3, "the burst");
        assert_eq!(first.tat, at(300));
        assert_eq!(rate.admit(Some(first.tat), at(50), 10).admitted, 0);
        assert_eq!(rate.next_start(first.tat), at(100));
        let later = rate.admit(Some(first.tat), at(100), 10);
        assert_eq!((later.admitted, later.tat), (1, at(400)));
    }

    #[test]
    fn over_any_window_of_per_at_most_limit_plus_burst_start() {
        let rate = Rate {
            limit: 10,
            per_ms: 1000,
            burst: 2,
        };
        let mut tat = None;
        let mut starts = Vec::new();
        // Ask every 7 ms for 5 starts, for 5 seconds.
        for ms in (0..5000).step_by(7) {
            let a = rate.admit(tat, at(ms), 5);
            starts.extend(std::iter::repeat_n(ms, a.admitted as usize));
            tat = Some(a.tat);
        }
        for (i, &first) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|&&s| s < first + 1000)
                .count();
            assert!(
                in_window <= 12,
                "{in_window} starts in the second from {first} ms"
            );
        }
        assert!(starts.len() >= 50, "about 10 per second: {}", starts.len());
    }
}
