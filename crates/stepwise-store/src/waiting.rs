//! The decisions about waiting steps both backends make, so each keeps only its SQL:
//! what parking a step does given the database's now and its mailbox, and what a
//! wait that ran out of time turns into.

pub(crate) mod flow;

use crate::model::{SleepUntil, WaitFor, CALLBACK_TIMEOUT_ERROR};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;

/// How a waiting step is stored: its kind (`wait_kind`).
pub(crate) const SLEEP: &str = "sleep";
pub(crate) const SIGNAL: &str = "signal";
pub(crate) const CALLBACK: &str = "callback";
pub(crate) const CHILD: &str = "child";

/// What parking a step does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ParkPlan {
    /// Complete the step now with this output.
    Complete(Value),
    /// Fail the attempt now (a callback whose attempt's time is already up).
    Fail { error: String, retryable: bool },
    /// Store the step as waiting.
    Wait(Waiting),
}

/// A step's wait as stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Waiting {
    pub kind: &'static str,
    pub signal: Option<String>,
    pub until: Option<DateTime<Utc>>,
}

impl Waiting {
    /// The `step.waiting` event's data: `{"until"?, "signal"?, "callback"?}`.
    pub fn event_data(&self, attempt: i64) -> Value {
        let mut data = serde_json::Map::new();
        if let Some(until) = self.until {
            data.insert("until".into(), json!(until));
        }
        if let Some(signal) = &self.signal {
            data.insert("signal".into(), json!(signal));
        }
        if self.kind == CALLBACK {
            data.insert("callback".into(), json!({ "attempt": attempt }));
        }
        Value::Object(data)
    }
}

/// What the store knows when it parks a step.
pub(crate) struct ParkFacts<'a> {
    pub now: DateTime<Utc>,
    /// When the attempt started (a callback's timeout counts from there).
    pub started_at: Option<DateTime<Utc>>,
    /// The data of the oldest unconsumed signal the wait would take, if any.
    pub mailbox: Option<&'a Value>,
}

/// Decides what parking `wait` does. A sleep already due completes at once, so does a
/// wait whose signal is already in the mailbox; a callback whose attempt's time is up
/// fails the attempt like any timeout.
pub(crate) fn plan_park(wait: &WaitFor, facts: &ParkFacts) -> ParkPlan {
    match wait {
        WaitFor::Sleep(until) => {
            let until = match until {
                SleepUntil::After(d) => add(facts.now, *d),
                SleepUntil::At(t) => *t,
            };
            if until <= facts.now {
                ParkPlan::Complete(Value::Null)
            } else {
                ParkPlan::Wait(Waiting {
                    kind: SLEEP,
                    signal: None,
                    until: Some(until),
                })
            }
        }
        WaitFor::Signal { name, timeout } => match facts.mailbox {
            Some(data) => ParkPlan::Complete(data.clone()),
            None => ParkPlan::Wait(Waiting {
                kind: SIGNAL,
                signal: Some(name.clone()),
                until: timeout.map(|t| add(facts.now, t)),
            }),
        },
        WaitFor::Callback { timeout } => {
            let until = timeout.map(|t| add(facts.started_at.unwrap_or(facts.now), t));
            match until {
                Some(until) if until <= facts.now => ParkPlan::Fail {
                    error: CALLBACK_TIMEOUT_ERROR.into(),
                    retryable: true,
                },
                until => ParkPlan::Wait(Waiting {
                    kind: CALLBACK,
                    signal: None,
                    until,
                }),
            }
        }
        // Decided with the child's state by `plan_child`; without it, the step waits.
        WaitFor::Child(_) => ParkPlan::Wait(Waiting {
            kind: CHILD,
            signal: None,
            until: None,
        }),
    }
}

/// What a `run` step does with the child its key found (or just created).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ChildPlan {
    /// The child runs: the step waits for it.
    Wait,
    /// The child completed: the step completes with its outputs.
    Complete,
    /// The child ended unsuccessfully before this attempt (a retried parent): it
    /// is retried too, and the step waits for it.
    Retry,
    /// The child ended in a way a retry cannot reopen: the step fails for good.
    Fail(String),
}

pub(crate) fn plan_child(
    child: stepwise_core::RunId,
    status: stepwise_core::RunStatus,
    error: Option<&str>,
) -> ChildPlan {
    use stepwise_core::RunStatus;
    match status {
        RunStatus::Completed => ChildPlan::Complete,
        s if !s.is_terminal() => ChildPlan::Wait,
        s if crate::retry_plan::retryable(s) => ChildPlan::Retry,
        s => ChildPlan::Fail(child_error(child, s, error)),
    }
}

/// Why a `run` step failed: its child ended without completing.
pub(crate) fn child_error(
    child: stepwise_core::RunId,
    status: stepwise_core::RunStatus,
    error: Option<&str>,
) -> String {
    match error {
        Some(error) => format!("child run {child} ended {}: {error}", status.as_str()),
        None => format!("child run {child} ended {}", status.as_str()),
    }
}

/// The idempotency key of the child a step named `step` (`STEP` or `STEP[i]`) starts.
pub(crate) fn child_key(parent: stepwise_core::RunId, step: &str) -> String {
    use stepwise_core::spec::{child, fan_out};
    let run = parent.to_string();
    match fan_out::split_item_name(step) {
        Some((name, index)) => child::child_key(&run, name, Some(index)),
        None => child::child_key(&run, step, None),
    }
}

/// What a wait whose time ran out becomes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WakePlan {
    /// A sleep ended: the step completes with `null`.
    Complete,
    /// A signal wait timed out (for good) or a callback's attempt expired (retried).
    Fail { error: String, retryable: bool },
}

/// Decides what a due wait of `kind` becomes; `None` for a kind this version does
/// not know (left alone rather than guessed at).
pub(crate) fn plan_wake(kind: &str, signal: Option<&str>) -> Option<WakePlan> {
    match kind {
        SLEEP => Some(WakePlan::Complete),
        SIGNAL => Some(WakePlan::Fail {
            error: crate::model::signal_timeout_error(signal.unwrap_or("?")),
            retryable: false,
        }),
        CALLBACK => Some(WakePlan::Fail {
            error: CALLBACK_TIMEOUT_ERROR.into(),
            retryable: true,
        }),
        _ => None,
    }
}

/// Signal names follow the rules of step names; ids and data are bounded.
pub(crate) fn check_signal(request: &crate::model::SignalRequest) -> crate::Result<()> {
    use crate::StoreError::InvalidInput;
    if !stepwise_core::spec::valid_name(&request.name) {
        return Err(InvalidInput(format!(
            "signal name {:?} is not valid: use 1-128 letters, digits, '-', '_' or '.'",
            request.name
        )));
    }
    if let Some(id) = &request.id {
        if id.is_empty() || id.len() > 256 || id.contains('\0') {
            return Err(InvalidInput(
                "signal id must be 1-256 characters without NUL".into(),
            ));
        }
    }
    Ok(())
}

/// `now + d`, saturating far in the future rather than overflowing.
fn add(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn facts(mailbox: Option<&Value>) -> ParkFacts<'_> {
        ParkFacts {
            now: at(0),
            started_at: Some(at(-30)),
            mailbox,
        }
    }

    #[test]
    fn a_due_sleep_completes_at_once_and_a_later_one_waits() {
        let past = WaitFor::Sleep(SleepUntil::At(at(-1)));
        assert_eq!(
            plan_park(&past, &facts(None)),
            ParkPlan::Complete(Value::Null)
        );
        let later = WaitFor::Sleep(SleepUntil::After(Duration::from_secs(10)));
        let ParkPlan::Wait(w) = plan_park(&later, &facts(None)) else {
            panic!("waits")
        };
        assert_eq!((w.kind, w.until), (SLEEP, Some(at(10))));
    }

    #[test]
    fn a_signal_already_in_the_mailbox_ends_the_wait_before_it_begins() {
        let wait = WaitFor::Signal {
            name: "approved".into(),
            timeout: Some(Duration::from_secs(60)),
        };
        let data = json!({"by": "ann"});
        assert_eq!(
            plan_park(&wait, &facts(Some(&data))),
            ParkPlan::Complete(data.clone())
        );
        let ParkPlan::Wait(w) = plan_park(&wait, &facts(None)) else {
            panic!("waits")
        };
        assert_eq!(w.until, Some(at(60)));
        assert_eq!(
            w.event_data(1),
            json!({"until": at(60), "signal": "approved"})
        );
    }

    #[test]
    fn a_callback_timeout_counts_from_the_attempt_start() {
        let wait = WaitFor::Callback {
            timeout: Some(Duration::from_secs(40)),
        };
        let ParkPlan::Wait(w) = plan_park(&wait, &facts(None)) else {
            panic!("waits")
        };
        assert_eq!(w.until, Some(at(10)));
        let late = WaitFor::Callback {
            timeout: Some(Duration::from_secs(20)),
        };
        assert!(matches!(
            plan_park(&late, &facts(None)),
            ParkPlan::Fail {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn a_timed_out_signal_wait_fails_for_good_and_an_expired_callback_retries() {
        assert_eq!(
            plan_wake(SIGNAL, Some("go")),
            Some(WakePlan::Fail {
                error: "timed out waiting for signal go".into(),
                retryable: false
            })
        );
        assert!(matches!(
            plan_wake(CALLBACK, None),
            Some(WakePlan::Fail {
                retryable: true,
                ..
            })
        ));
        assert_eq!(plan_wake(SLEEP, None), Some(WakePlan::Complete));
        assert_eq!(plan_wake("teleport", None), None);
    }
}
