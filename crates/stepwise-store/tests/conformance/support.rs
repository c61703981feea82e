//! Small helpers shared by the cases. They unwrap: a storage error fails the case.

use serde_json::json;
use std::time::{Duration, Instant};
use stepwise_core::spec::{RunPolicy, StepDefaults};
use stepwise_core::{Backoff, EventKind, RunId, StepSpec, WorkerId, WorkflowSpec};
use stepwise_store::*;

pub const DEFAULT_QUEUE: &str = "default";

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn workflow(name: &str, steps: Vec<StepSpec>) -> WorkflowSpec {
    WorkflowSpec {
        name: name.into(),
        defaults: StepDefaults::default(),
        run: RunPolicy::default(),
        steps,
    }
}

/// A step after the previous one (a pipeline), or the first step.
pub fn step(name: &str) -> StepSpec {
    StepSpec::handler(name, "noop")
}

/// A step with no dependencies wherever it stands.
pub fn root(name: &str) -> StepSpec {
    after(name, &[])
}

pub fn after(name: &str, deps: &[&str]) -> StepSpec {
    let mut s = step(name);
    s.after = Some(deps.iter().map(|d| d.to_string()).collect());
    s
}

/// `max_attempts` attempts, the first retry after `initial`, doubling up to 10x.
pub fn retrying(mut s: StepSpec, max_attempts: u32, initial: Duration) -> StepSpec {
    s.max_attempts = Some(max_attempts);
    s.backoff = Some(Backoff {
        initial,
        factor: 2.0,
        max: initial * 10,
    });
    s
}

pub fn one_step(name: &str) -> WorkflowSpec {
    workflow(name, vec![step("only")])
}

pub async fn register(store: &dyn Store, spec: &WorkflowSpec) -> WorkflowVersion {
    store
        .register_workflow(spec)
        .await
        .unwrap_or_else(|e| panic!("register {}: {e}", spec.name))
}

/// Creates `n` runs of `workflow` in one batch; all must be new.
pub async fn start(store: &dyn Store, workflow: &str, n: usize) -> Vec<RunId> {
    let runs = (0..n)
        .map(|i| NewRun::new(workflow, json!({ "i": i })))
        .collect();
    create(store, RunBatch { group: None, runs }).await
}

/// Creates a batch whose runs must all be new.
pub async fn create(store: &dyn Store, batch: RunBatch) -> Vec<RunId> {
    let n = batch.runs.len();
    let created = store.create_runs(batch).await.expect("create runs");
    assert_eq!(created.len(), n, "one answer per run of the batch");
    assert!(
        created.iter().all(|c| c.created),
        "every run is new: {created:?}"
    );
    created.into_iter().map(|c| c.id).collect()
}

pub async fn worker(store: &dyn Store, lease: Duration) -> WorkerId {
    store
        .register_worker(&WorkerRegistration {
            name: format!("test-worker-{}", uuid::Uuid::new_v4().simple()),
            queues: vec![DEFAULT_QUEUE.into()],
            lease,
        })
        .await
        .expect("register worker")
        .id
}

pub async fn claim(store: &dyn Store, worker: WorkerId, limit: u32) -> Vec<ClaimedStep> {
    claim_from(store, worker, &[DEFAULT_QUEUE], limit).await
}

pub async fn claim_from(
    store: &dyn Store,
    worker: WorkerId,
    queues: &[&str],
    limit: u32,
) -> Vec<ClaimedStep> {
    let claimed = store
        .claim_steps(&ClaimRequest {
            worker,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            limit,
        })
        .await
        .expect("claim steps");
    assert!(
        claimed.len() <= limit as usize,
        "asked for at most {limit} steps, got {}",
        claimed.len()
    );
    claimed
}

pub fn success(c: &ClaimedStep) -> StepSuccess {
    StepSuccess {
        lease: c.lease,
        output: json!({ "step": c.step, "attempt": c.attempt }),
        log: None,
    }
}

pub async fn complete(store: &dyn Store, claimed: &[ClaimedStep]) -> BatchReport {
    let outcomes: Vec<StepSuccess> = claimed.iter().map(success).collect();
    store
        .complete_steps(&outcomes)
        .await
        .expect("complete steps")
}

/// Completes and checks that every outcome was accepted.
pub async fn complete_all(store: &dyn Store, claimed: &[ClaimedStep]) -> BatchReport {
    let report = complete(store, claimed).await;
    assert!(report.refused.is_empty(), "refused: {:?}", report.refused);
    assert_eq!(report.accepted.len(), claimed.len());
    report
}

pub async fn fail(store: &dyn Store, c: &ClaimedStep, retryable: bool, error: &str) -> FailOutcome {
    store
        .fail_step(&StepFailure {
            lease: c.lease,
            error: error.into(),
            retryable,
            log: Some(format!("log: {error}")),
            retry_after: None,
        })
        .await
        .expect("fail step")
}

/// Claims and completes until nothing is claimable; returns what it completed.
pub async fn drain(store: &dyn Store, worker: WorkerId) -> Vec<ClaimedStep> {
    let mut done = Vec::new();
    loop {
        let batch = claim(store, worker, 100).await;
        if batch.is_empty() {
            return done;
        }
        complete_all(store, &batch).await;
        done.extend(batch);
    }
}

pub async fn get_run(store: &dyn Store, id: RunId) -> RunView {
    store
        .get_run(id)
        .await
        .expect("get run")
        .unwrap_or_else(|| panic!("run {id} exists"))
}

pub fn step_of<'a>(run: &'a RunView, name: &str) -> &'a StepView {
    run.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("run {} has a step {name:?}", run.id))
}

/// Every run of `workflow`, newest first.
pub async fn runs_of(store: &dyn Store, workflow: &str) -> Vec<RunView> {
    store
        .list_runs(RunFilter {
            workflow: Some(workflow.into()),
            ..RunFilter::default()
        })
        .await
        .expect("list runs")
        .runs
}

/// The whole event stream (or one run's), page by page.
pub async fn read_all_events(store: &dyn Store, run: Option<RunId>) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let page = store
            .read_events(&EventQuery {
                after: events.last().map(|e| e.cursor.clone()),
                run,
                limit: 500,
            })
            .await
            .expect("read events");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// Reads events until `ready` holds. PostgreSQL serves an event only once every older
/// transaction in the database has ended, so a just-committed event may show up a
/// moment later; `ready` should name the event of the last transaction the case made,
/// after which everything older is served too.
pub async fn events_when(
    store: &dyn Store,
    run: Option<RunId>,
    what: &str,
    ready: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = read_all_events(store, run).await;
        if ready(&events) {
            return events;
        }
        if Instant::now() > deadline {
            let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
            panic!("timed out waiting for events: {what}; the stream holds {kinds:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run's events once its terminal event (`run.completed`, `run.failed`...) is served.
pub async fn run_events(store: &dyn Store, run: RunId, terminal: EventKind) -> Vec<Event> {
    events_when(store, Some(run), terminal.as_str(), |e| {
        count(e, terminal) > 0
    })
    .await
}

pub fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}
