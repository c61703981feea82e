//! Rate limits through the API: list, set, pause and resume a key, with every
//! status each route can answer, the key's metrics, and `explain` for a step its
//! key holds back (admission itself is proved on both backends by the store's
//! conformance suite and the CLI's process tests; this is the translation to HTTP).

use super::{api, api_on, assert_error, Api, Db};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const METERED: &str = r#"
name = "metered"
[[steps]]
name = "call"
handler = "noop"
rate_limit = { key = "openai:{{ input.tenant }}", limit = 600, per = "1m", burst = 60 }
"#;

async fn put(api: &Api, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::put(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    api.send(request).await
}

async fn metered_run(api: &Api, tenant: &str) -> String {
    let request = Request::put("/v1/workflows/metered")
        .header("content-type", "application/toml")
        .body(Body::from(METERED))
        .unwrap();
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let start = json!({"workflow": "metered", "input": {"tenant": tenant}}).to_string();
    let (status, run) = api.post("/v1/runs", &start).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run["id"].as_str().unwrap().to_string()
}

fn key<'a>(listed: &'a Value, name: &str) -> &'a Value {
    listed["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == name)
        .unwrap_or_else(|| panic!("no key {name} in {listed}"))
}

#[tokio::test]
async fn keys_are_listed_set_paused_and_resumed() {
    let api = api().await;
    let (status, listed) = api.get("/v1/limits").await;
    assert_eq!((status, &listed), (StatusCode::OK, &json!({"limits": []})));
    let run = metered_run(&api, "acme").await;
    let (_, listed) = api.get("/v1/limits").await;
    let acme = key(&listed, "openai:acme");
    assert_eq!(
        (&acme["limit"], &acme["per_ms"], &acme["burst"]),
        (&json!(600), &json!(60_000), &json!(60)),
        "{acme}"
    );
    assert_eq!(
        (&acme["waiting"], &acme["overridden"]),
        (&json!(1), &json!(false))
    );

    let (status, set) = put(
        &api,
        "/v1/limits/openai:acme",
        json!({"limit": 10, "per": "1s"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        (
            &set["limit"],
            &set["per_ms"],
            &set["burst"],
            &set["overridden"]
        ),
        (&json!(10), &json!(1000), &json!(1), &json!(true)),
        "{set}"
    );
    let (status, set) = put(
        &api,
        "/v1/limits/new:key",
        json!({"limit": 5, "per_ms": 2500, "burst": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!((&set["per_ms"], &set["burst"]), (&json!(2500), &json!(2)));
    let (_, set) = put(&api, "/v1/limits/secs", json!({"limit": 5, "per": 60})).await;
    assert_eq!(set["per_ms"], 60_000, "{set}");

    let (status, paused) = api
        .post("/v1/limits/openai:acme/pause", r#"{"for": "10m"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert!(paused["paused_until"].is_string(), "{paused}");
    // The held-back step says why.
    let (_, explained) = api.get(&format!("/v1/runs/{run}/explain")).await;
    let step = &explained["steps"][0];
    assert_eq!(step["reason"], "rate_limited", "{explained}");
    assert_eq!(step["key"], "openai:acme", "{explained}");
    assert_eq!(step["paused"], true, "{explained}");
    let until: chrono::DateTime<chrono::Utc> =
        paused["paused_until"].as_str().unwrap().parse().unwrap();
    assert!(
        step["message"].as_str().unwrap().starts_with(&format!(
            "rate limited on openai:acme until {}",
            until.to_rfc3339()
        )),
        "{step}"
    );
    let at = "2999-01-01T00:00:00Z";
    let (status, paused) = api
        .post(
            "/v1/limits/openai:acme/pause",
            &json!({ "until": at }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(
        paused["paused_until"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        at.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    );
    let (status, resumed) = api.post("/v1/limits/openai:acme/resume", "").await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["paused_until"], Value::Null, "{resumed}");
    let (_, explained) = api.get(&format!("/v1/runs/{run}/explain")).await;
    assert_ne!(
        explained["steps"][0]["reason"], "rate_limited",
        "{explained}"
    );

    let (_, events) = api.get("/v1/events").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"limit.paused") && kinds.contains(&"limit.resumed"),
        "{kinds:?}"
    );
    api.finish().await;
}

#[tokio::test]
async fn bad_settings_and_unknown_keys_are_4xx() {
    for db in [Db::Sqlite, Db::Postgres] {
        if db == Db::Postgres && stepwise_testkit::skip_postgres() {
            continue;
        }
        let api = api_on(db).await;
        for bad in [
            json!({"limit": 0, "per": "1s"}),
            json!({"limit": 10}),
            json!({"limit": 10, "per": "1s", "per_ms": 1000}),
            json!({"limit": 10, "per": "soon"}),
            json!({"limit": 10, "per": -1}),
            json!({"limit": 10, "per": "0s"}),
            json!({"limit": 10, "per_ms": 0}),
            json!({"limit": 10, "per": "400d"}),
            json!({"limit": 10, "per": "1s", "burst": 0}),
            json!({"limit": 4294967296u64, "per": "1s"}),
            json!({"limit": 3000000000u64, "per": "1s"}),
            json!({"limit": 10, "per": "1s", "extra": true}),
            json!({"limit": 10, "per": u64::MAX}),
        ] {
            let (status, body) = put(&api, "/v1/limits/api", bad.clone()).await;
            assert_error(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            );
            let _ = bad;
        }
        let long = "k".repeat(600);
        let (status, body) = put(
            &api,
            &format!("/v1/limits/{long}"),
            json!({"limit": 1, "per": "1s"}),
        )
        .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
        let (status, body) = put(
            &api,
            "/v1/limits/nul%00key",
            json!({"limit": 1, "per": "1s"}),
        )
        .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );

        let (status, _) = put(&api, "/v1/limits/api", json!({"limit": 1, "per": "1s"})).await;
        assert_eq!(status, StatusCode::OK);
        for bad in [
            "{}",
            r#"{"for": "1m", "until": "2999-01-01T00:00:00Z"}"#,
            r#"{"for": "0s"}"#,
            r#"{"for": "soon"}"#,
            r#"{"for": "400d"}"#,
            r#"{"until": "tomorrow"}"#,
            r#"{"until": "2000-01-01T00:00:00Z"}"#,
            "[]",
        ] {
            let (status, body) = api.post("/v1/limits/api/pause", bad).await;
            assert_error(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            );
        }
        let (status, body) = api.post("/v1/limits/api/pause", "{").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        let (status, body) = api.post("/v1/limits/none/pause", r#"{"for": "1m"}"#).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = api.post("/v1/limits/none/resume", "").await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        api.finish().await;
    }
}

#[tokio::test]
async fn metrics_have_a_series_per_key() {
    let api = api().await;
    metered_run(&api, "acme").await;
    api.post("/v1/limits/openai:acme/pause", r#"{"for": "1h"}"#)
        .await;
    let response = api
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for line in [
        "# TYPE stepwise_rate_limit_admitted_total counter",
        "stepwise_rate_limit_admitted_total{key=\"openai:acme\"} 0",
        "stepwise_rate_limit_waiting{key=\"openai:acme\"} 1",
        "stepwise_rate_limit_paused{key=\"openai:acme\"} 1",
        "stepwise_rate_limit_keys 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}
