//! Executors through the real supervisor (`stepwise __supervise`).

use crate::support::{bin, Scratch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stepwise_engine::executor::{exec, http, AttemptInput, ExecOptions};
use stepwise_engine::{HandlerContext, HandlerError, Handlers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The most any wait may take on a loaded machine; the processes the tests expect
/// to be killed would run for ten minutes.
const PATIENCE: Duration = Duration::from_secs(120);

fn options() -> ExecOptions {
    ExecOptions {
        supervisor: bin().into(),
        log_limit: 4096,
        output_limit: 64 * 1024,
        ..ExecOptions::default()
    }
}

fn input(dir: &Scratch) -> AttemptInput {
    let mut env = BTreeMap::new();
    env.insert("STEPWISE_RUN_ID".to_string(), "run-1".to_string());
    env.insert("STEPWISE_STEP".to_string(), "s".to_string());
    AttemptInput {
        context: json!({"run_id": "run-1", "step": "s", "input": {"n": 41}}),
        env,
        cwd: Some(dir.path().to_path_buf()),
    }
}

async fn sh(
    script: &str,
    dir: &Scratch,
    stop: &CancellationToken,
) -> stepwise_engine::executor::AttemptResult {
    let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    exec::run(&argv, &input(dir), &options(), stop).await
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test]
async fn exec_reads_the_context_and_returns_json_output() {
    let dir = Scratch::new();
    let script = r#"read ctx; n=$(echo "$ctx" | python3 -c 'import json,sys; print(json.load(sys.stdin)["input"]["n"] + 1)'); echo "{\"n\": $n, \"run\": \"$STEPWISE_RUN_ID\", \"cwd\": \"$(pwd)\"}""#;
    let r = sh(script, &dir, &CancellationToken::new()).await;
    let out = r.outcome.expect("the step succeeds");
    assert_eq!(out["n"], json!(42));
    assert_eq!(out["run"], json!("run-1"));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(out["cwd"], json!(cwd.display().to_string()));
}

#[tokio::test]
async fn exec_keeps_non_json_output_as_a_string_and_stderr_in_the_log() {
    let dir = Scratch::new();
    let r = sh(
        "echo hello world; echo 'a warning' >&2",
        &dir,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(r.outcome.unwrap(), Value::String("hello world".into()));
    let log = r.log.unwrap();
    assert!(
        log.contains("hello world") && log.contains("a warning"),
        "{log}"
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_a_retryable_error_with_the_code_and_log_tail() {
    let dir = Scratch::new();
    let r = sh(
        "echo 'disk full' >&2; exit 3",
        &dir,
        &CancellationToken::new(),
    )
    .await;
    let err = r.outcome.unwrap_err();
    assert!(err.retryable);
    assert!(err.message.contains("exit code 3"), "{}", err.message);
    assert!(err.message.contains("disk full"), "{}", err.message);
}

#[tokio::test]
async fn exit_code_64_means_do_not_retry() {
    let dir = Scratch::new();
    let err = sh("exit 64", &dir, &CancellationToken::new())
        .await
        .outcome
        .unwrap_err();
    assert!(!err.retryable, "{}", err.message);
}

#[tokio::test]
async fn a_missing_program_is_an_error_naming_it() {
    let dir = Scratch::new();
    let argv = vec!["./no-such-program".to_string()];
    let r = exec::run(&argv, &input(&dir), &options(), &CancellationToken::new()).await;
    let err = r.outcome.unwrap_err();
    assert!(err.message.contains("no-such-program"), "{}", err.message);
}

#[tokio::test]
async fn stopping_an_attempt_kills_the_child_and_its_grandchildren() {
    let dir = Scratch::new();
    let stop = CancellationToken::new();
    // Ten minutes each: ending within the test's budget means the stop killed them.
    let script = "sleep 600 & echo $! > grandchild.pid; echo $$ > child.pid; sleep 600";
    let s = stop.clone();
    let started = Instant::now();
    let pids = dir.path().to_path_buf();
    tokio::spawn(async move {
        // Stop once both processes exist, however long a loaded machine takes.
        while !(pids.join("grandchild.pid").exists() && pids.join("child.pid").exists()) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        s.cancel();
    });
    let r = sh(script, &dir, &stop).await;
    assert!(r.outcome.is_err());
    assert!(
        started.elapsed() < PATIENCE,
        "the stop did not kill the child"
    );
    let read = |f: &str| -> i32 {
        std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (child, grandchild) = (read("child.pid"), read("grandchild.pid"));
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if !alive(child) && !alive(grandchild) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "child {child} alive: {}, grandchild {grandchild} alive: {}",
        alive(child),
        alive(grandchild)
    );
}

#[tokio::test]
async fn huge_output_is_truncated_while_streaming_and_says_so() {
    let dir = Scratch::new();
    // 20 MiB on stdout: far above the 4 KiB log and 64 KiB output limits.
    let r = sh(
        "head -c 20971520 /dev/zero | tr '\\0' 'x'; echo; echo THE-END",
        &dir,
        &CancellationToken::new(),
    )
    .await;
    let log = r.log.unwrap();
    assert!(log.len() < 8192, "log kept {} bytes", log.len());
    assert!(log.contains("bytes truncated"), "the log says it was cut");
    assert!(log.trim_end().ends_with("THE-END"), "the tail is kept");
    match r.outcome.unwrap() {
        Value::String(s) => assert!(s.len() < 128 * 1024 && s.contains("bytes truncated")),
        other => panic!("a truncated stdout is not parsed as JSON: {other}"),
    }
}

#[tokio::test]
async fn the_supervisor_kills_the_child_when_the_worker_stops_heartbeating() {
    // Run the supervisor by hand with a 1 s lease and never send a heartbeat: it
    // must kill the child as it would for a SIGSTOPped worker.
    let dir = Scratch::new();
    let mut sup = tokio::process::Command::new(bin())
        .args([
            "__supervise",
            "--silence-ms",
            "1000",
            "--",
            "sh",
            "-c",
            "echo $$ > child.pid; sleep 600",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = sup.stdin.take().unwrap();
    stdin.write_all(b"{}\n").await.unwrap();
    let status = tokio::time::timeout(PATIENCE, sup.wait())
        .await
        .expect("the supervisor gave up on a silent worker")
        .unwrap();
    assert!(!status.success());
    let child: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(child), "the child outlived the lease");
    drop(stdin);
}

/// A one-shot HTTP server answering every request with `status` and `body`.
async fn http_server(status: u16, body: &'static str) -> String {
    http_server_with(status, String::new(), body).await
}

/// Like [`http_server`], with `headers` (each line ending in CRLF) in every answer.
async fn http_server_with(status: u16, headers: String, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = sock.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}/hook")
}

async fn post(
    client: &http::Clients,
    url: &str,
    input: &AttemptInput,
    stop: &CancellationToken,
) -> stepwise_engine::executor::AttemptResult {
    let action = stepwise_core::HttpAction::new(url, "POST");
    let call = http::Call {
        action: &action,
        input,
        body_limit: 64 * 1024,
        env: &stepwise_engine::executor::worker_env,
    };
    http::run(client, &call, stop).await
}

#[tokio::test]
async fn http_2xx_json_is_the_output_and_errors_say_whether_to_retry() {
    let dir = Scratch::new();
    let client = http::Clients::new();
    let stop = CancellationToken::new();
    let url = http_server(200, r#"{"ok": true}"#).await;
    let r = post(&client, &url, &input(&dir), &stop).await;
    assert_eq!(r.outcome.unwrap(), json!({"ok": true}));
    for (status, retryable) in [
        (500, true),
        (503, true),
        (404, false),
        (400, false),
        (408, true),
        (429, true),
    ] {
        let url = http_server(status, r#"{"error": "nope"}"#).await;
        let err = post(&client, &url, &input(&dir), &stop)
            .await
            .outcome
            .unwrap_err();
        assert_eq!(err.retryable, retryable, "HTTP {status}: {}", err.message);
        assert!(
            err.message.contains(&status.to_string()) && err.message.contains("nope"),
            "{}",
            err.message
        );
    }
    let err = post(&client, "http://127.0.0.1:1/none", &input(&dir), &stop)
        .await
        .outcome
        .unwrap_err();
    assert!(err.retryable, "a refused connection may work later");
}

#[tokio::test]
async fn exec_exit_75_with_retry_after_asks_for_that_delay() {
    let dir = Scratch::new();
    let stop = CancellationToken::new();
    let script = r#"cat > /dev/null; echo '{"retry_after": "30s"}'; echo quota >&2; exit 75"#;
    let err = sh(script, &dir, &stop).await.outcome.unwrap_err();
    assert_eq!(err.retry_after, Some(Duration::from_secs(30)), "{err:?}");
    assert!(err.retryable);
    assert_eq!(err.message, "exit 75: the service asked to retry after 30s");
    let script = r#"cat > /dev/null; echo '{"retry_after": 2}'; exit 75"#;
    let err = sh(script, &dir, &stop).await.outcome.unwrap_err();
    assert_eq!(err.retry_after, Some(Duration::from_secs(2)), "{err:?}");
    // Without a delay, 75 is an ordinary failure that says why.
    let script = r#"cat > /dev/null; echo 'busy'; exit 75"#;
    let err = sh(script, &dir, &stop).await.outcome.unwrap_err();
    assert_eq!(err.retry_after, None);
    assert!(err.retryable);
    assert!(
        err.message.starts_with(
            "exit code 75 (stdout is not a JSON object with retry_after: retried after the backoff)"
        ),
        "{}",
        err.message
    );
    // A successful exit's retry_after is just output.
    let script = r#"cat > /dev/null; echo '{"retry_after": "30s"}'"#;
    let out = sh(script, &dir, &stop).await.outcome.unwrap();
    assert_eq!(out, json!({"retry_after": "30s"}));
}

#[tokio::test]
async fn http_429_and_503_with_retry_after_ask_for_that_delay() {
    let dir = Scratch::new();
    let client = http::Clients::new();
    let stop = CancellationToken::new();
    let url = http_server_with(
        429,
        "retry-after: 7\r\n".into(),
        r#"{"error": "slow down"}"#,
    )
    .await;
    let err = post(&client, &url, &input(&dir), &stop)
        .await
        .outcome
        .unwrap_err();
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)), "{err:?}");
    assert!(err.retryable);
    assert!(
        err.message
            .starts_with("HTTP 429 Too Many Requests: the service asked to retry after 7s: ")
            && err.message.contains("slow down"),
        "{}",
        err.message
    );
    // An HTTP-date is turned into a delay by the worker's clock.
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let header = format!(
        "retry-after: {}\r\n",
        at.format("%a, %d %b %Y %H:%M:%S GMT")
    );
    let url = http_server_with(503, header, "{}").await;
    let err = post(&client, &url, &input(&dir), &stop)
        .await
        .outcome
        .unwrap_err();
    let delay = err.retry_after.expect("a delay");
    assert!(
        delay > Duration::from_secs(3000) && delay <= Duration::from_secs(3600),
        "{delay:?}"
    );
    // Other statuses, and a 429 without the header, take the backoff.
    let url = http_server_with(500, "retry-after: 7\r\n".into(), "{}").await;
    let err = post(&client, &url, &input(&dir), &stop)
        .await
        .outcome
        .unwrap_err();
    assert_eq!(err.retry_after, None);
    let url = http_server(429, "{}").await;
    let err = post(&client, &url, &input(&dir), &stop)
        .await
        .outcome
        .unwrap_err();
    assert_eq!((err.retry_after, err.retryable), (None, true));
}

#[tokio::test]
async fn handlers_get_the_context_and_can_fail_for_good() {
    let mut handlers = Handlers::default();
    handlers.register("double", |cx: HandlerContext| async move {
        let n = cx.context["input"]["n"]
            .as_i64()
            .ok_or_else(|| HandlerError::permanent("no n"))?;
        Ok(json!(n * 2))
    });
    assert!(handlers.contains("double"));
    let cx = |n: Value| HandlerContext {
        context: json!({"input": {"n": n}}),
        stop: CancellationToken::new(),
    };
    assert_eq!(
        handlers.run("double", cx(json!(21))).await.outcome.unwrap(),
        json!(42)
    );
    let err = handlers
        .run("double", cx(json!("x")))
        .await
        .outcome
        .unwrap_err();
    assert!(!err.retryable && err.message == "no n", "{err:?}");
    let err = handlers
        .run("missing", cx(json!(1)))
        .await
        .outcome
        .unwrap_err();
    assert!(err.retryable && err.message.contains("missing"), "{err:?}");
}

#[tokio::test]
async fn a_stopped_handler_is_dropped_at_its_next_await() {
    let mut handlers = Handlers::default();
    handlers.register("forever", |_cx: HandlerContext| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(json!(null))
    });
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.cancel();
    });
    let cx = HandlerContext {
        context: json!({}),
        stop,
    };
    let r = tokio::time::timeout(PATIENCE, handlers.run("forever", cx))
        .await
        .expect("the stop ends the handler");
    assert!(r.outcome.is_err());
}
