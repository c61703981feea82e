//! `stepwise queues`, `locks` and `runs explain` through the CLI.
//!
//! Every scenario runs on both backends (`flow_cli::NAME::sqlite`, `flow_cli::NAME::postgres`).
//! No worker is started: the runs stay where they are, so what the commands report is
//! deterministic.

use crate::support::on_both_backends;
use crate::support::{bin, events_json, ok, stepwise, Backend, Scratch, TestDb};
use serde_json::Value;
use std::process::{Command, Output};

on_both_backends!(
    locks_acquire_release_and_force_release,
    queues_count_pending_steps_and_pause_round_trips,
    set_limit_shows_in_queues,
    explain_names_dependencies_workers_and_slots,
);

/// Two `exec` steps, the first on queue `q1`, the second after it; runs sharing a
/// `tenant` are admitted one at a time.
const WORKFLOW: &str = r#"
name = "pair"

[run]
concurrency = { key = "{{ input.tenant }}", limit = 1 }

[[steps]]
name = "first"
queue = "q1"
exec = ["true"]

[[steps]]
name = "second"
after = ["first"]
exec = ["true"]
"#;

/// A fresh database with [`WORKFLOW`] applied.
fn setup(backend: Backend) -> (Scratch, TestDb) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let file = scratch.write("pair.toml", WORKFLOW);
    ok(&db.url, &["apply", file.to_str().unwrap()]);
    (scratch, db)
}

/// Starts a run of `pair` for `tenant`; returns its id.
fn start(url: &str, tenant: &str) -> String {
    let input = format!(r#"{{"tenant": "{tenant}"}}"#);
    ok(url, &["run", "pair", "--input", &input])
        .trim()
        .to_string()
}

/// `stepwise ARGS` as user `tester`.
fn as_tester(url: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("STEPWISE_DATABASE_URL", url)
        .env("USER", "tester")
        .output()
        .expect("run the stepwise binary")
}

/// Asserts `out` exited with `code`; returns its stderr.
fn exits(out: &Output, code: i32, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout {:?}, stderr {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn json(url: &str, args: &[&str]) -> Value {
    serde_json::from_str(&ok(url, args)).unwrap()
}

fn queue<'a>(queues: &'a Value, name: &str) -> &'a Value {
    queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
}

fn locks_acquire_release_and_force_release(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let url = &db.url;

    // Acquire: the token alone on the last line of stdout.
    let out = as_tester(url, &["locks", "acquire", "deploy", "--ttl", "5m"]);
    exits(&out, 0, "acquire a free lock");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_string();
    assert!(token.parse::<uuid::Uuid>().is_ok(), "token {token:?}");

    let locks = json(url, &["locks", "list", "--json"]);
    assert_eq!(locks.as_array().unwrap().len(), 1, "{locks}");
    let lock = &locks[0];
    assert_eq!(lock["key"], "deploy", "{lock}");
    assert!(lock.get("name").is_none(), "one word for a lock: {lock}");
    assert_eq!(lock["holder_kind"], "cli");
    let holder = lock["holder_id"].as_str().unwrap().to_string();
    assert!(holder.starts_with("cli:"), "{holder}");
    let expires = lock["expires_at"].as_str().unwrap()[..19].to_string();

    // Held: exit 3 naming the holder's kind, id and expiry (even for its holder).
    let out = as_tester(url, &["locks", "acquire", "deploy", "--ttl", "5m"]);
    let stderr = exits(&out, 3, "acquire a held lock");
    assert!(stderr.contains(&format!("held by {holder}")), "{stderr}");
    assert!(stderr.contains(&expires), "expiry {expires} in {stderr}");
    assert!(out.stdout.is_empty());

    // Release: a malformed token is bad input, another token a conflict.
    let out = stepwise(url, &["locks", "release", "deploy", "--token", "nope"]);
    exits(&out, 2, "release with a malformed token");
    let other = uuid::Uuid::new_v4().to_string();
    let out = stepwise(url, &["locks", "release", "deploy", "--token", &other]);
    let stderr = exits(&out, 3, "release with the wrong token");
    assert!(stderr.contains(&holder), "{stderr}");
    assert_eq!(json(url, &["locks", "list", "--json"]), locks);

    ok(url, &["locks", "release", "deploy", "--token", &token]);
    assert_eq!(
        json(url, &["locks", "list", "--json"]),
        Value::Array(vec![])
    );
    let out = stepwise(url, &["locks", "release", "deploy", "--token", &token]);
    exits(&out, 4, "release a lock nobody holds");

    // Acquire again, as JSON.
    let acquired = json(
        url,
        &["locks", "acquire", "deploy", "--ttl", "1m", "--json"],
    );
    assert_eq!(acquired["key"], "deploy");
    assert!(acquired["token"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .is_ok());
    assert!(acquired["expires_at"].is_string(), "{acquired}");

    // Force-release: a reason is required; the holder is named; an event remains.
    let out = stepwise(url, &["locks", "force-release", "deploy"]);
    exits(&out, 2, "force-release without a reason");
    let out = stepwise(url, &["locks", "force-release", "deploy", "--reason", " "]);
    exits(&out, 2, "force-release with a blank reason");
    let out = stepwise(
        url,
        &[
            "locks",
            "force-release",
            "deploy",
            "--reason",
            "deploy stuck",
        ],
    );
    let stderr = exits(&out, 0, "force-release a held lock");
    assert!(stderr.contains("held by cli:"), "{stderr}");
    assert_eq!(
        json(url, &["locks", "list", "--json"]),
        Value::Array(vec![])
    );
    let out = stepwise(
        url,
        &["locks", "force-release", "deploy", "--reason", "again"],
    );
    exits(&out, 4, "force-release a lock nobody holds");

    // PostgreSQL serves an event once every older transaction in the cluster ended
    // (other tests run beside this one): wait for it rather than read once.
    let events = crate::support::eventually(
        "the lock.force_released event",
        std::time::Duration::from_secs(120),
        || {
            let events = events_json(url);
            events
                .iter()
                .any(|e| e["kind"] == "lock.force_released")
                .then_some(events)
        },
    );
    let forced: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "lock.force_released")
        .collect();
    assert_eq!(forced.len(), 1, "{events:?}");
    assert_eq!(forced[0]["data"]["key"], "deploy");
    assert_eq!(forced[0]["data"]["reason"], "deploy stuck");
    // The token from the JSON acquire really held it: it no longer does.
    let token = acquired["token"].as_str().unwrap();
    let out = stepwise(url, &["locks", "release", "deploy", "--token", token]);
    exits(&out, 4, "release after a forced release");
}

fn queues_count_pending_steps_and_pause_round_trips(backend: Backend) {
    let (_scratch, db) = setup(backend);
    let url = &db.url;
    let run = start(url, "a");
    start(url, "b");

    let queues = json(url, &["queues", "--json"]);
    let q1 = queue(&queues, "q1");
    assert_eq!(q1["pending"], 2, "{queues}");
    assert_eq!(q1["running"], 0, "{queues}");
    assert_eq!(q1["paused"], false, "{queues}");
    assert!(q1["oldest_pending_since"].is_string(), "{queues}");
    assert!(q1["oldest_pending_age_ms"].is_u64(), "{queues}");
    let plain = ok(url, &["queues"]);
    let line = plain
        .lines()
        .find(|l| l.starts_with("q1 "))
        .unwrap_or_else(|| panic!("no q1 line in {plain}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1..4], ["no", "2", "0"], "{plain}");
    assert!(
        cells[5].ends_with('s'),
        "age of the oldest pending step: {plain}"
    );

    ok(url, &["queues", "pause", "q1"]);
    assert_eq!(
        queue(&json(url, &["queues", "--json"]), "q1")["paused"],
        true
    );
    let explained = json(url, &["runs", "explain", &run, "--json"]);
    let first = &explained["steps"][0];
    assert_eq!(first["step"], "first", "{explained}");
    assert_eq!(first["reason"], "queue_paused", "{explained}");
    let plain = ok(url, &["runs", "explain", &run]);
    assert!(plain.contains("queue \"q1\" is paused"), "{plain}");

    ok(url, &["queues", "resume", "q1"]);
    assert_eq!(
        queue(&json(url, &["queues", "--json"]), "q1")["paused"],
        false
    );

    let out = stepwise(url, &["queues", "pause", "nowhere"]);
    exits(&out, 4, "pause an unknown queue");
    let out = stepwise(url, &["queues", "resume", "nowhere"]);
    exits(&out, 4, "resume an unknown queue");
}

fn set_limit_shows_in_queues(backend: Backend) {
    let (_scratch, db) = setup(backend);
    let url = &db.url;
    start(url, "acme");
    start(url, "acme");

    let keys = json(url, &["queues", "--json"])["concurrency_keys"].clone();
    let acme = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "acme")
        .unwrap_or_else(|| panic!("no key acme in {keys}"));
    assert_eq!(acme["limit"], 1, "{keys}");
    assert_eq!(acme["active"], 1, "{keys}");
    assert_eq!(acme["waiting"], 1, "{keys}");
    assert_eq!(acme["limit_set"], false, "{keys}");

    for bad in ["0", "-1", "two", "1.5"] {
        let out = stepwise(url, &["queues", "set-limit", "acme", bad]);
        let stderr = exits(&out, 2, &format!("set-limit {bad}"));
        assert!(stderr.contains("at least 1"), "{stderr}");
    }

    ok(url, &["queues", "set-limit", "acme", "3"]);
    ok(url, &["queues", "set-limit", "fresh", "5"]);
    let keys = json(url, &["queues", "--json"])["concurrency_keys"].clone();
    let find = |name: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == name)
            .unwrap_or_else(|| panic!("no key {name} in {keys}"))
            .clone()
    };
    let acme = find("acme");
    assert_eq!(acme["limit"], 3, "{keys}");
    assert_eq!(acme["limit_set"], true, "{keys}");
    // Raising the limit admitted the waiting run at once.
    assert_eq!(acme["active"], 2, "{keys}");
    assert_eq!(acme["waiting"], 0, "{keys}");
    assert_eq!(find("fresh")["limit"], 5, "{keys}");
    let plain = ok(url, &["queues"]);
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("acme ") && l.ends_with("operator")),
        "{plain}"
    );
}

fn explain_names_dependencies_workers_and_slots(backend: Backend) {
    let (_scratch, db) = setup(backend);
    let url = &db.url;
    let run = start(url, "solo");

    // No worker runs: the first step has no live worker, the second waits for it.
    let plain = ok(url, &["runs", "explain", &run]);
    let lines: Vec<&str> = plain.lines().collect();
    assert!(
        lines[0].starts_with(&format!("run {run}  pair  ")),
        "{plain}"
    );
    let first = lines.iter().find(|l| l.starts_with("first ")).unwrap();
    assert!(first.contains("pending"), "{plain}");
    assert!(
        first.contains("no live worker serves queue \"q1\""),
        "{plain}"
    );
    let second = lines.iter().find(|l| l.starts_with("second ")).unwrap();
    assert!(second.contains("blocked"), "{plain}");
    assert!(second.contains("waiting for first to complete"), "{plain}");

    let explained = json(url, &["runs", "explain", &run, "--json"]);
    assert_eq!(explained["run"], run.as_str(), "{explained}");
    let steps = explained["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{explained}");
    assert_eq!(steps[0]["reason"], "no_live_worker", "{explained}");
    assert_eq!(steps[0]["queue"], "q1", "{explained}");
    assert_eq!(
        steps[1]["reason"], "waiting_for_dependencies",
        "{explained}"
    );
    assert_eq!(
        steps[1]["steps"],
        serde_json::json!(["first"]),
        "{explained}"
    );

    // A second run of the same tenant waits for the key's only slot.
    let queued = start(url, "solo");
    let plain = ok(url, &["runs", "explain", &queued]);
    assert!(
        plain.lines().next().unwrap().contains(&format!(
            "waiting for a slot of concurrency key \"solo\": number 1 in line, limit 1, held by {run}"
        )),
        "{plain}"
    );
    let explained = json(url, &["runs", "explain", &queued, "--json"]);
    assert_eq!(
        explained["reason"]["reason"], "waiting_for_slot",
        "{explained}"
    );
    assert_eq!(explained["reason"]["position"], 1, "{explained}");

    // A finished run says so.
    ok(url, &["runs", "cancel", &run, "--no-compensate"]);
    let plain = ok(url, &["runs", "explain", &run]);
    assert!(plain.contains("cancelled: it finished"), "{plain}");

    let out = stepwise(url, &["runs", "explain", "not-a-run-id"]);
    exits(&out, 2, "explain a malformed id");
    let unknown = "01a20ab7-b65d-7662-b3d9-907f345da3c0";
    let out = stepwise(url, &["runs", "explain", unknown]);
    exits(&out, 4, "explain an unknown run");
}
