//! Subvolumes: create, delete, list, and the id of a path.
//!
//! A dataset of the appliance is a subvolume directly under the pool's top level. Names are
//! checked here only as far as the kernel needs (one path component); the engine's validated
//! name type decides what a user may choose.

use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};

use log::info;
use uuid::Uuid;

use super::{fd, ioctl_error, open_btrfs, BtrfsError};

/// One subvolume of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    /// The subvolume (tree) id; also the id of its level-0 qgroup.
    pub id: u64,
    /// The id of the subvolume that contains it (5 for the top level).
    pub parent_id: u64,
    /// Its path from the pool's top level, e.g. `"home"` or `"data/projects"`.
    pub path: String,
    /// The generation of its last change.
    pub generation: u64,
    /// Its UUID.
    pub uuid: Uuid,
    /// Whether it is read-only (a read-only snapshot).
    pub readonly: bool,
}

/// Checks a subvolume name: one non-empty path component.
fn check_name(name: &str) -> Result<CString, BtrfsError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is not a name")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(BtrfsError::InvalidName {
            what: "subvolume name",
            value: name.to_string(),
            reason,
        });
    }
    CString::new(name).map_err(|_| BtrfsError::InvalidName {
        what: "subvolume name",
        value: name.to_string(),
        reason: "contains a NUL byte",
    })
}

/// Creates subvolume `name` in the directory `parent` (on a mounted pool) and returns its id.
pub fn create_subvolume(parent: &Path, name: &str) -> Result<u64, BtrfsError> {
    let cname = check_name(name)?;
    let dir = open_btrfs(parent)?;
    btrfs_uapi::subvolume::subvolume_create(fd(&dir), &cname, &[])
        .map_err(|e| ioctl_error(format!("creating subvolume {name:?}"), parent, e))?;
    let path = parent.join(name);
    let id = subvolume_id(&path)?;
    info!("created subvolume {} (id {id})", path.display());
    Ok(id)
}

/// Snapshots the subvolume at `source` as `name` in the directory `parent`; `readonly` makes a
/// read-only snapshot. Returns the new subvolume's id.
pub fn create_snapshot(
    source: &Path,
    parent: &Path,
    name: &str,
    readonly: bool,
) -> Result<u64, BtrfsError> {
    let cname = check_name(name)?;
    let dir = open_btrfs(parent)?;
    let src = open_btrfs(source)?;
    btrfs_uapi::subvolume::snapshot_create(fd(&dir), fd(&src), &cname, readonly, &[]).map_err(
        |e| {
            ioctl_error(
                format!("snapshotting {} as {name:?}", source.display()),
                parent,
                e,
            )
        },
    )?;
    let path = parent.join(name);
    let id = subvolume_id(&path)?;
    info!(
        "snapshot {} of {} (id {id}{})",
        path.display(),
        source.display(),
        if readonly { ", read-only" } else { "" }
    );
    Ok(id)
}

/// The id and creation time (seconds since the epoch) of the subvolume at `path`.
pub fn subvolume_created(path: &Path) -> Result<(u64, u64), BtrfsError> {
    let file = open_btrfs(path)?;
    let info = btrfs_uapi::subvolume::subvolume_info(fd(&file))
        .map_err(|e| ioctl_error("reading subvolume information", path, e))?;
    let created = info
        .otime
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok((info.id, created))
}

/// Bytes of the files under `path` that no other file or subvolume shares (what deleting
/// them would free), from each file's extent map, as `btrfs filesystem du` counts them.
/// Stops at `deadline` and returns what it counted with `false` ("at least").
pub fn exclusive_bytes(path: &Path, deadline: std::time::Instant) -> (u64, bool) {
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if std::time::Instant::now() > deadline {
                return (total, false);
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                if let Ok(file) = File::open(entry.path()) {
                    if let Ok(extents) = btrfs_uapi::fiemap::file_extents(fd(&file)) {
                        total += extents.total_bytes.saturating_sub(extents.shared_bytes);
                    }
                }
            }
        }
    }
    (total, true)
}

/// Deletes the subvolume at `path`. The kernel reclaims its space in the background.
pub fn delete_subvolume(path: &Path) -> Result<(), BtrfsError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(BtrfsError::InvalidName {
            what: "subvolume path",
            value: path.display().to_string(),
            reason: "has no parent directory",
        });
    };
    let name = name.to_str().ok_or_else(|| BtrfsError::InvalidName {
        what: "subvolume path",
        value: path.display().to_string(),
        reason: "is not UTF-8",
    })?;
    let cname = check_name(name)?;
    let dir = open_btrfs(parent)?;
    btrfs_uapi::subvolume::subvolume_delete(fd(&dir), &cname)
        .map_err(|e| ioctl_error("deleting subvolume", path, e))?;
    info!("deleted subvolume {}", path.display());
    Ok(())
}

/// Lists every subvolume of the pool mounted at `mount` (any path on the pool works), with
/// paths from the top level.
pub fn list_subvolumes(mount: &Path) -> Result<Vec<Subvolume>, BtrfsError> {
    let dir = open_btrfs(mount)?;
    let items = btrfs_uapi::subvolume::subvolume_list(fd(&dir))
        .map_err(|e| ioctl_error("listing subvolumes", mount, e))?;
    Ok(items
        .into_iter()
        .map(|it| Subvolume {
            id: it.root_id,
            parent_id: it.parent_id,
            path: it.name,
            generation: it.generation,
            uuid: it.uuid,
            readonly: it
                .flags
                .contains(btrfs_uapi::subvolume::SubvolumeFlags::RDONLY),
        })
        .collect())
}

/// The id of the subvolume that contains `path` (5 for the top level).
pub fn subvolume_id(path: &Path) -> Result<u64, BtrfsError> {
    let file: File = open_btrfs(path)?;
    btrfs_uapi::inode::lookup_path_rootid(fd(&file))
        .map_err(|e| ioctl_error("looking up the subvolume id", path, e))
}

/// The path of the subvolume with id `id`, from the pool's top level (empty for id 5).
pub fn subvolume_path(mount: &Path, id: u64) -> Result<PathBuf, BtrfsError> {
    let file = open_btrfs(mount)?;
    btrfs_uapi::inode::subvolid_resolve(fd(&file), id)
        .map(PathBuf::from)
        .map_err(|e| ioctl_error(format!("resolving subvolume id {id}"), mount, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component() {
        assert!(check_name("home").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
    }
}
