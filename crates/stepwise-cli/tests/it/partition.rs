//! A worker cut off from PostgreSQL at the worst moment, inside a writing
//! transaction, must not stall the rest of the cluster (PostgreSQL only: SQLite has
//! one machine and no network to lose).
//!
//! Worker A is cut off while one of its sessions is `idle in transaction` with a
//! transaction id (it holds row locks): once by freezing the TCP proxy it reaches
//! the database through (a partition: packets stop, nothing is refused), once by
//! `SIGSTOP` (a frozen host). Worker B, connected directly, must reap A's steps
//! within about two leases and finish every run; nothing is accepted from a stale
//! lease, no step has two writers, and A registers again once it is back.
//!
//! The cut is placed without a race: the link is frozen first, then the database is
//! asked whether A is inside a transaction (twice, the answer unchanged, since a
//! frozen client can send nothing more); if not, the link is restored and the next
//! moment tried. Afterwards the frozen transaction must have been aborted (the
//! server ended it), proving the cut landed inside it.

use crate::support::{eventually, ok, Backend, Background, Scratch, TestDb};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(90);
const LEASE: Duration = Duration::from_secs(3);
/// From the cut until B has finished A's steps: A's lease runs out (at most one
/// lease), B's reaper comes by (every half lease) and the step runs again. "About
/// two leases", with room for a loaded machine.
const REAP_BUDGET: Duration = Duration::from_secs(20);

/// Each attempt: a `start` and an `end` ledger line with the time in ns, then its
/// attempt number as output (so an accepted stale write would show).
const STEP: &str = r#"
echo "start $STEPWISE_RUN_ID $STEPWISE_ATTEMPT $(date +%s%N)" >> ledger
sleep 0.2
echo "end $STEPWISE_RUN_ID $STEPWISE_ATTEMPT $(date +%s%N)" >> ledger
echo "{\"attempt\": $STEPWISE_ATTEMPT}"
"#;

const WORKFLOW: &str = r#"
name = "cut"
[defaults]
max_attempts = 10
[[steps]]
name = "only"
exec = ["sh", "step.sh"]
"#;

#[test]
fn a_partitioned_worker_mid_transaction_stalls_no_other_worker() {
    cut_off_mid_transaction(Cut::Partition);
}

#[test]
fn a_stopped_worker_mid_transaction_stalls_no_other_worker() {
    cut_off_mid_transaction(Cut::Stop);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    /// A's TCP proxy stops forwarding.
    Partition,
    /// A gets `SIGSTOP`.
    Stop,
}

fn cut_off_mid_transaction(how: Cut) {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Postgres, &scratch);
    let url = db.url.as_str();
    ok(url, &["migrate"]);
    scratch.write("step.sh", STEP);
    let file = scratch.write("cut.toml", WORKFLOW);
    ok(url, &["apply", file.to_str().unwrap()]);
    let proxy = Proxy::start(upstream(url));
    let a_url = match how {
        Cut::Partition => proxy.url_for(url),
        Cut::Stop => url.to_string(),
    };
    let lease = format!("{}s", LEASE.as_secs());
    let a = Background::spawn(
        &a_url,
        &["worker", "--pool", "*=4", "--lease", &lease],
        &scratch,
        "a",
    );
    let mut b = Background::spawn(
        url,
        &["worker", "--pool", "*=2", "--lease", &lease],
        &scratch,
        "b",
    );
    eventually("A registers", PATIENCE, || worker_of(url, a.pid()));
    eventually("B registers", PATIENCE, || worker_of(url, b.pid()));

    let mut queued = 0;
    let mut tries = 0;
    let searching = Instant::now();
    let (cut, a_id, held_xid, held_pid, in_flight) = loop {
        tries += 1;
        assert!(
            searching.elapsed() < PATIENCE * 3,
            "A was never caught inside a transaction ({tries} tries)"
        );
        // Enough work that A is busy, little enough that B finishes it quickly.
        if count(url, "SELECT count(*) FROM run WHERE status <> 'completed'") < 12 {
            queued += queue(url, &scratch, queued, 16);
        }
        // A runs free most of the time, so that its heartbeats (every third of a
        // lease) get through between tries and it keeps its lease.
        thread::sleep(Duration::from_millis(300 + 37 * (tries % 7)));
        let Some(a_id) = worker_of(url, a.pid()) else {
            continue;
        };
        match how {
            Cut::Partition => proxy.freeze(),
            Cut::Stop => a.signal(Signal::SIGSTOP),
        }
        if let Some(found) = inside_transaction(url, a.pid(), &a_id) {
            break (Instant::now(), a_id, found.0, found.1, found.2);
        }
        match how {
            Cut::Partition => proxy.heal(),
            Cut::Stop => a.signal(Signal::SIGCONT),
        }
    };
    eprintln!(
        "cut after {tries} tries: A's backend {held_pid} idle in transaction {held_xid}, \
         {} of A's steps running",
        in_flight.len()
    );

    // B reaps A's steps and runs them again, within about two leases.
    let in_list = in_flight
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    eventually("B to finish A's steps", REAP_BUDGET, || {
        (count(
            url,
            &format!("SELECT count(*) FROM step WHERE id IN ({in_list}) AND status <> 'completed'"),
        ) == 0)
            .then_some(())
    });
    let reaped_in = cut.elapsed();
    eventually("every run to complete", PATIENCE, || {
        (count(url, "SELECT count(*) FROM run WHERE status <> 'completed'") == 0).then_some(())
    });
    let done_in = cut.elapsed();
    eprintln!(
        "{how:?}: A's {} steps done {:.1}s after the cut, all {queued} runs {:.1}s after it",
        in_flight.len(),
        reaped_in.as_secs_f64(),
        done_in.as_secs_f64()
    );
    // The server ended the frozen transaction: its locks were released, its
    // writes never committed.
    assert_eq!(
        psql(
            url,
            &format!(
                "SELECT pg_xact_status(((pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
             >> 32 << 32) + {held_xid})::text::xid8)"
            )
        ),
        "aborted"
    );
    assert_eq!(
        count(
            url,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {held_pid}")
        ),
        0,
        "A's backend in a transaction is gone"
    );

    // Back on the network, A finds it was reaped and registers again.
    match how {
        Cut::Partition => proxy.heal(),
        Cut::Stop => a.signal(Signal::SIGCONT),
    }
    eventually("A to register again", PATIENCE, || {
        worker_of(url, a.pid()).filter(|id| *id != a_id)
    });

    // Nothing from a stale lease was accepted: each step's output is from its
    // latest attempt, and each step completed once.
    assert_eq!(
        count(
            url,
            "SELECT count(*) FROM step WHERE (output->>'attempt')::int <> attempt"
        ),
        0,
        "stale writes accepted"
    );
    assert_eq!(
        count(
            url,
            // A clean success leaves no attempt row (schema v5): its outbox event
            // is the one record every completion writes.
            "SELECT count(*) FROM (SELECT run_id, step FROM event \
             WHERE kind = 'step.completed' GROUP BY run_id, step HAVING count(*) > 1) twice"
        ),
        0,
        "steps completed twice"
    );
    assert!(
        count(url, "SELECT count(*) FROM attempt WHERE outcome = 'reaped'")
            >= in_flight.len() as i64,
        "A's running steps were reaped"
    );
    assert_eq!(
        two_writers(scratch.path()),
        0,
        "steps with two writers at once"
    );

    b.signal(Signal::SIGTERM);
    assert!(b.wait_exit(PATIENCE).is_some_and(|s| s.success()));
    drop(a);
}

/// A's worker id while it is alive (`stepwise workers` names it `host:pid`).
fn worker_of(url: &str, pid: i32) -> Option<String> {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&ok(url, &["workers", "--json"])).unwrap();
    all.iter()
        .find(|w| {
            w["status"] == "alive"
                && w["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(&format!(":{pid}")))
        })
        .map(|w| w["id"].as_str().unwrap().to_string())
}

/// With A's link frozen: A's session idle in a writing transaction that holds some
/// of A's running steps (backend pid, xid, and A's running steps), if the database
/// says so twice, 150 ms apart, the same way (a frozen client can change nothing; the pause lets anything sent
/// before the cut arrive).
fn inside_transaction(url: &str, pid: i32, worker: &str) -> Option<(String, String, Vec<String>)> {
    let sql = format!(
        "SELECT pid, backend_xid, state_change FROM pg_stat_activity \
         WHERE application_name LIKE 'stepwise worker %:{pid}' \
           AND state = 'idle in transaction' AND backend_xid IS NOT NULL \
         ORDER BY pid LIMIT 1"
    );
    thread::sleep(Duration::from_millis(50));
    let first = psql(url, &sql);
    if first.is_empty() {
        return None;
    }
    thread::sleep(Duration::from_millis(150));
    if psql(url, &sql) != first {
        return None;
    }
    let running: Vec<String> = psql(
        url,
        &format!("SELECT id FROM step WHERE worker_id = '{worker}' AND status = 'running'"),
    )
    .lines()
    .map(String::from)
    .collect();
    if running.is_empty() {
        return None;
    }
    // The worst moment: the open transaction holds some of A's running steps (it is
    // recording their outcomes), which B must reap. Asked without waiting; until
    // A's lease runs out nobody else locks A's steps.
    let ids = running
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let free = count(
        url,
        &format!("SELECT count(*) FROM (SELECT id FROM step WHERE id IN ({ids}) FOR UPDATE SKIP LOCKED) free"),
    );
    if free == running.len() as i64 {
        return None;
    }
    let mut fields = first.split('|');
    let backend = fields.next()?.to_string();
    let xid = fields.next()?.to_string();
    Some((xid, backend, running))
}

/// Queues `n` more runs; returns `n`.
fn queue(url: &str, scratch: &Scratch, from: usize, n: usize) -> usize {
    let lines: String = (from..from + n)
        .map(|i| format!("{{\"n\": {i}}}\n"))
        .collect();
    let file = scratch.write("inputs.jsonl", &lines);
    ok(url, &["run", "cut", "--inputs", file.to_str().unwrap()]);
    n
}

/// Steps two of whose attempts both ran to their end at overlapping times.
fn two_writers(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("ledger")).unwrap_or_default();
    let mut spans = BTreeMap::<(String, String), (Option<u128>, Option<u128>)>::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let span = spans.entry((w[1].into(), w[2].into())).or_default();
        let t: u128 = w[3].parse().unwrap();
        match w[0] {
            "start" => span.0 = Some(t),
            _ => span.1 = Some(t),
        }
    }
    let mut by_run = BTreeMap::<String, Vec<(u128, u128)>>::new();
    for ((run, _), span) in spans {
        if let (Some(start), Some(end)) = span {
            by_run.entry(run).or_default().push((start, end));
        }
    }
    by_run
        .into_values()
        .filter(|spans| {
            let mut spans = spans.clone();
            spans.sort();
            spans.windows(2).any(|w| w[1].0 < w[0].1)
        })
        .count()
}

fn count(url: &str, sql: &str) -> i64 {
    psql(url, sql).parse().unwrap()
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-qAtc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn upstream(url: &str) -> SocketAddr {
    let after_at = url.split_once('@').map_or(url, |(_, r)| r);
    let host_port = after_at.split('/').next().unwrap();
    host_port
        .to_socket_addrs()
        .unwrap()
        .next()
        .expect("the database's address")
}

/// A loopback TCP proxy whose forwarding can be frozen: bytes are neither delivered
/// nor refused, connections stay open, as in a network partition.
struct Proxy {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    /// Writes under way; a freeze waits for them, so that after it nothing more
    /// reaches either side.
    writing: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let writing = Arc::new(AtomicUsize::new(0));
        let (f, w) = (frozen.clone(), writing.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (f, w) = (f.clone(), w.clone());
                    thread::spawn(move || pump(from, to, &f, &w));
                }
            }
        });
        Proxy {
            addr,
            frozen,
            writing,
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').unwrap();
        let (_, path) = rest.split_once('/').unwrap();
        format!("{scheme_user}@{}/{path}", self.addr)
    }

    fn freeze(&self) {
        self.frozen.store(true, SeqCst);
        while self.writing.load(SeqCst) > 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn heal(&self) {
        self.frozen.store(false, SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, writing: &AtomicUsize) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        // Announce the write before looking at the flag: a freeze that sets the flag
        // then sees no write under way knows none will start.
        loop {
            writing.fetch_add(1, SeqCst);
            if !frozen.load(SeqCst) {
                break;
            }
            writing.fetch_sub(1, SeqCst);
            thread::sleep(Duration::from_millis(5));
        }
        let sent = to.write_all(&buf[..n]);
        writing.fetch_sub(1, SeqCst);
        if sent.is_err() {
            return;
        }
    }
}
