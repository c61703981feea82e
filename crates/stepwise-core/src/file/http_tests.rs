//! `http` steps that call real services: headers, body, ca_file, `${NAME}`.

use super::*;
use serde_json::json;

fn parse(text: &str) -> Result<WorkflowFile, String> {
    parse_workflow_file(text, "api.toml", None).map_err(|e| e.to_string())
}

#[test]
fn http_headers_body_and_ca_file_are_read() {
    let file = parse(
        r#"name = "api"
[[steps]]
name = "read"
exec = ["./read.sh"]
[[steps]]
name = "embed"
http = { url = "https://api.test/v1/${PATH_PART}", method = "put",
         headers = { Authorization = "Bearer ${EMBED_API_KEY}", X-Run = "{{ run_id }}" },
         body = { model = "small", input = "{{ steps.read.text }}", n = 2, tags = ["a", "{{ input.t }}"] },
         ca_file = "ca.pem" }
"#,
    )
    .unwrap();
    let StepAction::Http(http) = &file.spec.steps[1].action else {
        panic!("not http: {:?}", file.spec.steps[1].action);
    };
    assert_eq!(http.url, "https://api.test/v1/${PATH_PART}");
    assert_eq!(http.summary(), "PUT https://api.test/v1/${PATH_PART}");
    assert_eq!(http.headers["Authorization"], "Bearer ${EMBED_API_KEY}");
    assert_eq!(http.headers["X-Run"], "{{ run_id }}");
    assert_eq!(
        http.body,
        Some(
            json!({"model": "small", "input": "{{ steps.read.text }}", "n": 2,
                    "tags": ["a", "{{ input.t }}"]})
        )
    );
    assert_eq!(http.ca_file.as_deref(), Some("ca.pem"));
}

#[test]
fn bad_http_fields_are_refused_at_their_line_and_column() {
    let step = |http: &str| {
        parse(&format!(
            "name = \"api\"\n[[steps]]\nname = \"call\"\nhttp = {http}\n"
        ))
        .unwrap_err()
    };
    assert_eq!(
        step(r#"{ url = "https://x", headers = { "Bad Name" = "v" } }"#),
        r#"api.toml:4:39: steps[0].http.headers: "Bad Name" is not a valid header name"#
    );
    assert_eq!(
        step(r#"{ url = "https://x", headers = { A = "{{ secret }}" } }"#),
        "api.toml:4:39: steps[0].http.headers: header \"A\": unknown variable `secret`: a step's \
         template can use run_id, workflow, step, attempt, input, steps, compensating, callback, item and item_index (a \
         `${NAME}` cannot sit inside a {{ }} or {% %} block)"
    );
    assert_eq!(
        step(r#"{ url = "https://x", headers = { A = "Bearer ${TOKEN" } }"#),
        "api.toml:4:39: steps[0].http.headers: header \"A\": `${` at byte 7 is not closed by `}` \
         (write `$${` for a literal `${`)"
    );
    assert_eq!(
        step(r#"{ url = "https://x/${1}" }"#),
        "api.toml:4:16: steps[0].http.url: `${1}` is not a valid variable name: use letters, \
         digits and `_`"
    );
    assert_eq!(
        step(r#"{ url = "https://x", body = { a = { b = "{{ steps.x" } } }"#),
        "api.toml:4:36: steps[0].http.body: body.a.b is not a valid template: invalid template \
         syntax: unexpected end of input, expected end of variable block"
    );
    assert_eq!(
        step(r#"{ url = "https://x", body = { key = "${API_KEY}" } }"#),
        "api.toml:4:36: steps[0].http.body: body.key: `${API_KEY}` is not expanded in a body: \
         put secrets from the worker's environment in `headers` or `url`"
    );
    assert_eq!(
        step(r#"{ url = "https://x", ca_file = "" }"#),
        "api.toml:4:39: steps[0].http.ca_file: must name a PEM file of root certificates"
    );
    assert!(step(r#"{ url = "https://x", extra = 1 }"#).contains("unknown key `extra`"));
}

#[test]
fn malformed_references_in_exec_env_are_refused() {
    let err = parse(
        "name = \"e\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\nenv = { TOKEN = \"${TOKEN\" }\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "api.toml:5:7: steps[0].env: variable \"TOKEN\": `${` at byte 0 is not closed by `}` \
         (write `$${` for a literal `${`)"
    );
}

#[test]
fn compensation_http_fields_point_at_the_compensation() {
    let err = parse(
        "name = \"e\"\n[[steps]]\nname = \"a\"\nexec = [\"true\"]\n\
         compensate = { http = { url = \"https://x\", headers = { \"a b\" = \"v\" } } }\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "api.toml:5:54: steps[0].compensate.http.headers: \"a b\" is not a valid header name"
    );
}
