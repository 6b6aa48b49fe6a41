//! Disk health requests (`disk health`, `disk test`) and the periodic poll from the minute
//! tick. The engine keeps the last reading of each disk, so a disk in standby shows what it
//! said when last awake, and later alerts can compare readings.

use std::time::{Duration, Instant};

use super::Appliance;
use crate::console::request::DiskName;
use crate::console::Reply;
use crate::storage::pool as storage;
use crate::system::disks::{self, Disk};
use crate::system::health::{self, Reading, Verdict};

/// How often the minute tick reads every disk's health.
pub(super) const POLL_EVERY: Duration = Duration::from_secs(30 * 60);

impl Appliance {
    /// Reads `disk` now and keeps the reading (the earlier one stays when the disk sleeps).
    fn read_health(&mut self, disk: &Disk) -> Reading {
        let new = health::read(disk, storage::now());
        let merged = health::merge(self.health.get(&disk.name), new);
        if let Verdict::Failing(why) = &merged.verdict {
            if !merged.asleep {
                log::warn!("disk {} health: FAILING: {why}", disk.name);
            }
        }
        self.health.insert(disk.name.clone(), merged.clone());
        self.check_disk_alerts(disk, &merged);
        merged
    }

    /// Reads every disk, forgetting disks that are gone.
    fn read_all_health(&mut self) -> Vec<Reading> {
        let all = disks::list();
        self.health
            .retain(|name, _| all.iter().any(|d| &d.name == name));
        self.forget_disk_alerts(&all);
        all.iter().map(|d| self.read_health(d)).collect()
    }

    /// From the minute tick: every [`POLL_EVERY`], the first time at the first tick.
    pub(super) fn poll_health_if_due(&mut self) {
        if self
            .health_polled
            .is_some_and(|at| at.elapsed() < POLL_EVERY)
        {
            return;
        }
        self.health_polled = Some(Instant::now());
        let readings = self.read_all_health();
        self.weekly_self_tests(&disks::list());
        log::info!(
            "disk health: {}",
            readings
                .iter()
                .map(|r| format!("{} {}", r.disk, r.health_text()))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    pub(super) fn disk_health_request(&mut self, disk: Option<DiskName>) -> Result<Reply, String> {
        match disk {
            None => Ok(Reply::DiskHealth(self.read_all_health())),
            Some(name) => {
                let disk = find(&name)?;
                Ok(Reply::DiskHealthDetail(Box::new(self.read_health(&disk))))
            }
        }
    }

    pub(super) fn disk_test_request(
        &mut self,
        disk: DiskName,
        long: bool,
    ) -> Result<Reply, String> {
        let disk = find(&disk)?;
        health::start_self_test(&disk, long).map(Reply::Done)
    }
}

fn find(name: &DiskName) -> Result<Disk, String> {
    disks::list()
        .into_iter()
        .find(|d| d.name == name.as_str())
        .ok_or_else(|| format!("no disk named {}; 'disks' lists them", name.as_str()))
}
