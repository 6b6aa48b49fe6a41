//! Status of a mounted pool: filesystem, devices, error counters, space per block group type.
//!
//! Enough for the engine to say "data RAID1, metadata RAID1", to notice chunks written with
//! another profile (while degraded, a RAID1 pool writes `single` chunks until a convert
//! balance fixes them), and to show which member is missing or failing.

use std::fmt;
use std::path::{Path, PathBuf};

use btrfs_uapi::space::BlockGroupFlags;
use uuid::Uuid;

use super::{fd, fsid_of, ioctl_error, open_btrfs, read_sysfs, BtrfsError};

/// The filesystem as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemInfo {
    /// The pool's UUID.
    pub fsid: Uuid,
    /// The label.
    pub label: String,
    /// How many devices the pool has (missing ones included).
    pub num_devices: u64,
    /// The highest devid in use.
    pub max_devid: u64,
    /// The current transaction generation.
    pub generation: u64,
}

/// One member of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Its devid.
    pub devid: u64,
    /// Its device UUID.
    pub uuid: Uuid,
    /// The block device, `None` when the member is missing.
    pub path: Option<PathBuf>,
    /// Its size in bytes as the filesystem sees it.
    pub size: u64,
    /// Bytes allocated to chunks on it.
    pub bytes_used: u64,
    /// Whether the kernel has no device for it (a degraded mount).
    pub missing: bool,
}

/// The kernel's persistent error counters of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceErrors {
    /// The devid.
    pub devid: u64,
    /// Failed writes.
    pub write: u64,
    /// Failed reads.
    pub read: u64,
    /// Failed flushes.
    pub flush: u64,
    /// Checksum mismatches (bad data or metadata read back).
    pub corruption: u64,
    /// Blocks with an unexpected generation (lost writes).
    pub generation: u64,
}

impl DeviceErrors {
    /// The sum of all counters.
    pub fn total(&self) -> u64 {
        self.write + self.read + self.flush + self.corruption + self.generation
    }
}

/// What a block group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockGroupKind {
    /// File data.
    Data,
    /// Metadata (trees).
    Metadata,
    /// The chunk tree.
    System,
    /// Mixed data and metadata (small filesystems).
    Mixed,
    /// The global reservation (not on disk; always `single`).
    GlobalReserve,
}

impl fmt::Display for BlockGroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Data => "data",
            Self::Metadata => "metadata",
            Self::System => "system",
            Self::Mixed => "data+metadata",
            Self::GlobalReserve => "global reserve",
        })
    }
}

/// A block group profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// One copy.
    Single,
    /// Two copies on the same device.
    Dup,
    /// Striped, no redundancy.
    Raid0,
    /// Two copies on two devices.
    Raid1,
    /// Three copies.
    Raid1c3,
    /// Four copies.
    Raid1c4,
    /// Striped mirrors.
    Raid10,
    /// Parity.
    Raid5,
    /// Double parity.
    Raid6,
}

impl Profile {
    fn from_flags(flags: BlockGroupFlags) -> Self {
        [
            (BlockGroupFlags::RAID1, Self::Raid1),
            (BlockGroupFlags::RAID1C3, Self::Raid1c3),
            (BlockGroupFlags::RAID1C4, Self::Raid1c4),
            (BlockGroupFlags::RAID10, Self::Raid10),
            (BlockGroupFlags::RAID0, Self::Raid0),
            (BlockGroupFlags::RAID5, Self::Raid5),
            (BlockGroupFlags::RAID6, Self::Raid6),
            (BlockGroupFlags::DUP, Self::Dup),
        ]
        .into_iter()
        .find(|(bit, _)| flags.contains(*bit))
        .map_or(Self::Single, |(_, p)| p)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single => "single",
            Self::Dup => "DUP",
            Self::Raid0 => "RAID0",
            Self::Raid1 => "RAID1",
            Self::Raid1c3 => "RAID1C3",
            Self::Raid1c4 => "RAID1C4",
            Self::Raid10 => "RAID10",
            Self::Raid5 => "RAID5",
            Self::Raid6 => "RAID6",
        })
    }
}

/// Space of one block group kind and profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceUsage {
    /// What the block groups hold.
    pub kind: BlockGroupKind,
    /// Their profile.
    pub profile: Profile,
    /// Bytes allocated to them (logical, i.e. before the RAID1 copy).
    pub total: u64,
    /// Bytes used in them.
    pub used: u64,
}

impl SpaceUsage {
    /// Whether these block groups are mirrored as a RAID1 pool wants. The global reserve
    /// is not on disk and always counts as mirrored.
    pub fn is_raid1(&self) -> bool {
        self.kind == BlockGroupKind::GlobalReserve || self.profile == Profile::Raid1
    }

    fn from_flags(flags: BlockGroupFlags, total: u64, used: u64) -> Self {
        let kind = if flags.contains(BlockGroupFlags::GLOBAL_RSV) {
            BlockGroupKind::GlobalReserve
        } else if flags.contains(BlockGroupFlags::DATA | BlockGroupFlags::METADATA) {
            BlockGroupKind::Mixed
        } else if flags.contains(BlockGroupFlags::DATA) {
            BlockGroupKind::Data
        } else if flags.contains(BlockGroupFlags::METADATA) {
            BlockGroupKind::Metadata
        } else {
            BlockGroupKind::System
        };
        Self {
            kind,
            profile: Profile::from_flags(flags),
            total,
            used,
        }
    }
}

impl fmt::Display for SpaceUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} of {} bytes used",
            self.kind, self.profile, self.used, self.total
        )
    }
}

/// Filesystem information of the pool mounted at `mount`; the label comes from sysfs.
pub fn filesystem_info(mount: &Path) -> Result<FilesystemInfo, BtrfsError> {
    let file = open_btrfs(mount)?;
    let info = btrfs_uapi::filesystem::filesystem_info(fd(&file))
        .map_err(|e| ioctl_error("filesystem info", mount, e))?;
    let label = match read_sysfs(&info.uuid, "label") {
        Ok(label) => label,
        Err(_) => btrfs_uapi::filesystem::label_get(fd(&file))
            .map(|l| l.to_string_lossy().into_owned())
            .map_err(|e| ioctl_error("reading the label", mount, e))?,
    };
    Ok(FilesystemInfo {
        fsid: info.uuid,
        label,
        num_devices: info.num_devices,
        max_devid: info.max_id,
        generation: info.generation,
    })
}

/// The members of the pool mounted at `mount`, missing ones included.
pub fn devices(mount: &Path) -> Result<Vec<DeviceStatus>, BtrfsError> {
    let file = open_btrfs(mount)?;
    let info = btrfs_uapi::filesystem::filesystem_info(fd(&file))
        .map_err(|e| ioctl_error("filesystem info", mount, e))?;
    let devs = btrfs_uapi::device::device_info_all(fd(&file), &info)
        .map_err(|e| ioctl_error("device info", mount, e))?;
    Ok(devs
        .into_iter()
        .map(|d| {
            // sysfs says so explicitly; a missing device also has no name.
            let missing = read_sysfs(&info.uuid, &format!("devinfo/{}/missing", d.devid))
                .map(|v| v.trim() == "1")
                .unwrap_or(d.path.is_empty());
            DeviceStatus {
                devid: d.devid,
                uuid: d.uuid,
                path: (!missing && !d.path.is_empty()).then(|| PathBuf::from(&d.path)),
                size: d.total_bytes,
                bytes_used: d.bytes_used,
                missing,
            }
        })
        .collect())
}

/// The error counters of member `devid` (`BTRFS_IOC_GET_DEV_STATS`, not reset).
pub fn device_stats(mount: &Path, devid: u64) -> Result<DeviceErrors, BtrfsError> {
    let file = open_btrfs(mount)?;
    let s = btrfs_uapi::device::device_stats(fd(&file), devid, false).map_err(|e| {
        let err = ioctl_error(format!("reading error counters of devid {devid}"), mount, e);
        match &err {
            BtrfsError::Ioctl { source, .. } if source.raw_os_error() == Some(libc::ENODEV) => {
                BtrfsError::NoSuchDevice {
                    devid,
                    path: mount.to_path_buf(),
                }
            }
            _ => err,
        }
    })?;
    Ok(DeviceErrors {
        devid,
        write: s.write_errs,
        read: s.read_errs,
        flush: s.flush_errs,
        corruption: s.corruption_errs,
        generation: s.generation_errs,
    })
}

/// Space per block group kind and profile of the pool mounted at `mount`.
pub fn space_info(mount: &Path) -> Result<Vec<SpaceUsage>, BtrfsError> {
    let file = open_btrfs(mount)?;
    let _ = fsid_of(mount, &file)?;
    let spaces = btrfs_uapi::space::space_info(fd(&file))
        .map_err(|e| ioctl_error("space info", mount, e))?;
    Ok(spaces
        .into_iter()
        .map(|s| SpaceUsage::from_flags(s.flags, s.total_bytes, s.used_bytes))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_to_kind_and_profile() {
        let s = SpaceUsage::from_flags(BlockGroupFlags::DATA | BlockGroupFlags::RAID1, 10, 5);
        assert_eq!((s.kind, s.profile), (BlockGroupKind::Data, Profile::Raid1));
        assert!(s.is_raid1());
        assert_eq!(s.to_string(), "data RAID1: 5 of 10 bytes used");
        let s = SpaceUsage::from_flags(BlockGroupFlags::METADATA, 1, 1);
        assert_eq!(
            (s.kind, s.profile),
            (BlockGroupKind::Metadata, Profile::Single)
        );
        assert!(!s.is_raid1());
        let s = SpaceUsage::from_flags(BlockGroupFlags::SYSTEM | BlockGroupFlags::DUP, 1, 1);
        assert_eq!((s.kind, s.profile), (BlockGroupKind::System, Profile::Dup));
        let s = SpaceUsage::from_flags(BlockGroupFlags::GLOBAL_RSV | BlockGroupFlags::SYSTEM, 1, 0);
        assert_eq!(s.kind, BlockGroupKind::GlobalReserve);
        assert!(s.is_raid1());
    }
}
