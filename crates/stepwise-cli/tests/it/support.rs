//! Shared helpers: the binary under test, scratch directories, and a database per
//! test on either backend.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `stepwise` binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stepwise")
}

// `unique` stays for tests that name their own scratch files.
#[allow(unused_imports)]
pub use stepwise_testkit::{on_both_backends, unique, Backend};

/// A scratch directory (its path in `.0`), removed when dropped.
pub struct Scratch(pub PathBuf, stepwise_testkit::TempDir);

impl Scratch {
    pub fn new() -> Self {
        let dir = stepwise_testkit::TempDir::new("stepwise-it");
        Scratch(dir.path().to_path_buf(), dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A fresh Stepwise database for one test: a SQLite file in `scratch`, or a new
/// PostgreSQL database (dropped when this is dropped, also when the test panics).
pub struct TestDb {
    pub url: String,
    _pg: Option<stepwise_testkit::PgDatabase>,
}

impl TestDb {
    /// A database with the schema in place, as `stepwise migrate` leaves it (only
    /// `migrate`, `dev` and `run --local` create it; other commands refuse).
    pub fn new(backend: Backend, scratch: &Scratch) -> Self {
        let db = Self::empty(backend, scratch);
        ok(&db.url, &["migrate"]);
        db
    }

    /// A database without the schema: a SQLite path with no file yet, or an empty
    /// PostgreSQL database.
    pub fn empty(backend: Backend, scratch: &Scratch) -> Self {
        match backend {
            Backend::Sqlite => TestDb {
                url: stepwise_testkit::sqlite_url(&scratch.path().join("stepwise.db")),
                _pg: None,
            },
            Backend::Postgres => {
                let pg = stepwise_testkit::PgDatabase::create();
                TestDb {
                    url: pg.url.clone(),
                    _pg: Some(pg),
                }
            }
        }
    }
}

/// Runs `stepwise ARGS` against `url` and waits.
pub fn stepwise(url: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("STEPWISE_DATABASE_URL", url)
        .output()
        .expect("run the stepwise binary")
}

/// Like [`stepwise`], asserting success; returns stdout.
pub fn ok(url: &str, args: &[&str]) -> String {
    let out = stepwise(url, args);
    assert!(
        out.status.success(),
        "stepwise {args:?} failed with {:?}:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A `stepwise` process left running in the background (a worker), its stdout and
/// stderr in files of the scratch directory; killed (SIGKILL) when dropped.
pub struct Background {
    pub child: std::process::Child,
    pub stderr: PathBuf,
}

impl Background {
    /// Starts `stepwise ARGS` against `url`; `name` names its log files in `scratch`.
    pub fn spawn(url: &str, args: &[&str], scratch: &Scratch, name: &str) -> Self {
        let stdout = scratch.path().join(format!("{name}.stdout"));
        let stderr = scratch.path().join(format!("{name}.stderr"));
        let child = Command::new(bin())
            .args(args)
            .env("STEPWISE_DATABASE_URL", url)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start the stepwise binary");
        Background { child, stderr }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to {}: {e}", self.pid()));
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// What it wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `within`;
/// panics naming `what` when time runs out.
pub fn eventually<T>(
    what: &str,
    within: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether a process exists and is not a zombie (Linux: `/proc/PID/stat`).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `stepwise runs list --json`.
pub fn runs_json(url: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(url, &["runs", "list", "--json"])).unwrap()
}

/// `stepwise runs show ID --json`.
pub fn run_json(url: &str, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(url, &["runs", "show", id, "--json"])).unwrap()
}

/// `stepwise events --json`, one value per event: every event committed before the
/// call. PostgreSQL serves an event only once every older transaction in the whole
/// server has ended, and a test beside this one may hold one open for a while (a
/// worker frozen inside a transaction, until the server ends it).
pub fn events_json(url: &str) -> Vec<serde_json::Value> {
    if url.starts_with("postgres") {
        let query = |sql: &str| {
            let out = Command::new("psql")
                .arg(url)
                .args(["-qAtc", sql])
                .output()
                .expect("psql");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let next = query("SELECT pg_snapshot_xmax(pg_current_snapshot())");
        eventually(
            "older transactions to end",
            std::time::Duration::from_secs(60),
            || {
                (query(&format!(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= '{next}'::xid8"
                )) == "t")
                    .then_some(())
            },
        );
    }
    ok(url, &["events", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Moves the database's clock (the store's seam for time: backoffs, leases,
/// deadlines) forward by `by`, for every process using the database.
pub fn advance_clock(url: &str, by: std::time::Duration) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = stepwise_store::connect(url).await.unwrap();
            store.advance_clock(by).await.unwrap();
        });
}

/// Waits for `check` to report done, looking every `every`; fails only when the
/// progress it reports (a count of work done) stands still for `stall`, so the
/// budget grows with the work and a loaded machine is slow, not failing.
pub fn progressing(
    what: &str,
    every: std::time::Duration,
    stall: std::time::Duration,
    mut check: impl FnMut() -> (usize, bool),
) {
    let mut best = 0;
    let mut moved = std::time::Instant::now();
    loop {
        let (progress, done) = check();
        if done {
            return;
        }
        if progress > best {
            best = progress;
            moved = std::time::Instant::now();
        }
        assert!(
            moved.elapsed() < stall,
            "no progress for {stall:?} waiting for {what} (stuck at {best})"
        );
        std::thread::sleep(every);
    }
}

/// `stepwise events --json` once `ready` holds for it. PostgreSQL serves an event
/// only once every older transaction in the cluster has ended, and other tests (other
/// processes) share the cluster: a test waits for the events it expects rather than
/// reading once.
pub fn events_when(
    url: &str,
    what: &str,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    eventually(what, std::time::Duration::from_secs(120), || {
        let events = events_json(url);
        ready(&events).then_some(events)
    })
}
