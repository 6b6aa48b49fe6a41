//! The probe on sparse image files (one per signature, see [`crate::samples`]) and on
//! hand-made byte images.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::*;
use crate::samples::{self, SIZE};

/// A fresh temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tank-probe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn probe_bytes(img: &[u8]) -> Vec<Signature> {
    probe(&mut Cursor::new(img)).unwrap()
}

#[test]
fn every_sample_is_found_alone() {
    let dir = TempDir::new("samples");
    let all = samples::all();
    assert!(all.iter().any(|s| s.at_tail));
    for sample in &all {
        let path = dir.0.join(format!("{}.img", sample.name));
        sample.write_sparse(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE);
        assert_eq!(
            probe_path(&path).unwrap(),
            vec![sample.expect.clone()],
            "{}",
            sample.name
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn tail_samples_are_where_the_formats_put_them() {
    let all = samples::all();
    let at = |name: &str| {
        let s = all.iter().find(|s| s.name == name).unwrap();
        assert!(s.at_tail, "{name}");
        s.writes[0].0
    };
    // SIZE is 96 MiB + 68 KiB + 512.
    assert_eq!(at("gpt-backup"), SIZE - 512);
    assert_eq!(at("md-1.0"), (96 << 20) + (68 << 10) - 8192);
    assert_eq!(at("md-0.90"), 96 << 20);
    assert_eq!(
        at("zfs-tail"),
        (96 << 20) - (512 << 10) + (128 << 10) + 5 * 1024
    );
    assert_eq!(
        zfs_label_offsets(SIZE),
        [
            Some(0),
            Some(256 << 10),
            Some((96 << 20) - (512 << 10)),
            Some((96 << 20) - (256 << 10))
        ]
    );
}

/// A tail signature counts only at its own offset: the same bytes on a disk one 64 KiB block
/// larger are somewhere else.
#[test]
fn tail_signatures_move_with_the_size() {
    let dir = TempDir::new("moved");
    for name in ["gpt-backup", "md-1.0", "md-0.90", "zfs-tail"] {
        let sample = samples::all().into_iter().find(|s| s.name == name).unwrap();
        let path = dir.0.join(format!("{name}.img"));
        sample.write_sparse(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(SIZE + (512 << 10))
            .unwrap();
        assert_eq!(probe_path(&path).unwrap(), vec![], "{name}");
    }
}

#[test]
fn blank_short_and_empty_devices() {
    assert!(is_blank(&probe_bytes(&vec![0u8; 1 << 20])));
    assert!(is_blank(&probe_bytes(&[0u8; 100])));
    assert!(is_blank(&probe_bytes(&[])));
    let dir = TempDir::new("blank");
    let path = dir.0.join("blank.img");
    std::fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
    assert_eq!(probe_path(&path).unwrap(), vec![]);
}

#[test]
fn several_signatures_are_all_reported() {
    // A GPT disk (protective MBR, both headers) whose first partition area holds a stale
    // md 1.2 superblock, and an old md 0.90 superblock at the end.
    let size = 4 << 20;
    let mut img = vec![0u8; size];
    img[510] = 0x55;
    img[511] = 0xaa;
    img[446 + 4] = 0xee;
    img[512..520].copy_from_slice(b"EFI PART");
    img[size - 512..size - 504].copy_from_slice(b"EFI PART");
    img[4096..4100].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
    img[4100] = 1;
    let v090 = size - (64 << 10);
    img[v090..v090 + 4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
    assert_eq!(
        probe_bytes(&img),
        vec![
            Signature::GptPartitionTable { primary: true },
            Signature::MdRaid { metadata: "0.90" },
            Signature::MdRaid { metadata: "1.2" },
        ]
    );
}

#[test]
fn fat_boot_sector_is_not_an_mbr() {
    let mut img = vec![0u8; 1 << 20];
    img[510] = 0x55;
    img[511] = 0xaa;
    img[82..90].copy_from_slice(b"FAT32   ");
    // Boot code bytes where the partition entries would be.
    img[446..462].fill(0x41);
    assert_eq!(
        probe_bytes(&img),
        vec![Signature::Fat {
            kind: "FAT32".into()
        }]
    );
    // 0x55AA with empty entries is not a partition table.
    let mut img = vec![0u8; 1 << 20];
    img[510] = 0x55;
    img[511] = 0xaa;
    assert!(is_blank(&probe_bytes(&img)));
}

#[test]
fn ext_versions() {
    let mut img = vec![0u8; 1 << 20];
    img[1080] = 0x53;
    img[1081] = 0xef;
    let ext = |img: &[u8]| match probe_bytes(img).as_slice() {
        [Signature::Ext { version, .. }] => *version,
        other => panic!("{other:?}"),
    };
    assert_eq!(ext(&img), 2);
    img[1024 + 92] = 0x04; // has_journal
    assert_eq!(ext(&img), 3);
    img[1024 + 96] = 0x40; // extents
    assert_eq!(ext(&img), 4);
}

#[test]
fn md_needs_its_major_version() {
    // The magic with a major version that does not fit the place is not a superblock.
    let mut img = vec![0u8; 1 << 20];
    img[4096..4100].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
    img[4100] = 7;
    assert!(is_blank(&probe_bytes(&img)));
}

#[test]
fn descriptions() {
    let cases = [
        (
            Signature::GptPartitionTable { primary: false },
            "a backup GPT partition table (primary header gone)",
        ),
        (
            Signature::MdRaid { metadata: "1.0" },
            "an md RAID member (metadata 1.0)",
        ),
        (
            Signature::Zfs {
                labels: [false, false, true, true],
            },
            "a ZFS pool member (labels L2, L3)",
        ),
        (
            Signature::Ext {
                version: 4,
                label: Some("data".into()),
            },
            "an ext4 file system 'data'",
        ),
        (
            Signature::Btrfs {
                label: "tank".into(),
            },
            "a btrfs file system labelled 'tank'",
        ),
        (
            Signature::Btrfs {
                label: String::new(),
            },
            "a btrfs file system",
        ),
    ];
    for (sig, text) in cases {
        assert_eq!(sig.to_string(), text);
    }
}

/// A reader that hands out one byte per call, as a pipe-like device might.
struct Trickle(Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

impl Seek for Trickle {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}

#[test]
fn short_reads_and_random_bytes() {
    let mut img = vec![0u8; 128 << 10];
    img[65536 + 0x40..65536 + 0x48].copy_from_slice(BTRFS_MAGIC);
    img[65536 + 0x12b..65536 + 0x12f].copy_from_slice(b"pool");
    assert_eq!(
        probe(&mut Trickle(Cursor::new(img))).unwrap(),
        vec![Signature::Btrfs {
            label: "pool".into()
        }]
    );
    // Random input of any length never panics.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 511, 512, 4097, 70000, 300_000] {
        let _ = probe_bytes(&crate::samples::noise(&mut state, len));
    }
}
