//! `--since` / `--until` values: relative (`90s`, `15m`, `1h`, `2d` ago) or absolute
//! (`2026-11-25`, `2026-11-25 13:00`, `2026-11-25T13:00:05Z`, RFC 3339 with offset).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses a time bound into µs since the epoch, relative to `now_us`.
pub fn parse_time(s: &str, now_us: i64) -> Result<i64, String> {
    let t = s.trim();
    if let Some(d) = relative_us(t) {
        return Ok(now_us - d);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), fmt) {
            return Ok(n.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_micros());
    }
    Err(format!(
        "invalid time '{s}': use a duration ago (30s, 15m, 1h, 2d) or a UTC time (2026-11-25, 2026-11-25 13:00, 2026-11-25T13:00:00Z)"
    ))
}

/// `1h30m`, `90s`, `2d`, `500ms` in µs; `None` when `s` is not a duration.
fn relative_us(s: &str) -> Option<i64> {
    if s.is_empty() || !s.as_bytes()[0].is_ascii_digit() || s.contains('-') || s.contains(':') {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let mult: i64 = match &rest[..unit_len] {
            "us" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" | "min" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            "w" => 604_800_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("1h", now), Ok(now - 3_600_000_000));
        assert_eq!(parse_time("1h30m", now), Ok(now - 5_400_000_000));
        assert_eq!(parse_time("2026-11-25", now), Ok(1_795_564_800_000_000));
        assert_eq!(parse_time("2026-11-25 13:00", now), Ok(1_795_564_800_000_000 + 13 * 3_600_000_000));
        assert_eq!(parse_time("2026-11-25T13:00:00Z", now), Ok(1_795_564_800_000_000 + 13 * 3_600_000_000));
        assert_eq!(parse_time("2026-11-25T14:00:00+01:00", now), Ok(1_795_564_800_000_000 + 13 * 3_600_000_000));
        assert!(parse_time("yesterday", now).unwrap_err().contains("invalid time 'yesterday'"));
        assert!(parse_time("5q", now).is_err());
    }
}
