//! Formatting disks as one btrfs RAID1 filesystem, without blocking on entropy.
//!
//! The formatting itself is the pure-Rust `btrfs-mkfs` crate (GPL-2.0-only, so the init
//! binary as a whole is GPL-2.0). Around it this module does what the `mkfs.btrfs` command
//! line would: refuse mounted or busy devices, wipe old signatures (the first and last
//! 2 MiB and the superblock mirror slots, like btrfs-progs), and choose the UUIDs.
//!
//! # The system chunk is not mirrored until the first balance
//!
//! `btrfs-mkfs` 0.13 writes data and metadata chunks as RAID1 but always puts the 4 MiB
//! system chunk (which holds the chunk tree) as `single` on device 1, like the temporary
//! chunk old btrfs-progs removed at the end. Until it is converted, losing device 1 makes
//! the pool unmountable even degraded (`btrfs check` on member 2 alone says "cannot read
//! chunk root"). So right after the first mount the engine must run
//! [`super::balance_convert_raid1`] (a soft convert: it relocates only that chunk and
//! takes well under a second on an empty pool); [`super::space_info`] then shows
//! "system RAID1", and a pool that still shows "system single" is not yet redundant.
//!
//! # The superblock's `root_dir` is patched
//!
//! `btrfs-mkfs` 0.13 writes `root_dir_objectid = 256` into the superblock, where btrfs-progs
//! and the kernel expect 6 (`BTRFS_ROOT_TREE_DIR_OBJECTID`, the directory in the root tree
//! that holds the "default" subvolume entry). `btrfs check` does not mind, but the kernel
//! looks the "default" entry up under that id when deleting a subvolume; not finding it, it
//! (in at least 6.18) reuses a search path without releasing it, leaks a tree lock and
//! deadlocks the filesystem (seen on the build host: WARNING at `ctree.c:2020` from
//! `may_destroy_subvol`, then every writer hangs). After formatting, [`mkfs_raid1`]
//! therefore sets the field to 6 in every superblock copy and re-checksums it.
//!
//! # Entropy
//!
//! `btrfs-mkfs`'s command line asks `uuid::Uuid::new_v4()` for its UUIDs, which calls
//! `getrandom(2)` without flags and blocks until the kernel's random pool is initialised.
//! Under QEMU/TCG without RDRAND or virtio-rng that never happens (see the field notes), and
//! the first `pool create` would hang forever. The library API takes every UUID from the
//! caller (`MkfsConfig`), so this module passes its own, made by [`random_uuid`]:
//!
//! 1. `getrandom(GRND_INSECURE)` (Linux 5.6+; the shipped kernel is 6.12): never blocks. When
//!    the pool is initialised its output is the same as a normal `getrandom`; before that it
//!    comes from the not-yet-fully-seeded ChaCha generator, which the kernel has already fed
//!    with whatever it had (cycle counters, interrupt timings, device identities, the command
//!    line).
//! 2. If that is unavailable, `/dev/urandom`, which never blocks either.
//! 3. If the pool is not ready ([`EntropyState::NotReady`], probed with `GRND_NONBLOCK`), or
//!    both sources failed, the bytes are additionally mixed with the wall clock, the
//!    monotonic clock and a process-wide counter, and a warning is logged.
//!
//! UUIDs only need to be unique, not secret: a collision would at worst make the kernel
//! confuse two pools' members. Unseeded output plus the clocks makes that vanishingly
//! unlikely on one box; the warning tells the operator to add a hardware RNG (virtio-rng,
//! `-cpu max`, a TPM) so that the rest of the system (TLS, SMB signing) is not weakened.

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use btrfs_mkfs::args::Profile;
use btrfs_mkfs::mkfs::{make_btrfs, DeviceInfo, MkfsConfig};
use btrfs_mkfs::write::ChecksumType;
use log::{info, warn};
use rustix::rand::{getrandom, GetRandomFlags};
use uuid::Uuid;

use super::BtrfsError;

/// The smallest member this module formats. `btrfs-mkfs` itself accepts 29 MiB, but the
/// kernel then has no room to allocate RAID1 chunks for real data; 256 MiB is btrfs-progs'
/// practical minimum for a usable multi-device filesystem.
pub const MIN_DEVICE_BYTES: u64 = 256 << 20;

/// btrfs's sector size: member sizes are rounded down to it.
const SECTOR: u64 = 4096;

/// How much to zero at each end of a device (btrfs-progs' `ZERO_DEV_BYTES`).
const WIPE_BYTES: u64 = 2 << 20;

/// The superblock mirror offsets beyond the primary (64 MiB, 256 GiB).
const MIRROR_OFFSETS: [u64; 2] = [64 << 20, 256 << 30];

/// Whether the kernel's random pool was initialised when last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyState {
    /// `getrandom` would not block: UUIDs are fully random.
    Ready,
    /// `getrandom` would block: UUIDs come from the insecure (not fully seeded) generator,
    /// mixed with the clocks.
    NotReady,
}

impl EntropyState {
    /// Asks the kernel without blocking (`GRND_NONBLOCK` on one byte).
    pub fn current() -> Self {
        let mut byte = [0u8; 1];
        match getrandom(&mut byte[..], GetRandomFlags::NONBLOCK) {
            Err(e) if e == rustix::io::Errno::AGAIN => Self::NotReady,
            _ => Self::Ready,
        }
    }
}

/// Fills `buf` without ever blocking; returns false if no kernel source worked.
fn fill_nonblocking(buf: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        match getrandom(&mut buf[filled..], GetRandomFlags::INSECURE) {
            Ok(n) => filled += n,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(_) => break,
        }
    }
    if filled == buf.len() {
        return true;
    }
    // Kernels before 5.6 reject GRND_INSECURE with EINVAL; /dev/urandom never blocks.
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

/// Mixes the clocks and a counter into `buf` (XOR, so it can only add uncertainty).
fn mix_clocks(buf: &mut [u8; 16]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let real = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // std's hasher keys come from the kernel without blocking (and differ per process).
    let state = RandomState::new();
    for (half, salt) in [(0usize, 0x5461_6e6b_u64), (8, 0x706f_6f6c)] {
        let mut h = state.build_hasher();
        h.write_u64(salt);
        h.write_i64(real.tv_sec);
        h.write_i64(real.tv_nsec);
        h.write_i64(mono.tv_sec);
        h.write_i64(mono.tv_nsec);
        h.write_u64(count);
        h.write_u32(std::process::id());
        for (b, m) in buf[half..half + 8].iter_mut().zip(h.finish().to_le_bytes()) {
            *b ^= m;
        }
    }
}

/// A random (version 4) UUID that never blocks on the kernel's random pool; see the module
/// documentation for where the bytes come from before the pool is ready.
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    let kernel_ok = fill_nonblocking(&mut bytes);
    if !kernel_ok || EntropyState::current() == EntropyState::NotReady {
        mix_clocks(&mut bytes);
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// One device to format, checked and sized.
struct Member {
    path: PathBuf,
    size: u64,
}

/// Checks a device: it exists, is not mounted or held, and is large enough; returns its size
/// rounded down to the sector size.
fn check_device(path: &Path) -> Result<Member, BtrfsError> {
    let io_err = |action, source| BtrfsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(|e| io_err("stat", e))?;
    let is_block = meta.file_type().is_block_device();
    if is_block && btrfs_uapi::filesystem::is_mounted(path).unwrap_or(false) {
        return Err(BtrfsError::InUse {
            path: path.to_path_buf(),
            reason: "it is mounted".into(),
        });
    }
    // O_EXCL on a block device fails with EBUSY while anything in the kernel holds it
    // (a mounted filesystem, an md array, device-mapper, a btrfs pool).
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if is_block {
        opts.custom_flags(libc::O_EXCL);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            BtrfsError::InUse {
                path: path.to_path_buf(),
                reason: "the kernel holds it open exclusively".into(),
            }
        } else {
            io_err("open", e)
        }
    })?;
    let size = file.seek(SeekFrom::End(0)).map_err(|e| io_err("size", e))?;
    let size = size / SECTOR * SECTOR;
    if size < MIN_DEVICE_BYTES {
        return Err(BtrfsError::TooSmall {
            path: path.to_path_buf(),
            size,
            min: MIN_DEVICE_BYTES,
        });
    }
    Ok(Member {
        path: path.to_path_buf(),
        size,
    })
}

/// Zeroes `len` bytes at `offset`, clamped to the device.
fn zero_range(file: &mut File, offset: u64, len: u64, size: u64) -> io::Result<()> {
    if offset >= size {
        return Ok(());
    }
    let len = len.min(size - offset);
    let zeros = vec![0u8; 64 * 1024];
    file.seek(SeekFrom::Start(offset))?;
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Wipes what other tools would recognise: the first and last 2 MiB (partition tables,
/// filesystem superblocks, md/LVM/LUKS headers, ZFS labels, the backup GPT) and the btrfs
/// superblock mirror slots.
fn wipe(member: &Member) -> Result<(), BtrfsError> {
    let wrap = |source| BtrfsError::Io {
        action: "wipe",
        path: member.path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .open(&member.path)
        .map_err(wrap)?;
    zero_range(&mut file, 0, WIPE_BYTES, member.size).map_err(wrap)?;
    zero_range(
        &mut file,
        member.size.saturating_sub(WIPE_BYTES),
        WIPE_BYTES,
        member.size,
    )
    .map_err(wrap)?;
    for offset in MIRROR_OFFSETS {
        zero_range(&mut file, offset, SECTOR, member.size).map_err(wrap)?;
    }
    file.sync_all().map_err(wrap)
}

/// The object id of the root tree's directory (`BTRFS_ROOT_TREE_DIR_OBJECTID`).
const ROOT_TREE_DIR_OBJECTID: u64 = 6;
/// Offset of `root_dir_objectid` in the superblock.
const SB_ROOT_DIR: usize = 128;

/// Sets `root_dir_objectid` to 6 in every superblock copy of `member` that belongs to
/// `fsid`, re-checksumming it (crc32c), then syncs. See the module documentation.
fn fix_root_dir(member: &Member, fsid: &Uuid) -> Result<(), BtrfsError> {
    let wrap = |source| BtrfsError::Io {
        action: "fix the superblock of",
        path: member.path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&member.path)
        .map_err(wrap)?;
    let offsets = std::iter::once(super::probe::BTRFS_SUPER_OFFSET).chain(MIRROR_OFFSETS);
    for offset in offsets.filter(|&o| o + SECTOR <= member.size) {
        let mut sb = [0u8; 4096];
        file.seek(SeekFrom::Start(offset)).map_err(wrap)?;
        file.read_exact(&mut sb).map_err(wrap)?;
        if &sb[64..72] != b"_BHRfS_M" || sb[32..48] != fsid.as_bytes()[..] {
            continue;
        }
        let mut field = [0u8; 8];
        field.copy_from_slice(&sb[SB_ROOT_DIR..SB_ROOT_DIR + 8]);
        if u64::from_le_bytes(field) == ROOT_TREE_DIR_OBJECTID {
            continue;
        }
        sb[SB_ROOT_DIR..SB_ROOT_DIR + 8].copy_from_slice(&ROOT_TREE_DIR_OBJECTID.to_le_bytes());
        let crc = crc32c::crc32c(&sb[32..]);
        sb[..32].fill(0);
        sb[..4].copy_from_slice(&crc.to_le_bytes());
        file.seek(SeekFrom::Start(offset)).map_err(wrap)?;
        file.write_all(&sb).map_err(wrap)?;
        log::debug!(
            "set root_dir to 6 in the superblock at {offset} of {}",
            member.path.display()
        );
    }
    file.sync_all().map_err(wrap)
}

/// Validates a filesystem label: at most 255 bytes, no NUL, no control characters.
fn check_label(label: &str) -> Result<(), BtrfsError> {
    let reason = if label.len() > 255 {
        Some("longer than 255 bytes")
    } else if label.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BtrfsError::InvalidName {
            what: "label",
            value: label.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Formats `devices` (block devices or image files) as one btrfs filesystem with RAID1 data,
/// metadata and system chunks, crc32c checksums and btrfs-progs' default features
/// (no-holes, free-space tree, block-group tree, skinny metadata). Returns the new fsid.
///
/// Everything on the devices is destroyed: the caller decides, with [`super::probe`], whether
/// that is wanted. Mounted or busy block devices are refused. Quotas are not enabled here;
/// enable simple quotas right after the first mount ([`super::enable_simple_quotas`]), while
/// the pool is still empty, so that everything is accounted.
///
/// The system chunk is `single` on device 1 until the first convert balance: see the module
/// documentation.
///
/// Never blocks on the kernel's random pool (see the module documentation).
pub fn mkfs_raid1(devices: &[&Path], label: &str) -> Result<Uuid, BtrfsError> {
    check_label(label)?;
    let mut members: Vec<Member> = Vec::with_capacity(devices.len());
    let mut seen: Vec<PathBuf> = Vec::new();
    for &dev in devices {
        let canonical = std::fs::canonicalize(dev).map_err(|source| BtrfsError::Io {
            action: "find",
            path: dev.to_path_buf(),
            source,
        })?;
        if seen.contains(&canonical) {
            return Err(BtrfsError::DuplicateDevice {
                path: dev.to_path_buf(),
            });
        }
        seen.push(canonical);
        members.push(check_device(dev)?);
    }
    if members.len() < 2 {
        return Err(BtrfsError::NotEnoughDevices {
            given: members.len(),
        });
    }

    let entropy = EntropyState::current();
    if entropy == EntropyState::NotReady {
        warn!(
            "the kernel's random pool is not initialised yet: the new pool's UUIDs come from \
             the not-yet-seeded generator mixed with the clocks (unique, not secret); add a \
             hardware RNG (virtio-rng, RDRAND, a TPM) so that the system's keys are strong"
        );
    }

    for member in &members {
        wipe(member)?;
    }

    let fs_uuid = random_uuid();
    let cfg = MkfsConfig {
        nodesize: 16384,
        sectorsize: 4096,
        devices: members
            .iter()
            .zip(1u64..)
            .map(|(m, devid)| DeviceInfo {
                devid,
                path: m.path.clone(),
                total_bytes: m.size,
                dev_uuid: random_uuid(),
            })
            .collect(),
        label: (!label.is_empty()).then(|| label.to_string()),
        fs_uuid,
        chunk_tree_uuid: random_uuid(),
        incompat_flags: MkfsConfig::default_incompat_flags(),
        compat_ro_flags: MkfsConfig::default_compat_ro_flags(),
        data_profile: Profile::Raid1,
        metadata_profile: Profile::Raid1,
        csum_type: ChecksumType::Crc32,
        creation_time: None,
        quota: false,
        squota: false,
    };
    let names = members
        .iter()
        .map(|m| m.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    make_btrfs(&cfg).map_err(|e| BtrfsError::Mkfs {
        devices: names.clone(),
        message: format!("{e:#}"),
    })?;
    for member in &members {
        fix_root_dir(member, &fs_uuid)?;
    }
    info!("formatted {names} as btrfs RAID1 pool '{label}' (uuid {fs_uuid})");
    Ok(fs_uuid)
}

#[cfg(test)]
mod tests {
    use super::super::probe::{probe, Signature};
    use super::*;
    use std::process::Command;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tank-mkfs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sparse(path: &Path, size: u64) {
        File::create(path).unwrap().set_len(size).unwrap();
    }

    #[test]
    fn random_uuids_are_v4_and_distinct() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
        // Mixing the clocks keeps the version and variant bits.
        let mut bytes = *a.as_bytes();
        mix_clocks(&mut bytes);
        assert_eq!(
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .get_version_num(),
            4
        );
    }

    #[test]
    fn refuses_bad_input() {
        let dir = scratch("refuse");
        let a = dir.join("a.img");
        let small = dir.join("small.img");
        sparse(&a, 512 << 20);
        sparse(&small, 64 << 20);
        assert!(matches!(
            mkfs_raid1(&[&a], "tank"),
            Err(BtrfsError::NotEnoughDevices { given: 1 })
        ));
        assert!(matches!(
            mkfs_raid1(&[&a, &a], "tank"),
            Err(BtrfsError::DuplicateDevice { .. })
        ));
        let err = mkfs_raid1(&[&a, &small], "tank").unwrap_err();
        assert!(matches!(err, BtrfsError::TooSmall { .. }), "{err}");
        assert!(err.to_string().contains("small.img"), "{err}");
        assert!(matches!(
            mkfs_raid1(&[&a, &dir.join("missing.img")], "tank"),
            Err(BtrfsError::Io { .. })
        ));
        assert!(matches!(
            mkfs_raid1(&[&a, &small], "ta\nnk"),
            Err(BtrfsError::InvalidName { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Formats two sparse 512 MiB files, checks both with `btrfs check` and probes them.
    #[test]
    fn raid1_on_image_files_passes_btrfs_check() {
        let dir = scratch("raid1");
        let a = dir.join("a.img");
        let b = dir.join("b.img");
        sparse(&a, 512 << 20);
        sparse(&b, 512 << 20);
        // Leave an old ext4-looking superblock and a backup GPT header to be wiped.
        {
            let mut f = OpenOptions::new().write(true).open(&a).unwrap();
            f.seek(SeekFrom::Start(1080)).unwrap();
            f.write_all(&[0x53, 0xef]).unwrap();
            f.seek(SeekFrom::Start((512 << 20) - 512)).unwrap();
            f.write_all(b"EFI PART").unwrap();
        }
        assert_eq!(probe(&a).unwrap().len(), 2);

        let fsid = mkfs_raid1(&[&a, &b], "tank").unwrap();

        let members: Vec<_> = [&a, &b]
            .iter()
            .map(|p| match probe(p).unwrap().as_slice() {
                [Signature::Btrfs(m)] => m.clone(),
                other => panic!("{}: {other:?}", p.display()),
            })
            .collect();
        assert_eq!(members[0].fsid, fsid);
        assert_eq!(members[1].fsid, fsid);
        assert_eq!(members[0].devid, 1);
        assert_eq!(members[1].devid, 2);
        assert_ne!(members[0].dev_uuid, members[1].dev_uuid);
        for m in &members {
            assert_eq!(m.label, "tank");
            assert_eq!(m.num_devices, 2);
            assert_eq!(m.total_bytes, 1 << 30);
        }

        // Every superblock copy says root_dir 6 (see the module documentation).
        for img in [&a, &b] {
            let mut f = File::open(img).unwrap();
            for offset in [64 << 10, 64 << 20] {
                let mut sb = [0u8; 4096];
                f.seek(SeekFrom::Start(offset)).unwrap();
                f.read_exact(&mut sb).unwrap();
                if &sb[64..72] != b"_BHRfS_M" {
                    assert_ne!(offset, 64 << 10, "no primary superblock");
                    continue;
                }
                assert_eq!(sb[SB_ROOT_DIR], 6, "{} at {offset}", img.display());
                assert_eq!(
                    crc32c::crc32c(&sb[32..]).to_le_bytes(),
                    sb[..4],
                    "{} at {offset}",
                    img.display()
                );
            }
        }

        match Command::new("btrfs").arg("--version").output() {
            Ok(_) => {
                // `btrfs check` scans block devices for the other members, not image files,
                // so each image is checked alone: member 1 holds the single system chunk
                // (see the module documentation), so only it can be opened without its
                // peer. The loop-device test checks both members together.
                let out = Command::new("btrfs")
                    .args(["check", "--readonly"])
                    .arg(&a)
                    .output()
                    .unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(out.status.success(), "btrfs check {}:\n{text}", a.display());
                assert!(text.contains("no error found"), "{text}");
                for img in [&a, &b] {
                    let out = Command::new("btrfs")
                        .args(["inspect-internal", "dump-super"])
                        .arg(img)
                        .output()
                        .unwrap();
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(out.status.success(), "{text}");
                    assert!(text.contains(&fsid.to_string()), "{text}");
                    assert!(text.contains("num_devices\t\t2"), "{text}");
                }
            }
            Err(_) => tank_test_gate::missing(
                "`btrfs check` of the mkfs images",
                "btrfs is not installed",
                "btrfs-progs",
            ),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
