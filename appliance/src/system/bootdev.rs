//! Which disk the appliance booted from, so it is never offered for a pool.
//!
//! UEFI boot loaders following the Boot Loader Interface (systemd-boot among them) leave the
//! unique partition GUID of the partition they were loaded from in the EFI variable
//! `LoaderDevicePartUUID`. The disk whose GPT holds that partition is the boot device. When
//! the kernel was started another way (QEMU's `-kernel`, a legacy BIOS), there is no variable
//! and no boot disk to leave out.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const LOADER_DEVICE_PART_UUID: &str =
    "/sys/firmware/efi/efivars/LoaderDevicePartUUID-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// The kernel name of the boot disk, if the boot loader told which it is.
pub fn boot_disk(disks: &[String]) -> Option<String> {
    mount_efivarfs();
    let raw = std::fs::read(LOADER_DEVICE_PART_UUID).ok()?;
    let guid = parse_efivar_guid(&raw)?;
    disks
        .iter()
        .find(|d| disk_has_partition(&Path::new("/dev").join(d), &guid).unwrap_or(false))
        .cloned()
}

/// Mounts efivarfs on an EFI machine, once (the kernel loads the module on request).
pub fn mount_efivarfs() {
    let dir = Path::new(EFIVARS);
    if !Path::new("/sys/firmware/efi").exists() || !dir.exists() {
        return;
    }
    let mounted = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !mounted {
        if let Err(e) = mount_noexec("efivarfs", dir, "efivarfs") {
            log::warn!("cannot mount efivarfs: {e}; the boot device cannot be recognised");
        }
    }
}

const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// Mounts `source` on `dir` as `fstype`, read-write, with no set-uid, device files or programs.
pub fn mount_noexec(source: impl AsRef<Path>, dir: &Path, fstype: &str) -> rustix::io::Result<()> {
    rustix::mount::mount(
        source.as_ref(),
        dir,
        fstype,
        rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC,
        None,
    )
}

/// An efivarfs file: 4 bytes of attributes, then the value; here a UTF-16LE GUID string.
/// Returns the GUID as its 16 on-disk bytes (GPT's mixed-endian layout).
pub fn parse_efivar_guid(raw: &[u8]) -> Option<[u8; 16]> {
    guid_bytes(&parse_efivar_string(raw)?)
}

/// An efivarfs file holding a UTF-16LE string (NUL-terminated or not) after its 4 bytes of
/// attributes; `None` if it is short, empty or not UTF-16.
pub fn parse_efivar_string(raw: &[u8]) -> Option<String> {
    let units: Vec<u16> = raw
        .get(4..)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok().filter(|s| !s.is_empty())
}

/// `0FC63DAF-8483-4772-8E79-3D69D8477DE4` → on-disk bytes (first three fields little-endian).
pub fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Some(b)
}

/// Whether the GPT on `dev` (512-byte or 4096-byte sectors) has a partition with `guid`.
pub fn disk_has_partition(dev: &Path, guid: &[u8; 16]) -> std::io::Result<bool> {
    Ok(partition_number(dev, guid)?.is_some())
}

/// The number (1-based, as in `sda1`) of the partition with `guid` in the GPT on `dev`.
pub fn partition_number(dev: &Path, guid: &[u8; 16]) -> std::io::Result<Option<u32>> {
    let mut f = std::fs::File::open(dev)?;
    for sector in [512u64, 4096] {
        let mut header = [0u8; 92];
        f.seek(SeekFrom::Start(sector))?;
        if f.read_exact(&mut header).is_err() || &header[..8] != b"EFI PART" {
            continue;
        }
        let entries_lba = u64::from_le_bytes(header[72..80].try_into().unwrap_or_default());
        let count = u32::from_le_bytes(header[80..84].try_into().unwrap_or_default()).min(1024);
        let size = u32::from_le_bytes(header[84..88].try_into().unwrap_or_default());
        if !(128..=4096).contains(&size) {
            continue;
        }
        let mut entries = vec![0u8; count as usize * size as usize];
        f.seek(SeekFrom::Start(entries_lba.saturating_mul(sector)))?;
        f.read_exact(&mut entries)?;
        if let Some(i) = entries
            .chunks_exact(size as usize)
            .position(|e| e[16..32] == guid[..])
        {
            return Ok(Some(i as u32 + 1));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        let b = guid_bytes("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap();
        assert_eq!(
            b,
            [
                0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
                0x7d, 0xe4
            ]
        );
        assert!(guid_bytes("not-a-guid").is_none());
        let mut raw = vec![7, 0, 0, 0];
        for u in "0fc63daf-8483-4772-8e79-3d69d8477de4"
            .encode_utf16()
            .chain([0])
        {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(parse_efivar_guid(&raw), Some(b));
        assert_eq!(parse_efivar_guid(&[1, 2]), None);
    }

    #[test]
    fn finds_a_partition_in_a_gpt_image() {
        let path = std::env::temp_dir().join(format!("tank-bootdev-{}.img", std::process::id()));
        let mut image = vec![0u8; 64 * 1024];
        image[512..520].copy_from_slice(b"EFI PART");
        image[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        image[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        image[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        let part = guid_bytes("11111111-2222-3333-4444-555555555555").unwrap();
        image[1024 + 128 + 16..1024 + 128 + 32].copy_from_slice(&part);
        std::fs::write(&path, &image).unwrap();
        assert!(disk_has_partition(&path, &part).unwrap());
        assert_eq!(partition_number(&path, &part).unwrap(), Some(2));
        let other = guid_bytes("11111111-2222-3333-4444-555555555556").unwrap();
        assert!(!disk_has_partition(&path, &other).unwrap());
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        assert!(!disk_has_partition(&path, &part).unwrap());
        std::fs::remove_file(&path).unwrap();
    }
}
