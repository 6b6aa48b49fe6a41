//! Snapshot names, periodic snapshot tasks and their rules: when a task runs ([`Schedule`]),
//! what it keeps ([`Retention`]) and how its snapshots are named, so that pruning touches only
//! the snapshots a task made itself.
//!
//! What lives here: [`SnapshotName`], [`Schedule`] (every N minutes or hours, daily, weekly; on the
//! wall clock of a time zone), [`Retention`], [`SnapshotTask`], the pure functions [`Schedule::last_slot`],
//! [`Schedule::next_slot`], [`SnapshotTask::is_due`] and [`prune`], all tested against a fake
//! clock. What does not: taking or deleting snapshots (the storage code does), the ticking
//! clock (the engine), the on-disk form.
//!
//! Snapshots themselves are not configuration: the pool's read-only subvolumes are the truth,
//! and a task recognises its own by the name it gives them (`auto-t<ID>-YYYYMMDD-HHMM`), a
//! prefix manual snapshots may not use. The time in the name is UTC, so names stay unique when
//! a fall-back hour repeats the local wall clock.

use std::fmt;

use thiserror::Error;

use jiff::tz::TimeZone;

use super::calendar::{civil_from_days, last_local_slot, next_slot_by, weekday};
use super::names::DatasetName;

/// Why a snapshot name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotNameError {
    #[error("the snapshot name is empty: give a name such as \"before-cleanup\"")]
    Empty,
    #[error("snapshot name {name:?} is {len} bytes long: use at most {max}", max = SnapshotName::MAX_LEN)]
    TooLong { name: String, len: usize },
    #[error("snapshot name {name:?} contains {ch:?}: use letters, digits, '-', '_', '.' and ':'")]
    BadChar { name: String, ch: char },
    #[error("snapshot name {name:?} must start with a letter or digit")]
    BadStart { name: String },
    #[error(
        "snapshot name {name:?} starts with \"auto-\", which periodic tasks use: choose \
         another name"
    )]
    Automatic { name: String },
}

/// The name of a snapshot of a dataset (written `dataset@name` at the console).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName(String);

impl SnapshotName {
    pub const MAX_LEN: usize = 64;

    /// A name an operator chose: any valid name but the automatic prefix.
    pub fn parse_manual(name: &str) -> Result<SnapshotName, SnapshotNameError> {
        let parsed = Self::parse_any(name)?;
        if name.starts_with(AUTO_PREFIX) {
            return Err(SnapshotNameError::Automatic {
                name: name.to_owned(),
            });
        }
        Ok(parsed)
    }

    /// Any valid name, automatic ones included (names found on the pool, names typed to
    /// destroy or roll back to).
    pub fn parse_any(name: &str) -> Result<SnapshotName, SnapshotNameError> {
        let Some(first) = name.chars().next() else {
            return Err(SnapshotNameError::Empty);
        };
        if let Some(ch) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(SnapshotNameError::BadChar {
                name: name.to_owned(),
                ch,
            });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(SnapshotNameError::BadStart {
                name: name.to_owned(),
            });
        }
        if name.len() > Self::MAX_LEN {
            return Err(SnapshotNameError::TooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        Ok(SnapshotName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The task that made this snapshot, if its name is an automatic one.
    pub fn task(&self) -> Option<u32> {
        let rest = self.0.strip_prefix(AUTO_PREFIX)?.strip_prefix('t')?;
        let (id, _) = rest.split_once('-')?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        id.parse().ok()
    }

    /// The name task `task` gives the snapshot it takes at `at` (seconds since the epoch).
    pub fn automatic(task: u32, at: u64) -> SnapshotName {
        let days = i64::try_from(at / 86_400).unwrap_or(i64::MAX);
        let (y, m, d) = civil_from_days(days);
        SnapshotName(format!(
            "{AUTO_PREFIX}t{task}-{y:04}{m:02}{d:02}-{:02}{:02}",
            at / 3600 % 24,
            at / 60 % 60
        ))
    }

    /// This name with a numeric suffix, for a second snapshot in the same minute.
    pub fn with_suffix(&self, n: u32) -> SnapshotName {
        SnapshotName(format!("{}-{n}", self.0))
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of every snapshot a periodic task takes.
pub const AUTO_PREFIX: &str = "auto-";

/// When a periodic task runs. Times are on the wall clock of the appliance's time zone (see
/// [`last_local_slot`] for daylight saving changes); slots of "every N" rules restart each midnight
/// (like cron's `*/N`), so every 7 minutes runs at 00:00, 00:07, ... 23:55, then 00:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every N minutes, N from 1 to 1440.
    Minutes(u32),
    /// Every N hours on the hour, N from 1 to 24.
    Hours(u32),
    Daily {
        hour: u8,
        minute: u8,
    },
    /// On `weekday` (0 Monday … 6 Sunday) at `hour:minute`.
    Weekly {
        weekday: u8,
        hour: u8,
        minute: u8,
    },
}

/// Why a schedule is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("every {n} minutes is not valid: use 1 to 1440 minutes")]
    Minutes { n: u32 },
    #[error("every {n} hours is not valid: use 1 to 24 hours")]
    Hours { n: u32 },
    #[error("{hour:02}:{minute:02} is not a time: use 00:00 to 23:59")]
    Time { hour: u8, minute: u8 },
    #[error("weekday {weekday} is not valid: use mon, tue, wed, thu, fri, sat or sun")]
    Weekday { weekday: u8 },
}

/// The weekday names, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Schedule {
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let time = |hour: u8, minute: u8| {
            if hour > 23 || minute > 59 {
                Err(ScheduleError::Time { hour, minute })
            } else {
                Ok(())
            }
        };
        match *self {
            Schedule::Minutes(n) if !(1..=1440).contains(&n) => Err(ScheduleError::Minutes { n }),
            Schedule::Hours(n) if !(1..=24).contains(&n) => Err(ScheduleError::Hours { n }),
            Schedule::Minutes(_) | Schedule::Hours(_) => Ok(()),
            Schedule::Daily { hour, minute } => time(hour, minute),
            Schedule::Weekly {
                weekday,
                hour,
                minute,
            } => {
                if weekday > 6 {
                    return Err(ScheduleError::Weekday { weekday });
                }
                time(hour, minute)
            }
        }
    }

    /// The latest wall time at or before wall time `wall` that the rule names, both counted
    /// in seconds as if the wall clock were UTC (see [`last_local_slot`]).
    fn floor_wall(&self, wall: i64) -> Option<i64> {
        let day_start = wall - wall.rem_euclid(86_400);
        let second_of_day = wall.rem_euclid(86_400);
        let back = |at: i64, period: i64| if at > wall { at - period } else { at };
        Some(match *self {
            Schedule::Minutes(n) => {
                let n = i64::from(n.max(1));
                let minute = second_of_day / 60;
                day_start + (minute - minute % n) * 60
            }
            Schedule::Hours(n) => {
                let n = i64::from(n.max(1));
                let hour = second_of_day / 3600;
                day_start + (hour - hour % n) * 3600
            }
            Schedule::Daily { hour, minute } => back(
                day_start + i64::from(hour) * 3600 + i64::from(minute) * 60,
                86_400,
            ),
            Schedule::Weekly {
                weekday: target,
                hour,
                minute,
            } => {
                let days = wall.div_euclid(86_400);
                let behind = i64::from((weekday(days) + 7 - target.min(6)) % 7);
                let at =
                    day_start - behind * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60;
                back(at, 7 * 86_400)
            }
        })
    }

    /// The latest slot at or before `now` (seconds since the epoch) on the wall clock of
    /// `zone`; 0 if there is none (before the first slot after the epoch).
    pub fn last_slot(&self, now: u64, zone: &TimeZone) -> u64 {
        let once_a_day = matches!(self, Schedule::Daily { .. } | Schedule::Weekly { .. });
        last_local_slot(zone, now, once_a_day, |wall| self.floor_wall(wall)).unwrap_or(0)
    }

    /// The first slot after `now`.
    pub fn next_slot(&self, now: u64, zone: &TimeZone) -> u64 {
        // Every rule has a slot within a week and a day, whatever the zone does.
        next_slot_by(now, 8 * 86_400, |t| Some(self.last_slot(t, zone)))
            .unwrap_or(now.saturating_add(8 * 86_400))
    }

    /// The schedule with its times said in `zone` (`daily at 03:00 Europe/Berlin`).
    pub fn in_zone<'a>(&'a self, zone: &'a str) -> impl fmt::Display + 'a {
        InZone(self, zone)
    }
}

struct InZone<'a>(&'a Schedule, &'a str);

impl fmt::Display for InZone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zone = self.1;
        match *self.0 {
            Schedule::Minutes(1) => f.write_str("every minute"),
            Schedule::Minutes(n) => write!(f, "every {n} minutes"),
            Schedule::Hours(1) => f.write_str("every hour"),
            Schedule::Hours(n) => write!(f, "every {n} hours"),
            Schedule::Daily { hour, minute } => write!(f, "daily at {hour:02}:{minute:02} {zone}"),
            Schedule::Weekly {
                weekday,
                hour,
                minute,
            } => write!(
                f,
                "weekly on {} at {hour:02}:{minute:02} {zone}",
                WEEKDAYS.get(usize::from(weekday)).unwrap_or(&"?")
            ),
        }
    }
}

/// `every 15 minutes`, `every 2 hours`, `daily at 03:00 UTC`, `weekly on sun at 03:00 UTC`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.in_zone("UTC").fmt(f)
    }
}

/// What a task keeps of its own snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The newest N, N at least 1.
    Last(u32),
    /// Those younger than this many seconds (at least a minute); the newest is always kept.
    For(u64),
}

impl Retention {
    pub fn validate(&self) -> Result<(), RetentionError> {
        match *self {
            Retention::Last(0) => Err(RetentionError::KeepZero),
            Retention::For(secs) if secs < 60 => Err(RetentionError::TooShort { secs }),
            _ => Ok(()),
        }
    }
}

/// `keep 3`, `keep 7d`.
impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Retention::Last(n) => write!(f, "keep {n}"),
            Retention::For(secs) => {
                let (n, unit) = [(604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m")]
                    .into_iter()
                    .find(|(unit, _)| secs % unit == 0)
                    .map_or((secs, "s"), |(unit, name)| (secs / unit, name));
                write!(f, "keep {n}{unit}")
            }
        }
    }
}

/// Why a retention is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RetentionError {
    #[error("keep 0 would delete every snapshot the task takes: keep at least 1")]
    KeepZero,
    #[error("keeping snapshots for {secs} s is too short: keep them for at least a minute")]
    TooShort { secs: u64 },
}

/// A periodic snapshot task of one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTask {
    /// Unique and never reused, so a new task never prunes an old task's snapshots.
    pub id: u32,
    pub dataset: DatasetName,
    pub schedule: Schedule,
    pub retention: Retention,
    /// When the task last ran (or was created), seconds since the epoch: a slot after this is
    /// due. State the appliance keeps, not something the operator sets.
    pub last_run: u64,
}

impl SnapshotTask {
    /// Whether a snapshot is due at `now`: a slot passed since the last run. After the box was
    /// off over several slots this is true once, not once per slot.
    pub fn is_due(&self, now: u64, zone: &TimeZone) -> bool {
        self.schedule.last_slot(now, zone) > self.last_run
    }
}

/// One snapshot of a task, as [`prune`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub name: SnapshotName,
    /// Creation time, seconds since the epoch.
    pub created: u64,
}

/// Which of `snapshots` (every snapshot of the task's dataset) the task's retention deletes at
/// `now`. Snapshots of other tasks and manual snapshots are never returned.
pub fn prune(task: &SnapshotTask, snapshots: &[Taken], now: u64) -> Vec<SnapshotName> {
    let mut own: Vec<&Taken> = snapshots
        .iter()
        .filter(|s| s.name.task() == Some(task.id))
        .collect();
    // Newest first; names break ties (two in one second).
    own.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    let keep = match task.retention {
        Retention::Last(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Retention::For(secs) => {
            let cutoff = now.saturating_sub(secs);
            own.iter()
                .position(|s| s.created < cutoff)
                .unwrap_or(own.len())
                .max(1)
        }
    };
    own.iter().skip(keep).map(|s| s.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::calendar::at;

    const UTC: TimeZone = TimeZone::UTC;

    #[test]
    fn names() {
        for good in ["before-cleanup", "v1.2", "2026-12-01T18:00", "x"] {
            assert_eq!(SnapshotName::parse_manual(good).unwrap().as_str(), good);
        }
        for (bad, says) in [
            ("", "empty"),
            ("a b", "' '"),
            ("a/b", "'/'"),
            (".hidden", "start"),
            ("auto-mine", "periodic"),
            (&"a".repeat(65), "65 bytes"),
        ] {
            let message = SnapshotName::parse_manual(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let auto = SnapshotName::automatic(7, at(2026, 12, 1, 18, 5) + 42);
        assert_eq!(auto.as_str(), "auto-t7-20261201-1805");
        assert_eq!(auto.task(), Some(7));
        assert_eq!(auto.with_suffix(2).task(), Some(7));
        assert!(SnapshotName::parse_any(auto.as_str()).is_ok());
        assert_eq!(SnapshotName::parse_any("auto-x-1").unwrap().task(), None);
        assert_eq!(SnapshotName::parse_manual("t7-1").unwrap().task(), None);
    }

    #[test]
    fn every_n_minutes_and_hours() {
        let now = at(2026, 12, 1, 18, 7) + 30;
        assert_eq!(
            Schedule::Minutes(1).last_slot(now, &UTC),
            at(2026, 12, 1, 18, 7)
        );
        assert_eq!(
            Schedule::Minutes(1).next_slot(now, &UTC),
            at(2026, 12, 1, 18, 8)
        );
        assert_eq!(
            Schedule::Minutes(15).last_slot(now, &UTC),
            at(2026, 12, 1, 18, 0)
        );
        assert_eq!(
            Schedule::Minutes(15).next_slot(now, &UTC),
            at(2026, 12, 1, 18, 15)
        );
        // Slots restart at midnight: every 7 minutes ends the day at 23:55.
        let late = at(2026, 12, 1, 23, 58);
        assert_eq!(
            Schedule::Minutes(7).last_slot(late, &UTC),
            at(2026, 12, 1, 23, 55)
        );
        assert_eq!(
            Schedule::Minutes(7).next_slot(late, &UTC),
            at(2026, 12, 2, 0, 0)
        );
        assert_eq!(
            Schedule::Hours(6).last_slot(now, &UTC),
            at(2026, 12, 1, 18, 0)
        );
        assert_eq!(
            Schedule::Hours(6).next_slot(now, &UTC),
            at(2026, 12, 2, 0, 0)
        );
        assert_eq!(
            Schedule::Hours(24).last_slot(now, &UTC),
            at(2026, 12, 1, 0, 0)
        );
        // A slot is its own last slot.
        assert_eq!(
            Schedule::Minutes(5).last_slot(at(2026, 12, 1, 18, 5), &UTC),
            at(2026, 12, 1, 18, 5)
        );
    }

    #[test]
    fn daily_and_weekly_across_month_ends_and_leap_days() {
        let daily = Schedule::Daily { hour: 3, minute: 0 };
        assert_eq!(
            daily.last_slot(at(2024, 3, 1, 2, 59), &UTC),
            at(2024, 2, 29, 3, 0)
        );
        assert_eq!(
            daily.next_slot(at(2024, 2, 28, 3, 0), &UTC),
            at(2024, 2, 29, 3, 0)
        );
        assert_eq!(
            daily.next_slot(at(2023, 2, 28, 3, 0), &UTC),
            at(2023, 3, 1, 3, 0)
        );
        assert_eq!(
            daily.next_slot(at(2026, 12, 31, 4, 0), &UTC),
            at(2027, 1, 1, 3, 0)
        );
        assert_eq!(
            daily.last_slot(at(2026, 12, 1, 3, 0), &UTC),
            at(2026, 12, 1, 3, 0)
        );
        // 2026-12-01 is a Tuesday; Sunday's slot before it is 2026-11-29.
        let sunday = Schedule::Weekly {
            weekday: 6,
            hour: 3,
            minute: 30,
        };
        assert_eq!(
            sunday.last_slot(at(2026, 12, 1, 12, 0), &UTC),
            at(2026, 11, 29, 3, 30)
        );
        assert_eq!(
            sunday.next_slot(at(2026, 12, 1, 12, 0), &UTC),
            at(2026, 12, 6, 3, 30)
        );
        // On the day itself, before and after the time.
        assert_eq!(
            sunday.last_slot(at(2026, 11, 29, 3, 0), &UTC),
            at(2026, 11, 22, 3, 30)
        );
        assert_eq!(
            sunday.last_slot(at(2026, 11, 29, 4, 0), &UTC),
            at(2026, 11, 29, 3, 30)
        );
        // Across a leap day: Thursday 2024-02-29.
        let thursday = Schedule::Weekly {
            weekday: 3,
            hour: 0,
            minute: 0,
        };
        assert_eq!(
            thursday.next_slot(at(2024, 2, 26, 0, 0), &UTC),
            at(2024, 2, 29, 0, 0)
        );
        assert_eq!(
            thursday.next_slot(at(2024, 2, 29, 0, 0), &UTC),
            at(2024, 3, 7, 0, 0)
        );
    }

    #[test]
    fn validation_and_display() {
        assert!(Schedule::Minutes(0).validate().is_err());
        assert!(Schedule::Minutes(1441).validate().is_err());
        assert!(Schedule::Hours(25).validate().is_err());
        assert!(Schedule::Daily {
            hour: 24,
            minute: 0
        }
        .validate()
        .is_err());
        assert!(Schedule::Weekly {
            weekday: 7,
            hour: 0,
            minute: 0
        }
        .validate()
        .is_err());
        assert!(Retention::Last(0).validate().is_err());
        assert!(Retention::For(59).validate().is_err());
        assert_eq!(Schedule::Minutes(1).to_string(), "every minute");
        assert_eq!(
            Schedule::Weekly {
                weekday: 6,
                hour: 3,
                minute: 0
            }
            .to_string(),
            "weekly on sun at 03:00 UTC"
        );
        assert_eq!(Retention::For(7 * 86_400).to_string(), "keep 1w");
        assert_eq!(Retention::For(36 * 3600).to_string(), "keep 36h");
        assert_eq!(Retention::Last(3).to_string(), "keep 3");
    }

    /// The engine's minute tick over `[from, to)`: a tick a second after each minute, running
    /// every due task. Returns the times it ran.
    fn runs(task: &mut SnapshotTask, zone: &TimeZone, from: u64, to: u64) -> Vec<u64> {
        let mut ran = Vec::new();
        let mut t = from + 1;
        while t < to {
            if task.is_due(t, zone) {
                ran.push(t - 1);
                task.last_run = t;
            }
            t += 60;
        }
        ran
    }

    fn daily(hour: u8, minute: u8) -> SnapshotTask {
        let mut t = task(Retention::Last(3));
        t.schedule = Schedule::Daily { hour, minute };
        t
    }

    #[test]
    fn daily_tasks_run_once_on_daylight_saving_days() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // Berlin local midnight is 23:00 UTC the day before in winter, 22:00 in summer.
        // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist and runs
        // at the first instant after the gap, 03:00 CEST.
        let spring = (at(2026, 3, 28, 23, 0), at(2026, 3, 29, 22, 0));
        let mut t = daily(2, 30);
        t.last_run = spring.0 - 3600;
        assert_eq!(
            runs(&mut t, &berlin, spring.0, spring.1),
            [at(2026, 3, 29, 1, 0)]
        );
        // A time on either side of the gap runs once, at its own time.
        for (h, m, utc_h, utc_m) in [(1, 59, 0, 59), (3, 0, 1, 0), (3, 30, 1, 30)] {
            let mut t = daily(h, m);
            t.last_run = spring.0 - 3600;
            assert_eq!(
                runs(&mut t, &berlin, spring.0, spring.1),
                [at(2026, 3, 29, utc_h, utc_m)],
                "{h:02}:{m:02}"
            );
        }
        // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice and runs
        // at the first, 00:30 UTC; 01:30 happens once.
        let fall = (at(2026, 10, 24, 22, 0), at(2026, 10, 25, 23, 0));
        for (h, m, utc_h, utc_m) in [(2, 30, 0, 30), (1, 30, 23, 30), (2, 0, 0, 0), (3, 0, 2, 0)] {
            let mut t = daily(h, m);
            t.last_run = fall.0 - 3600;
            let expected = if utc_h == 23 {
                at(2026, 10, 24, utc_h, utc_m)
            } else {
                at(2026, 10, 25, utc_h, utc_m)
            };
            assert_eq!(
                runs(&mut t, &berlin, fall.0, fall.1),
                [expected],
                "{h:02}:{m:02}"
            );
        }
        // New York falls back from 02:00 EDT to 01:00 EST on 2026-11-01: 01:30 happens twice
        // and runs once, at the first (05:30 UTC).
        let ny = TimeZone::get("America/New_York").unwrap();
        let mut t = daily(1, 30);
        let day = (at(2026, 11, 1, 4, 0), at(2026, 11, 2, 5, 0));
        t.last_run = day.0 - 3600;
        assert_eq!(runs(&mut t, &ny, day.0, day.1), [at(2026, 11, 1, 5, 30)]);
        // Across a whole year of Berlin days, every daily time runs exactly once a day.
        for (h, m) in [(0, 0), (2, 30), (23, 59)] {
            let mut t = daily(h, m);
            let from = at(2026, 1, 1, 0, 0);
            t.last_run = from;
            let ran = runs(&mut t, &berlin, from, at(2027, 1, 1, 0, 0));
            assert!(
                (364..=366).contains(&ran.len()),
                "{h:02}:{m:02}: {}",
                ran.len()
            );
            for pair in ran.windows(2) {
                let gap = pair[1] - pair[0];
                assert!((82_800..=90_000).contains(&gap), "{h:02}:{m:02}: {pair:?}");
            }
        }
    }

    #[test]
    fn hourly_and_minute_tasks_follow_the_wall_clock_across_daylight_saving() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let spring = (at(2026, 3, 28, 23, 0), at(2026, 3, 29, 22, 0));
        let fall = (at(2026, 10, 24, 22, 0), at(2026, 10, 25, 23, 0));
        for (schedule, spring_runs, fall_runs) in [
            (Schedule::Hours(1), 23, 25),
            (Schedule::Minutes(15), 92, 100),
            (Schedule::Minutes(1), 1380, 1500),
        ] {
            for ((from, to), expected) in [(spring, spring_runs), (fall, fall_runs)] {
                let mut t = task(Retention::Last(3));
                t.schedule = schedule;
                t.last_run = from - 1;
                let ran = runs(&mut t, &berlin, from, to);
                assert_eq!(ran.len(), expected, "{schedule} from {from}");
                // A real hour (or quarter, minute) apart, never two in one tick.
                let period = match schedule {
                    Schedule::Hours(_) => 3600,
                    Schedule::Minutes(n) => u64::from(n) * 60,
                    _ => unreachable!(),
                };
                for pair in ran.windows(2) {
                    assert_eq!(pair[1] - pair[0], period, "{schedule}: {pair:?}");
                }
            }
        }
        // Every 6 hours on the wall clock: 00, 06, 12, 18 local, whatever the offset.
        let mut t = task(Retention::Last(3));
        t.schedule = Schedule::Hours(6);
        t.last_run = spring.0 - 1;
        assert_eq!(
            runs(&mut t, &berlin, spring.0, spring.1),
            [
                at(2026, 3, 28, 23, 0),
                at(2026, 3, 29, 4, 0),
                at(2026, 3, 29, 10, 0),
                at(2026, 3, 29, 16, 0)
            ]
        );
    }

    #[test]
    fn catch_up_and_next_slots_in_a_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // Off over the spring-forward night and two more days: due once at boot.
        let mut t = daily(2, 30);
        t.last_run = at(2026, 3, 28, 12, 0);
        let boot = at(2026, 3, 31, 12, 0);
        assert!(t.is_due(boot, &berlin));
        assert_eq!(t.schedule.last_slot(boot, &berlin), at(2026, 3, 31, 0, 30));
        t.last_run = boot;
        assert!(!t.is_due(boot + 60, &berlin));
        assert_eq!(t.schedule.next_slot(boot, &berlin), at(2026, 4, 1, 0, 30));
        // The next slot after the evening before the gap is the gap's end.
        assert_eq!(
            t.schedule.next_slot(at(2026, 3, 28, 20, 0), &berlin),
            at(2026, 3, 29, 1, 0)
        );
        // Weekly on Sunday 02:30 over both changes: the spring Sunday at 03:00 CEST, the
        // fall Sunday at the first 02:30.
        let sunday = Schedule::Weekly {
            weekday: 6,
            hour: 2,
            minute: 30,
        };
        assert_eq!(
            sunday.next_slot(at(2026, 3, 27, 0, 0), &berlin),
            at(2026, 3, 29, 1, 0)
        );
        assert_eq!(
            sunday.next_slot(at(2026, 10, 23, 0, 0), &berlin),
            at(2026, 10, 25, 0, 30)
        );
        assert_eq!(
            sunday.next_slot(at(2026, 10, 25, 0, 30), &berlin),
            at(2026, 11, 1, 1, 30)
        );
        assert_eq!(
            Schedule::Daily { hour: 3, minute: 0 }
                .in_zone("Europe/Berlin")
                .to_string(),
            "daily at 03:00 Europe/Berlin"
        );
    }

    fn task(retention: Retention) -> SnapshotTask {
        SnapshotTask {
            id: 2,
            dataset: DatasetName::parse("media").unwrap(),
            schedule: Schedule::Minutes(1),
            retention,
            last_run: 0,
        }
    }

    #[test]
    fn catch_up_once() {
        let mut t = task(Retention::Last(3));
        t.schedule = Schedule::Daily { hour: 3, minute: 0 };
        t.last_run = at(2026, 11, 20, 3, 0);
        // Off for ten days: due once now; after running, not again until the next slot.
        let boot = at(2026, 11, 30, 12, 0);
        assert!(t.is_due(boot, &UTC));
        t.last_run = boot;
        assert!(!t.is_due(boot + 60, &UTC));
        assert!(!t.is_due(at(2026, 12, 1, 2, 59), &UTC));
        assert!(t.is_due(at(2026, 12, 1, 3, 0), &UTC));
    }

    #[test]
    fn pruning_touches_only_its_own() {
        let base = at(2026, 12, 1, 18, 0);
        let mut snaps: Vec<Taken> = (0..6)
            .map(|i| Taken {
                name: SnapshotName::automatic(2, base + i * 60),
                created: base + i * 60,
            })
            .collect();
        snaps.push(Taken {
            name: SnapshotName::automatic(3, base),
            created: base,
        });
        snaps.push(Taken {
            name: SnapshotName::parse_manual("keep-me").unwrap(),
            created: base - 10,
        });
        let gone = prune(&task(Retention::Last(3)), &snaps, base + 400);
        let names: Vec<&str> = gone.iter().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "auto-t2-20261201-1802",
                "auto-t2-20261201-1801",
                "auto-t2-20261201-1800"
            ]
        );
        // Keep for 3 minutes at 18:06: those created before 18:03 go.
        let gone = prune(&task(Retention::For(180)), &snaps, base + 360);
        assert_eq!(gone.len(), 3);
        // The newest survives even when everything is old.
        let gone = prune(&task(Retention::For(60)), &snaps, base + 86_400);
        assert_eq!(gone.len(), 5);
        assert!(!gone.contains(&SnapshotName::automatic(2, base + 300)));
    }
}
