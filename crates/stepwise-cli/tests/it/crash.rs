//! Crash recovery and graceful shutdown with real worker processes.
//!
//! Each scenario starts `stepwise worker` processes against a fresh database, runs
//! workflows whose steps are small shell scripts that append to a ledger file (the
//! side effects a crash must neither lose nor repeat without bound), and kills,
//! stops or terminates the workers from outside, as an operator or the kernel would.
//! Every scenario runs on SQLite and on PostgreSQL. The scenarios wait on observable
//! conditions (the ledger, `runs list --json`, `workers --json`) with generous
//! deadlines and never assert timing figures; only scenario 4 places a stop and a
//! start against the worker's heartbeat, with a second of margin either way.

use crate::support::on_both_backends;
use crate::support::{
    alive, events_json, events_when, eventually, ok, run_json, runs_json, Backend, Background,
    Scratch, TestDb,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The most any wait may take on a loaded machine; scenarios normally take seconds.
const PATIENCE: Duration = Duration::from_secs(90);

on_both_backends!(
    crash_recovery_after_kill_9,
    a_stopped_worker_is_reaped_and_its_late_writes_refused,
    a_stopped_workers_child_is_dead_before_its_lease_expires,
    graceful_shutdown_releases_running_steps,
);

// ---------------------------------------------------------------------------------
// Helpers

fn migrated(backend: Backend, scratch: &Scratch) -> TestDb {
    let db = TestDb::new(backend, scratch);
    ok(&db.url, &["migrate"]);
    db
}

fn worker(url: &str, scratch: &Scratch, name: &str, args: &[&str]) -> Background {
    let mut all = vec!["worker"];
    all.extend_from_slice(args);
    Background::spawn(url, &all, scratch, name)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The ledger's lines, split in words.
fn ledger(scratch: &Scratch) -> Vec<Vec<String>> {
    std::fs::read_to_string(scratch.path().join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Waits until `n` runs exist and all are `completed`; on timeout, says what the
/// runs are doing.
fn wait_all_completed(url: &str, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let runs = runs_json(url);
        if runs.len() == n && runs.iter().all(|r| r["status"] == "completed") {
            return runs;
        }
        if Instant::now() > deadline {
            let mut tally = BTreeMap::<String, usize>::new();
            for r in &runs {
                *tally.entry(r["status"].to_string()).or_default() += 1;
            }
            panic!(
                "after {within:?}, {} runs (expected {n} completed): {tally:?}",
                runs.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rows of `stepwise workers --json` that belong to the process `pid` (worker
/// names are `host:pid`).
fn workers_of(url: &str, pid: i32) -> Vec<Value> {
    let all: Vec<Value> = serde_json::from_str(&ok(url, &["workers", "--json"])).unwrap();
    let suffix = format!(":{pid}");
    all.into_iter()
        .filter(|w| w["name"].as_str().is_some_and(|n| n.ends_with(&suffix)))
        .collect()
}

/// Log text without its ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("run has no step {name}: {run}"))
}

/// `(attempt number, outcome)` of a step's finished attempts, oldest first.
fn history(step: &Value) -> Vec<(u64, String)> {
    step["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["number"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn kinds_for_run(events: &[Value], run: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["run_id"] == run)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

// ---------------------------------------------------------------------------------
// 1. kill -9 mid-way: nothing lost, duplicates bounded by what was in flight.

/// One attempt: a ledger line, then a short nap. While the file `hold` exists, a new
/// attempt says so in `held/PID` and waits for `hold` to go, so the kill lands while
/// steps run (a child its supervisor failed to kill would wait forever).
const PIPELINE_STEP: &str = r#"
echo "$STEPWISE_RUN_ID $STEPWISE_STEP $STEPWISE_ATTEMPT" >> ledger
if [ -f hold ]; then
    echo "$STEPWISE_RUN_ID $STEPWISE_STEP $STEPWISE_ATTEMPT" > "held/.$$"
    mv "held/.$$" "held/$$"
    while [ -f hold ]; do sleep 0.05; done
fi
sleep 0.2
echo '{}'
"#;

const PIPELINE: &str = r#"
name = "pipeline"
[defaults]
max_attempts = 3
[[steps]]
name = "a"
exec = ["sh", "step.sh"]
[[steps]]
name = "b"
exec = ["sh", "step.sh"]
[[steps]]
name = "c"
exec = ["sh", "step.sh"]
"#;

/// The attempts waiting in `held/`: PID → (run, step, attempt).
fn held(scratch: &Scratch) -> BTreeMap<i32, (String, String, u32)> {
    let mut held = BTreeMap::new();
    for entry in std::fs::read_dir(scratch.path().join("held")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let w: Vec<&str> = text.split_whitespace().collect();
        held.insert(pid, (w[0].into(), w[1].into(), w[2].parse().unwrap()));
    }
    held
}

fn crash_recovery_after_kill_9(backend: Backend) {
    const RUNS: usize = 60;
    const STEPS: [&str; 3] = ["a", "b", "c"];
    const CONSUMERS: usize = 4;
    let scratch = Scratch::new();
    let db = migrated(backend, &scratch);
    let url = db.url.as_str();
    scratch.write("step.sh", PIPELINE_STEP);
    std::fs::create_dir(scratch.path().join("held")).unwrap();
    let file = scratch.write("pipeline.toml", PIPELINE);
    ok(url, &["apply", path(&file)]);
    let inputs: String = (0..RUNS).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let inputs = scratch.write("inputs.jsonl", &inputs);
    let ids: Vec<String> = ok(url, &["run", "pipeline", "--inputs", path(&inputs)])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), RUNS);

    let pool = format!("*={CONSUMERS}");
    let mut first = worker(url, &scratch, "first", &["--pool", &pool, "--lease", "3s"]);
    eventually("some steps in the ledger", PATIENCE, || {
        (ledger(&scratch).len() >= 30).then_some(())
    });
    // From now on new attempts wait: once every consumer holds one and the
    // database shows exactly those running, the kill lands mid-step.
    scratch.write("hold", "");
    let held = eventually(
        "every consumer holding a step, nothing else in flight",
        PATIENCE,
        || {
            let held = held(&scratch);
            let running: Vec<u64> = workers_of(url, first.pid())
                .iter()
                .map(|w| w["running_steps"].as_u64().unwrap())
                .collect();
            (held.len() == CONSUMERS && running == [CONSUMERS as u64]).then_some(held)
        },
    );
    first.signal(Signal::SIGKILL);
    first.child.wait().unwrap();
    let at_kill = ledger(&scratch).len();
    assert!(
        at_kill < RUNS * STEPS.len(),
        "the kill must land mid-way ({at_kill} ledger lines)"
    );

    // Each supervisor saw its worker die and killed its child (which would otherwise
    // wait for `hold` forever).
    let deadline = Instant::now() + PATIENCE;
    while held.keys().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "children of the killed worker still alive: {:?}",
            held.keys().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(scratch.path().join("hold")).unwrap();

    let mut second = worker(url, &scratch, "second", &["--pool", &pool, "--lease", "3s"]);
    wait_all_completed(url, RUNS, PATIENCE);
    second.signal(Signal::SIGTERM);
    let status = second.wait_exit(PATIENCE).expect("the second worker exits");
    assert!(status.success(), "second worker: {status:?}");

    // Every (run, step) is in the ledger; none ran the same attempt twice.
    let mut attempts = BTreeMap::<(String, String), Vec<u32>>::new();
    for line in ledger(&scratch) {
        assert_eq!(line.len(), 3, "ledger line {line:?}");
        attempts
            .entry((line[0].clone(), line[1].clone()))
            .or_default()
            .push(line[2].parse().unwrap());
    }
    for id in &ids {
        for s in STEPS {
            assert!(
                attempts.contains_key(&(id.clone(), s.to_string())),
                "step {s} of run {id} is missing from the ledger"
            );
        }
    }
    assert_eq!(attempts.len(), RUNS * STEPS.len(), "unknown ledger lines");
    for (key, numbers) in &attempts {
        let distinct: BTreeSet<_> = numbers.iter().collect();
        assert_eq!(
            distinct.len(),
            numbers.len(),
            "{key:?} attempts {numbers:?}"
        );
    }
    // The only duplicates are the steps in flight at the kill: at most one per
    // consumer, each run once more as its next attempt.
    let duplicated: BTreeSet<(String, String)> = attempts
        .iter()
        .filter(|(_, n)| n.len() > 1)
        .map(|(k, _)| k.clone())
        .collect();
    let in_flight: BTreeSet<(String, String)> = held
        .values()
        .map(|(run, step, _)| (run.clone(), step.clone()))
        .collect();
    assert!(duplicated.len() <= CONSUMERS, "duplicates {duplicated:?}");
    assert_eq!(
        duplicated, in_flight,
        "duplicates vs steps in flight at the kill"
    );
    for key in &duplicated {
        assert_eq!(
            attempts[key].len(),
            2,
            "{key:?} attempts {:?}",
            attempts[key]
        );
    }

    // The store tells the same story: one worker reaped, its steps reaped once each,
    // and their attempt histories show the reaped attempt then the completed one.
    let events = events_when(url, "the reaped steps' events", |events| {
        events.iter().filter(|e| e["kind"] == "step.reaped").count() >= in_flight.len()
    });
    let reaped_workers = events
        .iter()
        .filter(|e| e["kind"] == "worker.reaped")
        .count();
    assert_eq!(reaped_workers, 1, "worker.reaped events");
    let reaped: BTreeSet<(String, String)> = events
        .iter()
        .filter(|e| e["kind"] == "step.reaped")
        .map(|e| {
            (
                e["run_id"].as_str().unwrap().to_string(),
                e["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reaped, in_flight, "step.reaped events");
    for (run, step_name) in &in_flight {
        let view = run_json(url, run);
        let s = step(&view, step_name);
        assert_eq!(s["status"], "completed");
        assert_eq!(
            history(s),
            [(1, "reaped".to_string()), (2, "completed".to_string())],
            "{s}"
        );
    }
}

// ---------------------------------------------------------------------------------
// 2. SIGSTOP: the stopped worker is reaped, its children killed, its late writes
//    refused, and it goes on working after SIGCONT.

/// With input `{"stall": true}`, attempt 1 of `long` sleeps far longer than the lease
/// and than any wait of the test (its supervisor must kill it; had it ended on its
/// own, its `end` line would say so) and attempt 1 of `quick` waits for the file `gate`
/// (created once its worker is stopped, so it finishes while nobody holds its lease).
/// Every attempt writes a `start` and an `end` line to the ledger; the output names
/// the attempt.
const STALL_STEP: &str = r#"
ctx=$(cat)
echo "start $STEPWISE_RUN_ID $STEPWISE_STEP $STEPWISE_ATTEMPT $$" >> ledger
case "$ctx" in *'"stall":true'*) stall=yes ;; *) stall= ;; esac
if [ -n "$stall" ] && [ "$STEPWISE_ATTEMPT" = 1 ]; then
    if [ "$STEPWISE_STEP" = long ]; then
        sleep 600
    else
        while [ ! -f gate ]; do sleep 0.05; done
    fi
fi
echo "end $STEPWISE_RUN_ID $STEPWISE_STEP $STEPWISE_ATTEMPT $$" >> ledger
echo "{\"attempt\": $STEPWISE_ATTEMPT, \"pid\": $$}"
"#;

const STALL: &str = r#"
name = "stall"
[defaults]
max_attempts = 3
[[steps]]
name = "long"
exec = ["sh", "step.sh"]
[[steps]]
name = "quick"
after = []
exec = ["sh", "step.sh"]
"#;

/// The PID in the ledger's `what` line (`start`/`end`) of a run's step attempt.
fn ledger_pid(scratch: &Scratch, what: &str, run: &str, step: &str, attempt: u32) -> Option<i32> {
    ledger(scratch)
        .into_iter()
        .find(|l| l[0] == what && l[1] == run && l[2] == step && l[3] == attempt.to_string())
        .map(|l| l[4].parse().unwrap())
}

fn a_stopped_worker_is_reaped_and_its_late_writes_refused(backend: Backend) {
    let scratch = Scratch::new();
    let db = migrated(backend, &scratch);
    let url = db.url.as_str();
    scratch.write("step.sh", STALL_STEP);
    let file = scratch.write("stall.toml", STALL);
    ok(url, &["apply", path(&file)]);
    let lease = ["--pool", "*=2", "--lease", "3s"];
    let mut a = worker(url, &scratch, "a", &lease);
    let run = ok(url, &["run", "stall", "--input", r#"{"stall": true}"#]);
    let run = run.trim();

    let (long_pid, _) = eventually("worker A to start both steps", PATIENCE, || {
        let long = ledger_pid(&scratch, "start", run, "long", 1)?;
        let quick = ledger_pid(&scratch, "start", run, "quick", 1)?;
        Some((long, quick))
    });
    let a_id = workers_of(url, a.pid())[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    a.signal(Signal::SIGSTOP);
    // `quick` now finishes under a lease that will be gone when A wakes up.
    scratch.write("gate", "");
    let mut b = worker(url, &scratch, "b", &lease);

    // B reaps A once its lease has expired and runs both steps again.
    wait_all_completed(url, 1, PATIENCE);
    let view = run_json(url, run);
    for name in ["long", "quick"] {
        let s = step(&view, name);
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(s["output"]["attempt"], 2, "B's attempt is the output: {s}");
        assert_eq!(
            history(s),
            [(1, "reaped".to_string()), (2, "completed".to_string())],
            "{s}"
        );
    }
    // A's supervisor killed `long` (no heartbeat for a lease) long before its nap
    // would end; `quick` ended on its own once the gate opened.
    eventually("the stopped worker's child to be killed", PATIENCE, || {
        (!alive(long_pid)).then_some(())
    });
    assert_eq!(ledger_pid(&scratch, "end", run, "long", 1), None);
    eventually("quick's first attempt to end", PATIENCE, || {
        ledger_pid(&scratch, "end", run, "quick", 1)
    });
    let events_before = events_when(url, "run.completed", |events| {
        events
            .iter()
            .any(|e| e["run_id"] == run && e["kind"] == "run.completed")
    });
    let kinds = kinds_for_run(&events_before, run);
    assert_eq!(count(&kinds, "step.reaped"), 2, "{kinds:?}");
    assert_eq!(count(&kinds, "step.completed"), 2, "{kinds:?}");
    assert_eq!(count(&kinds, "run.completed"), 1, "{kinds:?}");

    // A wakes up with two outcomes under leases it no longer holds: both refused,
    // and it says so.
    a.signal(Signal::SIGCONT);
    eventually("worker A to report its refused outcomes", PATIENCE, || {
        let stderr = without_colours(&a.stderr_text());
        let refused: Vec<&str> = stderr.lines().filter(|l| l.contains("refused")).collect();
        ["step=long", "step=quick"]
            .iter()
            .all(|s| refused.iter().any(|l| l.contains(s)))
            .then_some(())
    });
    // It was reaped, so it registers again under a new id.
    let a_new = eventually("worker A to register again", PATIENCE, || {
        workers_of(url, a.pid())
            .into_iter()
            .find(|w| w["status"] == "alive" && w["id"] != a_id.as_str())
    });
    assert!(a.child.try_wait().unwrap().is_none(), "A keeps running");

    // Nothing A wrote late changed the run.
    let after = run_json(url, run);
    assert_eq!(after["status"], "completed");
    for name in ["long", "quick"] {
        let (s, before) = (step(&after, name), step(&view, name));
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(s["output"], before["output"], "{s}");
        assert_eq!(history(s), history(before), "{s}");
    }
    let events_after = events_json(url);
    assert_eq!(
        kinds_for_run(&events_after, run),
        kinds,
        "A's late writes added events"
    );

    // B stops; A, under its new id, serves the next run on its own.
    b.signal(Signal::SIGTERM);
    let status = b.wait_exit(PATIENCE).expect("worker B exits");
    assert!(status.success(), "worker B: {status:?}");
    let next = ok(url, &["run", "stall", "--input", r#"{"stall": false}"#]);
    let next = next.trim();
    wait_all_completed(url, 2, PATIENCE);
    let view = run_json(url, next);
    for name in ["long", "quick"] {
        assert_eq!(step(&view, name)["worker_id"], a_new["id"], "{view}");
    }
    a.signal(Signal::SIGTERM);
    let status = a.wait_exit(PATIENCE).expect("worker A exits");
    assert!(
        status.success(),
        "worker A: {status:?}\n{}",
        a.stderr_text()
    );
}

// ---------------------------------------------------------------------------------
// 3. SIGTERM: running steps are stopped after the shutdown timeout and released at
//    once, so another worker picks them up without waiting for a lease.

/// While the file `stall` exists, an attempt sleeps longer than any wait of the test:
/// an attempt that ended on its own rather than being stopped leaves an `end` line.
const SLOW_STEP: &str = r#"
echo "start $STEPWISE_RUN_ID $STEPWISE_STEP $STEPWISE_ATTEMPT $$" >> ledger
if [ -f stall ]; then sleep 600; fi
echo "end $STEPWISE_RUN_ID $STEPWISE_STEP $STEPWISE_ATTEMPT $$" >> ledger
echo '{}'
"#;

const SLOW: &str = r#"
name = "slow"
[[steps]]
name = "nap"
exec = ["sh", "step.sh"]
"#;

fn graceful_shutdown_releases_running_steps(backend: Backend) {
    const RUNS: usize = 3;
    let scratch = Scratch::new();
    let db = migrated(backend, &scratch);
    let url = db.url.as_str();
    scratch.write("step.sh", SLOW_STEP);
    scratch.write("stall", "");
    let file = scratch.write("slow.toml", SLOW);
    ok(url, &["apply", path(&file)]);
    let inputs: String = (0..RUNS).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let inputs = scratch.write("inputs.jsonl", &inputs);
    let ids: BTreeSet<String> = ok(url, &["run", "slow", "--inputs", path(&inputs)])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), RUNS);
    // A 30 s lease: anything that waited for one to expire would be obviously slow.
    let args = [
        "--pool",
        "*=4",
        "--lease",
        "30s",
        "--shutdown-timeout",
        "1s",
    ];
    let mut first = worker(url, &scratch, "first", &args);
    let pids: Vec<i32> = eventually("every step to start", PATIENCE, || {
        let starts: Vec<i32> = ledger(&scratch)
            .iter()
            .filter(|l| l[0] == "start")
            .map(|l| l[4].parse().unwrap())
            .collect();
        (starts.len() == RUNS).then_some(starts)
    });

    first.signal(Signal::SIGTERM);
    // It waits its 1 s shutdown timeout, stops the steps and exits, without waiting
    // for them (no `end` line, checked below).
    let status = first
        .wait_exit(PATIENCE)
        .unwrap_or_else(|| panic!("the worker is still running {PATIENCE:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{}", first.stderr_text());
    let rows = workers_of(url, first.pid());
    assert!(
        rows.iter().all(|w| w["status"] == "stopped"),
        "the worker deregistered: {rows:?}"
    );
    eventually("the stopped steps' processes to be gone", PATIENCE, || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
    assert!(
        ledger(&scratch).iter().all(|l| l[0] != "end"),
        "a step finished although it was stopped"
    );

    // Released, not failed or reaped: back to pending.
    let events = events_when(url, "a step.released per run", |events| {
        events
            .iter()
            .filter(|e| e["kind"] == "step.released")
            .count()
            >= ids.len()
    });
    let released: BTreeSet<String> = events
        .iter()
        .filter(|e| e["kind"] == "step.released")
        .map(|e| e["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(released, ids, "step.released events");
    for id in &ids {
        let view = run_json(url, id);
        let s = step(&view, "nap");
        // No worker is left to run it again.
        assert_eq!(s["status"], "pending", "after release: {s}");
        let outcomes: Vec<String> = history(s).into_iter().map(|(_, o)| o).collect();
        assert_eq!(outcomes, ["released"], "{s}");
    }

    // A second worker finishes them at once: no lease had to expire.
    std::fs::remove_file(scratch.path().join("stall")).unwrap();
    // Nothing was reaped (checked below): no lease had to expire first.
    let mut second = worker(url, &scratch, "second", &args);
    wait_all_completed(url, RUNS, PATIENCE);
    let events = events_when(url, "every run.completed", |events| {
        events
            .iter()
            .filter(|e| e["kind"] == "run.completed")
            .count()
            >= RUNS
    });
    for kind in ["step.reaped", "worker.reaped", "step.failed"] {
        assert!(
            events.iter().all(|e| e["kind"] != kind),
            "unexpected {kind}: {events:?}"
        );
    }
    let ends = ledger(&scratch).iter().filter(|l| l[0] == "end").count();
    assert_eq!(ends, RUNS);
    second.signal(Signal::SIGTERM);
    let status = second.wait_exit(PATIENCE).expect("the second worker exits");
    assert!(status.success(), "second worker: {status:?}");
}

// ---------------------------------------------------------------------------------
// 4. A stopped worker's child is dead by the time its lease expires, so the worker
//    that reaps the step never runs it alongside the old attempt.

/// Attempt 1 sleeps for a minute; every attempt first notes in the ledger whether
/// the previous attempt's process is still alive.
const OVERLAP_STEP: &str = r#"
echo "start $STEPWISE_ATTEMPT $$" >> ledger
if [ -f child.pid ] && kill -0 "$(cat child.pid)" 2>/dev/null; then
    echo "overlap $STEPWISE_ATTEMPT $(cat child.pid)" >> ledger
fi
echo $$ > child.pid
if [ "$STEPWISE_ATTEMPT" = 1 ]; then sleep 60; fi
echo '{}'
"#;

const OVERLAP: &str = r#"
name = "overlap"
[[steps]]
name = "long"
exec = ["sh", "step.sh"]
"#;

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .into()
}

/// Sleeps until the wall clock (which on this machine is the database's) reads `t`.
fn sleep_until(t: chrono::DateTime<chrono::Utc>) {
    if let Ok(d) = (t - chrono::Utc::now()).to_std() {
        std::thread::sleep(d);
    }
}

/// The worker's lease (9 s, heartbeats every 3 s) is stopped just before a heartbeat
/// would have renewed it, so it expires about 6.6 s after the stop; worker B is
/// started so that its first reaper pass (4.5 s after it starts) comes shortly after
/// that. A supervisor that waits a whole lease after its own last beat kills the
/// child about 8.5–9 s after the stop: B runs attempt 2 while attempt 1 still runs.
/// (With the default 30 s lease the overlap can reach 10 s.)
fn a_stopped_workers_child_is_dead_before_its_lease_expires(backend: Backend) {
    let scratch = Scratch::new();
    let db = migrated(backend, &scratch);
    let url = db.url.as_str();
    scratch.write("step.sh", OVERLAP_STEP);
    let file = scratch.write("overlap.toml", OVERLAP);
    ok(url, &["apply", path(&file)]);
    let args = ["--pool", "*=1", "--lease", "9s"];
    let a = worker(url, &scratch, "a", &args);
    let run = ok(url, &["run", "overlap"]);
    let run = run.trim();
    eventually("attempt 1 to start", PATIENCE, || {
        ledger(&scratch)
            .iter()
            .any(|l| l[0] == "start")
            .then_some(())
    });
    let first = workers_of(url, a.pid())[0]["heartbeat_at"].clone();
    let renewed = eventually("a heartbeat of worker A", PATIENCE, || {
        let w = workers_of(url, a.pid()).pop()?;
        (w["heartbeat_at"] != first).then_some(w)
    });
    sleep_until(at(&renewed["heartbeat_at"]) + chrono::Duration::milliseconds(2400));
    a.signal(Signal::SIGSTOP);
    let expires = at(&workers_of(url, a.pid())[0]["expires_at"]);
    sleep_until(expires - chrono::Duration::milliseconds(4500 - 500));
    let _b = worker(url, &scratch, "b", &args);
    wait_all_completed(url, 1, PATIENCE);
    let view = run_json(url, run);
    assert_eq!(
        history(step(&view, "long")),
        [(1, "reaped".to_string()), (2, "completed".to_string())]
    );
    let overlaps: Vec<Vec<String>> = ledger(&scratch)
        .into_iter()
        .filter(|l| l[0] == "overlap")
        .collect();
    assert!(
        overlaps.is_empty(),
        "attempt 2 started while attempt 1 (the stopped worker's child) was alive: \
         {overlaps:?}"
    );
}
