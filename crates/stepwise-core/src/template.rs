//! Templates for values computed from a run's input: concurrency keys and resource
//! lock names, such as `"rag:{{ input.db }}"` or `"{{ input.tenant }}"`.
//!
//! The syntax is Jinja's (via `minijinja`, without its filter and function library):
//! `{{ input.tenant }}`, `{{ input.region.name }}`, `{{ input["odd-key"] }}`,
//! `{% if input.region %}...{% else %}...{% endif %}`. A template may only read
//! `input`; anything else is refused when the template is parsed, so a typo in a
//! workflow file is caught at `apply`, not when the first run starts.
//!
//! Rendering is strict: a missing `input.x` is an error naming `input.x`, never an
//! empty string (an empty key would silently put unrelated runs in one line). A
//! string renders without quotes; any other value (number, boolean, null, array,
//! object) renders as its compact JSON text. A source without `{{`, `{%` or `{#`
//! renders as itself.
//!
//! The `headers` and `body` of an `http` step are templates over the step's whole
//! context instead ([`Template::parse_step`]): `run_id`, `workflow`, `step`,
//! `attempt`, `input`, `steps` (the outputs of the steps it runs after, by name)
//! and, in a compensation, `compensating`. A body value that is one expression and
//! nothing else, such as `"{{ steps.read.chunks }}"`, keeps the value's JSON type.

use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;
use std::sync::LazyLock;

/// A parsed template. Cheap to clone; render it once per run.
///
/// ```
/// use stepwise_core::{Template, TemplateError};
/// use serde_json::json;
///
/// let key = Template::parse("rag:{{ input.db }}").unwrap();
/// assert_eq!(key.render(&json!({"db": "main"})).unwrap(), "rag:main");
/// assert_eq!(key.render(&json!({})), Err(TemplateError::Missing("input.db".into())));
/// assert!(Template::parse("{{ db }}").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    /// `false` when the source has no template syntax at all and renders as itself.
    dynamic: bool,
    scope: Scope,
}

/// What a template may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Only `input`: concurrency keys and resource locks, rendered per run.
    Input,
    /// The step's context: `http` headers and bodies, rendered per attempt.
    Step,
}

/// The top-level names of a step's context (see the worker's `attempt_input`).
pub const STEP_CONTEXT: &[&str] = &[
    "run_id",
    "workflow",
    "step",
    "attempt",
    "input",
    "steps",
    "compensating",
    // A `complete = "callback"` step's token and URL (an `http` body can send them).
    "callback",
    // An item of a `for_each` step: its element and index.
    "item",
    "item_index",
];

/// Why a template was refused or could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The source is not a valid template.
    #[error("invalid template syntax: {0}")]
    Syntax(String),
    /// The template reads a variable other than `input`.
    #[error("unknown variable `{0}`: a template can only use the run's input, as in {{{{ input.tenant }}}}")]
    UnknownVariable(String),
    /// The template uses a filter, test or function that does not exist here.
    #[error("{0}; templates support plain substitutions such as {{{{ input.tenant }}}}")]
    Unsupported(String),
    /// Rendering read a value the run's input does not have.
    #[error("`{0}` is not in the run's input")]
    Missing(String),
    /// A step template reads a variable that is not in a step's context.
    #[error("unknown variable `{0}`: a step's template can use run_id, workflow, step, attempt, input, steps, compensating, callback, item and item_index")]
    UnknownStepVariable(String),
    /// Rendering read a value the step's context does not have.
    #[error("`{0}` is not in the step's context")]
    MissingFromContext(String),
    /// Rendering failed for another reason (e.g. an operation on mismatched types).
    #[error("the template cannot be rendered: {0}")]
    Render(String),
}

/// One environment for every template: no loader, no filters beyond the core ones,
/// undefined values refused when printed or iterated, non-strings printed as JSON.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() {
            // Only the silent undefined of an `if` without `else` gets here; the
            // environment refuses every other undefined before formatting.
            return Ok(());
        }
        let text = match value.as_str() {
            Some(s) => s.to_string(),
            None => serde_json::to_string(value)
                .map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()))?,
        };
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(ErrorKind::WriteFailure, e.to_string()))
    });
    env
});

/// The context a template sees: only `input`.
#[derive(Serialize)]
struct Context<'a> {
    input: &'a serde_json::Value,
}

impl Template {
    /// Parses and checks `source`: valid syntax, no variable but `input`, no unknown
    /// filter or test on the paths taken when every `input` value is missing.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Self::parse_in(source, Scope::Input)
    }

    /// Parses and checks a template over a step's context ([`STEP_CONTEXT`]).
    ///
    /// ```
    /// use stepwise_core::Template;
    /// use serde_json::json;
    ///
    /// let t = Template::parse_step("{{ steps.read.text }}").unwrap();
    /// let context = json!({"steps": {"read": {"text": "hi", "n": [1, 2]}}});
    /// assert_eq!(t.render_step(&context).unwrap(), "hi");
    /// let n = Template::parse_step("{{ steps.read.n }}").unwrap();
    /// assert_eq!(n.render_step_json(&context).unwrap(), json!([1, 2]));
    /// assert!(Template::parse_step("{{ secrets.x }}").is_err());
    /// ```
    pub fn parse_step(source: &str) -> Result<Template, TemplateError> {
        Self::parse_in(source, Scope::Step)
    }

    fn parse_in(source: &str, scope: Scope) -> Result<Template, TemplateError> {
        let dynamic = ["{{", "{%", "{#"].iter().any(|open| source.contains(open));
        if dynamic {
            let compiled = ENV
                .template_from_str(source)
                .map_err(|e| TemplateError::Syntax(detail(&e)))?;
            let known: &[&str] = match scope {
                Scope::Input => &["input"],
                Scope::Step => STEP_CONTEXT,
            };
            let mut unknown: Vec<String> = compiled
                .undeclared_variables(false)
                .into_iter()
                .filter(|name| !known.contains(&name.as_str()))
                .collect();
            unknown.sort();
            if let Some(name) = unknown.into_iter().next() {
                return Err(match scope {
                    Scope::Input => TemplateError::UnknownVariable(name),
                    Scope::Step => TemplateError::UnknownStepVariable(name),
                });
            }
            // A dry run with an empty input finds unknown filters and tests, which
            // minijinja only reports when it meets them. Missing values are expected.
            let empty = serde_json::Value::Object(Default::default());
            let root = match scope {
                Scope::Input => Value::from(Serde(Context { input: &empty })),
                Scope::Step => {
                    let names = STEP_CONTEXT.iter().map(|n| (n.to_string(), empty.clone()));
                    Value::from(Serde(serde_json::Value::Object(names.collect())))
                }
            };
            if let Err(e) = compiled.render(root) {
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownFilter
                        | ErrorKind::UnknownTest
                        | ErrorKind::UnknownFunction
                        | ErrorKind::UnknownMethod
                ) {
                    return Err(TemplateError::Unsupported(detail(&e)));
                }
            }
        }
        Ok(Template {
            source: source.to_string(),
            dynamic,
            scope,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template has any template syntax (a literal renders as itself).
    pub fn is_literal(&self) -> bool {
        !self.dynamic
    }

    /// Renders the template against a run's input.
    pub fn render(&self, input: &serde_json::Value) -> Result<String, TemplateError> {
        if !self.dynamic {
            return Ok(self.source.clone());
        }
        ENV.render_str(&self.source, Value::from(Serde(Context { input })))
            .map_err(|e| self.error(&e))
    }

    /// Renders a [`Template::parse_step`] template against a step's context.
    pub fn render_step(&self, context: &serde_json::Value) -> Result<String, TemplateError> {
        if !self.dynamic {
            return Ok(self.source.clone());
        }
        ENV.render_str(&self.source, Value::from(Serde(context)))
            .map_err(|e| self.error(&e))
    }

    /// Like [`Template::render_step`], but a template that is one `{{ expression }}`
    /// and nothing else gives the expression's value with its JSON type.
    pub fn render_step_json(
        &self,
        context: &serde_json::Value,
    ) -> Result<serde_json::Value, TemplateError> {
        let Some(expression) = self.sole_expression() else {
            return self.render_step(context).map(serde_json::Value::String);
        };
        let value = ENV
            .compile_expression(expression)
            .and_then(|e| e.eval(Value::from(Serde(context))))
            .map_err(|e| self.error(&e))?;
        if value.is_undefined() {
            return Err(match self.scope {
                Scope::Step => TemplateError::MissingFromContext(expression.trim().to_string()),
                Scope::Input => TemplateError::Missing(expression.trim().to_string()),
            });
        }
        serde_json::to_value(&value).map_err(|e| TemplateError::Render(e.to_string()))
    }

    /// The inside of a source that is exactly `{{ expression }}` (spaces around
    /// allowed), if it is.
    fn sole_expression(&self) -> Option<&str> {
        let inner = self
            .source
            .trim()
            .strip_prefix("{{")?
            .strip_suffix("}}")?
            .trim_start_matches('-')
            .trim_end_matches('-');
        let nested = ["{{", "}}", "{%", "%}", "{#"]
            .iter()
            .any(|m| inner.contains(m));
        (!nested && !inner.trim().is_empty()).then_some(inner)
    }

    fn error(&self, e: &minijinja::Error) -> TemplateError {
        match e.kind() {
            ErrorKind::UndefinedError => match (missing_name(e), self.scope) {
                (Some(name), Scope::Input) => TemplateError::Missing(name),
                (Some(name), Scope::Step) => TemplateError::MissingFromContext(name),
                (None, _) => TemplateError::Render(detail(e)),
            },
            ErrorKind::SyntaxError => TemplateError::Syntax(detail(e)),
            _ => TemplateError::Render(detail(e)),
        }
    }
}

/// The message of a minijinja error without its location suffix.
fn detail(e: &minijinja::Error) -> String {
    e.detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string())
}

/// minijinja describes an undefined value as "`input.x` is undefined".
fn missing_name(e: &minijinja::Error) -> Option<String> {
    let detail = e.detail()?;
    let rest = detail.strip_prefix('`')?;
    let end = rest.find("` is undefined")?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(source: &str, input: serde_json::Value) -> Result<String, TemplateError> {
        Template::parse(source)?.render(&input)
    }

    #[test]
    fn substitutes_input_values() {
        let input = json!({"db": "main", "tenant": "acme", "n": 42, "f": 1.5,
                           "big": 1e300, "ok": true, "none": null,
                           "region": {"name": "eu"}, "list": [1, "a"], "odd-key": "x"});
        assert_eq!(
            render("rag:{{input.db}}", input.clone()).unwrap(),
            "rag:main"
        );
        assert_eq!(render("{{ input.tenant }}", input.clone()).unwrap(), "acme");
        assert_eq!(render("{{ input.n }}", input.clone()).unwrap(), "42");
        assert_eq!(render("{{ input.f }}", input.clone()).unwrap(), "1.5");
        assert_eq!(
            render("{{ input.big }}", input.clone()).unwrap(),
            serde_json::to_string(&input["big"]).unwrap()
        );
        assert_eq!(render("{{ input.ok }}", input.clone()).unwrap(), "true");
        assert_eq!(render("{{ input.none }}", input.clone()).unwrap(), "null");
        assert_eq!(
            render("{{ input.region.name }}-{{ input.n }}", input.clone()).unwrap(),
            "eu-42"
        );
        assert_eq!(
            render("{{ input.region }}", input.clone()).unwrap(),
            r#"{"name":"eu"}"#
        );
        assert_eq!(
            render("{{ input.list }}", input.clone()).unwrap(),
            r#"[1,"a"]"#
        );
        assert_eq!(
            render(r#"{{ input["odd-key"] }}"#, input.clone()).unwrap(),
            "x"
        );
        assert_eq!(render("{{ input.n + 1 }}", input.clone()).unwrap(), "43");
    }

    #[test]
    fn strings_render_without_quotes_or_escaping() {
        let input = json!({"s": "a \"b\" <c> & 'd'"});
        assert_eq!(render("{{ input.s }}", input).unwrap(), "a \"b\" <c> & 'd'");
    }

    #[test]
    fn plain_text_renders_as_itself() {
        let t = Template::parse("rag:main").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.source(), "rag:main");
        assert_eq!(t.render(&json!(null)).unwrap(), "rag:main");
        assert_eq!(render("a } b {", json!({})).unwrap(), "a } b {");
        assert_eq!(render("", json!({})).unwrap(), "");
    }

    #[test]
    fn conditionals_may_test_for_missing_values() {
        let t =
            Template::parse("{% if input.region %}{{ input.region }}{% else %}global{% endif %}")
                .unwrap();
        assert_eq!(t.render(&json!({})).unwrap(), "global");
        assert_eq!(t.render(&json!({"region": "eu"})).unwrap(), "eu");
    }

    #[test]
    fn missing_values_are_errors_naming_them() {
        let t = Template::parse("rag:{{ input.db }}").unwrap();
        let err = t.render(&json!({"tenant": "acme"})).unwrap_err();
        assert_eq!(err, TemplateError::Missing("input.db".into()));
        assert_eq!(err.to_string(), "`input.db` is not in the run's input");
        let err = render("{{ input.a.b.c }}", json!({"a": {}})).unwrap_err();
        assert_eq!(err, TemplateError::Missing("input.a.b".into()));
        let err = render("{{ input.x }}", json!(null)).unwrap_err();
        assert_eq!(err, TemplateError::Missing("input.x".into()));
    }

    #[test]
    fn only_input_may_be_referenced() {
        let err = Template::parse("{{ foo }}").unwrap_err();
        assert_eq!(err, TemplateError::UnknownVariable("foo".into()));
        assert_eq!(
            err.to_string(),
            "unknown variable `foo`: a template can only use the run's input, as in {{ input.tenant }}"
        );
        assert_eq!(
            Template::parse("{{ input.a }}-{{ steps.parse }}").unwrap_err(),
            TemplateError::UnknownVariable("steps".into())
        );
        assert_eq!(
            Template::parse("{{ range(3) }}").unwrap_err(),
            TemplateError::UnknownVariable("range".into())
        );
        assert!(Template::parse("{% set x = input.a %}{{ x }}").is_ok());
        assert!(Template::parse("{{ input }}").is_ok());
    }

    #[test]
    fn syntax_errors_and_unknown_filters_are_refused() {
        let err = Template::parse("{{ input.db").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid template syntax: unexpected end of input, expected end of variable block"
        );
        let err = Template::parse("{{ }}").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err:?}");
        let err = Template::parse("{% bogus %}").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err:?}");
        let err = Template::parse("{{ input.db | upper }}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "filter upper is unknown; templates support plain substitutions such as {{ input.tenant }}"
        );
    }

    #[test]
    fn step_templates_read_the_whole_context() {
        let context = json!({"run_id": "r1", "attempt": 2, "input": {"q": "x"},
                             "steps": {"read": {"text": "hello", "chunks": ["a", "b"], "n": 3}}});
        let t =
            Template::parse_step("{{ run_id }}/{{ attempt }}: {{ steps.read.text }} {{ input.q }}")
                .unwrap();
        assert_eq!(t.render_step(&context).unwrap(), "r1/2: hello x");
        let whole = |s: &str| Template::parse_step(s).unwrap().render_step_json(&context);
        assert_eq!(whole("{{ steps.read.chunks }}").unwrap(), json!(["a", "b"]));
        assert_eq!(whole(" {{ steps.read.n }} ").unwrap(), json!(3));
        assert_eq!(whole("n={{ steps.read.n }}").unwrap(), json!("n=3"));
        assert_eq!(whole("plain").unwrap(), json!("plain"));
        assert_eq!(
            whole("{{ steps.read.nope }}").unwrap_err().to_string(),
            "`steps.read.nope` is not in the step's context"
        );
        assert_eq!(
            whole("x {{ steps.gone.text }}").unwrap_err(),
            TemplateError::MissingFromContext("steps.gone".into())
        );
    }

    #[test]
    fn step_templates_refuse_names_outside_the_context() {
        let err = Template::parse_step("{{ env.TOKEN }}").unwrap_err();
        assert_eq!(err, TemplateError::UnknownStepVariable("env".into()));
        assert!(Template::parse_step("{{ steps.a | upper }}").is_err());
        assert!(Template::parse_step("{% if compensating %}undo{% endif %}").is_ok());
    }

    #[test]
    fn type_errors_at_render_are_reported() {
        let err = render("{{ input.a + 1 }}", json!({"a": "x"})).unwrap_err();
        assert!(matches!(err, TemplateError::Render(_)), "{err:?}");
    }
}
