//! NVMe health: the SMART / Health Information log page (Get Log Page, LID 0x02) and the
//! Device Self-test log (LID 0x06) as pure parsers, and the admin commands that read them
//! and start a self-test, on the controller's character device (`/dev/nvme0` for `nvme0n1`).

use std::fs::File;
use std::path::PathBuf;

use tank_passthrough::{nvme_admin, AdminCommand};

pub const TIMEOUT_MS: u32 = 10_000;
const GET_LOG_PAGE: u8 = 0x02;
const IDENTIFY: u8 = 0x06;
const DEVICE_SELF_TEST: u8 = 0x14;
const LOG_HEALTH: u32 = 0x02;
const LOG_SELF_TEST: u32 = 0x06;
/// Every namespace: the controller's own log.
const ALL_NAMESPACES: u32 = 0xFFFF_FFFF;

/// The SMART / Health Information log page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthLog {
    pub critical_warning: u8,
    /// Composite temperature in Kelvin.
    pub temperature_k: u16,
    pub available_spare: u8,
    pub spare_threshold: u8,
    pub percentage_used: u8,
    /// In thousands of 512-byte units.
    pub data_units_read: u128,
    pub data_units_written: u128,
    pub power_cycles: u128,
    pub power_on_hours: u128,
    pub unsafe_shutdowns: u128,
    pub media_errors: u128,
    pub error_log_entries: u128,
    pub warning_temp_minutes: u32,
    pub critical_temp_minutes: u32,
}

impl HealthLog {
    pub fn temperature_c(&self) -> Option<i64> {
        (self.temperature_k != 0).then(|| i64::from(self.temperature_k) - 273)
    }

    /// The names of the critical warning bits set.
    pub fn warnings(&self) -> Vec<&'static str> {
        critical_warnings(self.critical_warning)
    }
}

pub fn critical_warnings(bits: u8) -> Vec<&'static str> {
    [
        "available spare below threshold",
        "temperature outside its thresholds",
        "reliability degraded by media or internal errors",
        "media placed in read-only mode",
        "volatile memory backup failed",
        "persistent memory region read-only",
    ]
    .iter()
    .enumerate()
    .filter(|(i, _)| bits & (1 << i) != 0)
    .map(|(_, w)| *w)
    .collect()
}

/// Why a log page could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the NVMe health log is 512 bytes; the controller returned {0}")]
    Short(usize),
}

fn u128_at(p: &[u8], at: usize) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&p[at..at + 16]);
    u128::from_le_bytes(b)
}

pub fn parse_health_log(buf: &[u8]) -> Result<HealthLog, ParseError> {
    let p = buf.get(..512).ok_or(ParseError::Short(buf.len()))?;
    Ok(HealthLog {
        critical_warning: p[0],
        temperature_k: u16::from_le_bytes([p[1], p[2]]),
        available_spare: p[3],
        spare_threshold: p[4],
        percentage_used: p[5],
        data_units_read: u128_at(p, 32),
        data_units_written: u128_at(p, 48),
        power_cycles: u128_at(p, 112),
        power_on_hours: u128_at(p, 128),
        unsafe_shutdowns: u128_at(p, 144),
        media_errors: u128_at(p, 160),
        error_log_entries: u128_at(p, 176),
        warning_temp_minutes: u32::from_le_bytes([p[192], p[193], p[194], p[195]]),
        critical_temp_minutes: u32::from_le_bytes([p[196], p[197], p[198], p[199]]),
    })
}

/// The Device Self-test log: the running operation and the results, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestLog {
    /// 0 none, 1 short, 2 extended running.
    pub current: u8,
    pub completion_percent: u8,
    pub results: Vec<SelfTestResult>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestResult {
    /// 1 short, 2 extended.
    pub kind: u8,
    /// 0 completed without error; 0xF unused entry (never listed).
    pub result: u8,
    pub power_on_hours: u64,
}

impl SelfTestResult {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            1 => "short",
            2 => "extended",
            0xE => "vendor",
            _ => "reserved",
        }
    }

    pub fn result_text(&self) -> &'static str {
        match self.result {
            0 => "completed without error",
            1 => "aborted by a Device Self-test command",
            2 => "aborted by a controller reset",
            3 => "aborted by a namespace removal",
            4 => "aborted by a format",
            5 => "fatal or unknown error",
            6 => "failed (unknown segment)",
            7 => "failed (segments known)",
            8 => "aborted (unknown reason)",
            9 => "aborted by a sanitize",
            _ => "reserved result",
        }
    }
}

pub fn parse_self_test_log(buf: &[u8]) -> Option<SelfTestLog> {
    let p = buf.get(..4 + 20 * 28)?;
    let results = p[4..]
        .chunks_exact(28)
        .filter(|e| e[0] & 0x0F != 0x0F)
        .map(|e| SelfTestResult {
            kind: e[0] >> 4,
            result: e[0] & 0x0F,
            power_on_hours: u64::from_le_bytes([e[4], e[5], e[6], e[7], e[8], e[9], e[10], e[11]]),
        })
        .collect();
    Some(SelfTestLog {
        current: p[0] & 0x0F,
        completion_percent: p[1] & 0x7F,
        results,
    })
}

/// The controller device of a namespace: `nvme0n1` → `/dev/nvme0`.
pub fn controller_node(kernel_name: &str) -> Option<PathBuf> {
    let rest = kernel_name.strip_prefix("nvme")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| PathBuf::from(format!("/dev/nvme{digits}")))
}

/// The Get Log Page command for `lid`, `len` bytes (a multiple of 4).
pub fn get_log_page(lid: u32, len: usize) -> AdminCommand {
    let dwords = (len / 4).saturating_sub(1) as u32;
    AdminCommand {
        opcode: GET_LOG_PAGE,
        nsid: ALL_NAMESPACES,
        cdw10: lid | ((dwords & 0xFFFF) << 16),
        ..AdminCommand::default()
    }
}

fn admin(file: &File, what: &str, cmd: &AdminCommand, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let r = nvme_admin(file, cmd, &mut buf, TIMEOUT_MS)
        .map_err(|e| format!("the driver refused the NVMe admin command for {what}: {e}"))?;
    if r.status != 0 {
        return Err(format!(
            "the controller refused {what} (NVMe status {:#x})",
            r.status
        ));
    }
    Ok(buf)
}

pub fn read_health(file: &File) -> Result<HealthLog, String> {
    let buf = admin(file, "the health log", &get_log_page(LOG_HEALTH, 512), 512)?;
    parse_health_log(&buf).map_err(|e| e.to_string())
}

/// The self-test log, when the controller supports self-tests.
pub fn read_self_tests(file: &File) -> Option<SelfTestLog> {
    if !supports_self_test(file).ok()? {
        return None;
    }
    let buf = admin(
        file,
        "the self-test log",
        &get_log_page(LOG_SELF_TEST, 564),
        564,
    )
    .ok()?;
    parse_self_test_log(&buf)
}

/// Identify Controller, OACS bit 4.
fn supports_self_test(file: &File) -> Result<bool, String> {
    let identify = AdminCommand {
        opcode: IDENTIFY,
        cdw10: 1,
        ..AdminCommand::default()
    };
    let id = admin(file, "Identify Controller", &identify, 4096)?;
    Ok(id[256] & 0x10 != 0)
}

pub fn start_self_test(file: &File, long: bool) -> Result<(), String> {
    if !supports_self_test(file)? {
        return Err("the NVMe controller does not support Device Self-test".into());
    }
    let cmd = AdminCommand {
        opcode: DEVICE_SELF_TEST,
        nsid: ALL_NAMESPACES,
        cdw10: if long { 2 } else { 1 },
        ..AdminCommand::default()
    };
    admin(file, "Device Self-test", &cmd, 0).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_page() -> Vec<u8> {
        let mut p = vec![0u8; 512];
        p[0] = 0b0000_0101;
        p[1..3].copy_from_slice(&318u16.to_le_bytes());
        p[3] = 90;
        p[4] = 10;
        p[5] = 7;
        p[128..144].copy_from_slice(&(1u128 << 70 | 1234).to_le_bytes());
        p[160..176].copy_from_slice(&5u128.to_le_bytes());
        p[112] = 9;
        p[192..196].copy_from_slice(&3u32.to_le_bytes());
        p
    }

    #[test]
    fn health_log_fields() {
        let h = parse_health_log(&log_page()).unwrap();
        assert_eq!(h.temperature_c(), Some(45));
        assert_eq!(
            (h.available_spare, h.spare_threshold, h.percentage_used),
            (90, 10, 7)
        );
        assert_eq!(h.power_on_hours, (1u128 << 70) | 1234);
        assert_eq!(h.media_errors, 5);
        assert_eq!(h.power_cycles, 9);
        assert_eq!(h.warning_temp_minutes, 3);
        assert_eq!(
            h.warnings(),
            vec![
                "available spare below threshold",
                "reliability degraded by media or internal errors"
            ]
        );
        assert_eq!(parse_health_log(&[0u8; 100]), Err(ParseError::Short(100)));
    }

    #[test]
    fn commands_and_nodes() {
        let c = get_log_page(LOG_HEALTH, 512);
        assert_eq!(
            (c.opcode, c.nsid, c.cdw10),
            (0x02, 0xFFFF_FFFF, 0x007F_0002)
        );
        assert_eq!(
            controller_node("nvme0n1"),
            Some(PathBuf::from("/dev/nvme0"))
        );
        assert_eq!(
            controller_node("nvme12n3"),
            Some(PathBuf::from("/dev/nvme12"))
        );
        assert_eq!(controller_node("sda"), None);
        assert_eq!(controller_node("nvmen1"), None);
    }

    #[test]
    fn self_test_log_skips_unused_entries() {
        let mut p = vec![0u8; 564];
        p[0] = 1;
        p[1] = 40;
        for e in p[4..].chunks_exact_mut(28) {
            e[0] = 0x0F;
        }
        p[4] = 0x20;
        p[8..16].copy_from_slice(&77u64.to_le_bytes());
        let log = parse_self_test_log(&p).unwrap();
        assert_eq!((log.current, log.completion_percent), (1, 40));
        assert_eq!(log.results.len(), 1);
        assert_eq!(log.results[0].kind_name(), "extended");
        assert_eq!(log.results[0].result_text(), "completed without error");
        assert_eq!(log.results[0].power_on_hours, 77);
        assert_eq!(parse_self_test_log(&p[..100]), None);
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 700) as usize;
            let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert_eq!(parse_health_log(&buf).is_ok(), len >= 512);
            assert_eq!(parse_self_test_log(&buf).is_some(), len >= 564);
            let _ = critical_warnings(buf.first().copied().unwrap_or(0));
        }
    }
}
