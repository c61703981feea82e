//! The API through its router (no socket): statuses, the error shape, and hostile
//! input that must never become a 5xx. The store behind it is SQLite in a temporary
//! file; the store's own semantics are proved on both backends by its conformance
//! suite.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use stepwise_core::{StepSpec, WorkflowSpec};
use stepwise_store::Store;
use tower::ServiceExt;

mod http_steps;
mod items;
mod limits;
mod openapi;
mod schedules;
mod waits;

struct Api {
    router: Router,
    store: Arc<dyn Store>,
    /// The SQLite directory or the PostgreSQL schema, removed when the test ends,
    /// passed or failed (declared after `store`, so dropped after it).
    _db: TestDatabase,
}

/// Where a test's API keeps its data. Most tests use SQLite; the ones about what
/// input can do to the database run on both, since PostgreSQL refuses things
/// (NUL characters, out-of-range values) SQLite stores.
type Db = stepwise_testkit::Backend;

/// Held only to be dropped: each removes its database.
#[allow(dead_code)]
enum TestDatabase {
    Sqlite(stepwise_testkit::SqliteDb),
    Postgres(stepwise_testkit::PgSchema),
}

async fn api() -> Api {
    api_on(Db::Sqlite).await
}

async fn api_on(db: Db) -> Api {
    let (store, db): (Arc<dyn Store>, _) = match db {
        Db::Sqlite => {
            let db = stepwise_testkit::SqliteDb::new();
            let store = stepwise_store::connect(&db.url).await.unwrap();
            (store, TestDatabase::Sqlite(db))
        }
        Db::Postgres => {
            let schema = stepwise_testkit::PgSchema::create();
            let store = stepwise_store::PgStore::connect_in_schema(&schema.url, &schema.name)
                .await
                .unwrap();
            (
                Arc::new(store) as Arc<dyn Store>,
                TestDatabase::Postgres(schema),
            )
        }
    };
    store.migrate().await.unwrap();
    let spec = WorkflowSpec {
        name: "greet".into(),
        defaults: Default::default(),
        run: Default::default(),
        steps: vec![StepSpec::handler("hello", "noop")],
    };
    store.register_workflow(&spec).await.unwrap();
    Api {
        router: stepwise_server::router(
            store.clone(),
            stepwise_server::ServerOptions {
                body_limit: 4096,
                metrics: None,
                auth: stepwise_server::AuthMode::Open,
            },
        ),
        store,
        _db: db,
    }
}

impl Api {
    /// Ends the test; its database goes when `self` is dropped.
    async fn finish(self) {}

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let api = api().await;
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["database_time"].is_string());
    let (status, body) = api.get("/v1/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn starting_a_run_is_idempotent_and_bad_bodies_are_4xx() {
    let api = api().await;
    let body = r#"{"workflow": "greet", "input": {"who": "you"}, "idempotency_key": "k1"}"#;
    let (status, first) = api.post("/v1/runs", body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "running");
    assert_eq!(first["steps"][0]["name"], "hello");
    let (status, again) = api.post("/v1/runs", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);

    let (s, b) = api.post("/v1/runs", r#"{"workflow": "nope"}"#).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_workflow");
    let (s, b) = api.post("/v1/runs", r#"{"workflow": "greet""#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = api.post("/v1/runs", r#"{"workflow": 7}"#).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let (s, b) = api
        .post("/v1/runs", r#"{"workflow": "greet", "colour": "red"}"#)
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let untyped = Request::post("/v1/runs")
        .body(Body::from(r#"{"workflow": "greet"}"#))
        .unwrap();
    let (s, b) = api.send(untyped).await;
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    // Over the limit: 413, and nothing is written.
    let huge = format!(
        r#"{{"workflow": "greet", "input": {{"x": "{}"}}}}"#,
        "a".repeat(8000)
    );
    let (s, b) = api.post("/v1/runs", &huge).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let (_, page) = api.get("/v1/runs").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn runs_can_be_read_cancelled_retried_and_explained() {
    let api = api().await;
    let (_, run) = api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let id = run["id"].as_str().unwrap().to_string();
    let (status, shown) = api.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["stop_reason"], Value::Null, "{shown}");
    let (status, explained) = api.get(&format!("/v1/runs/{id}/explain")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        explained["steps"][0]["reason"], "no_live_worker",
        "{explained}"
    );
    let (s, b) = api.post(&format!("/v1/runs/{id}/retry"), "").await;
    assert_error(s, &b, StatusCode::CONFLICT, "not_retryable");
    let (status, cancelled) = api.post(&format!("/v1/runs/{id}/cancel"), "").await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, shown) = api.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(shown["stop_reason"], "cancelled", "{shown}");
    let (s, b) = api.post(&format!("/v1/runs/{id}/cancel"), "{}").await;
    assert_error(s, &b, StatusCode::CONFLICT, "run_ended");
    let (status, retried) = api
        .post(&format!("/v1/runs/{id}/retry"), r#"{"from": "hello"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["steps"], json!(["hello"]));
    let (_, shown) = api.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(
        shown["stop_reason"],
        Value::Null,
        "a retry clears it: {shown}"
    );
    let (s, b) = api.get(&format!("/v1/runs/{id}/steps/nope/logs")).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (status, page) = api.get("/v1/runs?status=running&limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    let (status, events) = api.get(&format!("/v1/events?run={id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(events["events"].as_array().unwrap().len() >= 3, "{events}");
}

#[tokio::test]
async fn locks_conflict_and_need_their_token() {
    let api = api().await;
    let (status, got) = api.post("/v1/locks/db:main", r#"{"ttl": "5m"}"#).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["key"], "db:main", "{got}");
    let token = got["token"].as_str().unwrap().to_string();
    // The list names a lock by the word the routes use: its key.
    let (status, listed) = api.get("/v1/locks").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let lock = &listed["locks"][0];
    assert_eq!(lock["key"], "db:main", "{listed}");
    assert!(lock.get("name").is_none(), "{listed}");
    let (s, b) = api.post("/v1/locks/db:main", r#"{"ttl": 60}"#).await;
    assert_error(s, &b, StatusCode::CONFLICT, "lock_held");
    let delete = |token: &str| {
        Request::delete(format!("/v1/locks/db:main?token={token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, b) = api.send(delete("not-a-token")).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = api.send(delete(&uuid::Uuid::new_v4().to_string())).await;
    assert_error(s, &b, StatusCode::CONFLICT, "wrong_token");
    let (status, _) = api.send(delete(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let (s, b) = api
        .post("/v1/locks/db:main/force-release", r#"{"reason": "x"}"#)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = api.post("/v1/locks/db:main", r#"{"ttl": "soon"}"#).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
}

/// Nothing a client sends is a server error, on either database.
#[tokio::test]
async fn hostile_input_is_always_a_4xx() {
    for db in [Db::Sqlite, Db::Postgres] {
        if db == Db::Postgres && stepwise_testkit::skip_postgres() {
            continue;
        }
        hostile_input_on(db).await;
    }
}

async fn hostile_input_on(db: Db) {
    let api = api_on(db).await;
    let posts = [
        ("/v1/runs", r#"{"workflow": "greet", "priority": 1e30}"#),
        (
            "/v1/runs",
            r#"{"workflow": "greet", "priority": 99999999999}"#,
        ),
        ("/v1/runs", r#"{"workflow": "greet\u0000"}"#),
        (
            "/v1/runs",
            r#"{"workflow": "greet", "input": {"x": "a\u0000b"}}"#,
        ),
        ("/v1/runs", r#"{"workflow": "greet'; DROP TABLE run; --"}"#),
        ("/v1/runs", r#"{"workflow": "../../etc/passwd"}"#),
        (
            "/v1/runs",
            r#"{"workflow": "greet", "idempotency_key": ""}"#,
        ),
        (
            "/v1/runs",
            r#"{"workflow": "greet", "run_at": "yesterday"}"#,
        ),
        ("/v1/runs", r#"[]"#),
        ("/v1/runs", r#"null"#),
        ("/v1/runs/not-an-id/cancel", "{}"),
        (
            "/v1/runs/01890000-0000-7000-8000-000000000000/cancel",
            r#"{"compensate": "yes"}"#,
        ),
        ("/v1/locks/%00", r#"{"ttl": 60}"#),
        ("/v1/locks/x", r#"{"ttl": -1}"#),
        ("/v1/locks/x", r#"{"ttl": 99999999999999}"#),
    ];
    for (uri, body) in posts {
        let (status, answer) = api.post(uri, body).await;
        assert!(
            status.is_client_error(),
            "{db:?} POST {uri} {body}: {status} {answer}"
        );
        assert!(answer["error"]["code"].is_string(), "POST {uri}: {answer}");
    }
    let gets = [
        "/v1/runs/..%2F..%2Fetc%2Fpasswd",
        "/v1/runs?status=exploded",
        "/v1/runs?limit=0",
        "/v1/runs?limit=abc",
        "/v1/runs?cursor=%27%3B%20DROP",
        "/v1/events?after=garbage",
        "/v1/events?run=nope",
        "/v1/groups/%00",
        "/v1/runs/01890000-0000-7000-8000-000000000000",
    ];
    for uri in gets {
        let (status, answer) = api.get(uri).await;
        assert!(
            status.is_client_error(),
            "{db:?} GET {uri}: {status} {answer}"
        );
        assert!(answer["error"]["code"].is_string(), "GET {uri}: {answer}");
    }
    // Lookups by names no row can have: they find nothing, and never fail.
    for uri in [
        "/v1/runs?workflow=gr%00eet",
        "/v1/runs?group=%00",
        "/v1/runs?status=running&workflow=%27%3B%20DROP%20TABLE%20run%3B%20--",
        "/v1/groups/a%00b",
        "/v1/runs/01890000-0000-7000-8000-000000000000/steps/%00/logs",
        "/v1/events?run=01890000-0000-7000-8000-000000000000&limit=5000",
    ] {
        let (status, answer) = api.get(uri).await;
        assert!(
            !status.is_server_error(),
            "{db:?} GET {uri}: {status} {answer}"
        );
    }
    // The table is intact.
    assert!(api.store.list_runs(Default::default()).await.is_ok());
    api.finish().await;
}

/// Reads SSE frames until `n` events came; returns their (id, event kind) pairs.
async fn sse_events(api: &Api, last_event_id: Option<&str>, n: usize) -> Vec<(String, String)> {
    let mut request = Request::get("/v1/events").header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = api
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        // PostgreSQL serves an event once every older transaction in the cluster has
        // ended, and other tests share it: generous, for a loaded machine.
        let frame = tokio::time::timeout(std::time::Duration::from_secs(60), body.frame())
            .await
            .expect("an event within 60s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_string())
            };
            if let (Some(id), Some(kind)) = (field("id"), field("event")) {
                events.push((id, kind));
            }
        }
    }
    events
}

#[tokio::test]
async fn events_stream_live_and_resume_after_the_last_id_without_gaps() {
    let api = api().await;
    api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let first = sse_events(&api, None, 1).await;
    assert_eq!(first[0].1, "run.created");
    // Events written while nobody listens are there on reconnect, after the last id.
    let (_, run) = api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let id = run["id"].as_str().unwrap();
    api.post(&format!("/v1/runs/{id}/cancel"), "").await;
    let resumed = sse_events(&api, Some(&first[0].0), 3).await;
    let kinds: Vec<&str> = resumed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["run.created", "step.cancelled", "run.cancelled"]);
    let (_, page) = api.get(&format!("/v1/events?after={}", first[0].0)).await;
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_str().unwrap())
        .collect();
    let streamed: Vec<&str> = resumed.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, streamed, "the stream and the pages agree");
    let bad = Request::get("/v1/events")
        .header("accept", "text/event-stream")
        .header("last-event-id", "garbage")
        .body(Body::empty())
        .unwrap();
    let (s, b) = api.send(bad).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_cursor");
    // `after=now` skips the history: only what happens later is served.
    let (_, empty) = api.get("/v1/events?after=now").await;
    assert_eq!(empty["events"], json!([]), "{empty}");
    let (_, later) = api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let (_, page) = api
        .get(&format!(
            "/v1/events?after={}",
            empty["next"].as_str().unwrap()
        ))
        .await;
    let runs: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["run_id"])
        .collect();
    assert_eq!(runs, [&later["id"]], "{page}");
    // `last=N`: the newest N, oldest first, and `next` follows on from them.
    let (_, all) = api.get("/v1/events?limit=5000").await;
    let all = all["events"].as_array().unwrap().clone();
    let (_, tail) = api.get("/v1/events?last=2").await;
    assert_eq!(tail["events"].as_array().unwrap(), &all[all.len() - 2..]);
    assert_eq!(tail["next"], all[all.len() - 1]["cursor"]);
    let (s, b) = api.get("/v1/events?last=2&after=1").await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let (s, b) = api.get("/v1/events?last=0").await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_database_gauges() {
    let api = api().await;
    api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let response = api
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains("stepwise_queue_pending_steps{queue=\"default\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE stepwise_workers_alive gauge"),
        "{text}"
    );
    assert!(text.contains("stepwise_workers_alive 0"), "{text}");
}

#[tokio::test]
async fn workflows_are_put_as_toml_or_json_and_groups_are_sealed_batches() {
    let api = api().await;
    let put = |name: &str, kind: &str, body: &str| {
        Request::put(format!("/v1/workflows/{name}"))
            .header("content-type", kind)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let toml = "name = \"shout\"\n[[steps]]\nname = \"loud\"\nhandler = \"noop\"\n";
    let (status, version) = api.send(put("shout", "application/toml", toml)).await;
    assert_eq!(status, StatusCode::OK, "{version}");
    assert_eq!(version["version"], 1);
    let as_json = r#"{"name": "shout", "steps": [{"name": "loud", "handler": "noop"}]}"#;
    let (status, same) = api.send(put("shout", "application/json", as_json)).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(
        same["changed"], false,
        "the same document keeps its version"
    );
    let (s, b) = api.send(put("other", "application/toml", toml)).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow");
    let (s, b) = api
        .send(put(
            "shout",
            "application/toml",
            "name = \"shout\"\n[[steps]]\nname = \"x\"\nexce = [\"true\"]\n",
        ))
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shout.toml:4:1"),
        "{b}"
    );
    let (s, b) = api.send(put("shout", "image/png", toml)).await;
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (_, listed) = api.get("/v1/workflows").await;
    assert_eq!(listed["workflows"].as_array().unwrap().len(), 2);

    let group = r#"{"name": "batch-1", "runs": [{"workflow": "shout"}, {"workflow": "greet"}]}"#;
    let (status, created) = api.post("/v1/groups", group).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["group"]["total"], 2);
    assert_eq!(created["runs"].as_array().unwrap().len(), 2);
    let (s, b) = api.post("/v1/groups", group).await;
    assert_error(s, &b, StatusCode::CONFLICT, "group_exists");
    let (status, listed) = api.get("/v1/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["groups"][0]["name"], "batch-1");
    assert_eq!(listed["groups"][0]["counts"]["running"], 2, "{listed}");
    let (status, shown) = api.get("/v1/groups/batch-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["remaining"], 2);
    let broken = r#"{"name": "batch-2", "runs": [{"workflow": "shout"}, {"workflow": "nope"}]}"#;
    let (s, b) = api.post("/v1/groups", broken).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_workflow");
    let (s, b) = api.get("/v1/groups/batch-2").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (_, run) = api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let id = run["id"].as_str().unwrap();
    let huge = format!(r#"{{"compensate": true, "pad": "{}"}}"#, "x".repeat(8000));
    let (s, b) = api.post(&format!("/v1/runs/{id}/cancel"), &huge).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

/// Every route × no token, a bad one, an expired one, a revoked one, and one of too
/// low a scope; the health checks need none.
#[tokio::test]
async fn the_auth_matrix() {
    let open = api().await;
    let store = open.store.clone();
    let router = stepwise_server::router(store.clone(), stepwise_server::ServerOptions::default());
    let token = |scope, expires_in| {
        let store = store.clone();
        async move {
            store
                .create_token(&stepwise_store::NewToken {
                    name: format!("{scope:?}"),
                    scope,
                    expires_in,
                })
                .await
                .unwrap()
        }
    };
    use stepwise_store::TokenScope::*;
    let read = token(Read, None).await.secret;
    let write = token(Write, None).await.secret;
    let admin = token(Admin, None).await.secret;
    let expired = token(Admin, Some(std::time::Duration::from_secs(5)))
        .await
        .secret;
    let revoked = token(Admin, None).await;
    store.revoke_token(revoked.token.id).await.unwrap();
    store
        .advance_clock(std::time::Duration::from_secs(6))
        .await
        .unwrap();
    let run = "01890000-0000-7000-8000-000000000000";
    let routes: Vec<(&str, String, stepwise_store::TokenScope)> = vec![
        ("GET", "/v1/runs".into(), Read),
        ("GET", format!("/v1/runs/{run}"), Read),
        ("GET", format!("/v1/runs/{run}/explain"), Read),
        ("GET", "/v1/queues".into(), Read),
        ("GET", "/v1/workers".into(), Read),
        ("GET", "/v1/locks".into(), Read),
        ("GET", "/v1/workflows".into(), Read),
        ("GET", "/v1/groups".into(), Read),
        ("GET", "/v1/events".into(), Read),
        ("GET", "/metrics".into(), Read),
        ("GET", "/v1/openapi.json".into(), Read),
        ("GET", "/v1/groups/nightly".into(), Read),
        ("GET", format!("/v1/runs/{run}/steps/hello/logs"), Read),
        ("POST", "/v1/runs".into(), Write),
        ("POST", format!("/v1/runs/{run}/cancel"), Write),
        ("POST", format!("/v1/runs/{run}/retry"), Write),
        ("POST", "/v1/groups".into(), Write),
        ("POST", format!("/v1/runs/{run}/signals/go"), Write),
        ("POST", "/v1/signals".into(), Write),
        ("PUT", "/v1/workflows/x".into(), Admin),
        ("POST", "/v1/locks/x".into(), Admin),
        ("DELETE", "/v1/locks/x?token=x".into(), Admin),
        ("POST", "/v1/locks/x/force-release".into(), Admin),
        ("GET", "/v1/schedules".into(), Read),
        ("POST", "/v1/schedules/x/pause".into(), Admin),
        ("POST", "/v1/schedules/x/resume".into(), Admin),
        ("POST", "/v1/schedules/x/trigger".into(), Admin),
        ("POST", "/v1/schedules/x/backfill".into(), Admin),
        ("GET", "/v1/limits".into(), Read),
        ("PUT", "/v1/limits/x".into(), Admin),
        ("POST", "/v1/limits/x/pause".into(), Admin),
        ("POST", "/v1/limits/x/resume".into(), Admin),
    ];
    let send = |method: &str, uri: &str, secret: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(secret) = secret {
            request = request.header("authorization", format!("Bearer {secret}"));
        }
        router
            .clone()
            .oneshot(request.body(Body::from("{}")).unwrap())
    };
    for (method, uri, needed) in &routes {
        for (who, secret) in [
            ("no token", None),
            ("a bad token", Some("sw_nonsense")),
            ("an expired token", Some(expired.as_str())),
            ("a revoked token", Some(revoked.secret.as_str())),
        ] {
            let status = send(method, uri, secret).await.unwrap().status();
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} with {who}"
            );
        }
        let lower = match needed {
            Read => None,
            Write => Some(read.as_str()),
            Admin => Some(write.as_str()),
        };
        if let Some(lower) = lower {
            let answer = send(method, uri, Some(lower)).await.unwrap();
            assert_eq!(
                answer.status(),
                StatusCode::FORBIDDEN,
                "{method} {uri} with a lower scope"
            );
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let wanted = match needed {
                Admin => "this needs an admin token",
                _ => "this needs a write token",
            };
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(wanted), "{method} {uri}: {body}");
        }
        let enough = match needed {
            Read => read.as_str(),
            Write => write.as_str(),
            Admin => admin.as_str(),
        };
        let status = send(method, uri, Some(enough)).await.unwrap().status();
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{method} {uri} with enough scope: {status}"
        );
    }
    for path in ["/healthz", "/readyz"] {
        let status = send("GET", path, None).await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{path} needs no token");
    }
    // A lock taken through the API names the token that took it.
    let take = Request::post("/v1/locks/held")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::from(r#"{"ttl": 60}"#))
        .unwrap();
    assert_eq!(
        router.clone().oneshot(take).await.unwrap().status(),
        StatusCode::OK
    );
    let locks = store.list_locks().await.unwrap();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0].holder_id, "api:Admin");
}

/// The dashboard's pages and assets need no token (they call the API with the
/// viewer's own), are served from the binary, and allow nothing from elsewhere.
#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_without_a_token() {
    let open = api().await;
    let router = stepwise_server::router(
        open.store.clone(),
        stepwise_server::ServerOptions::default(),
    );
    let fetch = |path: String| {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(Request::get(path.as_str()).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8_lossy(&body).to_string())
        }
    };
    let run = "01890000-0000-7000-8000-000000000000";
    for page in [
        "/".to_string(),
        format!("/runs/{run}"),
        "/queues".into(),
        "/locks".into(),
        "/workers".into(),
        "/groups".into(),
        "/events".into(),
    ] {
        let (status, headers, body) = fetch(page.clone()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'"));
        assert!(body.contains("/assets/app.js"), "{page}");
    }
    // Every module the app imports is served, with a JavaScript content type.
    let mut pending = vec!["app.js".to_string()];
    let mut served = std::collections::BTreeSet::new();
    while let Some(module) = pending.pop() {
        if !served.insert(module.clone()) {
            continue;
        }
        let (status, headers, body) = fetch(format!("/assets/{module}")).await;
        assert_eq!(status, StatusCode::OK, "{module}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        for import in body.split("from \"./").skip(1) {
            pending.push(import.split('"').next().unwrap().to_string());
        }
    }
    assert!(served.len() >= 5, "{served:?}");
    let (status, headers, _) = fetch("/assets/style.css".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let (status, _, body) = fetch("/assets/../../etc/passwd".into()).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, _, body) = fetch("/assets/nope.js".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The API behind it still wants a token.
    let (status, _, _) = fetch("/v1/runs".into()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// What a page of another site could make a browser send is refused: a changing
/// request from a foreign Origin, and (without tokens) any request for a host name
/// that is not localhost or an IP address (DNS rebinding).
#[tokio::test]
async fn requests_a_foreign_site_could_forge_are_refused() {
    let api = api().await;
    let send = |method: &str, host: &str, origin: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri("/v1/runs")
            .header("host", host)
            .header("content-type", "application/json");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request
            .body(Body::from(r#"{"workflow": "greet"}"#))
            .unwrap()
    };
    let (s, b) = api
        .send(send("POST", "127.0.0.1:8420", Some("http://evil.example")))
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "cross_origin");
    let (s, b) = api.send(send("POST", "127.0.0.1:8420", Some("null"))).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "cross_origin");
    let (s, b) = api
        .send(send(
            "POST",
            "rebound.example:8420",
            Some("http://rebound.example:8420"),
        ))
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "foreign_host");
    let (s, b) = api.send(send("GET", "rebound.example", None)).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "foreign_host");
    // The dashboard's own requests, curl, and health checks under any name pass.
    for (method, host, origin) in [
        ("POST", "127.0.0.1:8420", Some("http://127.0.0.1:8420")),
        ("POST", "localhost:8420", Some("http://localhost:8420")),
        ("POST", "[::1]:8420", None),
        ("GET", "10.0.0.7", None),
    ] {
        let (s, b) = api.send(send(method, host, origin)).await;
        assert!(s.is_success(), "{method} {host} {origin:?}: {s} {b}");
    }
    let health = Request::get("/healthz")
        .header("host", "lb.internal")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(health).await.0, StatusCode::OK);
}

/// What schemathesis found, pinned: a body must be a JSON object (serde would read
/// `[]` as a struct of defaults and cancel the run); `null` is the optional body's
/// default; an empty cursor is the first page; an attempt outside its range is 422.
#[tokio::test]
async fn inputs_schemathesis_found_are_answered_as_documented() {
    let api = api().await;
    let (_, run) = api.post("/v1/runs", r#"{"workflow": "greet"}"#).await;
    let id = run["id"].as_str().unwrap().to_string();
    let (s, b) = api.post(&format!("/v1/runs/{id}/cancel"), "[]").await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let (s, b) = api.post("/v1/runs", r#"["greet"]"#).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let (_, still) = api.get(&format!("/v1/runs/{id}")).await;
    assert_ne!(
        still["status"], "cancelled",
        "a refused body changed nothing"
    );
    let (s, b) = api.post(&format!("/v1/runs/{id}/cancel"), "null").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for uri in ["/v1/runs?cursor=", "/v1/events?after="] {
        let (s, b) = api.get(uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {b}");
    }
    for attempt in ["0", "2147483648"] {
        let (s, b) = api
            .get(&format!("/v1/runs/{id}/steps/hello/logs?attempt={attempt}"))
            .await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    }
}
