//! A policy's schedule: a parsed cron expression in a parsed IANA time zone.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The time zone is not an IANA name.
    #[error("{0}")]
    TimeZone(String),
    /// The cron expression cannot be read.
    #[error("{0}")]
    Expression(String),
}

/// When a policy runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    time_zone: TimeZone,
}

impl Schedule {
    /// Parse `spec.schedule` in `spec.timeZone`. Five fields, or six with leading seconds (handy for tests and
    /// demos), or an `@hourly`-style alias.
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let tz_name = if time_zone.trim().is_empty() {
            "UTC"
        } else {
            time_zone.trim()
        };
        let time_zone = TimeZone::get(tz_name).map_err(|_| {
            ScheduleError::TimeZone(format!(
                "{tz_name:?} is not an IANA time zone name (for example UTC or Europe/Oslo)"
            ))
        })?;
        let expression = expression.trim();
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(ScheduleError::Expression(format!(
                "{expression:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week), 6 with leading seconds, or @hourly/@daily/@weekly/@monthly/@yearly"
            )));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expression).map_err(|e| {
            ScheduleError::Expression(format!(
                "{expression:?} is not a valid cron expression: {e}"
            ))
        })?;
        Ok(Self { cron, time_zone })
    }

    /// The first scheduled instant strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = Zoned::new(after, self.time_zone.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The latest scheduled instant at or before `at`, if any within a year (catch-up after downtime).
    pub fn previous_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let start = Zoned::new(at, self.time_zone.clone());
        self.cron
            .find_previous_occurrence(&start, true)
            .ok()
            .map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ts;

    #[test]
    fn daily_in_a_time_zone() {
        let s = Schedule::parse("0 3 * * *", "Europe/Oslo").unwrap();
        let noon = ts("2026-11-22T12:00:00Z");
        // 03:00 in Oslo in winter is 02:00 UTC.
        assert_eq!(s.next_after(noon), Some(ts("2026-11-23T02:00:00Z")));
        assert_eq!(
            s.previous_at_or_before(noon),
            Some(ts("2026-11-22T02:00:00Z"))
        );
    }

    #[test]
    fn aliases_and_seconds() {
        let next = |expression: &str, after: &str| {
            let s = Schedule::parse(expression, "UTC").unwrap();
            s.next_after(ts(after)).map(|t| t.to_string())
        };
        assert_eq!(
            next("@hourly", "2026-11-22T12:30:00Z").as_deref(),
            Some("2026-11-22T13:00:00Z")
        );
        assert_eq!(
            next("*/5 * * * * *", "2026-11-22T12:30:01Z").as_deref(),
            Some("2026-11-22T12:30:05Z")
        );
        assert!(
            Schedule::parse("@hourly", "").is_ok(),
            "an empty time zone is UTC"
        );
    }

    #[test]
    fn errors_say_which_part_is_wrong() {
        let e = Schedule::parse("0 3 * *", "UTC").unwrap_err();
        assert!(
            matches!(&e, ScheduleError::Expression(p) if p.contains("has 4 fields")),
            "{e}"
        );
        let e = Schedule::parse("0 25 * * *", "UTC").unwrap_err();
        assert!(matches!(e, ScheduleError::Expression(_)), "{e}");
        let e = Schedule::parse("0 3 * * *", "Mars/Olympus").unwrap_err();
        assert!(
            matches!(&e, ScheduleError::TimeZone(p) if p.contains("Mars/Olympus")),
            "{e}"
        );
    }
}
