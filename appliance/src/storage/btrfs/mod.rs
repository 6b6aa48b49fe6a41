//! The btrfs layer the storage engine calls: one RAID1 pool over two disks.
//!
//! What lives here, one submodule per concern, all synchronous and plain:
//! - [`probe`]: what is on a disk (partition tables, filesystem signatures, btrfs membership),
//!   read from the raw bytes; pure and testable on image files.
//! - [`mkfs`]: formatting two or more disks as one btrfs RAID1 filesystem with the pure-Rust
//!   `btrfs-mkfs` crate, without ever blocking on the kernel's random pool.
//! - [`mount`]: registering members with the kernel (`BTRFS_IOC_SCAN_DEV`), mounting the pool
//!   (degraded when asked) and its subvolumes, unmounting.
//! - [`subvolume`], [`quota`], [`property`]: datasets as subvolumes, simple quotas with a limit
//!   per subvolume, and the per-subvolume compression property.
//! - [`status`]: filesystem and device information, device error counters, space per block
//!   group type with its RAID profile.
//! - [`scrub`], [`replace`], [`balance`]: the long-running maintenance operations. Each start
//!   call blocks until the kernel finishes (the engine runs it in a thread); progress and
//!   cancel calls work from any other thread.
//!
//! What does not live here: policy (which disks form the pool, when to scrub, what a missing
//! disk means for the console). That is the storage engine's. Every ioctl goes through the
//! `btrfs-uapi` crate, every other syscall through `rustix`; this module has no `unsafe`.
//!
//! Errors are one enum, [`BtrfsError`]; each message names the device or path at fault and
//! says what to do.

// This module is the whole btrfs interface of a binary crate: the engine uses part of it
// today (status, replace cancel, balance progress are for the console to come), and the
// host tests exercise all of it.
#![allow(dead_code, unused_imports)]

pub mod balance;
pub mod mkfs;
pub mod mount;
pub mod probe;
pub mod property;
pub mod quota;
pub mod replace;
pub mod scrub;
pub mod status;
pub mod subvolume;

#[cfg(test)]
mod host_tests;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

pub use balance::{balance_cancel, balance_convert_raid1, balance_status, BalanceStatus};
pub use mkfs::{mkfs_raid1, random_uuid, EntropyState};
pub use mount::{mount_pool, mount_snapshot, mount_subvolume, scan_device, unmount};
pub use probe::{is_blank, probe, probe_device, BtrfsMember, Signature};
pub use property::{compression, set_compression, Compression};
pub use quota::{
    clear_subvolume_limit, enable_simple_quotas, quota_status, quotas_enabled, set_subvolume_limit,
    subvolume_usage, subvolume_usages, QuotaStatus, SubvolumeUsage,
};
pub use replace::{replace_cancel, replace_start, replace_status, ReplaceState, ReplaceStatus};
pub use scrub::{scrub_all, scrub_cancel, scrub_device, scrub_progress, ScrubProgress};
pub use status::{
    device_stats, devices, filesystem_info, space_info, BlockGroupKind, DeviceErrors, DeviceStatus,
    FilesystemInfo, Profile, SpaceUsage,
};
pub use subvolume::{
    bytes_outside, create_snapshot, create_subvolume, delete_subvolume, exclusive_bytes, extents,
    list_subvolumes, subvolume_created, subvolume_id, Extents, Subvolume,
};
pub use uuid::Uuid;

/// The `f_type` that `statfs` reports for btrfs (`BTRFS_SUPER_MAGIC`).
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;

/// Everything that can go wrong in the btrfs layer.
#[derive(Debug, thiserror::Error)]
pub enum BtrfsError {
    /// A device or path could not be opened or read.
    #[error("cannot {action} {}: {source}; check that it exists and is not in use", path.display())]
    Io {
        /// What was being done ("open", "read", "wipe", ...).
        action: &'static str,
        /// The device or path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A RAID1 pool needs at least two distinct devices.
    #[error("a RAID1 pool needs at least two distinct devices, got {given}; add a second disk")]
    NotEnoughDevices {
        /// How many distinct devices were given.
        given: usize,
    },
    /// The same device was named twice.
    #[error("{} is named twice; a RAID1 pool needs two different disks", path.display())]
    DuplicateDevice {
        /// The device named twice.
        path: PathBuf,
    },
    /// A device is mounted or held by the kernel (a mounted filesystem, md, device-mapper).
    #[error("{} is in use ({reason}); unmount or stop whatever holds it first", path.display())]
    InUse {
        /// The device at fault.
        path: PathBuf,
        /// What holds it, as far as we can tell.
        reason: String,
    },
    /// A device is too small to hold a btrfs RAID1 member.
    #[error("{} is too small for btrfs: {size} bytes, at least {min} needed; use a bigger disk", path.display())]
    TooSmall {
        /// The device at fault.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The minimum size in bytes.
        min: u64,
    },
    /// A name (label, subvolume name, mount option) that cannot reach the kernel as it is.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What kind of name ("label", "subvolume name", "mount option").
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The `btrfs-mkfs` crate failed.
    #[error("formatting {devices} as btrfs RAID1 failed: {message}; check the disks with `status` and retry")]
    Mkfs {
        /// The devices being formatted, comma separated.
        devices: String,
        /// The crate's error chain.
        message: String,
    },
    /// A path that should be on a btrfs filesystem is not.
    #[error("{} is not on a btrfs filesystem; is the pool mounted there?", path.display())]
    NotBtrfs {
        /// The path at fault.
        path: PathBuf,
    },
    /// Registering a device with the btrfs driver failed.
    #[error("cannot register {} with the btrfs driver: {source}; {hint}", path.display())]
    Scan {
        /// The device at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The mount system call failed.
    #[error("mounting btrfs {source_dev} on {} ({options}) failed: {source}; {hint}", target.display())]
    Mount {
        /// The device given as the mount source.
        source_dev: String,
        /// The mount point.
        target: PathBuf,
        /// The data string passed to the kernel.
        options: String,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// Unmounting failed.
    #[error("unmounting {} failed: {source}; {hint}", target.display())]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// A btrfs ioctl failed.
    #[error("{op} on {} failed: {source}; {hint}", path.display())]
    Ioctl {
        /// The operation ("subvolume create", "scrub start devid 2", ...).
        op: String,
        /// The path the ioctl was issued on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// A sysfs attribute of a mounted btrfs could not be read.
    #[error("cannot read {}: {source}; is the pool mounted?", path.display())]
    Sysfs {
        /// The sysfs file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A property (extended attribute) could not be set or read.
    #[error("cannot {action} property {name} on {}: {source}; {hint}", path.display())]
    Property {
        /// "set", "read" or "remove".
        action: &'static str,
        /// The property name.
        name: &'static str,
        /// The subvolume root.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The kernel reported a value this layer does not understand.
    #[error("unexpected value from the kernel for {what} on {}: {value:?}; the kernel may be newer than this code", path.display())]
    Unexpected {
        /// What was being read.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The value.
        value: String,
    },
    /// A long-running operation was cancelled.
    #[error("{op} on {} was cancelled", path.display())]
    Cancelled {
        /// The operation.
        op: String,
        /// The pool's mount point.
        path: PathBuf,
    },
    /// The kernel refused to start a device replace.
    #[error("cannot replace devid {devid} on {}: {reason}", path.display())]
    ReplaceRefused {
        /// The source devid.
        devid: u64,
        /// The pool's mount point.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// No such device in the pool.
    #[error("the pool at {} has no device with devid {devid}; list devices with `status`", path.display())]
    NoSuchDevice {
        /// The devid asked for.
        devid: u64,
        /// The pool's mount point.
        path: PathBuf,
    },
}

/// Turns any error the wrapped crates return (`nix::Errno`, `rustix::io::Errno`) into an
/// `io::Error` without naming their types.
fn os_error<E: Into<io::Error>>(e: E) -> io::Error {
    e.into()
}

/// Returns the raw errno of an `io::Error`, or 0.
fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// A general hint for an ioctl error, by errno.
fn ioctl_hint(e: &io::Error) -> &'static str {
    match errno_of(e) {
        libc::EPERM | libc::EACCES => "this needs CAP_SYS_ADMIN (run as root)",
        libc::ENOTTY => "the path is not on a btrfs filesystem",
        libc::EROFS => "the pool is mounted read-only; remount it read-write",
        libc::ENOSPC => "the pool is full; free some space",
        libc::EDQUOT => "a quota limit is reached; raise or clear the limit",
        libc::EBUSY | libc::EINPROGRESS => {
            "another exclusive operation (balance, replace, resize, device add/remove) is running; wait for it or cancel it"
        }
        libc::ENOTCONN => "no such operation is running",
        libc::ENODEV => "the device is missing",
        _ => "see the kernel log for details",
    }
}

/// Builds an [`BtrfsError::Ioctl`] from an operation name, a path and the crate's error.
fn ioctl_error<E: Into<io::Error>>(op: impl Into<String>, path: &Path, e: E) -> BtrfsError {
    let source = os_error(e);
    let hint = ioctl_hint(&source);
    BtrfsError::Ioctl {
        op: op.into(),
        path: path.to_path_buf(),
        source,
        hint,
    }
}

/// Opens a path on a mounted btrfs (normally the pool's mount point or a subvolume root) for
/// issuing ioctls, and checks that it really is btrfs.
fn open_btrfs(path: &Path) -> Result<File, BtrfsError> {
    let file = File::open(path).map_err(|source| BtrfsError::Io {
        action: "open",
        path: path.to_path_buf(),
        source,
    })?;
    let stat = rustix::fs::fstatfs(file.as_fd()).map_err(|e| BtrfsError::Io {
        action: "statfs",
        path: path.to_path_buf(),
        source: os_error(e),
    })?;
    // `f_type` is signed on some targets; compare its bit pattern.
    #[allow(clippy::unnecessary_cast)]
    let magic = stat.f_type as u64 & 0xffff_ffff;
    if magic != BTRFS_SUPER_MAGIC {
        return Err(BtrfsError::NotBtrfs {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Borrows the descriptor of an open file for the `btrfs-uapi` calls.
fn fd(file: &File) -> BorrowedFd<'_> {
    file.as_fd()
}

/// Turns a path into a C string for the ioctls that take names.
fn c_path(path: &Path) -> Result<std::ffi::CString, BtrfsError> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| BtrfsError::InvalidName {
        what: "path",
        value: path.display().to_string(),
        reason: "contains a NUL byte",
    })
}

/// The filesystem UUID of the btrfs mounted at (or containing) `path`.
fn fsid_of(path: &Path, file: &File) -> Result<Uuid, BtrfsError> {
    btrfs_uapi::filesystem::filesystem_info(fd(file))
        .map(|info| info.uuid)
        .map_err(|e| ioctl_error("filesystem info", path, e))
}

/// Reads one sysfs attribute of a mounted btrfs, trimmed.
fn read_sysfs(fsid: &Uuid, rel: &str) -> Result<String, BtrfsError> {
    let path = PathBuf::from(format!("/sys/fs/btrfs/{fsid}/{rel}"));
    std::fs::read_to_string(&path)
        .map(|s| s.trim_end_matches('\n').to_string())
        .map_err(|source| BtrfsError::Sysfs { path, source })
}

/// Reads one numeric sysfs attribute of a mounted btrfs.
fn read_sysfs_u64(fsid: &Uuid, rel: &str) -> Result<u64, BtrfsError> {
    let text = read_sysfs(fsid, rel)?;
    text.trim().parse().map_err(|_| BtrfsError::Unexpected {
        what: "sysfs attribute",
        path: PathBuf::from(format!("/sys/fs/btrfs/{fsid}/{rel}")),
        value: text,
    })
}
