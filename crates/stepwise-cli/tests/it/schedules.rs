//! Schedules with real processes (docs/design.md "Schedules"): three workers firing
//! one `every = "1s"` schedule with no leader create each fire time's run once, with
//! no gap, also when the database clock jumps and they race over a backlog of fire
//! times; `stepwise dev` fires the schedules of the files it applies; and the
//! `schedules` commands answer with the contract's exit codes.

use crate::support::on_both_backends;
use crate::support::{
    advance_clock, eventually, ok, progressing, run_json, runs_json, stepwise, Backend, Background,
    Scratch, TestDb,
};
use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

on_both_backends!(
    three_workers_fire_each_second_once_with_no_gap,
    dev_fires_the_schedules_of_its_workflow_files,
    the_schedules_commands_show_and_control_a_schedule,
);

/// The default `catchup = "latest"`: fire times less than a minute late are not
/// missed (a pass that runs late on a loaded machine, or the 30 s clock jump below),
/// so every one fires and any gap is a lost fire, not a policy.
const TICK: &str = r#"
name = "tick"
[[steps]]
name = "work"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]

[[schedules]]
name = "tick-1s"
every = "1s"
overlap = "allow"
"#;

/// The scheduled runs: fire time → run ids.
fn scheduled_runs(url: &str) -> BTreeMap<DateTime<Utc>, Vec<String>> {
    let mut by_time: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    for run in runs_json(url) {
        if run["schedule"] != "tick-1s" {
            continue;
        }
        let at: DateTime<Utc> = run["scheduled_for"]
            .as_str()
            .unwrap_or_else(|| panic!("a scheduled run without scheduled_for: {run}"))
            .parse()
            .unwrap();
        by_time
            .entry(at)
            .or_default()
            .push(run["id"].as_str().unwrap().to_string());
    }
    by_time
}

fn three_workers_fire_each_second_once_with_no_gap(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    let file = scratch.write("tick.toml", TICK);
    ok(url, &["apply", file.to_str().unwrap()]);
    let mut workers: Vec<Background> = (0..3)
        .map(|i| {
            Background::spawn(
                url,
                &["worker", "--pool", "*=2"],
                &scratch,
                &format!("worker{i}"),
            )
        })
        .collect();
    let wait_for_runs = |n: usize| {
        progressing(
            &format!("{n} scheduled runs"),
            Duration::from_millis(200),
            Duration::from_secs(120),
            || {
                let count = scheduled_runs(url).len();
                (count, count >= n)
            },
        )
    };
    wait_for_runs(5);
    // Thirty fire times fall due at once: the three workers race over them.
    advance_clock(url, Duration::from_secs(30));
    let before = scheduled_runs(url).len();
    wait_for_runs(before + 35);
    for w in &workers {
        w.signal(Signal::SIGTERM);
    }
    for w in &mut workers {
        let status = w.wait_exit(Duration::from_secs(120));
        assert!(
            status.is_some(),
            "a worker did not stop: {}",
            w.stderr_text()
        );
    }
    let runs = scheduled_runs(url);
    let duplicated: Vec<_> = runs.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "fire times with several runs: {duplicated:?}"
    );
    let times: Vec<DateTime<Utc>> = runs.keys().copied().collect();
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a gap between fire times {} and {} (of {} runs)",
            pair[0],
            pair[1],
            times.len()
        );
    }
    assert!(times.len() >= 40, "{} runs", times.len());
    for time in &times {
        assert_eq!(
            time.timestamp_subsec_millis(),
            0,
            "fire times are whole seconds"
        );
    }
    // Each run carries its schedule and the contract's idempotency key.
    let (time, ids) = runs.iter().next().unwrap();
    let view = run_json(url, &ids[0]);
    assert_eq!(
        view["idempotency_key"],
        format!(
            "schedule:tick-1s:{}",
            time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
        "{view}"
    );
}

fn dev_fires_the_schedules_of_its_workflow_files(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    let flows = scratch.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    scratch.write("flows/tick.toml", TICK);
    let dev = Background::spawn(
        url,
        &[
            "dev",
            "--workflows",
            flows.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &scratch,
        "dev",
    );
    let completed = eventually(
        "two scheduled runs completed",
        Duration::from_secs(120),
        || {
            let done: Vec<Value> = runs_json(url)
                .into_iter()
                .filter(|r| r["schedule"] == "tick-1s" && r["status"] == "completed")
                .collect();
            (done.len() >= 2).then_some(done)
        },
    );
    assert!(
        completed[0]["scheduled_for"].is_string(),
        "{}",
        completed[0]
    );
    let stderr = dev.stderr_text();
    assert!(
        stderr.contains("schedule tick-1s: created, next "),
        "dev says what apply did to the schedules: {stderr}"
    );
    dev.signal(Signal::SIGTERM);
}

const NIGHTLY: &str = r#"
name = "digest"
[[steps]]
name = "send"
exec = ["sh", "-c", "cat > /dev/null; echo '{}'"]

[[schedules]]
name = "nightly-digest"
cron = "0 2 * * *"
timezone = "Europe/Paris"
input = { kind = "digest" }
"#;

fn code(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = stepwise(url, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn the_schedules_commands_show_and_control_a_schedule(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    let file = scratch.write("digest.toml", NIGHTLY);
    let (status, _, stderr) = code(url, &["apply", file.to_str().unwrap()]);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(
        stderr.contains("schedule nightly-digest: created, next "),
        "{stderr}"
    );

    let listed = ok(url, &["schedules"]);
    assert!(listed.contains("nightly-digest"), "{listed}");
    assert!(
        listed.contains("cron \"0 2 * * *\" Europe/Paris"),
        "{listed}"
    );
    let json: Value = serde_json::from_str(&ok(url, &["schedules", "list", "--json"])).unwrap();
    assert_eq!(json[0]["spec"]["name"], "nightly-digest", "{json}");
    assert_eq!(json[0]["paused"], false, "{json}");

    ok(url, &["schedules", "pause", "nightly-digest"]);
    let json: Value = serde_json::from_str(&ok(url, &["schedules", "--json"])).unwrap();
    assert_eq!(json[0]["paused"], true, "{json}");
    assert!(ok(url, &["schedules"]).contains("paused"));
    ok(url, &["schedules", "resume", "nightly-digest"]);

    // trigger prints the run's id alone; the run shows its schedule.
    let run = ok(url, &["schedules", "trigger", "nightly-digest"]);
    let run = run.trim();
    let view = run_json(url, run);
    assert_eq!(view["schedule"], "nightly-digest", "{view}");
    assert_eq!(view["input"]["kind"], "digest", "{view}");
    let shown = ok(url, &["runs", "show", run]);
    assert!(shown.contains("schedule  nightly-digest for "), "{shown}");

    // backfill: each fire time and its run, once; again, the same runs.
    let span = [
        "schedules",
        "backfill",
        "nightly-digest",
        "--from",
        "2026-03-27T00:00:00Z",
        "--to",
        "2026-03-31T00:00:00Z",
    ];
    let first = ok(url, &span);
    let lines: Vec<&str> = first.lines().collect();
    // 02:00 in Paris: UTC+1 until the 29th, UTC+2 from then on; on the 29th 02:00
    // does not exist and fires at the next valid instant, 03:00 CEST. `--to` is
    // included.
    let times: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-03-27T01:00:00Z",
            "2026-03-28T01:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:00:00Z",
            "2026-03-31T00:00:00Z",
        ],
        "{first}"
    );
    assert!(lines.iter().all(|l| l.ends_with("started")), "{first}");
    let again = ok(url, &span);
    assert_eq!(
        again.replace("existing", "started"),
        first,
        "a repeated backfill finds the same runs"
    );

    // Exit codes: unknown schedule 4, bad input 2.
    for args in [
        &["schedules", "pause", "nope"][..],
        &["schedules", "resume", "nope"],
        &["schedules", "trigger", "nope"],
        &[
            "schedules",
            "backfill",
            "nope",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
        ],
    ] {
        let (status, _, stderr) = code(url, args);
        assert_eq!(status, Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("no schedule \"nope\""), "{stderr}");
    }
    let bad_spans = [
        ["--from", "yesterday", "--to", "2026-01-02T00:00:00Z"],
        [
            "--from",
            "2026-01-03T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
        ],
        [
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
        ],
    ];
    for span in bad_spans {
        let mut args = vec!["schedules", "backfill", "nightly-digest"];
        args.extend(span);
        let (status, _, stderr) = code(url, &args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
    }

    // Another workflow may not take the name: exit 2, and it is not registered.
    let thief = scratch.write(
        "thief.toml",
        &NIGHTLY.replace("name = \"digest\"", "name = \"thief\""),
    );
    let (status, _, stderr) = code(url, &["apply", thief.to_str().unwrap()]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("nightly-digest") && stderr.contains("global"),
        "{stderr}"
    );
    let (status, _, _) = code(url, &["run", "thief"]);
    assert_eq!(status, Some(4), "the refused workflow was not registered");

    // A schedule removed from the file is removed.
    let without = scratch.write(
        "digest.toml",
        NIGHTLY.split("[[schedules]]").next().unwrap(),
    );
    let (_, _, stderr) = code(url, &["apply", without.to_str().unwrap()]);
    assert!(
        stderr.contains("schedule nightly-digest: removed"),
        "{stderr}"
    );
    let json: Value = serde_json::from_str(&ok(url, &["schedules", "--json"])).unwrap();
    assert_eq!(json, serde_json::json!([]));
}

/// `examples/schedules`, as the README offers it to `stepwise dev`: it applies, with
/// its two schedules, and its digest runs to completion.
#[test]
fn the_schedules_example_applies_and_runs() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/schedules/workflow.toml");
    ok(url, &["apply", example.to_str().unwrap()]);
    let json: Value = serde_json::from_str(&ok(url, &["schedules", "--json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["spec"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["heartbeat", "nightly-digest"], "{json}");
    let run = ok(url, &["schedules", "trigger", "nightly-digest"]);
    let _worker = Background::spawn(url, &["worker"], &scratch, "worker");
    eventually("the digest completed", Duration::from_secs(120), || {
        let view = run_json(url, run.trim());
        assert_ne!(view["status"], "failed", "{view}");
        (view["status"] == "completed").then_some(())
    });
}
