use super::*;
use chrono::TimeZone;

fn spec(recurrence: Recurrence, timezone: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: "s".into(),
        workflow: "w".into(),
        recurrence,
        timezone: timezone.into(),
        input: Value::Null,
        overlap: Overlap::Queue,
        catchup: Catchup::Latest,
    }
}

fn cron(expr: &str, tz: &str) -> Timetable {
    spec(Recurrence::Cron(expr.into()), tz).validate().unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn fires_between(t: &Timetable, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = vec![];
    let mut at = from;
    while let Some(next) = t.next_after(at) {
        if next > to {
            break;
        }
        out.push(next);
        at = next;
    }
    out
}

#[test]
fn bad_expressions_and_zones_name_their_field() {
    let e = spec(Recurrence::Cron("0 2 * *".into()), "UTC")
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "cron");
    assert!(e.problem.contains("4 fields"), "{e}");
    let e = spec(Recurrence::Cron("0 25 * * *".into()), "UTC")
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "cron");
    let e = spec(Recurrence::Cron("0 2 * * *".into()), "Europe/Pariss")
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "timezone");
    let e = spec(Recurrence::EveryMs(10), "UTC").validate().unwrap_err();
    assert_eq!(e.field, "every");
}

#[test]
fn every_fires_at_multiples_of_its_interval_since_the_epoch() {
    let t = spec(Recurrence::EveryMs(15 * 60_000), "UTC")
        .validate()
        .unwrap();
    assert_eq!(
        t.next_after(utc(2026, 1, 1, 10, 7)),
        Some(utc(2026, 1, 1, 10, 15))
    );
    assert_eq!(
        t.next_after(utc(2026, 1, 1, 10, 15)),
        Some(utc(2026, 1, 1, 10, 30))
    );
    assert_eq!(
        t.last_at_or_before(utc(2026, 1, 1, 10, 15)),
        Some(utc(2026, 1, 1, 10, 15))
    );
}

/// Paris springs forward on 2026-03-29 at 02:00 (to 03:00): 02:30 does not exist.
#[test]
fn a_local_time_that_does_not_exist_fires_once_at_the_next_valid_instant_paris() {
    let t = cron("30 2 * * *", "Europe/Paris");
    let fires = fires_between(&t, utc(2026, 3, 27, 12, 0), utc(2026, 3, 30, 12, 0));
    // 28th 02:30 CET = 01:30Z; 29th: the gap, 03:00 CEST = 01:00Z; 30th 02:30 CEST = 00:30Z.
    assert_eq!(
        fires,
        vec![
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 30, 0, 30)
        ]
    );
}

/// Paris falls back on 2026-10-25 at 03:00 (to 02:00): 02:30 occurs twice.
#[test]
fn a_local_time_that_occurs_twice_fires_once_at_its_first_occurrence_paris() {
    let t = cron("30 2 * * *", "Europe/Paris");
    let fires = fires_between(&t, utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 12, 0));
    // 25th: first 02:30 is CEST = 00:30Z (the second, 01:30Z, is skipped).
    assert_eq!(
        fires,
        vec![utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    );
    // An interval pattern inside the repeated hour fires once per local time too.
    let t = cron("*/30 2 * * *", "Europe/Paris");
    let fires = fires_between(&t, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0));
    assert_eq!(
        fires,
        vec![utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)]
    );
}

/// New York: spring forward 2026-03-08 02:00 -> 03:00; fall back 2026-11-01 02:00 -> 01:00.
#[test]
fn daylight_saving_in_new_york_fires_each_day_exactly_once() {
    let t = cron("30 2 * * *", "America/New_York");
    let spring = fires_between(&t, utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 0, 0));
    // 7th 02:30 EST = 07:30Z; 8th: the gap, 03:00 EDT = 07:00Z.
    assert_eq!(spring, vec![utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0)]);
    let t = cron("30 1 * * *", "America/New_York");
    let fall = fires_between(&t, utc(2026, 10, 31, 12, 0), utc(2026, 11, 2, 12, 0));
    // 1st: 01:30 EDT = 05:30Z (not 01:30 EST = 06:30Z); 2nd: 01:30 EST = 06:30Z.
    assert_eq!(fall, vec![utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]);
}

#[test]
fn catchup_none_latest_all_after_a_long_gap() {
    let t = spec(Recurrence::EveryMs(60_000), "UTC").validate().unwrap();
    let due = utc(2026, 1, 1, 0, 0);
    let now = utc(2026, 1, 1, 5, 0) + chrono::Duration::seconds(90);
    let latest = plan_fires(&t, Catchup::Latest, due, now);
    assert_eq!(latest.fire, vec![utc(2026, 1, 1, 5, 1)]);
    assert_eq!(latest.next, Some(utc(2026, 1, 1, 5, 2)));
    assert!(latest.missed);
    let none = plan_fires(&t, Catchup::None, due, now);
    assert_eq!(
        none.fire,
        vec![utc(2026, 1, 1, 5, 1)],
        "30s late is on time"
    );
    let hourly = spec(Recurrence::EveryMs(3_600_000), "UTC")
        .validate()
        .unwrap();
    let long_after = utc(2026, 1, 1, 5, 0) + chrono::Duration::seconds(61);
    let stale = plan_fires(&hourly, Catchup::None, due, long_after);
    assert!(stale.fire.is_empty(), "61s late is missed");
    let all = plan_fires(&t, Catchup::All, due, now);
    assert_eq!(all.fire.len(), MAX_CATCHUP);
    assert_eq!(all.fire.last(), Some(&utc(2026, 1, 1, 5, 1)));
    assert!(all.fire.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let few = plan_fires(&t, Catchup::All, utc(2026, 1, 1, 4, 58), now);
    assert_eq!(few.fire.len(), 4);
    assert!(!few.missed);
    assert!(plan_fires(&t, Catchup::All, utc(2026, 1, 1, 6, 0), now)
        .fire
        .is_empty());
}

#[test]
fn run_keys_name_the_schedule_and_the_fire_time_in_utc() {
    assert_eq!(
        run_key("nightly", utc(2026, 3, 29, 1, 0)),
        "schedule:nightly:2026-03-29T01:00:00Z"
    );
}

#[test]
fn a_start_with_a_fraction_of_a_second_still_fires_a_dst_gap_once() {
    let t = cron("30 2 * * *", "America/New_York");
    let from = utc(2027, 3, 13, 12, 0) + chrono::Duration::milliseconds(4);
    let fires = fires_between(&t, from, utc(2027, 3, 15, 0, 0));
    assert_eq!(fires, vec![utc(2027, 3, 14, 7, 0)]);
}

#[test]
fn a_pass_a_little_late_fires_every_due_time_whatever_the_policy() {
    let t = spec(Recurrence::EveryMs(1_000), "UTC").validate().unwrap();
    let due = utc(2026, 1, 1, 0, 0);
    // A pass three seconds late: 00:00:00, :01, :02 and :03 are all on time.
    let now = due + chrono::Duration::milliseconds(3_500);
    for catchup in [Catchup::None, Catchup::Latest, Catchup::All] {
        let plan = plan_fires(&t, catchup, due, now);
        assert_eq!(plan.fire.len(), 4, "{catchup:?}");
        assert!(!plan.missed);
    }
    // Two hours down: the policy decides.
    let later = due + chrono::Duration::hours(2);
    assert_eq!(plan_fires(&t, Catchup::None, due, later).fire.len(), 1);
    assert_eq!(plan_fires(&t, Catchup::Latest, due, later).fire.len(), 1);
    assert_eq!(
        plan_fires(&t, Catchup::All, due, later).fire.len(),
        MAX_CATCHUP
    );
}
