//! Device replace: copy a member (present or missing) onto a new disk, online.
//!
//! `BTRFS_IOC_DEV_REPLACE` with the start command blocks until the copy is done (or
//! cancelled); the engine runs [`replace_start`] in a worker thread and polls
//! [`replace_status`]. The new disk takes over the old one's devid. Chunks written while
//! the pool was degraded are `single`, not RAID1; after replacing a missing member, run a
//! soft convert balance ([`super::balance_convert_raid1`]) to mirror them again.

use std::path::Path;

use btrfs_uapi::replace::{ReplaceSource, ReplaceStartError};
use log::info;

use super::{c_path, fd, ioctl_error, open_btrfs, BtrfsError};

/// State of the pool's device replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceState {
    /// No replace was ever started since mount.
    NeverStarted,
    /// Copying.
    Running,
    /// Finished.
    Finished,
    /// Cancelled.
    Cancelled,
    /// Suspended (the pool was unmounted mid-replace; it resumes on mount).
    Suspended,
}

/// Status of the pool's device replace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplaceStatus {
    /// The state.
    pub state: ReplaceState,
    /// Progress in percent (0.0 to 100.0).
    pub percent: f64,
    /// Write errors on the new disk.
    pub write_errors: u64,
    /// Blocks that could be read from no copy.
    pub uncorrectable_read_errors: u64,
}

/// Replaces member `src_devid` (which may be missing) with the block device `target`, and
/// blocks until the copy is done. Reads avoid the source device when another good copy
/// exists, which is what a failing disk wants. The target must be at least as large as the
/// source and hold nothing the engine wants to keep (check it with [`super::probe`]).
pub fn replace_start(mount: &Path, src_devid: u64, target: &Path) -> Result<(), BtrfsError> {
    let file = open_btrfs(mount)?;
    let tgt = c_path(target)?;
    info!(
        "replacing devid {src_devid} of {} with {}",
        mount.display(),
        target.display()
    );
    let refused = |reason: String| BtrfsError::ReplaceRefused {
        devid: src_devid,
        path: mount.to_path_buf(),
        reason,
    };
    match btrfs_uapi::replace::replace_start(
        fd(&file),
        &ReplaceSource::DevId(src_devid),
        &tgt,
        true,
    ) {
        Ok(Ok(())) => {}
        Ok(Err(ReplaceStartError::AlreadyStarted)) => {
            return Err(refused(
                "a replace is already running; wait for it or cancel it".into(),
            ))
        }
        Ok(Err(ReplaceStartError::ScrubInProgress)) => {
            return Err(refused("a scrub is running; cancel it first".into()))
        }
        Err(e) if e as i32 == libc::ECANCELED => {
            return Err(BtrfsError::Cancelled {
                op: format!("replace of devid {src_devid}"),
                path: mount.to_path_buf(),
            })
        }
        Err(e) => {
            let reason = match e as i32 {
                libc::ENOENT => format!("no devid {src_devid} in the pool"),
                libc::EINVAL => format!(
                    "{} is smaller than the device it replaces, or not a block device",
                    target.display()
                ),
                libc::EBUSY => {
                    format!("{} is in use (mounted or part of a pool)", target.display())
                }
                libc::ETXTBSY => "a balance or another exclusive operation is running".into(),
                libc::EROFS => "the pool is mounted read-only".into(),
                _ => {
                    return Err(ioctl_error(
                        format!("replace of devid {src_devid}"),
                        mount,
                        e,
                    ))
                }
            };
            return Err(refused(format!("{reason} ({})", std::io::Error::from(e))));
        }
    }
    // Success is reported by the ioctl only once the copy and the swap are done, but a
    // cancel from another thread also returns success with a cancelled state.
    let status = replace_status(mount)?;
    if status.state == ReplaceState::Cancelled {
        return Err(BtrfsError::Cancelled {
            op: format!("replace of devid {src_devid}"),
            path: mount.to_path_buf(),
        });
    }
    info!(
        "devid {src_devid} of {} is now {}",
        mount.display(),
        target.display()
    );
    Ok(())
}

/// Status and progress of the pool's device replace.
pub fn replace_status(mount: &Path) -> Result<ReplaceStatus, BtrfsError> {
    use btrfs_uapi::replace::ReplaceState as S;
    let file = open_btrfs(mount)?;
    let s = btrfs_uapi::replace::replace_status(fd(&file))
        .map_err(|e| ioctl_error("replace status", mount, e))?;
    let state = match s.state {
        S::NeverStarted => ReplaceState::NeverStarted,
        S::Started => ReplaceState::Running,
        S::Finished => ReplaceState::Finished,
        S::Canceled => ReplaceState::Cancelled,
        S::Suspended => ReplaceState::Suspended,
    };
    #[allow(clippy::cast_precision_loss)]
    let percent = s.progress_1000.min(1000) as f64 / 10.0;
    Ok(ReplaceStatus {
        state,
        percent,
        write_errors: s.num_write_errors,
        uncorrectable_read_errors: s.num_uncorrectable_read_errors,
    })
}

/// Cancels the running device replace. Returns false if none was running.
pub fn replace_cancel(mount: &Path) -> Result<bool, BtrfsError> {
    let file = open_btrfs(mount)?;
    let cancelled = btrfs_uapi::replace::replace_cancel(fd(&file))
        .map_err(|e| ioctl_error("cancelling the replace", mount, e))?;
    if cancelled {
        info!("replace on {} cancelled", mount.display());
    }
    Ok(cancelled)
}
