//! Registering pool members with the kernel, mounting the pool and its subvolumes.
//!
//! The image has no udev, so nothing tells the btrfs driver which block devices belong to
//! which filesystem: [`scan_device`] does (`BTRFS_IOC_SCAN_DEV` on `/dev/btrfs-control`),
//! and [`mount_pool`] also passes every member as a `device=` option. Mount options that are
//! generic VFS flags (`ro`, `noatime`, `nosuid`, ...) become mount flags; the rest go to
//! btrfs as its data string.
//!
//! Most btrfs mount options (compression among them) apply to the whole filesystem: the
//! first mount of a pool sets them and later subvolume mounts share them. Per-subvolume
//! compression is the `btrfs.compression` property ([`super::property`]).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use log::{info, warn};
use rustix::mount::{MountFlags, UnmountFlags};

use super::{c_path, errno_of, os_error, BtrfsError};

/// Registers one block device with the btrfs driver so that a multi-device filesystem can
/// be assembled from it.
pub fn scan_device(dev: &Path) -> Result<(), BtrfsError> {
    let name = c_path(dev)?;
    btrfs_uapi::device::device_scan(&name).map_err(|e| {
        let source = os_error(e);
        let hint = match errno_of(&source) {
            libc::ENOENT | libc::ENODEV | libc::ENXIO
                if !Path::new("/dev/btrfs-control").exists() =>
            {
                "/dev/btrfs-control is missing: load the btrfs module (with crc32c) first"
            }
            libc::ENOENT | libc::ENXIO => "the device does not exist",
            libc::EINVAL => "the device holds no btrfs superblock (or a damaged one)",
            libc::EBUSY => "the device is held by something else (a mounted filesystem?)",
            libc::EPERM | libc::EACCES => "this needs CAP_SYS_ADMIN",
            _ => "see the kernel log for details",
        };
        BtrfsError::Scan {
            path: dev.to_path_buf(),
            source,
            hint,
        }
    })?;
    log::debug!("registered {} with the btrfs driver", dev.display());
    Ok(())
}

/// Whether `dev` can be named in a mount: it opens, has a size (a detached loop device has
/// none) and carries the btrfs magic at 64 KiB.
fn usable_member(dev: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(dev).map_err(|e| e.to_string())?;
    let size = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    if size == 0 {
        return Err("it has no medium (size 0)".into());
    }
    let mut magic = [0u8; 8];
    file.seek(SeekFrom::Start(super::probe::BTRFS_SUPER_OFFSET + 64))
        .and_then(|_| file.read_exact(&mut magic))
        .map_err(|e| e.to_string())?;
    if &magic != b"_BHRfS_M" {
        return Err("it holds no btrfs superblock".into());
    }
    Ok(())
}

/// Mount options that are VFS flags rather than btrfs options.
fn vfs_flag(option: &str) -> Option<MountFlags> {
    Some(match option {
        "ro" => MountFlags::RDONLY,
        "rw" => MountFlags::empty(),
        "noatime" => MountFlags::NOATIME,
        "nodiratime" => MountFlags::NODIRATIME,
        "relatime" => MountFlags::RELATIME,
        "strictatime" => MountFlags::STRICTATIME,
        "nosuid" => MountFlags::NOSUID,
        "nodev" => MountFlags::NODEV,
        "noexec" => MountFlags::NOEXEC,
        "sync" => MountFlags::SYNCHRONOUS,
        "dirsync" => MountFlags::DIRSYNC,
        "lazytime" => MountFlags::LAZYTIME,
        _ => return None,
    })
}

/// Checks a value that goes into the comma-separated data string.
fn check_option_value(what: &'static str, value: &str) -> Result<(), BtrfsError> {
    let reason = if value.contains(',') {
        Some("contains a comma")
    } else if value.contains('\0') {
        Some("contains a NUL byte")
    } else if value.is_empty() {
        Some("is empty")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BtrfsError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Splits `options` into VFS flags and the btrfs data string (appended to `data`).
fn split_options(options: &str, data: &mut Vec<String>) -> Result<MountFlags, BtrfsError> {
    let mut flags = MountFlags::empty();
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if opt.contains('\0') {
            return Err(BtrfsError::InvalidName {
                what: "mount option",
                value: opt.to_string(),
                reason: "contains a NUL byte",
            });
        }
        match vfs_flag(opt) {
            Some(f) => flags |= f,
            None => data.push(opt.to_string()),
        }
    }
    Ok(flags)
}

/// A hint for a failed btrfs mount, by errno.
fn mount_hint(errno: i32, degraded: bool) -> &'static str {
    match errno {
        libc::ENODEV => "the btrfs driver is not loaded (it needs crc32c before it loads)",
        libc::ENOENT => "the mount point or a device does not exist",
        libc::EINVAL if !degraded => {
            "a member may be missing (the kernel log says \"devid N ... missing\"): mount \
             degraded to keep serving, then replace the disk"
        }
        libc::EINVAL => "the options are invalid or the filesystem is damaged; see the kernel log",
        libc::EBUSY => "a device is in use or the target is already a mount point",
        libc::EROFS => "the devices are read-only",
        libc::EPERM | libc::EACCES => "this needs CAP_SYS_ADMIN",
        _ => "see the kernel log for details",
    }
}

/// Calls mount(2) for btrfs and turns the error into a [`BtrfsError::Mount`].
fn do_mount(
    source: &Path,
    target: &Path,
    flags: MountFlags,
    data: &[String],
    degraded: bool,
) -> Result<(), BtrfsError> {
    let joined = data.join(",");
    let data_c = CString::new(joined.clone()).map_err(|_| BtrfsError::InvalidName {
        what: "mount option",
        value: joined.clone(),
        reason: "contains a NUL byte",
    })?;
    rustix::mount::mount(source, target, "btrfs", flags, data_c.as_c_str()).map_err(|e| {
        let source_err = os_error(e);
        let hint = mount_hint(errno_of(&source_err), degraded);
        BtrfsError::Mount {
            source_dev: source.display().to_string(),
            target: target.to_path_buf(),
            options: joined.clone(),
            source: source_err,
            hint,
        }
    })?;
    info!(
        "mounted btrfs {} on {} ({joined})",
        source.display(),
        target.display()
    );
    Ok(())
}

/// Mounts the pool whose members are `devices` on `target`.
///
/// Every member that can be opened is registered with [`scan_device`] and named with
/// `device=`; members that cannot are skipped with a warning (a degraded mount can go on without
/// them). `degraded` adds `-o degraded`, `subvol` mounts that subvolume (path from the top
/// level) instead of the top level, and `options` is a comma-separated list of further
/// options (VFS flags like `noatime` and btrfs options like `compress=zstd`).
pub fn mount_pool(
    devices: &[PathBuf],
    target: &Path,
    degraded: bool,
    subvol: Option<&str>,
    options: &str,
) -> Result<(), BtrfsError> {
    let mut data = Vec::new();
    let mut present = Vec::new();
    for dev in devices {
        check_option_value("device path", &dev.display().to_string())?;
        // A member that cannot be opened (gone, or a detached loop device) must not be
        // named: the kernel fails the whole mount when a `device=` cannot be scanned.
        if let Err(why) = usable_member(dev) {
            warn!("pool member {} is not usable: {why}", dev.display());
            continue;
        }
        if let Err(e) = scan_device(dev) {
            // The mount below names the device anyway and gives the real verdict.
            warn!("{e}");
        }
        data.push(format!("device={}", dev.display()));
        present.push(dev);
    }
    let Some(&source) = present.first() else {
        return Err(BtrfsError::Io {
            action: "find any member of the pool among",
            path: PathBuf::from(
                devices
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        });
    };
    if degraded {
        data.push("degraded".into());
    }
    if let Some(sv) = subvol {
        check_option_value("subvolume path", sv)?;
        data.push(format!("subvol={sv}"));
    }
    let flags = split_options(options, &mut data)?;
    do_mount(source, target, flags, &data, degraded)
}

/// Mounts the subvolume with id `subvol_id` of the pool that `dev` belongs to on `target`,
/// with `compress=` when given (which, like most btrfs options, applies to the whole pool
/// if this is its first mount; see the module documentation).
///
/// The pool's members must have been registered ([`scan_device`]) or the pool already be
/// mounted somewhere.
pub fn mount_subvolume(
    dev: &Path,
    target: &Path,
    subvol_id: u64,
    compress: Option<&str>,
) -> Result<(), BtrfsError> {
    let mut data = vec![format!("subvolid={subvol_id}")];
    if let Some(c) = compress {
        check_option_value("compression", c)?;
        data.push(format!("compress={c}"));
    }
    do_mount(dev, target, MountFlags::empty(), &data, false)
}

/// Mounts a snapshot's subvolume on `target` without set-uid and device files. The subvolume
/// itself is read-only, which btrfs enforces; the mount is not, because ksmbd asks for write
/// access to a path's mount even to look it up.
pub fn mount_snapshot(dev: &Path, target: &Path, subvol_id: u64) -> Result<(), BtrfsError> {
    let data = vec![format!("subvolid={subvol_id}")];
    do_mount(
        dev,
        target,
        MountFlags::NOSUID | MountFlags::NODEV,
        &data,
        false,
    )
}

/// Unmounts `target` (no lazy detach: a busy mount stays and the error says so).
pub fn unmount(target: &Path) -> Result<(), BtrfsError> {
    rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|e| {
        let source = os_error(e);
        let hint = match errno_of(&source) {
            libc::EBUSY => "files are still open on it (a share, a shell); close them first",
            libc::EINVAL => "it is not a mount point",
            _ => "see the kernel log for details",
        };
        BtrfsError::Unmount {
            target: target.to_path_buf(),
            source,
            hint,
        }
    })?;
    info!("unmounted {}", target.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let mut data = vec!["device=/dev/sda".to_string()];
        let flags = split_options("noatime, compress=zstd,ro,,space_cache=v2", &mut data).unwrap();
        assert_eq!(flags, MountFlags::NOATIME | MountFlags::RDONLY);
        assert_eq!(data, ["device=/dev/sda", "compress=zstd", "space_cache=v2"]);
    }

    #[test]
    fn option_values_cannot_inject_options() {
        assert!(check_option_value("subvolume path", "a,degraded").is_err());
        assert!(check_option_value("subvolume path", "").is_err());
        assert!(check_option_value("subvolume path", "data/home").is_ok());
    }
}
