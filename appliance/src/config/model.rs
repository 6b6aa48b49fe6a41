//! The in-memory configuration model: what the appliance should be, as one cloneable value.
//!
//! What lives here: [`Config`] and its parts, the defaults of a fresh appliance, and
//! [`Config::validate`], the rules that involve more than one value (unique names, a static
//! address that fits its subnet, a scrub time that exists). Single values are proven valid by
//! the newtypes of [`names`](super::names).
//!
//! What does not live here: the on-disk form. This model may change freely (add a field, split
//! an enum); the persisted record in [`record`](super::record) changes only with a new record
//! version and a migration from the old one. Nothing here knows about serde.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use thiserror::Error;

use super::accounts::{GroupConfig, GroupName, UserConfig, UserName};
use super::alerting::{AlertSettingError, AlertSettings};
use jiff::tz::TimeZone;

use super::calendar::{civil_from_days, days_from_civil, last_local_slot, next_slot_by};
use super::names::{Compression, DatasetName, Mode, PoolName, Size, MAX_ID};
use super::sharing::{NfsShare, Principal, SmbGlobal, SmbShare, Squash};
use super::snapshots::{RetentionError, ScheduleError, SnapshotTask};
use super::time::{TimeSettingError, TimeSettings};

/// The whole configuration of the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The host name, a DNS name of at most 64 bytes (the kernel's limit).
    pub hostname: String,
    /// Interfaces configured explicitly, in order. An interface that is not listed uses DHCP, so
    /// the empty list means "DHCP everywhere".
    pub network: Vec<NetIface>,
    /// The storage pool, once one has been created or imported.
    pub pool: Option<PoolConfig>,
    /// The datasets of the pool, in creation order; names are unique.
    pub datasets: Vec<DatasetConfig>,
    /// When the pool is scrubbed.
    pub scrub: ScrubSchedule,
    /// What the last scrub found. State the appliance remembers across reboots (so the schedule
    /// knows whether this month's scrub ran), not something the operator sets.
    pub last_scrub: Option<ScrubSummary>,
    /// The users of the file servers; names, uids and primary gids are unique.
    pub users: Vec<UserConfig>,
    /// Groups for access lists and supplementary membership; names and gids are unique.
    pub groups: Vec<GroupConfig>,
    /// NFS exports, at most one per dataset.
    pub nfs_shares: Vec<NfsShare>,
    /// The SMB server's global settings.
    pub smb: SmbGlobal,
    /// SMB shares; names are unique without regard to case.
    pub smb_shares: Vec<SmbShare>,
    /// Periodic snapshot tasks.
    pub snapshot_tasks: Vec<SnapshotTask>,
    /// The id the next snapshot task gets (ids are never reused).
    pub next_task_id: u32,
    /// The time zone and time servers.
    pub time: TimeSettings,
    /// Where alerts are sent and the limits that raise them.
    pub alerts: AlertSettings,
}

/// What a scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubSummary {
    /// When it started, in seconds since the Unix epoch.
    pub started: u64,
    /// When it ended, in seconds since the Unix epoch.
    pub finished: u64,
    pub bytes_scrubbed: u64,
    /// Errors repaired from the other copy.
    pub corrected: u64,
    /// Errors no copy could repair.
    pub uncorrectable: u64,
    /// Cancelled before the end.
    pub cancelled: bool,
}

/// The configuration of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetIface {
    /// The kernel's name for the interface (`eth0`, `enp1s0`).
    pub name: String,
    /// How the interface gets its address.
    pub method: NetMethod,
}

/// How an interface gets its IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetMethod {
    /// Ask a DHCP server.
    #[default]
    Dhcp,
    /// A fixed address.
    Static {
        address: Ipv4Addr,
        /// The prefix length, `1..=32`.
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
    },
}

/// The storage pool the appliance serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool's name (the btrfs label and the mount point `/mnt/<name>`).
    pub name: PoolName,
    /// The btrfs filesystem UUID, so the right pool is assembled when disks from another pool
    /// with the same label are attached.
    pub uuid: [u8; 16],
}

/// One dataset: a subvolume directly under the pool's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetConfig {
    pub name: DatasetName,
    /// The size limit (a btrfs qgroup limit); `None` for no limit. Never zero.
    pub quota: Option<Size>,
    pub compression: Compression,
    /// The numeric owner of the dataset's root directory, `0..=4294967294` (parse with
    /// [`Uid::parse`](super::names::Uid::parse)).
    pub uid: u32,
    /// The numeric group of the dataset's root directory, `0..=4294967294` (parse with
    /// [`Gid::parse`](super::names::Gid::parse)).
    pub gid: u32,
    /// The permission bits of the dataset's root directory, `0..=0o7777` (parse with
    /// [`Mode::parse`]).
    pub mode: u32,
}

impl DatasetConfig {
    /// A new dataset with the defaults: no quota, zstd, owned by root, mode 0755.
    pub fn new(name: DatasetName) -> DatasetConfig {
        DatasetConfig {
            name,
            quota: None,
            compression: Compression::default(),
            uid: 0,
            gid: 0,
            mode: Mode::DEFAULT.bits(),
        }
    }
}

/// When the pool is scrubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrubSchedule {
    /// Never scrub automatically.
    Off,
    /// Once a month, on `day` (1 to 28, so every month has it) at `hour:minute` local time.
    Monthly { day: u8, hour: u8, minute: u8 },
}

impl ScrubSchedule {
    /// The last day of the month a monthly scrub may be on (every month has it).
    pub const MAX_DAY: u8 = 28;

    /// The latest scheduled start at or before wall time `wall` (seconds as if the wall clock
    /// were UTC, see [`last_local_slot`]).
    fn floor_wall(&self, wall: i64) -> Option<i64> {
        let ScrubSchedule::Monthly { day, hour, minute } = *self else {
            return None;
        };
        let (mut year, mut month, _) = civil_from_days(wall.div_euclid(86_400));
        let at = |year: i64, month: u32| {
            days_from_civil(year, month, u32::from(day)) * 86_400
                + i64::from(hour) * 3_600
                + i64::from(minute) * 60
        };
        let this_month = at(year, month);
        if this_month <= wall {
            return Some(this_month);
        }
        if month == 1 {
            year -= 1;
            month = 12;
        } else {
            month -= 1;
        }
        Some(at(year, month))
    }

    /// The latest scheduled start at or before `now` (seconds since the Unix epoch) on the wall
    /// clock of `zone`, or `None` when scrubbing is off.
    pub fn last_slot(&self, now: u64, zone: &TimeZone) -> Option<u64> {
        if *self == ScrubSchedule::Off {
            return None;
        }
        last_local_slot(zone, now, true, |wall| self.floor_wall(wall))
    }

    /// The next scheduled start after `now`, or `None` when scrubbing is off.
    pub fn next_slot(&self, now: u64, zone: &TimeZone) -> Option<u64> {
        next_slot_by(now, 32 * 86_400, |t| self.last_slot(t, zone))
    }

    /// Whether a scheduled scrub should start at `now`: a scheduled start has passed and no scrub
    /// started at or after it. `last` is when the last scrub started (`None`: never, so one is
    /// due). Times are seconds since the Unix epoch; the schedule is on the wall clock of
    /// `zone`.
    pub fn is_due(&self, last: Option<u64>, now: u64, zone: &TimeZone) -> bool {
        match self.last_slot(now, zone) {
            None => false,
            Some(slot) => last.is_none_or(|last| last < slot),
        }
    }

    /// The schedule with its time said in `zone` (`monthly on day 1 at 03:00 Europe/Berlin`).
    pub fn in_zone(&self, zone: &str) -> String {
        match self {
            ScrubSchedule::Off => "off".to_owned(),
            ScrubSchedule::Monthly { day, hour, minute } => {
                format!("monthly on day {day} at {hour:02}:{minute:02} {zone}")
            }
        }
    }
}

/// `off`, or `monthly on day 1 at 03:00 UTC`.
impl std::fmt::Display for ScrubSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.in_zone("UTC"))
    }
}

/// Monthly on the 1st at 03:00.
impl Default for ScrubSchedule {
    fn default() -> ScrubSchedule {
        ScrubSchedule::Monthly {
            day: 1,
            hour: 3,
            minute: 0,
        }
    }
}

/// A fresh appliance: host name `tank`, DHCP on every interface, no pool, no datasets, the
/// default scrub schedule.
impl Default for Config {
    fn default() -> Config {
        Config {
            hostname: Config::DEFAULT_HOSTNAME.to_owned(),
            network: Vec::new(),
            pool: None,
            datasets: Vec::new(),
            scrub: ScrubSchedule::default(),
            last_scrub: None,
            users: Vec::new(),
            groups: Vec::new(),
            nfs_shares: Vec::new(),
            smb: SmbGlobal::default(),
            smb_shares: Vec::new(),
            snapshot_tasks: Vec::new(),
            next_task_id: 1,
            time: TimeSettings::default(),
            alerts: AlertSettings::default(),
        }
    }
}

/// Why a configuration is not consistent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Time(#[from] TimeSettingError),
    #[error(transparent)]
    Alerts(#[from] AlertSettingError),
    #[error(
        "host name {hostname:?} is not valid: {reason}; use letters, digits and '-' \
         (for example \"tank\")"
    )]
    Hostname {
        hostname: String,
        reason: &'static str,
    },
    #[error("interface name {name:?} is not valid: {reason}")]
    InterfaceName { name: String, reason: &'static str },
    #[error("interface {name:?} is configured twice: keep one entry per interface")]
    DuplicateInterface { name: String },
    #[error("interface {iface}: prefix length /{prefix} is not valid: use 1 to 32")]
    Prefix { iface: String, prefix: u8 },
    #[error("interface {iface}: {what} {address} is not valid: {reason}")]
    Address {
        iface: String,
        what: &'static str,
        address: Ipv4Addr,
        reason: &'static str,
    },
    #[error(
        "interface {iface}: gateway {gateway} is outside the subnet {network}/{prefix}: give a \
         gateway on the interface's own subnet"
    )]
    GatewayOutsideSubnet {
        iface: String,
        gateway: Ipv4Addr,
        network: Ipv4Addr,
        prefix: u8,
    },
    #[error("interface {iface}: DNS server {server} is listed twice: list it once")]
    DuplicateDns { iface: String, server: Ipv4Addr },
    #[error("pool {pool}: the UUID is all zeros: re-import the pool to record its real UUID")]
    NilPoolUuid { pool: String },
    #[error(
        "{count} dataset(s) are configured but there is no pool: create or import a pool first"
    )]
    DatasetsWithoutPool { count: usize },
    #[error("dataset {name:?} is configured twice: dataset names must be unique")]
    DuplicateDataset { name: String },
    #[error("dataset {name:?} has a zero quota: set a positive quota or none")]
    ZeroQuota { name: String },
    #[error(
        "dataset {name:?} has mode {mode:o}, more than 7777: give permission bits such as 0755"
    )]
    Mode { name: String, mode: u32 },
    #[error(
        "dataset {name:?} has {what} id {id}, which means \"no owner\" to the kernel: give an \
         id from 0 to {max}",
        max = MAX_ID
    )]
    Owner {
        name: String,
        what: &'static str,
        id: u32,
    },
    #[error(
        "{what} {name:?} has id {id}, which is {reason}: give an id of 1000 or more (or leave \
         it out to get the next free one)"
    )]
    ReservedId {
        what: &'static str,
        name: String,
        id: u32,
        reason: &'static str,
    },
    #[error("{what} {name:?} is configured twice: {what} names must be unique")]
    DuplicateName { what: &'static str, name: String },
    #[error("{what} id {id} is used by both {first:?} and {second:?}: give each its own id")]
    DuplicateId {
        what: &'static str,
        id: u32,
        first: String,
        second: String,
    },
    #[error(
        "{what} {name:?} refers to dataset {dataset:?}, which does not exist: create the \
         dataset first or remove the {what}"
    )]
    UnknownDataset {
        what: String,
        name: String,
        dataset: String,
    },
    #[error(
        "{what} refers to {kind} {missing:?}, which does not exist: add it first or remove \
         the reference"
    )]
    UnknownAccount {
        what: String,
        kind: &'static str,
        missing: String,
    },
    #[error("dataset {dataset:?} has two NFS shares: change the existing share instead")]
    DuplicateNfsShare { dataset: String },
    #[error(
        "SMB share {name:?} forces user or group id {id}, above 65534, which ksmbd cannot \
         force: give the forced account a smaller id"
    )]
    ForceIdTooLarge { name: String, id: u32 },
    #[error(
        "SMB share {name:?} has {what} {mask:o}, more than 0777: give permission bits such as 0775"
    )]
    ShareMask {
        name: String,
        what: &'static str,
        mask: u32,
    },
    #[error("snapshot task {id}: {source}")]
    TaskSchedule {
        id: u32,
        #[source]
        source: ScheduleError,
    },
    #[error("snapshot task {id}: {source}")]
    TaskRetention {
        id: u32,
        #[source]
        source: RetentionError,
    },
    #[error("snapshot task id {id} is used twice or not below the next id {next}")]
    TaskId { id: u32, next: u32 },
    #[error("scrub day {day} is not valid: use a day of the month from 1 to 28")]
    ScrubDay { day: u8 },
    #[error("scrub time {hour:02}:{minute:02} is not valid: use 00:00 to 23:59")]
    ScrubTime { hour: u8, minute: u8 },
}

impl Config {
    /// The host name of a fresh appliance.
    pub const DEFAULT_HOSTNAME: &'static str = "tank";

    /// The longest host name, in bytes (the kernel's `__NEW_UTS_LEN`).
    pub const MAX_HOSTNAME_LEN: usize = 64;

    /// The longest interface name, in bytes (`IFNAMSIZ` less the NUL).
    pub const MAX_IFACE_LEN: usize = 15;

    /// Checks the rules that involve more than one value; returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_hostname(&self.hostname)?;
        self.time.validate()?;
        self.alerts.validate()?;
        let mut interfaces = BTreeSet::new();
        for iface in &self.network {
            check_iface_name(&iface.name)?;
            if !interfaces.insert(iface.name.as_str()) {
                return Err(ConfigError::DuplicateInterface {
                    name: iface.name.clone(),
                });
            }
            if let NetMethod::Static {
                address,
                prefix,
                gateway,
                dns,
            } = &iface.method
            {
                check_static(&iface.name, *address, *prefix, *gateway, dns)?;
            }
        }
        match &self.pool {
            Some(pool) if pool.uuid == [0; 16] => {
                return Err(ConfigError::NilPoolUuid {
                    pool: pool.name.to_string(),
                })
            }
            Some(_) => {}
            None if !self.datasets.is_empty() => {
                return Err(ConfigError::DatasetsWithoutPool {
                    count: self.datasets.len(),
                })
            }
            None => {}
        }
        let mut datasets = BTreeSet::new();
        for dataset in &self.datasets {
            if !datasets.insert(&dataset.name) {
                return Err(ConfigError::DuplicateDataset {
                    name: dataset.name.to_string(),
                });
            }
            if dataset.quota.is_some_and(|q| q.bytes() == 0) {
                return Err(ConfigError::ZeroQuota {
                    name: dataset.name.to_string(),
                });
            }
            if dataset.mode > Mode::MAX {
                return Err(ConfigError::Mode {
                    name: dataset.name.to_string(),
                    mode: dataset.mode,
                });
            }
            for (what, id) in [("user", dataset.uid), ("group", dataset.gid)] {
                if id > MAX_ID {
                    return Err(ConfigError::Owner {
                        name: dataset.name.to_string(),
                        what,
                        id,
                    });
                }
            }
        }
        self.validate_accounts()?;
        self.validate_shares()?;
        self.validate_tasks()?;
        if let ScrubSchedule::Monthly { day, hour, minute } = self.scrub {
            if !(1..=ScrubSchedule::MAX_DAY).contains(&day) {
                return Err(ConfigError::ScrubDay { day });
            }
            if hour > 23 || minute > 59 {
                return Err(ConfigError::ScrubTime { hour, minute });
            }
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), ConfigError> {
        let reserved = |id: u32| match id {
            0 => Some("root's"),
            super::accounts::NOBODY => Some("the anonymous user's"),
            id if id > MAX_ID => Some("out of range"),
            _ => None,
        };
        let mut names = BTreeSet::new();
        let mut uids = std::collections::BTreeMap::new();
        for user in &self.users {
            for id in [user.uid, user.gid] {
                if let Some(reason) = reserved(id) {
                    return Err(ConfigError::ReservedId {
                        what: "user",
                        name: user.name.to_string(),
                        id,
                        reason,
                    });
                }
            }
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::DuplicateName {
                    what: "user",
                    name: user.name.to_string(),
                });
            }
            if let Some(first) = uids.insert(user.uid, user.name.as_str()) {
                return Err(ConfigError::DuplicateId {
                    what: "user",
                    id: user.uid,
                    first: first.to_owned(),
                    second: user.name.to_string(),
                });
            }
            for group in &user.groups {
                if self.group(group).is_none() {
                    return Err(ConfigError::UnknownAccount {
                        what: format!("user {:?}", user.name.as_str()),
                        kind: "group",
                        missing: group.to_string(),
                    });
                }
            }
        }
        let mut names = BTreeSet::new();
        let mut gids = std::collections::BTreeMap::new();
        for group in &self.groups {
            if let Some(reason) = reserved(group.gid) {
                return Err(ConfigError::ReservedId {
                    what: "group",
                    name: group.name.to_string(),
                    id: group.gid,
                    reason,
                });
            }
            if !names.insert(group.name.as_str()) {
                return Err(ConfigError::DuplicateName {
                    what: "group",
                    name: group.name.to_string(),
                });
            }
            if let Some(first) = gids.insert(group.gid, group.name.as_str()) {
                return Err(ConfigError::DuplicateId {
                    what: "group",
                    id: group.gid,
                    first: first.to_owned(),
                    second: group.name.to_string(),
                });
            }
        }
        Ok(())
    }

    fn validate_shares(&self) -> Result<(), ConfigError> {
        let mut exported = BTreeSet::new();
        for share in &self.nfs_shares {
            if self.dataset(&share.dataset).is_none() {
                return Err(ConfigError::UnknownDataset {
                    what: "NFS share".into(),
                    name: share.dataset.to_string(),
                    dataset: share.dataset.to_string(),
                });
            }
            if !exported.insert(&share.dataset) {
                return Err(ConfigError::DuplicateNfsShare {
                    dataset: share.dataset.to_string(),
                });
            }
            if let Squash::MapRoot { uid, gid } | Squash::MapAll { uid, gid } = share.squash {
                for (what, id) in [("user", uid), ("group", gid)] {
                    if id > MAX_ID {
                        return Err(ConfigError::Owner {
                            name: share.dataset.to_string(),
                            what,
                            id,
                        });
                    }
                }
            }
        }
        let mut names = BTreeSet::new();
        for share in &self.smb_shares {
            let what = || format!("SMB share {:?}", share.name.as_str());
            if !names.insert(share.name.key()) {
                return Err(ConfigError::DuplicateName {
                    what: "SMB share",
                    name: share.name.to_string(),
                });
            }
            if self.dataset(&share.dataset).is_none() {
                return Err(ConfigError::UnknownDataset {
                    what: "SMB share".into(),
                    name: share.name.to_string(),
                    dataset: share.dataset.to_string(),
                });
            }
            for principal in share.valid_users.iter().chain(&share.read_only_users) {
                self.check_principal(principal, &what)?;
            }
            if let Some(user) = &share.force_user {
                let found = self.user(user).ok_or_else(|| ConfigError::UnknownAccount {
                    what: what(),
                    kind: "user",
                    missing: user.to_string(),
                })?;
                if found.uid > 65_534 || found.gid > 65_534 {
                    return Err(ConfigError::ForceIdTooLarge {
                        name: share.name.to_string(),
                        id: found.uid.max(found.gid),
                    });
                }
            }
            if let Some(group) = &share.force_group {
                let found = self
                    .group(group)
                    .ok_or_else(|| ConfigError::UnknownAccount {
                        what: what(),
                        kind: "group",
                        missing: group.to_string(),
                    })?;
                if found.gid > 65_534 {
                    return Err(ConfigError::ForceIdTooLarge {
                        name: share.name.to_string(),
                        id: found.gid,
                    });
                }
            }
            for (what, mask) in [
                ("create mask", share.create_mask),
                ("directory mask", share.directory_mask),
            ] {
                if mask > 0o777 {
                    return Err(ConfigError::ShareMask {
                        name: share.name.to_string(),
                        what,
                        mask,
                    });
                }
            }
        }
        Ok(())
    }

    fn check_principal(
        &self,
        principal: &Principal,
        what: &dyn Fn() -> String,
    ) -> Result<(), ConfigError> {
        let (kind, missing, found) = match principal {
            Principal::User(u) => ("user", u.as_str(), self.user(u).is_some()),
            Principal::Group(g) => ("group", g.as_str(), self.group(g).is_some()),
        };
        if found {
            return Ok(());
        }
        Err(ConfigError::UnknownAccount {
            what: what(),
            kind,
            missing: missing.to_owned(),
        })
    }

    fn validate_tasks(&self) -> Result<(), ConfigError> {
        let mut ids = BTreeSet::new();
        for task in &self.snapshot_tasks {
            if !ids.insert(task.id) || task.id >= self.next_task_id {
                return Err(ConfigError::TaskId {
                    id: task.id,
                    next: self.next_task_id,
                });
            }
            if self.dataset(&task.dataset).is_none() {
                return Err(ConfigError::UnknownDataset {
                    what: "snapshot task".into(),
                    name: task.id.to_string(),
                    dataset: task.dataset.to_string(),
                });
            }
            task.schedule
                .validate()
                .map_err(|source| ConfigError::TaskSchedule {
                    id: task.id,
                    source,
                })?;
            task.retention
                .validate()
                .map_err(|source| ConfigError::TaskRetention {
                    id: task.id,
                    source,
                })?;
        }
        Ok(())
    }

    /// The user called `name`, if there is one.
    pub fn user(&self, name: &UserName) -> Option<&UserConfig> {
        self.users.iter().find(|u| &u.name == name)
    }

    /// The group called `name`, if there is one.
    pub fn group(&self, name: &GroupName) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| &g.name == name)
    }

    /// The dataset called `name`, if there is one.
    pub fn dataset(&self, name: &DatasetName) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| &d.name == name)
    }

    /// The dataset called `name`, to change it.
    pub fn dataset_mut(&mut self, name: &DatasetName) -> Option<&mut DatasetConfig> {
        self.datasets.iter_mut().find(|d| &d.name == name)
    }

    /// The configuration of interface `name`: its entry, or DHCP if it has none.
    #[cfg(test)]
    pub fn net_method(&self, name: &str) -> &NetMethod {
        const DHCP: &NetMethod = &NetMethod::Dhcp;
        self.network
            .iter()
            .find(|iface| iface.name == name)
            .map_or(DHCP, |iface| &iface.method)
    }
}

/// Checks a host name: a DNS name of at most 64 bytes whose labels are 1 to 63 letters, digits
/// and `-`, not starting or ending with `-`. The console can call this at the edge.
pub fn check_hostname(hostname: &str) -> Result<(), ConfigError> {
    let bad = |reason| ConfigError::Hostname {
        hostname: hostname.to_owned(),
        reason,
    };
    if hostname.is_empty() {
        return Err(bad("it is empty"));
    }
    if hostname.len() > Config::MAX_HOSTNAME_LEN {
        return Err(bad("it is longer than 64 bytes"));
    }
    for label in hostname.split('.') {
        if label.is_empty() {
            return Err(bad("it has an empty label (two dots, or a dot at an end)"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "it contains a character other than a letter, digit, '-' or '.'",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(())
}

/// Checks an interface name the way the kernel's `dev_valid_name()` does, a little stricter.
pub fn check_iface_name(name: &str) -> Result<(), ConfigError> {
    let bad = |reason| ConfigError::InterfaceName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty; give a name such as eth0"));
    }
    if name.len() > Config::MAX_IFACE_LEN {
        return Err(bad(
            "it is longer than 15 bytes; give the kernel's name for it",
        ));
    }
    if name == "." || name == ".." {
        return Err(bad("it is a path component; give a name such as eth0"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
    {
        return Err(bad(
            "it may only hold printable ASCII without spaces, '/' or ':'",
        ));
    }
    Ok(())
}

fn netmask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// Checks a host address against its subnet; `what` names it in the error.
fn check_host(
    iface: &str,
    address: Ipv4Addr,
    prefix: u8,
    what: &'static str,
) -> Result<(), ConfigError> {
    let bad = |reason| ConfigError::Address {
        iface: iface.to_owned(),
        what,
        address,
        reason,
    };
    if address.is_unspecified() {
        return Err(bad("it is 0.0.0.0; give the host's own address"));
    }
    if address.is_loopback() {
        return Err(bad(
            "it is a loopback address; give an address on the network",
        ));
    }
    if address.is_multicast() {
        return Err(bad("it is a multicast address; give a unicast address"));
    }
    if address.is_broadcast() {
        return Err(bad(
            "it is the limited broadcast address; give a unicast address",
        ));
    }
    // A /31 or /32 has no network or broadcast address to avoid (RFC 3021).
    if prefix < 31 {
        let bits = u32::from(address);
        let mask = netmask(prefix);
        if bits & !mask == 0 {
            return Err(bad(
                "it is the network address of its subnet; give a host address",
            ));
        }
        if bits | mask == u32::MAX {
            return Err(bad(
                "it is the broadcast address of its subnet; give a host address",
            ));
        }
    }
    Ok(())
}

fn check_static(
    iface: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    dns: &[Ipv4Addr],
) -> Result<(), ConfigError> {
    if !(1..=32).contains(&prefix) {
        return Err(ConfigError::Prefix {
            iface: iface.to_owned(),
            prefix,
        });
    }
    check_host(iface, address, prefix, "address")?;
    if let Some(gateway) = gateway {
        if gateway == address {
            return Err(ConfigError::Address {
                iface: iface.to_owned(),
                what: "gateway",
                address: gateway,
                reason: "it is the interface's own address; give the router's address",
            });
        }
        let mask = netmask(prefix);
        if u32::from(gateway) & mask != u32::from(address) & mask {
            return Err(ConfigError::GatewayOutsideSubnet {
                iface: iface.to_owned(),
                gateway,
                network: Ipv4Addr::from(u32::from(address) & mask),
                prefix,
            });
        }
        check_host(iface, gateway, prefix, "gateway")?;
    }
    let mut seen = BTreeSet::new();
    for &server in dns {
        if server.is_unspecified() || server.is_multicast() || server.is_broadcast() {
            return Err(ConfigError::Address {
                iface: iface.to_owned(),
                what: "DNS server",
                address: server,
                reason: "it is not a unicast address; give the DNS server's address",
            });
        }
        if !seen.insert(server) {
            return Err(ConfigError::DuplicateDns {
                iface: iface.to_owned(),
                server,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(name: &str) -> DatasetConfig {
        DatasetConfig::new(DatasetName::parse(name).unwrap())
    }

    fn with_pool() -> Config {
        Config {
            pool: Some(PoolConfig {
                name: PoolName::parse("tank").unwrap(),
                uuid: [7; 16],
            }),
            ..Config::default()
        }
    }

    fn with_static(
        address: [u8; 4],
        prefix: u8,
        gateway: Option<[u8; 4]>,
        dns: &[[u8; 4]],
    ) -> Config {
        Config {
            network: vec![NetIface {
                name: "eth0".to_owned(),
                method: NetMethod::Static {
                    address: address.into(),
                    prefix,
                    gateway: gateway.map(Ipv4Addr::from),
                    dns: dns.iter().map(|&a| Ipv4Addr::from(a)).collect(),
                },
            }],
            ..Config::default()
        }
    }

    fn error_of(config: &Config) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid() {
        let config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.hostname, "tank");
        assert!(config.network.is_empty() && config.pool.is_none());
        assert_eq!(config.net_method("eth0"), &NetMethod::Dhcp);
        assert_eq!(
            config.scrub,
            ScrubSchedule::Monthly {
                day: 1,
                hour: 3,
                minute: 0
            }
        );
    }

    #[test]
    fn datasets_lookup_and_rules() {
        let mut config = with_pool();
        config.datasets = vec![dataset("media"), dataset("backup")];
        assert_eq!(config.validate(), Ok(()));
        let media = DatasetName::parse("media").unwrap();
        assert_eq!(
            config.dataset(&media).map(|d| d.name.as_str()),
            Some("media")
        );
        assert!(config
            .dataset(&DatasetName::parse("nope").unwrap())
            .is_none());
        if let Some(d) = config.dataset_mut(&media) {
            d.quota = Some(Size::from_bytes(0));
        }
        let message = error_of(&config);
        assert!(
            message.contains("\"media\"") && message.contains("zero quota"),
            "{message}"
        );

        config.datasets = vec![dataset("media")];
        config.datasets[0].mode = 0o10000;
        let message = error_of(&config);
        assert!(
            message.contains("\"media\"") && message.contains("mode 10000"),
            "{message}"
        );
        config.datasets[0].mode = 0o7777;
        config.datasets[0].gid = u32::MAX;
        let message = error_of(&config);
        assert!(message.contains("group id 4294967295"), "{message}");

        config.datasets = vec![dataset("media"), dataset("media")];
        let message = error_of(&config);
        assert!(
            message.contains("\"media\"") && message.contains("twice"),
            "{message}"
        );

        let no_pool = Config {
            datasets: vec![dataset("media")],
            ..Config::default()
        };
        assert!(error_of(&no_pool).contains("no pool"));

        let mut nil = with_pool();
        if let Some(pool) = &mut nil.pool {
            pool.uuid = [0; 16];
        }
        assert!(error_of(&nil).contains("pool tank"));
    }

    #[test]
    fn hostnames() {
        for good in ["tank", "nas-01", "tank.example.org", &"a".repeat(63)] {
            assert_eq!(check_hostname(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("-tank", "'-'"),
            ("tank-", "'-'"),
            ("my nas", "character"),
            ("nas_1", "character"),
            ("a..b", "empty label"),
            (&"a".repeat(64), "63"),
            (&"a.".repeat(33), "64 bytes"),
        ] {
            let config = Config {
                hostname: bad.to_owned(),
                ..Config::default()
            };
            let message = error_of(&config);
            assert!(message.contains(&format!("{bad:?}")), "{message}");
            assert!(message.contains(says), "{message}");
        }
    }

    #[test]
    fn interface_names() {
        for (bad, says) in [
            ("", "empty"),
            ("a-very-long-name0", "15 bytes"),
            ("..", "path component"),
            ("eth 0", "printable"),
            ("eth0:1", "printable"),
        ] {
            let mut config = with_static([192, 168, 1, 10], 24, None, &[]);
            config.network[0].name = bad.to_owned();
            let message = error_of(&config);
            assert!(message.contains(&format!("{bad:?}")), "{message}");
            assert!(message.contains(says), "{message}");
        }
        let mut twice = Config::default();
        for _ in 0..2 {
            twice.network.push(NetIface {
                name: "eth0".to_owned(),
                method: NetMethod::Dhcp,
            });
        }
        assert!(error_of(&twice).contains("\"eth0\" is configured twice"));
    }

    #[test]
    fn static_addresses() {
        let good = [
            with_static(
                [192, 168, 1, 10],
                24,
                Some([192, 168, 1, 1]),
                &[[1, 1, 1, 1]],
            ),
            with_static([10, 0, 0, 1], 31, None, &[]),
            with_static([10, 0, 0, 0], 31, Some([10, 0, 0, 1]), &[]),
            with_static([10, 0, 0, 5], 32, None, &[]),
        ];
        for config in good {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
        let bad = [
            (with_static([192, 168, 1, 10], 0, None, &[]), "/0"),
            (with_static([192, 168, 1, 10], 33, None, &[]), "/33"),
            (with_static([0, 0, 0, 0], 24, None, &[]), "0.0.0.0"),
            (with_static([127, 0, 0, 1], 8, None, &[]), "loopback"),
            (with_static([224, 0, 0, 1], 24, None, &[]), "multicast"),
            (
                with_static([255, 255, 255, 255], 24, None, &[]),
                "limited broadcast",
            ),
            (
                with_static([192, 168, 1, 0], 24, None, &[]),
                "192.168.1.0 is not valid: it is the network",
            ),
            (
                with_static([192, 168, 1, 255], 24, None, &[]),
                "broadcast address of its subnet",
            ),
            (
                with_static([192, 168, 1, 10], 24, Some([192, 168, 2, 1]), &[]),
                "gateway 192.168.2.1 is outside the subnet 192.168.1.0/24",
            ),
            (
                with_static([192, 168, 1, 10], 24, Some([192, 168, 1, 10]), &[]),
                "own address",
            ),
            (
                with_static([192, 168, 1, 10], 24, Some([192, 168, 1, 255]), &[]),
                "gateway 192.168.1.255",
            ),
            (
                with_static([192, 168, 1, 10], 24, None, &[[0, 0, 0, 0]]),
                "DNS server 0.0.0.0",
            ),
            (
                with_static([192, 168, 1, 10], 24, None, &[[9, 9, 9, 9], [9, 9, 9, 9]]),
                "9.9.9.9 is listed twice",
            ),
        ];
        for (config, says) in bad {
            let message = error_of(&config);
            assert!(message.contains(says), "{message}");
            assert!(message.contains("eth0"), "{message}");
        }
    }

    #[test]
    fn scrub_schedule() {
        let mut config = Config {
            scrub: ScrubSchedule::Off,
            ..Config::default()
        };
        assert_eq!(config.validate(), Ok(()));
        config.scrub = ScrubSchedule::Monthly {
            day: 28,
            hour: 23,
            minute: 59,
        };
        assert_eq!(config.validate(), Ok(()));
        for (day, hour, minute, says) in [
            (0, 3, 0, "scrub day 0"),
            (29, 3, 0, "scrub day 29"),
            (1, 24, 0, "24:00"),
            (1, 3, 60, "03:60"),
        ] {
            config.scrub = ScrubSchedule::Monthly { day, hour, minute };
            let message = error_of(&config);
            assert!(message.contains(says), "{message}");
        }
    }

    use crate::config::calendar::at;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(at(2024, 2, 29, 12, 0), 1_709_208_000);
        for days in [0, 59, 60, 365, 11_016, 11_017, 19_782, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn scrub_due() {
        let schedule = ScrubSchedule::default();
        assert_eq!(schedule.to_string(), "monthly on day 1 at 03:00 UTC");
        assert_eq!(ScrubSchedule::Off.to_string(), "off");
        let slot = at(2025, 3, 1, 3, 0);
        // Just before this month's start, the slot is last month's.
        assert_eq!(
            schedule.last_slot(slot - 1, &TimeZone::UTC),
            Some(at(2025, 2, 1, 3, 0))
        );
        assert_eq!(schedule.last_slot(slot, &TimeZone::UTC), Some(slot));
        assert_eq!(
            schedule.last_slot(at(2025, 3, 20, 0, 0), &TimeZone::UTC),
            Some(slot)
        );
        // January goes back to December of the year before.
        assert_eq!(
            schedule.last_slot(at(2025, 1, 1, 0, 0), &TimeZone::UTC),
            Some(at(2024, 12, 1, 3, 0))
        );

        assert!(schedule.is_due(None, slot, &TimeZone::UTC));
        assert!(schedule.is_due(Some(at(2025, 2, 1, 3, 0)), slot, &TimeZone::UTC));
        assert!(!schedule.is_due(Some(at(2025, 2, 1, 3, 0)), slot - 60, &TimeZone::UTC));
        assert!(!schedule.is_due(Some(slot), slot + 3_600, &TimeZone::UTC));
        assert!(!schedule.is_due(Some(slot + 10), at(2025, 3, 31, 23, 59), &TimeZone::UTC));
        assert!(schedule.is_due(Some(slot + 10), at(2025, 4, 1, 3, 0), &TimeZone::UTC));
        assert!(!ScrubSchedule::Off.is_due(None, slot, &TimeZone::UTC));
        let late = ScrubSchedule::Monthly {
            day: 28,
            hour: 23,
            minute: 59,
        };
        assert_eq!(
            late.last_slot(at(2025, 3, 1, 0, 0), &TimeZone::UTC),
            Some(at(2025, 2, 28, 23, 59))
        );
    }

    /// A monthly scrub on a daylight saving day starts once: New York springs forward on
    /// 2026-03-08 (02:30 does not exist: 03:00 EDT, 07:00 UTC) and Berlin falls back on
    /// 2026-10-25 (02:30 happens twice: the first, 00:30 UTC).
    #[test]
    fn scrub_on_daylight_saving_days() {
        for (zone, day, month, first) in [
            ("America/New_York", 8, 3, at(2026, 3, 8, 7, 0)),
            ("Europe/Berlin", 25, 10, at(2026, 10, 25, 0, 30)),
        ] {
            let zone = TimeZone::get(zone).unwrap();
            let schedule = ScrubSchedule::Monthly {
                day,
                hour: 2,
                minute: 30,
            };
            let mut last = Some(at(2026, month, 1, 0, 0));
            let mut started = Vec::new();
            let mut t = at(2026, month, u32::from(day) - 1, 12, 0) + 1;
            while t < at(2026, month, u32::from(day) + 1, 12, 0) {
                if schedule.is_due(last, t, &zone) {
                    started.push(t - 1);
                    last = Some(t);
                }
                t += 60;
            }
            assert_eq!(started, [first]);
            assert_eq!(schedule.next_slot(first - 3600, &zone), Some(first));
        }
        assert_eq!(
            ScrubSchedule::default().in_zone("Europe/Berlin"),
            "monthly on day 1 at 03:00 Europe/Berlin"
        );
    }
}
