//! What the `stepwise` process logs on stderr: plain text unless stderr is a
//! terminal, and never SQL.

use crate::support::{eventually, ok, Backend, Scratch, TestDb};
use std::process::{Command, Stdio};
use std::time::Duration;

const WORKFLOW: &str = "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\n";

#[test]
fn logs_written_to_a_file_or_pipe_carry_no_colour_codes() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let file = scratch.write("w.toml", WORKFLOW);
    let out = Command::new(crate::support::bin())
        .args(["run", file.to_str().unwrap(), "--local"])
        .env("STEPWISE_DATABASE_URL", &db.url)
        .env("STEPWISE_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("worker registered"),
        "logs were written: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr:?}");
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-qAtc", sql])
        .output()
        .expect("psql must be installed to run the PostgreSQL tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// sqlx warns about every statement slower than a second, with its SQL text; a
/// user (or a log file) must never see SQL.
#[test]
fn a_slow_statement_prints_no_sql() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Postgres, &scratch);
    let file = scratch.write("w.toml", WORKFLOW);
    ok(&db.url, &["apply", file.to_str().unwrap()]);
    // Another session holds the run table for a while, so creating a run waits
    // longer than sqlx's one-second threshold.
    let mut holder = Command::new("psql")
        .arg(&db.url)
        .args([
            "-qAtc",
            "BEGIN; LOCK TABLE run IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        "the run table to be locked",
        Duration::from_secs(30),
        || {
            let held = psql(
                &db.url,
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'run' AND l.mode = 'AccessExclusiveLock' AND l.granted",
            );
            (held.trim() == "1").then_some(())
        },
    );
    let out = Command::new(crate::support::bin())
        .args(["run", "w"])
        .env("STEPWISE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    holder.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for sql in ["INSERT", "SELECT", "slow statement"] {
        assert!(!stderr.contains(sql), "no SQL on stderr: {stderr}");
    }
}
