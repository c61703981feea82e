//! The supervisor that stands between a worker and an `exec` child, so that a
//! child never outlives its lease.
//!
//! The worker starts `<program> __supervise --silence-ms N -- ARGV...` with its end
//! of a socket pair as stdin and pipes as stdout and stderr. The supervisor reads one
//! line (the step context) from its stdin and hands it to the child's stdin, starts
//! the child in a process group of its own with the supervisor's stdout and stderr
//! (the worker's pipes), then keeps reading its stdin: every byte is a heartbeat
//! from the worker, `k` asks it to kill the child. It kills everything the step
//! started (see [`crate::containment`]: also descendants that left the process group
//! or session) when
//! - its stdin reaches end of file: the worker died (`kill -9` included), since the
//!   kernel closes the socket with the process;
//! - no heartbeat came for N ms: the worker is stopped (`SIGSTOP`), hung, or can no
//!   longer vouch for its lease (see [`crate::lease`]), and another worker may soon
//!   run the step;
//! - the worker asks (attempt timeout, cancellation, shutdown);
//! - the child exits: what it left behind must not outlive the attempt.
//!
//! Before it exits it writes its [`Verdict`] on the socket, so the worker can say
//! why a step was killed, and it exits with the child's exit code (128 + signal
//! when the child was killed). `PR_SET_PDEATHSIG` alone would not do: it fires when
//! the spawning *thread* exits, and it cannot see a stopped parent.

use crate::containment::{self, Cgroup};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hidden subcommand a worker runs its supervisor with.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// The environment variable that, set to `off`, keeps the supervisor from making a
/// cgroup per attempt (for hosts whose service manager owns the worker's cgroup
/// tree); the supervisor then relies on its process tree alone.
pub const CGROUP_SWITCH: &str = "STEPWISE_SUPERVISOR_CGROUP";

/// Exit code when the child could not be started at all.
pub const EXIT_CANNOT_START: i32 = 127;

/// How an attempt ended, as the supervisor tells the worker in one line on its stdin
/// when that is a socket, just before it exits. The exit code alone cannot say
/// whether a 137 was the step's own or the watchdog's kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The child exited with this code.
    Exited(i32),
    /// The child died of this signal, which the supervisor did not send.
    Signalled(i32),
    /// The supervisor killed the child because the worker asked or went away.
    KilledOnRequest,
    /// The supervisor killed the child after this long without a heartbeat.
    KilledSilent(Duration),
}

impl Verdict {
    /// The line sent to the worker.
    pub fn line(&self) -> String {
        match self {
            Verdict::Exited(code) => format!("exited {code}\n"),
            Verdict::Signalled(signal) => format!("signalled {signal}\n"),
            Verdict::KilledOnRequest => "killed asked\n".into(),
            Verdict::KilledSilent(d) => format!("killed silent {}\n", d.as_millis()),
        }
    }

    pub fn parse(line: &str) -> Option<Verdict> {
        let mut words = line.split_whitespace();
        let verdict = match (words.next()?, words.next()?) {
            ("exited", code) => Verdict::Exited(code.parse().ok()?),
            ("signalled", signal) => Verdict::Signalled(signal.parse().ok()?),
            ("killed", "asked") => Verdict::KilledOnRequest,
            ("killed", "silent") => {
                Verdict::KilledSilent(Duration::from_millis(words.next()?.parse().ok()?))
            }
            _ => return None,
        };
        Some(verdict)
    }

    fn of(status: ExitStatus) -> Verdict {
        match (status.code(), status.signal()) {
            (Some(code), _) => Verdict::Exited(code),
            (None, Some(signal)) => Verdict::Signalled(signal),
            (None, None) => Verdict::Exited(1),
        }
    }

    /// The supervisor's exit code: the child's, or 128 + the signal that killed it.
    fn exit_code(&self) -> i32 {
        match self {
            Verdict::Exited(code) => *code,
            Verdict::Signalled(signal) => 128 + signal,
            Verdict::KilledOnRequest | Verdict::KilledSilent(_) => 128 + Signal::SIGKILL as i32,
        }
    }
}

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
    // Fails (and is ignored) when the worker gave a pipe rather than a socket.
    let mut report = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(UnixStream::from);
    let mut tell = |verdict: Verdict| {
        if let Some(report) = report.as_mut() {
            let _ = report.write_all(verdict.line().as_bytes());
        }
        verdict.exit_code()
    };
    let mut stdin = BufReader::new(std::io::stdin());
    let mut context = String::new();
    if stdin.read_line(&mut context).is_err() {
        return 2;
    }
    containment::become_subreaper();
    let mut cgroup = if std::env::var(CGROUP_SWITCH).is_ok_and(|v| v == "off") {
        None
    } else {
        Cgroup::enter()
    };
    let spawned = Command::new(&argv[0])
        .args(&argv[1..])
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn();
    if let Some(cgroup) = cgroup.as_mut() {
        cgroup.leave();
    }
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if let Some(cgroup) = &cgroup {
                cgroup.remove();
            }
            eprintln!("stepwise: cannot start {:?}: {e}", argv[0]);
            return EXIT_CANNOT_START;
        }
    };
    let child_pid = Pid::from_raw(child.id() as i32);
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
            // Whatever the child left behind (in its group or escaped from it) must
            // not outlive the attempt.
            Ok(Some(status)) => {
                containment::kill_everything(child_pid, cgroup.as_ref());
                return tell(Verdict::of(status));
            }
            Ok(None) => {}
            Err(_) => {
                containment::kill_everything(child_pid, cgroup.as_ref());
                return tell(Verdict::Exited(1));
            }
        }
        // A beat read after `elapsed` was taken is newer than it: no silence, not
        // an underflow (which would read as an age of silence and kill the step).
        let now = started.elapsed().as_millis() as u64;
        let silent_for =
            Duration::from_millis(now.saturating_sub(last_beat.load(Ordering::SeqCst)));
        let verdict = if stop.load(Ordering::SeqCst) {
            Verdict::KilledOnRequest
        } else if silent_for > silence {
            eprintln!(
                "stepwise supervisor: no heartbeat from the worker for {} ms: killing the step",
                silent_for.as_millis()
            );
            Verdict::KilledSilent(silent_for)
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        containment::kill_everything(child_pid, cgroup.as_ref());
        let _ = child.wait();
        return tell(verdict);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_survive_the_line_they_are_sent_as() {
        for verdict in [
            Verdict::Exited(0),
            Verdict::Exited(64),
            Verdict::Signalled(9),
            Verdict::KilledOnRequest,
            Verdict::KilledSilent(Duration::from_millis(3014)),
        ] {
            assert_eq!(Verdict::parse(&verdict.line()), Some(verdict));
        }
        assert_eq!(Verdict::parse("killed slowly\n"), None);
        assert_eq!(Verdict::parse(""), None);
    }
}
