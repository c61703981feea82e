//! Workflows, run creation, listing, schema and the clock.

use crate::harness::Harness;
use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use stepwise_core::{EventKind, RunId, RunStatus, SpecError};
use stepwise_store::*;
use tokio::sync::Barrier;

/// Creates racing on one idempotency key make exactly one run.
pub async fn racing_idempotent_creates_make_one_run(store: Arc<dyn Store>) {
    const RACERS: usize = 8;
    register(&*store, &one_step("idem")).await;
    register(&*store, &one_step("idem-other")).await;
    let mut winners = Vec::new();
    for round in 0..5 {
        let key = format!("order-{round}");
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let store = store.clone();
            let barrier = barrier.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let run = NewRun::new("idem", json!({ "racer": i })).idempotency_key(key);
                barrier.wait().await;
                let created = store
                    .create_runs(RunBatch {
                        group: None,
                        runs: vec![run],
                    })
                    .await
                    .expect("create");
                assert_eq!(created.len(), 1);
                created[0]
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        assert_eq!(
            answers.iter().filter(|a| a.created).count(),
            1,
            "round {round}"
        );
        let ids: HashSet<RunId> = answers.iter().map(|a| a.id).collect();
        assert_eq!(ids.len(), 1, "every racer gets the one run's id");
        let id = answers[0].id;
        let view = get_run(&*store, id).await;
        assert_eq!(view.idempotency_key.as_deref(), Some(key.as_str()));
        assert_eq!(view.steps.len(), 1, "one set of steps");
        winners.push(id);
    }
    let listed: Vec<RunId> = runs_of(&*store, "idem")
        .await
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed.len(), 5);
    assert_eq!(
        listed.iter().collect::<HashSet<_>>(),
        winners.iter().collect::<HashSet<_>>()
    );

    // The key is per workflow; a repeat inside one batch is answered with the first.
    let other = store
        .create_runs(RunBatch {
            group: None,
            runs: vec![NewRun::new("idem-other", json!(1)).idempotency_key("order-0")],
        })
        .await
        .unwrap();
    assert!(other[0].created);
    assert!(!winners.contains(&other[0].id));
    let twice = store
        .create_runs(RunBatch {
            group: None,
            runs: vec![
                NewRun::new("idem", json!(1)).idempotency_key("twice"),
                NewRun::new("idem", json!(2)).idempotency_key("twice"),
                NewRun::new("idem", json!(3)).idempotency_key("order-1"),
            ],
        })
        .await
        .unwrap();
    assert!(twice[0].created);
    assert!(!twice[1].created);
    assert_eq!(twice[1].id, twice[0].id);
    assert_eq!(
        twice[2],
        CreatedRun {
            id: winners[1],
            created: false
        }
    );
    assert_eq!(runs_of(&*store, "idem").await.len(), 6);

    let w = worker(&*store, secs(600)).await;
    assert_eq!(
        drain(&*store, w).await.len(),
        7,
        "one step per run, no more"
    );
    for id in winners {
        let events = run_events(&*store, id, EventKind::RunCompleted).await;
        assert_eq!(count(&events, EventKind::RunCreated), 1);
    }
}

/// Same spec, same version; a changed spec, the next; runs use the latest.
pub async fn workflows_are_versioned_by_content(store: Arc<dyn Store>) {
    let v1 = one_step("versioned");
    let first = register(&*store, &v1).await;
    assert_eq!(
        first,
        WorkflowVersion {
            name: "versioned".into(),
            version: 1,
            changed: true
        }
    );
    let same = register(&*store, &v1).await;
    assert_eq!(
        same,
        WorkflowVersion {
            name: "versioned".into(),
            version: 1,
            changed: false
        }
    );
    let old_run = start(&*store, "versioned", 1).await[0];

    let v2 = workflow("versioned", vec![step("first"), step("second")]);
    let second = register(&*store, &v2).await;
    assert_eq!(
        second,
        WorkflowVersion {
            name: "versioned".into(),
            version: 2,
            changed: true
        }
    );
    assert_eq!(register(&*store, &v2).await.version, 2);
    let new_run = start(&*store, "versioned", 1).await[0];

    let latest = store
        .get_workflow("versioned", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((latest.version, &latest.spec), (2, &v2));
    let older = store
        .get_workflow("versioned", Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((older.version, &older.spec), (1, &v1));
    assert!(store
        .get_workflow("versioned", Some(3))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_workflow("unheard-of", None)
        .await
        .unwrap()
        .is_none());

    register(&*store, &one_step("another")).await;
    let listed = store.list_workflows().await.unwrap();
    let mut names: Vec<(&str, i32)> = listed
        .iter()
        .map(|w| (w.name.as_str(), w.version))
        .collect();
    names.sort();
    assert_eq!(names, vec![("another", 1), ("versioned", 2)]);

    let old = get_run(&*store, old_run).await;
    assert_eq!((old.workflow_version, old.steps.len()), (1, 1));
    let new = get_run(&*store, new_run).await;
    assert_eq!((new.workflow_version, new.steps.len()), (2, 2));
    let w = worker(&*store, secs(600)).await;
    let claimed = claim(&*store, w, 10).await;
    let versions: HashSet<(RunId, i32)> = claimed
        .iter()
        .map(|c| (c.run_id, c.workflow_version))
        .collect();
    assert_eq!(versions, [(old_run, 1), (new_run, 2)].into_iter().collect());

    let broken = workflow("versioned", vec![after("x", &["nope"])]);
    let err = store.register_workflow(&broken).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidSpec(SpecError::UnknownDependency { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        store
            .get_workflow("versioned", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

/// Runs of a workflow never registered are refused with their own error.
pub async fn unknown_workflows_are_refused(store: Arc<dyn Store>) {
    let err = store
        .create_runs(RunBatch {
            group: None,
            runs: vec![NewRun::new("ghost", json!({}))],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownWorkflow(ref w) if w == "ghost"),
        "{err:?}"
    );
    assert!(store
        .list_runs(RunFilter::default())
        .await
        .unwrap()
        .runs
        .is_empty());
    assert!(store.get_run(RunId::new()).await.unwrap().is_none());
    assert!(store.get_group("ghost").await.unwrap().is_none());
}

/// A group name is taken once.
pub async fn group_names_are_unique(store: Arc<dyn Store>) {
    register(&*store, &one_step("grp")).await;
    let batch = |n: usize| RunBatch {
        group: Some("nightly".into()),
        runs: (0..n).map(|i| NewRun::new("grp", json!(i))).collect(),
    };
    create(&*store, batch(2)).await;
    let err = store.create_runs(batch(3)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::GroupExists(ref g) if g == "nightly"),
        "{err:?}"
    );
    let members = store
        .list_runs(RunFilter {
            group: Some("nightly".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap()
        .runs;
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .all(|r| r.group.as_deref() == Some("nightly")));
    let view = store.get_group("nightly").await.unwrap().unwrap();
    assert_eq!((view.total, view.remaining), (2, 2));
    assert_eq!(view.counts.get("running").copied(), Some(2));

    // An empty group is complete at once.
    create(
        &*store,
        RunBatch {
            group: Some("empty".into()),
            runs: vec![],
        },
    )
    .await;
    let empty = store.get_group("empty").await.unwrap().unwrap();
    assert_eq!((empty.total, empty.remaining), (0, 0));
    assert_eq!(
        store.list_group_names(10).await.unwrap(),
        ["empty", "nightly"],
        "newest first"
    );
    assert_eq!(store.list_group_names(1).await.unwrap(), ["empty"]);
    assert!(empty.completed_at.is_some());
    let events = events_when(&*store, None, "group.completed", |e| {
        count(e, EventKind::GroupCompleted) > 0
    })
    .await;
    assert_eq!(count(&events, EventKind::GroupCompleted), 1);
    assert_eq!(
        events
            .iter()
            .find(|e| e.kind == EventKind::GroupCompleted)
            .unwrap()
            .group
            .as_deref(),
        Some("empty")
    );
}

/// Runs are listed newest first, in pages that neither skip nor repeat.
pub async fn list_runs_pages_newest_first(store: Arc<dyn Store>) {
    register(&*store, &one_step("paged")).await;
    register(&*store, &one_step("noise")).await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.extend(start(&*store, "paged", 5).await);
        start(&*store, "noise", 1).await;
    }
    let newest_first: Vec<RunId> = created.iter().rev().copied().collect();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_runs(RunFilter {
                workflow: Some("paged".into()),
                limit: Some(10),
                cursor: cursor.clone(),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert!(page
            .runs
            .iter()
            .all(|r| r.workflow == "paged" && r.steps.is_empty()));
        pages.push(page.runs.iter().map(|r| r.id).collect::<Vec<_>>());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let sizes: Vec<usize> = pages.iter().map(|p| p.len()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(pages.concat(), newest_first);
    let everything = store.list_runs(RunFilter::default()).await.unwrap();
    assert_eq!(everything.runs.len(), 30);
    assert!(everything.next_cursor.is_none());

    // Status filter.
    let w = worker(&*store, secs(600)).await;
    let some = claim(&*store, w, 3).await;
    complete_all(&*store, &some).await;
    let done = store
        .list_runs(RunFilter {
            status: Some(RunStatus::Completed),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let done: HashSet<RunId> = done.runs.iter().map(|r| r.id).collect();
    assert_eq!(done, some.iter().map(|c| c.run_id).collect());
    let running = store
        .list_runs(RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.runs.len(), 27);

    let err = store
        .list_runs(RunFilter {
            cursor: Some("not a cursor".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor(_)), "{err:?}");
}

/// An empty database fails the schema check; concurrent migrations both succeed.
pub async fn schema_is_checked_and_migrations_are_idempotent(h: Arc<Harness>) {
    assert_eq!(h.store.backend(), h.backend());
    h.store
        .check_schema()
        .await
        .expect("migrated schema is current");
    assert_eq!(
        h.store.migrate().await.unwrap(),
        SCHEMA_VERSION,
        "migrate twice"
    );

    let fresh = h.new_database().await;
    let one = h.connect(&fresh).await;
    let two = h.connect(&fresh).await;
    match one.check_schema().await {
        Err(StoreError::SchemaMismatch {
            database: 0,
            expected,
        }) => {
            assert_eq!(expected, SCHEMA_VERSION)
        }
        other => panic!("an empty database is at version 0: {other:?}"),
    }
    let (a, b) = tokio::join!(one.migrate(), two.migrate());
    assert_eq!(a.unwrap(), SCHEMA_VERSION);
    assert_eq!(b.unwrap(), SCHEMA_VERSION);
    one.check_schema().await.unwrap();
    two.check_schema().await.unwrap();

    register(&*one, &one_step("shared")).await;
    let run = start(&*one, "shared", 1).await[0];
    assert_eq!(get_run(&*two, run).await.workflow, "shared");
    assert!(
        h.store.get_run(run).await.unwrap().is_none(),
        "databases are apart"
    );
}

/// The database clock moves for every handle on the database, and only there.
pub async fn the_clock_is_shared_by_every_handle(h: Arc<Harness>) {
    let other = h.connect(&h.primary).await;
    let before = h.store.now().await.unwrap();
    other.advance_clock(secs(3600)).await.unwrap();
    let after = h.store.now().await.unwrap();
    let moved = after - before;
    assert!(
        moved >= chrono::Duration::seconds(3600) && moved < chrono::Duration::seconds(3700),
        "moved {moved}"
    );

    // Leases are judged by that clock, whichever handle asks.
    register(&*h.store, &one_step("clocked")).await;
    start(&*h.store, "clocked", 1).await;
    let a = worker(&*h.store, secs(30)).await;
    assert_eq!(claim(&*h.store, a, 1).await.len(), 1);
    let b = worker(&*other, secs(3600)).await;
    assert!(other.reap(b).await.unwrap().workers.is_empty());
    h.store.advance_clock(secs(31)).await.unwrap();
    assert_eq!(other.reap(b).await.unwrap().workers, vec![a]);

    let elsewhere = h.connect(&h.new_database().await).await;
    elsewhere.migrate().await.unwrap();
    let there = elsewhere.now().await.unwrap();
    let here = h.store.now().await.unwrap();
    assert!(
        here - there > chrono::Duration::seconds(3600),
        "another database keeps its own clock"
    );
}
