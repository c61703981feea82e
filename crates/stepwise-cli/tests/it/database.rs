//! What a command says about the database it was pointed at: an unreachable or
//! unknown database fails at once with the cause, said once; a database without the
//! Stepwise schema is set up only by the commands that set one up (`migrate`, `dev`,
//! `run --local`, `bench`), and every other command refuses it with the way out.

use crate::support::{ok, on_both_backends, stepwise, unique, Backend, Scratch, TestDb};
use std::time::{Duration, Instant};

/// Far more than a refused or refusing connection takes, far less than the pool's
/// 30 s acquire timeout that used to hide the cause.
const PROMPTLY: Duration = Duration::from_secs(10);

fn pg_base() -> String {
    std::env::var("STEPWISE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_refused_connection_fails_promptly_naming_the_cause_once() {
    let started = Instant::now();
    let out = stepwise("postgres://postgres@127.0.0.1:1/postgres", &["workers"]);
    let took = started.elapsed();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(took < PROMPTLY, "took {took:?}: {text}");
    assert_eq!(
        text.to_lowercase().matches("connection refused").count(),
        1,
        "the cause, once: {text}"
    );
    assert!(!text.contains("pool timed out"), "{text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
}

#[test]
fn an_unknown_database_name_is_said_once() {
    let name = unique("sw_missing");
    let base = pg_base();
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(&base);
    let out = stepwise(&format!("{root}/{name}"), &["runs", "list"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches(&format!("\"{name}\" does not exist")).count(),
        1,
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "one line: {text}");
}

/// The tables in the PostgreSQL database at `url`, outside the system schemas.
fn pg_tables(url: &str) -> u32 {
    let out = std::process::Command::new("psql")
        .arg(url)
        .args([
            "-qAtc",
            "SELECT count(*) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        ])
        .output()
        .expect("psql must be installed to run the PostgreSQL tests");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn refuses_without_schema(url: &str, args: &[&str]) {
    let out = stepwise(url, args);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stepwise {args:?}: {text}");
    assert!(
        text.contains("has no Stepwise schema") && text.contains("stepwise migrate"),
        "stepwise {args:?} names the problem and the way out: {text}"
    );
}

#[test]
fn reading_commands_refuse_an_empty_postgres_database_and_create_nothing() {
    let scratch = Scratch::new();
    let db = TestDb::empty(Backend::Postgres, &scratch);
    let file = scratch.write("w.toml", WORKFLOW);
    for args in [
        &["workers"][..],
        &["runs", "list"],
        &["apply", file.to_str().unwrap()],
        &["run", "w"],
        &["worker"],
    ] {
        refuses_without_schema(&db.url, args);
    }
    assert_eq!(pg_tables(&db.url), 0, "no command created a table");
    ok(&db.url, &["migrate"]);
    assert!(pg_tables(&db.url) > 0);
    ok(&db.url, &["workers"]);
}

/// The contract's default database, `sqlite://stepwise.db`, is created on first use by
/// any command: a file of one's own is where a new user starts. Only PostgreSQL, a
/// shared server where a mistyped URL must not grow a schema, refuses.
#[test]
fn any_command_creates_a_missing_sqlite_file_on_first_use() {
    let scratch = Scratch::new();
    for args in [&["workers"][..], &["runs", "list"], &["events"]] {
        let db = TestDb::empty(Backend::Sqlite, &scratch);
        ok(&db.url, args);
        ok(&db.url, &["runs", "list", "--json"]);
    }
}

/// One `exec` step that succeeds.
const WORKFLOW: &str = "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\n";

/// README's first command: `run FILE --local` on a database that does not exist yet.
fn run_local_sets_up_an_empty_database(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::empty(backend, &scratch);
    let file = scratch.write("w.toml", WORKFLOW);
    ok(&db.url, &["run", file.to_str().unwrap(), "--local"]);
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&db.url, &["runs", "list", "--json"])).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "completed");
}

on_both_backends!(run_local_sets_up_an_empty_database);
