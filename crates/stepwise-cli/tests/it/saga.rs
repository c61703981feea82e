//! The saga of `examples/saga` end to end, as the README shows it: a step hands
//! work to a system elsewhere and waits for its callback holding no worker; a
//! callback completes the run, and a callback that never comes within the attempt's
//! timeout (database time) undoes the completed step.

use crate::support::on_both_backends;
use crate::support::{
    advance_clock, eventually, ok, run_json, Backend, Background, Scratch, TestDb,
};
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

on_both_backends!(the_saga_example_completes_by_callback_and_compensates_on_timeout);

fn status(url: &str, run: &str) -> String {
    run_json(url, run)["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn the_saga_example_completes_by_callback_and_compensates_on_timeout(backend: Backend) {
    let scratch = Scratch::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saga");
    for file in ["workflow.toml", "reserve.sh", "release.sh", "submit.sh"] {
        let text = std::fs::read_to_string(example.join(file)).unwrap();
        scratch.write(file, &text);
    }
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    let workflow = scratch.path().join("workflow.toml");
    ok(url, &["apply", workflow.to_str().unwrap()]);
    let start = |order: u32| {
        let input = format!(r#"{{"order": {order}}}"#);
        ok(url, &["run", "order", "--input", &input])
            .trim()
            .to_string()
    };
    let (answered, forgotten) = (start(1), start(2));
    let _worker = Background::spawn(url, &["worker", "--pool", "*=2"], &scratch, "worker");
    let token_of = |run: &str| scratch.path().join("outbox").join(format!("{run}.token"));
    for run in [&answered, &forgotten] {
        eventually(&format!("{run} waiting for its callback"), PATIENCE, || {
            let view = run_json(url, run);
            (view["steps"][1]["status"] == "waiting" && token_of(run).exists()).then_some(())
        });
    }
    let token = std::fs::read_to_string(token_of(&answered)).unwrap();
    ok(
        url,
        &["complete", &token, "--output", r#"{"tracking": "T-1"}"#],
    );
    eventually("the answered run completed", PATIENCE, || {
        (status(url, &answered) == "completed").then_some(())
    });
    // The other carrier never calls: an hour later (database clock) the attempt has
    // timed out, and the reservation is released.
    advance_clock(url, Duration::from_secs(2 * 3600));
    let view = eventually("the forgotten run compensated", PATIENCE, || {
        let view = run_json(url, &forgotten);
        (view["status"] == "compensated").then_some(view)
    });
    let ship = &view["steps"][1];
    assert_eq!(ship["status"], "failed", "{view}");
    assert!(
        ship["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out waiting for the callback")),
        "{view}"
    );
    let ledger = std::fs::read_to_string(scratch.path().join("ledger")).unwrap();
    assert!(
        ledger.contains(&format!("released {forgotten}")),
        "{ledger}"
    );
    assert!(
        !ledger.contains(&format!("released {answered}")),
        "{ledger}"
    );
    assert_eq!(status(url, &answered), "completed");
}
