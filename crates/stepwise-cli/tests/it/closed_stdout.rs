//! A reader that stops reading (`stepwise events | head -1`) ends the command
//! quietly, as it ends `cat`: never a panic (exit 101) or an error message.

use crate::support::{bin, ok, Backend, Scratch, TestDb};
use std::process::{Command, Stdio};

/// Runs `stepwise ARGS` with a stdout whose read end is already closed, so its very
/// first write fails (no race with a reader that closes "early enough").
fn with_closed_stdout(url: &str, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(bin())
        .args(args)
        .env("STEPWISE_DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let file = scratch.write(
        "w.toml",
        "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\n",
    );
    let inputs = scratch.write("in.jsonl", "{\"i\": 1}\n{\"i\": 2}\n");
    ok(url, &["apply", file.to_str().unwrap()]);
    let ids = ok(
        url,
        &[
            "run",
            "w",
            "--inputs",
            inputs.to_str().unwrap(),
            "--group",
            "g",
        ],
    );
    let run = ids.lines().next().unwrap();
    for args in [
        &["events"][..],
        &["events", "--json"],
        &["runs", "list"],
        &["runs", "show", run],
        &["runs", "show", run, "--json"],
        &["groups", "show", "g"],
        &["queues"],
        &["workers"],
    ] {
        let out = with_closed_stdout(url, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(141),
            "stepwise {args:?} on a closed stdout exits as SIGPIPE would for a Unix tool; stderr: {stderr}"
        );
        assert!(
            stderr.is_empty(),
            "stepwise {args:?} on a closed stdout says nothing; stderr: {stderr}"
        );
    }
}
