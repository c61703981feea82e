//! `stepwise server` as a real listening process, spoken to over TCP.

use crate::support::{eventually, ok, stepwise, Backend, Background, Scratch, TestDb};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 exchange; returns the status code and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
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
    let addr = eventually("the server listening", Duration::from_secs(30), || {
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
        Duration::from_secs(60),
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
