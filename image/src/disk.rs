//! The flashable disk image: a GPT disk holding one EFI System Partition ([`crate::esp`]).
//!
//! ```text
//! LBA 0            protective MBR (one 0xEE partition over the disk)
//! LBA 1            primary GPT header
//! LBA 2-33         partition entries (128 x 128 bytes)
//! 1 MiB            EFI System Partition, FAT32, 128 MiB
//! 129 MiB          (free, 1 MiB less 33 sectors)
//! last 33 LBAs     backup partition entries and backup GPT header
//! ```
//! The partition table is written with the `gpt` crate. Its GUIDs are not random: the disk's
//! and the partition's are derived from a SHA-256 of the board, the version and every file on
//! the ESP, so the same inputs give the same bytes. The image is written sparse (runs of zero
//! blocks are left as holes).
//!
//! What does not live here: writing the image to a device (`cargo xtask flash`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::esp::{self, Window};

/// Sector size of the image.
pub const SECTOR: u64 = 512;
/// Where the ESP starts (1 MiB: aligned for every flash medium).
pub const ESP_START: u64 = 1 << 20;
/// Room after the ESP, for the backup GPT.
pub const TAIL: u64 = 1 << 20;
/// The whole image.
pub const IMAGE_SIZE: u64 = ESP_START + esp::ESP_SIZE + TAIL;
/// The ESP's GPT partition name.
pub const ESP_NAME: &str = "EFI System Partition";
/// GPT type GUID of an EFI System Partition.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// A failure to build or open a disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot write the EFI System Partition: {0}")]
    Fat(io::Error),
    #[error("cannot write the partition table: {0}")]
    Gpt(String),
    #[error("cannot write `{path}`: {source}; check that the output folder is writable")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot open `{path}` as a Tank disk image: {detail}")]
    Open { path: PathBuf, detail: String },
}

/// `tank-<version>-<board>.img`.
pub fn image_name(version: &str, board: &str) -> String {
    format!("tank-{version}-{board}.img")
}

/// A built disk image in memory.
pub struct DiskImage {
    pub bytes: Vec<u8>,
    pub disk_guid: uuid::Uuid,
    pub esp_guid: uuid::Uuid,
    pub esp_volume_id: u32,
}

/// A version-4-shaped UUID from the first 16 bytes of SHA-256(`seed`, `what`).
fn derived_guid(seed: &[u8], what: &str) -> uuid::Uuid {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update(what.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Builds the image for `board` and `version` with the ESP holding `files`.
pub fn build(
    board: &str,
    version: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<DiskImage, DiskError> {
    let mut seed = Sha256::new();
    seed.update(format!("tank disk image\0{board}\0{version}\0").as_bytes());
    for (path, data) in files {
        seed.update(path.as_bytes());
        seed.update([0]);
        seed.update(Sha256::digest(data));
    }
    let seed = seed.finalize();
    let disk_guid = derived_guid(&seed, "disk");
    let esp_guid = derived_guid(&seed, "esp");
    let esp_volume_id = u32::from_le_bytes([seed[16], seed[17], seed[18], seed[19]]);
    let fat = esp::format(files, esp_volume_id).map_err(DiskError::Fat)?;

    let gpt_err = |e: &dyn std::fmt::Display| DiskError::Gpt(e.to_string());
    let device = Cursor::new(vec![0u8; IMAGE_SIZE as usize]);
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(device, Some(disk_guid))
        .map_err(|e| gpt_err(&e))?;
    let first_lba = ESP_START / SECTOR;
    let mut parts = BTreeMap::new();
    parts.insert(
        1,
        gpt::partition::Partition {
            part_type_guid: gpt::partition_types::EFI,
            part_guid: esp_guid,
            first_lba,
            last_lba: first_lba + esp::ESP_SIZE / SECTOR - 1,
            flags: 0,
            name: ESP_NAME.to_owned(),
        },
    );
    disk.update_partitions(parts).map_err(|e| gpt_err(&e))?;
    let mut device = disk.write().map_err(|e| gpt_err(&e))?;
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size((IMAGE_SIZE / SECTOR - 1) as u32);
    mbr.overwrite_lba0(&mut device).map_err(|e| gpt_err(&e))?;
    let mut bytes = device.into_inner();
    bytes[ESP_START as usize..(ESP_START + esp::ESP_SIZE) as usize].copy_from_slice(&fat);
    Ok(DiskImage {
        bytes,
        disk_guid,
        esp_guid,
        esp_volume_id,
    })
}

/// Writes `bytes` to `path` (through a temporary file and a rename), leaving holes for
/// all-zero 64 KiB blocks.
pub fn write_sparse(path: &Path, bytes: &[u8]) -> Result<(), DiskError> {
    let tmp = path.with_extension("img.partial");
    let write = || -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::File::create(&tmp)?;
        f.set_len(bytes.len() as u64)?;
        const BLOCK: usize = 64 << 10;
        for (i, block) in bytes.chunks(BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                f.seek(SeekFrom::Start((i * BLOCK) as u64))?;
                f.write_all(block)?;
            }
        }
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| DiskError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The ESP's byte range (offset, length) in the image or device at `path`, from its GPT.
pub fn esp_range(path: &Path) -> Result<(u64, u64), DiskError> {
    let open = |detail: String| DiskError::Open {
        path: path.to_owned(),
        detail,
    };
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open(path)
        .map_err(|e| open(e.to_string()))?;
    let part = disk
        .partitions()
        .values()
        .find(|p| p.part_type_guid == gpt::partition_types::EFI)
        .ok_or_else(|| open("no EFI System Partition in its GPT".to_owned()))?;
    Ok((
        part.first_lba * SECTOR,
        (part.last_lba + 1 - part.first_lba) * SECTOR,
    ))
}

/// The ESP inside an image file, opened read-write with fixed timestamps, so a harness can
/// look at or change the boot entries between boots.
pub fn open_esp(path: &Path) -> Result<fatfs::FileSystem<Window<fs::File>>, DiskError> {
    let (offset, len) = esp_range(path)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| DiskError::Open {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    fatfs::FileSystem::new(Window::new(file, offset, len), esp::fs_options()).map_err(|e| {
        DiskError::Open {
            path: path.to_owned(),
            detail: format!("its ESP is not a FAT file system: {e}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// Checks one GPT header at `lba` and its entry array; returns the entries.
    fn check_header(img: &[u8], lba: u64, other: u64) -> Vec<u8> {
        let h = &img[(lba * SECTOR) as usize..(lba * SECTOR) as usize + 92];
        assert_eq!(&h[..8], b"EFI PART");
        assert_eq!(le32(h, 12), 92);
        let mut zeroed = h.to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(
            le32(h, 16),
            crc32fast::hash(&zeroed),
            "header CRC at LBA {lba}"
        );
        assert_eq!(le64(h, 24), lba);
        assert_eq!(le64(h, 32), other);
        let (entries_lba, count, size) = (le64(h, 72), le32(h, 80), le32(h, 84));
        assert_eq!(size, 128);
        let entries = &img[(entries_lba * SECTOR) as usize..][..(count * size) as usize];
        assert_eq!(
            le32(h, 88),
            crc32fast::hash(entries),
            "entries CRC at LBA {lba}"
        );
        entries.to_vec()
    }

    fn files() -> BTreeMap<String, Vec<u8>> {
        esp::contents(
            b"MZ-loader",
            b"kernel",
            b"initramfs",
            "console=ttyS0",
            "0.1.0",
        )
    }

    #[test]
    fn gpt_structure_and_reproducibility() {
        let a = build("qemu-x86_64", "0.1.0", &files()).unwrap();
        let b = build("qemu-x86_64", "0.1.0", &files()).unwrap();
        assert!(a.bytes == b.bytes, "two builds of the same inputs differ");
        assert_eq!(a.disk_guid, b.disk_guid);
        let c = build("pc-x86_64", "0.1.0", &files()).unwrap();
        assert_ne!(a.disk_guid, c.disk_guid, "the GUIDs come from the inputs");
        assert_ne!(a.esp_guid, c.esp_guid);

        let img = &a.bytes;
        assert_eq!(img.len() as u64, IMAGE_SIZE);
        // Protective MBR: one 0xEE partition from LBA 1, boot signature.
        assert_eq!(img[446 + 4], 0xee);
        assert_eq!(le32(img, 446 + 8), 1);
        assert_eq!(&img[510..512], &[0x55, 0xaa]);
        let last = IMAGE_SIZE / SECTOR - 1;
        let primary = check_header(img, 1, last);
        let backup = check_header(img, last, 1);
        assert_eq!(primary, backup);
        // Entry 1: the ESP type GUID (mixed-endian on disk), our partition GUID, the range.
        let e = &primary[..128];
        assert_eq!(
            &e[..16],
            &[
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        assert_eq!(&e[16..32], &a.esp_guid.to_bytes_le());
        assert_eq!(le64(e, 32), ESP_START / SECTOR);
        assert_eq!(le64(e, 40), (ESP_START + esp::ESP_SIZE) / SECTOR - 1);
        let name: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        assert_eq!(String::from_utf16(&name).unwrap(), ESP_NAME);
        assert!(primary[128..].iter().all(|&b| b == 0), "one partition only");
        assert_eq!(
            uuid::Uuid::parse_str(ESP_TYPE).unwrap().to_bytes_le(),
            e[..16]
        );
    }

    #[test]
    fn sparse_file_opens_and_edits() {
        let dir = std::env::temp_dir().join(format!("tank-disk-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.img");
        let image = build("qemu-x86_64", "0.1.0", &files()).unwrap();
        write_sparse(&path, &image.bytes).unwrap();
        assert_eq!(fs::read(&path).unwrap(), image.bytes);
        // Holes: far fewer blocks on disk than the file's length.
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(&path).unwrap();
        assert!(
            meta.blocks() * 512 < meta.len() / 4,
            "{} blocks",
            meta.blocks()
        );
        assert_eq!(esp_range(&path).unwrap(), (ESP_START, esp::ESP_SIZE));
        {
            let fs = open_esp(&path).unwrap();
            {
                let root = fs.root_dir();
                assert_eq!(esp::read_file(&root, "tank/b/vmlinuz").unwrap(), b"kernel");
                root.rename(
                    "loader/entries/tank-a+3.conf",
                    &root,
                    "loader/entries/tank-a.conf",
                )
                .unwrap();
            }
            fs.unmount().unwrap();
        }
        let fs = open_esp(&path).unwrap();
        assert_eq!(
            esp::entry_names(&fs.root_dir()).unwrap(),
            vec!["tank-a.conf".to_string(), "tank-b+3.conf".to_string()]
        );
        drop(fs);
        fs::remove_dir_all(&dir).unwrap();
    }
}
