//! Lifecycle event kinds, as written to the event table (the transactional outbox).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! event_kinds {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// Every kind of event Stepwise writes. The text form is the wire and storage form.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $(#[serde(rename = $text)] $variant,)+
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)+];

            /// The dotted name, e.g. `step.completed`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $text,)+
                }
            }

            /// Parses the dotted name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(EventKind::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    RunCreated => "run.created",
    RunStarted => "run.started",
    StepStarted => "step.started",
    StepCompleted => "step.completed",
    StepFailed => "step.failed",
    StepRetrying => "step.retrying",
    StepReleased => "step.released",
    StepReaped => "step.reaped",
    StepSkipped => "step.skipped",
    StepCancelled => "step.cancelled",
    StepWaiting => "step.waiting",
    SignalReceived => "signal.received",
    ScheduleFired => "schedule.fired",
    ScheduleSkipped => "schedule.skipped",
    RunCompleted => "run.completed",
    RunFailed => "run.failed",
    RunCancelled => "run.cancelled",
    RunTimedOut => "run.timed_out",
    RunCompensating => "run.compensating",
    RunCompensated => "run.compensated",
    RunCompensationFailed => "run.compensation_failed",
    RunRetried => "run.retried",
    GroupCompleted => "group.completed",
    LockAcquired => "lock.acquired",
    LockReleased => "lock.released",
    LockForceReleased => "lock.force_released",
    WorkerReaped => "worker.reaped",
    LimitPaused => "limit.paused",
    LimitResumed => "limit.resumed",
}

// By hand: the derive cannot read the dotted names the macro gives each variant.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for EventKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EventKind::ALL.iter().map(|k| k.as_str())))
            .description(Some("The kind of lifecycle event, e.g. `step.completed`."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for EventKind {}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(EventKind::parse("run.exploded"), None);
    }
}
