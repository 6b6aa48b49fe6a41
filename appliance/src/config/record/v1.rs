//! Version 1 of the configuration record (the first release): frozen. Its part records are
//! reused unchanged by later versions; [`ConfigRecordV1`] itself is only read, and migrated to
//! [`ConfigRecordV2`](super::v2::ConfigRecordV2) with the new fields' defaults.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::v2::{ConfigRecordV2, SmbGlobalRecordV2};
use super::{field, ContentError};
use crate::config::model::{
    DatasetConfig, NetIface, NetMethod, PoolConfig, ScrubSchedule, ScrubSummary,
};
use crate::config::names::{Compression, DatasetName, PoolName, Size};

/// Version 1 of the configuration record. Frozen: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecordV1 {
    pub hostname: String,
    pub network: Vec<NetIfaceRecordV1>,
    pub pool: Option<PoolRecordV1>,
    pub datasets: Vec<DatasetRecordV1>,
    pub scrub: ScrubRecordV1,
    pub last_scrub: Option<ScrubSummaryRecordV1>,
}

/// Version 1 of what the last scrub found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubSummaryRecordV1 {
    pub started: u64,
    pub finished: u64,
    pub bytes_scrubbed: u64,
    pub corrected: u64,
    pub uncorrectable: u64,
    pub cancelled: bool,
}

/// Version 1 of an interface's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetIfaceRecordV1 {
    pub name: String,
    pub method: NetMethodRecordV1,
}

/// Version 1 of an interface's addressing. Variant order is part of the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetMethodRecordV1 {
    Dhcp,
    Static {
        address: [u8; 4],
        prefix: u8,
        gateway: Option<[u8; 4]>,
        dns: Vec<[u8; 4]>,
    },
}

/// Version 1 of the pool's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecordV1 {
    pub name: String,
    pub uuid: [u8; 16],
}

/// Version 1 of a dataset's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRecordV1 {
    pub name: String,
    /// Bytes; `None` for no quota.
    pub quota: Option<u64>,
    pub compression: CompressionRecordV1,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Version 1 of a compression. Variant order is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompressionRecordV1 {
    None,
    Zstd,
    Lzo,
    Zlib,
}

/// Version 1 of the scrub schedule. Variant order is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScrubRecordV1 {
    Off,
    Monthly { day: u8, hour: u8, minute: u8 },
}

/// Version 1 had no users, shares or snapshot tasks: a migrated configuration has none.
impl From<ConfigRecordV1> for ConfigRecordV2 {
    fn from(v1: ConfigRecordV1) -> ConfigRecordV2 {
        ConfigRecordV2 {
            hostname: v1.hostname,
            network: v1.network,
            pool: v1.pool,
            datasets: v1.datasets,
            scrub: v1.scrub,
            last_scrub: v1.last_scrub,
            users: Vec::new(),
            groups: Vec::new(),
            nfs_shares: Vec::new(),
            smb: SmbGlobalRecordV2::default(),
            smb_shares: Vec::new(),
            snapshot_tasks: Vec::new(),
            next_task_id: 1,
        }
    }
}

impl From<&ScrubSummary> for ScrubSummaryRecordV1 {
    fn from(s: &ScrubSummary) -> Self {
        ScrubSummaryRecordV1 {
            started: s.started,
            finished: s.finished,
            bytes_scrubbed: s.bytes_scrubbed,
            corrected: s.corrected,
            uncorrectable: s.uncorrectable,
            cancelled: s.cancelled,
        }
    }
}

impl From<ScrubSummaryRecordV1> for ScrubSummary {
    fn from(s: ScrubSummaryRecordV1) -> Self {
        ScrubSummary {
            started: s.started,
            finished: s.finished,
            bytes_scrubbed: s.bytes_scrubbed,
            corrected: s.corrected,
            uncorrectable: s.uncorrectable,
            cancelled: s.cancelled,
        }
    }
}

impl From<&NetIface> for NetIfaceRecordV1 {
    fn from(iface: &NetIface) -> Self {
        NetIfaceRecordV1 {
            name: iface.name.clone(),
            method: match &iface.method {
                NetMethod::Dhcp => NetMethodRecordV1::Dhcp,
                NetMethod::Static {
                    address,
                    prefix,
                    gateway,
                    dns,
                } => NetMethodRecordV1::Static {
                    address: address.octets(),
                    prefix: *prefix,
                    gateway: gateway.map(|g| g.octets()),
                    dns: dns.iter().map(Ipv4Addr::octets).collect(),
                },
            },
        }
    }
}

impl From<NetIfaceRecordV1> for NetIface {
    fn from(iface: NetIfaceRecordV1) -> Self {
        NetIface {
            name: iface.name,
            method: match iface.method {
                NetMethodRecordV1::Dhcp => NetMethod::Dhcp,
                NetMethodRecordV1::Static {
                    address,
                    prefix,
                    gateway,
                    dns,
                } => NetMethod::Static {
                    address: address.into(),
                    prefix,
                    gateway: gateway.map(Ipv4Addr::from),
                    dns: dns.into_iter().map(Ipv4Addr::from).collect(),
                },
            },
        }
    }
}

impl From<&PoolConfig> for PoolRecordV1 {
    fn from(pool: &PoolConfig) -> Self {
        PoolRecordV1 {
            name: pool.name.as_str().to_owned(),
            uuid: pool.uuid,
        }
    }
}

impl PoolRecordV1 {
    pub(super) fn into_model(self) -> Result<PoolConfig, ContentError> {
        Ok(PoolConfig {
            name: field(|| "pool name".to_owned(), PoolName::parse(&self.name))?,
            uuid: self.uuid,
        })
    }
}

impl From<&DatasetConfig> for DatasetRecordV1 {
    fn from(dataset: &DatasetConfig) -> Self {
        DatasetRecordV1 {
            name: dataset.name.as_str().to_owned(),
            quota: dataset.quota.map(Size::bytes),
            compression: match dataset.compression {
                Compression::None => CompressionRecordV1::None,
                Compression::Zstd => CompressionRecordV1::Zstd,
                Compression::Lzo => CompressionRecordV1::Lzo,
                Compression::Zlib => CompressionRecordV1::Zlib,
            },
            uid: dataset.uid,
            gid: dataset.gid,
            mode: dataset.mode,
        }
    }
}

impl DatasetRecordV1 {
    pub(super) fn into_model(self, index: usize) -> Result<DatasetConfig, ContentError> {
        Ok(DatasetConfig {
            name: field(
                || format!("datasets[{index}].name"),
                DatasetName::parse(&self.name),
            )?,
            quota: self.quota.map(Size::from_bytes),
            compression: match self.compression {
                CompressionRecordV1::None => Compression::None,
                CompressionRecordV1::Zstd => Compression::Zstd,
                CompressionRecordV1::Lzo => Compression::Lzo,
                CompressionRecordV1::Zlib => Compression::Zlib,
            },
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
        })
    }
}

impl From<ScrubSchedule> for ScrubRecordV1 {
    fn from(schedule: ScrubSchedule) -> Self {
        match schedule {
            ScrubSchedule::Off => ScrubRecordV1::Off,
            ScrubSchedule::Monthly { day, hour, minute } => {
                ScrubRecordV1::Monthly { day, hour, minute }
            }
        }
    }
}

impl From<ScrubRecordV1> for ScrubSchedule {
    fn from(schedule: ScrubRecordV1) -> Self {
        match schedule {
            ScrubRecordV1::Off => ScrubSchedule::Off,
            ScrubRecordV1::Monthly { day, hour, minute } => {
                ScrubSchedule::Monthly { day, hour, minute }
            }
        }
    }
}
