//! The subcommands, one file each, and the helpers they share.

pub mod alerts;
pub mod analyze;
pub mod archive;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod check;
pub mod compact;
pub mod dump;
pub mod explain;
pub mod health;
pub mod index;
pub mod init;
pub mod inspect;
pub mod journal;
pub mod migrate;
pub mod monitor;
pub mod monitor_cost;
pub mod probe;
pub mod progress;
pub mod query;
pub mod report;
pub mod restore;
pub mod signals;
pub mod simulate;
pub mod standby;
pub mod store;
pub mod table;

/// The longest duration a command takes (`simulate --duration`, `standby --poll`, ...).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// A duration option: a number with `ms`, `s`, `m` or `h` (fractions allowed, a bare number
/// is seconds), or anything humantime reads (`5days`, `1h 30m`); above zero, at most 365
/// days.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "ms" => Some(1e-3),
        "s" | "" => Some(1.0),
        "m" => Some(60.0),
        "h" => Some(3600.0),
        _ => None,
    };
    let secs = match (num.parse::<f64>(), scale) {
        (Ok(n), Some(scale)) => n * scale,
        _ => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration like 10s, 500ms or 2m: {e}"))?
            .as_secs_f64(),
    };
    if secs <= 0.0 {
        return Err(format!("{s:?}: give a duration above zero"));
    }
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("{s:?} is out of range: at most 365 days"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}
