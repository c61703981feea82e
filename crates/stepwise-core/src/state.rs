//! Run and step states, and which transitions between them are allowed.
//!
//! The table here is the single source of truth: backends write only transitions it
//! allows, and the conformance suite checks stored histories against it.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The storage and wire form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the storage form.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// The state of a run (docs/design.md "States").
    RunStatus {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
        TimedOut => "timed_out",
        Compensating => "compensating",
        Compensated => "compensated",
        CompensationFailed => "compensation_failed",
    }
);

text_enum!(
    /// The state of a step as stored. `Scheduled` (waiting out a backoff or a delayed
    /// start) is kept apart from `Pending` so that the claim index holds only rows that
    /// can be claimed now; it is shown to people as `pending` with its `run_after`.
    StepStatus {
        Blocked => "blocked",
        Pending => "pending",
        Scheduled => "scheduled",
        Running => "running",
        Waiting => "waiting",
        Completed => "completed",
        Failed => "failed",
        Skipped => "skipped",
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// Whether nothing more will happen to the run without an operator's retry.
    pub fn is_terminal(self) -> bool {
        use RunStatus::*;
        matches!(
            self,
            Completed | Failed | Cancelled | TimedOut | Compensated | CompensationFailed
        )
    }

    /// Whether the run may move from `self` to `to`.
    pub fn can_become(self, to: RunStatus) -> bool {
        use RunStatus::*;
        match (self, to) {
            (Pending, Running | Cancelled | TimedOut) => true,
            (Running, Completed | Failed | Cancelled | TimedOut | Compensating) => true,
            (Compensating, Compensated | CompensationFailed) => true,
            // `runs retry` reopens a terminal run: it queues again for admission.
            (from, Pending | Running) if from.is_terminal() && from != Completed => true,
            _ => false,
        }
    }
}

impl StepStatus {
    /// Whether the step will not change again within this run attempt.
    pub fn is_terminal(self) -> bool {
        use StepStatus::*;
        matches!(self, Completed | Failed | Skipped | Cancelled)
    }

    /// The state shown by the CLI and the API: `scheduled` is reported as `pending`.
    pub fn public(self) -> StepStatus {
        match self {
            StepStatus::Scheduled => StepStatus::Pending,
            other => other,
        }
    }

    /// Whether the step may move from `self` to `to`.
    pub fn can_become(self, to: StepStatus) -> bool {
        use StepStatus::*;
        match (self, to) {
            (Blocked, Pending) => true,
            (Pending, Running) => true,
            (Scheduled, Pending) => true,
            (Running, Completed | Failed) => true,
            // A sleep, a wait for a signal or for a callback: no worker, no lease. It
            // wakes completed, failed (timeout, callback error) or, for a callback
            // whose attempt failed with attempts left, back to the queue.
            (Running, Waiting) => true,
            (Waiting, Completed | Failed | Pending | Scheduled) => true,
            // Error with attempts left (after backoff), released on shutdown, reaped.
            (Running, Pending | Scheduled) => true,
            // The run stopped early: unstarted steps are skipped (run failed) or
            // cancelled (run cancelled or timed out); a running one may be cancelled.
            (Blocked | Pending | Scheduled | Waiting, Skipped | Cancelled) => true,
            (Running, Cancelled) => true,
            // Released or reaped while its run halts: it never runs again.
            (Running, Skipped) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(*s));
        }
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(StepStatus::parse("exploded"), None);
    }

    #[test]
    fn terminal_steps_never_move() {
        for from in StepStatus::ALL.iter().filter(|s| s.is_terminal()) {
            for to in StepStatus::ALL {
                assert!(!from.can_become(*to), "{from} -> {to} must be refused");
            }
        }
    }

    #[test]
    fn a_step_is_claimed_only_from_pending() {
        for from in StepStatus::ALL {
            assert_eq!(
                from.can_become(StepStatus::Running),
                *from == StepStatus::Pending,
                "{from} -> running"
            );
        }
    }

    #[test]
    fn completed_runs_are_final_and_others_can_be_retried() {
        for to in RunStatus::ALL {
            assert!(!RunStatus::Completed.can_become(*to));
        }
        assert!(RunStatus::Failed.can_become(RunStatus::Pending));
        assert!(RunStatus::CompensationFailed.can_become(RunStatus::Running));
        assert!(!RunStatus::Compensating.can_become(RunStatus::Completed));
        assert!(!RunStatus::Pending.can_become(RunStatus::Completed));
    }

    #[test]
    fn scheduled_is_shown_as_pending() {
        assert_eq!(StepStatus::Scheduled.public(), StepStatus::Pending);
        assert_eq!(StepStatus::Running.public(), StepStatus::Running);
    }
}
