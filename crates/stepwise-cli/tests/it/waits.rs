//! Steps that wait, with real worker processes: a waiting step holds no consumer, a
//! kill -9 during a wait loses nothing, a sleep due while no worker ran ends when one
//! starts, and a callback ends its attempt once (docs/design.md "Steps that wait").

use crate::support::on_both_backends;
use crate::support::{
    advance_clock, eventually, ok, run_json, stepwise, Backend, Background, Scratch, TestDb,
};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

on_both_backends!(
    waiting_steps_hold_no_consumer,
    kill_9_during_a_wait_loses_nothing,
    a_sleep_due_while_no_worker_runs_completes_when_one_starts,
    a_callback_step_ends_by_its_token_once,
    a_child_that_calls_back_before_it_exits_completes_its_step,
    a_signal_by_key_starts_the_run_and_waits_in_its_mailbox,
);

/// Waits for a signal, then works.
const GATE: &str = r#"
name = "gate"
[[steps]]
name = "wait"
wait = { signal = "go", timeout = "1h" }
[[steps]]
name = "after"
after = ["wait"]
exec = ["sh", "-c", "cat > /dev/null; echo '{\"after\": true}'"]
"#;

const OTHER: &str = r#"
name = "other"
[[steps]]
name = "work"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
"#;

fn setup(backend: Backend, scratch: &Scratch, files: &[&str]) -> TestDb {
    let db = TestDb::new(backend, scratch);
    for (i, toml) in files.iter().enumerate() {
        let file = scratch.write(&format!("workflow{i}.toml"), toml);
        ok(&db.url, &["apply", file.to_str().unwrap()]);
    }
    db
}

fn start(url: &str, workflow: &str) -> String {
    ok(url, &["run", workflow, "--input", "{}"])
        .trim()
        .to_string()
}

fn worker(url: &str, scratch: &Scratch, name: &str) -> Background {
    Background::spawn(
        url,
        &["worker", "--pool", "*=1", "--lease", "2s"],
        scratch,
        name,
    )
}

fn step_status(url: &str, run: &str, step: &str) -> String {
    let view = run_json(url, run);
    let found = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .cloned()
        .unwrap_or(Value::Null);
    found["status"].as_str().unwrap_or_default().to_string()
}

fn wait_until_waiting(url: &str, run: &str, step: &str) {
    eventually(&format!("{run}'s step {step} waiting"), PATIENCE, || {
        (step_status(url, run, step) == "waiting").then_some(())
    });
}

fn wait_until_completed(url: &str, run: &str) -> Value {
    eventually(&format!("run {run} completed"), PATIENCE, || {
        let view = run_json(url, run);
        let status = view["status"].as_str().unwrap_or_default().to_string();
        assert!(
            !["failed", "cancelled", "timed_out"].contains(&status.as_str()),
            "run {run} ended {status}: {view}"
        );
        (status == "completed").then_some(view)
    })
}

/// One consumer, several runs waiting for a signal, and another workflow's run
/// started after them that still completes while they wait.
fn waiting_steps_hold_no_consumer(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &[GATE, OTHER]);
    let url = db.url.as_str();
    let gates: Vec<String> = (0..4).map(|_| start(url, "gate")).collect();
    let other = start(url, "other");
    let _worker = worker(url, &scratch, "worker");
    for run in &gates {
        wait_until_waiting(url, run, "wait");
    }
    wait_until_completed(url, &other);
    let view = run_json(url, &gates[0]);
    assert_eq!(view["steps"][0]["waiting"]["kind"], "signal", "{view}");
    assert_eq!(view["steps"][0]["waiting"]["signal"], "go", "{view}");
    for (i, run) in gates.iter().enumerate() {
        let data = json!({ "n": i }).to_string();
        ok(url, &["signal", run, "go", "--data", &data]);
    }
    for (i, run) in gates.iter().enumerate() {
        let view = wait_until_completed(url, run);
        assert_eq!(view["steps"][0]["output"], json!({ "n": i }), "{view}");
    }
}

/// The worker that parked the step dies; the signal still lands, and the next
/// worker finishes the run.
fn kill_9_during_a_wait_loses_nothing(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &[GATE]);
    let url = db.url.as_str();
    let run = start(url, "gate");
    let mut first = worker(url, &scratch, "first");
    wait_until_waiting(url, &run, "wait");
    first.signal(Signal::SIGKILL);
    first.child.wait().unwrap();
    ok(url, &["signal", &run, "go", "--data", r#"{"by": "ann"}"#]);
    assert_eq!(step_status(url, &run, "wait"), "completed");
    let _second = worker(url, &scratch, "second");
    let view = wait_until_completed(url, &run);
    assert_eq!(view["steps"][0]["output"], json!({"by": "ann"}), "{view}");
    assert_eq!(view["steps"][1]["output"], json!({"after": true}), "{view}");
}

const NAP: &str = r#"
name = "nap"
[[steps]]
name = "nap"
sleep = "1h"
[[steps]]
name = "after"
after = ["nap"]
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
"#;

/// Time is the database's: the sleep ends when the clock says so, woken by whatever
/// worker runs then, not by the one that parked it.
fn a_sleep_due_while_no_worker_runs_completes_when_one_starts(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &[NAP]);
    let url = db.url.as_str();
    let run = start(url, "nap");
    let mut first = worker(url, &scratch, "first");
    wait_until_waiting(url, &run, "nap");
    first.signal(Signal::SIGTERM);
    assert!(
        first.wait_exit(PATIENCE).is_some(),
        "the worker stops on SIGTERM"
    );
    advance_clock(url, Duration::from_secs(2 * 3600));
    // Nobody wakes it while no worker runs.
    assert_eq!(step_status(url, &run, "nap"), "waiting");
    let _second = worker(url, &scratch, "second");
    wait_until_completed(url, &run);
}

/// The step's child gets the token and exits; `stepwise complete` finishes the
/// attempt; the same token again is refused (exit 3).
const CALLBACK: &str = r#"
name = "submit"
[[steps]]
name = "submit"
exec = ["sh", "-c", "cat > context.json; printf %s \"$STEPWISE_CALLBACK_TOKEN\" > token"]
complete = "callback"
timeout = "1h"
[[steps]]
name = "after"
after = ["submit"]
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
"#;

fn a_callback_step_ends_by_its_token_once(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &[CALLBACK]);
    let url = db.url.as_str();
    let run = start(url, "submit");
    let _worker = Background::spawn(
        url,
        &[
            "worker",
            "--pool",
            "*=1",
            "--public-url",
            "https://flows.example.com/",
        ],
        &scratch,
        "worker",
    );
    wait_until_waiting(url, &run, "submit");
    let token = std::fs::read_to_string(scratch.path().join("token")).unwrap();
    assert!(!token.is_empty(), "the child got STEPWISE_CALLBACK_TOKEN");
    let context: Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.path().join("context.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(context["callback"]["token"], json!(token));
    assert_eq!(
        context["callback"]["url"],
        json!(format!("https://flows.example.com/v1/callbacks/{token}"))
    );
    let shown = ok(url, &["runs", "show", &run]);
    assert!(
        shown.contains("waiting for the callback of attempt 1 (until "),
        "{shown}"
    );
    let explained = ok(url, &["runs", "explain", &run]);
    assert!(
        explained.contains("waiting for the callback of attempt 1 (until "),
        "{explained}"
    );
    let bad = stepwise(url, &["complete", &token, "--output", "{not json"]);
    assert_eq!(bad.status.code(), Some(2));
    let done = ok(
        url,
        &[
            "complete",
            &token,
            "--output",
            r#"{"job": "j-1"}"#,
            "--json",
        ],
    );
    let done: Value = serde_json::from_str(&done).unwrap();
    assert_eq!(done["outcome"], "completed", "{done}");
    let again = stepwise(url, &["complete", &token, "--output", "{}"]);
    assert_eq!(again.status.code(), Some(3), "a used token is refused");
    let view = wait_until_completed(url, &run);
    assert_eq!(view["steps"][0]["output"], json!({"job": "j-1"}), "{view}");
    // A signal to a run that ended: exit 3; to no run: exit 4.
    let late = stepwise(url, &["signal", &run, "go"]);
    assert_eq!(late.status.code(), Some(3));
    let nobody = stepwise(
        url,
        &["signal", "01890000-0000-7000-8000-000000000000", "go"],
    );
    assert_eq!(nobody.status.code(), Some(4));
}

/// The child finishes its own attempt with `stepwise complete` before it exits: the
/// worker's park then finds the attempt over, which is no lost lease.
fn a_child_that_calls_back_before_it_exits_completes_its_step(backend: Backend) {
    let scratch = Scratch::new();
    let toml = format!(
        r#"
name = "early"
[[steps]]
name = "submit"
exec = ["sh", "-c", "cat > /dev/null; '{bin}' complete \"$STEPWISE_CALLBACK_TOKEN\" --output '{{\"early\": true}}' > /dev/null"]
complete = "callback"
timeout = "1h"
"#,
        bin = crate::support::bin()
    );
    let db = setup(backend, &scratch, &[&toml]);
    let url = db.url.as_str();
    let run = start(url, "early");
    let worker = worker(url, &scratch, "worker");
    let view = wait_until_completed(url, &run);
    assert_eq!(view["steps"][0]["output"], json!({"early": true}), "{view}");
    let log = worker.stderr_text();
    assert!(!log.contains("outcome refused"), "{log}");
}

/// `signal --workflow W --key K` finds no run (exit 4), then creates it with
/// `--start-input`; the signal waits in the mailbox until the step waits, and a
/// repeated `--id` is not stored again.
fn a_signal_by_key_starts_the_run_and_waits_in_its_mailbox(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &[GATE]);
    let url = db.url.as_str();
    let by_key = ["signal", "--workflow", "gate", "--key", "order-9", "go"];
    let missing = stepwise(url, &by_key);
    assert_eq!(missing.status.code(), Some(4));
    let mut start = by_key.to_vec();
    start.extend(["--start-input", r#"{"order": 9}"#, "--data", r#"{"n": 9}"#]);
    start.extend(["--id", "s-1", "--json"]);
    let sent: Value = serde_json::from_str(&ok(url, &start)).unwrap();
    assert_eq!(sent["outcome"], "delivered", "{sent}");
    assert_eq!(sent["run_created"], true, "{sent}");
    assert_eq!(
        sent["consumed_by"],
        Value::Null,
        "nothing waits yet: {sent}"
    );
    let again: Value = serde_json::from_str(&ok(url, &start)).unwrap();
    assert_eq!(again["outcome"], "duplicate", "{again}");
    assert_eq!(again["run_id"], sent["run_id"], "{again}");
    let bad = stepwise(
        url,
        &[
            "signal",
            "--workflow",
            "gate",
            "--key",
            "k",
            "go",
            "--start-input",
            "{",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    let run = sent["run_id"].as_str().unwrap().to_string();
    let _worker = worker(url, &scratch, "worker");
    let view = wait_until_completed(url, &run);
    assert_eq!(view["input"], json!({"order": 9}), "{view}");
    assert_eq!(view["steps"][0]["output"], json!({"n": 9}), "{view}");
}
