//! Rate limits and fairness, once for both backends: the GCRA arithmetic is
//! `stepwise_core::spec::limits::Rate`; here are what the claims decide with it (how
//! many a key admits, in which order fairness keys are served) and the checks of
//! `limits set` and `limits pause`. Each backend keeps its SQL in `limits.rs`.

use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use stepwise_core::spec::limits::Rate;

/// At most this many rate or fairness keys are looked at per claim and queue.
pub(crate) const KEYS_PER_CLAIM: i64 = 64;

/// Checks `limits set KEY --limit N --per D [--burst B]`.
pub(crate) fn check_setting(key: &str, rate: &Rate) -> Result<()> {
    check_key(key)?;
    if rate.limit == 0 || rate.limit > i32::MAX as u32 {
        return Err(StoreError::InvalidInput(format!(
            "limit must be between 1 and {}",
            i32::MAX
        )));
    }
    if rate.per_ms == 0 || rate.per_ms > MAX_PER_MS {
        return Err(StoreError::InvalidInput(
            "per must be between 1ms and 365 days".into(),
        ));
    }
    if rate.burst == 0 || rate.burst > i32::MAX as u32 {
        return Err(StoreError::InvalidInput(format!(
            "burst must be between 1 and {}",
            i32::MAX
        )));
    }
    Ok(())
}

const MAX_PER_MS: u64 = 365 * 86_400_000;

pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 512 || key.contains('\0') {
        return Err(StoreError::InvalidInput(
            "a rate limit key must be 1-512 characters without NUL".into(),
        ));
    }
    Ok(())
}

/// How long `limits pause KEY --for D` or a `Retry-After` may pause a key.
pub(crate) fn pause_ms(d: Duration) -> Result<i64> {
    if d > Duration::from_millis(MAX_PER_MS) {
        return Err(StoreError::InvalidInput(
            "a pause must be at most 365 days".into(),
        ));
    }
    Ok(d.as_millis() as i64)
}

/// A key locked by a claim, with what it needs to admit.
pub(crate) struct LockedKey {
    pub key: String,
    pub rate: Rate,
    pub tat: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// The data of `limit.paused`.
pub(crate) fn paused_data(key: &str, until: DateTime<Utc>, reason: &str) -> serde_json::Value {
    serde_json::json!({"key": key, "until": until, "reason": reason})
}

/// The order a claim serves fairness keys in, `want` steps at most: one step per key
/// per round, least recently served first, for as many rounds as it takes; `taken`
/// says how many the last round got of each (0 ends that key).
pub(crate) struct FairRounds {
    keys: Vec<String>,
    live: Vec<bool>,
    next: usize,
}

impl FairRounds {
    pub fn new(keys: Vec<String>) -> Self {
        let live = vec![true; keys.len()];
        Self {
            keys,
            live,
            next: 0,
        }
    }

    /// The next key to take one step from; `None` when every key ran dry.
    pub fn next_key(&mut self) -> Option<(usize, &str)> {
        for _ in 0..self.keys.len() {
            let i = self.next;
            self.next = (self.next + 1) % self.keys.len().max(1);
            if self.live[i] {
                return Some((i, &self.keys[i]));
            }
        }
        None
    }

    /// Key `i` had nothing left to claim.
    pub fn dry(&mut self, i: usize) {
        self.live[i] = false;
    }

    /// How many of the `left` steps still wanted one key's turn takes: an even
    /// share of the keys still live, at least one. One key with a backlog is then
    /// claimed in one statement, as a plain claim would.
    pub fn share(&self, left: usize) -> usize {
        let live = self.live.iter().filter(|l| **l).count().max(1);
        (left / live).max(1)
    }
}

/// How many steps each of the `keys` least recently served keys may give a claim
/// that wants `want`: an even share, the first keys one more when it does not
/// divide; keys past `want` get no turn this claim.
pub(crate) fn fair_shares(keys: usize, want: usize) -> Vec<i32> {
    let turns = keys.min(want).max(1);
    (0..turns)
        .map(|i| (want / turns + usize::from(i < want % turns)) as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_rounds_take_one_per_key_in_turn_and_skip_dry_keys() {
        let mut rounds = FairRounds::new(vec!["b".into(), "a".into(), "c".into()]);
        let mut order = Vec::new();
        for _ in 0..5 {
            let (i, key) = rounds.next_key().unwrap();
            order.push(key.to_string());
            if key == "a" {
                rounds.dry(i);
            }
        }
        assert_eq!(order, ["b", "a", "c", "b", "c"]);
        assert_eq!(rounds.share(10), 5, "two keys still live");
    }

    #[test]
    fn shares_split_a_claim_evenly_least_recently_served_first() {
        assert_eq!(fair_shares(1, 24), vec![24]);
        assert_eq!(fair_shares(16, 24), [vec![2; 8], vec![1; 8]].concat());
        assert_eq!(fair_shares(30, 4), vec![1, 1, 1, 1]);
    }

    #[test]
    fn settings_are_checked() {
        let rate = Rate {
            limit: 10,
            per_ms: 1000,
            burst: 1,
        };
        check_setting("k", &rate).unwrap();
        assert!(check_setting("", &rate).is_err());
        assert!(check_setting("k", &Rate { limit: 0, ..rate }).is_err());
        assert!(check_setting("k", &Rate { per_ms: 0, ..rate }).is_err());
        assert!(check_setting("k", &Rate { burst: 0, ..rate }).is_err());
    }
}
