//! Schedules through the API: applying a file with `[[schedules]]`, listing, pause
//! and resume, trigger and backfill, with every status each route can answer (the
//! firing itself is proved on both backends by the store's conformance suite and
//! the CLI's process tests; this is the translation to HTTP).

use super::{api, assert_error, Api};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

const NIGHTLY: &str = r#"
name = "digest"
[[steps]]
name = "send"
handler = "noop"

[[schedules]]
name = "nightly-digest"
cron = "0 2 * * *"
timezone = "Europe/Paris"
input = { kind = "digest" }
overlap = "skip"
"#;

async fn put_toml(api: &Api, name: &str, toml: &str) -> (StatusCode, Value) {
    let request = Request::put(format!("/v1/workflows/{name}"))
        .header("content-type", "application/toml")
        .body(Body::from(toml.to_string()))
        .unwrap();
    api.send(request).await
}

fn schedule<'a>(listed: &'a Value, name: &str) -> &'a Value {
    listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spec"]["name"] == name)
        .unwrap_or_else(|| panic!("no schedule {name} in {listed}"))
}

#[tokio::test]
async fn putting_a_workflow_syncs_its_schedules_and_a_taken_name_is_refused() {
    let api = api().await;
    let (status, applied) = put_toml(&api, "digest", NIGHTLY).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["name"], "digest");
    assert_eq!(applied["schedules"]["created"][0], "nightly-digest");
    let (_, again) = put_toml(&api, "digest", NIGHTLY).await;
    assert_eq!(
        again["schedules"]["unchanged"][0], "nightly-digest",
        "{again}"
    );

    let (status, listed) = api.get("/v1/schedules").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let nightly = schedule(&listed, "nightly-digest");
    assert_eq!(nightly["spec"]["workflow"], "digest");
    assert_eq!(nightly["spec"]["timezone"], "Europe/Paris");
    assert_eq!(nightly["paused"], false);
    let next: chrono::DateTime<chrono::Utc> = nightly["next_fire_at"]
        .as_str()
        .expect("a next fire time")
        .parse()
        .unwrap();
    // 02:00 in Paris is 01:00 (winter) or 00:00 (summer) UTC.
    assert!([0, 1].contains(&chrono::Timelike::hour(&next)), "{nightly}");

    // Another workflow may not take the name; nothing of it is registered.
    let thief = NIGHTLY.replace("name = \"digest\"", "name = \"thief\"");
    let (status, body) = put_toml(&api, "thief", &thief).await;
    assert_error(status, &body, StatusCode::CONFLICT, "schedule_name_taken");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nightly-digest") && message.contains("digest"),
        "{body}"
    );
    let (_, workflows) = api.get("/v1/workflows").await;
    assert!(
        !workflows.to_string().contains("\"thief\""),
        "the refused workflow was registered: {workflows}"
    );

    // A schedule left out of the file is removed.
    let without = NIGHTLY.split("[[schedules]]").next().unwrap();
    let (_, applied) = put_toml(&api, "digest", without).await;
    assert_eq!(
        applied["schedules"]["removed"][0], "nightly-digest",
        "{applied}"
    );
    let (_, listed) = api.get("/v1/schedules").await;
    assert_eq!(listed["schedules"], serde_json::json!([]));
    api.finish().await;
}

#[tokio::test]
async fn pause_resume_and_trigger_answer_for_known_schedules_only() {
    let api = api().await;
    put_toml(&api, "digest", NIGHTLY).await;
    let (status, paused) = api.post("/v1/schedules/nightly-digest/pause", "").await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    let (_, listed) = api.get("/v1/schedules").await;
    assert_eq!(schedule(&listed, "nightly-digest")["paused"], true);
    let (status, resumed) = api.post("/v1/schedules/nightly-digest/resume", "").await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["paused"], false);

    for action in ["pause", "resume", "trigger"] {
        let (status, body) = api.post(&format!("/v1/schedules/nope/{action}"), "").await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }

    // A trigger starts a run (even of a paused schedule, and over a running one).
    api.post("/v1/schedules/nightly-digest/pause", "").await;
    let (status, fire) = api.post("/v1/schedules/nightly-digest/trigger", "").await;
    assert_eq!(status, StatusCode::CREATED, "{fire}");
    assert_eq!(fire["outcome"], "fired");
    let run = fire["run_id"].as_str().unwrap();
    let (_, view) = api.get(&format!("/v1/runs/{run}")).await;
    assert_eq!(view["schedule"], "nightly-digest", "{view}");
    assert_eq!(view["scheduled_for"], fire["fire_time"], "{view}");
    assert_eq!(view["input"]["kind"], "digest", "{view}");
    let (status, second) = api.post("/v1/schedules/nightly-digest/trigger", "").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_ne!(second["run_id"], fire["run_id"]);
    let (_, listed) = api.get("/v1/schedules").await;
    let recent = &schedule(&listed, "nightly-digest")["recent_runs"];
    assert_eq!(recent.as_array().unwrap().len(), 2, "{recent}");
    assert_eq!(
        recent[0]["run_id"], second["run_id"],
        "newest first: {recent}"
    );
    api.finish().await;
}

#[tokio::test]
async fn backfill_creates_each_fire_time_once_and_refuses_bad_spans() {
    let api = api().await;
    put_toml(&api, "digest", NIGHTLY).await;
    let uri = "/v1/schedules/nightly-digest/backfill";
    let span = r#"{"from": "2026-01-10T00:00:00Z", "to": "2026-01-13T00:00:00Z"}"#;
    let (status, first) = api.post(uri, span).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let fires = first["fires"].as_array().unwrap();
    // 02:00 Paris (UTC+1 in January) on the 10th, 11th and 12th.
    let times: Vec<&str> = fires
        .iter()
        .map(|f| f["fire_time"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-01-10T01:00:00Z",
            "2026-01-11T01:00:00Z",
            "2026-01-12T01:00:00Z"
        ],
        "{first}"
    );
    assert!(fires.iter().all(|f| f["outcome"] == "fired"), "{first}");
    let (status, again) = api.post(uri, span).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    for (a, b) in fires.iter().zip(again["fires"].as_array().unwrap()) {
        assert_eq!(b["outcome"], "existing", "{again}");
        assert_eq!(a["run_id"], b["run_id"], "{again}");
    }

    let backwards = r#"{"from": "2026-01-13T00:00:00Z", "to": "2026-01-10T00:00:00Z"}"#;
    let (status, body) = api.post(uri, backwards).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    let too_long = r#"{"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}"#;
    let (status, body) = api.post(uri, too_long).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1000"),
        "{body}"
    );
    let (status, body) = api
        .post(uri, r#"{"from": "yesterday", "to": "today"}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.post(uri, r#"{"from": "2026-01-10T00:00:00Z"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.post(uri, "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.post("/v1/schedules/nope/backfill", span).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    api.finish().await;
}
