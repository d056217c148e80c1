//! Time as QRS writes it: millisecond precision, `YYYY-MM-DDTHH:MM:SS.sssZ`, and the simulated clock's arithmetic.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::ser::Serializer;

/// `ts + d`, clamped to jiff's range.
pub(crate) fn shift(ts: Timestamp, d: SignedDuration) -> Timestamp {
    ts.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// QRS's date format: `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub(crate) fn format_ts(ts: Timestamp) -> String {
    TsText(ts).to_string()
}

struct TsText(Timestamp);

impl fmt::Display for TsText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = TimeZone::UTC.to_datetime(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.subsec_nanosecond() / 1_000_000
        )
    }
}

/// A timestamp serialized in QRS's format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ts(pub(crate) Timestamp);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&TsText(self.0))
    }
}

/// Truncates to whole milliseconds, the precision QRS stores.
pub(crate) fn millis(ts: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(ts.as_millisecond()).unwrap_or(ts)
}

/// Reads the date formats seen in QRS filters. Dates without a zone are taken as UTC.
pub(crate) fn parse_date(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    // Cheap rejection: every accepted form starts with a four-digit year and a separator.
    let b = text.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || !(b[4] == b'-' || b[4] == b'/') {
        return None;
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let civil = text
        .parse::<DateTime>()
        .ok()
        .or_else(|| DateTime::strptime("%Y/%m/%d %H:%M:%S", text).ok())
        .or_else(|| DateTime::strptime("%Y-%m-%d %H:%M:%S", text).ok())
        .or_else(|| DateTime::strptime("%Y/%m/%d", text).ok())?;
    TimeZone::UTC.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn timestamps_use_qrs_format() {
        assert_eq!(
            format_ts(ts("2024-01-31T19:44:28.951234Z")),
            "2024-01-31T19:44:28.951Z"
        );
        assert_eq!(
            format_ts(ts("1753-01-01T00:00:00Z")),
            "1753-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_ts(ts("0001-01-01T00:00:00Z")),
            "0001-01-01T00:00:00.000Z"
        );
    }
}
