//! Where alerts are raised and cleared, and the `alert` requests.
//!
//! Every condition goes through [`Appliance::raise_alert`], [`Appliance::clear_alert`] or
//! [`Appliance::alert_event`]: the book decides what becomes a notice, the console hears of
//! warnings and critical ones at once, and the outbox delivers each notice to every channel.
//! The sources:
//! - [`Appliance::check_pool_alerts`], each minute and on a disk uevent: members missing or
//!   removed (`pool.degraded`), btrfs error counters rising (`member.DEVID.errors`), space
//!   (`pool.space`), dataset quotas (`dataset.NAME.quota`);
//! - [`Appliance::check_disk_alerts`], on every health reading: SMART or NVMe failing
//!   (`disk.NAME.health`), reallocated, pending or uncorrectable sectors rising
//!   (`disk.NAME.sectors`), temperature (`disk.NAME.temperature`), a failed self-test
//!   (`disk.NAME.selftest`);
//! - jobs and tasks (`scrub.*`, `replace.*`, `task.ID.failed`), the boot (`boot.*`), the
//!   clock (`clock.unsynchronized`).
//!
//! `boot.*` alerts are about one boot: those of an earlier boot clear when the pool's book is
//! loaded. The rest are re-checked by their sources.

use std::collections::BTreeSet;
use std::sync::mpsc::Sender;

use super::{Appliance, Persistence, PoolState};
use crate::alerts::deliver::Channels;
use crate::alerts::outbox::ChannelKind;
use crate::alerts::{self, Book, Notice, NoticeState, Raise, Severity};
use crate::config::alerting::AlertSettings;
use crate::console::request::{AlertChannel, AlertRequest, Table};
use crate::console::Reply;
use crate::storage::pool as storage;
use crate::system::disks::Disk;
use crate::system::health::{Detail, Reading, Verdict};

/// Pool space: warning and critical from these fractions, cleared below the first one less
/// the hysteresis.
const SPACE_WARNING: f64 = 0.80;
const SPACE_CRITICAL: f64 = 0.95;
const QUOTA_WARNING: f64 = 0.90;
const HYSTERESIS: f64 = 0.02;
/// Degrees below the limit at which a temperature alert clears.
const TEMP_HYSTERESIS: i64 = 2;
/// The clock unsynchronized this long (seconds) raises an alert.
const CLOCK_UNSYNCED_AFTER: u64 = 24 * 3600;
/// A weekly short self-test on disks that support it.
pub(super) const SELF_TEST_EVERY: u64 = 7 * 86_400;

/// The ATA attributes whose raw values predict failure when they rise.
const SECTOR_ATTRIBUTES: [(u8, &str); 3] = [
    (5, "reallocated sectors"),
    (197, "pending sectors"),
    (198, "offline uncorrectable sectors"),
];

fn raise(id: &str, severity: Severity, title: String, message: String) -> Raise<'_> {
    Raise {
        id,
        severity,
        title,
        message,
        dismissible: false,
    }
}

impl Appliance {
    /// Raises (or refreshes) a condition.
    pub(super) fn raise_alert(&mut self, r: Raise<'_>) {
        let notice = self.book.raise(r, storage::now());
        self.announce(notice);
    }

    /// Clears a condition (nothing when it was not active).
    pub(super) fn clear_alert(&mut self, id: &str) {
        if self.book.is_active(id) {
            let notice = self.book.clear(id, storage::now());
            self.announce(notice);
        }
    }

    /// Clears the alerts under `prefix` that `still` does not claim.
    fn clear_alert_family(&mut self, prefix: &str, still: &dyn Fn(&str) -> bool) {
        let notices = self.book.clear_family(prefix, still, storage::now());
        let changed = !notices.is_empty();
        for n in notices {
            self.announce(Some(n));
        }
        if changed {
            self.save_book();
        }
    }

    /// Something that happened once (a replace finished).
    pub(super) fn alert_event(&mut self, r: Raise<'_>) {
        let notice = self.book.event(r, storage::now());
        self.announce(Some(notice));
    }

    /// Tells the consoles and queues the notice; saves the book.
    fn announce(&mut self, notice: Option<Notice>) {
        if let Some(n) = &notice {
            let said = match (n.state, n.severity) {
                (NoticeState::Cleared, _) => Some(format!("alert cleared: {}", n.title)),
                (_, Severity::Critical) => Some(format!(
                    "*** ALERT (critical): {}: {} ***",
                    n.title, n.message
                )),
                (_, Severity::Warning) => {
                    Some(format!("alert (warning): {}: {}", n.title, n.message))
                }
                (_, Severity::Info) => None,
            };
            if let Some(line) = said {
                self.consoles.notify(&line);
            }
            self.outbox.enqueue(n);
        }
        self.save_book();
    }

    fn save_book(&self) {
        if matches!(self.persistence, Persistence::Store(_)) {
            if let Err(e) = self.book.save(&alerts::book_path()) {
                log::warn!("alert book not saved: {e}");
            }
        }
    }

    /// The pool is mounted with its store: load the book kept there (alerts and history of
    /// earlier boots), keep what this boot raised before, and deliver the outbox kept there.
    pub(super) fn alerts_pool_mounted(&mut self) {
        if let Err(e) = alerts::make_dir() {
            log::error!("alerts: {e}; alerts are kept in memory only this boot");
            return;
        }
        let (mut saved, problem) = Book::load(&alerts::book_path());
        if let Some(p) = problem {
            log::warn!("{p}");
        }
        let now = storage::now();
        let this_boot = std::mem::take(&mut self.book);
        // An earlier boot's boot alerts do not hold for this one.
        let stale: Vec<String> = saved
            .active()
            .iter()
            .filter(|a| a.id.starts_with("boot.") && !this_boot.is_active(&a.id))
            .map(|a| a.id.clone())
            .collect();
        let mut notices: Vec<Notice> = stale.iter().filter_map(|id| saved.clear(id, now)).collect();
        // This boot's alerts were announced already; carry them over without a new notice.
        for a in this_boot.active() {
            let _ = saved.raise(
                Raise {
                    id: &a.id,
                    severity: a.severity,
                    title: a.title.clone(),
                    message: a.message.clone(),
                    dismissible: a.dismissible,
                },
                a.last_seen,
            );
        }
        self.book = saved;
        // Channels first: the saved messages go out as soon as they are loaded.
        self.sync_channels();
        self.outbox.attach(&alerts::outbox_dir());
        for n in notices.drain(..) {
            self.announce(Some(n));
        }
        self.save_book();
    }

    /// Starts the delivery thread (once, at boot).
    pub fn start_alert_delivery(&mut self) {
        let outbox = self.outbox.clone();
        let spawned = crate::supervise::spawn_supervised(
            "alert-delivery",
            crate::supervise::Policy::RESTART,
            move || outbox.run(&crate::alerts::outbox::send),
        );
        if let Err(e) = spawned {
            log::error!("cannot start alert delivery: {e}; alerts are shown at the console only");
        }
    }

    /// Gives the delivery thread the configured channels, host name and mail password.
    pub(super) fn sync_channels(&mut self) {
        let password = match (&self.config.alerts.mail, &self.persistence) {
            (Some(m), Persistence::Store(_)) if m.user.is_some() => alerts::load_mail_password(),
            _ => None,
        };
        self.outbox.set_channels(Channels {
            mail: self.config.alerts.mail.clone(),
            webhook: self.config.alerts.webhook.clone(),
            mail_password: password,
            hostname: self.hostname.clone(),
        });
    }

    /// A whole disk appeared or went away (a kernel uevent).
    pub(super) fn disk_event(&mut self, action: &str, kernel: &str) {
        log::info!("disk {kernel}: {action}");
        self.check_pool_alerts();
    }

    /// Looks at the pool: members, error counters, space, quotas.
    pub(super) fn check_pool_alerts(&mut self) {
        let PoolState::Mounted { degraded } = self.pool_state else {
            if self.pool_state == PoolState::Absent {
                self.clear_alert_family("pool.", &|_| false);
            }
            return;
        };
        let Some(status) = storage::status(
            &self.config,
            degraded,
            self.job_line(),
            self.last_scrub.clone(),
        ) else {
            return;
        };
        for m in status.members.iter().filter(|m| !m.missing) {
            if let Some(disk) = &m.disk {
                self.member_names
                    .insert(m.devid, (disk.clone(), m.serial.clone()));
            }
        }
        let missing: Vec<String> = status
            .members
            .iter()
            .filter(|m| m.missing)
            .map(|m| match self.member_names.get(&m.devid) {
                Some((disk, serial)) => format!(
                    "member devid {} (was {disk}, serial {serial}) is missing or was removed",
                    m.devid
                ),
                None => format!("member devid {} is missing", m.devid),
            })
            .collect();
        if !missing.is_empty() && !degraded {
            self.pool_state = PoolState::Mounted { degraded: true };
        }
        let name = status.name.clone();
        if !missing.is_empty() {
            self.raise_alert(raise(
                "pool.degraded",
                Severity::Critical,
                format!("pool {name} is degraded"),
                format!(
                    "{}: the pool has no redundancy. Attach a blank disk at least as large and run \
                     'pool replace missing DISK'.",
                    missing.join(", ")
                ),
            ));
        } else if status.health != crate::storage::Health::Online {
            self.raise_alert(raise(
                "pool.degraded",
                Severity::Warning,
                format!("pool {name} is not fully mirrored"),
                status.advice.join("; "),
            ));
        } else {
            self.clear_alert("pool.degraded");
        }
        self.check_member_errors(&status);
        // Space.
        if status.size_bytes > 0 {
            let used = status.used_bytes as f64 / status.size_bytes as f64;
            let pct = (used * 100.0).round();
            let message = format!(
                "{pct}% of pool {name} is used ({} free): delete data or snapshots, or add space",
                crate::system::disks::human_size(status.free_bytes)
            );
            if used >= SPACE_CRITICAL {
                self.raise_alert(raise(
                    "pool.space",
                    Severity::Critical,
                    format!("pool {name} is almost full"),
                    message,
                ));
            } else if used >= SPACE_WARNING {
                self.raise_alert(raise(
                    "pool.space",
                    Severity::Warning,
                    format!("pool {name} is filling up"),
                    message,
                ));
            } else if used < SPACE_WARNING - HYSTERESIS {
                self.clear_alert("pool.space");
            }
        }
        // Quotas.
        let mut over = BTreeSet::new();
        for (dataset, used, quota) in storage::quota_usage(&self.config) {
            let id = format!("dataset.{dataset}.quota");
            let fraction = used as f64 / quota.max(1) as f64;
            if fraction >= QUOTA_WARNING {
                over.insert(id.clone());
                self.raise_alert(raise(
                    &id,
                    Severity::Warning,
                    format!("dataset {dataset} is near its quota"),
                    format!(
                        "{} of {} used ({:.0}%): raise the quota ('dataset set {dataset} quota SIZE') or free space",
                        crate::system::disks::human_size(used),
                        crate::system::disks::human_size(quota),
                        fraction * 100.0
                    ),
                ));
            } else if fraction >= QUOTA_WARNING - HYSTERESIS && self.book.is_active(&id) {
                over.insert(id);
            }
        }
        self.clear_alert_family("dataset.", &|id| over.contains(id));
    }

    /// Compares each member's btrfs error counters with what was seen before.
    fn check_member_errors(&mut self, status: &crate::storage::PoolStatus) {
        let mut members = BTreeSet::new();
        for m in &status.members {
            members.insert(format!("member.{}.", m.devid));
            let e = m.errors;
            let mut rose = Vec::new();
            let mut serious = false;
            for (kind, now) in error_kinds(&e) {
                let key = format!("member.{}.{kind}", m.devid);
                let before = *self.book.baselines.entry(key.clone()).or_insert(now);
                if now < before {
                    // A new device under the same devid (a replace) starts again from zero.
                    self.book.baselines.insert(key, now);
                } else if now > before {
                    rose.push(format!("{kind} errors {before} → {now}"));
                    serious |= matches!(kind, "corruption" | "generation");
                }
            }
            let id = format!("member.{}.errors", m.devid);
            if !rose.is_empty() {
                let disk = m
                    .disk
                    .clone()
                    .unwrap_or_else(|| format!("devid {}", m.devid));
                self.raise_alert(Raise {
                    id: &id,
                    severity: if serious {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    title: format!("pool member {disk} has new errors"),
                    message: format!(
                        "devid {} (serial {}): {}. Run 'pool scrub start'; if they keep rising, \
                         replace the disk. 'alert dismiss {id}' once handled.",
                        m.devid,
                        if m.serial.is_empty() {
                            "unknown"
                        } else {
                            &m.serial
                        },
                        rose.join(", ")
                    ),
                    dismissible: true,
                });
            }
        }
        // Members that left the pool take their alerts and counters with them.
        let still = |id: &str| members.iter().any(|p| id.starts_with(p.as_str()));
        self.book
            .baselines
            .retain(|k, _| !k.starts_with("member.") || still(k));
        self.clear_alert_family("member.", &still);
    }

    /// Looks at one disk's health reading.
    pub(super) fn check_disk_alerts(&mut self, disk: &Disk, reading: &Reading) {
        if reading.asleep {
            return;
        }
        let name = &disk.name;
        let who = format!("{name} ({} serial {})", reading.model, reading.serial);
        let id = format!("disk.{name}.health");
        match &reading.verdict {
            Verdict::Failing(why) => self.raise_alert(raise(
                &id,
                Severity::Critical,
                format!("disk {name} is failing"),
                format!("{who}: {why}. Replace it: attach a blank disk and run 'pool replace {name} DISK'."),
            )),
            Verdict::Passed => self.clear_alert(&id),
            Verdict::Asleep | Verdict::NotAvailable(_) => {}
        }
        // Sectors: a rise of any counter since the last dismissal.
        if let Detail::Ata(smart) = &reading.detail {
            let mut rose = Vec::new();
            for (attr, what) in SECTOR_ATTRIBUTES {
                let Some(now) = smart.raw(attr) else { continue };
                let key = format!("disk.{}.ata{attr}", reading.serial);
                let before = *self.book.baselines.entry(key).or_insert(now);
                if now > before {
                    rose.push(format!("{what} {before} → {now}"));
                }
            }
            let id = format!("disk.{name}.sectors");
            if !rose.is_empty() {
                self.raise_alert(Raise {
                    id: &id,
                    severity: Severity::Warning,
                    title: format!("disk {name} is remapping sectors"),
                    message: format!(
                        "{who}: {}. A disk that keeps doing so is failing: plan to replace it. \
                         'alert dismiss {id}' once handled.",
                        rose.join(", ")
                    ),
                    dismissible: true,
                });
            }
            // A finished self-test that failed (the log's newest entry).
            if let Some(t) = smart.self_tests.first() {
                let id = format!("disk.{name}.selftest");
                if (3..=8).contains(&t.status) {
                    self.raise_alert(raise(
                        &id,
                        Severity::Critical,
                        format!("disk {name} failed a self-test"),
                        format!("{who}: {} self-test {}.", t.kind_name(), t.status_text()),
                    ));
                } else if t.status == 0 {
                    self.clear_alert(&id);
                }
            }
        }
        if let Detail::Nvme {
            self_tests: Some(log),
            ..
        } = &reading.detail
        {
            if let Some(t) = log.results.first() {
                let id = format!("disk.{name}.selftest");
                if (5..=7).contains(&t.result) {
                    self.raise_alert(raise(
                        &id,
                        Severity::Critical,
                        format!("disk {name} failed a self-test"),
                        format!("{who}: {} self-test {}.", t.kind_name(), t.result_text()),
                    ));
                } else if t.result == 0 {
                    self.clear_alert(&id);
                }
            }
        }
        // Temperature.
        let nvme = matches!(reading.detail, Detail::Nvme { .. });
        let limit = i64::from(if nvme {
            self.config.alerts.nvme_temp_limit
        } else {
            self.config.alerts.hdd_temp_limit
        });
        if let Some(t) = reading.temperature_c() {
            let id = format!("disk.{name}.temperature");
            if t > limit {
                self.raise_alert(raise(
                    &id,
                    Severity::Warning,
                    format!("disk {name} is hot ({t} °C)"),
                    format!(
                        "{who} is at {t} °C, above the limit of {limit} °C: check the fans and airflow \
                         ('alert temperature {} N' changes the limit)",
                        if nvme { "nvme" } else { "hdd" }
                    ),
                ));
            } else if t <= limit - TEMP_HYSTERESIS {
                self.clear_alert(&id);
            }
        }
    }

    /// Disks that are gone take their alerts with them.
    pub(super) fn forget_disk_alerts(&mut self, present: &[Disk]) {
        let names: Vec<String> = present
            .iter()
            .map(|d| format!("disk.{}.", d.name))
            .collect();
        self.clear_alert_family("disk.", &|id| {
            names.iter().any(|n| id.starts_with(n.as_str()))
        });
    }

    /// Starts the weekly short self-test of each disk that supports one and is due.
    pub(super) fn weekly_self_tests(&mut self, disks: &[Disk]) {
        let now = storage::now();
        for disk in disks {
            let Some(reading) = self.health.get(&disk.name) else {
                continue;
            };
            let supported = match &reading.detail {
                Detail::Ata(s) => s.data.as_ref().is_some_and(|d| d.self_test_supported),
                Detail::Nvme { self_tests, .. } => self_tests.is_some(),
                Detail::None => false,
            };
            if !supported || reading.asleep {
                continue;
            }
            let key = format!("selftest.{}", reading.serial);
            match self.book.baselines.get(&key) {
                // The first poll starts the clock; the first test runs a week later.
                None => {
                    self.book.baselines.insert(key, now);
                }
                Some(&last) if now.saturating_sub(last) >= SELF_TEST_EVERY => {
                    self.book.baselines.insert(key, now);
                    match crate::system::health::start_self_test(disk, false) {
                        Ok(said) => log::info!("weekly self-test: {said}"),
                        Err(e) => log::warn!("weekly self-test: {e}"),
                    }
                }
                Some(_) => {}
            }
        }
        self.save_book();
    }

    /// The minute tick: the clock, unsynchronized for a day, is an alert (schedules and
    /// certificate checks depend on it).
    pub(super) fn check_clock_alert(&mut self) {
        let now = storage::now();
        match self.clock.unsynchronized_for(now) {
            Some(secs) if secs >= CLOCK_UNSYNCED_AFTER => {
                let why = self
                    .clock
                    .last_error
                    .as_ref()
                    .map(|(_, e)| format!(" (last attempt: {e})"))
                    .unwrap_or_default();
                self.raise_alert(raise(
                    "clock.unsynchronized",
                    Severity::Warning,
                    "the clock is not synchronized".into(),
                    format!(
                        "no time server answered for {} h{why}: snapshot and scrub schedules \
                         follow a clock that may be wrong; check 'time' and 'time server'",
                        secs / 3600
                    ),
                ));
            }
            Some(_) => {}
            None => self.clear_alert("clock.unsynchronized"),
        }
    }

    /// The minute tick: reminders for standing critical alerts.
    pub(super) fn alert_reminders(&mut self) {
        let reminders = self.book.reminders(storage::now());
        for n in reminders {
            self.announce(Some(n));
        }
    }

    pub(super) fn alert_request(&mut self, request: AlertRequest) -> Result<Reply, String> {
        match request {
            AlertRequest::List => Ok(Reply::Table(self.alert_table(true))),
            AlertRequest::History => Ok(Reply::Table(self.alert_table(false))),
            AlertRequest::Show => Ok(Reply::Table(self.channel_table())),
            // Sent from its own thread (see `handle`); here only when called directly.
            AlertRequest::Test => Err("alert test runs on its own thread".into()),
            AlertRequest::Mail { channel, password } => {
                if channel.user.is_some() {
                    if !matches!(self.persistence, Persistence::Store(_)) {
                        return Err(
                            "the mail password is kept on the pool: create or import a pool first \
                             (or use a relay that needs no user)"
                                .into(),
                        );
                    }
                    let Some(password) = password else {
                        return Ok(Reply::AskSecret {
                            prompt: format!(
                                "password of {} on {}",
                                channel.user.as_deref().unwrap_or_default(),
                                channel.server
                            ),
                            request: Box::new(crate::console::Request::Alert(AlertRequest::Mail {
                                channel,
                                password: None,
                            })),
                        });
                    };
                    alerts::save_mail_password(Some(password.as_str()))?;
                }
                let mut new = self.config.clone();
                let said = format!(
                    "alerts are mailed to {} through {}:{} ({}{})",
                    channel.to,
                    channel.server,
                    channel.port,
                    channel.tls.as_str(),
                    channel
                        .user
                        .as_ref()
                        .map(|u| format!(", user {u}"))
                        .unwrap_or_default()
                );
                let no_user = channel.user.is_none();
                new.alerts.mail = Some(channel);
                self.commit(new)?;
                if no_user && matches!(self.persistence, Persistence::Store(_)) {
                    let _ = alerts::save_mail_password(None);
                }
                self.sync_channels();
                Ok(Reply::Done(format!(
                    "{said}; 'alert test' sends a test message"
                )))
            }
            AlertRequest::Webhook(hook) => {
                let mut new = self.config.clone();
                let said = format!(
                    "alerts are posted to {} ({})",
                    hook.url,
                    hook.format.as_str()
                );
                let plain = !hook.url.is_https();
                new.alerts.webhook = Some(hook);
                self.commit(new)?;
                self.sync_channels();
                Ok(Reply::Done(format!(
                    "{said}{}; 'alert test' sends a test message",
                    if plain { " without TLS" } else { "" }
                )))
            }
            AlertRequest::Remove(which) => {
                let mut new = self.config.clone();
                let had = match which {
                    AlertChannel::Mail => new.alerts.mail.take().is_some(),
                    AlertChannel::Webhook => new.alerts.webhook.take().is_some(),
                };
                if !had {
                    return Err(format!("no {} channel is set", channel_name(which)));
                }
                self.commit(new)?;
                if which == AlertChannel::Mail && matches!(self.persistence, Persistence::Store(_))
                {
                    alerts::save_mail_password(None)?;
                }
                self.sync_channels();
                Ok(Reply::Done(format!(
                    "alerts are no longer sent by {}",
                    channel_name(which)
                )))
            }
            AlertRequest::Dismiss(id) => {
                let notice = self.book.dismiss(&id, storage::now())?;
                // Errors that rose: what is counted now is the new normal.
                if let Some(devid) = id
                    .strip_prefix("member.")
                    .and_then(|r| r.strip_suffix(".errors"))
                {
                    self.rebase(&format!("member.{devid}."));
                }
                if let Some(disk) = id
                    .strip_prefix("disk.")
                    .and_then(|r| r.strip_suffix(".sectors"))
                {
                    if let Some(serial) = self.health.get(disk).map(|r| r.serial.clone()) {
                        self.rebase(&format!("disk.{serial}.ata"));
                    }
                }
                self.announce(notice);
                Ok(Reply::Done(format!("alert {id} dismissed")))
            }
            AlertRequest::Temperature { nvme, limit } => {
                let mut new = self.config.clone();
                if nvme {
                    new.alerts.nvme_temp_limit = limit;
                } else {
                    new.alerts.hdd_temp_limit = limit;
                }
                self.commit(new)?;
                Ok(Reply::Done(format!(
                    "{} disks above {limit} °C raise an alert",
                    if nvme { "NVMe" } else { "SATA and SAS" }
                )))
            }
        }
    }

    /// Sets the baselines under `prefix` to what the sources see now.
    fn rebase(&mut self, prefix: &str) {
        if prefix.starts_with("member.") {
            if let Some(status) = storage::status(&self.config, false, None, None) {
                for m in &status.members {
                    let e = m.errors;
                    for (kind, now) in error_kinds(&e) {
                        let key = format!("member.{}.{kind}", m.devid);
                        if key.starts_with(prefix) {
                            self.book.baselines.insert(key, now);
                        }
                    }
                }
            }
        } else {
            let readings: Vec<Reading> = self.health.values().cloned().collect();
            for r in readings {
                for (attr, _) in SECTOR_ATTRIBUTES {
                    let key = format!("disk.{}.ata{attr}", r.serial);
                    if let (true, Some(now)) = (key.starts_with(prefix), r.ata_raw(attr)) {
                        self.book.baselines.insert(key, now);
                    }
                }
            }
        }
    }

    fn alert_table(&self, recent_only: bool) -> Table {
        let time = crate::system::clock::console_time;
        let mut rows: Vec<Vec<String>> = self
            .book
            .active()
            .iter()
            .map(|a| {
                vec![
                    a.severity.upper().to_string(),
                    a.id.clone(),
                    format!("{}: {}", a.title, a.message),
                    time(a.first_seen),
                    time(a.last_seen),
                    "active".into(),
                ]
            })
            .collect();
        let limit = if recent_only { 10 } else { usize::MAX };
        rows.extend(self.book.history().take(limit).map(|a| {
            vec![
                a.severity.as_str().to_string(),
                a.id.clone(),
                format!("{}: {}", a.title, a.message),
                time(a.first_seen),
                time(a.last_seen),
                a.cleared.map(time).unwrap_or_default(),
            ]
        }));
        let [info, warning, critical] = self.book.counts();
        Table {
            headers: vec![
                "SEVERITY",
                "ID",
                "ALERT",
                "FIRST SEEN",
                "LAST SEEN",
                "CLEARED",
            ],
            rows,
            empty: "no alerts".into(),
            notes: vec![format!(
                "{critical} critical, {warning} warning, {info} info active{}",
                if recent_only {
                    "; 'log alerts' shows the whole history"
                } else {
                    ""
                }
            )],
        }
    }

    fn channel_table(&self) -> Table {
        let results = self.outbox.last_results();
        let pending = self.outbox.pending();
        let last = |kind: ChannelKind| match results.get(&kind) {
            None => "none yet".to_string(),
            Some(r) => format!(
                "{}: {}",
                crate::system::clock::console_time(r.time),
                match &r.outcome {
                    Ok(s) => format!("delivered ({s})"),
                    Err(e) => format!("FAILED: {e}"),
                }
            ),
        };
        let waiting = |kind: ChannelKind| {
            pending
                .iter()
                .filter(|m| m.channel == kind)
                .count()
                .to_string()
        };
        let a: &AlertSettings = &self.config.alerts;
        let mut rows = Vec::new();
        if let Some(m) = &a.mail {
            rows.push(vec![
                "mail".into(),
                format!(
                    "to {} via {}:{} tls {}{}{}",
                    m.to,
                    m.server,
                    m.port,
                    m.tls.as_str(),
                    m.from
                        .as_ref()
                        .map(|f| format!(" from {f}"))
                        .unwrap_or_default(),
                    m.user
                        .as_ref()
                        .map(|u| format!(" user {u}"))
                        .unwrap_or_default()
                ),
                waiting(ChannelKind::Mail),
                last(ChannelKind::Mail),
            ]);
        }
        if let Some(w) = &a.webhook {
            rows.push(vec![
                "webhook".into(),
                format!("{} ({})", w.url, w.format.as_str()),
                waiting(ChannelKind::Webhook),
                last(ChannelKind::Webhook),
            ]);
        }
        Table {
            headers: vec!["CHANNEL", "SETTINGS", "WAITING", "LAST DELIVERY"],
            rows,
            empty: "no alert channels: set one with 'alert mail ...' or 'alert webhook URL'".into(),
            notes: vec![format!(
                "temperature limits: hdd {} °C, nvme {} °C",
                a.hdd_temp_limit, a.nvme_temp_limit
            )],
        }
    }

    /// `alert test`: sends a test notice through every channel on its own thread and
    /// answers `reply` with each result, so the engine goes on meanwhile.
    pub(super) fn alert_test(&mut self, reply: Sender<Result<Reply, String>>) {
        let channels = self.outbox.channels();
        if channels.kinds().is_empty() {
            let _ = reply.send(Err(
                "no alert channels: set one with 'alert mail ...' or 'alert webhook URL'".into(),
            ));
            return;
        }
        let notice = Notice {
            id: "test".into(),
            severity: Severity::Info,
            state: NoticeState::Test,
            title: "test alert".into(),
            message: format!("A test alert from {}, sent by 'alert test'.", self.hostname),
            time: storage::now(),
        };
        let outbox = self.outbox.clone();
        let spawned = crate::supervise::spawn_job(
            "alert-test",
            move || {
                let mut lines = Vec::new();
                let mut failed = false;
                for kind in channels.kinds() {
                    let outcome = match kind {
                        ChannelKind::Mail => alerts::deliver::send_mail(&channels, &notice),
                        ChannelKind::Webhook => alerts::deliver::send_webhook(&channels, &notice),
                    };
                    outbox.record(kind, outcome.clone());
                    match outcome {
                        Ok(s) => lines.push(format!("{}: delivered ({s})", kind.as_str())),
                        Err(e) => {
                            failed = true;
                            lines.push(format!("{}: FAILED: {e}", kind.as_str()));
                        }
                    }
                }
                (lines.join("\n"), failed)
            },
            move |end| {
                let answer = match end {
                    Ok((text, false)) => Ok(Reply::Done(text)),
                    Ok((text, true)) => Err(text),
                    Err(panic) => Err(format!("alert test: internal error (panic): {panic}")),
                };
                let _ = reply.send(answer);
            },
        );
        if let Err(e) = spawned {
            log::error!("cannot start the alert test: {e}");
        }
    }

    /// The `alerts` line of `status`: active counts and each channel's state.
    pub(super) fn alerts_status(&self) -> String {
        let [info, warning, critical] = self.book.counts();
        let mut line = format!("{critical} critical, {warning} warning, {info} info active");
        let channels = self.outbox.channels();
        if channels.kinds().is_empty() {
            line.push_str("; no channels (set one with 'alert mail' or 'alert webhook')");
            return line;
        }
        let pending = self.outbox.pending();
        let last = self.outbox.last_results();
        for kind in channels.kinds() {
            let waiting = pending.iter().filter(|m| m.channel == kind).count();
            let state = match last.get(&kind).map(|r| &r.outcome) {
                None => "ready".to_string(),
                Some(Ok(_)) => "ok".to_string(),
                Some(Err(_)) => "FAILING (see 'alert show')".to_string(),
            };
            line.push_str(&format!("; {} {state}", kind.as_str()));
            if waiting > 0 {
                line.push_str(&format!(", {waiting} waiting"));
            }
        }
        line
    }

    /// Active alerts for `status`, most severe first.
    pub(super) fn status_alerts(&self) -> Vec<String> {
        self.book
            .active()
            .iter()
            .map(|a| {
                format!(
                    "{} {}: {} [{}]",
                    a.severity.upper(),
                    a.title,
                    a.message,
                    a.id
                )
            })
            .collect()
    }
}

/// A member's btrfs error counters by name.
fn error_kinds(e: &crate::storage::ErrorCounters) -> [(&'static str, u64); 5] {
    [
        ("read", e.read),
        ("write", e.write),
        ("flush", e.flush),
        ("corruption", e.corruption),
        ("generation", e.generation),
    ]
}

fn channel_name(c: AlertChannel) -> &'static str {
    match c {
        AlertChannel::Mail => "mail",
        AlertChannel::Webhook => "webhook",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use super::*;
    use crate::console::{Consoles, Request};

    fn appliance() -> Appliance {
        let (tx, rx) = channel();
        let consoles = Consoles::start(&[], "tank", tx.clone());
        let mut a = Appliance::new(&board::QEMU_X86_64, 0.0, rx, tx, consoles);
        a.assemble = |_, _| Ok(None);
        a
    }

    fn parse(line: &str) -> Request {
        match crate::console::parse::parse(line).unwrap() {
            crate::console::parse::Parsed::Request(r) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn a_failing_task_raises_one_alert_and_clears_it() {
        let mut a = appliance();
        let e = "cannot snapshot".to_string();
        for _ in 0..3 {
            a.task_alert(1, "media", Some(&e));
        }
        a.task_alert(12, "backup", Some(&e));
        let alerts = a.status_alerts();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert!(
            alerts[0].contains("snapshot task 1 (media) failed")
                && alerts[0].contains("[task.1.failed]")
        );
        a.task_alert(1, "media", None);
        let alerts = a.status_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].contains("task.12.failed"));
        let history = a.alert_table(false);
        assert!(history
            .rows
            .iter()
            .any(|r| r[1] == "task.1.failed" && !r[5].is_empty()));
        // Conditions the appliance checks cannot be dismissed.
        let refused = a
            .request(parse("alert dismiss task.12.failed"))
            .unwrap_err();
        assert!(refused.contains("clears by itself"), "{refused}");
    }

    #[test]
    fn channels_are_set_shown_and_removed() {
        let mut a = appliance();
        let Reply::Table(t) = a.request(parse("alert show")).unwrap() else {
            panic!()
        };
        assert!(t.rows.is_empty() && t.empty.contains("no alert channels"));
        let done = a
            .request(parse("alert webhook http://10.0.2.2:9/h format ntfy"))
            .unwrap();
        assert!(
            matches!(done, Reply::Done(ref s) if s.contains("without TLS")),
            "{done:?}"
        );
        assert_eq!(
            a.config.alerts.webhook.as_ref().map(|w| w.format),
            Some(crate::config::alerting::WebhookFormat::Ntfy)
        );
        assert!(a.outbox.channels().has(ChannelKind::Webhook));
        // A mail user's password lives on the pool: without one it is refused, nothing set.
        let refused = a
            .request(parse(
                "alert mail to o@example.com server smtp.example.com user o",
            ))
            .unwrap_err();
        assert!(refused.contains("create or import a pool"), "{refused}");
        assert!(a.config.alerts.mail.is_none());
        a.request(parse("alert mail to o@example.com server 10.0.2.2 tls off"))
            .unwrap();
        let Reply::Table(t) = a.request(parse("alert show")).unwrap() else {
            panic!()
        };
        assert_eq!(t.rows.len(), 2);
        assert!(
            t.rows[0][1].contains("via 10.0.2.2:25 tls off"),
            "{:?}",
            t.rows
        );
        a.request(parse("alert remove webhook")).unwrap();
        assert!(a
            .request(parse("alert remove webhook"))
            .unwrap_err()
            .contains("no webhook"));
        assert!(!a.outbox.channels().has(ChannelKind::Webhook));
        a.request(parse("alert temperature nvme 80")).unwrap();
        assert_eq!(a.config.alerts.nvme_temp_limit, 80);
    }

    #[test]
    fn a_critical_alert_is_queued_and_reminded() {
        let mut a = appliance();
        a.request(parse("alert webhook http://10.0.2.2:9/h"))
            .unwrap();
        a.raise_alert(raise(
            "pool.degraded",
            Severity::Critical,
            "t".into(),
            "m".into(),
        ));
        // Raised again by the next check: no second message.
        a.raise_alert(raise(
            "pool.degraded",
            Severity::Critical,
            "t".into(),
            "m".into(),
        ));
        assert_eq!(a.outbox.pending().len(), 1);
        a.clear_alert("pool.degraded");
        let states: Vec<_> = a.outbox.pending().iter().map(|m| m.notice.state).collect();
        assert_eq!(states, [NoticeState::Raised, NoticeState::Cleared]);
    }

    #[test]
    fn a_day_without_time_raises_the_clock_alert() {
        let mut a = appliance();
        a.check_clock_alert();
        assert!(!a.book.is_active("clock.unsynchronized"), "raised at boot");
        a.clock = super::super::time_requests::ClockState::new(
            storage::now() - CLOCK_UNSYNCED_AFTER - 60,
        );
        a.check_clock_alert();
        assert!(a.book.is_active("clock.unsynchronized"));
    }
}
