//! How long this worker may still act on its lease, judged locally and on the safe
//! side, so that a child never outlives the lease the database would let another
//! worker take.
//!
//! A heartbeat sent at local instant `t` that succeeds extends the database lease to
//! at least `t + lease` (the database computes `now() + lease` when it runs the
//! update, which is no earlier than `t`). Reapers act only after that. So the worker
//! treats its lease as valid until `t + lease - margin`, beats its supervisors only
//! while it is valid, and the supervisors kill their children after `window` without
//! a beat. With `window < margin` a child is dead before the database lease ends,
//! whether the worker was stopped (`SIGSTOP`), hung, or cut off from the database.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The worker's lease as this process may rely on it.
#[derive(Debug)]
pub struct LeaseValidity {
    lease: Duration,
    until: Mutex<Instant>,
}

impl LeaseValidity {
    /// Valid for `lease` from `sent`, the instant the registration was sent.
    pub fn new(lease: Duration, sent: Instant) -> Self {
        let v = Self {
            lease,
            until: Mutex::new(sent),
        };
        v.renewed(sent);
        v
    }

    /// A validity that never lapses (executors used outside a worker, tests).
    pub fn forever() -> Self {
        let far = Duration::from_secs(100 * 365 * 86_400);
        Self {
            lease: far,
            until: Mutex::new(Instant::now() + far),
        }
    }

    /// The part of the lease kept as a safety margin.
    pub fn margin(&self) -> Duration {
        self.lease / 4
    }

    /// How long a supervisor waits without a beat before it kills its child.
    pub fn supervisor_window(&self) -> Duration {
        (self.lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// How often executors beat their supervisors.
    pub fn beat_interval(&self) -> Duration {
        self.supervisor_window() / 4
    }

    /// A heartbeat sent at `sent` succeeded.
    pub fn renewed(&self, sent: Instant) {
        let until = sent + self.lease.saturating_sub(self.margin());
        let mut current = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if until > *current {
            *current = until;
        }
    }

    /// Whether the worker may still act (claim, beat its supervisors).
    pub fn is_valid(&self) -> bool {
        Instant::now() < *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_dies_before_the_database_lease_ends() {
        let v = LeaseValidity::new(Duration::from_secs(30), Instant::now());
        // Last beat at the end of validity, then the supervisor's window.
        let worst = v.lease - v.margin() + v.supervisor_window();
        assert!(worst < v.lease, "{worst:?}");
        assert!(v.beat_interval() * 3 < v.supervisor_window());
        let short = LeaseValidity::new(Duration::from_secs(1), Instant::now());
        assert!(short.lease - short.margin() + short.supervisor_window() < short.lease);
    }

    #[test]
    fn validity_lapses_without_renewal_and_never_shrinks() {
        let start = Instant::now() - Duration::from_secs(100);
        let v = LeaseValidity::new(Duration::from_secs(10), start);
        assert!(!v.is_valid());
        v.renewed(Instant::now());
        assert!(v.is_valid());
        v.renewed(start);
        assert!(
            v.is_valid(),
            "an old heartbeat's answer does not shorten it"
        );
    }
}
