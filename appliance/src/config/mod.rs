//! The appliance's one typed configuration model and its persistent store.
//!
//! - [`names`]: validated newtypes ([`PoolName`], [`DatasetName`], [`Size`], [`Compression`],
//!   [`Mode`], [`Uid`], [`Gid`]), parsed once at the edge by the console.
//! - [`model`]: [`Config`], the in-memory model, its defaults and [`Config::validate`].
//! - [`accounts`]: users and groups (one id table for SMB and NFS), NT hashes.
//! - [`sharing`]: NFS and SMB shares, the SMB server's settings, client address rules.
//! - [`snapshots`]: snapshot names, periodic tasks, their schedules and retention rules.
//! - [`time`]: the time zone and SNTP servers; [`alerting`]: alert channels and limits.
//! - [`calendar`]: UTC date arithmetic for schedules and timestamps.
//! - [`record`]: the persisted form, versioned record types (`ConfigRecordV1`) in a
//!   checksummed envelope; [`encode`] and [`decode`].
//! - [`export`]: configuration backups: the export file (its own `TANKEXP` envelope around a
//!   record) and the plan of what an import changes.
//! - [`store`]: [`Store`], numbered generations of record files in a directory on the pool,
//!   saved atomically and loaded with fallback past damaged files.
//!
//! Architecture invariant: only this module knows the on-disk format of the configuration.
//! What does not live here: applying a configuration to the system (the engine and the
//! storage and network modules do that) and parsing console commands (the console does that,
//! using [`names`]).

pub mod accounts;
pub mod alerting;
pub mod calendar;
pub mod export;
pub mod model;
pub mod names;
pub mod record;
pub mod sharing;
pub mod snapshots;
pub mod store;
pub mod time;

pub use accounts::{GroupName, UserName};
pub use model::{
    check_hostname, check_iface_name, Config, DatasetConfig, NetIface, NetMethod, PoolConfig,
    ScrubSchedule, ScrubSummary,
};
pub use names::{Compression, DatasetName, Gid, Mode, PoolName, Size, Uid};
pub use sharing::{ClientSpec, Principal, ShareName};
pub use snapshots::{Retention, Schedule, SnapshotName};
pub use store::Store;
