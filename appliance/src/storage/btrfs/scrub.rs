//! Scrub: read every copy of every block on every member, check it, repair from the mirror.
//!
//! The kernel scrubs one device per `BTRFS_IOC_SCRUB` call, and the call blocks until that
//! device is done or the scrub is cancelled. [`scrub_device`] is one such call; [`scrub_all`]
//! runs one per present member in parallel threads and blocks until all finish, so the
//! engine calls it from a worker thread and polls [`scrub_progress`] from elsewhere.
//! [`scrub_cancel`] stops every device's scrub.

use std::path::Path;

use log::{info, warn};

use super::status::devices;
use super::{fd, ioctl_error, open_btrfs, BtrfsError};

/// Counters of a scrub on one device (running or finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrubProgress {
    /// The devid.
    pub devid: u64,
    /// Data and metadata bytes scrubbed so far.
    pub bytes_scrubbed: u64,
    /// Data bytes scrubbed.
    pub data_bytes: u64,
    /// Metadata (tree) bytes scrubbed.
    pub tree_bytes: u64,
    /// Read errors.
    pub read_errors: u64,
    /// Checksum mismatches.
    pub csum_errors: u64,
    /// Metadata blocks that failed verification (bad header, wrong generation).
    pub verify_errors: u64,
    /// Superblock errors.
    pub super_errors: u64,
    /// Errors repaired from the other copy.
    pub corrected: u64,
    /// Errors that could not be repaired (both copies bad).
    pub uncorrectable: u64,
}

impl ScrubProgress {
    fn from_uapi(devid: u64, p: &btrfs_uapi::scrub::ScrubProgress) -> Self {
        Self {
            devid,
            bytes_scrubbed: p.bytes_scrubbed(),
            data_bytes: p.data_bytes_scrubbed,
            tree_bytes: p.tree_bytes_scrubbed,
            read_errors: p.read_errors,
            csum_errors: p.csum_errors,
            verify_errors: p.verify_errors,
            super_errors: p.super_errors,
            corrected: p.corrected_errors,
            uncorrectable: p.uncorrectable_errors,
        }
    }

    /// All errors found (corrected or not).
    pub fn errors(&self) -> u64 {
        self.read_errors + self.csum_errors + self.verify_errors + self.super_errors
    }
}

/// Scrubs member `devid` and blocks until it is done. `readonly` only checks, without
/// repairing. A cancelled scrub returns [`BtrfsError::Cancelled`].
pub fn scrub_device(mount: &Path, devid: u64, readonly: bool) -> Result<ScrubProgress, BtrfsError> {
    let file = open_btrfs(mount)?;
    info!("scrub of devid {devid} on {} started", mount.display());
    match btrfs_uapi::scrub::scrub_start(fd(&file), devid, readonly) {
        Ok(p) => {
            let p = ScrubProgress::from_uapi(devid, &p);
            info!(
                "scrub of devid {devid} on {} finished: {} bytes, {} errors, {} corrected, {} uncorrectable",
                mount.display(),
                p.bytes_scrubbed,
                p.errors(),
                p.corrected,
                p.uncorrectable
            );
            Ok(p)
        }
        Err(e) if e as i32 == libc::ECANCELED => Err(BtrfsError::Cancelled {
            op: format!("scrub of devid {devid}"),
            path: mount.to_path_buf(),
        }),
        Err(e) => Err(ioctl_error(format!("scrub of devid {devid}"), mount, e)),
    }
}

/// Scrubs every present member in parallel and blocks until all are done. Missing members
/// are skipped with a warning. Returns the final counters per device; the first error (for
/// example a cancel) wins over the results.
pub fn scrub_all(mount: &Path, readonly: bool) -> Result<Vec<ScrubProgress>, BtrfsError> {
    let members = devices(mount)?;
    for d in members.iter().filter(|d| d.missing) {
        warn!("scrub skips devid {}: the device is missing", d.devid);
    }
    let devids: Vec<u64> = members
        .iter()
        .filter(|d| !d.missing)
        .map(|d| d.devid)
        .collect();
    let results: Vec<Result<ScrubProgress, BtrfsError>> = std::thread::scope(|s| {
        let handles: Vec<_> = devids
            .iter()
            .map(|&devid| {
                let handle = std::thread::Builder::new()
                    .name(format!("scrub-{devid}"))
                    .spawn_scoped(s, move || scrub_device(mount, devid, readonly));
                (devid, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(devid, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(BtrfsError::Unexpected {
                        what: "scrub thread",
                        path: mount.to_path_buf(),
                        value: format!("the scrub thread of devid {devid} panicked"),
                    })
                }),
                Err(source) => Err(BtrfsError::Io {
                    action: "start a scrub thread for",
                    path: mount.to_path_buf(),
                    source,
                }),
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Progress of the scrub on each present member; `None` for a member with no scrub running.
pub fn scrub_progress(mount: &Path) -> Result<Vec<(u64, Option<ScrubProgress>)>, BtrfsError> {
    let file = open_btrfs(mount)?;
    let mut out = Vec::new();
    for d in devices(mount)?.into_iter().filter(|d| !d.missing) {
        let p = btrfs_uapi::scrub::scrub_progress(fd(&file), d.devid)
            .map_err(|e| ioctl_error(format!("scrub progress of devid {}", d.devid), mount, e))?;
        out.push((d.devid, p.map(|p| ScrubProgress::from_uapi(d.devid, &p))));
    }
    Ok(out)
}

/// Cancels the running scrub on every member. Returns false if none was running.
pub fn scrub_cancel(mount: &Path) -> Result<bool, BtrfsError> {
    let file = open_btrfs(mount)?;
    match btrfs_uapi::scrub::scrub_cancel(fd(&file)) {
        Ok(()) => {
            info!("scrub on {} cancelled", mount.display());
            Ok(true)
        }
        Err(e) if e as i32 == libc::ENOTCONN => Ok(false),
        Err(e) => Err(ioctl_error("cancelling the scrub", mount, e)),
    }
}
