//! Child runs with real worker processes: a batch whose items each start a child
//! run, on two workers of one slot each. The parent's items hold no slot while
//! their children run (were they held, six waiting items would starve the two
//! slots the children need), every child's step runs exactly once, and the parent
//! ends with its children's outputs in order.

use crate::support::on_both_backends;
use crate::support::{eventually, ok, run_json, Backend, Background, Scratch, TestDb};
use serde_json::{json, Value};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

on_both_backends!(child_runs_across_two_workers_run_each_child_once);

const ONE: &str = r#"
name = "ingest-one"
[[steps]]
name = "parse"
exec = ["sh", "-c", "doc=$(cat | sed -n 's/.*\"document\": *\"\\([^\"]*\\)\".*/\\1/p'); echo \"$doc\" >> \"$LEDGER\"; echo \"{\\\"doc\\\": \\\"$doc\\\"}\""]
"#;

const BATCH: &str = r#"
name = "ingest-batch"
[[steps]]
name = "ingest"
for_each = "input.documents"
run = { workflow = "ingest-one", input = { document = "{{ item }}" } }

[[steps]]
name = "report"
after = ["ingest"]
exec = ["sh", "-c", "cat > /dev/null; echo '{\"reported\": true}'"]
"#;

fn child_runs_across_two_workers_run_each_child_once(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let ledger = scratch.path().join("ledger.txt");
    let one = scratch.write(
        "one.toml",
        &ONE.replace("$LEDGER", ledger.to_str().unwrap()),
    );
    let batch = scratch.write("batch.toml", BATCH);
    ok(&db.url, &["apply", one.to_str().unwrap()]);
    ok(&db.url, &["apply", batch.to_str().unwrap()]);
    let docs: Vec<String> = (0..6).map(|i| format!("doc-{i}")).collect();
    let run = ok(
        &db.url,
        &[
            "run",
            "ingest-batch",
            "--input",
            &json!({ "documents": docs }).to_string(),
        ],
    )
    .trim()
    .to_string();
    let workers: Vec<Background> = (0..2)
        .map(|i| {
            Background::spawn(
                &db.url,
                &["worker", "--pool", "*=1", "--lease", "5s"],
                &scratch,
                &format!("worker-{i}"),
            )
        })
        .collect();
    let done = eventually("the batch to complete", PATIENCE, || {
        let view = run_json(&db.url, &run);
        (view["status"] == "completed").then_some(view)
    });
    drop(workers);
    let ingest = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ingest")
        .cloned()
        .unwrap_or(Value::Null);
    let outputs: Vec<Value> = ingest["output"].as_array().cloned().unwrap_or_default();
    let expected: Vec<Value> = docs.iter().map(|d| json!({"parse": {"doc": d}})).collect();
    assert_eq!(
        outputs, expected,
        "the children's outputs, in the documents' order"
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, docs, "each child's step ran exactly once");
    let children: Vec<Value> = serde_json::from_str(&ok(
        &db.url,
        &["runs", "list", "--json", "--workflow", "ingest-one"],
    ))
    .unwrap();
    assert_eq!(children.len(), 6);
    assert!(
        children.iter().all(|c| c["parent_run"] == json!(run)),
        "{children:?}"
    );
}
