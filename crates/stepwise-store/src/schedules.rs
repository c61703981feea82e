//! The decisions about schedules both backends make, so each keeps only its SQL:
//! what `apply` changes, which run a fire time starts, and what an overlap does.

pub(crate) mod firing;

use crate::model::{Backfill, NewRun, ScheduleSync, MAX_BACKFILL};
use crate::{Result, StoreError};
use std::collections::HashMap;
use stepwise_core::schedule::{run_key, Timetable};
use stepwise_core::{Overlap, RunStatus, ScheduleSpec};

/// A stored schedule as `sync_schedules` reads it.
pub(crate) struct StoredSchedule {
    pub name: String,
    pub workflow: String,
    pub spec: ScheduleSpec,
}

/// What `sync_schedules` writes.
pub(crate) struct SyncPlan<'a> {
    pub create: Vec<(&'a ScheduleSpec, Timetable)>,
    pub update: Vec<(&'a ScheduleSpec, Timetable)>,
    pub remove: Vec<String>,
    pub report: ScheduleSync,
}

/// Compares a workflow file's schedules with what is stored: `stored` holds the
/// workflow's schedules and any other schedule with one of the file's names.
pub(crate) fn plan_sync<'a>(
    workflow: &str,
    wanted: &'a [ScheduleSpec],
    stored: &[StoredSchedule],
) -> Result<SyncPlan<'a>> {
    let by_name: HashMap<&str, &StoredSchedule> =
        stored.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut plan = SyncPlan {
        create: vec![],
        update: vec![],
        remove: vec![],
        report: ScheduleSync::default(),
    };
    for spec in wanted {
        if spec.workflow != workflow {
            return Err(StoreError::InvalidInput(format!(
                "schedule {:?} names workflow {:?}, not {workflow:?}",
                spec.name, spec.workflow
            )));
        }
        let timetable = spec
            .validate()
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        match by_name.get(spec.name.as_str()) {
            Some(other) if other.workflow != workflow => {
                return Err(StoreError::InvalidInput(format!(
                    "schedule {:?} belongs to workflow {:?}: schedule names are global",
                    spec.name, other.workflow
                )))
            }
            Some(same) if same.spec == *spec => plan.report.unchanged.push(spec.name.clone()),
            Some(_) => {
                plan.report.updated.push(spec.name.clone());
                plan.update.push((spec, timetable));
            }
            None => {
                plan.report.created.push(spec.name.clone());
                plan.create.push((spec, timetable));
            }
        }
    }
    for s in stored {
        if s.workflow == workflow && !wanted.iter().any(|w| w.name == s.name) {
            plan.remove.push(s.name.clone());
        }
    }
    plan.report.removed = plan.remove.clone();
    Ok(plan)
}

/// Whether a fire time starts a run.
#[derive(Debug, PartialEq)]
pub(crate) enum Start {
    Run(Box<NewRun>),
    /// `overlap = "skip"` and the previous run is still going.
    Skip,
}

/// How a fire starts its run.
pub(crate) struct FireRequest<'a> {
    pub spec: &'a ScheduleSpec,
    pub fire_time: chrono::DateTime<chrono::Utc>,
    /// The status of the schedule's previous run, if it had one that still exists.
    pub previous: Option<RunStatus>,
    /// Whether the workflow has its own concurrency key (which then governs).
    pub workflow_keyed: bool,
    /// An operator's trigger or backfill: starts even over a running previous run.
    pub by_hand: bool,
}

/// The run a fire time starts, or none (`overlap = "skip"`). `queue` puts the
/// schedule's runs in one FIFO line of their own (concurrency key `schedule:NAME`,
/// limit 1) unless the workflow has a concurrency key of its own.
pub(crate) fn start(request: &FireRequest) -> Start {
    let spec = request.spec;
    let running = request.previous.is_some_and(|s| !s.is_terminal());
    if spec.overlap == Overlap::Skip && running && !request.by_hand {
        return Start::Skip;
    }
    let mut run = NewRun::new(&spec.workflow, spec.input.clone())
        .idempotency_key(run_key(&spec.name, request.fire_time));
    if spec.overlap == Overlap::Queue && !request.workflow_keyed {
        run.concurrency_key = Some(format!("schedule:{}", spec.name));
    }
    Start::Run(Box::new(run))
}

/// How late a fire is, in seconds (never negative).
pub(crate) fn lag_seconds(
    fire_time: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> f64 {
    ((now - fire_time).num_milliseconds().max(0) as f64) / 1000.0
}

/// The fire times of a backfill, oldest first; more than [`MAX_BACKFILL`] is refused.
pub(crate) fn fire_times_between(
    timetable: &Timetable,
    backfill: &Backfill,
) -> Result<Vec<chrono::DateTime<chrono::Utc>>> {
    let mut times = Vec::new();
    let mut at = timetable.next_after(backfill.from - chrono::Duration::milliseconds(1));
    while let Some(t) = at.filter(|t| *t <= backfill.to) {
        if times.len() == MAX_BACKFILL {
            return Err(StoreError::InvalidInput(format!(
                "backfill of {:?}: more than {MAX_BACKFILL} fire times between {} and {}; backfill a shorter span",
                backfill.schedule, backfill.from, backfill.to
            )));
        }
        times.push(t);
        at = timetable.next_after(t);
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stepwise_core::{Catchup, Recurrence};

    fn spec(name: &str, overlap: Overlap) -> ScheduleSpec {
        ScheduleSpec {
            name: name.into(),
            workflow: "w".into(),
            recurrence: Recurrence::EveryMs(60_000),
            timezone: "UTC".into(),
            input: json!({"k": 1}),
            overlap,
            catchup: Catchup::Latest,
        }
    }

    fn request(spec: &ScheduleSpec, previous: Option<RunStatus>) -> FireRequest<'_> {
        FireRequest {
            spec,
            fire_time: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            previous,
            workflow_keyed: false,
            by_hand: false,
        }
    }

    #[test]
    fn skip_skips_only_while_the_previous_run_is_going() {
        let s = spec("s", Overlap::Skip);
        assert_eq!(start(&request(&s, Some(RunStatus::Running))), Start::Skip);
        assert!(matches!(
            start(&request(&s, Some(RunStatus::Failed))),
            Start::Run(_)
        ));
        assert!(matches!(start(&request(&s, None)), Start::Run(_)));
        let by_hand = FireRequest {
            by_hand: true,
            ..request(&s, Some(RunStatus::Running))
        };
        assert!(matches!(start(&by_hand), Start::Run(_)));
    }

    #[test]
    fn queue_lines_runs_up_on_the_schedules_own_key_unless_the_workflow_has_one() {
        let s = spec("nightly", Overlap::Queue);
        let Start::Run(run) = start(&request(&s, Some(RunStatus::Running))) else {
            panic!("queued, not skipped")
        };
        assert_eq!(run.concurrency_key.as_deref(), Some("schedule:nightly"));
        assert_eq!(
            run.idempotency_key.as_deref(),
            Some("schedule:nightly:2027-01-15T08:00:00Z")
        );
        let keyed = FireRequest {
            workflow_keyed: true,
            ..request(&s, None)
        };
        let Start::Run(run) = start(&keyed) else {
            panic!()
        };
        assert_eq!(run.concurrency_key, None);
        let Start::Run(run) = start(&request(
            &spec("a", Overlap::Allow),
            Some(RunStatus::Running),
        )) else {
            panic!()
        };
        assert_eq!(run.concurrency_key, None);
    }

    #[test]
    fn sync_creates_updates_keeps_and_removes_and_names_are_global() {
        let stored = vec![
            StoredSchedule {
                name: "a".into(),
                workflow: "w".into(),
                spec: spec("a", Overlap::Queue),
            },
            StoredSchedule {
                name: "b".into(),
                workflow: "w".into(),
                spec: spec("b", Overlap::Queue),
            },
            StoredSchedule {
                name: "gone".into(),
                workflow: "w".into(),
                spec: spec("gone", Overlap::Queue),
            },
        ];
        let wanted = vec![
            spec("a", Overlap::Queue),
            spec("b", Overlap::Skip),
            spec("c", Overlap::Allow),
        ];
        let plan = plan_sync("w", &wanted, &stored).unwrap();
        assert_eq!(plan.report.unchanged, vec!["a"]);
        assert_eq!(plan.report.updated, vec!["b"]);
        assert_eq!(plan.report.created, vec!["c"]);
        assert_eq!(plan.report.removed, vec!["gone"]);
        let theirs = vec![StoredSchedule {
            name: "a".into(),
            workflow: "other".into(),
            spec: spec("a", Overlap::Queue),
        }];
        let err = plan_sync("w", &wanted[..1], &theirs).err().unwrap();
        assert!(
            err.to_string().contains("belongs to workflow \"other\""),
            "{err}"
        );
    }
}
