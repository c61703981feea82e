//! `stepwise bench`: the backlog scenario and the rate over time.

use crate::support::*;

/// The backlog scenario enqueues every run before a worker starts, drains them all,
/// and with `--report-every` reports the rate per interval in the JSON and on stderr.
#[test]
fn a_backlog_drains_completely_and_reports_its_rate_over_time() {
    let scratch = Scratch::new();
    let db = TestDb::empty(Backend::Sqlite, &scratch);
    let out = stepwise(
        &db.url,
        &[
            "bench",
            "--scenario",
            "backlog",
            "--runs",
            "300",
            "--workers",
            "1",
            "--pool",
            "4",
            "--report-every",
            "10ms",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["scenario"], "backlog");
    assert_eq!(report["runs"], 300);
    assert_eq!(report["steps"], 300);
    assert!(report["steps_per_s"].as_f64().unwrap() > 0.0);
    let intervals = report["rate_over_time"].as_array().expect("rate_over_time");
    assert!(!intervals.is_empty(), "at least one interval of the drain");
    for i in intervals {
        assert!(i["t"].is_number() && i["steps_per_s"].is_number(), "{i}");
    }
    assert!(
        stderr.contains("steps/s="),
        "the rate is printed on stderr: {stderr}"
    );
}

#[test]
fn a_zero_report_interval_is_refused() {
    let scratch = Scratch::new();
    let db = TestDb::empty(Backend::Sqlite, &scratch);
    let out = stepwise(
        &db.url,
        &[
            "bench",
            "--scenario",
            "backlog",
            "--runs",
            "10",
            "--report-every",
            "0s",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--report-every"));
}

/// The fanout scenario expands one run's items in one timed transaction, drains them
/// and reports the join; it is sized by `--items`, not `--runs`.
#[test]
fn the_fanout_scenario_times_the_expansion_and_drains_every_item() {
    let scratch = Scratch::new();
    let db = TestDb::empty(Backend::Sqlite, &scratch);
    let out = stepwise(
        &db.url,
        &[
            "bench",
            "--scenario",
            "fanout",
            "--items",
            "50",
            "--workers",
            "1",
            "--pool",
            "4",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(report["scenario"], "fanout");
    assert_eq!(report["items"], 50);
    for key in ["expansion_ms", "items_per_s", "drain_seconds", "join_ms"] {
        assert!(
            report[key].as_f64().is_some_and(|x| x >= 0.0),
            "{key}: {report}"
        );
    }
    let human = stepwise(
        &db.url,
        &[
            "bench",
            "--scenario",
            "fanout",
            "--items",
            "5",
            "--workers",
            "1",
            "--pool",
            "2",
        ],
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.status.success(),
        "{}",
        String::from_utf8_lossy(&human.stderr)
    );
    assert!(
        text.contains("expansion") && text.contains("items/s"),
        "{text}"
    );
    for bad in [
        &["bench", "--scenario", "fanout", "--runs", "3"][..],
        &["bench", "--scenario", "noop", "--items", "3"][..],
        &["bench", "--scenario", "fanout", "--items", "0"][..],
    ] {
        let out = stepwise(&db.url, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
