//! Synthetic disks, one per signature: a size and the few bytes that make the signature, at
//! the head or the tail of an otherwise blank disk, written as sparse image files.
//!
//! The size ([`SIZE`]) is aligned to neither 4 KiB, 64 KiB nor 256 KiB, so the tail
//! signatures (md 0.90 and 1.0, ZFS L2/L3) are placed by their alignment rules, not at
//! round offsets; the backup GPT needs a whole number of sectors, so the size is a multiple
//! of 512. Built with the `samples` feature (and in this crate's own tests).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{md_offsets, zfs_label_offsets, Signature, BTRFS_MAGIC, BTRFS_SUPER_OFFSET};

/// The size of every sample disk: 96 MiB + 68 KiB + 512 bytes.
pub const SIZE: u64 = (96 << 20) + (68 << 10) + 512;

/// One synthetic disk.
#[derive(Debug, Clone)]
pub struct Sample {
    /// A short name, usable as a file name.
    pub name: &'static str,
    /// Whether the signature sits at the tail of the disk (past the first MiB).
    pub at_tail: bool,
    /// The bytes to write, at their offsets.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// What the probe must report, alone.
    pub expect: Signature,
}

impl Sample {
    /// Writes the sample as a sparse file of [`SIZE`] bytes at `path`.
    pub fn write_sparse(&self, path: &Path) -> io::Result<()> {
        let mut f = File::create(path)?;
        f.set_len(SIZE)?;
        for (at, bytes) in &self.writes {
            f.seek(SeekFrom::Start(*at))?;
            f.write_all(bytes)?;
        }
        f.sync_all()
    }
}

fn md_at(metadata: &str) -> u64 {
    md_offsets(SIZE)
        .into_iter()
        .find(|(m, _)| *m == metadata)
        .and_then(|(_, at)| at)
        .unwrap_or(0)
}

/// The first 8 bytes of an md superblock: magic and major version, little-endian.
fn md_v1() -> Vec<u8> {
    [0xa92b_4efcu32.to_le_bytes(), 1u32.to_le_bytes()].concat()
}

/// An uberblock's magic, little-endian, at `slot` (1 KiB slots) of label `label`'s array.
fn zfs_uberblock(label: usize, slot: u64) -> (u64, Vec<u8>) {
    let at = zfs_label_offsets(SIZE)[label].unwrap_or(0) + 128 * 1024 + slot * 1024;
    (at, 0x00ba_b10cu64.to_le_bytes().to_vec())
}

fn one(name: &'static str, at: u64, bytes: &[u8], expect: Signature) -> Sample {
    Sample {
        name,
        at_tail: at >= 1 << 20,
        writes: vec![(at, bytes.to_vec())],
        expect,
    }
}

/// Noise for the probes' never-panic tests: `len` bytes from a xorshift generator seeded by
/// `state` (which it advances).
pub fn noise(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

/// Every sample: each signature the probe knows, alone on a blank disk.
pub fn all() -> Vec<Sample> {
    let boot_sig = (510u64, vec![0x55, 0xaa]);
    let mut ext4 = vec![0u8; 1024];
    ext4[56..58].copy_from_slice(&0xef53u16.to_le_bytes());
    ext4[96] = 0x40; // incompat: extents
    ext4[120..124].copy_from_slice(b"home");
    let mut btrfs = vec![0u8; 0x12b + 4];
    btrfs[0x40..0x48].copy_from_slice(BTRFS_MAGIC);
    btrfs[0x12b..].copy_from_slice(b"tank");
    let mut lvm = vec![0u8; 32];
    lvm[0..8].copy_from_slice(b"LABELONE");
    lvm[24..32].copy_from_slice(b"LVM2 001");
    vec![
        Sample {
            name: "mbr",
            at_tail: false,
            writes: vec![boot_sig.clone(), (446 + 4, vec![0x83])],
            expect: Signature::MbrPartitionTable,
        },
        Sample {
            name: "protective-mbr",
            at_tail: false,
            writes: vec![boot_sig.clone(), (446 + 4, vec![0xee])],
            expect: Signature::ProtectiveMbr,
        },
        one(
            "gpt",
            512,
            b"EFI PART",
            Signature::GptPartitionTable { primary: true },
        ),
        one(
            "gpt-4k",
            4096,
            b"EFI PART",
            Signature::GptPartitionTable { primary: true },
        ),
        one(
            "gpt-backup",
            SIZE - 512,
            b"EFI PART",
            Signature::GptPartitionTable { primary: false },
        ),
        one(
            "ext4",
            1024,
            &ext4,
            Signature::Ext {
                version: 4,
                label: Some("home".into()),
            },
        ),
        one("xfs", 0, b"XFSB", Signature::Xfs),
        Sample {
            name: "fat32",
            at_tail: false,
            writes: vec![boot_sig.clone(), (0x52, b"FAT32   ".to_vec())],
            expect: Signature::Fat {
                kind: "FAT32".into(),
            },
        },
        Sample {
            name: "fat16",
            at_tail: false,
            writes: vec![boot_sig, (0x36, b"FAT16   ".to_vec())],
            expect: Signature::Fat {
                kind: "FAT16".into(),
            },
        },
        one("exfat", 3, b"EXFAT   ", Signature::ExFat),
        one("ntfs", 3, b"NTFS    ", Signature::Ntfs),
        one("swap", 4096 - 10, b"SWAPSPACE2", Signature::Swap),
        one("swap-64k", 65536 - 10, b"SWAP-SPACE", Signature::Swap),
        one(
            "luks1",
            0,
            b"LUKS\xba\xbe\x00\x01",
            Signature::Luks {
                version: 1,
                primary: true,
            },
        ),
        one(
            "luks2-secondary",
            0x4000,
            b"SKUL\xba\xbe\x00\x02",
            Signature::Luks {
                version: 2,
                primary: false,
            },
        ),
        one("lvm2", 512, &lvm, Signature::Lvm2),
        one(
            "md-1.1",
            md_at("1.1"),
            &md_v1(),
            Signature::MdRaid { metadata: "1.1" },
        ),
        one(
            "md-1.2",
            md_at("1.2"),
            &md_v1(),
            Signature::MdRaid { metadata: "1.2" },
        ),
        one(
            "md-1.0",
            md_at("1.0"),
            &md_v1(),
            Signature::MdRaid { metadata: "1.0" },
        ),
        one(
            "md-0.90",
            md_at("0.90"),
            &[0xa92b_4efcu32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
            Signature::MdRaid { metadata: "0.90" },
        ),
        one(
            "md-0.90-be",
            md_at("0.90"),
            &[0xa92b_4efcu32.to_be_bytes(), 0u32.to_be_bytes()].concat(),
            Signature::MdRaid { metadata: "0.90" },
        ),
        one("iso9660", 32769, b"CD001", Signature::Iso9660),
        Sample {
            name: "zfs-head",
            at_tail: false,
            writes: vec![zfs_uberblock(0, 3), zfs_uberblock(1, 3)],
            expect: Signature::Zfs {
                labels: [true, true, false, false],
            },
        },
        Sample {
            name: "zfs-tail",
            at_tail: true,
            writes: vec![zfs_uberblock(2, 5), zfs_uberblock(3, 127)],
            expect: Signature::Zfs {
                labels: [false, false, true, true],
            },
        },
        one(
            "bcache",
            4096 + 24,
            &[
                0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba,
                0x6d, 0x81,
            ],
            Signature::Bcache,
        ),
        one("reiserfs", 65536 + 0x34, b"ReIsEr2Fs", Signature::ReiserFs),
        one(
            "reiserfs-3.5",
            8192 + 0x34,
            b"ReIsErFs",
            Signature::ReiserFs,
        ),
        one(
            "btrfs",
            BTRFS_SUPER_OFFSET,
            &btrfs,
            Signature::Btrfs {
                label: "tank".into(),
            },
        ),
    ]
}
