//! The engine's time side: the `time` requests, the SNTP client's reports
//! ([`Event::Clock`](crate::init::Event::Clock)) and [`ClockState`], what the engine knows of
//! the clock's synchronization. The SNTP thread (`net/sntp.rs`) sets the clock; the engine
//! never does (it only writes the hardware clock at shutdown, see `mod.rs`).

use std::net::SocketAddr;

use super::Appliance;
use crate::config::time::{TimeServer, TimeSettings};
use crate::console::time::{TimeReport, TimeRequest};
use crate::console::Reply;
use crate::net::sntp::{self, Report, Source};
use crate::system::clock;

/// A synchronization older than this (three of the longest poll intervals) no longer counts.
pub const SYNC_VALID_SECS: u64 = 3 * sntp::MAX_POLL.as_secs();

/// The last good poll.
#[derive(Debug, Clone, PartialEq)]
pub struct LastSync {
    /// Unix time, on the corrected clock.
    pub at: u64,
    pub server: String,
    pub address: SocketAddr,
    pub source: Source,
    pub offset: f64,
    pub delay: f64,
    pub stratum: u8,
    pub stepped: bool,
}

/// What the engine knows of the clock's synchronization.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockState {
    pub last_sync: Option<LastSync>,
    /// The last failed poll (Unix time, reason) and where its servers came from.
    pub last_error: Option<(u64, String)>,
    pub source: Option<Source>,
    /// When this boot began, on the clock as steps have corrected it since.
    booted_at: u64,
}

impl ClockState {
    /// A clock never synchronized, for a boot that began at Unix time `booted_at`.
    pub fn new(booted_at: u64) -> ClockState {
        ClockState {
            last_sync: None,
            last_error: None,
            source: None,
            booted_at,
        }
    }

    /// How long the clock has gone without a good poll at `now` (since the last one, or since
    /// boot when there was none), or `None` while it is synchronized. This is what the "clock
    /// not synchronized for 24 hours" alert reads.
    pub fn unsynchronized_for(&self, now: u64) -> Option<u64> {
        match &self.last_sync {
            Some(s) if now.saturating_sub(s.at) <= SYNC_VALID_SECS => None,
            Some(s) => Some(now.saturating_sub(s.at)),
            None => Some(now.saturating_sub(self.booted_at)),
        }
    }

    pub fn synchronized(&self, now: u64) -> bool {
        self.unsynchronized_for(now).is_none()
    }

    /// Takes in one poll's report.
    pub fn record(&mut self, report: &Report) {
        match report {
            Report::Synced {
                server,
                address,
                source,
                offset,
                delay,
                stratum,
                stepped,
                at,
                ..
            } => {
                if *stepped {
                    // Times taken before the step move with it, so durations stay true.
                    self.booted_at = shift(self.booted_at, *offset);
                    if let Some((when, _)) = &mut self.last_error {
                        *when = shift(*when, *offset);
                    }
                }
                self.last_sync = Some(LastSync {
                    at: *at,
                    server: server.clone(),
                    address: *address,
                    source: *source,
                    offset: *offset,
                    delay: *delay,
                    stratum: *stratum,
                    stepped: *stepped,
                });
                self.source = Some(*source);
            }
            Report::Failed {
                reason, source, at, ..
            } => {
                self.last_error = Some((*at, reason.clone()));
                self.source = Some(*source);
            }
        }
    }
}

fn shift(at: u64, offset: f64) -> u64 {
    (at as f64 + offset).max(0.0) as u64
}

impl Appliance {
    pub(super) fn time_request(&mut self, request: TimeRequest) -> Result<Reply, String> {
        match request {
            TimeRequest::Show => Ok(Reply::Time(Box::new(self.time_report()))),
            TimeRequest::Zone(zone) => {
                clock::lookup_zone(&zone)?;
                let mut new = self.config.clone();
                new.time.zone = zone.clone();
                self.commit(new)?;
                let _ = clock::set_zone(&zone);
                Ok(Reply::Done(format!(
                    "time zone {zone}; it is now {}",
                    clock::console_time_precise(crate::storage::pool::now())
                )))
            }
            TimeRequest::Servers(servers) => {
                let mut new = self.config.clone();
                new.time.servers = servers.clone();
                self.commit(new)?;
                if let Some(client) = &self.sntp {
                    client.set_servers(servers.clone());
                }
                Ok(Reply::Done(if servers.is_empty() {
                    format!(
                        "time servers: the default ({}) when DHCP gives none",
                        TimeSettings::DEFAULT_SERVER
                    )
                } else {
                    format!(
                        "time servers: {} when DHCP gives none; asking now",
                        list(&servers)
                    )
                }))
            }
        }
    }

    /// Starts the SNTP client (with the network) on the configured servers.
    pub(super) fn start_sntp(&mut self) {
        match sntp::Sntp::start(self.sender.clone(), self.config.time.servers.clone()) {
            Ok(client) => self.sntp = Some(client),
            Err(e) => log::error!("cannot start the SNTP client: {e}; the clock is not set"),
        }
    }

    /// Puts the time settings of a loaded configuration in force.
    pub(super) fn adopt_time(&mut self, time: &TimeSettings) {
        if let Some(warning) = clock::set_zone(&time.zone) {
            log::warn!("clock: {warning}");
            self.consoles.notify(&format!("clock: {warning}"));
        }
        if let Some(client) = &self.sntp {
            client.set_servers(time.servers.clone());
        }
    }

    pub(super) fn clock_report(&mut self, report: Report) {
        match &report {
            Report::Synced {
                server,
                offset,
                stepped: true,
                ..
            } => log::info!("clock set from {server}: stepped by {offset:+.3} s"),
            Report::Synced { .. } => {}
            Report::Failed { reason, .. } => {
                crate::peer_log!(log::Level::Warn, "sntp: failed polls", "sntp: {reason}")
            }
        }
        self.clock.record(&report);
    }

    fn time_report(&self) -> TimeReport {
        let now = crate::storage::pool::now();
        let zone_name = clock::zone_name();
        let zone = if zone_name == self.config.time.zone {
            zone_name
        } else {
            format!(
                "{zone_name} (the configured zone {:?} is not in the time zone database)",
                self.config.time.zone
            )
        };
        let server = self.clock.last_sync.as_ref().map(|s| {
            format!(
                "{} ({}, {}, stratum {})",
                s.server, s.address, s.source, s.stratum
            )
        });
        let last_offset = self.clock.last_sync.as_ref().map(|s| {
            format!(
                "{:+.3} s ({}, round trip {:.0} ms), measured {} ({} ago)",
                s.offset,
                if s.stepped { "stepped" } else { "slewed" },
                s.delay * 1000.0,
                clock::console_time_precise(s.at),
                ago(now.saturating_sub(s.at))
            )
        });
        let servers = match self.clock.source {
            Some(Source::Dhcp) => "from DHCP (option 42)".to_owned(),
            _ if !self.config.time.servers.is_empty() => {
                format!("{} (configured)", list(&self.config.time.servers))
            }
            _ => format!("{} (default)", TimeSettings::DEFAULT_SERVER),
        };
        let last_error = match &self.clock.last_error {
            Some((at, e)) if self.clock.last_sync.as_ref().is_none_or(|s| *at >= s.at) => {
                Some(format!("{} ({e})", clock::console_time(*at)))
            }
            _ => None,
        };
        TimeReport {
            local: clock::console_time_precise(now),
            utc: clock::format_in(&jiff::tz::TimeZone::UTC, now, true),
            zone,
            synchronized: self.clock.synchronized(now),
            server,
            last_offset,
            servers,
            last_error,
        }
    }
}

fn list(servers: &[TimeServer]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `12 s`, `5 min`, `3 h`.
fn ago(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced(at: u64, offset: f64, stepped: bool) -> Report {
        Report::Synced {
            server: "10.0.2.2:1123".into(),
            address: "10.0.2.2:1123".parse().unwrap(),
            source: Source::Configured,
            offset,
            delay: 0.01,
            stratum: 2,
            stepped,
            at,
            next_poll: 64,
        }
    }

    fn appliance() -> Appliance {
        let (tx, rx) = std::sync::mpsc::channel();
        let consoles = crate::console::Consoles::start(&[], "tank", tx.clone());
        Appliance::new(&board::QEMU_X86_64, 0.0, rx, tx, consoles)
    }

    #[test]
    fn time_requests_change_the_configuration() {
        let mut a = appliance();
        // A zone the database lacks is refused with the reason; nothing changes.
        let e = a
            .time_request(TimeRequest::Zone("Europe/Berlinn".into()))
            .unwrap_err();
        assert!(e.contains("not in the time zone database"), "{e}");
        assert_eq!(a.config.time.zone, "UTC");
        let servers = vec![TimeServer::parse("10.0.2.2:1123").unwrap()];
        let Ok(Reply::Done(done)) = a.time_request(TimeRequest::Servers(servers.clone())) else {
            panic!("servers not set");
        };
        assert!(done.contains("10.0.2.2:1123"), "{done}");
        assert_eq!(a.config.time.servers, servers);
        let Ok(Reply::Time(report)) = a.time_request(TimeRequest::Show) else {
            panic!("no report");
        };
        assert!(!report.synchronized);
        assert_eq!(report.servers, "10.0.2.2:1123 (configured)");
        a.clock_report(synced(crate::storage::pool::now(), 0.5, true));
        let Ok(Reply::Time(report)) = a.time_request(TimeRequest::Show) else {
            panic!("no report");
        };
        assert!(report.synchronized, "{report:?}");
        assert!(report.last_offset.unwrap().starts_with("+0.500 s (stepped"));
        assert!(a.time_request(TimeRequest::Servers(Vec::new())).is_ok());
        assert!(a.config.time.servers.is_empty());
    }

    #[test]
    fn unsynchronized_counts_from_boot_then_from_the_last_sync() {
        let boot = 1_000_000;
        let mut clock = ClockState::new(boot);
        assert_eq!(clock.unsynchronized_for(boot + 90), Some(90));
        clock.record(&Report::Failed {
            reason: "no answer".into(),
            source: Source::Default,
            at: boot + 100,
            next_poll: 8,
        });
        assert_eq!(clock.unsynchronized_for(boot + 100), Some(100));
        // The first sync steps the clock an hour forward: the boot moves with it.
        clock.record(&synced(boot + 3_700, 3_600.0, true));
        assert!(clock.synchronized(boot + 3_700));
        assert_eq!(
            clock.unsynchronized_for(boot + 3_700 + SYNC_VALID_SECS),
            None
        );
        // No good poll for longer than the validity: unsynchronized since the last sync.
        let later = boot + 3_700 + SYNC_VALID_SECS + 1;
        assert_eq!(clock.unsynchronized_for(later), Some(SYNC_VALID_SECS + 1));
        // A slew later keeps the boot where it was.
        clock.record(&synced(later + 10, 0.02, false));
        assert_eq!(clock.unsynchronized_for(later + 10), None);
        assert_eq!(clock.booted_at, boot + 3_600);
        assert_eq!(ago(5), "5 s");
        assert_eq!(ago(600), "10 min");
        assert_eq!(ago(7200), "2 h");
    }
}
