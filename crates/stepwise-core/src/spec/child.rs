//! `run = { workflow, input? }`: a step that starts a child run and completes with
//! its outcome, holding no worker while the child runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A child-run step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunAction {
    /// The child's workflow (its latest version when the child starts).
    pub workflow: String,
    /// The child's input: a JSON value whose strings are step-context templates.
    /// Without it, an item's child gets the item, and another step's child the
    /// parent run's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

/// The idempotency key of the child a step (or item `index` of it) starts: a retried
/// parent step finds its child again instead of starting a second.
pub fn child_key(parent_run: &str, step: &str, index: Option<u32>) -> String {
    match index {
        Some(i) => format!("{parent_run}:{step}:{i}"),
        None => format!("{parent_run}:{step}"),
    }
}

/// Every string of a child's `input` template rendered against the step context.
pub fn render_input(template: &Value, context: &Value) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => crate::Template::parse_step(s)
            .and_then(|t| t.render_step_json(context))
            .map_err(|e| e.to_string())?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_input(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_input(v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks a child-run action: a valid workflow name and templates that parse.
pub(super) fn check(step: &super::StepSpec, run: &RunAction) -> Result<(), super::SpecError> {
    if !super::valid_name(&run.workflow) {
        return Err(super::invalid(
            step,
            "run.workflow",
            format!("{:?} is not a valid workflow name", run.workflow),
        ));
    }
    if step.complete.is_some() {
        return Err(super::invalid(
            step,
            "complete",
            "a `run` step completes with its child run; it takes no callback".into(),
        ));
    }
    if step.resource.is_some() {
        return Err(super::invalid(
            step,
            "resource",
            "a `run` step holds no resource lock while its child runs; put the lock on the child's steps".into(),
        ));
    }
    if let Some(input) = &run.input {
        check_templates(step, input)?;
    }
    Ok(())
}

fn check_templates(step: &super::StepSpec, value: &Value) -> Result<(), super::SpecError> {
    match value {
        Value::String(s) => crate::Template::parse_step(s).map(|_| ()).map_err(|error| {
            super::SpecError::InvalidTemplate {
                step: Some(step.name.clone()),
                field: "run.input",
                error,
            }
        }),
        Value::Array(items) => items.iter().try_for_each(|v| check_templates(step, v)),
        Value::Object(map) => map.values().try_for_each(|v| check_templates(step, v)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_childs_key_names_its_parent_run_step_and_item() {
        assert_eq!(child_key("r1", "ingest", Some(3)), "r1:ingest:3");
        assert_eq!(child_key("r1", "ingest", None), "r1:ingest");
    }

    #[test]
    fn the_input_template_renders_against_the_context() {
        let context = json!({"item": {"id": 7}, "input": {"batch": "b1"}});
        let template = json!({"doc": "{{ item.id }}", "batch": "{{ input.batch }}", "n": 1});
        assert_eq!(
            render_input(&template, &context).unwrap(),
            json!({"doc": 7, "batch": "b1", "n": 1})
        );
    }
}
