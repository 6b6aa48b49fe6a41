//! Console text → snapshot requests: `snapshot create media@before-cleanup`, rollback, clone,
//! and periodic tasks (`snapshot task add media every 15m keep 96`).

use super::parse::{clip, dataset_name, err, parse_time, unknown_verb, usage_hint, ParseError};
use super::request::SnapshotRequest;
use crate::config::snapshots::WEEKDAYS;
use crate::config::{DatasetName, Retention, Schedule, SnapshotName};

/// `media@name` → the dataset and the name; `manual` refuses the automatic prefix.
fn at_name(text: &str, manual: bool) -> Result<(DatasetName, SnapshotName), ParseError> {
    let (dataset, name) = text.split_once('@').ok_or_else(|| {
        err(
            format!("'{}' does not name a snapshot", clip(text)),
            "write DATASET@NAME, e.g. media@before-cleanup",
        )
    })?;
    let parse = if manual {
        SnapshotName::parse_manual
    } else {
        SnapshotName::parse_any
    };
    let name = parse(name).map_err(|e| err(e.to_string(), "e.g. media@before-cleanup"))?;
    Ok((dataset_name(dataset)?, name))
}

/// `15m`, `2h`, `minute`, `hour`, or a number followed by `minutes`/`hours`.
fn every(words: &[&str]) -> Result<(Schedule, usize), ParseError> {
    let bad = |what: &str| {
        err(
            format!("'every {}' is not a schedule", clip(what)),
            "e.g. 'every 15m', 'every 2h', 'every minute'",
        )
    };
    let first = *words.first().ok_or_else(|| bad(""))?;
    let number = |text: &str| text.parse::<u32>().map_err(|_| bad(text));
    let (schedule, used) = match first {
        "minute" => (Schedule::Minutes(1), 1),
        "hour" => (Schedule::Hours(1), 1),
        _ => {
            if let Some(n) = first
                .strip_suffix("min")
                .or_else(|| first.strip_suffix('m'))
            {
                (Schedule::Minutes(number(n)?), 1)
            } else if let Some(n) = first.strip_suffix('h') {
                (Schedule::Hours(number(n)?), 1)
            } else {
                let n = number(first)?;
                match words.get(1) {
                    Some(&("minutes" | "minute" | "min")) => (Schedule::Minutes(n), 2),
                    Some(&("hours" | "hour")) => (Schedule::Hours(n), 2),
                    _ => return Err(bad(first)),
                }
            }
        }
    };
    schedule
        .validate()
        .map_err(|e| err(e.to_string(), "e.g. 'every 15m', 'every 2h'"))?;
    Ok((schedule, used))
}

/// The schedule words after the dataset; returns it and how many words it used.
fn schedule(words: &[&str]) -> Result<(Schedule, usize), ParseError> {
    let hint = "use 'every 15m', 'every 2h', 'daily 03:00' or 'weekly sun 03:00'";
    match words {
        ["every", tail @ ..] => every(tail).map(|(s, n)| (s, n + 1)),
        ["daily", "at", time, ..] | ["daily", time, ..] => {
            let used = if words.get(1) == Some(&"at") { 3 } else { 2 };
            let (hour, minute) = parse_time(time)?;
            Ok((Schedule::Daily { hour, minute }, used))
        }
        ["weekly", "on", day, "at", time, ..] | ["weekly", day, time, ..] => {
            let used = if words.get(1) == Some(&"on") { 5 } else { 3 };
            let weekday = WEEKDAYS
                .iter()
                .position(|d| day.to_ascii_lowercase().starts_with(d))
                .ok_or_else(|| {
                    err(
                        format!("'{}' is not a day of the week", clip(day)),
                        "use mon, tue, wed, thu, fri, sat or sun",
                    )
                })?;
            let (hour, minute) = parse_time(time)?;
            Ok((
                Schedule::Weekly {
                    weekday: weekday as u8,
                    hour,
                    minute,
                },
                used,
            ))
        }
        [] => Err(err("the task needs a schedule", hint)),
        [other, ..] => Err(err(format!("'{}' is not a schedule", clip(other)), hint)),
    }
}

/// `3` (the newest three) or a duration `30m`, `12h`, `7d`, `2w`.
fn retention(words: &[&str]) -> Result<Retention, ParseError> {
    let hint = "write 'keep N' for the newest N or 'keep 7d' (m, h, d, w) for a duration";
    let value = match words {
        ["keep", value] => *value,
        [] => return Err(err("the task needs a retention", hint)),
        ["keep"] => return Err(err("'keep' needs a value", hint)),
        [other, ..] => return Err(err(format!("unexpected '{}'", clip(other)), hint)),
    };
    let bad = || err(format!("'keep {}' is not a retention", clip(value)), hint);
    let rule = if value.bytes().all(|b| b.is_ascii_digit()) {
        Retention::Last(value.parse().map_err(|_| bad())?)
    } else {
        let (number, unit) = value.split_at(value.len().saturating_sub(1));
        let n: u64 = number.parse().map_err(|_| bad())?;
        let unit = match unit {
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(bad()),
        };
        Retention::For(n.checked_mul(unit).ok_or_else(bad)?)
    };
    rule.validate().map_err(|e| err(e.to_string(), hint))?;
    Ok(rule)
}

pub fn parse_snapshot(rest: &[&str]) -> Result<SnapshotRequest, ParseError> {
    match rest {
        ["list"] | [] => Ok(SnapshotRequest::List { dataset: None }),
        ["list", ds] => Ok(SnapshotRequest::List {
            dataset: Some(dataset_name(ds)?),
        }),
        ["create", spec] => {
            let (dataset, name) = at_name(spec, true)?;
            Ok(SnapshotRequest::Create { dataset, name })
        }
        ["destroy", spec] => {
            let (dataset, name) = at_name(spec, false)?;
            Ok(SnapshotRequest::Destroy { dataset, name })
        }
        ["rollback", spec] => {
            let (dataset, name) = at_name(spec, false)?;
            Ok(SnapshotRequest::Rollback {
                dataset,
                name,
                confirmed: false,
            })
        }
        ["clone", spec, target] => {
            let (dataset, name) = at_name(spec, false)?;
            Ok(SnapshotRequest::Clone {
                dataset,
                name,
                target: dataset_name(target)?,
            })
        }
        ["task", "list"] | ["task"] => Ok(SnapshotRequest::TaskList),
        ["task", "add", ds, tail @ ..] => {
            let dataset = dataset_name(ds)?;
            let (schedule, used) = schedule(tail)?;
            let retention = retention(&tail[used..])?;
            Ok(SnapshotRequest::TaskAdd {
                dataset,
                schedule,
                retention,
            })
        }
        ["task", "remove" | "rm", id] => Ok(SnapshotRequest::TaskRemove {
            id: id.parse().map_err(|_| {
                err(
                    format!("'{}' is not a task id", clip(id)),
                    "'snapshot task list' shows the ids",
                )
            })?,
        }),
        ["task", "add"] => Err(err(
            "'snapshot task add' needs a dataset, a schedule and a retention",
            "e.g. 'snapshot task add media every 15m keep 96'",
        )),
        ["task", verb, ..] => Err(err(
            format!("'snapshot task' has no verb '{}'", clip(verb)),
            "use list, add or remove",
        )),
        ["create" | "destroy" | "rollback"] | ["clone", ..] => {
            Err(err("a snapshot is needed", usage_hint("snapshot")))
        }
        [verb, ..] => Err(unknown_verb("snapshot", verb)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(words: &[&str]) -> Result<(Schedule, Retention), ParseError> {
        let mut all = vec!["task", "add", "media"];
        all.extend_from_slice(words);
        match parse_snapshot(&all)? {
            SnapshotRequest::TaskAdd {
                schedule,
                retention,
                ..
            } => Ok((schedule, retention)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tasks() {
        assert_eq!(
            task(&["every", "minute", "keep", "3"]).unwrap(),
            (Schedule::Minutes(1), Retention::Last(3))
        );
        assert_eq!(
            task(&["every", "15m", "keep", "7d"]).unwrap(),
            (Schedule::Minutes(15), Retention::For(7 * 86_400))
        );
        assert_eq!(
            task(&["every", "2", "hours", "keep", "12"]).unwrap(),
            (Schedule::Hours(2), Retention::Last(12))
        );
        assert_eq!(
            task(&["daily", "at", "03:30", "keep", "2w"]).unwrap().0,
            Schedule::Daily {
                hour: 3,
                minute: 30
            }
        );
        assert_eq!(
            task(&["weekly", "sunday", "04:00", "keep", "8"]).unwrap().0,
            Schedule::Weekly {
                weekday: 6,
                hour: 4,
                minute: 0
            }
        );
        for (words, says) in [
            (&["every", "0m", "keep", "3"][..], "1 to 1440"),
            (&["every", "soon", "keep", "3"][..], "not a schedule"),
            (&["hourly", "keep", "3"][..], "not a schedule"),
            (&["daily", "25:00", "keep", "3"][..], "not a time"),
            (
                &["weekly", "funday", "03:00", "keep", "3"][..],
                "day of the week",
            ),
            (&["every", "minute", "keep", "0"][..], "keep at least 1"),
            (&["every", "minute"][..], "needs a retention"),
            (&["every", "minute", "keep", "3x"][..], "not a retention"),
            (&["every", "minute", "keep", "30s"][..], "not a retention"),
        ] {
            let message = task(words).unwrap_err().to_string();
            assert!(message.contains(says), "{words:?}: {message}");
        }
    }

    #[test]
    fn snapshots() {
        assert_eq!(
            parse_snapshot(&["create", "media@before-cleanup"]).unwrap(),
            SnapshotRequest::Create {
                dataset: DatasetName::parse("media").unwrap(),
                name: SnapshotName::parse_manual("before-cleanup").unwrap()
            }
        );
        assert!(parse_snapshot(&["create", "media"])
            .unwrap_err()
            .to_string()
            .contains("DATASET@NAME"));
        assert!(parse_snapshot(&["create", "media@auto-t1-x"])
            .unwrap_err()
            .to_string()
            .contains("periodic"));
        assert!(parse_snapshot(&["destroy", "media@auto-t1-20261201-1800"]).is_ok());
        assert!(matches!(
            parse_snapshot(&["rollback", "media@s"]).unwrap(),
            SnapshotRequest::Rollback {
                confirmed: false,
                ..
            }
        ));
        assert!(matches!(
            parse_snapshot(&["clone", "media@s", "media-copy"]).unwrap(),
            SnapshotRequest::Clone { .. }
        ));
        assert_eq!(
            parse_snapshot(&["task", "remove", "3"]).unwrap(),
            SnapshotRequest::TaskRemove { id: 3 }
        );
        assert!(parse_snapshot(&["task", "remove", "x"]).is_err());
    }
}
