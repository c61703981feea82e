//! The `stepwise` binary as a user runs it.

use crate::support::bin;
use std::process::Command;

fn stepwise(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env_remove("STEPWISE_DATABASE_URL")
        .output()
        .expect("run the stepwise binary")
}

fn temp_db() -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("stepwise-cli-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("stepwise.db").display());
    (dir, url)
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let (dir, url) = temp_db();
    for _ in 0..2 {
        let out = stepwise(&["migrate", "--database-url", &url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!(
            "schema at version {} (sqlite)",
            stepwise::store::SCHEMA_VERSION
        );
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(out.stdout.is_empty(), "migrate prints nothing on stdout");
    }
    assert!(dir.join("stepwise.db").exists());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_unsupported_database_url_is_bad_input() {
    let out = stepwise(&["migrate", "--database-url", "mysql://localhost/x"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported database url"), "{stderr}");
}

#[test]
fn an_unknown_command_is_bad_usage() {
    let out = stepwise(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
