//! Disk health: SMART on ATA/SATA disks (through SCSI `SG_IO`, [`ata`]) and the health log of
//! NVMe controllers ([`nvme`]), read into one [`Reading`] per disk. A disk with no health
//! interface (virtio, a USB bridge that refuses ATA pass-through) reads as "not available"
//! with the reason, never as passed; a SATA disk in standby is not woken (CHECK POWER MODE
//! first, like `smartd -n standby`). The ioctls themselves are in the `tank-passthrough`
//! crate; the engine keeps the last reading per disk and polls them (`init/engine/`).

pub mod ata;
pub mod nvme;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;

use crate::system::disks::Disk;

/// The overall answer for a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// The disk says it is failing, and why.
    Failing(String),
    /// The disk was in standby and no earlier reading exists.
    Asleep,
    /// No health interface, and why.
    NotAvailable(String),
}

/// What the health interface said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    None,
    Ata(ata::Smart),
    Nvme {
        log: nvme::HealthLog,
        self_tests: Option<nvme::SelfTestLog>,
    },
}

/// One disk's health, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Tank's name of the disk.
    pub disk: String,
    pub model: String,
    pub serial: String,
    pub verdict: Verdict,
    /// In standby at the latest look: the rest is the earlier reading, made at `at`.
    pub asleep: bool,
    /// Unix time of the reading.
    pub at: u64,
    pub detail: Detail,
}

impl Reading {
    pub fn temperature_c(&self) -> Option<i64> {
        match &self.detail {
            Detail::Ata(s) => s.temperature_c(),
            Detail::Nvme { log, .. } => log.temperature_c(),
            Detail::None => None,
        }
    }

    pub fn power_on_hours(&self) -> Option<u128> {
        match &self.detail {
            Detail::Ata(s) => s.power_on_hours().map(u128::from),
            Detail::Nvme { log, .. } => Some(log.power_on_hours),
            Detail::None => None,
        }
    }

    /// The raw value of an ATA attribute.
    pub fn ata_raw(&self, id: u8) -> Option<u64> {
        match &self.detail {
            Detail::Ata(s) => s.raw(id),
            _ => None,
        }
    }

    /// The health column: `PASSED`, `FAILING: why`, `asleep`, `not available: why`.
    pub fn health_text(&self) -> String {
        let verdict = match &self.verdict {
            Verdict::Passed => "PASSED".to_string(),
            Verdict::Failing(why) => format!("FAILING: {why}"),
            Verdict::Asleep => "asleep".to_string(),
            Verdict::NotAvailable(why) => format!("not available: {why}"),
        };
        if self.asleep && self.verdict != Verdict::Asleep {
            format!("asleep (last read: {verdict})")
        } else {
            verdict
        }
    }
}

/// The latest look at a disk, keeping the earlier reading when the disk is asleep now.
pub fn merge(previous: Option<&Reading>, new: Reading) -> Reading {
    match previous {
        Some(p) if new.verdict == Verdict::Asleep && p.verdict != Verdict::Asleep => Reading {
            asleep: true,
            ..p.clone()
        },
        _ => new,
    }
}

fn open(path: &std::path::Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Reads a disk's health now (at most a few ioctls of up to 10 s each).
pub fn read(disk: &Disk, now: u64) -> Reading {
    let (verdict, detail) = if let Some(node) = nvme::controller_node(&disk.kernel) {
        read_nvme(&node)
    } else {
        read_ata(&std::path::Path::new("/dev").join(&disk.kernel))
    };
    Reading {
        disk: disk.name.clone(),
        model: disk.model.clone(),
        serial: disk.serial.clone(),
        verdict,
        asleep: false,
        at: now,
        detail,
    }
}

/// The device opened for pass-through, or the "not available" verdict that says why not.
fn open_device(node: &std::path::Path) -> Result<std::fs::File, Verdict> {
    open(node).map_err(|e| Verdict::NotAvailable(format!("cannot open {}: {e}", node.display())))
}

fn read_ata(node: &std::path::Path) -> (Verdict, Detail) {
    let file = match open_device(node) {
        Ok(f) => f,
        Err(unavailable) => return (unavailable, Detail::None),
    };
    match ata::check_power_mode(&file) {
        Ok(ata::PowerMode::Standby) => return (Verdict::Asleep, Detail::None),
        Ok(_) => {}
        Err(e) => return (Verdict::NotAvailable(e.to_string()), Detail::None),
    }
    let passed = match ata::return_status(&file) {
        Ok(p) => p,
        Err(e) => return (Verdict::NotAvailable(e.to_string()), Detail::None),
    };
    let smart = ata::read_smart(&file);
    let verdict = if passed {
        Verdict::Passed
    } else {
        let failing: Vec<String> = smart
            .data
            .iter()
            .flat_map(|d| &d.attributes)
            .filter(|a| a.failing())
            .map(|a| format!("{} {}", a.id, a.name()))
            .collect();
        Verdict::Failing(if failing.is_empty() {
            "SMART threshold exceeded".to_string()
        } else {
            format!("SMART threshold exceeded ({})", failing.join(", "))
        })
    };
    (verdict, Detail::Ata(smart))
}

fn read_nvme(node: &std::path::Path) -> (Verdict, Detail) {
    let file = match open_device(node) {
        Ok(f) => f,
        Err(unavailable) => return (unavailable, Detail::None),
    };
    match nvme::read_health(&file) {
        Ok(log) => {
            let warnings = log.warnings();
            let verdict = if warnings.is_empty() {
                Verdict::Passed
            } else {
                Verdict::Failing(warnings.join(", "))
            };
            let self_tests = nvme::read_self_tests(&file);
            (verdict, Detail::Nvme { log, self_tests })
        }
        Err(e) => (Verdict::NotAvailable(e), Detail::None),
    }
}

/// Starts a short or long self-test; the answer says how long it should take.
pub fn start_self_test(disk: &Disk, long: bool) -> Result<String, String> {
    let kind = if long { "extended" } else { "short" };
    if let Some(node) = nvme::controller_node(&disk.kernel) {
        let file = open(&node).map_err(|e| format!("cannot open {}: {e}", node.display()))?;
        nvme::start_self_test(&file, long)
            .map_err(|e| format!("{}: cannot start a self-test: {e}", disk.name))?;
        return Ok(format!(
            "{}: {kind} device self-test started; 'disk health {}' shows its progress",
            disk.name, disk.name
        ));
    }
    let node = std::path::Path::new("/dev").join(&disk.kernel);
    let file = open(&node).map_err(|e| format!("cannot open {}: {e}", node.display()))?;
    let minutes = ata::start_self_test(&file, long)
        .map_err(|e| format!("{}: cannot start a self-test: {e}", disk.name))?;
    Ok(format!(
        "{}: {kind} SMART self-test started (about {minutes} min); 'disk health {}' shows its progress",
        disk.name, disk.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(verdict: Verdict, at: u64) -> Reading {
        Reading {
            disk: "sda".into(),
            model: "M".into(),
            serial: "S".into(),
            verdict,
            asleep: false,
            at,
            detail: Detail::None,
        }
    }

    #[test]
    fn an_asleep_disk_keeps_its_last_reading() {
        let earlier = reading(Verdict::Passed, 10);
        let merged = merge(Some(&earlier), reading(Verdict::Asleep, 20));
        assert!(merged.asleep);
        assert_eq!((merged.at, &merged.verdict), (10, &Verdict::Passed));
        assert_eq!(merged.health_text(), "asleep (last read: PASSED)");
        let alone = merge(None, reading(Verdict::Asleep, 20));
        assert_eq!(alone.health_text(), "asleep");
        let awake = merge(Some(&merged), reading(Verdict::Failing("x".into()), 30));
        assert_eq!(awake.health_text(), "FAILING: x");
        assert!(!awake.asleep);
    }

    #[test]
    fn not_available_is_never_passed() {
        let r = reading(Verdict::NotAvailable("no pass-through".into()), 1);
        assert_eq!(r.health_text(), "not available: no pass-through");
    }
}
