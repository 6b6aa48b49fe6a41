//! Integration tests against the host's kernel: loop devices over sparse files, a real
//! RAID1 mount, subvolumes, simple quotas, scrub, balance, replace and a degraded mount.
//!
//! They need root, the btrfs driver and `losetup`, so they run only with
//! `TANK_HOST_BTRFS=1` and say why they were skipped otherwise. Every mount and loop device
//! is cleaned up by a guard, also when an assertion fails.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Loop devices and mounts to undo, in reverse order.
struct Rig {
    dir: PathBuf,
    loops: Vec<PathBuf>,
    mounts: Vec<PathBuf>,
}

impl Rig {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tank-host-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            loops: Vec::new(),
            mounts: Vec::new(),
        }
    }

    /// A loop device over a new sparse file of `size` bytes.
    fn disk(&mut self, name: &str, size: u64) -> PathBuf {
        let img = self.dir.join(format!("{name}.img"));
        File::create(&img).unwrap().set_len(size).unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        self.loops.push(dev.clone());
        dev
    }

    fn detach(&mut self, dev: &Path) {
        let out = Command::new("losetup").arg("-d").arg(dev).output().unwrap();
        assert!(out.status.success(), "losetup -d: {out:?}");
        self.loops.retain(|d| d != dev);
    }

    fn mount_point(&mut self, name: &str) -> PathBuf {
        let mnt = self.dir.join(name);
        std::fs::create_dir_all(&mnt).unwrap();
        mnt
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for mnt in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(mnt).output();
        }
        for dev in self.loops.iter().rev() {
            let _ = Command::new("losetup").arg("-d").arg(dev).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn enabled() -> bool {
    tank_test_gate::enabled(
        "TANK_HOST_BTRFS",
        "the host btrfs suite",
        "root, this host's btrfs driver, loop devices and losetup",
    ) && tank_test_gate::tool("the host btrfs suite", "losetup", "util-linux")
        && tank_test_gate::tool("the host btrfs suite", "btrfs", "btrfs-progs")
}

/// Writes `len` bytes of non-zero data to `path` and fsyncs.
fn write_file(path: &Path, len: usize) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    f.sync_all()
}

fn all_raid1(mnt: &Path) -> Vec<SpaceUsage> {
    let spaces = space_info(mnt).unwrap();
    for kind in [
        BlockGroupKind::Data,
        BlockGroupKind::Metadata,
        BlockGroupKind::System,
    ] {
        assert!(
            spaces.iter().any(|s| s.kind == kind),
            "no {kind} block groups: {spaces:?}"
        );
    }
    for s in &spaces {
        assert!(s.is_raid1(), "not RAID1: {s}");
    }
    spaces
}

#[test]
fn pool_lifecycle_on_loop_devices() {
    if !enabled() {
        return;
    }
    let mut rig = Rig::new("life");
    let a = rig.disk("a", 512 << 20);
    let b = rig.disk("b", 512 << 20);
    let c = rig.disk("c", 512 << 20);
    let fsid = mkfs_raid1(&[&a, &b], "tank").unwrap();

    scan_device(&a).unwrap();
    scan_device(&b).unwrap();
    let mnt = rig.mount_point("pool");
    mount_pool(&[a.clone(), b.clone()], &mnt, false, None, "noatime").unwrap();
    rig.mounts.push(mnt.clone());

    // btrfs-mkfs leaves the system chunk single on device 1: the first balance mirrors it.
    let fresh = space_info(&mnt).unwrap();
    assert!(
        fresh
            .iter()
            .all(|s| s.is_raid1() || s.kind == BlockGroupKind::System),
        "{fresh:?}"
    );
    if fresh.iter().any(|s| !s.is_raid1()) {
        assert!(balance_convert_raid1(&mnt).unwrap() >= 1);
    }
    all_raid1(&mnt);

    // Filesystem and devices.
    let info = filesystem_info(&mnt).unwrap();
    assert_eq!(info.fsid, fsid);
    assert_eq!(info.label, "tank");
    assert_eq!(info.num_devices, 2);
    let devs = devices(&mnt).unwrap();
    assert_eq!(devs.len(), 2, "{devs:?}");
    assert_eq!(devs[0].path.as_deref(), Some(a.as_path()));
    assert_eq!(devs[1].path.as_deref(), Some(b.as_path()));
    assert!(devs.iter().all(|d| !d.missing && d.size == 512 << 20));

    // Subvolumes.
    let home = create_subvolume(&mnt, "home").unwrap();
    assert!(home >= 256);
    assert_eq!(subvolume_id(&mnt.join("home")).unwrap(), home);
    assert_eq!(subvolume_id(&mnt).unwrap(), 5);
    let list = list_subvolumes(&mnt).unwrap();
    assert!(
        list.iter()
            .any(|s| s.id == home && s.path == "home" && s.parent_id == 5),
        "{list:?}"
    );
    assert!(matches!(
        create_subvolume(&mnt, "home"),
        Err(BtrfsError::Ioctl { .. })
    ));

    // Compression property.
    let home_dir = mnt.join("home");
    assert_eq!(compression(&home_dir).unwrap(), Compression::None);
    set_compression(&home_dir, Compression::Zstd).unwrap();
    assert_eq!(compression(&home_dir).unwrap(), Compression::Zstd);
    set_compression(&home_dir, Compression::None).unwrap();
    assert_eq!(compression(&home_dir).unwrap(), Compression::None);
    set_compression(&home_dir, Compression::None).unwrap();
    set_compression(&home_dir, Compression::Lzo).unwrap();

    // Simple quotas and a 1 MiB limit.
    assert!(!quotas_enabled(&mnt).unwrap());
    enable_simple_quotas(&mnt).unwrap();
    let q = quota_status(&mnt).unwrap();
    assert!(q.enabled && q.simple, "{q:?}");
    enable_simple_quotas(&mnt).unwrap(); // idempotent
    let data = create_subvolume(&mnt, "data").unwrap();
    set_subvolume_limit(&mnt, data, 1 << 20).unwrap();
    let usage = subvolume_usage(&mnt, data).unwrap();
    assert_eq!(usage.max_referenced, Some(1 << 20), "{usage:?}");
    let err = write_file(&mnt.join("data/big"), 2 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    clear_subvolume_limit(&mnt, data).unwrap();
    assert_eq!(subvolume_usage(&mnt, data).unwrap().max_referenced, None);
    write_file(&mnt.join("data/big"), 2 << 20).unwrap();
    btrfs_uapi::filesystem::sync(fd(&open_btrfs(&mnt).unwrap())).unwrap();
    let usage = subvolume_usage(&mnt, data).unwrap();
    assert!(usage.referenced >= 2 << 20, "{usage:?}");
    let usages = subvolume_usages(&mnt).unwrap();
    assert!(usages.iter().any(|u| u.subvol_id == data), "{usages:?}");

    // Health.
    for d in &devs {
        let e = device_stats(&mnt, d.devid).unwrap();
        assert_eq!(e.total(), 0, "{e:?}");
    }
    assert!(matches!(
        device_stats(&mnt, 9),
        Err(BtrfsError::NoSuchDevice { devid: 9, .. })
    ));
    all_raid1(&mnt);

    // Scrub, balance.
    let scrubbed = scrub_all(&mnt, false).unwrap();
    assert_eq!(scrubbed.len(), 2);
    for p in &scrubbed {
        assert_eq!(p.errors() + p.uncorrectable, 0, "{p:?}");
        assert!(p.bytes_scrubbed > 0, "{p:?}");
    }
    assert!(!scrub_cancel(&mnt).unwrap());
    balance_convert_raid1(&mnt).unwrap();
    assert_eq!(balance_status(&mnt).unwrap(), None);
    assert!(!balance_cancel(&mnt).unwrap());
    all_raid1(&mnt);

    // Online replace of a present member.
    replace_start(&mnt, 2, &c).unwrap();
    let st = replace_status(&mnt).unwrap();
    assert_eq!(st.state, ReplaceState::Finished, "{st:?}");
    assert!((st.percent - 100.0).abs() < f64::EPSILON, "{st:?}");
    let devs = devices(&mnt).unwrap();
    assert_eq!(devs[1].path.as_deref(), Some(c.as_path()), "{devs:?}");
    assert!(!replace_cancel(&mnt).unwrap());

    // Delete a subvolume.
    delete_subvolume(&mnt.join("home")).unwrap();
    assert!(!mnt.join("home").exists());
    btrfs_uapi::filesystem::sync(fd(&open_btrfs(&mnt).unwrap())).unwrap();
    assert!(!list_subvolumes(&mnt)
        .unwrap()
        .iter()
        .any(|s| s.path == "home"));

    unmount(&mnt).unwrap();
    rig.mounts.pop();
    assert!(matches!(unmount(&mnt), Err(BtrfsError::Unmount { .. })));
    assert!(matches!(
        filesystem_info(&mnt),
        Err(BtrfsError::NotBtrfs { .. })
    ));

    // The members now say a, c (b was replaced).
    let sigs = probe(&c).unwrap();
    assert!(
        matches!(sigs.as_slice(), [Signature::Btrfs(m)] if m.fsid == fsid && m.devid == 2),
        "{sigs:?}"
    );
}

#[test]
fn degraded_mount_replace_missing_and_convert() {
    if !enabled() {
        return;
    }
    let mut rig = Rig::new("degraded");
    let a = rig.disk("a", 1 << 30);
    let b = rig.disk("b", 1 << 30);
    let c = rig.disk("c", 1 << 30);
    mkfs_raid1(&[&a, &b], "tank").unwrap();
    // Both members together pass `btrfs check` (it finds the peer among the loop devices).
    for dev in [&a, &b] {
        let out = Command::new("btrfs")
            .args(["check", "--readonly"])
            .arg(dev)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("no error found"),
            "{text}"
        );
    }
    let mnt = rig.mount_point("pool");
    mount_pool(&[a.clone(), b.clone()], &mnt, false, None, "").unwrap();
    rig.mounts.push(mnt.clone());
    // Mirror the system chunk, without which losing device 1 loses the pool.
    balance_convert_raid1(&mnt).unwrap();
    all_raid1(&mnt);
    write_file(&mnt.join("before"), 1 << 20).unwrap();
    unmount(&mnt).unwrap();
    rig.mounts.pop();

    // Lose a (devid 1, the one that held the system chunk).
    rig.detach(&a);
    let err = mount_pool(&[a.clone(), b.clone()], &mnt, false, None, "").unwrap_err();
    assert!(
        err.to_string().contains("degraded"),
        "the error should suggest a degraded mount: {err}"
    );
    mount_pool(&[a.clone(), b.clone()], &mnt, true, None, "").unwrap();
    rig.mounts.push(mnt.clone());
    let devs = devices(&mnt).unwrap();
    assert!(
        devs.iter()
            .any(|d| d.devid == 1 && d.missing && d.path.is_none()),
        "{devs:?}"
    );
    assert_eq!(
        std::fs::metadata(mnt.join("before")).unwrap().len(),
        1 << 20
    );
    // Writes go on while degraded; enough to need new (single) chunks.
    for i in 0..2 {
        write_file(&mnt.join(format!("during-{i}")), 40 << 20).unwrap();
    }
    let spaces = space_info(&mnt).unwrap();
    assert!(
        spaces
            .iter()
            .any(|s| s.kind == BlockGroupKind::Data && s.profile == Profile::Single),
        "a degraded RAID1 writes single chunks: {spaces:?}"
    );

    // Replace the missing member, then mirror what was written while degraded.
    replace_start(&mnt, 1, &c).unwrap();
    let devs = devices(&mnt).unwrap();
    assert!(devs.iter().all(|d| !d.missing), "{devs:?}");
    balance_convert_raid1(&mnt).unwrap();
    all_raid1(&mnt);
    let scrubbed = scrub_all(&mnt, false).unwrap();
    assert!(
        scrubbed
            .iter()
            .all(|p| p.uncorrectable == 0 && p.bytes_scrubbed > 0),
        "{scrubbed:?}"
    );
    unmount(&mnt).unwrap();
    rig.mounts.pop();
}
