//! `http` steps: POST (or the configured method) the context as JSON; a 2xx JSON
//! body is the output. 4xx other than 408 and 429 will not get better by retrying.

use super::{AttemptError, AttemptInput, AttemptResult};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const BODY_EXCERPT: usize = 500;

pub async fn run(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    input: &AttemptInput,
    stop: &CancellationToken,
) -> AttemptResult {
    let method = match reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return permanent(format!("invalid HTTP method {method:?}")),
    };
    let body = serde_json::to_vec(&input.context).unwrap_or_default();
    let mut request = client
        .request(method, url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in &input.env {
        if let Some(header) = name.strip_prefix("STEPWISE_") {
            request = request.header(
                format!("stepwise-{}", header.to_ascii_lowercase().replace('_', "-")),
                value,
            );
        }
    }
    let response = tokio::select! {
        r = request.send() => r,
        _ = stop.cancelled() => return retryable("stopped by the worker".into(), None),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => return retryable(format!("request to {url} failed: {e}"), None),
    };
    let status = response.status();
    let text = tokio::select! {
        t = response.text() => t.unwrap_or_default(),
        _ = stop.cancelled() => return retryable("stopped by the worker".into(), None),
    };
    let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
    if status.is_success() {
        let output = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        return AttemptResult {
            outcome: Ok(output),
            log: Some(format!("HTTP {status}\n{excerpt}")),
        };
    }
    let message = format!("HTTP {status}: {excerpt}");
    let code = status.as_u16();
    let retry = !(400..500).contains(&code) || code == 408 || code == 429;
    AttemptResult {
        outcome: Err(AttemptError {
            message: message.clone(),
            retryable: retry,
        }),
        log: Some(message),
    }
}

fn permanent(message: String) -> AttemptResult {
    AttemptResult {
        outcome: Err(AttemptError::permanent(message)),
        log: None,
    }
}

fn retryable(message: String, log: Option<String>) -> AttemptResult {
    AttemptResult {
        outcome: Err(AttemptError::retryable(message)),
        log,
    }
}
