//! Block devices and their identity, read from sysfs.

use std::path::Path;

/// One whole disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `sda`. Not stable across boots on real hardware; the pool never relies
    /// on it.
    pub name: String,
    pub size_bytes: u64,
    pub model: String,
    pub serial: String,
    pub wwn: String,
    pub removable: bool,
    pub read_only: bool,
}

/// Every whole disk in `/sys/block`, sorted by name; loop, ram, zram and device-mapper devices
/// are left out.
pub fn list() -> Vec<Disk> {
    list_in(Path::new("/sys/block"))
}

pub fn list_in(sys_block: &Path) -> Vec<Disk> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut disks: Vec<Disk> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "zram", "dm-", "md", "sr", "fd"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                return None;
            }
            Some(read_disk(&e.path(), name))
        })
        .collect();
    disks.sort_by_key(|d| natural_key(&d.name));
    disks
}

fn natural_key(name: &str) -> (usize, String) {
    (name.len(), name.to_string())
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn read_disk(dir: &Path, name: String) -> Disk {
    let sectors: u64 = read_trimmed(&dir.join("size")).parse().unwrap_or(0);
    let vendor = read_trimmed(&dir.join("device/vendor"));
    let model = read_trimmed(&dir.join("device/model"));
    let model = match (vendor.as_str(), model.as_str()) {
        ("" | "ATA", m) => m.to_string(),
        (v, "") => v.to_string(),
        (v, m) => format!("{v} {m}"),
    };
    let mut serial = read_trimmed(&dir.join("device/serial"));
    if serial.is_empty() {
        serial = std::fs::read(dir.join("device/vpd_pg80"))
            .map(|b| serial_from_vpd80(&b))
            .unwrap_or_default();
    }
    let mut wwn = read_trimmed(&dir.join("device/wwid"));
    if wwn.is_empty() {
        wwn = read_trimmed(&dir.join("wwid"));
    }
    Disk {
        name,
        // The block layer counts 512-byte sectors whatever the device's own sector size.
        size_bytes: sectors.saturating_mul(512),
        model,
        serial,
        wwn,
        removable: read_trimmed(&dir.join("removable")) == "1",
        read_only: read_trimmed(&dir.join("ro")) == "1",
    }
}

/// The unit serial number from SCSI VPD page 0x80 (also served by libata's SCSI translation).
pub fn serial_from_vpd80(page: &[u8]) -> String {
    if page.len() < 4 || page[1] != 0x80 {
        return String::new();
    }
    let len = usize::from(page[3]).min(page.len() - 4);
    String::from_utf8_lossy(&page[4..4 + len])
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string()
}

/// `10737418240` → `10.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd_serial() {
        let mut page = vec![0x00, 0x80, 0x00, 0x08];
        page.extend_from_slice(b"TANK0001");
        assert_eq!(serial_from_vpd80(&page), "TANK0001");
        assert_eq!(serial_from_vpd80(&[0, 0x80, 0, 200, b'A']), "A");
        assert_eq!(serial_from_vpd80(&[0, 0x83, 0, 1, b'A']), "");
        assert_eq!(serial_from_vpd80(&[]), "");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(2 * 1024 * 1024 * 1024), "2.0 GiB");
    }

    #[test]
    fn reads_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("tank-disks-{}", std::process::id()));
        let sda = root.join("sda/device");
        std::fs::create_dir_all(&sda).unwrap();
        std::fs::write(root.join("sda/size"), "2097152\n").unwrap();
        std::fs::write(sda.join("vendor"), "QEMU    \n").unwrap();
        std::fs::write(sda.join("model"), "QEMU HARDDISK   \n").unwrap();
        std::fs::write(sda.join("vpd_pg80"), b"\x00\x80\x00\x05disk1").unwrap();
        std::fs::create_dir_all(root.join("loop0")).unwrap();
        let disks = list_in(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(disks.len(), 1);
        assert_eq!(disks[0].name, "sda");
        assert_eq!(disks[0].size_bytes, 1024 * 1024 * 1024);
        assert_eq!(disks[0].model, "QEMU QEMU HARDDISK");
        assert_eq!(disks[0].serial, "disk1");
    }
}
