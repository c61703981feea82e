//! A step's helper that leaves its process group and session (`setsid`) while
//! keeping the step's stdout open must not hold the attempt: every way an attempt
//! ends (its timeout, the run's deadline, a cancel, a lost lease, a stopped or
//! killed worker) ends it on time and kills the helper too.
//!
//! The steps record their own pid and their helper's in files; the helper sleeps
//! 300 s, so an attempt that waited for it would blow every budget here (60 s,
//! which only a very slow machine would approach: the attempts end in seconds).

use crate::support::on_both_backends;
use crate::support::{alive, bin, eventually, ok, run_json, Backend, Background, Scratch, TestDb};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use stepwise_engine::executor::{exec, AttemptInput, AttemptResult, ExecOptions};
use stepwise_engine::LeaseValidity;
use tokio_util::sync::CancellationToken;

/// How long an attempt may take to end, against the 300 s its helper would hold it.
const BUDGET: Duration = Duration::from_secs(60);

on_both_backends!(
    an_attempt_timeout_ends_the_attempt_and_kills_the_escaped_helper,
    a_run_deadline_ends_the_attempt_and_kills_the_escaped_helper,
    a_cancel_ends_the_attempt_and_kills_the_escaped_helper,
    a_lost_lease_ends_the_attempt_and_kills_the_escaped_helper,
);

/// Attempt N writes `child.N` (its pid) and starts a helper in a new session that
/// writes `escaped.N` and sleeps 300 s with the step's stdout and stderr; the step
/// itself sleeps 300 s too. Attempts after `$1` (default: every attempt) succeed at
/// once.
const STEP: &str = r#"
n=$STEPWISE_ATTEMPT
if [ -n "$1" ] && [ "$n" -gt "$1" ]; then echo '{"quick": true}'; exit 0; fi
setsid sh -c 'echo $$ > "escaped.$0.tmp"; mv "escaped.$0.tmp" "escaped.$0"; exec sleep 300' "$n" &
echo $$ > "child.$n.tmp"; mv "child.$n.tmp" "child.$n"
echo "attempt $n started"
sleep 300
"#;

/// A workflow `escape` of one step `s` running [`STEP`] with `step_args` (TOML
/// array items), `extra` TOML in the step, and `run` TOML in the workflow's `[run]`.
fn workflow(step_args: &str, extra: &str, run: &str) -> String {
    format!(
        r#"
name = "escape"
{run}
[[steps]]
name = "s"
exec = ["sh", "step.sh"{step_args}]
{extra}
"#
    )
}

/// A workflow whose one step ends at once: the consumer that ran an escaping step
/// must be free to run it.
const QUICK: &str = r#"
name = "quick"
[[steps]]
name = "q"
exec = ["sh", "-c", "echo '{}'"]
"#;

fn setup(backend: Backend, scratch: &Scratch, toml: &str) -> TestDb {
    let db = TestDb::new(backend, scratch);
    ok(&db.url, &["migrate"]);
    scratch.write("step.sh", STEP);
    for (name, text) in [("escape", toml), ("quick", QUICK)] {
        let file = scratch.write(&format!("{name}.toml"), text);
        ok(&db.url, &["apply", path(&file)]);
    }
    db
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One worker with a single consumer, so a consumer held by an attempt shows.
fn worker(url: &str, scratch: &Scratch, lease: &str) -> Background {
    let args = ["worker", "--pool", "*=1", "--lease", lease];
    Background::spawn(url, &args, scratch, "worker")
}

fn start(url: &str, workflow: &str) -> String {
    ok(url, &["run", workflow]).trim().to_string()
}

fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// The pids of attempt `n`'s step and helper, once both have written them.
fn attempt_pids(dir: &Path, n: u32) -> [i32; 2] {
    eventually(
        &format!("attempt {n} and its helper to start"),
        BUDGET,
        || {
            Some([
                read_pid(dir, &format!("child.{n}"))?,
                read_pid(dir, &format!("escaped.{n}"))?,
            ])
        },
    )
}

fn all_gone(pids: &[i32]) {
    eventually(&format!("processes {pids:?} to be killed"), BUDGET, || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
}

/// Waits (within [`BUDGET`]) for the run to reach `status`.
fn ends(url: &str, run: &str, status: &str) -> Value {
    eventually(&format!("run {run} {status}"), BUDGET, || {
        let view = run_json(url, run);
        (view["status"] == status).then_some(view)
    })
}

fn step(run: &Value) -> &Value {
    &run["steps"][0]
}

/// The (only) consumer runs the next step at once.
fn the_consumer_is_free(url: &str) {
    let run = start(url, "quick");
    ends(url, &run, "completed");
}

fn an_attempt_timeout_ends_the_attempt_and_kills_the_escaped_helper(backend: Backend) {
    let scratch = Scratch::new();
    let toml = workflow("", "timeout = \"2s\"\nmax_attempts = 1", "");
    let db = setup(backend, &scratch, &toml);
    let url = db.url.as_str();
    let _w = worker(url, &scratch, "30s");
    let run = start(url, "escape");
    let pids = attempt_pids(scratch.path(), 1);
    let view = ends(url, &run, "failed");
    assert_eq!(step(&view)["error"], "timed out after 2s", "{view}");
    all_gone(&pids);
    the_consumer_is_free(url);
}

fn a_run_deadline_ends_the_attempt_and_kills_the_escaped_helper(backend: Backend) {
    let scratch = Scratch::new();
    let toml = workflow("", "", "[run]\ndeadline = \"2s\"");
    let db = setup(backend, &scratch, &toml);
    let url = db.url.as_str();
    let _w = worker(url, &scratch, "30s");
    let run = start(url, "escape");
    let pids = attempt_pids(scratch.path(), 1);
    let view = ends(url, &run, "timed_out");
    assert_eq!(step(&view)["status"], "cancelled", "{view}");
    all_gone(&pids);
    the_consumer_is_free(url);
}

fn a_cancel_ends_the_attempt_and_kills_the_escaped_helper(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &workflow("", "", ""));
    let url = db.url.as_str();
    let _w = worker(url, &scratch, "30s");
    let run = start(url, "escape");
    let pids = attempt_pids(scratch.path(), 1);
    ok(url, &["runs", "cancel", &run]);
    let view = ends(url, &run, "cancelled");
    assert_eq!(step(&view)["status"], "cancelled", "{view}");
    all_gone(&pids);
    the_consumer_is_free(url);
}

/// The worker's lease is made to expire on the database clock and another worker's
/// reaper (played by the test) reaps it: at its next heartbeat the worker stops the
/// attempt, registers again and runs attempt 2 on the same (only) consumer.
fn a_lost_lease_ends_the_attempt_and_kills_the_escaped_helper(backend: Backend) {
    let scratch = Scratch::new();
    let db = setup(backend, &scratch, &workflow(", \"1\"", "", ""));
    let url = db.url.as_str();
    let w = worker(url, &scratch, "6s");
    let run = start(url, "escape");
    let pids = attempt_pids(scratch.path(), 1);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = stepwise_store::connect(url).await.unwrap();
        let reaper = stepwise_core::WorkerId::new();
        let give_up = Instant::now() + BUDGET;
        // A heartbeat may renew the lease between the two calls: then the clock
        // moves on again.
        loop {
            store
                .advance_clock(Duration::from_secs(3600))
                .await
                .unwrap();
            if !store.reap(reaper).await.unwrap().workers.is_empty() {
                break;
            }
            assert!(Instant::now() < give_up, "the worker was never reaped");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let view = ends(url, &run, "completed");
    assert_eq!(step(&view)["output"], json!({"quick": true}), "{view}");
    let outcomes: Vec<&str> = step(&view)["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["reaped", "completed"], "{view}");
    all_gone(&pids);
    assert!(
        w.stderr_text().contains("reaped"),
        "the worker says it was reaped"
    );
}

// ---------------------------------------------------------------------------------
// The supervisor on its own: a stopped or killed worker, no cgroup, an outside
// process holding the pipes, and what a watchdog kill is called.

fn sqlite_worker(scratch: &Scratch, toml: &str, lease: &str) -> (TestDb, Background) {
    let db = setup(Backend::Sqlite, scratch, toml);
    let w = worker(&db.url, scratch, lease);
    (db, w)
}

/// A stopped worker's supervisor kills the step and its helper once the worker has
/// been silent for its window (3 s of a 30 s lease), and when the worker resumes it
/// records why the attempt ended, not a bare "exit code 137".
#[test]
fn a_stopped_workers_supervisor_kills_the_escaped_helper_and_says_why() {
    let scratch = Scratch::new();
    let toml = workflow(", \"1\"", "max_attempts = 2", "");
    let (db, w) = sqlite_worker(&scratch, &toml, "30s");
    let url = db.url.as_str();
    let run = start(url, "escape");
    let pids = attempt_pids(scratch.path(), 1);
    w.signal(Signal::SIGSTOP);
    all_gone(&pids);
    w.signal(Signal::SIGCONT);
    let view = ends(url, &run, "completed");
    let first = &step(&view)["history"][0];
    assert_eq!(first["outcome"], "failed", "{view}");
    let error = first["error"].as_str().unwrap();
    assert!(
        error.starts_with("killed by the supervisor: no heartbeat from the worker for")
            && error.contains("the worker was stopped or hung"),
        "{error}"
    );
}

#[test]
fn a_killed_workers_supervisor_kills_the_escaped_helper() {
    let scratch = Scratch::new();
    let (_db, mut w) = sqlite_worker(&scratch, &workflow("", "", ""), "30s");
    start(&_db.url, "escape");
    let pids = attempt_pids(scratch.path(), 1);
    w.signal(Signal::SIGKILL);
    w.child.wait().unwrap();
    all_gone(&pids);
}

fn options(env: &[(&str, &str)], dir: &Scratch) -> (ExecOptions, AttemptInput) {
    let options = ExecOptions {
        supervisor: bin().into(),
        ..ExecOptions::default()
    };
    let mut vars = BTreeMap::new();
    vars.insert("STEPWISE_ATTEMPT".to_string(), "1".to_string());
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let input = AttemptInput {
        context: json!({"input": {}}),
        env: vars,
        cwd: Some(dir.path().to_path_buf()),
    };
    (options, input)
}

/// Runs `argv` as an attempt, stopping it once `stop_when` holds (never if `None`);
/// fails if it takes longer than [`BUDGET`].
async fn attempt(
    argv: &[&str],
    options: &ExecOptions,
    input: &AttemptInput,
    stop_when: Option<Box<dyn Fn() -> bool + Send>>,
) -> AttemptResult {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let stop = CancellationToken::new();
    if let Some(ready) = stop_when {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !ready() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop.cancel();
        });
    }
    tokio::time::timeout(BUDGET, exec::run(&argv, input, options, &stop))
        .await
        .expect("the attempt ended within the budget")
}

/// Without a cgroup (switched off here, missing elsewhere) the supervisor finds the
/// helper through its process tree: as a subreaper it inherited it.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_cgroup_the_supervisor_still_kills_the_escaped_helper() {
    let dir = Scratch::new();
    dir.write("step.sh", STEP);
    let (options, input) = options(&[("STEPWISE_SUPERVISOR_CGROUP", "off")], &dir);
    let path = dir.path().to_path_buf();
    let ready = move || path.join("child.1").exists() && path.join("escaped.1").exists();
    let r = attempt(&["sh", "step.sh"], &options, &input, Some(Box::new(ready))).await;
    assert_eq!(
        r.outcome.unwrap_err().message,
        "stopped by the worker",
        "{:?}",
        r.log
    );
    assert!(r.log.unwrap().contains("attempt 1 started"));
    all_gone(&attempt_pids(dir.path(), 1));
}

/// A step that exits at once, leaving its helper running with the step's stdout,
/// succeeds at once; the helper does not outlive the attempt, nor does the cgroup
/// made for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_that_exits_leaves_no_helper_and_no_cgroup_behind() {
    let dir = Scratch::new();
    let script = r#"setsid sh -c 'cat /proc/self/cgroup > cgroup; echo $$ > escaped.tmp; mv escaped.tmp escaped; exec sleep 300' &
        while [ ! -f escaped ]; do sleep 0.05; done; echo '{"done": true}'"#;
    let (options, input) = options(&[], &dir);
    let r = attempt(&["sh", "-c", script], &options, &input, None).await;
    assert_eq!(r.outcome.unwrap(), json!({"done": true}), "{:?}", r.log);
    all_gone(&[read_pid(dir.path(), "escaped").unwrap()]);
    // `0::/PATH`: a cgroup of the attempt's own where the machine allows one.
    let cgroups = std::fs::read_to_string(dir.path().join("cgroup")).unwrap();
    if let Some(own) = cgroups
        .lines()
        .filter_map(|l| l.strip_prefix("0::"))
        .find(|p| p.contains("/stepwise-"))
    {
        let gone = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .all(|root| !Path::new(&format!("{root}{own}")).exists());
        assert!(gone, "the attempt's cgroup {own} was left behind");
    }
}

/// A process outside the step holds its stdout (passed over a Unix socket, where no
/// kill by the supervisor can reach it): the outcome does not wait for end of file,
/// and what the step wrote is kept.
#[tokio::test(flavor = "multi_thread")]
async fn the_outcome_does_not_wait_for_a_pipe_held_outside_the_step() {
    let dir = Scratch::new();
    let keeper = r#"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind("keeper.sock.tmp")
s.listen(1)
import os; os.rename("keeper.sock.tmp", "keeper.sock")
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 16, 4)
open("held", "w").write(str(fds))
time.sleep(300)
"#;
    let mut keeper = std::process::Command::new("python3")
        .args(["-c", keeper])
        .current_dir(dir.path())
        .spawn()
        .expect("python3 runs the keeper");
    let sock = dir.path().join("keeper.sock");
    eventually("the keeper to listen", BUDGET, || {
        sock.exists().then_some(())
    });
    let step = r#"
import socket, sys, os, time
print('{"sent": true}', flush=True)
s = socket.socket(socket.AF_UNIX)
s.connect("keeper.sock")
socket.send_fds(s, [b"x"], [1, 2])
while not os.path.exists("held"):
    time.sleep(0.05)
"#;
    let (options, input) = options(&[], &dir);
    let started = Instant::now();
    let r = attempt(&["python3", "-c", step], &options, &input, None).await;
    let _ = keeper.kill();
    let _ = keeper.wait();
    assert_eq!(r.outcome.unwrap(), json!({"sent": true}), "{:?}", r.log);
    assert!(started.elapsed() < BUDGET);
}

/// A worker whose lease lapses stops beating its supervisor, which kills the step:
/// the error names the watchdog, not an exit code.
#[tokio::test(flavor = "multi_thread")]
async fn a_watchdog_kill_names_its_reason() {
    let dir = Scratch::new();
    let (mut options, input) = options(&[], &dir);
    // Valid for 1.5 s; the supervisor waits 200 ms without a beat.
    options.validity =
        std::sync::Arc::new(LeaseValidity::new(Duration::from_secs(2), Instant::now()));
    let r = attempt(&["sh", "-c", "sleep 300"], &options, &input, None).await;
    let error = r.outcome.unwrap_err();
    assert!(
        error
            .message
            .starts_with("killed by the supervisor: no heartbeat from the worker for"),
        "{}",
        error.message
    );
    assert!(error.retryable);
    assert!(
        r.log.unwrap().contains("no heartbeat from the worker"),
        "the supervisor says so in the log"
    );
}

/// A child killed by a signal the engine did not send is reported by that signal,
/// not as exit code 128 + N.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_killed_by_a_signal_names_the_signal() {
    let dir = Scratch::new();
    let (options, input) = options(&[], &dir);
    let r = attempt(
        &["sh", "-c", "echo dying; kill -9 $$"],
        &options,
        &input,
        None,
    )
    .await;
    let error = r.outcome.unwrap_err();
    assert_eq!(error.message, "killed by signal 9 (SIGKILL): dying");
    assert!(error.retryable);
}
