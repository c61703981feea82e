//! Flow control with real worker processes: concurrency keys and resource locks.

use crate::support::on_both_backends;
use crate::support::{
    advance_clock, eventually, ok, run_json, runs_json, Backend, Background, Scratch, TestDb,
};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

on_both_backends!(
    keyed_runs_never_overlap_and_start_in_creation_order,
    a_killed_worker_does_not_leak_its_runs_slot,
    a_failing_key_does_not_slow_the_others,
);

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn setup(backend: Backend, scratch: &Scratch, toml: &str) -> TestDb {
    let db = TestDb::new(backend, scratch);
    let file = scratch.write("workflow.toml", toml);
    ok(&db.url, &["apply", path(&file)]);
    db
}

fn worker(url: &str, scratch: &Scratch, name: &str, args: &[&str]) -> Background {
    let mut all = vec!["worker"];
    all.extend_from_slice(args);
    Background::spawn(url, &all, scratch, name)
}

/// Starts one run per tenant, in order; returns their ids.
fn start_runs(url: &str, scratch: &Scratch, workflow: &str, tenants: &[String]) -> Vec<String> {
    let lines: String = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{{\"tenant\": \"{t}\", \"i\": {i}}}\n"))
        .collect();
    let inputs = scratch.write("inputs.jsonl", &lines);
    ok(url, &["run", workflow, "--inputs", path(&inputs)])
        .lines()
        .map(String::from)
        .collect()
}

fn wait_statuses(url: &str, n: usize, done: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
    eventually("every run finished", PATIENCE, || {
        let runs = runs_json(url);
        (runs.len() == n && runs.iter().all(|r| done(r["status"].as_str().unwrap())))
            .then_some(runs)
    })
}

fn ledger(scratch: &Scratch) -> Vec<Vec<String>> {
    std::fs::read_to_string(scratch.path().join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// The step writes `start TENANT RUN` and `end TENANT RUN` around a short nap; the
/// tenant comes from the context on stdin.
const LEDGER_STEP: &str = r#"
t=$(sed -n 's/.*"tenant":"\([^"]*\)".*/\1/p')
echo "start $t $STEPWISE_RUN_ID" >> ledger
sleep 0.05
echo "end $t $STEPWISE_RUN_ID" >> ledger
echo '{}'
"#;

const KEYED: &str = r#"
name = "keyed"
[run]
concurrency = { key = "{{ input.tenant }}", limit = 1 }
[[steps]]
name = "work"
exec = ["sh", "step.sh"]
"#;

fn keyed_runs_never_overlap_and_start_in_creation_order(backend: Backend) {
    let scratch = Scratch::new();
    scratch.write("step.sh", LEDGER_STEP);
    let db = setup(backend, &scratch, KEYED);
    let url = db.url.as_str();
    let tenants: Vec<String> = (0..60).map(|i| format!("t{}", i % 2)).collect();
    let ids = start_runs(url, &scratch, "keyed", &tenants);
    let _workers: Vec<Background> = (0..2)
        .map(|i| worker(url, &scratch, &format!("w{i}"), &["--pool", "*=8"]))
        .collect();
    wait_statuses(url, 60, |s| s == "completed");
    let mut open = BTreeMap::<String, String>::new();
    let mut started = BTreeMap::<String, Vec<String>>::new();
    for line in ledger(&scratch) {
        let (what, tenant, run) = (&line[0], &line[1], &line[2]);
        if what == "start" {
            if let Some(other) = open.insert(tenant.clone(), run.clone()) {
                panic!("{run} started while {other} of the same key ran");
            }
            // A run may start again (at least once: on a loaded machine a lease can
            // lapse before an outcome is recorded); its order is its first start.
            let runs = started.entry(tenant.clone()).or_default();
            if !runs.contains(run) {
                runs.push(run.clone());
            }
        } else {
            assert_eq!(open.remove(tenant).as_ref(), Some(run));
        }
    }
    for (tenant, runs) in started {
        let created: Vec<String> = ids
            .iter()
            .zip(&tenants)
            .filter(|(_, t)| **t == tenant)
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(
            runs, created,
            "key {tenant} starts its runs in creation order"
        );
    }
}

/// While `hold` exists, the step waits (so the kill lands while it runs).
const HOLDING_STEP: &str = r#"
echo "$STEPWISE_RUN_ID $STEPWISE_ATTEMPT" >> ledger
while [ -f hold ]; do sleep 0.05; done
echo '{}'
"#;

const HOLDING: &str = r#"
name = "holding"
[run]
concurrency = { key = "{{ input.tenant }}", limit = 1 }
[[steps]]
name = "work"
exec = ["sh", "step.sh"]
"#;

fn a_killed_worker_does_not_leak_its_runs_slot(backend: Backend) {
    let scratch = Scratch::new();
    scratch.write("step.sh", HOLDING_STEP);
    scratch.write("hold", "");
    let db = setup(backend, &scratch, HOLDING);
    let url = db.url.as_str();
    let tenants: Vec<String> = vec!["only".into(); 3];
    let ids = start_runs(url, &scratch, "holding", &tenants);
    let mut first = worker(url, &scratch, "first", &["--lease", "2s"]);
    eventually("the first run's step running", PATIENCE, || {
        (!ledger(&scratch).is_empty()).then_some(())
    });
    assert_eq!(run_json(url, &ids[1])["status"], "pending");
    first.signal(Signal::SIGKILL);
    first.child.wait().unwrap();
    std::fs::remove_file(scratch.path().join("hold")).unwrap();
    let _second = worker(url, &scratch, "second", &["--lease", "2s"]);
    wait_statuses(url, 3, |s| s == "completed");
    let queues: serde_json::Value = serde_json::from_str(&ok(url, &["queues", "--json"])).unwrap();
    let key = &queues["concurrency_keys"][0];
    assert_eq!(
        (key["active"].as_i64(), key["waiting"].as_i64()),
        (Some(0), Some(0)),
        "{queues}"
    );
}

/// The `bad` tenant's runs fail after a retry an hour later (database time, so only
/// the test moves it); nobody else waits for them.
const MIXED: &str = r#"
name = "mixed"
[run]
concurrency = { key = "{{ input.tenant }}", limit = 1 }
[[steps]]
name = "work"
max_attempts = 2
backoff = { initial = "1h", factor = 1.0, max = "1h" }
exec = ["sh", "-c", "grep -q '\"tenant\":\"bad\"' && exit 1; echo '{}'"]
"#;

fn a_failing_key_does_not_slow_the_others(backend: Backend) {
    const KEYS: usize = 10;
    const RUNS: usize = 6;
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, MIXED);
    let url = db.url.as_str();
    let tenants: Vec<String> = (0..KEYS * RUNS)
        .map(|i| match i % KEYS {
            0 => "bad".to_string(),
            k => format!("k{k}"),
        })
        .collect();
    let ids = start_runs(url, &scratch, "mixed", &tenants);
    let bad: Vec<&String> = ids.iter().step_by(KEYS).collect();
    let _workers: Vec<Background> = (0..2)
        .map(|i| worker(url, &scratch, &format!("w{i}"), &["--pool", "*=8"]))
        .collect();
    // The first bad run fails its first attempt and waits out its backoff, which
    // never ends while the clock stands still: the bad line cannot move, so every
    // good run completing proves none of them waits for it.
    let first_failed_once = |url: &str, run: &str| {
        let view = run_json(url, run);
        let step = &view["steps"][0];
        (step["attempts"] == 1 && step["status"] == "pending" && !step["run_after"].is_null())
            .then_some(())
    };
    eventually("the first bad run waiting for its retry", PATIENCE, || {
        first_failed_once(url, bad[0])
    });
    let runs = eventually("every good run completed", PATIENCE, || {
        let runs = runs_json(url);
        runs.iter()
            .filter(|r| r["concurrency_key"] != "bad")
            .all(|r| r["status"] == "completed")
            .then_some(runs)
    });
    let bad_pending = |runs: &[serde_json::Value]| {
        runs.iter()
            .filter(|r| r["concurrency_key"] == "bad" && r["status"] == "pending")
            .count()
    };
    assert_eq!(
        bad_pending(&runs),
        RUNS - 1,
        "the bad key's other runs wait in their own line"
    );
    // An hour later the first one's retry fails for good and the next is admitted,
    // in creation order.
    advance_clock(url, Duration::from_secs(3601));
    wait_status(url, bad[0], "failed");
    eventually("the second bad run waiting for its retry", PATIENCE, || {
        first_failed_once(url, bad[1])
    });
    assert_eq!(bad_pending(&runs_json(url)), RUNS - 2);
}

fn wait_status(url: &str, run: &str, status: &str) {
    eventually(&format!("run {run} {status}"), PATIENCE, || {
        (run_json(url, run)["status"] == status).then_some(())
    });
}
