//! Durations and times of the alert configuration: `"30s"`, `"5m"`, `"4h"`, `"1h 30m"`
//! (humantime's syntax; `"0s"` is allowed), kept as milliseconds; and RFC 3339 times.

use crate::error::{Error, Result};

/// Parses a duration into milliseconds; `what` names the setting in the error.
pub(crate) fn parse_ms(text: &str, what: &str) -> Result<u64> {
    humantime::parse_duration(text.trim())
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            Error::config(format!(
                "{what} = {text:?} is not a duration (write e.g. \"30s\", \"5m\", \"4h\")"
            ))
        })
}

/// Parses an optional duration; `None` stays `None`.
pub(crate) fn parse_opt_ms(text: Option<&str>, what: &str) -> Result<Option<u64>> {
    text.map(|t| parse_ms(t, what)).transpose()
}

/// Parses an RFC 3339 time (`2030-01-01T00:00:00Z`) into milliseconds since the epoch.
pub(crate) fn parse_time_ms(text: &str, what: &str) -> Result<u64> {
    humantime::parse_rfc3339_weak(text.trim())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            Error::config(format!(
                "{what} = {text:?} is not an RFC 3339 time (write e.g. \"2030-01-01T00:00:00Z\")"
            ))
        })
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub(crate) fn format_time_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Formats a measured value for a summary: integers without a fraction, others with up to
/// four decimals.
pub(crate) fn format_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.is_finite() {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_times_and_values() {
        assert_eq!(parse_ms("5m", "x").ok(), Some(300_000));
        assert_eq!(parse_ms("0s", "x").ok(), Some(0));
        assert_eq!(parse_ms("1h 30m", "x").ok(), Some(5_400_000));
        let e = parse_ms("soon", "rule \"a\": for")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("rule \"a\": for = \"soon\"")));
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z", "t").ok(), Some(1000));
        assert_eq!(format_time_ms(1500), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1.0 / 3.0), "0.3333");
    }
}
