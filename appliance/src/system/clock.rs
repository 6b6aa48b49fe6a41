//! The system clock and the time zone: the zone in force (from the IANA database `jiff`
//! carries in the binary; the image has no `/usr/share/zoneinfo`), the one function that shows
//! a Unix time at the console ([`console_time`]), and the calls that set the clock: a step
//! (`clock_settime`), a slew (`adjtimex`), the kernel's "synchronized" flag and the hardware
//! clock (`RTC_SET_TIME` on `/dev/rtc0`), the last two through `tank-passthrough`.
//!
//! Who calls what: the SNTP thread (`net/sntp.rs`) steps, slews and marks the clock; the engine
//! sets the zone and writes the hardware clock at shutdown. While the clock is marked
//! synchronized the kernel itself writes it to the hardware clock every 11 minutes
//! (`CONFIG_RTC_SYSTOHC=y` in the shipped kernel), so nothing here runs on a timer.
//!
//! What does not live here: the SNTP protocol, schedules (`config/`), the time settings'
//! on-disk form.

use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::calendar::civil_from_days;
use crate::config::time::{check_zone_name, TimeSettings};

/// The hardware clock the kernel reads at boot (`CONFIG_RTC_HCTOSYS_DEVICE`).
pub const RTC_DEVICE: &str = "/dev/rtc0";

/// The zone in force: its IANA name and its rules.
struct Zone {
    name: String,
    tz: TimeZone,
}

static ZONE: RwLock<Option<Zone>> = RwLock::new(None);

/// The zone named `name` from the built-in database, or why not: the message names the zone
/// and gives examples.
pub fn lookup_zone(name: &str) -> Result<TimeZone, String> {
    check_zone_name(name).map_err(|e| e.to_string())?;
    TimeZone::get(name).map_err(|_| {
        format!(
            "time zone {name:?} is not in the time zone database: give an IANA name such as \
             Europe/Berlin, America/New_York or UTC"
        )
    })
}

/// Puts the zone `name` in force for schedules and the console. A zone the database does not
/// know (a configuration written by a newer image, say) falls back to UTC: the warning is
/// returned, and the configuration keeps the name.
pub fn set_zone(name: &str) -> Option<String> {
    let (zone, warning) = match lookup_zone(name) {
        Ok(tz) => (
            Zone {
                name: name.to_owned(),
                tz,
            },
            None,
        ),
        Err(e) => (
            Zone {
                name: TimeSettings::DEFAULT_ZONE.to_owned(),
                tz: TimeZone::UTC,
            },
            Some(format!("{e}; schedules and times follow UTC instead")),
        ),
    };
    match ZONE.write() {
        Ok(mut guard) => *guard = Some(zone),
        Err(poisoned) => *poisoned.into_inner() = Some(zone),
    }
    warning
}

/// The zone in force (UTC until one is set).
pub fn zone() -> TimeZone {
    match ZONE.read() {
        Ok(guard) => guard.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone()),
        Err(poisoned) => poisoned
            .into_inner()
            .as_ref()
            .map_or(TimeZone::UTC, |z| z.tz.clone()),
    }
}

/// The IANA name of the zone in force.
pub fn zone_name() -> String {
    let name = |z: &Option<Zone>| {
        z.as_ref()
            .map_or(TimeSettings::DEFAULT_ZONE.to_owned(), |z| z.name.clone())
    };
    match ZONE.read() {
        Ok(guard) => name(&guard),
        Err(poisoned) => name(&poisoned.into_inner()),
    }
}

/// A Unix time as the console shows it: local time in the zone in force with the zone's
/// abbreviation, `2026-12-01 19:05 CET` (`2026-12-01 18:05 UTC` in UTC). Every time the
/// console prints goes through here.
pub fn console_time(secs: u64) -> String {
    format_in(&zone(), secs, false)
}

/// [`console_time`] with seconds and the UTC offset: `2026-12-01 19:05:42 CET (+01:00)`.
pub fn console_time_precise(secs: u64) -> String {
    format_in(&zone(), secs, true)
}

/// A Unix time on the wall clock of `zone`.
pub fn format_in(zone: &TimeZone, secs: u64, precise: bool) -> String {
    let Some(ts) = i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
    else {
        return format!("@{secs}");
    };
    let dt = zone.to_datetime(ts);
    let info = zone.to_offset_info(ts);
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute()
    );
    if precise {
        text.push_str(&format!(":{:02}", dt.second()));
    }
    text.push(' ');
    text.push_str(info.abbreviation());
    if precise {
        let offset = info.offset().seconds();
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        text.push_str(&format!(" ({sign}{:02}:{:02})", abs / 3600, abs / 60 % 60));
    }
    text
}

/// The system clock, in seconds since the epoch with a fraction.
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Moves the system clock by `offset` seconds at once.
pub fn step(offset: f64) -> Result<(), String> {
    let target = now_f64() + offset;
    if !target.is_finite() || target < 0.0 {
        return Err(format!("cannot step the clock to {target}"));
    }
    let secs = target.floor();
    let spec = rustix::time::Timespec {
        tv_sec: secs as i64,
        tv_nsec: ((target - secs) * 1e9) as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, spec)
        .map_err(|e| format!("cannot set the clock: {e}"))
}

/// Slews the system clock by `offset` seconds (at 0.5 ms per second), so time never jumps.
pub fn slew(offset: f64) -> Result<(), String> {
    let us = (offset * 1e6).round();
    if !us.is_finite() {
        return Err(format!("cannot slew the clock by {offset} s"));
    }
    tank_passthrough::clock::slew(us as i64)
        .map(|_| ())
        .map_err(|e| format!("cannot slew the clock: {e}"))
}

/// Tells the kernel the clock is synchronized within `error` seconds (so it keeps the
/// hardware clock in step every 11 minutes), or that it is not.
pub fn mark_synchronized(synchronized: bool, error: f64) -> Result<(), String> {
    let us = (error.abs() * 1e6).clamp(0.0, 16e6) as i64;
    tank_passthrough::clock::set_synchronized(synchronized, us, us)
        .map(|_| ())
        .map_err(|e| format!("cannot set the clock's status: {e}"))
}

/// The broken-down UTC time of `secs` the hardware clock takes.
pub fn rtc_time(secs: u64) -> tank_passthrough::clock::RtcTime {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    let of_day = secs % 86_400;
    tank_passthrough::clock::RtcTime {
        tm_sec: (of_day % 60) as i32,
        tm_min: (of_day / 60 % 60) as i32,
        tm_hour: (of_day / 3600) as i32,
        tm_mday: day as i32,
        tm_mon: month as i32 - 1,
        tm_year: (year - 1900) as i32,
        tm_wday: i32::from((crate::config::calendar::weekday(days) + 1) % 7),
        tm_yday: 0,
        tm_isdst: 0,
    }
}

/// Writes the system time (UTC) to the hardware clock.
pub fn write_rtc() -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(RTC_DEVICE)
        .map_err(|e| format!("cannot open {RTC_DEVICE}: {e}"))?;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tank_passthrough::clock::rtc_set_time(&file, &rtc_time(secs))
        .map_err(|e| format!("cannot set the hardware clock {RTC_DEVICE}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::calendar::at;

    #[test]
    fn console_times_in_zones() {
        let utc = TimeZone::UTC;
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let t = at(2026, 12, 1, 18, 5) + 42;
        assert_eq!(format_in(&utc, t, false), "2026-12-01 18:05 UTC");
        assert_eq!(format_in(&berlin, t, false), "2026-12-01 19:05 CET");
        assert_eq!(
            format_in(&berlin, t, true),
            "2026-12-01 19:05:42 CET (+01:00)"
        );
        // Summer time, and the two 02:30s of the fall-back night told apart.
        assert_eq!(
            format_in(&berlin, at(2026, 10, 25, 0, 30), false),
            "2026-10-25 02:30 CEST"
        );
        assert_eq!(
            format_in(&berlin, at(2026, 10, 25, 1, 30), false),
            "2026-10-25 02:30 CET"
        );
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(format_in(&ny, t, true), "2026-12-01 13:05:42 EST (-05:00)");
        assert_eq!(
            crate::config::calendar::utc_timestamp(t),
            format_in(&utc, t, false)
        );
    }

    #[test]
    fn zones_are_looked_up_in_the_built_in_database() {
        assert!(lookup_zone("Europe/Berlin").is_ok());
        assert!(lookup_zone("America/Argentina/Buenos_Aires").is_ok());
        assert!(lookup_zone("UTC").is_ok());
        for bad in ["Europe/Berlinn", "Mars/Olympus", "../etc", ""] {
            let e = lookup_zone(bad).unwrap_err();
            assert!(e.contains("Europe/Berlin"), "{bad:?}: {e}");
        }
        let e = lookup_zone("Europe/Berlinn").unwrap_err();
        assert!(
            e.contains("\"Europe/Berlinn\" is not in the time zone database"),
            "{e}"
        );
    }

    #[test]
    fn the_hardware_clock_gets_utc_fields() {
        let t = rtc_time(at(2026, 12, 1, 18, 5) + 42);
        assert_eq!(
            (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec),
            (126, 11, 1, 18, 5, 42)
        );
        // 2026-12-01 is a Tuesday: struct tm counts from Sunday.
        assert_eq!(t.tm_wday, 2);
    }
}
