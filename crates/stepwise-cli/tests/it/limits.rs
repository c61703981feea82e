//! Rate limits with real worker processes (docs/design.md "Rate limits and
//! fairness"): starts spaced by the key's rate across workers, back-pressure from a
//! step that was told to come back later, and the `limits` commands.

use crate::support::on_both_backends;
use crate::support::{
    advance_clock, events_when, eventually, ok, progressing, run_json, stepwise, Backend,
    Background, Scratch, TestDb,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

on_both_backends!(
    runs_on_one_key_start_at_its_rate_across_two_workers,
    every_step_of_a_pipeline_is_admitted_by_its_key,
    items_of_a_for_each_step_are_admitted_by_its_key,
    back_pressure_pauses_the_key_and_retries_after_the_delay,
    limits_commands_act_on_keys_and_refuse_bad_input,
);

fn setup(backend: Backend, scratch: &Scratch, toml: &str) -> TestDb {
    let db = TestDb::new(backend, scratch);
    let file = scratch.write("workflow.toml", toml);
    ok(&db.url, &["apply", file.to_str().unwrap()]);
    db
}

fn worker(url: &str, scratch: &Scratch, name: &str, pool: &str) -> Background {
    Background::spawn(url, &["worker", "--pool", pool], scratch, name)
}

fn limits(url: &str) -> Vec<Value> {
    serde_json::from_str(&ok(url, &["limits", "--json"])).unwrap()
}

fn limit(url: &str, key: &str) -> Value {
    limits(url)
        .into_iter()
        .find(|l| l["key"] == key)
        .unwrap_or_else(|| panic!("no key {key} in limits list"))
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a time"))
        .parse()
        .unwrap()
}

const RATED: &str = r#"
name = "rated"
[[steps]]
name = "call"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
rate_limit = { key = "api", limit = 10, per = "1s" }
"#;

/// Two workers, 40 runs on one key of 10 per second (burst 1): every run completes,
/// no second of database time holds more than 11 starts, and the whole takes at
/// least 3.5 s of it.
fn runs_on_one_key_start_at_its_rate_across_two_workers(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, RATED);
    let url = db.url.as_str();
    let lines: String = (0..40).map(|i| format!("{{\"i\": {i}}}\n")).collect();
    let inputs = scratch.write("inputs.jsonl", &lines);
    let runs: Vec<String> = ok(url, &["run", "rated", "--inputs", inputs.to_str().unwrap()])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(runs.len(), 40);
    let _a = worker(url, &scratch, "a", "*=8");
    let _b = worker(url, &scratch, "b", "*=8");
    progressing(
        "40 rate-limited runs to complete",
        Duration::from_millis(500),
        PATIENCE,
        || {
            let view = limit(url, "api");
            let admitted = view["admitted"].as_u64().unwrap() as usize;
            let done = admitted == 40 && view["waiting"] == 0 && all_completed(url, &runs);
            (admitted, done)
        },
    );
    let mut starts: Vec<DateTime<Utc>> = runs
        .iter()
        .map(|run| {
            let view = run_json(url, run);
            assert_eq!(view["status"], "completed", "{view}");
            assert_eq!(view["steps"][0]["attempts"], 1, "{view}");
            time(&view["steps"][0]["started_at"])
        })
        .collect();
    starts.sort();
    let second = chrono::Duration::seconds(1);
    let mut busiest = 0;
    for (i, from) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|t| **t < *from + second)
            .count();
        assert!(
            within <= 11,
            "{within} starts in the second from {from}: {starts:?}"
        );
        busiest = busiest.max(within);
    }
    let span = starts[39] - starts[0];
    eprintln!("40 starts over {span} of database time, at most {busiest} in one second");
    assert!(
        span >= chrono::Duration::milliseconds(3500),
        "40 starts at 10/s took only {span} of database time: {starts:?}"
    );
}

/// The most starts in any second (database time), asserted to be at most `bound`.
fn busiest_second(starts: &mut [DateTime<Utc>], bound: usize) -> usize {
    starts.sort();
    let second = chrono::Duration::seconds(1);
    let mut busiest = 0;
    for (i, from) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|t| **t < *from + second)
            .count();
        assert!(
            within <= bound,
            "{within} starts in the second from {from}: {starts:?}"
        );
        busiest = busiest.max(within);
    }
    busiest
}

const RATED_PIPELINE: &str = r#"
name = "rated2"
[[steps]]
name = "first"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
rate_limit = { key = "api", limit = 10, per = "1s" }
[[steps]]
name = "second"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
rate_limit = { key = "api", limit = 10, per = "1s" }
"#;

/// A step made claimable by its predecessor's completion is admitted by its key
/// like any other: never handed straight to the worker that completed the first.
fn every_step_of_a_pipeline_is_admitted_by_its_key(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, RATED_PIPELINE);
    let url = db.url.as_str();
    let lines: String = (0..10).map(|i| format!("{{\"i\": {i}}}\n")).collect();
    let inputs = scratch.write("inputs.jsonl", &lines);
    let runs: Vec<String> = ok(
        url,
        &["run", "rated2", "--inputs", inputs.to_str().unwrap()],
    )
    .lines()
    .map(String::from)
    .collect();
    let _a = worker(url, &scratch, "a", "*=8");
    let _b = worker(url, &scratch, "b", "*=8");
    progressing(
        "10 two-step rate-limited runs to complete",
        Duration::from_millis(500),
        PATIENCE,
        || {
            let admitted = limit(url, "api")["admitted"].as_u64().unwrap() as usize;
            (admitted, all_completed(url, &runs))
        },
    );
    let mut starts = Vec::new();
    for run in &runs {
        let view = run_json(url, run);
        for step in view["steps"].as_array().unwrap() {
            assert_eq!(step["attempts"], 1, "{view}");
            starts.push(time(&step["started_at"]));
        }
    }
    assert_eq!(
        limit(url, "api")["admitted"],
        20,
        "every start was admitted by the key"
    );
    busiest_second(&mut starts, 11);
}

const RATED_ITEMS: &str = r#"
name = "each"
[[steps]]
name = "each"
for_each = "input.docs"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]
rate_limit = { key = "slow", limit = 1, per = "1h" }
"#;

/// Items inherit their step's key: one an hour (of database time) here, and
/// `explain` says so while they wait.
fn items_of_a_for_each_step_are_admitted_by_its_key(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, RATED_ITEMS);
    let url = db.url.as_str();
    let run = ok(url, &["run", "each", "--input", r#"{"docs": [1, 2, 3]}"#])
        .trim()
        .to_string();
    let _worker = worker(url, &scratch, "worker", "*=4");
    let completed_items = || {
        let view = run_json(url, &run);
        view["steps"][0]["items"]["completed"].as_u64().unwrap_or(0)
    };
    // Each hour admits one start, and the expansion itself takes none: the first
    // item may run at once, the key holds the others back an hour each.
    for hours in 0..2 {
        let explained = eventually("the items held back by their key", PATIENCE, || {
            let value: Value =
                serde_json::from_str(&ok(url, &["runs", "explain", &run, "--json"])).unwrap();
            let message = value["steps"][0]["message"].as_str()?.to_string();
            message
                .contains("its items wait: rate limited on slow until")
                .then_some(message)
        });
        assert!(completed_items() <= hours + 1, "{explained}");
        advance_clock(url, Duration::from_secs(3601));
    }
    eventually("the run completed", PATIENCE, || {
        (run_json(url, &run)["status"] == "completed").then_some(())
    });
}

fn all_completed(url: &str, runs: &[String]) -> bool {
    let listed: Vec<Value> = serde_json::from_str(&ok(
        url,
        &["runs", "list", "--json", "--status", "completed"],
    ))
    .unwrap();
    listed.len() == runs.len()
}

/// The first attempt exits 75 asking for an hour; every later one succeeds.
const PUSHED_BACK: &str = r#"
name = "pushed"
[defaults]
max_attempts = 3
[[steps]]
name = "call"
exec = ["sh", "-c", """
cat > /dev/null
if [ "$STEPWISE_ATTEMPT" = 1 ] && [ "$STEPWISE_RUN_ID" = "$(cat first)" ]; then
  echo '{"retry_after": "1h"}'; exit 75
fi
echo '{"ok": true}'
"""]
rate_limit = { key = "api", limit = 100, per = "1s" }
"#;

/// A step told to come back in an hour is retried after an hour of database time,
/// and its key is paused as long: another run's step on the key waits too, and
/// `explain` says so.
fn back_pressure_pauses_the_key_and_retries_after_the_delay(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, PUSHED_BACK);
    let url = db.url.as_str();
    let first = ok(url, &["run", "pushed", "--input", "{}"])
        .trim()
        .to_string();
    scratch.write("first", &first);
    let _worker = worker(url, &scratch, "worker", "*=2");
    let step = eventually("the first attempt to fail", PATIENCE, || {
        let view = run_json(url, &first);
        let step = view["steps"][0].clone();
        (step["attempts"] == 1 && step["status"] == "pending").then_some(step)
    });
    assert_eq!(
        step["error"], "exit 75: the service asked to retry after 1h",
        "{step}"
    );
    let key = limit(url, "api");
    let paused_until = time(&key["paused_until"]);
    let run_after = time(&step["run_after"]);
    let gap = (paused_until - run_after).num_milliseconds().abs();
    assert!(
        gap < 5000,
        "key paused until {paused_until}, retry at {run_after}"
    );
    assert!(
        run_after - time(&step["history"][0]["started_at"]) >= chrono::Duration::minutes(59),
        "{step}"
    );
    let events = events_when(url, "limit.paused", |events| {
        events.iter().any(|e| e["kind"] == "limit.paused")
    });
    let paused = events.iter().find(|e| e["kind"] == "limit.paused").unwrap();
    assert_eq!(paused["data"]["key"], "api", "{paused}");

    // Another run on the key waits out the pause as well.
    let second = ok(url, &["run", "pushed", "--input", "{}"])
        .trim()
        .to_string();
    let explained = eventually("the second run's step explained", PATIENCE, || {
        let out = ok(url, &["runs", "explain", &second, "--json"]);
        let value: Value = serde_json::from_str(&out).unwrap();
        let step = value["steps"][0].clone();
        (step["reason"] == "rate_limited").then_some(step)
    });
    let message = explained["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "rate limited on api until {}",
            paused_until.to_rfc3339()
        )) && explained["paused"] == true,
        "{explained}"
    );

    advance_clock(url, Duration::from_secs(3601));
    for run in [&first, &second] {
        eventually(&format!("run {run} completed"), PATIENCE, || {
            let view = run_json(url, run);
            (view["status"] == "completed").then_some(())
        });
    }
    let first_view = run_json(url, &first);
    assert_eq!(first_view["steps"][0]["attempts"], 2, "{first_view}");
    let second_start = time(&run_json(url, &second)["steps"][0]["started_at"]);
    assert!(
        second_start >= paused_until,
        "the second run started at {second_start}, inside the pause until {paused_until}"
    );
}

/// `limits set` creates and overrides, `pause`/`resume` act on known keys, and bad
/// input exits 2, unknown keys 4.
fn limits_commands_act_on_keys_and_refuse_bad_input(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, RATED);
    let url = db.url.as_str();
    let code = |args: &[&str]| stepwise(url, args).status.code();
    let stderr = |args: &[&str]| String::from_utf8(stepwise(url, args).stderr).unwrap();

    assert_eq!(limits(url), Vec::<Value>::new());
    let set: Value = serde_json::from_str(&ok(
        url,
        &[
            "limits", "set", "api", "--limit", "600", "--per", "1m", "--burst", "60", "--json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (
            &set["limit"],
            &set["per_ms"],
            &set["burst"],
            &set["overridden"]
        ),
        (
            &Value::from(600),
            &Value::from(60_000),
            &Value::from(60),
            &Value::from(true)
        ),
        "{set}"
    );
    let table = ok(url, &["limits"]);
    assert!(
        table.contains("api") && table.contains("600/1m") && table.contains("operator"),
        "{table}"
    );

    let paused: Value = serde_json::from_str(&ok(
        url,
        &["limits", "pause", "api", "--for", "10m", "--json"],
    ))
    .unwrap();
    assert!(paused["paused_until"].is_string(), "{paused}");
    assert_eq!(paused["next_start"], paused["paused_until"], "{paused}");
    let resumed: Value =
        serde_json::from_str(&ok(url, &["limits", "resume", "api", "--json"])).unwrap();
    assert_eq!(resumed["paused_until"], Value::Null, "{resumed}");
    let at = "2999-01-01T00:00:00Z";
    let paused: Value = serde_json::from_str(&ok(
        url,
        &["limits", "pause", "api", "--until", at, "--json"],
    ))
    .unwrap();
    assert_eq!(time(&paused["paused_until"]), time(&Value::from(at)));

    for bad in [
        &["limits", "set", "api", "--limit", "0", "--per", "1m"][..],
        &["limits", "set", "api", "--limit", "x", "--per", "1m"],
        &["limits", "set", "api", "--limit", "5", "--per", "soon"],
        &[
            "limits", "set", "api", "--limit", "5", "--per", "1m", "--burst", "-1",
        ],
        &["limits", "set", "api", "--limit", "5"],
        &["limits", "pause", "api"],
        &["limits", "pause", "api", "--for", "1m", "--until", at],
        &["limits", "pause", "api", "--until", "tomorrow"],
        &["limits", "pause", "api", "--until", "2000-01-01T00:00:00Z"],
        &["limits", "set", "", "--limit", "5", "--per", "1m"],
    ] {
        assert_eq!(code(bad), Some(2), "{bad:?}: {}", stderr(bad));
    }
    assert!(
        stderr(&["limits", "pause", "api", "--until", "2000-01-01T00:00:00Z"])
            .contains("is not in the future"),
    );
    for unknown in [
        &["limits", "pause", "nope", "--for", "1m"][..],
        &["limits", "resume", "nope"],
    ] {
        assert_eq!(code(unknown), Some(4), "{unknown:?}");
        assert!(stderr(unknown).contains("no rate limit key \"nope\"; keys: api"));
    }
}
