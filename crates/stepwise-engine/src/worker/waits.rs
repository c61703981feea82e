//! Steps that wait without a worker (docs/design.md "Steps that wait"): what a step
//! waits for, handing a `complete = "callback"` action its token, letting go of the
//! step (parking), and the waker that ends waits whose time came.
//!
//! A parked step holds no consumer, no lease and no worker: the consumer is freed
//! before the park is written (the completer writes it), and whatever wakes the step
//! later (a due time, a signal, a callback) is a transaction of any process.

use super::completer::retry_store;
use super::Inner;
use crate::bus::Lifecycle;
use crate::executor::AttemptInput;
use crate::metrics as m;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::secrets::{self, Secrets};
use stepwise_core::{StepAction, Template};
use stepwise_store::{ChildRun, ClaimedStep, ParkOutcome, ParkRequest, SleepUntil, WaitFor};
use tokio_util::sync::CancellationToken;

/// How often a worker ends waits whose time came. A sleep ends at most this late
/// (plus a pass's own time); any worker may end any run's waits.
const WAKE_POLL: Duration = Duration::from_millis(500);

/// How many waits one `wake_steps` call ends; passes repeat until none is left.
const WAKE_BATCH: u32 = 100;

/// The env variable an `exec` child of a `complete = "callback"` step reads its token from.
pub const CALLBACK_TOKEN_ENV: &str = "STEPWISE_CALLBACK_TOKEN";

/// What a waiting action waits for, rendered against the step's context. The error
/// (a permanent failure of the step) names the field and the value.
pub(super) fn wait_for(action: &StepAction, context: &Value) -> Result<WaitFor, String> {
    match action {
        StepAction::Sleep { ms } => Ok(WaitFor::Sleep(SleepUntil::After(Duration::from_millis(
            *ms,
        )))),
        StepAction::SleepUntil { at } => sleep_until(at, context).map(WaitFor::Sleep),
        StepAction::Wait(wait) => Ok(WaitFor::Signal {
            name: wait.signal.clone(),
            timeout: wait.timeout_ms.map(Duration::from_millis),
        }),
        StepAction::Run(run) => Ok(WaitFor::Child(ChildRun {
            workflow: run.workflow.clone(),
            input: child_input(run, context)?,
        })),
        other => Err(format!("a {} step does not wait", other.kind())),
    }
}

/// A child's input: its rendered template; without one, an item's element, or else
/// the parent run's input.
fn child_input(run: &stepwise_core::RunAction, context: &Value) -> Result<Value, String> {
    match &run.input {
        Some(template) => stepwise_core::spec::child::render_input(template, context)
            .map_err(|e| format!("run.input cannot be rendered: {e}")),
        None => Ok(context
            .get("item")
            .or_else(|| context.get("input"))
            .cloned()
            .unwrap_or(Value::Null)),
    }
}

fn sleep_until(template: &str, context: &Value) -> Result<SleepUntil, String> {
    let rendered = Template::parse_step(template)
        .and_then(|t| t.render_step(context))
        .map_err(|e| format!("sleep_until {template:?} cannot be rendered: {e}"))?;
    let at = chrono::DateTime::parse_from_rfc3339(rendered.trim()).map_err(|e| {
        format!(
            "sleep_until {template:?} rendered {rendered:?}, which is not an RFC 3339 time \
             such as 2026-12-01T08:00:00Z: {e}"
        )
    })?;
    Ok(SleepUntil::At(at.into()))
}

/// Gives an attempt its callback token: `STEPWISE_CALLBACK_TOKEN` for an `exec`
/// child, and `callback` in the context (with the URL to post to when the worker
/// knows the server's public URL) for every kind. The token is a credential (whoever
/// has it finishes the attempt), so it joins the attempt's `secrets`: a child that
/// prints it leaves `${STEPWISE_CALLBACK_TOKEN}` in its log, not the token.
pub(super) fn hand_callback(
    input: &mut AttemptInput,
    token: &str,
    public_url: Option<&str>,
    secrets: &mut Secrets,
) {
    let known = |name: &str| (name == CALLBACK_TOKEN_ENV).then(|| token.to_string());
    // Cannot fail: the reference is well formed and the lookup knows it.
    let _ = secrets::expand(&format!("${{{CALLBACK_TOKEN_ENV}}}"), &known, secrets);
    input
        .env
        .insert(CALLBACK_TOKEN_ENV.to_string(), token.to_string());
    let mut callback = json!({ "token": token });
    if let Some(base) = public_url {
        callback["url"] = json!(callback_url(base, token));
    }
    input.context["callback"] = callback;
}

/// `{public_url}/v1/callbacks/{token}`, whether or not the base ends with `/`.
pub fn callback_url(public_url: &str, token: &str) -> String {
    format!("{}/v1/callbacks/{token}", public_url.trim_end_matches('/'))
}

/// `sleep`, `signal` or `callback`: the `kind` label of the waiting metrics.
fn kind(wait: &WaitFor) -> &'static str {
    match wait {
        WaitFor::Sleep(_) => "sleep",
        WaitFor::Signal { .. } => "signal",
        WaitFor::Callback { .. } => "callback",
        WaitFor::Child(_) => "child",
    }
}

impl Inner {
    /// Lets go of a step that now waits. Called by the completer, after the consumer
    /// that ran the step was freed.
    pub(super) async fn park(&self, step: ClaimedStep, wait: WaitFor) {
        let kind = kind(&wait);
        let request = ParkRequest {
            lease: step.lease,
            wait,
        };
        match retry_store(|| self.store.park_step(&request)).await {
            Ok(ParkOutcome::Waiting { until }) => {
                metrics::counter!(m::STEPS_PARKED, "kind" => kind).increment(1);
                self.bus.publish(Lifecycle::StepWaiting {
                    run_id: step.run_id,
                    step: step.step,
                    kind,
                    until,
                });
            }
            Ok(ParkOutcome::Completed) => {
                // Nothing to wait for (a due sleep, a signal already sent, a callback
                // that came while the action ran): the store ended it in the same
                // transaction, which may have unblocked others (the completer wakes
                // the claimers after every batch).
                metrics::counter!(m::STEPS_PARKED, "kind" => kind).increment(1);
                tracing::debug!(run = %step.run_id, step = %step.step, "the wait ended at once");
            }
            // A callback may come before its action ends (a child can call back
            // itself): it ended the attempt, and this park is refused as a stale
            // write. Not a lost lease; a reaped step's refusal looks the same here,
            // and the reaper counts that one.
            Ok(ParkOutcome::Refused) if kind == "callback" => tracing::info!(
                run = %step.run_id,
                step = %step.step,
                "the attempt ended before it was parked for its callback (an early callback)"
            ),
            Ok(ParkOutcome::Refused) => self.lease_lost(&step),
            Ok(ParkOutcome::Stopped) => self.bus.publish(Lifecycle::StepCancelled {
                run_id: step.run_id,
                step: step.step,
            }),
            Err(e) => tracing::error!(
                error = %e,
                run = %step.run_id,
                step = %step.step,
                "cannot park a waiting step; its lease will expire and it will be parked again"
            ),
        }
    }

    /// Ends waits whose time came: sleeps complete, signal waits time out, callbacks
    /// not answered within their attempt's timeout fail that attempt. Any worker may;
    /// the store ends each wait once. Claimers are woken for what that unblocked.
    pub(super) async fn wake_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WAKE_POLL) => {}
                _ = stop.cancelled() => return,
            }
            while !stop.is_cancelled() {
                match self.store.wake_steps(WAKE_BATCH).await {
                    Ok(report) if report.is_empty() => break,
                    Ok(report) => {
                        tracing::info!(
                            slept = report.slept.len(),
                            timed_out = report.timed_out.len(),
                            callbacks_expired = report.callbacks_expired.len(),
                            "ended waits whose time came"
                        );
                        self.wake.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "waking waiting steps failed");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_core::WaitAction;

    fn context() -> Value {
        json!({"input": {"at": "2030-01-02T03:04:05Z", "bad": "tomorrow"}, "steps": {}})
    }

    #[test]
    fn each_waiting_action_becomes_what_the_store_waits_for() {
        assert_eq!(
            wait_for(&StepAction::Sleep { ms: 1500 }, &context()),
            Ok(WaitFor::Sleep(SleepUntil::After(Duration::from_millis(
                1500
            ))))
        );
        let at = StepAction::SleepUntil {
            at: "{{ input.at }}".into(),
        };
        let expected: chrono::DateTime<chrono::Utc> = "2030-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(
            wait_for(&at, &context()),
            Ok(WaitFor::Sleep(SleepUntil::At(expected)))
        );
        let wait = StepAction::Wait(WaitAction {
            signal: "approved".into(),
            timeout_ms: Some(60_000),
        });
        assert_eq!(
            wait_for(&wait, &context()),
            Ok(WaitFor::Signal {
                name: "approved".into(),
                timeout: Some(Duration::from_secs(60))
            })
        );
    }

    #[test]
    fn sleep_until_reads_the_whole_step_context_and_templates_read_the_callback() {
        let context = json!({"input": {}, "steps": {"plan": {"at": "2031-05-06T07:08:09+02:00"}}});
        let at = StepAction::SleepUntil {
            at: "{{ steps.plan.at }}".into(),
        };
        let expected: chrono::DateTime<chrono::Utc> = "2031-05-06T05:08:09Z".parse().unwrap();
        assert_eq!(
            wait_for(&at, &context),
            Ok(WaitFor::Sleep(SleepUntil::At(expected)))
        );
        // An `http` step's body can send its callback URL.
        let url = Template::parse_step("{{ callback.url }}").unwrap();
        let with_callback = json!({"callback": {"url": "https://x/v1/callbacks/t"}});
        assert_eq!(
            url.render_step(&with_callback).unwrap(),
            "https://x/v1/callbacks/t"
        );
    }

    #[test]
    fn a_sleep_until_that_is_not_a_time_names_the_field_and_the_value() {
        let bad = StepAction::SleepUntil {
            at: "{{ input.bad }}".into(),
        };
        let error = wait_for(&bad, &context()).unwrap_err();
        assert!(error.contains("sleep_until"), "{error}");
        assert!(error.contains("\"tomorrow\""), "{error}");
        let missing = StepAction::SleepUntil {
            at: "{{ input.nowhere }}".into(),
        };
        let error = wait_for(&missing, &context()).unwrap_err();
        assert!(error.contains("sleep_until"), "{error}");
        assert!(error.contains("input.nowhere"), "{error}");
    }

    #[test]
    fn the_callback_reaches_the_child_and_the_context() {
        let mut input = AttemptInput {
            context: json!({"input": {}}),
            env: Default::default(),
            cwd: None,
        };
        let mut secrets = Secrets::default();
        hand_callback(
            &mut input,
            "tok-1234",
            Some("https://flows.example.com/"),
            &mut secrets,
        );
        assert_eq!(input.env[CALLBACK_TOKEN_ENV], "tok-1234");
        assert_eq!(
            input.context["callback"],
            json!({"token": "tok-1234", "url": "https://flows.example.com/v1/callbacks/tok-1234"})
        );
        assert_eq!(
            secrets.redact("got tok-1234"),
            "got ${STEPWISE_CALLBACK_TOKEN}",
            "the token never reaches a log"
        );
        let mut bare = AttemptInput {
            context: json!({}),
            env: Default::default(),
            cwd: None,
        };
        hand_callback(&mut bare, "tok-1234", None, &mut Secrets::default());
        assert_eq!(bare.context["callback"], json!({"token": "tok-1234"}));
    }
}
