//! Per-step checks beyond names, policies and the graph: what a step does, its
//! templates, its environment.

use super::{
    check_timeout, child, http, invalid, limits, valid_name, SpecError, StepAction, StepSpec,
    Template, MAX_WAIT,
};

/// Per-step checks beyond names, policies and the graph: actions, templates, env.
pub(super) fn check_step(step: &StepSpec) -> Result<(), SpecError> {
    check_action(step, &step.action, false)?;
    if step.complete.is_some()
        && !matches!(step.action, StepAction::Exec { .. } | StepAction::Http(_))
    {
        return Err(invalid(
            step,
            "complete",
            "\"callback\" applies only to `exec` and `http` steps".into(),
        ));
    }
    if step.action.waits() && step.resource.is_some() {
        return Err(invalid(
            step,
            "resource",
            "a step that waits holds no resource lock; put the lock on the step that works".into(),
        ));
    }
    if let Some(compensate) = &step.compensate {
        check_action(step, compensate, true)?;
    }
    check_timeout(&step.name, "timeout", step.timeout_ms)?;
    if let Some(limit) = &step.rate_limit {
        limits::check(step, limit)?;
    }
    if let Some(resource) = &step.resource {
        Template::parse(resource).map_err(|error| SpecError::InvalidTemplate {
            step: Some(step.name.clone()),
            field: "resource",
            error,
        })?;
    }
    for (key, value) in &step.env {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(invalid(
                step,
                "env",
                format!("has an invalid variable name {key:?}"),
            ));
        }
        if value.contains('\0') {
            return Err(invalid(
                step,
                "env",
                format!("variable {key:?} contains a NUL character"),
            ));
        }
    }
    http::check_env_references(step)
}

fn check_action(step: &StepSpec, action: &StepAction, compensate: bool) -> Result<(), SpecError> {
    let field = |plain: &'static str, comp: &'static str| if compensate { comp } else { plain };
    match action {
        StepAction::Exec { argv } => match argv.first() {
            None => Err(invalid(
                step,
                field("exec", "compensate.exec"),
                "must name a program to run".into(),
            )),
            Some(program) if program.is_empty() => Err(invalid(
                step,
                field("exec", "compensate.exec"),
                "has an empty program name".into(),
            )),
            Some(_) => Ok(()),
        },
        StepAction::Http(http) => http::check_http(step, http, &http::Fields::of(compensate)),
        StepAction::Handler { name } if name.is_empty() => Err(invalid(
            step,
            field("handler", "compensate.handler"),
            "must name a registered handler".into(),
        )),
        StepAction::Handler { .. } => Ok(()),
        waiting if compensate => Err(invalid(
            step,
            "compensate",
            format!(
                "a compensation must do something (`exec`, `http` or `handler`), not {}",
                waiting.kind()
            ),
        )),
        StepAction::Sleep { ms } => check_wait_time(step, "sleep", Some(*ms)),
        // Rendered per attempt against the step's context, like an `http` body.
        StepAction::SleepUntil { at } => {
            Template::parse_step(at).map_err(|error| SpecError::InvalidTemplate {
                step: Some(step.name.clone()),
                field: "sleep_until",
                error,
            })?;
            Ok(())
        }
        StepAction::Wait(wait) => {
            if !valid_name(&wait.signal) {
                return Err(invalid(
                    step,
                    "wait.signal",
                    format!("{:?} is not a valid signal name: use 1-128 letters, digits, '-', '_' or '.'", wait.signal),
                ));
            }
            check_wait_time(step, "wait.timeout", wait.timeout_ms)
        }
        StepAction::Run(run) if !compensate => child::check(step, run),
        StepAction::Run(_) => Err(invalid(
            step,
            "compensate",
            "a compensation cannot start a child run".into(),
        )),
    }
}

fn check_wait_time(step: &StepSpec, field: &'static str, ms: Option<u64>) -> Result<(), SpecError> {
    match ms {
        Some(0) => Err(invalid(step, field, "must be longer than zero".into())),
        Some(ms) if ms > MAX_WAIT.as_millis() as u64 => {
            Err(invalid(step, field, "must be at most 3650 days".into()))
        }
        _ => Ok(()),
    }
}
