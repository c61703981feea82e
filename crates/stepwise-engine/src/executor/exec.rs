//! `exec` steps: a child process under the supervisor (see [`crate::supervisor`]).
//!
//! The context goes to the child's stdin; stdout that parses as JSON is the output
//! (other text is kept as a JSON string); stdout and stderr, interleaved as they
//! arrive, are the attempt's log, captured with a bounded buffer while streaming.

use super::backpressure::{self, EXIT_RETRY_LATER};
use super::{AttemptError, AttemptInput, AttemptResult, ExecOptions};
use crate::capture::Capture;
use crate::lease::LeaseValidity;
use crate::supervisor::{Verdict, EXIT_CANNOT_START, SUPERVISE_COMMAND};
use serde_json::Value;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// Exit code with which a step says "do not retry me".
pub const EXIT_DO_NOT_RETRY: i32 = 64;

/// How long the output still in the pipes is read once the supervisor has exited.
/// Every process of the step is dead by then, so this is only a bound against one
/// that somehow escaped and holds a pipe open: the attempt is over either way.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How long a supervisor asked to stop may take before the worker kills it itself.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub async fn run(
    argv: &[String],
    input: &AttemptInput,
    options: &ExecOptions,
    stop: &CancellationToken,
) -> AttemptResult {
    let failed = |message: String| AttemptResult {
        outcome: Err(AttemptError::retryable(message)),
        log: None,
    };
    if argv.is_empty() {
        return AttemptResult {
            outcome: Err(AttemptError::permanent("exec has no command")),
            log: None,
        };
    }
    let (mut child, ours) = match spawn_supervisor(argv, input, options) {
        Ok(spawned) => spawned,
        Err(e) => {
            return failed(format!(
                "cannot start the supervisor {}: {e}",
                options.supervisor.display()
            ))
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.start_kill();
        return failed("the supervisor's pipes are missing".into());
    };
    let (verdict_half, mut to_supervisor) = ours.into_split();

    let log = Arc::new(Mutex::new(Capture::new(options.log_limit)));
    let output = Arc::new(Mutex::new(Capture::new(options.output_limit)));
    let out_task = tokio::spawn(pump(stdout, log.clone(), Some(output.clone())));
    let err_task = tokio::spawn(pump(stderr, log.clone(), None));

    let mut line = serde_json::to_vec(&input.context).unwrap_or_default();
    line.push(b'\n');
    let mut stopped_at = None::<Instant>;
    let status = if to_supervisor.write_all(&line).await.is_err() {
        child.wait().await
    } else {
        let mut beat = tokio::time::interval(options.validity.beat_interval());
        loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = beat.tick() => {
                    // A worker that can no longer vouch for its lease falls silent,
                    // and the supervisor kills the child before the lease ends.
                    if options.validity.is_valid() {
                        let _ = to_supervisor.write_all(b"h").await;
                    }
                    if stopped_at.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                        tracing::warn!("the supervisor did not stop the step in time: killing it");
                        let _ = child.start_kill();
                        stopped_at = Some(Instant::now());
                    }
                }
                _ = stop.cancelled(), if stopped_at.is_none() => {
                    stopped_at = Some(Instant::now());
                    let _ = to_supervisor.write_all(b"k").await;
                }
            }
        }
    };
    drop(to_supervisor);
    let verdict = read_verdict(verdict_half).await;
    // The attempt is over: whatever is left in the pipes now is read, but nothing
    // that escaped may hold the outcome back by keeping them open.
    let (out_abort, err_abort) = (out_task.abort_handle(), err_task.abort_handle());
    if tokio::time::timeout(DRAIN_GRACE, async {
        let _ = out_task.await;
        let _ = err_task.await;
    })
    .await
    .is_err()
    {
        out_abort.abort();
        err_abort.abort();
    }
    let log = lock(&log).text();
    let status = match status {
        Ok(status) => status,
        Err(e) => return failed(format!("waiting for the supervisor failed: {e}")),
    };
    if stopped_at.is_some() {
        // The worker names the reason (timeout, cancellation, lost lease).
        return AttemptResult {
            outcome: Err(AttemptError::retryable("stopped by the worker")),
            log: Some(log),
        };
    }
    let verdict = verdict.unwrap_or_else(|| match status.code() {
        Some(code) => Verdict::Exited(code),
        None => Verdict::Signalled(status.signal().unwrap_or(9)),
    });
    let outcome = judge(verdict, &log, &lock(&output), &options.validity);
    AttemptResult {
        outcome,
        log: Some(log),
    }
}

/// Starts the supervisor for `argv`; returns it and the worker's end of the socket
/// that is its stdin (heartbeats go one way, its verdict the other).
fn spawn_supervisor(
    argv: &[String],
    input: &AttemptInput,
    options: &ExecOptions,
) -> std::io::Result<(Child, tokio::net::UnixStream)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    // The supervisor's end stays blocking: it reads it with std.
    ours.set_nonblocking(true)?;
    let ours = tokio::net::UnixStream::from_std(ours)?;
    let mut command = Command::new(&options.supervisor);
    command
        .arg(SUPERVISE_COMMAND)
        .arg("--silence-ms")
        .arg(options.validity.supervisor_window().as_millis().to_string())
        .arg("--")
        .args(argv)
        .envs(&input.env)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropped mid-attempt, the socket closes and the supervisor kills the step
        // and everything it started; a SIGKILL would leave them behind.
        .kill_on_drop(false);
    if let Some(cwd) = &input.cwd {
        command.current_dir(cwd);
    }
    let child = command.spawn()?;
    // `command` holds the supervisor's end of the socket until it is dropped here;
    // kept, the supervisor's death would never reach us as end of file.
    Ok((child, ours))
}

/// The attempt's outcome from how its child ended; a kill says why, never just a
/// code.
fn judge(
    verdict: Verdict,
    log: &str,
    output: &Capture,
    validity: &LeaseValidity,
) -> Result<Value, AttemptError> {
    let tail = lock_tail(log);
    let with_tail = |message: String| match tail.is_empty() {
        true => message,
        false => format!("{message}: {tail}"),
    };
    match verdict {
        Verdict::Exited(0) => Ok(parse_output(output)),
        Verdict::Exited(EXIT_CANNOT_START) => Err(AttemptError::retryable(with_tail(
            "command could not be started".into(),
        ))),
        Verdict::Exited(EXIT_RETRY_LATER) => Err(retry_later(output, with_tail)),
        Verdict::Exited(code) => Err(AttemptError {
            message: with_tail(format!("exit code {code}")),
            retryable: code != EXIT_DO_NOT_RETRY,
            retry_after: None,
        }),
        Verdict::Signalled(signal) => Err(AttemptError::retryable(with_tail(format!(
            "killed by signal {}",
            signal_name(signal)
        )))),
        Verdict::KilledSilent(silent) => {
            let why = match validity.is_valid() {
                true => "the worker was stopped or hung",
                false => "the worker could not renew its lease",
            };
            Err(AttemptError::retryable(format!(
                "killed by the supervisor: no heartbeat from the worker for {} ms ({why})",
                silent.as_millis()
            )))
        }
        Verdict::KilledOnRequest => Err(AttemptError::retryable("stopped by the worker")),
    }
}

/// Exit 75: back-pressure when stdout says how long to wait; otherwise an ordinary
/// failure that says why the delay was not taken.
fn retry_later(output: &Capture, with_tail: impl Fn(String) -> String) -> AttemptError {
    let stdout = match output.truncated() {
        true => String::new(),
        false => output.text(),
    };
    match backpressure::exec_retry_after(&stdout) {
        Ok(delay) => AttemptError::retry_after(
            format!("exit {EXIT_RETRY_LATER}: {}", backpressure::asked(delay)),
            delay,
        ),
        Err(why) => AttemptError::retryable(with_tail(format!(
            "exit code {EXIT_RETRY_LATER} ({why}: retried after the backoff)"
        ))),
    }
}

/// The supervisor's verdict line, written just before it exited; `None` when it
/// was killed before it could say.
async fn read_verdict(from: tokio::net::unix::OwnedReadHalf) -> Option<Verdict> {
    let (mut from, mut line) = (BufReader::new(from), String::new());
    match tokio::time::timeout(Duration::from_secs(1), from.read_line(&mut line)).await {
        Ok(Ok(_)) => Verdict::parse(&line),
        _ => None,
    }
}

fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => format!("{signal} ({})", s.as_str()),
        Err(_) => signal.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_tail(log: &str) -> String {
    let trimmed = log.trim_end();
    let start = trimmed.char_indices().rev().nth(499).map_or(0, |(i, _)| i);
    trimmed[start..].to_string()
}

/// JSON when stdout is JSON, otherwise the text as a JSON string.
fn parse_output(stdout: &Capture) -> Value {
    let text = stdout.text();
    if !stdout.truncated() {
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            return value;
        }
    }
    Value::String(text.trim_end_matches('\n').to_string())
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    log: Arc<Mutex<Capture>>,
    output: Option<Arc<Mutex<Capture>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                lock(&log).push(&buf[..n]);
                if let Some(output) = &output {
                    lock(output).push(&buf[..n]);
                }
            }
        }
    }
}
