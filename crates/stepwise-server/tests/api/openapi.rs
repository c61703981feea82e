//! The OpenAPI document: it lists every route of the contract (docs/design.md "Outside interfaces") and nothing else, every
//! error it documents has the error schema, and what the server answers is what the
//! document says it may answer.

use super::api;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::BTreeSet;
use tower::ServiceExt;

/// The contract's HTTP API, route by route.
const DESIGN_ROUTES: &[(&str, &str)] = &[
    ("put", "/v1/workflows/{name}"),
    ("get", "/v1/workflows"),
    ("post", "/v1/runs"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("post", "/v1/runs/{id}/cancel"),
    ("post", "/v1/runs/{id}/retry"),
    ("get", "/v1/runs/{id}/explain"),
    ("get", "/v1/runs/{id}/steps/{step}/logs"),
    ("get", "/v1/runs/{id}/steps/{step}/items"),
    ("post", "/v1/runs/{id}/signals/{name}"),
    ("post", "/v1/signals"),
    ("post", "/v1/callbacks/{token}"),
    ("post", "/v1/groups"),
    ("get", "/v1/groups"),
    ("get", "/v1/groups/{name}"),
    ("get", "/v1/queues"),
    ("get", "/v1/workers"),
    ("get", "/v1/locks"),
    ("post", "/v1/locks/{key}"),
    ("delete", "/v1/locks/{key}"),
    ("post", "/v1/locks/{key}/force-release"),
    ("get", "/v1/events"),
    ("get", "/v1/schedules"),
    ("post", "/v1/schedules/{name}/pause"),
    ("post", "/v1/schedules/{name}/resume"),
    ("post", "/v1/schedules/{name}/trigger"),
    ("post", "/v1/schedules/{name}/backfill"),
    ("get", "/v1/limits"),
    ("put", "/v1/limits/{key}"),
    ("post", "/v1/limits/{key}/pause"),
    ("post", "/v1/limits/{key}/resume"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

async fn document() -> Value {
    let api = api().await;
    let (status, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    doc
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), operation));
            }
        }
    }
    found
}

fn statuses(operation: &Value) -> BTreeSet<u16> {
    operation["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|s| s.parse().expect("a numeric status"))
        .collect()
}

#[tokio::test]
async fn openapi_lists_every_route_and_nothing_else() {
    let doc = document().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let listed: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let designed: BTreeSet<(String, String)> = DESIGN_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, designed);
}

#[tokio::test]
async fn every_documented_error_has_the_error_schema_and_refs_resolve() {
    let doc = document().await;
    for (method, path, operation) in operations(&doc) {
        let statuses = statuses(operation);
        let public = path == "/healthz" || path == "/readyz";
        // A callback's token is its credential: no bearer token, but a database.
        let tokenless = public || path == "/v1/callbacks/{token}";
        let mut required: Vec<u16> = vec![405];
        if !tokenless {
            required.extend([401, 403]);
        }
        if !public {
            required.push(500);
        }
        if !operation["requestBody"].is_null() {
            required.extend([400, 413, 415, 422]);
        }
        for status in required {
            assert!(
                statuses.contains(&status),
                "{method} {path} does not document {status}: {statuses:?}"
            );
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            if status.as_str() < "400" {
                continue;
            }
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        assert_eq!(secured, !tokenless, "{method} {path} security");
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "{refs:?}");
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{reference} does not resolve"
        );
    }
}

/// Links lead from what an answer names to the operations that take it.
#[tokio::test]
async fn links_name_operations_that_exist() {
    let doc = document().await;
    let ids: BTreeSet<String> = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_string))
        .collect();
    let started = &doc["paths"]["/v1/runs"]["post"]["responses"]["201"]["links"];
    assert_eq!(started["show"]["parameters"]["id"], "$response.body#/id");
    let mut links = 0;
    for (_, _, operation) in operations(&doc) {
        for response in operation["responses"].as_object().unwrap().values() {
            for link in response["links"]
                .as_object()
                .into_iter()
                .flat_map(|l| l.values())
            {
                links += 1;
                let target = link["operationId"].as_str().unwrap();
                assert!(
                    ids.contains(target),
                    "a link to {target}, which is not an operation"
                );
            }
        }
    }
    assert!(links >= 10, "{links} links");
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref" {
                    refs.push(inner.as_str().unwrap().to_string());
                } else {
                    collect_refs(inner, refs);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// Requests that exercise the extractors' rejections and the handlers' own errors:
/// each answer's status must be one the document lists for that operation.
#[tokio::test]
async fn the_server_answers_only_what_the_document_lists() {
    let api = api().await;
    let (_, doc) = api.get("/v1/openapi.json").await;
    let run = "01890000-0000-7000-8000-000000000000";
    let json = "application/json";
    // (method, uri, the documented path, content type, body)
    let cases: Vec<(&str, String, &str, &str, String)> = vec![
        ("post", "/v1/runs".into(), "/v1/runs", json, "{".into()),
        (
            "post",
            "/v1/runs".into(),
            "/v1/runs",
            "text/plain",
            "{}".into(),
        ),
        ("post", "/v1/runs".into(), "/v1/runs", json, "{}".into()),
        (
            "post",
            "/v1/runs".into(),
            "/v1/runs",
            json,
            r#"{"workflow": "nope"}"#.into(),
        ),
        (
            "post",
            "/v1/runs".into(),
            "/v1/runs",
            json,
            "x".repeat(5000),
        ),
        (
            "post",
            "/v1/runs".into(),
            "/v1/runs",
            json,
            r#"{"workflow": "greet"}"#.into(),
        ),
        ("patch", "/v1/runs".into(), "/v1/runs", json, String::new()),
        (
            "get",
            "/v1/runs?limit=abc".into(),
            "/v1/runs",
            json,
            String::new(),
        ),
        (
            "get",
            "/v1/runs?bogus=1".into(),
            "/v1/runs",
            json,
            String::new(),
        ),
        (
            "get",
            "/v1/runs?limit=0".into(),
            "/v1/runs",
            json,
            String::new(),
        ),
        (
            "get",
            "/v1/runs/nope".into(),
            "/v1/runs/{id}",
            json,
            String::new(),
        ),
        (
            "get",
            format!("/v1/runs/{run}"),
            "/v1/runs/{id}",
            json,
            String::new(),
        ),
        (
            "post",
            format!("/v1/runs/{run}/cancel"),
            "/v1/runs/{id}/cancel",
            json,
            "[".into(),
        ),
        (
            "post",
            format!("/v1/runs/{run}/retry"),
            "/v1/runs/{id}/retry",
            json,
            String::new(),
        ),
        (
            "get",
            format!("/v1/runs/{run}/steps/x/logs?attempt=-1"),
            "/v1/runs/{id}/steps/{step}/logs",
            json,
            String::new(),
        ),
        (
            "get",
            format!("/v1/runs/{run}/steps/x/items?from=-1"),
            "/v1/runs/{id}/steps/{step}/items",
            json,
            String::new(),
        ),
        (
            "get",
            format!("/v1/runs/{run}/steps/x/items?limit=1001"),
            "/v1/runs/{id}/steps/{step}/items",
            json,
            String::new(),
        ),
        (
            "get",
            format!("/v1/runs/{run}/steps/x/items"),
            "/v1/runs/{id}/steps/{step}/items",
            json,
            String::new(),
        ),
        (
            "get",
            "/v1/runs?parent=nope".into(),
            "/v1/runs",
            json,
            String::new(),
        ),
        (
            "put",
            "/v1/workflows/x".into(),
            "/v1/workflows/{name}",
            "image/png",
            "x".into(),
        ),
        (
            "put",
            "/v1/workflows/x".into(),
            "/v1/workflows/{name}",
            "application/toml",
            "name = 1".into(),
        ),
        (
            "put",
            "/v1/workflows/x".into(),
            "/v1/workflows/{name}",
            json,
            "{".into(),
        ),
        (
            "post",
            "/v1/locks/x".into(),
            "/v1/locks/{key}",
            json,
            r#"{"ttl": "soon"}"#.into(),
        ),
        (
            "delete",
            "/v1/locks/x".into(),
            "/v1/locks/{key}",
            json,
            String::new(),
        ),
        (
            "delete",
            "/v1/locks/x?token=abc".into(),
            "/v1/locks/{key}",
            json,
            String::new(),
        ),
        (
            "post",
            "/v1/locks/x/force-release".into(),
            "/v1/locks/{key}/force-release",
            json,
            "{}".into(),
        ),
        (
            "get",
            "/v1/events?after=garbage".into(),
            "/v1/events",
            json,
            String::new(),
        ),
        (
            "get",
            "/v1/events?limit=0".into(),
            "/v1/events",
            json,
            String::new(),
        ),
        (
            "get",
            "/v1/groups/none".into(),
            "/v1/groups/{name}",
            json,
            String::new(),
        ),
        (
            "post",
            "/v1/groups".into(),
            "/v1/groups",
            json,
            r#"{"name": "g", "runs": 3}"#.into(),
        ),
        (
            "post",
            "/v1/schedules/none/pause".into(),
            "/v1/schedules/{name}/pause",
            json,
            String::new(),
        ),
        (
            "post",
            "/v1/schedules/none/trigger".into(),
            "/v1/schedules/{name}/trigger",
            json,
            String::new(),
        ),
        (
            "post",
            "/v1/schedules/none/backfill".into(),
            "/v1/schedules/{name}/backfill",
            json,
            r#"{"from": "yesterday", "to": "2026-01-01T00:00:00Z"}"#.into(),
        ),
        (
            "post",
            "/v1/schedules/none/backfill".into(),
            "/v1/schedules/{name}/backfill",
            json,
            r#"{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}"#.into(),
        ),
        (
            "post",
            "/v1/schedules/none/backfill".into(),
            "/v1/schedules/{name}/backfill",
            json,
            r#"{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}"#.into(),
        ),
        (
            "put",
            "/v1/limits/api".into(),
            "/v1/limits/{key}",
            json,
            r#"{"limit": 0, "per": "1s"}"#.into(),
        ),
        (
            "post",
            "/v1/limits/none/pause".into(),
            "/v1/limits/{key}/pause",
            json,
            r#"{"for": "1m"}"#.into(),
        ),
        (
            "post",
            "/v1/limits/none/resume".into(),
            "/v1/limits/{key}/resume",
            json,
            String::new(),
        ),
        (
            "post",
            format!("/v1/limits/{}/resume", "k".repeat(600)),
            "/v1/limits/{key}/resume",
            json,
            String::new(),
        ),
        ("delete", "/healthz".into(), "/healthz", json, String::new()),
    ];
    for (method, uri, path, content_type, body) in cases {
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header("content-type", content_type)
            .body(Body::from(body.clone()))
            .unwrap();
        let response = api.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let item = &doc["paths"][path];
        assert!(item.is_object(), "{path} is not documented");
        // A method the path does not serve is answered as its other operations
        // document 405.
        let operation = if item[method].is_object() {
            &item[method]
        } else {
            item.as_object()
                .unwrap()
                .values()
                .find(|op| op["responses"]["405"].is_object())
                .expect("an operation documenting 405")
        };
        assert!(
            statuses(operation).contains(&status),
            "{method} {uri} answered {status}, which {path} does not document: {}",
            String::from_utf8_lossy(&bytes)
        );
        if status >= 400 {
            let answer: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{method} {uri}: {status} is not JSON: {bytes:?}"));
            assert!(
                answer["error"]["code"].is_string(),
                "{method} {uri}: {answer}"
            );
        }
    }
}

/// The run object documents why a run stopped early, with its three values.
#[tokio::test]
async fn the_run_schema_says_why_a_run_stopped() {
    let doc = document().await;
    let schemas = &doc["components"]["schemas"];
    let field = &schemas["RunView"]["properties"]["stop_reason"];
    assert!(!field.is_null(), "{}", schemas["RunView"]);
    let mut refs = Vec::new();
    collect_refs(field, &mut refs);
    assert_eq!(refs, ["#/components/schemas/StopReason"], "{field}");
    let values: BTreeSet<&str> = schemas["StopReason"]["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(values, BTreeSet::from(["failed", "timed_out", "cancelled"]));
}
