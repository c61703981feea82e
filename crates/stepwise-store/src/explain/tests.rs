use super::*;

fn view(kind: &str, signal: Option<&str>, attempt: Option<u32>) -> WaitingView {
    WaitingView {
        kind: kind.into(),
        signal: signal.map(str::to_string),
        until: Some("2030-01-02T03:04:05Z".parse().unwrap()),
        attempt,
        child: None,
    }
}

#[test]
fn each_kind_of_wait_is_said_as_the_contract_words_it() {
    assert_eq!(
        describe_waiting(&view("sleep", None, None)),
        "sleeping until 2030-01-02T03:04:05+00:00"
    );
    assert_eq!(
        describe_waiting(&view("signal", Some("approved"), None)),
        "waiting for signal approved (until 2030-01-02T03:04:05+00:00)"
    );
    assert_eq!(
        describe_waiting(&view("callback", None, Some(2))),
        "waiting for the callback of attempt 2 (until 2030-01-02T03:04:05+00:00)"
    );
    let forever = WaitingView {
        until: None,
        ..view("signal", Some("approved"), None)
    };
    assert_eq!(describe_waiting(&forever), "waiting for signal approved");
}

#[test]
fn a_rate_limited_step_says_its_key_and_when() {
    let until = "2030-01-02T03:04:05Z".parse().unwrap();
    let spaced = Reason::RateLimited {
        key: "openai:acme".into(),
        until,
        paused: false,
    };
    assert_eq!(
        spaced.to_string(),
        "rate limited on openai:acme until 2030-01-02T03:04:05+00:00"
    );
    let paused = Reason::RateLimited {
        key: "api".into(),
        until,
        paused: true,
    };
    assert_eq!(
        paused.to_string(),
        "rate limited on api until 2030-01-02T03:04:05+00:00; the key is paused \
         (stepwise limits resume api)"
    );
}

#[test]
fn an_expanded_step_says_how_far_its_items_are() {
    let items = Reason::Items {
        total: 120,
        done: 37,
        failed: 2,
        running: 4,
        waiting: 0,
        pending: 79,
        max_parallel: Some(4),
        pending_because: None,
    };
    assert_eq!(
        items.to_string(),
        "37 of 120 items done (2 failed), 4 running, at most 4 at once"
    );
    let stuck = Reason::Items {
        total: 3,
        done: 0,
        failed: 0,
        running: 0,
        waiting: 0,
        pending: 3,
        max_parallel: None,
        pending_because: Some("queue \"hooks\" is paused".into()),
    };
    assert_eq!(
        stuck.to_string(),
        "0 of 3 items done, 0 running; its items wait: queue \"hooks\" is paused"
    );
}
