use super::*;
use crate::spec::DEFAULT_QUEUE;
use std::collections::BTreeMap;

const FULL: &str = r#"name = "ingest"
version = 1
[defaults]
max_attempts = 3
backoff = { initial = "1s", factor = 2.0, max = "5m" }
timeout = "10m"
[run]
deadline = "2h"
concurrency = { key = "{{input.tenant}}", limit = 1 }

[[steps]]
name = "parse"
queue = "parse"
exec = ["python3", "parse.py"]
[[steps]]
name = "store"
after = ["parse"]
exec = ["./store.sh"]
resource = "rag:{{input.db}}"
compensate = ["./unstore.sh"]
[[steps]]
name = "notify"
http = { url = "http://127.0.0.1:9000/hook", method = "POST" }
"#;

fn parse(text: &str) -> WorkflowFile {
    parse_workflow_file(text, "wf.toml", None).unwrap_or_else(|e| panic!("{e}"))
}

fn exec(argv: &[&str]) -> StepAction {
    StepAction::Exec {
        argv: argv.iter().map(|a| a.to_string()).collect(),
    }
}

fn step(name: &str, action: StepAction) -> StepSpec {
    StepSpec {
        action,
        ..StepSpec::handler(name, "unused")
    }
}

#[test]
fn the_design_example_parses_into_the_expected_spec() {
    let file = parse_workflow_file(FULL, "ingest.toml", Some(Path::new("/srv/flows"))).unwrap();
    assert_eq!(file.declared_version, Some(1));
    let cwd = Some("/srv/flows".to_string());
    let expected = WorkflowSpec {
        name: "ingest".into(),
        defaults: StepDefaults {
            max_attempts: 3,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(300),
            },
            timeout_ms: Some(600_000),
        },
        run: RunPolicy {
            deadline_ms: Some(7_200_000),
            concurrency: Some(ConcurrencySpec {
                key: "{{input.tenant}}".into(),
                limit: 1,
            }),
            fairness_key: None,
        },
        steps: vec![
            StepSpec {
                queue: Some("parse".into()),
                cwd: cwd.clone(),
                ..step("parse", exec(&["python3", "parse.py"]))
            },
            StepSpec {
                after: Some(vec!["parse".into()]),
                resource: Some("rag:{{input.db}}".into()),
                compensate: Some(exec(&["./unstore.sh"])),
                cwd: cwd.clone(),
                ..step("store", exec(&["./store.sh"]))
            },
            StepSpec {
                cwd,
                ..step(
                    "notify",
                    StepAction::Http(HttpAction::new("http://127.0.0.1:9000/hook", "POST")),
                )
            },
        ],
    };
    assert_eq!(file.spec, expected);
    let plan = file.spec.plan().unwrap();
    assert_eq!(plan[2].dependencies, vec![1]);
    assert_eq!(plan[1].queue, DEFAULT_QUEUE);
    // The spec still travels as JSON (HTTP API, store) unchanged.
    let json = serde_json::to_value(&file.spec).unwrap();
    assert_eq!(
        serde_json::from_value::<WorkflowSpec>(json).unwrap(),
        file.spec
    );
}

#[test]
fn a_pipeline_takes_every_default() {
    let file = parse(
        r#"name = "pipe"
[[steps]]
name = "a"
exec = ["./a.sh", "--fast"]
[[steps]]
name = "b"
handler = "b_handler"
[[steps]]
name = "c"
http = { url = "https://example.test/hook" }
"#,
    );
    assert_eq!(file.declared_version, None);
    let spec = &file.spec;
    assert_eq!(spec.defaults, StepDefaults::default());
    assert_eq!(spec.run, RunPolicy::default());
    assert_eq!(spec.steps[0], step("a", exec(&["./a.sh", "--fast"])));
    assert_eq!(spec.steps[1], StepSpec::handler("b", "b_handler"));
    assert_eq!(
        spec.steps[2].action,
        StepAction::Http(HttpAction::new("https://example.test/hook", "POST"))
    );
    assert!(spec
        .steps
        .iter()
        .all(|s| s.after.is_none() && s.cwd.is_none()));
    let plan = spec.plan().unwrap();
    assert_eq!(plan[1].dependencies, vec![0]);
    assert_eq!(plan[2].dependencies, vec![1]);
}

#[test]
fn a_dag_with_overrides_compensations_and_directories() {
    let file = parse_workflow_file(
        r#"name = "dag"
[defaults]
backoff = { initial = "2s", max = "1m" }
[run]
concurrency = { key = "{{ input.tenant }}-{{ input.region }}" }
[[steps]]
name = "fetch"
after = []
exec = ["./fetch.sh"]
cwd = "scripts"
env = { MODE = "full", "DOTTED.NAME" = "x" }
timeout = "1h30m"
[[steps]]
name = "left"
after = ["fetch"]
handler = "left"
max_attempts = 5
backoff = { factor = 3 }
priority = -2
compensate = { handler = "undo_left" }
[[steps]]
name = "right"
after = ["fetch"]
exec = ["./right.sh"]
cwd = "/opt/right"
timeout = "500ms"
compensate = { http = { url = "http://127.0.0.1:1/undo", method = "DELETE" } }
[[steps]]
name = "join"
after = ["left", "right"]
exec = ["./join.sh"]
compensate = { exec = ["./unjoin.sh", "all"] }
"#,
        "dag.toml",
        Some(Path::new("/srv/flows")),
    )
    .unwrap();
    let spec = &file.spec;
    assert_eq!(
        spec.defaults.backoff,
        Backoff {
            initial: Duration::from_secs(2),
            factor: 2.0,
            max: Duration::from_secs(60)
        }
    );
    assert_eq!(
        spec.run.concurrency,
        Some(ConcurrencySpec {
            key: "{{ input.tenant }}-{{ input.region }}".into(),
            limit: 1
        })
    );
    let [fetch, left, right, join] = &spec.steps[..] else {
        panic!("four steps expected")
    };
    assert_eq!(fetch.after, Some(vec![]));
    assert_eq!(fetch.cwd.as_deref(), Some("/srv/flows/scripts"));
    assert_eq!(
        fetch.env,
        BTreeMap::from([
            ("DOTTED.NAME".to_string(), "x".to_string()),
            ("MODE".to_string(), "full".to_string())
        ])
    );
    assert_eq!(fetch.timeout_ms, Some(5_400_000));
    assert_eq!(left.max_attempts, Some(5));
    assert_eq!(left.priority, Some(-2));
    // Keys a step's backoff leaves out come from [defaults].
    assert_eq!(
        left.backoff,
        Some(Backoff {
            initial: Duration::from_secs(2),
            factor: 3.0,
            max: Duration::from_secs(60)
        })
    );
    assert_eq!(
        left.compensate,
        Some(StepAction::Handler {
            name: "undo_left".into()
        })
    );
    assert_eq!(right.cwd.as_deref(), Some("/opt/right"));
    assert_eq!(right.timeout_ms, Some(500));
    assert_eq!(
        right.compensate,
        Some(StepAction::Http(HttpAction::new(
            "http://127.0.0.1:1/undo",
            "DELETE"
        )))
    );
    assert_eq!(join.compensate, Some(exec(&["./unjoin.sh", "all"])));
    // A compensation runs in its step's directory.
    assert_eq!(join.cwd.as_deref(), Some("/srv/flows"));
    assert_eq!(spec.step_timeout(right), Some(Duration::from_millis(500)));
    let plan = spec.plan().unwrap();
    assert_eq!(plan[0].dependencies, Vec::<usize>::new());
    assert_eq!(plan[3].dependencies, vec![1, 2]);
    assert_eq!(plan[0].dependents, vec![1, 2]);
    assert_eq!(plan[1].retry.max_attempts, 5);
}

#[test]
fn without_a_base_dir_cwd_is_kept_as_written() {
    let file = parse("name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"x\"]\ncwd = \"rel\"\n");
    assert_eq!(file.spec.steps[0].cwd.as_deref(), Some("rel"));
}

#[test]
fn a_relative_base_dir_is_made_absolute() {
    let file = parse_workflow_file(
        "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"x\"]\n",
        "w.toml",
        Some(Path::new("flows")),
    )
    .unwrap();
    let cwd = file.spec.steps[0].cwd.clone().unwrap();
    assert!(Path::new(&cwd).is_absolute(), "{cwd}");
    assert!(cwd.ends_with("flows"), "{cwd}");
    let here = std::env::current_dir().unwrap();
    let file = parse_workflow_file(
        "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"x\"]\n",
        "w.toml",
        Path::new("w.toml").parent(),
    )
    .unwrap();
    assert_eq!(file.spec.steps[0].cwd.as_deref(), here.to_str());
}

/// Each bad file and its exact error. `S` is a valid step to append where a file
/// needs one.
#[test]
fn bad_files_are_refused_with_file_line_column_field_and_message() {
    const S: &str = "[[steps]]\nname = \"a\"\nhandler = \"h\"\n";
    let with_step = |head: &str| format!("name = \"wf\"\n{head}{S}");
    let step = |body: &str| format!("name = \"wf\"\n{S}{body}");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "TOML syntax",
            "name = = 1\n".into(),
            "wf.toml:1:8: invalid TOML: extra `=`, expected nothing",
        ),
        (
            "duplicate TOML key",
            "name = \"wf\"\nname = \"x\"\n".into(),
            "wf.toml:2:1: invalid TOML: duplicate key `name`",
        ),
        (
            "unknown top-level key",
            with_step("bogus = 1\n"),
            "wf.toml:2:1: bogus: unknown key `bogus`; expected one of `name`, `version`, `defaults`, `run`, `steps`, `schedules`",
        ),
        (
            "unknown step key",
            step("exce = [\"x\"]\n"),
            "wf.toml:5:1: steps[0].exce: unknown key `exce`; expected one of `name`, `queue`, `after`, `exec`, `http`, `handler`, `sleep`, `sleep_until`, `wait`, `run`, `complete`, `resource`, `env`, `cwd`, `compensate`, `max_attempts`, `backoff`, `timeout`, `priority`, `for_each`, `max_parallel`, `max_items`, `on_item_failure`, `rate_limit`",
        ),
        (
            "max_parallel without for_each",
            step("max_parallel = 4\n"),
            "wf.toml:5:16: steps[0].max_parallel: `max_parallel` applies only to a step with `for_each`",
        ),
        (
            "on_item_failure unknown",
            step("for_each = \"input.x\"\non_item_failure = \"ignore\"\n"),
            "wf.toml:6:19: steps[0].on_item_failure: \"ignore\" is not allowed; use \"fail\" or \"continue\"",
        ),
        (
            "run and handler",
            step("run = { workflow = \"child\" }\n"),
            "wf.toml:5:7: steps[0].run: a step takes only one of `exec`, `http`, `handler`, `sleep`, `sleep_until`, `wait` or `run`, but this one also has `handler`",
        ),
        (
            "unknown backoff key",
            with_step("[defaults]\nbackoff = { initial = \"1s\", factr = 2 }\n"),
            "wf.toml:3:29: defaults.backoff.factr: unknown key `factr`; expected one of `initial`, `factor`, `max`",
        ),
        (
            "wrong type",
            with_step("[defaults]\nmax_attempts = \"3\"\n"),
            "wf.toml:3:16: defaults.max_attempts: expected an integer, found the string \"3\"",
        ),
        (
            "exec not an array",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nexec = \"./a.sh\"\n".into(),
            "wf.toml:4:8: steps[0].exec: expected an array, found the string \"./a.sh\"",
        ),
        (
            "boolean where a string belongs",
            step("queue = true\n"),
            "wf.toml:5:9: steps[0].queue: expected a string, found the boolean `true`",
        ),
        (
            "float where an integer belongs",
            step("priority = 1.5\n"),
            "wf.toml:5:12: steps[0].priority: expected an integer, found the number `1.5`",
        ),
        (
            "env value not a string",
            step("env = { A = 1 }\n"),
            "wf.toml:5:13: steps[0].env.A: expected a string, found the integer `1`",
        ),
        (
            "steps as a table",
            "name = \"wf\"\n[steps]\nname = \"a\"\n".into(),
            "wf.toml:2:1: steps: expected an array, found a table",
        ),
        (
            "bad duration",
            with_step("[defaults]\nbackoff = { initial = \"5x\" }\n"),
            "wf.toml:3:23: defaults.backoff.initial: \"5x\" is not a duration (unknown time unit \"x\"); write it like \"500ms\", \"30s\", \"5m\" or \"1h30m\"",
        ),
        (
            "duration without unit",
            with_step("[run]\ndeadline = \"90\"\n"),
            "wf.toml:3:12: run.deadline: \"90\" is not a duration (time unit needed, for example 90sec or 90ms); write it like \"500ms\", \"30s\", \"5m\" or \"1h30m\"",
        ),
        (
            "duration as a number",
            step("timeout = 5\n"),
            "wf.toml:5:11: steps[0].timeout: expected a duration such as \"30s\" or \"5m\", found the integer `5`",
        ),
        (
            "zero timeout",
            with_step("[defaults]\ntimeout = \"0s\"\n"),
            "wf.toml:3:11: defaults.timeout: must be longer than zero",
        ),
        (
            "missing workflow name",
            format!("version = 1\n{S}"),
            "wf.toml:1:1: name: this key is required",
        ),
        (
            "missing step name",
            format!("name = \"wf\"\n{S}[[steps]]\nhandler = \"h\"\n"),
            "wf.toml:5:1: steps[1].name: this key is required",
        ),
        (
            "no steps",
            "name = \"wf\"\nversion = 2\n".into(),
            "wf.toml:1:1: steps: the workflow has no steps: add at least one [[steps]] table",
        ),
        (
            "step without an action",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nqueue = \"q\"\n".into(),
            "wf.toml:3:8: steps[0]: a step needs one of `exec`, `http` or `handler`",
        ),
        (
            "step with two actions",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nexec = [\"x\"]\nhandler = \"h\"\n".into(),
            "wf.toml:5:11: steps[0].handler: a step takes only one of `exec`, `http` or `handler`, but this one also has `exec`",
        ),
        (
            "empty exec",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nexec = []\n".into(),
            "wf.toml:4:8: steps[0].exec: must name a program to run",
        ),
        (
            "empty program",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nexec = [\"\", \"x\"]\n".into(),
            "wf.toml:4:8: steps[0].exec: has an empty program name",
        ),
        (
            "http url scheme",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nhttp = { url = \"ftp://x\" }\n".into(),
            "wf.toml:4:16: steps[0].http.url: must be an http:// or https:// URL, not \"ftp://x\"",
        ),
        (
            "http without url",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nhttp = { method = \"GET\" }\n".into(),
            "wf.toml:4:8: steps[0].http.url: this key is required",
        ),
        (
            "http method",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nhttp = { url = \"http://h/x\", method = \"PO ST\" }\n".into(),
            "wf.toml:4:39: steps[0].http.method: must be an HTTP method such as \"POST\", not \"PO ST\"",
        ),
        (
            "duplicate step",
            format!("name = \"wf\"\n{S}{S}"),
            "wf.toml:6:8: steps[1].name: step \"a\" is defined twice (first on line 3)",
        ),
        (
            "unknown dependency",
            step("[[steps]]\nname = \"b\"\nafter = [\"a\", \"zz\"]\nhandler = \"h\"\n"),
            "wf.toml:7:15: steps[1].after[1]: step \"b\" depends on unknown step \"zz\"",
        ),
        (
            "cycle through implicit dependencies",
            "name = \"wf\"\n[[steps]]\nname = \"a\"\nafter = [\"c\"]\nhandler = \"h\"\n[[steps]]\nname = \"b\"\nhandler = \"h\"\n[[steps]]\nname = \"c\"\nhandler = \"h\"\n".into(),
            "wf.toml:4:10: steps[0].after[0]: steps form a cycle: a -> b -> c -> a",
        ),
        (
            "step after itself",
            step("after = [\"a\"]\n"),
            "wf.toml:5:10: steps[0].after[0]: steps form a cycle: a -> a",
        ),
        (
            "invalid workflow name",
            format!("name = \"bad name\"\n{S}"),
            "wf.toml:1:8: name: invalid name \"bad name\": use 1-128 letters, digits, '-', '_' or '.'",
        ),
        (
            "invalid step name",
            "name = \"wf\"\n[[steps]]\nname = \"a/b\"\nhandler = \"h\"\n".into(),
            "wf.toml:3:8: steps[0].name: invalid name \"a/b\": use 1-128 letters, digits, '-', '_' or '.'",
        ),
        (
            "invalid queue",
            step("queue = \"a b\"\n"),
            "wf.toml:5:9: steps[0].queue: \"a b\" is not a valid name",
        ),
        (
            "max_attempts = 0 on a step",
            step("max_attempts = 0\n"),
            "wf.toml:5:16: steps[0].max_attempts: must be at least 1",
        ),
        (
            "negative max_attempts in defaults",
            with_step("[defaults]\nmax_attempts = -1\n"),
            "wf.toml:3:16: defaults.max_attempts: must be at least 1",
        ),
        (
            "bad backoff factor in defaults",
            with_step("[defaults]\nbackoff = { factor = 0.5 }\n"),
            "wf.toml:3:22: defaults.backoff.factor: must be a number of at least 1",
        ),
        (
            "bad backoff factor on a step",
            step("backoff = { factor = 0 }\n"),
            "wf.toml:5:22: steps[0].backoff.factor: must be a number of at least 1",
        ),
        (
            "backoff max below initial",
            step("backoff = { initial = \"10s\", max = \"1s\" }\n"),
            "wf.toml:5:36: steps[0].backoff.max: must not be below backoff.initial",
        ),
        (
            "priority out of range",
            step("priority = 99999999999\n"),
            "wf.toml:5:12: steps[0].priority: must be at most 2147483647",
        ),
        (
            "version 0",
            with_step("version = 0\n"),
            "wf.toml:2:11: version: must be at least 1",
        ),
        (
            "template with an unknown variable",
            with_step("[run]\nconcurrency = { key = \"{{ tenant }}\" }\n"),
            "wf.toml:3:23: run.concurrency.key: unknown variable `tenant`: a template can only use the run's input, as in {{ input.tenant }}",
        ),
        (
            "template syntax",
            step("resource = \"rag:{{ input.db \"\n"),
            "wf.toml:5:12: steps[0].resource: invalid template syntax: unexpected end of input, expected end of variable block",
        ),
        (
            "template filter",
            step("resource = \"rag:{{ input.db | upper }}\"\n"),
            "wf.toml:5:12: steps[0].resource: filter upper is unknown; templates support plain substitutions such as {{ input.tenant }}",
        ),
        (
            "concurrency limit 0",
            with_step("[run]\nconcurrency = { key = \"{{ input.tenant }}\", limit = 0 }\n"),
            "wf.toml:3:53: run.concurrency.limit: must be at least 1",
        ),
        (
            "concurrency without key",
            with_step("[run]\nconcurrency = { limit = 2 }\n"),
            "wf.toml:3:15: run.concurrency.key: this key is required",
        ),
        (
            "compensate of the wrong type",
            step("compensate = \"./undo.sh\"\n"),
            "wf.toml:5:14: steps[0].compensate: expected an argv array or a table with `exec`, `http` or `handler`, found the string \"./undo.sh\"",
        ),
        (
            "empty compensate argv",
            step("compensate = []\n"),
            "wf.toml:5:14: steps[0].compensate: must name a program to run",
        ),
        (
            "compensate table without action",
            step("compensate = {}\n"),
            "wf.toml:5:14: steps[0].compensate: a compensation needs one of `exec`, `http` or `handler`",
        ),
        (
            "compensate table with unknown key",
            step("compensate = { run = [\"x\"] }\n"),
            "wf.toml:5:16: steps[0].compensate.run: unknown key `run`; expected one of `exec`, `http`, `handler`",
        ),
        (
            "compensate http url",
            step("compensate = { http = { url = \"localhost:1\" } }\n"),
            "wf.toml:5:31: steps[0].compensate.http.url: must be an http:// or https:// URL, not \"localhost:1\"",
        ),
        (
            "sleep not a duration",
            "name = \"wf\"\n[[steps]]\nname = \"s\"\nsleep = \"soon\"\n".into(),
            "wf.toml:4:9: steps[0].sleep: \"soon\" is not a duration (expected number at 0); write it like \"500ms\", \"30s\", \"5m\" or \"1h30m\"",
        ),
        (
            "sleep and exec",
            "name = \"wf\"\n[[steps]]\nname = \"s\"\nexec = [\"x\"]\nsleep = \"1s\"\n".into(),
            "wf.toml:5:9: steps[0].sleep: a step takes only one of `exec`, `http`, `handler`, `sleep`, `sleep_until`, `wait` or `run`, but this one also has `exec`",
        ),
        (
            "wait signal name",
            "name = \"wf\"\n[[steps]]\nname = \"s\"\nwait = { signal = \"a b\" }\n".into(),
            "wf.toml:4:19: steps[0].wait.signal: \"a b\" is not a valid signal name: use 1-128 letters, digits, '-', '_' or '.'",
        ),
        (
            "sleep_until template",
            "name = \"wf\"\n[[steps]]\nname = \"s\"\nsleep_until = \"{{ input.at \"\n".into(),
            "wf.toml:4:15: steps[0].sleep_until: invalid template syntax: unexpected end of input, expected end of variable block",
        ),
        (
            "complete on a handler",
            step("complete = \"callback\"\n"),
            "wf.toml:5:12: steps[0].complete: \"callback\" applies only to `exec` and `http` steps",
        ),
        (
            "complete unknown",
            "name = \"wf\"\n[[steps]]\nname = \"s\"\nexec = [\"x\"]\ncomplete = \"webhook\"\n".into(),
            "wf.toml:5:12: steps[0].complete: \"webhook\" is not a way to complete a step; the only one is \"callback\"",
        ),
        (
            "env name",
            step("env = { \"A=B\" = \"x\" }\n"),
            "wf.toml:5:7: steps[0].env: has an invalid variable name \"A=B\"",
        ),
    ];
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        match parse_workflow_file(text, "wf.toml", None) {
            Ok(_) => failures.push(format!("{what}: accepted\n{text}")),
            Err(e) if e.to_string() != *expected => {
                failures.push(format!("{what}:\n  expected {expected}\n  got      {e}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_carry_their_parts() {
    let err = parse_workflow_file(
        "name = \"wf\"\n[[steps]]\nname = \"a\"\nexec = []\n",
        "flows/x.toml",
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        WorkflowFileError {
            file: "flows/x.toml".into(),
            line: 4,
            column: 8,
            field: "steps[0].exec".into(),
            message: "must name a program to run".into(),
        }
    );
    let err = parse_workflow_file("a = [1,\n", "x.toml", None).unwrap_err();
    assert_eq!(err.field, "");
    assert_eq!(
        err.to_string(),
        "x.toml:1:8: invalid TOML: unclosed array, expected `]`"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = parse_workflow_file(
        "name = \"wf\" # héllo wörld\n[[steps]]\nname = \"é\"\nhandler = \"h\"\n",
        "x.toml",
        None,
    )
    .unwrap_err();
    assert_eq!((err.line, err.column), (3, 8));
    assert_eq!(err.field, "steps[0].name");
    let err = parse_workflow_file("name = \"wf\" \u{e9} = 1\n", "x.toml", None).unwrap_err();
    assert_eq!((err.line, err.column), (1, 13), "{err}");
}

#[test]
fn waiting_steps_and_callbacks_parse() {
    let text = r#"
name = "saga"
[[steps]]
name = "cool_off"
sleep = "10m"
[[steps]]
name = "embargo"
sleep_until = "{{ input.embargo_until }}"
[[steps]]
name = "approval"
wait = { signal = "approved", timeout = "72h" }
[[steps]]
name = "forever"
wait = { signal = "go" }
[[steps]]
name = "execute"
exec = ["python3", "submit_job.py"]
complete = "callback"
timeout = "1h"
"#;
    let spec = parse_workflow_file(text, "saga.toml", None).unwrap().spec;
    assert_eq!(spec.steps[0].action, StepAction::Sleep { ms: 600_000 });
    assert_eq!(
        spec.steps[1].action,
        StepAction::SleepUntil {
            at: "{{ input.embargo_until }}".into()
        }
    );
    assert_eq!(
        spec.steps[2].action,
        StepAction::Wait(crate::WaitAction {
            signal: "approved".into(),
            timeout_ms: Some(72 * 3_600_000)
        })
    );
    assert_eq!(
        spec.steps[3].action,
        StepAction::Wait(crate::WaitAction {
            signal: "go".into(),
            timeout_ms: None
        })
    );
    assert_eq!(spec.steps[4].complete, Some(crate::CompleteBy::Callback));
    assert!(spec.steps.iter().take(4).all(|s| s.action.waits()));
    // A compensation cannot wait: it must undo something.
    let mut bad = spec.clone();
    bad.steps[4].compensate = Some(StepAction::Sleep { ms: 1 });
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("compensation must do something"));
}

#[test]
fn schedules_parse_with_their_defaults() {
    let text = r#"name = "digest"
[[steps]]
name = "send"
exec = ["./send.sh"]

[[schedules]]
name = "nightly-digest"
cron = "0 2 * * *"
timezone = "Europe/Paris"
input = { kind = "digest" }
overlap = "skip"
catchup = "all"

[[schedules]]
name = "every-minute"
every = "1m"
"#;
    let file = parse_workflow_file(text, "digest.toml", None).unwrap();
    let [nightly, minute] = file.schedules.as_slice() else {
        panic!("two schedules")
    };
    assert_eq!(nightly.workflow, "digest");
    assert_eq!(
        nightly.recurrence,
        crate::Recurrence::Cron("0 2 * * *".into())
    );
    assert_eq!(nightly.input, serde_json::json!({"kind": "digest"}));
    assert_eq!(
        (nightly.overlap, nightly.catchup),
        (crate::Overlap::Skip, crate::Catchup::All)
    );
    assert_eq!(minute.recurrence, crate::Recurrence::EveryMs(60_000));
    assert_eq!(minute.timezone, "UTC");
    assert_eq!(
        (minute.overlap, minute.catchup),
        (crate::Overlap::Queue, crate::Catchup::Latest)
    );
}

#[test]
fn bad_schedules_name_file_line_column_and_field() {
    let head =
        "name = \"w\"\n[[steps]]\nname = \"a\"\nexec = [\"x\"]\n[[schedules]]\nname = \"s\"\n";
    let cases = [
        ("cron = \"0 2 * *\"\n", "w.toml:7:8: schedules[0].cron: \"0 2 * *\" has 4 fields; write five: minute hour day-of-month month day-of-week"),
        ("cron = \"0 2 * * *\"\ntimezone = \"Mars/Olympus\"\n", "w.toml:8:12: schedules[0].timezone: \"Mars/Olympus\" is not an IANA time zone such as \"Europe/Paris\" or \"UTC\""),
        ("every = \"1m\"\noverlap = \"sometimes\"\n", "w.toml:8:11: schedules[0].overlap: \"sometimes\" is not one of skip, queue or allow"),
        ("every = \"1m\"\ncatchup = \"most\"\n", "w.toml:8:11: schedules[0].catchup: \"most\" is not one of none, latest or all"),
        ("every = \"1m\"\ncron = \"* * * * *\"\n", "w.toml:7:9: schedules[0].every: a schedule takes `cron` or `every`, not both"),
        ("every = \"10ms\"\n", "w.toml:7:9: schedules[0].every: must be between 1s and 366 days"),
    ];
    for (tail, expected) in cases {
        let text = format!("{head}{tail}");
        let err = parse_workflow_file(&text, "w.toml", None).unwrap_err();
        assert_eq!(err.to_string(), expected, "{tail}");
    }
}
