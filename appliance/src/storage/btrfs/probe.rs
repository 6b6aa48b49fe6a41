//! What is on a disk: partition tables, filesystem and RAID signatures, btrfs membership.
//!
//! [`probe`] reads a block device or an image file; [`probe_with`] is the pure core over a
//! byte-reading closure, so the detection is tested on hand-made byte images. The checks are
//! the magic numbers at their documented offsets (the same places `blkid` looks); a btrfs
//! superblock is parsed and its crc32c checked, so the engine can tell "member 2 of pool
//! 'tank'" from a stale or damaged superblock.
//!
//! This module only reads; wiping signatures is [`super::mkfs`]'s job.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

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

/// A signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// A DOS/MBR partition table with at least one partition.
    MbrPartitionTable,
    /// A protective MBR (partition type 0xEE) whose GPT header was not found.
    ProtectiveMbr,
    /// A GPT partition table; `primary` is false when only the backup header at the end of
    /// the disk survives.
    GptPartitionTable {
        /// Whether the primary header (LBA 1) was found.
        primary: bool,
    },
    /// An ext2, ext3 or ext4 filesystem.
    Ext {
        /// 2, 3 or 4.
        version: u8,
        /// The volume label, if any.
        label: Option<String>,
    },
    /// An XFS filesystem.
    Xfs,
    /// A FAT12/16/32 filesystem ("FAT12", "FAT16", "FAT32" or "FAT").
    Fat {
        /// The FAT type as written in the boot sector.
        kind: String,
    },
    /// An exFAT filesystem.
    ExFat,
    /// An NTFS filesystem.
    Ntfs,
    /// A Linux swap area.
    Swap,
    /// A LUKS encrypted volume.
    Luks {
        /// The LUKS version (1 or 2).
        version: u16,
    },
    /// An LVM2 physical volume.
    Lvm2,
    /// A Linux md RAID member.
    MdRaid {
        /// The superblock format ("0.90", "1.0", "1.1", "1.2").
        metadata: &'static str,
    },
    /// An ISO 9660 (CD/DVD) filesystem.
    Iso9660,
    /// A ZFS pool member (uberblock magic found; best effort).
    Zfs,
    /// A bcache backing or cache device.
    Bcache,
    /// A member of a btrfs filesystem with a valid superblock.
    Btrfs(BtrfsMember),
    /// A btrfs superblock magic with a checksum that does not match (damaged, or a
    /// half-written superblock).
    BtrfsDamaged {
        /// The fsid as read from the damaged superblock.
        fsid: Uuid,
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
                write!(f, "an ext{version} filesystem")?;
                if let Some(label) = label {
                    write!(f, " '{label}'")?;
                }
                Ok(())
            }
            Self::Xfs => write!(f, "an XFS filesystem"),
            Self::Fat { kind } => write!(f, "a {kind} filesystem"),
            Self::ExFat => write!(f, "an exFAT filesystem"),
            Self::Ntfs => write!(f, "an NTFS filesystem"),
            Self::Swap => write!(f, "a Linux swap area"),
            Self::Luks { version } => write!(f, "a LUKS{version} encrypted volume"),
            Self::Lvm2 => write!(f, "an LVM2 physical volume"),
            Self::MdRaid { metadata } => write!(f, "an md RAID member (metadata {metadata})"),
            Self::Iso9660 => write!(f, "an ISO 9660 filesystem"),
            Self::Zfs => write!(f, "a ZFS pool member"),
            Self::Bcache => write!(f, "a bcache device"),
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
        }
    }
}

/// Whether a probe found nothing: the disk may be formatted without destroying anything
/// this code knows about.
pub fn is_blank(sigs: &[Signature]) -> bool {
    sigs.is_empty()
}

/// Probes a block device or image file.
///
/// Reads at most a few hundred KiB from the start and a little from the end of the device.
pub fn probe(path: &Path) -> io::Result<Vec<Signature>> {
    let mut file = File::open(path)?;
    // `SEEK_END` gives the size of block devices as well as of regular files.
    let size = file.seek(SeekFrom::End(0))?;
    probe_with(size, |offset, buf| {
        file.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    })
}

/// The pure core of [`probe`]: `size` is the device size in bytes and `read_at(offset, buf)`
/// fills `buf` from `offset` and returns how many bytes it read (short at the end).
pub fn probe_with<F>(size: u64, mut read_at: F) -> io::Result<Vec<Signature>>
where
    F: FnMut(u64, &mut [u8]) -> io::Result<usize>,
{
    let mut dev = Reader {
        size,
        read_at: &mut read_at,
    };
    let mut sigs = Vec::new();

    let head = dev.read(0, 8192)?;
    let fs_at_zero = boot_sector_fs(&head);

    // Partition tables. A FAT/NTFS boot sector also ends in 0x55AA, so the MBR check only
    // runs when sector 0 is not a filesystem boot sector.
    let gpt_primary = &head[512..520] == b"EFI PART" || &head[4096..4104] == b"EFI PART";
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
    if &head[0..6] == b"LUKS\xba\xbe" {
        sigs.push(Signature::Luks {
            version: u16::from_be_bytes([head[6], head[7]]),
        });
    }
    // LVM2: the label may be in any of the first four sectors.
    for sector in 0..4 {
        let at = sector * 512;
        if &head[at..at + 8] == b"LABELONE" && &head[at + 24..at + 32] == b"LVM2 001" {
            sigs.push(Signature::Lvm2);
            break;
        }
    }
    if let Some(sig) = ext(&head) {
        sigs.push(sig);
    }
    // Swap: the signature ends the first page, whatever the page size was.
    for page in [4096u64, 8192, 16384, 65536] {
        let sig = dev.read(page - 10, 10)?;
        if sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE" {
            sigs.push(Signature::Swap);
            break;
        }
    }
    // md RAID: v1.1 at 0, v1.2 at 4 KiB, v1.0 near the end, v0.90 in the last 64 KiB-aligned
    // block. The magic is little-endian.
    const MD_MAGIC: u32 = 0xa92b_4efc;
    if le32(&head, 0) == MD_MAGIC {
        sigs.push(Signature::MdRaid { metadata: "1.1" });
    } else if le32(&head, 4096) == MD_MAGIC {
        sigs.push(Signature::MdRaid { metadata: "1.2" });
    } else if size >= 128 * 1024 {
        let v10 = ((size / 512).saturating_sub(16) & !7) * 512;
        let v090 = (size & !(65536 - 1)).saturating_sub(65536);
        if le32(&dev.read(v10, 4)?, 0) == MD_MAGIC {
            sigs.push(Signature::MdRaid { metadata: "1.0" });
        } else if le32(&dev.read(v090, 4)?, 0) == MD_MAGIC {
            sigs.push(Signature::MdRaid { metadata: "0.90" });
        }
    }
    // bcache: the superblock is at 4 KiB, its 16-byte magic at offset 24.
    const BCACHE_MAGIC: [u8; 16] = [
        0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d,
        0x81,
    ];
    if head[4096 + 24..4096 + 40] == BCACHE_MAGIC {
        sigs.push(Signature::Bcache);
    }
    if &dev.read(32769, 5)?[..] == b"CD001" {
        sigs.push(Signature::Iso9660);
    }
    if zfs(&mut dev)? {
        sigs.push(Signature::Zfs);
    }
    let sb = dev.read(BTRFS_SUPER_OFFSET, BTRFS_SUPER_SIZE)?;
    if let Some(sig) = btrfs_superblock(&sb) {
        sigs.push(sig);
    }
    Ok(sigs)
}

/// Where the primary btrfs superblock lives, and its size.
pub(crate) const BTRFS_SUPER_OFFSET: u64 = 64 * 1024;
const BTRFS_SUPER_SIZE: usize = 4096;

/// Reads ranges of a device, padding past its end with zeros.
struct Reader<'a, F> {
    size: u64,
    read_at: &'a mut F,
}

impl<F> Reader<'_, F>
where
    F: FnMut(u64, &mut [u8]) -> io::Result<usize>,
{
    fn read(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        if offset < self.size {
            let avail = usize::try_from(self.size - offset).unwrap_or(usize::MAX);
            let want = len.min(avail);
            let got = (self.read_at)(offset, &mut buf[..want])?;
            buf[got.min(want)..].fill(0);
        }
        Ok(buf)
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn uuid_at(b: &[u8], at: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(a)
}

/// A NUL-padded string field.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Filesystems whose boot sector is sector 0 (and which end it with 0x55AA).
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
    // FAT32 keeps its type string at 82, FAT12/16 at 54.
    for at in [82usize, 54] {
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
fn gpt_backup_header<F>(dev: &mut Reader<'_, F>) -> io::Result<bool>
where
    F: FnMut(u64, &mut [u8]) -> io::Result<usize>,
{
    for sector in [512u64, 4096] {
        if dev.size >= 2 * sector
            && dev.size.is_multiple_of(sector)
            && &dev.read(dev.size - sector, 8)?[..] == b"EFI PART"
        {
            return Ok(true);
        }
    }
    Ok(false)
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
    // What ext3 understands (as blkid decides): anything beyond it makes the filesystem ext4.
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

/// ZFS: each 256 KiB label holds an uberblock array from 128 KiB on; look for the uberblock
/// magic (either byte order) in labels 0 and 1, in 1 KiB steps.
fn zfs<F>(dev: &mut Reader<'_, F>) -> io::Result<bool>
where
    F: FnMut(u64, &mut [u8]) -> io::Result<usize>,
{
    const UB_MAGIC: u64 = 0x00ba_b10c;
    for label in [0u64, 256 * 1024] {
        let area = dev.read(label + 128 * 1024, 128 * 1024)?;
        for at in (0..area.len()).step_by(1024) {
            let v = le64(&area, at);
            if v == UB_MAGIC || v == UB_MAGIC.swap_bytes() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Parses a btrfs superblock (4096 bytes read at 64 KiB).
fn btrfs_superblock(sb: &[u8]) -> Option<Signature> {
    if sb.len() < BTRFS_SUPER_SIZE || &sb[64..72] != b"_BHRfS_M" {
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
        probe_with(img.len() as u64, |off, buf| {
            let off = off as usize;
            let n = buf.len().min(img.len().saturating_sub(off));
            buf[..n].copy_from_slice(&img[off..off + n]);
            Ok(n)
        })
        .unwrap()
    }

    fn image(size: usize) -> Vec<u8> {
        vec![0u8; size]
    }

    #[test]
    fn blank_image_is_blank() {
        let sigs = probe_bytes(&image(1 << 20));
        assert!(is_blank(&sigs), "{sigs:?}");
        // A tiny image (shorter than every offset) is blank too, not an error.
        assert!(is_blank(&probe_bytes(&image(100))));
    }

    #[test]
    fn dos_mbr() {
        let mut img = image(1 << 20);
        img[510] = 0x55;
        img[511] = 0xaa;
        img[446 + 4] = 0x83; // Linux partition
        assert_eq!(probe_bytes(&img), vec![Signature::MbrPartitionTable]);
        assert_eq!(
            Signature::MbrPartitionTable.to_string(),
            "an MBR partition table"
        );
        // 0x55AA with empty entries is not a partition table.
        img[446 + 4] = 0;
        assert!(is_blank(&probe_bytes(&img)));
    }

    #[test]
    fn gpt_primary_backup_and_protective() {
        let mut img = image(1 << 20);
        img[510] = 0x55;
        img[511] = 0xaa;
        img[446 + 4] = 0xee;
        assert_eq!(probe_bytes(&img), vec![Signature::ProtectiveMbr]);
        img[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(
            probe_bytes(&img),
            vec![Signature::GptPartitionTable { primary: true }]
        );
        assert_eq!(
            Signature::GptPartitionTable { primary: true }.to_string(),
            "a GPT partition table"
        );
        // 4K-sector GPT.
        let mut img4k = image(1 << 20);
        img4k[4096..4104].copy_from_slice(b"EFI PART");
        assert_eq!(
            probe_bytes(&img4k),
            vec![Signature::GptPartitionTable { primary: true }]
        );
        // Only the backup header left at the end.
        let mut tail = image(1 << 20);
        let n = tail.len();
        tail[n - 512..n - 504].copy_from_slice(b"EFI PART");
        assert_eq!(
            probe_bytes(&tail),
            vec![Signature::GptPartitionTable { primary: false }]
        );
    }

    #[test]
    fn ext_versions_and_label() {
        let mut img = image(1 << 20);
        img[1080] = 0x53;
        img[1081] = 0xef;
        assert_eq!(
            probe_bytes(&img),
            vec![Signature::Ext {
                version: 2,
                label: None
            }]
        );
        img[1024 + 92] = 0x04; // has_journal
        assert_eq!(
            probe_bytes(&img),
            vec![Signature::Ext {
                version: 3,
                label: None
            }]
        );
        img[1024 + 96] = 0x40; // extents
        img[1024 + 120..1024 + 124].copy_from_slice(b"data");
        let sigs = probe_bytes(&img);
        assert_eq!(
            sigs,
            vec![Signature::Ext {
                version: 4,
                label: Some("data".into())
            }]
        );
        assert_eq!(sigs[0].to_string(), "an ext4 filesystem 'data'");
    }

    #[test]
    fn magic_at_offsets() {
        let md = 0xa92b_4efcu32.to_le_bytes();
        let zfs = 0x00ba_b10cu64.to_le_bytes();
        let cases: Vec<(usize, &[u8], Signature)> = vec![
            (0, b"XFSB", Signature::Xfs),
            (3, b"NTFS    ", Signature::Ntfs),
            (3, b"EXFAT   ", Signature::ExFat),
            (4086, b"SWAPSPACE2", Signature::Swap),
            (65526, b"SWAP-SPACE", Signature::Swap),
            (0, b"LUKS\xba\xbe\x00\x02", Signature::Luks { version: 2 }),
            (32769, b"CD001", Signature::Iso9660),
            (4096, &md, Signature::MdRaid { metadata: "1.2" }),
            (0, &md, Signature::MdRaid { metadata: "1.1" }),
            (128 * 1024 + 3 * 1024, &zfs, Signature::Zfs),
            (
                4096 + 24,
                &[
                    0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48,
                    0xba, 0x6d, 0x81,
                ],
                Signature::Bcache,
            ),
        ];
        for (at, magic, want) in cases {
            let mut img = image(1 << 20);
            img[at..at + magic.len()].copy_from_slice(magic);
            assert_eq!(probe_bytes(&img), vec![want.clone()], "{want}");
        }
        // LVM2 label in sector 1.
        let mut img = image(1 << 20);
        img[512..520].copy_from_slice(b"LABELONE");
        img[536..544].copy_from_slice(b"LVM2 001");
        assert_eq!(probe_bytes(&img), vec![Signature::Lvm2]);
        // md 1.0 near the end.
        let mut img = image(1 << 20);
        let at = ((img.len() / 512 - 16) & !7) * 512;
        img[at..at + 4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
        assert_eq!(
            probe_bytes(&img),
            vec![Signature::MdRaid { metadata: "1.0" }]
        );
    }

    #[test]
    fn fat_boot_sector_is_not_an_mbr() {
        let mut img = image(1 << 20);
        img[510] = 0x55;
        img[511] = 0xaa;
        img[82..90].copy_from_slice(b"FAT32   ");
        // Boot code bytes where the partition entries would be.
        img[446..462].fill(0x41);
        let sigs = probe_bytes(&img);
        assert_eq!(
            sigs,
            vec![Signature::Fat {
                kind: "FAT32".into()
            }]
        );
        assert_eq!(sigs[0].to_string(), "a FAT32 filesystem");
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
                vec![Signature::Ext {
                    version: 4,
                    label: Some("home".into())
                }]
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
                matches!(sigs.as_slice(), [Signature::Fat { .. }]),
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
