//! What is on a disk: partition tables, filesystem and RAID signatures, btrfs membership.
//!
//! The signatures come from [`tank_probe`], the one probe the appliance and `cargo xtask
//! flash` share (head and tail of the device: md 0.90/1.0, ZFS L2/L3 and a backup GPT live
//! at the end). What this module adds is pool membership: a btrfs superblock is parsed and
//! its crc32c checked, so the engine can tell "member 2 of pool 'tank'" from a stale or
//! damaged superblock.
//!
//! This module only reads; wiping signatures is [`super::mkfs`]'s job.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use tank_probe::{c_string, le16, le32, le64};
use uuid::Uuid;

/// One btrfs superblock found on a device: which pool it belongs to and which member it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtrfsMember {
    /// The filesystem (pool) UUID shared by all members.
    pub fsid: Uuid,
    /// This member's own UUID.
    pub dev_uuid: Uuid,
    /// The filesystem label.
    pub label: String,
    /// This member's device id inside the pool (1, 2, ...).
    pub devid: u64,
    /// How many devices the pool had when this superblock was written.
    pub num_devices: u64,
    /// The transaction generation of this superblock; a member that missed writes has an
    /// older one than its peers.
    pub generation: u64,
    /// The whole filesystem's size in bytes (all members).
    pub total_bytes: u64,
}

/// A signature found on a device: a btrfs superblock parsed for pool assembly, or any other
/// signature [`tank_probe`] recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// A member of a btrfs filesystem with a valid superblock.
    Btrfs(BtrfsMember),
    /// A btrfs superblock magic with a checksum that does not match (damaged, or a
    /// half-written superblock).
    BtrfsDamaged {
        /// The fsid as read from the damaged superblock.
        fsid: Uuid,
    },
    /// A partition table, filesystem, RAID or volume signature other than btrfs.
    Other(tank_probe::Signature),
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Btrfs(m) => {
                write!(f, "member {} of btrfs pool ", m.devid)?;
                if m.label.is_empty() {
                    write!(f, "(no label)")?;
                } else {
                    write!(f, "'{}'", m.label)?;
                }
                write!(f, " (uuid {}, {} devices)", m.fsid, m.num_devices)
            }
            Self::BtrfsDamaged { fsid } => {
                write!(f, "a damaged btrfs superblock (uuid {fsid}, bad checksum)")
            }
            Self::Other(sig) => sig.fmt(f),
        }
    }
}

/// Whether a probe found nothing: the disk may be formatted without destroying anything
/// this code knows about.
pub fn is_blank(sigs: &[Signature]) -> bool {
    sigs.is_empty()
}

/// Probes a block device or image file: [`tank_probe::probe`] reads its head and tail, and
/// a btrfs superblock it finds is parsed and its checksum checked.
pub fn probe(path: &Path) -> io::Result<Vec<Signature>> {
    probe_device(&mut File::open(path)?)
}

/// [`probe`] over anything seekable (a device, an image file, bytes in memory).
pub fn probe_device<D: Read + Seek>(dev: &mut D) -> io::Result<Vec<Signature>> {
    let mut sigs = Vec::new();
    for sig in tank_probe::probe(dev)? {
        match sig {
            tank_probe::Signature::Btrfs { .. } => {
                // A superblock cut short by the end of the device reads as zeros past it,
                // and then fails its checksum.
                let mut sb = Vec::with_capacity(BTRFS_SUPER_SIZE);
                dev.seek(SeekFrom::Start(BTRFS_SUPER_OFFSET))?;
                dev.take(BTRFS_SUPER_SIZE as u64).read_to_end(&mut sb)?;
                sb.resize(BTRFS_SUPER_SIZE, 0);
                sigs.extend(btrfs_superblock(&sb));
            }
            other => sigs.push(Signature::Other(other)),
        }
    }
    Ok(sigs)
}

/// Where the primary btrfs superblock lives, and its size.
pub(crate) const BTRFS_SUPER_OFFSET: u64 = tank_probe::BTRFS_SUPER_OFFSET;
const BTRFS_SUPER_SIZE: usize = 4096;

fn uuid_at(b: &[u8], at: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(a)
}

/// Parses a btrfs superblock (4096 bytes read at 64 KiB).
fn btrfs_superblock(sb: &[u8]) -> Option<Signature> {
    if sb.len() < BTRFS_SUPER_SIZE || &sb[64..72] != tank_probe::BTRFS_MAGIC {
        return None;
    }
    let fsid = uuid_at(sb, 32);
    let csum_type = le16(sb, 196);
    // Only crc32c (type 0) is checked; the other algorithms (xxhash64, sha256, blake2) are
    // never written by this appliance and are taken on the magic alone.
    if csum_type == 0 {
        let want = le32(sb, 0);
        if crc32c::crc32c(&sb[32..BTRFS_SUPER_SIZE]) != want {
            return Some(Signature::BtrfsDamaged { fsid });
        }
    }
    // The device item is embedded at 201; the label follows it at 299.
    const DEV_ITEM: usize = 201;
    Some(Signature::Btrfs(BtrfsMember {
        fsid,
        dev_uuid: uuid_at(sb, DEV_ITEM + 66),
        label: c_string(&sb[299..299 + 256]),
        devid: le64(sb, DEV_ITEM),
        num_devices: le64(sb, 136),
        generation: le64(sb, 72),
        total_bytes: le64(sb, 112),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Probes an in-memory image.
    fn probe_bytes(img: &[u8]) -> Vec<Signature> {
        probe_device(&mut std::io::Cursor::new(img)).unwrap()
    }

    fn image(size: usize) -> Vec<u8> {
        vec![0u8; size]
    }

    #[test]
    fn other_signatures_come_from_the_shared_probe() {
        assert!(is_blank(&probe_bytes(&image(1 << 20))));
        assert!(is_blank(&probe_bytes(&image(100))));
        let mut img = image(1 << 20);
        let n = img.len();
        img[n - 512..n - 504].copy_from_slice(b"EFI PART");
        let sigs = probe_bytes(&img);
        assert_eq!(
            sigs,
            vec![Signature::Other(tank_probe::Signature::GptPartitionTable {
                primary: false
            })]
        );
        assert_eq!(
            sigs[0].to_string(),
            "a backup GPT partition table (primary header gone)"
        );
    }

    /// The appliance refuses to format every disk `cargo xtask flash` refuses to write, and
    /// names it the same way: both go through `tank_probe`.
    #[test]
    fn every_sample_disk_is_seen() {
        let dir = std::env::temp_dir().join(format!("tank-probe-samples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for sample in tank_probe::samples::all() {
            let path = dir.join(format!("{}.img", sample.name));
            sample.write_sparse(&path).unwrap();
            let sigs = probe(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(!is_blank(&sigs), "{}", sample.name);
            match (&sample.expect, sigs.as_slice()) {
                // The sample's superblock has the magic but no checksum.
                (tank_probe::Signature::Btrfs { .. }, [Signature::BtrfsDamaged { .. }]) => {}
                (want, [Signature::Other(got)]) => assert_eq!(got, want, "{}", sample.name),
                (_, other) => panic!("{}: {other:?}", sample.name),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes a minimal valid btrfs superblock at 64 KiB.
    fn btrfs_sb(img: &mut [u8], devid: u64, label: &str, fsid: Uuid) {
        let sb = &mut img[65536..65536 + 4096];
        sb[32..48].copy_from_slice(fsid.as_bytes());
        sb[64..72].copy_from_slice(b"_BHRfS_M");
        sb[72..80].copy_from_slice(&7u64.to_le_bytes());
        sb[112..120].copy_from_slice(&(1u64 << 30).to_le_bytes());
        sb[136..144].copy_from_slice(&2u64.to_le_bytes());
        sb[201..209].copy_from_slice(&devid.to_le_bytes());
        sb[201 + 66..201 + 82].copy_from_slice(&[0x11; 16]);
        sb[299..299 + label.len()].copy_from_slice(label.as_bytes());
        let crc = crc32c::crc32c(&sb[32..]);
        sb[0..4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn btrfs_member_and_damaged_superblock() {
        let fsid = Uuid::from_bytes([0xab; 16]);
        let mut img = image(1 << 20);
        btrfs_sb(&mut img, 2, "tank", fsid);
        let sigs = probe_bytes(&img);
        let want = BtrfsMember {
            fsid,
            dev_uuid: Uuid::from_bytes([0x11; 16]),
            label: "tank".into(),
            devid: 2,
            num_devices: 2,
            generation: 7,
            total_bytes: 1 << 30,
        };
        assert_eq!(sigs, vec![Signature::Btrfs(want)]);
        assert_eq!(
            sigs[0].to_string(),
            format!("member 2 of btrfs pool 'tank' (uuid {fsid}, 2 devices)")
        );
        // Flip one byte of the label: the checksum no longer matches.
        img[65536 + 300] ^= 1;
        assert_eq!(probe_bytes(&img), vec![Signature::BtrfsDamaged { fsid }]);
        // A superblock cut off by the end of the device is damaged too, not an error.
        img[65536 + 3000] = 0x5a;
        btrfs_sb(&mut img, 2, "tank", fsid);
        assert!(matches!(
            probe_bytes(&img).as_slice(),
            [Signature::Btrfs(_)]
        ));
        assert_eq!(
            probe_bytes(&img[..65536 + 1024]),
            vec![Signature::BtrfsDamaged { fsid }]
        );
    }

    /// Creates a sparse file of `size` bytes in a fresh temporary directory.
    fn sparse_file(name: &str, size: u64) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tank-probe-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let f = File::create(&path).unwrap();
        f.set_len(size).unwrap();
        path
    }

    fn tool(name: &str) -> bool {
        Command::new(name).arg("-V").output().is_ok()
    }

    #[test]
    fn real_ext4_and_vfat_images() {
        if tool("mkfs.ext4") {
            let path = sparse_file("ext4.img", 64 << 20);
            let out = Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "home"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                probe(&path).unwrap(),
                vec![Signature::Other(tank_probe::Signature::Ext {
                    version: 4,
                    label: Some("home".into())
                })]
            );
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        } else {
            tank_test_gate::missing(
                "the probe's ext4 image",
                "mkfs.ext4 is not installed",
                "e2fsprogs",
            );
        }
        if Command::new("mkfs.vfat").arg("--help").output().is_ok() {
            let path = sparse_file("vfat.img", 64 << 20);
            let out = Command::new("mkfs.vfat").arg(&path).output().unwrap();
            assert!(out.status.success(), "{out:?}");
            let sigs = probe(&path).unwrap();
            assert!(
                matches!(
                    sigs.as_slice(),
                    [Signature::Other(tank_probe::Signature::Fat { .. })]
                ),
                "{sigs:?}"
            );
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        } else {
            tank_test_gate::missing(
                "the probe's vfat image",
                "mkfs.vfat is not installed",
                "dosfstools",
            );
        }
        // No sgdisk image: sgdisk calls sync(2), which waits on every filesystem of the
        // host; the hand-made GPT images above cover the format.
    }
}
