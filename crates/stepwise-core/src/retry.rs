//! Retry budget and backoff.
//!
//! This module decides *how long* to wait; the storage backend turns that into an
//! instant with the database clock, so workers with skewed clocks agree.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Exponential backoff: `initial * factor^(n-1)`, capped at `max`, for the n-th retry.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backoff {
    #[serde(with = "millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub initial: Duration,
    pub factor: f64,
    #[serde(with = "millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait before the attempt that follows failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

/// How many attempts a step gets and how long it waits between them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
        }
    }
}

/// What happens to a step after one of its attempts failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureDecision {
    /// Try again once `delay` has passed on the database clock.
    RetryAfter(Duration),
    /// The step is failed for good.
    GiveUp,
}

impl RetryPolicy {
    /// Decides after failed attempt number `attempt` (1-based). `retryable = false`
    /// (exit code 64, an HTTP 4xx, a handler's permanent error) gives up at once.
    pub fn after_failure(&self, attempt: u32, retryable: bool) -> FailureDecision {
        if !retryable || attempt >= self.max_attempts {
            FailureDecision::GiveUp
        } else {
            FailureDecision::RetryAfter(self.backoff.delay_after(attempt))
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(10),
            },
        }
    }

    #[test]
    fn backoff_grows_by_factor_and_stops_at_max() {
        let b = policy(10).backoff;
        assert_eq!(b.delay_after(1), Duration::from_secs(1));
        assert_eq!(b.delay_after(2), Duration::from_secs(2));
        assert_eq!(b.delay_after(4), Duration::from_secs(8));
        assert_eq!(b.delay_after(5), Duration::from_secs(10));
        assert_eq!(b.delay_after(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn last_attempt_gives_up() {
        let p = policy(3);
        assert_eq!(
            p.after_failure(1, true),
            FailureDecision::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            p.after_failure(2, true),
            FailureDecision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(p.after_failure(3, true), FailureDecision::GiveUp);
    }

    #[test]
    fn permanent_errors_give_up_at_once() {
        assert_eq!(policy(5).after_failure(1, false), FailureDecision::GiveUp);
    }
}
