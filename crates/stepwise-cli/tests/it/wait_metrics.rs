//! The waiting-step metrics as a scraper of `stepwise server` sees them: steps parked
//! and waiting per kind, signals stored through the API and callbacks it refused.

use crate::support::{eventually, ok, run_json, Backend, Background, Scratch, TestDb};
use crate::worker_metrics::{scrape, value};
use std::io::{Read, Write};
use std::time::Duration;

/// `POST http://ADDR{path}` with a JSON body: the status code.
fn post(addr: &str, path: &str, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer[9..12].parse().unwrap()
}

#[test]
fn parks_waits_signals_and_refused_callbacks_are_counted() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let file = scratch.write(
        "gate.toml",
        "name = \"gate\"\n[[steps]]\nname = \"wait\"\nwait = { signal = \"go\" }\n",
    );
    ok(url, &["apply", file.to_str().unwrap()]);
    let server = Background::spawn(
        url,
        &["server", "--insecure-no-auth", "--listen", "127.0.0.1:0"],
        &scratch,
        "server",
    );
    let addr = eventually("the server's address", Duration::from_secs(30), || {
        let text = server.stderr_text();
        let rest = text.split_once("stepwise server on http://")?.1;
        Some(rest.split_once(' ')?.0.to_string())
    });
    let (_, text) = scrape(&addr);
    assert_eq!(
        value(&text, "stepwise_signals_received_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "stepwise_callbacks_refused_total"),
        Some(0.0),
        "{text}"
    );
    let run = ok(url, &["run", "gate"]).trim().to_string();
    eventually("the step waiting", Duration::from_secs(60), || {
        (run_json(url, &run)["steps"][0]["status"] == "waiting").then_some(())
    });
    let text = eventually("the park counted", Duration::from_secs(30), || {
        let (_, text) = scrape(&addr);
        (value(&text, "stepwise_steps_parked_total{kind=\"signal\"}") == Some(1.0)).then_some(text)
    });
    assert_eq!(
        value(&text, "stepwise_steps_waiting{kind=\"signal\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "stepwise_steps_waiting{kind=\"sleep\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        post(&addr, &format!("/v1/runs/{run}/signals/go"), "{}"),
        202
    );
    assert_eq!(
        post(&addr, "/v1/callbacks/sw_nope", r#"{"output": 1}"#),
        409
    );
    let (_, text) = scrape(&addr);
    assert_eq!(
        value(&text, "stepwise_signals_received_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "stepwise_callbacks_refused_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "stepwise_steps_waiting{kind=\"signal\"}"),
        Some(0.0),
        "{text}"
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
}
