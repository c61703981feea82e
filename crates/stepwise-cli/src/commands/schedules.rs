//! `stepwise schedules [list] | pause | resume | trigger | backfill` (docs/design.md
//! "Schedules"): exit 4 for an unknown schedule, 2 for bad input.

use super::CliError;
use crate::output::outln;
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use stepwise_core::{Recurrence, ScheduleSpec};
use stepwise_store::{Backfill, FireOutcome, ScheduleFire, ScheduleView, Store, MAX_BACKFILL};

/// How many recent runs `schedules list` prints under each schedule.
const SHOWN_RUNS: usize = 3;

/// Fire times per backfill transaction: small enough that the progress bar moves
/// and one transaction stays short, large enough not to cost a round trip each.
const BACKFILL_CHUNK: usize = 50;

/// A time as every schedule command prints it: RFC 3339, UTC.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `cron "0 2 * * *" Europe/Paris` or `every 15m UTC`.
pub fn recurrence(spec: &ScheduleSpec) -> String {
    match &spec.recurrence {
        Recurrence::Cron(expr) => format!("cron \"{expr}\" {}", spec.timezone),
        Recurrence::EveryMs(ms) => format!(
            "every {} {}",
            humantime::format_duration(std::time::Duration::from_millis(*ms)),
            spec.timezone
        ),
    }
}

pub async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let schedules = store.list_schedules().await?;
    if json {
        outln!("{}", serde_json::to_string(&schedules)?);
        return Ok(());
    }
    if schedules.is_empty() {
        eprintln!("no schedules: declare [[schedules]] in a workflow file and apply it");
        return Ok(());
    }
    let name_width = width(schedules.iter().map(|s| s.spec.name.len()), "NAME");
    let workflow_width = width(schedules.iter().map(|s| s.spec.workflow.len()), "WORKFLOW");
    let when_width = width(schedules.iter().map(|s| recurrence(&s.spec).len()), "WHEN");
    outln!(
        "{:<name_width$}  {:<workflow_width$}  {:<when_width$}  {:<6}  {:<24}  LAST FIRE",
        "NAME",
        "WORKFLOW",
        "WHEN",
        "STATE",
        "NEXT FIRE"
    );
    for s in &schedules {
        outln!(
            "{:<name_width$}  {:<workflow_width$}  {:<when_width$}  {:<6}  {:<24}  {}",
            s.spec.name,
            s.spec.workflow,
            recurrence(&s.spec),
            if s.paused { "paused" } else { "active" },
            s.next_fire_at.map(time).unwrap_or_else(|| "-".into()),
            s.last_fire_at.map(time).unwrap_or_else(|| "-".into()),
        );
        for run in s.recent_runs.iter().take(SHOWN_RUNS) {
            outln!(
                "{:<name_width$}    run {}  for {}  {}",
                "",
                run.run_id,
                time(run.scheduled_for),
                run.status
            );
        }
    }
    Ok(())
}

fn width(lengths: impl Iterator<Item = usize>, header: &str) -> usize {
    lengths.max().unwrap_or(0).max(header.len())
}

pub async fn set_paused(
    store: &dyn Store,
    name: &str,
    paused: bool,
    json: bool,
) -> anyhow::Result<()> {
    let Some(view) = store.set_schedule_paused(name, paused).await? else {
        return Err(unknown(store, name).await);
    };
    if json {
        outln!("{}", serde_json::to_string(&view)?);
    }
    if paused {
        eprintln!(
            "schedule {name} paused: it fires no more until `stepwise schedules resume {name}` \
             (missed fire times then follow catchup = \"{}\")",
            view.spec.catchup.as_str()
        );
    } else {
        let next = view
            .next_fire_at
            .map(|t| format!("; next fire {}", time(t)))
            .unwrap_or_default();
        eprintln!("schedule {name} resumed{next}");
    }
    Ok(())
}

pub async fn trigger(store: &dyn Store, name: &str, json: bool) -> anyhow::Result<()> {
    let Some(fire) = store.trigger_schedule(name).await? else {
        return Err(unknown(store, name).await);
    };
    if json {
        outln!("{}", serde_json::to_string(&fire)?);
    }
    match (fire.outcome, fire.run_id) {
        (FireOutcome::Skipped, _) | (_, None) => Err(CliError::conflict(format!(
            "schedule {name} skips overlapping runs (overlap = \"skip\") and its previous run \
             is not finished: no run was started"
        ))),
        (outcome, Some(run)) => {
            if !json {
                outln!("{run}");
            }
            let how = if outcome == FireOutcome::Existing {
                "already had run"
            } else {
                "started run"
            };
            eprintln!("schedule {name} {how} {run} for {}", time(fire.fire_time));
            Ok(())
        }
    }
}

/// What `schedules backfill` is asked.
pub struct BackfillArgs<'a> {
    pub name: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub json: bool,
}

pub async fn backfill(store: &dyn Store, args: BackfillArgs<'_>) -> anyhow::Result<()> {
    let from = parse_time("--from", args.from)?;
    let to = parse_time("--to", args.to)?;
    if from > to {
        return Err(CliError::input(format!(
            "--from {} is after --to {}",
            time(from),
            time(to)
        )));
    }
    let Some(view) = find(store, args.name).await? else {
        return Err(unknown(store, args.name).await);
    };
    let fire_times = fire_times(&view.spec, from, to)?;
    if fire_times.is_empty() {
        eprintln!(
            "schedule {} has no fire time between {} and {}",
            args.name,
            time(from),
            time(to)
        );
        if args.json {
            outln!("[]");
        }
        return Ok(());
    }
    let bar = ProgressBar::new(fire_times.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} fire times",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut fires: Vec<ScheduleFire> = Vec::with_capacity(fire_times.len());
    for chunk in fire_times.chunks(BACKFILL_CHUNK) {
        let request = Backfill {
            schedule: args.name.to_string(),
            from: chunk[0],
            to: chunk[chunk.len() - 1],
        };
        let Some(done) = store.backfill_schedule(&request).await? else {
            bar.finish_and_clear();
            return Err(CliError::not_found(format!(
                "schedule {} was removed during the backfill ({} of {} fire times done)",
                args.name,
                fires.len(),
                fire_times.len()
            )));
        };
        bar.inc(done.len() as u64);
        if !args.json {
            for fire in &done {
                bar.suspend(|| print_fire(fire))?;
            }
        }
        fires.extend(done);
    }
    bar.finish_and_clear();
    if args.json {
        outln!("{}", serde_json::to_string(&fires)?);
    }
    let count = |o: FireOutcome| fires.iter().filter(|f| f.outcome == o).count();
    eprintln!(
        "schedule {}: {} runs started, {} fire times had their run already, {} skipped",
        args.name,
        count(FireOutcome::Fired),
        count(FireOutcome::Existing),
        count(FireOutcome::Skipped)
    );
    Ok(())
}

fn print_fire(fire: &ScheduleFire) -> anyhow::Result<()> {
    let run = fire
        .run_id
        .map(|r| r.to_string())
        .unwrap_or_else(|| "-".into());
    let outcome = match fire.outcome {
        FireOutcome::Fired => "started",
        FireOutcome::Existing => "existing",
        FireOutcome::Skipped => "skipped",
    };
    outln!("{}  {run}  {outcome}", time(fire.fire_time));
    Ok(())
}

/// Every fire time of `spec` in `from..=to`, refused past [`MAX_BACKFILL`] before
/// anything is written.
fn fire_times(
    spec: &ScheduleSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<DateTime<Utc>>> {
    let timetable = spec
        .validate()
        .map_err(|e| CliError::input(e.to_string()))?;
    let mut times = Vec::new();
    // As the store counts them (fire times are whole milliseconds): `from` itself
    // is included when it is a fire time.
    let mut t = timetable.next_after(from - chrono::Duration::milliseconds(1));
    while let Some(fire) = t.filter(|t| *t <= to) {
        if times.len() == MAX_BACKFILL {
            return Err(CliError::input(format!(
                "{} to {} holds more than {MAX_BACKFILL} fire times of schedule {}: \
                 backfill at most {MAX_BACKFILL} at once",
                time(from),
                time(to),
                spec.name
            )));
        }
        times.push(fire);
        t = timetable.next_after(fire);
    }
    Ok(times)
}

fn parse_time(flag: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(Into::into)
        .map_err(|e| {
            CliError::input(format!(
                "{flag} {text:?} is not an RFC 3339 time such as 2026-12-01T02:00:00Z: {e}"
            ))
        })
}

async fn find(store: &dyn Store, name: &str) -> anyhow::Result<Option<ScheduleView>> {
    Ok(store
        .list_schedules()
        .await?
        .into_iter()
        .find(|s| s.spec.name == name))
}

/// Exit 4, naming the schedules there are.
async fn unknown(store: &dyn Store, name: &str) -> anyhow::Error {
    let known: Vec<String> = match store.list_schedules().await {
        Ok(all) => all.into_iter().map(|s| s.spec.name).collect(),
        Err(e) => return e.into(),
    };
    CliError::not_found(if known.is_empty() {
        format!("no schedule {name:?} (no workflow declares any schedule)")
    } else {
        format!("no schedule {name:?}; schedules: {}", known.join(", "))
    })
}
