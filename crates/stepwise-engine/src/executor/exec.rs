//! `exec` steps: a child process under the supervisor (see [`crate::supervisor`]).
//!
//! The context goes to the child's stdin; stdout that parses as JSON is the output
//! (other text is kept as a JSON string); stdout and stderr, interleaved as they
//! arrive, are the attempt's log, captured with a bounded buffer while streaming.

use super::{AttemptError, AttemptInput, AttemptResult, ExecOptions};
use crate::capture::Capture;
use crate::supervisor::{EXIT_CANNOT_START, SUPERVISE_COMMAND};
use serde_json::Value;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Exit code with which a step says "do not retry me".
pub const EXIT_DO_NOT_RETRY: i32 = 64;

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
    let mut command = Command::new(&options.supervisor);
    command
        .arg(SUPERVISE_COMMAND)
        .arg("--silence-ms")
        .arg(options.validity.supervisor_window().as_millis().to_string())
        .arg("--")
        .args(argv)
        .envs(&input.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = &input.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return failed(format!(
                "cannot start the supervisor {}: {e}",
                options.supervisor.display()
            ))
        }
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return failed("the supervisor's pipes are missing".into());
    };

    let log = Arc::new(Mutex::new(Capture::new(options.log_limit)));
    let output = Arc::new(Mutex::new(Capture::new(options.output_limit)));
    let out_task = tokio::spawn(pump(stdout, log.clone(), Some(output.clone())));
    let err_task = tokio::spawn(pump(stderr, log.clone(), None));

    let mut line = serde_json::to_vec(&input.context).unwrap_or_default();
    line.push(b'\n');
    let mut stopped = false;
    let status = if stdin.write_all(&line).await.is_err() {
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
                        let _ = stdin.write_all(b"h").await;
                    }
                }
                _ = stop.cancelled(), if !stopped => {
                    stopped = true;
                    let _ = stdin.write_all(b"k").await;
                }
            }
        }
    };
    drop(stdin);
    let _ = out_task.await;
    let _ = err_task.await;
    let log = lock(&log).text();
    let status = match status {
        Ok(status) => status,
        Err(e) => return failed(format!("waiting for the child failed: {e}")),
    };
    let code = status.code().unwrap_or(-1);
    let outcome = if stopped {
        Err(AttemptError::retryable("stopped by the worker"))
    } else if code == 0 {
        let output = lock(&output);
        Ok(parse_output(&output))
    } else {
        let tail = lock_tail(&log);
        let message = match code {
            EXIT_CANNOT_START => format!("command could not be started: {tail}"),
            _ => format!("exit code {code}: {tail}"),
        };
        Err(AttemptError {
            message,
            retryable: code != EXIT_DO_NOT_RETRY,
        })
    };
    AttemptResult {
        outcome,
        log: Some(log),
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
