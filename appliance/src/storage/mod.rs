//! The pool and its datasets: discovery and assembly of the two-disk btrfs mirror at boot,
//! pool creation, status, replace, scrub, and datasets (subvolumes with their own mounts,
//! quotas, compression, owner and mode).
//!
//! Layout at run time:
//! - the pool's top-level subvolume is mounted at [`POOL_ROOT`] (management only: datasets are
//!   created and deleted there, and the hidden `.tank` subvolume holds the configuration store);
//! - `/mnt/<pool>` is a small tmpfs holding one mount point per dataset;
//! - each dataset is a subvolume of the top level, mounted on its own at `/mnt/<pool>/<name>`
//!   (separate mounts give NFS separate export roots).
//!
//! Members are recognised by the pool's UUID in their btrfs superblocks, never by `sdX` names.

pub mod btrfs;
pub mod files;
pub mod pool;
pub mod snapshots;

use std::path::{Path, PathBuf};

/// Where the pool's top-level subvolume is mounted.
pub const POOL_ROOT: &str = "/run/tank/pool";
/// The hidden subvolume that holds the appliance's own state.
pub const META_SUBVOL: &str = ".tank";

/// The appliance's own subvolume (configuration, NFS client recovery records).
pub fn meta_dir() -> PathBuf {
    Path::new(POOL_ROOT).join(META_SUBVOL)
}

/// The configuration store's directory.
pub fn config_dir() -> PathBuf {
    meta_dir().join("config")
}

/// `/mnt/<pool>`.
pub fn pool_mountpoint(pool: &str) -> PathBuf {
    Path::new("/mnt").join(pool)
}

/// `/mnt/<pool>/<dataset>`.
pub fn dataset_mountpoint(pool: &str, dataset: &str) -> PathBuf {
    pool_mountpoint(pool).join(dataset)
}

/// How well the pool can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Every member present, every chunk mirrored.
    Online,
    /// Serving with a member missing or chunks not mirrored: one more failure loses data.
    Degraded,
    /// Not mounted.
    Unavailable,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Online => "ONLINE",
            Health::Degraded => "DEGRADED",
            Health::Unavailable => "UNAVAILABLE",
        })
    }
}

/// A member's error counters, as the kernel keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounters {
    pub read: u64,
    pub write: u64,
    pub flush: u64,
    pub corruption: u64,
    pub generation: u64,
}

/// One member of the pool.
#[derive(Clone, Debug)]
pub struct MemberStatus {
    pub devid: u64,
    /// Kernel disk name, if present.
    pub disk: Option<String>,
    pub serial: String,
    pub size_bytes: u64,
    pub missing: bool,
    pub errors: ErrorCounters,
}

/// What a scrub found (kept in the configuration, so it survives reboots).
pub use crate::config::ScrubSummary;

/// Everything `pool status` shows.
#[derive(Clone, Debug)]
pub struct PoolStatus {
    pub name: String,
    pub uuid: String,
    pub health: Health,
    pub mountpoint: String,
    pub members: Vec<MemberStatus>,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    /// (block group type, profile), e.g. ("data", "RAID1").
    pub profiles: Vec<(String, String)>,
    /// A running scrub, replace or balance, with its progress.
    pub job: Option<String>,
    pub last_scrub: Option<ScrubSummary>,
    pub scrub_schedule: String,
    /// What is wrong and what to do, one line each.
    pub advice: Vec<String>,
}

/// One line of `dataset list`.
#[derive(Clone, Debug)]
pub struct DatasetInfo {
    pub name: String,
    /// Bytes only this dataset holds and all it references (known once quotas are on).
    pub used: Option<u64>,
    pub referenced: Option<u64>,
    /// Bytes its snapshots hold together, and whether that count finished in its time budget
    /// (otherwise it is a lower bound).
    pub snapshots: (u64, bool),
    pub quota: Option<u64>,
    pub compression: String,
    pub mountpoint: String,
    pub mounted: bool,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}
