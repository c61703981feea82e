//! `http` steps: send the context (or the rendered `body`) as JSON to a URL, with
//! rendered `headers`; a 2xx JSON body is the output. 4xx other than 408 and 429,
//! certificate errors, missing variables and oversize answers will not get better
//! by retrying.
//!
//! `${NAME}` in the URL and headers is expanded from the worker's environment here,
//! and every expanded value is redacted from what the attempt reports (output, log,
//! error), so a secret never leaves the worker through the store.

use super::{backpressure, AttemptError, AttemptInput, AttemptResult};
use std::path::Path;
use stepwise_core::secrets::{self, Piece, Secrets};
use stepwise_core::{HttpAction, Template};
use tokio_util::sync::CancellationToken;

mod tls;

pub use tls::Clients;

const BODY_EXCERPT: usize = 500;

/// One request to make.
pub struct Call<'a> {
    pub action: &'a HttpAction,
    pub input: &'a AttemptInput,
    /// Bytes of response body kept (the `exec` output limit); more fails the attempt.
    pub body_limit: usize,
    /// Where `${NAME}` is looked up: the worker's environment.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

pub async fn run(clients: &Clients, call: &Call<'_>, stop: &CancellationToken) -> AttemptResult {
    let mut secrets = Secrets::default();
    let mut result = attempt(clients, call, &mut secrets, stop).await;
    result.redact(&secrets);
    result
}

async fn attempt(
    clients: &Clients,
    call: &Call<'_>,
    secrets: &mut Secrets,
    stop: &CancellationToken,
) -> AttemptResult {
    let action = call.action;
    let shown = action.summary();
    let request = match build(clients, call, secrets) {
        Ok(request) => request,
        Err(e) => return failed(e),
    };
    let response = tokio::select! {
        r = request.send() => r,
        _ = stop.cancelled() => return failed(AttemptError::retryable("stopped by the worker")),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => return failed(send_error(&shown, &e)),
    };
    let status = response.status();
    let retry_after = asked_to_wait(&response);
    let limit = call.body_limit;
    // An announced length over the limit fails before any of the body is read.
    let announced = response.content_length().filter(|&n| n > limit as u64);
    if let (Some(length), true) = (announced, status.is_success()) {
        return failed(AttemptError::permanent(format!(
            "{shown}: HTTP {status} with a body of {length} bytes, more than the limit of {limit} bytes"
        )));
    }
    // An error answer is kept for its excerpt only.
    let keep = if status.is_success() {
        limit
    } else {
        limit.min(BODY_EXCERPT * 4)
    };
    let body = tokio::select! {
        b = read_limited(response, keep) => b,
        _ = stop.cancelled() => return failed(AttemptError::retryable("stopped by the worker")),
    };
    let (bytes, complete) = match body {
        Ok(read) => read,
        Err(e) => {
            return failed(AttemptError::retryable(format!(
                "{shown}: reading the answer failed: {}",
                chain(&e)
            )))
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
    if status.is_success() {
        if !complete {
            return failed(AttemptError::permanent(format!(
                "{shown}: HTTP {status} with a body of more than {limit} bytes, the limit"
            )));
        }
        let output = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(text.clone().into_owned()));
        return AttemptResult {
            outcome: Ok(output),
            log: Some(format!("{shown}\nHTTP {status}\n{excerpt}")),
        };
    }
    let code = status.as_u16();
    let retry = !(400..500).contains(&code) || code == 408 || code == 429;
    let (message, error) = match retry_after {
        Some(delay) => {
            let message = format!("HTTP {status}: {}: {excerpt}", backpressure::asked(delay));
            (message.clone(), AttemptError::retry_after(message, delay))
        }
        None => {
            let message = format!("HTTP {status}: {excerpt}");
            let error = AttemptError {
                message: message.clone(),
                retryable: retry,
                retry_after: None,
            };
            (message, error)
        }
    };
    AttemptResult {
        outcome: Err(error),
        log: Some(format!("{shown}\n{message}")),
    }
}

/// The delay a 429 or 503 answer's `Retry-After` asks for; other answers' headers
/// say nothing about back-pressure.
fn asked_to_wait(response: &reqwest::Response) -> Option<std::time::Duration> {
    let code = response.status().as_u16();
    if code != 429 && code != 503 {
        return None;
    }
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    backpressure::http_retry_after(value.to_str().ok()?, std::time::SystemTime::now())
}

/// The request, with `${NAME}` expanded and templates rendered. Every failure here
/// is permanent: the same step with the same context will fail the same way.
fn build(
    clients: &Clients,
    call: &Call<'_>,
    secrets: &mut Secrets,
) -> Result<reqwest::RequestBuilder, AttemptError> {
    let action = call.action;
    let context = &call.input.context;
    let method = reqwest::Method::from_bytes(action.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| AttemptError::permanent(format!("invalid HTTP method {:?}", action.method)))?;
    let url = secrets::expand(&action.url, call.env, secrets)
        .map_err(|e| AttemptError::permanent(format!("http.url: {e}")))?;
    let url = reqwest::Url::parse(&url).map_err(|e| {
        AttemptError::permanent(format!("http.url {:?} is not a valid URL: {e}", action.url))
    })?;
    let client = match &action.ca_file {
        None => clients.public_roots(),
        Some(file) => clients.with_ca(&resolve(file, call.input.cwd.as_deref()))?,
    };
    let body = match &action.body {
        None => serde_json::to_vec(context).unwrap_or_default(),
        Some(template) => {
            let rendered = render_body(template, context)
                .map_err(|e| AttemptError::permanent(format!("http.body: {e}")))?;
            serde_json::to_vec(&rendered).unwrap_or_default()
        }
    };
    let mut request = client
        .request(method, url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in &call.input.env {
        if let Some(header) = name.strip_prefix("STEPWISE_") {
            request = request.header(
                format!("stepwise-{}", header.to_ascii_lowercase().replace('_', "-")),
                value,
            );
        }
    }
    for (name, template) in &action.headers {
        let value = render_header(template, context, call.env, secrets)
            .map_err(|e| AttemptError::permanent(format!("http.headers.{name}: {e}")))?;
        // The value may hold a secret: the error names the header, never the value.
        let value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            AttemptError::permanent(format!(
                "http.headers.{name}: the rendered value is not a valid header value"
            ))
        })?;
        request = request.header(name.as_str(), value);
    }
    Ok(request)
}

/// Template pieces rendered against the context, `${NAME}` pieces from the
/// environment: a value from the context is never scanned for `${`, and a secret
/// is never read as template syntax.
fn render_header(
    template: &str,
    context: &serde_json::Value,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    secrets: &mut Secrets,
) -> Result<String, String> {
    let pieces = secrets::split(template).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => {
                let rendered = Template::parse_step(&text)
                    .and_then(|t| t.render_step(context))
                    .map_err(|e| e.to_string())?;
                out.push_str(&rendered);
            }
            Piece::Var(name) => {
                let reference = format!("${{{name}}}");
                out.push_str(
                    &secrets::expand(&reference, env, secrets).map_err(|e| e.to_string())?,
                );
            }
        }
    }
    Ok(out)
}

/// Every string of the body rendered against the context.
fn render_body(
    template: &serde_json::Value,
    context: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match template {
        Value::String(s) => Template::parse_step(s)
            .and_then(|t| t.render_step_json(context))
            .map_err(|e| e.to_string())?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_body(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_body(v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A relative `ca_file` is taken from the step's working directory.
fn resolve(file: &str, cwd: Option<&Path>) -> std::path::PathBuf {
    match cwd {
        Some(dir) => dir.join(file),
        None => file.into(),
    }
}

/// Up to `limit` bytes of the body, read as it streams: a larger answer is cut off
/// there (`false`), never held whole.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            let room = limit - body.len();
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// A request that got no answer: a certificate the worker does not trust is
/// permanent (and names the host); anything else may work on another attempt.
fn send_error(shown: &str, e: &reqwest::Error) -> AttemptError {
    let detail = chain(e);
    if let Some(problem) = tls::certificate_problem(e) {
        let host = e
            .url()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "the server".into());
        return AttemptError::permanent(format!(
            "{shown}: the TLS certificate of {host} is not trusted ({problem}); \
             give the step a `ca_file` if a private CA signed it"
        ));
    }
    AttemptError::retryable(format!("{shown}: request failed: {detail}"))
}

/// An error and its causes, without the URL (which may hold an expanded secret:
/// callers name the URL as written instead).
fn chain(e: &reqwest::Error) -> String {
    let mut parts = vec![WithoutUrl(e).to_string()];
    let mut current = std::error::Error::source(e);
    while let Some(err) = current {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// reqwest's message for an error, minus its `for url (...)` part.
struct WithoutUrl<'a>(&'a reqwest::Error);

impl std::fmt::Display for WithoutUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        let text = match self.0.url() {
            Some(url) => text.replace(&format!(" for url ({url})"), ""),
            None => text,
        };
        f.write_str(&text)
    }
}

fn failed(error: AttemptError) -> AttemptResult {
    AttemptResult {
        outcome: Err(error),
        log: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("tok-{{ run_id }}".into()),
            "OTHER" => Some("other-secret".into()),
            _ => None,
        }
    }

    #[test]
    fn headers_take_templates_from_the_context_and_secrets_from_the_environment() {
        let context = json!({"run_id": "r1", "steps": {"read": {"note": "${OTHER}"}}});
        let mut secrets = Secrets::default();
        let value = render_header(
            "Bearer ${TOKEN} {{ run_id }} {{ steps.read.note }}",
            &context,
            &env,
            &mut secrets,
        )
        .unwrap();
        // The secret is not read as a template, and a context value is not scanned
        // for `${...}`: a previous step's output cannot ask for another secret.
        assert_eq!(value, "Bearer tok-{{ run_id }} r1 ${OTHER}");
        assert_eq!(secrets.redact(&value), "Bearer ${TOKEN} r1 ${OTHER}");
        let err = render_header("${ABSENT}", &context, &env, &mut secrets).unwrap_err();
        assert_eq!(err, "environment variable ABSENT is not set on this worker");
    }

    #[test]
    fn a_body_renders_every_string_and_keeps_sole_expressions_typed() {
        let context = json!({"steps": {"read": {"text": "hi", "chunks": [1, 2]}}});
        let body = json!({"input": "{{ steps.read.text }}!", "chunks": "{{ steps.read.chunks }}",
                          "nested": [{"n": 1, "t": "{{ steps.read.text }}"}], "flag": true});
        assert_eq!(
            render_body(&body, &context).unwrap(),
            json!({"input": "hi!", "chunks": [1, 2], "nested": [{"n": 1, "t": "hi"}], "flag": true})
        );
        let err = render_body(&json!({"x": "{{ steps.gone.text }}"}), &context).unwrap_err();
        assert_eq!(err, "`steps.gone` is not in the step's context");
    }

    #[test]
    fn redaction_covers_output_error_and_log() {
        let mut secrets = Secrets::default();
        secrets::expand("${OTHER}", &env, &mut secrets).unwrap();
        let mut ok = AttemptResult {
            outcome: Ok(json!({"echo": "other-secret"})),
            log: Some("sent other-secret".into()),
        };
        ok.redact(&secrets);
        assert_eq!(ok.outcome, Ok(json!({"echo": "${OTHER}"})));
        assert_eq!(ok.log.as_deref(), Some("sent ${OTHER}"));
        let mut failed = AttemptResult {
            outcome: Err(AttemptError::retryable("https://x/?k=other-secret refused")),
            log: None,
        };
        failed.redact(&secrets);
        assert_eq!(
            failed.outcome.unwrap_err().message,
            "https://x/?k=${OTHER} refused"
        );
    }

    #[test]
    fn a_relative_ca_file_is_taken_from_the_step_directory() {
        assert_eq!(
            resolve("certs/ca.pem", Some(Path::new("/srv/flow"))),
            Path::new("/srv/flow/certs/ca.pem")
        );
        assert_eq!(
            resolve("/etc/ca.pem", Some(Path::new("/srv"))),
            Path::new("/etc/ca.pem")
        );
        assert_eq!(resolve("ca.pem", None), Path::new("ca.pem"));
    }
}
