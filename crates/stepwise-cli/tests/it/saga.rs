//! `examples/saga-callback` end to end, as its README runs it: a signal approves,
//! the job is handed to a system elsewhere and the run waits for its callback holding
//! no worker. A callback completes the run; a rejecting callback, or none within the
//! attempt's timeout (database time), undoes the reservation.

use crate::support::on_both_backends;
use crate::support::{
    advance_clock, bin, eventually, ok, run_json, stepwise, Backend, Background, Scratch, TestDb,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

const FILES: &[&str] = &[
    "workflow.toml",
    "reserve.py",
    "release.py",
    "submit_job.py",
    "cancel_job.py",
    "confirm.py",
    "remote_service.py",
];

on_both_backends!(the_saga_example_completes_by_callback_and_compensates_otherwise);

fn step<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {view}"))
}

fn ended(url: &str, run: &str, status: &str) -> Value {
    eventually(&format!("run {run} {status}"), PATIENCE, || {
        let view = run_json(url, run);
        let now = view["status"].as_str().unwrap_or_default();
        let terminal = [
            "completed",
            "failed",
            "cancelled",
            "timed_out",
            "compensated",
            "compensation_failed",
        ];
        assert!(
            now == status || !terminal.contains(&now),
            "run {run} ended {now}, not {status}: {view}"
        );
        (now == status).then_some(view)
    })
}

fn the_saga_example_completes_by_callback_and_compensates_otherwise(backend: Backend) {
    let scratch = Scratch::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saga-callback");
    for file in FILES {
        let text = std::fs::read_to_string(example.join(file)).unwrap();
        scratch.write(file, &text);
    }
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    let workflow = scratch.path().join("workflow.toml");
    ok(url, &["apply", workflow.to_str().unwrap()]);
    let start = |order: u32| {
        let input = format!(r#"{{"order": {order}}}"#);
        ok(url, &["run", "saga-callback", "--input", &input])
            .trim()
            .to_string()
    };
    // Answered, never answered, rejected (a multiple of 13).
    let (answered, forgotten, rejected) = (start(7), start(8), start(13));
    let _worker = Background::spawn(url, &["worker", "--pool", "*=2"], &scratch, "worker");
    let job = |run: &str| scratch.path().join("jobs").join(format!("{run}.json"));
    for run in [&answered, &forgotten, &rejected] {
        ok(
            url,
            &["signal", run, "approved", "--data", r#"{"by": "ann"}"#],
        );
    }
    for run in [&answered, &forgotten, &rejected] {
        eventually(&format!("{run} waiting for its callback"), PATIENCE, || {
            let view = run_json(url, run);
            (step(&view, "submit")["status"] == "waiting" && job(run).exists()).then_some(())
        });
    }
    // The forgotten run's job never reaches the service.
    let forgotten_job: Value =
        serde_json::from_str(&std::fs::read_to_string(job(&forgotten)).unwrap()).unwrap();
    std::fs::remove_file(job(&forgotten)).unwrap();
    let service = Command::new("python3")
        .arg("remote_service.py")
        .current_dir(scratch.path())
        .env("STEPWISE", bin())
        .env("STEPWISE_DATABASE_URL", url)
        .output()
        .expect("python3 remote_service.py");
    assert!(
        service.status.success(),
        "{}",
        String::from_utf8_lossy(&service.stderr)
    );
    let view = ended(url, &answered, "completed");
    assert_eq!(
        step(&view, "confirm")["output"]["result"]["job"],
        "j-7",
        "{view}"
    );
    let view = ended(url, &rejected, "compensated");
    assert_eq!(step(&view, "submit")["status"], "failed", "{view}");
    // Past the attempt's timeout of 2m (database clock), the waker fails the
    // forgotten attempt, and its reservation is released.
    advance_clock(url, Duration::from_secs(300));
    let view = ended(url, &forgotten, "compensated");
    let error = step(&view, "submit")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("timed out waiting for the callback"),
        "{view}"
    );
    let log = std::fs::read_to_string(scratch.path().join("reservations.log")).unwrap();
    for (order, released) in [(7, false), (8, true), (13, true)] {
        assert_eq!(
            log.contains(&format!("released r-{order}\n")),
            released,
            "order {order}: {log}"
        );
    }
    // The late callback of the forgotten job is refused.
    let token = forgotten_job["token"].as_str().unwrap();
    let late = stepwise(url, &["complete", token, "--output", "{}"]);
    assert_eq!(late.status.code(), Some(3));
}
