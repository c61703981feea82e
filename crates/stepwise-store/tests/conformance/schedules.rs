//! Schedules: each fire time creates one run however many processes fire at once;
//! catch-up, daylight saving, overlaps, pause, removal and backfill behave as
//! docs/design.md says. Time moves through the clock seam, never by sleeping.

use crate::support::*;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use stepwise_core::{Catchup, EventKind, Overlap, Recurrence, RunStatus, ScheduleSpec};
use stepwise_store::*;

fn every(name: &str, workflow: &str, secs: u64) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        workflow: workflow.into(),
        recurrence: Recurrence::EveryMs(secs * 1000),
        timezone: "UTC".into(),
        input: json!({"from": name}),
        overlap: Overlap::Allow,
        catchup: Catchup::All,
    }
}

fn cron(name: &str, workflow: &str, expr: &str, tz: &str) -> ScheduleSpec {
    ScheduleSpec {
        recurrence: Recurrence::Cron(expr.into()),
        timezone: tz.into(),
        ..every(name, workflow, 60)
    }
}

async fn sync(store: &dyn Store, workflow: &str, schedules: &[ScheduleSpec]) -> ScheduleSync {
    store
        .sync_schedules(workflow, schedules)
        .await
        .unwrap_or_else(|e| panic!("sync {workflow}: {e}"))
}

async fn fire(store: &dyn Store) -> Vec<ScheduleFire> {
    store.fire_schedules(100).await.expect("fire schedules")
}

/// Moves the database clock to `target` (forward only).
async fn advance_to(store: &dyn Store, target: DateTime<Utc>) {
    let now = store.now().await.unwrap();
    let ahead = (target - now)
        .to_std()
        .expect("the target is in the future");
    store.advance_clock(ahead).await.unwrap();
}

/// Moves the clock to `offset` past the next multiple of `period` seconds.
async fn align(store: &dyn Store, period: i64, offset: i64) -> DateTime<Utc> {
    let now = store.now().await.unwrap().timestamp();
    let target = (now.div_euclid(period) + 1) * period + offset;
    let target = Utc.timestamp_opt(target, 0).unwrap();
    advance_to(store, target).await;
    target
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

async fn workflow_runs(store: &dyn Store, workflow: &str) -> Vec<RunView> {
    let mut runs = runs_of(store, workflow).await;
    runs.sort_by_key(|r| r.scheduled_for);
    runs
}

pub async fn racing_firers_create_each_fire_time_once(store: Arc<dyn Store>) {
    register(&*store, &one_step("tick")).await;
    align(&*store, 60, 5).await;
    sync(&*store, "tick", &[every("tick-every-minute", "tick", 60)]).await;
    const MINUTES: usize = 20;
    for _ in 0..MINUTES {
        store.advance_clock(secs(60)).await.unwrap();
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { fire(&*s).await })
            })
            .collect();
        let mut fired = 0;
        for r in racers {
            fired += r
                .await
                .unwrap()
                .iter()
                .filter(|f| f.outcome == FireOutcome::Fired)
                .count();
        }
        assert_eq!(fired, 1, "one fire per minute among four racers");
    }
    let runs = workflow_runs(&*store, "tick").await;
    assert_eq!(runs.len(), MINUTES);
    let times: Vec<_> = runs.iter().map(|r| r.scheduled_for.unwrap()).collect();
    assert!(
        times
            .windows(2)
            .all(|w| w[1] - w[0] == chrono::Duration::minutes(1)),
        "no gap and no duplicate: {times:?}"
    );
    let keys: HashSet<_> = runs
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(keys.len(), MINUTES);
    assert!(runs
        .iter()
        .all(|r| r.schedule.as_deref() == Some("tick-every-minute")));
    let run = get_run(&*store, runs[0].id).await;
    assert_eq!(run.input, json!({"from": "tick-every-minute"}));
    assert_eq!(
        run.idempotency_key.as_deref(),
        Some(stepwise_core::schedule::run_key("tick-every-minute", times[0]).as_str())
    );
}

pub async fn catchup_none_latest_and_all_after_a_long_gap(store: Arc<dyn Store>) {
    for w in ["n", "l", "a", "cap"] {
        register(&*store, &one_step(w)).await;
    }
    let start = align(&*store, 3600, 60).await;
    let mut none = every("hourly-none", "n", 3600);
    none.catchup = Catchup::None;
    let mut latest = every("hourly-latest", "l", 3600);
    latest.catchup = Catchup::Latest;
    let all = every("hourly-all", "a", 3600);
    let cap = every("minutely-all", "cap", 60);
    for s in [&none, &latest, &all, &cap] {
        sync(&*store, &s.workflow, std::slice::from_ref(s)).await;
    }
    // Ten and a half hours without any process running.
    advance_to(&*store, start + chrono::Duration::minutes(10 * 60 + 29)).await;
    let fires = fire(&*store).await;
    let of = |name: &str| fires.iter().filter(|f| f.schedule == name).count();
    assert_eq!(of("hourly-none"), 0, "missed times are skipped");
    assert_eq!(of("hourly-latest"), 1);
    assert_eq!(of("hourly-all"), 10);
    assert_eq!(of("minutely-all"), 100, "all fires at most 100");
    let latest_run = &workflow_runs(&*store, "l").await[0];
    let newest = start - chrono::Duration::seconds(60) + chrono::Duration::hours(10);
    assert_eq!(latest_run.scheduled_for, Some(newest));
    let all_runs = workflow_runs(&*store, "a").await;
    assert_eq!(all_runs.last().unwrap().scheduled_for, Some(newest));
    // The hourly ones fire again at the next hour, on time.
    assert!(fire(&*store)
        .await
        .iter()
        .all(|f| f.schedule == "minutely-all"));
    advance_to(
        &*store,
        newest + chrono::Duration::hours(1) + chrono::Duration::seconds(10),
    )
    .await;
    let next = fire(&*store).await;
    assert!(
        next.iter().any(|f| f.schedule == "hourly-none"),
        "on time again"
    );
}

/// Spring forward and fall back in Europe/Paris and America/New_York (2027).
pub async fn daylight_saving_fires_each_local_time_once(store: Arc<dyn Store>) {
    let cases = [
        // (workflow, expression, zone, set up at, look at, the one fire time)
        (
            "ny-spring",
            "30 2 * * *",
            "America/New_York",
            utc(2027, 3, 13, 12, 0),
            utc(2027, 3, 14, 12, 0),
            utc(2027, 3, 14, 7, 0),
        ),
        (
            "paris-spring",
            "30 2 * * *",
            "Europe/Paris",
            utc(2027, 3, 27, 12, 0),
            utc(2027, 3, 28, 12, 0),
            utc(2027, 3, 28, 1, 0),
        ),
        (
            "paris-fall",
            "30 2 * * *",
            "Europe/Paris",
            utc(2027, 10, 30, 12, 0),
            utc(2027, 10, 31, 12, 0),
            utc(2027, 10, 31, 0, 30),
        ),
        (
            "ny-fall",
            "30 1 * * *",
            "America/New_York",
            utc(2027, 11, 6, 12, 0),
            utc(2027, 11, 7, 12, 0),
            utc(2027, 11, 7, 5, 30),
        ),
    ];
    for (workflow, expr, zone, set_up, look, expected) in cases {
        register(&*store, &one_step(workflow)).await;
        advance_to(&*store, set_up).await;
        sync(&*store, workflow, &[cron(workflow, workflow, expr, zone)]).await;
        // Every ten minutes through the night, as a poller would.
        let mut at = set_up;
        while at < look {
            at += chrono::Duration::minutes(10);
            advance_to(&*store, at).await;
            fire(&*store).await;
        }
        let runs = workflow_runs(&*store, workflow).await;
        let times: Vec<_> = runs.iter().filter_map(|r| r.scheduled_for).collect();
        assert_eq!(times, vec![expected], "{workflow}");
        sync(&*store, workflow, &[]).await;
    }
}

pub async fn overlap_skip_queue_and_allow(store: Arc<dyn Store>) {
    let w = worker(&*store, secs(600)).await;
    let mut specs = vec![];
    for (name, overlap) in [
        ("skip", Overlap::Skip),
        ("queue", Overlap::Queue),
        ("allow", Overlap::Allow),
    ] {
        register(&*store, &one_step(name)).await;
        let mut s = every(name, name, 60);
        s.overlap = overlap;
        specs.push(s);
    }
    align(&*store, 60, 1).await;
    for s in &specs {
        sync(&*store, &s.workflow, std::slice::from_ref(s)).await;
    }
    for _ in 0..2 {
        store.advance_clock(secs(60)).await.unwrap();
        fire(&*store).await;
    }
    let skip = workflow_runs(&*store, "skip").await;
    assert_eq!(
        skip.len(),
        1,
        "the second fire was skipped while the first ran"
    );
    let queue = workflow_runs(&*store, "queue").await;
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[0].status, RunStatus::Running);
    assert_eq!(
        queue[1].status,
        RunStatus::Pending,
        "queued behind the first"
    );
    let allow = workflow_runs(&*store, "allow").await;
    assert_eq!(
        allow
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .count(),
        2
    );
    let events = events_when(&*store, None, "schedule.skipped", |e| {
        count(e, EventKind::ScheduleSkipped) >= 1
    })
    .await;
    assert_eq!(count(&events, EventKind::ScheduleSkipped), 1);
    // Finishing the first queued run lets the second in (drained too), and the next
    // skip fire runs.
    drain(&*store, w).await;
    let queue = workflow_runs(&*store, "queue").await;
    assert!(
        queue.iter().all(|r| r.status == RunStatus::Completed),
        "{queue:?}"
    );
    store.advance_clock(secs(60)).await.unwrap();
    fire(&*store).await;
    assert_eq!(workflow_runs(&*store, "skip").await.len(), 2);
}

pub async fn pause_resume_and_removal(store: Arc<dyn Store>) {
    register(&*store, &one_step("p")).await;
    align(&*store, 60, 1).await;
    let mut s = every("p-minutely", "p", 60);
    s.catchup = Catchup::Latest;
    sync(&*store, "p", &[s.clone()]).await;
    let paused = store
        .set_schedule_paused("p-minutely", true)
        .await
        .unwrap()
        .unwrap();
    assert!(paused.paused);
    store.advance_clock(secs(300)).await.unwrap();
    assert!(
        fire(&*store).await.is_empty(),
        "a paused schedule does not fire"
    );
    assert!(store
        .set_schedule_paused("nope", true)
        .await
        .unwrap()
        .is_none());
    store
        .set_schedule_paused("p-minutely", false)
        .await
        .unwrap();
    let fires = fire(&*store).await;
    assert_eq!(
        fires.len(),
        1,
        "resumed: the missed times follow catchup = latest"
    );
    // Applying the same file again changes nothing (not even the pause state).
    store.set_schedule_paused("p-minutely", true).await.unwrap();
    let again = sync(&*store, "p", &[s.clone()]).await;
    assert_eq!(again.unchanged, vec!["p-minutely"]);
    assert!(store.list_schedules().await.unwrap()[0].paused);
    store
        .set_schedule_paused("p-minutely", false)
        .await
        .unwrap();
    // Removed from the file: it fires no more.
    let removed = sync(&*store, "p", &[]).await;
    assert_eq!(removed.removed, vec!["p-minutely"]);
    store.advance_clock(secs(600)).await.unwrap();
    assert!(fire(&*store).await.is_empty());
    assert!(store.list_schedules().await.unwrap().is_empty());
    // Names are global.
    register(&*store, &one_step("q")).await;
    sync(&*store, "q", &[every("shared", "q", 60)]).await;
    let taken = store.sync_schedules("p", &[every("shared", "p", 60)]).await;
    assert!(
        matches!(taken, Err(StoreError::InvalidInput(_))),
        "{taken:?}"
    );
}

pub async fn backfill_creates_exactly_the_listed_fire_times_once(store: Arc<dyn Store>) {
    register(&*store, &one_step("b")).await;
    sync(&*store, "b", &[every("b-hourly", "b", 3600)]).await;
    let from = utc(2026, 6, 1, 0, 0);
    let to = utc(2026, 6, 1, 5, 30);
    let backfill = Backfill {
        schedule: "b-hourly".into(),
        from,
        to,
    };
    let first = store.backfill_schedule(&backfill).await.unwrap().unwrap();
    let times: Vec<_> = first.iter().map(|f| f.fire_time).collect();
    assert_eq!(
        times,
        (0..6)
            .map(|h| from + chrono::Duration::hours(h))
            .collect::<Vec<_>>()
    );
    assert!(first.iter().all(|f| f.outcome == FireOutcome::Fired));
    let again = store.backfill_schedule(&backfill).await.unwrap().unwrap();
    assert!(again.iter().all(|f| f.outcome == FireOutcome::Existing));
    assert_eq!(
        again.iter().map(|f| f.run_id).collect::<Vec<_>>(),
        first.iter().map(|f| f.run_id).collect::<Vec<_>>()
    );
    assert_eq!(workflow_runs(&*store, "b").await.len(), 6);
    let huge = Backfill {
        schedule: "b-hourly".into(),
        from,
        to: from + chrono::Duration::days(365),
    };
    assert!(matches!(
        store.backfill_schedule(&huge).await,
        Err(StoreError::InvalidInput(_))
    ));
    let missing = Backfill {
        schedule: "nope".into(),
        from,
        to,
    };
    assert!(store.backfill_schedule(&missing).await.unwrap().is_none());
    // A trigger is one extra run now.
    let now = store.now().await.unwrap();
    let triggered = store.trigger_schedule("b-hourly").await.unwrap().unwrap();
    assert_eq!(triggered.outcome, FireOutcome::Fired);
    assert!((triggered.fire_time - now).num_seconds().abs() < 60);
    let listed = store.list_schedules().await.unwrap();
    assert_eq!(listed[0].last_fire_at, Some(triggered.fire_time));
    assert_eq!(listed[0].recent_runs[0].run_id, triggered.run_id.unwrap());
    assert_eq!(workflow_runs(&*store, "b").await.len(), 7);
    let events = events_when(&*store, None, "7 schedule.fired", |e| {
        count(e, EventKind::ScheduleFired) >= 7
    })
    .await;
    assert_eq!(count(&events, EventKind::ScheduleFired), 7);
}
