//! Calendar periods of budgets: the day and month an instant falls in, in the
//! configured time zone, and when each ends.
//!
//! agentd computes the period from its own clock and passes it to the state
//! store as part of the counter's key, so the embedded and Redis stores agree
//! and tests drive rollovers with the injectable clock. Between replicas whose
//! clocks differ by δ, the one ahead starts charging the next day δ early:
//! each day's counter still never passes its limit, but for δ around midnight
//! spending meant for the old day lands on the new one, so up to "what was
//! left of the old day plus all of the new day" can be spent near a boundary.
//! NTP keeps δ to milliseconds.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

/// The calendar periods an instant falls in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Periods {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// When the day ends (the next day's first instant), in Unix milliseconds.
    pub day_end_ms: i64,
    /// When the month ends, in Unix milliseconds.
    pub month_end_ms: i64,
}

/// The periods `unix_ms` falls in, in `zone`. Out-of-range instants are
/// clamped to jiff's supported range (years -9999 to 9999).
pub fn periods(unix_ms: i64, zone: &TimeZone) -> Periods {
    let at = Timestamp::from_millisecond(unix_ms).unwrap_or(if unix_ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    let date = at.to_zoned_datetime(zone.clone()).date();
    let first_of_month = date.first_of_month();
    Periods {
        day: date.to_string(),
        month: format!("{:04}-{:02}", date.year(), date.month()),
        day_end_ms: start_ms(date.checked_add(1.day()).ok(), zone),
        month_end_ms: start_ms(first_of_month.checked_add(1.month()).ok(), zone),
    }
}

/// The first instant of `date` in `zone` (the start of a day is not always
/// midnight: some zones skip it), or the end of time when there is no such
/// date.
fn start_ms(date: Option<Date>, zone: &TimeZone) -> i64 {
    date.and_then(|date| date.to_zoned_datetime(zone.clone()).ok())
        .and_then(|zoned| zoned.start_of_day().ok())
        .map_or(i64::MAX, |start| start.timestamp().as_millisecond())
}

/// The days from `from` to `to` (`YYYY-MM-DD`, both included), at most
/// `limit` of them; empty when either does not parse or `to` is before `from`.
pub fn days_between(from: &str, to: &str, limit: usize) -> Vec<String> {
    let (Ok(mut day), Ok(last)) = (from.parse::<Date>(), to.parse::<Date>()) else {
        return Vec::new();
    };
    let mut days = Vec::new();
    while day <= last && days.len() < limit {
        days.push(day.to_string());
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::clock::Clock;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_day_and_month_roll_over_at_local_midnight() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // 22:59:59.999 UTC on Dec 31 is 23:59:59.999 in Berlin.
        let clock = Clock::manual(
            SystemTime::UNIX_EPOCH + Duration::from_millis(ms("2026-12-31T22:59:59.999Z") as u64),
        );
        let before = periods(clock.unix_ms(), &berlin);
        assert_eq!(before.day, "2026-12-31");
        assert_eq!(before.month, "2026-12");
        assert_eq!(before.day_end_ms, ms("2026-12-31T23:00:00Z"));
        assert_eq!(before.month_end_ms, before.day_end_ms);
        clock.advance(Duration::from_millis(1));
        let after = periods(clock.unix_ms(), &berlin);
        assert_eq!(after.day, "2027-01-01");
        assert_eq!(after.month, "2027-01");
        assert_eq!(after.month_end_ms, ms("2027-01-31T23:00:00Z"));
        // The same instant is still 2026 in UTC.
        assert_eq!(periods(clock.unix_ms(), &TimeZone::UTC).day, "2026-12-31");
    }

    #[test]
    fn a_day_with_a_clock_change_is_23_or_25_hours() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let spring = periods(ms("2026-03-29T00:30:00Z"), &berlin);
        assert_eq!(spring.day, "2026-03-29");
        assert_eq!(
            spring.day_end_ms - ms("2026-03-28T23:00:00Z"),
            23 * 3_600_000
        );
        let autumn = periods(ms("2026-10-25T12:00:00Z"), &berlin);
        assert_eq!(
            autumn.day_end_ms - ms("2026-10-24T22:00:00Z"),
            25 * 3_600_000
        );
    }

    #[test]
    fn february_and_leap_years() {
        let utc = TimeZone::UTC;
        assert_eq!(
            periods(ms("2028-02-29T12:00:00Z"), &utc).month_end_ms,
            ms("2028-03-01T00:00:00Z")
        );
        assert_eq!(periods(ms("2027-02-28T23:59:59Z"), &utc).day, "2027-02-28");
        assert_eq!(periods(ms("2027-03-01T00:00:00Z"), &utc).month, "2027-03");
    }

    #[test]
    fn days_between_is_inclusive_and_bounded() {
        assert_eq!(
            days_between("2026-02-27", "2026-03-01", 31),
            ["2026-02-27", "2026-02-28", "2026-03-01"]
        );
        assert_eq!(days_between("2026-01-01", "2026-12-31", 31).len(), 31);
        assert!(days_between("2026-03-02", "2026-03-01", 31).is_empty());
        assert!(days_between("yesterday", "2026-03-01", 31).is_empty());
    }
}
