//! Balance: convert every chunk that is not RAID1 to RAID1 (`-dconvert=raid1,soft
//! -mconvert=raid1,soft -sconvert=raid1,soft`).
//!
//! A degraded RAID1 pool writes `single` chunks; after the missing disk is replaced (or
//! comes back), those chunks are still on one device only. A soft convert rewrites exactly
//! those (chunks already RAID1 are skipped), so it is cheap when there is nothing to do.
//! [`balance_convert_raid1`] blocks until the kernel is done; the engine runs it in a worker
//! thread and polls [`balance_status`].

use std::path::Path;

use btrfs_uapi::balance::{BalanceArgs, BalanceCtl, BalanceFlags, BalanceState};
use btrfs_uapi::space::BlockGroupFlags;
use log::info;

use super::{fd, ioctl_error, open_btrfs, BtrfsError};

/// Progress of a running balance, in chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceStatus {
    /// Whether it is running (false: paused).
    pub running: bool,
    /// Whether a cancel was requested and is being honoured.
    pub cancel_requested: bool,
    /// Chunks the kernel expects to relocate.
    pub expected: u64,
    /// Chunks looked at so far.
    pub considered: u64,
    /// Chunks relocated so far.
    pub completed: u64,
}

/// Converts every data, metadata and system chunk that is not RAID1 to RAID1, blocking until
/// done. Returns how many chunks were relocated. A cancelled balance returns
/// [`BtrfsError::Cancelled`].
pub fn balance_convert_raid1(mount: &Path) -> Result<u64, BtrfsError> {
    let file = open_btrfs(mount)?;
    let raid1 = || {
        BalanceArgs::new()
            .convert(BlockGroupFlags::RAID1.bits())
            .soft()
    };
    info!(
        "balance (convert to RAID1, soft) on {} started",
        mount.display()
    );
    let progress = match btrfs_uapi::balance::balance(
        fd(&file),
        BalanceFlags::DATA | BalanceFlags::METADATA | BalanceFlags::SYSTEM,
        Some(raid1()),
        Some(raid1()),
        Some(raid1()),
    ) {
        Ok(p) => p,
        Err(e) if e as i32 == libc::ECANCELED => {
            return Err(BtrfsError::Cancelled {
                op: "balance".into(),
                path: mount.to_path_buf(),
            })
        }
        Err(e) => return Err(ioctl_error("balance (convert to RAID1)", mount, e)),
    };
    info!(
        "balance on {} finished: {} chunks relocated",
        mount.display(),
        progress.completed
    );
    Ok(progress.completed)
}

/// The running balance, or `None` when there is none.
pub fn balance_status(mount: &Path) -> Result<Option<BalanceStatus>, BtrfsError> {
    let file = open_btrfs(mount)?;
    match btrfs_uapi::balance::balance_progress(fd(&file)) {
        Ok((state, p)) => Ok(Some(BalanceStatus {
            running: state.contains(BalanceState::RUNNING),
            cancel_requested: state.contains(BalanceState::CANCEL_REQ),
            expected: p.expected,
            considered: p.considered,
            completed: p.completed,
        })),
        Err(e) if e as i32 == libc::ENOTCONN => Ok(None),
        Err(e) => Err(ioctl_error("balance status", mount, e)),
    }
}

/// Cancels the running balance (the kernel finishes the current chunk first, so this can
/// take a while). Returns false if none was running.
pub fn balance_cancel(mount: &Path) -> Result<bool, BtrfsError> {
    let file = open_btrfs(mount)?;
    match btrfs_uapi::balance::balance_ctl(fd(&file), BalanceCtl::Cancel) {
        Ok(()) => {
            info!("balance on {} cancelled", mount.display());
            Ok(true)
        }
        Err(e) if e as i32 == libc::ENOTCONN => Ok(false),
        Err(e) => Err(ioctl_error("cancelling the balance", mount, e)),
    }
}
