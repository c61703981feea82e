//! `stepwise run --inputs`: each line is held to the API's body limit, and a bad
//! line starts nothing.

use crate::support::{ok, runs_json, stepwise, Backend, Scratch, TestDb};

const LIMIT: usize = stepwise::server::DEFAULT_BODY_LIMIT;

/// A JSON string that is exactly `bytes` long, quotes included.
fn json_string(bytes: usize) -> String {
    format!("\"{}\"", "a".repeat(bytes - 2))
}

fn setup(scratch: &Scratch) -> TestDb {
    let db = TestDb::new(Backend::Sqlite, scratch);
    let file = scratch.write(
        "w.toml",
        "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\n",
    );
    ok(&db.url, &["apply", file.to_str().unwrap()]);
    db
}

#[test]
fn an_input_line_over_the_api_body_limit_is_refused_by_line_and_starts_nothing() {
    let scratch = Scratch::new();
    let db = setup(&scratch);
    let text = format!("{{\"i\": 1}}\n{{\"i\": 2}}\n{}\n", json_string(LIMIT + 1));
    let inputs = scratch.write("in.jsonl", &text);
    let out = stepwise(&db.url, &["run", "w", "--inputs", inputs.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in.jsonl:3:") && stderr.contains(&LIMIT.to_string()),
        "names the line and the limit: {stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no input echoed: {stderr}"
    );
    assert!(out.stdout.is_empty(), "no run id printed");
    assert!(
        runs_json(&db.url).is_empty(),
        "the lines before it started nothing"
    );
}

#[test]
fn an_input_line_at_the_api_body_limit_is_accepted() {
    let scratch = Scratch::new();
    let db = setup(&scratch);
    let inputs = scratch.write("in.jsonl", &format!("{}\r\n", json_string(LIMIT)));
    ok(&db.url, &["run", "w", "--inputs", inputs.to_str().unwrap()]);
    assert_eq!(runs_json(&db.url).len(), 1);
}

#[test]
fn a_bad_json_line_late_in_a_file_starts_nothing() {
    let scratch = Scratch::new();
    let db = setup(&scratch);
    // More lines than one chunk of creation, so the runs before the bad line would
    // have been created had the file not been checked first.
    let mut text: String = (0..1500).map(|i| format!("{{\"i\": {i}}}\n")).collect();
    text.push_str("{not json\n");
    let inputs = scratch.write("in.jsonl", &text);
    let out = stepwise(&db.url, &["run", "w", "--inputs", inputs.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in.jsonl:1501: not JSON"), "{stderr}");
    assert!(runs_json(&db.url).is_empty(), "nothing started");
}
