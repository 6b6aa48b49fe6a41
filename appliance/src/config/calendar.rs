//! Calendar arithmetic for schedules and timestamps: day counts since 1970-01-01 to dates and
//! back, weekdays, how a Unix time is shown in UTC, and [`last_local_slot`], which finds a
//! schedule's slots on the wall clock of a time zone (from the IANA database `jiff` carries),
//! correct across daylight saving changes.
//!
//! A schedule is written as a rule on the wall clock ("daily at 02:30"). In UTC wall time and
//! real time are the same; in a zone with daylight saving time, a wall time can be skipped
//! (spring forward: its slot runs at the first instant after the gap) or happen twice (fall
//! back: a once-a-day rule runs at the first occurrence only; rules of every N minutes or hours
//! follow the wall clock, so a repeated hour gets its slots again and they stay a real hour
//! apart).

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

/// `2026-12-01 18:05 UTC`, without the zone database (the console shows times through
/// `system::clock::console_time`, in the zone in force).
#[cfg(test)]
pub fn utc_timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60
    )
}

/// The latest slot at or before `now` (seconds since the epoch) of a rule on the wall clock of
/// `zone`. `floor(wall)` is the rule's latest wall time at or before `wall`, both counted in
/// seconds as if the wall clock were UTC (UTC's own rules are then plain arithmetic on the
/// epoch). With `once_a_day`, a wall time that happens twice (fall back) is a slot only at its
/// first occurrence. `None` when no slot is found (before the epoch, or a rule that never
/// matches).
///
/// The search goes back through the zone's offset changes: within a stretch of one offset the
/// slot is `floor(now + offset) - offset`; a slot whose wall time a forward change skipped
/// falls on the change itself.
pub fn last_local_slot(
    zone: &jiff::tz::TimeZone,
    now: u64,
    once_a_day: bool,
    floor: impl Fn(i64) -> Option<i64>,
) -> Option<u64> {
    use jiff::Timestamp;
    // Far more stretches than a schedule's period (a week, a month) can hold.
    const MAX_STRETCHES: usize = 64;
    let offset_at = |at: i64| -> Option<i64> {
        Some(i64::from(
            zone.to_offset(Timestamp::from_second(at).ok()?).seconds(),
        ))
    };
    let mut end = i64::try_from(now).ok()?;
    for _ in 0..MAX_STRETCHES {
        let offset = offset_at(end)?;
        // The change that began this offset (at or before `end`) and the offset before it.
        let change = zone
            .preceding(Timestamp::from_second(end.checked_add(1)?).ok()?)
            .next()
            .map(|t| t.timestamp().as_second());
        let (start, before) = match change {
            Some(at) => (at, offset_at(at - 1)?),
            None => (i64::MIN / 4, offset),
        };
        // After a fall back, the wall times [start + offset, start + before) happen again.
        let first = if once_a_day && before > offset {
            start + (before - offset)
        } else {
            start
        };
        if let Some(wall) = floor(end.checked_add(offset)?) {
            let slot = wall - offset;
            if slot >= first && slot <= end {
                return u64::try_from(slot).ok();
            }
        }
        // After a spring forward, the wall times [start + before, start + offset) never
        // happen: a slot among them runs when the gap ends.
        if offset > before {
            if let Some(wall) = floor(start + offset - 1) {
                if wall >= start + before {
                    return u64::try_from(start).ok();
                }
            }
        }
        // No earlier change: the search is over.
        change?;
        end = start - 1;
    }
    None
}

/// The first slot after `now` of a rule whose latest slot at or before a time is
/// `last_slot`, looked for up to `horizon` seconds ahead (`None` beyond). `last_slot` must be
/// monotonic, as [`last_local_slot`] is.
pub fn next_slot_by(now: u64, horizon: u64, last_slot: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    let after = |t: u64| last_slot(t).is_some_and(|slot| slot > now);
    let (mut lo, mut hi) = (now, now.checked_add(horizon)?);
    if !after(hi) {
        return None;
    }
    // lo has no slot after now; hi has one: halve until they meet at the slot.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if after(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
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
