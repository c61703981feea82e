//! `for_each` items with real worker processes: a worker killed in the middle of a
//! fan-out loses no item and repeats only the items it was running, and
//! `max_parallel` holds across workers.
//!
//! Items are `exec` steps that append to a ledger file (`O_APPEND`: the file's
//! order is the order the writes happened in, whichever process made them), so what
//! ran, how often and what overlapped is read from the ledger, never from clocks.
//! Every wait is on an observable condition with a generous budget.

use crate::support::on_both_backends;
use crate::support::{
    alive, eventually, ok, progressing, run_json, Backend, Background, Scratch, TestDb,
};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The most any single wait may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

on_both_backends!(
    a_worker_killed_mid_fan_out_loses_no_item_and_repeats_only_those_in_flight,
    max_parallel_holds_across_two_workers,
);

fn worker(url: &str, scratch: &Scratch, name: &str, pool: &str) -> Background {
    Background::spawn(
        url,
        &["worker", "--pool", pool, "--lease", "3s"],
        scratch,
        name,
    )
}

fn ledger(scratch: &Scratch) -> Vec<Vec<String>> {
    std::fs::read_to_string(scratch.path().join("ledger"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Starts one run of `workflow` with `items` integers as its `items` input.
fn start(url: &str, scratch: &Scratch, file: &str, text: &str, items: usize) -> String {
    let file = scratch.write(file, text);
    let input = json!({"items": (0..items).collect::<Vec<_>>()}).to_string();
    let id = ok(url, &["run", file.to_str().unwrap(), "--input", &input]);
    id.trim().to_string()
}

/// The run's `fan` step and, with it, how many of its items are done.
fn fan_step(url: &str, run: &str) -> (Value, Value) {
    let view = run_json(url, run);
    let fan = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "fan")
        .cloned()
        .unwrap_or_else(|| panic!("no step fan: {view}"));
    (view, fan)
}

/// Waits for the run to end, as long as its items keep getting done.
fn wait_run_end(url: &str, run: &str) -> Value {
    let mut last = Value::Null;
    progressing(
        "the fan-out run to end",
        Duration::from_millis(250),
        PATIENCE,
        || {
            let (view, fan) = fan_step(url, run);
            let done = ["completed", "failed", "stopped"]
                .iter()
                .map(|k| fan["items"][k].as_u64().unwrap_or(0))
                .sum::<u64>();
            let ended =
                ["completed", "failed", "cancelled"].contains(&view["status"].as_str().unwrap());
            last = view;
            (done as usize, ended)
        },
    );
    last
}

// ---------------------------------------------------------------------------------
// kill -9 in the middle of a 300-item fan-out

/// One item: its index in the ledger, then a short nap. While the file `hold`
/// exists, a new attempt says so in `held/PID` and waits for `hold` to go, so the
/// kill lands while items run.
const ITEM: &str = r#"
i=${STEPWISE_STEP##*[}
i=${i%]}
echo "$i $STEPWISE_ATTEMPT" >> ledger
if [ -f hold ]; then
    echo "$i $STEPWISE_ATTEMPT" > "held/.$$"
    mv "held/.$$" "held/$$"
    while [ -f hold ]; do sleep 0.05; done
fi
sleep 0.05
cat > /dev/null
echo "{\"i\": $i}"
"#;

const FAN_OUT: &str = r#"
name = "fan-out"
[defaults]
max_attempts = 3
[[steps]]
name = "fan"
for_each = "input.items"
exec = ["sh", "item.sh"]
"#;

/// The attempts waiting in `held/`: PID → item index.
fn held(scratch: &Scratch) -> BTreeMap<i32, u32> {
    let mut held = BTreeMap::new();
    for entry in std::fs::read_dir(scratch.path().join("held")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let index = text.split_whitespace().next().unwrap().parse().unwrap();
        held.insert(pid, index);
    }
    held
}

/// The `running_steps` of the worker rows of process `pid` (named `host:pid`).
fn running_of(url: &str, pid: i32) -> Vec<u64> {
    let all: Vec<Value> = serde_json::from_str(&ok(url, &["workers", "--json"])).unwrap();
    let suffix = format!(":{pid}");
    all.iter()
        .filter(|w| w["name"].as_str().is_some_and(|n| n.ends_with(&suffix)))
        .map(|w| w["running_steps"].as_u64().unwrap())
        .collect()
}

fn a_worker_killed_mid_fan_out_loses_no_item_and_repeats_only_those_in_flight(backend: Backend) {
    const ITEMS: usize = 300;
    const CONSUMERS: usize = 4;
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    scratch.write("item.sh", ITEM);
    std::fs::create_dir(scratch.path().join("held")).unwrap();
    let run = start(url, &scratch, "fan-out.toml", FAN_OUT, ITEMS);
    let pool = format!("*={CONSUMERS}");
    let mut first = worker(url, &scratch, "first", &pool);
    eventually("some items in the ledger", PATIENCE, || {
        (ledger(&scratch).len() >= 60).then_some(())
    });
    // From now on new attempts wait: once every consumer holds one and the
    // database shows exactly those running, the kill lands mid-item.
    scratch.write("hold", "");
    let held = eventually(
        "every consumer holding an item, nothing else in flight",
        PATIENCE,
        || {
            let held = held(&scratch);
            let running = running_of(url, first.pid());
            (held.len() == CONSUMERS && running == [CONSUMERS as u64]).then_some(held)
        },
    );
    first.signal(Signal::SIGKILL);
    first.child.wait().unwrap();
    let at_kill = ledger(&scratch).len();
    assert!(
        at_kill < ITEMS,
        "the kill must land mid-way ({at_kill} ledger lines)"
    );
    // Each supervisor saw its worker die and killed its item (which would otherwise
    // wait for `hold` for ever).
    let deadline = Instant::now() + PATIENCE;
    while held.keys().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "items of the killed worker still alive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(scratch.path().join("hold")).unwrap();

    let mut second = worker(url, &scratch, "second", &pool);
    let view = wait_run_end(url, &run);
    second.signal(Signal::SIGTERM);
    let status = second.wait_exit(PATIENCE).expect("the second worker exits");
    assert!(status.success(), "second worker: {status:?}");
    assert_eq!(view["status"], "completed", "{view}");

    // Every item ran; the only ones that ran twice were in flight at the kill, each
    // once more as its next attempt.
    let mut attempts = BTreeMap::<u32, Vec<u32>>::new();
    for line in ledger(&scratch) {
        assert_eq!(line.len(), 2, "ledger line {line:?}");
        attempts
            .entry(line[0].parse().unwrap())
            .or_default()
            .push(line[1].parse().unwrap());
    }
    let indexes: BTreeSet<u32> = attempts.keys().copied().collect();
    assert_eq!(indexes, (0..ITEMS as u32).collect(), "every item, no other");
    let twice: BTreeSet<u32> = attempts
        .iter()
        .filter(|(_, a)| a.len() > 1)
        .map(|(i, _)| *i)
        .collect();
    let in_flight: BTreeSet<u32> = held.values().copied().collect();
    assert!(twice.len() <= CONSUMERS, "repeated items {twice:?}");
    assert_eq!(
        twice, in_flight,
        "repeated items vs items in flight at the kill"
    );
    for i in &twice {
        assert_eq!(attempts[i], [1, 2], "item {i}'s attempts");
    }

    // The joined output: 300 outputs, in item order.
    let (_, fan) = fan_step(url, &run);
    let output = fan["output"].as_array().expect("an array output");
    assert_eq!(output.len(), ITEMS);
    for (i, o) in output.iter().enumerate() {
        assert_eq!(o, &json!({"i": i}), "output {i}");
    }
    assert_eq!(fan["items"]["completed"], ITEMS as u64, "{fan}");
}

// ---------------------------------------------------------------------------------
// max_parallel across two workers

/// One item between a `start` and an `end` line; while `hold` exists it waits
/// between them.
const BOUNDED_ITEM: &str = r#"
i=${STEPWISE_STEP##*[}
i=${i%]}
echo "start $i" >> ledger
while [ -f hold ]; do sleep 0.05; done
sleep 0.02
echo "end $i" >> ledger
cat > /dev/null
echo "{\"i\": $i}"
"#;

const BOUNDED: &str = r#"
name = "bounded"
[[steps]]
name = "fan"
for_each = "input.items"
exec = ["sh", "item.sh"]
max_parallel = 3
"#;

fn max_parallel_holds_across_two_workers(backend: Backend) {
    const ITEMS: usize = 40;
    const MAX_PARALLEL: usize = 3;
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let url = db.url.as_str();
    scratch.write("item.sh", BOUNDED_ITEM);
    scratch.write("hold", "");
    // Two consumers each: three items running at once must span both workers.
    let mut workers = [
        worker(url, &scratch, "one", "*=2"),
        worker(url, &scratch, "two", "*=2"),
    ];
    let run = start(url, &scratch, "bounded.toml", BOUNDED, ITEMS);
    let started = |s: &Scratch| ledger(s).iter().filter(|l| l[0] == "start").count();
    eventually("max_parallel items started", PATIENCE, || {
        (started(&scratch) >= MAX_PARALLEL).then_some(())
    });
    // Held at the bound: the store counts exactly that many running, on two workers.
    let shown: Value =
        serde_json::from_str(&ok(url, &["runs", "show", &run, "--items", "--json"])).unwrap();
    let fan = &shown["steps"][0];
    assert_eq!(fan["items"]["running"], MAX_PARALLEL as u64, "{fan}");
    let on: BTreeSet<&str> = fan["item_steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "running")
        .map(|i| i["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(on.len(), 2, "the running items are on both workers: {fan}");
    let why = ok(url, &["runs", "explain", &run]);
    assert!(
        why.contains("fan  running    0 of 40 items done, 3 running, at most 3 at once"),
        "{why}"
    );
    std::fs::remove_file(scratch.path().join("hold")).unwrap();
    let view = wait_run_end(url, &run);
    assert_eq!(view["status"], "completed", "{view}");
    for w in &mut workers {
        w.signal(Signal::SIGTERM);
        w.wait_exit(PATIENCE).expect("a worker exits");
    }

    // Read in the ledger's own order: never more than max_parallel between a start
    // and its end, and every item once.
    let mut running = BTreeSet::new();
    let mut most = 0;
    let mut seen = BTreeSet::new();
    for line in ledger(&scratch) {
        let i: u32 = line[1].parse().unwrap();
        match line[0].as_str() {
            "start" => {
                assert!(seen.insert(i), "item {i} started twice");
                running.insert(i);
            }
            "end" => assert!(running.remove(&i), "item {i} ended without starting"),
            other => panic!("ledger line {other}"),
        }
        most = most.max(running.len());
        assert!(
            running.len() <= MAX_PARALLEL,
            "{} items running at once: {running:?}",
            running.len()
        );
    }
    assert_eq!(most, MAX_PARALLEL);
    assert_eq!(seen.len(), ITEMS);
}

// ---------------------------------------------------------------------------------
// What `runs show`, `runs list --parent` and `runs explain` say about items and
// children (SQLite: the store's answers are the same on both backends).

fn example(path: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path)
        .to_str()
        .unwrap()
        .to_string()
}

fn run_local(url: &str, file: &str, input: &str) -> String {
    ok(url, &["run", &example(file), "--local", "--input", input])
        .trim()
        .to_string()
}

#[test]
fn runs_show_counts_items_on_one_line_and_lists_them_when_asked() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    let input =
        r#"{"deposition": "D-17", "hooks": ["checksum", "schema", "broken", "virus-scan"]}"#;
    let run = run_local(url, "validation/workflow.toml", input);
    let text = ok(url, &["runs", "show", &run]);
    let hooks: Vec<&str> = text.lines().filter(|l| l.starts_with("hooks")).collect();
    assert_eq!(hooks.len(), 1, "one line for the expanded step:\n{text}");
    assert!(
        hooks[0].contains("completed") && hooks[0].contains("4/4 items (1 failed)"),
        "{text}"
    );
    let listed = ok(url, &["runs", "show", &run, "--items"]);
    for i in 0..4 {
        assert!(listed.contains(&format!("  hooks[{i}]")), "{listed}");
    }
    assert!(listed.contains("hook broken cannot run"), "{listed}");
    // JSON: the counts always, the items only when asked.
    let plain = run_json(url, &run);
    let step = &plain["steps"][1];
    assert_eq!(step["items"]["total"], 4);
    assert_eq!(step["items"]["failed"], 1);
    assert!(step.get("item_steps").is_none(), "{step}");
    let full: Value =
        serde_json::from_str(&ok(url, &["runs", "show", &run, "--items", "--json"])).unwrap();
    let items = full["steps"][1]["item_steps"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hooks[0]", "hooks[1]", "hooks[2]", "hooks[3]"]);
    // One item's logs, by its name.
    let logs = crate::support::stepwise(url, &["logs", &run, "hooks[2]"]);
    assert!(logs.status.success());
    assert!(String::from_utf8_lossy(&logs.stdout).contains("hook broken cannot run"));
    let missing = crate::support::stepwise(url, &["logs", &run, "hooks[9]"]);
    assert_eq!(missing.status.code(), Some(4));
}

#[test]
fn child_runs_name_their_parent_and_a_parent_lists_its_children() {
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let url = db.url.as_str();
    ok(url, &["apply", &example("ingestion/one.toml")]);
    let input = r#"{"batch": "b-1", "documents": ["a.txt", "b.txt", "c.txt"]}"#;
    let parent = run_local(url, "ingestion/batch.toml", input);
    let text = ok(url, &["runs", "show", &parent]);
    assert!(text.contains("children  3: "), "{text}");
    assert!(text.contains("3/3 items"), "{text}");
    let children: Vec<Value> =
        serde_json::from_str(&ok(url, &["runs", "list", "--parent", &parent, "--json"])).unwrap();
    assert_eq!(children.len(), 3);
    let mut steps: Vec<&str> = children
        .iter()
        .map(|c| {
            assert_eq!(c["parent_run"], parent.as_str());
            c["parent_step"].as_str().unwrap()
        })
        .collect();
    steps.sort();
    assert_eq!(steps, ["ingest[0]", "ingest[1]", "ingest[2]"]);
    let child = children[0]["id"].as_str().unwrap();
    let shown = ok(url, &["runs", "show", child]);
    assert!(
        shown.contains(&format!("parent    {parent} (step ingest[")),
        "{shown}"
    );
    let everything = crate::support::runs_json(url);
    assert_eq!(
        everything.len(),
        4,
        "runs list without --parent lists them all"
    );
    let bad = crate::support::stepwise(url, &["runs", "list", "--parent", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a run id"));
}
