//! Block devices and their identity, read from sysfs.
//!
//! The kernel names SCSI-class disks (`sdX`) in the order their asynchronous probes happen to
//! run, so two disks can swap names from one boot to the next even though nothing moved.
//! Tank names them in bus order instead: the disks are sorted by their device path in sysfs
//! (controller, port or target, LUN), and the `sd` disks take the letters in that order, so
//! `sda` is always the disk on the first port. Every other disk keeps the kernel's name. The
//! kernel's name stays in [`Disk::kernel`] for device nodes and kernel messages.

use std::path::{Path, PathBuf};

/// One whole disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Tank's name, e.g. `sda`: in bus order (see the module's documentation). The pool never
    /// relies on it; members are known by the pool's UUID.
    pub name: String,
    /// The kernel's name (`/dev/<kernel>`, `/sys/block/<kernel>`), which may differ.
    pub kernel: String,
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
    let mut disks: Vec<(Vec<Part>, Disk)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "zram", "dm-", "md", "sr", "fd"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                return None;
            }
            // `/sys/block/sdb` links to `../devices/pci0000:00/.../target0:0:1/0:0:1:0/block/sdb`.
            let bus = std::fs::read_link(e.path())
                .map(|l| natural_parts(&l.to_string_lossy()))
                .unwrap_or_default();
            Some((bus, read_disk(&e.path(), name)))
        })
        .collect();
    disks.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| natural_key(&a.1.kernel).cmp(&natural_key(&b.1.kernel)))
    });
    let mut sd = 0;
    let mut disks: Vec<Disk> = disks
        .into_iter()
        .map(|(_, mut d)| {
            if d.kernel.starts_with("sd") {
                d.name = sd_name(sd);
                sd += 1;
            }
            d
        })
        .collect();
    disks.sort_by_key(|d| natural_key(&d.name));
    disks
}

/// The device node of the disk Tank calls `name` (`/dev/<name>` when no disk has that name).
pub fn node(name: &str) -> PathBuf {
    node_in(&list(), name)
}

pub fn node_in(disks: &[Disk], name: &str) -> PathBuf {
    let kernel = disks
        .iter()
        .find(|d| d.name == name)
        .map_or(name, |d| d.kernel.as_str());
    Path::new("/dev").join(kernel)
}

/// Tank's name of the disk at device node `path` (as btrfs reports members), or the node's
/// own name.
pub fn name_of_node(disks: &[Disk], path: &Path) -> Option<String> {
    let kernel = path.file_name()?.to_string_lossy().into_owned();
    Some(
        disks
            .iter()
            .find(|d| d.kernel == kernel)
            .map_or(kernel, |d| d.name.clone()),
    )
}

/// `sd` + letters for the n-th disk from 0: sda..sdz, sdaa.., as the kernel counts.
fn sd_name(n: usize) -> String {
    let mut letters = Vec::new();
    let mut n = n + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    format!("sd{}", String::from_utf8_lossy(&letters))
}

/// A piece of a path for ordering: digit runs compare as numbers (`host10` after `host9`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Number(u64),
    Text(String),
}

/// Per path component: PCI addresses (`0000:00:1f.2`, fixed-width hex) as they are, anything
/// else with its decimal runs as numbers (`ata10`, `target10:0:0`).
fn natural_parts(path: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    for component in path.split('/') {
        if is_pci_address(component) {
            parts.push(Part::Text(component.to_string()));
        } else {
            parts.extend(decimal_runs(component));
        }
        parts.push(Part::Text("/".into()));
    }
    parts
}

fn is_pci_address(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && c.chars()
            .enumerate()
            .all(|(i, ch)| [4, 7, 10].contains(&i) || ch.is_ascii_hexdigit())
}

fn decimal_runs(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digit = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digit {
                break;
            }
            run.push(c);
            chars.next();
        }
        parts.push(if digit {
            Part::Number(run.parse().unwrap_or(u64::MAX))
        } else {
            Part::Text(run)
        });
    }
    parts
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
        name: name.clone(),
        kernel: name,
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

    #[test]
    fn names_follow_the_bus_not_the_probe_order() {
        let root = std::env::temp_dir().join(format!("tank-disks-bus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let block = root.join("block");
        std::fs::create_dir_all(&block).unwrap();
        // The kernel probed target 1 first (it got sda), target 0 second (sdb); a disk on a
        // tenth host must come after one on the ninth; NVMe keeps its own name.
        let disks = [
            (
                "sda",
                "pci0000:00/0000:00:04.0/virtio2/host0/target0:0:1/0:0:1:0",
                "SECOND",
            ),
            (
                "sdb",
                "pci0000:00/0000:00:04.0/virtio2/host0/target0:0:0/0:0:0:0",
                "FIRST",
            ),
            (
                "sdc",
                "pci0000:00/0000:00:1f.2/ata10/host10/target10:0:0/10:0:0:0",
                "FOURTH",
            ),
            (
                "sdd",
                "pci0000:00/0000:00:1f.2/ata9/host9/target9:0:0/9:0:0:0",
                "THIRD",
            ),
            ("nvme0n1", "pci0000:00/0000:00:05.0/nvme/nvme0", "NVME"),
        ];
        for (kernel, bus, serial) in disks {
            let dir = root.join("devices").join(bus).join("block").join(kernel);
            std::fs::create_dir_all(dir.join("device")).unwrap();
            std::fs::write(dir.join("size"), "2048\n").unwrap();
            std::fs::write(dir.join("device/serial"), serial).unwrap();
            std::os::unix::fs::symlink(&dir, block.join(kernel)).unwrap();
        }
        let found = list_in(&block);
        std::fs::remove_dir_all(&root).unwrap();
        let names: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|d| (d.name.as_str(), d.kernel.as_str(), d.serial.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("sda", "sdb", "FIRST"),
                ("sdb", "sda", "SECOND"),
                ("sdc", "sdd", "THIRD"),
                ("sdd", "sdc", "FOURTH"),
                ("nvme0n1", "nvme0n1", "NVME"),
            ]
        );
        assert_eq!(node_in(&found, "sda"), Path::new("/dev/sdb"));
        assert_eq!(
            name_of_node(&found, Path::new("/dev/sdb")).as_deref(),
            Some("sda")
        );
        assert_eq!(sd_name(25), "sdz");
        assert_eq!(sd_name(26), "sdaa");
    }
}
