//! One attempt of a step: which action it runs (the step's, or its compensation),
//! with what context, under which stop conditions (timeout, revoked lease, void
//! worker identity).

use super::{Finished, Inner};
use crate::bus::Lifecycle;
use crate::executor::handler::HandlerContext;
use crate::executor::{exec, http, worker_env, AttemptInput, AttemptResult, ExecOptions};
use crate::metrics as m;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_core::secrets::{self, MissingVariable, Secrets};
use stepwise_core::spec::fan_out::split_item_name;
use stepwise_core::{CompleteBy, RunId, StepAction};
use stepwise_store::{ClaimedStep, WaitFor};
use tokio_util::sync::CancellationToken;

impl Inner {
    pub(super) async fn execute(
        &self,
        step: ClaimedStep,
        generation: CancellationToken,
    ) -> Finished {
        self.bus.publish(Lifecycle::StepStarted {
            run_id: step.run_id,
            step: step.step.clone(),
            attempt: step.attempt,
        });
        let spec = match self.spec(&step.workflow, step.workflow_version).await {
            Ok(spec) => spec,
            Err(error) => return failed(step, error, true, None),
        };
        // A compensation runs its forward step's `compensate` action, with that
        // step's environment, directory and timeout.
        let forward = step.compensating.as_ref().map_or(&step.step, |c| &c.step);
        // An item `STEP[i]` (or its compensation) runs its `for_each` step's action.
        let forward = split_item_name(forward).map_or(forward.as_str(), |(name, _)| name);
        let Some(step_spec) = spec.steps.iter().find(|s| s.name == forward) else {
            let error = format!("step {forward:?} is not in workflow {}", step.workflow);
            return failed(step, error, false, None);
        };
        let action = match (&step.compensating, &step_spec.compensate) {
            (None, _) => &step_spec.action,
            (Some(_), Some(action)) => action,
            (Some(_), None) => {
                let error = format!("step {forward:?} has no compensation in this version");
                return failed(step, error, false, None);
            }
        };
        // `${NAME}` in an exec step's env comes from the worker's environment; its
        // values are redacted from whatever the attempt reports.
        let mut secrets = Secrets::default();
        let env = if matches!(action, StepAction::Exec { .. }) {
            match expand_env(&step_spec.env, &mut secrets) {
                Ok(env) => env,
                Err(missing) => return failed(step, format!("env: {missing}"), false, None),
            }
        } else {
            step_spec.env.clone()
        };
        let mut input = attempt_input(&step, env, step_spec.cwd.as_deref());
        // A step that waits runs nothing: the worker lets go of it at once.
        if action.waits() {
            return match super::waits::wait_for(action, &input.context) {
                Ok(wait) => Finished::Parked { step, wait },
                Err(error) => failed(step, error, false, None),
            };
        }
        // The action only starts the work; the step ends by its attempt's callback.
        let by_callback =
            step.compensating.is_none() && step_spec.complete == Some(CompleteBy::Callback);
        if by_callback {
            match self.store.issue_callback(step.lease).await {
                Ok(Some(token)) => super::waits::hand_callback(
                    &mut input,
                    &token,
                    self.options.public_url.as_deref(),
                    &mut secrets,
                ),
                // The lease is gone: another worker has the step, or the run stopped.
                Ok(None) => return Finished::Abandoned { step },
                Err(e) => {
                    let error = format!("cannot issue the step's callback token: {e}");
                    return failed(step, error, true, None);
                }
            }
        }
        let timeout = spec.step_timeout(step_spec);
        let stop = generation.child_token();
        let revoked = self.attempts.track(step.lease, stop.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let timer = timeout.map(|t| {
            let (stop, timed_out) = (stop.clone(), timed_out.clone());
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                timed_out.store(true, Ordering::SeqCst);
                stop.cancel();
            })
        });
        let started = Instant::now();
        let result = match action {
            StepAction::Exec { argv } => {
                let options = ExecOptions {
                    validity: self.validity.clone(),
                    ..self.options.exec.clone()
                };
                exec::run(argv, &input, &options, &stop).await
            }
            StepAction::Http(action) => {
                let call = http::Call {
                    action,
                    input: &input,
                    body_limit: self.options.exec.output_limit,
                    env: &worker_env,
                };
                http::run(&self.http, &call, &stop).await
            }
            StepAction::Handler { name } => {
                let cx = HandlerContext {
                    context: input.context.clone(),
                    stop: stop.clone(),
                };
                self.handlers.run(name, cx).await
            }
            StepAction::Sleep { .. }
            | StepAction::SleepUntil { .. }
            | StepAction::Wait(_)
            | StepAction::Run(_) => {
                // Parked above; never run, so there is nothing to report but this.
                AttemptResult {
                    outcome: Err(crate::executor::AttemptError::permanent(
                        "a step that waits has nothing to run",
                    )),
                    log: None,
                }
            }
        };
        if let Some(timer) = timer {
            timer.abort();
        }
        self.attempts.untrack(&step.lease);
        metrics::histogram!(m::STEP_SECONDS).record(started.elapsed().as_secs_f64());
        if generation.is_cancelled() {
            return Finished::Abandoned { step };
        }
        let mut result = result;
        result.redact(&secrets);
        let AttemptResult { outcome, log } = result;
        if revoked.load(Ordering::SeqCst) {
            // The store records the stop as a cancellation, whatever the outcome.
            let error = "stopped: the run was cancelled or timed out".to_string();
            return failed(step, error, false, log);
        }
        match (outcome, timed_out.load(Ordering::SeqCst)) {
            (_, true) => {
                let t = timeout.unwrap_or_default();
                failed(step, format!("timed out after {}", human(t)), true, log)
            }
            // The work goes on elsewhere; the attempt's timeout covers the wait for
            // its callback, counted by the store from when the attempt started.
            (Ok(_), false) if by_callback => Finished::Parked {
                step,
                wait: WaitFor::Callback { timeout },
            },
            (Ok(output), false) => Finished::Succeeded {
                step,
                output,
                log,
                hand_off: None,
            },
            (Err(e), false) => failed(step, e.message, e.retryable, log),
        }
    }
}

fn failed(step: ClaimedStep, error: String, retryable: bool, log: Option<String>) -> Finished {
    Finished::Failed {
        step,
        error,
        retryable,
        log,
    }
}

/// A step's `env` with `${NAME}` taken from the worker's environment.
fn expand_env(
    env: &BTreeMap<String, String>,
    secrets: &mut Secrets,
) -> Result<BTreeMap<String, String>, MissingVariable> {
    env.iter()
        .map(|(k, v)| Ok((k.clone(), secrets::expand(v, &worker_env, secrets)?)))
        .collect()
}

/// The JSON context and environment of one attempt (docs/design.md "A step, from claim to outcome").
pub fn attempt_input(
    step: &ClaimedStep,
    mut env: BTreeMap<String, String>,
    cwd: Option<&str>,
) -> AttemptInput {
    let mut context = json!({
        "run_id": step.run_id,
        "workflow": step.workflow,
        "step": step.step,
        "attempt": step.attempt,
        "input": step.input,
        "steps": step.dependency_outputs,
    });
    if let Some(item) = &step.item {
        context["item"] = item.value.clone();
        context["item_index"] = json!(item.index);
    }
    if let Some(undo) = &step.compensating {
        context["compensating"] = json!({
            "step": undo.step,
            "output": undo.output,
            "error": undo.error,
        });
    }
    env.insert("STEPWISE_RUN_ID".into(), step.run_id.to_string());
    env.insert("STEPWISE_STEP".into(), step.step.clone());
    env.insert("STEPWISE_ATTEMPT".into(), step.attempt.to_string());
    env.insert(
        "STEPWISE_IDEMPOTENCY_KEY".into(),
        idempotency_key(step.run_id, &step.step),
    );
    AttemptInput {
        context,
        env,
        cwd: cwd.map(PathBuf::from),
    }
}

/// The key a step's side effects can be made idempotent with: the same for every
/// attempt of the step.
pub fn idempotency_key(run: RunId, step: &str) -> String {
    format!("{run}:{step}")
}

fn human(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
