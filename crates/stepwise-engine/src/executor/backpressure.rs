//! Back-pressure from outside (docs/design.md "Rate limits and fairness"): a
//! service that says "not now, come back in N" is retried after N rather than after
//! the backoff, and its rate limit key pauses as long. An `exec` step says it by
//! exiting 75 with `{"retry_after": "30s"}` on stdout, an `http` step's service by
//! answering 429 or 503 with `Retry-After`.

use std::time::{Duration, SystemTime};

/// Exit code with which an `exec` step says "the service asked me to retry later"
/// (sysexits' `EX_TEMPFAIL`).
pub const EXIT_RETRY_LATER: i32 = 75;

/// The longest delay a service is taken at its word for: a misread or hostile
/// `Retry-After` must not park a step (and pause its key) for a year.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The `retry_after` an `exec` step printed on stdout: a duration such as `"500ms"`,
/// `"30s"` or `"2m"`, or a number of seconds. The error says what was wrong, for the
/// attempt's error text.
pub fn exec_retry_after(stdout: &str) -> Result<Duration, String> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|_| "stdout is not a JSON object with retry_after".to_string())?;
    let Some(after) = value.get("retry_after") else {
        return Err("stdout has no retry_after".into());
    };
    let delay = match after {
        serde_json::Value::String(text) => humantime::parse_duration(text.trim())
            .map_err(|_| format!("retry_after {text:?} is not a duration such as \"30s\""))?,
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("retry_after {n} is not a number of seconds"))?,
        other => {
            return Err(format!(
                "retry_after {other} is neither a duration nor seconds"
            ))
        }
    };
    Ok(delay.min(MAX_RETRY_AFTER))
}

/// A `Retry-After` header's delay: delta-seconds, or an HTTP-date, which the
/// worker's clock only turns into a delay (a date already past is no delay); the
/// database clock decides when the retry starts. `None` when it is neither.
pub fn http_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The delay as the error text says it: `30s`, `500ms`, `2m 30s`.
pub fn describe(delay: Duration) -> String {
    if delay.is_zero() {
        return "0s".into();
    }
    // Whole milliseconds: nobody wants to read nanoseconds in an error.
    let rounded = Duration::from_millis(delay.as_millis().max(1) as u64);
    humantime::format_duration(rounded).to_string()
}

/// The sentence every back-pressured attempt's error ends with.
pub fn asked(delay: Duration) -> String {
    format!("the service asked to retry after {}", describe(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_retry_after_takes_durations_and_seconds() {
        let parse = |s: &str| exec_retry_after(s);
        assert_eq!(
            parse(r#"{"retry_after": "30s"}"#),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            parse(r#"{"retry_after": "500ms"}"#),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            parse("{\"retry_after\": \"2m\", \"why\": \"quota\"}\n"),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(parse(r#"{"retry_after": 5}"#), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse(r#"{"retry_after": 1.5}"#),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse(r#"{"retry_after": "400d"}"#),
            Ok(MAX_RETRY_AFTER),
            "bounded"
        );
    }

    #[test]
    fn exec_retry_after_says_what_is_wrong() {
        let err = |s: &str| exec_retry_after(s).unwrap_err();
        assert_eq!(err("busy"), "stdout is not a JSON object with retry_after");
        assert_eq!(err(r#"{"wait": "3s"}"#), "stdout has no retry_after");
        assert_eq!(
            err(r#"{"retry_after": "soon"}"#),
            "retry_after \"soon\" is not a duration such as \"30s\""
        );
        assert_eq!(
            err(r#"{"retry_after": -1}"#),
            "retry_after -1 is not a number of seconds"
        );
        assert_eq!(
            err(r#"{"retry_after": null}"#),
            "retry_after null is neither a duration nor seconds"
        );
    }

    #[test]
    fn retry_after_headers_take_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(http_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(http_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            http_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms an HTTP/1.1 client must still read.
        assert_eq!(
            http_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            http_retry_after("Sun Nov  6 08:49:47 1994", now),
            Some(Duration::from_secs(10))
        );
        // A date already past: come back now.
        assert_eq!(
            http_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            http_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(http_retry_after("-5", now), None);
        assert_eq!(http_retry_after("soon", now), None);
        assert_eq!(http_retry_after("", now), None);
    }

    #[test]
    fn delays_read_as_people_write_them() {
        assert_eq!(
            asked(Duration::from_secs(30)),
            "the service asked to retry after 30s"
        );
        assert_eq!(describe(Duration::from_millis(500)), "500ms");
        assert_eq!(describe(Duration::from_secs(150)), "2m 30s");
        assert_eq!(describe(Duration::from_nanos(10)), "1ms");
        assert_eq!(describe(Duration::ZERO), "0s");
    }
}
