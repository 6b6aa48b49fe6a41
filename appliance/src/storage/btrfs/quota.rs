//! Simple quotas: enabling them, a size limit per subvolume, usage per subvolume.
//!
//! The appliance uses btrfs *simple* quotas (squota, Linux 6.7+): usage is charged to the
//! subvolume that wrote an extent, without the backref walks of full qgroups, so accounting
//! stays cheap. Every subvolume has a level-0 qgroup with its own id; a dataset's size limit
//! is that qgroup's "max referenced" limit, and writing past it fails with `EDQUOT`.
//!
//! Usage numbers come from sysfs (`/sys/fs/btrfs/<fsid>/qgroups/0_<id>/`), which shows the
//! kernel's in-memory counters; the quota tree (read with a tree search) is the fallback and
//! only changes at transaction commits. Squota only accounts extents written after it was
//! enabled, so enable it on an empty pool.

use std::path::Path;

use btrfs_uapi::quota::QgroupLimitFlags;
use log::info;

use super::{fd, fsid_of, ioctl_error, open_btrfs, read_sysfs, read_sysfs_u64, BtrfsError};

/// The value that clears a qgroup limit (`CLEAR_VALUE` in the kernel).
const CLEAR_LIMIT: u64 = u64::MAX;

/// Quota state of a mounted pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    /// Whether any quota accounting is on.
    pub enabled: bool,
    /// Whether it is simple quotas (squota) rather than full qgroups.
    pub simple: bool,
    /// Whether the kernel flagged the numbers as inconsistent (full qgroups only; a rescan
    /// repairs them).
    pub inconsistent: bool,
}

/// Usage and limit of one subvolume (its level-0 qgroup), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubvolumeUsage {
    /// The subvolume id.
    pub subvol_id: u64,
    /// Bytes referenced by the subvolume (what the limit applies to).
    pub referenced: u64,
    /// Bytes only this subvolume references.
    pub exclusive: u64,
    /// The limit on referenced bytes, if one is set.
    pub max_referenced: Option<u64>,
}

/// Enables simple quotas on the pool mounted at `mount`. Does nothing if simple quotas are
/// already on; refuses if full qgroups are on (switching modes means disabling quotas,
/// which drops every limit: the engine decides).
pub fn enable_simple_quotas(mount: &Path) -> Result<(), BtrfsError> {
    let status = quota_status(mount)?;
    if status.enabled && status.simple {
        return Ok(());
    }
    if status.enabled {
        return Err(BtrfsError::Ioctl {
            op: "enabling simple quotas".into(),
            path: mount.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::EEXIST),
            hint: "full qgroup accounting is already on; disable quotas first",
        });
    }
    let file = open_btrfs(mount)?;
    btrfs_uapi::quota::quota_enable(fd(&file), true)
        .map_err(|e| ioctl_error("enabling simple quotas", mount, e))?;
    info!("enabled simple quotas on {}", mount.display());
    Ok(())
}

/// Quota state of the pool mounted at `mount`, from sysfs.
pub fn quota_status(mount: &Path) -> Result<QuotaStatus, BtrfsError> {
    let file = open_btrfs(mount)?;
    let fsid = fsid_of(mount, &file)?;
    if !Path::new(&format!("/sys/fs/btrfs/{fsid}/qgroups")).exists() {
        return Ok(QuotaStatus {
            enabled: false,
            simple: false,
            inconsistent: false,
        });
    }
    // `mode` exists since 6.7; older kernels only have full qgroups.
    let mode = read_sysfs(&fsid, "qgroups/mode").unwrap_or_else(|_| "qgroup".into());
    let inconsistent = read_sysfs_u64(&fsid, "qgroups/inconsistent").unwrap_or(0) != 0;
    Ok(QuotaStatus {
        enabled: true,
        simple: mode.trim() == "squota",
        inconsistent,
    })
}

/// Whether quota accounting (of either kind) is on for the pool mounted at `mount`.
pub fn quotas_enabled(mount: &Path) -> Result<bool, BtrfsError> {
    Ok(quota_status(mount)?.enabled)
}

/// Limits the bytes the subvolume `subvol_id` may reference to `max_referenced`.
pub fn set_subvolume_limit(
    mount: &Path,
    subvol_id: u64,
    max_referenced: u64,
) -> Result<(), BtrfsError> {
    let file = open_btrfs(mount)?;
    btrfs_uapi::quota::qgroup_limit(
        fd(&file),
        subvol_id,
        QgroupLimitFlags::MAX_RFER,
        max_referenced,
        0,
    )
    .map_err(|e| limit_error(mount, subvol_id, e))?;
    info!(
        "limited subvolume {subvol_id} on {} to {max_referenced} bytes",
        mount.display()
    );
    Ok(())
}

/// Removes the referenced-bytes limit of the subvolume `subvol_id`.
pub fn clear_subvolume_limit(mount: &Path, subvol_id: u64) -> Result<(), BtrfsError> {
    let file = open_btrfs(mount)?;
    btrfs_uapi::quota::qgroup_limit(
        fd(&file),
        subvol_id,
        QgroupLimitFlags::MAX_RFER,
        CLEAR_LIMIT,
        0,
    )
    .map_err(|e| limit_error(mount, subvol_id, e))?;
    info!(
        "cleared the limit of subvolume {subvol_id} on {}",
        mount.display()
    );
    Ok(())
}

fn limit_error<E: Into<std::io::Error>>(mount: &Path, subvol_id: u64, e: E) -> BtrfsError {
    let mut err = ioctl_error(
        format!("setting the limit of subvolume {subvol_id}"),
        mount,
        e,
    );
    if let BtrfsError::Ioctl { source, hint, .. } = &mut err {
        match source.raw_os_error() {
            Some(libc::ENOTCONN) => {
                *hint = "quotas are not enabled on this pool; enable them first"
            }
            Some(libc::ENOENT) => *hint = "no such subvolume (or its qgroup is gone)",
            _ => {}
        }
    }
    err
}

/// Usage of the subvolume `subvol_id` on the pool mounted at `mount`.
pub fn subvolume_usage(mount: &Path, subvol_id: u64) -> Result<SubvolumeUsage, BtrfsError> {
    let file = open_btrfs(mount)?;
    let fsid = fsid_of(mount, &file)?;
    let dir = format!("qgroups/0_{subvol_id}");
    if Path::new(&format!("/sys/fs/btrfs/{fsid}/{dir}")).exists() {
        let max = read_sysfs_u64(&fsid, &format!("{dir}/max_referenced"))?;
        let flags = read_sysfs_u64(&fsid, &format!("{dir}/limit_flags")).unwrap_or(1);
        return Ok(SubvolumeUsage {
            subvol_id,
            referenced: read_sysfs_u64(&fsid, &format!("{dir}/referenced"))?,
            exclusive: read_sysfs_u64(&fsid, &format!("{dir}/exclusive"))?,
            max_referenced: (max != 0 && flags & QgroupLimitFlags::MAX_RFER.bits() != 0)
                .then_some(max),
        });
    }
    subvolume_usages(mount)?
        .into_iter()
        .find(|u| u.subvol_id == subvol_id)
        .ok_or_else(|| BtrfsError::Ioctl {
            op: format!("reading the usage of subvolume {subvol_id}"),
            path: mount.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
            hint: "no qgroup for it: are quotas enabled, and does the subvolume exist?",
        })
}

/// Usage of every subvolume (every level-0 qgroup), from the quota tree as of the last
/// transaction commit. Empty when quotas are off.
pub fn subvolume_usages(mount: &Path) -> Result<Vec<SubvolumeUsage>, BtrfsError> {
    let file = open_btrfs(mount)?;
    let list = btrfs_uapi::quota::qgroup_list(fd(&file))
        .map_err(|e| ioctl_error("listing qgroups", mount, e))?;
    Ok(list
        .qgroups
        .into_iter()
        .filter(|q| btrfs_uapi::quota::qgroupid_level(q.qgroupid) == 0)
        .map(|q| SubvolumeUsage {
            subvol_id: btrfs_uapi::quota::qgroupid_subvolid(q.qgroupid),
            referenced: q.rfer,
            exclusive: q.excl,
            max_referenced: (q.limit_flags.contains(QgroupLimitFlags::MAX_RFER)
                && q.max_rfer != 0
                && q.max_rfer != CLEAR_LIMIT)
                .then_some(q.max_rfer),
        })
        .collect())
}
