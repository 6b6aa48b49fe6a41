//! Calendar arithmetic in UTC for schedules and timestamps: day counts since 1970-01-01 to
//! dates and back, weekdays, and how a Unix time is shown. The appliance has no time zone:
//! every schedule is in UTC from the real-time clock.

/// The (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction.
    (year, month as u32, day as u32)
}

/// The day count since 1970-01-01 of a (year, month 1..=12, day) date (Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The weekday of a day count since 1970-01-01: 0 is Monday, 6 is Sunday (1970-01-01 was a
/// Thursday).
pub fn weekday(days: i64) -> u8 {
    // rem_euclid of 7 is 0..=6.
    (days + 3).rem_euclid(7) as u8
}

/// `2026-12-01 18:05 UTC`.
pub fn utc_timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60
    )
}

/// Seconds since the epoch of a UTC date and time (for tests of schedules).
#[cfg(test)]
pub fn at(year: i64, month: u32, day: u32, hour: u64, minute: u64) -> u64 {
    u64::try_from(days_from_civil(year, month, day)).unwrap_or(0) * 86_400
        + hour * 3_600
        + minute * 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_and_timestamps() {
        assert_eq!(weekday(0), 3);
        // 2024-02-29 was a Thursday, 2026-12-01 is a Tuesday.
        assert_eq!(weekday(days_from_civil(2024, 2, 29)), 3);
        assert_eq!(weekday(days_from_civil(2026, 12, 1)), 1);
        assert_eq!(weekday(-1), 2);
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00 UTC");
    }
}
