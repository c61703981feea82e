//! `for_each`: a step that becomes one item step per element of an array found in
//! the run's context when the step's dependencies are done.
//!
//! The rules here are the ones both storage backends apply: where the array comes
//! from ([`ItemSource`]), how items are named (`STEP[i]`), what a value that is not
//! an array or is too long does, and what the joined step's output is. The backends
//! only store and count.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many items a `for_each` step may have unless it says otherwise.
pub const DEFAULT_MAX_ITEMS: u32 = 10_000;
/// The largest `max_items` a step may ask for.
pub const MAX_ITEMS_LIMIT: u32 = 1_000_000;

/// `for_each = "PATH"` and its options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// `input[.KEY…]` or `steps.STEP.output[.KEY…]`, STEP one of the step's
    /// dependencies.
    pub path: String,
    /// At most this many items of the step are running (or waiting) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// More elements than this fail the step for good (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    #[serde(default)]
    pub on_item_failure: ItemFailure,
}

impl ForEach {
    pub fn max_items(&self) -> u32 {
        self.max_items.unwrap_or(DEFAULT_MAX_ITEMS)
    }
}

/// What an item that fails for good does to its step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ItemFailure {
    /// The run fails, as for any step.
    #[default]
    Fail,
    /// The step completes once every item is terminal: `null` for a failed item.
    Continue,
}

impl ItemFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemFailure::Fail => "fail",
            ItemFailure::Continue => "continue",
        }
    }
}

/// Where a `for_each` array is read from: the run's input or a dependency's output,
/// then object keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemSource {
    /// `None`: the run's input.
    pub step: Option<String>,
    pub keys: Vec<String>,
}

impl ItemSource {
    /// Parses `input.a.b` or `steps.NAME.output.a.b`.
    pub fn parse(path: &str) -> Result<Self, String> {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("{path:?} has an empty part"));
        }
        let (step, rest) = match parts.as_slice() {
            ["input", rest @ ..] => (None, rest),
            ["steps", name, "output", rest @ ..] => (Some((*name).to_string()), rest),
            _ => {
                return Err(format!(
                    "{path:?} must start with `input` or `steps.STEP.output`"
                ))
            }
        };
        Ok(Self {
            step,
            keys: rest.iter().map(|k| (*k).to_string()).collect(),
        })
    }

    /// The value at the path under `root` (the input or the step's output); `None`
    /// when a key is missing.
    pub fn find<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut at = root;
        for key in &self.keys {
            at = match at {
                Value::Object(map) => map.get(key)?,
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

/// Why a `for_each` value cannot be expanded: the step fails for good with this.
pub fn expansion_error(path: &str, value: Option<&Value>, max_items: u32) -> Option<String> {
    match value {
        None => Some(format!(
            "for_each {path:?} found nothing: the path does not exist"
        )),
        Some(Value::Array(items)) if items.len() > max_items as usize => Some(format!(
            "for_each {path:?} found {} items, more than max_items ({max_items})",
            items.len()
        )),
        Some(Value::Array(_)) => None,
        Some(other) => Some(format!(
            "for_each {path:?} must be a JSON array, but found {}",
            describe(other)
        )),
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut shown = value.to_string();
    if shown.len() > 60 {
        let mut end = 57;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push_str("...");
    }
    format!("{kind} ({shown})")
}

/// The name of item `index` of step `step`.
pub fn item_name(step: &str, index: u32) -> String {
    format!("{step}[{index}]")
}

/// `("hooks", 3)` for `"hooks[3]"`; `None` for a name that is not an item's.
pub fn split_item_name(name: &str) -> Option<(&str, u32)> {
    let open = name.rfind('[')?;
    let index = name.strip_suffix(']')?.get(open + 1..)?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&name[..open], index.parse().ok()?))
}

/// A `for_each` path must name the input or a direct dependency's output (the only
/// outputs in the step's context), and its bounds must be positive.
pub(super) fn check(
    spec: &super::WorkflowSpec,
    step: &super::StepSpec,
    dependencies: &[usize],
) -> Result<(), super::SpecError> {
    let Some(for_each) = &step.for_each else {
        return Ok(());
    };
    let source =
        ItemSource::parse(&for_each.path).map_err(|p| super::invalid(step, "for_each", p))?;
    if let Some(name) = &source.step {
        if !dependencies.iter().any(|&d| &spec.steps[d].name == name) {
            return Err(super::invalid(
                step,
                "for_each",
                format!(
                    "{:?} reads step {name:?}, which is not one of this step's dependencies (`after`)",
                    for_each.path
                ),
            ));
        }
    }
    if for_each.max_parallel == Some(0) {
        return Err(super::invalid(
            step,
            "max_parallel",
            "must be at least 1".into(),
        ));
    }
    match for_each.max_items {
        Some(0) => Err(super::invalid(
            step,
            "max_items",
            "must be at least 1".into(),
        )),
        Some(n) if n > MAX_ITEMS_LIMIT => Err(super::invalid(
            step,
            "max_items",
            format!("must be at most {}", MAX_ITEMS_LIMIT),
        )),
        _ => Ok(()),
    }
}

/// One item as the join reads it back.
pub struct ItemResult {
    pub index: u32,
    /// `None` for an item that failed (only a `continue` step completes with one).
    pub output: Option<Value>,
}

/// The output of a joined `for_each` step: the item outputs in order (`null` for a
/// failed item), and the failed indexes.
pub fn joined_output(items: &[ItemResult]) -> (Value, Vec<u32>) {
    let mut sorted: Vec<&ItemResult> = items.iter().collect();
    sorted.sort_by_key(|i| i.index);
    let failed = sorted
        .iter()
        .filter(|i| i.output.is_none())
        .map(|i| i.index)
        .collect();
    let outputs = sorted
        .iter()
        .map(|i| i.output.clone().unwrap_or(Value::Null))
        .collect();
    (Value::Array(outputs), failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_path_names_the_input_or_a_steps_output() {
        let s = ItemSource::parse("steps.plan.output.hooks").unwrap();
        assert_eq!(s.step.as_deref(), Some("plan"));
        assert_eq!(s.keys, vec!["hooks"]);
        let s = ItemSource::parse("input").unwrap();
        assert_eq!(s.step, None);
        assert!(s.keys.is_empty());
        assert!(ItemSource::parse("steps.plan.hooks").is_err());
        assert!(ItemSource::parse("output.x").is_err());
        assert!(ItemSource::parse("input..x").is_err());
    }

    #[test]
    fn the_value_found_must_be_an_array_within_max_items() {
        let s = ItemSource::parse("input.docs").unwrap();
        let input = json!({"docs": [1, 2, 3], "n": 4});
        assert_eq!(expansion_error("input.docs", s.find(&input), 3), None);
        let over = expansion_error("input.docs", s.find(&input), 2).unwrap();
        assert!(over.contains("3 items, more than max_items (2)"), "{over}");
        let n = ItemSource::parse("input.n").unwrap();
        let not = expansion_error("input.n", n.find(&input), 10).unwrap();
        assert!(
            not.contains("must be a JSON array, but found a number (4)"),
            "{not}"
        );
        let missing = ItemSource::parse("input.x").unwrap();
        assert!(expansion_error("input.x", missing.find(&input), 10)
            .unwrap()
            .contains("does not exist"));
    }

    #[test]
    fn a_path_must_read_the_input_or_a_direct_dependency() {
        use crate::spec::{StepSpec, WorkflowSpec};
        let mut hooks = StepSpec::handler("hooks", "h");
        hooks.after = Some(vec!["plan".into()]);
        hooks.for_each = Some(ForEach {
            path: "steps.other.output".into(),
            max_parallel: None,
            max_items: None,
            on_item_failure: ItemFailure::Fail,
        });
        let mut spec = WorkflowSpec {
            name: "wf".into(),
            defaults: Default::default(),
            run: Default::default(),
            steps: vec![
                StepSpec::handler("plan", "h"),
                StepSpec::handler("other", "h"),
                hooks,
            ],
        };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("not one of this step's dependencies"), "{err}");
        spec.steps[2].for_each.as_mut().unwrap().path = "steps.plan.output.hooks".into();
        spec.validate().unwrap();
        spec.steps[2].for_each.as_mut().unwrap().max_parallel = Some(0);
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("max_parallel must be at least 1"), "{err}");
    }

    #[test]
    fn item_names_round_trip() {
        assert_eq!(item_name("hooks", 12), "hooks[12]");
        assert_eq!(split_item_name("hooks[12]"), Some(("hooks", 12)));
        assert_eq!(split_item_name("hooks"), None);
        assert_eq!(split_item_name("hooks[]"), None);
        assert_eq!(split_item_name("hooks[x]"), None);
    }

    #[test]
    fn joined_output_is_in_item_order_with_nulls_for_failures() {
        let items = vec![
            ItemResult {
                index: 2,
                output: Some(json!("c")),
            },
            ItemResult {
                index: 0,
                output: Some(json!("a")),
            },
            ItemResult {
                index: 1,
                output: None,
            },
        ];
        let (output, failed) = joined_output(&items);
        assert_eq!(output, json!(["a", null, "c"]));
        assert_eq!(failed, vec![1]);
    }
}
