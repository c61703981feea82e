//! What a claimed step is handed to run with, and what its attempts leave behind.

use crate::support::*;
use serde_json::json;
use std::sync::Arc;
use stepwise_store::*;

/// A join step is handed the outputs of exactly its own dependencies.
pub async fn claims_carry_the_outputs_of_their_dependencies(store: Arc<dyn Store>) {
    let spec = workflow(
        "ctx",
        vec![
            root("a"),
            root("b"),
            after("c", &["a", "b"]),
            after("d", &["c"]),
        ],
    );
    register(&*store, &spec).await;
    start(&*store, "ctx", 1).await;
    let me = worker(&*store, secs(60)).await;
    let roots = claim(&*store, me, 10).await;
    assert_eq!(roots.len(), 2);
    for r in &roots {
        assert!(
            r.dependency_outputs.is_empty(),
            "{} has no dependencies",
            r.step
        );
    }
    let outcomes: Vec<StepSuccess> = roots
        .iter()
        .map(|c| StepSuccess {
            lease: c.lease,
            output: json!({ "from": c.step }),
            log: None,
        })
        .collect();
    store.complete_steps(&outcomes).await.unwrap();
    let join = claim(&*store, me, 10).await;
    assert_eq!(join.len(), 1);
    assert_eq!(join[0].step, "c");
    let expected = json!({ "a": { "from": "a" }, "b": { "from": "b" } });
    assert_eq!(json!(join[0].dependency_outputs), expected);
    store
        .complete_steps(&[StepSuccess {
            lease: join[0].lease,
            output: json!("plain text"),
            log: None,
        }])
        .await
        .unwrap();
    let last = claim(&*store, me, 10).await;
    assert_eq!(last.len(), 1);
    assert_eq!(
        json!(last[0].dependency_outputs),
        json!({ "c": "plain text" })
    );
}

/// Every finished attempt keeps its own log; one attempt can be asked for alone.
pub async fn attempt_logs_are_kept_per_attempt(store: Arc<dyn Store>) {
    let spec = workflow("logs", vec![retrying(step("only"), 3, secs(1))]);
    register(&*store, &spec).await;
    let run = start(&*store, "logs", 1).await[0];
    let me = worker(&*store, secs(60)).await;
    let first = claim(&*store, me, 1).await;
    fail(&*store, &first[0], true, "boom").await;
    store.advance_clock(secs(2)).await.unwrap();
    let second = claim(&*store, me, 1).await;
    assert_eq!(second.len(), 1);
    store
        .complete_steps(&[StepSuccess {
            lease: second[0].lease,
            output: json!(1),
            log: Some("second attempt\n".into()),
        }])
        .await
        .unwrap();
    let logs = store.attempt_logs(run, "only", None).await.unwrap();
    let seen: Vec<(u32, &str, Option<&str>)> = logs
        .iter()
        .map(|l| (l.number, l.outcome.as_str(), l.log.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "failed", Some("log: boom")),
            (2, "completed", Some("second attempt\n"))
        ]
    );
    let only = store.attempt_logs(run, "only", Some(2)).await.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].number, 2);
    assert!(store
        .attempt_logs(run, "nope", None)
        .await
        .unwrap()
        .is_empty());
}

/// The queues of registered workflows are listed once each.
pub async fn queues_of_registered_workflows_are_listed(store: Arc<dyn Store>) {
    let mut parse = step("parse");
    parse.queue = Some("parse".into());
    register(&*store, &workflow("q1", vec![parse, step("store")])).await;
    register(&*store, &workflow("q2", vec![step("other")])).await;
    let names: Vec<String> = store
        .list_queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, vec!["default".to_string(), "parse".to_string()]);
}
