//! The alert book: every condition the appliance raises and clears, with a stable id, its
//! severity, when it was first and last seen and when it cleared, and the history of the ones
//! that cleared. It decides which changes become a notice to the owner:
//! - one notice when a condition is raised (or rises to a higher severity), one when it clears;
//! - a reminder every [`REMIND_EVERY`] while a critical condition stands;
//! - a warning or info condition that comes back within [`QUIET_AFTER_CLEAR`] of clearing is
//!   shown but not sent again (nor its next clear), so a value that hovers at a limit does not
//!   flood the owner; the sources add hysteresis on top (a limit clears a little below itself).
//!
//! The book is saved on the pool as JSON (atomic replace), so alerts and their history survive
//! a reboot and a standing condition is not announced again after one.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A standing critical condition is announced again this often (seconds).
pub const REMIND_EVERY: u64 = 24 * 3600;
/// A warning that clears and comes back within this many seconds is not announced again.
pub const QUIET_AFTER_CLEAR: u64 = 3600;
/// Cleared alerts kept in the history.
pub const HISTORY: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn upper(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: the same condition always has the same id (`pool.degraded`,
    /// `disk.sdb.smart`, `task.3.failed`).
    pub id: String,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    pub cleared: Option<u64>,
    /// When the owner was last told of it (raised or reminded); `None` while it is quiet.
    pub notified: Option<u64>,
    /// The operator may dismiss it (`alert dismiss ID`): it records an event (errors rose, a
    /// job failed) rather than a state the appliance re-checks.
    pub dismissible: bool,
}

/// What a notice says about its alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeState {
    Raised,
    Cleared,
    /// Still standing (a critical condition, every [`REMIND_EVERY`]).
    Reminder,
    /// Sent by `alert test`.
    Test,
}

impl NoticeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeState::Raised => "raised",
            NoticeState::Cleared => "cleared",
            NoticeState::Reminder => "reminder",
            NoticeState::Test => "test",
        }
    }
}

/// A message to the owner about one alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: String,
    pub severity: Severity,
    pub state: NoticeState,
    pub title: String,
    pub message: String,
    /// Unix seconds.
    pub time: u64,
}

impl Notice {
    fn of(alert: &Alert, state: NoticeState, time: u64) -> Notice {
        Notice {
            id: alert.id.clone(),
            severity: alert.severity,
            state,
            title: alert.title.clone(),
            message: alert.message.clone(),
            time,
        }
    }
}

/// What a source says about a condition it checks.
pub struct Raise<'a> {
    pub id: &'a str,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub dismissible: bool,
}

/// Active alerts and the history, with what each source remembers between checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    active: BTreeMap<String, Alert>,
    /// Cleared alerts, oldest first.
    history: VecDeque<Alert>,
    /// Numbers sources compare against (error counters per member, sector counts per disk),
    /// by key; kept with the alerts so a rise across a reboot is still a rise.
    #[serde(default)]
    pub baselines: BTreeMap<String, u64>,
}

impl Book {
    /// Raises (or refreshes) a condition; returns the notice to send, if any.
    pub fn raise(&mut self, r: Raise<'_>, now: u64) -> Option<Notice> {
        if let Some(alert) = self.active.get_mut(r.id) {
            alert.last_seen = now;
            let higher = r.severity > alert.severity;
            alert.severity = r.severity;
            alert.title = r.title;
            alert.message = r.message;
            alert.dismissible = r.dismissible;
            if higher || (alert.notified.is_none() && r.severity == Severity::Critical) {
                alert.notified = Some(now);
                return Some(Notice::of(alert, NoticeState::Raised, now));
            }
            return None;
        }
        let recently_cleared = self.history.iter().rev().any(|a| {
            a.id == r.id
                && a.cleared
                    .is_some_and(|c| now.saturating_sub(c) < QUIET_AFTER_CLEAR)
        });
        let quiet = recently_cleared && r.severity < Severity::Critical;
        let alert = Alert {
            id: r.id.to_owned(),
            severity: r.severity,
            title: r.title,
            message: r.message,
            first_seen: now,
            last_seen: now,
            cleared: None,
            notified: (!quiet).then_some(now),
            dismissible: r.dismissible,
        };
        match alert.severity {
            Severity::Critical => {
                log::error!("ALERT {}: {}: {}", alert.id, alert.title, alert.message)
            }
            _ => log::warn!("alert {}: {}: {}", alert.id, alert.title, alert.message),
        }
        let notice = (!quiet).then(|| Notice::of(&alert, NoticeState::Raised, now));
        self.active.insert(alert.id.clone(), alert);
        notice
    }

    /// Clears a condition; returns the notice to send, if the raise was sent.
    pub fn clear(&mut self, id: &str, now: u64) -> Option<Notice> {
        let mut alert = self.active.remove(id)?;
        alert.cleared = Some(now);
        log::info!("alert {} cleared: {}", alert.id, alert.title);
        let notice = alert
            .notified
            .is_some()
            .then(|| Notice::of(&alert, NoticeState::Cleared, now));
        self.push_history(alert);
        notice
    }

    /// Clears every active alert whose id starts with `prefix` and that `still` does not
    /// claim (a source that checks a family of ids: each disk, each task).
    pub fn clear_family(
        &mut self,
        prefix: &str,
        still: &dyn Fn(&str) -> bool,
        now: u64,
    ) -> Vec<Notice> {
        let gone: Vec<String> = self
            .active
            .keys()
            .filter(|id| id.starts_with(prefix) && !still(id))
            .cloned()
            .collect();
        gone.iter().filter_map(|id| self.clear(id, now)).collect()
    }

    /// Something that happened once (a replace finished): announced, and kept in the history
    /// as seen and cleared at the same moment.
    pub fn event(&mut self, r: Raise<'_>, now: u64) -> Notice {
        let alert = Alert {
            id: r.id.to_owned(),
            severity: r.severity,
            title: r.title,
            message: r.message,
            first_seen: now,
            last_seen: now,
            cleared: Some(now),
            notified: Some(now),
            dismissible: false,
        };
        log::info!("event {}: {}: {}", alert.id, alert.title, alert.message);
        let notice = Notice::of(&alert, NoticeState::Raised, now);
        self.push_history(alert);
        notice
    }

    /// Dismisses an alert the operator has seen. Refused for conditions the appliance checks
    /// itself (they clear when the condition ends).
    pub fn dismiss(&mut self, id: &str, now: u64) -> Result<Option<Notice>, String> {
        match self.active.get(id) {
            None => Err(format!(
                "no active alert has the id {id}; 'alert list' shows them"
            )),
            Some(a) if !a.dismissible => Err(format!(
                "alert {id} clears by itself when its condition ends ({}); it cannot be dismissed",
                a.title
            )),
            Some(_) => Ok(self.clear(id, now)),
        }
    }

    /// Reminders for critical alerts not announced for [`REMIND_EVERY`].
    pub fn reminders(&mut self, now: u64) -> Vec<Notice> {
        let mut out = Vec::new();
        for alert in self.active.values_mut() {
            if alert.severity == Severity::Critical
                && alert
                    .notified
                    .is_some_and(|t| now.saturating_sub(t) >= REMIND_EVERY)
            {
                alert.notified = Some(now);
                out.push(Notice::of(alert, NoticeState::Reminder, now));
            }
        }
        out
    }

    fn push_history(&mut self, alert: Alert) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(alert);
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.active.contains_key(id)
    }

    /// Active alerts, most severe first, then oldest first.
    pub fn active(&self) -> Vec<&Alert> {
        let mut list: Vec<&Alert> = self.active.values().collect();
        list.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.first_seen.cmp(&b.first_seen))
        });
        list
    }

    /// Cleared alerts, newest first.
    pub fn history(&self) -> impl Iterator<Item = &Alert> {
        self.history.iter().rev()
    }

    /// Counts of active alerts by severity (info, warning, critical).
    pub fn counts(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for a in self.active.values() {
            counts[a.severity as usize] += 1;
        }
        counts
    }

    /// Reads the saved book; a missing file is an empty book, a damaged one too (with the
    /// reason, to be logged): alerts are re-raised by their sources at the next check.
    pub fn load(path: &Path) -> (Book, Option<String>) {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(book) => (book, None),
                Err(e) => (
                    Book::default(),
                    Some(format!(
                        "{} is damaged ({e}); starting an empty alert book",
                        path.display()
                    )),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Book::default(), None),
            Err(e) => (
                Book::default(),
                Some(format!(
                    "cannot read {}: {e}; starting an empty alert book",
                    path.display()
                )),
            ),
        }
    }

    /// Saves the book atomically (a temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        crate::alerts::write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, severity: Severity) -> Raise<'_> {
        Raise {
            id,
            severity,
            title: format!("{id} title"),
            message: "m".into(),
            dismissible: false,
        }
    }

    #[test]
    fn raise_once_clear_once() {
        let mut b = Book::default();
        let n = b
            .raise(r("pool.degraded", Severity::Critical), 100)
            .unwrap();
        assert_eq!(
            (n.state, n.severity),
            (NoticeState::Raised, Severity::Critical)
        );
        assert!(b
            .raise(r("pool.degraded", Severity::Critical), 160)
            .is_none());
        assert_eq!(b.active()[0].last_seen, 160);
        assert_eq!(b.active()[0].first_seen, 100);
        let c = b.clear("pool.degraded", 200).unwrap();
        assert_eq!(c.state, NoticeState::Cleared);
        assert!(b.clear("pool.degraded", 201).is_none());
        let h: Vec<_> = b.history().collect();
        assert_eq!(h[0].cleared, Some(200));
    }

    #[test]
    fn escalation_is_announced() {
        let mut b = Book::default();
        assert!(b.raise(r("pool.space", Severity::Warning), 0).is_some());
        let n = b.raise(r("pool.space", Severity::Critical), 10).unwrap();
        assert_eq!(n.severity, Severity::Critical);
        // Back down to a warning: no new message.
        assert!(b.raise(r("pool.space", Severity::Warning), 20).is_none());
    }

    #[test]
    fn flapping_warning_is_quiet() {
        let mut b = Book::default();
        assert!(b.raise(r("disk.sda.temp", Severity::Warning), 0).is_some());
        assert!(b.clear("disk.sda.temp", 60).is_some());
        // Back within the hour: shown, not sent; its clear not sent either.
        assert!(b
            .raise(r("disk.sda.temp", Severity::Warning), 120)
            .is_none());
        assert!(b.is_active("disk.sda.temp"));
        assert!(b.clear("disk.sda.temp", 180).is_none());
        // After the quiet hour it is news again.
        assert!(b
            .raise(
                r("disk.sda.temp", Severity::Warning),
                180 + QUIET_AFTER_CLEAR
            )
            .is_some());
        // A critical one is always sent.
        let mut b = Book::default();
        b.raise(r("x", Severity::Critical), 0);
        b.clear("x", 1);
        assert!(b.raise(r("x", Severity::Critical), 2).is_some());
    }

    #[test]
    fn reminders_for_critical_only() {
        let mut b = Book::default();
        b.raise(r("a", Severity::Critical), 0);
        b.raise(r("b", Severity::Warning), 0);
        assert!(b.reminders(REMIND_EVERY - 1).is_empty());
        let rem = b.reminders(REMIND_EVERY);
        assert_eq!(rem.len(), 1);
        assert_eq!(
            (rem[0].id.as_str(), rem[0].state),
            ("a", NoticeState::Reminder)
        );
        assert!(b.reminders(REMIND_EVERY + 10).is_empty());
        assert_eq!(b.reminders(2 * REMIND_EVERY).len(), 1);
    }

    #[test]
    fn families_and_dismissal() {
        let mut b = Book::default();
        b.raise(r("task.1.failed", Severity::Warning), 0);
        b.raise(r("task.2.failed", Severity::Warning), 0);
        let cleared = b.clear_family("task.", &|id| id == "task.2.failed", 5);
        assert_eq!(cleared.len(), 1);
        assert!(b.is_active("task.2.failed") && !b.is_active("task.1.failed"));
        assert!(b
            .dismiss("task.2.failed", 6)
            .unwrap_err()
            .contains("clears by itself"));
        b.raise(
            Raise {
                dismissible: true,
                ..r("member.2.errors", Severity::Warning)
            },
            7,
        );
        assert!(b.dismiss("member.2.errors", 8).unwrap().is_some());
        assert!(b
            .dismiss("nope", 9)
            .unwrap_err()
            .contains("no active alert"));
        assert_eq!(b.counts(), [0, 1, 0]);
    }

    #[test]
    fn history_is_bounded_and_saved() {
        let mut b = Book::default();
        for i in 0..(HISTORY as u64 + 10) {
            b.event(r("replace.finished", Severity::Info), i);
        }
        assert_eq!(b.history().count(), HISTORY);
        b.baselines.insert("member.1.write".into(), 3);
        let dir = std::env::temp_dir().join(format!("tank-book-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.json");
        b.save(&path).unwrap();
        assert_eq!(Book::load(&path), (b, None));
        std::fs::write(&path, b"{\"active\":").unwrap();
        let (empty, warning) = Book::load(&path);
        assert_eq!(empty, Book::default());
        assert!(warning.unwrap().contains("damaged"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
