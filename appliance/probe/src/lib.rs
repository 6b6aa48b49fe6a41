//! What a disk holds: the signatures of partition tables, file systems, RAID members and
//! volume managers, read from the head and the tail of a block device or an image file.
//!
//! [`probe`] takes anything that is `Read + Seek` (a `File` on a device or an image, a
//! `Cursor` over bytes); [`probe_path`] opens a path. Every signature found is reported, in a
//! fixed order. The checks are the magic numbers at the offsets the formats define (the same
//! places util-linux's `blkid` looks):
//!
//! ```text
//! head  0      MBR / protective MBR (0x55AA at 510), FAT / NTFS / exFAT boot sector,
//!              XFS "XFSB", LUKS "LUKS\xba\xbe", md 1.1
//!       512    primary GPT "EFI PART" (4096 with 4 KiB sectors), LVM2 label (sectors 0-3)
//!       1024   ext2/3/4 superblock (0xEF53 at +56)
//!       4096   md 1.2, bcache; swap at the end of the first page (4 to 64 KiB)
//!       8 KiB  ReiserFS 3.5;  16 KiB..4 MiB: LUKS2 secondary header "SKUL\xba\xbe"
//!       32769  ISO 9660 "CD001";  64 KiB: btrfs "_BHRfS_M" at +0x40, ReiserFS 3.6
//!       0, 256 KiB  ZFS labels L0, L1 (uberblock array from +128 KiB)
//! tail  last 512 KiB  ZFS labels L2, L3 (256 KiB-aligned)
//!       last 64 KiB-aligned 64 KiB  md 0.90;  4 KiB-aligned end - 8 KiB: md 1.0
//!       last LBA (512 or 4096)      backup GPT header
//! ```
//!
//! The probe only reads, at most a few MiB, and never fails on a short or odd-sized device:
//! what lies past the end reads as zeros. It recognises signatures; it does not validate
//! whole structures (a btrfs superblock's checksum and members are the pool code's concern).
//! Both the appliance (before formatting a disk) and `cargo xtask flash` (before writing a
//! boot device) decide with it, so they say the same thing about a disk.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// A signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// A DOS/MBR partition table with at least one partition.
    MbrPartitionTable,
    /// A protective MBR (partition type 0xEE) with no GPT header found.
    ProtectiveMbr,
    /// A GPT partition table; `primary` is false when only the backup header in the last
    /// LBA survives.
    GptPartitionTable {
        /// Whether the primary header (LBA 1) was found.
        primary: bool,
    },
    /// An ext2, ext3 or ext4 file system.
    Ext {
        /// 2, 3 or 4.
        version: u8,
        /// The volume label, if any.
        label: Option<String>,
    },
    /// An XFS file system.
    Xfs,
    /// A FAT12/16/32 file system.
    Fat {
        /// The FAT type as the boot sector writes it ("FAT12", "FAT16", "FAT32" or "FAT").
        kind: String,
    },
    /// An exFAT file system.
    ExFat,
    /// An NTFS file system.
    Ntfs,
    /// A Linux swap area.
    Swap,
    /// A LUKS encrypted volume.
    Luks {
        /// The LUKS version (1 or 2).
        version: u16,
        /// Whether the primary header was found (false: only a LUKS2 secondary header).
        primary: bool,
    },
    /// An LVM2 physical volume.
    Lvm2,
    /// A Linux md RAID member.
    MdRaid {
        /// The superblock format: "0.90", "1.0", "1.1" or "1.2".
        metadata: &'static str,
    },
    /// An ISO 9660 (CD/DVD) file system.
    Iso9660,
    /// A ZFS pool member.
    Zfs {
        /// Which of the four labels hold an uberblock (L0, L1 at the head; L2, L3 at the tail).
        labels: [bool; 4],
    },
    /// A bcache backing or cache device.
    Bcache,
    /// A ReiserFS (3.x) file system.
    ReiserFs,
    /// A btrfs superblock (magic found at 64 KiB; its checksum is not checked here).
    Btrfs {
        /// The file system label.
        label: String,
    },
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MbrPartitionTable => write!(f, "an MBR partition table"),
            Self::ProtectiveMbr => write!(f, "a protective MBR (GPT disk with a damaged header)"),
            Self::GptPartitionTable { primary: true } => write!(f, "a GPT partition table"),
            Self::GptPartitionTable { primary: false } => {
                write!(f, "a backup GPT partition table (primary header gone)")
            }
            Self::Ext { version, label } => {
                write!(f, "an ext{version} file system")?;
                if let Some(label) = label {
                    write!(f, " '{label}'")?;
                }
                Ok(())
            }
            Self::Xfs => write!(f, "an XFS file system"),
            Self::Fat { kind } => write!(f, "a {kind} file system"),
            Self::ExFat => write!(f, "an exFAT file system"),
            Self::Ntfs => write!(f, "an NTFS file system"),
            Self::Swap => write!(f, "a Linux swap area"),
            Self::Luks {
                version,
                primary: true,
            } => write!(f, "a LUKS{version} encrypted volume"),
            Self::Luks { primary: false, .. } => {
                write!(f, "a LUKS2 encrypted volume (secondary header only)")
            }
            Self::Lvm2 => write!(f, "an LVM2 physical volume"),
            Self::MdRaid { metadata } => write!(f, "an md RAID member (metadata {metadata})"),
            Self::Iso9660 => write!(f, "an ISO 9660 file system"),
            Self::Zfs { labels } => {
                let names: Vec<String> = (0..4)
                    .filter(|&i| labels[i])
                    .map(|i| format!("L{i}"))
                    .collect();
                write!(f, "a ZFS pool member (labels {})", names.join(", "))
            }
            Self::Bcache => write!(f, "a bcache device"),
            Self::ReiserFs => write!(f, "a ReiserFS file system"),
            Self::Btrfs { label } if label.is_empty() => write!(f, "a btrfs file system"),
            Self::Btrfs { label } => write!(f, "a btrfs file system labelled '{label}'"),
        }
    }
}

/// Whether a probe found nothing: the disk may be written without destroying anything this
/// probe knows about.
pub fn is_blank(sigs: &[Signature]) -> bool {
    sigs.is_empty()
}

/// Probes a block device or image file by path.
pub fn probe_path(path: &Path) -> io::Result<Vec<Signature>> {
    probe(&mut File::open(path)?)
}

/// Probes `dev`: its size is where `SeekFrom::End(0)` lands (which gives the size of block
/// devices as well as of regular files).
pub fn probe<D: Read + Seek>(dev: &mut D) -> io::Result<Vec<Signature>> {
    let size = dev.seek(SeekFrom::End(0))?;
    let mut dev = Reader { dev, size };
    let mut sigs = Vec::new();

    let head = dev.read(0, 8192)?;
    let fs_at_zero = boot_sector_fs(&head);

    // Partition tables. A FAT/NTFS boot sector also ends in 0x55AA, so the MBR check only
    // runs when sector 0 is not a file system boot sector.
    let gpt_primary = &head[512..520] == GPT_MAGIC || &head[4096..4104] == GPT_MAGIC;
    let gpt_backup = !gpt_primary && gpt_backup_header(&mut dev)?;
    if gpt_primary || gpt_backup {
        sigs.push(Signature::GptPartitionTable {
            primary: gpt_primary,
        });
    } else if fs_at_zero.is_none() {
        match mbr(&head) {
            Mbr::None => {}
            Mbr::Dos => sigs.push(Signature::MbrPartitionTable),
            Mbr::Protective => sigs.push(Signature::ProtectiveMbr),
        }
    }
    if let Some(sig) = fs_at_zero {
        sigs.push(sig);
    }
    if &head[0..4] == b"XFSB" {
        sigs.push(Signature::Xfs);
    }
    if let Some(sig) = luks(&mut dev, &head)? {
        sigs.push(sig);
    }
    // LVM2: the label may be in any of the first four sectors.
    if (0..4).any(|s| {
        let at = s * 512;
        &head[at..at + 8] == b"LABELONE" && &head[at + 24..at + 32] == b"LVM2 001"
    }) {
        sigs.push(Signature::Lvm2);
    }
    if let Some(sig) = ext(&head) {
        sigs.push(sig);
    }
    // Swap: the signature ends the first page, whatever the page size was.
    for page in [4096u64, 8192, 16384, 32768, 65536] {
        let sig = dev.read(page - 10, 10)?;
        if sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE" {
            sigs.push(Signature::Swap);
            break;
        }
    }
    for metadata in md_raid(&mut dev, &head)? {
        sigs.push(Signature::MdRaid { metadata });
    }
    // bcache: the superblock is at 4 KiB, its 16-byte magic at offset 24.
    if head[4096 + 24..4096 + 40] == BCACHE_MAGIC {
        sigs.push(Signature::Bcache);
    }
    if &dev.read(32769, 5)?[..] == b"CD001" {
        sigs.push(Signature::Iso9660);
    }
    // ReiserFS 3.5 at 8 KiB, 3.6 (and later 3.x) at 64 KiB; the magic is at +0x34.
    let reiser_old = dev.read(8192 + 0x34, 8)?;
    let reiser_new = dev.read(65536 + 0x34, 9)?;
    if reiser_old == b"ReIsErFs"
        || reiser_new.starts_with(b"ReIsErFs")
        || reiser_new == b"ReIsEr2Fs"
        || reiser_new == b"ReIsEr3Fs"
    {
        sigs.push(Signature::ReiserFs);
    }
    if let Some(sig) = zfs(&mut dev)? {
        sigs.push(sig);
    }
    let sb = dev.read(BTRFS_SUPER_OFFSET, 0x12b + 256)?;
    if &sb[0x40..0x48] == BTRFS_MAGIC {
        sigs.push(Signature::Btrfs {
            label: c_string(&sb[0x12b..]),
        });
    }
    Ok(sigs)
}

/// Where the primary btrfs superblock lives.
pub const BTRFS_SUPER_OFFSET: u64 = 64 * 1024;
/// The btrfs superblock magic, at offset 0x40 of the superblock.
pub const BTRFS_MAGIC: &[u8; 8] = b"_BHRfS_M";
/// The GPT header signature.
const GPT_MAGIC: &[u8; 8] = b"EFI PART";
/// The md superblock magic (stored little-endian; 0.90 may also be big-endian).
const MD_MAGIC: u32 = 0xa92b_4efc;
/// The ZFS uberblock magic ("oo-ba-bloc").
const ZFS_UBERBLOCK_MAGIC: u64 = 0x00ba_b10c;
/// The size of one ZFS label; four of them, two at each end.
const ZFS_LABEL_SIZE: u64 = 256 * 1024;
const BCACHE_MAGIC: [u8; 16] = [
    0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81,
];

/// Reads ranges of a device, padding past its end with zeros.
struct Reader<'a, D> {
    dev: &'a mut D,
    size: u64,
}

impl<D: Read + Seek> Reader<'_, D> {
    fn read(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        if offset >= self.size {
            return Ok(buf);
        }
        let want = usize::try_from(self.size - offset).map_or(len, |avail| len.min(avail));
        self.dev.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < want {
            match self.dev.read(&mut buf[filled..want]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf)
    }
}

/// Little-endian fields of on-disk structures (the appliance's btrfs superblock parser reads
/// with these too).
pub fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A NUL-padded string field.
pub fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// File systems whose boot sector is sector 0 (and which end it with 0x55AA).
fn boot_sector_fs(head: &[u8]) -> Option<Signature> {
    if &head[3..11] == b"NTFS    " {
        return Some(Signature::Ntfs);
    }
    if &head[3..11] == b"EXFAT   " {
        return Some(Signature::ExFat);
    }
    if head[510..512] != [0x55, 0xaa] {
        return None;
    }
    // FAT32 keeps its type string at 0x52, FAT12/16 at 0x36.
    for at in [0x52usize, 0x36] {
        if &head[at..at + 3] == b"FAT" {
            let kind = c_string(&head[at..at + 8]).trim_end().to_string();
            return Some(Signature::Fat { kind });
        }
    }
    None
}

enum Mbr {
    None,
    Dos,
    Protective,
}

/// A DOS partition table: 0x55AA, four 16-byte entries from 446, each with a boot flag of
/// 0x00 or 0x80, at least one with a non-zero type.
fn mbr(head: &[u8]) -> Mbr {
    if head[510..512] != [0x55, 0xaa] {
        return Mbr::None;
    }
    let entries: Vec<&[u8]> = (0..4).map(|i| &head[446 + i * 16..462 + i * 16]).collect();
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80) {
        return Mbr::None;
    }
    let used: Vec<u8> = entries.iter().map(|e| e[4]).filter(|&t| t != 0).collect();
    if used.is_empty() {
        Mbr::None
    } else if used.contains(&0xee) {
        Mbr::Protective
    } else {
        Mbr::Dos
    }
}

/// The backup GPT header lives in the last LBA (512- or 4096-byte sectors).
fn gpt_backup_header<D: Read + Seek>(dev: &mut Reader<'_, D>) -> io::Result<bool> {
    for sector in [512u64, 4096] {
        if dev.size >= 2 * sector
            && dev.size.is_multiple_of(sector)
            && &dev.read(dev.size - sector, 8)?[..] == GPT_MAGIC
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// LUKS: the primary header at 0 ("LUKS\xba\xbe", then the big-endian version); LUKS2 keeps
/// a secondary header ("SKUL\xba\xbe") at one of nine offsets from 16 KiB to 4 MiB.
fn luks<D: Read + Seek>(dev: &mut Reader<'_, D>, head: &[u8]) -> io::Result<Option<Signature>> {
    if &head[0..6] == b"LUKS\xba\xbe" {
        return Ok(Some(Signature::Luks {
            version: u16::from_be_bytes([head[6], head[7]]),
            primary: true,
        }));
    }
    for at in [
        0x4000u64, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
    ] {
        let hdr = dev.read(at, 8)?;
        if &hdr[0..6] == b"SKUL\xba\xbe" && hdr[6..8] == [0, 2] {
            return Ok(Some(Signature::Luks {
                version: 2,
                primary: false,
            }));
        }
    }
    Ok(None)
}

/// ext2/3/4: the superblock is at 1024, its magic 0xEF53 at 1024 + 56.
fn ext(head: &[u8]) -> Option<Signature> {
    const SB: usize = 1024;
    if le16(head, SB + 56) != 0xef53 {
        return None;
    }
    let compat = le32(head, SB + 92);
    let incompat = le32(head, SB + 96);
    let ro_compat = le32(head, SB + 100);
    // What ext3 understands (as blkid decides): anything beyond it makes the file system ext4.
    const EXT3_INCOMPAT_SUPP: u32 = 0x0002 | 0x0004 | 0x0010; // filetype, recover, meta_bg
    const EXT3_RO_COMPAT_SUPP: u32 = 0x0001 | 0x0002 | 0x0004; // sparse_super, large_file, btree_dir
    const HAS_JOURNAL: u32 = 0x0004;
    let version = if incompat & !EXT3_INCOMPAT_SUPP != 0 || ro_compat & !EXT3_RO_COMPAT_SUPP != 0 {
        4
    } else if compat & HAS_JOURNAL != 0 {
        3
    } else {
        2
    };
    let label = c_string(&head[SB + 120..SB + 136]);
    Some(Signature::Ext {
        version,
        label: (!label.is_empty()).then_some(label),
    })
}

/// Where the md superblocks live on a device of `size` bytes: 0.90 in the last 64 KiB-aligned
/// 64 KiB block, 1.0 8 KiB before the 4 KiB-aligned end, 1.1 at 0, 1.2 at 4 KiB.
pub fn md_offsets(size: u64) -> [(&'static str, Option<u64>); 4] {
    const RESERVED: u64 = 64 * 1024;
    let big = size > RESERVED;
    [
        ("0.90", big.then(|| (size & !(RESERVED - 1)) - RESERVED)),
        ("1.0", big.then(|| (size & !(4096 - 1)) - 8192)),
        ("1.1", Some(0)),
        ("1.2", Some(4096)),
    ]
}

/// md RAID: the magic, then the major version (0 for 0.90, 1 for the 1.x formats), in the
/// byte order of the magic (1.x is always little-endian). Every format found is reported (a
/// disk re-created with another format may keep the old superblock).
fn md_raid<D: Read + Seek>(dev: &mut Reader<'_, D>, head: &[u8]) -> io::Result<Vec<&'static str>> {
    let mut found = Vec::new();
    for (metadata, at) in md_offsets(dev.size) {
        let Some(at) = at else { continue };
        let sb = match usize::try_from(at) {
            Ok(at) if at + 8 <= head.len() => head[at..at + 8].to_vec(),
            _ => dev.read(at, 8)?,
        };
        let (magic, major) = (le32(&sb, 0), le32(&sb, 4));
        let valid = if metadata == "0.90" {
            (magic == MD_MAGIC && major == 0)
                || (magic == MD_MAGIC.swap_bytes() && major.swap_bytes() == 0)
        } else {
            magic == MD_MAGIC && major == 1
        };
        if valid && !found.contains(&metadata) {
            found.push(metadata);
        }
    }
    Ok(found)
}

/// Where the four ZFS labels start on a device of `size` bytes: L0 and L1 at 0 and 256 KiB,
/// L2 and L3 in the last 512 KiB of the 256 KiB-aligned size.
pub fn zfs_label_offsets(size: u64) -> [Option<u64>; 4] {
    let end = size - size % ZFS_LABEL_SIZE;
    let tail = |i: u64| end.checked_sub(i * ZFS_LABEL_SIZE);
    [Some(0), Some(ZFS_LABEL_SIZE), tail(2), tail(1)]
}

/// ZFS: each 256 KiB label holds an uberblock array in its second half; an uberblock starts
/// with its magic (in the writer's byte order) and uberblocks are at least 1 KiB apart.
fn zfs<D: Read + Seek>(dev: &mut Reader<'_, D>) -> io::Result<Option<Signature>> {
    let mut labels = [false; 4];
    for (i, at) in zfs_label_offsets(dev.size).into_iter().enumerate() {
        let Some(at) = at else { continue };
        let area = dev.read(at + ZFS_LABEL_SIZE / 2, (ZFS_LABEL_SIZE / 2) as usize)?;
        labels[i] = (0..area.len()).step_by(1024).any(|at| {
            let v = le64(&area, at);
            v == ZFS_UBERBLOCK_MAGIC || v == ZFS_UBERBLOCK_MAGIC.swap_bytes()
        });
    }
    Ok(labels
        .iter()
        .any(|&l| l)
        .then_some(Signature::Zfs { labels }))
}

#[cfg(any(test, feature = "samples"))]
pub mod samples;

#[cfg(test)]
mod tests;
