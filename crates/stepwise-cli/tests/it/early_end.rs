//! How runs end early, driven through the CLI with real worker processes: cancel,
//! attempt timeouts, run deadlines, compensation across a kill -9, retry, and groups
//! that complete exactly once. Every scenario runs on SQLite and on PostgreSQL.

use crate::support::on_both_backends;
use crate::support::{
    alive, events_json, events_when, eventually, ok, progressing, run_json, runs_json, stepwise,
    Backend, Background, Scratch, TestDb,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(120);

on_both_backends!(
    cancel_kills_the_child_within_two_seconds,
    an_attempt_timeout_kills_the_grandchild_too,
    a_deadline_times_out_each_run_once_with_three_workers,
    compensation_resumes_after_kill_9_in_reverse_order,
    retry_from_reruns_only_that_step_and_its_dependents,
    groups_complete_exactly_once_despite_kill_9,
);

fn setup(backend: Backend, scratch: &Scratch, name: &str, toml: &str) -> TestDb {
    let db = TestDb::new(backend, scratch);
    let file = scratch.write(&format!("{name}.toml"), toml);
    ok(&db.url, &["apply", path(&file)]);
    db
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn worker(url: &str, scratch: &Scratch, name: &str, args: &[&str]) -> Background {
    let mut all = vec!["worker"];
    all.extend_from_slice(args);
    Background::spawn(url, &all, scratch, name)
}

fn start(url: &str, workflow: &str, input: &str) -> String {
    ok(url, &["run", workflow, "--input", input])
        .trim()
        .to_string()
}

fn wait_status(url: &str, run: &str, status: &str) -> Value {
    eventually(&format!("run {run} {status}"), PATIENCE, || {
        let view = run_json(url, run);
        (view["status"] == status).then_some(view)
    })
}

/// Like [`eventually`], looking once a second.
fn slowly<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn read_pid(scratch: &Scratch, name: &str) -> Option<i32> {
    std::fs::read_to_string(scratch.path().join(name))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

fn kinds_of(events: &[Value], run: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["run_id"] == run)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn ledger(scratch: &Scratch) -> Vec<String> {
    std::fs::read_to_string(scratch.path().join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

const SLOW: &str = r#"
name = "slow"
[[steps]]
name = "wait"
exec = ["sh", "-c", "sleep 60 & echo $! > grandchild.pid; echo $$ > child.pid; wait"]
"#;

fn cancel_kills_the_child_within_two_seconds(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, "slow", SLOW);
    let url = db.url.as_str();
    let _w = worker(url, &scratch, "w", &["--pool", "*=2"]);
    let run = start(url, "slow", "{}");
    let (child, grandchild) = eventually("the step's processes", PATIENCE, || {
        Some((
            read_pid(&scratch, "child.pid")?,
            read_pid(&scratch, "grandchild.pid")?,
        ))
    });
    let asked = Instant::now();
    let out = ok(url, &["runs", "cancel", &run, "--json"]);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["stopping_steps"], 1, "{answer}");
    eventually("the child and grandchild gone", PATIENCE, || {
        (!alive(child) && !alive(grandchild)).then_some(())
    });
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the child was killed {took:?} after the cancel"
    );
    let view = wait_status(url, &run, "cancelled");
    assert_eq!(step(&view, "wait")["status"], "cancelled");
    let events = events_when(url, "run.cancelled", |events| {
        kinds_of(events, &run).iter().any(|k| k == "run.cancelled")
    });
    let kinds = kinds_of(&events, &run);
    assert_eq!(kinds.iter().filter(|k| *k == "run.cancelled").count(), 1);
    assert!(kinds.contains(&"step.cancelled".to_string()), "{kinds:?}");
    // Cancelling again is a conflict; an unknown run is not found.
    assert_eq!(
        stepwise(url, &["runs", "cancel", &run]).status.code(),
        Some(3)
    );
    let unknown = "01890000-0000-7000-8000-000000000000";
    assert_eq!(
        stepwise(url, &["runs", "cancel", unknown]).status.code(),
        Some(4)
    );
}

const TIMES_OUT: &str = r#"
name = "times_out"
[[steps]]
name = "stuck"
timeout = "1s"
max_attempts = 1
exec = ["sh", "-c", "sleep 600 & echo $! > grandchild.pid; echo $$ > child.pid; wait"]
"#;

fn an_attempt_timeout_kills_the_grandchild_too(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, "times_out", TIMES_OUT);
    let url = db.url.as_str();
    let _w = worker(url, &scratch, "w", &[]);
    let run = start(url, "times_out", "{}");
    let view = wait_status(url, &run, "failed");
    let stuck = step(&view, "stuck");
    assert_eq!(stuck["error"], "timed out after 1s", "{stuck}");
    let grandchild = read_pid(&scratch, "grandchild.pid").expect("the step started");
    let child = read_pid(&scratch, "child.pid").unwrap();
    // They would sleep for ten minutes: gone sooner means killed.
    eventually("the timed-out processes gone", PATIENCE, || {
        (!alive(child) && !alive(grandchild)).then_some(())
    });
}

const DEADLINE: &str = r#"
name = "deadline"
[run]
deadline = "3s"
[[steps]]
name = "long"
exec = ["sh", "-c", "echo $$ >> pids; sleep 600"]
[[steps]]
name = "never"
exec = ["true"]
"#;

fn a_deadline_times_out_each_run_once_with_three_workers(backend: Backend) {
    const RUNS: usize = 6;
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, "deadline", DEADLINE);
    let url = db.url.as_str();
    let _workers: Vec<Background> = (0..3)
        .map(|i| worker(url, &scratch, &format!("w{i}"), &["--pool", "*=4"]))
        .collect();
    let runs: Vec<String> = (0..RUNS)
        .map(|i| start(url, "deadline", &format!("{{\"i\": {i}}}")))
        .collect();
    for run in &runs {
        let view = wait_status(url, run, "timed_out");
        assert_eq!(step(&view, "never")["status"], "cancelled");
        assert!(
            view["error"].as_str().unwrap().contains("deadline"),
            "{view}"
        );
    }
    let events = events_when(url, "every run.timed_out", |events| {
        runs.iter()
            .all(|run| kinds_of(events, run).iter().any(|k| k == "run.timed_out"))
    });
    for run in &runs {
        let kinds = kinds_of(&events, run);
        assert_eq!(
            kinds.iter().filter(|k| *k == "run.timed_out").count(),
            1,
            "{run}: {kinds:?}"
        );
    }
    let pids: Vec<i32> = std::fs::read_to_string(scratch.path().join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    eventually("every timed-out child gone", PATIENCE, || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
}

/// `undo` appends to the ledger; while `hold` exists, undoing b waits, so a kill -9
/// lands mid-compensation.
const UNDO: &str = r#"
echo "undo $1 $STEPWISE_ATTEMPT" >> ledger
if [ "$1" = b ]; then
    while [ -f hold ]; do sleep 0.05; done
fi
echo '{}'
"#;

const SAGA: &str = r#"
name = "saga"
[[steps]]
name = "a"
exec = ["sh", "-c", "echo do a >> ledger; echo '{\"made\": \"a\"}'"]
compensate = ["sh", "undo.sh", "a"]
[[steps]]
name = "b"
exec = ["sh", "-c", "echo do b >> ledger; echo '{}'"]
compensate = ["sh", "undo.sh", "b"]
[[steps]]
name = "c"
exec = ["sh", "-c", "echo do c >> ledger; exit 64"]
compensate = ["sh", "undo.sh", "c"]
"#;

fn compensation_resumes_after_kill_9_in_reverse_order(backend: Backend) {
    let scratch = Scratch::new();
    scratch.write("undo.sh", UNDO);
    scratch.write("hold", "");
    let db = setup(backend, &scratch, "saga", SAGA);
    let url = db.url.as_str();
    let mut first = worker(url, &scratch, "first", &["--lease", "2s"]);
    let run = start(url, "saga", "{}");
    eventually("undoing b started", PATIENCE, || {
        ledger(&scratch)
            .iter()
            .any(|l| l.starts_with("undo b"))
            .then_some(())
    });
    let compensating = run_json(url, &run);
    assert_eq!(compensating["status"], "compensating");
    assert_eq!(compensating["stop_reason"], "failed", "{compensating}");
    first.signal(Signal::SIGKILL);
    first.child.wait().unwrap();
    std::fs::remove_file(scratch.path().join("hold")).unwrap();
    let _second = worker(url, &scratch, "second", &["--lease", "2s"]);
    let view = wait_status(url, &run, "compensated");
    let lines = ledger(&scratch);
    let undone: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("undo"))
        .map(|l| &l[..6])
        .collect();
    // b again after the kill (its first attempt was reaped), then a; c never completed.
    assert_eq!(undone, ["undo b", "undo b", "undo a"], "{lines:?}");
    let undo_b = step(&view, "compensate:b");
    assert_eq!(undo_b["status"], "completed");
    assert_eq!(step(&view, "c")["status"], "failed");
    assert!(view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["name"] != "compensate:c"));
    assert_eq!(view["stop_reason"], "failed", "{view}");
    let shown = ok(url, &["runs", "show", &run]);
    assert!(shown.contains("compensated (stopped: failed)"), "{shown}");
    let events = events_when(url, "run.compensated", |events| {
        kinds_of(events, &run)
            .iter()
            .any(|k| k == "run.compensated")
    });
    let kinds = kinds_of(&events, &run);
    assert_eq!(kinds.iter().filter(|k| *k == "run.compensating").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "run.compensated").count(), 1);
    for e in events.iter().filter(|e| e["run_id"] == run.as_str()) {
        if e["kind"] == "run.compensating" || e["kind"] == "run.compensated" {
            assert_eq!(e["data"]["reason"], "failed", "{e}");
        }
    }
}

const FLAKY: &str = r#"
name = "flaky"
[[steps]]
name = "a"
exec = ["sh", "-c", "echo a >> ledger; echo '{\"n\": 1}'"]
[[steps]]
name = "b"
max_attempts = 1
exec = ["sh", "-c", "echo b >> ledger; test -f fixed || exit 1; echo '{}'"]
[[steps]]
name = "c"
exec = ["sh", "-c", "echo c >> ledger; echo '{}'"]
"#;

fn retry_from_reruns_only_that_step_and_its_dependents(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, "flaky", FLAKY);
    let url = db.url.as_str();
    let _w = worker(url, &scratch, "w", &[]);
    let run = start(url, "flaky", "{}");
    wait_status(url, &run, "failed");
    let bad = stepwise(url, &["runs", "retry", &run, "--from", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no step \"nope\""));
    scratch.write("fixed", "");
    ok(url, &["runs", "retry", &run, "--from", "b"]);
    let view = wait_status(url, &run, "completed");
    assert_eq!(ledger(&scratch), ["a", "b", "b", "c"]);
    let b = step(&view, "b");
    assert_eq!(b["attempts"], 2);
    let retried = stepwise(url, &["runs", "retry", &run]);
    assert_eq!(
        retried.status.code(),
        Some(3),
        "a completed run is not retried"
    );
}

const MEMBER: &str = r#"
name = "member"
[[steps]]
name = "only"
exec = ["sh", "-c", "sleep 0.01; echo '{}'"]
"#;

/// The exactly-once rule itself is proved against racing completions by the
/// store's conformance suite; this checks it end to end, with real workers and a
/// kill -9 landing while one of them holds claimed members.
fn groups_complete_exactly_once_despite_kill_9(backend: Backend) {
    const GROUPS: usize = 40;
    const MEMBERS: usize = 10;
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, "member", MEMBER);
    let url = db.url.as_str();
    let inputs: String = (0..MEMBERS).map(|i| format!("{{\"i\": {i}}}\n")).collect();
    let inputs = scratch.write("inputs.jsonl", &inputs);
    for g in 0..GROUPS {
        ok(
            url,
            &[
                "run",
                "member",
                "--inputs",
                path(&inputs),
                "--group",
                &format!("g{g}"),
            ],
        );
    }
    let completed = || {
        runs_json(url)
            .iter()
            .filter(|r| r["status"] == "completed")
            .count()
    };
    let lease = ["--pool", "*=8", "--lease", "5s"];
    let mut first = worker(url, &scratch, "first", &lease);
    let _second = worker(url, &scratch, "second", &lease);
    progressing(
        "a quarter of the runs done",
        Duration::from_millis(500),
        PATIENCE,
        || {
            let done = completed();
            (done, done >= GROUPS * MEMBERS / 4)
        },
    );
    first.signal(Signal::SIGKILL);
    first.child.wait().unwrap();
    let _third = worker(url, &scratch, "third", &lease);
    progressing(
        "every run completed",
        Duration::from_secs(1),
        PATIENCE,
        || {
            let done = completed();
            (done, done == GROUPS * MEMBERS)
        },
    );
    let mut completions = BTreeMap::<String, usize>::new();
    let events = slowly("every group.completed served", PATIENCE, || {
        let events = events_json(url);
        let n = events
            .iter()
            .filter(|e| e["kind"] == "group.completed")
            .count();
        (n >= GROUPS).then_some(events)
    });
    for e in events.iter().filter(|e| e["kind"] == "group.completed") {
        *completions
            .entry(e["group"].as_str().unwrap().to_string())
            .or_default() += 1;
        assert_eq!(e["data"]["counts"]["completed"], MEMBERS, "{e}");
    }
    assert_eq!(completions.len(), GROUPS);
    assert!(completions.values().all(|n| *n == 1), "{completions:?}");
    let shown: Value = serde_json::from_str(&ok(url, &["groups", "show", "g7", "--json"])).unwrap();
    assert_eq!(shown["remaining"], 0);
    assert_eq!(shown["runs"].as_array().unwrap().len(), MEMBERS);
    assert_eq!(
        stepwise(url, &["groups", "show", "nope"]).status.code(),
        Some(4)
    );
}
