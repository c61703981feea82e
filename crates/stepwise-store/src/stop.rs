//! Why a run stopped early, and the data of the event that says how a run ended, so
//! both backends record and report the same.
//!
//! A run stops early when a step fails for good, its deadline passes or it is
//! cancelled; the run keeps the reason (`halt`, first one wins, an operator's cancel
//! overrides) until a retry from a step clears it. A run that then compensates ends
//! `compensated` or `compensation_failed`, statuses that no longer say which of the
//! three it was, so its `run.compensating` event, its final event and the run itself
//! carry the reason.

use crate::{Result, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stepwise_core::RunStatus;

/// Why a run stopped before completing: the status it ends in when there is nothing
/// to compensate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A step failed for good.
    Failed,
    /// The run's deadline passed.
    TimedOut,
    /// Someone cancelled the run.
    Cancelled,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Failed => "failed",
            StopReason::TimedOut => "timed_out",
            StopReason::Cancelled => "cancelled",
        }
    }

    /// The reason a run's stored `halt` column holds (`None` while nothing stopped it).
    pub(crate) fn from_halt(halt: Option<&str>) -> Result<Option<Self>> {
        match halt {
            None => Ok(None),
            Some("failed") => Ok(Some(StopReason::Failed)),
            Some("timed_out") => Ok(Some(StopReason::TimedOut)),
            Some("cancelled") => Ok(Some(StopReason::Cancelled)),
            Some(other) => Err(StoreError::Corrupt(format!("run halt {other:?}"))),
        }
    }
}

/// The data of the event a run writes when its open steps reach zero (`run.<status>`):
/// its error if any, and, when it compensates, why it stopped.
pub(crate) fn run_event_data(
    status: RunStatus,
    error: Option<&str>,
    halt: Option<&str>,
) -> Result<Value> {
    let mut data = json!({});
    if let Some(error) = error {
        data["error"] = json!(error);
    }
    let compensates = matches!(
        status,
        RunStatus::Compensating | RunStatus::Compensated | RunStatus::CompensationFailed
    );
    if compensates {
        let reason = StopReason::from_halt(halt)?.ok_or_else(|| {
            StoreError::Corrupt(format!("a {} run with no reason", status.as_str()))
        })?;
        data["reason"] = json!(reason.as_str());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_compensating_run_says_why_it_stopped() {
        let data = run_event_data(RunStatus::Compensated, None, Some("timed_out")).unwrap();
        assert_eq!(data, json!({"reason": "timed_out"}));
        let data =
            run_event_data(RunStatus::CompensationFailed, Some("boom"), Some("failed")).unwrap();
        assert_eq!(data, json!({"error": "boom", "reason": "failed"}));
        let data = run_event_data(RunStatus::Cancelled, Some("x"), Some("cancelled")).unwrap();
        assert_eq!(data, json!({"error": "x"}));
        assert_eq!(
            run_event_data(RunStatus::Completed, None, None).unwrap(),
            json!({})
        );
        assert!(run_event_data(RunStatus::Compensating, None, None).is_err());
        assert!(StopReason::from_halt(Some("bored")).is_err());
    }
}
