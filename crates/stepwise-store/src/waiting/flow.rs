//! How a park, a signal, a callback and a wake go, once for both backends: each
//! backend implements [`WaitTx`] (its SQL inside one transaction) and these functions
//! make every decision, with [`super::plan_park`] and [`super::plan_wake`].

use super::{plan_park, plan_wake, ParkFacts, ParkPlan, Waiting, WakePlan};
use crate::model::*;
use crate::sanitize;
use crate::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stepwise_core::{EventKind, Lease, LeaseToken, RunId, RunStatus, StepId};

/// A running step locked for its park.
pub(crate) struct ParkedStep {
    pub run_id: RunId,
    pub name: String,
    pub attempt: i64,
    pub group: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// The run was cancelled or timed out while the step ran.
    pub revoked: bool,
}

/// How a wait ends, recorded like the attempt's own outcome.
pub(crate) enum WaitEnd {
    Complete(Value),
    Fail { error: String, retryable: bool },
}

/// What ending an attempt did.
pub(crate) enum Ended {
    Completed,
    Retrying(DateTime<Utc>),
    Failed,
    Refused,
}

pub(crate) struct EndedAttempt {
    pub step: String,
    pub outcome: Ended,
}

/// A signal in the mailbox.
pub(crate) struct Mail {
    pub seq: i64,
    pub data: Value,
}

/// A signal delivered before with the same sender's id.
pub(crate) struct Sent {
    pub seq: i64,
    pub name: String,
    pub consumed_by: Option<String>,
}

/// A `step.waiting` or `signal.received` event.
pub(crate) struct WaitEvent<'a> {
    pub kind: EventKind,
    pub run: RunId,
    pub step: Option<&'a str>,
    pub group: Option<&'a str>,
    pub data: Value,
}

/// One transaction of a backend, as waiting steps use it.
#[async_trait]
pub(crate) trait WaitTx: Send + Sized {
    async fn step_run(&mut self, step: StepId) -> Result<Option<RunId>>;
    /// Serializes the run's parks, signals, callbacks and wakes; taken before any row
    /// lock (PostgreSQL: an advisory lock; SQLite: the single writer already does).
    async fn lock_mailbox(&mut self, run: RunId) -> Result<()>;
    async fn lock_running(&mut self, lease: Lease) -> Result<Option<ParkedStep>>;
    async fn stop_revoked(&mut self, lease: Lease) -> Result<()>;
    async fn oldest_signal(&mut self, run: RunId, name: &str) -> Result<Option<Mail>>;
    async fn now(&mut self) -> Result<DateTime<Utc>>;
    async fn park(&mut self, step: StepId, wait: &Waiting) -> Result<()>;
    async fn event(&mut self, event: WaitEvent<'_>) -> Result<()>;
    async fn consume_signal(&mut self, seq: i64, step: &str) -> Result<()>;
    /// Ends the attempt running under `lease` through the ordinary completion or
    /// failure path (dependents, the run's end, retries, waking other workers).
    async fn end_attempt(&mut self, lease: Lease, end: WaitEnd) -> Result<EndedAttempt>;
    async fn callback_step(&mut self, hash: &str) -> Result<Option<(StepId, RunId)>>;
    /// The step's status and lease token, locked, if `hash` is its current attempt's.
    async fn lock_callback_step(
        &mut self,
        step: StepId,
        hash: &str,
    ) -> Result<Option<(String, LeaseToken)>>;
    async fn forget_callback(&mut self, step: StepId) -> Result<()>;
    /// A waiting step runs again for this transaction, under its parked lease token.
    async fn unpark(&mut self, step: StepId) -> Result<Option<LeaseToken>>;
    async fn run_by_key(&mut self, workflow: &str, key: &str) -> Result<Option<RunId>>;
    async fn create_run(&mut self, run: NewRun) -> Result<CreatedRun>;
    async fn run_of_signal(&mut self, run: RunId) -> Result<Option<(RunStatus, Option<String>)>>;
    async fn sent_signal(&mut self, run: RunId, id: &str) -> Result<Option<Sent>>;
    async fn insert_signal(
        &mut self,
        run: RunId,
        request: &SignalRequest,
        data: &Value,
    ) -> Result<i64>;
    async fn waiting_for_signal(
        &mut self,
        run: RunId,
        name: &str,
    ) -> Result<Option<(StepId, String)>>;
    /// The wait's kind and signal, locked, if the step still waits and its time passed.
    async fn lock_due_wait(&mut self, step: StepId) -> Result<Option<(String, Option<String>)>>;
    /// A run's status and error, read without a lock (a child finishing holds its
    /// run's row and then asks for its parent's mailbox lock, which a park holds).
    async fn child_state(&mut self, run: RunId) -> Result<Option<(RunStatus, Option<String>)>>;
    /// `{"step": output}` of a completed run's last steps.
    async fn child_outputs(&mut self, run: RunId) -> Result<Value>;
    /// Reopens a child that ended unsuccessfully, as `runs retry` does.
    async fn retry_child(&mut self, run: RunId) -> Result<()>;
    async fn commit(self) -> Result<()>;
}

/// `park_step`.
pub(crate) async fn park<T: WaitTx>(mut tx: T, request: &ParkRequest) -> Result<ParkOutcome> {
    let lease = request.lease;
    let Some(run) = tx.step_run(lease.step_id).await? else {
        return Ok(ParkOutcome::Refused);
    };
    tx.lock_mailbox(run).await?;
    let Some(step) = tx.lock_running(lease).await? else {
        return Ok(ParkOutcome::Refused);
    };
    if step.revoked {
        tx.stop_revoked(lease).await?;
        tx.commit().await?;
        return Ok(ParkOutcome::Stopped);
    }
    if let WaitFor::Child(child) = &request.wait {
        let outcome = start_child(&mut tx, &step, lease, child).await?;
        tx.commit().await?;
        return Ok(outcome);
    }
    let mailbox = match &request.wait {
        WaitFor::Signal { name, .. } => tx.oldest_signal(run, name).await?,
        _ => None,
    };
    let facts = ParkFacts {
        now: tx.now().await?,
        started_at: step.started_at,
        mailbox: mailbox.as_ref().map(|m| &m.data),
    };
    let outcome = match plan_park(&request.wait, &facts) {
        ParkPlan::Wait(wait) => {
            tx.park(lease.step_id, &wait).await?;
            tx.event(WaitEvent {
                kind: EventKind::StepWaiting,
                run: step.run_id,
                step: Some(&step.name),
                group: step.group.as_deref(),
                data: wait.event_data(step.attempt),
            })
            .await?;
            ParkOutcome::Waiting { until: wait.until }
        }
        ParkPlan::Complete(output) => {
            if let Some(mail) = mailbox {
                tx.consume_signal(mail.seq, &step.name).await?;
            }
            tx.end_attempt(lease, WaitEnd::Complete(output)).await?;
            ParkOutcome::Completed
        }
        ParkPlan::Fail { error, retryable } => {
            tx.end_attempt(lease, WaitEnd::Fail { error, retryable })
                .await?;
            ParkOutcome::Completed
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// `complete_callback`, for the token whose hash is `hash`.
pub(crate) async fn callback<T: WaitTx>(
    mut tx: T,
    hash: &str,
    result: &CallbackResult,
) -> Result<CallbackOutcome> {
    let Some((step_id, run)) = tx.callback_step(hash).await? else {
        return Ok(CallbackOutcome::Refused);
    };
    tx.lock_mailbox(run).await?;
    let Some((status, token)) = tx.lock_callback_step(step_id, hash).await? else {
        return Ok(CallbackOutcome::Refused);
    };
    let token = if status == "running" {
        // The callback came before the action finished: it ends the attempt, and the
        // worker's later park is refused (its lease is spent).
        tx.forget_callback(step_id).await?;
        token
    } else {
        match tx.unpark(step_id).await? {
            Some(token) => token,
            None => return Ok(CallbackOutcome::Refused),
        }
    };
    let end = match result {
        CallbackResult::Output(output) => WaitEnd::Complete(output.clone()),
        CallbackResult::Error { message, permanent } => WaitEnd::Fail {
            error: message.clone(),
            retryable: !permanent,
        },
    };
    let lease = Lease { step_id, token };
    let ended = tx.end_attempt(lease, end).await?;
    tx.commit().await?;
    let (run_id, step) = (run, ended.step);
    Ok(match ended.outcome {
        Ended::Completed => CallbackOutcome::Completed { run_id, step },
        Ended::Retrying(run_after) => CallbackOutcome::Retrying {
            run_id,
            step,
            run_after,
        },
        Ended::Failed => CallbackOutcome::Failed { run_id, step },
        Ended::Refused => CallbackOutcome::Refused,
    })
}

/// `send_signal` (the request already checked).
pub(crate) async fn signal<T: WaitTx>(mut tx: T, request: &SignalRequest) -> Result<SignalOutcome> {
    let (run, run_created) = match &request.target {
        SignalTarget::Run(id) => (*id, false),
        SignalTarget::Key {
            workflow,
            idempotency_key,
            start,
        } => match (tx.run_by_key(workflow, idempotency_key).await?, start) {
            (Some(id), _) => (id, false),
            (None, None) => return Ok(SignalOutcome::UnknownRun),
            (None, Some(start)) => {
                let created = tx.create_run(start.clone()).await?;
                (created.id, created.created)
            }
        },
    };
    tx.lock_mailbox(run).await?;
    let Some((status, group)) = tx.run_of_signal(run).await? else {
        return Ok(SignalOutcome::UnknownRun);
    };
    let delivery = |seq, name: String, consumed_by| SignalDelivery {
        run_id: run,
        name,
        id: request.id.clone(),
        seq,
        consumed_by,
        run_created,
    };
    if let Some(id) = &request.id {
        if let Some(sent) = tx.sent_signal(run, id).await? {
            return Ok(SignalOutcome::Duplicate(delivery(
                sent.seq,
                sent.name,
                sent.consumed_by,
            )));
        }
    }
    if status.is_terminal() {
        return Ok(SignalOutcome::RunFinished {
            run_id: run,
            status,
        });
    }
    let data = sanitize::json(&request.data);
    let seq = tx.insert_signal(run, request, &data).await?;
    tx.event(WaitEvent {
        kind: EventKind::SignalReceived,
        run,
        step: None,
        group: group.as_deref(),
        data: json!({ "name": request.name, "id": request.id }),
    })
    .await?;
    let consumed_by = deliver(&mut tx, run, &request.name).await?;
    tx.commit().await?;
    Ok(SignalOutcome::Delivered(delivery(
        seq,
        request.name.clone(),
        consumed_by,
    )))
}

/// Ends one due wait (`wake_steps`); `None` when another waker got there first.
pub(crate) async fn wake<T: WaitTx>(
    mut tx: T,
    step: StepId,
    run: RunId,
) -> Result<Option<WakePlan>> {
    tx.lock_mailbox(run).await?;
    let Some((kind, signal)) = tx.lock_due_wait(step).await? else {
        return Ok(None);
    };
    let Some(plan) = plan_wake(&kind, signal.as_deref()) else {
        return Ok(None);
    };
    let Some(token) = tx.unpark(step).await? else {
        return Ok(None);
    };
    let end = match &plan {
        WakePlan::Complete => WaitEnd::Complete(Value::Null),
        WakePlan::Fail { error, retryable } => WaitEnd::Fail {
            error: error.clone(),
            retryable: *retryable,
        },
    };
    tx.end_attempt(
        Lease {
            step_id: step,
            token,
        },
        end,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(plan))
}

/// Gives a waiting signal step of `run` the oldest unconsumed signal of `name`, if
/// one waits; returns that step's name.
async fn deliver<T: WaitTx>(tx: &mut T, run: RunId, name: &str) -> Result<Option<String>> {
    let Some((step, step_name)) = tx.waiting_for_signal(run, name).await? else {
        return Ok(None);
    };
    let Some(oldest) = tx.oldest_signal(run, name).await? else {
        return Ok(None);
    };
    let Some(token) = tx.unpark(step).await? else {
        return Ok(None);
    };
    tx.consume_signal(oldest.seq, &step_name).await?;
    let lease = Lease {
        step_id: step,
        token,
    };
    tx.end_attempt(lease, WaitEnd::Complete(oldest.data))
        .await?;
    Ok(Some(step_name))
}

/// A `run` step's park: starts its child (or finds the one its key names, for a
/// retried step) and waits for it, or ends at once when the child already ended.
/// The parent run's mailbox lock is held, and a child's end takes it too before it
/// looks for its waiting parent step, so the child cannot end unseen in between.
async fn start_child<T: WaitTx>(
    tx: &mut T,
    step: &ParkedStep,
    lease: Lease,
    child: &ChildRun,
) -> Result<ParkOutcome> {
    let mut run = NewRun::new(child.workflow.clone(), sanitize::json(&child.input));
    run.idempotency_key = Some(super::child_key(step.run_id, &step.name));
    run.parent = Some(ParentRef {
        run: step.run_id,
        step: step.name.clone(),
    });
    let created = match tx.create_run(run).await {
        Ok(created) => created,
        Err(e @ (crate::StoreError::UnknownWorkflow(_) | crate::StoreError::InvalidInput(_))) => {
            let error = format!("cannot start the child run: {e}");
            tx.end_attempt(
                lease,
                WaitEnd::Fail {
                    error,
                    retryable: false,
                },
            )
            .await?;
            return Ok(ParkOutcome::Completed);
        }
        Err(e) => return Err(e),
    };
    let Some((status, error)) = tx.child_state(created.id).await? else {
        return Err(crate::StoreError::Corrupt("a child run vanished".into()));
    };
    let plan = if created.created {
        super::ChildPlan::Wait
    } else {
        super::plan_child(created.id, status, error.as_deref())
    };
    match plan {
        super::ChildPlan::Complete => {
            let output = tx.child_outputs(created.id).await?;
            tx.end_attempt(lease, WaitEnd::Complete(output)).await?;
            Ok(ParkOutcome::Completed)
        }
        super::ChildPlan::Fail(error) => {
            tx.end_attempt(
                lease,
                WaitEnd::Fail {
                    error,
                    retryable: false,
                },
            )
            .await?;
            Ok(ParkOutcome::Completed)
        }
        super::ChildPlan::Wait | super::ChildPlan::Retry => {
            if plan == super::ChildPlan::Retry {
                tx.retry_child(created.id).await?;
            }
            // The child's id is kept where a signal step keeps its signal's name.
            let wait = super::Waiting {
                kind: super::CHILD,
                signal: Some(created.id.to_string()),
                until: None,
            };
            tx.park(lease.step_id, &wait).await?;
            tx.event(WaitEvent {
                kind: EventKind::StepWaiting,
                run: step.run_id,
                step: Some(&step.name),
                group: step.group.as_deref(),
                data: json!({ "child": created.id }),
            })
            .await?;
            Ok(ParkOutcome::Waiting { until: None })
        }
    }
}
