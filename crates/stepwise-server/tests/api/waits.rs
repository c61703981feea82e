//! Signals and callbacks through the API: every status each route can answer, on
//! the real store (the waits themselves are proved on both backends by the
//! conformance suite; this is the translation to HTTP).

use super::{api, assert_error, Api};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use std::time::Duration;
use stepwise_core::{CompleteBy, RunId, StepAction, StepSpec, WorkflowSpec};
use stepwise_store::{
    ClaimRequest, ClaimedStep, NewRun, ParkOutcome, ParkRequest, RunBatch, WaitFor,
    WorkerRegistration,
};
use tower::ServiceExt;

async fn start(api: &Api, workflow: &str) -> RunId {
    let created = api
        .store
        .create_runs(RunBatch {
            group: None,
            runs: vec![NewRun::new(workflow, json!({}))],
        })
        .await
        .unwrap();
    created[0].id
}

/// Registers a worker and claims the next step.
async fn claim_one(api: &Api) -> ClaimedStep {
    let worker = api
        .store
        .register_worker(&WorkerRegistration {
            name: "api-test".into(),
            queues: vec!["default".into()],
            lease: Duration::from_secs(600),
        })
        .await
        .unwrap()
        .id;
    let claimed = api
        .store
        .claim_steps(&ClaimRequest {
            worker,
            queues: vec!["default".into()],
            limit: 1,
        })
        .await
        .unwrap();
    claimed.into_iter().next().expect("a claimable step")
}

#[tokio::test]
async fn a_signal_is_accepted_once_per_id_and_refused_for_unknown_or_ended_runs() {
    let api = api().await;
    let run = start(&api, "greet").await;
    let uri = format!("/v1/runs/{run}/signals/approved");
    let (status, first) = api
        .post(&uri, r#"{"data": {"by": "ann"}, "id": "t-1"}"#)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["outcome"], "delivered");
    assert_eq!(first["run_id"], json!(run));
    assert_eq!(first["name"], "approved");
    let (status, again) = api
        .post(&uri, r#"{"data": {"by": "bob"}, "id": "t-1"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["seq"], first["seq"], "the first delivery is answered");
    // No body at all: data null, a new delivery.
    let (status, bare) = api.post(&uri, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{bare}");

    let unknown = "01890000-0000-7000-8000-000000000000";
    let (status, body) = api
        .post(&format!("/v1/runs/{unknown}/signals/approved"), "{}")
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (status, body) = api.post(&format!("/v1/runs/{run}/cancel"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.post(&uri, "{}").await;
    assert_error(status, &body, StatusCode::CONFLICT, "run_ended");
    api.finish().await;
}

#[tokio::test]
async fn bad_signals_are_4xx_naming_what_is_wrong() {
    let api = api().await;
    let run = start(&api, "greet").await;
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        (
            "/v1/runs/nope/signals/approved".into(),
            "{}",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("/v1/runs/{run}/signals/no%20spaces"),
            "{}",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("/v1/runs/{run}/signals/approved"),
            "{",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            format!("/v1/runs/{run}/signals/approved"),
            r#"{"payload": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            format!("/v1/runs/{run}/signals/approved"),
            r#"{"id": ""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/signals".into(),
            r#"{"workflow": "greet", "name": "approved"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/signals".into(),
            r#"{"workflow": "greet", "idempotency_key": "k", "name": "bad name"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/signals".into(),
            r#"[1, 2]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
    ];
    for (uri, body, want, code) in cases {
        let (status, answer) = api.post(&uri, body).await;
        assert_error(status, &answer, want, code);
    }
    api.finish().await;
}

#[tokio::test]
async fn a_signal_by_key_finds_or_starts_its_run() {
    let api = api().await;
    let body = |start: bool| {
        let mut b = json!({
            "workflow": "greet",
            "idempotency_key": "order-7",
            "name": "paid",
            "data": {"amount": 12},
        });
        if start {
            b["start"] = json!({"input": {"order": 7}});
        }
        b.to_string()
    };
    let (status, answer) = api.post("/v1/signals", &body(false)).await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    let (status, created) = api.post("/v1/signals", &body(true)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["run_created"], true, "{created}");
    let run: RunId = serde_json::from_value(created["run_id"].clone()).unwrap();
    let view = api.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(view.input, json!({"order": 7}));
    let (status, found) = api.post("/v1/signals", &body(true)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{found}");
    assert_eq!(found["run_id"], created["run_id"], "the same run");
    assert_eq!(found["run_created"], false, "{found}");
    let mut unknown = json!({"workflow": "nope", "idempotency_key": "k", "name": "paid"});
    unknown["start"] = json!({});
    let (status, answer) = api.post("/v1/signals", &unknown.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = api.post(&format!("/v1/runs/{run}/cancel"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = api.post("/v1/signals", &body(false)).await;
    assert_error(status, &answer, StatusCode::CONFLICT, "run_ended");
    api.finish().await;
}

/// A `complete = "callback"` step claimed, given its token and parked.
async fn awaiting_callback(api: &Api) -> (RunId, String) {
    let mut submit = StepSpec::handler("submit", "noop");
    submit.action = StepAction::Exec {
        argv: vec!["true".into()],
    };
    submit.complete = Some(CompleteBy::Callback);
    let spec = WorkflowSpec {
        name: "cb".into(),
        defaults: Default::default(),
        run: Default::default(),
        steps: vec![submit],
    };
    api.store.register_workflow(&spec).await.unwrap();
    let run = start(api, "cb").await;
    let claimed = claim_one(api).await;
    let token = api
        .store
        .issue_callback(claimed.lease)
        .await
        .unwrap()
        .expect("the lease is current");
    let parked = api
        .store
        .park_step(&ParkRequest {
            lease: claimed.lease,
            wait: WaitFor::Callback { timeout: None },
        })
        .await
        .unwrap();
    assert!(matches!(parked, ParkOutcome::Waiting { .. }), "{parked:?}");
    (run, token)
}

#[tokio::test]
async fn a_callback_completes_its_attempt_once_and_then_is_refused() {
    let api = api().await;
    let (run, token) = awaiting_callback(&api).await;
    let uri = format!("/v1/callbacks/{token}");
    for bad in [
        "{}",
        r#"{"output": 1, "error": "both"}"#,
        r#"{"output": 1, "permanent": true}"#,
        r#"{"error": 5}"#,
        r#"{"result": 1}"#,
    ] {
        let (status, body) = api.post(&uri, bad).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
    }
    let (status, body) = api.post(&uri, "{").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, done) = api.post(&uri, r#"{"output": {"job": "j-7"}}"#).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["outcome"], "completed");
    assert_eq!(done["step"], "submit");
    let view = api.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(view.steps[0].output, Some(json!({"job": "j-7"})));
    let (status, body) = api.post(&uri, r#"{"output": 2}"#).await;
    assert_error(status, &body, StatusCode::CONFLICT, "callback_refused");
    let (status, body) = api
        .post("/v1/callbacks/not-a-token", r#"{"output": 2}"#)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "callback_refused");
    api.finish().await;
}

#[tokio::test]
async fn a_callback_error_fails_the_attempt() {
    let api = api().await;
    let (run, token) = awaiting_callback(&api).await;
    let (status, done) = api
        .post(
            &format!("/v1/callbacks/{token}"),
            r#"{"error": "the job crashed", "permanent": true}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["outcome"], "failed", "{done}");
    let view = api.store.get_run(run).await.unwrap().unwrap();
    let error = view.steps[0].error.clone().unwrap_or_default();
    assert!(error.contains("the job crashed"), "{error}");
    api.finish().await;
}

/// With tokens on, a callback needs none (its token is the credential), and signals
/// need a write token.
#[tokio::test]
async fn a_callback_needs_no_bearer_token_but_a_signal_needs_write() {
    let api = api().await;
    let (_, token) = awaiting_callback(&api).await;
    let router =
        stepwise_server::router(api.store.clone(), stepwise_server::ServerOptions::default());
    let post = |uri: String, body: &'static str| {
        let request = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        router.clone().oneshot(request)
    };
    let answer = post(format!("/v1/callbacks/{token}"), r#"{"output": null}"#)
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let run = start(&api, "greet").await;
    let answer = post(format!("/v1/runs/{run}/signals/go"), "{}")
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    use stepwise_server::required_scope;
    use stepwise_store::TokenScope;
    let post_method = axum::http::Method::POST;
    assert_eq!(
        required_scope(&post_method, &format!("/v1/runs/{run}/signals/go")),
        Some(TokenScope::Write)
    );
    assert_eq!(
        required_scope(&post_method, "/v1/signals"),
        Some(TokenScope::Write)
    );
    assert_eq!(required_scope(&post_method, "/v1/callbacks/abc"), None);
    // Only that route: anything under it is not a callback.
    assert_eq!(
        required_scope(&post_method, "/v1/callbacks/abc/more"),
        Some(TokenScope::Admin)
    );
    api.finish().await;
}

#[tokio::test]
async fn metrics_count_waiting_steps_per_kind() {
    let api = api().await;
    let _ = awaiting_callback(&api).await;
    let router = stepwise_server::router(
        api.store.clone(),
        stepwise_server::ServerOptions {
            auth: stepwise_server::AuthMode::Open,
            ..Default::default()
        },
    );
    let answer = router
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    for line in [
        "stepwise_steps_waiting{kind=\"callback\"} 1",
        "stepwise_steps_waiting{kind=\"sleep\"} 0",
        "stepwise_steps_waiting{kind=\"signal\"} 0",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    api.finish().await;
}
