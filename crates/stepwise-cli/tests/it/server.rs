//! `stepwise server` as a real listening process, spoken to over TCP.

use crate::support::{eventually, ok, stepwise, Backend, Background, Scratch, TestDb};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 exchange; returns the status code and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_as(addr, None, method, path, body)
}

/// Like [`http`], with a bearer token.
fn http_as(addr: &str, token: Option<&str>, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

const WORKFLOW: &str = r#"
name = "hello"
[[steps]]
name = "say"
exec = ["sh", "-c", "echo '{\"said\": \"hi\"}'"]
"#;

#[test]
fn the_server_runs_what_clients_start() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let file = scratch.write("hello.toml", WORKFLOW);
    ok(url, &["apply", file.to_str().unwrap()]);

    let refused = stepwise(url, &["server", "--listen", "127.0.0.1:0"]);
    assert_eq!(refused.status.code(), Some(2), "no auth means no server");

    let server = Background::spawn(
        url,
        &["server", "--insecure-no-auth", "--listen", "127.0.0.1:0"],
        &scratch,
        "server",
    );
    let addr = eventually("the server listening", Duration::from_secs(120), || {
        let text = server.stderr_text();
        let start = text.find("http://")? + "http://".len();
        let rest = &text[start..];
        Some(rest[..rest.find(' ')?].to_string())
    });
    assert_eq!(http(&addr, "GET", "/healthz", "").0, 200);
    let (status, body) = http(&addr, "POST", "/v1/runs", r#"{"workflow": "hello"}"#);
    assert_eq!(status, 201, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let done = eventually(
        "the run completed by the in-process worker",
        Duration::from_secs(120),
        || {
            let (_, body) = http(&addr, "GET", &format!("/v1/runs/{id}"), "");
            let run: serde_json::Value = serde_json::from_str(&body).ok()?;
            (run["status"] == "completed").then_some(run)
        },
    );
    assert_eq!(done["steps"][0]["output"]["said"], "hi");
    let (status, metrics) = http(&addr, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("stepwise_steps_claimed_total"),
        "{metrics}"
    );
    assert!(metrics.contains("stepwise_workers_alive 1"), "{metrics}");
    let (status, body) = http(&addr, "POST", "/v1/runs", "{not json");
    assert_eq!(status, 400, "{body}");
    server.signal(nix::sys::signal::Signal::SIGTERM);
}

fn listening(server: &Background) -> String {
    eventually("the server listening", Duration::from_secs(120), || {
        let text = server.stderr_text();
        let start = text.find("http://")? + "http://".len();
        let rest = &text[start..];
        Some(rest[..rest.find(' ')?].to_string())
    })
}

#[test]
fn with_a_token_the_server_asks_for_it() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let file = scratch.write("hello.toml", WORKFLOW);
    ok(url, &["apply", file.to_str().unwrap()]);
    let secret = ok(
        url,
        &["tokens", "create", "--scope", "write", "--name", "ci"],
    );
    let secret = secret.lines().last().unwrap().trim().to_string();
    assert!(secret.starts_with("sw_"), "{secret}");
    let listed = ok(url, &["tokens", "list", "--json"]);
    assert!(
        !listed.contains(&secret),
        "a listing never shows the secret"
    );
    assert_eq!(
        stepwise(url, &["tokens", "create", "--scope", "root"])
            .status
            .code(),
        Some(2)
    );
    let server = Background::spawn(
        url,
        &["server", "--no-worker", "--listen", "127.0.0.1:0"],
        &scratch,
        "server",
    );
    let addr = listening(&server);
    assert_eq!(http(&addr, "GET", "/healthz", "").0, 200);
    assert_eq!(http(&addr, "GET", "/v1/runs", "").0, 401);
    let body = r#"{"workflow": "hello"}"#;
    assert_eq!(
        http_as(&addr, Some(&secret), "POST", "/v1/runs", body).0,
        201
    );
    assert_eq!(
        http_as(&addr, Some(&secret), "POST", "/v1/locks/x", r#"{"ttl": 5}"#).0,
        403,
        "locks need admin"
    );
    let tokens: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let id = tokens[0]["id"].as_str().unwrap();
    ok(url, &["tokens", "revoke", id]);
    assert_eq!(http_as(&addr, Some(&secret), "GET", "/v1/runs", "").0, 401);
    server.signal(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn dev_applies_a_directory_and_serves_loopback_without_tokens() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    std::fs::create_dir(scratch.path().join("flows")).unwrap();
    scratch.write("flows/hello.toml", WORKFLOW);
    scratch.write("flows/notes.txt", "not a workflow");
    let flows = scratch.path().join("flows");
    let dev = Background::spawn(
        url,
        &[
            "dev",
            "--workflows",
            flows.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &scratch,
        "dev",
    );
    let addr = listening(&dev);
    let (status, body) = http(&addr, "POST", "/v1/runs", r#"{"workflow": "hello"}"#);
    assert_eq!(status, 201, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    eventually("the run completed", Duration::from_secs(120), || {
        let (_, body) = http(&addr, "GET", &format!("/v1/runs/{id}"), "");
        let run: serde_json::Value = serde_json::from_str(&body).ok()?;
        (run["status"] == "completed").then_some(())
    });
    dev.signal(nix::sys::signal::Signal::SIGTERM);
}
