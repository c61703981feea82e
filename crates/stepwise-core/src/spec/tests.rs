use super::*;

fn spec(steps: Vec<StepSpec>) -> WorkflowSpec {
    WorkflowSpec {
        name: "wf".into(),
        defaults: StepDefaults::default(),
        run: RunPolicy::default(),
        steps,
    }
}

fn after(name: &str, deps: &[&str]) -> StepSpec {
    let mut s = StepSpec::handler(name, "h");
    s.after = Some(deps.iter().map(|d| d.to_string()).collect());
    s
}

#[test]
fn steps_without_after_form_a_pipeline() {
    let plan = spec(vec![
        StepSpec::handler("a", "h"),
        StepSpec::handler("b", "h"),
        StepSpec::handler("c", "h"),
    ])
    .plan()
    .unwrap();
    assert_eq!(plan[0].dependencies, Vec::<usize>::new());
    assert_eq!(plan[1].dependencies, vec![0]);
    assert_eq!(plan[2].dependencies, vec![1]);
    assert_eq!(plan[0].dependents, vec![1]);
    assert_eq!(plan[2].queue, DEFAULT_QUEUE);
}

#[test]
fn a_diamond_is_wired_both_ways() {
    let plan = spec(vec![
        after("a", &[]),
        after("b", &["a"]),
        after("c", &["a"]),
        after("d", &["b", "c", "b"]),
    ])
    .plan()
    .unwrap();
    assert_eq!(plan[3].dependencies, vec![1, 2]);
    assert_eq!(plan[0].dependents, vec![1, 2]);
}

#[test]
fn bad_graphs_are_refused_with_the_step_named() {
    assert_eq!(
        spec(vec![after("a", &[]), after("a", &[])]).validate(),
        Err(SpecError::DuplicateStep("a".into()))
    );
    assert_eq!(
        spec(vec![after("a", &["zz"])]).validate(),
        Err(SpecError::UnknownDependency {
            step: "a".into(),
            dependency: "zz".into()
        })
    );
    let err = spec(vec![
        after("a", &["c"]),
        after("b", &["a"]),
        after("c", &["b"]),
    ])
    .validate()
    .unwrap_err();
    assert!(
        matches!(err, SpecError::Cycle(ref c) if c.len() == 4),
        "{err:?}"
    );
    assert!(matches!(
        spec(vec![after("a", &["a"])]).validate(),
        Err(SpecError::Cycle(_))
    ));
    assert_eq!(
        spec(vec![]).validate(),
        Err(SpecError::NoSteps("wf".into()))
    );
    assert_eq!(
        spec(vec![after("bad name", &[])]).validate(),
        Err(SpecError::InvalidName("bad name".into()))
    );
}

#[test]
fn bad_policies_are_refused() {
    let mut s = StepSpec::handler("a", "h");
    s.max_attempts = Some(0);
    assert!(matches!(
        spec(vec![s]).validate(),
        Err(SpecError::InvalidField {
            field: "max_attempts",
            ..
        })
    ));
    let mut s = StepSpec::handler("a", "h");
    s.backoff = Some(Backoff {
        initial: Duration::from_secs(1),
        factor: f64::NAN,
        max: Duration::from_secs(2),
    });
    assert!(matches!(
        spec(vec![s]).validate(),
        Err(SpecError::InvalidField {
            field: "backoff.factor",
            ..
        })
    ));
}

#[test]
fn templates_are_checked_for_every_way_in() {
    let mut s = StepSpec::handler("a", "h");
    s.resource = Some("rag:{{ db }}".into());
    let err = spec(vec![s]).validate().unwrap_err();
    assert_eq!(
        err,
        SpecError::InvalidTemplate {
            step: Some("a".into()),
            field: "resource",
            error: TemplateError::UnknownVariable("db".into()),
        }
    );
    assert!(err
        .to_string()
        .starts_with("step \"a\": resource is not a valid template: unknown variable `db`"));

    let mut wf = spec(vec![StepSpec::handler("a", "h")]);
    wf.run.concurrency = Some(ConcurrencySpec {
        key: "{{ input.tenant".into(),
        limit: 1,
    });
    let err = wf.validate().unwrap_err();
    assert!(
        matches!(
            err,
            SpecError::InvalidTemplate {
                step: None,
                field: "run.concurrency.key",
                error: TemplateError::Syntax(_)
            }
        ),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("run.concurrency.key is not a valid template: invalid template syntax"));
    wf.run.concurrency = Some(ConcurrencySpec {
        key: "{{ input.tenant }}".into(),
        limit: 0,
    });
    assert_eq!(
        wf.validate(),
        Err(SpecError::InvalidField {
            step: "(run)".into(),
            field: "concurrency.limit",
            problem: "must be at least 1".into()
        })
    );
}

#[test]
fn actions_are_checked() {
    let with = |action: StepAction, compensate: Option<StepAction>| {
        let mut s = StepSpec::handler("a", "h");
        s.action = action;
        s.compensate = compensate;
        spec(vec![s]).validate()
    };
    let field_of = |r: Result<(), SpecError>| match r {
        Err(SpecError::InvalidField { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let exec = |argv: &[&str]| StepAction::Exec {
        argv: argv.iter().map(|a| a.to_string()).collect(),
    };
    let http = |url: &str, method: &str| StepAction::Http(HttpAction::new(url, method));
    assert_eq!(field_of(with(exec(&[]), None)), "exec");
    assert_eq!(field_of(with(exec(&[""]), None)), "exec");
    assert_eq!(field_of(with(http("ftp://x", "POST"), None)), "http.url");
    assert_eq!(field_of(with(http("http://", "POST"), None)), "http.url");
    assert_eq!(field_of(with(http("http://x", ""), None)), "http.method");
    assert_eq!(
        field_of(with(StepAction::Handler { name: "".into() }, None)),
        "handler"
    );
    assert_eq!(
        field_of(with(exec(&["x"]), Some(exec(&[])))),
        "compensate.exec"
    );
    assert_eq!(
        field_of(with(exec(&["x"]), Some(http("x", "POST")))),
        "compensate.http.url"
    );
    assert_eq!(with(http("https://x/y", "PUT"), Some(exec(&["u"]))), Ok(()));
    let mut s = StepSpec::handler("a", "h");
    s.timeout_ms = Some(0);
    assert_eq!(field_of(spec(vec![s]).validate()), "timeout");
}

#[test]
fn spec_round_trips_through_json() {
    let s = spec(vec![after("a", &[]), StepSpec::handler("b", "h")]);
    let json = serde_json::to_value(&s).unwrap();
    let back: WorkflowSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn sleep_until_is_a_template_over_the_step_context() {
    let mut wait = StepSpec::handler("wait_for_slot", "unused");
    wait.action = StepAction::SleepUntil {
        at: "{{ steps.plan.start_at }}".into(),
    };
    assert!(spec(vec![StepSpec::handler("plan", "plan"), wait.clone()])
        .validate()
        .is_ok());
    wait.action = StepAction::SleepUntil {
        at: "{{ secrets.at }}".into(),
    };
    let err = spec(vec![StepSpec::handler("plan", "plan"), wait])
        .validate()
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown variable `secrets`"),
        "{err}"
    );
}
