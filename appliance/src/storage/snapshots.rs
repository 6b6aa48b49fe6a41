//! Snapshots of datasets: read-only btrfs snapshots kept outside the datasets, mounted inside
//! each dataset's `.snapshots/` directory so that clients of its shares can browse them and
//! copy files out, and never change them: btrfs refuses every write to a read-only subvolume,
//! and NFS serves the view read-only. (The mounts themselves are not read-only: ksmbd asks for
//! write access to a path's mount even to read it.)
//!
//! ```text
//! /run/tank/pool/.snapshots/<dataset>/<name>     the read-only subvolumes (management view)
//! /mnt/<pool>/<dataset>/.snapshots               a small tmpfs of mount points, root's, 0555
//! /mnt/<pool>/<dataset>/.snapshots/<name>        each snapshot subvolume, mounted
//! ```
//!
//! Keeping the subvolumes outside the dataset keeps them out of its quota and of later
//! snapshots; mounting each one separately gives NFS a distinct filesystem (and file handle
//! UUID) per snapshot instead of duplicate inode numbers. Rollback restores a dataset in
//! place, file by file with reflink copies, so its mount, its shares and their clients stay
//! as they are ([`rollback`]). The space snapshots hold comes from the files' extent maps
//! (FIEMAP), per snapshot ([`held_bytes`]) and for all of a dataset's together
//! ([`held_by_all`], the `SNAPSHOTS` column of `dataset list`): with simple quotas, btrfs's
//! qgroups charge an extent to the subvolume that wrote it, so they cannot say what a snapshot
//! keeps. What does not live here: names, schedules and retention (`config::snapshots`),
//! deciding what to prune (the engine).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::mount::MountFlags;

use super::{btrfs, dataset_mountpoint, POOL_ROOT};
use crate::config::SnapshotName;

/// The directory name of snapshots, at the pool's top level and inside each dataset.
pub const SNAPSHOT_DIR: &str = ".snapshots";

/// One snapshot of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: SnapshotName,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    pub id: u64,
}

/// Where a dataset's snapshot subvolumes live.
pub fn store_dir(dataset: &str) -> PathBuf {
    Path::new(POOL_ROOT).join(SNAPSHOT_DIR).join(dataset)
}

/// Where clients see a dataset's snapshots.
pub fn view_dir(pool: &str, dataset: &str) -> PathBuf {
    dataset_mountpoint(pool, dataset).join(SNAPSHOT_DIR)
}

fn is_mountpoint(path: &Path) -> bool {
    super::pool::is_mountpoint(path)
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

/// The snapshots of `dataset`, oldest first.
pub fn list(dataset: &str) -> Vec<SnapshotInfo> {
    let dir = store_dir(dataset);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<SnapshotInfo> = entries
        .flatten()
        .filter_map(|e| {
            let name = SnapshotName::parse_any(e.file_name().to_str()?).ok()?;
            match btrfs::subvolume_created(&e.path()) {
                Ok((id, created)) => Some(SnapshotInfo { name, created, id }),
                Err(err) => {
                    log::warn!("snapshot {}: {err}", e.path().display());
                    None
                }
            }
        })
        .collect();
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    out
}

/// Bytes only this snapshot holds (what destroying it frees), counted until `deadline`;
/// `false` when the count stopped early.
pub fn held_bytes(dataset: &str, name: &SnapshotName, deadline: Instant) -> (u64, bool) {
    btrfs::exclusive_bytes(&store_dir(dataset).join(name.as_str()), deadline)
}

/// Bytes the snapshots of `dataset` hold together: what destroying all of them would free.
/// That is each snapshot's unshared extents, plus the shared extents no file of the live
/// dataset uses (shared among snapshots only). Extents a clone of a snapshot shares count as
/// held. Counted until `deadline`; `false` means the walk stopped early and the figure is a
/// lower bound (then only the unshared extents counted so far).
pub fn held_by_all(dataset: &str, deadline: Instant) -> (u64, bool) {
    let snapshots = list(dataset);
    let mut exclusive = 0u64;
    let mut shared = Vec::new();
    for snapshot in &snapshots {
        let found = btrfs::extents(
            &store_dir(dataset).join(snapshot.name.as_str()),
            deadline,
            true,
        );
        exclusive += found.exclusive;
        if !found.complete {
            return (exclusive, false);
        }
        shared.extend(found.shared);
    }
    if shared.is_empty() {
        return (exclusive, true);
    }
    let live = btrfs::extents(&Path::new(POOL_ROOT).join(dataset), deadline, true);
    if !live.complete {
        return (exclusive, false);
    }
    (exclusive + btrfs::bytes_outside(shared, live.shared), true)
}

/// Mounts the view of a dataset's snapshots (the tmpfs and every snapshot), once the dataset
/// itself is mounted. Returns a line per problem.
pub fn mount_all(pool: &str, dataset: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let view = view_dir(pool, dataset);
    if let Err(e) = mount_view(&view) {
        problems.push(e);
        return problems;
    }
    for snapshot in list(dataset) {
        if let Err(e) = mount_one(pool, dataset, &snapshot) {
            problems.push(e);
        }
    }
    problems
}

fn mount_view(view: &Path) -> Result<(), String> {
    if is_mountpoint(view) {
        return Ok(());
    }
    if !view.exists() {
        std::fs::create_dir(view).map_err(|e| io_error("create", view, e))?;
        let _ = std::fs::set_permissions(view, std::fs::Permissions::from_mode(0o555));
    }
    // Not a read-only mount: ksmbd asks for write access to the parent mount of every path
    // it looks up, even to read. The view is root's and mode 0555, and NFS serves it
    // read-only.
    rustix::mount::mount(
        "snapshots",
        view,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(c"mode=0555,size=1m"),
    )
    .map_err(|e| io_error("mount the snapshot view on", view, e))
}

fn mount_one(pool: &str, dataset: &str, snapshot: &SnapshotInfo) -> Result<(), String> {
    let view = view_dir(pool, dataset);
    let target = view.join(snapshot.name.as_str());
    if is_mountpoint(&target) {
        return Ok(());
    }
    if !target.exists() {
        std::fs::create_dir(&target).map_err(|e| io_error("create", &target, e))?;
    }
    let dev = super::pool::any_member_device().ok_or("no member device is present")?;
    btrfs::mount_snapshot(&dev, &target, snapshot.id).map_err(|e| e.to_string())
}

fn unmount_one(pool: &str, dataset: &str, name: &SnapshotName) -> Result<(), String> {
    let view = view_dir(pool, dataset);
    let target = view.join(name.as_str());
    if is_mountpoint(&target) {
        // A client may hold a file open in it: detach, so the snapshot can still go.
        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH)
            .map_err(|e| io_error("unmount", &target, e))?;
    }
    if target.exists() && is_mountpoint(&view) {
        std::fs::remove_dir(&target).map_err(|e| io_error("remove", &target, e))?;
    }
    Ok(())
}

/// Unmounts a dataset's snapshot view (before the dataset is unmounted or destroyed).
pub fn unmount_all(pool: &str, dataset: &str) {
    for snapshot in list(dataset) {
        if let Err(e) = unmount_one(pool, dataset, &snapshot.name) {
            log::warn!("{e}");
        }
    }
    let view = view_dir(pool, dataset);
    if is_mountpoint(&view) {
        if let Err(e) = rustix::mount::unmount(&view, rustix::mount::UnmountFlags::DETACH) {
            log::warn!("{}", io_error("unmount", &view, e));
        }
    }
}

/// Takes a read-only snapshot of `dataset` now and shows it in the dataset's view.
pub fn create(pool: &str, dataset: &str, name: &SnapshotName) -> Result<SnapshotInfo, String> {
    let store = store_dir(dataset);
    if store.join(name.as_str()).exists() {
        return Err(format!(
            "snapshot {dataset}@{name} exists; choose another name"
        ));
    }
    std::fs::create_dir_all(&store).map_err(|e| io_error("create", &store, e))?;
    let source = Path::new(POOL_ROOT).join(dataset);
    btrfs::create_snapshot(&source, &store, name.as_str(), true).map_err(|e| e.to_string())?;
    let (id, created) =
        btrfs::subvolume_created(&store.join(name.as_str())).map_err(|e| e.to_string())?;
    let info = SnapshotInfo {
        name: name.clone(),
        created,
        id,
    };
    if let Err(e) =
        mount_view(&view_dir(pool, dataset)).and_then(|()| mount_one(pool, dataset, &info))
    {
        log::warn!("snapshot {dataset}@{name} was taken but is not browsable: {e}");
    }
    Ok(info)
}

/// Deletes a snapshot (and its mount in the view).
pub fn destroy(pool: &str, dataset: &str, name: &SnapshotName) -> Result<(), String> {
    let path = store_dir(dataset).join(name.as_str());
    if !path.exists() {
        return Err(format!(
            "there is no snapshot {dataset}@{name}; 'snapshot list {dataset}' shows them"
        ));
    }
    unmount_one(pool, dataset, name)?;
    btrfs::delete_subvolume(&path).map_err(|e| e.to_string())
}

/// Deletes every snapshot of a dataset (when the dataset is destroyed).
pub fn destroy_all(pool: &str, dataset: &str) -> Vec<String> {
    let problems: Vec<String> = list(dataset)
        .into_iter()
        .filter_map(|s| destroy(pool, dataset, &s.name).err())
        .collect();
    let _ = std::fs::remove_dir(store_dir(dataset));
    problems
}

/// Makes a writable copy of a snapshot as the subvolume of a new dataset `target`.
pub fn clone_to(dataset: &str, name: &SnapshotName, target: &str) -> Result<(), String> {
    let source = store_dir(dataset).join(name.as_str());
    if !source.exists() {
        return Err(format!(
            "there is no snapshot {dataset}@{name}; 'snapshot list {dataset}' shows them"
        ));
    }
    btrfs::create_snapshot(&source, Path::new(POOL_ROOT), target, false)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The mounts inside a dataset that belong to its snapshot view: (path, inode), the view
/// first. NFS serves each as a read-only submount of the dataset's share.
pub fn submounts(pool: &str, dataset: &str) -> Vec<(PathBuf, u64)> {
    let view = view_dir(pool, dataset);
    if !is_mountpoint(&view) {
        return Vec::new();
    }
    let inode = |p: &Path| rustix::fs::stat(p).map_or(0, |s| s.st_ino);
    let mut out = vec![(view.clone(), inode(&view))];
    for snapshot in list(dataset) {
        let path = view.join(snapshot.name.as_str());
        if is_mountpoint(&path) {
            out.push((path.clone(), inode(&path)));
        }
    }
    out
}

/// What a rollback changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    /// Files (and links, device nodes) whose content or attributes were restored.
    pub files: u64,
    /// Files left alone because they had not changed since the snapshot.
    pub unchanged: u64,
    pub directories: u64,
    pub removed: u64,
    /// Bytes copied because a reflink was refused (0 on the pool: the snapshot and the
    /// dataset are one filesystem).
    pub copied_bytes: u64,
}

/// Returns `dataset` to the state of snapshot `name`, in place: entries the snapshot lacks are
/// removed, everything it holds is restored (file contents as reflink copies sharing the
/// snapshot's extents, so no data is copied), with owners, modes, times and extended
/// attributes. Files that have not changed since the snapshot (same inode, same change time)
/// are left alone, and a changed regular file gets the snapshot's content in the same inode,
/// so clients' handles to it stay valid. The dataset stays mounted and shared throughout;
/// only clients holding handles to files the rollback removes see them go stale.
pub fn rollback(pool: &str, dataset: &str, name: &SnapshotName) -> Result<RollbackReport, String> {
    let source = store_dir(dataset).join(name.as_str());
    if !source.exists() {
        return Err(format!(
            "there is no snapshot {dataset}@{name}; 'snapshot list {dataset}' shows them"
        ));
    }
    let target = dataset_mountpoint(pool, dataset);
    let mut report = RollbackReport::default();
    sync_dir(&source, &target, true, &mut report)
        .map_err(|e| format!("the rollback of {dataset} stopped: {e}; run it again to finish"))?;
    rustix::fs::sync();
    Ok(report)
}

fn skip_at_top(top: bool, name: &OsStr) -> bool {
    top && name == OsStr::new(SNAPSHOT_DIR)
}

fn path_error(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Makes `dst` hold what `src` holds.
fn sync_dir(src: &Path, dst: &Path, top: bool, report: &mut RollbackReport) -> io::Result<()> {
    let wanted: std::collections::BTreeSet<Vec<u8>> = std::fs::read_dir(src)
        .map_err(|e| path_error("reading", src, e))?
        .flatten()
        .map(|e| e.file_name().as_bytes().to_vec())
        .collect();
    for entry in std::fs::read_dir(dst)
        .map_err(|e| path_error("reading", dst, e))?
        .flatten()
    {
        let name = entry.file_name();
        if skip_at_top(top, &name) || wanted.contains(name.as_bytes()) {
            continue;
        }
        remove_any(&entry.path())?;
        report.removed += 1;
    }
    for name in wanted {
        let name = OsStr::from_bytes(&name);
        if skip_at_top(top, name) {
            continue;
        }
        let from = src.join(name);
        let to = dst.join(name);
        let meta = std::fs::symlink_metadata(&from).map_err(|e| path_error("reading", &from, e))?;
        let existing = std::fs::symlink_metadata(&to).ok();
        let kind = meta.file_type();
        if kind.is_dir() {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                remove_any(&to)?;
            }
            if !to.exists() {
                std::fs::create_dir(&to).map_err(|e| path_error("creating", &to, e))?;
            }
            sync_dir(&from, &to, false, report)?;
            copy_metadata(&from, &to, &meta)?;
            report.directories += 1;
        } else {
            let existing = match existing {
                Some(m) if m.is_dir() => {
                    remove_any(&to)?;
                    None
                }
                other => other,
            };
            restore_entry(&from, &to, &meta, existing.as_ref(), report)?;
        }
    }
    copy_metadata(src, dst, &std::fs::symlink_metadata(src)?)
}

fn remove_any(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .map_err(|e| path_error("removing", path, e))
}

/// Whether the live entry `live` is still the snapshot's entry `snap`: a snapshot keeps inode
/// numbers, and any change to a file's content or attributes moves its change time.
fn unchanged_since(snap: &std::fs::Metadata, live: &std::fs::Metadata) -> bool {
    live.ino() == snap.ino()
        && live.ctime() == snap.ctime()
        && live.ctime_nsec() == snap.ctime_nsec()
        && live.mtime() == snap.mtime()
        && live.mtime_nsec() == snap.mtime_nsec()
        && live.size() == snap.size()
        && live.file_type() == snap.file_type()
}

/// Gives the open file `output` the content of `input`: a reflink where the filesystem can
/// (the snapshot and the dataset are on one btrfs), else a byte copy. Returns the bytes
/// copied.
fn clone_content(input: &std::fs::File, output: &std::fs::File, from: &Path) -> io::Result<u64> {
    if rustix::fs::ioctl_ficlone(output, input).is_ok() {
        return Ok(0);
    }
    let mut input = input;
    let mut output = output;
    io::copy(&mut input, &mut output).map_err(|e| path_error("copying", from, e))
}

/// Restores one non-directory entry, unless it has not changed since the snapshot. A
/// regular file that is still a regular file is restored in place (its inode stays, and with
/// it clients' handles); anything else is made under a temporary name and renamed into
/// place, so a client never sees a half-made entry.
fn restore_entry(
    from: &Path,
    to: &Path,
    meta: &std::fs::Metadata,
    existing: Option<&std::fs::Metadata>,
    report: &mut RollbackReport,
) -> io::Result<()> {
    let kind = meta.file_type();
    if let Some(live) = existing {
        if unchanged_since(meta, live) {
            report.unchanged += 1;
            return Ok(());
        }
        if kind.is_file() && live.is_file() {
            let input = std::fs::File::open(from).map_err(|e| path_error("opening", from, e))?;
            let output = std::fs::OpenOptions::new()
                .write(true)
                .open(to)
                .map_err(|e| path_error("opening", to, e))?;
            // A reflink of a whole file into a shorter one is always allowed.
            output
                .set_len(0)
                .map_err(|e| path_error("truncating", to, e))?;
            report.copied_bytes += clone_content(&input, &output, from)?;
            copy_metadata(from, to, meta)?;
            report.files += 1;
            return Ok(());
        }
    }
    let parent = to.parent().unwrap_or(Path::new("/"));
    let tmp = parent.join(".tank-rollback.tmp");
    let _ = std::fs::remove_file(&tmp);
    if kind.is_file() {
        let input = std::fs::File::open(from).map_err(|e| path_error("opening", from, e))?;
        let output = std::fs::File::create(&tmp).map_err(|e| path_error("creating", &tmp, e))?;
        report.copied_bytes += clone_content(&input, &output, from)?;
    } else if kind.is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| path_error("reading", from, e))?;
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| path_error("creating", &tmp, e))?;
    } else {
        let file_type = rustix::fs::FileType::from_raw_mode(meta.mode());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &tmp,
            file_type,
            rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(|e| path_error("creating", &tmp, io::Error::from(e)))?;
    }
    copy_metadata(from, &tmp, meta)?;
    std::fs::rename(&tmp, to).map_err(|e| path_error("replacing", to, e))?;
    report.files += 1;
    Ok(())
}

/// Owner, mode, extended attributes and times of `from`, onto `to` (not following links).
fn copy_metadata(from: &Path, to: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps};
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    rustix::fs::chownat(
        rustix::fs::CWD,
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        nofollow,
    )
    .map_err(|e| path_error("setting the owner of", to, e.into()))?;
    if !meta.file_type().is_symlink() {
        rustix::fs::chmod(to, rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777))
            .map_err(|e| path_error("setting the mode of", to, e.into()))?;
    }
    copy_xattrs(from, to);
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, to, &times, nofollow)
        .map_err(|e| path_error("setting the times of", to, e.into()))
}

/// The names of the extended attributes of `path` (not following links).
fn xattr_names(path: &Path) -> Vec<std::ffi::CString> {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(len) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    names[..len]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::ffi::CString::new(n).ok())
        .collect()
}

/// Makes the extended attributes of `to` those of `from` (SMB's DOS attributes and streams,
/// ACLs): copies each, removes those `from` lacks. One that cannot be copied or removed is
/// logged, not fatal.
fn copy_xattrs(from: &Path, to: &Path) {
    let wanted = xattr_names(from);
    for name in xattr_names(to) {
        if wanted.contains(&name) {
            continue;
        }
        if let Err(e) = rustix::fs::lremovexattr(to, name.as_c_str()) {
            log::warn!(
                "rollback: cannot remove attribute {} of {}: {e}",
                name.to_string_lossy(),
                to.display()
            );
        }
    }
    for name in wanted {
        let mut value = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(from, name.as_c_str(), &mut value) {
            Ok(n) => {
                if let Err(e) = rustix::fs::lsetxattr(
                    to,
                    name.as_c_str(),
                    &value[..n],
                    rustix::fs::XattrFlags::empty(),
                ) {
                    log::warn!(
                        "rollback: cannot restore attribute {} of {}: {e}",
                        name.to_string_lossy(),
                        to.display()
                    );
                }
            }
            Err(e) => log::warn!(
                "rollback: cannot read an attribute of {}: {e}",
                from.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tank-rollback-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The in-place restore on an ordinary filesystem (bytes are copied where reflinks are not
    /// possible): removed, changed and added entries all end as in the source, and the
    /// `.snapshots` directory at the top is left alone.
    #[test]
    fn restore_in_place() {
        let src = tmp("src");
        let dst = tmp("dst");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/file"), b"original").unwrap();
        std::fs::write(src.join("kept"), b"same").unwrap();
        std::os::unix::fs::symlink("kept", src.join("link")).unwrap();
        std::fs::set_permissions(src.join("kept"), std::fs::Permissions::from_mode(0o640)).unwrap();

        std::fs::create_dir_all(dst.join("a/b")).unwrap();
        std::fs::write(dst.join("a/b/file"), b"changed after the snapshot").unwrap();
        std::fs::write(dst.join("new-file"), b"added later").unwrap();
        std::fs::create_dir_all(dst.join("new-dir/deep")).unwrap();
        std::fs::write(dst.join("link"), b"a file where a link was").unwrap();
        std::fs::create_dir_all(dst.join(SNAPSHOT_DIR).join("s1")).unwrap();
        // A file that has not changed since the snapshot is the same inode (a hard link
        // stands for that here).
        std::fs::write(src.join("untouched"), b"as it was").unwrap();
        std::fs::hard_link(src.join("untouched"), dst.join("untouched")).unwrap();
        let set = |path: &Path, name: &std::ffi::CStr, value: &[u8]| {
            rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap()
        };
        set(&src.join("kept"), c"user.wanted", b"1");
        std::fs::write(dst.join("kept"), b"same but rewritten").unwrap();
        set(&dst.join("kept"), c"user.added-later", b"2");
        let changed_inode = std::fs::metadata(dst.join("a/b/file")).unwrap().ino();

        let mut report = RollbackReport::default();
        sync_dir(&src, &dst, true, &mut report).unwrap();
        assert_eq!(std::fs::read(dst.join("a/b/file")).unwrap(), b"original");
        // Restored in place: the same inode, so a client's handle stays valid.
        assert_eq!(
            std::fs::metadata(dst.join("a/b/file")).unwrap().ino(),
            changed_inode
        );
        assert_eq!(std::fs::read(dst.join("untouched")).unwrap(), b"as it was");
        assert_eq!(report.unchanged, 1, "{report:?}");
        assert_eq!(report.files, 3, "{report:?}");
        // ext4 or tmpfs here: no reflinks, the two changed files' bytes were copied.
        assert_eq!(
            report.copied_bytes,
            (b"original".len() + b"same".len()) as u64,
            "{report:?}"
        );
        let names: Vec<_> = xattr_names(&dst.join("kept"));
        assert_eq!(names, [c"user.wanted".to_owned()]);
        assert_eq!(std::fs::read(dst.join("kept")).unwrap(), b"same");
        assert_eq!(
            std::fs::metadata(dst.join("kept"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("kept")
        );
        assert!(!dst.join("new-file").exists() && !dst.join("new-dir").exists());
        assert!(dst.join(SNAPSHOT_DIR).join("s1").exists());
        assert_eq!(report.removed, 2);
        assert_eq!(
            std::fs::metadata(dst.join("a/b/file")).unwrap().mtime(),
            std::fs::metadata(src.join("a/b/file")).unwrap().mtime()
        );
        assert!(!dst.join("a/b/.tank-rollback.tmp").exists());
        let _ = std::fs::remove_dir_all(&src);
        let _ = std::fs::remove_dir_all(&dst);
    }
}
