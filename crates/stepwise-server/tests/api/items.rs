//! The items of an expanded `for_each` step through the API: counted in the run,
//! listed a page at a time, and every error the route can answer (the expansion
//! itself is proved on both backends by the conformance suite).

use super::{api, assert_error, Api};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use stepwise_core::{ForEach, RunId, StepSpec, WorkflowSpec};
use stepwise_store::{ClaimRequest, NewRun, RunBatch, WorkerRegistration};

/// A run of `fan`, whose one step `each` has an item per element of the input's
/// `items`, expanded: a claim expands a `for_each` step that has no dependency.
async fn expanded_run(api: &Api, items: usize) -> RunId {
    let mut each = StepSpec::handler("each", "noop");
    each.for_each = Some(ForEach {
        path: "input.items".into(),
        max_parallel: Some(2),
        max_items: None,
        on_item_failure: Default::default(),
    });
    let spec = WorkflowSpec {
        name: "fan".into(),
        defaults: Default::default(),
        run: Default::default(),
        steps: vec![each],
    };
    api.store.register_workflow(&spec).await.unwrap();
    let input = json!({"items": (0..items).collect::<Vec<_>>()});
    let run = api
        .store
        .create_runs(RunBatch {
            group: None,
            runs: vec![NewRun::new("fan", input)],
        })
        .await
        .unwrap()[0]
        .id;
    let worker = api
        .store
        .register_worker(&WorkerRegistration {
            name: "api-test".into(),
            queues: vec!["default".into()],
            lease: Duration::from_secs(600),
        })
        .await
        .unwrap()
        .id;
    let claim = ClaimRequest {
        worker,
        queues: vec!["default".into()],
        limit: 10,
    };
    // The claim that finds the step expands it; a second one may be needed to see
    // the items it made claimable.
    for _ in 0..2 {
        api.store.claim_steps(&claim).await.unwrap();
        let (_, shown) = api.get(&format!("/v1/runs/{run}")).await;
        if shown["steps"][0]["items"]["total"] == json!(items) {
            return run;
        }
    }
    panic!("the for_each step did not expand");
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_run_counts_its_items_and_the_items_route_pages_them() {
    let api = api().await;
    let run = expanded_run(&api, 5).await;
    let (status, shown) = api.get(&format!("/v1/runs/{run}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let steps = shown["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "items are counted, not listed: {shown}");
    let counts = &steps[0]["items"];
    assert_eq!(counts["total"], 5, "{counts}");
    // max_parallel 2: two claimed by the test's worker, three waiting for a place.
    assert_eq!(counts["running"], 2, "{counts}");
    assert_eq!(counts["pending"], 3, "{counts}");

    let uri = format!("/v1/runs/{run}/steps/each/items");
    let (status, first) = api.get(&format!("{uri}?limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(names(&first), ["each[0]", "each[1]"]);
    assert_eq!(first["next"], 2);
    assert_eq!(first["counts"], *counts);
    assert_eq!(first["items"][0]["status"], "running");
    let (_, last) = api.get(&format!("{uri}?from=4&limit=2")).await;
    assert_eq!(names(&last), ["each[4]"]);
    assert_eq!(last["next"], Value::Null);
    let (_, beyond) = api.get(&format!("{uri}?from=9")).await;
    assert_eq!(names(&beyond), Vec::<String>::new());
    // Default page: everything here (100 at most).
    let (_, all) = api.get(&uri).await;
    assert_eq!(names(&all).len(), 5);
    api.finish().await;
}

#[tokio::test]
async fn the_items_route_refuses_what_it_cannot_list() {
    let api = api().await;
    let run = expanded_run(&api, 3).await;
    let (status, body) = api
        .get(&format!("/v1/runs/{run}/steps/nothing/items"))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no for_each step"));
    let unknown = "01890000-0000-7000-8000-000000000000";
    let (status, body) = api
        .get(&format!("/v1/runs/{unknown}/steps/each/items"))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api.get("/v1/runs/nope/steps/each/items").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    // An item's attempts and logs are its own, although the run does not list it.
    let (status, body) = api
        .get(&format!("/v1/runs/{run}/steps/each%5B0%5D/logs"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .get(&format!("/v1/runs/{run}/steps/each%5B7%5D/logs"))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let uri = format!("/v1/runs/{run}/steps/each/items");
    for query in [
        "limit=0",
        "limit=1001",
        "from=-1",
        "from=x",
        "from=2147483648",
        "bogus=1",
    ] {
        let (status, body) = api.get(&format!("{uri}?{query}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    api.finish().await;
}

#[tokio::test]
async fn runs_are_listed_by_parent() {
    let api = api().await;
    let run = expanded_run(&api, 1).await;
    // A run without children has an empty page; a bad id is refused.
    let (status, page) = api.get(&format!("/v1/runs?parent={run}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["runs"], json!([]));
    let (status, body) = api.get("/v1/runs?parent=nope").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    api.finish().await;
}
