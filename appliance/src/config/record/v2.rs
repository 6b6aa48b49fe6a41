//! Version 2 of the configuration record: version 1's fields, then users and groups, NFS and
//! SMB shares, the SMB server's settings and periodic snapshot tasks. Frozen once released,
//! like version 1 (see the parent module).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::v1::{
    DatasetRecordV1, NetIfaceRecordV1, PoolRecordV1, ScrubRecordV1, ScrubSummaryRecordV1,
};
use super::{field, ContentError};
use crate::config::accounts::{GroupConfig, GroupName, UserConfig, UserName};
use crate::config::model::Config;
use crate::config::names::DatasetName;
use crate::config::sharing::{
    ClientSpec, Encryption, NfsShare, Principal, ShareName, Signing, SmbGlobal, SmbProtocol,
    SmbShare, Squash,
};
use crate::config::snapshots::{Retention, Schedule, SnapshotTask};

/// Version 2 of the configuration record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecordV2 {
    pub hostname: String,
    pub network: Vec<NetIfaceRecordV1>,
    pub pool: Option<PoolRecordV1>,
    pub datasets: Vec<DatasetRecordV1>,
    pub scrub: ScrubRecordV1,
    pub last_scrub: Option<ScrubSummaryRecordV1>,
    pub users: Vec<UserRecordV2>,
    pub groups: Vec<GroupRecordV2>,
    pub nfs_shares: Vec<NfsShareRecordV2>,
    pub smb: SmbGlobalRecordV2,
    pub smb_shares: Vec<SmbShareRecordV2>,
    pub snapshot_tasks: Vec<SnapshotTaskRecordV2>,
    pub next_task_id: u32,
}

/// Version 2 of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecordV2 {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<String>,
    pub nt_hash: [u8; 16],
}

/// Version 2 of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecordV2 {
    pub name: String,
    pub gid: u32,
}

/// Version 2 of a client rule. Variant order is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRecordV2 {
    Everyone,
    V4 { address: [u8; 4], prefix: u8 },
    V6 { address: [u8; 16], prefix: u8 },
}

/// Version 2 of an NFS squash rule. Variant order is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SquashRecordV2 {
    RootToNobody,
    None,
    MapRoot { uid: u32, gid: u32 },
    MapAll { uid: u32, gid: u32 },
}

/// Version 2 of an NFS share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfsShareRecordV2 {
    pub dataset: String,
    pub clients: Vec<ClientRecordV2>,
    pub read_only: bool,
    pub squash: SquashRecordV2,
    pub insecure: bool,
}

/// Version 2 of the SMB server's settings. The enums are stored as small numbers: protocol
/// 0 = SMB 2.1, 1 = SMB 3.0; signing 0 = auto, 1 = mandatory; encryption 0 = auto, 1 = off,
/// 2 = required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmbGlobalRecordV2 {
    pub workgroup: String,
    pub min_protocol: u8,
    pub signing: u8,
    pub encryption: u8,
    pub domain_sid: [u32; 3],
}

impl Default for SmbGlobalRecordV2 {
    fn default() -> Self {
        SmbGlobalRecordV2::from(&SmbGlobal::default())
    }
}

/// Version 2 of a share access list entry. Variant order is part of the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalRecordV2 {
    User(String),
    Group(String),
}

/// Version 2 of an SMB share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmbShareRecordV2 {
    pub name: String,
    pub dataset: String,
    pub comment: String,
    pub read_only: bool,
    pub valid_users: Vec<PrincipalRecordV2>,
    pub read_only_users: Vec<PrincipalRecordV2>,
    pub guest_ok: bool,
    pub hosts_allow: Vec<ClientRecordV2>,
    pub hosts_deny: Vec<ClientRecordV2>,
    pub force_user: Option<String>,
    pub force_group: Option<String>,
    pub create_mask: u32,
    pub directory_mask: u32,
    pub browseable: bool,
    pub veto: Vec<String>,
}

/// Version 2 of a snapshot schedule. Variant order is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleRecordV2 {
    Minutes(u32),
    Hours(u32),
    Daily { hour: u8, minute: u8 },
    Weekly { weekday: u8, hour: u8, minute: u8 },
}

/// Version 2 of a retention rule. Variant order is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionRecordV2 {
    Last(u32),
    ForSeconds(u64),
}

/// Version 2 of a periodic snapshot task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTaskRecordV2 {
    pub id: u32,
    pub dataset: String,
    pub schedule: ScheduleRecordV2,
    pub retention: RetentionRecordV2,
    pub last_run: u64,
}

impl From<&ClientSpec> for ClientRecordV2 {
    fn from(spec: &ClientSpec) -> Self {
        match spec {
            ClientSpec::Everyone => ClientRecordV2::Everyone,
            ClientSpec::Net(IpNet::V4(net)) => ClientRecordV2::V4 {
                address: net.addr().octets(),
                prefix: net.prefix_len(),
            },
            ClientSpec::Net(IpNet::V6(net)) => ClientRecordV2::V6 {
                address: net.addr().octets(),
                prefix: net.prefix_len(),
            },
        }
    }
}

impl ClientRecordV2 {
    /// Parses through [`ClientSpec::parse`] so a record obeys the console's rules.
    fn into_model(self, at: &dyn Fn() -> String) -> Result<ClientSpec, ContentError> {
        let text = match self {
            ClientRecordV2::Everyone => return Ok(ClientSpec::Everyone),
            ClientRecordV2::V4 { address, prefix } => {
                format!("{}/{prefix}", IpAddr::V4(Ipv4Addr::from(address)))
            }
            ClientRecordV2::V6 { address, prefix } => {
                format!("{}/{prefix}", IpAddr::V6(Ipv6Addr::from(address)))
            }
        };
        field(at, ClientSpec::parse(&text))
    }
}

fn clients(list: &[ClientSpec]) -> Vec<ClientRecordV2> {
    list.iter().map(ClientRecordV2::from).collect()
}

fn clients_model(
    list: Vec<ClientRecordV2>,
    at: impl Fn(usize) -> String,
) -> Result<Vec<ClientSpec>, ContentError> {
    list.into_iter()
        .enumerate()
        .map(|(i, c)| c.into_model(&|| at(i)))
        .collect()
}

fn principals(list: &[Principal]) -> Vec<PrincipalRecordV2> {
    list.iter()
        .map(|p| match p {
            Principal::User(u) => PrincipalRecordV2::User(u.as_str().to_owned()),
            Principal::Group(g) => PrincipalRecordV2::Group(g.as_str().to_owned()),
        })
        .collect()
}

fn principals_model(
    list: Vec<PrincipalRecordV2>,
    at: impl Fn(usize) -> String,
) -> Result<Vec<Principal>, ContentError> {
    list.into_iter()
        .enumerate()
        .map(|(i, p)| match p {
            PrincipalRecordV2::User(u) => field(|| at(i), UserName::parse(&u)).map(Principal::User),
            PrincipalRecordV2::Group(g) => {
                field(|| at(i), GroupName::parse(&g)).map(Principal::Group)
            }
        })
        .collect()
}

impl From<&SmbGlobal> for SmbGlobalRecordV2 {
    fn from(smb: &SmbGlobal) -> Self {
        SmbGlobalRecordV2 {
            workgroup: smb.workgroup.clone(),
            min_protocol: match smb.min_protocol {
                SmbProtocol::Smb2_1 => 0,
                SmbProtocol::Smb3_0 => 1,
            },
            signing: match smb.signing {
                Signing::Auto => 0,
                Signing::Mandatory => 1,
            },
            encryption: match smb.encryption {
                Encryption::Auto => 0,
                Encryption::Off => 1,
                Encryption::Required => 2,
            },
            domain_sid: smb.domain_sid,
        }
    }
}

/// A stored enum number that is out of range.
#[derive(Debug, thiserror::Error)]
#[error("value {value} is not one of the known settings (0 to {max})")]
struct OutOfRange {
    value: u8,
    max: u8,
}

fn pick<T: Copy>(value: u8, options: &[T]) -> Result<T, OutOfRange> {
    options.get(usize::from(value)).copied().ok_or(OutOfRange {
        value,
        max: u8::try_from(options.len().saturating_sub(1)).unwrap_or(u8::MAX),
    })
}

impl SmbGlobalRecordV2 {
    fn into_model(self) -> Result<SmbGlobal, ContentError> {
        Ok(SmbGlobal {
            workgroup: field(
                || "smb.workgroup".to_owned(),
                crate::config::sharing::parse_workgroup(&self.workgroup),
            )?,
            min_protocol: field(
                || "smb.min_protocol".to_owned(),
                pick(
                    self.min_protocol,
                    &[SmbProtocol::Smb2_1, SmbProtocol::Smb3_0],
                ),
            )?,
            signing: field(
                || "smb.signing".to_owned(),
                pick(self.signing, &[Signing::Auto, Signing::Mandatory]),
            )?,
            encryption: field(
                || "smb.encryption".to_owned(),
                pick(
                    self.encryption,
                    &[Encryption::Auto, Encryption::Off, Encryption::Required],
                ),
            )?,
            domain_sid: self.domain_sid,
        })
    }
}

impl From<&Config> for ConfigRecordV2 {
    fn from(config: &Config) -> ConfigRecordV2 {
        ConfigRecordV2 {
            hostname: config.hostname.clone(),
            network: config.network.iter().map(NetIfaceRecordV1::from).collect(),
            pool: config.pool.as_ref().map(PoolRecordV1::from),
            datasets: config.datasets.iter().map(DatasetRecordV1::from).collect(),
            scrub: ScrubRecordV1::from(config.scrub),
            last_scrub: config.last_scrub.as_ref().map(ScrubSummaryRecordV1::from),
            users: config
                .users
                .iter()
                .map(|u| UserRecordV2 {
                    name: u.name.as_str().to_owned(),
                    uid: u.uid,
                    gid: u.gid,
                    groups: u.groups.iter().map(|g| g.as_str().to_owned()).collect(),
                    nt_hash: u.nt_hash,
                })
                .collect(),
            groups: config
                .groups
                .iter()
                .map(|g| GroupRecordV2 {
                    name: g.name.as_str().to_owned(),
                    gid: g.gid,
                })
                .collect(),
            nfs_shares: config
                .nfs_shares
                .iter()
                .map(|s| NfsShareRecordV2 {
                    dataset: s.dataset.as_str().to_owned(),
                    clients: clients(&s.clients),
                    read_only: s.read_only,
                    squash: match s.squash {
                        Squash::RootToNobody => SquashRecordV2::RootToNobody,
                        Squash::None => SquashRecordV2::None,
                        Squash::MapRoot { uid, gid } => SquashRecordV2::MapRoot { uid, gid },
                        Squash::MapAll { uid, gid } => SquashRecordV2::MapAll { uid, gid },
                    },
                    insecure: s.insecure,
                })
                .collect(),
            smb: SmbGlobalRecordV2::from(&config.smb),
            smb_shares: config
                .smb_shares
                .iter()
                .map(|s| SmbShareRecordV2 {
                    name: s.name.as_str().to_owned(),
                    dataset: s.dataset.as_str().to_owned(),
                    comment: s.comment.clone(),
                    read_only: s.read_only,
                    valid_users: principals(&s.valid_users),
                    read_only_users: principals(&s.read_only_users),
                    guest_ok: s.guest_ok,
                    hosts_allow: clients(&s.hosts_allow),
                    hosts_deny: clients(&s.hosts_deny),
                    force_user: s.force_user.as_ref().map(|u| u.as_str().to_owned()),
                    force_group: s.force_group.as_ref().map(|g| g.as_str().to_owned()),
                    create_mask: s.create_mask,
                    directory_mask: s.directory_mask,
                    browseable: s.browseable,
                    veto: s.veto.clone(),
                })
                .collect(),
            snapshot_tasks: config
                .snapshot_tasks
                .iter()
                .map(|t| SnapshotTaskRecordV2 {
                    id: t.id,
                    dataset: t.dataset.as_str().to_owned(),
                    schedule: match t.schedule {
                        Schedule::Minutes(n) => ScheduleRecordV2::Minutes(n),
                        Schedule::Hours(n) => ScheduleRecordV2::Hours(n),
                        Schedule::Daily { hour, minute } => {
                            ScheduleRecordV2::Daily { hour, minute }
                        }
                        Schedule::Weekly {
                            weekday,
                            hour,
                            minute,
                        } => ScheduleRecordV2::Weekly {
                            weekday,
                            hour,
                            minute,
                        },
                    },
                    retention: match t.retention {
                        Retention::Last(n) => RetentionRecordV2::Last(n),
                        Retention::For(secs) => RetentionRecordV2::ForSeconds(secs),
                    },
                    last_run: t.last_run,
                })
                .collect(),
            next_task_id: config.next_task_id,
        }
    }
}

/// Checks every value and the whole configuration: a record is trusted no more than input.
impl TryFrom<ConfigRecordV2> for Config {
    type Error = ContentError;

    fn try_from(record: ConfigRecordV2) -> Result<Config, ContentError> {
        let pool = record.pool.map(PoolRecordV1::into_model).transpose()?;
        let datasets = record
            .datasets
            .into_iter()
            .enumerate()
            .map(|(i, d)| d.into_model(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut users = Vec::with_capacity(record.users.len());
        for (i, u) in record.users.into_iter().enumerate() {
            let groups = u
                .groups
                .iter()
                .enumerate()
                .map(|(j, g)| field(|| format!("users[{i}].groups[{j}]"), GroupName::parse(g)))
                .collect::<Result<Vec<_>, _>>()?;
            users.push(UserConfig {
                name: field(|| format!("users[{i}].name"), UserName::parse(&u.name))?,
                uid: u.uid,
                gid: u.gid,
                groups,
                nt_hash: u.nt_hash,
            });
        }
        let groups = record
            .groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                Ok(GroupConfig {
                    name: field(|| format!("groups[{i}].name"), GroupName::parse(&g.name))?,
                    gid: g.gid,
                })
            })
            .collect::<Result<Vec<_>, ContentError>>()?;
        let mut nfs_shares = Vec::with_capacity(record.nfs_shares.len());
        for (i, s) in record.nfs_shares.into_iter().enumerate() {
            nfs_shares.push(NfsShare {
                dataset: field(
                    || format!("nfs_shares[{i}].dataset"),
                    DatasetName::parse(&s.dataset),
                )?,
                clients: clients_model(s.clients, |j| format!("nfs_shares[{i}].clients[{j}]"))?,
                read_only: s.read_only,
                squash: match s.squash {
                    SquashRecordV2::RootToNobody => Squash::RootToNobody,
                    SquashRecordV2::None => Squash::None,
                    SquashRecordV2::MapRoot { uid, gid } => Squash::MapRoot { uid, gid },
                    SquashRecordV2::MapAll { uid, gid } => Squash::MapAll { uid, gid },
                },
                insecure: s.insecure,
            });
        }
        let mut smb_shares = Vec::with_capacity(record.smb_shares.len());
        for (i, s) in record.smb_shares.into_iter().enumerate() {
            let at = |what: &str| format!("smb_shares[{i}].{what}");
            smb_shares.push(SmbShare {
                name: field(|| at("name"), ShareName::parse(&s.name))?,
                dataset: field(|| at("dataset"), DatasetName::parse(&s.dataset))?,
                comment: s.comment,
                read_only: s.read_only,
                valid_users: principals_model(s.valid_users, |j| at(&format!("valid_users[{j}]")))?,
                read_only_users: principals_model(s.read_only_users, |j| {
                    at(&format!("read_only_users[{j}]"))
                })?,
                guest_ok: s.guest_ok,
                hosts_allow: clients_model(s.hosts_allow, |j| at(&format!("hosts_allow[{j}]")))?,
                hosts_deny: clients_model(s.hosts_deny, |j| at(&format!("hosts_deny[{j}]")))?,
                force_user: s
                    .force_user
                    .map(|u| field(|| at("force_user"), UserName::parse(&u)))
                    .transpose()?,
                force_group: s
                    .force_group
                    .map(|g| field(|| at("force_group"), GroupName::parse(&g)))
                    .transpose()?,
                create_mask: s.create_mask,
                directory_mask: s.directory_mask,
                browseable: s.browseable,
                veto: s
                    .veto
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        field(
                            || at(&format!("veto[{j}]")),
                            crate::config::sharing::parse_veto(v),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            });
        }
        let snapshot_tasks = record
            .snapshot_tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                Ok(SnapshotTask {
                    id: t.id,
                    dataset: field(
                        || format!("snapshot_tasks[{i}].dataset"),
                        DatasetName::parse(&t.dataset),
                    )?,
                    schedule: match t.schedule {
                        ScheduleRecordV2::Minutes(n) => Schedule::Minutes(n),
                        ScheduleRecordV2::Hours(n) => Schedule::Hours(n),
                        ScheduleRecordV2::Daily { hour, minute } => {
                            Schedule::Daily { hour, minute }
                        }
                        ScheduleRecordV2::Weekly {
                            weekday,
                            hour,
                            minute,
                        } => Schedule::Weekly {
                            weekday,
                            hour,
                            minute,
                        },
                    },
                    retention: match t.retention {
                        RetentionRecordV2::Last(n) => Retention::Last(n),
                        RetentionRecordV2::ForSeconds(secs) => Retention::For(secs),
                    },
                    last_run: t.last_run,
                })
            })
            .collect::<Result<Vec<_>, ContentError>>()?;
        let config = Config {
            hostname: record.hostname,
            network: record.network.into_iter().map(Into::into).collect(),
            pool,
            datasets,
            scrub: record.scrub.into(),
            last_scrub: record.last_scrub.map(Into::into),
            users,
            groups,
            nfs_shares,
            smb: record.smb.into_model()?,
            smb_shares,
            snapshot_tasks,
            next_task_id: record.next_task_id,
            ..Config::default()
        };
        config.validate()?;
        Ok(config)
    }
}
