//! The supervisor that stands between a worker and an `exec` child, so that a
//! child never outlives its lease.
//!
//! The worker starts `<program> __supervise --silence-ms N -- ARGV...` with pipes. The
//! supervisor reads one line (the step context) from its stdin and hands it to the
//! child's stdin, starts the child in a process group of its own with the
//! supervisor's stdout and stderr (the worker's pipes), then keeps reading its stdin:
//! every byte is a heartbeat from the worker, `k` asks it to kill the child. It kills
//! the whole process group when
//! - its stdin reaches end of file: the worker died (`kill -9` included), since the
//!   kernel closes the pipe with the process;
//! - no heartbeat came for N ms: the worker is stopped (`SIGSTOP`), hung, or can no
//!   longer vouch for its lease (see [`crate::lease`]), and another worker may soon
//!   run the step;
//! - the worker asks (attempt timeout, cancellation, shutdown);
//! - the child exits: grandchildren left in the group must not outlive the attempt.
//!
//! It exits with the child's exit code (128 + signal when the child was killed).
//! `PR_SET_PDEATHSIG` alone would not do: it fires when the spawning *thread* exits,
//! and it cannot see a stopped parent.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hidden subcommand a worker runs its supervisor with.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// Exit code when the child could not be started at all.
pub const EXIT_CANNOT_START: i32 = 127;

/// Runs the supervisor with the arguments that follow [`SUPERVISE_COMMAND`]
/// (`--silence-ms N -- ARGV...`); returns the process exit code.
pub fn supervise(args: &[String]) -> i32 {
    let (silence, argv) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("stepwise supervisor: {message}");
            return 2;
        }
    };
    let mut stdin = BufReader::new(std::io::stdin());
    let mut context = String::new();
    if stdin.read_line(&mut context).is_err() {
        return 2;
    }
    let mut child = match Command::new(&argv[0])
        .args(&argv[1..])
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("stepwise: cannot start {:?}: {e}", argv[0]);
            return EXIT_CANNOT_START;
        }
    };
    let group = Pid::from_raw(child.id() as i32);
    if let Some(mut child_stdin) = child.stdin.take() {
        // A child that never reads its stdin must not block the supervisor.
        std::thread::spawn(move || {
            let _ = child_stdin.write_all(context.as_bytes());
        });
    }

    let started = Instant::now();
    let last_beat = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (last_beat, stop) = (last_beat.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        last_beat.store(started.elapsed().as_millis() as u64, Ordering::SeqCst);
                        if buf[..n].contains(&b'k') {
                            break;
                        }
                    }
                }
            }
            stop.store(true, Ordering::SeqCst);
        });
    }

    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let _ = killpg(group, Signal::SIGKILL);
                return status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(9));
            }
            Ok(None) => {}
            Err(_) => {
                let _ = killpg(group, Signal::SIGKILL);
                return 1;
            }
        }
        let silent_for = started.elapsed().as_millis() as u64 - last_beat.load(Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) || silent_for > silence.as_millis() as u64 {
            let _ = killpg(group, Signal::SIGKILL);
            let status = child.wait();
            return status
                .ok()
                .and_then(|s| s.code())
                .unwrap_or(128 + Signal::SIGKILL as i32);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parse_args(args: &[String]) -> Result<(Duration, Vec<String>), String> {
    let mut silence = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--silence-ms" => {
                let v = args.get(i + 1).ok_or("--silence-ms needs a value")?;
                silence = Some(Duration::from_millis(
                    v.parse().map_err(|_| format!("bad --silence-ms {v:?}"))?,
                ));
                i += 2;
            }
            "--" => {
                let argv = args[i + 1..].to_vec();
                if argv.is_empty() {
                    return Err("no command after --".into());
                }
                return Ok((silence.ok_or("--silence-ms is required")?, argv));
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Err("no command after --".into())
}
