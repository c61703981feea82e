//! `http` steps that call real services (docs/design.md invariant 11 and "A step, from claim to
//! outcome"), through a worker process against a local HTTPS server with a CA of
//! its own: `ca_file`, certificate errors, rendered headers and bodies, secrets
//! from the worker's environment, and bounded answers.

mod server;

use crate::support::on_both_backends;
use crate::support::{eventually, ok, run_json, unique, Backend, Background, Scratch, TestDb};
use serde_json::{json, Value};
use server::TestServer;
use std::io::{Read, Write};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(120);
/// The worker's default output limit (`ExecOptions::output_limit`).
const OUTPUT_LIMIT: usize = 1024 * 1024;

fn setup(backend: Backend, scratch: &Scratch, files: &[(&str, String)]) -> TestDb {
    let db = TestDb::new(backend, scratch);
    for (name, toml) in files {
        let file = scratch.write(&format!("{name}.toml"), toml);
        ok(&db.url, &["apply", file.to_str().unwrap()]);
    }
    db
}

/// A worker with extra environment variables (the secrets it holds).
fn worker(url: &str, scratch: &Scratch, env: &[(&str, &str)]) -> Background {
    let stdout = scratch.path().join("worker.stdout");
    let stderr = scratch.path().join("worker.stderr");
    let child = std::process::Command::new(crate::support::bin())
        .args(["worker", "--pool", "*=2"])
        .env("STEPWISE_DATABASE_URL", url)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start the worker");
    Background { child, stderr }
}

fn start(url: &str, workflow: &str) -> String {
    ok(url, &["run", workflow, "--input", r#"{"q": "why"}"#])
        .trim()
        .to_string()
}

fn finished(url: &str, run: &str) -> Value {
    eventually(&format!("run {run} finished"), PATIENCE, || {
        let view = run_json(url, run);
        matches!(view["status"].as_str(), Some("completed" | "failed")).then_some(view)
    })
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

fn ca_file(scratch: &Scratch, server: &TestServer) -> String {
    let path = scratch.write("test-ca.pem", &server.ca_pem);
    path.to_str().unwrap().to_string()
}

#[test]
fn an_https_step_trusts_its_ca_file_and_sends_rendered_headers_and_body() {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let ca = ca_file(&scratch, &server);
    let base = &server.base;
    let toml = format!(
        r#"name = "shaped"
[[steps]]
name = "read"
exec = ["sh", "-c", "echo '{{\"text\": \"hello\", \"chunks\": [1, 2]}}'"]
[[steps]]
name = "call"
max_attempts = 3
http = {{ url = "{base}/echo", method = "PUT", ca_file = "{ca}",
         headers = {{ X-Run = "{{{{ run_id }}}}", X-Text = "{{{{ steps.read.text }}}}-{{{{ input.q }}}}" }},
         body = {{ input = "{{{{ steps.read.text }}}}", chunks = "{{{{ steps.read.chunks }}}}", model = "small", n = 2 }} }}
"#
    );
    let db = setup(Backend::Sqlite, &scratch, &[("shaped", toml)]);
    let url = db.url.as_str();
    let _worker = worker(url, &scratch, &[]);
    let run = start(url, "shaped");
    let view = finished(url, &run);
    assert_eq!(view["status"], "completed", "{view}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.target, "/echo");
    assert_eq!(request.headers["x-run"], run);
    assert_eq!(request.headers["x-text"], "hello-why");
    assert_eq!(request.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"input": "hello", "chunks": [1, 2], "model": "small", "n": 2})
    );
    // The answer is the step's output.
    let output = &step(&view, "call")["output"];
    assert_eq!(output["received"], body, "{output}");
    assert_eq!(output["method"], "PUT");
}

#[test]
fn without_the_ca_file_a_certificate_error_is_permanent_and_names_the_host() {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let toml = format!(
        "name = \"untrusted\"\n[[steps]]\nname = \"call\"\nmax_attempts = 3\n\
         http = {{ url = \"{}/echo\" }}\n",
        server.base
    );
    let db = setup(Backend::Sqlite, &scratch, &[("untrusted", toml)]);
    let url = db.url.as_str();
    let _worker = worker(url, &scratch, &[]);
    let run = start(url, "untrusted");
    let view = finished(url, &run);
    assert_eq!(view["status"], "failed", "{view}");
    let call = step(&view, "call");
    assert_eq!(call["attempts"], 1, "not retried: {call}");
    let error = call["error"].as_str().unwrap();
    assert!(
        error.contains("TLS certificate of 127.0.0.1 is not trusted") && error.contains("ca_file"),
        "{error}"
    );
    assert!(server.requests().is_empty());
}

on_both_backends!(a_secret_from_the_worker_environment_is_used_and_stored_nowhere);

/// The secret reaches the server and the child, and nothing that leaves the worker:
/// not the database (every table dumped), events, logs, the CLI or the API.
fn a_secret_from_the_worker_environment_is_used_and_stored_nowhere(backend: Backend) {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let ca = ca_file(&scratch, &server);
    let secret = unique("sw-secret");
    let base = &server.base;
    let toml = format!(
        r#"name = "secret"
[[steps]]
name = "read"
env = {{ TOKEN = "${{SW_TEST_SECRET}}" }}
exec = ["sh", "-c", "printf %s \"$TOKEN\" > token.seen; echo \"child says $TOKEN\" >&2; echo \"{{\\\"seen\\\": \\\"$TOKEN\\\"}}\""]
[[steps]]
name = "call"
http = {{ url = "{base}/echo?key=${{SW_TEST_SECRET}}", ca_file = "{ca}",
         headers = {{ Authorization = "Bearer ${{SW_TEST_SECRET}}" }} }}
[[steps]]
name = "refused"
max_attempts = 1
http = {{ url = "https://127.0.0.1:1/x?key=${{SW_TEST_SECRET}}" }}
"#
    );
    let db = setup(backend, &scratch, &[("secret", toml)]);
    let url = db.url.as_str();
    let worker = worker(url, &scratch, &[("SW_TEST_SECRET", &secret)]);
    let run = start(url, "secret");
    let view = finished(url, &run);
    assert_eq!(
        view["status"], "failed",
        "the last step cannot connect: {view}"
    );

    // Used: by the child, and sent to the server.
    let seen = std::fs::read_to_string(scratch.path().join("token.seen")).unwrap();
    assert_eq!(seen, secret);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].headers["authorization"],
        format!("Bearer {secret}")
    );
    assert_eq!(requests[0].target, format!("/echo?key={secret}"));
    // Echoed back, and redacted on the way in.
    assert_eq!(step(&view, "read")["output"]["seen"], "${SW_TEST_SECRET}");
    let output = &step(&view, "call")["output"];
    assert_eq!(
        output["authorization"], "Bearer ${SW_TEST_SECRET}",
        "{output}"
    );
    assert_eq!(output["target"], "/echo?key=${SW_TEST_SECRET}", "{output}");
    let error = step(&view, "refused")["error"].as_str().unwrap();
    assert!(error.contains("request failed"), "{error}");
    // `explain` names what each http step calls, as written, and no header.
    let explained: Value =
        serde_json::from_str(&ok(url, &["runs", "explain", &run, "--json"])).unwrap();
    assert_eq!(
        explained["calls"],
        json!({"call": format!("POST {base}/echo?key=${{SW_TEST_SECRET}}"),
               "refused": "POST https://127.0.0.1:1/x?key=${SW_TEST_SECRET}"})
    );
    assert!(!explained.to_string().contains("Bearer"), "{explained}");

    let mut places: Vec<(String, String)> = vec![
        ("database dump".into(), dump(backend, &db, &scratch)),
        ("events".into(), ok(url, &["events", "--json"])),
        ("runs show".into(), view.to_string()),
        ("runs list".into(), ok(url, &["runs", "list", "--json"])),
        (
            "runs explain".into(),
            ok(url, &["runs", "explain", &run, "--json"]),
        ),
        ("worker stderr".into(), worker.stderr_text()),
    ];
    for name in ["read", "call", "refused"] {
        places.push((format!("logs {name}"), ok(url, &["logs", &run, name])));
    }
    let logs = ok(url, &["logs", &run, "read"]);
    assert!(logs.contains("child says ${SW_TEST_SECRET}"), "{logs}");
    places.extend(api_answers(url, &scratch, &run));
    for (place, text) in &places {
        assert!(!text.is_empty(), "{place} is empty");
        assert!(
            !text.contains(&secret),
            "the secret is in the {place}:\n{text}"
        );
    }
}

/// Every table of the database as text.
fn dump(backend: Backend, db: &TestDb, scratch: &Scratch) -> String {
    let out = match backend {
        Backend::Sqlite => std::process::Command::new("sqlite3")
            .arg(scratch.path().join("stepwise.db"))
            .arg(".dump")
            .output(),
        Backend::Postgres => std::process::Command::new("pg_dump")
            .args(["--data-only", &db.url])
            .output(),
    }
    .expect("sqlite3 and pg_dump are installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("Bearer ${SW_TEST_SECRET}"),
        "the dump has the spec"
    );
    text
}

/// What the API answers about the run, through a server process.
fn api_answers(url: &str, scratch: &Scratch, run: &str) -> Vec<(String, String)> {
    let server = Background::spawn(
        url,
        &[
            "server",
            "--no-worker",
            "--insecure-no-auth",
            "--listen",
            "127.0.0.1:0",
        ],
        scratch,
        "api",
    );
    let addr = eventually("the API listening", PATIENCE, || {
        let text = server.stderr_text();
        let start = text.find("http://")? + "http://".len();
        let rest = &text[start..];
        Some(rest[..rest.find(' ')?].to_string())
    });
    let mut paths = vec![
        "/v1/runs".to_string(),
        format!("/v1/runs/{run}"),
        format!("/v1/runs/{run}/explain"),
        "/v1/events".to_string(),
        "/v1/events?last=100".to_string(),
        "/v1/workflows".to_string(),
    ];
    for name in ["read", "call", "refused"] {
        paths.push(format!("/v1/runs/{run}/steps/{name}/logs"));
    }
    paths
        .into_iter()
        .map(|path| {
            let (status, body) = get(&addr, &path);
            assert_eq!(status, 200, "GET {path}: {body}");
            (format!("API {path}"), body)
        })
        .collect()
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_missing_variable_fails_the_attempt_for_good_naming_it() {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let http = format!(
        "name = \"missing-http\"\n[[steps]]\nname = \"call\"\nmax_attempts = 3\n\
         http = {{ url = \"{}/echo\", headers = {{ Authorization = \"Bearer ${{SW_TEST_ABSENT}}\" }} }}\n",
        server.base
    );
    let exec = "name = \"missing-exec\"\n[[steps]]\nname = \"run\"\nmax_attempts = 3\n\
                env = { KEY = \"${SW_TEST_ABSENT_TOO}\" }\nexec = [\"true\"]\n"
        .to_string();
    let db = setup(
        Backend::Sqlite,
        &scratch,
        &[("missing-http", http), ("missing-exec", exec)],
    );
    let url = db.url.as_str();
    let _worker = worker(url, &scratch, &[]);
    for (workflow, name, variable) in [
        ("missing-http", "call", "SW_TEST_ABSENT"),
        ("missing-exec", "run", "SW_TEST_ABSENT_TOO"),
    ] {
        let run = start(url, workflow);
        let view = finished(url, &run);
        assert_eq!(view["status"], "failed", "{view}");
        let s = step(&view, name);
        assert_eq!(s["attempts"], 1, "not retried: {s}");
        let error = s["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "environment variable {variable} is not set on this worker"
            )),
            "{error}"
        );
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[test]
fn an_answer_over_the_output_limit_fails_saying_how_large_it_was() {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let ca = ca_file(&scratch, &server);
    let base = &server.base;
    let chunked = OUTPUT_LIMIT as u64 + 1;
    let toml = format!(
        r#"name = "big"
[[steps]]
name = "known"
after = []
max_attempts = 3
http = {{ url = "{base}/big", ca_file = "{ca}" }}
[[steps]]
name = "unknown"
after = []
max_attempts = 3
http = {{ url = "{base}/stream?bytes={chunked}", ca_file = "{ca}" }}
"#
    );
    let db = setup(Backend::Sqlite, &scratch, &[("big", toml)]);
    let url = db.url.as_str();
    let _worker = worker(url, &scratch, &[]);
    let run = start(url, "big");
    let view = eventually("both steps failed", PATIENCE, || {
        let view = run_json(url, &run);
        let done = ["known", "unknown"]
            .iter()
            .all(|s| step(&view, s)["error"].is_string() && step(&view, s)["status"] != "running");
        done.then_some(view)
    });
    let known = step(&view, "known");
    assert_eq!(known["attempts"], 1, "{known}");
    assert_eq!(
        known["error"],
        format!(
            "POST {base}/big: HTTP 200 OK with a body of 2097152 bytes, more than the limit of {OUTPUT_LIMIT} bytes"
        )
    );
    let unknown = step(&view, "unknown");
    assert_eq!(unknown["attempts"], 1, "{unknown}");
    assert_eq!(
        unknown["error"],
        format!(
            "POST {base}/stream?bytes={chunked}: HTTP 200 OK with a body of more than {OUTPUT_LIMIT} bytes, the limit"
        )
    );
}

/// A 1 GiB answer does not grow the worker: it reads up to the output limit and
/// hangs up. Prints the worker's peak RSS after a small answer and after the 1 GiB
/// one (for BENCHMARKS.md).
#[test]
fn a_1_gib_streamed_answer_keeps_the_worker_memory_flat() {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let ca = ca_file(&scratch, &server);
    let gib: u64 = 1 << 30;
    let workflow = |name: &str, path: &str| {
        format!(
            "name = \"{name}\"\n[[steps]]\nname = \"call\"\nmax_attempts = 1\n\
             http = {{ url = \"{}{path}\", ca_file = \"{ca}\" }}\n",
            server.base
        )
    };
    let db = setup(
        Backend::Sqlite,
        &scratch,
        &[
            ("small", workflow("small", "/echo")),
            ("huge", workflow("huge", &format!("/stream?bytes={gib}"))),
        ],
    );
    let url = db.url.as_str();
    let worker = worker(url, &scratch, &[]);
    let small = finished(url, &start(url, "small"));
    assert_eq!(small["status"], "completed", "{small}");
    let baseline_kib = vm_hwm_kib(worker.pid());
    let view = finished(url, &start(url, "huge"));
    let call = step(&view, "call");
    assert!(
        call["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("more than {OUTPUT_LIMIT} bytes"))),
        "{call}"
    );
    let peak_kib = vm_hwm_kib(worker.pid());
    let sent = server.sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "worker peak RSS (VmHWM): {} KiB after a small answer, {} KiB after the 1 GiB one; \
         the server got {} KiB out before the worker hung up",
        baseline_kib,
        peak_kib,
        sent >> 10
    );
    assert!(
        peak_kib < baseline_kib + 32 * 1024,
        "the 1 GiB answer grew the worker from {baseline_kib} KiB to {peak_kib} KiB"
    );
    assert!(sent < gib / 8, "the worker read on: {sent} bytes sent");
}

fn vm_hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// A `complete = "callback"` http step sends its callback's token and URL (rendered
/// from the context) and then waits for it; the callback finishes the step.
#[test]
fn an_http_step_sends_its_callback_and_waits_for_it() {
    let scratch = Scratch::new();
    let server = TestServer::start();
    let ca = ca_file(&scratch, &server);
    let base = &server.base;
    let toml = format!(
        r#"name = "remote"
[[steps]]
name = "submit"
complete = "callback"
timeout = "1h"
http = {{ url = "{base}/echo", ca_file = "{ca}",
         body = {{ job = "{{{{ input.q }}}}", reply_to = "{{{{ callback.url }}}}", token = "{{{{ callback.token }}}}" }} }}
"#
    );
    let db = setup(Backend::Sqlite, &scratch, &[("remote", toml)]);
    let url = db.url.as_str();
    let _worker = Background::spawn(
        url,
        &["worker", "--public-url", "https://flows.example.com"],
        &scratch,
        "worker",
    );
    let run = start(url, "remote");
    eventually("the step waiting for its callback", PATIENCE, || {
        (step(&run_json(url, &run), "submit")["status"] == "waiting").then_some(())
    });
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["job"], "why");
    assert_eq!(
        body["reply_to"],
        json!(format!("https://flows.example.com/v1/callbacks/{token}"))
    );
    ok(url, &["complete", &token, "--output", r#"{"done": 1}"#]);
    let view = finished(url, &run);
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(step(&view, "submit")["output"], json!({"done": 1}));
}
