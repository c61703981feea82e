//! The rate limit series of `GET /metrics`, read from the database at scrape time
//! like the queue gauges: what every worker admitted, not just this process.

use std::fmt::Write;
use stepwise_store::LimitView;

/// At most this many keys get series of their own: a key per tenant must not grow
/// the scrape without bound. Keys are taken in name order, so the set is stable
/// from one scrape to the next (a counter that comes and goes breaks `rate()`);
/// `stepwise_rate_limit_keys` says how many there are in all.
pub const MAX_KEYS: usize = 1000;

/// The series, in the text format, for `limits` (in key order, as the store lists
/// them).
pub fn render(limits: &[LimitView], escape: impl Fn(&str) -> String) -> String {
    let shown = &limits[..limits.len().min(MAX_KEYS)];
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&LimitView) -> u64| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for l in shown {
            let _ = writeln!(text, "{name}{{key=\"{}\"}} {}", escape(&l.key), value(l));
        }
    };
    family(
        "stepwise_rate_limit_admitted_total",
        "counter",
        "Starts a rate limit key admitted, per key (the first 1000 keys by name).",
        &|l| l.admitted,
    );
    family(
        "stepwise_rate_limit_waiting",
        "gauge",
        "Claimable steps waiting for their rate limit key to admit them, per key.",
        &|l| l.waiting,
    );
    family(
        "stepwise_rate_limit_paused",
        "gauge",
        "1 while a rate limit key is paused (limits pause, or a service's Retry-After), else 0.",
        &|l| u64::from(l.paused_until.is_some()),
    );
    let _ = writeln!(
        text,
        "# HELP stepwise_rate_limit_keys Rate limit keys, all of them (series are kept for the first {MAX_KEYS}).\n\
         # TYPE stepwise_rate_limit_keys gauge\nstepwise_rate_limit_keys {}",
        limits.len()
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, admitted: u64, paused: bool) -> LimitView {
        LimitView {
            key: name.into(),
            limit: 10,
            per_ms: 1000,
            burst: 1,
            overridden: false,
            paused_until: paused.then(chrono::Utc::now),
            admitted,
            waiting: 3,
            next_start: None,
        }
    }

    #[test]
    fn each_key_gets_its_series_up_to_the_bound() {
        let text = render(&[key("api:\"a\"", 7, true), key("b", 0, false)], |v| {
            v.replace('"', "\\\"")
        });
        assert!(text.contains("# TYPE stepwise_rate_limit_admitted_total counter"));
        assert!(text.contains("stepwise_rate_limit_admitted_total{key=\"api:\\\"a\\\"\"} 7"));
        assert!(text.contains("stepwise_rate_limit_waiting{key=\"b\"} 3"));
        assert!(text.contains("stepwise_rate_limit_paused{key=\"api:\\\"a\\\"\"} 1"));
        assert!(text.contains("stepwise_rate_limit_paused{key=\"b\"} 0"));
        let many: Vec<LimitView> = (0..MAX_KEYS + 5)
            .map(|i| key(&format!("k{i:05}"), 1, false))
            .collect();
        let text = render(&many, |v| v.to_string());
        let series = text
            .lines()
            .filter(|l| l.starts_with("stepwise_rate_limit_waiting{"))
            .count();
        assert_eq!(series, MAX_KEYS);
        assert!(text.contains(&format!("stepwise_rate_limit_keys {}", MAX_KEYS + 5)));
    }
}
