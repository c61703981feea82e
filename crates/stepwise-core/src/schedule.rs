//! Schedules: when a workflow runs by itself (docs/design.md "Schedules").
//!
//! A schedule is data: a cron expression (five fields, in an IANA time zone) or a
//! fixed interval, the run's input, and what to do about overlaps and missed fire
//! times. This module knows the fire times; the store decides, by the database
//! clock, which of them are due and fires each exactly once.
//!
//! Fire times are deterministic, so every process computes the same ones: an `every`
//! schedule fires at multiples of its interval since the Unix epoch (UTC); a cron
//! schedule where its expression matches local time. Daylight saving: a local time
//! that does not exist fires once at the next valid instant (croner's rule for a
//! fixed-time job), and a local time that occurs twice fires once, at its first
//! occurrence (the second is skipped here, also for interval patterns).

use chrono::{DateTime, LocalResult, SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;
use std::time::Duration;

/// How many missed fire times `catchup = "all"` fires at most.
pub const MAX_CATCHUP: usize = 100;

/// A fire time this close to now (or closer) is on time, not missed: `catchup =
/// "none"` still fires it, and when the oldest unfired time is this recent every due
/// time fires. Schedulers poll; a fire a few seconds late is not a miss.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// The shortest `every`.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// One `[[schedules]]` entry of a workflow file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Global: two workflows cannot declare the same schedule name.
    pub name: String,
    /// The workflow it starts (the file's).
    pub workflow: String,
    pub recurrence: Recurrence,
    /// IANA name, e.g. `Europe/Paris`; cron expressions match this zone's local time.
    pub timezone: String,
    /// The input of every run it starts.
    pub input: Value,
    pub overlap: Overlap,
    pub catchup: Catchup,
}

/// When a schedule fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    /// Five fields: minute hour day-of-month month day-of-week.
    Cron(String),
    /// Every this many milliseconds, at multiples since the Unix epoch.
    EveryMs(u64),
}

/// What a fire does while the schedule's previous run is not terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Record the fire as skipped.
    Skip,
    /// Start the run behind the previous one (FIFO, one at a time).
    #[default]
    Queue,
    /// Start it regardless.
    Allow,
}

/// What happens to fire times missed while nothing ran (or the schedule was paused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// Skip them.
    None,
    /// Fire once, for the most recent.
    #[default]
    Latest,
    /// Fire each, oldest first, at most [`MAX_CATCHUP`] (the most recent ones).
    All,
}

macro_rules! text_names {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
text_names!(Overlap { Skip => "skip", Queue => "queue", Allow => "allow" });
text_names!(Catchup { None => "none", Latest => "latest", All => "all" });

/// Why a schedule was refused: the field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("schedule {schedule:?}: {field} {problem}")]
pub struct ScheduleError {
    pub schedule: String,
    /// `name`, `cron`, `every`, `timezone`, `input`.
    pub field: &'static str,
    pub problem: String,
}

/// A validated schedule, ready to compute fire times.
#[derive(Clone, Debug)]
pub struct Timetable {
    zone: chrono_tz::Tz,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Cron(Box<croner::Cron>),
    Every(i64),
}

impl ScheduleSpec {
    /// Checks the name, the expression or interval, and the time zone.
    pub fn validate(&self) -> Result<Timetable, ScheduleError> {
        let err = |field, problem: String| ScheduleError {
            schedule: self.name.clone(),
            field,
            problem,
        };
        if !crate::spec::valid_name(&self.name) {
            return Err(err(
                "name",
                "is not valid: use 1-128 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        let zone = chrono_tz::Tz::from_str(&self.timezone).map_err(|_| {
            err(
                "timezone",
                format!(
                    "{:?} is not an IANA time zone such as \"Europe/Paris\" or \"UTC\"",
                    self.timezone
                ),
            )
        })?;
        let kind = match &self.recurrence {
            Recurrence::Cron(expr) => {
                let fields = expr.split_whitespace().count();
                if fields != 5 {
                    return Err(err(
                        "cron",
                        format!("{expr:?} has {fields} fields; write five: minute hour day-of-month month day-of-week"),
                    ));
                }
                let cron = croner::Cron::from_str(expr)
                    .map_err(|e| err("cron", format!("{expr:?} is not a cron expression: {e}")))?;
                Kind::Cron(Box::new(cron))
            }
            Recurrence::EveryMs(ms) => {
                if *ms < MIN_EVERY.as_millis() as u64 || *ms > 366 * 86_400_000 {
                    return Err(err("every", "must be between 1s and 366 days".into()));
                }
                Kind::Every(*ms as i64)
            }
        };
        Ok(Timetable { zone, kind })
    }
}

impl Timetable {
    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(ms) => {
                let at = t.timestamp_millis();
                let next = (at.div_euclid(*ms) + 1).checked_mul(*ms)?;
                DateTime::from_timestamp_millis(next)
            }
            Kind::Cron(cron) => {
                // Whole seconds: croner carries a fraction of the start into the time it
                // snaps to after a DST gap.
                let t = t.trunc_subsecs(0);
                let mut from = t.with_timezone(&self.zone);
                // A bounded walk: each step moves forward; a pattern that never matches
                // (February 30th) ends it.
                for _ in 0..8 {
                    let next = cron.find_next_occurrence(&from, false).ok()?;
                    if self.first_occurrence(&next) {
                        return Some(next.with_timezone(&Utc));
                    }
                    from = next;
                }
                None
            }
        }
    }

    /// The last fire time at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(ms) => {
                let at = t.timestamp_millis();
                DateTime::from_timestamp_millis(at.div_euclid(*ms).checked_mul(*ms)?)
            }
            Kind::Cron(_) => {
                // Backwards searches across DST gaps are where cron libraries differ;
                // walking forward from a day earlier uses only the forward rules.
                let mut at = self.next_after(t - chrono::Duration::days(1))?;
                if at > t {
                    // Nothing in the last day: look further back, a week, then a year.
                    for days in [8, 367] {
                        at = self.next_after(t - chrono::Duration::days(days))?;
                        if at <= t {
                            break;
                        }
                    }
                    if at > t {
                        return None;
                    }
                }
                loop {
                    match self.next_after(at) {
                        Some(next) if next <= t => at = next,
                        _ => return Some(at),
                    }
                }
            }
        }
    }

    /// False for the second instant of a local time that occurs twice.
    fn first_occurrence(&self, at: &DateTime<chrono_tz::Tz>) -> bool {
        match self.zone.from_local_datetime(&at.naive_local()) {
            LocalResult::Ambiguous(first, _) => first == *at,
            _ => true,
        }
    }
}

/// Which fire times a due schedule fires now, and when it is due next.
#[derive(Clone, Debug, PartialEq)]
pub struct FirePlan {
    /// Oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Whether due fire times were left out (by `catchup`).
    pub missed: bool,
    pub next: Option<DateTime<Utc>>,
}

/// The fires of a schedule due since `due` (its next fire time not yet fired), at
/// `now` (the database clock).
pub fn plan_fires(
    timetable: &Timetable,
    catchup: Catchup,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> FirePlan {
    let next = timetable.next_after(now);
    if due > now {
        return FirePlan {
            fire: vec![],
            missed: false,
            next: Some(due),
        };
    }
    // The due fire times, newest first, counted up to one past what any policy keeps.
    let mut recent = Vec::new();
    let mut at = timetable.last_at_or_before(now);
    let mut more = false;
    while let Some(t) = at {
        if t < due {
            break;
        }
        if recent.len() == MAX_CATCHUP {
            more = true;
            break;
        }
        recent.push(t);
        at = timetable.last_at_or_before(t - chrono::Duration::milliseconds(1));
    }
    if recent.is_empty() {
        return FirePlan {
            fire: vec![],
            missed: false,
            next,
        };
    }
    // A pass at most ON_TIME late (the first unfired time is that recent) missed
    // nothing: every due time fires, whatever the policy, so a loaded machine does
    // not drop a short schedule's fires. Past that, the process was down (or the
    // schedule paused) and the policy decides.
    let late = |t: DateTime<Utc>| (now - t).to_std().map_or(true, |l| l <= ON_TIME);
    let keep = match catchup {
        _ if late(due) && !more => recent.len(),
        Catchup::All => recent.len(),
        Catchup::Latest => 1,
        Catchup::None => usize::from(late(recent[0])),
    };
    let missed = more || keep < recent.len();
    let mut fire: Vec<_> = recent.into_iter().take(keep).collect();
    fire.reverse();
    FirePlan { fire, missed, next }
}

/// The idempotency key of the run a schedule starts for one fire time.
pub fn run_key(schedule: &str, fire_time: DateTime<Utc>) -> String {
    format!(
        "schedule:{schedule}:{}",
        fire_time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    )
}

#[cfg(test)]
mod tests;
