//! Workflow documents with `http` steps that call real services, sent as JSON.

use super::{api, assert_error};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

#[tokio::test]
async fn json_documents_take_http_headers_body_and_ca_file() {
    let api = api().await;
    let put = |body: serde_json::Value| {
        Request::put("/v1/workflows/embed")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let http = json!({
        "url": "https://api.example.com/v1/embeddings",
        "headers": {"Authorization": "Bearer ${EMBED_API_KEY}", "X-Run": "{{ run_id }}"},
        "body": {"model": "small", "input": "{{ steps.read.text }}", "n": [1, 2]},
        "ca_file": "/etc/ssl/private-ca.pem"
    });
    let document = json!({"name": "embed", "steps": [
        {"name": "read", "exec": ["./read.sh"]},
        {"name": "call", "http": http},
    ]});
    let (status, version) = api.send(put(document)).await;
    assert_eq!(status, StatusCode::OK, "{version}");
    let (_, listed) = api.get("/v1/workflows").await;
    assert!(
        listed.to_string().contains("Bearer ${EMBED_API_KEY}"),
        "{listed}"
    );

    let bad = json!({"name": "embed", "steps": [
        {"name": "call", "http": {"url": "https://x", "headers": {"A": "{{ secrets.key }}"}}},
    ]});
    let (status, body) = api.send(put(bad)).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_workflow",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("steps[0].http.headers: header \"A\": unknown variable `secrets`"),
        "{message}"
    );
    api.finish().await;
}
