//! What ends a step that waits, from outside: signals to a run's mailbox (write
//! scope) and callbacks to an attempt's token (no bearer token: the token is the
//! credential, and a token of an attempt that is no longer current is refused).

use crate::json::{optional_body, run_id, Body, Path, RawBody};
use crate::metrics::{CALLBACKS_REFUSED, SIGNALS_RECEIVED};
use crate::schema::{CallbackDone, ErrorBody, Signalled};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use stepwise_store::{
    CallbackOutcome, CallbackRequest, CallbackResult, NewRun, SignalOutcome, SignalRequest,
    SignalTarget,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signal_run))
        .routes(routes!(signal_by_key))
        .routes(routes!(callback))
}

/// A signal to a run named in the path. The body may be left out (data `null`).
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"data": {"approved_by": "ops"}, "id": "ticket-981"}))]
struct SignalBody {
    /// Any JSON (default `null`): the output of the `wait` step that takes it.
    #[serde(default)]
    data: Value,
    /// The sender's id: the same id sent again is accepted once (200, the first
    /// delivery).
    id: Option<String>,
}

/// A run to create when none has the key (get-or-create, then signal).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// The new run's input (default `{}`).
    #[serde(default = "empty_object")]
    input: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// A signal to the run of a workflow with an idempotency key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "workflow": "deploy",
    "idempotency_key": "release-2026-12-01",
    "name": "approved",
    "data": {"by": "ops"},
    "start": {"input": {"version": "1.4.2"}}
}))]
struct KeySignalBody {
    workflow: String,
    idempotency_key: String,
    /// The signal's name.
    name: String,
    /// Any JSON (default `null`).
    #[serde(default)]
    data: Value,
    /// The sender's id: the same id sent again is accepted once.
    id: Option<String>,
    /// Create the run (in the same transaction) when no run has the key.
    start: Option<StartBody>,
}

/// A callback as it is read: which of the two shapes of [`CallbackShape`] it has is
/// checked by the handler, so a body with both or neither gets a sentence saying so.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    #[serde(default, deserialize_with = "present")]
    output: Option<Value>,
    error: Option<String>,
    #[serde(default)]
    permanent: bool,
}

/// A callback: `{"output": ...}` completes the step; `{"error": "...", "permanent"?}`
/// fails the attempt (retried while attempts are left, unless permanent).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // The document's description of what `CallbackBody` accepts.
enum CallbackShape {
    Output(OutputCallback),
    Error(ErrorCallback),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"output": {"job": "j-77", "state": "done"}}))]
#[allow(dead_code)]
struct OutputCallback {
    /// The step's output (any JSON, `null` included): the step completes.
    output: Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": "the carrier refused the parcel", "permanent": true}))]
#[allow(dead_code)]
struct ErrorCallback {
    /// Why the work failed: the attempt fails with it.
    error: String,
    /// Do not retry: the step fails for good (default false).
    #[serde(default)]
    permanent: bool,
}

/// A field that is there, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Sends a signal to a run's mailbox; a step of the run waiting for a signal of this
/// name takes the oldest one in the same transaction.
#[utoipa::path(post, path = "/v1/runs/{id}/signals/{name}", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "The run's id"),
        ("name" = String, Path, description = "The signal's name"),
    ),
    request_body(content = Option<SignalBody>, description = "Optional; data `null` by default"),
    responses(
        (status = 202, description = "Stored in the run's mailbox (and taken at once when a step waits for it)", body = Signalled),
        (status = 200, description = "A signal with this id was delivered before: that delivery", body = Signalled),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run ended: nothing will take the signal", body = ErrorBody),
    ))]
async fn signal_run(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let run = run_id(&id)?;
    if !stepwise_core::spec::valid_name(&name) {
        return Err(ApiError::bad_request(bad_name(&name)));
    }
    let body: SignalBody = optional_body(&body)?;
    let request = SignalRequest {
        target: SignalTarget::Run(run),
        name,
        data: body.data,
        id: checked_id(body.id)?,
    };
    send(&state, &request).await
}

/// Sends a signal to the run of `workflow` with `idempotency_key`; with `start`, a
/// missing run is created first, in the same transaction.
#[utoipa::path(post, path = "/v1/signals", tag = "runs",
    request_body = KeySignalBody,
    responses(
        (status = 202, description = "Stored in the run's mailbox (`run_created`: the run was started for it)", body = Signalled),
        (status = 200, description = "A signal with this id was delivered before: that delivery", body = Signalled),
        (status = 404, description = "No run has the key (and no `start`), or no such workflow", body = ErrorBody),
        (status = 409, description = "The run ended: nothing will take the signal", body = ErrorBody),
    ))]
async fn signal_by_key(
    State(state): State<AppState>,
    Body(body): Body<KeySignalBody>,
) -> Result<impl IntoResponse, ApiError> {
    if !stepwise_core::spec::valid_name(&body.name) {
        return Err(ApiError::invalid(bad_name(&body.name)));
    }
    if body.idempotency_key.is_empty() {
        return Err(ApiError::invalid("idempotency_key must not be empty"));
    }
    let start = body.start.map(|s| {
        NewRun::new(body.workflow.clone(), s.input).idempotency_key(body.idempotency_key.clone())
    });
    let request = SignalRequest {
        target: SignalTarget::Key {
            workflow: body.workflow,
            idempotency_key: body.idempotency_key,
            start,
        },
        name: body.name,
        data: body.data,
        id: checked_id(body.id)?,
    };
    send(&state, &request).await
}

async fn send(
    state: &AppState,
    request: &SignalRequest,
) -> Result<(StatusCode, Json<Signalled>), ApiError> {
    match state.store.send_signal(request).await? {
        SignalOutcome::Delivered(delivery) => {
            metrics::counter!(SIGNALS_RECEIVED).increment(1);
            Ok((StatusCode::ACCEPTED, Json(Signalled::new(delivery, false))))
        }
        SignalOutcome::Duplicate(delivery) => {
            Ok((StatusCode::OK, Json(Signalled::new(delivery, true))))
        }
        SignalOutcome::UnknownRun => Err(ApiError::not_found(match &request.target {
            SignalTarget::Run(id) => format!("no run {id}"),
            SignalTarget::Key {
                workflow,
                idempotency_key,
                ..
            } => format!(
                "no run of workflow {workflow:?} has idempotency key {idempotency_key:?} \
                 (send `start` to create it)"
            ),
        })),
        SignalOutcome::RunFinished { run_id, status } => Err(ApiError::conflict(
            "run_ended",
            format!(
                "run {run_id} already ended ({status}); no step will ever take signal {}",
                request.name
            ),
        )),
    }
}

fn bad_name(name: &str) -> String {
    format!("{name:?} is not a valid signal name: use 1-128 letters, digits, '-', '_' or '.'")
}

fn checked_id(id: Option<String>) -> Result<Option<String>, ApiError> {
    match id {
        Some(id) if id.is_empty() || id.len() > 200 => Err(ApiError::invalid(
            "id must be 1 to 200 characters when given",
        )),
        id => Ok(id),
    }
}

/// Finishes the attempt whose callback token this is. No bearer token: the callback
/// token is the credential. A token of an attempt that is no longer current (a newer
/// attempt runs, the step or the run ended) is refused.
#[utoipa::path(post, path = "/v1/callbacks/{token}", tag = "runs",
    params(("token" = String, Path, description = "The attempt's callback token (`STEPWISE_CALLBACK_TOKEN`)")),
    request_body = CallbackShape,
    responses(
        (status = 200, description = "The attempt ended as asked", body = CallbackDone),
        (status = 409, description = "Refused: the token is unknown or its attempt is no longer current", body = ErrorBody),
    ))]
async fn callback(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Body(body): Body<CallbackBody>,
) -> Result<impl IntoResponse, ApiError> {
    let result = match (body.output, body.error) {
        (Some(output), None) if !body.permanent => CallbackResult::Output(output),
        (None, Some(message)) => CallbackResult::Error {
            message,
            permanent: body.permanent,
        },
        (Some(_), None) => return Err(ApiError::invalid("permanent goes with error, not output")),
        _ => {
            return Err(ApiError::invalid(
                "send either {\"output\": ...} or {\"error\": \"...\", \"permanent\"?: bool}",
            ))
        }
    };
    let request = CallbackRequest { token, result };
    let done = match state.store.complete_callback(&request).await? {
        CallbackOutcome::Refused => {
            metrics::counter!(CALLBACKS_REFUSED).increment(1);
            return Err(ApiError::conflict(
                "callback_refused",
                "the token is unknown, or its attempt is no longer the step's current one \
                 (a newer attempt runs, or the step or its run ended)",
            ));
        }
        CallbackOutcome::Completed { run_id, step } => CallbackDone::new("completed", run_id, step),
        CallbackOutcome::Retrying {
            run_id,
            step,
            run_after,
        } => CallbackDone {
            run_after: Some(run_after),
            ..CallbackDone::new("retrying", run_id, step)
        },
        CallbackOutcome::Failed { run_id, step } => CallbackDone::new("failed", run_id, step),
    };
    Ok(Json(done))
}
