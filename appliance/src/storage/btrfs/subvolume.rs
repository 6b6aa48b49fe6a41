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

/// What [`extents`] found under a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extents {
    /// Bytes of extents that no other file or subvolume shares.
    pub exclusive: u64,
    /// The physical `(start, end)` ranges of the extents that are shared (kept only when
    /// asked for).
    pub shared: Vec<(u64, u64)>,
    /// `false` when the walk stopped at its deadline: the figures are then lower bounds.
    pub complete: bool,
}

/// Walks the regular files under `path` (not following links or leaving the filesystem's
/// directory tree) and sums their extent maps, as `btrfs filesystem du` does; with
/// `keep_shared` it also returns where the shared extents are. Stops at `deadline`.
pub fn extents(path: &Path, deadline: std::time::Instant, keep_shared: bool) -> Extents {
    let mut out = Extents {
        complete: true,
        ..Extents::default()
    };
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if std::time::Instant::now() > deadline {
                out.complete = false;
                return out;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                if let Ok(file) = File::open(entry.path()) {
                    if let Ok(extents) = btrfs_uapi::fiemap::file_extents(fd(&file)) {
                        out.exclusive += extents.total_bytes.saturating_sub(extents.shared_bytes);
                        if keep_shared {
                            out.shared.extend(extents.shared_extents);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Bytes of the files under `path` that no other file or subvolume shares (what deleting
/// them would free). Stops at `deadline` and returns what it counted with `false` ("at
/// least").
pub fn exclusive_bytes(path: &Path, deadline: std::time::Instant) -> (u64, bool) {
    let found = extents(path, deadline, false);
    (found.exclusive, found.complete)
}

/// Bytes covered by `ranges` and not by `minus` (both `(start, end)` half-open ranges, in
/// any order, overlaps allowed).
pub fn bytes_outside(mut ranges: Vec<(u64, u64)>, mut minus: Vec<(u64, u64)>) -> u64 {
    let ranges = merge(&mut ranges);
    let minus = merge(&mut minus);
    let mut total = 0;
    let mut j = 0;
    for (start, end) in ranges {
        let mut at = start;
        // Skip the holes that end before this range.
        while j < minus.len() && minus[j].1 <= at {
            j += 1;
        }
        let mut k = j;
        while at < end {
            match minus.get(k) {
                Some(&(m_start, m_end)) if m_start < end => {
                    total += m_start.saturating_sub(at);
                    at = at.max(m_end);
                    k += 1;
                }
                _ => {
                    total += end - at;
                    at = end;
                }
            }
        }
    }
    total
}

/// Sorts and merges overlapping or touching ranges.
fn merge(ranges: &mut [(u64, u64)]) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges.iter().filter(|(s, e)| s < e) {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
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

    #[test]
    fn bytes_outside_ranges() {
        assert_eq!(bytes_outside(vec![], vec![(0, 10)]), 0);
        assert_eq!(bytes_outside(vec![(0, 10)], vec![]), 10);
        // Overlapping and repeated ranges count once.
        assert_eq!(bytes_outside(vec![(0, 10), (5, 15), (0, 10)], vec![]), 15);
        assert_eq!(bytes_outside(vec![(0, 10)], vec![(0, 10)]), 0);
        assert_eq!(bytes_outside(vec![(0, 10)], vec![(2, 4), (6, 8)]), 6);
        assert_eq!(bytes_outside(vec![(0, 10)], vec![(5, 100)]), 5);
        assert_eq!(bytes_outside(vec![(10, 20), (30, 40)], vec![(15, 35)]), 10);
        assert_eq!(
            bytes_outside(vec![(30, 40), (10, 20)], vec![(0, 5), (50, 60)]),
            20
        );
        // Empty or reversed ranges are nothing.
        assert_eq!(bytes_outside(vec![(5, 5), (9, 3)], vec![]), 0);
    }

    /// Against a byte-by-byte count, on random ranges.
    #[test]
    fn bytes_outside_matches_a_bitmap() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..500 {
            let mut pick = |count: u64| -> Vec<(u64, u64)> {
                (0..next(count))
                    .map(|_| {
                        let start = next(200);
                        (start, start + next(40))
                    })
                    .collect()
            };
            let ranges = pick(8);
            let minus = pick(8);
            let mut bitmap = [0u8; 256];
            for &(s, e) in &ranges {
                for b in &mut bitmap[s as usize..e as usize] {
                    *b = 1;
                }
            }
            for &(s, e) in &minus {
                for b in &mut bitmap[s as usize..e as usize] {
                    *b = 0;
                }
            }
            let want = bitmap.iter().map(|&b| u64::from(b)).sum::<u64>();
            assert_eq!(
                bytes_outside(ranges.clone(), minus.clone()),
                want,
                "{ranges:?} minus {minus:?}"
            );
        }
    }
}
