//! The engine's metrics as a scraper sees them: a standalone worker's
//! `--metrics-listen`, and the server's in-process worker, each described from the start.

use crate::support::{eventually, ok, runs_json, Backend, Background, Scratch, TestDb};
use std::io::{Read, Write};
use std::time::Duration;
use stepwise::engine::metrics::{
    COUNTERS, HISTOGRAMS, STEPS_CLAIMED, STEPS_COMPLETED, STEPS_HANDED_OFF,
};

/// `GET http://ADDR/metrics`: the status code and the body.
pub(crate) fn scrape(addr: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// The value of the unlabelled series `name` in a scrape.
pub(crate) fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_worker_serves_every_metric_described_from_zero_and_counts_a_pipeline() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let file = scratch.write(
        "w.toml",
        "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\n\
         [[steps]]\nname = \"b\"\nexec = [\"true\"]\n",
    );
    ok(url, &["apply", file.to_str().unwrap()]);
    let worker = Background::spawn(
        url,
        // One consumer: the claimer waits for its permit, so b can only be handed off.
        &["worker", "--pool", "*=1", "--metrics-listen", "127.0.0.1:0"],
        &scratch,
        "worker",
    );
    let addr = eventually(
        "the worker to say where it serves metrics",
        Duration::from_secs(30),
        || {
            let text = worker.stderr_text();
            let rest = text.split_once("metrics on http://")?.1;
            Some(rest.split_once("/metrics")?.0.to_string())
        },
    );

    let (status, text) = scrape(&addr);
    assert_eq!(status, 200, "{text}");
    for (name, _) in COUNTERS.iter().chain(HISTOGRAMS) {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is described:\n{text}"
        );
    }
    for (name, _) in COUNTERS {
        assert!(
            value(&text, name).is_some(),
            "{name} has a series before its first increment:\n{text}"
        );
    }
    assert_eq!(value(&text, STEPS_COMPLETED), Some(0.0), "{text}");

    ok(url, &["run", "w"]);
    eventually("the run completed", Duration::from_secs(60), || {
        (runs_json(url)[0]["status"] == "completed").then_some(())
    });
    // The counter moves just after the outcome commits.
    eventually("the completion counted", Duration::from_secs(30), || {
        let (_, text) = scrape(&addr);
        (value(&text, STEPS_COMPLETED) == Some(2.0)).then_some(text)
    });
    let (_, text) = scrape(&addr);
    assert_eq!(value(&text, STEPS_CLAIMED), Some(2.0), "{text}");
    // b was claimed by the transaction that completed a.
    assert_eq!(value(&text, STEPS_HANDED_OFF), Some(1.0), "{text}");
    worker.signal(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn the_servers_worker_metrics_are_described_from_the_start() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let server = Background::spawn(
        &db.url,
        &["server", "--insecure-no-auth", "--listen", "127.0.0.1:0"],
        &scratch,
        "server",
    );
    let addr = eventually(
        "the server to say where it listens",
        Duration::from_secs(30),
        || {
            let text = server.stderr_text();
            let rest = text.split_once("stepwise server on http://")?.1;
            Some(rest.split_once(' ')?.0.to_string())
        },
    );
    // The in-process worker describes its metrics as it starts, just after the
    // listener; wait for that, then every one must be there.
    let text = eventually("the worker's metrics", Duration::from_secs(30), || {
        let (status, text) = scrape(&addr);
        (status == 200 && value(&text, STEPS_COMPLETED).is_some()).then_some(text)
    });
    for (name, _) in COUNTERS.iter().chain(HISTOGRAMS) {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is described:\n{text}"
        );
    }
    server.signal(nix::sys::signal::Signal::SIGTERM);
}
