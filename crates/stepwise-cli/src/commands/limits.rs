//! `stepwise limits [list] | set | pause | resume` (docs/design.md "Rate limits and
//! fairness"): exit 2 for bad input, 4 for a key that does not exist (`set` creates
//! one; pausing or resuming a key nobody declared is a typo).

use super::schedules::time;
use super::CliError;
use crate::output::outln;
use chrono::{DateTime, Utc};
use std::time::Duration;
use stepwise_store::{LimitSetting, LimitView, PauseUntil, Store};

/// `600/1m`: a key's limit as the workflow file writes it.
pub fn rate(view: &LimitView) -> String {
    format!("{}/{}", view.limit, per(view.per_ms))
}

fn per(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms))
        .to_string()
        .replace(' ', "")
}

pub async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let limits = store.list_limits().await?;
    if json {
        outln!("{}", serde_json::to_string(&limits)?);
        return Ok(());
    }
    if limits.is_empty() {
        eprintln!(
            "no rate limit keys: a step with rate_limit = {{ key, limit, per }} makes one \
             when its run starts, or `stepwise limits set KEY --limit N --per D`"
        );
        return Ok(());
    }
    let key_width = limits.iter().map(|l| l.key.len()).max().unwrap_or(0).max(3);
    let rate_width = limits
        .iter()
        .map(|l| rate(l).len())
        .max()
        .unwrap_or(0)
        .max(5);
    outln!(
        "{:<key_width$}  {:<rate_width$}  {:>5}  {:>8}  {:>7}  {:<24}  {:<24}  SET BY",
        "KEY",
        "LIMIT",
        "BURST",
        "ADMITTED",
        "WAITING",
        "PAUSED UNTIL",
        "NEXT START"
    );
    for l in &limits {
        outln!(
            "{:<key_width$}  {:<rate_width$}  {:>5}  {:>8}  {:>7}  {:<24}  {:<24}  {}",
            l.key,
            rate(l),
            l.burst,
            l.admitted,
            l.waiting,
            l.paused_until.map(time).unwrap_or_else(|| "-".into()),
            l.next_start.map(time).unwrap_or_else(|| "now".into()),
            if l.overridden { "operator" } else { "workflow" }
        );
    }
    Ok(())
}

/// What `limits set` is asked.
pub struct SetArgs<'a> {
    pub key: &'a str,
    pub limit: &'a str,
    pub per: Duration,
    pub burst: Option<&'a str>,
    pub json: bool,
}

pub async fn set(store: &dyn Store, args: SetArgs<'_>) -> anyhow::Result<()> {
    let setting = LimitSetting {
        key: args.key.to_string(),
        limit: count("--limit", args.limit)?,
        per_ms: per_ms(args.per)?,
        burst: args
            .burst
            .map(|b| count("--burst", b))
            .transpose()?
            .unwrap_or(1),
    };
    let view = store.set_limit(&setting).await?;
    if args.json {
        outln!("{}", serde_json::to_string(&view)?);
    } else {
        outln!("{} {} burst {}", view.key, rate(&view), view.burst);
    }
    eprintln!(
        "rate limit key {:?}: {} starts per {}, burst {} ({} waiting); workflow files no \
         longer change it",
        view.key,
        view.limit,
        per(view.per_ms),
        view.burst,
        view.waiting
    );
    Ok(())
}

/// A whole number of at least 1 (the store bounds it above).
fn count(flag: &str, text: &str) -> anyhow::Result<u32> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(CliError::input(format!(
            "{flag} must be a whole number of at least 1, not {text:?}"
        ))),
    }
}

fn per_ms(per: Duration) -> anyhow::Result<u64> {
    match u64::try_from(per.as_millis()) {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err(CliError::input(format!(
            "--per must be at least 1ms, not {}",
            humantime::format_duration(per)
        ))),
    }
}

/// What `limits pause` is asked: exactly one of `until` and `for`.
pub struct PauseArgs<'a> {
    pub key: &'a str,
    pub until: Option<&'a str>,
    pub for_: Option<Duration>,
    pub json: bool,
}

pub async fn pause(store: &dyn Store, args: PauseArgs<'_>) -> anyhow::Result<()> {
    let until = match (args.until, args.for_) {
        (Some(text), None) => PauseUntil::At(future(store, text).await?),
        (None, Some(d)) if d.is_zero() => {
            return Err(CliError::input("--for must be longer than 0s"))
        }
        (None, Some(d)) => PauseUntil::For(d),
        _ => return Err(CliError::input("give one of --until T and --for D")),
    };
    let Some(view) = store.pause_limit(args.key, until).await? else {
        return Err(unknown(store, args.key).await);
    };
    if args.json {
        outln!("{}", serde_json::to_string(&view)?);
    }
    let until = view.paused_until.map(time).unwrap_or_else(|| "now".into());
    eprintln!(
        "rate limit key {:?} paused until {until}: its steps start no sooner (stepwise \
         limits resume {} ends the pause)",
        view.key, view.key
    );
    Ok(())
}

/// An RFC 3339 time after the database's now: a pause that has already ended is a
/// mistake worth saying.
async fn future(store: &dyn Store, text: &str) -> anyhow::Result<DateTime<Utc>> {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(text)
        .map(Into::into)
        .map_err(|e| {
            CliError::input(format!(
                "--until {text:?} is not an RFC 3339 time such as 2026-12-01T02:00:00Z: {e}"
            ))
        })?;
    let now = store.now().await?;
    if at <= now {
        return Err(CliError::input(format!(
            "--until {} is not in the future (the database's clock says {})",
            time(at),
            time(now)
        )));
    }
    Ok(at)
}

pub async fn resume(store: &dyn Store, key: &str, json: bool) -> anyhow::Result<()> {
    let Some(view) = store.resume_limit(key).await? else {
        return Err(unknown(store, key).await);
    };
    if json {
        outln!("{}", serde_json::to_string(&view)?);
    }
    let next = view
        .next_start
        .map(|t| format!("; next start {}", time(t)))
        .unwrap_or_default();
    eprintln!("rate limit key {:?} resumed{next}", view.key);
    Ok(())
}

/// Exit 4, naming a few of the keys there are.
async fn unknown(store: &dyn Store, key: &str) -> anyhow::Error {
    let known: Vec<String> = match store.list_limits().await {
        Ok(all) => all.into_iter().map(|l| l.key).collect(),
        Err(e) => return e.into(),
    };
    CliError::not_found(match known.len() {
        0 => format!("no rate limit key {key:?} (no step has used a rate limit yet)"),
        n if n <= 20 => format!("no rate limit key {key:?}; keys: {}", known.join(", ")),
        n => format!(
            "no rate limit key {key:?}; {n} keys, among them: {}",
            known[..20].join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_files_write_them() {
        assert_eq!(per(60_000), "1m");
        assert_eq!(per(1_500), "1s500ms");
        assert!(count("--limit", "0").is_err());
        assert!(count("--limit", "-3").is_err());
        assert_eq!(count("--burst", " 7 ").unwrap(), 7);
        assert!(per_ms(Duration::from_micros(10)).is_err());
    }
}
