//! Pacing of rate-limited claims: a key with burst 1 admits one start per claim,
//! so a claimer that only polled (every `poll_interval`) would start far fewer than
//! the key allows. After claiming a rate-limited step it looks again when the key
//! should admit the next start, by the rate in the step's workflow (an operator's
//! `limits set` may differ: a wrong guess costs one empty claim, never a start the
//! key refuses, since the store decides every admission).

use super::{lock, Inner};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use stepwise_core::spec::fan_out::split_item_name;
use stepwise_core::spec::limits::Rate;
use stepwise_store::ClaimedStep;

/// Keys faster than this are not worth a wake-up of their own: the claims of
/// completing steps come that often anyway.
const MIN_PACE: Duration = Duration::from_millis(10);

impl Inner {
    /// When the keys of the rate-limited steps just claimed should admit again;
    /// `None` when none of them is rate-limited (or its workflow is not cached yet).
    pub(super) fn next_admission(&self, claimed: &[ClaimedStep]) -> Option<Instant> {
        if !self.rate_limited.load(Ordering::Relaxed) {
            return None;
        }
        let specs = lock(&self.specs);
        let pace = claimed
            .iter()
            .filter(|s| s.compensating.is_none())
            .filter_map(|s| {
                let spec = specs.get(&(s.workflow.clone(), s.workflow_version))?;
                let name = split_item_name(&s.step).map_or(s.step.as_str(), |(name, _)| name);
                let limit = spec
                    .steps
                    .iter()
                    .find(|x| x.name == name)?
                    .rate_limit
                    .as_ref()?;
                let rate = Rate {
                    limit: limit.limit,
                    per_ms: limit.per_ms,
                    burst: limit.burst,
                };
                Some(Duration::from_micros(rate.interval_us() as u64))
            })
            .min()?;
        Some(Instant::now() + pace.max(MIN_PACE))
    }
}

/// How long an idle claimer waits: until the paced key should admit, if that comes
/// before the next poll; a pace that has passed is forgotten.
pub(super) fn idle_wait(pace: &mut Option<Instant>, poll: Duration) -> Duration {
    let now = Instant::now();
    match pace.filter(|t| *t > now) {
        Some(t) => (t - now).min(poll),
        None => {
            *pace = None;
            poll
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_claimer_wakes_for_a_paced_key_before_its_poll() {
        let poll = Duration::from_millis(200);
        let mut pace = Some(Instant::now() + Duration::from_millis(100));
        let wait = idle_wait(&mut pace, poll);
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(pace.is_some());
        let mut far = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(idle_wait(&mut far, poll), poll);
        let mut past = Some(Instant::now() - Duration::from_millis(1));
        assert_eq!(idle_wait(&mut past, poll), poll);
        assert_eq!(past, None);
    }
}
